"""Where the book keeps things on disk.

Everything is relative to the repository root (found from this file, since the package is
installed in editable mode from `src/`), and each location can be moved with an
environment variable, e.g. to put the feature cache on a large disk:

| location | default | variable |
| --- | --- | --- |
| results tables and figures | `<root>/results` | `ACTIONBOOK_RESULTS` |
| datasets (generated and real) | `<root>/data` | `ACTIONBOOK_DATA` |
| feature / flow / pretraining caches | `<root>/.cache` | `ACTIONBOOK_CACHE` |
"""

from __future__ import annotations

import os
from pathlib import Path


def _root() -> Path:
    if "ACTIONBOOK_ROOT" in os.environ:
        return Path(os.environ["ACTIONBOOK_ROOT"]).resolve()
    return Path(__file__).resolve().parents[2]


ROOT = _root()


def results_dir() -> Path:
    return Path(os.environ.get("ACTIONBOOK_RESULTS", ROOT / "results"))


def data_dir() -> Path:
    return Path(os.environ.get("ACTIONBOOK_DATA", ROOT / "data"))


def cache_dir() -> Path:
    return Path(os.environ.get("ACTIONBOOK_CACHE", ROOT / ".cache"))


def lock_path(name: str) -> Path:
    """`<cache>/locks/<name>.lock`: the lock file of something built once and shared
    (`actionbook.io.build_lock`)."""
    return cache_dir() / "locks" / f"{name}.lock"
