"""How many epochs does the ci pretraining need? Held-out accuracy of recipe variants.

The ci ResNet-18 is pretrained on generated stills (`actionbook.features.pretrain`); its
recipe is decided on the pretraining's own held-out stills, which share no style with the
benchmark, never on the benchmark's videos or a chapter's result. This script trains the
default recipe with the given changes, each into a temporary folder (the book's cache is
not touched), and prints held-out and training accuracy (main object's kind, 6-way), the
held-out accuracy after every epoch, and the time.

    python benchmarks/pretrain_recipe.py --epochs 4 8              # two runs
    python benchmarks/pretrain_recipe.py --epochs 4 --batch-size 32 --lr 1e-3

Every combination of the given values is run, one after another, on `--threads` threads.
Not a test: a run takes minutes (about 100 s per 4 epochs on 2 quiet cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from pathlib import Path

import torch

from actionbook.features import pretrain as P


def main() -> None:
    d = P.PretrainConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[d.epochs])
    ap.add_argument("--batch-size", type=int, nargs="+", default=[d.batch_size])
    ap.add_argument("--lr", type=float, nargs="+", default=[d.lr])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'epochs':>6} {'batch':>5} {'lr':>8} {'held-out %':>10} {'train %':>8} {'s':>6}  held-out % after each epoch")
    for epochs, batch, lr in itertools.product(args.epochs, args.batch_size, args.lr):
        cfg = dataclasses.replace(d, epochs=epochs, batch_size=batch, lr=lr)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            r = P.pretrain(cfg, root=Path(tmp), progress=False)
            seconds = time.perf_counter() - start
        curve = " ".join(f"{100 * c['test_accuracy']:.0f}" for c in r["curve"])
        print(f"{epochs:6d} {batch:5d} {lr:8.1e} {100 * r['test_accuracy']:10.1f} {100 * r['train_accuracy']:8.1f} "
              f"{seconds:6.0f}  {curve}", flush=True)


if __name__ == "__main__":
    main()
