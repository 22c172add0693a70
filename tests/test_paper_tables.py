"""The papers' own numbers (`actionbook/paper/*.csv`) and the UCF-101 action-type mapping.

Every spot check below was read off the paper texts in `shared/papers/` by hand.
"""

from __future__ import annotations

from collections import Counter
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest

from actionbook.categories import ACTION_TYPES, ucf101_action_types, ucf101_classes_by_type
from actionbook.results import paper_table
from conftest import SHARED_HINT, shared_path

PAPER_DIR = Path(str(files("actionbook") / "paper"))
MAPPINGS = {"ucf101_action_types", "hmdb51_groups"}  # class -> category mappings, not paper tables

# Each paper table and the columns that identify one number in it.
KEYS: dict[str, list[str]] = {
    "res_lstm_table1": ["dataset", "T"],
    "res_lstm_table2": ["fusion", "operation"],
    "res_lstm_table3": ["group", "method"],
    "res_lstm_table4": ["method", "dataset"],
    "res_lstm_table5": ["method", "dataset"],
    "res_lstm_idt": ["dataset", "quantity"],
    "mrrn_table1": ["hidden", "layers"],
    "mrrn_table2": ["dataset", "level", "pooling"],
    "mrrn_table3": ["method", "dataset"],
    "mrrn_fig6": ["model", "quantity"],
    "relational_lstm_table1": ["layer", "quantity"],
    "relational_lstm_table2": ["method", "stream"],
    "relational_lstm_table3": ["segments", "stream"],
    "relational_lstm_table4": ["branch", "stream"],
    "relational_lstm_table5": ["position", "stream"],
    "relational_lstm_table6": ["method", "dataset"],
    "relational_lstm_table7": ["method", "dataset"],
    "relational_lstm_table8": ["method"],
    "relational_lstm_fusion_weights": ["table", "method", "dataset", "stream"],
    "recurrent_residual_table1": ["features", "method", "znorm"],
    "recurrent_residual_table2": ["position", "type"],
    "recurrent_residual_table3": ["type"],
    "recurrent_residual_table4": ["context"],
    "recurrent_residual_table5": ["method", "stream"],
    "recurrent_residual_text": ["quantity"],
}
# Key columns that must hold integers.
INT_KEYS = {"T", "hidden", "layers", "segments", "context", "skips"}
CHAPTERS = ("res_lstm", "mrrn", "relational_lstm", "recurrent_residual")


def _load(stem: str) -> pd.DataFrame:
    chapter = next(c for c in CHAPTERS if stem.startswith(c + "_"))
    return paper_table(chapter, stem[len(chapter) + 1:])


def _value(stem: str, **key) -> float:
    df = _load(stem)
    mask = pd.Series(True, index=df.index)
    for col, v in key.items():
        mask &= df[col] == v
    rows = df[mask]
    assert len(rows) == 1, f"{stem}: {key} matches {len(rows)} rows"
    return float(rows["paper"].iloc[0])


# --- every table -------------------------------------------------------------------------

def test_every_csv_is_registered():
    stems = {p.stem for p in PAPER_DIR.glob("*.csv")} - MAPPINGS
    assert stems == set(KEYS), f"unregistered: {stems - set(KEYS)}; missing: {set(KEYS) - stems}"


@pytest.mark.parametrize("stem", sorted(KEYS))
def test_table_is_tidy(stem):
    df = _load(stem)
    assert len(df) > 0
    for col in ("paper", "source", "unit", *KEYS[stem]):
        assert col in df.columns, f"{stem}: no column {col!r}"
    assert pd.api.types.is_numeric_dtype(df["paper"]), f"{stem}: 'paper' is not numeric"
    assert df["paper"].notna().all(), f"{stem}: missing numbers"
    assert (df["paper"] >= -100).all() and (df["paper"] <= 4096).all()
    assert df["source"].notna().all() and df["unit"].notna().all()
    assert df[KEYS[stem]].notna().all().all(), f"{stem}: missing key values"
    dup = df[df.duplicated(KEYS[stem], keep=False)]
    assert dup.empty, f"{stem}: duplicate keys\n{dup[KEYS[stem]]}"
    for col in INT_KEYS & set(KEYS[stem]):
        assert pd.api.types.is_integer_dtype(df[col]), f"{stem}: {col} is not integer"
    # The source names the paper's first author and a table, figure or section.
    first_author = {"res_lstm": "Lakhal", "mrrn": "Zheng", "relational_lstm": "Chen",
                    "recurrent_residual": "Iqbal"}
    chapter = next(c for c in CHAPTERS if stem.startswith(c + "_"))
    assert df["source"].str.startswith(first_author[chapter] + " et al.,").all()


