"""Samplers against indices worked out by hand from the papers' formulas."""

from __future__ import annotations

import pytest
import torch

from actionbook.data.sampling import clip_grid, mrrn_clips, select_clips, subsequences, tsn_segments, tsn_test_groups

# ---------------------------------------------------------------------------------------
# Res-LSTM: K_v = floor(l_v / r) - 1 clips of s = 16 frames, stride r = 8


@pytest.mark.parametrize(
    "l_v, starts",
    [
        (40, [0, 8, 16, 24]),  # floor(40/8) - 1 = 4; last clip 24..39 ends on the last frame
        (47, [0, 8, 16, 24]),  # floor(47/8) - 1 = 4
        (48, [0, 8, 16, 24, 32]),  # floor(48/8) - 1 = 5; last clip 32..47
        (16, [0]),  # floor(16/8) - 1 = 1
        (23, [0]),
        (24, [0, 8]),
    ],
)
def test_clip_grid(l_v, starts):
    clips = clip_grid(l_v)
    assert [c[0] for c in clips] == starts
    assert len(clips) == l_v // 8 - 1  # the paper's K_v
    for c in clips:
        assert c == list(range(c[0], c[0] + 16))
    assert clips[-1][-1] <= l_v - 1


def test_clip_grid_short_video_loops():
    assert clip_grid(10) == [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match="empty"):
        clip_grid(0)


@pytest.mark.parametrize(
    "K_v, T, expected",
    [
        # sigma(t) = 1 + floor((t-1)(K_v-1)/(T-1)), minus 1 for 0-based
        (10, 4, [0, 3, 6, 9]),  # (t-1)*9/3 = 0, 3, 6, 9
        (7, 3, [0, 3, 6]),  # (t-1)*6/2
        (25, 5, [0, 6, 12, 18, 24]),  # (t-1)*24/4
        (8, 5, [0, 1, 3, 5, 7]),  # (t-1)*7/4 = 0, 1.75, 3.5, 5.25, 7
        (3, 5, [0, 0, 1, 1, 2]),  # K_v < T: (t-1)*2/4 = 0, .5, 1, 1.5, 2 -> repeats
        (1, 3, [0, 0, 0]),
        (9, 1, [0]),  # T = 1: (t-1) = 0, sigma(1) = 1
    ],
)
def test_select_clips(K_v, T, expected):
    assert select_clips(K_v, T) == expected


def test_select_clips_errors():
    with pytest.raises(ValueError, match="num_clips"):
        select_clips(0, 5)
    with pytest.raises(ValueError, match="T must be"):
        select_clips(5, 0)


# ---------------------------------------------------------------------------------------
# MRRN: 30-frame clips, stride 8, at most 20, loop short videos


def test_mrrn_clips_fit():
    clips = mrrn_clips(100)  # (100 - 30) // 8 + 1 = 9 clips
    assert [c[0] for c in clips] == [0, 8, 16, 24, 32, 40, 48, 56, 64]
    assert clips[-1] == list(range(64, 94))


def test_mrrn_clips_at_most_20_spread_evenly():
    clips = mrrn_clips(300)  # (300 - 30) // 8 + 1 = 34 clips fit; keep clip j * 33 // 19
    kept = [0, 1, 3, 5, 6, 8, 10, 12, 13, 15, 17, 19, 20, 22, 24, 26, 27, 29, 31, 33]
    assert [c[0] for c in clips] == [8 * k for k in kept]
    assert clips[-1] == list(range(264, 294))  # the last clip that fits (the next would end at 301)


def test_mrrn_clips_short_video_loops():
    assert mrrn_clips(12) == [list(range(12)) + list(range(12)) + list(range(6))]
    assert mrrn_clips(30) == [list(range(30))]
    assert mrrn_clips(1, length=3) == [[0, 0, 0]]


# ---------------------------------------------------------------------------------------
# TSN segments (Relational LSTM)


def test_tsn_test_centres():
    # S = 100 starts, width 12.5: floor(12.5 (t + 1/2))
    assert tsn_segments(100, T=8, train=False) == [6, 18, 31, 43, 56, 68, 81, 93]
    # flow snippets of 5 fields from 20 fields: S = 16, width 4 -> 2, 6, 10, 14 (last snippet 14..18)
    assert tsn_segments(20, T=4, train=False, length=5) == [2, 6, 10, 14]


