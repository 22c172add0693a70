"""The MRRN chapter's experiments (Zheng, An and Ruan, paper 001): configs, features, one function per table.

The chapter trains Recurrent Residual Networks (RRN: stacked SRU -> per-step tanh + FC ->
mean or max pooling over time, `actionbook.models.mrrn`) on frozen per-frame features of a
ResNet read at three depths, and fuses the three levels (MRRN, Eq. 10):

    features(cfg)              the frozen layer2 / layer3 / layer4 features, from the shared cache
    Runs(features, cfg)        trains (and remembers) one RRN per (level, pooling, hidden, layers, seed)
    table1(runs, seeds=)       hidden units x layers on the high level          (paper Table 1)
    table2(runs, seeds=)       level x pooling                                   (paper Table 2)
    fusion(runs, seeds=)       each level alone and the fused MRRN               (paper Table 3, Eq. 10)
    table3(fused, cfg)         the paper's comparison table with our two rows    (paper Table 3)
    predictions / per_class / confusion                                          (paper Figs. 3, 4, 5)
    speed(cfg)                 time per batch of the RRNs, an LRCN-style ResNet + LSTM and a 3D CNN (Fig. 6)
    sru_timing(cfg)            the SRU (one matrix product) against its step-by-step reference and an LSTM
    claims_audit(...)          each claim of the paper: effect over seeds and a computed verdict

Every experiment returns a tidy DataFrame, one row per configuration x seed, with accuracies in
% (like the paper). Two configurations, one code path:

- `full`: the paper's setting. ResNet-34 (ImageNet) layer2/3/4 features (128/256/512-d) of
  every frame of up to 20 clips of 30 frames (stride 8, short videos looped), on UCF-101 or
  HMDB-51 split 1 (or the generated benchmark's `full` preset); Adam, batch 28, 12 epochs,
  lr 1e-5 (high level) or 1e-4 (low and mid levels, Sec. 5.2), divided by 10 after epoch 8;
  dropout 0.5; hidden {256, 512, 1024} x layers {3, 4, 5}; default 3 x 1024, mean pooling.
  The paper's random 224 crop (+ flip) of the 256-short-side frame in training is, with a
  frozen feature cache, replaced by the 10 fixed crops (4 corners + centre, and their mirror
  images): each training clip takes one of the 10 at random every time it is drawn; testing
  uses the centre crop, as the paper.
- `ci`: the generated benchmark (20 classes, 64x64), the ci ResNet-18 (same 64-128-256-512
  stages as ResNet-34) pretrained on generated static images, the same 30-frame clips with
  stride 8 but at most 5 per video, centre crop only (no crop augmentation: the 64 -> 56
  crop leaves little to vary), and toy heads: hidden {8, 16, 32} x layers {3, 4, 5}, default
  3 x 32, 6 epochs with the lr divided by 10 after epoch 5, lr 1e-3 (high) and 1e-2 (low,
  mid: the paper's 10x) because tiny heads trained for a few epochs need a larger step than
  1e-5. The sizes are set by time: ~45 trainings must fit in about two minutes on 2 cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchvision
from torch import Tensor, nn

from actionbook import engine, metrics, results
from actionbook.experiments import full_dataset
from actionbook.experiments import preflight as _preflight
from actionbook.features import backbones as B
from actionbook.features.cache import FeatureSet
from actionbook.models.mrrn import RRN, RRNConfig
from actionbook.models.sru import SRULayer, sru_layer_reference
from actionbook.paths import cache_dir, results_dir
from actionbook.results import verdict
from actionbook.seed import seed_everything

CHAPTER = "mrrn"
LEVELS = ("low", "mid", "high")
LAYER_OF = {"low": "layer2", "mid": "layer3", "high": "layer4"}  # torchvision's stage names
POOLINGS = ("mean", "max")

__all__ = ["CHAPTER", "LEVELS", "TimingConfig", "Config", "CONFIGS", "config", "preflight", "features",
           "ClipDataset", "Runs", "table1", "table2", "fusion", "table3", "paper_table1", "paper_table2",
           "predictions", "per_class", "confusion", "class_categories", "speed", "sru_timing",
           "sru_benchmark", "verdict", "claims_audit", "speed_claim", "table1_vs_paper", "table2_vs_paper",
           "plot_table1", "plot_predictions", "plot_per_class", "plot_confusion", "plot_speed"]


# --------------------------------------------------------------------------- configs

@dataclass(frozen=True)
class TimingConfig:
    """Sizes for the speed measurements (paper Sec. 5.3, Fig. 6; the method notebook's SRU timing)."""

    rrn_batch: int = 10        # clips per batch for the RRNs and the LRCN-style model (paper: 10)
    cnn3d_batch: int = 40      # clips per batch for the 3D CNN (paper: 40 for C3D)
    frames: int = 30           # frames per clip of the RRNs / LRCN (MRRN's 30-frame clips)
    cnn3d_frames: int = 16     # frames per clip of the 3D CNN (C3D's 16)
    image: int = 224           # frame side for the 2D ResNet
    cnn3d_image: int = 112     # frame side for the 3D CNN (C3D's 112)
    repeats: int = 20          # timed batches (the paper averages 100 batches)
    warmup: int = 3
    # the recurrent heads alone (SRU vs LSTM, and the SRU against its step-by-step reference)
    head_input: int = 512
    head_hidden: int = 1024
    head_layers: int = 3
    head_batch: int = 28
    head_time: int = 30        # time steps (MRRN's 30-frame clips)
    threads: int | None = None  # torch CPU threads while timing (None: torch's default)


@dataclass(frozen=True)
class Config:
    """Everything the chapter's experiments depend on; `CONFIGS[mode]` holds the two presets."""

    mode: str
    dataset: str               # a generated benchmark name ("ci", "full") or a dataset folder
    layout: str                # "ucf101" or "hmdb51"
    dataset_label: str         # how tables name our data, e.g. "UCF-101 split 1"
    paper_dataset: str         # the paper's dataset our numbers are set beside: "UCF-101" or "HMDB-51"
    split: int = 1
    backbone: str = "resnet34"  # the paper's; ci builds its ResNet-18 stand-in (features.backbones)
    clip_length: int = 30
    clip_stride: int = 8
    max_clips: int = 20
    train_crops: str = "10"    # "10": a random one of the 10 fixed crops per clip; "center"
    test_crops: str = "center"
    hidden_sizes: tuple[int, ...] = (256, 512, 1024)  # Table 1's rows
    layer_counts: tuple[int, ...] = (3, 4, 5)         # Table 1's columns
    hidden: int = 1024         # the default model (Sec. 5.1: 3 layers x 1024 units)
    layers: int = 3
    pooling: str = "mean"
    dropout: float = 0.5
    epochs: int = 12
    batch_size: int = 28
    lr: float = 1e-5           # the high level
    lr_shallow: float = 1e-4   # the low and mid levels (Sec. 5.2: they converge slowly)
    milestones: tuple[int, ...] = (8,)
    gamma: float = 0.1
    level_weights: tuple[float, ...] = (0.1, 0.2, 0.7)  # low, mid, high: Eq. 10's c, b, a
    eval_batch_size: int = 256
    device: str = "auto"
    checkpoints: bool = True   # a checkpoint per run and epoch, so a killed full run resumes
    threads: int | None = None  # torch CPU threads while training the heads (None: torch's default)
    progress: bool = True      # progress bars for extraction and training (off in ci: the page stays clean)
    extract_workers: int = 2
    timing: TimingConfig = field(default_factory=TimingConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("ci", "full"):
            raise ValueError(f"Config.mode must be 'ci' or 'full', got {self.mode!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"Config.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        for name in ("train_crops", "test_crops"):
            if getattr(self, name) not in ("center", "10"):
                raise ValueError(f"Config.{name} must be 'center' or '10', got {getattr(self, name)!r}")
        if len(self.level_weights) != len(LEVELS):
            raise ValueError(f"Config.level_weights needs one weight per level {LEVELS}, got {self.level_weights}")
        if self.hidden not in self.hidden_sizes or self.layers not in self.layer_counts:
            raise ValueError("the default model (hidden, layers) must be a cell of Table 1's grid")

    def lr_of(self, level: str) -> float:
        """The learning rate of one level (the paper trains the low and mid levels 10x faster)."""
        return self.lr if level == "high" else self.lr_shallow

    def input_size(self, level: str) -> int:
        """The feature size of one level: 128 / 256 / 512 (ResNet-18 and -34 alike)."""
        return {"low": 128, "mid": 256, "high": 512}[level]


CONFIGS: dict[str, Config] = {
    "full": Config(mode="full", dataset=str(Path("ucf101")), layout="ucf101", dataset_label="UCF-101 split 1",
                   paper_dataset="UCF-101"),
    # ci: the generated benchmark at toy size. Scaled down (everything else is the paper's):
    # hidden {8, 16, 32} instead of {256, 512, 1024} (default 3 x 32); 6 epochs (lr / 10 after
    # 5) instead of 12 (after 8); lr 1e-3 / 1e-2 instead of 1e-5 / 1e-4 (the same 10x ratio);
    # at most 5 clips per video instead of 20 (ci videos have 48-96 frames, 3-9 clips);
    # centre crop only; one CPU thread (tiny heads gain nothing from two on a shared machine);
    # small inputs and batches for the timings.
    "ci": Config(mode="ci", dataset="ci", layout="ucf101", dataset_label="generated benchmark (ci)",
                 paper_dataset="UCF-101", max_clips=5, train_crops="center", hidden_sizes=(8, 16, 32), hidden=32,
                 epochs=6, milestones=(5,), lr=1e-3, lr_shallow=1e-2, checkpoints=False, threads=1, progress=False,
                 timing=TimingConfig(rrn_batch=2, cnn3d_batch=8, frames=8, cnn3d_frames=8, image=32,
                                     cnn3d_image=32, repeats=7, warmup=1, head_input=128,
                                     head_hidden=256, head_layers=3, head_batch=8, threads=1)),
}


def config(mode: str, *, dataset: str = "ucf101") -> Config:
    """`CONFIGS[mode]`, with the full-mode dataset chosen by `dataset`.

    full: "ucf101" (default; `data_dir()/ucf101`), "hmdb51" (`data_dir()/hmdb51`), or
    "generated" (the generated benchmark's `full` preset). ci always uses the ci benchmark and
    ignores `dataset`.
    """
    if mode not in CONFIGS:
        raise ValueError(f"mode must be one of {sorted(CONFIGS)}, got {mode!r}")
    cfg = CONFIGS[mode]
    if mode == "ci":
        return cfg
    return replace(cfg, **full_dataset(dataset))


def preflight(cfg: Config) -> dict[str, Any]:
    """Check, before any work, that the dataset and the backbone weights are there
    (`actionbook.experiments.preflight`: a clear DatasetError or MissingWeightsError)."""
    return _preflight(mode=cfg.mode, dataset=cfg.dataset, layout=cfg.layout, backbone=cfg.backbone,
                      split=cfg.split)


# --------------------------------------------------------------------------- features

def features(cfg: Config, *, progress: bool | None = None) -> dict[str, dict[str, FeatureSet]]:
    """The frozen features of every level: `{level: {"train": FeatureSet, "test": FeatureSet}}`.

    One cache entry per (level, subset): every frame of MRRN's clips (`sampling="mrrn"`), the
    stage's output averaged over space (Eq. 7). Extracted once, then read from the cache.
    """
    from actionbook.features.extract import extract_features

    out: dict[str, dict[str, FeatureSet]] = {}
    params = dict(length=cfg.clip_length, stride=cfg.clip_stride, max_clips=cfg.max_clips)
    progress = cfg.progress if progress is None else progress
    for level in LEVELS:
        out[level] = {}
        for subset, crops in (("train", cfg.train_crops), ("test", cfg.test_crops)):
            out[level][subset] = extract_features(
                dataset=cfg.dataset, layout=cfg.layout, split=cfg.split, subset=subset,
                backbone=cfg.backbone, layer=LAYER_OF[level], sampling="mrrn", sampling_params=params,
                crops=crops, mode=cfg.mode, num_workers=cfg.extract_workers, progress=progress)
    return out


class ClipDataset(torch.utils.data.Dataset):
    """MRRN's clip-level items `(x, y, video_index)` from a FeatureSet (Sec. 4.2).

    Every clip of every video is one item: x (clip_length, D), the features of the clip's
    frames (`FeatureSet.index` names them), y the video's label. With 10 crops per frame,
    `train=True` takes one crop at random per clip (the same for all its frames: one random
    crop of the clip), `train=False` the centre crop (crop 4 in the 10-crop order).
    """

    CENTRE = 4  # ten_crop's order: 4 corners, centre, then the same mirrored

    def __init__(self, fs: FeatureSet, *, train: bool) -> None:
        if any(ix is None for ix in fs.index):
            raise ValueError(f"{fs.key}: no clip index; extract with sampling='mrrn'")
        self.fs, self.train = fs, train
        self.items = [(v, k) for v, ix in enumerate(fs.index) for k in range(len(ix))]  # (video, clip)
        self.y = fs.targets()
        self.crops = fs.features[0].ndim == 3  # (F, crops, D)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        v, k = self.items[i]
        x = self.fs.features[v][self.fs.index[v][k]]  # (T, D) or (T, crops, D)
        if self.crops:
            c = int(torch.randint(x.shape[1], ())) if self.train else self.CENTRE
            x = x[:, c]  # (T, D)
        return x, self.y[v], v


# --------------------------------------------------------------------------- training

@dataclass(frozen=True)
class RunKey:
    level: str
    pooling: str
    hidden: int
    layers: int
    seed: int


class Runs:
    """Trains one RRN per `RunKey` on demand and remembers its test result (`EvalResult`).

    Table 1 and Table 2 share their common cell (high level, mean pooling, the default
    size), and the fusion reuses Table 2's mean-pooling runs: each is trained once.
    """

    def __init__(self, feats: dict[str, dict[str, FeatureSet]], cfg: Config, *, progress: bool | None = None) -> None:
        self.feats, self.cfg = feats, cfg
        self.progress = cfg.progress if progress is None else progress
        self.results: dict[RunKey, engine.EvalResult] = {}
        self.seconds: dict[RunKey, float] = {}
        self._data: dict[str, tuple[ClipDataset, ClipDataset]] = {}

    @property
    def classes(self) -> list[str]:
        return next(iter(self.feats.values()))["test"].classes

    @property
    def video_ids(self) -> list[str]:
        return next(iter(self.feats.values()))["test"].video_ids

    def data(self, level: str) -> tuple[ClipDataset, ClipDataset]:
        if level not in self._data:
            fs = self.feats[level]
            self._data[level] = (ClipDataset(fs["train"], train=True), ClipDataset(fs["test"], train=False))
        return self._data[level]

    def train_config(self, key: RunKey) -> engine.TrainConfig:
        c = self.cfg
        return engine.TrainConfig(epochs=c.epochs, batch_size=c.batch_size, optimizer="adam", lr=c.lr_of(key.level),
                                  milestones=c.milestones, gamma=c.gamma, seed=key.seed, device=c.device)

    def get(self, key: RunKey) -> engine.EvalResult:
        """The test result of the run `key` (training it first if needed)."""
        if key not in self.results:
            train_ds, test_ds = self.data(key.level)
            seed_everything(key.seed)  # the initial weights depend on the seed only
            model = RRN(RRNConfig(input_size=self.cfg.input_size(key.level), num_classes=len(self.classes),
                                  hidden_size=key.hidden, num_layers=key.layers, pooling=key.pooling,
                                  dropout=self.cfg.dropout))
            tc = self.train_config(key)
            ckpt = self._ckpt_dir(key, tc) if self.cfg.checkpoints else None
            t0 = time.perf_counter()
            with threads(self.cfg.threads):
                engine.fit(model, train_ds, None, tc, ckpt_dir=ckpt, progress=self.progress)
                self.seconds[key] = time.perf_counter() - t0
                self.results[key] = engine.evaluate(model, test_ds, batch_size=self.cfg.eval_batch_size,
                                                    device=self.cfg.device)
        return self.results[key]

    def row(self, key: RunKey) -> dict[str, Any]:
        """One tidy row: the run's key and its test accuracies in %."""
        r = self.get(key)
        return {**dataclasses.asdict(key), "accuracy": 100 * r.video["top1"], "clip_accuracy": 100 * r.clip["top1"],
                "mean_class_accuracy": 100 * r.video["mean_class"], "train_seconds": self.seconds.get(key, math.nan)}

    def _ckpt_dir(self, key: RunKey, tc: engine.TrainConfig) -> Path:
        blob = json.dumps({"features": self.feats[key.level]["train"].key, "run": dataclasses.asdict(key),
                           "train": dataclasses.asdict(tc), "dropout": self.cfg.dropout}, sort_keys=True)
        return cache_dir() / "runs" / CHAPTER / hashlib.sha256(blob.encode()).hexdigest()[:16]


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


WIDTHS = ("narrow", "medium", "wide")  # Table 1's rows, whatever the sizes (ci's are 32x smaller)


def _width(sizes: Sequence[int]) -> dict[int, str]:
    if len(sizes) != len(WIDTHS):
        raise ValueError(f"Table 1 has {len(WIDTHS)} widths, got hidden sizes {tuple(sizes)}")
    return dict(zip(sorted(sizes), WIDTHS))


def table1(runs: Runs, *, seeds: int | Sequence[int]) -> pd.DataFrame:
    """Paper Table 1: hidden units x layers, high level, mean pooling; one row per cell x seed.

    `width` names the row (narrow / medium / wide) so that ci's sizes line up with the paper's.
    """
    c = runs.cfg
    width = _width(c.hidden_sizes)
    return pd.DataFrame([{"width": width[h], **runs.row(RunKey("high", "mean", h, n, s))}
                         for s in _seeds(seeds) for h in c.hidden_sizes for n in c.layer_counts])


def table2(runs: Runs, *, seeds: int | Sequence[int]) -> pd.DataFrame:
    """Paper Table 2: level x pooling at the default size; one row per cell x seed."""
    c = runs.cfg
    return pd.DataFrame([runs.row(RunKey(lv, p, c.hidden, c.layers, s)) for s in _seeds(seeds)
                         for p in POOLINGS for lv in LEVELS])


def _fused(runs: Runs, seed: int) -> tuple[Tensor, Tensor]:
    """Eq. 10 on the video scores of the three mean-pooling levels: (V, C) scores, (V,) targets.

    The levels' video scores are already softmax averages over clips, so the fusion weighs
    them directly (no second softmax).
    """
    c = runs.cfg
    res = [runs.get(RunKey(lv, c.pooling, c.hidden, c.layers, seed)) for lv in LEVELS]
    for r in res[1:]:
        if not torch.equal(r.video_targets, res[0].video_targets):
            raise ValueError("the levels' test sets differ (videos or order): extract every level from the same split")
    scores = metrics.fuse([r.video_scores for r in res], how="sum", weights=list(c.level_weights), softmax=False)
    return scores, res[0].video_targets


def fusion(runs: Runs, *, seeds: int | Sequence[int]) -> pd.DataFrame:
    """Each level alone and their Eq. 10 fusion (MRRN), at the default size and pooling."""
    c = runs.cfg
    rows = []
    for s in _seeds(seeds):
        for lv in LEVELS:
            r = runs.get(RunKey(lv, c.pooling, c.hidden, c.layers, s))
            rows.append({"method": f"{lv.capitalize()} RRN", "seed": s, "accuracy": 100 * r.video["top1"]})
        scores, y = _fused(runs, s)
        rows.append({"method": "MRRN", "seed": s, "accuracy": 100 * metrics.topk_accuracy(scores, y, k=1)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the paper's tables

def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 (HMDB-51), with `accuracy` = the paper's number and `width`."""
    p = results.paper_table(CHAPTER, "table1")
    return p.assign(accuracy=p["paper"], seed=0, width=p["hidden"].map(_width(sorted(p["hidden"].unique()))))


def table1_vs_paper(t1: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 1 cell by cell: the paper's (HMDB-51) beside ours, rows matched by width and depth."""
    paper = paper_table1()
    sizes = lambda hs: "/".join(str(h) for h in sorted(hs))  # noqa: E731
    return results.paper_vs_ours(
        t1, paper, on=["width", "layers"], value="accuracy",
        paper_label=f"paper: HMDB-51 split 1 (hidden {sizes(paper['hidden'].unique())})",
        ours_label=f"ours: {cfg.dataset_label}, {cfg.mode} (hidden {sizes(cfg.hidden_sizes)})")


def table2_vs_paper(t2: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 2 cell by cell: the paper's numbers on both datasets beside ours."""
    ours_label = f"ours: {cfg.dataset_label} ({cfg.mode})"
    out = None
    for ds in ("HMDB-51", "UCF-101"):
        part = results.paper_vs_ours(t2, paper_table2(ds), on=["level", "pooling"], value="accuracy",
                                     paper_label=f"paper: {ds}", ours_label=ours_label)
        if out is None:
            out = part
        else:
            out = out.drop(columns=[ours_label]).merge(part, on=["level", "pooling"], how="outer", sort=False)
    order = {(lv, p): i for i, (p, lv) in enumerate((p, lv) for p in POOLINGS for lv in LEVELS)}
    out = out.assign(_o=[order.get(k, len(order)) for k in zip(out["level"], out["pooling"])])
    out = out.sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)
    return out[["level", "pooling", "paper: HMDB-51", "paper: UCF-101", ours_label]].fillna("—")


def paper_table2(dataset: str) -> pd.DataFrame:
    """The paper's Table 2 rows of one dataset ("HMDB-51" or "UCF-101")."""
    p = results.paper_table(CHAPTER, "table2")
    return p[p["dataset"] == dataset].assign(accuracy=lambda d: d["paper"], seed=0).reset_index(drop=True)


def table3(fused: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The paper's Table 3 as printed (both datasets), with our High RRN and MRRN beside theirs."""
    p = results.paper_table(CHAPTER, "table3")
    ours = fused[fused["method"].isin(["High RRN", "MRRN"])]
    ours_label = f"ours: {cfg.dataset_label} ({cfg.mode})"
    out = None
    for ds in ("HMDB-51", "UCF-101"):
        part = results.paper_vs_ours(ours, p[p["dataset"] == ds], on=["method"], value="accuracy",
                                     paper_label=f"paper: {ds}", ours_label=ours_label)
        part = part.drop(columns=[ours_label]) if out is not None else part
        out = part if out is None else out.merge(part, on="method", how="outer", sort=False)
    order = list(dict.fromkeys(p["method"]))
    out["_o"] = out["method"].map({m: i for i, m in enumerate(order)})
    out = out.sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)
    cols = ["method", "paper: HMDB-51", "paper: UCF-101", ours_label]
    return out[cols].fillna("—")


# --------------------------------------------------------------------------- figures 3-5

def class_categories(cfg: Config, classes: Sequence[str]) -> list[str] | None:
    """The coarse category of each class (the generated benchmark's five, UCF-101's action
    types); None for HMDB-51, which has no official grouping."""
    if cfg.layout == "hmdb51":
        return None
    from actionbook.data.generate import CLASSES

    generated = {c.name: c.category for c in CLASSES}
    if all(c in generated for c in classes):
        return [generated[c] for c in classes]
    from actionbook.categories import ucf101_action_types

    types = ucf101_action_types()
    missing = [c for c in classes if c not in types]
    if missing:
        raise ValueError(f"classes {missing[:3]} have no UCF-101 action type; is this UCF-101?")
    return [types[c] for c in classes]


def predictions(runs: Runs, *, seed: int, k: int = 5, per_kind: int = 3) -> pd.DataFrame:
    """Fig. 3: the top-k MRRN scores of a few correctly and a few wrongly classified test videos.

    The videos are the first `per_kind` right and wrong ones in test order; rows: video, kind
    ("correct" / "wrong"), truth, rank, class, score, is_truth.
    """
    scores, y = _fused(runs, seed)
    scores = scores / scores.sum(1, keepdim=True)  # the weights sum to 1; keep it exact
    pred = scores.argmax(1)
    rows = []
    for kind, mask in (("correct", pred == y), ("wrong", pred != y)):
        for v in torch.nonzero(mask).flatten()[:per_kind].tolist():
            top = scores[v].topk(min(k, scores.shape[1]))
            for rank, (s, c) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
                rows.append({"video": runs.video_ids[v], "kind": kind, "truth": runs.classes[int(y[v])],
                             "rank": rank, "class": runs.classes[c], "score": s, "is_truth": c == int(y[v])})
    return pd.DataFrame(rows)


def per_class(runs: Runs, *, seeds: int | Sequence[int]) -> pd.DataFrame:
    """Fig. 4: per-class test accuracy (%) of each level (mean pooling) and of MRRN, per seed."""
    c = runs.cfg
    cats = class_categories(c, runs.classes)
    rows = []
    for s in _seeds(seeds):
        preds = {lv.capitalize() + " RRN": runs.get(RunKey(lv, c.pooling, c.hidden, c.layers, s)).video_pred
                 for lv in LEVELS}
        fused, y = _fused(runs, s)
        preds["MRRN"] = fused.argmax(1)
        for model, pred in preds.items():
            acc = metrics.per_class_accuracy(pred, y, num_classes=len(runs.classes))
            for j, name in enumerate(runs.classes):
                rows.append({"class": name, "category": cats[j] if cats else "", "model": model, "seed": s,
                             "accuracy": 100 * float(acc[j])})
    return pd.DataFrame(rows)


def confusion(runs: Runs, *, seed: int) -> tuple[pd.DataFrame, list[tuple[str, int, int]]]:
    """Fig. 5: MRRN's row-normalised confusion matrix (%), classes ordered by coarse category.

    Returns the matrix as a DataFrame (rows: true class, columns: predicted class) and the
    category blocks (name, start, stop) to draw.
    """
    fused, y = _fused(runs, seed)
    n = len(runs.classes)
    cm = metrics.confusion_matrix(fused.argmax(1), y, num_classes=n, normalize=True) * 100
    cats = class_categories(runs.cfg, runs.classes)
    order = metrics.category_order(cats) if cats else list(range(n))
    cm = metrics.reorder_matrix(cm, order)
    names = [runs.classes[i] for i in order]
    blocks = metrics.category_blocks(cats, order) if cats else []
    return pd.DataFrame(cm.numpy(), index=names, columns=names), blocks


# --------------------------------------------------------------------------- speed (Fig. 6)

class _FramesThenHead(nn.Module):
    """A 2D backbone on every frame, then a recurrent head: clips (B, T, 3, H, W) -> scores (B, P)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        f = self.backbone(x.flatten(0, 1))  # (B*T, C)
        return self.head(f.view(b, t, -1))  # (B, P)


class _LSTMHead(nn.Module):
    """LRCN-style head: a stacked nn.LSTM, per-step tanh + FC, mean over time (as the RRN)."""

    def __init__(self, input_size: int, hidden: int, layers: int, num_classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.lstm(x)  # (B, T, H)
        return self.fc(torch.tanh(h)).mean(1)  # (B, P)


def _resnet34_to(layer: str) -> nn.Module:
    """ResNet-34 cut after `layer`, pooled (random weights: the time does not depend on them)."""
    net = torchvision.models.resnet34()
    with torch.no_grad():
        return B.FrameBackbone(net, layer=layer, mean=torch.zeros(3), std=torch.ones(3)).eval()


def _time(fns: dict[str, Callable[[], Any]], *, device: torch.device, repeats: int,
          warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function, interleaved over repeats (a load change hits all alike)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


@contextlib.contextmanager
def threads(n: int | None):
    """Run the block with `n` torch CPU threads (None: leave the setting alone)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _quartiles(v: list[float]) -> tuple[float, float, float]:
    if len(v) < 2:
        return v[0], v[0], v[0]
    q1, _, q3 = statistics.quantiles(v, n=4)
    return q1, statistics.median(v), q3


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                        ("cpu" if name == "auto" else name))


def speed(cfg: Config, *, num_classes: int = 101) -> pd.DataFrame:
    """Fig. 6: time per batch (forward, no gradients) of whole models, from pixels to scores.

    - low / mid / high-level RRN: ResNet-34 up to layer2 / 3 / 4, pooled, then the default RRN
      head (cfg.hidden x cfg.layers SRU), batch `rrn_batch` clips of `frames` frames;
    - LRCN-style: the full ResNet-34, then an nn.LSTM head of the same size, same batch;
    - 3D CNN (C3D-style): torchvision's r3d_18, batch `cnn3d_batch` clips of `cnn3d_frames`;
    - the two recurrent heads alone, on the high level's features.
    Random weights (the time does not depend on them). Rows: model, batch, input, device,
    threads, median / q1 / q3 in ms, repeats.
    """
    t = cfg.timing
    dev = _device(cfg.device)
    g = torch.Generator().manual_seed(0)
    clips = torch.rand(t.rrn_batch, t.frames, 3, t.image, t.image, generator=g).to(dev)
    clips3d = torch.rand(t.cnn3d_batch, 3, t.cnn3d_frames, t.cnn3d_image, t.cnn3d_image, generator=g).to(dev)
    feats = torch.randn(t.rrn_batch, t.frames, 512, generator=g).to(dev)

    def rrn_head(level: str) -> nn.Module:
        return RRN(RRNConfig(input_size=cfg.input_size(level), num_classes=num_classes, hidden_size=cfg.hidden,
                             num_layers=cfg.layers, pooling=cfg.pooling))

    models: dict[str, tuple[nn.Module, Tensor, str]] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for lv in LEVELS:
            models[f"{lv}-level RRN"] = (_FramesThenHead(_resnet34_to(LAYER_OF[lv]), rrn_head(lv)), clips, "clips")
        lrcn = _FramesThenHead(_resnet34_to("layer4"), _LSTMHead(512, cfg.hidden, cfg.layers, num_classes))
        models["LRCN-style (ResNet-34 + LSTM)"] = (lrcn, clips, "clips")
        models["3D CNN (r3d_18)"] = (torchvision.models.video.r3d_18(num_classes=num_classes), clips3d, "clips3d")
        models["SRU head alone"] = (rrn_head("high"), feats, "features")
        models["LSTM head alone"] = (_LSTMHead(512, cfg.hidden, cfg.layers, num_classes), feats, "features")

    fns = {}
    for name, (m, x, _) in models.items():
        m.to(dev).eval()
        fns[name] = (lambda m=m, x=x: _no_grad(m, x))
    with threads(t.threads):
        n_threads = torch.get_num_threads()
        times = _time(fns, device=dev, repeats=t.repeats, warmup=t.warmup)
    rows = []
    for name, (m, x, kind) in models.items():
        q1, med, q3 = _quartiles(times[name])
        rows.append({"model": name, "batch": x.shape[0], "input": "x".join(map(str, x.shape[1:])),
                     "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
                     "threads": n_threads, "median_ms": 1e3 * med, "q1_ms": 1e3 * q1,
                     "q3_ms": 1e3 * q3, "repeats": t.repeats})
    return pd.DataFrame(rows)


@torch.no_grad()
def _no_grad(m: nn.Module, x: Tensor) -> None:
    m(x)


def speed_claim(df: pd.DataFrame) -> pd.DataFrame:
    """M7: is each RRN faster per batch than the LRCN-style model and the 3D CNN?

    "holds" when the RRN's third quartile is below the other's first quartile, "reversed"
    when its first quartile is above the other's third, else "inconclusive".
    """
    rows = []
    d = df.set_index("model")
    for lv in LEVELS:
        r = d.loc[f"{lv}-level RRN"]
        for other in ("LRCN-style (ResNet-34 + LSTM)", "3D CNN (r3d_18)"):
            o = d.loc[other]
            v = "holds" if r["q3_ms"] < o["q1_ms"] else ("reversed" if r["q1_ms"] > o["q3_ms"] else "inconclusive")
            rows.append({"rrn": f"{lv}-level RRN", "against": other, "rrn_ms": r["median_ms"],
                         "other_ms": o["median_ms"], "speed-up": o["median_ms"] / r["median_ms"], "verdict": v})
    return pd.DataFrame(rows)


def sru_timing(cfg: Config, *, backward: bool = False) -> pd.DataFrame:
    """The SRU layer stack three ways at `cfg.timing`'s head sizes: ours (one matrix product
    for all time steps, then the element-wise scan), Eq. 2-6 step by step with the *same
    weights* (`sru_layer_reference`), and torch.nn.LSTM of the same size.

    Rows: model, median / q1 / q3 in ms, and `multiply_adds` per time step and sequence
    (the weights in matrices: 3 H I for an SRU layer, 4 H (I + H) for an LSTM layer).
    """
    t = cfg.timing
    dev = _device(cfg.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sizes = [t.head_input] + [t.head_hidden] * (t.head_layers - 1)
        layers = [SRULayer(i, t.head_hidden).to(dev) for i in sizes]
        lstm = nn.LSTM(t.head_input, t.head_hidden, t.head_layers).to(dev)
        x = torch.randn(t.head_time, t.head_batch, t.head_input).to(dev)  # (T, B, I) time-major

    def ours() -> Tensor:
        h = x
        for layer in layers:
            h, _ = layer(h)
        return h

    def reference() -> Tensor:
        h = x
        for layer in layers:
            h, _ = sru_layer_reference(h, layer.weight, layer.bias)
        return h

    def torch_lstm() -> Tensor:
        return lstm(x)[0]

    def run(fn: Callable[[], Tensor]) -> Callable[[], None]:
        if backward:
            def step() -> None:
                fn().sum().backward()
            return step
        return lambda: _call_no_grad(fn)

    fns = {"SRU (one matrix product)": run(ours), "SRU, step by step (Eq. 2-6 literally)": run(reference),
           "LSTM (torch.nn.LSTM)": run(torch_lstm)}
    with threads(t.threads):
        n_threads = torch.get_num_threads()
        times = _time(fns, device=dev, repeats=t.repeats, warmup=t.warmup)
    macs = {"SRU (one matrix product)": sum(l.weight.numel() for l in layers),
            "SRU, step by step (Eq. 2-6 literally)": sum(l.weight.numel() for l in layers),
            "LSTM (torch.nn.LSTM)": sum(p.numel() for p in lstm.parameters() if p.dim() == 2)}
    rows = []
    for name, ts in times.items():
        q1, med, q3 = _quartiles(ts)
        rows.append({"model": name, "median_ms": 1e3 * med, "q1_ms": 1e3 * q1, "q3_ms": 1e3 * q3,
                     "multiply_adds": macs[name], "input": t.head_input, "hidden": t.head_hidden,
                     "layers": t.head_layers, "time_steps": t.head_time, "batch": t.head_batch,
                     "device": str(dev), "threads": n_threads,
                     "pass": "forward+backward" if backward else "forward"})
    return pd.DataFrame(rows)


@torch.no_grad()
def _call_no_grad(fn: Callable[[], Tensor]) -> None:
    fn()


def sru_benchmark(path: Path | None = None) -> pd.DataFrame | None:
    """The CSV `benchmarks/sru.py --csv` wrote (default `results/bench/sru.csv`), or None."""
    path = Path(path) if path is not None else results_dir() / "bench" / "sru.csv"
    return pd.read_csv(path) if path.is_file() else None


# --------------------------------------------------------------------------- claims

def _cell(df: pd.DataFrame, **where: Any) -> pd.Series:
    """Accuracy per seed of the rows matching `where` (averaged over the other columns)."""
    m = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        m &= (df[k] == v).to_numpy()
    return df[m].groupby("seed")["accuracy"].mean()


def _effects(t1: pd.DataFrame, t2: pd.DataFrame, fused: pd.DataFrame | None) -> dict[str, pd.Series]:
    """Per-seed effects of claims M1-M5 (points of accuracy; positive = as the paper says)."""
    hs, ls = sorted(t1["hidden"].unique()), sorted(t1["layers"].unique())
    out = {
        "M1": _cell(t1, hidden=hs[-1]) - _cell(t1, hidden=hs[0]),
        "M2": _cell(t1, layers=ls[0]) - _cell(t1, layers=ls[-1]),
        "M3a": _cell(t2, level="high", pooling="mean") - _cell(t2, level="mid", pooling="mean"),
        "M3b": _cell(t2, level="mid", pooling="mean") - _cell(t2, level="low", pooling="mean"),
        "M4": _cell(t2, pooling="mean") - _cell(t2, pooling="max"),
    }
    if fused is not None:
        out["M5"] = _cell(fused, method="MRRN") - _cell(fused, method="High RRN")
    return out


CLAIMS = {
    "M1": "more hidden units help: largest minus smallest width, mean over depths (Table 1)",
    "M2": "depth beyond 3 does not help: 3 layers minus 5 layers, mean over widths (Table 1)",
    "M3a": "high level beats mid level, mean pooling (Table 2)",
    "M3b": "mid level beats low level, mean pooling (Table 2)",
    "M4": "mean pooling beats max pooling, mean over levels (Table 2)",
    "M5": "fusing the levels (MRRN, Eq. 10) beats the best single level, the high RRN (Table 3)",
    "M6": "on some classes a lower level beats the high level: % of classes where low or mid > high (Fig. 4)",
}


def claims_audit(t1: pd.DataFrame, t2: pd.DataFrame, fused: pd.DataFrame, classes: pd.DataFrame | None = None, *,
                 paper_dataset: str = "UCF-101") -> pd.DataFrame:
    """One row per claim: our effect (mean, std over seeds, n), its verdict, and the paper's effect.

    The paper's effect is computed by the same functions from the paper's tables (Table 1 on
    HMDB-51, Tables 2-3 on `paper_dataset`), never typed in.
    """
    ours = _effects(t1, t2, fused)
    t3 = results.paper_table(CHAPTER, "table3")
    t3 = t3[(t3["dataset"] == paper_dataset) & t3["method"].isin(["High RRN", "MRRN"])]
    paper = _effects(paper_table1(), paper_table2(paper_dataset), t3.assign(accuracy=t3["paper"], seed=0))
    if classes is not None:  # M6: share of classes where the low or mid level beats the high one
        wide = classes.pivot_table(index=["seed", "class"], columns="model", values="accuracy")
        better = (wide[["Low RRN", "Mid RRN"]].max(axis=1) > wide["High RRN"]).groupby("seed").mean() * 100
        ours["M6"] = better
    rows = []
    for claim, eff in ours.items():
        e = eff.to_numpy(dtype=float)
        p = paper.get(claim)
        rows.append({"claim": claim, "statement": CLAIMS[claim], "effect": float(e.mean()),
                     "std": float(e.std(ddof=1)) if len(e) > 1 else 0.0, "n": len(e), "verdict": verdict(e),
                     "paper_effect": float(p.iloc[0]) if p is not None else math.nan})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures

def plot_table1(t1: pd.DataFrame, cfg: Config):
    """Two heat maps, the paper's Table 1 (HMDB-51) and ours (mean over seeds), width x depth."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ours = t1.groupby(["hidden", "layers"])["accuracy"].mean().unstack()
    paper = paper_table1().pivot_table(index="hidden", columns="layers", values="paper")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, data, title in ((axes[0], paper, "paper: HMDB-51 split 1"),
                            (axes[1], ours, f"ours: {cfg.dataset_label} ({cfg.mode}), mean of seeds")):
        sns.heatmap(data, annot=True, fmt=".1f", cmap="viridis", cbar=False, ax=ax)
        ax.set(title=title, xlabel="SRU layers", ylabel="hidden units")
    fig.tight_layout()
    return fig


def plot_predictions(pred: pd.DataFrame):
    """Fig. 3: one panel per video, its top-k classes as bars: the true class purple,
    other classes green if the video is right, red if it is wrong (the paper's colours)."""
    import matplotlib.pyplot as plt

    videos = list(dict.fromkeys(pred["video"]))
    cols = max(1, (len(videos) + 1) // 2)
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 4.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    kinds = {"correct": 0, "wrong": 1}
    counters = {0: 0, 1: 0}
    for v in videos:
        d = pred[pred["video"] == v].sort_values("rank")
        r = kinds[d["kind"].iloc[0]]
        ax = axes[r, counters[r]]
        counters[r] += 1
        ax.set_axis_on()
        colour = ["purple" if t else ("green" if r == 0 else "red") for t in d["is_truth"]]
        ax.barh(range(len(d))[::-1], d["score"], color=colour)
        ax.set_yticks(range(len(d))[::-1], d["class"], fontsize=8)
        ax.set_xlim(0, 1.15 * float(pred["score"].max()))  # the same scale in every panel
        ax.set_title(f"{v}\n(true: {d['truth'].iloc[0]})", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def plot_per_class(pc: pd.DataFrame):
    """Fig. 4: per-class accuracy of the low, mid and high RRN (mean over seeds), by category."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = pc[pc["model"] != "MRRN"]
    classes = list(dict.fromkeys(d.sort_values("category", kind="stable")["class"]))
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(classes)), 3.6))
    sns.barplot(data=d, x="class", y="accuracy", hue="model", order=classes, errorbar=None,
                hue_order=["Low RRN", "Mid RRN", "High RRN"], palette=["tab:red", "tab:green", "tab:blue"], ax=ax)
    ax.tick_params(axis="x", rotation=70, labelsize=8)
    ax.set(xlabel="", ylabel="test accuracy (%)", ylim=(0, 100))
    ax.legend(ncol=3, fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_confusion(cm: pd.DataFrame, blocks: Sequence[tuple[str, int, int]]):
    """Fig. 5: the confusion matrix (row: true class, column: predicted), category blocks outlined."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    n = len(cm)
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * n), max(4.5, 0.27 * n)))
    sns.heatmap(cm, cmap="magma", vmin=0, vmax=100, square=True, cbar_kws={"label": "% of the true class"}, ax=ax,
                xticklabels=n <= 40, yticklabels=n <= 40)
    for name, a, b in blocks:
        ax.add_patch(plt.Rectangle((a, a), b - a, b - a, fill=False, edgecolor="cyan", lw=1.2))
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def plot_speed(sp: pd.DataFrame):
    """Fig. 6: median time per batch (bars, sorted) with the inter-quartile range."""
    import matplotlib.pyplot as plt

    d = sp.sort_values("median_ms")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(d) + 1))
    err = [d["median_ms"] - d["q1_ms"], d["q3_ms"] - d["median_ms"]]
    colour = ["tab:blue" if "RRN" in m else ("tab:gray" if "alone" in m else "tab:orange") for m in d["model"]]
    ax.barh(d["model"] + "  (batch " + d["batch"].astype(str) + ")", d["median_ms"], xerr=err, color=colour)
    ax.set(xlabel=f"ms per batch (median, {d['device'].iloc[0]}, {d['threads'].iloc[0]} thread(s))")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
