"""Feature extraction: videos -> frozen backbone -> the feature cache.

    python -m actionbook extract --dataset ci --layout ucf101 --split 1 \\
        --backbone resnet34 --layer layer4 --sampling mrrn --crops center --modality rgb --mode ci

`extract_features(...)` does the same from Python and returns a `FeatureSet`;
`extract_layers(layers=[...], ...)` reads several stages of a 2D backbone in one pass (MRRN's
three levels: the frames decoded and the network run once), each into the very entry
`extract_features` makes for that layer. For one video:

1. the split reader gives its record (path, label, group; `actionbook.data.readers`);
2. the sampling rule gives the frames to read (`actionbook.data.sampling`):

   | sampling | items per video | used by |
   | --- | --- | --- |
   | `res_lstm` | every 16-frame clip, stride 8 (`clip_grid`; 3D backbones) | Res-LSTM (C3D features) |
   | `mrrn` | the frames of up to 20 clips of 30 frames, stride 8 (`mrrn_clips`) | MRRN |
   | `tsn` | `pool` snippets at the centres of `pool` equal segments (`tsn_test_groups`) | Relational LSTM, Res-LSTM (TSN features) |
   | `iqbal` | every 10th frame (`subsequences` cuts them into runs later) | Iqbal et al. |
   | `frames` | every `step`-th frame | anything else |

   With frozen features, TSN's random snippet per segment is drawn at training time from the
   `pool` pre-extracted snippets (25 by default, like TSN's test protocol), not from every frame.
3. the frames are decoded (`video.read_video`, PyAV) -- or, for `flow`, the video's optical
   flow is read from the flow cache (`flow.video_flow`) and stacked: L = 10 fields per item for
   2D backbones (`flow_stack`), one field per frame for 3D ones;
4. resized (short side) and cropped: the centre, 5 crops, or 10 crops (corners + centre and
   their mirrors; `actionbook.data.transforms`);
5. the frozen backbone (`backbones.backbone`) maps each crop of each item to features, stored
   as float32 or, with `storage="float16"`, as float16 (half the disk; read back as float32).

Steps 1-4 run in `torch.utils.data.DataLoader` worker processes (2 by default), step 5 in the
main process, so decoding overlaps the network. Each video's features are written atomically
as soon as they are computed (`cache.py` describes the entry), so a killed extraction resumes
where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from actionbook import engine, stages
from actionbook.data import sampling as S
from actionbook.data import transforms as TF
from actionbook.data.datasets import LAYOUTS, Dataset, read_records, resolve_dataset  # noqa: F401 (re-exported)
from actionbook.data.readers import DatasetError, VideoRecord
from actionbook.data.video import VideoDecodeError, probe, read_video
from actionbook.features import backbones as B
from actionbook.features.cache import (
    MANIFEST_FORMAT,
    STORAGES,
    CacheError,
    FeatureSet,
    clean_hint,
    entry_dir,
    load_features,
    load_video_file,
    read_entry_json,
)
from actionbook.io import atomic_write, build_lock, write_json
from actionbook.paths import lock_path

EXTRACTOR_VERSION = 1
"""Part of every cache key: bump it when extraction changes its numbers, so that no entry
made by the old code is ever returned."""

SAMPLINGS = {  # name -> default parameters
    "res_lstm": dict(length=16, stride=8),
    "mrrn": dict(length=30, stride=8, max_clips=20),
    "tsn": dict(pool=25),
    "iqbal": dict(step=10),
    "frames": dict(step=1),
}
CROPS = {"center": 1, "5": 5, "10": 10}


# --------------------------------------------------------------------------------------
# the key


def make_key(*, ds: Dataset, split: int, subset: str, backbone: str, layer: str, weights: str | None,
             mode: str, sampling: str, sampling_params: dict, crops: str, modality: str,
             flow_method: str, flow_length: int, resize: int, crop_size: int,
             storage: str = "float32") -> tuple[str, dict]:
    """(KEY, key dict): the hash of everything that determines the features, and the dict itself.

    `storage` (the stored dtype) enters the key only when it is not float32, so that every entry
    made before storage could be chosen keeps its key."""
    if weights == "ci":
        from actionbook.features.pretrain import clip_pretrain_key, pretrain_key

        # the clip networks' key covers the 2D weights they are inflated from and the inflation
        weights = clip_pretrain_key(modality) if B.spec(backbone).kind == "clip" else pretrain_key()
    key = dict(
        extractor_version=EXTRACTOR_VERSION,
        dataset=str(ds.root), layout=ds.layout, identity=ds.identity, split=split, subset=subset,
        backbone=backbone, mode=mode, weights=weights, layer=layer,
        sampling=sampling, sampling_params=sampling_params, crops=crops, resize=resize, crop_size=crop_size,
        modality=modality,
        flow_method=flow_method if modality == "flow" else None,
        flow_length=flow_length if modality == "flow" and B.spec(backbone).kind == "frame" else None,
    )
    if storage != "float32":
        key["storage"] = storage
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return digest, key


def describe_key(key: dict) -> str:
    name = Path(key["dataset"]).name
    flow = f" {key['flow_method']}" if key["modality"] == "flow" else ""
    return (f"{name} {key['layout']} split{key['split']} {key['subset']} | {key['mode']} {key['backbone']}."
            f"{key['layer']} | {key['modality']}{flow} | {key['sampling']} | crops {key['crops']}"
            + (f" | {key['storage']}" if key.get("storage", "float32") != "float32" else ""))


# --------------------------------------------------------------------------------------
# per-video inputs (run in DataLoader workers)


def plan_items(num_frames: int, *, sampling: str, params: dict, kind: str, flow_length: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(frames, index): which frames each item starts at, and MRRN's clip -> row index.

    frames is (num_items,) for 2D backbones and (num_items, clip_length) for 3D ones.
    `num_frames` counts the frames (rgb) or the flow fields (flow) of the video.
    """
    if sampling == "res_lstm":
        if kind != "clip":
            raise ValueError("sampling 'res_lstm' takes 16-frame clips: use a 3D backbone (r2plus1d_18, r3d_18)")
        return torch.tensor(S.clip_grid(num_frames, **params)), None  # (K, 16)
    if kind != "frame":
        raise ValueError(f"sampling {sampling!r} takes single frames: use a 2D backbone (resnet*)")
    if sampling == "mrrn":
        clips = torch.tensor(S.mrrn_clips(num_frames, **params))      # (num_clips, 30)
        frames = torch.unique(clips)                                   # (F,) sorted
        return frames, torch.searchsorted(frames, clips)               # rows of x for each clip
    if sampling == "tsn":
        # with flow, a snippet is L fields: its start must leave room for them (a video with fewer
        # fields than L starts at 0 and its stack loops, as `VideoInputs` stacks every flow snippet)
        length = min(max(flow_length, 1), num_frames)
        starts = S.tsn_test_groups(num_frames, T=params["pool"], groups=1, length=length)[0]
        return torch.tensor(starts), None
    if sampling in ("iqbal", "frames"):
        return torch.arange(0, num_frames, params["step"]), None
    raise ValueError(f"unknown sampling {sampling!r}; choose one of {list(SAMPLINGS)}")


