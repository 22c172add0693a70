"""Decide on held-out *training* groups: what do the ci features carry, category by category?

Issue 11 asks that choices about the benchmark, the ci pretraining and the features be made on
a validation split of training groups, never on the test groups. This script is that split for
the controls' question (page `book/data/controls`: within each coarse category, 4-way, can a
small model tell its classes apart on groups it never saw?). For split 1 (test groups g01-g02,
never read here):

- *fit* videos: the benchmark's own clips of groups `--fit-groups` (default g03-g06);
- *validation* videos: `--val-clips` clips of groups `--val-groups` (default g07-g08, clips
  1-6), rendered in memory by the benchmark's generator (`render_video`: every video is
  determined by seed, class, group and clip, so clips 3-6 are new videos of those groups' styles,
  never encoded to disk and never in any split). More clips than the benchmark's 2 per group
  shrink the validation error bars: 4 classes x 2 groups x 6 clips = 48 videos per category.

Features: 16 evenly spaced frames of every video, centre 56 x 56 crop, through the ci
ResNet-18 (`--weights`: a state_dict file, default the cached ci pretraining) cut after each
of `--layers`, globally pooled. Two linear probes per category (4-way, chance 25%), fitted on
the fit videos and scored on the validation videos:

- *mean*: the 16 frames' average (what frame averaging can know);
- *ordered*: the averages of 8 consecutive segments, concatenated (sees the order of events).

    python benchmarks/validation_probe.py
    python benchmarks/validation_probe.py --weights other.pt --layers layer3 layer4

With `--clips rgb` or `--clips flow`, the features are instead the book's ci clip network of that
stream (`backbones.backbone("r2plus1d_18", layer="pool", ...)`, video-pretrained) on every
16-frame clip at stride 8 (the Res-LSTM chapter's grid; flow: DIS, as the chapter's): *mean*
averages a video's clips, *ordered* concatenates 8 evenly spaced clips.

Not a test; it decides nothing by itself, but a choice it informs is made on these groups only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torchvision

from actionbook.data.generate import CATEGORIES, CLASSES, render_video, test_groups
from actionbook.features import pretrain as P

from probe import SEGMENTS, features, linear_probe, sample


def render(groups: list[int], clips: list[int], *, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """(V, F, 3, 56, 56) uint8 frames (`probe.sample`) of the videos rendered in memory, and (V,) labels."""
    xs, ys = [], []
    for label in range(len(CLASSES)):
        for group in groups:
            for clip in clips:
                video = render_video(preset="ci", seed=seed, label=label, group=group, clip=clip)  # (T, H, W, 3)
                xs.append(sample(torch.from_numpy(video)))
                ys.append(label)
    return torch.stack(xs), np.asarray(ys)


@torch.no_grad()
def clip_features(groups: list[int], clips: list[int], modality: str, *, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """(V, SEGMENTS + 1, 512): the mean over each video's clips, then 8 evenly spaced clips' features;
    and (V,) labels. The videos are rendered in memory, as `render`'s."""
    from actionbook.data.flow import compute_flow
    from actionbook.data.sampling import clip_grid
    from actionbook.features import backbones as B

    net = B.backbone("r2plus1d_18", layer="pool", modality=modality, weights="ci", mode="ci")
    xs, ys = [], []
    for label in range(len(CLASSES)):
        for group in groups:
            for clip in clips:
                video = render_video(preset="ci", seed=seed, label=label, group=group, clip=clip)  # (T, H, W, 3)
                if modality == "rgb":
                    v = torch.from_numpy(video).permute(0, 3, 1, 2)                        # (T, 3, H, W)
                else:  # frame f reads the field f -> f+1, the last frame the last field (as extraction)
                    fields = torch.from_numpy(compute_flow(video, method="dis")).permute(0, 3, 1, 2)
                    v = torch.cat([fields, fields[-1:]])                                   # (T, 2, H, W)
                top = (v.shape[-1] - 56) // 2
                v = v[..., top:top + 56, top:top + 56].float() / 255
                grid = torch.tensor(clip_grid(len(v), length=16, stride=8))                # (K, 16)
                f = torch.cat([net(v[g].transpose(0, 1)[None]) for g in grid])              # (K, 512)
                pick = np.linspace(0, len(f) - 1, SEGMENTS).round().astype(int)
                xs.append(torch.cat([f.mean(0, keepdim=True), f[pick]]))                   # (1 + SEGMENTS, 512)
                ys.append(label)
    return torch.stack(xs), np.asarray(ys)


