"""Controlled ITS on a panel (evaluation.controlled_its): Linden's multiple-group ITSA.

Checked against (1) a separate implementation of Stata's ``newey`` formulas after
``tsset unit time`` written below with numpy (OLS, Bartlett kernel within each unit,
n/(n-k), t with n-k df), (2) statsmodels' ``hac-panel`` covariance, (3) the figures Linden
publishes for the Prop 99 example, and (4) fits to the unit-averaged (or summed) arms.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from evaluation import controlled_its as cits
from evaluation.errors import DataError
from evaluation.its import ITSMissingPeriodsWarning, ITSPowerWarning
from evaluation.privacy import Disclosure
from evaluation.results import AnalysisResult

matplotlib.use("Agg")

from tests.conftest import DATA  # noqa: E402

PROP99 = DATA / "its_prop99_cigsales.csv"


def _itsa(data: pd.DataFrame, **kw) -> cits.ControlledITSResult:
    """Linden's ``itsa`` as published (Newey-West within unit, no unit effects)."""
    return cits.fit(data, **({"inference": "itsa"} | kw))


@pytest.fixture(scope="module")
def prop99() -> pd.DataFrame:
    return pd.read_csv(PROP99)


@pytest.fixture(scope="module")
def fitted(prop99) -> cits.ControlledITSResult:
    return _itsa(prop99, unit="state", time="year", outcome="cigsale",
                    treated="California", interruption=1989, lags=1,
                    outcome_label="cigarette sales", direction="lower_is_better")


# ------------------------------------------------------------ independent implementation


def _itsa_design(year: np.ndarray, z: np.ndarray, first: int, start: int) -> np.ndarray:
    """Linden's columns, _t from 0 in the first year (itsa >= 2.0.5)."""
    t = (year - first).astype(float)
    x = (year >= start).astype(float)
    xt = (year - start) * x
    return np.column_stack([np.ones_like(t), t, z, z * t, x, xt, z * x, z * xt])


def _stata_newey(y, X, unit, time, lag):
    """Stata's ``newey, lag(L)`` on ``tsset unit time`` data, loop by loop: OLS, then
    X'OX = n/(n-k) [sum e_i^2 x_i x_i' + sum_l (1 - l/(L+1)) sum e_t e_s (x_t x_s' +
    x_s x_t')] over pairs (t, s) of ONE unit with time_t - time_s = l; t with n-k df."""
    n, k = X.shape
    xtx_inv = np.linalg.inv(X.T @ X)
    b = xtx_inv @ (X.T @ y)
    e = y - X @ b
    S = np.zeros((k, k))
    for u in np.unique(unit):
        idx = np.flatnonzero(unit == u)
        for i in idx:
            S += e[i] ** 2 * np.outer(X[i], X[i])
            for j in idx:
                gap = time[i] - time[j]
                if 1 <= gap <= lag:
                    w = 1 - gap / (lag + 1)
                    S += w * e[i] * e[j] * (np.outer(X[i], X[j]) + np.outer(X[j], X[i]))
    V = n / (n - k) * xtx_inv @ S @ xtx_inv
    return b, V, n - k


def _inference(b, V, df, c, level=0.95):
    est, se = c @ b, np.sqrt(c @ V @ c)
    crit = stats.t.ppf(1 - (1 - level) / 2, df)
    return est, se, est / se, 2 * stats.t.sf(abs(est / se), df), est - crit * se, est + crit * se


@pytest.fixture(scope="module")
def stata(prop99):
    d = prop99.sort_values(["state", "year"])
    z = (d["state"] == "California").to_numpy(float)
    X = _itsa_design(d["year"].to_numpy(), z, 1970, 1989)
    return _stata_newey(d["cigsale"].to_numpy(float), X, d["state"].to_numpy(),
                        d["year"].to_numpy(), lag=1)


# ------------------------------------------------------------ Prop 99: gaussian


def test_prop99_coefficients_match_independent_stata_formulas(fitted, stata):
    b, V, df = stata
    co = fitted.coefficients.set_index("term")
    assert list(co.index) == list(cits.TERMS)
    assert (co["df"] == 1209 - 8).all()
    for j, term in enumerate(cits.TERMS):
        c = np.eye(8)[j]
        est, se, t, p, lo, hi = _inference(b, V, df, c)
        row = co.loc[term]
        assert row["coef"] == pytest.approx(est, rel=1e-10, abs=1e-10)
        assert row["se"] == pytest.approx(se, rel=1e-10)
        assert row["t"] == pytest.approx(t, rel=1e-9)
        assert row["p"] == pytest.approx(p, rel=1e-8, abs=1e-300)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-10)


