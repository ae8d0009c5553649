"""Shared fixtures: a small project folder built in a temporary directory, and a private
pseudonym-key folder so tests never create keys in the user's own config folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

PUPILS_CSV = """\
Pupil No,Forename,Surname,School,Year Grp,Gender,SEN,FSM Eligible,Date Joined
A001,Amy,Example,S1,3,F,none,Y,01/09/2021
A002,Ben,Sample,S1,4,M,SEN support,N,2021-09-01
A003,Cara,Madeup,S2,5,F,EHC plan,yes,15/01/2022
A004,Dev,Fictional,S2,5,M,none,no,x
"""

PARAMS_YAML = """\
project:
  id: {id}
  title: Mini project {id}
  organisation: Test LA
  period: {{start: 2021-09-01, end: 2022-07-31}}
theory_of_change: toc_templates/mini.yaml
data:
  pupils:
    path: data/raw/mini/pupils.csv
    columns:
      Pupil No: pupil_id
      Forename: first_name
      Surname: surname
      School: school_id
      Year Grp: year_group
      Gender: sex
      SEN: sen_status
      FSM Eligible: fsm
analyses:
  overview: {{}}
"""


def tiny_notebook(body: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell('params_file = ""\nresults_file = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny report\n\n## Section one\n\n## Section two"),
        params,
        nbformat.v4.new_code_cell(body),
    ]
    return nb


OK_BODY = (
    "from evaluation.project import open_project\n"
    "project = open_project(params_file, results_file)\n"
    "print('Title:', project.title)"
)


def make_project(root: Path, project_id: str = "mini", body: str = OK_BODY) -> Path:
    """A project folder with params, a theory of change, one data file and one notebook."""
    (root / "params").mkdir(parents=True, exist_ok=True)
    (root / "data" / "raw" / "mini").mkdir(parents=True, exist_ok=True)
    (root / "toc_templates").mkdir(exist_ok=True)
    (root / "notebooks").mkdir(exist_ok=True)
    (root / "data" / "raw" / "mini" / "pupils.csv").write_text(PUPILS_CSV)
    shutil.copy(REPO / "toc_templates" / "demo.yaml", root / "toc_templates" / "mini.yaml")
    nbformat.write(tiny_notebook(body), str(root / "notebooks" / "00_overview.ipynb"))
    params = root / "params" / f"{project_id}.yaml"
    params.write_text(PARAMS_YAML.format(id=project_id))
    return params


@pytest.fixture(scope="session", autouse=True)
def _private_key_folder(tmp_path_factory: pytest.TempPathFactory):
    """Pseudonym keys of the whole test session live in a temporary folder (a test may
    still change it with monkeypatch); notebook kernels inherit it from the environment."""
    from evaluation.pseudonyms import CONFIG_ENV, KEY_ENV, forget_keys

    saved = {k: os.environ.get(k) for k in (CONFIG_ENV, KEY_ENV)}
    os.environ[CONFIG_ENV] = str(tmp_path_factory.mktemp("evalkit-config"))
    os.environ.pop(KEY_ENV, None)
    forget_keys()
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    forget_keys()


@pytest.fixture
def mini_project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's published report, built once per test session by the runner (so each
    notebook executes once in the suite), or the one named by EVALKIT_TEST_REPORT."""
    from evaluation.runner import run_project

    given = os.environ.get("EVALKIT_TEST_REPORT")
    if given:
        return Path(given)
    reports = tmp_path_factory.mktemp("reports")
    outcome = run_project(REPO / "params" / "demo.yaml", reports_root=reports,
                          progress=lambda m: None)
    assert outcome.ok, outcome.message
    return reports / "demo"
