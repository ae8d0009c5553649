"""Controlled interrupted time series on a panel: Linden's multiple-group ITSA.

The programme's unit(s) and many comparison units, given as one long table (a row per unit
and period), are stacked in one regression, as Linden's ``itsa`` multiple-group model
(Linden 2015, Stata Journal 15(2):480-500; ``itsa depvar, treatid(#) trperiod(#) lag(#)``
after ``tsset unit time``)::

    g(E[y_ut]) = b0 + b1 _t + b2 _z + b3 _z_t + b4 _x + b5 _x_t + b6 _z_x + b7 _z_x_t
                 (+ log exposure_ut for counts)

* ``_t`` counts periods from the FIRST period of data (0, 1, 2, ...; by the calendar of
  :class:`evaluation.its.Periods`, so a period missing from every unit leaves a gap);
* ``_z = 1`` for a programme unit, 0 for a comparison unit; ``_x = 1`` from the period
  containing the interruption; ``_x_t = (period - interruption period) * _x`` (0 in the
  interruption period); ``_z_t``, ``_z_x`` and ``_z_x_t`` are the products.
* So for the comparison arm ``b0`` is the level in the first period, ``b1`` the trend
  before, ``b4`` the change in level at the interruption, ``b5`` the change in trend and
  ``b1 + b5`` the trend after; the programme arm adds ``b2, b3, b6, b7`` to each.

Baseline level difference. ``b2`` (``_z``) is the difference between the arms in the first
period of data, because ``_t`` is 0 there. This is Stata's ``_z`` in current ``itsa``,
whose ``_t`` also starts at 0 (``itsa.ado`` 2.0.3/2.0.5, 2016-17: "set _t to start at
zero"; Linden's published intercepts for the Prop 99 example, 135.4995 and 132.2258, are
the levels in 1970, the first year, see the tests). Where ``_t`` starts at 1 instead
(``evaluation.its.fit(..., control=...)``, whose "baseline level difference" is at t = 0,
the period before the data; ``itsa`` versions older than that change did not start at 0)
the coefficient is the difference one period before the data: ours minus ``b3``, the
difference in pre-trends.

Several programme units are stacked, not summed or averaged: each keeps its own rows and its
own residuals, exactly as the comparison units do, so that both arms are handled alike and
the within-unit Newey-West sees each unit's own autocorrelation. The arm's line is then the
mean of its units (gaussian: OLS on a balanced panel with the arm fully interacted gives
each arm the line of its unit-averaged series) or their pooled rate (count family: the
Poisson score equations make the arm's expected total equal its observed total, as a fit to
the arm's summed counts and exposures would). The point estimates are those of the
aggregated series; only the standard errors use the units.

Unit effects (not part of ``itsa``; on by default except with ``inference="itsa"``).
Linden's model has one intercept per arm, so each unit's lasting difference from its arm's
line stays in its residuals. It does not move the gaussian point estimates (each unit's
constant offset cancels from the changes), but Newey-West with a short lag does not cancel
it, so with units of very different levels (schools of different sizes and phases) the
intervals of the changes are much wider than the data warrant. ``unit_effects=True`` adds
an intercept per unit, effect-coded to sum to zero within each arm so that ``_cons`` and
``_z`` remain the arms' averages in the first period; for gaussian data on a balanced
panel the other coefficients are unchanged (only their standard errors and the degrees of
freedom); for counts the arm's intercept becomes the mean of its units' log rates and the
changes are the within-unit changes (each unit compared with itself).

Model: family ``"gaussian"``: OLS (statsmodels); ``"poisson"``: a Poisson GLM with log
link (statsmodels), for counts such as exclusions, with ``exposure=`` as an offset.

Inference (``inference=``):

* ``"auto"`` (default) is ``"ar1"`` with unit effects, for every number of programme and
  comparison units. Chosen by the seeded coverage simulation in
  ``benchmarks/its_coverage.py --controlled`` (tested in ``tests/test_its_coverage.py``):
  termly suspensions of 21 programme and 12 comparison schools (the demo: two thirds
  primary, one third secondary, school effects, seasonality, overdispersion) and of 1 or 3
  programme against 5 to 20 schools, 21 terms, latent lag-1 autocorrelation 0 to 0.4.
  Under ``"ar1"`` (2,000 replicates per cell, Monte Carlo SE 0.005) 95% intervals of the
  difference in level change, the difference in slope change and the headline ratio
  covered the truth in 0.945 to 0.994 of replicates, and null effects were called a
  change in 0.6% to 4.8% of them (pooled 2.6%; the most at latent autocorrelation 0.4:
  4.8% at the demo's shape, 4.75% with 3 programme schools against 20; with one
  programme school 0.6% to 3.6%, conservative). The other candidates (300 replicates per
  cell): ``"itsa"`` as published covered 0.80 to 0.96 with one programme school (4.7% to
  18% false verdicts) and 0.97 to 1.00 with more (at the demo's shape 1.00 with no
  verdict ever: uselessly wide); ``"itsa"`` with unit effects 0.75 to 0.95, with 6% to
  23% false verdicts; ``"cluster"`` 0.81 to 0.93 with 3 or 21 programme units and 0.29
  to 0.69 with one (a single treated cluster cannot estimate its own variance). For a
  gaussian outcome (a rate with AR(1) errors and each unit its own SD; 2,000 replicates
  per cell) ``"ar1"`` covered 0.956 to 0.991 with 0.9% to 4.2% false verdicts.
* ``"ar1"``: :func:`_ar1_panel_covariance`: AR(1) errors within each unit with one
  autocorrelation (estimated with the single-series method's small-sample correction,
  weighted towards the units that carry the estimate, plus a margin) and each unit's own
  dispersion; t intervals on Satterthwaite degrees of freedom that allow for the
  estimation of both the dispersions and the autocorrelation, so that with one programme
  unit they are fewer than its own series' (about 5 to 8 for 21 terms), not the panel's
  ``n - k``, and at the demo's shape about 45 (the t critical value 2.02, not 1.99).
* ``"cluster"``: cluster-robust by unit (``sum_g u_g u_g'`` of the units' summed scores,
  Stata's factor ``G/(G-1) (n-1)/(n-k)``, statsmodels ``cov_type="cluster"`` with
  ``use_correction``), t on ``G - 1`` df. Needs many units in BOTH arms.
* ``"itsa"``: the formulas of Stata's ``newey`` after ``tsset unit time``, as Linden's
  ``itsa`` (with ``unit_effects`` False, its default here, exactly his model; the Prop 99
  tests reproduce his published output):

  * ``lags=L`` (default 1, as Linden's example ``lag(1)``): Newey-West covariance
    ``V = n/(n-k) * B^-1 S B^-1`` with ``B = X'X`` (gaussian) or ``X' diag(mu) X``
    (Poisson) and ``S = sum_i u_i u_i' + sum_{l=1..L} (1 - l/(L+1)) sum (u_i u_j' + u_j
    u_i')`` over the pairs of rows of the SAME unit whose periods are ``l`` apart, never
    across units; ``u_i = x_i * (y_i - mu_i)`` (the score). ``lags=0`` is the
    heteroskedasticity-robust (White) covariance with the same factor (``newey, lag(0)``).
  * ``lags=None``: no allowance for autocorrelation: the classical OLS covariance
    (``regress``) or, for counts, quasi-Poisson (the Poisson covariance times the Pearson
    dispersion chi2 / (n - k); McCullagh & Nelder 1989 sec. 4.5). With a sandwich the
    dispersion cancels, so Poisson and quasi-Poisson give the same standard errors.
  * p-values and intervals use Student's t with ``n - k`` degrees of freedom (``n`` rows,
    ``k`` coefficients). With ONE programme unit the differences between the arms rest on
    that unit's own rows, and ``n - k`` counts every comparison row too, so in short
    series these intervals are too narrow (as Turner et al. 2021, BMC Med Res Methodol
    21:181, found for Newey-West in single series, and the simulation above).

* Whatever the inference, count effects are ``exp(b +/- t * se)``; the dispersion (and
  ``rho`` for ``"ar1"``) is reported in :attr:`ControlledITSResult.diagnostics`.

The Newey-West covariance is written here rather than taken from statsmodels'
``cov_type="hac-panel"`` because that pairs neighbouring rows, so a period missing from
the data would be paired across the gap (Stata's time-series lags are by period, as here),
and because the same few lines then serve OLS and the Poisson GLM. On a panel without
gaps both give the same numbers (``tests/test_controlled_its.py`` checks it, and checks
both against a separate implementation of Stata's formulas and against Linden's published
figures).

Counterfactuals for the programme arm after the interruption:

* its OWN counterfactual: its pre-interruption line continued (``b4..b7`` set to 0), what
  a single-group ITS compares with; it ignores whatever else changed at the same time;
* the CONTROLLED counterfactual: its pre-interruption line plus the change seen in the
  comparison arm at the same time (``b6 = b7 = 0``); the difference-in-differences of
  levels and trends.

The headline (:meth:`ControlledITSResult.headline`) is the controlled estimate: for
``"gaussian"`` the difference in level change ``b6`` (the programme arm's change at the
interruption beyond the comparison arm's; the difference in trends ``b7`` follows in the
sentence), as the single-series ITS headline is its level change; for counts the ratio of
the events observed in the programme arm after the interruption to the events the
controlled counterfactual expects, because a fall in level followed by a steeper rise is
not an improvement and ``exp(b6)`` alone would call it one. Its interval is the delta
method on ``log(sum mu_fitted) - log(sum mu_controlled)`` over the programme arm's
post-interruption rows, using the full covariance: the fitted total equals the observed
total (Poisson score equation of the ``_z_x`` column), so the interval allows for the
randomness of the observed counts through ``b6`` and ``b7`` rather than treating them as
fixed.

Only one interruption is modelled; the data must be a balanced panel (every unit has the
same periods), as ``itsa`` requires ("strong balance required").
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, special

from evaluation import calendar
from evaluation.errors import DataError, describe_rows
from evaluation.its import (  # the same row numbers and number coercion as ITS
    AR1_MAX_RHO,
    AR1_RHO_MARGIN,
    MIN_POINTS,
    POWER_POINTS,
    ITSMissingPeriodsWarning,
    ITSPowerWarning,
    Periods,
    _numeric,
    _rows,
    as_dates,
)
from evaluation.privacy import Disclosure
from evaluation.results import (
    Direction,
    OutcomeLike,
    Result,
    check_direction,
    make_record,
    repr_html,
    verdict,
)

__all__ = ["ControlledITSResult", "fit", "resolve_inference", "FAMILIES", "INFERENCES", "TERMS",
           "CONTROLLED_RATIO_UNIT"]

FAMILIES = ("gaussian", "poisson")
INFERENCES = ("auto", "itsa", "cluster", "ar1")
#: The coefficients in Stata's ``itsa`` names, in the order of the design matrix.
TERMS = ("_cons", "_t", "_z", "_z_t", "_x", "_x_t", "_z_x", "_z_x_t")
FREQUENCIES = ("monthly", "termly", "yearly")
CONTROLLED_RATIO_UNIT = ("ratio of observed to expected events after the interruption "
                         "(controlled counterfactual)")
DIFFERENCE_UNIT = "difference in level change (programme minus comparison)"
DESIGN = "controlled interrupted time series"
_UNIT_WORDS = {"monthly": "month", "termly": "term", "yearly": "year"}

#: The design columns each counterfactual sets to zero (indices into TERMS).
_OWN_ZEROED = (4, 5, 6, 7)
_CONTROLLED_ZEROED = (6, 7)


# ----------------------------------------------------------------------------- result


@dataclass
class _Panel:
    """The stacked data in (unit, period) order and the fitted model's arrays."""

    X: np.ndarray
    y: np.ndarray
    offset: np.ndarray  # log exposure (0 without exposure; unused for gaussian)
    z: np.ndarray  # 1 programme, 0 comparison
    codes: np.ndarray  # period code of each row
    period_codes: np.ndarray  # the panel's periods, sorted
    int_code: int
    periods: Periods
    params: np.ndarray
    V: np.ndarray
    df_resid: int
    crit: float
    names: list[str]  # TERMS, then any seasonal columns, then any unit effects
    unit_cols: list[int] = field(default_factory=list)  # the unit-effect columns
    info: dict = field(default_factory=dict)  # from the covariance (e.g. rho for "ar1")