def test_prop99_arm_effects_are_the_lincom_combinations(fitted, stata):
    b, V, df = stata
    combos = {  # itsa's posttrend lincom expressions and the arms' levels and changes
        ("programme", "intercept"): [0, 2], ("programme", "pre-trend"): [1, 3],
        ("programme", "level change"): [4, 6], ("programme", "slope change"): [5, 7],
        ("programme", "post-trend"): [1, 3, 5, 7], ("comparison", "post-trend"): [1, 5],
        ("comparison", "intercept"): [0], ("difference", "post-trend difference"): [3, 7],
        ("difference", "baseline level difference"): [2],
        ("difference", "difference in level change"): [6],
    }
    for (arm, term), cols in combos.items():
        c = np.zeros(8)
        c[cols] = 1.0
        est, se, t, p, lo, hi = _inference(b, V, df, c)
        e = fitted.effect(arm, term)
        assert e["estimate"] == pytest.approx(est, rel=1e-10), (arm, term)
        assert e["se"] == pytest.approx(se, rel=1e-10), (arm, term)
        assert e["p"] == pytest.approx(p, rel=1e-8, abs=1e-300), (arm, term)
        assert (e["ci_low"], e["ci_high"]) == pytest.approx((lo, hi), rel=1e-10)


def test_prop99_matches_statsmodels_hac_panel(fitted, prop99):
    # statsmodels' hac-panel with the "hac" correction n/(n-k) and no group df correction
    # is the same estimator on a balanced panel without gaps
    d = prop99.sort_values(["state", "year"])
    X = _itsa_design(d["year"].to_numpy(), (d["state"] == "California").to_numpy(float),
                     1970, 1989)
    m = sm.OLS(d["cigsale"].to_numpy(float), X).fit(
        cov_type="hac-panel", use_t=True,
        cov_kwds={"groups": pd.factorize(d["state"])[0], "maxlags": 1,
                  "use_correction": "hac", "df_correction": False})
    co = fitted.coefficients
    assert co["coef"].to_numpy() == pytest.approx(m.params, rel=1e-10)
    assert co["se"].to_numpy() == pytest.approx(m.bse, rel=1e-10)


def test_prop99_published_figures(fitted):
    # Linden A., POWER ITSA (SSC S459461), help file power_itsa.sthlp, "Multiple-group
    # ITSA" examples, which re-estimate `itsa cigsale, treatid(3) trperiod(1989) lag(1)
    # fig posttrend replace` on cigsales.dta (the same Prop 99 data) and quote its output:
    # tint(132.2258) tpre(-1.779474) tpost(-3.274126) tstep(-20.0581) cint(135.4995)
    # cpre(-.5477701) cpost(-1.051279) cstep(-17.25168), "_z_x = -2.806417", "_z_x_t1989
    # ... (P = 0.136)", "_z_x1989 ... (P = 0.631)", treated counterfactual in 1989 "98.416",
    # "20.38% decrease". Copy read from github.com/labordynamicsinstitute/ssc-mirror,
    # fmwww.bc.edu/repec/bocode/p/power_itsa.sthlp, commit 05594cbfce989e59265bf902e1ff6b004436eabe.
    published = {
        ("programme", "intercept"): 132.2258, ("programme", "pre-trend"): -1.779474,
        ("programme", "post-trend"): -3.274126, ("programme", "level change"): -20.0581,
        ("comparison", "intercept"): 135.4995, ("comparison", "pre-trend"): -0.5477701,
        ("comparison", "post-trend"): -1.051279, ("comparison", "level change"): -17.25168,
        ("difference", "difference in level change"): -2.806417,
    }
    for (arm, term), value in published.items():
        decimals = len(repr(value).split(".")[1])
        assert fitted.effect(arm, term)["estimate"] == pytest.approx(
            value, abs=0.5 * 10 ** -decimals), (arm, term)
    # P values printed to 3 decimals (0.136 is 0.1368 here, within rounding of the
    # displayed figure, which Linden may have truncated)
    assert fitted.effect("difference", "difference in slope change")["p"] == pytest.approx(
        0.136, abs=1e-3)
    assert fitted.effect("difference", "difference in level change")["p"] == pytest.approx(
        0.631, abs=5e-4)
    row = fitted.treated_series.set_index("label").loc["1989"]
    assert row["own_counterfactual"] == pytest.approx(98.416, abs=5e-4)
    step = fitted.effect("programme", "level change")["estimate"]
    assert -step / row["own_counterfactual"] == pytest.approx(0.2038, abs=5e-5)
    # (its "predicted value with the intervention of 78.842" is not checked: it disagrees
    # with its own figures, 98.416 - 20.0581 = 78.358, which is what we get)
    assert row["fitted"] == pytest.approx(78.358, abs=5e-4)


def test_point_estimates_equal_ols_on_unit_averaged_arms(fitted, prop99):
    ca = prop99[prop99["state"] == "California"].sort_values("year")
    rest = prop99[prop99["state"] != "California"].groupby("year")["cigsale"].mean()
    years = np.r_[ca["year"].to_numpy(), rest.index.to_numpy()]
    z = np.r_[np.ones(31), np.zeros(31)]
    X = _itsa_design(years, z, 1970, 1989)
    m = sm.OLS(np.r_[ca["cigsale"].to_numpy(), rest.to_numpy()], X).fit()
    assert fitted.coefficients["coef"].to_numpy() == pytest.approx(m.params, rel=1e-9)
    # ... but not its standard errors: the panel's come from the 39 units' residuals
    assert fitted.coefficients["se"].iloc[7] != pytest.approx(m.bse[7], rel=0.05)


