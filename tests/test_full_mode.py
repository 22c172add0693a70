"""Full mode, end to end, on this machine (issue 14): every chapter notebook executed with
`mode="full"` on stand-in data in the official layouts and on weight files of the right
architectures under torchvision's official names.

What runs is full mode's own code path: the real dataset readers on `$ACTIONBOOK_DATA/ucf101`
(and `hmdb51`), TV-L1 flow and the 10-crop features at the real datasets' 320 x 240, the
torchvision backbones loaded from `$TORCH_HOME/hub/checkpoints/<official file name>`, the
paper's model sizes, PCA widths and optimisers, and the full-mode run cache. It is shrunk only
through the notebooks' own parameters, which a reader can pass too (`SMOKE_PARAMETERS`: one
epoch, one seed), and through the data: two classes, one training and one test video each, of
six frames (TV-L1 and the 10-crop 3D CNN are slow on a CPU; a video shorter than a clip is
looped, as the papers prescribe, so every clip still has its paper length).

Nothing here is a result: the weights are random (`backbones.save_random_weights`), the videos
are the generated benchmark's scenes under UCF-101 / HMDB-51 class names
(`actionbook.data.layouts`), and every output goes to a temporary folder, never to the
repository's `results/full/`.

Which notebooks: `runner.full_mode_notebooks()`, i.e. every notebook of `_toc.yml` whose
parameters cell has `mode` and `dataset`. A new chapter is smoked as soon as its pages are in
`_toc.yml` with the parameter CONTRACT (`mode`, `dataset`, and `epochs`, `seed`, `seeds` where
they train); nothing here needs to change. Pages without `dataset` (the MRRN method and speed
pages time models on random inputs) have no full-mode data path and are not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from actionbook import runner
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.notebooks, pytest.mark.check]  # `make check`

# Real class names: the chapters look up their categories (UCF-101's action types, HMDB-51's groups).
UCF101_CLASSES = ["ApplyEyeMakeup", "Archery"]      # Human-Object Interaction, Sports
HMDB51_CLASSES = ["brush_hair", "cartwheel"]        # body movements with / without an object
CHARADES_CLASSES = ["Holding some clothes", "Putting clothes somewhere", "Taking a picture of something"]
FRAMES = 6  # per video (looped into 16- and 30-frame clips); TV-L1 at 320 x 240 costs per frame pair
# Shrunk only through parameters a reader could pass: each is given to the notebooks that have it.
SMOKE_PARAMETERS = {"epochs": 1, "seeds": 1}

NOTEBOOKS = runner.full_mode_notebooks(ROOT)
NAMES = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]
# Every page above runs on its default dataset: UCF-101 (the chapters' default), Charades for the
# Relational LSTM's Table 8 page (multi-label: its default, so its first run reads the Charades stand-in). The other layouts run through the pages
# listed here, each with `-p dataset NAME` (the 10-crop features of a whole chapter cost minutes per
# dataset on a CPU, so not every page runs on every layout). A new chapter that reads HMDB-51 or
# Charades adds one of its pages here: one line.
OTHER_DATASETS = {
    "hmdb51": ["book/res_lstm/method.md", "book/mrrn/experiments.md"],
    "charades": [],
}


def _git_head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def full_env(tmp_path_factory):
    """Folders and environment of a full-mode run: stand-in datasets in the official layouts and
    random weights under the official file names. Weight files and run caches are removed
    afterwards (GBs)."""
    from actionbook.data import layouts
    from actionbook.features import backbones as B

    base = tmp_path_factory.mktemp("full")
    env = dict(os.environ, ACTIONBOOK_DATA=str(base / "data"), ACTIONBOOK_CACHE=str(base / "cache"),
               ACTIONBOOK_RESULTS=str(base / "results"), TORCH_HOME=str(base / "torch"))
    layouts.write_ucf101(base / "data" / "ucf101", classes=UCF101_CLASSES, train=1, test=1, frames=FRAMES)
    layouts.write_hmdb51(base / "data" / "hmdb51", classes=HMDB51_CLASSES, train=1, test=1, frames=FRAMES)
    layouts.write_charades(base / "data" / "charades", classes=CHARADES_CLASSES, train=2, test=2, frames=12)
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = env["TORCH_HOME"]  # torch.hub.get_dir() reads it
    try:
        for name in B.SPECS:  # every architecture any chapter may load in full mode
            B.save_random_weights(name)
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old
    yield {"base": base, "env": env, "head": _git_head()}  # the commit the notebooks will record
    # The paper-size models' checkpoints fill GBs (a Relational LSTM run keeps ~190 MB): only the
    # executed notebooks and results stay, to be looked at after a failure.
    for folder in [base / "torch", *base.glob("cache*")]:
        shutil.rmtree(folder, ignore_errors=True)


def _run(notebook: Path, env: dict, out: Path, **extra) -> subprocess.CompletedProcess:
    """`python -m actionbook run --mode full` on one notebook, with the smoke parameters it has."""
    params = runner.notebook_parameters(notebook)
    given = {k: v for k, v in {**SMOKE_PARAMETERS, **extra}.items() if k in params}
    args = [a for k, v in given.items() for a in ("-p", k, str(v))]
    return subprocess.run([sys.executable, "-m", "actionbook", "run", "--mode", "full", "--no-progress",
                           "--out", str(out), *args, str(notebook)], capture_output=True, text=True, env=env,
                          cwd=ROOT)


def _run_all(env: dict, out: Path, names: list[str] = NAMES, **extra) -> dict[str, subprocess.CompletedProcess]:
    return {name: _run(ROOT / name, env, out, **extra) for name in names}


def _trains(name: str) -> bool:
    """A page that trains has a `seeds` parameter (the CONTRACT)."""
    return "seeds" in runner.notebook_parameters(ROOT / name)


def _runs(cache: Path) -> dict[str, dict[str, int]]:
    """Every run folder of the run cache: file name -> mtime_ns."""
    return {str(d.relative_to(cache)): {f.name: f.stat().st_mtime_ns for f in d.iterdir() if f.is_file()}
            for d in sorted((cache / "runs").glob("*/*")) if d.is_dir()}


@pytest.fixture(scope="module")
def first_run(full_env):
    """Every chapter notebook once, in reading order (a failure does not stop the others)."""
    done = _run_all(full_env["env"], full_env["base"] / "executed")
    return {"procs": done, "runs": _runs(full_env["base"] / "cache")}


def test_the_chapters_are_found():
    """Discovery must find the built chapters' notebooks (and nothing without a dataset)."""
    assert {"book/res_lstm/ablations.md", "book/res_lstm/analysis.md", "book/mrrn/experiments.md",
            "book/relational_lstm/multilabel.md"} <= set(NAMES)
    # the Table 8 page's default dataset is Charades: the first run reads the Charades stand-in
    assert runner.notebook_parameters(ROOT / "book/relational_lstm/multilabel.md")["dataset"] == "charades"
    assert "book/mrrn/speed.md" not in NAMES and "book/intro.md" not in NAMES
    for pages in OTHER_DATASETS.values():
        assert set(pages) <= set(NAMES), f"not a full-mode page: {set(pages) - set(NAMES)}"
    for nb in NOTEBOOKS:
        params = runner.notebook_parameters(nb)
        if "seeds" in params:  # a page that trains follows the CONTRACT
            assert {"seed", "epochs"} <= set(params), f"{nb}: a training page needs `seed` and `epochs` parameters"
            assert params["epochs"] is None, f"{nb}: epochs = None (the configuration's schedule) by default"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_end_to_end_in_full_mode(first_run, full_env, name):
    r = first_run["procs"][name]
    assert r.returncode == 0, f"{name} failed in full mode:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    executed = full_env["base"] / "executed" / "full" / Path(name).with_suffix(".ipynb")
    cells = json.loads(executed.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors and len(cells) > 3
    # no progress bar became part of the page (MRRN's full preset once printed one per epoch and run)
    streams = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", [])
                      if o.get("output_type") == "stream")
    assert "it/s]" not in streams and "s/it]" not in streams, streams[-500:]


