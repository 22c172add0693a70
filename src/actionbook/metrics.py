"""How the four papers score a model, and how they combine two or more models.

Every function takes class scores as a float tensor `(N, C)` (N samples, C classes) and
targets as an int tensor `(N,)` (single-label) or a 0/1 tensor `(N, C)` (multi-label), and
returns plain Python numbers or CPU tensors. Nothing here trains anything.

Clip level and video level
--------------------------
The papers train on clips (or segments) and test on videos: the scores of all clips (or
crops, or test groups) of one video are combined into one video score, then arg-maxed.

- Res-LSTM (000) and MRRN (001): average the *softmax* scores of the clips
  (MRRN: "we fuse all predictions of clips belonged to one video by averaging their softmax
  scores").
- Relational LSTM (003): averages the scores of its 20 test examples (4 groups x 5 crops);
  on Charades it takes the *max* of the clip logits before softmax.
- Iqbal et al. (004): average the output probabilities of the M sub-sequences.

`video_scores(scores, video_index, reduce="mean" | "max")` does this for any of them.

Accuracy
--------
Top-k accuracy counts a sample as right when its true class is among the k highest scores
(top-1: the arg-max). With fewer than k classes, top-k is 1 by definition here (k is
clipped to C). Mean class accuracy averages the per-class accuracies (recall of each class)
over the classes that have at least one sample, so that large classes do not dominate.

Mean average precision (multi-label, Charades)
----------------------------------------------
See `average_precision`: the same definition as the official Charades evaluation script
(`Charades_v1_classify.m`, adapted from THUMOS'15).

Fusion of streams or models
---------------------------
See `fuse`. The papers differ in *where* the scores are combined:

| paper | what is fused | how |
| --- | --- | --- |
| Res-LSTM (000, Sec. 3.2, Table 2) | softmax scores of the RGB and flow Res-LSTMs (late fusion) | sum, product, or weighted sum 1.5 flow : 1 RGB (TSN's weights) |
| MRRN (001, Eq. 10) | softmax scores of the high/mid/low-level models | weighted sum 0.7 / 0.2 / 0.1 |
| Relational LSTM (003, Sec. 5.2) | scores of the spatial and temporal streams *before* softmax | weighted average (about 0.5 each; 0.45/0.55 UCF-101, 0.33/0.67 HMDB-51) |

The Res-LSTM's *mid* fusion combines features before the recurrent network; that is part of
the model (`actionbook.models`), not a score fusion.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "topk_accuracy", "accuracy", "video_scores", "video_targets", "per_class_accuracy",
    "mean_class_accuracy", "category_accuracy", "confusion_matrix", "category_order",
    "category_blocks", "reorder_matrix", "average_precision", "per_class_average_precision",
    "mean_average_precision", "fuse",
]


# --------------------------------------------------------------------------- checks

def _scores(scores: Tensor, name: str = "scores") -> Tensor:
    scores = torch.as_tensor(scores)
    if scores.ndim != 2:
        raise ValueError(f"{name} must be a (N, C) tensor of class scores, got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        scores = scores.float()
    if torch.isnan(scores).any():
        raise ValueError(f"{name} contains NaN: check the model's outputs (a diverged training?)")
    return scores.detach().cpu()


def _labels(target: Tensor, n: int, num_classes: int | None = None) -> Tensor:
    target = torch.as_tensor(target).detach().cpu()
    if target.ndim != 1 or target.shape[0] != n:
        raise ValueError(f"targets must be an int tensor of shape ({n},), got shape {tuple(target.shape)}")
    if target.is_floating_point():
        if not torch.equal(target, target.round()):
            raise ValueError("targets must be integer class indices; for multi-label targets use mAP")
        target = target.long()
    if n and (target.min() < 0 or (num_classes is not None and target.max() >= num_classes)):
        raise ValueError(f"targets must lie in [0, {num_classes}), got values in "
                         f"[{int(target.min())}, {int(target.max())}]")
    return target.long()


# --------------------------------------------------------------------------- accuracy

def topk_accuracy(scores: Tensor, target: Tensor, *, k: int = 1) -> float:
    """Fraction of samples whose true class is among the `k` highest scores.

    `scores` (N, C), `target` (N,) class indices. Ties are broken by `torch.topk` (lowest
    index first on CPU). With `k >= C` every sample counts as right.
    """
    scores = _scores(scores)
    target = _labels(target, scores.shape[0], scores.shape[1])
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if scores.shape[0] == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (N, k)
    return (top == target[:, None]).any(dim=1).float().mean().item()


def accuracy(scores: Tensor, target: Tensor, *, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """`{"top1": ..., "top5": ...}` (one entry per k in `topk`)."""
    return {f"top{k}": topk_accuracy(scores, target, k=k) for k in topk}


# --------------------------------------------------------------------------- clips -> videos

def video_scores(scores: Tensor, video_index: Tensor, *, reduce: str = "mean") -> tuple[Tensor, Tensor]:
    """Combine the scores of all clips of each video into one row per video.

    scores:      (N, C) one row per clip (or crop, segment group, sub-sequence).
    video_index: (N,) an int per row; rows with the same value belong to the same video.
    reduce:      "mean" (average; the papers average softmax scores) or "max" (element-wise
                 maximum; Relational LSTM on Charades, over logits).

    Returns `(videos, agg)`: `videos` (V,) the distinct video indices in increasing order
    and `agg` (V, C) their combined scores (row v belongs to video `videos[v]`).
    Pass softmax probabilities to average probabilities, logits to average logits.
    """
    scores = _scores(scores)
    video_index = torch.as_tensor(video_index).detach().cpu().long()
    if video_index.shape != (scores.shape[0],):
        raise ValueError(f"video_index must have shape ({scores.shape[0]},) like the scores' rows, "
                         f"got {tuple(video_index.shape)}")
    videos, inverse = torch.unique(video_index, sorted=True, return_inverse=True)  # (V,), (N,)
    V, C = len(videos), scores.shape[1]
    if reduce == "mean":
        total = torch.zeros(V, C, dtype=scores.dtype).index_add_(0, inverse, scores)  # (V, C)
        count = torch.zeros(V, dtype=scores.dtype).index_add_(0, inverse, torch.ones_like(inverse, dtype=scores.dtype))
        return videos, total / count[:, None]
    if reduce == "max":
        agg = torch.full((V, C), float("-inf"), dtype=scores.dtype)
        agg.scatter_reduce_(0, inverse[:, None].expand(-1, C), scores, reduce="amax")  # (V, C)
        return videos, agg
    raise ValueError(f"unknown reduce {reduce!r}: choose 'mean' or 'max'")


def video_targets(target: Tensor, video_index: Tensor) -> Tensor:
    """One target per video (in the order of `video_scores`' `videos`), checking that all
    clips of a video carry the same target. `target` is (N,) or multi-hot (N, C)."""
    target = torch.as_tensor(target).detach().cpu()
    video_index = torch.as_tensor(video_index).detach().cpu().long()
    if target.shape[0] != video_index.shape[0]:
        raise ValueError(f"{target.shape[0]} targets but {video_index.shape[0]} video indices")
    videos, inverse = torch.unique(video_index, sorted=True, return_inverse=True)
    rows = torch.arange(len(inverse))
    first = torch.full((len(videos),), len(inverse), dtype=torch.long)
    first.scatter_reduce_(0, inverse, rows, reduce="amin")  # (V,) the first row of every video
    out = target[first]  # (V,) or (V, C)
    same = (target == out[inverse]) if target.ndim == 1 else (target == out[inverse]).all(dim=1)
    if not bool(same.all()):
        bad = int(video_index[~same][0])
        raise ValueError(f"video {bad} has clips with different targets: every clip of a video "
                         "must carry the video's label (check the dataset's items)")
    return out


# --------------------------------------------------------------------------- per class / category

def per_class_accuracy(pred: Tensor, target: Tensor, *, num_classes: int) -> Tensor:
    """(C,) accuracy (recall) of each class: right predictions among the samples of that
    class. NaN for a class with no samples. `pred` and `target` are (N,) class indices."""
    target = _labels(target, len(target), num_classes)
    pred = _labels(pred, len(target), num_classes)
    hits = torch.zeros(num_classes).index_add_(0, target, (pred == target).float())
    count = torch.bincount(target, minlength=num_classes).float()
    return torch.where(count > 0, hits / count.clamp(min=1), torch.tensor(float("nan")))


def mean_class_accuracy(pred: Tensor, target: Tensor, *, num_classes: int) -> float:
    """Mean of `per_class_accuracy` over the classes that have at least one sample."""
    acc = per_class_accuracy(pred, target, num_classes=num_classes)
    return acc[~acc.isnan()].mean().item()


def category_accuracy(pred: Tensor, target: Tensor, *, categories: Sequence[str],
                      average: str = "samples") -> dict[str, float]:
    """Accuracy within each coarse category (Res-LSTM Table 3, after L2STM).

    categories: the category of each class, `categories[c]` for class c (length C).
    average:    "samples" — right predictions / samples whose true class is in the category
                (a prediction of any class counts: the class must be right, not only the
                category); "classes" — mean of the per-class accuracies of its classes.
    Returns `{category: accuracy}` in the order categories first appear; a category none of
    whose classes has a sample is NaN.
    """
    C = len(categories)
    target = _labels(target, len(target), C)
    pred = _labels(pred, len(target), C)
    names = list(dict.fromkeys(categories))
    cat = torch.tensor([names.index(c) for c in categories])  # (C,) category of each class
    out = {}
    if average == "samples":
        right = (pred == target).float()
        for i, name in enumerate(names):
            mask = cat[target] == i
            out[name] = right[mask].mean().item() if mask.any() else float("nan")
    elif average == "classes":
        acc = per_class_accuracy(pred, target, num_classes=C)
        for i, name in enumerate(names):
            a = acc[cat == i]
            a = a[~a.isnan()]
            out[name] = a.mean().item() if len(a) else float("nan")
    else:
        raise ValueError(f"unknown average {average!r}: choose 'samples' or 'classes'")
    return out


def confusion_matrix(pred: Tensor, target: Tensor, *, num_classes: int, normalize: bool = False) -> Tensor:
    """(C, C) confusion matrix: row = true class, column = predicted class.

    Counts (int64), or with `normalize=True` each row divided by its sum (float; the
    diagonal is then the per-class accuracy; a class with no samples keeps a row of zeros).
    """
    target = _labels(target, len(target), num_classes)
    pred = _labels(pred, len(target), num_classes)
    cm = torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    if not normalize:
        return cm
    cm = cm.double()
    return cm / cm.sum(dim=1, keepdim=True).clamp(min=1)


def category_order(categories: Sequence[str], *, order: Sequence[str] | None = None) -> list[int]:
    """The classes regrouped by coarse category, as the papers draw their confusion matrices
    (Res-LSTM Fig. 5): a list of class indices, those of the first category first, each group
    in its original class order. `order` fixes the category order (default: first
    appearance in `categories`)."""
    names = list(dict.fromkeys(categories)) if order is None else list(order)
    missing = set(categories) - set(names)
    if missing:
        raise ValueError(f"categories {sorted(missing)} are not in order={names}")
    return [c for name in names for c, cat in enumerate(categories) if cat == name]


def category_blocks(categories: Sequence[str], new_order: Sequence[int]) -> list[tuple[str, int, int]]:
    """`(category, start, stop)` for each run of one category in `new_order` (positions in
    the reordered matrix, stop exclusive): where to draw the lines and labels of a grouped
    confusion matrix."""
    blocks: list[tuple[str, int, int]] = []
    for pos, c in enumerate(new_order):
        if blocks and blocks[-1][0] == categories[c]:
            blocks[-1] = (blocks[-1][0], blocks[-1][1], pos + 1)
        else:
            blocks.append((categories[c], pos, pos + 1))
    return blocks


def reorder_matrix(cm: Tensor, new_order: Sequence[int]) -> Tensor:
    """Rows and columns of a (C, C) matrix permuted to `new_order` (see `category_order`)."""
    idx = torch.as_tensor(list(new_order), dtype=torch.long)
    return cm[idx][:, idx]


# --------------------------------------------------------------------------- mAP

def per_class_average_precision(scores: Tensor, target: Tensor) -> Tensor:
    """(C,) average precision of each class; NaN for a class with no positive sample.

    Definition (official Charades evaluation, `Charades_v1_classify.m`): for class c, rank
    the N samples by decreasing score; let `prec(i)` be the fraction of positives among the
    first i ranked samples. Then

        AP_c = (1 / P_c) * sum over positive samples of prec(rank of that sample),

    with P_c the number of positives (target 1) of class c. This is the mean of the
    precision at each positive, with no interpolation.

    Ties: equal scores keep their input order (a stable sort, as MATLAB's `sort` in the
    official script), so tied samples are ranked by their position in `scores`. A model
    that gives all samples the same score thus gets the AP of the input order.
    A sample with no positive class (an all-zero row; Charades has some) counts as a
    negative for every class.
    """
    scores = _scores(scores)
    target = torch.as_tensor(target).detach().cpu()
    if target.shape != scores.shape:
        raise ValueError(f"multi-label targets must have the scores' shape {tuple(scores.shape)}, "
                         f"got {tuple(target.shape)}")
    pos = target > 0.5                                                     # (N, C) bool
    order = torch.sort(scores, dim=0, descending=True, stable=True).indices  # (N, C)
    hit = torch.gather(pos, 0, order).double()                            # (N, C) 1 where rank i is positive
    rank = torch.arange(1, scores.shape[0] + 1, dtype=torch.float64)[:, None]
    precision = hit.cumsum(0) / rank                                      # (N, C) prec(i)
    n_pos = hit.sum(0)                                                    # (C,)
    ap = (precision * hit).sum(0) / n_pos                                 # NaN where n_pos == 0
    return ap.float()


def average_precision(scores: Tensor, target: Tensor) -> float:
    """AP of one class: `scores` (N,), `target` (N,) 0/1. See `per_class_average_precision`."""
    scores, target = torch.as_tensor(scores), torch.as_tensor(target)
    return per_class_average_precision(scores.reshape(-1, 1), target.reshape(-1, 1))[0].item()


def mean_average_precision(scores: Tensor, target: Tensor) -> float:
    """mAP: the mean of the per-class APs over the classes with at least one positive.

    (In the official script a class without positives would give 0/0; on the Charades test
    set every class has positives. Here such classes are left out of the mean.)
    """
    ap = per_class_average_precision(scores, target)
    ap = ap[~ap.isnan()]
    if len(ap) == 0:
        raise ValueError("no class has a positive sample: mAP is undefined")
    return ap.mean().item()


# --------------------------------------------------------------------------- fusion

def fuse(scores: Sequence[Tensor], *, how: str = "sum", weights: Sequence[float] | None = None,
         softmax: bool = True) -> Tensor:
    """Combine the class scores of two or more models (streams, levels) into one.

    scores:  a list of (N, C) tensors, one per model, rows in the same sample order.
    softmax: True — apply a softmax to each score set first, then fuse probabilities
             ("after softmax": Res-LSTM late fusion, MRRN Eq. 10). Pass logits.
             False — fuse the scores as given: either logits ("before softmax":
             Relational LSTM; e.g. `EvalResult.video_logits`, the averaged clip logits)
             or scores that are already probabilities (e.g. `EvalResult.video_scores`,
             the averaged softmax scores).
    how:     "sum"     — s_1 + s_2 + ... (element-wise; with `weights`, w_1 s_1 + w_2 s_2 + ...:
                         Res-LSTM's 1.5 flow : 1 RGB, MRRN's 0.7 / 0.2 / 0.1);
             "product" — s_1 * s_2 * ... (element-wise, Res-LSTM's best late fusion);
                         only on probabilities (a product of signed logits means nothing).
    Returns (N, C). The sum is not divided by the number of models: the arg-max is the same.
    """
    if len(scores) < 2:
        raise ValueError(f"fuse needs two or more score sets, got {len(scores)}")
    xs = [_scores(s, f"scores[{i}]") for i, s in enumerate(scores)]
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"all score sets must have the same shape, got {[tuple(x.shape) for x in xs]}")
    if softmax:
        xs = [x.softmax(dim=1) for x in xs]
    if weights is not None:
        if how != "sum":
            raise ValueError("weights go with how='sum' (a weighted sum)")
        if len(weights) != len(xs):
            raise ValueError(f"{len(weights)} weights for {len(xs)} score sets")
        xs = [w * x for w, x in zip(weights, xs)]
    if how == "sum":
        return torch.stack(xs).sum(0)
    if how == "product":
        if not softmax and any((x < 0).any() for x in xs):
            raise ValueError("how='product' needs probabilities: these scores have negative values "
                             "(logits?); pass softmax=True")
        return torch.stack(xs).prod(0)
    raise ValueError(f"unknown how {how!r}: choose 'sum' or 'product'")
