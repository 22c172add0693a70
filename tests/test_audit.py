"""The claims audit: effects by hand, the verdict rules, Holm, and a simulation of claims with
known true effects at the ci test-set size (80 test videos, 5 seeds)."""

import math

import numpy as np
import pandas as pd
import pytest

from actionbook import audit as A
from actionbook.audit import Claim, audit, detectable_effect, simulate_outcomes, simulated_claims

CI_TEST, CI_SEEDS = 80, 5


def _frame(table: dict[str, list[list[int]]], categories: list[str] | None = None) -> pd.DataFrame:
    """{condition: seeds x videos of 0/1} -> the long outcomes frame."""
    rows = []
    for cond, m in table.items():
        for s, row in enumerate(m):
            for v, c in enumerate(row):
                rows.append({"condition": cond, "seed": s, "video": f"v{v}", "correct": c,
                             **({"category": categories[v]} if categories else {})})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- effects by hand
def test_effect_is_the_paired_mean_difference_in_points():
    o = _frame({"A": [[1, 1, 0, 1], [1, 0, 1, 1]],   # 3/4 and 3/4
                "B": [[1, 0, 0, 0], [0, 0, 1, 1]]})  # 1/4 and 2/4
    d, seeds, videos = A.effect_matrix(o, "A", "B")
    assert seeds == [0, 1] and videos == ["v0", "v1", "v2", "v3"]
    np.testing.assert_array_equal(d, [[0, 1, 0, 1], [1, 0, 0, 0]])
    r = audit([Claim("X", "A beats B", better="A", worse="B", paper_effect=2.5, paper_source="Table 9")], o)
    row = r.iloc[0]
    # (75 - 25 + 75 - 50) / 2 = 37.5 points
    assert row["effect"] == pytest.approx(37.5)
    assert row["ci_low"] < 37.5 < row["ci_high"]
    assert (row["n_seeds"], row["n_test"]) == (2, 4)
    assert (row["paper_effect"], row["paper_source"]) == (2.5, "Table 9")
    assert list(r.columns) == list(A.COLUMNS)


def test_only_shared_seeds_and_videos_are_paired_and_holes_are_refused():
    o = _frame({"A": [[1, 1, 0], [1, 0, 1], [0, 0, 0]], "B": [[0, 1, 0], [1, 1, 1]]})
    d, seeds, videos = A.effect_matrix(o, "A", "B")
    assert seeds == [0, 1]  # seed 2 of A has no partner
    np.testing.assert_array_equal(d, [[1, 0, 0], [0, -1, 0]])
    holed = o.drop(index=o.index[(o.condition == "B") & (o.seed == 1) & (o.video == "v2")])
    with pytest.raises(ValueError, match="'B' lacks 1 \\(seed, video\\) outcome"):
        A.effect_matrix(holed, "A", "B")


def test_category_claims_use_only_that_categorys_videos():
    o = _frame({"A": [[1, 1, 0, 0]], "B": [[0, 1, 1, 0]]}, categories=["motion", "motion", "appearance", "appearance"])
    r = audit([Claim("M", "A wins on motion", "A", "B", category="motion"),
               Claim("P", "A wins on appearance", "A", "B", category="appearance")], o)
    assert r["effect"].tolist() == pytest.approx([50.0, -50.0])
    assert r["n_test"].tolist() == [2, 2]
    with pytest.raises(ValueError, match="needs a 'category' column"):
        audit([Claim("M", "", "A", "B", category="motion")], o.drop(columns="category"))


def test_bootstrap_variance_is_the_unbiased_two_way_anova_estimate():
    rng = np.random.default_rng(5)
    d = (rng.random((5, 60)) < 0.5).astype(float) - (rng.random((5, 60)) < 0.4) + rng.normal(0, 0.3, (5, 1))
    ms_seed, ms_video, ms_resid = A._mean_squares(d)
    assert ms_seed > ms_resid  # the seed term is active in this matrix
    want = (ms_seed + ms_video - ms_resid) / d.size
    boot = A.bootstrap_effects(d, n_boot=40_000, rng=np.random.default_rng(0))
    assert boot.mean() == pytest.approx(d.mean(), abs=0.01)
    assert boot.var() == pytest.approx(want, rel=0.05)


