"""`evalkit inspect FILE`: sheets (hidden ones marked), the header row, each column's type
and kit column, values only where a column cannot hold identifiers, and a `data:` block
that intake reads as suggested."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import openpyxl
import pytest
import yaml

from evaluation import cli
from evaluation.inspect import inspect_file, match_kit_column, personal, render

PLANTED = ["Zebedee", "Quilliam-Nobody", "Flat 9 Nowhere Row", "07700 900123",
           "Worried about Zebedee"]


def _workbook(path: Path) -> Path:
    """An export with title lines, a hidden sheet, names and notes planted in columns whose
    headers do (and, for "Column X", do not) say so."""
    book = openpyxl.Workbook()
    hidden = book.active
    hidden.title = "Stale"
    hidden.append(["Adno", "SEN"])
    hidden.sheet_state = "hidden"
    sheet = book.create_sheet("Export")
    sheet.append(["Pupil tracker"])
    sheet.append([])
    sheet.append(["Adno", "Legal Surname", "Forename", "Address", "Contact phone",
                  "Key worker", "Column X", "School", "Gender", "SEN", "FSM", "Year",
                  "SDQ Total (Autumn)", "SDQ Total (Summer)", "Notes"])
    for i in range(8):
        sheet.append([f"{1000 + i}", PLANTED[1], PLANTED[0], PLANTED[2], PLANTED[3],
                      PLANTED[0], PLANTED[0], f"S{i % 2}", "M" if i % 2 else "F",
                      ["N", "K", "E", PLANTED[0]][i % 4], "Y" if i % 3 else "N",
                      f"Year {3 + i % 3}", 10 + i, 8 + i, PLANTED[4]])
    book.active = 1
    book.save(path)
    return path


def test_no_planted_name_reaches_the_terminal(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "export.xlsx")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["inspect", str(path)])
    text = out.getvalue() + err.getvalue()
    assert code == 0, text
    for planted in [*PLANTED, "Zebedee", "Quilliam", "Nowhere", "900123", "Worried"]:
        assert planted not in text, planted
    # ... while coded columns show their codes, and the name typed into SEN is counted
    sen = next(line for line in text.splitlines() if "'SEN'" in line)
    assert "N, K, E" in sen and "1 other value (not shown" in sen
    assert "F, M" in next(line for line in text.splitlines() if "'Gender'" in line)
    assert "10 to 17" in next(line for line in text.splitlines()
                              if "'SDQ Total (Autumn)'" in line)


def test_sheets_hidden_and_header_row_are_shown(tmp_path: Path) -> None:
    inspection = inspect_file(_workbook(tmp_path / "export.xlsx"))
    text = render(inspection)
    assert "'Stale' (hidden: never read unless named" in text
    [report] = inspection.reports  # the hidden sheet is not inspected
    assert report.sheet == "Export" and report.header_line == 3 and report.rows == 8
    kinds = {c.header: c.type for c in report.columns}
    assert kinds["FSM"] == "yes/no" and kinds["SDQ Total (Autumn)"] == "whole number"
    assert kinds["Legal Surname"] == "text"


def test_the_suggested_block_is_read_by_intake(tmp_path: Path) -> None:
    from evaluation.intake import load_data
    from evaluation.params import load_params

    root = tmp_path / "project"
    (root / "params").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    path = _workbook(root / "data" / "raw" / "export.xlsx")
    wb = openpyxl.load_workbook(path)
    wb["Export"]["J7"] = wb["Export"]["J11"] = "E"  # the names planted in SEN, corrected
    wb.save(path)
    inspection = inspect_file(path, root=root)
    suggested = yaml.safe_load(inspection.suggestion)["data"]
    assert suggested["pupils"]["columns"] == {"Adno": "pupil_id", "School": "school_id",
                                              "Gender": "sex",
                                              "SEN": "sen_status", "FSM": "fsm",
                                              "Year": "year_group"}
    assert suggested["scores"]["wide"] == {
        "SDQ Total (Autumn)": {"measure": "sdq_teacher_total", "timepoint": "baseline"},
        "SDQ Total (Summer)": {"measure": "sdq_teacher_total", "timepoint": "follow_up"}}
    assert suggested["pupils"]["sheet"] == "Export" and suggested["pupils"]["header_row"] == 3
    (root / "toc.yaml").write_text("title: x\n", "utf-8")
    (root / "params" / "p.yaml").write_text(yaml.safe_dump({
        "project": {"id": "inspect_test", "title": "Inspect"}, "theory_of_change": "toc.yaml",
        "data": suggested, "analyses": {"overview": {}}}), "utf-8")
    data = load_data(load_params(root / "params" / "p.yaml"), use_cache=False)
    assert len(data["pupils"]) == 8 and len(data["scores"]) == 16
    assert set(data["pupils"]["sen_status"]) == {"none", "SEN support", "EHC plan"}
    assert data["scores"]["score"].between(8, 17).all()


@pytest.mark.parametrize(("header", "kit"), [
    ("Adno", "pupil_id"), ("UPN", "pupil_id"), ("Gender", "sex"), ("NC Year", "year_group"),
    ("SEN Status", "sen_status"), ("Free school meals", "fsm"), ("School", "school_id"),
    ("pupil_id", "pupil_id"), ("Legal Surname", None), ("Reg", None), ("Notes", None)])
def test_headers_match_the_kit_names(header: str, kit: str | None) -> None:
    assert match_kit_column(header) == kit


@pytest.mark.parametrize("header", ["Legal Surname", "Forename", "Preferred name", "DOB",
                                    "Date of birth", "Postcode", "Parent email", "Notes",
                                    "Key worker", "UPN", "Adno", "Reason for referral"])
def test_personal_headers_are_recognised(header: str) -> None:
    assert personal(header)


@pytest.mark.parametrize("header", ["SEN", "Gender", "Year", "FSM", "SDQ Total (Autumn)"])
def test_coded_headers_are_not_personal(header: str) -> None:
    assert not personal(header)


def test_a_csv_with_a_semicolon_and_title_lines(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("Fixed term exclusions by term\n\nSchool;Term start;Roll;Suspensions\n"
                     "S1;01/09/2022;200;3\nS1;04/01/2023;200;4\n".encode("cp1252"))
    inspection = inspect_file(path)
    [report] = inspection.reports
    assert report.header_line == 3
    assert any("semicolon" in n for n in report.notes)
    block = yaml.safe_load(inspection.suggestion)["data"]
    assert block["exclusions"]["columns"] == {"School": "school_id",
                                              "Term start": "period_start", "Roll": "roll",
                                              "Suspensions": "suspensions"}


# --- termly exclusions sheets, one column per term ----------------------------------------

@pytest.mark.parametrize(("header", "term", "start", "into"), [
    # Easter Sunday was 9 April 2023 and 31 March 2024, so summer started on Easter Monday
    ("Aut 2022", "2022/23 autumn", "01/08/2022", "suspensions"),
    ("Autumn 2022", "2022/23 autumn", "01/08/2022", "suspensions"),
    ("Spr 2023", "2022/23 spring", "01/01/2023", "suspensions"),
    ("Summer term 2023", "2022/23 summer", "10/04/2023", "suspensions"),
    ("2022/23 Autumn", "2022/23 autumn", "01/08/2022", "suspensions"),
    ("Sum 23", "2022/23 summer", "10/04/2023", "suspensions"),
    ("Spring 23/24", "2023/24 spring", "01/01/2024", "suspensions"),
    ("2023-2024 Summer", "2023/24 summer", "01/04/2024", "suspensions"),
    ("Suspensions Aut 2022", "2022/23 autumn", "01/08/2022", "suspensions"),
    ("Permanent exclusions (Spr 2023)", "2022/23 spring", "01/01/2023",
     "permanent_exclusions"),
    # not a term: a measure's score, no year, a year without a term, two years apart
    ("SDQ Aut 2022", None, None, None), ("Autumn", None, None, None),
    ("2022", None, None, None), ("Aut 2022/24", None, None, None),
    ("SDQ Total (Summer 2)", None, None, None)])
def test_term_headers_are_read_as_the_calendars_terms(header, term, start, into) -> None:
    from evaluation import calendar
    from evaluation.inspect import _term

    found = _term(header)
    if term is None:
        assert found is None
        return
    assert found is not None
    assert calendar.term_label(found.code) == term
    assert f"{calendar.term_start(found.code):%d/%m/%Y}" == start and found.into == into


def _termly_workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Exclusions"
    sheet.append(["Suspensions by term"])
    sheet.append(["Exported 20/07/2023"])
    sheet.append([])
    sheet.append(["School", "Roll", "Aut 2022", "Spr 2023", "Sum 2023"])
    sheet.append(["S1", 264, 4, 6, 3])
    sheet.append(["S2", 300, 2, 0, None])
    sheet.append(["S3", 150, 1, 5, 7])
    book.save(path)
    return path


def test_a_termly_exclusions_sheet_is_suggested_and_read_by_intake(tmp_path: Path) -> None:
    from evaluation.intake import load_data
    from evaluation.params import load_params
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    path = _termly_workbook(tmp_path / "data/raw/mini/excl.xlsx")
    inspection = inspect_file(path, root=tmp_path)
    suggested = yaml.safe_load(inspection.suggestion)["data"]
    assert set(suggested) == {"exclusions"}
    block = suggested["exclusions"]
    assert block["columns"] == {"School": "school_id", "Roll": "roll"}
    assert block["wide"] == {"Aut 2022": {"period_start": "01/08/2022"},
                             "Spr 2023": {"period_start": "01/01/2023"},
                             "Sum 2023": {"period_start": "10/04/2023"}}
    assert block["path"] == "data/raw/mini/excl.xlsx" and block["header_row"] == 4
    text = render(inspection)
    assert "-> suspensions in 2022/23 summer (wide)" in text
    assert "the exclusions table needs" not in text  # period_start, suspensions: from wide:

    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = block
    params_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    table = load_data(load_params(params_file), use_cache=False)["exclusions"]
    got = sorted((s, f"{d:%Y-%m-%d}", r, n) for s, d, r, n in zip(
        table["school_id"], table["period_start"], table["roll"], table["suspensions"],
        strict=True))
    # one row per school and term; S2's blank summer cell gives no row
    assert got == [("S1", "2022-08-01", 264, 4), ("S1", "2023-01-01", 264, 6),
                   ("S1", "2023-04-10", 264, 3), ("S2", "2022-08-01", 300, 2),
                   ("S2", "2023-01-01", 300, 0), ("S3", "2022-08-01", 150, 1),
                   ("S3", "2023-01-01", 150, 5), ("S3", "2023-04-10", 150, 7)]


def test_a_term_named_twice_is_left_out_with_a_check(tmp_path: Path) -> None:
    from evaluation.intake import load_data
    from evaluation.params import load_params
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    path = tmp_path / "data/raw/mini/excl.csv"
    path.write_text("School,Roll,Aut 2022,Autumn 2022,Spr 2023,Permanent Spr 2023\n"
                    "S1,264,4,5,6,1\n", "utf-8")
    inspection = inspect_file(path, root=tmp_path)
    block = yaml.safe_load(inspection.suggestion)["data"]["exclusions"]
    wide = block["wide"]
    assert wide == {"Aut 2022": {"period_start": "01/08/2022"},
                    "Spr 2023": {"period_start": "01/01/2023"},
                    "Permanent Spr 2023": {"period_start": "01/01/2023",
                                           "into": "permanent_exclusions"}}
    assert any("'Autumn 2022' and 'Aut 2022' both read as 2022/23 autumn" in c
               for c in inspection.checks)
    # suspensions and permanent exclusions of one term land in one row
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = block
    params_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    table = load_data(load_params(params_file), use_cache=False)["exclusions"]
    assert table["suspensions"].tolist() == [4, 6]
    assert table["permanent_exclusions"].isna().tolist() == [True, False]
    assert table["permanent_exclusions"].iloc[1] == 1


# --- monthly and half-termly exclusions sheets (follow-up to #20) ---------------------------

@pytest.mark.parametrize(("header", "start", "into"), [
    ("Sep 2023", "01/09/2023", "suspensions"),
    ("September 2023", "01/09/2023", "suspensions"),
    ("Sept-23", "01/09/2023", "suspensions"),  # Excel's mmm-yy
    ("Sept. 2023", "01/09/2023", "suspensions"),
    ("Jan '24", "01/01/2024", "suspensions"),
    ("2023 December", "01/12/2023", "suspensions"),
    ("09/2023", "01/09/2023", "suspensions"),
    ("9-2023", "01/09/2023", "suspensions"),
    ("2023-09", "01/09/2023", "suspensions"),
    ("2023-12", "01/12/2023", "suspensions"),  # 2023/24 would be written 2023-24
    ("Suspensions Feb 2024", "01/02/2024", "suspensions"),
    ("Permanent exclusions (May 2024)", "01/05/2024", "permanent_exclusions"),
    # ambiguous or not a month: never guessed
    ("09/10", None, None),      # 9 October, September 2010 or 2009/10
    ("09/23", None, None),      # 9 of a 23rd month? a day and month, or a school year
    ("2023/09", None, None),    # the kit reads yyyy/yy as an academic year
    ("2011-12", None, None),    # December 2011 or 2011/12
    ("23 Sep", None, None),     # a day of September
    ("01/09/2023", None, None),  # a date: a day, not a month
    ("13/2023", None, None), ("2023-13", None, None), ("May", None, None),
    ("Sep 23/24", None, None), ("SDQ Sep 2023", None, None)])
def test_month_headers_are_read_as_months(header, start, into) -> None:
    from evaluation.inspect import _month

    found = _month(header)
    if start is None:
        assert found is None
        return
    assert found is not None and f"{found.start:%d/%m/%Y}" == start and found.into == into


@pytest.mark.parametrize(("header", "half", "term"), [
    ("Autumn 1 2023", 1, "2023/24 autumn"), ("Aut1 23/24", 1, "2023/24 autumn"),
    ("Spring 2 2024", 2, "2023/24 spring"), ("2023/24 Summer 1", 1, "2023/24 summer"),
    ("Autumn half term 2 2023", 2, "2023/24 autumn"), ("Summer 2", 2, None),
    # not half-terms: terms, a measure's score, years two apart
    ("Aut 12", None, None), ("Sum 23", None, None), ("SDQ Total (Summer 2)", None, None),
    ("Aut 1 22/24", None, None)])
def test_half_term_headers_are_recognised(header, half, term) -> None:
    from evaluation import calendar
    from evaluation.inspect import _half_term

    found = _half_term(header)
    if half is None:
        assert found is None
        return
    assert found is not None and found.half == half
    assert (None if found.code is None else calendar.term_label(found.code)) == term


#: A monthly sheet in the forms exports use; every header a different form.
MONTHLY_HEADERS = ["Sep 2023", "October 2023", "Nov-23", "12/2023", "2024-01", "Feb 24"]
MONTHLY_STARTS = ["2023-09-01", "2023-10-01", "2023-11-01", "2023-12-01", "2024-01-01",
                  "2024-02-01"]


def test_a_monthly_sheet_is_suggested_validated_and_read_by_intake(tmp_path: Path) -> None:
    from evaluation import runner
    from evaluation.intake import load_data
    from evaluation.its import Periods
    from evaluation.params import load_params
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    path = tmp_path / "data/raw/mini/monthly.csv"
    path.write_text("School,Roll," + ",".join(MONTHLY_HEADERS) + "\n"
                    "S1,264,1,2,3,4,5,6\nS2,300,0,1,,2,0,1\n", "utf-8")
    inspection = inspect_file(path, root=tmp_path)
    block = yaml.safe_load(inspection.suggestion)["data"]["exclusions"]
    assert block["columns"] == {"School": "school_id", "Roll": "roll"}
    assert block["wide"] == {"Sep 2023": {"period_start": "01/09/2023"},
                             "October 2023": {"period_start": "01/10/2023"},
                             "Nov-23": {"period_start": "01/11/2023"},
                             "12/2023": {"period_start": "01/12/2023"},
                             "2024-01": {"period_start": "01/01/2024"},
                             "Feb 24": {"period_start": "01/02/2024"}}
    text = render(inspection)
    assert "-> suspensions in November 2023 (wide)" in text
    assert "the exclusions table needs" not in text
    assert any("each month's first day" in c for c in inspection.checks)
    assert not any("each term's first day" in c for c in inspection.checks)

    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = block
    params_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    _, _, validated = runner.validate_project(params_file)  # `evalkit validate`: no problem
    assert len(validated["exclusions"]) == 11
    table = load_data(load_params(params_file), use_cache=False)["exclusions"]
    got = sorted((s, f"{d:%Y-%m-%d}", n) for s, d, n in zip(
        table["school_id"], table["period_start"], table["suspensions"], strict=True))
    expected = sorted([("S1", d, n) for d, n in zip(MONTHLY_STARTS, range(1, 7), strict=True)]
                      + [("S2", d, n) for d, n in zip(MONTHLY_STARTS, [0, 1, None, 2, 0, 1],
                                                       strict=True) if n is not None])
    assert got == expected  # S2's blank November cell gives no row
    # ... and the time series reads the dates as a monthly series
    dates = table["period_start"].to_numpy(dtype="datetime64[ns]")
    assert Periods.infer(dates).frequency == "monthly"


def test_ambiguous_period_headers_are_not_recognised(tmp_path: Path) -> None:
    path = tmp_path / "excl.csv"
    path.write_text("School,Roll,09/10,2011-12,2023/09,23 Sep,Sep 2023\nS1,264,1,2,3,4,5\n",
                    "utf-8")
    inspection = inspect_file(path)
    [report] = inspection.reports
    read = {c.header for c in report.columns if c.month or c.term or c.half_term}
    assert read == {"Sep 2023"}
    block = yaml.safe_load(inspection.suggestion)["data"]["exclusions"]
    assert block["wide"] == {"Sep 2023": {"period_start": "01/09/2023"}}
    text = render(inspection)
    for header in ("09/10", "2011-12", "2023/09", "23 Sep"):
        line = next(x for x in text.splitlines() if f"'{header}'" in x)
        assert "(not read: dropped by the kit)" in line


def test_half_term_columns_are_not_suggested_and_the_check_says_why(tmp_path: Path) -> None:
    path = tmp_path / "excl.csv"
    path.write_text("School,Roll,Autumn 1 2023,Autumn 2 2023,Spring 1 2024,Spring 2 2024\n"
                    "S1,264,1,2,3,4\n", "utf-8")
    inspection = inspect_file(path)
    assert inspection.suggestion == ""  # no period column the kit reads
    halves = [c for c in inspection.checks if "not by half-term" in c]
    assert len(halves) == 2
    assert halves[0].startswith("'Autumn 1 2023', 'Autumn 2 2023': the halves of 2023/24 "
                                "autumn")
    text = render(inspection)
    assert "# check: 'Spring 1 2024', 'Spring 2 2024': the halves of 2023/24 spring" in text
    assert "(not read: a half-term; see the checks below)" in text
    # the term column the check asks for is one inspect reads as that term
    assert "(e.g. '2023/24 Spring')" in halves[1]
    path.write_text("School,Roll,2023/24 Autumn,2023/24 Spring\nS1,264,3,7\n", "utf-8")
    wide = yaml.safe_load(inspect_file(path).suggestion)["data"]["exclusions"]["wide"]
    assert wide == {"2023/24 Autumn": {"period_start": "01/08/2023"},
                    "2023/24 Spring": {"period_start": "01/01/2024"}}


def test_half_terms_refused_by_intake_as_period_starts(tmp_path: Path) -> None:
    """Why inspect does not suggest half-term dates: intake refuses them (two periods of
    one school in one term) and the time series reads them as months with gaps."""
    from evaluation.errors import DataError
    from evaluation.intake import load_data
    from evaluation.its import Periods
    from evaluation.params import load_params
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    # half-term start dates of a 2023/24 school year in England
    starts = {"Aut1": "01/09/2023", "Aut2": "30/10/2023", "Spr1": "04/01/2024",
              "Spr2": "19/02/2024", "Sum1": "15/04/2024", "Sum2": "03/06/2024"}
    (tmp_path / "data/raw/mini/excl.csv").write_text(
        "School,Roll," + ",".join(starts) + "\nS1,200,1,2,3,4,5,6\n", "utf-8")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = {
        "path": "data/raw/mini/excl.csv", "columns": {"School": "school_id", "Roll": "roll"},
        "wide": {h: {"period_start": d} for h, d in starts.items()}}
    params_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DataError, match="fall in the same term for the same school"):
        load_data(load_params(params_file), use_cache=False)
    import pandas as pd

    dates = pd.to_datetime(list(starts.values()), dayfirst=True).to_numpy("datetime64[ns]")
    assert Periods.infer(dates).frequency == "monthly"


def test_terms_beside_months_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "excl.csv"
    path.write_text("School,Roll,Sep 2023,Oct 2023,Nov 2023,Dec 2023,Aut 2023\n"
                    "S1,264,1,2,3,4,10\n", "utf-8")
    inspection = inspect_file(path)
    wide = yaml.safe_load(inspection.suggestion)["data"]["exclusions"]["wide"]
    assert list(wide) == ["Sep 2023", "Oct 2023", "Nov 2023", "Dec 2023"]
    assert any(c.startswith("'Aut 2023' names a term, the other period columns months")
               and "the terms are left out" in c for c in inspection.checks)
    line = next(x for x in render(inspection).splitlines() if "'Aut 2023'" in x)
    assert "(not read: a term beside months; see the checks below)" in line


def test_months_that_read_as_terms_get_a_check(tmp_path: Path) -> None:
    path = tmp_path / "excl.csv"
    path.write_text("School,Roll,Sep 2023,Jan 2024,Apr 2024\nS1,264,1,2,3\n", "utf-8")
    inspection = inspect_file(path)
    assert any("would read them as termly periods" in c for c in inspection.checks)
    path.write_text("School,Roll,Sep 2023,Oct 2023,Jan 2024\nS1,264,1,2,3\n", "utf-8")
    assert not any("would read them as" in c for c in inspect_file(path).checks)
