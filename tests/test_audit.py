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
    r = audit([Claim("X", "A beats B", better="A", worse="B", paper_effect=2.5, paper_source="Table 9")], o,
              exploratory=True)  # two seeds: a verdict only in exploratory mode
    row = r.iloc[0]
    # (75 - 25 + 75 - 50) / 2 = 37.5 points
    assert row["effect"] == pytest.approx(37.5)
    assert row["ci_low"] < 37.5 < row["ci_high"]
    assert (row["n_seeds"], row["n_test"]) == (2, 4)
    assert (row["paper_effect"], row["paper_source"]) == (2.5, "Table 9")
    assert list(r.columns) == list(A.COLUMNS)


def test_conditions_on_different_seeds_or_videos_are_refused_not_paired_on_the_overlap():
    o = _frame({"A": [[1, 1, 0], [1, 0, 1], [0, 0, 0]], "B": [[0, 1, 0], [1, 1, 1]]})
    with pytest.raises(ValueError, match=r"not run on the same seeds: 1 seed\(s\) only 'A' has \(e.g. 2\)"):
        A.effect_matrix(o, "A", "B")
    half = pd.concat([_frame({"A": [[1, 1, 0, 1]]}), _frame({"B": [[0, 1, 0, 1]]}).assign(
        video=lambda f: f.video.str.replace("v", "w"))], ignore_index=True)
    with pytest.raises(ValueError, match="same test videos: 4 test video.*only 'A' has.*4 test video.*only 'B'"):
        audit([Claim("c", "", "A", "B")], half)
    same = o[o.seed < 2]
    d, seeds, videos = A.effect_matrix(same, "A", "B")
    assert seeds == [0, 1] and videos == ["v0", "v1", "v2"]
    np.testing.assert_array_equal(d, [[1, 0, 0], [0, -1, 0]])
    holed = same.drop(index=same.index[(same.condition == "B") & (same.seed == 1) & (same.video == "v2")])
    with pytest.raises(ValueError, match="'B' lacks 1 \\(seed, video\\) outcome"):
        A.effect_matrix(holed, "A", "B")


def test_missing_ids_or_conditions_are_named_not_turned_into_units():
    o = _frame({"A": [[1, 0, 1]] * 5, "B": [[0, 0, 1]] * 5})
    claims = [Claim("c", "", "A", "B")]
    for col in ("seed", "video", "condition"):
        bad = o.astype({col: object})
        bad.loc[3, col] = np.nan
        with pytest.raises(ValueError, match=f"outcomes\\['{col}'\\] is missing .* in 1 row"):
            audit(claims, bad)


def test_category_claims_use_only_that_categorys_videos():
    o = _frame({"A": [[1, 1, 0, 0]] * 5, "B": [[0, 1, 1, 0]] * 5},
               categories=["motion", "motion", "appearance", "appearance"])
    r = audit([Claim("M", "A wins on motion", "A", "B", category="motion"),
               Claim("P", "A wins on appearance", "A", "B", category="appearance")], o)
    assert r["effect"].tolist() == pytest.approx([50.0, -50.0])
    assert r["n_test"].tolist() == [2, 2]
    with pytest.raises(ValueError, match="needs a 'category' column"):
        audit([Claim("M", "", "A", "B", category="motion")], o.drop(columns="category"))


def test_the_two_parts_of_the_spread_by_hand():
    rng = np.random.default_rng(5)
    d = ((rng.random((5, 60)) < 0.5).astype(float) - (rng.random((5, 60)) < 0.4) + rng.normal(0, 0.3, (5, 1))
         + rng.normal(0, 0.5, (1, 60)))  # a seed effect and a video effect
    ms_seed, ms_video, ms_resid = A._mean_squares(d)
    assert ms_video > ms_resid
    sp = A.Spread.of(d)
    # the seed part is the spread of the seed means, the video part what the videos add beyond the residual
    assert sp.seed_var == pytest.approx(d.mean(1).var(ddof=1) / 5)
    assert sp.video_var == pytest.approx((ms_video - ms_resid) / d.size)
    # together: the unbiased two-way ANOVA estimate of the variance of the mean
    assert sp.se ** 2 == pytest.approx((ms_seed + ms_video - ms_resid) / d.size)
    one = A.Spread.of(d[:1])
    assert (one.seed_var, one.n_seeds) == (0.0, 1) and one.video_var == pytest.approx(d[0].var(ddof=1) / 60)


