"""Optical flow: 8-bit encoding, a known translation, caching, extraction with bad files, stacking."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

import actionbook.data.flow as flowmod
from actionbook.data.flow import (
    METHODS,
    compute_flow,
    decode_flow,
    encode_flow,
    extract_flow,
    flow_cache_path,
    flow_stack,
    video_flow,
)
from actionbook.data.transforms import hflip
from actionbook.data.video import VideoDecodeError, write_video


def test_encoding_bound_20():
    f = np.array([-50.0, -20.0, -10.0, 0.0, 10.0, 20.0, 50.0])
    # (f + 20) * 255 / 40, clipped to [-20, 20]: 0, 0, 63.75, 127.5, 191.25, 255, 255
    assert encode_flow(f).tolist() == [0, 0, 64, 128, 191, 255, 255]
    g = np.linspace(-20, 20, 1001)
    assert np.abs(decode_flow(encode_flow(g)) - g).max() <= 20 / 255 + 1e-4  # half a step of 40/255 (float32)
    assert decode_flow(np.array([0, 255], np.uint8)).tolist() == [-20.0, 20.0]


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted_pair(dx: int, dy: int, h: int = 64, w: int = 64) -> np.ndarray:
    """Two (H, W, 3) frames of a texture whose content moves by (dx, dy) pixels."""
    big = textured(h + 20, w + 20)
    a = big[10 : 10 + h, 10 : 10 + w]
    b = big[10 - dy : 10 - dy + h, 10 - dx : 10 - dx + w]  # b[y, x] = a[y - dy, x - dx]
    return np.stack([np.repeat(a[..., None], 3, -1), np.repeat(b[..., None], 3, -1)])


@pytest.mark.parametrize("method", METHODS)
def test_known_translation(method):
    flow = compute_flow(shifted_pair(3, -2), method=method)
    assert flow.shape == (1, 64, 64, 2) and flow.dtype == np.uint8
    d = decode_flow(flow[0, 12:-12, 12:-12])  # away from the borders
    assert np.median(d[..., 0]) == pytest.approx(3, abs=0.3)
    assert np.median(d[..., 1]) == pytest.approx(-2, abs=0.3)


def test_flip_matches_mirrored_motion():
    pair = shifted_pair(4, 1)
    flow = compute_flow(pair, method="farneback")  # (1, H, W, 2)
    mirrored = compute_flow(pair[:, :, ::-1].copy(), method="farneback")
    flipped = hflip(torch.from_numpy(flow).permute(0, 3, 1, 2), flow=True)  # (1, 2, H, W)
    d_flip = decode_flow(flipped.numpy())[0, :, 12:-12, 12:-12]
    d_mirr = decode_flow(mirrored)[0, 12:-12, 12:-12]
    assert np.median(d_flip[0]) == pytest.approx(-4, abs=0.3)
    assert np.median(d_mirr[..., 0]) == pytest.approx(np.median(d_flip[0]), abs=0.3)


def test_compute_flow_input_checks():
    with pytest.raises(ValueError, match="at least 2"):
        compute_flow(np.zeros((1, 8, 8, 3), np.uint8), method="dis")
    with pytest.raises(ValueError, match="unknown flow method"):
        compute_flow(np.zeros((2, 8, 8, 3), np.uint8), method="lucas")
    gray = compute_flow(shifted_pair(1, 0)[..., 0], method="dis")  # (T, H, W) grayscale works too
    assert gray.shape == (1, 64, 64, 2)


def test_flow_stack_interleaves():
    flow = np.zeros((6, 2, 3, 2), np.uint8)
    for t in range(6):
        flow[t, ..., 0] = 10 * t  # x
        flow[t, ..., 1] = 10 * t + 1  # y
    s = flow_stack(flow, 2, 3)
    assert s.shape == (6, 2, 3)
    assert s[:, 0, 0].tolist() == [20, 21, 30, 31, 40, 41]
    with pytest.raises(ValueError, match="fields 4..6 requested but the video has 6"):
        flow_stack(flow, 4, 3)


def moving_block_video(path, n: int = 6, size: int = 32) -> None:
    frames = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        frames[i] = 40
        frames[i, 8:20, 2 * i + 4 : 2 * i + 16] = 220
    write_video(path, frames, fps=25)


def test_video_flow_cache(tmp_path, monkeypatch):
    video = tmp_path / "v.avi"
    moving_block_video(video)
    cache = tmp_path / "cache"
    flow = video_flow(video, method="farneback", cache=cache)
    assert flow.shape == (5, 32, 32, 2)
    target = flow_cache_path(video, method="farneback", cache=cache)
    assert target.is_file() and target.parent == cache / "farneback"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp files left

    def boom(*a, **k):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(flowmod, "compute_flow", boom)
    assert np.array_equal(video_flow(video, method="farneback", cache=cache), flow)
    # another method, or a changed video, is another key
    assert flow_cache_path(video, method="dis", cache=cache) != target
    os.utime(video, ns=(1, 1))
    assert flow_cache_path(video, method="farneback", cache=cache) != target


@pytest.mark.parametrize("workers", [1, 2])
def test_extract_flow_errors_skip_and_resume(tmp_path, capsys, workers):
    good = [tmp_path / f"g{i}.avi" for i in range(3)]
    for p in good:
        moving_block_video(p, n=4, size=16)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(os.urandom(3000))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    cache = tmp_path / "cache"
    with pytest.raises(VideoDecodeError, match="bad.avi"):
        extract_flow([good[0], bad], method="dis", cache=cache, workers=workers, progress=False)

    report = extract_flow([*good[:2], bad, empty], method="dis", cache=cache, workers=workers,
                          skip_errors=True, progress=False)  # fmt: skip
    assert report.computed + report.cached == 2
    assert sorted(p.name for p, _ in report.skipped) == ["bad.avi", "empty.avi"]
    err = capsys.readouterr().err
    assert "skipped 2" in err and "bad.avi" in err and "empty.avi" in err

    again = extract_flow(good, method="dis", cache=cache, workers=workers, progress=False)
    assert (again.cached, again.computed, again.skipped) == (2, 1, [])  # resumes: only g2 is new


def test_video_flow_short_side(tmp_path):
    video = tmp_path / "v.avi"
    moving_block_video(video, n=3, size=32)
    small = video_flow(video, method="dis", cache=tmp_path / "c", short_side=16)
    assert small.shape == (2, 16, 16, 2)
    assert flow_cache_path(video, method="dis", cache=tmp_path / "c", short_side=16).is_file()
    assert not flow_cache_path(video, method="dis", cache=tmp_path / "c").is_file()
