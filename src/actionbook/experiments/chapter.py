"""What every chapter does, once: its dataset, preflight, seeds, runs, outcomes and claims.

A chapter module (`experiments/res_lstm.py`, `experiments/mrrn.py`, ...) composes these
pieces; it holds only its configs, its features, one function per table or figure, and its
claims. Nothing here knows which paper it serves.

    full_dataset(name)          the config fields of a full-mode dataset ("ucf101", "hmdb51", "charades", "generated")
    config_for(CONFIGS, mode)   a chapter's ci or full config, its full-mode dataset chosen by name
    categories(cfg, classes)    the coarse category of each class (one mapping for every layout)
    preflight(...)              stop before any work if the dataset or the backbone weights are missing
    seed_list(seeds)            3 -> [0, 1, 2]; a list stays a list
    threads(n)                  run a block with n torch CPU threads
    VideoFeatures               the one adapter from cached features to the engine's (x, y, video) items
    RunCache                    the one cache over `engine.fit` / `engine.evaluate`: checkpoints every
                                epoch and keeps each run's test result on disk, in both modes;
                                `RunCache.train_all` trains the missing runs of a table or an audit side by side
    claim_outcomes(...)         the outcomes of every condition a list of claims compares (its runs trained first)
    outcomes(...)               one row per (condition, seed, test video): was it right? (the audit's input)
    claims_table(...)           `actionbook.audit.audit` of a chapter's claims, saved as claims.csv

Naming rule across chapters: `run_tableN(...)` / `run_figN(...)` train (through the run
cache) and return a tidy frame, one row per configuration x seed; `tableN_vs_paper(...)`
formats such a frame beside the paper's numbers; `plot_figN(...)` draws it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from actionbook import engine
from actionbook.paths import cache_dir, data_dir
from actionbook.seed import seed_everything

__all__ = ["DATASETS", "full_dataset", "config_for", "preflight", "seed_list", "threads", "categories", "VideoFeatures", "RunCache",
           "outcomes", "claim_outcomes", "paper_diff", "claims_table"]

DATASETS = ("ucf101", "hmdb51", "charades", "generated")  # what `-p dataset` may name in full mode


# --------------------------------------------------------------------------- data config and preflight

def full_dataset(dataset: str) -> dict[str, str]:
    """The config fields for a full-mode dataset name: where it is, its layout and labels.

    "ucf101" (`data_dir()/ucf101`, the default of every chapter), "hmdb51"
    (`data_dir()/hmdb51`), "charades" (`data_dir()/charades`, multi-label: the Relational LSTM
    chapter's Table 8), or "generated" (the generated benchmark's `full` preset).
    """
    if dataset == "ucf101":
        return dict(dataset=str(data_dir() / "ucf101"), layout="ucf101",
                    dataset_label="UCF-101 split 1", paper_dataset="UCF-101")
    if dataset == "hmdb51":
        return dict(dataset=str(data_dir() / "hmdb51"), layout="hmdb51",
                    dataset_label="HMDB-51 split 1", paper_dataset="HMDB-51")
    if dataset == "charades":
        return dict(dataset=str(data_dir() / "charades"), layout="charades", dataset_label="Charades",
                    paper_dataset="Charades")
    if dataset == "generated":
        return dict(dataset="full", layout="ucf101", dataset_label="generated benchmark, full preset",
                    paper_dataset="UCF-101")
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def config_for(configs: dict[str, Any], mode: str, *, dataset: str = "ucf101", epochs: int | None = None,
               multilabel: bool = False) -> Any:
    """`configs[mode]`, with the full-mode dataset chosen by `dataset` (see `full_dataset`);
    ci always runs on the ci benchmark and ignores `dataset`. "charades" is multi-label: only a
    chapter that scores mAP passes `multilabel=True` (the Relational LSTM's Table 8); elsewhere
    it is refused here, before any work.

    `epochs` (a notebook parameter of every chapter page that trains) replaces the config's
    `epochs` when given: a quick look, or the full-mode smoke test, which shrinks full mode only
    through parameters a reader could pass too. None keeps the preset's schedule. A config
    whose schedule depends on the epochs (milestones, per-stream epochs) scales it in its
    chapter's `config`.
    """
    if mode not in configs:
        raise ValueError(f"mode must be one of {sorted(configs)}, got {mode!r}")
    cfg = configs[mode]
    if mode != "ci":
        fields = full_dataset(dataset)
        if fields["layout"] == "charades" and not multilabel:
            raise ValueError(f"dataset {dataset!r} is multi-label (mAP); this chapter's pages classify single-label "
                             f"videos: choose one of {[d for d in DATASETS if d != 'charades']}")
        cfg = dataclasses.replace(cfg, **fields)
    if epochs is not None:
        if int(epochs) < 1:
            raise ValueError(f"epochs must be >= 1 (or None for the preset's {cfg.epochs}), got {epochs!r}")
        cfg = dataclasses.replace(cfg, epochs=int(epochs))
    return cfg


def preflight(cfg: Any = None, *, mode: str | None = None, dataset: str | None = None, layout: str | None = None,
              backbone: str | None = None, split: int | None = None, keep_odd_times: bool = False) -> dict[str, object]:
    """Check, before any work, that the dataset and the backbone weights are there.

    Pass a chapter config (any object with mode, dataset, layout, backbone and split) or the
    five fields. Raises the readers' `DatasetError` (naming the missing folder or split file
    and the layout `data/README.md` expects) or the backbones' `MissingWeightsError` (naming
    the weights file, where to put it and where to fetch it). In full mode both are checked
    before the generated `full` preset would be generated (on first use, a long job).
    `keep_odd_times` (Charades) reads the split files as the chapter will
    (`datasets.read_records`). Returns what was found.
    """
    from actionbook.data.readers import DatasetError
    from actionbook.features import backbones as B
    from actionbook.data.datasets import read_records, resolve_dataset

    if cfg is not None:
        mode, dataset, layout, backbone, split = cfg.mode, cfg.dataset, cfg.layout, cfg.backbone, cfg.split
    if mode == "full":
        if dataset != "full" and not Path(dataset).is_dir():
            raise DatasetError(f"{dataset}: the {layout} dataset is not there. Put it in that folder "
                               f"in the layout of data/README.md (or set ACTIONBOOK_DATA), or run with "
                               f"`-p dataset generated` to use the generated benchmark's full preset")
        w = B.spec(backbone).weights.DEFAULT
        if not B.weights_path(w).is_file():
            B.load_weights(w)  # raises MissingWeightsError with the file name, URL and folder
    ds = resolve_dataset(dataset, layout=layout)
    train, classes = read_records(ds, split=split, subset="train", keep_odd_times=keep_odd_times)
    test, _ = read_records(ds, split=split, subset="test", keep_odd_times=keep_odd_times)
    return {"root": str(ds.root), "train videos": len(train), "test videos": len(test), "classes": len(classes)}


def categories(cfg: Any, classes: Sequence[str]) -> list[str] | None:
    """The coarse category of each class (`actionbook.categories.class_categories`): the generated
    benchmark's five (ci, the generated `full` preset), UCF-101's five action types, HMDB-51's
    five groups; None for Charades (157 classes, no coarse grouping in the book)."""
    from actionbook.categories import class_categories

    if cfg.layout == "charades" and cfg.dataset not in ("ci", "full"):
        return None
    layout = "generated" if cfg.dataset in ("ci", "full") else cfg.layout
    return list(class_categories(list(classes), layout=layout))


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """`3` -> [0, 1, 2]; a sequence of seeds -> the same seeds as a list of ints."""
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch CPU threads (None: leave the setting alone)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------- the adapter

class VideoFeatures(torch.utils.data.Dataset):
    """Cached features as the engine's items `(x, y, video_index)`: the one adapter of every chapter.

    inputs:  a list with one entry per model input, each a per-video sequence of tensors (a
             FeatureSet's `features`, a stacked (N, T, D) tensor, ...); with several inputs x is
             a tuple and the model is called as `model(*x)` (Res-LSTM's mid fusion of RGB and flow).
    labels:  one class index per video.
    clips:   None: one item per video, the whole tensor (e.g. T clips chosen by σ(t)).
             Else one (K_v, L) row index per video: one item per clip, the L rows it names
             (MRRN's clip-level training on overlapping 30-frame clips).
    train:   where a video's tensor has a crop axis (rows, crops, D), an item takes one crop
             at random (the same for all its rows) when training, the centre crop
             (`CENTRE`, ten_crop's order) when testing.
    """

    CENTRE = 4  # ten_crop's order: 4 corners, centre, then the same mirrored

    def __init__(self, inputs: Sequence[Sequence[Tensor]], labels: Sequence[Any], *,
                 clips: Sequence[Tensor | None] | None = None, train: bool = False) -> None:
        if not inputs:
            raise ValueError("VideoFeatures: give at least one input (a sequence of per-video tensors)")
        self.inputs = [list(x) for x in inputs]
        self.several, self.train = len(self.inputs) > 1, train
        n = len(self.inputs[0])
        if any(len(x) != n for x in self.inputs) or len(labels) != n:
            raise ValueError(f"VideoFeatures: {[len(x) for x in self.inputs]} videos per input but "
                             f"{len(labels)} labels; give one tensor per video and one label per video")
        self.labels = [torch.as_tensor(y).long() for y in labels]
        if clips is None:
            self.items = [(v, None) for v in range(n)]
        else:
            if any(ix is None for ix in clips):
                raise ValueError("VideoFeatures: a video has no clip index; extract with sampling='mrrn'")
            self.clips = list(clips)
            self.items = [(v, k) for v, ix in enumerate(self.clips) for k in range(len(ix))]  # (video, clip)

    @classmethod
    def of(cls, *sets: Any, train: bool, clips: bool = False) -> VideoFeatures:
        """From FeatureSets (one per model input, the same videos in the same order)."""
        return cls([fs.features for fs in sets], sets[0].targets(), train=train,
                   clips=sets[0].index if clips else None)

    def __len__(self) -> int:
        return len(self.items)

    def _one(self, x: Tensor, v: int, k: int | None, crop: int | None) -> Tensor:
        if k is not None:
            x = x[self.clips[v][k]]                    # (L, D) or (L, crops, D)
        if x.ndim == 3 and crop is not None:
            x = x[:, crop]                             # (L, D)
        return x

    def __getitem__(self, i: int) -> tuple[Any, Tensor, int]:
        v, k = self.items[i]
        x0 = self.inputs[0][v]
        crop = None
        if x0.ndim == 3:  # a crop axis: one random crop per item in training, the centre in testing
            crop = int(torch.randint(x0.shape[1], ())) if self.train else self.CENTRE
        xs = tuple(self._one(inp[v], v, k, crop) for inp in self.inputs)
        return (xs if self.several else xs[0]), self.labels[v], v


# --------------------------------------------------------------------------- the run cache

def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


class RunCache:
    """Trains one model per key through `engine.fit`, evaluates it once, and remembers the result.

    Every run has a folder `cache_dir()/runs/<chapter>/<hash>/` (the hash covers the key, the
    training config and `identity`: the features' `FeatureSet.identity()`, i.e. their cache
    entries' keys and contents, and the model's extra settings). fit
    writes a checkpoint there after every epoch, so a killed run resumes where it stopped; the
    test result (`engine.EvalResult`) and the training time are written beside it
    (atomically), so a page run twice, or two pages sharing a run, train it once. In memory,
    results are kept per key. Same key, same numbers: the initial weights depend on the seed
    only (`seed_everything(seed)` before the model is built).

    `version` names the chapter's model code: bump it when a change in a model or in a
    chapter's data preparation changes the numbers, so that old results are not reused.
    `cache=False` keeps results in memory only (tests of fabricated data).
    """

    def __init__(self, chapter: str, *, version: str = "1", threads: int | None = None, progress: bool = False,
                 eval_batch_size: int = 256, device: str = "auto", cache: bool = True, workers: int = 1) -> None:
        self.chapter, self.version, self.threads, self.progress = chapter, version, threads, progress
        self.eval_batch_size, self.device, self.cache, self.workers = eval_batch_size, device, cache, workers
        if workers > 1 and threads is None:  # a worker cannot use "torch's default": it would differ from here
            raise ValueError(f"RunCache({chapter!r}): workers={workers} needs a fixed thread count per run "
                             "(threads=1, say), so that a run gives the same numbers in any process")
        self.results: dict[Hashable, engine.EvalResult] = {}
        self.seconds: dict[Hashable, float] = {}
        self._probing = False  # `train_all`'s probe: `get` reports a missing run instead of training it
        self._only: Path | None = None  # `train_all`'s job: `get` trains this run only, reports any other missing one

    def folder(self, key: Hashable, train: engine.TrainConfig, identity: dict[str, Any]) -> Path:
        """The run's folder: a hash of the chapter, version, key, training config and identity."""
        blob = json.dumps({"chapter": self.chapter, "version": self.version, "key": _plain(key),
                           "train": _plain(train), "identity": identity}, sort_keys=True, default=str)
        return cache_dir() / "runs" / self.chapter / hashlib.sha256(blob.encode()).hexdigest()[:16]

    def get(self, key: Hashable, *, model: Callable[[], nn.Module],
            data: Callable[[], tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]],
            train: engine.TrainConfig, identity: dict[str, Any], seed: int) -> engine.EvalResult:
        """The test result of run `key`: from memory, from disk, or trained now.

        model: builds the untrained model (called after `seed_everything(seed)`);
        data:  returns (train, test) datasets of `(x, y, video_index)` items.
        The test set is evaluated as `train` says: multi-hot targets and mAP with
        `train.multilabel`, the items of one `video_index` combined by `train.video_reduce`.
        """
        if key in self.results:
            return self.results[key]
        folder = self.folder(key, train, identity) if self.cache else None
        done = folder / "result.pt" if folder is not None else None
        if done is not None and done.is_file():
            try:
                saved = torch.load(done, map_location="cpu", weights_only=False)
                self.results[key], self.seconds[key] = engine.EvalResult(**saved["result"]), saved["seconds"]
                return self.results[key]
            except Exception:  # noqa: BLE001 - an unreadable result is trained again
                done.unlink(missing_ok=True)
        if self._probing or (self._only is not None and folder != self._only):
            raise _NotTrained(folder)
        with threads(self.threads):  # all of a run on the same threads, whichever process trains it
            train_ds, test_ds = data()
            seed_everything(seed)  # the initial weights depend on the seed only
            net = model()
            t0 = time.perf_counter()
            engine.fit(net, train_ds, None, train, ckpt_dir=folder, progress=self.progress)
            seconds = time.perf_counter() - t0
            result = engine.evaluate(net, test_ds, batch_size=self.eval_batch_size, device=self.device,
                                     multilabel=train.multilabel, reduce=train.video_reduce)
        if done is not None:
            from actionbook.io import atomic_write

            with atomic_write(done, "wb") as f:
                torch.save({"result": dataclasses.asdict(result), "seconds": seconds}, f)
        self.results[key], self.seconds[key] = result, seconds
        return result

    def train_all(self, get: Callable[[Any], Any], keys: Sequence[Any]) -> None:
        """Make sure every run that `get(key)` needs is trained, `workers` runs at a time.

        `get` is the chapter's way from a key to its result (`Runs.get`, `Runs.row`, a claim's
        condition and seed -> its fused scores, ...); the keys are a table's. A probe asks `get`
        for each key without training: the results already on disk are read, and the first run
        each key still misses is listed (once, by run folder). With `workers` > 1, those runs are
        trained in `workers` forked processes that take the next one as they finish one (POSIX
        `fork`: the features this process holds are shared with them, not copied or re-read);
        each process trains only the run it took. A key that needs several runs (a two-stream
        fusion: the RGB run, then the flow run) shows its next missing run at the next probe, so
        the probe repeats until nothing new is missing: the RGB runs of a table are trained side
        by side, then its flow runs, and no run is trained by two processes at once. A lone
        missing run is trained here. Each process trains on the cache's `threads` (one in ci),
        as a run trained here would, and writes the run's checkpoints and result to its folder,
        so a run gives the same numbers whichever process trains it and however many there are.
        Last, `get(key)` here, for every key: it reads what the workers wrote, and trains
        whatever they did not finish (a failed run fails here, with its own error). An
        interrupted page stops its workers; their runs resume from their last checkpoint, as
        any run does.

        With one worker, results kept in memory only (`cache=False`), or no `fork` on this
        system, it is `get(key)` for every key in turn.
        """
        keys = list(keys)
        if self.workers > 1 and self.cache and hasattr(os, "fork"):
            asked: set[Path] = set()  # a run asked for once and still missing (it failed) is left to the last pass
            while True:
                jobs = [(folder, key) for folder, key in self._missing(get, keys).items() if folder not in asked]
                if not jobs:
                    break
                asked.update(folder for folder, _ in jobs)
                if len(jobs) == 1:
                    self._train_one(get, *jobs[0])
                else:
                    _train_in_workers(self, get, jobs, workers=self.workers, threads=int(self.threads or 1))
        for key in keys:
            get(key)

    def _missing(self, get: Callable[[Any], Any], keys: Sequence[Any]) -> dict[Path, Any]:
        """The first run each key still needs (its folder -> the first key that needs it); trains nothing."""
        missing: dict[Path, Any] = {}
        self._probing = True
        try:
            for key in keys:
                try:
                    get(key)
                except _NotTrained as e:
                    missing.setdefault(e.folder, key)
        finally:
            self._probing = False
        return missing

    def _train_one(self, get: Callable[[Any], Any], folder: Path, key: Any) -> None:
        """`get(key)`, training the run in `folder` and no other (`train_all`'s next probe finds the key's next run)."""
        self._only = folder
        try:
            get(key)
        except _NotTrained:
            pass  # the key needs another run after this one
        finally:
            self._only = None


class _NotTrained(Exception):
    """`RunCache.get` while probing: the run in `folder` is neither in memory nor on disk."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.folder = folder


def _train_worker(cache: RunCache, get: Callable[[Any], Any], jobs: list[tuple[Path, Any]], taken: Any,
                  threads_: int) -> None:
    torch.set_num_threads(threads_)  # before any work: the parent's OpenMP threads do not exist here
    while True:
        with taken.get_lock():
            i = taken.value
            taken.value += 1
        if i >= len(jobs):
            return
        try:
            cache._train_one(get, *jobs[i])  # trains the job's run and saves it
        except Exception:  # noqa: BLE001 - left for the page's own process, which shows its error
            continue


def _train_in_workers(cache: RunCache, get: Callable[[Any], Any], jobs: list[tuple[Path, Any]], *, workers: int,
                      threads: int) -> None:
    """Every job's run (`cache._train_one`) in `workers` forked processes, each taking the next job."""
    ctx = multiprocessing.get_context("fork")
    taken = ctx.Value("i", 0)
    procs = [ctx.Process(target=_train_worker, args=(cache, get, jobs, taken, threads), daemon=True)
             for _ in range(min(workers, len(jobs)))]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:  # interrupted (or failed to start one): no worker outlives the page
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()


# --------------------------------------------------------------------------- outcomes and claims

def outcomes(condition: str, seed: int, scores: Tensor, targets: Tensor, *,
             video_ids: Sequence[Any] | None = None, categories: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per test video: `condition, seed, video, correct` (0/1), and `category` when the
    classes' categories are given. The claims audit's input (`actionbook.audit.audit`)."""
    pred = scores.argmax(1)
    ids = list(video_ids) if video_ids is not None else list(range(len(targets)))
    out = pd.DataFrame({"condition": condition, "seed": int(seed), "video": ids,
                        "correct": (pred == targets).long().tolist()})
    if categories is not None:
        out["category"] = [categories[int(t)] for t in targets]
    return out


def claim_outcomes(claims: Sequence[Any], scores: dict[str, Callable[[int], Tensor]], targets: Tensor, *,
                   seeds: int | Sequence[int], video_ids: Sequence[Any] | None = None,
                   categories: Sequence[str] | None = None, cache: RunCache | None = None) -> pd.DataFrame:
    """`outcomes` of every condition the claims compare (`scores[name](seed)` -> (V, C)), for every seed.

    cache: the chapter's `RunCache`: the runs the conditions need are trained first, `workers`
           at a time (`RunCache.train_all`), not one after another as the scores ask for them."""
    named = sorted({c for cl in claims for c in (cl.better, cl.worse)})
    missing = [n for n in named if n not in scores]
    if missing:
        raise KeyError(f"the claims compare conditions the chapter does not compute: {missing}")
    if cache is not None:
        cache.train_all(lambda job: scores[job[0]](job[1]), [(name, s) for name in named for s in seed_list(seeds)])
    return pd.concat([outcomes(name, s, scores[name](s), targets, video_ids=video_ids, categories=categories)
                      for name in named for s in seed_list(seeds)], ignore_index=True)


def paper_diff(a: float, b: float) -> float:
    """The paper's effect a - b in points, at the paper's precision (two decimals at most)."""
    return round(float(a) - float(b), 2)


def claims_table(claims: Sequence[Any], outcome_frames: Sequence[pd.DataFrame] | pd.DataFrame, *, mode: str,
                 chapter: str, config: Any, seeds: Sequence[int]) -> pd.DataFrame:
    """Audit the chapter's claims (`actionbook.audit.audit`) and save `results/<mode>/<chapter>/claims.csv`."""
    from actionbook import audit, results

    frame = outcome_frames if isinstance(outcome_frames, pd.DataFrame) else pd.concat(outcome_frames,
                                                                                       ignore_index=True)
    table = audit.audit(list(claims), frame)
    results.save(table, mode=mode, chapter=chapter, experiment="claims", seed=list(seeds), config=config)
    return table