def _crop(x: torch.Tensor, crops: str, size: int, *, flow: bool) -> torch.Tensor:
    """(..., C, H, W) -> (..., C, h, w) for the centre, or (crops, ..., C, h, w)."""
    if crops == "center":
        return TF.center_crop(x, size)
    if crops == "5":
        return TF.five_crop(x, size)
    return TF.ten_crop(x, size, flow=flow)


class VideoInputs(torch.utils.data.Dataset):
    """Decoded, resized and cropped network inputs of one video per item (runs in workers).

    Item: dict(i, frames, index, x) with x uint8 (num_items, [crops,] C, h, w) for 2D or
    (num_items, [crops,] C, T, h, w) for 3D backbones; or dict(i, error) if the video failed.
    """

    def __init__(self, records: list[VideoRecord], positions: list[int], *, kind: str, sampling: str,
                 params: dict, crops: str, resize: int, crop_size: int, modality: str, flow_method: str,
                 flow_length: int, flow_cache: Path | None = None) -> None:
        self.records, self.positions = records, positions
        self.kind, self.sampling, self.params = kind, sampling, params
        self.crops, self.resize, self.crop_size = crops, resize, crop_size
        self.modality, self.flow_method, self.flow_length = modality, flow_method, flow_length
        self.flow_cache = flow_cache

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int) -> dict:
        i = self.positions[j]
        try:
            frames, index, x = self._inputs(self.records[i].path)
        except (VideoDecodeError, ValueError, OSError) as e:
            return dict(i=i, error=f"{type(e).__name__}: {e}")
        return dict(i=i, frames=frames, index=index, x=x)

    def _inputs(self, path: Path) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        flow = self.modality == "flow"
        if not flow:
            info = probe(path)
            info.check_complete(path)  # a truncated file: its header declares more frames than decode
            n = info.num_frames
            frames, index = plan_items(n, sampling=self.sampling, params=self.params, kind=self.kind)
            wanted = torch.unique(frames)                                      # (U,) sorted
            video = TF.to_tchw(read_video(path, frames=wanted.tolist()))       # (U, 3, H, W)
            pos = torch.searchsorted(wanted, frames)                            # frames -> rows of video
        else:
            from actionbook.data.flow import video_flow

            fields = video_flow(path, method=self.flow_method, cache=self.flow_cache)  # (n-1, H, W, 2)
            n = len(fields)
            L = self.flow_length if self.kind == "frame" else 0
            frames, index = plan_items(n, sampling=self.sampling, params=self.params, kind=self.kind,
                                       flow_length=L)
            if self.kind == "frame":  # each item: L fields from its start, (2L, H, W); loops a short video
                if self.sampling != "tsn":
                    frames = frames.clamp(max=max(n - L, 0))
                stack = (frames[:, None] + torch.arange(L)) % n                 # (F, L)
                video = torch.from_numpy(fields[stack.numpy()])                  # (F, L, H, W, 2)
                video = video.permute(0, 1, 4, 2, 3).flatten(1, 2)              # (F, 2L, H, W) x,y interleaved
                pos = torch.arange(len(frames))
            else:  # each clip frame f reads the field f -> f+1 (the last frame reuses the last field)
                video = torch.from_numpy(fields).permute(0, 3, 1, 2)           # (n, 2, H, W)
                pos = frames.clamp(max=n - 1)
        video = TF.resize(video, self.resize)                                   # (U, C, h', w') uint8
        video = _crop(video, self.crops, self.crop_size, flow=flow)             # ([crops,] U, C, h, w)
        if self.crops != "center":
            video = video.movedim(0, 1)                                         # (U, crops, C, h, w)
        x = video[pos]                                                          # (items, [crops,] C, h, w) or (K, T, ...)
        if self.kind == "clip":
            x = x.movedim(1, -3)                                                # (K, [crops,] C, T, h, w)
        return frames, index, x.contiguous()


