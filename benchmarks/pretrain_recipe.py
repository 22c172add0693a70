"""How many epochs does the ci pretraining need? Held-out accuracy of recipe variants.

The ci ResNet-18 is pretrained on generated stills (`actionbook.features.pretrain`); its
recipe is decided on the pretraining's own held-out stills, which share no style with the
benchmark, never on the benchmark's videos or a chapter's result. This script trains the
default recipe with the given changes, each into a temporary folder (the book's cache is
not touched), and prints held-out and training accuracy (main object's kind, 6-way), the
held-out accuracy after every epoch, and the time.

    python benchmarks/pretrain_recipe.py --epochs 4 8              # two runs
    python benchmarks/pretrain_recipe.py --epochs 4 --batch-size 32 --lr 1e-3
    python benchmarks/pretrain_recipe.py --layout-weight 0 1 --keep /tmp/weights   # then validation_probe.py --weights

`--keep DIR` keeps each run's weights and report in DIR (by its key) instead of a temporary folder.

With `--clips rgb` or `--clips flow`, the same for the ci video pretraining of that stream's 3D
network (`pretrain.pretrain_clips`, on generated motion clips; 10-way, with `--train-from` the
lowest stage trained): it prints the held-out accuracy, the accuracy on the held-out clips played
backwards (labelled with their class's reverse), and the training accuracy. Each run inflates the
cached ci ResNet-18 (pretrained first if it is not cached).

    python benchmarks/pretrain_recipe.py --clips flow --train-from layer2 layer3 --batch-size 16

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


def clips(args: argparse.Namespace) -> None:
    d = P.clip_config(args.clips)
    print(f"{'from':>6} {'epochs':>6} {'batch':>5} {'lr':>8} {'kind w':>6} {'held-out %':>10} {'reversed %':>10} "
          f"{'train %':>8} {'kind %':>6} {'s':>6}  held-out % after each epoch")
    for start, epochs, batch, lr, kw in itertools.product(args.train_from or [d.train_from], args.epochs or [d.epochs],
                                                          args.batch_size or [d.batch_size], args.lr or [d.lr],
                                                          args.kind_weight or [d.kind_weight]):
        cfg = dataclasses.replace(d, train_from=start, epochs=epochs, batch_size=batch, lr=lr, kind_weight=kw)
        with tempfile.TemporaryDirectory() as tmp:
            r = P.pretrain_clips(args.clips, cfg, root=Path(tmp), progress=False)
        curve = " ".join(f"{100 * c['test_accuracy']:.0f}" for c in r["curve"])
        kind = "-" if r.get("kind_test_accuracy") is None else f"{100 * r['kind_test_accuracy']:.1f}"
        print(f"{start:>6} {epochs:6d} {batch:5d} {lr:8.1e} {kw:6.2f} {100 * r['test_accuracy']:10.1f} "
              f"{100 * r['reversed_accuracy']:10.1f} {100 * r['train_accuracy']:8.1f} {kind:>6} {r['seconds']:6.0f}  "
              f"{curve}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, nargs="+")
    ap.add_argument("--batch-size", type=int, nargs="+")
    ap.add_argument("--lr", type=float, nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", choices=("rgb", "flow"), help="the video pretraining of this stream's 3D network")
    ap.add_argument("--kind-weight", type=float, nargs="+",
                    help="clips: weight of the second head's loss (the moving object's kind); 0: none")
    ap.add_argument("--train-from", nargs="+", choices=("stem", "layer1", "layer2", "layer3", "layer4"))
    ap.add_argument("--layout-weight", type=float, nargs="+",
                    help="stills: weight of the layout head's loss (where the objects are, how large); 0: none")
    ap.add_argument("--width", type=int, nargs="+", help="stills: the network's stage-1 width (ci_nets.WIDTHS)")
    ap.add_argument("--keep", type=Path, help="stills: keep each run's weights and report in this folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.clips:
        P.ci_state_dict()  # the 2D pretraining the clip networks inflate (the book's; trained if not cached)
        return clips(args)
    d = P.PretrainConfig()
    args.epochs, args.batch_size, args.lr = args.epochs or [d.epochs], args.batch_size or [d.batch_size], args.lr or [d.lr]
    args.layout_weight, args.width = args.layout_weight or [d.layout_weight], args.width or [d.width]
    print(f"{'width':>5} {'epochs':>6} {'batch':>5} {'lr':>8} {'layout':>6} {'held-out %':>10} {'train %':>8} {'3D %':>6} "
          f"{'s':>6}  held-out % after each epoch")
    for width, epochs, batch, lr, lw in itertools.product(args.width, args.epochs, args.batch_size, args.lr,
                                                          args.layout_weight):
        cfg = dataclasses.replace(d, width=width, epochs=epochs, batch_size=batch, lr=lr, layout_weight=lw)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            r = P.pretrain(cfg, root=args.keep or Path(tmp), progress=False)
            seconds = time.perf_counter() - start
        curve = " ".join(f"{100 * c['test_accuracy']:.0f}" for c in r["curve"])
        print(f"{width:5d} {epochs:6d} {batch:5d} {lr:8.1e} {lw:6.2f} {100 * r['test_accuracy']:10.1f} "
              f"{100 * r['train_accuracy']:8.1f} {100 * r['inflated_3d_test_accuracy']:6.1f} {seconds:6.0f}  {curve}",
              flush=True)
        if args.keep:
            print(f"    weights: {args.keep / (r['key'] + '.pt')}", flush=True)


if __name__ == "__main__":
    main()
