"""Tests for the board summary sections, built from the demo project and hand-made results."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the tests must not need a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evaluation import privacy, report  # noqa: E402
from evaluation.project import Project, open_project  # noqa: E402
from evaluation.results import SCHEMA, Result, load_results, record_result  # noqa: E402
from evaluation.sections import summary  # noqa: E402
from evaluation.toc import NOT_YET_MEASURED  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "params" / "demo.yaml"


def _result(outcome_id: str, analysis: str, verdict: str, **kw) -> Result:
    base = dict(
        outcome_id=outcome_id, analysis=analysis, measure=kw.pop("measure", outcome_id),
        estimate=-2.0, ci_low=-3.1, ci_high=-0.9, unit="points", null=0.0, n=234,
        period="October 2021 to July 2022", direction="lower_is_better", verdict=verdict,
        headline=f"Headline for {outcome_id}", sentence=f"Sentence found for {outcome_id}.",
        notebook="10_baseline_followup.ipynb",
    )
    base.update(kw)
    return Result(**base)


# What the hand-made analyses "found": needs_met is enabled but has no result; belonging
# has no measure; referral_attendance rests on fewer pupils than min_count (5).
RECORDS = [
    _result("sdq_difficulties", "baseline_followup", "improved"),
    _result("attendance_targeted", "baseline_followup", "worsened", measure="attendance_pct",
            estimate=-1.5, ci_low=-2.5, ci_high=-0.5, direction="higher_is_better"),
    _result("suspensions", "its", "improved", estimate=0.77, ci_low=0.65, ci_high=0.91,
            unit="rate ratio", null=1.0, n=21, period="2017/18 to 2023/24",
            headline="Suspensions −23%, RR 0.77 (0.65 to 0.91)",
            notebook="20_exclusions_its.ipynb"),
    _result("referral_attendance", "referral_tracking", "no clear change",
            measure="attendance_pct", estimate=1.2, ci_low=-0.5, ci_high=2.9, n=3,
            direction="higher_is_better", notebook="30_referral_tracking.ipynb"),
    # Not an outcome of the demo theory of change: reported, not counted.
    _result("kpi_response", "referral_tracking", "improved", n=300),
]
EXPECTED = {
    "sdq_difficulties": "improved",
    "attendance_targeted": "worsened",
    "suspensions": "improved",
    "referral_attendance": "no clear change",
    "needs_met": NOT_YET_MEASURED,
    "belonging": NOT_YET_MEASURED,
    "inclusive_provision": NOT_YET_MEASURED,  # its analysis (the audit) records nothing here
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    results_file = tmp_path_factory.mktemp("summary") / "results.json"
    for record in RECORDS:
        record_result(results_file, record, project="demo")
    project = open_project(DEMO, results_file)
    # belonging without a measure: the "no measure yet" path (the demo's own ToC may give
    # it one), whatever other outcomes the demo adds (they are not yet measured here)
    toc = project.toc.model_copy(update={"outcomes": [
        o.model_copy(update={"measure": None, "analysis": None, "target": None})
        if o.id == "belonging" else o for o in project.toc.outcomes]})
    return dataclasses.replace(project, toc=toc)


def _expected(project: Project) -> dict[str, str]:
    return {o.id: EXPECTED.get(o.id, NOT_YET_MEASURED) for o in project.toc.outcomes}


def _count(project: Project, verdict: str) -> int:
    return list(_expected(project).values()).count(verdict)


@pytest.fixture(scope="module")
def empty_project(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The same project with a results file that holds no records yet."""
    results_file = tmp_path_factory.mktemp("empty") / "results.json"
    results_file.write_text(json.dumps({"schema": SCHEMA, "project": "demo", "records": []}))
    return dataclasses.replace(project, results_file=results_file)


def _markdown(section) -> str:
    """The Markdown source of a section's text items (user text in it is escaped)."""
    return "\n".join(i.payload for i in section.items if i.kind == "text")


def _texts(section) -> str:
    """What a reader sees of a section's text items: rendered, tags stripped."""
    rendered = "\n".join(report.markdown(i.payload).data
                         for i in section.items if i.kind == "text")
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


