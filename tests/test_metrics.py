"""actionbook.metrics against examples worked out by hand."""

import math

import pytest
import torch

from actionbook import metrics as M

LN3 = math.log(3.0)


# --------------------------------------------------------------------------- accuracy

def test_topk_accuracy_by_hand():
    scores = torch.tensor([
        [0.1, 0.5, 0.2, 0.0, 0.0, 0.0, 0.3],  # true 1: top-1 right
        [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.0],  # true 6: last, not even in the top 5
        [0.2, 0.1, 0.6, 0.5, 0.4, 0.3, 0.0],  # true 4: 3rd -> top-5 only
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # true 2: 5th -> top-5 only
    ])
    target = torch.tensor([1, 6, 4, 2])
    assert M.topk_accuracy(scores, target, k=1) == pytest.approx(1 / 4)
    assert M.topk_accuracy(scores, target, k=3) == pytest.approx(2 / 4)
    assert M.accuracy(scores, target) == pytest.approx({"top1": 0.25, "top5": 0.75})


def test_topk_with_fewer_classes_than_k_counts_all():
    scores = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    assert M.topk_accuracy(scores, torch.tensor([0, 1]), k=5) == 1.0
    assert M.topk_accuracy(scores, torch.tensor([0, 1]), k=1) == 0.0


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        M.topk_accuracy(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must lie in"):
        M.topk_accuracy(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="NaN"):
        M.topk_accuracy(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))


# --------------------------------------------------------------------------- clips -> videos

def test_video_scores_mean_and_max_by_hand():
    scores = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.4, 0.6], [1.0, 0.0], [0.0, 1.0]])
    video = torch.tensor([7, 3, 7, 3, 5])
    ids, mean = M.video_scores(scores, video)
    assert ids.tolist() == [3, 5, 7]
    torch.testing.assert_close(mean, torch.tensor([[0.8, 0.2], [0.0, 1.0], [0.3, 0.7]]))
    ids, mx = M.video_scores(scores, video, reduce="max")
    torch.testing.assert_close(mx, torch.tensor([[1.0, 0.4], [0.0, 1.0], [0.4, 0.8]]))
    with pytest.raises(ValueError, match="reduce"):
        M.video_scores(scores, video, reduce="median")


def test_video_targets_checks_consistency():
    video = torch.tensor([4, 1, 4, 1])
    assert M.video_targets(torch.tensor([2, 0, 2, 0]), video).tolist() == [0, 2]
    multi = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]])
    assert M.video_targets(multi, video).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="video 4 has clips with different targets"):
        M.video_targets(torch.tensor([2, 0, 1, 0]), video)


# --------------------------------------------------------------------------- per class / category

def test_per_class_and_mean_class_accuracy():
    target = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    pred = torch.tensor([0, 0, 0, 1, 0, 2, 0])
    acc = M.per_class_accuracy(pred, target, num_classes=4)
    torch.testing.assert_close(acc[:3], torch.tensor([0.75, 0.0, 0.5]))
    assert math.isnan(acc[3])  # class 3 has no sample
    # mean over classes 0..2 only, unlike overall accuracy 4/7
    assert M.mean_class_accuracy(pred, target, num_classes=4) == pytest.approx((0.75 + 0 + 0.5) / 3)


def test_category_accuracy_samples_and_classes():
    categories = ["motion", "appearance", "motion"]
    target = torch.tensor([0, 0, 0, 2, 1, 1])
    pred = torch.tensor([0, 0, 2, 2, 1, 0])
    # motion: samples of classes 0 and 2 -> 3 right of 4; class-mean: (2/3 + 1) / 2
    assert M.category_accuracy(pred, target, categories=categories) == pytest.approx(
        {"motion": 0.75, "appearance": 0.5})
    assert M.category_accuracy(pred, target, categories=categories, average="classes") == pytest.approx(
        {"motion": (2 / 3 + 1) / 2, "appearance": 0.5})


