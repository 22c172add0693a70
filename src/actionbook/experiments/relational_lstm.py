"""The Relational LSTM chapter (Chen et al., paper 003): its configs, features, one function per
table or figure, and its claims. What every chapter shares is in `actionbook.experiments.chapter`.

The chapter trains what the paper puts after its backbone (`actionbook.models.relational_lstm`:
the two-branch network, the Relational LSTM network alone, the local branch alone, TSN) on
frozen, cached feature maps of TSN snippets, in an RGB (spatial) and an optical-flow (temporal)
stream fused by a weighted average of the logits before the softmax:

    config(mode, dataset=, epochs=) / preflight(cfg)   the ci or full configuration; stop early if data is missing
    features(cfg)                 the snippets' maps at the three positions, both streams, from the shared cache
    position_maps(cfg, stream)    conv5_1 extracted, conv5_2 and conv5_3 computed from it by `frozen_units(cfg)`
    Runs(feats, cfg)              one model per `RunKey`, trained once through the chapter run cache
    run_table2 / table2_vs_paper  TSN, the R-LSTM network and their ensemble; spatial, temporal, two-stream
    run_table3 / table3_vs_paper  the number of segments T
    run_table4 / table4_vs_paper  local branch only, non-local branch only, two branches
    run_table5 / table5_vs_paper  the Relational LSTM after conv5_1, conv5_2, conv5_3
    run_categories                every model's accuracy per coarse category (interaction: the paper's case)
    run_fig3 / plot_fig3          the classes that gain most over TSN
    run_fig4                      top-5 of TSN and of the two-branch model on the same test videos
    tables67_vs_paper             the paper's comparisons, our row in its own column
    claims(cfg) / run_claims      the paper's claims, audited by `actionbook.audit`
    multilabel_features(cfg)      Table 8: RGB snippets of the multi-label videos (Charades layout)
    MultiLabelRuns(feats, cfg)    TSN and the two-branch model trained on action intervals (BCE), tested on clips
    run_table8 / table8_vs_paper  mAP of the clips' logits max-pooled per video, beside the paper's Table 8
    table8_categories             AP per coarse category, against random scores
    claims_table8 / run_claims_table8   L8, audited on mAP by `audit.audit_metric` (a bootstrap of mAP)

Every `run_*` returns a tidy DataFrame, one row per configuration x seed, accuracies in %.

Two configurations, one code path
---------------------------------
- `full`: the paper's setting as far as a frozen backbone allows. torchvision's ResNet-101
  (ImageNet) stands in for ResNet-101-v2: the maps after conv5_1 / conv5_2 / conv5_3
  (`layer4[0..2]`, 2048 x 7 x 7 at 224 px), 25 snippets per video (TSN's test protocol),
  T = 8 segments, 4 test groups x 5 crops, TV-L1 flow stacks of 10 fields with TSN's
  cross-modality initialisation, SGD (momentum 0.9, weight decay 5e-4), batch 24, lr 5e-4
  divided by 10 after epochs 35 and 45 (spatial, 50 epochs) or 45 and 55 (temporal, 60),
  dropout 0.8 / 0.7, BN momentum 0.001. The paper fine-tunes conv1-conv5; here the backbone
  is frozen and the local branch's conv5_3 is the pretrained one (its pooled output is cached).
- `ci`: the generated benchmark and the ci ResNet-18 (pretrained on generated still images).
  At the ci input size (56 px) its layer4 maps are 2 x 2, where a non-local operation would
  relate four cells; the ci network is therefore read at the last three residual units that
  still give >= 7 x 7 maps: `layer1.1` (14 x 14 x W), `layer2.0` and `layer2.1` (7 x 7 x 2W; W = 32,
  the ci network's stage-1 width, `pretrain.PretrainConfig.width`),
  in the roles of conv5_1, conv5_2 and conv5_3; the local branch and TSN read the pooled
  `layer2.1`; layer1.1 is average-pooled to 7 x 7 and every map reduced to 16 channels by a
  PCA fitted on training maps. Every scaled-down choice is listed in the config's `notes`.
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
from actionbook.experiments import chapter
from actionbook.experiments.chapter import paper_diff, seed_list
from actionbook.features import cache
from actionbook.features.cache import FeatureSet
from actionbook.features.pretrain import PretrainConfig
from actionbook.features.transforms import PCA
from actionbook.models.relational_lstm import TSN, RelationalConfig, TwoBranch

if TYPE_CHECKING:
    from actionbook.audit import Claim

CHAPTER = "relational_lstm"
STREAMS = ("rgb", "flow")
STREAM_NAMES = {"rgb": "spatial", "flow": "temporal"}
POSITIONS = ("conv5_1", "conv5_2", "conv5_3")  # the paper's names; `Config.layers` says what each reads
MODELS = ("tsn", "nonlocal", "local", "both")    # TSN; the R-LSTM network; the local branch; two branches
MODEL_NAMES = {"tsn": "TSN", "nonlocal": "R-LSTM", "local": "local branch", "both": "two-branch"}
INTERACTION = {"generated": "interaction", "ucf101": "Human-Object Interaction",
               "hmdb51": "Body movements with object interaction"}  # where the paper's claim should show
RUNS_VERSION = "4"  # bump when a change in the models or the data preparation changes the numbers
# 4: the maps' scale and the pooled statistics summed video by video in float64 (streamed maps, issue 14)

__all__ = ["CHAPTER", "STREAMS", "POSITIONS", "MODELS", "MODEL_NAMES", "Config", "CONFIGS", "config", "preflight",
           "Features", "features", "unit_of", "frozen_units", "position_maps", "Videos", "fit_sample",
           "SnippetRows", "MapTransform", "Standardise", "Snippets",
           "RunKey", "Runs", "stream_logits", "two_stream", "ensemble",
           "run_table2", "table2_vs_paper", "run_table3", "table3_vs_paper", "run_table4", "table4_vs_paper",
           "run_table5", "table5_vs_paper", "run_categories", "categories_table", "run_fig3", "plot_fig3",
           "run_fig4", "tables67_vs_paper", "fusion_sweep", "claims", "conditions", "run_claims",
           "condition_name", "scores", "train_seconds", "multilabel_config", "TABLE8_MODELS",
           "action_frames", "snippet_window", "clip_starts", "max_over_clips", "MultiLabelFeatures",
           "multilabel_features", "action_items", "clip_items", "odd_actions", "MultiLabelRuns", "run_table8",
           "table8_vs_paper", "table8_categories", "claims_table8", "run_claims_table8"]


# --------------------------------------------------------------------------- configs

@dataclass(frozen=True)
class Config:
    """All the chapter's experiments depend on: the data (mode, dataset, layout, the labels our
    tables use for our data and for the paper's, split), the features, the model and its
    training. `CONFIGS` holds the full and the ci preset; `config(mode)` picks one."""

    mode: str
    dataset: str
    layout: str
    dataset_label: str
    paper_dataset: str
    split: int = 1
    # features (Sec. 3.1, 4, 5.2)
    backbone: str = "resnet101"  # stands in for ResNet-101-v2; ci builds its ResNet-18
    weights: str | None = "auto"  # "auto": ci's pretraining or DEFAULT; None: seeded random weights (tests only)
    layers: tuple[str, str, str] = ("conv5_1_map", "conv5_2_map", "conv5_3_map")  # what POSITIONS read
    pool: int = 25             # snippets extracted per video (centres of `pool` equal segments)
    train_crops: str = "center"  # the cached training crops: "center" or "5" (a random one per draw)
    test_crops: str = "5"      # 4 corners + centre (the paper's 5 crops)
    groups: int = 4            # test groups of positions (x test crops = the paper's 20 views)
    flow_method: str = "tvl1"
    flow_length: int = 10      # flow fields per snippet
    reduce: int | None = None  # ci: the maps' channels reduced by a PCA fitted on training maps
    grid: int | None = None    # ci: larger maps average-pooled to grid x grid positions (None: as they are)
    # the dtype the cached conv5_1 maps are stored in on disk (`extract_features(storage=)`), read back as
    # float32. full: float16, half of 571 GB at UCF-101 size. conv5_1 is a residual unit's output after its
    # ReLU: values >= 0 and, for an ImageNet ResNet, expected far below float16's largest, 65504 (a value
    # beyond it stops the extraction with an error, never an inf on disk); float16 keeps 11 significant bits
    # (relative rounding <= 2^-11), bfloat16 only 8 for a range these maps do not need.
    # ci: float32, so that its numbers stay the ones it had.
    storage: str = "float16"
    # the model (Sec. 4) and its training (Sec. 5.2)
    T: int = 8
    T_grid: tuple[int, ...] = (6, 8, 10, 12)   # Table 3
    position: str = "conv5_2"
    dropout: float = 0.8       # spatial stream
    dropout_temporal: float = 0.7
    bn_momentum: float = 0.001
    epochs: int = 50           # spatial stream
    epochs_temporal: int = 60
    milestones: tuple[int, ...] = (35, 45)
    milestones_temporal: tuple[int, ...] = (45, 55)
    batch_size: int = 24
    optimizer: str = "sgd"
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # two-stream fusion before the softmax: the spatial weight (the temporal one is 1 - w)
    w_tsn: float = 0.35        # Table 2's caption
    w_rlstm: float = 0.5       # Table 2's caption
    w_final: float = 0.45      # Table 7's caption for UCF-101; `config` sets each dataset's (`table7_weight`)
    # the multi-label experiment (Table 8, Sec. 5.6): RGB only
    ml_step: int = 8           # a snippet cached every ml_step frames of a multi-label video (3 a second at 24 fps)
    clips: int = 10            # test clips per video, equally spaced
    clip_frames: int = 256     # frames per test clip (about a third of a 30 s Charades video at 24 fps)
    eval_batch_size: int = 64
    device: str = "auto"
    threads: int | None = None
    workers: int = 1           # runs trained side by side, each on `threads` threads (`RunCache.train_all`): same numbers for any value
    progress: bool = False     # progress bars (off: in an executed page they print a line per update; the full-mode smoke test checks)
    extract_workers: int = 2
    fit_videos: int = 500      # training videos the maps' scale (and ci's PCA) and the pooled statistics are fitted on
    keep_maps: int | None = 1  # prepared videos kept in memory per (stream, position, subset); None: all
    notes: tuple[str, ...] = field(default_factory=tuple)  # what differs from the paper, in words

    def __post_init__(self) -> None:
        if self.mode not in ("ci", "full"):
            raise ValueError(f"Config.mode must be 'ci' or 'full', got {self.mode!r}")
        if self.T not in self.T_grid:
            raise ValueError(f"Config.T={self.T} must be one of T_grid={self.T_grid}")
        if self.position not in POSITIONS or len(self.layers) != len(POSITIONS):
            raise ValueError(f"Config.position must be one of {POSITIONS}, with one layer per position")
        if max(self.T_grid) > self.pool:
            raise ValueError(f"Config.pool={self.pool} snippets cannot fill T={max(self.T_grid)} segments")
        for name in ("ml_step", "clips", "clip_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.storage not in ("float32", "float16"):
            raise ValueError(f"Config.storage must be 'float32' or 'float16', got {self.storage!r}")
        for name in ("train_crops", "test_crops"):
            if getattr(self, name) not in ("center", "5"):
                raise ValueError(f"Config.{name} must be 'center' or '5', got {getattr(self, name)!r}")

    def layer(self, position: str) -> str:
        """The backbone layer that plays `position` (conv5_1 / conv5_2 / conv5_3)."""
        return self.layers[POSITIONS.index(position)]

    def train_config(self, stream: str, seed: int) -> engine.TrainConfig:
        temporal = stream == "flow"
        return engine.TrainConfig(epochs=self.epochs_temporal if temporal else self.epochs,
                                  batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                                  momentum=self.momentum,
                                  weight_decay=self.weight_decay,
                                  milestones=self.milestones_temporal if temporal else self.milestones,
                                  seed=seed, device=self.device)


_FULL_NOTES = (
    "torchvision ResNet-101 (ImageNet, post-activation) stands in for ResNet-101-v2 (pre-activation)",
    "frozen backbone: conv1-conv5 are not fine-tuned, the local branch's conv5_3 is the pretrained one",
    "25 snippets per video cached; a training draw takes one at random per segment (not any frame)",
    "the cached conv5_1 maps stored in float16 (half the disk; rounded to 11 significant bits), computed on "
    "and read back as float32",
    "training uses the centre crop of the cached snippets, not TSN's multi-scale crops and flips",
    "the temporal stream's head starts from scratch, not from the trained spatial model",
    "Table 8 (Charades): a snippet cached every 8th frame; the spatial schedule above (the paper gives none for "
    "Charades); a training item is one annotated action, its target every class whose action overlaps it",
)

_CI_WIDTH = PretrainConfig().width  # the ci ResNet-18's stage-1 width (stages W, 2W, 4W, 8W)
_FULL = Config(mode="full", **chapter.full_dataset("ucf101"), notes=_FULL_NOTES)  # `config` picks the dataset
CONFIGS: dict[str, Config] = {
    "full": _FULL,
    # ci: the generated benchmark at toy size; every scaled-down choice is one of its notes
    "ci": replace(_FULL, mode="ci", dataset="ci", dataset_label="generated benchmark", backbone="resnet18",
                 layers=("layer1.1_map", "layer2.0_map", "layer2.1_map"), pool=16, test_crops="center",
                 flow_method="dis", reduce=16, grid=7, T=4, T_grid=(3, 4, 5, 6), epochs=10, epochs_temporal=10,
                 milestones=(7,), milestones_temporal=(7,), optimizer="adam", lr=0.01, dropout=0.0,
                 dropout_temporal=0.0, bn_momentum=0.05,
                 threads=1, workers=2, progress=False, extract_workers=1, eval_batch_size=256, ml_step=3, clip_frames=40,
                 keep_maps=None, storage="float32",
                 notes=("the ci ResNet-18 (pretrained on generated still images), read at 56 px",
                        f"conv5_1 / conv5_2 / conv5_3 played by layer1.1 (14x14x{_CI_WIDTH}), layer2.0 and layer2.1 "
                        f"(7x7x{2 * _CI_WIDTH}): at 56 px layer4 is 2x2; the local branch and TSN read pooled layer2.1",
                        "layer1.1's 14x14 maps average-pooled to 7x7, so that all three positions have 49 cells "
                        "(the cost of the R-LSTM grows with their square)",
                        "the maps' channels reduced to 16 by a PCA fitted on training maps (R-LSTM cost)",
                        "16 snippets per video cached (paper: any frame); centre crop only (paper: 5 crops)",
                        "T in {3, 4, 5, 6}, default 4: the paper's {6, 8, 10, 12} halved for videos of "
                        "48-96 frames (UCF-101's average about 180)",
                        "DIS flow (not TV-L1)",
                        "multi-label (Table 8): 10 test clips of 40 frames, a third of the 100-140-frame videos as "
                        "the paper's 256 frames are of a ~30 s Charades video; a snippet every 3rd frame (paper: any)",
                        "Adam, lr 0.01 / 10 after epoch 7 of 10, no dropout, BN momentum 0.05 (the paper's "
                        "0.001 averages over ~1,000 of its ~20,000 steps; ci trains 100): with the paper's SGD "
                        "(lr 0.05-0.5) the R-LSTM network did not fit its training videos (training accuracy at "
                        "chance after 10 epochs); decided on the training accuracy and a held-out quarter of "
                        "the training videos, no test video scored",
                        "one CPU thread")),
}


def config(mode: str, *, dataset: str = "ucf101", epochs: int | None = None) -> Config:
    """`CONFIGS[mode]`, with the full-mode dataset chosen by `dataset` ("ucf101", "hmdb51",
    "generated", or "charades" for Table 8 only; `chapter.full_dataset`). `epochs` (when given) is the spatial stream's; the
    temporal stream's and both schedules' milestones scale with it (the paper's 50 : 60,
    lr / 10 after 70 % and 90 %). ci always runs on the ci benchmark."""
    cfg = chapter.config_for(CONFIGS, mode, dataset=dataset, epochs=epochs, multilabel=True)
    cfg = replace(cfg, w_final=table7_weight(cfg.paper_dataset))
    if epochs is None:
        return cfg
    base = CONFIGS[mode]
    scale = cfg.epochs / base.epochs
    t_epochs = max(1, round(base.epochs_temporal * scale))

    def shrink(ms: tuple[int, ...], n: int) -> tuple[int, ...]:
        return tuple(sorted({m for m in (round(m * scale) for m in ms) if 0 < m < n}))

    return replace(cfg, epochs_temporal=t_epochs, milestones=shrink(base.milestones, cfg.epochs),
                   milestones_temporal=shrink(base.milestones_temporal, t_epochs))


def table7_weight(paper_dataset: str) -> float:
    """The two-branch model's spatial fusion weight for `paper_dataset`, read from Table 7's caption
    (0.45 on UCF-101, 0.33 on HMDB-51; the temporal weight is 1 - w). A dataset the caption does not
    name (Charades, whose Table 8 is RGB only) gets UCF-101's."""
    t = results.paper_table(CHAPTER, "fusion_weights")
    t = t[(t["table"] == "Table 7") & (t["stream"] == "spatial")].set_index("dataset")["paper"]
    return float(t.get(paper_dataset, t["UCF-101"]))


