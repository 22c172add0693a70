"""What the book's cached stages cost: one line per stage *built* (not loaded from the cache).

The expensive work behind a cold `make book` happens once and is cached: generating the
benchmark, the ci pretraining, and each feature set (decoding, optical flow, the frozen
backbone). Each of them, when it builds, appends one JSON line to `<cache>/stages.jsonl`:

    {"stage": "features", "name": "ci resnet18.layer2.1_map rgb test", "seconds": 41.3,
     "cpu_seconds": null, "at": 1796030000.0, "videos": 80, "key": "..."}

and `python -m actionbook run` ends by printing a table of the notebooks it ran and of the
stages built meanwhile (`summary`). The stages run *inside* the notebooks, so their seconds
are part of the notebooks' and are shown as "of which". A line is appended with one `write`
on a file opened for appending, so the notebooks' kernels (separate processes) can record at
the same time; a damaged line is skipped when reading, never fatal. Speed is measured in
`benchmarks/`; this is the book's own account of where a build's time went.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Collection

from actionbook.paths import cache_dir

__all__ = ["log_path", "record", "timed", "read", "summary"]

STAGES = ("generate", "pretrain", "features")


def log_path() -> Path:
    """`<cache>/stages.jsonl` (`ACTIONBOOK_CACHE`)."""
    return cache_dir() / "stages.jsonl"


def record(stage: str, name: str, *, seconds: float, cpu_seconds: float | None = None, **info: Any) -> None:
    """Append one line: `stage` (one of STAGES) named `name` took `seconds` of wall time."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    row = {"stage": stage, "name": name, "seconds": round(float(seconds), 3),
           "cpu_seconds": None if cpu_seconds is None else round(float(cpu_seconds), 3), "at": time.time(), **info}
    line = (json.dumps(row, sort_keys=True) + "\n").encode()
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of a short line: appends from several processes do not interleave
    finally:
        os.close(fd)


@contextmanager
def timed(stage: str, name: str, **info: Any) -> Iterator[dict[str, Any]]:
    """Time the block (wall clock) and `record` it if it ends normally. The yielded dict takes
    more fields (e.g. the number of videos actually built); set `skip=True` in it when nothing
    was built. No CPU time: the stages that use it run worker processes this one cannot see."""
    extra: dict[str, Any] = dict(info)
    t0 = time.perf_counter()
    yield extra
    if not extra.pop("skip", False):
        record(stage, name, seconds=time.perf_counter() - t0, **extra)


def read(*, since: float | None = None, path: Path | None = None) -> list[dict[str, Any]]:
    """The recorded stages (those at or after `since`, a `time.time()`), oldest first."""
    path = log_path() if path is None else Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a torn or damaged line loses one timing, nothing else
            continue
        if isinstance(row, dict) and "seconds" in row and (since is None or row.get("at", 0) >= since):
            rows.append(row)
    return rows


def summary(notebooks: dict[str, float], *, since: float, total: float | None = None,
            reused: Collection[str] = ()) -> str:
    """The table `actionbook run` prints at its end: seconds per notebook, then per stage built
    since `since` (with the notebooks' total, the stages are part of it). A notebook in `reused`
    was not executed (its executed copy had the same inputs): its row says so and its seconds,
    those of the run that made the copy, are not in the total."""
    rows = read(since=since)
    width = max([len(n) + len(" (reused)") for n in notebooks] + [len(f"{r['stage']}: {r['name']}") for r in rows]
                + [20])
    out = [f"{'notebook':<{width}}  seconds", f"{'-' * width}  -------"]
    out += [f"{name + (' (reused)' if name in reused else ''):<{width}}  "
            + (f"{'-':>7}" if name in reused else f"{sec:7.1f}") for name, sec in notebooks.items()]
    executed = sum(s for n, s in notebooks.items() if n not in reused)
    out.append(f"{'all notebooks':<{width}}  {executed:7.1f}")
    if total is not None:
        out.append(f"{'the run, start to end':<{width}}  {total:7.1f}")
        if executed > total:
            out.append("(notebooks ran side by side, `--jobs`: their seconds add up to more than the run's)")
    if rows:
        out += ["", f"{'of which, stages built (cached for next time)':<{width}}  seconds",
                f"{'-' * width}  -------"]
        out += [f"{r['stage'] + ': ' + r['name']:<{width}}  {r['seconds']:7.1f}" for r in rows]
        for stage in STAGES:
            s = sum(r["seconds"] for r in rows if r["stage"] == stage)
            if s:
                out.append(f"{'all ' + stage:<{width}}  {s:7.1f}")
    else:
        out += ["", "no stage was built: every benchmark, pretraining and feature set came from the cache"]
    return "\n".join(out)
