"""Optical flow for the two-stream models, computed once per video and cached on disk.

The temporal stream of a two-stream network (Simonyan & Zisserman; TSN; the Res-LSTM and
Relational LSTM papers) sees dense optical flow instead of pixels: for each pair of
consecutive frames, a field (dx, dy) saying where every pixel moved. The convention the
papers inherit from TSN:

1. frames are converted to grayscale;
2. flow is computed with TV-L1 (Zach, Pock & Bischof 2007), an accurate variational method;
3. each component is clipped to [-20, 20] pixels and mapped linearly to 0..255, so a
   flow field is stored as two 8-bit images (x and y); zero motion is 127.5. The
   quantisation step is 40 / 255 ~ 0.16 pixel.

TV-L1 is slow on a CPU (see `benchmarks/data.py`), so the ci mode of the book uses a fast
method instead, DIS (Kroeger et al. 2016) or Farneback (2003); full mode uses TV-L1 like the
papers. All three produce the same 8-bit format.

    >>> flow = video_flow(path, method="dis")   # (T-1, H, W, 2) uint8   # doctest: +SKIP
    >>> x = flow_stack(flow, start=3, L=5)      # (10, H, W): x3 y3 x4 y4 .. x7 y7

The cache holds one compressed `.npz` per (video, method, parameters); the key also covers
the video's path, size and modification time, so an edited video is recomputed. Disk cost:
a field is 2 bytes per pixel before compression (37.5 KiB at 160x120, 150 KiB at 320x240),
and zlib shrinks 8-bit flow images several times over (`benchmarks/data.py` prints the
compressed size per field for each method). UCF-101 has about 2.5 million frames, so its
raw flow at 320x240 would be about 2.5e6 x 150 KiB ~ 360 GiB: budget tens of GiB even
compressed, or compute flow on frames resized down first. Speed matters as much: TV-L1 on
one CPU core manages only a few frame pairs per second at 160x120, which is why full mode
wants many cores (`extract_flow(workers=...)`) and ci mode uses DIS.
"""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from actionbook.io import atomic_write
from actionbook.paths import cache_dir

from .video import VideoDecodeError, read_video

__all__ = [
    "BOUND",
    "METHODS",
    "PARAMS",
    "encode_flow",
    "decode_flow",
    "compute_flow",
    "video_flow",
    "flow_cache_path",
    "extract_flow",
    "FlowReport",
    "flow_stack",
]

BOUND = 20.0  # pixels; TSN's clipping bound
METHODS = ("tvl1", "dis", "farneback")
_VERSION = 1  # bump when the stored format changes

# Every parameter of every method, written out: they are part of the cache key.
PARAMS: dict[str, dict[str, float | int | bool]] = {
    # OpenCV's defaults, which are those of TSN's dense_flow tool.
    "tvl1": dict(
        tau=0.25, lambda_=0.15, theta=0.3, nscales=5, warps=5, epsilon=0.01,
        inner_iterations=30, outer_iterations=10, scale_step=0.8, gamma=0.0, median_filtering=5,
    ),
    # OpenCV's "medium" preset.
    "dis": dict(
        finest_scale=1, patch_size=8, patch_stride=3, gd_iterations=25, vr_iterations=5,
        vr_alpha=20.0, vr_delta=5.0, vr_gamma=10.0, mean_normalization=True, spatial_propagation=True,
    ),
    # The values of OpenCV's Farneback example.
    "farneback": dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2),
}  # fmt: skip


# ---------------------------------------------------------------------------------------
# 8-bit encoding


def encode_flow(flow: np.ndarray, *, bound: float = BOUND) -> np.ndarray:
    """Float flow (pixels) -> uint8: clip to [-bound, bound], map linearly to 0..255, round."""
    v = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(v).astype(np.uint8)


def decode_flow(flow: np.ndarray, *, bound: float = BOUND) -> np.ndarray:
    """uint8 -> float32 flow in pixels (the inverse of `encode_flow`, up to 40/255 px)."""
    return flow.astype(np.float32) * (2 * bound / 255.0) - bound


# ---------------------------------------------------------------------------------------
# computing


