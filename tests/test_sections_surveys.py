"""The surveys-and-audits page: routing from the theory of change, the sections' words and
tables, the recorded results, and the demo's documented true effects recovered.

The true values come from the generating model (``evaluation.demo.survey_truth`` and
``audit_truth``, which compute them exactly); the share of schools moving up over all
areas, which ``audit_truth`` does not give, is worked out here independently by
enumerating the model's outcomes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from evaluation import demo, report
from evaluation.audits import ALL_AREAS, audit_change, chosen_vs_others
from evaluation.intake import read_source
from evaluation.params import (
    NOTEBOOKS,
    check_project,
    load_params,
    load_project_files,
)
from evaluation.privacy import WITHHELD
from evaluation.project import Project, open_project
from evaluation.runner import INJECTED, check_notebook_parameters
from evaluation.sections import surveys as words
from evaluation.surveys import (
    DIFFERENT_RESPONDENTS,
    compare_waves,
    reliability,
    scale_scores,
)
from evaluation.targets import Target, judge
from evaluation.toc import Outcome, load_toc, template_path
from tests.conftest import REPO, make_project

DEMO = REPO / "params" / "demo.yaml"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return open_project(DEMO, tmp_path_factory.mktemp("surveys") / "results.json")


def survey_page(project: Project, outcome: Outcome) -> words.Section:
    """What notebooks/40_surveys_audits.ipynb does for one survey outcome."""
    options = project.params.analyses.survey
    survey = options.definition
    responses = words.survey_responses(project, outcome, options)
    comparison = compare_waves(responses, survey, outcome.measure, before=options.before,
                               after=options.after, design=options.design,
                               eligible=options.eligible, direction=outcome.direction,
                               confidence=options.confidence, disclosure=project.disclosure,
                               min_responses=options.min_responses)
    consistency = (reliability(responses, survey, outcome.measure,
                               confidence=options.confidence)
                   if outcome.measure in survey.subscales else None)
    return words.survey_section(project, outcome, comparison, responses=responses,
                                options=options, reliability=consistency)


def audit_page(project: Project, outcome: Outcome) -> words.Section:
    """What the notebook does for one audit outcome."""
    options = words.audit_options(project)
    ratings = words.audit_ratings(project, outcome, options)
    change = audit_change(ratings, options.definition, area=words.audit_area(outcome),
                          direction=outcome.direction, confidence=options.confidence,
                          min_schools=options.min_schools)
    chosen = chosen_vs_others(ratings, options.definition, confidence=options.confidence)
    return words.audit_section(project, outcome, change, chosen=chosen)


def check_alt_text(section: words.Section) -> None:
    """Every figure is described, in words a page's alt attribute keeps whole."""
    for _, alt in section.figures():
        assert len(alt) > 20 and "'" not in alt and '"' not in alt, alt


def render(section: words.Section) -> str:
    """Every item of a section as the report would show it (HTML), so a failure to render
    fails here rather than in a run."""
    out = [section.heading, section.sentence]
    for item in section.items:
        if item.kind == "text":
            out.append(report.markdown(item.payload).data)
        elif item.kind == "table":
            out.append(report.table(item.payload, item.caption, percent=item.percent,
                                    withheld_note=item.note).data)
        elif item.kind == "figure":
            out.append(report.figure(item.payload, alt=item.caption, wide=item.wide).data)
    return "\n".join(out)


# --------------------------------------------------------------- the demo's true effects


def test_belonging_outcome_is_routed_to_the_survey(project: Project) -> None:
    [belonging] = project.toc.outcomes_for("survey")
    assert (belonging.id, belonging.measure, belonging.data) == (
        "belonging", "belonging", "pupil_survey")
    assert NOTEBOOKS["survey"] == NOTEBOOKS["audit"] == words.NOTEBOOK
    assert check_project(project.params, project.toc, project.data) == []


