"""The book's figures that more than one chapter draws.

    topk_examples(scores, targets, ...)   the most confidently right and wrong test videos, top-k each
    topk_panel(examples, ...)             their top-k scores as bars (a frame of each video above, if given)
    confusion(scores, targets, ...)       the row-normalised confusion matrix (%), classes grouped by category
    confusion_matrix(cm, blocks, ...)     draws it, each category's block outlined and named
    frame_grid, image_grid                frames of videos / still images in a grid (from `data.generate`)

Every function takes plain tensors and frames, so every chapter draws the same figure the
same way: Res-LSTM's Figs. 4-5 and MRRN's Figs. 3 and 5 are `topk_panel` and
`confusion_matrix` of their final model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from actionbook import metrics
from actionbook.data.generate import frame_grid, image_grid

__all__ = ["topk_examples", "topk_panel", "confusion", "confusion_matrix", "frame_grid", "image_grid"]


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
