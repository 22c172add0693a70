"""Reading and writing video files with PyAV.

torchvision (>= 0.26) no longer decodes video, so the book decodes with PyAV, the Python
binding of FFmpeg. Two rules make decoding *frame-accurate*:

1. **Decode sequentially and pick indices.** Seeking in a compressed stream lands on a key
   frame and the decoder's notion of "frame 57" after a seek depends on the container's
   timestamps, which are often wrong (UCF-101's AVIs, variable-frame-rate phone videos).
   Instead we decode from the first frame and keep the ones asked for. Frame `i` is then
   simply the `i`-th picture the decoder produced, for every file. The price is decoding
   the frames before the last one requested; for the short clips of action recognition
   (UCF-101 averages 7 s) that is cheap, and it is the only reliable choice.
2. **Count frames by decoding when the container's count cannot be trusted.** An AVI index
   or an MP4 sample table usually gives the exact count; a WebM or a variable-frame-rate
   file gives none or a guess. `probe` trusts the container only when its count agrees
   with duration x frame rate, and otherwise counts decoded frames.

    >>> info = probe(path)                               # doctest: +SKIP
    >>> clip = read_video(path, frames=[0, 8, 8, 16])    # doctest: +SKIP
    >>> clip.shape                                       # (T, H, W, 3) uint8
    torch.Size([4, 120, 160, 3])

`write_video` is what the generated benchmark uses to put its videos on disk: MPEG-4 part 2
in AVI (the codec family of UCF-101's own files) at a fixed high quality (qscale 2), one
encoder thread and FFmpeg's bit-exact flags, so the same frames give the same bytes.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import av
import cv2
import numpy as np
import torch
from av.codec.context import Flags

from actionbook.io import atomic_path

__all__ = ["VideoInfo", "VideoDecodeError", "probe", "read_video", "write_video"]


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. `num_frames` is exact (see `probe`)."""

    num_frames: int
    fps: float
    height: int
    width: int
    duration: float  # seconds
    declared_frames: int | None = None  # the container's own count (header), when it gives one

    def check_complete(self, path: Path) -> None:
        """Raise VideoDecodeError if fewer frames decode than the header declares (a truncated
        file: its header, written first, still counts the frames that were cut off). A shortfall
        of `TRUNCATION_SLACK` frame passes: some encoders count a last frame that never decodes."""
        d = self.declared_frames
        if d is not None and d - self.num_frames > TRUNCATION_SLACK:
            raise VideoDecodeError(
                f"{path}: the header declares {d} frames but only {self.num_frames} decode; the file is "
                "truncated or damaged: download or generate it again (or skip unreadable videos, e.g. "
                "`extract --skip-errors`)")


TRUNCATION_SLACK = 1


class VideoDecodeError(Exception):
    """A video file is missing, empty, corrupt or shorter than asked; the message names it."""


# ---------------------------------------------------------------------------------------
# reading


