"""Decide on held-out *training* groups: what do the ci features carry, category by category?

Issue 11 asks that choices about the benchmark, the ci pretraining and the features be made on
a validation split of training groups, never on the test groups. This script is that split for
the controls' question (page `book/data/controls`: within each coarse category, 4-way, can a
small model tell its classes apart on groups it never saw?). For split 1 (test groups g01-g02,
never read here):

- *fit* videos: the benchmark's own clips of groups `--fit-groups` (default g03-g06);
- *validation* videos: `--val-clips` clips of groups `--val-groups` (default g07-g08, clips
  1-6), rendered in memory by the benchmark's generator (`render_video`: every video is
  determined by seed, class, group and clip, so clips 5-6 are new videos of those groups' styles,
  never encoded to disk and never in any split; before generator 1.6, clips 3-6 were). More
  clips than the benchmark's 4 per training group shrink the validation error bars: 4 classes x
  2 groups x 6 clips = 48 videos per category.

Features: 16 (`--frames`) evenly spaced frames of every video, centre 56 x 56 crop, through the ci
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

With `--geometry`, the question is asked of single frames, with the scenes' own ground truth
(`generate.video_tracks`): how much of an order video's object size, and of an interaction
video's gap between its two objects (and their midpoint), can a ridge regression read off one
frame's pooled features? R^2 on the validation videos' frames (16 a video), the ridge's strength
chosen by leave-one-group-out on the fit groups. A 4-way probe on 48 videos has an error bar of
about 6 points; these R^2 rest on 768 frames a category, and say directly whether the frame
features carry what the two categories are built on.

With `--gru`, a third row: the controls' recurrent head (`actionbook.controls`: a GRU of
`ControlsConfig.hidden` units over the 16 frames, its schedule and seeds 0-2), fitted on the fit
videos of each category and scored on its validation videos: the positive control of temporal
order, interaction and long range, asked on training groups.

With `--reader` (`_map` layers only), a fourth row: a per-frame reader of the unpooled map (a
1x1 convolution to 8 channels, ReLU, a linear layer over every cell to 64, ReLU: it can learn
where things are) before the same GRU, trained and scored as `--gru`'s.

With `--interaction-reach FRACTION`, the interaction classes are rendered with the gap between
the two objects opening up to that fraction of the frame beyond touching
(`_render.interaction_scenes`; the benchmark's is 0.30), fit and validation videos alike, in
memory only: what a change of the category would give, asked before any benchmark is
regenerated. (Generator 1.4's design was probed with `--interaction-delta LO HI`, the range of
its gap's change, at commit `05a22d5`.)

Not a test; it decides nothing by itself, but a choice it informs is made on these groups only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from actionbook.data.generate import CATEGORIES, CLASSES, KINDS, render_video, test_groups, video_tracks
from actionbook.features import ci_nets
from actionbook.features import pretrain as P
from actionbook.features.backbones import FrameBackbone
from actionbook.features.ci_nets import CI_MEAN, CI_STD

from probe import CROP, FRAMES, SEGMENTS, features, linear_probe, sample

GEOMETRY = {  # category -> what one frame must show: name -> f(tracks, frame index)
    "temporal order": {"size": lambda tr, i: tr[0].size[i]},
    "interaction": {"gap": lambda tr, i: np.hypot(tr[1].x[i] - tr[0].x[i], tr[1].y[i] - tr[0].y[i]),
                    "midpoint x": lambda tr, i: (tr[0].x[i] + tr[1].x[i]) / 2,
                    "midpoint y": lambda tr, i: (tr[0].y[i] + tr[1].y[i]) / 2,
                    # each object on its own (A: the one of the earlier kind in KINDS): the gap is a
                    # nonlinear function of these, which a recurrent head can compute and a ridge cannot
                    "A x": lambda tr, i: _by_kind(tr)[0].x[i], "B x": lambda tr, i: _by_kind(tr)[1].x[i]},
}


def _by_kind(tracks):
    return sorted(tracks[:2], key=lambda t: KINDS.index(t.kind))


def geometry_targets(category: str, groups: list[int], clips: list[int], *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(V * FRAMES, len(GEOMETRY[category])) ground truth at the frames `sample` picks, in the
    order `render` lists the category's videos; and (V * FRAMES,) each frame's group."""
    ys, gs = [], []
    for label in range(len(CLASSES)):
        if CLASSES[label].category != category:
            continue
        for group in groups:
            for clip in clips:
                tracks = video_tracks(preset="ci", seed=seed, label=label, group=group, clip=clip)
                assert all(t.start == 0 and len(t) == len(tracks[0]) for t in tracks)
                idx = np.linspace(0, len(tracks[0]) - 1, FRAMES).round().astype(int)  # as `sample`
                ys.append([[f(tracks, i) for f in GEOMETRY[category].values()] for i in idx])
                gs.append(np.full(FRAMES, group))
    return np.concatenate(ys).astype(np.float64), np.concatenate(gs)