@dataclass
class ControlledITSResult:
    """A fitted controlled ITS (see the module docstring for the model and its sources).

    ``coefficients``: the eight coefficients in Stata's names (coef, se, t, p, ci on the
    model scale), to compare with ``itsa``. ``effects`` (= :attr:`summary`): for each arm
    (programme, comparison, difference) the intercept (level in the first period of
    data), pre-trend, level change, slope change and post-trend, back-transformed for
    counts. ``counterfactuals``: the programme arm after the interruption against its own
    and against the controlled counterfactual. ``treated_series`` / ``comparison_series``:
    one row per period for the plot. Follows :class:`evaluation.results.AnalysisResult`.
    """

    family: str
    outcome: str
    frequency: str
    interruption: pd.Timestamp
    confidence: float
    lags: int | None
    #: the inference used ("itsa", "cluster" or "ar1"; "auto" resolved)
    inference: str
    n_treated: int
    n_comparison: int
    n_periods: int
    model: Any = field(repr=False)
    panel: _Panel = field(repr=False)
    labels: dict = field(repr=False)
    exposure: bool = False
    direction: Direction = "lower_is_better"
    #: a report's disclosure control: a small observed count after the interruption in
    #: the programme arm withholds the count headline (the ratio would reveal it)
    disclosure: Disclosure | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ numbers

    @property
    def count(self) -> bool:
        return self.family != "gaussian"

    @property
    def n(self) -> int:
        """Units in the fit (programme and comparison)."""
        return self.n_treated + self.n_comparison

    def _contrast(self, c: np.ndarray) -> tuple[float, float, float, float, float, float]:
        """estimate, se, t, p, ci_low, ci_high of ``c'b`` on the model scale."""
        p = self.panel
        est = float(c @ p.params)
        var = float(c @ p.V @ c)
        # With very sparse series the AR(1) sandwich need not be positive definite: a
        # contrast with no positive variance gets no interval (missing: "no clear change"),
        # never a zero-width one.
        se = float(np.sqrt(var)) if var > 0 else np.nan
        tstat = est / se if se > 0 else np.nan
        pval = float(2 * special.stdtr(p.df_resid, -abs(tstat)))
        return est, se, tstat, pval, est - p.crit * se, est + p.crit * se

    @cached_property
    def coefficients(self) -> pd.DataFrame:
        """term (Stata's name; then any seasonal terms; not the unit effects), coef, se, t,
        p, ci_low, ci_high, df: the model scale."""
        rows = []
        k = len(self.panel.names)
        for j, name in enumerate(self.panel.names):
            if j in self.panel.unit_cols:
                continue
            c = np.zeros(k)
            c[j] = 1.0
            est, se, tstat, pval, lo, hi = self._contrast(c)
            rows.append({"term": name, "coef": est, "se": se, "t": tstat, "p": pval,
                         "ci_low": lo, "ci_high": hi, "df": self.panel.df_resid})
        return pd.DataFrame(rows)

    @cached_property
    def effects(self) -> pd.DataFrame:
        """arm, term, estimate, ci_low, ci_high, p, scale, coef, se, t, df, stata.

        ``arm`` is "programme", "comparison" or "difference" (programme minus comparison;
        for counts the ratio programme over comparison). ``term``: intercept (the level,
        or for counts the rate, in the first period of data), pre-trend, level change,
        slope change, post-trend; for the difference the first is the baseline level
        difference at the first period (Stata's ``_z``). ``stata`` names the ``lincom``
        expression.
        """
        unit = _UNIT_WORDS[self.frequency]
        plans = {
            "comparison": {"intercept": ("_cons",), "pre-trend": ("_t",),
                           "level change": ("_x",), "slope change": ("_x_t",),
                           "post-trend": ("_t", "_x_t")},
            "programme": {"intercept": ("_cons", "_z"), "pre-trend": ("_t", "_z_t"),
                          "level change": ("_x", "_z_x"), "slope change": ("_x_t", "_z_x_t"),
                          "post-trend": ("_t", "_z_t", "_x_t", "_z_x_t")},
            "difference": {"baseline level difference": ("_z",),
                           "pre-trend difference": ("_z_t",),
                           "difference in level change": ("_z_x",),
                           "difference in slope change": ("_z_x_t",),
                           "post-trend difference": ("_z_t", "_z_x_t")},
        }
        rows = []
        for arm in ("programme", "comparison", "difference"):
            for term, names in plans[arm].items():
                c = np.zeros(len(self.panel.names))
                for nm in names:
                    c[TERMS.index(nm)] = 1.0
                est, se, tstat, pval, lo, hi = self._contrast(c)
                scale = _scale_words(term, arm, self.count, unit, self.exposure)
                tr = np.exp if self.count else _identity
                rows.append({"arm": arm, "term": term, "estimate": float(tr(est)),
                             "ci_low": float(tr(lo)), "ci_high": float(tr(hi)), "p": pval,
                             "scale": scale, "coef": est, "se": se, "t": tstat,
                             "df": self.panel.df_resid, "stata": " + ".join(names)})
        return pd.DataFrame(rows)

    @property
    def summary(self) -> pd.DataFrame:
        """The tidy table of effects (:attr:`effects`)."""
        return self.effects

    def effect(self, arm: str, term: str) -> dict:
        """One row of :attr:`effects` as a dict."""
        e = self.effects
        row = e[(e["arm"] == arm) & (e["term"] == term)]
        if row.empty:
            raise KeyError(f"No effect {term!r} for arm {arm!r}.")
        return row.iloc[0].to_dict()

    def _arm_rows(self, z: int) -> np.ndarray:
        return self.panel.z == z

    def _cf_design(self, zeroed: tuple[int, ...]) -> np.ndarray:
        Xcf = self.panel.X.copy()
        Xcf[:, list(zeroed)] = 0.0
        return Xcf

    @cached_property
    def counterfactuals(self) -> pd.DataFrame:
        """The programme arm after the interruption against each counterfactual.

        One row per counterfactual ("controlled", "own") with its description, periods,
        observed (total events for counts, the arm's mean for gaussian), expected, and
        the estimate with its interval: for counts the ratio observed / expected (delta
        method on the log ratio of fitted to counterfactual totals, see the module
        docstring); for gaussian the mean over the post-interruption periods of observed
        minus counterfactual (which equals fitted minus counterfactual: OLS residuals sum
        to zero over the rows of the ``_z_x`` column).
        """
        p = self.panel
        sel = self._arm_rows(1) & (p.codes >= p.int_code)
        b = p.params
        rows = []
        many = self.labels["unit"][1]
        for name, zeroed, words in (
            ("controlled", _CONTROLLED_ZEROED,
             f"the programme {many}' earlier trend plus the comparison {many}' change"),
            ("own", _OWN_ZEROED, f"the programme {many}' earlier trend continued"),
        ):
            X, Xcf = p.X[sel], self._cf_design(zeroed)[sel]
            if self.count:
                mu = np.exp(X @ b + p.offset[sel])
                mu_cf = np.exp(Xcf @ b + p.offset[sel])
                grad = (mu @ X) / mu.sum() - (mu_cf @ Xcf) / mu_cf.sum()
                log_ratio = float(np.log(mu.sum()) - np.log(mu_cf.sum()))
                se = float(np.sqrt(grad @ p.V @ grad))
                observed, expected = float(p.y[sel].sum()), float(mu_cf.sum())
                est, lo, hi = (float(np.exp(v)) for v in
                               (log_ratio, log_ratio - p.crit * se, log_ratio + p.crit * se))
                tstat = log_ratio / se
                scale = "ratio of observed to expected events"
            else:
                grad = (X - Xcf).mean(axis=0)
                diff = float(grad @ b)
                se = float(np.sqrt(grad @ p.V @ grad))
                observed, expected = float(p.y[sel].mean()), float((Xcf @ b).mean())
                est, lo, hi = diff, diff - p.crit * se, diff + p.crit * se
                tstat = diff / se
                scale = "mean difference from the counterfactual"
            rows.append({
                "counterfactual": name, "description": words,
                "periods": int(len(np.unique(p.codes[sel]))), "observed": observed,
                "expected": expected, "estimate": est, "ci_low": lo, "ci_high": hi,
                "p": float(2 * special.stdtr(p.df_resid, -abs(tstat))), "se": se,
                "scale": scale,
            })
        return pd.DataFrame(rows)

    def _series(self, z: int) -> pd.DataFrame:
        """One row per period of one arm: observed, fitted and (programme arm) both
        counterfactuals with pointwise intervals, on the plotting scale: the arm's mean
        (gaussian), or its events per unit, or per 100 of exposure (counts).

        Each value aggregates the arm's rows: the mean of the rows' predictions (gaussian,
        interval from the mean design row) or the sum of their expected counts over the
        arm's units or exposure (counts, interval by the delta method on the log of that
        sum), so that with unit effects the lines are the arm's pooled rate, on the same
        scale as the observed points."""
        p = self.panel
        rows = self._arm_rows(z)
        uniq, where = np.unique(p.codes[rows], return_inverse=True)
        per = np.bincount(where, weights=p.y[rows])
        units = np.bincount(where).astype(float)
        denom = (np.bincount(where, weights=np.exp(p.offset[rows])) / 100.0
                 if (self.count and self.exposure) else units)
        out = {"period": p.periods.starts(uniq), "label": p.periods.labels(uniq),
               "observed": per / denom, "observed_total": per, "post": uniq >= p.int_code}
        designs = {"fitted": p.X[rows]}
        if z == 1:
            designs["own_counterfactual"] = self._cf_design(_OWN_ZEROED)[rows]
            designs["controlled_counterfactual"] = self._cf_design(_CONTROLLED_ZEROED)[rows]
        k = p.X.shape[1]
        for name, Xs in designs.items():
            eta = Xs @ p.params
            if self.count:
                mu = np.exp(eta + p.offset[rows])
                total = np.bincount(where, weights=mu)
                value = total / denom
                # gradient of log(total) per period: sum(mu x) / total
                grad = np.column_stack([np.bincount(where, weights=mu * Xs[:, j],
                                                    minlength=len(uniq)) for j in range(k)])
                grad /= total[:, None]
            else:
                grad = np.column_stack([np.bincount(where, weights=Xs[:, j],
                                                    minlength=len(uniq)) for j in range(k)])
                grad /= units[:, None]
                value = grad @ p.params
            out[name] = value
            if name != "fitted":
                half = p.crit * np.sqrt(np.einsum("ij,jk,ik->i", grad, p.V, grad))
                lo, hi = ((value * np.exp(-half), value * np.exp(half)) if self.count
                          else (value - half, value + half))
                out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
        return pd.DataFrame(out)

    @cached_property
    def treated_series(self) -> pd.DataFrame:
        """The programme arm per period: period, label, observed, observed_total, post,
        fitted, own_counterfactual and controlled_counterfactual (each with ci_low,
        ci_high); gaussian values are the arm's means, counts per unit (or per 100 of
        exposure)."""
        return self._series(1)

    @cached_property
    def comparison_series(self) -> pd.DataFrame:
        """The comparison arm per period (observed and fitted), as :attr:`treated_series`."""
        return self._series(0)

    @cached_property
    def diagnostics(self) -> dict:
        """Settings and checks: family, lags, units, periods, rows, residual df, the
        Pearson dispersion (counts; chi2 / (n - k)) and the periods before and after."""
        p = self.panel
        mu = self._fitted()
        resid = p.y - mu
        rdf = len(p.y) - p.X.shape[1]  # the residual df (the t df may be fewer)
        disp = (float(np.sum(resid**2 / mu) / rdf) if self.count
                else float(np.sum(resid**2) / rdf))
        return {
            "family": self.family, "inference": self.inference,
            "hac_lags": self.lags if self.inference == "itsa" else None, "n_units": self.n,
            "terms": [nm for j, nm in enumerate(p.names) if j not in p.unit_cols],
            "unit_effects": bool(p.unit_cols),
            "n_treated": self.n_treated, "n_comparison": self.n_comparison,
            "n_periods": self.n_periods, "n_rows": int(len(p.y)), "df_resid": rdf,
            "t_df": p.df_resid,
            "n_pre": int((p.period_codes < p.int_code).sum()),
            "n_post": int((p.period_codes >= p.int_code).sum()),
            "dispersion" if self.count else "residual_variance": disp,
            "missing_periods": self.labels["missing"],
            "rho": p.info.get("rho"), "inference_text": self.inference_text(),
        }

    def inference_text(self) -> str:
        """How the intervals were made, in words a report can print."""
        one, many = self.labels["unit"]
        df = self.panel.df_resid
        if self.inference == "ar1":
            return (f"standard errors allowing for first-order autocorrelation within each "
                    f"{one} (taken as {self.panel.info['rho']:.2f}: the estimate from the "
                    f"residuals, corrected for the short series, plus a margin for its "
                    f"uncertainty) and for each {one}'s own variability, with t intervals on "
                    f"{df} degrees of freedom (fewer where few {many} carry the estimate)")
        if self.inference == "cluster":
            return (f"standard errors robust to any correlation within each {one} over time "
                    f"(clustered by {one}), with t intervals on {df} degrees of freedom "
                    f"({self.n} {many} less one)")
        if self.lags is None:
            return (f"model-based standard errors ({'quasi-Poisson' if self.count else 'OLS'})"
                    f" with t intervals on {df} degrees of freedom, Stata's itsa formulas")
        return (f"Newey-West standard errors within each {one} (lag {self.lags}) with "
                f"Stata's small-sample factor and t intervals on {df} degrees of freedom, "
                "Stata's itsa formulas")

    def _fitted(self) -> np.ndarray:
        p = self.panel
        eta = p.X @ p.params
        return np.exp(eta + p.offset) if self.count else eta

    # ------------------------------------------------------------------ headline and words

    @property
    def total_withheld(self) -> bool:
        """Whether ``disclosure`` withholds the programme arm's events after the
        interruption (counts only)."""
        if not self.count or self.disclosure is None:
            return False
        row = self.counterfactuals.iloc[0]
        return bool(self.disclosure.is_small(row["observed"]))

    def headline(self) -> dict:
        """THE headline: the controlled estimate (see the module docstring for the choice).

        gaussian: the difference in level change; counts: the ratio of observed to
        controlled-expected events after the interruption. The verdict is
        :func:`evaluation.results.verdict` in the fit's ``direction``; a withheld count
        gives estimate None and "no clear change".
        """
        post = self.treated_series[self.treated_series["post"]]
        period = f"{post['label'].iloc[0]} to {post['label'].iloc[-1]}"
        withheld = self.total_withheld
        if self.count:
            row = self.counterfactuals.iloc[0]
            term, unit, null = "controlled observed over expected", CONTROLLED_RATIO_UNIT, 1.0
            est, lo, hi = (None, None, None) if withheld else (
                float(row["estimate"]), float(row["ci_low"]), float(row["ci_high"]))
        else:
            e = self.effect("difference", "difference in level change")
            term, unit, null = "difference in level change", DIFFERENCE_UNIT, 0.0
            est, lo, hi = e["estimate"], e["ci_low"], e["ci_high"]
        return {
            "term": term, "estimate": est, "ci_low": lo, "ci_high": hi, "unit": unit,
            "null": null, "n": self.n, "period": period,
            "verdict": verdict(lo, hi, null=null, direction=self.direction),
            "withheld": withheld, "design": DESIGN,
            "counterfactual": f"controlled: {self.counterfactuals['description'].iloc[0]}",
            "n_treated": self.n_treated, "n_comparison": self.n_comparison,
        }

    def headline_text(self) -> str:
        """The headline in one line, naming the design."""
        h = self.headline()
        what = self.labels["what"]
        name = what[:1].upper() + what[1:]
        design = self.design_text()
        if h["withheld"]:
            small = (f"fewer than {self.disclosure.threshold}" if self.disclosure is not None
                     else "too few")
            return (f"{name} after the interruption: {small}, too few to compare with the "
                    f"controlled counterfactual (withheld to protect pupils' privacy); {design}")
        est, lo, hi = h["estimate"], h["ci_low"], h["ci_high"]
        if self.count:
            return (f"{name} {_signed_pct(est)} against the controlled counterfactual, ratio "
                    f"{est:.2f} ({_num(lo, 2)} to {_num(hi, 2)}); {design}")
        return (f"{name}: difference in level change {_fmt(est, signed=True)} "
                f"({_fmt(lo)} to {_fmt(hi)}); {design}")

    def design_text(self) -> str:
        """The design in words, e.g. 'controlled interrupted time series, 21 programme and
        12 comparison schools'."""
        one, many = self.labels["unit"]
        return (f"{DESIGN}, {self.n_treated} programme and {self.n_comparison} comparison "
                f"{one if self.n_comparison == 1 else many}")

    @cached_property
    def sentences(self) -> dict[str, str]:
        """The plain-English results, each naming the counterfactual it uses:
        ``controlled`` (the headline), ``own`` (the programme units' earlier trend alone)
        and ``baseline`` (how alike the arms were before)."""
        return {"controlled": self._controlled_sentence(), "own": self._own_sentence(),
                "baseline": self._baseline_sentence()}

    @property
    def sentence(self) -> str:
        """The sentences in order: controlled (headline), own counterfactual, baseline."""
        return " ".join(self.sentences.values())

    def _ci(self, lo: float, hi: float, digits: int | None = None) -> str:
        pct = round(self.confidence * 100)
        f = (lambda v: _num(v, digits)) if digits is not None else _fmt
        return f"{pct}% CI {f(lo)} to {f(hi)}"

    def _unclear(self, lo: float, hi: float) -> str:
        null = 1.0 if self.count else 0.0
        unclear = verdict(lo, hi, null=null, direction=self.direction) == "no clear change"
        return ", an interval that includes no change" if unclear else ""

    def _change_words(self, arm: str, level: str, slope: str) -> str:
        """'<what> fell by 2.8 (CI ...); after that the trend changed by -0.99 per year
        (CI ...)' for a level and a slope term of one arm."""
        what, unit = self.labels["what"], _UNIT_WORDS[self.frequency]
        lv, sl = self.effect(arm, level), self.effect(arm, slope)
        if self.count:
            pct = (lv["estimate"] - 1) * 100
            first = (f"the rate of {what} {'fell' if pct < 0 else 'rose'} by {abs(pct):.0f}% "
                     f"(rate ratio {lv['estimate']:.2f}, "
                     f"{self._ci(lv['ci_low'], lv['ci_high'], 2)}"
                     f"{self._unclear(lv['ci_low'], lv['ci_high'])})")
            spct = (sl["estimate"] - 1) * 100
            then = (f"the trend changed by {_signed(spct, 1)}% per {unit} (ratio "
                    f"{sl['estimate']:.3f}, {self._ci(sl['ci_low'], sl['ci_high'], 3)}"
                    f"{self._unclear(sl['ci_low'], sl['ci_high'])})")
        else:
            est = lv["estimate"]
            first = (f"{what} {'fell' if est < 0 else 'rose'} by {_fmt(abs(est))} "
                     f"({self._ci(lv['ci_low'], lv['ci_high'])}"
                     f"{self._unclear(lv['ci_low'], lv['ci_high'])})")
            then = (f"the trend changed by {_fmt(sl['estimate'], signed=True)} per {unit} "
                    f"({self._ci(sl['ci_low'], sl['ci_high'])}"
                    f"{self._unclear(sl['ci_low'], sl['ci_high'])})")
        return f"{first}; after that {then}"

    def _controlled_sentence(self) -> str:
        who, comp, when = self.labels["who"], self.labels["comparison"], self.labels["when"]
        what, whose = self.labels["what"], self.labels["whose"]
        cf = (f"against the controlled counterfactual ({whose} earlier trend plus the change "
              f"seen in {comp} at the same time)")
        changes = self._change_words("difference", "difference in level change",
                                     "difference in slope change")
        if self.count and not self.total_withheld:
            h = self.headline()
            est = h["estimate"]
            row = self.counterfactuals.iloc[0]
            return (f"After {who} began in {when}, there were {abs(est - 1) * 100:.0f}% "
                    f"{'fewer' if est < 1 else 'more'} {what} over {int(row['periods'])} "
                    f"{_UNIT_WORDS[self.frequency]}s than the controlled counterfactual "
                    f"expected (ratio of observed to expected {est:.2f}, "
                    f"{self._ci(h['ci_low'], h['ci_high'], 2)}"
                    f"{self._unclear(h['ci_low'], h['ci_high'])}); that counterfactual is "
                    f"{whose} earlier trend plus the change seen in {comp} at the same time. "
                    f"Relative to {comp}, in {when} {changes}.")
        return f"After {who} began in {when}, {cf}, {changes}."

    def _own_sentence(self) -> str:
        whose, comp = self.labels["whose"], self.labels["comparison"]
        changes = self._change_words("programme", "level change", "slope change")
        text = (f"Against {whose} own earlier trend alone (the counterfactual of a "
                f"single-series ITS, which ignores the change in {comp}), {changes}")
        if self.count and not self.total_withheld:
            row = self.counterfactuals.iloc[1]
            est = row["estimate"]
            text += (f"; over the period {abs(est - 1) * 100:.0f}% "
                     f"{'fewer' if est < 1 else 'more'} than that trend predicted (ratio "
                     f"{est:.2f}, {self._ci(row['ci_low'], row['ci_high'], 2)})")
        return text + "."

    def _baseline_sentence(self) -> str:
        who, comp, what = self.labels["arm"], self.labels["comparison"], self.labels["what"]
        first, unit = self.labels["first"], _UNIT_WORDS[self.frequency]
        lv = self.effect("difference", "baseline level difference")
        tr = self.effect("difference", "pre-trend difference")
        if self.count:
            level = (f"the rate of {what} in {who} was {lv['estimate']:.2f} times that in "
                     f"{comp} ({self._ci(lv['ci_low'], lv['ci_high'], 2)})")
            trend = (f"its trend differed by {_signed((tr['estimate'] - 1) * 100, 1)}% per "
                     f"{unit} (ratio {tr['estimate']:.3f}, "
                     f"{self._ci(tr['ci_low'], tr['ci_high'], 3)})")
        else:
            est = lv["estimate"]
            level = (f"the level of {what} in {who} was {_fmt(abs(est))} "
                     f"{'lower' if est < 0 else 'higher'} than in {comp} "
                     f"({self._ci(lv['ci_low'], lv['ci_high'])})")
            trend = (f"its trend differed by {_fmt(tr['estimate'], signed=True)} per {unit} "
                     f"({self._ci(tr['ci_low'], tr['ci_high'])})")
        return (f"Before {self.labels['when']}: in {first}, the first period of data, {level},"
                f" and {trend}. The controlled comparison assumes both would have followed "
                "their earlier trends without the programme; the larger these differences, "
                "the less certain that is.")

    # ------------------------------------------------------------------ protocol

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None, n: int | None = None,
               notebook: str = "") -> Result:
        """The results.json record of :meth:`headline` (analysis "its"); ``n`` defaults to
        the units in the fit and ``period`` to the post-interruption periods."""
        return make_record(self, outcome, analysis="its", headline=self.headline_text(),
                           period=period, n=n, notebook=notebook)

    def _shown(self, series: pd.DataFrame) -> np.ndarray:
        """Which periods' observed counts may be drawn (not those ``disclosure`` withholds)."""
        if not self.count or self.disclosure is None:
            return np.ones(len(series), dtype=bool)
        return ~series["observed_total"].map(self.disclosure.is_small).to_numpy(dtype=bool)

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Both arms' observed values and fitted lines, the programme arm's own
        counterfactual (dotted) and controlled counterfactual (dashed, with its interval),
        and the interruption; returns the matplotlib Figure. With a ``disclosure``, a
        period whose count (an arm's total) it would withhold is not drawn."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 4.5))
        else:
            fig = ax.figure
        tr, cs = self.treated_series, self.comparison_series
        shown_c, shown = self._shown(cs), self._shown(tr)
        ax.scatter(cs.loc[shown_c, "period"], cs.loc[shown_c, "observed"], s=14, color="0.6",
                   label=f"comparison ({self.n_comparison} unit{_s(self.n_comparison)})")
        ax.scatter(tr.loc[shown, "period"], tr.loc[shown, "observed"], s=16, color="C0",
                   zorder=3, label="programme")
        for frame, color in ((cs, "0.6"), (tr, "C0")):
            for post in (False, True):
                part = frame[frame["post"] == post]
                ax.plot(part["period"], part["fitted"], color=color, lw=2 if color == "C0" else 1)
        post = tr[tr["post"]]
        pct = round(self.confidence * 100)
        ax.fill_between(post["period"], post["controlled_counterfactual_ci_low"],
                        post["controlled_counterfactual_ci_high"], color="C1", alpha=0.2,
                        label=f"controlled counterfactual {pct}% CI")
        ax.plot(post["period"], post["controlled_counterfactual"], "--", color="C1", lw=2,
                label="controlled counterfactual (earlier trend + comparison change)")
        ax.plot(post["period"], post["own_counterfactual"], ":", color="C2", lw=2,
                label="own counterfactual (earlier trend)")
        ax.axvline(self.interruption, color="k", ls=":", lw=1, label="interruption")
        ax.set_xlabel("Period")
        ylabel = self.labels["what"]
        if self.count:
            ylabel += " per 100 " + self.labels["per"] if self.exposure else " per unit"
        elif self.n_treated > 1 or self.n_comparison > 1:
            ylabel += " (mean of units)"
        ax.set_ylabel(ylabel)
        ax.set_title(title or f"Controlled interrupted time series: {self.labels['what']}")
        ax.legend(fontsize=8, frameon=False)
        return fig


# ----------------------------------------------------------------------------- fitting


def fit(
    data: pd.DataFrame,
    *,
    unit: str,
    time: str,
    outcome: str,
    treated: Any,
    interruption: Any,
    family: str = "gaussian",
    exposure: str | None = None,
    lags: int | None = 1,
    seasonality: str | int | None = None,
    period: int | None = None,
    inference: str = "auto",
    unit_effects: bool | None = None,
    confidence: float = 0.95,
    frequency: str | None = None,
    outcome_label: str | None = None,
    intervention_label: str = "the programme",
    comparison_label: str = "the comparison units",
    unit_label: tuple[str, str] = ("unit", "units"),
    exposure_label: str = "pupils",
    direction: Direction = "lower_is_better",
    disclosure: Disclosure | None = None,
) -> ControlledITSResult:
    """Fit Linden's multiple-group ITS to a long table with a ``unit`` column.

    ``treated`` is the programme's unit identifier, or a list of them (stacked, see the
    module docstring); every other unit is a comparison unit. ``interruption`` is a date,
    a year or an academic year ("2019/20"); the first post-interruption period is the one
    containing it. ``family`` is "gaussian" (rates, scores) or "poisson" (counts, with
    ``exposure=`` a column of pupils on roll as the offset). ``inference`` is "auto" (the
    default, "ar1": chosen by simulation), "ar1", "cluster" or "itsa" (Linden's published
    formulas); see the module docstring. ``lags`` is the Newey-West lag of "itsa" (None
    for no autocorrelation allowance). ``seasonality="term"`` adds term-of-year
    indicators (autumn the reference; the term holding most of a month for monthly data),
    an integer ``K`` adds ``K`` Fourier pairs of period ``period`` (default 12 monthly, 3
    termly), as :func:`evaluation.its.fit`; both are common to the two arms (covariates in
    ``itsa``), so the counterfactuals keep them. ``unit_effects`` adds an intercept per
    unit (see the module docstring; not part of ``itsa``); None: on, except with
    ``inference="itsa"``. ``unit_label`` names a unit (singular, plural) in the headline;
    ``outcome_label``, ``intervention_label``, ``comparison_label`` and ``exposure_label``
    word the sentences;
    ``direction`` says which way is better; ``disclosure`` is a report's disclosure control.
    """
    check_direction(direction)
    _check_options(family, lags, confidence, frequency, exposure, seasonality, period)
    if inference not in INFERENCES:
        raise DataError(f"inference={inference!r} is not one of {', '.join(INFERENCES)}.")
    needed = [unit, time, outcome] + ([exposure] if exposure else [])
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise DataError(
            f"Column(s) {', '.join(repr(c) for c in missing)} not found in the data "
            f"(columns are: {', '.join(map(str, data.columns))}). Check the column names."
        )
    index = data.index
    units = data[unit]
    if units.isna().any():
        raise DataError(f"Column '{unit}': {describe_rows(_rows(index[units.isna()]))} have no "
                        "unit. Give every row its unit (school or area).")
    wanted = _as_list(treated)
    present = set(units.unique().tolist())
    absent = [v for v in wanted if v not in present]
    if absent:
        raise DataError(
            f"Column '{unit}': {len(absent)} of the {len(wanted)} programme unit(s) given in "
            "treated= are not in the data. Give the programme units exactly as the unit "
            "column spells them."
        )
    z = units.isin(wanted).to_numpy().astype(np.int64)
    if z.all():
        raise DataError(
            f"Column '{unit}': every unit is a programme unit, so there is no comparison. "
            "Add the comparison units' rows, or use evaluation.its.fit for one series."
        )

    dates = as_dates(data[time], time)
    if frequency is None:
        periods = Periods.infer(dates)
    elif frequency == "yearly":
        periods = Periods("yearly", pd.Timestamp(dates.min()).month)
    else:
        periods = Periods(frequency)
    codes = periods.codes(dates)
    y = _numeric(data[outcome])
    expo = _numeric(data[exposure]) if exposure else None
    _check_values(index, y, expo, outcome, exposure, family)

    unit_id = pd.factorize(units)[0]
    order = np.lexsort((codes, unit_id))
    key = pd.DataFrame({"u": unit_id, "c": codes})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataError(
            f"Column '{time}': {describe_rows(_rows(index[dup]))} repeat a period within a "
            f"unit ({periods.frequency} data). Keep one row per unit and period (sum or drop "
            "the duplicates)."
        )
    period_codes = np.unique(codes)
    per_unit = np.bincount(unit_id)
    short = per_unit < len(period_codes)
    if short.any():
        lacking = np.flatnonzero(short)
        first_bad = lacking[0]
        have = set(codes[unit_id == first_bad].tolist())
        gap = next(c for c in period_codes if c not in have)
        row = _rows(index[np.flatnonzero(unit_id == first_bad)[:1]])[0]
        raise DataError(
            f"Column '{time}': {len(lacking)} of {len(per_unit)} units do not have all "
            f"{len(period_codes)} periods (for example the unit in row {row} has no "
            f"{periods.label(int(gap))}). Give every unit the same periods: drop the "
            "incomplete units or the periods some units lack."
        )

    int_date = _interruption_date(interruption, periods)
    int_code = periods.code(int_date)
    lo_code, hi_code = int(period_codes[0]), int(period_codes[-1])
    if int_code <= lo_code or int_code > hi_code:
        raise DataError(
            f"The interruption {int_date.date()} ({periods.label(int_code)}) is outside the "
            f"data, which run from {periods.label(lo_code)} to {periods.label(hi_code)}; it "
            "needs periods before and after it. Check the interruption and the time column."
        )
    n_pre = int((period_codes < int_code).sum())
    n_post = len(period_codes) - n_pre
    for n_side, side in ((n_pre, "before"), (n_post, "from")):
        if n_side < MIN_POINTS:
            raise DataError(
                f"Column '{time}': only {n_side} period(s) {side} the interruption in "
                f"{periods.label(int_code)}; segmented regression needs at least "
                f"{MIN_POINTS} on each side (Wagner et al. 2002). Add periods or move the "
                "interruption."
            )
        if n_side < POWER_POINTS:
            warnings.warn(
                f"Column '{time}': only {n_side} periods {side} the interruption. With "
                f"fewer than {POWER_POINTS} points on a side the estimates are imprecise "
                "(Wagner et al. 2002 suggest 12 or more).", ITSPowerWarning, stacklevel=2)
    steps = np.diff(period_codes)
    gaps = [c for a, d in zip(period_codes[:-1], steps, strict=True) if d > 1
            for c in range(int(a) + 1, int(a + d))]
    missing_labels = periods.labels(np.array(gaps, dtype=np.int64))
    if gaps:
        warnings.warn(
            f"Column '{time}': {len(gaps)} period(s) are missing from every unit "
            f"({', '.join(missing_labels[:5])}{' ...' if len(gaps) > 5 else ''}); the fit "
            "uses the periods that exist and the Newey-West lags are counted in periods.",
            ITSMissingPeriodsWarning, stacklevel=2)

    n_treated = int(len(np.unique(unit_id[z == 1])))
    n_comparison = int(len(per_unit)) - n_treated
    method = resolve_inference(inference)
    if unit_effects is None:
        unit_effects = method != "itsa"
    codes, z, y, unit_id = codes[order], z[order], y[order], unit_id[order]
    offset = np.log(expo[order]) if (expo is not None) else np.zeros(len(y))
    X = _design(codes, z, lo_code, int_code)
    seasonal, seasonal_names = _seasonal(codes, lo_code, periods, seasonality, period)
    X = np.column_stack([X, seasonal]) if seasonal_names else X
    effects, effect_names = _unit_effects(unit_id, z) if unit_effects else (None, [])
    unit_cols = list(range(X.shape[1], X.shape[1] + len(effect_names)))
    X = np.column_stack([X, effects]) if effect_names else X
    if family == "poisson":
        _check_events(y, z, codes >= int_code, outcome)
    model, params, V, df_resid, info = _fit(family, y, X, offset, lags, unit_id, codes, method)
    crit = float(special.stdtrit(df_resid, 1 - (1 - confidence) / 2))
    panel = _Panel(X=X, y=y, offset=offset, z=z, codes=codes, period_codes=period_codes,
                   int_code=int_code, periods=periods, params=params, V=V,
                   df_resid=df_resid, crit=crit,
                   names=list(TERMS) + seasonal_names + effect_names, unit_cols=unit_cols,
                   info=info)
    what = outcome_label or outcome.replace("_", " ")
    labels = {
        "what": what, "when": periods.label(int_code), "first": periods.label(lo_code),
        "who": (intervention_label if n_treated == 1
                else f"{intervention_label} ({n_treated} {unit_label[1]})"),
        "whose": (f"{intervention_label}'s" if n_treated == 1
                  else f"{intervention_label} {unit_label[1]}'"),
        "arm": (intervention_label if n_treated == 1
                else f"{intervention_label} {unit_label[1]}"),
        "comparison": comparison_label, "per": exposure_label, "missing": missing_labels,
        "unit": unit_label,
    }
    return ControlledITSResult(
        family=family, outcome=outcome, frequency=periods.frequency,
        interruption=periods.start(int_code), confidence=confidence, lags=lags,
        inference=method, n_treated=n_treated, n_comparison=n_comparison,
        n_periods=len(period_codes), model=model, panel=panel, labels=labels,
        exposure=expo is not None, direction=direction, disclosure=disclosure,
    )


def resolve_inference(inference: str) -> str:
    """The inference ``"auto"`` stands for: ``"ar1"``, whatever the numbers of programme and
    comparison units (chosen by the coverage simulation, see the module docstring,
    "Inference")."""
    return "ar1" if inference == "auto" else inference


def _design(codes: np.ndarray, z: np.ndarray, lo_code: int, int_code: int) -> np.ndarray:
    """The columns of :data:`TERMS`: _cons, _t, _z, _z_t, _x, _x_t, _z_x, _z_x_t."""
    t = (codes - lo_code).astype(float)
    zf = z.astype(float)
    x = (codes >= int_code).astype(float)
    xt = (codes - int_code) * x
    return np.column_stack([np.ones_like(t), t, zf, zf * t, x, xt, zf * x, zf * xt])


def _unit_effects(unit_id: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Effect-coded unit intercepts within each arm: for every unit but the arm's last,
    1 on its rows and -1 on the last unit's rows, so the effects sum to zero within an arm
    and ``_cons`` and ``_z`` keep their meaning as the arms' averages."""
    cols, names = [], []
    for flag in (1, 0):
        arm_units = np.unique(unit_id[z == flag])
        last = arm_units[-1]
        for g in arm_units[:-1]:
            cols.append((unit_id == g).astype(float) - (unit_id == last).astype(float))
            names.append(f"_unit{len(names) + 1}")
    return (np.column_stack(cols) if cols else np.empty((len(unit_id), 0))), names


def _seasonal(codes: np.ndarray, lo_code: int, periods: Periods, seasonality: Any,
              period: int | None) -> tuple[np.ndarray, list[str]]:
    """Term-of-year indicators ("term") or ``K`` Fourier pairs, as evaluation.its.fit."""
    cols: list[np.ndarray] = []
    names: list[str] = []
    if seasonality is None:
        return np.empty((len(codes), 0)), names
    if seasonality == "term":
        if periods.frequency == "yearly":
            raise DataError("seasonality='term' needs termly or monthly data, not yearly.")
        term = periods.term_numbers(codes)
        for k, nm in ((1, "spring"), (2, "summer")):
            col = (term == k).astype(float)
            if col.any() and not col.all():
                cols.append(col)
                names.append(f"term_{nm}")
    else:
        length = period or {"monthly": 12, "termly": 3}.get(periods.frequency)
        if length is None:
            raise DataError("Fourier seasonality with yearly data needs period= (periods in a "
                            "cycle); yearly data usually need no seasonality.")
        if seasonality > length / 2:
            raise DataError(f"seasonality={seasonality} Fourier pairs is more than period/2 = "
                            f"{length / 2}; use fewer pairs.")
        t = (codes - lo_code).astype(float)
        for k in range(1, int(seasonality) + 1):
            if 2 * k != length:  # sin(pi t) is identically zero
                cols.append(np.sin(2 * np.pi * k * t / length))
                names.append(f"sin{k}")
            cols.append(np.cos(2 * np.pi * k * t / length))
            names.append(f"cos{k}")
    return (np.column_stack(cols) if cols else np.empty((len(codes), 0))), names


def _fit(family: str, y: np.ndarray, X: np.ndarray, offset: np.ndarray, lags: int | None,
         unit_id: np.ndarray, codes: np.ndarray, inference: str = "itsa"):
    """The model, its coefficients, their covariance and the t degrees of freedom (see the
    module docstring, "Inference")."""
    model, b, mu, w = _estimate(family, y, X, offset)
    V, df, info = _covariance(inference, family, y, X, mu, w, lags, unit_id, codes)
    return model, b, V, df, info


def _estimate(family: str, y: np.ndarray, X: np.ndarray, offset: np.ndarray):
    """OLS or the Poisson GLM: model, coefficients, fitted means and working weights."""
    if family == "gaussian":
        model = sm.OLS(y, X).fit()
        b = np.asarray(model.params)
        return model, b, X @ b, np.ones(len(y))
    glm = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset)
    model = glm.fit()
    if not model.converged:
        raise DataError(
            "The Poisson model did not converge for these counts; check for units or "
            "periods with no events, or use a larger unit or a longer period."
        )
    b = np.asarray(model.params)
    mu = np.exp(X @ b + offset)
    return model, b, mu, mu


def _covariance(inference: str, family: str, y: np.ndarray, X: np.ndarray, mu: np.ndarray,
                w: np.ndarray, lags: int | None, unit_id: np.ndarray, codes: np.ndarray
                ) -> tuple[np.ndarray, int, dict]:
    """Covariance of the coefficients, its t degrees of freedom and what a report says
    about it (``rho`` for "ar1"), by ``inference``: "itsa" (Stata's ``newey`` within
    unit, or ``regress`` / quasi-Poisson with ``lags`` None; df ``n - k``), "cluster"
    (cluster-robust by unit; df ``G - 1``), "ar1" (:func:`_ar1_panel_covariance`)."""
    n, k = X.shape
    bread = np.linalg.inv(X.T @ (X * w[:, None]))
    resid = y - mu
    if inference == "ar1":
        return _ar1_panel_covariance(X, resid, w, bread, codes)
    if inference == "cluster":
        scores = X * resid[:, None]
        groups = pd.factorize(unit_id)[0]
        n_groups = int(groups.max()) + 1
        sums = np.zeros((n_groups, k))
        np.add.at(sums, groups, scores)
        # Stata's small-sample factor for regress/glm, vce(cluster): G/(G-1) (n-1)/(n-k)
        factor = n_groups / (n_groups - 1) * (n - 1) / (n - k)
        return factor * bread @ (sums.T @ sums) @ bread, n_groups - 1, {}
    if lags is None:
        scale = float(np.sum(resid**2 / w) / (n - k))  # residual variance / dispersion
        return bread * scale, n - k, {}
    scores = X * resid[:, None]
    meat = _newey_west_meat(scores, unit_id, codes, lags)
    return n / (n - k) * bread @ meat @ bread, n - k, {}


def _ar1_panel_covariance(X: np.ndarray, resid: np.ndarray, w: np.ndarray, bread: np.ndarray,
                          codes: np.ndarray) -> tuple[np.ndarray, int, dict]:
    """Covariance when each unit's errors follow an AR(1) process with a common lag-1
    autocorrelation and the unit's own dispersion (independent between units), and the
    t degrees of freedom, extending :func:`evaluation.its._ar1_covariance` to a panel.

    * ``rho``: the lag-1 autocorrelation of the Pearson residuals within units is matched
      to its expectation under the design, ``tr(M A M R) / (2 tr(M R))`` (``M = I - H``,
      ``A`` the lag-1 adjacency, ``R = rho^|s - t|``; the small-sample bias correction
      of the single-series version), solved in ``[0, AR1_MAX_RHO]`` and raised by
      ``AR1_RHO_MARGIN`` standard errors ``sqrt((1 - rho^2) / pairs)``, as there, with the
      units weighted by their share of the variance of the difference in level change and
      ``pairs = G_eff (T - 1) - k G_eff / G`` the lag-1 pairs of the ``G_eff = 1 / sum
      weight^2`` units that carry the estimate (rather than the panel's ``n - k``).
    * ``phi_u``: each unit's Pearson residual variance, ``r_u'r_u / E_u`` with ``E_u =
      tr((M R M)_uu) = T - 2 tr(B Xw_u' R Xw_u) + tr(B Xw'RXw B Xw_u'Xw_u)``; a unit's own
      dispersion because schools of different sizes are differently overdispersed
      relative to Poisson (with one dispersion for all, the big schools that carry the
      estimate were given the small schools' variance: intervals covered 0.80 to 0.88 in
      ``benchmarks/its_coverage.py --controlled``).
    * ``V = B (sum_u phi_u Xw_u' R Xw_u) B`` with ``Xw = sqrt(w) X`` and ``B`` the bread.
    * degrees of freedom: Satterthwaite's, ``2 v^2 / Var(v)``, for the estimated variance
      ``v = sum_u s_u`` of the differences in level and in slope change (the smaller df is
      used for every interval), where ``s_u = phi_u a' Xw_u' R Xw_u a`` is unit ``u``'s
      share (``a = B c``). ``Var(v) = sum_u 2 s_u^2 / nu_u + (dv/drho)^2 Var(rho)`` by the
      delta method: each ``phi_u`` on ``nu_u = (T - tr H_uu) (1 - rho^2) / (1 + rho^2)``
      df, its residual df reduced for the autocorrelation (the variance of an AR(1)
      series' sample variance is ``(1 + rho^2) / (1 - rho^2)`` times the independent
      one), and ``rho`` with Bartlett's ``Var(rho) = (1 - rho^2) / pairs``, as in its
      margin, ``dv/drho`` taking in both ``R`` and the ``phi_u`` re-estimated with it
      (:func:`evaluation.its._ar1_df` has the ``R`` part only). Without the ``rho`` term
      (the kit's earlier df) the df were far above the spread of ``v`` across simulated
      replicates (``2 mean(v)^2 / var(v)``: 10 to 20) wherever several units carry the
      estimate: 48 with 3 programme schools against 20 and 95 at the demo's 21 against
      12 (median over replicates), where at a latent autocorrelation of 0.4 null effects
      were called a change in 5.7% and 5.2% of 2,000 replicates; with it, 22 and 43 df,
      and 4.75% and 4.8% (on 5,000 other replicates: 4.5% and 5.0% before, 4.1% and 4.7%
      after). With one programme unit, its own residuals carry the differences, so the df
      are fewer than those of its series (about 5 to 8 for 21 terms), not ``n - k``.

    Rows are in (unit, period) order on a balanced panel, so ``R`` and ``A`` are block
    diagonal with one ``T x T`` block per unit and every trace reduces to ``k x k``
    products (the ``n x n`` matrices of the single-series version would cost ``n^3``).
    Written by hand: statsmodels has no AR(1) covariance for a GLM's estimates on a panel
    (``GEE`` with an autoregressive working correlation refits the estimates, so they are
    no longer Linden's, and its robust covariance is the cluster-robust one)."""
    n, k = X.shape
    sqrt_w = np.sqrt(w)
    r = resid / sqrt_w
    Xw = X * sqrt_w[:, None]
    T = len(np.unique(codes))
    G = n // T
    c = codes[:T].astype(float)
    dist = np.abs(c[:, None] - c[None, :])
    A = (dist == 1).astype(float)
    Xb, rb = Xw.reshape(G, T, k), r.reshape(G, T)
    Xbt = Xb.transpose(0, 2, 1)
    own = Xbt @ Xb  # (G, k, k): Xw_u' Xw_u
    own_a = Xbt @ np.matmul(A, Xb)  # Xw_u' A Xw_u
    lag1 = np.einsum("gt,ts,gs->g", rb, A, rb) / 2  # sum of r_t r_t+1 within each unit
    sq = np.einsum("gt,gt->g", rb, rb)

    def expectations(rho: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per unit: E[r_u'r_u] / phi, E[lag-1 sum] / phi, and Xw_u' R Xw_u."""
        R = rho**dist
        per = Xbt @ np.matmul(R, Xb)
        total = per.sum(axis=0)
        e_sq = (T - 2 * np.einsum("ij,gji->g", bread, per)
                + np.einsum("ij,gji->g", bread @ total @ bread, own))
        per_ar = Xbt @ np.matmul(A @ R, Xb)
        e_lag = (float(np.trace(A @ R)) - 2 * np.einsum("ij,gji->g", bread, per_ar)
                 + np.einsum("ij,gji->g", bread @ total @ bread, own_a)) / 2
        return np.maximum(e_sq, 1e-8), e_lag, per

    # Units weighted by their share of the variance of the difference in level change, so
    # that rho describes the units that carry the estimate (small schools' counts are
    # nearly Poisson and barely autocorrelated, large schools' are not).
    e_sq0, _, per0 = expectations(0.0)
    a6 = bread[:, 6]
    weight = sq / e_sq0 * np.einsum("i,gij,j->g", a6, per0, a6)
    weight = weight / weight.sum() if weight.sum() > 0 else np.full(G, 1 / G)

    def excess(rho: float) -> float:
        e_sq, e_lag, _ = expectations(rho)
        return float(weight @ (e_lag / e_sq - lag1 / np.maximum(sq, 1e-300)))

    if excess(0.0) >= 0:
        rho = 0.0
    elif excess(AR1_MAX_RHO) <= 0:
        rho = AR1_MAX_RHO
    else:
        rho = float(optimize.brentq(excess, 0.0, AR1_MAX_RHO, xtol=1e-6))
    # the margin on the pairs of the units that carry the estimate (effective number)
    units_eff = 1.0 / float(np.sum(weight**2))
    pairs = max(units_eff * (T - 1) - k * units_eff / G, 2.0)
    rho = float(min(AR1_MAX_RHO, rho + AR1_RHO_MARGIN * np.sqrt((1 - rho**2) / pairs)))
    expected, _, per_unit = expectations(rho)  # per_unit: Xw_u' R Xw_u, (G, k, k)
    lev = np.einsum("ij,gji->g", bread, own)  # tr(H_uu)
    phi = sq / expected
    V = bread @ np.einsum("g,gij->ij", phi, per_unit) @ bread
    nu = np.maximum(T - lev, 1.0) * (1 - rho**2) / (1 + rho**2)
    # The variance of a contrast also moves with the estimated rho, directly (R) and through
    # every phi_u (re-estimated with it); its slope by a central difference, because rho
    # enters E_u through the hat matrix and an analytic derivative would repeat all of it.
    var_rho = (1 - rho**2) / pairs  # Bartlett's, on the effective pairs of the margin
    low, high = max(rho - 1e-4, 0.0), min(rho + 1e-4, AR1_MAX_RHO)
    (e_low, _, per_low), (e_high, _, per_high) = expectations(low), expectations(high)
    dfs = []
    for j in (6, 7):  # the differences in level and in slope change (TERMS)
        a = bread[:, j]
        share = phi * np.einsum("i,gij,j->g", a, per_unit, a)
        slope = float((sq / e_high) @ np.einsum("i,gij,j->g", a, per_high, a)
                      - (sq / e_low) @ np.einsum("i,gij,j->g", a, per_low, a)) / (high - low)
        var_share = 2 * np.sum(share**2 / nu) + slope**2 * var_rho
        dfs.append(float(2 * share.sum() ** 2 / var_share))
    df = int(np.clip(np.floor(min(dfs)), 1, n - k))
    return V, df, {"rho": rho}


def _newey_west_meat(scores: np.ndarray, unit_id: np.ndarray, codes: np.ndarray,
                     lags: int) -> np.ndarray:
    """``S = sum_i u_i u_i' + sum_l w_l sum (u_i u_j' + u_j u_i')``, ``w_l = 1 - l/(L+1)``,
    over pairs of rows of the same unit whose periods differ by ``l`` (Bartlett kernel,
    Newey & West 1987). Rows are sorted by unit, then period."""
    meat = scores.T @ scores
    if lags == 0:
        return meat
    frame = pd.DataFrame({"u": unit_id, "c": codes, "i": np.arange(len(codes))})
    lookup = frame.set_index(["u", "c"])["i"]
    for lag in range(1, lags + 1):
        target = pd.MultiIndex.from_arrays([unit_id, codes + lag])
        j = lookup.reindex(target).to_numpy()
        has = ~np.isnan(j)
        i_rows = np.flatnonzero(has)
        j_rows = j[has].astype(np.int64)
        gamma = scores[i_rows].T @ scores[j_rows]
        meat += (1 - lag / (lags + 1)) * (gamma + gamma.T)
    return meat


# ----------------------------------------------------------------------------- checks


def _check_options(family, lags, confidence, frequency, exposure, seasonality,
                   period) -> None:
    if family not in FAMILIES:
        raise DataError(f"family={family!r} is not one of {', '.join(FAMILIES)}.")
    if lags is not None and (not isinstance(lags, (int, np.integer)) or isinstance(lags, bool)
                             or lags < 0):
        raise DataError(f"lags={lags!r} must be None or a whole number of periods (e.g. 1).")
    if not 0 < confidence < 1:
        raise DataError(f"confidence={confidence!r} must be between 0 and 1, e.g. 0.95.")
    if frequency is not None and frequency not in FREQUENCIES:
        raise DataError(f"frequency={frequency!r} is not one of {', '.join(FREQUENCIES)}.")
    if seasonality is not None and seasonality != "term" and not (
            isinstance(seasonality, (int, np.integer)) and not isinstance(seasonality, bool)
            and seasonality >= 1):
        raise DataError(f"seasonality={seasonality!r}: use None, 'term' or a whole number of "
                        "Fourier pairs.")
    if period is not None and (not isinstance(period, (int, np.integer)) or period < 2):
        raise DataError(f"period={period!r} must be a whole number of periods, at least 2.")
    if exposure is not None and family == "gaussian":
        raise DataError("exposure= is for counts (family='poisson'); for a rate give the rate "
                        "itself as the outcome with family='gaussian'.")


def _check_values(index, y, expo, outcome, exposure, family) -> None:
    bad = np.isnan(y)
    if bad.any():
        raise DataError(
            f"Column '{outcome}': {describe_rows(_rows(index[bad]))} have no value (suppressed "
            "or empty cells). A controlled ITS needs every unit in every period: fill them "
            "from another source or drop those units."
        )
    if family == "poisson" and (y < 0).any():
        raise DataError(
            f"Column '{outcome}': {describe_rows(_rows(index[y < 0]))} are negative. Counts "
            "must be 0 or more; for rates use family='gaussian'."
        )
    if expo is not None:
        bad = np.isnan(expo) | (expo <= 0)
        if bad.any():
            raise DataError(
                f"Column '{exposure}': {describe_rows(_rows(index[bad]))} have a missing, zero "
                "or negative population. Give the pupil roll (> 0) for every unit and period."
            )


def _check_events(y: np.ndarray, z: np.ndarray, post: np.ndarray, outcome: str) -> None:
    """With no events in an arm before or after the interruption the Poisson estimate of
    that segment does not exist (its log rate runs to minus infinity)."""
    for flag, arm in ((1, "programme"), (0, "comparison")):
        for after, side in ((False, "before"), (True, "after")):
            if not y[(z == flag) & (post == after)].any():
                raise DataError(
                    f"Column '{outcome}': the {arm} units have no events {side} the "
                    "interruption, so no rate can be estimated there. Use larger units, "
                    "longer periods or more units."
                )


# ----------------------------------------------------------------------------- helpers


def _as_list(treated: Any) -> list:
    if isinstance(treated, (str, bytes)) or not isinstance(treated, Iterable):
        return [treated]
    values = list(dict.fromkeys(treated))
    if not values:
        raise DataError("treated= is empty: give the programme's unit identifier(s).")
    return values


def _interruption_date(value: Any, periods: Periods) -> pd.Timestamp:
    """An interruption given as a date, Period, year or academic year ('2012/13')."""
    if isinstance(value, pd.Period):
        return value.start_time
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        month = periods.anchor if periods.frequency == "yearly" else 1
        return pd.Timestamp(int(value), month, 1)
    if isinstance(value, str):
        year = calendar.parse_academic_year([value]).iloc[0]
        if not pd.isna(year):
            return pd.Timestamp(int(year), 9, 1)  # as intake dates academic years
    try:
        return pd.Timestamp(value).tz_localize(None)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"The interruption {value!r} is not a date. Give it as 'yyyy-mm-dd', a year, or "
            "an academic year such as '2012/13'."
        ) from exc


def _identity(v: Any) -> Any:
    return v


def _scale_words(term: str, arm: str, count: bool, unit: str, exposure: bool) -> str:
    """What an estimate in :attr:`ControlledITSResult.effects` is."""
    trend = "trend" in term or "slope" in term
    if not count:
        if term == "intercept":
            return "level in the first period"
        if arm == "difference":
            return f"difference per {unit}" if trend else "difference"
        if "slope" in term:
            return f"change in trend per {unit}"
        return f"change per {unit}" if trend else "change in level"
    if term == "intercept":
        return "rate per unit of exposure" if exposure else "expected count per unit"
    if term == "baseline level difference":
        return "ratio of rates"
    if arm == "difference":
        return f"ratio of rate ratios per {unit}" if trend else "ratio of rate ratios"
    return f"rate ratio per {unit}" if trend else "rate ratio"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _num(v: float, digits: int) -> str:
    text = f"{abs(v):.{digits}f}"
    return f"−{text}" if v < 0 and float(text) != 0 else text


def _fmt(v: float, signed: bool = False) -> str:
    """A figure with a true minus sign: 3 significant digits below 10, 1 decimal below
    100, whole numbers above."""
    a = abs(v)
    text = f"{a:,.0f}" if a >= 100 else f"{a:.1f}" if a >= 10 else f"{a:.2f}"
    if float(text.replace(",", "")) == 0:
        return text
    if v < 0:
        return f"−{text}"
    return f"+{text}" if signed else text


def _signed(v: float, digits: int) -> str:
    text = f"{abs(v):.{digits}f}"
    if float(text) == 0:
        return text
    return f"{'−' if v < 0 else '+'}{text}"


def _signed_pct(ratio: float) -> str:
    return _signed((ratio - 1) * 100, 0) + "%"
