"""Tests for evaluation.its: published figures, statsmodels called directly, bad input."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from dateutil.easter import easter  # noqa: E402
from scipy import stats  # noqa: E402
from statsmodels.stats.diagnostic import acorr_ljungbox  # noqa: E402
from statsmodels.stats.stattools import durbin_watson  # noqa: E402
from statsmodels.tsa.stattools import acf as sm_acf  # noqa: E402

from evaluation import its  # noqa: E402
from evaluation.errors import DataError  # noqa: E402
from evaluation.privacy import Disclosure  # noqa: E402

DATA = Path(__file__).parent / "data"
Z = stats.norm.ppf(0.975)


@pytest.fixture(scope="module")
def sicily() -> pd.DataFrame:
    d = pd.read_csv(DATA / "its_sicily.csv")
    d["date"] = pd.to_datetime({"year": d["year"], "month": d["month"], "day": 1})
    return d


def _sicily_fit(d, **kw):
    # Lopez Bernal et al. (2017) report model-based (quasi-)Poisson standard errors with
    # z-based Wald intervals (R glm with ci.lin): inference="wald" reproduces their figures;
    # the kit's default ("ar1", t intervals) gives wider ones for this series.
    kw.setdefault("inference", "wald")
    return its.fit(d, time="date", outcome="aces", interruption="2005-01-01",
                   exposure="stdpop", **kw)


def _row(res, term):
    return res.effects.set_index("term").loc[term]


# --------------------------------------------------------------- Lopez Bernal et al. 2017


def test_sicily_poisson_model1(sicily):
    r = _sicily_fit(sicily, impact="level", overdispersion=False)
    e = _row(r, "level change")
    assert e["estimate"] == pytest.approx(0.8944, abs=5e-5)
    assert e["ci_low"] == pytest.approx(0.8647, abs=5e-5)
    assert e["ci_high"] == pytest.approx(0.9251, abs=5e-5)
    assert r.diagnostics["scale"] == 1.0


def test_sicily_quasipoisson_model2(sicily):
    r = _sicily_fit(sicily, impact="level")
    e = _row(r, "level change")
    assert e["estimate"] == pytest.approx(0.8944, abs=5e-5)
    assert (e["ci_low"], e["ci_high"]) == pytest.approx((0.8392, 0.9532), abs=5e-5)
    assert r.diagnostics["scale"] == pytest.approx(3.5592, abs=5e-5)
    assert r.diagnostics["family"] == "quasi-poisson"


def test_sicily_seasonal_model3(sicily):
    r = _sicily_fit(sicily, impact="level", seasonality=2, period=12)
    e = _row(r, "level change")
    assert e["estimate"] == pytest.approx(0.8851, abs=5e-5)
    assert (e["ci_low"], e["ci_high"]) == pytest.approx((0.8394, 0.9332), abs=5e-5)
    assert r.diagnostics["scale"] == pytest.approx(2.2622, abs=5e-5)
    # annual trend exp(12 b_time) = 1.0668 (SOURCES.md)
    b_time = r.model.params[r.diagnostics["terms"].index("time")]
    assert np.exp(12 * b_time) == pytest.approx(1.0668, abs=5e-5)
    # period inferred from monthly data gives the same model
    r2 = _sicily_fit(sicily, impact="level", seasonality=2)
    assert _row(r2, "level change")["estimate"] == pytest.approx(e["estimate"], rel=1e-12)


def test_sicily_slope_change_model4(sicily):
    r = _sicily_fit(sicily, seasonality=2)
    s = _row(r, "slope change")
    assert s["estimate"] == pytest.approx(1.00148, abs=5e-6)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((0.99785, 1.00513), abs=5e-6)
    # Their coding I(time-36)*smokban: level coefficient = ours - slope coefficient.
    d = sicily
    X = np.column_stack([
        np.ones(len(d)), d["smokban"], d["time"], (d["time"] - 36) * d["smokban"],
        *[f(2 * np.pi * k * d["month"] / 12) for k in (1, 2) for f in (np.sin, np.cos)],
    ])
    theirs = sm.GLM(d["aces"], X, family=sm.families.Poisson(),
                    offset=np.log(d["stdpop"])).fit(scale="X2")
    assert np.exp(theirs.params.iloc[3]) == pytest.approx(s["estimate"], rel=1e-9)
    lev = _row(r, "level change")
    assert lev["coef"] == pytest.approx(theirs.params.iloc[1] + theirs.params.iloc[3], rel=1e-7)


# --------------------------------------------------------------- against statsmodels


def _series(n_pre=24, n_post=24, level=-0.25, slope=-0.01, seed=1, start="2015-09-01",
            freq="MS", roll=2000, base=0.02, trend=0.004, od=None):
    rng = np.random.default_rng(seed)
    n = n_pre + n_post
    t = np.arange(1, n + 1)
    t0 = n_pre + 1
    pop = rng.integers(int(roll * 0.9), int(roll * 1.1), n)
    eta = np.log(base) + trend * t + level * (t >= t0) + slope * np.maximum(t - t0, 0)
    mu = pop * np.exp(eta)
    if od:
        mu = rng.gamma(od, mu / od)
    y = rng.poisson(mu)
    dates = pd.date_range(start, periods=n, freq=freq)
    return pd.DataFrame({"period_start": dates, "suspensions": y, "roll": pop}), t0


def _itsa_X(n, t0):
    t = np.arange(1, n + 1, dtype=float)
    return np.column_stack([np.ones(n), t, (t >= t0).astype(float), np.maximum(t - t0, 0)])


def test_coding_is_linden_itsa():
    df, t0 = _series(n_pre=10, n_post=10)
    r = its.fit(df, time="period_start", outcome="suspensions", interruption=df.iloc[10, 0])
    X = r.model.model.exog
    assert X[:, 1].tolist() == list(range(1, 21))
    assert X[:, 2].tolist() == [0] * 10 + [1] * 10  # level = 1 from the first post period
    assert X[:, 3].tolist() == [0] * 11 + list(range(1, 10))  # 0 at the first post period


def test_poisson_matches_statsmodels():
    # inference="wald": statsmodels' model-based quasi-Poisson covariance, z intervals and
    # the cumulative effect with the observed total fixed (the kit's earlier default)
    df, t0 = _series(od=5)
    r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption="2017-09-15", inference="wald")  # mid-month: that period
    X = _itsa_X(len(df), t0)
    off = np.log(df["roll"].to_numpy(float))
    m = sm.GLM(df["suspensions"], X, family=sm.families.Poisson(), offset=off).fit(scale="X2")
    b, se = m.params.to_numpy(), m.bse.to_numpy()
    for term, j in (("level change", 2), ("slope change", 3)):
        e = _row(r, term)
        assert e["estimate"] == pytest.approx(np.exp(b[j]), rel=1e-10)
        assert e["ci_low"] == pytest.approx(np.exp(b[j] - Z * se[j]), rel=1e-10)
        assert e["ci_high"] == pytest.approx(np.exp(b[j] + Z * se[j]), rel=1e-10)
        assert e["p"] == pytest.approx(m.pvalues.iloc[j], rel=1e-8)
    cf = r.counterfactual
    np.testing.assert_allclose(cf["fitted"], m.fittedvalues, rtol=1e-10)
    Xcf = X.copy()
    Xcf[:, 2:] = 0
    V = m.cov_params().to_numpy()
    eta = Xcf @ b + off
    se_cf = np.sqrt(np.sum(Xcf @ V * Xcf, axis=1))
    np.testing.assert_allclose(cf["counterfactual"], np.exp(eta), rtol=1e-10)
    np.testing.assert_allclose(cf["counterfactual_ci_low"], np.exp(eta - Z * se_cf), rtol=1e-9)
    np.testing.assert_allclose(cf["counterfactual_ci_high"], np.exp(eta + Z * se_cf), rtol=1e-9)
    # cumulative: delta method by hand
    post = np.arange(len(df)) >= t0 - 1
    mu = np.exp(eta[post])
    g = mu @ Xcf[post]
    se_tot = np.sqrt(g @ V @ g)
    diff = df["suspensions"].to_numpy()[post].sum() - mu.sum()
    cu = r.cumulative.iloc[0]
    assert cu["difference"] == pytest.approx(diff, rel=1e-10)
    assert (cu["ci_low"], cu["ci_high"]) == pytest.approx(
        (diff - Z * se_tot, diff + Z * se_tot), rel=1e-9)
    assert cu["per_100"] == pytest.approx(100 * diff / df["roll"][post].mean(), rel=1e-10)
    assert cu["periods"] == post.sum()


def test_negative_binomial_matches_statsmodels():
    df, t0 = _series(od=3, seed=5)
    r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption="2017-09-01", family="negative_binomial", inference="wald")
    X = _itsa_X(len(df), t0)
    m = sm.NegativeBinomial(df["suspensions"].to_numpy(float), X,
                            offset=np.log(df["roll"].to_numpy(float))).fit(disp=0, maxiter=200)
    e = _row(r, "level change")
    assert e["coef"] == pytest.approx(m.params[2], rel=1e-5)
    assert e["se"] == pytest.approx(m.bse[2], rel=1e-4)
    assert r.diagnostics["alpha"] == pytest.approx(m.params[-1], rel=1e-4)


def test_gaussian_matches_ols_with_t_intervals():
    rng = np.random.default_rng(3)
    n, t0 = 30, 16
    X = _itsa_X(n, t0)
    y = X @ np.array([5.0, 0.1, -1.5, -0.05]) + rng.normal(0, 0.4, n)
    df = pd.DataFrame({"term_start": pd.date_range("2010-01-01", periods=n, freq="MS"),
                       "rate": y})
    # inference="wald" for gaussian: OLS with t intervals (Stata regress)
    r = its.fit(df, time="term_start", outcome="rate", interruption="2011-04-01",
                family="gaussian", inference="wald")
    m = sm.OLS(y, X).fit()
    lo, hi = m.conf_int()[2]
    e = _row(r, "level change")
    assert e["scale"] == "difference"
    assert (e["estimate"], e["ci_low"], e["ci_high"], e["p"]) == pytest.approx(
        (m.params[2], lo, hi, m.pvalues[2]), rel=1e-9)


def _stata_newey(X, e, lags, score_weight=None):
    """Stata ``newey`` written out (Newey & West 1987; [TS] newey, Methods and formulas):
    ``V = n/(n-k) B S B`` with ``B = (X'WX)^-1`` and ``S = sum_i u_i u_i' + sum_{l=1}^{L}
    (1 - l/(L+1)) sum_t (u_t u_{t-l}' + u_{t-l} u_t')``, ``u_t = x_t e_t`` (OLS) or the
    GLM score ``x_t (y_t - mu_t)`` (log link: ``W = diag(mu)``)."""
    n, k = X.shape
    w = np.ones(n) if score_weight is None else score_weight
    B = np.linalg.inv(X.T @ (X * w[:, None]))
    u = X * e[:, None]
    S = u.T @ u
    for lag in range(1, lags + 1):
        G = sum(np.outer(u[t], u[t - lag]) for t in range(lag, n))
        S += (1 - lag / (lags + 1)) * (G + G.T)
    return n / (n - k) * B @ S @ B


def test_newey_west_matches_stata_newey_formula():
    rng = np.random.default_rng(11)
    n, t0 = 40, 21
    X = _itsa_X(n, t0)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = 0.6 * e[i - 1] + rng.normal(0, 0.5)
    y = X @ np.array([10.0, 0.05, -1.0, 0.02]) + e
    df = pd.DataFrame({"month": pd.date_range("2015-01-01", periods=n, freq="MS"), "y": y})
    r = its.fit(df, time="month", outcome="y", interruption="2016-09-01", family="gaussian",
                autocorrelation=2, inference="newey-west")
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    V = _stata_newey(X, y - X @ b, 2)
    se = np.sqrt(np.diag(V))
    tcrit = stats.t.ppf(0.975, n - 4)
    np.testing.assert_allclose(r.effects["se"], se[2:], rtol=1e-10)
    np.testing.assert_allclose(r.effects["ci_low"], b[2:] - tcrit * se[2:], rtol=1e-10)
    np.testing.assert_allclose(r.effects["ci_high"], b[2:] + tcrit * se[2:], rtol=1e-10)
    np.testing.assert_allclose(r.effects["p"], 2 * stats.t.sf(np.abs(b[2:] / se[2:]), n - 4),
                               rtol=1e-8)
    assert r.diagnostics["hac_lags"] == 2 and r.diagnostics["inference"] == "newey-west"
    # inference="wald" keeps statsmodels' plain HAC (no n/(n-k)), the kit's earlier output
    w = its.fit(df, time="month", outcome="y", interruption="2016-09-01", family="gaussian",
                autocorrelation=2, inference="wald")
    m = sm.OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": 2}, use_t=True)
    np.testing.assert_allclose(w.effects["se"], m.bse[2:], rtol=1e-12)
    np.testing.assert_allclose(w.effects["se"] ** 2 * n / (n - 4), se[2:] ** 2, rtol=1e-10)
    # and for the quasi-Poisson count model: the same sandwich on the GLM score, t on n-k df
    dfc, t0c = _series(od=4, seed=2)
    rc = its.fit(dfc, time="period_start", outcome="suspensions", exposure="roll",
                 interruption="2017-09-01", autocorrelation=3, inference="newey-west")
    Xc = _itsa_X(len(dfc), t0c)
    glm = sm.GLM(dfc["suspensions"], Xc, family=sm.families.Poisson(),
                 offset=np.log(dfc["roll"].to_numpy(float))).fit()
    mu = glm.fittedvalues.to_numpy()
    Vc = _stata_newey(Xc, dfc["suspensions"].to_numpy() - mu, 3, score_weight=mu)
    sec = np.sqrt(np.diag(Vc))[2:]
    np.testing.assert_allclose(rc.effects["se"], sec, rtol=1e-6)
    tc = stats.t.ppf(0.975, len(dfc) - 4)
    np.testing.assert_allclose(rc.effects["ci_low"], np.exp(glm.params[2:] - tc * sec),
                               rtol=1e-6)
    with pytest.raises(DataError, match="autocorrelation="):
        its.fit(dfc, time="period_start", outcome="suspensions", interruption="2017-09-01",
                inference="newey-west")
    with pytest.raises(DataError, match="inference"):
        its.fit(dfc, time="period_start", outcome="suspensions", interruption="2017-09-01",
                inference="robust")


def _ar1_by_hand(X, r, sqrt_w, t):
    """The "ar1" method written out independently: the autocorrelation by a fine grid
    search instead of root finding, traces as sums over pairs, R' by finite differences."""
    n, k = X.shape
    Xw = X * sqrt_w[:, None]
    B = np.linalg.inv(Xw.T @ Xw)
    M = np.eye(n) - Xw @ B @ Xw.T
    q = sum(r[i] * r[i + 1] for i in range(n - 1)) / np.sum(r**2)

    def corr(rho):
        return np.array([[rho ** abs(a - b) for b in t] for a in t])

    grid = np.linspace(0, its.AR1_MAX_RHO, 90_001)
    g = []
    for rho in grid[::1000]:
        MRM = M @ corr(rho) @ M
        g.append(sum(MRM[i, i + 1] for i in range(n - 1)) / np.trace(MRM))
    g = np.interp(grid, grid[::1000], g)  # smooth and increasing: fine to interpolate
    rho = 0.0 if q <= g[0] else float(grid[np.argmin(np.abs(g - q))])
    rho = min(its.AR1_MAX_RHO, rho + its.AR1_RHO_MARGIN * np.sqrt((1 - rho**2) / (n - k)))
    R = corr(rho)
    phi = np.sum(r**2) / np.trace(M @ R @ M)
    V = phi * B @ Xw.T @ R @ Xw @ B

    def df(a, tt=t):
        h = 1e-6
        Rh = np.array([[(rho + h) ** abs(x - y) for y in tt] for x in tt])
        Ra = np.array([[rho ** abs(x - y) for y in tt] for x in tt])
        s = (np.log(a @ Rh @ a) - np.log(a @ Ra @ a)) / h
        return 2 / (2 / (n - k) + s**2 * (1 - rho**2) / (n - k))

    return rho, phi, V, B, df


def test_ar1_inference_against_direct_computation():
    # gaussian: AR(1) errors, 30 periods
    rng = np.random.default_rng(12)
    n, t0 = 30, 16
    X = _itsa_X(n, t0)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = 0.4 * e[i - 1] + rng.normal(0, 1)
    y = X @ np.array([10.0, 0.05, -1.0, 0.02]) + e
    df = pd.DataFrame({"month": pd.date_range("2015-01-01", periods=n, freq="MS"), "y": y})
    r = its.fit(df, time="month", outcome="y", interruption="2016-04-01", family="gaussian")
    assert r.diagnostics["inference"] == "ar1" and r.diagnostics["hac_lags"] is None
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    t = np.arange(1, n + 1.0)
    rho, phi, V, B, dfs = _ar1_by_hand(X, y - X @ b, np.ones(n), t)
    assert r.diagnostics["ar1_rho"] == pytest.approx(rho, abs=2e-5)
    se = np.sqrt(np.diag(V))[2:]
    np.testing.assert_allclose(r.effects["se"], se, rtol=1e-4)
    for j, term in ((2, "level change"), (3, "slope change")):
        d = dfs(X @ B[:, j])
        assert _row(r, term)["df"] == pytest.approx(d, rel=1e-3)
        lo = b[j] - stats.t.ppf(0.975, d) * np.sqrt(V[j, j])
        assert _row(r, term)["ci_low"] == pytest.approx(lo, rel=1e-4)
    # cumulative: observed minus expected total, with the variance of the observed values
    post = t >= t0
    Xcf = X.copy()
    Xcf[:, 2:] = 0
    g = Xcf[post].sum(axis=0)
    var_o = phi * np.ones(post.sum()) @ _corr(t[post], rho) @ np.ones(post.sum())
    cov_oe = phi * (g @ B @ X.T @ _corr(t, rho)[:, post]).sum()
    se_d = np.sqrt(var_o + g @ V @ g - 2 * cov_oe)
    assert r.cumulative["se"].iloc[0] == pytest.approx(se_d, rel=1e-4)

    # quasi-Poisson: the headline ratio's log variance
    dfc, t0c = _series(n_pre=12, n_post=9, od=4, seed=3)
    rc = its.fit(dfc, time="period_start", outcome="suspensions", exposure="roll",
                 interruption=dfc.iloc[12, 0])
    Xc = _itsa_X(21, 13)
    yc = dfc["suspensions"].to_numpy(float)
    off = np.log(dfc["roll"].to_numpy(float))
    m = sm.GLM(yc, Xc, family=sm.families.Poisson(), offset=off).fit()
    mu = np.asarray(m.fittedvalues)
    tc = np.arange(1, 22.0)
    rho, phi, V, B, dfs = _ar1_by_hand(Xc, (yc - mu) / np.sqrt(mu), np.sqrt(mu), tc)
    assert rc.diagnostics["dispersion"] == pytest.approx(
        np.sum((yc - mu) ** 2 / mu) / 17, rel=1e-6)  # Pearson, reported as before
    np.testing.assert_allclose(rc.effects["se"], np.sqrt(np.diag(V))[2:], rtol=1e-4)
    pc = tc >= 13
    Xcf = Xc.copy()
    Xcf[:, 2:] = 0
    mu_cf = np.exp(Xcf @ m.params + off)
    expected, obs = mu_cf[pc].sum(), mu[pc].sum()
    g = mu_cf[pc] @ Xcf[pc]
    Rc = _corr(tc, rho)
    var_o = phi * np.sqrt(mu[pc]) @ Rc[np.ix_(pc, pc)] @ np.sqrt(mu[pc])
    cov_oe = phi * g @ B @ (Xc * np.sqrt(mu)[:, None]).T @ Rc[:, pc] @ np.sqrt(mu[pc])
    se_log = np.sqrt(var_o / obs**2 + g @ V @ g / expected**2
                     - 2 * cov_oe / (obs * expected))
    cu = rc.cumulative.iloc[0]
    assert cu["se_log_ratio"] == pytest.approx(se_log, rel=1e-4)
    a = np.where(pc, np.sqrt(mu), 0) / obs - (Xc * np.sqrt(mu)[:, None]) @ B @ g / expected
    assert cu["df_log_ratio"] == pytest.approx(dfs(a, tc), rel=1e-3)
    h = rc.headline()
    ratio = yc[pc].sum() / expected
    assert h["estimate"] == pytest.approx(ratio, rel=1e-9)
    assert h["ci_high"] == pytest.approx(
        ratio * np.exp(stats.t.ppf(0.975, cu["df_log_ratio"]) * se_log), rel=1e-4)


def _corr(t, rho):
    return rho ** np.abs(t[:, None] - t[None, :])


def test_residual_diagnostics_match_statsmodels(sicily):
    r = _sicily_fit(sicily, seasonality=2)
    res = r.model.resid_pearson
    d = r.diagnostics
    assert d["durbin_watson"] == pytest.approx(durbin_watson(res), rel=1e-10)
    lb = acorr_ljungbox(res, lags=[d["ljung_box_lags"]])
    assert d["ljung_box_stat"] == pytest.approx(lb["lb_stat"].iloc[0], rel=1e-10)
    assert d["ljung_box_p"] == pytest.approx(lb["lb_pvalue"].iloc[0], rel=1e-8)
    np.testing.assert_allclose(d["acf"], sm_acf(res, nlags=len(d["acf"]))[1:], rtol=1e-10)
    assert d["n_pre"] == 36 and d["n_post"] == 23 and d["missing_periods"] == []


def test_coverage_of_level_change_interval():
    true_rr = np.exp(-0.2)
    covered = 0
    reps = 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(reps):
            df, _ = _series(n_pre=20, n_post=20, level=-0.2, slope=0.0, seed=1000 + i,
                            roll=500, od=8)
            r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                        interruption="2017-05-01")
            e = _row(r, "level change")
            covered += e["ci_low"] <= true_rr <= e["ci_high"]
    # 95% nominal; binomial sd with 200 reps is 1.5 points: allow about 3 sd
    assert 0.89 <= covered / reps <= 0.995