def test_results_carry_full_mode_provenance(first_run, full_env):
    from actionbook.results import provenance

    results = full_env["base"] / "results"
    assert not (results / "ci").exists(), "a full-mode run wrote ci results"
    metas = sorted((results / "full").glob("*/*.json"))
    head = full_env["head"]
    entries = set()
    for path in metas:
        meta = json.loads(path.read_text())
        assert meta["mode"] == "full" and meta["commit"] == head, path
        assert meta["config"]["mode"] == "full", path
        assert Path(meta["config"]["dataset"]).parent == full_env["base"] / "data", path  # the real-layout folder
        p = provenance(meta)
        assert "not recorded" not in (p["dataset"], p["split"]) and p["seeds"] == "0", (path, p)
        assert p["hardware"].startswith("CPU only") or "gpu" in meta["hardware"], (path, p)
        assert meta["written_at"] and meta["versions"]["torch"], path
        assert path.with_suffix(".csv").is_file() and len(pd.read_csv(path.with_suffix(".csv"))), path
        entries.add(str(Path(meta["entry"]).resolve().relative_to(ROOT)))
    # every page that trains wrote full-mode results
    training = {n for n in NAMES if _trains(n)}
    assert training and training <= entries, training - entries
    assert first_run["runs"], "no run reached the run cache"
    # what full mode wrote is what the book's full-mode page renders (build.full_results_page)
    from actionbook.build import full_results_page

    for chapter in sorted(d.name for d in (results / "full").iterdir()):
        page = full_results_page(chapter, results)
        assert page.count("**full mode**: commit " + head[:10]) == len(list((results / "full" / chapter).glob("*.csv")))
        assert "_vs_paper" in page and "paper" in page


