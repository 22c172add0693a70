"""The Relational LSTM model (Chen et al.): r(X, Y), the cell of Eq. 3, the two-branch network, TSN."""

from __future__ import annotations

import pytest
import torch

from actionbook.models.relational_lstm import (
    TSN,
    MovingBatchNorm2d,
    NonLocal,
    RelationalConfig,
    RelationalLSTM,
    RelationalLSTMCell,
    TwoBranch,
    non_local_reference,
)


def _head(op: NonLocal, k: int) -> tuple[torch.Tensor, ...]:
    """The weights of head k of a NonLocal: (W_θ, b_θ, W_φ, b_φ, W_g, b_g)."""
    e, c = op.embed, op.c_out
    th, ph, g = op.theta, op.phi, op.g
    return (th.weight[k * e:(k + 1) * e], th.bias[k * e:(k + 1) * e], ph.weight[k * e:(k + 1) * e],
            ph.bias[k * e:(k + 1) * e], g.weight[k * c:(k + 1) * c], g.bias[k * c:(k + 1) * c])


def test_non_local_matches_the_double_loop_of_eq_2_and_4():
    torch.manual_seed(0)
    op = NonLocal(6, 4, 3, embed=5, heads=2).double()
    x, y = torch.randn(2, 7, 6, dtype=torch.float64), torch.randn(2, 9, 4, dtype=torch.float64)
    z = op(x, y)                                                       # (2, 7, 6)
    assert z.shape == (2, 7, 6)
    with torch.no_grad():
        for b in range(2):
            for k in range(2):
                ref = non_local_reference(x[b], y[b], *_head(op, k))
                torch.testing.assert_close(z[b, :, 3 * k:3 * (k + 1)], ref)


def test_permuting_the_positions_of_x_permutes_the_output_the_same_way():
    """What "non-local" means: r(X, X) relates every position to every other, wherever it is."""
    torch.manual_seed(1)
    op = NonLocal(8, 8, 4, embed=4, heads=2)
    x = torch.randn(3, 12, 8)
    perm = torch.randperm(12)
    torch.testing.assert_close(op(x[:, perm], x[:, perm]), op(x, x)[:, perm])
    # and with a fixed Y (the cell's r(X_t, H_{t-1})), permuting X permutes the output
    y = torch.randn(3, 12, 8)
    torch.testing.assert_close(op(x[:, perm], y), op(x, y)[:, perm])


def test_the_cell_is_eq_3_step_by_step():
    torch.manual_seed(2)
    C, hid, e, N = 6, 3, 4, 5
    cell = RelationalLSTMCell(C, hid, embed=e).double()
    x = torch.randn(1, N, C, dtype=torch.float64)
    h0, c0 = torch.randn(1, N, hid, dtype=torch.float64), torch.randn(1, N, hid, dtype=torch.float64)
    h1, c1 = cell(x, (h0, c0))
    with torch.no_grad():
        r = {}
        for k, gate in enumerate(cell.GATES):                          # eight operations, own weights each
            r[gate] = (non_local_reference(x[0], x[0], *_head(cell.r_x, k))
                       + non_local_reference(x[0], h0[0], *_head(cell.r_h, k)))
        i, f, o = torch.sigmoid(r["i"]), torch.sigmoid(r["f"]), torch.sigmoid(r["o"])
        g = torch.tanh(r["g"])
        c_ref = f * c0[0] + i * g
        h_ref = o * torch.tanh(c_ref)
    torch.testing.assert_close(c1[0], c_ref)
    torch.testing.assert_close(h1[0], h_ref)


def test_the_eight_operations_have_their_own_weights():
    cell = RelationalLSTMCell(6, 3, embed=4)
    assert cell.r_x.heads == cell.r_h.heads == 4
    heads = [_head(op, k) for op in (cell.r_x, cell.r_h) for k in range(4)]
    flat = [torch.cat([w.flatten() for w in h]) for h in heads]
    assert all(not torch.equal(a, b) for i, a in enumerate(flat) for b in flat[i + 1:] if a.shape == b.shape)


def test_the_recurrence_starts_at_zero_and_keeps_the_spatial_layout():
    torch.manual_seed(3)
    B, T, C, H, W = 2, 4, 8, 3, 5
    net = RelationalLSTM(C, C // 2, embed=4)
    x = torch.randn(B, T, C, H, W)
    out = net(x, return_all=True)
    assert out.shape == (B, T, C // 2, H, W)
    torch.testing.assert_close(net(x), out[:, -1])
    # the first step is the cell from H_0 = C_0 = 0
    seq = x[:, 0].flatten(2).transpose(1, 2)                           # (B, N, C)
    zero = torch.zeros(B, H * W, C // 2)
    h1, _ = net.cell(seq, (zero, zero))
    torch.testing.assert_close(out[:, 0], h1.transpose(1, 2).reshape(B, C // 2, H, W))
    # H_t keeps the layout: moving one snippet's content moves the first hidden map the same way
    flipped = x.flip(-1)
    torch.testing.assert_close(net(flipped, return_all=True)[:, 0], out[:, 0].flip(-1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("branches, width", [("both", 8 + 5), ("local", 5), ("nonlocal", 8)])
def test_two_branch_shapes_and_which_branch_is_used(branches, width):
    torch.manual_seed(4)
    cfg = RelationalConfig(channels=8, local_dim=5, num_classes=7, branches=branches, dropout=0.0)
    net = TwoBranch(cfg).eval()
    maps, pooled = torch.randn(3, 4, 8, 3, 3), torch.randn(3, 4, 5)
    out = net(maps, pooled)
    assert out.shape == (3, 7) and net.fc.in_features == width
    # a branch that is left out does not see its input
    other = net(maps + 1 if branches == "local" else maps, pooled + 1 if branches == "nonlocal" else pooled)
    torch.testing.assert_close(other, out)
    if branches != "nonlocal":  # the local branch changes the output
        assert not torch.allclose(net(maps, pooled + 1), out)
    if branches != "local":
        assert not torch.allclose(net(maps + torch.randn_like(maps), pooled), out)
        assert net.bn.momentum == cfg.bn_momentum and net.expand.in_channels == 4


def test_tsn_is_the_mean_of_snippet_scores():
    torch.manual_seed(5)
    net = TSN(6, 4, dropout=0.0)
    pooled = torch.randn(2, 5, 6)
    per_snippet = torch.stack([net.fc(pooled[:, t]) for t in range(5)], 1)
    torch.testing.assert_close(net(None, pooled), per_snippet.mean(1))


def test_bad_branches_is_an_error():
    with pytest.raises(ValueError, match="branches"):
        RelationalConfig(channels=4, local_dim=4, num_classes=2, branches="two")


def test_moving_batch_norm_normalises_by_its_moving_statistics_in_training_too():
    bn = MovingBatchNorm2d(3, momentum=0.1)
    x = 5 + 2 * torch.randn(8, 3, 4, 4)
    out = bn.train()(x)
    # normalised with the moving statistics *after* this batch's update, not the batch's own
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(dim=(0, 2, 3)))
    expect = (x - bn.running_mean.view(1, 3, 1, 1)) / (bn.running_var.view(1, 3, 1, 1) + bn.eps).sqrt()
    torch.testing.assert_close(out, expect)
    torch.testing.assert_close(bn.eval()(x), out)  # the same normalisation when testing
