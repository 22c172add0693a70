"""Tests of the generated benchmark (actionbook.data.generate), on a tiny preset."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from actionbook.data import generate as G
from actionbook.data.readers import read_charades, read_ucf101
from actionbook.data.video import probe, read_video
from actionbook.io import read_json, write_json

TINY = G.Preset("tiny", height=32, width=32, groups=2, test_groups=1, clips=(1, 1), frames=(16, 16),
                ml_videos=4, ml_frames=(24, 32), ml_actions=(2, 3))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return G.generate(preset=TINY, out=tmp_path_factory.mktemp("bench") / "tiny", seed=3, workers=1, progress=False)


def _hashes(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file()}


# ----------------------------------------------------------------------------- classes and presets


def test_classes_cover_every_category():
    names = [c.name for c in G.CLASSES]
    assert len(set(names)) == len(names)
    for cat in G.CATEGORIES:
        assert sum(c.category == cat for c in G.CLASSES) >= 3, cat
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", n) for n in names)  # usable in v_<Class>_gGG_cCC


def test_test_groups_follow_ucf101_blocks():
    assert [G.test_groups("full", s) for s in (1, 2, 3)] == [
        list(range(1, 8)), list(range(8, 15)), list(range(15, 22))]
    assert [G.test_groups("ci", s) for s in (1, 2, 3)] == [[1, 2], [3, 4], [5, 6]]
    assert [G.test_groups(TINY, s) for s in (1, 2, 3)] == [[1], [2], [1]]  # wraps around


def test_presets_sizes():
    ci, full = G.PRESETS["ci"], G.PRESETS["full"]
    assert (ci.height, ci.width) == (64, 64) and (full.height, full.width) == (240, 320)
    assert full.groups == 25 and full.clips[0] * full.groups >= 100  # >= 100 videos per class
    ci_frames = sum(G.num_frames(ci, 0, *v) for v in G._videos(ci, 0))
    assert ci_frames <= 70_000  # ~64k: 880 videos of 48..96 frames (generation and extraction scale with it)
    # split 1 tests on at least 400 videos (one video: at most 0.25 points); the training set keeps
    # `clips` per group; the groups are disjoint (test_layout_and_split_files, on generated files)
    assert G.split_sizes(ci, 1) == {"train": len(G.CLASSES) * (ci.groups - ci.test_groups) * ci.clips[0],
                                    "test": len(G.CLASSES) * ci.test_groups * ci.test_clips[0]}
    assert G.split_sizes(ci, 1)["test"] >= 400 and G.split_sizes(ci, 2)["test"] < 400  # only split 1's groups grow


# ----------------------------------------------------------------------------- layout


def test_layout_and_split_files(tiny):
    splits = tiny / "splits"
    raw = (splits / "classInd.txt").read_bytes()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.decode().split("\r\n")[:-1]
    assert lines == [f"{i + 1} {c.name}" for i, c in enumerate(G.CLASSES)]
    for s in (1, 2, 3):
        train = (splits / f"trainlist{s:02d}.txt").read_bytes().decode()
        test = (splits / f"testlist{s:02d}.txt").read_bytes().decode()
        assert train.endswith("\r\n") and test.endswith("\r\n") and "\n" not in train.replace("\r\n", "")
        train_lines, test_lines = train.split("\r\n")[:-1], test.split("\r\n")[:-1]
        # 20 classes x 2 groups x 1 clip: one group trains, one tests.
        assert len(train_lines) == len(test_lines) == len(G.CLASSES)
        assert G.split_sizes(TINY, s, seed=3) == {"train": len(train_lines), "test": len(test_lines)}
        (held_out,) = G.test_groups(TINY, s)
        for line in train_lines:
            m = re.fullmatch(r"(\w+)/v_(\w+)_g(\d\d)_c(\d\d)\.avi (\d+)", line)
            assert m, line
            assert m[1] == m[2] and G.CLASSES[int(m[5]) - 1].name == m[1]  # 1-based label
            assert int(m[3]) != held_out
            assert (tiny / "videos" / line.split()[0]).is_file()
        for line in test_lines:
            m = re.fullmatch(r"(\w+)/v_(\w+)_g(\d\d)_c(\d\d)\.avi", line)  # no label
            assert m, line
            assert int(m[3]) == held_out
        # The book's own reader accepts the lists, and the groups are disjoint.
        tr = read_ucf101(videos=tiny / "videos", splits=splits, split=s, subset="train")
        te = read_ucf101(videos=tiny / "videos", splits=splits, split=s, subset="test")
        assert not {r.group for r in tr} & {r.group for r in te}
        assert sorted(r.label for r in te) == list(range(len(G.CLASSES)))


def test_benchmark_json(tiny):
    info = read_json(tiny / "benchmark.json")
    assert info["preset"] == "tiny" and info["seed"] == 3 and info["version"] == G.VERSION
    assert [c["name"] for c in info["classes"]] == [c.name for c in G.CLASSES]
    assert {c["category"] for c in info["classes"]} == set(G.CATEGORIES)
    assert info["frame_size"] == {"height": 32, "width": 32} and info["fps"] == 25.0
    assert info["num_videos"] == 40 and info["num_frames"] == 40 * 16
    assert not (tiny / ".generating.json").exists()


def test_videos_decode_with_expected_frames(tiny):
    paths = sorted((tiny / "videos").rglob("*.avi"))
    assert len(paths) == 40
    for path in paths[::7]:
        info = probe(path, exact=True)
        assert (info.num_frames, info.height, info.width, info.fps) == (16, 32, 32, 25.0)
    clip = read_video(paths[0]).numpy()
    assert clip.shape == (16, 32, 32, 3) and clip.dtype == np.uint8
    assert clip.std() > 5  # not a blank video
    # The file holds what the renderer draws (up to MPEG-4 compression).
    m = re.search(r"v_(\w+)_g(\d+)_c(\d+)", paths[0].stem)
    label = [c.name for c in G.CLASSES].index(m[1])
    frames = G.render_video(preset=TINY, seed=3, label=label, group=int(m[2]), clip=int(m[3]))
    assert np.abs(frames.astype(float) - clip).mean() < 6


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(tiny, tmp_path):
    again = G.generate(preset=TINY, out=tmp_path / "again", seed=3, workers=2, progress=False)
    a, b = _hashes(tiny), _hashes(again)
    assert len(a) == 40 + 4 + 7 + 3 + 1  # videos, ml videos, split files, 2 ml csv + classes, json
    assert a == b


def test_other_seed_other_videos():
    a = G.render_video(preset=TINY, seed=3, label=0, group=1, clip=1)
    b = G.render_video(preset=TINY, seed=4, label=0, group=1, clip=1)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_video_tracks_are_the_objects_the_video_shows():
    """`video_tracks` is the ground truth of `render_video`: same video, same objects, every frame."""
    from actionbook.data import _render as R

    names = [c.name for c in G.CLASSES]
    for name, objects in (("Meet", 2), ("GrowShrink", 1)):
        label = names.index(name)
        tracks = G.video_tracks(preset=TINY, seed=3, label=label, group=1, clip=1)
        n = G.num_frames(TINY, 3, label, 1, 1)
        assert len(tracks) == objects and all(len(t) == n for t in tracks)
        # drawing these tracks with the video's own background and noise gives the video, bit for bit
        _, bg, noise = G._video_rngs(3, label, 1, 1)
        drawn = R.render(tracks, num_frames=n, height=TINY.height, width=TINY.width,
                         style=G.group_style(3, 1), bg_rng=bg, noise_rng=noise)
        assert np.array_equal(drawn, G.render_video(preset=TINY, seed=3, label=label, group=1, clip=1))
    other = G.video_tracks(preset=TINY, seed=3, label=names.index("Meet"), group=1, clip=2)
    assert not np.allclose(other[0].x, G.video_tracks(preset=TINY, seed=3, label=names.index("Meet"),
                                                      group=1, clip=1)[0].x)


# ----------------------------------------------------------------------------- honesty


def _probe_set(categories, groups=6, clips=3):
    p = G.Preset("probe", height=32, width=32, groups=groups, test_groups=1, clips=(clips, clips), frames=(24, 24))
    rows = []
    for label, c in enumerate(G.CLASSES):
        if c.category in categories:
            for g in range(1, groups + 1):
                for k in range(1, clips + 1):
                    rows.append((label, g, G.render_video(preset=p, seed=0, label=label, group=g, clip=k)))
    return rows


def _nearest_centroid_logo(x, y, g):
    """Leave-one-group-out accuracy of a nearest-centroid classifier."""
    correct = 0
    for held in np.unique(g):
        tr, te = g != held, g == held
        classes = np.unique(y[tr])
        cent = np.stack([x[tr & (y == c)].mean(0) for c in classes])  # (K, D)
        pred = classes[((x[te][:, None] - cent[None]) ** 2).sum(-1).argmin(1)]
        correct += (pred == y[te]).sum()
    return correct / len(y)


def test_no_class_decidable_from_mean_colour():
    rows = _probe_set({"appearance", "temporal order"})
    y = np.array([r[0] for r in rows])
    g = np.array([r[1] for r in rows])
    x = np.stack([v.reshape(-1, 3).mean(0) for _, _, v in rows]).astype(float)  # (N, 3)
    for grp in np.unique(g):  # remove each group's style: a harder test than raw colour
        x[g == grp] -= x[g == grp].mean(0)
    for cat in ("appearance", "temporal order"):
        m = np.isin(y, [i for i, c in enumerate(G.CLASSES) if c.category == cat])
        acc = _nearest_centroid_logo(x[m], y[m], g[m])
        assert acc < 0.45, (cat, acc)  # chance is 0.25 (4 classes, 72 videos)
    # Positive control: the same classifier separates GrowShrink from ShrinkGrow as soon as
    # it sees *when* the frames have high contrast (the object is big), i.e. the order.
    names = [c.name for c in G.CLASSES]
    m = np.isin(y, [names.index("GrowShrink"), names.index("ShrinkGrow")])
    contrast = np.stack([v.reshape(len(v), -1).std(1) for _, _, v in rows])  # (N, T)
    order = (contrast[:, 8:16].mean(1) - contrast[:, np.r_[0:8, 16:24]].mean(1))[:, None]
    assert _nearest_centroid_logo(order[m], y[m], g[m]) > 0.8


# ----------------------------------------------------------------------------- multi-label


def test_multilabel_csv(tiny):
    ml = tiny / "multilabel"
    classes = (ml / "Charades_v1_classes.txt").read_text().splitlines()
    assert classes == [f"c{i:03d} {c.name}" for i, c in enumerate(G.CLASSES)]
    seen = 0
    for subset in ("train", "test"):
        with open(ml / f"Charades_v1_{subset}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        with open(ml / f"Charades_v1_{subset}.csv", newline="") as f:
            assert next(csv.reader(f)) == ["id", "subject", "scene", "quality", "relevance", "verified", "script",
                                           "objects", "descriptions", "actions", "length"]
        for row in rows:
            assert re.fullmatch(r"[0-9A-Z]{5}", row["id"])
            assert (row["subject"] == "g01") == (subset == "test")  # split 1's test group
            length = float(row["length"])
            items = row["actions"].split(";")
            assert len(items) >= 2
            for item in items:
                m = re.fullmatch(r"c(\d{3}) (\d+\.\d\d) (\d+\.\d\d)", item)
                assert m, item
                assert int(m[1]) < len(G.CLASSES) and 0 <= float(m[2]) < float(m[3]) <= length
            info = probe(ml / "Charades_v1_480" / f"{row['id']}.avi", exact=True)
            assert info.num_frames == round(length * 25)
            seen += 1
        recs = read_charades(videos=ml / "Charades_v1_480", csv=ml / f"Charades_v1_{subset}.csv")
        assert len(recs) == len(rows)
    assert seen == TINY.ml_videos


# ----------------------------------------------------------------------------- resuming and errors


def test_ensure_benchmark_completes_an_interrupted_run(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_DATA", str(tmp_path))
    root = G.ensure_benchmark(TINY, 3, workers=1, progress=False)
    assert root == tmp_path / "generated" / "tiny-seed3"
    before = _hashes(root)
    # Simulate a crash: no benchmark.json, the in-progress marker, two videos missing.
    (root / "benchmark.json").unlink()
    write_json(root / ".generating.json", G._identity(TINY, 3))
    victims = sorted((root / "videos").rglob("*.avi"))[:2]
    for v in victims:
        v.unlink()
    # ... and the half-written temporary a kill -9 inside write_video leaves (issue 15, item 12)
    stale = victims[0].with_name(f".{victims[0].stem}.k1ll3d00.tmp.avi")
    stale.write_bytes(b"half a video" * 1000)
    kept = sorted((root / "videos").rglob("*.avi"))[5]
    mtime = kept.stat().st_mtime_ns
    assert G.ensure_benchmark(TINY, 3, workers=1, progress=False) == root
    assert not stale.exists()
    assert _hashes(root) == before
    assert read_json(root / "benchmark.json")["bytes"] == sum(
        f.stat().st_size for f in (root / "videos").rglob("*") if f.is_file())
    assert kept.stat().st_mtime_ns == mtime  # finished videos were not redone
    # A complete benchmark is left alone; one of another generator version is redone.
    G.ensure_benchmark(TINY, 3, workers=1, progress=False)
    assert kept.stat().st_mtime_ns == mtime
    info = read_json(root / "benchmark.json")
    write_json(root / "benchmark.json", {**info, "version": "0.0"})
    G.ensure_benchmark(TINY, 3, workers=1, progress=False)
    assert read_json(root / "benchmark.json")["version"] == G.VERSION
    assert _hashes(root) == before


def test_errors(tmp_path):
    with pytest.raises(G.BenchmarkError, match="unknown preset 'huge'"):
        G.generate(preset="huge", out=tmp_path / "x")
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(G.BenchmarkError, match="seed must be a non-negative integer"):
            G.generate(preset=TINY, out=tmp_path / "x", seed=bad)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(G.BenchmarkError, match=r"holds other files \(notes.txt\)"):
        G.generate(preset=TINY, out=foreign)
    assert (foreign / "notes.txt").read_text() == "precious"
    with pytest.raises(ValueError, match="even"):
        G.Preset("odd", height=33)
    with pytest.raises(ValueError, match=r"test_clips must be \(min, max\)"):
        G.Preset("few", test_clips=(3, 2))


def test_cli_errors(tmp_path, capsys):
    from actionbook import cli

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "a.txt").write_text("")
    assert cli.main(["generate", "--out", str(foreign), "--no-progress"]) == 1
    assert "holds other files" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--seed", "-2"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["generate", "--preset", "huge"])


# ----------------------------------------------------------------------------- static images


def test_static_images():
    d = G.static_images(n=24, size=32, seed=0)
    x, y, names = d.images, d.labels, d.kinds
    assert x.shape == (24, 32, 32, 3) and x.dtype == np.uint8 and len(d) == 24
    assert names == list(G.KINDS) and sorted(set(y.tolist())) == list(range(len(names)))
    assert np.bincount(y).tolist() == [4] * len(names)  # balanced
    # the main object always shows, and some images hold others of other kinds
    assert d.presence.shape == (24, len(names)) and (d.presence[np.arange(24), y] == 1).all()
    assert (d.presence.sum(1) > 1).any()
    # where each object that shows is: the main one always, whole, inside the frame; a kind that
    # shows has a row (two objects of one kind share a presence flag: rows >= flags)
    o = d.objects
    assert o.shape == (24, 3, 4) and not np.isnan(o[:, 0]).any() and (o[:, 0, 3] == y).all()
    assert ((o[:, 0, :2] - o[:, 0, 2:3] >= 0) & (o[:, 0, :2] + o[:, 0, 2:3] <= 32)).all()  # centre +- size
    assert ((~np.isnan(o[:, :, 0])).sum(1) >= d.presence.sum(1)).all()
    shown = ~np.isnan(o[:, :, 3])
    assert (d.presence[np.nonzero(shown)[0], o[shown][:, 3].astype(int)] == 1).all()
    assert (o[:, 1:, 2][~np.isnan(o[:, 1:, 2])] > 0).all()
    d2 = G.static_images(n=24, size=32, seed=0)
    assert np.array_equal(x, d2.images) and np.array_equal(y, d2.labels) and np.array_equal(d.presence, d2.presence)
    assert np.array_equal(o, d2.objects, equal_nan=True)
    assert not np.array_equal(x, G.static_images(n=24, size=32, seed=1).images)
    assert (x.reshape(24, -1).std(1) > 5).all()


def _frame_stats(category: str, stat, bins: int, lo: float, hi: float, *, videos: int = 150,
                 seed: int = 11) -> dict[str, np.ndarray]:
    """Per class of `category`: the histogram (fractions in `bins` bins over lo..hi; values outside
    are left out) of `stat(tracks, ctx)` over every frame of `videos` videos: what a single frame
    shows."""
    from actionbook.data import _render as R

    style = G.group_style(0, 1)
    out = {}
    for c in G.CLASSES:
        if c.category != category:
            continue
        vals = []
        for i in range(videos):
            rng = np.random.default_rng([seed, i])
            ctx = R.make_ctx(rng, style, n=64, h=64, w=64)
            vals.append(stat(R.scene(c.name, rng, ctx), ctx))
        h = np.histogram(np.concatenate(vals), bins=bins, range=(lo, hi))[0]
        out[c.name] = h / h.sum()
    return out


def test_no_single_frame_tells_one_motion_class_from_another():
    """A frame shows a motion class's object at any height, and cut by the top or bottom edge, with
    the same odds whatever the class (in generator 1.2, Spin and Shake stayed clear of the edges:
    frame averaging told them from RiseUp and FallDown, which wrap around the frame)."""
    def height(tracks, ctx):  # in frames: 0 the top, 1 the bottom
        (track,) = tracks
        return track.y / ctx.h

    def cut(tracks, ctx):  # 1 where the top or bottom edge cuts the object
        (track,) = tracks
        return ((track.y - track.size < 0) | (track.y + track.size > ctx.h)).astype(float)

    cuts = {name: h[1] for name, h in _frame_stats("motion", cut, 2, 0, 1, seed=7).items()}
    assert min(cuts.values()) > 0.05 and max(cuts.values()) - min(cuts.values()) < 0.05, cuts
    h = np.stack(list(_frame_stats("motion", height, 4, 0, 1, seed=7).values()))
    assert np.abs(h - h.mean(0)).max() < 0.05, h  # the same heights, in quarters of the frame


def test_no_single_frame_tells_one_order_class_from_another():
    """Every temporal-order class shows the object at every size equally often (in generator 1.3,
    Assemble and Scatter showed pieces, GrowShrink and ShrinkGrow a whole object: averaging frames
    told the two pairs apart, 50% of the 4-way task)."""
    def size(tracks, ctx):
        assert len(tracks) == 1 and tracks[0].spread is None
        return tracks[0].size / ctx.size

    h = np.stack(list(_frame_stats("temporal order", size, 5, 0.3, 1.4).values()))
    assert np.abs(h - h.mean(0)).max() < 0.03, h


def test_no_single_frame_tells_one_interaction_class_from_another():
    """Every interaction class shows two objects at every gap, and at every place in the frame,
    equally often (in generator 1.3, Chase and Flee kept one gap, Meet and Miss crossed: a frame
    told the pairs apart, and Meet from Miss where the two overlapped)."""
    def gap(tracks, ctx):
        a, b = tracks
        return np.hypot(a.x - b.x, a.y - b.y) / ctx.size

    def place(tracks, ctx):  # how far each object is from the frame's centre, in frames
        return np.concatenate([np.hypot(t.x - ctx.w / 2, t.y - ctx.h / 2) / ctx.m for t in tracks])

    for stat, lo, hi in ((gap, 2.0, 5.5), (place, 0.0, 0.75)):
        h = np.stack(list(_frame_stats("interaction", stat, 5, lo, hi).values()))
        assert np.abs(h - h.mean(0)).max() < 0.04, (stat.__name__, h)


def test_the_interaction_classes_do_what_their_names_say():
    """Meet closes the gap to touching, Part opens it from touching, MeetPart and PartMeet turn
    about the middle of the video; each object moves only along the line through both (which way
    says nothing without the other object)."""
    from actionbook.data import _render as R

    style = G.group_style(0, 1)
    want = {"Meet": "wt", "Part": "tw", "MeetPart": "wtw", "PartMeet": "twt"}
    for name, marks in want.items():
        for i in range(40):
            rng = np.random.default_rng([5, i])
            ctx = R.make_ctx(rng, style, n=64, h=64, w=64)
            a, b = R.scene(name, rng, ctx)
            g = np.hypot(a.x - b.x, a.y - b.y) / ctx.size                          # (n,) in object radii
            touching, span = 2.2, R.INTERACTION_REACH * ctx.m / ctx.size            # closest, widest - closest
            at = [g[0], g[-1]] if len(marks) == 2 else [g[0], g[len(g) // 2], g[-1]]
            slack = [0.01, 0.01] if len(marks) == 2 else [0.01, 0.25, 0.01]  # the middle frame is within a
            for mark, value, k in zip(marks, at, slack):                     # tenth of the video of the turn
                far = (value - touching) / span                              # 0: touching, 1: widest
                assert (far < k) if mark == "t" else (far > 1 - k), (name, i, g[[0, len(g) // 2, -1]])
            # along the line: each object's steps are parallel to the line through both
            line = np.array([b.x[0] - a.x[0], b.y[0] - a.y[0]])
            for t in (a, b):
                steps = np.stack([np.diff(t.x), np.diff(t.y)], axis=1)            # (n-1, 2)
                assert np.allclose(steps[:, 0] * line[1] - steps[:, 1] * line[0], 0, atol=1e-6)


def test_the_clip_pretraining_has_classes_of_its_own():
    """The stand-in for Kinetics names motion primitives, none of them a benchmark class (in a
    draft of generator 1.4, `Grow` and `Shrink` were both)."""
    assert not set(G.MOTIONS) & {c.name for c in G.CLASSES}
