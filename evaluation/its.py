"""Interrupted time series (ITS) analysis of exclusions and other period counts.

Segmented regression as in Wagner, Soumerai, Zhang & Ross-Degnan (2002, J Clin Pharm Ther
27:299) and Lopez Bernal, Cummins & Gasparrini (2017, Int J Epidemiol 46:348), with the
coding of Linden's ``itsa`` for Stata (Linden 2015, Stata Journal 15:480).

Model (single series, one interruption at period ``T0``)::

    g(E[y_t]) = b0 + b1*t + b2*D_t + b3*P_t + seasonality_t + log(exposure_t)

* ``t`` counts periods from the start of the series (1, 2, ...), by the calendar, so a
  missing period leaves a gap in ``t``; periods are months, terms (of
  :mod:`evaluation.calendar`: autumn 1 August to 31 December, spring 1 January to Easter
  Sunday, summer Easter Monday to 31 July) or years (:class:`Periods`);
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
* For count families the effects are rate ratios ``exp(b)`` with intervals ``exp(b +/-
  crit * se)``; for ``"gaussian"`` differences ``b +/- crit * se`` (see "Inference").
* Seasonality: ``"term"`` adds term-of-year indicators (autumn = reference); an integer
  ``K`` adds ``K`` Fourier pairs ``sin(2 pi k t / L), cos(2 pi k t / L)``, ``k = 1..K``,
  with ``L`` the period (12 monthly, 3 termly, or ``period=``), as ``tsModel::harmonic``
  in R (Lopez Bernal et al. 2017, model 3). A sine column that is identically zero
  (``2k = L``) is dropped.
* ``autocorrelation=L``: the number of Newey-West lags for ``inference="newey-west"``
  and ``"wald"``; the default ``"ar1"`` inference models first-order autocorrelation
  itself.
* A controlled ITS (programme units against comparison units) is
  :func:`evaluation.controlled_its.fit`, Linden's (2015) multiple-group model on a panel.

The counterfactual is the model's prediction with the intervention terms set to zero
(``b2 = b3 = 0``), with a pointwise interval
``g^-1(x'b +/- crit sqrt(x' V x))``. The cumulative effect is ``sum(observed) -
sum(counterfactual)`` over the post-interruption periods. Its estimand is the expected
number of events the change made (``sum(mu_with) - sum(mu_without)``), so its interval
allows for the randomness of the observed counts as well as of the expected total: the
delta method gives ``Var(sum mu_cf) = g' V g`` with ``g = sum_t mu_cf,t x_t`` (log link)
or ``sum_t x_t`` (identity), and the observed total adds its own (quasi-Poisson or
gaussian) variance and, under ``"ar1"``, its covariance with the expected total through
the autocorrelated errors (:meth:`ITSResult._total_variances`). The ratio of observed to
expected events uses the same variances on the log scale. (``inference="wald"`` keeps the
earlier interval, which treats the observed counts as fixed.)

Inference (``inference=``; chosen by the coverage simulation in
``benchmarks/its_coverage.py``, checked in ``tests/test_its_coverage.py``):

* ``"auto"`` (default): ``"ar1"`` for every family and length.
* ``"ar1"``: the point estimates of OLS or the (quasi-)Poisson / NB GLM, with a
  covariance that allows for first-order autocorrelation of the errors
  (:func:`_ar1_covariance`): the lag-1 autocorrelation is estimated from the residuals
  with a design-based correction of its small-sample bias, raised by
  :data:`AR1_RHO_MARGIN` standard errors (an estimate from 12 to 60 points is too
  imprecise to plug in: without the margin the 95% intervals covered 0.89 to 0.91 at a
  true autocorrelation of 0.4; margins of 0.5, 0.75 and 1 were tried and 0.75 is the
  smallest whose every cell reached 0.93), bounded to ``[0, AR1_MAX_RHO]``; the dispersion
  (quasi-Poisson or gaussian variance) is estimated with the same correlation. Intervals
  use t critical values with Satterthwaite-type degrees of freedom for each estimate
  (:func:`_ar1_df`: at most ``n - k``, fewer when the estimate's variance depends strongly
  on the autocorrelation), as REML with a Satterthwaite adjustment, which Turner et al.
  (2021, BMC Med Res Methodol 21:181) found best calibrated in short series. With 12 to 60
  points and lag-1 autocorrelation 0 to 0.4 (Poisson, dispersion-5 and gaussian series,
  400 replicates per cell, Monte Carlo SE 0.011), 95% intervals of the level change, the
  slope change, the observed/expected ratio and the cumulative effect covered 0.93 to 1.00
  of simulated truths, and a null effect was called improved or worsened in 0.7% to 4.8%
  of series; without autocorrelation the intervals are conservative (coverage 0.97 to
  0.99). Newey-West (lag 1) with Stata's correction covered only 0.70 to 0.94 in the same
  grid (300 replicates per cell) and called 7% to 28% of null effects a change.
  Below 12 points the autocorrelation cannot be estimated and the margin dominates, so
  intervals are wide; that is the honest answer for such a short series.
* ``"newey-west"``: Stata ``newey``: Newey-West (Bartlett) covariance with
  ``autocorrelation`` lags, times ``n/(n-k)``, t intervals and p-values on ``n - k`` df
  (statsmodels ``cov_type="HAC"`` with ``use_correction=True``, ``use_t=True``; for a
  count model the same sandwich on the GLM score). It undercovers in short series
  (Turner et al. 2021; the simulation above); use it to match published Stata output.
* ``"wald"``: the published figures of Lopez Bernal et al. (2017) and the kit's earlier
  output: model-based (quasi-)Poisson or NB standard errors, or statsmodels' Newey-West
  without a small-sample factor when ``autocorrelation`` is given, with z intervals for
  count models (``exp(b +/- 1.96 se)``) and OLS t intervals for ``"gaussian"``.

The headline estimate (:meth:`ITSResult.headline`, computed once here and only worded by
the report sections) is, for a count model with level and slope changes, the ratio of the
observed to the expected post-interruption total (a fall in level followed by a steeper
rise is not an improvement); otherwise the first change's rate ratio or difference.

Minimum data: at least three periods before and after each interruption (Wagner et al.
2002; Penfold & Zhang 2013, Acad Pediatr 13:S38); fewer than eight on either side gives a
warning about power (Wagner et al. 2002 recommend at least 12 for adequate power).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, special
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.stattools import durbin_watson
from statsmodels.tsa.stattools import acf as sm_acf

from evaluation import calendar
from evaluation.errors import DataError, describe_rows
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

__all__ = [
    "ITSResult",
    "ManyResult",
    "Periods",
    "ITSPowerWarning",
    "ITSMissingPeriodsWarning",
    "fit",
    "fit_many",
    "dersimonian_laird",
    "as_dates",
]

FAMILIES = ("poisson", "negative_binomial", "gaussian")
#: Inference methods (module docstring, "Inference"); "auto" is "ar1" for a single series.
INFERENCES = ("auto", "ar1", "newey-west", "wald")
#: Upper bound of the estimated lag-1 autocorrelation in the "ar1" method.
AR1_MAX_RHO = 0.9
#: The autocorrelation the "ar1" method uses is the estimate plus this many standard
#: errors (chosen by the coverage simulation, benchmarks/its_coverage.py).
AR1_RHO_MARGIN = 0.75
IMPACTS = ("level", "slope", "level+slope")
FREQUENCIES = ("monthly", "termly", "yearly")
MIN_POINTS = 3
POWER_POINTS = 8
#: The headline estimand of a count model with level and slope changes (see
#: :meth:`ITSResult.headline`).
OBSERVED_OVER_EXPECTED = "observed over expected"
RATIO_UNIT = "ratio of observed to expected events after the interruption"
#: Residual checks: a Durbin-Watson statistic outside this range or a Ljung-Box p below
#: ``LJUNG_BOX_ALPHA`` suggest autocorrelation (Durbin & Watson 1950; Ljung & Box 1978).
DURBIN_WATSON_RANGE = (1.5, 2.5)
LJUNG_BOX_ALPHA = 0.05
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


def _academic_year_dates(years: pd.Series) -> pd.Series:
    """Academic years (start years) dated by their first school day, 1 September, as intake
    and :mod:`evaluation.dfe` date them."""
    return pd.to_datetime(years.astype(str) + "-09-01")


def as_dates(values: pd.Series, column: str) -> np.ndarray:
    """A time column (datetime, Period, whole years, academic-year or ISO/UK date text) as
    a ``datetime64[ns]`` array; unreadable values are a DataError naming the rows.

    Academic years (:func:`evaluation.calendar.parse_academic_year`) become 1 September
    of their first year."""
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
        year = calendar.parse_academic_year(text)
        academic = year.notna().to_numpy()
        if academic.any():
            res[academic] = _academic_year_dates(year[academic])
        # "2009/11" is a mistyped academic year, not November 2009 (ISO dates use "-")
        rest = ~academic & text.notna().to_numpy() & ~text.str.fullmatch(
            r"\d{4}\s*/\s*\d{2}").fillna(False).to_numpy(dtype=bool)
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


def _as_date_scalar(value: Any, periods: Periods) -> pd.Timestamp:
    """An interruption given as a date, Period, year or academic year ('2012/13')."""
    if isinstance(value, pd.Period):
        return value.start_time
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return pd.Timestamp(int(value), periods.anchor if periods.frequency == "yearly" else 1, 1)
    if isinstance(value, str):
        year = calendar.parse_academic_year([value]).iloc[0]
        if not pd.isna(year):
            return _academic_year_dates(pd.Series([year])).iloc[0]
    try:
        return pd.Timestamp(value).tz_localize(None)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"The interruption {value!r} is not a date. Give it as 'yyyy-mm-dd', a "
            "pandas Timestamp, or an academic year such as '2012/13'."
        ) from exc


# Months in which a term's first day can fall: 1 August or 1 September (autumn), 1 January
# (spring), Easter Monday (23 March to 26 April) or mid-April (summer).
_TERM_START_MONTHS = {8, 9, 1, 3, 4}


@dataclass(frozen=True)
class Periods:
    """The period scale of a series: each period has an integer code and consecutive
    periods differ by 1.

    * ``monthly``: ``12 * year + month - 1``, labelled "September 2021";
    * ``termly``: :func:`evaluation.calendar.term_code` (autumn 1 August to 31 December,
      spring 1 January to Easter Sunday, summer Easter Monday to 31 July), starting on
      :func:`~evaluation.calendar.term_start` and labelled by
      :func:`~evaluation.calendar.term_label` ("2021/22 autumn");
    * ``yearly``: the year in which a year starting in month ``anchor`` begins, labelled
      "2012/13" (or "2012" when years start in January).
    """

    frequency: str
    anchor: int = 1

    @classmethod
    def infer(cls, dates: np.ndarray) -> Periods:
        """Yearly if every date is in one calendar month (years start in that month);
        termly if every date is in a month a term can start in (August or September,
        January, March or April); otherwise monthly."""
        months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
        distinct = set(np.unique(months).tolist())
        if len(distinct) == 1:
            return cls("yearly", int(months[np.argmin(dates)]))
        if distinct <= _TERM_START_MONTHS:
            return cls("termly")
        return cls("monthly")

    def codes(self, dates: np.ndarray) -> np.ndarray:
        """The period code of each date (``datetime64`` array)."""
        if self.frequency == "termly":
            return calendar.term_code(pd.Series(dates)).to_numpy(dtype=np.int64)
        years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
        months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
        if self.frequency == "monthly":
            return years * 12 + months - 1
        return np.where(months >= self.anchor, years, years - 1)

    def code(self, date: pd.Timestamp) -> int:
        """The period code of one date."""
        return int(self.codes(np.array([date], dtype="datetime64[ns]"))[0])

    def starts(self, codes: np.ndarray) -> np.ndarray:
        """The first day of each period (``datetime64[ns]``)."""
        codes = np.asarray(codes, dtype=np.int64)
        if self.frequency == "termly":
            unique, where = np.unique(codes, return_inverse=True)
            first = np.array([calendar.term_start(c) for c in unique], dtype="datetime64[ns]")
            return first[where]
        months = codes - 1970 * 12 if self.frequency == "monthly" else (
            (codes - 1970) * 12 + self.anchor - 1)
        return months.astype("datetime64[M]").astype("datetime64[ns]")

    def start(self, code: int) -> pd.Timestamp:
        """The first day of one period."""
        return pd.Timestamp(self.starts(np.array([code]))[0])

    def label(self, code: int) -> str:
        """One period in words."""
        return _period_label(int(code), self.frequency, self.anchor)

    def labels(self, codes: np.ndarray) -> list[str]:
        """Each period in words."""
        return [self.label(c) for c in codes]

    def term_numbers(self, codes: np.ndarray) -> np.ndarray:
        """The term of each period (0 autumn, 1 spring, 2 summer) for term seasonality: a
        term's own; a month's is the term of its 15th day, the term holding most of it."""
        if self.frequency == "termly":
            return np.asarray(codes) % 3
        middle = pd.Series(self.starts(codes)) + pd.Timedelta(days=14)
        return calendar.term(middle).cat.codes.to_numpy()


@lru_cache(maxsize=4096)
def _period_label(code: int, frequency: str, anchor: int) -> str:
    if frequency == "monthly":
        return pd.Timestamp(code // 12, code % 12 + 1, 1).strftime("%B %Y")
    if frequency == "termly":
        return calendar.term_label(code)
    return calendar.academic_year_label(code) if anchor != 1 else str(code)


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
    codes: np.ndarray
    int_codes: list[int]
    starts: list[int]
    periods: Periods
    names: list[str]
    missing_labels: list[str]
    lags: int | None
    seasonality: str | int | None
    period: int | None
    phase_in: int
    #: inference method (``"ar1"``, ``"newey-west"`` or ``"wald"``), the time value of
    #: every row, the estimated lag-1 autocorrelation (``"ar1"``; 0 otherwise) and
    #: dispersion, and the pieces of the linearised estimator (see :func:`_ar1_covariance`)
    inference: str = "wald"
    t: np.ndarray | None = None
    rho: float = 0.0
    dispersion: float = 1.0
    sqrt_v: np.ndarray | None = None
    sqrt_w: np.ndarray | None = None
    bread: np.ndarray | None = None


@dataclass
class ITSResult:
    """A fitted interrupted time series.

    Attributes: ``effects`` (term, interruption, estimate, ci_low, ci_high, p, scale, coef,
    se, df), ``counterfactual`` (one row per observed period of the intervention series),
    ``cumulative`` (one row), ``diagnostics`` (dict; ``inference`` and ``inference_text``
    say how the intervals were made), ``model`` (the statsmodels fit: its point
    estimates; under ``inference="ar1"`` its own covariance is the independent-errors one,
    and the kit's is in ``effects``),
    ``sentence`` (plain English), plus the settings used. :meth:`headline` is the one
    headline estimate; ``headline_term`` is the effect reported first among the changes at
    the interruption (and pooled across units by :func:`fit_many`). Follows
    :class:`evaluation.results.AnalysisResult`: ``direction`` and ``disclosure`` are given
    to :func:`fit`.
    """

    model: Any
    family: str
    outcome: str
    frequency: str
    interruptions: list[pd.Timestamp]
    confidence: float
    headline_term: str
    impact: str
    n: int
    effects_data: dict = field(repr=False)
    sentence_args: tuple = field(repr=False)
    # Everything but the effects is built on first access, so that fit_many over hundreds
    # of units (and a loop of refits) pays only for the numbers it reads.
    parts: _Parts = field(repr=False)
    direction: Direction = "lower_is_better"
    #: a report's disclosure control: a withheld observed total leaves the totals out of
    #: the sentence and the headline, and small counts off the plot
    disclosure: Disclosure | None = field(default=None, repr=False)

    @property
    def summary(self) -> pd.DataFrame:
        """The tidy table of effects (:attr:`effects`)."""
        return self.effects

    @property
    def total_withheld(self) -> bool:
        """Whether ``disclosure`` withholds the observed events after the interruption."""
        return self.disclosure is not None and bool(
            self.disclosure.is_small(self.cumulative_data["observed_total"][0]))

    @cached_property
    def effects(self) -> pd.DataFrame:
        """term, interruption, estimate, ci_low, ci_high, p, scale, coef (model scale), se,
        df (of the t interval; inf for a z interval)."""
        return pd.DataFrame(self.effects_data)

    @cached_property
    def counterfactual(self) -> pd.DataFrame:
        """Per period: period, label, observed, fitted, counterfactual (+ CI), exposure,
        post, in_fit (False for phase-in periods), segment."""
        return _period_frame(self.counterfactual_data)

    @cached_property
    def cumulative(self) -> pd.DataFrame:
        """One row: periods, observed_total, counterfactual_total, difference (observed minus
        counterfactual), ci_low, ci_high, se, relative, mean_exposure, per_100 (+ CI), df
        (of the difference's t interval), se_log_ratio, crit_log_ratio and df_log_ratio (of
        :meth:`headline`'s observed/expected ratio), method."""
        return pd.DataFrame(self.cumulative_data)

    @cached_property
    def sentence(self) -> str:
        """Plain-English summary for a school board (without the totals when
        ``disclosure`` withholds the observed total)."""
        return _sentence(self, *self.sentence_args, cumulative=not self.total_withheld)

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
            "_codes": (f.codes[rows], f.periods),  # period, label: on access
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
        return self._series_data(np.ones(len(self.parts.codes), dtype=bool))

    @cached_property
    def cumulative_data(self) -> dict:
        """Cumulative effect over the intervention series' post-interruption periods (delta
        method with the variance of the observed counts, or observed totals fixed under
        ``inference="wald"``; see the module docstring)."""
        f, pr = self.parts, self._predictions
        count = self.family != "gaussian"
        sel = f.codes >= f.int_codes[0]
        cf, Xcf = pr["counterfactual"][sel], pr["Xcf"][sel]
        obs_total = float(f.y[sel].sum())
        cf_total = float(cf.sum())
        grad = cf @ Xcf if count else Xcf.sum(axis=0)
        se_total = float(np.sqrt(grad @ f.V @ grad))
        diff = obs_total - cf_total
        # log(observed / expected): observed fixed, delta method on log(expected)
        se_log_ratio = se_total / cf_total
        method = "delta method on the coefficient covariance; observed totals fixed"
        crit = crit_ratio = f.crit
        df = df_ratio = f.df_resid if (f.inference != "wald" or not count) else np.inf
        if f.inference != "wald":
            (se_total, df), (se_log_ratio, df_ratio) = self._total_variances(
                sel, grad, cf_total)
            q = 1 - (1 - self.confidence) / 2
            crit, crit_ratio = float(special.stdtrit(df, q)), float(special.stdtrit(df_ratio, q))
            method = (f"delta method ({f.inference}) with the variance of the observed "
                      "counts")
        mean_expo = float(np.mean(f.expo[sel])) if f.expo is not None else np.nan
        per100 = 100.0 / mean_expo if count and f.expo is not None else np.nan
        lo, hi = diff - crit * se_total, diff + crit * se_total
        return {
            "periods": [int(sel.sum())], "observed_total": [obs_total],
            "counterfactual_total": [cf_total], "difference": [diff],
            "ci_low": [lo], "ci_high": [hi],
            "se": [se_total], "relative": [diff / cf_total if cf_total else np.nan],
            "mean_exposure": [mean_expo], "per_100": [diff * per100],
            "per_100_ci_low": [lo * per100], "per_100_ci_high": [hi * per100],
            "df": [df], "se_log_ratio": [se_log_ratio], "crit_log_ratio": [crit_ratio],
            "df_log_ratio": [df_ratio], "method": [method],
        }

    def _total_variances(self, sel: np.ndarray, grad: np.ndarray, cf_total: float
                         ) -> tuple[tuple[float, float], tuple[float, float]]:
        """Standard errors of ``observed - expected`` and of ``log(observed / expected)``
        over the rows ``sel``, allowing for the randomness of the observed counts.

        Linearised (see :func:`_ar1_covariance`): ``expected - E ~ c'r`` over the fitted
        rows with ``c = Xw B grad``, ``observed - E ~ sum sqrt(V(mu)) r`` over ``sel``, so
        ``observed - expected ~ a'r`` and ``Var = phi a' R a`` with the AR(1) ``R``,
        covariances between the two included. For ``"newey-west"`` the expected total's
        variance is ``grad' V grad`` (HAC) and the observed total's ``phi sum V(mu)``
        (Pearson dispersion, independent periods)."""
        f = self.parts
        mu = self._predictions["fitted"]
        o_expected = float(mu[sel].sum())  # the observed total's expectation
        if f.inference == "newey-west":
            var_o = f.dispersion * float(np.sum(f.sqrt_v[sel] ** 2))
            var_e = float(grad @ f.V @ grad)
            return ((float(np.sqrt(var_e + var_o)), f.df_resid),
                    (float(np.sqrt(var_o / o_expected**2 + var_e / cf_total**2)), f.df_resid))
        fit = f.fit_mask
        rows = fit | sel
        c = np.zeros(len(mu))
        c[fit] = (f.X[fit] * f.sqrt_w[fit, None]) @ (f.bread @ grad)
        o = np.where(sel, f.sqrt_v, 0.0)
        R = _ar1_matrix(f.t[rows], f.rho)
        out = []
        for a in ((o - c)[rows], (o / o_expected - c / cf_total)[rows]):
            out.append((float(np.sqrt(f.dispersion * a @ R @ a)),
                        _ar1_df(a, f.t[rows], f.rho, f.df_resid)))
        return out[0], out[1]

    @cached_property
    def diagnostics(self) -> dict:
        """Model settings and checks on the intervention series' residuals (Pearson for
        count families): Durbin-Watson, the residual ACF to lag 12 and Ljung-Box
        (statsmodels ``durbin_watson``, ``acf``, ``acorr_ljungbox``); ``autocorrelated``
        is True when Durbin-Watson is outside :data:`DURBIN_WATSON_RANGE` or the Ljung-Box
        p is below :data:`LJUNG_BOX_ALPHA`."""
        f = self.parts
        count = self.family != "gaussian"
        mask = f.fit_mask
        yf, mu_fit = f.y[mask], self._predictions["fitted"][mask]
        r = ((yf - mu_fit) / np.sqrt(_variance(self.family, mu_fit, f.params)) if count
             else yf - mu_fit)
        n_r = len(r)
        acf = sm_acf(r, nlags=int(min(12, n_r - 1)))[1:]
        lb_lags = int(min(10, max(1, n_r // 4)))
        ljung_box = acorr_ljungbox(r, lags=[lb_lags])
        dw = float(durbin_watson(r))
        lb_p = float(ljung_box["lb_pvalue"].iloc[0])
        pearson = float(np.sum((yf - mu_fit) ** 2 / (mu_fit if count else 1.0)) / f.df_resid)
        first = f.int_codes[0]
        scale = float(getattr(self.model, "scale", 1.0))
        return {
            "family": ("quasi-poisson" if self.family == "poisson" and scale != 1
                       else self.family),
            "frequency": self.frequency,
            "n": int(mask.sum()),
            "n_pre": int(((f.codes < first) & mask).sum()),
            "n_post": int(((f.codes >= first) & mask).sum()),
            "n_phase_in_excluded": int((~mask).sum()),
            "missing_periods": f.missing_labels,
            "durbin_watson": dw,
            "ljung_box_lags": lb_lags,
            "ljung_box_stat": float(ljung_box["lb_stat"].iloc[0]),
            "ljung_box_p": lb_p,
            "acf": acf.tolist(),
            "autocorrelated": bool(not DURBIN_WATSON_RANGE[0] <= dw <= DURBIN_WATSON_RANGE[1]
                                   or lb_p < LJUNG_BOX_ALPHA),
            "scale": scale,
            "dispersion": pearson,
            "alpha": float(f.params[-1]) if self.family == "negative_binomial" else None,
            "hac_lags": f.lags if f.inference != "ar1" else None,
            "inference": f.inference,
            "inference_text": _INFERENCE_TEXT[f.inference].format(
                lags=f.lags, df=f.df_resid, rho=f.rho,
                se="model-based" if f.lags is None else f"Newey-West (lag {f.lags})"),
            "ar1_rho": f.rho if f.inference == "ar1" else None,
            "df_resid": f.df_resid,
            "seasonality": f.seasonality,
            "seasonal_period": f.period,
            "phase_in": f.phase_in,
            "terms": f.names,
        }

    def headline(self) -> dict:
        """THE headline estimate of this fit, with its confidence interval and verdict.

        * A count model with level and slope changes (``impact="level+slope"``): the
          events observed after the interruption over the events the model expects
          without it (the ``cumulative`` totals; CI ``exp(+/- crit * se_log_ratio)``, the
          delta method on ``log(observed / expected)`` with the variance of the observed
          counts, t on ``df_log_ratio`` df; under ``inference="wald"`` the observed total
          is fixed and ``crit = z``), term
          :data:`OBSERVED_OVER_EXPECTED`, because a fall in level followed by a steeper
          rise is not an improvement and the level change alone would say it was.
        * Otherwise the ``headline_term``'s effect (a rate ratio, or a difference for
          ``"gaussian"``).

        The verdict is :func:`evaluation.results.verdict` in the fit's ``direction``. When
        the fit's ``disclosure`` withholds the observed total, the ratio would give it away,
        so estimate and interval are None, ``withheld`` is True and the verdict "no clear
        change".
        """
        count = self.family != "gaussian"
        withheld = False
        if count and self.impact == "level+slope":
            cu = {k: v[0] for k, v in self.cumulative_data.items()}
            term, unit = OBSERVED_OVER_EXPECTED, RATIO_UNIT
            withheld = self.total_withheld
            if withheld:
                est = lo = hi = None
            else:
                est = cu["observed_total"] / cu["counterfactual_total"]
                half = cu["crit_log_ratio"] * cu["se_log_ratio"]
                lo, hi = est * float(np.exp(-half)), est * float(np.exp(half))
        else:
            eff = self.effects_data
            i = eff["term"].index(self.headline_term)
            term, unit = self.headline_term, eff["scale"][i]
            est, lo, hi = (float(eff[k][i]) for k in ("estimate", "ci_low", "ci_high"))
        null = 1.0 if count else 0.0
        post = self.counterfactual[self.counterfactual["post"]]
        return {
            "term": term, "estimate": est, "ci_low": lo, "ci_high": hi, "unit": unit,
            "null": null, "n": self.n,
            "period": f"{post['label'].iloc[0]} to {post['label'].iloc[-1]}",
            "verdict": verdict(lo, hi, null=null, direction=self.direction),
            "withheld": withheld,
        }

    def headline_text(self) -> str:
        """The headline in one line, as every page prints it (e.g. 'Suspensions −22%
        against the prior trend, ratio 0.78 (0.71 to 0.87)')."""
        h = self.headline()
        what = self.sentence_args[1]
        name = what[:1].upper() + what[1:]
        est, lo, hi = h["estimate"], h["ci_low"], h["ci_high"]
        if h["withheld"]:
            return (f"{name} after the interruption: fewer than {self.disclosure.threshold}, "
                    "too few to compare with the prior trend (withheld to protect pupils' "
                    "privacy)")
        if h["term"] == OBSERVED_OVER_EXPECTED:
            return (f"{name} {_signed_pct(est)} against the prior trend, ratio {est:.2f} "
                    f"({lo:.2f} to {hi:.2f})")
        if h["term"].startswith("slope"):
            return (f"{name} trend {_signed_pct(est)} per {_UNIT_WORDS[self.frequency]}, "
                    f"RR {est:.2f} ({lo:.2f} to {hi:.2f})")
        return f"{name} {_signed_pct(est)}, RR {est:.2f} ({lo:.2f} to {hi:.2f})"

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "", design: str | None = None) -> Result:
        """The results.json record of :meth:`headline`; ``n`` and ``period`` default to the
        fit's periods and its post-interruption periods; ``design``, the design in words,
        ends the headline (e.g. "interrupted time series of 152 local authorities added
        together, against their own earlier trend (no comparison series)")."""
        text = self.headline_text() + (f"; {design}" if design else "")
        return make_record(self, outcome, analysis="its", headline=text, period=period, n=n,
                           notebook=notebook)

    def level_and_trend_disagree(self) -> bool:
        """Whether the level change and what followed point different ways (e.g. a drop in
        level followed by a clearly steeper rise, or more events in total than the earlier
        trend predicts), so that the level change alone misleads. Only for a single series
        whose first-reported effect is the level change of a count model."""
        eff = self.effects_data
        if (self.headline_term != "level change" or "slope change" not in eff["term"]
                or self.family == "gaussian"):
            return False
        level = eff["estimate"][eff["term"].index("level change")]
        j = eff["term"].index("slope change")
        slope_lo, slope_hi = eff["ci_low"][j], eff["ci_high"][j]
        cu = {k: v[0] for k, v in self.cumulative_data.items()}
        down = level < 1.0
        slope_opposite = slope_lo > 1.0 if down else slope_hi < 1.0
        total_opposite = cu["ci_low"] > 0 if down else cu["ci_high"] < 0
        return bool(slope_opposite or total_opposite)

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

        disclosure = self.disclosure if disclosure is None else disclosure
        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 4.5))
        else:
            fig = ax.figure
        cf = self.counterfactual
        small = _small(cf["observed"], disclosure)
        ax.scatter(cf.loc[~small, "period"], cf.loc[~small, "observed"], s=16, color="C0",
                   label="observed", zorder=3)
        hidden = cf.loc[small, "period"]
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
    group: str | None = None,
    phase_in: int | None = None,
    confidence: float = 0.95,
    overdispersion: bool = True,
    frequency: str | None = None,
    outcome_label: str | None = None,
    intervention_label: str = "the programme",
    exposure_label: str = "pupils",
    direction: Direction = "lower_is_better",
    disclosure: Disclosure | None = None,
    inference: str = "auto",
) -> ITSResult | ManyResult:
    """Fit a segmented regression (see the module docstring for the model and sources).

    ``interruption`` is a date (or list of dates); the first post-interruption period is
    the one containing the date. ``phase_in=k`` drops the k periods starting at each
    interruption from the fit and codes the change from the period after them.
    ``overdispersion=False`` gives a plain Poisson fit (scale 1). ``outcome_label``,
    ``intervention_label`` and ``exposure_label`` word the ``sentence``. ``frequency`` overrides
    the inferred "monthly" / "termly" / "yearly". ``direction`` says which way is better
    (for the verdict); ``disclosure`` is a report's disclosure control (see
    :class:`ITSResult`). With ``group=`` this calls :func:`fit_many` and returns a
    :class:`ManyResult`.

    ``inference`` chooses how standard errors and intervals are computed (module
    docstring, "Inference"): ``"auto"`` (default) is ``"ar1"`` for a single series:
    the errors' lag-1 autocorrelation estimated with a small-sample correction plus a
    margin of :data:`AR1_RHO_MARGIN` standard errors, the dispersion estimated (also for
    ``family="poisson"``: quasi-Poisson, unless ``overdispersion=False``), and t intervals
    with Satterthwaite-type df; by simulation its 95% intervals of the level change, slope
    change, observed/expected ratio and cumulative effect cover at least 0.92 for series
    of 12 to 60 points with autocorrelation up to 0.4. ``"newey-west"`` is Stata
    ``newey`` with ``autocorrelation`` lags (``n/(n-k)`` factor, t on ``n - k`` df);
    ``"wald"`` reproduces published z-based (count) and OLS-t (gaussian) intervals.
    ``autocorrelation`` is the number of Newey-West lags; the ``"ar1"`` inference does not
    use it. A controlled ITS (programme against comparison units) is
    :func:`evaluation.controlled_its.fit`.
    """
    check_direction(direction)
    if group is not None:
        return fit_many(
            data, group, time=time, outcome=outcome, interruption=interruption,
            exposure=exposure, family=family, seasonality=seasonality, period=period,
            autocorrelation=autocorrelation, impact=impact, phase_in=phase_in,
            confidence=confidence, overdispersion=overdispersion,
            frequency=frequency, outcome_label=outcome_label,
            intervention_label=intervention_label, exposure_label=exposure_label,
            direction=direction, disclosure=disclosure, inference=inference,
        )
    _check_options(family, impact, seasonality, period, autocorrelation, phase_in, confidence,
                   frequency)
    method = _resolve_inference(inference, autocorrelation)
    needed = [time, outcome] + [c for c in (exposure,) if c is not None]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise DataError(
            f"Column(s) {', '.join(repr(c) for c in missing)} not found in the data "
            f"(columns are: {', '.join(map(str, data.columns))}). Check the column names."
        )
    index = data.index
    dates = as_dates(data[time], time)
    if frequency is None:
        periods = Periods.infer(dates)
    elif frequency == "yearly":
        periods = Periods("yearly", pd.Timestamp(dates.min()).month)
    else:
        periods = Periods(frequency)
    frequency = periods.frequency
    codes = periods.codes(dates)
    n_rows = len(codes)
    y = _numeric(data[outcome])
    expo = _numeric(data[exposure]) if exposure is not None else None
    _check_values(index, y, expo, outcome, exposure, family)

    order = np.argsort(codes, kind="stable")
    if (np.diff(codes[order]) == 0).any():  # sorted by period: repeats are adjacent
        dup = pd.Series(codes).duplicated(keep=False).to_numpy()
        raise DataError(
            f"Column '{time}': {describe_rows(_rows(index[dup]))} repeat a period "
            f"({frequency} data). Keep one row per "
            "period (sum or drop duplicates) or use group= for several units."
            + (" Terms follow the DfE school census: autumn 1 August to 31 December, "
               "spring 1 January to Easter Sunday, summer Easter Monday to 31 July, so a "
               "summer term dated before Easter Monday counts as spring: date each term "
               "by a day inside it." if frequency == "termly" else "")
        )
    codes, y = codes[order], y[order]
    expo = expo[order] if expo is not None else None

    ints = interruption if isinstance(interruption, (list, tuple)) else [interruption]
    int_dates = sorted(_as_date_scalar(v, periods) for v in ints)
    int_codes = [periods.code(d) for d in int_dates]
    lo_code, hi_code = int(codes.min()), int(codes.max())
    for d, c in zip(int_dates, int_codes, strict=True):
        if c <= lo_code or c > hi_code:
            raise DataError(
                f"Column '{time}': the interruption {d.date()} ({periods.label(c)}) "
                f"is outside the series, which runs from {periods.label(lo_code)} to "
                f"{periods.label(hi_code)}; it needs periods before and after it. "
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
    _check_segments(codes, excluded, int_codes, starts, time, periods)

    # gaps in the series
    steps = np.diff(codes)
    gaps = (np.concatenate([np.arange(a + 1, a + d) for a, d in
                            zip(codes[:-1][steps > 1], steps[steps > 1], strict=True)])
            if (steps > 1).any() else np.array([], dtype=np.int64))
    missing_labels = periods.labels(gaps)
    if len(gaps):
        warnings.warn(
            f"Column '{time}': {len(gaps)} period(s) are missing from the series "
            f"({', '.join(missing_labels[:5])}{' ...' if len(gaps) > 5 else ''}); the fit uses "
            "the periods that exist (listed in diagnostics['missing_periods']).",
            ITSMissingPeriodsWarning,
            stacklevel=2,
        )

    t = (codes - lo_code + 1).astype(float)
    X, names, cf_cols, contrasts = _design(t, codes, starts, impact, seasonality, period,
                                           periods, lo_code)
    offset = np.log(expo) if (expo is not None and family != "gaussian") else None
    fit_mask = ~excluded
    if family != "gaussian":
        _check_some_events(y, fit_mask, outcome)
    model = _fit_model(family, y[fit_mask], X[fit_mask],
                       None if offset is None else offset[fit_mask], autocorrelation,
                       overdispersion, method)
    if family != "gaussian":
        _check_estimable(model, X, offset, fit_mask, codes, outcome, periods)
    result = _build_result(
        model, X, names, cf_cols, contrasts, y, offset, expo, fit_mask, codes, int_codes,
        starts, family, outcome, periods, confidence, impact, missing_labels, autocorrelation,
        seasonality, period, k,
        outcome_label or outcome.replace("_", " "), intervention_label, exposure_label,
        method, t, overdispersion,
    )
    result.direction, result.disclosure = direction, disclosure
    return result


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


def _check_some_events(y, fit_mask, outcome) -> None:
    """A count series with no events at all has no rate to model (the GLM cannot start)."""
    part = y[fit_mask]
    if len(part) and not part.any():
        raise DataError(
            f"Column '{outcome}': every period of the series has 0 events, so there is no "
            "rate whose change could be estimated. Use a larger unit (e.g. combine "
            "schools) or a longer period."
        )


# A fitted mean this small in a count model means the estimates ran off to a boundary.
_BOUNDARY_MEAN = 1e-6


def _check_estimable(model, X, offset, fit_mask, codes, outcome, periods) -> None:
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
        labels = periods.labels(codes[fit_mask][tiny])
        raise DataError(
            f"Column '{outcome}': the counts of 0 in {', '.join(labels[:5])}"
            f"{' ...' if len(labels) > 5 else ''} push the model's expected count towards 0, "
            "so the level and slope changes cannot be estimated (the maximum-likelihood "
            "estimate does not exist). Use a larger unit, a longer series or impact='level'."
        )


def _have(mask: np.ndarray, one: str = "has", many: str = "have") -> str:
    return one if int(np.sum(mask)) == 1 else many


def _check_segments(codes, excluded, int_codes, starts, time, periods) -> None:
    keep = ~excluded
    lower = [-np.inf] + starts
    upper = int_codes + [np.inf]
    for j, (lo, hi) in enumerate(zip(lower, upper, strict=True)):
        n = int(((codes >= lo) & (codes < hi) & keep).sum())
        if n >= POWER_POINTS:
            continue
        name = ("before the first interruption" if j == 0
                else f"after the interruption in {periods.label(int_codes[j - 1])}")
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


def _design(t, codes, starts, impact, seasonality, period, periods, lo_code):
    """Design matrix, column names, counterfactual-zeroed columns and named contrasts."""
    cols: list[np.ndarray] = [np.ones_like(t), t]
    names = ["const", "time"]
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
    if seasonality == "term":
        if periods.frequency == "yearly":
            raise DataError("seasonality='term' needs termly or monthly data, not yearly.")
        term = periods.term_numbers(codes)
        for k, nm in ((1, "spring"), (2, "summer")):
            col = (term == k).astype(float)
            if col.any() and not col.all():
                cols.append(col)
                names.append(f"term_{nm}")
    elif seasonality is not None:
        L = period or {"monthly": 12, "termly": 3}.get(periods.frequency)
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
        contrasts.append((f"{kind} change{tail}", j, e(nm)))
    cf_cols = [idx[nm] for _, _, nm in effect_cols]
    return X, names, cf_cols, contrasts


def _resolve_inference(inference: str, lags: int | None) -> str:
    """The inference method a fit uses (see the module docstring, "Inference"): ``"auto"``
    is ``"ar1"`` (chosen by the coverage simulation in ``benchmarks/its_coverage.py``)."""
    if inference not in INFERENCES:
        raise DataError(f"inference={inference!r} is not one of {', '.join(INFERENCES)}.")
    if inference == "newey-west" and lags is None:
        raise DataError(
            "inference='newey-west' needs autocorrelation= (the number of Newey-West lags, "
            "as newey's lag() in Stata), e.g. autocorrelation=1."
        )
    return "ar1" if inference == "auto" else inference


def _fit_model(family, y, X, offset, lags, overdispersion, method="wald"):
    if method == "ar1":
        lags = None  # the covariance is computed afterwards (_ar1_covariance)
    if method == "newey-west":
        # Stata newey: Bartlett HAC times n/(n-k), t with n-k df (statsmodels' switches)
        cov = {"cov_type": "HAC", "use_t": True,
               "cov_kwds": {"maxlags": int(lags), "use_correction": True}}
    elif lags is not None:
        cov = {"cov_type": "HAC", "cov_kwds": {"maxlags": int(lags)}}
    else:
        cov = {}
    if family == "gaussian":
        cov.pop("use_t", None)
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


def _period_frame(data: dict) -> pd.DataFrame:
    codes, periods = data["_codes"]
    first = {"period": periods.starts(codes), "label": periods.labels(codes)}
    return pd.DataFrame(first | {k: v for k, v in data.items() if k != "_codes"})


def _build_result(model, X, names, cf_cols, contrasts, y, offset, expo, fit_mask, codes,
                  int_codes, starts, family, outcome, periods, confidence,
                  impact, missing_labels, lags, seasonality, period, phase_in,
                  outcome_label, intervention_label, exposure_label, method="wald",
                  t=None, overdispersion=True) -> ITSResult:
    p = X.shape[1]
    params = np.asarray(model.params)
    b = params[:p]
    V = np.asarray(model.cov_params())[:p, :p]
    count = family != "gaussian"
    # t critical values wherever a scale is estimated (Stata regress/newey; the AR(1)
    # method); z only for the published Wald intervals of count models (method "wald")
    use_t = family == "gaussian" or method != "wald"
    alpha = 1 - confidence
    df_resid = float(model.df_resid)
    lin: dict = {}
    if method != "wald":
        eta = X @ b + (0.0 if offset is None else offset)
        mu = np.exp(eta) if count else eta
        sqrt_v, sqrt_w = _linearisation(family, mu, params)
        fixed = 1.0 if family == "poisson" and not overdispersion else None
        if method == "ar1":
            V, rho, disp, bread = _ar1_covariance(
                X[fit_mask], (y - mu)[fit_mask] / sqrt_v[fit_mask], sqrt_w[fit_mask],
                t[fit_mask], fixed)
        else:
            pearson = ((y - mu)[fit_mask] / sqrt_v[fit_mask]) ** 2
            rho, disp, bread = 0.0, fixed or float(pearson.sum() / df_resid), None
        lin = {"t": t, "rho": rho, "dispersion": disp, "sqrt_v": sqrt_v, "sqrt_w": sqrt_w,
               "bread": bread}
    crit = float(special.stdtrit(df_resid, 1 - alpha / 2) if use_t
                 else special.ndtri(1 - alpha / 2))
    labels = {j: periods.label(c) for j, c in enumerate(int_codes, start=1)}

    C = np.array([c for _, _, c in contrasts])
    est = C @ b
    se = np.sqrt(np.einsum("ij,jk,ik->i", C, V, C))
    stat = np.abs(est / se)
    df_c = np.full(len(est), df_resid)
    if method == "ar1":  # Satterthwaite-type df per contrast (see _ar1_df)
        Xw = X[fit_mask] * lin["sqrt_w"][fit_mask, None]
        df_c = np.array([_ar1_df(Xw @ (lin["bread"] @ c), t[fit_mask], lin["rho"],
                                 df_resid) for c in C])
    crit_c = (special.stdtrit(df_c, 1 - alpha / 2) if use_t
              else np.full(len(est), special.ndtri(1 - alpha / 2)))
    pval = 2 * (special.stdtr(df_c, -stat) if use_t else special.ndtr(-stat))
    lo, hi = est - crit_c * se, est + crit_c * se
    inv = np.exp if count else _identity
    effects = {
        "term": [t for t, _, _ in contrasts],
        "interruption": [labels.get(j, "") for _, j, _ in contrasts],
        "estimate": inv(est), "ci_low": inv(lo), "ci_high": inv(hi), "p": pval,
        "scale": ["rate ratio" if count else "difference"] * len(est), "coef": est, "se": se,
        "df": df_c if use_t else np.full(len(est), np.inf),
    }
    head = "level change" if impact in ("level", "level+slope") else "slope change"
    headline_term = next(t for t, _, _ in contrasts if t.startswith(head))
    parts = _Parts(
        X=X, params=params, V=V, crit=crit, df_resid=df_resid, cf_cols=cf_cols, y=y,
        offset=offset, expo=expo, fit_mask=fit_mask, codes=codes, int_codes=int_codes,
        starts=starts, periods=periods, names=names, missing_labels=missing_labels, lags=lags,
        seasonality=seasonality, period=period, phase_in=phase_in, inference=method, **lin,
    )
    return ITSResult(
        model=model, family=family, outcome=outcome, frequency=periods.frequency,
        interruptions=[periods.start(c) for c in int_codes], confidence=confidence,
        headline_term=headline_term, impact=impact, n=int(fit_mask.sum()), effects_data=effects,
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


def _linearisation(family: str, mu: np.ndarray, params: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``sqrt(V(mu))`` and the square root of the IRLS working weight ``(dmu/deta)^2 /
    V(mu)`` (log link: ``dmu/deta = mu``; identity: 1, 1)."""
    if family == "gaussian":
        one = np.ones_like(mu)
        return one, one
    sqrt_v = np.sqrt(_variance(family, mu, params))
    return sqrt_v, mu / sqrt_v


def _ar1_matrix(t: np.ndarray, rho: float) -> np.ndarray:
    """AR(1) correlations ``rho^|t_i - t_j|`` (calendar distance, so gaps count)."""
    return rho ** np.abs(t[:, None] - t[None, :])


def _ar1_covariance(X: np.ndarray, r: np.ndarray, sqrt_w: np.ndarray, t: np.ndarray,
                    fixed_dispersion: float | None = None
                    ) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Covariance of the (OLS or GLM) coefficients when the errors follow an AR(1) process,
    with the autocorrelation and the dispersion estimated without the small-sample bias of
    the residual autocorrelation. Returns ``(V, rho, dispersion, bread)``.

    Written by hand because statsmodels has no small-sample AR(1) covariance for a GLM's
    estimates (``GLSAR`` is gaussian only and drops the first period; its ``rho`` and the
    Newey-West sandwich are both biased towards independence in a short series, Turner et
    al. 2021). With ``Xw = sqrt(w) X``, bread ``B = (Xw'Xw)^-1`` and Pearson residuals
    ``r``, the estimator is ``b - beta ~ B Xw' r``, ``E[r r'] ~ phi M R M`` with ``M = I -
    Xw B Xw'`` and ``R = rho^|t_i - t_j|``. The lag-1 ratio ``q = sum r_t r_{t+1} / sum
    r_t^2`` is matched to its expectation under the design, ``tr(M A M R) / (2 tr(M R))``
    (``A`` the lag-1 adjacency), solved for ``rho`` in ``[0, AR1_MAX_RHO]`` (so a series
    without autocorrelation keeps the independent-errors variance, never less); then
    ``phi = r'r / tr(M R)`` and ``V = phi B Xw' R Xw B``. The same moment-matching is
    the design-based bias correction of a residual autocorrelation of Tjostheim & Paulsen
    (1983, Biometrika 70:389), here with the regression's own hat matrix.
    """
    n = len(r)
    Xw = X * sqrt_w[:, None]
    bread = np.linalg.pinv(Xw.T @ Xw)
    M = np.eye(n) - Xw @ bread @ Xw.T
    dist = np.abs(t[:, None] - t[None, :])
    A = (dist == 1).astype(float)
    MAM = M @ A @ M
    rr = float(r @ r)
    q = float(r @ A @ r) / 2 / rr if rr > 0 else 0.0
    # sums over R = rho^dist grouped by distance, so each trial rho costs O(n), not O(n^2)
    lag = dist.astype(np.int64).ravel()
    by_lag_mam = np.bincount(lag, weights=MAM.ravel())
    by_lag_m = np.bincount(lag, weights=M.ravel())
    powers = np.arange(len(by_lag_m))

    def excess(rho: float) -> float:
        rk = rho**powers
        return float(by_lag_mam @ rk / 2 / (by_lag_m @ rk)) - q

    if excess(0.0) >= 0:
        rho = 0.0
    elif excess(AR1_MAX_RHO) <= 0:
        rho = AR1_MAX_RHO
    else:
        rho = float(optimize.brentq(excess, 0.0, AR1_MAX_RHO, xtol=1e-6))
    # an upper margin of AR1_RHO_MARGIN standard errors (Bartlett) on the estimate
    df_resid = n - X.shape[1]
    rho = float(min(AR1_MAX_RHO, rho + AR1_RHO_MARGIN * np.sqrt((1 - rho**2) / df_resid)))
    R = rho**dist
    phi = fixed_dispersion if fixed_dispersion is not None else rr / float(
        by_lag_m @ rho**powers)
    V = phi * bread @ Xw.T @ R @ Xw @ bread
    return V, rho, float(phi), bread


def _ar1_df(a: np.ndarray, t: np.ndarray, rho: float, df_resid: float) -> float:
    """Satterthwaite-type degrees of freedom of ``phi a' R(rho) a``, the "ar1" variance of
    a linear combination ``a'r`` of the Pearson residuals (a contrast, or a total).

    ``df = 2 / Var(log variance)`` with ``Var(log variance) ~ 2 / df_resid + s^2
    Var(rho)``: ``2 / df_resid`` for the dispersion (chi-square), ``s = d log(a'Ra) /
    d rho`` at the estimate and ``Var(rho) ~ (1 - rho^2) / df_resid`` (Bartlett's variance
    of a lag-1 autocorrelation, on the residual df), so that an interval widens when its
    variance depends strongly on an autocorrelation a short series estimates poorly (as
    the Satterthwaite adjustment of Turner et al. 2021). At most ``df_resid``, at least 1.
    """
    d = np.abs(t[:, None] - t[None, :])
    R = rho**d
    with np.errstate(divide="ignore", invalid="ignore"):
        dR = np.where(d == 0, 0.0, d * rho ** np.maximum(d - 1, 0))
    s = float(a @ dR @ a) / float(a @ R @ a)
    var_log = 2.0 / df_resid + s**2 * (1 - rho**2) / df_resid
    return float(np.clip(2.0 / var_log, 1.0, df_resid))


_UNIT_WORDS = {"monthly": "month", "termly": "term", "yearly": "year"}
#: How each inference method is described in a report (diagnostics["inference_text"]).
_INFERENCE_TEXT = {
    "ar1": ("standard errors allowing for first-order autocorrelation (taken as {rho:.2f}: "
            "the estimate from the residuals, corrected for the short series, plus a margin "
            "for its uncertainty) and t intervals on at most {df:.0f} degrees of freedom, "
            "fewer where the autocorrelation matters most"),
    "newey-west": ("Newey-West standard errors (lag {lags}) with Stata's small-sample "
                   "factor and t intervals on {df:.0f} degrees of freedom"),
    "wald": ("{se} standard errors with Wald intervals (normal quantiles for counts, t for "
             "a gaussian outcome)"),
}


def _signed_pct(rate_ratio: float) -> str:
    """A rate ratio as a signed percentage change with a true minus sign, e.g. '−22%'."""
    pct = (rate_ratio - 1) * 100
    return f"{'−' if pct < 0 else '+'}{abs(pct):.0f}%"


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _sentence(res: ITSResult, when: str, what: str, who: str, per: str | None, *,
              cumulative: bool = True) -> str:
    """Plain-English summary for a school board, leading with :meth:`ITSResult.headline`.

    Observed over expected (count model, level and slope changes): that ratio and the
    difference in events, then the level and slope changes. Otherwise the headline change,
    the other change (slope when the headline is the level), then the cumulative
    difference. Without ``cumulative`` (a report that withholds the observed total) the
    totals and the ratio are left out and the sentence starts with the level change.
    """
    eff = res.effects_data
    terms = eff["term"]
    pct = round(res.confidence * 100)
    unit = {"monthly": "month", "termly": "term", "yearly": "year"}[res.frequency]
    versus = "compared with what the previous trend predicted"
    predicted = "the previous trend predicted"
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
        return text, verdict(lo, hi, null=null, direction=res.direction) == "no clear change"

    cu = {k: v[0] for k, v in res.cumulative_data.items()}
    d, clo, chi = cu["difference"], cu["ci_low"], cu["ci_high"]
    word = "fewer" if d < 0 else "more"
    a, b = (-chi, -clo) if d < 0 else (clo, chi)
    total = f"({pct}% CI {a:,.0f} to {b:,.0f})"
    if a < 0:  # the interval crosses zero: name both ends, not a negative "fewer"
        other = "more" if d < 0 else "fewer"
        total = f"({pct}% CI from {b:,.0f} {word} to {-a:,.0f} {other})"
    per_100 = f", {abs(cu['per_100']):.1f} per 100 {per}" if per else ""
    i = terms.index(res.headline_term)
    text, unclear = describe(i)
    other = res.headline_term.replace("level", "slope")
    then = ""
    if other != res.headline_term and other in terms:
        t2, unclear2 = describe(terms.index(other))
        then = f"; after that {t2}{' (no clear change)' if unclear2 else ''}"
    head = res.headline() if cumulative and rr else None
    if head is not None and head["term"] == OBSERVED_OVER_EXPECTED:
        est, lo, hi = head["estimate"], head["ci_low"], head["ci_high"]
        includes = head["verdict"] == "no clear change"
        out = (f"After {who} began in {when}, there were {abs(est - 1) * 100:.0f}% "
               f"{'fewer' if est < 1 else 'more'} {what} than {predicted} (ratio of observed "
               f"to expected {est:.2f}, {pct}% CI {lo:.2f} to {hi:.2f}"
               f"{', an interval that includes no change' if includes else ''}): about "
               f"{abs(d):,.0f} {word} over {int(cu['periods'])} {unit}s {total}{per_100}. "
               f"At the interruption {text}"
               f"{', an interval that includes no change' if unclear else ''}{then}.")
        return out
    out = f"After {who} began in {when}, {text} {versus}"
    if unclear:
        out += ", an interval that includes no change"
    out += then
    if not rr or not cumulative:
        return out + "."
    out += (f". Over {int(cu['periods'])} {unit}s that is about {abs(d):,.0f} {word} "
            f"{what} than {predicted} {total}{per_100}")
    return out + "."


# ----------------------------------------------------------------------------- many units


def dersimonian_laird(estimates: Any, variances: Any, confidence: float = 0.95) -> dict:
    """DerSimonian & Laird (1986, Control Clin Trials 7:177) random-effects pooling, by
    statsmodels ``combine_effects(method_re="dl")``.

    With ``w_i = 1/v_i``: ``Q = sum w (y - ybar)^2``, ``tau2 = max(0, (Q - (k-1)) / C)``,
    pooled ``= sum w* y / sum w*`` with ``w*_i = 1/(v_i + tau2)``, ``se = 1/sqrt(sum w*)``,
    normal CI; ``I2 = max(0, (Q - (k-1)) / Q)`` (Higgins & Thompson 2002). Estimates are
    on the model scale (log rate ratios or differences). Two corrections to statsmodels
    (0.14), which neither truncates ``tau2`` at 0 (a negative between-unit variance then
    inflates the weights) nor ``I2``, and divides by zero for one unit: where ``tau2``
    would be 0 or less, or ``k = 1``, the random-effects estimate is the fixed-effect one,
    which statsmodels also gives.
    """
    yv = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    k = len(yv)
    if k == 0:
        raise DataError("No unit could be fitted, so there is nothing to pool.")
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # k = 1: statsmodels divides by 0
        res = combine_effects(yv, v, method_re="dl", alpha=1 - confidence)
        frame = res.summary_frame(alpha=1 - confidence)  # HKSJ rows can warn; unused
    dfq = k - 1
    q = max(0.0, float(res.q)) if k > 1 else 0.0
    tau2 = max(0.0, float(res.tau2)) if k > 1 else 0.0
    row = frame.loc["random effect" if tau2 > 0 else "fixed effect"]
    est, se = float(row["eff"]), float(row["sd_eff"])
    return {
        "k": k, "estimate": est, "se": se, "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_upp"]), "p": float(2 * special.ndtr(-abs(est / se))),
        "tau2": tau2, "Q": q,
        "Q_p": float(res.test_homogeneity().pvalue) if dfq > 0 else np.nan,
        "I2": max(0.0, (q - dfq) / q) if q > 0 else 0.0,
    }


@dataclass
class ManyResult:
    """Per-unit ITS fits with a random-effects pooled estimate.

    ``effects``: unit, term, estimate, ci_low, ci_high, p, scale, coef, se, n, status
    ("ok", "warning" or "error") and message. ``pooled``: per term, the DerSimonian-Laird
    estimate (back-transformed for rate ratios) with k, tau2, Q, Q_p, I2. ``results``: the
    :class:`ITSResult` of each fitted unit. Follows
    :class:`evaluation.results.AnalysisResult`: its headline is the pooled estimate of the
    units' ``headline_term``.
    """

    effects: pd.DataFrame
    pooled: pd.DataFrame
    results: dict
    by: str
    confidence: float
    direction: Direction = "lower_is_better"

    @property
    def summary(self) -> pd.DataFrame:
        """The pooled estimate of each term (:attr:`pooled`)."""
        return self.pooled

    @property
    def headline_term(self) -> str | None:
        """The term the units report first (None when no unit was fitted)."""
        first = next(iter(self.results.values()), None)
        return None if first is None else first.headline_term

    def headline(self) -> dict:
        """The pooled (random-effects) estimate of :attr:`headline_term`, k units."""
        rows = self.pooled[self.pooled["term"] == self.headline_term]
        if rows.empty:
            return {"term": None, "estimate": None, "ci_low": None, "ci_high": None,
                    "unit": "", "null": 1.0, "n": 0, "verdict": "no clear change"}
        row = rows.iloc[0]
        null = 1.0 if row["scale"] == "rate ratio" else 0.0
        lo, hi = float(row["ci_low"]), float(row["ci_high"])
        return {"term": row["term"], "estimate": float(row["estimate"]), "ci_low": lo,
                "ci_high": hi, "unit": f"{row['scale']}, pooled across {self.by}",
                "null": null, "n": int(row["k"]),
                "verdict": verdict(lo, hi, null=null, direction=self.direction)}

    @property
    def sentence(self) -> str:
        h = self.headline()
        if h["term"] is None:
            return "No unit could be fitted, so there is no pooled estimate."
        pct = round(self.confidence * 100)
        return (f"Pooled across {h['n']} units (random effects), the {h['term']} was "
                f"{_fmt(h['estimate'])} ({h['unit'].split(',')[0]}, {pct}% CI "
                f"{_fmt(h['ci_low'])} to {_fmt(h['ci_high'])}): {h['verdict']}.")

    def plot(self, ax: Any = None) -> Any:
        """The forest plot of :attr:`headline_term` (:meth:`forest_plot`)."""
        return self.forest_plot(self.headline_term, ax=ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record of the pooled estimate."""
        h = self.headline()
        text = (f"Pooled {h['term']} {_fmt(h['estimate'])} ({_fmt(h['ci_low'])} to "
                f"{_fmt(h['ci_high'])})" if h["term"] is not None else "No pooled estimate")
        return make_record(self, outcome, analysis="its", headline=text, period=period,
                           n=n, notebook=notebook)

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
                      confidence=confidence,
                      direction=fit_kwargs.get("direction", "lower_is_better"))
