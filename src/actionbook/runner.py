"""Execute the book's notebooks with papermill: `python -m actionbook run`.

Each notebook is a jupytext MyST-markdown file with one cell tagged `parameters` that
defines at least `mode`. The runner

1. finds the notebooks (those given, or every notebook listed in `_toc.yml`),
2. converts each to `.ipynb` and checks every `-p NAME VALUE` against its parameters
   cell *before anything runs* (unknown names and values of the wrong type are refused),
3. executes each with papermill, `mode` and the `-p` values injected after the
   parameters cell, in the notebook's own folder,
4. writes the executed notebook to `_build/executed/<mode>/<path>.ipynb` (atomically:
   a failed run leaves `<name>.failed.ipynb` beside it for inspection and never
   overwrites the last good one), printing progress and each notebook's wall time,
5. ends with a table of the notebooks' seconds and of the cached stages (benchmark
   generation, ci pretraining, each feature set) built meanwhile (`actionbook.stages`).

A failing cell stops the run with a non-zero exit naming the notebook and the cell.

`--jobs N` runs the parts of `_toc.yml` side by side, up to N at a time (each in its own
process, started in the book's order), the notebooks of one part one after the other, in
order: a chapter's later pages may use what its first page trained. What two parts both need
(the generated benchmark, the ci pretraining, a feature set) is built once, under a lock
(`actionbook.io.build_lock`): the part that asks second waits for it. A failure stops any
further notebook from starting; those already running finish; the run then exits non-zero.
Side by side, the results a notebook's record lists (below) may include some that another
notebook wrote meanwhile: a change to those executes it again too, so it is never reused stale.

In ci mode an executed notebook is reused when nothing it depends on changed (`execution_key`:
the notebook's text, its parameters, every file of the `actionbook` package, the cache, results
and data folders, the Python and library versions) and the results it wrote are still there,
byte for byte (`<name>.run.json` beside the executed notebook records both). So a change in
`src/` always shows in the next `make book`, and an unchanged book is not computed twice (the
test suite executes the chapters' notebooks where `make book` does). `--force` executes anyway.
Full mode always executes: its inputs (the datasets, the weight files) live outside the
repository, where no key can see them change.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actionbook import MODES, stages
from actionbook.io import read_json, write_json
from actionbook.paths import ROOT, cache_dir, data_dir, results_dir


class RunnerError(Exception):
    """A problem found before or while running notebooks; its message says what to fix."""


@dataclass
class Notebook:
    source: Path                 # the jupytext .md file
    name: str                    # its path relative to the book root, without suffix
    params: dict[str, Any] = field(default_factory=dict)  # name -> default value
    run_alone: bool = False      # front matter `actionbook: {run_alone: true}`: `--jobs` runs nothing beside it


# --------------------------------------------------------------------------- discovery

def toc_files(root: Path = ROOT) -> list[str]:
    """Every `file:` entry of `_toc.yml`, in reading order (without suffix)."""
    return [entry for part in toc_parts(root) for entry in part]


def toc_parts(root: Path = ROOT) -> list[list[str]]:
    """`_toc.yml`'s entries grouped as `--jobs` runs them side by side: the root alone, then each
    part (or, in a book without parts, each chapter with its sections), in reading order."""
    toc = root / "_toc.yml"
    if not toc.exists():
        raise RunnerError(f"{toc} not found: the runner lists the book's notebooks from it")
    data = yaml.safe_load(toc.read_text())
    if not isinstance(data, dict):
        raise RunnerError(f"{toc} is not a table of contents (a mapping with `root` and `parts` or `chapters`)")
    groups = [[str(data["root"])]] if "root" in data else []
    for top in (data.get("parts") or []) + (data.get("chapters") or []):
        groups.append(toc_files_of(top))
    return [g for g in groups if g]


def toc_files_of(node: Any) -> list[str]:
    """Every `file:` entry at or under `node`, in reading order."""
    out: list[str] = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(str(node["file"]))
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                out.extend(toc_files_of(child))
    elif isinstance(node, list):
        for child in node:
            out.extend(toc_files_of(child))
    return out


def resolve_source(entry: str, root: Path = ROOT) -> Path:
    """The file behind a `_toc.yml` entry (`book/intro` -> `book/intro.md`)."""
    p = root / entry
    for cand in (p, p.with_suffix(".md"), Path(str(p) + ".md")):
        if cand.is_file():
            return cand
    raise RunnerError(f"_toc.yml lists {entry!r} but no file {p}.md exists")


def front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of a markdown file ({} if it has none)."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    front = yaml.safe_load(text[3:end]) if end > 0 else None
    return front if isinstance(front, dict) else {}


def is_notebook(path: Path) -> bool:
    """A jupytext markdown notebook carries a `kernelspec` in its front matter."""
    return path.suffix == ".md" and "kernelspec" in front_matter(path)


def runs_alone(path: Path) -> bool:
    """True for a notebook whose front matter says `actionbook: {run_alone: true}`: one that times
    models, whose times another notebook running beside it would distort."""
    own = front_matter(path).get("actionbook") or {}
    return bool(isinstance(own, dict) and own.get("run_alone", False))


def book_notebooks(root: Path = ROOT) -> list[Path]:
    """Every executable notebook of `_toc.yml`, in reading order."""
    return [p for p in (resolve_source(e, root) for e in toc_files(root)) if is_notebook(p)]


def _display_name(path: Path) -> str:
    path = path.resolve()
    try:
        return str(path.relative_to(ROOT).with_suffix(""))
    except ValueError:
        return path.stem


# --------------------------------------------------------------------------- parameters

def _to_ipynb(source: Path, dest: Path) -> None:
    import jupytext

    nb = jupytext.read(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                          "language": "python"})
    jupytext.write(nb, dest, fmt="ipynb")


def read_parameters(ipynb: Path, source: Path) -> dict[str, Any]:
    """The names and default values of the `parameters` cell."""
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise RunnerError(f"{source}: no cell is tagged `parameters` (give the first code cell "
                          "the tag, e.g. ```{code-cell} ipython3 :tags: [parameters]```)")
    if len(cells) > 1:
        raise RunnerError(f"{source}: {len(cells)} cells are tagged `parameters`; keep one")
    ns: dict[str, Any] = {}
    try:
        exec(compile(cells[0].source, f"{source}:parameters", "exec"), {}, ns)
    except Exception as e:  # a parameters cell must be plain assignments
        raise RunnerError(f"{source}: the parameters cell must hold plain assignments "
                          f"of literals; running it failed with {type(e).__name__}: {e}") from e
    params = {k: v for k, v in ns.items() if not k.startswith("_")}
    if "mode" not in params:
        raise RunnerError(f"{source}: the parameters cell does not define `mode`")
    return params


def notebook_parameters(source: Path) -> dict[str, Any]:
    """The parameters cell of a jupytext notebook, read without running it: name -> default."""
    with tempfile.TemporaryDirectory(prefix="actionbook-params-") as tmp:
        ipynb = Path(tmp) / (Path(source).stem + ".ipynb")
        _to_ipynb(Path(source), ipynb)
        return read_parameters(ipynb, Path(source))


def full_mode_notebooks(root: Path = ROOT) -> list[Path]:
    """The chapter notebooks that run in full mode: every notebook of `_toc.yml` whose parameters
    cell has both `mode` and `dataset` (a page that reads a dataset). Pages without `dataset`
    (explanations, timings on random inputs) have no full-mode data path."""
    return [p for p in book_notebooks(root) if "dataset" in notebook_parameters(p)]


def parse_value(text: str) -> Any:
    """`-p` values are read as YAML scalars, like papermill's CLI: 3 -> int, 0.1 -> float,
    true -> bool, [1, 2] -> list, anything else stays a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def check_parameters(nb: Notebook, given: dict[str, str]) -> dict[str, Any]:
    """Check `-p` names and value types against the notebook's parameters cell."""
    out: dict[str, Any] = {}
    for name, raw in given.items():
        if name not in nb.params:
            raise RunnerError(
                f"{nb.source}: unknown parameter {name!r}; this notebook's parameters are: "
                f"{', '.join(sorted(nb.params))}")
        default = nb.params[name]
        value = parse_value(raw)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, str):
            ok, value = True, raw  # keep the text exactly as typed
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, list)
        else:  # None or another type: accept what YAML gives
            ok = True
        if not ok:
            raise RunnerError(f"{nb.source}: parameter {name!r} expects a "
                              f"{type(default).__name__} (default {default!r}), got {raw!r}")
        out[name] = value
    return out


