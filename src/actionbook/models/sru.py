"""Simple Recurrent Units (SRU): the recurrence inside MRRN (Zheng et al., paper 001, Eq. 2–6).

An LSTM computes its gates from the previous hidden state h_{t-1}, so every time step waits
for the one before it and does a small matrix product of its own. The SRU (Lei et al., the
paper's ref. [28]) computes its gates from the input x_t alone:

    x~_t = W x_t                                         (Eq. 2)
    f_t  = sigmoid(W_f x_t + b_f)                        (Eq. 3, forget gate)
    r_t  = sigmoid(W_r x_t + b_r)                        (Eq. 4, reset gate)
    c_t  = f_t ⊙ c_{t-1} + (1 - f_t) ⊙ x~_t              (Eq. 5)
    h_t  = r_t ⊙ tanh(c_t) + (1 - r_t) ⊙ x_t             (Eq. 6, a highway connection)

so the three projections of all T time steps and all B sequences are ONE matrix product
(`[W; W_f; W_r] @ x`, shape (T·B, I) -> (T·B, 3H)), and only Eq. 5, an element-wise linear
recurrence in c, is left to run step by step. That scan is `_LinearScan`: a plain loop over
T that writes each c_t in place and, because Eq. 5 is linear in c_{t-1}, has a backward pass
that is the same loop run backwards. `sru_layer_reference` is Eq. 2–6 written literally, one
time step at a time; the tests check that both give the same values and gradients.

Choices the paper leaves open, taken from the SRU authors' own implementation:
- Where input and hidden sizes differ (MRRN feeds 128/256/512-d features to 1024 units), the
  highway term (1 - r_t) ⊙ x_t cannot use x_t as is. As in the SRU authors' code, it then
  uses a learned projection W_h x_t, computed in the same matrix product (4H rows, not 3H).
- "Dropout 0.5 for linear transformations and 0 for connections between RNN layers" (paper,
  Sec. 4.2) is the SRU package's `rnn_dropout` / `dropout` pair: `dropout` drops the input x
  of the projections, with one mask per sequence shared by all time steps (variational
  dropout); `layer_dropout` drops h between layers (0 in the paper). The highway term uses
  the un-dropped x, as the SRU code does.
- Orthogonal initialisation (the paper's ref. [38]) of each projection block W, W_f, W_r (and
  W_h), each H×I block orthogonal (semi-orthogonal when H ≠ I); biases start at 0.

Shapes: public modules take batch-first features (B, T, D) like the rest of the book;
`SRULayer` works time-major (T, B, D) so that each step c_t is one contiguous (B, H) slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


@dataclass
class SRUConfig:
    """A stack of SRU layers (paper 001, Sec. 3.2 and 4.2)."""

    input_size: int
    hidden_size: int = 1024
    num_layers: int = 3
    dropout: float = 0.5  # on the input of the linear maps (Eq. 2–4), one mask per sequence
    layer_dropout: float = 0.0  # on h between stacked layers; the paper uses 0

    def __post_init__(self) -> None:
        for name in ("input_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SRUConfig.{name} must be a positive int, got {value!r}")
        for name in ("dropout", "layer_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"SRUConfig.{name} must be in [0, 1), got {value!r}")


class _LinearScan(torch.autograd.Function):
    """c_t = f_t ⊙ c_{t-1} + z_t for t = 1..T: Eq. 5 with z_t = (1 - f_t) ⊙ x~_t.

    Forward writes each c_t in place into one (T, B, H) tensor (no autograd graph per step).
    Backward: with g_t = dL/dc_t (total, through c_{t+1} too),
        g_t = dL/dc_t|direct + f_{t+1} ⊙ g_{t+1},   dL/dz_t = g_t,
        dL/df_t = g_t ⊙ c_{t-1},                    dL/dc_0 = f_1 ⊙ g_1,
    the same recurrence run from t = T down to 1.
    """

    @staticmethod
    def forward(ctx, f: Tensor, z: Tensor, c0: Tensor) -> Tensor:
        c = torch.empty_like(z)  # (T, B, H)
        prev = c0  # (B, H)
        for t in range(z.shape[0]):
            prev = torch.addcmul(z[t], f[t], prev, out=c[t])  # c_t = z_t + f_t ⊙ c_{t-1}
        ctx.save_for_backward(f, c, c0)
        return c

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f, c, c0 = ctx.saved_tensors
        grad_z = torch.empty_like(c)  # (T, B, H); dL/dz_t = g_t
        carry = torch.zeros_like(c0)  # f_{t+1} ⊙ g_{t+1}, what c_{t+1} sends back to c_t
        for t in range(c.shape[0] - 1, -1, -1):
            g = torch.add(grad_c[t], carry, out=grad_z[t])  # g_t
            carry = f[t] * g
        c_prev = torch.cat([c0.unsqueeze(0), c[:-1]])  # (T, B, H): c_{t-1}
        grad_f = grad_z * c_prev
        return grad_f, grad_z, carry  # carry is now f_1 ⊙ g_1 = dL/dc_0


def _highway_rows(input_size: int, hidden_size: int) -> int:
    """How many H-row blocks the projection has: 3 (W, W_f, W_r), or 4 with W_h when I ≠ H."""
    return 3 if input_size == hidden_size else 4


class SRULayer(nn.Module):
    """One SRU layer, Eq. 2–6, time-major: x (T, B, I) -> h (T, B, H), c_T (B, H).

    `weight` stacks the projections by rows, [W; W_f; W_r] (3H × I) or [W; W_f; W_r; W_h]
    (4H × I) when I ≠ H; `bias` is [b_f; b_r] (Eq. 2 has no bias).
    """

    def __init__(self, input_size: int, hidden_size: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.dropout = dropout
        k = _highway_rows(input_size, hidden_size)
        self.weight = nn.Parameter(torch.empty(k * hidden_size, input_size))
        self.bias = nn.Parameter(torch.empty(2 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Orthogonal initialisation of each H × I projection block; zero biases."""
        with torch.no_grad():
            for block in self.weight.view(-1, self.hidden_size, self.input_size):
                nn.init.orthogonal_(block)
            self.bias.zero_()

    def forward(self, x: Tensor, c0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        T, B, _ = x.shape
        H = self.hidden_size
        x_in = x
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            mask = x.new_empty(1, B, self.input_size).bernoulli_(keep).div_(keep)  # (1, B, I)
            x_in = x * mask  # the same mask at every time step
        u = F.linear(x_in, self.weight).view(T, B, -1, H)  # (T, B, 3 or 4, H): one matmul
        x_tilde = u[:, :, 0]  # (T, B, H)  Eq. 2
        f = torch.sigmoid(u[:, :, 1] + self.bias[:H])  # (T, B, H)  Eq. 3
        r = torch.sigmoid(u[:, :, 2] + self.bias[H:])  # (T, B, H)  Eq. 4
        highway = x if u.shape[2] == 3 else u[:, :, 3]  # (T, B, H)  x_t, or W_h x_t if I ≠ H
        if c0 is None:
            c0 = x.new_zeros(B, H)
        c = _LinearScan.apply(f, (1 - f) * x_tilde, c0)  # (T, B, H)  Eq. 5
        h = r * torch.tanh(c) + (1 - r) * highway  # (T, B, H)  Eq. 6
        return h, c[-1]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, dropout={self.dropout}"


class SRU(nn.Module):
    """Stacked SRU layers (paper 001, Sec. 3.2): x (B, T, I) -> h (B, T, H), c_T (L, B, H).

    Layer 1 maps input_size to hidden_size; layers 2..L map hidden_size to hidden_size.
    """

    def __init__(self, config: SRUConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.input_size] + [config.hidden_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(
            SRULayer(i, config.hidden_size, dropout=config.dropout) for i in sizes
        )
        self.layer_dropout = nn.Dropout(config.layer_dropout)

    def forward(self, x: Tensor, c0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.config.input_size:
            raise ValueError(
                f"SRU expects features of shape (batch, time, {self.config.input_size}), "
                f"got {tuple(x.shape)}; set SRUConfig.input_size to the feature size"
            )
        h = x.transpose(0, 1)  # (T, B, I): time-major for the scan
        c_last = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                h = self.layer_dropout(h)
            h, c = layer(h, None if c0 is None else c0[i])  # (T, B, H), (B, H)
            c_last.append(c)
        return h.transpose(0, 1), torch.stack(c_last)  # (B, T, H), (L, B, H)


def sru(*, input_size: int, hidden_size: int = 1024, num_layers: int = 3,
        dropout: float = 0.5, layer_dropout: float = 0.0) -> SRU:
    """A stacked SRU as in MRRN (Zheng et al., paper 001, Eq. 2–6, Sec. 4.2).

    The defaults are the paper's best setting (Table 1: 3 layers of 1024 units; dropout 0.5
    on the linear maps, none between layers). `input_size` is 128, 256 or 512 for ResNet-34
    layer2/3/4 features.
    """
    return SRU(SRUConfig(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                         dropout=dropout, layer_dropout=layer_dropout))


def sru_layer_reference(x: Tensor, weight: Tensor, bias: Tensor,
                        c0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Eq. 2–6 written literally, one time step at a time (slow; for tests and teaching).

    x (T, B, I); weight and bias laid out as in `SRULayer` (no dropout). Returns h (T, B, H)
    and c_T (B, H). Differentiable by ordinary autograd.
    """
    T, B, I = x.shape
    H = bias.shape[0] // 2
    W, W_f, W_r = weight[:H], weight[H:2 * H], weight[2 * H:3 * H]  # (H, I) each
    W_h = weight[3 * H:] if weight.shape[0] == 4 * H else None  # highway projection if I ≠ H
    b_f, b_r = bias[:H], bias[H:]
    c = x.new_zeros(B, H) if c0 is None else c0
    hs = []
    for t in range(T):
        x_t = x[t]  # (B, I)
        x_tilde = x_t @ W.T  # Eq. 2
        f_t = torch.sigmoid(x_t @ W_f.T + b_f)  # Eq. 3
        r_t = torch.sigmoid(x_t @ W_r.T + b_r)  # Eq. 4
        c = f_t * c + (1 - f_t) * x_tilde  # Eq. 5
        highway = x_t if W_h is None else x_t @ W_h.T
        hs.append(r_t * torch.tanh(c) + (1 - r_t) * highway)  # Eq. 6
    return torch.stack(hs), c
