"""Split readers: one small function per dataset layout, each returning `VideoRecord`s.

A *record* is everything the rest of the book needs to know about one video before
decoding it: where it is, its id, its class(es), and for UCF-101 its *group* (the 25
groups of UCF-101 are clips cut from the same long video; the official splits keep a
group entirely in train or in test, which is why test accuracy is honest).

| dataset | split files | label source |
| --- | --- | --- |
| UCF-101 (and the generated benchmark) | `classInd.txt`, `trainlistNN.txt`, `testlistNN.txt` | `classInd.txt` (1-based in the files) |
| HMDB-51 | `testTrainMulti_7030_splits/<class>_test_splitN.txt` | sorted class names of those files |
| Charades | `Charades_v1_{train,test}.csv` | `Charades_v1_classes.txt` codes `c000`..`c156` |

Quirks the readers handle, because the real files have them:

* UCF-101's lists use Windows line endings (CRLF), train lines carry a 1-based label and
  test lines none (the label then comes from the class folder, looked up in `classInd.txt`).
* `classInd.txt` order is *not* Python's `sorted()` order (`HammerThrow` before `Hammering`),
  so labels always come from the file, never from sorting folder names.
* The lists write `HandstandPushups/v_HandStandPushups_g08_c01.avi`: the folder is the class,
  the file stem may spell it differently. The class is taken from the folder only.

Every problem raises `DatasetError` naming the file and line and saying what to fix: a
malformed line, a byte that is not UTF-8, a path that leaves the videos folder (`..`, an
absolute path), and -- through `check_disjoint` -- a video or a group listed in both the
train and the test list of a split (the official splits never do that).
"""

from __future__ import annotations

import csv as _csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "VideoRecord",
    "DatasetError",
    "ucf101_classes",
    "read_ucf101",
    "hmdb51_classes",
    "read_hmdb51",
    "charades_classes",
    "read_charades",
    "check_disjoint",
]


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset split."""

    path: Path  # absolute path of the video file
    video_id: str  # file stem, e.g. "v_ApplyEyeMakeup_g08_c01" or Charades id "46GP8"
    label: int | None  # 0-based class index (single-label datasets); None for multi-label
    labels: tuple[int, ...]  # every class present ((label,) for single-label)
    group: str | None = None  # UCF-101 group "g08"; None where the dataset has none
    duration: float | None = None  # seconds, when known without decoding (Charades 'length')
    segments: tuple[tuple[int, float, float], ...] = ()  # Charades: (class, start_s, end_s)
    where: str = field(default="", compare=False)  # "file:line" of the split file that lists it


class DatasetError(Exception):
    """A dataset's files are missing or malformed; the message names the file and line."""


_SUBSETS = ("train", "test")
_GROUP = re.compile(r"_(g\d+)_c\d+", re.IGNORECASE)


def _lines(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines of a text file; CRLF or LF."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found; check the split folder (see data/README.md)")
    text = _decode(path, path.read_bytes())
    return [(i, s.strip()) for i, s in enumerate(text.splitlines(), start=1) if s.strip()]


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text (a byte-order mark dropped); a byte that is not UTF-8 -> DatasetError with its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DatasetError(f"{path}:{line}: byte {data[e.start:e.start + 1]!r} is not UTF-8 text; the file is "
                           "damaged or in another encoding: fetch it again, or re-save it as UTF-8") from None


def _inside(rel: str, where: str) -> str:
    """`rel` (a path from a split file) if it stays inside the videos folder, else DatasetError."""
    parts = rel.replace("\\", "/").split("/")
    if rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel) or ".." in parts:
        raise DatasetError(f"{where}: path {rel!r} leaves the dataset's videos folder; split files list "
                           "paths relative to it ('<Class>/<video>.avi'): fix or remove the line")
    return rel


def _check_subset(subset: str) -> None:
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}")


def _missing(path: Path, where: str) -> DatasetError:
    return DatasetError(
        f"{where}: lists {path.name}, but {path} does not exist; check the videos folder "
        "(or pass check_files=False / --no-check to list without looking)"
    )


# ---------------------------------------------------------------------------------------
# UCF-101 (and the generated benchmark, written in the same layout)


