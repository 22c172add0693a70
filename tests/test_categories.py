"""One class -> coarse-category mapping for every layout (`actionbook.categories`)."""

from collections import Counter

import pytest

from actionbook.categories import (ACTION_TYPES, HMDB51_ABBREVIATIONS, HMDB51_GROUPS, LAYOUTS,
                                   layout_categories, class_categories, hmdb51_groups, ucf101_action_types)
from actionbook.data import generate
from conftest import SHARED_HINT, shared_path

# HMDB-51's classes as its folder names (and `<class>_test_splitN.txt` files) spell them.
HMDB51_CLASSES = (
    "brush_hair cartwheel catch chew clap climb climb_stairs dive draw_sword dribble drink eat fall_floor "
    "fencing flic_flac golf handstand hit hug jump kick kick_ball kiss laugh pick pour pullup punch push "
    "pushup ride_bike ride_horse run shake_hands shoot_ball shoot_bow shoot_gun sit situp smile smoke "
    "somersault stand swing_baseball sword sword_exercise talk throw turn walk wave").split()


def test_generated_categories_follow_the_generator(monkeypatch):
    names = [c.name for c in generate.CLASSES]
    assert class_categories(names, layout="generated") == [c.category for c in generate.CLASSES]
    assert layout_categories("generated") == tuple(generate.CATEGORIES)
    # read from the generator at call time: a changed class list is followed, not copied
    new = [*generate.CLASSES[:1]]
    monkeypatch.setattr(generate, "CLASSES", new)
    assert class_categories([new[0].name], layout="generated") == [new[0].category]
    with pytest.raises(ValueError, match=repr(names[-1])):
        class_categories([names[-1]], layout="generated")


def test_ucf101_categories_in_class_ind_order():
    types = ucf101_action_types()
    names = list(types)
    assert class_categories(names, layout="ucf101") == list(types.values())
    assert layout_categories("ucf101") == ACTION_TYPES
    assert class_categories(["YoYo", "Haircut"], layout="ucf101") == ["Human-Object Interaction",
                                                                     "Human-Human Interaction"]


def test_ucf101_categories_cover_the_official_class_list():
    path = shared_path("data", "ucf101_splits", "classInd.txt")
    if path is None:
        pytest.skip(f"the official UCF-101 classInd.txt (shared/data/ucf101_splits/) was {SHARED_HINT}")
    names = [line.split()[1] for line in path.read_text().splitlines() if line.strip()]
    assert len(class_categories(names, layout="ucf101")) == 101


def test_hmdb51_groups_cover_the_51_classes_with_the_hmdb_counts():
    groups = hmdb51_groups()
    assert sorted(groups) == sorted(HMDB51_CLASSES) and len(HMDB51_CLASSES) == 51
    cats = class_categories(HMDB51_CLASSES, layout="hmdb51")
    assert Counter(cats) == {"Facial actions": 4, "Facial actions with object manipulation": 3,
                             "Body movements": 19, "Body movements with object interaction": 18,
                             "Body movements for human interaction": 7}
    assert layout_categories("hmdb51") == HMDB51_GROUPS
    assert list(HMDB51_ABBREVIATIONS.values()) == ["F", "FO", "BM", "BO", "HH"]  # Res-LSTM Fig. 5
    # the pairs whose names alone could mislead
    assert groups["kick"] == groups["sword"] == "Body movements for human interaction"
    assert groups["kick_ball"] == groups["sword_exercise"] == "Body movements with object interaction"
    assert groups["smoke"] == "Facial actions with object manipulation"


def test_unknown_classes_and_layouts_are_named():
    with pytest.raises(ValueError, match=r"2 class\(es\) have no category in the 'hmdb51' mapping: 'Walk', 'YoYo'"):
        class_categories(["walk", "Walk", "YoYo"], layout="hmdb51")
    with pytest.raises(ValueError, match="unknown layout 'charades'"):
        class_categories(["walk"], layout="charades")
    with pytest.raises(ValueError, match="unknown layout"):
        layout_categories("kinetics")
    with pytest.raises(TypeError):
        class_categories("walk", layout="hmdb51")
    assert LAYOUTS == ("generated", "ucf101", "hmdb51")


def test_hmdb51_bad_file_is_named(tmp_path):
    bad = tmp_path / "groups.csv"
    bad.write_text("class,group\nwalk,Dancing\n")
    with pytest.raises(ValueError, match=r"groups.csv, line 2: group 'Dancing' of class 'walk'"):
        hmdb51_groups(path=bad)
