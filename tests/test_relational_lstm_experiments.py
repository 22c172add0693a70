"""The Relational LSTM chapter's experiments module at tiny size: configs, TSN segments over the
cached snippets, the tables, fusion before the softmax, the claims, refusal before work."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch

from actionbook import metrics
from actionbook.data.readers import DatasetError
from actionbook.experiments import relational_lstm as RL

CLASSES = ["Chase", "DiscWander", "RiseUp"]          # generated names: interaction, appearance, motion
CATS = ["interaction", "appearance", "motion"]


def _split(videos: int, *, pool: int, seed: int, crops: int = 0) -> tuple[dict, dict, torch.Tensor]:
    """Maps (V, pool, [crops,] 6, 3, 3) and pooled (V, pool, [crops,] 5) that carry the label."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(videos) % len(CLASSES)
    lead = (videos, pool) + ((crops,) if crops else ())
    maps = 0.1 * torch.randn(*lead, 6, 3, 3, generator=g)
    pooled = 0.1 * torch.randn(*lead, 5, generator=g)
    for v in range(videos):
        maps[v, ..., int(y[v]), :, :] += 2.0
        pooled[v, ..., int(y[v])] += 2.0
    return maps, pooled, y


def _tiny_cfg() -> RL.Config:
    return replace(RL.CONFIGS["ci"], pool=8, T=3, T_grid=(2, 3, 4, 5), reduce=None, epochs=2, epochs_temporal=2,
                   milestones=(1,), milestones_temporal=(1,), batch_size=4, lr=0.05, threads=1)


def _features(cfg: RL.Config) -> RL.Features:
    maps, pooled, labels = {}, {}, {}
    for i, st in enumerate(RL.STREAMS):
        maps[st] = {p: {} for p in RL.POSITIONS}
        pooled[st] = {}
        for sub, n in (("train", 9), ("test", 6)):
            for j, p in enumerate(RL.POSITIONS):
                m, pl, y = _split(n, pool=cfg.pool, seed=10 * i + j + (0 if sub == "train" else 100))
                maps[st][p][sub] = m
                pooled[st][sub], labels[sub] = pl, y
    return RL.Features(maps, pooled, labels, CLASSES, CATS, [f"v{i}" for i in range(6)], [], {"fake": "1"},
                       pd.DataFrame())


@pytest.fixture(scope="module")
def runs() -> RL.Runs:
    cfg = _tiny_cfg()
    return RL.Runs(_features(cfg), cfg, cache=False)  # fabricated features: keep the runs in memory


# --------------------------------------------------------------------------- configs

def test_full_config_is_the_papers():
    c = RL.config("full")
    assert (c.backbone, c.layers) == ("resnet101", ("conv5_1_map", "conv5_2_map", "conv5_3_map"))
    assert (c.T, c.T_grid, c.position, c.groups, c.test_crops, c.flow_length) == (8, (6, 8, 10, 12), "conv5_2", 4,
                                                                                    "5", 10)
    assert (c.epochs, c.milestones, c.epochs_temporal, c.milestones_temporal) == (50, (35, 45), 60, (45, 55))
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.bn_momentum) == (5e-4, 0.9, 5e-4, 24, 0.001)
    assert (c.dropout, c.dropout_temporal, c.w_tsn, c.w_rlstm, c.w_final) == (0.8, 0.7, 0.35, 0.5, 0.45)
    assert c.reduce is None and c.notes
    t = c.train_config("flow", 3)
    assert (t.optimizer, t.epochs, t.milestones, t.seed) == ("sgd", 60, (45, 55), 3) and c.optimizer == "sgd"
    assert RL.config("full", dataset="hmdb51").paper_dataset == "HMDB-51"


def test_epochs_parameter_scales_both_schedules():
    c = RL.config("full", epochs=10)
    assert (c.epochs, c.epochs_temporal, c.milestones, c.milestones_temporal) == (10, 12, (7, 9), (9, 11))
    one = RL.config("full", epochs=1)
    assert (one.epochs, one.epochs_temporal, one.milestones, one.milestones_temporal) == (1, 1, (), ())
    assert RL.config("ci") == RL.CONFIGS["ci"]


