"""The surveys-and-audits report for one theory-of-change outcome: its words.

The notebook (``notebooks/40_surveys_audits.ipynb``) shows the method. For each outcome
with ``analysis: survey`` it takes the responses (:func:`survey_responses`), compares the
outcome's measure (a subscale or one statement of the survey defined under
``analyses.survey``) between the two waves with :func:`evaluation.surveys.compare_waves`,
works out the subscale's internal consistency (:func:`evaluation.surveys.reliability`)
and hands the results to :func:`survey_section`. For each outcome with ``analysis: audit``
it takes the ratings (:func:`audit_ratings`), calls
:func:`evaluation.audits.audit_change` (with the outcome's area, or every area together
for ``all_areas``) and :func:`evaluation.audits.chosen_vs_others`, and hands them to
:func:`audit_section`. Mechanisms whose ``measure`` is a subscale or statement of the survey
get a :func:`mechanism_section`, those measured by an audit area (or ``all_areas``) an
:func:`audit_mechanism_section` (shown, not recorded: results are recorded per outcome).
An outcome whose survey has no responses yet in a wave it compares gets a
:func:`not_yet_section` and no result, so the summary shows it as not yet measured.

Sections only word, round and lay out; every number comes from the library.

Privacy: counts of respondents and of answers go through the project's one disclosure
step (``project.disclosure``: the comparisons' ``board_table``, ``item_table`` and
``diverging_bars`` withhold small counts and what could be worked out from them). Free-text
answers never reach the kit (the survey_responses table has no column for them). Audit
counts are of schools, not pupils, and are shown as they are. A comparison of anonymous
waves always says that different pupils answered each wave.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from evaluation.audits import ALL_AREAS, AuditChange, ChosenComparison
from evaluation.errors import ParamsError
from evaluation.params import ALL_AUDIT_AREAS, AuditOptions, SurveyOptions
from evaluation.project import Project
from evaluation.report import escape_markdown
from evaluation.sections import Section
from evaluation.surveys import (
    DIFFERENT_RESPONDENTS,
    ItemComparison,
    Reliability,
    ScaleComparison,
    Survey,
    diverging_bars,
    item_table,
)
from evaluation.toc import Mechanism, Outcome

NOTEBOOK = "40_surveys_audits.ipynb"

SCALE_COLUMNS = {
    "measure": "Measure",
    "wave_before": "Before",
    "wave_after": "After",
    "n_before": "Answered before",
    "n_after": "Answered after",
    "mean_before": "Mean before",
    "mean_after": "Mean after",
    "difference": "Difference",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "hedges_g": "Hedges' g",
    "superiority": "Chance a later pupil scores higher",
}
ITEM_COLUMNS = {
    "statement": "Statement",
    "wave_before": "Before",
    "wave_after": "After",
    "n_before": "Answered before",
    "n_after": "Answered after",
    "pct_agree_before": "% agreeing before",
    "pct_agree_after": "% agreeing after",
    "change_pp": "Change (percentage points)",
    "change_ci_low_pp": "CI low",
    "change_ci_high_pp": "CI high",
    "odds_ratio": "Odds ratio of a higher answer",
}
AUDIT_COLUMNS = {
    "area": "Area",
    "n_schools": "Schools rated at both audits",
    "n_up": "Moved up",
    "n_same": "Stayed",
    "n_down": "Moved down",
    "up_share": "Of those that changed: % moved up",
    "up_share_ci_low": "CI low",
    "up_share_ci_high": "CI high",
    "sign_test_p": "Sign test p",
    "wilcoxon_p": "Wilcoxon p",
    "mean_change": "Mean change (levels)",
}


def audit_options(project: Project) -> AuditOptions:
    options = project.params.analyses.audit
    if options is None:
        raise ParamsError("analyses.audit is not in the parameters: add it with the "
                          "audit's definition")
    return options


def survey_responses(project: Project, outcome: Outcome | None,
                     options: SurveyOptions) -> pd.DataFrame:
    """The survey_responses table an outcome is measured from (its ``data:`` or the
    analysis's)."""
    name = (outcome.data if outcome is not None else None) or options.data
    table = project.table(name)
    assert table is not None
    return table


def audit_ratings(project: Project, outcome: Outcome | None,
                  options: AuditOptions) -> pd.DataFrame:
    """The audit_ratings table an outcome is measured from."""
    name = (outcome.data if outcome is not None else None) or options.data
    table = project.table(name)
    assert table is not None
    return table


def missing_waves(responses: pd.DataFrame, options: SurveyOptions) -> list[str]:
    """The waves compared (before, after) that have no responses yet."""
    found = set(responses["wave"].dropna().astype(str)) if "wave" in responses else set()
    return [w for w in (options.before, options.after) if w not in found]


def not_yet_section(outcome: Outcome | Mechanism, missing: list[str]) -> Section:
    """An outcome whose survey has no responses yet in a wave it compares: said, not
    recorded (the summary shows it as not yet measured)."""
    heading = (outcome.statement if isinstance(outcome, Outcome)
               else f"Mechanism: {outcome.statement}")
    return Section(heading=heading, sentence=(
        f"There are no survey responses from {' or '.join(missing)} yet, so this is not "
        "yet measured."), level=2 if isinstance(outcome, Outcome) else 3)


def audit_area(outcome: Outcome | Mechanism) -> str:
    """The area an audit outcome (or mechanism) is about (:data:`~evaluation.audits.
    ALL_AREAS` for ``all_areas``)."""
    return ALL_AREAS if outcome.measure in (None, ALL_AUDIT_AREAS) else str(outcome.measure)


def _board(comparison: Any, project: Project) -> tuple[pd.DataFrame, str]:
    """The comparison's board table with plain column names, and its caption."""
    table = comparison.board_table(project.disclosure)
    if isinstance(comparison, ScaleComparison):
        columns, caption = SCALE_COLUMNS, f"{comparison.label} score in each wave"
    elif isinstance(comparison, ItemComparison):
        columns, caption = ITEM_COLUMNS, "Answers agreeing in each wave"
    else:  # a paired comparison (identified respondents): the kit's paired columns
        return table, "Change for pupils who answered both times"
    keep = [c for c in columns if c in table]
    return table[keep].rename(columns=columns), caption


def _statements(survey: Survey, measure: str) -> list[str]:
    """The statements shown for a measure: its subscale's, or the one statement."""
    if measure in survey.subscales:
        return [i.id for i in survey.subscale_items(measure)]
    return [measure]


def _what(survey: Survey, measure: str) -> str:
    if measure in survey.subscales:
        return f"the {survey.label(measure)} statements"
    return f"“{survey.item(measure).statement}”"


def _alt(text: str) -> str:
    """Alt text with typographic apostrophes: the exported page writes the attribute in
    double quotes, and some readers of it stop at a straight quote."""
    return text.replace("'", "’")


def _comparison_items(section: Section, project: Project, comparison: Any,
                      responses: pd.DataFrame, survey: Survey, measure: str,
                      options: SurveyOptions) -> None:
    """The comparison's table and figure, then every statement of the measure at each
    wave in the schools' own format and as diverging bars."""
    table, caption = _board(comparison, project)
    section.table(table, caption, note=project.disclosure.note())
    if isinstance(comparison, ScaleComparison):
        section.figure(comparison.plot(), _alt(
            f"Mean {comparison.label} score in {comparison.before} and {comparison.after} "
            f"with {comparison.confidence:.0%} confidence intervals"))
    items = _statements(survey, measure)
    waves = [options.before, options.after]
    shown = item_table(responses, survey, waves=waves, items=items,
                       disclosure=project.disclosure)
    section.table(shown, f"Each statement in {options.before} and {options.after}",
                  percent=("% strongly agree", "% agree (incl. strongly)", "% do not agree"),
                  note=project.disclosure.note())
    figure = diverging_bars(responses, survey, waves=waves, items=items,
                            disclosure=project.disclosure)
    # Not ``wide``: a wide figure takes its whole cell, this section, to a landscape page,
    # and the switches of page shape left nearly blank pages. At 8 in wide the chart
    # prints at about 0.9 of its size on the portrait page.
    section.figure(figure, _alt(f"Answers to {_what(survey, measure)} in {options.before} "
                                f"and {options.after}: agreeing to the right of the line, not "
                                "agreeing to the left, with the number who answered each"))


def survey_section(project: Project, outcome: Outcome, comparison: Any, *,
                   responses: pd.DataFrame, options: SurveyOptions,
                   reliability: Reliability | None = None) -> Section:
    """One survey outcome: the comparison in words, its table and figure, each statement
    in the schools' own format and as diverging bars, the subscale's internal consistency,
    and the headline result to record (``analysis="survey"``)."""
    survey = options.definition
    measure = str(outcome.measure)
    section = Section(heading=outcome.statement, sentence=comparison.sentence)
    if options.design == "independent" and DIFFERENT_RESPONDENTS not in comparison.sentence:
        section.text(escape_markdown(DIFFERENT_RESPONDENTS))
    _comparison_items(section, project, comparison, responses, survey, measure, options)
    if reliability is not None:
        section.text(escape_markdown(
            reliability.sentence + " Values of about 0.7 or more mean the statements measure "
            "one thing well enough to add them into a score."))
    record = comparison.record(outcome, notebook=NOTEBOOK)
    # paired comparisons come from the baseline-and-follow-up module, which records under
    # its own name: the outcome is evidenced by the survey analysis
    section.result = replace(record, analysis="survey")
    return section


def survey_measures(options: SurveyOptions) -> set[str]:
    return set(options.measures())


def mechanism_section(project: Project, mechanism: Mechanism, comparison: Any, *,
                      responses: pd.DataFrame, options: SurveyOptions) -> Section:
    """A mechanism measured by a survey subscale or statement: shown, not recorded."""
    survey = options.definition
    section = Section(heading=f"Mechanism: {mechanism.statement}", sentence=comparison.sentence,
                      level=3)
    _comparison_items(section, project, comparison, responses, survey, str(mechanism.measure),
                      options)
    return section


def audit_table(change: AuditChange) -> pd.DataFrame:
    """Per area and overall: schools that moved up, stayed and moved down, and the tests,
    with plain column names (percentages 0-100)."""
    table = change.summary.copy()
    table["area"] = [change.area_names.get(a, a) for a in table["area"]]
    for c in ("up_share", "up_share_ci_low", "up_share_ci_high"):
        table[c] = 100 * table[c]
    return table[list(AUDIT_COLUMNS)].rename(columns=AUDIT_COLUMNS)


def transitions_table(change: AuditChange, area: str) -> pd.DataFrame:
    """Ratings of one area at baseline (rows) by follow-up (columns), with plain labels."""
    table = change.transitions[area].copy()
    table.index = [f"Baseline: {v}" for v in table.index]
    table.columns = [f"Follow-up: {v}" for v in table.columns]
    return table.rename_axis("Rating").reset_index()


def audit_section(project: Project, outcome: Outcome, change: AuditChange, *,
                  chosen: ChosenComparison | None = None) -> Section:
    """One audit outcome: the movement of the schools' ratings in words, the table per area,
    the movement chart and the schools-by-areas heatmap, the transition table of the
    outcome's area (or of each area), the chosen areas against the others, and the
    headline result to record (``analysis="audit"``)."""
    focus = change.for_area(audit_area(outcome))
    section = _audit_items(Section(heading=outcome.statement, sentence=focus.sentence),
                           focus, chosen)
    section.result = focus.record(outcome, notebook=NOTEBOOK)
    return section


def audit_mechanism_section(project: Project, mechanism: Mechanism, change: AuditChange, *,
                            chosen: ChosenComparison | None = None) -> Section:
    """A mechanism measured by an audit area (or ``all_areas``): shown, not recorded."""
    focus = change.for_area(audit_area(mechanism))
    return _audit_items(Section(heading=f"Mechanism: {mechanism.statement}",
                                sentence=focus.sentence, level=3), focus, chosen)


def audit_measures(options: AuditOptions) -> set[str]:
    return set(options.measures())


def _audit_items(section: Section, focus: AuditChange,
                 chosen: ChosenComparison | None) -> Section:
    section.table(audit_table(focus), "How schools' ratings moved, by area",
                  percent=("Of those that changed: % moved up", "CI low", "CI high"))
    section.figure(focus.plot(), "Share of schools whose rating moved down, stayed the "
                   "same and moved up, by area and over all areas")
    # Not ``wide`` (see _comparison_items): the heatmap is about as tall as it is wide, so a
    # landscape page would print it no larger than the portrait page does.
    section.figure(focus.heatmap(), "The rating of each school in each area at baseline "
                   "and at follow-up (darker is a higher level)")
    areas = list(focus.transitions) if focus.focus == ALL_AREAS else [focus.focus]
    for area in areas:
        section.table(transitions_table(focus, area),
                      f"{focus.area_names.get(area, area)}: ratings at baseline and follow-up "
                      "(number of schools)")
    if chosen is not None:
        section.text(escape_markdown(chosen.sentence))
        table = chosen.summary.rename(columns={
            "n_schools": "Schools", "mean_change_chosen": "Mean change, chosen areas",
            "mean_change_others": "Mean change, other areas", "difference": "Difference",
            "ci_low": "CI low", "ci_high": "CI high",
            "n_chosen_moved_more": "Chosen areas moved more",
            "n_same": "The same", "n_chosen_moved_less": "Chosen areas moved less",
            "sign_test_p": "Sign test p", "wilcoxon_W": "Wilcoxon W",
            "wilcoxon_p": "Wilcoxon p"})
        section.table(table, "Areas schools chose to work on against their other areas "
                      "(levels moved)")
    return section
