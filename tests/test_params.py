"""Project parameters: valid files load; every mistake is one readable ParamsError."""

from __future__ import annotations

import pytest
import yaml

from evaluation.errors import ParamsError
from evaluation.params import load_params


def _edit(params_file, change):
    doc = yaml.safe_load(params_file.read_text())
    change(doc)
    params_file.write_text(yaml.safe_dump(doc))
    return params_file


def test_valid_params_load(mini_project):
    params = load_params(mini_project)
    assert params.project.id == "mini"
    assert params.data["pupils"].kind == "pupils"
    assert params.enabled == ["overview"]
    assert params.report.min_count == 5
    assert params.root == mini_project.parent.parent
    assert params.resolve("data/raw/mini/pupils.csv").is_file()


def test_unknown_key_is_named(mini_project):
    _edit(mini_project, lambda d: d["report"].update({"min_cuont": 3}) if "report" in d
          else d.update({"report": {"min_cuont": 3}}))
    with pytest.raises(ParamsError, match=r"mini.yaml: unknown key 'report.min_cuont'"):
        load_params(mini_project)


def test_wrong_type_is_named(mini_project):
    _edit(mini_project, lambda d: d.update({"report": {"min_count": "five"}}))
    with pytest.raises(ParamsError, match=r"key 'report.min_count'.*integer.*'five'"):
        load_params(mini_project)


def test_missing_data_file_is_named(mini_project):
    _edit(mini_project, lambda d: d["data"]["pupils"].update({"path": "data/raw/nope.csv"}))
    with pytest.raises(ParamsError, match=r"data.pupils.path: file 'data/raw/nope.csv' not found"):
        load_params(mini_project)


def test_missing_toc_is_named(mini_project):
    _edit(mini_project, lambda d: d.update({"theory_of_change": "toc_templates/none.yaml"}))
    with pytest.raises(ParamsError, match=r"theory_of_change: file .* not found"):
        load_params(mini_project)


def test_unknown_analysis_is_named(mini_project):
    _edit(mini_project, lambda d: d["analyses"].update({"regression": {}}))
    with pytest.raises(ParamsError, match=r"unknown key 'analyses.regression'"):
        load_params(mini_project)


def test_analysis_must_name_an_existing_source(mini_project):
    _edit(mini_project, lambda d: d["analyses"].update(
        {"its": {"data": "exclusions", "interruption": "2021-09-01"}}))
    with pytest.raises(ParamsError, match=r"analyses.its.data: names data source 'exclusions'"):
        load_params(mini_project)


def test_source_name_must_be_a_kind_or_say_one(mini_project):
    _edit(mini_project, lambda d: d["data"].update({"sdq": d["data"]["pupils"]}))
    with pytest.raises(ParamsError, match=r"source 'sdq' is not a table kind; add `kind:`"):
        load_params(mini_project)


def test_period_must_be_in_order(mini_project):
    _edit(mini_project, lambda d: d["project"].update(
        {"period": {"start": "2022-09-01", "end": "2021-07-31"}}))
    with pytest.raises(ParamsError, match=r"project.period.*before start"):
        load_params(mini_project)


def test_invalid_yaml_names_the_line(mini_project):
    mini_project.write_text("project:\n  id: [unclosed\n")
    with pytest.raises(ParamsError, match=r"not valid YAML at line"):
        load_params(mini_project)
