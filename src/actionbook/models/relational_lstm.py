"""Relational LSTM (Chen et al., paper 003): non-local operations inside an LSTM, in one file.

    NonLocal            r(X, Y) of Eqs. 1-2 with the embedded Gaussian f of Eq. 4, `heads`
                        independent operations (each with its own θ, φ, g) computed at once
    RelationalLSTMCell  Eq. 3: the gates i, f, o and the candidate g, each the sum of
                        r(X_t, X_t) and r(X_t, H_{t-1}): eight non-local operations
    RelationalLSTM      the cell over T snippets, H_0 = C_0 = 0; returns H_T (the spatial layout kept)
    MovingBatchNorm2d   BN normalised by its moving statistics in training too (Sec. 5.2)
    ResidualUnit        a bottleneck residual unit (conv5_3-shaped), Xavier-initialised
    TwoBranch           Sec. 4 / Fig. 2: a local branch (per-snippet pooling, temporal average)
                        and a non-local branch (BN -> Relational LSTM -> 1x1 conv C/2 -> C ->
                        residual unit -> pooling), concatenated, dropout, one FC layer;
                        `branches="local"` / `"nonlocal"` keep one of them (Table 4;
                        "nonlocal" is the paper's "Relational LSTM network")
    TSN                 the baseline: one FC on each snippet's pooled features, the snippets'
                        scores averaged (TSN's segmental consensus)

Shapes: a video is T snippets; the non-local branch reads feature maps (B, T, C, H, W) at one
position of the backbone (`conv5_2` in the paper), the local branch and TSN read the pooled
top of the backbone (B, T, D) (`conv5_3` + global average pooling). Inside the cell a map is a
matrix of N = H W positions: (B, N, C).

The baby config (ci) is the same network with a few channels: see `RelationalConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NonLocal", "non_local_reference", "RelationalLSTMCell", "RelationalLSTM", "MovingBatchNorm2d", "ResidualUnit",
           "RelationalConfig", "TwoBranch", "TSN", "BRANCHES"]

BRANCHES = ("both", "local", "nonlocal")


# --------------------------------------------------------------------------- r(X, Y), Eqs. 1-2 and 4

class NonLocal(nn.Module):
    """`heads` generalised non-local operations r(X, Y) (Eq. 2, embedded Gaussian f of Eq. 4).

    For each head k: z_i = sum_j softmax_j(θ_k(x_i) · φ_k(y_j)) g_k(y_j), with θ, φ, g linear
    maps of the channels (1x1 convolutions). X: (B, N, c_x) gives the queries, Y: (B, M, c_y)
    the keys and values; the output is (B, N, heads * c_out), head k in channels
    [k c_out, (k + 1) c_out). The heads share nothing but the matrix product that computes
    them: each has its own rows of θ, φ and g.
    """

    def __init__(self, c_x: int, c_y: int, c_out: int, *, embed: int, heads: int = 1) -> None:
        super().__init__()
        self.heads, self.embed, self.c_out = heads, embed, c_out
        self.theta = nn.Linear(c_x, heads * embed)   # θ: 1x1 conv on X
        self.phi = nn.Linear(c_y, heads * embed)     # φ: 1x1 conv on Y
        self.g = nn.Linear(c_y, heads * c_out)       # g: 1x1 conv on Y

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        B, N, _ = x.shape
        M = y.shape[1]
        h, e = self.heads, self.embed
        q = self.theta(x).view(B, N, h, e).transpose(1, 2)            # (B, h, N, e)
        k = self.phi(y).view(B, M, h, e).transpose(1, 2)              # (B, h, M, e)
        v = self.g(y).view(B, M, h, self.c_out).transpose(1, 2)       # (B, h, M, c_out)
        # z = softmax(q k^T) v, ω_ij of Eq. 4 without any scaling (scale=1): torch's fused kernel
        z = F.scaled_dot_product_attention(q, k, v, scale=1.0)        # (B, h, N, c_out)
        return z.transpose(1, 2).reshape(B, N, h * self.c_out)         # (B, N, h c_out)


def non_local_reference(x: Tensor, y: Tensor, W_theta: Tensor, b_theta: Tensor, W_phi: Tensor, b_phi: Tensor,
                        W_g: Tensor, b_g: Tensor) -> Tensor:
    """Eq. 2 with Eq. 4 literally, one position pair at a time (for tests): x (N, c_x), y (M, c_y)
    -> z (N, c_out). Slow on purpose."""
    N, M = x.shape[0], y.shape[0]
    z = torch.zeros(N, W_g.shape[0], dtype=x.dtype)
    for i in range(N):
        theta_i = W_theta @ x[i] + b_theta
        f = torch.stack([torch.exp(theta_i @ (W_phi @ y[j] + b_phi)) for j in range(M)])  # f(x_i, y_j)
        for j in range(M):
            z[i] += f[j] / f.sum() * (W_g @ y[j] + b_g)
    return z


# --------------------------------------------------------------------------- the cell, Eq. 3

class RelationalLSTMCell(nn.Module):
    """One step of Eq. 3. X_t: (B, N, C); H, C state: (B, N, hidden) each.

    `r_x` holds the four input-to-state operations r(X_t, X_t) and `r_h` the four
    state-to-state operations r(X_t, H_{t-1}), one head per gate in the order i, f, o, g:
    eight non-local operations, each with its own weights.
    """

    GATES = ("i", "f", "o", "g")

    def __init__(self, channels: int, hidden: int, *, embed: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.r_x = NonLocal(channels, channels, hidden, embed=embed, heads=4)  # r_ix, r_fx, r_ox, r_gx
        self.r_h = NonLocal(channels, hidden, hidden, embed=embed, heads=4)    # r_ih, r_fh, r_oh, r_gh

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state                                                   # (B, N, hidden) each
        pre = self.r_x(x, x) + self.r_h(x, h)                          # (B, N, 4 hidden)
        i, f, o, g = pre.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)    # C_t
        h = torch.sigmoid(o) * torch.tanh(c)                           # H_t
        return h, c


class RelationalLSTM(nn.Module):
    """The cell over the T snippets of a video: (B, T, C, H, W) -> H_T as a map (B, hidden, H, W)."""

    def __init__(self, channels: int, hidden: int, *, embed: int) -> None:
        super().__init__()
        self.cell = RelationalLSTMCell(channels, hidden, embed=embed)

    def forward(self, x: Tensor, *, return_all: bool = False) -> Tensor:
        B, T, C, H, W = x.shape
        seq = x.flatten(3).transpose(2, 3)                             # (B, T, N, C)
        h = seq.new_zeros(B, H * W, self.cell.hidden)                  # H_0 = 0
        c = torch.zeros_like(h)                                        # C_0 = 0
        out = []
        for t in range(T):
            h, c = self.cell(seq[:, t], (h, c))
            out.append(h)
        maps = [o.transpose(1, 2).reshape(B, self.cell.hidden, H, W) for o in out]  # (B, hidden, H, W)
        return torch.stack(maps, 1) if return_all else maps[-1]


# --------------------------------------------------------------------------- the two-branch network

class MovingBatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation as the paper trains it (Sec. 5.2): the *moving* mean and variance
    normalise in training too, and each training batch only updates them with a small
    momentum; so training and testing see the same normalisation (plain BatchNorm normalises
    a training batch by its own statistics)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3))   # (C,) this batch's statistics
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
                self.num_batches_tracked += 1
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def _bn(c: int, momentum: float) -> nn.BatchNorm2d:
    return MovingBatchNorm2d(c, momentum=momentum)


class ResidualUnit(nn.Module):
    """A bottleneck residual unit (1x1 C -> w, 3x3 w -> w, 1x1 w -> C, identity shortcut), shaped
    like ResNet's conv5_3; Xavier-initialised as the paper's new conv5_3 in the non-local branch."""

    def __init__(self, channels: int, width: int, *, bn_momentum: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 1, bias=False), _bn(width, bn_momentum), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), _bn(width, bn_momentum), nn.ReLU(inplace=True),
            nn.Conv2d(width, channels, 1, bias=False), _bn(channels, bn_momentum))
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))                            # (B, C, H, W)


@dataclass(frozen=True)
class RelationalConfig:
    """The two-branch network (Sec. 4). Paper: C = 2048 (conv5 of ResNet-101), hidden = C / 2,
    7 x 7 maps, local features D = 2048, dropout 0.8 (spatial) / 0.7 (temporal), BN momentum
    0.001. Baby (ci): a few dozen channels."""

    channels: int                 # C of the maps the non-local branch reads
    local_dim: int                # D of the pooled features the local branch reads
    num_classes: int
    hidden: int | None = None     # C/2 by default (the paper's choice)
    embed: int | None = None      # width of θ and φ; hidden by default (the paper does not say)
    unit_width: int | None = None  # the residual unit's bottleneck width; C/4 by default (conv5's 512:2048)
    branches: str = "both"        # "both", "local" or "nonlocal" (Table 4)
    dropout: float = 0.8
    bn_momentum: float = 0.001    # the paper's small moving-average momentum (torch's convention; MovingBatchNorm2d)

    def __post_init__(self) -> None:
        if self.branches not in BRANCHES:
            raise ValueError(f"branches must be one of {BRANCHES}, got {self.branches!r}")


class TwoBranch(nn.Module):
    """The paper's network after the backbone: `model(maps, pooled)` -> logits (B, num_classes).

    maps:   (B, T, C, H, W) the snippets' feature maps at the R-LSTM's position (conv5_2);
    pooled: (B, T, D) the snippets' pooled top features (conv5_3 + global average pooling).
    """

    def __init__(self, cfg: RelationalConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.channels
        hidden = cfg.hidden or C // 2
        width = 0
        if cfg.branches != "local":
            self.bn = _bn(C, cfg.bn_momentum)
            self.rlstm = RelationalLSTM(C, hidden, embed=cfg.embed or hidden)
            self.expand = nn.Conv2d(hidden, C, 1)                      # C/2 -> C channels
            self.unit = ResidualUnit(C, cfg.unit_width or max(C // 4, 1), bn_momentum=cfg.bn_momentum)
            width += C
        if cfg.branches != "nonlocal":
            width += cfg.local_dim
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(width, cfg.num_classes)

    def nonlocal_branch(self, maps: Tensor) -> Tensor:
        B, T = maps.shape[:2]
        x = self.bn(maps.flatten(0, 1)).unflatten(0, (B, T))           # (B, T, C, H, W)
        h = self.rlstm(x)                                              # (B, C/2, H, W): H_T
        return self.unit(self.expand(h)).mean(dim=(2, 3))              # (B, C)

    @staticmethod
    def local_branch(pooled: Tensor) -> Tensor:
        return pooled.mean(dim=1)                                      # (B, D): temporal average

    def forward(self, maps: Tensor, pooled: Tensor) -> Tensor:
        parts = []
        if self.cfg.branches != "local":
            parts.append(self.nonlocal_branch(maps))
        if self.cfg.branches != "nonlocal":
            parts.append(self.local_branch(pooled))
        return self.fc(self.dropout(torch.cat(parts, dim=1)))          # (B, num_classes)


class TSN(nn.Module):
    """TSN (Wang et al. 2016) on frozen features: one FC layer scores every snippet, and the
    segmental consensus averages the T snippets' scores. `model(maps, pooled)` reads `pooled`
    (B, T, D) only (the same call as `TwoBranch`)."""

    def __init__(self, local_dim: int, num_classes: int, *, dropout: float = 0.8) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(local_dim, num_classes)

    def forward(self, maps: Tensor | None, pooled: Tensor) -> Tensor:
        return self.fc(self.dropout(pooled)).mean(dim=1)               # (B, T, K) -> (B, K)
