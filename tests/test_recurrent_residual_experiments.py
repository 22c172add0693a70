"""The recurrent residual chapter's experiments module at tiny size: configs, sub-sequence items,
tables beside the paper's error rates, claims as contrasts of conditions the module computes."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch

from actionbook.experiments import recurrent_residual as X
from actionbook.features.cache import FeatureSet
from actionbook.features.pretrain import PretrainConfig

W = PretrainConfig().width  # the ci networks' stage-1 width (stages W, 2W, 4W, 8W)

CLASSES = ["DiscWander", "RiseUp", "GrowShrink"]  # generated-benchmark names: appearance, motion, order


def _fs(subset: str, shape: tuple[int, ...], *, videos: int, seed: int) -> FeatureSet:
    """Videos of 3-6 sampled frames whose features carry their label (channel `label` is large)."""
    g = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for v in range(videos):
        y = v % len(CLASSES)
        x = 0.1 * torch.randn(3 + v % 4, *shape, generator=g)
        x[:, y] += 3.0
        feats.append(x)
        labels.append(y)
    n = len(feats)
    return FeatureSet(key=f"fake-{subset}-{shape}", spec={"subset": subset}, features=feats,
                      frames=[torch.arange(len(x)) for x in feats], index=[None] * n,
                      video_ids=[f"{subset}{i}" for i in range(n)], labels=labels,
                      label_sets=[(y,) for y in labels], groups=["g01"] * n, classes=CLASSES)


def _tiny_cfg() -> X.Config:
    return replace(X.CONFIGS["ci"], weights=None, epochs=2, head_epochs=3, head_batch=4, gru_hidden=8, gru_steps=3,
                   positions=("Mid Block4", "Block4"), contexts=(1, 2, 3), threads=1)


@pytest.fixture(scope="module")
def runs() -> X.Runs:
    pooled = {b: {s: _fs(s, (d,), videos=9 if s == "train" else 6, seed=i) for i, s in enumerate(("train", "test"))}
              for b, d in zip(X.BLOCKS, (2 * W, 4 * W, 8 * W))}
    shapes = {"layer4.1": (8 * W, 2, 2), "layer4.0": (4 * W, 4, 4)}  # the maps entering them (ci ResNet-18)
    maps = {u: {s: _fs(s, sh, videos=9 if s == "train" else 6, seed=i) for i, s in enumerate(("train", "test"))}
            for u, sh in shapes.items()}
    return X.Runs(_tiny_cfg(), cache=False, pooled=pooled, maps=maps)


def test_full_config_is_the_papers():
    c = X.config("full")
    assert (c.backbone, c.step, c.gru_hidden, c.update_fraction) == ("resnet50", 10, 128, 0.01)
    assert c.positions == X.POSITIONS and c.contexts == (1, 2, 3, 5) and c.base_map is None
    assert (c.position, c.skip, c.context) == ("Block4", "identity", 2)
    assert X.config("full", epochs=1).epochs == X.config("full", epochs=1).head_epochs == 1
    with pytest.raises(ValueError, match="dataset must be one of"):
        X.config("full", dataset="kinetics")


def test_ci_config_names_every_scaled_down_choice():
    c = X.config("ci")
    assert c.dataset == "ci" and "Block1" not in c.positions and c.notes
    assert any("Block1" in n for n in c.notes) and any("epochs" in n for n in c.notes)
    # only Block1 is full-mode only (issue 13): Block2 and context 5 run in ci, on maps below their first unit
    assert {"Block2", "Mid Block4", "Block4"} <= set(c.positions) and 5 in c.contexts
    from actionbook.features.ci_nets import ci_resnet18
    from actionbook.models.recurrent_residual import unit_names

    names, runs = unit_names(ci_resnet18()), X.Runs(c, cache=False)
    entered = next(i for i, u in enumerate(names) if X.entering_map(u) == c.base_map)  # the unit the base map enters
    firsts = [runs.first_unit(X.RunKey(p, c.table2_skip, 2, 0)) for p in c.positions]
    firsts += [runs.first_unit(X.RunKey(c.position, c.skip, t, 0)) for t in c.contexts]
    assert min(names.index(u) for u in firsts) == entered  # every ci network's maps derive from the one base map
    with pytest.raises(ValueError, match="best model"):
        replace(c, position="Block1")


def test_entering_maps_name_the_layer_below_each_unit():
    assert [X.entering_map(u) for u in ("layer1.0", "layer2.0", "layer2.3", "layer4.2")] == \
        ["stem_map", "layer1_map", "layer2.2_map", "layer4.1_map"]


def test_subsequence_items_and_the_papers_batch(runs):
    key = X.RunKey("Block4", "identity", 2, 0)
    train, test = runs.datasets(key)
    fs = runs.maps("layer4.1")["train"]
    assert len(train) == sum(len(X.subsequences(len(x), T=2, step=1)) for x in fs.features)
    x, y, v = train[0]
    assert x.shape == (2, 8 * W, 2, 2) and int(y) == fs.labels[v]
    assert runs.train_config(key, 250).batch_size == 13  # ci: 5 % of 250 items, rounded up
    papers = X.Runs(replace(runs.cfg, update_fraction=X.CONFIGS["full"].update_fraction), cache=False)
    assert papers.train_config(key, 250).batch_size == 3  # the paper's 1 %


def test_tables_sit_beside_the_papers_error_rates(runs):
    t1 = X.run_table1(runs, seeds=2)
    assert len(t1) == 2 * 3 * 2 * 2 and t1["error"].between(0, 1).all()
    assert set(t1["znorm"]) == {"yes", "no"}
    v1 = X.table1_vs_paper(t1, runs.cfg)
    assert len(v1) == 12 and v1.iloc[:, 3].str.match(r"^0\.\d{3}$").all()  # the paper's, at its precision
    t3 = X.run_table3(runs, seeds=1)
    assert list(t3["skip"]) == list(X.SKIPS)
    v3 = X.table3_vs_paper(t3, runs.cfg)
    assert set(v3["type"]) == {"identity", "conv linear", "conv non-linear"}
    t2 = X.run_table2(runs, seeds=1)
    assert list(t2["position"]) == ["Mid Block4", "Block4"]
    v2 = X.table2_vs_paper(t2, runs.cfg)
    ours = [c for c in v2.columns if c.startswith("ours")][0]
    assert v2.set_index("position").loc["Block1", ours].startswith("full mode only")
    assert v2.set_index("position").loc["Block4", "unit (ours)"] == "layer4.1"
    t5 = X.table5_vs_paper(t3.assign(method="ours").rename(columns={})[["method", "seed", "error"]], runs.cfg)
    assert "Recurrent Residual Networks" in set(t5["method"]) and "ours" in set(t5["method"])


def test_the_model_learns_the_fabricated_labels(runs):
    # features that carry the label in one channel: a trained network must beat chance (2/3 error) clearly
    r = runs.row(X.RunKey("Block4", "identity", 2, 0))
    assert r["error"] < 0.5, r


def test_claims_compare_conditions_the_module_computes(runs):
    cfg = runs.cfg
    cl = X.claims(cfg)
    assert len({c.id for c in cl}) == len(cl)
    conds = X.conditions(runs)
    for c in cl:
        if c.not_testable:
            assert "full mode only" in c.not_testable
        else:
            assert c.better in conds and c.worse in conds, c
    # "better" is the lower error: the paper's effect is its error difference in points of accuracy
    i6 = next(c for c in cl if c.id == "I6")
    assert i6.paper_effect == pytest.approx(3.9)
    i4a = next(c for c in cl if c.id == "I4a")
    assert i4a.paper_effect == pytest.approx(2.2)


def test_outcomes_mark_right_and_wrong_per_video(runs):
    cl = [c for c in X.claims(runs.cfg) if c.id in ("I1", "I6")]
    out = X.outcomes(runs, seeds=1, claimed=cl)
    assert set(out["correct"]) <= {0, 1} and len(out) == 4 * len(runs.video_ids)
    assert isinstance(out, pd.DataFrame) and {"condition", "seed", "video", "category"} <= set(out.columns)


def test_category_claims_cover_the_categories_with_test_videos(runs):
    from actionbook.categories import class_categories

    per_cat = X.category_claims(runs)
    assert [c.category for c in per_cat] == list(dict.fromkeys(class_categories(CLASSES, layout="generated")))
    out = X.outcomes(runs, seeds=1, claimed=per_cat)
    assert set(out["condition"]) == {runs.best(0).condition, runs.baseline(0).condition}


def test_full_mode_stops_before_any_work_without_the_dataset(tmp_path, monkeypatch):
    from actionbook.data.readers import DatasetError

    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="ucf101"):
        X.preflight(X.config("full"))


def test_full_mode_builds_the_resnet50_networks_on_maps(tmp_path):
    # the full-mode code path (Bottleneck units, ResNet-50 names) at toy size, random weights
    cfg = replace(X.CONFIGS["full"], weights=None, epochs=1, positions=("Block4",), contexts=(1, 2), threads=1,
                  device="cpu")
    maps = {"layer4.2": {s: _fs(s, (2048, 2, 2), videos=6, seed=i) for i, s in enumerate(("train", "test"))}}
    pooled = {b: {s: _fs(s, (d,), videos=6, seed=i) for i, s in enumerate(("train", "test"))}
              for b, d in zip(X.BLOCKS, (512, 1024, 2048))}
    runs = X.Runs(cfg, cache=False, maps=maps, pooled=pooled)
    assert runs.first_unit(X.RunKey("Block4", "identity", 2, 0)) == "layer4.2"
    assert runs.first_unit(X.RunKey("Block4", "identity", 3, 0)) == "layer4.1"
    model = runs.model(X.RunKey("Block4", "nonlinear", 2, 0))
    assert model.unit_names == ["layer4.2"] and model.fc.out_features == len(CLASSES)
    r = runs.row(X.RunKey("Block4", "identity", 2, 0))
    assert 0 <= r["error"] <= 1
