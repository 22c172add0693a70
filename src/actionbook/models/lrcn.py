"""LRCN-style baselines (Donahue et al., 2015): a 2D CNN on every frame, then a recurrent head.

MRRN's speed figure (paper 001, Fig. 6) times its RRNs against LRCN; the book's stand-in is

    FramesThenHead(backbone, head)   clips (B, T, 3, H, W) -> backbone per frame (B*T, C) -> head (B, P)
    LSTMHead(input, hidden, layers, classes)   a stacked nn.LSTM, per-step tanh + FC, mean over time

`LSTMHead` mirrors the RRN's head (`actionbook.models.mrrn.RRN`) with an LSTM in place of the
SRU stack, so that the two differ only in the recurrence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FramesThenHead(nn.Module):
    """A 2D backbone on every frame, then a recurrent head: clips (B, T, 3, H, W) -> scores (B, P)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        f = self.backbone(x.flatten(0, 1))  # (B*T, C)
        return self.head(f.view(b, t, -1))  # (B, P)


class LSTMHead(nn.Module):
    """LRCN-style head: a stacked nn.LSTM, per-step tanh + FC, mean over time (as the RRN)."""

    def __init__(self, input_size: int, hidden: int, layers: int, num_classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.lstm(x)  # (B, T, H)
        return self.fc(torch.tanh(h)).mean(1)  # (B, P)
