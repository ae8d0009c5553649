"""The baseline-versus-follow-up report for one theory-of-change outcome: its words.

The notebook (``notebooks/10_baseline_followup.ipynb``) shows the method: for each outcome
whose measure is scored at baseline and follow-up (the ``scores`` table) it selects the
data with :func:`select`, calls the library with the analysis options and hands the results
to :func:`outcome_section`, which only words and lays them out:

* the headline, from :func:`~evaluation.baseline_followup.headline_change` (the one function
  that decides the design): with a comparison group, the ANCOVA-adjusted difference between
  programme and comparison pupils; with a single group, the change allowing for regression
  to the mean where the measure's registry entry has population norms and a test-retest
  correlation, otherwise the plain change with a verdict that says only "better/worse,
  cause unclear". The headline states its design; a ``comparison: true`` that cannot be
  used stops the run (or, with ``allow_single_group: true``, the headline says so);
* below ``min_pairs`` pupils with both scores: no verdict, no effect size, one sentence;
* the programme pupils' paired change as a description, reliable change (Jacobson & Truax
  1991; "recovered" only from the concerning side of the cut-off), band transitions, and
  subgroups as effect modification (:func:`~evaluation.baseline_followup.subgroup_effects`,
  adjusted like the headline, without p-values, with the exploratory caution).

EEF months' progress is shown only for attainment measures, and called "additional" only
against a comparison group.

Privacy: every table, sentence, figure label and legend goes through the project's one
disclosure step (``project.disclosure``): counts below the threshold, what is worked out
from them and what would let a reader recover them by subtraction are withheld
(:data:`evaluation.privacy.WITHHELD`). Per-pupil figures (the paired plot and the Jacobson
plot) are drawn only for an internal audience (``Disclosure.shows_individuals``).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from evaluation.baseline_followup import COMPARISON as COMPARISON_DESIGN
from evaluation.baseline_followup import (
    SINGLE_GROUP,
    TOO_FEW,
    Ancova,
    PairedChange,
    ReliableChange,
    Subgroups,
    scores_to_wide,
)
from evaluation.errors import ParamsError
from evaluation.measures import Measure, band, load_registry
from evaluation.params import BaselineFollowupOptions
from evaluation.privacy import Disclosure
from evaluation.project import Project
from evaluation.report import escape_markdown
from evaluation.results import direction_of
from evaluation.sections import Item, Section
from evaluation.toc import Outcome

PROGRAMME, COMPARISON = "programme", "comparison"
__all__ = ["SINGLE_GROUP", "CHARACTERISTICS", "OutcomeData", "select", "outcome_section",
           "paired_plot", "jacobson_plot", "band_transitions", "reliable_change_table"]

SUMMARY_COLUMNS = {
    "group": "Group",
    "n_pairs": "Pupils (pairs)",
    "n_baseline_only": "Baseline only",
    "n_follow_up_only": "Follow-up only",
    "baseline_mean": "Baseline mean",
    "follow_up_mean": "Follow-up mean",
    "mean_change": "Mean change",
    "mean_change_ci_low": "CI low",
    "mean_change_ci_high": "CI high",
    "p": "p",
    "g_av": "Hedges' g",
    "eef_months": "EEF months",
    "eef_label": "EEF impact",
    "note": "Note",
}


def _options(project: Project) -> BaselineFollowupOptions:
    options = project.params.analyses.baseline_followup
    return options if options is not None else BaselineFollowupOptions()


NOTEBOOK = "10_baseline_followup.ipynb"


def _measure(project: Project, outcome: Outcome) -> Measure:
    registry = load_registry(project.params.measures)
    if outcome.measure not in registry:
        raise ParamsError(
            f"Outcome '{outcome.id}' names the measure '{outcome.measure}', which is neither in "
            f"the kit's registry nor under `measures:` in {project.params.file.name}. Known "
            f"measures: {', '.join(sorted(registry))}"
        )
    return registry[outcome.measure]


def _programme(data: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Programme pupils, and whether a comparison group exists beside them."""
    if "group" not in data or not data["group"].eq(COMPARISON).any():
        return data, False
    return data[data["group"].eq(PROGRAMME)], True