def _by_statement(project: Project) -> dict[str, str]:
    return {o.statement: o.id for o in project.toc.outcomes}


# --------------------------------------------------------------------------- status


def test_outcome_status_verdicts_and_reasons(project: Project) -> None:
    statuses = {s.outcome.id: s for s in summary.outcome_status(project)}
    assert {k: s.verdict for k, s in statuses.items()} == _expected(project)
    assert "does not yet name a measure" in statuses["belonging"].reason
    assert "has not recorded a result" in statuses["needs_met"].reason
    assert "referral tracking analysis" in statuses["needs_met"].reason
    # board text: no file names, option paths or ids
    for status in statuses.values():
        assert ".ipynb" not in status.reason and "analyses." not in status.reason
    assert statuses["suspensions"].result["headline"].startswith("Suspensions −23%")


def test_disabled_analysis_is_not_yet_measured_even_with_a_stale_result(
    project: Project,
) -> None:
    params = project.params.model_copy(deep=True)
    params.analyses.its = None
    without_its = dataclasses.replace(project, params=params)
    status = {s.outcome.id: s for s in summary.outcome_status(without_its)}["suspensions"]
    assert status.verdict == NOT_YET_MEASURED
    assert "not switched on" in status.reason and "analyses." not in status.reason


def test_the_tocs_own_analysis_wins_when_two_analyses_record_an_outcome(
    project: Project, tmp_path: Path
) -> None:
    results_file = tmp_path / "results.json"
    record_result(results_file, _result("sdq_difficulties", "baseline_followup", "improved"))
    record_result(results_file, _result("sdq_difficulties", "its", "worsened"))
    other = dataclasses.replace(project, results_file=results_file)
    status = summary.outcome_status(other)[0]
    assert status.outcome.id == "sdq_difficulties"
    assert (status.verdict, status.result["analysis"]) == ("improved", "baseline_followup")


# --------------------------------------------------------------------------- at a glance


def test_verdict_count_sentence(project: Project) -> None:
    section = summary.at_a_glance(project)
    statuses = summary.outcome_status(project)
    n, waiting = len(statuses), _count(project, NOT_YET_MEASURED)
    assert summary.verdict_count_sentence(statuses) == (
        f"Of {n} outcomes, 2 improved, 1 showed no clear change, 1 worsened and {waiting} "
        "are not yet measured."
    )
    assert summary.verdict_count_sentence(statuses) in _texts(section)
    # The wording in the brief: singular verbs for one outcome, zero counts left out.
    toc = project.toc
    fake = [
        summary.OutcomeStatus(o, v, result=None if v == NOT_YET_MEASURED else {"n": 9})
        for o, v in zip(
            toc.outcomes,
            ["improved"] * 4 + ["no clear change", NOT_YET_MEASURED],
            strict=True,
        )
    ]
    assert summary.verdict_count_sentence(fake) == (
        "Of 6 outcomes, 4 improved, 1 showed no clear change and 1 is not yet measured."
    )
    # Worsened outcomes are named, and results for ids outside the ToC are not counted.
    assert "**Worsened:** Targeted pupils\\' attendance improves." in _markdown(section)
    text = _texts(section)
    assert "Worsened: Targeted pupils' attendance improves." in text
    assert "1 outcome that the theory of change does not list" in text
    assert "not counted" in text and "kpi_response" not in text


def test_outcome_table_withholds_small_n(project: Project) -> None:
    table = summary.outcome_table(project)
    ids = table["Outcome"].map(_by_statement(project))
    assert list(ids) == [o.id for o in project.toc.outcomes]
    assert list(table["Verdict"]) == [_expected(project)[i] for i in ids]
    # n = 3: the same withheld mark as every other page, and no estimate for the group
    row = table[ids == "referral_attendance"].iloc[0]
    assert (row["n"], row["Estimate"], row["95% CI"]) == (privacy.WITHHELD,) * 3
    for n in table["n"]:
        assert n == privacy.WITHHELD or pd.isna(n) or n >= project.min_count
    sus = table[ids == "suspensions"].iloc[0]
    assert (sus["Estimate"], sus["95% CI"], sus["Unit"], sus["n"], sus["Data period"]) == (
        "0.77", "0.65\u00a0to\u00a00.91", "rate ratio", 21, "2017/18 to 2023/24"
    )
    # printed by results.format_figure from the record: points to 1 decimal, a true minus
    sdq = table[ids == "sdq_difficulties"].iloc[0]
    assert (sdq["Estimate"], sdq["95% CI"]) == ("\u22122.0", "\u22123.1\u00a0to\u00a0\u22120.9")
    belonging = table[ids == "belonging"].iloc[0]
    assert belonging["Estimate"] == "–" and pd.isna(belonging["n"])


