"""The papermill runner: parameters are checked before anything runs, injected values reach
the notebook, failures name the notebook and the cell."""

import json

import pandas as pd
import pytest

from actionbook import runner
from conftest import write_notebook

SAVE = """
import pandas as pd
from actionbook import results
results.save(pd.DataFrame({"seed": [seed], "tag": [tag], "mode": [mode]}), mode=mode,
             chapter="test", experiment="params", seed=seed, config={"tag": tag})
"""


@pytest.mark.notebooks
def test_run_injects_parameters_and_writes_results(tmp_path, actionbook_cli):
    nb = write_notebook(tmp_path / "nb.md", SAVE, params='mode = "ci"\nseed = 0\ntag = "default"')
    out = tmp_path / "executed"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = actionbook_cli("run", "--mode", "ci", nb, "-p", "seed", "3", "-p", "tag", "007", "--out", out,
                       "--no-progress", env={"TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    assert not list(tmp.glob("actionbook-run-*"))  # the converted notebooks' folder is removed
    csv = tmp_path / "results" / "ci" / "test" / "params.csv"
    df = pd.read_csv(csv, dtype={"tag": str})
    assert df.loc[0, "seed"] == 3 and df.loc[0, "tag"] == "007" and df.loc[0, "mode"] == "ci"
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["seed"] == 3 and meta["config"] == {"tag": "007"} and meta["mode"] == "ci"
    assert meta["entry"].endswith("nb.md")
    assert (out / "ci" / "nb.ipynb").is_file()
    assert "nb" in json.loads((out / "ci" / "timings.json").read_text())


@pytest.mark.notebooks
def test_failing_cell_names_notebook_and_cell(tmp_path, actionbook_cli):
    nb = write_notebook(tmp_path / "broken.md", "x = 1", "raise ValueError('boom at step 2')")
    out = tmp_path / "executed"
    r = actionbook_cli("run", "--mode", "ci", nb, "--out", out, "--no-progress")
    assert r.returncode != 0
    assert "broken.md" in r.stderr and "boom at step 2" in r.stderr and "ValueError" in r.stderr
    assert "raise ValueError" in r.stderr  # the failing cell's first line
    assert (out / "ci" / "broken.failed.ipynb").is_file()
    assert not (out / "ci" / "broken.ipynb").exists()


@pytest.mark.notebooks
def test_the_kernel_is_stopped_after_the_last_cell_not_torn_down(tmp_path, actionbook_cli):
    # What a cell writes is there; what would only happen at the interpreter's exit does not
    # (runner.execute stops the kernel: `shutdown_kernel="immediate"`, 2-3 s a notebook saved).
    cell = (f"import atexit, pathlib\n"
            f"pathlib.Path({str(tmp_path / 'in_cell')!r}).write_text('written')\n"
            f"atexit.register(pathlib.Path({str(tmp_path / 'at_exit')!r}).write_text, 'written')")
    nb = write_notebook(tmp_path / "exit.md", cell)
    r = actionbook_cli("run", "--mode", "ci", nb, "--out", tmp_path / "executed", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "in_cell").read_text() == "written"
    assert not (tmp_path / "at_exit").exists()


def test_bogus_mode_is_refused_naming_valid_modes(actionbook_cli):
    r = actionbook_cli("run", "--mode", "bogus")
    assert r.returncode != 0
    assert "'ci'" in r.stderr and "'full'" in r.stderr


def test_unknown_parameter_refused_before_anything_runs(tmp_path, actionbook_cli):
    first = write_notebook(tmp_path / "a.md", SAVE, params='mode = "ci"\nseed = 0\ntag = "x"')
    second = write_notebook(tmp_path / "b.md", "pass")  # has no `tag`
    out = tmp_path / "executed"
    r = actionbook_cli("run", "--mode", "ci", first, second, "-p", "tag", "y", "--out", out)
    assert r.returncode != 0
    assert "unknown parameter 'tag'" in r.stderr and "b.md" in r.stderr and "seed" in r.stderr
    assert not out.exists(), "nothing may run when a parameter is refused"
    assert not (tmp_path / "results").exists()


def test_no_such_param(tmp_path, actionbook_cli):
    nb = write_notebook(tmp_path / "a.md", "pass")
    r = actionbook_cli("run", "--mode", "ci", nb, "-p", "no_such_param", "1", "--out", tmp_path / "o")
    assert r.returncode != 0 and "no_such_param" in r.stderr


@pytest.mark.parametrize("value, default, ok", [
    ("3", 0, True), ("abc", 0, False), ("0.5", 0, False), ("true", 0, False),
    ("3", 0.1, True), ("x", 0.1, False), ("true", False, True), ("1", False, False),
    ("0012", "s", True), ("[1, 2]", [3], True), ("1", [3], False), ("anything", None, True),
])
def test_parameter_types_checked(tmp_path, value, default, ok):
    nb = runner.Notebook(tmp_path / "n.md", "n", {"mode": "ci", "p": default})
    if ok:
        got = runner.check_parameters(nb, {"p": value})["p"]
        if isinstance(default, str):
            assert got == value  # strings stay exactly as typed
        elif isinstance(default, float):
            assert isinstance(got, float)
    else:
        with pytest.raises(runner.RunnerError, match="expects a"):
            runner.check_parameters(nb, {"p": value})


def test_mode_must_not_be_a_p_parameter(tmp_path):
    nb = write_notebook(tmp_path / "a.md", "pass")
    with pytest.raises(runner.RunnerError, match="--mode"):
        runner.run([nb], mode="ci", params={"mode": "full"}, out_dir=tmp_path / "o", progress=False)


def test_notebook_without_parameters_cell(tmp_path):
    nb = write_notebook(tmp_path / "a.md", "pass", params=None)
    with pytest.raises(runner.RunnerError, match="tagged `parameters`"):
        runner.run([nb], mode="ci", params={}, out_dir=tmp_path / "o", progress=False)


def test_parameters_cell_without_mode(tmp_path):
    nb = write_notebook(tmp_path / "a.md", "pass", params="seed = 0")
    with pytest.raises(runner.RunnerError, match="does not define `mode`"):
        runner.run([nb], mode="ci", params={}, out_dir=tmp_path / "o", progress=False)


def test_plain_markdown_is_not_a_notebook(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Just prose\n\nNo code here.\n")
    assert not runner.is_notebook(page)
    assert runner.is_notebook(write_notebook(tmp_path / "nb.md", "pass"))
    with pytest.raises(runner.RunnerError, match="not a jupytext notebook"):
        runner.run([page], mode="ci", params={}, out_dir=tmp_path / "o", progress=False)


def test_toc_walk_in_reading_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n      - file: a/one\n"
        "        sections:\n          - file: a/two\n  - caption: B\n    chapters:\n      - file: b\n")
    assert runner.toc_files(tmp_path) == ["intro", "a/one", "a/two", "b"]
    with pytest.raises(runner.RunnerError, match="a/one"):
        runner.resolve_source("a/one", tmp_path)


@pytest.mark.notebooks
def test_run_ends_with_a_table_of_notebooks_and_stages_built(tmp_path, actionbook_cli):
    """`make book` ends by saying where its time went: each notebook, and each cached stage the
    notebooks built (here a stand-in stage recorded from inside the notebook's kernel)."""
    code = 'from actionbook import stages\nstages.record("features", "stand-in feature set", seconds=1.5)'
    nb = write_notebook(tmp_path / "timed.md", code, params='mode = "ci"')
    r = actionbook_cli("run", "--mode", "ci", nb, "--out", tmp_path / "executed", "--no-progress")
    assert r.returncode == 0, r.stderr
    table = r.stderr[r.stderr.index("notebook "):]
    assert "timed" in table and "features: stand-in feature set" in table and "all features" in table
    again = actionbook_cli("run", "--mode", "ci", nb, "--out", tmp_path / "executed", "--no-progress", "--force")
    assert again.stderr.count("stand-in feature set") == 1  # only the stages built during this run


COUNT = """
from pathlib import Path
from actionbook import results
import pandas as pd
log = Path(log_file)
log.write_text(log.read_text() + "x" if log.exists() else "x")  # one x per execution
results.save(pd.DataFrame({"tag": [tag]}), mode=mode, chapter="test", experiment="count", seed=0, config={})
"""


@pytest.mark.notebooks
def test_unchanged_notebook_is_reused_and_any_change_executes_it_again(tmp_path, actionbook_cli):
    """ci mode's execution cache: the same notebook with the same inputs runs once; its
    parameters, an altered result and its text each make it run again (`--force` does too:
    test_run_ends_with_a_table_of_notebooks_and_stages_built)."""
    log = tmp_path / "log.txt"
    nb = write_notebook(tmp_path / "count.md", COUNT, params=f'mode = "ci"\ntag = "a"\nlog_file = "{log}"')
    out = tmp_path / "executed"

    def run(*extra):
        r = actionbook_cli("run", "--mode", "ci", nb, "--out", out, "--no-progress", *extra)
        assert r.returncode == 0, r.stderr
        return r

    run()
    assert log.read_text() == "x"
    r = run()
    assert log.read_text() == "x" and "ran 0 notebook(s), reused 1" in r.stderr  # nothing changed
    assert "count (reused)" in r.stderr  # the timing table says so
    run("-p", "tag", "b")
    assert log.read_text() == "xx"  # another parameter value
    csv = tmp_path / "results" / "ci" / "test" / "count.csv"
    csv.write_text(csv.read_text() + "tampered\n")
    run("-p", "tag", "b")
    assert log.read_text() == "xxx" and "tampered" not in csv.read_text()  # a result it wrote was altered
    nb.write_text(nb.read_text().replace("one x per execution", "one x per run"))
    run("-p", "tag", "b")
    assert log.read_text() == "xxxx"  # the notebook's text changed


def test_execution_key_sees_the_package_parameters_and_folders(tmp_path, monkeypatch):
    nb = write_notebook(tmp_path / "k.md", "pass", params='mode = "ci"\nseed = 0')
    book = runner.Notebook(nb, "k")
    key = runner.execution_key(book, mode="ci", params={}, digest="a")
    assert key == runner.execution_key(book, mode="ci", params={}, digest="a")
    assert key != runner.execution_key(book, mode="ci", params={}, digest="b")  # a file of src/ changed
    assert key != runner.execution_key(book, mode="ci", params={"seed": 1}, digest="a")
    monkeypatch.setenv("ACTIONBOOK_RESULTS", str(tmp_path / "elsewhere"))
    assert key != runner.execution_key(book, mode="ci", params={}, digest="a")
    assert len(runner.package_digest()) == 64


def test_toc_parts_group_a_part_s_chapters_and_sections(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n      - file: a/one\n"
        "        sections:\n          - file: a/two\n      - file: a/three\n  - caption: B\n    chapters:\n      - file: b\n")
    assert runner.toc_parts(tmp_path) == [["intro"], ["a/one", "a/two", "a/three"], ["b"]]
    for name in ("a/one", "a/two", "b"):
        (tmp_path / f"{name}.md").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{name}.md").write_text("x")
    outside = tmp_path / "elsewhere.md"
    assert runner.parts_of([tmp_path / "b.md", tmp_path / "a/two.md", outside, tmp_path / "a/one.md"],
                           tmp_path) == [2, 1, 3, 1]


def test_the_book_s_timing_pages_run_alone():
    """The pages that time models say so, and `--jobs` then runs nothing beside them."""
    alone = {runner._display_name(p) for p in runner.book_notebooks() if runner.runs_alone(p)}
    assert alone == {"book/mrrn/method", "book/mrrn/speed"}


MARK = """
import time
from pathlib import Path
log = Path(log_file)
def mark(what):
    with open(log, "a") as f:
        f.write(f"{what} {name}\\n")
mark("start")
(log.parent / f"{name}.started").touch()
for _ in range(3000):  # bounded: at most 300 s (a busy machine), then it goes on and the test says why
    if wait_for == "" or (log.parent / f"{wait_for}.started").exists():
        break
    time.sleep(0.1)
mark("end")
"""


@pytest.mark.notebooks
def test_jobs_run_parts_side_by_side_and_a_run_alone_notebook_alone(tmp_path, actionbook_cli):
    """With --jobs 2, two notebooks of different parts overlap: each waits (bounded) until the
    other has started, which one after the other could not do. A `run_alone` notebook starts only
    when nothing else runs, and nothing starts before it ends."""
    log = tmp_path / "log.txt"

    def nb(name, wait_for="", alone=False):
        path = write_notebook(tmp_path / f"{name}.md", MARK,
                              params=f'mode = "ci"\nname = "{name}"\nwait_for = "{wait_for}"\nlog_file = "{log}"')
        if alone:
            path.write_text(path.read_text().replace(
                "kernelspec:", "actionbook:\n  run_alone: true\nkernelspec:", 1))
        return path

    a, b = nb("a", wait_for="b"), nb("b", wait_for="a")
    c = nb("c", alone=True)
    d = nb("d")
    r = actionbook_cli("run", "--mode", "ci", "--jobs", "2", a, b, c, d, "--out", tmp_path / "out", "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = log.read_text().split()
    events = [" ".join(lines[i:i + 2]) for i in range(0, len(lines), 2)]
    assert events.index("start b") < events.index("end a") and events.index("start a") < events.index("end b")
    i = events.index("start c")
    assert events[i + 1] == "end c"                                  # nothing started or ended while c ran
    assert {"end a", "end b"} <= set(events[:i])                     # c started after the others ended
    assert events[-2:] == ["start d", "end d"]
    timings = json.loads((tmp_path / "out" / "ci" / "timings.json").read_text())
    assert set(timings) == {"a", "b", "c", "d"}


@pytest.mark.notebooks
def test_jobs_a_failure_side_by_side_names_the_notebook_and_the_cell(tmp_path, actionbook_cli):
    bad = write_notebook(tmp_path / "bad.md", "raise ValueError('boom side by side')")
    later = write_notebook(tmp_path / "later.md", "pass")
    r = actionbook_cli("run", "--mode", "ci", "--jobs", "2", bad, later, "--out", tmp_path / "out",
                       "--no-progress")
    assert r.returncode != 0
    assert "bad.md" in r.stderr and "boom side by side" in r.stderr
    assert (tmp_path / "out" / "ci" / "bad.failed.ipynb").is_file()
    assert (tmp_path / "out" / "ci" / "later.ipynb").is_file()  # what ran beside it finished
