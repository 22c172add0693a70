"""The claims audit: one rule, shared by every chapter, for deciding a paper's claims.

A chapter declares its paper's claims as data (`Claim`: which condition should beat which, by
at least how much, and the paper's own effect) and hands `audit` the per-video outcomes of its
runs: one row per (condition, seed, test video) with ``correct`` = 1 or 0. `audit` returns one
row per claim with the effect, its 95% interval and a verdict.

The statistics, in full (the page `book/audit.md` explains them for readers)
---------------------------------------------------------------------------------------

*Effect.* For a claim "A beats B", take the seeds and the test videos that both conditions
have, and the paired differences ``d[s, v] = correct_A[s, v] - correct_B[s, v]`` (an S × V
matrix, in points of accuracy: × 100). The effect is their mean, i.e. the difference of the two
accuracies averaged over seeds.

*Uncertainty from both sources.* The effect varies with the seed (training noise) and with
the test set (another draw of test videos from the same distribution would give another
number; with V test videos, one video is 100 / V points). Seeds and videos are *crossed* (every
seed is evaluated on the same videos, and both conditions on the same videos), so the
bootstrap resamples them separately and pairs everything else:

- videos: resample V videos with replacement, the *same* videos for both conditions and for
  every seed (it resamples the columns of ``d``, averaged over seeds);
- seeds: resample S seeds with replacement (the rows' deviations from the mean, i.e. the seed
  effects).

A naive "resample rows and columns" bootstrap of a crossed design counts the seed × video
noise up to three times and is needlessly conservative (Owen 2007, "The pigeonhole
bootstrap"); resampling the raw seed means also counts it once too often. So the seed effects
are shrunk, before resampling, to the part of their spread that the seed × video noise does not
explain, and both kinds of deviation are inflated by ``n/(n-1)`` for resampling from few units
(the residual bootstrap of a random-effects model, Davison & Hinkley 1997, Sec. 3.8). The
bootstrap variance then equals, in expectation, the unbiased two-way ANOVA estimate of the
variance of the mean, ``(MS_seed + MS_video - MS_residual) / (S V)``. The interval is
``effect ± t · se`` with ``se`` the bootstrap standard deviation and ``t`` the quantile of a t
distribution with Satterthwaite's degrees of freedom for that sum of mean squares: with five
seeds and a seed-dominated spread the interval widens as it must, with many test videos it is
the normal interval.

*Verdicts* (``alpha`` = 0.05 gives 95% intervals):

=====================  ======================================================================
verdict                rule (before multiplicity correction)
=====================  ======================================================================
holds                  expect="better": the interval lies above ``min_effect`` (1 point unless
                       the claim says otherwise)
no gain                expect="no_gain" ("more of X stops helping"; ``better`` is the condition
                       with more): the interval lies inside ``± min_effect``
reversed               expect="better": the interval lies below zero; expect="no_gain": the
                       interval lies above ``+ min_effect`` (more still clearly helps)
inconclusive           anything else. Never read as support.
not testable here      the claim says why (``not_testable``); no statistics are computed
=====================  ======================================================================

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
the others, so there are no per-video outcomes): `audit_metric` recomputes the metric on
resampled test videos and seeds and applies the same verdict rule to the percentile interval
(the Relational LSTM's claim L8, Charades mAP). It is conservative for a crossed design and
says so in its docstring.

Usage::

    from actionbook.audit import Claim, audit
    claims = [Claim("R2", "Residual connections help a 3-layer stack", better="res3", worse="plain3",
                    paper_effect=1.2, paper_source="Fig. 3 (text)")]
    table = audit(claims, outcomes)   # outcomes: condition, seed, video, correct[, category]
"""

