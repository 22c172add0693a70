"""The ci networks: the toy-size stand-ins for the papers' pretrained backbones.

A leaf module (it imports nothing of `actionbook`): `backbones` builds the frozen feature
extractors from these networks and `pretrain` trains them, and neither needs the other's
internals.

- `ci_resnet18`: torchvision's ResNet-18, the ci stand-in for every 2D ResNet (34/50/101);
- `inflated_r3d_18` + `inflate_resnet`: a 3D ResNet-18 inflated from it (I3D's recipe), the
  ci stand-in for the 3D CNNs (C3D, R(2+1)D);
- `cross_modality`, `norm_stats`: a network's first convolution and input normalisation for
  optical flow (TSN's cross-modality initialisation), in full and ci mode alike;
- `CI_MEAN`, `CI_STD`: the input normalisation every ci network is trained and used with --
  ImageNet's statistics, read from torchvision's metadata (not typed in here).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import ResNet
from torchvision.models.video import VideoResNet

_STATS = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
CI_MEAN: tuple[float, ...] = tuple(_STATS.mean)
CI_STD: tuple[float, ...] = tuple(_STATS.std)

# `pretrain.INFLATION_VERSION` versions `inflate_resnet` and `inflated_r3d_18`: bump it when they change.


def cross_modality(conv: nn.Conv2d | nn.Conv3d, channels: int) -> nn.Module:
    """TSN's cross-modality initialisation: average the RGB filters, repeat over `channels`."""
    w = conv.weight.data.mean(dim=1, keepdim=True)  # (out, 1, [t,] k, k)
    new = type(conv)(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False)
    new.weight.data = w.repeat(1, channels, *([1] * (w.ndim - 2))).contiguous()
    return new


