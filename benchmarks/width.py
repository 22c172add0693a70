"""What would a narrower ci backbone save? Speed of the ci ResNet-18 at its stage widths
(64-128-256-512, torchvision's) against the same network at half and a quarter of them.

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

for each width, with the ratio against width 64. It decides nothing about quality: a narrower
network must first show, on the held-out stills and the validation groups, that it carries
what the benchmark needs (`pretrain_recipe.py`, `validation_probe.py`).

    python benchmarks/width.py                 # widths 64 32 16, best of 3
    python benchmarks/width.py --widths 64 32 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock


class _Narrow(ResNet):
    """A ResNet-18 whose four stages have width, 2 width, 4 width and 8 width channels (torchvision's
    module names, so the inflation and the extractors would read it unchanged). A candidate only."""

    def __init__(self, width: int, num_classes: int = 12) -> None:
        nn.Module.__init__(self)
        self._norm_layer, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, 1, 1, 64
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, width, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)


def _inflated(width: int) -> nn.Module:
    """The same stages as 3D convolutions (3x3x3, time padded), as `ci_nets.inflated_r3d_18` is."""
    def block(cin: int, cout: int, stride: int) -> nn.Module:
        s = (1, stride, stride)
        return nn.Sequential(nn.Conv3d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
                             nn.Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
    layers = [nn.Conv3d(3, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(width), nn.ReLU(),
              nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))]
    c = width
    for i, w in enumerate((width, 2 * width, 4 * width, 8 * width)):
        layers += [block(c, w, 1 if i == 0 else 2), block(w, w, 1)]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())


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
    net = _Narrow(width).to(memory_format=torch.channels_last)
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
    net3d = _inflated(width).eval()
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