from __future__ import annotations

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
of accuracy; `df` the t quantile's degrees of freedom; `p_holm` / `p_holm_reversed` the
Holm-adjusted one-sided p-values of the supporting / contrary verdict; `detectable` the true
effect that would hold with 80% power given this claim's measured spread (for a "no_gain" claim:
the margin within which a true effect of zero would show "no gain" with 80% power)."""

_NEEDED = ("condition", "seed", "video", "correct")


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as a comparison between two conditions of our runs.

    `better` is the condition the paper says wins (for expect="no_gain": the condition with
    "more", e.g. more hidden units); `worse` the one it is compared with. `min_effect` (points
    of accuracy) is the smallest effect that counts, or for "no_gain" the margin within which
    the two are called equal. `category` restricts the comparison to the test videos of one
    coarse category (the outcomes then need a ``category`` column). A non-empty `not_testable`
    is the reason the claim cannot be tested here; it is reported, not dropped.
    """

    id: str
    statement: str
    better: str
    worse: str
    expect: str = "better"
    min_effect: float = 1.0
    paper_effect: float | None = None
    paper_source: str = ""
    category: str | None = None
    not_testable: str = ""

    def __post_init__(self) -> None:
        if self.expect not in EXPECTS:
            raise ValueError(f"claim {self.id}: expect must be one of {EXPECTS}, got {self.expect!r}")
        if not (self.min_effect >= 0 and math.isfinite(self.min_effect)):
            raise ValueError(f"claim {self.id}: min_effect must be a finite number >= 0 (points), "
                             f"got {self.min_effect!r}")
        if self.expect == "no_gain" and self.min_effect <= 0:
            raise ValueError(f"claim {self.id}: a no_gain claim needs a margin min_effect > 0")
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

    def matrix(self, better: str, worse: str, category: str | None) -> tuple[np.ndarray, list, list]:
        if category is not None and self.category is None:
            raise ValueError(f"a claim restricted to category {category!r} needs a 'category' column in outcomes")
        for cond in (better, worse):
            if cond not in self.rows:
                raise ValueError(f"no outcomes for condition {cond!r}; the conditions are "
                                 f"{sorted(map(str, self.rows))}")
        (sa, va, a), (sb, vb, b) = self.rows[better], self.rows[worse]
        seeds, videos = np.intersect1d(sa, sb), np.intersect1d(va, vb)
        if category is not None:  # none of the category may be left: `audit` then says "not testable here"
            videos = videos[self.category[videos] == category]
            if not len(videos):
                return np.empty((len(seeds), 0)), list(self.seeds[seeds]), []
        if not len(seeds) or not len(videos):
            raise ValueError(f"conditions {better!r} and {worse!r} share no "
                             f"{'seed' if not len(seeds) else 'test video'}: a paired comparison needs both")
        a = a[np.searchsorted(sa, seeds)][:, np.searchsorted(va, videos)]
        b = b[np.searchsorted(sb, seeds)][:, np.searchsorted(vb, videos)]
        for cond, m in ((better, a), (worse, b)):
            holes = int(np.isnan(m).sum())
            if holes:
                raise ValueError(f"condition {cond!r} lacks {holes} (seed, video) outcome(s) among the "
                                 f"{len(seeds)} seeds and {len(videos)} videos shared with the other "
                                 f"condition; evaluate every seed on every test video")
        return a - b, list(self.seeds[seeds]), list(self.videos[videos])


def effect_matrix(outcomes: pd.DataFrame, better: str, worse: str, *,
                  category: str | None = None) -> tuple[np.ndarray, list, list]:
    """The paired differences ``correct[better] - correct[worse]``, seeds × videos (in 0/±1).

    Uses the seeds and the videos both conditions have; inside them every (seed, video) must be
    present for both, else `ValueError` says which are missing. Returns (matrix, seeds, videos).
    """
    return _Wide(outcomes).matrix(better, worse, category)


# --------------------------------------------------------------------------- the bootstrap
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