def test_belonging_verdict_and_estimate_recover_the_documented_truth(project: Project) -> None:
    outcome = project.toc.outcome("belonging")
    section = survey_page(project, outcome)
    result = section.result
    truth = demo.survey_truth("belonging")
    # the recorded result: the survey analysis, the true shift inside its interval
    assert (result.outcome_id, result.analysis, result.measure) == (
        "belonging", "survey", "belonging")
    assert result.notebook == "40_surveys_audits.ipynb"
    assert result.verdict == "improved"  # true shift +0.18 on the 1-4 scale
    assert result.ci_low < truth["difference"] < result.ci_high
    assert result.estimate == pytest.approx(truth["difference"], abs=0.06)
    assert result.n == 1361 + 1137
    # an independent computation of the headline: Welch's t interval of the mean scores
    options = project.params.analyses.survey
    responses = words.survey_responses(project, outcome, options)
    scores = scale_scores(responses, options.definition)
    x = scores.loc[scores["wave"] == "Autumn 2021", "belonging"].dropna()
    y = scores.loc[scores["wave"] == "Summer 2022", "belonging"].dropna()
    se = np.sqrt(x.var() / len(x) + y.var() / len(y))
    df = se**4 / ((x.var() / len(x)) ** 2 / (len(x) - 1) + (y.var() / len(y)) ** 2
                  / (len(y) - 1))
    t = stats.t.ppf(0.975, df)
    assert result.estimate == pytest.approx(y.mean() - x.mean(), abs=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (y.mean() - x.mean() - t * se, y.mean() - x.mean() + t * se), abs=1e-9)
    # a target on the subscale is judged like any other (points of the 1-4 score)
    target = Target(change="rise", value=0.1, unit="points")
    assert judge(target, result).word == "met"  # the whole interval is above +0.1
    assert judge(Target(change="rise", value=0.3, unit="points"), result).word == "not met"
    # the other figures on the page recover theirs too
    summary = {k: float(v) for k, v in section.tables()[
        "belonging score in each wave"].iloc[0].items() if k in ("Hedges' g",)}
    assert summary["Hedges' g"] == pytest.approx(truth["g"], abs=0.1)


def test_belonging_page_recovers_alpha_and_agreement(project: Project) -> None:
    options = project.params.analyses.survey
    responses = words.survey_responses(project, None, options)
    truth = demo.survey_truth("belonging")
    for wave in ("Autumn 2021", "Summer 2022"):
        rel = reliability(responses, options.definition, "belonging", wave=wave)
        assert rel.alpha_ci_low < truth["waves"][wave]["alpha"] < rel.alpha_ci_high
    section = survey_page(project, project.toc.outcome("belonging"))
    table = section.tables()["Each statement in Autumn 2021 and Summer 2022"]
    for item, statement in [(i.id, i.statement) for i in options.definition.items
                            if i.subscale == "belonging"]:
        for wave in ("Autumn 2021", "Summer 2022"):
            row = table[(table["statement"] == statement) & (table["wave"] == wave)].iloc[0]
            n = row["n"]
            p = truth["waves"][wave]["pct_agree"][item]
            half = 1.96 * 100 * np.sqrt(p / 100 * (1 - p / 100) / n) + 1  # ~95% + rounding
            assert abs(row["% agree (incl. strongly)"] - p) < half, (item, wave)


def test_demo_audit_recovers_the_documented_truth(project: Project) -> None:
    options = project.params.analyses.audit
    ratings = words.audit_ratings(project, None, options)
    change = audit_change(ratings, options.definition)
    truth = demo.audit_truth()
    summary = change.summary.set_index("area")
    for area, values in truth["areas"].items():
        row = summary.loc[area]
        assert row["n_schools"] == 21
        assert row["up_share_ci_low"] <= values["up_share"] <= row["up_share_ci_high"], area
        assert row["mean_change_ci_low"] < values["mean_change"] < row["mean_change_ci_high"]
    overall = summary.loc[ALL_AREAS]
    assert overall["mean_change_ci_low"] < truth["mean_change"] < overall["mean_change_ci_high"]
    assert overall["up_share_ci_low"] < all_areas_up_share() < overall["up_share_ci_high"]
    assert change.headline()["verdict"] == "improved"
    chosen = chosen_vs_others(ratings, options.definition)
    assert chosen.ci_low < truth["chosen_minus_other"] < chosen.ci_high
    assert chosen.headline()["verdict"] == "improved"


def all_areas_up_share() -> float:
    """P(a school's mean change over the areas > 0) / P(it is not 0) under the demo's audit
    model, by enumeration: each area moves up with probability up x P(not at the top level),
    down with probability down x P(not at the bottom), the chosen areas (two of five, every
    pair equally likely) with the higher up."""
    cfg = demo.TRUE_EFFECTS["audit"]
    areas = list(cfg["baseline_probs"])
    pos = neg = 0.0
    pairs = list(itertools.combinations(areas, cfg["areas_chosen_per_school"]))
    for pair in pairs:
        total = {0: 1.0}
        for area in areas:
            p = cfg["baseline_probs"][area]
            up = (cfg["up_chosen"] if area in pair else cfg["up_other"]) * (p[0] + p[1])
            down = cfg["down"] * (p[1] + p[2])
            step = {1: up, -1: down, 0: 1 - up - down}
            new: dict[int, float] = {}
            for s, ps in total.items():
                for d, pd_ in step.items():
                    new[s + d] = new.get(s + d, 0.0) + ps * pd_
            total = new
        pos += sum(v for s, v in total.items() if s > 0) / len(pairs)
        neg += sum(v for s, v in total.items() if s < 0) / len(pairs)
    return pos / (pos + neg)


