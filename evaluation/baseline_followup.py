"""Baseline versus follow-up analyses for one group of pupils (and a two-group ANCOVA).

Sign convention used throughout
-------------------------------
* ``change = follow_up - baseline``. ``mean_change``, its CI, ``t``, ``d_z``, ``d_av``,
  ``d_rm`` and ``g_av`` (with its CI) are all signed this way, whatever the measure: a fall
  in SDQ difficulties gives negative values.
* "Improvement" is decided by ``direction`` ("higher_is_better" / "lower_is_better", the
  vocabulary of the parameters and theory of change; a measure's ``higher_is_better`` flag
  is converted by :func:`evaluation.results.direction_of`). ``eef_months`` is signed as
  improvement (positive = additional progress, negative = less progress), so it is
  computed from ``g_av`` multiplied by -1 when lower is better.
* ``headline()['verdict']`` is :func:`evaluation.results.verdict` of the CI against 0, or
  :data:`TOO_FEW` when fewer than ``min_pairs`` pupils (default :data:`MIN_PAIRS`) have
  both scores: then no verdict and no effect size is given, and the sentence says why.
* Every result class here follows :class:`evaluation.results.AnalysisResult`.

What the design supports
------------------------
Every result carries its ``design``: :data:`COMPARISON` (programme against comparison
pupils, ANCOVA) or :data:`SINGLE_GROUP` (one group's before-after change). Its headline
text and sentence name it. A single-group change is worded as a change in scores, never
as an effect of the work: pupils chosen because they scored badly score nearer the average
next time without any help (regression to the mean), and children change as they grow.
A regression-to-the-mean adjustment (:class:`RtmAdjustment`, supplied by another module
through :meth:`PairedChange.with_rtm`) then gives the headline and its verdict.
EEF months' progress is given only for attainment measures (``Measure.attainment``; the
EEF table converts attainment effect sizes), and is called "additional" only against a
comparison group. :func:`headline_change` picks the design from the parameters and never
changes it silently (:class:`ComparisonUnavailable`).

Rows named in error messages are data-file line numbers (header = line 1) when the table
has its default 0..n-1 index, otherwise the table's own index labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.errors import DataError, describe_rows
from evaluation.measures import Measure
from evaluation.privacy import Disclosure
from evaluation.results import (
    Direction,
    OutcomeLike,
    Result,
    check_direction,
    direction_of,
    format_figure,
    format_interval,
    make_record,
    repr_html,
    verdict,
)

__all__ = [
    "COMPARISON",
    "SINGLE_GROUP",
    "TOO_FEW",
    "MIN_PAIRS",
    "RETEST_RANGE",
    "ComparisonUnavailable",
    "RtmAdjustment",
    "headline_change",
    "paired_g_interval",
    "subgroup_effects",
    "Subgroups",
    "eef_months",
    "paired_change",
    "PairedChange",
    "reliable_change",
    "ReliableChange",
    "paired_ordinal",
    "PairedOrdinal",
    "paired_binary",
    "PairedBinary",
    "ancova",
    "Ancova",
    "scores_to_wide",
]

#: The two designs a baseline/follow-up headline can have (its ``design``).
COMPARISON = "comparison group"
SINGLE_GROUP = "single group before–after"
#: The verdict when too few pupils have both scores to judge a change (see ``min_pairs``).
TOO_FEW = "too few to judge"
#: Default minimum number of pupils with both scores for a verdict and an effect size:
#: below it an interval is too unstable to act on (issue #19; a project may change it).
MIN_PAIRS = 10
#: The kit's sensitivity range for the test-retest correlation of the regression-to-the-mean
#: adjustment (:func:`headline_change`). NOT a published range: the kit's own choice around
#: the registry's SDQ stand-in (0.62, the mean retest r over all SDQ scales and informants
#: in Goodman 2001's abstract), because the adjustment is very sensitive to the retest value
#: and the total's own retest r could not be re-found. The interval is the union over it.
RETEST_RANGE = (0.5, 0.75)


class ComparisonUnavailable(DataError):
    """The parameters ask for a comparison group that these data cannot provide."""


@runtime_checkable
class RtmAdjustment(Protocol):
    """What :meth:`PairedChange.with_rtm` reads of a regression-to-the-mean adjustment
    (Barnett, van der Pols & Dobson 2005): :class:`evaluation.rtm.RTMAdjustment` has it.

    ``adjusted_change``, ``ci_low``, ``ci_high``: the change allowing for regression to the
    mean (same units and sign as ``mean_change``); ``expected_rtm``: the change expected
    from regression to the mean alone; ``sentence``: the plain-English explanation."""

    adjusted_change: float
    ci_low: float
    ci_high: float
    expected_rtm: float
    sentence: str


def _is_attainment(measure: Measure | None, attainment: bool | None) -> bool:
    """Whether months' progress may be shown: given, else the measure's registry flag."""
    if attainment is not None:
        return bool(attainment)
    # read with getattr: the registry flag is new, older Measure objects lack it
    return bool(getattr(measure, "attainment", False)) if measure is not None else False


def _check_min_pairs(min_pairs: int) -> int:
    if isinstance(min_pairs, bool) or not isinstance(min_pairs, int) or min_pairs < 2:
        raise DataError(f"min_pairs must be a whole number of at least 2, got {min_pairs!r}.")
    return min_pairs


# ---------------------------------------------------------------------------------------
# helpers


def _rows(index: pd.Index, mask: np.ndarray) -> str:
    """Describe the rows where ``mask`` is true, as file line numbers when we can."""
    pos = np.flatnonzero(mask)
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return describe_rows((pos + 2).tolist())
    return describe_rows(index[pos].tolist())


def _need(data: pd.DataFrame, *cols: str | None) -> None:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"Expected a table (pandas DataFrame), got {type(data).__name__}.")
    for c in cols:
        if c is not None and c not in data.columns:
            raise DataError(
                f"Column '{c}' is not in the table (columns: {', '.join(map(str, data.columns))})."
                " Check the column name or the project's column mapping."
            )


def _numeric(data: pd.DataFrame, col: str, measure: Measure | None = None) -> np.ndarray:
    """Column as float64; non-numeric entries and out-of-range scores raise DataError."""
    s = data[col]
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        conv = pd.to_numeric(s.astype("string").str.strip(), errors="coerce")
        bad = (s.notna() & conv.isna()).to_numpy()
        if pd.api.types.is_bool_dtype(s):
            bad = s.notna().to_numpy()
        if bad.any():
            raise DataError(
                f"Column '{col}' should hold numeric scores but has text or other values at "
                f"{_rows(data.index, bad)}. Correct them or leave them blank (missing)."
            )
        x = conv.to_numpy(dtype=float, na_value=np.nan)
    else:
        x = s.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(x)
    if inf.any():
        raise DataError(f"Column '{col}' has infinite values at {_rows(data.index, inf)}.")
    if measure is not None:
        out = ~np.isnan(x) & ((x < measure.min) | (x > measure.max))
        if out.any():
            raise DataError(
                f"Column '{col}' has scores outside the range of {measure.name} "
                f"({measure.min:g} to {measure.max:g}) at {_rows(data.index, out)}. "
                "Check these scores (or the measure chosen)."
            )
    return x


@dataclass
class _Paired:
    b: np.ndarray          # baseline, one entry per pupil (NaN if missing)
    f: np.ndarray          # follow-up
    frame: pd.DataFrame    # one row per pupil: [id], [by], baseline, follow_up
    by_col: str | None


def _collect(data: pd.DataFrame, baseline: str, follow_up: str, id: str | None,
             by: str | None, measure: Measure | None) -> _Paired:
    """One row per pupil with numeric baseline and follow-up (NaN where missing)."""
    _need(data, baseline, follow_up, id, by)
    if baseline == follow_up:
        raise DataError(f"Baseline and follow-up are the same column ('{baseline}').")
    b = _numeric(data, baseline, measure)
    f = _numeric(data, follow_up, measure)
    cols: dict[str, Any] = {}
    if id is not None:
        ids = data[id]
        miss = ids.isna().to_numpy()
        if miss.any():
            raise DataError(f"Column '{id}' (pupil id) is blank at {_rows(data.index, miss)}. "
                            "Every row needs a pupil id.")
        if not ids.is_unique:
            # A pupil may be split over rows (one per timepoint); two scores at the same
            # timepoint cannot be paired without guessing, so refuse.
            codes, uniq = pd.factorize(ids)
            for col, x in ((baseline, b), (follow_up, f)):
                have = ~np.isnan(x)
                counts = np.bincount(codes[have], minlength=len(uniq))
                dup = have & (counts[codes] > 1)
                if dup.any():
                    raise DataError(
                        f"Column '{col}': some pupils ('{id}') have more than one score at this "
                        f"timepoint, at {_rows(data.index, dup)}. Keep one score per pupil "
                        "per timepoint (e.g. the first or the latest) and run again."
                    )
            tmp = pd.DataFrame({"_b": b, "_f": f, "_code": codes})
            if by is not None:
                tmp["_by"] = data[by].to_numpy()
            g = tmp.groupby("_code", sort=True).first()  # first() skips missing values
            b = g["_b"].to_numpy(dtype=float)
            f = g["_f"].to_numpy(dtype=float)
            cols[id] = uniq.take(g.index.to_numpy())
            if by is not None:
                cols[by] = g["_by"].to_numpy()
        else:
            cols[id] = ids.to_numpy()
            if by is not None:
                cols[by] = data[by].to_numpy()
        index = pd.RangeIndex(len(b))
    else:
        if by is not None:
            cols[by] = data[by].to_numpy()
        index = data.index
    cols["baseline"] = b
    cols["follow_up"] = f
    return _Paired(b=b, f=f, frame=pd.DataFrame(cols, index=index, copy=False), by_col=by)


def _counts(b: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, int, int]:
    hb, hf = ~np.isnan(b), ~np.isnan(f)
    both = hb & hf
    return both, int((hb & ~hf).sum()), int((hf & ~hb).sum())


# ---------------------------------------------------------------------------------------
# EEF months' progress

_EEF_UPPER = (1, 9, 18, 26, 35, 44, 52, 61, 69, 78, 87, 95)  # hundredths, months 0..11


def _eef_label(months: int) -> str:
    m = abs(months)
    if m == 0:
        return "very low or no impact"
    if m <= 2:
        return "low"
    if m <= 5:
        return "moderate"
    if m <= 8:
        return "high"
    return "very high"


def eef_months(g: float) -> tuple[int, str]:
    """Convert an effect size to EEF months' additional progress and its impact label.

    The effect size is first rounded to two decimals (halves away from zero), then looked
    up in the EEF Teaching and Learning Toolkit conversion table: 0 months -0.01 to 0.01;
    1: 0.02-0.09; 2: 0.10-0.18; 3: 0.19-0.26; 4: 0.27-0.35; 5: 0.36-0.44; 6: 0.45-0.52;
    7: 0.53-0.61; 8: 0.62-0.69; 9: 0.70-0.78; 10: 0.79-0.87; 11: 0.88-0.95; 12: 0.96 and
    above. Negative effect sizes mirror this (e.g. -0.30 -> -4). Labels: very low or no
    impact (0), low (1-2), moderate (3-5), high (6-8), very high (9-12 months).
    """
    g = float(g)
    if not math.isfinite(g):
        raise ValueError(f"eef_months needs a finite effect size, got {g}")
    hundredths = math.floor(abs(g) * 100 + 0.5)
    months = next((m for m, up in enumerate(_EEF_UPPER) if hundredths <= up), 12)
    months = -months if g < 0 else months
    return months, _eef_label(months)


def _size_word(g: float) -> str:
    # Cohen (1988) conventional benchmarks for standardised mean differences
    a = abs(g)
    if a < 0.2:
        return "very small"
    if a < 0.5:
        return "small"
    if a < 0.8:
        return "moderate"
    return "large"


def _months_phrase(months: int, improved: bool, design: str) -> str:
    """EEF months in words: "additional" (or "less") progress only against a comparison
    group; a single group's change is only put on the EEF scale, with why it is not extra."""
    m = abs(months)
    unit = "month" if m == 1 else "months"
    if design == COMPARISON:
        kind = "additional" if improved else "less"
        if m == 0:
            return f"equivalent to less than one month's {kind} progress on the EEF scale"
        possessive = "month's" if m == 1 else "months'"
        return f"equivalent to about {m} {possessive} {kind} progress on the EEF scale"
    size = "less than one month" if m == 0 else f"about {m} {unit}"
    return (f"{size} on the EEF months'-progress scale (a scale made for differences from a "
            "comparison group: without one it includes the progress pupils make anyway)")


# ---------------------------------------------------------------------------------------
# paired change (continuous scores)

