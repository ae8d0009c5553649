"""The runner: reports with no code, what each audience gets, failures kept apart, exit codes.

Killed runs, locks and unwritable folders: tests/test_faults.py.
"""

from __future__ import annotations

import json
import os
import re
import stat

import nbformat
import pytest

from evaluation.cli import main
from evaluation.runner import export_html, kernel_options
from tests.conftest import OK_BODY, make_project, tiny_notebook


def test_run_publishes_reports_without_code(tmp_path, capfd):
    params = make_project(tmp_path)
    assert main(["run", str(params)]) == 0
    report = tmp_path / "reports" / "mini"
    index = (report / "index.html").read_text()
    page = (report / "00_overview.html").read_text()
    assert "Mini project mini" in index and "00_overview.html" in index
    # provenance: kit version, SHA-256 of every input, the parameters
    provenance = json.loads((report / "provenance.json").read_text())
    assert set(provenance["inputs"]) == {"parameters", "theory_of_change", "data.pupils"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v["sha256"]) for v in provenance["inputs"].values())
    assert provenance["inputs"]["data.pupils"]["sha256"] in index
    # the report shows the output but never the code, nor a pupil's name or number
    assert "Title: Mini project mini" in page
    assert "open_project" not in page and "params_file" not in page
    assert "Amy" not in page and "A001" not in page
    # a table of contents was built from the headings
    assert "evalkit-contents" in page and "Section two" in page
    # the pages call no other server when opened (no MathJax, RequireJS, Mermaid from a CDN)
    for published in (page, index):
        assert not re.search(r"""<script[^>]+src=["']?https?:""", published)
        assert "mathjax" not in published.lower()
    # the processed tables were written
    assert (tmp_path / "data" / "processed" / "mini" / "pupils.csv").is_file()
    printed = capfd.readouterr()  # the kernel's own messages included (file descriptor 2)
    assert "[mini] 1/1 00_overview.ipynb" in printed.out
    if kernel_options():  # an encrypted kernel connection, so no warning about it
        assert "without encryption" not in printed.err


def test_kernel_connection_is_encrypted_where_supported(monkeypatch):
    import zmq
    from jupyter_client.manager import KernelManager

    if zmq.has("curve") and "transport_encryption" in KernelManager.class_traits():
        config = kernel_options()["config"]
        assert config.KernelManager.transport_encryption == "auto"
    monkeypatch.setattr(zmq, "has", lambda capability: False)  # libzmq without libsodium
    assert kernel_options() == {}


def test_failed_notebook_keeps_previous_report_and_other_projects_run(tmp_path, capsys):
    good = make_project(tmp_path / "a", project_id="alpha")
    flaky = make_project(tmp_path / "b", project_id="beta")
    assert main(["run", str(good), str(flaky)]) == 0
    previous = (tmp_path / "b" / "reports" / "beta" / "index.html").read_text()

    broken = tiny_notebook("raise RuntimeError('deliberately broken')")
    nbformat.write(broken, str(tmp_path / "b" / "notebooks" / "00_overview.ipynb"))
    (tmp_path / "a" / "reports" / "alpha" / "index.html").unlink()
    capsys.readouterr()

    assert main(["run", str(flaky), str(good), "--workers", "2"]) == 1
    out = capsys.readouterr()
    # one line naming the notebook and the cell
    line = next(x for x in out.out.splitlines() if x.startswith("FAILED beta"))
    assert "00_overview.ipynb failed at cell" in line
    assert "RuntimeError: deliberately broken" in line
    # the previous good report is untouched; the failed build is kept beside it
    assert (tmp_path / "b" / "reports" / "beta" / "index.html").read_text() == previous
    assert (tmp_path / "b" / "reports" / "beta.failed" / "00_overview.ipynb").is_file()
    # the other project still completed
    assert (tmp_path / "a" / "reports" / "alpha" / "index.html").is_file()
    assert "1 of 2 projects failed" in out.err


