import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path | None:
    """A file of the project's read-only `shared/` folder, or None where there is none.

    CI places `shared/` beside the clone (`<repo>/../shared`); a git worktree may sit a level
    deeper, so every ancestor of the repository is tried, nearest first, after
    `$ACTIONBOOK_SHARED` and a `shared/` inside the checkout.
    """
    candidates = [Path(os.environ["ACTIONBOOK_SHARED"])] if os.environ.get("ACTIONBOOK_SHARED") else []
    candidates += [ROOT / "shared"] + [d / "shared" for d in ROOT.parents]
    for base in candidates:
        if (base / Path(*parts)).exists():
            return base / Path(*parts)
    return None


SHARED_HINT = ("not found in $ACTIONBOOK_SHARED, <repo>/shared or a shared/ folder beside the repository "
               "or one of its parents (CI places a read-only copy at <repo>/../shared)")


def pytest_collection_modifyitems(config, items):
    """Tests that read the executed ci book (the `executed_ci` and `ci_cache` fixtures) belong to
    `make check`, which runs after `make book`: they are marked `check` here, so `make test` (the
    unit and integration tests on tiny data) never builds the book. `gpu` tests need CUDA;
    without it they are skipped, never failed."""
    for item in items:
        if {"executed_ci", "ci_cache"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.check)
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def actionbook_cli(tmp_path):
    """Run `python -m actionbook ...` in a subprocess with results/caches under tmp_path."""
    import subprocess

    def run(*args, env=None):
        e = dict(os.environ)
        e.setdefault("ACTIONBOOK_RESULTS", str(tmp_path / "results"))
        e.setdefault("ACTIONBOOK_CACHE", str(tmp_path / "cache"))
        e.update(env or {})
        return subprocess.run([sys.executable, "-m", "actionbook", *map(str, args)], capture_output=True,
                              text=True, env=e, cwd=ROOT)

    return run


NOTEBOOK_HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A test notebook
"""


def write_notebook(path: Path, *cells: str, params: str = 'mode = "ci"\nseed = 0') -> Path:
    """A jupytext MyST notebook whose first code cell (tagged `parameters`) holds `params`."""
    body = [NOTEBOOK_HEADER]
    if params is not None:
        body.append("```{code-cell} ipython3\n:tags: [parameters]\n\n" + params + "\n```\n")
    for c in cells:
        body.append("```{code-cell} ipython3\n" + c + "\n```\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body))
    return path


# --------------------------------------------------------------------------- the book's ci notebooks, once per session

@pytest.fixture(scope="session")
def ci_cache():
    """The repository's cache folder with the cold-cache work of ci mode done: the ci pretraining
    and every chapter's features, built once per pytest session in this process. Bounded by work
    (a fixed number of videos and steps), never by a wall-clock timeout: a busy machine is slow,
    not wrong. `make book` then finds the cache warm."""
    from actionbook.experiments import mrrn as M
    from actionbook.experiments import relational_lstm as RL
    from actionbook.experiments import res_lstm as R
    from actionbook.paths import cache_dir

    R.features(R.config("ci"), progress=False)
    M.features(M.config("ci"), progress=False)
    RL.features(RL.config("ci"), progress=False)
    RL.multilabel_features(RL.config("ci"), progress=False)
    return cache_dir()


@pytest.fixture(scope="session")
def executed_ci(ci_cache):
    """`executed_ci("book/mrrn/experiments.md")` -> (executed .ipynb, results folder): runs the
    notebook in ci mode once per session, exactly as `make book` does (the repository's cache,
    `results/` and `_build/executed/`), and returns the same files to every test that asks. The
    runner's execution key (`runner.execution_key`) then lets `make book` reuse what the tests
    executed, and lets the tests reuse what an unchanged `make book` executed: the notebook runs
    again whenever its text, its parameters or any file of `src/actionbook` changed."""
    import subprocess

    from actionbook.paths import results_dir

    done: dict[str, tuple[Path, Path]] = {}
    out, res = ROOT / "_build" / "executed", results_dir()  # where `make book` executes and writes

    def run(notebook: str) -> tuple[Path, Path]:
        if notebook not in done:
            env = dict(os.environ, ACTIONBOOK_CACHE=str(ci_cache), ACTIONBOOK_RESULTS=str(res))
            r = subprocess.run([sys.executable, "-m", "actionbook", "run", "--mode", "ci", "--no-progress",
                                "--out", str(out), notebook], capture_output=True, text=True, env=env, cwd=ROOT)
            assert r.returncode == 0, f"{notebook} failed in ci mode:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            done[notebook] = (out / "ci" / Path(notebook).with_suffix(".ipynb"), res)
        return done[notebook]

    return run


def glued(ipynb: Path) -> dict:
    """The values a notebook glued (`myst_nb.glue`), by name, as Python values where they parse."""
    import ast
    import json

    out = {}
    for cell in json.loads(Path(ipynb).read_text())["cells"]:
        for o in cell.get("outputs", []):
            record = o.get("metadata", {}).get("scrapbook", {})
            if "name" not in record:
                continue
            name, prefix = record["name"], record.get("mime_prefix", "")
            text = o.get("data", {}).get(prefix + "text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            try:
                out[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                out[name] = text
    return out
