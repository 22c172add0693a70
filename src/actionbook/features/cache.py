"""The feature cache: backbone features on disk, extracted once and shared by every chapter.

An *entry* holds the features of one dataset split (train or test) for one extractor
configuration. Its name (the KEY) is a hash of everything that determines the numbers --
the dataset and its identity, split and subset, backbone and weights, layer, sampling and
its parameters, crops, modality, flow method, the stored dtype when it is not float32, and
`EXTRACTOR_VERSION` -- so a changed setting gets a new entry and can never return stale tensors:

    <cache_dir()>/features/<KEY>/
        key.json                  what the entry is (the full key), the expected tensor shape
        videos/<video_id>.pt      one file per video, written atomically as it is extracted
        manifest.json             written last: the videos in order, labels, groups, classes,
                                  each file's sha256 and its source video's size and mtime
        fitted/<hash>.pt          statistics fitted on the entry's videos (`fitted`): a PCA,
                                  a scale; kept so that the next process need not read them all

A video file is `{"x": features, "frames": frame indices, "index": rows or None}`:

- `x`: (num_items, D), (num_items, D, h, w), or with several crops (num_items, crops, ...);
  an item is one frame (2D backbones; a flow stack starting there for flow) or one clip (3D).
- `frames`: (num_items,) the frame each item starts at, or (num_items, clip_length) for clips.
- `index`: for MRRN's overlapping 30-frame clips, (num_clips, 30) rows of `x`; else None.

Because each video is its own file and the manifest comes last, an interrupted extraction
resumes where it stopped, and an entry without a manifest is *partial* (`cache ls` says so).
Loading checks every file against its checksum in the manifest, its shape and dtype against
the key, and that its features are finite; a damaged file or manifest is refused with the
`cache clean KEY` that fixes it, never returned. `load_features(key, lazy=True)` reads nothing
up front: each video's file is read and checked when it is indexed (`LazyVideos`), for splits
whose features do not fit in memory (the Relational LSTM's conv5 maps at UCF-101 size).

Features are stored as float32, or as float16 where an entry was extracted with
`storage="float16"` (half the disk; `STORAGES`); either way they are returned as float32.
`LazyVideos.rows(i, r)` reads only the rows `r` of video i (`EntryReader.read_rows`): the first
time a reader touches a file it reads and checks all of it (checksum, shape, dtype, finite values),
after that it memory-maps the file and copies only the rows' pages, as long as the file is the one
it checked (same size, mtime and inode).

    python -m actionbook cache ls
    python -m actionbook cache clean KEY [KEY ...]
    python -m actionbook cache clean --all
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Sequence
from typing import Callable

import torch

from actionbook.io import atomic_path, is_temporary, read_json
from actionbook.paths import cache_dir


class CacheError(Exception):
    """A cache entry is damaged or does not match its key; the message says what to delete."""


STORAGES = {"float32": torch.float32, "float16": torch.float16}
"""The dtypes features can be stored in (`extract_features(storage=...)`): the stored dtype is
part of an entry's key and of its `expect`; loading returns float32 whatever was stored."""

MANIFEST_FORMAT = 2
"""manifest.json's format: 2 added a sha256 per video file and its source's size and mtime.
An entry of an older format is rebuilt from its files by the next extraction."""

KEY_PATTERN = re.compile(r"[0-9a-f]{16}")
"""What a KEY looks like (`extract.make_key`: 16 hex digits of a sha256)."""


def features_dir() -> Path:
    return cache_dir() / "features"


def entry_dir(key: str) -> Path:
    return features_dir() / key


def clean_hint(key: str) -> str:
    return f"delete the entry with `python -m actionbook cache clean {key}` and extract again"


# --------------------------------------------------------------------------------------
# FeatureSet: what a chapter gets back