def test_holm_adjustment_by_hand():
    np.testing.assert_allclose(A.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(A.holm([0.2, math.nan, 0.01]), [0.2, math.nan, 0.02])


# --------------------------------------------------------------------------- verdicts
def _two(a_correct: int, b_correct: int, n: int = 200, seeds: int = 1) -> pd.DataFrame:
    """A gets the first a_correct of n videos right, B the first b_correct, on every seed."""
    return _frame({"A": [[int(v < a_correct) for v in range(n)]] * seeds,
                   "B": [[int(v < b_correct) for v in range(n)]] * seeds})


def test_clear_effects_hold_or_reverse_and_reasons_say_why():
    claims = [Claim("up", "A beats B", "A", "B"), Claim("down", "B beats A", "B", "A"),
              Claim("idt", "with IDT", "A", "IDT", not_testable="needs IDT features")]
    r = audit(claims, _two(150, 100, seeds=2)).set_index("claim")
    assert r.loc["up", "verdict"] == "holds" and r.loc["up", "effect"] == pytest.approx(25.0)
    assert r.loc["down", "verdict"] == "reversed" and "beats" in r.loc["down", "reason"]
    assert r.loc["idt", "verdict"] == "not testable here" and r.loc["idt", "reason"] == "needs IDT features"
    assert math.isnan(r.loc["idt", "effect"]) and r.loc["idt", "n_test"] == 0
    assert set(r["verdict"]) <= set(A.VERDICTS)


def test_one_seed_is_inconclusive_unless_accepted():
    claims = [Claim("up", "A beats B", "A", "B")]
    one = audit(claims, _two(150, 100, seeds=1))
    assert one.loc[0, "verdict"] == "inconclusive" and "training noise is not measured" in one.loc[0, "reason"]
    assert audit(claims, _two(150, 100, seeds=1), min_seeds=1).loc[0, "verdict"] == "holds"


def test_the_order_of_the_claims_does_not_change_a_row():
    o = pd.concat([_two(130, 100, n=100, seeds=2),
                   _two(110, 100, n=100, seeds=2).assign(condition=lambda f: f.condition + "x")], ignore_index=True)
    claims = [Claim("a", "", "A", "B"), Claim("b", "", "Ax", "Bx")]
    one, two = audit(claims, o), audit(claims[::-1], o)
    pd.testing.assert_frame_equal(one, two.iloc[::-1].reset_index(drop=True))


def test_an_effect_below_the_minimum_is_not_a_hold():
    # +5 points, sure to be above zero, but the claim asks for at least 10
    r = audit([Claim("small", "A beats B by 10", "A", "B", min_effect=10.0)], _two(110, 100, n=200, seeds=3))
    assert r.loc[0, "verdict"] == "inconclusive"
    assert r.loc[0, "ci_low"] > 0 and "not above the minimum effect" in r.loc[0, "reason"]


def test_no_gain_needs_the_interval_inside_the_margin():
    same = _two(120, 120)
    r = audit([Claim("flat", "more stops helping", "A", "B", expect="no_gain", min_effect=1.0)], same, min_seeds=1)
    assert r.loc[0, "verdict"] == "no gain" and r.loc[0, "effect"] == 0
    r = audit([Claim("gain", "more stops helping", "A", "B", expect="no_gain", min_effect=1.0)], _two(150, 100),
              min_seeds=1)
    assert r.loc[0, "verdict"] == "reversed"  # more still helps, clearly
    r = audit([Claim("hurt", "more stops helping", "A", "B", expect="no_gain", min_effect=1.0)], _two(100, 150),
              min_seeds=1)
    assert r.loc[0, "verdict"] == "inconclusive" and "hurts" in r.loc[0, "reason"]


def test_holm_can_hold_back_a_claim_that_clears_the_bar_alone():
    # A is right on 10 more of 200 videos than B: +5 points, lower 95% bound near +2 (p ~ 0.005 one-sided)
    o = _two(110, 100, n=200)
    nulls = [_two(100, 100, n=200).assign(condition=lambda f, k=k: f.condition + str(k)) for k in range(9)]
    outcomes = pd.concat([o] + nulls, ignore_index=True)
    claims = [Claim("real", "A beats B", "A", "B")] + [Claim(f"n{k}", "", f"A{k}", f"B{k}") for k in range(9)]
    alone = audit(claims[:1], o, min_seeds=1)
    assert alone.loc[0, "verdict"] == "holds" and alone.loc[0, "ci_low"] > 1.0
    many = audit(claims, outcomes, min_seeds=1)
    assert many.loc[0, "verdict"] == "inconclusive"
    assert many.loc[0, "p_holm"] > 0.025 and "Holm correction over 10 claims" in many.loc[0, "reason"]
    loose = audit(claims, outcomes, correction="none", min_seeds=1)
    assert loose.loc[0, "verdict"] == "holds"


def test_same_seed_same_table_and_bad_input_is_named():
    o = _two(130, 100, n=100, seeds=2)
    claims = [Claim("c", "A beats B", "A", "B")]
    pd.testing.assert_frame_equal(audit(claims, o, seed=3), audit(claims, o, seed=3))
    with pytest.raises(ValueError, match="lack the column"):
        audit(claims, o.drop(columns="video"))
    with pytest.raises(ValueError, match="must be 0 or 1"):
        audit(claims, o.assign(correct=2))
    with pytest.raises(ValueError, match="repeated"):
        audit(claims, pd.concat([o, o.head(1)]))
    with pytest.raises(ValueError, match="no outcomes for condition 'C'"):
        audit([Claim("c", "", "C", "B")], o)
    with pytest.raises(ValueError, match="ids repeat"):
        audit(claims * 2, o)
    with pytest.raises(ValueError, match="expect"):
        Claim("c", "", "A", "B", expect="worse")


# --------------------------------------------------------------------------- simulation at the ci size
SIM = dict(n_seeds=CI_SEEDS, n_test=CI_TEST, accuracy=0.6, difficulty_sd=15, video_sd=5, seed_sd=2)


@pytest.mark.parametrize("true_effect", [0.0, 1.0])  # no effect, and exactly the minimum effect (the worst case)
def test_null_claims_rarely_hold(true_effect):
    n = 500
    o = simulate_outcomes(n_claims=n, effect=true_effect, seed=11, **SIM)
    r = audit(simulated_claims(n), o, correction="none")  # each claim on its own: no help from Holm
    held = (r["verdict"] == "holds").mean()
    assert held < 0.05, f"{held:.1%} of {n} claims with a true effect of {true_effect} points 'hold'"
    # the intervals cover the true effect about 95% of the time: the uncertainty is not understated
    covered = ((r["ci_low"] <= true_effect) & (true_effect <= r["ci_high"])).mean()
    assert 0.92 <= covered <= 0.995


def test_null_claims_with_a_strong_seed_effect_rarely_hold():
    # most of the spread from training noise, five seeds: the t quantile has to widen the interval
    o = simulate_outcomes(n_claims=500, effect=1.0, seed=12, **{**SIM, "seed_sd": 6, "video_sd": 0})
    r = audit(simulated_claims(500), o, correction="none")
    assert (r["verdict"] == "holds").mean() < 0.05
    assert r["df"].median() < CI_TEST - 1  # the seeds' few degrees of freedom are counted


def test_a_large_true_effect_mostly_holds_even_after_holm():
    o = simulate_outcomes(n_claims=20, effect=25.0, seed=13, **{**SIM, "accuracy": 0.5, "difficulty_sd": 10})
    r = audit(simulated_claims(20), o)
    assert (r["verdict"] == "holds").mean() >= 0.8


def test_no_gain_is_found_when_two_similar_models_are_equal_and_rarely_at_the_margin():
    sim = dict(n_seeds=CI_SEEDS, n_test=CI_TEST, accuracy=0.6, difficulty_sd=15, shared=0.9)
    claims = simulated_claims(500, expect="no_gain", min_effect=5.0)
    equal = audit(claims, simulate_outcomes(n_claims=500, effect=0.0, seed=14, **sim), correction="none")
    assert (equal["verdict"] == "no gain").mean() > 0.5
    # found in more than 80% of runs, so the margin 'detectable' with 80% power is below the 5 used
    assert (equal["verdict"] == "no gain").mean() < 0.8 or equal["detectable"].median() < 5.0
    at_margin = audit(claims, simulate_outcomes(n_claims=500, effect=5.0, seed=15, **sim), correction="none")
    assert (at_margin["verdict"] == "no gain").mean() < 0.05


def test_detectable_effect_gives_the_promised_power():
    d = detectable_effect(n_test=CI_TEST, n_seeds=CI_SEEDS, accuracy=0.6)
    o = simulate_outcomes(n_claims=300, n_seeds=CI_SEEDS, n_test=CI_TEST, effect=d, accuracy=0.6, seed=16)
    power = (audit(simulated_claims(300), o, correction="none")["verdict"] == "holds").mean()
    assert 0.7 <= power <= 0.92, f"power {power:.0%} at the 'detectable' effect {d:.1f}"
    # more test videos, more seeds or fewer claims: a smaller detectable effect
    assert detectable_effect(n_test=400, n_seeds=5, accuracy=0.6) < d
    assert detectable_effect(n_test=80, n_seeds=10, accuracy=0.6) < d
    assert detectable_effect(n_test=80, n_seeds=5, accuracy=0.6, n_claims=10) > d


def test_detectable_effect_at_an_accuracy_of_zero_or_one():
    """Full mode on a small test set can score every video right (or wrong): the planning formula
    takes that as half a video from the edge instead of refusing (found by the full-mode smoke test)."""
    edge = detectable_effect(n_test=4, n_seeds=1, accuracy=0.125)
    assert detectable_effect(n_test=4, n_seeds=1, accuracy=0.0) == edge
    assert detectable_effect(n_test=4, n_seeds=1, accuracy=1.0) == detectable_effect(n_test=4, n_seeds=1, accuracy=0.875)
    assert math.isfinite(edge) and edge > 0
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
        detectable_effect(n_test=4, n_seeds=1, accuracy=1.5)


def test_a_category_with_fewer_than_two_test_videos_is_not_testable_not_an_error():
    """A small test set (the full-mode smoke test's two videos) leaves a category with one test video or
    none: its claim says so, and the other claims are still computed."""
    cats = ["motion"] * 199 + ["interaction"]
    o = _frame({"A": [[int(v < 150) for v in range(200)]] * 2, "B": [[int(v < 100) for v in range(200)]] * 2}, cats)
    claims = [Claim("all", "A beats B", "A", "B"), Claim("one", "A beats B on interaction", "A", "B",
                                                          category="interaction"),
              Claim("none", "A beats B on appearance", "A", "B", category="appearance")]
    r = audit(claims, o).set_index("claim")
    assert r.loc["all", "verdict"] == "holds"
    for cid, n in (("one", 1), ("none", 0)):
        assert r.loc[cid, "verdict"] == "not testable here" and r.loc[cid, "n_test"] == n
        assert "at least 2" in r.loc[cid, "reason"] and math.isnan(r.loc[cid, "effect"])


# --------------------------------------------------------------------------- a metric that is not a mean (mAP)

def _map_scores(gain: float, *, videos: int = 60, seeds: int = 3, seed: int = 0):
    """Scores of two conditions on the same multi-label videos; `gain` adds signal to 'A' only."""
    rng = np.random.default_rng(seed)
    y = (rng.random((videos, 4)) < 0.3).astype(float)
    y[0] = 1.0  # every class has a positive
    out = {"A": {}, "B": {}}
    for s in range(seeds):
        out["B"][s] = y * 0.5 + rng.normal(size=y.shape)
        out["A"][s] = y * (0.5 + gain) + rng.normal(size=y.shape)
    return out, y


def _map(x, y):
    from actionbook import metrics
    import torch

    return 100 * metrics.mean_average_precision(torch.as_tensor(x), torch.as_tensor(y))


def test_audit_metric_recomputes_the_metric_on_resamples_and_says_so():
    claim = [Claim("X", "A beats B on mAP", "A", "B", paper_effect=3.2)]
    scores, y = _map_scores(3.0)
    t = A.audit_metric(claim, scores, y, metric=_map, n_boot=300)
    assert list(t.columns) == list(A.COLUMNS) and t.loc[0, "verdict"] == "holds"
    assert t.loc[0, "effect"] == pytest.approx(np.mean([_map(scores["A"][s], y) - _map(scores["B"][s], y)
                                                        for s in range(3)]))
    assert t.loc[0, "ci_low"] > 1.0 and t.loc[0, "n_test"] == 60 and t.loc[0, "n_seeds"] == 3
    flipped = A.audit_metric([Claim("X", "B beats A", "B", "A")], scores, y, metric=_map, n_boot=300)
    assert flipped.loc[0, "verdict"] == "reversed"
    none, y0 = _map_scores(0.0)
    assert A.audit_metric(claim, none, y0, metric=_map, n_boot=300).loc[0, "verdict"] == "inconclusive"
    one = {k: {0: v[0]} for k, v in scores.items()}
    assert A.audit_metric(claim, one, y, metric=_map, n_boot=300).loc[0, "verdict"] == "inconclusive"  # 1 seed
    two = {k: {s: v[s][:1] for s in v} for k, v in scores.items()}
    assert A.audit_metric(claim, two, y[:1], metric=_map, n_boot=300).loc[0, "verdict"] == "not testable here"
    with pytest.raises(ValueError, match="better"):
        A.audit_metric([Claim("N", "no gain", "A", "B", expect="no_gain")], scores, y, metric=_map)
