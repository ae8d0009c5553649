"""The board summary: every theory-of-change outcome with the evidence recorded for it.

The summary notebook runs last. It reads the headline results the analysis notebooks
recorded (``project.results()``, one :class:`~evaluation.results.Result` per outcome) and
lays them against the theory of change:

* :func:`at_a_glance` - the verdict table first (outcome, before/after verdict, target
  verdict, headline figure with its 95% CI), then the verdict and target counts;
* :func:`diagram_section` - the theory-of-change diagram annotated with the evidence;
* :func:`outcome_sections` - one plain-English paragraph per outcome;
* :func:`action_plan` - activities with owner, due date and RAG status;
* :func:`reporting_period_sections` - the per-period narrative local partnerships use;
* :func:`conditions_section` - moderating factors with their status, and assumptions;
* :func:`how_to_read` - what the verdicts mean;
* :func:`results_provenance` - which report recorded each result.

Board text names things as a reader knows them: statements, measure names and page
titles, never ids, option paths or file names; the statistical terms a page uses are
explained in its glossary (:mod:`evaluation.glossary`, shown by
:func:`evaluation.report.provenance`).

Every function takes the :class:`~evaluation.project.Project` and, optionally, the
results table (read from ``project.results()`` when not given). An outcome without a
usable result is "not yet measured", with the reason: the theory of change gives it no
measure or no analysis, its analysis is not enabled in the parameters, or the analysis
has not recorded a result.

Everything a board sees goes through the project's disclosure control
(``project.disclosure``): a result resting on a count below the threshold shows neither
its n nor its estimate, anywhere on the page. User text (statements, targets, owners,
reporting-period text, recorded headlines) is escaped with
:func:`evaluation.report.escape_markdown` wherever it enters Markdown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evaluation import privacy
from evaluation.errors import DataError
from evaluation.measures import load_registry
from evaluation.params import NOTEBOOKS
from evaluation.project import Project
from evaluation.report import escape_markdown as esc
from evaluation.results import (
    BETTER_CAUSE_UNCLEAR,
    NOT_A_CHANGE,
    TOO_FEW,
    VERDICTS,
    WORSE_CAUSE_UNCLEAR,
    figure_kind,
    format_estimate,
    format_figure,
    format_interval,
)
from evaluation.sections import Section
from evaluation.targets import TargetJudgement, count_sentence, judge
from evaluation.toc import NOT_YET_MEASURED, Outcome, diagram_alt_text

__all__ = [
    "ANALYSIS_LABELS",
    "OutcomeStatus",
    "action_plan",
    "at_a_glance",
    "conditions_section",
    "diagram_section",
    "figures_section",
    "how_to_read",
    "outcome_sections",
    "outcome_status",
    "outcome_table",
    "target_count_sentence",
    "reporting_period_sections",
    "results_provenance",
    "show_body",
    "verdict_count_sentence",
    "verdict_table",
]

#: What each analysis is called in a board report.
ANALYSIS_LABELS = {
    "baseline_followup": "baseline and follow-up",
    "its": "interrupted time series",
    "referral_tracking": "referral tracking",
    "survey": "survey",
    "audit": "school audit",
}

#: The verdict in words: why an outcome got it.
VERDICT_WORDS = {
    "improved": (
        "the whole 95% confidence interval lies on the better side of no change, so the "
        "data show an improvement"
    ),
    "no clear change": (
        "the 95% confidence interval includes no change, so the data cannot tell an "
        "improvement from no change or a worsening"
    ),
    "worsened": (
        "the whole 95% confidence interval lies on the worse side of no change, so the data "
        "show a worsening"
    ),
    BETTER_CAUSE_UNCLEAR: (
        "the pupils' scores moved the better way, but with no comparison group and no "
        "allowance for regression to the mean (extreme scores drift back towards the "
        "average on their own) the change cannot be put down to the work"
    ),
    WORSE_CAUSE_UNCLEAR: (
        "the pupils' scores moved the worse way, but with no comparison group the design "
        "cannot say whether the work had a part in it"
    ),
    TOO_FEW: "too few pupils had both measurements to judge a change",
    NOT_A_CHANGE: ("the result is a level at one time, not a change, so it is judged only "
                   "against its target"),
    NOT_YET_MEASURED: "there is no result to judge yet",
}

RAG_WORDS = {"green": "Green: on track", "amber": "Amber: at risk", "red": "Red: off track"}
STATUS_WORDS = {
    "in place": "In place",
    "partly": "Partly in place",
    "not yet": "Not yet in place",
}


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class OutcomeStatus:
    """One ToC outcome with its verdict and, if measured, the recorded result."""

    outcome: Outcome
    verdict: str  # one of VERDICTS, or "not yet measured"
    reason: str = ""  # why it is not yet measured ("" when it is measured)
    result: dict[str, Any] | None = None

    @property
    def measured(self) -> bool:
        return self.result is not None


def _results(project: Project, results: pd.DataFrame | None) -> pd.DataFrame:
    return project.results() if results is None else results


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers are not missing
        return False


def _records(results: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values as ``None`` (JSON nulls arrive as NaN/NA)."""
    return [
        {k: (None if _missing(v) else v) for k, v in row.items()}
        for row in results.to_dict("records")
    ]


