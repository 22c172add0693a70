"""Decide the Res-LSTM's ci number of epochs on held-out *training* groups, never on the test groups.

The paper gives no number of epochs (nor a batch size); the ci preset trains 25 epochs of batch 64
with the paper's RMSProp at lr 1e-3. Its training curves (the run cache's histories, no test video)
show the flow stream still learning at the last epoch (training accuracy 80-85 %, rising about 7
points every 5 epochs) where the RGB stream has fitted its videos (98-99 %). This script asks, on
the chapter's own cached clip features (`res_lstm.features`), whether training longer learns the
benchmark better, where the answer may inform the preset:

- *fit* videos: the training videos of groups `--fit-groups` (default g03-g06);
- *validation* videos: the training videos of groups `--val-groups` (default g07-g08);
  the test groups (g01-g02) are never read.

The chapter's own code does the rest: `res_lstm.Runs` on the fit videos (its PCA fitted on them
alone) with the validation videos in the place of the test set, the base Res-LSTM of each stream
(`Runs.base`) and the final model (late product fusion, `final_scores`), for every number of
epochs in `--epochs` and every seed in `--seeds`. Printed: validation video accuracy of each
stream and of the final model (mean and sd over seeds), the last epoch's training accuracy, and
two binomial standard errors of the preset's final-model accuracy on the validation videos.

    python benchmarks/res_lstm_validation.py
    python benchmarks/res_lstm_validation.py --epochs 25 50 --seeds 0 1 2

Not a test; it decides nothing by itself (the rule it was run under, and its
result: benchmarks/decisions/0035-res-lstm-ci-epochs.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch

from actionbook import engine, metrics
from actionbook.experiments import res_lstm
from actionbook.features.cache import FeatureSet
from actionbook.seed import seed_everything


def _take(fs: FeatureSet, groups: set[str]) -> FeatureSet:
    """The videos of `fs` in `groups`, as a FeatureSet of the same entry (the same subset)."""
    idx = [i for i, g in enumerate(fs.groups) if g in groups]
    pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
    return dataclasses.replace(fs, features=pick(fs.features), frames=pick(fs.frames), index=pick(fs.index),
                               video_ids=pick(fs.video_ids), labels=pick(fs.labels),
                               label_sets=pick(fs.label_sets), groups=pick(fs.groups))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit-groups", nargs="+", default=["g03", "g04", "g05", "g06"])
    ap.add_argument("--val-groups", nargs="+", default=["g07", "g08"])
    ap.add_argument("--epochs", nargs="+", type=int, default=[25, 50, 100])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the chapter trains on one)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    cfg = res_lstm.config("ci")
    feats = res_lstm.features(cfg, progress=False)
    grids = {}
    for stream, sets in feats.grids.items():
        train = sets["train"]
        fit, val = _take(train, set(a.fit_groups)), _take(train, set(a.val_groups))
        if not len(fit) or not len(val):
            raise SystemExit(f"no training videos in groups {a.fit_groups} or {a.val_groups}: "
                             f"the training groups are {sorted(set(train.groups))}")
        grids[stream] = {"train": fit, "test": val}  # the validation videos stand where the test set does
    held = dataclasses.replace(feats, grids=grids, test_paths=[])
    n_val = len(grids["rgb"]["test"])
    print(f"Res-LSTM ci, fit {len(grids['rgb']['train'])} videos ({' '.join(a.fit_groups)}), validation "
          f"{n_val} videos ({' '.join(a.val_groups)}), chance {100 / len(feats.classes):.0f} %; preset "
          f"{cfg.epochs} epochs of batch {cfg.batch_size}, lr {cfg.lr:g}; seeds {a.seeds}\n")
    print("| epochs | RGB % | flow % | final model (late product) % | train acc RGB / flow (last epoch) | s per run |")
    print("| --- | --- | --- | --- | --- | --- |")
    final_means = {}
    for epochs in a.epochs:
        runs = res_lstm.Runs(held, dataclasses.replace(cfg, epochs=epochs), cache=False)
        y = runs.labels("test")
        acc: dict[str, list[float]] = {"rgb": [], "flow": [], "final": []}
        train_acc: dict[str, list[float]] = {"rgb": [], "flow": []}
        secs = []
        for seed in a.seeds:
            for stream in ("rgb", "flow"):
                # what `RunCache.get` does for a run (one thread, weights seeded, fit, evaluate), kept in
                # memory with its history: the last epoch's training accuracy says whether it still learns
                key = runs.base(stream=stream, seed=seed)
                train_ds, val_ds = runs.datasets(key)
                seed_everything(seed)
                net = runs.model(key)
                t0 = time.perf_counter()
                hist = engine.fit(net, train_ds, None, dataclasses.replace(runs.cfg.train_config, seed=seed),
                                  progress=False)
                secs.append(time.perf_counter() - t0)
                r = engine.evaluate(net, val_ds, batch_size=cfg.eval_batch_size, device="cpu")
                runs.cache.results[key] = r  # `final_scores` fuses the two streams' results from here
                acc[stream].append(100 * r.video["top1"])
                train_acc[stream].append(100 * hist[-1]["train_acc"])
            acc["final"].append(100 * metrics.topk_accuracy(res_lstm.final_scores(runs, seed=seed), y, k=1))
        m = {k: (np.mean(v), np.std(v, ddof=1) if len(v) > 1 else 0.0) for k, v in acc.items()}
        final_means[epochs] = m["final"][0]
        print(f"| {epochs} | {m['rgb'][0]:.1f} ± {m['rgb'][1]:.1f} | {m['flow'][0]:.1f} ± {m['flow'][1]:.1f} "
              f"| {m['final'][0]:.1f} ± {m['final'][1]:.1f} | {np.mean(train_acc['rgb']):.0f} / {np.mean(train_acc['flow']):.0f} "
              f"| {np.mean(secs):.1f} |", flush=True)
    if cfg.epochs in final_means:
        p = final_means[cfg.epochs] / 100
        print(f"\ntwo binomial standard errors of the preset's final model on {n_val} validation videos: "
              f"{200 * math.sqrt(p * (1 - p) / n_val):.1f} points")


if __name__ == "__main__":
    main()