_STAT_COLS = [
    "baseline_mean", "baseline_sd", "follow_up_mean", "follow_up_sd", "mean_change",
    "mean_change_ci_low", "mean_change_ci_high", "t", "df", "p", "wilcoxon_W", "wilcoxon_p",
    "r", "d_z", "d_av", "d_rm", "g_av", "g_av_ci_low", "g_av_ci_high", "cles", "eef_months",
    "eef_label",
]


_EFFECT_COLS = ["r", "d_z", "d_av", "d_rm", "g_av", "g_av_ci_low", "g_av_ci_high", "cles",
                "eef_months", "eef_label"]


def _nct_cdf(t: float, df: float, nc: float) -> float:
    """P(T <= t) for a noncentral t, ``scipy.special.nctdtr`` (the routine behind
    ``scipy.stats.nct.cdf``, without its per-call overhead: the interval is found by root
    finding, hundreds of calls per simulated sample). Far in either tail it returns NaN
    (scipy 1.17, e.g. t = 0.5, nc = 37.5, df = 7): there the probability is 0 when nc is
    above t and 1 when below, which is all the root finding needs."""
    from scipy import special

    p = float(special.nctdtr(df, nc, t))
    if math.isfinite(p):
        return p
    return 0.0 if nc > t else 1.0