def test_phase_in_drops_periods_and_matches_direct_fit():
    df, t0 = _series(n_pre=20, n_post=20, seed=8)
    r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption=df.iloc[20, 0], phase_in=2)
    keep = np.r_[0:20, 22:40]
    X = _itsa_X(40, 23)[keep]
    m = sm.GLM(df["suspensions"].to_numpy()[keep], X, family=sm.families.Poisson(),
               offset=np.log(df["roll"].to_numpy(float)[keep])).fit(scale="X2")
    assert _row(r, "level change")["coef"] == pytest.approx(m.params[2], rel=1e-9)
    assert r.diagnostics["n_phase_in_excluded"] == 2 and r.n == 38
    assert r.counterfactual["in_fit"].sum() == 38


# --------------------------------------------------------------- controlled ITS


def test_controlled_its_is_the_panel_module():
    # one way to fit a controlled ITS: evaluation.controlled_its.fit (a long table with a
    # unit column); the single-series fit takes no comparison series
    d = pd.read_csv(DATA / "its_prop99_cigsales.csv")
    with pytest.raises(TypeError, match="control"):
        its.fit(d, time="year", outcome="cigsale", interruption=1989, family="gaussian",
                control="comparison")


# --------------------------------------------------------------- many units and pooling


def _units():
    frames = []
    for i, lvl in enumerate((-0.3, -0.1, -0.2, 0.05)):
        df, _ = _series(n_pre=12, n_post=12, level=lvl, slope=0.0, seed=50 + i, od=6)
        frames.append(df.assign(school=f"S{i}"))
    return pd.concat(frames, ignore_index=True)