def _estimator(method: str):
    """An OpenCV flow function f(prev_gray, next_gray) -> (H, W, 2) float32, configured by PARAMS."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose one of {METHODS}")
    p = PARAMS[method]
    if method == "tvl1":
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        tvl1.setTau(p["tau"])
        tvl1.setLambda(p["lambda_"])
        tvl1.setTheta(p["theta"])
        tvl1.setScalesNumber(p["nscales"])
        tvl1.setWarpingsNumber(p["warps"])
        tvl1.setEpsilon(p["epsilon"])
        tvl1.setInnerIterations(p["inner_iterations"])
        tvl1.setOuterIterations(p["outer_iterations"])
        tvl1.setScaleStep(p["scale_step"])
        tvl1.setGamma(p["gamma"])
        tvl1.setMedianFiltering(p["median_filtering"])
        return lambda a, b: tvl1.calc(a, b, None)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis.setFinestScale(p["finest_scale"])
        dis.setPatchSize(p["patch_size"])
        dis.setPatchStride(p["patch_stride"])
        dis.setGradientDescentIterations(p["gd_iterations"])
        dis.setVariationalRefinementIterations(p["vr_iterations"])
        dis.setVariationalRefinementAlpha(p["vr_alpha"])
        dis.setVariationalRefinementDelta(p["vr_delta"])
        dis.setVariationalRefinementGamma(p["vr_gamma"])
        dis.setUseMeanNormalization(p["mean_normalization"])
        dis.setUseSpatialPropagation(p["spatial_propagation"])
        return lambda a, b: dis.calc(a, b, None)
    return lambda a, b: cv2.calcOpticalFlowFarneback(
        a, b, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], 0
    )


def _gray(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """(T, H, W, 3) RGB or (T, H, W) gray, uint8 -> (T, H, W) uint8 gray."""
    if isinstance(frames, torch.Tensor):
        frames = frames.cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        return frames
    if frames.ndim == 4 and frames.shape[-1] == 3:
        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    raise ValueError(f"frames must be (T, H, W, 3) RGB or (T, H, W) gray, got shape {frames.shape}")


def compute_flow(frames: np.ndarray | torch.Tensor, *, method: str = "tvl1") -> np.ndarray:
    """Flow between consecutive frames, 8-bit: uint8 (T-1, H, W, 2), channel 0 = x, 1 = y.

    Field t describes the motion from frame t to frame t+1: a point at (x, y) in frame t
    is at (x + dx, y + dy) in frame t+1 (dx > 0: moving right).
    """
    gray = _gray(frames)  # (T, H, W)
    if len(gray) < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {len(gray)}")
    calc = _estimator(method)
    out = np.empty((len(gray) - 1, *gray.shape[1:], 2), dtype=np.uint8)  # (T-1, H, W, 2)
    for t in range(len(gray) - 1):
        out[t] = encode_flow(calc(gray[t], gray[t + 1]))  # (H, W, 2)
    return out


# ---------------------------------------------------------------------------------------
# caching


def _key(path: Path, method: str, short_side: int | None) -> str:
    st = path.stat()
    blob = json.dumps(
        dict(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns, method=method,
             params=PARAMS[method], bound=BOUND, short_side=short_side, version=_VERSION),
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def flow_cache_path(path: Path, *, method: str, cache: Path | None = None, short_side: int | None = None) -> Path:
    """Where `video_flow` keeps this video's flow: <cache>/<method>/<stem>.<key>.npz."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose one of {METHODS}")
    path = Path(path).resolve()
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such video file")
    cache = Path(cache) if cache is not None else cache_dir() / "flow"
    return cache / method / f"{path.stem}.{_key(path, method, short_side)}.npz"


def video_flow(path: Path, *, method: str, cache: Path | None = None, short_side: int | None = None) -> np.ndarray:
    """The 8-bit flow of a whole video, uint8 (T-1, H, W, 2); computed once, then read from the cache.

    `cache` defaults to `<cache_dir()>/flow`. With `short_side`, frames are first resized
    (area interpolation, aspect kept) so that their short side is `short_side` pixels. The
    file is written atomically, so an interrupted run leaves no half file; a damaged cache
    file is recomputed.
    """
    target = flow_cache_path(path, method=method, cache=cache, short_side=short_side)
    if target.is_file():
        try:
            with np.load(target) as z:
                return z["flow"]
        except (OSError, ValueError, KeyError, EOFError):
            pass  # damaged: compute again
    frames = read_video(path)  # (T, H, W, 3)
    if len(frames) < 2:
        raise VideoDecodeError(f"{path}: has {len(frames)} frame(s); optical flow needs at least 2")
    frames = _resize(frames.numpy(), short_side)  # (T, h, w, 3)
    flow = compute_flow(frames, method=method)  # (T-1, h, w, 2)
    meta = json.dumps(dict(video=str(Path(path).resolve()), method=method, params=PARAMS[method], bound=BOUND,
                           short_side=short_side))  # fmt: skip
    with atomic_write(target, "wb") as f:
        np.savez_compressed(f, flow=flow, meta=np.array(meta))
    return flow


