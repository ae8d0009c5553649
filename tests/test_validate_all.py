"""Validation in one place: everything a run would reject in the parameters or the theory of
change is found by `evalkit validate`, every problem at once, grouped by file; the shipped
examples stay valid."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evaluation import cli
from evaluation.intake import load_data
from evaluation.params import (
    KPIS,
    ProblemsError,
    check_project,
    load_params,
    load_project_files,
    project_notes,
)
from evaluation.toc import load_toc

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The demo's parameters and theory of change in a folder of their own, reading the
    demo's data where it is."""
    (tmp_path / "params").mkdir()
    (tmp_path / "toc_templates").mkdir()
    params = yaml.safe_load((REPO / "params" / "demo.yaml").read_text("utf-8"))
    for source in params["data"].values():
        source["path"] = str(REPO / source["path"])
    (tmp_path / "params" / "demo.yaml").write_text(yaml.safe_dump(params), "utf-8")
    toc = (REPO / "toc_templates" / "demo.yaml").read_text("utf-8")
    (tmp_path / "toc_templates" / "demo.yaml").write_text(toc, "utf-8")
    return tmp_path / "params" / "demo.yaml"


def _edit(file: Path, change) -> None:
    doc = yaml.safe_load(file.read_text("utf-8"))
    change(doc)
    file.write_text(yaml.safe_dump(doc), "utf-8")


def _toc(params_file: Path) -> Path:
    return params_file.parent.parent / "toc_templates" / "demo.yaml"


def _problems(params_file: Path) -> list[str]:
    with pytest.raises(ProblemsError) as info:
        load_project_files(params_file)
    return [f"{p.file.name}: {p}" for p in info.value.problems]


def _targets(**targets):
    return lambda d: d["analyses"]["referral_tracking"].update({"targets": targets})


def _outcome(index: int, **keys):
    return lambda d: d["outcomes"][index].update(keys)


# ----------------------------------------------------------------- the shipped examples