def test_bad_data_fails_before_any_notebook_runs(tmp_path, capsys):
    params = make_project(tmp_path)
    (tmp_path / "data/raw/mini/pupils.csv").write_text(
        "Pupil No,Forename,Surname,School,Year Grp,Gender,SEN,FSM Eligible\n"
        "A1,A,B,S1,3,F,none,maybe\n")
    assert main(["run", str(params)]) == 1
    out = capsys.readouterr().out
    assert "column 'fsm': row 2 are not yes/no values" in out
    assert "Traceback" not in out
    assert not (tmp_path / "reports" / "mini").exists()


def _misspelt_mapping(root, params):
    params.write_text(params.read_text().replace("Year Grp: year_group", "Year Group: year_group"))
    return "names 'Year Group', which is not a column of the file. Did you mean 'Year Grp'?"


def _missing_file(root, params):
    (root / "data/raw/mini/pupils.csv").unlink()
    return "data.pupils.path: file 'data/raw/mini/pupils.csv' not found"


def _impossible_date(root, params):
    text = params.read_text().replace(
        "analyses:", "  referrals:\n    path: data/raw/mini/referrals.csv\nanalyses:")
    params.write_text(text)
    (root / "data/raw/mini/referrals.csv").write_text(
        "referral_id,pupil_id,referral_date\nR1,A001,2021-13-45\n")
    return "column 'referral_date': row 2 hold dates that are not dd/mm/yyyy or yyyy-mm-dd"


