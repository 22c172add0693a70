"""The training engine: one `fit` and one `evaluate` for every chapter.

The four papers train small heads (LSTMs, SRUs, a Relational LSTM, a temporal-skip ResNet
block) on clips and test them on videos. This module is the loop they share, in the style
of torchvision's `references/video_classification`: `train_one_epoch`, `evaluate`, and
`fit`, which adds checkpoints, resuming and multi-process training. Models and data come
from outside; nothing here knows which paper it is training.

The data interface
------------------
A dataset is any `torch.utils.data.Dataset` whose items are triples

    (x, y, video_index)

- `x`: what the model takes, a tensor (e.g. cached clip features `(T, D)`) or a tuple of
  tensors (then the model is called as `model(*x)`);
- `y`: the class index (an int, or a 0-dim int tensor); with `multilabel=True`, a multi-hot
  float vector `(C,)`;
- `video_index`: an int naming the video the item comes from. Items are trained on one by
  one (clip-level training, MRRN Sec. 4.1; Iqbal Sec. 3.2), and at test time the softmax
  scores of all items with the same `video_index` are averaged into one video score
  (clip, crop, segment-group or sub-sequence averaging: every paper does this).

`TensorVideoDataset` builds such a dataset from tensors in memory (a feature cache).

The model returns logits `(B, C)`; the engine applies the loss (cross-entropy, or binary
cross-entropy with logits when `multilabel`) and the softmax (or sigmoid).

Reproducibility and resuming
----------------------------
`fit` seeds everything from `cfg.seed` (`actionbook.seed.seed_everything`), draws the data
order of epoch e from a generator seeded with `cfg.seed + e` (a `DistributedSampler`, also
with one process), and writes a checkpoint after every epoch (atomically): model, optimizer,
scheduler, the RNG states, the DataLoader generator, the config and the history (the last
epoch's drops the optimizer and scheduler: a finished run is never continued). Killed
and restarted with `resume=True`, it continues from the last checkpoint and ends with the
very same numbers as a run that was never interrupted (bit-identical on the CPU).

Multi-process training
----------------------
Started by `torchrun --nproc_per_node N` (N >= 1: one GPU takes the same path as eight), `fit`
sees `RANK`/`WORLD_SIZE` in the environment, joins the process group (gloo on CPU, nccl on GPU), wraps the model in
`DistributedDataParallel` and shards every epoch with the same seeded sampler, so that
N processes with `batch_size=B/N` each take the very same global batches as one process
with `batch_size=B`. `evaluate` scores every video exactly once (each process scores a
shard, the scores are gathered). Only rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from actionbook import metrics
from actionbook.io import atomic_write
from actionbook.seed import rng_state, seed_everything, set_rng_state

__all__ = ["TrainConfig", "ConfigError", "resolve_device", "EvalResult", "History", "TensorVideoDataset",
           "fit", "evaluate", "train_one_epoch", "make_optimizer", "load_checkpoint", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adam", "rmsprop")
CHECKPOINT = "last.pt"  # file name of the checkpoint inside `ckpt_dir`
# Config fields that may change between a run and its resumption (they change no number,
# except that `num_workers` decides who draws a dataset's own random numbers).
_RESUME_FREE = ("log_every", "num_workers")


class ConfigError(ValueError):
    """A bad training configuration, or a checkpoint that does not match it."""


# --------------------------------------------------------------------------- config

@dataclass
class TrainConfig:
    """How to train. The papers' settings, for reference:

    - Res-LSTM (000): RMSProp, lr 1e-3.
    - MRRN (001): Adam, batch 28, 12 epochs, lr 1e-5 then 1e-6 after epoch 8
      (`milestones=(8,), gamma=0.1`).
    - Relational LSTM (003): SGD momentum 0.9, weight decay 5e-4, batch 24, 50 epochs
      (spatial), lr 5e-4 divided by 10 after epochs 35 and 45.
    - Iqbal et al. (004): Adam.
    """

    epochs: int = 10
    batch_size: int = 32            # per process (with torchrun: the global batch is N times this)
    optimizer: str = "adam"         # one of OPTIMIZERS
    lr: float = 1e-3
    momentum: float = 0.9           # SGD's momentum (adam and rmsprop ignore it)
    weight_decay: float = 0.0       # L2 penalty, in the optimizer (torch's `weight_decay`)
    milestones: tuple[int, ...] = ()  # epochs after which the lr is multiplied by `gamma`
    gamma: float = 0.1
    lr_groups: dict[str, float] = field(default_factory=dict)
    # ^ parameter-name prefix -> its own lr, e.g. {"backbone.": 1e-4}; the longest matching
    #   prefix wins, every other parameter uses `lr`. The schedule scales all of them.
    grad_clip: float | None = None  # max global L2 norm of the gradients; None: no clipping
    seed: int = 0
    device: str = "auto"            # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1"
    amp: bool = False               # bf16 autocast on CUDA; no effect on the CPU
    num_workers: int = 0            # DataLoader worker processes
    label_smoothing: float = 0.0    # cross-entropy label smoothing (single-label only)
    multilabel: bool = False        # BCE-with-logits loss and mAP instead of CE and accuracy
    video_reduce: str = "mean"      # how clip scores make a video score: "mean" or "max"
    eval_every: int = 1             # validate every this many epochs (and after the last)
    drop_last: bool = False         # drop the last, smaller training batch of each epoch
    log_every: int = 10             # update the progress bar's loss every this many steps

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(f"TrainConfig: {msg}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        need(is_int(self.epochs) and self.epochs >= 1, f"epochs must be an int >= 1, got {self.epochs!r}")
        need(is_int(self.batch_size) and self.batch_size >= 1,
             f"batch_size must be an int >= 1, got {self.batch_size!r}")
        need(self.optimizer in OPTIMIZERS,
             f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum!r}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        self.milestones = tuple(self.milestones)
        need(all(is_int(m) and m >= 1 for m in self.milestones)
             and list(self.milestones) == sorted(set(self.milestones)),
             f"milestones must be increasing epoch numbers >= 1, got {self.milestones!r}")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma!r}")
        need(isinstance(self.lr_groups, dict)
             and all(isinstance(k, str) and k and v > 0 for k, v in self.lr_groups.items()),
             f"lr_groups must map parameter-name prefixes to lrs > 0, got {self.lr_groups!r}")
        need(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be None or > 0, got {self.grad_clip!r}")
        need(is_int(self.seed) and self.seed >= 0, f"seed must be an int >= 0, got {self.seed!r}")
        try:
            ok = self.device == "auto" or torch.device(self.device).type in ("cpu", "cuda", "mps")
        except (RuntimeError, TypeError):
            ok = False
        need(ok, f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        need(isinstance(self.amp, bool), f"amp must be True or False, got {self.amp!r}")
        need(is_int(self.num_workers) and self.num_workers >= 0,
             f"num_workers must be an int >= 0, got {self.num_workers!r}")
        need(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        need(not (self.multilabel and self.label_smoothing),
             "label_smoothing applies to the single-label cross-entropy; set it to 0 with multilabel=True")
        need(self.video_reduce in ("mean", "max"), f"video_reduce must be 'mean' or 'max', got {self.video_reduce!r}")
        need(is_int(self.eval_every) and self.eval_every >= 1, f"eval_every must be an int >= 1, got {self.eval_every!r}")
        need(is_int(self.log_every) and self.log_every >= 1, f"log_every must be an int >= 1, got {self.log_every!r}")


# --------------------------------------------------------------------------- data

class TensorVideoDataset(Dataset):
    """Items `(x, y, video_index)` from tensors in memory (e.g. loaded from the feature cache).

    features:        a tensor (N, ...) — item i is `features[i]`; or a tuple of such tensors
                     (several model inputs) — item i is the tuple of their i-th rows.
    labels:          (N,) class indices, or (N, C) multi-hot (then y is float).
    video_index:     (N,) the video of each item; default: each item is its own video.
    clips_per_video: instead of `video_index`: items come in consecutive runs of this many
                     clips per video (item i belongs to video i // clips_per_video).

    `TensorVideoDataset.from_videos` takes one tensor of clips per video instead.
    """

    def __init__(self, features: Tensor | tuple[Tensor, ...], labels: Tensor | Sequence[int], *,
                 video_index: Tensor | Sequence[int] | None = None, clips_per_video: int | None = None):
        self.inputs = tuple(features) if isinstance(features, (tuple, list)) else (features,)
        self.multi_input = isinstance(features, (tuple, list))
        n = len(self.inputs[0])
        if any(len(f) != n for f in self.inputs):
            raise ValueError(f"all feature tensors need the same number of rows, got {[len(f) for f in self.inputs]}")
        labels = torch.as_tensor(labels)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} items: give one label per item")
        self.labels = labels.float() if labels.ndim == 2 else labels.long()
        if video_index is not None and clips_per_video is not None:
            raise ValueError("give video_index or clips_per_video, not both")
        if clips_per_video is not None:
            if clips_per_video < 1 or n % clips_per_video:
                raise ValueError(f"clips_per_video={clips_per_video} does not divide the {n} items")
            video_index = torch.arange(n) // clips_per_video
        self.video_index = torch.arange(n) if video_index is None else torch.as_tensor(video_index).long()
        if self.video_index.shape != (n,):
            raise ValueError(f"video_index must have shape ({n},), got {tuple(self.video_index.shape)}")

    @classmethod
    def from_videos(cls, clips: Sequence[Tensor], labels: Tensor | Sequence[int]) -> TensorVideoDataset:
        """One item per clip from `clips[v]` (K_v, ...) — the clips of video v — and one
        label per video, `labels[v]`; the clips of video v get `video_index` v."""
        labels = torch.as_tensor(labels)
        if len(clips) != len(labels):
            raise ValueError(f"{len(clips)} videos but {len(labels)} labels")
        counts = torch.tensor([len(c) for c in clips])
        return cls(torch.cat(list(clips)), labels.repeat_interleave(counts, dim=0),
                   video_index=torch.arange(len(clips)).repeat_interleave(counts))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, Tensor, int]:
        x = tuple(f[i] for f in self.inputs) if self.multi_input else self.inputs[0][i]
        return x, self.labels[i], int(self.video_index[i])


def _check_item(ds: Dataset, name: str) -> None:
    """Fail early, and clearly, on a dataset that does not follow the interface."""
    try:
        n = len(ds)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a map-style Dataset with a length (got {type(ds).__name__})") from None
    if n == 0:
        raise ValueError(f"{name} is empty: check the split files and the feature cache")
    item = ds[0]
    if not (isinstance(item, (tuple, list)) and len(item) == 3):
        raise TypeError(f"{name}[0] must be a triple (x, y, video_index), got {type(item).__name__}"
                        f"{f' of length {len(item)}' if isinstance(item, (tuple, list)) else ''}; "
                        "see the data interface in actionbook.engine's docstring")


# --------------------------------------------------------------------------- small helpers

def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (0, 1, 0 when absent)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """The one device resolver of the package (training, extraction, timings).

    "auto" or None: CUDA when available, else the CPU; "cuda" without an index: GPU
    `local_rank` (torchrun's). A name that is not a device, a GPU this machine lacks, or an index
    past its GPUs is a `ConfigError` (a ValueError) that says what to pass instead.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available on this machine: "
                              "use the CPU (--device cpu, device='cpu') or auto (cuda when available)")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        if dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (tuple, list)):
        return type(x)(_to(t, device) for t in x)
    return x


