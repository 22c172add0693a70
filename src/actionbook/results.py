"""Results are data: every experiment writes a tidy table, and the book renders from it.

Layout::

    results/<mode>/<chapter>/<experiment>.csv    one row per (configuration, seed, metric ...)
    results/<mode>/<chapter>/<experiment>.json   mode, seed(s), config, git commit, versions, wall time
    results/<mode>/<chapter>/<name>.png          figures saved with `save_figure`

`ci` results are rebuilt by every `make book` and git-ignored; `full` results, run on a GPU
elsewhere, may be committed under `results/full/`: `python -m actionbook build --mode ci` then
adds a page "Full-mode results" to each chapter that has some, with every committed table
beside its ci counterpart and the provenance of both (`provenance`: commit, dataset, split,
hardware, date).

The paper's own numbers live as CSV files in `actionbook/paper/` (one per table, each with
a `source` column naming the paper and table); `paper_vs_ours` puts them in a column of
their own beside ours, so a reader can never mistake one for the other.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from actionbook import MODES
from actionbook.io import atomic_write, read_json, write_json
from actionbook.paths import ROOT, results_dir

_VERSIONED = ("torch", "torchvision", "numpy", "pandas", "av", "opencv-contrib-python-headless")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")


def experiment_path(mode: str, chapter: str, experiment: str, suffix: str = ".csv") -> Path:
    """`results/<mode>/<chapter>/<experiment><suffix>`."""
    _check_mode(mode)
    return results_dir() / mode / chapter / f"{experiment}{suffix}"


def git_commit() -> dict[str, Any]:
    """The repository's HEAD commit and whether the tree had uncommitted changes."""
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                                    capture_output=True, text=True, check=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": sha, "dirty": dirty}


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries that decide the numbers."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name: Linux's `/proc/cpuinfo` "model name" (`platform.processor()` is
    empty or just the architecture there), else `platform.processor()`, else "unknown". The ci
    backbones are one draw per CPU model (`benchmarks/decisions/` 0011, 0028), so results record it."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict[str, Any]:
    """The machine a result was computed on: CPU model, core count and, where torch sees one, the GPU."""
    out: dict[str, Any] = {"machine": platform.machine(), "processor": cpu_model(), "cpu_count": os.cpu_count()}
    try:
        import torch

        out["gpu"] = (", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
                      if torch.cuda.is_available() else "none")
    except Exception as e:  # torch missing or CUDA broken: say so, do not fail a results write
        out["gpu"] = f"unknown ({type(e).__name__})"
    return out


def provenance(meta: dict[str, Any]) -> dict[str, str]:
    """Where a saved table came from, for a reader: commit, dataset, split, hardware, date, seeds.

    Reads the metadata `save` writes (and older files without `hardware`: "not recorded").
    """
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    commit = str(meta.get("commit", "unknown"))[:10]
    if meta.get("dirty"):
        commit += " (with uncommitted changes in src/)"
    hw = meta.get("hardware")
    if isinstance(hw, dict):
        gpu = hw.get("gpu", "none")
        hw_text = f"{gpu}" if gpu not in ("none", None) else f"CPU only ({hw.get('cpu_count', '?')} cores)"
    else:
        hw_text = "not recorded"
    seed = meta.get("seed")
    return {
        "mode": str(meta.get("mode", "unknown")),
        "commit": commit,
        "dataset": str(config.get("dataset_label") or config.get("dataset") or "not recorded"),
        "split": str(config.get("split", "not recorded")),
        "hardware": hw_text,
        "date": str(meta.get("written_at", "unknown")),
        "seeds": ", ".join(map(str, seed)) if isinstance(seed, list) else str(seed),
    }


