"""Recurrent residual networks: a ResNet with temporal skip connections (Iqbal et al., paper 004).

A residual unit computes, for the input x_t of frame t (the paper's Eq. 1, one convolution
standing for the unit's whole residual branch F),

    y_t = F(x_t) + x_t                                       (B, C', H', W')

and a *temporal skip connection* adds the same unit's input at the previous time step
(Eq. 2-4):

    identity:    y_t = F(x_t) + x_t + x_{t-1}                Eq. 2 (no parameter)
    linear:      y_t = F(x_t) + x_t + W_s x_{t-1}            Eq. 3 (W_s: a 1x1 convolution)
    non-linear:  y_t = F(x_t) + x_t + σ(W_s x_{t-1})         Eq. 4 (σ: batch norm, then ReLU)

`TemporalSkip` wraps a torchvision residual unit (`BasicBlock` for the ci ResNet-18,
`Bottleneck` for ResNet-50), so the spatial path `F(x_t) + x_t` is the pretrained unit
itself, unchanged; the temporal term is added to the unit's output. Two readings the paper
leaves open, stated here:

- torchvision's unit applies its last ReLU *after* the spatial sum, relu(F(x) + x); the paper's
  notation has no non-linearity there. The temporal term is added to that output.
- A unit that changes the shape (the first unit of a stage: more channels, stride 2) cannot
  add x_{t-1} as it is. The identity skip then uses the unit's own spatial shortcut (its
  pretrained 1x1 `downsample`, shared, so still no new parameter), just as ResNet's spatial
  skip is an identity where it can be and a projection where it must; the 1x1 W_s of the
  linear and non-linear skips takes the unit's stride and output channels.

Temporal context (Sec. 3.3, Fig. 3). Because x_{t-1} is the unit's *input*, one skip lets
y_t see x_{t-1} and x_t only; k skips in k units compose, and the output at t sees
x_{t-k} .. x_t. A sub-sequence of T frames therefore needs T - 1 skips. The network is
unrolled over the T frames as in Fig. 3: each skip unit turns T' input steps into T' - 1
output steps (step t needs t - 1), so after k skips the T - k remaining steps each see k
frames back; with T = k + 1 exactly one step, the last, sees the whole sub-sequence, and its
scores are the sub-sequence's P(y | x_1 .. x_T). Nothing is padded at the start.

Where the skips go. The paper's four positions (Sec. 4.2), in torchvision's unit names
(`layerS.U`, 0-based; ResNet-50 has 3, 4, 6, 3 units per stage, the ci ResNet-18 2, 2, 2, 2):

| paper | which skip connection | ResNet-50 | ci ResNet-18 |
| --- | --- | --- | --- |
| Block1 | the first of block 1 | `layer1.0` | `layer1.0` |
| Block2 | the last of block 2 | `layer2.3` | `layer2.1` |
| Mid Block4 | the last *convolutional* (projection) one of block 4 | `layer4.0` | `layer4.0` |
| Block4 | the last of block 4 | `layer4.2` | `layer4.1` |

With T - 1 > 1 skips (Table 4), they sit in the T - 1 consecutive units ending at the
position (`skip_units`): context 3 at Block4 in ResNet-50 is `layer4.1`, `layer4.2`.

    unit_names(net)                       every residual unit's name, input to output
    position_unit(net, position)          the paper's position -> its unit name
    skip_units(net, position, context)    the T - 1 units that get a temporal skip
    TemporalSkip(unit, kind)              Eq. 2-4 around one unit: (B, T, C, H, W) -> (B, T-1, C', H', W')
    RecurrentResidualResNet(net, cfg)     the network from a unit upward, unrolled over T frames
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from torchvision.models import ResNet

POSITIONS = ("Block1", "Block2", "Mid Block4", "Block4")
SKIPS = ("identity", "linear", "nonlinear")

__all__ = ["POSITIONS", "SKIPS", "unit_names", "position_unit", "skip_units", "first_unit", "TemporalSkip", "PerFrame",
           "RecurrentResidualConfig", "RecurrentResidualResNet"]


# --------------------------------------------------------------------------- where the skips go

def unit_names(net: ResNet) -> list[str]:
    """Every residual unit of a torchvision ResNet, from the input to the output: `layer1.0`, ..."""
    return [f"layer{s}.{u}" for s in range(1, 5) for u in range(len(getattr(net, f"layer{s}")))]


def position_unit(net: ResNet, position: str) -> str:
    """The unit whose skip connection the paper makes recurrent at `position` (see the module table)."""
    if position == "Block1":
        return "layer1.0"
    if position == "Block2":
        return f"layer2.{len(net.layer2) - 1}"
    if position == "Block4":
        return f"layer4.{len(net.layer4) - 1}"
    if position == "Mid Block4":  # the last unit of block 4 whose spatial skip is a convolution
        conv = [u for u, m in enumerate(net.layer4) if m.downsample is not None]
        if not conv:
            raise ValueError("this network's layer4 has no unit with a projection (convolutional) skip")
        return f"layer4.{conv[-1]}"
    raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")


def skip_units(net: ResNet, position: str, context: int) -> list[str]:
    """The context - 1 consecutive units, ending at `position`, that get a temporal skip."""
    if not isinstance(context, int) or context < 1:
        raise ValueError(f"context must be an int >= 1 (frames), got {context!r}")
    names = unit_names(net)
    end = names.index(position_unit(net, position))
    k = context - 1
    if k > end + 1:
        raise ValueError(f"context {context} needs {k} skips ending at {names[end]}, but only {end + 1} "
                         f"units lie at or below it")
    return names[end - k + 1: end + 1]


# --------------------------------------------------------------------------- the units

def _shape_changes(unit: nn.Module) -> bool:
    return getattr(unit, "downsample", None) is not None


def _out_channels(unit: nn.Module) -> int:
    last_bn = unit.bn3 if hasattr(unit, "bn3") else unit.bn2  # Bottleneck / BasicBlock
    return last_bn.num_features


def _in_channels(unit: nn.Module) -> int:
    return unit.conv1.in_channels


def _stride(unit: nn.Module) -> int:
    conv = unit.conv2 if hasattr(unit, "bn3") else unit.conv1  # torchvision strides conv2 of a Bottleneck
    return conv.stride[0]


class TemporalSkip(nn.Module):
    """One residual unit with a temporal skip connection (Eq. 2-4): (B, T, C, H, W) -> (B, T-1, C', H', W').

    Output step t (t = 2 .. T of the input) is unit(x_t) + s(x_{t-1}), with s the identity
    (or the unit's own projection shortcut where the unit changes the shape), a 1x1
    convolution W_s (linear), or ReLU(BN(W_s x)) (non-linear).
    """

    def __init__(self, unit: nn.Module, kind: str) -> None:
        super().__init__()
        if kind not in SKIPS:
            raise ValueError(f"kind must be one of {SKIPS}, got {kind!r}")
        self.unit, self.kind = unit, kind
        if kind != "identity":
            cin, cout, stride = _in_channels(unit), _out_channels(unit), _stride(unit)
            self.w_s = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)
            nn.init.kaiming_normal_(self.w_s.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's convs
            self.bn_s = nn.BatchNorm2d(cout) if kind == "nonlinear" else None

    def temporal(self, x_prev: Tensor) -> Tensor:
        """The temporal term of Eq. 2-4 for the previous step's input: (N, C, H, W) -> (N, C', H', W')."""
        if self.kind == "identity":
            return self.unit.downsample(x_prev) if _shape_changes(self.unit) else x_prev
        z = self.w_s(x_prev)
        return torch.relu(self.bn_s(z)) if self.kind == "nonlinear" else z

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        if t < 2:
            raise ValueError(f"a temporal skip needs at least 2 time steps, got {t}")
        now = x[:, 1:].flatten(0, 1)                        # (B*(T-1), C, H, W): x_t
        prev = x[:, :-1].flatten(0, 1)                      # (B*(T-1), C, H, W): x_{t-1}
        y = self.unit(now) + self.temporal(prev)            # (B*(T-1), C', H', W')
        return y.unflatten(0, (b, t - 1))                   # (B, T-1, C', H', W')


class PerFrame(nn.Module):
    """A module applied to every frame alone: (B, T, ...) -> (B, T, ...')."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


# --------------------------------------------------------------------------- the network

@dataclass
class RecurrentResidualConfig:
    """Where the skips go and what kind they are; the defaults are the paper's best model
    (one identity skip at Block4, a context of two frames: Tables 3-4)."""

    position: str = "Block4"
    skip: str = "identity"
    context: int = 2          # T: frames per sub-sequence; T - 1 temporal skips
    start: str | None = None  # the first unit the network holds (its input: the cached map entering
                              # it); None: the lowest skip unit (or the position's unit when T = 1).
                              # "stem": the whole network, from frames

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        if self.skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {self.skip!r}")
        if not isinstance(self.context, int) or self.context < 1:
            raise ValueError(f"context must be an int >= 1, got {self.context!r}")


def first_unit(net: ResNet, cfg: RecurrentResidualConfig) -> str:
    """The lowest unit the model trains: `cfg.start`, else the lowest skip unit (or the position's unit)."""
    if cfg.start is not None:
        return cfg.start
    skips = skip_units(net, cfg.position, cfg.context)
    return skips[0] if skips else position_unit(net, cfg.position)


class RecurrentResidualResNet(nn.Module):
    """A torchvision ResNet from a unit upward, with temporal skips, unrolled over T frames.

    Input: (B, T, C, H, W), the maps entering `first_unit` (or frames, with start="stem"),
    T = cfg.context. Output of `forward_steps`: (B, T - k, P) class scores (logits) of the
    steps that see k = T - 1 frames back; `forward` averages them: (B, P), for T = k + 1 the
    last step alone. The classifier is `net.fc` (global average pooling, then fc, as ResNet).
    Units below the first one are not part of the model (they are frozen and cached outside).
    With context 1 (no skip) it is the plain ResNet applied to every frame.
    """

    def __init__(self, net: ResNet, cfg: RecurrentResidualConfig) -> None:
        super().__init__()
        self.cfg = cfg
        names = unit_names(net)
        start = first_unit(net, cfg)
        if start != "stem" and start not in names:
            raise ValueError(f"start must be 'stem' or a unit name {names}, got {start!r}")
        self.skips = skip_units(net, cfg.position, cfg.context)
        if start != "stem" and self.skips and names.index(self.skips[0]) < names.index(start):
            raise ValueError(f"the skip at {self.skips[0]} lies below the first trained unit {start}")
        self.stem = PerFrame(nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)) if start == "stem" else None
        first = 0 if start == "stem" else names.index(start)
        self.unit_names = names[first:]
        self.units = nn.ModuleList(
            TemporalSkip(net.get_submodule(n), cfg.skip) if n in self.skips else PerFrame(net.get_submodule(n))
            for n in self.unit_names)
        self.fc = net.fc

    @property
    def frames_back(self) -> int:
        """k: how many earlier frames each output step sees (the number of temporal skips)."""
        return len(self.skips)

    def forward_steps(self, x: Tensor) -> Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected (batch, time, channels, height, width), got {tuple(x.shape)}")
        if x.shape[1] <= self.frames_back:
            raise ValueError(f"{self.frames_back} temporal skip(s) need more than {self.frames_back} time steps, "
                             f"got {x.shape[1]}")
        if self.stem is not None:
            x = self.stem(x)                                # (B, T, 64, H/4, W/4)
        for unit in self.units:
            x = unit(x)                                     # (B, T', C, H, W); a skip unit drops a step
        return self.fc(x.mean(dim=(-2, -1)))                # (B, T - k, P)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_steps(x).mean(1)                # (B, P)