def _collate(item: dict) -> dict:
    return item


# --------------------------------------------------------------------------------------
# extraction


@torch.no_grad()
def _outputs(y: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A backbone's output as a tuple: one tensor per layer (`FrameTaps` gives several)."""
    return y if isinstance(y, tuple) else (y,)


def _features(net: torch.nn.Module, x: torch.Tensor, *, batch_size: int,
              device: torch.device) -> tuple[torch.Tensor, ...]:
    """uint8 inputs (items, [crops,] C, ...) -> float32 features (items, [crops,] D, ...), one per layer."""
    if isinstance(net, B.ClipBackbone):
        lead = x.shape[:-4]                       # (items, [crops])
        flat = x.reshape(-1, *x.shape[-4:])       # (N, C, T, h, w)
    else:
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])       # (N, C, h, w)
    out: list[list[torch.Tensor]] = []
    for s in range(0, len(flat), batch_size):
        xb = flat[s:s + batch_size].to(device).float().div_(255)
        out.append([y.float().cpu() for y in _outputs(net(xb))])  # per layer (b, D[, h, w])
    ys = [torch.cat(parts) for parts in zip(*out)]
    return tuple(y.reshape(*lead, *y.shape[1:]) for y in ys)


def extract_features(
    *,
    dataset: str | Path,
    layout: str = "ucf101",
    split: int = 1,
    subset: str = "train",
    backbone: str,
    layer: str,
    sampling: str,
    sampling_params: dict | None = None,
    crops: str = "center",
    modality: str = "rgb",
    mode: str = "ci",
    weights: str | None = "auto",
    flow_method: str = "tvl1",
    flow_length: int = 10,
    size: tuple[int, int] | None = None,
    batch_size: int = 64,
    num_workers: int = 2,
    skip_errors: bool = False,
    device: str | None = None,
    progress: bool = True,
    on_video: Callable[[int], None] | None = None,
    keep_odd_times: bool = False,
    lazy: bool = False,
    storage: str = "float32",
) -> FeatureSet:
    """Extract (or load from the cache) the features of one dataset split; see the module docstring.

    weights: "auto" = "ci" in ci mode (the ci pretraining) and "DEFAULT" in full mode;
    None = random weights (tests). size: (resize, crop) instead of the backbone's default
    (`backbones.input_size`). sampling_params override `SAMPLINGS[sampling]`.
    skip_errors: an unreadable video is reported and left out instead of stopping the run.
    on_video(n): called after the n-th video of this run is stored (tests use it to crash).
    keep_odd_times: Charades only, read actions with odd times as written instead of refusing
    the row (`datasets.read_records`); extraction reads the videos only, not the action times,
    so it is not part of the key. lazy: return the entry as `load_features(key, lazy=True)` does
    (each video read from disk when indexed; not part of the key either).
    device: "cpu", "cuda", "cuda:N" (default cuda when available); a GPU that is not there is an error.
    storage: the dtype the features are stored in on disk, "float32" or "float16" (`cache.STORAGES`;
    half the bytes, each value rounded to float16's 11 significant bits; a value beyond float16's
    range, |x| > 65504, is an error naming the video); part of the key. They load as float32.

    A complete entry is returned as it is unless a video changed on disk since it was
    extracted (size or mtime; it is extracted again) or it left videos out (tried again; with
    skip_errors=False one that still fails is an error, never a silent gap). Either changes the
    entry's `FeatureSet.content` but not its key, so what was computed from the old features
    (the runs of the run cache, `cache.fitted` statistics) is computed again.
    """
    return _extract(layers=(layer,), **{k: v for k, v in locals().items() if k != "layer"})[layer]


