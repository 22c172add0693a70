"""The feature cache: resuming after a crash, keys, damaged files, `cache ls/clean`, PCA and z-norm."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from actionbook import cli
from actionbook.features import cache as C
from actionbook.features.extract import extract_features
from actionbook.features.pretrain import PretrainConfig
from actionbook.features.transforms import PCA, ZNorm
from actionbook.io import temporaries

CLASSES = ("Red", "Blue")


def tiny_ucf(root: Path, *, frames: int = 20, size: int = 32) -> Path:
    """A 2-class dataset in the UCF-101 layout: 4 train videos (groups 1-2), 2 test (group 3)."""
    from actionbook.data.video import write_video

    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for label, name in enumerate(CLASSES):
        for g in (1, 2, 3):
            for c in (1,):
                v = rng.integers(0, 60, size=(frames, size, size, 3), dtype=np.uint8)
                for t in range(frames):  # a bright square moving right (Red) or down (Blue)
                    y, x = (8, 2 + t) if name == "Red" else (2 + t % (size - 8), 8)
                    v[t, y:y + 8, x:x + 8, label * 2] = 250
                rel = f"{name}/v_{name}_g{g:02d}_c{c:02d}.avi"
                write_video(root / "videos" / rel, v, fps=25)
                lines["train" if g < 3 else "test"].append(f"{rel} {label + 1}" if g < 3 else rel)
    splits = root / "splits"
    splits.mkdir(parents=True)
    (splits / "classInd.txt").write_bytes("".join(f"{i + 1} {n}\r\n" for i, n in enumerate(CLASSES)).encode())
    (splits / "trainlist01.txt").write_bytes("".join(f"{s}\r\n" for s in lines["train"]).encode())
    (splits / "testlist01.txt").write_bytes("".join(f"{s}\r\n" for s in lines["test"]).encode())
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return tiny_ucf(tmp_path_factory.mktemp("ucf"))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# tiny random ResNet-18 (weights=None is seeded), 32-px frames cropped to 28, every 5th frame
FAST = dict(layout="ucf101", split=1, backbone="resnet18", layer="layer4", sampling="frames",
            sampling_params=dict(step=5), mode="ci", weights=None, size=(32, 28), num_workers=0, progress=False)


class Crash(Exception):
    pass


def test_killed_extraction_resumes_to_identical_tensors(dataset, cache, monkeypatch):
    def crash_after_two(n):
        if n == 2:
            raise Crash

    with pytest.raises(Crash):
        extract_features(dataset=dataset, subset="train", on_video=crash_after_two, **FAST)
    [entry] = list((cache / "features").iterdir())
    assert not (entry / "manifest.json").exists()                 # partial
    assert len(list((entry / "videos").glob("*.pt"))) == 2
    assert not temporaries(entry)                                  # nothing half-written
    assert sorted(p.name for p in (entry / "videos").iterdir()) == ["v_Red_g01_c01.pt", "v_Red_g02_c01.pt"]
    [info] = C.entries()
    assert (info.complete, info.videos, info.expected) == (False, 2, 4)

    seen = []
    resumed = extract_features(dataset=dataset, subset="train", on_video=seen.append, **FAST)
    assert seen == [1, 2]                                            # only the two missing videos
    monkeypatch.setenv("ACTIONBOOK_CACHE", str(cache.parent / "other"))
    whole = extract_features(dataset=dataset, subset="train", **FAST)
    assert whole.key == resumed.key and len(whole) == len(resumed) == 4
    for a, b in zip(whole.features, resumed.features):
        assert torch.equal(a, b)
    assert resumed.video_ids == whole.video_ids
    assert resumed.labels == [0, 0, 1, 1] and resumed.groups == ["g01", "g02", "g01", "g02"]


def test_changed_key_gives_a_new_entry_and_same_key_reuses(dataset, cache):
    a = extract_features(dataset=dataset, subset="test", **FAST)
    calls = []
    again = extract_features(dataset=dataset, subset="test", on_video=calls.append, **FAST)
    assert again.key == a.key and calls == []                        # loaded, not extracted
    b = extract_features(dataset=dataset, subset="test", **{**FAST, "layer": "layer3"})
    c = extract_features(dataset=dataset, subset="test", **{**FAST, "sampling_params": dict(step=4)})
    d = extract_features(dataset=dataset, subset="test", **{**FAST, "crops": "5"})
    assert len({a.key, b.key, c.key, d.key}) == 4
    d4 = 8 * PretrainConfig().width  # the ci ResNet-18's layer4 width
    assert a.features[0].shape == (4, d4) and b.features[0].shape == (4, d4 // 2)
    assert c.features[0].shape == (5, d4) and d.features[0].shape == (4, 5, d4)
    assert d.mean_crops().features[0].shape == (4, d4)
    assert sorted(p.name for p in (cache / "features").iterdir()) == sorted([a.key, b.key, c.key, d.key])


def test_wrong_shape_file_is_detected_with_the_fix(dataset, cache):
    fs = extract_features(dataset=dataset, subset="test", **FAST)
    path = cache / "features" / fs.key / "videos" / f"{fs.video_ids[0]}.pt"
    obj = torch.load(path, weights_only=True)
    d4 = obj["x"].shape[1]
    torch.save(dict(obj, x=obj["x"][:, :100]), path)                 # feature size 100, not d4
    with pytest.raises(C.CacheError) as e:
        extract_features(dataset=dataset, subset="test", **FAST)
    msg = str(e.value)
    assert str(path) in msg and "(100,)" in msg and f"({d4},)" in msg
    assert f"python -m actionbook cache clean {fs.key}" in msg


def test_cache_ls_and_clean(dataset, cache, capsys):
    a = extract_features(dataset=dataset, subset="test", **FAST)
    with pytest.raises(Crash):
        extract_features(dataset=dataset, subset="train", on_video=lambda n: (_ for _ in ()).throw(Crash()),
                         **FAST)
    assert cli.main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    [line_a] = [ln for ln in out.splitlines() if ln.startswith(a.key)]
    assert "complete" in line_a and "2/2" in line_a and "resnet18.layer4" in line_a and "test" in line_a
    [partial] = [ln for ln in out.splitlines() if "partial" in ln]
    assert "1/4" in partial
    assert cli.main(["cache", "clean", a.key]) == 0
    assert not (cache / "features" / a.key).exists()
    assert cli.main(["cache", "clean", "nosuchkey"]) == 1
    assert cli.main(["cache", "clean", "--all"]) == 0
    assert list((cache / "features").iterdir()) == []
    cli.main(["cache", "ls"])
    assert "empty" in capsys.readouterr().out


def _fake_set(subset: str, rows: list[list[list[float]]], **spec) -> C.FeatureSet:
    feats = [torch.tensor(r) for r in rows]
    spec = {"subset": subset, "backbone": "x", "layer": "layer4", "modality": "rgb", "crops": "center", **spec}
    return C.FeatureSet(key=f"k{subset}", spec=spec, features=feats, frames=[torch.arange(len(f)) for f in feats],
                        index=[None] * len(feats), video_ids=[f"v{i}" for i in range(len(feats))],
                        labels=[0] * len(feats), label_sets=[(0,)] * len(feats), groups=[None] * len(feats),
                        classes=["a"])


def test_pca_hand_checked():
    # rows (-2, 0), (2, 0), (0, -1), (0, 1): mean 0, variances 8/3 and 2/3, axes x and y
    train = _fake_set("train", [[[-2.0, 0.0], [2.0, 0.0]], [[0.0, -1.0], [0.0, 1.0]]])
    pca = PCA.fit(train, dim=1)
    assert torch.allclose(pca.components, torch.tensor([[1.0], [0.0]]))
    assert torch.allclose(pca.explained, torch.tensor([0.8]))
    assert torch.allclose(pca(torch.tensor([[3.0, 5.0]])), torch.tensor([[3.0]]))
    # the same data rotated by 45 degrees: the first axis is (1, 1)/sqrt(2), sign fixed positive
    r = 1 / math.sqrt(2)
    rot = torch.tensor([[r, r], [-r, r]])
    x = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, -1.0], [0.0, 1.0]]) @ rot
    p2 = PCA.fit_tensor(x, dim=2)
    assert torch.allclose(p2.components[:, 0], torch.tensor([r, r]), atol=1e-6)
    assert torch.allclose(p2.components[:, 1], torch.tensor([-r, r]), atol=1e-6) or \
        torch.allclose(p2.components[:, 1], torch.tensor([r, -r]), atol=1e-6)
    assert p2.components[:, 1].abs().max() == p2.components[:, 1].max()  # largest coefficient positive
    assert torch.allclose(PCA.fit_tensor(-x, dim=2).components, p2.components)  # sign is deterministic
    test = _fake_set("test", [[[1.0, 1.0]]])
    assert torch.allclose(pca.apply(test).features[0], torch.tensor([[1.0]]))


def test_fitting_on_anything_but_train_is_refused():
    train = _fake_set("train", [[[0.0, 1.0], [2.0, 3.0]]])
    test = _fake_set("test", [[[0.0, 1.0], [2.0, 3.0]]])
    for fit in (lambda s: PCA.fit(s, dim=1), ZNorm.fit):
        with pytest.raises(ValueError, match="training split only"):
            fit(test)
        with pytest.raises(TypeError, match="training FeatureSet"):
            fit(torch.zeros(4, 2))
    other = _fake_set("test", [[[0.0, 1.0]]], layer="layer3")
    with pytest.raises(ValueError, match="fitted on other features"):
        ZNorm.fit(train).apply(other)


def test_znorm_uses_training_statistics():
    train = _fake_set("train", [[[1.0, 10.0], [3.0, 10.0]], [[5.0, 20.0], [7.0, 20.0]]])
    z = ZNorm.fit(train)  # means (4, 15), population stds (sqrt(5), 5)
    assert torch.allclose(z.mean, torch.tensor([4.0, 15.0]))
    assert torch.allclose(z.std, torch.tensor([math.sqrt(5), 5.0]))
    out = z.apply(_fake_set("test", [[[4.0 + math.sqrt(5), 5.0]]])).features[0]
    assert torch.allclose(out, torch.tensor([[1.0, -2.0]]), atol=1e-5)


def test_lazy_entry_reads_one_video_at_a_time_and_checks_it(dataset, cache):
    eager = extract_features(dataset=dataset, subset="train", **FAST)
    lazy = C.load_features(eager.key, lazy=True)
    reader = lazy.features.reader
    assert lazy.lazy and not eager.lazy and reader.reads == 0 and len(lazy) == len(eager) == 4  # nothing read yet
    doubled = lazy.map(lambda x: 2 * x, name="double")
    assert reader.reads == 0 and doubled.transforms == ("double",)
    for i in range(len(eager)):
        assert torch.equal(doubled.features[i], 2 * eager.features[i])
        assert torch.equal(lazy.frames[i], eager.frames[i])  # the same file, kept in memory: no second read
    assert reader.reads == 4 and len(reader._kept) == 1    # one video in memory at a time
    assert torch.equal(lazy.features[-1], eager.features[-1]) and reader.reads == 4
    # a file damaged after loading is refused when it is read, with the fix
    path = C.entry_dir(eager.key) / "videos" / "v_Red_g01_c01.pt"
    obj = torch.load(path, weights_only=True)
    obj["x"] = obj["x"] + 1
    torch.save(obj, path)
    with pytest.raises(C.CacheError, match="cache clean"):
        lazy.features[0]


# ---------------------------------------------------------------------------- storage dtype and row reads


def test_float16_storage_round_trips_as_float32_in_half_the_bytes(dataset, cache):
    f32 = extract_features(dataset=dataset, subset="train", **FAST)
    f16 = extract_features(dataset=dataset, subset="train", storage="float16", **FAST)
    assert f16.key != f32.key and f16.spec["storage"] == "float16" and "storage" not in f32.spec
    assert C.read_entry_json(C.entry_dir(f16.key) / "key.json", key=f16.key)["expect"]["dtype"] == "torch.float16"
    lazy = C.load_features(f16.key, lazy=True)
    rounded = False
    for i in range(len(f32)):
        a, b, c = f32.features[i], f16.features[i], lazy.features[i]
        assert a.dtype == b.dtype == c.dtype == torch.float32 and torch.equal(b, c)  # eager and lazy: float32
        torch.testing.assert_close(b, a, rtol=2 ** -11, atol=1e-7)  # float16 rounding of the float32 extraction
        rounded |= not torch.equal(a, b)
        assert torch.equal(lazy.features.rows(i, [2, 0]), b[[2, 0]])
    assert rounded  # the values really went through float16
    path = lambda fs, i: C.entry_dir(fs.key) / "videos" / f"{fs.video_ids[i]}.pt"  # noqa: E731
    assert torch.load(path(f16, 0), weights_only=True)["x"].dtype == torch.float16
    size = {fs.key: sum(path(fs, i).stat().st_size for i in range(len(fs))) for fs in (f32, f16)}
    x_bytes = sum(x.numel() for x in f32.features) * 2  # what float16 saves: 2 bytes a value
    assert abs(size[f32.key] - size[f16.key] - x_bytes) <= 64 * len(f32)  # up to the zip's alignment per file
    # the dtype check on load means something: a float32 file in the float16 entry is refused
    obj = torch.load(path(f16, 0), weights_only=True)
    torch.save(dict(obj, x=obj["x"].float()), path(f16, 0))
    with pytest.raises(C.CacheError, match="dtype torch.float32, but this entry's key expects torch.float16") as e:
        C.load_features(f16.key)
    assert str(path(f16, 0)) in str(e.value) and f"cache clean {f16.key}" in str(e.value)
    with pytest.raises(ValueError, match="storage must be one of"):
        extract_features(dataset=dataset, subset="train", storage="bfloat16", **FAST)


def test_default_storage_keeps_the_keys_made_before_it():
    from actionbook.data.datasets import Dataset
    from actionbook.features.extract import make_key

    ds = Dataset(root=Path("/data/ucf101"), layout="ucf101", videos=Path("/data/ucf101/videos"),
                 splits=Path("/data/ucf101/splits"), identity={"splits": "0123abcd"})
    kw = dict(ds=ds, split=1, subset="train", backbone="resnet101", layer="conv5_1_map", weights="DEFAULT", mode="full",
              sampling="tsn", sampling_params={"pool": 25}, crops="center", modality="rgb", flow_method="tvl1",
              flow_length=10, resize=256, crop_size=224)
    # the key this call had before storage could be chosen (computed with that code): float32 keeps it
    assert make_key(**kw)[0] == make_key(**kw, storage="float32")[0] == "a4baf221521edae3"
    key16, spec16 = make_key(**kw, storage="float16")
    assert key16 != "a4baf221521edae3" and spec16["storage"] == "float16"


def test_float16_storage_refuses_values_beyond_its_range():
    from actionbook.features.extract import _stored

    x = torch.tensor([1.0, 7e4])
    assert _stored(x, "float32", path=Path("v.avi")) is x
    with pytest.raises(ValueError, match=r"v\.avi: a feature value .* exceeds float16's range"):
        _stored(x, "float16", path=Path("v.avi"))
    assert _stored(x[:1], "float16", path=Path("v.avi")).dtype == torch.float16


def test_rows_are_read_alone_once_their_file_was_checked_whole(dataset, cache):
    eager = extract_features(dataset=dataset, subset="train", **FAST)
    lazy = C.load_features(eager.key, lazy=True)
    reader, x0 = lazy.features.reader, eager.features[0]  # x0: (4, 512) rows of one video
    assert torch.equal(lazy.features.rows(0, [1, 3]), x0[[1, 3]])
    assert (reader.reads, reader.rows_read) == (1, len(x0))  # first touch: the whole file, checked
    lazy.features[1]                                         # another video: video 0 no longer in memory
    assert 0 not in reader._kept and reader.reads == 2
    rows, nbytes = reader.rows_read, reader.bytes_read
    assert torch.equal(lazy.features.rows(0, [0, 2]), x0[[0, 2]])
    assert reader.reads == 2 and reader.rows_read - rows == 2  # mapped: only the two rows
    assert reader.bytes_read - nbytes == 2 * x0[0].numel() * 4
    assert torch.equal(lazy.map(lambda x: 2 * x, name="double").features.rows(0, [3]), 2 * x0[[3]])
    with pytest.raises(ValueError, match="feature rows"):
        lazy.frames.rows(0, [0])
    # a file replaced after it was checked is checked whole again, and refused if it changed
    path = C.entry_dir(eager.key) / "videos" / f"{eager.video_ids[0]}.pt"
    obj = torch.load(path, weights_only=True)
    torch.save(dict(obj, x=obj["x"] + 1), path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    with pytest.raises(C.CacheError, match="changed since it was written") as e:
        lazy.features.rows(0, [1])
    assert str(path) in str(e.value) and f"cache clean {eager.key}" in str(e.value)


def test_fitted_statistic_is_fitted_once_kept_with_its_entry_and_refitted_when_damaged(dataset, cache):
    fs = extract_features(dataset=dataset, subset="train", **FAST)
    calls = []

    def fit():
        calls.append(1)
        x = torch.cat(list(fs.features))
        return {"mean": x.mean(0), "scale": float(x.std()), "grid": None}

    first = C.fitted(fs, {"statistic": "test", "picks": [0, 1]}, fit)
    again = C.fitted(fs, {"statistic": "test", "picks": [0, 1]}, fit)
    assert len(calls) == 1                                          # the second came from disk
    assert torch.equal(first["mean"], again["mean"]) and first["scale"] == again["scale"] and again["grid"] is None
    C.fitted(fs, {"statistic": "test", "picks": [0, 2]}, fit)       # what it depends on changed: fitted anew
    assert len(calls) == 2
    [a, b] = sorted((cache / "features" / fs.key / "fitted").glob("*.pt"))
    for f in (a, b):
        f.write_bytes(b"not a torch file")                          # damaged: fitted again and replaced
    assert torch.equal(C.fitted(fs, {"statistic": "test", "picks": [0, 1]}, fit)["mean"], first["mean"])
    assert len(calls) == 3
    C.fitted(fs, {"statistic": "test", "picks": [0, 1]}, fit)
    assert len(calls) == 3
    assert cli.main(["cache", "clean", fs.key]) == 0                # removed with the videos it was fitted on
    assert not (cache / "features" / fs.key).exists()


def test_a_video_extracted_again_with_other_features_changes_the_sets_identity_and_its_fitted_statistics(
        tmp_path, cache):
    """A run cache's identity (`FeatureSet.identity`) and a fitted statistic follow the entry's
    content, not only its key: a source video replaced by another is extracted again under the
    same key, and what was computed from the old features is not reused."""
    dataset = tiny_ucf(tmp_path / "ucf")
    fs = extract_features(dataset=dataset, subset="train", **FAST)
    calls = []
    fit = lambda: calls.append(1) or {"first": torch.cat(list(fs.features))[0]}  # noqa: E731
    C.fitted(fs, {"statistic": "test"}, fit)
    C.fitted(fs, {"statistic": "test"}, fit)
    assert len(calls) == 1 and fs.content is not None
    assert extract_features(dataset=dataset, subset="train", **FAST).identity() == fs.identity()  # nothing changed
    videos = sorted((dataset / "videos").rglob("*.avi"))
    source = next(p for p in videos if p.stem == fs.video_ids[0])
    other = next(p for p in videos if p.stem == fs.video_ids[1])
    source.write_bytes(other.read_bytes())                          # replaced by another video
    again = extract_features(dataset=dataset, subset="train", **FAST)  # re-extracts that video
    assert again.key == fs.key and again.identity() != fs.identity()
    assert not torch.equal(again.features[0], fs.features[0])
    C.fitted(again, {"statistic": "test"}, fit)
    assert len(calls) == 2                                          # not the statistic of the old videos
    C.fitted(again, {"statistic": "test"}, fit)
    assert len(calls) == 2
    assert C.load_features(fs.key, lazy=True).identity() == again.identity()


def test_the_controls_mean_colour_is_decoded_once_then_kept_with_its_entry(dataset, cache, monkeypatch):
    from actionbook import controls
    from actionbook.data import video

    fs = extract_features(dataset=dataset, subset="test", **FAST)
    cfg = controls.ControlsConfig(dataset=str(dataset))
    decoded = []
    read = video.read_video
    monkeypatch.setattr(video, "read_video", lambda path, **kw: decoded.append(path) or read(path, **kw))
    first = controls._colour(fs, cfg)
    assert len(decoded) == len(fs)
    for x, vid, frames in zip(first.features, fs.video_ids, fs.frames):
        path = next(p for p in (dataset / "videos").rglob("*.avi") if p.stem == vid)
        want = read(path, frames=frames.tolist()).float().mean(dim=(0, 1, 2)).div(255)
        assert x.shape == (1, 3) and torch.allclose(x[0], want)
    again = controls._colour(fs, cfg)
    assert len(decoded) == len(fs)                                  # from the cache: nothing decoded
    assert all(torch.equal(a, b) for a, b in zip(first.features, again.features))
    assert again.transforms == fs.transforms + ("mean colour",) and [len(f) for f in again.frames] == [1] * len(fs)


def test_fitted_statistic_of_features_not_on_disk_is_not_written(cache):
    fs = _fake_set("train", [[[1.0, 2.0]], [[3.0, 4.0]]])
    calls = []
    for _ in range(2):
        C.fitted(fs, {"statistic": "test"}, lambda: calls.append(1) or {"m": torch.ones(2)})
    assert len(calls) == 2 and not (cache / "features").exists()
