"""The one result protocol and the one verdict rule (evaluation/results.py)."""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evaluation import its  # noqa: E402
from evaluation.baseline_followup import (  # noqa: E402
    SINGLE_GROUP,
    Ancova,
    PairedChange,
    ReliableChange,
    ancova,
    paired_change,
    reliable_change,
)
from evaluation.results import VERDICTS, AnalysisResult, Result, verdict  # noqa: E402

EVALUATION = Path(__file__).resolve().parents[1] / "evaluation"


def _scores(n: int = 60, shift: float = 4.0, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b = rng.normal(50, 8, n).round()
    return pd.DataFrame({"b": b, "f": b + rng.normal(shift, 5, n).round(),
                         "group": np.where(np.arange(n) % 2 == 0, "programme", "comparison"),
                         "school": np.where(np.arange(n) % 3 == 0, "A", "B")})


def _series(units: int = 1, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for u in range(units):
        t = np.arange(30)
        start = pd.date_range("2015-09-01", periods=30, freq="MS")
        mu = np.exp(3 + 0.01 * t - 0.4 * (t >= 15))
        frames.append(pd.DataFrame({"period_start": start, "count": rng.poisson(mu),
                                    "roll": 1000, "unit": f"s{u}"}))
    return pd.concat(frames, ignore_index=True)


def _results() -> dict[str, AnalysisResult]:
    data = _scores()
    many = _series(units=3)
    return {
        "PairedChange": paired_change(data, "b", "f", by="school",
                                      direction="higher_is_better"),
        "Ancova": ancova(data, "b", "f", "group", direction="higher_is_better"),
        "ReliableChange": reliable_change(data, "b", "f", reliability=0.9, sd=8.0,
                                          direction="higher_is_better"),
        "ITSResult": its.fit(_series(), time="period_start", outcome="count",
                             exposure="roll", interruption="2016-12-01",
                             direction="lower_is_better"),
        "ManyResult": its.fit_many(many, "unit", time="period_start", outcome="count",
                                   exposure="roll", interruption="2016-12-01",
                                   direction="lower_is_better"),
    }


@pytest.fixture(scope="module")
def results() -> dict[str, AnalysisResult]:
    return _results()


def test_every_result_class_is_converted(results):
    assert {type(r).__name__ for r in results.values()} == {
        "PairedChange", "Ancova", "ReliableChange", "ITSResult", "ManyResult"}
    for cls in (PairedChange, Ancova, ReliableChange, its.ITSResult, its.ManyResult):
        # the result knows its direction: headline() takes no arguments, and every class
        # spells plot and record the same way
        assert list(inspect.signature(cls.headline).parameters) == ["self"]
        assert list(inspect.signature(cls.plot).parameters)[:2] == ["self", "ax"]
        record = inspect.signature(cls.record).parameters
        assert list(record)[:5] == ["self", "outcome", "period", "n", "notebook"]


@pytest.mark.parametrize("name", ["PairedChange", "Ancova", "ReliableChange", "ITSResult",
                                  "ManyResult"])
def test_result_follows_the_protocol(results, name):
    r = results[name]
    assert isinstance(r, AnalysisResult)
    assert isinstance(r.summary, pd.DataFrame) and not r.summary.empty
    h = r.headline()
    for key in ("estimate", "ci_low", "ci_high", "unit", "null", "n", "verdict"):
        assert key in h, key
    assert h["verdict"] in VERDICTS
    # a single group's change is attributed to the work only once adjusted for
    # regression to the mean
    attributable = h.get("design") != SINGLE_GROUP or bool(h.get("adjusted_for_rtm"))
    assert h["verdict"] == verdict(h["ci_low"], h["ci_high"], null=h["null"],
                                   direction=r.direction, attributable=attributable)
    assert math.isfinite(h["estimate"]) and h["ci_low"] <= h["estimate"] <= h["ci_high"]
    assert isinstance(r.sentence, str) and len(r.sentence) > 20
    fig = r.plot()
    assert fig.axes
    plt.close(fig)
    fig, ax = plt.subplots()
    assert r.plot(ax=ax) is fig and ax.has_data()
    plt.close(fig)
    html = r._repr_html_()
    assert "<table" in html
    outcome = SimpleNamespace(id="o1", measure="m", direction=r.direction)
    rec = r.record(outcome, notebook="nb.ipynb")
    assert isinstance(rec, Result)
    assert (rec.outcome_id, rec.measure, rec.notebook) == ("o1", "m", "nb.ipynb")
    assert (rec.estimate, rec.ci_low, rec.ci_high, rec.verdict, rec.unit, rec.null) == (
        h["estimate"], h["ci_low"], h["ci_high"], h["verdict"], h["unit"], h["null"])
    assert rec.sentence == r.sentence and rec.headline
    assert r.record(outcome, n=7, period="2020").n == 7
    other = "higher_is_better" if r.direction == "lower_is_better" else "lower_is_better"
    with pytest.raises(ValueError, match=other):
        r.record(SimpleNamespace(id="o1", measure="m", direction=other))


def test_direction_is_the_results_own():
    data = _scores(shift=4.0)
    up = paired_change(data, "b", "f", direction="higher_is_better").headline()
    down = paired_change(data, "b", "f", direction="lower_is_better").headline()
    # one group, no adjustment for regression to the mean: the cause is unclear
    assert (up["verdict"], down["verdict"]) == ("better, cause unclear",
                                                "worse, cause unclear")
    with pytest.raises(ValueError, match="higher_is_better"):
        paired_change(data, "b", "f", direction="higher")


@pytest.mark.parametrize(("low", "high", "null", "direction", "expected"), [
    (0.5, 2.0, 0.0, "higher_is_better", "improved"),
    (0.5, 2.0, 0.0, "lower_is_better", "worsened"),
    (-2.0, -0.5, 0.0, "higher_is_better", "worsened"),
    (-2.0, -0.5, 0.0, "lower_is_better", "improved"),
    (-1.0, 1.0, 0.0, "higher_is_better", "no clear change"),
    (-1.0, 1.0, 0.0, "lower_is_better", "no clear change"),
    (0.0, 1.0, 0.0, "higher_is_better", "no clear change"),  # touching the null
    (0.7, 0.9, 1.0, "lower_is_better", "improved"),  # a ratio below 1
    (1.1, 1.3, 1.0, "lower_is_better", "worsened"),
    (None, None, 0.0, "higher_is_better", "no clear change"),
    (None, 1.0, 0.0, "lower_is_better", "no clear change"),
    (float("nan"), 2.0, 0.0, "higher_is_better", "no clear change"),
    (1.0, float("inf"), 0.0, "higher_is_better", "no clear change"),
])
def test_verdict(low, high, null, direction, expected):
    assert verdict(low, high, null=null, direction=direction) == expected


def test_verdict_rejects_another_direction_word():
    for word in ("decrease", "higher", True):
        with pytest.raises(ValueError, match="lower_is_better"):
            verdict(1.0, 2.0, null=0.0, direction=word)


def _deciders(tree: ast.AST) -> list[int]:
    """Lines where code produces a verdict word: returned, or chosen by a conditional."""
    def is_word(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and node.value in VERDICTS

    def is_null(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and "null" in node.id) or (
            isinstance(node, ast.Constant) and node.value in (0, 1, 0.0, 1.0))

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and is_word(node.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.IfExp) and (is_word(node.body) or is_word(node.orelse)):
            lines.append(node.lineno)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                node.name.lstrip("_") in ("verdict", "decide", "judge") and \
                any(is_word(n) for n in ast.walk(node)):
            # (a function of that name that only calls results.verdict, or judges
            # something else, such as a target's met / not met, is not a second rule)
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and len(node.ops) == 2 and is_null(
                node.comparators[0]):  # "lo <= null <= hi": does the CI include no change?
            lines.append(node.lineno)
    return lines


def test_the_grep_finds_a_second_rule():
    second = ('def _verdict(lo, hi, up):\n'
              '    if lo > 0:\n        return "improved" if up else "worsened"\n'
              '    return "no clear change"\n')
    assert len(_deciders(ast.parse(second))) == 3
    calls_the_rule = ('def verdict(self):\n'
                      '    return verdict(self.lo, self.hi, null=0.0, direction=self.d)\n')
    assert _deciders(ast.parse(calls_the_rule)) == []
    assert len(_deciders(ast.parse("unclear = lo <= null <= hi\nx = a < 1 < b"))) == 2


def test_no_other_function_decides_improved_or_worsened():
    found = {}
    for path in sorted(EVALUATION.rglob("*.py")):
        lines = _deciders(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[str(path.relative_to(EVALUATION))] = lines
    # the one rule: evaluation.results.verdict
    assert list(found) == ["results.py"], found


# ------------------------------------------------------------------ one format for figures


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (0.652, "proportion of closed referrals", "65%"),
    (0.0049, "share of pupils reliably improved", "0%"),
    (2.44, "points (mean change)", "+2.4"),
    (-2.04, "percentage points", "\u22122.0"),
    (-0.04, "points (adjusted difference)", "0.0"),  # rounds to zero: no sign
    (0.776, "rate ratio", "0.78"),
    (0.776, "ratio of observed to expected events after the interruption", "0.78"),
    (1.2049, "rate ratio, pooled across school", "1.20"),
    (2.1, "risk ratio", "2.10"),
    (-0.456, "effect size (Hedges' g)", "\u22120.46"),
    (-3.25, "difference, pooled across school", "\u22123.2"),
    (0.2134, "points (difference in mean score)", "+0.21"),
    (0.32, "difference in levels moved (chosen minus other areas)", "+0.32"),
    (82.4, "%", "82%"),
    (1234.4, "count", "1,234"),
    (12.345, "days", "12.3"),  # no known kind: 1 decimal from 10 to 1,000
    (float("nan"), "rate ratio", "–"),
    (None, "rate ratio", "–"),
])
def test_format_figure(value, unit, expected):
    from evaluation.results import format_figure

    assert format_figure(value, unit) == expected


def test_format_interval_and_estimate_use_the_one_minus_sign():
    from evaluation.results import MINUS, format_estimate, format_figure, format_interval

    assert format_interval(-3.1, -0.94, "points") == f"{MINUS}3.1 to {MINUS}0.9"
    assert format_interval(0.59, 0.7, "proportion") == "59% to 70%"
    assert format_interval(None, 0.7, "proportion") == "–"
    assert format_estimate(0.65, 0.59, 0.70, "proportion") == "65% (59% to 70%)"
    assert format_estimate(-2.0, -3.1, -0.9, "points") == (
        f"{MINUS}2.0 ({MINUS}3.1 to {MINUS}0.9)")
    assert format_estimate(0.78, None, None, "rate ratio") == "0.78"
    assert format_figure(0.78, "rate ratio", signed=True) == "+0.78"
    assert format_figure(2.0, "points", signed=False) == "2.0"
    assert "-" not in format_figure(-1.5, "rate ratio")  # never a hyphen for a minus


def test_no_tracking_module_says_alpha():
    """Tracking says ``confidence=`` like every other analysis."""
    for path in sorted((EVALUATION / "tracking").glob("*.py")):
        assert "alpha" not in path.read_text(encoding="utf-8").replace("alphabet", ""), path
