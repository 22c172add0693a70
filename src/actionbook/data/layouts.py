"""Small datasets in the real datasets' own file layouts, rendered by the generator.

Full mode reads UCF-101, HMDB-51 and Charades from the folders `data/README.md` describes.
Nobody can download them here, so the code that reads them in full mode is exercised on
stand-ins written in exactly those layouts: the official folder and file names, split files in
the official formats (UCF-101's CRLF lists, HMDB-51's `<class>_test_split1.txt`, Charades'
CSV), real class names, and real-codec videos (MPEG-4 in AVI, or MP4 for Charades) at the
real datasets' 320 x 240. Their pictures are the generated benchmark's scenes (class j of the
stand-in shows the benchmark's class j mod 20), so a model can learn something from them, but
nothing about the real datasets.

    write_ucf101(root, classes=["ApplyEyeMakeup", "Archery"], train=1, test=1, frames=6)
    write_hmdb51(root, classes=["brush_hair", "cartwheel"], train=1, test=1, frames=6)
    write_charades(root, classes=["Holding some clothes", ...], train=2, test=2, frames=12)

Only split 1 is written (the one every chapter runs). The full-mode smoke test
(`tests/test_full_mode.py`) and `benchmarks/gpu_full.py` use these; so can a reader who wants
to try full mode's code path before fetching a dataset.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from actionbook.data import generate as G
from actionbook.io import atomic_write

__all__ = ["SIZE", "write_ucf101", "write_hmdb51", "write_charades"]

SIZE = (240, 320)  # (height, width) of UCF-101's and HMDB-51's videos (Charades' 480p copies are larger)
FPS = 25.0


def _preset(frames: int, size: tuple[int, int]) -> G.Preset:
    if frames < 2:
        raise ValueError(f"frames must be >= 2 (optical flow needs a pair), got {frames}")
    h, w = size
    return G.Preset("layout", height=h, width=w, fps=FPS, frames=(frames, frames), clips=(1, 1), qscale=4)


def _check(classes: Sequence[str], train: int, test: int) -> None:
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"give at least two distinct class names, got {list(classes)}")
    if train < 1 or test < 1:
        raise ValueError(f"train and test must be >= 1 video per class, got train={train}, test={test}")


def _render(path: Path, p: G.Preset, *, seed: int, label: int, group: int, clip: int) -> None:
    from actionbook.data.video import write_video

    frames = G.render_video(preset=p, seed=seed, label=label % len(G.CLASSES), group=group, clip=clip)
    write_video(path, frames, fps=p.fps, qscale=p.qscale)  # atomic


def _crlf(path: Path, lines: list[str]) -> None:
    with atomic_write(path, "w", newline="") as f:
        f.write("".join(line + "\r\n" for line in lines))


def write_ucf101(root: Path, *, classes: Sequence[str], train: int = 1, test: int = 1, frames: int = 6,
                 size: tuple[int, int] = SIZE, seed: int = 0) -> Path:
    """`root/UCF-101/<Class>/v_<Class>_gGG_cCC.avi` and `root/ucfTrainTestlist/` (classInd.txt,
    trainlist01.txt, testlist01.txt), in UCF-101's format: CRLF lines, 1-based labels on train
    lines, none on test lines. As in split 1, test videos come from groups 1-7 and training
    videos from groups 8-25 (one group per video, so no group is in both)."""
    _check(classes, train, test)
    if test > 7 or train > 18:
        raise ValueError(f"split 1 of UCF-101 has 7 test groups and 18 training groups; got test={test}, train={train}")
    root, p = Path(root), _preset(frames, size)
    train_lines, test_lines = [], []
    for label, name in enumerate(classes):
        for k, group in enumerate([*range(1, test + 1), *range(8, 8 + train)]):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            _render(root / "UCF-101" / rel, p, seed=seed, label=label, group=group, clip=1)
            (test_lines.append(rel) if k < test else train_lines.append(f"{rel} {label + 1}"))
    splits = root / "ucfTrainTestlist"
    _crlf(splits / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)])
    _crlf(splits / "trainlist01.txt", train_lines)
    _crlf(splits / "testlist01.txt", test_lines)
    return root


def write_hmdb51(root: Path, *, classes: Sequence[str], train: int = 1, test: int = 1, frames: int = 6,
                 size: tuple[int, int] = SIZE, seed: int = 0) -> Path:
    """`root/<class>/<video>.avi` and `root/testTrainMulti_7030_splits/<class>_test_split1.txt`
    with lines `<video>.avi 1` (train) or `2` (test), plus one `0` (unused) line per class, as
    the official files have."""
    _check(classes, train, test)
    root, p = Path(root), _preset(frames, size)
    for label, name in enumerate(classes):
        lines = []
        for k in range(train + test + 1):
            video = f"{name}_{k:02d}_u_nm_np1_fr_goo_0.avi"
            use = "1" if k < train else ("2" if k < train + test else "0")
            if use != "0":  # an unused video need not exist: the readers never open it
                _render(root / name / video, p, seed=seed, label=label, group=k + 1, clip=1)
            lines.append(f"{video} {use}")
        with atomic_write(root / "testTrainMulti_7030_splits" / f"{name}_test_split1.txt") as f:
            f.write("".join(f"{ln} \n" for ln in lines))  # the official files end lines with a space
    return root


_CHARADES_COLUMNS = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects",
                     "descriptions", "actions", "length"]


def write_charades(root: Path, *, classes: Sequence[str], train: int = 2, test: int = 2, frames: int = 12,
                   size: tuple[int, int] = SIZE, seed: int = 0) -> Path:
    """`root/Charades_v1_480/<ID>.mp4`, `root/Charades_v1_{train,test}.csv` (the official columns;
    `actions` as `c000 0.00 0.24;c001 0.12 0.48`) and `root/Charades_v1_classes.txt`
    (`c000 <description>`). `train` and `test` count videos (not per class); each video holds
    two actions of different classes over overlapping intervals."""
    _check(classes, train, test)
    if frames < 8:
        raise ValueError(f"Charades-style videos need at least 8 frames (two actions), got {frames}")
    root, p = Path(root), _preset(frames, size)
    from actionbook.data.video import write_video

    rows: dict[str, list[list[str]]] = {"train": [], "test": []}
    for i in range(train + test):
        vid = f"S{i:04d}"
        a, b = i % len(classes), (i + 1) % len(classes)
        actions = ((a % len(G.CLASSES), 0, frames * 2 // 3), (b % len(G.CLASSES), frames // 3, frames))
        video = G.MultiLabelVideo(vid, i, i % 8 + 1, frames, actions)
        write_video(root / "Charades_v1_480" / f"{vid}.mp4", G.render_multilabel(preset=p, seed=seed, video=video),
                    fps=p.fps, qscale=p.qscale)
        spans = [(a, 0, frames * 2 // 3), (b, frames // 3, frames)]
        rows["train" if i < train else "test"].append([
            vid, "S0", "Kitchen", "7", "7", "Yes", "", "", "",
            ";".join(f"c{c:03d} {s / FPS:.2f} {e / FPS:.2f}" for c, s, e in spans), f"{frames / FPS:.2f}"])
    for subset, body in rows.items():
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(_CHARADES_COLUMNS)
        w.writerows(body)
        with atomic_write(root / f"Charades_v1_{subset}.csv", "w", newline="") as f:
            f.write(buf.getvalue())
    with atomic_write(root / "Charades_v1_classes.txt") as f:
        f.write("".join(f"c{i:03d} {c}\n" for i, c in enumerate(classes)))
    return root
