"""Tests for evaluation.filters: row filters from the parameters file are parsed by a small
grammar and never run as code (issue #17: ``@pd.io.common.os.system(...)`` in
``disproportionality_group`` ran a command through ``DataFrame.query``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.filters import FilterError, parse_filter
from evaluation.project import open_project

from .conftest import REPO

PWNED = Path("/tmp/evalkit_pwned")


@pytest.fixture(scope="module")
def demo_pupils(tmp_path_factory) -> pd.DataFrame:
    project = open_project(REPO / "params" / "demo.yaml",
                           tmp_path_factory.mktemp("filters") / "results.json")
    return project.table(project.params.analyses.referral_tracking.pupils)


@pytest.fixture()
def pupils() -> pd.DataFrame:
    return pd.DataFrame({
        "sex": ["M", "F", "M", None, "F"],
        "year_group": [3, 4, 5, 6, np.nan],
        "fsm": pd.array([True, False, True, None, False], dtype="boolean"),
        "ethnicity": ["Black", "White", "Asian", "White", None],
        "score": [1.5, 2.0, -1.0, 3.25, 0.0],
    })


def test_the_demo_group_gives_the_same_pupils_as_pandas_query(demo_pupils):
    text = "ethnicity_minor == 'Black Caribbean' and sex == 'M'"
    want = demo_pupils.eval(text).to_numpy(dtype=bool)  # trusted text, for comparison only
    got = parse_filter(text).mask(demo_pupils)
    assert got.dtype == bool and got.shape == (len(demo_pupils),)
    assert got.sum() > 50 and (got == want).all()
    assert parse_filter(text).columns == ["ethnicity_minor", "sex"]


HOSTILE = [
    "x == 1 @pd.io.common.os.system('touch /tmp/evalkit_pwned')",
    "__import__('os').system('id')",
    # the form pandas' eval really runs (on a known column it executes the command)
    "sex == 'M' or @pd.io.common.os.system('touch /tmp/evalkit_pwned') == 0",
    "sex.str.len() > 0",
    "a == b",
    "(a == 1",
    "a = 1",
    "a == 1; b == 2",
    "",
    "   ",
    "a == " + "1" * 1995,  # 2,000 characters
    "sex == 'M' or" + " sex == 'F' or" * 150 + " sex == 'M'",
    "sex in ['M', __import__('os')]",
    "sex == 'M' and",
    "not",
    "sex in []",
    "(" * 400 + "sex == 'M'" + ")" * 400,  # deep nesting: refused, not a RecursionError
    "not " * 240 + "sex == 'M'",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_or_malformed_expressions_are_refused_and_run_nothing(text, pupils,
                                                                      monkeypatch):
    PWNED.unlink(missing_ok=True)
    ran = []
    # nothing may reach Python's or pandas' evaluators
    monkeypatch.setattr(pd.DataFrame, "eval", lambda *a, **k: ran.append("eval"))
    monkeypatch.setattr(pd.DataFrame, "query", lambda *a, **k: ran.append("query"))
    with pytest.raises(FilterError):
        parse_filter(text).mask(pupils.assign(x=1, a=1, b=2))
    assert not ran
    assert not PWNED.exists()


def test_refusals_say_where_the_text_went_wrong():
    with pytest.raises(FilterError, match="unexpected character '@'"):
        parse_filter("x == 1 @pd.io.common.os.system('touch /tmp/evalkit_pwned')")
    with pytest.raises(FilterError, match="expected a value"):
        parse_filter("a == b")
    with pytest.raises(FilterError, match="expected '\\)'"):
        parse_filter("(a == 1")
    with pytest.raises(FilterError, match="empty"):
        parse_filter("")
    with pytest.raises(FilterError, match="longer than 1,000"):
        parse_filter("a == " + "1" * 1995)


def test_an_unknown_column_is_refused(pupils):
    with pytest.raises(FilterError, match="no column 'postcode'"):
        parse_filter("postcode == 'AB1'").mask(pupils)


def mask(text: str, frame: pd.DataFrame) -> list[bool]:
    return parse_filter(text).mask(frame).tolist()


def test_comparisons_in_not_in_not_and_or(pupils):
    assert mask("sex == 'M'", pupils) == [True, False, True, False, False]
    assert mask('sex != "M"', pupils) == [False, True, False, False, True]
    assert mask("ethnicity in ['Black', 'Asian']", pupils) == [True, False, True, False, False]
    assert mask("ethnicity not in ['White']", pupils) == [True, False, True, False, False]
    assert mask("not sex == 'M'", pupils) == [False, True, False, True, True]
    assert mask("sex == 'F' or year_group >= 5", pupils) == [False, True, True, True, True]
    assert mask("(sex == 'M' or sex == 'F') and not year_group < 4", pupils) == [
        False, True, True, False, True]  # a missing year group is not "< 4"


def test_numbers_booleans_and_missing_values(pupils):
    assert mask("year_group > 4", pupils) == [False, False, True, True, False]
    assert mask("year_group == 3", pupils) == [True, False, False, False, False]
    assert mask("score < -0.5", pupils) == [False, False, True, False, False]
    assert mask("score <= 2.0", pupils) == [True, True, True, False, True]
    assert mask("fsm == true", pupils) == [True, False, True, False, False]
    assert mask("fsm == False", pupils) == [False, True, False, False, True]
    # a missing value satisfies no comparison, and "not" of one is true
    assert mask("sex in ['M', 'F']", pupils)[3] is False
    assert mask("year_group != 3", pupils) == [False, True, True, True, False]
    assert mask("not year_group == 3", pupils) == [False, True, True, True, True]


def test_a_text_column_compared_with_a_number_is_refused_not_crashed(pupils):
    with pytest.raises(FilterError, match="cannot be compared"):
        parse_filter("sex > 3").mask(pupils)