# --------------------------------------------------------------------------- execution

def _failed_cell(out_nb: Path, exec_count: int | None) -> str:
    import nbformat

    try:
        nb = nbformat.read(out_nb, as_version=4)
    except Exception:
        return ""
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and exec_count is not None and c.get("execution_count") == exec_count:
            first = next((ln for ln in c.source.splitlines() if ln.strip()), "")
            return f"cell {i} (In [{exec_count}]): {first[:80]}"
    return f"cell In [{exec_count}]" if exec_count is not None else ""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # results files are small tables and figures


def package_digest() -> str:
    """A hash of every file of the installed `actionbook` package (code, paper tables)."""
    import actionbook

    base = Path(actionbook.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(f.relative_to(base)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def execution_key(nb: Notebook, *, mode: str, params: dict[str, Any], digest: str | None = None) -> str:
    """What an executed notebook depends on, hashed: its text, mode and parameters, the package's
    files (`package_digest`), the folders it reads and writes, the Python and library versions."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for lib in ("torch", "torchvision", "numpy", "pandas", "scipy", "scikit-learn", "av", "opencv-python-headless",
                "myst-nb", "papermill"):
        try:
            versions[lib] = version(lib)
        except PackageNotFoundError:
            versions[lib] = None
    blob = dict(notebook=nb.source.read_text(encoding="utf-8"), name=nb.name, mode=mode,
                params={k: repr(v) for k, v in sorted(params.items())},
                package=digest or package_digest(), python=platform.python_version(), versions=versions,
                folders=[str(f().resolve()) for f in (cache_dir, results_dir, data_dir)])
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def _results_state(mode: str) -> dict[str, tuple[int, int]]:
    base = results_dir() / mode
    return {str(p.relative_to(base)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in base.rglob("*") if p.is_file()} if base.is_dir() else {}


def _record_path(out: Path) -> Path:
    return out.with_name(out.stem + ".run.json")


def reusable(out: Path, key: str, mode: str) -> bool:
    """True when `out` was executed with this `key` and every results file it wrote is unchanged."""
    record = _record_path(out)
    if not (out.is_file() and record.is_file()):
        return False
    try:
        rec = read_json(record)
    except ValueError:
        return False
    if rec.get("key") != key:
        return False
    base = results_dir() / mode
    return all((base / rel).is_file() and _sha256(base / rel) == sha for rel, sha in rec.get("results", {}).items())


def execute(nb: Notebook, ipynb: Path, *, mode: str, params: dict[str, Any], out_dir: Path,
            progress: bool = True, key: str | None = None) -> float:
    """Execute one converted notebook; return its wall time in seconds. With `key`
    (`execution_key`), record it and the results files the notebook wrote beside the executed
    notebook, for `reusable`."""
    import papermill as pm

    out = out_dir / mode / (nb.name + ".ipynb")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.stem + ".partial.ipynb")
    failed = out.with_name(out.stem + ".failed.ipynb")
    _record_path(out).unlink(missing_ok=True)  # the old record no longer describes what is at `out`
    before = _results_state(mode)
    os.environ["ACTIONBOOK_NOTEBOOK"] = str(nb.source)  # recorded in results metadata
    t0 = time.perf_counter()
    try:
        # shutdown_kernel="immediate": once every cell has run and its outputs are in, the kernel
        # is stopped rather than left to tear its interpreter down (2-3 s a notebook with torch and
        # torchvision loaded, benchmarks/decisions/0032). Nothing of a notebook's may wait for exit: its
        # results are written, atomically, by its cells (tests/test_runner.py checks both).
        pm.execute_notebook(str(ipynb), str(partial), parameters={"mode": mode, **params},
                            cwd=str(nb.source.parent), progress_bar=progress, kernel_name="python3",
                            language="python", shutdown_kernel="immediate")
    except pm.PapermillExecutionError as e:
        os.replace(partial, failed)
        where = _failed_cell(failed, e.exec_count) or f"cell {e.cell_index}"
        raise RunnerError(f"{nb.source}: {where} failed with {e.ename}: {e.evalue}\n"
                          f"  the executed notebook is at {failed}") from None
    os.replace(partial, out)
    failed.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    if key is not None:
        written = sorted(rel for rel, state in _results_state(mode).items() if before.get(rel) != state)
        base = results_dir() / mode
        write_json(_record_path(out), dict(key=key, seconds=round(seconds, 2), notebook=str(nb.source),
                                           results={rel: _sha256(base / rel) for rel in written}))
    return seconds


def run(notebooks: list[Path], *, mode: str, params: dict[str, str], out_dir: Path,
        progress: bool = True, force: bool = False, reused: set[str] | None = None,
        jobs: int = 1) -> dict[str, float]:
    """Check every notebook's parameters first, then execute them in order (with `jobs` > 1, the
    parts of `_toc.yml` side by side: `parts_of`). In ci mode a notebook whose executed copy is
    `reusable` is not executed again (unless `force`); its name is added to `reused` and its time
    is the recorded one."""
    if mode not in MODES:
        raise RunnerError(f"unknown mode {mode!r}: valid modes are {', '.join(MODES)}")
    if "mode" in params:
        raise RunnerError("set the mode with --mode, not -p mode")
    if not (isinstance(jobs, int) and jobs >= 1):
        raise RunnerError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    with tempfile.TemporaryDirectory(prefix="actionbook-run-") as tmp:  # removed however the run ends
        return _run(notebooks, Path(tmp), mode=mode, params=params, out_dir=out_dir, progress=progress,
                    force=force, reused=reused if reused is not None else set(), jobs=jobs)


def parts_of(sources: list[Path], root: Path = ROOT) -> list[int]:
    """For each notebook, the `toc_parts` group it belongs to (the same number: run one after
    the other); a notebook outside `_toc.yml` is a group of its own."""
    where: dict[Path, int] = {}
    parts = toc_parts(root) if (root / "_toc.yml").exists() else []
    for g, entries in enumerate(parts):
        for e in entries:
            with contextlib.suppress(RunnerError):  # a missing file is reported when it is run
                where[resolve_source(e, root).resolve()] = g
    out, extra = [], len(parts)
    for src in sources:
        src = Path(src).resolve()
        if src in where:
            out.append(where[src])
        else:
            out.append(extra)
            extra += 1
    return out


def _reuse(nb: Notebook, params: dict[str, Any], *, mode: str, out_dir: Path, force: bool, digest: str | None,
           reused: set[str], times: dict[str, float]) -> str | None:
    """The notebook's `execution_key` (None outside ci mode). When its executed copy is `reusable`
    (and not `force`), it is reused: its name goes into `reused`, its recorded seconds into `times`."""
    key = execution_key(nb, mode=mode, params=params, digest=digest) if digest else None
    out = out_dir / mode / (nb.name + ".ipynb")
    if key is not None and not force and reusable(out, key, mode):
        reused.add(nb.name)
        times[nb.name] = float(read_json(_record_path(out)).get("seconds", 0.0))
        print(f"  {nb.name}: unchanged, executed copy reused ({out})", file=sys.stderr, flush=True)
    return key


def _run(notebooks: list[Path], tmp: Path, *, mode: str, params: dict[str, str], out_dir: Path,
         progress: bool, force: bool, reused: set[str], jobs: int = 1) -> dict[str, float]:
    from tqdm.auto import tqdm

    plan = []
    for src in notebooks:
        src = Path(src).resolve()
        if not src.is_file():
            raise RunnerError(f"{src}: no such notebook")
        if not is_notebook(src):
            raise RunnerError(f"{src}: not a jupytext notebook (no kernelspec in its front matter)")
        ipynb = tmp / f"{len(plan):03d}-{src.stem}.ipynb"
        _to_ipynb(src, ipynb)
        nb = Notebook(src, _display_name(src), run_alone=runs_alone(src))
        nb.params = read_parameters(ipynb, src)
        plan.append((nb, ipynb, check_parameters(nb, params)))

    times: dict[str, float] = {}
    digest = package_digest() if mode == "ci" else None
    if jobs > 1:
        return _run_side_by_side(plan, parts_of([nb.source for nb, _, _ in plan]), mode=mode, out_dir=out_dir,
                                 force=force, reused=reused, jobs=jobs, digest=digest)
    bar = tqdm(plan, desc=f"book ({mode})", unit="notebook", disable=not progress, file=sys.stderr)
    for nb, ipynb, p in bar:
        bar.set_postfix_str(nb.name)
        key = _reuse(nb, p, mode=mode, out_dir=out_dir, force=force, digest=digest, reused=reused, times=times)
        if nb.name in reused:
            continue
        times[nb.name] = execute(nb, ipynb, mode=mode, params=p, out_dir=out_dir, progress=progress, key=key)
        print(f"  {nb.name}: {times[nb.name]:.1f} s", file=sys.stderr, flush=True)
    return times


def _run_side_by_side(plan: list[tuple[Notebook, Path, dict[str, Any]]], groups: list[int], *, mode: str,
                      out_dir: Path, force: bool, reused: set[str], jobs: int, digest: str | None) -> dict[str, float]:
    """`_run` with up to `jobs` groups (`parts_of`) at a time, started in the book's order, a group's
    notebooks one after the other. Each notebook runs in a worker process (`execute` sets the
    notebook's name in that process's environment); a `run_alone` notebook starts when nothing
    else runs, and nothing starts beside it."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    queues: dict[int, deque] = {}
    for item, g in zip(plan, groups):
        queues.setdefault(g, deque()).append(item)
    waiting = deque(queues)                              # groups not started yet, in the book's order
    active: list[int] = []                               # groups started and not finished
    busy: dict[Any, tuple[int, Notebook]] = {}           # future -> (group, notebook)
    times: dict[str, float] = {}
    failure: RunnerError | None = None

    def ready(g: int):
        """Group g's next notebook that must be executed (unchanged ones are reused on the way), or None."""
        while queues[g]:
            nb, ipynb, p = queues[g][0]
            key = _reuse(nb, p, mode=mode, out_dir=out_dir, force=force, digest=digest, reused=reused, times=times)
            if nb.name in reused:
                queues[g].popleft()
                continue
            return nb, ipynb, p, key
        return None

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while True:
            changed = True
            while failure is None and changed:  # start whatever may start now
                changed = False
                while waiting and len(active) < jobs:
                    active.append(waiting.popleft())
                idle = [g for g in active if g not in {grp for grp, _ in busy.values()}]
                nexts = {g: ready(g) for g in idle}
                for g in [g for g in idle if nexts[g] is None]:
                    active.remove(g)  # finished: a slot for the next group
                    changed = True
                if changed:
                    continue
                alone = [g for g in idle if nexts[g][0].run_alone]
                if any(nb.run_alone for _, nb in busy.values()) or (alone and busy):
                    break  # a notebook that runs alone is running, or waits for the others to end
                for g in alone[:1] or idle:
                    nb, ipynb, p, key = nexts[g]
                    queues[g].popleft()
                    print(f"  {nb.name}: started{' (alone)' if nb.run_alone else ''}", file=sys.stderr, flush=True)
                    busy[pool.submit(execute, nb, ipynb, mode=mode, params=p, out_dir=out_dir, progress=False,
                                     key=key)] = (g, nb)
            if not busy:
                break
            done, _ = wait(busy, return_when=FIRST_COMPLETED)
            for f in done:
                g, nb = busy.pop(f)
                try:
                    times[nb.name] = f.result()
                except RunnerError as e:
                    failure = failure or e
                    print(f"  {nb.name}: failed", file=sys.stderr, flush=True)
                    continue
                print(f"  {nb.name}: {times[nb.name]:.1f} s", file=sys.stderr, flush=True)
    if failure is not None:
        raise failure
    return {nb.name: times[nb.name] for nb, _, _ in plan if nb.name in times}  # in the book's order


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", required=True, choices=MODES,
                   help="ci: generated benchmark at toy size on the CPU; full: the paper's setup on a GPU")
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="jupytext notebooks to run (default: every notebook of _toc.yml)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a parameter of the notebooks' `parameters` cell (repeatable)")
    p.add_argument("--out", type=Path, default=ROOT / "_build" / "executed",
                   help="where executed notebooks go (default: _build/executed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run up to N parts of _toc.yml side by side, each part's notebooks in order (default 1)")
    p.add_argument("--force", action="store_true",
                   help="execute every notebook, even one whose executed copy has the same inputs (ci mode)")