def test_baseline_difference_is_at_the_first_period(fitted, prop99):
    # With _t counted from 1 (itsa before 2.0.5; evaluation.its.fit) the _z coefficient is
    # the difference one period before the data, ours minus the pre-trend difference.
    d = prop99.sort_values(["state", "year"])
    X = _itsa_design(d["year"].to_numpy(), (d["state"] == "California").to_numpy(float),
                     1969, 1989)
    m = sm.OLS(d["cigsale"].to_numpy(float), X).fit()
    co = fitted.coefficients.set_index("term")["coef"]
    assert co["_z"] == pytest.approx(m.params[2] + m.params[3], rel=1e-10)
    assert fitted.effect("difference", "baseline level difference")["estimate"] == co["_z"]
    # and it is the fitted gap in 1970
    tr = fitted.treated_series.set_index("label")["fitted"]
    cs = fitted.comparison_series.set_index("label")["fitted"]
    assert tr["1970"] - cs["1970"] == pytest.approx(co["_z"], rel=1e-10)


def test_counterfactuals_and_gaussian_headline(fitted):
    b = fitted.coefficients.set_index("term")["coef"]
    tr = fitted.treated_series
    post = tr[tr["post"]]
    p_t = np.arange(len(post))  # _x_t in the post periods
    own = b["_cons"] + b["_z"] + (b["_t"] + b["_z_t"]) * (19 + p_t)
    controlled = own + b["_x"] + b["_x_t"] * p_t
    assert post["own_counterfactual"].to_numpy() == pytest.approx(own, rel=1e-10)
    assert post["controlled_counterfactual"].to_numpy() == pytest.approx(controlled,
                                                                         rel=1e-10)
    cf = fitted.counterfactuals.set_index("counterfactual")
    # mean observed minus counterfactual over 1989-2000 (OLS residuals of the programme's
    # post rows sum to zero, so observed and fitted means agree)
    assert cf.loc["controlled", "estimate"] == pytest.approx(
        post["observed"].mean() - controlled.mean(), rel=1e-9)
    assert cf.loc["own", "estimate"] == pytest.approx(post["observed"].mean() - own.mean(),
                                                      rel=1e-9)
    h = fitted.headline()
    assert h["term"] == "difference in level change" and h["null"] == 0.0
    assert h["estimate"] == pytest.approx(b["_z_x"], rel=1e-12)
    assert h["verdict"] == "no clear change" and h["design"] == cits.DESIGN
    assert h["n"] == 39 and h["n_comparison"] == 38 and h["period"] == "1989 to 2000"


def test_sentences_name_their_counterfactual(fitted):
    s = fitted.sentences
    assert "controlled counterfactual" in s["controlled"]
    assert "plus the change seen in the comparison units" in s["controlled"]
    assert "own earlier trend alone" in s["own"] and "ignores the change" in s["own"]
    assert "1970, the first period of data" in s["baseline"]
    assert "−2.81" in s["controlled"] or "2.81" in s["controlled"]
    assert fitted.sentence.startswith(s["controlled"])
    assert "includes no change" in s["controlled"]


def test_result_protocol(fitted):
    assert isinstance(fitted, AnalysisResult)
    assert fitted.summary is fitted.effects
    html = fitted._repr_html_()
    assert "controlled counterfactual" in html and "<table" in html
    fig = fitted.plot()
    assert len(fig.axes) == 1 and fig.axes[0].get_legend() is not None
    outcome = SimpleNamespace(id="cigs", measure=None, direction="lower_is_better")
    rec = fitted.record(outcome, notebook="x.ipynb")
    assert rec.analysis == "its" and rec.estimate == pytest.approx(-2.806417, abs=5e-7)
    assert rec.verdict == "no clear change" and "controlled interrupted time series" in rec.headline
    with pytest.raises(ValueError, match="higher_is_better"):
        fitted.record(SimpleNamespace(id="c", measure=None, direction="higher_is_better"))


# ------------------------------------------------------------ counts


def _count_panel(seed=7, n_comp=12, treated=("T1",), periods=24, start=12, effect=0.7):
    """Simulated termly-like counts with a roll per unit and period (yearly dates)."""
    rng = np.random.default_rng(seed)
    rows = []
    units = list(treated) + [f"C{i}" for i in range(n_comp)]
    for u in units:
        roll = rng.integers(300, 1500)
        base = np.log(rng.uniform(0.02, 0.05))
        eps = 0.0
        for k in range(periods):
            eps = 0.3 * eps + rng.normal(0, 0.1)
            eta = base - 0.01 * k + eps + (np.log(effect) if (u in treated and k >= start)
                                           else 0.0)
            expo = roll * (1 + 0.01 * k)
            rows.append({"school": u, "year": 2000 + k, "roll": expo,
                         "exclusions": rng.poisson(expo * np.exp(eta))})
    return pd.DataFrame(rows)


def _poisson_newton(y, X, offset):
    b = np.linalg.lstsq(X, np.log(y + 0.5) - offset, rcond=None)[0]
    for _ in range(100):
        mu = np.exp(X @ b + offset)
        step = np.linalg.solve(X.T @ (X * mu[:, None]), X.T @ (y - mu))
        b = b + step
        if np.max(np.abs(step)) < 1e-13:
            break
    return b


