"""Property-based privacy tests: made-up pupils with names, UPNs, dates of birth, postcodes
and free text in every column a school might export, run through the kit as a user would.

Nothing generated as an identifier may appear under data/processed/ (caches included),
under reports/, or in the command's output; and no board-facing count below the threshold
may appear or be recoverable by subtraction within a table.
"""

from __future__ import annotations

import io
import re
import shutil
import string
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation import cli
from tests.conftest import REPO

THRESHOLD = 5
LETTERS = string.ascii_uppercase
# Made-up but realistic: names are random words starting "Zq" (so they cannot collide with
# the kit's own words), UPNs follow the DfE pattern, postcodes the UK pattern.
name = st.text(alphabet=string.ascii_lowercase, min_size=7, max_size=10).map(
    lambda s: "Zq" + s)
upn = st.builds(lambda letter, digits: letter + digits,
                st.sampled_from(LETTERS), st.text(alphabet=string.digits, min_size=12,
                                                  max_size=12))
postcode = st.builds(lambda a, d, b: f"{a}{d} {d}{b}", st.sampled_from(["QX", "QZ", "XZ"]),
                     st.integers(10, 99), st.sampled_from(["ZZ", "ZQ", "QJ"]))
birth = st.dates(min_value=pd.Timestamp("2008-01-01").date(),
                 max_value=pd.Timestamp("2019-12-31").date())


@st.composite
def school_export(draw: st.DrawFn) -> dict:
    """A pupils sheet and an SDQ sheet for 20-40 pupils, identifiers in every column the kit
    does not need, and a small group (1 to 4 pupils) that a board must never see counted."""
    n = draw(st.integers(20, 40))
    upns = draw(st.lists(upn, min_size=n, max_size=n, unique=True))
    forenames = draw(st.lists(name, min_size=n, max_size=n))
    surnames = draw(st.lists(name, min_size=n, max_size=n))
    small = draw(st.integers(1, THRESHOLD - 1))
    sen = ["EHC plan"] * small + ["none"] * (n - small)
    pupils = pd.DataFrame({
        "UPN": upns, "Forename": forenames, "Legal Surname": surnames,
        "D.O.B": [d.strftime("%d/%m/%Y") for d in draw(st.lists(birth, min_size=n,
                                                                  max_size=n))],
        "Postcode": draw(st.lists(postcode, min_size=n, max_size=n)),
        "Parent Email": [f"{f.lower()}@example.invalid" for f in forenames],
        "Notes": [f"spoke to {f} {s}'s carer" for f, s in zip(forenames, surnames,
                                                               strict=True)],
        "School": "SCH01", "SEN": sen,
        "FSM": draw(st.lists(st.sampled_from(["Y", "N"]), min_size=n, max_size=n)),
        "Gender": draw(st.lists(st.sampled_from(["F", "M"]), min_size=n, max_size=n)),
    })
    baseline = draw(st.lists(st.integers(12, 30), min_size=n, max_size=n))
    change = draw(st.lists(st.integers(-8, 3), min_size=n, max_size=n).filter(
        lambda c: len(set(c)) > 1))  # a change with no spread is refused, rightly
    scores = pd.DataFrame({
        "UPN": upns * 2,
        "Measure": "sdq_teacher_total",
        "Timepoint": ["baseline"] * n + ["follow_up"] * n,
        "Score": baseline + [max(0, min(40, b + c)) for b, c in zip(baseline, change,
                                                                     strict=True)],
        "Assessor": [f"{s} (teacher)" for s in draw(st.lists(name, min_size=2 * n,
                                                               max_size=2 * n))],
    })
    identifiers = (upns + forenames + surnames + list(pupils["Postcode"])
                   + list(pupils["D.O.B"]) + list(pupils["Parent Email"])
                   + [a.split(" ")[0] for a in scores["Assessor"]])
    return {"pupils": pupils, "scores": scores, "identifiers": identifiers, "small": small}


TOC = """\
title: Nurture groups (property test)
aims:
  - {id: aim, statement: Pupils thrive}
outcomes:
  - id: sdq
    statement: Pupils' difficulties reduce
    measure: sdq_teacher_total
    analysis: baseline_followup
    data: scores
    direction: lower_is_better
    aims: [aim]
mechanisms:
  - {id: mech, statement: Pupils feel safe, outcomes: [sdq]}
activities:
  - id: act
    what: Nurture group sessions
    for_whom: Pupils identified at the inclusion meeting
    delivered_by: Trained teaching assistants
    when: Three afternoons a week
    outputs: [Sessions delivered]
    owner: SENCo
    due: 2024-07-19
    rag: green
    mechanisms: [mech]
"""

PARAMS = {
    "project": {"id": "prop", "title": "Property test", "organisation": "Test LA",
                "period": {"start": "2023-09-01", "end": "2024-07-19"}},
    "theory_of_change": "toc_templates/prop.yaml",
    "data": {
        "pupils": {"path": "data/raw/prop/pupils.csv",
                   "columns": {"UPN": "pupil_id", "School": "school_id", "SEN": "sen_status",
                               "FSM": "fsm", "Gender": "sex", "Forename": "first_name"}},
        "scores": {"path": "data/raw/prop/scores.csv",
                   "columns": {"UPN": "pupil_id", "Measure": "measure",
                               "Timepoint": "timepoint", "Score": "score"}},
    },
    "analyses": {"overview": {}, "baseline_followup": {"subgroups": ["sen_status", "fsm"],
                                                       "comparison": False},
                 "summary": {}},
    "report": {"audience": "board", "min_count": THRESHOLD},
}


