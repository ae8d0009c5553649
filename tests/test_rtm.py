"""Tests for evaluation.rtm: Barnett et al. (2005) regression to the mean, checked against
Barnett's own R code (ported), Monte Carlo draws, statsmodels, and a seeded simulation of
projects that pick pupils on a high baseline and have no true effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from evaluation.errors import DataError
from evaluation.measures import load_registry
from evaluation.results import AnalysisResult, verdict
from evaluation.rtm import (
    RTMAdjustment,
    expected_rtm_cutoff,
    expected_rtm_from_mean,
    rtm_adjust,
    rtm_inputs_missing,
)


def _barnett_r_code(sigma: float, mu: float, cut: float, rho: float, m: int = 1):
    """Line-by-line port of Barnett's R code for equation 1 (as reproduced on the MRC CBU
    statswiki page FAQ/RTM2, 'Taken from hisdu.sph.uq.edu.au/lsu/adrian/rtmcode.htm'):
    within/between variances, C(z) for selection above (g) and below (l) the cut-off."""
    sigma2_w = (1 - rho) * sigma**2
    sigma2_b = rho * sigma**2
    zg = (cut - mu) / sigma
    zl = (mu - cut) / sigma
    czg = stats.norm.pdf(zg) / (1 - stats.norm.cdf(zg))
    czl = stats.norm.pdf(zl) / (1 - stats.norm.cdf(zl))
    denom = math.sqrt(sigma2_b + sigma2_w / m)
    return (sigma2_w / m) / denom * czg, (sigma2_w / m) / denom * czl  # (above, below)


@pytest.mark.parametrize("rho", [0.0 + 1e-9, 0.1, 0.3, 0.5, 0.62, 0.8, 0.9])
def test_cutoff_formula_matches_barnett_worked_example_code(rho):
    # Barnett et al. (2005) example: sampled only if baseline <= 40, population mean 60, SD 15
    above, below = _barnett_r_code(15, 60, 40, rho)
    assert expected_rtm_cutoff(60, 15, rho, 40, "below") == pytest.approx(below, rel=1e-12)
    assert expected_rtm_cutoff(60, 15, rho, 40, "above") == pytest.approx(-above, rel=1e-12)
    # below the cut-off scores rise on retest: sigma (1 - rho) C(4/3), C(4/3) = 1.798...
    assert below == pytest.approx(15 * (1 - rho) * 1.7981, rel=1e-4)


def test_cutoff_and_mean_forms_match_monte_carlo():
    rng = np.random.default_rng(20051)
    mu, sigma, rho, cut = 6.6, 6.0, 0.62, 16.0
    cov = sigma**2 * np.array([[1, rho], [rho, 1]])
    xy = rng.multivariate_normal([mu, mu], cov, size=2_000_000)
    sel = xy[xy[:, 0] >= cut]
    mc_change = float((sel[:, 1] - sel[:, 0]).mean())
    se = float((sel[:, 1] - sel[:, 0]).std()) / math.sqrt(len(sel))
    assert len(sel) > 40_000
    assert expected_rtm_cutoff(mu, sigma, rho, cut, "above") == pytest.approx(mc_change, abs=4 * se)
    # the observed-baseline form, at the selected group's mean, gives the same expectation
    assert expected_rtm_from_mean(sel[:, 0].mean(), mu, rho) == pytest.approx(mc_change,
                                                                             abs=4 * se)
    # and analytically: E[X | X >= c] = mu + sigma C(z), so the two forms agree exactly
    z = (cut - mu) / sigma
    xbar = mu + sigma * stats.norm.pdf(z) / stats.norm.sf(z)
    assert expected_rtm_from_mean(xbar, mu, rho) == pytest.approx(
        expected_rtm_cutoff(mu, sigma, rho, cut, "above"), rel=1e-12)
    # far in the tail the log form stays finite (C(z) ~ z)
    assert expected_rtm_cutoff(0, 1, 0.5, 40, "above") == pytest.approx(-0.5 * 40.025, rel=1e-3)


def test_adjusted_change_and_ci_match_statsmodels_offset_regression():
    rng = np.random.default_rng(7)
    x = rng.integers(16, 30, size=35).astype(float)
    y = np.clip(x - 4 + rng.normal(0, 4, size=35).round(), 0, 40)
    mu, rho = 6.6, 0.62
    res = rtm_adjust(x, y, population_mean=mu, retest=rho, direction="lower_is_better",
                     label="SDQ")
    # independent: y - mu = rho (x - mu) + b0 + error, fitted with the slope fixed as offset
    fit = sm.GLM(y - mu, np.ones((35, 1)), offset=rho * (x - mu)).fit()
    ols = sm.OLS(y - mu - rho * (x - mu), np.ones(35)).fit()
    assert res.adjusted_change == pytest.approx(float(fit.params[0]), rel=1e-10)
    lo, hi = ols.conf_int(alpha=0.05)[0]
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), rel=1e-10)
    # observed change: scipy's paired t interval
    ci = stats.ttest_1samp(y - x, 0).confidence_interval(0.95)
    assert (res.observed_ci_low, res.observed_ci_high) == pytest.approx((ci.low, ci.high))
    assert res.adjusted_change == pytest.approx(res.observed_change - res.expected_rtm)
    assert res.expected_rtm == pytest.approx(-(1 - rho) * (x.mean() - mu))
    assert res.verdict == verdict(res.ci_low, res.ci_high, null=0.0,
                                  direction="lower_is_better")


def test_measure_supplies_registry_values_and_result_protocol():
    reg = load_registry()
    m = reg["sdq_teacher_total"]
    x = np.array([16, 18, 20, 22, 25, 17, 19, 21, np.nan, 24], dtype=float)
    y = np.array([12, 15, 14, 20, 18, 16, 13, 17, 10, np.nan], dtype=float)
    res = rtm_adjust(x, y, measure=m, cutoff=16, selected="above")
    assert isinstance(res, RTMAdjustment) and isinstance(res, AnalysisResult)
    assert res.n == 8 and res.population_mean == 6.6 and res.retest == 0.62
    assert res.direction == "lower_is_better"
    assert res.expected_rtm_at_cutoff == pytest.approx(
        expected_rtm_cutoff(6.6, 6.0, 0.62, 16, "above"))
    h = res.headline()
    assert set(h) >= {"estimate", "ci_low", "ci_high", "unit", "null", "n", "verdict"}
    s = res.sentence
    assert s.startswith("Pupils were chosen because their teacher-rated SDQ total difficulties "
                        "scores were high (at or above 16); such scores tend to fall on retest")
    assert f"expected fall {abs(res.expected_rtm):.1f} points" in s
    assert "4 to 6 months" in s and "comparison group" in s
    assert "<p>" in res._repr_html_()
    fig = res.plot()
    assert fig.axes

    class Outcome:
        id, measure, direction = "sdq", "sdq_teacher_total", "lower_is_better"

    rec = res.record(Outcome())
    assert rec.estimate == res.adjusted_change and rec.verdict == res.verdict
    # no norms for the teacher peer-problems scale: say which fields are missing
    assert rtm_inputs_missing(reg["sdq_teacher_peer"]) == ["population_mean", "retest"]
    assert rtm_inputs_missing(m) == []
    with pytest.raises(DataError, match="sdq_teacher_peer.*population_mean"):
        rtm_adjust(x, y, measure=reg["sdq_teacher_peer"])
    with pytest.raises(DataError, match="selected="):
        rtm_adjust(x, y, measure=m, cutoff=16)
    with pytest.raises(DataError, match="between 0 and 1"):
        rtm_adjust(x, y, measure=m, retest=1.2)
    with pytest.raises(DataError, match="at least 3"):
        rtm_adjust([20, 21], [18, 19], measure=m)
    with pytest.raises(DataError, match="outside the range"):
        rtm_adjust([20, 21, 45], [18, 19, 20], measure=m)


def test_retest_range_widens_interval_to_cover_every_value():
    rng = np.random.default_rng(3)
    x = rng.uniform(16, 30, 30)
    y = x - 5 + rng.normal(0, 4, 30)
    point = rtm_adjust(x, y, population_mean=6.6, retest=0.62)
    wide = rtm_adjust(x, y, population_mean=6.6, retest=0.62, retest_range=(0.5, 0.8))
    assert wide.adjusted_change == point.adjusted_change
    assert wide.ci_low <= point.ci_low and wide.ci_high >= point.ci_high
    for r in (0.5, 0.65, 0.8):
        one = rtm_adjust(x, y, population_mean=6.6, retest=r)
        assert wide.ci_low <= one.ci_low + 1e-12 and wide.ci_high >= one.ci_high - 1e-12
    assert "from 0.5 to 0.8" in wide.sentence
    with pytest.raises(DataError, match="within retest_range"):
        rtm_adjust(x, y, population_mean=6.6, retest=0.9, retest_range=(0.5, 0.8))


def _simulate(n_projects: int, seed: int, rho_true: float, rho_used: float,
              rho_range: tuple[float, float] | None = None, effect: float = 0.0,
              estimates: list | None = None):
    """Projects that pick pupils with a teacher SDQ of 16 or more ('High' band) from a
    population with mean 6.6, SD 6.0 and retest r ``rho_true``, no effect of the work;
    scores are rounded and kept within 0-40. Returns the share called improved (adjusted,
    unadjusted) and worsened (adjusted)."""
    rng = np.random.default_rng(seed)
    mu, sigma, cut = 6.6, 6.0, 16
    # latent baselines of pupils whose rounded score is >= 16: latent >= 15.5
    a = (cut - 0.5 - mu) / sigma
    adj_improved = unadj_improved = adj_worse = 0
    for _ in range(n_projects):
        n = int(rng.integers(20, 61))
        lat_x = stats.truncnorm.rvs(a, np.inf, loc=mu, scale=sigma, size=n, random_state=rng)
        lat_y = mu + rho_true * (lat_x - mu) + rng.normal(0, sigma * math.sqrt(1 - rho_true**2),
                                                           size=n)
        x = np.clip(np.round(lat_x), 0, 40)
        y = np.clip(np.round(lat_y + effect), 0, 40)
        res = rtm_adjust(x, y, population_mean=mu, retest=rho_used, retest_range=rho_range,
                         direction="lower_is_better")
        adj_improved += res.verdict == "improved"
        adj_worse += res.verdict == "worsened"
        unadj_improved += res.unadjusted_verdict == "improved"
        if estimates is not None:
            estimates.append(res.adjusted_change)
    return (adj_improved / n_projects, unadj_improved / n_projects, adj_worse / n_projects)


def test_simulation_no_true_effect_rarely_called_improved_after_adjustment():
    rho = load_registry()["sdq_teacher_total"].retest
    adj, unadj, worse = _simulate(2000, seed=19, rho_true=rho, rho_used=rho)
    print(f"\nRTM simulation (2000 projects, n 20-60, SDQ >= 16, rho {rho}): improved "
          f"adjusted {adj:.3f}, unadjusted {unadj:.3f}; worsened adjusted {worse:.3f}")
    assert adj <= 0.05
    assert unadj >= 0.9
    assert worse <= 0.05


def test_simulation_wrong_retest_misleads_and_a_range_protects():
    # The adjustment leans on rho: pupils start about 2 SD above the mean, so using 0.62
    # when the true retest r is 0.5 calls a null "improved" far too often ...
    adj, _, _ = _simulate(400, seed=23, rho_true=0.5, rho_used=0.62)
    assert adj > 0.2
    # ... and a retest_range that contains the true r keeps both false verdicts rare.
    for rho_true in (0.5, 0.75):
        adj, _, worse = _simulate(400, seed=29, rho_true=rho_true, rho_used=0.62,
                                  rho_range=(0.5, 0.75))
        print(f"\nrho true {rho_true}, used 0.62 with range 0.5-0.75: improved {adj:.3f}, "
              f"worsened {worse:.3f}")
        assert adj <= 0.05 and worse <= 0.05


def test_simulation_true_effect_is_recovered_without_bias():
    est: list[float] = []
    adj, _, worse = _simulate(400, seed=31, rho_true=0.62, rho_used=0.62, effect=-3.0,
                              estimates=est)
    print(f"\ntrue effect -3 points: mean adjusted estimate {np.mean(est):.2f}, "
          f"called improved {adj:.3f}")
    assert np.mean(est) == pytest.approx(-3.0, abs=0.15)
    assert adj > 0.5 and worse == 0


def test_sentence_for_pupils_chosen_for_low_scores():
    x = np.array([2, 3, 4, 3, 2, 4, 1, 3], dtype=float)
    y = np.array([4, 5, 4, 6, 3, 5, 4, 5], dtype=float)
    res = rtm_adjust(x, y, population_mean=7.2, retest=0.6, population_sd=2.4, cutoff=4,
                     selected="below", direction="higher_is_better", label="prosocial")
    assert "scores were low (at or below 4); such scores tend to rise" in res.sentence
    assert res.expected_rtm > 0 and res.expected_rtm_at_cutoff > 0
    plain = rtm_adjust(x, y, population_mean=7.2, retest=0.6, label="prosocial")
    assert plain.sentence.startswith("These pupils' prosocial scores started below the average "
                                     "for children generally (2.8 against 7.2)")


def test_unadjusted_verdict_is_the_kits_paired_change_verdict():
    # the unadjusted rate above is what baseline_followup.paired_change would report
    import pandas as pd

    from evaluation.baseline_followup import paired_change

    rng = np.random.default_rng(5)
    x = np.clip(np.round(stats.truncnorm.rvs(1.5, np.inf, loc=6.6, scale=6, size=30,
                                             random_state=rng)), 0, 40)
    y = np.clip(np.round(6.6 + 0.62 * (x - 6.6) + rng.normal(0, 6 * math.sqrt(1 - 0.62**2),
                                                              30)), 0, 40)
    pc = paired_change(pd.DataFrame({"b": x, "f": y}), "b", "f",
                       direction="lower_is_better")
    res = rtm_adjust(x, y, population_mean=6.6, retest=0.62, direction="lower_is_better")
    h = pc.headline()
    assert (h["ci_low"], h["ci_high"]) == pytest.approx((res.observed_ci_low,
                                                         res.observed_ci_high))
    # paired_change's own verdict is the same interval, but a single group's change without
    # the adjustment cannot be attributed to the work ("better, cause unclear")
    from evaluation.results import BETTER_CAUSE_UNCLEAR, WORSE_CAUSE_UNCLEAR

    unattributed = {"improved": BETTER_CAUSE_UNCLEAR, "worsened": WORSE_CAUSE_UNCLEAR}
    assert h["verdict"] == unattributed.get(res.unadjusted_verdict, res.unadjusted_verdict)
    assert h["verdict"] != "improved"
