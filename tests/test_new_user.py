"""The new user (issue 20): a school's MIS-style export, as it is, to a report.

The fixture tests/data/new_user/mis_export.xlsx (written by make_workbook.py beside it: no
real person) has what such exports have: title lines, a hidden stale sheet, the SDQ wide
("SDQ Total (Autumn)", "SDQ Total (Summer)"), SEN codes N/K/E, "Year 3", blank cells, the
pupils' admission numbers and legal names, and a Notes column; 26 pupils in 3 schools.
Starting from a parameters file with no `data:` block, the user runs `evalkit inspect`,
pastes its suggestion, runs `evalkit validate` (counting the rounds until it passes: the
goal is one) and `evalkit run`, and gets a report; the workbook is never edited.

Also here: `evalkit new` writes a data-entry workbook that intake reads, once filled in,
with no column mapping at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import openpyxl
import pytest
import yaml

from evaluation import cli
from evaluation.intake import load_data
from evaluation.params import load_params

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "data" / "new_user"
NAMES = ["Placeholdington", "Madeupson", "Fictionalby", "Testcasey", "Sampleton",
         "Notrealby", "Spoke to"]


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def _suggested_block(output: str) -> dict:
    """The YAML that `evalkit inspect` prints after "Suggested parameters" (its comment
    lines included, as a user pasting it would include them)."""
    text = output.split("Suggested parameters", 1)[1].split("\n", 1)[1]
    return yaml.safe_load(text)


@pytest.fixture
def new_user(tmp_path: Path) -> Path:
    root = tmp_path / "kit"
    for folder in ("params", "toc_templates", "data/raw/new_user", "notebooks"):
        (root / folder).mkdir(parents=True)
    shutil.copy(FIXTURE / "mis_export.xlsx", root / "data/raw/new_user/mis_export.xlsx")
    shutil.copy(FIXTURE / "toc.yaml", root / "toc_templates/new_user.yaml")
    shutil.copy(FIXTURE / "blank_params.yaml", root / "params/new_user.yaml")
    for notebook in ("00_overview.ipynb", "10_baseline_followup.ipynb", "90_summary.ipynb"):
        shutil.copy(REPO / "notebooks" / notebook, root / "notebooks" / notebook)
    return root


def test_the_fixture_is_what_its_script_writes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_workbook",
                                                  FIXTURE / "make_workbook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build(tmp_path / "rebuilt.xlsx")
    book = openpyxl.load_workbook(built)
    committed = openpyxl.load_workbook(FIXTURE / "mis_export.xlsx")
    for name in ("Old export", "SDQ tracker"):
        assert [[c.value for c in r] for r in book[name].iter_rows()] == \
            [[c.value for c in r] for r in committed[name].iter_rows()]
    rows = list(committed["SDQ tracker"].iter_rows(min_row=5, values_only=True))
    assert len(rows) == 26 and len({r[5] for r in rows}) == 3
    assert committed["Old export"].sheet_state == "hidden"


def test_from_the_export_to_a_report_with_inspects_suggestion(new_user: Path,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(new_user)
    export = Path("data/raw/new_user/mis_export.xlsx")
    before = hashlib.sha256(export.read_bytes()).hexdigest()

    code, shown, err = _cli("inspect", str(export))
    assert code == 0, err
    for name in NAMES:  # the legal names and notes never reach the terminal
        assert name not in shown, name
    assert "'Old export' (hidden" in shown
    assert "headers on line 4" in shown

    params_file = Path("params/new_user.yaml")
    params = yaml.safe_load(params_file.read_text("utf-8"))
    params.update(_suggested_block(shown))
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    # the suggestion is the committed parameters' data block: the README walks through it
    committed = yaml.safe_load((FIXTURE / "new_user.yaml").read_text("utf-8"))
    assert params["data"] == committed["data"]

    rounds = 0
    while True:  # validate -> fix rounds, as a user would count them (there is no fix)
        rounds += 1
        code, out, err = _cli("validate", str(params_file))
        if code == 0 or rounds == 3:
            break
    assert code == 0, err
    assert rounds == 1
    assert "sen_status: 25 values recoded using DfE SEN provision codes (N/K/E)" in out
    assert "year_group: 26 values recoded using year group labels" in out
    assert "wide sheet reshaped: 26 rows x 2 columns gave 50 rows" in out
    for name in NAMES:
        assert name not in out + err

    code, out, err = _cli("run", str(params_file))
    assert code == 0, out + err
    report = new_user / "reports" / "new_user"
    index = (report / "index.html").read_text("utf-8")
    assert "Springfield Federation" in index
    page = (report / "10_baseline_followup.html").read_text("utf-8")
    [record] = json.loads((report / "results.json").read_text("utf-8"))["records"]
    assert record["measure"] == "sdq_teacher_total"
    assert record["n"] == 24  # pupils with both scores: two left before the summer
    assert "(n = 24)" in page
    for name in NAMES:
        assert name not in index + page
    assert hashlib.sha256(export.read_bytes()).hexdigest() == before  # never edited


# ----------------------------------------------------------------- data-entry templates


def test_new_writes_a_data_entry_workbook_that_intake_reads_without_mapping(
        tmp_path: Path) -> None:
    (tmp_path / "toc_templates").mkdir()
    shutil.copy(REPO / "toc_templates" / "blank.yaml", tmp_path / "toc_templates")
    code, out, err = _cli("new", "nurture", "--root", str(tmp_path))
    assert code == 0, err
    path = tmp_path / "data" / "raw" / "nurture" / "nurture_data_entry.xlsx"
    assert f"created {path}" in out
    book = openpyxl.load_workbook(path)
    # the blank theory of change measures the SDQ, a survey and an audit
    assert book.sheetnames == ["Instructions", "Lists", "pupils", "scores",
                               "survey_responses", "audit_ratings"]
    assert book["Lists"].sheet_state == "hidden"
    pupils, scores = book["pupils"], book["scores"]
    assert [c.value for c in pupils[1]] == ["pupil_id", "school_id", "year_group", "sex",
                                            "sen_status", "fsm", "eal", "ethnicity",
                                            "ethnicity_minor", "group"]
    lists = {str(dv.sqref): dv.formula1 for dv in scores.data_validations.dataValidation
             if dv.type == "list"}
    assert set(lists) == {"B2:B1001", "C2:C1001"}  # measure and timepoint
    sheet, cells = lists["C2:C1001"].split("!")
    assert sheet == "Lists"
    values = [c.value for row in book["Lists"][cells.replace("$", "")] for c in row]
    assert values == ["baseline", "follow_up"]
    measures = [c.value for row in book["Lists"][lists["B2:B1001"].split("!")[1]
                                                 .replace("$", "")] for c in row]
    assert measures == ["sdq_teacher_total"]  # what the theory of change measures
    instructions = "\n".join(str(c.value) for row in book["Instructions"].iter_rows()
                             for c in row if c.value)
    assert "sen_status" in instructions and "choose from the list: none, SEN support" \
        in instructions

    # a school fills it in, with the values the drop-downs offer
    for i in range(6):
        pupils.append([f"A{i:03d}", "Elm", i % 3 + 3, "FM"[i % 2],
                       ["none", "SEN support", "EHC plan"][i % 3], "Y" if i % 2 else "N",
                       "N", "White", None, None])
        scores.append([f"A{i:03d}", "sdq_teacher_total", "baseline", 18 + i, None, "Elm"])
        scores.append([f"A{i:03d}", "sdq_teacher_total", "follow_up", 15 + i, None, "Elm"])
    book.save(path)
    params_file = tmp_path / "params" / "nurture.yaml"
    params = yaml.safe_load(params_file.read_text("utf-8"))
    params["data"] = {kind: {"path": f"data/raw/nurture/{path.name}", "sheet": kind}
                      for kind in ("pupils", "scores")}  # no `columns:` at all
    params_file.write_text(yaml.safe_dump(params), "utf-8")
    data = load_data(load_params(params_file), use_cache=False)
    assert len(data["pupils"]) == 6 and len(data["scores"]) == 12
    assert data["pupils"]["fsm"].tolist() == [False, True] * 3
    assert data["scores"]["score"].sum() == sum(18 + i + 15 + i for i in range(6))


def test_a_theory_of_change_decides_the_sheets() -> None:
    from evaluation.entry_templates import tables_needed

    toc = {"outcomes": [{"analysis": "its", "measure": "suspensions"},
                        {"analysis": "referral_tracking", "measure": "attendance_pct"}]}
    assert tables_needed(toc) == ["pupils", "exclusions", "referrals", "interventions",
                                  "reviews", "attendance"]
