"""The Res-LSTM chapter (Lakhal et al., paper 000): its configs, features, one function per table
or figure, and its claims. What every chapter shares is in `actionbook.experiments.chapter`.

The chapter trains residual stacked LSTMs (`actionbook.models.res_lstm`, Eq. 1-2) on frozen
3D-CNN features of 16-frame clips (stride 8), T of them chosen per video by σ(t) (Sec. 3.1),
reduced by PCA to d_m (fitted on the training split only), in an RGB and an optical-flow
stream fused in the middle or at the end (Sec. 3.2):

    config(mode, dataset=) / preflight(cfg)   the ci or full configuration; stop early if data is missing
    features(cfg)                the clip-feature grid of every video, RGB and flow, from the shared cache
    Runs(feats, cfg)             one head per `RunKey`, trained once through the chapter run cache
    run_fig3a / fig3_vs_paper    Fig. 3a: the hidden size h of a 2-layer LSTM
    run_fig3bc                   Fig. 3b-c: depth 2/3/4 x residual on/off x d_m
    run_table1 / table1_vs_paper Table 1: the number of time steps T
    run_table2 / table2_vs_paper Table 2: mid/late fusion x sum/product, TSN's weighted sum; one stream alone
    run_table3 / table3_vs_paper Table 3: accuracy per coarse category and per named class
    run_tables45 / tables45_vs_paper   Tables 4-5: the paper's comparisons with our final model added
    run_fig4 / confusion         Figs. 4 and 5 of the final model (drawn by `actionbook.plots`)
    claims(cfg) / run_claims     the paper's claims, audited by `actionbook.audit`

Every `run_*` returns a tidy DataFrame, one row per configuration x seed, accuracies in %
(like the paper).

Two configurations, one code path
---------------------------------
- `full`: the paper's setting as far as it exists here. Features from torchvision's
  `r2plus1d_18` (Kinetics-400) instead of C3D (Sports-1M): 512-d per 16-frame clip instead of
  4096-d, so PCA can reduce them to d_m = 256 or 512 but never raise them to 1024 or 2048, and
  the residual model (whose hidden size must equal d_m) is at most 512 wide: the paper's
  h = 1024 is run only where it is possible, in the hidden-size sweep of a plain LSTM (its
  first layer's input need not match its width). The mean over 10 crops (Eq. 4-5), TV-L1 flow,
  T = 25, two layers, RMSProp with lr 1e-3 (Sec. 4). The paper gives no batch size, number of
  epochs or dropout: batch 32, 30 epochs, no dropout.
- `ci`: the generated benchmark and the ci 3D CNNs (a ResNet-18 pretrained on generated still
  images, inflated to 3D and trained on generated motion clips, one per stream,
  `actionbook.features.backbones`), the same clips (16 frames,
  stride 8), DIS flow, and scaled-down choices, each named in `CONFIGS`: the centre crop only,
  widths 16-128 instead of 256-2048, T scaled to the ci videos' clips, and 25 short epochs of
  batch 64.

Features are extracted once per stream and split (every clip of the video's grid, `sampling=
"res_lstm"`), so that varying T only re-selects clips from the cached grid and varying d_m only
refits a PCA; each experiment then trains small heads on tensors in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import Tensor

from actionbook import engine, metrics, plots, results
from actionbook.data.sampling import clip_grid, select_clips
from actionbook.experiments import chapter
from actionbook.experiments.chapter import paper_diff, seed_list
from actionbook.features import backbones as B
from actionbook.features.cache import FeatureSet
from actionbook.features.transforms import PCA
from actionbook.models.res_lstm import MidFusionResLSTM, ResLSTM, ResLSTMConfig

if TYPE_CHECKING:
    from actionbook.audit import Claim

CHAPTER = "res_lstm"
STREAMS = ("rgb", "flow")
TSN_WEIGHTS = (1.5, 1.0)  # (flow, RGB): TSN's late-fusion weights, Table 2's "w1 Flow + w2 RGB"
RUNS_VERSION = "2"  # bump when a change in the models or the data preparation changes the numbers
# 2: a run's data (its PCA) is prepared on the run's own threads (`RunCache`): the fit depends on them

__all__ = ["CHAPTER", "STREAMS", "TSN_WEIGHTS", "Config", "CONFIGS", "config", "preflight", "features", "Features",
           "sequences", "RunKey", "Runs", "run_fig3a", "run_fig3bc", "fig3_vs_paper", "run_table1", "table1_vs_paper",
           "run_table2", "table2_vs_paper", "run_table3", "table3_vs_paper", "run_tables45", "tables45_vs_paper",
           "run_fig4", "middle_frames", "confusion", "late_scores", "final_scores", "claims", "conditions", "outcomes", "run_claims",
           "labels", "sigma_figure", "sigma_explorer", "crop_mean_example", "example_video", "gradient_at_input"]


# --------------------------------------------------------------------------- configs

@dataclass(frozen=True)
class Config:
    """Everything the chapter's experiments depend on; `CONFIGS[mode]` holds the two presets."""

    mode: str
    dataset: str               # a generated benchmark name ("ci", "full") or a dataset folder
    layout: str                # "ucf101" or "hmdb51"
    dataset_label: str         # how our tables name our data, e.g. "UCF-101 split 1"
    paper_dataset: str         # the paper's dataset set beside ours: "UCF-101" or "HMDB-51"
    split: int = 1
    # features (Sec. 3.1, 3.3, 4)
    backbone: str = "r2plus1d_18"  # stands in for C3D (Sports-1M); ci builds its inflated ResNet-18
    clip_length: int = 16      # s: frames per clip
    clip_stride: int = 8       # r: frames between clip starts
    crops: str = "10"          # "10": the mean over 10 crops (Eq. 4-5); "center": one crop
    flow_method: str = "tvl1"
    # the model (Sec. 4.1) and its training (Sec. 4)
    d_m: int = 512             # PCA size = hidden size of the residual model (paper: 1024)
    layers: int = 2            # L
    T: int = 25                # time steps
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3           # RMSProp
    # the grids of the parameter study
    hidden_grid: tuple[int, ...] = (256, 512, 1024, 2048)  # Fig. 3a
    hidden_knee: int = 1024    # where the paper's accuracy stops rising (Sec. 4.1)
    dm_grid: tuple[int, ...] = (256, 512)                  # Fig. 3b-c (paper: 256 .. 2048)
    depth_grid: tuple[int, ...] = (2, 3, 4)
    T_grid: tuple[int, ...] = (5, 15, 25, 35)              # Table 1
    eval_batch_size: int = 256
    device: str = "auto"
    threads: int | None = None  # torch CPU threads while training heads (None: leave torch's setting)
    workers: int = 1           # runs trained side by side, each on `threads` threads (`RunCache.train_all`): same numbers for any value
    extract_workers: int = 2
    notes: tuple[str, ...] = field(default_factory=tuple)  # what differs from the paper, in words

    def __post_init__(self) -> None:
        if self.mode not in ("ci", "full"):
            raise ValueError(f"Config.mode must be 'ci' or 'full', got {self.mode!r}")
        if self.crops not in ("center", "10"):
            raise ValueError(f"Config.crops must be 'center' or '10', got {self.crops!r}")
        if self.hidden_knee not in self.hidden_grid:
            raise ValueError(f"Config.hidden_knee={self.hidden_knee} must be in hidden_grid={self.hidden_grid}")
        if self.d_m not in self.dm_grid or self.layers not in self.depth_grid or self.T not in self.T_grid:
            raise ValueError("the base model (d_m, layers, T) must be a point of the grids "
                             f"dm_grid={self.dm_grid}, depth_grid={self.depth_grid}, T_grid={self.T_grid}")

    @property
    def train_config(self) -> engine.TrainConfig:
        return engine.TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer="rmsprop",
                                  lr=self.lr, device=self.device)


