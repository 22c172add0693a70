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

INFLATION_VERSION = 1
"""Part of the cache key of everything the inflated network computes (features, the
pretraining report's 3D accuracy): bump it when `inflate_resnet` or `inflated_r3d_18` change."""


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


def ci_resnet18(num_classes: int = 1) -> ResNet:
    """The ci 2D network: torchvision's ResNet-18 (the head is never used for features)."""
    return torchvision.models.resnet18(num_classes=num_classes)


class _InflatedStem(nn.Sequential):
    """r3d_18's stem plus the max-pool of the 2D ResNet it is inflated from (as I3D keeps it)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
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


def inflated_r3d_18(num_classes: int = 1) -> VideoResNet:
    """The ci 3D CNN: torchvision's r3d_18 (3x3x3 convolutions, BasicBlock [2, 2, 2, 2]) with a
    max-pooled stem, so that every 2D ResNet-18 weight has a 3D counterpart (see `inflate_resnet`),
    and edge-replicating temporal padding (`_EdgePadConv3d`)."""
    from torchvision.models.video.resnet import BasicBlock, Conv3DSimple

    net = VideoResNet(BasicBlock, [Conv3DSimple] * 4, [2, 2, 2, 2], _InflatedStem, num_classes=num_classes)
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