def bootstrap_effects(d: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`n_boot` bootstrap replicates of ``d.mean()`` for a seeds × videos matrix of paired differences.

    Videos and seeds are resampled separately (see the module docstring): the seed-averaged
    video deviations, and the seed deviations shrunk to the between-seed variance, each
    inflated by n/(n-1). Vectorised: O(n_boot × (S + V)) work.
    """
    s, v = d.shape
    if v < 2:
        raise ValueError("the bootstrap needs at least 2 test videos")
    grand = d.mean()
    col_dev = (d.mean(0) - grand) * math.sqrt(v / (v - 1))  # (V,)
    # the videos drawn: the same draw for both conditions and for every seed
    out = grand + col_dev[rng.integers(0, v, size=(n_boot, v))].mean(1)  # (B,)
    if s > 1:
        ms_seed, _, ms_resid = _mean_squares(d)
        shrink = math.sqrt(max(0.0, 1.0 - ms_resid / ms_seed)) if ms_seed > 0 else 0.0
        row_dev = (d.mean(1) - grand) * shrink * math.sqrt(s / (s - 1))  # (S,)
        out = out + row_dev[rng.integers(0, s, size=(n_boot, s))].mean(1)
    return out


def _satterthwaite_df(d: np.ndarray) -> float:
    """Degrees of freedom of the variance estimate ``(MS_seed + MS_video - MS_resid) / (S V)``."""
    s, v = d.shape
    ms_seed, ms_video, ms_resid = _mean_squares(d)
    if s < 2 or ms_seed <= ms_resid:  # no between-seed variance beyond the noise: the videos' term only
        return float(v - 1)
    num = (ms_video + ms_seed - ms_resid) ** 2
    den = ms_video ** 2 / (v - 1) + ms_seed ** 2 / (s - 1) + ms_resid ** 2 / ((s - 1) * (v - 1))
    return float(num / den) if den > 0 else float(v - 1)


def _p_above(effect: float, se: float, df: float, threshold: float) -> float:
    """One-sided p-value of H0: true effect <= threshold (small when the effect is clearly above)."""
    if se <= 0:
        return 0.0 if effect > threshold else 1.0
    return float(stats.t.sf((effect - threshold) / se, df))


def _p_below(effect: float, se: float, df: float, threshold: float) -> float:
    """One-sided p-value of H0: true effect >= threshold."""
    if se <= 0:
        return 0.0 if effect < threshold else 1.0
    return float(stats.t.cdf((effect - threshold) / se, df))


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
def audit(claims: Sequence[Claim], outcomes: pd.DataFrame, *, n_boot: int = 2000, alpha: float = 0.05,
          seed: int = 0, correction: str = "holm", min_seeds: int = 2) -> pd.DataFrame:
    """Decide each claim from per-video outcomes; one row per claim, columns `COLUMNS`.

    `outcomes`: one row per (condition, seed, test video), columns ``condition, seed, video,
    correct`` (0/1) and, for claims with a `category`, ``category``. `correction` is "holm"
    (across the testable claims of this call) or "none" (each claim on its own; for studying
    the rule, not for a chapter's table). A claim whose conditions share fewer than
    `min_seeds` seeds is computed but "inconclusive": with one seed the training noise cannot
    be measured, and the interval would show the test set's share only (pass ``min_seeds=1``
    to accept that, e.g. for a single expensive full-mode run, and say so where it is shown).
    Same inputs and `seed`, same table, whatever the order of the claims (each claim's
    bootstrap is seeded by `seed` and its id).
    """
    claims = list(claims)
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot}")
    if min_seeds < 1:
        raise ValueError(f"min_seeds must be at least 1, got {min_seeds}")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")
    table = _Wide(outcomes)
    level = alpha / 2  # each rule is a one-sided test at alpha/2 (a bound of the two-sided 1-alpha interval)

    rows: list[dict] = []
    p_support, p_contrary = [], []
    untested: set[str] = set()  # claims that the data cannot test (declared, or too few test videos)
    for c in claims:
        row = {"claim": c.id, "statement": c.statement, "better": c.better, "worse": c.worse,
               "expect": c.expect, "category": c.category, "min_effect": float(c.min_effect),
               "paper_effect": float(c.paper_effect) if c.paper_effect is not None else math.nan,
               "paper_source": c.paper_source}
        d, seeds, videos = table.matrix(c.better, c.worse, c.category) if not c.not_testable else (None, [], [])
        if c.not_testable or len(videos) < 2:
            where = f" of category {c.category!r}" if c.category else ""
            reason = c.not_testable or (f"{len(videos)} test video(s){where}: a paired comparison needs at least 2 "
                                        f"(a small test set, e.g. the full-mode smoke test's)")
            row.update(verdict="not testable here", effect=math.nan, ci_low=math.nan, ci_high=math.nan,
                       se=math.nan, df=math.nan, n_seeds=len(seeds), n_test=len(videos), reason=reason)
            rows.append(row)
            p_support.append(math.nan)
            p_contrary.append(math.nan)
            untested.add(c.id)
            continue
        d = d * 100.0  # points
        rng = np.random.default_rng([seed, zlib.crc32(c.id.encode())])
        boot = bootstrap_effects(d, n_boot=n_boot, rng=rng)
        effect, se = float(d.mean()), float(boot.std(ddof=1))
        df = _satterthwaite_df(d)
        t = float(stats.t.ppf(1 - level, df))
        m = float(c.min_effect)
        if c.expect == "better":
            ps, pc = _p_above(effect, se, df, m), _p_below(effect, se, df, 0.0)
        else:  # equivalence within +-m (TOST); contrary: more still helps by more than m
            ps = max(_p_above(effect, se, df, -m), _p_below(effect, se, df, m))
            pc = _p_above(effect, se, df, m)
        row.update(effect=effect, ci_low=effect - t * se, ci_high=effect + t * se, se=se, df=df,
                   n_seeds=len(seeds), n_test=len(videos))
        rows.append(row)
        p_support.append(ps)
        p_contrary.append(pc)

    if correction == "holm":
        adj_s, adj_c = holm(p_support), holm(p_contrary)
    else:
        adj_s, adj_c = np.asarray(p_support, float), np.asarray(p_contrary, float)
    k = int(np.sum(~np.isnan(np.asarray(p_support, float))))
    for row, c, ps, pc, raw in zip(rows, claims, adj_s, adj_c, p_support):
        row["p_holm"], row["p_holm_reversed"] = float(ps), float(pc)
        if c.id in untested:
            row["detectable"] = math.nan
            continue
        row["verdict"], row["reason"] = _verdict(c, row, ps, pc, raw, level, k if correction == "holm" else 1)
        if row["n_seeds"] < min_seeds:
            row["verdict"] = "inconclusive"
            row["reason"] = (f"only {row['n_seeds']} seed(s), fewer than {min_seeds}: the training noise is not "
                             f"measured ({row['reason']})")
        step = stats.t.ppf(1 - level / max(1, k if correction == "holm" else 1), row["df"])
        if c.expect == "better":  # the true effect that would hold with 80% power
            row["detectable"] = float(c.min_effect + (step + stats.t.ppf(0.8, row["df"])) * row["se"])
        else:  # the margin within which a true effect of zero would show "no gain" with 80% power
            row["detectable"] = float((step + stats.t.ppf(0.9, row["df"])) * row["se"])
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _verdict(c: Claim, row: dict, p_s: float, p_c: float, p_raw: float, level: float, k: int) -> tuple[str, str]:
    m, lo, hi = c.min_effect, row["ci_low"], row["ci_high"]
    interval = f"{100 * (1 - 2 * level):g}% interval [{lo:+.1f}, {hi:+.1f}]"
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
    if c.expect == "better" and lo > 0:
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


# --------------------------------------------------------------------------- a metric that is not a mean
def audit_metric(claims: Sequence[Claim], scores: dict, targets, *, metric: Callable[[Any, Any], float],
                 n_boot: int = 2000, alpha: float = 0.05, seed: int = 0, min_seeds: int = 2) -> pd.DataFrame:
    """Decide claims about a metric that is not a mean over test videos (e.g. mAP), in `audit`'s schema.

    `audit` needs each test video's outcome (right or wrong) because accuracy is their mean,
    so the effect splits into per-video differences. mAP does not: a class's AP depends on how
    every test video ranks against the others. Here the metric is recomputed on resamples instead.

    scores:  ``scores[condition][seed]`` -> (V, C) scores of the same V test videos (rows in the
             same order for every condition and seed); `targets` (V, C) (or (V,)) their labels.
    metric:  ``metric(scores, targets)`` -> a number in the claims' units (points: mAP x 100).

    *Effect*: the mean over the seeds both conditions have of ``metric(better) - metric(worse)``.
    *Interval*: a paired bootstrap that resamples the test videos (the same draw for both
    conditions and every seed) and, independently, the seeds, and recomputes the metric on
    each draw; ``ci_low``/``ci_high`` are its alpha/2 and 1 - alpha/2 percentiles, ``se`` its
    standard deviation, ``df`` NaN (no t quantile). Resampling seeds and videos of a crossed design
    this way counts their interaction more than once (see the module docstring), so the interval
    is wider than `audit`'s would be for a mean: conservative, never in the claim's favour.
    *Verdicts*: as `audit` for expect="better" (the rule's one-sided p-values are the bootstrap
    fractions at or below ``min_effect`` and at or above zero, Holm-adjusted over the claims of
    this call); fewer than `min_seeds` seeds -> "inconclusive"; fewer than 2 test videos, or a
    declared `not_testable` -> "not testable here". Claims restricted to a category and
    "no_gain" claims are not supported (ValueError).
    """
    claims = list(claims)
    for c in claims:
        if c.expect != "better" or c.category is not None:
            raise ValueError(f"claim {c.id}: audit_metric decides expect='better' claims over all test videos only")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot}")
    level = alpha / 2
    rows, p_support, p_contrary, boots = [], [], [], {}
    for c in claims:
        row = {"claim": c.id, "statement": c.statement, "better": c.better, "worse": c.worse, "expect": c.expect,
               "category": None, "min_effect": float(c.min_effect),
               "paper_effect": float(c.paper_effect) if c.paper_effect is not None else math.nan,
               "paper_source": c.paper_source, "df": math.nan}
        for cond in () if c.not_testable else (c.better, c.worse):
            if cond not in scores:
                raise ValueError(f"no scores for condition {cond!r}; the conditions are {sorted(scores)}")
        seeds = [] if c.not_testable else sorted(set(scores[c.better]) & set(scores[c.worse]))
        a = [np.asarray(scores[c.better][s], dtype=float) for s in seeds]
        b = [np.asarray(scores[c.worse][s], dtype=float) for s in seeds]
        y = np.asarray(targets)
        v = len(y)
        if not c.not_testable and not seeds:
            raise ValueError(f"conditions {c.better!r} and {c.worse!r} share no seed")
        if any(x.shape[0] != v for x in a + b):
            raise ValueError(f"claim {c.id}: every score matrix needs one row per test video ({v})")
        if c.not_testable or v < 2:
            row.update(verdict="not testable here", effect=math.nan, ci_low=math.nan, ci_high=math.nan, se=math.nan,
                       n_seeds=len(seeds), n_test=v, detectable=math.nan,
                       reason=c.not_testable or f"{v} test video(s): a paired comparison needs at least 2")
            rows.append(row)
            p_support.append(math.nan)
            p_contrary.append(math.nan)
            continue
        diffs = np.array([metric(x, y) - metric(z, y) for x, z in zip(a, b)])          # (S,)
        effect = float(diffs.mean())
        rng = np.random.default_rng([seed, zlib.crc32(c.id.encode())])
        boot = np.empty(n_boot)
        for i in range(n_boot):
            idx = rng.integers(0, v, size=v)                                          # the same videos for all
            pick = rng.integers(0, len(seeds), size=len(seeds))
            boot[i] = np.mean([metric(a[k][idx], y[idx]) - metric(b[k][idx], y[idx]) for k in pick])
        m = float(c.min_effect)
        row.update(effect=effect, ci_low=float(np.quantile(boot, level)), ci_high=float(np.quantile(boot, 1 - level)),
                   se=float(boot.std(ddof=1)), n_seeds=len(seeds), n_test=v)
        p_support.append(float((np.sum(boot <= m) + 1) / (n_boot + 1)))
        p_contrary.append(float((np.sum(boot >= 0) + 1) / (n_boot + 1)))
        rows.append(row)
        boots[c.id] = boot
    adj_s, adj_c = holm(p_support), holm(p_contrary)
    k = int(np.sum(~np.isnan(np.asarray(p_support, float))))
    for row, c, ps, pc, raw in zip(rows, claims, adj_s, adj_c, p_support):
        row["p_holm"], row["p_holm_reversed"] = float(ps), float(pc)
        if c.id not in boots:
            continue
        interval = f"{100 * (1 - alpha):g}% bootstrap interval [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"
        if ps < level:
            row["verdict"], row["reason"] = "holds", f"{interval} lies above the minimum effect {c.min_effect:+.1f}"
        elif pc < level:
            row["verdict"], row["reason"] = "reversed", f"{interval} lies below zero: {c.worse} beats {c.better}"
        elif raw < level:
            row["verdict"], row["reason"] = "inconclusive", (f"{interval} clears the bar, but not after Holm "
                                                             f"correction over {k} claims")
        else:
            why = ("includes zero" if row["ci_low"] <= 0 <= row["ci_high"] else
                   f"lies above zero but not above the minimum effect {c.min_effect:+.1f}" if row["ci_low"] > 0 else
                   f"lies below zero, but not after Holm correction over {k} claims")
            row["verdict"], row["reason"] = "inconclusive", f"{interval} {why}"
        if row["n_seeds"] < min_seeds:
            row["verdict"] = "inconclusive"
            row["reason"] = (f"only {row['n_seeds']} seed(s), fewer than {min_seeds}: the training noise is not "
                             f"measured ({row['reason']})")
        z = stats.norm.ppf(1 - level / max(1, k)) + stats.norm.ppf(0.8)
        row["detectable"] = float(c.min_effect + z * row["se"])
    return pd.DataFrame(rows, columns=list(COLUMNS))


# --------------------------------------------------------------------------- power
def detectable_effect(*, n_test: int, n_seeds: int, accuracy: float, min_effect: float = 1.0,
                      alpha: float = 0.05, power: float = 0.8, n_claims: int = 1,
                      video_sd: float = 0.0, seed_sd: float = 0.0) -> float:
    """The smallest true effect (points) that the audit calls "holds" with probability `power`.

    The planning model behind it, stated so it can be argued with: each of the two conditions
    gets each test video right with probability `accuracy`, independently on each seed and of
    the other condition, so one (seed, video) difference has variance ``2 p (1 - p)``;
    `video_sd` (points) is the spread over videos of the expected per-video difference (videos
    one condition systematically gets and the other does not), `seed_sd` (points) the spread
    over seeds of the accuracy difference on an endless test set. Independent errors overstate
    the noise of two similar models (they agree on most videos): read the result as an upper
    bound for that term. `audit` reports the measured counterpart (`detectable`) of every claim.

    The audit's own estimator is mirrored, not a textbook formula: its variance estimate (the
    two-way mean squares, the seed term truncated at zero, which makes it conservative when
    seeds hardly matter), its Satterthwaite t quantile, and the worst Holm step for `n_claims`
    claims (Bonferroni: ``alpha / (2 n_claims)``). The mean squares are drawn from their
    normal-theory distributions (a fixed-seed Monte Carlo of 20 000 draws), so the answer is
    deterministic. `accuracy` is the models' expected (or observed) accuracy; 0 and 1 are taken
    as half a test video from the edge (``0.5 / n_test``), where the binomial variance vanishes.
    """
    if n_test < 2 or n_seeds < 1:
        raise ValueError(f"need n_test >= 2 and n_seeds >= 1, got {n_test}, {n_seeds}")
    if not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy is a fraction in [0, 1], got {accuracy}")
    # An observed accuracy of exactly 0 or 1 (every test video wrong or right: a small test set)
    # would give the differences no variance; it is taken half a video from the edge instead.
    accuracy = min(max(accuracy, 0.5 / n_test), 1 - 0.5 / n_test)
    if not 0 < power < 1 or n_claims < 1:
        raise ValueError(f"need 0 < power < 1 and n_claims >= 1, got {power}, {n_claims}")
    s, v, n = n_seeds, n_test, 20_000
    rng = np.random.default_rng(0)
    var_e = 2 * accuracy * (1 - accuracy) * 100 ** 2  # points²
    var_v, var_s = video_sd ** 2, seed_sd ** 2
    true_se = math.sqrt(var_e / (s * v) + var_v / v + var_s / s)
    ms_video = (var_e + s * var_v) * rng.chisquare(v - 1, n) / (v - 1)
    if s > 1:
        df_e = (s - 1) * (v - 1)
        ms_seed = (var_e + v * var_s) * rng.chisquare(s - 1, n) / (s - 1)
        ms_resid = var_e * rng.chisquare(df_e, n) / df_e
        seed_term = np.maximum(0.0, ms_seed - ms_resid)
        active = ms_seed > ms_resid
        sat = (ms_video + seed_term) ** 2 / (ms_video ** 2 / (v - 1) + ms_seed ** 2 / (s - 1) + ms_resid ** 2 / df_e)
        df = np.where(active, sat, v - 1)
    else:
        seed_term, df = 0.0, np.full(n, v - 1.0)
    se = np.sqrt((ms_video + seed_term) / (s * v))
    t = stats.t.ppf(1 - alpha / (2 * n_claims), df)
    # holds when effect_hat - t se > min_effect, effect_hat = true effect + true_se Z
    need = t * se - true_se * rng.standard_normal(n)
    return float(min_effect + np.quantile(need, power))


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


def simulated_claims(n_claims: int, *, expect: str = "better", min_effect: float = 1.0) -> list[Claim]:
    """The claims that go with `simulate_outcomes`: ``A{k}`` against ``B{k}``."""
    return [Claim(f"S{k}", f"simulated comparison {k}", better=f"A{k}", worse=f"B{k}", expect=expect,
                  min_effect=min_effect) for k in range(n_claims)]
