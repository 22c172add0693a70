"""What does a narrower ci backbone save? Speed of the ci ResNet-18 at torchvision's stage widths
(64-128-256-512) against the same network at half and a quarter of them.

Issue 11 asks for all ci pretraining within 120 s and a cold book within 12 minutes on 2 cores;
on this project's slower CPUs the ci pretraining alone takes 1,300-1,500 s (2D 610-810 s, the two
3D clip networks 280 and 420 s), and the same networks extract every feature set and run the
recurrent residual chapter's trained units. All of that scales with the networks' FLOPs, which
scale with the square of the width. This script measures, on random inputs and seeded random
weights (speed does not depend on the values):

- a 2D pretraining step (forward, backward, Adam; batch 64 at 56 x 56, channels_last as
  `pretrain._train` runs it), images/s;
- 2D inference (frames/s, batch 64) and 3D inference on 16-frame clips (clips/s, batch 8);
- each network's FLOPs per input (torch's FlopCounterMode),

for each width (`ci_nets.ci_resnet18` and `ci_nets.inflated_r3d_18`, the networks the book
uses), with the ratio against the first. It decides nothing about quality: the book's width
(`pretrain.PretrainConfig.width`) was chosen on the held-out stills and the validation groups
(`pretrain_recipe.py --width`, `validation_probe.py`; `benchmarks/decisions/0013-ci-backbones-at-half-width.md`).

    python benchmarks/width.py                 # widths 64 32 16, best of 3
    python benchmarks/width.py --widths 64 32 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from actionbook.features import ci_nets


def _flops(net: nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return counter.get_total_flops() / len(x)


def _best(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(width: int, *, repeats: int, steps: int = 5) -> dict[str, float]:
    torch.manual_seed(0)
    net = ci_nets.ci_resnet18(num_classes=12, width=width).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(64, 3, 56, 56).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 12, (64,))

    def train() -> None:
        for _ in range(steps):
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    train_s = _best(train, repeats) / (steps * len(x))
    net.eval()
    with torch.no_grad():
        infer_s = _best(lambda: [net(x) for _ in range(steps)], repeats) / (steps * len(x))
    net3d = ci_nets.inflated_r3d_18(width=width).eval()
    clips = torch.randn(8, 3, 16, 56, 56)
    with torch.no_grad():
        clip_s = _best(lambda: net3d(clips), repeats) / len(clips)
    return dict(width=width, train_images_s=1 / train_s, infer_frames_s=1 / infer_s, clips_s=1 / clip_s,
                gflops_frame=_flops(net, x[:4]) / 1e9, gflops_clip=_flops(net3d, clips[:2]) / 1e9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 32, 16])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = [measure(w, repeats=a.repeats) for w in a.widths]
    base = rows[0]
    print(f"{a.threads} threads; ratios against width {base['width']}")
    print(f"{'width':>5} {'GFLOP/frame':>11} {'train img/s':>12} {'x':>5} {'infer fr/s':>11} {'x':>5} "
          f"{'GFLOP/clip':>10} {'3D clips/s':>10} {'x':>5}")
    for r in rows:
        print(f"{r['width']:>5} {r['gflops_frame']:>11.3f} {r['train_images_s']:>12.0f} "
              f"{r['train_images_s'] / base['train_images_s']:>5.1f} {r['infer_frames_s']:>11.0f} "
              f"{r['infer_frames_s'] / base['infer_frames_s']:>5.1f} {r['gflops_clip']:>10.2f} "
              f"{r['clips_s']:>10.1f} {r['clips_s'] / base['clips_s']:>5.1f}")


if __name__ == "__main__":
    main()
