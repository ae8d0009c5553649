"""Wide sheets (one column per measure x timepoint, one column per term) reshaped to the
kit's long tables, and the plausibility checks that refuse what cannot be true (counts
above the roll, a period entered twice, a baseline after its follow-up, scores outside the
measure's range) with one message instead of a wrong report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl
import pytest
import yaml

from evaluation.errors import DataError
from evaluation.intake import load_data, write_processed
from evaluation.params import ProblemsError, load_params
from evaluation.pseudonyms import pseudonymise
from tests.conftest import make_project

SURNAMES = ["Quixotically", "Zebedee", "Oddname"]


def _mis_workbook(path: Path) -> None:
    """A school MIS export: title rows, identifiers, a notes column, SEN codes, 'Year 3',
    a wide SDQ pair with blank cells and a totals row."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "SDQ"
    sheet.append(["SDQ tracker 2023/24"])
    sheet.append(["Exported 10/07/2024"])
    sheet.append([])
    sheet.append(["Adno", "Legal Surname", "Forename", "Reg", "SEN", "SDQ Total (Autumn)",
                  "SDQ Total (Summer)", "Notes"])
    sheet.append(["A1", SURNAMES[0], "Amy", "Year 3", "K", 18, 12, "phoned mum"])
    sheet.append(["A2", SURNAMES[1], "Ben", "Year 3", "N", 22, None, None])
    sheet.append(["A3", SURNAMES[2], "Cas", "Year 4", "E", None, None, "left"])
    sheet.append(["A4", "Other", "Dee", "Year 4", "N", 15, 16, None])
    sheet.append(["Total", None, None, None, None, 55, 28, None])
    book.save(path)


WIDE = {
    "SDQ Total (Autumn)": {"measure": "sdq_teacher_total", "timepoint": "baseline"},
    "SDQ Total (Summer)": {"measure": "sdq_teacher_total", "timepoint": "follow_up"},
}


def _scores_project(tmp_path: Path, wide=WIDE, **extra) -> Path:
    params_file = make_project(tmp_path)
    _mis_workbook(tmp_path / "data/raw/mini/sdq.xlsx")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["scores"] = {"path": "data/raw/mini/sdq.xlsx", "columns": {"Adno": "pupil_id"},
                             "wide": wide, **extra}
    params_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return params_file


def test_a_wide_score_sheet_becomes_the_long_scores_table(tmp_path):
    params = load_params(_scores_project(tmp_path))
    data = load_data(params)
    scores = data["scores"]
    ids = dict(zip(pseudonymise(__import__("pandas").Series(["A1", "A2", "A3", "A4"]),
                                "mini"), ["A1", "A2", "A3", "A4"], strict=True))
    got = sorted((ids[p], t, s) for p, t, s in
                 zip(scores["pupil_id"], scores["timepoint"], scores["score"], strict=True))
    # blank cells give no row; the totals row is not a pupil
    assert got == [("A1", "baseline", 18.0), ("A1", "follow_up", 12.0),
                   ("A2", "baseline", 22.0), ("A4", "baseline", 15.0),
                   ("A4", "follow_up", 16.0)]
    assert set(scores["measure"]) == {"sdq_teacher_total"}
    report = data.reports["scores"]
    assert "headers found on line 4; the 3 lines above (titles) skipped" in report.notes
    assert "line 9 looks like totals rather than data and were dropped" in report.notes
    assert ("wide sheet reshaped: 4 rows x 2 columns gave 5 rows of the scores table "
            "(3 blank groups left out)") in report.notes
    # identifiers and notes never reach the processed files
    out = write_processed(params, data)
    for path in out.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for planted in [*SURNAMES, "phoned mum", "Legal Surname", "Amy", "Forename"]:
                assert planted.encode() not in content, (planted, path.name)
    assert json.loads((out / "intake.json").read_text())["scores"]["rows"] == 5


def test_wide_columns_can_carry_their_dates(tmp_path):
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/s.csv").write_text(
        "UPN,Autumn,Autumn date,Summer,Summer date\n"
        "A1,18,02/10/2023,12,01/07/2024\nA2,20,03/10/2023,15,02/07/2024\n")
    doc = yaml.safe_load(params_file.read_text())
    base = {"measure": "sdq_teacher_total", "timepoint": "baseline"}
    follow = {"measure": "sdq_teacher_total", "timepoint": "follow_up"}
    doc["data"]["scores"] = {"path": "data/raw/mini/s.csv", "columns": {"UPN": "pupil_id"},
                             "wide": {"Autumn": base, "Autumn date": {**base, "into": "date"},
                                      "Summer": follow,
                                      "Summer date": {**follow, "into": "date"}}}
    params_file.write_text(yaml.safe_dump(doc))
    scores = load_data(load_params(params_file))["scores"]
    assert len(scores) == 4
    assert scores["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2023-10-02", "2024-07-01", "2023-10-03", "2024-07-02"]
    assert scores["score"].tolist() == [18.0, 12.0, 20.0, 15.0]
    # a baseline dated after its follow-up is refused, naming both lines
    (tmp_path / "data/raw/mini/s.csv").write_text(
        "UPN,Autumn,Autumn date,Summer,Summer date\n"
        "A1,18,02/10/2023,12,01/07/2024\nA2,20,03/10/2024,15,02/07/2024\n")
    with pytest.raises(DataError, match=r"s.csv, column 'date': row 3 date a baseline after "
                       r"its follow-up"):
        load_data(load_params(params_file))