@dataclass
class FeatureSet:
    """The cached features of one dataset split, one tensor per video, in the split's order.

    `features[i]` is video i's tensor (see the module docstring for its shape), `labels[i]`
    its class (None for multi-label data; `label_sets[i]` holds every class), `groups[i]`
    its UCF-101 group. `dataset()` turns it into the `(x, y, video_index)` dataset the
    engine trains on.
    """

    key: str
    spec: dict                        # the entry's key.json["key"]: how the features were made
    features: list[torch.Tensor] | LazyVideos
    frames: list[torch.Tensor] | LazyVideos
    index: list[torch.Tensor | None] | LazyVideos
    video_ids: list[str]
    labels: list[int | None]
    label_sets: list[tuple[int, ...]]
    groups: list[str | None]
    classes: list[str]
    transforms: tuple[str, ...] = ()  # what was applied after loading (e.g. "mean over crops", "pca 256")
    skipped: list[str] = field(default_factory=list)
    content: str | None = None        # `content_digest` of the entry's videos (None: not read from the cache)

    @property
    def subset(self) -> str:
        return self.spec["subset"]

    @property
    def lazy(self) -> bool:
        """Whether the videos' tensors are read from disk when indexed (`load_features(lazy=True)`)."""
        return isinstance(self.features, LazyVideos)

    @property
    def multilabel(self) -> bool:
        return any(label is None for label in self.labels)

    def __len__(self) -> int:
        return len(self.features)

    def __repr__(self) -> str:
        shape = tuple(self.features[0].shape[1:]) if self.features else ()
        return (f"FeatureSet({self.key}: {len(self)} videos of {self.spec['subset']}, "
                f"{self.spec['backbone']}/{self.spec['layer']}/{self.spec['modality']}, item shape {shape}"
                + (f", {', '.join(self.transforms)}" if self.transforms else "") + ")")

    def identity(self) -> list:
        """What a result computed from this set depends on, for a run cache's identity: the entry's
        key (how the features were made), its content (`content_digest`: which videos, and their
        files' checksums; a video extracted again after its source was replaced, or one that was
        skipped as unreadable and is there now, changes it) and the transforms applied since loading."""
        return [self.key, self.content, *self.transforms]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor], *, name: str) -> FeatureSet:
        """A new FeatureSet with `fn` applied to every video's tensor (recorded as `name`); on a
        lazy set, `fn` runs when a video is read, nothing is read now."""
        features = self.features.map(fn) if self.lazy else [fn(x) for x in self.features]
        return replace(self, features=features, transforms=self.transforms + (name,))

    def mean_crops(self) -> FeatureSet:
        """Average the crop dimension away: Res-LSTM's Eq. 4-5, x_t = (1/K_c) sum_k A[k, t]."""
        if self.spec["crops"] == "center":
            return self
        return self.map(lambda x: x.mean(dim=1), name="mean over crops")  # (N, crops, ...) -> (N, ...)

    def targets(self) -> list[torch.Tensor]:
        """Per video: the class index (long scalar), or a multi-hot vector for multi-label data."""
        out, multilabel = [], self.multilabel
        for label, labels in zip(self.labels, self.label_sets):
            if not multilabel:
                out.append(torch.tensor(label))
            else:
                y = torch.zeros(len(self.classes))
                y[list(labels)] = 1.0
                out.append(y)
        return out


# --------------------------------------------------------------------------------------
# reading an entry