def test_dersimonian_laird_against_hand_computation():
    data = _units()
    m = its.fit_many(data, "school", time="period_start", outcome="suspensions",
                     exposure="roll", interruption="2016-09-01")
    lev = m.effects[m.effects["term"] == "level change"]
    for unit, row in lev.set_index("unit").iterrows():
        single = its.fit(data[data["school"] == unit], time="period_start",
                         outcome="suspensions", exposure="roll", interruption="2016-09-01")
        assert row["coef"] == pytest.approx(_row(single, "level change")["coef"], rel=1e-12)
    y = lev["coef"].to_numpy()
    v = lev["se"].to_numpy() ** 2
    w = 1 / v
    ybar = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - ybar) ** 2)
    tau2 = max(0.0, (q - 3) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    ws = 1 / (v + tau2)
    est = np.sum(ws * y) / np.sum(ws)
    se = 1 / np.sqrt(np.sum(ws))
    p = m.pooled.set_index("term").loc["level change"]
    assert p["Q"] == pytest.approx(q, rel=1e-12)
    assert p["tau2"] == pytest.approx(tau2, rel=1e-12, abs=1e-15)
    assert p["I2"] == pytest.approx(max(0.0, (q - 3) / q), rel=1e-12)
    assert p["estimate"] == pytest.approx(np.exp(est), rel=1e-12)
    assert (p["ci_low"], p["ci_high"]) == pytest.approx(
        (np.exp(est - Z * se), np.exp(est + Z * se)), rel=1e-12)
    assert p["k"] == 4
    fig = m.forest_plot()
    assert len(fig.axes[0].get_yticklabels()) == 5


def test_dersimonian_laird_known_heterogeneity():
    # two studies: y = 0 and 1, v = 0.1 each -> Q = 5, C = 10, tau2 = 0.4, I2 = 0.8
    dl = its.dersimonian_laird([0.0, 1.0], [0.1, 0.1])
    assert dl["Q"] == pytest.approx(5.0)
    assert dl["tau2"] == pytest.approx(0.4)
    assert dl["I2"] == pytest.approx(0.8)
    assert dl["estimate"] == pytest.approx(0.5)
    assert dl["se"] == pytest.approx(np.sqrt(0.25))


def test_fit_many_failing_unit_does_not_stop_others():
    data = _units()
    data.loc[data["school"] == "S2", "roll"] = 0
    m = its.fit(data, group="school", time="period_start", outcome="suspensions",
                exposure="roll", interruption="2016-09-01")
    status = m.effects.drop_duplicates("unit").set_index("unit")["status"]
    assert status["S2"] == "error"
    assert (status.drop("S2") != "error").all()
    assert "roll" in m.effects.set_index("unit").loc["S2", "message"]
    assert m.pooled.set_index("term").loc["level change", "k"] == 3


# --------------------------------------------------------------- frequencies and output


def test_termly_data_and_term_seasonality():
    rng = np.random.default_rng(4)
    # summer terms from 23 April, after Easter Monday in every year here (22 April 2019)
    dates = [pd.Timestamp(y + (k > 0), (9, 1, 4)[k], (6, 4, 23)[k])
             for y in range(2014, 2024) for k in range(3)]
    n = len(dates)
    t = np.arange(1, n + 1)
    season = np.tile([0.0, 0.2, -0.1], n // 3)
    y = rng.poisson(300 * np.exp(0.005 * t - 0.2 * (t >= 16) + season))
    df = pd.DataFrame({"term_start": dates, "suspensions": y})
    r = its.fit(df, time="term_start", outcome="suspensions", interruption="2019-09-02",
                seasonality="term")
    assert r.frequency == "termly"
    assert r.diagnostics["terms"][-2:] == ["term_spring", "term_summer"]
    assert r.counterfactual["label"].iloc[15] == "2019/20 autumn"
    assert r.counterfactual["post"].sum() == n - 15
    X = r.model.model.exog
    assert X[:, 2].tolist() == [0] * 15 + [1] * (n - 15)


def test_headline_sentence_and_plot():
    df, _ = _series(n_pre=24, n_post=24, level=-0.4, slope=0.0, seed=21)
    r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption="2017-09-01")
    h = r.headline()
    # level+slope: the headline is observed over expected events after the interruption,
    # CI by the delta method on log(observed / expected), t on its own df (the "ar1"
    # variances themselves are checked in test_ar1_inference_against_direct_computation)
    cu = r.cumulative.iloc[0]
    ratio = cu["observed_total"] / cu["counterfactual_total"]
    half = stats.t.ppf(0.975, cu["df_log_ratio"]) * cu["se_log_ratio"]
    assert h["term"] == its.OBSERVED_OVER_EXPECTED and h["unit"] == its.RATIO_UNIT
    assert h["estimate"] == pytest.approx(ratio, rel=1e-12)
    assert (h["ci_low"], h["ci_high"]) == pytest.approx(
        (ratio * np.exp(-half), ratio * np.exp(half)), rel=1e-12)
    assert h["verdict"] == "improved" and h["n"] == 48 and h["null"] == 1.0
    assert h["estimate"] < 1 and h["ci_high"] < 1
    # the direction is the fit's (default lower_is_better), not an argument of headline()
    up = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                 interruption="2017-09-01", direction="higher_is_better")
    assert up.headline()["verdict"] == "worsened"
    with pytest.raises(ValueError, match="lower_is_better"):
        its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption="2017-09-01", direction="decrease")
    # the sentence leads with that same number
    assert r.sentence.startswith(
        f"After the programme began in September 2017, there were "
        f"{(1 - h['estimate']) * 100:.0f}% fewer suspensions than the previous trend "
        f"predicted (ratio of observed to expected {h['estimate']:.2f}, 95% CI "
        f"{h['ci_low']:.2f} to {h['ci_high']:.2f})")
    assert "per 100 pupils" in r.sentence
    # a report that withholds the observed total withholds the ratio too
    w = replace(r, disclosure=Disclosure(10**9, "board"))
    assert w.headline()["withheld"] and w.headline()["estimate"] is None
    assert w.headline()["verdict"] == "no clear change"
    assert w.sentence == r.sentence_without_total()
    assert not replace(r, disclosure=Disclosure(5, "board")).headline()["withheld"]
    # with a level change only, the headline is its rate ratio, as in the sentence
    lv = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                 interruption="2017-09-01", impact="level")
    hl = lv.headline()
    assert hl["term"] == "level change" and hl["unit"] == "rate ratio"
    assert hl["estimate"] == _row(lv, "level change")["estimate"]
    assert lv.sentence.startswith("After the programme began in September 2017, suspensions "
                                  f"fell by {(1 - hl['estimate']) * 100:.0f}% (rate ratio "
                                  f"{hl['estimate']:.2f}, 95% CI")
    fig = r.plot(title="Suspensions")
    ax = fig.axes[0]
    assert ax.get_title() == "Suspensions" and ax.get_xlabel() and ax.get_ylabel()
    assert any(line.get_linestyle() == "--" for line in ax.get_lines())
    assert len(ax.collections) >= 2  # observed points and the counterfactual band
    flat, _ = _series(n_pre=24, n_post=24, level=0.0, slope=0.0, seed=22)
    r0 = its.fit(flat, time="period_start", outcome="suspensions", exposure="roll",
                 interruption="2017-09-01")
    assert r0.headline()["verdict"] == "no clear change"
    # a cumulative interval that crosses zero names both ends in words, never "-12 fewer"
    c0 = r0.cumulative.iloc[0]
    assert c0["ci_low"] < 0 < c0["ci_high"]
    lo_words = f"{abs(c0['ci_low']):,.0f} fewer"
    hi_words = f"{c0['ci_high']:,.0f} more"
    ends = (lo_words, hi_words) if c0["difference"] < 0 else (hi_words, lo_words)
    assert f"(95% CI from {ends[0]} to {ends[1]})" in r0.sentence