def preflight(cfg: Config) -> dict[str, Any]:
    """Stop before any work if the dataset or the backbone weights are missing (`chapter.preflight`).
    Charades is read as Table 8 reads it, keeping actions with odd times (`odd_actions`)."""
    return chapter.preflight(cfg, keep_odd_times=cfg.layout == "charades")


def multilabel_config(cfg: Config) -> Config:
    """The configuration of the multi-label experiment (Table 8): `cfg` itself on Charades (full
    mode, `dataset="charades"`); for the generated benchmarks (ci, or the generated `full`
    preset), the same benchmark's Charades-layout part (`<root>/multilabel/`)."""
    if cfg.layout == "charades":
        return cfg
    if cfg.dataset in ("ci", "full"):
        return replace(cfg, layout="charades", dataset_label=f"{cfg.dataset_label}, multi-label part",
                       paper_dataset="Charades")
    raise ValueError(f"Table 8 is multi-label: {cfg.dataset_label} is not; run with `-p dataset charades` "
                     "(or `generated`)")


# --------------------------------------------------------------------------- features

@dataclass
class Features:
    """The snippets of every video, per stream: `maps[stream][position][subset][v]` is video v's
    (pool, [crops,] C, h, w) (channels PCA-reduced in ci), `pooled[stream][subset][v]` the top's
    pooled features (pool, [crops,] D), `labels[subset]` (V,). `features` gives `Videos`
    (computed when indexed); a tensor (V, pool, ...) is accepted too (tests)."""

    maps: dict[str, dict[str, dict[str, Sequence[Tensor]]]]
    pooled: dict[str, dict[str, Sequence[Tensor]]]
    labels: dict[str, Tensor]
    classes: list[str]
    categories: list[str] | None
    video_ids: list[str]
    test_paths: list[Path]
    keys: dict[str, str]        # feature-cache keys (the run cache's identity)
    shapes: pd.DataFrame        # one row per cache entry: what it holds


def _extract(cfg: Config, *, stream: str, layer: str, subset: str, progress: bool, sampling: str = "tsn",
             params: dict[str, int] | None = None, lazy: bool = False) -> FeatureSet:
    from actionbook.features.extract import extract_features

    return extract_features(dataset=cfg.dataset, layout=cfg.layout, split=cfg.split, subset=subset,
                            backbone=cfg.backbone, layer=layer, sampling=sampling, weights=cfg.weights,
                            sampling_params={"pool": cfg.pool} if params is None else params,
                            keep_odd_times=cfg.layout == "charades",
                            crops=cfg.train_crops if subset == "train" else cfg.test_crops, modality=stream,
                            mode=cfg.mode, flow_method=cfg.flow_method, flow_length=cfg.flow_length,
                            num_workers=cfg.extract_workers, progress=progress, lazy=lazy, storage=cfg.storage)


def _pool_to(x: Tensor, grid: int) -> Tensor:
    lead = x.shape[:-3]
    return torch.nn.functional.adaptive_avg_pool2d(x.flatten(0, -4), grid).reshape(*lead, x.shape[-3], grid, grid)