def paired_plot(data: pd.DataFrame, measure: Measure, title: str) -> plt.Figure:
    """Each pupil's baseline and follow-up joined by a faint line; the means in bold."""
    paired = data.dropna(subset=["baseline", "follow_up"])
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for b, f in zip(paired["baseline"], paired["follow_up"], strict=True):
        ax.plot([0, 1], [b, f], color="#9e9e9e", alpha=0.25, linewidth=0.8)
    means = [paired["baseline"].mean(), paired["follow_up"].mean()]
    ax.plot([0, 1], means, color="#1b4f72", linewidth=3, marker="o", label="mean")
    ax.set_xticks([0, 1], ["Baseline", "Follow-up"])
    ax.set_xlim(-0.2, 1.2)
    ax.set_ylabel(measure.label)
    better = "higher" if measure.higher_is_better else "lower"
    ax.set_title(f"{title}\n(each line is one pupil; {better} is better)", fontsize=10)
    ax.legend(loc="best", frameon=False)
    fig.tight_layout()
    return fig


def jacobson_plot(pupils: pd.DataFrame, measure: Measure, s_diff: float,
                  cutoff: float | None, title: str, disclosure: Disclosure) -> plt.Figure:
    """Baseline against follow-up: the no-change line, the reliable-change band around it
    (±1.96·S_diff, Jacobson & Truax 1991) and the clinical cut-off where there is one.

    A per-pupil figure: draw it only where ``disclosure.shows_individuals``. The legend's
    counts still go through ``disclosure``."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    lo, hi = measure.min, measure.max
    grid = np.array([lo, hi])
    ax.fill_between(grid, grid - 1.96 * s_diff, grid + 1.96 * s_diff, color="#d9d9d9",
                    label="no reliable change")
    ax.plot(grid, grid, color="#555555", linewidth=1, label="no change")
    colours = {"reliably improved": "#1a9850", "no reliable change": "#777777",
               "reliably deteriorated": "#d73027"}
    markers = {"reliably improved": "^", "no reliable change": "o",
               "reliably deteriorated": "v"}
    for category, rows in pupils.groupby("reliable_change", observed=True):
        ax.scatter(rows["baseline"], rows["follow_up"], s=18, alpha=0.75,
                   color=colours.get(category, "#333333"), marker=markers.get(category, "o"),
                   label=f"{category} ({disclosure.count(len(rows))})")
    if cutoff is not None:
        ax.axvline(cutoff, color="#7b3294", linestyle=":", linewidth=1)
        ax.axhline(cutoff, color="#7b3294", linestyle=":", linewidth=1,
                   label=f"clinical cut-off ({cutoff:g})")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"Baseline {measure.label}")
    ax.set_ylabel(f"Follow-up {measure.label}")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left" if not measure.higher_is_better else "lower right",
              frameon=False)
    fig.tight_layout()
    return fig


def band_transitions(data: pd.DataFrame, measure: Measure,
                     disclosure: Disclosure) -> pd.DataFrame:
    """Pupils by baseline band (rows) and follow-up band (columns), with the totals of
    each band at baseline (column "Total") and at follow-up (row "Total").

    Goes through ``disclosure``: every row adds up to its total, and so does every column,
    so small cells are withheld together with the next-smallest cells of their row and
    column (no cell is the difference of shown figures)."""
    paired = data.dropna(subset=["baseline", "follow_up"])
    table = pd.crosstab(band(paired["baseline"], measure), band(paired["follow_up"], measure),
                        dropna=False, margins=True, margins_name="Total")
    table.index.name, table.columns.name = "Baseline band", None
    table = table.reset_index()
    table["Baseline band"] = table["Baseline band"].astype(str)
    bands = [c for c in table.columns if c != "Baseline band"]
    return disclosure.table(table, bands, sums_down=True, sums_across=[bands])


def _board_summary(result: PairedChange, disclosure: Disclosure) -> pd.DataFrame:
    table = result.board_table(disclosure)
    keep = [c for c in SUMMARY_COLUMNS if c in table]
    return table[keep].rename(columns=SUMMARY_COLUMNS)


def reliable_change_table(rc: ReliableChange, disclosure: Disclosure) -> pd.DataFrame:
    """Pupils by reliable change and by clinical significance, through ``disclosure``.

    The categories of each classification add up to the pupils it covers (the pupils with
    both scores, shown in the summary table, for reliable change; a percentage beside a
    count gives the others away), the pupils who started on either side of the clinical
    cut-off add up to all of them, and the classifications are tied: reliably improved =
    recovered + improved + reliably improved of those who started on the functional side,
    no reliable change = unchanged + its functional-side count, reliably deteriorated =
    deteriorated + its functional-side count. Each of these sums is an additive set of the
    disclosure step (on the table spread into one row), so no withheld count can be worked
    out from the others; a withheld count's percentage is withheld with it."""
    summary = rc.summary.reset_index(drop=True)
    key = summary["classification"] + ": " + summary["category"]
    wide = pd.DataFrame([summary["n"].to_numpy()], columns=key.to_list())
    pct = [f"{k} %" for k in key]
    wide[pct] = summary["pct"].to_numpy()
    kinds = summary["classification"].unique()
    sets = [key[summary["classification"] == c].to_list() for c in kinds]
    functional = "started on the functional side"
    if "clinical significance" in kinds:
        ties = [("reliably improved", ["recovered", "improved"]),
                ("no reliable change", ["unchanged"]),
                ("reliably deteriorated", ["deteriorated"])]
        sets += [[f"reliable change: {a}"] + [f"clinical significance: {b}" for b in bs]
                 + ([f"{functional}: {a}"] if functional in kinds else [])
                 for a, bs in ties]
        if functional in kinds:  # both sides of the cut-off add up to every pupil
            sets.append(key[summary["classification"] != "reliable change"].to_list())
    shown = disclosure.table(wide, key.to_list(), derived={k: [p] for k, p in zip(key, pct,
                                                                                  strict=True)},
                             sums_across=sets)
    return pd.DataFrame({"Classification": summary["classification"],
                         "Category": summary["category"],
                         "Pupils": shown[key.to_list()].iloc[0].to_numpy(),
                         "Percent": shown[pct].iloc[0].to_numpy()})