_FULL_NOTES = (
    "R(2+1)D-18 (Kinetics-400) features, 512-d, stand in for C3D (Sports-1M) fc6, 4096-d",
    "d_m = h = 512 for the residual model (paper: 1024; PCA cannot raise 512-d features)",
    "Fig. 3b-c at d_m in {256, 512} only (paper: 256, 512, 1024, 2048)",
    "flow network: the RGB weights with TSN's cross-modality initialisation (no flow-trained 3D CNN)",
    "batch 32, 30 epochs, no dropout (the paper gives none of them)",
)

CONFIGS: dict[str, Config] = {
    "full": Config(mode="full", dataset=str(Path("ucf101")), layout="ucf101", dataset_label="UCF-101 split 1",
                   paper_dataset="UCF-101", notes=_FULL_NOTES),
    # ci: the generated benchmark at toy size. Scaled down (everything else is the paper's):
    # - the centre crop only, not the mean of 10 (10 crops of both streams would take about
    #   an hour of 3D-CNN time on 2 cores; on 64x64 frames cropped to 56 they barely differ);
    # - DIS optical flow instead of TV-L1 (TV-L1 is too slow for the CPU);
    # - widths / 16: h in {16, 32, 64, 128} (knee 64) for {256 .. 2048} (knee 1024), and
    #   d_m = h in {16, 32, 64} for {256 .. 2048} (three values, for time), base d_m = 64;
    # - T in {2, 5, 9, 13}: the paper's {5, 15, 25, 35} are about 1/4, 2/3, 1.1 and 1.6 times
    #   the ~22 clips of an average UCF-101 video; ci videos have 5-11 clips (8 on average);
    # - 25 epochs of batch 64 (480 training videos since generator 1.6: 200 small steps; 240 before).
    "ci": Config(mode="ci", dataset="ci", layout="ucf101", dataset_label="generated benchmark",
                 paper_dataset="UCF-101", crops="center", flow_method="dis", d_m=64, T=9, epochs=25,
                 batch_size=64, hidden_grid=(16, 32, 64, 128), hidden_knee=64, dm_grid=(16, 32, 64),
                 T_grid=(2, 5, 9, 13), threads=1, workers=2, extract_workers=1,
                 notes=("the ci 3D CNNs: a ResNet-18 pretrained on generated still images, inflated to 3D and "
                        "trained on generated motion clips (RGB; flow)",
                        "the centre crop only (not the mean over 10 crops)", "DIS flow (not TV-L1)",
                        "widths / 16: h in {16, 32, 64, 128}, d_m in {16, 32, 64}, base d_m = h = 64",
                        "T in {2, 5, 9, 13}, scaled to the ci videos' 5-11 clips",
                        "25 epochs of batch 64 (the paper gives neither)")),
}


def config(mode: str, *, dataset: str = "ucf101", epochs: int | None = None) -> Config:
    """`CONFIGS[mode]`, with the full-mode dataset chosen by `dataset` ("ucf101", "hmdb51" or
    "generated"; `chapter.full_dataset`) and `epochs` overriding the preset's when given. ci
    always runs on the ci benchmark."""
    return chapter.config_for(CONFIGS, mode, dataset=dataset, epochs=epochs)