@dataclass
class MapTransform:
    """What a map goes through after it is read, fitted on training maps only: average-pooled to
    `grid` x `grid` (ci), its channels projected by `pca` (ci), divided by `scale` (one number:
    unit RMS on the training maps). (..., C, h, w) -> (..., C', grid, grid)."""

    grid: int | None
    pca: PCA | None
    scale: float

    @classmethod
    def fit(cls, cfg: Config, train: Sequence[Tensor], *, max_rows: int = 200_000) -> MapTransform:
        """Fit on training videos' maps `train` (each (..., C, h, w)), read one at a time (twice
        with a PCA: its rows first, then the scale); the PCA on at most `max_rows` rows of them."""
        grid = cfg.grid if cfg.grid is not None and train[0].shape[-1] > cfg.grid else None
        t = cls(grid, None, 1.0)
        if cfg.reduce is not None:
            rows = torch.cat([t(x).movedim(-3, -1).reshape(-1, x.shape[-3]) for x in train])  # (rows, C)
            step = max(1, len(rows) // max_rows)                                               # a bounded sample
            t.pca = PCA.fit_tensor(rows[::step], dim=cfg.reduce)
        n, sq = 0, 0.0
        for x in train:
            y = t(x).double()
            n, sq = n + y.numel(), sq + float(y.pow(2).sum())
        t.scale = max(math.sqrt(sq / n), 1e-8)
        return t

    def state(self) -> dict:
        """Everything fitted, as plain tensors and numbers (`from_state` rebuilds it)."""
        pca = None if self.pca is None else {"mean": self.pca.mean, "components": self.pca.components,
                                             "explained": self.pca.explained}
        return {"grid": self.grid, "pca": pca, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict) -> MapTransform:
        return cls(state["grid"], None if state["pca"] is None else PCA(**state["pca"]), state["scale"])

    def __call__(self, x: Tensor) -> Tensor:
        if self.grid is not None:
            x = _pool_to(x, self.grid)                                 # (..., C, grid, grid)
        if self.pca is not None:
            x = self.pca(x.movedim(-3, -1)).movedim(-1, -3)            # (..., dim, h, w)
        return x / self.scale


@dataclass
class Standardise:
    """Zero mean, unit variance per feature dimension, with the training snippets' statistics
    (flow features are about 8 times smaller than RGB ones in ci: one SGD step size fits both)."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, train: Sequence[Tensor]) -> Standardise:
        """Fit on training videos' features (each (..., D)), read one at a time (sums in float64)."""
        n, s1, s2 = 0, 0.0, 0.0
        for x in train:
            rows = x.reshape(-1, x.shape[-1]).double()                 # (rows, D)
            n, s1, s2 = n + len(rows), s1 + rows.sum(0), s2 + rows.pow(2).sum(0)
        mean = s1 / n
        var = (s2 - n * mean.pow(2)).clamp(min=0) / max(n - 1, 1)
        return cls(mean.float(), var.sqrt().float().clamp(min=1e-6))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _spatial_mean(x: Tensor) -> Tensor:
    return x.mean(dim=(-2, -1))                                        # (..., C, h, w) -> (..., C)


def _fitted_on(cfg: Config, train: FeatureSet, picks: Sequence[int]) -> dict:
    """What a statistic of `train`'s maps depends on besides the conv5_1 videos (`cache.fitted`)."""
    return {"position": _position_key(train), "transforms": list(train.transforms), "picks": list(picks),
            "grid": cfg.grid, "reduce": cfg.reduce, "version": RUNS_VERSION}


def fit_map_transform(cfg: Config, train: FeatureSet, picks: Sequence[int]) -> MapTransform:
    """`MapTransform.fit` on the training videos `picks` of one position's maps `train`, fitted
    once and kept in the feature cache beside the conv5_1 entry it was fitted on (`cache.fitted`):
    a later page or build reads it instead of every sampled training video again (same numbers)."""
    return MapTransform.from_state(cache.fitted(
        train, {"statistic": "MapTransform", **_fitted_on(cfg, train, picks)},
        lambda: MapTransform.fit(cfg, Videos(train.features, picks=picks)).state()))


def fit_standardise(cfg: Config, train: FeatureSet, picks: Sequence[int]) -> Standardise:
    """`Standardise.fit` of the spatial mean of the maps `train` (the local branch's and TSN's
    input) on the training videos `picks`, kept in the feature cache as `fit_map_transform`."""
    return Standardise(**cache.fitted(
        train, {"statistic": "Standardise of the spatial mean", **_fitted_on(cfg, train, picks)},
        lambda: vars(Standardise.fit(Videos(Videos(train.features, _spatial_mean), picks=picks)))))


def unit_of(layer: str) -> str:
    """The residual unit whose output is the map `layer`: `conv5_2_map` -> `layer4.1`, `layer2.0_map` -> `layer2.0`."""
    if layer.startswith("conv5_") and layer.endswith("_map"):
        return f"layer4.{int(layer[len('conv5_'):-len('_map')]) - 1}"
    if layer.startswith("layer") and "." in layer and layer.endswith("_map"):
        return layer[:-len("_map")]
    raise ValueError(f"{layer!r} is not the output map of one residual unit (conv5_U_map or layerS.U_map)")


def frozen_units(cfg: Config) -> dict[str, list[str]]:
    """The pretrained residual units that take the map at conv5_1 to each higher position:
    `{position: [unit, ...]}` (full: `layer4.1` to conv5_2, then `layer4.2` to conv5_3; ci:
    `layer2.0`, then `layer2.1`). Only conv5_1 is extracted from the videos; `position_maps`
    runs these units on it (one pass through the backbone instead of three)."""
    import torchvision

    from actionbook.features.ci_nets import ci_resnet18
    from actionbook.models.recurrent_residual import unit_names

    with torch.device("meta"):  # the architecture only: no weights, no random numbers drawn
        net = ci_resnet18() if cfg.mode == "ci" else getattr(torchvision.models, cfg.backbone)()
    names = unit_names(net)
    at = [names.index(unit_of(cfg.layer(p))) for p in POSITIONS]
    if at != sorted(at) or len(set(at)) != len(at):
        raise ValueError(f"Config.layers={cfg.layers} must be units in the network's order, conv5_1 lowest")
    return {p: names[at[i - 1] + 1:at[i] + 1] for i, p in enumerate(POSITIONS) if i > 0}


def _frozen_net(cfg: Config) -> torch.nn.Module:
    """The config's pretrained ResNet, frozen (eval, no gradients); with `weights=None` the same
    seeded random network `backbones.backbone` builds (the caller's random stream untouched).
    The flow stream's backbone differs from the RGB one only in conv1 (TSN's cross-modality
    initialisation), so the units above conv1 are the same for both streams."""
    from actionbook.features import backbones as B

    weights = ("ci" if cfg.mode == "ci" else "DEFAULT") if cfg.weights == "auto" else cfg.weights
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = B.pretrained_stage(cfg.backbone, stage="", weights=weights, mode=cfg.mode)
    net.eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return net


class _Units:
    """Maps (..., C, h, w) of the lower position -> (..., C', h', w') of the higher one, through
    frozen units, in batches of snippets on `device` (the result back on the CPU). The last
    result is kept for its input tensor, so that conv5_3 of a video read once (`EntryReader`
    keeps it) does not compute its conv5_2 again."""

    def __init__(self, modules: list[torch.nn.Module], *, device: torch.device, batch: int = 256) -> None:
        self.body = torch.nn.Sequential(*modules).to(device)
        self.device, self.batch = device, batch
        self._last: tuple[Tensor, Tensor] | None = None

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        flat = x.reshape(-1, *x.shape[-3:])                                       # (N, C, h, w)
        y = torch.cat([self.body(flat[j:j + self.batch].to(self.device)).float().cpu()
                       for j in range(0, len(flat), self.batch)])                # (N, C', h', w')
        y = y.reshape(*x.shape[:-3], *y.shape[1:])
        self._last = (x, y)
        return y


def position_maps(cfg: Config, stream: str, *, progress: bool | None = None, lazy: bool = False,
                  sampling: str = "tsn", params: dict[str, int] | None = None) -> dict[str, dict[str, FeatureSet]]:
    """One stream's maps at the three positions: `{position: {"train": FeatureSet, "test": FeatureSet}}`.

    conv5_1's are extracted from the videos (one feature-cache entry per subset); conv5_2's and
    conv5_3's are computed from them, video by video, with the frozen pretrained units between the
    positions (`frozen_units`), the same numbers as extracting them from the videos (up to float
    rounding; `tests/test_relational_lstm_experiments.py` checks it). In ci, layer1.1's 14 x 14
    maps go through the units as they are (the 7 x 7 pooling is the R-LSTM's, `MapTransform`).

    lazy=True: nothing is read or computed now; a video's conv5_1 file is read and its higher
    maps computed when it is indexed (`cache.LazyVideos`). sampling / params: as `_extract`."""
    progress = cfg.progress if progress is None else progress
    base = {sub: _extract(cfg, stream=stream, layer=cfg.layer(POSITIONS[0]), subset=sub, progress=progress,
                          sampling=sampling, params=params, lazy=lazy) for sub in ("train", "test")}
    net, device = _frozen_net(cfg), engine.resolve_device(cfg.device)
    out, below = {POSITIONS[0]: base}, base
    for position, units in frozen_units(cfg).items():  # conv5_2 from conv5_1, then conv5_3 from conv5_2
        f = _Units([net.get_submodule(u) for u in units], device=device)
        below = {sub: fs.map(f, name=f"frozen {'+'.join(units)}") for sub, fs in below.items()}
        out[position] = below
    return out


def _position_key(fs: FeatureSet) -> str:
    """A position's identity: its cache entry's key and content (`FeatureSet.identity`), and the
    frozen units that computed it from there."""
    derived = [t.removeprefix("frozen ") for t in fs.transforms if t.startswith("frozen ")]
    return f"{fs.key}@{fs.content}" + "".join(f">{u}" for u in derived)


class Videos(Sequence):
    """Per-video tensors computed when indexed: `fn(source[v])` for the videos `picks` (default
    all), the last `keep` kept in memory (None: every one once computed). Over a lazy
    `FeatureSet.features`, a video's file is read when it is drawn, never a whole split at once;
    `rows(v, r)` reads and computes only the snippets `r` of video v (a training draw's T)."""

    def __init__(self, source: Sequence[Tensor], fn: Callable[[Tensor], Tensor] | None = None, *,
                 picks: Sequence[int] | None = None, keep: int | None = 1) -> None:
        self.source, self.fn, self.keep = source, fn, keep
        self.picks = list(range(len(source))) if picks is None else list(picks)
        self._kept: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, v: int) -> Tensor:  # type: ignore[override]
        if v in self._kept:
            return self._kept[v]
        x = self.source[self.picks[v]]
        x = x if self.fn is None else self.fn(x)
        if self.keep != 0:
            self._kept[v] = x
            while self.keep is not None and len(self._kept) > self.keep:
                self._kept.pop(next(iter(self._kept)))
        return x

    def rows(self, v: int, r: Tensor) -> Tensor:
        """`self[v][r]`: video v's snippets r (len(r), ...). Where the source reads rows alone
        (`cache.LazyVideos.rows`, or `Videos` over one), only those snippets are read from disk and
        computed (`fn` acts on each snippet by itself), unless the video is kept in memory or
        every video is kept (`keep=None`: the whole video is computed once, then kept)."""
        if v in self._kept or self.keep is None or not hasattr(self.source, "rows"):
            return self[v][r]
        x = self.source.rows(self.picks[v], r)
        return x if self.fn is None else self.fn(x)


