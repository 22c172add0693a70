"""Decide on held-out *training* groups: should the ci clip networks be fine-tuned on the benchmark?

The Res-LSTM paper's final features come from TSN's two streams, which are fine-tuned on UCF-101's
training split before any feature is extracted; issue 11 (point 2) allows the ci stand-ins the same
(or pretraining on disjoint generated data, which is what the book does now: its clip networks
have never seen a benchmark class). This script asks, before the book changes, what fine-tuning
the top of each ci clip network on the benchmark's training groups would give the chapters'
heads. For split 1 (test groups g01-g02, never read here):

- *fit* videos: groups `--fit-groups` (default g03-g06), clips 1-`--fit-clips` (4, the
  benchmark's own), rendered in memory by the benchmark's generator;
- *validation* videos: groups `--val-groups` (g07-g08), clips 1-`--val-clips` (6).

Fine-tuning, as C3D's and I3D's on UCF-101: every 16-frame clip of the fit videos at stride 8
(the Res-LSTM chapter's grid) labelled with its video's class (20-way), one random 56 x 56 crop
per clip, the network from the stream's own `train_from` stage up (the stages its video
pretraining trained: RGB layer3-4, flow layer2-4) and a new 20-way head trained with Adam
(`--lr`, cosine decay, `--epochs`, batch 32, weight decay 1e-4) on the frozen lower stages'
outputs, computed once (as `pretrain._train_clips` does). With `--consensus K`, TSN's own
training instead: each step scores K clips of a video, one from each of K equal parts of its grid,
and the loss reads their mean score. Each recipe is fixed before its first run and not tuned on
the validation groups.

Features, before and after: every clip's pooled output on the centre crop; two linear probes,
fitted on the fit videos and scored on the validation videos, 20-way and within each coarse
category (4-way, chance 25%): *mean* (the average of a video's clips) and *ordered* (8 evenly
spaced clips concatenated), as `validation_probe.py --clips`.

Adopt rule, written before the first run: fine-tuning is adopted for a stream when its better
20-way probe on the validation videos gains more than two binomial standard errors of the
baseline's (240 videos: about 6 points) and no category's better 4-way probe loses more than
12.5 points (two SE on 48 videos).

    python benchmarks/finetune_validation.py --clips rgb
    python benchmarks/finetune_validation.py --clips flow
    python benchmarks/finetune_validation.py --clips rgb --consensus 3 --epochs 8

Runs and the decision: `benchmarks/decisions/0027-fine-tuning-clip-networks-not-adopted.md`.

Not a test; it decides nothing by itself, but a choice it informs is made on these groups only.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from actionbook.data.generate import CATEGORIES, CLASSES, test_groups
from actionbook.data.sampling import clip_grid
from actionbook.features import backbones as B
from actionbook.features import pretrain as P

from probe import SEGMENTS, linear_probe
from validation_probe import stream_video, within_category

LENGTH, STRIDE, CROP = 16, 8, 56
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def video_clips(groups: list[int], clips: list[int], modality: str, *, seed: int = 0) -> tuple[list[torch.Tensor], np.ndarray]:
    """Every video's clip grid as uint8 (K, C, 16, H, W) (uncropped, so training can crop at
    random), and (V,) labels (`validation_probe.stream_video`: RGB frames or DIS flow)."""
    xs, ys = [], []
    for label in range(len(CLASSES)):
        for group in groups:
            for clip in clips:
                v = stream_video(label, group, clip, modality, seed=seed)                   # (T, C, H, W)
                grid = torch.tensor(clip_grid(len(v), length=LENGTH, stride=STRIDE))         # (K, 16)
                xs.append(torch.stack([v[g].transpose(0, 1) for g in grid]))                 # (K, C, 16, H, W)
                ys.append(label)
    return xs, np.asarray(ys)


def crop(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    return x[..., dy:dy + CROP, dx:dx + CROP].float() / 255


@torch.no_grad()
def pooled(net: B.ClipBackbone, videos: list[torch.Tensor]) -> torch.Tensor:
    """(V, 1 + SEGMENTS, D): each video's mean clip feature, then 8 evenly spaced clips' (centre crop)."""
    out = []
    for v in videos:
        c = (v.shape[-1] - CROP) // 2
        f = torch.cat([net(b) for b in crop(v, c, c).split(32)])                             # (K, D)
        pick = np.linspace(0, len(f) - 1, SEGMENTS).round().astype(int)
        out.append(torch.cat([f.mean(0, keepdim=True), f[pick]]))
    return torch.stack(out)


def finetune(net: B.ClipBackbone, videos: list[torch.Tensor], labels: np.ndarray, *, train_from: str,
             epochs: int, lr: float, consensus: int = 0, seed: int = 0) -> B.ClipBackbone:
    """A copy of `net` whose stages from `train_from` up are trained, with a new 20-way head, on
    every clip of `videos` labelled with its video's class (batches of 32 clips); or, with
    `consensus` = k > 0, TSN's segment consensus: each step scores k clips of a video, one drawn
    at random from each of k equal parts of its clip grid, and the loss reads their mean score
    (batches of 16 videos). Returns the copy (pooled features)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = copy.deepcopy(net)
    k = STAGES.index(train_from)
    frozen, trained = torch.nn.Sequential(*net.body[:k]).eval(), torch.nn.Sequential(*net.body[k:])
    lengths = [len(v) for v in videos]
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])                                  # each video's first clip
    clips = torch.cat(videos)                                                                # (N, C, 16, H, W)
    margin = clips.shape[-1] - CROP
    crops = torch.randint(0, margin + 1, (len(clips), 2), generator=g)
    with torch.no_grad():
        h = torch.cat([frozen((torch.stack([crop(c, dy, dx) for c, (dy, dx) in zip(clips[i:i + 32], crops[i:i + 32].tolist())])
                               - net.mean) / net.std) for i in range(0, len(clips), 32)])  # (N, C', T', h, w)
        dim = trained.eval()(h[:1]).shape[1]                                                 # the pooled width
    del clips
    head = torch.nn.Linear(dim, len(CLASSES))
    for p in trained.parameters():
        p.requires_grad_(True)
    # what one step draws: clips (each labelled with its video's class), or videos (k clips each)
    if consensus:
        y, units, bs, unit = torch.as_tensor(labels, dtype=torch.long), len(videos), 16, "videos"
    else:
        y, units, bs, unit = torch.as_tensor(np.repeat(labels, lengths), dtype=torch.long), len(h), 32, "clips"
    opt = torch.optim.Adam([*trained.parameters(), *head.parameters()], lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * ((units + bs - 1) // bs))
    for epoch in range(epochs):
        trained.train()
        order, total, right = torch.randperm(units, generator=g), 0.0, 0
        for i in range(0, units, bs):
            batch = order[i:i + bs]
            rows = _segment_picks(batch.tolist(), lengths, first, consensus, g) if consensus else batch
            out = head(trained(h[rows]).mean(dim=(2, 3, 4)))                                 # (rows, 20)
            if consensus:
                out = out.view(len(batch), consensus, -1).mean(1)                            # (B, 20): the consensus
            loss = F.cross_entropy(out, y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
            right += int((out.argmax(1) == y[batch]).sum())
        print(f"  fine-tuning epoch {epoch + 1}: loss {total / units:.3f}, training {unit} {100 * right / units:.1f}%",
              flush=True)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def _segment_picks(videos: list[int], lengths: list[int], first: np.ndarray, k: int, g: torch.Generator) -> list[int]:
    """TSN's sampling: for each video, one clip drawn at random from each of k equal parts of its
    clip grid; indices into the clips of every video, in video order."""
    pick = []
    for j in videos:
        lo = np.floor(np.linspace(0, lengths[j], k + 1)).astype(int)
        pick += [int(first[j]) + int(torch.randint(a, max(b, a + 1), (1,), generator=g)) for a, b in zip(lo[:-1], lo[1:])]
    return pick


def report(name: str, ftr: torch.Tensor, ytr: np.ndarray, fva: torch.Tensor, yva: np.ndarray) -> dict[str, dict[str, float]]:
    rows = {}
    for probe, (a, b) in {"mean": (ftr[:, 0], fva[:, 0]), "ordered": (ftr[:, 1:].flatten(1), fva[:, 1:].flatten(1))}.items():
        _, pred = linear_probe(a, torch.as_tensor(ytr), b)
        acc = within_category(a, ytr, b, yva)
        acc["20-way"] = float((pred == yva).mean())
        rows[probe] = acc
        print(f"{name:12s}{probe:8s}{100 * acc['20-way']:9.1f}%" + "".join(f"{100 * acc[c]:15.1f}%" for c in CATEGORIES),
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", choices=("rgb", "flow"), required=True)
    ap.add_argument("--fit-groups", type=int, nargs="+", default=[3, 4, 5, 6])
    ap.add_argument("--val-groups", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--fit-clips", type=int, default=4)
    ap.add_argument("--val-clips", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--consensus", type=int, default=0, metavar="K",
                    help="TSN's segment consensus over K clips a video instead of one label per clip")
    ap.add_argument("--train-from", choices=STAGES[1:], help="default: the stream's video-pretraining recipe")
    args = ap.parse_args()
    if set(test_groups("ci", 1)) & set(args.fit_groups + args.val_groups):
        ap.error(f"groups {sorted(test_groups('ci', 1))} are split 1's test groups: never fit or validate on them")
    start = time.perf_counter()
    train_from = args.train_from or P.clip_config(args.clips).train_from
    net = B.backbone("r2plus1d_18", layer="pool", modality=args.clips, weights="ci", mode="ci")
    fit, ytr = video_clips(args.fit_groups, list(range(1, args.fit_clips + 1)), args.clips)
    val, yva = video_clips(args.val_groups, list(range(1, args.val_clips + 1)), args.clips)
    print(f"fit: groups {args.fit_groups} clips 1-{args.fit_clips} ({len(ytr)} videos, {sum(map(len, fit))} clips); "
          f"validation: groups {args.val_groups} clips 1-{args.val_clips} ({len(yva)} videos); the ci {args.clips} "
          f"clip network; fine-tuned from {train_from}, {args.epochs} epochs, Adam lr {args.lr}"
          f"{f', segment consensus over {args.consensus} clips' if args.consensus else ', one label a clip'}; "
          f"20-way (chance 5%) and 4-way within each category (chance 25%)  ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"{'network':12s}{'probe':8s}{'20-way':>10s}" + "".join(f"{c:>16s}" for c in CATEGORIES))
    report("pretrained", pooled(net, fit), ytr, pooled(net, val), yva)
    tuned = finetune(net, fit, ytr, train_from=train_from, epochs=args.epochs, lr=args.lr, consensus=args.consensus)
    print(f"{'network':12s}{'probe':8s}{'20-way':>10s}" + "".join(f"{c:>16s}" for c in CATEGORIES))
    report("fine-tuned", pooled(tuned, fit), ytr, pooled(tuned, val), yva)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