def test_outcome_table_as_shown_explains_the_mark_once(project: Project, monkeypatch) -> None:
    shown: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    summary.show_body(summary.at_a_glance(project))
    page = " ".join(o.data for o in shown)
    assert page.count(html.escape(project.disclosure.note())) == 1
    assert "fewer than" not in page
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    assert privacy.WITHHELD in cells and "ratio 0.77 (0.65 to 0.91)" in cells


def test_a_withheld_n_never_reappears_on_the_summary(project: Project, tmp_path: Path,
                                                     monkeypatch) -> None:
    """A result recorded with n = 3 and a sentence naming 3 pupils: the board sees neither
    the 3 nor the estimate, in the table, the paragraph, the diagram or the period report."""
    results_file = tmp_path / "results.json"
    record_result(results_file, _result(
        "referral_attendance", "referral_tracking", "improved", n=3, estimate=7.25,
        ci_low=1.5, ci_high=13.0, headline="Attendance +7.25 points (1.5 to 13.0)",
        sentence="The 3 pupils gained 7.25 points."), project="demo")
    small = dataclasses.replace(project, results_file=results_file)
    shown: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    sections = [summary.at_a_glance(small), summary.diagram_section(small),
                *summary.outcome_sections(small), *summary.reporting_period_sections(small)]
    alts = " ".join(alt for s in sections for _, alt in s.figures())
    for section in sections:
        section.show()
    page = " ".join(o.data for o in shown) + alts
    assert "7.25" not in page and "7.2" not in page and "13.0" not in page
    assert "3 pupils" not in page
    assert "The result rests on a count of fewer than 5 and is withheld ([c])" in page
    assert "Result withheld [c]" in alts
    # an internal report shows it all, and says so
    internal = dataclasses.replace(small, params=small.params.model_copy(update={
        "report": small.params.report.model_copy(update={"audience": "internal"})}))
    table = summary.outcome_table(internal)
    assert 3 in list(table["n"]) and "+7.2" in list(table["Estimate"])
    assert "internal report" in _texts(summary.how_to_read(internal))


# --------------------------------------------------------------------------- diagram


def test_diagram_carries_headlines_and_verdicts(project: Project) -> None:
    section = summary.diagram_section(project)
    [(fig, alt)] = section.figures()
    assert "Suspensions −23%, RR 0.77 (0.65 to 0.91); verdict: improved" in alt
    assert "Pupils feel they belong in school (no measure, not yet measured" in alt
    assert "Referred pupils' needs are met (not yet measured" in alt
    assert "kpi_response" not in alt
    # Statements ending in a full stop must not leave "schools.;" or ".." in the text.
    assert ".;" not in alt and ".." not in alt and ".," not in alt
    drawn = " ".join(" ".join(t.get_text().split()) for t in fig.findobj(plt.Text))
    assert "Suspensions −23%, RR 0.77 (0.65 to 0.91)" in drawn
    assert "Verdict: worsened" in drawn
    assert alt == fig._evalkit_alt


# --------------------------------------------------------------------------- outcomes


