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
    with pytest.raises(ParamsError, match=r"mini.yaml: report.min_cuont: unknown key"):
        load_params(mini_project)


def test_wrong_type_is_named(mini_project):
    _edit(mini_project, lambda d: d.update({"report": {"min_count": "five"}}))
    with pytest.raises(ParamsError, match=r"report.min_count: .*integer.*'five'"):
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
    with pytest.raises(ParamsError, match=r"analyses.regression: unknown key"):
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


def test_pseudonym_salt_is_refused_with_what_to_do(mini_project):
    _edit(mini_project, lambda d: d["project"].update({"pseudonym_salt": "mini-salt"}))
    with pytest.raises(ParamsError) as info:
        load_params(mini_project)
    message = str(info.value)
    assert "`pseudonym_salt` is no longer used: delete it" in message
    assert "secret key kept outside the repository" in message and "Data protection" in message
    assert "mini-salt" not in message and "\n" not in message


def test_audience_researcher_is_refused_internal_accepted(mini_project):
    _edit(mini_project, lambda d: d.update({"report": {"audience": "researcher"}}))
    with pytest.raises(ParamsError, match=r"report.audience: 'researcher' is no longer "
                       r"an audience: use internal"):
        load_params(mini_project)
    _edit(mini_project, lambda d: d.update({"report": {"audience": "internal"}}))
    assert load_params(mini_project).report.audience == "internal"


def _tracking(group):
    def change(doc):
        for kind in ("referrals", "interventions", "reviews"):
            doc["data"][kind] = {"path": "data/raw/mini/pupils.csv"}
        doc["analyses"]["referral_tracking"] = {
            "attendance": None, "suspensions": None, "disproportionality_group": group}
    return change


def test_hostile_disproportionality_group_is_refused_and_never_run(mini_project, tmp_path):
    target = tmp_path / "pwned"
    hostile = f"ethnicity == 'x' @pd.io.common.os.system('touch {target}')"
    _edit(mini_project, _tracking(hostile))
    with pytest.raises(ParamsError) as info:
        load_params(mini_project)
    message = str(info.value)
    assert ("analyses.referral_tracking.disproportionality_group: not a filter the kit "
            "accepts (unexpected character '@'") in message
    assert "\n" not in message
    assert not target.exists()


@pytest.mark.parametrize(("group", "fragment"), [
    ("sex == ", "expected a value"),
    ("__import__('os').system('id')", "unexpected character '.'"),
    ("sex == 'M' or", "expected a column name"),
    ("surname == 'Bloggs'", "names 'surname', which is not a column of the pupils table"),
])
def test_malformed_disproportionality_group_names_the_key(mini_project, group, fragment):
    _edit(mini_project, _tracking(group))
    with pytest.raises(ParamsError, match=r"analyses.referral_tracking."
                       r"disproportionality_group'?: .*" + fragment):
        load_params(mini_project)


def test_valid_disproportionality_group_loads(mini_project):
    group = "ethnicity_minor == 'Black Caribbean' and sex in ['M']"
    _edit(mini_project, _tracking(group))
    assert load_params(mini_project).analyses.referral_tracking.disproportionality_group == group


@pytest.mark.parametrize(("categories", "fragment"), [
    ({"notes": ["a"]}, r"data.pupils.categories: 'notes' is not a column of the pupils table"),
    ({"sex": ["F", "M", "X"]}, r"data.pupils.categories: 'sex' already has a fixed list"),
    ({"pupil_id": ["a"]}, r"'pupil_id' is not a text column that holds categories"),
    ({"ethnicity_minor": []}, r"'ethnicity_minor': give a list of non-empty values"),
    ({"ethnicity_minor": ["Irish", "irish "]}, r"'Irish' is listed twice"),
])
def test_categories_must_name_a_free_text_column(mini_project, categories, fragment):
    _edit(mini_project, lambda d: d["data"]["pupils"].update({"categories": categories}))
    with pytest.raises(ParamsError, match=fragment):
        load_params(mini_project)


def test_categories_of_a_free_text_column_load(mini_project):
    _edit(mini_project, lambda d: d["data"]["pupils"].update(
        {"categories": {"ethnicity_minor": ["Irish", " Scottish "]}}))
    assert load_params(mini_project).data["pupils"].categories == {
        "ethnicity_minor": ["Irish", "Scottish"]}