# --------------------------------------------------------------- the page's sections


def test_survey_section_renders_with_its_tables_figures_and_caution(project: Project) -> None:
    section = survey_page(project, project.toc.outcome("belonging"))
    assert section.heading == "Pupils feel they belong in school"
    assert DIFFERENT_RESPONDENTS in section.sentence
    assert "1,361 of 1,891 invited (72%)" in section.sentence
    tables = section.tables()
    assert set(tables) == {"belonging score in each wave",
                           "Each statement in Autumn 2021 and Summer 2022"}
    assert list(tables["Each statement in Autumn 2021 and Summer 2022"].columns) == [
        "statement", "wave", "n", "% strongly agree", "% agree (incl. strongly)",
        "% do not agree"]
    assert len(section.figures()) == 2
    check_alt_text(section)
    html = render(section)
    assert "Cronbach&#x27;s alpha 0.78" in html or "Cronbach's alpha 0.78" in html
    assert "I often feel left out at school" in html and "<script" not in html


def test_survey_mechanism_is_shown_not_recorded(project: Project) -> None:
    options = project.params.analyses.survey
    [mechanism] = [m for m in project.toc.mechanisms
                   if m.measure in words.survey_measures(options)]
    responses = words.survey_responses(project, None, options)
    comparison = compare_waves(responses, options.definition, mechanism.measure,
                               before=options.before, after=options.after,
                               disclosure=project.disclosure)
    section = words.mechanism_section(project, mechanism, comparison, responses=responses,
                                      options=options)
    assert section.result is None and section.heading.startswith("Mechanism: ")
    assert "There is an adult at school I can talk to" in section.sentence
    check_alt_text(section)
    render(section)


def test_audit_outcome_is_recorded_through_the_result_protocol(project: Project) -> None:
    outcome = Outcome(id="send_identification", statement="Schools identify needs earlier",
                      measure="identification", analysis="audit", data="school_audit",
                      direction="higher_is_better")
    section = audit_page(project, outcome)
    result = section.result
    truth = demo.audit_truth()["areas"]["identification"]
    assert (result.analysis, result.outcome_id, result.measure) == (
        "audit", "send_identification", "identification")
    assert result.ci_low <= truth["up_share"] <= result.ci_high
    assert result.unit == "share of schools whose rating changed that moved up"
    assert section.sentence.startswith("Of 21 schools rated at both audits")
    tables = section.tables()
    assert "Identification: ratings at baseline and follow-up (number of schools)" in tables
    moved = tables["How schools' ratings moved, by area"]
    assert list(moved["Area"])[-1] == ALL_AREAS
    assert (moved["Moved up"] + moved["Stayed"] + moved["Moved down"]
            == moved["Schools rated at both audits"]).all()
    check_alt_text(section)
    html = render(section)
    assert "Sign test p" in html and "self-evaluation" not in section.heading


def test_all_areas_audit_outcome_shows_every_transition_table(project: Project) -> None:
    outcome = Outcome(id="provision", statement="Provision strengthens", measure="all_areas",
                      analysis="audit", direction="higher_is_better")
    section = audit_page(project, outcome)
    transitions = [c for c in section.tables() if "ratings at baseline and follow-up" in c]
    assert len(transitions) == 5
    assert section.result.verdict == "improved"
    for caption in transitions:  # each school once per area: 21 in every table
        numbers = section.tables()[caption].drop(columns="Rating").to_numpy()
        assert numbers.sum() == 21


