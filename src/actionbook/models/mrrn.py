"""Recurrent Residual Networks (RRN) and their multi-level fusion (MRRN), Zheng et al. (paper 001).

One RRN reads a sequence of frame features from one level of a frozen ResNet-34 (the
spatial mean of layer2, layer3 or layer4: 128-, 256- or 512-d, Eq. 7; done in
`actionbook.features`) and classifies it:

    h_t = SRU stack(x_1..x_t)                     (Eq. 2–6, `actionbook.models.sru`)
    s_t = W tanh(h_t) + b        (B, T, P)        ("hyperbolic tangent layers on top of the
                                                   stacked SRUs for predictions at each step")
    P_mean(y = j) = softmax_j( (1/N) Σ_t s_{t,j} )   (Eq. 8)
    P_max (y = j) = softmax_j( max_t s_{t,j} )       (Eq. 9)

The equations pool the per-step class *scores* W x_t, not the features: with the same FC at
every step (our reading of the paper's W_jt, "the weights mapping the output of SRUs at time
t to action j"), mean pooling of scores equals scoring the mean feature, but max pooling
takes, for each class separately, its best time step. `RRN.forward` returns the pooled scores
(logits); the softmax of Eq. 8–9 is in the loss (cross-entropy) or in the fusion.

MRRN trains three RRNs independently (low, mid, high level) and fuses their softmax scores:

    P_final = 0.7 P_H + 0.2 P_M + 0.1 P_L         (Eq. 10)

`level_fusion` does Eq. 10 with `actionbook.metrics.fuse`; the weights are a parameter. The
levels are independent models, so there is no MRRN module: the chapter trains three RRNs
(`actionbook.experiments.mrrn`) and fuses their video scores with `level_fusion`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from actionbook.metrics import fuse
from actionbook.models.sru import SRU, SRUConfig

POOLINGS = ("mean", "max")


@dataclass
class RRNConfig:
    """One level of MRRN (paper 001, Sec. 3.2 and 4.2); defaults are the paper's best."""

    input_size: int  # 128 / 256 / 512 for ResNet-34 layer2 / layer3 / layer4
    num_classes: int
    hidden_size: int = 1024
    num_layers: int = 3
    pooling: str = "mean"  # "mean" (Eq. 8) or "max" (Eq. 9) over the per-step scores
    dropout: float = 0.5  # on the input of the SRU linear maps (see `actionbook.models.sru`)
    layer_dropout: float = 0.0  # between SRU layers; the paper uses 0

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"RRNConfig.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"RRNConfig.num_classes must be a positive int, got {self.num_classes!r}")


class RRN(nn.Module):
    """Stacked SRU -> per-step tanh + FC -> temporal pooling of the scores (Eq. 8–9).

    features (B, T, input_size) -> logits (B, num_classes).
    """

    def __init__(self, config: RRNConfig) -> None:
        super().__init__()
        self.config = config
        self.sru = SRU(SRUConfig(input_size=config.input_size, hidden_size=config.hidden_size,
                                 num_layers=config.num_layers, dropout=config.dropout,
                                 layer_dropout=config.layer_dropout))
        self.fc = nn.Linear(config.hidden_size, config.num_classes)

    def step_scores(self, x: Tensor) -> Tensor:
        """The class scores at every time step, s_t = W tanh(h_t) + b: (B, T, num_classes)."""
        h, _ = self.sru(x)  # (B, T, H)
        return self.fc(torch.tanh(h))  # (B, T, P)

    def forward(self, x: Tensor) -> Tensor:
        return temporal_pool(self.step_scores(x), how=self.config.pooling)  # (B, P)


def temporal_pool(scores: Tensor, *, how: str) -> Tensor:
    """Pool per-step scores (B, T, P) over time: "mean" (Eq. 8) or "max" (Eq. 9) -> (B, P)."""
    if how == "mean":
        return scores.mean(dim=1)
    if how == "max":
        return scores.amax(dim=1)
    raise ValueError(f"temporal pooling must be one of {POOLINGS}, got {how!r}")


def level_fusion(scores: Sequence[Tensor], *, weights: Sequence[float], softmax: bool = True) -> Tensor:
    """Eq. 10: P_final = Σ_k w_k P_k, the weighted sum of the levels' class probabilities.

    scores:  one (N, P) tensor per level, in the order of `weights` (low, mid, high: 0.1, 0.2,
             0.7 in the paper); logits with `softmax=True`, or probabilities already (e.g. the
             clip softmax scores averaged per video by `engine.evaluate`) with `softmax=False`.
    Returns (N, P) scores (detached, on the CPU: an evaluation step).

    MRRN's three levels are trained independently ("three independent models"), so the
    chapter trains three RRNs and fuses their test scores with this function.
    """
    return fuse(list(scores), how="sum", weights=list(weights), softmax=softmax)


def rrn(*, input_size: int, num_classes: int, hidden_size: int = 1024, num_layers: int = 3,
        pooling: str = "mean", dropout: float = 0.5) -> RRN:
    """One RRN level of MRRN (Zheng et al., paper 001, Eq. 2–9).

    Defaults are the paper's best (Table 1: 3 layers × 1024 units; Table 2: mean pooling).
    """
    return RRN(RRNConfig(input_size=input_size, num_classes=num_classes, hidden_size=hidden_size,
                         num_layers=num_layers, pooling=pooling, dropout=dropout))
