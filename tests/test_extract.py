"""Extraction: the pipeline computes what it says, for every sampling, crop and modality."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from actionbook import cli
from actionbook.data import transforms as TF
from actionbook.data.video import VideoDecodeError, read_video
from actionbook.features import backbones as B
from actionbook.features.extract import extract_features, plan_items
from actionbook.features.pretrain import PretrainConfig

W = PretrainConfig().width  # the ci networks' stage-1 width (layer4: 8 W channels)
from test_feature_cache import FAST, tiny_ucf


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return tiny_ucf(tmp_path_factory.mktemp("ucf"))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_features_equal_the_backbone_on_decoded_centre_crops(dataset):
    fs = extract_features(dataset=dataset, subset="test", **FAST)
    net = B.backbone("resnet18", layer="layer4", weights=None, mode="ci")
    path = dataset / "videos" / "Red" / "v_Red_g03_c01.avi"
    frames = TF.to_tchw(read_video(path, frames=[0, 5, 10, 15]))        # (4, 3, 32, 32)
    with torch.no_grad():
        want = net(TF.center_crop(frames, 28).float() / 255)            # (4, 8W)
    i = fs.video_ids.index("v_Red_g03_c01")
    assert torch.equal(fs.frames[i], torch.tensor([0, 5, 10, 15]))
    assert torch.allclose(fs.features[i], want, atol=1e-5)
    assert int(fs.targets()[i]) == 0  # class index of "Red"
    assert fs.classes == ["Red", "Blue"]


def test_mrrn_frames_and_clip_index(dataset):
    fs = extract_features(dataset=dataset, subset="test", **{**FAST, "sampling": "mrrn",
                                                          "sampling_params": dict(length=8, stride=4)})
    # 20 frames, 8-frame clips every 4 frames: starts 0, 4, 8, 12 -> frames 0..19 once each
    assert torch.equal(fs.frames[0], torch.arange(20))
    assert fs.index[0].shape == (4, 8)
    assert torch.equal(fs.frames[0][fs.index[0]][1], torch.arange(4, 12))


def test_clip_backbone_ten_crops_and_workers(dataset):
    args = {**FAST, "backbone": "r3d_18", "layer": "pool", "sampling": "res_lstm",
            "sampling_params": dict(length=8, stride=4), "crops": "10", "size": (12, 8)}
    fs = extract_features(dataset=dataset, subset="test", **args)
    # clip_grid(20, length=8, stride=4): K = (20 - 8) // 4 + 1 = 4 clips
    assert fs.features[0].shape == (4, 10, 8 * W)
    assert torch.equal(fs.frames[0][1], torch.arange(4, 12))
    assert fs.mean_crops().features[0].shape == (4, 8 * W)
    # two decoding workers give the same numbers as decoding in the main process
    from actionbook.features.cache import clean

    clean([fs.key])
    again = extract_features(dataset=dataset, subset="test", **{**args, "num_workers": 2})
    for a, b in zip(fs.features, again.features):
        assert torch.equal(a, b)


def test_flow_stacks(dataset):
    fs = extract_features(dataset=dataset, subset="test", **{**FAST, "modality": "flow", "flow_method": "farneback",
                                                          "flow_length": 3})
    # 20 frames -> 19 flow fields; items every 5th frame, starts clamped to 19 - 3 = 16
    assert torch.equal(fs.frames[0], torch.tensor([0, 5, 10, 15]))
    assert fs.features[0].shape == (4, 8 * W)
    rgb = extract_features(dataset=dataset, subset="test", **FAST)
    assert fs.key != rgb.key and not torch.allclose(fs.features[0], rgb.features[0])
    assert plan_items(19, sampling="tsn", params=dict(pool=4), kind="frame", flow_length=3)[0].max() <= 16
    # a video with fewer flow fields than a snippet starts every snippet at 0 (its stack loops)
    assert plan_items(5, sampling="tsn", params=dict(pool=4), kind="frame", flow_length=10)[0].tolist() == [0] * 4


def test_unreadable_video_stops_or_is_skipped(tmp_path):
    root = tiny_ucf(tmp_path / "ucf")
    bad = root / "videos" / "Blue" / "v_Blue_g03_c01.avi"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(VideoDecodeError, match="v_Blue_g03_c01.avi"):
        extract_features(dataset=root, subset="test", **FAST)
    fs = extract_features(dataset=root, subset="test", skip_errors=True, **FAST)
    assert fs.video_ids == ["v_Red_g03_c01"] and fs.skipped == ["v_Blue_g03_c01"]


def test_extract_command(dataset, capsys, cache):
    args = ["extract", "--dataset", str(dataset), "--backbone", "resnet18", "--layer", "layer2",
            "--sampling", "iqbal", "--mode", "ci", "--weights", "none", "--workers", "0"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in out] == ["train:", "test:"]
    assert f"4 videos, first (2, {2 * W})" in out[0] and f"2 videos, first (2, {2 * W})" in out[1]  # frames 0, 10
    assert len(list((cache / "features").iterdir())) == 2
    assert cli.main(["extract", "--dataset", str(dataset / "nope"), *args[3:]]) == 1
    assert "nope" in capsys.readouterr().err


def test_an_extraction_is_logged_as_a_stage_once(dataset, cache):
    """`make book`'s timing table: a feature set built is one line of the stage log; the same set
    loaded from the cache adds none."""
    from actionbook import stages

    fs = extract_features(dataset=dataset, subset="test", **FAST)
    rows = [r for r in stages.read() if r["stage"] == "features"]
    assert len(rows) == 1 and rows[0]["key"] == fs.key and rows[0]["videos"] == len(fs) and rows[0]["seconds"] > 0
    extract_features(dataset=dataset, subset="test", **FAST)
    assert len([r for r in stages.read() if r["stage"] == "features"]) == 1


def test_one_pass_layers_are_the_single_layer_entries(dataset, cache, monkeypatch):
    """`extract_layers` (MRRN's three levels in one pass) writes exactly the entries that
    `extract_features` makes layer by layer: same keys, same tensors, and a later single-layer
    call reads its entry from the cache."""
    from actionbook import stages
    from actionbook.features.extract import extract_layers

    args = {k: v for k, v in FAST.items() if k != "layer"}
    layers = ["layer2", "layer3_map", "layer4"]
    sets = extract_layers(dataset=dataset, subset="test", layers=layers, **args)
    assert list(sets) == layers
    assert sets["layer2"].features[0].shape[-1] == 2 * W and sets["layer4"].features[0].shape[-1] == 8 * W
    assert sets["layer3_map"].features[0].ndim == 4                      # (items, 4W, h, w): not pooled
    [row] = [r for r in stages.read() if r["stage"] == "features"]    # one pass, one line of the stage log
    assert row["keys"] == [sets[ly].key for ly in layers] and "one pass" in row["name"]
    calls = []
    for ly in layers:
        again = extract_features(dataset=dataset, subset="test", on_video=calls.append, **{**args, "layer": ly})
        assert again.key == sets[ly].key
    assert calls == []                                                 # every entry was complete
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(cache.parent / "alone"))
    for ly in layers:
        alone = extract_features(dataset=dataset, subset="test", **{**args, "layer": ly})
        assert alone.key == sets[ly].key and alone.video_ids == sets[ly].video_ids
        for a, b in zip(alone.features, sets[ly].features):
            assert torch.allclose(a, b, atol=1e-6)


def test_one_pass_resumes_and_leaves_complete_entries_alone(dataset, cache):
    from actionbook.features.extract import extract_layers

    class Crash(Exception):
        pass

    def crash_after_one(n):
        if n == 1:
            raise Crash

    args = {k: v for k, v in FAST.items() if k != "layer"}
    first = extract_features(dataset=dataset, subset="test", **{**args, "layer": "layer2"})
    files = sorted((cache / "features" / first.key / "videos").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in files]
    with pytest.raises(Crash):
        extract_layers(dataset=dataset, subset="test", layers=["layer2", "layer4"], on_video=crash_after_one, **args)
    seen = []
    sets = extract_layers(dataset=dataset, subset="test", layers=["layer2", "layer4"], on_video=seen.append, **args)
    assert seen == [1]                                  # 2 test videos: the one the crash left
    assert [p.stat().st_mtime_ns for p in files] == mtimes  # layer2's files were never rewritten
    assert len(sets["layer4"]) == len(first) == 2
    with pytest.raises(ValueError, match="distinct"):
        extract_layers(dataset=dataset, subset="test", layers=["layer2", "layer2"], **args)
    with pytest.raises(ValueError, match="stage outputs"):
        extract_layers(dataset=dataset, subset="test", layers=["layer2", "layer2.1_map"], **args)