def preflight(cfg: Config) -> dict[str, Any]:
    """Stop before any work if the dataset or the backbone weights are missing (`chapter.preflight`)."""
    return chapter.preflight(cfg)


# --------------------------------------------------------------------------- features

@dataclass
class Features:
    """The clip-feature grids of one dataset split: `grids[stream][subset]` is a FeatureSet whose
    video i holds a (K_i, d_f) tensor, the features of its K_i clips (already averaged over the
    crops, Eq. 5). Plus what the tables need about the classes and the videos."""

    grids: dict[str, dict[str, FeatureSet]]
    classes: list[str]
    categories: list[str] | None    # coarse category of each class; None where none is known
    test_paths: list[Path]          # the test videos' files, in the FeatureSet order

    @property
    def d_f(self) -> int:
        return int(self.grids["rgb"]["train"].features[0].shape[-1])

    def clips_per_video(self) -> pd.Series:
        """K_v of every training video (the length of its clip grid)."""
        return pd.Series([len(x) for x in self.grids["rgb"]["train"].features], name="K_v")


def features(cfg: Config, *, progress: bool = True) -> Features:
    """Every clip's features, for both streams and both subsets, from the shared feature cache.

    One cache entry per (stream, subset): every clip of the grid (`sampling="res_lstm"`, s and r
    of the config), each crop through the frozen 3D CNN, then averaged over the crops (Eq. 4-5).
    Extracted once (minutes), then read from the cache (seconds).
    """
    from actionbook.data.datasets import read_records, resolve_dataset
    from actionbook.features.extract import extract_features

    params = dict(length=cfg.clip_length, stride=cfg.clip_stride)
    grids: dict[str, dict[str, FeatureSet]] = {}
    for stream in STREAMS:
        grids[stream] = {}
        for subset in ("train", "test"):
            fs = extract_features(dataset=cfg.dataset, layout=cfg.layout, split=cfg.split, subset=subset,
                                  backbone=cfg.backbone, layer="pool", sampling="res_lstm",
                                  sampling_params=params, crops=cfg.crops, modality=stream, mode=cfg.mode,
                                  flow_method=cfg.flow_method, num_workers=cfg.extract_workers,
                                  progress=progress)
            grids[stream][subset] = fs.mean_crops()  # (K, [10,] d_f) -> (K, d_f)
    for subset in ("train", "test"):
        rgb, flow = grids["rgb"][subset], grids["flow"][subset]
        if rgb.video_ids != flow.video_ids:
            raise ValueError(f"the RGB and flow feature sets of the {subset} split hold different videos "
                             f"(entries {rgb.key} and {flow.key}); clean them (`python -m actionbook cache "
                             f"clean KEY`) and extract again")
    classes = grids["rgb"]["train"].classes
    ds = resolve_dataset(cfg.dataset, layout=cfg.layout)
    records, _ = read_records(ds, split=cfg.split, subset="test")
    path_of = {r.video_id: r.path for r in records}
    test_paths = [path_of[v] for v in grids["rgb"]["test"].video_ids]
    return Features(grids, classes, chapter.categories(cfg, classes), test_paths)


def sequences(fs: FeatureSet, *, T: int, transform: Any = None) -> Tensor:
    """x^0 of every video: the T clips σ(1..T) of its grid (Sec. 3.1), stacked: (N, T, D).

    `transform` (e.g. a fitted PCA) maps (K, d_f) -> (K, D) first.
    """
    out = []
    for x in fs.features:                              # (K, d_f)
        if transform is not None:
            x = transform(x)                           # (K, D)
        out.append(x[select_clips(len(x), T)])         # (T, D): x_t^0 = a_σ(t)
    return torch.stack(out)                            # (N, T, D)


# --------------------------------------------------------------------------- training

@dataclass(frozen=True)
class RunKey:
    """One trained head. `stream` is "rgb", "flow", "mid-sum" or "mid-product" (Sec. 3.2);
    `d_m` the PCA size (None: no reduction, the d_f raw features, centred); `hidden` the LSTM
    width (= d_m when `residual`)."""

    stream: str
    T: int
    d_m: int | None
    hidden: int
    layers: int
    residual: bool
    seed: int

    @property
    def condition(self) -> str:
        """The run's name without its seed (a condition of the claims audit)."""
        return (f"{self.stream}, T={self.T}, d_m={self.d_m or 'all'}, h={self.hidden}, L={self.layers}, "
                f"{'residual' if self.residual else 'plain'}")