def test_each_outcome_paragraph_names_its_verdict(project: Project) -> None:
    sections = summary.outcome_sections(project)
    assert [s.heading for s in sections] == [o.statement for o in project.toc.outcomes]
    for section, outcome in zip(sections, project.toc.outcomes, strict=True):
        verdict = EXPECTED[outcome.id]
        text = _texts(section)
        assert section.level == 3
        assert section.sentence == f"Verdict: {verdict}"
        assert f"**Verdict: {verdict}**, because {summary.VERDICT_WORDS[verdict]}." in (
            _markdown(section))
        if outcome.target:
            assert str(outcome.target) in text
        if outcome.timescale:
            assert outcome.timescale in text
        if outcome.id == "referral_attendance":  # n = 3: what was found is withheld
            assert "Sentence found" not in text
            assert "rests on a count of fewer than 5 and is withheld ([c])" in text
        elif verdict != NOT_YET_MEASURED:
            assert f"Sentence found for {outcome.id}." in text
    texts = {o.id: _texts(s) for o, s in zip(project.toc.outcomes, sections, strict=True)}
    assert "Not yet measured: the theory of change does not yet name a measure" in (
        texts["belonging"]
    )
    assert "has not recorded a result" in texts["needs_met"]
    links = {o.id: [i.payload for i in s.items if i.kind == "link"]
             for o, s in zip(project.toc.outcomes, sections, strict=True)}
    assert links["suspensions"] == [
        ("Details are in the ", "interrupted time series report", "20_exclusions_its.html", ".")
    ]
    assert links["belonging"] == []


# --------------------------------------------------------------------------- action plan


def test_action_plan_sorted_by_due_date_with_rag_words(project: Project) -> None:
    section = summary.action_plan(project)
    table = section.tables()["Activities by due date"]
    due = [dt.datetime.strptime(d, "%d %b %Y").date() for d in table["Due"]]
    assert due == sorted(a.due for a in project.toc.activities)
    assert len(due) == len(project.toc.activities)
    by_what = {a.what: a for a in project.toc.activities}
    for _, row in table.iterrows():
        activity = by_what[row["Activity"]]
        assert row["Owner"] == activity.owner
        assert row["RAG status"] == summary.RAG_WORDS[activity.rag]
        assert row["RAG status"].split(":")[0] in ("Green", "Amber", "Red")
    assert section.sentence == (
        "4 activities: 2 green (on track), 1 amber (at risk) and 1 red (off track)."
    )


# --------------------------------------------------------------------------- periods


def test_reporting_periods_with_their_fields(project: Project) -> None:
    sections = summary.reporting_period_sections(project)
    periods = project.toc.reporting_periods
    assert [s.heading for s in sections] == [p.period for p in reversed(periods)]
    latest, earlier = sections[0], sections[1]
    for section, period in zip(sections, reversed(periods), strict=True):
        for field in ("**Intended outcomes**", "**Activity last period**",
                      "**Activity planned next period**", "**Impact so far**",
                      "**Exit strategy**"):
            assert field in _markdown(section)
        text = _texts(section)
        assert " ".join(period.activity_last_period.split()) in " ".join(text.split())
        assert " ".join(period.activity_next_period.split()) in " ".join(text.split())
        assert " ".join(period.exit_strategy.split()) in " ".join(text.split())
    latest_text = _texts(latest)
    for outcome in project.toc.outcomes:
        assert outcome.statement in latest_text
        if outcome.target:
            assert str(outcome.target).rstrip(".") in latest_text
    assert f"Of {len(project.toc.outcomes)} outcomes, 2 improved" in latest_text
    assert "Suspensions −23%, RR 0.77 (0.65 to 0.91) (improved)" in latest_text
    assert "Pupils feel they belong in school: not yet measured." in latest_text
    assert f"As listed under {periods[-1].period}" in _texts(earlier)


def test_no_reporting_periods_says_so_in_plain_words(project: Project) -> None:
    toc = project.toc.model_copy(update={"reporting_periods": []})
    [section] = summary.reporting_period_sections(dataclasses.replace(project, toc=toc))
    assert "lists no reporting periods yet" in section.sentence
    assert "`" not in section.sentence and "reporting_periods" not in section.sentence


# --------------------------------------------------------------------------- the rest


def test_conditions_and_how_to_read(project: Project) -> None:
    section = summary.conditions_section(project)
    table = section.tables()["Moderating factors"]
    assert list(table["Status"]) == ["Partly in place", "Not yet in place"]
    assert section.sentence == (
        "Of 2 conditions the work needs, 1 is partly in place and 1 is not yet in place."
    )
    assert project.toc.assumptions[0] in _texts(section)
    guide = _texts(summary.how_to_read(project))
    assert "95% confidence interval" in guide
    assert "**No clear change**" in _markdown(summary.how_to_read(project))
    assert project.disclosure.note() in guide and "fewer than 5 pupils" in guide


