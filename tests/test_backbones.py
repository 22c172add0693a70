"""Frozen backbones: layers and shapes, freezing, flow initialisation, inflation, offline weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchvision

from actionbook.features import backbones as B
from actionbook.features import ci_nets
from actionbook.features.pretrain import PretrainConfig

W = PretrainConfig().width  # the ci networks' stage-1 width: stages W, 2W, 4W, 8W (torchvision's: 64)


def test_missing_weights_message_names_enum_file_path_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(B.MissingWeightsError) as e:
        B.backbone("resnet34", layer="layer4", weights="IMAGENET1K_V1", mode="full")
    msg = str(e.value)
    w = torchvision.models.ResNet34_Weights.IMAGENET1K_V1
    assert "ResNet34_Weights.IMAGENET1K_V1" in msg
    assert "resnet34-b627a593.pth" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet34-b627a593.pth") in msg
    assert w.url in msg
    # DEFAULT resolves to the member it points to (ResNet-50's is V2)
    with pytest.raises(B.MissingWeightsError, match="ResNet50_Weights.IMAGENET1K_V2"):
        B.backbone("resnet50", layer="layer4", weights="DEFAULT", mode="full")


def test_weights_load_offline_through_torchvision(tmp_path, monkeypatch):
    """A file under the expected name is loaded by torchvision's own code path. check_hash
    only verifies the hash prefix when downloading, so a random state_dict loads too."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    w = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    path = B.weights_path(w)
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    torch.manual_seed(1)
    saved = torchvision.models.resnet18().state_dict()
    path.parent.mkdir(parents=True)
    torch.save(saved, path)
    net = B.backbone("resnet18", layer="layer4", weights="IMAGENET1K_V1", mode="full")
    assert torch.equal(net.stem[0].weight, saved["conv1.weight"])
    assert torch.equal(net.body[3][1].conv2.weight, saved["layer4.1.conv2.weight"])
    # the normalisation comes from the enum's transforms() metadata
    assert torch.allclose(net.mean.flatten(), torch.tensor(w.transforms().mean))
    assert torch.allclose(net.std.flatten(), torch.tensor(w.transforms().std))
    # a damaged file is reported, naming it
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(B.MissingWeightsError, match="resnet18-f37072fd.pth"):
        B.backbone("resnet18", layer="layer4", weights="IMAGENET1K_V1", mode="full")