def test_the_interval_gives_each_part_its_own_t_quantile():
    """Banerjee's interval: seeds-only spread -> the t interval on S - 1 df; video-only -> on V - 1."""
    seeds_only = A.Spread(seed_var=4.0, video_var=0.0, n_seeds=5, n_test=80)
    videos_only = A.Spread(seed_var=0.0, video_var=4.0, n_seeds=5, n_test=80)
    from scipy import stats

    for sp, df in ((seeds_only, 4), (videos_only, 79)):
        x = 2.0 * stats.t.isf(0.01, df)  # effect exactly at the 99% one-sided bound
        assert A.p_exceeds([x], [sp])[0] == pytest.approx(0.01, rel=1e-6)
        assert A.p_exceeds([-x], [sp])[0] == pytest.approx(0.99, rel=1e-6)
        assert A._effective_df([sp], 0.05)[0] == pytest.approx(df, rel=1e-3)
    both = A.Spread(seed_var=2.0, video_var=2.0, n_seeds=5, n_test=80)
    assert 4 < A._effective_df([both], 0.05)[0] < 79


def test_no_spread_is_decided_by_the_exact_sign_test_floor_not_by_se_zero():
    # A right and B wrong on 3 videos, five identical seeds: se = 0, but a sign test gives p = 1/8
    o = _frame({"A": [[1, 1, 1]] * 5, "B": [[0, 0, 0]] * 5})
    r = audit([Claim("X", "A beats B", "A", "B")], o).iloc[0]
    assert r["effect"] == 100.0 and r["se"] == 0.0
    assert r["p_holm"] == pytest.approx(1 / 8) and r["verdict"] == "inconclusive"
    assert "2^-3" in r["reason"]
    # both at 100% on two videos: no "no gain" from a zero variance
    same = _frame({"A": [[1, 1]] * 5, "B": [[1, 1]] * 5})
    r = audit([Claim("N", "more gains nothing", "A", "B", expect="no_gain", min_effect=1.0)], same).iloc[0]
    assert r["verdict"] == "inconclusive" and r["p_holm"] == pytest.approx(0.25)
    # the same on 12 videos is decided: 2^-12 < 0.025
    assert audit([Claim("X", "", "A", "B")], _frame({"A": [[1] * 12] * 5, "B": [[0] * 12] * 5})).loc[
        0, "verdict"] == "holds"


