"""ci pretraining: the toy-size analogue of ImageNet pretraining.

Every paper starts from a backbone pretrained on a large image (or video) dataset and keeps
it frozen (or fine-tunes its top). ci mode has no ImageNet and no internet, and a *random*
frozen network would make every comparison in the book meaningless. So ci pretrains its
own backbone, briefly and supervised, on still images drawn by the benchmark's generator
(`actionbook.data.generate.static_images`: one to three objects on a background of a style
of its own, labelled by object: the main object's kind, as ImageNet's single label, and
every kind that shows, as a multi-label dataset's):

- the 2D backbone (ResNet-18 at 64x64, standing in for ResNet-34/50/101) is trained for a
  few epochs on a few thousand images, with cross-entropy on the main kind plus binary
  cross-entropy on the kinds present; its main-kind accuracy on held-out images is recorded;
- the 3D backbones (standing in for C3D / R(2+1)D Kinetics features) follow I3D's recipe:
  the same ResNet-18 inflated to 3D (`ci_nets.inflate_resnet`), then trained on video with
  classes of its own (`pretrain_clips`, below: generated clips of motion primitives, in pairs
  that are each other's reverse in time), one network per modality (RGB, and optical flow
  through TSN's cross-modality stem). The inflated network's accuracy on held-out static
  images shown as still clips is recorded by the 2D pretraining (with edge-replicating
  temporal padding it equals the 2D network's, up to rounding: a check of the inflation).

The weights are cached under `cache_dir()/"pretrain"/<key>.pt`, keyed by everything that
determines them (this config, the generator's version, this module's `VERSION` or
`CLIP_VERSION`, the inflation's version, and for a clip network the 2D weights' key), written
atomically and reused; `report()` and `clip_report(modality)` return what was recorded.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from actionbook import stages
from actionbook.io import atomic_write, build_lock, read_json, write_json
from actionbook.paths import cache_dir, lock_path
from actionbook.seed import rng_state, seed_everything, set_rng_state

INFLATION_VERSION = 1
"""Part of the cache key of everything the inflated network computes (features, the
pretraining report's 3D accuracy): bump it when `ci_nets.inflate_resnet` or
`ci_nets.inflated_r3d_18` change. Kept with the keys, not in `ci_nets`, so that computing a
key imports no torchvision (a page that only reads cached features never builds a network)."""

VERSION = 4  # bump when the training recipe changes: every cached weight is then retrained
# (4: 8 epochs, held-out accuracy after every epoch in the report; 3: a style per image, several
# objects, presence labels; 2: one object on 64 shared styles)


@dataclass(frozen=True)
class PretrainConfig:
    """The ci pretraining recipe (small on purpose: a few minutes on 2 cores).

    `epochs` was chosen on the held-out stills alone (they share no style with the benchmark):
    with 4 epochs the network still underfits (held-out 48%, train 53% in the run that showed
    it) and its held-out accuracy climbs steeply until ~8 (81%) at torchvision's width. At the ci
    width of 32 it still climbs there (78% after 8 epochs, 86% after 12 in the runs of
    2026-12-06), so it trains 12, with the validation groups' probes no worse in any category
    (`benchmarks/decisions/0029`); the report's `curve` records the held-out accuracy after every
    epoch of the run, so the book shows where it stands."""

    n_train: int = 8000
    n_test: int = 600
    size: int = 64           # image side, pixels (the ci benchmark's frame size)
    crop: int = 56           # network input: random crops in training, the centre in testing (as in extraction)
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3         # Adam, cosine decay to 0
    weight_decay: float = 1e-4
    seed: int = 0
    clip_frames: int = 4     # length of the still clips the inflated 3D network is scored on
    n_test_3d: int = 120     # held-out images it is scored on (a 3D forward costs more)
    layout_weight: float = 0.0  # > 0: a third head says where each kind's object is and how large (loss weight;
    #                             tried and not adopted: `benchmarks/decisions/0009`)
    layout_grid: int = 4        # its occupancy map: layout_grid x layout_grid cells of the crop
    width: int = 32             # stage-1 width of the ci networks (`ci_nets.WIDTHS`; 64 is torchvision's ResNet-18)


ImageSource = Callable[..., "StaticImages"]  # static_images(n=, size=, seed=) -> StaticImages


def _generator_version() -> str:
    from actionbook.data import generate

    return str(getattr(generate, "VERSION", getattr(generate, "__version__", "0")))


def pretrain_key(cfg: PretrainConfig = PretrainConfig()) -> str:
    """A hash of everything that determines the ci weights."""
    blob = json.dumps(dict(cfg=asdict(cfg), generator=_generator_version(), version=VERSION,
                           inflation=INFLATION_VERSION,  # the report's 3D accuracy depends on it
                           torch=torch.__version__.split("+")[0]), sort_keys=True)
    return "ci-resnet18-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _paths(cfg: PretrainConfig, root: Path | None) -> tuple[Path, Path]:
    root = Path(root) if root is not None else cache_dir() / "pretrain"
    key = pretrain_key(cfg)
    return root / f"{key}.pt", root / f"{key}.json"


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W) in [0, 1]


def _augment(x: torch.Tensor, crop: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Random horizontal flip and a random crop x crop window (one per batch): the crops
    (N, 3, crop, crop), which images were flipped (N,) and the window's corner (dy, dx)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    dy, dx = (int(v) for v in torch.randint(0, h - crop + 1, (2,), generator=g))
    return x[:, :, dy:dy + crop, dx:dx + crop], flip, (dy, dx)


def _layout(objects: torch.Tensor, flip: torch.Tensor, corner: tuple[int, int], *, size: int, crop: int,
            grid: int, kinds: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the layout head must say of each crop, from `objects` (N, O, 4) = centre x, y, size in
    pixels of the full image, kind (NaN rows: absent; the main object first): for each kind, where
    its object is and how large (the main object's, where two share its kind), as fractions of the
    crop (N, kinds, 3); which kinds show (N, kinds), the mask of that target; and which of grid x
    grid cells of the crop hold an object's centre (N, grid * grid) in {0, 1}. `flip` and `corner`
    are `_augment`'s."""
    n = len(objects)
    x = torch.where(flip.view(-1, 1), size - 1 - objects[..., 0], objects[..., 0]) - corner[1]  # (N, O)
    y = objects[..., 1] - corner[0]
    box = torch.stack([x, y, objects[..., 2]], -1) / crop                   # (N, O, 3)
    shows = ~torch.isnan(objects[..., 3])                                   # (N, O)
    where, known = torch.zeros(n, kinds, 3), torch.zeros(n, kinds, dtype=torch.bool)
    for j in reversed(range(objects.shape[1])):  # the main object last: it wins where two share a kind
        rows = shows[:, j].nonzero().squeeze(1)
        kind = objects[rows, j, 3].long()
        where[rows, kind], known[rows, kind] = box[rows, j], True
    col, row = (x / crop * grid).floor(), (y / crop * grid).floor()        # (N, O), NaN where absent
    inside = (col >= 0) & (col < grid) & (row >= 0) & (row < grid)        # False for NaN
    cell = torch.where(inside, row * grid + col, torch.zeros_like(col)).long()
    occupied = torch.zeros(n, grid * grid).scatter_add_(1, cell, inside.float()).clamp_(max=1)
    return where, known, occupied


def _loss(out: torch.Tensor, kind: torch.Tensor, presence: torch.Tensor,
          layout: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None, layout_weight: float = 0.0
          ) -> tuple[torch.Tensor, dict]:
    """Cross-entropy on the main object's kind + binary cross-entropy on every kind that shows
    (+ with `layout`, at `layout_weight`: smooth L1 on each shown kind's place and size, and
    binary cross-entropy on the occupancy map, `_layout`)."""
    k = presence.shape[1]
    parts = dict(kind=F.cross_entropy(out[:, :k], kind),
                 presence=F.binary_cross_entropy_with_logits(out[:, k:2 * k], presence))
    total = parts["kind"] + parts["presence"]
    if layout is not None:
        where, known, occupied = layout
        guess = out[:, 2 * k:5 * k].view(-1, k, 3)                          # (N, K, 3)
        parts["where"] = F.smooth_l1_loss(guess[known], where[known], beta=0.1)
        parts["occupancy"] = F.binary_cross_entropy_with_logits(out[:, 5 * k:], occupied)
        total = total + layout_weight * (parts["where"] + parts["occupancy"])
    return total, parts


def _center(x: torch.Tensor, crop: int) -> torch.Tensor:
    top = (x.shape[-1] - crop) // 2
    return x[..., top:top + crop, top:top + crop]


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, k: int, *, clip_frames: int = 0) -> float:
    """Accuracy of the main object's kind (the first `k` outputs)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), 128):
        xb = x[i:i + 128]
        if clip_frames:
            xb = xb.unsqueeze(2).expand(-1, -1, clip_frames, -1, -1)  # (B, 3, T, H, W) still clips
        correct += int((model(xb)[:, :k].argmax(1) == y[i:i + 128]).sum())
    return correct / len(x)


def pretrain(cfg: PretrainConfig = PretrainConfig(), *, images: ImageSource | None = None,
             root: Path | None = None, progress: bool = True) -> dict:
    """Train the ci ResNet-18 (or return the cached one); returns the report dict.

    `images(n=, size=, seed=)` defaults to `actionbook.data.generate.static_images`; tests pass
    a stand-in (the stand-in's output is then cached under the same key: pass a separate `root`).
    """

    weights_file, report_file = _paths(cfg, root)
    if weights_file.is_file() and report_file.is_file():
        return read_json(report_file)
    if images is None:
        from actionbook.data.generate import static_images as images
    with build_lock(lock_path(f"pretrain-{weights_file.stem}"), what=f"the ci pretraining {weights_file}"):
        if weights_file.is_file() and report_file.is_file():  # another process trained it meanwhile
            return read_json(report_file)
        saved = rng_state()  # pretraining may run lazily inside an experiment: leave its random streams alone
        try:
            with torch.enable_grad():  # the caller may hold torch.no_grad() (e.g. a feature extractor)
                return _train(cfg, images, weights_file=weights_file, report_file=report_file, progress=progress)
        finally:
            set_rng_state(saved)


def _train(cfg: PretrainConfig, images: ImageSource, *, weights_file: Path, report_file: Path,
           progress: bool) -> dict:
    from actionbook.features import ci_nets

    start, cpu_start = time.perf_counter(), time.process_time()
    g = seed_everything(cfg.seed, deterministic=False)
    d = images(n=cfg.n_train + cfg.n_test, size=cfg.size, seed=cfg.seed)
    x = _to_tensor(d.images)                         # (N, 3, S, S)
    y = torch.as_tensor(d.labels, dtype=torch.long)  # (N,) main object's kind
    p = torch.as_tensor(d.presence)                  # (N, K) kinds that show
    k = len(d.kinds)
    mean = torch.tensor(ci_nets.CI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(ci_nets.CI_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    x_train, y_train, p_train = x[:cfg.n_train], y[:cfg.n_train], p[:cfg.n_train]
    x_test, y_test = _center(x[cfg.n_train:], cfg.crop), y[cfg.n_train:]
    layout = cfg.layout_weight > 0
    if layout and d.objects is None:
        raise ValueError("layout_weight > 0 needs images with `objects` (where each object is)")
    objects = torch.as_tensor(d.objects) if layout else None  # (N, O, 4)
    n_layout = 3 * k + cfg.layout_grid ** 2 if layout else 0
    where = dict(size=cfg.size, crop=cfg.crop, grid=cfg.layout_grid, kinds=k)
    test_corner = ((cfg.size - cfg.crop) // 2,) * 2  # `_center`'s window
    test_layout = (_layout(objects[cfg.n_train:], torch.zeros(cfg.n_test, dtype=torch.bool), test_corner, **where)
                   if layout else None)

    model = ci_nets.ci_resnet18(num_classes=2 * k + n_layout, width=cfg.width).to(memory_format=torch.channels_last)  # kind | presence | layout
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((cfg.n_train + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    bar = tqdm(total=steps, desc="ci pretraining (ResNet-18)", unit="step", disable=not progress)
    curve = []  # held-out main-kind accuracy after each epoch: is the network still learning?
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(cfg.n_train, generator=g)
        for i in range(0, cfg.n_train, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            xb, flip, corner = _augment(x_train[idx], cfg.crop, g)
            xb = xb.contiguous(memory_format=torch.channels_last)  # (B, 3, crop, crop)
            lay = _layout(objects[idx], flip, corner, **where) if layout else None
            loss, parts = _loss(model(xb), y_train[idx], p_train[idx], lay, cfg.layout_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix({n: f"{v.item():.3f}" for n, v in parts.items()})
        curve.append(dict(epoch=epoch + 1, test_accuracy=_accuracy(model, x_test, y_test, k)))
    bar.close()
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(xb) for xb in x_test.split(128)])  # (n_test, 2K [+ layout])
        _, test_parts = _loss(out, y_test, p[cfg.n_train:], test_layout, cfg.layout_weight)
    model = model.to(memory_format=torch.contiguous_format)
    state = {name: v.detach().clone().contiguous() for name, v in model.state_dict().items()}
    train_seconds = time.perf_counter() - start

    net3d = ci_nets.inflated_r3d_18(num_classes=2 * k + n_layout, width=cfg.width)
    net3d.load_state_dict(ci_nets.inflate_resnet(state))
    report = dict(
        key=pretrain_key(cfg), config=asdict(cfg), classes=list(d.kinds),
        train_accuracy=_accuracy(model, _center(x_train[:cfg.n_test], cfg.crop), y_train[:cfg.n_test], k),
        test_accuracy=_accuracy(model, x_test, y_test, k),  # the final network, measured again
        curve=curve,
        test_losses={n: float(v) for n, v in test_parts.items()},
        inflated_3d_test_accuracy=_accuracy(net3d, x_test[:cfg.n_test_3d], y_test[:cfg.n_test_3d], k,
                                            clip_frames=cfg.clip_frames),
        chance=1 / k, train_seconds=train_seconds,
    )
    return _save(state, report, f"ci ResNet-18 ({report['key']})", weights_file=weights_file,
                 report_file=report_file, start=start, cpu_start=cpu_start)


def _save(state: dict[str, torch.Tensor], report: dict, name: str, *, weights_file: Path, report_file: Path,
          start: float, cpu_start: float) -> dict:
    """Write the weights, then the report with its time (its presence marks a complete entry),
    atomically, and log the stage; returns the report."""
    report.update(seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start,
                  threads=torch.get_num_threads())
    with atomic_write(weights_file, "wb") as f:
        torch.save(state, f)
    write_json(report_file, report)
    stages.record("pretrain", name, seconds=report["seconds"], cpu_seconds=report["cpu_seconds"])
    return report


def ci_state_dict(cfg: PretrainConfig = PretrainConfig(), *, root: Path | None = None,
                  progress: bool = True) -> dict[str, torch.Tensor]:
    """The ci ResNet-18's state_dict (pretraining it first if it is not cached)."""
    pretrain(cfg, root=root, progress=progress)
    weights_file, _ = _paths(cfg, root)
    return torch.load(weights_file, map_location="cpu", weights_only=True)


def report(cfg: PretrainConfig = PretrainConfig(), *, root: Path | None = None) -> dict:
    """What the pretraining recorded: accuracies (train, held-out, inflated 3D), the held-out
    accuracy after every epoch (`curve`), chance, seconds."""
    return pretrain(cfg, root=root)


# --------------------------------------------------------------------------- video pretraining

CLIP_VERSION = 1  # bump when the clip recipe changes: every cached clip network is then retrained


@dataclass(frozen=True)
class ClipPretrainConfig:
    """The ci video pretraining recipe: the stand-in for Kinetics pretraining of the 3D CNNs.

    I3D's recipe at toy size: the ci ResNet-18 is inflated to 3D (`ci_nets.inflate_resnet`),
    then trained on generated clips of motion primitives with labels of their own
    (`actionbook.data.generate.motion_clips`, never a benchmark video). Only the network from
    stage `train_from` up (and a new head) is trained, on the frozen lower stages' outputs
    computed once: a whole 3D ResNet trained on clips would cost minutes per epoch on 2 cores.
    The flow network is the same 3D ResNet with TSN's cross-modality stem (2 channels), trained
    the same way on the clips' optical flow (`flow_method`, as the ci benchmark's); its frozen
    stages keep their weights but re-estimate their BatchNorm statistics on flow
    (`restat_clips`): with the RGB statistics they pass on little of it (held-out 26% against
    70% with the same recipe otherwise, `benchmarks/decisions/0004`).

    Kinetics' classes name objects and scenes as much as motions; these clips' classes name only
    motions, and a network trained on them alone learns to drop what the object is. With
    `kind_weight` > 0 a second head (the head's last `len(KINDS)` outputs) also names the moving
    object's kind, at that weight in the loss."""

    n_train: int = 1000
    n_test: int = 200
    frames: int = 16         # the Res-LSTM clip length (C3D's)
    size: int = 64
    crop: int = 56
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3         # Adam, cosine decay to 0
    weight_decay: float = 1e-4
    seed: int = 0
    flow_method: str = "dis"
    train_from: str = "layer3"  # this stage and those above it are trained; those below stay as inflated
    restat_clips: int = 0       # > 0: the frozen stages' BatchNorm statistics are re-estimated on this many training clips
    kind_weight: float = 0.0    # > 0: a second head names the moving object's kind (loss weight), so features keep appearance


CLIP_CONFIGS: dict[str, ClipPretrainConfig] = {
    "rgb": ClipPretrainConfig(epochs=8, kind_weight=0.5),
    "flow": ClipPretrainConfig(train_from="layer2", restat_clips=256),
}
"""The book's recipe per stream, chosen on the held-out clips alone (`benchmarks/pretrain_recipe.py
--clips`, runs in `benchmarks/decisions/` 0004, 0007, 0014): RGB trains from layer3 for 8 epochs, with a second head
naming the moving object's kind at loss weight 0.5 (trained on motion alone, the clip features
dropped appearance). At width 64 the recipe was 4 epochs at weight 0.25 (at 0.5 the motion head
lost 10 points); at the ci width of 32 that recipe fell 4 points on motion and 10 on the kind,
and 8 epochs at 0.5 brought both back (from layer2 instead, the kind head collapses). Flow trains
from layer2, on statistics re-estimated for flow (from layer3: -8.5 points)."""

_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def _frozen_stages(cfg: "ClipPretrainConfig") -> tuple[str, ...]:
    if cfg.train_from not in _STAGES:
        raise ValueError(f"train_from must be one of {_STAGES}, got {cfg.train_from!r}")
    return _STAGES[:_STAGES.index(cfg.train_from)]


def clip_pretrain_key(modality: str, cfg: ClipPretrainConfig | None = None) -> str:
    """A hash of everything that determines the ci clip network of `modality`."""
    default = clip_config(modality)  # also checks the modality
    cfg = default if cfg is None else cfg
    blob = json.dumps(dict(cfg=asdict(cfg), modality=modality, base=pretrain_key(), version=CLIP_VERSION,
                           generator=_generator_version(), inflation=INFLATION_VERSION,
                           torch=torch.__version__.split("+")[0]), sort_keys=True)
    return f"ci-r3d18-{modality}-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def clip_config(modality: str) -> ClipPretrainConfig:
    """The book's recipe for the ci clip network of `modality` (`CLIP_CONFIGS`)."""
    if modality not in CLIP_CONFIGS:
        raise ValueError(f"modality must be one of {sorted(CLIP_CONFIGS)}, got {modality!r}")
    return CLIP_CONFIGS[modality]


def _clip_paths(modality: str, cfg: ClipPretrainConfig, root: Path | None) -> tuple[Path, Path]:
    root = Path(root) if root is not None else cache_dir() / "pretrain"
    key = clip_pretrain_key(modality, cfg)
    return root / f"{key}.pt", root / f"{key}.json"


def clip_network(modality: str, *, num_classes: int = 1, width: int = 64) -> torch.nn.Module:
    """The ci 3D ResNet-18 for `modality`: `ci_nets.inflated_r3d_18` of `width`, with TSN's
    cross-modality stem (2 input channels, x and y) for flow. Its weights: `ci_clip_state_dict`
    (`ci_nets.width_of` reads their width)."""
    from actionbook.features import ci_nets

    net = ci_nets.inflated_r3d_18(num_classes=num_classes, width=width)
    if modality == "flow":
        net.stem[0] = ci_nets.cross_modality(net.stem[0], 2)
    return net


def _clip_inputs(clips: np.ndarray, modality: str, cfg: ClipPretrainConfig) -> torch.Tensor:
    """(N, C, T, S, S) float inputs in [0, 1] from (N, T + 1, S, S, 3) frames: the first T frames
    (rgb), or the T flow fields between consecutive frames, 8-bit as the benchmark's (flow)."""
    if modality == "rgb":
        x = torch.from_numpy(np.ascontiguousarray(clips[:, :cfg.frames]))          # (N, T, S, S, 3)
    else:
        from actionbook.data.flow import compute_flow

        x = torch.from_numpy(np.stack([compute_flow(c, method=cfg.flow_method) for c in clips]))  # (N, T, S, S, 2)
    return x.permute(0, 4, 1, 2, 3).float().div_(255)                               # (N, C, T, S, S)


def _batches(x: torch.Tensor, crops: torch.Tensor, crop: int, mean: torch.Tensor, std: torch.Tensor):
    """Batches of 32 clips, clip i cropped at `crops[i]` = (dy, dx) and normalised: (B, C, T, crop, crop)."""
    for i in range(0, len(x), 32):
        xb = torch.stack([c[..., dy:dy + crop, dx:dx + crop] for c, (dy, dx) in zip(x[i:i + 32], crops[i:i + 32].tolist())])
        yield (xb - mean) / std


@torch.no_grad()
def _frozen_outputs(net: torch.nn.Module, frozen: tuple[str, ...], x: torch.Tensor, mean: torch.Tensor,
                    std: torch.Tensor, crops: torch.Tensor, crop: int) -> torch.Tensor:
    """The frozen stages' output for every clip (`_batches`): (N, C', T', h, w) (the normalised
    crops themselves when nothing is frozen)."""
    body = torch.nn.Sequential(*(getattr(net, n) for n in frozen)).eval()
    return torch.cat([body(xb) for xb in _batches(x, crops, crop, mean, std)])  # (N, C', T', h, w)


@torch.no_grad()
def _restat(net: torch.nn.Module, frozen: tuple[str, ...], x: torch.Tensor, mean: torch.Tensor,
            std: torch.Tensor, crops: torch.Tensor, crop: int) -> None:
    """Re-estimate the frozen stages' BatchNorm statistics on clips `x` (their weights stay): the
    statistics of a network trained on RGB stills do not fit optical flow, whose input channels
    mean something else (TSN re-estimates its first BatchNorm for the same reason; AdaBN does it for
    every layer when the input domain changes)."""
    body = torch.nn.Sequential(*(getattr(net, n) for n in frozen))
    norms = [m for m in body.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches
    body.train()
    for xb in _batches(x, crops, crop, mean, std):
        body(xb)
    for bn in norms:
        bn.momentum = 0.1
    body.eval()


def _top(net: torch.nn.Module, trained: tuple[str, ...], h: torch.Tensor) -> torch.Tensor:
    """The trained stages, global pool, head: (B, C', T', h, w) -> (B, classes)."""
    for name in trained:
        h = getattr(net, name)(h)
    return net.fc(net.avgpool(h).flatten(1))


@torch.no_grad()
def _clip_accuracy(net: torch.nn.Module, trained: tuple[str, ...], h: torch.Tensor, y: torch.Tensor,
                   cols: slice = slice(None)) -> float:
    """Accuracy of the head's outputs `cols` (the motion's, or the kind's) against `y`."""
    net.eval()
    pred = torch.cat([_top(net, trained, hb)[:, cols].argmax(1) for hb in h.split(64)])
    return float((pred == y).float().mean())


def pretrain_clips(modality: str, cfg: ClipPretrainConfig | None = None, *,
                   root: Path | None = None, base: dict[str, torch.Tensor] | None = None,
                   progress: bool = True) -> dict:
    """Train the ci clip network of `modality` ("rgb" or "flow"), or return the cached one's report.

    The report holds the held-out accuracy on the clips' own classes after every epoch (`curve`),
    and `reversed_accuracy`: the share of held-out clips that, played backwards, are given their
    class's reverse (`MotionClips.reverse`): 0 for a network blind to the direction of time, which
    gives a clip and its reverse nearly the same output.

    `base`: the 2D ResNet-18 state_dict to inflate, by default the ci pretraining's
    (`ci_state_dict`); tests pass a stand-in (cached under the same key: pass a separate `root`)."""
    cfg = clip_config(modality) if cfg is None else cfg
    weights_file, report_file = _clip_paths(modality, cfg, root)
    if weights_file.is_file() and report_file.is_file():
        return read_json(report_file)
    with build_lock(lock_path(f"pretrain-{weights_file.stem}"), what=f"the ci {modality} clip network {weights_file}"):
        if weights_file.is_file() and report_file.is_file():  # another process trained it meanwhile
            return read_json(report_file)
        saved = rng_state()
        try:
            with torch.enable_grad():
                base = ci_state_dict(progress=progress) if base is None else base  # the 2D pretraining first
                return _train_clips(modality, cfg, base, weights_file=weights_file, report_file=report_file,
                                    progress=progress)
        finally:
            set_rng_state(saved)


def _train_clips(modality: str, cfg: ClipPretrainConfig, base: dict[str, torch.Tensor], *,
                 weights_file: Path, report_file: Path, progress: bool) -> dict:
    from actionbook.data.generate import KINDS, motion_clips
    from actionbook.features import ci_nets

    start, cpu_start = time.perf_counter(), time.process_time()
    g = seed_everything(cfg.seed, deterministic=False)
    d = motion_clips(n=cfg.n_train + cfg.n_test, frames=cfg.frames + 1, size=cfg.size, seed=cfg.seed)
    k = len(d.classes)
    n_kinds = len(KINDS) if cfg.kind_weight > 0 else 0
    net = ci_nets.inflated_r3d_18(num_classes=k + n_kinds, width=ci_nets.width_of(base))  # motion | the moving object's kind
    missing, _ = net.load_state_dict({n: v for n, v in ci_nets.inflate_resnet(base).items()
                                      if not n.startswith("fc.")}, strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"}, missing
    if modality == "flow":
        net.stem[0] = ci_nets.cross_modality(net.stem[0], 2)
    channels = 3 if modality == "rgb" else 2
    mean, std = (v.view(1, -1, 1, 1, 1) for v in ci_nets.norm_stats(list(ci_nets.CI_MEAN), list(ci_nets.CI_STD),
                                                                     modality=modality, channels=channels))
    n, margin = cfg.n_train, cfg.size - cfg.crop
    test_clips = d.clips[n:]
    x = _clip_inputs(d.clips, modality, cfg)                                 # (N, C, T, S, S)
    x_rev = _clip_inputs(np.ascontiguousarray(test_clips[:, ::-1]), modality, cfg)  # the held-out clips played backwards
    crops = torch.randint(0, margin + 1, (n, 2), generator=g)                # one random crop per training clip
    centre = torch.full((cfg.n_test, 2), margin // 2)
    frozen = _frozen_stages(cfg)
    trained = _STAGES[len(frozen):]
    if cfg.restat_clips and frozen:
        _restat(net, frozen, x[:min(cfg.restat_clips, n)], mean, std, crops, cfg.crop)
    h_train = _frozen_outputs(net, frozen, x[:n], mean, std, crops, cfg.crop)
    h_test = _frozen_outputs(net, frozen, x[n:], mean, std, centre, cfg.crop)
    h_rev = _frozen_outputs(net, frozen, x_rev, mean, std, centre, cfg.crop)
    del x, x_rev
    y = torch.as_tensor(d.labels, dtype=torch.long)
    y_train, y_test = y[:n], y[n:]
    kind = torch.as_tensor(d.kinds, dtype=torch.long)
    motion, kinds = slice(0, k), slice(k, k + n_kinds)
    y_rev = torch.as_tensor(d.reverse)[y_test]

    params = [p for name, p in net.named_parameters() if not name.startswith(frozen or ("-",))]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    bar = tqdm(total=steps, desc=f"ci video pretraining (3D ResNet-18, {modality})", unit="step",
               disable=not progress)
    curve = []
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            out = _top(net, trained, h_train[idx])
            loss = F.cross_entropy(out[:, motion], y_train[idx])
            if n_kinds:
                loss = loss + cfg.kind_weight * F.cross_entropy(out[:, kinds], kind[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        curve.append(dict(epoch=epoch + 1, test_accuracy=_clip_accuracy(net, trained, h_test, y_test, motion)))
    bar.close()
    state = {name: v.detach().clone().contiguous() for name, v in net.state_dict().items()}
    report = dict(
        key=clip_pretrain_key(modality, cfg), modality=modality, config=asdict(cfg), classes=list(d.classes),
        trained=[*trained, "fc"], frozen=list(frozen),
        train_accuracy=_clip_accuracy(net, trained, h_train[:cfg.n_test], y_train[:cfg.n_test], motion),
        test_accuracy=_clip_accuracy(net, trained, h_test, y_test, motion),
        reversed_accuracy=_clip_accuracy(net, trained, h_rev, y_rev, motion),
        kind_test_accuracy=_clip_accuracy(net, trained, h_test, kind[n:], kinds) if n_kinds else None,
        curve=curve, chance=1 / k,
    )
    return _save(state, report, f"ci 3D ResNet-18, {modality} ({report['key']})", weights_file=weights_file,
                 report_file=report_file, start=start, cpu_start=cpu_start)


def ci_clip_state_dict(modality: str, cfg: ClipPretrainConfig | None = None, *,
                       root: Path | None = None) -> dict[str, torch.Tensor]:
    """The ci clip network's state_dict for `modality` (`clip_network`), video-pretraining it first
    if it is not cached."""
    cfg = clip_config(modality) if cfg is None else cfg
    pretrain_clips(modality, cfg, root=root)
    weights_file, _ = _clip_paths(modality, cfg, root)
    return torch.load(weights_file, map_location="cpu", weights_only=True)


def clip_report(modality: str, cfg: ClipPretrainConfig | None = None, *, root: Path | None = None) -> dict:
    """What the video pretraining of `modality` recorded (see `pretrain_clips`)."""
    return pretrain_clips(modality, cfg, root=root)
