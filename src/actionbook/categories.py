"""Coarse action categories: one class -> category mapping for every dataset layout.

`class_categories(classes, layout=...)` gives the category of each class and
`layout_categories(layout)` the order the book draws them in, for the three layouts:

- ``generated``: the benchmark's five categories (appearance, motion, temporal order,
  interaction, long range), read from the generator's own class definitions
  (`actionbook.data.generate.CLASSES`), so they cannot drift from what it renders;
- ``ucf101``: UCF-101's five action types (below);
- ``hmdb51``: HMDB-51's five groups as the Res-LSTM paper's Fig. 5 names them (below).

UCF-101
-------

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

HMDB-51
-------
Kuehne et al. (2011), who released HMDB-51, group its 51 classes into five groups, and the
Res-LSTM paper (Lakhal et al., Fig. 5) orders its HMDB-51 confusion matrix by them: facial
actions (F, 4 classes), facial actions with object manipulation (FO, 3), body movements (BM,
19), body movements with object interaction (BO, 18) and body movements for human
interaction (HH, 7). The names are the Res-LSTM caption's; the mapping is data,
`actionbook/paper/hmdb51_groups.csv` (``class,group,note``, classes spelled as HMDB-51's
folder names). **It was written from memory of the HMDB paper's list, not read from a source
here** (no copy of that paper is available); its README says how it was checked.

Usage::

    from actionbook.categories import class_categories, layout_categories
    cats = class_categories(classes, layout="ucf101")   # one category per class, in order
    order = layout_categories("ucf101")                     # the five types, in the book's order
"""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path
from typing import Sequence

ACTION_TYPES: tuple[str, ...] = (
    "Human-Object Interaction",
    "Body-Motion Only",
    "Human-Human Interaction",
    "Playing Musical Instruments",
    "Sports",
)
"""UCF-101's five action types, in the order the UCF-101 paper lists them."""

HMDB51_GROUPS: tuple[str, ...] = (
    "Facial actions",
    "Facial actions with object manipulation",
    "Body movements",
    "Body movements with object interaction",
    "Body movements for human interaction",
)
"""HMDB-51's five groups, named and ordered as in the Res-LSTM paper's Fig. 5 caption."""

HMDB51_ABBREVIATIONS: dict[str, str] = dict(zip(HMDB51_GROUPS, ("F", "FO", "BM", "BO", "HH")))
"""The abbreviations of Res-LSTM's Fig. 5 (F, FO, BM, BO, HH)."""

UCF101_ABBREVIATIONS: dict[str, str] = dict(zip(ACTION_TYPES, ("HO", "BM", "HH", "PI", "S")))
"""The abbreviations of Res-LSTM's Fig. 5 for UCF-101 (HO, BM, HH, PI, S)."""

LAYOUTS = ("generated", "ucf101", "hmdb51")

_FILE = "ucf101_action_types.csv"
_HMDB_FILE = "hmdb51_groups.csv"


def _default_path(name: str = _FILE) -> Path:
    return Path(str(files("actionbook") / "paper" / name))


def _read_mapping(p: Path, *, column: str, allowed: Sequence[str]) -> dict[str, str]:
    """Read a ``class,<column>[,note]`` CSV into {class: value}, checking every row."""
    if not p.is_file():
        raise FileNotFoundError(f"no class mapping at {p}")
    out: dict[str, str] = {}
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"class", column} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{p}: header must have the columns class,{column}; "
                             f"missing {sorted(missing)} in {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):  # line 1 is the header
            name = (row["class"] or "").strip()
            kind = (row[column] or "").strip()
            if not name:
                raise ValueError(f"{p}, line {line}: empty class name")
            if kind not in allowed:
                raise ValueError(f"{p}, line {line}: {column} {kind!r} of class {name!r} is not one "
                                 f"of {', '.join(allowed)}")
            if name in out:
                raise ValueError(f"{p}, line {line}: class {name!r} is listed twice; "
                                 f"keep one row per class")
            out[name] = kind
    return out


def ucf101_action_types(*, path: str | Path | None = None) -> dict[str, str]:
    """Map each UCF-101 class name (as in ``classInd.txt``) to its action type.

    Reads `actionbook/paper/ucf101_action_types.csv` unless `path` names another file with
    the same columns (``class,type`` and optionally ``note``). The dict keeps the file's row
    order. Raises `ValueError`, naming the file and line, for a missing column, an empty
    class name, a type that is not one of `ACTION_TYPES`, or a class listed twice.
    """
    p = Path(path) if path is not None else _default_path()
    return _read_mapping(p, column="type", allowed=ACTION_TYPES)


def ucf101_classes_by_type(*, path: str | Path | None = None) -> dict[str, list[str]]:
    """The inverse view: each action type (in `ACTION_TYPES` order) -> its classes, in file order."""
    by_type: dict[str, list[str]] = {t: [] for t in ACTION_TYPES}
    for name, kind in ucf101_action_types(path=path).items():
        by_type[kind].append(name)
    return by_type


def hmdb51_groups(*, path: str | Path | None = None) -> dict[str, str]:
    """Map each HMDB-51 class (folder name) to its group, one of `HMDB51_GROUPS`.

    Reads `actionbook/paper/hmdb51_groups.csv` unless `path` names another file with the
    columns ``class,group`` (and optionally ``note``). Written from memory of the HMDB paper's
    list (see the module docstring); errors as `ucf101_action_types`.
    """
    p = Path(path) if path is not None else _default_path(_HMDB_FILE)
    return _read_mapping(p, column="group", allowed=HMDB51_GROUPS)


def _generated() -> tuple[dict[str, str], tuple[str, ...]]:
    # read from the generator itself: its class list may change, this must follow
    from actionbook.data.generate import CATEGORIES, CLASSES

    return {c.name: c.category for c in CLASSES}, tuple(CATEGORIES)


def layout_categories(layout: str) -> tuple[str, ...]:
    """The coarse categories of `layout` ("generated", "ucf101", "hmdb51"), in the book's order
    (the generator's order; the UCF-101 paper's; the Res-LSTM paper's Fig. 5)."""
    if layout == "generated":
        return _generated()[1]
    if layout == "ucf101":
        return ACTION_TYPES
    if layout == "hmdb51":
        return HMDB51_GROUPS
    raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")


def class_categories(classes: Sequence[str], *, layout: str) -> list[str]:
    """The coarse category of each class of `classes`, in order (one per class).

    `layout` is "generated", "ucf101" or "hmdb51"; class names are spelled as that layout
    spells them (UCF-101's ``classInd.txt``, HMDB-51's folder names). A class the mapping does
    not know raises `ValueError` naming it and the layout.
    """
    if isinstance(classes, str):
        raise TypeError("classes must be a sequence of class names, not one string")
    if layout == "generated":
        mapping = _generated()[0]
    elif layout == "ucf101":
        mapping = ucf101_action_types()
    elif layout == "hmdb51":
        mapping = hmdb51_groups()
    else:
        raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    unknown = [c for c in classes if c not in mapping]
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} class(es) have no category in the {layout!r} mapping: {shown}; "
                         f"is this the {layout} layout, and are the names spelled as its "
                         f"{'folder names' if layout == 'hmdb51' else 'class list'}?")
    return [mapping[c] for c in classes]