def test_holm_adjustment_by_hand():
    np.testing.assert_allclose(A.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(A.holm([0.2, math.nan, 0.01]), [0.2, math.nan, 0.02])


# --------------------------------------------------------------------------- verdicts
def _two(a_correct: int, b_correct: int, n: int = 200, seeds: int = 5) -> pd.DataFrame:
    """A gets the first a_correct of n videos right, B the first b_correct, on every seed."""
    return _frame({"A": [[int(v < a_correct) for v in range(n)]] * seeds,
                   "B": [[int(v < b_correct) for v in range(n)]] * seeds})


def test_clear_effects_hold_or_reverse_and_reasons_say_why():
    claims = [Claim("up", "A beats B", "A", "B"), Claim("down", "B beats A", "B", "A"),
              Claim("idt", "with IDT", "A", "IDT", not_testable="needs IDT features")]
    r = audit(claims, _two(150, 100)).set_index("claim")
    assert r.loc["up", "verdict"] == "holds" and r.loc["up", "effect"] == pytest.approx(25.0)
    assert r.loc["down", "verdict"] == "reversed" and "beats" in r.loc["down", "reason"]
    assert r.loc["idt", "verdict"] == "not testable here" and r.loc["idt", "reason"] == "needs IDT features"
    assert math.isnan(r.loc["idt", "effect"]) and r.loc["idt", "n_test"] == 0
    assert set(r["verdict"]) <= set(A.VERDICTS)


@pytest.mark.parametrize("seeds", [1, 2, 3, 4])
def test_fewer_than_five_seeds_are_not_testable_unless_labelled_exploratory(seeds):
    claims = [Claim("up", "A beats B", "A", "B")]
    r = audit(claims, _two(150, 100, seeds=seeds)).iloc[0]
    assert r["verdict"] == "not testable here" and f"{seeds} seed(s), fewer than the 5" in r["reason"]
    assert math.isnan(r["effect"]) and r["n_seeds"] == seeds
    e = audit(claims, _two(150, 100, seeds=seeds), exploratory=True).iloc[0]
    assert e["verdict"] == "holds" and "exploratory" in e["reason"]
    assert audit(claims, _two(150, 100, seeds=5), exploratory=True).loc[0, "reason"].count("exploratory") == 0


def test_two_seeds_cannot_give_an_interval_wider_than_accuracy_allows_a_verdict():
    """With 2 seeds the seed part has 1 degree of freedom (a Cauchy quantile): intervals of hundreds
    of points. The audit refuses the verdict instead (exploratory mode shows why)."""
    rng = np.random.default_rng(3)
    a = (rng.random((2, 40)) < np.array([[0.9], [0.2]])).astype(int)
    b = (rng.random((2, 40)) < 0.5).astype(int)
    o = _frame({"A": a.tolist(), "B": b.tolist()})
    assert audit([Claim("c", "", "A", "B")], o).loc[0, "verdict"] == "not testable here"
    e = audit([Claim("c", "", "A", "B")], o, exploratory=True).iloc[0]
    assert e["ci_high"] - e["ci_low"] > 200 and e["verdict"] == "inconclusive"


def test_the_order_of_the_claims_does_not_change_a_row():
    o = pd.concat([_two(130, 100, n=100),
                   _two(110, 100, n=100).assign(condition=lambda f: f.condition + "x")], ignore_index=True)
    claims = [Claim("a", "", "A", "B"), Claim("b", "", "Ax", "Bx")]
    one, two = audit(claims, o), audit(claims[::-1], o)
    pd.testing.assert_frame_equal(one, two.iloc[::-1].reset_index(drop=True))


def test_an_effect_below_the_minimum_is_not_a_hold():
    # +5 points, sure to be above zero, but the claim asks for at least 10
    r = audit([Claim("small", "A beats B by 10", "A", "B", min_effect=10.0)], _two(110, 100, n=200))
    assert r.loc[0, "verdict"] == "inconclusive"
    assert r.loc[0, "ci_low"] > 0 and "not above the minimum effect" in r.loc[0, "reason"]


def test_no_gain_needs_the_interval_inside_the_margin():
    same = _two(120, 120).assign(correct=lambda f: np.where((f.condition == "A") & (f.video == "v0"), 0, f.correct))
    r = audit([Claim("flat", "more stops helping", "A", "B", expect="no_gain", min_effect=2.0)], same)
    assert r.loc[0, "verdict"] == "no gain" and r.loc[0, "effect"] == pytest.approx(-0.5)
    r = audit([Claim("flat", "more stops helping", "A", "B", expect="no_gain", min_effect=1.0)], same)
    assert r.loc[0, "verdict"] == "inconclusive" and "not inside the margin" in r.loc[0, "reason"]
    r = audit([Claim("gain", "more stops helping", "A", "B", expect="no_gain", min_effect=1.0)], _two(150, 100))
    assert r.loc[0, "verdict"] == "reversed"  # more still helps, clearly
    r = audit([Claim("hurt", "more stops helping", "A", "B", expect="no_gain", min_effect=1.0)], _two(100, 150))
    assert r.loc[0, "verdict"] == "inconclusive" and "hurts" in r.loc[0, "reason"]


def test_a_no_gain_margin_comes_from_the_design_and_is_stated():
    """Unless a claim sets it, the margin is what the design resolves (`no_gain_margin`), never the
    default 1 point that no ci test set can resolve, and never from the outcomes themselves."""
    small, large = _two(100, 100, n=80), _two(100, 100, n=400)
    claims = [Claim("N", "more gains nothing", "A", "B", expect="no_gain")]
    r80, r400 = audit(claims, small).iloc[0], audit(claims, large).iloc[0]
    assert r80["min_effect"] == pytest.approx(A.no_gain_margin(n_test=80, n_seeds=5))
    assert r400["min_effect"] == pytest.approx(A.no_gain_margin(n_test=400, n_seeds=5))
    assert r400["min_effect"] < r80["min_effect"] and "smallest this design resolves" in r400["reason"]
    # the margin does not move with the outcomes: another run of the same design, the same margin
    other = _two(160, 100, n=400)
    assert audit(claims, other).loc[0, "min_effect"] == r400["min_effect"]
    # more claims in the call: the worst Holm step needs a wider margin
    assert A.no_gain_margin(n_test=400, n_seeds=5, n_claims=13) > r400["min_effect"]


def test_holm_can_hold_back_a_claim_that_clears_the_bar_alone():
    # A is right on 10 more of 200 videos than B: +5 points, lower 95% bound near +2 (p ~ 0.005 one-sided)
    o = _two(110, 100, n=200)
    nulls = [_two(100, 100, n=200).assign(condition=lambda f, k=k: f.condition + str(k)) for k in range(9)]
    outcomes = pd.concat([o] + nulls, ignore_index=True)
    claims = [Claim("real", "A beats B", "A", "B")] + [Claim(f"n{k}", "", f"A{k}", f"B{k}") for k in range(9)]
    alone = audit(claims[:1], o)
    assert alone.loc[0, "verdict"] == "holds" and alone.loc[0, "ci_low"] > 1.0
    many = audit(claims, outcomes)
    assert many.loc[0, "verdict"] == "inconclusive"
    assert many.loc[0, "p_holm"] > 0.025 and "Holm correction over 10 claims" in many.loc[0, "reason"]
    loose = audit(claims, outcomes, correction="none")
    assert loose.loc[0, "verdict"] == "holds"


def test_same_outcomes_same_table_and_bad_input_is_named():
    o = _two(130, 100, n=100)
    claims = [Claim("c", "A beats B", "A", "B")]
    pd.testing.assert_frame_equal(audit(claims, o), audit(claims, o.sample(frac=1.0, random_state=1)))
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


def test_a_category_with_fewer_than_two_test_videos_is_not_testable_not_an_error():
    """A small test set (the full-mode smoke test's two videos) leaves a category with one test video or
    none: its claim says so, and the other claims are still computed."""
    cats = ["motion"] * 199 + ["interaction"]
    o = _frame({"A": [[int(v < 150) for v in range(200)]] * 5, "B": [[int(v < 100) for v in range(200)]] * 5}, cats)
    claims = [Claim("all", "A beats B", "A", "B"), Claim("one", "A beats B on interaction", "A", "B",
                                                          category="interaction"),
              Claim("none", "A beats B on appearance", "A", "B", category="appearance")]
    r = audit(claims, o).set_index("claim")
    assert r.loc["all", "verdict"] == "holds"
    for cid, n in (("one", 1), ("none", 0)):
        assert r.loc[cid, "verdict"] == "not testable here" and r.loc[cid, "n_test"] == n
        assert "at least 2" in r.loc[cid, "reason"] and math.isnan(r.loc[cid, "effect"])


# --------------------------------------------------------------------------- calibration on a second model
# `simulate_heterogeneous` is a latent-threshold model with heavy video heterogeneity, a condition x
# video interaction, a seed effect per condition and partly shared noise (the two conditions agree on
# ~85% of runs): not the model the audit was designed around. Each case audits >= 2,000 claims; the
# bounds allow two standard errors of simulation on top of the promise.


def _sim_error(p: float, n: int) -> float:
    return 2 * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def null_claims():
    """20,000 claims with no effect, ci size (80 test videos, 5 seeds): 2,000 families of ten."""
    n = 20_000
    o = A.simulate_heterogeneous(n_claims=n, n_seeds=CI_SEEDS, n_test=CI_TEST, effect=0.0, seed=21)
    r = audit(simulated_claims(n), o, correction="none")
    return r, o


@pytest.mark.slow
def test_the_second_model_is_as_described(null_claims):
    _, o = null_claims
    wide = o[o.video < 80 * 500].pivot_table(index=["seed", "video"], columns=o.condition.astype(str).str[0],
                                              values="correct", aggfunc="first", observed=True)
    agree = (wide["A"] == wide["B"]).mean()
    assert 0.80 <= agree <= 0.94, f"the two conditions agree on {agree:.1%} of runs"


@pytest.mark.slow
def test_single_claims_keep_their_size_and_intervals_their_coverage(null_claims):
    r, _ = null_claims
    n = len(r)
    assert (r["verdict"] != "not testable here").all()
    held, rev = (r["verdict"] == "holds").mean(), (r["verdict"] == "reversed").mean()
    assert held <= 0.025 + _sim_error(0.025, n) and rev <= 0.025 + _sim_error(0.025, n), (held, rev)
    covered = ((r["ci_low"] <= 0) & (0 <= r["ci_high"])).mean()
    assert abs(covered - 0.95) <= 0.015 + _sim_error(0.05, n), f"coverage {covered:.2%}"
    # the far tail a Holm step uses: P(p < 0.0025) at most 0.25%
    far = (r["p_holm_reversed"] < 0.0025).mean()
    assert far <= 0.0025 + _sim_error(0.0025, n), f"P(p < 0.0025) = {far:.3%}"


@pytest.mark.slow
def test_holm_keeps_the_family_wise_error_of_ten_null_claims(null_claims):
    r, _ = null_claims
    fams = len(r) // 10
    for col in ("p_holm", "p_holm_reversed"):  # false "holds" and false "reversed", each at most alpha/2
        adjusted = np.array([A.holm(f) for f in r[col].to_numpy().reshape(fams, 10)])
        fwer = (adjusted < 0.025).any(axis=1).mean()
        assert fwer <= 0.025 + _sim_error(0.025, fams), f"{col}: family-wise error {fwer:.2%}"


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    dict(n_test=CI_TEST),                                       # at the minimum effect, ci size
    dict(n_test=400),                                           # the ci benchmark's full test split
    dict(n_test=CI_TEST, seed_sd=0.5),                          # training noise dominates
    dict(n_test=CI_TEST, seed_sd=0.02, interaction=1.0),        # the videos dominate
])
def test_claims_at_exactly_the_minimum_effect_rarely_hold(case):
    n = 2000
    o = A.simulate_heterogeneous(n_claims=n, n_seeds=CI_SEEDS, effect=1.0, seed=22, **case)
    r = audit(simulated_claims(n), o, correction="none")
    held = (r["verdict"] == "holds").mean()
    assert held <= 0.025 + _sim_error(0.025, n), f"{held:.2%} of claims at the minimum effect 'hold'"
    covered = ((r["ci_low"] <= 1.0) & (1.0 <= r["ci_high"])).mean()
    assert covered >= 0.935 - _sim_error(0.05, n), f"coverage {covered:.2%}"


