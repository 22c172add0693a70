"""How fast is the data layer? Decoding, optical flow per method, benchmark generation.

    .venv/bin/python benchmarks/data.py            # everything (about a minute on 2 cores)
    .venv/bin/python benchmarks/data.py --no-generate

Prints:
* PyAV decode speed (frames/s) of an MPEG-4 AVI written by `write_video`, at 160x120 and 64x64,
  and its ratio to a plain `ffmpeg -i f -f null -` decode when an `ffmpeg` binary is on PATH;
* optical-flow speed (frame pairs/s, one core) for tvl1, dis and farneback at both sizes,
  and the compressed cache size per flow field;
* wall time to generate the ci preset of the benchmark (`actionbook.data.generate`), if available.

These numbers are measurements of this machine, printed, never stored as results.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from actionbook.data.flow import METHODS, compute_flow
from actionbook.data.video import probe, read_video, write_video

SIZES = [(120, 160), (64, 64)]  # (H, W)


def moving_texture(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8: a smooth random texture panning 2 px/frame, a square moving the
    other way, and sensor noise (so that flow is not trivially uniform)."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h + 8, w + 2 * n + 8, 3)).astype(np.float32), (0, 0), 3)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    side = h // 3
    frames = []
    for i in range(n):
        f = big[4 : 4 + h, 2 * i : 2 * i + w].copy()
        x = int((w - side) * (1 - (i % 40) / 40))
        f[h // 3 : h // 3 + side, x : x + side] = (230, 60, 60)
        f += rng.normal(0, 3, f.shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(frames)


def timed(fn, *, repeat: int = 3) -> float:
    """Best wall time of `repeat` calls, seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_decode(tmp: Path, n: int) -> None:
    print(f"\n## decoding (PyAV, {n}-frame MPEG-4 AVI, qscale 2)")
    ffmpeg = shutil.which("ffmpeg")
    for h, w in SIZES:
        path = tmp / f"decode_{w}x{h}.avi"
        write_video(path, moving_texture(n, h, w), fps=25)
        assert probe(path).num_frames == n
        s = timed(lambda: read_video(path))
        s_raw = timed(lambda: _decode_only(path))
        line = f"{w}x{h}: read_video {n / s:6.0f} frames/s; PyAV decode without RGB conversion {n / s_raw:6.0f} frames/s"
        if ffmpeg:
            cmd = [ffmpeg, "-v", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"]
            s_ff = timed(lambda: subprocess.run(cmd, check=True, capture_output=True))
            line += f"; ffmpeg -f null: {n / s_ff:8.0f} frames/s; PyAV / ffmpeg speed = {s_ff / s:.2f}"
        print(line)
    if not ffmpeg:
        print("no `ffmpeg` binary on PATH: the PyAV / FFmpeg decode ratio is not measured")


def _decode_only(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def bench_flow(n: int) -> None:
    print("\n## optical flow (one core, frame pairs/s; cache = compressed .npz bytes per field)")
    cv2.setNumThreads(1)
    for h, w in SIZES:
        frames = moving_texture(n + 1, h, w)
        for method in METHODS:
            pairs = n if method != "tvl1" else max(2, n // 4)
            clip = frames[: pairs + 1]
            s = timed(lambda: compute_flow(clip, method=method), repeat=1 if method == "tvl1" else 3)
            flow = compute_flow(clip, method=method)
            buf = io.BytesIO()
            np.savez_compressed(buf, flow=flow)
            per_field = buf.getbuffer().nbytes / pairs
            print(f"{w}x{h} {method:>9}: {pairs / s:8.1f} pairs/s   cache {per_field / 1024:6.1f} KiB/field "
                  f"(raw {h * w * 2 / 1024:.1f} KiB)")  # fmt: skip


def bench_generate(tmp: Path) -> None:
    print("\n## generating the ci benchmark")
    try:
        from actionbook.data.generate import generate
    except ImportError as e:
        print(f"actionbook.data.generate is not available ({e})")
        return
    t = time.perf_counter()
    out = generate(preset="ci", out=tmp / "ci", seed=0, workers=2, progress=False)
    s = time.perf_counter() - t
    files = list(out.rglob("*.avi"))
    size = sum(f.stat().st_size for f in files)
    print(f"ci preset: {s:.1f} s wall with 2 workers, {len(files)} videos, {size / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per decode test video")
    parser.add_argument("--pairs", type=int, default=40, help="frame pairs per flow measurement (tvl1: a quarter)")
    parser.add_argument("--no-generate", action="store_true", help="skip timing the benchmark generator")
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}, threads for flow: 1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_decode(tmp, args.frames)
        bench_flow(args.pairs)
        if not args.no_generate:
            bench_generate(tmp)


if __name__ == "__main__":
    main()