@pytest.mark.parametrize("breakage", [_misspelt_mapping, _missing_file, _impossible_date])
def test_validate_reports_each_problem_on_one_line(tmp_path, capsys, breakage):
    params = make_project(tmp_path)
    assert main(["validate", str(params)]) == 0
    expected = breakage(tmp_path, params)
    capsys.readouterr()
    assert main(["validate", str(params)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # the problem on one line (a parameters problem under "invalid FILE" and "in FILE")
    assert len(err) <= 3 and sum(expected in line for line in err) == 1, err
    assert "Traceback" not in "\n".join(err)


def test_new_scaffolds_a_project_that_validates_its_params(tmp_path, capsys):
    from tests.conftest import REPO

    (tmp_path / "toc_templates").mkdir()
    (tmp_path / "toc_templates" / "blank.yaml").write_text(
        (REPO / "toc_templates" / "blank.yaml").read_text())
    assert main(["new", "trust_reading", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "params" / "trust_reading.yaml").is_file()
    assert (tmp_path / "toc_templates" / "trust_reading.yaml").is_file()
    from evaluation.params import load_params

    params = load_params(tmp_path / "params" / "trust_reading.yaml")
    assert params.project.id == "trust_reading"
    # the scaffold validates as it stands (notebooks as in the kit)
    (tmp_path / "notebooks").mkdir()
    for name in ("00_overview.ipynb", "90_summary.ipynb"):
        (tmp_path / "notebooks" / name).write_text((REPO / "notebooks" / name).read_text())
    assert main(["validate", str(tmp_path / "params" / "trust_reading.yaml")]) == 0
    assert main(["new", "trust_reading", "--root", str(tmp_path)]) == 2


#: A notebook body that also shows the analyst a table and a figure (``for_analysts``).
ANALYST_BODY = ("\nimport matplotlib.pyplot as plt\nimport pandas as pd\n"
                "from evaluation.sections import for_analysts\n"
                "fig, ax = plt.subplots()\nax.set_title('analyst figure')\n"
                "for_analysts(pd.DataFrame({'analyst_only_column': [3]}), ax)\n")


def test_internal_reports_keep_warnings_and_notebooks_board_reports_neither(tmp_path):
    body = (OK_BODY + "\nimport sys\nprint('a technical warning', file=sys.stderr)"
            + ANALYST_BODY)
    params = make_project(tmp_path, body=body)
    assert main(["run", str(params)]) == 0
    report = tmp_path / "reports" / "mini"
    page = (report / "00_overview.html").read_text()
    assert "a technical warning" not in page
    # a board receives the pages, the index, provenance and results: no executed notebook
    assert {p.suffix for p in report.iterdir()} <= {".html", ".json"}
    assert not list(report.glob("*.ipynb"))
    assert "Internal report" not in (report / "index.html").read_text()

    params.write_text(params.read_text() + "report: {audience: internal}\n")
    assert main(["run", str(params)]) == 0
    page = (report / "00_overview.html").read_text()
    assert "a technical warning" in page
    assert (report / "00_overview.ipynb").is_file()
    # what for_analysts showed (before disclosure control) stays in the executed notebook
    # and is left out of the page, even for an internal audience
    assert "analyst_only_column" not in page and "<img" not in page
    executed = nbformat.read(report / "00_overview.ipynb", as_version=4)
    analyst = [o for c in executed.cells for o in c.get("outputs", [])
               if "evalkit-analyst" in o.get("metadata", {}).get("tags", [])]
    assert len(analyst) == 2  # the table and the figure, once each
    assert "analyst_only_column" in analyst[0]["data"]["text/plain"]
    assert "image/png" in analyst[1]["data"]
    index = (report / "index.html").read_text()
    top = index[index.index("<body>"):index.index("<h2>")]
    assert "Internal report, not for circulation" in top
    assert "small counts and per-pupil figures" in top


def test_report_files_follow_the_umask(tmp_path):
    params = make_project(tmp_path)
    previous = os.umask(0o027)
    try:
        assert main(["run", str(params)]) == 0
    finally:
        os.umask(previous)
    report = (tmp_path / "reports" / "mini").resolve()
    assert stat.S_IMODE(report.stat().st_mode) == 0o750  # not mkdtemp's 0700
    assert stat.S_IMODE((report / "index.html").stat().st_mode) == 0o640
    assert stat.S_IMODE((report / "00_overview.html").stat().st_mode) == 0o640


def test_provenance_and_index_hold_no_secret_and_escape_user_text(tmp_path):
    from evaluation import pseudonyms

    params = make_project(tmp_path)
    text = params.read_text()
    text = text.replace("title: Mini project mini", "title: \"<script>alert(1)</script>\"")
    text = text.replace("organisation: Test LA",
                        "organisation: \"<img src=x onerror=alert(2)>\"")
    params.write_text(text)
    assert main(["run", str(params)]) == 0
    report = tmp_path / "reports" / "mini"
    provenance = json.loads((report / "provenance.json").read_text())
    assert provenance["pseudonym_key_fingerprint"] == pseudonyms.key_fingerprint("mini")
    assert "pseudonym_salt" not in provenance["parameters"]["project"]
    key = pseudonyms.key_file("mini").read_text().strip()
    index = (report / "index.html").read_text()
    for published in (index, (report / "provenance.json").read_text()):
        assert key not in published
        assert pseudonyms._project_key("mini").hex() not in published
    assert "<script>alert" not in index and "<img src=x" not in index
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index


def _executed(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nb


def _html_output(html_text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": html_text,
                                                                  "text/plain": "<HTML>"})]
    return cell


def _contents(page: str) -> str:
    return page.split('class="evalkit-contents"', 1)[1].split("</nav>")[0]


def test_contents_show_headings_as_written(tmp_path):
    """Markdown headings and headings displayed by outputs, as the reader sees them."""
    nb = _executed([
        nbformat.v4.new_markdown_cell("# Report\n\nIntro text.\n\n## Pupils & carers"),
        _html_output("<h2 id='b' class='x'>&lt;script&gt;x&lt;/script&gt;</h2>"
                     "<h3 id='c'>Detail</h3><h2>No id, not listed</h2>"),
    ])
    nbformat.write(nb, tmp_path / "r.ipynb")
    export_html(tmp_path / "r.ipynb", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    nav = _contents(page)
    assert '<a href="#Pupils-&amp;-carers">Pupils &amp; carers</a>' in nav
    assert ">&lt;script&gt;x&lt;/script&gt;</a>" in nav and "&amp;lt;" not in nav
    assert '<li style="margin-left:1.5em"><a href="#c">Detail</a></li>' in nav
    assert "No id" not in nav and "Contents" not in nav.split("<ul>")[1]
    # right below the title, before the rest of the title's cell; the style sheet in the head
    assert page.index("</h1>") < page.index('"evalkit-contents"') < page.index("Intro text.")
    head = page.split("</head>")[0]
    assert ".evalkit-contents ul" in head and "@page landscape" in head


def test_a_page_with_one_heading_has_no_contents(tmp_path):
    nb = _executed([nbformat.v4.new_markdown_cell("# Report\n\n## Only section")])
    nbformat.write(nb, tmp_path / "r.ipynb")
    export_html(tmp_path / "r.ipynb", tmp_path / "r.html")
    assert '"evalkit-contents"' not in (tmp_path / "r.html").read_text()


def test_notebooks_executed_at_once_record_every_result(tmp_path, monkeypatch):
    """Two analysis notebooks record at the same time, the summary runs after them and
    reads both records; results.json holds them in notebook order."""
    from evaluation.params import ProjectParams

    params = make_project(tmp_path)
    # three notebooks without configuring (and validating) the analyses behind them
    monkeypatch.setattr(ProjectParams, "enabled", property(
        lambda self: ["overview", "its", "summary"]))
    record = ("from evaluation.project import open_project\n"
              "from evaluation.results import Result\n"
              "import time\n"
              "project = open_project(params_file, results_file)\n"
              "time.sleep(1)\n"
              "project.record(Result(outcome_id={oid!r}, analysis={an!r}, measure='m', "
              "estimate=1.0, ci_low=0.5, ci_high=1.5, unit='', null=0.0, n=10, period='', "
              "direction='higher_is_better', verdict='improved', headline='h', "
              "sentence='s'))\n")
    notebooks = tmp_path / "notebooks"
    nbformat.write(tiny_notebook(record.format(oid="sdq_difficulties", an="baseline_followup")),
                   str(notebooks / "00_overview.ipynb"))
    nbformat.write(tiny_notebook(record.format(oid="suspensions", an="its")),
                   str(notebooks / "20_exclusions_its.ipynb"))
    nbformat.write(tiny_notebook(
        "from evaluation.project import open_project\n"
        "project = open_project(params_file, results_file)\n"
        "print('Recorded:', sorted(project.results()['outcome_id']))"),
        str(notebooks / "90_summary.ipynb"))
    assert main(["run", str(params)]) == 0
    report = tmp_path / "reports" / "mini"
    records = json.loads((report / "results.json").read_text())["records"]
    assert [r["outcome_id"] for r in records] == ["sdq_difficulties", "suspensions"]
    assert "Recorded: ['sdq_difficulties', 'suspensions']" in \
        (report / "90_summary.html").read_text()
    index = (report / "index.html").read_text()
    assert re.findall(r"href='([^']+\.html)'", index) == [
        "90_summary.html", "00_overview.html", "20_exclusions_its.html"]


def test_a_notebook_run_on_its_own_never_writes_over_a_published_report(tmp_path,
                                                                         monkeypatch):
    from evaluation.params import load_params
    from evaluation.project import default_results_file

    monkeypatch.delenv("EVALKIT_RESULTS_FILE", raising=False)
    params = load_params(make_project(tmp_path))
    scratch = default_results_file(params)
    assert scratch == tmp_path / "reports" / ".scratch" / "mini" / "results.json"
    assert tmp_path / "reports" / "mini" not in scratch.parents


# ------------------------------------------------ notebook parameters and analyst outputs


def _execute(notebook, tmp_path, **parameters):
    """Execute ``notebook`` with papermill's Python API, as ``papermill -p`` does, on this
    interpreter's kernel."""
    import papermill as pm

    from evaluation.runner import kernel_execution_options, write_kernel_spec

    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}.ipynb"
    pm.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name="python3",
                        progress_bar=False, cwd=str(notebook.parent),
                        **kernel_execution_options(write_kernel_spec(tmp_path / "kernels")))
    return nbformat.read(out, as_version=4)


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.get("output_type") == "stream")