def ridge_r2(xtr: torch.Tensor, ytr: np.ndarray, gtr: np.ndarray, xva: torch.Tensor, yva: np.ndarray,
             alphas=(0.1, 1.0, 10.0, 100.0, 1000.0)) -> np.ndarray:
    """R^2 per target column of a ridge regression on standardized features, fitted on (xtr, ytr)
    with the strength of least leave-one-group-out error for that column (groups `gtr`), scored on
    (xva, yva)."""
    if ytr.ndim == 2:
        return np.array([ridge_r2(xtr, ytr[:, j], gtr, xva, yva[:, j], alphas)[0] for j in range(ytr.shape[1])])
    ytr, yva = ytr[:, None], yva[:, None]
    xtr, xva = xtr.double(), xva.double()

    def fit(x, y, alpha):
        mu, sd, ym = x.mean(0), x.std(0) + 1e-6, y.mean(0)
        z = (x - mu) / sd
        w = torch.linalg.solve(z.T @ z + alpha * torch.eye(z.shape[1], dtype=z.dtype), z.T @ (y - ym))
        return lambda q: ((q - mu) / sd) @ w + ym

    ytr_t, yva_t = torch.as_tensor(ytr), torch.as_tensor(yva)
    cv = {a: sum(float(((fit(xtr[gtr != g], ytr_t[gtr != g], a)(xtr[gtr == g]) - ytr_t[gtr == g]) ** 2).sum())
                 for g in np.unique(gtr)) for a in alphas}
    pred = fit(xtr, ytr_t, min(cv, key=cv.get))(xva)
    return (1 - ((pred - yva_t) ** 2).sum(0) / ((yva_t - yva_t.mean(0)) ** 2).sum(0)).numpy()


def render(groups: list[int], clips: list[int], *, seed: int = 0, frames: int = FRAMES) -> tuple[torch.Tensor, np.ndarray]:
    """(V, F, 3, 56, 56) uint8 frames (`probe.sample`, `frames` a video) of the videos rendered in
    memory, and (V,) labels."""
    xs, ys = [], []
    for label in range(len(CLASSES)):
        for group in groups:
            for clip in clips:
                video = render_video(preset="ci", seed=seed, label=label, group=group, clip=clip)  # (T, H, W, 3)
                xs.append(sample(torch.from_numpy(video), frames))
                ys.append(label)
    return torch.stack(xs), np.asarray(ys)


def stream_video(label: int, group: int, clip: int, modality: str, *, seed: int = 0) -> torch.Tensor:
    """One benchmark video rendered in memory, as the clip network of `modality` reads it: uint8
    (T, 3, H, W) frames (rgb), or (T, 2, H, W) DIS flow where frame f holds the field f -> f+1
    and the last frame the last field (as extraction)."""
    from actionbook.data.flow import compute_flow

    video = render_video(preset="ci", seed=seed, label=label, group=group, clip=clip)  # (T, H, W, 3)
    if modality == "rgb":
        return torch.from_numpy(video).permute(0, 3, 1, 2)                          # (T, 3, H, W)
    fields = torch.from_numpy(compute_flow(video, method="dis")).permute(0, 3, 1, 2)
    return torch.cat([fields, fields[-1:]])                                         # (T, 2, H, W)