def test_two_interruptions():
    df, _ = _series(n_pre=15, n_post=30, seed=30)
    r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption=["2016-12-01", "2018-03-01"])
    assert set(r.effects["term"]) == {"level change 1", "slope change 1", "level change 2",
                                      "slope change 2"}
    assert r.diagnostics["terms"][2:6] == ["level_1", "slope_1", "level_2", "slope_2"]


# --------------------------------------------------------------- bad input


def _fit(df, **kw):
    args = dict(time="period_start", outcome="suspensions", exposure="roll",
                interruption="2017-09-01")
    args.update(kw)
    return its.fit(df, **args)


def test_too_few_points_is_an_error_citing_the_minimum():
    df, _ = _series(n_pre=2, n_post=10, start="2017-07-01")
    with pytest.raises(DataError, match="Wagner") as exc:
        _fit(df)
    assert "period_start" in str(exc.value)
    df2, _ = _series(n_pre=10, n_post=2, start="2016-11-01")
    with pytest.raises(DataError, match="only 2 period"):
        _fit(df2)


def test_fewer_than_eight_points_warns_about_power():
    df, _ = _series(n_pre=5, n_post=12, start="2017-04-01")
    with pytest.warns(its.ITSPowerWarning, match="only 5 periods"):
        _fit(df)


