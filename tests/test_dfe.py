"""Tests for evaluation.dfe: the DfE exclusions files read into tidy LA-by-year tables."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd
import pytest

from evaluation import dfe, its
from evaluation.errors import DataError

# sha256 prefixes recorded in /work/shared/reference/SOURCES.md
CHECKSUMS = {dfe.OLD_FILE: "338260d3b24608e6", dfe.LAIT_FILE: "d51173157c45ad96"}


@pytest.fixture(scope="module")
def old() -> pd.DataFrame:
    return dfe.read_exclusions_2006_2017(school_type=None)


@pytest.fixture(scope="module")
def lait() -> pd.DataFrame:
    return dfe.read_exclusions_lait(school_type=None)


@pytest.mark.parametrize("name", sorted(CHECKSUMS))
def test_raw_files_are_unchanged_copies(name):
    path = dfe.RAW_DIR / name
    assert path.stat().st_size < 3_000_000
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(CHECKSUMS[name])


def test_parse_academic_year_forms():
    s = pd.Series(["201213", "2012/13", "2012-13", " 2099/00 "])
    out = dfe.parse_academic_year(s)
    assert out.tolist()[:3] == [pd.Timestamp("2012-08-01")] * 3
    assert out.iloc[3] == pd.Timestamp("2099-08-01")
    with pytest.raises(DataError, match=r"Column 'year': row 3 \('2012/14'\)"):
        dfe.parse_academic_year(pd.Series(["2011/12", "2012/14"]))


def test_to_number_markers_and_float_noise():
    s = pd.Series(["8.4430000000000005E-2", "x", "c", "z", "-", ".", ":", "12", ""])
    out, n_missing = dfe.to_number(s, "Values")
    assert out.iloc[0] == 0.08443 and out.iloc[7] == 12.0
    assert out.iloc[1:7].isna().all() and np.isnan(out.iloc[8])
    assert n_missing == 6
    with pytest.raises(DataError, match=r"Column 'v': row 4 is neither"):
        dfe.to_number(pd.Series(["1", "2", "three"]), "v")


def test_old_file_tidy_table(old):
    eng = old[(old["la_name"] == "England") & (old["school_type"] == "Total")]
    assert len(eng) == 11
    assert eng["period_start"].min() == pd.Timestamp("2006-08-01")
    row = eng[eng["academic_year"] == "2012/13"].iloc[0]
    assert (row["headcount"], row["perm_excl"], row["fixed_excl"]) == (7616870, 4630, 267520)
    assert row["fixed_excl_rate"] == 3.51
    # rates are percentages of headcount
    assert 100 * row["fixed_excl"] / row["headcount"] == pytest.approx(3.51, abs=0.005)
    # "x" cells are missing and counted
    raw = pd.read_csv(dfe.RAW_DIR / dfe.OLD_FILE, dtype=str, keep_default_na=False)
    n_x = int((raw["perm_excl"] == "x").sum())
    assert old.attrs["missing"]["perm_excl"] == n_x > 0
    assert "NULL" not in set(old["la_name"])


@pytest.mark.parametrize("school_type", ["Total", "Primary", "Secondary", "Special"])
def test_england_figures_agree_where_the_files_overlap(old, lait, school_type):
    a = old[(old["la_name"] == "England") & (old["school_type"] == school_type)]
    b = lait[(lait["la_name"] == "England") & (lait["school_type"] == school_type)]
    both = a.merge(b, on="period_start", suffixes=("_old", "_new"))
    assert both["academic_year_old"].tolist() == ["2015/16", "2016/17"]
    for col in ("perm_excl_rate", "fixed_excl_rate", "one_plus_fixed_rate"):
        # the old file rounds to 2 decimals; LAIT keeps 5
        diff = (both[f"{col}_old"] - both[f"{col}_new"]).abs()
        assert (diff <= 0.005 + 1e-9).all(), (col, both[[f"{col}_old", f"{col}_new"]])


def test_local_authorities_agree_where_the_files_overlap(old, lait):
    a = old[(old["level"] == "Local authority") & (old["school_type"] == "Total")]
    b = lait[(lait["level"] == "Local authority") & (lait["school_type"] == "Total")]
    both = a.merge(b, on=["la_name", "period_start"], suffixes=("_old", "_new")).dropna(
        subset=["fixed_excl_rate_old", "fixed_excl_rate_new"])
    assert both["la_name"].nunique() > 140
    diff = (both["fixed_excl_rate_old"] - both["fixed_excl_rate_new"]).abs()
    assert (diff <= 0.005 + 1e-9).mean() > 0.99


def test_lait_table(lait):
    assert lait["period_start"].min() == pd.Timestamp("2015-08-01")
    assert lait["period_start"].max() == pd.Timestamp("2023-08-01")
    assert set(lait["school_type"]) == {"Total", "Primary", "Secondary", "Special"}
    assert lait.attrs["missing"]["fixed_excl_rate"] > 0
    eng = lait[(lait["la_name"] == "England") & (lait["school_type"] == "Total")]
    assert eng["level"].iloc[0] == "National" and len(eng) == 9


def test_yearly_series_feed_fit_with_six_pre_and_five_post_points():
    table = dfe.read_exclusions_2006_2017(level="Local authority")
    leeds = table[table["la_name"] == "Leeds"]
    with pytest.warns(its.ITSPowerWarning):
        r = its.fit(leeds, time="period_start", outcome="fixed_excl", exposure="headcount",
                    interruption="2012-09-01")
    assert r.frequency == "yearly"
    assert (r.diagnostics["n_pre"], r.diagnostics["n_post"]) == (6, 5)
    assert r.counterfactual["label"].iloc[6] == "2012/13"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        many = its.fit_many(table, "la_name", time="period_start", outcome="fixed_excl",
                            exposure="headcount", interruption="2012-09-01")
    status = many.effects.drop_duplicates("unit")["status"]
    assert (status != "error").sum() >= 140
    assert many.pooled.set_index("term").loc["level change", "k"] >= 140