def test_ci_config_names_every_scaled_down_choice():
    c = RL.config("ci")
    assert c.dataset == "ci" and c.reduce and c.T in c.T_grid and len(c.notes) >= 5
    assert len(set(c.layers)) == 3  # three distinct positions
    with pytest.raises(ValueError, match="T_grid"):
        replace(c, T=7)
    with pytest.raises(ValueError, match="cannot fill"):
        replace(c, pool=4)


def test_full_mode_stops_before_work_when_the_dataset_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="ucf101"):
        RL.preflight(replace(RL.config("full"), dataset=str(tmp_path / "ucf101")))


# --------------------------------------------------------------------------- TSN segments over the cached snippets

def test_training_draws_one_snippet_per_segment_and_testing_takes_the_groups():
    pool, T = 8, 4
    maps = torch.arange(pool).float().view(1, pool, 1, 1, 1).expand(1, pool, 2, 1, 1).clone()
    pooled = torch.arange(pool).float().view(1, pool, 1)
    train = RL.Snippets(maps, pooled, torch.tensor([0]), T=T, train=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(60):
        (m, p), _, _ = train[0]
        rows = p[:, 0].long().tolist()
        assert [r // 2 for r in rows] == [0, 1, 2, 3]  # one per segment [2t, 2t + 2)
        assert torch.equal(m[:, 0, 0, 0], p[:, 0])       # maps and pooled of the same snippet
        seen |= set(rows)
    assert seen == set(range(pool))
    test = RL.Snippets(maps, pooled, torch.tensor([0]), T=T, train=False, groups=4)
    assert len(test) == 4
    # 2 snippets per segment, 4 groups at fractions 1/8, 3/8, 5/8, 7/8: offsets 0, 0, 1, 1
    assert [test[g][0][1][:, 0].long().tolist() for g in range(4)] == [[0, 2, 4, 6]] * 2 + [[1, 3, 5, 7]] * 2


def test_test_views_are_groups_times_crops():
    maps, pooled, y = _split(2, pool=6, seed=0, crops=5)
    test = RL.Snippets(maps, pooled, y, T=3, train=False, groups=4)
    assert len(test) == 2 * 4 * 5
    (m, p), _, v = test[7]  # video 0, group 1, crop 2
    assert v == 0 and m.shape == (3, 6, 3, 3) and p.shape == (3, 5)
    assert torch.equal(p, pooled[0, test.rows(1), 2])


# --------------------------------------------------------------------------- experiments

def test_tables_share_runs_and_fuse_before_the_softmax(runs):
    t2 = RL.run_table2(runs, seeds=[0])
    assert list(dict.fromkeys(t2["method"])) == ["TSN", "R-LSTM", "TSN + R-LSTM"]
    assert set(t2["stream"]) == {"spatial", "temporal", "two-stream"} and t2["accuracy"].between(0, 100).all()
    t4 = RL.run_table4(runs, seeds=[0])
    t3 = RL.run_table3(runs, seeds=[0])
    t5 = RL.run_table5(runs, seeds=[0])
    assert sorted(t3["segments"].unique()) == [2, 3, 4, 5] and list(t5["layer"].unique()) == list(runs.cfg.layers)
    # TSN, R-LSTM, local, two-branch x 2 streams; + 3 other T and 2 other positions x 2 streams
    assert len(runs.cache.results) == 4 * 2 + 3 * 2 + 2 * 2
    # the two-branch model at the default T and position is the same run in Tables 3, 4 and 5
    mid = lambda t, col, v: t[(t[col] == v)].set_index("stream")["accuracy"]  # noqa: E731
    pd.testing.assert_series_equal(mid(t3, "segments", 3), mid(t4, "branch", "two-branch"), check_names=False)
    pd.testing.assert_series_equal(mid(t5, "position", "conv5_2"), mid(t4, "branch", "two-branch"), check_names=False)
    # two-stream: w spatial + (1 - w) temporal logits, TSN's w = 0.35
    rgb, flow = (runs.get(runs.key("tsn", s, seed=0)).video_logits for s in RL.STREAMS)
    torch.testing.assert_close(RL.two_stream(runs, "tsn", seed=0), 0.35 * rgb + 0.65 * flow)
    y = runs.labels("test")
    acc = 100 * metrics.topk_accuracy(0.35 * rgb + 0.65 * flow, y, k=1)
    assert t2.query("method == 'TSN' and stream == 'two-stream'")["accuracy"].item() == pytest.approx(acc)
    # the ensemble averages the two models' logits
    r_rgb = runs.get(runs.key("nonlocal", "rgb", seed=0)).video_logits
    torch.testing.assert_close(RL.ensemble(runs, "rgb", seed=0), (rgb + r_rgb) / 2)
    # the label is in the features: the models learn it
    assert t4.query("stream == 'two-stream'")["accuracy"].max() > 100 / len(CLASSES)


def test_tables_beside_the_papers(runs):
    cfg = runs.cfg
    t2 = RL.table2_vs_paper(RL.run_table2(runs, seeds=[0]), cfg)
    assert list(t2["method"]) == ["TSN", "R-LSTM", "TSN + R-LSTM"]
    assert t2.loc[0, "two-stream: paper (UCF-101 split 1)"] == "93.8"  # at the paper's precision
    t3 = RL.table3_vs_paper(RL.run_table3(runs, seeds=[0]), cfg)
    assert list(t3["paper's T"]) == [6, 8, 10, 12] and list(t3["our T"]) == [2, 3, 4, 5]
    t5 = RL.table5_vs_paper(RL.run_table5(runs, seeds=[0]), cfg)
    assert list(t5["our layer"]) == list(cfg.layers)
    t67 = RL.tables67_vs_paper(RL.run_table4(runs, seeds=[0]), cfg)
    assert t67.iloc[-1]["method"] == "Two-branch (ours)" and (t67["table"] != "this book").sum() == 6 + 11  # methods of Tables 6 and 7


def test_categories_figures_and_sweep(runs):
    cat = RL.run_categories(runs, seeds=[0])
    assert set(cat["category"]) == {"all classes", *CATS} and set(cat["model"]) == set(RL.CATEGORY_MODELS)
    wide = RL.categories_table(cat)
    assert list(wide.columns[:2]) == ["model", "all classes"] and len(wide) == len(RL.CATEGORY_MODELS)
    f3 = RL.run_fig3(runs, seeds=[0])
    assert list(f3["gain"]) == sorted(f3["gain"], reverse=True)
    assert (f3["gain"] == f3["two-branch"] - f3["TSN"]).all()
    f4 = RL.run_fig4(runs, seed=0)
    assert set(f4.columns) >= {"model", "video", "rank", "class"}
    if len(f4):
        assert set(f4.groupby("video")["model"].nunique()) == {2}  # the same videos for both models
    sw = RL.fusion_sweep(runs, "tsn", seeds=[0], weights=(0.0, 1.0))
    y = runs.labels("test")
    flow_only = 100 * metrics.topk_accuracy(runs.get(runs.key("tsn", "flow", seed=0)).video_logits, y, k=1)
    assert sw.loc[sw["w"] == 0.0, "accuracy"].item() == pytest.approx(flow_only)


def test_claims_name_computed_conditions_and_are_audited(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_RESULTS", str(tmp_path))
    claimed = RL.claims(runs.cfg)
    assert len({c.id for c in claimed}) == len(claimed)
    conds = RL.conditions(runs)
    assert all(c.better in conds and c.worse in conds for c in claimed)
    assert [c.category for c in claimed if c.category] == ["interaction"]
    table = RL.run_claims(runs, seeds=[0, 1])
    assert list(table["claim"]) == [c.id for c in claimed]
    assert (tmp_path / "ci" / RL.CHAPTER / "claims.csv").is_file()
    l1 = next(c for c in claimed if c.id == "L1")
    assert l1.expect == "no_gain" and l1.paper_effect == 0.0  # 93.8 - 93.8 (Table 2)
