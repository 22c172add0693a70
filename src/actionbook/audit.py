"""The claims audit: one rule, shared by every chapter, for deciding a paper's claims.

A chapter declares its paper's claims as data (`Claim`: which condition should beat which, by
at least how much, and the paper's own effect) and hands `audit` the per-video outcomes of its
runs: one row per (condition, seed, test video) with ``correct`` = 1 or 0. `audit` returns one
row per claim with the effect, its 95% interval and a verdict.

The statistics, in full (the page `book/audit.md` explains them for readers)
---------------------------------------------------------------------------------------

*Effect.* For a claim "A beats B", the paired differences ``d[s, v] = correct_A[s, v] -
correct_B[s, v]`` over seeds s and test videos v (an S × V matrix, × 100: points of accuracy).
Both conditions must have been run on the same seeds and scored on the same test videos; the
audit refuses anything else rather than quietly pairing the overlap. The effect is the mean of
``d``: the difference of the two accuracies, averaged over seeds.

*Uncertainty from both sources.* Seeds and videos are crossed (every seed of both conditions
is scored on the same videos). In the two-way random-effects model ``d[s, v] = mu + a_s + b_v +
e_sv`` the effect's error is ``(mean a + mean e) + mean b``, two independent parts:

- the *seed part*, estimated by the spread of the S seed means: ``MS_seed / (S V)``, with
  S − 1 degrees of freedom;
- the *video part* (which videos happen to be in the test set), ``(MS_video − MS_resid)^+ /
  (S V)``, with V − 1 degrees of freedom.

Their sum is the usual unbiased variance of the mean, ``(MS_seed + MS_video − MS_resid) / (S V)``
(``se`` is its square root). The interval gives each part its own t quantile (Banerjee 1961;
the same construction as for the Behrens–Fisher problem):
``effect ± sqrt(t_{S−1}² · seed part + t_{V−1}² · video part)``. Whatever the ratio of the two
parts, this is conservative; with few seeds and a seed-dominated spread it is the t interval on
S − 1 degrees of freedom, with a video-dominated one the t interval on V − 1. Two earlier
versions of the rule (one Satterthwaite t quantile for the sum, and a pre-test that dropped
the seed term when its mean square was below the residual one) were anti-conservative in the
far tails that a multiple-testing correction relies on; ``tests/test_audit.py`` checks this rule
there, on a generative model unlike `simulate_outcomes` (`simulate_heterogeneous`). ``df`` in
the table is the single t quantile's degrees of freedom that gives the same 95% interval.

*Exactness floor.* No test on V videos can be surer than a sign test that finds every video on
one side: every p-value is at least ``2^-V``. In particular a matrix with no spread at all (A
right and B wrong on every video and seed) is decided by that sign test, never by ``se = 0``.

*Seeds.* A verdict needs at least `MIN_SEEDS` (5) seeds of both conditions; with fewer the
claim is "not testable here" and says why (with 2 seeds the seed part has one degree of
freedom and the interval can span hundreds of points). `audit(..., exploratory=True)` decides
such claims anyway and labels every such row "exploratory" in its reason: for a full-mode run
that could afford only a seed or two, never for the book's ci verdicts.

*Verdicts* (``alpha`` = 0.05 gives 95% intervals):

=====================  ======================================================================
verdict                rule (before multiplicity correction)
=====================  ======================================================================
holds                  expect="better": the interval lies above ``min_effect`` (1 point unless
                       the claim says otherwise)
no gain                expect="no_gain" ("more of X stops helping"; ``better`` is the condition
                       with more): the interval lies inside ``± margin``
reversed               expect="better": the interval lies below zero; expect="no_gain": the
                       interval lies above ``+ margin`` (more still clearly helps)
inconclusive           anything else. Never read as support.
not testable here      the claim says why (``not_testable``), or fewer than 2 test videos or
                       fewer than `MIN_SEEDS` seeds; no verdict is computed
=====================  ======================================================================

*No-gain margins.* "Gains nothing" only means something beside the margin it is tested
against, and a margin smaller than the instrument can resolve can never be met. Unless a claim
sets one, its margin is `no_gain_margin`: the margin within which a true effect of zero shows
"no gain" with 80% power for one claim on its own at the claim's number of test videos and
seeds, under a stated planning model (independent errors at 50% accuracy: the widest). It depends
on the design only, never on the outcomes, and the table's ``min_effect`` column states it. It
is the claim's own resolution, not widened for the Holm correction: that correction then applies
to the verdict as to any other (a margin planned for the worst Holm step of a chapter's dozen
claims would be twice as wide, and "no gain within ±13 points" says next to nothing).

*Multiple claims (Holm).* Each rule above is a one-sided test at level ``alpha / 2``: "the
interval lies above m" is exactly "the one-sided p-value of H0: effect ≤ m is below alpha/2",
and "inside ± m" is the two one-sided tests of equivalence (TOST), its p-value the larger of
the two. The *supporting* p-values (holds / no gain) of all testable claims in one call form
one family and are Holm-adjusted; the *contrary* p-values (reversed) form a second family,
Holm-adjusted the same way. A claim holds (or shows no gain) only if its Holm-adjusted p
(``p_holm``) is below ``alpha / 2``; it is reversed only if ``p_holm_reversed`` is below
``alpha / 2``. The chance of any false "holds"/"no gain" in one call is at most alpha/2, of any
false "reversed" at most alpha/2. With a single claim this is the interval rule exactly; with
several, a claim whose interval clears the bar can still be inconclusive, and ``reason`` says
so. The interval shown (``ci_low``, ``ci_high``) is the unadjusted 95% interval.

*Power.* ``detectable`` (per claim) is the smallest true effect that would hold with 80% power
given the spread measured for that claim and the worst Holm step (Bonferroni level);
`detectable_effect` answers the same question before any run, from the test-set size, the
number of seeds and the accuracy.

*A metric that is not a mean* (mAP: a class's AP depends on how every test video ranks against
the others, so there are no per-video outcomes): `audit_metric` estimates the same two parts
without per-video differences, the seed part from the spread of the per-seed metric differences
and the video part from a bootstrap over test videos (the same draw for both conditions and
every seed), and applies the same interval, floor and verdicts (the Relational LSTM's claim
L8, Charades mAP).

Usage::

    from actionbook.audit import Claim, audit
    claims = [Claim("R2", "Residual connections help a 3-layer stack", better="res3", worse="plain3",
                    paper_effect=1.2, paper_source="Fig. 3 (text)")]
    table = audit(claims, outcomes)   # outcomes: condition, seed, video, correct[, category]
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

EXPECTS = ("better", "no_gain")
VERDICTS = ("holds", "no gain", "reversed", "inconclusive", "not testable here")
COLUMNS = ("claim", "statement", "better", "worse", "expect", "category", "verdict", "effect", "ci_low",
           "ci_high", "se", "df", "min_effect", "paper_effect", "paper_source", "n_seeds", "n_test",
           "p_holm", "p_holm_reversed", "detectable", "reason")
"""The output schema of `audit`, in order. Effects, intervals, `se` and `detectable` are in points
of accuracy; `df` the degrees of freedom of the one t quantile that gives the same 95% interval
(between S − 1 and V − 1); `min_effect` the minimum effect of a "better" claim or the margin of a
"no_gain" claim; `p_holm` / `p_holm_reversed` the Holm-adjusted one-sided p-values of the
supporting / contrary verdict; `detectable` the true effect that would hold with 80% power given
this claim's measured spread (for a "no_gain" claim: the margin within which a true effect of
zero would show "no gain" with 80% power)."""

MIN_SEEDS = 5
"""Seeds of both conditions that a verdict needs (fewer: "not testable here", or an exploratory
verdict with ``audit(..., exploratory=True)``)."""

MARGIN_ACCURACY = 0.5
"""The planning accuracy of `no_gain_margin` (the binomial variance is largest at 50%)."""

_NEEDED = ("condition", "seed", "video", "correct")


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as a comparison between two conditions of our runs.

    `better` is the condition the paper says wins (for expect="no_gain": the condition with
    "more", e.g. more hidden units); `worse` the one it is compared with. `min_effect` (points
    of accuracy) is the smallest effect that counts (None: 1 point), or for "no_gain" the margin
    within which the two are called equal (None: the margin the audit can resolve for this
    design, `no_gain_margin`, stated in the table). `category` restricts the comparison to the
    test videos of one coarse category (the outcomes then need a ``category`` column). A
    non-empty `not_testable` is the reason the claim cannot be tested here; it is reported, not
    dropped.
    """

    id: str
    statement: str
    better: str
    worse: str
    expect: str = "better"
    min_effect: float | None = None
    paper_effect: float | None = None
    paper_source: str = ""
    category: str | None = None
    not_testable: str = ""

    def __post_init__(self) -> None:
        if self.expect not in EXPECTS:
            raise ValueError(f"claim {self.id}: expect must be one of {EXPECTS}, got {self.expect!r}")
        if self.min_effect is not None and not (self.min_effect >= 0 and math.isfinite(self.min_effect)):
            raise ValueError(f"claim {self.id}: min_effect must be a finite number >= 0 (points), "
                             f"got {self.min_effect!r}")
        if self.expect == "no_gain" and self.min_effect is not None and self.min_effect <= 0:
            raise ValueError(f"claim {self.id}: a no_gain claim needs a margin min_effect > 0 "
                             f"(or None: the margin the audit can resolve)")
        if not self.not_testable and self.better == self.worse:
            raise ValueError(f"claim {self.id}: better and worse are both {self.better!r}")