def test_papermill_parameters_set_analysis_options_and_unknown_ones_are_refused(tmp_path):
    """``papermill -p comparison False`` reaches the analysis options (None: as in the
    params file); a name the notebook does not declare stops it with a clear message,
    where papermill itself would only warn and run on."""
    import papermill as pm

    params = make_project(tmp_path)
    notebook = tmp_path / "notebooks" / "10_options.ipynb"
    nb = tiny_notebook(
        "from evaluation.project import open_project\n"
        "project = open_project(params_file, results_file, 'baseline_followup',\n"
        "                       comparison=comparison, confidence=confidence)\n"
        "print('options:', project.options.comparison, project.options.confidence)")
    nb.cells[1].source += "\ncomparison = None\nconfidence = None"
    nbformat.write(nb, str(notebook))
    base = {"params_file": str(params), "results_file": str(tmp_path / "r.json")}
    # (None keeps the params file's value: test_a_bad_option_parameter_gets_...)
    changed = _execute(notebook, tmp_path, **base, comparison=False, confidence=0.9)
    assert "options: False 0.9" in _printed(changed)
    with pytest.raises(pm.PapermillExecutionError) as raised:
        _execute(notebook, tmp_path, **base, comparisn=False)
    assert raised.value.ename == "ParamsError"
    assert ("unknown parameter 'comparisn' (did you mean 'comparison'?): this notebook has "
            "the parameters comparison, confidence, params_file, results_file"
            in raised.value.evalue)