@pytest.mark.slow
@pytest.mark.parametrize("accuracy", [0.5, 0.93])  # the middle and near the ceiling
def test_no_gain_at_exactly_the_margin_is_rarely_found_and_zero_usually_is(accuracy):
    n, margin = 2000, A.no_gain_margin(n_test=CI_TEST, n_seeds=CI_SEEDS)
    claims = simulated_claims(n, expect="no_gain")
    for sign in (+1, -1):
        if not 0 < accuracy + sign * margin / 100 < 1:
            continue
        o = A.simulate_heterogeneous(n_claims=n, n_seeds=CI_SEEDS, n_test=CI_TEST, effect=sign * margin * 0.999,
                                     accuracy=accuracy, seed=23)
        found = (audit(claims, o, correction="none")["verdict"] == "no gain").mean()
        assert found <= 0.025 + _sim_error(0.025, n), f"{found:.2%} 'no gain' at a true effect of {sign * margin:+.1f}"
    o = A.simulate_heterogeneous(n_claims=n, n_seeds=CI_SEEDS, n_test=CI_TEST, effect=0.0, accuracy=accuracy, seed=24)
    r = audit(claims, o, correction="none")
    assert (r["min_effect"] == margin).all()
    assert (r["verdict"] == "no gain").mean() >= 0.8  # the margin is one the design resolves


