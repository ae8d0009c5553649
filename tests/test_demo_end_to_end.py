"""The README's first command, as a test: the whole demo project, end to end.

Runs every enabled notebook of params/demo.yaml into a temporary reports folder (the only
place the test suite executes the kit's notebooks: each once, every cell without error, or
the run fails naming the notebook and cell), then checks what a board would receive: an
index leading with the summary, one HTML page per notebook with no code and no error, no
pupil name or number anywhere, a provenance footer, verdicts in results.json that match
the demo's documented true effects, and each outcome's one estimate printed alike on every
page that gives it.
"""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest

from evaluation.params import NOTEBOOKS, load_params
from evaluation.toc import load_toc
from tests.conftest import REPO

DATA_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")
# What a reader sees: the page without its style sheets, scripts and embedded images.
NOT_SHOWN = re.compile(r"<style[^>]*>.*?</style>|<script[^>]*>.*?</script>", re.S)


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


def test_notebook_parameters_are_the_options_of_their_analysis():
    """Besides params_file and results_file, a notebook's parameters (as papermill reads
    them) are options of its analysis, each None by default: "as in the params file"."""
    import papermill as pm

    from evaluation.project import BASE_PARAMETERS, _options_class

    analysis_of = {notebook: analysis for analysis, notebook in NOTEBOOKS.items()}
    declared_options = {}
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        declared = pm.inspect_notebook(str(notebook))
        assert set(BASE_PARAMETERS) <= set(declared), notebook.name
        options = {n: p for n, p in declared.items() if n not in BASE_PARAMETERS}
        fields = _options_class(analysis_of[notebook.name]).model_fields
        assert set(options) <= set(fields), notebook.name
        assert all(p["default"] == "None" for p in options.values()), notebook.name
        declared_options[notebook.name] = set(options)
    assert {"comparison", "confidence"} <= declared_options["10_baseline_followup.ipynb"]
    assert {"impact", "confidence"} <= declared_options["20_exclusions_its.ipynb"]


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
        # nothing the notebook shows only to the analyst (for_analysts): e.g. the columns
        # of the results' own .summary, before disclosure control
        assert "evalkit-analyst" not in page, name
        for column in ("mean_change_ci_low", "n_baseline_only", "headline_term"):
            assert column not in page, (name, column)
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
    # one group before and after, no norms for attendance: a clear rise whose cause the
    # design cannot tell (pupils are referred when attendance is low; it recovers anyway)
    assert verdicts["referral_attendance"] == "better, cause unclear"
    assert verdicts["belonging"] == "improved"  # true shift +0.18 on the 1-4 scale
    assert verdicts["needs_met"] == "no before/after comparison"  # judged by its target


# ------------------------------------------------ one estimate per outcome on every page

FIGURE = r"[+\-\u2212]?\d[\d,]*(?:\.\d+)?%?"
# A headline's estimate and the "(low to high)" interval after it, e.g. "+2.4 points
# (+1.3 to +3.5)", "ratio 0.78 (0.71 to 0.87)", "65% (59% to 70%)".
FIGURES = re.compile(rf"({FIGURE})(?: [a-z][a-z ]*)? \(({FIGURE}) to ({FIGURE})\)")


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: no tags, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _same(figure: str) -> str:
    """A figure up to its sign's typography (a true minus or a hyphen, a plus or none):
    the digits, the decimals and the percent sign must agree."""
    return figure.replace("\u2212", "-").lstrip("+")


def _value(figure: str) -> tuple[float, float]:
    """A printed figure's value on the results.json scale and the rounding it allows."""
    digits = _same(figure).replace(",", "").rstrip("%")
    scale = 100.0 if figure.endswith("%") else 1.0
    return float(digits) / scale, 0.5 * 10.0 ** -len(digits.partition(".")[2]) / scale + 1e-9