def ucf101_classes(splits_dir: Path) -> list[str]:
    """Class names in label order, from `classInd.txt` ("1 ApplyEyeMakeup" lines)."""
    path = Path(splits_dir) / "classInd.txt"
    by_index: dict[int, str] = {}
    for n, line in _lines(path, "classInd.txt (the class list)"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path}:{n}: expected '<index> <ClassName>', got {line!r}")
        index, name = int(parts[0]), parts[1]
        if index in by_index:
            raise DatasetError(f"{path}:{n}: duplicate class index {index} ({by_index[index]!r} and {name!r})")
        if name in by_index.values():
            raise DatasetError(f"{path}:{n}: duplicate class name {name!r}")
        by_index[index] = name
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise DatasetError(f"{path}: class indices must be 1..{len(by_index)} without gaps, got {sorted(by_index)}")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def read_ucf101(*, videos: Path, splits: Path, split: int, subset: str, check_files: bool = True) -> list[VideoRecord]:
    """Records of `trainlistNN.txt` or `testlistNN.txt` (NN = `split`, 01..03 for UCF-101).

    Lines are `Class/v_Class_gGG_cCC.avi 37` (train, 1-based label) or `Class/v_...avi`
    (test). The label is the class folder's position in `classInd.txt`; a train line's
    own label must agree with it.
    """
    _check_subset(subset)
    videos, splits = Path(videos).resolve(), Path(splits).resolve()
    classes = ucf101_classes(splits)
    index = {name: i for i, name in enumerate(classes)}
    path = splits / f"{subset}list{split:02d}.txt"
    if not path.is_file():
        found = sorted(p.name for p in splits.glob("*list*.txt"))
        raise DatasetError(f"{path}: split file not found (split {split}, {subset}); the folder has {found}")
    records: list[VideoRecord] = []
    seen: dict[str, int] = {}
    for n, line in _lines(path, "split list"):
        parts = line.split()
        if len(parts) not in (1, 2) or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
            raise DatasetError(f"{path}:{n}: expected '<Class>/<video>.avi [label]', got {line!r}")
        rel = _inside(parts[0].replace("\\", "/"), f"{path}:{n}")
        if "/" not in rel:
            raise DatasetError(f"{path}:{n}: expected '<Class>/<video>.avi' (class folder first), got {rel!r}")
        folder = rel.split("/")[0]
        if folder not in index:
            raise DatasetError(f"{path}:{n}: class folder {folder!r} is not in {splits / 'classInd.txt'}")
        label = index[folder]
        if len(parts) == 2:
            given = int(parts[1])
            if not 1 <= given <= len(classes):
                raise DatasetError(f"{path}:{n}: label {given} is outside 1..{len(classes)} (classInd.txt)")
            if given - 1 != label:
                raise DatasetError(
                    f"{path}:{n}: label {given} ({classes[given - 1]}) disagrees with the class folder "
                    f"{folder!r} (label {label + 1} in classInd.txt)"
                )
        if rel in seen:
            raise DatasetError(f"{path}:{n}: duplicate entry {rel!r} (first on line {seen[rel]})")
        seen[rel] = n
        file = videos / rel
        if check_files and not file.is_file():
            raise _missing(file, f"{path}:{n}")
        group = _GROUP.search(file.stem)
        records.append(
            VideoRecord(
                path=file,
                video_id=file.stem,
                label=label,
                labels=(label,),
                group=group.group(1).lower() if group else None,
                where=f"{path}:{n}",
            )
        )
    return records


# ---------------------------------------------------------------------------------------
# HMDB-51

_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")


def hmdb51_classes(splits_dir: Path) -> list[str]:
    """Sorted class names, from the `<class>_test_splitN.txt` file names."""
    splits_dir = Path(splits_dir)
    if not splits_dir.is_dir():
        raise DatasetError(f"{splits_dir}: HMDB-51 split folder not found (testTrainMulti_7030_splits)")
    names = {m["cls"] for p in splits_dir.iterdir() if (m := _HMDB_FILE.match(p.name))}
    if not names:
        raise DatasetError(f"{splits_dir}: no '<class>_test_splitN.txt' files; is this testTrainMulti_7030_splits?")
    return sorted(names)


