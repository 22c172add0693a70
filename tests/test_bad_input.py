"""The bad-input matrix of issue 15: each item as a hostile user found it, now refused with a
message that names the file and the fix, or skipped and counted -- never a silent change.

    1 `cache clean ..`               7 non-UTF-8 split files
    2 skip_errors and the cache      8 damaged key.json / manifest.json
    3 truncated or replaced videos   9 `extract --device cuda` without a GPU
    4 train/test leakage            10 torchvision weights unpickled weights_only
    5 damaged feature files         11 a repeated `-p`; a split path with `..`
    6 malformed Charades rows       12 permissions, temporaries, timings.json
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from actionbook import cli, runner
from actionbook.data.datasets import read_records, resolve_dataset
from actionbook.data.readers import (
    DatasetError,
    check_disjoint,
    read_charades,
    read_hmdb51,
    read_ucf101,
    ucf101_classes,
)
from actionbook.data.video import VideoDecodeError, probe, write_video
from actionbook.features import backbones as B
from actionbook.features import cache as C
from actionbook.features.extract import extract_features
from actionbook.io import atomic_path, atomic_write, is_temporary, temporaries, write_json
from conftest import SHARED_HINT, shared_path, write_notebook
from test_feature_cache import FAST, tiny_ucf



@pytest.fixture
def dataset(tmp_path) -> Path:
    """A fresh tiny UCF-101-layout dataset per test (tests here damage it)."""
    return tiny_ucf(tmp_path / "ucf")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _corrupt(path: Path) -> bytes:
    """Overwrite a video with bytes that are not a video; returns the original bytes."""
    good = path.read_bytes()
    path.write_bytes(b"\x00garbage, not a video" * 50)
    return good


# ---------------------------------------------------------------------------- 1 cache clean


def test_1_cache_clean_accepts_only_entry_keys(cache, capsys):
    entry = cache / "features" / "0123456789abcdef"
    (entry / "videos").mkdir(parents=True)
    write_json(entry / "key.json", {"description": "x"})
    precious = [cache / "pretrain" / "net.pt", cache / "runs" / "last.pt", cache / "flow" / "v.npz"]
    for p in precious:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"work of hours")
    outside = cache.parent / "elsewhere"
    outside.mkdir()
    (cache / "features" / "fedcba9876543210").symlink_to(outside, target_is_directory=True)
    for bad in ("..", "../features", "features/..", str(cache), "../pretrain", ".", "fedcba9876543210", ""):
        assert cli.main(["cache", "clean", bad]) == 1, bad
        err = capsys.readouterr().out
        assert "no feature-cache entry" in err and "cache ls" in err
    # one bad KEY among good ones removes nothing
    assert cli.main(["cache", "clean", "0123456789abcdef", ".."]) == 1
    assert entry.is_dir() and all(p.is_file() for p in precious) and outside.is_dir()
    assert cli.main(["cache", "clean", "0123456789abcdef"]) == 0
    assert not entry.exists() and all(p.is_file() for p in precious)
    assert cli.main(["cache", "clean", "--all"]) == 0  # never follows the link out of the cache
    assert outside.is_dir() and all(p.is_file() for p in precious)


# ---------------------------------------------------------------------------- 2 skip_errors


def test_2_entry_made_with_skip_errors_is_never_returned_silently(dataset, cache, capsys):
    bad = dataset / "videos" / "Red" / "v_Red_g02_c01.avi"
    good = _corrupt(bad)
    fs = extract_features(dataset=dataset, subset="train", skip_errors=True, **FAST)
    assert len(fs) == 3 and fs.skipped == ["v_Red_g02_c01"]
    err = capsys.readouterr().err
    assert "skipped 1 unreadable video(s) of 4" in err and str(bad) in err
    # a caller that did not ask to skip gets the error, naming the file -- not 3 videos of 4
    with pytest.raises(VideoDecodeError, match="v_Red_g02_c01.avi"):
        extract_features(dataset=dataset, subset="train", **FAST)
    # the repaired video is extracted, and the entry is whole
    bad.write_bytes(good)
    seen = []
    whole = extract_features(dataset=dataset, subset="train", on_video=seen.append, **FAST)
    assert seen == [1] and len(whole) == 4 and whole.skipped == []
    assert whole.video_ids == ["v_Red_g01_c01", "v_Red_g02_c01", "v_Blue_g01_c01", "v_Blue_g02_c01"]


# ---------------------------------------------------------------------------- 3 truncated / replaced videos


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_3_truncated_video_is_an_error_or_a_counted_skip(dataset, cache, capsys):
    victim = dataset / "videos" / "Blue" / "v_Blue_g03_c01.avi"
    _truncate(victim, keep=0.9)  # the last few frames cut off
    info = probe(victim)
    assert info.declared_frames == 20 and info.num_frames < 19
    with pytest.raises(VideoDecodeError, match=r"header declares 20 frames but only \d+ decode"):
        info.check_complete(victim)
    with pytest.raises(VideoDecodeError) as e:
        extract_features(dataset=dataset, subset="test", **FAST)
    assert str(victim) in str(e.value) and "skip" in str(e.value)
    fs = extract_features(dataset=dataset, subset="test", skip_errors=True, **FAST)
    assert fs.video_ids == ["v_Red_g03_c01"] and fs.skipped == ["v_Blue_g03_c01"]
    assert "skipped 1 unreadable" in capsys.readouterr().err


def test_3_complete_video_passes_the_truncation_check(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, np.zeros((12, 16, 16, 3), np.uint8), fps=25)
    info = probe(path, exact=True)
    assert info.num_frames == info.declared_frames == 12
    info.check_complete(path)


def test_3_replaced_video_is_extracted_again(dataset, cache, tmp_path, monkeypatch, capsys):
    first = extract_features(dataset=dataset, subset="test", **FAST)
    target = dataset / "videos" / "Red" / "v_Red_g03_c01.avi"
    rng = np.random.default_rng(7)
    write_video(target, rng.integers(0, 255, size=(20, 32, 32, 3), dtype=np.uint8), fps=25)  # same name, new video
    seen = []
    again = extract_features(dataset=dataset, subset="test", on_video=seen.append, **FAST)
    assert seen == [1] and "changed on disk" in capsys.readouterr().err
    assert again.key == first.key and not torch.equal(again.features[0], first.features[0])
    assert torch.equal(again.features[1], first.features[1])
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "fresh"))
    fresh = extract_features(dataset=dataset, subset="test", **FAST)
    assert torch.equal(fresh.features[0], again.features[0])


# ---------------------------------------------------------------------------- 4 leakage


def _append(path: Path, line: str) -> None:
    path.write_bytes(path.read_bytes() + line.encode() + b"\r\n")


def test_4_a_video_in_train_and_test_is_refused(dataset, cache, capsys):
    _append(dataset / "splits" / "testlist01.txt", "Red/v_Red_g01_c01.avi")
    for subset in ("train", "test"):
        with pytest.raises(DatasetError) as e:
            read_records(resolve_dataset(dataset, layout="ucf101"), split=1, subset=subset)
        msg = str(e.value)
        assert "testlist01.txt:3" in msg and "trainlist01.txt:1" in msg and "v_Red_g01_c01" in msg
    with pytest.raises(DatasetError, match="both the train and the test list"):
        extract_features(dataset=dataset, subset="train", **FAST)
    assert cli.main(["describe", "--layout", "ucf101", "--root", str(dataset)]) == 2
    assert "testlist01.txt:3" in capsys.readouterr().err
    assert not (cache / "features").exists()  # refused before anything was written


def test_4_a_group_in_train_and_test_is_refused(dataset):
    train = dataset / "splits" / "trainlist01.txt"
    lines = train.read_bytes().decode().splitlines()
    train.write_bytes("".join(f"{ln}\r\n" for ln in lines if "v_Red_g01" not in ln).encode())
    _append(dataset / "splits" / "testlist01.txt", "Red/v_Red_g01_c01.avi")  # g01 now in both
    with pytest.raises(DatasetError) as e:
        read_records(resolve_dataset(dataset, layout="ucf101"), split=1, subset="test")
    assert "group g01" in str(e.value) and "v_Blue_g01_c01 in train" in str(e.value)
    assert "testlist01.txt:3" in str(e.value) and "trainlist01.txt:2" in str(e.value)


def _official_splits() -> Path | None:
    found = shared_path("data", "ucf101_splits", "classInd.txt")
    return found.parent if found else None


@pytest.mark.skipif(_official_splits() is None, reason=f"the official UCF-101 split files: {SHARED_HINT}")
def test_4_official_ucf101_splits_pass_the_leak_check(tmp_path):
    splits = _official_splits()
    assert len(ucf101_classes(splits)) == 101
    for s in (1, 2, 3):
        train, test = (read_ucf101(videos=tmp_path, splits=splits, split=s, subset=x, check_files=False)
                       for x in ("train", "test"))
        check_disjoint(train, test)
        assert len(train) + len(test) == 13320
        with pytest.raises(DatasetError, match="both the train and the test list"):  # and it bites on them
            check_disjoint(train, test + [train[-1]])


# ---------------------------------------------------------------------------- 5 damaged feature files


def _entry_file(cache: Path, fs: C.FeatureSet) -> Path:
    return cache / "features" / fs.key / "videos" / f"{fs.video_ids[0]}.pt"


def test_5_flipped_bytes_in_a_feature_file_are_refused(dataset, cache):
    fs = extract_features(dataset=dataset, subset="test", **FAST)
    path = _entry_file(cache, fs)
    data = bytearray(path.read_bytes())
    x = fs.features[0]
    at = bytes(data).find(struct.pack("<f", float(x.max())))
    assert at > 0
    data[at + 3] ^= 0x01  # one bit of the largest feature value: still a valid torch file
    path.write_bytes(bytes(data))
    assert not torch.equal(torch.load(path, weights_only=True)["x"], x)
    for load in (lambda: C.load_features(fs.key), lambda: extract_features(dataset=dataset, subset="test", **FAST)):
        with pytest.raises(C.CacheError) as e:
            load()
        assert str(path) in str(e.value) and "changed since it was written" in str(e.value)
        assert f"python -m actionbook cache clean {fs.key}" in str(e.value)


@pytest.mark.parametrize("damage, message", [
    (lambda o: dict(o, x=torch.full_like(o["x"], float("nan"))), "NaN or infinite"),
    (lambda o: dict(o, x=o["x"].index_fill(0, torch.tensor([1]), float("inf"))), "NaN or infinite"),
    (lambda o: dict(o, x=o["x"][:-1]), "feature rows but"),
    (lambda o: dict(o, index=torch.tensor([[0, 99]])), "clip index points outside"),
])
def test_5_non_finite_or_misshapen_features_are_refused(dataset, cache, damage, message):
    fs = extract_features(dataset=dataset, subset="test", **FAST)
    path = _entry_file(cache, fs)
    torch.save(damage(torch.load(path, weights_only=True)), path)
    with pytest.raises(C.CacheError, match=message) as e:
        C.load_features(fs.key)
    assert str(path) in str(e.value) and f"cache clean {fs.key}" in str(e.value)


# ---------------------------------------------------------------------------- 6 Charades rows

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length"


def _charades(tmp_path: Path, *rows: str) -> tuple[Path, Path]:
    videos = tmp_path / "videos"
    videos.mkdir(exist_ok=True)
    (tmp_path / "Charades_v1_classes.txt").write_text("c000 Holding\nc001 Putting\n")
    csv = tmp_path / "Charades_v1_train.csv"
    csv.write_text("\n".join([HEADER, *rows]) + "\n")
    return videos, csv


@pytest.mark.parametrize("row, message", [
    ("AB12C,c000 1.0 2.0", "2 fields, but the header has 11"),
    ("AB12C,s,k,6,7,Yes,,,,c000 1.0 2.0,10,extra", "12 fields, but the header has 11"),
    ("AB12C,s,k,6,7,Yes,,,,c000 5.0 2.0,10", "ends before it starts"),
    ("AB12C,s,k,6,7,Yes,,,,c000 -1.0 2.0,10", "negative or not finite"),
    ("AB12C,s,k,6,7,Yes,,,,c000 nan 2.0,10", "negative or not finite"),
    ("AB12C,s,k,6,7,Yes,,,,c000 1.0 inf,10", "negative or not finite"),
    ("AB12C,s,k,6,7,Yes,,,,c000 11.0 12.0,10", "starts at or after the video's length"),
    ("AB12C,s,k,6,7,Yes,,,,c000 1.0 15.0,10", "ends more than 2 s after"),
    ("AB12C,s,k,6,7,Yes,,,,c000 1.0 2.0,nan", "not a positive number"),
    ("AB12C,s,k,6,7,Yes,,,,c000 1.0 2.0,-3", "not a positive number"),
])
def test_6_malformed_charades_rows_are_refused_with_their_line(tmp_path, row, message):
    videos, csv = _charades(tmp_path, "OK001,s,k,6,7,Yes,,,,c001 0.0 1.0,10", row)
    with pytest.raises(DatasetError, match=message) as e:
        read_charades(videos=videos, csv=csv, check_files=False)
    assert f"{csv}:3" in str(e.value)


def test_6_official_charades_quirks(tmp_path):
    # ends up to END_SLACK after the length are the official files' norm and pass
    videos, csv = _charades(tmp_path, "AB12C,s,k,6,7,Yes,,,,c000 0.0 31.0;c001 1.0 2.0,29.46")
    [r] = read_charades(videos=videos, csv=csv, check_files=False)
    assert r.labels == (0, 1) and r.segments == ((0, 0.0, 31.0), (1, 1.0, 2.0))
    # reversed times (the official train CSV has a few) are kept as written only when asked, with a count
    videos, csv = _charades(tmp_path, "00SL4,s,k,6,7,Yes,,,,c001 18.00 10.00;c000 1.0 2.0,8.96")
    with pytest.raises(DatasetError, match=f"{csv}:2"):
        read_charades(videos=videos, csv=csv, check_files=False)
    with pytest.warns(UserWarning, match="kept 1 action"):
        [r] = read_charades(videos=videos, csv=csv, check_files=False, keep_odd_times=True)
    assert r.segments == ((1, 18.0, 10.0), (0, 1.0, 2.0)) and r.labels == (0, 1)


# ---------------------------------------------------------------------------- 7 non-UTF-8 bytes


@pytest.mark.parametrize("name", ["classInd.txt", "trainlist01.txt", "testlist01.txt"])
def test_7_non_utf8_ucf101_split_file_names_file_and_line(dataset, cache, capsys, name):
    path = dataset / "splits" / name
    lines = path.read_bytes().split(b"\r\n")
    lines[1] = lines[1][:4] + b"\xff\xfe" + lines[1][4:]
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(DatasetError, match=rf"{name}:2: byte b'\\xff' is not UTF-8"):
        read_records(resolve_dataset(dataset, layout="ucf101"), split=1, subset="train")
    argv = ["extract", "--dataset", str(dataset), "--backbone", "resnet18", "--layer", "layer4",
            "--sampling", "frames", "--weights", "none", "--workers", "0", "--subset", "train"]
    assert cli.main(argv) == 1
    assert f"{path}:2: byte" in capsys.readouterr().err


def test_7_non_utf8_hmdb51_and_charades_files(tmp_path):
    splits = tmp_path / "hmdb" / "splits"
    splits.mkdir(parents=True)
    (splits / "wave_test_split1.txt").write_bytes(b"a.avi 1\nb\xe9.avi 2\n")
    with pytest.raises(DatasetError, match=r"wave_test_split1.txt:2: byte b'\\xe9'"):
        read_hmdb51(videos=tmp_path, splits=splits, split=1, subset="train", check_files=False)
    videos, csv = _charades(tmp_path, "AB12C,s,k,6,7,Yes,,,,c000 1.0 2.0,10")
    csv.write_bytes(csv.read_bytes() + b"XY12Z,s,k,6,7,Yes,caf\xe9,,,,10\n")
    with pytest.raises(DatasetError, match=r"Charades_v1_train.csv:3: byte b'\\xe9'"):
        read_charades(videos=videos, csv=csv, check_files=False)
    (tmp_path / "Charades_v1_classes.txt").write_bytes(b"c000 Holding\nc001 Put\xfftting\n")
    with pytest.raises(DatasetError, match=r"Charades_v1_classes.txt:2: byte"):
        read_charades(videos=videos, csv=csv, check_files=False)


# ---------------------------------------------------------------------------- 8 damaged cache JSON


@pytest.mark.parametrize("name", ["manifest.json", "key.json"])
def test_8_damaged_cache_json_names_the_file_and_the_fix(dataset, cache, capsys, name):
    fs = extract_features(dataset=dataset, subset="test", **FAST)
    path = cache / "features" / fs.key / name
    path.write_text(path.read_text()[:40])  # cut mid-string
    for load in (lambda: C.load_features(fs.key), lambda: extract_features(dataset=dataset, subset="test", **FAST)):
        with pytest.raises(C.CacheError) as e:
            load()
        assert str(path) in str(e.value) and f"python -m actionbook cache clean {fs.key}" in str(e.value)
    assert cli.main(["cache", "ls"]) == 0  # lists the damaged entry instead of failing
    assert fs.key in capsys.readouterr().out
    assert cli.main(["cache", "clean", fs.key]) == 0  # and the named fix works
    assert len(extract_features(dataset=dataset, subset="test", **FAST)) == 2


# ---------------------------------------------------------------------------- 9 --device cuda


def test_9_extract_on_a_missing_gpu_is_a_clean_error(dataset, cache, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["extract", "--dataset", str(dataset), "--backbone", "resnet18", "--layer", "layer4",
            "--sampling", "frames", "--weights", "none", "--workers", "0", "--device", "cuda"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err and "Traceback" not in err
    assert cli.main([*argv[:-1], "gpu0"]) == 1
    assert "not a device" in capsys.readouterr().err


# ---------------------------------------------------------------------------- 10 weights_only


class _Payload:
    """Unpickling this runs code: it touches a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_10_torchvision_weights_are_loaded_weights_only(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    w = ResNet18_Weights.IMAGENET1K_V1
    path = B.weights_path(w)
    path.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"fc.weight": torch.zeros(2), "evil": _Payload(marker)}, path)
    with pytest.raises(B.MissingWeightsError, match=str(path)):
        B.load_weights(w)
    assert not marker.exists()  # the pickle's code never ran
    torch.save({"fc.weight": torch.ones(2)}, path)  # a plain state_dict loads
    assert torch.equal(B.load_weights(w)["fc.weight"], torch.ones(2))


