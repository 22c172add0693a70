"""A dataset on disk: where its videos and split files are, what identifies it, and its records.

    >>> ds = resolve_dataset("ci", layout="ucf101")          # doctest: +SKIP
    >>> records, classes = read_records(ds, split=1, subset="train")

`resolve_dataset` takes a folder (searched for the usual names, see `describe.LOOK_FOR`) or a
generated-benchmark name (`ci`, `full`, `ci-seed3`; generated on first use). `read_records`
gives one split's `VideoRecord`s through the layout's reader (`readers.py`), after checking
that the split's train and test lists share no video and no group (`readers.check_disjoint`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from actionbook.data import readers as R
from actionbook.data.readers import DatasetError, VideoRecord
from actionbook.io import read_json

__all__ = ["LAYOUTS", "Dataset", "resolve_dataset", "read_records"]

LAYOUTS = ("ucf101", "hmdb51", "charades")


@dataclass(frozen=True)
class Dataset:
    """Where a dataset's videos and split files are, and what identifies its contents."""

    root: Path
    layout: str
    videos: Path
    splits: Path
    identity: dict  # the generated benchmark's preset/seed/version, or a hash of the split files


def resolve_dataset(dataset: str | Path, *, layout: str) -> Dataset:
    """A folder, or a generated-benchmark name: `ci`, `full` or `ci-seed3` (generated if missing)."""
    from actionbook.data.describe import find_dataset_dir

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    root = Path(dataset)
    if not root.is_dir():
        from actionbook.data import generate

        preset, _, seed = str(dataset).partition("-seed")
        if preset not in generate.PRESETS or (seed and not seed.isdigit()):
            raise DatasetError(f"{dataset}: neither a dataset folder nor a generated benchmark name "
                               f"({', '.join(generate.PRESETS)}, optionally with -seedN)")
        root = generate.ensure_benchmark(preset, int(seed or 0))
    root = root.resolve()
    base = root / "multilabel" if layout == "charades" and (root / "multilabel").is_dir() else root
    splits = find_dataset_dir(base, None, layout, "splits")
    videos = find_dataset_dir(base, None, layout, "videos")
    if (root / "benchmark.json").is_file():
        try:
            info = read_json(root / "benchmark.json")
        except ValueError as e:
            raise DatasetError(f"{root / 'benchmark.json'}: not valid JSON ({e}); regenerate the benchmark "
                               f"(delete {root} and run `python -m actionbook generate`)") from None
        identity = {k: info.get(k) for k in ("preset", "seed", "version")}
    else:
        h = hashlib.sha256()
        for p in sorted(q for q in splits.iterdir() if q.is_file() and q.suffix in (".txt", ".csv")):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        identity = {"split_files_sha256": h.hexdigest()}
    return Dataset(root, layout, videos.resolve(), splits.resolve(), identity)


def read_records(ds: Dataset, *, split: int, subset: str,
                 keep_odd_times: bool = False) -> tuple[list[VideoRecord], list[str]]:
    """The split's video records and the dataset's class names (the layout's reader).

    `keep_odd_times` (Charades only) keeps actions with odd times as written
    (`readers.read_charades`), e.g. the official train CSV's few actions that end before they
    start or far past the video's `length`; without it such a row is refused with its line.

    Raises DatasetError, naming both lines, if a video or a group is in both the train and
    the test list of the split (`readers.check_disjoint`).
    """
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    if ds.layout == "charades" and split != 1:
        raise ValueError(f"Charades has a single split (1), got split={split}")
    classes_file = ds.splits / "Charades_v1_classes.txt"

    def read(s: str, check_files: bool) -> list[VideoRecord]:
        if ds.layout == "ucf101":
            return R.read_ucf101(videos=ds.videos, splits=ds.splits, split=split, subset=s, check_files=check_files)
        if ds.layout == "hmdb51":
            return R.read_hmdb51(videos=ds.videos, splits=ds.splits, split=split, subset=s, check_files=check_files)
        return R.read_charades(videos=ds.videos, csv=ds.splits / f"Charades_v1_{s}.csv",
                               classes_file=classes_file, check_files=check_files, keep_odd_times=keep_odd_times)

    records = read(subset, True)
    other = "test" if subset == "train" else "train"
    other_file = {"ucf101": ds.splits / f"{other}list{split:02d}.txt", "hmdb51": ds.splits,
                  "charades": ds.splits / f"Charades_v1_{other}.csv"}[ds.layout]
    if other_file.exists():  # a folder with one list only has nothing to cross
        others = read(other, False)
        R.check_disjoint(*((records, others) if subset == "train" else (others, records)))
    if ds.layout == "ucf101":
        return records, R.ucf101_classes(ds.splits)
    if ds.layout == "hmdb51":
        return records, R.hmdb51_classes(ds.splits)
    return records, R.charades_classes(classes_file)
