"""How the recurrent residual chapter's ci schedule was chosen: training loss and held-out accuracy.

Not a timing but a settings check, as `probe.py`. It trains the chapter's networks (and Table 1's
heads) exactly as `actionbook.experiments.recurrent_residual.Runs` does, on the ci benchmark's
training videos of split 1 *minus* the held-out groups (default g07, g08: 160 training, 80
validation videos, group-disjoint as UCF-101's splits), and prints, per network, the training
loss and the validation video accuracy after every epoch, the batch and the seconds. No test
video is read. `CONFIGS["ci"].notes` quote its figures.

    python benchmarks/recurrent_residual_validation.py                     # the ci preset, seed 0
    python benchmarks/recurrent_residual_validation.py --set epochs 10 --set lr 1e-4 --set update_fraction 0.01
    python benchmarks/recurrent_residual_validation.py --set step 4 --runs "Block4,identity,1" "Block2,linear,2"
    python benchmarks/recurrent_residual_validation.py --heads              # Table 1's heads as well
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from actionbook import engine
from actionbook.data.sampling import subsequences
from actionbook.experiments import recurrent_residual as X
from actionbook.features.cache import FeatureSet
from actionbook.seed import seed_everything


def split(fs: FeatureSet, held_out: set[str]) -> tuple[FeatureSet, FeatureSet]:
    """The training videos outside `held_out` groups, and those inside them."""
    def sub(ix: list[int]) -> FeatureSet:
        pick = lambda xs: [xs[i] for i in ix]  # noqa: E731
        return replace(fs, features=pick(fs.features), frames=pick(fs.frames), index=pick(fs.index),
                       video_ids=pick(fs.video_ids), labels=pick(fs.labels), label_sets=pick(fs.label_sets),
                       groups=pick(fs.groups))
    return (sub([i for i, g in enumerate(fs.groups) if g not in held_out]),
            sub([i for i, g in enumerate(fs.groups) if g in held_out]))


def network(cfg: X.Config, key: X.RunKey, held_out: set[str]) -> dict:
    unit = X.Runs(cfg, cache=False).first_unit(key)
    tr, va = split(X.maps(cfg, unit)["train"], held_out)
    runs = X.Runs(cfg, cache=False, maps={unit: {"train": tr, "test": va}})  # "test" = the held-out videos
    train_cfg = runs.train_config(key, sum(len(subsequences(len(x), T=key.context, step=1)) for x in tr.features))
    train_ds, val_ds = runs.datasets(key)
    seed_everything(key.seed)
    model = runs.model(key)
    t0 = time.perf_counter()
    h = engine.fit(model, train_ds, val_ds, train_cfg, progress=False)
    return {"run": key.condition, "first unit": unit, "batch": train_cfg.batch_size, "lr": train_cfg.lr,
            "train_loss": [round(r["train_loss"], 3) for r in h],
            "val_video_top1": [round(r["val_video_top1"], 3) for r in h], "seconds": round(time.perf_counter() - t0, 1)}


def heads(cfg: X.Config, held_out: set[str]) -> list[dict]:
    pooled = X.pooled(cfg)
    runs = X.Runs(cfg, cache=False, pooled={b: dict(zip(("train", "test"), split(pooled[b]["train"], held_out)))
                                            for b in X.BLOCKS})
    return [{"head": k.condition, "val_video_top1": round(runs.head(k).video["top1"], 3)}
            for b in reversed(X.BLOCKS) for m in X.METHODS for k in [X.HeadKey(b, m, True, 0)]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", nargs=2, action="append", default=[], metavar=("FIELD", "VALUE"),
                    help="override a field of CONFIGS['ci'] (VALUE read as JSON, else as a string)")
    ap.add_argument("--runs", nargs="*", default=["Block4,identity,1", "Block4,identity,2"],
                    help="position,skip,context of each network (seed 0)")
    ap.add_argument("--held-out", nargs="*", default=["g07", "g08"], help="training groups held out for validation")
    ap.add_argument("--heads", action="store_true", help="Table 1's heads (z-normalised) as well")
    args = ap.parse_args()

    def value(v: str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v

    cfg = replace(X.config("ci"), **{k: value(v) for k, v in args.set})
    torch.set_num_threads(cfg.threads or 1)
    held_out = set(args.held_out)
    if args.heads:
        for row in heads(cfg, held_out):
            print(json.dumps(row), flush=True)
    for r in args.runs:
        p, k, t = r.split(",")
        print(json.dumps(network(cfg, X.RunKey(p, k, int(t), 0), held_out)), flush=True)


if __name__ == "__main__":
    main()