# ---------------------------------------------------------------------------- 11 -p twice, paths with ..


def test_11_a_repeated_parameter_is_refused(tmp_path, capsys):
    nb = write_notebook(tmp_path / "nb.md", "print(seed)")
    assert cli.main(["run", "--mode", "ci", str(nb), "-p", "seed", "1", "-p", "seed", "2",
                     "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    assert "-p seed is given twice ('1' and '2')" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("line", ["Red/../../outside/v_Red_g01_c09.avi 1", "/etc/Red/v_Red_g01_c09.avi 1",
                                  "Red/..\\..\\outside\\v_Red_g01_c09.avi 1"])
def test_11_a_split_path_that_leaves_the_dataset_is_refused(dataset, line):
    outside = dataset.parent / "outside" / "v_Red_g01_c09.avi"
    outside.parent.mkdir()
    shutil.copy(dataset / "videos" / "Red" / "v_Red_g01_c01.avi", outside)  # it exists: it would be labelled
    _append(dataset / "splits" / "trainlist01.txt", line)
    with pytest.raises(DatasetError, match=r"trainlist01.txt:5: path .* leaves the dataset's videos folder"):
        read_records(resolve_dataset(dataset, layout="ucf101"), split=1, subset="train")


def test_11_hmdb51_and_charades_names_cannot_leave_the_dataset(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "wave_test_split1.txt").write_text("../../x.avi 1\n")
    with pytest.raises(DatasetError, match="wave_test_split1.txt:1: '../../x.avi' is not a file name"):
        read_hmdb51(videos=tmp_path, splits=splits, split=1, subset="train", check_files=False)
    videos, csv = _charades(tmp_path, "../x,s,k,6,7,Yes,,,,c000 1.0 2.0,10")
    with pytest.raises(DatasetError, match="Charades_v1_train.csv:2: id '../x' is not a Charades video id"):
        read_charades(videos=videos, csv=csv, check_files=False)