@pytest.mark.slow
def test_a_large_true_effect_mostly_holds_even_after_holm():
    o = simulate_outcomes(n_claims=20, n_seeds=CI_SEEDS, n_test=CI_TEST, effect=25.0, accuracy=0.5,
                          difficulty_sd=10, seed=13)
    r = audit(simulated_claims(20), o)
    assert (r["verdict"] == "holds").mean() >= 0.8


@pytest.mark.slow
def test_detectable_effect_gives_the_promised_power():
    d = detectable_effect(n_test=CI_TEST, n_seeds=CI_SEEDS, accuracy=0.6)
    o = simulate_outcomes(n_claims=2000, n_seeds=CI_SEEDS, n_test=CI_TEST, effect=d, accuracy=0.6, seed=16)
    power = (audit(simulated_claims(2000), o, correction="none")["verdict"] == "holds").mean()
    assert 0.75 <= power <= 0.85, f"power {power:.0%} at the 'detectable' effect {d:.1f}"
    # more test videos, more seeds or fewer claims: a smaller detectable effect
    assert detectable_effect(n_test=400, n_seeds=5, accuracy=0.6) < d
    assert detectable_effect(n_test=80, n_seeds=10, accuracy=0.6) < d
    assert detectable_effect(n_test=80, n_seeds=5, accuracy=0.6, n_claims=10) > d
    # a test set too small to reach the level at all
    assert detectable_effect(n_test=4, n_seeds=5, accuracy=0.6) == math.inf


