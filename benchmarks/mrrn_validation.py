"""Decide MRRN's ci learning rates on held-out *training* groups, never on the test groups.

The ci preset scales the paper's learning rates (1e-5 for the high level, 1e-4 for the low and
mid levels, Sec. 5.2) up to 1e-3 / 1e-2, chosen on the training loss alone. Its heads still end
training near chance loss (`mrrn.CONFIGS["ci"]`'s comment). This script asks, on the chapter's
own cached features (`mrrn.features`, extracted if missing), whether another learning rate learns
the benchmark better, where the answer may inform the preset:

- *fit* videos: the training videos of groups `--fit-groups` (default g03-g06);
- *validation* videos: the training videos of groups `--val-groups` (default g07-g08);
  the test groups (g01-g02) are never read.

For every level and every learning rate in `--lrs`, the chapter's default RRN (its size, pooling,
dropout, epochs and lr schedule: `mrrn.Runs.model`, `mrrn.Runs.train_config` with only `lr`
replaced) is trained on the fit videos' clips for each of `--seeds` seeds and scored on the
validation videos (clip scores averaged per video, as the chapter's test). Printed: the
validation video accuracy (mean and sd over seeds), the last epoch's training loss, seconds.
Then the chapter's fusion (Eq. 10, its level weights) of the best learning rate per level.

    python benchmarks/mrrn_validation.py
    python benchmarks/mrrn_validation.py --lrs 1e-3 1e-2 --seeds 0 1 2 3 4

Not a test; it decides nothing by itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from actionbook import engine
from actionbook.experiments import chapter, mrrn
from actionbook.models.mrrn import level_fusion
from actionbook.seed import seed_everything


def _split(fs, groups: set[str]) -> list[int]:
    return [i for i, g in enumerate(fs.groups) if g in groups]


def _dataset(fs, idx: list[int], *, train: bool) -> chapter.VideoFeatures:
    return chapter.VideoFeatures([[fs.features[i] for i in idx]], [fs.labels[i] for i in idx],
                                 clips=[fs.index[i] for i in idx], train=train)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit-groups", nargs="+", default=["g03", "g04", "g05", "g06"])
    ap.add_argument("--val-groups", nargs="+", default=["g07", "g08"])
    ap.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 3e-3, 1e-2, 3e-2])
    ap.add_argument("--levels", nargs="+", default=list(mrrn.LEVELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    cfg = mrrn.config("ci")
    feats = mrrn.features(cfg)
    runs = mrrn.Runs(feats, cfg, cache=False)
    train_sets = {lv: feats[lv]["train"] for lv in a.levels}
    some = train_sets[a.levels[0]]
    fit, val = _split(some, set(a.fit_groups)), _split(some, set(a.val_groups))
    if not fit or not val:
        raise SystemExit(f"no training videos in groups {a.fit_groups} or {a.val_groups}: "
                         f"the training groups are {sorted(set(some.groups))}")
    y_val = torch.tensor([some.labels[i] for i in val])
    print(f"MRRN ci, fit {len(fit)} videos ({' '.join(a.fit_groups)}), validation {len(val)} videos "
          f"({' '.join(a.val_groups)}), chance {100 / len(some.classes):.0f} %; "
          f"preset lr high {cfg.lr:g}, low/mid {cfg.lr_shallow:g}\n")
    print("| level | lr | validation % (video) | sd | train loss (last epoch) | s per run |")
    print("| --- | --- | --- | --- | --- | --- |")
    scores: dict[tuple[str, float], list[torch.Tensor]] = {}
    for level in a.levels:
        fs = train_sets[level]
        if [fs.video_ids[i] for i in val] != [some.video_ids[i] for i in val]:
            raise SystemExit("the levels' training videos differ: extract every level from the same split")
        fit_ds, val_ds = _dataset(fs, fit, train=True), _dataset(fs, val, train=False)
        for lr in a.lrs:
            accs, losses, secs = [], [], []
            for seed in a.seeds:
                key = runs.default(level, seed)
                tc = dataclasses.replace(runs.train_config(key), lr=lr)
                seed_everything(seed)
                net = runs.model(key)
                t0 = time.perf_counter()
                hist = engine.fit(net, fit_ds, None, tc, progress=False)
                secs.append(time.perf_counter() - t0)
                r = engine.evaluate(net, val_ds, batch_size=cfg.eval_batch_size, device="cpu")
                accs.append(100 * r.video["top1"])
                losses.append(hist[-1]["train_loss"])
                scores.setdefault((level, lr), []).append(torch.as_tensor(r.video_scores))
            print(f"| {level} | {lr:g} | {np.mean(accs):.1f} | {np.std(accs, ddof=1) if len(accs) > 1 else 0:.1f} "
                  f"| {np.mean(losses):.2f} | {np.mean(secs):.0f} |", flush=True)

    if set(a.levels) == set(mrrn.LEVELS):
        print("\n| fusion (Eq. 10) | validation % | sd |\n| --- | --- | --- |")
        for lr in a.lrs:
            accs = []
            for s in range(len(a.seeds)):
                fused = level_fusion([scores[(lv, lr)][s] for lv in mrrn.LEVELS], weights=cfg.level_weights,
                                     softmax=False)
                accs.append(100 * float((fused.argmax(1) == y_val).float().mean()))
            print(f"| every level at lr {lr:g} | {np.mean(accs):.1f} | {np.std(accs, ddof=1) if len(accs) > 1 else 0:.1f} |")


if __name__ == "__main__":
    main()