def _project(root: Path, export: dict) -> Path:
    raw = root / "data" / "raw" / "prop"
    raw.mkdir(parents=True)
    export["pupils"].to_csv(raw / "pupils.csv", index=False)
    export["scores"].to_csv(raw / "scores.csv", index=False)
    (root / "toc_templates").mkdir()
    (root / "toc_templates" / "prop.yaml").write_text(TOC, "utf-8")
    (root / "params").mkdir()
    params = root / "params" / "prop.yaml"
    params.write_text(yaml.safe_dump(PARAMS, sort_keys=False), "utf-8")
    if not (root / "notebooks").exists():
        shutil.copytree(REPO / "notebooks", root / "notebooks")
    return params


def _run_cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue() + err.getvalue()


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in sorted(folder.rglob("*")) if p.is_file())


def _leaks(identifiers: list[str], text: str) -> list[str]:
    return [i for i in identifiers if i in text]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(export=school_export())
def test_intake_lets_no_identifier_through(export: dict, tmp_path_factory) -> None:
    """`evalkit validate` and the processed tables (caches included) hold no identifier."""
    root = tmp_path_factory.mktemp("prop")
    params = _project(root, export)
    code, output = _run_cli("validate", str(params))
    assert code == 0, output
    from evaluation.intake import load_data, write_processed
    from evaluation.params import load_params

    p = load_params(params)
    write_processed(p, load_data(p, use_cache=False))
    processed = _all_text(root / "data" / "processed")
    assert not _leaks(export["identifiers"], processed)
    # validate may list dropped headers, never a cell
    assert not _leaks(export["identifiers"], output)


#: Headers of the columns that count pupils in the reports this project gets.
COUNT_HEADER = re.compile(r"^(n|N|pupils|Pupils.*|Baseline only|Follow-up only|Count.*)$")


def _count_columns(table: pd.DataFrame) -> list[str]:
    """The columns of counts: by header, and every column of a band-transition table."""
    if "band" in str(table.columns[0]).lower():
        return list(table.columns[1:])
    return [c for c in table.columns if COUNT_HEADER.match(str(c).strip())]


class _Tables(HTMLParser):
    """The tables of an HTML page as lists of rows of cell text (header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in {"td", "th"}:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self.cell is not None and self.tables:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _board_tables(report: Path) -> list[pd.DataFrame]:
    tables = []
    for page in sorted(report.glob("*.html")):
        parser = _Tables()
        parser.feed(page.read_text("utf-8"))
        for rows in parser.tables:
            rows = [r for r in rows if r]
            if len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows):
                tables.append(pd.DataFrame(rows[1:], columns=rows[0]))
    return tables


@settings(max_examples=2, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(export=school_export())
def test_run_end_to_end_leaks_nothing(export: dict, tmp_path_factory) -> None:
    """`evalkit run` on a generated school export: no identifier in reports/, processed
    data or the output; no count below the threshold in a board table; no column of counts
    with a single withheld cell (it would be the total minus the others)."""
    root = tmp_path_factory.mktemp("prop-run")
    params = _project(root, export)
    # as a user runs it: the command, in its own process
    done = subprocess.run([str(Path(sys.executable).with_name("evalkit")), "run", str(params)],
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    everything = (output + _all_text(root / "reports")
                  + _all_text(root / "data" / "processed"))
    assert not _leaks(export["identifiers"], everything)
    assert not re.search(r"P[0-9a-f]{16}", _all_text(root / "reports")), "a pseudonym leaked"
    checked = 0
    for table in _board_tables(root / "reports" / "prop"):
        for column in _count_columns(table):
            checked += 1
            values = pd.to_numeric(table[column].str.replace(",", ""), errors="coerce")
            assert not values.between(1, THRESHOLD - 1).any(), (column, table)
            withheld = (table[column] == "[c]").sum()
            assert withheld != 1, ("one withheld cell in a column of counts", column, table)
    assert checked >= 5  # the subgroup, band and summary tables were found and read


@pytest.mark.parametrize("hostile", ["Zq <b>x</b>", "=HYPERLINK(\"http://x\")"])
def test_free_text_in_a_coded_column_is_refused_without_echo(hostile: str, tmp_path) -> None:
    export = {
        "pupils": pd.DataFrame({"UPN": ["A123456789012", "B123456789012"],
                                "School": ["SCH01", "SCH01"], "SEN": [hostile, "none"],
                                "FSM": ["Y", "N"], "Gender": ["F", "M"],
                                "Forename": ["Quillfeather", "Thistlewood"]}),
        "scores": pd.DataFrame({"UPN": ["A123456789012"], "Measure": ["sdq_teacher_total"],
                                "Timepoint": ["baseline"], "Score": [20]}),
    }
    params = _project(tmp_path, export)
    code, output = _run_cli("validate", str(params))
    assert code == 1 and "sen_status" in output
    assert hostile not in output and "Quillfeather" not in output