# ---------------------------------------------------------------------------- 12 permissions, temporaries


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_12_atomic_files_get_the_permissions_of_a_plain_write(tmp_path, umask):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        write_json(tmp_path / "a.json", {"a": 1})
        with atomic_write(tmp_path / "b.bin", "wb") as f:
            f.write(b"1")
        with atomic_path(tmp_path / "c.avi") as tmp:
            tmp.write_bytes(b"1")
    finally:
        os.umask(old)
    want = plain.stat().st_mode & 0o777
    assert want == 0o666 & ~umask
    for name in ("a.json", "b.bin", "c.avi"):
        assert (tmp_path / name).stat().st_mode & 0o777 == want, name


def test_12_temporaries_are_recognised(tmp_path):
    with atomic_path(tmp_path / "sub" / "exp.csv") as tmp:
        tmp.write_text("half")
        assert temporaries(tmp_path) == [tmp] and is_temporary(tmp)  # what the leftover checks look for
    assert temporaries(tmp_path) == [] and not is_temporary(tmp_path / "sub" / "exp.csv")
    assert not is_temporary(tmp_path / ".hidden") and not is_temporary(tmp_path / "notes.tmp")


def test_12_runner_leaves_no_temp_folder_and_writes_timings_atomically(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with pytest.raises(runner.RunnerError, match="no such notebook"):  # a failed run
        runner.run([tmp_path / "missing.md"], mode="ci", params={}, out_dir=tmp_path / "out", progress=False)
    assert list((tmp_path / "tmp").iterdir()) == []
    # timings.json: through os.replace (atomic), merged with what was there
    out = tmp_path / "out"
    (out / "ci").mkdir(parents=True)
    (out / "ci" / "timings.json").write_text('{"old": 1.0}\n')
    monkeypatch.setattr(runner, "run", lambda *a, **k: {"book/x": 1.234})
    replaced = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(Path(b)), real(a, b)))
    assert cli.main(["run", "--mode", "ci", "--out", str(out), "--no-progress", "x.md"]) == 0
    assert replaced == [out / "ci" / "timings.json"]
    assert (out / "ci" / "timings.json").read_text() == '{\n  "book/x": 1.23,\n  "old": 1.0\n}\n'