def test_results_provenance_names_each_report(project: Project) -> None:
    assert summary.results_provenance(project).tables() == {}  # a board: no record table
    internal = dataclasses.replace(project, params=project.params.model_copy(update={
        "report": project.params.report.model_copy(update={"audience": "internal"})}))
    section = summary.results_provenance(internal)
    table = section.tables()["Recorded results by report"]
    # the pages' titles as the index lists them, never file names
    assert set(table["Report"]) == {
        "Baseline and follow-up", "Exclusions: interrupted time series",
        "Referral pathway tracking"}
    assert "results.json" not in section.sentence


def test_show_body_displays_no_heading(project: Project, monkeypatch) -> None:
    shown: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    summary.show_body(summary.action_plan(project))
    html = " ".join(getattr(o, "data", "") or "" for o in shown)
    assert "<h2" not in html and "Activities by due date" in html
    assert "Red: off track" in html


# --------------------------------------------------------------------------- no results


@pytest.mark.parametrize("exists", [True, False])
def test_summary_with_no_results(empty_project: Project, tmp_path: Path, exists: bool) -> None:
    project = empty_project if exists else dataclasses.replace(
        empty_project, results_file=tmp_path / "missing.json"
    )
    glance = summary.at_a_glance(project)
    n = len(project.toc.outcomes)
    assert (f"No analysis results have been recorded yet: all {n} outcomes are not yet "
            "measured.") in _texts(glance)
    assert "run the analysis reports first" in _texts(glance)
    table = glance.tables()["Outcomes: verdicts and results"]
    assert set(table["Verdict"]) == {NOT_YET_MEASURED}
    assert set(table["Result (95% CI)"]) == {privacy.NOT_APPLICABLE}
    detail = summary.figures_section(project).tables()["Outcomes: verdict and estimate"]
    assert detail["n"].isna().all()
    for section in summary.outcome_sections(project):
        assert section.sentence == f"Verdict: {NOT_YET_MEASURED}"
    [(_, alt)] = summary.diagram_section(project).figures()
    assert "verdict:" not in alt
    latest = _texts(summary.reporting_period_sections(project)[0])
    assert latest.count(": not yet measured.") == n
    assert "No analysis has recorded a result yet" in _texts(summary.results_provenance(project))
    assert isinstance(project.results(), pd.DataFrame)


# --------------------------------------------------------------------------- one format


def test_the_outcome_table_prints_each_record_with_the_one_formatter(project: Project,
                                                                      tmp_path: Path) -> None:
    """The table's figures are results.format_figure of the record's numbers and unit, the
    formatter the analyses' headlines use: a proportion stays a percentage (65%, not 0.65),
    a ratio has 2 decimals, points 1 and a sign, and a minus is a true minus."""
    from evaluation.results import format_estimate

    results_file = tmp_path / "results.json"
    cases = {
        "needs_met": dict(analysis="referral_tracking", estimate=0.652, ci_low=0.591,
                          ci_high=0.709, unit="proportion of closed referrals", null=0.7,
                          direction="higher_is_better", verdict="no clear change"),
        "suspensions": dict(analysis="its", estimate=0.7749, ci_low=0.6502, ci_high=0.9137,
                            unit="ratio of observed to expected events after the "
                                 "interruption", null=1.0, verdict="improved"),
        "sdq_difficulties": dict(analysis="baseline_followup", estimate=-2.04, ci_low=-3.15,
                                 ci_high=-0.94, unit="points (mean change)",
                                 verdict="improved"),
    }
    for oid, kw in cases.items():
        headline = "Headline " + format_estimate(kw["estimate"], kw["ci_low"],
                                                 kw["ci_high"], kw["unit"])
        record_result(results_file, _result(oid, kw.pop("analysis"), kw.pop("verdict"),
                                            headline=headline, **kw), project="demo")
    table = summary.outcome_table(dataclasses.replace(project, results_file=results_file))
    rows = table.set_index(table["Outcome"].map(_by_statement(project)))
    shown = {oid: (rows.loc[oid, "Estimate"], rows.loc[oid, "95% CI"]) for oid in cases}
    assert shown == {
        "needs_met": ("65%", "59%\u00a0to\u00a071%"),
        "suspensions": ("0.77", "0.65\u00a0to\u00a00.91"),
        "sdq_difficulties": ("\u22122.0", "\u22123.1\u00a0to\u00a0\u22120.9"),
    }
    # and the headline prints the same figures
    for oid, (estimate, ci) in shown.items():
        recorded = load_results(results_file).set_index("outcome_id").loc[oid, "headline"]
        assert f"{estimate} ({ci.replace(chr(0xa0), ' ')})" in recorded


