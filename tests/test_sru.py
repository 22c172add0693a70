"""SRU (paper 001, Eq. 2–6), RRN pooling (Eq. 8–9) and MRRN level fusion (Eq. 10)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actionbook.models.mrrn import RRNConfig, level_fusion, rrn, temporal_pool
from actionbook.models.sru import SRU, SRUConfig, SRULayer, _LinearScan, sru, sru_layer_reference


def _layer(input_size: int, hidden_size: int, seed: int = 0) -> SRULayer:
    torch.manual_seed(seed)
    layer = SRULayer(input_size, hidden_size).double()
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)  # non-zero biases, so that b_f and b_r are tested too
    return layer.eval()


@pytest.mark.parametrize("input_size, hidden_size", [(5, 5), (3, 5), (7, 4)])
def test_layer_matches_step_by_step_equations_values_and_gradients(input_size, hidden_size):
    layer = _layer(input_size, hidden_size)
    torch.manual_seed(1)
    T, B = 6, 3
    x = torch.randn(T, B, input_size, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, hidden_size, dtype=torch.float64, requires_grad=True)
    w_out = torch.randn(T, B, hidden_size, dtype=torch.float64)  # a loss that weighs every h_t
    w_c = torch.randn(B, hidden_size, dtype=torch.float64)

    h, c = layer(x, c0)
    loss = (h * w_out).sum() + (c * w_c).sum()
    grads = torch.autograd.grad(loss, [x, c0, layer.weight, layer.bias])

    h_ref, c_ref = sru_layer_reference(x, layer.weight, layer.bias, c0)
    loss_ref = (h_ref * w_out).sum() + (c_ref * w_c).sum()
    grads_ref = torch.autograd.grad(loss_ref, [x, c0, layer.weight, layer.bias])

    torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(c, c_ref, rtol=0, atol=1e-12)
    for g, g_ref, name in zip(grads, grads_ref, ["x", "c0", "weight", "bias"]):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-10, msg=f"gradient of {name}")


def test_highway_uses_a_projection_only_when_sizes_differ():
    assert SRULayer(5, 5).weight.shape == (15, 5)  # [W; W_f; W_r]
    assert SRULayer(3, 5).weight.shape == (20, 3)  # [W; W_f; W_r; W_h]


def test_hand_computed_two_steps():
    # I = H = 1, W = 1, W_f = W_r = 0, biases 0: f = r = 1/2 at every step, x~_t = x_t.
    layer = SRULayer(1, 1).double().eval()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0], [0.0], [0.0]]))
        layer.bias.zero_()
    x = torch.tensor([1.0, 3.0], dtype=torch.float64).view(2, 1, 1)
    h, c = layer(x)
    c1 = 0.5 * 0 + 0.5 * 1.0  # Eq. 5
    c2 = 0.5 * c1 + 0.5 * 3.0
    h1 = 0.5 * math.tanh(c1) + 0.5 * 1.0  # Eq. 6
    h2 = 0.5 * math.tanh(c2) + 0.5 * 3.0
    assert h.flatten().tolist() == pytest.approx([h1, h2], abs=1e-15)
    assert c.item() == pytest.approx(c2, abs=1e-15)


def test_linear_scan_gradcheck():
    torch.manual_seed(0)
    f = torch.rand(5, 2, 3, dtype=torch.float64, requires_grad=True)
    z = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_LinearScan.apply, (f, z, c0))


def test_stacked_shapes_and_equal_to_chained_reference_layers():
    torch.manual_seed(0)
    model = SRU(SRUConfig(input_size=6, hidden_size=8, num_layers=3, dropout=0.5)).double().eval()
    assert [tuple(layer.weight.shape) for layer in model.layers] == [(32, 6), (24, 8), (24, 8)]
    x = torch.randn(2, 5, 6, dtype=torch.float64)  # (B, T, I)
    h, c = model(x)
    assert h.shape == (2, 5, 8) and c.shape == (3, 2, 8)
    ref = x.transpose(0, 1)
    for i, layer in enumerate(model.layers):
        ref, c_ref = sru_layer_reference(ref, layer.weight, layer.bias)
        torch.testing.assert_close(c[i], c_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, ref.transpose(0, 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("input_size, hidden_size", [(8, 8), (4, 8), (8, 4)])
def test_orthogonal_initialisation_of_each_block(input_size, hidden_size):
    layer = SRULayer(input_size, hidden_size)
    blocks = layer.weight.detach().double().view(-1, hidden_size, input_size)
    assert len(blocks) == (3 if input_size == hidden_size else 4)
    for w in blocks:  # (H, I): orthonormal columns if H >= I, orthonormal rows if H < I
        gram = w.T @ w if hidden_size >= input_size else w @ w.T
        torch.testing.assert_close(gram, torch.eye(len(gram), dtype=gram.dtype), atol=1e-5, rtol=0)
    assert torch.all(layer.bias == 0)


def test_dropout_mask_is_shared_by_all_time_steps_and_off_in_eval():
    # W = identity, f ≈ 0 (b_f = -50), r ≈ 1 (b_r = +50): h_t = tanh(mask ⊙ x_t) exactly enough.
    torch.manual_seed(0)
    layer = SRULayer(16, 16, dropout=0.5).double()
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:16].copy_(torch.eye(16))
        layer.bias[:16] = -50.0
        layer.bias[16:] = 50.0
    x = torch.ones(7, 4, 16, dtype=torch.float64)  # the same input at every step
    h, _ = layer.train()(x)
    assert torch.equal(h, h[:1].expand_as(h))  # one mask per sequence, the same at every t
    values = set(torch.round(h, decimals=6).unique().tolist())
    assert values == {0.0, round(math.tanh(2.0), 6)}  # dropped, or kept and scaled by 1/(1-p)
    h_eval, _ = layer.eval()(x)
    torch.testing.assert_close(h_eval, torch.full_like(h_eval, math.tanh(1.0)), atol=1e-12, rtol=0)


def test_bad_input_size_is_a_clear_error():
    model = sru(input_size=6, hidden_size=8, num_layers=2)
    with pytest.raises(ValueError, match=r"input_size"):
        model(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="dropout"):
        SRUConfig(input_size=4, dropout=1.0)


def test_temporal_pooling_by_hand():
    scores = torch.tensor([[[1.0, 5.0], [3.0, 0.0], [2.0, 1.0]]])  # (B=1, T=3, P=2)
    assert temporal_pool(scores, how="mean").tolist() == [[2.0, 2.0]]  # Eq. 8
    assert temporal_pool(scores, how="max").tolist() == [[3.0, 5.0]]  # Eq. 9: per class
    with pytest.raises(ValueError, match="mean"):
        temporal_pool(scores, how="sum")


def test_rrn_pools_per_step_scores():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6)
    model = rrn(input_size=6, num_classes=3, hidden_size=8, num_layers=2, pooling="max").eval()
    steps = model.step_scores(x)
    assert steps.shape == (2, 5, 3)
    torch.testing.assert_close(model(x), steps.amax(dim=1))
    h, _ = model.sru(x)
    torch.testing.assert_close(steps, model.fc(torch.tanh(h)))  # tanh before the FC
    model.config.pooling = "mean"
    torch.testing.assert_close(model(x), steps.mean(dim=1))
    with pytest.raises(ValueError, match="pooling"):
        RRNConfig(input_size=6, num_classes=3, pooling="avg")


def test_level_fusion_by_hand():
    # softmax: low [0, 0] -> [1/2, 1/2]; mid [log 3, 0] -> [3/4, 1/4]; high [0, log 4] -> [1/5, 4/5]
    low = torch.tensor([[0.0, 0.0]])
    mid = torch.tensor([[math.log(3.0), 0.0]])
    high = torch.tensor([[0.0, math.log(4.0)]])
    fused = level_fusion([low, mid, high], weights=(0.1, 0.2, 0.7))  # Eq. 10
    expected = [0.1 * 0.5 + 0.2 * 0.75 + 0.7 * 0.2, 0.1 * 0.5 + 0.2 * 0.25 + 0.7 * 0.8]  # .34, .66
    assert fused.flatten().tolist() == pytest.approx(expected, abs=1e-6)
    only_high = level_fusion([low, mid, high], weights=(0.0, 0.0, 1.0))
    assert only_high.flatten().tolist() == pytest.approx([0.2, 0.8], abs=1e-6)


def test_level_fusion_of_probabilities_weighs_them_as_they_are():
    # the chapter fuses video scores that are already softmax averages: no second softmax
    low, mid, high = (torch.tensor([[0.5, 0.5]]), torch.tensor([[0.75, 0.25]]), torch.tensor([[0.2, 0.8]]))
    fused = level_fusion([low, mid, high], weights=(0.1, 0.2, 0.7), softmax=False)
    assert fused.flatten().tolist() == pytest.approx([0.34, 0.66], abs=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    model = SRU(SRUConfig(input_size=6, hidden_size=8, num_layers=2)).double().eval()
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    h, _ = model(x)
    (g,) = torch.autograd.grad(h.square().sum(), x)
    x_cuda = x.detach().cuda().requires_grad_()
    h_cuda, _ = model.cuda()(x_cuda)
    (g_cuda,) = torch.autograd.grad(h_cuda.square().sum(), x_cuda)
    torch.testing.assert_close(h_cuda.cpu(), h, rtol=0, atol=1e-10)
    torch.testing.assert_close(g_cuda.cpu(), g, rtol=0, atol=1e-10)


def test_lrcn_baseline_shapes():
    from actionbook.models.lrcn import FramesThenHead, LSTMHead

    head = LSTMHead(6, 8, 2, num_classes=3)
    model = FramesThenHead(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6)), head)
    assert tuple(model(torch.rand(2, 5, 3, 4, 4)).shape) == (2, 3)  # (B, T, 3, H, W) -> (B, P)