def test_a_missing_wide_header_lists_the_files_columns(tmp_path):
    wide = {**WIDE, "SDQ Total (Spring)": {"measure": "sdq_teacher_total",
                                           "timepoint": "follow_up"}}
    wide.pop("SDQ Total (Summer)")
    with pytest.raises(DataError, match=r"sdq.xlsx, sheet 'SDQ': the column mapping in mini.yaml "
                       r"\(data.scores.wide\) names 'SDQ Total \(Spring\)', which is not a "
                       r"column of the file. Did you mean 'SDQ Total \(Summer\)'\?.*headers "
                       r"on line 4"):
        load_data(load_params(_scores_project(tmp_path, wide=wide)))


def test_a_wide_sheet_without_wide_gets_the_right_advice(tmp_path):
    params_file = _scores_project(tmp_path)
    doc = yaml.safe_load(params_file.read_text())
    del doc["data"]["scores"]["wide"]
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"needs a column 'measure'.*If the sheet is wide \(one "
                       r"column per measure\), describe its columns under data.scores.wide"):
        load_data(load_params(params_file))


@pytest.mark.parametrize(("wide", "message"), [
    ({"A": {"measure": "m", "timepoint": "baseline"},
      "B": {"measure": "m", "timepoint": "baseline"}},
     r"'A' and 'B' are both measure: m, timepoint: baseline \(score\): a period or timepoint "
     r"entered twice"),
    ({"A": {"measure": "m", "timepoint": "baseline"}, "B": {"measure": "m"}},
     r"every entry must give the same columns"),
    ({"A": {"mesure": "m"}}, r"'A': 'mesure' is not a column of the scores table"),
    ({"A": {"pupil_id": "x"}}, r"'A': 'pupil_id' holds identifiers"),
    ({"Adno": {"measure": "m"}}, r"'Adno' is under both `columns:` and `wide:`"),
])
def test_wide_blocks_are_checked_with_the_parameters(tmp_path, wide, message):
    with pytest.raises(ProblemsError, match=message):
        load_params(_scores_project(tmp_path, wide=wide))


# --- termly exclusions, one column per term ---------------------------------------------

TERMS = {"Aut 2022": {"period_start": "01/09/2022"}, "Spr 2023": {"period_start": "03/01/2023"},
         "Sum 2023": {"period_start": dt.date(2023, 4, 17)}}


def _exclusions(tmp_path: Path, text: str, wide=TERMS, **extra) -> Path:
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/excl.csv").write_text(text)
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = {"path": "data/raw/mini/excl.csv",
                                 "columns": {"School": "school_id", "Roll": "roll"},
                                 "wide": wide, **extra}
    params_file.write_text(yaml.safe_dump(doc))
    return params_file


def test_a_termly_exclusions_sheet_becomes_one_row_per_school_and_term(tmp_path):
    text = "School,Roll,Aut 2022,Spr 2023,Sum 2023\nS1,264,4,6,x\nS2,300,2,0,1\n"
    table = load_data(load_params(_exclusions(tmp_path, text)))["exclusions"]
    assert table["period_start"].dt.strftime("%Y-%m-%d").tolist() == [
        "2022-09-01", "2023-01-03", "2023-04-17"] * 2
    assert table["suspensions"].tolist()[:2] == [4, 6] and table["suspensions"].isna()[2]
    assert table["roll"].tolist() == [264] * 3 + [300] * 3


def test_suspensions_far_above_the_roll_are_refused(tmp_path):
    text = "School,Roll,Aut 2022,Spr 2023,Sum 2023\nS1,264,4,5000,3\nS2,300,2,0,1\n"
    with pytest.raises(DataError, match=r"excl.csv, column 'suspensions': row 2 are more than "
                       r"5 suspensions per pupil on roll in one period.*set "
                       r"`max_suspensions_per_pupil:`"):
        load_data(load_params(_exclusions(tmp_path, text)))
    # a project whose school really has such rates says so
    params = _exclusions(tmp_path / "b", text, max_suspensions_per_pupil=20)
    assert load_data(load_params(params))["exclusions"]["suspensions"].max() == 5000