def nct_limits(t: float, df: float, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence limits for the noncentrality parameter of a noncentral t from an observed
    ``t`` on ``df`` degrees of freedom: the values nc with P(T <= t | nc) = (1 + confidence)/2
    (lower) and (1 - confidence)/2 (upper) (Steiger & Fouladi 1997, "noncentrality interval
    estimation"; as MBESS ``conf.limits.nct``). Written with ``scipy.optimize.brentq`` on
    ``scipy.stats.nct`` because scipy has no inverse in the noncentrality parameter."""
    from scipy import optimize

    sign = -1.0 if t < 0 else 1.0
    t = abs(float(t))
    tail = (1 - confidence) / 2

    def root(p: float) -> float:
        def gap(nc: float) -> float:
            return _nct_cdf(t, df, nc) - p

        # start from the normal approximation of the limit, then widen until it brackets
        guess = t - stats.norm.ppf(p) * math.sqrt(1 + t * t / (2 * df))
        lo, hi = guess - 0.5, guess + 0.5
        while gap(lo) < 0:  # the cdf falls as nc grows: step down until it is above p
            lo -= 1.0
        while gap(hi) > 0:
            hi += 1.0
        return float(optimize.brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12))

    low, high = root(1 - tail), root(tail)
    return (low, high) if sign > 0 else (-high, -low)


def paired_g_interval(b: np.ndarray, f: np.ndarray,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """Hedges' g_av for paired scores and its confidence interval: (g_av, low, high).

    g_av = mean change / ((sd1 + sd2)/2) * J, J = 1 - 3/(4(n - 1) - 1) (Lakens 2013). The
    interval is the noncentral-t interval of Algina, Keselman & Penfield (2005, Educ Psychol
    Meas 65:241-258): the paired t = mean change / (sd_change/sqrt(n)) follows a noncentral t
    with n - 1 df, so the limits of its noncentrality (:func:`nct_limits`) divided by sqrt(n)
    bound the standardised change on the change-SD scale, and the sample ratio sd_change /
    ((sd1 + sd2)/2) puts them on the g_av scale. It replaces the normal approximation
    (Borenstein et al. 2009, eq. 4.28), whose coverage was 88% at n = 8 (issue #19); the
    seeded simulation in tests/test_baseline_followup.py measures at least 0.93 at n = 8,
    10 and 20. NaN limits when the change has no spread.
    """
    b = np.asarray(b, dtype=float)
    f = np.asarray(f, dtype=float)
    n = b.size
    if n < 2:
        return np.nan, np.nan, np.nan
    d = f - b
    sd_d = d.std(ddof=1)
    s_av = (b.std(ddof=1) + f.std(ddof=1)) / 2
    if not (sd_d > 0 and s_av > 0):
        return np.nan, np.nan, np.nan
    j = 1 - 3 / (4 * (n - 1) - 1)
    g_av = d.mean() / s_av * j
    low, high = nct_limits(d.mean() / (sd_d / math.sqrt(n)), n - 1, confidence)
    scale = sd_d / (s_av * math.sqrt(n))
    return float(g_av), low * scale, high * scale


def _paired_stats(b: np.ndarray, f: np.ndarray, confidence: float, direction: Direction,
                  attainment: bool = False,
                  min_pairs: int = 2) -> tuple[dict[str, Any], str]:
    """All paired statistics for complete pairs ``b``, ``f``; returns (stats, note).

    Fewer than ``min_pairs`` pairs: the descriptive statistics and the t-test, but no effect
    size. EEF months only when ``attainment``."""
    n = b.size
    out: dict[str, Any] = dict.fromkeys(_STAT_COLS, np.nan)
    out["eef_label"] = ""
    if n < 2:
        return out, "fewer than two pupils with both scores"
    d = f - b
    mb, mf = b.mean(), f.mean()
    sb, sf = b.std(ddof=1), f.std(ddof=1)
    md = mf - mb
    sd_d = d.std(ddof=1)
    out.update(baseline_mean=mb, baseline_sd=sb, follow_up_mean=mf, follow_up_sd=sf,
               mean_change=md, df=float(n - 1))
    if not sd_d > 0:
        return out, "every pupil changed by the same amount, so the change has no spread"
    alpha = 1 - confidence
    se = sd_d / math.sqrt(n)
    tcrit = stats.t.ppf(1 - alpha / 2, n - 1)
    t = md / se
    out.update(mean_change_ci_low=md - tcrit * se, mean_change_ci_high=md + tcrit * se, t=t,
               p=float(2 * stats.t.sf(abs(t), n - 1)))
    nz = d[d != 0]
    if nz.size:
        w = stats.wilcoxon(d, zero_method="wilcox")
        out.update(wilcoxon_W=float(w.statistic), wilcoxon_p=float(w.pvalue))
    if n < min_pairs:
        return out, (f"fewer than {min_pairs} pupils with both scores: too few for an effect "
                     "size or a verdict")
    if sb > 0 and sf > 0:
        # Pearson r from the same moments (cheaper than a second pass through pearsonr)
        cov = ((b - mb) * (f - mf)).sum() / (n - 1)
        r = float(np.clip(cov / (sb * sf), -1.0, 1.0))
    else:
        r = np.nan
    d_z = md / sd_d
    d_av = md / ((sb + sf) / 2) if (sb + sf) > 0 else np.nan
    g_av, g_lo, g_hi = paired_g_interval(b, f, confidence)
    out.update(r=r, d_z=d_z, d_av=d_av, d_rm=d_z * math.sqrt(2 * (1 - r)) if r == r else np.nan,
               g_av=g_av, g_av_ci_low=g_lo, g_av_ci_high=g_hi,
               cles=float(stats.norm.cdf(d_z)))
    if attainment and np.isfinite(g_av):
        months, label = eef_months(g_av if direction == "higher_is_better" else -g_av)
        out.update(eef_months=months, eef_label=label)
    return out, ""


def _direction(direction: Direction | None, measure: Measure | None,
               default: Direction | None = "higher_is_better") -> Direction | None:
    """``direction`` as given, else the measure's (converted from its registry flag)."""
    if direction is not None:
        return check_direction(direction)
    return direction_of(measure.higher_is_better) if measure is not None else default


def _change_plot(frame: pd.DataFrame, est: str, lo: str, hi: str, label: str, xlabel: str,
                 ax: Any = None) -> Any:
    """Estimates with their intervals, one row per group, and a line at no change."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, max(2.0, 0.4 * len(frame) + 1)))
    else:
        fig = ax.figure
    y = np.arange(len(frame))[::-1]
    ax.errorbar(frame[est], y, xerr=[frame[est] - frame[lo], frame[hi] - frame[est]],
                fmt="o", color="C0")
    ax.axvline(0, color="0.5", ls=":")
    ax.set_yticks(y)
    ax.set_yticklabels([str(v) for v in frame[label]])
    ax.set_xlabel(xlabel)
    return fig


#: Counts of a paired-change summary, and what is worked out from the pairs of a group.
_COUNT_COLS = ["n_pairs", "n_baseline_only", "n_follow_up_only"]
_DERIVED_COLS = _STAT_COLS + ["note"]
_EEF_COLS = ["eef_months", "eef_label"]


@dataclass
class PairedChange:
    """Result of :func:`paired_change`: one group's before-after change.

    Follows :class:`evaluation.results.AnalysisResult`. ``summary``: one row per subgroup
    plus an "All" row, with statistics for any group of two or more pairs (effect sizes
    only from ``min_pairs`` pairs; EEF months only for an attainment measure);
    ``pairs``: one row per pupil with baseline, follow_up, change and
    status (paired / baseline only / follow-up only / neither); ``sentence``: the
    plain-English result for the "All" row, its counts written through ``disclosure``.
    What a reader sees of ``summary`` is :meth:`board_table`.

    ``design`` is :data:`SINGLE_GROUP`; ``comparison_note`` says why a comparison group
    the parameters asked for could not be used (see :func:`headline_change`). ``rtm``, when
    set (:meth:`with_rtm`), is the regression-to-the-mean adjustment that supplies the
    headline estimate and verdict.
    """

    summary: pd.DataFrame
    pairs: pd.DataFrame
    sentence: str
    label: str
    direction: Direction
    confidence: float
    disclosure: Disclosure = field(default_factory=Disclosure)
    unit: str = "points"
    min_pairs: int = MIN_PAIRS
    attainment: bool = False
    design: str = SINGLE_GROUP
    comparison_note: str = ""
    rtm: RtmAdjustment | None = None

    def _all(self) -> pd.Series:
        return self.summary.loc[self.summary["group"] == "All"].iloc[0]

    def headline(self) -> dict[str, Any]:
        """Mean change of all pupils (or, with ``rtm``, the change adjusted for regression
        to the mean), CI, unit, n, design and verdict (:data:`TOO_FEW` under ``min_pairs``).
        """
        row = self._all()
        n = int(row["n_pairs"])
        lo, hi = float(row["mean_change_ci_low"]), float(row["mean_change_ci_high"])
        out = {"estimate": float(row["mean_change"]), "ci_low": lo, "ci_high": hi,
               "unit": f"{self.unit} (mean change)", "null": 0.0, "n": n,
               "design": self.design, "adjusted_for_rtm": self.rtm is not None}
        if self.rtm is not None:
            lo, hi = float(self.rtm.ci_low), float(self.rtm.ci_high)
            out.update(estimate=float(self.rtm.adjusted_change), ci_low=lo, ci_high=hi,
                       unit=f"{self.unit} (change allowing for regression to the mean)",
                       rtm_expected_change=float(self.rtm.expected_rtm))
        # without an adjustment for regression to the mean, a single group's change cannot
        # be attributed to the work: "better, cause unclear", never "improved"
        out["verdict"] = (TOO_FEW if n < self.min_pairs else
                          verdict(lo, hi, null=0.0, direction=self.direction,
                                  attributable=self.rtm is not None))
        return out

    def with_rtm(self, adjustment: RtmAdjustment) -> PairedChange:
        """This result with a regression-to-the-mean adjustment: it supplies the headline
        and verdict, and its sentence replaces the caution that the change may be
        regression to the mean."""
        if not isinstance(adjustment, RtmAdjustment):
            raise TypeError("adjustment must have adjusted_change, ci_low, ci_high, "
                            "expected_rtm and sentence (as evaluation.rtm.RTMAdjustment).")
        done = replace(self, rtm=adjustment)
        done.sentence = _sentence(done._all(), done)
        return done

    def plot(self, ax: Any = None) -> Any:
        """Mean change with its CI for each group and for all pupils."""
        rows = self.summary.dropna(subset=["mean_change_ci_low"])
        return _change_plot(rows, "mean_change", "mean_change_ci_low", "mean_change_ci_high",
                            "group", f"Mean change in {self.label} ({self.unit})", ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the headline change of all pupils, with its design."""
        h = self.headline()
        text = (_too_few_text(self.label, self.min_pairs, self._design_text())
                if h["verdict"] == TOO_FEW else
                _headline_text(self.label, h["estimate"], h["ci_low"], h["ci_high"],
                               self._design_text(), self.unit))
        return make_record(self, outcome, analysis="baseline_followup", headline=text,
                           period=period, n=n, notebook=notebook)

    def _design_text(self) -> str:
        text = self.design
        if self.rtm is not None:
            text += ", allowing for regression to the mean"
        if self.comparison_note:
            text += " (the comparison group could not be used)"
        return text

    def board_table(self, disclosure: Disclosure | None = None) -> pd.DataFrame:
        """``summary`` through the project's disclosure step (``disclosure``, or the one the
        result was made with).

        Counts below the threshold are withheld (:data:`evaluation.privacy.WITHHELD`); a
        group whose pairs are withheld shows none of its statistics. The groups add up to
        the "All" row (``sums_down``), and the pupils with only a baseline and only a
        follow-up add up to the unpaired pupils the sentence names (``sums_across``), so
        the next-smallest cell is withheld wherever one could be recovered by subtraction.
        """
        shown = self.disclosure if disclosure is None else disclosure
        derived = [c for c in _DERIVED_COLS if c in self.summary]
        return shown.table(self.summary, _COUNT_COLS, derived={"n_pairs": derived},
                           sums_down=True,
                           sums_across=[["n_baseline_only", "n_follow_up_only"]])


def _headline_text(label: str, estimate: float, lo: float, hi: float, design: str,
                   unit: str = "points") -> str:
    """E.g. 'Attendance +2.4 points (+1.3 to +3.5); single group before–after': the headline
    line of every page, with the design it comes from (figures as every page prints them,
    with the true minus sign)."""
    return (f"{label[:1].upper() + label[1:]} {format_figure(estimate, 'points')} {unit} "
            f"({format_interval(lo, hi, 'points')}); {design}")


def _too_few_text(label: str, min_pairs: int, design: str) -> str:
    """The headline line when too few pupils have both scores: no figure to act on."""
    return (f"{label[:1].upper() + label[1:]}: too few pupils with both scores to judge "
            f"(fewer than {min_pairs}); {design}")


#: What a single group's change cannot rule out, in plain words.
SINGLE_GROUP_CAUTION = (
    "This is a before-and-after change in one group, with no comparison group, so it shows "
    "how scores changed, not what the work caused: pupils chosen because their scores were "
    "of concern tend to score nearer the average next time without any help (regression to "
    "the mean), and children change as they grow (normal development).")


def _sentence(row: pd.Series, result: PairedChange) -> str:
    label, direction, disclosure = result.label, result.direction, result.disclosure
    n = int(row["n_pairs"])
    unpaired = int(row["n_baseline_only"] + row["n_follow_up_only"])
    tail = ""
    if unpaired:
        tail = (f" In addition, {disclosure.pupils(unpaired)} with only one score could not "
                "be compared.")
    lead = ""
    if result.comparison_note:
        lead = (f"The comparison group could not be used ({result.comparison_note}), so this "
                "is the change in programme pupils alone. ")
    if disclosure.is_small(n):
        return (f"{lead}Fewer than {disclosure.threshold} pupils had both scores for {label}, "
                f"too few to report their change without risk of identifying them.{tail}")
    if n < 2 or not np.isfinite(row["mean_change_ci_low"]):
        return (f"{lead}There were not enough paired scores to estimate the change in pupils' "
                f"{label} (n = {disclosure.count(n)}; "
                f"{row['note'] or 'no spread in the change'}).{tail}")
    b, f = row["baseline_mean"], row["follow_up_mean"]
    if n < result.min_pairs:
        return (f"{lead}Pupils' {label} went from {b:.1f} to {f:.1f} on average, but only "
                f"{disclosure.pupils(n)} had both scores, fewer than the {result.min_pairs} "
                f"needed to judge a change, so no verdict or effect size is given.{tail}")
    moved = "rose" if f > b else "fell" if f < b else "stayed"
    said = verdict(row["mean_change_ci_low"], row["mean_change_ci_high"], null=0.0,
                   direction=direction)
    pct = f"{result.confidence * 100:g}%"
    g, lo, hi = row["g_av"], row["g_av_ci_low"], row["g_av_ci_high"]
    caution = f" {result.rtm.sentence}" if result.rtm is not None else \
        f" {SINGLE_GROUP_CAUTION}"
    if said == "no clear change":
        return (f"{lead}Pupils' {label} went from {b:.1f} to {f:.1f} on average "
                f"(n = {disclosure.count(n)}); this is "
                f"not a clear change either way (mean change {row['mean_change']:+.1f}, {pct} "
                f"CI {row['mean_change_ci_low']:.1f} to {row['mean_change_ci_high']:.1f}; "
                f"Hedges' g = {g:.2f}).{caution}{tail}")
    improved = said == "improved"
    # report g in the direction of the word used ("improvement"/"deterioration")
    sign = 1.0 if (improved == (direction == "higher_is_better")) else -1.0
    g_s = sign * g
    lo_s, hi_s = sorted((sign * lo, sign * hi))
    word = "improvement" if improved else "deterioration"
    months = ""
    if result.attainment and np.isfinite(row["eef_months"]):
        months = f", {_months_phrase(int(row['eef_months']), improved, SINGLE_GROUP)}"
    return (f"{lead}Pupils' {label} {moved} from {b:.1f} to {f:.1f} on average "
            f"(n = {disclosure.count(n)}), a "
            f"{_size_word(g)} {word} in scores (Hedges' g = {g_s:.2f}, {pct} CI {lo_s:.2f} to "
            f"{hi_s:.2f}){months}.{caution}{tail}")


def paired_change(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    *,
    id: str | None = None,
    direction: Direction | None = None,
    confidence: float = 0.95,
    label: str | None = None,
    by: str | None = None,
    measure: Measure | None = None,
    disclosure: Disclosure | None = None,
    min_pairs: int = MIN_PAIRS,
    attainment: bool | None = None,
    comparison_note: str = "",
) -> PairedChange:
    """Compare each pupil's follow-up score with their baseline score (a single-group
    before-after design).

    ``data`` has one row per pupil with a ``baseline`` and a ``follow_up`` column; with
    ``id`` given, a pupil may be spread over several rows (e.g. one per timepoint) but may
    have only one score per timepoint. Pupils with only one score are counted
    (``n_baseline_only``, ``n_follow_up_only``) and left out of the statistics.

    Formulas (n pairs, change d = follow-up - baseline; Lakens 2013, Front Psychol 4:863):

    * paired t = mean(d) / (sd(d)/sqrt(n)), df = n - 1; CI mean(d) +/- t_crit * sd(d)/sqrt(n)
    * Wilcoxon signed-rank: ``scipy.stats.wilcoxon(d, zero_method="wilcox")`` (zero changes
      dropped); NaN when every change is zero
    * r = Pearson correlation of baseline and follow-up
    * d_z = mean(d)/sd(d); d_av = mean(d)/((sd1 + sd2)/2); d_rm = d_z * sqrt(2(1 - r))
    * g_av = d_av * J, J = 1 - 3/(4(n - 1) - 1) (Hedges' correction as Lakens uses it)
    * CI for g_av: noncentral t (Algina, Keselman & Penfield 2005; :func:`paired_g_interval`)
    * CLES = Phi(d_z), the probability that a random pupil's change is positive (McGraw &
      Wong 1992, as given by Lakens 2013)
    * eef_months from g_av signed as improvement (see module docstring and ``eef_months``),
      only for an attainment measure (``attainment``, default the measure's registry flag;
      without a measure, none); the columns are left out otherwise

    A group (or the "All" row) with fewer than ``min_pairs`` pairs (default
    :data:`MIN_PAIRS`) gets no effect size, and the headline verdict is :data:`TOO_FEW`.
    All effect sizes are signed as change (follow-up - baseline); see module docstring.
    The sentence's size word uses Cohen's (1988) benchmarks (0.2 small, 0.5 moderate,
    0.8 large) and its g is signed in the direction of the word ("improvement" /
    "deterioration"); it says that a single group's change is not shown to be caused by
    the work. ``measure`` (optional) checks that scores lie in the measure's range
    and supplies the label and, unless ``direction`` is given, the direction
    (default "higher_is_better" without a measure). ``comparison_note`` (from
    :func:`headline_change`) says why a comparison group could not be used.

    ``disclosure`` (the project's :class:`~evaluation.privacy.Disclosure`) writes the
    sentence's counts and is what :meth:`PairedChange.board_table` applies; without it the
    default board threshold (5) applies, so nothing written for a reader escapes the rule.
    """
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}.")
    min_pairs = _check_min_pairs(min_pairs)
    attainment = _is_attainment(measure, attainment)
    # the measure knows its direction; plain scores: higher is better
    direction = _direction(direction, measure)
    p = _collect(data, baseline, follow_up, id, by, measure)
    both, n_b_only, n_f_only = _counts(p.b, p.f)
    n_all = int(both.sum())
    if n_all < 2:
        raise DataError(
            f"Columns '{baseline}' and '{follow_up}': only {n_all} pupil(s) have both a "
            "baseline and a follow-up score; at least two pairs are needed. Check that the "
            "follow-up scores have been entered against the right pupils."
        )
    change = p.f - p.b
    if np.ptp(change[both]) == 0:
        raise DataError(
            f"Columns '{baseline}' and '{follow_up}': every one of the {n_all} pupils changed "
            f"by exactly {change[both][0]:g}, so the change has no spread and no test or "
            "effect size can be computed. Check that the follow-up column is not a copy of "
            "the baseline (or a constant)."
        )
    if label is None:
        label = measure.label if measure is not None else f"{baseline} score"
    rows = []
    groups: list[tuple[Any, np.ndarray]] = []
    if by is not None:
        codes, uniq = pd.factorize(p.frame[by], sort=True)
        for k, name in enumerate(uniq):
            groups.append((name, codes == k))
        if (codes < 0).any():
            groups.append(("Missing", codes < 0))
    groups.append(("All", np.ones(p.b.size, dtype=bool)))
    for name, mask in groups:
        sel = both & mask
        st, note = _paired_stats(p.b[sel], p.f[sel], confidence, direction, attainment,
                                 min_pairs)
        rows.append({"group": name, "n_pairs": int(sel.sum()),
                     "n_baseline_only": int((mask & ~np.isnan(p.b) & np.isnan(p.f)).sum()),
                     "n_follow_up_only": int((mask & np.isnan(p.b) & ~np.isnan(p.f)).sum()),
                     **st, "note": note})
    summary = pd.DataFrame(rows)
    if not attainment:  # no months' progress anywhere for a non-attainment measure
        summary = summary.drop(columns=_EEF_COLS)
    status = np.where(both, 0, np.where(~np.isnan(p.b), 1, np.where(~np.isnan(p.f), 2, 3)))
    pairs = p.frame
    pairs["change"] = change
    pairs["status"] = pd.Categorical.from_codes(
        status, categories=["paired", "baseline only", "follow-up only", "neither"])
    unit = "percentage points" if measure is not None and measure.name.endswith("_pct") \
        else "points"
    result = PairedChange(
        summary=summary, pairs=pairs, sentence="", label=label, direction=direction,
        confidence=confidence, disclosure=disclosure if disclosure is not None else Disclosure(),
        unit=unit, min_pairs=min_pairs, attainment=attainment, comparison_note=comparison_note,
    )
    result.sentence = _sentence(result._all(), result)
    return result


# ---------------------------------------------------------------------------------------
# reliable and clinically significant change

RC_CATEGORIES = ["reliably improved", "no reliable change", "reliably deteriorated"]
CS_CATEGORIES = ["recovered", "improved", "unchanged", "deteriorated"]
#: The summary's classifications: every pupil with both scores, the pupils who started on
#: the dysfunctional side of the cut-off (who alone can recover), and those who did not.
CLASSIFICATIONS = ("reliable change", "clinical significance", "started on the functional side")


@dataclass
class ReliableChange:
    """Result of :func:`reliable_change`: per-pupil table, summary counts and the inputs.

    Follows :class:`evaluation.results.AnalysisResult`. Its headline is the share of pupils
    who reliably improved, with a Wilson interval, against the share that measurement
    noise alone would put past the threshold (one tail of the normal beyond ``z``): more
    than that is "improved", fewer "worsened"; :data:`TOO_FEW` under ``min_pairs`` pupils.
    A single-group design (``design``): reliable change is change beyond measurement noise,
    not change caused by the work.

    ``summary`` has one row per (classification, category) with ``n``, ``base`` (the pupils
    the classification covers) and ``pct`` (100 n / base): "reliable change" covers every
    pupil with both scores; with a cut-off, "clinical significance" covers the pupils who
    started on the dysfunctional side (recovered / improved / unchanged / deteriorated) and
    "started on the functional side" the others, by reliable change.
    """

    pupils: pd.DataFrame
    summary: pd.DataFrame
    se_measurement: float
    s_diff: float
    points_needed: float
    cutoff: float | None
    criterion: str | None
    n_pairs: int
    n_baseline_only: int
    n_follow_up_only: int
    notes: list[str] = field(default_factory=list)
    direction: Direction = "higher_is_better"
    z: float = 1.96
    label: str = "score"
    disclosure: Disclosure = field(default_factory=Disclosure)
    min_pairs: int = MIN_PAIRS
    design: str = SINGLE_GROUP

    @property
    def confidence(self) -> float:
        """The two-sided confidence that matches the threshold ``z``."""
        return float(1 - 2 * stats.norm.sf(self.z))

    def headline(self) -> dict[str, Any]:
        """Share reliably improved (Wilson CI) against the share noise alone would give."""
        from statsmodels.stats.proportion import proportion_confint

        k = int(self.summary.loc[self.summary["category"] == "reliably improved", "n"].iloc[0])
        lo, hi = proportion_confint(k, self.n_pairs, alpha=1 - self.confidence, method="wilson")
        null = float(stats.norm.sf(self.z))
        said = (TOO_FEW if self.n_pairs < self.min_pairs else
                verdict(float(lo), float(hi), null=null, direction="higher_is_better",
                        attributable=False))  # one group: the cause is unclear
        return {"estimate": k / self.n_pairs, "ci_low": float(lo), "ci_high": float(hi),
                "unit": "share of pupils reliably improved", "null": null, "n": self.n_pairs,
                "design": self.design, "verdict": said}

    @property
    def sentence(self) -> str:
        h = self.headline()
        k = int(round(h["estimate"] * self.n_pairs))
        shown = self.disclosure
        if shown.is_small(k) or shown.is_small(self.n_pairs - k):
            return (f"Of {shown.pupils(self.n_pairs)} with both scores, the number whose "
                    f"{self.label} reliably improved is withheld to protect pupils' privacy.")
        if h["verdict"] == TOO_FEW:
            return (f"Only {shown.pupils(self.n_pairs)} had both scores, fewer than the "
                    f"{self.min_pairs} needed to judge reliable change in {self.label}, so no "
                    "verdict is given.")
        return (f"{k} of {shown.pupils(self.n_pairs)} ({h['estimate']:.0%}, "
                f"{self.confidence:.0%} CI {h['ci_low']:.0%} to {h['ci_high']:.0%}) improved "
                f"their {self.label} by more than measurement noise; noise alone would give "
                f"about {h['null']:.1%}. With no comparison group, this is change beyond "
                "measurement error, not change shown to be caused by the work.")

    def plot(self, ax: Any = None) -> Any:
        """Pupils in each reliable-change category."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 2.5))
        else:
            fig = ax.figure
        part = self.summary[self.summary["classification"] == "reliable change"]
        ax.barh(part["category"][::-1], part["n"][::-1], color="C0")
        ax.set_xlabel("Pupils")
        return fig

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the share of pupils reliably improved."""
        h = self.headline()
        label = self.label[:1].upper() + self.label[1:]
        return make_record(self, outcome, analysis="baseline_followup",
                           headline=(f"{label}: {format_figure(h['estimate'], h['unit'])} "
                                     "reliably improved "
                                     f"({format_interval(h['ci_low'], h['ci_high'], h['unit'])}"
                                     f"); {self.design}"),
                           period=period, n=n, notebook=notebook)


def _jt_cutoff(criterion: str, direction: Direction, functional: tuple | None,
               dysfunctional: tuple | None) -> float:
    # the side of the functional population
    toward = 1.0 if direction == "higher_is_better" else -1.0
    if criterion == "a":
        if dysfunctional is None:
            raise DataError("Cut-off criterion 'a' needs dysfunctional=(mean, sd).")
        return dysfunctional[0] + toward * 2 * dysfunctional[1]
    if criterion == "b":
        if functional is None:
            raise DataError("Cut-off criterion 'b' needs functional=(mean, sd).")
        return functional[0] - toward * 2 * functional[1]
    if criterion == "c":
        if functional is None or dysfunctional is None:
            raise DataError("Cut-off criterion 'c' needs both functional=(mean, sd) and "
                            "dysfunctional=(mean, sd).")
        (m0, s0), (m1, s1) = functional, dysfunctional
        return (s0 * m1 + s1 * m0) / (s0 + s1)
    raise DataError(f"criterion must be 'a', 'b' or 'c', got {criterion!r}.")


def _norm_pair(name: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        m, s = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a (mean, sd) pair, got {value!r}.") from None
    if not (math.isfinite(m) and math.isfinite(s) and s > 0):
        raise DataError(f"{name} must be a (mean, sd) pair with a positive SD, got {value!r}.")
    return (m, s)


def reliable_change(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    *,
    reliability: float | None = None,
    sd: float | None = None,
    direction: Direction | None = None,
    cutoff: float | None = None,
    functional: tuple[float, float] | None = None,
    dysfunctional: tuple[float, float] | None = None,
    criterion: str | None = None,
    id: str | None = None,
    measure: Measure | None = None,
    z: float = 1.96,
    label: str | None = None,
    disclosure: Disclosure | None = None,
    min_pairs: int = MIN_PAIRS,
) -> ReliableChange:
    """Reliable and clinically significant change per pupil (Jacobson & Truax 1991).

    SE = sd * sqrt(1 - reliability); S_diff = sqrt(2) * SE; RCI = (follow-up - baseline) /
    S_diff. A pupil has reliably improved when |RCI| > z (1.96, p < .05) in the better
    direction (``direction``), reliably deteriorated when in the worse direction.

    Clinical significance needs a cut-off: ``cutoff`` as given, else computed from norms
    ((mean, sd) tuples; 0 = functional, 1 = dysfunctional population):
    a = M1 +/- 2 SD1 (2 SD beyond the dysfunctional mean, toward functional);
    b = M0 -/+ 2 SD0 (2 SD from the functional mean, toward dysfunctional);
    c = (SD0 * M1 + SD1 * M0) / (SD0 + SD1).
    ``criterion`` defaults to "c" with both norms, "b" with functional only, "a" with
    dysfunctional only. Clinical significance is judged only for pupils who started on the
    dysfunctional side of the cut-off (baseline not beyond it), as Jacobson & Truax (1991)
    define recovery (moving from the dysfunctional to the functional population with a
    reliable change): recovered (reliably improved and follow-up on the functional side),
    improved (reliably improved, not past the cut-off), unchanged (no reliable change),
    deteriorated (reliably deteriorated). Pupils who started on the functional side cannot
    recover; they are counted separately by reliable change ("started on the functional
    side"), so they never inflate "recovered". A score exactly at the cut-off is on the
    dysfunctional side. ``min_pairs``: below it the headline verdict is :data:`TOO_FEW`.

    ``measure`` supplies reliability, sd, direction, cut-off and norms not given explicitly;
    a measure without a reliability (e.g. attendance_pct) raises DataError.
    """
    if measure is not None:
        if reliability is None and measure.reliability is None:
            raise DataError(
                f"Measure '{measure.name}' has no reliability in the registry, so a reliable "
                f"change index is not applicable "
                f"({measure.source.get('reliability', 'no published reliability')}). Pass "
                "reliability= only if you have a published value for this measure."
            )
        reliability = measure.reliability if reliability is None else reliability
        sd = measure.sd if sd is None else sd
        direction = _direction(direction, measure)
        cutoff = measure.cutoff if cutoff is None else cutoff
        functional = measure.functional if functional is None else functional
        dysfunctional = measure.dysfunctional if dysfunctional is None else dysfunctional
    if reliability is None or isinstance(reliability, bool) or not (
            isinstance(reliability, int | float) and 0 < reliability < 1):
        raise DataError(f"reliability must be a number between 0 and 1 (exclusive), got "
                        f"{reliability!r}. Use the measure's published reliability (e.g. "
                        "Cronbach's alpha or test-retest).")
    if sd is None or not (isinstance(sd, int | float) and sd > 0 and math.isfinite(sd)):
        raise DataError(f"sd must be a positive number (the SD of a normal population or of "
                        f"the baseline scores), got {sd!r}.")
    if direction is None:
        raise DataError("direction must be given ('higher_is_better' or 'lower_is_better') "
                        "for reliable change.")
    check_direction(direction)
    higher_is_better = direction == "higher_is_better"
    functional = _norm_pair("functional", functional)
    dysfunctional = _norm_pair("dysfunctional", dysfunctional)
    p = _collect(data, baseline, follow_up, id, None, measure)
    both, n_b_only, n_f_only = _counts(p.b, p.f)
    n = int(both.sum())
    if n < 1:
        raise DataError(f"Columns '{baseline}' and '{follow_up}': no pupil has both scores.")
    se = sd * math.sqrt(1 - reliability)
    s_diff = math.sqrt(2) * se
    change = p.f - p.b
    rci = change / s_diff
    better = rci if higher_is_better else -rci
    rc_code = np.where(better > z, 0, np.where(better < -z, 2, 1))
    rc_code = np.where(both, rc_code, -1)
    pupils = p.frame
    pupils["change"] = change
    pupils["rci"] = rci
    pupils["reliable_change"] = pd.Categorical.from_codes(rc_code, categories=RC_CATEGORIES)
    rc_counts = np.bincount(rc_code[both], minlength=3)
    parts = [pd.DataFrame({"classification": CLASSIFICATIONS[0], "category": RC_CATEGORIES,
                           "n": rc_counts, "base": n, "pct": 100 * rc_counts / n})]
    if cutoff is None and criterion is None and (functional or dysfunctional):
        criterion = "c" if functional and dysfunctional else "b" if functional else "a"
    if cutoff is None and criterion is not None:
        cutoff = _jt_cutoff(criterion, direction, functional, dysfunctional)
    elif cutoff is not None:
        criterion = "given"
    if cutoff is not None:
        def functional_side(x: np.ndarray) -> np.ndarray:
            return (x > cutoff) if higher_is_better else (x < cutoff)

        side = functional_side(p.f)
        started = functional_side(p.b)
        cs = np.where(rc_code == 0, np.where(side, 0, 1), np.where(rc_code == 2, 3, 2))
        at_risk = both & ~started  # only these pupils can recover
        cs = np.where(at_risk, cs, -1)
        pupils["baseline_functional"] = np.where(np.isnan(p.b), np.nan, started.astype(float))
        pupils["follow_up_functional"] = np.where(np.isnan(p.f), np.nan, side.astype(float))
        pupils["clinical_change"] = pd.Categorical.from_codes(cs, categories=CS_CATEGORIES)
        cs_counts = np.bincount(cs[at_risk], minlength=4)
        fn_counts = np.bincount(rc_code[both & started], minlength=3)
        for name, cats, counts in ((CLASSIFICATIONS[1], CS_CATEGORIES, cs_counts),
                                   (CLASSIFICATIONS[2], RC_CATEGORIES, fn_counts)):
            base = int(counts.sum())
            parts.append(pd.DataFrame({"classification": name, "category": cats, "n": counts,
                                       "base": base,
                                       "pct": 100 * counts / base if base else np.nan}))
    summary = pd.concat(parts, ignore_index=True)
    return ReliableChange(
        pupils=pupils, summary=summary, se_measurement=se, s_diff=s_diff,
        points_needed=z * s_diff, cutoff=cutoff, criterion=criterion, n_pairs=n,
        n_baseline_only=n_b_only, n_follow_up_only=n_f_only, direction=direction, z=z,
        label=label or (measure.label if measure is not None else f"{baseline} score"),
        disclosure=disclosure if disclosure is not None else Disclosure(),
        min_pairs=_check_min_pairs(min_pairs),
    )


# ---------------------------------------------------------------------------------------
# ordinal and yes/no items

_YES = {"yes", "y", "true", "t", "1", "1.0"}
_NO = {"no", "n", "false", "f", "0", "0.0"}


def _pair_rows(data: pd.DataFrame, baseline: str, follow_up: str,
               id: str | None) -> tuple[pd.Series, pd.Series]:
    """Baseline and follow-up columns, one entry per pupil (collapsing by id if given)."""
    _need(data, baseline, follow_up, id)
    if id is None:
        return data[baseline], data[follow_up]
    miss = data[id].isna().to_numpy()
    if miss.any():
        raise DataError(f"Column '{id}' (pupil id) is blank at {_rows(data.index, miss)}.")
    for col in (baseline, follow_up):
        have = data[col].notna()
        dup = (have & data[id].where(have).duplicated(keep=False) & have).to_numpy()
        if dup.any():
            raise DataError(
                f"Column '{col}': some pupils ('{id}') have more than one answer at this "
                f"timepoint, at {_rows(data.index, dup)}. Keep one per pupil per timepoint."
            )
    g = data.groupby(id, sort=True)[[baseline, follow_up]].first()
    return g[baseline], g[follow_up]


def _levels_codes(s: pd.Series, col: str, levels: list[str], index: pd.Index) -> np.ndarray:
    key = {str(v).strip().lower(): i for i, v in enumerate(levels)}
    txt = s.astype("string").str.strip().str.lower()
    codes = txt.map(key)
    bad = (s.notna() & codes.isna()).to_numpy()
    if bad.any():
        raise DataError(
            f"Column '{col}' has answers that are not one of the levels "
            f"{', '.join(map(str, levels))} at {_rows(index, bad)}. Correct the spelling or "
            "add the level."
        )
    return codes.to_numpy(dtype=float, na_value=np.nan)


#: What a single group's change in answers cannot show, in plain words.
_ONE_GROUP_ANSWERS = ("This is one group before and after, with no comparison group, so it "
                      "shows how answers changed, not what the work caused.")


def _bar_plot(labels: list[str], before: list[float], after: list[float], ylabel: str,
              ax: Any = None) -> Any:
    """Two bars per category: baseline and follow-up."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3))
    else:
        fig = ax.figure
    x = np.arange(len(labels))
    ax.bar(x - 0.2, before, width=0.4, color="0.7", label="baseline")
    ax.bar(x + 0.2, after, width=0.4, color="C0", label="follow-up")
    ax.set_xticks(x)
    ax.set_xticklabels(labels)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False)
    return fig


def _transition_board(table: pd.DataFrame, disclosure: Disclosure) -> pd.DataFrame:
    """A baseline x follow-up table with its totals, through ``disclosure``: each row adds
    up to its total and each column to the total row, so a withheld cell cannot be worked
    out by subtraction."""
    full = table.copy()
    full["Total"] = full.sum(axis=1)
    full.loc["Total"] = full.sum(axis=0)
    full = full.rename_axis(table.index.name).reset_index()
    full.columns.name = None
    cells = [c for c in full.columns if c != table.index.name]
    first = full.columns[0]
    full[first] = full[first].astype(str)
    return disclosure.table(full, cells, sums_down=True, sums_across=[cells])


@dataclass
class PairedOrdinal:
    """Result of :func:`paired_ordinal`: movement between ordered levels.

    Follows :class:`evaluation.results.AnalysisResult`. The headline is the share of pupils
    who changed level that moved up, with an exact (Clopper-Pearson) interval, against 1/2
    (as many up as down): the estimand of the sign test. ``design`` is :data:`SINGLE_GROUP`.
    """

    table: pd.DataFrame  # rows baseline level, columns follow-up level
    n_pairs: int
    n_baseline_only: int
    n_follow_up_only: int
    n_up: int
    n_same: int
    n_down: int
    sign_test_p: float
    wilcoxon_W: float
    wilcoxon_p: float
    sentence: str
    up_share: float = np.nan
    up_share_ci_low: float = np.nan
    up_share_ci_high: float = np.nan
    label: str = "answer"
    direction: Direction = "higher_is_better"
    confidence: float = 0.95
    disclosure: Disclosure = field(default_factory=Disclosure)
    min_pairs: int = MIN_PAIRS
    design: str = SINGLE_GROUP

    @property
    def summary(self) -> pd.DataFrame:
        """One row: the counts, the share moving up with its interval and the tests."""
        return pd.DataFrame([{
            "n_pairs": self.n_pairs, "n_baseline_only": self.n_baseline_only,
            "n_follow_up_only": self.n_follow_up_only, "n_up": self.n_up,
            "n_same": self.n_same, "n_down": self.n_down, "up_share": self.up_share,
            "up_share_ci_low": self.up_share_ci_low, "up_share_ci_high": self.up_share_ci_high,
            "sign_test_p": self.sign_test_p, "wilcoxon_W": self.wilcoxon_W,
            "wilcoxon_p": self.wilcoxon_p}])

    def headline(self) -> dict[str, Any]:
        """Share of movers who moved up, its interval, n, design and the verdict against 1/2."""
        lo, hi = self.up_share_ci_low, self.up_share_ci_high
        ok = np.isfinite(lo) and np.isfinite(hi)
        said = (TOO_FEW if self.n_pairs < self.min_pairs else
                verdict(lo if ok else None, hi if ok else None, null=0.5,
                        direction=self.direction, attributable=False))  # one group
        return {"estimate": self.up_share, "ci_low": lo, "ci_high": hi,
                "unit": "share of pupils who changed level that moved up", "null": 0.5,
                "n": self.n_pairs, "design": self.design, "verdict": said}

    def plot(self, ax: Any = None) -> Any:
        """Percentage of pupils at each level at baseline and at follow-up."""
        n = max(self.n_pairs, 1)
        return _bar_plot([str(v) for v in self.table.index],
                         list(100 * self.table.sum(axis=1) / n),
                         list(100 * self.table.sum(axis=0) / n), "% of pupils", ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the share of movers who moved up."""
        h = self.headline()
        label = self.label[:1].upper() + self.label[1:]
        text = (f"{label}: {format_figure(h['estimate'], h['unit'])} of pupils who changed "
                f"level moved up ({format_interval(h['ci_low'], h['ci_high'], h['unit'])})"
                if np.isfinite(h["estimate"])
                else f"{label}: no pupil changed level")
        return make_record(self, outcome, analysis="baseline_followup",
                           headline=f"{text}; {self.design}", period=period, n=n,
                           notebook=notebook)

    def board_table(self, disclosure: Disclosure | None = None) -> pd.DataFrame:
        """The transition table with totals through ``disclosure`` (default: the result's)."""
        return _transition_board(self.table, self.disclosure if disclosure is None
                                 else disclosure)


def _ordinal_sentence(r: PairedOrdinal) -> str:
    shown = r.disclosure
    n = r.n_pairs
    if r.n_pairs < r.min_pairs:
        return (f"Only {shown.pupils(n)} had both answers for {r.label}, fewer than the "
                f"{r.min_pairs} needed to judge a change, so no verdict is given.")
    if any(shown.is_small(k) for k in (r.n_up, r.n_same, r.n_down)):
        counts = ("the numbers moving up, staying and moving down are withheld to protect "
                  "pupils' privacy")
    else:
        counts = (f"{r.n_up} moved up at least one level, {r.n_same} stayed at the same level "
                  f"and {r.n_down} moved down")
    text = f"Of {shown.pupils(n)} with both answers for {r.label}, {counts}"
    if not r.n_up + r.n_down:
        return f"{text}; no pupil changed level."
    said = r.headline()["verdict"]
    if said == "no clear change" or counts.startswith("the numbers"):
        text += ("; among pupils who changed level, moves up and down were not clearly "
                 f"different in number (sign test p = {r.sign_test_p:.3f})."
                 if said == "no clear change" else
                 f"; more pupils moved {'up' if r.up_share > 0.5 else 'down'} than the other "
                 f"way (sign test p = {r.sign_test_p:.3f}).")
    else:
        pct = f"{r.confidence * 100:g}%"
        text += (f": of those who changed level, {r.up_share:.0%} moved up ({pct} CI "
                 f"{r.up_share_ci_low:.0%} to {r.up_share_ci_high:.0%}; sign test p = "
                 f"{r.sign_test_p:.3f}).")
    return f"{text} {_ONE_GROUP_ANSWERS}"


def paired_ordinal(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    levels: list[str],
    *,
    id: str | None = None,
    label: str | None = None,
    direction: Direction = "higher_is_better",
    confidence: float = 0.95,
    disclosure: Disclosure | None = None,
    min_pairs: int = MIN_PAIRS,
) -> PairedOrdinal:
    """Movement between ordered levels (e.g. Not evident < Developing < Secure).

    ``levels`` are given lowest first; answers match them ignoring case and spaces. Counts
    pupils moving up, down or staying; the sign test is the exact two-sided binomial test
    of n_up out of n_up + n_down against 1/2 (``scipy.stats.binomtest``), and the headline
    is its estimand, n_up / (n_up + n_down), with the exact Clopper-Pearson interval
    (``BinomTestResult.proportion_ci``); ``direction`` says whether a higher level is better
    (the default). The Wilcoxon signed-rank test is on the differences of level codes
    (0, 1, 2, ...), zero differences dropped (``zero_method="wilcox"``). All are NaN when no
    pupil moved. Fewer than ``min_pairs`` pupils: verdict :data:`TOO_FEW`. The sentence
    writes counts through ``disclosure`` (default: a board).
    """
    if not isinstance(levels, list | tuple) or len(levels) < 2:
        raise DataError("levels must list at least two ordered levels, lowest first.")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}.")
    direction = check_direction(direction)
    sb, sf = _pair_rows(data, baseline, follow_up, id)
    idx = data.index if id is None else sb.index
    cb = _levels_codes(sb, baseline, list(levels), idx)
    cf = _levels_codes(sf, follow_up, list(levels), idx)
    both, nb, nf = _counts(cb, cf)
    n = int(both.sum())
    if n < 2:
        raise DataError(f"Columns '{baseline}' and '{follow_up}': only {n} pupil(s) have both "
                        "answers; at least two pairs are needed.")
    xb, xf = cb[both].astype(int), cf[both].astype(int)
    k = len(levels)
    tab = np.bincount(xb * k + xf, minlength=k * k).reshape(k, k)
    table = pd.DataFrame(tab, index=pd.Index(list(levels), name=f"{baseline} (baseline)"),
                         columns=pd.Index(list(levels), name=f"{follow_up} (follow-up)"))
    d = xf - xb
    up, down = int((d > 0).sum()), int((d < 0).sum())
    same = n - up - down
    share = lo = hi = np.nan
    if up + down:
        test = stats.binomtest(up, up + down, 0.5)
        sign_p = float(test.pvalue)
        ci = test.proportion_ci(confidence_level=confidence, method="exact")
        share, lo, hi = up / (up + down), float(ci.low), float(ci.high)
        w = stats.wilcoxon(d, zero_method="wilcox")
        wW, wp = float(w.statistic), float(w.pvalue)
    else:
        sign_p = wW = wp = np.nan
    result = PairedOrdinal(
        table=table, n_pairs=n, n_baseline_only=nb, n_follow_up_only=nf, n_up=up,
        n_same=same, n_down=down, sign_test_p=sign_p, wilcoxon_W=wW, wilcoxon_p=wp,
        sentence="", up_share=share, up_share_ci_low=lo, up_share_ci_high=hi,
        label=label or baseline, direction=direction, confidence=confidence,
        disclosure=disclosure if disclosure is not None else Disclosure(),
        min_pairs=_check_min_pairs(min_pairs))
    result.sentence = _ordinal_sentence(result)
    return result


def _yes_no(s: pd.Series, col: str, index: pd.Index) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=float, na_value=np.nan)
    txt = s.astype("string").str.strip().str.lower()
    out = np.where(txt.isin(_YES).fillna(False).to_numpy(bool), 1.0,
                   np.where(txt.isin(_NO).fillna(False).to_numpy(bool), 0.0, np.nan))
    bad = s.notna().to_numpy() & np.isnan(out)
    if bad.any():
        raise DataError(f"Column '{col}' should hold yes/no answers but has other values at "
                        f"{_rows(index, bad)}. Use yes/no (or y/n, true/false, 1/0).")
    return out


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def newcombe_paired_ci(a: int, b: int, c: int, d: int,
                       confidence: float = 0.95) -> tuple[float, float]:
    """CI for p2 - p1 from a paired 2x2 table, Newcombe (1998) method 10.

    Table: a = yes/yes, b = yes at baseline only, c = yes at follow-up only, d = no/no;
    p1 = (a + b)/n, p2 = (a + c)/n. Wilson score limits (l1, u1), (l2, u2) are combined with
    phi = C/sqrt((a+b)(c+d)(a+c)(b+d)) (0 if the denominator is 0), where C = ad - bc - n/2
    if ad - bc > n/2, C = ad - bc if ad - bc < 0, else 0 (Newcombe's correction, as in
    Altman et al. 2000, Statistics with Confidence, p. 52):
    lower = D - sqrt((p2-l2)^2 - 2 phi (p2-l2)(u1-p1) + (u1-p1)^2),
    upper = D + sqrt((u2-p2)^2 - 2 phi (u2-p2)(p1-l1) + (p1-l1)^2), D = p2 - p1.
    Newcombe RG (1998) Improved confidence intervals for the difference between binomial
    proportions based on paired data. Stat Med 17:2635-2650.
    """
    n = a + b + c + d
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, z)
    l2, u2 = _wilson(a + c, n, z)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's corrected phi: ad - bc is reduced by n/2 when above n/2, 0 when between
    num = a * d - b * c
    num = num - n / 2 if num > n / 2 else (num if num < 0 else 0.0)
    phi = num / math.sqrt(den) if den > 0 else 0.0
    diff = p2 - p1
    lo = diff - math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)
                              + (u1 - p1) ** 2))
    hi = diff + math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1)
                              + (p1 - l1) ** 2))
    return max(-1.0, lo), min(1.0, hi)