# --------------------------------------------------------------------------- board words


def test_verdict_table_leads_with_verdicts_targets_and_results(project: Project) -> None:
    """The first table: outcome, before/after verdict, the target verdict in the target's
    own words, and the figure with its CI as results.format_estimate prints it."""
    table = summary.verdict_table(project).set_index("Outcome")
    by_id = {o.id: o.statement for o in project.toc.outcomes}
    assert list(table.columns) == ["Verdict", "Target", "Result (95% CI)"]
    sdq = table.loc[by_id["sdq_difficulties"]]
    # −2.0 (−3.1 to −0.9) against "a fall of at least 2 points": the CI straddles −2
    assert sdq["Result (95% CI)"] == "\u22122.0 points (\u22123.1 to \u22120.9)"
    assert sdq["Target"] == "not yet clear (fall ≥ 2 points)"
    assert table.loc[by_id["suspensions"], "Result (95% CI)"] == "ratio 0.77 (0.65 to 0.91)"
    small = table.loc[by_id["referral_attendance"]]  # n = 3: nothing of it is shown
    assert (small["Result (95% CI)"], small["Target"]) == (privacy.WITHHELD,) * 2
    waiting = table.loc[by_id["needs_met"]]
    assert waiting["Result (95% CI)"] == privacy.NOT_APPLICABLE


def test_board_text_has_no_code_ids_or_option_paths(project: Project, monkeypatch) -> None:
    shown: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    sections = [summary.at_a_glance(project), *summary.outcome_sections(project),
                summary.figures_section(project), summary.action_plan(project),
                *summary.reporting_period_sections(project), summary.conditions_section(project),
                summary.how_to_read(project), summary.results_provenance(project)]
    for section in sections:
        section.show()
    page = html.unescape(re.sub(r"<[^>]+>", " ", " ".join(o.data for o in shown)))
    # (the hand-made records' own sentences name their ids: they are the analyses' words)
    page = re.sub(r"(Sentence found|Headline) for \w+", "", page)
    ids = [o.id for o in project.toc.outcomes if "_" in o.id]
    assert not [i for i in ids if i in page]
    assert "`" not in page and "analyses." not in page and ".ipynb" not in page
    assert "==" not in page and "True" not in page and "False" not in page


def test_the_index_opens_with_the_verdict_table(project: Project, tmp_path: Path) -> None:
    from evaluation import runner

    headlines = runner._headlines_html(project.params, project.results_file)
    assert "<th>Verdict</th><th>Target</th>" in headlines
    assert "ratio 0.77 (0.65 to 0.91)" in headlines
    assert "7.25" not in headlines and privacy.WITHHELD in headlines  # n = 3 withheld
    provenance = {"generated": "2026-12-05T10:00:00", "kit_version": "0",
                  "inputs": {"data.pupils": {"path": "pupils.csv", "sha256": "ab"}},
                  "parameters": {"analyses": {"referral_tracking": {
                      "disproportionality_group": "sex == 'M'"}}}}
    page = runner._index_html(project.params, [("Summary for the board", "90_summary.html")],
                              provenance, headlines)
    assert page.index("<th>Verdict</th>") < page.index("90_summary.html")
    assert "disproportionality_group" not in page  # the parameters: internal reports only
    assert "data: pupils" in page and "Glossary" in page and "Confidence interval" in page
