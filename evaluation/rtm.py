"""Regression to the mean (RTM) for a single group measured before and after.

Pupils are often chosen because their scores were extreme (a high SDQ, low wellbeing). On
retest such scores move back towards the population average even if nothing is done, so a
single-group before-after change overstates what the work achieved. Following Barnett, van
der Pols & Dobson (2005, Int J Epidemiol 34:215-220), this module gives the change that
regression to the mean alone would produce and the change left once it is allowed for.

The model (Barnett et al. 2005)
-------------------------------
Baseline ``X`` and follow-up ``Y`` are bivariate normal with the same population mean
``mu`` and SD ``sigma`` at both times and correlation ``rho`` (the test-retest correlation
over the follow-up interval), with no effect of the work. Then ``E[Y | X = x] = mu + rho (x -
mu)``, so whatever selection was made on the baseline:

* **Observed-baseline form** (used for the adjustment): the expected change of a group with
  baseline mean ``xbar`` is ``-(1 - rho) (xbar - mu)``; it needs ``mu`` and ``rho`` only.
  :func:`expected_rtm_from_mean`.
* **Cut-off form** (Barnett et al. 2005, equation 1): for everyone above a cut-off ``c``
  the expected change is ``-sigma (1 - rho) C(z)`` with ``z = (c - mu) / sigma`` and
  ``C(z) = phi(z) / (1 - Phi(z))`` (the inverse Mills ratio); below a cut-off, ``+sigma (1 -
  rho) C(z')`` with ``z' = (mu - c) / sigma``. It is the observed-baseline form averaged over
  the selected population (``E[X | X > c] = mu + sigma C(z)``). :func:`expected_rtm_cutoff`.

The adjustment and its interval
-------------------------------
For each pupil, ``e_i = (y_i - x_i) + (1 - rho)(x_i - mu) = y_i - mu - rho (x_i - mu)``: the
follow-up minus what regression to the mean predicts. The adjusted change is the mean of
``e_i``; under the model with no effect the ``e_i`` are, given the baselines, independent
normal with mean 0 and SD ``sigma sqrt(1 - rho^2)``, so the t interval of their mean (n - 1
degrees of freedom, the observed SD) has the stated coverage whatever rule chose the pupils,
without needing ``sigma`` or the cut-off. This is written by hand (a one-sample t interval
of a derived quantity) because no library offers the Barnett adjustment; the tests check it
against statsmodels OLS with an offset and against simulation.

Uncertainty in ``mu`` and ``rho`` is not propagated: they are treated as known population
values. ``mu`` comes from a large survey (for the teacher SDQ, 8,208 children), so its
sampling error is negligible next to a project's; ``rho`` is the weaker input, so
``retest_range=(low, high)`` gives a sensitivity interval instead: the union of the
intervals for every ``rho`` in the range (a grid of 41 values), which is what the verdict
then uses. A report's headline uses the kit's sensitivity range
(:data:`evaluation.baseline_followup.RETEST_RANGE`, 0.5 to 0.75 around the SDQ stand-in
0.62; the kit's own choice, not a published range; ``retest_range`` in the options).
What the adjustment does not cover: a school population whose own mean differs
from the national norm, scores far from normal, and change that would have happened anyway
(normal development, other help); only a comparison group covers those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.errors import DataError
from evaluation.measures import Measure
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
    "RTMAdjustment",
    "expected_rtm_cutoff",
    "expected_rtm_from_mean",
    "rtm_adjust",
    "rtm_inputs_missing",
]

Selected = Literal["above", "below"]
_GRID = 41  # retest values tried across retest_range


def _check_retest(rho: float, name: str = "retest") -> float:
    rho = float(rho)
    if not (math.isfinite(rho) and 0 < rho < 1):
        raise DataError(f"{name} must be a test-retest correlation between 0 and 1 (exclusive), "
                        f"got {rho}.")
    return rho


def expected_rtm_cutoff(population_mean: float, population_sd: float, retest: float,
                        cutoff: float, selected: Selected = "above") -> float:
    """Expected change (follow-up minus baseline) from RTM alone for everyone beyond a cut-off.

    Barnett, van der Pols & Dobson (2005) equation 1 with one baseline measurement:
    ``sigma (1 - rho) C(z)``, ``C(z) = phi(z) / (1 - Phi(z))``, ``z = (c - mu) / sigma``
    for selection at or above ``cutoff`` (returned negative: scores fall), and ``z = (mu -
    c) / sigma`` for selection at or below it (returned positive: scores rise).
    """
    rho = _check_retest(retest)
    if not population_sd > 0:
        raise DataError(f"population_sd must be positive, got {population_sd}.")
    if selected not in ("above", "below"):
        raise DataError(f"selected must be 'above' or 'below', got {selected!r}.")
    sign = 1.0 if selected == "above" else -1.0
    z = sign * (cutoff - population_mean) / population_sd
    # phi/(1 - Phi) through logs, so a cut-off far in the tail does not divide 0 by 0
    mills = math.exp(stats.norm.logpdf(z) - stats.norm.logsf(z))
    return -sign * population_sd * (1 - rho) * mills


def expected_rtm_from_mean(baseline_mean: float, population_mean: float,
                           retest: float) -> float:
    """Expected change from RTM alone for a group with this baseline mean: -(1 - rho)(xbar - mu)."""
    rho = _check_retest(retest)
    return -(1 - rho) * (float(baseline_mean) - float(population_mean))


def rtm_inputs_missing(measure: Measure) -> list[str]:
    """The registry fields the adjustment needs that ``measure`` lacks (empty: ready).

    ``population_mean`` and ``retest`` are needed; ``population_sd`` only for the cut-off
    form, so it is not listed here.
    """
    return [k for k in ("population_mean", "retest") if getattr(measure, k) is None]


@dataclass(frozen=True)
class RTMAdjustment:
    """A single-group change with regression to the mean allowed for (:func:`rtm_adjust`).

    Follows :class:`evaluation.results.AnalysisResult`. Changes are follow-up minus
    baseline, in score points. ``expected_rtm`` is the change RTM alone would give this
    group (observed-baseline form); ``expected_rtm_at_cutoff`` the Barnett cut-off form for
    everyone beyond ``cutoff`` (when a cut-off and ``population_sd`` are known; shown for
    comparison, not used for the interval). ``adjusted_change`` = observed change minus
    ``expected_rtm``; its interval is ``ci_low`` to ``ci_high`` (widened over
    ``retest_range`` when one is given).
    """

    n: int
    baseline_mean: float
    follow_up_mean: float
    observed_change: float
    observed_ci_low: float
    observed_ci_high: float
    expected_rtm: float
    adjusted_change: float
    ci_low: float
    ci_high: float
    population_mean: float
    retest: float
    direction: Direction
    label: str
    confidence: float = 0.95
    retest_range: tuple[float, float] | None = None
    retest_interval: str | None = None
    cutoff: float | None = None
    selected: Selected | None = None
    population_sd: float | None = None
    expected_rtm_at_cutoff: float | None = None
    unit: str = "points"

    @property
    def verdict(self) -> str:
        """:func:`evaluation.results.verdict` of the adjusted interval against no change."""
        return verdict(self.ci_low, self.ci_high, null=0.0, direction=self.direction)

    @property
    def unadjusted_verdict(self) -> str:
        """The verdict the plain before-after interval would give (for comparison only)."""
        return verdict(self.observed_ci_low, self.observed_ci_high, null=0.0,
                       direction=self.direction)

    def headline(self) -> dict[str, Any]:
        """The adjusted change, its CI, unit, n and verdict."""
        return {
            "estimate": self.adjusted_change, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "unit": f"{self.unit} (change allowing for regression to the mean)", "null": 0.0,
            "n": self.n, "verdict": self.verdict,
        }

    @property
    def summary(self) -> pd.DataFrame:
        """Observed change, the part expected from RTM, and the adjusted change."""
        return pd.DataFrame({
            "quantity": ["observed change", "expected from regression to the mean",
                         "change allowing for regression to the mean"],
            "estimate": [self.observed_change, self.expected_rtm, self.adjusted_change],
            "ci_low": [self.observed_ci_low, np.nan, self.ci_low],
            "ci_high": [self.observed_ci_high, np.nan, self.ci_high],
            "n": [self.n] * 3,
        })

    @property
    def sentence(self) -> str:
        """The plain-English result (group means only; no pupil's score)."""
        pct = f"{self.confidence * 100:g}%"
        high = self.baseline_mean >= self.population_mean
        move = "fall" if high else "rise"
        if self.cutoff is not None and self.selected is not None:
            first = (f"Pupils were chosen because their {self.label} scores were "
                     f"{'high' if self.selected == 'above' else 'low'} "
                     f"({'at or above' if self.selected == 'above' else 'at or below'} "
                     f"{self.cutoff:g}); such scores tend to {move} on retest even without "
                     "help.")
        else:
            first = (f"These pupils' {self.label} scores started "
                     f"{'above' if high else 'below'} the average for children generally "
                     f"({self.baseline_mean:.1f} against {self.population_mean:g}); such "
                     f"scores tend to {move} on retest even without help.")
        basis = f"a test-retest correlation of {self.retest:g}"
        if self.retest_interval:
            basis += f" over {self.retest_interval}"
        if self.retest_range is not None:
            basis += (f", with the interval allowing for any correlation from "
                      f"{self.retest_range[0]:g} to {self.retest_range[1]:g}")
        v = self.verdict
        tail = {
            "improved": "better than regression to the mean alone would explain",
            "worsened": "worse than regression to the mean alone would give",
            "no clear change": "not clearly different from what regression to the mean alone "
                               "would give",
        }[v]
        change = format_figure(self.adjusted_change, "points")
        interval = format_interval(self.ci_low, self.ci_high, "points")
        return (f"{first} Allowing for that (expected {move} {abs(self.expected_rtm):.1f} "
                f"{self.unit}, from {basis}), the change is {change} {self.unit} ({pct} CI "
                f"{interval}): {tail}. "
                "Without a comparison group this does not show that the work caused the "
                "change: normal development or other help may also have changed the scores.")

    def headline_text(self) -> str:
        """A short headline: the adjusted change with its interval."""
        pct = f"{self.confidence * 100:g}%"
        return (f"{self.label}: {format_figure(self.adjusted_change, 'points')} {self.unit} "
                f"allowing for regression to the mean ({pct} CI "
                f"{format_interval(self.ci_low, self.ci_high, 'points')})")

    def plot(self, ax: Any = None) -> Any:
        """Observed change, expected RTM change and adjusted change, with intervals."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 2.6))
        else:
            fig = ax.figure
        s = self.summary
        y = np.arange(len(s))[::-1]
        lo = (s["estimate"] - s["ci_low"]).fillna(0.0)
        hi = (s["ci_high"] - s["estimate"]).fillna(0.0)
        ax.errorbar(s["estimate"], y, xerr=[lo, hi], fmt="o", color="C0")
        ax.axvline(0, color="0.5", ls=":")
        ax.set_yticks(y)
        ax.set_yticklabels(list(s["quantity"]))
        ax.set_xlabel(f"Change in {self.label} ({self.unit})")
        return fig

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None, n: int | None = None,
               notebook: str = "", analysis: str = "baseline_followup") -> Result:
        """The results.json record of the adjusted change."""
        return make_record(self, outcome, analysis=analysis, headline=self.headline_text(),
                           period=period, n=n, notebook=notebook)


def _as_float(values: Any, what: str) -> np.ndarray:
    try:
        x = pd.to_numeric(pd.Series(np.asarray(values, dtype=object).ravel()),
                          errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"The {what} scores must be numbers (blank where missing).") from None
    return x


def _t_interval(e: np.ndarray, confidence: float,
                t_crit: float | None = None) -> tuple[float, float, float]:
    n = e.size
    m = float(e.mean())
    se = float(e.std(ddof=1)) / math.sqrt(n)
    if t_crit is None:
        t_crit = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1))
    half = t_crit * se
    return m, m - half, m + half


def rtm_adjust(
    baseline: Any,
    follow_up: Any,
    *,
    measure: Measure | None = None,
    population_mean: float | None = None,
    retest: float | None = None,
    retest_interval: str | None = None,
    retest_range: tuple[float, float] | None = None,
    population_sd: float | None = None,
    cutoff: float | None = None,
    selected: Selected | None = None,
    direction: Direction | None = None,
    label: str | None = None,
    confidence: float = 0.95,
) -> RTMAdjustment:
    """The before-after change of one group with regression to the mean allowed for.

    ``baseline`` and ``follow_up`` are the pupils' scores in the same order (arrays or
    Series; pairs with a missing score are left out). ``measure`` supplies
    ``population_mean``, ``retest`` (with ``retest_interval``), ``population_sd``,
    ``direction`` and ``label`` where they are not given. ``cutoff`` with ``selected``
    ("above": chosen for scores at or above the cut-off; "below": at or below) adds the
    Barnett cut-off form for comparison and the "Pupils were chosen because..." wording;
    the adjustment itself uses the pupils' observed baselines (see the module docstring
    for the formulas and the interval). ``retest_range=(low, high)`` widens the interval
    to cover every retest correlation in that range.

    Raises DataError when the population mean or retest correlation is unknown (name the
    missing registry field), or fewer than 3 complete pairs remain.
    """
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}.")
    if measure is not None:
        population_mean = measure.population_mean if population_mean is None else population_mean
        if retest is None:
            retest, retest_interval = measure.retest, measure.retest_interval
        population_sd = measure.population_sd if population_sd is None else population_sd
        direction = direction_of(measure.higher_is_better) if direction is None else direction
        label = measure.label if label is None else label
    missing = [k for k, v in (("population_mean", population_mean), ("retest", retest))
               if v is None]
    if missing:
        where = f"measure '{measure.name}'" if measure is not None else "this outcome"
        raise DataError(
            f"Regression to the mean cannot be allowed for: {where} has no "
            f"{' and no '.join(missing)} (the registry has no citable value). Give "
            "population_mean= and retest= from a published source (e.g. in the project's "
            "extra measures, with their sources), or use a comparison group.")
    rho = _check_retest(retest)
    mu = float(population_mean)
    direction = check_direction(direction if direction is not None else "higher_is_better")
    if retest_range is not None:
        lo_r, hi_r = (_check_retest(v, "retest_range") for v in retest_range)
        if not lo_r <= rho <= hi_r:
            raise DataError(f"retest ({rho:g}) must lie within retest_range ({lo_r:g} to "
                            f"{hi_r:g}).")
        retest_range = (lo_r, hi_r)
    if cutoff is not None and selected is None:
        raise DataError("With a cutoff, say how pupils were chosen: selected='above' (scores at "
                        "or above the cut-off) or selected='below'.")
    if selected is not None and cutoff is None:
        raise DataError("selected= needs the cutoff= that pupils were chosen by.")

    x = _as_float(baseline, "baseline")
    y = _as_float(follow_up, "follow-up")
    if x.size != y.size:
        raise DataError(f"baseline and follow-up must be paired: {x.size} baseline scores but "
                        f"{y.size} follow-up scores.")
    both = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[both], y[both]
    n = int(x.size)
    if n < 3:
        raise DataError(f"Regression to the mean needs at least 3 pupils with both scores; "
                        f"{n} found.")
    if measure is not None and ((x < measure.min) | (x > measure.max)
                                | (y < measure.min) | (y > measure.max)).any():
        raise DataError(f"Some scores lie outside the range of {measure.name} "
                        f"({measure.min:g} to {measure.max:g}). Check the scores.")

    d = y - x
    obs, obs_lo, obs_hi = _t_interval(d, confidence)
    adj, lo, hi = _t_interval(d + (1 - rho) * (x - mu), confidence)
    if retest_range is not None:
        t_crit = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1))  # once for the grid
        for r in np.linspace(retest_range[0], retest_range[1], _GRID):
            _, lo_r, hi_r = _t_interval(d + (1 - r) * (x - mu), confidence, t_crit)
            lo, hi = min(lo, lo_r), max(hi, hi_r)
    xbar = float(x.mean())
    at_cut = None
    if cutoff is not None and population_sd is not None:
        at_cut = expected_rtm_cutoff(mu, float(population_sd), rho, float(cutoff), selected)
    return RTMAdjustment(
        n=n, baseline_mean=xbar, follow_up_mean=float(y.mean()), observed_change=obs,
        observed_ci_low=obs_lo, observed_ci_high=obs_hi,
        expected_rtm=expected_rtm_from_mean(xbar, mu, rho), adjusted_change=adj,
        ci_low=lo, ci_high=hi, population_mean=mu, retest=rho, direction=direction,
        label=label or "score", confidence=confidence, retest_range=retest_range,
        retest_interval=retest_interval, cutoff=None if cutoff is None else float(cutoff),
        selected=selected, population_sd=None if population_sd is None else float(population_sd),
        expected_rtm_at_cutoff=at_cut,
    )
