"""The interrupted-time-series (ITS) report for one theory-of-change outcome: its words.

For an outcome whose analysis is ``its`` (counts per term, month or year, usually
exclusions), :func:`select` puts the data on the period scale of :func:`evaluation.its.fit`
and gives the fit options of the project's ``analyses.its``; the notebook
(``notebooks/20_exclusions_its.ipynb``) then fits, in cells a researcher can read:

* the **programme series**: counts and pupils on roll summed over the programme units
  (``group == programme_value``; every unit when there is no group column) per period,
  fitted by :func:`evaluation.its.fit`;
* the **controlled comparison**, where comparison units exist: every programme and
  comparison unit's rows in :func:`evaluation.controlled_its.fit` (Linden's 2015
  multiple-group model on a panel, with the inference its coverage simulation chose); it
  gives the outcome's headline (observed over controlled-expected events), with the
  design named in it;
* **unit by unit**: :func:`evaluation.its.fit_many` per group (programme, comparison) with
  the DerSimonian-Laird pooled estimate and I².

:func:`outcome_sections` words those results as report
:class:`~evaluation.sections.Section`s (the first carries the headline
:class:`~evaluation.results.Result`); it computes no statistic.

The count analysed is the column named by the outcome's ``measure`` (``suspensions``,
``permanent_exclusions``); without a measure, ``analyses.its.outcome``.

Missing data. Intake keeps suppressed or empty counts as missing and a roll of 0 (e.g. a
local authority in the year before it existed). Unit by unit, such rows are dropped and
listed in the data notes; a unit left with too few periods is reported as not fitted, with
the reason. For the summed series, rows with a missing count are left out (their pupils
too); rows with a known count and a roll of 0 are kept: their events happened, and their
pupils were counted under another unit that period (as when Bedfordshire and Cheshire
were split in 2009), so the totals match the national figures.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from evaluation import controlled_its, its
from evaluation.errors import DataError, ParamsError
from evaluation.params import ItsOptions
from evaluation.privacy import Disclosure, withheld_cells
from evaluation.project import Project
from evaluation.results import Result
from evaluation.sections import Section
from evaluation.toc import Outcome

__all__ = ["MANY_UNITS", "NOTEBOOK", "ItsAnalysis", "ItsData", "assemble", "outcome_sections",
           "sections", "select"]

NOTEBOOK = "20_exclusions_its.ipynb"
#: Above this many units a forest plot with one labelled row per unit is unreadable, so
#: the units are drawn as a sorted "caterpillar" without names.
MANY_UNITS = 40
_UNIT_WORDS = {"monthly": "month", "termly": "term", "yearly": "year"}
_DROP_MISSING = "count missing (suppressed or not reported)"
_DROP_ROLL = "no pupils on roll recorded (roll 0 or missing)"
_NO_EVENTS = "no events in any period"


# ----------------------------------------------------------------------------- data


@dataclass
class _Series:
    """Per-unit rows on a common period scale, with the kit's names."""

    rows: pd.DataFrame  # unit, group, period, code, label, count, roll
    frequency: str
    periods: its.Periods


def _options(project: Project) -> ItsOptions:
    options = project.params.analyses.its
    if options is None:
        raise ParamsError(
            f"{project.params.file}: analyses.its is not set; add it (with at least "
            "`interruption:`) to run the interrupted time series"
        )
    return options


def _count_column(project: Project, outcome: Outcome, table: pd.DataFrame,
                  options: ItsOptions) -> str:
    column = outcome.measure or options.outcome
    if column not in table.columns:
        raise ParamsError(
            f"Outcome '{outcome.id}' names the measure '{column}', which is not a column of "
            f"the '{outcome.data or options.data}' table (columns: "
            f"{', '.join(map(str, table.columns))}). In the theory of change, set the "
            "outcome's `measure` to the count column to analyse, e.g. suspensions or "
            "permanent_exclusions."
        )
    return column


def _unit_word(table: pd.DataFrame, by: str | None,
               where: dict[str, Any] | None = None) -> tuple[str, str]:
    """What a unit is called (singular, plural).

    Official statistics keep a ``level`` column ("Local authority"), or the source is
    filtered on it (``where: {level: Local authority}``) and intake drops the column;
    school exports name schools by ``school_id``.
    """
    levels: set[str] = set()
    if "level" in table.columns:
        levels = set(table["level"].dropna().astype(str).str.lower())
    elif where and isinstance(where.get("level"), str):
        levels = {where["level"].lower()}
    if levels == {"local authority"}:
        return "local authority", "local authorities"
    if by in (None, "school_id"):
        return "school", "schools"
    word = str(by).removesuffix("_id").replace("_", " ")
    return word, word + "s"


def _series(table: pd.DataFrame, options: ItsOptions, column: str) -> _Series:
    """Every row placed on the period scale that :func:`its.fit` uses, so that units whose
    term dates differ by a few days still add up period by period."""
    time = options.time
    needed = [time, column] + [c for c in (options.exposure, options.by) if c]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ParamsError(
            f"analyses.its names column(s) {', '.join(repr(c) for c in missing)}, which the "
            f"exclusions table does not have (columns: {', '.join(map(str, table.columns))})"
        )
    # The period scale of evaluation.its, so that periods match its fits.
    dates = its.as_dates(table[time], time)
    periods = its.Periods.infer(dates)
    codes = periods.codes(dates)
    unit = table[options.by].astype("string") if options.by else pd.Series("all", index=table.index)
    group_col = options.group if options.group and options.group in table.columns else None
    group = (table[group_col].astype("string").str.strip() if group_col
             else pd.Series(options.programme_value, index=table.index, dtype="string"))
    roll = (pd.to_numeric(table[options.exposure], errors="coerce").astype(float)
            if options.exposure else pd.Series(np.nan, index=table.index))
    rows = pd.DataFrame({
        "unit": unit.to_numpy(),
        "group": group.to_numpy(),
        "period": periods.starts(codes),
        "code": codes,
        "label": periods.labels(codes),
        "count": pd.to_numeric(table[column], errors="coerce").astype(float).to_numpy(),
        "roll": roll.to_numpy(),
    })
    return _Series(rows, periods.frequency, periods)