def read_entry_json(path: Path, *, key: str) -> dict:
    """key.json or manifest.json of an entry; a damaged one -> CacheError naming it and the fix."""
    try:
        obj = read_json(path)
    except ValueError as e:  # json.JSONDecodeError, or bytes that are not UTF-8
        raise CacheError(f"{path}: damaged ({type(e).__name__}: {e}); {clean_hint(key)}") from None
    if not isinstance(obj, dict):
        raise CacheError(f"{path}: not an object of this cache (got {type(obj).__name__}); {clean_hint(key)}")
    return obj


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_video_file(path: Path, obj: object, *, key: str, expect: dict) -> None:
    """Raise CacheError (naming the file and the fix) if a video file does not fit its entry."""
    if not isinstance(obj, dict) or not {"x", "frames", "index"} <= obj.keys():
        raise CacheError(f"{path}: not a feature file of this cache (missing x/frames/index); {clean_hint(key)}")
    x, frames = obj["x"], obj["frames"]
    want = tuple(expect["item_shape"])
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != want:
        got = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else type(x).__name__
        raise CacheError(f"{path}: features have item shape {got}, but this entry's key expects {want}; "
                         f"{clean_hint(key)}")
    if str(x.dtype) != expect["dtype"]:
        raise CacheError(f"{path}: features have dtype {x.dtype}, but this entry's key expects {expect['dtype']}; "
                         f"{clean_hint(key)}")
    if not isinstance(frames, torch.Tensor) or len(frames) != len(x) or len(x) == 0:
        raise CacheError(f"{path}: {len(x)} feature rows but {len(frames)} frame entries; {clean_hint(key)}")
    index = obj["index"]
    if index is not None and (not isinstance(index, torch.Tensor) or index.numel() == 0
                              or int(index.min()) < 0 or int(index.max()) >= len(x)):
        raise CacheError(f"{path}: its clip index points outside its {len(x)} feature rows; {clean_hint(key)}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise CacheError(f"{path}: {bad} feature value(s) are NaN or infinite; {clean_hint(key)}")


def load_video_file(path: Path, *, key: str, expect: dict, sha256: str | None = None) -> dict:
    """A video file's dict, checked (see `check_video_file`); with `sha256`, its bytes must match.

    The features `x` are returned as float32 whatever dtype they are stored in (`STORAGES`); the
    file's own checksum is returned under "sha256" and its size in bytes under "nbytes"."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CacheError(f"{path}: cannot be read ({type(e).__name__}: {e}); {clean_hint(key)}") from e
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated by hand, or not a torch file
        raise CacheError(f"{path}: cannot be read ({type(e).__name__}: {e}); {clean_hint(key)}") from e
    check_video_file(path, obj, key=key, expect=expect)  # the most telling message first (shape, NaN)
    digest = file_sha256(data)
    if sha256 is not None and digest != sha256:
        raise CacheError(f"{path}: its bytes changed since it was written (sha256 {digest[:12]}..., the manifest "
                         f"says {sha256[:12]}...); {clean_hint(key)}")
    return {**obj, "x": obj["x"].float(), "sha256": digest, "nbytes": len(data)}  # float32 .float() is no copy


class EntryReader:
    """Reads the video files of a complete entry one at a time, each checked as `load_features`
    checks it (checksum, shape, dtype, finite values), keeping the last `keep` in memory (the
    test views of a video are drawn one after another). `reads` counts the files read whole.

    `read_rows(i, r)` gives rows `r` of video i's features without reading the rest of its file
    (a training draw needs T of a video's snippets): the first time this reader touches the file,
    it reads and checks it whole (as `read`), and remembers that file (size, mtime, inode); after
    that it memory-maps the file (`torch.load(mmap=True)`) and copies only the rows' pages. A file
    replaced or rewritten since it was checked is read and checked whole again, so a row is never
    served from bytes that were not checked. `rows_read` and `bytes_read` count what came from disk
    (a whole file: all its rows and bytes; a mapped read: the rows and their stored bytes)."""

    def __init__(self, key: str, videos: list[dict], expect: dict, *, keep: int = 1) -> None:
        self.key, self.videos, self.expect, self.keep = key, videos, expect, keep
        self.reads = 0
        self.rows_read = 0
        self.bytes_read = 0
        self._kept: dict[int, dict] = {}
        self._checked: dict[int, tuple[int, int, int]] = {}  # video -> (size, mtime_ns, inode) of the file checked
        self._last_rows: tuple[int, tuple[int, ...], torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.videos)

    def _path(self, i: int) -> Path:
        return entry_dir(self.key) / "videos" / self.videos[i]["file"]

    def _signature(self, path: Path) -> tuple[int, int, int]:
        try:
            st = path.stat()
        except OSError as e:
            raise CacheError(f"{path}: cannot be read ({type(e).__name__}: {e}); {clean_hint(self.key)}") from e
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def read(self, i: int) -> dict:
        """Video i's dict (`x`, `frames`, `index`), from memory if it is among the last `keep` read."""
        if i in self._kept:
            self._kept[i] = self._kept.pop(i)           # most recently used last
            return self._kept[i]
        path = self._path(i)
        before = self._signature(path)
        obj = load_video_file(path, key=self.key, expect=self.expect, sha256=self.videos[i]["sha256"])
        if self._signature(path) == before:  # what was checked is the file that is there
            self._checked[i] = before
        self.reads += 1
        self.rows_read += len(obj["x"])
        self.bytes_read += obj["nbytes"]
        self._kept[i] = obj
        while len(self._kept) > self.keep:
            self._kept.pop(next(iter(self._kept)))
        return obj

    def read_rows(self, i: int, r: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Rows `r` of video i's features `x` (len(r), ...) as float32, reading only those rows
        from disk once the file has been checked whole by this reader (see the class)."""
        rows = tuple(int(j) for j in torch.as_tensor(r).reshape(-1))
        if self._last_rows is not None and self._last_rows[:2] == (i, rows):
            return self._last_rows[2]                   # the same draw read again (maps and pooled of one item)
        if i in self._kept or i not in self._checked:
            x = self.read(i)["x"][list(rows)]           # in memory, or checked whole now
        else:
            path = self._path(i)
            try:
                mapped = torch.load(path, mmap=True, map_location="cpu", weights_only=True)["x"]
            except Exception:  # noqa: BLE001 (a file that cannot be mapped is read and checked whole)
                mapped = None
            if mapped is None or self._signature(path) != self._checked[i]:
                del self._checked[i]                     # changed since it was checked: check it whole again
                x = self.read(i)["x"][list(rows)]
            else:
                part = mapped[list(rows)]               # copies only these rows' pages out of the mapping
                self.rows_read += len(rows)
                self.bytes_read += part.numel() * part.element_size()
                x = part.float()
        self._last_rows = (i, rows, x)
        return x


class LazyVideos(Sequence):
    """One field (`x`, `frames` or `index`) of every video of an entry, read from disk when
    indexed (`EntryReader`), with the functions of `map` applied in order: a split's features
    are never all in memory at once."""

    def __init__(self, reader: EntryReader, field: str = "x",
                 fns: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = ()) -> None:
        self.reader, self.field, self.fns = reader, field, fns

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> torch.Tensor:  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("LazyVideos is read one video at a time: index it with an int")
        if not -len(self) <= i < len(self):
            raise IndexError(f"video {i} of {len(self)}")
        x = self.reader.read(i % len(self))[self.field]
        for fn in self.fns:
            x = fn(x)
        return x

    def rows(self, i: int, r: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Rows `r` of video i, the functions of `map` applied to them alone: only those rows are
        read from disk (`EntryReader.read_rows`). Equal to `self[i][r]` (up to float rounding) for
        functions that act on each row by itself, as every function the chapters map does (frozen
        units, pooling, a projection, a scale); a function that mixes rows must not use `rows`."""
        if self.field != "x":
            raise ValueError(f"LazyVideos.rows reads feature rows: its field is {self.field!r}, index it instead")
        if not -len(self) <= i < len(self):
            raise IndexError(f"video {i} of {len(self)}")
        x = self.reader.read_rows(i % len(self), r)
        for fn in self.fns:
            x = fn(x)
        return x

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> LazyVideos:
        return LazyVideos(self.reader, self.field, self.fns + (fn,))


def content_digest(videos: list[dict]) -> str:
    """A manifest's videos (each one's id and its file's checksum), as 16 hex digits. A video
    file records its source's size and time, so a source replaced or only touched (which the
    extraction redoes, `extract._entry_is_current`) changes it."""
    pairs = [[v["video_id"], v["sha256"]] for v in videos]
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


def load_features(key: str, *, lazy: bool = False, keep: int = 1) -> FeatureSet:
    """The FeatureSet of a complete entry (every file's shape and dtype checked against its key).

    lazy=True: nothing is read now; `features`, `frames` and `index` are `LazyVideos`, each
    video's file read (and checked) when it is indexed, the last `keep` kept in memory."""
    d = entry_dir(key)
    if not (d / "manifest.json").is_file():
        what = "is partial (no manifest.json): run the extraction again to finish it" if d.is_dir() \
            else "does not exist"
        raise CacheError(f"feature-cache entry {key} ({d}) {what}")
    meta = read_entry_json(d / "key.json", key=key)
    manifest = read_entry_json(d / "manifest.json", key=key)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise CacheError(f"{d / 'manifest.json'}: written by an older version (no checksums); run the extraction "
                         f"again to rebuild it, or {clean_hint(key)}")
    if "expect" not in meta or "key" not in meta:
        raise CacheError(f"{d / 'key.json'}: lacks 'key' or 'expect'; {clean_hint(key)}")
    feats, frames, index = [], [], []
    if lazy:
        reader = EntryReader(key, manifest["videos"], meta["expect"], keep=keep)
        feats, frames, index = (LazyVideos(reader, f) for f in ("x", "frames", "index"))
    for v in manifest["videos"] if not lazy else ():
        obj = load_video_file(d / "videos" / v["file"], key=key, expect=meta["expect"], sha256=v["sha256"])
        feats.append(obj["x"])
        frames.append(obj["frames"])
        index.append(obj["index"])
    vs = manifest["videos"]
    return FeatureSet(
        key=key, spec=meta["key"], features=feats, frames=frames, index=index,
        video_ids=[v["video_id"] for v in vs], labels=[v["label"] for v in vs],
        label_sets=[tuple(v["labels"]) for v in vs], groups=[v["group"] for v in vs],
        classes=manifest["classes"], skipped=[s["video_id"] for s in manifest.get("skipped", [])],
        content=content_digest(vs),
    )


# --------------------------------------------------------------------------------------
# statistics fitted on an entry


FITTED_FORMAT = 1
"""The format of `fitted/<hash>.pt`; part of its hash, so a change makes new files."""


def fitted(fs: FeatureSet, what: dict, fit: Callable[[], dict]) -> dict:
    """A statistic of the entry `fs` (a PCA, a scale, each video's mean colour): `fit()` once, then from disk.

    `what` names the statistic and everything it depends on besides the entry's videos (the
    transforms applied after loading, the videos it is fitted on, its settings), as JSON; the
    file is `fitted/<sha256 of the entry's key, its content and what>.pt` in the entry's folder,
    written atomically, so `cache clean KEY` removes it with the videos it was fitted on. Its
    content is the manifest's `content_digest`: a video the extraction wrote again (its source
    replaced) makes a new file, fitted anew. `fit()`
    returns a dict of tensors, numbers, strings, None, lists and dicts (`torch.load`'s
    weights-only types); the same dict comes back from the file. A damaged or unreadable file
    is fitted again and replaced. Loading only what an earlier process fitted gives the same
    numbers: the file holds exactly what `fit()` returned."""
    manifest = entry_dir(fs.key) / "manifest.json"
    content = content_digest(read_entry_json(manifest, key=fs.key)["videos"]) if manifest.is_file() else None
    blob = json.dumps({"format": FITTED_FORMAT, "key": fs.key, "content": content, "what": what},
                      sort_keys=True, default=str)
    path = entry_dir(fs.key) / "fitted" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and obj.get("what") == blob:
                return obj["value"]
        except Exception:  # noqa: BLE001 - a damaged file is fitted again below, and replaced
            pass
    value = fit()
    if content is not None:  # never beside a partial entry, or none
        with atomic_path(path) as tmp:
            torch.save({"what": blob, "value": value}, tmp)
    return value


# --------------------------------------------------------------------------------------
# listing and cleaning


@dataclass
class EntryInfo:
    key: str
    description: str
    videos: int          # video files on disk
    expected: int | None  # videos in the split
    bytes: int
    complete: bool


def _size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def entries() -> list[EntryInfo]:
    """Every entry of the feature cache, complete or partial."""
    root = features_dir()
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not d.is_dir():
            continue
        try:
            meta = read_json(d / "key.json")
            desc, expected = meta.get("description", "?"), meta.get("num_videos")
        except (OSError, ValueError):
            desc, expected = "(no readable key.json: damaged entry)", None
        n = sum(not is_temporary(p) for p in (d / "videos").glob("*.pt")) if (d / "videos").is_dir() else 0
        out.append(EntryInfo(d.name, desc, n, expected, _size(d), (d / "manifest.json").is_file()))
    return out


def clean(keys: list[str] | None = None, *, all: bool = False) -> list[str]:
    """Remove the named entries (or every entry with all=True); returns what was removed."""
    if all:
        keys = [e.key for e in entries() if KEY_PATTERN.fullmatch(e.key) and not entry_dir(e.key).is_symlink()]
    root = features_dir().resolve()
    found = []
    for key in keys or []:  # every name is checked before anything is removed
        d = entry_dir(key)
        # a KEY is 16 hex digits naming a folder right under features/: never '..', a path or a link
        if not (KEY_PATTERN.fullmatch(key) and d.is_dir() and not d.is_symlink() and d.resolve().parent == root):
            raise CacheError(f"no feature-cache entry {key!r} in {features_dir()}; a KEY is one of the 16-digit "
                             "names `python -m actionbook cache ls` lists")
        found.append((key, d))
    removed = []
    for key, d in found:
        shutil.rmtree(d)
        removed.append(key)
    return removed


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("ls", help="list the entries: key, what, #videos, size, complete or partial")
    p = sub.add_parser("clean", help="remove entries")
    p.add_argument("keys", nargs="*", metavar="KEY", help="entries to remove (see `cache ls`)")
    p.add_argument("--all", action="store_true", help="remove every entry")


def main(args: argparse.Namespace) -> int:
    if args.action == "ls":
        found = entries()
        if not found:
            print(f"the feature cache ({features_dir()}) is empty")
            return 0
        print(f"{'KEY':<16}  {'STATE':<8}  {'VIDEOS':>11}  {'SIZE':>9}  DESCRIPTION")
        for e in found:
            videos = f"{e.videos}/{e.expected}" if e.expected is not None else str(e.videos)
            state = "complete" if e.complete else "partial"
            print(f"{e.key:<16}  {state:<8}  {videos:>11}  {_human(e.bytes):>9}  {e.description}")
        return 0
    if not args.all and not args.keys:
        print("cache clean: name the KEYs to remove (see `cache ls`), or pass --all")
        return 2
    try:
        removed = clean(args.keys, all=args.all)
    except (CacheError, OSError) as e:
        print(f"cache clean: {e}")
        return 1
    for key in removed:
        print(f"removed {key}")
    if not removed:
        print("nothing to remove")
    return 0
