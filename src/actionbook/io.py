"""Small file helpers shared by everything that writes to disk.

Every output of the book (results, cached features, optical flow, checkpoints) is written
atomically: to a temporary file in the same folder, then renamed over the target. A crash
leaves either the old file or the new one, never half of one. The file gets the permissions a
plain `open(path, "w")` would give it (0666 less the umask), so a shared results, data or cache
folder stays readable to colleagues.

A temporary is named `.<stem>.<random>.tmp<suffix>` (hidden, next to its target); a process
killed with SIGKILL cannot remove it, so whoever resumes the work removes such leftovers
(`remove_temporaries`) and counts nothing that `is_temporary`.

What is built once and shared (the generated benchmark, the ci pretraining, a feature set) is
built under a `build_lock`, so two processes that want it at the same time (notebooks run side
by side, `actionbook run --jobs 2`) build it once: the second waits, then finds it built.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


TEMPORARY_GLOB = ".*.tmp*"
"""Matches the names `atomic_path` gives its temporaries (see `is_temporary`)."""


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a file named like an `atomic_path` temporary: `.<stem>.<random>.tmp<suffix>`."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name and Path(name).match(TEMPORARY_GLOB)


def temporaries(folder: str | os.PathLike) -> list[Path]:
    """The `atomic_path` temporaries under `folder` (recursively): what a killed writer left."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob(TEMPORARY_GLOB) if p.is_file() and is_temporary(p)) \
        if folder.is_dir() else []


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete what a killed writer left under `folder`; returns the files removed."""
    found = temporaries(folder)
    for p in found:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return found


def _umask() -> int:
    """The process's umask (read without changing it where Linux allows, else set back at once)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix); on success rename it to `path`.

    For writers that want a file name rather than a file object (PyAV, numpy's savez):

    >>> with atomic_path("clip.avi") as tmp:   # doctest: +SKIP
    ...     write_with_some_library(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain write would not
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to `path`; on success rename it to `path`.

    >>> with atomic_write("out.json") as f:   # doctest: +SKIP
    ...     f.write("{}")
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def build_lock(path: str | os.PathLike, *, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` while building `what`.

    Another process asking for the same lock waits (saying for what, once) until this one is
    done; the caller then checks again whether what it wanted exists before building it:

    >>> with build_lock(cache_dir() / "locks" / "x.lock", what="x"):   # doctest: +SKIP
    ...     if not built():
    ...         build()

    POSIX `flock`: the lock goes with the process, so a crashed or killed builder never leaves
    it held, and the lock file itself is never removed (an empty file, harmless). Within one
    process the same lock must not be taken twice (the second would wait for the first).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting: another process is building {what} (lock {path})", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