# --------------------------------------------------------------------------- the effect matrix
def _check_outcomes(outcomes: pd.DataFrame) -> None:
    if not isinstance(outcomes, pd.DataFrame):
        raise TypeError(f"outcomes must be a pandas DataFrame, got {type(outcomes).__name__}")
    missing = [c for c in _NEEDED if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes lack the column(s) {missing}; they need one row per (condition, seed, "
                         f"test video) with columns {list(_NEEDED)} (and 'category' for category claims); "
                         f"got {list(outcomes.columns)}")
    for col in ("condition", "seed", "video"):
        nan = outcomes[col].isna()
        if nan.any():
            raise ValueError(f"outcomes['{col}'] is missing (NaN/None) in {int(nan.sum())} row(s), e.g. row "
                             f"{outcomes.index[nan][0]!r}; every row names its condition, seed and test video")
    c = outcomes["correct"]
    bad = ~c.isin([0, 1, True, False])
    if bad.any():
        raise ValueError(f"outcomes['correct'] must be 0 or 1 (one row per test video); "
                         f"{int(bad.sum())} row(s) are not, e.g. {c[bad].iloc[0]!r}")
    dup = outcomes.duplicated(["condition", "seed", "video"])
    if dup.any():
        row = outcomes.loc[dup, ["condition", "seed", "video"]].iloc[0].to_dict()
        raise ValueError(f"outcomes have {int(dup.sum())} repeated (condition, seed, video) row(s), e.g. {row}; "
                         f"keep one row per test video and run")


class _Wide:
    """The outcomes arranged once per `audit` call: for each condition, a seeds × videos array
    over the videos that condition was evaluated on (numpy only; no dense condition × video table)."""

    def __init__(self, outcomes: pd.DataFrame) -> None:
        _check_outcomes(outcomes)
        cond_codes, conds = pd.factorize(outcomes["condition"])
        seed_codes, self.seeds = pd.factorize(outcomes["seed"], sort=True)
        video_codes, self.videos = pd.factorize(outcomes["video"], sort=True)
        correct = outcomes["correct"].to_numpy().astype(float)
        order = np.argsort(cond_codes, kind="stable")
        bounds = np.searchsorted(cond_codes[order], np.arange(len(conds) + 1))
        self.rows: dict = {}  # condition -> (seed codes, video codes, seeds x videos array, NaN = missing)
        for i, cond in enumerate(conds):
            idx = order[bounds[i]:bounds[i + 1]]
            s_u, s_i = np.unique(seed_codes[idx], return_inverse=True)
            v_u, v_i = np.unique(video_codes[idx], return_inverse=True)
            arr = np.full((len(s_u), len(v_u)), np.nan)
            arr[s_i, v_i] = correct[idx]
            self.rows[cond] = (s_u, v_u, arr)
        self.category = None
        if "category" in outcomes.columns:
            n = outcomes.groupby("video")["category"].nunique(dropna=False)
            if (n > 1).any():
                raise ValueError(f"video {n[n > 1].index[0]!r} has more than one category in outcomes; "
                                 f"a video's category is a property of the video")
            self.category = outcomes.groupby("video")["category"].first().reindex(self.videos).to_numpy()

    def _differ(self, better: str, worse: str, what: str, a: np.ndarray, b: np.ndarray, names) -> None:
        if np.array_equal(a, b):  # both sorted and unique: the same set
            return
        only_a, only_b = np.setdiff1d(a, b), np.setdiff1d(b, a)
        if len(only_a) or len(only_b):
            ex = [f"{len(x)} {what}(s) only {c!r} has (e.g. {names[x[0]]})"
                  for c, x in ((better, only_a), (worse, only_b)) if len(x)]
            raise ValueError(f"conditions {better!r} and {worse!r} were not run on the same {what}s: "
                             f"{'; '.join(ex)}. A paired comparison needs both on every {what}; run the "
                             f"missing ones, or drop the extra rows from the outcomes on purpose")

    def matrix(self, better: str, worse: str, category: str | None) -> tuple[np.ndarray, list, list]:
        if category is not None and self.category is None:
            raise ValueError(f"a claim restricted to category {category!r} needs a 'category' column in outcomes")
        for cond in (better, worse):
            if cond not in self.rows:
                raise ValueError(f"no outcomes for condition {cond!r}; the conditions are "
                                 f"{sorted(map(str, self.rows))}")
        (sa, va, a), (sb, vb, b) = self.rows[better], self.rows[worse]
        self._differ(better, worse, "seed", sa, sb, self.seeds)
        self._differ(better, worse, "test video", va, vb, self.videos)
        seeds, videos = sa, va
        if category is not None:  # none of the category may be left: `audit` then says "not testable here"
            videos = videos[self.category[videos] == category]
            if not len(videos):
                return np.empty((len(seeds), 0)), list(self.seeds[seeds]), []
        a = a[:, np.searchsorted(va, videos)]
        b = b[:, np.searchsorted(vb, videos)]
        for cond, m in ((better, a), (worse, b)):
            holes = int(np.isnan(m).sum())
            if holes:
                raise ValueError(f"condition {cond!r} lacks {holes} (seed, video) outcome(s) among its "
                                 f"{len(seeds)} seeds and {len(videos)} videos; evaluate every seed on every "
                                 f"test video")
        return a - b, list(self.seeds[seeds]), list(self.videos[videos])


def effect_matrix(outcomes: pd.DataFrame, better: str, worse: str, *,
                  category: str | None = None) -> tuple[np.ndarray, list, list]:
    """The paired differences ``correct[better] - correct[worse]``, seeds × videos (in 0/±1).

    Both conditions must have the same seeds and test videos, and every (seed, video) of them;
    else `ValueError` says which differ or are missing. Returns (matrix, seeds, videos).
    """
    return _Wide(outcomes).matrix(better, worse, category)


# --------------------------------------------------------------------------- the interval
def _mean_squares(d: np.ndarray) -> tuple[float, float, float]:
    """Two-way ANOVA mean squares of a seeds × videos matrix: seed, video, residual."""
    s, v = d.shape
    grand = d.mean()
    row, col = d.mean(1), d.mean(0)
    ms_seed = v * ((row - grand) ** 2).sum() / (s - 1) if s > 1 else 0.0
    ms_video = s * ((col - grand) ** 2).sum() / (v - 1) if v > 1 else 0.0
    if s > 1 and v > 1:
        resid = d - row[:, None] - col[None, :] + grand
        ms_resid = (resid ** 2).sum() / ((s - 1) * (v - 1))
    else:
        ms_resid = 0.0
    return float(ms_seed), float(ms_video), float(ms_resid)


@dataclass(frozen=True)
class Spread:
    """The variance of an effect in its two independent parts, each with its degrees of freedom.

    `seed_var` (points², S − 1 df): the seeds' share, ``MS_seed / (S V)``; 0 with one seed (then
    unmeasured). `video_var` (points², V − 1 df): the test set's share, ``(MS_video −
    MS_resid)^+ / (S V)``, or ``MS_video / V`` with one seed. See the module docstring.
    """

    seed_var: float
    video_var: float
    n_seeds: int
    n_test: int

    @classmethod
    def of(cls, d: np.ndarray) -> "Spread":
        """The spread of ``d.mean()`` for a seeds × videos matrix of paired differences."""
        s, v = d.shape
        ms_seed, ms_video, ms_resid = _mean_squares(d)
        if s == 1:
            return cls(0.0, ms_video / v, 1, v)
        return cls(ms_seed / (s * v), max(0.0, ms_video - ms_resid) / (s * v), s, v)

    @property
    def se(self) -> float:
        return math.sqrt(self.seed_var + self.video_var)


def _arrays(spreads: Sequence[Spread]) -> tuple[np.ndarray, ...]:
    a = np.array([(x.seed_var, x.video_var, max(x.n_seeds - 1, 1), x.n_test - 1, x.n_test) for x in spreads],
                 dtype=float).reshape(-1, 5)
    return tuple(a.T)


def _half_width(level, seed_var, video_var, seed_df, video_df) -> np.ndarray:
    """Half-width of the one-sided bound at `level`: sqrt(t_{S-1}² seed part + t_{V-1}² video part)."""
    return np.sqrt(stats.t.isf(level, seed_df) ** 2 * seed_var + stats.t.isf(level, video_df) ** 2 * video_var)


def p_exceeds(x: Sequence[float], spreads: Sequence[Spread]) -> np.ndarray:
    """One-sided p-values of H0: (true effect − threshold) ≤ 0, given ``x`` = effect − threshold.

    The smallest level at which the one-sided bound ``x − half_width(level)`` is above zero
    (the interval inverted; vectorised bisection in log-level), floored at ``2^-V``: no test
    on V videos can be surer than a sign test that finds every video on one side. With no
    spread at all the floor is the p-value.
    """
    x = np.asarray(x, dtype=float)
    seed_var, video_var, seed_df, video_df, n_test = _arrays(spreads)
    lo, hi = np.full(len(x), -60.0), np.full(len(x), math.log(0.5))
    for _ in range(48):  # log-level to within 60 / 2^48
        mid = (lo + hi) / 2
        wide = _half_width(np.exp(mid), seed_var, video_var, seed_df, video_df) >= np.abs(x)
        lo, hi = np.where(wide, mid, lo), np.where(wide, hi, mid)
    a = np.exp(hi)
    p = np.where(x > 0, a, 1.0 - a)
    return np.maximum(p, 0.5 ** n_test)


def _effective_df(spreads: Sequence[Spread], alpha: float) -> np.ndarray:
    """Degrees of freedom of the single t quantile that gives the same 1 − alpha interval."""
    seed_var, video_var, seed_df, video_df, _ = _arrays(spreads)
    se = np.sqrt(seed_var + video_var)
    ratio = _half_width(alpha / 2, seed_var, video_var, seed_df, video_df) / np.where(se > 0, se, 1.0)
    lo, hi = np.log(np.minimum(seed_df, video_df)), np.log(video_df)
    for _ in range(40):
        mid = (lo + hi) / 2
        wide = stats.t.isf(alpha / 2, np.exp(mid)) > ratio  # too few df
        lo, hi = np.where(wide, mid, lo), np.where(wide, hi, mid)
    return np.where(se > 0, np.exp((lo + hi) / 2), np.nan)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as `p`; NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    k = len(ok)
    if k == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((k - np.arange(k)) * p[order]))
    out[order] = adj
    return out