def markdown_table(df: pd.DataFrame, *, max_rows: int = 40, digits: int = 2) -> str:
    """`df` as a Markdown pipe table (floats rounded to `digits`), at most `max_rows` rows."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            v = "—" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.head(max_rows).itertuples(index=False)]
    out = "\n".join([head, rule, *rows])
    if len(df) > max_rows:
        out += f"\n\n*The first {max_rows} of {len(df)} rows.*"
    return out


def _plain(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return config


def run_metadata(*, mode: str, seed: int | Sequence[int] | None, config: Any,
                 wall_time_s: float | None = None, **extra: Any) -> dict[str, Any]:
    """Everything needed to say where a number came from."""
    return {
        "mode": mode,
        "seed": list(seed) if isinstance(seed, (list, tuple)) else seed,
        "config": _plain(config),
        **git_commit(),
        "versions": versions(),
        "hardware": hardware(),
        # the notebook the runner is executing (it sets this), else the command line
        "entry": os.environ.get("ACTIONBOOK_NOTEBOOK") or " ".join(sys.argv),
        "wall_time_s": wall_time_s,
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def save(df: pd.DataFrame, *, mode: str, chapter: str, experiment: str,
         seed: int | Sequence[int] | None, config: Any, wall_time_s: float | None = None,
         **extra: Any) -> Path:
    """Write `df` as `<experiment>.csv` and its metadata as `<experiment>.json`, atomically.

    Returns the CSV's path.
    """
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError(f"results for {chapter}/{experiment} must be a non-empty DataFrame")
    csv = experiment_path(mode, chapter, experiment)
    with atomic_write(csv, newline="") as f:
        df.to_csv(f, index=False)
    write_json(csv.with_suffix(".json"),
               run_metadata(mode=mode, seed=seed, config=config, wall_time_s=wall_time_s, **extra))
    return csv


def load(mode: str, chapter: str, experiment: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read back what `save` wrote: the table and its metadata."""
    csv = experiment_path(mode, chapter, experiment)
    if not csv.exists():
        raise FileNotFoundError(
            f"no results at {csv}: run the notebook that writes {chapter}/{experiment} "
            f"(python -m actionbook run --mode {mode} ...) first")
    return pd.read_csv(csv), read_json(csv.with_suffix(".json"))


def paper_table(chapter: str, table: str) -> pd.DataFrame:
    """A table of the paper's own numbers, shipped as `actionbook/paper/<chapter>_<table>.csv`."""
    path = files("actionbook") / "paper" / f"{chapter}_{table}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no paper table {path}")
    with path.open() as f:
        return pd.read_csv(f)


def summarize_seeds(df: pd.DataFrame, *, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean, standard deviation and count of `value` over seeds, for each group `by`."""
    g = df.groupby(list(by), sort=False)[value]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def _fmt(mean: float, std: float | None, n: int | None, digits: int) -> str:
    if pd.isna(mean):
        return "—"
    s = f"{mean:.{digits}f}"
    if n is not None and n > 1:
        s += f" ± {std:.{digits}f} (n={n})"
    return s


def paper_vs_ours(ours: pd.DataFrame, paper: pd.DataFrame, *, on: Sequence[str], value: str,
                  paper_value: str = "paper", paper_label: str, ours_label: str,
                  digits: int = 1) -> pd.DataFrame:
    """One table with the paper's number and ours side by side.

    `ours` is tidy (one row per run; a `seed` column is averaged over and shown as
    mean ± std); `paper` has the same key columns `on` and the paper's number in
    `paper_value`. The columns are named by `paper_label` (e.g. "paper: UCF-101 split 1")
    and `ours_label` (e.g. "ours: generated benchmark, ci"), so a reader can never
    mistake one for the other. Rows present in only one of the two show "—" in the other.
    """
    on = list(on)
    missing = [c for c in on + [value] if c not in ours.columns]
    if missing:
        raise KeyError(f"ours has no column(s) {missing}; it has {list(ours.columns)}")
    missing = [c for c in on + [paper_value] if c not in paper.columns]
    if missing:
        raise KeyError(f"paper table has no column(s) {missing}; it has {list(paper.columns)}")
    s = summarize_seeds(ours, by=on, value=value)
    s[ours_label] = [_fmt(m, sd, n, digits) for m, sd, n in zip(s["mean"], s["std"], s["n"])]
    p = paper[on + [paper_value]].rename(columns={paper_value: paper_label})
    p[paper_label] = [("—" if pd.isna(v) else f"{v:.{digits}f}") if not isinstance(v, str) else v
                      for v in p[paper_label]]
    left, right = p, s[on + [ours_label]].copy()
    for c in on:  # join keys of different types (e.g. 5 vs "5") as text
        if left[c].dtype != right[c].dtype:
            left[c], right[c] = left[c].astype(str), right[c].astype(str)
    left["_paper_order"], right["_ours_order"] = range(len(left)), range(len(right))
    merged = left.merge(right, on=on, how="outer")
    # the paper's rows in the paper's order, then rows only we have, in our order
    merged = merged.sort_values(["_paper_order", "_ours_order"], na_position="last", kind="stable")
    merged = merged.drop(columns=["_paper_order", "_ours_order"]).reset_index(drop=True)
    return merged.fillna("—")


def save_figure(fig, *, mode: str, chapter: str, name: str, dpi: int = 150) -> Path:
    """Save a matplotlib/seaborn figure as `results/<mode>/<chapter>/<name>.png`, atomically."""
    path = experiment_path(mode, chapter, name, ".png")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    return path


def tidy(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame from a list of row dicts (a small convenience for experiment loops)."""
    return pd.DataFrame(list(rows))