def test_small_survey_counts_are_withheld_on_the_page(project: Project) -> None:
    """A survey with few respondents: the counts below the threshold, and what could be
    worked out from them, never reach the board's tables or sentence."""
    options = project.params.analyses.survey
    responses = words.survey_responses(project, None, options)
    ids = {w: sorted(set(responses.loc[responses["wave"] == w, "response_id"]))[:12]
           for w in (options.before, options.after)}
    few = responses[responses["response_id"].isin(ids[options.before] + ids[options.after])]
    small = dataclasses.replace(project, data=dataclasses.replace(
        project.data, tables={**project.data.tables, "pupil_survey": few}))
    section = survey_page(small, project.toc.outcome("belonging"))
    table = section.tables()["Each statement in Autumn 2021 and Summer 2022"]
    assert (table == WITHHELD).any().any()
    for column in ("% strongly agree", "% agree (incl. strongly)", "% do not agree"):
        shown = pd.to_numeric(table[column], errors="coerce").dropna()
        # a shown percentage never stands for fewer than 5 answers (or n minus them)
        n = pd.to_numeric(table.loc[shown.index, "n"], errors="coerce")
        k = (shown * n / 100).round()
        assert not ((k > 0) & (k < 5)).any(), column
    # the verdict needs 10 respondents a wave: 12 is enough, the rest of the page still
    # renders
    render(section)


def test_paired_survey_section_records_under_the_survey(project: Project) -> None:
    """Identified respondents (pupil_id): the paired design, recorded as the survey's."""
    rng = np.random.default_rng(3)
    rows = []
    levels = ["Strongly disagree", "Disagree", "Agree", "Strongly agree"]
    for k in range(40):
        base = rng.integers(0, 3)
        for wave, shift in (("Autumn 2021", 0), ("Summer 2022", 1)):
            for j, item in enumerate(["belong_1", "belong_2", "belong_3", "belong_5"]):
                level = int(np.clip(base + shift * (j % 2) + rng.integers(-1, 2), 0, 3))
                rows.append({"response_id": f"{wave[:1]}{k}", "wave": wave, "item": item,
                             "response": levels[level], "pupil_id": f"P{k:03d}"})
    responses = pd.DataFrame(rows)
    options = project.params.analyses.survey.model_copy(update={"design": "paired"})
    outcome = project.toc.outcome("belonging")
    comparison = compare_waves(responses, options.definition, "belonging",
                               before=options.before, after=options.after, design="paired",
                               disclosure=project.disclosure)
    section = words.survey_section(project, outcome, comparison, responses=responses,
                                   options=options)
    assert section.result.analysis == "survey" and section.result.n == 40
    assert DIFFERENT_RESPONDENTS not in render(section)


# --------------------------------------------------------------- parameters and routing


def test_the_notebook_declares_its_options_and_follows_the_pattern() -> None:
    path = REPO / "notebooks" / words.NOTEBOOK
    check_notebook_parameters(path, INJECTED)
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["language_info"]["name"] == "python"
    [params] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert 'params_file = "../params/demo.yaml"' in params.source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for call in ('open_project(params_file, results_file or None, "survey"', "compare_waves(",
                 "audit_change(", "for_analysts(", "project.record(section.result)"):
        assert call in code


def test_survey_and_audit_links_are_checked(project: Project, tmp_path: Path) -> None:
    raw = yaml.safe_load(DEMO.read_text())
    raw["analyses"]["survey"]["before"] = "Spring 2021"
    raw["theory_of_change"] = str(tmp_path / "toc.yaml")
    for source in raw["data"].values():
        source["path"] = str(REPO / source["path"])
    toc = yaml.safe_load((REPO / "toc_templates" / "demo.yaml").read_text())
    toc["outcomes"].append({"id": "worry", "statement": "Pupils worry less",
                            "measure": "no_such_item", "analysis": "survey",
                            "direction": "lower_is_better", "aims": ["aim_thrive"]})
    toc["outcomes"].append({"id": "audit_x", "statement": "Practice strengthens",
                            "measure": "leadershp", "analysis": "audit",
                            "direction": "higher_is_better", "aims": ["aim_thrive"]})
    (tmp_path / "toc.yaml").write_text(yaml.safe_dump(toc))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    params = load_params(params_file)
    problems = [str(p) for p in check_project(params, load_toc(tmp_path / "toc.yaml"),
                                              project.data)]
    assert any("'no_such_item' is not a subscale or statement id" in p for p in problems)
    assert any("'leadershp' is not an area id of the audit or all_areas" in p
               for p in problems)
    # answers that are not levels of the scale, statements the survey does not define
    # and ratings that are not levels of the audit are found before a run
    survey = project.data.tables["pupil_survey"].copy()
    survey.loc[survey.index[3], "response"] = "Agreee"
    audit = project.data.tables["school_audit"].copy()
    audit.loc[audit.index[2], "rating"] = "Outstanding"
    bad = {**project.data.tables, "pupil_survey": survey, "school_audit": audit}
    found = [str(p) for p in check_project(project.params, project.toc, bad)]
    assert any(p.startswith("analyses.survey: the pupil_survey table does not fit") and
               "1 answers are not one of its levels" in p and "Agreee" not in p for p in found)
    assert any(p.startswith("analyses.audit: the school_audit table does not fit") and
               "1 ratings are not one of its levels" in p for p in found)
    # a wave with no responses yet is not a problem: the outcome is not yet measured
    assert not any("Spring 2021" in p for p in problems)
    options = params.analyses.survey
    responses = words.survey_responses(project, None, options)
    assert words.missing_waves(responses, options) == ["Spring 2021"]
    section = words.not_yet_section(project.toc.outcome("belonging"), ["Spring 2021"])
    assert section.result is None
    assert section.sentence == ("There are no survey responses from Spring 2021 yet, so "
                                "this is not yet measured.")


