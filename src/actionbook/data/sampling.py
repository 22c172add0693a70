"""Which frames each paper feeds its network: clip grids, segments and sub-sequences.

Every function here maps a video length (`num_frames`) to 0-based frame indices; none of
them decodes anything. `read_video(path, frames=...)` then fetches exactly those frames.
Each sampler is the paper's rule written out, so the indices can be checked by hand.

| paper | sampler | rule |
| --- | --- | --- |
| Res-LSTM (Lakhal et al., Sec. 3) | `clip_grid`, `select_clips` | 16-frame clips every r = 8 frames, K_v = floor(l_v / r) - 1 of them; T of the K_v clips chosen by sigma(t) |
| MRRN (Zheng et al., Sec. 4.2) | `mrrn_clips` | 30-frame clips, stride 8, at most 20 per video; short videos looped |
| Relational LSTM / TSN (Chen et al., Sec. 3.3) | `tsn_segments`, `tsn_test_groups` | T equal segments, one snippet each: random when training, centre when testing; 4 groups of positions at test |
| Recurrent residual nets (Iqbal et al., Sec. 3.3, 4) | `subsequences` | every 10th frame, cut into sub-sequences of T frames |

Too-short videos never give an IndexError: each function either loops the video (frame
indices taken modulo its length, as MRRN prescribes) or raises a ValueError saying why;
which one is stated in its docstring.
"""

from __future__ import annotations

import torch

__all__ = ["clip_grid", "select_clips", "mrrn_clips", "tsn_segments", "tsn_test_groups", "subsequences"]


def _check_frames(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"the video has {num_frames} frames; cannot sample from an empty video")


def _loop(start: int, length: int, num_frames: int) -> list[int]:
    """`length` consecutive frames from `start`, wrapping around the video's end."""
    return [(start + i) % num_frames for i in range(length)]


# ---------------------------------------------------------------------------------------
# Res-LSTM (Lakhal et al.)


def clip_grid(num_frames: int, *, length: int = 16, stride: int = 8) -> list[list[int]]:
    """All clips of `length` frames, one every `stride` frames (Res-LSTM, Sec. 3).

    The paper has K_v = floor(l_v / r) - 1 clips of s = 16 frames with stride r = 8; clip k
    (0-based) covers frames k*r .. k*r + s - 1. We count K_v = floor((l_v - s) / r) + 1, the
    clips that fit in the video; for s = 2r this *is* the paper's floor(l_v / r) - 1, and it
    keeps every clip inside the video for any s and r. A video shorter than one clip gives a
    single clip that loops the video (frames taken modulo l_v), like MRRN's rule.

    >>> [(c[0], c[-1]) for c in clip_grid(40)]   # K_v = floor(40 / 8) - 1 = 4 clips
    [(0, 15), (8, 23), (16, 31), (24, 39)]
    """
    _check_frames(num_frames)
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1, got length={length}, stride={stride}")
    if num_frames < length:
        return [_loop(0, length, num_frames)]
    k_v = (num_frames - length) // stride + 1
    return [list(range(k * stride, k * stride + length)) for k in range(k_v)]