def test_a_bad_option_parameter_gets_the_message_of_the_params_file(tmp_path):
    from evaluation.errors import ParamsError
    from evaluation.params import ProblemsError, load_params
    from evaluation.project import apply_options

    params = make_project(tmp_path)
    text = params.read_text()
    params.write_text(text + "  baseline_followup: {subgroups: [fssm], confidence: 95}\n")
    with pytest.raises(ProblemsError) as from_file:
        load_params(params)
    messages = {p.key: p.message for p in from_file.value.problems}
    params.write_text(text)
    loaded = load_params(params)
    with pytest.raises(ParamsError) as from_notebook:
        apply_options(loaded, "baseline_followup", {"subgroups": ["fssm"], "confidence": 95})
    for key in ("subgroups", "confidence"):
        message = messages[f"analyses.baseline_followup.{key}"]
        assert (f"notebook parameter {key} (analyses.baseline_followup.{key}): {message}"
                in str(from_notebook.value))
    assert "did you mean 'fsm'" in messages["analyses.baseline_followup.subgroups"]
    # None keeps the params file's value; nothing else changes
    apply_options(loaded, "baseline_followup", {"subgroups": None, "comparison": False})
    assert loaded.analyses.baseline_followup.comparison is False
    assert loaded.analyses.baseline_followup.subgroups == ["sen_status", "fsm", "eal", "sex"]


def test_run_and_validate_refuse_a_notebook_without_the_parameters_they_pass(tmp_path,
                                                                           capsys):
    """The runner passes params_file and results_file; a notebook that does not declare
    one (papermill would warn and run it, recording nowhere the summary reads) is refused
    before anything runs, by validate as by run."""
    params = make_project(tmp_path)
    nb = tiny_notebook(OK_BODY)
    nb.cells[1].source = 'params_file = ""'
    nbformat.write(nb, str(tmp_path / "notebooks" / "00_overview.ipynb"))
    assert main(["validate", str(params)]) == 1
    err = capsys.readouterr().err
    assert "unknown parameter 'results_file'" in err and "00_overview.ipynb" in err
    assert main(["run", str(params)]) == 1
    assert "unknown parameter 'results_file'" in capsys.readouterr().out
    assert not (tmp_path / "reports" / "mini").exists()