# --------------------------------------------------------------------------- the audit
def audit(claims: Sequence[Claim], outcomes: pd.DataFrame, *, alpha: float = 0.05, correction: str = "holm",
          exploratory: bool = False) -> pd.DataFrame:
    """Decide each claim from per-video outcomes; one row per claim, columns `COLUMNS`.

    `outcomes`: one row per (condition, seed, test video), columns ``condition, seed, video,
    correct`` (0/1) and, for claims with a `category`, ``category``. The two conditions of a
    claim must share their seeds and test videos (else `ValueError`). `correction` is "holm"
    (across the testable claims of this call) or "none" (each claim on its own; for studying
    the rule, not for a chapter's table). A claim with fewer than `MIN_SEEDS` seeds is "not
    testable here"; ``exploratory=True`` decides it anyway and labels its reason "exploratory"
    (a full-mode run with a seed or two; say so where it is shown). The rule is deterministic:
    same outcomes, same table, whatever the order of the claims.
    """
    claims = list(claims)
    _check_call(claims, alpha, correction)
    table = _Wide(outcomes)
    measured: dict[str, tuple[float, Spread]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for c in claims:
        if c.not_testable:
            counts[c.id] = (0, 0)
            continue
        d, seeds, videos = table.matrix(c.better, c.worse, c.category)
        counts[c.id] = (len(seeds), len(videos))
        if len(videos) >= 2:
            d = d * 100.0  # points
            measured[c.id] = (float(d.mean()), Spread.of(d))
    return _decide(claims, measured, counts, alpha=alpha, correction=correction, exploratory=exploratory)


def _check_call(claims: Sequence[Claim], alpha: float, correction: str) -> None:
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")


def _decide(claims: Sequence[Claim], measured: dict[str, tuple[float, Spread]], counts: dict[str, tuple[int, int]],
            *, alpha: float, correction: str, exploratory: bool) -> pd.DataFrame:
    """The verdicts of `audit` and `audit_metric` from each testable claim's effect and spread."""
    level = alpha / 2  # each rule is a one-sided test at alpha/2 (a bound of the two-sided 1-alpha interval)
    rows, reasons = [], {}
    for c in claims:
        n_seeds, n_test = counts[c.id]
        rows.append({"claim": c.id, "statement": c.statement, "better": c.better, "worse": c.worse,
                     "expect": c.expect, "category": c.category, "n_seeds": n_seeds, "n_test": n_test,
                     "paper_effect": float(c.paper_effect) if c.paper_effect is not None else math.nan,
                     "paper_source": c.paper_source})
        where = f" of category {c.category!r}" if c.category else ""
        if c.not_testable:
            reasons[c.id] = c.not_testable
        elif c.id not in measured:
            reasons[c.id] = (f"{n_test} test video(s){where}: a paired comparison needs at least 2 "
                             f"(a small test set, e.g. the full-mode smoke test's)")
        elif n_seeds < MIN_SEEDS and not exploratory:
            reasons[c.id] = (f"{n_seeds} seed(s), fewer than the {MIN_SEEDS} a verdict needs: the training noise "
                             f"is not measured well enough to decide (run {MIN_SEEDS} or more seeds)")
    tested = [c for c in claims if c.id not in reasons]
    k = len(tested) if correction == "holm" else 1
    margins = {c.id: _threshold(c, measured[c.id][1], alpha) for c in tested}
    effects = np.array([measured[c.id][0] for c in tested])
    spreads = [measured[c.id][1] for c in tested]
    m = np.array([margins[c.id] for c in tested])
    better = np.array([c.expect == "better" for c in tested])
    if tested:
        up, below0 = p_exceeds(effects - m, spreads), p_exceeds(-effects, spreads)
        inside = np.maximum(p_exceeds(effects + m, spreads), p_exceeds(m - effects, spreads))
        p_s, p_c = np.where(better, up, inside), np.where(better, below0, up)
        seed_var, video_var, seed_df, video_df, _ = _arrays(spreads)
        hw = _half_width(level, seed_var, video_var, seed_df, video_df)
        step = _half_width(level / k, seed_var, video_var, seed_df, video_df)
        power = _half_width(np.where(better, 0.2, 0.1), seed_var, video_var, seed_df, video_df)
        df = _effective_df(spreads, alpha)
    else:
        p_s = p_c = hw = step = power = df = np.empty(0)
    adj_s, adj_c = (holm(p_s), holm(p_c)) if correction == "holm" else (p_s, p_c)
    at = {c.id: i for i, c in enumerate(tested)}
    for row, c in zip(rows, claims):
        if c.id in reasons:
            verdict = "not testable here"
            row.update(verdict=verdict, effect=math.nan, ci_low=math.nan, ci_high=math.nan, se=math.nan, df=math.nan,
                       min_effect=c.min_effect if c.min_effect is not None else math.nan, p_holm=math.nan,
                       p_holm_reversed=math.nan, detectable=math.nan, reason=reasons[c.id])
            continue
        i, (effect, spread) = at[c.id], measured[c.id]
        row.update(effect=effect, ci_low=effect - hw[i], ci_high=effect + hw[i], se=spread.se, df=float(df[i]),
                   min_effect=margins[c.id], p_holm=float(adj_s[i]), p_holm_reversed=float(adj_c[i]),
                   detectable=float((margins[c.id] if better[i] else 0.0) + step[i] + power[i]))
        row["verdict"], row["reason"] = _verdict(c, row, adj_s[i], adj_c[i], p_s[i], level, k, alpha)
        notes = []
        if c.expect == "no_gain" and c.min_effect is None:
            notes.append(f"the margin is the smallest this design resolves: {spread.n_test} videos, "
                         f"{spread.n_seeds} seeds, the claim on its own (`no_gain_margin`)")
        if spread.se == 0:
            notes.append(f"no spread over seeds or videos: decided by the exact sign-test floor "
                         f"2^-{spread.n_test} = {0.5 ** spread.n_test:.3g}")
        if row["n_seeds"] < MIN_SEEDS:
            notes.append(f"exploratory: {row['n_seeds']} seed(s), fewer than the {MIN_SEEDS} a verdict of the "
                         f"book needs" + ("; the training noise is not measured" if row["n_seeds"] < 2 else ""))
        if notes:
            row["reason"] = row["reason"] + " (" + "; ".join(notes) + ")"
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _threshold(c: Claim, spread: Spread, alpha: float) -> float:
    """A claim's minimum effect, or its no-gain margin (`no_gain_margin` of its design unless set)."""
    if c.min_effect is not None:
        return float(c.min_effect)
    if c.expect == "better":
        return 1.0
    return no_gain_margin(n_test=spread.n_test, n_seeds=spread.n_seeds, alpha=alpha)


def _verdict(c: Claim, row: dict, p_s: float, p_c: float, p_raw: float, level: float, k: int,
             alpha: float) -> tuple[str, str]:
    m, lo, hi = row["min_effect"], row["ci_low"], row["ci_high"]
    interval = f"{100 * (1 - alpha):g}% interval [{lo:+.1f}, {hi:+.1f}]"
    if c.expect == "better":
        support = ("holds", f"{interval} lies above the minimum effect {m:+.1f}")
        contrary = ("reversed", f"{interval} lies below zero: {c.worse} beats {c.better}")
    else:
        support = ("no gain", f"{interval} lies inside the margin ±{m:.1f}")
        contrary = ("reversed", f"{interval} lies above the margin +{m:.1f}: more of it still helps")
    if p_s < level:
        return support
    if p_c < level:
        return contrary
    if p_raw < level:
        return "inconclusive", (f"{interval} clears the bar, but not after Holm correction over {k} claims "
                                f"(adjusted p = {p_s:.3g})")
    clears = lo > m if c.expect == "better" else -m < lo and hi < m
    if clears:  # the interval clears the bar, but the p-value is held at the floor 2^-V
        why = (f"clears the bar, but {row['n_test']} test videos cannot decide it at this level (no test on "
               f"them can give a p-value below 2^-{row['n_test']})")
    elif c.expect == "better" and lo > 0:
        why = f"lies above zero but not above the minimum effect {m:+.1f}"
    elif c.expect == "better" and hi < 0:
        why = f"lies below zero, but not after Holm correction over {k} claims"
    elif c.expect == "better":
        why = "includes zero"
    elif hi < -m:
        why = f"lies below the margin -{m:.1f}: more of it hurts, which is not the same as no gain"
    else:
        why = f"is not inside the margin ±{m:.1f}"
    return "inconclusive", f"{interval} {why}"


_VIEW = {"claim": "claim", "statement": "statement", "category": "category", "verdict": "verdict",
         "effect": "our effect", "ci_low": "95% low", "ci_high": "95% high",
         "min_effect": "min. effect / margin", "detectable": "detectable (80% power)",
         "paper_effect": "paper's effect", "paper_source": "paper's source", "reason": "reason"}


def view(table: pd.DataFrame, *, columns: Sequence[str] = ("claim", "statement", "verdict", "effect", "ci_low",
                                                          "ci_high", "min_effect", "detectable", "paper_effect",
                                                          "paper_source")):
    """A claims table as the chapters show it: the chosen `COLUMNS` under readers' names, one decimal,
    "—" for a value a claim does not have (a pandas Styler)."""
    unknown = [c for c in columns if c not in _VIEW]
    if unknown:
        raise ValueError(f"view shows the columns {list(_VIEW)}; not {unknown}")
    return (table[list(columns)].rename(columns=_VIEW)
            .style.format(precision=1, na_rep="—").hide(axis="index"))


# --------------------------------------------------------------------------- a metric that is not a mean
def audit_metric(claims: Sequence[Claim], scores: dict, targets, *, metric: Callable[[Any, Any], float],
                 n_boot: int = 2000, alpha: float = 0.05, seed: int = 0, exploratory: bool = False) -> pd.DataFrame:
    """Decide claims about a metric that is not a mean over test videos (e.g. mAP), in `audit`'s schema.

    `audit` needs each test video's outcome (right or wrong) because accuracy is their mean,
    so the effect splits into per-video differences. mAP does not: a class's AP depends on how
    every test video ranks against the others. The two parts of the effect's variance are
    estimated without per-video differences instead, and decided by `audit`'s rule.

    scores:  ``scores[condition][seed]`` -> (V, C) scores of the same V test videos (rows in the
             same order for every condition and seed); `targets` (V, C) (or (V,)) their labels.
             Both conditions need the same seeds.
    metric:  ``metric(scores, targets)`` -> a number in the claims' units (points: mAP x 100).

    *Effect*: the mean over seeds of ``D_s = metric(better, s) - metric(worse, s)``.
    *Spread*: the seed part is ``var_s(D_s) / S`` (S − 1 df), as `audit`'s ``MS_seed / (S V)``.
    The video part comes from `n_boot` resamples of the test videos (the same draw for both
    conditions and every seed), inflated by V / (V − 1): the resampled seed mean's variance
    (``B_mean``, `audit`'s ``MS_video / (S V)``) less the seed × video share, which shows as the
    excess of the single seeds' resampling variance (``B_one``) over it:
    ``video part = (B_mean − (B_one − B_mean) / (S − 1))^+`` (V − 1 df). For accuracy as the
    metric these are `audit`'s two parts up to resampling noise (tested).
    *Verdicts*: `audit`'s, with its interval, floor, seed rule and Holm correction over the
    claims of this call. Claims restricted to a category and "no_gain" claims are not
    supported (ValueError).
    """
    claims = list(claims)
    _check_call(claims, alpha, "holm")
    for c in claims:
        if c.expect != "better" or c.category is not None:
            raise ValueError(f"claim {c.id}: audit_metric decides expect='better' claims over all test videos only")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot}")
    y = np.asarray(targets)
    v = len(y)
    measured, counts = {}, {}
    for c in claims:
        if c.not_testable:
            counts[c.id] = (0, 0)
            continue
        for cond in (c.better, c.worse):
            if cond not in scores:
                raise ValueError(f"no scores for condition {cond!r}; the conditions are {sorted(scores)}")
        sa, sb = set(scores[c.better]), set(scores[c.worse])
        if sa != sb:
            raise ValueError(f"conditions {c.better!r} and {c.worse!r} were not run on the same seeds "
                             f"({sorted(sa)} against {sorted(sb)}); a paired comparison needs both on every seed")
        seeds = sorted(sa)
        a = [np.asarray(scores[c.better][s], dtype=float) for s in seeds]
        b = [np.asarray(scores[c.worse][s], dtype=float) for s in seeds]
        if any(x.shape[0] != v for x in a + b):
            raise ValueError(f"claim {c.id}: every score matrix needs one row per test video ({v})")
        counts[c.id] = (len(seeds), v)
        if v < 2 or not seeds:
            continue
        diffs = np.array([metric(x, y) - metric(z, y) for x, z in zip(a, b)])               # (S,)
        rng = np.random.default_rng([seed, zlib.crc32(c.id.encode())])
        boot = np.empty((n_boot, len(seeds)))
        for i in range(n_boot):
            idx = rng.integers(0, v, size=v)                                               # the same videos for all
            boot[i] = [metric(x[idx], y[idx]) - metric(z[idx], y[idx]) for x, z in zip(a, b)]
        inflate = v / (v - 1)
        b_mean = float(boot.mean(1).var(ddof=1)) * inflate
        if len(seeds) == 1:
            spread = Spread(0.0, b_mean, 1, v)
        else:
            b_one = float(boot.var(0, ddof=1).mean()) * inflate
            resid = max(0.0, b_one - b_mean) / (len(seeds) - 1)
            spread = Spread(float(diffs.var(ddof=1)) / len(seeds), max(0.0, b_mean - resid), len(seeds), v)
        measured[c.id] = (float(diffs.mean()), spread)
    return _decide(claims, measured, counts, alpha=alpha, correction="holm", exploratory=exploratory)