def extract_layers(*, layers: Sequence[str], **kwargs: Any) -> dict[str, FeatureSet]:
    """Several stages of one 2D backbone in one pass over the videos: `{layer: FeatureSet}`.

    layers: stage outputs of a frame backbone, "layer1".."layer4" (pooled) or "layer1_map"..
    "layer4_map"; every other argument as `extract_features`. Each layer's entry is exactly the
    one `extract_features(layer=...)` makes (same key, same files, same numbers): a later call for
    one layer reads it from the cache. The frames are decoded (and cropped) once and the network
    runs once, up to the deepest stage, instead of once per layer (MRRN's three levels).
    """
    layers = tuple(layers)
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layers must name one or more distinct stages, got {layers!r}")
    return _extract(layers=layers, **kwargs)


def _extract(*, layers: tuple[str, ...], dataset: str | Path, layout: str = "ucf101", split: int = 1,
             subset: str = "train", backbone: str, sampling: str, sampling_params: dict | None = None,
             crops: str = "center", modality: str = "rgb", mode: str = "ci", weights: str | None = "auto",
             flow_method: str = "tvl1", flow_length: int = 10, size: tuple[int, int] | None = None,
             batch_size: int = 64, num_workers: int = 2, skip_errors: bool = False, device: str | None = None,
             progress: bool = True, on_video: Callable[[int], None] | None = None, keep_odd_times: bool = False,
             lazy: bool = False, storage: str = "float32", _retries: int = 0,
             _locked: bool = False) -> dict[str, FeatureSet]:
    """`extract_features` for one or more layers of the same backbone, in one pass. A missing
    entry is extracted under its `build_lock` (every layer's, in key order), so two processes
    that want the same features at the same time extract them once."""
    call = {k: v for k, v in locals().items() if k != "_retries"}
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {list(SAMPLINGS)}")
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {list(CROPS)}, got {crops!r}")
    if modality not in B.MODALITIES:
        raise ValueError(f"modality must be one of {B.MODALITIES}, got {modality!r}")
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {list(STORAGES)}, got {storage!r}")
    spec = B.spec(backbone)
    params = {**SAMPLINGS[sampling], **(sampling_params or {})}
    plan_items(1000, sampling=sampling, params=params, kind=spec.kind)  # a wrong combination fails here, once
    if weights == "auto":
        weights = "ci" if mode == "ci" else "DEFAULT"
    weights = B.resolve_weights(backbone, weights, mode=mode)
    resize, crop_size = size or B.input_size(backbone, mode=mode)
    dev = engine.resolve_device(device)
    ds = resolve_dataset(dataset, layout=layout)
    records, classes = read_records(ds, split=split, subset=subset, keep_odd_times=keep_odd_times)
    keys = {}
    for ly in layers:
        keys[ly] = make_key(ds=ds, split=split, subset=subset, backbone=backbone, layer=ly, weights=weights,
                            mode=mode, sampling=sampling, sampling_params=params, crops=crops, modality=modality,
                            flow_method=flow_method, flow_length=flow_length, resize=resize, crop_size=crop_size,
                            storage=storage)  # (key, key_dict)
    dirs = {ly: entry_dir(keys[ly][0]) for ly in layers}
    sources = [_source(r.path) for r in records]  # a video's [size, mtime_ns]: a replaced file is re-extracted
    if all((dirs[ly] / "manifest.json").is_file() and _entry_is_current(dirs[ly], keys[ly][0], records, sources)
           for ly in layers):
        return {ly: load_features(keys[ly][0], lazy=lazy) for ly in layers}
    if not _locked:  # then look again: another process may have extracted them meanwhile
        with contextlib.ExitStack() as held:
            for key in sorted({keys[ly][0] for ly in layers}):
                held.enter_context(build_lock(lock_path(f"features-{key}"), what=f"the feature set {key}"))
            return _extract(**{**call, "_locked": True})

    # a frozen backbone (one pass up to the deepest layer) and the shape of one item's features per layer
    if len(layers) == 1:
        net = B.backbone(backbone, layer=layers[0], modality=modality, weights=weights, mode=mode,
                         flow_length=flow_length).to(dev)
    else:
        net = B.frame_taps(backbone, layers=layers, modality=modality, weights=weights, mode=mode,
                           flow_length=flow_length).to(dev)
    channels = 3 if modality == "rgb" else (2 * flow_length if spec.kind == "frame" else 2)
    probe_shape = (1, channels, crop_size, crop_size) if spec.kind == "frame" else \
        (1, channels, params.get("length", 16), crop_size, crop_size)
    with torch.no_grad():
        probe_out = _outputs(net(torch.zeros(probe_shape, device=dev)))
    files = [f"{r.video_id}.pt" for r in records]
    expects, metas = {}, {}
    for ly, out in zip(layers, probe_out):
        key, key_dict, d = keys[ly][0], keys[ly][1], dirs[ly]
        item_shape = tuple(out.shape[1:])
        if crops != "center":
            item_shape = (CROPS[crops], *item_shape)
        expects[ly] = dict(item_shape=list(item_shape), dtype=str(STORAGES[storage]))  # the dtype on disk
        metas[ly] = dict(key=key_dict, expect=expects[ly], description=describe_key(key_dict),
                         num_videos=len(records))
        if (d / "key.json").is_file():
            old = read_entry_json(d / "key.json", key=key)
            if old.get("key") != key_dict or old.get("expect") != expects[ly]:
                raise CacheError(f"{d / 'key.json'} does not match the key it is stored under; {clean_hint(key)}")
        else:
            write_json(d / "key.json", metas[ly])

    missing = {ly: {i for i, f in enumerate(files) if not (dirs[ly] / "videos" / f).is_file()} for ly in layers}
    todo = sorted(set().union(*missing.values()))
    inputs = VideoInputs(records, todo, kind=spec.kind, sampling=sampling, params=params, crops=crops,
                         resize=resize, crop_size=crop_size, modality=modality, flow_method=flow_method,
                         flow_length=flow_length)
    loader = torch.utils.data.DataLoader(inputs, batch_size=None, num_workers=num_workers, collate_fn=_collate,
                                         prefetch_factor=4 if num_workers else None)
    skipped = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(records), initial=len(records) - len(todo), unit="video", disable=not progress,
               desc=f"extract {backbone}.{'+'.join(layers)} {modality} {subset}")
    done = 0
    for item in loader:
        i = item["i"]
        if "error" in item:
            if not skip_errors:
                raise VideoDecodeError(f"{records[i].path}: {item['error']} "
                                       "(pass --skip-errors / skip_errors=True to leave unreadable videos out)")
            skipped.append(dict(video_id=records[i].video_id, path=str(records[i].path), error=item["error"]))
            bar.update()
            continue
        outs = _features(net, item["x"], batch_size=batch_size, device=dev)  # per layer (items, [crops,] D[, h, w])
        for ly, x in zip(layers, outs):
            if i not in missing[ly]:
                continue  # this layer's file is already there (an earlier, interrupted pass)
            x = _stored(x, storage, path=records[i].path)
            with atomic_write(dirs[ly] / "videos" / files[i], "wb") as f:
                torch.save(dict(x=x, frames=item["frames"], index=item["index"], source=sources[i]), f)
        bar.update()
        done += 1
        if on_video is not None:
            on_video(done)
    bar.close()

    # every file is checked before the manifest declares the entry complete
    kept: dict[str, list[dict]] = {ly: [] for ly in layers}
    stale: set[int] = set()
    for ly in layers:
        key, d = keys[ly][0], dirs[ly]
        for i, r in enumerate(records):
            path = d / "videos" / files[i]
            if not path.is_file():
                continue
            obj = load_video_file(path, key=key, expect=expects[ly])
            if obj.get("source") != sources[i] or _source(r.path) != sources[i]:
                stale.add(i)  # extracted from another version of the video (replaced, or resumed from an old run)
                continue
            kept[ly].append(dict(video_id=r.video_id, file=files[i], label=r.label, labels=list(r.labels),
                                 group=r.group, sha256=obj["sha256"], source=sources[i]))
    if stale:
        if _retries >= 2:
            first = records[min(stale)].path
            raise CacheError(f"{first}: keeps changing while it is extracted; "
                             "let whatever writes it finish, then extract again")
        for ly in layers:
            _forget(dirs[ly], [files[i] for i in sorted(stale)], f"{len(stale)} video(s) changed on disk since "
                    f"their features were extracted (size or modification time), e.g. {records[min(stale)].path}")
        return _extract(**{**call, "_retries": _retries + 1})
    if skipped:
        print(f"extract: skipped {len(skipped)} unreadable video(s) of {len(records)}; they are left out of "
              f"entr{'y' if len(layers) == 1 else 'ies'} {', '.join(keys[ly][0] for ly in layers)} and tried "
              "again on their next use:", file=sys.stderr)
        for s in skipped:
            print(f"  {s['path']}: {s['error']}", file=sys.stderr)
    for ly in layers:
        write_json(dirs[ly] / "manifest.json", dict(format=MANIFEST_FORMAT, videos=kept[ly], classes=classes,
                                                   skipped=skipped))
    if done:  # the decoding, flow and backbone time of the videos this call extracted (one line per pass)
        name = metas[layers[0]]["description"] + (f" (with {', '.join(layers[1:])}, one pass)" if len(layers) > 1 else "")
        stages.record("features", name, seconds=time.perf_counter() - t0, videos=done, key=keys[layers[0]][0],
                      **({"keys": [keys[ly][0] for ly in layers]} if len(layers) > 1 else {}))
    return {ly: load_features(keys[ly][0], lazy=lazy) for ly in layers}