def _resumed() -> list[str]:
    """The notebooks run again by the resume test: each chapter's first page that trains. Every
    chapter trains through one `chapter.RunCache` (its resume is unit-tested in test_chapter.py);
    this pass checks it end to end in full mode, once per chapter, not once per page (each page
    costs a kernel, its imports and its features' loading again)."""
    first: dict[str, str] = {}
    for name in NAMES:
        if _trains(name):
            first.setdefault(str(Path(name).parent), name)
    return list(first.values())


def test_second_run_resumes_from_the_full_mode_checkpoints(first_run, full_env):
    """Every run's test result is removed, its checkpoint kept (as if killed after its last
    epoch): running each chapter's first training page again evaluates its checkpoints, trains
    nothing and writes the same numbers."""
    base, cache = full_env["base"], full_env["base"] / "cache"
    before = first_run["runs"]
    assert before and all("last.pt" in files and "result.pt" in files for files in before.values()), before
    tables = {p: pd.read_csv(p) for p in (base / "results" / "full").glob("*/*.csv")}
    for run in before:
        (cache / run / "result.pt").unlink()
    pages = _resumed()
    assert {str(Path(n).parent) for n in pages} == {str(Path(n).parent) for n in NAMES if _trains(n)}
    again = _run_all(full_env["env"], base / "executed-again", pages)
    for name, r in again.items():
        assert r.returncode == 0, f"{name} failed when run again:\n{r.stderr[-4000:]}"
    after = _runs(cache)
    assert set(after) == set(before), "the second run trained runs the first did not"
    for run, files in before.items():  # nothing retrained, whether its page ran again or not
        assert after[run]["last.pt"] == files["last.pt"], f"{run}: the checkpoint was rewritten (retrained)"
    evaluated = {run for run, files in after.items() if "result.pt" in files}
    # every chapter's page evaluated runs of its chapter again (run folders are runs/<chapter>/<key>)
    assert {Path(run).parts[1] for run in evaluated} >= {Path(n).parent.name for n in pages}, evaluated
    for path, old in tables.items():  # the same numbers from the same checkpoints
        new = pd.read_csv(path)
        cols = [c for c in old.columns if "accuracy" in c or c in ("effect", "verdict", "top5")]
        pd.testing.assert_frame_equal(old[cols], new[cols], obj=str(path))


@pytest.mark.parametrize("dataset", [d for d, pages in OTHER_DATASETS.items() if pages])
def test_the_other_layouts_run_in_full_mode(full_env, dataset):
    """HMDB-51 (and Charades, where a chapter reads it) through their pages, in their own cache and
    results folders."""
    base = full_env["base"]
    env = dict(full_env["env"], ACTIONBOOK_CACHE=str(base / f"cache-{dataset}"),
               ACTIONBOOK_RESULTS=str(base / f"results-{dataset}"))
    done = _run_all(env, base / f"executed-{dataset}", OTHER_DATASETS[dataset], dataset=dataset)
    for name, r in done.items():
        assert r.returncode == 0, f"{name} failed in full mode on {dataset}:\n{r.stderr[-4000:]}"
    for path in (base / f"results-{dataset}" / "full").glob("*/*.json"):
        meta = json.loads(path.read_text())
        assert Path(meta["config"]["dataset"]) == base / "data" / dataset, path
        assert meta["config"]["layout"] == dataset, path
    if any(_trains(n) for n in OTHER_DATASETS[dataset]):
        assert list((base / f"results-{dataset}" / "full").glob("*/*.csv")), f"no results on {dataset}"
