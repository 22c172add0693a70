"""A relation network (Santoro et al., 2017, "A simple neural network module for relational
reasoning") on each frame's feature map: the book's model that relates two objects by *where*
they are.

The cells of a frame's (C, h, w) map are the "objects" o_i: each cell's C channels read by a 1x1
convolution to `k`, with the cell's (x, y) place in [-1, 1] appended. A frame is summarised as

    RN(frame) = f( (1/N) * sum over every pair (i, j) of g(o_i, o_j) )

with g and f small MLPs. g sees both cells' contents *and* places, so it can learn how far apart
two things are. A non-local block (the Relational LSTM's gates, `actionbook.models.relational_lstm`)
compares cells by content alone, softmax(theta(x_i) . phi(x_j)), and carries no place: the
distance between two objects is not among what it can weigh unless the convolutions before it
wrote it into the channels.

    FrameRelations(channels, side, k=, width=, chunk=)   (B, T, C*h*w) -> (B, T, width), each frame alone

The controls page composes it with the recurrent residual chapter's `GRUHead` (a GRU over the
frames, its last state classified) as the interaction category's positive control
(`actionbook.controls`). g's first layer acts on the pair [o_i, o_j] as W_i o_i + W_j o_j + b, so
it is computed once per cell and added per pair: (frames, N, N, width) for N = h*w cells, made
`chunk` frames at a time. The pair tensor is the module's whole cost and its passes are memory-bound:
16 frames' pairs (2.4 MB at N = 49, width 16) stay in the CPU's cache. On one core of the
development machine a training step of 192 frames took 39-48 ms this way and 58-92 ms with every
frame at once (repeated runs, 2026-12-05); the outputs are the same.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FrameRelations(nn.Module):
    """A relation network on each frame's flattened map: (B, T, C*h*w) -> (B, T, width)."""

    def __init__(self, channels: int, side: int, *, k: int = 8, width: int = 16, chunk: int = 16) -> None:
        super().__init__()
        self.shape, self.chunk = (channels, side, side), chunk
        self.read = nn.Sequential(nn.Conv2d(channels, k, 1), nn.ReLU())
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
        self.register_buffer("places", torch.stack([xs, ys], -1).reshape(side * side, 2))  # (N, 2)
        self.g_i = nn.Linear(k + 2, width)
        self.g_j = nn.Linear(k + 2, width, bias=False)
        self.g_out = nn.Linear(width, width)  # g's second layer (each layer followed by a ReLU)
        self.f = nn.Sequential(nn.Linear(width, width), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        if d != self.shape[0] * self.shape[1] * self.shape[2]:
            raise ValueError(f"FrameRelations expects frames of {self.shape} = {self.shape[0] * self.shape[1] ** 2} "
                             f"values, got {d}")
        o = self.read(x.reshape(b * t, *self.shape)).flatten(2).transpose(1, 2)  # (BT, N, k)
        o = torch.cat([o, self.places.expand(len(o), -1, -1)], -1)               # (BT, N, k + 2)
        g_i, g_j = self.g_i(o), self.g_j(o)                                      # (BT, N, width) each
        sums = []
        for s in range(0, len(o), self.chunk):
            pairs = (g_i[s:s + self.chunk].unsqueeze(2) + g_j[s:s + self.chunk].unsqueeze(1)).relu_()  # (chunk, N, N, width)
            sums.append(self.g_out(pairs).relu_().sum((1, 2)))                   # (chunk, width): sum over pairs
        z = self.f(torch.cat(sums) / o.shape[1])                                 # (BT, width): / N
        return z.view(b, t, -1)                                                  # (B, T, width)