def test_interruption_outside_the_series():
    df, _ = _series()
    with pytest.raises(DataError, match="outside the series"):
        _fit(df, interruption="2030-01-01")
    with pytest.raises(DataError, match="outside the series"):
        _fit(df, interruption="2015-09-01")  # the first period: nothing before it


def test_duplicated_periods_name_the_rows():
    df, _ = _series()
    df = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match=r"'period_start': rows 5, 50 repeat a period"):
        _fit(df)


def test_missing_periods_fit_what_exists_and_are_listed():
    df, _ = _series()
    gap = df.drop(index=[5, 6, 30])
    with pytest.warns(its.ITSMissingPeriodsWarning, match="3 period"):
        r = _fit(gap)
    assert r.diagnostics["missing_periods"] == ["February 2016", "March 2016", "March 2018"]
    assert r.n == 45
    t = r.model.model.exog[:, 1]
    assert 6 not in t and 7 not in t and t.max() == 48  # time counts calendar periods


def test_negative_counts():
    df, _ = _series()
    df.loc[[2, 9], "suspensions"] = -1
    with pytest.raises(DataError, match=r"'suspensions': rows 4, 11 are negative"):
        _fit(df)


def test_zero_or_missing_population():
    df, _ = _series()
    df["roll"] = df["roll"].astype(float)
    df.loc[4, "roll"] = 0
    df.loc[7, "roll"] = np.nan
    with pytest.raises(DataError, match=r"'roll': rows 6, 9 have a missing, zero"):
        _fit(df)