def _hac_by_period(scores, unit, time, lag):
    k = scores.shape[1]
    S = np.zeros((k, k))
    for u in np.unique(unit):
        idx = np.flatnonzero(unit == u)
        for i in idx:
            S += np.outer(scores[i], scores[i])
            for j in idx:
                gap = time[i] - time[j]
                if 1 <= gap <= lag:
                    w = 1 - gap / (lag + 1)
                    S += w * (np.outer(scores[i], scores[j]) + np.outer(scores[j], scores[i]))
    return S


def test_poisson_matches_independent_newton_and_hac():
    d = _count_panel(effect=0.5)
    r = _itsa(d, unit="school", time="year", outcome="exclusions", treated="T1",
                 interruption=2012, family="poisson", exposure="roll", lags=2)
    d = d.sort_values(["school", "year"])
    y, off = d["exclusions"].to_numpy(float), np.log(d["roll"].to_numpy())
    X = _itsa_design(d["year"].to_numpy(), (d["school"] == "T1").to_numpy(float), 2000, 2012)
    b = _poisson_newton(y, X, off)
    mu = np.exp(X @ b + off)
    bread = np.linalg.inv(X.T @ (X * mu[:, None]))
    S = _hac_by_period(X * (y - mu)[:, None], d["school"].to_numpy(), d["year"].to_numpy(), 2)
    n, k = X.shape
    V = n / (n - k) * bread @ S @ bread
    co = r.coefficients
    assert co["coef"].to_numpy() == pytest.approx(b, rel=1e-8, abs=1e-10)
    assert co["se"].to_numpy() == pytest.approx(np.sqrt(np.diag(V)), rel=1e-7)
    crit = stats.t.ppf(0.975, n - k)
    e = r.effect("difference", "difference in level change")
    assert e["estimate"] == pytest.approx(np.exp(b[6]), rel=1e-8)
    assert e["ci_low"] == pytest.approx(np.exp(b[6] - crit * np.sqrt(V[6, 6])), rel=1e-7)
    assert e["p"] == pytest.approx(2 * stats.t.sf(abs(b[6] / np.sqrt(V[6, 6])), n - k),
                                   rel=1e-6)

    # controlled observed/expected: the fitted post total of the programme arm equals the
    # observed one, and the interval is the delta method on the log ratio (gradient by
    # finite differences here)
    post = (d["school"] == "T1").to_numpy() & (d["year"] >= 2012).to_numpy()

    def log_ratio(beta):
        Xcf = X.copy()
        Xcf[:, [6, 7]] = 0.0
        return (np.log(np.exp(X[post] @ beta + off[post]).sum())
                - np.log(np.exp(Xcf[post] @ beta + off[post]).sum()))

    eps = 1e-6
    grad = np.array([(log_ratio(b + eps * np.eye(8)[j]) - log_ratio(b - eps * np.eye(8)[j]))
                     / (2 * eps) for j in range(8)])
    se = np.sqrt(grad @ V @ grad)
    h = r.headline()
    cf = r.counterfactuals.set_index("counterfactual").loc["controlled"]
    assert h["term"] == "controlled observed over expected" and h["null"] == 1.0
    assert h["estimate"] == pytest.approx(cf["observed"] / cf["expected"], rel=1e-8)
    assert h["estimate"] == pytest.approx(np.exp(log_ratio(b)), rel=1e-8)
    assert h["ci_low"] == pytest.approx(np.exp(log_ratio(b) - crit * se), rel=1e-5)
    assert h["ci_high"] == pytest.approx(np.exp(log_ratio(b) + crit * se), rel=1e-5)
    assert h["verdict"] == "improved"  # simulated: half the rate in the programme school
    assert "controlled counterfactual" in r.sentences["controlled"]
    assert r.headline_text().startswith("Exclusions −")


def test_several_treated_units_are_stacked_and_equal_the_summed_arms():
    d = _count_panel(seed=3, treated=("T1", "T2", "T3"), n_comp=8)
    r = _itsa(d, unit="school", time="year", outcome="exclusions",
                 treated=["T1", "T2", "T3"], interruption=2012, family="poisson",
                 exposure="roll")
    assert (r.n_treated, r.n_comparison) == (3, 8)
    arm = np.where(d["school"].str.startswith("T"), 1.0, 0.0)
    summed = (d.assign(z=arm).groupby(["z", "year"], as_index=False)[["exclusions", "roll"]]
              .sum())
    X = _itsa_design(summed["year"].to_numpy(), summed["z"].to_numpy(), 2000, 2012)
    m = sm.GLM(summed["exclusions"].to_numpy(float), X, family=sm.families.Poisson(),
               offset=np.log(summed["roll"].to_numpy())).fit()
    assert r.coefficients["coef"].to_numpy() == pytest.approx(m.params, rel=1e-7, abs=1e-9)
    # gaussian: the arms' unweighted means
    d["rate"] = 100 * d["exclusions"] / d["roll"]
    g = _itsa(d, unit="school", time="year", outcome="rate", treated=["T1", "T2", "T3"],
                 interruption=2012)
    means = d.assign(z=arm).groupby(["z", "year"], as_index=False)["rate"].mean()
    X = _itsa_design(means["year"].to_numpy(), means["z"].to_numpy(), 2000, 2012)
    ols = sm.OLS(means["rate"].to_numpy(), X).fit()
    assert g.coefficients["coef"].to_numpy() == pytest.approx(ols.params, rel=1e-9)
    assert "3 units" in g.sentences["controlled"]