def test_confusion_matrix_counts_and_normalised():
    pred = torch.tensor([0, 1, 1, 2, 2, 2])
    target = torch.tensor([0, 0, 1, 2, 2, 1])
    cm = M.confusion_matrix(pred, target, num_classes=4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    cmn = M.confusion_matrix(pred, target, num_classes=4, normalize=True)
    torch.testing.assert_close(cmn, torch.tensor(
        [[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 1.0, 0], [0, 0, 0, 0]], dtype=torch.float64))


def test_category_order_blocks_and_reorder():
    cats = ["motion", "appearance", "motion", "appearance", "order"]
    order = M.category_order(cats)
    assert order == [0, 2, 1, 3, 4]
    assert M.category_blocks(cats, order) == [("motion", 0, 2), ("appearance", 2, 4), ("order", 4, 5)]
    assert M.category_order(cats, order=["appearance", "order", "motion"]) == [1, 3, 4, 0, 2]
    with pytest.raises(ValueError, match="not in order"):
        M.category_order(cats, order=["motion"])
    cm = torch.arange(25).reshape(5, 5)
    new = M.reorder_matrix(cm, order)
    assert new[1, 2].item() == cm[2, 1].item()  # new position 1 is class 2, position 2 class 1
    assert new.diagonal().tolist() == [cm[c, c].item() for c in order]


# --------------------------------------------------------------------------- mAP

# 5 videos x 3 classes; class 2 has no positive and must be left out.
SCORES = torch.tensor([
    [0.9, 0.1, 0.5],
    [0.8, 0.7, 0.4],
    [0.3, 0.6, 0.3],
    [0.2, 0.9, 0.2],
    [0.1, 0.2, 0.1],
])
TARGET = torch.tensor([
    [1, 0, 0],
    [0, 1, 0],
    [1, 0, 0],
    [0, 0, 0],   # a video with no action: a negative for every class
    [1, 1, 0],
])


def test_average_precision_by_hand():
    # class 0 ranked: v0(+) v1(-) v2(+) v3(-) v4(+): precisions at the positives 1, 2/3, 3/5
    assert M.average_precision(SCORES[:, 0], TARGET[:, 0]) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)  # 34/45
    # class 1 ranked: v3(-) v1(+) v2(-) v4(+) v0(-): precisions 1/2, 2/4
    assert M.average_precision(SCORES[:, 1], TARGET[:, 1]) == pytest.approx(0.5)
    ap = M.per_class_average_precision(SCORES, TARGET)
    assert math.isnan(ap[2])
    assert M.mean_average_precision(SCORES, TARGET) == pytest.approx((34 / 45 + 0.5) / 2)  # 113/180


def test_average_precision_ties_keep_input_order():
    tied = torch.tensor([0.5, 0.5, 0.5])
    assert M.average_precision(tied, torch.tensor([0, 1, 1])) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert M.average_precision(tied, torch.tensor([1, 1, 0])) == pytest.approx(1.0)


def test_map_perfect_ranking_and_no_positives():
    assert M.mean_average_precision(TARGET.float(), TARGET) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="undefined"):
        M.mean_average_precision(SCORES, torch.zeros(5, 3))


# --------------------------------------------------------------------------- fusion

A = torch.tensor([[0.0, LN3]])  # softmax [0.25, 0.75]
B = torch.tensor([[LN3, 0.0]])  # softmax [0.75, 0.25]


def test_fuse_after_softmax_sum_product_weighted():
    torch.testing.assert_close(M.fuse([A, B]), torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(M.fuse([A, B], how="product"), torch.tensor([[0.1875, 0.1875]]))
    # Res-LSTM's 1.5 : 1 (flow : RGB)
    torch.testing.assert_close(M.fuse([A, B], weights=(1.5, 1.0)), torch.tensor([[1.125, 1.375]]))
    # MRRN Eq. 10 with three score sets
    torch.testing.assert_close(M.fuse([A, B, A], weights=(0.7, 0.2, 0.1)),
                               torch.tensor([[0.7 * 0.25 + 0.2 * 0.75 + 0.1 * 0.25, 0.7 * 0.75 + 0.2 * 0.25 + 0.1 * 0.75]]))


def test_fuse_before_softmax_and_on_probabilities():
    torch.testing.assert_close(M.fuse([A, B], weights=(1.5, 1.0), softmax=False), torch.tensor([[LN3, 1.5 * LN3]]))
    pa, pb = A.softmax(1), B.softmax(1)
    torch.testing.assert_close(M.fuse([pa, pb], how="product", softmax=False), torch.tensor([[0.1875, 0.1875]]))


def test_fuse_refuses_nonsense():
    with pytest.raises(ValueError, match="two or more"):
        M.fuse([A])
    with pytest.raises(ValueError, match="weighted sum"):
        M.fuse([A, B], how="product", weights=(1, 1))
    with pytest.raises(ValueError, match="probabilities"):
        M.fuse([A - 5, B], how="product", softmax=False)
    with pytest.raises(ValueError, match="same shape"):
        M.fuse([A, torch.zeros(2, 2)])
    with pytest.raises(ValueError, match="2 weights for 3"):
        M.fuse([A, B, A], weights=(1, 1))
