"""The Res-LSTM chapter's experiments module (`actionbook.experiments.res_lstm`)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from actionbook.data.readers import DatasetError
from actionbook.experiments import res_lstm as R
from actionbook.features.cache import FeatureSet

# --------------------------------------------------------------------------- fabricated features


def _feature_set(subset: str, n: int, protos: torch.Tensor, seed: int, stream: str) -> FeatureSet:
    """n videos of len(protos) classes; video i has 2..5 clips around its class's prototype."""
    g = torch.Generator().manual_seed(seed)
    C, d = protos.shape
    feats, labels = [], []
    for i in range(n):
        K = 2 + i % 4
        feats.append(protos[i % C] + 0.5 * torch.randn(K, d, generator=g))  # (K, d)
        labels.append(i % C)
    spec = dict(subset=subset, crops="center", layer="pool", backbone="fake", modality=stream, dataset="fake")
    return FeatureSet(key=f"{stream}-{subset}", spec=spec, features=feats, frames=[torch.zeros(1)] * n,
                      index=[None] * n, video_ids=[f"v{i}" for i in range(n)], labels=labels,
                      label_sets=[(y,) for y in labels], groups=[None] * n, classes=[f"c{c}" for c in range(C)])


def _features(n_train: int = 24, n_test: int = 12, C: int = 4, d: int = 12) -> R.Features:
    grids = {}
    for j, stream in enumerate(R.STREAMS):
        protos = 2 * torch.randn(C, d, generator=torch.Generator().manual_seed(10 + j))
        grids[stream] = {"train": _feature_set("train", n_train, protos, 1 + j, stream),
                         "test": _feature_set("test", n_test, protos, 5 + j, stream)}
    return R.Features(grids, [f"c{c}" for c in range(C)], ["a", "a", "b", "b"], [Path("x")] * n_test)


def _tiny_cfg() -> R.Config:
    return replace(R.config("ci"), epochs=2, batch_size=8, hidden_grid=(4, 6, 8), hidden_knee=6, dm_grid=(4, 8),
                   d_m=4, depth_grid=(2, 3), T_grid=(1, 2, 3, 4), T=3)


@pytest.fixture(scope="module")
def runs() -> R.Runs:
    return R.Runs(_features(), _tiny_cfg(), cache=False)  # fabricated features: keep the runs in memory


# --------------------------------------------------------------------------- configs


def test_configs_are_valid_and_full_is_the_papers():
    full, ci = R.config("full"), R.config("ci")
    assert (full.clip_length, full.clip_stride, full.crops, full.layers, full.T) == (16, 8, "10", 2, 25)
    assert full.train_config.optimizer == ci.train_config.optimizer == "rmsprop"
    assert full.train_config.lr == ci.train_config.lr == 1e-3
    assert full.T_grid == (5, 15, 25, 35) and full.hidden_grid == (256, 512, 1024, 2048)
    # PCA cannot raise the 512-d R(2+1)D features: every residual width is at most 512
    assert max(full.dm_grid) <= 512 and full.d_m <= 512
    assert ci.dataset == "ci" and ci.threads == 1 and ci.crops == "center"
    assert R.config("full", dataset="hmdb51").paper_dataset == "HMDB-51"
    assert R.config("full", dataset="generated").dataset == "full"
    with pytest.raises(ValueError, match="dataset must be one of"):
        R.config("full", dataset="kinetics")
    with pytest.raises(ValueError, match="base model"):
        replace(ci, T=7)


# --------------------------------------------------------------------------- inputs


def test_sequences_select_clips_by_sigma():
    fs = _features().grids["rgb"]["train"]
    x = R.sequences(fs, T=5)
    assert x.shape == (24, 5, 12)
    # video 1 has K = 3 clips: σ picks 0, 0, 1, 1, 2 (0-based) for T = 5
    assert torch.equal(x[1], fs.features[1][[0, 0, 1, 1, 2]])
    # video 3 has K = 5 clips: all of them, in order
    assert torch.equal(x[3], fs.features[3])


def test_pca_is_fitted_on_training_rows_and_scaled_to_unit_variance(runs):
    pca = runs.pca("rgb", 4)
    train = runs.feats.grids["rgb"]["train"]
    rows = torch.cat([pca(x) for x in train.features])  # (rows, 4)
    assert rows.shape[1] == 4
    assert math.isclose(float(rows.pow(2).mean()), 1.0, rel_tol=1e-4)
    assert torch.allclose(rows.mean(0), torch.zeros(4), atol=1e-4)  # centred on the training mean
    with pytest.raises(ValueError, match="training split"):
        R.PCA.fit(runs.feats.grids["rgb"]["test"], dim=4)


