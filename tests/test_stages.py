"""The stage log: what a cold build spent, one line per stage built, readable from several processes."""

import json
import multiprocessing as mp

import pytest

from actionbook import stages


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path))
    return tmp_path


def test_record_and_read_round_trip(cache):
    stages.record("features", "ci resnet18 rgb test", seconds=12.345, videos=80)
    rows = stages.read()
    assert len(rows) == 1
    assert rows[0]["stage"] == "features" and rows[0]["videos"] == 80 and rows[0]["seconds"] == 12.345
    assert stages.log_path() == cache / "stages.jsonl"


def test_an_unknown_stage_is_refused(cache):
    with pytest.raises(ValueError, match="stage must be one of"):
        stages.record("training", "x", seconds=1)


def test_read_since_keeps_only_later_rows(cache):
    stages.record("generate", "old", seconds=1)
    cut = json.loads(stages.log_path().read_text().splitlines()[0])["at"] + 1e-6
    stages.record("pretrain", "new", seconds=2)
    # the second row may share the first one's clock tick on a coarse clock: rewrite its time
    lines = stages.log_path().read_text().splitlines()
    second = json.loads(lines[1]) | {"at": cut + 1}
    stages.log_path().write_text(lines[0] + "\n" + json.dumps(second) + "\n")
    assert [r["name"] for r in stages.read(since=cut)] == ["new"]


def test_a_damaged_line_is_skipped_not_fatal(cache):
    stages.record("generate", "a", seconds=1)
    with stages.log_path().open("a") as f:
        f.write('{"stage": "feat\n')  # a torn write
    stages.record("generate", "b", seconds=2)
    assert [r["name"] for r in stages.read()] == ["a", "b"]


def test_timed_records_only_a_block_that_ends_normally(cache):
    with stages.timed("features", "kept") as info:
        info["videos"] = 3
    with stages.timed("features", "skipped") as info:
        info["skip"] = True
    with pytest.raises(RuntimeError), stages.timed("features", "failed"):
        raise RuntimeError("boom")
    rows = stages.read()
    assert [r["name"] for r in rows] == ["kept"] and rows[0]["videos"] == 3


def _append(i: int) -> None:
    for j in range(50):
        stages.record("features", f"p{i}-{j}" + "x" * 200, seconds=j)


def test_appends_from_several_processes_do_not_interleave(cache):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append, args=(i,)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    lines = stages.log_path().read_text().splitlines()
    assert len(lines) == 150 and all(json.loads(line)["stage"] == "features" for line in lines)


def test_summary_lists_notebooks_and_the_stages_built(cache):
    stages.record("features", "ci resnet18 rgb test", seconds=40.0)
    stages.record("generate", "benchmark ci-seed0", seconds=20.0)
    text = stages.summary({"book/a": 100.0, "book/b": 5.5}, since=0, total=110.0)
    assert "book/a" in text and "105.5" in text and "110.0" in text
    assert "features: ci resnet18 rgb test" in text and "all generate" in text and "20.0" in text
    empty = stages.summary({"book/a": 1.0}, since=stages.read()[-1]["at"] + 1)
    assert "no stage was built" in empty