def test_lags_none_is_regress_and_quasi_poisson(prop99):
    g = _itsa(prop99, unit="state", time="year", outcome="cigsale", treated="California",
                 interruption=1989, lags=None)
    d = prop99.sort_values(["state", "year"])
    X = _itsa_design(d["year"].to_numpy(), (d["state"] == "California").to_numpy(float),
                     1970, 1989)
    m = sm.OLS(d["cigsale"].to_numpy(float), X).fit()
    assert g.coefficients["se"].to_numpy() == pytest.approx(m.bse, rel=1e-10)
    c = _count_panel(seed=11)
    q = _itsa(c, unit="school", time="year", outcome="exclusions", treated="T1",
                 interruption=2012, family="poisson", exposure="roll", lags=None)
    c = c.sort_values(["school", "year"])
    X = _itsa_design(c["year"].to_numpy(), (c["school"] == "T1").to_numpy(float), 2000, 2012)
    qp = sm.GLM(c["exclusions"].to_numpy(float), X, family=sm.families.Poisson(),
                offset=np.log(c["roll"].to_numpy())).fit(scale="X2")
    assert q.coefficients["se"].to_numpy() == pytest.approx(qp.bse, rel=1e-7)
    assert q.diagnostics["dispersion"] == pytest.approx(qp.scale, rel=1e-7)


def test_lags_are_counted_in_periods_across_a_gap(prop99):
    gap = prop99[prop99["year"] != 1980]
    with pytest.warns(ITSMissingPeriodsWarning, match="1980"):
        r = _itsa(gap, unit="state", time="year", outcome="cigsale", treated="California",
                     interruption=1989, lags=2)
    d = gap.sort_values(["state", "year"])
    X = _itsa_design(d["year"].to_numpy(), (d["state"] == "California").to_numpy(float),
                     1970, 1989)
    b, V, df = _stata_newey(d["cigsale"].to_numpy(float), X, d["state"].to_numpy(),
                            d["year"].to_numpy(), lag=2)
    assert r.coefficients["coef"].to_numpy() == pytest.approx(b, rel=1e-10)
    assert r.coefficients["se"].to_numpy() == pytest.approx(np.sqrt(np.diag(V)), rel=1e-10)
    assert r.diagnostics["missing_periods"] == ["1980"]


def test_count_headline_withheld_by_disclosure():
    d = _count_panel(seed=5)
    d.loc[(d["school"] == "T1") & (d["year"] >= 2012), "exclusions"] = 0
    d.loc[(d["school"] == "T1") & (d["year"] == 2015), "exclusions"] = 2
    r = _itsa(d, unit="school", time="year", outcome="exclusions", treated="T1",
                 interruption=2012, family="poisson", exposure="roll",
                 disclosure=Disclosure(threshold=5))
    h = r.headline()
    assert h["withheld"] and h["estimate"] is None and h["verdict"] == "no clear change"
    assert "withheld" in r.headline_text()
    assert "ratio of observed to expected" not in r.sentence


# ------------------------------------------------------------ errors


def _fit(d, **kw):
    args = {"unit": "state", "time": "year", "outcome": "cigsale", "treated": "California",
            "interruption": 1989} | kw
    return _itsa(d, **args)


def test_error_no_comparison_units(prop99):
    ca = prop99[prop99["state"] == "California"]
    with pytest.raises(DataError, match="no comparison") as err:
        _fit(ca)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="no comparison"):
        _fit(prop99, treated=sorted(prop99["state"].unique()))


def test_error_units_with_different_periods(prop99):
    d = prop99.drop(prop99.index[(prop99["state"] == "Utah") & (prop99["year"] == 1985)])
    with pytest.raises(DataError, match="1 of 39 units do not have all 31 periods") as err:
        _fit(d)
    assert "has no 1985" in str(err.value) and "same periods" in str(err.value)
    assert "Utah" not in str(err.value)


def test_error_period_repeated_within_a_unit(prop99):
    d = pd.concat([prop99, prop99.iloc[[5]]], ignore_index=True)
    with pytest.raises(DataError, match="repeat a period within a unit") as err:
        _fit(d)
    assert "rows 7, 1211" in str(err.value)


@pytest.mark.parametrize("when", [1970, 1969, 2001, "2005-06-01"])
def test_error_interruption_outside_the_data(prop99, when):
    with pytest.raises(DataError, match="outside the data, which run from 1970 to 2000"):
        _fit(prop99, interruption=when)


