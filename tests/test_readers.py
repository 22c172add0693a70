"""Split readers and `python -m actionbook describe`, on tiny layouts made in tmp_path
(with the real files' quirks), plus the real UCF-101 split files when they are around."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_HINT, shared_path
from actionbook.cli import main as cli
from actionbook.data.readers import (
    DatasetError,
    charades_classes,
    hmdb51_classes,
    read_charades,
    read_hmdb51,
    read_ucf101,
    ucf101_classes,
)

# ---------------------------------------------------------------------------------------
# UCF-101

# classInd order is not sorted() order (sorted() puts HammerThrow before Hammering).
UCF_CLASSES = ["Hammering", "HammerThrow", "HandstandPushups"]
UCF_TRAIN = [
    ("Hammering/v_Hammering_g08_c01.avi", 1),
    ("Hammering/v_Hammering_g09_c02.avi", 1),
    ("HammerThrow/v_HammerThrow_g08_c01.avi", 2),
    ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 3),  # the real lists' spelling
]
UCF_TEST = ["Hammering/v_Hammering_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g02_c03.avi"]


def _write(path: Path, lines: list[str], eol: str = "\r\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + eol for line in lines).encode())
    return path


def make_ucf(root: Path, eol: str = "\r\n", touch: bool = True) -> tuple[Path, Path]:
    videos, splits = root / "UCF-101", root / "ucfTrainTestlist"
    _write(splits / "classInd.txt", [f"{i} {c}" for i, c in enumerate(UCF_CLASSES, 1)], eol)
    _write(splits / "trainlist01.txt", [f"{p} {label}" for p, label in UCF_TRAIN], eol)
    _write(splits / "testlist01.txt", UCF_TEST, eol)
    if touch:
        for rel in [p for p, _ in UCF_TRAIN] + UCF_TEST:
            (videos / rel).parent.mkdir(parents=True, exist_ok=True)
            (videos / rel).write_bytes(b"")
    return videos, splits


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_ucf101_labels_groups_and_quirks(tmp_path, eol):
    videos, splits = make_ucf(tmp_path, eol)
    assert ucf101_classes(splits) == UCF_CLASSES  # file order, not sorted()
    train = read_ucf101(videos=videos, splits=splits, split=1, subset="train")
    assert [r.label for r in train] == [0, 0, 1, 2]
    assert [r.labels for r in train] == [(0,), (0,), (1,), (2,)]
    assert [r.group for r in train] == ["g08", "g09", "g08", "g08"]
    hs = train[3]
    assert hs.video_id == "v_HandStandPushups_g08_c01"
    assert hs.path == (videos / "HandstandPushups" / "v_HandStandPushups_g08_c01.avi").resolve()
    assert hs.path.is_absolute()
    test = read_ucf101(videos=videos, splits=splits, split=1, subset="test")
    assert [(r.label, r.group) for r in test] == [(0, "g01"), (2, "g02")]  # label from the folder


def test_ucf101_no_check_lists_without_videos(tmp_path):
    videos, splits = make_ucf(tmp_path, touch=False)
    assert len(read_ucf101(videos=videos, splits=splits, split=1, subset="train", check_files=False)) == 4
    with pytest.raises(DatasetError, match=r"trainlist01\.txt:1: .*v_Hammering_g08_c01\.avi"):
        read_ucf101(videos=videos, splits=splits, split=1, subset="train")


def _ucf_error(tmp_path, *, train=None, classind=None, subset="train", split=1):
    videos, splits = make_ucf(tmp_path)
    if train is not None:
        _write(splits / "trainlist01.txt", train)
    if classind is not None:
        _write(splits / "classInd.txt", classind)
    with pytest.raises(DatasetError) as e:
        read_ucf101(videos=videos, splits=splits, split=split, subset=subset)
    return str(e.value)


def test_ucf101_missing_split_file(tmp_path):
    msg = _ucf_error(tmp_path, split=2)
    assert "trainlist02.txt" in msg and "not found" in msg


def test_ucf101_missing_classind(tmp_path):
    videos, splits = make_ucf(tmp_path)
    (splits / "classInd.txt").unlink()
    with pytest.raises(DatasetError, match="classInd.txt"):
        read_ucf101(videos=videos, splits=splits, split=1, subset="test")


def test_ucf101_unparsable_line(tmp_path):
    msg = _ucf_error(tmp_path, train=[f"{UCF_TRAIN[0][0]} 1", "Hammering/v_Hammering_g08_c02.avi one"])
    assert "trainlist01.txt:2:" in msg


def test_ucf101_label_out_of_range(tmp_path):
    msg = _ucf_error(tmp_path, train=["Hammering/v_Hammering_g08_c01.avi 4"])
    assert "trainlist01.txt:1:" in msg and "outside 1..3" in msg


def test_ucf101_label_disagrees_with_folder(tmp_path):
    msg = _ucf_error(tmp_path, train=["Hammering/v_Hammering_g08_c01.avi 2"])
    assert "trainlist01.txt:1:" in msg and "HammerThrow" in msg


def test_ucf101_unknown_class_folder(tmp_path):
    videos, splits = make_ucf(tmp_path)
    _write(splits / "testlist01.txt", [UCF_TEST[0], "Juggling/v_Juggling_g01_c01.avi"])
    with pytest.raises(DatasetError, match=r"testlist01\.txt:2: .*'Juggling' is not in"):
        read_ucf101(videos=videos, splits=splits, split=1, subset="test")


def test_ucf101_duplicate_entry(tmp_path):
    line = f"{UCF_TRAIN[0][0]} 1"
    msg = _ucf_error(tmp_path, train=[line, f"{UCF_TRAIN[1][0]} 1", line])
    assert "trainlist01.txt:3:" in msg and "duplicate" in msg and "line 1" in msg


def test_ucf101_duplicate_class(tmp_path):
    msg = _ucf_error(tmp_path, classind=["1 Hammering", "2 Hammering"])
    assert "classInd.txt:2:" in msg and "duplicate" in msg


def _real_ucf_splits() -> Path | None:
    found = shared_path("data", "ucf101_splits", "classInd.txt")
    return found.parent if found else None


@pytest.mark.skipif(_real_ucf_splits() is None,
                    reason=f"the official UCF-101 split files (shared/data/ucf101_splits/) were {SHARED_HINT}")
def test_ucf101_real_split_files():
    splits = _real_ucf_splits()
    classes = ucf101_classes(splits)
    assert len(classes) == 101 and classes[0] == "ApplyEyeMakeup" and classes[-1] == "YoYo"
    assert classes.index("Hammering") < classes.index("HammerThrow")  # not sorted() order
    assert classes.index("JumpingJack") < classes.index("JumpRope")  # sorted() has JumpRope first
    assert classes != sorted(classes)
    expected = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}
    for split, (n_train, n_test) in expected.items():
        train = read_ucf101(videos=Path("/nowhere"), splits=splits, split=split, subset="train", check_files=False)
        test = read_ucf101(videos=Path("/nowhere"), splits=splits, split=split, subset="test", check_files=False)
        assert (len(train), len(test)) == (n_train, n_test)
        assert {r.group for r in train}.isdisjoint({r.group for r in test})  # groups never straddle
        assert {r.label for r in test} == set(range(101))
    hs = [r for r in train if r.video_id.startswith("v_HandStandPushups")]
    assert hs and {r.label for r in hs} == {classes.index("HandstandPushups")}


# ---------------------------------------------------------------------------------------
# HMDB-51


def make_hmdb(root: Path) -> tuple[Path, Path]:
    splits = root / "testTrainMulti_7030_splits"
    _write(splits / "wave_test_split1.txt", ["w1.avi 1 ", "w2.avi 2 ", "w3.avi 0 ", "w4.avi 1 "], "\n")
    _write(splits / "brush_hair_test_split1.txt", ["b1.avi 2 ", "b2.avi 1 "], "\n")
    _write(splits / "wave_test_split2.txt", ["w1.avi 2", "w2.avi 1"], "\n")
    _write(splits / "brush_hair_test_split2.txt", ["b1.avi 1", "b2.avi 2"], "\n")
    for c, vids in {"wave": ["w1", "w2", "w3", "w4"], "brush_hair": ["b1", "b2"]}.items():
        for v in vids:
            (root / c).mkdir(parents=True, exist_ok=True)
            (root / c / f"{v}.avi").write_bytes(b"")
    return root, splits


def test_hmdb51(tmp_path):
    videos, splits = make_hmdb(tmp_path)
    assert hmdb51_classes(splits) == ["brush_hair", "wave"]
    train = read_hmdb51(videos=videos, splits=splits, split=1, subset="train")
    assert [(r.video_id, r.label) for r in train] == [("b2", 0), ("w1", 1), ("w4", 1)]  # 0 = unused: w3 absent
    test = read_hmdb51(videos=videos, splits=splits, split=1, subset="test")
    assert [(r.video_id, r.label) for r in test] == [("b1", 0), ("w2", 1)]
    assert test[1].path == (videos / "wave" / "w2.avi").resolve()
    assert [r.video_id for r in read_hmdb51(videos=videos, splits=splits, split=2, subset="train")] == ["b1", "w2"]


def test_hmdb51_errors(tmp_path):
    videos, splits = make_hmdb(tmp_path)
    with pytest.raises(DatasetError, match=r"brush_hair_test_split3\.txt.*not found"):
        read_hmdb51(videos=videos, splits=splits, split=3, subset="train")
    (videos / "wave" / "w4.avi").unlink()
    with pytest.raises(DatasetError, match=r"wave_test_split1\.txt:4: .*w4\.avi"):
        read_hmdb51(videos=videos, splits=splits, split=1, subset="train")
    _write(splits / "wave_test_split2.txt", ["w1.avi 2", "w2.avi 3"], "\n")
    with pytest.raises(DatasetError, match=r"wave_test_split2\.txt:2:"):
        read_hmdb51(videos=videos, splits=splits, split=2, subset="train")
    _write(splits / "wave_test_split2.txt", ["w1.avi 2", "w1.avi 2"], "\n")
    with pytest.raises(DatasetError, match=r"wave_test_split2\.txt:2: duplicate"):
        read_hmdb51(videos=videos, splits=splits, split=2, subset="test")
    with pytest.raises(DatasetError, match="no '<class>_test_splitN.txt' files"):
        hmdb51_classes(tmp_path / "wave")


# ---------------------------------------------------------------------------------------
# Charades

CHARADES_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length"


def make_charades(root: Path, rows: list[str] | None = None) -> tuple[Path, Path, Path]:
    videos = root / "Charades_v1_480"
    videos.mkdir(parents=True, exist_ok=True)
    classes = _write(root / "Charades_v1_classes.txt", ["c000 Holding some clothes", "c001 Putting clothes somewhere",
                                                         "c002 Taking a laptop"], "\n")  # fmt: skip
    rows = rows or [
        '46GP8,HR43,Kitchen,6,7,Yes,"A person cooks; then eats.",food,"cooks, eats","c002 11.90 21.20;c000 0.00 12.60;c002 30.0 31.5",33.67',
        "N11GT,0KZ7,Stairs,6,7,Yes,A person walks.,stairs,walks,,20.5",
    ]  # fmt: skip
    csv = _write(root / "Charades_v1_train.csv", [CHARADES_HEADER, *rows], "\n")
    (videos / "46GP8.mp4").write_bytes(b"")
    (videos / "N11GT.avi").write_bytes(b"")  # .avi accepted too
    return videos, csv, classes


def test_charades(tmp_path):
    videos, csv, classes_file = make_charades(tmp_path)
    assert charades_classes(classes_file) == ["Holding some clothes", "Putting clothes somewhere", "Taking a laptop"]
    a, b = read_charades(videos=videos, csv=csv)  # classes file found beside the CSV
    assert a.video_id == "46GP8" and a.label is None and a.labels == (0, 2)
    assert a.segments == ((2, 11.9, 21.2), (0, 0.0, 12.6), (2, 30.0, 31.5))
    assert a.duration == pytest.approx(33.67) and a.path.name == "46GP8.mp4"
    assert b.labels == () and b.segments == () and b.path.name == "N11GT.avi"


def test_charades_errors(tmp_path):
    videos, csv, classes_file = make_charades(tmp_path, ["X1,s,k,6,7,Yes,,,,c003 1.0 2.0,10"])
    (videos / "X1.mp4").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"Charades_v1_train\.csv:2: unknown class c003"):
        read_charades(videos=videos, csv=csv, classes_file=classes_file)
    _write(csv, [CHARADES_HEADER, "X1,s,k,6,7,Yes,,,,c001 1.0,10"], "\n")
    with pytest.raises(DatasetError, match=r"csv:2: action 'c001 1.0'"):
        read_charades(videos=videos, csv=csv)
    _write(csv, [CHARADES_HEADER, "X1,s,k,6,7,Yes,,,,,10", "X2,s,k,6,7,Yes,,,,,10", "X1,s,k,6,7,Yes,,,,,10"], "\n")
    with pytest.raises(DatasetError, match=r"csv:4: duplicate id 'X1'"):
        read_charades(videos=videos, csv=csv, check_files=False)
    _write(csv, [CHARADES_HEADER, "X1,s,k,6,7,Yes,,,,,10", "X2,s,k,6,7,Yes,,,,,10"], "\n")
    with pytest.raises(DatasetError, match=r"csv:3: .*X2\.mp4"):
        read_charades(videos=videos, csv=csv)
    with pytest.raises(DatasetError, match="Charades_v1_test.csv"):
        read_charades(videos=videos, csv=tmp_path / "Charades_v1_test.csv")
    _write(classes_file, ["c000 a", "c002 b"], "\n")
    with pytest.raises(DatasetError, match=r"classes\.txt:2: expected code c001"):
        charades_classes(classes_file)


# ---------------------------------------------------------------------------------------
# describe


def test_describe_ucf101_json(tmp_path, capsys):
    make_ucf(tmp_path)
    assert cli(["describe", "--layout", "ucf101", "--root", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"classes": UCF_CLASSES, "train": 4, "test": 2}


def test_describe_text_and_generated_names(tmp_path, capsys):
    # the generated benchmark's names: videos/ and splits/
    videos, splits = make_ucf(tmp_path)
    videos.rename(tmp_path / "videos")
    splits.rename(tmp_path / "splits")
    assert cli(["describe", "--layout", "ucf101", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 classes" in out and "0  Hammering" in out and "1  HammerThrow" in out
    assert out.rstrip().splitlines()[-1].split() == ["1", "4", "2"]


def test_describe_checks_files(tmp_path, capsys):
    make_ucf(tmp_path)
    (tmp_path / "UCF-101" / UCF_TEST[1]).unlink()
    assert cli(["describe", "--layout", "ucf101", "--root", str(tmp_path), "--json"]) == 2
    assert "testlist01.txt:2:" in capsys.readouterr().err
    assert cli(["describe", "--layout", "ucf101", "--root", str(tmp_path), "--json", "--no-check"]) == 0
    assert json.loads(capsys.readouterr().out)["test"] == 2


def test_describe_hmdb51_and_charades(tmp_path, capsys):
    make_hmdb(tmp_path / "hmdb")
    assert cli(["describe", "--layout", "hmdb51", "--root", str(tmp_path / "hmdb"), "--json", "--split", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == {"classes": ["brush_hair", "wave"], "train": 2, "test": 2}
    _, _, _ = make_charades(tmp_path / "ch")
    _write(tmp_path / "ch" / "Charades_v1_test.csv", [CHARADES_HEADER, "T3ST1,s,k,6,7,Yes,,,,c001 0 1,3"], "\n")
    (tmp_path / "ch" / "Charades_v1_480" / "T3ST1.mp4").write_bytes(b"")
    assert cli(["describe", "--layout", "charades", "--root", str(tmp_path / "ch"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"classes": ["Holding some clothes", "Putting clothes somewhere", "Taking a laptop"],
                   "train": 2, "test": 1}  # fmt: skip


def test_describe_missing_folders(tmp_path, capsys):
    assert cli(["describe", "--layout", "ucf101", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ucfTrainTestlist" in err and "splits" in err and "--splits" in err
    make_ucf(tmp_path, touch=False)
    assert cli(["describe", "--layout", "ucf101", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "UCF-101" in err and "videos" in err