def _usable(rows: pd.DataFrame, exposure: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows a unit's own fit can use, and the dropped rows with the reason."""
    no_count = rows["count"].isna()
    no_roll = (rows["roll"].isna() | (rows["roll"] <= 0)) if exposure else no_count & False
    reason = np.where(no_count, _DROP_MISSING, _DROP_ROLL)
    dropped = rows[no_count | no_roll].assign(reason=reason[(no_count | no_roll).to_numpy()])
    # A known count is summed into the totals even where the unit's roll is 0.
    dropped["in_totals"] = np.where(dropped["count"].notna(), "yes", "no")
    return rows[~(no_count | no_roll)], dropped


def _aggregate(rows: pd.DataFrame, exposure: bool) -> pd.DataFrame:
    """Counts (and roll) summed per period over rows with a known count."""
    known = rows[rows["count"].notna()]
    out = (known.groupby(["period", "label"], sort=True)
           .agg(count=("count", "sum"), roll=("roll", "sum"), units=("unit", "nunique"))
           .reset_index())
    if exposure and (out["roll"] <= 0).any():
        empty = ", ".join(out.loc[out["roll"] <= 0, "label"])
        warnings.warn(f"No pupils on roll in {empty} across the units summed: left out of "
                      "the summed series.", stacklevel=2)
        out = out[out["roll"] > 0]
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------- analysis


@dataclass
class ItsAnalysis:
    """Everything computed for one ITS outcome (see the module docstring)."""

    project: Project
    outcome: Outcome
    options: ItsOptions
    column: str
    frequency: str
    unit_word: tuple[str, str]
    programme_units: list[str]
    comparison_units: list[str]
    series: pd.DataFrame  # the programme units' summed series
    result: its.ITSResult
    controlled: controlled_its.ControlledITSResult | None
    many: dict[str, its.ManyResult]  # by group ("programme", "comparison")
    not_fitted: pd.DataFrame  # unit, group, reason (including units with no usable row)
    dropped: pd.DataFrame  # unit, group, label, reason, in_totals
    fit_warnings: list[str] = field(default_factory=list)
    #: unit, group, events: each unit's known counts over its rows, i.e. what it adds to its
    #: group's summed series (fitted or not), so that a group's events add up to its total.
    unit_events: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["unit", "group", "events"]))

    # -- disclosure ---------------------------------------------------------------
    @property
    def disclosure(self) -> Disclosure:
        """The project's one disclosure-control step, for every table, sentence and label."""
        return self.project.disclosure

    @property
    def total_withheld(self) -> bool:
        """Whether the programme series' events after the interruption are too few to show.

        Then the observed total, the expected total and the difference are all withheld:
        the headline ratio (observed over expected) with either of the others would give
        the observed total away.
        """
        return self.result.total_withheld

    @property
    def sentence(self) -> str:
        """The plain-English summary of the headline's design: the controlled comparison's
        sentences where comparison units exist, else the programme series' (the library
        words both and leaves the totals out if withheld)."""
        return self.controlled.sentence if self.controlled is not None else self.result.sentence

    @property
    def design(self) -> str:
        """The headline's design in words, as the headline states it."""
        if self.controlled is not None:
            return self.controlled.design_text()
        n = len(self.programme_units)
        return (f"interrupted time series of the {n} {self.group_words} added together, "
                "against their own earlier trend (no comparison series)")

    # -- headline -----------------------------------------------------------------
    @property
    def pct(self) -> str:
        """The confidence level of the intervals in words, e.g. '95%'."""
        return f"{self.result.confidence * 100:g}%"

    @property
    def label(self) -> str:
        """The measure in words, e.g. 'permanent exclusions'."""
        return self.column.replace("_", " ")

    @property
    def group_words(self) -> str:
        """'programme schools' or 'local authorities' (all units, no comparison design)."""
        plural = self.unit_word[1]
        return f"programme {plural}" if self.comparison_units else plural

    def headline(self) -> Result:
        """The headline result for the project summary, covering every period of the
        series: where comparison units exist, the controlled ITS's
        :meth:`~evaluation.controlled_its.ControlledITSResult.record` (observed over
        controlled-expected events, counting the units of both arms), else the programme
        series' :meth:`its.ITSResult.record` (counting programme units) with its design
        stated; both computed and worded in the library."""
        cf = self.result.counterfactual
        period = f"{cf['label'].iloc[0]} to {cf['label'].iloc[-1]}"
        # the count column analysed is the measure recorded (the outcome may name none)
        outcome = self.outcome.model_copy(update={"measure": self.column})
        if self.controlled is not None:
            return self.controlled.record(outcome, period=period, notebook=NOTEBOOK,
                                          n=self.controlled.n)
        return self.result.record(outcome, n=len(self.programme_units), period=period,
                                  notebook=NOTEBOOK, design=self.design)

    def design_words(self) -> str:
        """What the headline compares, in words (ends before the period)."""
        n, plural = len(self.programme_units), self.unit_word[1]
        if self.controlled is not None:
            return (f"It compares the {n} programme {plural} with the "
                    f"{len(self.comparison_units)} comparison {plural}: the expected count "
                    f"is the programme {plural}' earlier trend plus the change the "
                    f"comparison {plural} saw at the same time. The count is {self.label},")
        return (f"The count is {self.label} in the {n} {self.group_words} added together, "
                "against their own earlier trend (there is no comparison series, so a change "
                "that happened everywhere at the same time would look like an effect),")

    def intervals_text(self) -> str:
        """Which inference the headline's interval uses and why, in plain words."""
        unit = _UNIT_WORDS[self.frequency]
        n = (self.controlled.n_periods if self.controlled is not None
             else self.result.diagnostics["n"])
        why = (f"A short series of {unit}ly counts has two traps for confidence intervals: "
               f"counts in neighbouring {unit}s tend to move together (autocorrelation), and "
               f"with only {n} {unit}s the usual correction for that (Newey-West) makes "
               "intervals too narrow (Turner et al. 2021; in the kit's simulations of such "
               "series its 95% intervals missed the true effect in up to 30% of them, not "
               "5%). ")
        if self.controlled is not None:
            c = self.controlled
            if c.inference == "ar1":
                how = (f"So the interval allows for autocorrelation within each "
                       f"{self.unit_word[0]} with a model of it (taken as "
                       f"{c.panel.info['rho']:.2f}, with a margin for the short series) and "
                       f"for each {self.unit_word[0]}'s own variability, and uses t "
                       f"intervals on {c.panel.df_resid} degrees of freedom; in simulations "
                       "like this project (benchmarks/its_coverage.py) such 95% intervals "
                       "held the true effect in at least 93% of them.")
            else:
                why = ""
                how = (f"The interval uses {c.inference_text()}, as the parameters ask "
                       "(analyses.its.inference); in the kit's simulations of short series "
                       "these intervals were too narrow with one programme unit and far too "
                       "wide with many (benchmarks/its_coverage.py).")
        else:
            how = ("So the interval uses " + self.result.diagnostics["inference_text"]
                   + "; in simulations of series of 12 to 60 points such 95% intervals held "
                   "the true effect in at least 93% of them (benchmarks/its_coverage.py).")
            if n < 12:
                how += (f" With fewer than 12 {unit}s the autocorrelation cannot be estimated "
                        "well, so the margin for it dominates and the interval is wide: the "
                        "honest answer for so short a series.")
        if self.controlled is None and self.result.diagnostics.get("inference") != "ar1":
            why = ""
        return f"**How the intervals were made.** {why}{how}"

    def controlled_counterfactual_table(self) -> pd.DataFrame:
        """The programme units after the interruption against the controlled and their own
        counterfactual: observed and expected events and the ratio, through the project's
        disclosure step (a withheld observed total withholds what would give it away)."""
        cf = self.controlled.counterfactuals
        unit = _UNIT_WORDS[self.frequency]
        table = pd.DataFrame({
            "Counterfactual": ["controlled: " + d if n == "controlled" else "own: " + d
                               for n, d in zip(cf["counterfactual"], cf["description"],
                                               strict=True)],
            f"{unit.capitalize()}s after": cf["periods"].astype(int),
            "Observed": cf["observed"].round().astype(int),
            "Expected": cf["expected"].round().astype(int),
            "Ratio": cf["estimate"], "CI low": cf["ci_low"], "CI high": cf["ci_high"],
        })
        return self.disclosure.table(table, ["Observed"],
                                     derived=["Expected", "Ratio", "CI low", "CI high"])

    def controlled_effects_table(self) -> pd.DataFrame:
        """Each arm's level in the first period, trends and changes, and the differences
        (rate ratios; the first row of the differences is the baseline difference)."""
        e = self.controlled.effects
        unit = _UNIT_WORDS[self.frequency]
        arms = {"programme": f"programme {self.unit_word[1]}",
                "comparison": f"comparison {self.unit_word[1]}",
                "difference": "programme ÷ comparison"}
        terms = {"intercept": "rate per 100 pupils, first period", "pre-trend":
                 f"trend per {unit} before", "level change": "change in level",
                 "slope change": f"change in trend per {unit}", "post-trend":
                 f"trend per {unit} after", "baseline level difference":
                 "rate in the first period", "pre-trend difference": f"trend per {unit} before",
                 "difference in level change": "change in level",
                 "difference in slope change": f"change in trend per {unit}",
                 "post-trend difference": f"trend per {unit} after"}
        scale = np.where(e["term"] == "intercept", 100.0 if self.options.exposure else 1.0, 1.0)
        if not self.options.exposure:
            terms["intercept"] = "events per unit, first period"
        # a p-value for a level (is the rate zero?) answers no question anyone asked
        p = e["p"].where(e["term"] != "intercept")
        return pd.DataFrame({
            "Arm": e["arm"].map(arms), "Effect": e["term"].map(terms),
            "Estimate": e["estimate"] * scale, "CI low": e["ci_low"] * scale,
            "CI high": e["ci_high"] * scale, "p": p,
        })

    # -- tables -------------------------------------------------------------------
    def model_table(self) -> pd.DataFrame:
        o, d = self.options, self.result.diagnostics
        family = {
            "poisson": (f"quasi-Poisson (Poisson regression, standard errors scaled by the "
                        f"over-dispersion {d['scale']:.2f})" if d["family"] == "quasi-poisson"
                        else "Poisson regression"),
            "negative_binomial": "negative binomial regression (NB2)",
        }[o.family]
        seasonality = {None: "none", "term": "term of year (autumn, spring, summer)"}.get(
            o.seasonality, f"{o.seasonality} Fourier pair(s)")
        hac = ("none (ordinary standard errors)" if o.autocorrelation is None else
               f"Newey-West standard errors, lag {o.autocorrelation}")
        if d.get("inference_text"):  # the library says how its intervals were made
            hac = d["inference_text"]
        impact = {"level": "level change only", "slope": "slope change only",
                  "level+slope": "level change and slope change"}[o.impact]
        ints = o.interruption if isinstance(o.interruption, list) else [o.interruption]
        first = self.result.counterfactual.loc[self.result.counterfactual["post"], "label"]
        rows = [
            ("Count analysed", f"{self.label} per {_UNIT_WORDS[self.frequency]}"),
            ("Units in the series", f"{len(self.programme_units)} {self.group_words}"),
            ("Model family", family),
            ("Exposure (offset)", f"log of {o.exposure} (pupils on roll)" if o.exposure
             else "none (counts modelled directly)"),
            ("Seasonality", seasonality),
            ("Autocorrelation", hac),
            ("Impact model", impact),
            ("Interruption", ", ".join(f"{i:%d %B %Y}" for i in ints)
             + f" (first period after: {first.iloc[0]})"),
            ("Phase-in periods left out", str(o.phase_in or 0)),
            ("Periods before / after", f"{d['n_pre']} / {d['n_post']}"),
        ]
        if self.controlled is not None:
            # the headline's model first; the rows above then describe the programme
            # series added together (the section after the headline)
            c = self.controlled
            together = f" ({self.group_words} together)"
            rows = [(name + together if name in ("Units in the series", "Model family",
                                                 "Autocorrelation") else name, used)
                    for name, used in rows]
            many = self.unit_word[1]
            rows[1:1] = [
                ("Headline design", self.design),
                ("Headline model", f"Poisson regression of every {self.unit_word[0]}'s "
                 f"{_UNIT_WORDS[self.frequency]}ly counts (Linden's multiple-group model): "
                 f"each {self.unit_word[0]} its own level; the programme and comparison "
                 f"{many} each their own trend, change in level and change in trend "
                 "(both changes, whatever the impact model below)"),
                ("Headline intervals", c.inference_text()),
            ]
        return pd.DataFrame(rows, columns=["Choice", "Used"])

    def effects_table(self) -> pd.DataFrame:
        """The programme series' changes at the interruption."""
        unit = _UNIT_WORDS[self.frequency]
        names = {
            "level change": "Level change (immediate)",
            "slope change": f"Slope change (per {unit})",
        }
        e = self.result.effects
        out = pd.DataFrame({
            "Effect": [names.get(t, t) for t in e["term"]],
            "Rate ratio" if e["scale"].iloc[0] == "rate ratio" else "Difference": e["estimate"],
            "CI low": e["ci_low"], "CI high": e["ci_high"], "p": e["p"],
        })
        if e["scale"].iloc[0] == "rate ratio":
            out["Change"] = [_signed_pct(v) for v in e["estimate"]]
        return out

    def cumulative_table(self) -> pd.DataFrame:
        """Observed and expected events after the interruption, through the project's
        disclosure step: if the observed total is withheld, so is every figure that would
        give it away (the expected total fixes it through the headline ratio, the
        difference and rates per 100 pupils through the expected total)."""
        c = self.result.cumulative.iloc[0]
        # Whole events: the decimals of an expected count mean nothing to a reader.
        row = {
            f"{_UNIT_WORDS[self.frequency].capitalize()}s after": int(c["periods"]),
            "Observed": round(c["observed_total"]),
            "Expected on the previous trend": round(c["counterfactual_total"]),
            "Difference": round(c["difference"]), "CI low": round(c["ci_low"]),
            "CI high": round(c["ci_high"]),
        }
        if self.options.exposure:
            row |= {"Per 100 pupils": c["per_100"], "Per 100 CI low": c["per_100_ci_low"],
                    "Per 100 CI high": c["per_100_ci_high"]}
        table = pd.DataFrame([row])
        periods = table.columns[0]
        return self.disclosure.table(
            table, ["Observed"], derived=[col for col in table.columns
                                          if col not in (periods, "Observed")])

    def cumulative_text(self) -> str:
        c = self.result.cumulative.iloc[0]
        d, lo, hi = c["difference"], c["ci_low"], c["ci_high"]
        word = "fewer" if d < 0 else "more"
        a, b = (-hi, -lo) if d < 0 else (lo, hi)
        unit = _UNIT_WORDS[self.frequency]
        if self.total_withheld:
            return (f"**Cumulative effect.** Over the {int(c['periods'])} {unit}s after the "
                    f"interruption there were {self.disclosure.count(c['observed_total'])} "
                    f"{self.label}, so the expected number and the difference are withheld "
                    "to protect pupils' privacy.")
        text = (f"**Cumulative effect.** Over the {int(c['periods'])} {unit}s after the "
                f"interruption there were {self.disclosure.count(c['observed_total'])} "
                f"{self.label}, against "
                f"{c['counterfactual_total']:,.0f} expected had the previous trend continued: "
                f"about {abs(d):,.0f} {word} ({self.pct} CI {_minus(a)} to {_minus(b)}")
        if self.options.exposure and np.isfinite(c["per_100"]):
            text += (f"; {abs(c['per_100']):.2f} {word} per 100 pupils on roll over those "
                     f"{unit}s, with an average roll of {c['mean_exposure']:,.0f}")
        text += ("). The expected counts assume the earlier trend would have carried on "
                 "unchanged, an assumption that weighs more the further a period is from the "
                 "interruption; " + self._interval_words() + ".")
        return text

    def _interval_words(self) -> str:
        """How the cumulative interval was made, from the library's ``method``."""
        method = str(self.result.cumulative.iloc[0].get("method", "observed totals fixed"))
        if "observed totals fixed" in method:
            return ("the interval allows for the uncertainty of the expected count only "
                    "(delta method), treating the observed counts as fixed")
        return ("the interval allows for the uncertainty of the expected count (delta "
                "method) and for the chance variation of the observed counts")

    def conflict_text(self) -> str:
        """A caution when the level change and what followed point different ways (e.g. a
        drop in level followed by a steeper rise), so the level change alone misleads."""
        if not self.result.level_and_trend_disagree():
            return ""
        e = self.result.effects.set_index("term")
        level, slope = e.loc["level change"], e.loc["slope change"]
        c = self.result.cumulative.iloc[0]
        null = 1.0
        level_down = level["estimate"] < null
        unit = _UNIT_WORDS[self.frequency]
        word = "more" if c["difference"] > 0 else "fewer"
        total = ("so read the two together (the numbers of events after the interruption "
                 "are withheld to protect pupils' privacy). "
                 if self.total_withheld else
                 f"so over the {int(c['periods'])} {unit}s after it there were about "
                 f"{abs(c['difference']):,.0f} {word} {self.label} than the earlier trend "
                 "predicted. ")
        return (
            f"**Read the level and slope changes together.** {self.label.capitalize()} "
            f"{'fell' if level_down else 'rose'} at the interruption (rate ratio "
            f"{level['estimate']:.2f}), but the trend afterwards "
            f"{'rose' if slope['estimate'] > null else 'fell'} by "
            f"{abs(slope['estimate'] - 1) * 100:.0f}% a {unit} (rate ratio "
            f"{slope['estimate']:.2f}, {self.pct} CI {slope['ci_low']:.2f} to "
            f"{slope['ci_high']:.2f}), "
            + total +
            "The level change on its own does not tell the whole story, so the headline "
            "recorded for the summary compares all events after the interruption with what "
            + ("the controlled counterfactual expected." if self.controlled is not None
               else "the earlier trend predicted.")
        )

    def diagnostics_table(self) -> pd.DataFrame:
        d = self.result.diagnostics
        missing = d["missing_periods"]
        rows = [
            ("Durbin-Watson", f"{d['durbin_watson']:.2f}",
             "about 2 means no first-order autocorrelation"),
            ("Autocorrelation at lag 1", f"{d['acf'][0]:.2f}" if d["acf"] else "–",
             "residual correlation between neighbouring periods"),
            (f"Ljung-Box p ({d['ljung_box_lags']} lag{'s' if d['ljung_box_lags'] > 1 else ''})",
             _fmt_p(d["ljung_box_p"]), "small p (< 0.05) suggests autocorrelation"),
            ("Over-dispersion (Pearson χ² / df)", f"{d['dispersion']:.2f}",
             "1 for Poisson counts; larger means more variable than Poisson"),
            ("Scale used for standard errors", f"{d['scale']:.2f}", d["family"]),
            ("Periods in the fit", str(d["n"]), f"{d['n_pre']} before, {d['n_post']} after"),
            ("Missing periods", ", ".join(missing) if missing else "none",
             "gaps are left as gaps; the fit uses the periods that exist"),
        ]
        return pd.DataFrame(rows, columns=["Check", "Value", "What it means"])

    def autocorrelation_text(self) -> str:
        d = self.result.diagnostics
        dw, lb = d["durbin_watson"], d["ljung_box_p"]
        concern = d["autocorrelated"]
        facts = f"Durbin-Watson {dw:.2f}, Ljung-Box p {_fmt_p(lb)}"
        lag = self.options.autocorrelation
        short = min(d["n_pre"], d["n_post"]) < its.POWER_POINTS
        if not concern:
            text = (f"**Autocorrelation was not a concern**: the residuals show no clear "
                    f"correlation from one period to the next ({facts}).")
            if short:
                text += (f" With only {d['n_pre']} periods before and {d['n_post']} after, "
                         "these checks have little power, so this is weak reassurance.")
        elif d.get("inference") == "ar1":
            kind = " (negative: a high period tends to follow a low one)" if dw > 2 else ""
            text = (f"**Some autocorrelation remains in the residuals**{kind} ({facts}); the "
                    "standard errors allow for first-order autocorrelation in the confidence "
                    "intervals.")
        elif lag is not None:
            kind = " (negative: a high period tends to follow a low one)" if dw > 2 else ""
            text = (f"**Some autocorrelation remains in the residuals**{kind} ({facts}); the "
                    f"Newey-West standard errors (lag {lag}) allow for it in the confidence "
                    "intervals.")
        else:
            text = (f"**The residuals look autocorrelated** ({facts}) and the model does not "
                    "allow for it, so the confidence intervals may be too narrow; consider "
                    "`autocorrelation: 1` in the parameters.")
        return text

    def unit_table(self) -> pd.DataFrame:
        """One row per unit: periods, events, the effects, status, through the project's
        disclosure step.

        A unit whose events are withheld shows none of its estimates either (they are worked
        out from those few events). The events of a group's units add up to the group's
        summed series, which the chart and the cumulative figures show, so within each group
        a second unit is withheld wherever one is (secondary suppression).
        """
        frames = []
        for group, many in self.many.items():
            e = many.effects
            ok = e[e["status"] != "error"]
            base = ok.drop_duplicates("unit")[["unit"]].copy()
            for term, short in (("level change", "Level"), ("slope change", "Slope")):
                part = ok[ok["term"] == term].set_index("unit")
                if part.empty:
                    continue
                base[f"{short} RR"] = base["unit"].map(part["estimate"])
                base[f"{short} CI low"] = base["unit"].map(part["ci_low"])
                base[f"{short} CI high"] = base["unit"].map(part["ci_high"])
            base["Periods"] = base["unit"].map(
                {u: r.diagnostics["n"] for u, r in many.results.items()})
            base["Status"] = base["unit"].map(
                {u: _fitted_status(r) for u, r in many.results.items()})
            base.insert(1, "Group", group)
            frames.append(base)
        frames.append(self.not_fitted.rename(columns={"group": "Group", "reason": "Status"})
                      .assign(Status=lambda f: "not fitted: " + f["Status"]))
        table = pd.concat(frames, ignore_index=True)
        order = {g: i for i, g in enumerate(self.many)}
        table = (table.assign(_g=table["Group"].map(order))
                 .sort_values(["_g", "unit"], kind="stable").drop(columns="_g")
                 .reset_index(drop=True))
        # Events for every unit, fitted or not: a group's events add up to its summed series,
        # so a unit left blank would be as recoverable by subtraction as one shown.
        table = table.merge(self.unit_events.rename(columns={"group": "Group"}),
                            on=["unit", "Group"], how="left").rename(columns={"events": "Events"})
        # A unit with no events is shown as 0 and left out of the additive set: withheld
        # beside a small count it would protect no one (the two would add up to the small
        # count, and the status "no events in any period" says it is 0 anyway).
        zero = table["Events"].eq(0).fillna(False).to_numpy()
        table.loc[zero, "Events"] = np.nan
        table["Periods"] = table["Periods"].astype("Int64")
        table = table.rename(columns={"unit": self.unit_word[0].capitalize()})
        if not self.comparison_units:
            table = table.drop(columns="Group")
        cols = [c for c in table.columns if c not in ("Periods", "Events", "Status")]
        table = table[cols + ["Periods", "Events", "Status"]]
        estimates = [c for c in table.columns if c.startswith(("Level ", "Slope "))]
        shown = self.disclosure.table(table, ["Events"], derived={"Events": estimates},
                                      sums_down="Group" if "Group" in table.columns else True)
        shown.loc[zero, "Events"] = 0
        # a unit that was not fitted has no estimate to withhold: not applicable, not [c]
        for col in estimates:
            shown.loc[table[col].isna().to_numpy(), col] = np.nan
        return shown

    def withheld_units(self) -> set[tuple[str, str]]:
        """(group, unit) of every unit whose events (and so estimates) are withheld."""
        table = self.unit_table()
        hidden = withheld_cells(table)["Events"].to_numpy()
        unit = table[self.unit_word[0].capitalize()].astype(str)
        group = (table["Group"].astype(str) if "Group" in table.columns
                 else pd.Series(self.options.programme_value, index=table.index))
        return set(zip(group[hidden], unit[hidden], strict=True))

    def pooled_table(self) -> pd.DataFrame:
        rows = []
        for group, many in self.many.items():
            for _, p in many.pooled.iterrows():
                rows.append({
                    "Group": group, "Effect": p["term"], "Units pooled": int(p["k"]),
                    "Rate ratio": p["estimate"], "CI low": p["ci_low"],
                    "CI high": p["ci_high"], "p": p["p"], "I²": 100 * p["I2"],
                    "τ²": f"{p['tau2']:.3g}",
                })
        table = pd.DataFrame(rows)
        if not self.comparison_units and not table.empty:
            table = table.drop(columns="Group")
        return table

    def fitting_summary(self) -> pd.DataFrame:
        """How many units were fitted, and why the others were not."""
        rows = []
        for group in self.many:
            n_ok = len(self.many[group].results)
            rows.append({"Group": group, "Result": "fitted", "Units": n_ok})
            nf = self.not_fitted[self.not_fitted["group"] == group]
            for reason, n in nf["reason"].value_counts().sort_index().items():
                rows.append({"Group": group, "Result": f"not fitted: {reason}", "Units": n})
        table = pd.DataFrame(rows)
        return table.drop(columns="Group") if not self.comparison_units else table

    def notes_table(self) -> pd.DataFrame:
        d = self.dropped.sort_values(["unit", "code"], kind="stable")
        table = pd.DataFrame({
            self.unit_word[0].capitalize(): d["unit"], "Group": d["group"],
            "Period": d["label"], "Left out because": d["reason"],
            "In the summed series": d["in_totals"],
        })
        if not self.comparison_units:
            table = table.drop(columns="Group")
        return table.reset_index(drop=True)


