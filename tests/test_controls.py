"""The controls' machinery on synthetic features whose information is known: the average head
solves a category whose classes differ in their mean and stays at chance when they differ only
in order; the recurrent head solves the order; a window that misses the start misses an early cue."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from actionbook import controls as K
from actionbook.data.generate import CLASSES
from actionbook.features.cache import FeatureSet

NAMES = [c.name for c in CLASSES]
CAT = "temporal order"
MINE = [NAMES.index(c.name) for c in CLASSES if c.category == CAT]
CFG = K.ControlsConfig(seeds=(0, 1), epochs=60, batch_size=16, hidden=16)


def _set(kind: str, n_per_class: int, seed: int) -> FeatureSet:
    """Videos of 24 items (frames 0, 1, ..) of 4-d features for the 4 classes of CAT.

    kind "mean": class j adds a constant in dimension j; "order": the same items for every
    class, in an order that depends on the class; "early": class j's cue sits in the first 3 items only."""
    g = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for j, label in enumerate(MINE):
        for _ in range(n_per_class):
            x = 0.3 * torch.randn(24, 4, generator=g)
            if kind == "mean":
                x[:, j] += 1.0
            elif kind == "order":
                ramp = torch.linspace(-1, 1, 24)
                x[:, 0] += ramp if j % 2 == 0 else ramp.flip(0)
                x[:, 1] += ramp if j < 2 else ramp.flip(0)
            elif kind == "early":
                x[:3, j] += 3.0
            feats.append(x)
            labels.append(label)
    n = len(feats)
    return FeatureSet(key="k", spec={"subset": "train"}, features=feats, frames=[torch.arange(24) for _ in feats], index=[None] * n,
                      video_ids=[f"v{i}" for i in range(n)], labels=labels, label_sets=[(y,) for y in labels],
                      groups=[None] * n, classes=NAMES)


def _maps(n_per_class: int, seed: int, *, side: int = 5, items: int = 6) -> FeatureSet:
    """Videos of `items` frames' (2, side, side) maps: channel 0 marks one object's cell, channel 1
    the other's, on one row at a random place in every frame; class j keeps them j + 1 cells apart.
    Every map has the same mean over its cells, so pooling loses what tells the classes apart."""
    g = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for j, label in enumerate(MINE):
        for _ in range(n_per_class):
            x = 0.05 * torch.randn(items, 2, side, side, generator=g)
            for t in range(items):
                row = int(torch.randint(side, (1,), generator=g))
                col = int(torch.randint(side - (j + 1), (1,), generator=g))
                x[t, 0, row, col] += 1.0
                x[t, 1, row, col + j + 1] += 1.0
            feats.append(x)
            labels.append(label)
    n = len(feats)
    return FeatureSet(key="k", spec={"subset": "train"}, features=feats, frames=[torch.arange(items) for _ in feats],
                      index=[None] * n, video_ids=[f"v{i}" for i in range(n)], labels=labels,
                      label_sets=[(y,) for y in labels], groups=[None] * n, classes=NAMES)


def test_the_relational_head_reads_a_gap_that_pooling_loses():
    import dataclasses

    train, test = _maps(16, 0), _maps(10, 1)
    rel = K.run_control(K.Control(CAT, "m", "positive", "maps", "relational"), train, test, cfg=CFG)
    assert sum(rel) / len(rel) >= 0.8  # 0.95 when written; chance 0.25
    pooled = [dataclasses.replace(s, features=[x.mean(dim=(2, 3)) for x in s.features]) for s in (train, test)]
    rec = K.run_control(K.Control(CAT, "m", "positive", "frames", "recurrent"), *pooled, cfg=CFG)
    assert sum(rec) / len(rec) <= 0.5  # the cells' mean is the same in every class


def test_the_relational_head_refuses_items_that_are_not_maps():
    s = _set("mean", 2, 0)
    with pytest.raises(ValueError, match="square maps"):
        K.run_control(K.Control(CAT, "m", "positive", "frames", "relational"), s, s, cfg=CFG)


def _acc(kind: str, head: str, start: float = 0.0) -> float:
    ctrl = K.Control(CAT, "m", "positive", "frames", head, start)
    return sum(K.run_control(ctrl, _set(kind, 12, 0), _set(kind, 10, 1), cfg=CFG)) / len(CFG.seeds)


def test_average_head_solves_means_and_misses_order():
    assert _acc("mean", "average") >= 0.9
    assert _acc("order", "average") <= 0.5  # four orders of the same items: the mean cannot tell them


def test_recurrent_head_solves_order():
    assert _acc("order", "recurrent") >= 0.9


def test_a_late_window_misses_an_early_cue():
    assert _acc("early", "recurrent") >= 0.9
    assert _acc("early", "recurrent", start=0.2) <= 0.5


def test_a_category_without_four_classes_is_refused():
    ctrl = K.Control(CAT, "m", "positive", "frames", "average")
    s = _set("mean", 2, 0)
    with pytest.raises(ValueError, match="expected 4"):
        K.run_control(ctrl, s, s, cfg=CFG, categories=["appearance"] * len(NAMES))


def test_verdicts():
    df = pd.DataFrame([dict(category="a", model="m", role="positive", accuracy_mean=0.9, accuracy_sd=0.0,
                            chance=0.25, n_seeds=5, n_test=80),
                       dict(category="a", model="m", role="negative", accuracy_mean=0.40, accuracy_sd=0.0,
                            chance=0.25, n_seeds=5, n_test=80),
                       dict(category="a", model="m", role="negative", accuracy_mean=0.30, accuracy_sd=0.0,
                            chance=0.25, n_seeds=5, n_test=80)])
    v = K.verdicts(df)
    assert list(v["meets target"]) == [True, False, True]
    assert K.two_se(80) == pytest.approx(2 * (0.25 * 0.75 / 80) ** 0.5)


def test_frame_relations_reads_each_frame_of_a_flattened_map():
    from actionbook.models.relation_network import FrameRelations

    rn = FrameRelations(2, 5, width=16)
    x = torch.randn(3, 4, 2 * 5 * 5)                        # (B, T, C h w)
    z = rn(x)
    assert z.shape == (3, 4, 16)
    rn.chunk = 5  # the pairs made a few frames at a time: the same frames' relations
    assert torch.allclose(rn(x), z, atol=1e-6)
    assert torch.allclose(rn(x[:, 2:3]), z[:, 2:3], atol=1e-6)  # each frame alone
    with pytest.raises(ValueError, match="values"):
        rn(torch.randn(3, 4, 49))


def test_controls_train_each_head_once_in_the_run_cache(tmp_path, monkeypatch):
    """`cache=True`: the heads are trained in two forked workers, give the numbers of one process
    in memory, and a second call reads them from disk without training."""
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path))
    ctrl = K.Control(CAT, "m", "positive", "frames", "recurrent")
    train, test = _set("order", 12, 0), _set("order", 10, 1)
    in_memory = K.run_control(ctrl, train, test, cfg=CFG)
    cached = K.run_control(ctrl, train, test, cfg=CFG, cache=True)
    assert cached == in_memory  # bit for bit: one thread per head, whichever process trains it
    assert len(list((tmp_path / "runs" / K.CHAPTER).glob("*/result.pt"))) == len(CFG.seeds)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(K.engine, "fit", no_training)
    assert K.run_control(ctrl, train, test, cfg=CFG, cache=True) == in_memory