CHARACTERISTICS = {"sen_status": "SEN status", "fsm": "Free school meals",
                   "eal": "English as an additional language", "sex": "Sex",
                   "year_group": "Year group", "ethnicity": "Ethnicity"}


@dataclass
class OutcomeData:
    """The data the notebook analyses for one outcome (made by :func:`select`)."""

    outcome: Outcome
    measure: Measure
    #: One row per pupil: pupil_id, baseline, follow_up and the pupil characteristics
    #: (with ``group`` when the pupils table has it): the data of the headline.
    pupils: pd.DataFrame
    #: The programme pupils (every pupil when there is no comparison group).
    programme: pd.DataFrame
    #: The data hold comparison pupils beside the programme pupils.
    has_comparison: bool
    #: The options' subgroups that the pupils table has.
    subgroups: list[str]
    #: When the scores were taken, for the results.json record.
    period: str

    @property
    def has_reliability(self) -> bool:
        """Whether the measure has the reliability and SD that reliable change needs."""
        return self.measure.reliability is not None and self.measure.sd is not None


def select(project: Project, outcome: Outcome,
           options: BaselineFollowupOptions | None = None) -> OutcomeData:
    """The pupils and the measure of one outcome.

    Checks that the outcome's direction agrees with its measure's. Whether the comparison
    group is used is the headline's business (:func:`~evaluation.baseline_followup.
    headline_change`, which stops when ``comparison: true`` cannot be honoured)."""
    options = options if options is not None else _options(project)
    measure = _measure(project, outcome)
    if outcome.direction != direction_of(measure.higher_is_better):
        raise ParamsError(
            f"Outcome '{outcome.id}' says {outcome.direction}, but the measure "
            f"'{measure.name}' is one where {'higher' if measure.higher_is_better else 'lower'}"
            " is better. Correct the direction in the theory of change"
        )
    scores = project.table(outcome.data or options.scores)
    wide = scores_to_wide(scores, outcome.measure)
    pupils = project.table(options.pupils) if options.pupils else None
    if pupils is not None:
        wide = wide.merge(pupils, on="pupil_id", how="left", validate="one_to_one")
    programme, has_comparison = _programme(wide)
    dates = scores.loc[scores["measure"] == outcome.measure, "date"] if "date" in scores else None
    period = (f"{dates.min():%B %Y} to {dates.max():%B %Y}"
              if dates is not None and dates.notna().any() else project.period_text())
    return OutcomeData(
        outcome=outcome, measure=measure, pupils=wide, programme=programme,
        has_comparison=has_comparison,
        subgroups=[c for c in options.subgroups if c in programme.columns], period=period)


SUBGROUP_COLUMNS = {"level": "Group", "n": "Pupils (pairs)", "n_comparison": "Comparison pupils",
                    "estimate": "Estimate", "ci_low": "CI low", "ci_high": "CI high",
                    "note": "Note"}