def _resize(frames: np.ndarray, short_side: int | None) -> np.ndarray:
    if short_side is None:
        return frames
    h, w = frames.shape[1:3]
    size = (round(w * short_side / h), short_side) if h <= w else (short_side, round(h * short_side / w))  # (w, h)
    if size == (w, h):
        return frames
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


@dataclass
class FlowReport:
    """What `extract_flow` did."""

    computed: int = 0
    cached: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (video, reason)


def _work(path: Path, method: str, cache: Path, short_side: int | None) -> None:
    cv2.setNumThreads(1)  # one process per core; no nested threads
    torch.set_num_threads(1)
    video_flow(path, method=method, cache=cache, short_side=short_side)


def extract_flow(
    records: Iterable,
    *,
    method: str,
    cache: Path,
    workers: int = 2,
    skip_errors: bool = False,
    short_side: int | None = None,
    progress: bool = True,
) -> FlowReport:
    """Compute and cache the flow of every record's video, `workers` processes in parallel.

    Resumes: videos already in the cache are skipped. An unreadable video stops the run
    with its error (`VideoDecodeError` naming the file), unless `skip_errors=True`: then it
    is skipped, and every skipped file and the count are printed at the end and returned.
    `records` are `VideoRecord`s (anything with `.path`) or paths.
    """
    paths = [Path(getattr(r, "path", r)) for r in records]
    report = FlowReport()
    todo = []
    for p in paths:
        try:
            if flow_cache_path(p, method=method, cache=cache, short_side=short_side).is_file():
                report.cached += 1
                continue
        except VideoDecodeError as e:  # missing file
            if not skip_errors:
                raise
            report.skipped.append((p, str(e)))
            continue
        todo.append(p)

    bar = tqdm(total=len(todo), desc=f"flow ({method})", unit="video", disable=not progress)
    errors = (VideoDecodeError, ValueError, cv2.error)

    def failed(p: Path, e: BaseException) -> None:
        if not skip_errors:
            raise e
        report.skipped.append((p, f"{type(e).__name__}: {e}"))

    try:
        if workers <= 1:
            for p in todo:
                try:
                    _work(p, method, cache, short_side)
                    report.computed += 1
                except errors as e:
                    failed(p, e)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_work, p, method, Path(cache), short_side): p for p in todo}
                try:
                    for fut in as_completed(futures):
                        try:
                            fut.result()
                            report.computed += 1
                        except errors as e:
                            failed(futures[fut], e)
                        bar.update()
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        bar.close()
    if report.skipped:
        print(f"extract_flow: skipped {len(report.skipped)} unreadable video(s):", file=sys.stderr)
        for p, why in report.skipped:
            print(f"  {p}: {why}", file=sys.stderr)
    return report


# ---------------------------------------------------------------------------------------
# the temporal stream's input


def flow_stack(flow: np.ndarray, start: int, L: int) -> np.ndarray:
    """L consecutive flow fields from `start`, as (2L, H, W): x_s, y_s, x_{s+1}, y_{s+1}, ...

    `flow` is (N, H, W, 2) from `video_flow` (N = frames - 1, so sample starts with
    `tsn_segments(N, T=.., length=L)`). Channels 0, 2, 4, .. are x-flow (what
    `transforms.hflip(.., flow=True)` inverts).
    """
    n = len(flow)
    if start < 0 or L < 1 or start + L > n:
        raise ValueError(f"flow fields {start}..{start + L - 1} requested but the video has {n} (0..{n - 1})")
    return np.ascontiguousarray(flow[start : start + L].transpose(0, 3, 1, 2).reshape(2 * L, *flow.shape[1:3]))