def test_permanent_exclusions_above_the_roll_are_refused(tmp_path):
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/excl.csv").write_text(
        "school_id,period_start,roll,suspensions,permanent_exclusions\n"
        "S1,01/09/2022,264,4,1\nS1,03/01/2023,264,4,300\nS2,01/09/2022,0,4,3\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = {"path": "data/raw/mini/excl.csv"}
    params_file.write_text(yaml.safe_dump(doc))
    # (a roll of 0, official statistics' mark of an authority not yet formed, is not compared)
    with pytest.raises(DataError, match=r"column 'permanent_exclusions': row 3 are above the "
                       r"roll"):
        load_data(load_params(params_file))


def test_a_term_entered_twice_is_refused(tmp_path):
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/excl.csv").write_text(
        "school_id,period_start,roll,suspensions\n"
        "S1,01/09/2022,264,4\nS1,03/01/2023,264,4\nS1,17/04/2023,264,2\n"
        "S1,05/09/2022,264,4\nS2,01/09/2022,300,1\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = {"path": "data/raw/mini/excl.csv"}
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"column 'period_start': rows 2, 5 fall in the same "
                       r"term for the same school: a period entered twice would be counted "
                       r"twice"):
        load_data(load_params(params_file))


def test_a_term_given_twice_in_wide_is_refused_with_the_parameters(tmp_path):
    wide = {**TERMS, "Autumn 22 (again)": {"period_start": "01/09/2022"}}
    with pytest.raises(ProblemsError, match=r"'Aut 2022' and 'Autumn 22 \(again\)' are both "
                       r"period_start: 01/09/2022"):
        load_params(_exclusions(tmp_path, "School\n", wide=wide))


# --- scores outside the measure's range, attendance above 100% ----------------------------

def test_scores_outside_the_measures_range_are_refused(tmp_path):
    params_file = _scores_project(tmp_path)
    book = openpyxl.load_workbook(tmp_path / "data/raw/mini/sdq.xlsx")
    book["SDQ"]["G8"] = 160  # A4's summer score: the SDQ total runs 0 to 40
    book.save(tmp_path / "data/raw/mini/sdq.xlsx")
    with pytest.raises(DataError, match=r"sdq.xlsx, sheet 'SDQ', column 'score': row 8 hold "
                       r"scores of 'sdq_teacher_total' outside its range 0 to 40"):
        load_data(load_params(params_file))


def test_attendance_above_100_percent_is_refused(tmp_path):
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/att.csv").write_text(
        "pupil_id,week_start,possible_sessions,attended_sessions\n"
        "A1,04/09/2023,10,9\nA1,11/09/2023,8,10\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["attendance"] = {"path": "data/raw/mini/att.csv"}
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"column 'attended_sessions': row 3 are above "
                       r"possible_sessions \(attendance above 100%\)"):
        load_data(load_params(params_file))


def test_a_termly_sheet_with_dates_as_headers(tmp_path):
    params_file = make_project(tmp_path)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Suspensions by term"])
    sheet.append(["School", "Roll", dt.date(2022, 9, 1), dt.date(2023, 1, 3)])
    sheet.append(["S1", 264, 4, 6])
    book.save(tmp_path / "data/raw/mini/excl.xlsx")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = {
        "path": "data/raw/mini/excl.xlsx", "columns": {"School": "school_id", "Roll": "roll"},
        "wide": {"01/09/2022": {"period_start": "01/09/2022"},
                 "03/01/2023": {"period_start": "03/01/2023"}}}
    params_file.write_text(yaml.safe_dump(doc))
    table = load_data(load_params(params_file))["exclusions"]
    assert table["suspensions"].tolist() == [4, 6]
    assert table["period_start"].dt.strftime("%Y-%m-%d").tolist() == ["2022-09-01",
                                                                      "2023-01-03"]


def test_attendance_percentages_above_100_are_refused(tmp_path):
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/att.csv").write_text(
        "UPN,Attendance Autumn,Attendance Summer\nA1,91.5,95\nA2,88,9650\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["scores"] = {
        "path": "data/raw/mini/att.csv", "columns": {"UPN": "pupil_id"},
        "wide": {"Attendance Autumn": {"measure": "attendance_pct", "timepoint": "baseline"},
                 "Attendance Summer": {"measure": "attendance_pct",
                                       "timepoint": "follow_up"}}}
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"att.csv, column 'score': row 3 hold scores of "
                       r"'attendance_pct' outside its range 0 to 100"):
        load_data(load_params(params_file))
