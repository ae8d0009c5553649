"""Tests for evaluation.targets: the target schema, judge() on every unit kind with its
boundaries, the refusal of incomparable targets and of free-text targets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from evaluation.errors import DataError, ParamsError
from evaluation.params import check_project, load_params, load_project_files
from evaluation.results import Result
from evaluation.targets import (
    Target,
    compatibility_problem,
    count_sentence,
    estimate_kind,
    free_text_message,
    judge,
    judge_all,
)
from evaluation.toc import TEMPLATE_DIR, load_toc, template_path, toc_from_dict

REPO = Path(__file__).resolve().parent.parent
PARAMS = sorted((REPO / "params").glob("*.yaml"))

# The units the analyses record (evaluation/baseline_followup.py, its.py,
# sections/tracking.py), one per kind of estimate.
POINTS = "points (adjusted difference)"
PP = "percentage points"
RATIO = "ratio of observed to expected events after the interruption"
PROPORTION = "proportion of closed referrals"


def _rec(est: float | None, lo: float | None, hi: float | None, unit: str) -> dict:
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "unit": unit}


def T(**kw) -> Target:  # noqa: N802 - reads like the YAML mapping
    return Target(**kw)


# --------------------------------------------------------------------------- judge


FALL_2 = T(change="fall", value=2, unit="points")
RISE_3PP = T(change="rise", value=3, unit="percentage_points")
AT_LEAST_70 = T(value=70, unit="percent")
DOWN_20 = T(change="fall", value=20, unit="percent")
RR_AT_MOST = T(value=0.8, unit="ratio", comparison="at_most")


@pytest.mark.parametrize(("target", "lo", "hi", "unit", "word"), [
    # a fall of at least 2 points: the estimate must be -2 or less
    (FALL_2, -3.1, -2.0, POINTS, "met"),            # upper end exactly on the target
    (FALL_2, -3.1, -2.0 + 1e-6, POINTS, "not yet clear"),
    (FALL_2, -3.1, -0.9, POINTS, "not yet clear"),  # the demo's SDQ figures
    (FALL_2, -2.0, -0.5, POINTS, "not yet clear"),  # lower end on the target: it is in
    (FALL_2, -1.99, -0.5, POINTS, "not met"),
    (FALL_2, 0.5, 1.5, POINTS, "not met"),          # rose instead
    # a rise of at least 3 percentage points
    (RISE_3PP, 3.0, 4.4, PP, "met"),
    (RISE_3PP, 2.99, 4.4, PP, "not yet clear"),
    (RISE_3PP, 1.3, 3.0, PP, "not yet clear"),
    (RISE_3PP, 1.3, 2.99, PP, "not met"),
    # at least 70% (a proportion 0-1 recorded)
    (AT_LEAST_70, 0.70, 0.80, PROPORTION, "met"),
    (AT_LEAST_70, 0.586, 0.7032, PROPORTION, "not yet clear"),  # the demo's needs met
    (AT_LEAST_70, 0.55, 0.70, PROPORTION, "not yet clear"),
    (AT_LEAST_70, 0.55, 0.6999, PROPORTION, "not met"),
    # suspensions down at least 20%: a ratio of 0.80 or less
    (DOWN_20, 0.65, 0.80, RATIO, "met"),
    (DOWN_20, 0.65, 1 - 0.2, RATIO, "met"),           # float 1 - 0.2 equals 0.8
    (DOWN_20, 0.7068, 0.8710, RATIO, "not yet clear"),  # the demo's ITS ratio 0.78
    (DOWN_20, 0.80, 0.95, RATIO, "not yet clear"),
    (DOWN_20, 0.8001, 0.95, RATIO, "not met"),
    (DOWN_20, 1.13, 1.31, "rate ratio, pooled across school_id", "not met"),
    # a rate ratio of at most 0.8
    (RR_AT_MOST, 0.5, 0.8, "rate ratio", "met"),
    (RR_AT_MOST, 0.5, 0.81, "rate ratio", "not yet clear"),
    (RR_AT_MOST, 0.81, 0.9, "rate ratio", "not met"),
])
def test_judge_each_unit_kind_at_its_boundaries(target, lo, hi, unit, word) -> None:
    got = judge(target, _rec((lo + hi) / 2, lo, hi, unit))
    assert got.word == word
    assert got.sentence.endswith(f": {word}.")


def _reference(target: Target, lo: float, hi: float, unit: str) -> str:
    """An independent judgement on the TARGET's own scale (percent change, percent,
    points), by testing a fine grid of values across the interval against the target's
    words: met if all satisfy it, not met if none does."""
    grid = np.linspace(lo, hi, 2001)
    if target.unit == "percent" and target.change:       # ratio -> % change
        vals = (grid - 1) * 100
    elif target.unit == "percent":                        # proportion -> %
        vals = grid * 100
    else:
        vals = grid
    v = target.value
    if target.change == "fall":
        ok = -vals >= v - 1e-9 if target.comparison == "at_least" else -vals <= v + 1e-9
    elif target.change == "rise":
        ok = vals >= v - 1e-9 if target.comparison == "at_least" else vals <= v + 1e-9
    else:
        ok = vals >= v - 1e-9 if target.comparison == "at_least" else vals <= v + 1e-9
    return "met" if ok.all() else "not met" if not ok.any() else "not yet clear"


@pytest.mark.parametrize(("target", "unit", "centre", "spread"), [
    (FALL_2, POINTS, -2.0, 2.0),
    (RISE_3PP, PP, 3.0, 3.0),
    (AT_LEAST_70, PROPORTION, 0.7, 0.15),
    (DOWN_20, RATIO, 0.8, 0.3),
    (RR_AT_MOST, "rate ratio", 0.8, 0.3),
    (T(change="rise", value=10, unit="percent", comparison="at_most"), RATIO, 1.1, 0.3),
    (T(value=30, unit="percent", comparison="at_most"), PROPORTION, 0.3, 0.2),
])
def test_judge_agrees_with_an_independent_grid_check(target, unit, centre, spread) -> None:
    rng = np.random.default_rng(19)
    for _ in range(300):
        a, b = np.sort(centre + rng.uniform(-spread, spread, 2))
        assert judge(target, _rec((a + b) / 2, a, b, unit)).word == _reference(
            target, a, b, unit), (a, b)


def test_conversions_to_the_targets_scale_and_the_sentence() -> None:
    j = judge(DOWN_20, _rec(0.7847, 0.7068, 0.8710, RATIO))
    assert j.estimate == pytest.approx(-21.53)  # ratio 0.78 is a change of -22%
    assert j.threshold == pytest.approx(-20)
    assert j.figures == "−22% (−29% to −13%)"
    assert j.sentence == ("Target: a fall of at least 20%. −22% (−29% to −13%): "
                          "not yet clear.")
    j = judge(T(value=70, unit="percent", text="At least 70% of referrals close with "
                "needs met"), _rec(0.6468, 0.5860, 0.7032, PROPORTION))
    assert j.sentence == ("Target: At least 70% of referrals close with needs met. "
                          "65% (59% to 70%): not yet clear.")
    j = judge(FALL_2, _rec(-1.98, -3.10, -0.855, POINTS))
    assert j.sentence == ("Target: a fall of at least 2 points. −2.0 points (−3.1 to −0.9): "
                          "not yet clear.")
    assert j.short == "Target (fall ≥ 2 points): not yet clear"
    j = judge(RISE_3PP, _rec(3.52, 3.1, 4.4, PP))
    assert j.figures == "+3.5 percentage points (+3.1 to +4.4)" and j.word == "met"
    j = judge(RR_AT_MOST, _rec(0.7, 0.6, 0.79, "rate ratio"))
    assert j.figures == "0.70 (0.60 to 0.79)" and j.word == "met"


def test_judge_reads_a_result_and_says_when_it_cannot_tell() -> None:
    result = Result(outcome_id="needs_met", analysis="referral_tracking", measure="needs_met",
                    estimate=0.8, ci_low=0.75, ci_high=0.85, unit=PROPORTION, null=0.7, n=200,
                    period="", direction="higher_is_better", verdict="improved",
                    headline="", sentence="")
    assert judge(AT_LEAST_70, result).word == "met"
    no_ci = judge(AT_LEAST_70, _rec(0.8, None, float("nan"), PROPORTION))
    assert no_ci.word == "not yet clear" and "no confidence interval" in no_ci.sentence
    nothing = judge(AT_LEAST_70, _rec(None, None, None, PROPORTION))
    assert nothing.word == "not yet clear" and "No estimate" in nothing.sentence
    dated = T(value=70, unit="percent", by=date(2026, 7, 31))
    j = judge(dated, _rec(0.65, 0.6, 0.69, PROPORTION), as_of=date(2026, 3, 1))
    assert j.word == "not met"
    assert j.sentence.startswith("Target: at least 70%, by 31 July 2026.")
    assert "has not yet passed" in j.sentence
    assert "has not yet passed" not in judge(dated, _rec(0.65, 0.6, 0.69, PROPORTION),
                                             as_of=date(2026, 9, 1)).sentence


def test_judge_refuses_an_estimate_of_another_kind() -> None:
    with pytest.raises(DataError, match="cannot be compared"):
        judge(DOWN_20, _rec(-2.0, -3.0, -1.0, POINTS))
    with pytest.raises(DataError, match="cannot be compared"):
        judge(AT_LEAST_70, _rec(0.78, 0.7, 0.87, RATIO))
    with pytest.raises(DataError, match="cannot be compared"):
        judge(FALL_2, _rec(0.5, 0.4, 0.6, "something else"))


def test_estimate_kinds_of_the_analyses_units() -> None:
    assert estimate_kind("points (mean change)") == "difference"
    assert estimate_kind("percentage points") == "difference"
    assert estimate_kind("points (adjusted difference)") == "difference"
    assert estimate_kind("difference, pooled across school_id") == "difference"
    assert estimate_kind(RATIO) == "ratio"
    assert estimate_kind("rate ratio") == "ratio"
    assert estimate_kind(PROPORTION) == "proportion"
    assert estimate_kind("share of pupils reliably improved") == "proportion"
    assert estimate_kind("") is None


def test_judge_all_and_counts_are_apart_from_verdicts() -> None:
    toc = load_toc(template_path("demo"))
    records = [
        {"outcome_id": "sdq_difficulties", **_rec(-1.98, -3.10, -0.85, POINTS)},
        {"outcome_id": "needs_met", **_rec(0.55, 0.5, 0.6, PROPORTION)},
        {"outcome_id": "referral_attendance", **_rec(3.5, 2.6, 4.4, PP)},
    ]
    got = judge_all(toc.outcomes, records)
    assert {k: v.word for k, v in got.items()} == {
        "sdq_difficulties": "not yet clear", "needs_met": "not met",
        "referral_attendance": "met"}
    assert count_sentence(got) == ("Targets, judged apart from the before/after verdicts: "
                                   "1 met, 1 not met, 1 not yet clear.")
    assert count_sentence({}) == "No outcome with a target has a result yet."
    assert judge_all(toc.outcomes, []) == {}


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(("data", "match"), [
    ({"value": 0.8, "unit": "ratio", "change": "fall"}, "already a relative change"),
    ({"value": 0, "unit": "ratio"}, "must be above 0"),
    ({"value": -2, "unit": "points", "change": "fall"}, "positive number"),
    ({"value": 120, "unit": "percent"}, "from 0 to 100"),
    ({"value": 100, "unit": "percent", "change": "fall"}, "below 100"),
    ({"value": float("nan"), "unit": "points", "change": "fall"}, "must be a number"),
    ({"value": 2, "unit": "pts", "change": "fall"}, "percentage_points"),
    ({"value": 2, "unit": "points", "change": "down"}, "rise"),
    ({"value": 2, "unit": "points", "change": "fall", "colour": "red"}, "colour"),
])
def test_target_schema_refuses_what_cannot_mean_anything(data, match) -> None:
    with pytest.raises(ValidationError, match=match):
        Target.model_validate(data)


def test_target_meaning() -> None:
    assert (FALL_2.kind, FALL_2.threshold, FALL_2.side) == ("difference", -2, "below")
    assert (RISE_3PP.kind, RISE_3PP.threshold, RISE_3PP.side) == ("difference", 3, "above")
    assert (AT_LEAST_70.kind, AT_LEAST_70.threshold) == ("proportion", 0.7)
    assert (DOWN_20.kind, DOWN_20.side) == ("ratio", "below")
    assert DOWN_20.threshold == pytest.approx(0.8)
    assert (RR_AT_MOST.kind, RR_AT_MOST.threshold, RR_AT_MOST.side) == ("ratio", 0.8, "below")
    assert T(change="rise", value=0, unit="points").words == "a rise"
    assert str(T(value=70, unit="percent", text="Most referrals")) == "Most referrals"
    assert T(value=2, unit="points").kind == "level"


@pytest.mark.parametrize(("target", "analysis", "measure", "direction", "match"), [
    (AT_LEAST_70, "its", "suspensions", "lower_is_better", "cannot be compared"),
    (FALL_2, "referral_tracking", "needs_met", "higher_is_better", "cannot be compared"),
    (DOWN_20, "baseline_followup", "sdq_teacher_total", "lower_is_better",
     "cannot be compared"),
    (T(value=20, unit="points"), "baseline_followup", "sdq_teacher_total", "lower_is_better",
     "cannot be compared"),
    (FALL_2, "baseline_followup", "attendance_pct", "lower_is_better",
     "write unit: percentage_points"),
    (T(change="fall", value=2, unit="percentage_points"), "baseline_followup",
     "sdq_teacher_total", "lower_is_better", "write unit: points"),
    (FALL_2, "baseline_followup", "sdq_teacher_total", "higher_is_better",
     "did you mean a rise of at least 2 points"),
    (AT_LEAST_70, "referral_tracking", "needs_met", "lower_is_better",
     "did you mean at most 70%"),
    (RR_AT_MOST, None, "suspensions", "higher_is_better", "did you mean a ratio of at least"),
])
def test_incomparable_targets_are_refused(target, analysis, measure, direction, match) -> None:
    problem = compatibility_problem(target, analysis=analysis, measure=measure,
                                    direction=direction)
    assert problem is not None and match in problem


@pytest.mark.parametrize(("target", "analysis", "measure", "direction"), [
    (FALL_2, "baseline_followup", "sdq_teacher_total", "lower_is_better"),
    (RISE_3PP, "referral_tracking", "attendance_pct", "higher_is_better"),
    (AT_LEAST_70, "referral_tracking", "needs_met", "higher_is_better"),
    (DOWN_20, "its", "suspensions", "lower_is_better"),
    (RR_AT_MOST, "its", "suspensions", "lower_is_better"),
    (T(value=2, unit="points", comparison="at_most"), None, "m", "lower_is_better"),
])
def test_comparable_targets_pass(target, analysis, measure, direction) -> None:
    assert compatibility_problem(target, analysis=analysis, measure=measure,
                                 direction=direction) is None


# --------------------------------------------------------------------------- the ToC


def _demo_with_target(target, outcome: str = "sdq_difficulties") -> dict:
    data = yaml.safe_load(template_path("demo").read_text(encoding="utf-8"))
    next(o for o in data["outcomes"] if o["id"] == outcome)["target"] = target
    return data


def test_a_free_text_target_is_an_error_showing_the_structured_form() -> None:
    with pytest.raises(ParamsError) as info:
        toc_from_dict(_demo_with_target("Mean SDQ falls by at least 2 points"), "toc.yaml")
    message = str(info.value)
    assert "outcome 1 (id 'sdq_difficulties'), key 'target'" in message
    assert "a target is structured data, not text" in message
    # the form to write, for this outcome: a fall in points, with the text's number
    assert ('target: {change: fall, value: 2, unit: points, text: "Mean SDQ falls by at '
            'least 2 points"}') in message
    # a suggestion is only a suggestion: with several numbers the value is left to fill
    message = free_text_message("70% of referrals within 12 weeks",
                                analysis="referral_tracking", measure="needs_met",
                                direction="higher_is_better")
    assert "{value: N, unit: percent, comparison: at_least, text:" in message
    for text, form in [("Suspensions down 20%", "{change: fall, value: 20, unit: percent"),
                       ("At least 70% of plans", "{value: 70, unit: percent")]:
        assert form in free_text_message(text, direction="lower_is_better"
                                         if "down" in text else "higher_is_better")


def test_a_number_alone_or_a_bad_key_is_explained() -> None:
    with pytest.raises(ParamsError, match="a target is structured data"):
        toc_from_dict(_demo_with_target(70, "needs_met"), "toc.yaml")
    with pytest.raises(ParamsError) as info:
        toc_from_dict(_demo_with_target({"value": 2, "unit": "points", "change": "fall",
                                         "units": "x"}), "toc.yaml")
    assert "unknown key 'units' (did you mean 'unit'?)" in str(info.value)
    assert "allowed keys: value, unit, change, comparison, by, text" in str(info.value)


def test_a_target_the_analysis_cannot_judge_is_refused_in_the_toc() -> None:
    with pytest.raises(ParamsError) as info:
        toc_from_dict(_demo_with_target({"value": 70, "unit": "percent"}, "suspensions"),
                      "toc.yaml")
    message = str(info.value)
    assert "outcome 3 (id 'suspensions'), key 'target'" in message
    assert "cannot be compared with what the its analysis records" in message
    assert "{change: fall, value: 20, unit: percent}" in message


@pytest.mark.parametrize("path", sorted(TEMPLATE_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_template_validates_with_structured_comparable_targets(path: Path) -> None:
    toc = load_toc(path)
    for o in toc.outcomes:
        if o.target is None:
            continue
        assert isinstance(o.target, Target)
        assert compatibility_problem(o.target, analysis=o.analysis, measure=o.measure,
                                     direction=o.direction) is None


def test_no_template_keeps_a_free_text_target() -> None:
    for path in TEMPLATE_DIR.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for o in raw["outcomes"]:
            assert not isinstance(o.get("target"), str), (path.name, o["id"])


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
def test_every_project_and_its_toc_validate(path: Path) -> None:
    params, toc = load_project_files(path)
    assert check_project(params, toc) == []


def test_demo_targets_are_the_ones_agreed() -> None:
    toc = load_toc(template_path("demo"))
    got = {o.id: (o.target.change, o.target.value, o.target.unit, o.target.comparison)
           for o in toc.outcomes if o.target}
    assert got == {
        "sdq_difficulties": ("fall", 2, "points", "at_least"),
        "attendance_targeted": ("rise", 3, "percentage_points", "at_least"),
        "suspensions": ("fall", 20, "percent", "at_least"),  # "by a fifth"
        "referral_attendance": ("rise", 0, "percentage_points", "at_least"),
        "needs_met": (None, 70, "percent", "at_least"),
    }


def test_parameters_refuse_targets_the_its_family_cannot_judge(tmp_path: Path) -> None:
    params = load_params(REPO / "params" / "demo.yaml", check_files=False)
    toc = toc_from_dict(yaml.safe_load(template_path("demo").read_text(encoding="utf-8")))
    assert params.analyses.its is not None
    gaussian = params.model_copy(update={"analyses": params.analyses.model_copy(update={
        "its": params.analyses.its.model_copy(update={"family": "gaussian"})})})
    gaussian._file, gaussian._root = params._file, params._root
    problems = [p for p in check_project(gaussian, toc) if "target" in p.key]
    assert len(problems) == 1
    assert problems[0].key == "outcome 'suspensions', key 'target'"
    assert "analyses.its.family is gaussian" in problems[0].message
    assert "{change: fall, value: 2, unit: points}" in problems[0].message


def test_parameters_refuse_a_needs_met_kpi_that_disagrees_with_the_toc() -> None:
    from evaluation.params import KpiTarget

    params = load_params(REPO / "params" / "demo.yaml", check_files=False)
    toc = load_toc(template_path("demo"))
    rt = params.analyses.referral_tracking
    assert rt is not None

    def with_kpi(green: float):
        p = params.model_copy(update={"analyses": params.analyses.model_copy(update={
            "referral_tracking": rt.model_copy(update={"targets": {
                **rt.targets, "needs_met": KpiTarget(green=green, amber=50)}})})})
        p._file, p._root = params._file, params._root
        return [x for x in check_project(p, toc) if "target" in x.key]

    assert with_kpi(70) == []
    problems = with_kpi(75)
    assert len(problems) == 1 and "green threshold" in problems[0].message
    assert "75%" in problems[0].message and "70%" in problems[0].message