# --------------------------------------------------------------------------- experiments


def test_experiments_return_tidy_tables(runs):
    cfg = runs.cfg
    hidden = R.run_fig3a(runs, seeds=2)
    assert list(hidden.columns) == ["hidden", "seed", "accuracy", "top5", "condition", "seconds"]
    assert len(hidden) == 2 * len(cfg.hidden_grid) and hidden["accuracy"].between(0, 100).all()
    depth = R.run_fig3bc(runs, seeds=1)
    assert len(depth) == len(cfg.dm_grid) * len(cfg.depth_grid) * 2
    assert set(depth["residual"]) == {True, False}
    steps = R.run_table1(runs, seeds=1)
    assert list(steps["T"]) == list(cfg.T_grid)
    # the base cell is shared: Table 1's T = cfg.T run is the depth sweep's (d_m, L = 2, residual) run
    base = runs.base(seed=0)
    assert base in runs.cache.results and base.d_m == cfg.d_m and base.layers == 2
    fused = R.run_table2(runs, seeds=1)
    assert {tuple(r) for r in fused[["fusion", "operation"]].values} == {
        ("none", "RGB only"), ("none", "flow only"), ("mid", "sum"), ("mid", "product"),
        ("late", "sum"), ("late", "product"), ("late", "weighted sum")}
    assert fused["condition"].is_unique


def test_late_fusion_is_the_product_of_the_two_streams_probabilities(runs):
    rgb = runs.get(runs.base(stream="rgb", seed=0)).video_scores
    flow = runs.get(runs.base(stream="flow", seed=0)).video_scores
    torch.testing.assert_close(R.late_scores(runs, seed=0, how="product"), rgb * flow)
    torch.testing.assert_close(R.late_scores(runs, seed=0, how="sum", weights=R.TSN_WEIGHTS), 1.5 * flow + rgb)
    final = R.final_scores(runs, seed=0)
    torch.testing.assert_close(final.sum(1), torch.ones(len(final)))
    assert torch.equal(final.argmax(1), (rgb * flow).argmax(1))


def test_same_seed_same_numbers():
    key = R.RunKey("rgb", 3, 4, 4, 2, True, 7)
    a = R.Runs(_features(), _tiny_cfg(), cache=False).row(key)
    b = R.Runs(_features(), _tiny_cfg(), cache=False).row(key)
    assert (a["accuracy"], a["top5"]) == (b["accuracy"], b["top5"])


def test_runs_are_cached_on_disk_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "cache"))
    key = R.RunKey("mid-product", 3, 4, 4, 2, True, 1)
    first = R.Runs(_features(), _tiny_cfg())
    a = first.get(key)
    folders = list((tmp_path / "cache" / "runs" / "res_lstm").iterdir())
    assert len(folders) == 1 and {p.name for p in folders[0].iterdir()} == {"last.pt", "result.pt"}
    again = R.Runs(_features(), _tiny_cfg())
    again.model = None  # a run found on disk builds no model and trains nothing
    b = again.get(key)
    assert torch.equal(a.video_scores, b.video_scores) and again.cache.seconds[key] == first.cache.seconds[key]
    # another training config is another run
    other = R.Runs(_features(), replace(_tiny_cfg(), epochs=3))
    other.get(key)
    assert len(list((tmp_path / "cache" / "runs" / "res_lstm").iterdir())) == 2


def test_per_category_and_tables(runs):
    cats = R.run_table3(runs, seeds=1, named=["c1", "PizzaTossing"])
    assert set(cats["group"]) == {"all classes", "a", "b", "c1"}  # PizzaTossing is not a class here
    final = R.final_scores(runs, seed=0).argmax(1)
    y = runs.labels("test")
    a = cats.set_index("group")["accuracy"]
    assert a["all classes"] == pytest.approx(100 * float((final == y).float().mean()))
    assert a["a"] == pytest.approx(100 * float((final == y)[y < 2].float().mean()))  # classes 0, 1 are "a"
    t3 = R.table3_vs_paper(cats, runs.cfg)
    pizza = t3[t3["group"] == "PizzaTossing"].iloc[0]
    assert pizza["paper: L2STM (as quoted)"] == "72.7" and pizza[R.labels(runs.cfg)["ours"]] == "—"
    final = R.run_tables45(runs, seeds=2)
    t4, t5 = R.tables45_vs_paper(final, runs.cfg)
    ours = t4.iloc[-1]
    assert ours["UCF-101"] == "—" and "n=2" in ours["generated benchmark"]
    assert t4.loc[t4["method"] == "L2STM", "UCF-101"].item() == "93.6"
    paper_methods = R.results.paper_table("res_lstm", "table5")["method"].unique()
    assert len(t5) == len(paper_methods) + 1 and list(t5["method"][:-1]) == list(paper_methods)


