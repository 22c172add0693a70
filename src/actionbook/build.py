"""Build the HTML book from executed notebooks: `python -m actionbook build --mode ci`.

Jupyter Book never executes anything here (`execute_notebooks: off`): the runner has
already executed every notebook into `_build/executed/<mode>/`. This step stages a copy of
the book in `_build/stage/<mode>/` in which each jupytext source is replaced by its
executed `.ipynb`, adds MathJax to the book's own static files (the HTML needs no network),
and runs `jupyter-book build` with warnings as errors. The HTML lands in `_build/html/`.

Committed full-mode results: when `results/full/<chapter>/*.csv` exist (with the `.json`
provenance `results.save` writes), a ci build adds a page `book/<chapter>/full_results` to that
chapter (or, for a chapter the table of contents does not have, to a closing part), showing
each full-mode table beside its ci counterpart, each with commit, dataset, split, hardware and
date. The chapters save each table they show beside the paper's as `<experiment>_vs_paper`, so
the page has the paper's numbers too. Nothing is added when there are none.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from actionbook import MODES
from actionbook.io import atomic_write, read_json
from actionbook.paths import ROOT, results_dir
from actionbook.results import markdown_table, provenance
from actionbook.runner import RunnerError, is_notebook, resolve_source, toc_files

_COPY = ("_config.yml", "_toc.yml", "book", "references.bib", "_static")


def mathjax_dir() -> Path:
    """MathJax 2.7, shipped by the `jupyter-server-mathjax` package."""
    import jupyter_server_mathjax

    d = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (d / "MathJax.js").is_file():
        raise RunnerError(f"MathJax not found in {d}: reinstall with `make install`")
    return d


FULL_PAGE = "full_results"


def _provenance_lines(meta: dict) -> str:
    p = provenance(meta)
    return (f"commit {p['commit']} · dataset: {p['dataset']} · split: {p['split']} · hardware: "
            f"{p['hardware']} · date: {p['date']} · seeds: {p['seeds']}")


def full_results_page(chapter: str, results: Path) -> str | None:
    """The Markdown of a chapter's "Full-mode results" page, or None if it has none.

    `results` is the results folder (`results/`): every `full/<chapter>/<name>.csv` with its
    `.json` is shown, followed by `ci/<chapter>/<name>.csv` where that exists.
    """
    folder = results / "full" / chapter
    tables = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not tables:
        return None
    parts = [f"# Full-mode results: {chapter}", "",
             "These tables were computed in `full` mode (the paper's dataset, backbone and "
             "hyper-parameters, on a GPU) and committed under "
             f"`results/full/{chapter}/`; they are shown as they were written, not recomputed by "
             "this build. Beside each is the table of the same name from this build's `ci` run "
             "(the generated benchmark), when there is one. A table whose name ends in `_vs_paper` "
             "sets the paper's own numbers (columns named `paper: ...`) beside ours, as the "
             "chapter's pages do; every table states where it was computed.", ""]
    for csv in tables:
        meta_path = csv.with_suffix(".json")
        if not meta_path.is_file():
            raise RunnerError(f"{csv} has no provenance file {meta_path.name}: results/full tables must be "
                              f"written by actionbook.results.save (which writes both), or removed")
        parts += [f"## {csv.stem}", "", f"**full mode**: {_provenance_lines(read_json(meta_path))}", "",
                  markdown_table(pd.read_csv(csv)), ""]
        ci = results / "ci" / chapter / csv.name
        if ci.is_file() and ci.with_suffix(".json").is_file():
            parts += [f"**ci mode** (this build): {_provenance_lines(read_json(ci.with_suffix('.json')))}", "",
                      markdown_table(pd.read_csv(ci)), ""]
        else:
            parts += ["*No ci table of this name in this build.*", ""]
    return "\n".join(parts)


def add_full_results(dest: Path, results: Path) -> list[str]:
    """Write a `book/<chapter>/full_results.md` into the staged book `dest` for every chapter with
    committed full-mode results and list it in the staged `_toc.yml`; return the pages added."""
    full = results / "full"
    chapters = sorted(d.name for d in full.iterdir() if d.is_dir()) if full.is_dir() else []
    toc_path = dest / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())
    added, orphans = [], []
    for chapter in chapters:
        page = full_results_page(chapter, results)
        if page is None:
            continue
        entry = f"book/{chapter}/{FULL_PAGE}"
        with atomic_write(dest / f"{entry}.md") as f:
            f.write(page)
        added.append(entry)
        host = next((c for part in toc.get("parts", []) for c in part.get("chapters", [])
                     if c.get("file") == f"book/{chapter}/index"), None)
        if host is not None:
            host.setdefault("sections", []).append({"file": entry})
        else:
            orphans.append({"file": entry})
    if orphans:
        toc.setdefault("parts", []).append({"caption": "Full-mode results", "chapters": orphans})
    if added:
        with atomic_write(toc_path) as f:
            yaml.safe_dump(toc, f, sort_keys=False)
    return added


def stage(mode: str, *, root: Path = ROOT, executed: Path | None = None, results: Path | None = None) -> Path:
    """Copy the book to `_build/stage/<mode>`, notebooks replaced by their executed copies; in ci
    mode add the committed full-mode results (`add_full_results`). `results` defaults to
    `results_dir()` for this repository and to `<root>/results` for another root."""
    executed = executed or root / "_build" / "executed"
    dest = root / "_build" / "stage" / mode
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in _COPY:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
    missing = []
    for entry in toc_files(root):
        source = resolve_source(entry, root)
        if not is_notebook(source):
            continue
        rel = source.relative_to(root)
        done = executed / mode / rel.with_suffix(".ipynb")
        if not done.is_file():
            missing.append(str(rel))
            continue
        (dest / rel).unlink()
        shutil.copy2(done, dest / rel.with_suffix(".ipynb"))
    if missing:
        raise RunnerError(f"not executed in {mode} mode yet: {', '.join(missing)}; run "
                          f"`python -m actionbook run --mode {mode}` first (or `make book`)")
    if mode == "ci":
        add_full_results(dest, results or (results_dir() if root == ROOT else root / "results"))
    # Not under _static/: Jupyter Book would add every .js file found there to every page.
    # `_config.yml` names `_mathjax` in html_static_path, so this lands in _static/mathjax.
    shutil.copytree(mathjax_dir(), dest / "_mathjax" / "mathjax")
    return dest


def build(mode: str, *, root: Path = ROOT, strict: bool = True) -> Path:
    """Stage and build; return the path of `index.html`."""
    src = stage(mode, root=root)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--path-output", str(root), "--all"]
    if strict:
        cmd += ["-W", "--keep-going"]
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise RunnerError(f"jupyter-book build failed (exit {r.returncode}); see the warnings above")
    index = root / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RunnerError(f"the build finished but {index} is missing")
    return index


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="ci",
                   help="which executed notebooks to build from (default: ci)")
    p.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")


def main(args: argparse.Namespace) -> int:
    try:
        index = build(args.mode, strict=not args.no_strict)
    except RunnerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"book built: {index}", file=sys.stderr)
    return 0