class Runs:
    """The chapter's heads: builds each `RunKey`'s data and model, and trains it once through
    `chapter.RunCache` (checkpointed, its test result kept on disk).

    Experiments share runs: Table 1's base cell, Fig. 3b-c's base cell and the RGB stream of
    Table 2 are the same model, trained once. PCAs are fitted once per (stream, d_m), on the
    training split only (`actionbook.features.transforms.PCA.fit` refuses any other).
    """

    def __init__(self, feats: Features, cfg: Config, *, progress: bool = False, cache: bool = True) -> None:
        self.feats, self.cfg = feats, cfg
        self.cache = chapter.RunCache(CHAPTER, version=RUNS_VERSION, threads=cfg.threads, workers=cfg.workers, progress=progress,
                                      eval_batch_size=cfg.eval_batch_size, device=cfg.device, cache=cache)
        self._pca: dict[tuple[str, int], PCA] = {}
        self._data: dict[tuple[str, int, int | None], tuple[Tensor, Tensor]] = {}

    @property
    def classes(self) -> list[str]:
        return self.feats.classes

    @property
    def video_ids(self) -> list[str]:
        return self.feats.grids["rgb"]["test"].video_ids

    def labels(self, subset: str) -> Tensor:
        return torch.stack(self.feats.grids["rgb"][subset].targets())  # (N,)

    def pca(self, stream: str, d_m: int | None) -> PCA:
        """The PCA of one stream to d_m dimensions (all d_f when None), fitted on the training split.

        The projection is scaled by one number, so that the training rows have unit mean
        variance per dimension: LSTM gates saturate on large inputs, and the residual adds the
        input to outputs bounded by 1. (The paper does not say how it scales its PCA features.)
        """
        dim = self.feats.d_f if d_m is None else d_m
        if (stream, dim) not in self._pca:
            train = self.feats.grids[stream]["train"]
            pca = PCA.fit(train, dim=dim)
            rows = torch.cat([pca(x) for x in train.features])          # (rows, dim)
            scale = rows.pow(2).mean().sqrt().clamp(min=1e-8)
            pca.components = pca.components / scale
            self._pca[(stream, dim)] = pca
        return self._pca[(stream, dim)]

    def data(self, stream: str, T: int, d_m: int | None) -> tuple[Tensor, Tensor]:
        """x^0 for the train and test videos of one input stream: (N, T, D) each."""
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
        key = (stream, T, d_m)
        if key not in self._data:
            pca = self.pca(stream, d_m)
            self._data[key] = tuple(sequences(self.feats.grids[stream][s], T=T, transform=pca)
                                    for s in ("train", "test"))
        return self._data[key]

    def datasets(self, key: RunKey) -> tuple[chapter.VideoFeatures, chapter.VideoFeatures]:
        """(train, test) items of one run: one (T, D) sequence per video, two for mid fusion (Fig. 2a)."""
        streams = STREAMS if key.stream.startswith("mid-") else (key.stream,)
        xs = [self.data(s, key.T, key.d_m) for s in streams]
        return tuple(chapter.VideoFeatures([x[i] for x in xs], self.labels(sub), train=sub == "train")
                     for i, sub in enumerate(("train", "test")))

    def model(self, key: RunKey) -> torch.nn.Module:
        d_in = self.feats.d_f if key.d_m is None else key.d_m
        mc = ResLSTMConfig(input_size=d_in, num_classes=len(self.classes), hidden_size=key.hidden,
                           num_layers=key.layers, residual=key.residual)
        if key.stream.startswith("mid-"):
            return MidFusionResLSTM(mc, fusion=key.stream.removeprefix("mid-"))
        return ResLSTM(mc)

    def get(self, key: RunKey) -> engine.EvalResult:
        """The test result of run `key` (trained on first use, then from the run cache)."""
        feats = {s: {sub: fs.identity() for sub, fs in d.items()} for s, d in self.feats.grids.items()}
        return self.cache.get(key, model=lambda: self.model(key), data=lambda: self.datasets(key),
                              train=replace(self.cfg.train_config, seed=key.seed), seed=key.seed,
                              identity={"features": feats, "pca": "unit mean variance"})

    def base(self, *, stream: str = "rgb", seed: int, **change: Any) -> RunKey:
        """The key of the base model (the config's d_m = h, L and T) with `change` applied."""
        c = self.cfg
        key = RunKey(stream=stream, T=c.T, d_m=c.d_m, hidden=c.d_m, layers=c.layers, residual=True, seed=seed)
        return replace(key, **change)

    def row(self, key: RunKey) -> dict[str, Any]:
        """Test top-1 and top-5 accuracy (%) of one run, and its training time."""
        r = self.get(key)
        return {"seed": key.seed, "accuracy": 100 * r.video["top1"], "top5": 100 * r.video["top5"],
                "condition": key.condition, "seconds": self.cache.seconds.get(key, math.nan)}


def _sweep(runs: Runs, keys: list[tuple[dict[str, Any], RunKey]]) -> pd.DataFrame:
    runs.cache.train_all(runs.get, [key for _, key in keys])  # the missing runs, `cfg.workers` at a time
    return pd.DataFrame([{**cols, **runs.row(key)} for cols, key in keys])


# --------------------------------------------------------------------------- Figs. 3a-c, Tables 1-2