def test_table1_matches_our_T_grid_to_the_papers_by_position():
    cfg = R.config("ci")
    steps = pd.DataFrame([{"T": T, "seed": s, "accuracy": 50.0 + i + s} for i, T in enumerate(cfg.T_grid)
                          for s in range(2)])
    t1 = R.table1_vs_paper(steps, cfg)
    assert list(t1["our T"]) == list(cfg.T_grid) and list(t1["paper's T"]) == [5, 15, 25, 35]
    assert list(t1["paper: UCF-101 split 1 (C3D)"]) == ["77.9", "79.9", "79.5", "80.9"]
    assert t1.iloc[0][R.labels(cfg)["ours"]] == "50.5 ± 0.7 (n=2)"


def test_figures_4_and_5_of_the_final_model(runs):
    ex = R.run_fig4(runs, seed=0, right=2, wrong=2)
    assert set(ex["kind"]) == {"right", "wrong"} and (ex.groupby("video")["rank"].max() <= 5).all()
    cm, blocks = R.confusion(runs, seed=0)
    assert list(cm.index[:2]) == ["c0", "c1"] and blocks == [("a", 0, 2), ("b", 2, 4)]
    assert cm.sum(axis=1).round(6).eq(100).all()  # rows are % of the true class


# --------------------------------------------------------------------------- the claims


def test_every_claim_compares_two_conditions_the_chapter_computes(runs):
    claims = R.claims(runs.cfg)
    assert len({c.id for c in claims}) == len(claims)
    names = R.conditions(runs)
    for c in claims:
        assert c.better in names and c.worse in names and c.better != c.worse
    # the paper's own effects are computed from its tables: Table 2 (HMDB-51), late - mid with sum
    r5 = next(c for c in claims if c.id == "R5s")
    t2 = R.results.paper_table("res_lstm", "table2").set_index(["fusion", "operation"])["paper"]
    assert r5.paper_effect == pytest.approx(t2["late", "sum"] - t2["mid", "sum"])


def test_outcomes_are_one_row_per_condition_seed_and_test_video(runs):
    claims = R.claims(runs.cfg)[:3]
    out = R.outcomes(runs, seeds=2, claimed=claims)
    names = {n for c in claims for n in (c.better, c.worse)}
    assert set(out["condition"]) == names
    assert len(out) == len(names) * 2 * len(runs.labels("test"))
    assert set(out["correct"]) <= {0, 1} and set(out["category"]) == {"a", "b"}
    # a run's correctness is its own video predictions against the labels
    key = R._keys(runs.cfg)["base"]
    mine = out[(out["condition"] == key.condition) & (out["seed"] == 1)]
    want = (runs.get(replace(key, seed=1)).video_pred == runs.labels("test")).long().tolist()
    assert mine["correct"].tolist() == want


# --------------------------------------------------------------------------- full mode refuses


def test_full_mode_without_the_dataset_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path / "data"))
    for name in ("ucf101", "hmdb51"):
        with pytest.raises(DatasetError, match=rf"{name}.*data/README.md"):
            R.preflight(R.config("full", dataset=name))


def test_full_mode_without_weights_refuses(tmp_path, monkeypatch):
    from actionbook.features.backbones import MissingWeightsError

    (tmp_path / "data" / "ucf101").mkdir(parents=True)
    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError, match="R2Plus1D_18_Weights"):
        R.preflight(R.config("full"))
    # the generated full preset is checked for weights before it would be generated
    with pytest.raises(MissingWeightsError):
        R.preflight(R.config("full", dataset="generated"))
    assert not (tmp_path / "data" / "generated").exists()


@pytest.mark.notebooks
def test_full_mode_notebook_stops_in_its_first_cells(actionbook_cli, tmp_path):
    r = actionbook_cli("run", "--mode", "full", "--out", tmp_path / "executed", "book/res_lstm/ablations.md",
                       env={"ACTIONBOOK_DATA": str(tmp_path / "nodata")})
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "DatasetError" in out and "ucf101" in out


@pytest.mark.notebooks
@pytest.mark.slow
def test_method_notebook_runs_in_ci(executed_ci):
    ipynb, _ = executed_ci("book/res_lstm/method.md")  # once per session, no wall-clock timeout
    assert ipynb.is_file()