@pytest.mark.parametrize("params_file", sorted((REPO / "params").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_params_file_is_valid(params_file: Path) -> None:
    params, toc = load_project_files(params_file)
    assert check_project(params, toc, load_data(params, use_cache=False)) == []
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["validate", str(params_file)])
    assert code == 0, err.getvalue()
    assert out.getvalue().startswith(f"valid   {params_file}")


@pytest.mark.parametrize("toc_file", sorted((REPO / "toc_templates").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_toc_template_is_valid(toc_file: Path) -> None:
    assert load_toc(toc_file).outcomes


# ----------------------------------------------------------------- KPI targets


def test_a_misspelt_kpi_target_is_named_with_the_likely_name(demo: Path) -> None:
    _edit(demo, _targets(dosge={"green": 80, "amber": 70}))
    [problem] = _problems(demo)
    assert problem.startswith("demo.yaml: analyses.referral_tracking.targets.dosge: 'dosge' "
                              "is not a KPI (did you mean 'dosage'?)")


def test_kpi_names_short_names_and_closures_are_accepted(demo: Path) -> None:
    _edit(demo, _targets(pct_reviewed={"green": 90, "amber": 75},
                         days_to_response={"green": 2, "amber": 5},
                         **{"closures: needs met": {"green": 10, "amber": 5}}))
    targets = load_params(demo).analyses.referral_tracking.targets
    assert set(targets) == {"pct_reviewed", "days_to_response", "closures: needs met"}
    # a target without a direction hands the KPI's own on (tracking reads model_dump)
    assert targets["pct_reviewed"].model_dump() == {"green": 90, "amber": 75}


def test_two_targets_for_one_kpi_are_refused(demo: Path) -> None:
    _edit(demo, _targets(dosage={"green": 80, "amber": 70},
                         pct_sessions_attended={"green": 85, "amber": 70}))
    [problem] = _problems(demo)
    assert "are both targets for pct_sessions_attended; keep one" in problem


@pytest.mark.parametrize(("word", "right"), [("lower", "lower_is_better"),
                                             ("decrease", "lower_is_better"),
                                             ("higher", "higher_is_better")])
def test_a_kpi_direction_in_another_vocabulary_names_the_word_to_write(
        demo: Path, word: str, right: str) -> None:
    _edit(demo, _targets(days_to_response={"green": 2, "amber": 5, "direction": word}))
    [problem] = _problems(demo)
    assert problem.startswith("demo.yaml: analyses.referral_tracking.targets.days_to_response."
                              f"direction: write {right} rather than '{word}'")


def test_a_kpi_direction_orders_its_thresholds(demo: Path) -> None:
    _edit(demo, _targets(referrals_received={"green": 20, "amber": 40,
                                             "direction": "lower_is_better"}))
    target = load_params(demo).analyses.referral_tracking.targets["referrals_received"]
    assert target.direction == "lower_is_better"
    _edit(demo, _targets(days_to_response={"green": 5, "amber": 2}))  # lower is better
    [problem] = _problems(demo)
    assert "amber (2) is beyond green (5); with lower_is_better amber must be above green" \
        in problem


def test_the_kpi_list_has_every_kpi_tracking_computes() -> None:
    tracking = pytest.importorskip("evaluation.tracking")
    computed = getattr(tracking, "_KPI_NAMES", None) or getattr(tracking, "KPIS", None)
    assert computed is not None and set(computed) == set(KPIS)


# ----------------------------------------------------------------- ToC <-> parameters


def test_an_outcome_naming_a_source_the_parameters_lack(demo: Path) -> None:
    _edit(_toc(demo), _outcome(0, data="sdq_scores"))
    [problem] = _problems(demo)
    assert problem.startswith("demo.yaml: outcome 'sdq_difficulties', key 'data': names data "
                              "source 'sdq_scores', which is not under `data:`")


def test_an_outcome_naming_a_source_of_the_wrong_kind(demo: Path) -> None:
    _edit(_toc(demo), _outcome(3, data="referrals"))  # attendance_pct, referral tracking
    [problem] = _problems(demo)
    assert ("outcome 'referral_attendance', key 'data': source 'referrals' is a referrals "
            "table; expected an attendance table") in problem


@pytest.mark.parametrize(("index", "measure", "fragment"), [
    (0, "sdq_teachr_total", "'sdq_teachr_total' is neither in the kit's registry nor under "
                            "`measures:`"),
    (2, "exclusions", "'exclusions' is not a count of the exclusions table"),
    (4, "needs_met_pct", "'needs_met_pct' is not a measure the referral-tracking analysis "
                         "can evidence"),
])
def test_an_outcome_measure_its_analysis_cannot_measure(
        demo: Path, index: int, measure: str, fragment: str) -> None:
    _edit(_toc(demo), _outcome(index, measure=measure))
    [problem] = _problems(demo)
    assert "key 'measure': " + fragment in problem


def test_an_outcome_direction_against_its_measure(demo: Path) -> None:
    _edit(_toc(demo), _outcome(0, direction="higher_is_better"))  # SDQ difficulties
    [problem] = _problems(demo)
    assert ("key 'direction': higher_is_better, but 'sdq_teacher_total' is a measure where "
            "lower_is_better") in problem


def test_an_outcome_whose_analysis_is_off_is_a_note_not_a_problem(demo: Path) -> None:
    _edit(demo, lambda d: d["analyses"].pop("its"))
    params, toc = load_project_files(demo)
    assert [n for n in project_notes(params, toc) if "'suspensions'" in n] == [
        "outcome 'suspensions' is measured by its, which is not enabled under `analyses:` "
        "in demo.yaml: the summary will show it as not yet measured"]


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda d: d["analyses"]["baseline_followup"].update({"subgroups": ["sen", "fsm"]}),
     "analyses.baseline_followup.subgroups: 'sen' is not a column of the pupils table "
     "(did you mean 'sex'?)"),
    (lambda d: d["analyses"]["its"].update({"by": "school"}),
     "analyses.its: by: 'school' is not a column of the exclusions table"),
    (lambda d: d["analyses"]["its"].update({"outcome": "roll"}),
     "analyses.its: outcome: 'roll' is not a count"),
    (lambda d: d["measures"]["sdq_teacher_total"].update({"higher_is_better": False}),
     "measures.sdq_teacher_total.higher_is_better: write `direction: higher_is_better` or "
     "`direction: lower_is_better`"),
])
def test_analysis_options_are_checked(demo: Path, change, fragment: str) -> None:
    _edit(demo, change)
    [problem] = _problems(demo)
    assert fragment in problem