def test_tsn_train_random_offsets():
    # torch.manual_seed(0) draws u = .4963 .7682 .0885 .1320 .3074 .6341 .4901 .8964; segments
    # [0,12) [12,25) [25,37) [37,50) [50,62) [62,75) [75,87) [87,100):
    # 0 + floor(.4963*12) = 5, 12 + floor(.7682*13) = 21, 25 + 1, 37 + 1, 50 + 3, 62 + 8, 75 + 5, 87 + 11
    g = torch.Generator().manual_seed(0)
    assert tsn_segments(100, T=8, train=True, generator=g) == [5, 21, 26, 38, 53, 70, 80, 98]
    again = tsn_segments(100, T=8, train=True, generator=torch.Generator().manual_seed(0))
    assert again == [5, 21, 26, 38, 53, 70, 80, 98]  # same seed, same indices
    # many draws stay inside their segments and reach both ends
    g = torch.Generator().manual_seed(1)
    draws = [tsn_segments(100, T=8, train=True, generator=g) for _ in range(300)]
    for t, (lo, hi) in enumerate([(0, 12), (12, 25), (25, 37), (37, 50), (50, 62), (62, 75), (75, 87), (87, 100)]):
        col = {d[t] for d in draws}
        assert min(col) == lo and max(col) == hi - 1


def test_tsn_short_video_repeats():
    # 3 frames, 8 segments: lo = floor(3t/8) = 0 0 0 1 1 1 2 2, each segment holds at most its lo
    g = torch.Generator().manual_seed(0)
    assert tsn_segments(3, T=8, train=True, generator=g) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert tsn_segments(3, T=8, train=False) == [0, 0, 0, 1, 1, 2, 2, 2]  # floor(3/8 (t + 1/2))
    with pytest.raises(ValueError, match="fewer than one snippet of 5"):
        tsn_segments(4, T=3, train=False, length=5)


def test_tsn_test_groups():
    # width 25; group g at fraction (g + 1/2)/4: 3.125, 9.375, 15.625, 21.875 into each segment
    assert tsn_test_groups(100, T=4) == [[3, 28, 53, 78], [9, 34, 59, 84], [15, 40, 65, 90], [21, 46, 71, 96]]
    assert tsn_test_groups(100, T=8, groups=1) == [tsn_segments(100, T=8, train=False)]


def _tsn_formula(num_frames: int, T: int, length: int, *, exact: bool) -> list[int]:
    """TSN's own test offsets (tsn-pytorch `_get_test_indices`): int(tick / 2 + tick * x) with
    tick = (num_frames - length + 1) / T, in floating point as TSN writes it, or in exact fractions."""
    from fractions import Fraction

    S = num_frames - length + 1
    tick = Fraction(S, T) if exact else S / float(T)
    return [int(tick / 2 + tick * x) for x in range(T)]


def test_tsn_centres_are_tsns_formula_in_exact_arithmetic():
    """Integer arithmetic gives TSN's formula exactly; TSN's floating point is one frame short
    exactly where the true value is a whole number (the boundary cases), and nowhere else."""
    short = 0
    for T in (1, 3, 6, 8, 10, 12, 14, 25):
        for length in (1, 5, 10):
            for n in range(length, length + 300):
                ours = tsn_segments(n, T=T, train=False, length=length)
                assert ours == _tsn_formula(n, T, length, exact=True), (n, T, length)
                S = n - length + 1
                for t, (o, f) in enumerate(zip(ours, _tsn_formula(n, T, length, exact=False))):
                    if o != f:  # only one frame, only where S (t + 1/2) / T is a whole number
                        assert o == f + 1 and (S * (2 * t + 1)) % (2 * T) == 0, (n, T, length, t)
                        short += 1
    assert short > 0  # the float formula does have boundary cases in this range (e.g. S = 4, T = 14)
    assert tsn_segments(4, T=14, train=False)[10] == 3  # 4 / 14 * 10.5 = 3 exactly (float: 2.9999999999999996)
    # the test groups agree with the centres for one group, in integers too
    for n in range(1, 400):
        assert tsn_test_groups(n, T=12, groups=1) == [tsn_segments(n, T=12, train=False)]


# ---------------------------------------------------------------------------------------
# Iqbal et al.: every 10th frame, sub-sequences of T


def test_subsequences():
    assert subsequences(80, T=4) == [[0, 10, 20, 30], [40, 50, 60, 70]]  # K = 8, two runs
    # K = 10 sampled (0..90): two full runs, then the last 4 sampled frames
    assert subsequences(95, T=4) == [[0, 10, 20, 30], [40, 50, 60, 70], [60, 70, 80, 90]]
    assert subsequences(91, T=2) == [[0, 10], [20, 30], [40, 50], [60, 70], [80, 90]]
    assert subsequences(7, T=1, step=3) == [[0], [3], [6]]


def test_subsequences_short_video_loops():
    assert subsequences(25, T=5) == [[0, 10, 20, 0, 10]]  # sampled 0, 10, 20 (K = 3 < T)
    assert subsequences(1, T=2) == [[0, 0]]
    with pytest.raises(ValueError, match="empty"):
        subsequences(0, T=2)