# --------------------------------------------------------------------------- power
def detectable_effect(*, n_test: int, n_seeds: int, accuracy: float, min_effect: float = 1.0,
                      alpha: float = 0.05, power: float = 0.8, n_claims: int = 1,
                      video_sd: float = 0.0, seed_sd: float = 0.0, expect: str = "better") -> float:
    """The smallest true effect (points) that the audit calls "holds" with probability `power`;
    for ``expect="no_gain"``, the smallest margin within which a true effect of zero shows "no
    gain" with probability `power`. ``inf`` where `n_test` videos cannot reach the level at all.

    The planning model behind it, stated so it can be argued with: each of the two conditions
    gets each test video right with probability `accuracy`, independently on each seed and of
    the other condition, so one (seed, video) difference has variance ``2 p (1 - p)``;
    `video_sd` (points) is the spread over videos of the expected per-video difference (videos
    one condition systematically gets and the other does not), `seed_sd` (points) the spread
    over seeds of the accuracy difference on an endless test set. Independent errors overstate
    the noise of two similar models (they agree on most videos): read the result as an upper
    bound for that term. `audit` reports the measured counterpart (`detectable`) of every claim.

    The audit's own rule is mirrored, not a textbook formula: its two variance parts (the
    mean squares drawn from their normal-theory distributions, a fixed-seed Monte Carlo of
    20 000 draws, so the answer is deterministic), their t quantiles, the floor ``2^-V`` and
    the worst Holm step for `n_claims` claims (Bonferroni: ``alpha / (2 n_claims)``).
    `accuracy` is the models' expected (or observed) accuracy; 0 and 1 are taken as half a test
    video from the edge (``0.5 / n_test``), where the binomial variance vanishes.
    """
    if n_test < 2 or n_seeds < 1:
        raise ValueError(f"need n_test >= 2 and n_seeds >= 1, got {n_test}, {n_seeds}")
    if not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy is a fraction in [0, 1], got {accuracy}")
    if expect not in EXPECTS:
        raise ValueError(f"expect must be one of {EXPECTS}, got {expect!r}")
    # An observed accuracy of exactly 0 or 1 (every test video wrong or right: a small test set)
    # would give the differences no variance; it is taken half a video from the edge instead.
    accuracy = min(max(accuracy, 0.5 / n_test), 1 - 0.5 / n_test)
    if not 0 < power < 1 or n_claims < 1:
        raise ValueError(f"need 0 < power < 1 and n_claims >= 1, got {power}, {n_claims}")
    s, v, n = n_seeds, n_test, 20_000
    level = alpha / (2 * n_claims)
    if 0.5 ** v >= level:
        return math.inf
    rng = np.random.default_rng(0)
    var_e = 2 * accuracy * (1 - accuracy) * 100 ** 2  # points²
    var_v, var_s = video_sd ** 2, seed_sd ** 2
    true_se = math.sqrt(var_e / (s * v) + var_v / v + var_s / s)
    ms_video = (var_e + s * var_v) * rng.chisquare(v - 1, n) / (v - 1)
    if s > 1:
        df_e = (s - 1) * (v - 1)
        ms_seed = (var_e + v * var_s) * rng.chisquare(s - 1, n) / (s - 1)
        ms_resid = var_e * rng.chisquare(df_e, n) / df_e
        seed_part, video_part = ms_seed / (s * v), np.maximum(0.0, ms_video - ms_resid) / (s * v)
    else:
        seed_part, video_part = np.zeros(n), ms_video / v
    h = _half_width(level, seed_part, video_part, max(s - 1, 1), v - 1)
    noise = true_se * rng.standard_normal(n)  # effect_hat - true effect
    if expect == "better":  # holds when effect_hat - h > min_effect
        return float(min_effect + np.quantile(h - noise, power))
    return float(np.quantile(np.abs(noise) + h, power))  # no gain when |effect_hat| + h < margin


