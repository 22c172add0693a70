"""The book's figures that more than one chapter draws.

    topk_examples(scores, targets, ...)   the most confidently right and wrong test videos, top-k each
    topk_panel(examples, ...)             their top-k scores as bars (a frame of each video above, if given)
    confusion(scores, targets, ...)       the row-normalised confusion matrix (%), classes grouped by category
    confusion_matrix(cm, blocks, ...)     draws it, each category's block outlined and named
    frame_grid(videos, ...)               evenly spaced frames of videos, one row per video
    image_grid(images, ...)               still images in a grid, with titles
    fixed_jitter(seed)                    a `with` block in which seaborn's random jitter is the same every run

Every function takes plain tensors and frames, so every chapter draws the same figure the
same way: Res-LSTM's Figs. 4-5 and MRRN's Figs. 3 and 5 are `topk_panel` and
`confusion_matrix` of their final model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from actionbook import metrics

__all__ = ["topk_examples", "topk_panel", "confusion", "confusion_matrix", "frame_grid", "image_grid",
           "fixed_jitter"]


def topk_examples(scores: Tensor, targets: Tensor, *, classes: Sequence[str], video_ids: Sequence[Any] | None = None,
                  k: int = 5, right: int = 4, wrong: int = 4) -> pd.DataFrame:
    """The `right` most confidently right and the `wrong` most confidently wrong test videos,
    each with its top-k classes. Rows: video (index into the scores), video_id, kind ("right" /
    "wrong"), truth, rank (1..k), class, score, is_truth."""
    conf, pred = scores.max(1)
    ok = pred == targets
    ids = list(video_ids) if video_ids is not None else list(range(len(targets)))
    rows = []
    for kind, mask, n in (("right", ok, right), ("wrong", ~ok, wrong)):
        idx = torch.nonzero(mask).flatten()
        idx = idx[conf[idx].argsort(descending=True, stable=True)][:n]
        for v in idx.tolist():
            top = scores[v].topk(min(k, scores.shape[1]))
            for r, (s, c) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
                rows.append({"video": v, "video_id": ids[v], "kind": kind, "truth": classes[int(targets[v])],
                             "rank": r, "class": classes[c], "score": s, "is_truth": c == int(targets[v])})
    return pd.DataFrame(rows, columns=["video", "video_id", "kind", "truth", "rank", "class", "score", "is_truth"])


def topk_panel(examples: pd.DataFrame, *, frames: Mapping[int, np.ndarray] | None = None, cols: int = 4):
    """One panel per video of `topk_examples`: its top-k scores as bars, the true class blue, a
    right top-1 green, a wrong top-1 red (the papers' key); with `frames` (video -> an (H, W, 3)
    image) the frame is drawn above its bars."""
    import matplotlib.pyplot as plt

    videos = list(dict.fromkeys(examples["video"]))
    rows = max(1, math.ceil(len(videos) / cols))
    per = 2 if frames is not None else 1
    fig, axes = plt.subplots(per * rows, cols, figsize=(3.0 * cols, (4.2 if frames is not None else 2.2) * rows),
                             gridspec_kw={"height_ratios": ([1.2, 1] if frames is not None else [1]) * rows},
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    top = max(1e-9, float(examples["score"].max()))
    for i, v in enumerate(videos):
        r, c = divmod(i, cols)
        ex = examples[examples["video"] == v].sort_values("rank")
        truth, kind = ex["truth"].iloc[0], ex["kind"].iloc[0]
        bar = axes[per * r + per - 1, c]
        title = f"{ex['video_id'].iloc[0]}\n(true: {truth}, {kind})"
        if frames is not None:
            axes[per * r, c].imshow(frames[v])
            axes[per * r, c].set_title(title, fontsize=8)
        else:
            bar.set_title(title, fontsize=8)
        colors = ["tab:blue" if t and j > 0 else "tab:green" if t else "tab:red" if j == 0 else "tab:gray"
                  for j, t in enumerate(ex["is_truth"])]
        bar.axis("on")
        bar.barh(range(len(ex)), ex["score"], color=colors)
        bar.set_yticks(range(len(ex)), list(ex["class"]), fontsize=8)
        bar.invert_yaxis()
        bar.set_xlim(0, 1.05 * top)  # the same scale in every panel
        bar.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def confusion(scores: Tensor, targets: Tensor, *, classes: Sequence[str],
              categories: Sequence[str] | None) -> tuple[pd.DataFrame, list[tuple[str, int, int]]]:
    """The row-normalised confusion matrix in % (rows: true class, columns: predicted), the
    classes grouped by coarse category (`metrics.category_order`; the original order when there
    are no categories), and the category blocks (name, start, stop) to outline."""
    n = len(classes)
    cm = metrics.confusion_matrix(scores.argmax(1), targets, num_classes=n, normalize=True) * 100
    order = metrics.category_order(categories) if categories is not None else list(range(n))
    names = [classes[i] for i in order]
    blocks = metrics.category_blocks(categories, order) if categories is not None else []
    return pd.DataFrame(metrics.reorder_matrix(cm, order).numpy(), index=names, columns=names), blocks


def confusion_matrix(cm: pd.DataFrame, blocks: Sequence[tuple[str, int, int]], *, title: str = ""):
    """Draw `confusion`'s matrix with a line and a label around each category's block."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    n = len(cm)
    size = min(12.0, 2.5 + 0.22 * n)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    sns.heatmap(cm, ax=ax, cmap="Blues", vmin=0, vmax=100, square=True, xticklabels=n <= 60,
                yticklabels=n <= 60, cbar_kws={"label": "% of the true class's videos", "shrink": 0.7})
    for name, a, b in blocks:
        ax.add_patch(plt.Rectangle((a, a), b - a, b - a, fill=False, lw=1.5, ec="tab:red"))
        ax.text((a + b) / 2, -0.4, name, ha="center", va="bottom", fontsize=8, color="tab:red")
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, pad=18 if blocks else 6)
    fig.tight_layout()
    return fig


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), first and last included."""
    return [int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)]


def frame_grid(videos: Sequence[Path], *, labels: Sequence[str] | None = None, frames: int = 6,
               span: tuple[float, float] = (0.0, 1.0), height: float = 1.1):
    """A figure with one row per video and `frames` evenly spaced frames per row, taken
    from the fraction `span` of each video (e.g. (0, 0.2) for its first fifth). Each
    frame is marked with its index. The frames are tiled into one image (one axes), which
    keeps large grids fast to draw."""
    import matplotlib.pyplot as plt

    from actionbook.data.video import read_video

    gap = 2  # white pixels between tiles
    rows, marks = [], []
    for r, path in enumerate(videos):
        clip = read_video(Path(path)).numpy()  # (T, H, W, 3)
        n = len(clip)
        lo, hi = int(span[0] * (n - 1)), int(round(span[1] * (n - 1)))
        idx = [lo + i for i in evenly_spaced(hi - lo + 1, frames)]
        h, w = clip.shape[1:3]
        row = np.full((h, frames * (w + gap) - gap, 3), 255, dtype=np.uint8)
        for c, i in enumerate(idx):
            row[:, c * (w + gap): c * (w + gap) + w] = clip[i]
            marks.append((r, c, i))
        rows.append(row)
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    mosaic = np.concatenate(rows)[:-gap]  # (rows * (H + gap) - gap, width, 3)
    tile_h, tile_w = rows[0].shape[0], (width + gap) // frames
    fig, ax = plt.subplots(figsize=(frames * height * 1.05 + (1.3 if labels is not None else 0),
                                    len(rows) * height * tile_h / tile_w + 0.1))
    ax.imshow(mosaic, interpolation="nearest")
    for r, c, i in marks:
        ax.text(c * tile_w + 1, r * tile_h + 1, f"{i}", fontsize=6, va="top", ha="left", color="white",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0})
    ax.set_xticks([])
    if labels is not None:
        ax.set_yticks([r * tile_h + (tile_h - gap) / 2 for r in range(len(rows))], labels, fontsize=7)
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    fig.tight_layout(pad=0.2)
    return fig


def image_grid(images: np.ndarray, *, titles: Sequence[str] | None = None, cols: int = 8, height: float = 1.1):
    """A grid of images (N, H, W, 3) uint8, e.g. from `static_images`, with optional titles."""
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * height, rows * (height + 0.15)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=7, pad=2)
    fig.tight_layout(pad=0.2)
    return fig


@contextlib.contextmanager
def fixed_jitter(seed: int = 0) -> Iterator[None]:
    """Inside the block NumPy's global generator starts from `seed`; after it, it is as before.

    seaborn's `stripplot` spreads its dots with `np.random.uniform` (the global generator, seaborn
    0.13), so without this a figure's dots move from one build to the next and its PNG differs.
    The state is restored afterwards so that what the notebook draws later is unchanged."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