def _design_text(headline: Ancova | PairedChange, measure: Measure) -> str:
    """What the headline's design is and what it can and cannot show, in plain words."""
    if isinstance(headline, Ancova):
        return ("**Design: comparison group.** The headline compares programme pupils' "
                "follow-up scores with those of comparison pupils, adjusting for baseline "
                "scores (ANCOVA by ordinary least squares), so changes that would have "
                "happened anyway (regression to the mean, normal development) are allowed "
                "for as far as the two groups are alike.")
    lead = "**Design: single group before and after** (no comparison group)."
    if headline.comparison_note:
        lead += (" The parameters ask for a comparison group, but it could not be used ("
                 f"{escape_markdown(headline.comparison_note)}); `allow_single_group` is set, "
                 "so the headline is the programme pupils' own change.")
    rtm = headline.rtm
    if rtm is not None:
        spread = ""
        if getattr(rtm, "retest_range", None) is not None:
            low, high = rtm.retest_range
            spread = (f" Its interval covers any retest correlation from {low:g} to {high:g}: "
                      "the kit's sensitivity range, not a published one, because the "
                      "adjustment depends strongly on this value.")
        return (f"{lead} The headline allows for regression to the mean (Barnett, van der "
                f"Pols & Dobson 2005) using the registry's average for children generally "
                f"({rtm.population_mean:g}) and a test-retest correlation of {rtm.retest:g}."
                f"{spread} It does not allow for normal development or other help.")
    return (f"{lead} The registry has no population norms and test-retest correlation for "
            f"{measure.label}, so regression to the mean cannot be allowed for: the change may "
            "be regression to the mean or normal development rather than the work, and the "
            "verdict says only whether scores got better or worse, not why.")


def _rtm_table(headline: PairedChange) -> pd.DataFrame:
    """Observed change, the part regression to the mean explains and what is left."""
    table = headline.rtm.summary  # type: ignore[union-attr]
    return pd.DataFrame({"Quantity": table["quantity"], "Change": table["estimate"],
                         "CI low": table["ci_low"], "CI high": table["ci_high"]})