def test_missing_outcome_values_suppressed_cells():
    df, _ = _series()
    df["suspensions"] = df["suspensions"].astype(float)
    df.loc[[1, 2, 3, 4, 5, 6], "suspensions"] = np.nan
    with pytest.raises(DataError, match=r"rows 3, 4, 5, 6, 7 \(and 1 more\) have no value"):
        _fit(df)


def test_no_events_at_all_is_a_clear_error():
    # statsmodels' own message here is "first guess on the deviance function returned a nan"
    df, _ = _series()
    df["suspensions"] = 0
    with pytest.raises(DataError, match="every period of the series has 0 events"):
        _fit(df)


def test_run_of_zeros_after_the_interruption_is_not_estimable():
    # Zeros in every post-interruption period but the last (as Wigan's permanent exclusions
    # in the DfE data): the Poisson MLE of the level and slope changes does not exist
    # (level -> -inf, slope -> +inf); without the check the fit returns rate ratios like
    # 1e-30 with intervals from 0 to infinity.
    df, t0 = _series(n_pre=12, n_post=12, start="2016-09-01", base=0.01)
    df.loc[t0 - 1: t0 + 9, "suspensions"] = 0
    with pytest.raises(DataError, match="cannot be estimated") as exc:
        _fit(df)
    assert "September 2017" in str(exc.value)  # names the periods of zeros
    df.loc[t0 + 10, "suspensions"] = 0  # no events at all after: level change -> -inf
    with pytest.raises(DataError, match="cannot be estimated"):
        _fit(df, impact="level")
    # a few zeros among positive counts are ordinary data and fit normally
    ok, _ = _series(n_pre=12, n_post=12, start="2016-09-01", base=0.01)
    ok.loc[[3, 15], "suspensions"] = 0
    assert np.isfinite(_fit(ok).effects["ci_high"]).all()


