"""Recoding: the project's `recode:` and the kit's built-in code lists (DfE SEN provision
and ethnicity codes, FSM yes/no, sex, year groups, timepoint words), each use reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from evaluation import codes
from evaluation.errors import DataError
from evaluation.intake import load_data, write_processed
from evaluation.params import ProblemsError, load_params
from evaluation.tables import ETHNIC_GROUPS, ETHNIC_MINOR_GROUPS
from tests.conftest import make_project

HEADER = "Adno,School,SEN,FSM,Gender,Reg,Ethnicity\n"
MAPPING = {"Adno": "pupil_id", "School": "school_id", "SEN": "sen_status", "FSM": "fsm",
           "Gender": "sex", "Reg": "year_group", "Ethnicity": "ethnicity"}
ROWS = [
    "A1,S1,N,Y,Male,Year 3,WBRI",
    "A2,S1,K,N,F,Y4,MWBC",
    "A3,S1,E,T,female,R,WENG",
    "A4,S2,n,F,M,Reception,BCRB",
    "A5,S2,SEN Support,1,girl,N1,REFU",
    "A6,S2,EHCP,0,Boy,N2,CHNE",
    "A7,S2,none,true,F,6,",
    "A8,S2,,false,M,Yr 5,AIND",
]


def _project(tmp_path: Path, rows=ROWS, header=HEADER, mapping=MAPPING, **extra) -> Path:
    params_file = make_project(tmp_path)
    (tmp_path / "data/raw/mini/pupils.csv").write_text(header + "\n".join(rows) + "\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["pupils"] = {"path": "data/raw/mini/pupils.csv", "columns": mapping, **extra}
    params_file.write_text(yaml.safe_dump(doc))
    return params_file


def test_built_in_code_lists_are_applied_and_reported(tmp_path):
    params = load_params(_project(tmp_path))
    data = load_data(params)
    pupils = data["pupils"]
    assert pupils["sen_status"].tolist()[:7] == [
        "none", "SEN support", "EHC plan", "none", "SEN support", "EHC plan", "none"]
    assert pupils["fsm"].tolist() == [True, False, True, False, True, False, True, False]
    assert pupils["sex"].tolist() == ["M", "F", "F", "M", "F", "M", "F", "M"]
    assert pupils["year_group"].tolist() == [3, 4, 0, 0, -2, -1, 6, 5]
    assert pupils["ethnicity"].tolist()[:6] == ["White", "Mixed", "White", "Black",
                                                "Unclassified", "Chinese"]
    assert pupils["ethnicity_minor"].tolist()[:6] == [
        "White British", "White and Black Caribbean", "White British", "Black Caribbean",
        "Unclassified", "Chinese"]
    report = data.reports["pupils"]
    assert report.recoded == {"sen_status": 6, "sex": 4, "year_group": 7, "ethnicity": 7}
    assert "sen_status: 6 values recoded using DfE SEN provision codes (N/K/E)" in report.notes
    assert "ethnicity_minor: derived from the DfE ethnicity codes of ethnicity" in report.notes
    out = write_processed(params, data)
    manifest = json.loads((out / "intake.json").read_text())
    assert manifest["pupils"]["recoded"]["sen_status"] == 6
    assert any("DfE SEN provision codes" in n for n in manifest["pupils"]["notes"])


def test_every_ethnicity_code_lands_in_the_kits_groups():
    for code in [*codes.ETHNICITY_MAIN, *codes.ETHNICITY_EXTENDED]:
        minor, major = codes.ethnicity_groups(code)
        assert minor in ETHNIC_MINOR_GROUPS and major in ETHNIC_GROUPS, code
    # the DfE's grouping, spot-checked against the code set's main categories
    assert codes.ethnicity_groups("wbri") == ("White British", "White")
    assert codes.ethnicity_groups(" MWBC ") == ("White and Black Caribbean", "Mixed")
    assert codes.ethnicity_groups("WTUR") == ("Any other White background", "White")
    assert codes.ethnicity_groups("NOBT") == ("Unclassified", "Unclassified")
    assert codes.ethnicity_groups("Indian") == ("Indian", "Asian")
    assert codes.ethnicity_groups("XXXX") is None


RSCD_CODES = Path(__file__).parent / "data" / "dfe_ethnicity_codes_rscd.csv"
#: On the gov.uk code page but not in the RSCD table (WNIR, the Gypsy/Roma sub-codes).
GOV_UK_ONLY = {"WNIR": "WBRI", "WROG": "WROM", "WROR": "WROM", "WROO": "WROM"}


def test_every_extended_code_has_a_main_code_of_its_own_letter():
    for code, main in codes.ETHNICITY_EXTENDED.items():
        assert main in codes.ETHNICITY_MAIN, code
        assert code not in codes.ETHNICITY_MAIN, code
        # the DfE's scheme: an extended code starts with its main group's letter
        assert len(code) == 4 and code[0] == main[0], code


def test_extended_codes_match_the_dfe_table_group_by_group():
    """Every code of the DfE's RSCD ethnicity table (copied in tests/data) maps to the one
    main code of its parent group, and the map holds no code the sources do not list."""
    groups: dict[str, list[str]] = {}
    with RSCD_CODES.open(newline="") as handle:
        for row in csv.DictReader(handle):
            groups.setdefault(row["parent_group"], []).append(row["code"])
    # group 100 is "not supplied" (?, NONE, UNCL, REFU, NOBT): REFU and NOBT are main codes
    # already; the others are that application's own placeholders, not census codes.
    assert set(groups.pop("100")) == {"?", "NONE", "UNCL", "REFU", "NOBT"}
    expected: dict[str, str] = dict(GOV_UK_ONLY)
    for group, members in groups.items():
        mains = [c for c in members if c in codes.ETHNICITY_MAIN]
        assert len(mains) == 1, (group, members)
        expected.update({c: mains[0] for c in members if c != mains[0]})
    assert codes.ETHNICITY_EXTENDED == expected
    per_major = {}
    for main in expected.values():
        major = codes.ETHNICITY_MAIN[main][1]
        per_major[major] = per_major.get(major, 0) + 1
    assert per_major == {"White": 26, "Mixed": 12, "Asian": 10, "Black": 11, "Chinese": 5,
                         "Any other ethnic group": 19}


@pytest.mark.parametrize(("code", "minor", "major"), [
    # hand-checked against the RSCD table (and the gov.uk page for WNIR)
    ("WNIR", "White British", "White"),
    ("WEEU", "Any other White background", "White"),
    ("MWAP", "White and Asian", "Mixed"),
    ("MBCH", "Any other Mixed background", "Mixed"),
    ("AKPA", "Pakistani", "Asian"),
    ("ASLT", "Any other Asian background", "Asian"),
    ("BNGN", "Black African", "Black"),
    ("BSOM", "Black African", "Black"),
    (" bgha ", "Black African", "Black"),
    ("BNAM", "Any other Black background", "Black"),
    ("CHKC", "Chinese", "Chinese"),
    ("OAFG", "Any other ethnic group", "Any other ethnic group"),
    ("OARA", "Any other ethnic group", "Any other ethnic group"),
])
def test_extended_codes_of_every_group_recode(code, minor, major):
    assert codes.ethnicity_groups(code) == (minor, major)


def test_an_export_with_extended_codes_is_read(tmp_path):
    rows = ["A1,S1,N,Y,M,3,BNGN", "A2,S1,N,Y,F,3,AKPA", "A3,S1,N,N,M,4,CHKC",
            "A4,S1,N,N,F,4,OARA", "A5,S1,N,N,F,4,MWCH"]
    pupils = load_data(load_params(_project(tmp_path, rows=rows)))["pupils"]
    assert pupils["ethnicity"].tolist() == ["Black", "Asian", "Chinese",
                                            "Any other ethnic group", "Mixed"]
    assert pupils["ethnicity_minor"].tolist() == [
        "Black African", "Pakistani", "Chinese", "Any other ethnic group",
        "Any other Mixed background"]


def test_a_four_letter_code_not_in_the_dfe_lists_is_still_refused(tmp_path):
    # BKEN looks like a Black African sub-code but is in neither source
    rows = ["A1,S1,N,Y,M,3,BNGN", "A2,S1,N,Y,M,3,BKEN"]
    assert codes.ethnicity_groups("BKEN") is None
    with pytest.raises(DataError, match=r"column 'ethnicity': row 3 .*outside the allowed"):
        load_data(load_params(_project(tmp_path, rows=rows)))


@pytest.mark.parametrize(("label", "year"), [
    ("Year 3", 3), ("Y3", 3), ("yr 10", 10), ("R", 0), ("Reception", 0), ("N1", -2),
    ("N2", -1), ("11", 11), ("Year R", 0)])
def test_year_group_labels(label, year):
    assert codes.year_group(label) == year


def test_year_group_labels_that_are_not_years():
    assert codes.year_group("Year three") is None and codes.year_group("X") is None


def test_the_projects_recode_wins_and_can_mean_missing(tmp_path):
    rows = ["A1,S1,N,Y,U,Year 3,", "A2,S1,SA,N,M,Year 4,", "A3,S1,K,N,M,Year 4,"]
    params_file = _project(tmp_path, rows=rows, recode={
        "sen_status": {"SA": "SEN support", "K": "EHC plan"}, "sex": {"U": None}})
    pupils = load_data(load_params(params_file))["pupils"]
    # the school's own meaning of K wins over the DfE list
    assert pupils["sen_status"].tolist() == ["none", "SEN support", "EHC plan"]
    assert pupils["sex"].isna().tolist() == [True, False, False]
    report = load_data(load_params(params_file)).reports["pupils"]
    assert "sen_status: 2 values recoded using data.pupils.recode" in report.notes


def test_recode_matches_excel_numbers_and_text_alike(tmp_path):
    rows = ["A1,S1,1,Y,M,3,", "A2,S1,2,N,M,4,", "A3,S1,0,N,M,4,"]
    params_file = _project(tmp_path, rows=rows, recode={
        "sen_status": {0: "none", 1: "SEN support", 2: "EHC plan"}})
    pupils = load_data(load_params(params_file))["pupils"]
    assert pupils["sen_status"].tolist() == ["SEN support", "EHC plan", "none"]


def test_yes_and_no_as_recode_keys_must_be_quoted(tmp_path):
    params_file = _project(tmp_path)
    params_file.write_text(params_file.read_text().replace(
        "    path: data/raw/mini/pupils.csv\n",
        "    path: data/raw/mini/pupils.csv\n    recode: {sex: {Yes: M}}\n"))
    with pytest.raises(ProblemsError, match=r"read by YAML as true/false: put the file's "
                       r"value in quotes"):
        load_params(params_file)


def test_recode_must_name_a_kit_column(tmp_path):
    params_file = _project(tmp_path, recode={"SEN": {"K": "SEN support"}})
    with pytest.raises(ProblemsError, match=r"data.pupils.recode: 'SEN' is not a column of "
                       r"the pupils table \(recode names the kit's column"):
        load_params(params_file)
    params_file = _project(tmp_path / "b", recode={"pupil_id": {"A1": "A2"}})
    with pytest.raises(ProblemsError, match=r"'pupil_id' holds identifiers"):
        load_params(params_file)


def test_unknown_codes_are_refused_masked_with_how_to_recode(tmp_path):
    rows = ["A1,S1,Jo Bloggs,Y,M,3,"]
    with pytest.raises(DataError) as info:
        load_data(load_params(_project(tmp_path, rows=rows)))
    message = str(info.value)
    assert "column 'sen_status': row 2" in message and '"J… (9 characters)"' in message
    assert "`recode: {sen_status: {<their value>: <kit value>}}` under data.pupils" in message
    assert "Bloggs" not in message


def test_an_unknown_ethnicity_code_is_refused(tmp_path):
    rows = ["A1,S1,N,Y,M,3,WBRI", "A2,S1,N,Y,M,3,ZZZZ"]
    with pytest.raises(DataError, match=r"column 'ethnicity': row 3 .*outside the allowed"):
        load_data(load_params(_project(tmp_path, rows=rows)))


def _scores(tmp_path: Path, timepoints: list[str], **extra) -> Path:
    params_file = make_project(tmp_path)
    lines = ["UPN,Measure,When,Score"] + [
        f"A{i},sdq_teacher_total,{t},{10 + i}" for i, t in enumerate(timepoints)]
    (tmp_path / "data/raw/mini/scores.csv").write_text("\n".join(lines) + "\n")
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["scores"] = {"path": "data/raw/mini/scores.csv",
                             "columns": {"UPN": "pupil_id", "Measure": "measure",
                                         "When": "timepoint", "Score": "score"}, **extra}
    params_file.write_text(yaml.safe_dump(doc))
    return params_file


def test_timepoint_words_with_one_meaning_are_built_in(tmp_path):
    params = _scores(tmp_path, ["T1", "T2", "Pre", "Post", "Follow-up", "baseline"])
    scores = load_data(load_params(params))["scores"]
    assert scores["timepoint"].tolist() == ["baseline", "follow_up", "baseline", "follow_up",
                                            "follow_up", "baseline"]


def test_terms_as_timepoints_need_the_parameters_to_say(tmp_path):
    params = _scores(tmp_path, ["Autumn", "Summer"])
    with pytest.raises(DataError, match=r"column 'timepoint': rows 2, 3 \(for example "
                       r"'Autumn', 'Summer'\) hold values outside the allowed list .* Terms "
                       r"are not guessed: say which is the baseline, e.g. `recode: "
                       r"\{timepoint: \{Autumn: baseline, Summer: follow_up\}\}`"):
        load_data(load_params(params))
    params = _scores(tmp_path / "b", ["Autumn", "Summer"],
                     recode={"timepoint": {"autumn": "baseline", "SUMMER": "follow_up"}})
    scores = load_data(load_params(params))["scores"]
    assert scores["timepoint"].tolist() == ["baseline", "follow_up"]


def test_only_term_words_are_quoted_in_the_timepoint_message(tmp_path):
    params = _scores(tmp_path, ["Autumn", "Jo Bloggs"])
    with pytest.raises(DataError) as info:
        load_data(load_params(params))
    assert "'Autumn'" in str(info.value) and '"J… (9 characters)"' in str(info.value)
    assert "Bloggs" not in str(info.value)