def test_random_weights_go_under_the_official_name_and_never_replace_a_file(tmp_path, monkeypatch):
    """`save_random_weights` (the full-mode smoke test, benchmarks/gpu_full.py) writes a state_dict
    of the right architecture where torchvision looks for the DEFAULT weights; a file already
    there (perhaps the real one) is left alone."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = B.save_random_weights("resnet18")
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    net = B.backbone("resnet18", layer="layer2", weights="DEFAULT", mode="full")  # the real loading path
    state = torch.load(path, weights_only=True)
    assert torch.equal(net.stem[0].weight, state["conv1.weight"])
    path.write_bytes(b"the real file")
    assert B.save_random_weights("resnet18") == path and path.read_bytes() == b"the real file"


def test_ci_refuses_imagenet_weights_and_bad_names():
    with pytest.raises(ValueError, match="ci-pretrained"):
        B.backbone("resnet34", layer="layer4", weights="IMAGENET1K_V1", mode="ci")
    with pytest.raises(ValueError, match="no layer"):
        B.backbone("resnet34", layer="layer5", weights=None, mode="ci")
    with pytest.raises(ValueError, match="no member"):
        B.resolve_weights("resnet34", "IMAGENET9K", mode="full")


@pytest.mark.parametrize("layer, shape", [
    ("layer2", (2, 2 * W)), ("layer3", (2, 4 * W)), ("layer4", (2, 8 * W)),
    ("layer3_map", (2, 4 * W, 4, 4)), ("conv5_1_map", (2, 8 * W, 2, 2)), ("conv5_2_map", (2, 8 * W, 2, 2)),
])
def test_ci_frame_backbone_layers(layer, shape):
    net = B.backbone("resnet34", layer=layer, weights=None, mode="ci")  # ci: ResNet-18
    out = net(torch.rand(2, 3, 56, 56))
    assert tuple(out.shape) == shape
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_unit_maps_are_the_outputs_of_single_residual_units():
    """`layerS.U_map`: the output of unit U of stage S (the Relational LSTM's ci positions)."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 56, 56)
    maps = {n: B.backbone("resnet18", layer=n, weights=None, mode="ci")(x)
            for n in ("layer1.1_map", "layer2.0_map", "layer2.1_map", "layer2_map")}
    assert tuple(maps["layer1.1_map"].shape) == (2, W, 14, 14)
    assert tuple(maps["layer2.0_map"].shape) == tuple(maps["layer2.1_map"].shape) == (2, 2 * W, 7, 7)
    torch.testing.assert_close(maps["layer2.1_map"], maps["layer2_map"])  # the last unit is the stage's output
    assert not torch.allclose(maps["layer2.0_map"], maps["layer2.1_map"])
    net = B.backbone("resnet18", layer="layer2.0_map", weights=None, mode="ci")
    torch.testing.assert_close(net.body[-1][0](maps["layer1.1_map"]), maps["layer2.0_map"])
    with pytest.raises(ValueError, match="has 2 units"):
        B.backbone("resnet18", layer="layer2.2_map", weights=None, mode="ci")


def test_full_size_families_and_conv5_units():
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        x = torch.rand(1, 3, 64, 64)
        r50 = B.backbone("resnet50", layer="layer3_map", weights=None, mode="full")
        assert tuple(r50(x).shape) == (1, 1024, 4, 4)   # Iqbal: the input of block4
        r101 = B.backbone("resnet101", layer="conv5_2_map", weights=None, mode="full")
        assert tuple(r101(x).shape) == (1, 2048, 2, 2)  # Relational LSTM reads here
        assert len(r101.body[3]) == 2                   # layer4[0], layer4[1]
        r34 = B.backbone("resnet34", layer="layer2", weights=None, mode="full")
        assert tuple(r34(x).shape) == (1, 128)          # MRRN's low level
    with pytest.raises(ValueError, match="conv5_x has 2 units"):
        B.backbone("resnet101", layer="conv5_3_map", weights=None, mode="ci")
    assert B.input_size("resnet34", mode="full") == (256, 224)
    assert B.input_size("r2plus1d_18", mode="full") == (128, 112)
    assert B.input_size("resnet34", mode="ci") == (64, 56)


def test_flow_cross_modality_initialisation():
    torch.manual_seed(0)
    rgb = B.backbone("resnet18", layer="layer4", weights=None, mode="full")
    torch.manual_seed(0)
    flow = B.backbone("resnet18", layer="layer4", modality="flow", weights=None, mode="full", flow_length=5)
    w_rgb, w_flow = rgb.stem[0].weight, flow.stem[0].weight  # (64, 3, 7, 7), (64, 10, 7, 7)
    assert w_flow.shape == (64, 10, 7, 7)
    for c in range(10):
        assert torch.allclose(w_flow[:, c], w_rgb.mean(dim=1))
    std = torchvision.models.ResNet18_Weights.DEFAULT.transforms().std
    assert torch.allclose(flow.mean.flatten(), torch.full((10,), 0.5))
    assert torch.allclose(flow.std.flatten(), torch.full((10,), sum(std) / 3))
    assert tuple(flow(torch.rand(2, 10, 32, 32)).shape) == (2, 512)
    clip = B.backbone("r3d_18", layer="pool", modality="flow", weights=None, mode="ci")
    assert clip.body[0][0].weight.shape[1] == 2
    assert tuple(clip(torch.rand(1, 2, 4, 16, 16)).shape) == (1, 8 * W)


def test_inflation_reproduces_the_2d_network_on_still_clips():
    """I3D inflation: a clip of identical frames gives exactly the 2D network's activations at
    every frame (each 3-tap temporal kernel sums to the 2D kernel; time is edge-padded)."""
    torch.manual_seed(0)
    net2d = torchvision.models.resnet18().eval()
    net3d = ci_nets.inflated_r3d_18(num_classes=1000).eval()
    net3d.load_state_dict(ci_nets.inflate_resnet(net2d.state_dict()))
    img = torch.rand(1, 3, 32, 32)
    clip = img.unsqueeze(2).expand(-1, -1, 4, -1, -1)  # (1, 3, 4, 32, 32)
    with torch.no_grad():
        a2 = net2d.layer1(net2d.maxpool(net2d.relu(net2d.bn1(net2d.conv1(img)))))  # (1, 64, 8, 8)
        a3 = net3d.layer1(net3d.stem(clip))                                         # (1, 64, 4, 8, 8)
        assert torch.allclose(a3[:, :, 0], a2, atol=1e-4) and torch.allclose(a3[:, :, 3], a2, atol=1e-4)
        assert torch.allclose(net3d(clip), net2d(img), atol=1e-3)             # logits too
        moving = torch.stack([img.roll(4 * t, dims=-1) for t in range(4)], dim=2)  # (1, 3, 4, 32, 32)
        assert not torch.allclose(net3d.layer1(net3d.stem(moving))[:, :, 0], a2, atol=1e-2)


def test_clip_backbone_shape_and_pretrained_stage():
    net = B.backbone("r2plus1d_18", layer="pool", weights=None, mode="ci")
    assert tuple(net(torch.rand(2, 3, 8, 16, 16)).shape) == (2, 8 * W)
    with torch.device("meta"):
        stage = B.pretrained_stage("resnet50", stage="layer4", weights=None, mode="full")
        assert stage.training and all(p.requires_grad for p in stage.parameters())
        assert tuple(stage(torch.rand(1, 1024, 4, 4)).shape) == (1, 2048, 2, 2)


def _shapes(*, n: int, size: int, seed: int):
    """Stand-in for generate.static_images: a filled disc or square of a random colour."""
    from actionbook.data.generate import StaticImages

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 80, size=(n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n) % 2
    objects = np.full((n, 3, 4), np.nan, np.float32)  # where its one object is (`StaticImages.objects`)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx, r = rng.integers(size // 3, 2 * size // 3, 2).tolist() + [size // 5]
        objects[i, 0] = (cx, cy, r, labels[i])
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r if labels[i] == 0 else \
            (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        images[i][mask] = rng.integers(120, 256, 3)
    return StaticImages(images, labels, ["disc", "square"], np.eye(2, dtype=np.float32)[labels], objects)


def test_pretraining_is_cached_and_inflation_keeps_its_accuracy(tmp_path):
    from actionbook.features import pretrain as P

    cfg = P.PretrainConfig(n_train=32, n_test=16, size=24, crop=20, epochs=2, batch_size=32, n_test_3d=16)
    report = P.pretrain(cfg, images=_shapes, root=tmp_path, progress=False)
    assert report["key"] == P.pretrain_key(cfg) and report["chance"] == 0.5
    assert 0 <= report["test_accuracy"] <= 1
    # the held-out accuracy after every epoch; the last one is the final network's
    assert [c["epoch"] for c in report["curve"]] == [1, 2]
    assert report["curve"][-1]["test_accuracy"] == report["test_accuracy"]
    # on still clips the inflated 3D network computes the 2D network's logits: same accuracy
    assert report["inflated_3d_test_accuracy"] == pytest.approx(report["test_accuracy"])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"{report['key']}.json", f"{report['key']}.pt"]
    mtime = (tmp_path / files[1]).stat().st_mtime_ns
    assert P.pretrain(cfg, images=None, root=tmp_path) == report  # cached: static_images is not even called
    assert (tmp_path / files[1]).stat().st_mtime_ns == mtime
    assert P.pretrain_key(cfg) != P.pretrain_key(P.PretrainConfig(n_train=65))
    state = P.ci_state_dict(cfg, root=tmp_path)
    assert state["fc.weight"].shape == (4, 8 * W)  # kind logits | presence logits
    assert set(report["test_losses"]) == {"kind", "presence"}


def test_layout_targets_follow_the_flip_and_the_crop():
    """The layout head is told where each kind's object is in the crop it sees, not in the full image."""
    from actionbook.features import pretrain as P

    nan = float("nan")
    objects = torch.tensor([[[10.0, 20.0, 4.0, 1], [58.0, 5.0, 2.0, 0], [30.0, 30.0, 3.0, 1]],  # x, y, size, kind
                            [[nan, nan, nan, nan]] * 3])                                         # nothing shows
    where = dict(size=64, crop=56, grid=4, kinds=3)                                              # cells of 14 px
    box, known, occupied = P._layout(objects, torch.tensor([False, False]), (4, 8), **where)     # corner (dy, dx)
    assert known.tolist() == [[True, True, False], [False, False, False]]
    assert box[0, 1].tolist() == pytest.approx([2 / 56, 16 / 56, 4 / 56])  # kind 1: the main object wins
    assert box[0, 0].tolist() == pytest.approx([50 / 56, 1 / 56, 2 / 56])
    # (row, col) of each centre: (16 // 14, 2 // 14), (1 // 14, 50 // 14), (26 // 14, 22 // 14)
    assert occupied[0].view(4, 4).nonzero().tolist() == [[0, 3], [1, 0], [1, 1]] and occupied[1].sum() == 0
    # flipped: x -> 63 - x before the crop; the second object's centre falls left of the crop: no cell
    box, known, occupied = P._layout(objects[:1], torch.tensor([True]), (4, 8), **where)
    assert box[0, 1].tolist() == pytest.approx([45 / 56, 16 / 56, 4 / 56])
    assert box[0, 0, 0] < 0 and occupied[0].view(4, 4).nonzero().tolist() == [[1, 1], [1, 3]]


def test_pretraining_with_the_layout_head(tmp_path):
    from actionbook.features import pretrain as P

    cfg = P.PretrainConfig(n_train=32, n_test=16, size=24, crop=20, epochs=1, batch_size=32, n_test_3d=16,
                           layout_weight=1.0, layout_grid=2)
    with pytest.raises(ValueError, match="objects"):
        P.pretrain(cfg, images=lambda **kw: dataclasses.replace(_shapes(**kw), objects=None), root=tmp_path,
                   progress=False)  # images that say nowhere where their objects are
    report = P.pretrain(cfg, images=_shapes, root=tmp_path, progress=False)
    assert set(report["test_losses"]) == {"kind", "presence", "where", "occupancy"}
    assert P.ci_state_dict(cfg, root=tmp_path)["fc.weight"].shape == (4 + 2 * 3 + 4, 8 * W)  # kind | presence | layout
    assert P.pretrain_key(cfg) != P.pretrain_key(dataclasses.replace(cfg, layout_weight=0.5))


def test_pretraining_runs_under_no_grad_and_leaves_the_callers_random_stream(tmp_path):
    """It may run lazily inside a feature extractor (under no_grad) or an experiment (seeded)."""
    from actionbook.features import pretrain as P

    cfg = P.PretrainConfig(n_train=32, n_test=16, size=24, crop=20, epochs=1, batch_size=32, n_test_3d=16,
                           seed=5)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch.no_grad():
        P.pretrain(cfg, images=_shapes, root=tmp_path, progress=False)
        assert not torch.is_grad_enabled(), "the caller's no_grad is restored"
    assert torch.equal(torch.rand(3), expected), "pretraining moved the caller's random stream"


def test_motion_clips_are_balanced_seeded_and_paired_with_their_reverse():
    from actionbook.data import _render as R
    from actionbook.data.generate import MOTIONS, BenchmarkError, _motion_track, motion_clips

    d = motion_clips(n=20, frames=9, size=32, seed=4)
    assert d.clips.shape == (20, 9, 32, 32, 3) and d.clips.dtype == np.uint8
    assert np.bincount(d.labels).tolist() == [2] * len(MOTIONS)
    assert [MOTIONS[r] for r in d.reverse[:4]] == ["MoveRight", "MoveLeft", "MoveDown", "MoveUp"]
    assert np.array_equal(d.clips, motion_clips(n=20, frames=9, size=32, seed=4).clips)
    assert not np.array_equal(d.clips, motion_clips(n=20, frames=9, size=32, seed=5).clips)
    assert d.clips[:, 0].std() > 0 and not np.array_equal(d.clips[:, 0], d.clips[:, -1])  # it moves
    assert d.kinds.shape == (20,) and 0 <= d.kinds.min() and d.kinds.max() < len(R.KINDS)
    assert len(set(d.kinds.tolist())) > 1  # the moving object's kind varies, whatever the motion
    # each primitive does what its name says, and its pair partner the opposite
    rng = np.random.default_rng(0)
    tr = {m: _motion_track(rng, m, 12, 64, (1.0, 1.0, 1.0)) for m in MOTIONS}
    assert np.all(np.diff(tr["MoveRight"].x) > 0) and np.all(np.diff(tr["MoveLeft"].x) < 0)
    assert np.all(np.diff(tr["MoveDown"].y) > 0) and np.all(np.diff(tr["MoveUp"].y) < 0)
    assert np.all(np.diff(tr["TurnClockwise"].angle) > 0) and np.all(np.diff(tr["TurnAnticlockwise"].angle) < 0)
    assert tr["TurnClockwise"].kind in R._ROTATABLE
    assert np.all(np.diff(tr["Grow"].size) > 0) and np.all(np.diff(tr["Shrink"].size) < 0)
    assert np.all(np.diff(tr["FadeIn"].alpha) > 0) and np.all(np.diff(tr["FadeOut"].alpha) < 0)
    for m in ("MoveRight", "MoveUp"):  # the whole path is in view
        assert tr[m].x.min() >= 0 and tr[m].x.max() <= 64 and tr[m].y.min() >= 0 and tr[m].y.max() <= 64
    with pytest.raises(BenchmarkError, match="frames >= 2"):
        motion_clips(n=4, frames=1, size=32, seed=0)


def _inflatable_base() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return ci_nets.ci_resnet18().state_dict()


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_clip_pretraining_trains_the_top_only_breaks_time_symmetry_and_is_cached(tmp_path, modality, monkeypatch):
    from actionbook.data.generate import KINDS
    from actionbook.features import pretrain as P

    rgb = modality == "rgb"  # rgb also trains the second head (the moving object's kind), flow does not
    cfg = P.ClipPretrainConfig(n_train=20, n_test=10, frames=8, size=32, crop=28, epochs=2, batch_size=10,
                               restat_clips=0 if rgb else 10, kind_weight=0.25 if rgb else 0.0)
    base = _inflatable_base()
    report = P.pretrain_clips(modality, cfg, root=tmp_path, base=base, progress=False)
    assert report["key"] == P.clip_pretrain_key(modality, cfg) and report["chance"] == 0.1
    assert report["frozen"] == ["stem", "layer1", "layer2"] and report["trained"] == ["layer3", "layer4", "fc"]
    assert [c["epoch"] for c in report["curve"]] == [1, 2]
    assert report["curve"][-1]["test_accuracy"] == report["test_accuracy"]
    assert 0 <= report["reversed_accuracy"] <= 1
    assert (report["kind_test_accuracy"] is None) == (not rgb)
    state = P.ci_clip_state_dict(modality, cfg, root=tmp_path)
    net = P.clip_network(modality, num_classes=10 + (len(KINDS) if rgb else 0))
    net.load_state_dict(state)  # strict: the modality's stem, the trunk, the 10-way head (+ the kinds)
    assert net.stem[0].weight.shape[1] == (3 if modality == "rgb" else 2)
    # the frozen layers are the inflated ones (their BatchNorm statistics re-estimated on flow); the
    # trained ones changed
    inflated = ci_nets.inflate_resnet(base)
    assert torch.equal(state["layer2.0.conv1.0.weight"], inflated["layer2.0.conv1.0.weight"])
    stats_kept = torch.equal(state["layer2.0.conv1.1.running_var"], inflated["layer2.0.conv1.1.running_var"])
    assert stats_kept == (modality == "rgb")
    trained = state["layer3.0.conv1.0.weight"]  # (out, in, t, k, k)
    assert not torch.equal(trained, inflated["layer3.0.conv1.0.weight"])
    # inflation repeats a kernel over time (first tap = last tap); training breaks the symmetry
    assert not torch.allclose(trained[:, :, 0], trained[:, :, 2])
    # cached: a second call trains nothing
    monkeypatch.setattr(P, "_train_clips", lambda *a, **k: pytest.fail("retrained a cached clip network"))
    assert P.pretrain_clips(modality, cfg, root=tmp_path, base=base) == report


def test_clip_pretraining_keys():
    import dataclasses

    from actionbook.features import pretrain as P

    cfg = P.clip_config("rgb")
    assert P.clip_pretrain_key("rgb") == P.clip_pretrain_key("rgb", cfg) != P.clip_pretrain_key("flow")
    assert P.clip_pretrain_key("rgb") != P.clip_pretrain_key("rgb", dataclasses.replace(cfg, epochs=cfg.epochs + 1))
    with pytest.raises(ValueError, match="modality"):
        P.clip_pretrain_key("depth")
    with pytest.raises(ValueError, match="train_from"):
        P._frozen_stages(P.ClipPretrainConfig(train_from="layer9"))
    assert P._frozen_stages(P.ClipPretrainConfig(train_from="stem")) == ()


def test_ci_clip_features_are_keyed_by_their_modalitys_video_pretraining():
    from pathlib import Path

    from actionbook.data.datasets import Dataset
    from actionbook.features import pretrain as P
    from actionbook.features.extract import make_key

    ds = Dataset(root=Path("/data/ci"), layout="ucf101", videos=Path("/data/ci/videos"),
                 splits=Path("/data/ci/splits"), identity={"splits": "0123abcd"})
    kw = dict(ds=ds, split=1, subset="train", layer="pool", weights="ci", mode="ci", sampling="res_lstm",
              sampling_params={"length": 16, "stride": 8}, crops="center", flow_method="dis", flow_length=10,
              resize=64, crop_size=56)
    for modality in ("rgb", "flow"):
        _, key = make_key(backbone="r2plus1d_18", modality=modality, **kw)
        assert key["weights"] == P.clip_pretrain_key(modality)
    assert make_key(backbone="resnet18", modality="rgb", **kw)[1]["weights"] == P.pretrain_key()


@pytest.mark.parametrize("width", [32, 16])
def test_narrow_ci_networks_keep_torchvision_names_and_inflate(width):
    """A narrower ci network (`ci_nets.WIDTHS`) has torchvision's module names with every stage
    narrowed alike; its inflation gives exactly the 2D network's features on a still clip, as
    the full-width one does."""
    wide, narrow = ci_nets.ci_resnet18(num_classes=5), ci_nets.ci_resnet18(num_classes=5, width=width)
    a, b = wide.state_dict(), narrow.state_dict()
    assert list(a) == list(b)
    for k, v in a.items():  # every convolution's channels scaled by width / 64 (the RGB input's 3 kept)
        if v.ndim == 4:
            cin = 3 if v.shape[1] == 3 else v.shape[1] * width // 64
            assert tuple(b[k].shape) == (v.shape[0] * width // 64, cin, *v.shape[2:]), k
    assert b["fc.weight"].shape == (5, 8 * width)
    assert ci_nets.width_of(b) == width and ci_nets.width_of(a) == 64
    net3d = ci_nets.inflated_r3d_18(num_classes=5, width=width)
    net3d.load_state_dict(ci_nets.inflate_resnet(b))  # every 2D weight has its 3D counterpart
    assert ci_nets.width_of(net3d.state_dict()) == width
    narrow.eval(), net3d.eval()
    x = torch.rand(2, 3, 56, 56)
    with torch.no_grad():
        still = x.unsqueeze(2).repeat(1, 1, 4, 1, 1)  # (N, 3, T, H, W): a clip of identical frames
        assert torch.allclose(net3d(still), narrow(x), atol=1e-4)
    with pytest.raises(ValueError, match="width"):
        ci_nets.ci_resnet18(width=48)


def test_frame_taps_give_each_stage_as_its_own_backbone_does():
    """MRRN's one-pass extraction: every tap equals `backbone(layer=...)` on the same frames."""
    layers = ["layer1_map", "layer2", "layer4"]
    taps = B.frame_taps("resnet18", layers=layers, weights=None, mode="ci")
    x = torch.rand(3, 3, 56, 56)
    with torch.no_grad():
        outs = taps(x)
        for ly, y in zip(layers, outs):
            want = B.backbone("resnet18", layer=ly, weights=None, mode="ci")(x)
            assert y.shape == want.shape and torch.allclose(y, want, atol=1e-6), ly
    assert not any(p.requires_grad for p in taps.parameters()) and not taps.training
    with pytest.raises(ValueError, match="stage outputs"):
        B.frame_taps("r3d_18", layers=["layer2"], weights=None, mode="ci")


def test_the_chapters_import_no_torchvision_until_a_network_is_built():
    """torchvision (and `ci_nets`, which subclasses its networks) is imported where a network is
    built: a page that reads cached features and runs never pays its import. The chapter modules,
    the backbones table and the cache keys must not import it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import actionbook.experiments.res_lstm, actionbook.experiments.mrrn\n"
            "import actionbook.experiments.relational_lstm, actionbook.experiments.recurrent_residual\n"
            "import actionbook.controls, actionbook.audit, actionbook.features.extract\n"
            "from actionbook.features import backbones as B, pretrain\n"
            "assert B.spec('r3d_18').kind == 'clip' and B.input_size('resnet34', mode='ci') == (64, 56)\n"
            "assert B.resolve_weights('resnet50', 'ci', mode='ci') == 'ci'\n"
            "pretrain.pretrain_key(), pretrain.clip_pretrain_key('flow')\n"
            "print('torchvision' in sys.modules)\n"
            "B.spec('resnet18').build\n"
            "print('torchvision' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_the_backbones_table_names_torchvision_builders_and_weights():
    for name, s in B.SPECS.items():
        module = torchvision.models.video if s.kind == "clip" else torchvision.models
        assert s.build is getattr(module, name)
        assert s.weights is getattr(module, s.weights_enum) and s.weights.DEFAULT in s.weights