def fit_sample(videos: int, most: int) -> list[int]:
    """The training videos the transforms are fitted on: all of them, or `most` equally spaced."""
    if videos <= most:
        return list(range(videos))
    return sorted({round(i * (videos - 1) / (most - 1)) for i in range(most)}) if most > 1 else [videos // 2]


class SnippetRows:
    """Every video's snippets one after another, as rows (Table 8's windows index them): video v
    holds rows `offsets[v]` to `offsets[v + 1]` of `videos[v]` (`Videos`, read when drawn).
    `rows[r]` for row indices r of one video gives its snippets (len(r), ...)."""

    def __init__(self, videos: Sequence[Tensor], offsets: Tensor) -> None:
        if len(offsets) != len(videos) + 1:
            raise ValueError(f"SnippetRows: {len(offsets)} offsets for {len(videos)} videos; give V + 1")
        self.videos, self.offsets = videos, offsets

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _video(self, r: Tensor) -> tuple[int, Tensor]:
        r = torch.as_tensor(r).long()
        v = int(torch.searchsorted(self.offsets, r.min(), right=True)) - 1
        if not 0 <= v < len(self.videos) or int(r.max()) >= int(self.offsets[v + 1]):
            raise IndexError(f"rows {r.tolist()} do not lie in one video (offsets {self.offsets.tolist()[:5]}...)")
        return v, r - self.offsets[v]

    def __getitem__(self, r: Tensor) -> Tensor:
        v, rv = self._video(r)
        return self.videos[v][rv]

    def rows(self, r: Tensor) -> Tensor:
        """`self[r]`, reading only those snippets where the videos can (`Videos.rows`): a training draw."""
        v, rv = self._video(r)
        return _video_rows(self.videos, v, rv)


def features(cfg: Config, *, progress: bool | None = None) -> Features:
    """Every video's `pool` snippets at the three positions, both streams and both subsets.

    One feature-cache entry per (stream, subset), at conv5_1, extracted once (`sampling="tsn"`:
    the centres of `pool` equal segments; a flow snippet is `flow_length` stacked fields); the
    higher positions are computed from it by the frozen units (`position_maps`). In ci
    the maps' channels are reduced by a PCA fitted on the training maps only. Every stream's maps
    are scaled to unit RMS and its pooled features standardised, with training statistics only,
    of at most `fit_videos` training videos (`fit_sample`).

    Nothing is held per split: `maps[stream][position][subset]` and `pooled[stream][subset]`
    are `Videos`, which read a video's conv5_1 maps from the feature cache when it is drawn,
    compute its higher positions and apply the fitted transforms (`keep_maps`: how many prepared
    videos stay in memory; ci keeps them all, they are small, full keeps the last one).
    """
    from actionbook.data.datasets import read_records, resolve_dataset

    if cfg.layout == "charades":
        raise ValueError("Charades is multi-label: its features are `multilabel_features(cfg)` (Table 8)")
    progress = cfg.progress if progress is None else progress
    maps: dict[str, dict[str, dict[str, Videos]]] = {}
    pooled: dict[str, dict[str, Videos]] = {}
    keys, rows, first = {}, [], None
    units, computed = frozen_units(cfg), {POSITIONS[0]: "extracted from the videos"}
    for i, p in enumerate(POSITIONS[1:], start=1):
        computed[p] = "from conv5_1 by the frozen " + ", ".join(u for q in POSITIONS[1:i + 1] for u in units[q])
    for stream in STREAMS:
        maps[stream] = {}
        for position, sets in position_maps(cfg, stream, progress=progress, lazy=True).items():
            first = first or sets
            for sub, fs in sets.items():
                if fs.video_ids != first[sub].video_ids:
                    raise ValueError(f"feature entries {fs.key} and {first[sub].key} hold different {sub} videos; "
                                     "clean them (`python -m actionbook cache clean KEY`) and extract again")
                keys[f"{stream}/{position}/{sub}"] = _position_key(fs)
                rows.append({"stream": STREAM_NAMES[stream], "position": position, "layer": cfg.layer(position),
                             "subset": sub, "videos": len(fs),
                             "snippet": "x".join(map(str, fs.features[0].shape[1:])),
                             "conv5_1 stored as": fs.spec.get("storage", "float32"),
                             "cache key": fs.key, "computed": computed[position]})
            # each video's maps read from the cache when drawn (`Videos`); transforms fitted on a sample
            sample = fit_sample(len(sets["train"]), cfg.fit_videos)
            if position == POSITIONS[-1]:  # the local branch's and TSN's input, standardised per dimension
                st = fit_standardise(cfg, sets["train"], sample)
                top = {sub: Videos(fs.features, _spatial_mean) for sub, fs in sets.items()}
                pooled[stream] = {sub: Videos(v, st, keep=cfg.keep_maps) for sub, v in top.items()}
            t = fit_map_transform(cfg, sets["train"], sample)
            maps[stream][position] = {sub: Videos(fs.features, t, keep=cfg.keep_maps) for sub, fs in sets.items()}
    labels = {sub: torch.stack(fs.targets()) for sub, fs in first.items()}
    classes = first["test"].classes
    ds = resolve_dataset(cfg.dataset, layout=cfg.layout)
    records, _ = read_records(ds, split=cfg.split, subset="test")
    path_of = {r.video_id: r.path for r in records}
    return Features(maps, pooled, labels, classes, chapter.categories(cfg, classes), first["test"].video_ids,
                    [path_of[v] for v in first["test"].video_ids], keys, pd.DataFrame(rows))


def _video_rows(videos: Sequence[Tensor] | Tensor, v: int, r: Tensor) -> Tensor:
    """Snippets r of video v: `videos.rows(v, r)` where it reads them alone (`Videos`), else `videos[v][r]`."""
    return videos.rows(v, r) if isinstance(videos, Videos) else videos[v][r]


class Snippets(torch.utils.data.Dataset):
    """TSN's segments over the cached snippets: items `((maps, pooled), y, index)`, x of shape
    (T, C, h, w) and (T, D).

    A *window* is a run of consecutive snippets: by default a whole video (`maps[v]` video v's
    (P, [crops,] C, h, w), `pooled[v]` its (P, [crops,] D): `Videos`, read one video per item,
    or tensors (V, P, ...); one label per video, the item's index is the video's).
    With `windows` ((W, 2) row ranges [lo, hi)), maps and pooled hold the snippets of every
    video one after another ((N, [crops,] C, h, w), (N, [crops,] D)), `labels` has one row per
    window and the item's index is the window's: Table 8's action intervals and test clips.

    The snippets of a window are cut into T equal segments (segment t holds its snippets
    [t P // T, (t + 1) P // T), at least one: a window of fewer than T snippets repeats some).
    Training: one item per window, a random snippet in every segment and, with a crop axis,
    one random crop (the same for the T snippets), drawn anew each time; a training item reads
    only its T snippets where `maps` and `pooled` can (`Videos.rows`, `SnippetRows.rows`). Testing: `groups`
    items per window x crops, group g taking the snippet at fraction (g + 1/2) / groups of
    every segment (the paper's 4 equally spaced positions).
    """

    def __init__(self, maps: Tensor, pooled: Tensor, labels: Tensor, *, T: int, train: bool, groups: int = 4,
                 windows: Tensor | None = None) -> None:
        self.per_video = windows is None
        if self.per_video:  # maps[v]: video v's (P, [crops,] C, h, w), read when drawn (`Videos`) or a tensor's row
            first = maps[0]
            V, P = len(maps), first.shape[0]
            if T > P:
                raise ValueError(f"{P} cached snippets per video cannot fill T={T} segments")
            windows = torch.stack([torch.zeros(V, dtype=torch.long), torch.full((V,), P)], 1)  # (V, 2) in each video
            self.crops = first.shape[1] if first.ndim == 5 else 0
        else:
            windows = torch.as_tensor(windows).long()
            if (windows[:, 1] <= windows[:, 0]).any() or windows.max() > len(maps):
                raise ValueError(f"Snippets: a window is empty or outside the {len(maps)} snippets; give one "
                                 "non-empty [lo, hi) per label")
            first = maps[windows[0, 0:1]]                     # (1, [crops,] C, h, w): a tensor's row or `SnippetRows`
            self.crops = first.shape[1] if first.ndim == 5 else 0
        if len(windows) != len(labels):
            raise ValueError(f"Snippets: {len(windows)} windows (or videos) for {len(labels)} labels; give one per label")
        self.maps, self.pooled, self.labels, self.T, self.train = maps, pooled, labels, T, train
        self.windows, self.groups = windows, groups
        views = [(g, c) for g in range(groups) for c in range(max(self.crops, 1))]
        self.items = [(w, None, None) for w in range(len(labels))] if train else \
            [(w, g, c) for w in range(len(labels)) for g, c in views]

    def __len__(self) -> int:
        return len(self.items)

    def bounds(self, w: int = 0) -> list[tuple[int, int]]:
        """The T segments of window w, as snippet ranges [lo, hi) counted from the window's start."""
        P, T = int(self.windows[w, 1] - self.windows[w, 0]), self.T
        return [(t * P // T, max((t + 1) * P // T, t * P // T + 1)) for t in range(T)]

    def rows(self, g: int | None, w: int = 0) -> Tensor:
        """The snippet of every segment of window w, counted from its start: random (g None) or group g's."""
        if g is None:
            return torch.tensor([lo + int(torch.randint(hi - lo, ())) for lo, hi in self.bounds(w)])
        return torch.tensor([lo + ((2 * g + 1) * (hi - lo)) // (2 * self.groups) for lo, hi in self.bounds(w)])

    def __getitem__(self, i: int) -> tuple[tuple[Tensor, Tensor], Tensor, int]:
        w, g, c = self.items[i]
        r = self.windows[w, 0] + self.rows(g, w)
        if self.per_video and self.train:  # its T snippets read (or computed) alone where the videos can
            m, p = _video_rows(self.maps, w, r), _video_rows(self.pooled, w, r)
        elif self.per_video:  # a test video's items come one after another: the video read once, kept
            m, p = self.maps[w][r], self.pooled[w][r]             # (T, [crops,] C, h, w), (T, [crops,] D)
        elif self.train and isinstance(self.maps, SnippetRows) and isinstance(self.pooled, SnippetRows):
            m, p = self.maps.rows(r), self.pooled.rows(r)          # a window's T snippets read alone
        else:
            m, p = self.maps[r], self.pooled[r]
        if self.crops:
            c = int(torch.randint(self.crops, ())) if c is None else c
            m, p = m[:, c], p[:, c]
        return (m, p), self.labels[w], w


# --------------------------------------------------------------------------- training

@dataclass(frozen=True)
class RunKey:
    """One trained model: `model` in MODELS, on one stream, T segments, the R-LSTM at `position`."""

    model: str
    stream: str
    T: int
    position: str
    seed: int

    @property
    def condition(self) -> str:
        """The run's name without its seed (a condition of the claims audit)."""
        return condition_name(self.model, STREAM_NAMES[self.stream], T=self.T, position=self.position)


def condition_name(model: str, stream: str, *, T: int, position: str) -> str:
    """A condition's name: a model of MODELS or "ensemble", a stream label (spatial, temporal,
    two-stream), T, and the R-LSTM's position where the model has one."""
    pos = f", after {position}" if model in ("nonlocal", "both") else ""
    name = "TSN + R-LSTM" if model == "ensemble" else MODEL_NAMES[model]
    return f"{name}, {stream}, T={T}{pos}"


def _model(key: RunKey, cfg: Config, *, channels: int, dim: int, num_classes: int) -> torch.nn.Module:
    """The untrained model of `key`: TSN, or the two-branch network with `key.model`'s branches."""
    dropout = cfg.dropout_temporal if key.stream == "flow" else cfg.dropout
    if key.model == "tsn":
        return TSN(dim, num_classes, dropout=dropout)
    return TwoBranch(RelationalConfig(channels=channels, local_dim=dim, num_classes=num_classes, branches=key.model,
                                      dropout=dropout, bn_momentum=cfg.bn_momentum))


class Runs:
    """The chapter's models: builds each `RunKey`'s data and model, and trains it once through
    `chapter.RunCache` (checkpointed, its test result kept on disk). Tables share runs: the
    two-branch model at the default T and position is Table 3's, 4's and 5's middle row."""

    def __init__(self, feats: Features, cfg: Config, *, progress: bool | None = None, cache: bool = True) -> None:
        self.feats, self.cfg = feats, cfg
        self.classes, self.video_ids = feats.classes, feats.video_ids  # the test videos' ids, in score order
        show = cfg.progress if progress is None else progress
        self.cache = chapter.RunCache(CHAPTER, version=RUNS_VERSION, threads=cfg.threads, workers=cfg.workers, progress=show,
                                      eval_batch_size=cfg.eval_batch_size, device=cfg.device, cache=cache)

    def labels(self, subset: str = "test") -> Tensor:
        return self.feats.labels[subset]

    def key(self, model: str = "both", stream: str = "rgb", *, seed: int, **change: Any) -> RunKey:
        """The key of `model` at the config's T and position, with `change` applied."""
        key = RunKey(model, stream, self.cfg.T, self.cfg.position, seed)
        key = replace(key, **change)
        if key.model in ("tsn", "local"):  # they never read the R-LSTM's position
            key = replace(key, position=self.cfg.position)
        return key

    def datasets(self, key: RunKey) -> tuple[Snippets, Snippets]:
        f = self.feats
        return tuple(Snippets(f.maps[key.stream][key.position][sub], f.pooled[key.stream][sub], f.labels[sub],
                              T=key.T, train=sub == "train", groups=self.cfg.groups) for sub in ("train", "test"))

    def model(self, key: RunKey) -> torch.nn.Module:
        return _model(key, self.cfg, channels=self.feats.maps[key.stream][key.position]["train"][0].shape[-3],
                      dim=self.feats.pooled[key.stream]["train"][0].shape[-1], num_classes=len(self.classes))

    def get(self, key: RunKey) -> engine.EvalResult:
        """The test result of run `key` (trained on first use, then from the run cache)."""
        return self.cache.get(key, model=lambda: self.model(key), data=lambda: self.datasets(key),
                              train=self.cfg.train_config(key.stream, key.seed), seed=key.seed,
                              identity={"features": self.feats.keys, "reduce": self.cfg.reduce, "grid": self.cfg.grid,
                                        "pool": self.cfg.pool, "groups": self.cfg.groups,
                                        "fit_videos": self.cfg.fit_videos,
                                        "dropout": (self.cfg.dropout, self.cfg.dropout_temporal),
                                        "bn_momentum": self.cfg.bn_momentum})


# --------------------------------------------------------------------------- scores and fusion

def stream_logits(runs: Runs, key: RunKey) -> Tensor:
    """A run's video logits: the mean of its test views' logits (V, C), before any softmax."""
    return runs.get(key).video_logits


def two_stream(runs: Runs, model: str, *, seed: int, w: float | None = None, **change: Any) -> Tensor:
    """The two streams of `model` fused before the softmax: w spatial + (1 - w) temporal logits (V, C).

    w defaults to the paper's weight for the model (TSN 0.35, the R-LSTM network 0.5, the
    two-branch model and its ablations Table 7's for the dataset: 0.45 on UCF-101, 0.33 on HMDB-51).
    """
    c = runs.cfg
    w = {"tsn": c.w_tsn, "nonlocal": c.w_rlstm}.get(model, c.w_final) if w is None else w
    rgb, flow = (stream_logits(runs, runs.key(model, s, seed=seed, **change)) for s in STREAMS)
    return metrics.fuse([rgb, flow], weights=(w, 1 - w), softmax=False)


def ensemble(runs: Runs, stream: str, *, seed: int) -> Tensor:
    """TSN + the R-LSTM network (Table 2): the two models' logits averaged in one stream, or,
    for stream "two-stream", their two-stream logits averaged (equal weights per stream)."""
    if stream == "two-stream":
        parts = [stream_logits(runs, runs.key(m, s, seed=seed)) for m in ("tsn", "nonlocal") for s in STREAMS]
    else:
        parts = [stream_logits(runs, runs.key(m, stream, seed=seed)) for m in ("tsn", "nonlocal")]
    return metrics.fuse(parts, softmax=False) / len(parts)


def scores(runs: Runs, model: str, stream: str, *, seed: int, **change: Any) -> Tensor:
    """The logits of `model` ("ensemble" for TSN + R-LSTM) in `stream` ("rgb", "flow" or "two-stream")."""
    if model == "ensemble":
        return ensemble(runs, stream, seed=seed)
    if stream == "two-stream":
        return two_stream(runs, model, seed=seed, **change)
    return stream_logits(runs, runs.key(model, stream, seed=seed, **change))


STREAM_COLUMNS = ("rgb", "flow", "two-stream")
_STREAM_LABEL = {"rgb": "spatial", "flow": "temporal", "two-stream": "two-stream"}


def _rows(runs: Runs, model: str, seeds: Sequence[int], cols: dict[str, Any], **change: Any) -> list[dict[str, Any]]:
    y = runs.labels("test")
    models = ("tsn", "nonlocal") if model == "ensemble" else (model,)
    runs.cache.train_all(runs.get, [runs.key(m, st, seed=s, **change) for s in seeds for m in models for st in STREAMS])
    out = []
    for s in seeds:
        for st in STREAM_COLUMNS:
            acc = 100 * metrics.topk_accuracy(scores(runs, model, st, seed=s, **change), y, k=1)
            out.append({**cols, "stream": _STREAM_LABEL[st], "seed": s, "accuracy": acc})
    return out


# --------------------------------------------------------------------------- Tables 2-5

def run_table2(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Table 2: TSN, the R-LSTM network (non-local branch only) and their ensemble, per stream.
    Columns: method, stream (spatial / temporal / two-stream), seed, accuracy."""
    names = {"tsn": "TSN", "nonlocal": "R-LSTM", "ensemble": "TSN + R-LSTM"}
    return pd.DataFrame([r for m, name in names.items() for r in _rows(runs, m, seed_list(seeds), {"method": name})])


def run_table3(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Table 3: the two-branch model with T segments, T in `T_grid`. Columns: segments, stream, seed, accuracy."""
    return pd.DataFrame([r for T in runs.cfg.T_grid for r in _rows(runs, "both", seed_list(seeds), {"segments": T}, T=T)])


def run_table4(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Table 4: local branch only, non-local branch only, both. Columns: branch, stream, seed, accuracy."""
    names = {"local": "local", "nonlocal": "non-local", "both": "two-branch"}
    return pd.DataFrame([r for m, name in names.items() for r in _rows(runs, m, seed_list(seeds), {"branch": name})])


def run_table5(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Table 5: the two-branch model with the R-LSTM after conv5_1 / conv5_2 / conv5_3 (what each
    reads is `cfg.layer(position)`). Columns: position, layer, stream, seed, accuracy."""
    c = runs.cfg
    return pd.DataFrame([r for p in POSITIONS for r in _rows(runs, "both", seed_list(seeds),
                                                              {"position": p, "layer": c.layer(p)}, position=p)])


def _ours_label(cfg: Config) -> str:
    return f"ours: {cfg.dataset_label} ({cfg.mode})"


def _vs_paper(ours: pd.DataFrame, table: str, on: str, cfg: Config, *, paper_keys: Sequence[Any] | None = None,
              our_keys: Sequence[Any] | None = None) -> pd.DataFrame:
    """Our table (one row per setting x stream x seed) as the paper prints it: settings as rows,
    one column pair (paper, ours) per stream; our settings matched to the paper's by position."""
    paper = results.paper_table(CHAPTER, table)
    o = ours.copy()
    if paper_keys is not None:
        o[on] = o[on].map(dict(zip(our_keys, paper_keys)))
    t = results.paper_vs_ours(o, paper, on=[on, "stream"], value="accuracy", paper_label="paper",
                              ours_label="ours")
    wide = t.pivot(index=on, columns="stream", values=["paper", "ours"])
    order = list(dict.fromkeys(paper[on]))
    wide = wide.reindex([k for k in order if k in wide.index] + [k for k in wide.index if k not in order])
    out = pd.DataFrame({on: wide.index})
    for st in ("spatial", "temporal", "two-stream"):
        out[f"{st}: paper ({cfg.paper_dataset} split 1)"] = wide[("paper", st)].values
        out[f"{st}: {_ours_label(cfg)}"] = wide[("ours", st)].values
    return out.fillna("—")


def table2_vs_paper(t2: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 2 beside the paper's (UCF-101 split 1, T = 8)."""
    return _vs_paper(t2, "table2", "method", cfg)


def table3_vs_paper(t3: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 3 beside the paper's; our T grid is matched to the paper's by rank (ci halves it)."""
    paper_T = sorted(results.paper_table(CHAPTER, "table3")["segments"].unique())
    out = _vs_paper(t3, "table3", "segments", cfg, paper_keys=paper_T, our_keys=sorted(cfg.T_grid))
    out.insert(1, "our T", [dict(zip(paper_T, sorted(cfg.T_grid)))[t] for t in out["segments"]])
    return out.rename(columns={"segments": "paper's T"})


def table4_vs_paper(t4: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 4 beside the paper's."""
    return _vs_paper(t4, "table4", "branch", cfg)


def table5_vs_paper(t5: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 5 beside the paper's, with the layer that plays each position here."""
    out = _vs_paper(t5.drop(columns="layer"), "table5", "position", cfg)
    out.insert(1, "our layer", [cfg.layer(p) for p in out["position"]])
    return out


# --------------------------------------------------------------------------- per category, Figs. 3-4

CATEGORY_MODELS = {"TSN": "tsn", "R-LSTM": "nonlocal", "local branch": "local", "two-branch": "both",
                   "TSN + R-LSTM": "ensemble"}


def run_categories(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Every model's accuracy per coarse category (and over all classes), per stream and seed.
    Columns: model, stream, category, seed, accuracy."""
    y = runs.labels("test")
    cats = runs.feats.categories
    jobs = [(m, st, s) for s in seed_list(seeds) for m in CATEGORY_MODELS.values() for st in STREAM_COLUMNS]
    runs.cache.train_all(lambda job: scores(runs, job[0], job[1], seed=job[2]), jobs)  # `cfg.workers` at a time
    rows = []
    for s in seed_list(seeds):
        for name, m in CATEGORY_MODELS.items():
            for st in STREAM_COLUMNS:
                pred = scores(runs, m, st, seed=s).argmax(1)
                rows.append({"model": name, "stream": _STREAM_LABEL[st], "category": "all classes", "seed": s,
                             "accuracy": 100 * float((pred == y).float().mean())})
                if cats is not None:
                    for cat, acc in metrics.category_accuracy(pred, y, categories=cats).items():
                        rows.append({"model": name, "stream": _STREAM_LABEL[st], "category": cat, "seed": s,
                                     "accuracy": 100 * acc})
    return pd.DataFrame(rows)


def categories_table(cat: pd.DataFrame, *, stream: str = "two-stream") -> pd.DataFrame:
    """Mean ± sd over seeds per model (rows) and category (columns) for one stream. The paper
    prints no per-category numbers; its claim is that the gain over TSN concentrates on
    interactions (Fig. 3)."""
    d = cat[cat["stream"] == stream]
    s = results.summarize_seeds(d, by=["model", "category"], value="accuracy")
    s["value"] = [f"{m:.1f} ± {sd:.1f}" for m, sd in zip(s["mean"], s["std"])]
    wide = s.pivot(index="model", columns="category", values="value")
    wide = wide.reindex([m for m in CATEGORY_MODELS if m in wide.index])
    return wide[["all classes"] + [c for c in wide.columns if c != "all classes"]].reset_index()


def run_fig3(runs: Runs, *, seeds: int | Sequence[int] = 5, top: int = 10) -> pd.DataFrame:
    """Fig. 3: per-class accuracy of TSN and the two-branch model (two-stream, mean over seeds)
    and the gain, the `top` classes with the largest gain first. Columns: class, category,
    TSN, two-branch, gain (points)."""
    y = runs.labels("test")
    C = len(runs.classes)
    acc = {name: torch.stack([metrics.per_class_accuracy(two_stream(runs, m, seed=s).argmax(1), y, num_classes=C)
                              for s in seed_list(seeds)]).nanmean(0) for name, m in (("TSN", "tsn"),
                                                                                     ("two-branch", "both"))}
    cats = runs.feats.categories or [""] * C
    d = pd.DataFrame({"class": runs.classes, "category": cats, "TSN": 100 * acc["TSN"].numpy(),
                      "two-branch": 100 * acc["two-branch"].numpy()})
    d["gain"] = d["two-branch"] - d["TSN"]
    return d.sort_values("gain", ascending=False, kind="stable").head(top).reset_index(drop=True)


def plot_fig3(fig3: pd.DataFrame, *, interaction: str = "interaction"):
    """Fig. 3: the classes with the largest gain over TSN; bars of interaction classes in red."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(fig3) + 1))
    colour = ["tab:red" if c == interaction else "tab:gray" for c in fig3["category"]]
    ax.barh(fig3["class"] + " (" + fig3["category"] + ")", fig3["gain"], color=colour)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlabel="accuracy gain of the two-branch model over TSN (points, two-stream, mean of seeds)")
    fig.tight_layout()
    return fig


def run_fig4(runs: Runs, *, seed: int, videos: int = 4) -> pd.DataFrame:
    """Fig. 4: the top-5 of TSN and of the two-branch model (two-stream) on the same test videos:
    those the two-branch model gets right most confidently where TSN is wrong, then the reverse.
    Columns of `plots.topk_examples` plus `model`."""
    y = runs.labels("test")
    sc = {name: two_stream(runs, m, seed=seed).softmax(1) for name, m in (("TSN", "tsn"), ("two-branch", "both"))}
    ours_right = (sc["two-branch"].argmax(1) == y) & (sc["TSN"].argmax(1) != y)
    tsn_right = (sc["TSN"].argmax(1) == y) & (sc["two-branch"].argmax(1) != y)
    conf = sc["two-branch"].max(1).values
    pick = [int(v) for mask in (ours_right, tsn_right)
            for v in torch.nonzero(mask).flatten()[conf[mask].argsort(descending=True)][:videos // 2]]
    frames = []
    for name, s in sc.items():
        ex = plots.topk_examples(s[pick], y[pick], classes=runs.classes,
                                 video_ids=[runs.video_ids[v] for v in pick], right=len(pick), wrong=len(pick))
        ex["video"] = [pick[v] for v in ex["video"]]
        frames.append(ex.assign(model=name))
    return pd.concat(frames, ignore_index=True)


def tables67_vs_paper(t4: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Tables 6-7 as the paper prints them (three-split means of published methods), with our
    two-branch model's two-stream accuracy in a column of its own (other data: not comparable)."""
    p = pd.concat([results.paper_table(CHAPTER, "table6").assign(table="Table 6 (LSTM-based)"),
                   results.paper_table(CHAPTER, "table7").assign(table="Table 7 (other methods)")])
    wide = p.pivot_table(index=["table", "method"], columns="dataset", values="paper", aggfunc="first", sort=False)
    wide = wide.map(lambda v: "—" if pd.isna(v) else f"{v:.1f}").reset_index()
    ours = t4[(t4["branch"] == "two-branch") & (t4["stream"] == "two-stream")]["accuracy"]
    label = _ours_label(cfg)
    wide[label] = "—"
    row = {"table": "this book", "method": "Two-branch (ours)", "UCF-101": "—", "HMDB-51": "—",
           label: f"{ours.mean():.1f} ± {ours.std():.1f} (n={len(ours)})" if len(ours) > 1 else f"{ours.mean():.1f}"}
    return pd.concat([wide, pd.DataFrame([row])], ignore_index=True)


def fusion_sweep(runs: Runs, model: str = "both", *, seeds: int | Sequence[int] = 5,
                 weights: Sequence[float] = tuple(i / 10 for i in range(11))) -> pd.DataFrame:
    """Two-stream accuracy against the spatial weight w (the paper chose its weights this way, on
    the test split; here it is a view, not a choice: the tables use the paper's weights).
    Columns: w, seed, accuracy."""
    y = runs.labels("test")
    return pd.DataFrame([{"w": w, "seed": s,
                          "accuracy": 100 * metrics.topk_accuracy(two_stream(runs, model, seed=s, w=w), y, k=1)}
                         for s in seed_list(seeds) for w in weights])


# --------------------------------------------------------------------------- the claims

def _interaction(cfg: Config) -> str:
    return INTERACTION["generated" if cfg.dataset in ("ci", "full") else cfg.layout]


def claims(cfg: Config) -> list[Claim]:
    """The paper's claims as contrasts between two conditions (two-stream unless said), each with
    the paper's own effect from its tables (UCF-101 split 1)."""
    from actionbook.audit import Claim

    t2 = results.paper_table(CHAPTER, "table2").set_index(["method", "stream"])["paper"]
    t3 = results.paper_table(CHAPTER, "table3").set_index(["segments", "stream"])["paper"]
    t4 = results.paper_table(CHAPTER, "table4").set_index(["branch", "stream"])["paper"]
    t5 = results.paper_table(CHAPTER, "table5").set_index(["position", "stream"])["paper"]
    Ts = sorted(cfg.T_grid)
    p3 = dict(zip(Ts, sorted(t3.index.get_level_values(0).unique())))
    k = lambda m, st="two-stream", **ch: _condition(m, st, cfg, **ch)  # noqa: E731
    two = "two-stream"
    out = [
        Claim("L1", "the R-LSTM network gains nothing over TSN (about as good)", k("nonlocal"), k("tsn"),
              expect="no_gain", paper_effect=paper_diff(t2["R-LSTM", two], t2["TSN", two]),
              paper_source="Table 2, two-stream"),
        Claim("L2a", "TSN + R-LSTM beats TSN", k("ensemble"), k("tsn"),
              paper_effect=paper_diff(t2["TSN + R-LSTM", two], t2["TSN", two]), paper_source="Table 2, two-stream"),
        Claim("L2b", "TSN + R-LSTM beats the R-LSTM network", k("ensemble"), k("nonlocal"),
              paper_effect=paper_diff(t2["TSN + R-LSTM", two], t2["R-LSTM", two]), paper_source="Table 2, two-stream"),
        Claim("L3a", f"T = {cfg.T} beats T = {Ts[0]}", k("both"), k("both", T=Ts[0]),
              paper_effect=paper_diff(t3[p3[cfg.T], two], t3[p3[Ts[0]], two]), paper_source="Table 3, two-stream"),
        Claim("L3b", f"T = {cfg.T} beats T = {Ts[-1]}", k("both"), k("both", T=Ts[-1]),
              paper_effect=paper_diff(t3[p3[cfg.T], two], t3[p3[Ts[-1]], two]), paper_source="Table 3, two-stream"),
    ]
    for st in ("rgb", "flow"):
        name = STREAM_NAMES[st]
        out += [Claim(f"L4{name[0]}{b[0]}", f"two branches beat the {b} branch alone ({name} stream)",
                      k("both", st), k(m, st), paper_effect=paper_diff(t4["two-branch", name], t4[b, name]),
                      paper_source=f"Table 4, {name}") for m, b in (("local", "local"), ("nonlocal", "non-local"))]
    out += [
        Claim("L5a", "the R-LSTM after conv5_2 beats after conv5_1", k("both"), k("both", position="conv5_1"),
              paper_effect=paper_diff(t5["conv5_2", two], t5["conv5_1", two]), paper_source="Table 5, two-stream"),
        Claim("L5b", "the R-LSTM after conv5_2 beats after conv5_3", k("both"), k("both", position="conv5_3"),
              paper_effect=paper_diff(t5["conv5_2", two], t5["conv5_3", two]), paper_source="Table 5, two-stream"),
        Claim("L6a", "the two-branch model beats TSN", k("both"), k("tsn"),
              paper_effect=paper_diff(t4["two-branch", two], t2["TSN", two]), paper_source="Tables 2 and 4, two-stream"),
        Claim("L6b", f"the two-branch model beats TSN on the {_interaction(cfg)} classes", k("both"), k("tsn"),
              category=_interaction(cfg), paper_source="Fig. 3 (no values printed)"),
    ]
    return out


def _condition(model: str, stream: str, cfg: Config, **change: Any) -> str:
    """The name of a condition: a model ("ensemble" too) in a stream, at the config's T and position
    unless `change` says otherwise."""
    return condition_name(model, _STREAM_LABEL[stream], T=change.get("T", cfg.T),
                          position=change.get("position", cfg.position))


def conditions(runs: Runs) -> dict[str, Callable[[int], Tensor]]:
    """Every condition the claims name -> its test logits (V, C) for a seed."""
    c = runs.cfg
    out: dict[str, Callable[[int], Tensor]] = {}
    variants = [{}] + [{"T": T} for T in c.T_grid if T != c.T] + [{"position": p} for p in POSITIONS if p != c.position]
    for m in (*MODELS, "ensemble"):
        for st in STREAM_COLUMNS:
            for ch in variants if m == "both" else [{}]:
                out[_condition(m, st, c, **ch)] = lambda s, m=m, st=st, ch=ch: scores(runs, m, st, seed=s, **ch)
    return out


def run_claims(runs: Runs, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """The audit of the paper's claims over `seeds` (`actionbook.audit`), saved as claims.csv. Its
    input, one row per (condition, seed, test video), comes from `chapter.claim_outcomes`."""
    claimed = claims(runs.cfg)
    frame = chapter.claim_outcomes(claimed, conditions(runs), runs.labels("test"), seeds=seeds,
                                   video_ids=runs.video_ids, categories=runs.feats.categories, cache=runs.cache)
    return chapter.claims_table(claimed, frame, mode=runs.cfg.mode, chapter=CHAPTER, config=runs.cfg,
                                seeds=seed_list(seeds))


def train_seconds(runs: Runs) -> pd.DataFrame:
    """How long each run trained (seconds, from the run cache): model, stream, T, position, seed, seconds."""
    return pd.DataFrame([{"model": MODEL_NAMES[k.model], "stream": STREAM_NAMES[k.stream], "T": k.T,
                          "position": k.position, "seed": k.seed, "seconds": sec}
                         for k, sec in runs.cache.seconds.items() if not math.isnan(sec)])


# --------------------------------------------------------------------------- Table 8: multi-label (Charades)
#
# Sec. 5.6: "we train our model on the actions extracted from [the] training videos ... sample 10
# clips of 256 frames with equal temporal spacing from the video and evaluate each clip separately
# in the same way as mentioned in Section 5.2. The predicted logits before softmax ... video-level
# prediction scores are obtained by aggregating clip-level prediction scores with max pooling",
# RGB only. Here:
#   - a snippet is cached every `ml_step` frames of every video (RGB, the R-LSTM's position and the
#     pooled top, as the UCF experiments read them);
#   - a training item is one annotated action: its interval's snippets, cut into T segments; its
#     target is multi-hot, the classes of every action of the video whose interval overlaps it
#     (those classes are visible in the frames it draws from; the action's own class alone would
#     call a visible class absent); BCE with logits;
#   - a test video is `clips` equally spaced clips of `clip_frames` frames; each clip is scored as
#     Sec. 5.2 (T segments, `groups` x test crops, their logits averaged), the clips' logits are
#     max-pooled per class, and mAP is the official Charades definition (`metrics`).

TABLE8_MODELS = {"tsn": "TSN", "both": "Two-branch"}  # our models under the paper's row names


def action_frames(start: float, end: float, *, fps: float, num_frames: int) -> tuple[int, int] | None:
    """An annotated action (seconds) as the frames [first, stop) it covers in a video of
    `num_frames` frames, clipped to the video; None when it covers none (its end before its
    start, or its start at or after the video's last frame). A zero-length action covers one frame."""
    if end < start:
        return None
    first = max(0, math.floor(start * fps))
    if first >= num_frames:
        return None
    return first, max(first + 1, min(num_frames, math.ceil(end * fps)))


def snippet_window(frames: Tensor, first: int, stop: int) -> tuple[int, int]:
    """The snippets (rows [lo, hi) of a video whose snippet frames `frames` increase) taken in
    frames [first, stop); when none is, the snippet nearest the span's middle."""
    lo = int(torch.searchsorted(frames, first))
    hi = int(torch.searchsorted(frames, stop))
    if hi > lo:
        return lo, hi
    j = int((frames.double() - (first + stop - 1) / 2).abs().argmin())
    return j, j + 1


def clip_starts(num_frames: int, *, clips: int, length: int) -> list[int]:
    """The first frames of `clips` clips of `length` frames with equal temporal spacing: the
    first at the video's start, the last ending at its end (integer arithmetic). A video not
    longer than a clip gives `clips` copies of the whole video (the max over them is its score)."""
    if num_frames <= length:
        return [0] * clips
    if clips == 1:
        return [(num_frames - length) // 2]
    return [k * (num_frames - length) // (clips - 1) for k in range(clips)]


def max_over_clips(clip_logits: Tensor, video: Tensor) -> Tensor:
    """Video scores (V, C): each class's largest logit over the video's clips (rows of
    `clip_logits` (N, C) with `video` (N,) their video, 0..V-1)."""
    return metrics.video_scores(clip_logits, video, reduce="max")[1]


@dataclass
class MultiLabelFeatures:
    """The multi-label videos' RGB snippets, every video's one after another, per subset:
    `maps` (N, [crops,] C, h, w) at the R-LSTM's position (channels PCA-reduced in ci), `pooled`
    (N, [crops,] D) the top's pooled features (`SnippetRows`, each video read when drawn, or
    tensors); video v's snippets are rows `offsets[v]` to
    `offsets[v + 1]`, taken at frames `frames` (N,). Per video: `num_frames`, `fps`,
    `records` (the annotated actions, as read) and `targets` (V, C) multi-hot."""

    maps: dict[str, Tensor | SnippetRows]
    pooled: dict[str, Tensor | SnippetRows]
    offsets: dict[str, Tensor]
    frames: dict[str, Tensor]
    num_frames: dict[str, list[int]]
    fps: dict[str, list[float]]
    records: dict[str, list[Any]]
    targets: dict[str, Tensor]
    classes: list[str]
    video_ids: list[str]        # the test videos, in score order
    keys: dict[str, str]
    shapes: pd.DataFrame


def multilabel_features(cfg: Config, *, progress: bool | None = None) -> MultiLabelFeatures:
    """Table 8's features: a snippet every `ml_step` frames of every multi-label video (RGB;
    `sampling="frames"`), at the R-LSTM's position and at the top (pooled), through the feature
    cache; maps prepared as `features` prepares them (ci: pooled to the grid, PCA, unit RMS), the
    pooled top standardised with training statistics. Actions with odd times are kept
    (`odd_actions` says how and counts them). conv5_1 is extracted and the higher positions
    computed from it (`position_maps`); as in `features`, a video's maps are read from the cache
    when one of its items is drawn (`SnippetRows` over `Videos`), never a split at once."""
    from actionbook.data.datasets import read_records, resolve_dataset
    from actionbook.data.video import probe

    c = multilabel_config(cfg)
    progress = c.progress if progress is None else progress
    every = position_maps(c, "rgb", progress=progress, sampling="frames", params={"step": c.ml_step}, lazy=True)
    sets = {p: every[p] for p in dict.fromkeys((c.position, POSITIONS[-1]))}
    first = sets[c.position]
    ds = resolve_dataset(c.dataset, layout=c.layout)
    out: dict[str, dict[str, Any]] = {k: {} for k in ("offsets", "frames", "num_frames", "fps", "records", "targets")}
    for sub, fs in first.items():  # every video's file is read once here, for its frames (one at a time)
        recs, _ = read_records(ds, split=c.split, subset=sub, keep_odd_times=True)
        by_id = {r.video_id: r for r in recs}
        info = [probe(by_id[v].path) for v in fs.video_ids]
        frames = [torch.as_tensor(f).long() for f in fs.frames]
        out["offsets"][sub] = torch.tensor([0] + [len(f) for f in frames]).cumsum(0)
        out["frames"][sub] = torch.cat(frames)
        out["num_frames"][sub] = [i.num_frames for i in info]
        out["fps"][sub] = [i.fps for i in info]
        out["records"][sub] = [by_id[v] for v in fs.video_ids]
        out["targets"][sub] = torch.stack(fs.targets()).float()
    keys, rows = {}, []
    for p, by_sub in sets.items():
        for sub, fs in by_sub.items():
            if fs.video_ids != first[sub].video_ids:
                raise ValueError(f"feature entries {fs.key} and {first[sub].key} hold different {sub} videos; clean "
                                 "them (`python -m actionbook cache clean KEY`) and extract again")
            keys[f"rgb/{p}/{sub}"] = _position_key(fs)
            rows.append({"position": p, "layer": c.layer(p), "subset": sub, "videos": len(fs),
                         "snippets": int(out["offsets"][sub][-1]),
                         "snippet": "x".join(map(str, fs.features[0].shape[1:])),
                         "conv5_1 stored as": fs.spec.get("storage", "float32"),
                         "cache key": fs.key})
    # as `features`: each video read when drawn, the transforms fitted on a sample of training videos
    sample = fit_sample(len(first["train"]), c.fit_videos)
    t = fit_map_transform(c, first["train"], sample)
    maps = {sub: SnippetRows(Videos(fs.features, t, keep=c.keep_maps), out["offsets"][sub])
            for sub, fs in first.items()}                                          # rows (N, [crops,] C, h, w)
    top = {sub: Videos(fs.features, _spatial_mean) for sub, fs in sets[POSITIONS[-1]].items()}
    st = fit_standardise(c, sets[POSITIONS[-1]]["train"], sample)
    pooled = {sub: SnippetRows(Videos(v, st, keep=c.keep_maps), out["offsets"][sub]) for sub, v in top.items()}
    return MultiLabelFeatures(maps, pooled, **out, classes=first["test"].classes, video_ids=first["test"].video_ids,
                              keys=keys, shapes=pd.DataFrame(rows))


def _video_frames(feats: MultiLabelFeatures, subset: str, v: int) -> tuple[int, Tensor]:
    lo = int(feats.offsets[subset][v])
    return lo, feats.frames[subset][lo:int(feats.offsets[subset][v + 1])]


def action_items(feats: MultiLabelFeatures, *, subset: str = "train") -> tuple[Tensor, Tensor, Tensor]:
    """Table 8's training items, one per annotated action that covers a frame of its video:
    (windows (W, 2) snippet rows [lo, hi), targets (W, C) multi-hot, video (W,)). An item's target
    holds the classes of every action of its video whose frames overlap its own."""
    windows, targets, video = [], [], []
    C = len(feats.classes)
    for v, rec in enumerate(feats.records[subset]):
        lo, frames = _video_frames(feats, subset, v)
        spans = [(cls, action_frames(s, e, fps=feats.fps[subset][v], num_frames=feats.num_frames[subset][v]))
                 for cls, s, e in rec.segments]
        spans = [(cls, f) for cls, f in spans if f is not None]
        for _, (a, b) in spans:
            y = torch.zeros(C)
            y[[cls for cls, (a2, b2) in spans if a2 < b and a < b2]] = 1.0
            w0, w1 = snippet_window(frames, a, b)
            windows.append((lo + w0, lo + w1))
            targets.append(y)
            video.append(v)
    if not windows:
        raise ValueError(f"no {subset} video has an annotated action inside it: nothing to train on")
    return torch.tensor(windows), torch.stack(targets), torch.tensor(video)


def clip_items(feats: MultiLabelFeatures, cfg: Config, *, subset: str = "test") -> tuple[Tensor, Tensor, Tensor]:
    """Table 8's test clips: `clips` per video (`clip_starts`, `clip_frames` frames each), as
    (windows (K, 2), targets (K, C) the video's labels, video (K,)), video-major. Clips that
    take the same snippets (a video not much longer than a clip) are scored once: the max over
    copies of a clip is that clip's score, so K <= V clips and the video scores are the same."""
    windows, video = [], []
    for v in range(len(feats.records[subset])):
        lo, frames = _video_frames(feats, subset, v)
        starts = clip_starts(feats.num_frames[subset][v], clips=cfg.clips, length=cfg.clip_frames)
        for w0, w1 in dict.fromkeys(snippet_window(frames, a, a + cfg.clip_frames) for a in starts):
            windows.append((lo + w0, lo + w1))
            video.append(v)
    video_t = torch.tensor(video)
    return torch.tensor(windows), feats.targets[subset][video_t], video_t


def odd_actions(feats: MultiLabelFeatures) -> pd.DataFrame:
    """The policy for actions with odd times, counted per subset: every action is kept as a
    label of its video (the official test labels are scored as written); one that ends after
    the video's `length` (the CSV's) or after its last decoded frame is clipped to the video for
    its training item; one that ends before it starts, or starts at or after the video's end,
    gives no training item. Columns: subset, actions, end after the length (kept), clipped to the
    video, reversed (label only), starting after the video (label only), training items."""
    rows = []
    for sub, recs in feats.records.items():
        n = {"actions": 0, "end after the length (kept)": 0, "clipped to the video": 0, "reversed (label only)": 0,
             "starting after the video (label only)": 0, "training items": 0}
        for v, rec in enumerate(recs):
            fps, nf = feats.fps[sub][v], feats.num_frames[sub][v]
            for _, s, e in rec.segments:
                n["actions"] += 1
                n["end after the length (kept)"] += int(rec.duration is not None and e > rec.duration)
                span = action_frames(s, e, fps=fps, num_frames=nf)
                if e < s:
                    n["reversed (label only)"] += 1
                elif span is None:
                    n["starting after the video (label only)"] += 1
                else:
                    n["training items"] += 1
                    n["clipped to the video"] += int(math.ceil(e * fps) > nf)
        rows.append({"subset": sub, **n})
    return pd.DataFrame(rows)


class MultiLabelRuns:
    """Table 8's models (TSN and the two-branch network, RGB), trained on the action items with
    BCE and tested on the clips, each `RunKey` once through `chapter.RunCache` (the same cache as
    `Runs`; multi-label runs differ in their training config and features)."""

    def __init__(self, feats: MultiLabelFeatures, cfg: Config, *, progress: bool | None = None,
                 cache: bool = True) -> None:
        self.feats, self.cfg = feats, multilabel_config(cfg)
        self.classes, self.video_ids = feats.classes, feats.video_ids
        show = self.cfg.progress if progress is None else progress
        self.cache = chapter.RunCache(CHAPTER, version=RUNS_VERSION, threads=self.cfg.threads, workers=self.cfg.workers, progress=show,
                                      eval_batch_size=self.cfg.eval_batch_size, device=self.cfg.device, cache=cache)
        self.train_items = action_items(feats)
        self.test_items = clip_items(feats, self.cfg)

    def targets(self) -> Tensor:
        """(V, C) the test videos' multi-hot labels."""
        return self.feats.targets["test"]

    def key(self, model: str, *, seed: int) -> RunKey:
        return RunKey(model, "rgb", self.cfg.T, self.cfg.position, seed)

    def datasets(self, key: RunKey) -> tuple[Snippets, Snippets]:
        f = self.feats
        return tuple(Snippets(f.maps[sub], f.pooled[sub], items[1], T=key.T, train=sub == "train",
                              groups=self.cfg.groups, windows=items[0])
                     for sub, items in (("train", self.train_items), ("test", self.test_items)))

    def get(self, key: RunKey) -> engine.EvalResult:
        """The test result of run `key`, one row per test clip (its views' logits averaged)."""
        c, f = self.cfg, self.feats
        one = torch.zeros(1, dtype=torch.long)  # the first snippet: its shape (maps may be read per video)
        return self.cache.get(key, model=lambda: _model(key, c, channels=f.maps["train"][one].shape[-3],
                                                        dim=f.pooled["train"][one].shape[-1], num_classes=len(f.classes)),
                              data=lambda: self.datasets(key),
                              train=replace(c.train_config("rgb", key.seed), multilabel=True), seed=key.seed,
                              identity={"features": f.keys, "reduce": c.reduce, "grid": c.grid, "ml_step": c.ml_step,
                                        "clips": c.clips, "clip_frames": c.clip_frames, "groups": c.groups,
                                        "dropout": c.dropout, "bn_momentum": c.bn_momentum,
                                        "items": "actions, overlapping classes"})

    def clip_logits(self, model: str, *, seed: int) -> Tensor:
        """(V clips, C) each test clip's logits (the mean over its views), video-major."""
        return self.get(self.key(model, seed=seed)).video_logits

    def video_logits(self, model: str, *, seed: int, reduce: str = "max") -> Tensor:
        """(V, C) each test video's scores: its clips' logits max-pooled (the paper's), or "mean"."""
        clips = self.clip_logits(model, seed=seed)
        if reduce == "max":
            return max_over_clips(clips, self.test_items[2])
        return metrics.video_scores(clips, self.test_items[2], reduce=reduce)[1]


def run_table8(runs: MultiLabelRuns, *, seeds: int | Sequence[int] = 5) -> pd.DataFrame:
    """Table 8, ours: TSN and the two-branch model (RGB), video-level mAP (%) of the clips'
    logits max-pooled (the paper's), and for comparison averaged. Columns: method, seed, mAP,
    mAP_mean_clips, clip_mAP (single clips against their video's labels)."""
    y = runs.targets()
    runs.cache.train_all(runs.get, [runs.key(m, seed=s) for s in seed_list(seeds) for m in TABLE8_MODELS])
    rows = []
    for s in seed_list(seeds):
        for m, name in TABLE8_MODELS.items():
            clip = runs.clip_logits(m, seed=s)
            rows.append({"method": name, "seed": s,
                         "mAP": 100 * metrics.mean_average_precision(runs.video_logits(m, seed=s), y),
                         "mAP_mean_clips": 100 * metrics.mean_average_precision(
                             runs.video_logits(m, seed=s, reduce="mean"), y),
                         "clip_mAP": 100 * metrics.mean_average_precision(clip, runs.test_items[1])})
    return pd.DataFrame(rows)


def table8_vs_paper(t8: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Table 8 as the paper prints it (mAP, %, one decimal) with our TSN and two-branch rows
    beside the paper's; the other authors' rows are quoted from the paper, not run here."""
    c = multilabel_config(cfg)
    paper = results.paper_table(CHAPTER, "table8")
    ours = f"ours: {c.dataset_label} ({c.mode})"
    t = results.paper_vs_ours(t8, paper, on=["method"], value="mAP", paper_label="paper: Charades (mAP %)",
                              ours_label=ours)
    t.insert(1, "modality", t["method"].map(dict(zip(paper["method"], paper["modality"]))).fillna("RGB"))
    t["row"] = ["run here (paper: " + ("the authors' re-implementation" if m == "TSN" else "the authors' model") + ")"
                if m in TABLE8_MODELS.values() else "quoted from the paper (other authors)" for m in t["method"]]
    return t


def claims_table8(cfg: Config) -> list[Claim]:
    """L8, the paper's Charades claim, as a contrast of mAP (points): the two-branch model beats TSN."""
    from actionbook.audit import Claim

    p = results.paper_table(CHAPTER, "table8").set_index("method")["paper"]
    return [Claim("L8", "the two-branch model beats TSN on Charades mAP (RGB)", "Two-branch", "TSN",
                  paper_effect=paper_diff(p["Two-branch"], p["TSN"]), paper_source="Table 8 (mAP points)")]


def run_claims_table8(runs: MultiLabelRuns, *, seeds: int | Sequence[int] = 5, n_boot: int = 2000) -> pd.DataFrame:
    """Audit L8 (`audit.audit_metric`: mAP is not a mean over videos, so the videos and seeds are
    resampled and mAP recomputed) and save it as claims_table8.csv in the shared claims schema."""
    from actionbook.audit import audit_metric

    y = runs.targets()
    scores = {name: {s: runs.video_logits(m, seed=s) for s in seed_list(seeds)} for m, name in TABLE8_MODELS.items()}
    table = audit_metric(claims_table8(runs.cfg), scores, y.numpy(), n_boot=n_boot,
                         metric=lambda x, t: 100 * metrics.mean_average_precision(torch.as_tensor(x), torch.as_tensor(t)))
    results.save(table, mode=runs.cfg.mode, chapter=CHAPTER, experiment="claims_table8", seed=seed_list(seeds),
                 config=runs.cfg)
    return table


def table8_categories(runs: MultiLabelRuns, *, seeds: int | Sequence[int] = 5, random_draws: int = 200) -> pd.DataFrame:
    """Per coarse category (where the dataset has them; else all classes): the mean AP (%) of
    its classes with a positive test video, for TSN and the two-branch model (max-pooled clips,
    mean over seeds) and for random scores (mean over `random_draws` draws, the floor).
    Columns: category, classes, TSN, Two-branch, random."""
    y = runs.targets()
    cats = chapter.categories(runs.cfg, runs.classes) or ["all classes"] * len(runs.classes)
    ap = {name: torch.stack([metrics.per_class_average_precision(runs.video_logits(m, seed=s), y)
                             for s in seed_list(seeds)]).mean(0) for m, name in TABLE8_MODELS.items()}
    g = torch.Generator().manual_seed(0)
    ap["random"] = torch.stack([metrics.per_class_average_precision(torch.rand(y.shape, generator=g), y)
                                for _ in range(random_draws)]).mean(0)
    d = pd.DataFrame({"category": cats, **{k: 100 * v.numpy() for k, v in ap.items()}}).dropna()
    out = d.groupby("category", sort=False).mean()
    out.insert(0, "classes", d.groupby("category", sort=False).size())
    return out.reset_index()
