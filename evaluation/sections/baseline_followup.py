"""The baseline-versus-follow-up report for one theory-of-change outcome: its words.

The notebook (``notebooks/10_baseline_followup.ipynb``) shows the method: for each outcome
whose measure is scored at baseline and follow-up (the ``scores`` table) it selects the
data with :func:`select`, calls the library (:func:`~evaluation.baseline_followup.
paired_change` for programme pupils, by subgroup too, :func:`~evaluation.baseline_followup.
reliable_change` where the measure has a reliability, :func:`~evaluation.baseline_followup.
ancova` against the comparison group where there is one) with the analysis options, and
hands the results to :func:`outcome_section`, which only words and lays them out: the
paired change with its effect sizes, a paired plot, reliable change per pupil with the
Jacobson plot, band transitions (where the measure has bands), the subgroup table, the
comparison by ANCOVA and the headline result recorded for the summary.

The headline is the ANCOVA-adjusted difference between programme and comparison pupils
when the comparison is made and shown (the better-controlled estimate), otherwise the
programme pupils' mean change; its verdict comes from its confidence interval.

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

from evaluation.baseline_followup import Ancova, PairedChange, ReliableChange, scores_to_wide
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
    #: One row per pupil: pupil_id, baseline, follow_up and the pupil characteristics.
    pupils: pd.DataFrame
    #: The programme pupils (every pupil when there is no comparison group).
    programme: pd.DataFrame
    #: Programme and comparison pupils, when the comparison is made and can be shown
    #: (None otherwise): the data of the ANCOVA.
    compared: pd.DataFrame | None
    #: A comparison group exists and the options compare with it.
    has_comparison: bool
    #: ... but too few pupils of one group have both scores to show it without risk.
    comparison_withheld: bool
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
    """The pupils and the measure of one outcome, with the choices the options make.

    Checks that the outcome's direction agrees with its measure's."""
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
    has_comparison = has_comparison and options.comparison
    compared, withheld = None, False
    if has_comparison:
        both = wide[wide["group"].isin([PROGRAMME, COMPARISON])]
        sizes = both.dropna(subset=["baseline", "follow_up"])["group"].value_counts()
        # the comparison, and a headline n that adds its pupils, would give them away
        withheld = any(project.disclosure.is_small(sizes.get(g, 0))
                       for g in (PROGRAMME, COMPARISON))
        compared = None if withheld else both
    dates = scores.loc[scores["measure"] == outcome.measure, "date"] if "date" in scores else None
    period = (f"{dates.min():%B %Y} to {dates.max():%B %Y}"
              if dates is not None and dates.notna().any() else project.period_text())
    return OutcomeData(
        outcome=outcome, measure=measure, pupils=wide, programme=programme, compared=compared,
        has_comparison=has_comparison, comparison_withheld=withheld,
        subgroups=[c for c in options.subgroups if c in programme.columns], period=period)


def outcome_section(project: Project, data: OutcomeData, change: PairedChange, *,
                    reliable: ReliableChange | None = None,
                    by_group: dict[str, PairedChange] | None = None,
                    adjusted: Ancova | None = None) -> Section:
    """The words, tables and figures of one outcome, from the results the notebook
    computed: ``change`` (the programme pupils' paired change), ``reliable`` (reliable
    change, where the measure has a reliability), ``by_group`` (the paired change by each
    subgroup column) and ``adjusted`` (the ANCOVA against the comparison group). The
    section carries the headline :class:`~evaluation.results.Result` to record."""
    outcome, measure, programme = data.outcome, data.measure, data.programme
    higher = outcome.direction == "higher_is_better"
    who = "Programme pupils" if data.has_comparison else "Pupils"
    disclosure = project.disclosure

    section = Section(heading=outcome.statement, sentence=change.sentence)
    section.text(
        f"**Measure:** {measure.label} ({measure.min:g}–{measure.max:g}; "
        f"{'higher' if higher else 'lower'} is better). "
        + (f"**Target:** {outcome.target}. " if outcome.target else "")
        + "Changes are follow-up minus baseline; effect sizes follow Lakens (2013) and "
        "months' progress the EEF Teaching and Learning Toolkit."
    )
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
            + (f" The clinical cut-off is {rc.cutoff:.1f} (criterion {rc.criterion})."
               if rc.cutoff is not None else "")
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

    if by_group:
        frames = []
        for column, by in by_group.items():
            # through disclosure with the "All" row, so the groups of one characteristic
            # cannot be subtracted from the headline n shown above
            table = _board_summary(by, disclosure)
            table = table[table["Group"] != "All"].copy()
            table["Group"] = table["Group"].astype(str).replace({"True": "yes", "False": "no"})
            table.insert(0, "Characteristic", CHARACTERISTICS.get(column, column))
            table = table.drop(columns=["Baseline only", "Follow-up only", "EEF impact"],
                               errors="ignore")
            frames.append(table)
        section.table(pd.concat(frames, ignore_index=True),
                      f"{who} by characteristic"
                      + (f" (groups under {disclosure.threshold} pupils withheld)"
                         if disclosure.active else ""))

    headline = change  # the programme pupils' change, unless the comparison is shown
    if data.comparison_withheld:
        section.text(
            "**Against the comparison group.** Not shown: fewer than "
            f"{disclosure.threshold} pupils in one of the groups had both scores, too few "
            "to compare without risk of identifying them. The headline is the programme "
            "pupils' change."
        )
    elif adjusted is not None:
        model = adjusted
        section.text(
            "**Against the comparison group.** Follow-up scores compared between "
            "programme and comparison pupils, adjusting for baseline (ANCOVA by ordinary "
            "least squares); Hedges' g is the adjusted difference over the pooled SD of "
            "follow-up scores, as the EEF computes it. " + model.sentence
        )
        comparison = pd.DataFrame([{
            "Adjusted difference": model.adjusted_difference, "CI low": model.ci_low,
            "CI high": model.ci_high, "p": model.p, "Hedges' g": model.g,
            "Programme pupils": model.n_treatment, "Comparison pupils": model.n_control,
            "EEF months": model.eef_months, "EEF impact": model.eef_label,
        }])
        counts = ["Programme pupils", "Comparison pupils"]
        section.table(disclosure.table(comparison, counts,
                                       derived=[c for c in comparison if c not in counts]),
                      "Programme against comparison, adjusted for baseline")
        headline = model

    section.result = headline.record(outcome, period=data.period, notebook=NOTEBOOK)
    if not project.disclosure.is_small(section.result.n):
        # the recorded headline, word for word, first: the summary, the index and the
        # diagram print the same figures
        section.items.insert(0, Item("text", (
            f"**Headline:** {escape_markdown(section.result.headline)} — verdict: "
            f"**{section.result.verdict}**.")))
    return section