@torch.no_grad()
def clip_features(groups: list[int], clips: list[int], modality: str, *, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """(V, SEGMENTS + 1, 512): the mean over each video's clips, then 8 evenly spaced clips' features;
    and (V,) labels. The videos are rendered in memory, as `render`'s."""
    from actionbook.data.sampling import clip_grid
    from actionbook.features import backbones as B

    net = B.backbone("r2plus1d_18", layer="pool", modality=modality, weights="ci", mode="ci")
    xs, ys = [], []
    for label in range(len(CLASSES)):
        for group in groups:
            for clip in clips:
                v = stream_video(label, group, clip, modality, seed=seed)                   # (T, C, H, W)
                top = (v.shape[-1] - 56) // 2
                v = v[..., top:top + 56, top:top + 56].float() / 255
                grid = torch.tensor(clip_grid(len(v), length=16, stride=8))                # (K, 16)
                f = torch.cat([net(v[g].transpose(0, 1)[None]) for g in grid])              # (K, 512)
                pick = np.linspace(0, len(f) - 1, SEGMENTS).round().astype(int)
                xs.append(torch.cat([f.mean(0, keepdim=True), f[pick]]))                   # (1 + SEGMENTS, 512)
                ys.append(label)
    return torch.stack(xs), np.asarray(ys)


@torch.no_grad()
def map_shape(net: torch.nn.Module, layer: str) -> tuple[int, ...]:
    """(C, h, w) of one frame's unpooled `layer` map at the probe's crop (what `features` flattens)."""
    cut = FrameBackbone(net, layer=layer, mean=torch.tensor(CI_MEAN), std=torch.tensor(CI_STD)).eval()
    return tuple(cut(torch.zeros(1, 3, CROP, CROP)).shape[1:])


class MapReader(torch.nn.Module):
    """`--reader`: each frame's (C, h, w) map read by a 1x1 convolution to `k` channels and a linear
    layer over every cell (so that it can learn where things are), then the controls' GRU head."""

    def __init__(self, channels: int, side: int, classes: int, *, k: int = 8, width: int = 64, hidden: int = 64):
        from actionbook.experiments.recurrent_residual import GRUHead

        super().__init__()
        self.shape = (channels, side, side)
        self.cells = torch.nn.Sequential(torch.nn.Conv2d(channels, k, 1), torch.nn.ReLU(), torch.nn.Flatten(),
                                         torch.nn.Linear(k * side * side, width), torch.nn.ReLU())
        self.head = GRUHead(width, hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C h w)
        b, t, _ = x.shape
        z = self.cells(x.reshape(b * t, *self.shape)).reshape(b, t, -1)  # (B, T, width)
        return self.head(z)                                              # (B, classes)


def relation_reader(channels: int, side: int, classes: int, *, hidden: int = 64) -> torch.nn.Module:
    """`--relation`: a relation network on each frame's map cells and their places
    (`actionbook.models.relation_network.FrameRelations`), then the controls' GRU head."""
    from actionbook.experiments.recurrent_residual import GRUHead
    from actionbook.models.relation_network import FrameRelations

    rn = FrameRelations(channels, side)
    return torch.nn.Sequential(rn, GRUHead(rn.f[0].out_features, hidden, classes))


def gru_within_category(xtr: torch.Tensor, ytr: np.ndarray, xva: torch.Tensor, yva: np.ndarray,
                        seeds=(0, 1, 2), *, make=None, categories=CATEGORIES) -> dict[str, float]:
    """Validation accuracy of the controls' GRU head per coarse category (4-way), mean over `seeds`;
    `make(inputs, classes)` builds another model (`MapReader`) trained the same way."""
    from actionbook import engine
    from actionbook.controls import ControlsConfig
    from actionbook.experiments.recurrent_residual import GRUHead

    cfg, out = ControlsConfig(), {c: float("nan") for c in CATEGORIES}
    for cat in categories:
        mine = [i for i, c in enumerate(CLASSES) if c.category == cat]
        remap = {c: j for j, c in enumerate(mine)}
        tr, va = np.isin(ytr, mine), np.isin(yva, mine)
        a, b = xtr[tr].float(), xva[va].float()                     # (V, F, D)
        mu, sd = a.flatten(0, 1).mean(0), a.flatten(0, 1).std(0) + 1e-5
        a, b = (a - mu) / sd, (b - mu) / sd
        ta, tb = (torch.as_tensor([remap[y] for y in ys]) for ys in (ytr[tr], yva[va]))
        accs = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = make(a.shape[-1], 4) if make else GRUHead(a.shape[-1], cfg.hidden, 4)
            tc = engine.TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                    weight_decay=cfg.weight_decay, seed=seed, device="cpu")
            engine.fit(model, engine.TensorVideoDataset(a, ta), None, tc, progress=False)
            accs.append(float(engine.evaluate(model, engine.TensorVideoDataset(b, tb), device="cpu").video["top1"]))
        out[cat] = float(np.mean(accs))
    return out


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
    ap.add_argument("--fit-clips", type=int, default=2,
                    help="clips per fit group and class (default 2, the benchmark's number before generator 1.6, which has 4; every clip is rendered in memory)")
    ap.add_argument("--clips", choices=("rgb", "flow"), help="the ci clip network of this stream instead")
    ap.add_argument("--gru", action="store_true", help="also the controls' GRU head over the 16 frames, or with --clips the 8 clips (3 seeds)")
    ap.add_argument("--reader", action="store_true",
                    help="also a per-frame map reader before the GRU (one `_map` layer; 3 seeds)")
    ap.add_argument("--relation", action="store_true",
                    help="also a relation network over each frame's map cells before the GRU (one `_map` layer; 3 seeds)")
    ap.add_argument("--categories", nargs="+", choices=CATEGORIES, default=list(CATEGORIES), metavar="CATEGORY",
                    help="the categories --gru, --reader and --relation train on (default all)")
    ap.add_argument("--frames", type=int, default=FRAMES,
                    help=f"evenly spaced frames a video (default {FRAMES}; at least {SEGMENTS}): what the probes and heads read")
    ap.add_argument("--interaction-reach", type=float, metavar="FRACTION",
                    help="render the interaction classes with the gap opening up to this fraction of the frame "
                         "beyond touching (the benchmark: 0.30)")
    ap.add_argument("--geometry", action="store_true",
                    help="single frames: R^2 of the order object's size and the interaction pair's gap and midpoint")
    args = ap.parse_args()
    held_out = set(test_groups("ci", 1))
    fit_clips = list(range(1, args.fit_clips + 1))
    if held_out & set(args.fit_groups + args.val_groups):
        ap.error(f"groups {sorted(held_out)} are split 1's test groups: never fit or validate on them")
    if args.frames < SEGMENTS or (args.geometry and args.frames != FRAMES):
        ap.error(f"--frames must be at least {SEGMENTS}, and {FRAMES} with --geometry")
    if (args.reader or args.relation) and (len(args.layers) != 1 or not args.layers[0].endswith("_map")):
        ap.error("--reader and --relation read one unpooled map: give one `_map` layer, e.g. --layers layer2.1_map")
    if args.interaction_reach is not None:
        from actionbook.data import _render as R  # in memory only: nothing here writes a video

        R.SCENES.update(R.interaction_scenes(args.interaction_reach))
    if args.clips:
        start = time.perf_counter()
        (ftr, ytr), (fva, yva) = (clip_features(g, c, args.clips) for g, c in
                                  ((args.fit_groups, fit_clips), (args.val_groups, list(range(1, args.val_clips + 1)))))
        print(f"fit: groups {args.fit_groups} clips 1-{args.fit_clips} ({len(ytr)} videos); validation: groups {args.val_groups} "
              f"clips 1-{args.val_clips} ({len(yva)} videos); the ci {args.clips} clip network; 4-way within each "
              f"category, chance 25%")
        print(f"{'probe':8s}" + "".join(f"{c:>16s}" for c in CATEGORIES))
        for name, (a, b) in {"mean": (ftr[:, 0], fva[:, 0]), "ordered": (ftr[:, 1:].flatten(1), fva[:, 1:].flatten(1))}.items():
            acc = within_category(a, ytr, b, yva)
            print(f"{name:8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
        if args.gru:  # the controls' GRU head over the 8 clips, in order
            acc = gru_within_category(ftr[:, 1:], ytr, fva[:, 1:], yva)
            print(f"{'GRU':8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
        print(f"({time.perf_counter() - start:.0f} s)")
        return
    torch.manual_seed(0)
    state = torch.load(args.weights, map_location="cpu", weights_only=True) if args.weights else P.ci_state_dict()
    net = ci_nets.ci_resnet18(num_classes=1, width=ci_nets.width_of(state))
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    net.eval()
    start = time.perf_counter()
    xtr, ytr = render(args.fit_groups, fit_clips, frames=args.frames)
    xva, yva = render(args.val_groups, list(range(1, args.val_clips + 1)), frames=args.frames)
    ftr, fva = features(net, xtr, args.layers), features(net, xva, args.layers)  # (V, F, D)
    if args.geometry:
        print(f"R^2 of ridge regressions on single frames of groups {args.fit_groups} clips 1-{args.fit_clips} (fit) and {args.val_groups} clips "
              f"1-{args.val_clips} (validation); layers {'+'.join(args.layers)}; weights {args.weights or 'ci'}")
        for cat, names in GEOMETRY.items():
            mine = [i for i, y in enumerate(ytr) if CLASSES[y].category == cat], \
                   [i for i, y in enumerate(yva) if CLASSES[y].category == cat]
            (ttr, gtr), (tva, _) = (geometry_targets(cat, args.fit_groups, fit_clips),
                                    geometry_targets(cat, args.val_groups, list(range(1, args.val_clips + 1))))
            r2 = ridge_r2(ftr[mine[0]].flatten(0, 1), ttr, gtr, fva[mine[1]].flatten(0, 1), tva)
            print(f"{cat:16s}" + "".join(f"  {n} {v:.3f}" for n, v in zip(names, r2)), flush=True)
        print(f"({time.perf_counter() - start:.0f} s)")
        return
    seg = lambda z: torch.cat([p.mean(1) for p in z.tensor_split(SEGMENTS, dim=1)], 1)  # noqa: E731  (V, SEGMENTS * D)
    print(f"fit: groups {args.fit_groups} clips 1-{args.fit_clips} ({len(ytr)} videos); validation: groups {args.val_groups} "
          f"clips 1-{args.val_clips} ({len(yva)} videos); layers {'+'.join(args.layers)}; "
          f"weights {args.weights or 'ci'}; {args.frames} frames a video; interaction reach {args.interaction_reach or 'as generated'}; "
          f"4-way within each category, chance 25%")
    print(f"{'probe':8s}" + "".join(f"{c:>16s}" for c in CATEGORIES))
    for name, (a, b) in {"mean": (ftr.mean(1), fva.mean(1)), "ordered": (seg(ftr), seg(fva))}.items():
        acc = within_category(a, ytr, b, yva)
        print(f"{name:8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
    cats = tuple(args.categories)
    if args.gru:
        acc = gru_within_category(ftr, ytr, fva, yva, categories=cats)
        print(f"{'GRU':8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
    if args.reader or args.relation:
        channels, side, _ = map_shape(net, args.layers[0])
    if args.reader:
        acc = gru_within_category(ftr, ytr, fva, yva, make=lambda d, n: MapReader(channels, side, n), categories=cats)
        print(f"{'reader':8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
    if args.relation:
        acc = gru_within_category(ftr, ytr, fva, yva, make=lambda d, n: relation_reader(channels, side, n), categories=cats)
        print(f"{'relation':8s}" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES), flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