@functools.lru_cache(maxsize=256)
def no_gain_margin(*, n_test: int, n_seeds: int, n_claims: int = 1, alpha: float = 0.05) -> float:
    """The margin (points) a "no_gain" claim is tested against unless it sets its own.

    The smallest margin within which a true effect of zero shows "no gain" with 80% power, for
    this design (`n_test` videos, `n_seeds` seeds, the worst Holm step among `n_claims`), under
    `detectable_effect`'s planning model at `MARGIN_ACCURACY` (50%, where the binomial variance
    is largest) with independent errors: a margin the audit can resolve whatever the models,
    chosen from the design alone, never from the outcomes it will judge.
    """
    return detectable_effect(n_test=n_test, n_seeds=n_seeds, accuracy=MARGIN_ACCURACY, n_claims=n_claims,
                             alpha=alpha, expect="no_gain")


# --------------------------------------------------------------------------- simulation
def simulate_outcomes(*, n_claims: int, n_seeds: int, n_test: int, effect: float, accuracy: float = 0.6,
                      difficulty_sd: float = 0.0, video_sd: float = 0.0, seed_sd: float = 0.0,
                      shared: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Outcomes of `n_claims` simulated comparisons with a known true effect, for checking the audit.

    Claim k compares condition ``A{k}`` (better) with ``B{k}`` on its own `n_test` videos and
    `n_seeds` seeds. Video v of claim k has a difficulty: condition B gets it right with
    probability ``q = accuracy + difficulty_sd · u`` (u uniform on ±√3, so `difficulty_sd` is
    its standard deviation), condition A with ``q + effect + e_v`` where ``e_v`` (sd `video_sd`)
    is that video's own deviation from the effect; each seed shifts each condition's
    probabilities (the two shifts differ by sd `seed_sd`). With probability `shared` the two
    conditions draw the same random number for a (seed, video), which makes them agree more
    often without changing either's accuracy (two similar models). All in points except
    `accuracy`, `shared`. The true effect is exactly `effect` as long as no probability leaves
    [0, 1] (they are clipped); `ValueError` if more than 1% would.
    """
    rng = np.random.default_rng(seed)
    k, s, v = n_claims, n_seeds, n_test
    q = accuracy + difficulty_sd / 100 * rng.uniform(-math.sqrt(3), math.sqrt(3), (k, 1, v))  # (K, 1, V)
    e = rng.normal(0.0, video_sd / 100, (k, 1, v)) if video_sd else 0.0
    g = rng.normal(0.0, seed_sd / 100 / math.sqrt(2), (2, k, s, 1)) if seed_sd else np.zeros((2, k, s, 1))
    pb = q + g[1]  # (K, S, V)
    pa = q + effect / 100 + e + g[0]
    out_of_range = float(np.mean((pa < 0) | (pa > 1) | (pb < 0) | (pb > 1)))
    if out_of_range > 0.01:
        raise ValueError(f"{100 * out_of_range:.1f}% of the probabilities leave [0, 1]: the true effect would "
                         f"not be {effect}; use smaller spreads or an accuracy nearer 0.5")
    ub = rng.random((k, s, v))
    ua = np.where(rng.random((k, s, v)) < shared, ub, rng.random((k, s, v)))
    correct = np.stack([ua < np.clip(pa, 0, 1), ub < np.clip(pb, 0, 1)])  # (2, K, S, V)
    c_idx, k_idx, s_idx, v_idx = np.indices(correct.shape).reshape(4, -1)
    # "A0".."A{K-1}", "B0"..: a categorical column (2 x K x S x V rows; strings built once per claim)
    names = pd.Categorical.from_codes(c_idx * k + k_idx, categories=[f"{c}{i}" for c in "AB" for i in range(k)])
    return pd.DataFrame({"condition": names, "seed": s_idx, "video": k_idx * v + v_idx,
                         "correct": correct.reshape(-1).astype(int)})


def simulate_heterogeneous(*, n_claims: int, n_seeds: int, n_test: int, effect: float, accuracy: float = 0.7,
                           difficulty: float = 2.0, interaction: float = 0.5, seed_sd: float = 0.15,
                           shared: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Outcomes of simulated comparisons from a second generative model, unlike `simulate_outcomes`.

    Written to check the audit on data it was not designed around: a latent-threshold (probit)
    model with heavy heterogeneity. Condition c gets video v right on seed s when
    ``mu_c + b_v + u_cv + g_cs + e_csv > 0``, with

    - ``b_v`` ~ N(0, `difficulty`²): the video's difficulty, shared by both conditions (heavy
      heterogeneity: most videos are nearly always right or nearly always wrong);
    - ``u_cv`` ~ N(0, `interaction`²): a condition × video interaction (videos one model
      handles better than the other);
    - ``g_cs`` ~ N(0, `seed_sd`²): a seed effect per condition (training noise);
    - ``e_csv`` = sqrt(`shared`) z_sv + sqrt(1 − `shared`) z_csv: per-run noise, partly shared by
      the two conditions on the same seed and video (two similar models agree more often).

    All on the probit scale. ``mu_B`` makes B's expected accuracy `accuracy`, ``mu_A`` makes A's
    `accuracy` + `effect` / 100 (closed form: the latent sum is normal), so the true effect
    over the population of videos and seeds is exactly `effect` points. The defaults make the
    two conditions agree on about 85% of (seed, video) pairs.
    """
    if not 0 < accuracy < 1 or not 0 < accuracy + effect / 100 < 1:
        raise ValueError(f"accuracy {accuracy} and accuracy + effect/100 must lie in (0, 1)")
    if not 0 <= shared <= 1:
        raise ValueError(f"shared is a fraction in [0, 1], got {shared}")
    rng = np.random.default_rng(seed)
    k, s, v = n_claims, n_seeds, n_test
    total = math.sqrt(difficulty ** 2 + interaction ** 2 + seed_sd ** 2 + 1.0)  # sd of the latent sum
    mu = np.array([stats.norm.ppf(accuracy + effect / 100), stats.norm.ppf(accuracy)]) * total  # A, B
    b = rng.normal(0.0, difficulty, (1, k, 1, v))
    u = rng.normal(0.0, interaction, (2, k, 1, v))
    g = rng.normal(0.0, seed_sd, (2, k, s, 1))
    e = math.sqrt(shared) * rng.normal(size=(1, k, s, v)) + math.sqrt(1 - shared) * rng.normal(size=(2, k, s, v))
    correct = (mu[:, None, None, None] + b + u + g + e) > 0  # (2, K, S, V)
    c_idx, k_idx, s_idx, v_idx = np.indices(correct.shape).reshape(4, -1)
    names = pd.Categorical.from_codes(c_idx * k + k_idx, categories=[f"{c}{i}" for c in "AB" for i in range(k)])
    return pd.DataFrame({"condition": names, "seed": s_idx, "video": k_idx * v + v_idx,
                         "correct": correct.reshape(-1).astype(np.int8)})


def simulated_claims(n_claims: int, *, expect: str = "better", min_effect: float | None = None) -> list[Claim]:
    """The claims that go with `simulate_outcomes` and `simulate_heterogeneous`: ``A{k}`` against ``B{k}``."""
    return [Claim(f"S{k}", f"simulated comparison {k}", better=f"A{k}", worse=f"B{k}", expect=expect,
                  min_effect=min_effect) for k in range(n_claims)]
