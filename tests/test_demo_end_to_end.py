"""The README's first command, as a test: the whole demo project, end to end.

Runs every enabled notebook of params/demo.yaml into a temporary reports folder (the only
place the test suite executes the kit's notebooks: each once, every cell without error, or
the run fails naming the notebook and cell), then checks what a board would receive: an
index leading with the summary, one HTML page per notebook with no code and no error, no
pupil name or number anywhere, a provenance footer, and verdicts in results.json that
match the demo's documented true effects.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from evaluation.params import NOTEBOOKS, load_params
from evaluation.runner import run_project
from tests.conftest import REPO

DATA_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")
# What a reader sees: the page without its style sheets, scripts and embedded images.
NOT_SHOWN = re.compile(r"<style[^>]*>.*?</style>|<script[^>]*>.*?</script>", re.S)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    outcome = run_project(REPO / "params" / "demo.yaml", reports_root=reports,
                          progress=lambda m: None)
    assert outcome.ok, outcome.message
    return reports / "demo"


@pytest.fixture(scope="module")
def pages(demo_report):
    return {p.name: NOT_SHOWN.sub("", DATA_URI.sub("", p.read_text()))
            for p in demo_report.glob("*.html")}


def test_every_notebook_runs_on_its_own_against_the_demo():
    """What a notebook opened in JupyterLab runs with: its default parameters name the demo
    project and no results file, so it records in the scratch file, not in a report
    (tests/test_runner.py checks where that is)."""
    import nbformat

    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        cell = next(c for c in nbformat.read(notebook, as_version=4).cells
                    if "parameters" in c.metadata.get("tags", []))
        defaults: dict = {}
        exec(cell.source, {}, defaults)  # the parameters cell holds plain assignments
        params = load_params(REPO / "notebooks" / defaults["params_file"])
        assert params.project.id == "demo", notebook.name
        assert not defaults["results_file"], notebook.name  # so default_results_file


def test_index_and_one_page_per_notebook(demo_report, pages):
    params = load_params(REPO / "params" / "demo.yaml")
    expected = {NOTEBOOKS[a].replace(".ipynb", ".html") for a in params.enabled}
    assert expected | {"index.html"} == set(pages)
    index = pages["index.html"]
    links = re.findall(r"href='([^']+\.html)'", index)
    assert links[0] == "90_summary.html", "the index must lead with the summary"
    assert "Synthetic data" in index
    # the index also gives each measured outcome's verdict and headline
    assert "Headline results" in index and "Fewer suspensions in programme schools" in index


def test_a_board_report_publishes_pages_not_notebooks(demo_report):
    """audience: board (the demo's): the executed notebooks hold unsuppressed tables."""
    published = {p.name for p in demo_report.iterdir()}
    assert not [n for n in published if n.endswith(".ipynb")], published
    assert {n for n in published if not n.endswith(".html")} == {"provenance.json",
                                                                 "results.json"}
    assert "Internal report" not in (demo_report / "index.html").read_text()


def test_pages_have_no_code_no_errors_and_a_provenance_footer(pages):
    for name, page in pages.items():
        if name == "index.html":
            continue
        assert "open_project" not in page and "import " not in page, name
        assert "Traceback" not in page, name
        assert "An Exception was encountered" not in page, name
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in page, name
        assert "hl-ipython3" not in page, name  # a highlighted code cell
        assert "Provenance" in page and "SHA-256" in page, name
        assert "evalkit-contents" in page, f"{name} has no table of contents"


def test_no_pupil_name_or_number_reaches_a_report(pages):
    raw = pd.read_excel(REPO / "data/raw/demo/pupils.xlsx", sheet_name="Pupils",
                        engine="calamine")
    full_names = set(raw["Forename"] + " " + raw["Surname"])
    upns = set(raw["UPN"])
    for name, page in pages.items():
        assert not re.search(r"Z\d{12}", page), f"{name} shows a UPN"
        assert not re.search(r"\b[PS][0-9a-f]{16}\b", page), f"{name} shows a pupil pseudonym"
        found = [n for n in full_names if n in page]
        assert not found, f"{name} shows pupil names {found[:3]}"
        assert not [u for u in upns if u in page]


def test_figures_have_alt_text(demo_report):
    for page in demo_report.glob("*.html"):
        for img in re.findall(r"<img [^>]*>", page.read_text()):
            alt = re.search(r"alt=['\"]([^'\"]*)['\"]", img)
            assert alt and len(alt.group(1)) > 20, f"{page.name}: an image without alt text"


def test_verdicts_match_the_true_effects(demo_report):
    records = json.loads((demo_report / "results.json").read_text())["records"]
    verdicts = {r["outcome_id"]: r["verdict"] for r in records}
    # True effects (data/raw/demo/README.md): SDQ -2.5 adjusted, attendance +3 adjusted,
    # suspensions rate ratio 0.75, referred pupils' attendance +4 points.
    assert verdicts["sdq_difficulties"] == "improved"
    assert verdicts["attendance_targeted"] == "improved"
    assert verdicts["suspensions"] == "improved"
    assert verdicts["referral_attendance"] == "improved"
    assert "belonging" not in verdicts  # no measure: not measured
    summary = (demo_report / "90_summary.html").read_text()
    assert "not yet measured" in summary.lower()
