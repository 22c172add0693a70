"""actionbook.data.layouts: stand-in datasets in the official UCF-101, HMDB-51 and Charades layouts,
read back by the real readers (what the full-mode smoke test stands on)."""

from __future__ import annotations

import pytest

from actionbook.data import layouts
from actionbook.data.datasets import read_records, resolve_dataset
from actionbook.data.video import probe


def test_ucf101_layout_is_the_official_one(tmp_path):
    root = layouts.write_ucf101(tmp_path / "ucf101", classes=["ApplyEyeMakeup", "Archery", "BabyCrawling"],
                                train=2, test=1, frames=3)
    splits = root / "ucfTrainTestlist"
    assert (splits / "classInd.txt").read_bytes() == b"1 ApplyEyeMakeup\r\n2 Archery\r\n3 BabyCrawling\r\n"
    assert (splits / "trainlist01.txt").read_bytes().startswith(b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n")
    assert (splits / "testlist01.txt").read_bytes().startswith(b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n")
    ds = resolve_dataset(root, layout="ucf101")
    train, classes = read_records(ds, split=1, subset="train")   # also checks no group is in both lists
    test, _ = read_records(ds, split=1, subset="test")
    assert classes == ["ApplyEyeMakeup", "Archery", "BabyCrawling"] and (len(train), len(test)) == (6, 3)
    assert [r.label for r in test] == [0, 1, 2] and {r.group for r in train} == {"g08", "g09"}
    info = probe(train[0].path)
    assert (info.num_frames, info.height, info.width) == (3, 240, 320)


def test_hmdb51_and_charades_layouts_read_back(tmp_path):
    hmdb = layouts.write_hmdb51(tmp_path / "hmdb51", classes=["brush_hair", "cartwheel"], train=1, test=2, frames=2)
    ds = resolve_dataset(hmdb, layout="hmdb51")
    train, classes = read_records(ds, split=1, subset="train")
    test, _ = read_records(ds, split=1, subset="test")
    assert classes == ["brush_hair", "cartwheel"] and (len(train), len(test)) == (2, 4)
    assert "_u_nm_np1_fr_goo_0.avi 0 \n" in (hmdb / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt").read_text()
    ch = layouts.write_charades(tmp_path / "charades", classes=["Holding some clothes", "Taking a picture"],
                                train=2, test=1, frames=8)
    ds = resolve_dataset(ch, layout="charades")
    train, classes = read_records(ds, split=1, subset="train")
    test, _ = read_records(ds, split=1, subset="test")
    assert classes == ["Holding some clothes", "Taking a picture"] and (len(train), len(test)) == (2, 1)
    assert train[0].labels == (0, 1) and train[0].path.suffix == ".mp4" and train[0].duration == pytest.approx(0.32)
    assert probe(test[0].path).num_frames == 8


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="two distinct class names"):
        layouts.write_ucf101("/nonexistent", classes=["Archery"])
    with pytest.raises(ValueError, match="7 test groups"):
        layouts.write_ucf101("/nonexistent", classes=["Archery", "Bowling"], test=8)
    with pytest.raises(ValueError, match="frames must be >= 2"):
        layouts.write_hmdb51("/nonexistent", classes=["chew", "clap"], frames=1)


def test_charades_odd_times_are_kept_only_when_asked_through_read_records(tmp_path):
    from actionbook.data.readers import DatasetError

    ch = layouts.write_charades(tmp_path / "charades", classes=["Holding some clothes", "Taking a picture"],
                                train=2, test=1, frames=8)
    csv = ch / "Charades_v1_train.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace("c000 0.00", "c000 0.30", 1).replace(" 0.20;", " 0.10;", 1)  # ends before it starts
    csv.write_text("\n".join(lines) + "\n")
    ds = resolve_dataset(ch, layout="charades")
    with pytest.raises(DatasetError, match="Charades_v1_train.csv:2"):
        read_records(ds, split=1, subset="train")
    with pytest.warns(UserWarning, match="kept 1 action"):
        train, _ = read_records(ds, split=1, subset="train", keep_odd_times=True)
    assert train[0].segments[0][1:] == (0.3, 0.1)