def _label(analysis: str) -> str:
    return ANALYSIS_LABELS.get(analysis, analysis.replace("_", " "))


def _measure_name(project: Project, measure: str) -> str:
    """A measure as a reader knows it: its registry label ('teacher-rated SDQ total
    difficulties'), else its name with underscores read as spaces ('needs met')."""
    try:
        found = load_registry(project.params.measures).get(measure)
    except Exception:  # a registry problem is validation's to report, not the summary's
        found = None
    return found.label if found is not None else measure.replace("_", " ")


def outcome_status(project: Project, results: pd.DataFrame | None = None) -> list[OutcomeStatus]:
    """Every ToC outcome (file order) with its verdict, or why it is not yet measured.

    A result counts only if its analysis is enabled in the parameters (a results file can
    hold records from an earlier run). If several analyses recorded the same outcome, the
    one the theory of change names is used.
    """
    records = _records(_results(project, results))
    enabled = set(project.params.enabled)
    out: list[OutcomeStatus] = []
    for o in project.toc.outcomes:
        if o.measure is None:
            out.append(OutcomeStatus(o, NOT_YET_MEASURED,
                                     "the theory of change does not yet name a measure for it"))
            continue
        if o.analysis is None:
            out.append(OutcomeStatus(
                o, NOT_YET_MEASURED,
                f"the theory of change names its measure ({_measure_name(project, o.measure)}) "
                "but no analysis to evidence it"))
            continue
        if o.analysis not in enabled:
            out.append(OutcomeStatus(
                o, NOT_YET_MEASURED,
                f"the {_label(o.analysis)} analysis is not switched on in this project's "
                "parameters"))
            continue
        mine = [r for r in records if r["outcome_id"] == o.id and r["analysis"] in enabled]
        if not mine:
            out.append(OutcomeStatus(
                o, NOT_YET_MEASURED,
                f"the {_label(o.analysis)} analysis has not recorded a result for its "
                f"measure, {_measure_name(project, o.measure)} (its report has not been "
                "run, or could not estimate it)"))
            continue
        # Prefer the analysis the ToC names; otherwise the most recently recorded.
        chosen = next((r for r in mine if r["analysis"] == o.analysis), mine[-1])
        out.append(OutcomeStatus(o, str(chosen["verdict"]), "", chosen))
    return out


def _unmatched(project: Project, results: pd.DataFrame) -> list[str]:
    """Outcome ids with recorded results that are not outcomes of the theory of change."""
    known = {o.id for o in project.toc.outcomes}
    ids = [str(i) for i in results["outcome_id"].tolist()] if len(results) else []
    return sorted({i for i in ids if i not in known})


# --------------------------------------------------------------------------- words


