"""The benchmark's controls: can the instrument measure what each coarse category asks?

The chapters use the generated benchmark and the frozen ci networks as a measuring
instrument: in ci a paper's claim "holds" when its model beats a simpler one there. Before
that verdict means anything, the instrument is tested itself, on the split's test groups
(unseen in training), within each coarse category (4 classes, chance 25%), over several
seeds:

- a *positive* control has the information the category needs, and should solve it;
- a *negative* control lacks it by design, and should stay at chance.

| category | positive control (has it) | negative control (lacks it) |
| --- | --- | --- |
| appearance | frame averaging of the RGB frame features | the video's mean colour |
| motion | the flow stream (clip flow features, averaged) | RGB frame averaging |
| temporal order | a recurrent model (GRU) over the RGB frame features | RGB frame averaging |
| interaction | a relation network over each frame's map, then a GRU | RGB frame averaging |
| long range | the GRU over the whole video | the same GRU on a window that misses the first 20% |

The interaction category's positive control is a relational model: a relation network (Santoro
et al., 2017; `actionbook.models.relation_network`) relates every pair of cells of a frame's
unpooled map by their contents and places, and a GRU reads the frames. It was chosen on the
validation groups, where it read the category best of every reader tried (`benchmarks/decisions/0023-
interaction-positive-control-relation-network.md`); a GRU over pooled RGB frames (no frame's pooled features
say how far apart two objects are) and one over the flow clips were the stand-ins before. Targets:
every positive control >= 85%, every negative control within two binomial standard errors of
chance on the category's test videos.

Features: the ci frame network's pooled `layer4` on every `frame_step`-th frame (one cache
entry, `sampling="frames"`), its unpooled `layer2` map (7 x 7 cells; the output of layer2's last
block, `layer2.1`) on the same frames, both in one pass, and the Res-LSTM chapter's flow stream
(the same cache entry as that chapter: clip flow features of every 16-frame clip, centre crop,
DIS flow). The heads are trained with `actionbook.engine` on the training videos of the category
and scored on its test videos, each (control, seed) once through the chapters' run cache
(`actionbook.experiments.chapter.RunCache`: checkpointed every epoch, its result kept on disk,
two trained side by side on one thread each). Nothing here reads a chapter's result or a
paper's claim.

    CONTROLS                  the ten controls, as `Control`s
    ControlsConfig            seeds, the frame step, the heads' sizes and schedule
    run_control(ctrl, train, test, cfg=)   one control's test accuracy per seed (in memory unless cache=True)
    run_controls(cfg)         every control on the ci benchmark: the table of the page
    verdicts(df)              each row's target and whether it is met
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import Tensor

from actionbook import engine
from actionbook.categories import class_categories
from actionbook.experiments import chapter
from actionbook.experiments.recurrent_residual import AveragePooling, GRUHead
from actionbook.features.cache import FeatureSet
from actionbook.models.relation_network import FrameRelations

__all__ = ["CHANCE", "POSITIVE_TARGET", "ControlsConfig", "Control", "CONTROLS", "RunKey", "Runs", "run_control", "run_controls", "two_se", "verdicts", "config_dict"]

CHANCE = 0.25  # 4-way within a category
POSITIVE_TARGET = 0.85
CHAPTER = "controls"  # the run cache's folder: cache_dir()/runs/controls/
RUNS_VERSION = "1"    # bump when a change in the heads or their inputs changes the numbers


@dataclass(frozen=True)
class ControlsConfig:
    """How the controls are run. The heads' sizes and schedule were fixed before any control was
    scored (small heads, long enough to fit the training videos), never changed to meet a target."""

    dataset: str = "ci"
    layout: str = "ucf101"
    split: int = 1
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    frame_step: int = 4          # RGB frame features of every 4th frame
    map_layer: str = "layer2_map"  # the relational control's unpooled maps (7 x 7 cells at the 56-pixel crop): the
    #                                stage's output, its last block layer2.1's (a whole stage, so that one pass
    #                                through the network gives it and the pooled layer4: `extract_layers`)
    relation_width: int = 16     # the relation network's g and f (`models.relation_network.FrameRelations`)
    steps: int = 12              # a recurrent control reads this many evenly spaced items of its window
    hidden: int = 64
    epochs: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-3
    num_workers: int = 2         # DataLoader workers that decode videos for feature extraction
    threads: int = 1             # every head trains on this many torch threads, in any process
    workers: int = 2             # heads trained side by side (`RunCache.train_all`): same numbers for any value
    progress: bool = False


@dataclass(frozen=True)
class Control:
    category: str
    model: str         # what a reader sees in the table
    role: str          # "positive" or "negative"
    features: str      # "frames" (RGB frame features), "maps" (their unpooled maps), "flow" (clip flow
    #                    features), "colour" (mean RGB)
    head: str          # "average" (mean over the window, linear), "recurrent" (GRU over the window) or
    #                    "relational" (a relation network on each frame's map, then the GRU)
    start: float = 0.0  # the window: the part of the video from `start` (a fraction) to its end


CONTROLS: tuple[Control, ...] = (
    Control("appearance", "RGB frame averaging", "positive", "frames", "average"),
    Control("appearance", "mean colour of the video", "negative", "colour", "average"),
    Control("motion", "flow stream (clip flow features, averaged)", "positive", "flow", "average"),
    Control("motion", "RGB frame averaging", "negative", "frames", "average"),
    Control("temporal order", "recurrent (GRU) over RGB frames", "positive", "frames", "recurrent"),
    Control("temporal order", "RGB frame averaging", "negative", "frames", "average"),
    Control("interaction", "relation network over RGB frame maps, then a GRU", "positive", "maps", "relational"),
    Control("interaction", "RGB frame averaging", "negative", "frames", "average"),
    Control("long range", "recurrent (GRU) over the whole video", "positive", "frames", "recurrent"),
    # the long-range cue lives in the first 15% of the frames: this window starts after it
    Control("long range", "recurrent (GRU) missing the first 20%", "negative", "frames", "recurrent", 0.20),
)


# --------------------------------------------------------------------------- inputs

def _window(x: Tensor, frames: Tensor, num_frames: int, *, start: float, steps: int | None) -> Tensor:
    """The items of `x` (K, D) whose first frame lies in [start * num_frames, num_frames), resampled to
    `steps` evenly spaced items: (steps, D); all of them when steps is None: (K', D)."""
    first = frames if frames.dim() == 1 else frames[:, 0]
    keep = first.float() >= start * num_frames
    x = x[keep] if keep.any() else x[-1:]
    if steps is None:
        return x
    return x[torch.linspace(0, len(x) - 1, steps).round().long()]  # (steps, D)


def _inputs(ctrl: Control, fs: FeatureSet, *, steps: int) -> list[Tensor]:
    """Per video, the items the control reads: its window, resampled for a recurrent head."""
    out = []
    for x, frames in zip(fs.features, fs.frames):
        n = int(frames.max()) + 1  # the last item's frame bounds the video's length
        out.append(_window(x.float().flatten(1), frames, n, start=ctrl.start,
                           steps=None if ctrl.head == "average" else steps))
    return out


def _even(xs: Sequence[Tensor]) -> Tensor:
    """Videos with different numbers of items as one tensor: each resampled evenly to the longest
    length (the mean of an average head barely changes): (V, K, D)."""
    k = max(len(x) for x in xs)
    return torch.stack([x[torch.linspace(0, len(x) - 1, k).round().long()] for x in xs])


# --------------------------------------------------------------------------- heads
# The heads are the recurrent residual chapter's Table 1 baselines (average pooling + linear, a GRU's
# last state + linear): one implementation of each.

def _category_videos(ctrl: Control, fs: FeatureSet, xs: list[Tensor], categories: Sequence[str]) -> tuple[Tensor, Tensor]:
    """The control's category only, its 4 classes relabelled 0..3 in the class list's order."""
    mine = [i for i, c in enumerate(categories) if c == ctrl.category]
    if len(mine) != 4:
        raise ValueError(f"category {ctrl.category!r} has {len(mine)} classes in {fs.key}, expected 4")
    remap = {c: j for j, c in enumerate(mine)}
    keep = [i for i, y in enumerate(fs.labels) if y in remap]
    if not keep:
        raise ValueError(f"no video of category {ctrl.category!r} in the {fs.spec.get('subset')} set {fs.key}")
    return _even([xs[i] for i in keep]), torch.tensor([remap[fs.labels[i]] for i in keep])


@dataclass(frozen=True)
class RunKey:
    """One trained head: a control and a seed."""
    control: Control
    seed: int


_COST = {"relational": 0, "recurrent": 1, "average": 2}  # train_all's order: the longest runs first


def _head(ctrl: Control, d: int, map_shape: tuple[int, ...], cfg: ControlsConfig) -> torch.nn.Module:
    """The control's untrained head on items of `d` values ((C, h, w) maps flattened, for "relational")."""
    if ctrl.head == "average":
        return AveragePooling(d, 4)
    if ctrl.head == "recurrent":
        return GRUHead(d, cfg.hidden, 4)
    if ctrl.head == "relational":
        return torch.nn.Sequential(FrameRelations(map_shape[0], map_shape[1], width=cfg.relation_width),
                                   GRUHead(cfg.relation_width, cfg.hidden, 4))
    raise ValueError(f"unknown head {ctrl.head!r} of control {ctrl.model!r}: 'average', 'recurrent' or 'relational'")


class Runs:
    """The heads of the controls, each (control, seed) trained once through `chapter.RunCache`.

    `sets`: {features: {"train": FeatureSet, "test": FeatureSet}} as `feature_sets` returns;
    `categories`: the coarse category of each class. `cache=False` keeps results in memory only
    (tests of fabricated features)."""

    def __init__(self, cfg: ControlsConfig, sets: dict[str, dict[str, FeatureSet]], *,
                 categories: Sequence[str] | None = None, cache: bool = True) -> None:
        self.cfg, self.sets = cfg, sets
        if categories is None:
            first = next(iter(sets.values()))["train"]
            categories = list(class_categories(list(first.classes), layout="generated"))
        self.categories = list(categories)
        self.cache = chapter.RunCache(CHAPTER, version=RUNS_VERSION, threads=cfg.threads, workers=cfg.workers,
                                      progress=cfg.progress, device="cpu", cache=cache)
        self._data: dict[Control, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def data(self, ctrl: Control) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The control's (x_train, y_train, x_test, y_test): its category's videos, its window,
        z-normalised with the training videos' statistics. Made once (before `train_all` forks)."""
        if ctrl not in self._data:
            train, test = self.sets[ctrl.features]["train"], self.sets[ctrl.features]["test"]
            if ctrl.head == "relational":
                shape = tuple(train.features[0].shape[1:])
                if len(shape) != 3 or shape[1] != shape[2]:
                    raise ValueError(f"the relational head reads square maps (C, h, w); {train.key} holds items of {shape}")
            x_tr, t_tr = _category_videos(ctrl, train, _inputs(ctrl, train, steps=self.cfg.steps), self.categories)
            x_te, t_te = _category_videos(ctrl, test, _inputs(ctrl, test, steps=self.cfg.steps), self.categories)
            flat = x_tr.flatten(0, 1)
            mu, sd = flat.mean(0), flat.std(0) + 1e-5  # z-normalisation fitted on the training videos only
            self._data[ctrl] = ((x_tr - mu) / sd, t_tr, (x_te - mu) / sd, t_te)
        return self._data[ctrl]

    def get(self, key: RunKey) -> float:
        """Test accuracy (a fraction, 4-way within the category) of one control and seed."""
        ctrl, cfg = key.control, self.cfg
        x_tr, t_tr, x_te, t_te = self.data(ctrl)
        train, test = self.sets[ctrl.features]["train"], self.sets[ctrl.features]["test"]
        map_shape = tuple(train.features[0].shape[1:])
        tc = engine.TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                weight_decay=cfg.weight_decay, seed=key.seed, device="cpu")
        res = self.cache.get(
            key, model=lambda: _head(ctrl, x_tr.shape[-1], map_shape, cfg),
            data=lambda: (engine.TensorVideoDataset(x_tr, t_tr), engine.TensorVideoDataset(x_te, t_te)),
            train=tc, identity={"train": train.identity(), "test": test.identity(),
                                "categories": self.categories, "steps": cfg.steps, "hidden": cfg.hidden,
                                "relation_width": cfg.relation_width},
            seed=key.seed)
        return float(res.video["top1"])

    def accuracies(self, controls: Sequence[Control]) -> dict[Control, list[float]]:
        """Every control's accuracy per seed of `cfg.seeds`; the missing runs are trained first,
        `cfg.workers` at a time, the longest heads first."""
        keys = [RunKey(c, s) for c in controls for s in self.cfg.seeds]
        self.cache.train_all(self.get, sorted(keys, key=lambda k: _COST.get(k.control.head, 0)))
        return {c: [self.get(RunKey(c, s)) for s in self.cfg.seeds] for c in controls}


def run_control(ctrl: Control, train: FeatureSet, test: FeatureSet, *, cfg: ControlsConfig,
                categories: Sequence[str] | None = None, cache: bool = False) -> list[float]:
    """Test accuracy (a fraction, 4-way within the control's category) of one control, per seed.

    `categories`: the coarse category of each class of the feature sets (default: the generated
    benchmark's, `actionbook.categories.class_categories`). `cache=True` keeps the runs in the
    run cache (as `run_controls` does); by default they live in memory only."""
    runs = Runs(cfg, {ctrl.features: {"train": train, "test": test}}, categories=categories, cache=cache)
    return runs.accuracies([ctrl])[ctrl]


# --------------------------------------------------------------------------- the ci benchmark's controls

def _colour(fs: FeatureSet, cfg: ControlsConfig) -> FeatureSet:
    """Each video's mean RGB colour over the frames `fs` holds, as a one-item feature set: (1, 3).

    Decoding every video takes seconds, so the colours are kept beside `fs`'s cache entry
    (`cache.fitted`: computed again when the entry's videos change)."""
    import dataclasses

    from actionbook.data.datasets import read_records, resolve_dataset
    from actionbook.data.video import read_video
    from actionbook.features.cache import fitted

    def colours() -> dict:
        records, _ = read_records(resolve_dataset(cfg.dataset, layout=cfg.layout), split=cfg.split, subset=fs.subset)
        path = {r.video_id: r.path for r in records}
        out = []
        for vid, frames in zip(fs.video_ids, fs.frames):
            x = read_video(path[vid], frames=frames.tolist())                 # (F, H, W, 3) uint8
            out.append(x.float().mean(dim=(0, 1, 2)).div(255).view(1, 3))    # (1, 3)
        return {"video_ids": list(fs.video_ids), "colour": torch.cat(out)}   # colour: (N, 3)

    kept = fitted(fs, {"statistic": "mean colour", "transforms": list(fs.transforms)}, colours)
    if kept["video_ids"] != list(fs.video_ids):
        kept = colours()  # a set whose videos are not its entry's (a subset): computed here
    return dataclasses.replace(fs, features=list(kept["colour"].split(1)), frames=[f[:1] for f in fs.frames],
                               transforms=(*fs.transforms, "mean colour"))


def feature_sets(cfg: ControlsConfig = ControlsConfig(), *, needs: Sequence[str] = ("frames", "maps", "flow", "colour")
                 ) -> dict[str, dict[str, FeatureSet]]:
    """{"frames" | "maps" | "flow" | "colour": {"train": FeatureSet, "test": FeatureSet}} from the feature cache.

    The frame features and the maps are two stages of one network on the same frames: one pass
    (`extract_layers`) decodes each video and runs the network once for both."""
    from actionbook.experiments import res_lstm
    from actionbook.features.extract import extract_layers

    sets: dict[str, dict[str, FeatureSet]] = {}
    layers = {name: layer for name, layer, wanted in (("frames", "layer4", "frames" in needs or "colour" in needs),
                                                       ("maps", cfg.map_layer, "maps" in needs)) if wanted}
    if layers:
        for s in ("train", "test"):
            out = extract_layers(dataset=cfg.dataset, layout=cfg.layout, split=cfg.split, subset=s,
                                 backbone="resnet34", layers=list(layers.values()), sampling="frames",
                                 sampling_params=dict(step=cfg.frame_step), mode="ci",
                                 num_workers=cfg.num_workers, progress=cfg.progress)
            for name, layer in layers.items():
                sets.setdefault(name, {})[s] = out[layer]
    if "flow" in needs:  # the Res-LSTM chapter's flow stream: the same cache entry
        rc = res_lstm.config("ci")
        sets["flow"] = res_lstm.features(rc, progress=cfg.progress).grids["flow"]
    if "colour" in needs:
        sets["colour"] = {s: _colour(fs, cfg) for s, fs in sets["frames"].items()}
    return sets


def run_controls(cfg: ControlsConfig = ControlsConfig(), *, controls: Sequence[Control] = CONTROLS,
                 cache: bool = True) -> pd.DataFrame:
    """Every control, one row each: category, model, role, accuracy_mean, accuracy_sd, chance,
    n_seeds, n_test (accuracies as fractions, over the seeds). Each head is trained once
    (`Runs`); a second call reads the results from the run cache."""
    sets = feature_sets(cfg, needs=sorted({c.features for c in controls}))
    acc = Runs(cfg, sets, cache=cache).accuracies(controls)
    rows = []
    for ctrl in controls:
        test = sets[ctrl.features]["test"]
        accs = torch.tensor(acc[ctrl])
        cats = class_categories(list(test.classes), layout="generated")
        n_test = sum(1 for y in test.labels if cats[y] == ctrl.category)
        rows.append(dict(category=ctrl.category, model=ctrl.model, role=ctrl.role,
                         accuracy_mean=float(accs.mean()), accuracy_sd=float(accs.std()) if len(accs) > 1 else 0.0,
                         chance=CHANCE, n_seeds=len(accs), n_test=n_test))
    return pd.DataFrame(rows)


def two_se(n_test: int, chance: float = CHANCE) -> float:
    """Two binomial standard errors of an accuracy at chance on `n_test` videos."""
    return 2 * math.sqrt(chance * (1 - chance) / n_test)


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    """The table with each control's target and whether it is met: a positive control >= 85%; a
    negative one within two binomial standard errors of chance on its category's test videos."""
    out = df.copy()
    out["target"] = [f">= {POSITIVE_TARGET:.0%}" if r.role == "positive" else
                     f"{r.chance - two_se(r.n_test, r.chance):.0%} .. {r.chance + two_se(r.n_test, r.chance):.0%}"
                     for r in out.itertuples()]
    out["meets target"] = [bool(r.accuracy_mean >= POSITIVE_TARGET) if r.role == "positive"
                           else bool(abs(r.accuracy_mean - r.chance) <= two_se(r.n_test, r.chance))
                           for r in out.itertuples()]
    return out


def config_dict(cfg: ControlsConfig = ControlsConfig(), controls: Sequence[Control] = CONTROLS) -> dict:
    """The config and the controls, for the results' metadata."""
    return dict(asdict(cfg), controls=[asdict(c) for c in controls])