def read_hmdb51(*, videos: Path, splits: Path, split: int, subset: str, check_files: bool = True) -> list[VideoRecord]:
    """Records of one HMDB-51 split: lines `<video>.avi <0|1|2>` (1 train, 2 test, 0 unused).

    Videos live at `<videos>/<class>/<video>.avi`; labels are positions in the sorted class list.
    """
    _check_subset(subset)
    videos, splits = Path(videos).resolve(), Path(splits).resolve()
    classes = hmdb51_classes(splits)
    want = "1" if subset == "train" else "2"
    records: list[VideoRecord] = []
    seen: dict[Path, str] = {}
    for label, name in enumerate(classes):
        path = splits / f"{name}_test_split{split}.txt"
        if not path.is_file():
            raise DatasetError(f"{path}: split file not found (class {name!r}, split {split})")
        for n, line in _lines(path, "split file"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{path}:{n}: expected '<video>.avi <0|1|2>', got {line!r}")
            if "/" in parts[0] or "\\" in parts[0] or parts[0] in (".", ".."):
                raise DatasetError(f"{path}:{n}: {parts[0]!r} is not a file name; HMDB-51 split files list "
                                   "'<video>.avi <0|1|2>' for videos in the class folder: fix the line")
            file = videos / name / parts[0]
            if file in seen:  # in any subset: a video listed as train and as test is a leak
                raise DatasetError(f"{path}:{n}: duplicate entry {parts[0]!r} (also at {seen[file]}); "
                                   "a video must be listed once per split")
            seen[file] = f"{path.name}:{n}"
            if parts[1] != want:
                continue
            if check_files and not file.is_file():
                raise _missing(file, f"{path}:{n}")
            records.append(VideoRecord(path=file, video_id=file.stem, label=label, labels=(label,),
                                       where=f"{path}:{n}"))
    return records


# ---------------------------------------------------------------------------------------
# Charades (and the generated benchmark's multi-label variant)

_CHARADES_COLUMNS = ("id", "actions", "length")


def charades_classes(classes_file: Path) -> list[str]:
    """Class descriptions in code order, from `Charades_v1_classes.txt` ("c000 Holding some clothes")."""
    path = Path(classes_file)
    names: list[str] = []
    for n, line in _lines(path, "Charades class list"):
        code, _, name = line.partition(" ")
        if not re.fullmatch(r"c\d+", code) or not name.strip():
            raise DatasetError(f"{path}:{n}: expected 'cNNN Description', got {line!r}")
        if int(code[1:]) != len(names):
            raise DatasetError(f"{path}:{n}: expected code c{len(names):03d} (codes in order from c000), got {code}")
        names.append(name.strip())
    return names


END_SLACK = 2.0
"""Seconds an action may end after the video's `length`: the official Charades_v1_train.csv
annotates in coarse steps, and 29% of its actions end up to 1.54 s after the length."""


def read_charades(
    *, videos: Path, csv: Path, classes_file: Path | None = None, check_files: bool = True,
    keep_odd_times: bool = False,
) -> list[VideoRecord]:
    """Multi-label records from a Charades CSV (`Charades_v1_train.csv` or `_test.csv`).

    `actions` is `c092 11.90 21.20;c147 0.00 12.60` (class, start s, end s), possibly empty;
    `labels` are the distinct classes, `label` is None. Videos are `<videos>/<id>.mp4` or
    `.avi`. Without `classes_file`, `Charades_v1_classes.txt` beside the CSV is used if present
    (to reject unknown codes); otherwise codes are not range-checked.

    Refused, naming the line: a row with fewer or more fields than the header, times that
    are not finite or negative, and -- unless `keep_odd_times` -- an action that ends before
    it starts, starts at or after the video's `length`, or ends more than `END_SLACK` s after
    it. The official train CSV has a few such rows (lines 100, 512, 5743, 7876 and others);
    `keep_odd_times=True` keeps them exactly as written and warns with their count.
    """
    videos, csv = Path(videos).resolve(), Path(csv).resolve()
    if classes_file is None and (csv.parent / "Charades_v1_classes.txt").is_file():
        classes_file = csv.parent / "Charades_v1_classes.txt"
    num_classes = len(charades_classes(classes_file)) if classes_file is not None else None
    if not csv.is_file():
        raise DatasetError(f"{csv}: Charades CSV not found (Charades_v1_train.csv / Charades_v1_test.csv)")
    records: list[VideoRecord] = []
    seen: dict[str, int] = {}
    odd: list[str] = []
    text = _decode(csv, csv.read_bytes())
    reader = _csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in _CHARADES_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DatasetError(f"{csv}:1: the header lacks column(s) {missing}; got {reader.fieldnames}")
    width = len(reader.fieldnames)
    for row in reader:
        n = reader.line_num
        got = width - sum(v is None for v in row.values()) + len(row.get(None) or [])
        if got != width:
            raise DatasetError(f"{csv}:{n}: {got} fields, but the header has {width} "
                               f"({', '.join(reader.fieldnames)}); fix the row (quote fields that hold commas)")
        vid = (row["id"] or "").strip()
        if not vid:
            raise DatasetError(f"{csv}:{n}: empty id")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", vid):
            raise DatasetError(f"{csv}:{n}: id {vid!r} is not a Charades video id (letters, digits, '_', '-'); "
                               "it would name a file outside the videos folder: fix the row")
        if vid in seen:
            raise DatasetError(f"{csv}:{n}: duplicate id {vid!r} (first on line {seen[vid]})")
        seen[vid] = n
        try:
            duration = float(row["length"]) if (row["length"] or "").strip() else None
        except ValueError:
            raise DatasetError(f"{csv}:{n}: length {row['length']!r} is not a number") from None
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise DatasetError(f"{csv}:{n}: length {row['length']!r} is not a positive number of seconds")
        segments = _parse_actions(row["actions"] or "", num_classes, f"{csv}:{n}", duration,
                                  odd if keep_odd_times else None)
        file = _charades_file(videos, vid)
        if check_files and file is None:
            raise _missing(videos / f"{vid}.mp4", f"{csv}:{n}")
        records.append(
            VideoRecord(
                path=file if file is not None else videos / f"{vid}.mp4",
                video_id=vid,
                label=None,
                labels=tuple(sorted({c for c, _, _ in segments})),
                duration=duration,
                segments=segments,
                where=f"{csv}:{n}",
            )
        )
    if odd:
        import warnings

        warnings.warn(f"{csv}: kept {len(odd)} action(s) with odd times as written (keep_odd_times=True): "
                      + "; ".join(odd[:5]) + (" ..." if len(odd) > 5 else ""), stacklevel=2)
    return records


def _parse_actions(text: str, num_classes: int | None, where: str, duration: float | None = None,
                   odd: list[str] | None = None) -> tuple[tuple[int, float, float], ...]:
    """'c092 11.90 21.20;c147 0.00 12.60' -> ((92, 11.9, 21.2), (147, 0.0, 12.6)).

    Odd times (reversed, past the video) raise DatasetError, or are listed in `odd` if given."""
    segments = []
    for item in filter(None, (s.strip() for s in text.split(";"))):
        parts = item.split()
        try:
            if len(parts) != 3 or not re.fullmatch(r"c\d+", parts[0]):
                raise ValueError
            c, start, end = int(parts[0][1:]), float(parts[1]), float(parts[2])
        except ValueError:
            raise DatasetError(f"{where}: action {item!r} is not 'cNNN start end'") from None
        if num_classes is not None and c >= num_classes:
            raise DatasetError(f"{where}: unknown class {parts[0]} (the class list has c000..c{num_classes - 1:03d})")
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < 0:
            raise DatasetError(f"{where}: action {item!r} has a time that is negative or not finite; "
                               "times are seconds from the video's start: fix the row")
        problem = None
        if start > end:
            problem = "ends before it starts"
        elif duration is not None and start >= duration:
            problem = f"starts at or after the video's length {duration:g} s"
        elif duration is not None and end > duration + END_SLACK:
            problem = f"ends more than {END_SLACK:g} s after the video's length {duration:g} s"
        if problem and odd is None:
            raise DatasetError(f"{where}: action {item!r} {problem}; fix the row, or read with "
                               "keep_odd_times=True to keep such actions as written")
        if problem:
            odd.append(f"{where} {item!r} {problem}")
        segments.append((c, start, end))
    return tuple(segments)


def _charades_file(videos: Path, vid: str) -> Path | None:
    for suffix in (".mp4", ".avi"):
        if (videos / f"{vid}{suffix}").is_file():
            return videos / f"{vid}{suffix}"
    return None


# ---------------------------------------------------------------------------------------
# train/test separation


def check_disjoint(train: list[VideoRecord], test: list[VideoRecord]) -> None:
    """Raise DatasetError, naming both lines, if a video or a group is in both train and test.

    Test accuracy is honest only if no test video, and no clip of a test video's group (clips
    cut from the same long video, UCF-101's `_gGG_`), was seen in training. UCF-101's
    official splits (and the generated benchmark's) never cross; a hand-edited list might.
    """
    first: dict[object, VideoRecord] = {}
    for r in train:
        first.setdefault(("video", r.path), r)
        first.setdefault(("video id", r.video_id), r)
        if r.group is not None:
            first.setdefault(("group", r.group), r)
    for r in test:
        for kind, value in (("video", r.path), ("video id", r.video_id), ("group", r.group)):
            other = first.get((kind, value))
            if value is None or other is None:
                continue
            what = f"group {value} ({other.video_id} in train, {r.video_id} in test)" if kind == "group" \
                else f"video {r.video_id}"
            raise DatasetError(f"{r.where or 'test list'}: {what} is in both the train and the test list "
                               f"(train: {other.where or '?'}); a split must keep videos and groups apart: "
                               "remove one of the lines, or use the official split files")