def _stored(x: torch.Tensor, storage: str, *, path: Path) -> torch.Tensor:
    """float32 features -> the dtype they are stored in; a value float16 cannot hold is an error."""
    dtype = STORAGES[storage]
    if dtype == torch.float32:
        return x
    limit = torch.finfo(dtype).max
    if x.numel() and float(x.abs().max()) > limit:
        raise ValueError(f"{path}: a feature value ({float(x.abs().max()):.4g}) exceeds {storage}'s range "
                         f"(|x| <= {limit:.0f}); extract with storage='float32'")
    return x.to(dtype)


def _source(path: Path) -> list[int]:
    """What identifies a video file's version without reading it: [size in bytes, mtime in ns]."""
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]


def _forget(d: Path, files: list[str], why: str) -> None:
    """Make entry `d` partial again without `files`, so that the extraction redoes them."""
    print(f"extract: {why}; extracting them again", file=sys.stderr)
    (d / "manifest.json").unlink(missing_ok=True)  # first: a crash now leaves a partial entry, never a wrong one
    for f in files:
        (d / "videos" / f).unlink(missing_ok=True)


def _entry_is_current(d: Path, key: str, records: list[VideoRecord], sources: list[list[int]]) -> bool:
    """Whether a complete entry can be returned as it is. Not when its manifest is of an older
    format, lists skipped videos (so they are tried again: extracted if repaired since, else
    skipped again or, for a caller that did not ask to skip, an error), or when a video's size or mtime changed since it was extracted (those
    videos are forgotten, so the extraction redoes them)."""
    manifest = read_entry_json(d / "manifest.json", key=key)
    if manifest.get("format") != MANIFEST_FORMAT:
        print(f"extract: {d / 'manifest.json'} is of an older format; checking and rebuilding entry {key}",
              file=sys.stderr)
        (d / "manifest.json").unlink()
        return False
    try:
        seen = {v["video_id"]: v["source"] for v in manifest["videos"]}
        skipped = [s["video_id"] for s in manifest.get("skipped", [])]
    except (KeyError, TypeError):
        raise CacheError(f"{d / 'manifest.json'}: damaged (a video lacks its fields); {clean_hint(key)}") from None
    changed = [f"{r.video_id}.pt" for r, src in zip(records, sources) if r.video_id in seen and seen[r.video_id] != src]
    if changed:
        _forget(d, changed, f"{len(changed)} video(s) changed on disk since their features were extracted "
                            f"(size or modification time), e.g. {changed[0][:-3]}")
        return False
    if skipped:
        print(f"extract: entry {key} left out {len(skipped)} unreadable video(s) ({', '.join(skipped[:3])}"
              f"{', ...' if len(skipped) > 3 else ''}); trying them again", file=sys.stderr)
        (d / "manifest.json").unlink()
        return False
    return True