def test_missing_column_and_bad_options():
    df, _ = _series()
    with pytest.raises(DataError, match="'pupils'"):
        _fit(df, exposure="pupils")
    with pytest.raises(DataError, match="family"):
        _fit(df, family="binomial")
    with pytest.raises(DataError, match="period/2"):
        _fit(df, seasonality=7)


def test_plot_with_disclosure_draws_no_small_count():
    # base 0.002 of a roll of 1000: about 2 events a month, so many months are 1-4
    df, _ = _series(n_pre=24, n_post=24, roll=1000, base=0.002, trend=0.0, slope=0.0, seed=5)
    r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption="2017-09-01")
    small = (df["suspensions"] > 0) & (df["suspensions"] < 5)
    assert small.any()
    board = Disclosure(5, "board")
    ax = r.plot(disclosure=board).axes[0]
    observed = next(c for c in ax.collections if c.get_label() == "observed")
    y = observed.get_offsets()[:, 1]
    assert len(y) == (~small).sum() and not ((y > 0) & (y < 5)).any()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "fewer than 5 (value withheld)" in legend
    # without a disclosure control (or for an internal report) every point is drawn
    for fig in (r.plot(), r.plot(disclosure=Disclosure(5, "internal"))):
        drawn = next(c for c in fig.axes[0].collections if c.get_label() == "observed")
        assert len(drawn.get_offsets()) == len(df)
    plt.close("all")


