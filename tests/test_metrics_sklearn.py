"""The hand-written metrics of `actionbook.metrics` against scikit-learn's, on random data.

Continuous random scores have no ties, where the conventions differ on purpose (ours keep the
input order, as the official Charades script; scikit-learn pools tied thresholds)."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from actionbook import metrics as M

CASES = [(0, 60, 5), (1, 200, 12), (2, 37, 3)]  # (seed, samples, classes)


def _single_label(seed, n, c):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (n,), generator=g)
    target[0] = 0  # class 0 present; and leave the last class absent from the targets in one case
    if seed == 1:
        target[target == c - 1] = 0
    return scores, target


@pytest.mark.parametrize("seed,n,c", CASES)
def test_topk_accuracy_matches_sklearn(seed, n, c):
    scores, target = _single_label(seed, n, c)
    for k in (1, 2, c - 1):
        want = skm.top_k_accuracy_score(target.numpy(), scores.numpy(), k=k, labels=np.arange(c))
        assert M.topk_accuracy(scores, target, k=k) == pytest.approx(want)


@pytest.mark.parametrize("seed,n,c", CASES)
@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn warns about predicted classes absent from y_true
def test_per_class_mean_class_accuracy_and_confusion_match_sklearn(seed, n, c):
    scores, target = _single_label(seed, n, c)
    pred = scores.argmax(1)
    y, p, labels = target.numpy(), pred.numpy(), np.arange(c)
    ours = M.per_class_accuracy(pred, target, num_classes=c).numpy()
    recall = skm.recall_score(y, p, labels=labels, average=None, zero_division=np.nan)
    np.testing.assert_allclose(ours, recall, equal_nan=True)  # NaN for a class with no sample, both
    assert M.mean_class_accuracy(pred, target, num_classes=c) == pytest.approx(skm.balanced_accuracy_score(y, p))
    np.testing.assert_array_equal(M.confusion_matrix(pred, target, num_classes=c).numpy(),
                                  skm.confusion_matrix(y, p, labels=labels))
    np.testing.assert_allclose(M.confusion_matrix(pred, target, num_classes=c, normalize=True).numpy(),
                               np.nan_to_num(skm.confusion_matrix(y, p, labels=labels, normalize="true")))
    cats = ["a" if i % 2 else "b" for i in range(c)]
    for name, acc in M.category_accuracy(pred, target, categories=cats).items():
        mask = np.array([cats[t] == name for t in y])
        assert acc == pytest.approx(skm.accuracy_score(y[mask], p[mask]))


@pytest.mark.parametrize("seed,n,c", CASES)
def test_average_precision_matches_sklearn_without_ties(seed, n, c):
    g = torch.Generator().manual_seed(100 + seed)
    scores = torch.rand(n, c, generator=g, dtype=torch.float64)
    target = (torch.rand(n, c, generator=g) < 0.3).long()
    target[:, 0] = 0
    target[3, 0] = 1  # one positive only
    ours = M.per_class_average_precision(scores, target).double().numpy()
    want = [skm.average_precision_score(target[:, j].numpy(), scores[:, j].numpy()) for j in range(c)]
    np.testing.assert_allclose(ours, want, rtol=1e-6)
    assert M.mean_average_precision(scores, target) == pytest.approx(
        skm.average_precision_score(target.numpy(), scores.numpy(), average="macro"), rel=1e-6)
