"""Decoding is frame-accurate, counts frames exactly, and fails clearly; writing is deterministic."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from actionbook.data.video import VideoDecodeError, probe, read_video, write_video

T, H, W = 30, 48, 64


def ramp() -> np.ndarray:
    """Frame i is a flat grey of intensity 8 i (0, 8, .., 232) with a block at column 2 i
    (white on dark frames, black on light ones)."""
    v = np.empty((T, H, W, 3), np.uint8)
    for i in range(T):
        v[i] = 8 * i
        v[i, 8:24, 2 * i : 2 * i + 8] = 255 if 8 * i < 128 else 0
    return v


def frame_id(frame: torch.Tensor) -> int:
    """Recover i from a decoded frame: the grey level / 8 (checked against the block position)."""
    grey = frame[32:, :, :].float().mean().item()  # below the block
    i = round(grey / 8)
    col = frame[16, :, 0].float()
    assert abs(int(((col - grey).abs() > 60).nonzero()[0]) - 2 * i) <= 1
    return i


@pytest.fixture(scope="module")
def ramp_avi(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "ramp.avi"
    write_video(path, ramp(), fps=25)
    return path


def test_probe(ramp_avi):
    info = probe(ramp_avi)
    assert (info.num_frames, info.height, info.width) == (T, H, W)
    assert info.fps == pytest.approx(25) and info.duration == pytest.approx(T / 25)
    assert probe(ramp_avi, exact=True).num_frames == T


def test_read_all_frames(ramp_avi):
    x = read_video(ramp_avi)
    assert x.shape == (T, H, W, 3) and x.dtype == torch.uint8
    assert [frame_id(f) for f in x] == list(range(T))
    assert (x.float() - torch.from_numpy(ramp()).float()).abs().mean() < 3  # qscale 2: near lossless


def test_read_selected_repeated_out_of_order(ramp_avi):
    want = [29, 3, 3, 0, 17, 16, 3]
    x = read_video(ramp_avi, frames=want)
    assert x.shape == (len(want), H, W, 3)
    assert [frame_id(f) for f in x] == want
    assert torch.equal(x[1], x[2])
    assert read_video(ramp_avi, frames=[]).shape == (0, H, W, 3)


def test_read_past_end(ramp_avi):
    with pytest.raises(VideoDecodeError, match=r"ramp\.avi: frame 30 .* only 30 frames"):
        read_video(ramp_avi, frames=[2, 30])


def test_frame_count_without_container_count(tmp_path):
    # Matroska stores no frame count: probe must decode and count.
    path = tmp_path / "ramp.mkv"
    write_video(path, ramp()[:11], fps=30)
    assert probe(path).num_frames == 11
    assert [frame_id(f) for f in read_video(path, frames=[10, 0])] == [10, 0]


def test_variable_frame_rate(tmp_path):
    # Frames at irregular times: the count is still the number of pictures.
    import av

    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.time_base = s.time_base = __import__("fractions").Fraction(1, 1000)
        t = 0
        for i, frame in enumerate(ramp()[:12]):
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts, f.time_base = t, s.time_base
            t += 20 if i % 2 else 70  # 50 fps and ~14 fps alternating
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert probe(path).num_frames == 12
    assert [frame_id(f) for f in read_video(path, frames=[11, 5])] == [11, 5]


def test_corrupt_empty_missing(tmp_path):
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    for path, why in [(corrupt, "corrupt"), (empty, "empty"), (tmp_path / "missing.avi", "no such")]:
        for fn in (probe, read_video):
            with pytest.raises(VideoDecodeError, match=rf"{path.name}: .*{why}"):
                fn(path)


def test_write_is_deterministic_and_atomic(tmp_path):
    a, b = tmp_path / "a.avi", tmp_path / "b.avi"
    write_video(a, ramp(), fps=25)
    write_video(b, torch.from_numpy(ramp()), fps=25)  # tensors accepted too
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.avi", "b.avi"]  # no temp files left


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.avi", ramp().astype(np.float32), fps=25)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_video(tmp_path / "x.avi", ramp()[..., 0], fps=25)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "x.avi", ramp()[:, :47], fps=25)
    assert list(tmp_path.iterdir()) == []


def test_other_pixel_formats_decode_the_same(tmp_path):
    # yuv444p (lossless FFV1) takes the swscale path, yuv420p the OpenCV one: same frames
    path = tmp_path / "ramp444.mkv"
    write_video(path, ramp()[:6], fps=25, codec="ffv1", pix_fmt="yuv444p")
    x = read_video(path, frames=[5, 1])
    assert [frame_id(f) for f in x] == [5, 1]
    assert (x.float() - torch.from_numpy(ramp()[[5, 1]]).float()).abs().max() <= 3