def within_category(xtr: torch.Tensor, ytr: np.ndarray, xva: torch.Tensor, yva: np.ndarray) -> dict[str, float]:
    """Validation accuracy of a 4-way linear probe per coarse category (its own classes only)."""
    out = {}
    for cat in CATEGORIES:
        mine = [i for i, c in enumerate(CLASSES) if c.category == cat]
        remap = {c: j for j, c in enumerate(mine)}
        tr, va = np.isin(ytr, mine), np.isin(yva, mine)
        _, pred = linear_probe(xtr[tr], torch.as_tensor([remap[y] for y in ytr[tr]]), xva[va], classes=len(mine))
        out[cat] = float((pred == np.array([remap[y] for y in yva[va]])).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", nargs="+", default=["layer4"])
    ap.add_argument("--weights", help="a ResNet-18 state_dict file (.pt); default: the cached ci pretraining")
    ap.add_argument("--fit-groups", type=int, nargs="+", default=[3, 4, 5, 6])
    ap.add_argument("--val-groups", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--val-clips", type=int, default=6)
    ap.add_argument("--clips", choices=("rgb", "flow"), help="the ci clip network of this stream instead")
    args = ap.parse_args()
    held_out = set(test_groups("ci", 1))
    if held_out & set(args.fit_groups + args.val_groups):
        ap.error(f"groups {sorted(held_out)} are split 1's test groups: never fit or validate on them")
    if args.clips:
        start = time.perf_counter()
        (ftr, ytr), (fva, yva) = (clip_features(g, c, args.clips) for g, c in
                                  ((args.fit_groups, [1, 2]), (args.val_groups, list(range(1, args.val_clips + 1)))))
        print(f"fit: groups {args.fit_groups} clips 1-2 ({len(ytr)} videos); validation: groups {args.val_groups} "
              f"clips 1-{args.val_clips} ({len(yva)} videos); the ci {args.clips} clip network; 4-way within each "
              f"category, chance 25%")
        print(f"{'probe':8s}" + "".join(f"{c:>16s}" for c in CATEGORIES))
        for name, (a, b) in {"mean": (ftr[:, 0], fva[:, 0]), "ordered": (ftr[:, 1:].flatten(1), fva[:, 1:].flatten(1))}.items():
            acc = within_category(a, ytr, b, yva)
            print(f"{name:8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
        print(f"({time.perf_counter() - start:.0f} s)")
        return
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=1)
    state = torch.load(args.weights, map_location="cpu", weights_only=True) if args.weights else P.ci_state_dict()
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    net.eval()
    start = time.perf_counter()
    xtr, ytr = render(args.fit_groups, [1, 2])
    xva, yva = render(args.val_groups, list(range(1, args.val_clips + 1)))
    ftr, fva = features(net, xtr, args.layers), features(net, xva, args.layers)  # (V, F, D)
    seg = lambda z: z.view(z.shape[0], SEGMENTS, -1, z.shape[-1]).mean(2).flatten(1)  # noqa: E731
    print(f"fit: groups {args.fit_groups} clips 1-2 ({len(ytr)} videos); validation: groups {args.val_groups} "
          f"clips 1-{args.val_clips} ({len(yva)} videos); layers {'+'.join(args.layers)}; "
          f"weights {args.weights or 'ci'}; 4-way within each category, chance 25%")
    print(f"{'probe':8s}" + "".join(f"{c:>16s}" for c in CATEGORIES))
    for name, (a, b) in {"mean": (ftr.mean(1), fva.mean(1)), "ordered": (seg(ftr), seg(fva))}.items():
        acc = within_category(a, ytr, b, yva)
        print(f"{name:8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
