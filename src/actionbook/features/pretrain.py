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
- the 3D backbone (standing in for C3D / R(2+1)D Kinetics features) is **not trained on
  video**: it is the same ResNet-18 inflated to 3D (I3D's recipe; see
  `ci_nets.inflate_resnet`). Training a 3D network on clips costs far more than the ci
  budget allows, and inflation is how I3D itself starts from ImageNet. Its accuracy on
  held-out static images shown as still clips is recorded too (with edge-replicating
  temporal padding it equals the 2D network's, up to rounding: a check of the inflation).

The weights are cached under `cache_dir()/"pretrain"/<key>.pt`, keyed by everything that
determines them (this config, the generator's version, this module's `VERSION`, the
inflation's version that the report's 3D accuracy depends on), written
atomically and reused; `report()` returns the recorded accuracies and time.
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

from actionbook.features import ci_nets
from actionbook import stages
from actionbook.io import atomic_write, read_json, write_json
from actionbook.paths import cache_dir
from actionbook.seed import rng_state, seed_everything, set_rng_state

VERSION = 4  # bump when the training recipe changes: every cached weight is then retrained
# (4: 8 epochs, held-out accuracy after every epoch in the report; 3: a style per image, several
# objects, presence labels; 2: one object on 64 shared styles)


@dataclass(frozen=True)
class PretrainConfig:
    """The ci pretraining recipe (small on purpose: a few minutes on 2 cores).

    `epochs` was chosen on the held-out stills alone (they share no style with the benchmark):
    with 4 epochs the network still underfits (held-out 48%, train 53% in the run that showed
    it) and its held-out accuracy climbs steeply until ~8 (81%); the report's `curve` records
    the held-out accuracy after every epoch of the run, so the book shows where it stands."""

    n_train: int = 8000
    n_test: int = 600
    size: int = 64           # image side, pixels (the ci benchmark's frame size)
    crop: int = 56           # network input: random crops in training, the centre in testing (as in extraction)
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3         # Adam, cosine decay to 0
    weight_decay: float = 1e-4
    seed: int = 0
    clip_frames: int = 4     # length of the still clips the inflated 3D network is scored on
    n_test_3d: int = 120     # held-out images it is scored on (a 3D forward costs more)


ImageSource = Callable[..., "StaticImages"]  # static_images(n=, size=, seed=) -> StaticImages


def _generator_version() -> str:
    from actionbook.data import generate

    return str(getattr(generate, "VERSION", getattr(generate, "__version__", "0")))


def pretrain_key(cfg: PretrainConfig = PretrainConfig()) -> str:
    """A hash of everything that determines the ci weights."""
    blob = json.dumps(dict(cfg=asdict(cfg), generator=_generator_version(), version=VERSION,
                           inflation=ci_nets.INFLATION_VERSION,  # the report's 3D accuracy depends on it
                           torch=torch.__version__.split("+")[0]), sort_keys=True)
    return "ci-resnet18-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _paths(cfg: PretrainConfig, root: Path | None) -> tuple[Path, Path]:
    root = Path(root) if root is not None else cache_dir() / "pretrain"
    key = pretrain_key(cfg)
    return root / f"{key}.pt", root / f"{key}.json"


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W) in [0, 1]


def _augment(x: torch.Tensor, crop: int, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random crop x crop window (one per batch)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    dy, dx = (int(v) for v in torch.randint(0, h - crop + 1, (2,), generator=g))
    return x[:, :, dy:dy + crop, dx:dx + crop]  # (N, 3, crop, crop)


def _loss(out: torch.Tensor, kind: torch.Tensor, presence: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Cross-entropy on the main object's kind + binary cross-entropy on every kind that shows."""
    k = presence.shape[1]
    parts = dict(kind=F.cross_entropy(out[:, :k], kind),
                 presence=F.binary_cross_entropy_with_logits(out[:, k:], presence))
    return parts["kind"] + parts["presence"], parts


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
    saved = rng_state()  # pretraining may run lazily inside an experiment: leave its random streams alone
    try:
        with torch.enable_grad():  # the caller may hold torch.no_grad() (e.g. a feature extractor)
            return _train(cfg, images, weights_file=weights_file, report_file=report_file, progress=progress)
    finally:
        set_rng_state(saved)


def _train(cfg: PretrainConfig, images: ImageSource, *, weights_file: Path, report_file: Path,
           progress: bool) -> dict:
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

    model = ci_nets.ci_resnet18(num_classes=2 * k).to(memory_format=torch.channels_last)  # kind | presence
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
            xb = _augment(x_train[idx], cfg.crop, g).contiguous(memory_format=torch.channels_last)  # (B, 3, crop, crop)
            loss, parts = _loss(model(xb), y_train[idx], p_train[idx])
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
        out = torch.cat([model(xb) for xb in x_test.split(128)])  # (n_test, 2K)
        _, test_parts = _loss(out, y_test, p[cfg.n_train:])
    model = model.to(memory_format=torch.contiguous_format)
    state = {name: v.detach().clone().contiguous() for name, v in model.state_dict().items()}
    train_seconds = time.perf_counter() - start

    net3d = ci_nets.inflated_r3d_18(num_classes=2 * k)
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
        seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start,
        threads=torch.get_num_threads(),
    )
    with atomic_write(weights_file, "wb") as f:
        torch.save(state, f)
    write_json(report_file, report)  # written last: its presence marks a complete entry
    stages.record("pretrain", f"ci ResNet-18 ({report['key']})", seconds=report["seconds"],
                  cpu_seconds=report["cpu_seconds"])
    return report


def ci_state_dict(cfg: PretrainConfig = PretrainConfig(), *, root: Path | None = None) -> dict[str, torch.Tensor]:
    """The ci ResNet-18's state_dict (pretraining it first if it is not cached)."""
    pretrain(cfg, root=root)
    weights_file, _ = _paths(cfg, root)
    return torch.load(weights_file, map_location="cpu", weights_only=True)


def report(cfg: PretrainConfig = PretrainConfig(), *, root: Path | None = None) -> dict:
    """What the pretraining recorded: accuracies (train, held-out, inflated 3D), the held-out
    accuracy after every epoch (`curve`), chance, seconds."""
    return pretrain(cfg, root=root)
