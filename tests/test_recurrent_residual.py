"""The recurrent residual network (Iqbal et al.): the plain ResNet without skips, the reach of k
skips, and Eq. 2-4 written out literally."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

from actionbook.models.recurrent_residual import (
    RecurrentResidualConfig,
    RecurrentResidualResNet,
    TemporalSkip,
    position_unit,
    skip_units,
)


def _resnet18(classes: int = 5) -> torchvision.models.ResNet:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=classes)
    with torch.no_grad():  # non-trivial BN statistics, so that eval mode is not the identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_context_one_is_the_plain_resnet_on_every_frame():
    net = _resnet18()
    model = RecurrentResidualResNet(copy.deepcopy(net), RecurrentResidualConfig(context=1, start="stem")).eval()
    frames = torch.rand(2, 3, 3, 32, 32)                                    # (B, T, 3, H, W)
    with torch.no_grad():
        ours = model.forward_steps(frames)                                  # (B, T, P)
        plain = net(frames.flatten(0, 1)).unflatten(0, (2, 3))              # (B, T, P)
    assert ours.shape == plain.shape == (2, 3, 5)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)
    # and from a cached map upward: the top units alone, on the map entering them
    top = RecurrentResidualResNet(copy.deepcopy(net), RecurrentResidualConfig(context=1, start="layer4.1")).eval()
    with torch.no_grad():
        stem_to_map = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2,
                                          net.layer3, net.layer4[0])
        maps = stem_to_map(frames.flatten(0, 1)).unflatten(0, (2, 3))      # (B, T, 512, 1, 1)
        torch.testing.assert_close(top.forward_steps(maps), plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("context, position", [(2, "Block4"), (3, "Block4"), (4, "Block4"), (2, "Block2")])
def test_k_skips_reach_exactly_k_frames_back(context, position):
    net = _resnet18()
    k = context - 1
    model = RecurrentResidualResNet(net, RecurrentResidualConfig(position=position, context=context, start="stem",
                                                                 skip="linear")).eval()
    T = context + 2                                                         # more steps than the context
    x = torch.rand(1, T, 3, 32, 32, requires_grad=True)
    steps = model.forward_steps(x)                                          # (1, T - k, P)
    assert steps.shape[1] == T - k
    steps[0, -1].sum().backward()                                           # the last output step, t = T
    reach = x.grad.abs().flatten(2).sum(2)[0]                               # (T,) gradient per input frame
    assert (reach[T - 1 - k:] > 0).all(), reach                             # x_{T-k} .. x_T count
    assert (reach[: T - 1 - k] == 0).all(), reach                           # x_{T-k-1} and before do not


def test_skip_units_follow_the_paper_positions():
    r18 = torchvision.models.resnet18()
    r50 = torchvision.models.resnet50()
    assert [position_unit(r50, p) for p in ("Block1", "Block2", "Mid Block4", "Block4")] == \
        ["layer1.0", "layer2.3", "layer4.0", "layer4.2"]
    assert [position_unit(r18, p) for p in ("Block1", "Block2", "Mid Block4", "Block4")] == \
        ["layer1.0", "layer2.1", "layer4.0", "layer4.1"]
    assert skip_units(r50, "Block4", 1) == []
    assert skip_units(r50, "Block4", 3) == ["layer4.1", "layer4.2"]
    assert skip_units(r18, "Block4", 5) == ["layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    with pytest.raises(ValueError, match="skips"):
        skip_units(r18, "Block1", 3)


@pytest.mark.parametrize("unit_name", ["layer4.1", "layer4.0"])  # a same-shape unit and a projection unit
@pytest.mark.parametrize("kind", ["identity", "linear", "nonlinear"])
def test_skip_types_are_eq_2_to_4(kind, unit_name):
    net = _resnet18()
    unit = net.get_submodule(unit_name)
    wrapped = TemporalSkip(copy.deepcopy(unit), kind).eval()
    if kind != "identity":
        with torch.no_grad():
            wrapped.w_s.weight.normal_()
            if kind == "nonlinear":
                wrapped.bn_s.running_mean.uniform_(-1, 1)
    c = unit.conv1.in_channels
    x = torch.randn(3, 2, c, 4, 4)                                          # (B, T=2, C, H, W)
    with torch.no_grad():
        y = wrapped(x)[:, 0]                                                # (B, C', H', W'): the step t = 2
        x_t, x_prev = x[:, 1], x[:, 0]
        spatial = unit(x_t)                                                 # the pretrained unit: F(x_t) + x_t
        if kind == "identity":                                              # Eq. 2
            prev = x_prev if unit.downsample is None else unit.downsample(x_prev)
            expected = spatial + prev
        else:
            z = torch.nn.functional.conv2d(x_prev, wrapped.w_s.weight, stride=wrapped.w_s.stride)  # x_{t-1} * W_s
            if kind == "linear":                                            # Eq. 3
                expected = spatial + z
            else:                                                           # Eq. 4, σ = ReLU(BN(.))
                bn = wrapped.bn_s
                zn = (z - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var + bn.eps)[None, :, None, None]
                expected = spatial + torch.relu(zn * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    # the identity skip adds no parameter; the others add one 1x1 convolution (and a BN)
    extra = sum(p.numel() for p in wrapped.parameters()) - sum(p.numel() for p in unit.parameters())
    cin, cout = c, wrapped.unit.bn2.num_features
    assert extra == {"identity": 0, "linear": cin * cout, "nonlinear": cin * cout + 2 * cout}[kind]


def test_backbone_maps_entering_any_unit():
    from actionbook.features import backbones as B

    from actionbook.features.pretrain import PretrainConfig

    w, x = PretrainConfig().width, torch.rand(2, 3, 56, 56)  # the ci width: stages w, 2w, 4w, 8w
    with torch.no_grad():
        get = lambda layer: B.backbone("resnet18", layer=layer, weights=None, mode="ci")(x)  # noqa: E731 (same seed)
        assert get("stem_map").shape == (2, w, 14, 14)
        torch.testing.assert_close(get("layer1.1_map"), get("layer1_map"))      # the last unit = the stage
        torch.testing.assert_close(get("layer4.0_map"), get("conv5_1_map"))     # the Relational LSTM's name
        assert get("layer2.0_map").shape == (2, 2 * w, 7, 7)
        assert not torch.allclose(get("layer3.0_map"), get("layer3_map"))       # one unit short of the stage
    with pytest.raises(ValueError, match="has 2 units"):
        B.backbone("resnet18", layer="layer2.2_map", weights=None, mode="ci")