def run_fig3a(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Fig. 3a: accuracy against the hidden size h of a 2-layer LSTM on the RGB stream.

    As in the paper, the LSTM reads the full d_f-dimensional features (C3D's 4096 there), so its
    first layer cannot add its input to a differently sized output: the sweep uses the plain
    stacked LSTM (residual off), which lets h range past d_f. Columns: hidden, seed, accuracy, top5.
    """
    c = runs.cfg
    return _sweep(runs, [({"hidden": h}, RunKey("rgb", c.T, None, h, c.layers, False, s))
                         for s in seed_list(seeds) for h in c.hidden_grid])


def run_fig3bc(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Fig. 3b-c: depth L in `depth_grid` x residual on/off x d_m in `dm_grid` (h = d_m), RGB stream.

    Columns: d_m, layers, residual, seed, accuracy, top5.
    """
    c = runs.cfg
    return _sweep(runs, [({"d_m": d, "layers": L, "residual": res}, RunKey("rgb", c.T, d, d, L, res, s))
                         for s in seed_list(seeds) for d in c.dm_grid for L in c.depth_grid for res in (True, False)])


def run_table1(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Table 1: the base Res-LSTM (RGB) with T in `T_grid` clips per video. Columns: T, seed, accuracy, top5."""
    return _sweep(runs, [({"T": T}, runs.base(seed=s, T=T)) for s in seed_list(seeds) for T in runs.cfg.T_grid])


def late_scores(runs: Runs, *, seed: int, how: str, weights: Sequence[float] | None = None) -> Tensor:
    """Late fusion (Fig. 2b): the two streams' softmax scores combined (`metrics.fuse`): (V, C).

    `weights` are (flow, RGB) for a weighted sum, e.g. TSN's (1.5, 1).
    """
    rgb, flow = (runs.get(runs.base(stream=s, seed=seed)) for s in STREAMS)
    if not torch.equal(rgb.video_ids, flow.video_ids):
        raise ValueError("the RGB and flow runs were evaluated on different test videos; fuse runs of one split")
    return metrics.fuse([flow.video_scores, rgb.video_scores], how=how, weights=weights, softmax=False)


LATE = {"sum": ("sum", None), "product": ("product", None), "weighted sum": ("sum", TSN_WEIGHTS)}


def run_table2(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Table 2: mid fusion (one Res-LSTM on x^c ∘ x^f) and late fusion (one per stream, softmax
    scores combined) with ∘ = sum or product, TSN's weighted late sum, and each stream alone.

    Columns: fusion ("mid", "late" or "none"), operation ("sum", "product", "weighted sum", "RGB
    only", "flow only"), seed, accuracy, top5, condition.
    """
    rows = []
    y = runs.labels("test")
    runs.cache.train_all(runs.get, [runs.base(stream=stream, seed=s) for s in seed_list(seeds)
                                    for stream in ("rgb", "flow", "mid-sum", "mid-product")])
    for s in seed_list(seeds):
        for stream, name in (("rgb", "RGB only"), ("flow", "flow only")):
            rows.append({"fusion": "none", "operation": name, **runs.row(runs.base(stream=stream, seed=s))})
        for op in ("sum", "product"):
            rows.append({"fusion": "mid", "operation": op, **runs.row(runs.base(stream=f"mid-{op}", seed=s))})
        for op, (how, w) in LATE.items():
            acc = metrics.accuracy(late_scores(runs, seed=s, how=how, weights=w), y, topk=(1, 5))
            rows.append({"fusion": "late", "operation": op, "seed": s, "accuracy": 100 * acc["top1"],
                         "top5": 100 * acc["top5"], "condition": f"late {op}"})
    return pd.DataFrame(rows)


def final_scores(runs: Runs, *, seed: int) -> Tensor:
    """The paper's final model: late product fusion of the RGB and flow Res-LSTMs (Sec. 4.2): (V, C).

    The products are divided by their sum over the classes (which changes no ranking), so that a
    video's scores read as probabilities again (Fig. 4's bars).
    """
    p = late_scores(runs, seed=seed, how="product")                       # (V, C)
    return p / p.sum(dim=1, keepdim=True).clamp(min=1e-30)


# --------------------------------------------------------------------------- Tables 3-5, Figs. 4-5

def run_table3(runs: Runs, *, seeds: int | Sequence[int] = 5, named: Sequence[str] = ()) -> pd.DataFrame:
    """Table 3: accuracy of the final model over all classes, within each coarse category, and on
    the named classes that exist in our dataset. Columns: group, level ("all", "category" or
    "action type", "class"), seed, accuracy.
    """
    feats = runs.feats
    y = runs.labels("test")
    runs.cache.train_all(lambda s: final_scores(runs, seed=s), seed_list(seeds))  # `cfg.workers` at a time
    rows = []
    for s in seed_list(seeds):
        pred = final_scores(runs, seed=s).argmax(1)
        rows.append({"group": "all classes", "level": "all", "seed": s,
                     "accuracy": 100 * float((pred == y).float().mean())})
        if feats.categories is not None:
            level = "category" if runs.cfg.dataset in ("ci", "full") else "action type"
            for group, acc in metrics.category_accuracy(pred, y, categories=feats.categories).items():
                rows.append({"group": group, "level": level, "seed": s, "accuracy": 100 * acc})
        per_class = metrics.per_class_accuracy(pred, y, num_classes=len(feats.classes))
        for name in named:
            if name in feats.classes and not math.isnan(per_class[feats.classes.index(name)]):
                rows.append({"group": name, "level": "class", "seed": s,
                             "accuracy": 100 * float(per_class[feats.classes.index(name)])})
    return pd.DataFrame(rows, columns=["group", "level", "seed", "accuracy"])


def run_tables45(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Top-1 accuracy of the final model (late product fusion) per seed: columns method, seed, accuracy."""
    y = runs.labels("test")
    runs.cache.train_all(lambda s: final_scores(runs, seed=s), seed_list(seeds))  # `cfg.workers` at a time
    return pd.DataFrame([{"method": "Res-LSTM (late ⊙, this book)", "seed": s,
                          "accuracy": 100 * metrics.topk_accuracy(final_scores(runs, seed=s), y, k=1)}
                         for s in seed_list(seeds)])


def run_fig4(runs: Runs, *, seed: int, right: int = 4, wrong: int = 4) -> pd.DataFrame:
    """Fig. 4's videos: the most confidently right and wrong test videos of the final model, top-5
    each (`plots.topk_examples`); draw with `plots.topk_panel(ex, frames=middle_frames(runs, ex))`."""
    return plots.topk_examples(final_scores(runs, seed=seed), runs.labels("test"), classes=runs.classes,
                               video_ids=runs.video_ids, right=right, wrong=wrong)


def middle_frames(runs: Runs, examples: pd.DataFrame) -> dict[int, Any]:
    """The middle frame of each video of `examples` (for `plots.topk_panel`)."""
    from actionbook.data.video import probe, read_video

    paths = runs.feats.test_paths
    return {v: read_video(paths[v], frames=[probe(paths[v]).num_frames // 2])[0].numpy()
            for v in dict.fromkeys(examples["video"])}


def confusion(runs: Runs, *, seed: int) -> tuple[pd.DataFrame, list[tuple[str, int, int]]]:
    """Fig. 5: the final model's confusion matrix (%), classes grouped by category (`plots.confusion`)."""
    return plots.confusion(final_scores(runs, seed=seed), runs.labels("test"), classes=runs.classes,
                           categories=runs.feats.categories)


# --------------------------------------------------------------------------- tables beside the paper's

def labels(cfg: Config) -> dict[str, str]:
    """Column labels: whose number it is and on what data."""
    return {"ours": f"ours: {cfg.dataset_label} ({cfg.mode} mode)",
            "paper_c3d": "paper: {} split 1 (C3D)", "paper_final": "paper: {} split 1 (TSN features)"}


def _ours(ours: pd.DataFrame, by: list[str], label: str) -> pd.DataFrame:
    s = results.summarize_seeds(ours, by=by, value="accuracy")
    s[label] = [f"{m:.1f} ± {sd:.1f} (n={n})" if n > 1 else f"{m:.1f}" for m, sd, n in zip(s["mean"], s["std"], s["n"])]
    return s[by + [label]]


def fig3_vs_paper(ours: pd.DataFrame, *, by: list[str], paper_says: str, cfg: Config) -> pd.DataFrame:
    """Fig. 3's sweeps as a table: our mean ± std per setting, beside what the paper's plot shows
    (the paper prints no values for Fig. 3)."""
    out = _ours(ours, by, labels(cfg)["ours"])
    out["paper (Fig. 3, no values printed)"] = paper_says
    return out


def table1_vs_paper(ours: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 1 with the paper's two rows (HMDB-51, UCF-101) beside ours. Our T grid is matched to
    the paper's by position (ci scales it to the ci videos' clip counts)."""
    paper = results.paper_table(CHAPTER, "table1")
    paper_T = sorted(paper["T"].unique())
    mapping = dict(zip(cfg.T_grid, paper_T))
    o = ours.assign(**{"paper's T": ours["T"].map(mapping)})
    lab = labels(cfg)
    out = results.paper_vs_ours(o, paper[paper["dataset"] == cfg.paper_dataset].rename(columns={"T": "paper's T"}),
                                on=["paper's T"], value="accuracy",
                                paper_label=lab["paper_c3d"].format(cfg.paper_dataset), ours_label=lab["ours"])
    other = "HMDB-51" if cfg.paper_dataset == "UCF-101" else "UCF-101"
    p_other = paper[paper["dataset"] == other].set_index("T")["paper"]
    out.insert(2, lab["paper_c3d"].format(other), [f"{p_other[t]:.1f}" for t in out["paper's T"]])
    out.insert(1, "our T", [{v: k for k, v in mapping.items()}[t] for t in out["paper's T"]])
    return out


def table2_vs_paper(ours: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 2 (the paper's: HMDB-51, C3D features) beside ours; the one-stream rows are ours only."""
    paper = results.paper_table(CHAPTER, "table2")
    lab = labels(cfg)
    return results.paper_vs_ours(ours, paper, on=["fusion", "operation"], value="accuracy",
                                 paper_label=lab["paper_c3d"].format("HMDB-51"), ours_label=lab["ours"])


def table3_vs_paper(ours: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 3: the paper's Res-LSTM and L2STM numbers per UCF-101 action type and named class,
    beside our final model's accuracy per category (ours: the benchmark's categories in ci)."""
    paper = results.paper_table(CHAPTER, "table3")
    res = paper[paper["method"] == "Res-LSTM"][["group", "level", "paper"]]
    l2 = paper[paper["method"] == "L2STM"].set_index("group")["paper"]
    lab = labels(cfg)
    out = results.paper_vs_ours(ours, res, on=["group", "level"], value="accuracy",
                                paper_label=lab["paper_final"].format("UCF-101") + ", Res-LSTM", ours_label=lab["ours"])
    out.insert(3, "paper: L2STM (as quoted)", [f"{l2[g]:.1f}" if g in l2.index else "—" for g in out["group"]])
    return out


def tables45_vs_paper(final: pd.DataFrame, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 4 and 5 as the paper prints them, with our final model's row added."""
    column = cfg.paper_dataset if cfg.dataset not in ("ci", "full") else "generated benchmark"
    label = f"{labels(cfg)['ours']}, {B.spec(cfg.backbone).name if cfg.mode == 'full' else 'ci 3D CNN'} features"
    t4 = _comparison(results.paper_table(CHAPTER, "table4"), final, label=label, column=column)
    t5 = _comparison(results.paper_table(CHAPTER, "table5"), final, label=label, column=column)
    return t4, t5


def _comparison(table: pd.DataFrame, ours: pd.DataFrame, *, label: str, column: str) -> pd.DataFrame:
    """Tables 4-5 as the paper prints them (methods x datasets), with our rows appended.

    `table` is the paper's long table (method, dataset, paper); `ours` has a `method` and an
    `accuracy` column (one row per seed: shown as mean ± std). Our rows go in the column
    `column` (e.g. "UCF-101" in full mode, "generated benchmark" in ci), labelled `label`.
    """
    wide = table.pivot_table(index="method", columns="dataset", values="paper", aggfunc="first", sort=False)
    wide = wide.reindex(list(dict.fromkeys(table["method"])))
    wide = wide.map(lambda v: "—" if pd.isna(v) else f"{v:.1f}")
    wide.insert(0, "source", "paper")
    s = results.summarize_seeds(ours, by=["method"], value="accuracy")
    extra = pd.DataFrame({"source": label,
                          column: [f"{m:.1f} ± {sd:.1f} (n={n})" if n > 1 else f"{m:.1f}"
                                   for m, sd, n in zip(s["mean"], s["std"], s["n"])]},
                         index=s["method"])
    out = pd.concat([wide, extra])
    return out.fillna("—").rename_axis("method").reset_index()


# --------------------------------------------------------------------------- the claims


def _keys(cfg: Config) -> dict[str, RunKey]:
    """The runs the claims compare (seed 0; the audit replaces it by each seed)."""
    base = RunKey("rgb", cfg.T, cfg.d_m, cfg.d_m, cfg.layers, True, 0)
    deep = max(cfg.depth_grid)
    plain_h = lambda h: RunKey("rgb", cfg.T, None, h, cfg.layers, False, 0)  # noqa: E731 - Fig. 3a's runs
    return {"base": base, "plain": replace(base, residual=False), "deep": replace(base, layers=deep),
            "plain deep": replace(base, layers=deep, residual=False), "h small": plain_h(cfg.hidden_grid[0]),
            "h knee": plain_h(cfg.hidden_knee), "h large": plain_h(cfg.hidden_grid[-1]),
            "T small": replace(base, T=cfg.T_grid[0]), "T third": replace(base, T=cfg.T_grid[2]),
            "mid sum": replace(base, stream="mid-sum"), "mid product": replace(base, stream="mid-product"),
            "flow": replace(base, stream="flow")}


def claims(cfg: Config) -> list[Claim]:
    """The paper's claims as contrasts between two conditions, each with the paper's own effect
    where its tables print one (points of accuracy, computed from `actionbook/paper/`)."""
    from actionbook.audit import Claim

    k = {name: key.condition for name, key in _keys(cfg).items()}
    t1 = results.paper_table(CHAPTER, "table1").set_index(["dataset", "T"])["paper"]
    t2 = results.paper_table(CHAPTER, "table2").set_index(["fusion", "operation"])["paper"]
    late_p = "late product"
    fig3 = "Fig. 3b-c (no values printed)"
    deep, knee, hs, Ts = max(cfg.depth_grid), cfg.hidden_knee, cfg.hidden_grid, cfg.T_grid
    return [
        Claim("R1a", f"residual beats plain at {cfg.layers} layers (d_m = {cfg.d_m})", k["base"], k["plain"],
              paper_source=fig3),
        Claim("R1b", f"residual beats plain at {deep} layers (d_m = {cfg.d_m})", k["deep"], k["plain deep"],
              paper_source=fig3),
        Claim("R2", f"{cfg.layers} residual layers beat {deep}", k["base"], k["deep"], paper_source=fig3),
        Claim("R3", f"h = {knee} beats h = {hs[0]} (plain 2-layer LSTM)", k["h knee"], k["h small"],
              paper_source="Fig. 3a (no values printed)"),
        Claim("R3b", f"h = {hs[-1]} gains nothing over h = {knee}", k["h large"], k["h knee"], expect="no_gain",
              paper_source="Fig. 3a (no values printed)"),
        Claim("R4", f"T = {Ts[2]} beats T = {Ts[0]}", k["T third"], k["T small"],
              paper_effect=paper_diff(t1[cfg.paper_dataset, 25], t1[cfg.paper_dataset, 5]),
              paper_source=f"Table 1, {cfg.paper_dataset}, T = 25 vs 5"),
        Claim("R5s", "late sum beats mid sum", "late sum", k["mid sum"],
              paper_effect=paper_diff(t2["late", "sum"], t2["mid", "sum"]), paper_source="Table 2, HMDB-51"),
        Claim("R5p", "late product beats mid product", late_p, k["mid product"],
              paper_effect=paper_diff(t2["late", "product"], t2["mid", "product"]), paper_source="Table 2, HMDB-51"),
        Claim("R6s", "late product beats late sum", late_p, "late sum",
              paper_effect=paper_diff(t2["late", "product"], t2["late", "sum"]), paper_source="Table 2, HMDB-51"),
        Claim("R6w", "late product beats TSN's weighted sum (1.5 flow : 1 RGB)", late_p, "late weighted sum",
              paper_effect=paper_diff(t2["late", "product"], t2["late", "weighted sum"]), paper_source="Table 2, HMDB-51"),
        Claim("R11a", "two streams (late product) beat RGB alone", late_p, k["base"],
              paper_source="Sec. 5 (no one-stream number printed)"),
        Claim("R11b", "two streams (late product) beat flow alone", late_p, k["flow"],
              paper_source="Sec. 5 (no one-stream number printed)"),
    ]


def conditions(runs: Runs) -> dict[str, Callable[[int], Tensor]]:
    """Every condition the claims name -> its test scores (V, C) for a seed."""
    out: dict[str, Callable[[int], Tensor]] = {
        f"late {op}": (lambda s, how=how, w=w: late_scores(runs, seed=s, how=how, weights=w))
        for op, (how, w) in LATE.items()}
    for key in _keys(runs.cfg).values():
        out[key.condition] = lambda s, key=key: runs.get(replace(key, seed=s)).video_scores
    return out


def outcomes(runs: Runs, *, seeds: int | Sequence[int] = 5, claimed: Sequence[Claim] | None = None) -> pd.DataFrame:
    """One row per (condition, seed, test video) for every condition the claims compare: the audit's input."""
    return chapter.claim_outcomes(claimed or claims(runs.cfg), conditions(runs), runs.labels("test"), seeds=seeds,
                                  video_ids=runs.video_ids, categories=runs.feats.categories, cache=runs.cache)


def run_claims(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """The audit of the paper's claims over `seeds` (`actionbook.audit`), saved as claims.csv."""
    return chapter.claims_table(claims(runs.cfg), outcomes(runs, seeds=seeds), mode=runs.cfg.mode,
                                chapter=CHAPTER, config=runs.cfg, seeds=seed_list(seeds))


# --------------------------------------------------------------------------- the method notebook

def sigma_figure(*, frames: int = 120, T: int = 5, length: int = 16, stride: int = 8):
    """The clip grid of a video of `frames` frames and the T clips σ(t) picks (Sec. 3.1)."""
    import matplotlib.pyplot as plt

    grid = clip_grid(frames, length=length, stride=stride)
    chosen = select_clips(len(grid), T)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(grid) + 1.2))
    for k, clip in enumerate(grid):
        n = chosen.count(k)
        ax.barh(k, len(clip), left=clip[0], color="tab:orange" if n else "lightgray", edgecolor="k", lw=0.5)
        if n:
            ts = [t + 1 for t, c in enumerate(chosen) if c == k]
            ax.text(clip[-1] + 1.5, k, "t = " + ", ".join(map(str, ts)), va="center", fontsize=8)
    ax.set_xlim(0, max(frames, grid[-1][-1] + 1) * 1.15)
    ax.set_ylim(len(grid) - 0.5, -0.5)
    ax.set_xlabel("frame")
    ax.set_ylabel("clip k (0-based)")
    ax.set_title(f"l_v = {frames} frames -> K_v = {len(grid)} clips; T = {T}: clips {chosen}", fontsize=10)
    fig.tight_layout()
    return fig


def sigma_explorer(*, length: int = 16, stride: int = 8):
    """An ipywidgets explorer: sliders for the video length and T redraw `sigma_figure`."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    out = W.Output()
    frames = W.IntSlider(value=120, min=16, max=400, step=8, description="l_v (frames)")
    T = W.IntSlider(value=5, min=1, max=35, description="T")

    def draw(_: Any = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = sigma_figure(frames=frames.value, T=T.value, length=length, stride=stride)
            plt.show()
            plt.close(fig)

    frames.observe(draw, names="value")
    T.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([frames, T]), out])


@torch.no_grad()
def crop_mean_example(cfg: Config, path: Path, *, clip: int = 0) -> dict[str, Tensor]:
    """Eq. 4-5 on one clip of one video: its 10 crops through the frozen 3D CNN, and their mean.

    Returns the crops (10, 3, s, h, w) uint8, the features A (10, d_f) and x = mean (d_f,).
    """
    from actionbook.data import transforms as TF
    from actionbook.data.video import probe, read_video

    frames = clip_grid(probe(path).num_frames, length=cfg.clip_length, stride=cfg.clip_stride)[clip]
    video = TF.to_tchw(read_video(path, frames=frames))                # (s, 3, H, W) uint8
    resize, crop = B.input_size(cfg.backbone, mode=cfg.mode)
    video = TF.resize(video, resize)                                    # (s, 3, h', w')
    crops = TF.ten_crop(video, crop).movedim(2, 1).contiguous()         # (10, s, 3, h, w) -> (10, 3, s, h, w)
    net = B.backbone(cfg.backbone, layer="pool", weights="ci" if cfg.mode == "ci" else "DEFAULT", mode=cfg.mode)
    A = net(crops.float() / 255)                                        # (10, d_f)
    return {"crops": crops, "A": A, "x": A.mean(0)}                     # x: (d_f,), Eq. 5


def example_video(cfg: Config, *, index: int = 0) -> Path:
    """The file of the `index`-th training video of the config's dataset split."""
    from actionbook.data.datasets import read_records, resolve_dataset

    records, _ = read_records(resolve_dataset(cfg.dataset, layout=cfg.layout), split=cfg.split, subset="train")
    return records[index].path


def gradient_at_input(*, size: int, depths: Sequence[int], T: int, num_classes: int, batch: int = 32,
                      seeds: int = 5) -> pd.DataFrame:
    """How much gradient reaches the input x^0 of a freshly initialised stack, residual on or off.

    Random inputs and labels, one backward pass of the cross-entropy; the norm of d loss / d x^0
    per video, averaged. A plain stack passes the gradient through every layer's gates (each
    step can shrink it); Eq. 1's identity path carries it past them. Columns: layers, residual,
    seed, grad_norm.
    """
    import torch.nn.functional as F

    rows = []
    for s in range(seeds):
        for L in depths:
            for residual in (True, False):
                torch.manual_seed(s)
                model = ResLSTM(ResLSTMConfig(input_size=size, num_classes=num_classes, hidden_size=size,
                                              num_layers=L, residual=residual))
                g = torch.Generator().manual_seed(1000 + s)
                x = torch.randn(batch, T, size, generator=g, requires_grad=True)   # (B, T, D)
                y = torch.randint(num_classes, (batch,), generator=g)
                (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)      # (B, T, D)
                rows.append({"layers": L, "residual": residual, "seed": s,
                             "grad_norm": float(grad.flatten(1).norm(dim=1).mean())})
    return pd.DataFrame(rows)
