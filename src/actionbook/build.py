"""Build the HTML book from executed notebooks: `python -m actionbook build --mode ci`.

Jupyter Book never executes anything here (`execute_notebooks: off`): the runner has
already executed every notebook into `_build/executed/<mode>/`. This step stages a copy of
the book in `_build/stage/<mode>/` in which each jupytext source is replaced by its
executed `.ipynb`, adds MathJax to the book's own static files (the HTML needs no network),
and runs `jupyter-book build` with warnings as errors. The HTML lands in `_build/html/`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from actionbook import MODES
from actionbook.paths import ROOT
from actionbook.runner import RunnerError, is_notebook, resolve_source, toc_files

_COPY = ("_config.yml", "_toc.yml", "book", "references.bib", "_static")


def mathjax_dir() -> Path:
    """MathJax 2.7, shipped by the `jupyter-server-mathjax` package."""
    import jupyter_server_mathjax

    d = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (d / "MathJax.js").is_file():
        raise RunnerError(f"MathJax not found in {d}: reinstall with `make install`")
    return d


def stage(mode: str, *, root: Path = ROOT, executed: Path | None = None) -> Path:
    """Copy the book to `_build/stage/<mode>`, notebooks replaced by their executed copies."""
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