@dataclass
class ItsData:
    """The series the notebook fits for one ITS outcome (made by :func:`select`)."""

    project: Project
    outcome: Outcome
    options: ItsOptions
    column: str  # the count analysed
    frequency: str
    unit_word: tuple[str, str]
    programme_units: list[str]
    comparison_units: list[str]
    #: The programme units' summed series: period, label, count, roll, units.
    series: pd.DataFrame
    #: Every programme and comparison unit's rows (unit, group, period, label, count, roll),
    #: the long table of the controlled ITS (None without comparison units).
    panel: pd.DataFrame | None
    #: By group ("programme", "comparison"): each unit's usable rows (``unit`` column).
    units: dict[str, pd.DataFrame]
    #: By group: every unit marked with it, including units with no usable row.
    unit_names: dict[str, list[str]]
    dropped: pd.DataFrame  # unit, group, label, reason, in_totals
    unit_events: pd.DataFrame  # unit, group, events
    #: Cautions from selecting the data (worded in the report with the fit's).
    notes: list[str]
    #: How many units were in neither group and left out (empty if none).
    left_out: str
    #: The keyword arguments of :func:`evaluation.its.fit` that the options give.
    fit_options: dict[str, Any]
    #: The keyword arguments of :func:`evaluation.controlled_its.fit` (with ``panel``);
    #: empty without comparison units.
    controlled_options: dict[str, Any] = field(default_factory=dict)

    @property
    def unit_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`evaluation.its.fit_many` (unit by unit)."""
        return {k: v for k, v in self.fit_options.items() if k != "outcome_label"}


def select(project: Project, outcome: Outcome, options: ItsOptions | None = None) -> ItsData:
    """The programme series, the controlled series and the per-unit rows of one outcome,
    on the period scale of :func:`evaluation.its.fit`, with the fit options the analysis
    options give (``options``: the project's ``analyses.its`` unless given)."""
    options = options if options is not None else _options(project)
    if options.family == "gaussian":
        # Tables, figures and the headline are written for rate ratios of counts.
        raise ParamsError(
            f"{project.params.file}: analyses.its.family: this report analyses counts of "
            "exclusions; use poisson (quasi-Poisson) or negative_binomial, with the roll as "
            "exposure, rather than gaussian"
        )
    table = project.table(outcome.data or options.data)
    column = _count_column(project, outcome, table, options)
    data = _series(table, options, column)
    rows = data.rows
    exposure = options.exposure is not None
    groups = set(rows["group"].dropna())
    if options.programme_value not in groups:
        raise DataError(
            f"Column '{options.group}' of the exclusions table has no rows marked "
            f"'{options.programme_value}' (values: {', '.join(sorted(map(str, groups)))}). "
            "Set analyses.its.programme_value, or group: null to analyse every unit."
        )
    fit_options: dict[str, Any] = dict(
        time="period", outcome="count", exposure="roll" if exposure else None,
        interruption=options.interruption, family=options.family,
        seasonality=options.seasonality, autocorrelation=options.autocorrelation,
        impact=options.impact, phase_in=options.phase_in, frequency=data.frequency,
        confidence=options.confidence, inference=options.inference,
        outcome_label=column.replace("_", " "),
        intervention_label="the programme" if options.group and len(groups) > 1
        else "the change", direction=outcome.direction,
    )
    programme = rows[rows["group"] == options.programme_value]
    comparison = rows[rows["group"] == options.comparison_value]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = _aggregate(programme, exposure)
    other = rows.loc[~rows["group"].isin([options.programme_value, options.comparison_value])
                     .fillna(False).astype(bool), "unit"].nunique()
    left_out = (f"{other} unit(s) marked neither '{options.programme_value}' nor "
                f"'{options.comparison_value}' in column '{options.group}' were left out."
                if other else "")
    panel = None
    controlled_options: dict[str, Any] = {}
    unit_word = _unit_word(table, options.by,
                           project.params.source(outcome.data or options.data).where)
    if not comparison.empty:
        _check_controlled(project, options)
        interruption = (options.interruption[0] if isinstance(options.interruption, list)
                        else options.interruption)
        if options.by is None:  # no unit column: each group's summed series is one unit
            parts = [(options.programme_value, series),
                     (options.comparison_value, _aggregate(comparison, exposure))]
            panel = pd.concat([agg.assign(unit=g, group=g) for g, agg in parts],
                              ignore_index=True)
            panel["code"] = data.periods.codes(panel["period"].to_numpy())
        else:
            panel = pd.concat([programme, comparison], ignore_index=True)
        if options.phase_in:
            # the phase-in periods are left out, as in the programme series' fit; the
            # changes are still measured from the interruption
            first = data.periods.code(pd.Timestamp(interruption))
            panel = panel[~panel["code"].between(first, first + options.phase_in - 1)]
        panel = panel[["unit", "group", "period", "label", "count", "roll"]]
        _check_panel(panel, exposure, unit_word)
        controlled_options = dict(
            unit="unit", time="period", outcome="count",
            treated=sorted(panel.loc[panel["group"] == options.programme_value, "unit"]
                           .dropna().unique()),
            interruption=interruption, family="poisson",
            exposure="roll" if exposure else None, seasonality=options.seasonality,
            frequency=data.frequency, confidence=options.confidence,
            inference=CONTROLLED_INFERENCE[options.inference],
            lags=(options.autocorrelation if options.inference == "wald"
                  else options.autocorrelation or 1),
            outcome_label=column.replace("_", " "), intervention_label="the programme",
            comparison_label=("the comparison series" if options.by is None
                              else f"the comparison {unit_word[1]}"),
            # without a unit column the units are the groups' summed series
            unit_label=("series", "series") if options.by is None else unit_word,
            direction=outcome.direction,
        )
    usable, dropped = _usable(rows[rows["group"].isin([options.programme_value,
                                                       options.comparison_value])], exposure)
    units, unit_names = {}, {}
    for group in (options.programme_value, options.comparison_value):
        names = rows.loc[rows["group"] == group, "unit"].unique()
        if len(names) == 0:
            continue
        units[group] = usable[usable["group"] == group]
        unit_names[group] = list(names)
    return ItsData(
        project=project, outcome=outcome, options=options, column=column,
        frequency=data.frequency, unit_word=unit_word,
        programme_units=sorted(programme.loc[programme["count"].notna(), "unit"].unique()),
        comparison_units=sorted(comparison["unit"].unique()),
        series=series, panel=panel, units=units,
        unit_names=unit_names, dropped=dropped, unit_events=_unit_events(rows, options),
        notes=[str(w.message) for w in caught], left_out=left_out, fit_options=fit_options,
        controlled_options=controlled_options,
    )


#: The controlled ITS's inference for each ``analyses.its.inference``
#: (:mod:`evaluation.controlled_its`): "auto" chooses by the numbers of units (the coverage
#: simulation); "newey-west" and "wald" are the published formulas of Stata's ``itsa``.
CONTROLLED_INFERENCE = {"auto": "auto", "ar1": "ar1", "newey-west": "itsa", "wald": "itsa"}


def _check_panel(panel: pd.DataFrame, exposure: bool, unit_word: tuple[str, str]) -> None:
    """Every programme and comparison unit needs a count (and a roll) in every period for
    the controlled ITS (a balanced panel, as Stata's ``itsa``): one clear line otherwise."""
    bad = panel["count"].isna() | ((panel["roll"].isna() | (panel["roll"] <= 0)) if exposure
                                   else False)
    n_periods = panel["period"].nunique()
    short = panel.groupby("unit")["period"].nunique() < n_periods
    units = sorted(set(panel.loc[bad, "unit"]) | set(short[short].index))
    if units:
        shown = ", ".join(map(str, units[:5])) + (" ..." if len(units) > 5 else "")
        raise DataError(
            f"The controlled interrupted time series needs every programme and comparison "
            f"{unit_word[0]} in every period with a count{' and a roll' if exposure else ''}; "
            f"{len(units)} {unit_word[0] if len(units) == 1 else unit_word[1]} lack some "
            f"({shown}). Complete their rows, or leave those {unit_word[1]} out of the "
            "programme and comparison groups."
        )


def _check_controlled(project: Project, options: ItsOptions) -> None:
    """The controlled ITS models one interruption; several stop the run (no silent change
    of design). (Its model always has a level and a slope change, Linden's, whatever
    ``impact`` says for the programme series: the page's model table says so, and its
    headline, observed over expected events after the interruption, counts both.)"""
    if isinstance(options.interruption, list) and len(options.interruption) > 1:
        raise ParamsError(
            f"{project.params.file}: analyses.its: the comparison units are analysed as a "
            "controlled interrupted time series, which models one interruption; give one "
            "date, or set group: null to analyse every unit as one series"
        )


def assemble(data: ItsData, fit: its.ITSResult, *,
             controlled: controlled_its.ControlledITSResult | None = None,
             by_unit: dict[str, its.ManyResult] | None = None,
             cautions: list[warnings.WarningMessage] | None = None) -> ItsAnalysis:
    """The results the notebook computed for one outcome, gathered for wording: ``fit``
    (the programme series), ``controlled`` (:func:`evaluation.controlled_its.fit` of the
    programme and comparison units: the headline where it exists), ``by_unit``
    (:func:`evaluation.its.fit_many` per group) and ``cautions`` (the warnings the fit
    gave, recorded by ``warnings.catch_warnings(record=True)``)."""
    by_unit = by_unit or {}
    not_fitted = []
    for group, many in by_unit.items():
        errors = many.effects[many.effects["status"] == "error"]
        for _, r in errors.iterrows():
            not_fitted.append({"unit": r["unit"], "group": group,
                               "reason": _short_reason(r["message"])})
        for u in sorted(set(data.unit_names.get(group, []))
                        - set(data.units[group]["unit"])):
            not_fitted.append({"unit": u, "group": group,
                               "reason": "no period with both a count and a roll"})
    messages = data.notes + [str(w.message) for w in cautions or []]
    # The column names in the library's messages are ours, not the user's: drop them.
    fit_warnings = list(dict.fromkeys(_sentence_case(re.sub(r"^Column '[^']*': ", "", m))
                                      for m in messages))
    if data.left_out:
        fit_warnings.append(data.left_out)
    return ItsAnalysis(
        project=data.project, outcome=data.outcome, options=data.options, column=data.column,
        frequency=data.frequency, unit_word=data.unit_word,
        programme_units=data.programme_units, comparison_units=data.comparison_units,
        series=data.series, result=fit, controlled=controlled, many=by_unit,
        not_fitted=pd.DataFrame(not_fitted, columns=["unit", "group", "reason"]),
        dropped=data.dropped, fit_warnings=fit_warnings, unit_events=data.unit_events,
    )


def _unit_events(rows: pd.DataFrame, options: ItsOptions) -> pd.DataFrame:
    """Each unit's known counts summed over its rows, per group (the summed series' parts)."""
    known = rows[rows["group"].isin([options.programme_value, options.comparison_value])
                 .fillna(False).astype(bool)]
    return (known.groupby(["unit", "group"], sort=True)["count"].sum(min_count=1)
            .rename("events").reset_index().astype({"unit": object, "group": object}))


# ----------------------------------------------------------------------------- sections


def outcome_sections(data: ItsData, fit: its.ITSResult, *,
                     controlled: controlled_its.ControlledITSResult | None = None,
                     by_unit: dict[str, its.ManyResult] | None = None,
                     cautions: list[warnings.WarningMessage] | None = None) -> list[Section]:
    """The report for one ITS outcome from the results the notebook computed (see
    :func:`assemble`): a level-2 section with the headline and the model (it carries the
    :class:`Result` to record), then level-3 sections for the programme series, the
    controlled comparison (if any), the units one by one and the data notes."""
    return sections(assemble(data, fit, controlled=controlled, by_unit=by_unit,
                             cautions=cautions))


def sections(a: ItsAnalysis) -> list[Section]:
    """Report sections for a fitted :class:`ItsAnalysis`."""
    name = a.label[:1].upper() + a.label[1:]
    plural = a.unit_word[1]
    head = Section(heading=a.outcome.statement, sentence=a.sentence)
    head.result = a.headline()
    head.text(
        f"**Headline:** {head.result.headline} — verdict: **{head.result.verdict}**. "
        + a.design_words() + f" {head.result.period}"
        + (f"; **target:** {a.outcome.target}" if a.outcome.target else "") + "."
    )
    if a.options.rationale:
        head.text(f"**Why this model.** {a.options.rationale}")
    head.text(a.intervals_text())
    conflict = a.conflict_text()
    if conflict:
        head.text(conflict)
    head.table(a.model_table(), f"{name}: the model used")

    prog = Section(heading=f"{name}: {a.group_words} together", level=3)
    prog.figure(*_its_figure(a, a.result))
    prog.table(a.effects_table(), f"{name}: changes at the interruption ({a.pct} CI)")
    prog.text(a.cumulative_text())
    prog.table(a.cumulative_table(), f"{name}: cumulative difference after the "
               "interruption (observed minus expected)", note=a.disclosure.note())
    prog.text(a.autocorrelation_text())
    prog.table(a.diagnostics_table(), f"{name}: model checks")
    if a.fit_warnings:
        prog.text("**Cautions from the fit:**\n\n" + "\n".join(f"- {w}" for w in
                                                                 a.fit_warnings))
    out = [head, prog]

    if a.controlled is not None:
        c = a.controlled
        ctl = Section(heading=f"{name}: against the comparison {plural}", level=3)
        ctl.text(
            f"The headline comes from a controlled interrupted time series (Linden 2015, "
            f"multiple-group model): every programme and comparison {a.unit_word[0]}'s "
            f"{_UNIT_WORDS[a.frequency]}ly counts in one regression, each {a.unit_word[0]} "
            f"with its own level, the programme and comparison {plural} each with their own "
            "trend, change in level and change in trend. The **controlled counterfactual** "
            f"is what the programme {plural} would have seen had they followed their earlier "
            f"trend plus the change the comparison {plural} saw at the same time; their "
            "**own counterfactual** is their earlier trend alone, which ignores whatever "
            "else changed then. " + c.sentences["baseline"]
        )
        ctl.figure(*_controlled_figure(a))
        ctl.table(a.controlled_counterfactual_table(),
                  f"{name}: programme {plural} after the interruption against each "
                  f"counterfactual ({a.pct} CI)", note=a.disclosure.note())
        ctl.table(a.controlled_effects_table(),
                  f"{name}: each arm's changes and the differences ({a.pct} CI)")
        out.append(ctl)

    units = Section(heading=f"{name}: {a.unit_word[0]} by {a.unit_word[0]}", level=3)
    units.text(_units_text(a))
    units.table(a.fitting_summary(), f"{name}: {plural} fitted and not fitted")
    if any(not m.pooled.empty for m in a.many.values()):
        units.table(a.pooled_table(), f"{name}: pooled across {plural} (random effects, "
                    "DerSimonian-Laird)", percent=("I²",))
        units.figure(*_forest_figure(a))
    withheld = (f" (events below {a.disclosure.threshold} withheld)" if a.disclosure.active
                else "")
    units.table(a.unit_table(), f"{name}: each {a.unit_word[0]}{withheld}",
                note=a.disclosure.note())
    out.append(units)

    if not a.dropped.empty:
        notes = Section(heading=f"{name}: data notes", level=3)
        n_units = a.dropped["unit"].nunique()
        notes.text(
            f"{len(a.dropped)} row(s) from {n_units} {plural if n_units != 1 else a.unit_word[0]}"
            " could not be used in that unit's own series and were left out of its fit. A "
            "row with a missing count is also left out of the summed series (with its "
            "pupils); a row with a count but no roll is kept in the summed series, because "
            "its events happened and its pupils were counted under another unit."
        )
        notes.table(a.notes_table(), f"{name}: rows left out")
        out.append(notes)
    return out


def _units_text(a: ItsAnalysis) -> str:
    word, plural = a.unit_word
    fitted = sum(len(m.results) for m in a.many.values())
    total = fitted + len(a.not_fitted)
    text = (f"The same model fitted to each {word}'s own series: **{fitted} of {total} "
            f"{plural} were fitted**")
    if len(a.not_fitted):
        reasons = a.not_fitted["reason"].value_counts()
        text += "; the others were not, because of " + "; ".join(
            f"{reason} ({n})" for reason, n in reasons.items())
    text += (". The pooled estimate is a random-effects average (DerSimonian & Laird 1986) "
             "that allows the effect to differ between "
             f"{plural}; I² is the share of the spread between {plural} that is more than "
             "chance (Higgins & Thompson 2002).")
    short = [r for m in a.many.values() for r in m.results.values()
             if min(r.diagnostics["n_pre"], r.diagnostics["n_post"]) < its.POWER_POINTS]
    if short:
        text += (f" {len(short)} of the fitted series have fewer than {its.POWER_POINTS} "
                 "periods on one side of the interruption, so single-unit estimates are "
                 "imprecise; read the pooled estimate and the overall pattern rather than any "
                 f"one {word}.")
    return text


# ----------------------------------------------------------------------------- figures


def _its_figure(a: ItsAnalysis, result: its.ITSResult) -> tuple[Any, str]:
    name = a.label[:1].upper() + a.label[1:]
    unit = _UNIT_WORDS[a.frequency]
    when = result.effects["interruption"].iloc[0]  # the first period after it, in words
    title = f"{name} per {unit}, {a.group_words} together"
    fig = result.plot(title=title, disclosure=a.disclosure)
    ax = fig.axes[0]
    ax.set_xlabel({"termly": "Term (start date)", "yearly": "Academic year (start)",
                   "monthly": "Month"}[a.frequency])
    ax.set_ylabel(f"{name} per {unit} (count)")
    # no tick of the count axis is labelled with a count the report withholds
    ax.yaxis.set_major_formatter(plt.FuncFormatter(
        lambda v, _: "" if a.disclosure.is_small(v) else f"{v:,.0f}"))
    cf = result.counterfactual
    post = cf[cf["post"]]
    count = a.disclosure.count
    small = int(cf["observed"].map(a.disclosure.is_small).sum())
    alt = (f"Chart of {a.label} per {unit} in the {len(a.programme_units)} {a.group_words} "
           f"added together, {cf['label'].iloc[0]} to {cf['label'].iloc[-1]}. Dots show the "
           f"observed counts (from {count(cf['observed'].min())} to "
           f"{count(cf['observed'].max())} a {unit}")
    if small:
        alt += (f"; a {unit} with fewer than {a.disclosure.threshold} is marked in a grey band "
                "instead, its count withheld")
    alt += (f"); the solid line is the fitted model before and after the change; a "
            f"dotted vertical line marks the interruption ({when}); the dashed line with a "
            f"shaded {a.pct} band is the counterfactual, the count expected had the earlier trend "
            f"continued.")
    observed = post["observed"].sum()
    if a.disclosure.is_small(observed):
        alt += (f" After the interruption fewer than {a.disclosure.threshold} {a.label} "
                "were observed.")
    else:
        alt += (f" After the interruption {count(observed)} {a.label} were observed against "
                f"{post['counterfactual'].sum():,.0f} expected.")
    return fig, alt


def _controlled_figure(a: ItsAnalysis) -> tuple[Any, str]:
    """The controlled ITS's figure (the library's plot, through the disclosure control the
    fit was given) and its alt text."""
    c = a.controlled
    name = a.label[:1].upper() + a.label[1:]
    unit, plural = _UNIT_WORDS[a.frequency], a.unit_word[1]
    rate = f"per 100 pupils per {unit}" if a.options.exposure else f"per {a.unit_word[0]}"
    fig = c.plot(title=f"{name} {rate}: programme and comparison {plural}")
    tr = c.treated_series
    cf = c.counterfactuals.iloc[0]
    alt = (f"Chart of {a.label} {rate} in the {c.n_treated} programme {plural} (blue dots and "
           f"fitted line) and the {c.n_comparison} comparison {plural} (grey), "
           f"{tr['label'].iloc[0]} to {tr['label'].iloc[-1]}; a dotted vertical line marks "
           f"the interruption ({c.labels['when']}). After it, the dashed line with a shaded "
           f"{a.pct} band is the controlled counterfactual (the programme {plural}' earlier "
           f"trend plus the comparison {plural}' change) and the dotted line their own "
           "earlier trend.")
    if c.total_withheld:
        alt += (f" After the interruption fewer than {a.disclosure.threshold} {a.label} were "
                f"observed in the programme {plural}.")
    else:
        alt += (f" After the interruption {a.disclosure.count(cf['observed'])} {a.label} were "
                f"observed in the programme {plural} against {cf['expected']:,.0f} expected "
                "on the controlled counterfactual.")
    return fig, alt


def _forest_figure(a: ItsAnalysis) -> tuple[Any, str]:
    """A forest plot per group, sorted by estimate; a caterpillar plot for many units."""
    term = a.result.headline_term
    groups = [(g, m) for g, m in a.many.items() if not m.pooled.empty]
    # A unit whose events are withheld shows no estimate here either (see unit_table);
    # the pooled estimate still includes it.
    hidden = {(g, u) for g, u in a.withheld_units() if u in map(str, a.many[g].results)}
    parts = [m.effects[(m.effects["term"] == term) & (m.effects["status"] != "error")
                       & ~m.effects["unit"].astype(str).map(lambda u, g=g: (g, u) in hidden)]
             .sort_values("estimate", kind="stable").reset_index(drop=True) for g, m in groups]
    n_hidden = [sum(1 for hg, _ in hidden if hg == g) for g, _ in groups]
    many = max(len(p) for p in parts) > MANY_UNITS
    name = a.label[:1].upper() + a.label[1:]
    if many:
        fig, axes = plt.subplots(len(groups), 1, figsize=(9, 4.2 * len(groups)), squeeze=False)
    else:
        heights = [max(2.5, 0.24 * len(p) + 1.2) for p in parts]
        fig, axes = plt.subplots(len(groups), 1, figsize=(7.5, sum(heights)), squeeze=False,
                                 gridspec_kw={"height_ratios": heights})
    # One scale for every panel, wide enough for every point estimate; extreme interval
    # ends are cut at the edge rather than squeezing the rest into a sliver.
    est = pd.concat([p["estimate"] for p in parts])
    lows = pd.concat([p["ci_low"] for p in parts])
    highs = pd.concat([p["ci_high"] for p in parts])
    limits = (min(est.min() / 1.5, max(lows.min(), _AXIS_RANGE[0]), 0.8),
              max(est.max() * 1.5, min(highs.max(), _AXIS_RANGE[1]), 1.25))
    clipped = int(((lows < limits[0]) | (highs > limits[1])).sum())
    summary = []
    for (group, m), part, k, ax in zip(groups, parts, n_hidden, axes[:, 0], strict=True):
        pooled = m.pooled[m.pooled["term"] == term].iloc[0]
        who = f"{group} {a.unit_word[1]}" if a.comparison_units else a.unit_word[1]
        hidden_text = f" ({k} not shown, to protect pupils' privacy)" if k else ""
        title = (f"{who.capitalize()}: {term} in each of {len(part)}"
                 + (f" ({k} withheld)" if k else "")
                 + f", pooled RR {pooled['estimate']:.2f} (I² = {100 * pooled['I2']:.0f}%)")
        if many:
            _caterpillar(ax, part, pooled, title, a.unit_word[1])
            _ratio_axis(ax.yaxis, ax.set_ylim, limits)
        else:
            # forest_plot draws units in the order given; sorted, the spread is easy to read
            its.ManyResult(part, m.pooled, m.results, m.by, m.confidence).forest_plot(
                term=term, ax=ax, title=title)
            ax.set_xlabel(f"{term.capitalize()} (rate ratio, log scale; 1 = no change)")
            _ratio_axis(ax.xaxis, ax.set_xlim, limits)
        below = int((part["ci_high"] < 1).sum())
        above = int((part["ci_low"] > 1).sum())
        summary.append(
            f"{who}: {len(part)} estimates{hidden_text}, {below} with the whole interval "
            "below 1 (fewer "
            f"{a.label}), {above} wholly above 1 and {len(part) - below - above} including 1; "
            f"pooled rate ratio {pooled['estimate']:.2f} ({a.pct} CI {pooled['ci_low']:.2f} to "
            f"{pooled['ci_high']:.2f}), I² {100 * pooled['I2']:.0f}%"
        )
    fig.suptitle(f"{name}: {term} by {a.unit_word[0]}")
    fig.tight_layout()
    kind = (f"Caterpillar plot: each {a.unit_word[0]}'s rate ratio with its {a.pct} interval, "
            "sorted from lowest to highest, with the pooled estimate as a horizontal line and "
            "band" if many else
            f"Forest plot: each {a.unit_word[0]}'s rate ratio with its {a.pct} interval, sorted "
            "from lowest (top) to highest, with the pooled random-effects estimate as a "
            "diamond at the bottom")
    cut = (f" {clipped} interval(s) run past the edge of the axis and are cut off."
           if clipped else "")
    return fig, (f"{kind}, on a log scale where 1 means no change. " + "; ".join(summary)
                 + "." + cut)


# Rate ratios beyond these are drawn cut off at the edge of the axis.
_AXIS_RANGE = (0.05, 20.0)
_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)