def norm_stats(mean: list[float], std: list[float], *, modality: str, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel input mean and std for `channels` input channels of `modality`."""
    if modality == "flow":  # flow images are centred at 128/255 (TSN)
        mean, std = [0.5], [sum(std) / len(std)]
    m = torch.tensor(mean).repeat(channels // len(mean))
    s = torch.tensor(std).repeat(channels // len(std))
    return m, s


WIDTHS = (64, 32, 16)
"""The stage-1 widths a ci network may have: torchvision's 64 (stages 64-128-256-512), half or a
quarter of it (every stage narrowed alike; FLOPs fall with the square: `benchmarks/width.py`)."""


def width_of(state: dict[str, torch.Tensor]) -> int:
    """The width of the ci network a 2D or 3D state_dict belongs to (its stem's output channels)."""
    for key in ("conv1.weight", "stem.0.weight"):
        if key in state:
            return int(state[key].shape[0])
    raise KeyError("not a ci ResNet state_dict: it has neither conv1.weight nor stem.0.weight")


def _check_width(width: int) -> None:
    if width not in WIDTHS:
        raise ValueError(f"a ci network's width is one of {WIDTHS}, got {width}")


class _NarrowResNet(ResNet):
    """torchvision's ResNet-18 with stages of width, 2, 4 and 8 times width channels: the same
    module names (conv1, bn1, layer1-4, fc), blocks and initialisation, so the inflation and the
    extractors read it as they read torchvision's."""

    def __init__(self, width: int, num_classes: int) -> None:
        from torchvision.models.resnet import BasicBlock

        nn.Module.__init__(self)
        self._norm_layer, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, 1, 1, 64
        self.inplanes = width  # (BasicBlock checks base_width == 64: torchvision's, not the channels)
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, width, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def ci_resnet18(num_classes: int = 1, *, width: int = 64) -> ResNet:
    """The ci 2D network: torchvision's ResNet-18 (the head is never used for features); with
    `width` 32 or 16, the same network with every stage narrowed alike (`_NarrowResNet`)."""
    _check_width(width)
    if width == 64:
        return torchvision.models.resnet18(num_classes=num_classes)
    return _NarrowResNet(width, num_classes)


class _InflatedStem(nn.Sequential):
    """r3d_18's stem plus the max-pool of the 2D ResNet it is inflated from (as I3D keeps it)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__(
            nn.Conv3d(3, width, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )


class _EdgePadConv3d(nn.Conv3d):
    """A Conv3d that pads time by repeating the first and last frame instead of adding zeros
    (space is still zero-padded). With inflated weights, a clip of identical frames then gives
    exactly the 2D network's activations at *every* frame -- I3D's "boring video" fixed point,
    without the drop at the clip's ends that zero padding causes in short clips."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size[0] // 2
        x = F.pad(x, (0, 0, 0, 0, p, p), mode="replicate")  # (N, C, T + 2p, H, W)
        return super().forward(x)


class _NarrowVideoResNet(VideoResNet):
    """torchvision's VideoResNet (r3d_18's blocks) with stages of width, 2, 4 and 8 times width
    channels: the counterpart of `_NarrowResNet`, with the same module names and initialisation."""

    def __init__(self, width: int, num_classes: int) -> None:
        from torchvision.models.video.resnet import BasicBlock, Conv3DSimple

        nn.Module.__init__(self)
        self.inplanes = width
        self.stem = _InflatedStem(width)
        for i, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            setattr(self, f"layer{i + 1}", self._make_layer(BasicBlock, Conv3DSimple, planes, 2, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(8 * width, num_classes)
        for m in self.modules():  # torchvision's VideoResNet initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)


def inflated_r3d_18(num_classes: int = 1, *, width: int = 64) -> VideoResNet:
    """The ci 3D CNN: torchvision's r3d_18 (3x3x3 convolutions, BasicBlock [2, 2, 2, 2]) with a
    max-pooled stem, so that every 2D ResNet-18 weight has a 3D counterpart (see `inflate_resnet`),
    and edge-replicating temporal padding (`_EdgePadConv3d`); `width` as for `ci_resnet18`."""
    from torchvision.models.video.resnet import BasicBlock, Conv3DSimple

    _check_width(width)
    net = (VideoResNet(BasicBlock, [Conv3DSimple] * 4, [2, 2, 2, 2], _InflatedStem, num_classes=num_classes)
           if width == 64 else _NarrowVideoResNet(width, num_classes))
    for name, conv in list(net.named_modules()):
        if isinstance(conv, nn.Conv3d) and conv.kernel_size[0] > 1:
            new = _EdgePadConv3d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                 (0, *conv.padding[1:]), bias=conv.bias is not None)
            new.weight.data.copy_(conv.weight.data)
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent), child, new)
    return net


def inflate_resnet(state2d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """I3D inflation (Carreira & Zisserman 2017, Sec. 2.3) of a ResNet-18 state_dict into the
    keys of `inflated_r3d_18`: a k x k kernel becomes t x k x k, repeated over t and divided by t
    (t = 3 for the stem and every 3x3 convolution, 1 for the 1x1 shortcuts), so a clip of
    identical frames gives the 2D network's activations (see `_EdgePadConv3d`)."""
    out = {}
    for key, v in state2d.items():
        k = key.replace("conv1.weight", "stem.0.weight", 1) if key.startswith("conv1.") else key
        if key.startswith("bn1."):
            k = "stem.1." + key[len("bn1."):]
        elif key.startswith("layer"):
            # layerI.J.conv1 -> layerI.J.conv1.0 ; layerI.J.bn1 -> layerI.J.conv1.1 (same for 2)
            for n in ("1", "2"):
                k = k.replace(f".conv{n}.", f".conv{n}.0.").replace(f".bn{n}.", f".conv{n}.1.")
        if v.ndim == 4:  # a 2D kernel (out, in, k, k) -> (out, in, t, k, k)
            t = 1 if v.shape[-1] == 1 else 3
            v = v.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        out[k] = v
    return out