def test_detectable_effect_at_an_accuracy_of_zero_or_one():
    """Full mode on a small test set can score every video right (or wrong): the planning formula
    takes that as half a video from the edge instead of refusing (found by the full-mode smoke test)."""
    edge = detectable_effect(n_test=40, n_seeds=1, accuracy=0.0125)
    assert detectable_effect(n_test=40, n_seeds=1, accuracy=0.0) == edge
    assert detectable_effect(n_test=40, n_seeds=1, accuracy=1.0) == detectable_effect(n_test=40, n_seeds=1,
                                                                                      accuracy=0.9875)
    assert math.isfinite(edge) and edge > 0
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
        detectable_effect(n_test=4, n_seeds=1, accuracy=1.5)


# --------------------------------------------------------------------------- a metric that is not a mean (mAP)

def _map_scores(gain: float, *, videos: int = 60, seeds: int = 5, seed: int = 0):
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


def test_audit_metric_decides_with_audits_rule_and_says_so():
    claim = [Claim("X", "A beats B on mAP", "A", "B", paper_effect=3.2)]
    scores, y = _map_scores(3.0)
    t = A.audit_metric(claim, scores, y, metric=_map, n_boot=200)
    assert list(t.columns) == list(A.COLUMNS) and t.loc[0, "verdict"] == "holds"
    assert t.loc[0, "effect"] == pytest.approx(np.mean([_map(scores["A"][s], y) - _map(scores["B"][s], y)
                                                        for s in range(5)]))
    assert t.loc[0, "ci_low"] > 1.0 and t.loc[0, "n_test"] == 60 and t.loc[0, "n_seeds"] == 5
    flipped = A.audit_metric([Claim("X", "B beats A", "B", "A")], scores, y, metric=_map, n_boot=200)
    assert flipped.loc[0, "verdict"] == "reversed"
    none, y0 = _map_scores(0.0)
    assert A.audit_metric(claim, none, y0, metric=_map, n_boot=200).loc[0, "verdict"] == "inconclusive"
    three = {k: {s: v[s] for s in range(3)} for k, v in scores.items()}
    assert A.audit_metric(claim, three, y, metric=_map, n_boot=200).loc[0, "verdict"] == "not testable here"
    assert "exploratory" in A.audit_metric(claim, three, y, metric=_map, n_boot=200, exploratory=True).loc[0, "reason"]
    two = {k: {s: v[s][:1] for s in v} for k, v in scores.items()}
    assert A.audit_metric(claim, two, y[:1], metric=_map, n_boot=200).loc[0, "verdict"] == "not testable here"
    with pytest.raises(ValueError, match="better"):
        A.audit_metric([Claim("N", "no gain", "A", "B", expect="no_gain")], scores, y, metric=_map)
    with pytest.raises(ValueError, match="same seeds"):
        A.audit_metric(claim, {"A": scores["A"], "B": three["B"]}, y, metric=_map)