def test_sentence_without_total_leaves_out_the_cumulative_difference():
    df, _ = _series(n_pre=24, n_post=24, level=-0.4, slope=0.0, seed=21)
    r = its.fit(df, time="period_start", outcome="suspensions", exposure="roll",
                interruption="2017-09-01")
    short = r.sentence_without_total()
    assert "fewer suspensions than the previous trend" in r.sentence
    assert "than the previous trend" not in short and "ratio of observed" not in short
    assert short.endswith(".") and "per 100" not in short and " over " not in short
    # the level and slope changes it keeps are those of the full sentence
    level = re.search(r"suspensions fell by \d+% \(rate ratio [^)]*\)", short).group()
    slope = short[short.index("after that"):-1]
    assert level in r.sentence and slope in r.sentence


# --------------------------------------------------------------- calendar and library


def test_dersimonian_laird_without_heterogeneity_and_one_unit():
    # Q = 0.5 < k - 1 = 2: tau2 is 0 (statsmodels alone would give a negative tau2), so the
    # pooled estimate is the fixed-effect one; one unit pools to itself
    y, v = np.array([0.1, 0.2, 0.15]), np.array([0.01, 0.02, 0.04])
    w = 1 / v
    fe = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - fe) ** 2)
    assert q < 2
    dl = its.dersimonian_laird(y, v)
    assert dl["tau2"] == 0.0 and dl["I2"] == 0.0 and dl["Q"] == pytest.approx(q)
    assert dl["estimate"] == pytest.approx(fe, rel=1e-12)
    assert dl["se"] == pytest.approx(1 / np.sqrt(np.sum(w)), rel=1e-12)
    assert dl["Q_p"] == pytest.approx(stats.chi2.sf(q, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = its.dersimonian_laird([0.3], [0.04], confidence=0.9)
    assert (one["estimate"], one["se"], one["tau2"], one["k"]) == (
        pytest.approx(0.3), pytest.approx(0.2), 0.0, 1)
    assert one["ci_high"] == pytest.approx(0.3 + stats.norm.ppf(0.95) * 0.2)
    assert np.isnan(one["Q_p"])


def _termly(summer_day):
    rng = np.random.default_rng(7)
    dates = [summer_day(y + 1) if k == 2 else pd.Timestamp(y + (k > 0), (9, 1)[k], 1)
             for y in range(2012, 2022) for k in range(3)]
    return pd.DataFrame({"term_start": dates,
                         "suspensions": rng.poisson(200, len(dates))})


def test_terms_follow_the_school_census_calendar():
    # summer terms dated by Easter Monday, in March in some years (28 March 2016)
    df = _termly(lambda y: pd.Timestamp(easter(y)) + pd.Timedelta(days=1))
    r = its.fit(df, time="term_start", outcome="suspensions", interruption="2016-09-01",
                seasonality="term")
    assert r.frequency == "termly" and r.n == 30
    cf = r.counterfactual
    assert cf["label"].iloc[:3].tolist() == ["2012/13 autumn", "2012/13 spring",
                                             "2012/13 summer"]
    # each period starts on its term's first day: 1 August, 1 January, Easter Monday
    assert cf["period"].iloc[:3].tolist() == [pd.Timestamp("2012-08-01"),
                                              pd.Timestamp("2013-01-01"),
                                              pd.Timestamp("2013-04-01")]
    assert r.interruptions == [pd.Timestamp("2016-08-01")]
    X = r.model.model.exog
    names = r.diagnostics["terms"]
    assert X[:, names.index("term_summer")].tolist() == [0, 0, 1] * 10
    # a summer term dated before Easter Monday is in spring: a clear error, not a guess
    late = _termly(lambda y: pd.Timestamp(y, 4, 14))  # Easter Sunday 20 April 2014
    with pytest.raises(DataError, match="summer term dated before Easter Monday"):
        its.fit(late, time="term_start", outcome="suspensions", interruption="2016-09-01")


@pytest.mark.filterwarnings("ignore::evaluation.its.ITSPowerWarning")
def test_academic_years_in_the_time_column():
    years = [f"{y}/{(y + 1) % 100:02d}" for y in range(2006, 2017)]
    df = pd.DataFrame({"year": years, "suspensions": np.arange(100, 111) * 3})
    r = its.fit(df, time="year", outcome="suspensions", interruption="2012/13")
    assert r.frequency == "yearly" and r.interruptions == [pd.Timestamp("2012-09-01")]
    assert r.counterfactual["label"].iloc[6] == "2012/13"
    bad = df.assign(year=df["year"].where(df.index != 3, "2009/11"))
    with pytest.raises(DataError, match="row 5 hold"):
        its.fit(bad, time="year", outcome="suspensions", interruption="2012/13")


def test_autocorrelation_flag_uses_the_documented_thresholds(sicily):
    d = _sicily_fit(sicily).diagnostics
    lo, hi = its.DURBIN_WATSON_RANGE
    assert d["autocorrelated"] == (not lo <= d["durbin_watson"] <= hi
                                   or d["ljung_box_p"] < its.LJUNG_BOX_ALPHA)