@contextlib.contextmanager
def _open(path: Path):
    """Open `path` for reading, turning every way it can fail into a VideoDecodeError."""
    path = Path(path)
    if not path.exists():
        raise VideoDecodeError(f"{path}: no such video file (check the dataset folder or the split list)")
    if path.is_dir():
        raise VideoDecodeError(f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: the file is empty (0 bytes); re-download or regenerate it")
    try:
        container = av.open(str(path), "r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise VideoDecodeError(f"{path}: cannot be opened as a video ({e}); the file is corrupt or not a video") from e
    try:
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: the file holds no video stream")
        yield container
    finally:
        container.close()


def _frames(container, path: Path):
    """Yield the decoded frames of the first video stream, wrapping decoder errors."""
    stream = container.streams.video[0]
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f"{path}: decoding failed ({e}); the file is corrupt or truncated") from e


_BT601 = (2, 5, 6)  # AVColorSpace: unspecified, BT470BG, SMPTE170M
_LIMITED = (0, 1)  # AVColorRange: unspecified, MPEG (16..235)


def _rgb(frame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB.

    FFmpeg's swscale (what `to_ndarray(format="rgb24")` runs) is the slow part of decoding
    small videos; for the common case, BT.601 limited-range yuv420p (UCF-101, HMDB-51, the
    generated benchmark), OpenCV's I420 conversion gives the same picture (within a few
    levels of rounding) about ten times faster. Anything else goes through swscale.
    """
    if (
        frame.format.name == "yuv420p"
        and frame.colorspace in _BT601
        and frame.color_range in _LIMITED
        and frame.width % 2 == 0
        and frame.height % 2 == 0
    ):
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)  # (H * 3/2, W) -> (H, W, 3)
    return frame.to_ndarray(format="rgb24")  # (H, W, 3)


def _container_count(container) -> int | None:
    """The container's frame count, or None where it is absent or disagrees with duration x fps."""
    stream = container.streams.video[0]
    n = stream.frames
    if not n or n <= 0 or stream.average_rate is None:
        return None
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    if seconds is None:
        return None
    # A constant-frame-rate file has n ~ seconds x fps; a variable-rate one need not.
    if abs(seconds * float(stream.average_rate) - n) > 1.5:
        return None
    return int(n)


def probe(path: Path, *, exact: bool = False) -> VideoInfo:
    """Frame count, frame rate, size and duration of a video, without decoding when possible.

    The frame count comes from the container when it is consistent with the stream's
    duration and average frame rate; otherwise (or with `exact=True`) every frame is
    decoded and counted, so `num_frames` always equals what `read_video` returns.
    """
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        height, width = stream.codec_context.height, stream.codec_context.width
        n = None if exact else _container_count(container)
        if n is None:
            n = 0
            for frame in _frames(container, path):
                n += 1
                height, width = frame.height, frame.width
        if n == 0:
            raise VideoDecodeError(f"{path}: the video stream has no decodable frames")
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = float("nan")
        fps = float(rate) if rate else (n / duration if duration and duration > 0 else float("nan"))
        if not math.isfinite(duration) or duration <= 0:
            duration = n / fps if fps and math.isfinite(fps) else float("nan")
        declared = int(stream.frames) if stream.frames and stream.frames > 0 else None
        return VideoInfo(num_frames=n, fps=fps, height=height, width=width, duration=duration,
                         declared_frames=declared)


def read_video(path: Path, *, frames: Sequence[int] | None = None) -> torch.Tensor:
    """Decode a video into a uint8 tensor of shape (T, H, W, 3), RGB.

    `frames` lists 0-based frame indices, in any order and with repeats (a looped clip
    asks for `[.., 46, 47, 0, 1, ..]`); the result follows that order. `None` reads every
    frame. Asking for a frame past the end raises VideoDecodeError with the frame count.
    """
    path = Path(path)
    if frames is not None:
        frames = [int(i) for i in frames]
        if any(i < 0 for i in frames):
            raise ValueError(f"{path}: frame indices must be >= 0, got {min(frames)}")
    with _open(path) as container:
        if frames is not None and not frames:
            cc = container.streams.video[0].codec_context
            return torch.empty((0, cc.height, cc.width, 3), dtype=torch.uint8)
        wanted = None if frames is None else set(frames)
        last = None if frames is None else max(frames)
        kept: dict[int, np.ndarray] = {}
        everything: list[np.ndarray] = []
        n = 0
        for i, frame in enumerate(_frames(container, path)):
            n = i + 1
            if wanted is None:
                everything.append(_rgb(frame))  # (H, W, 3)
                continue
            if i in wanted:
                kept[i] = _rgb(frame)  # (H, W, 3)
            if i >= last:
                break
    if n == 0:
        raise VideoDecodeError(f"{path}: the video stream has no decodable frames")
    if frames is None:
        return torch.from_numpy(np.stack(everything))  # (T, H, W, 3)
    if last >= n:
        raise VideoDecodeError(
            f"{path}: frame {last} was requested but the video has only {n} frames (indices 0..{n - 1}); "
            "sample indices from probe(path).num_frames"
        )
    return torch.from_numpy(np.stack([kept[i] for i in frames]))  # (T, H, W, 3)


# ---------------------------------------------------------------------------------------
# writing


def write_video(
    path: Path,
    frames: np.ndarray | torch.Tensor,
    *,
    fps: float,
    codec: str = "mpeg4",
    qscale: int = 2,
    pix_fmt: str = "yuv420p",
) -> None:
    """Write uint8 RGB frames (T, H, W, 3) to `path`, atomically and deterministically.

    The container follows the suffix (`.avi`, `.mp4`, `.mkv`). With the default MPEG-4 part 2
    codec the quantiser is fixed at `qscale` (1 best .. 31 worst; 2 is visually lossless for
    the benchmark's flat shapes). One encoder thread and FFmpeg's bit-exact flags make the
    bytes a function of the frames only. The file appears under its name only once complete.
    """
    path = Path(path)
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: frames must have shape (T, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8, got {frames.dtype}; use np.clip(x, 0, 255).astype(np.uint8)")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError(f"{path}: cannot write a video with no frames")
    if pix_fmt == "yuv420p" and (h % 2 or w % 2):
        raise ValueError(f"{path}: height and width must be even for {pix_fmt}, got {h}x{w}")
    if not 1 <= qscale <= 31:
        raise ValueError(f"qscale must be in 1..31, got {qscale}")
    rate = _as_rate(fps)

    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            stream.thread_count = 1  # several threads may split slices differently
            cc = stream.codec_context
            cc.flags |= Flags.bitexact
            if codec == "mpeg4":
                # Fixed quantiser: the qscale flag with qmin = qmax pins every frame to `qscale`.
                cc.qscale = True
                cc.global_quality = qscale
                cc.qmin = cc.qmax = qscale
            for frame in frames:  # (H, W, 3)
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():  # flush the encoder
                container.mux(packet)


def _as_rate(fps: float):
    """fps as the Fraction PyAV wants (25 -> 25, 29.97 -> 2997/100)."""
    from fractions import Fraction

    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)