# --------------------------------------------------------------------------------------
# the command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        help="dataset folder, or a generated benchmark: ci, full, ci-seed1, ...")
    parser.add_argument("--layout", default="ucf101", choices=LAYOUTS)
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--subset", default="both", choices=("train", "test", "both"))
    parser.add_argument("--backbone", required=True, choices=sorted(B.SPECS))
    parser.add_argument("--layer", required=True, help="layer2, layer4_map, conv5_2_map, pool, ... (see backbones.py)")
    parser.add_argument("--sampling", required=True, choices=list(SAMPLINGS))
    parser.add_argument("--crops", default="center", choices=list(CROPS))
    parser.add_argument("--modality", default="rgb", choices=B.MODALITIES)
    parser.add_argument("--mode", default="ci", choices=("ci", "full"))
    parser.add_argument("--weights", default="auto",
                        help="full: an enum member (DEFAULT, IMAGENET1K_V1, ...); ci: ci; "
                             "none: seeded random weights (tests only); default auto = ci or DEFAULT")
    parser.add_argument("--flow-method", default="tvl1", choices=("tvl1", "dis", "farneback"))
    parser.add_argument("--flow-length", type=int, default=10, help="flow fields stacked per frame (2D backbones)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes that decode")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--skip-errors", action="store_true", help="leave unreadable videos out (listed at the end)")
    parser.add_argument("--storage", default="float32", choices=list(STORAGES),
                        help="the dtype stored on disk (float16: half the bytes; loaded as float32)")


def main(args: argparse.Namespace) -> int:
    subsets = ("train", "test") if args.subset == "both" else (args.subset,)
    for subset in subsets:
        try:
            fs = extract_features(
                dataset=args.dataset, layout=args.layout, split=args.split, subset=subset,
                backbone=args.backbone, layer=args.layer, sampling=args.sampling, crops=args.crops,
                modality=args.modality, mode=args.mode, weights=None if args.weights == "none" else args.weights,
                flow_method=args.flow_method,
                flow_length=args.flow_length, batch_size=args.batch_size, num_workers=args.workers,
                skip_errors=args.skip_errors, device=args.device, storage=args.storage,
            )
        except (DatasetError, VideoDecodeError, CacheError, B.MissingWeightsError, ValueError) as e:
            print(f"extract: {e}", file=sys.stderr)
            return 1
        shape = tuple(fs.features[0].shape) if len(fs) else ()
        print(f"{fs.key}  {subset}: {len(fs)} videos, first {shape}"
              + (f", {len(fs.skipped)} skipped" if fs.skipped else ""))
    return 0