def _join(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def verdict_count_sentence(statuses: list[OutcomeStatus]) -> str:
    """E.g. 'Of 6 outcomes, 4 improved, 1 showed no clear change and 1 is not yet measured.'"""
    total = len(statuses)
    if total and all(not s.measured for s in statuses):
        return (f"No analysis results have been recorded yet: "
                f"{'the' if total == 1 else f'all {total}'} "
                f"{_plural(total, 'outcome is', 'outcomes are')} not yet measured.")
    counts = Counter(s.verdict for s in statuses)
    phrases = {
        "improved": lambda n: f"{n} improved",
        "no clear change": lambda n: f"{n} showed no clear change",
        "worsened": lambda n: f"{n} worsened",
        BETTER_CAUSE_UNCLEAR: lambda n: f"{n} got better for reasons the design cannot tell",
        WORSE_CAUSE_UNCLEAR: lambda n: f"{n} got worse for reasons the design cannot tell",
        TOO_FEW: lambda n: f"{n} had too few pupils to judge",
        NOT_A_CHANGE: lambda n: f"{n} {_plural(n, 'is a level', 'are levels')} judged "
                                f"against a target only",
        NOT_YET_MEASURED: lambda n: f"{n} {_plural(n, 'is', 'are')} not yet measured",
    }
    parts = [phrases[v](counts[v]) for v in (*VERDICTS, NOT_YET_MEASURED) if counts[v]]
    return f"Of {total} {_plural(total, 'outcome', 'outcomes')}, {_join(parts)}."


def _figures(r: dict[str, Any]) -> tuple[str, str]:
    """The estimate and 95% CI of a record for the outcome table, printed by
    :func:`evaluation.results.format_figure` from the record's numbers and unit, as its
    headline prints them (so the table agrees with the index, the diagram and the analysis
    page)."""
    unit = r.get("unit")
    return (format_figure(r.get("estimate"), unit),
            format_interval(r.get("ci_low"), r.get("ci_high"), unit, sep="\u00a0to\u00a0"))


def _sentence(text: str) -> str:
    text = " ".join(str(text).split())
    return text if not text or text[-1] in ".!?" else text + "."


def _withheld(project: Project, status: OutcomeStatus) -> bool:
    """Whether a result rests on a count the board may not see (its n is withheld)."""
    return status.measured and project.disclosure.is_small((status.result or {}).get("n"))


def _withheld_text(project: Project, status: OutcomeStatus) -> str:
    n = project.disclosure.count((status.result or {}).get("n"))
    return (f"The result rests on a count of {n} and is withheld ({privacy.WITHHELD}) to "
            "protect pupils' privacy.")


def _headline(project: Project, status: OutcomeStatus) -> str:
    """The recorded headline, or a withheld mark when the result rests on a small count."""
    if _withheld(project, status):
        return f"Result withheld {privacy.WITHHELD} (a count below {project.min_count})"
    return (status.result or {}).get("headline") or ""


def _found(project: Project, status: OutcomeStatus) -> str:
    """What the analysis found, in its own words (sentence, else headline, else numbers),
    unless the result rests on a count the board may not see."""
    if _withheld(project, status):
        return _withheld_text(project, status)
    r = status.result or {}
    if r.get("sentence"):
        return _sentence(r["sentence"])
    if r.get("headline"):
        return _sentence(r["headline"])
    unit = r.get("unit")
    est = f"{format_figure(r.get('estimate'), unit)} {unit or ''}".strip()
    ci = format_interval(r.get("ci_low"), r.get("ci_high"), unit)
    return _sentence(f"The estimate is {est} (95% CI {ci})")


def _judgement(status: OutcomeStatus) -> TargetJudgement | None:
    """The outcome's target judged against its recorded result (met / not met / not yet
    clear, :func:`evaluation.targets.judge`); None without a target or a result, or when
    the record cannot be compared with the target (validation refuses such targets)."""
    if status.outcome.target is None or not status.measured:
        return None
    try:
        return judge(status.outcome.target, status.result or {})
    except DataError:
        return None


def _target_cell(project: Project, status: OutcomeStatus) -> str:
    """The target verdict for a table, in the target's own words: 'not yet clear (fall ≥ 2
    points)'; 'no target set'; :data:`~evaluation.privacy.NOT_APPLICABLE` with no result."""
    target = status.outcome.target
    if target is None:
        return "no target set"
    judged = _judgement(status)
    if judged is None:
        return privacy.NOT_APPLICABLE
    return f"{judged.word} ({target.short})"


def _result_cell(r: dict[str, Any]) -> str:
    """The headline figure with its 95% CI as :func:`evaluation.results.format_estimate`
    prints it, with the unit a reader needs to read it: '−2.0 points (−3.1 to −0.9)',
    'ratio 0.78 (0.59 to 1.04)', '65% (59% to 70%)'."""
    unit = r.get("unit")
    figures = format_estimate(r.get("estimate"), r.get("ci_low"), r.get("ci_high"), unit)
    kind = figure_kind(unit)
    if kind == "points":
        word = "percentage points" if "percentage" in str(unit).lower() else "points"
        head, _, rest = figures.partition(" (")
        return f"{head} {word}" + (f" ({rest}" if rest else "")
    if kind == "ratio":
        return f"ratio {figures}"
    return figures


def _target_text(o: Outcome) -> str:
    if o.target and o.timescale:
        return f"Target: {_sentence(o.target)[:-1]} (timescale: {o.timescale})."
    if o.target:
        return f"Target: {_sentence(o.target)}"
    if o.timescale:
        return f"No target is set yet. Timescale: {_sentence(o.timescale)}"
    return "No target or timescale is set yet."


# --------------------------------------------------------------------------- sections


def verdict_table(project: Project, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """The table a board reads first: one row per outcome with its before/after verdict,
    its target verdict in the target's own words and the headline figure with its 95% CI
    (:func:`_result_cell`). A result resting on a count below the threshold shows neither
    its figure nor its target verdict (:data:`~evaluation.privacy.WITHHELD`)."""
    rows = []
    for s in outcome_status(project, results):
        r = s.result or {}
        rows.append({
            "Outcome": s.outcome.statement,
            "Verdict": s.verdict,
            "Target": _target_cell(project, s),
            "Result (95% CI)": _result_cell(r) if s.measured else privacy.NOT_APPLICABLE,
            "n": r.get("n") if s.measured else float("nan"),
        })
    table = pd.DataFrame(rows, columns=["Outcome", "Verdict", "Target", "Result (95% CI)",
                                        "n"])
    table["n"] = pd.to_numeric(table["n"], errors="coerce")
    shown = project.disclosure.table(table, "n", derived=["Result (95% CI)", "Target"])
    return shown.drop(columns="n")  # the n is in the detailed table, after the paragraphs


def outcome_table(project: Project, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per outcome: verdict, estimate, 95% CI, unit, n, data period and target
    verdict (the figures behind the verdicts).

    The estimate and interval are printed from the record's numbers by
    :func:`evaluation.results.format_figure` (:func:`_figures`), the formatter every
    headline uses, so the table agrees with the index, the diagram and the analysis page.

    Through ``project.disclosure``: an ``n`` below the threshold is withheld with its
    estimate and interval (:data:`~evaluation.privacy.WITHHELD`). The outcomes' n do not
    add up to anything shown, so no secondary suppression is needed.
    """
    rows = []
    for s in outcome_status(project, results):
        r = s.result or {}
        measured = s.measured
        estimate, ci = _figures(r) if measured else ("–", "–")
        rows.append({
            "Outcome": s.outcome.statement,
            "Verdict": s.verdict,
            "Estimate": estimate,
            "95% CI": ci,
            "Unit": (r.get("unit") or "–") if measured else "–",
            "n": r.get("n") if measured else float("nan"),
            "Data period": (r.get("period") or "–") if measured else "–",
            "Target": _target_cell(project, s),
        })
    table = pd.DataFrame(rows, columns=["Outcome", "Verdict", "Estimate", "95% CI", "Unit",
                                        "n", "Data period", "Target"])
    table["n"] = pd.to_numeric(table["n"], errors="coerce")
    return project.disclosure.table(table, "n", derived=["Estimate", "95% CI", "Target"])


def target_count_sentence(statuses: list[OutcomeStatus]) -> str:
    """'Targets, judged apart from the before/after verdicts: 1 met, 0 not met, 2 not yet
    clear.' (:func:`evaluation.targets.count_sentence`), or '' when no outcome has both a
    target and a result."""
    judged = [j for j in (_judgement(s) for s in statuses) if j is not None]
    return count_sentence(judged) if judged else ""


def at_a_glance(project: Project, results: pd.DataFrame | None = None) -> Section:
    """The verdict table first (what a board reads in its first screen), then the
    verdict and target counts and the outcomes that worsened."""
    results = _results(project, results)
    statuses = outcome_status(project, results)
    section = Section("At a glance")
    section.table(verdict_table(project, results), "Outcomes: verdicts and results",
                  note=project.disclosure.note())
    counts = [verdict_count_sentence(statuses)]
    if target_count_sentence(statuses):
        counts.append(target_count_sentence(statuses))
    section.text(esc(" ".join(counts)))
    if not len(results):
        section.text(
            "No analysis has recorded a result yet: run the analysis reports first (or the "
            "whole project again), then this summary."
        )
    else:
        worse = [esc(s.outcome.statement) for s in statuses if s.verdict == "worsened"]
        if worse:
            section.text("**Worsened:** " + "; ".join(worse) + ".")
    extra = _unmatched(project, results)
    if extra:
        n = len(extra)
        section.text(esc(
            f"Results were also recorded for {n} {_plural(n, 'outcome', 'outcomes')} that "
            "the theory of change does not list; they are not counted here (the "
            "list of results used, at the end, names them)."
        ))
    return section


def diagram_section(project: Project, results: pd.DataFrame | None = None) -> Section:
    """The theory-of-change diagram with each outcome's headline and verdict."""
    statuses = outcome_status(project, results)
    evidence = pd.DataFrame(
        [{"outcome_id": s.outcome.id, "headline": _headline(project, s),
          "verdict": s.verdict} for s in statuses if s.result is not None],
        columns=["outcome_id", "headline", "verdict"],
    )
    # the project's own measure names (its `measures:`), not only the registry's
    labels = {n: m.label for n, m in load_registry(project.params.measures).items()}
    fig = project.toc.diagram(evidence, measure_labels=labels)
    section = Section("Theory of change and evidence")
    section.text("Each outcome box is shaded by its verdict and shows the headline result; "
                 "the verdict is also written in the box.")
    return section.figure(fig, diagram_alt_text(project.toc, evidence), wide=True)


def outcome_sections(project: Project, results: pd.DataFrame | None = None) -> list[Section]:
    """One level-3 section per outcome: statement, target, what was found, verdict."""
    sections = []
    for s in outcome_status(project, results):
        o = s.outcome
        judged = _judgement(s)
        if judged is not None and not _withheld(project, s):
            # the target in its own words, judged from the whole confidence interval
            timescale = f" Timescale: {_sentence(o.timescale)}" if o.timescale else ""
            parts = [esc(judged.sentence + timescale)]
        else:
            parts = [esc(_target_text(o))]
        if s.measured:
            parts.append(esc(f"What was found: {_found(project, s)}"))
        else:
            parts.append(esc(f"Not yet measured: {_sentence(s.reason)}"))
        parts.append(f"**Verdict: {s.verdict}**, because {VERDICT_WORDS[s.verdict]}.")
        section = Section(o.statement, f"Verdict: {s.verdict}", level=3)
        section.text(" ".join(parts))
        notebook = str((s.result or {}).get("notebook") or "")
        if s.measured and notebook in NOTEBOOKS.values():  # only the kit's own pages
            label = _label(str((s.result or {}).get("analysis") or ""))
            section.link(f"{label} report", notebook.removesuffix(".ipynb") + ".html",
                         before="Details are in the ", after=".")
        sections.append(section)
    return sections


def figures_section(project: Project, results: pd.DataFrame | None = None) -> Section:
    """The figures behind the verdicts: :func:`outcome_table` (estimate, interval, unit,
    number of pupils or schools, data period), after the outcome paragraphs."""
    section = Section("The figures behind the verdicts", level=3)
    return section.table(outcome_table(project, results), "Outcomes: verdict and estimate",
                         note=project.disclosure.note())


def action_plan(project: Project) -> Section:
    """Activities sorted by due date with owner and RAG status written as a word."""
    acts = sorted(enumerate(project.toc.activities), key=lambda ia: (ia[1].due, ia[0]))
    counts = Counter(a.rag for a in project.toc.activities)
    parts = [f"{counts[r]} {r} ({RAG_WORDS[r].split(': ')[1]})"
             for r in ("green", "amber", "red") if counts[r]]
    n = len(acts)
    section = Section("Action plan",
                      f"{n} {_plural(n, 'activity', 'activities')}: {_join(parts)}.")
    table = pd.DataFrame(
        [{
            "Due": f"{a.due:%d %b %Y}",
            "Activity": a.what,
            "Owner": a.owner,
            "RAG status": RAG_WORDS[a.rag],
            "Outputs": "; ".join(a.outputs),
        } for _, a in acts],
        columns=["Due", "Activity", "Owner", "RAG status", "Outputs"],
    )
    return section.table(table, "Activities by due date")


def _impact_text(project: Project, statuses: list[OutcomeStatus]) -> str:
    lines = [esc(verdict_count_sentence(statuses)), ""]
    for s in statuses:
        if s.measured:
            what = _headline(project, s) or _found(project, s).rstrip(".")
            lines.append("- " + esc(f"{s.outcome.statement}: {what} ({s.verdict})."))
        else:
            lines.append("- " + esc(f"{s.outcome.statement}: not yet measured."))
    return "\n".join(lines)


def reporting_period_sections(project: Project, results: pd.DataFrame | None = None
                              ) -> list[Section]:
    """One level-3 section per reporting period, most recent first.

    Periods are taken to be listed oldest first in the theory of change. The intended
    outcomes are the same in every period and results are not split by period, so both
    are given in full under the most recent period and referred to in the others.
    """
    periods = list(reversed(project.toc.reporting_periods))
    if not periods:
        return [Section(
            "No reporting periods", level=3,
            sentence="The theory of change lists no reporting periods yet. When the team adds "
                     "them (for each period: what was done, what is planned next and the "
                     "exit strategy), they are reported here.",
        )]
    statuses = outcome_status(project, results)
    intended = "\n".join(
        "- " + esc(
            o.statement
            + (f": {_sentence(o.target)[:-1]}" if o.target else ": no target set yet")
            + (f" ({o.timescale})" if o.timescale else "")
            + "."
        )
        for o in project.toc.outcomes
    )
    sections = []
    for i, p in enumerate(periods):
        section = Section(p.period, level=3)
        if i == 0:
            section.text("**Intended outcomes**\n\n" + intended)
        else:
            section.text("**Intended outcomes**\n\n"
                         + esc(f"As listed under {periods[0].period}."))
        section.text("**Activity last period**\n\n" + esc(p.activity_last_period))
        section.text("**Activity planned next period**\n\n" + esc(p.activity_next_period))
        if i == 0:
            section.text("**Impact so far** (results recorded in this report)\n\n"
                         + _impact_text(project, statuses))
        else:
            section.text("**Impact so far**\n\n" + esc(
                f"See the most recent period ({periods[0].period}): results cover the whole "
                "evaluation."))
        section.text("**Exit strategy**\n\n" + esc(p.exit_strategy))
        sections.append(section)
    return sections


def conditions_section(project: Project) -> Section:
    """Moderating factors with their status (as a word) and evidence; the assumptions."""
    mods = project.toc.moderators
    counts = Counter(m.status for m in mods)
    if mods:
        parts = [f"{counts[k]} {_plural(counts[k], 'is', 'are')} {STATUS_WORDS[k].lower()}"
                 for k in STATUS_WORDS if counts[k]]
        sentence = (f"Of {len(mods)} {_plural(len(mods), 'condition', 'conditions')} the "
                    f"work needs, {_join(parts)}.")
    else:
        sentence = "The theory of change lists no moderating factors (conditions for success)."
    section = Section("Conditions for success", sentence)
    if mods:
        section.table(
            pd.DataFrame(
                [{"Condition": m.statement, "Status": STATUS_WORDS[m.status],
                  "Evidence": m.evidence or "–"} for m in mods],
                columns=["Condition", "Status", "Evidence"],
            ),
            "Moderating factors",
        )
    if project.toc.assumptions:
        section.text(
            "**Assumptions** behind the theory of change (this report does not test them):"
            "\n\n" + "\n".join(f"- {esc(_sentence(a))}" for a in project.toc.assumptions)
        )
    return section


def how_to_read(project: Project) -> Section:
    """What the verdicts mean and what the report withholds."""
    section = Section("How to read this report")
    section.text(
        "Each measured outcome has one headline estimate with a **95% confidence "
        "interval** (CI): the range of values the data are consistent with. The verdict is "
        "decided from the interval alone, by the same rule for every analysis:\n\n"
        f"- **Improved**: {VERDICT_WORDS['improved']}.\n"
        f"- **Worsened**: {VERDICT_WORDS['worsened']}.\n"
        f"- **No clear change**: {VERDICT_WORDS['no clear change']}. It does not show that "
        "the work had no effect: often there are too few pupils or too short a period to "
        "tell, and a wide interval says so.\n"
        f"- **Better, cause unclear** / **worse, cause unclear**: "
        f"{VERDICT_WORDS[BETTER_CAUSE_UNCLEAR]}.\n"
        f"- **Too few to judge**: {VERDICT_WORDS[TOO_FEW]}.\n"
        f"- **No before/after comparison**: {VERDICT_WORDS[NOT_A_CHANGE]}.\n"
        "- **Not yet measured**: no result has been recorded; the outcome's paragraph "
        "says why."
    )
    section.text(
        "'No change' means a difference of 0 for differences in points or percentages, and "
        "a ratio of 1 for rate ratios. The verdict says whether there was a change, not "
        "whether the target was met: read the target beside what was found. An improvement "
        "is not proof that the programme caused it; each analysis report explains what it "
        "compared with (a comparison group or the trend before the programme)."
    )
    if project.disclosure.active:
        privacy_text = (f"To protect pupils' privacy nothing based on fewer than "
                        f"{project.min_count} pupils or records is shown. "
                        + project.disclosure.note())
    else:
        privacy_text = ("This is an internal report: no count is withheld, so it must not "
                        "be circulated beyond the evaluation team.")
    section.text(esc(privacy_text) + " RAG means red, amber, green: the status is always "
                 "written as a word.")
    return section


def results_provenance(project: Project, results: pd.DataFrame | None = None) -> Section:
    """Where the results came from; for an internal audience, the analysis and report
    behind each recorded result, in a table (a board's paragraphs link to the reports)."""
    from evaluation.runner import _page_label  # the titles the index gives the pages

    records = _records(_results(project, results))
    section = Section(
        "Results used",
        "The outcome results were recorded by the analysis reports of this run; each "
        "outcome's paragraph links to its report.",
    )
    if not records:
        return section.text("No analysis has recorded a result yet.")
    if project.disclosure.active:  # the record-by-record table: the internal report's
        return section
    by_id = {o.id: o.statement for o in project.toc.outcomes}
    table = pd.DataFrame(
        [{"Outcome": by_id.get(str(r["outcome_id"]),
                               f"{r['outcome_id']} (not an outcome of the theory of change)"),
          "Analysis": _label(str(r["analysis"])),
          "Report": _page_label(str(r.get("notebook") or "")) or privacy.NOT_APPLICABLE}
         for r in records],
        columns=["Outcome", "Analysis", "Report"],
    )
    return section.table(table, "Recorded results by report")


def show_body(section: Section) -> None:
    """Display a section's sentence and items without its heading (the summary notebook
    gives its top-level headings as markdown cells, which feed the contents list)."""
    section.show(with_heading=False)