def parameters(pairs: list[list[str]] | list[tuple[str, str]]) -> dict[str, str]:
    """`-p NAME VALUE` pairs as a dict; a NAME given twice is refused (which one was meant?)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise RunnerError(f"-p {name} is given twice ({out[name]!r} and {value!r}); give each parameter once")
        out[name] = value
    return out


def main(args: argparse.Namespace) -> int:
    t0, since = time.perf_counter(), time.time()
    try:
        params = parameters(args.parameter)
        notebooks = args.notebooks or book_notebooks()
        reused: set[str] = set()
        times = run(notebooks, mode=args.mode, params=params, out_dir=args.out,
                    progress=not args.no_progress, force=args.force, reused=reused, jobs=args.jobs)
    except RunnerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    total = time.perf_counter() - t0
    summary = args.out / args.mode / "timings.json"
    try:
        old = read_json(summary) if summary.exists() else {}
    except ValueError:  # a damaged summary only loses old timings; the new ones are written whole
        print(f"warning: {summary} was not valid JSON; writing it anew", file=sys.stderr)
        old = {}
    old.update({k: round(v, 2) for k, v in times.items()})
    write_json(summary, old)  # atomic
    print(f"ran {len(times) - len(reused)} notebook(s), reused {len(reused)} unchanged, in {total:.1f} s; "
          f"executed notebooks in {args.out / args.mode}", file=sys.stderr)
    print("\n" + stages.summary(times, since=since, total=total, reused=reused), file=sys.stderr)
    return 0