def test_other_errors(prop99):
    with pytest.raises(DataError, match="not in the data"):
        _fit(prop99, treated="Atlantis")
    with pytest.raises(DataError, match="exposure= is for counts"):
        _fit(prop99, exposure="cigsale")
    with pytest.raises(DataError, match="not found"):
        _fit(prop99, unit="school")
    with pytest.raises(DataError, match="at least 3"):
        _fit(prop99, interruption=1999)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ITSPowerWarning):
            _fit(prop99, interruption=1995)
    neg = prop99.assign(cigsale=prop99["cigsale"] - 200)
    with pytest.raises(DataError, match="negative"):
        _fit(neg, family="poisson")
    with pytest.raises(DataError, match="lags"):
        _fit(prop99, lags=-1)


def test_one_comparison_unit_and_academic_years(prop99):
    # the earlier one-comparison-series design is the special case of one comparison unit;
    # academic years as text work as elsewhere in the kit
    ca = prop99[prop99["state"] == "California"][["year", "cigsale"]].assign(state="CA")
    rest = (prop99[prop99["state"] != "California"].groupby("year", as_index=False)["cigsale"]
            .mean().assign(state="others"))
    both = pd.concat([ca, rest], ignore_index=True)
    both["academic_year"] = both["year"].map(lambda y: f"{y}/{str(y + 1)[-2:]}")
    r = _itsa(both, unit="state", time="academic_year", outcome="cigsale", treated="CA",
                 interruption="1989/90")
    assert r.n_comparison == 1 and r.headline()["period"] == "1989/90 to 2000/01"
    both = both.sort_values(["state", "year"])
    X = _itsa_design(both["year"].to_numpy(), (both["state"] == "CA").to_numpy(float),
                     1970, 1989)
    m = sm.OLS(both["cigsale"].to_numpy(), X).fit(
        cov_type="hac-panel", cov_kwds={"groups": pd.factorize(both["state"])[0],
                                        "maxlags": 1, "df_correction": False})
    assert r.coefficients["coef"].to_numpy() == pytest.approx(m.params, rel=1e-9)
    assert r.coefficients["se"].to_numpy() == pytest.approx(m.bse, rel=1e-9)


def test_unit_effects_gaussian_keep_estimates_and_match_independent_dummies(fitted, prop99):
    r = _itsa(prop99, unit="state", time="year", outcome="cigsale", treated="California",
                 interruption=1989, unit_effects=True)
    # balanced panel: the same coefficients (arm averages for _cons and _z)
    assert r.coefficients["coef"].to_numpy() == pytest.approx(
        fitted.coefficients["coef"].to_numpy(), rel=1e-9)
    # standard errors: an independent design with one dummy per unit in place of _cons and
    # _z (the same column space), Stata's formulas by loops
    d = prop99.sort_values(["state", "year"])
    z = (d["state"] == "California").to_numpy(float)
    full = _itsa_design(d["year"].to_numpy(), z, 1970, 1989)
    dummies = pd.get_dummies(d["state"]).to_numpy(float)
    X = np.column_stack([dummies, full[:, [1, 3, 4, 5, 6, 7]]])
    b, V, df = _stata_newey(d["cigsale"].to_numpy(float), X, d["state"].to_numpy(),
                            d["year"].to_numpy(), lag=1)
    co = r.coefficients.set_index("term")
    for j, term in enumerate(("_t", "_z_t", "_x", "_x_t", "_z_x", "_z_x_t")):
        assert co.loc[term, "se"] == pytest.approx(np.sqrt(V[39 + j, 39 + j]), rel=1e-9)
        assert co.loc[term, "df"] == df == 1209 - 45
    # the states' lasting level differences no longer widen the intervals (4.83 against
    # 5.84 for _z_x here: California's own residuals still dominate it)
    assert co.loc["_z_x", "se"] < fitted.coefficients.set_index("term").loc["_z_x", "se"]
    assert r.diagnostics["unit_effects"] and "_unit1" not in list(co.index)


def test_unit_effects_poisson_match_independent_newton():
    d = _count_panel(seed=13, n_comp=6)
    r = _itsa(d, unit="school", time="year", outcome="exclusions", treated="T1",
                 interruption=2012, family="poisson", exposure="roll", unit_effects=True)
    d = d.sort_values(["school", "year"])
    y, off = d["exclusions"].to_numpy(float), np.log(d["roll"].to_numpy())
    full = _itsa_design(d["year"].to_numpy(), (d["school"] == "T1").to_numpy(float), 2000,
                        2012)
    X = np.column_stack([pd.get_dummies(d["school"]).to_numpy(float),
                         full[:, [1, 3, 4, 5, 6, 7]]])
    b = _poisson_newton(y, X, off)
    mu = np.exp(X @ b + off)
    bread = np.linalg.inv(X.T @ (X * mu[:, None]))
    S = _hac_by_period(X * (y - mu)[:, None], d["school"].to_numpy(), d["year"].to_numpy(), 1)
    n, k = X.shape
    V = n / (n - k) * bread @ S @ bread
    co = r.coefficients.set_index("term")
    for j, term in enumerate(("_t", "_z_t", "_x", "_x_t", "_z_x", "_z_x_t")):
        assert co.loc[term, "coef"] == pytest.approx(b[7 + j], rel=1e-7, abs=1e-9)
        assert co.loc[term, "se"] == pytest.approx(np.sqrt(V[7 + j, 7 + j]), rel=1e-6)
    # the arm's lines are its pooled rate, on the scale of the observed points
    # (fitted rate per 100 times the roll / 100 gives back the observed total after 2012)
    tr = r.treated_series
    post = tr[tr["post"]]
    roll = d[(d["school"] == "T1") & (d["year"] >= 2012)]["roll"].to_numpy()
    assert (post["fitted"].to_numpy() * roll / 100).sum() == pytest.approx(
        post["observed_total"].sum(), rel=1e-7)


