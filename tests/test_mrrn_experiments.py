"""The MRRN chapter's experiments module: configs, clip items, tables, fusion, verdicts, refusal."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
import torch

from actionbook import metrics
from actionbook.data.readers import DatasetError
from actionbook.experiments import chapter
from actionbook.experiments import mrrn as M
from actionbook.features.cache import FeatureSet

CLASSES = ["DiscWander", "RiseUp", "GrowShrink"]  # generated-benchmark names: appearance, motion, order


def _fs(subset: str, dim: int, *, videos: int = 6, frames: int = 10, clip: int = 4, crops: int | None = None,
        seed: int = 0) -> FeatureSet:
    """Videos whose features carry their label (feature dim `label` is large), with 3 clips each."""
    g = torch.Generator().manual_seed(seed)
    feats, index, labels = [], [], []
    for v in range(videos):
        y = v % len(CLASSES)
        shape = (frames, crops, dim) if crops else (frames, dim)
        x = 0.1 * torch.randn(*shape, generator=g)
        x[..., y] += 3.0
        feats.append(x)
        index.append(torch.stack([torch.arange(s, s + clip) for s in (0, 3, 6)]))  # (3 clips, clip)
        labels.append(y)
    return FeatureSet(key=f"fake-{subset}-{dim}", spec={"subset": subset}, features=feats,
                      frames=[torch.arange(frames)] * videos, index=index, video_ids=[f"v{i}" for i in range(videos)],
                      labels=labels, label_sets=[(y,) for y in labels], groups=["g01"] * videos, classes=CLASSES)


def _tiny_cfg() -> M.Config:
    return replace(M.CONFIGS["ci"], hidden_sizes=(4, 6, 8), hidden=8, layer_counts=(3, 4, 5), layers=3,
                   epochs=2, milestones=(1,), batch_size=4, threads=1)


@pytest.fixture(scope="module")
def runs() -> M.Runs:
    cfg = _tiny_cfg()
    feats = {lv: {"train": _fs("train", cfg.input_size(lv), videos=9), "test": _fs("test", cfg.input_size(lv), seed=1)}
             for lv in M.LEVELS}
    return M.Runs(feats, cfg, cache=False)  # fabricated features: keep the runs in memory


# --------------------------------------------------------------------------- configs

def test_full_config_is_the_papers():
    c = M.config("full")
    assert (c.lr, c.lr_shallow, c.milestones, c.gamma, c.epochs, c.batch_size) == (1e-5, 1e-4, (8,), 0.1, 12, 28)
    assert (c.hidden_sizes, c.layer_counts) == ((256, 512, 1024), (3, 4, 5))
    assert (c.hidden, c.layers, c.pooling) == (1024, 3, "mean")
    assert (c.clip_length, c.clip_stride, c.max_clips, c.test_crops) == (30, 8, 20, "center")
    assert c.level_weights == (0.1, 0.2, 0.7) and c.dropout == 0.5 and c.backbone == "resnet34"
    assert [c.input_size(lv) for lv in M.LEVELS] == [128, 256, 512]
    assert c.lr_of("high") == 1e-5 and c.lr_of("low") == c.lr_of("mid") == 1e-4
    assert (c.timing.rrn_batch, c.timing.cnn3d_batch) == (10, 40)
    h = M.config("full", dataset="hmdb51")
    assert h.layout == "hmdb51" and h.dataset.endswith("hmdb51") and h.paper_dataset == "HMDB-51"
    assert M.config("full", dataset="generated").dataset == "full"
    with pytest.raises(ValueError, match="dataset must be one of"):
        M.config("full", dataset="kinetics")


def test_ci_config_is_small_and_valid():
    c = M.config("ci")
    assert c.dataset == "ci" and c.mode == "ci" and max(c.hidden_sizes) < 256 and c.max_clips < 20
    assert c.lr_shallow / c.lr == pytest.approx(10)  # the paper's ratio between the levels
    with pytest.raises(ValueError, match="cell of Table 1"):
        replace(c, hidden=1000)


def test_epochs_scale_the_lr_schedule():
    """The paper divides the lr after epoch 8 of 12; a shorter or longer run keeps that proportion
    (with epochs=1, the full-mode smoke test, the drop falls after the last epoch)."""
    assert M.config("full").milestones == (8,) and M.config("ci").milestones == M.CONFIGS["ci"].milestones
    assert (M.config("full", epochs=6).epochs, M.config("full", epochs=6).milestones) == (6, (4,))
    assert M.config("full", epochs=24).milestones == (16,)
    assert M.config("ci", epochs=1).milestones == (1,)
    assert M.config("full", epochs=12).milestones == (8,)


# --------------------------------------------------------------------------- clip items (chapter.VideoFeatures)

def test_clip_items_gather_each_clips_frames():
    fs = _fs("train", 5)
    ds = chapter.VideoFeatures.of(fs, train=True, clips=True)
    assert len(ds) == 6 * 3
    x, y, v = ds[4]  # video 1, clip 1: frames 3..6
    assert v == 1 and int(y) == 1
    assert torch.equal(x, fs.features[1][3:7])


def test_clip_items_ten_crops_centre_for_test_random_for_train():
    fs = _fs("test", 5, crops=10)
    x, _, _ = chapter.VideoFeatures.of(fs, train=False, clips=True)[0]
    assert torch.equal(x, fs.features[0][0:4, 4])  # crop 4 is the centre in ten_crop's order
    torch.manual_seed(0)
    picked = set()
    train = chapter.VideoFeatures.of(fs, train=True, clips=True)
    for _ in range(40):
        x, _, _ = train[0]
        assert x.shape == (4, 5)
        picked |= {c for c in range(10) if torch.equal(x, fs.features[0][0:4, c])}
    assert len(picked) > 3  # different crops over draws


# --------------------------------------------------------------------------- experiments

def test_tables_and_fusion_on_fabricated_features(runs):
    t2 = M.run_table2(runs, seeds=[0])
    assert list(t2[["level", "pooling"]].itertuples(index=False, name=None)) == [
        (lv, p) for p in ("mean", "max") for lv in M.LEVELS]
    assert {"accuracy", "clip_accuracy", "mean_class_accuracy", "hidden", "layers", "seed"} <= set(t2.columns)
    assert t2["accuracy"].between(0, 100).all()
    t1 = M.run_table1(runs, seeds=[0])
    assert len(t1) == 9 and set(t1["width"]) == set(M.WIDTHS)
    assert len(runs.cache.results) == 9 + 5  # the default cell is shared by Tables 1 and 2

    fused = M.run_table3(runs, seeds=[0])
    assert list(fused["method"]) == ["Low RRN", "Mid RRN", "High RRN", "MRRN"]
    # Eq. 10 by hand from the three levels' video scores
    res = [runs.get(M.RunKey(lv, "mean", 8, 3, 0)) for lv in M.LEVELS]
    p = 0.1 * res[0].video_scores + 0.2 * res[1].video_scores + 0.7 * res[2].video_scores
    want = 100 * (p.argmax(1) == res[0].video_targets).float().mean().item()
    assert fused.loc[fused["method"] == "MRRN", "accuracy"].item() == pytest.approx(want)

    # the display tables keep the paper's rows and add ours
    t3 = M.table3_vs_paper(fused, runs.cfg)
    assert t3.columns[-1].startswith("ours:") and "RNN-FV+iDT" in set(t3["method"])
    assert t3.loc[t3["method"] == "MRRN", "paper: UCF-101"].item() == "81.9"
    assert t3.loc[t3["method"] == "LRCN", t3.columns[-1]].item() == "—"
    assert len(M.table2_vs_paper(t2, runs.cfg)) == 6
    assert len(M.table1_vs_paper(t1, runs.cfg)) == 9


def test_same_seed_same_numbers(runs):
    key = M.RunKey("low", "max", 4, 3, 7)
    torch.manual_seed(123)  # whatever the global random state before the run
    a = M.Runs(runs.feats, runs.cfg, cache=False).get(key)
    torch.rand(5)
    b = M.Runs(runs.feats, runs.cfg, cache=False).get(key)
    assert torch.equal(a.clip_logits, b.clip_logits)


def test_figures_data(runs):
    pred = M.run_fig3(runs, seed=0, k=2, per_kind=2)
    assert set(pred["rank"]) == {1, 2}
    assert (pred.groupby("video")["score"].sum() <= 1 + 1e-6).all()
    right = pred[(pred["kind"] == "right") & (pred["rank"] == 1)]
    assert len(right) > 0 and right["is_truth"].all()
    pc = M.run_fig4(runs, seeds=[0])
    assert len(pc) == 4 * len(CLASSES) and set(pc["category"]) == {"appearance", "motion", "temporal order"}
    cm, blocks = M.confusion(runs, seed=0)
    assert cm.shape == (3, 3) and cm.sum(axis=1).round(6).eq(100).all()
    assert [b[0] for b in blocks] == ["appearance", "motion", "temporal order"]


def test_claims_compare_conditions_the_chapter_computes(runs):
    claims = M.claims(runs.cfg)
    assert [c.id for c in claims] == ["M1", "M2", "M3a", "M3b", "M4", "M5"]  # M6 dropped: it cannot fail
    names = M.conditions(runs)
    assert all(c.better in names and c.worse in names and c.better != c.worse for c in claims)
    p = {c.id: c.paper_effect for c in claims}
    # the paper's effects, from its own tables: Table 1 (HMDB-51, 3 layers), Tables 2-3 (UCF-101)
    assert p["M1"] == pytest.approx(50.78 - 48.10)
    assert p["M3a"] == pytest.approx(81.38 - 64.16)
    assert p["M5"] == pytest.approx(81.9 - 81.4)
    assert {c.id for c in claims if c.expect == "no_gain"} == {"M2"}


def test_outcomes_of_the_fusion_are_eq10s_predictions(runs):
    out = M.outcomes(runs, seeds=[0])
    mrrn = out[out["condition"] == "MRRN"]
    y = runs.labels("test")
    assert mrrn["correct"].tolist() == (M.fused_scores(runs, seed=0).argmax(1) == y).long().tolist()
    assert len(out) == out["condition"].nunique() * len(y) and out["video"].iloc[0] == "v0"


def test_speed_claim_by_quartiles():
    sp = pd.DataFrame([
        {"model": "low-level RRN", "median_ms": 10, "q1_ms": 9, "q3_ms": 11},
        {"model": "mid-level RRN", "median_ms": 20, "q1_ms": 18, "q3_ms": 31},
        {"model": "high-level RRN", "median_ms": 60, "q1_ms": 55, "q3_ms": 65},
        {"model": "LRCN-style (ResNet-34 + LSTM)", "median_ms": 30, "q1_ms": 29, "q3_ms": 32},
        {"model": "3D CNN (r3d_18)", "median_ms": 100, "q1_ms": 90, "q3_ms": 110},
    ])
    v = M.speed_claim(sp).set_index(["rrn", "against"])["verdict"]
    assert v[("low-level RRN", "LRCN-style (ResNet-34 + LSTM)")] == "holds"
    assert v[("mid-level RRN", "LRCN-style (ResNet-34 + LSTM)")] == "inconclusive"
    assert v[("high-level RRN", "LRCN-style (ResNet-34 + LSTM)")] == "reversed"
    assert v[("high-level RRN", "3D CNN (r3d_18)")] == "holds"


def test_sru_timing_rows_and_multiply_adds():
    cfg = replace(M.CONFIGS["ci"], timing=replace(M.CONFIGS["ci"].timing, head_input=8, head_hidden=16,
                                                  head_layers=2, head_batch=2, head_time=5, repeats=2,
                                                  warmup=0))
    df = M.sru_timing(cfg).set_index("model")
    # SRU: 4 blocks of 16 x 8 (input != hidden) + 3 blocks of 16 x 16; LSTM: 4*16*(8+16) + 4*16*(16+16)
    assert df.loc["SRU (one matrix product)", "multiply_adds"] == 4 * 16 * 8 + 3 * 16 * 16
    assert df.loc["LSTM (torch.nn.LSTM)", "multiply_adds"] == 4 * 16 * 24 + 4 * 16 * 32
    assert (df["threads"] == 1).all()


# --------------------------------------------------------------------------- full mode refuses

def test_full_mode_without_the_dataset_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path / "data"))
    for name in ("ucf101", "hmdb51"):
        cfg = M.config("full", dataset=name)
        with pytest.raises(DatasetError, match=rf"{name}.*data/README.md"):
            M.preflight(cfg)


def test_full_mode_without_weights_refuses(tmp_path, monkeypatch):
    from actionbook.features.backbones import MissingWeightsError

    (tmp_path / "data" / "ucf101").mkdir(parents=True)
    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError, match="resnet34"):
        M.preflight(M.config("full"))


@pytest.mark.notebooks
def test_full_mode_notebook_stops_in_its_first_cells(actionbook_cli, tmp_path):
    r = actionbook_cli("run", "--mode", "full", "--out", tmp_path / "executed", "book/mrrn/experiments.md",
                       env={"ACTIONBOOK_DATA": str(tmp_path / "nodata")})
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "DatasetError" in out and "ucf101" in out


def test_fusion_weights_order_matches_eq10():
    # (0.1, 0.2, 0.7) for (low, mid, high): a confident high level decides
    low = mid = torch.tensor([[5.0, 0.0]])
    high = torch.tensor([[0.0, 5.0]])
    fused = metrics.fuse([low, mid, high], how="sum", weights=list(M.config("ci").level_weights))
    assert int(fused.argmax()) == 1 and math.isclose(float(fused.sum()), 1.0, rel_tol=1e-6)


@pytest.mark.notebooks
@pytest.mark.slow
def test_method_notebook_runs_in_ci(executed_ci):
    _, results = executed_ci("book/mrrn/method.md")  # once per session, no wall-clock timeout
    timing = pd.read_csv(results / "ci" / "mrrn" / "sru_timing.csv")
    assert set(timing["pass"]) == {"forward", "forward+backward"} and len(timing) == 6


def test_a_run_is_trained_again_when_its_features_content_changes(runs, tmp_path, monkeypatch):
    """The run cache's identity holds the features' content (`FeatureSet.identity`), not only the
    entry's key: features extracted again under the same key (a source video replaced) train anew."""
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path))
    key = M.RunKey("low", "mean", 4, 3, 0)

    def run_folders(content: str) -> list[str]:
        feats = {lv: {s: replace(fs, content=content) for s, fs in d.items()} for lv, d in runs.feats.items()}
        M.Runs(feats, runs.cfg).get(key)                      # the run cache on disk
        return sorted(p.name for p in (tmp_path / "runs" / M.CHAPTER).iterdir())

    first = run_folders("0123456789abcdef")
    assert run_folders("0123456789abcdef") == first and len(first) == 1  # read back, not trained again
    assert len(run_folders("fedcba9876543210")) == 2