def test_a_bad_survey_definition_is_refused_when_the_parameters_load(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEMO.read_text())
    raw["analyses"]["survey"]["survey"]["items"][0]["subscale"] = None
    raw["analyses"]["survey"]["survey"]["items"].append(
        dict(raw["analyses"]["survey"]["survey"]["items"][1]))  # a repeated id
    raw["analyses"]["audit"]["audit"]["levels"] = ["Secure"]
    path = tmp_path / "params" / "p.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception) as err:
        load_params(path, check_files=False)
    text = str(err.value)
    assert "analyses.survey.survey" in text and "repeated: belong_2" in text
    assert "analyses.audit.audit" in text


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "toc_templates").glob("*.yaml")))
def test_every_template_validates(name: str) -> None:
    toc = load_toc(template_path(name))
    assert toc.outcomes


def test_templates_show_survey_and_audit_routes() -> None:
    for name in ("blank", "ep_action_planning"):
        toc = load_toc(template_path(name))
        assert toc.outcomes_for("survey") and toc.outcomes_for("audit"), name
    ep = load_toc(template_path("ep_action_planning"))
    assert [o.measure for o in ep.outcomes_for("audit")] == ["all_areas"]


def test_demo_validates_with_its_survey_and_audit() -> None:
    params, toc = load_project_files(DEMO)
    assert {"survey", "audit"} <= set(params.enabled)
    assert params.data["pupil_survey"].kind == "survey_responses"
    assert params.data["school_audit"].kind == "audit_ratings"


def test_identified_survey_pupil_ids_are_pseudonymised_and_free_text_dropped(
        tmp_path: Path) -> None:
    params_file = make_project(tmp_path)
    (tmp_path / "data" / "raw" / "mini" / "survey.csv").write_text(
        "UPN,Round,Question,Answer,Any comments\n"
        "A001,Autumn,belong_1,Agree,my friend Sam is mean\n"
        "A001,Summer,belong_1,Strongly agree,\n"
        "A002,Autumn,belong_1,Disagree,I hate PE\n")
    raw = yaml.safe_load(params_file.read_text())
    raw["data"]["survey"] = {"kind": "survey_responses", "path": "data/raw/mini/survey.csv",
                             "columns": {"UPN": "pupil_id", "Round": "wave",
                                         "Question": "item", "Answer": "response"}}
    params_file.write_text(yaml.safe_dump(raw))
    params = load_params(params_file)
    with pytest.raises(Exception, match="response_id"):
        read_source("survey", params.data["survey"], params)  # a response id is required
    raw["data"]["survey"]["columns"]["UPN"] = "pupil_id"
    (tmp_path / "data" / "raw" / "mini" / "survey.csv").write_text(
        "Form,UPN,Round,Question,Answer,Any comments\n"
        "1,A001,Autumn,belong_1,Agree,my friend Sam is mean\n"
        "2,A001,Summer,belong_1,Strongly agree,\n"
        "3,A002,Autumn,belong_1,Disagree,I hate PE\n")
    raw["data"]["survey"]["columns"]["Form"] = "response_id"
    params_file.write_text(yaml.safe_dump(raw))
    params = load_params(params_file)
    table, _ = read_source("survey", params.data["survey"], params)
    assert "Any comments" not in table.columns and "comments" not in " ".join(table.columns)
    assert not table["pupil_id"].isin(["A001", "A002"]).any()
    assert table["pupil_id"].str.startswith("P").all()
    assert table["pupil_id"].nunique() == 2
    flat = json.dumps(table.astype(str).to_dict())
    assert "Sam" not in flat and "PE" not in flat
