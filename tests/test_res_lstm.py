"""Res-LSTM (paper 000, Eq. 1–2) and its two-stream variants (Sec. 3.2)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actionbook.models.res_lstm import (
    MidFusionResLSTM, ResLSTM, ResLSTMConfig, mid_fusion_res_lstm, res_lstm,
)


def _copy_into_layers(stacked: nn.LSTM, model: ResLSTM) -> None:
    """Copy a torch.nn.LSTM(num_layers=L)'s weights into the Res-LSTM's L one-layer LSTMs."""
    with torch.no_grad():
        for l, layer in enumerate(model.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, f"{name}_l0").copy_(getattr(stacked, f"{name}_l{l}"))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_residual_off_is_a_plain_stacked_lstm(dtype, tol, num_layers):
    torch.manual_seed(0)
    model = res_lstm(input_size=6, num_classes=5, hidden_size=8, num_layers=num_layers,
                     residual=False).to(dtype).eval()
    stacked = nn.LSTM(6, 8, num_layers=num_layers, batch_first=True).to(dtype)
    _copy_into_layers(stacked, model)
    x = torch.randn(4, 7, 6, dtype=dtype)
    out, _ = stacked(x)  # (B, T, H)
    torch.testing.assert_close(model(x), model.fc(out[:, -1]), rtol=0, atol=tol)


def test_residual_on_follows_eq_1_from_layer_1():
    torch.manual_seed(0)
    model = res_lstm(input_size=8, num_classes=5, hidden_size=8, num_layers=2).double().eval()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    m1, _ = model.layers[0](x)
    x1 = m1 + x  # x^1 = m^1 + x^0: the input already has a residual
    m2, _ = model.layers[1](x1)
    torch.testing.assert_close(model(x), model.fc(m2[:, -1]), rtol=0, atol=1e-12)  # Eq. 2: m_T^L
    assert model(x).shape == (3, 5)


def _dead_first_layer(residual: bool) -> ResLSTM:
    torch.manual_seed(0)
    model = res_lstm(input_size=8, num_classes=5, hidden_size=8, num_layers=2,
                     residual=residual).double()
    with torch.no_grad():
        for p in model.layers[0].parameters():
            p.zero_()  # layer 1 outputs m^1 = 0 whatever its input: it passes no gradient
    return model


def test_gradient_reaches_the_input_only_through_the_residual_path():
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1, 3])

    plain = _dead_first_layer(residual=False)
    (g_plain,) = torch.autograd.grad(nn.functional.cross_entropy(plain(x), target), x)
    assert torch.all(g_plain == 0)

    res = _dead_first_layer(residual=True)
    (g_res,) = torch.autograd.grad(nn.functional.cross_entropy(res(x), target), x)
    assert g_res.abs().sum() > 1e-3
    # With layer 1 dead, x^1 = x^0: the model is layer 2 alone on the input, gradient included.
    x2 = x.detach().clone().requires_grad_()
    m2, _ = res.layers[1](x2)
    (g_direct,) = torch.autograd.grad(nn.functional.cross_entropy(res.fc(m2[:, -1]), target), x2)
    torch.testing.assert_close(g_res, g_direct, rtol=0, atol=1e-12)


def test_size_mismatch_with_residual_says_to_use_pca():
    with pytest.raises(ValueError, match=r"input_size=4096 and hidden_size=1024.*PCA"):
        res_lstm(input_size=4096, num_classes=101)
    assert res_lstm(input_size=4096, num_classes=101, residual=False, hidden_size=16).layers[0].input_size == 4096
    with pytest.raises(ValueError, match=r"\(batch, time, 8\)"):
        res_lstm(input_size=8, hidden_size=8, num_classes=3)(torch.randn(2, 5, 9))


@pytest.mark.parametrize("fusion, op", [("sum", torch.add), ("product", torch.mul)])
def test_mid_fusion_combines_features_element_wise(fusion, op):
    torch.manual_seed(0)
    model = mid_fusion_res_lstm(input_size=8, hidden_size=8, num_classes=4, fusion=fusion).eval()
    rgb, flow = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    torch.testing.assert_close(model(rgb, flow), model.net(op(rgb, flow)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="same shape"):
        model(rgb, flow[:, :4])
    with pytest.raises(ValueError, match="fusion"):
        MidFusionResLSTM(ResLSTMConfig(input_size=8, hidden_size=8, num_classes=4), fusion="concat")
