"""Tests for evaluation.sections.tracking (the referral-tracking report) and
evaluation.privacy, on the synthetic demo project whose true effects are documented in
data/raw/demo/README.md and evaluation.demo.TRUE_EFFECTS."""

from __future__ import annotations

import re
import weakref
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

from evaluation import privacy, tracking  # noqa: E402
from evaluation.demo import TRUE_EFFECTS  # noqa: E402
from evaluation.errors import DataError, ParamsError  # noqa: E402
from evaluation.params import KpiTarget, ReferralTrackingOptions  # noqa: E402
from evaluation.project import open_project  # noqa: E402
from evaluation.results import load_results, verdict  # noqa: E402
from evaluation.sections import Section  # noqa: E402
from evaluation.sections import tracking as S  # noqa: E402
from evaluation.toc import Outcome  # noqa: E402

from .conftest import REPO  # noqa: E402

PUPIL_ID = re.compile(r"^P[0-9a-f]{12}$")
DEMO_UPN = re.compile(r"^Z\d{12}$")
BOARD_SECTIONS = (
    S.promises_section, S.kpi_section, S.flow_section, S.time_open_section,
    S.outcomes_section, S.costs_section, S.attendance_section, S.suspensions_section,
    S.survival_section, S.disproportionality_section, S.quality_section,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    results = tmp_path_factory.mktemp("tracking") / "results.json"
    return open_project(REPO / "params" / "demo.yaml", results)


@pytest.fixture(scope="module")
def sections(project) -> dict[str, Section]:
    built = {f.__name__: f(project) for f in BOARD_SECTIONS}
    for outcome in project.toc.outcomes_for("referral_tracking"):
        built[outcome.id] = S.outcome_section(project, outcome)
    return built


def all_tables(sections: dict[str, Section]) -> list[tuple[str, str, pd.DataFrame]]:
    return [(name, caption, frame) for name, sec in sections.items()
            for caption, frame in sec.tables().items()]


# ------------------------------------------------------------------ every section builds


def test_every_section_builds_with_text_tables_and_accessible_figures(sections):
    assert set(sections) >= {f.__name__ for f in BOARD_SECTIONS} | {"referral_attendance",
                                                                     "needs_met"}
    for name, sec in sections.items():
        assert isinstance(sec, Section) and sec.heading and sec.sentence, name
        assert sec.level == 3, name  # under the notebook's static "##" headings
        for fig, alt in sec.figures():
            assert len(alt) > 40, (name, alt)
            for ax in fig.axes:
                if ax.get_visible() and ax.has_data():
                    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title(), name
    n_figures = sum(len(s.figures()) for s in sections.values())
    assert n_figures >= 6  # KPIs, caseload, funnel, needs met, event study, survival
    kpis = sections["kpi_section"].tables()["Pathway KPIs by term"]
    assert kpis["Period"].tolist()[0] == "2021/22 autumn" and len(kpis) == 9
    # RAG in words in every rated cell, never colour alone
    on_time = kpis["First response within 2 working days"]
    assert on_time.str.contains(r"\((?:green|amber|red)\)$").all()


# ------------------------------------------------------------------ privacy


def test_no_table_shows_a_pupil(project, sections):
    for name, caption, frame in all_tables(sections):
        cols = {str(c).strip().lower() for c in frame.columns}
        assert not cols & (privacy.IDENTIFYING_COLUMNS | privacy.RECORD_ID_COLUMNS), caption
        cells = pd.concat([frame.reset_index()[c].astype(str) for c in
                           frame.reset_index().columns], ignore_index=True)
        for pattern in (PUPIL_ID, DEMO_UPN):
            assert not cells.str.match(pattern).any(), (name, caption)
        assert privacy.identifying_cells(frame) == [], caption
    # the data really do hold such ids, so the check above could fail
    reg = S.tracking_data(project).register
    assert reg.table["pupil_id"].str.match(PUPIL_ID).all()


def test_small_counts_are_withheld(project, sections):
    k = project.min_count
    for name, caption, frame in all_tables(sections):
        for col in frame.columns:
            if str(frame[col].dtype) == "Int64":  # the board tables' counts
                v = frame[col].dropna()
                assert not ((v > 0) & (v < k)).any(), (name, caption, col)
    # needs met by SEN status: "EHC plan" has 3 other outcomes (withheld, primary), and
    # "SEN support" is withheld too, or subtraction from the total would reveal EHC plan
    by = sections["outcomes_section"].tables()[
        "Needs met at closure, by reason, school and pupil characteristics"]
    sen = by[by["Characteristic"] == "SEN status"].set_index("Group")
    # by school: every school that referred has a row; shown counts match outcomes_by
    schools = by[by["Characteristic"] == "School"].set_index("Group")
    raw_school = tracking.outcomes_by(S.tracking_data(project).register,
                                      "school_id").set_index("school_id")
    assert set(schools.index) == set(raw_school.index.astype(str))
    shown = schools["Referrals"].dropna()
    assert len(shown) >= 3
    for school, n in shown.items():
        assert n == raw_school.loc[school, "n"]
    raw = tracking.outcomes_by(S.tracking_data(project).register, "sen_status").set_index(
        "sen_status")
    assert raw.loc["EHC plan", "n"] - raw.loc["EHC plan", "successes"] < k
    assert sen.loc["EHC plan"].drop("Characteristic").isna().all()
    assert sen.loc["SEN support", "Referrals"] is pd.NA
    assert sen.loc["none", "Referrals"] == raw.loc["none", "n"]
    # README: 3 of 62 Black Caribbean boys in programme schools were referred -> withheld
    named = sections["disproportionality_section"].tables()[
        "The named group against all other pupils"].set_index("Event")
    assert named.loc["referral", ["Group with event", "Risk ratio"]].isna().all()
    assert named.loc["suspension", "Pupils in group"] == 62
    assert "fewer than 5" in sections["disproportionality_section"].sentence
    assert sections["disproportionality_section"].sentence.startswith("Black Caribbean boys")


def test_privacy_helpers():
    t = pd.DataFrame({"pupil_id": ["P0123456789ab"], "Referral_ID ": ["R1"], "name": ["A"],
                      "n": [3]})
    assert list(privacy.drop_identifiers(t).columns) == ["n"]
    assert list(privacy.drop_identifiers(t, record_ids=False).columns) == ["Referral_ID ", "n"]
    hidden = pd.DataFrame({"group": ["Z123456789012", "x"], "n": [1, 2]})
    assert privacy.identifying_cells(hidden) and privacy.identifying_cells(t)
    with pytest.raises(DataError, match="identifying"):
        privacy.check_board_safe(hidden, "caption")
    assert tracking.suppress is privacy.suppress
    # secondary suppression: one small row in a block takes the next smallest with it
    t = pd.DataFrame({"block": ["a", "a", "a", "b", "b"], "n": [3, 40, 12, 20, 30],
                      "pct": [1.0, 2.0, 3.0, 4.0, 5.0]})
    out = privacy.suppress(t, "n", 5, derived_cols=["pct"], secondary="block")
    assert out["n"].isna().tolist() == [True, False, True, False, False]
    assert out["pct"].isna().tolist() == [True, False, True, False, False]
    assert "cannot be worked out" in out.loc[2, "note"]
    primary = privacy.suppress(t, "n", 5, derived_cols=["pct"])
    assert primary["n"].isna().tolist() == [True, False, False, False, False]


# ------------------------------------------------------------------ true effects


def test_recovers_the_demo_true_effects(project, sections):
    d = S.tracking_data(project)
    # Attendance +4 points from the week of the first start (the start week counts as
    # follow-up in both the generator and attendance_around_start).
    att = sections["referral_attendance"].result
    truth = TRUE_EFFECTS["attendance"]["effect_after_first_start_points"]
    assert att.ci_low < truth < att.ci_high
    assert att.n > 250
    # ~80% of referrals answered within 2 working days
    overall = tracking.pathway_kpis(d.register, 2, "all").set_index("kpi")
    row = overall.loc["pct_response_within_target"]
    k = round(row["value"] * row["n"] / 100)
    lo, hi = proportion_confint(k, row["n"], method="wilson")
    assert lo < TRUE_EFFECTS["referrals"]["first_response_within_2_working_days"] < hi
    # needs met 65% of closed referrals
    nm = sections["needs_met"].result
    assert nm.ci_low < TRUE_EFFECTS["referrals"]["closure_outcome_probs"]["needs met"] < nm.ci_high
    closed = d.register.table["needs_met"].dropna()
    assert nm.n == len(closed) and nm.estimate == pytest.approx(closed.mean())
    assert (nm.ci_low, nm.ci_high) == pytest.approx(
        proportion_confint(int(closed.sum()), len(closed), method="wilson"))


def test_results_have_outcome_ids_units_and_verdicts(project, sections):
    att = sections["referral_attendance"].result
    assert (att.outcome_id, att.analysis, att.measure) == (
        "referral_attendance", "referral_tracking", "attendance_pct")
    assert att.unit == "percentage points" and att.null == 0
    assert att.verdict == "improved" and att.notebook == S.NOTEBOOK
    assert att.headline.startswith("Attendance +3.5 points")
    nm = sections["needs_met"].result
    assert (nm.outcome_id, nm.measure, nm.unit) == ("needs_met", "needs_met",
                                                    "proportion of closed referrals")
    # target read from the ToC text "At least 70% of closed referrals ..."
    assert nm.null == pytest.approx(0.70)
    assert nm.verdict == verdict(nm.ci_low, nm.ci_high, null=0.70,
                                 direction="higher_is_better") == "no clear change"
    assert "70%" in nm.headline and "theory of change" in nm.sentence
    for sec in (sections["referral_attendance"], sections["needs_met"]):
        project.record(sec.result)
    recorded = load_results(project.results_file).set_index("outcome_id")
    assert recorded.loc["needs_met", "verdict"] == "no clear change"
    assert recorded.loc["referral_attendance", "verdict"] == "improved"


def test_needs_met_target_prefers_parameters_then_toc_text(project):
    outcome = project.toc.outcome("needs_met")
    assert S.needs_met_target(project, outcome)[0] == pytest.approx(0.70)
    opts = ReferralTrackingOptions(targets={"needs_met": KpiTarget(green=60, amber=50)})
    fake = SimpleNamespace(params=SimpleNamespace(analyses=SimpleNamespace(
        referral_tracking=opts)), toc=project.toc)
    value, source = S.needs_met_target(fake, outcome)
    assert value == pytest.approx(0.60) and "parameters" in source
    no_target = outcome.model_copy(update={"target": "Most needs met"})
    bare = SimpleNamespace(params=SimpleNamespace(analyses=SimpleNamespace(
        referral_tracking=ReferralTrackingOptions())), toc=project.toc)
    assert S.needs_met_target(bare, no_target) is None


def test_outcome_dispatcher_rejects_unknown_measures(project):
    odd = Outcome(id="wellbeing", statement="Pupils feel better", measure="sdq_teacher_total",
                  analysis="referral_tracking", data="scores", direction="lower_is_better")
    with pytest.raises(ParamsError, match="wellbeing.*attendance_pct.*needs_met"):
        S.outcome_section(project, odd)
    wrong_table = Outcome(id="att2", statement="s", measure="attendance_pct",
                          analysis="referral_tracking", data="scores",
                          direction="higher_is_better")
    with pytest.raises(ParamsError, match="att2.*scores.*attendance table"):
        S.outcome_section(project, wrong_table)


def test_kpi_sentences_and_targets_use_the_parameters(project, sections):
    kpi = sections["kpi_section"]
    # the demo's target names (response_within_target, dosage, ...) are KPI aliases
    assert "(target 90%: amber)" in kpi.sentence
    text = " ".join(i.payload for i in kpi.items if i.kind == "text")
    assert "2023/24 summer was still under way" in text
    promises = sections["promises_section"].tables()[
        "Pathway targets (RAG thresholds from the project's parameters)"]
    assert promises["Green"].tolist() == ["≥ 90%", "≥ 95%", "≥ 80%", "≥ 90%"]
    assert S.data_end_date(project) == pd.Timestamp("2024-07-19")
    # costs are whole pounds, counts whole numbers
    costs = sections["costs_section"].tables()["Costs by intervention type"]
    assert costs["Total cost (£)"].str.match(r"^£[\d,]+$").all()
    assert str(costs["Pupils"].dtype) == "Int64"


def test_quality_section_counts_problems_without_ids(project):
    # a register with problems (the demo has none), reached through the section cache
    refs = pd.DataFrame({
        "referral_id": ["R1", "R2", "R3", "R4", "R5", "R6", None],
        "pupil_id": ["P0123456789ab", "P0123456789ab", "P1", "P2", "P3", "P4", "P5"],
        "referral_date": pd.to_datetime(["2024-01-10", "2024-02-01"] + ["2024-01-10"] * 5),
        # R2-R6: a first response before the referral (5 records)
        "first_response_date": pd.to_datetime(["2024-01-12"] + ["2024-01-05"] * 5 + [None]),
    })
    ivs = pd.DataFrame({"intervention_id": ["I1"], "referral_id": ["R9"],
                        "intervention": ["mentoring"],
                        "start_date": pd.to_datetime(["2024-02-01"])})
    rvs = pd.DataFrame({"review_id": pd.Series([], dtype="str"),
                        "referral_id": pd.Series([], dtype="str"),
                        "review_date": pd.to_datetime(pd.Series([], dtype="str"))})
    reg = tracking.build_register(refs, ivs, rvs, today="2024-06-01")

    class Fake:  # a stand-in project: only what quality_section reads
        min_count = project.min_count

    fake = Fake()
    data = S.TrackingData(options=ReferralTrackingOptions(), register=reg, kpis=pd.DataFrame(),
                          pupils=None, attendance=None, suspensions=None, min_count=5,
                          pupil=tracking.PupilAnalyses(reg, background=False))
    S._CACHE[id(fake)] = (weakref.ref(fake), data)
    sec = S.quality_section(fake)
    table = sec.tables()["Data-quality problems by check"].set_index("Problem")
    # 5 negative response times (shown); a pupil referred twice, an unknown referral id and
    # a missing referral id (1 record each: withheld)
    assert table.loc["negative duration: first response before the referral date",
                     "Records"] == 5
    for check in ("pupil referred again while an earlier referral was open",
                  "unknown referral id", "no referral id"):
        assert pd.isna(table.loc[check, "Records"]), check
    assert privacy.identifying_cells(table.reset_index()) == []
    assert not table.reset_index().isin(["R9", "P0123456789ab", "I1"]).any().any()
    assert "left out" in sec.sentence