def _forward(model: nn.Module, x: Any) -> Tensor:
    out = model(*x) if isinstance(x, (tuple, list)) else model(x)
    if not isinstance(out, Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model returned {shape}; it must return logits of shape (batch, num_classes)")
    return out


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _loss(logits: Tensor, y: Tensor, *, multilabel: bool, label_smoothing: float = 0.0) -> Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y.float())
    return F.cross_entropy(logits, y.long(), label_smoothing=label_smoothing)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer `cfg` names, with one parameter group per `cfg.lr_groups` prefix (the
    longest matching prefix wins) and one for all other parameters (lr `cfg.lr`)."""
    prefixes = sorted(cfg.lr_groups, key=len, reverse=True)
    groups: dict[str | None, list[nn.Parameter]] = {None: [], **{p: [] for p in cfg.lr_groups}}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[next((pre for pre in prefixes if name.startswith(pre)), None)].append(p)
    unused = [pre for pre in cfg.lr_groups if not groups[pre]]
    if unused:
        children = [n for n, _ in model.named_children()]
        raise ConfigError(f"lr_groups prefixes {unused} match no trainable parameter; "
                          f"the model's top-level modules are {children}")
    params = [{"params": ps, "lr": cfg.lr if pre is None else cfg.lr_groups[pre]}
              for pre, ps in groups.items() if ps]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


# --------------------------------------------------------------------------- train one epoch

def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, *,
                    device: torch.device, multilabel: bool = False, label_smoothing: float = 0.0,
                    grad_clip: float | None = None, amp: bool = False, progress: bool = False,
                    log_every: int = 10, desc: str = "train") -> dict[str, float]:
    """One pass over `loader` (items `(x, y, video_index)`); returns `{"loss", "acc", "samples"}`:
    the mean loss and top-1 accuracy over the epoch's samples (accuracy is NaN when
    `multilabel`). Under torch.distributed the numbers are summed over all processes."""
    model.train()
    # Sums stay on the device: a `.item()` per step would wait for the GPU every step.
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False, mininterval=1.0, dynamic_ncols=True)
    for step, (x, y, _) in enumerate(bar):
        x, y = _to(x, device), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = _forward(model, x)                                   # (B, C)
        loss = _loss(logits.float(), y, multilabel=multilabel, label_smoothing=label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss.item()} at step {step} of {desc}: "
                                     "lower the lr or set grad_clip")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        n = len(y)
        loss_sum += loss.detach() * n
        if not multilabel:
            correct += (logits.detach().argmax(dim=1) == y).sum()
        count += n
        if progress and step % log_every == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    totals = torch.stack([loss_sum, correct, torch.tensor(float(count), dtype=torch.float64, device=device)])
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    loss_sum, correct, n = totals.tolist()
    return {"loss": loss_sum / n, "acc": math.nan if multilabel else correct / n, "samples": int(n)}


# --------------------------------------------------------------------------- evaluate

@dataclass
class EvalResult:
    """What `evaluate` measured. Rows of the `video_*` tensors follow `video_ids`."""

    loss: float                 # mean clip-level loss (plain cross-entropy / BCE)
    clip: dict[str, float]      # {"top1", "top5"} or, multi-label, {"map"}; over the items
    video: dict[str, float]     # the same over videos, plus "mean_class" (single-label)
    video_ids: Tensor           # (V,) the distinct video_index values, increasing
    video_scores: Tensor        # (V, C) reduced clip probabilities (softmax; sigmoid if multi-label)
    video_logits: Tensor        # (V, C) reduced clip logits (for fusion before softmax)
    video_targets: Tensor       # (V,) class indices, or (V, C) multi-hot
    clip_logits: Tensor         # (N, C) per item, in dataset order
    clip_video: Tensor          # (N,) video_index of each item

    @property
    def video_pred(self) -> Tensor:
        """(V,) the predicted class of each video."""
        return self.video_scores.argmax(dim=1)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """A flat dict: `loss`, `clip_top1`, ..., `video_top1`, ... (each with `prefix`)."""
        out = {f"{prefix}loss": self.loss}
        out.update({f"{prefix}clip_{k}": v for k, v in self.clip.items()})
        out.update({f"{prefix}video_{k}": v for k, v in self.video.items()})
        return out


@torch.no_grad()
def evaluate(model: nn.Module, ds: Dataset, *, batch_size: int = 64, device: str | torch.device = "auto",
             multilabel: bool = False, reduce: str = "mean", amp: bool = False, num_workers: int = 0,
             progress: bool = False) -> EvalResult:
    """Score every item of `ds` once, then every video (items with the same `video_index`).

    Clip level: top-1/top-5 accuracy of each item's logits (or mAP when `multilabel`).
    Video level: the items' softmax (sigmoid) scores combined per video with `reduce`
    ("mean": the papers' score averaging; "max": Relational LSTM on Charades), then
    top-1/top-5 and mean class accuracy (or mAP). Under torch.distributed each process scores
    a shard and the scores are gathered, so every process returns the full result.
    """
    device = resolve_device(device, _distributed()[2])
    _check_item(ds, "the evaluation dataset")
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    shard = list(range(rank, len(ds), world))  # type: ignore[arg-type]
    loader = DataLoader(Subset(ds, shard) if world > 1 else ds, batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(0))  # leaves the global RNG alone
    model = _unwrap(model).to(device)
    was_training = model.training
    model.eval()
    logits, targets, videos = [], [], []
    try:
        for x, y, v in tqdm(loader, desc="evaluate", disable=not progress, leave=False, mininterval=1.0):
            with _autocast(device, amp):
                out = _forward(model, _to(x, device))                      # (B, C)
            logits.append(out.float().cpu())
            targets.append(torch.as_tensor(y))
            videos.append(torch.as_tensor(v))
    finally:
        model.train(was_training)
    logits_t, targets_t, videos_t = torch.cat(logits), torch.cat(targets), torch.cat(videos).long()
    if world > 1:  # gather the shards; put the items back in dataset order
        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, (shard, logits_t, targets_t, videos_t))
        order = torch.tensor([i for p in parts for i in p[0]]).argsort()
        logits_t, targets_t, videos_t = (torch.cat([p[k] for p in parts])[order] for k in (1, 2, 3))
    return _eval_result(logits_t, targets_t, videos_t, multilabel=multilabel, reduce=reduce)


def _eval_result(logits: Tensor, targets: Tensor, videos: Tensor, *, multilabel: bool, reduce: str) -> EvalResult:
    C = logits.shape[1]
    if multilabel:
        if targets.shape != logits.shape:
            raise ValueError(f"multilabel targets must be multi-hot (N, {C}), got {tuple(targets.shape)}")
        probs = logits.sigmoid()                                            # (N, C)
    else:
        if targets.ndim != 1:
            raise ValueError(f"targets are {tuple(targets.shape)}: multi-hot targets need multilabel=True")
        if targets.min() < 0 or targets.max() >= C:
            raise ValueError(f"a target is outside [0, {C}): the model has {C} outputs, "
                             f"targets run {int(targets.min())}..{int(targets.max())}")
        probs = logits.softmax(dim=1)                                       # (N, C)
    loss = _loss(logits, targets, multilabel=multilabel).item()
    ids, vscores = metrics.video_scores(probs, videos, reduce=reduce)      # (V,), (V, C)
    _, vlogits = metrics.video_scores(logits, videos, reduce=reduce)        # (V, C)
    vtargets = metrics.video_targets(targets, videos)                      # (V,) or (V, C)
    if multilabel:
        clip = {"map": metrics.mean_average_precision(probs, targets)}
        video = {"map": metrics.mean_average_precision(vscores, vtargets)}
    else:
        clip = metrics.accuracy(logits, targets, topk=(1, 5))
        video = metrics.accuracy(vscores, vtargets, topk=(1, 5))
        video["mean_class"] = metrics.mean_class_accuracy(vscores.argmax(1), vtargets, num_classes=C)
    return EvalResult(loss=loss, clip=clip, video=video, video_ids=ids, video_scores=vscores,
                      video_logits=vlogits, video_targets=vtargets, clip_logits=logits, clip_video=videos)


# --------------------------------------------------------------------------- fit

class History(list):
    """One dict per epoch: `epoch`, `lr`, `train_loss`, `train_acc`, `val_*` (when validated:
    `val_loss`, `val_clip_top1`, ..., `val_video_top1`, ...), `seconds` (wall time of the
    epoch). `history.frame()` (or `pd.DataFrame(history)`) makes a table of it."""

    def frame(self):  # -> pandas.DataFrame
        import pandas as pd

        return pd.DataFrame(list(self))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by `fit` (a dict: model, optimizer, scheduler, epoch, rng,
    loader_generator, config, history, world_size; optimizer and scheduler are None once the
    run has finished its epochs).

    Not weights-only, and so only for files this machine wrote: to resume bitwise, the
    checkpoint holds numpy's RNG state (`np.random.get_state()`: a numpy array), which
    `weights_only=True` refuses to unpickle. Unpickling runs code, so never point `fit(resume=True)` at a checkpoint
    from elsewhere; weights that travel between machines (torchvision `.pth` files, the ci
    pretraining, the feature cache) are all loaded with `weights_only=True`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure means the same thing to the user
        raise RuntimeError(f"cannot read checkpoint {path} ({type(e).__name__}: {e}); "
                           "delete it, or call fit with resume=False") from e


def _config_diff(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    now = dataclasses.asdict(cfg)
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731 - tuples may come back as lists
    keys = sorted((set(saved) | set(now)) - set(_RESUME_FREE))
    return [f"{k}: checkpoint {saved.get(k, '<missing>')!r} != now {now.get(k, '<missing>')!r}"
            for k in keys if norm(saved.get(k)) != norm(now.get(k))]


def fit(model: nn.Module, train_ds: Dataset, val_ds: Dataset | None = None, cfg: TrainConfig | None = None, *,
        ckpt_dir: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
        stop_after_epoch: int | None = None, on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> History:
    """Train `model` on `train_ds` for `cfg.epochs` epochs, validating on `val_ds`.

    ckpt_dir:         where to write `last.pt` after every epoch (rank 0 only); None: no
                      checkpoints.
    resume:           continue from `ckpt_dir/last.pt` if it exists (its config must equal
                      `cfg` except for `log_every` and `num_workers`); a finished run is
                      loaded and returned at once. False: start afresh (overwriting it).
    stop_after_epoch: stop after this epoch as if the run were killed (the schedule is still
                      that of `cfg.epochs`); resume later to finish.
    on_epoch_end:     called with each epoch's history row (on every process).

    The model is trained in place (moved to the device) and the history returned.
    """
    cfg = cfg or TrainConfig()
    if stop_after_epoch is not None and stop_after_epoch < 1:
        raise ValueError(f"stop_after_epoch must be >= 1, got {stop_after_epoch}")
    _check_item(train_ds, "train_ds")
    if val_ds is not None:
        _check_item(val_ds, "val_ds")
    rank, world, local_rank = _distributed()
    device = resolve_device(cfg.device, local_rank)
    # started by torchrun (even with one process: the path full mode documents for any number of GPUs)
    own_group = "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized()
    if own_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        return _fit(model, train_ds, val_ds, cfg, rank=rank, world=world, device=device,
                    ckpt=Path(ckpt_dir) / CHECKPOINT if ckpt_dir is not None else None, resume=resume,
                    progress=progress and rank == 0, stop_after_epoch=stop_after_epoch, on_epoch_end=on_epoch_end)
    finally:
        if own_group:
            dist.destroy_process_group()


def _fit(model: nn.Module, train_ds: Dataset, val_ds: Dataset | None, cfg: TrainConfig, *, rank: int,
         world: int, device: torch.device, ckpt: Path | None, resume: bool, progress: bool,
         stop_after_epoch: int | None, on_epoch_end: Callable[[dict[str, Any]], None] | None) -> History:
    seed_everything(cfg.seed + rank)  # + rank: dropout masks differ between processes
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)
    loader_gen = torch.Generator().manual_seed(cfg.seed)  # seeds the DataLoader's workers
    history, start = History(), 0

    if ckpt is not None and resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        diff = _config_diff(state["config"], cfg)
        if diff:
            raise ConfigError(f"checkpoint {ckpt} was written with another config:\n  " + "\n  ".join(diff)
                              + "\nUse the checkpoint's config, another ckpt_dir, or resume=False to start afresh.")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ConfigError(f"checkpoint {ckpt} holds weights of another model: {e}") from e
        if state["optimizer"] is not None:  # None in a finished run's checkpoint: nothing left to train
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        loader_gen.set_state(state["loader_generator"])
        rngs = state["rng"]
        if len(rngs) != world and progress:
            tqdm.write(f"note: {ckpt} was written by {len(rngs)} process(es), resuming with {world}: "
                       "the numbers will differ from an uninterrupted run")
        set_rng_state(rngs[min(rank, len(rngs) - 1)])
        history, start = History(state["history"]), state["epoch"]
        if progress:
            tqdm.write(f"resuming from {ckpt} after epoch {start}/{cfg.epochs}")

    net = model
    if dist.is_available() and dist.is_initialized():  # torchrun: DDP, also with one process
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # The data order of epoch e comes from a generator seeded with cfg.seed + e (also with one
    # process), so it is the same after a resume, and the same global batches for any world size.
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        generator=loader_gen, pin_memory=device.type == "cuda", drop_last=cfg.drop_last)
    epochs = tqdm(range(start, cfg.epochs), desc="epochs", initial=start, total=cfg.epochs,
                  disable=not progress, dynamic_ncols=True)
    for epoch in epochs:
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        train = train_one_epoch(net, loader, optimizer, device=device, multilabel=cfg.multilabel,
                                label_smoothing=cfg.label_smoothing, grad_clip=cfg.grad_clip, amp=cfg.amp,
                                progress=progress, log_every=cfg.log_every,
                                desc=f"epoch {epoch + 1}/{cfg.epochs}")
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                               "train_loss": train["loss"]}
        if not cfg.multilabel:
            row["train_acc"] = train["acc"]
        scheduler.step()
        if val_ds is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            res = evaluate(model, val_ds, batch_size=cfg.batch_size, device=device, multilabel=cfg.multilabel,
                           reduce=cfg.video_reduce, amp=cfg.amp, num_workers=cfg.num_workers)
            row.update(res.metrics(prefix="val_"))
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if ckpt is not None:
            _save_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch + 1,
                             loader_gen=loader_gen, cfg=cfg, history=history, rank=rank, world=world)
        if progress:
            epochs.set_postfix({k: f"{v:.4g}" for k, v in row.items()
                                if k in ("train_loss", "train_acc", "val_video_top1", "val_video_map")})
        if on_epoch_end is not None:
            on_epoch_end(row)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    epochs.close()
    return history


def _save_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     epoch: int, loader_gen: torch.Generator, cfg: TrainConfig, history: History,
                     rank: int, world: int) -> None:
    rngs = [rng_state()]
    if world > 1:  # every process's RNG state, so each continues its own stream
        rngs = [None] * world
        dist.all_gather_object(rngs, rng_state())
    if rank == 0:
        # The last epoch's checkpoint keeps the model but not the optimizer's state (Adam's two
        # moments: twice the model's size): a finished run is never continued (a longer schedule
        # is another config, which resume refuses), and a chapter keeps hundreds of finished runs.
        done = epoch >= cfg.epochs
        state = {"model": model.state_dict(), "optimizer": None if done else optimizer.state_dict(),
                 "scheduler": None if done else scheduler.state_dict(), "epoch": epoch, "rng": rngs,
                 "loader_generator": loader_gen.get_state(), "config": dataclasses.asdict(cfg),
                 "history": list(history), "world_size": world}
        with atomic_write(path, "wb") as f:
            torch.save(state, f)
    if world > 1:
        dist.barrier()  # nobody runs ahead of a checkpoint being written
