"""The chapter skeleton (`actionbook.experiments.chapter`): the adapter, the run cache, outcomes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from actionbook import engine
from actionbook.experiments import chapter
from actionbook.seed import seed_everything


def _data(n: int = 16, T: int = 3, D: int = 4, C: int = 2, seed: int = 0) -> tuple[list[torch.Tensor], list[int]]:
    g = torch.Generator().manual_seed(seed)
    y = [i % C for i in range(n)]
    x = [torch.randn(T, D, generator=g) + 2 * y[i] for i in range(n)]  # (T, D) per video
    return x, y


class _Mean(nn.Module):
    def __init__(self, D: int = 4, C: int = 2) -> None:
        super().__init__()
        self.fc = nn.Linear(D, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(1))  # (B, T, D) -> (B, C)


@dataclass(frozen=True)
class _Key:
    name: str
    seed: int


def test_video_features_one_item_per_video_and_several_inputs():
    x, y = _data()
    ds = chapter.VideoFeatures([x], y)
    item, label, v = ds[3]
    assert torch.equal(item, x[3]) and int(label) == y[3] and v == 3 and len(ds) == 16
    two = chapter.VideoFeatures([x, [t + 1 for t in x]], y)
    (a, b), _, _ = two[3]
    assert torch.equal(b, a + 1)
    with pytest.raises(ValueError, match="one label per video"):
        chapter.VideoFeatures([x], y[:-1])


def test_run_cache_resumes_a_killed_run_and_keeps_its_result(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path))
    x, y = _data()
    data = lambda: (chapter.VideoFeatures([x], y, train=True), chapter.VideoFeatures([x], y))  # noqa: E731
    tc = engine.TrainConfig(epochs=3, batch_size=4, lr=0.1, seed=0, device="cpu")
    key = _Key("a", 0)
    whole = chapter.RunCache("t", cache=False).get(key, model=_Mean, data=data, train=tc, identity={}, seed=0)

    cache = chapter.RunCache("t")
    folder = cache.folder(key, tc, {})
    # a run killed after its first epoch leaves a checkpoint and no result
    seed_everything(0)
    engine.fit(_Mean(), data()[0], None, tc, ckpt_dir=folder, stop_after_epoch=1, progress=False)
    assert (folder / "last.pt").is_file() and not (folder / "result.pt").exists()
    resumed = cache.get(key, model=_Mean, data=data, train=tc, identity={}, seed=0)
    torch.testing.assert_close(resumed.video_scores, whole.video_scores)
    assert (folder / "result.pt").is_file()
    # a new cache (a new page) reads the result without building anything
    again = chapter.RunCache("t").get(key, model=None, data=None, train=tc, identity={}, seed=0)
    torch.testing.assert_close(again.video_scores, whole.video_scores)
    # the identity (e.g. the feature cache keys) is part of the run's folder
    assert cache.folder(key, tc, {"features": "other"}) != folder


class _Table:
    """A chapter's `Runs` in miniature: a key -> its run through one `RunCache`; counts the runs trained here."""

    def __init__(self, workers: int, *, fail: str | None = None) -> None:
        self.cache = chapter.RunCache("t", threads=1, workers=workers)
        self.x, self.y = _data()
        self.fail, self.trained_here = fail, []

    def data(self, key: _Key) -> tuple[chapter.VideoFeatures, chapter.VideoFeatures]:
        if key.name == self.fail:
            raise RuntimeError(f"run {key.name} cannot be trained")
        self.trained_here.append(key)  # in a forked worker this list is the worker's copy
        x = [t * (1 + 0.1 * len(key.name)) for t in self.x]  # each key its own data
        return chapter.VideoFeatures([x], self.y, train=True), chapter.VideoFeatures([x], self.y)

    def get(self, key: _Key) -> engine.EvalResult:
        tc = engine.TrainConfig(epochs=2, batch_size=4, lr=0.1, seed=key.seed, device="cpu")
        return self.cache.get(key, model=_Mean, data=lambda: self.data(key), train=tc, identity={}, seed=key.seed)


KEYS = [_Key(n, s) for n in ("a", "bb", "ccc") for s in (0, 1)]


def test_train_all_in_workers_gives_the_numbers_of_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "one"))
    one = _Table(workers=1)
    one.cache.train_all(one.get, KEYS)
    assert one.trained_here == KEYS  # one worker: every run here, in turn

    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "two"))
    two = _Table(workers=2)
    two.get(KEYS[0])  # one run already on disk: read, not trained again
    two.trained_here.clear()
    two.cache.train_all(two.get, KEYS)
    assert two.trained_here == []  # the five missing runs were trained in the forked workers
    assert len(list((tmp_path / "two" / "runs" / "t").glob("*/result.pt"))) == len(KEYS)
    for key in KEYS:  # bit for bit: each run on one thread, whichever process trained it
        assert torch.equal(two.get(key).video_scores, one.get(key).video_scores), key


