"""What do the frozen ci features know? Linear probes per coarse category.

The book's ci comparisons are only meaningful if the ci-pretrained backbone's features carry
what each coarse category needs: the object's kind (appearance), its position and angle
(motion), its size and spread (temporal order), where two objects are (interaction), and a
second object early on (long range). This script measures it, without training any of the
book's models: it reads 16 evenly spaced frames of every video of the ci benchmark
(centre 56x56 crop, as extraction does), takes the ci ResNet-18's pooled features, and fits
two linear classifiers on each split's training videos:

- *mean*: the average over the 16 frames (what frame averaging can know);
- *ordered*: the averages of 8 consecutive segments, concatenated in order (a linear model
  that sees the order of events: the least a recurrent model on these features can use).

It prints the test accuracy (20-way) per coarse category, averaged over the 3 splits, with
the training accuracy beside it (a large gap means the features encode each group's style).
Chance is 5 %.

    python benchmarks/probe.py                        # the cached ci weights (pretrains if needed)
    python benchmarks/probe.py --random               # a random network, for reference
    python benchmarks/probe.py --layers layer3 layer4

Not a test: it decides nothing by itself; the numbers go in the issue note and the book.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from actionbook.data.generate import CATEGORIES, CLASSES, PRESETS, ensure_benchmark
from actionbook.data.readers import read_ucf101
from actionbook.data.video import read_video
from actionbook.features import pretrain as P
from actionbook.features.backbones import FrameBackbone
from actionbook.features.ci_nets import CI_MEAN, CI_STD

FRAMES, SEGMENTS, CROP = 16, 8, 56


def sample(video: torch.Tensor, frames: int = FRAMES) -> torch.Tensor:
    """(T, H, W, 3) uint8 video -> (F, 3, 56, 56): `frames` evenly spaced frames, centre crop (as extraction)."""
    idx = np.linspace(0, len(video) - 1, frames).round().astype(int)
    v = video[idx].permute(0, 3, 1, 2)  # (F, 3, H, W)
    top, left = (v.shape[-2] - CROP) // 2, (v.shape[-1] - CROP) // 2
    return v[..., top:top + CROP, left:left + CROP]


def load_frames(root, split: int, subset: str) -> tuple[torch.Tensor, np.ndarray]:
    """(V, F, 3, 56, 56) uint8 frames and (V,) labels of one split's subset."""
    recs = read_ucf101(videos=root / "videos", splits=root / "splits", split=split, subset=subset)
    return torch.stack([sample(read_video(r.path)) for r in recs]), np.asarray([r.label for r in recs])


@torch.no_grad()
def features(net: torchvision.models.ResNet, frames: torch.Tensor, layers: list[str]) -> torch.Tensor:
    """(V, F, D) pooled features of `layers` (the book's own `FrameBackbone`), concatenated."""
    mean, std = torch.tensor(CI_MEAN), torch.tensor(CI_STD)
    cuts = [FrameBackbone(net, layer=layer, mean=mean, std=std).eval() for layer in layers]
    x = frames.flatten(0, 1)  # (V F, 3, H, W) uint8
    out = torch.cat([torch.cat([cut(xb.float() / 255) for cut in cuts], 1) for xb in x.split(256)])
    return out.reshape(*frames.shape[:2], -1)  # (V, F, D): maps (`_map` layers) flattened


def linear_probe(xtr, ytr, xte, *, steps: int = 300, wd: float = 1e-3, seed: int = 0, classes: int = len(CLASSES)):
    """A standardized multinomial logistic regression over `classes` labels 0..classes-1;
    returns (train predictions, test predictions)."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(xtr.shape[1], classes, generator=g) * 0.01).requires_grad_()
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    y = torch.as_tensor(ytr)
    for _ in range(steps):
        loss = F.cross_entropy(xtr @ w + b, y) + wd * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (xtr @ w + b).argmax(1).numpy(), (xte @ w + b).argmax(1).numpy()


def per_category(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    cat = np.array([CLASSES[i].category for i in y])
    out = {c: float((pred[cat == c] == y[cat == c]).mean()) for c in CATEGORIES}
    out["all"] = float((pred == y).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", nargs="+", default=["layer4"])
    ap.add_argument("--random", action="store_true", help="a randomly initialized network instead")
    ap.add_argument("--weights", help="a ResNet-18 state_dict file (.pt) instead of the cached ci weights")
    ap.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=1)
    if args.weights:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    elif not args.random:
        t = time.perf_counter()
        rep = P.pretrain(P.PretrainConfig())
        print(f"ci pretraining {rep['key']}: held-out accuracy {rep['test_accuracy']:.3f} "
              f"(chance {rep['chance']:.3f}), {rep['seconds']:.0f} s ({time.perf_counter() - t:.0f} s now)")
        state = P.ci_state_dict()
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    net.eval()
    root = ensure_benchmark("ci", progress=False)
    assert PRESETS["ci"].splits >= max(args.splits)
    rows = {}
    for split in args.splits:
        data = {s: load_frames(root, split, s) for s in ("train", "test")}
        f = {s: features(net, data[s][0], args.layers) for s in data}  # (V, F, D)
        ytr, yte = data["train"][1], data["test"][1]
        for probe in ("mean", "ordered"):
            if probe == "mean":
                xtr, xte = f["train"].mean(1), f["test"].mean(1)
            else:
                seg = lambda z: z.view(z.shape[0], SEGMENTS, -1, z.shape[-1]).mean(2).flatten(1)  # noqa: E731
                xtr, xte = seg(f["train"]), seg(f["test"])
            ptr, pte = linear_probe(xtr, ytr, xte)
            rows.setdefault(probe, []).append((per_category(ptr, ytr), per_category(pte, yte)))
    cols = list(CATEGORIES) + ["all"]
    print(f"\nlinear probes on {'+'.join(args.layers)} ({args.weights or ('random' if args.random else 'ci')} weights), "
          f"splits {args.splits}, test accuracy % (train in brackets), chance 5 %")
    print(f"{'probe':8s}" + "".join(f"{c:>18s}" for c in cols))
    for probe, res in rows.items():
        line = f"{probe:8s}"
        for c in cols:
            te = 100 * np.mean([r[1][c] for r in res])
            tr = 100 * np.mean([r[0][c] for r in res])
            line += f"{te:11.1f} ({tr:3.0f})"
        print(line)


if __name__ == "__main__":
    main()