def _accuracy_scores(o: pd.DataFrame, k: int) -> tuple[dict, np.ndarray]:
    """Claim k's outcomes as two-class scores whose accuracy is the outcome: the metric is then a mean."""
    out = {}
    for cond in (f"A{k}", f"B{k}"):
        rows = o[o.condition == cond].sort_values(["seed", "video"])
        out[cond] = {s: np.stack([g.correct.to_numpy(), 1 - g.correct.to_numpy()], 1) for s, g in rows.groupby("seed")}
    return out, np.zeros(len(rows) // rows.seed.nunique(), dtype=int)


def _accuracy(x, y):
    return 100.0 * float(np.mean(x.argmax(1) == y))


@pytest.mark.slow
def test_audit_metric_on_a_mean_agrees_with_audit_and_keeps_the_size():
    """With accuracy as its metric, `audit_metric`'s two parts are `audit`'s up to resampling noise,
    and on 400 null claims of the second model its false verdicts stay within the promise."""
    n = 400
    o = A.simulate_heterogeneous(n_claims=n, n_seeds=CI_SEEDS, n_test=CI_TEST, effect=0.0, seed=25)
    claims = simulated_claims(n)
    exact = audit(claims, o, correction="none")
    rows = []
    for k, c in enumerate(claims):
        scores, y = _accuracy_scores(o, k)
        rows.append(A.audit_metric([c], scores, y, metric=_accuracy, n_boot=200, seed=k).iloc[0])
    boot = pd.DataFrame(rows)
    np.testing.assert_allclose(boot["effect"], exact["effect"], atol=1e-9)
    ratio = (boot["se"] / exact["se"]).median()
    assert 0.9 <= ratio <= 1.1, f"audit_metric's se is {ratio:.2f} x audit's"
    false = (boot["verdict"].isin(["holds", "reversed"])).mean()
    assert false <= 0.05 + _sim_error(0.05, n), f"{false:.1%} false verdicts"
    covered = ((boot["ci_low"] <= 0) & (0 <= boot["ci_high"])).mean()
    assert covered >= 0.935 - _sim_error(0.05, n), f"coverage {covered:.1%}"