def outcome_section(project: Project, data: OutcomeData, headline: Ancova | PairedChange,
                    change: PairedChange | None = None, *,
                    reliable: ReliableChange | None = None,
                    subgroups: Subgroups | None = None) -> Section:
    """The words, tables and figures of one outcome, from the results the notebook
    computed: ``headline`` (:func:`~evaluation.baseline_followup.headline_change`: the
    ANCOVA, or the single group's change adjusted for regression to the mean where the
    registry allows), ``change`` (the programme pupils' paired change, shown as a
    description; default the headline when it is one), ``reliable`` (reliable change, where
    the measure has a reliability) and ``subgroups``
    (:func:`~evaluation.baseline_followup.subgroup_effects`, adjusted like the headline).
    The section carries the headline :class:`~evaluation.results.Result` to record."""
    outcome, measure, programme = data.outcome, data.measure, data.programme
    if change is None:
        if not isinstance(headline, PairedChange):
            raise TypeError("outcome_section: give the programme pupils' paired change")
        change = headline
    higher = outcome.direction == "higher_is_better"
    who = "Programme pupils" if data.has_comparison else "Pupils"
    disclosure = project.disclosure
    section = Section(heading=outcome.statement, sentence=headline.sentence)
    section.result = headline.record(outcome, period=data.period, notebook=NOTEBOOK)
    result = section.result
    if result.verdict == TOO_FEW:  # no verdict, no effect size: one sentence says why
        section.items.insert(0, Item("text", (
            f"**Headline:** {escape_markdown(result.headline.rpartition('; ')[2])}: too few "
            f"pupils had both scores to judge a change — verdict: **{result.verdict}**.")))
        return section
    if not disclosure.is_small(result.n):
        # the recorded headline, word for word, first: the summary, the index and the
        # diagram print the same figures; the headline names its design
        section.text(f"**Headline:** {escape_markdown(result.headline)} — verdict: "
                     f"**{result.verdict}**.")
    section.text(_design_text(headline, measure))
    months = (" Months' progress follows the EEF Teaching and Learning Toolkit, shown because "
              "this is an attainment measure." if getattr(measure, "attainment", False) else "")
    section.text(
        f"**Measure:** {measure.label} ({measure.min:g}–{measure.max:g}; "
        f"{'higher' if higher else 'lower'} is better). "
        + (f"**Target:** {escape_markdown(str(outcome.target))}. " if outcome.target else "")
        + "Changes are follow-up minus baseline; effect sizes follow Lakens (2013)." + months
    )
    if isinstance(headline, Ancova):
        comparison = {
            "Adjusted difference": headline.adjusted_difference, "CI low": headline.ci_low,
            "CI high": headline.ci_high, "Hedges' g": headline.g,
            "Programme pupils": headline.n_treatment, "Comparison pupils": headline.n_control,
        }
        if headline.attainment:
            comparison |= {"EEF months": headline.eef_months, "EEF impact": headline.eef_label}
        frame = pd.DataFrame([comparison])
        counts = ["Programme pupils", "Comparison pupils"]
        section.table(disclosure.table(frame, counts,
                                       derived=[c for c in frame if c not in counts]),
                      "Programme against comparison, adjusted for baseline")
        section.text(f"**{who}' own change** (a description, not the effect of the work): "
                     + change.sentence)
    elif headline.rtm is not None and not disclosure.is_small(result.n):
        section.table(_rtm_table(headline), f"{who}: change allowing for regression to the mean")
    section.table(_board_summary(change, disclosure), f"{who}: baseline and follow-up")
    all_row = change.summary.iloc[-1]
    if disclosure.shows_individuals:
        section.figure(
            paired_plot(programme, measure, f"{who}: {measure.label}"),
            alt=(f"Paired plot of {measure.label} for {disclosure.pupils(all_row['n_pairs'])}"
                 f": each pupil's baseline joined to their follow-up, with the mean moving "
                 f"from {all_row['baseline_mean']:.1f} to {all_row['follow_up_mean']:.1f}."),
        )
    else:
        section.text("Figures that show each pupil's scores (the paired plot"
                     + (" and the Jacobson plot of reliable change"
                        if data.has_reliability else "")
                     + ") are in the internal report only, to protect pupils' privacy.")

    if reliable is not None:
        rc = reliable
        section.text(
            f"**Reliable change** (Jacobson & Truax 1991): with reliability "
            f"{measure.reliability:g} and SD {measure.sd:g}, a pupil's score must change by "
            f"at least {rc.points_needed:.1f} points to be more than measurement noise."
            + (f" The clinical cut-off is {rc.cutoff:.1f} (criterion {rc.criterion}). "
               "\"Recovered\" counts only pupils who started on the concerning side of it "
               "and ended reliably improved on the other side; pupils who started on the "
               "typical side cannot recover and are counted apart (\"started on the "
               "functional side\")." if rc.cutoff is not None else "")
        )
        section.table(reliable_change_table(rc, disclosure),
                      "Reliable and clinically significant change"
                      + (f" (counts below {disclosure.threshold} withheld)"
                         if disclosure.active else ""), percent=("Percent",))
        if disclosure.shows_individuals:
            section.figure(
                jacobson_plot(rc.pupils, measure, rc.s_diff, rc.cutoff,
                              f"{who}: reliable change in {measure.label}", disclosure),
                alt=(f"Jacobson plot: baseline against follow-up {measure.label} for each "
                     "pupil, with the no-change diagonal and a grey band of changes too small "
                     "to be reliable; pupils outside the band changed reliably."),
            )
    else:
        section.text(
            f"Reliable change is not shown: the registry has no citable reliability for "
            f"{measure.label}. A project can add one, with its source, under `measures:`."
        )

    if measure.bands:
        section.table(band_transitions(programme, measure, disclosure),
                      f"{who}: {measure.label} bands at baseline (rows) and follow-up")

    if subgroups is not None and len(subgroups.summary):
        table = subgroups.board_table(disclosure)
        table["characteristic"] = table["characteristic"].map(
            lambda c: CHARACTERISTICS.get(c, c))
        table["level"] = table["level"].astype(str).replace({"True": "yes", "False": "no"})
        table = table.rename(columns={"characteristic": "Characteristic", **SUBGROUP_COLUMNS})
        what = ("adjusted difference, programme minus comparison"
                if subgroups.design == COMPARISON_DESIGN else f"change ({subgroups.unit})")
        section.text("**Subgroups** (does the result differ between groups of pupils?). "
                     + subgroups.sentence)
        section.table(table, f"{who} by characteristic: {what}"
                      + (f" (groups under {disclosure.threshold} pupils withheld)"
                         if disclosure.active else ""))
    return section