def select_clips(num_clips: int, T: int) -> list[int]:
    """The T clips Res-LSTM feeds its LSTM: sigma(t) = 1 + floor((t - 1)(K_v - 1) / (T - 1)).

    The paper counts t = 1..T and clips 1..K_v; we return 0-based clip indices
    sigma(t) - 1 = floor((t - 1)(K_v - 1) / (T - 1)). They run from the first clip to the last,
    evenly spread. With fewer clips than steps (K_v < T) the formula repeats clips, e.g.
    K_v = 3, T = 5 gives [0, 0, 1, 1, 2]. For T = 1 the numerator (t - 1) is 0, so sigma(1) = 1:
    the first clip.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1 (a video with no clip), got {num_clips}")
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if T == 1:
        return [0]
    return [(t - 1) * (num_clips - 1) // (T - 1) for t in range(1, T + 1)]


# ---------------------------------------------------------------------------------------
# MRRN (Zheng et al.)


def mrrn_clips(num_frames: int, *, length: int = 30, stride: int = 8, max_clips: int = 20) -> list[list[int]]:
    """MRRN's clips: `length` frames every `stride` frames, at most `max_clips` per video (Sec. 4.2).

    The n = floor((l_v - length) / stride) + 1 clips that fit start at 0, stride, 2*stride, ...
    When n > max_clips, `max_clips` of them are kept, spread evenly: clip j * (n - 1) // (max_clips - 1)
    for j = 0..max_clips-1 (first and last always kept). A video shorter than `length` gives one
    clip that loops it: frames 0, 1, .., l_v - 1, 0, 1, ...
    """
    _check_frames(num_frames)
    if length < 1 or stride < 1 or max_clips < 1:
        raise ValueError(f"length, stride and max_clips must be >= 1, got {length}, {stride}, {max_clips}")
    if num_frames < length:
        return [_loop(0, length, num_frames)]
    n = (num_frames - length) // stride + 1
    if n > max_clips:
        keep = [0] if max_clips == 1 else [j * (n - 1) // (max_clips - 1) for j in range(max_clips)]
    else:
        keep = list(range(n))
    return [list(range(k * stride, k * stride + length)) for k in keep]


# ---------------------------------------------------------------------------------------
# TSN segments (Relational LSTM, Chen et al.; TSN, Wang et al.)


def _segment_starts(num_frames: int, T: int, length: int) -> tuple[int, float]:
    """Number of valid snippet starts and the segment width over them."""
    _check_frames(num_frames)
    if T < 1 or length < 1:
        raise ValueError(f"T and length must be >= 1, got T={T}, length={length}")
    starts = num_frames - length + 1  # a snippet of `length` frames must fit
    if starts < 1:
        raise ValueError(
            f"the video has {num_frames} frames, fewer than one snippet of {length} frames; "
            "use a shorter snippet or drop the video"
        )
    return starts, starts / T


def tsn_segments(
    num_frames: int, *, T: int, train: bool, generator: torch.Generator | None = None, length: int = 1
) -> list[int]:
    """The start frame of one snippet per segment (TSN; Relational LSTM Sec. 3.1).

    The S = l_v - length + 1 possible snippet starts are cut into T equal segments,
    segment t covering [floor(t S / T), floor((t + 1) S / T)). Training draws one start
    uniformly in each segment with `generator` (u_t ~ U[0, 1) from `torch.rand`, start =
    lo_t + floor(u_t * (hi_t - lo_t))); testing takes each segment's centre
    floor(S / T * (t + 1/2)). `length` is the snippet length (1 for an RGB frame, 5 or 10 for
    a stack of flow fields); the snippet is frames start .. start + length - 1. With fewer
    starts than segments, neighbouring segments share a frame (an empty segment takes its
    lower bound), so short videos repeat frames instead of failing.

    Positions are computed in integers. TSN's own test formula `int(tick / 2 + tick * t)` with
    tick = S / T in floating point is one frame short where the exact value is a whole
    number (e.g. S = 4, T = 14, t = 10: 2.9999999999999996); here it is exact.
    """
    starts, _ = _segment_starts(num_frames, T, length)
    if not train:  # floor(S / T * (t + 1/2)) in integers: exact where floating point is one frame short
        return [(starts * (2 * t + 1)) // (2 * T) for t in range(T)]
    u = torch.rand(T, generator=generator).tolist()  # (T,) in [0, 1)
    out = []
    for t in range(T):
        lo, hi = int(t * starts // T), int((t + 1) * starts // T)
        out.append(lo + int(u[t] * (hi - lo)) if hi > lo else min(lo, starts - 1))
    return out


def tsn_test_groups(num_frames: int, *, T: int, groups: int = 4, length: int = 1) -> list[list[int]]:
    """`groups` test groups of T snippet starts, one per segment (Relational LSTM Sec. 3.4).

    "We generate 4 groups by sampling from 4 positions with equal temporal spacing": group g
    takes, in every segment, the point at fraction (g + 1/2) / groups of the segment,
    start = floor(S / T * (t + (g + 1/2) / groups)). With groups = 1 this is the segment centre
    of `tsn_segments(train=False)`. Each group is one test example (x 5 crops = 20 examples).
    """
    starts, _ = _segment_starts(num_frames, T, length)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    # floor(S (2 G t + 2 g + 1) / (2 T G)): integer arithmetic, so no start is a frame short
    return [[(starts * (2 * groups * t + 2 * g + 1)) // (2 * T * groups) for t in range(T)] for g in range(groups)]


# ---------------------------------------------------------------------------------------
# Iqbal et al.


def subsequences(num_frames: int, *, T: int, step: int = 10) -> list[list[int]]:
    """Sub-sequences of T frames of the every-`step`-th-frame video (Iqbal et al., Sec. 3.3, 4).

    The sampled frames are 0, step, 2 step, ... (K = ceil(l_v / step) of them). They are cut
    into consecutive, non-overlapping runs of T; if K is not a multiple of T, one more run
    ends on the last sampled frame (overlapping the one before), so every sampled frame is
    in some run and the runs cover the video. If K < T, a single run loops the sampled frames
    (index j takes sampled frame j mod K). Scores are averaged over the runs at test time.

    >>> subsequences(95, T=4)   # sampled 0, 10, .., 90 (K = 10)
    [[0, 10, 20, 30], [40, 50, 60, 70], [60, 70, 80, 90]]
    """
    _check_frames(num_frames)
    if T < 1 or step < 1:
        raise ValueError(f"T and step must be >= 1, got T={T}, step={step}")
    sampled = list(range(0, num_frames, step))  # (K,)
    k = len(sampled)
    if k < T:
        return [[sampled[j % k] for j in range(T)]]
    runs = [sampled[m * T : (m + 1) * T] for m in range(k // T)]
    if k % T:
        runs.append(sampled[k - T :])
    return runs