def test_term_seasonality_matches_independent_design():
    rng = np.random.default_rng(21)
    starts = [f"{y}-{m}" for y in range(2015, 2022) for m in ("09-01", "01-01", "05-01")]
    starts = sorted(pd.to_datetime(starts))
    rows = []
    for u in ["P"] + [f"C{i}" for i in range(6)]:
        level = rng.normal(10, 2)
        for k, s in enumerate(starts):
            season = {9: 0.0, 1: 1.0, 5: -0.8}[s.month]
            rows.append({"school": u, "term_start": s,
                         "rate": level + season - 0.05 * k + rng.normal(0, 0.5)})
    d = pd.DataFrame(rows)
    r = _itsa(d, unit="school", time="term_start", outcome="rate", treated="P",
                 interruption="2018-09-01", seasonality="term", frequency="termly")
    assert r.frequency == "termly" and r.diagnostics["terms"][-2:] == ["term_spring",
                                                                        "term_summer"]
    d = d.sort_values(["school", "term_start"])
    k = np.tile(np.arange(len(starts)), 7)
    z = (d["school"] == "P").to_numpy(float)
    k0 = starts.index(pd.Timestamp("2018-09-01"))
    x = (k >= k0).astype(float)
    xt = (k - k0) * x
    month = d["term_start"].dt.month.to_numpy()
    X = np.column_stack([np.ones_like(x), k, z, z * k, x, xt, z * x, z * xt,
                         (month == 1).astype(float), (month == 5).astype(float)])
    b, V, df = _stata_newey(d["rate"].to_numpy(), X, d["school"].to_numpy(), k, lag=1)
    co = r.coefficients
    assert co["coef"].to_numpy() == pytest.approx(b, rel=1e-9, abs=1e-12)
    assert co["se"].to_numpy() == pytest.approx(np.sqrt(np.diag(V)), rel=1e-9)
    assert list(co["term"])[-2:] == ["term_spring", "term_summer"]


# ------------------------------------------------------------ inference chosen by simulation


def _dense_ar1(y, X, offset, unit, period):
    """The "ar1" covariance written with dense n x n matrices, loop by loop, as the module
    docstring states it: weighted moment equation for rho (weights: each unit's share of the
    variance of the difference in level change at rho = 0), the margin, each unit's own
    dispersion, the sandwich and Satterthwaite's df (the dispersions' and rho's estimation,
    with rho's derivative written analytically); a check of the block-wise algebra."""
    from scipy import optimize

    from evaluation.its import AR1_MAX_RHO, AR1_RHO_MARGIN

    b = _poisson_newton(y, X, offset)
    mu = np.exp(X @ b + offset)
    n, k = X.shape
    r = (y - mu) / np.sqrt(mu)
    Xw = X * np.sqrt(mu)[:, None]
    B = np.linalg.inv(Xw.T @ Xw)
    M = np.eye(n) - Xw @ B @ Xw.T
    same = unit[:, None] == unit[None, :]
    dist = np.where(same, np.abs(period[:, None] - period[None, :]), 10**6).astype(float)
    A = (dist == 1).astype(float)
    units = np.unique(unit)
    blocks = [np.flatnonzero(unit == u) for u in units]

    def moments(rho):
        R = np.where(same, rho**np.minimum(dist, 10**3), 0.0)
        MRM = M @ R @ M
        e_sq = np.array([np.trace(MRM[np.ix_(i, i)]) for i in blocks])
        e_lag = np.array([np.sum(A[np.ix_(i, i)] * MRM[np.ix_(i, i)]) / 2 for i in blocks])
        return R, e_sq, e_lag

    sq = np.array([r[i] @ r[i] for i in blocks])
    lag1 = np.array([r[i] @ A[np.ix_(i, i)] @ r[i] / 2 for i in blocks])
    _, e0, _ = moments(0.0)
    a6 = B[:, 6]
    wgt = np.array([sq[g] / e0[g] * (a6 @ Xw[i].T @ Xw[i] @ a6) for g, i in enumerate(blocks)])
    wgt /= wgt.sum()

    def excess(rho):
        _, e_sq, e_lag = moments(rho)
        return wgt @ (e_lag / e_sq - lag1 / sq)

    rho = (0.0 if excess(0.0) >= 0 else
           optimize.brentq(excess, 0.0, AR1_MAX_RHO, xtol=1e-10))
    T = len(blocks[0])
    pairs = 1 / np.sum(wgt**2) * (T - 1) - k / len(blocks) / np.sum(wgt**2)
    rho = min(AR1_MAX_RHO, rho + AR1_RHO_MARGIN * np.sqrt((1 - rho**2) / pairs))
    R, e_sq, _ = moments(rho)
    phi = sq / e_sq
    Omega = R * np.array([phi[np.searchsorted(units, u)] for u in unit])[:, None]
    V = B @ Xw.T @ Omega @ Xw @ B
    H = Xw @ B @ Xw.T
    nu = np.array([T - np.trace(H[np.ix_(i, i)]) for i in blocks]) * (1 - rho**2) / (1 + rho**2)
    # the analytic derivative in rho (the module takes a central difference): dR/drho =
    # d rho^(d-1) within a unit; phi_u = r_u'r_u / tr((MRM)_uu) moves with it
    dR = np.where(same & (dist > 0), dist * rho ** np.maximum(np.minimum(dist, 10**3) - 1, 0),
                  0.0)
    MdRM = M @ dR @ M
    dphi = -sq * np.array([np.trace(MdRM[np.ix_(i, i)]) for i in blocks]) / e_sq**2
    var_rho = (1 - rho**2) / pairs
    dfs = []
    for j in (6, 7):
        a = B[:, j]
        quad = np.array([a @ Xw[i].T @ R[np.ix_(i, i)] @ Xw[i] @ a for i in blocks])
        dquad = np.array([a @ Xw[i].T @ dR[np.ix_(i, i)] @ Xw[i] @ a for i in blocks])
        share = phi * quad
        slope = dphi @ quad + phi @ dquad
        dfs.append(2 * share.sum() ** 2 / (2 * np.sum(share**2 / nu) + slope**2 * var_rho))
    return b, V, int(np.clip(np.floor(min(dfs)), 1, n - k)), rho