def test_train_all_trains_each_run_once_in_the_workers_also_when_a_key_needs_several(tmp_path, monkeypatch):
    # a key of two runs (a two-stream fusion: "a", then "bb" or "ccc"); both pairs share their first run
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "one"))
    one = _Table(workers=1)
    fused = lambda t, pair: t.get(pair[0]).video_scores + t.get(pair[1]).video_scores  # noqa: E731
    pairs = [(_Key("a", 0), _Key("bb", 0)), (_Key("a", 0), _Key("ccc", 0)), (_Key("a", 1), _Key("bb", 1))]
    one.cache.train_all(lambda pair: fused(one, pair), pairs)
    assert one.trained_here == [_Key("a", 0), _Key("bb", 0), _Key("ccc", 0), _Key("a", 1), _Key("bb", 1)]

    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "two"))
    two = _Table(workers=2)
    two.cache.train_all(lambda pair: fused(two, pair), pairs)
    # the first probe finds a/0 and a/1 (side by side), the second bb/0, ccc/0 and bb/1: nothing is left
    # for this process, and no run was trained twice (each worker trains only the run it took)
    assert two.trained_here == []
    assert len(list((tmp_path / "two" / "runs" / "t").glob("*/result.pt"))) == 5
    for pair in pairs:
        assert torch.equal(fused(two, pair), fused(one, pair)), pair

    # a lone missing run is trained here, and the runs behind it in the workers
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "three"))
    three = _Table(workers=2)
    shared = [(_Key("a", 0), _Key("bb", 0)), (_Key("a", 0), _Key("ccc", 0))]
    three.cache.train_all(lambda pair: fused(three, pair), shared)
    assert three.trained_here == [_Key("a", 0)]


def test_workers_need_a_fixed_thread_count():
    with pytest.raises(ValueError, match="workers=2 needs a fixed thread count"):
        chapter.RunCache("t", workers=2)  # threads=None: torch's default here, another in a worker
    chapter.RunCache("t", workers=1)  # one process: any thread setting


def test_train_all_shows_a_failed_run_s_own_error_here(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path))
    table = _Table(workers=2, fail="bb")
    with pytest.raises(RuntimeError, match="run bb cannot be trained"):
        table.cache.train_all(table.get, KEYS)
    # the runs the workers finished are on disk: a page run again trains only what failed
    done = {k for k in KEYS if k.name != "bb"}
    before = {f: f.stat().st_mtime_ns for f in (tmp_path / "runs" / "t").glob("*/result.pt")}
    assert len(before) == len(done)
    table.fail = None
    table.cache.train_all(table.get, KEYS)
    after = {f: f.stat().st_mtime_ns for f in (tmp_path / "runs" / "t").glob("*/result.pt")}
    assert len(after) == len(KEYS) and all(after[f] == t for f, t in before.items())


def test_outcomes_one_row_per_video():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    out = chapter.outcomes("A", 3, scores, torch.tensor([0, 0, 1]), video_ids=["x", "y", "z"],
                           categories=["c0", "c1"])
    assert out.to_dict("list") == {"condition": ["A"] * 3, "seed": [3] * 3, "video": ["x", "y", "z"],
                                   "correct": [1, 0, 0], "category": ["c0", "c0", "c1"]}


def test_claim_outcomes_refuses_a_condition_nobody_computes():
    from actionbook.audit import Claim

    claims = [Claim("X", "A beats B", "A", "B")]
    scores = {"A": lambda s: torch.eye(2)}
    with pytest.raises(KeyError, match="B"):
        chapter.claim_outcomes(claims, scores, torch.arange(2), seeds=2)
    scores["B"] = lambda s: torch.eye(2).flip(1)
    out = chapter.claim_outcomes(claims, scores, torch.arange(2), seeds=2)
    assert len(out) == 2 * 2 * 2 and out.groupby("condition")["correct"].mean().to_dict() == {"A": 1.0, "B": 0.0}


def test_seed_list_and_paper_diff():
    assert chapter.seed_list(3) == [0, 1, 2] and chapter.seed_list((4, 7)) == [4, 7]
    assert chapter.paper_diff(81.9, 81.4) == 0.5


def test_config_for_overrides_epochs_only_when_asked():
    from actionbook.experiments import mrrn, res_lstm

    for module in (res_lstm, mrrn):
        base = module.CONFIGS["ci"]
        assert chapter.config_for(module.CONFIGS, "ci") == base
        assert chapter.config_for(module.CONFIGS, "ci", epochs=2).epochs == 2
        full = chapter.config_for(module.CONFIGS, "full", dataset="hmdb51", epochs=1)
        assert (full.epochs, full.layout) == (1, "hmdb51")
        with pytest.raises(ValueError, match="epochs"):
            chapter.config_for(module.CONFIGS, "ci", epochs=0)


def test_charades_is_a_full_mode_dataset_only_where_a_chapter_scores_map(tmp_path, monkeypatch):
    from actionbook.experiments import res_lstm

    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path))
    assert "charades" in chapter.DATASETS
    assert chapter.full_dataset("charades") == dict(dataset=str(tmp_path / "charades"), layout="charades",
                                                    dataset_label="Charades", paper_dataset="Charades")
    with pytest.raises(ValueError, match="multi-label"):
        chapter.config_for(res_lstm.CONFIGS, "full", dataset="charades")
    assert chapter.config_for(res_lstm.CONFIGS, "full", dataset="charades", multilabel=True).layout == "charades"
