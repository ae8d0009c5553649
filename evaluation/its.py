"""Interrupted time series (ITS) analysis of exclusions and other period counts.

Segmented regression as in Wagner, Soumerai, Zhang & Ross-Degnan (2002, J Clin Pharm Ther
27:299) and Lopez Bernal, Cummins & Gasparrini (2017, Int J Epidemiol 46:348), with the
coding of Linden's ``itsa`` for Stata (Linden 2015, Stata Journal 15:480).

Model (single series, one interruption at period ``T0``)::

    g(E[y_t]) = b0 + b1*t + b2*D_t + b3*P_t + seasonality_t + log(exposure_t)

* ``t`` counts periods from the start of the series (1, 2, ...), by the calendar, so a
  missing period leaves a gap in ``t``;
* ``D_t = 1`` from the first post-interruption period ``T0`` (the period containing the
  interruption date), else 0;
* ``P_t = t - T0`` for ``t > T0``, else 0 (zero up to and including ``T0``: Linden's
  ``itsa`` coding), so ``b2`` is the jump at ``T0`` and ``b3`` the change in slope per
  period. (Lopez Bernal et al. code the slope as ``(t - T0 + 1) * D_t``; the slope
  coefficient is the same, their level coefficient equals ``b2 - b3``.)
* ``g`` is the log link for ``family="poisson"`` (GLM; quasi-Poisson by default, scale =
  Pearson chi2 / residual df, McCullagh & Nelder 1989 sec. 4.5) and
  ``"negative_binomial"`` (NB2 by maximum likelihood, statsmodels ``NegativeBinomial``);
  the identity for ``"gaussian"`` (OLS, for rates and percentages).
* For count families the effects are rate ratios ``exp(b)`` with Wald intervals
  ``exp(b +/- z * se)``, z the normal quantile (1.96 for 95%); for ``"gaussian"`` they are
  differences ``b +/- t_{df} * se`` (OLS t intervals, as ``regress``/``newey`` in Stata).
* Seasonality: ``"term"`` adds term-of-year indicators (autumn = reference); an integer
  ``K`` adds ``K`` Fourier pairs ``sin(2 pi k t / L), cos(2 pi k t / L)``, ``k = 1..K``,
  with ``L`` the period (12 monthly, 3 termly, or ``period=``), as ``tsModel::harmonic``
  in R (Lopez Bernal et al. 2017, model 3). A sine column that is identically zero
  (``2k = L``) is dropped.
* ``autocorrelation=L`` uses Newey-West (HAC, Bartlett kernel) standard errors with
  ``L`` lags (Newey & West 1987), statsmodels ``cov_type="HAC"`` (``"hac-panel"`` for a
  controlled ITS, one panel per series).
* Controlled ITS (Linden 2015): the intervention (``Z = 1``) and comparison (``Z = 0``)
  series are stacked and every term is interacted with ``Z``::

      y = b0 + b1 t + b2 Z + b3 Z t + b4 D + b5 P + b6 Z D + b7 Z P

  ``b6`` and ``b7`` are the differences in level and slope change (intervention minus
  comparison); ``b4 + b6`` and ``b5 + b7`` the intervention series' own changes.

The counterfactual is the model's prediction with the intervention terms set to zero
(``b2 = b3 = 0``; in a controlled ITS ``b6 = b7 = 0``), with a pointwise interval
``g^-1(x'b +/- z sqrt(x' V x))``. The cumulative effect is ``sum(observed) -
sum(counterfactual)`` over the post-interruption periods; its interval uses the delta
method, ``Var(sum mu_cf) = g' V g`` with ``g = sum_t mu_cf,t x_t`` (log link) or ``sum_t
x_t`` (identity), treating the observed counts as fixed.

Minimum data: at least three periods before and after each interruption (Wagner et al.
2002; Penfold & Zhang 2013, Acad Pediatr 13:S38); fewer than eight on either side gives a
warning about power (Wagner et al. 2002 recommend at least 12 for adequate power).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import special, stats

from evaluation.errors import DataError, describe_rows
from evaluation.privacy import Disclosure

__all__ = [
    "ITSResult",
    "ManyResult",
    "ITSPowerWarning",
    "ITSMissingPeriodsWarning",
    "fit",
    "fit_many",
    "dersimonian_laird",
]

FAMILIES = ("poisson", "negative_binomial", "gaussian")
IMPACTS = ("level", "slope", "level+slope")
FREQUENCIES = ("monthly", "termly", "yearly")
MIN_POINTS = 3
POWER_POINTS = 8
_TERMS = ("autumn", "spring", "summer")
_ACADEMIC = re.compile(r"^\s*(\d{4})\s*[/-]?\s*(\d{2})\s*$")
_MINIMUM_SOURCE = (
    "segmented regression needs at least three time points in each segment "
    "(Wagner et al. 2002, J Clin Pharm Ther 27:299; Penfold & Zhang 2013, Acad Pediatr 13:S38)"
)


class ITSPowerWarning(UserWarning):
    """Fewer than eight periods on one side of an interruption: estimates are imprecise."""


class ITSMissingPeriodsWarning(UserWarning):
    """The series has gaps; the fit uses the periods that exist."""


# ----------------------------------------------------------------------------- periods


def _rows(index: pd.Index) -> list:
    """Offending rows as file line numbers (header = line 1) for a default integer index."""
    if pd.api.types.is_integer_dtype(index):
        return [int(i) + 2 for i in index]
    return list(index)


def _as_dates(values: pd.Series, column: str) -> np.ndarray:
    """A time column (datetime, Period, whole years, academic-year or ISO/UK date text) as
    a ``datetime64[ns]`` array; unreadable values are a DataError naming the rows."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        # plain numpy datetimes (the common case): no accessor, no pandas conversion
        out = values.to_numpy().astype("datetime64[ns]")
    elif isinstance(dtype, pd.PeriodDtype):
        out = values.dt.to_timestamp(how="start").to_numpy(dtype="datetime64[ns]")
    elif pd.api.types.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_localize(None)
        out = values.to_numpy(dtype="datetime64[ns]")
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.to_numpy(dtype=float, na_value=np.nan)
        ok = (v % 1 == 0) & (v >= 1000) & (v <= 3000)
        if not ok.all():
            raise DataError(
                f"Column '{column}': {describe_rows(_rows(values.index[~ok]))} are not "
                "calendar years. Give the time column as dates (yyyy-mm-dd), academic "
                "years ('2012/13') or whole years."
            )
        out = (v.astype(np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[ns]")
    else:
        text = values.astype("string").str.strip()
        res = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        academic = text.str.match(_ACADEMIC.pattern).fillna(False).astype(bool)
        if academic.any():
            first = text[academic].str.extract(_ACADEMIC.pattern)[0].astype(int)
            res[academic] = pd.to_datetime(first.astype(str) + "-09-01")
        rest = ~academic & text.notna()
        if rest.any():
            iso = pd.to_datetime(text[rest], format="ISO8601", errors="coerce")
            uk = pd.to_datetime(text[rest], format="%d/%m/%Y", errors="coerce")
            res[rest] = iso.fillna(uk)
        out = res.to_numpy(dtype="datetime64[ns]")
    bad = np.isnat(out)
    if bad.any():
        raise DataError(
            f"Column '{column}': {describe_rows(_rows(values.index[bad]))} hold values that are "
            "not dates, academic years ('2012/13' or '201213') or years. Correct or remove them."
        )
    return out


def _as_date_scalar(value: Any, freq: str, anchor: int) -> pd.Timestamp:
    """An interruption given as a date, Period, year or academic year ('2012/13')."""
    if isinstance(value, pd.Period):
        return value.start_time
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return pd.Timestamp(int(value), anchor if freq == "yearly" else 1, 1)
    if isinstance(value, str):
        return _as_date_text(value)
    return _as_date_value(value)


@lru_cache(maxsize=256)
def _as_date_text(value: str) -> pd.Timestamp:
    m = _ACADEMIC.match(value)
    if m:
        return pd.Timestamp(int(m.group(1)), 9, 1)
    return _as_date_value(value)


def _as_date_value(value: Any) -> pd.Timestamp:
    try:
        return pd.Timestamp(value).tz_localize(None)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"The interruption {value!r} is not a date. Give it as 'yyyy-mm-dd', a "
            "pandas Timestamp, or an academic year such as '2012/13'."
        ) from exc


def _codes(years: np.ndarray, months: np.ndarray, freq: str, anchor: int) -> np.ndarray:
    """Integer period codes: consecutive periods differ by 1.

    Monthly: 12*year + month - 1. Termly: 3*academic_year + term, with autumn =
    August-December, spring = January-March, summer = April-July. Yearly: the year in which
    the period (starting in month ``anchor``) begins.
    """
    if freq == "monthly":
        return years * 12 + months - 1
    if freq == "termly":
        acad = np.where(months >= 8, years, years - 1)
        term = np.where(months >= 8, 0, np.where(months <= 3, 1, 2))
        return acad * 3 + term
    return np.where(months >= anchor, years, years - 1)


def _start(code: int, freq: str, anchor: int) -> pd.Timestamp:
    return _start_cached(int(code), freq, anchor)


@lru_cache(maxsize=4096)
def _start_cached(code: int, freq: str, anchor: int) -> pd.Timestamp:
    if freq == "monthly":
        return pd.Timestamp(code // 12, code % 12 + 1, 1)
    if freq == "termly":
        acad, term = divmod(code, 3)
        return pd.Timestamp(acad + (term > 0), (9, 1, 4)[term], 1)
    return pd.Timestamp(code, anchor, 1)


def _label(code: int, freq: str, anchor: int) -> str:
    return _label_cached(int(code), freq, anchor)


@lru_cache(maxsize=4096)
def _label_cached(code: int, freq: str, anchor: int) -> str:
    if freq == "monthly":
        return _start(code, freq, anchor).strftime("%B %Y")
    if freq == "termly":
        acad, term = divmod(code, 3)
        return f"{_TERMS[term]} term {acad}/{(acad + 1) % 100:02d}"
    if anchor != 1:
        return f"{code}/{(code + 1) % 100:02d}"
    return str(code)


def _infer_frequency(dates: np.ndarray, months: np.ndarray) -> tuple[str, int]:
    """Yearly if every date is in one calendar month; termly if all fall in September,
    January or April (term starts); otherwise monthly."""
    distinct = set(np.flatnonzero(np.bincount(months, minlength=13)).tolist())
    if len(distinct) == 1:
        return "yearly", int(months[np.argmin(dates)])
    if distinct <= {9, 1, 4}:
        return "termly", 9
    return "monthly", 1


# ----------------------------------------------------------------------------- result


@dataclass
class _Parts:
    """What the lazily built tables need: design, coefficients, covariance and data."""

    X: np.ndarray
    params: np.ndarray
    V: np.ndarray
    crit: float
    df_resid: float
    cf_cols: list[int]
    y: np.ndarray
    offset: np.ndarray | None
    expo: np.ndarray | None
    fit_mask: np.ndarray
    z: np.ndarray
    codes: np.ndarray
    int_codes: list[int]
    starts: list[int]
    anchor: int
    names: list[str]
    missing_labels: list[str]
    lags: int | None
    seasonality: str | int | None
    period: int | None
    phase_in: int


@dataclass
class ITSResult:
    """A fitted interrupted time series.

    Attributes: ``effects`` (term, interruption, estimate, ci_low, ci_high, p, scale, coef,
    se), ``counterfactual`` (one row per observed period of the intervention series),
    ``cumulative`` (one row), ``diagnostics`` (dict), ``model`` (statsmodels result),
    ``sentence`` (plain English), plus the settings used.
    """

    model: Any
    family: str
    outcome: str
    frequency: str
    interruptions: list[pd.Timestamp]
    confidence: float
    headline_term: str
    n: int
    controlled: bool
    effects_data: dict = field(repr=False)
    sentence_args: tuple = field(repr=False)
    # Everything but the effects is built on first access, so that fit_many over hundreds
    # of units (and a loop of refits) pays only for the numbers it reads.
    parts: _Parts = field(repr=False)

    @cached_property
    def effects(self) -> pd.DataFrame:
        """term, interruption, estimate, ci_low, ci_high, p, scale, coef (model scale), se."""
        return pd.DataFrame(self.effects_data)

    @cached_property
    def counterfactual(self) -> pd.DataFrame:
        """Per period: period, label, observed, fitted, counterfactual (+ CI), exposure,
        post, in_fit (False for phase-in periods), segment."""
        return _period_frame(self.counterfactual_data)

    @cached_property
    def control_series(self) -> pd.DataFrame | None:
        """The comparison series' periods (controlled ITS only), as ``counterfactual``."""
        return None if self.control_data is None else _period_frame(self.control_data)

    @cached_property
    def cumulative(self) -> pd.DataFrame:
        """One row: periods, observed_total, counterfactual_total, difference (observed minus
        counterfactual), ci_low, ci_high, se, relative, mean_exposure, per_100 (+ CI),
        method."""
        return pd.DataFrame(self.cumulative_data)

    @cached_property
    def sentence(self) -> str:
        """Plain-English summary for a school board."""
        return _sentence(self, *self.sentence_args)

    def sentence_without_total(self) -> str:
        """:attr:`sentence` without the cumulative difference in events, for a report that
        withholds the observed total (a difference from a shown expected count would give
        it away)."""
        return _sentence(self, *self.sentence_args, cumulative=False)

    @cached_property
    def _predictions(self) -> dict:
        """Fitted values and the counterfactual with its pointwise interval, every row
        (phase-in rows included)."""
        f = self.parts
        count = self.family != "gaussian"
        inv = np.exp if count else _identity
        b = f.params[: f.X.shape[1]]
        off = f.offset if f.offset is not None else 0.0
        Xcf = f.X.copy()
        Xcf[:, f.cf_cols] = 0.0
        eta_cf = Xcf @ b + off
        se_cf = np.sqrt(np.einsum("ij,jk,ik->i", Xcf, f.V, Xcf))
        return {
            "fitted": inv(f.X @ b + off), "counterfactual": inv(eta_cf),
            "counterfactual_ci_low": inv(eta_cf - f.crit * se_cf),
            "counterfactual_ci_high": inv(eta_cf + f.crit * se_cf), "Xcf": Xcf,
        }

    def _series_data(self, rows: np.ndarray) -> dict:
        f, pr = self.parts, self._predictions
        expo = f.expo if f.expo is not None else np.full(len(f.y), np.nan)
        return {
            "_codes": (f.codes[rows], self.frequency, f.anchor),  # period, label: on access
            "observed": f.y[rows], "fitted": pr["fitted"][rows],
            "counterfactual": pr["counterfactual"][rows],
            "counterfactual_ci_low": pr["counterfactual_ci_low"][rows],
            "counterfactual_ci_high": pr["counterfactual_ci_high"][rows],
            "exposure": expo[rows], "post": f.codes[rows] >= f.int_codes[0],
            "in_fit": f.fit_mask[rows],
            "segment": np.searchsorted(np.array(f.starts), f.codes[rows], side="right"),
        }

    @cached_property
    def counterfactual_data(self) -> dict:
        return self._series_data(self.parts.z == 1)

    @cached_property
    def control_data(self) -> dict | None:
        return self._series_data(self.parts.z != 1) if self.controlled else None

    @cached_property
    def cumulative_data(self) -> dict:
        """Cumulative effect over the intervention series' post-interruption periods (delta
        method, observed totals fixed; see the module docstring)."""
        f, pr = self.parts, self._predictions
        count = self.family != "gaussian"
        sel = (f.z == 1) & (f.codes >= f.int_codes[0])
        cf, Xcf = pr["counterfactual"][sel], pr["Xcf"][sel]
        obs_total = float(f.y[sel].sum())
        cf_total = float(cf.sum())
        grad = cf @ Xcf if count else Xcf.sum(axis=0)
        se_total = float(np.sqrt(grad @ f.V @ grad))
        diff = obs_total - cf_total
        mean_expo = float(np.mean(f.expo[sel])) if f.expo is not None else np.nan
        per100 = 100.0 / mean_expo if count and f.expo is not None else np.nan
        lo, hi = diff - f.crit * se_total, diff + f.crit * se_total
        return {
            "periods": [int(sel.sum())], "observed_total": [obs_total],
            "counterfactual_total": [cf_total], "difference": [diff],
            "ci_low": [lo], "ci_high": [hi],
            "se": [se_total], "relative": [diff / cf_total if cf_total else np.nan],
            "mean_exposure": [mean_expo], "per_100": [diff * per100],
            "per_100_ci_low": [lo * per100], "per_100_ci_high": [hi * per100],
            "method": ["delta method on the coefficient covariance; observed totals fixed"],
        }

    @cached_property
    def diagnostics(self) -> dict:
        """Model settings and checks on the intervention series' residuals (Pearson for
        count families): Durbin-Watson, the residual ACF to lag 12 and Ljung-Box."""
        f = self.parts
        count = self.family != "gaussian"
        mask, tr = f.fit_mask, f.z == 1
        yf, mu_fit = f.y[mask], self._predictions["fitted"][mask]
        resid = ((yf - mu_fit) / np.sqrt(_variance(self.family, mu_fit, f.params)) if count
                 else yf - mu_fit)
        r = resid[tr[mask]]
        n_r = len(r)
        rc = r - r.mean()
        denom = float(rc @ rc)
        nlags = int(min(12, n_r - 1))
        acf = np.array([rc[k:] @ rc[: n_r - k] / denom for k in range(1, nlags + 1)])
        lb_lags = int(min(10, max(1, n_r // 4)))
        # Ljung & Box (1978): Q = n (n + 2) sum_{k=1..h} r_k^2 / (n - k), chi-square, h df
        ks = np.arange(1, lb_lags + 1)
        lb_stat = float(n_r * (n_r + 2) * np.sum(acf[:lb_lags] ** 2 / (n_r - ks)))
        pearson = float(np.sum((yf - mu_fit) ** 2 / (mu_fit if count else 1.0)) / f.df_resid)
        first = f.int_codes[0]
        scale = float(getattr(self.model, "scale", 1.0))
        return {
            "family": ("quasi-poisson" if self.family == "poisson" and scale != 1
                       else self.family),
            "frequency": self.frequency,
            "n": int(mask.sum()),
            "n_pre": int(((f.codes < first) & tr & mask).sum()),
            "n_post": int(((f.codes >= first) & tr & mask).sum()),
            "n_phase_in_excluded": int((~mask & tr).sum()),
            "missing_periods": f.missing_labels,
            "durbin_watson": float(np.sum(np.diff(r) ** 2) / np.sum(r**2)),
            "ljung_box_lags": lb_lags,
            "ljung_box_stat": lb_stat,
            "ljung_box_p": float(special.chdtrc(lb_lags, lb_stat)),
            "acf": acf.tolist(),
            "scale": scale,
            "dispersion": pearson,
            "alpha": float(f.params[-1]) if self.family == "negative_binomial" else None,
            "hac_lags": f.lags,
            "seasonality": f.seasonality,
            "seasonal_period": f.period,
            "phase_in": f.phase_in,
            "terms": f.names,
        }

    def headline(self, direction: str = "decrease") -> dict:
        """The headline effect and a verdict.

        ``direction="decrease"`` (default) means fewer is better (exclusions);
        ``"increase"`` means more is better (attendance). Verdict: "improved" when the
        whole confidence interval lies on the better side of no change (1 for rate ratios,
        0 for differences), "worsened" when it lies on the worse side, otherwise
        "no clear change".
        """
        if direction not in ("decrease", "increase"):
            raise DataError("headline(direction=...) must be 'decrease' or 'increase'.")
        row = self.effects.loc[self.effects["term"] == self.headline_term].iloc[0]
        null = 1.0 if row["scale"] == "rate ratio" else 0.0
        lo, hi = float(row["ci_low"]), float(row["ci_high"])
        if hi < null:
            verdict = "improved" if direction == "decrease" else "worsened"
        elif lo > null:
            verdict = "worsened" if direction == "decrease" else "improved"
        else:
            verdict = "no clear change"
        post = self.counterfactual[self.counterfactual["post"]]
        return {
            "term": self.headline_term,
            "estimate": float(row["estimate"]),
            "ci_low": lo,
            "ci_high": hi,
            "unit": row["scale"],
            "n": self.n,
            "period": f"{post['label'].iloc[0]} to {post['label'].iloc[-1]}",
            "verdict": verdict,
        }

    def plot(self, ax: Any = None, title: str | None = None,
             disclosure: Disclosure | None = None) -> Any:
        """The standard ITS figure; returns the matplotlib Figure.

        Observed values as points, the fitted model as solid lines per segment, the
        counterfactual (previous trend continued) dashed with its confidence band, and a
        vertical line at each interruption. With a ``disclosure`` (a report's disclosure
        control), an observed count it would withhold is not drawn at its value: the
        period is marked in a grey band below the threshold instead, so that a board
        cannot read a small count off the chart.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 4.5))
        else:
            fig = ax.figure
        cf = self.counterfactual
        withheld = []
        if self.control_series is not None:
            cs = self.control_series
            small = _small(cs["observed"], disclosure)
            withheld.append(cs.loc[small, "period"])
            ax.scatter(cs.loc[~small, "period"], cs.loc[~small, "observed"], s=14,
                       color="0.6", label="comparison")
            ax.plot(cs["period"], cs["fitted"], color="0.6", lw=1)
        small = _small(cf["observed"], disclosure)
        withheld.append(cf.loc[small, "period"])
        ax.scatter(cf.loc[~small, "period"], cf.loc[~small, "observed"], s=16, color="C0",
                   label="observed", zorder=3)
        hidden = pd.concat(withheld)
        if disclosure is not None and len(hidden):
            band = disclosure.threshold
            ax.axhspan(0, band, color="0.88", zorder=0,
                       label=f"fewer than {band} (value withheld)")
            ax.scatter(hidden, np.full(len(hidden), band / 2), marker="|", s=60, color="0.3",
                       zorder=3)
        segment = cf["segment"]
        for k, seg in enumerate(sorted(segment.unique())):
            part = cf[(segment == seg) & cf["in_fit"]]
            ax.plot(part["period"], part["fitted"], color="C0", lw=2,
                    label="fitted" if k == 0 else None)
        post = cf[cf["post"]]
        pct = round(self.confidence * 100)
        ax.fill_between(post["period"], post["counterfactual_ci_low"],
                        post["counterfactual_ci_high"], color="C1", alpha=0.2,
                        label=f"counterfactual {pct}% CI")
        ax.plot(post["period"], post["counterfactual"], "--", color="C1", lw=2,
                label="counterfactual (previous trend)")
        for k, d in enumerate(self.interruptions):
            ax.axvline(d, color="k", ls=":", lw=1, label="interruption" if k == 0 else None)
        ax.set_xlabel("Period")
        ax.set_ylabel(self.outcome.replace("_", " "))
        ax.set_title(title or f"Interrupted time series: {self.outcome.replace('_', ' ')}")
        ax.legend(fontsize=8, frameon=False)
        return fig


# ----------------------------------------------------------------------------- fitting


def fit(
    data: pd.DataFrame,
    *,
    time: str,
    outcome: str,
    interruption: Any,
    exposure: str | None = None,
    family: str = "poisson",
    seasonality: str | int | None = None,
    period: int | None = None,
    autocorrelation: int | None = None,
    impact: str = "level+slope",
    control: str | None = None,
    group: str | None = None,
    phase_in: int | None = None,
    confidence: float = 0.95,
    overdispersion: bool = True,
    frequency: str | None = None,
    outcome_label: str | None = None,
    intervention_label: str = "the programme",
    exposure_label: str = "pupils",
) -> ITSResult | ManyResult:
    """Fit a segmented regression (see the module docstring for the model and sources).

    ``interruption`` is a date (or list of dates); the first post-interruption period is
    the one containing the date. ``phase_in=k`` drops the k periods starting at each
    interruption from the fit and codes the change from the period after them.
    ``overdispersion=False`` gives a plain Poisson fit (scale 1). ``outcome_label``,
    ``intervention_label`` and ``exposure_label`` word the ``sentence``. ``frequency`` overrides
    the inferred "monthly" / "termly" / "yearly". With ``group=`` this calls
    :func:`fit_many` and returns a :class:`ManyResult`.
    """
    if group is not None:
        return fit_many(
            data, group, time=time, outcome=outcome, interruption=interruption,
            exposure=exposure, family=family, seasonality=seasonality, period=period,
            autocorrelation=autocorrelation, impact=impact, control=control,
            phase_in=phase_in, confidence=confidence, overdispersion=overdispersion,
            frequency=frequency, outcome_label=outcome_label,
            intervention_label=intervention_label, exposure_label=exposure_label,
        )
    _check_options(family, impact, seasonality, period, autocorrelation, phase_in, confidence,
                   frequency)
    needed = [time, outcome] + [c for c in (exposure, control) if c is not None]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise DataError(
            f"Column(s) {', '.join(repr(c) for c in missing)} not found in the data "
            f"(columns are: {', '.join(map(str, data.columns))}). Check the column names."
        )
    index = data.index
    dates = _as_dates(data[time], time)
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    if frequency is None:
        frequency, anchor = _infer_frequency(dates, months)
    else:
        anchor = int(months[np.argmin(dates)]) if frequency == "yearly" else 1
    codes = _codes(years, months, frequency, anchor)
    n_rows = len(codes)
    if control is not None:
        z = _control_flag(data[control], control)
    else:
        z = np.ones(n_rows, dtype=np.int64)
    y = _numeric(data[outcome])
    expo = _numeric(data[exposure]) if exposure is not None else None
    _check_values(index, y, expo, outcome, exposure, family)

    order = np.lexsort((codes, -z))
    key = z * 10_000_000 + codes
    if (np.diff(key[order]) == 0).any():  # sorted by series then period: repeats are adjacent
        dup = pd.Series(key).duplicated(keep=False).to_numpy()
        raise DataError(
            f"Column '{time}': {describe_rows(_rows(index[dup]))} repeat a period "
            f"({frequency} data){' within a series' if control else ''}. Keep one row per "
            "period (sum or drop duplicates) or use group= for several units."
        )
    codes, z, y = codes[order], z[order], y[order]
    expo = expo[order] if expo is not None else None

    ints = interruption if isinstance(interruption, (list, tuple)) else [interruption]
    int_dates = sorted(_as_date_scalar(v, frequency, anchor) for v in ints)
    int_codes = [int(_codes(d.year, d.month, frequency, anchor)) for d in int_dates]
    treated_codes = codes[z == 1]
    lo_code, hi_code = int(codes.min()), int(codes.max())
    for d, c in zip(int_dates, int_codes, strict=True):
        if c <= lo_code or c > hi_code:
            raise DataError(
                f"Column '{time}': the interruption {d.date()} ({_label(c, frequency, anchor)}) "
                f"is outside the series, which runs from {_label(lo_code, frequency, anchor)} to "
                f"{_label(hi_code, frequency, anchor)}; it needs periods before and after it. "
                "Check the interruption date and the data's time column."
            )
    if len(set(int_codes)) < len(int_codes):
        raise DataError(
            f"Column '{time}': two interruptions fall in the same period "
            f"({', '.join(str(d.date()) for d in int_dates)}); give distinct dates."
        )

    k = phase_in or 0
    starts = [c + k for c in int_codes]  # first period of each modelled post segment
    excluded = np.zeros(n_rows, dtype=bool)
    for c in int_codes:
        excluded |= (codes >= c) & (codes < c + k)
    _check_segments(codes, z, excluded, int_codes, starts, time, frequency, anchor)

    # gaps in the intervention series
    steps = np.diff(treated_codes)
    gaps = (np.concatenate([np.arange(a + 1, a + d) for a, d in
                            zip(treated_codes[:-1][steps > 1], steps[steps > 1], strict=True)])
            if (steps > 1).any() else np.array([], dtype=np.int64))
    missing_labels = [_label(c, frequency, anchor) for c in gaps]
    if len(gaps):
        warnings.warn(
            f"Column '{time}': {len(gaps)} period(s) are missing from the series "
            f"({', '.join(missing_labels[:5])}{' ...' if len(gaps) > 5 else ''}); the fit uses "
            "the periods that exist (listed in diagnostics['missing_periods']).",
            ITSMissingPeriodsWarning,
            stacklevel=2,
        )

    t = (codes - lo_code + 1).astype(float)
    zf = z.astype(float)
    X, names, cf_cols, contrasts = _design(t, zf, codes, starts, impact, seasonality, period,
                                           frequency, control is not None, lo_code)
    offset = np.log(expo) if (expo is not None and family != "gaussian") else None
    fit_mask = ~excluded
    if family != "gaussian":
        _check_some_events(y, z, fit_mask, outcome)
    model = _fit_model(family, y[fit_mask], X[fit_mask],
                       None if offset is None else offset[fit_mask], autocorrelation,
                       overdispersion, zf[fit_mask] if control is not None else None)
    if family != "gaussian":
        _check_estimable(model, X, offset, fit_mask, codes, outcome, frequency, anchor)
    return _build_result(
        model, X, names, cf_cols, contrasts, y, offset, expo, fit_mask, zf, codes, int_codes,
        starts, family, outcome, frequency, anchor, confidence, impact,
        control is not None, missing_labels, autocorrelation, seasonality, period, k,
        outcome_label or outcome.replace("_", " "), intervention_label, exposure_label,
    )


def _numeric(values: pd.Series) -> np.ndarray:
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        # numpy ints cannot hold NaN and numpy floats already use it: a plain copy suffices
        return values.to_numpy().astype(float)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _check_options(family, impact, seasonality, period, autocorrelation, phase_in, confidence,
                   frequency) -> None:
    if family not in FAMILIES:
        raise DataError(f"family={family!r} is not one of {', '.join(FAMILIES)}.")
    if impact not in IMPACTS:
        raise DataError(f"impact={impact!r} is not one of {', '.join(IMPACTS)}.")
    if frequency is not None and frequency not in FREQUENCIES:
        raise DataError(f"frequency={frequency!r} is not one of {', '.join(FREQUENCIES)}.")
    if seasonality is not None and seasonality != "term" and not (
        isinstance(seasonality, (int, np.integer)) and seasonality >= 1
    ):
        raise DataError(
            f"seasonality={seasonality!r}: use None, 'term' or a whole number of Fourier pairs."
        )
    if period is not None and (not isinstance(period, (int, np.integer)) or period < 2):
        raise DataError(f"period={period!r} must be a whole number of periods, at least 2.")
    if autocorrelation is not None and (
        not isinstance(autocorrelation, (int, np.integer)) or autocorrelation < 0
    ):
        raise DataError(
            f"autocorrelation={autocorrelation!r} must be None or a whole number of lags."
        )
    if phase_in is not None and (not isinstance(phase_in, (int, np.integer)) or phase_in < 0):
        raise DataError(f"phase_in={phase_in!r} must be a whole number of periods.")
    if not 0 < confidence < 1:
        raise DataError(f"confidence={confidence!r} must be between 0 and 1, e.g. 0.95.")


def _control_flag(values: pd.Series, column: str) -> np.ndarray:
    """1 for the intervention series, 0 for the comparison series (``control`` truthy)."""
    if pd.api.types.is_bool_dtype(values):
        flag = values.astype(bool)
    elif pd.api.types.is_numeric_dtype(values):
        bad = ~values.isin([0, 1])
        if bad.any():
            raise DataError(
                f"Column '{column}': {describe_rows(_rows(values.index[bad]))} are not 0/1. "
                "Mark comparison rows 1 (or True) and intervention rows 0."
            )
        flag = values.astype(bool)
    else:
        text = values.astype("string").str.strip().str.lower()
        yes = text.isin(["comparison", "control", "true", "yes", "1"])
        no = text.isin(["programme", "intervention", "treated", "false", "no", "0"])
        bad = ~(yes | no).fillna(False).astype(bool)
        if bad.any():
            raise DataError(
                f"Column '{column}': {describe_rows(_rows(values.index[bad]))} are neither "
                "'comparison' nor 'programme'. Mark each row's series."
            )
        flag = yes.fillna(False).astype(bool)
    if flag.all() or not flag.any():
        raise DataError(
            f"Column '{column}' must mark both a comparison series (True/'comparison') and an "
            "intervention series; one of them has no rows."
        )
    return (~flag).astype(int).to_numpy()


def _check_values(index, y, expo, outcome, exposure, family) -> None:
    bad = np.isnan(y)
    if bad.any():
        raise DataError(
            f"Column '{outcome}': {describe_rows(_rows(index[bad]))} {_have(bad)} no value "
            "(suppressed or empty cells). Drop those rows to treat them as missing periods, "
            "or fill them from another source."
        )
    if family != "gaussian":
        neg = y < 0
        if neg.any():
            raise DataError(
                f"Column '{outcome}': {describe_rows(_rows(index[neg]))} {_have(neg, 'is', 'are')}"
                " negative. Counts must be 0 or more; for rates use family='gaussian'."
            )
    if expo is not None:
        bad = np.isnan(expo) | (expo <= 0)
        if bad.any():
            raise DataError(
                f"Column '{exposure}': {describe_rows(_rows(index[bad]))} {_have(bad)} a missing, "
                "zero or negative population. Give the pupil roll (> 0) for every period."
            )


def _check_some_events(y, z, fit_mask, outcome) -> None:
    """A count series with no events at all has no rate to model (the GLM cannot start)."""
    for flag, name in ((1, "series"), (0, "comparison series")):
        part = y[(z == flag) & fit_mask]
        if len(part) and not part.any():
            raise DataError(
                f"Column '{outcome}': every period of the {name} has 0 events, so there is no "
                "rate whose change could be estimated. Use a larger unit (e.g. combine "
                "schools) or a longer period."
            )


# A fitted mean this small in a count model means the estimates ran off to a boundary.
_BOUNDARY_MEAN = 1e-6


def _check_estimable(model, X, offset, fit_mask, codes, outcome, freq, anchor) -> None:
    """Runs of zero counts can make the maximum-likelihood estimate not exist: the fit then
    drives the expected count in those periods towards 0 (log-scale coefficients of -20 or
    less, standard errors in the thousands) and the rate ratios are meaningless. Detect it
    from the fitted means rather than report such numbers."""
    b = np.asarray(model.params)[: X.shape[1]]
    eta = X[fit_mask] @ b + (0.0 if offset is None else offset[fit_mask])
    with np.errstate(over="ignore", under="ignore"):
        mu = np.exp(eta)
    tiny = mu < _BOUNDARY_MEAN
    if tiny.any():
        labels = [_label(c, freq, anchor) for c in codes[fit_mask][tiny]]
        raise DataError(
            f"Column '{outcome}': the counts of 0 in {', '.join(labels[:5])}"
            f"{' ...' if len(labels) > 5 else ''} push the model's expected count towards 0, "
            "so the level and slope changes cannot be estimated (the maximum-likelihood "
            "estimate does not exist). Use a larger unit, a longer series or impact='level'."
        )


def _have(mask: np.ndarray, one: str = "has", many: str = "have") -> str:
    return one if int(np.sum(mask)) == 1 else many


def _check_segments(codes, z, excluded, int_codes, starts, time, freq, anchor) -> None:
    keep = (z == 1) & ~excluded
    lower = [-np.inf] + starts
    upper = int_codes + [np.inf]
    for j, (lo, hi) in enumerate(zip(lower, upper, strict=True)):
        n = int(((codes >= lo) & (codes < hi) & keep).sum())
        if n >= POWER_POINTS:
            continue
        name = ("before the first interruption" if j == 0
                else f"after the interruption in {_label(int_codes[j - 1], freq, anchor)}")
        if n < MIN_POINTS:
            raise DataError(
                f"Column '{time}': only {n} period(s) {name} (after any phase-in). "
                f"{_MINIMUM_SOURCE}; add periods, move the interruption or drop phase_in."
            )
        if n < POWER_POINTS:
            warnings.warn(
                f"Column '{time}': only {n} periods {name}. With fewer than {POWER_POINTS} "
                "points on a side the estimates are imprecise and autocorrelation cannot be "
                "checked well (Wagner et al. 2002 suggest 12 or more).",
                ITSPowerWarning,
                stacklevel=3,
            )


def _design(t, z, codes, starts, impact, seasonality, period, freq, controlled, lo_code):
    """Design matrix, column names, counterfactual-zeroed columns and named contrasts."""
    cols: list[np.ndarray] = [np.ones_like(t), t]
    names = ["const", "time"]
    if controlled:
        cols += [z, z * t]
        names += ["treated", "treated:time"]
    effect_cols: list[tuple[int, str, str]] = []  # (interruption number, kind, name)
    for j, s in enumerate(starts, start=1):
        ts = s - lo_code + 1
        suffix = "" if len(starts) == 1 else f"_{j}"
        if impact in ("level", "level+slope"):
            cols.append((t >= ts).astype(float))
            names.append(f"level{suffix}")
            effect_cols.append((j, "level", f"level{suffix}"))
        if impact in ("slope", "level+slope"):
            cols.append(np.maximum(t - ts, 0.0))
            names.append(f"slope{suffix}")
            effect_cols.append((j, "slope", f"slope{suffix}"))
    if controlled:
        for _, _, nm in list(effect_cols):
            cols.append(z * cols[names.index(nm)])
            names.append(f"treated:{nm}")
    if seasonality == "term":
        if freq == "yearly":
            raise DataError("seasonality='term' needs termly or monthly data, not yearly.")
        months = np.array([_start(c, freq, 1).month for c in codes])
        term = np.where(months >= 8, 0, np.where(months <= 3, 1, 2))
        for k, nm in ((1, "spring"), (2, "summer")):
            col = (term == k).astype(float)
            if col.any() and not col.all():
                cols.append(col)
                names.append(f"term_{nm}")
    elif seasonality is not None:
        L = period or {"monthly": 12, "termly": 3}.get(freq)
        if L is None:
            raise DataError(
                "Fourier seasonality with yearly data needs period= (the number of periods "
                "in a cycle); usually yearly data need no seasonality."
            )
        if seasonality > L / 2:
            raise DataError(
                f"seasonality={seasonality} Fourier pairs is more than period/2 = {L / 2}; "
                "use fewer pairs."
            )
        for k in range(1, int(seasonality) + 1):
            if 2 * k != L:
                cols.append(np.sin(2 * np.pi * k * t / L))
                names.append(f"sin{k}")
            cols.append(np.cos(2 * np.pi * k * t / L))
            names.append(f"cos{k}")
    X = np.column_stack(cols)
    idx = {nm: i for i, nm in enumerate(names)}
    p = len(names)

    def e(*terms: str) -> np.ndarray:
        v = np.zeros(p)
        for nm in terms:
            v[idx[nm]] = 1.0
        return v

    contrasts: list[tuple[str, int, np.ndarray]] = []
    for j, kind, nm in effect_cols:
        tail = "" if len(starts) == 1 else f" {j}"
        if controlled:
            contrasts.append((f"{kind} change{tail}", j, e(nm, f"treated:{nm}")))
            contrasts.append((f"{kind} change (comparison){tail}", j, e(nm)))
            contrasts.append((f"difference in {kind} change{tail}", j, e(f"treated:{nm}")))
        else:
            contrasts.append((f"{kind} change{tail}", j, e(nm)))
    if controlled:
        contrasts.append(("baseline level difference", 0, e("treated")))
        contrasts.append(("baseline trend difference", 0, e("treated:time")))
        cf_cols = [idx[f"treated:{nm}"] for _, _, nm in effect_cols]
    else:
        cf_cols = [idx[nm] for _, _, nm in effect_cols]
    return X, names, cf_cols, contrasts


def _fit_model(family, y, X, offset, lags, overdispersion, z):
    if lags is not None:
        if z is None:
            cov = {"cov_type": "HAC", "cov_kwds": {"maxlags": int(lags)}}
        else:
            cov = {"cov_type": "hac-panel",
                   "cov_kwds": {"groups": (1 - z).astype(int), "maxlags": int(lags)}}
    else:
        cov = {}
    if family == "gaussian":
        return sm.OLS(y, X).fit(use_t=True, **cov)
    if family == "poisson":
        scale = "X2" if overdispersion else None
        glm = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset)
        # Start IRLS from least squares on log(y + 0.5) - offset (the log-linear fit), which
        # is nearer the optimum than statsmodels' default start mu = (y + mean(y)) / 2: a
        # long series converges in about two fewer iterations, to the same estimates.
        log_rate = np.log(y + 0.5) - (0.0 if offset is None else offset)
        start = np.linalg.lstsq(X, log_rate, rcond=None)[0]
        res = glm.fit(scale=scale, start_params=start, **cov)
        if not res.converged:  # a start far from the optimum can stall: use the default
            res = glm.fit(scale=scale, **cov)
        return res
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; checked below
        res = sm.NegativeBinomial(y, X, offset=offset).fit(disp=0, maxiter=200, **cov)
    if not res.mle_retvals.get("converged", True):
        raise DataError(
            "The negative binomial model did not converge for this series; try "
            "family='poisson' (quasi-Poisson), which handles over-dispersion without a "
            "dispersion parameter."
        )
    return res


def _starts(codes: np.ndarray, freq: str, anchor: int) -> np.ndarray:
    """Vectorised :func:`_start`: period start dates as datetime64[ns]."""
    if freq == "monthly":
        months = codes - 1970 * 12
    elif freq == "termly":
        acad, term = np.divmod(codes, 3)
        months = (acad + (term > 0) - 1970) * 12 + np.array([8, 0, 3])[term]
    else:
        months = (codes - 1970) * 12 + anchor - 1
    return months.astype("datetime64[M]").astype("datetime64[ns]")


def _period_frame(data: dict) -> pd.DataFrame:
    codes, freq, anchor = data["_codes"]
    first = {"period": _starts(codes, freq, anchor),
             "label": [_label(c, freq, anchor) for c in codes]}
    return pd.DataFrame(first | {k: v for k, v in data.items() if k != "_codes"})


def _build_result(model, X, names, cf_cols, contrasts, y, offset, expo, fit_mask, z, codes,
                  int_codes, starts, family, outcome, freq, anchor, confidence,
                  impact, controlled, missing_labels, lags, seasonality, period, phase_in,
                  outcome_label, intervention_label, exposure_label) -> ITSResult:
    p = X.shape[1]
    params = np.asarray(model.params)
    b = params[:p]
    V = np.asarray(model.cov_params())[:p, :p]
    count = family != "gaussian"
    use_t = family == "gaussian"
    alpha = 1 - confidence
    df_resid = float(model.df_resid)
    crit = float(special.stdtrit(df_resid, 1 - alpha / 2) if use_t
                 else special.ndtri(1 - alpha / 2))
    labels = {j: _label(c, freq, anchor) for j, c in enumerate(int_codes, start=1)}

    C = np.array([c for _, _, c in contrasts])
    est = C @ b
    se = np.sqrt(np.einsum("ij,jk,ik->i", C, V, C))
    stat = np.abs(est / se)
    pval = 2 * (special.stdtr(df_resid, -stat) if use_t else special.ndtr(-stat))
    lo, hi = est - crit * se, est + crit * se
    inv = np.exp if count else _identity
    effects = {
        "term": [t for t, _, _ in contrasts],
        "interruption": [labels.get(j, "") for _, j, _ in contrasts],
        "estimate": inv(est), "ci_low": inv(lo), "ci_high": inv(hi), "p": pval,
        "scale": ["rate ratio" if count else "difference"] * len(est), "coef": est, "se": se,
    }
    head = ("difference in " if controlled else "") + (
        "level change" if impact in ("level", "level+slope") else "slope change")
    headline_term = next(t for t, _, _ in contrasts if t.startswith(head))
    parts = _Parts(
        X=X, params=params, V=V, crit=crit, df_resid=df_resid, cf_cols=cf_cols, y=y,
        offset=offset, expo=expo, fit_mask=fit_mask, z=z, codes=codes, int_codes=int_codes,
        starts=starts, anchor=anchor, names=names, missing_labels=missing_labels, lags=lags,
        seasonality=seasonality, period=period, phase_in=phase_in,
    )
    return ITSResult(
        model=model, family=family, outcome=outcome, frequency=freq,
        interruptions=[_start(c, freq, anchor) for c in int_codes], confidence=confidence,
        headline_term=headline_term, n=int(fit_mask.sum()), controlled=controlled,
        effects_data=effects,
        sentence_args=(labels[1], outcome_label, intervention_label,
                       exposure_label if expo is not None else None),
        parts=parts,
    )


def _small(observed: pd.Series, disclosure: Disclosure | None) -> pd.Series:
    """Which observed counts a disclosure control withholds (none without one)."""
    if disclosure is None:
        return pd.Series(False, index=observed.index)
    return observed.map(disclosure.is_small).astype(bool)


def _identity(v: np.ndarray) -> np.ndarray:
    return v


def _variance(family: str, mu: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Variance function: Poisson mu; NB2 mu + alpha mu^2."""
    if family == "negative_binomial":
        return mu + params[-1] * mu**2
    return mu


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _sentence(res: ITSResult, when: str, what: str, who: str, per: str | None, *,
              cumulative: bool = True) -> str:
    """Plain-English summary for a school board: the headline change, the other change
    (slope when the headline is the level), then (if ``cumulative``) the cumulative
    difference."""
    eff = res.effects_data
    terms = eff["term"]
    pct = round(res.confidence * 100)
    unit = {"monthly": "month", "termly": "term", "yearly": "year"}[res.frequency]
    versus = ("compared with the comparison series" if res.controlled
              else "compared with what the previous trend predicted")
    i = terms.index(res.headline_term)
    rr = eff["scale"][0] == "rate ratio"

    def describe(j: int) -> tuple[str, bool]:
        est, lo, hi = eff["estimate"][j], eff["ci_low"][j], eff["ci_high"][j]
        slope = "slope" in terms[j]
        if rr:
            change = (est - 1) * 100
            ci = f"rate ratio {est:.2f}, {pct}% CI {lo:.2f} to {hi:.2f}"
            text = (f"the trend changed by {change:+.1f}% per {unit} ({ci})" if slope else
                    f"{what} {'fell' if change < 0 else 'rose'} by {abs(change):.0f}% ({ci})")
        else:
            ci = f"{pct}% CI {_fmt(lo)} to {_fmt(hi)}"
            text = (f"the trend changed by {_fmt(est)} per {unit} ({ci})" if slope else
                    f"{what} {'fell' if est < 0 else 'rose'} by {_fmt(abs(est))} ({ci})")
        null = 1.0 if rr else 0.0
        return text, lo <= null <= hi

    text, unclear = describe(i)
    out = f"After {who} began in {when}, {text} {versus}"
    if unclear:
        out += ", an interval that includes no change"
    other = res.headline_term.replace("level", "slope")
    if other != res.headline_term and other in terms:
        t2, unclear2 = describe(terms.index(other))
        out += f"; after that {t2}{' (no clear change)' if unclear2 else ''}"
    if not rr or not cumulative:
        return out + "."
    cu = {k: v[0] for k, v in res.cumulative_data.items()}
    d, clo, chi = cu["difference"], cu["ci_low"], cu["ci_high"]
    word = "fewer" if d < 0 else "more"
    a, b = (-chi, -clo) if d < 0 else (clo, chi)
    out += (f". Over {int(cu['periods'])} {unit}s that is about {abs(d):,.0f} {word} "
            f"{what} than the previous trend predicted ({pct}% CI {a:,.0f} to {b:,.0f})")
    if per:
        out += f", {abs(cu['per_100']):.1f} per 100 {per}"
    return out + "."


# ----------------------------------------------------------------------------- many units


def dersimonian_laird(estimates: Any, variances: Any, confidence: float = 0.95) -> dict:
    """DerSimonian & Laird (1986, Control Clin Trials 7:177) random-effects pooling.

    With ``w_i = 1/v_i``: ``ybar = sum w y / sum w``, ``Q = sum w (y - ybar)^2``,
    ``C = sum w - sum w^2 / sum w``, ``tau2 = max(0, (Q - (k-1)) / C)``,
    ``w*_i = 1/(v_i + tau2)``, pooled ``= sum w* y / sum w*`` with
    ``se = 1/sqrt(sum w*)``, normal CI; ``I2 = max(0, (Q - (k-1)) / Q)`` (Higgins &
    Thompson 2002). Estimates are on the model scale (log rate ratios or differences).
    """
    yv = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    k = len(yv)
    if k == 0:
        raise DataError("No unit could be fitted, so there is nothing to pool.")
    w = 1 / v
    ybar = float(np.sum(w * yv) / np.sum(w))
    q = float(np.sum(w * (yv - ybar) ** 2))
    dfq = k - 1
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - dfq) / c) if k > 1 and c > 0 else 0.0
    ws = 1 / (v + tau2)
    est = float(np.sum(ws * yv) / np.sum(ws))
    se = float(np.sqrt(1 / np.sum(ws)))
    zc = stats.norm.ppf(1 - (1 - confidence) / 2)
    return {
        "k": k, "estimate": est, "se": se, "ci_low": est - zc * se, "ci_high": est + zc * se,
        "p": float(2 * stats.norm.sf(abs(est / se))), "tau2": tau2, "Q": q,
        "Q_p": float(stats.chi2.sf(q, dfq)) if dfq > 0 else np.nan,
        "I2": max(0.0, (q - dfq) / q) if q > 0 else 0.0,
    }


@dataclass
class ManyResult:
    """Per-unit ITS fits with a random-effects pooled estimate.

    ``effects``: unit, term, estimate, ci_low, ci_high, p, scale, coef, se, n, status
    ("ok", "warning" or "error") and message. ``pooled``: per term, the DerSimonian-Laird
    estimate (back-transformed for rate ratios) with k, tau2, Q, Q_p, I2. ``results``: the
    :class:`ITSResult` of each fitted unit.
    """

    effects: pd.DataFrame
    pooled: pd.DataFrame
    results: dict
    by: str
    confidence: float

    def forest_plot(self, term: str | None = None, ax: Any = None,
                    title: str | None = None) -> Any:
        """Forest plot of one term across units with the pooled estimate; returns the Figure."""
        import matplotlib.pyplot as plt

        ok = self.effects[self.effects["status"] != "error"]
        if ok.empty:
            raise DataError("No unit was fitted, so there is nothing to plot.")
        term = term or ok["term"].iloc[0]
        part = ok[ok["term"] == term].reset_index(drop=True)
        pooled = self.pooled[self.pooled["term"] == term].iloc[0]
        n = len(part)
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, max(3.0, 0.22 * n + 1.5)))
        else:
            fig = ax.figure
        ypos = np.arange(n, 0, -1)
        ax.errorbar(part["estimate"], ypos,
                    xerr=[part["estimate"] - part["ci_low"], part["ci_high"] - part["estimate"]],
                    fmt="s", color="C0", ms=4, lw=1)
        ax.errorbar([pooled["estimate"]], [0],
                    xerr=[[pooled["estimate"] - pooled["ci_low"]],
                          [pooled["ci_high"] - pooled["estimate"]]],
                    fmt="D", color="k", ms=7, lw=2)
        null = 1.0 if pooled["scale"] == "rate ratio" else 0.0
        ax.axvline(null, color="0.5", ls=":")
        ax.set_yticks(list(ypos) + [0])
        ax.set_yticklabels([str(u) for u in part["unit"]] + ["Pooled (random effects)"],
                           fontsize=7 if n > 30 else 9)
        if pooled["scale"] == "rate ratio":
            ax.set_xscale("log")
        ax.set_xlabel(f"{term} ({pooled['scale']})")
        ax.set_title(title or (f"{term}: I² = {pooled['I2'] * 100:.0f}%, "
                               f"tau² = {pooled['tau2']:.3g}"))
        return fig


_EFFECT_COLS = ("term", "estimate", "ci_low", "ci_high", "p", "scale", "coef", "se")


def fit_many(data: pd.DataFrame, by: str, **fit_kwargs: Any) -> ManyResult:
    """One :func:`fit` per value of ``by``; a unit that fails is reported, not fatal.

    Warnings raised while fitting a unit are recorded in its ``message`` (status
    "warning"). Pooling uses :func:`dersimonian_laird` on each term's coefficients (log
    rate ratios or differences) over the units fitted.
    """
    if by not in data.columns:
        raise DataError(f"Column '{by}' (by=) is not in the data. Check the column name.")
    fit_kwargs.pop("group", None)
    confidence = fit_kwargs.get("confidence", 0.95)
    rows: list[dict] = []
    results: dict = {}
    for unit, sub in data.groupby(by, sort=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = fit(sub, **fit_kwargs)
            except Exception as exc:  # a failing unit must not stop the others
                rows.append({"unit": unit, "term": None, "n": len(sub), "status": "error",
                             "message": f"{type(exc).__name__}: {exc}"})
                continue
        results[unit] = res
        msgs = "; ".join(dict.fromkeys(str(w.message) for w in caught))
        ed = res.effects_data
        for j in range(len(ed["term"])):
            rows.append({"unit": unit, **{c: ed[c][j] for c in _EFFECT_COLS}, "n": res.n,
                         "status": "warning" if msgs else "ok", "message": msgs})
    cols = ["unit", "term", "estimate", "ci_low", "ci_high", "p", "scale", "coef", "se", "n",
            "status", "message"]
    effects = pd.DataFrame(rows).reindex(columns=cols)
    pooled_rows = []
    fitted = effects[effects["status"] != "error"]
    for term, part in fitted.groupby("term", sort=False):
        dl = dersimonian_laird(part["coef"], part["se"] ** 2, confidence)
        count = part["scale"].iloc[0] == "rate ratio"
        f = np.exp if count else (lambda v: v)
        pooled_rows.append({
            "term": term, "k": dl["k"], "estimate": float(f(dl["estimate"])),
            "ci_low": float(f(dl["ci_low"])), "ci_high": float(f(dl["ci_high"])),
            "p": dl["p"], "scale": part["scale"].iloc[0], "coef": dl["estimate"],
            "se": dl["se"], "tau2": dl["tau2"], "Q": dl["Q"], "Q_p": dl["Q_p"], "I2": dl["I2"],
        })
    pooled = pd.DataFrame(pooled_rows, columns=["term", "k", "estimate", "ci_low", "ci_high",
                                                "p", "scale", "coef", "se", "tau2", "Q", "Q_p",
                                                "I2"])
    return ManyResult(effects=effects, pooled=pooled, results=results, by=by,
                      confidence=confidence)