@pytest.mark.parametrize("treated", [("T1",), ("T1", "T2", "T3")])
def test_default_ar1_matches_a_dense_implementation(treated):
    d = _count_panel(seed=21, treated=treated, n_comp=6, periods=16, start=8)
    r = cits.fit(d, unit="school", time="year", outcome="exclusions", treated=list(treated),
                 interruption=2008, family="poisson", exposure="roll")
    assert r.inference == "ar1" and r.diagnostics["unit_effects"]  # the default
    d = d.sort_values(["school", "year"])
    z = d["school"].isin(treated).to_numpy(float)
    X = _itsa_design(d["year"].to_numpy(), z, 2000, 2008)
    # the unit intercepts, effect-coded within each arm (the kit's parameterisation)
    unit = d["school"].to_numpy()
    cols = []
    for flag in (1.0, 0.0):
        arm = sorted(set(unit[z == flag]))
        cols += [(unit == u).astype(float) - (unit == arm[-1]) for u in arm[:-1]]
    X = np.column_stack([X, *cols]) if cols else X
    b, V, df, rho = _dense_ar1(d["exclusions"].to_numpy(float), X,
                               np.log(d["roll"].to_numpy()), unit,
                               d["year"].to_numpy())
    co = r.coefficients
    assert co["coef"].to_numpy() == pytest.approx(b[:8], rel=1e-7, abs=1e-9)
    assert co["se"].to_numpy() == pytest.approx(np.sqrt(np.diag(V))[:8], rel=1e-6)
    assert (co["df"] == df).all() and r.diagnostics["rho"] == pytest.approx(rho, abs=1e-5)
    assert 1 <= df < len(d) - X.shape[1]  # few programme units: few df


def test_cluster_matches_statsmodels_cluster_robust():
    d = _count_panel(seed=4, treated=("T1", "T2", "T3", "T4"), n_comp=9)
    r = cits.fit(d, unit="school", time="year", outcome="exclusions",
                 treated=["T1", "T2", "T3", "T4"], interruption=2012, family="poisson",
                 exposure="roll", inference="cluster", unit_effects=False)
    d = d.sort_values(["school", "year"])
    X = _itsa_design(d["year"].to_numpy(), d["school"].str.startswith("T").to_numpy(float),
                     2000, 2012)
    groups = pd.factorize(d["school"])[0]
    m = sm.GLM(d["exclusions"].to_numpy(float), X, family=sm.families.Poisson(),
               offset=np.log(d["roll"].to_numpy())).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": True,
                                      "df_correction": True})
    # use_correction: G/(G-1) (n-1)/(n-k), Stata's factor
    assert r.coefficients["se"].to_numpy() == pytest.approx(m.bse, rel=1e-6)
    assert (r.coefficients["df"] == 13 - 1).all()


def test_inference_options():
    d = _count_panel(seed=8)
    with pytest.raises(DataError, match="inference="):
        cits.fit(d, unit="school", time="year", outcome="exclusions", treated="T1",
                 interruption=2012, family="poisson", exposure="roll", inference="hac")
    r = cits.fit(d, unit="school", time="year", outcome="exclusions", treated="T1",
                 interruption=2012, family="poisson", exposure="roll")
    assert "autocorrelation within each unit" in r.inference_text()
    assert r.headline_text().endswith(
        "controlled interrupted time series, 1 programme and 12 comparison units")
