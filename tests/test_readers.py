"""Reading what Excel and MIS exports produce: encodings, delimiters, title rows, totals
rows, sheets (hidden, several, misnamed), formulas without saved values, Excel serial dates,
decimal commas, US dates and UK dates in the parameters. Each is read correctly or refused
with one clear message; none gives a wrong number."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest
import yaml

from evaluation import readers
from evaluation.errors import DataError
from evaluation.intake import load_data, processed_dir, write_processed
from evaluation.params import ProblemsError, load_params
from tests.conftest import make_project

PUPILS = "UPN,School,Year,FSM\nA1,S1,3,Y\nA2,S1,4,N\nA3,S2,5,Y\n"


def _project(tmp_path: Path, name: str, source: dict, content: bytes | None = None) -> Path:
    """The mini project with one more data source (or the pupils source replaced)."""
    params_file = make_project(tmp_path)
    doc = yaml.safe_load(params_file.read_text())
    if content is not None:
        (tmp_path / "data/raw/mini" / Path(source["path"]).name).write_bytes(content)
    source = {**source, "path": f"data/raw/mini/{Path(source['path']).name}"}
    doc["data"][name] = source
    params_file.write_text(yaml.safe_dump(doc))
    return params_file


PUPIL_COLUMNS = {"UPN": "pupil_id", "School": "school_id", "Year": "year_group", "FSM": "fsm"}


def _pupils(tmp_path: Path, content: bytes, **extra) -> Path:
    return _project(tmp_path, "pupils", {"path": "pupils.csv", "columns": PUPIL_COLUMNS,
                                         **extra}, content)


# --- encodings -------------------------------------------------------------------------

@pytest.mark.parametrize(("encoded", "name"), [
    (lambda t: t.encode("utf-8"), "UTF-8"),
    (lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"), "UTF-8 with BOM"),
    (lambda t: t.encode("utf-16"), "UTF-16"),  # with its byte-order mark, as Excel writes
    (lambda t: t.encode("utf-16-le"), "UTF-16"),
    (lambda t: t.encode("cp1252"), "Windows-1252"),
])
def test_encodings_are_detected_and_reported(tmp_path, encoded, name):
    text = "UPN,School,Year,FSM,Notes\nA1,S1,3,Y,Zoë – café\nA2,S1,4,N,\n"
    data = load_data(load_params(_pupils(tmp_path, encoded(text))))
    assert data["pupils"]["year_group"].tolist() == [3, 4]
    assert f"read as {name} text, comma-separated" in data.reports["pupils"].notes
    assert data.dropped_columns() == {"pupils": ["Notes"]}


def test_decode_tells_windows_1252_from_utf8():
    assert readers.decode("–é".encode("cp1252"), "f.csv") == ("–é", "Windows-1252")
    assert readers.decode("–é".encode(), "f.csv") == ("–é", "UTF-8")


@pytest.mark.parametrize("content", [b"\x00\xff\x00\xfePK\x03\x04\xde\xad\xbe\xef\x00",
                                     b"UPN,School\nA1,S\x01\x02\x03\n"])
def test_binary_files_are_refused(tmp_path, content):
    with pytest.raises(DataError, match=r"pupils.csv: is not a text file.*Save the table"):
        load_data(load_params(_pupils(tmp_path, content)))


def test_an_empty_file_is_one_clear_message(tmp_path):
    with pytest.raises(DataError, match=r"pupils.csv: the file is empty"):
        load_data(load_params(_pupils(tmp_path, b"  \n")))


# --- delimiters ------------------------------------------------------------------------

@pytest.mark.parametrize(("delimiter", "word"), [(",", "comma"), (";", "semicolon"),
                                                 ("\t", "tab")])
def test_delimiters_are_sniffed(tmp_path, delimiter, word):
    text = PUPILS.replace(",", delimiter)
    data = load_data(load_params(_pupils(tmp_path, text.encode())))
    assert data["pupils"]["school_id"].tolist() == ["S1", "S1", "S2"]
    assert f"read as UTF-8 text, {word}-separated" in data.reports["pupils"].notes


def test_semicolon_file_with_decimal_commas_is_split_on_semicolons():
    text = "UPN;Cost\nA1;225,00\nA2;13,50\nA3;1,25\n"
    assert readers.sniff_delimiter(text) == ";"


# --- title rows, header row, totals and blank rows -------------------------------------

TITLED = (
    "Fixed term exclusions by term,,,,\n"
    "Produced 01/09/2024,,,,\n"
    ",,,,\n"
    "UPN,School,Year,FSM,\n"
    "A1,S1,3,Y,\n"
    "A2,S1,4,N,\n"
    "A3,S2,5,Y,\n"
    "Total,,12,,\n"
    ",,,,\n"
    ",,,,\n"
)


def test_header_found_below_title_rows_and_totals_dropped(tmp_path):
    data = load_data(load_params(_pupils(tmp_path, TITLED.encode())))
    assert data["pupils"]["year_group"].tolist() == [3, 4, 5]
    notes = data.reports["pupils"].notes
    assert "headers found on line 4; the 3 lines above (titles) skipped" in notes
    assert "line 8 looks like totals rather than data and were dropped" in notes
    assert "blank rows after the data dropped" in notes


def test_line_numbers_in_messages_are_the_files_own(tmp_path):
    bad = TITLED.replace("A2,S1,4,N", "A2,S1,4,maybe")
    with pytest.raises(DataError, match=r"pupils.csv, column 'fsm': row 6 .*yes/no"):
        load_data(load_params(_pupils(tmp_path, bad.encode())))


def test_header_row_given_in_the_parameters(tmp_path):
    # two lines that both look like headers: the parameters say which
    text = "Pupil,Place,Age,Meals\nUPN,School,Year,FSM\nA1,S1,3,Y\n"
    params = _pupils(tmp_path, text.encode(), header_row=2)
    data = load_data(load_params(params))
    assert data["pupils"]["year_group"].tolist() == [3]
    bad = _pupils(tmp_path / "b", text.encode(), header_row=9)
    with pytest.raises(DataError, match=r"`header_row: 9` is beyond the last line \(3\)"):
        load_data(load_params(bad))


def test_a_header_used_twice_is_refused(tmp_path):
    text = "UPN,School,Year,FSM,Year\nA1,S1,3,Y,4\n"
    with pytest.raises(DataError, match=r"the header 'Year' appears twice"):
        load_data(load_params(_pupils(tmp_path, text.encode())))


def test_blank_rows_inside_the_data_are_dropped_and_lines_kept(tmp_path):
    text = "UPN,School,Year,FSM\nA1,S1,3,Y\n,,,\nA2,S1,x4,N\n"
    with pytest.raises(DataError, match=r"column 'year_group': row 4 are not numbers"):
        load_data(load_params(_pupils(tmp_path, text.encode())))


# --- Excel workbooks -------------------------------------------------------------------

def _workbook(path: Path, sheets: dict[str, list[list]], hidden: tuple[str, ...] = ()) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        if name in hidden:
            sheet.sheet_state = "hidden"
    book.save(path)


GOOD_ROWS = [["UPN", "School", "Year", "FSM"], ["A1", "S1", 3, "Y"], ["A2", "S1", 4, "N"]]
STALE_ROWS = [["UPN", "School", "Year", "FSM"], ["A1", "S9", 9, "N"], ["A2", "S9", 9, "N"]]


def _excel_pupils(tmp_path: Path, sheets: dict, hidden=(), **extra) -> Path:
    params_file = _project(tmp_path, "pupils", {"path": "pupils.xlsx", "columns": PUPIL_COLUMNS,
                                                **extra})
    _workbook(tmp_path / "data/raw/mini/pupils.xlsx", sheets, hidden)
    return params_file


def test_a_hidden_stale_first_sheet_is_never_read(tmp_path):
    params = _excel_pupils(tmp_path, {"Old": STALE_ROWS, "Pupils": GOOD_ROWS}, hidden=("Old",))
    data = load_data(load_params(params))
    assert data["pupils"]["school_id"].tolist() == ["S1", "S1"]


def test_a_hidden_sheet_is_read_when_named(tmp_path):
    params = _excel_pupils(tmp_path, {"Old": STALE_ROWS, "Pupils": GOOD_ROWS}, hidden=("Old",),
                           sheet="Old")
    assert load_data(load_params(params))["pupils"]["school_id"].tolist() == ["S9", "S9"]


def test_several_visible_sheets_need_a_sheet_name(tmp_path):
    params = _excel_pupils(tmp_path, {"Old": STALE_ROWS, "Pupils": GOOD_ROWS,
                                      "Notes": [["x"]]}, hidden=("Notes",))
    with pytest.raises(DataError, match=r"pupils.xlsx: the workbook has 2 visible sheets "
                       r"\('Old', 'Pupils'\); 1 hidden sheet is never read unless named. "
                       r"Say which holds the table with `sheet: <name>`"):
        load_data(load_params(params))


def test_a_wrong_sheet_name_lists_the_sheets(tmp_path):
    params = _excel_pupils(tmp_path, {"Old": STALE_ROWS, "Pupils": GOOD_ROWS}, hidden=("Old",),
                           sheet="Pupil list")
    with pytest.raises(DataError, match=r"there is no sheet called 'Pupil list'. Sheets in the "
                       r"workbook: 'Old' \(hidden\), 'Pupils'. Set `sheet:`"):
        load_data(load_params(params))
    # case and surrounding spaces do not matter, as in Excel
    params = _excel_pupils(tmp_path / "b", {"Pupils": GOOD_ROWS}, sheet=" pupils")
    assert len(load_data(load_params(params))["pupils"]) == 2


def test_excel_title_rows_and_line_numbers(tmp_path):
    rows = [["Pupil export"], [], [None, None], *GOOD_ROWS, ["A3", "S2", "Year nine", "Y"]]
    params = _excel_pupils(tmp_path, {"Pupils": rows})
    with pytest.raises(DataError, match=r"pupils.xlsx, sheet 'Pupils', column 'year_group': "
                       r"row 7 are not numbers"):
        load_data(load_params(params))


def test_formulas_without_saved_values_are_refused(tmp_path):
    rows = [["UPN", "School", "Year", "FSM"], ["A1", "S1", "=1+2", "Y"], ["A2", "S1", 4, "N"]]
    params = _excel_pupils(tmp_path, {"Pupils": rows})
    with pytest.raises(DataError, match=r"pupils.xlsx, sheet 'Pupils': 1 cell of 'Year' "
                       r"\(row 2\) hold formulas whose values were never saved.*Open the "
                       r"file in Excel and save it"):
        load_data(load_params(params))


def test_formulas_with_saved_values_are_read(tmp_path):
    rows = [["UPN", "School", "Year", "FSM"], ["A1", "S1", "=1+2", "Y"], ["A2", "S1", 4, "N"]]
    params = _excel_pupils(tmp_path, {"Pupils": rows})
    path = tmp_path / "data/raw/mini/pupils.xlsx"
    # what Excel does on saving: the formula keeps its result beside it
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = data.replace(b"<f>1+2</f><v />", b"<f>1+2</f><v>3</v>")
                assert b"<v>3</v>" in data
            dst.writestr(item, data)
    shutil.move(tmp, path)
    assert load_data(load_params(params))["pupils"]["year_group"].tolist() == [3, 4]


def test_a_formula_in_a_dropped_column_does_not_matter(tmp_path):
    rows = [["UPN", "School", "Notes"], ["A1", "S1", "=A1&B1"]]
    params_file = _project(tmp_path, "pupils", {"path": "pupils.xlsx", "columns":
                                                {"UPN": "pupil_id", "School": "school_id"}})
    _workbook(tmp_path / "data/raw/mini/pupils.xlsx", {"Pupils": rows})
    assert len(load_data(load_params(params_file))["pupils"]) == 1


# --- dates -----------------------------------------------------------------------------

def _referrals(tmp_path: Path, dates: list, xlsx: bool = False) -> Path:
    header = ["referral_id", "pupil_id", "referral_date"]
    rows = [[f"R{i}", f"A{i}", d] for i, d in enumerate(dates)]
    if xlsx:
        params_file = _project(tmp_path, "referrals", {"path": "referrals.xlsx"})
        _workbook(tmp_path / "data/raw/mini/referrals.xlsx", {"Referrals": [header, *rows]})
        return params_file
    text = "\n".join(",".join(str(c) for c in r) for r in [header, *rows]) + "\n"
    return _project(tmp_path, "referrals", {"path": "referrals.csv"}, text.encode())


@pytest.mark.parametrize("xlsx", [False, True])
def test_excel_serial_dates_are_read(tmp_path, xlsx):
    params = _referrals(tmp_path, [45300, "10/01/2024"], xlsx=xlsx)
    data = load_data(load_params(params))
    assert data["referrals"]["referral_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-09", "2024-01-10"]
    assert "referral_date: 1 Excel date serial number read as dates" in \
        data.reports["referrals"].notes


def test_small_numbers_are_not_taken_for_dates(tmp_path):
    with pytest.raises(DataError, match=r"column 'referral_date': row 2 hold numbers where "
                       r"dates belong"):
        load_data(load_params(_referrals(tmp_path, [12, "10/01/2024"], xlsx=True)))


def test_month_first_dates_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"row 3 hold month-first \(US\) dates \(for example "
                       r"'09/25/2023'\), but the kit reads dd/mm/yyyy"):
        load_data(load_params(_referrals(tmp_path, ["03/04/2023", "09/25/2023"])))


def test_mixed_uk_and_us_dates_are_refused_naming_both(tmp_path):
    dates = ["25/09/2023", "09/26/2023", "03/10/2023", "04/10/2023"]
    with pytest.raises(DataError, match=r"row 3 hold month-first \(US\) dates .* while row 2 "
                       r"hold day-first \(UK\) dates, so the 2 dates that could be either "
                       r"cannot be read safely"):
        load_data(load_params(_referrals(tmp_path, dates)))


def test_uk_dates_are_accepted_in_the_parameters(tmp_path):
    params_file = make_project(tmp_path)
    doc = yaml.safe_load(params_file.read_text())
    doc["project"]["period"] = {"start": "01/09/2021", "end": "31/07/2022"}
    params_file.write_text(yaml.safe_dump(doc))
    params = load_params(params_file)
    assert params.project.period.start == dt.date(2021, 9, 1)
    assert params.project.period.end == dt.date(2022, 7, 31)
    doc["project"]["period"] = {"start": "31/02/2022", "end": "31/07/2022"}
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(ProblemsError, match=r"'31/02/2022' is not a date \(read as "
                       r"day/month/year\)"):
        load_params(params_file)


# --- decimal commas --------------------------------------------------------------------

def _costs(tmp_path: Path, text: str, **extra) -> Path:
    return _project(tmp_path, "interventions", {
        "path": "iv.csv", "categories": {"intervention": ["mentoring"]}, **extra},
        text.encode())


IV = "intervention_id,referral_id,intervention,start_date,cost\n"


def test_a_decimal_comma_is_refused_not_read_as_thousands(tmp_path):
    text = IV + 'I1,R1,mentoring,01/10/2023,"225,00"\nI2,R2,mentoring,01/10/2023,"1,250"\n'
    with pytest.raises(DataError, match=r"iv.csv, column 'cost': row 2 hold numbers with a "
                       r"decimal comma \(for example '225,00'\). If the file writes decimals "
                       r"with a comma, add `decimal: \",\"` under data.interventions in "
                       r"mini.yaml"):
        load_data(load_params(_costs(tmp_path, text)))


def test_thousands_separators_are_still_read(tmp_path):
    text = IV + 'I1,R1,mentoring,01/10/2023,"1,250"\nI2,R2,mentoring,01/10/2023,"12,500.50"\n'
    data = load_data(load_params(_costs(tmp_path, text)))
    assert data["interventions"]["cost"].tolist() == [1250.0, 12500.5]


def test_declared_decimal_comma_is_read(tmp_path):
    text = ("intervention_id;referral_id;intervention;start_date;cost\n"
            "I1;R1;mentoring;01/10/2023;225,00\nI2;R2;mentoring;01/10/2023;1.234,5\n")
    data = load_data(load_params(_costs(tmp_path, text, decimal=",")))
    assert data["interventions"]["cost"].tolist() == [225.0, 1234.5]
    bad = text.replace("225,00", "225.75")
    with pytest.raises(DataError, match=r"row 2 hold numbers with a decimal point .* declares "
                       r"`decimal: \",\"`"):
        load_data(load_params(_costs(tmp_path / "b", bad, decimal=",")))


# --- what reading involved is recorded -------------------------------------------------

def test_notes_reach_the_manifest_without_cell_values(tmp_path):
    params = load_params(_pupils(tmp_path, TITLED.encode("cp1252")))
    out = write_processed(params, load_data(params))
    assert out == processed_dir(params)
    manifest = json.loads((out / "intake.json").read_text())
    assert "read as UTF-8 text, comma-separated" in manifest["pupils"]["notes"]
    assert "A1" not in json.dumps(manifest["pupils"]["notes"])


def test_sheets_lists_hidden_ones(tmp_path):
    path = tmp_path / "b.xlsx"
    _workbook(path, {"A": [["x"]], "B": [["y"]]}, hidden=("A",))
    assert [(s.name, s.hidden) for s in readers.sheets(path)] == [("A", True), ("B", False)]
    assert readers.column_letter(0) == "A" and readers.column_letter(27) == "AB"


def test_a_uk_interruption_date_is_9_january():
    from evaluation.params import ItsOptions

    assert ItsOptions(interruption="09/01/2024").interruption == dt.date(2024, 1, 9)
    assert ItsOptions(interruption=["09/01/2024", "2024-09-01"]).interruption == [
        dt.date(2024, 1, 9), dt.date(2024, 9, 1)]


def test_excel_error_cells_are_refused(tmp_path):
    params = _excel_pupils(tmp_path, {"Pupils": GOOD_ROWS})
    path = tmp_path / "data/raw/mini/pupils.xlsx"
    book = openpyxl.load_workbook(path)
    book["Pupils"]["C3"] = "#DIV/0!"
    book["Pupils"]["C3"].data_type = "e"
    book.save(path)
    with pytest.raises(DataError, match=r"pupils.xlsx, sheet 'Pupils': 1 cell of 'Year' "
                       r"\(row 3\) hold Excel errors \(such as #N/A or #DIV/0!\)"):
        load_data(load_params(params))


def test_numeric_ids_in_excel_join_with_the_same_ids_in_a_csv(tmp_path):
    params = _excel_pupils(tmp_path, {"Pupils": [["UPN", "School", "Year", "FSM"],
                                                 [1001, 7, 3, "Y"]]})
    doc = yaml.safe_load(params.read_text())
    doc["data"]["referrals"] = {"path": "data/raw/mini/referrals.csv"}
    params.write_text(yaml.safe_dump(doc))
    (tmp_path / "data/raw/mini/referrals.csv").write_text(
        "referral_id,pupil_id,referral_date\nR1,1001,02/10/2023\n")
    data = load_data(load_params(params))
    assert data["pupils"]["pupil_id"][0] == data["referrals"]["pupil_id"][0]
    assert data["pupils"]["school_id"][0] == "7"