def test_a_project_measure_takes_a_direction(demo: Path) -> None:
    _edit(demo, lambda d: d["measures"].update({"wellbeing_scale": {
        "label": "Wellbeing", "min": 0, "max": 40, "direction": "higher_is_better"}}))
    assert load_params(demo).measures["wellbeing_scale"]["higher_is_better"] is True


# ----------------------------------------------------------------- needs the data


def _scores(*measures: str) -> pd.DataFrame:
    return pd.DataFrame({"pupil_id": "P1", "measure": list(measures),
                         "timepoint": "baseline", "score": 1.0})


def _exclusions(*starts: str) -> pd.DataFrame:
    return pd.DataFrame({"school_id": "S1", "period_start": pd.to_datetime(list(starts)),
                         "roll": 100, "suspensions": 1})


TERMS = ["2020-09-01", "2021-01-04", "2021-04-19", "2021-09-01", "2021-09-06", "2022-01-04",
         "2022-04-25"]


@pytest.mark.parametrize(("interruption", "why"), [
    ("2023-01-01", "is after the series ends"),
    ("2019-09-01", "leaves no period of the series before it"),
    ("2020-10-15", "leaves no period of the series before it"),  # inside the first term
    ("2021-09-01", None),
    ("2022-05-01", None),  # inside the last term: its.fit accepts it
])
def test_the_interruption_must_fall_inside_the_data(demo: Path, interruption: str,
                                                    why: str | None) -> None:
    _edit(demo, lambda d: d["analyses"]["its"].update({"interruption": interruption}))
    params, toc = load_project_files(demo)
    data = {"scores": _scores("sdq_teacher_total", "attendance_pct"),
            "exclusions": _exclusions(*TERMS)}
    problems = [str(p) for p in check_project(params, toc, data)]
    if why is None:
        assert problems == []
    else:
        assert problems == [
            f"analyses.its.interruption: {interruption} {why} (the exclusions table's "
            "period_start runs from 2020-09-01 to 2022-04-25); an interrupted time series "
            "needs periods before and after the interruption"]


def test_a_measure_without_rows_shows_the_measures_found(demo: Path) -> None:
    params, toc = load_project_files(demo)
    data = {"scores": _scores("SDQ Total", "attendance_pct"), "exclusions": _exclusions(*TERMS)}
    [problem] = check_project(params, toc, data)
    assert str(problem) == (
        "outcome 'sdq_difficulties', key 'measure': the scores table has no rows for measure "
        "'sdq_teacher_total' (measures found: 'SDQ Total', 'attendance_pct'); correct the "
        "measure here or the values in the file")


# ----------------------------------------------------------------- all at once


def test_validate_reports_every_problem_of_both_files_grouped(demo: Path) -> None:
    _edit(demo, lambda d: (_targets(dosge={"green": 80, "amber": 70})(d),
                           d["report"].update({"min_count": 0}),
                           d["analyses"]["baseline_followup"].update({"subgroups": ["sen"]})))
    _edit(_toc(demo), lambda d: (_outcome(0, direction="decrease")(d),
                                 d["activities"][0].update({"rag": "yellow"})))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["validate", str(demo)])
    lines = err.getvalue().splitlines()
    assert code == 1
    assert lines[0] == f"invalid {demo}: 5 problems"
    assert lines[1].startswith("  in ") and lines[1].endswith("params/demo.yaml:")
    assert [line.split(":")[0].strip() for line in lines[2:5]] == [
        "analyses.baseline_followup.subgroups", "analyses.referral_tracking.targets.dosge",
        "report.min_count"]
    assert lines[5].startswith("  in ") and lines[5].endswith("toc_templates/demo.yaml:")
    assert "key 'direction': write lower_is_better rather than 'decrease'" in lines[6]
    assert "key 'rag': expected 'green', 'amber' or 'red'" in lines[7]
    assert len(lines) == 8


def test_cross_checks_run_once_both_files_are_valid(demo: Path) -> None:
    _edit(_toc(demo), _outcome(0, data="sdq_scores"))
    _edit(_toc(demo), _outcome(2, measure="exclusions"))
    problems = _problems(demo)
    assert len(problems) == 2
    assert all(p.startswith("demo.yaml: outcome '") for p in problems)
