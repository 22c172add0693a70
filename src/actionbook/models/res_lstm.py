"""Residual stacked LSTM (Res-LSTM), Lakhal et al. (paper 000, poster 002).

A video becomes a short sequence of T clip features x^0 = (x_1^0 .. x_T^0) from a 3D CNN
(clip sampling σ(t), 10-crop mean, PCA to d_m: `actionbook.features`). A stack of L LSTM
layers reads it; each layer adds its input to its output, as a residual block does (Eq. 1):

    c_t^l, m_t^l = LSTM_l(c_{t-1}^l, m_{t-1}^l, x_t^{l-1})
    x_t^l        = m_t^l + x_t^{l-1}                 for l = 1 .. L

and the class scores come from the last layer's hidden state at the last step (Eq. 2):

    y^ = softmax(W_y m_T^L)

Two details follow the equations as written:
- Layer 1 has a residual connection too (l runs from 1, and x^0 is the input): "the
  dimension of the input at time t in layer l must be the same as the memory m_t^l". So the
  features must already have hidden_size dimensions; the paper reduces its 4096-d C3D
  features with PCA to d_m ∈ {256, 512, 1024, 2048} and sets the LSTM size to d_m.
- The classifier reads m_T^L, the LSTM's own output, not the residual sum x_T^L.

With `residual=False` the model is exactly a plain stacked LSTM (`torch.nn.LSTM` with
num_layers=L), classified from its last output. The paper names no dropout; `dropout`
(default 0) drops m_T^L before the classifier if asked.

Two streams (Sec. 3.2, Fig. 2): *mid fusion* combines the RGB and flow features element-wise
(sum ⊕ or product ⊙) before one Res-LSTM (`MidFusionResLSTM`); *late fusion* trains one
`ResLSTM` per stream, independently, and combines their softmax scores with
`actionbook.metrics.fuse` (sum, product, or TSN's weighted 1.5 flow : 1 RGB); the chapter
(`actionbook.experiments.res_lstm.late_scores`) does that on the two streams' test scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

FUSIONS = ("sum", "product")


@dataclass
class ResLSTMConfig:
    """A Res-LSTM head on clip features (paper 000, Sec. 3.1 and 4)."""

    input_size: int  # d_m: the feature size after PCA (must equal hidden_size with residual)
    num_classes: int
    hidden_size: int = 1024  # the paper's h (Fig. 3a)
    num_layers: int = 2  # the paper's best depth (Fig. 3b–c)
    residual: bool = True  # Eq. 1; False gives a plain stacked LSTM
    dropout: float = 0.0  # before the classifier; the paper names none

    def __post_init__(self) -> None:
        for name in ("input_size", "num_classes", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ResLSTMConfig.{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ResLSTMConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.residual and self.input_size != self.hidden_size:
            raise ValueError(
                f"Res-LSTM with residual=True needs input_size == hidden_size, got input_size="
                f"{self.input_size} and hidden_size={self.hidden_size}: the residual x_t^l = "
                f"m_t^l + x_t^(l-1) (Eq. 1) adds the layer's input to its output element-wise, "
                f"from layer 1 on. Reduce the features to {self.hidden_size} dimensions with PCA "
                f"(as the paper does; see actionbook.features), or set residual=False."
            )


class ResLSTM(nn.Module):
    """Stacked LSTM with residual connections between layers (Eq. 1), classified by Eq. 2.

    features (B, T, input_size) -> logits (B, num_classes).
    """

    def __init__(self, config: ResLSTMConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.input_size] + [config.hidden_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(nn.LSTM(i, config.hidden_size, batch_first=True) for i in sizes)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.hidden_size, config.num_classes)  # W_y

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.input_size:
            raise ValueError(
                f"Res-LSTM expects features of shape (batch, time, {self.config.input_size}), got "
                f"{tuple(x.shape)}; set ResLSTMConfig.input_size to the feature size"
            )
        for lstm in self.layers:
            m, _ = lstm(x)  # (B, T, H): m_t^l for all t
            x = m + x if self.config.residual else m  # (B, T, H): x_t^l, Eq. 1
        return self.fc(self.dropout(m[:, -1]))  # (B, P): W_y m_T^L, Eq. 2 (before softmax)


def _fuse_features(rgb: Tensor, flow: Tensor, how: str) -> Tensor:
    if rgb.shape != flow.shape:
        raise ValueError(f"mid fusion needs RGB and flow features of the same shape, got "
                         f"{tuple(rgb.shape)} and {tuple(flow.shape)}")
    if how == "sum":
        return rgb + flow  # x_t^c ⊕ x_t^f
    if how == "product":
        return rgb * flow  # x_t^c ⊙ x_t^f
    raise ValueError(f"fusion must be one of {FUSIONS}, got {how!r}")


class MidFusionResLSTM(nn.Module):
    """Mid fusion (Sec. 3.2, Fig. 2a): x_t^0 = x_t^c ∘ x_t^f, ∘ ∈ {⊕, ⊙}, then one Res-LSTM.

    rgb, flow (B, T, input_size) -> logits (B, num_classes).
    """

    def __init__(self, config: ResLSTMConfig, *, fusion: str = "sum") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.fusion = fusion
        self.net = ResLSTM(config)

    def forward(self, rgb: Tensor, flow: Tensor) -> Tensor:
        return self.net(_fuse_features(rgb, flow, self.fusion))  # (B, T, D) -> (B, P)


def res_lstm(*, input_size: int, num_classes: int, hidden_size: int = 1024, num_layers: int = 2,
             residual: bool = True, dropout: float = 0.0) -> ResLSTM:
    """Res-LSTM (Lakhal et al., paper 000, Eq. 1–2): L residual LSTM layers, scores from m_T^L.

    Defaults are the paper's choices: h = 1024 (Fig. 3a), 2 layers (Fig. 3b–c). With
    `residual=True`, `input_size` must equal `hidden_size` (PCA the features to d_m first).
    """
    return ResLSTM(ResLSTMConfig(input_size=input_size, num_classes=num_classes,
                                 hidden_size=hidden_size, num_layers=num_layers,
                                 residual=residual, dropout=dropout))


def mid_fusion_res_lstm(*, input_size: int, num_classes: int, fusion: str = "sum",
                        hidden_size: int = 1024, num_layers: int = 2, residual: bool = True,
                        dropout: float = 0.0) -> MidFusionResLSTM:
    """Two-stream Res-LSTM with mid fusion (paper 000, Sec. 3.2, Table 2 "Mid fusion")."""
    return MidFusionResLSTM(ResLSTMConfig(input_size=input_size, num_classes=num_classes,
                                          hidden_size=hidden_size, num_layers=num_layers,
                                          residual=residual, dropout=dropout), fusion=fusion)
