"""Coarse action categories: which of UCF-101's five action types each class belongs to.

Soomro et al. (2012), who released UCF-101, group its 101 classes into five types:

=============================  =======  ==============================================
type                           classes  e.g.
=============================  =======  ==============================================
Human-Object Interaction            20  ApplyEyeMakeup, Hammering, PizzaTossing
Body-Motion Only                    16  BabyCrawling, PullUps, TaiChi
Human-Human Interaction              5  BandMarching, Haircut, SalsaSpin
Playing Musical Instruments         10  Drumming, PlayingDhol, PlayingViolin
Sports                              50  Archery, IceDancing, JavelinThrow
=============================  =======  ==============================================

The Res-LSTM paper (Lakhal et al., Table 3) reports accuracy per type, and its Fig. 5 orders
the confusion matrix by type; the book does both with this mapping. It is data, not code:
`actionbook/paper/ucf101_action_types.csv` (columns ``class,type,note``), with the class names
spelled exactly as in UCF-101's ``classInd.txt`` (``Mixing``, not "Mixing Batter";
``SalsaSpin``, not "Salsa Spins"). A ``note`` marks the few classes whose type is less obvious
than its name suggests; `actionbook/paper/README.md` says how the mapping was checked.

Usage::

    from actionbook.categories import ucf101_action_types
    types = ucf101_action_types()          # {"ApplyEyeMakeup": "Human-Object Interaction", ...}
    df["type"] = df["class"].map(types)    # then group per-class accuracy by type
"""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path

ACTION_TYPES: tuple[str, ...] = (
    "Human-Object Interaction",
    "Body-Motion Only",
    "Human-Human Interaction",
    "Playing Musical Instruments",
    "Sports",
)
"""UCF-101's five action types, in the order the UCF-101 paper lists them."""

_FILE = "ucf101_action_types.csv"


def _default_path() -> Path:
    return Path(str(files("actionbook") / "paper" / _FILE))


def ucf101_action_types(*, path: str | Path | None = None) -> dict[str, str]:
    """Map each UCF-101 class name (as in ``classInd.txt``) to its action type.

    Reads `actionbook/paper/ucf101_action_types.csv` unless `path` names another file with
    the same columns (``class,type`` and optionally ``note``). The dict keeps the file's row
    order. Raises `ValueError`, naming the file and line, for a missing column, an empty
    class name, a type that is not one of `ACTION_TYPES`, or a class listed twice.
    """
    p = Path(path) if path is not None else _default_path()
    if not p.is_file():
        raise FileNotFoundError(f"no UCF-101 action-type table at {p}")
    out: dict[str, str] = {}
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"class", "type"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{p}: header must have the columns class,type; "
                             f"missing {sorted(missing)} in {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):  # line 1 is the header
            name = (row["class"] or "").strip()
            kind = (row["type"] or "").strip()
            if not name:
                raise ValueError(f"{p}, line {line}: empty class name")
            if kind not in ACTION_TYPES:
                raise ValueError(f"{p}, line {line}: type {kind!r} of class {name!r} is not one "
                                 f"of {', '.join(ACTION_TYPES)}")
            if name in out:
                raise ValueError(f"{p}, line {line}: class {name!r} is listed twice; "
                                 f"keep one row per class")
            out[name] = kind
    return out


def ucf101_classes_by_type(*, path: str | Path | None = None) -> dict[str, list[str]]:
    """The inverse view: each action type (in `ACTION_TYPES` order) -> its classes, in file order."""
    by_type: dict[str, list[str]] = {t: [] for t in ACTION_TYPES}
    for name, kind in ucf101_action_types(path=path).items():
        by_type[kind].append(name)
    return by_type