@pytest.mark.parametrize("stem", sorted(KEYS))
def test_percentages_are_percentages(stem):
    df = _load(stem)
    pct = df[df["unit"] == "%"]
    if "metric" in df.columns:
        acc = df[df["metric"].isin(["accuracy", "mAP"])]
        assert (acc["unit"] == "%").all(), f"{stem}: accuracy/mAP not in %"
    assert ((pct["paper"] > 0) & (pct["paper"] <= 100)).all()
    err = df[df["unit"] == "fraction"]
    assert ((err["paper"] > 0) & (err["paper"] < 1)).all()


# --- spot checks against the paper texts --------------------------------------------------

def test_mrrn_abstract_numbers():
    # Zheng et al., abstract: "achieving 51.3% on HMDB-51 and 81.9% on UCF-101".
    assert _value("mrrn_table3", method="MRRN", dataset="HMDB-51") == 51.3
    assert _value("mrrn_table3", method="MRRN", dataset="UCF-101") == 81.9


def test_mrrn_numbers():
    assert _value("mrrn_table1", hidden=1024, layers=3) == 50.78  # the best cell (Sec. 5.1)
    assert _value("mrrn_table1", hidden=256, layers=5) == 43.92
    t1 = _load("mrrn_table1")
    assert t1["paper"].max() - t1["paper"].min() == pytest.approx(6.86)  # "reaches to 6.9%"
    assert _value("mrrn_table2", dataset="UCF-101", level="mid", pooling="max") == 64.96
    assert _value("mrrn_table2", dataset="HMDB-51", level="high", pooling="mean") == 50.78
    # Prose: MRRN beats Spatial ConvNet by 10.8 / 8.9; cLSTM with flow beats MRRN by 2.4 on UCF-101.
    mrrn_u = _value("mrrn_table3", method="MRRN", dataset="UCF-101")
    assert mrrn_u - _value("mrrn_table3", method="Spatial ConvNet", dataset="UCF-101") == pytest.approx(8.9)
    assert _value("mrrn_table3", method="cLSTM (RGB + flow)", dataset="UCF-101") - mrrn_u == pytest.approx(2.4)


def test_res_lstm_numbers():
    assert _value("res_lstm_table1", dataset="HMDB-51", T=25) == 61.5
    assert _value("res_lstm_table1", dataset="UCF-101", T=35) == 80.9
    assert _value("res_lstm_table2", fusion="late", operation="product") == 68.0
    assert _value("res_lstm_table2", fusion="mid", operation="sum") == 59.3
    assert _value("res_lstm_table3", group="Sports", method="Res-LSTM") == 93.2
    assert _value("res_lstm_table3", group="PizzaTossing", method="gain") == -6.0
    # Table 3's printed gains are Res-LSTM minus L2STM.
    t3 = _load("res_lstm_table3").pivot(index="group", columns="method", values="paper").dropna()
    assert (t3["Res-LSTM"] - t3["L2STM"]).round(1).tolist() == t3["gain"].tolist()
    # Tables 4 and 5 agree on Res-LSTM, and the IDT gains are Table 5's differences.
    for d, v in (("UCF-101", 92.5), ("HMDB-51", 68.0)):
        assert _value("res_lstm_table4", method="Res-LSTM", dataset=d) == v
        assert _value("res_lstm_table5", method="Res-LSTM", dataset=d) == v
        gain = _value("res_lstm_table5", method="Res-LSTM + IDT", dataset=d) - v
        assert gain == pytest.approx(_value("res_lstm_idt", dataset=d,
                                            quantity="accuracy gain from product fusion with IDT"))
    assert _value("res_lstm_table5", method="I3D", dataset="HMDB-51") == 80.7


def test_relational_lstm_numbers():
    # The default configuration (two branches, T = 8, after conv5_2) appears in Tables 3, 4, 5.
    for stream, v in (("spatial", 88.7), ("temporal", 88.1), ("two-stream", 94.4)):
        assert _value("relational_lstm_table3", segments=8, stream=stream) == v
        assert _value("relational_lstm_table4", branch="two-branch", stream=stream) == v
        assert _value("relational_lstm_table5", position="conv5_2", stream=stream) == v
    # R-LSTM alone is the same model in Tables 2 and 4.
    for stream in ("spatial", "temporal", "two-stream"):
        assert (_value("relational_lstm_table2", method="R-LSTM", stream=stream)
                == _value("relational_lstm_table4", branch="non-local", stream=stream))
    # Contributions: +1.2 on UCF-101 and +5.2 on HMDB-51 over the best LSTM method (L2STM).
    for d, gain in (("UCF-101", 1.2), ("HMDB-51", 5.2)):
        diff = (_value("relational_lstm_table6", method="Two-branch", dataset=d)
                - _value("relational_lstm_table6", method="L2STM", dataset=d))
        assert diff == pytest.approx(gain)
    # Abstract: a 3.2 gain on Charades over the best 2D-ConvNet method (TSN re-implemented).
    assert (_value("relational_lstm_table8", method="Two-branch")
            - _value("relational_lstm_table8", method="TSN")) == pytest.approx(3.2)
    w = _load("relational_lstm_fusion_weights").query("table == 'Table 7'")
    assert w.groupby("dataset")["paper"].sum().tolist() == pytest.approx([1.0, 1.0])
    blocks = _load("relational_lstm_table1").query("quantity == 'blocks'")
    assert blocks["paper"].tolist() == [3, 4, 23, 3]  # ResNet-101


