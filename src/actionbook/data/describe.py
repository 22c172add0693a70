"""`python -m actionbook describe`: a dataset's classes and split sizes, read from its split files.

    python -m actionbook describe --layout ucf101 --root data/ucf101
    python -m actionbook describe --layout ucf101 --root data/generated/ci-seed0 --split 1 --json
    python -m actionbook describe --layout hmdb51 --root data/hmdb51 --no-check
    python -m actionbook describe --layout charades --root data/charades

`--root` is searched for the usual folder names (listed in `LOOK_FOR`); `--videos` and
`--splits` point at the folders directly. Listing checks that every listed video exists
(`--no-check` skips that) but decodes nothing. `--json` prints exactly
`{"classes": [...], "train": N, "test": N}` for the chosen split.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .readers import (
    DatasetError,
    charades_classes,
    check_disjoint,
    hmdb51_classes,
    read_charades,
    read_hmdb51,
    read_ucf101,
    ucf101_classes,
)

LAYOUTS = ("ucf101", "hmdb51", "charades")

# Where each layout keeps its videos and split files, relative to --root ("." is the root itself).
LOOK_FOR = {
    "ucf101": {"videos": ["UCF-101", "videos", "UCF101"], "splits": ["ucfTrainTestlist", "splits", "."]},
    "hmdb51": {"videos": ["videos", "hmdb51_org", "."], "splits": ["testTrainMulti_7030_splits", "splits"]},
    "charades": {"videos": ["Charades_v1_480", "Charades_v1", "videos"], "splits": [".", "Charades", "annotations"]},
}
# A folder counts as the split folder only if it holds this file (pattern).
_SPLIT_MARK = {"ucf101": "classInd.txt", "hmdb51": "*_test_split*.txt", "charades": "Charades_v1_train.csv"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", required=True, choices=LAYOUTS, help="the dataset's file layout")
    parser.add_argument("--root", type=Path, help="the dataset folder (see data/README.md)")
    parser.add_argument("--videos", type=Path, help="the videos folder (overrides what --root finds)")
    parser.add_argument("--splits", type=Path, help="the split-file folder (overrides what --root finds)")
    parser.add_argument("--split", type=int, default=1, help="the split for --json (default 1)")
    parser.add_argument("--json", action="store_true", help='print {"classes": [...], "train": N, "test": N}')
    parser.add_argument("--no-check", action="store_true", help="do not check that listed videos exist")


def find_dataset_dir(root: Path | None, given: Path | None, layout: str, kind: str) -> Path:
    """The folder named by --videos/--splits, else the first usual name under --root that fits."""
    if given is not None:
        if not given.is_dir():
            raise DatasetError(f"{given}: --{kind} folder not found")
        return given
    if root is None:
        raise DatasetError(f"give --root (or --{kind}) to say where the {layout} dataset is")
    if not root.is_dir():
        raise DatasetError(f"{root}: --root folder not found")
    names = LOOK_FOR[layout][kind]
    for name in names:
        d = root / name
        if not d.is_dir():
            continue
        if kind == "splits" and not any(d.glob(_SPLIT_MARK[layout])):
            continue
        if kind == "videos" and layout == "hmdb51" and name == "." and not _has_class_folders(root):
            continue
        return d
    shown = ", ".join(f"{root / n}/" if n != "." else f"{root}/ itself" for n in names)
    what = f"holding {_SPLIT_MARK[layout]}" if kind == "splits" else ""
    raise DatasetError(
        f"no {layout} {kind} folder {what} found; looked for {shown}. "
        f"Pass --{kind} DIR, or arrange the files as in data/README.md"
    )


def _has_class_folders(root: Path) -> bool:
    return any(p.is_dir() and not p.name.startswith(".") and p.name != "testTrainMulti_7030_splits" for p in root.iterdir())


def _splits_available(layout: str, splits: Path) -> list[int]:
    if layout == "ucf101":
        pattern, regex = "trainlist*.txt", r"trainlist(\d+)\.txt"
    else:
        pattern, regex = "*_test_split*.txt", r".+_test_split(\d+)\.txt"
    found = {int(m.group(1)) for p in splits.glob(pattern) if (m := re.fullmatch(regex, p.name))}
    return sorted(found)


def describe(*, layout: str, videos: Path, splits: Path, check: bool = True) -> dict:
    """{"classes": [...], "splits": {N: {"train": n, "test": n}}} for a dataset on disk."""
    if layout == "charades":
        classes_file = splits / "Charades_v1_classes.txt"
        classes = charades_classes(classes_file)
        counts = {}
        sizes = {}
        both = {}
        for subset in ("train", "test"):
            csv = splits / f"Charades_v1_{subset}.csv"
            both[subset] = read_charades(videos=videos, csv=csv, classes_file=classes_file, check_files=check)
            sizes[subset] = len(both[subset])
        check_disjoint(both["train"], both["test"])
        counts[1] = sizes
        return {"classes": classes, "splits": counts}
    classes = ucf101_classes(splits) if layout == "ucf101" else hmdb51_classes(splits)
    read = read_ucf101 if layout == "ucf101" else read_hmdb51
    counts = {}
    for n in _splits_available(layout, splits):
        both = {subset: read(videos=videos, splits=splits, split=n, subset=subset, check_files=check)
                for subset in ("train", "test")}
        check_disjoint(both["train"], both["test"])  # no video, no group in both
        counts[n] = {subset: len(records) for subset, records in both.items()}
    return {"classes": classes, "splits": counts}


def main(args: argparse.Namespace) -> int:
    try:
        splits = find_dataset_dir(args.root, args.splits, args.layout, "splits")
        try:
            videos = find_dataset_dir(args.root, args.videos, args.layout, "videos")
        except DatasetError:
            if not args.no_check:
                raise
            # Nothing will be looked up in it: list the split files alone.
            videos = (args.root or splits) / LOOK_FOR[args.layout]["videos"][0]
        info = describe(layout=args.layout, videos=videos, splits=splits, check=not args.no_check)
        if args.split not in info["splits"]:
            raise DatasetError(f"{splits}: split {args.split} not found; available: {sorted(info['splits'])}")
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        chosen = info["splits"][args.split]
        print(json.dumps({"classes": info["classes"], "train": chosen["train"], "test": chosen["test"]}))
        return 0
    print(f"{args.layout}: {len(info['classes'])} classes")
    print(f"  videos: {videos}")
    print(f"  splits: {splits}")
    width = len(str(len(info["classes"])))
    for i, name in enumerate(info["classes"]):
        print(f"  {i:>{width}}  {name}")
    print("split  train   test")
    for n, c in info["splits"].items():
        print(f"{n:>5}  {c['train']:>5}  {c['test']:>5}")
    return 0
