"""The baseline/follow-up report on the demo project: true effects, privacy, records."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from evaluation.demo import TRUE_EFFECTS
from evaluation.project import open_project
from evaluation.sections import baseline_followup
from tests.conftest import REPO

PUPIL_ID = re.compile(r"^(P[0-9a-f]{12}|Z\d{12})$")


@pytest.fixture(scope="module")
def project():
    return open_project(REPO / "params" / "demo.yaml", REPO / "reports" / "_test_bf.json")


@pytest.fixture(scope="module")
def sections(project):
    return {o.id: baseline_followup.outcome_section(project, o)
            for o in project.toc.outcomes_for("baseline_followup")}


def test_every_outcome_has_a_section(sections):
    assert set(sections) == {"sdq_difficulties", "attendance_targeted"}


@pytest.mark.parametrize("outcome, measure", [
    ("sdq_difficulties", "sdq_teacher_total"),
    ("attendance_targeted", "attendance_pct"),
])
def test_adjusted_difference_recovers_the_true_effect(sections, outcome, measure):
    truth = TRUE_EFFECTS["scores"][measure]["adjusted_difference"]
    result = sections[outcome].result
    assert result.ci_low < truth < result.ci_high
    assert result.verdict == "improved"
    assert result.unit == "points (adjusted difference)"
    assert result.n == 149 + 85


def test_programme_change_matches_a_direct_computation(project, sections):
    from scipy import stats

    data = baseline_followup.outcome_data(project, project.toc.outcome("sdq_difficulties"))
    paired = data[data["group"] == "programme"].dropna(subset=["baseline", "follow_up"])
    table = sections["sdq_difficulties"].tables()["Programme pupils: baseline and follow-up"]
    row = table.iloc[-1]
    assert row["Pupils (pairs)"] == len(paired)
    diff = paired["follow_up"] - paired["baseline"]
    assert row["Mean change"] == pytest.approx(diff.mean())
    assert row["p"] == pytest.approx(stats.ttest_rel(paired["follow_up"],
                                                     paired["baseline"]).pvalue)


def test_no_table_shows_a_pupil_id(sections):
    for section in sections.values():
        for caption, table in section.tables().items():
            assert "pupil_id" not in table.columns, caption
            values = table.astype(str).stack()
            assert not values.str.match(PUPIL_ID).any(), caption


def test_small_groups_are_withheld(project, sections):
    bands = next(t for c, t in sections["sdq_difficulties"].tables().items() if "bands" in c)
    cells = bands.drop(columns="Baseline band").stack()
    numbers = pd.to_numeric(cells, errors="coerce")
    assert ((numbers == 0) | (numbers >= project.min_count) | numbers.isna()).all()
    assert cells.astype(str).str.contains("fewer than").any()
    subgroups = next(t for c, t in sections["sdq_difficulties"].tables().items()
                     if "by characteristic" in c)
    small = subgroups["Pupils (pairs)"] < project.min_count
    assert subgroups.loc[small, "Mean change"].isna().all()


def test_reliable_change_shown_only_with_a_reliability(sections):
    sdq = sections["sdq_difficulties"]
    attendance = sections["attendance_targeted"]
    assert any("Reliable" in c for c in sdq.tables())
    assert not any("Reliable" in c for c in attendance.tables())
    assert len(sdq.figures()) == 2 and len(attendance.figures()) == 1
    assert all(alt for _, alt in sdq.figures())