def test_recurrent_residual_numbers():
    assert _value("recurrent_residual_table1", features="block4", method="average pooling",
                  znorm="yes") == 0.236
    assert _value("recurrent_residual_table1", features="block3", method="GRU", znorm="yes") == 0.403
    assert _value("recurrent_residual_table2", position="Block4", type="convolutional (1x1)") == 0.219
    assert _value("recurrent_residual_table3", type="identity") == 0.197
    assert _value("recurrent_residual_table4", context=3) == 0.194
    assert _value("recurrent_residual_table5", method="Recurrent Residual Networks",
                  stream="appearance") == 0.198
    # The same configurations recur: baseline = Table 1's block4 average pooling (z-norm);
    # one identity skip in block 4 = Table 4's context 2; Table 2's Block4 = Table 3's linear.
    assert _value("recurrent_residual_table4", context=1) == 0.236
    assert (_value("recurrent_residual_table4", context=2)
            == _value("recurrent_residual_table3", type="identity"))
    assert (_value("recurrent_residual_table2", position="Block4", type="convolutional (1x1)")
            == _value("recurrent_residual_table3", type="conv linear"))


# --- UCF-101 action types ------------------------------------------------------------------

# Counts of the UCF-101 paper (Soomro et al. 2012), which the mapping reproduces.
TYPE_COUNTS = {"Human-Object Interaction": 20, "Body-Motion Only": 16,
               "Human-Human Interaction": 5, "Playing Musical Instruments": 10, "Sports": 50}


def _class_ind() -> Path | None:
    return shared_path("data", "ucf101_splits", "classInd.txt")


def test_action_type_counts():
    types = ucf101_action_types()
    assert len(types) == 101
    assert dict(Counter(types.values())) == TYPE_COUNTS
    by_type = ucf101_classes_by_type()
    assert list(by_type) == list(ACTION_TYPES)
    assert by_type["Human-Human Interaction"] == ["BandMarching", "Haircut", "HeadMassage",
                                                  "MilitaryParade", "SalsaSpin"]
    # The classes Lakhal et al.'s Table 3 singles out.
    assert types["PizzaTossing"] == types["Mixing"] == "Human-Object Interaction"
    assert types["PlayingDhol"] == "Playing Musical Instruments"
    assert types["IceDancing"] == "Sports"


def test_action_types_cover_class_ind_exactly_once():
    path = _class_ind()
    if path is None:
        pytest.skip(f"the official UCF-101 classInd.txt (shared/data/ucf101_splits/) was {SHARED_HINT}")
    names = [line.split()[1] for line in path.read_text().splitlines() if line.strip()]
    assert len(names) == 101
    types = ucf101_action_types()
    assert list(types) == names  # same names, same order, each once


def test_action_types_table3_groups_exist():
    groups = set(_load("res_lstm_table3").query("level == 'action type'")["group"])
    assert groups == set(ACTION_TYPES)
    classes = set(_load("res_lstm_table3").query("level == 'class'")["group"])
    assert classes <= set(ucf101_action_types())


def test_action_types_bad_file(tmp_path):
    bad = tmp_path / "types.csv"
    bad.write_text("class,type\nYoYo,Human-Object Interaction\nYoYo,Sports\n")
    with pytest.raises(ValueError, match=r"line 3: class 'YoYo' is listed twice"):
        ucf101_action_types(path=bad)
    bad.write_text("class,type\nYoYo,Toys\n")
    with pytest.raises(ValueError, match=r"line 2: type 'Toys'"):
        ucf101_action_types(path=bad)
    bad.write_text("name,type\nYoYo,Sports\n")
    with pytest.raises(ValueError, match="class,type"):
        ucf101_action_types(path=bad)
    ok = tmp_path / "ok.csv"
    ok.write_text("class,type,note\nYoYo,Sports,\nHaircut,Human-Human Interaction,x\n")
    assert ucf101_action_types(path=ok) == {"YoYo": "Sports", "Haircut": "Human-Human Interaction"}