@dataclass
class PairedBinary:
    """Result of :func:`paired_binary` (percentages are 0-100).

    Follows :class:`evaluation.results.AnalysisResult`. The headline is the change in the
    percentage answering yes (follow-up - baseline, percentage points) with its Newcombe
    interval, against 0; ``direction`` says whether "yes" is the better answer (the
    default). ``design`` is :data:`SINGLE_GROUP`.
    """

    table: pd.DataFrame  # rows baseline yes/no, columns follow-up yes/no
    n_pairs: int
    n_baseline_only: int
    n_follow_up_only: int
    pct_yes_baseline: float
    pct_yes_follow_up: float
    change_pp: float
    change_ci_low_pp: float
    change_ci_high_pp: float
    mcnemar_statistic: float
    mcnemar_p: float
    mcnemar_exact: bool
    sentence: str
    label: str = "answer"
    direction: Direction = "higher_is_better"
    confidence: float = 0.95
    disclosure: Disclosure = field(default_factory=Disclosure)
    min_pairs: int = MIN_PAIRS
    design: str = SINGLE_GROUP

    @property
    def summary(self) -> pd.DataFrame:
        """One row: the counts, % yes at each time, the change with its CI, McNemar."""
        return pd.DataFrame([{
            "n_pairs": self.n_pairs, "n_baseline_only": self.n_baseline_only,
            "n_follow_up_only": self.n_follow_up_only,
            "pct_yes_baseline": self.pct_yes_baseline,
            "pct_yes_follow_up": self.pct_yes_follow_up, "change_pp": self.change_pp,
            "change_ci_low_pp": self.change_ci_low_pp,
            "change_ci_high_pp": self.change_ci_high_pp,
            "mcnemar_statistic": self.mcnemar_statistic, "mcnemar_p": self.mcnemar_p,
            "mcnemar_exact": self.mcnemar_exact}])

    def headline(self) -> dict[str, Any]:
        """Change in % yes, its CI, n, design and the verdict against 0."""
        lo, hi = self.change_ci_low_pp, self.change_ci_high_pp
        said = (TOO_FEW if self.n_pairs < self.min_pairs else
                verdict(lo, hi, null=0.0, direction=self.direction, attributable=False))
        return {"estimate": self.change_pp, "ci_low": lo, "ci_high": hi,
                "unit": "percentage points (change in % answering yes)", "null": 0.0,
                "n": self.n_pairs, "design": self.design, "verdict": said}

    def plot(self, ax: Any = None) -> Any:
        """Percentage answering yes and no at baseline and at follow-up."""
        before, after = self.pct_yes_baseline, self.pct_yes_follow_up
        return _bar_plot(["yes", "no"], [before, 100 - before], [after, 100 - after],
                         "% of pupils", ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the change in % answering yes."""
        h = self.headline()
        label = self.label[:1].upper() + self.label[1:]
        return make_record(self, outcome, analysis="baseline_followup",
                           headline=(f"{label}: {format_figure(h['estimate'], h['unit'])} "
                                     "percentage points yes "
                                     f"({format_interval(h['ci_low'], h['ci_high'], h['unit'])}"
                                     f"); {self.design}"),
                           period=period, n=n, notebook=notebook)

    def board_table(self, disclosure: Disclosure | None = None) -> pd.DataFrame:
        """The 2 x 2 table with totals through ``disclosure`` (default: the result's)."""
        return _transition_board(self.table, self.disclosure if disclosure is None
                                 else disclosure)


def _binary_sentence(r: PairedBinary, a: int, b: int, c: int, d: int) -> str:
    """The change in % yes, or why it is not given."""
    shown = r.disclosure
    n = r.n_pairs
    if n < r.min_pairs:
        return (f"Only {shown.pupils(n)} had both answers for '{r.label}', fewer than the "
                f"{r.min_pairs} needed to judge a change, so no verdict is given.")
    # a percentage of a known n gives its count away: withhold them when a margin is small
    # (the cells themselves cannot be worked out from the two margins and the change)
    if any(shown.is_small(k) for k in (a + b, c + d, a + c, b + d)):
        return (f"Of {shown.pupils(n)} with both answers for '{r.label}', the numbers "
                "answering yes and no are withheld to protect pupils' privacy.")
    pct = f"{r.confidence * 100:g}%"
    return (f"The share of pupils with '{r.label}' went from {r.pct_yes_baseline:.0f}% to "
            f"{r.pct_yes_follow_up:.0f}% (n = {shown.count(n)}), a change of "
            f"{r.change_pp:+.0f} percentage points ({pct} CI {r.change_ci_low_pp:+.0f} to "
            f"{r.change_ci_high_pp:+.0f}; McNemar p = {r.mcnemar_p:.3f}). "
            f"{_ONE_GROUP_ANSWERS}")


def paired_binary(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    *,
    id: str | None = None,
    confidence: float = 0.95,
    label: str | None = None,
    direction: Direction = "higher_is_better",
    disclosure: Disclosure | None = None,
    min_pairs: int = MIN_PAIRS,
) -> PairedBinary:
    """Yes/no item asked at baseline and follow-up (e.g. "ready to learn").

    McNemar's test via ``statsmodels.stats.contingency_tables.mcnemar``: exact binomial when
    the discordant pairs b + c < 25, else the chi-square with continuity correction. The
    change in % yes (follow-up - baseline, percentage points) has a Newcombe (1998) method 10
    CI (see ``newcombe_paired_ci``). Answers: yes/no, y/n, true/false, 1/0 or booleans.
    ``direction``: "higher_is_better" when yes is the better answer. Fewer than
    ``min_pairs`` pupils: verdict :data:`TOO_FEW`. The sentence writes counts through
    ``disclosure`` (default: a board).
    """
    from statsmodels.stats.contingency_tables import mcnemar

    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}.")
    direction = check_direction(direction)
    sb, sf = _pair_rows(data, baseline, follow_up, id)
    idx = data.index if id is None else sb.index
    xb, xf = _yes_no(sb, baseline, idx), _yes_no(sf, follow_up, idx)
    both, nb, nf = _counts(xb, xf)
    n = int(both.sum())
    if n < 2:
        raise DataError(f"Columns '{baseline}' and '{follow_up}': only {n} pupil(s) have both "
                        "answers; at least two pairs are needed.")
    ib, jf = xb[both].astype(int), xf[both].astype(int)
    a = int(((ib == 1) & (jf == 1)).sum())
    b = int(((ib == 1) & (jf == 0)).sum())
    c = int(((ib == 0) & (jf == 1)).sum())
    d = n - a - b - c
    table = pd.DataFrame([[a, b], [c, d]],
                         index=pd.Index(["yes", "no"], name=f"{baseline} (baseline)"),
                         columns=pd.Index(["yes", "no"], name=f"{follow_up} (follow-up)"))
    exact = (b + c) < 25
    res = mcnemar(np.array([[a, b], [c, d]]), exact=exact, correction=True)
    lo, hi = newcombe_paired_ci(a, b, c, d, confidence)
    p1, p2 = 100 * (a + b) / n, 100 * (a + c) / n
    result = PairedBinary(
        table=table, n_pairs=n, n_baseline_only=nb, n_follow_up_only=nf, pct_yes_baseline=p1,
        pct_yes_follow_up=p2, change_pp=p2 - p1, change_ci_low_pp=100 * lo,
        change_ci_high_pp=100 * hi, mcnemar_statistic=float(res.statistic),
        mcnemar_p=float(res.pvalue), mcnemar_exact=exact, sentence="",
        label=label or follow_up, direction=direction, confidence=confidence,
        disclosure=disclosure if disclosure is not None else Disclosure(),
        min_pairs=_check_min_pairs(min_pairs))
    result.sentence = _binary_sentence(result, a, b, c, d)
    return result


# ---------------------------------------------------------------------------------------
# ANCOVA: programme versus comparison, adjusting for baseline


@dataclass
class Ancova:
    """Result of :func:`ancova`. ``model`` is the fitted statsmodels OLS results.

    Follows :class:`evaluation.results.AnalysisResult`; the headline is the adjusted
    difference (design :data:`COMPARISON`), with verdict :data:`TOO_FEW` when either group
    has fewer than ``min_pairs`` pupils with both scores (then g and months are NaN/None).
    ``eef_months``/``eef_label`` are None unless the measure is an attainment measure."""

    adjusted_difference: float
    ci_low: float
    ci_high: float
    p: float
    g: float
    g_ci_low: float
    g_ci_high: float
    eef_months: int | None
    eef_label: str | None
    n_treatment: int
    n_control: int
    n_excluded: int
    treatment: str
    control: str
    sentence: str
    model: Any
    direction: Direction = "higher_is_better"
    label: str = "score"
    confidence: float = 0.95
    min_pairs: int = MIN_PAIRS
    attainment: bool = False
    design: str = COMPARISON
    unit: str = "points"  # "percentage points" for a percentage measure (e.g. attendance)

    @property
    def summary(self) -> pd.DataFrame:
        """One row: the adjusted difference, its CI and p, Hedges' g and the group sizes
        (and EEF months for an attainment measure)."""
        row = {"treatment": self.treatment, "control": self.control,
               "adjusted_difference": self.adjusted_difference, "ci_low": self.ci_low,
               "ci_high": self.ci_high, "p": self.p, "g": self.g, "g_ci_low": self.g_ci_low,
               "g_ci_high": self.g_ci_high, "eef_months": self.eef_months,
               "eef_label": self.eef_label, "n_treatment": self.n_treatment,
               "n_control": self.n_control, "n_excluded": self.n_excluded}
        if not self.attainment:
            del row["eef_months"], row["eef_label"]
        return pd.DataFrame([row])

    def headline(self) -> dict[str, Any]:
        """The adjusted difference, its CI, both groups' pupils, the design and the verdict
        against 0."""
        few = min(self.n_treatment, self.n_control) < self.min_pairs
        return {"estimate": self.adjusted_difference, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "unit": f"{self.unit} (adjusted difference)",
                "null": 0.0,
                "n": self.n_treatment + self.n_control, "design": self.design,
                "verdict": TOO_FEW if few else verdict(self.ci_low, self.ci_high, null=0.0,
                                                       direction=self.direction)}

    def plot(self, ax: Any = None) -> Any:
        """The adjusted difference with its confidence interval."""
        frame = pd.DataFrame([{"group": f"{self.treatment} - {self.control}",
                               "d": self.adjusted_difference, "lo": self.ci_low,
                               "hi": self.ci_high}])
        return _change_plot(frame, "d", "lo", "hi", "group",
                            f"Adjusted difference in {self.label} (points)", ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the adjusted difference, with its design."""
        design = f"{self.design}, adjusted for baseline"
        text = (_too_few_text(self.label, self.min_pairs, design)
                if self.headline()["verdict"] == TOO_FEW else
                _headline_text(self.label, self.adjusted_difference, self.ci_low,
                               self.ci_high, design, self.unit))
        return make_record(self, outcome, analysis="baseline_followup", headline=text,
                           period=period, n=n, notebook=notebook)


def _ols_ci(res: Any, column: int, confidence: float) -> tuple[float, float]:
    lo, hi = res.conf_int(alpha=1 - confidence)[column]
    return float(lo), float(hi)


def ancova(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    group: str,
    *,
    treatment: str | None = None,
    confidence: float = 0.95,
    direction: Direction | None = None,
    label: str | None = None,
    measure: Measure | None = None,
    disclosure: Disclosure | None = None,
    min_pairs: int = MIN_PAIRS,
    attainment: bool | None = None,
) -> Ancova:
    """OLS ``follow_up ~ baseline + treated`` comparing two groups, adjusting for baseline.

    The adjusted difference is the coefficient of the treatment indicator, with its t-based
    CI and p. Hedges' g = adjusted difference / pooled SD of the follow-up outcome, where
    pooled SD = sqrt(((n1-1)s1^2 + (n0-1)s0^2)/(n1+n0-2)) (unconditional, as EEF guidance
    for evaluators uses), times J = 1 - 3/(4(n1+n0) - 9) (Hedges 1981); its CI is the CI of
    the adjusted difference scaled the same way. Months' additional progress (from g signed
    as improvement) only for an attainment measure (``attainment``, default the measure's
    registry flag). ``treatment`` defaults to "programme" when that level exists. Pupils
    missing any of the three columns are excluded and counted (``n_excluded``). Either group
    under ``min_pairs`` pupils with both scores: no effect size and verdict :data:`TOO_FEW`.
    The sentence writes the two groups' sizes through ``disclosure`` (default: a board).
    """
    import statsmodels.api as sm

    _need(data, baseline, follow_up, group)
    min_pairs = _check_min_pairs(min_pairs)
    attainment = _is_attainment(measure, attainment)
    direction = _direction(direction, measure)
    b = _numeric(data, baseline, measure)
    f = _numeric(data, follow_up, measure)
    gcol = data[group]
    keep = ~np.isnan(b) & ~np.isnan(f) & gcol.notna().to_numpy()
    levels = sorted(pd.unique(gcol[keep]).tolist(), key=str)
    if len(levels) != 2:
        raise DataError(f"Column '{group}' must have exactly two groups among complete rows; "
                        f"found {len(levels)}: {levels[:5]}.")
    if treatment is None:
        treatment = "programme" if "programme" in levels else None
        if treatment is None:
            raise DataError(f"Column '{group}': say which group is the treatment "
                            f"(treatment=...); groups are {levels}.")
    if treatment not in levels:
        raise DataError(f"treatment={treatment!r} is not a group in column '{group}' "
                        f"({levels}).")
    control = next(v for v in levels if v != treatment)
    treated = (gcol == treatment).to_numpy()
    n1, n0 = int((keep & treated).sum()), int((keep & ~treated).sum())
    if n1 < 2 or n0 < 2:
        raise DataError(f"Column '{group}': each group needs at least two pupils with both "
                        f"scores (got {treatment}: {n1}, {control}: {n0}).")
    y = f[keep]
    X = np.column_stack([np.ones(keep.sum()), b[keep], treated[keep].astype(float)])
    res = sm.OLS(y, X).fit()
    diff = float(res.params[2])
    lo, hi = _ols_ci(res, 2, confidence)
    y1, y0 = y[treated[keep]], y[~treated[keep]]
    sd_pooled = math.sqrt(((n1 - 1) * y1.var(ddof=1) + (n0 - 1) * y0.var(ddof=1))
                          / (n1 + n0 - 2))
    if not sd_pooled > 0:
        raise DataError(f"Column '{follow_up}' has the same score for every pupil; no effect "
                        "size can be computed.")
    few = min(n1, n0) < min_pairs
    j = 1 - 3 / (4 * (n1 + n0) - 9)
    g, glo, ghi = ((np.nan,) * 3 if few else
                   (diff / sd_pooled * j, lo / sd_pooled * j, hi / sd_pooled * j))
    months, mlabel = (eef_months(g if direction == "higher_is_better" else -g)
                      if attainment and not few else (None, None))
    label = label or (measure.label if measure is not None else f"{follow_up} score")
    said = verdict(lo, hi, null=0.0, direction=direction)
    pct = f"{confidence * 100:g}%"
    shown = disclosure if disclosure is not None else Disclosure()
    sizes = f"n = {shown.count(n1)} and {shown.count(n0)}"
    if few:
        sentence = (f"Only {shown.pupils(n1)} in the {treatment} group and "
                    f"{shown.pupils(n0)} in the {control} group had both scores for {label}; "
                    f"each group needs at least {min_pairs} to judge the difference, so no "
                    "verdict or effect size is given.")
    elif said == "no clear change":
        sentence = (f"After allowing for baseline scores, {treatment} pupils' {label} was not "
                    f"clearly different from {control} pupils' (adjusted difference "
                    f"{diff:+.1f}, {pct} CI {lo:.1f} to {hi:.1f}; Hedges' g = {g:.2f}; "
                    f"{sizes}).")
    else:
        better = said == "improved"
        tail = f", {_months_phrase(months, better, COMPARISON)}" if months is not None else ""
        sentence = (f"After allowing for baseline scores, {treatment} pupils' {label} was "
                    f"{'better' if better else 'worse'} than {control} pupils' by "
                    f"{abs(diff):.1f} points (Hedges' g = {g:.2f}, {pct} CI {glo:.2f} to "
                    f"{ghi:.2f}; {sizes}){tail}.")
    return Ancova(diff, lo, hi, float(res.pvalues[2]), g, glo, ghi, months, mlabel, n1, n0,
                  int((~keep).sum()), str(treatment), str(control), sentence, res,
                  direction=direction, label=label, confidence=confidence,
                  min_pairs=min_pairs, attainment=attainment,
                  unit="percentage points" if measure is not None
                  and measure.name.endswith("_pct") else "points")


# ---------------------------------------------------------------------------------------
# the headline's design: comparison group or single group, never changed silently


def _comparison_problem(data: pd.DataFrame, paired: np.ndarray, group: str, treatment: str,
                        control: str, disclosure: Disclosure | None) -> str:
    """Why the comparison group cannot be used ('' when it can)."""
    if group not in data.columns:
        return (f"the data have no '{group}' column, so no pupil has a group (the pupils "
                "table gives each pupil's group)")
    g = data[group]
    n = int(paired.sum())
    if n and g[paired].isna().all():
        return (f"none of the {n} pupils with both scores has a group: their scores did not "
                "match any pupil in the pupils table. Check that pupil ids are written the "
                "same way in both files (the same case and spacing)")
    n1 = int((paired & g.eq(treatment).to_numpy()).sum())
    n0 = int((paired & g.eq(control).to_numpy()).sum())
    for name, k in ((control, n0), (treatment, n1)):
        if k == 0:
            return (f"no pupil with both scores is in the '{name}' group of column "
                    f"'{group}': every pupil is in one group")
    if min(n1, n0) < 2:
        return (f"fewer than two pupils in the '{treatment if n1 < 2 else control}' group "
                "have both scores")
    if disclosure is not None and (disclosure.is_small(n1) or disclosure.is_small(n0)):
        return (f"fewer than {disclosure.threshold} pupils in one of the groups had both "
                "scores, too few to compare without risk of identifying them")
    return ""


def headline_change(
    data: pd.DataFrame,
    baseline: str = "baseline",
    follow_up: str = "follow_up",
    *,
    comparison: bool,
    group: str = "group",
    treatment: str = "programme",
    control: str = "comparison",
    allow_single_group: bool = False,
    id: str | None = None,
    direction: Direction | None = None,
    confidence: float = 0.95,
    label: str | None = None,
    measure: Measure | None = None,
    disclosure: Disclosure | None = None,
    min_pairs: int = MIN_PAIRS,
    attainment: bool | None = None,
    retest_range: tuple[float, float] | None = RETEST_RANGE,
) -> Ancova | PairedChange:
    """The outcome's headline in the design the parameters ask for (what notebook 10 and
    the verdict simulation test call).

    ``comparison=True``: :func:`ancova` of ``treatment`` against ``control`` pupils (column
    ``group``; pupils in neither group are left out, pupils without a group are counted as
    excluded). If the comparison group cannot be used (no ``group`` column, scores that did
    not join to pupils so no pupil has a group, no pupil with both scores in one of the two
    groups, fewer than two in one, or fewer than the disclosure threshold in one) this raises
    :class:`ComparisonUnavailable` naming what failed and what to do, unless
    ``allow_single_group=True``: then the result is the programme pupils' (or, when no
    pupil has a group, all pupils') :func:`paired_change`, whose headline and sentence say
    that the comparison group could not be used and why.

    ``comparison=False``: :func:`paired_change` of the ``treatment`` pupils when the data
    hold comparison pupils too, otherwise of all pupils. ``data`` has one row per pupil
    (or several rows with ``id``, for the single-group design only).

    A single-group headline is adjusted for regression to the mean
    (:func:`evaluation.rtm.rtm_adjust`, Barnett, van der Pols & Dobson 2005) when the
    ``measure``'s registry entry has a population mean and a test-retest correlation and at
    least ``min_pairs`` pupils have both scores: the adjusted change, with its interval
    widened over ``retest_range`` (default :data:`RETEST_RANGE`, the kit's sensitivity
    range, not a published one: the adjustment is very sensitive to the retest value; None:
    the registry value alone), supplies the estimate and the verdict. Without those inputs
    the headline is the plain change, whose verdict can only be "better/worse, cause
    unclear" (:func:`evaluation.results.verdict` with ``attributable=False``), and its
    sentence says the change may be regression to the mean or normal development.
    """
    _need(data, baseline, follow_up)
    paired = ~np.isnan(_numeric(data, baseline, measure)) & ~np.isnan(
        _numeric(data, follow_up, measure))
    common = dict(direction=direction, confidence=confidence, label=label, measure=measure,
                  disclosure=disclosure, min_pairs=min_pairs, attainment=attainment)
    has_group = group in data.columns
    programme = (data[data[group].eq(treatment).to_numpy()]
                 if has_group and data[group].eq(control).any() else data)
    if not comparison:
        return _with_rtm(paired_change(programme, baseline, follow_up, id=id, **common),
                         measure, retest_range, confidence)
    problem = _comparison_problem(data, paired, group, treatment, control, disclosure)
    if problem:
        if not allow_single_group:
            raise ComparisonUnavailable(
                f"The parameters ask for a comparison group (comparison: true), but it cannot "
                f"be used: {problem}. Correct the data, or set comparison: false to report "
                "the programme pupils' before-after change (a weaker design), or allow that "
                "fallback explicitly (allow_single_group) so the report says so.")
        if has_group and data[group].eq(treatment).any():
            programme = data[data[group].eq(treatment).to_numpy()]
        return _with_rtm(paired_change(programme, baseline, follow_up, id=id,
                                       comparison_note=problem, **common),
                         measure, retest_range, confidence)
    if id is not None and data[id].duplicated().any():
        raise DataError(f"Column '{id}': the comparison needs one row per pupil; some pupils "
                        "have several rows. Make the table wide first (scores_to_wide).")
    both = data[data[group].isin([treatment, control]).to_numpy() | data[group].isna()
                .to_numpy()]
    return ancova(both, baseline, follow_up, group, treatment=treatment, **common)


def _with_rtm(result: PairedChange, measure: Measure | None,
              retest_range: tuple[float, float] | None, confidence: float) -> PairedChange:
    """``result`` adjusted for regression to the mean where the measure allows it."""
    from evaluation.rtm import rtm_adjust, rtm_inputs_missing

    if measure is None or rtm_inputs_missing(measure):
        return result
    if int(result._all()["n_pairs"]) < result.min_pairs:
        return result  # too few to judge: no verdict to adjust
    rho = float(measure.retest)  # type: ignore[arg-type]
    if retest_range is not None and not retest_range[0] <= rho <= retest_range[1]:
        raise DataError(
            f"The registry's test-retest correlation of {measure.name} ({rho:g}) lies outside "
            f"retest_range ({retest_range[0]:g} to {retest_range[1]:g}). Set retest_range "
            "under analyses.baseline_followup to a range that includes it.")
    pairs = result.pairs[result.pairs["status"] == "paired"]
    adjustment = rtm_adjust(pairs["baseline"], pairs["follow_up"], measure=measure,
                            retest_range=retest_range, direction=result.direction,
                            label=result.label, confidence=confidence)
    return result.with_rtm(adjustment)


# ---------------------------------------------------------------------------------------
# subgroups as effect modification

#: The plain caution every subgroup table carries.
SUBGROUP_CAUTION = (
    "Subgroup results are exploratory. Several groups are compared, so some differences "
    "appear by chance alone, and one group's figure does not show that the work helps that "
    "group more or less than others. The test of whether the result differs between the "
    "groups of a characteristic (allowing for how many characteristics were compared) is "
    "the better guide, and even a clear difference should be confirmed before acting on it.")

_SUBGROUP_P_COLS = ["p", "interaction_F", "interaction_df_num", "interaction_df_den",
                    "interaction_p", "interaction_p_holm"]


@dataclass
class Subgroups:
    """Result of :func:`subgroup_effects`: estimates per subgroup and effect modification.

    ``summary`` (for researchers): one row per (characteristic, level) with ``n`` (programme
    pupils with both scores), ``n_comparison`` (comparison design only), ``estimate``,
    ``ci_low``, ``ci_high``, ``p``, the characteristic's interaction test
    (``interaction_F``, its degrees of freedom, ``interaction_p`` and ``interaction_p_holm``,
    Holm-adjusted over the characteristics) and ``note``. :meth:`board_table` is what a
    board sees: no p-value column, counts through the disclosure step. ``sentence`` is the
    caution and one plain finding per characteristic.
    """

    summary: pd.DataFrame
    totals: dict[str, int]
    findings: dict[str, str]
    design: str
    label: str
    unit: str
    confidence: float
    min_pairs: int
    disclosure: Disclosure = field(default_factory=Disclosure)
    caution: str = SUBGROUP_CAUTION

    @property
    def sentence(self) -> str:
        return " ".join([self.caution, *self.findings.values()])

    def board_table(self, disclosure: Disclosure | None = None) -> pd.DataFrame:
        """The estimates without p-values, through ``disclosure`` (default: the result's).

        The levels of each characteristic add up to all pupils with both scores (shown in
        the headline), so that total joins each characteristic's block while the disclosure
        step runs, and a withheld level cannot be worked out by subtraction."""
        shown = self.disclosure if disclosure is None else disclosure
        counts = [c for c in ("n", "n_comparison") if c in self.summary]
        table = self.summary.drop(columns=_SUBGROUP_P_COLS)
        totals = pd.DataFrame([{"characteristic": c, "level": "All", "_total": True,
                                **{k: self.totals[k] for k in counts}}
                               for c in table["characteristic"].unique()])
        table = pd.concat([table.assign(_total=False), totals], ignore_index=True)
        derived = [c for c in ("estimate", "ci_low", "ci_high", "note") if c in table]
        out = shown.table(table, counts, derived={c: derived for c in counts},
                          sums_down="characteristic")
        return out[~out["_total"].astype(bool)].drop(columns="_total").reset_index(drop=True)

    def plot(self, ax: Any = None) -> Any:
        """Each subgroup's estimate with its interval."""
        rows = self.summary.dropna(subset=["estimate"]).copy()
        rows["row"] = rows["characteristic"].astype(str) + ": " + rows["level"].astype(str)
        what = "Adjusted difference" if self.design == COMPARISON else "Mean change"
        return _change_plot(rows, "estimate", "ci_low", "ci_high", "row",
                            f"{what} in {self.label} ({self.unit})", ax)

    def _repr_html_(self) -> str:
        return repr_html(self)


def _levels(values: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Level codes (-1 = missing) and the level names, "Missing" last when present."""
    try:
        codes, uniq = pd.factorize(values, sort=True)
    except TypeError:  # mixed types cannot be sorted: sort their text
        codes, uniq = pd.factorize(values.astype("string"), sort=True)
    names = list(uniq)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(names), codes)
        names.append("Missing")
    return codes, names


def _interaction_test(full: Any, reduced: Any) -> tuple[float, float, float, float]:
    """F, numerator df, denominator df and p of ``full`` against the nested ``reduced``."""
    fval, pval, df_num = full.compare_f_test(reduced)
    return float(fval), float(df_num), float(full.df_resid), float(pval)


def subgroup_effects(
    data: pd.DataFrame,
    characteristics: list[str],
    baseline: str = "baseline",
    follow_up: str = "follow_up",
    *,
    design: str = SINGLE_GROUP,
    group: str = "group",
    treatment: str = "programme",
    control: str = "comparison",
    confidence: float = 0.95,
    label: str | None = None,
    measure: Measure | None = None,
    disclosure: Disclosure | None = None,
    min_pairs: int = MIN_PAIRS,
    names: dict[str, str] | None = None,
    rtm: Any = None,
) -> Subgroups:
    """Estimates per subgroup, adjusted like the headline, and a test of effect modification.

    ``data``: one row per pupil. ``design`` is the headline's (``result.design``):

    * :data:`SINGLE_GROUP`: per level, the mean change with its paired t interval (as
      :func:`paired_change` computes it for that level alone); the test of whether the
      change differs between the levels is the F-test of ``change ~ C(level)`` against
      ``change ~ 1`` by OLS (the one-way ANOVA of the changes).
    * :data:`COMPARISON`: the headline's ANCOVA with the characteristic as effect modifier,
      ``follow_up ~ baseline + C(level) + treated + treated:C(level)`` by OLS
      (``statsmodels``); a level's estimate is its adjusted programme-minus-comparison
      difference (the treated coefficient plus that level's interaction, by
      ``OLSResults.t_test``), and the test is the F-test of the interaction terms
      (``compare_f_test`` against the model without them). Levels without two pupils in
      each group are left out of the model (they are below ``min_pairs`` anyway).

    * :data:`SINGLE_GROUP` with ``rtm`` (the headline's
      :class:`evaluation.rtm.RTMAdjustment`, i.e. ``result.rtm``): adjusted like the
      headline, each level's estimate and interval are :func:`evaluation.rtm.rtm_adjust` of
      that level's pupils with the headline's population mean, retest correlation and
      ``retest_range``; its p and the test of effect modification use the adjusted changes
      ``e = (follow_up - baseline) + (1 - retest)(baseline - population_mean)`` at the
      registry's retest value.

    Pupils with a missing characteristic form the level "Missing". A level with fewer than
    ``min_pairs`` pupils with both scores (in either group) gets no estimate. The
    interaction p-values are Holm-adjusted over ``characteristics``
    (``statsmodels.stats.multitest.multipletests``); the findings call a difference clear
    only when the adjusted p is below 1 - ``confidence``. ``names`` gives characteristics'
    display names.
    """
    import statsmodels.api as sm
    from statsmodels.stats.multitest import multipletests

    if design not in (SINGLE_GROUP, COMPARISON):
        raise DataError(f"design must be {SINGLE_GROUP!r} or {COMPARISON!r}, got {design!r}.")
    min_pairs = _check_min_pairs(min_pairs)
    names = names or {}
    _need(data, baseline, follow_up, *characteristics,
          *([group] if design == COMPARISON else []))
    b = _numeric(data, baseline, measure)
    f = _numeric(data, follow_up, measure)
    keep = ~np.isnan(b) & ~np.isnan(f)
    if design == COMPARISON:
        keep &= data[group].isin([treatment, control]).to_numpy()
        treated = data[group].eq(treatment).to_numpy()[keep].astype(float)
    rows = data[keep]
    b, f = b[keep], f[keep]
    alpha = 1 - confidence
    totals = ({"n": int(treated.sum()), "n_comparison": int((1 - treated).sum())}
              if design == COMPARISON else {"n": int(keep.sum())})
    out: list[dict[str, Any]] = []
    tests: dict[str, tuple[float, float, float, float]] = {}
    reasons: dict[str, str] = {}
    for column in characteristics:
        codes, levels = _levels(rows[column])
        nan4 = (np.nan,) * 4
        if design == SINGLE_GROUP:
            change = f - b
            if rtm is not None:  # the change beyond what regression to the mean predicts
                change = change + (1 - rtm.retest) * (b - rtm.population_mean)
            usable = [k for k in range(len(levels)) if (codes == k).sum() >= 2]
            for k, level in enumerate(levels):
                sel = codes == k
                n = int(sel.sum())
                row = {"characteristic": column, "level": level, "n": n, "estimate": np.nan,
                       "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "note": ""}
                if n < min_pairs:
                    row["note"] = f"fewer than {min_pairs} pupils: no estimate"
                elif not np.ptp(change[sel]) > 0:
                    row["note"] = "every pupil changed by the same amount"
                else:
                    tt = stats.ttest_1samp(change[sel], 0.0)
                    ci = tt.confidence_interval(confidence)
                    row.update(estimate=float(change[sel].mean()), ci_low=float(ci.low),
                               ci_high=float(ci.high), p=float(tt.pvalue))
                    if rtm is not None:  # the interval over the headline's retest range
                        from evaluation.rtm import rtm_adjust

                        adj = rtm_adjust(b[sel], f[sel], population_mean=rtm.population_mean,
                                         retest=rtm.retest, retest_range=rtm.retest_range,
                                         confidence=confidence)
                        row.update(estimate=adj.adjusted_change, ci_low=adj.ci_low,
                                   ci_high=adj.ci_high)
                out.append(row)
            if len(usable) >= 2:
                sel = np.isin(codes, usable)
                dummies = np.column_stack([(codes[sel] == k).astype(float) for k in usable[1:]])
                X = sm.add_constant(dummies, has_constant="add")
                full = sm.OLS(change[sel], X).fit()
                reduced = sm.OLS(change[sel], np.ones((sel.sum(), 1))).fit()
                tests[column] = _interaction_test(full, reduced)
            else:
                tests[column] = nan4
                reasons[column] = "fewer than two groups with at least two pupils"
            continue
        n1 = np.bincount(codes, weights=treated, minlength=len(levels)).astype(int)
        n0 = np.bincount(codes, weights=1 - treated, minlength=len(levels)).astype(int)
        usable = [k for k in range(len(levels)) if n1[k] >= 2 and n0[k] >= 2]
        estimates: dict[int, tuple[float, float, float, float]] = {}
        if usable:
            sel = np.isin(codes, usable)
            lv = [(codes[sel] == k).astype(float) for k in usable[1:]]
            t = treated[sel]
            base = [np.ones(sel.sum()), b[sel], *lv, t]
            X_full = np.column_stack(base + [t * d for d in lv])
            full = sm.OLS(f[sel], X_full).fit()
            if len(usable) >= 2:
                reduced = sm.OLS(f[sel], np.column_stack(base)).fit()
                tests[column] = _interaction_test(full, reduced)
            else:
                tests[column] = nan4
                reasons[column] = "fewer than two groups with two pupils in each arm"
            width = X_full.shape[1]
            t_at = 2 + len(lv)  # column of the treated indicator
            for j, k in enumerate(usable):
                contrast = np.zeros(width)
                contrast[t_at] = 1.0
                if j > 0:
                    contrast[t_at + j] = 1.0  # that level's interaction
                res = full.t_test(contrast)
                lo, hi = (float(v) for v in np.asarray(res.conf_int(alpha=alpha)).ravel())
                estimates[k] = (float(np.squeeze(res.effect)), lo, hi,
                                float(np.squeeze(res.pvalue)))
        else:
            tests[column] = nan4
            reasons[column] = "no group has two pupils in each arm"
        for k, level in enumerate(levels):
            row = {"characteristic": column, "level": level, "n": int(n1[k]),
                   "n_comparison": int(n0[k]), "estimate": np.nan, "ci_low": np.nan,
                   "ci_high": np.nan, "p": np.nan, "note": ""}
            if min(n1[k], n0[k]) < min_pairs:
                row["note"] = f"fewer than {min_pairs} pupils in a group: no estimate"
            elif k in estimates:
                row.update(zip(("estimate", "ci_low", "ci_high", "p"), estimates[k],
                               strict=True))
            out.append(row)
    summary = pd.DataFrame(out)
    test_cols = ["interaction_F", "interaction_df_num", "interaction_df_den", "interaction_p"]
    for i, c in enumerate(test_cols):
        summary[c] = summary["characteristic"].map({k: v[i] for k, v in tests.items()})
    ps = {c: v[3] for c, v in tests.items() if np.isfinite(v[3])}
    holm = dict(zip(ps, multipletests(list(ps.values()), method="holm")[1], strict=True)) \
        if ps else {}
    summary["interaction_p_holm"] = summary["characteristic"].map(holm).astype(float)
    label = label or (measure.label if measure is not None else f"{baseline} score")
    what = ("the difference between programme and comparison pupils"
            if design == COMPARISON else "the change")
    findings = {}
    for column in characteristics:
        name = names.get(column, column)
        if column not in holm:
            findings[column] = (f"Whether {what} differs by {name} could not be tested "
                                f"({reasons.get(column) or 'too few pupils'}).")
        elif holm[column] < alpha:
            findings[column] = (f"{what[:1].upper() + what[1:]} appears to differ by {name}; "
                                "treat this as a question for further work, not a finding.")
        else:
            findings[column] = f"There is no clear evidence that {what} differs by {name}."
    unit = "percentage points" if measure is not None and measure.name.endswith("_pct") \
        else "points"
    if design == SINGLE_GROUP and rtm is not None:
        what_unit = f"{unit}, allowing for regression to the mean"
    else:
        what_unit = unit
    return Subgroups(summary=summary, totals=totals, findings=findings, design=design,
                     label=label, unit=what_unit, confidence=confidence, min_pairs=min_pairs,
                     disclosure=disclosure if disclosure is not None else Disclosure())


# ---------------------------------------------------------------------------------------
# long scores table -> wide


def scores_to_wide(scores: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Turn the kit's ``scores`` table (pupil_id, measure, timepoint, score) into one row per
    pupil with ``baseline`` and ``follow_up`` columns for one measure.

    A pupil with two scores at one timepoint raises DataError naming the rows.
    """
    _need(scores, "pupil_id", "measure", "timepoint", "score")
    sel = scores[scores["measure"] == measure]
    if sel.empty:
        raise DataError(f"Column 'measure': no rows for measure '{measure}'.")
    tp = sel["timepoint"].astype("string").str.strip().str.lower()
    bad = ~tp.isin(["baseline", "follow_up"]).fillna(False).to_numpy(bool)
    if bad.any():
        raise DataError(f"Column 'timepoint' must be 'baseline' or 'follow_up'; see "
                        f"{_rows(scores.index, scores.index.isin(sel.index[bad]))}.")
    key = pd.DataFrame({"pupil_id": sel["pupil_id"].to_numpy(), "timepoint": tp.to_numpy()})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataError(
            f"Column 'pupil_id': some pupils have two '{measure}' scores at one timepoint, at "
            f"{_rows(scores.index, scores.index.isin(sel.index[dup]))}. Keep one per timepoint."
        )
    score = _numeric(sel, "score")
    wide = (pd.DataFrame({"pupil_id": key["pupil_id"], "timepoint": key["timepoint"],
                          "score": score})
            .pivot(index="pupil_id", columns="timepoint", values="score")
            .reindex(columns=["baseline", "follow_up"]).reset_index())
    wide.columns.name = None
    return wide