def _ratio_axis(axis: Any, set_limits: Any, limits: tuple[float, float]) -> None:
    """Log axis with plain tick labels (0.5, 1, 2) instead of powers of ten."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    set_limits(*limits)
    ticks = [t for t in _TICKS if limits[0] <= t <= limits[1]]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _caterpillar(ax: Any, part: pd.DataFrame, pooled: pd.Series, title: str,
                 plural: str) -> None:
    x = np.arange(1, len(part) + 1)
    est = part["estimate"].to_numpy(dtype=float)
    lo, hi = part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float)
    # Okabe-Ito blue / vermilion; the legend text says what the colours mean
    colour = np.where(hi < 1, "#0072B2", np.where(lo > 1, "#D55E00", "0.55"))
    ax.vlines(x, lo, hi, colors=colour, lw=0.8)
    ax.scatter(x, est, s=9, c=colour, zorder=3)
    ax.axhspan(pooled["ci_low"], pooled["ci_high"], color="k", alpha=0.12)
    ax.axhline(pooled["estimate"], color="k", lw=1.5, label="pooled (random effects)")
    ax.axhline(1.0, color="0.3", ls=":", lw=1, label="no change")
    ax.set_yscale("log")
    ax.set_xlim(0, len(part) + 1)
    ax.set_xlabel(f"{plural.capitalize()}, sorted by estimate (blue: whole interval below 1; "
                  "orange: above 1; grey: includes 1)")
    ax.set_ylabel("Rate ratio (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left")


# ----------------------------------------------------------------------------- helpers


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _minus(value: float) -> str:
    """A whole number with a true minus sign (a hyphen is easy to miss)."""
    text = f"{abs(value):,.0f}"
    return f"−{text}" if value < 0 and text != "0" else text


def _signed_pct(rate_ratio: float) -> str:
    pct = (rate_ratio - 1) * 100
    return f"{'−' if pct < 0 else '+'}{abs(pct):.0f}%"


def _fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fitted_status(result: its.ITSResult) -> str:
    missing = result.diagnostics["missing_periods"]
    if not missing:
        return "fitted"
    return f"fitted; {len(missing)} missing period(s): {', '.join(missing)}"


_REASONS = (
    (re.compile(r"is outside the series"), "no periods on one side of the interruption"),
    (re.compile(r"only \d+ period\(s\)"), f"fewer than {its.MIN_POINTS} periods before or after"),
    (re.compile(r"every period of the .* has 0 events"), _NO_EVENTS),
    (re.compile(r"expected count towards 0"),
     "runs of zero counts: the change cannot be estimated"),
)


def _short_reason(message: str) -> str:
    """A short reason for a unit that could not be fitted (the library's full message is
    long; the first sentence without the exception name otherwise)."""
    for pattern, reason in _REASONS:
        if pattern.search(message):
            return reason
    text = re.sub(r"^\w+(Error|Exception): ", "", str(message))
    text = re.sub(r"^Column '[^']*': ", "", text)
    return text.split(". ")[0].rstrip(".")


