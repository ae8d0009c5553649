"""Intake privacy: only allow-listed columns reach data/processed, free text only as coded
categories, masked examples in messages, keyed pseudonyms, neutralised formulas.

Every identifier below is made up.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evaluation.errors import DataError, masked
from evaluation.intake import load_data, processed_dir, write_processed
from evaluation.params import load_params
from evaluation.pseudonyms import KEY_ENV
from tests.conftest import make_project

# Planted identifiers: a school's export with every column a careless school might add.
UPN = "K801200113014"
PLANTED = {
    "legal name": "Zebedee Quixotically",
    "date of birth": "14/03/2013",
    "date of birth (ISO)": "2013-03-14",
    "postcode": "ZZ9 9ZZ",
    "e-mail": "zebedee.q@example.org",
    "phone": "07700 900123",
    "NHS number": "943 476 5919",
    "staff name": "Harriet Oddname",
    "notes": "phoned Jo Bloggs mum 07700 900123",
    "UPN": UPN,
}
NOTES_HEADER = "Notes on Jo Bloggs"

PUPILS = (
    f"UPN,Legal Name,D.O.B,Postcode,E-mail,Phone,NHS Number,School,Gender,{NOTES_HEADER}\n"
    f"{UPN},{PLANTED['legal name']},{PLANTED['date of birth']},{PLANTED['postcode']},"
    f"{PLANTED['e-mail']},{PLANTED['phone']},{PLANTED['NHS number']},S1,M,"
    f"{PLANTED['notes']}\n"
    "A002,Ann Other,01/01/2014,ZZ1 1ZZ,a@example.org,07700 900001,943 476 0000,S1,F,\n"
)
REFERRALS = (
    "Referral ID,UPN,Date of Referral,Reason,Lead Professional,Key Worker,Case notes\n"
    f"R1,{UPN},01/10/2021,anxiety,{PLANTED['staff name']},{PLANTED['staff name']},"
    f"{PLANTED['notes']}\n"
    "R2,A002,02/10/2021,Behaviour ,,Someone Else,\n"
)


def _project(tmp_path: Path, pupils: str = PUPILS, referrals: str | None = REFERRALS,
             categories: dict | None = None) -> Path:
    params_file = make_project(tmp_path)
    raw = tmp_path / "data" / "raw" / "mini"
    (raw / "pupils.csv").write_text(pupils)
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["pupils"]["columns"] = {"UPN": "pupil_id", "School": "school_id",
                                        "Gender": "sex"}
    if referrals is not None:
        (raw / "referrals.csv").write_text(referrals)
        doc["data"]["referrals"] = {
            "path": "data/raw/mini/referrals.csv",
            "columns": {"Referral ID": "referral_id", "UPN": "pupil_id",
                        "Date of Referral": "referral_date", "Reason": "reason",
                        "Lead Professional": "lead_professional"},
            "categories": categories if categories is not None else {
                "reason": ["anxiety", "attendance", "behaviour", "family", "other"]},
        }
    params_file.write_text(yaml.safe_dump(doc))
    return params_file


def _processed_bytes(params) -> dict[Path, bytes]:
    folder = processed_dir(params)
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_planted_identifiers_never_reach_processed_files(tmp_path):
    params = load_params(_project(tmp_path))
    data = load_data(params)
    write_processed(params, data)
    # a second run reads the cache and writes again: still nothing
    write_processed(params, load_data(params))
    files = _processed_bytes(params)
    assert any(p.suffix == ".pkl" for p in files) and any(p.suffix == ".csv" for p in files)
    for path, content in files.items():
        for what, value in PLANTED.items():
            assert value.encode() not in content, f"{what} found in {path.name}"
        for word in (b"Bloggs", b"Zebedee", b"Oddname", b"Notes on", b"Legal Name",
                     b"Postcode", b"NHS", b"Key Worker", b"Case notes"):
            assert word not in content, f"{word!r} found in {path.name}"
    # only kit columns survive; the dropped headers are there for the terminal only
    assert list(data["pupils"].columns) == ["pupil_id", "school_id", "sex"]
    assert data.dropped_columns() == {
        "pupils": ["Legal Name", "D.O.B", "Postcode", "E-mail", "Phone", "NHS Number",
                   NOTES_HEADER],
        "referrals": ["Key Worker", "Case notes"],
    }
    manifest = json.loads((processed_dir(params) / "intake.json").read_text())
    assert manifest["pupils"]["n_dropped_columns"] == 7
    assert manifest["referrals"]["n_dropped_columns"] == 2
    # the cached copy still knows the headers (read again from the file's header row)
    assert load_data(params).dropped_columns() == data.dropped_columns()


def test_staff_names_become_pseudonyms(tmp_path):
    data = load_data(load_params(_project(tmp_path)))
    lead = data["referrals"]["lead_professional"]
    assert lead.iloc[0].startswith("S") and len(lead.iloc[0]) == 17
    assert pd.isna(lead.iloc[1])  # no lead professional named stays missing
    assert data["referrals"]["pupil_id"].iloc[0] == data["pupils"]["pupil_id"].iloc[0]


def test_categories_are_coded_in_the_declared_spelling(tmp_path):
    data = load_data(load_params(_project(tmp_path)))
    assert data["referrals"]["reason"].tolist() == ["anxiety", "behaviour"]


def test_free_text_outside_the_categories_is_refused_without_echo(tmp_path):
    referrals = REFERRALS.replace(",anxiety,", f",{PLANTED['notes']},")
    params = load_params(_project(tmp_path, referrals=referrals))
    with pytest.raises(DataError) as info:
        load_data(params)
    message = str(info.value)
    assert "referrals.csv, column 'reason': row 2 hold values outside the allowed " \
           "categories (anxiety, attendance, behaviour, family, other;" in message
    assert "data.referrals.categories.reason in mini.yaml" in message
    for leak in ("phoned", "Jo", "Bloggs", "07700", "p…"):
        assert leak not in message


def test_undeclared_optional_free_text_is_dropped_and_listed(tmp_path):
    params_file = _project(tmp_path, categories={})
    data = load_data(load_params(params_file))
    assert "reason" not in data["referrals"]
    assert "Reason" in data.dropped_columns()["referrals"]


def test_undeclared_required_free_text_is_refused_with_how_to_declare(tmp_path):
    params_file = _project(tmp_path, referrals=None)
    (tmp_path / "data/raw/mini/iv.csv").write_text(
        "intervention_id,referral_id,intervention,start_date\n"
        "I1,R1,mentoring with Jo Bloggs,01/11/2021\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["interventions"] = {"path": "data/raw/mini/iv.csv"}
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"iv.csv, column 'intervention': this column is free "
                       r"text.*under data.interventions.categories") as info:
        load_data(load_params(params_file))
    assert "Bloggs" not in str(info.value)
    # declared: kept, and a value off the list is refused without echo
    doc["data"]["interventions"]["categories"] = {"intervention": ["mentoring", "nurture"]}
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"row 2 hold values outside") as info:
        load_data(load_params(params_file))
    assert "Bloggs" not in str(info.value)


@pytest.mark.parametrize(("value", "shown"), [
    ("Jo Bloggs 12", '"J… (12 characters)"'),
    ("K", '"K… (1 character)"'),
    ("12,5", "'12,5'"),
    ("31/02/2024", "'31/02/2024'"),
    ("-", "'-'"),
])
def test_masked_quotes_only_values_without_letters(value, shown):
    assert masked(value) == shown


def _pupils_with(tmp_path, header: str, column: str, value: str) -> Path:
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/pupils.csv").write_text(
        f"Pupil No,School,{header}\nA1,S1,\"{value}\"\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["pupils"]["columns"] = {"Pupil No": "pupil_id", "School": "school_id",
                                        header: column}
    params_file.write_text(yaml.safe_dump(doc))
    return params_file


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("year_group", "Jo Bloggs", '"J… (9 characters)"'),   # not a number
    ("fsm", "Jo Bloggs", '"J… (9 characters)"'),          # not yes/no
    ("sex", "Jo Bloggs", '"J… (9 characters)"'),          # outside the allowed list
    ("year_group", "12,5x", '"1… (5 characters)"'),
    ("year_group", "-3", "'-3'"),                         # below the minimum: numbers shown
])
def test_intake_messages_mask_values_with_letters(tmp_path, column, value, expected):
    with pytest.raises(DataError) as info:
        load_data(load_params(_pupils_with(tmp_path, "Col", column, value)))
    message = str(info.value)
    assert expected in message
    if any(ch.isalpha() for ch in value):
        assert value not in message and "Bloggs" not in message


def test_bad_dates_are_masked_or_quoted(tmp_path):
    params_file = make_project(tmp_path)
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["referrals"] = {"path": "data/raw/mini/referrals.csv"}
    params_file.write_text(yaml.safe_dump(doc))
    path = tmp_path / "data/raw/mini/referrals.csv"
    path.write_text("referral_id,pupil_id,referral_date\nR1,A1,Sept 2021\nR2,A2,31/02/2024\n")
    with pytest.raises(DataError) as info:
        load_data(load_params(params_file))
    assert "\"S… (9 characters)\", '31/02/2024'" in str(info.value)
    assert "Sept" not in str(info.value)


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "=cmd|' /C calc'!A0", "@SUM(1+1)", "+1",
            "\t=1+2", "\r=1+2", "-2+3"]


def test_formula_cells_are_neutralised_in_processed_csvs(tmp_path):
    params_file = make_project(tmp_path)
    # each formula as a school id and as a programme group (both kept as text)
    rows = [[f"B{i}", formula, formula] for i, formula in enumerate(FORMULAS)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerows([["Pupil No", "School", "Group"], ["A1", "S1", "programme"], *rows])
    (tmp_path / "data/raw/mini/pupils.csv").write_text(buffer.getvalue())
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["pupils"]["columns"] = {"Pupil No": "pupil_id", "School": "school_id",
                                        "Group": "group"}
    params_file.write_text(yaml.safe_dump(doc))
    params = load_params(params_file)
    out = write_processed(params, load_data(params))
    with open(out / "pupils.csv", newline="", encoding="utf-8") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert "'=HYPERLINK(\"http://x\",\"y\")" in cells and "'@SUM(1+1)" in cells
    assert "'+1" in cells and "'-2+3" in cells and "'=cmd|' /C calc'!A0" in cells
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_unwritable_processed_folder_is_one_clear_line(tmp_path):
    params = load_params(make_project(tmp_path))
    data = load_data(params)
    (tmp_path / "data" / "processed").write_text("a file where the folder should be")
    with pytest.raises(DataError, match=r"data/processed/mini: cannot write the cleaned "
                       r"tables there \(.*\). Make the folder writable"):
        write_processed(params, data)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs file permissions that apply to this user")
def test_read_only_processed_folder_is_one_clear_line(tmp_path):
    params = load_params(make_project(tmp_path))
    data = load_data(params)
    folder = tmp_path / "data" / "processed"
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        with pytest.raises(DataError, match=r"cannot write the cleaned tables there "
                           r"\(Permission denied\)"):
            write_processed(params, data)
    finally:
        folder.chmod(0o700)


def test_pseudonyms_follow_the_key_and_the_cache_knows_it(tmp_path, monkeypatch):
    params = load_params(make_project(tmp_path))
    monkeypatch.setenv(KEY_ENV, "a" * 64)
    first = load_data(params)
    write_processed(params, first)
    monkeypatch.setenv(KEY_ENV, "b" * 64)
    second = load_data(params)  # another key: the cache must not be used
    assert not set(first["pupils"]["pupil_id"]) & set(second["pupils"]["pupil_id"])
    monkeypatch.setenv(KEY_ENV, "a" * 64)
    assert load_data(params)["pupils"]["pupil_id"].equals(first["pupils"]["pupil_id"])