def _headline_figures(record: dict) -> tuple[str, str, str]:
    """The estimate, low and high exactly as the headline prints them, checked against the
    recorded numbers: the headline must print THE estimate, not another of the analysis."""
    found = FIGURES.findall(record["headline"])
    assert found, f"{record['outcome_id']}: no 'estimate (low to high)' in its headline"
    figures = found[-1]
    for figure, key in zip(figures, ("estimate", "ci_low", "ci_high"), strict=True):
        value, rounding = _value(figure)
        assert abs(value - record[key]) <= rounding, (
            f"{record['outcome_id']}: the headline prints {figure} for {key} {record[key]}")
    return figures


@pytest.fixture(scope="module")
def records(demo_report):
    return json.loads((demo_report / "results.json").read_text())["records"]


@pytest.fixture(scope="module")
def statements():
    params = load_params(REPO / "params" / "demo.yaml")
    return {o.id: o.statement for o in load_toc(params.resolve(params.theory_of_change)).outcomes}


def test_each_outcome_shows_one_estimate_on_the_index_summary_and_diagram(records, pages,
                                                                          statements):
    """The index's headline table, the summary's outcome table, its impact paragraph and
    the diagram's alt text print each outcome's recorded estimate and interval in the
    headline's format: the same rounding and the same scale (65% is not 0.65)."""
    assert {r["outcome_id"] for r in records} == {
        "sdq_difficulties", "attendance_targeted", "suspensions", "referral_attendance",
        "needs_met", "belonging"}
    # outcome, verdict, target verdict, result (estimate and interval)
    index_rows = {_text(cells[0]): (_text(cells[1]), _text(cells[3])) for cells in
                  re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>",
                             pages["index.html"])}
    summary = pages["90_summary.html"]
    caption = summary.index("<caption>Outcomes: verdict and estimate</caption>")
    table = summary[caption:summary.index("</table>", caption)]
    summary_rows = {cells[0]: cells for cells in (
        [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)) if cells}
    [alt] = [html.unescape(a) for a in re.findall(r"<img alt=\"([^\"]*)\"", summary)
             if a.startswith("Theory of change diagram")]
    summary_text = _text(summary)
    problems = []
    for r in records:
        statement, headline, verdict = statements[r["outcome_id"]], r["headline"], r["verdict"]
        estimate, low, high = _headline_figures(r)
        shown_verdict, result = index_rows.get(statement, ("", ""))
        printed = [tuple(map(_same, f)) for f in FIGURES.findall(result)]
        if shown_verdict != verdict or (_same(estimate), _same(low), _same(high)) not in printed:
            problems.append(f"index: {statement!r} shows {index_rows.get(statement)}")
        row = summary_rows[statement]
        shown = (row[1], _same(row[2]), " to ".join(map(_same, row[3].split(" to "))))
        wanted = (verdict, _same(estimate), f"{_same(low)} to {_same(high)}")
        if shown != wanted:
            problems.append(f"summary table: {r['outcome_id']} shows {shown}, headline {wanted}")
        if f"{statement} ({headline}; verdict: {verdict}" not in alt:
            problems.append(f"diagram alt text: {r['outcome_id']} lacks its headline")
        if f"{statement}: {headline} ({verdict})" not in summary_text:
            problems.append(f"summary impact so far: {r['outcome_id']} lacks its headline")
    assert not problems, "\n".join(problems)


def test_each_analysis_page_prints_its_outcomes_headline_figures(records, pages):
    """The analysis page that recorded an outcome prints its board sentence and the
    headline's estimate and interval as the headline prints them."""
    problems = []
    for r in records:
        page = _text(pages[r["notebook"].replace(".ipynb", ".html")])
        estimate, low, high = _headline_figures(r)
        if r["sentence"] not in page:
            problems.append(f"{r['notebook']}: {r['outcome_id']}'s sentence is missing")
        for figure in (estimate, f"{low} to {high}"):
            if figure not in page:
                problems.append(f"{r['notebook']}: {r['outcome_id']} never prints {figure}")
    assert not problems, "\n".join(problems)
