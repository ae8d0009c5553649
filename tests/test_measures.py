"""Tests for evaluation.measures: registry, banding, SDQ scoring, SWEMWBS conversion."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluation.errors import DataError, ParamsError
from evaluation.measures import SDQ_ITEMS, band, load_registry, score_sdq, swemwbs_metric

REQUIRED = ["sdq_teacher_total", "sdq_parent_total", "sdq_self_total", "wemwbs", "swemwbs",
            "attendance_pct"]


def test_registry_has_required_measures_each_value_sourced():
    reg = load_registry()
    for name in REQUIRED:
        assert name in reg
    for m in reg.values():
        assert "range" in m.source, m.name
        for key in ("reliability", "sd", "cutoff", "functional", "dysfunctional", "conversion"):
            if getattr(m, key) is not None:
                assert m.source.get(key), (m.name, key)
        if m.bands:
            assert m.source.get("bands"), m.name
    # values that were only recalled are not shipped: the self-report 4-band inner
    # boundaries were not found in a nameable source, so only the close-to-average boundary
    # (Scottish Government HWB census code) is shipped, as two bands
    assert [b[0] for b in reg["sdq_self_total"].bands] == [
        "Close to average", "Slightly raised, high or very high"]
    # UK per-informant alphas (Goodman 2001) were not re-found: the teacher alpha shipped is
    # the Dutch one (van den Heuvel et al. 2017, Table 4); parent and self have none
    assert reg["sdq_teacher_total"].reliability == 0.80
    assert reg["sdq_teacher_total"].reliability_kind == "alpha"
    assert "e0176605" in reg["sdq_teacher_total"].source["reliability"]
    assert reg["sdq_parent_total"].reliability == 0.86  # Dutch parent norms, 6-11 years
    assert "s12955-018-0948-1" in reg["sdq_parent_total"].source["reliability"]
    # self-report: the Dutch alpha of Theunissen et al. (2019), total only
    assert reg["sdq_self_total"].reliability == 0.75
    assert "10.1016/j.acap.2018.12.008" in reg["sdq_self_total"].source["reliability"]
    assert reg["sdq_self_emotional"].reliability is None
    assert reg["wemwbs"].sd is None and reg["wemwbs"].reliability == 0.91
    assert reg["attendance_pct"].reliability is None
    assert reg["sdq_teacher_total"].functional == (6.6, 6.0)


def test_teacher_bands_match_published_table():
    m = load_registry()["sdq_teacher_total"]
    labels = band(pd.Series([0, 11, 12, 15, 16, 18, 19, 40, np.nan]), m)
    assert labels.tolist()[:8] == ["Close to average", "Close to average", "Slightly raised",
                                   "Slightly raised", "High", "High", "Very high", "Very high"]
    assert pd.isna(labels.iloc[8])
    pro = load_registry()["sdq_parent_prosocial"]
    assert band([10, 7, 6, 5], pro).tolist() == ["Close to average", "Slightly lowered", "Low",
                                                 "Very low"]
    with pytest.raises(DataError, match="outside its range"):
        band([41], m)
    with pytest.raises(DataError, match="no published bands"):
        band([50], load_registry()["wemwbs"])


def test_extra_measures_validated():
    extra = {"reading_age_gap": {"label": "reading age gap", "min": -60, "max": 60,
                                 "higher_is_better": True, "reliability": 0.9, "sd": 12,
                                 "source": {"range": "test", "reliability": "manual",
                                            "sd": "manual"}}}
    reg = load_registry(extra)
    assert reg["reading_age_gap"].reliability == 0.9 and "wemwbs" in reg
    bad = {"x": dict(extra["reading_age_gap"], reliability=1.5)}
    with pytest.raises(ParamsError, match="Measure 'x', field 'reliability'"):
        load_registry(bad)
    with pytest.raises(ParamsError, match="Measure 'x', field 'sd'.*no source|field 'source'"):
        load_registry({"x": dict(extra["reading_age_gap"], source={"range": "t"})})
    with pytest.raises(ParamsError, match="Measure 'x', field 'colour'"):
        load_registry({"x": dict(extra["reading_age_gap"], colour="red")})
    with pytest.raises(ParamsError, match="field 'functional'"):
        load_registry({"x": dict(extra["reading_age_gap"], functional=[1, 2, 3])})


def _items(rows):
    cols = [SDQ_ITEMS[i][0] for i in range(1, 26)]
    return pd.DataFrame(rows, columns=cols)


def test_score_sdq_reversed_items_and_prorating():
    all_zero = [0] * 25
    # all "not true": reversed items score 2 each -> conduct 2, hyper 4, peer 4
    one = [2] * 25  # all "certainly true": reversed items score 0
    partial = [np.nan] * 25
    for item in (3, 8, 13):      # emotional: 3 of 5 answered -> prorated
        partial[item - 1] = 1
    for item in (5, 7):          # conduct: only 2 answered -> missing
        partial[item - 1] = 2
    four = [0] * 25
    four[3 - 1], four[8 - 1], four[13 - 1], four[16 - 1], four[24 - 1] = 1, 1, 0, np.nan, 0
    out = score_sdq(_items([all_zero, one, partial, four]), informant="teacher")
    r0 = out.iloc[0]
    assert (r0["emotional"], r0["conduct"], r0["hyperactivity"], r0["peer"],
            r0["prosocial"]) == (0, 2, 4, 4, 0)
    assert r0["total_difficulties"] == 10 and r0["externalising"] == 6
    assert r0["total_band"] == "Close to average"
    r1 = out.iloc[1]
    assert (r1["emotional"], r1["conduct"], r1["hyperactivity"], r1["peer"]) == (10, 8, 6, 6)
    assert r1["total_difficulties"] == 30 and r1["total_band"] == "Very high"
    r2 = out.iloc[2]
    assert r2["emotional"] == 5  # mean 1 over 3 answered -> 5
    assert math.isnan(r2["conduct"]) and math.isnan(r2["total_difficulties"])
    r3 = out.iloc[3]
    assert r3["emotional"] == 3  # 2 over 4 answered: 2.5 rounds half up to 3


def test_score_sdq_text_answers_numbered_columns_and_errors():
    text = {0: "Not True", 1: "somewhat true", 2: "Certainly true"}
    vals = [i % 3 for i in range(25)]
    df = pd.DataFrame([[text[v] for v in vals]], columns=[f"sdq{i}" for i in range(1, 26)])
    num = pd.DataFrame([vals], columns=[f"sdq{i}" for i in range(1, 26)])
    pd.testing.assert_frame_equal(score_sdq(df, "parent"), score_sdq(num, "parent"))
    own = score_sdq(num, "self")  # the self-report total is banded with its own bands
    expected = ["Close to average" if s <= 14 else "Slightly raised, high or very high"
                for s in own["total_difficulties"]]
    assert own["total_band"].tolist() == expected
    bad = num.copy()
    bad.loc[0, "sdq4"] = 3
    with pytest.raises(DataError, match="'sdq4'.*item 4.*row"):
        score_sdq(bad)
    with pytest.raises(DataError, match="25 SDQ item columns"):
        score_sdq(num.drop(columns="sdq25"))


def test_swemwbs_conversion():
    out = swemwbs_metric(pd.Series([7, 20, 35, np.nan]))
    assert out.tolist()[:3] == [7.00, 18.59, 35.00] and math.isnan(out.iloc[3])
    with pytest.raises(DataError, match="SWEMWBS raw totals"):
        swemwbs_metric([6])
    with pytest.raises(DataError):
        swemwbs_metric([20.5])


def test_project_can_refine_a_shipped_measure_field_by_field():
    from evaluation.measures import load_registry

    shipped = load_registry()["sdq_teacher_total"]
    refined = load_registry({"sdq_teacher_total": {
        "reliability": 0.8, "source": {"reliability": "the project's own study"}}})[
        "sdq_teacher_total"]
    assert refined.reliability == 0.8
    assert refined.max == shipped.max and refined.bands == shipped.bands
    assert refined.source["reliability"] == "the project's own study"
    assert refined.source["bands"] == shipped.source["bands"]


def test_registry_rtm_and_attainment_fields_are_sourced_and_consistent():
    reg = load_registry()
    for m in reg.values():
        for key in ("retest", "population_mean", "population_sd"):
            if getattr(m, key) is not None:
                assert m.source.get(key), (m.name, key)
        if m.reliability is not None:
            assert m.reliability_kind in ("alpha", "retest"), m.name
        if m.retest is not None:
            assert m.retest_interval, m.name
        # no shipped measure is an attainment test: EEF months are for attainment only
        assert m.attainment is False, m.name
    t = reg["sdq_teacher_total"]
    assert (t.population_mean, t.population_sd) == (6.6, 6.0) == t.functional
    assert t.retest == 0.62 and t.retest_interval == "4 to 6 months"
    assert "mean: 0.62" in t.source["retest"] and "Stand-in" in t.source["retest"]
    # subscales: the mean retest over all scales is not used for single subscales
    assert reg["sdq_teacher_emotional"].retest is None
    # UK self norms were not re-found: the Dutch ones (Vugteveen et al. 2022) are shipped
    s = reg["sdq_self_total"]
    assert (s.population_mean, s.population_sd) == (8.6, 5.0) == s.functional
    assert "Dutch" in s.source["population_mean"] and "Dutch" in s.source["functional"]
    assert s.retest == 0.62 and "Stand-in" in s.source["retest"]
    assert reg["sdq_self_emotional"].retest is None
    alphas = {s: reg[f"sdq_teacher_{s}"].reliability for s in
              ("emotional", "conduct", "hyperactivity", "peer", "prosocial")}
    assert alphas == {"emotional": 0.73, "conduct": 0.64, "hyperactivity": 0.86, "peer": 0.60,
                      "prosocial": 0.81}


@pytest.mark.parametrize("scale,boys,girls", [
    # UK 1999 parent norms by sex, [mean, sd] (../shared/reference/measures.yaml, verified)
    ("total", (9.1, 6.0), (7.8, 5.5)),
    ("emotional", (1.8, 2.0), (2.0, 2.0)),
    ("conduct", (1.7, 1.8), (1.5, 1.6)),
    ("hyperactivity", (4.0, 2.7), (2.9, 2.4)),
    ("peer", (1.5, 1.7), (1.4, 1.6)),
    ("prosocial", (8.4, 1.7), (8.9, 1.4)),
])
def test_parent_population_norms_are_the_pooled_sex_norms(scale, boys, girls):
    # independent computation: pool two simulated samples with exactly these moments
    nb, ng = 5153, 5145
    rng = np.random.default_rng(0)

    def sample(mean, sd, n):
        z = rng.standard_normal(n)
        return mean + sd * (z - z.mean()) / z.std(ddof=1)

    both = np.concatenate([sample(*boys, nb), sample(*girls, ng)])
    m = load_registry()[f"sdq_parent_{scale}"]
    assert m.population_mean == pytest.approx(round(both.mean(), 2), abs=0.0051)
    assert m.population_sd == pytest.approx(round(both.std(ddof=1), 2), abs=0.0051)
    if scale == "total":  # the J&T functional norm and the SD are the same pooled values
        assert m.functional == (m.population_mean, m.population_sd) and m.sd == m.population_sd


def test_new_registry_fields_validated():
    base = {"label": "reading", "min": 0, "max": 100, "higher_is_better": True,
            "source": {"range": "test"}}
    ok = load_registry({"reading": dict(base, attainment=True, retest=0.8,
                                        retest_interval="1 year", population_mean=50,
                                        population_sd=10, reliability=0.9,
                                        reliability_kind="alpha",
                                        source={"range": "t", "retest": "s",
                                                "population_mean": "s", "population_sd": "s",
                                                "reliability": "s"})})["reading"]
    assert ok.attainment is True and ok.retest == 0.8 and ok.population_sd == 10
    with pytest.raises(ParamsError, match="field 'retest_interval'"):
        load_registry({"x": dict(base, retest=0.8, source={"range": "t", "retest": "s"})})
    with pytest.raises(ParamsError, match="field 'source'.*'retest'"):
        load_registry({"x": dict(base, retest=0.8, retest_interval="1 year")})
    with pytest.raises(ParamsError, match="field 'retest'"):
        load_registry({"x": dict(base, retest=1.0, retest_interval="1 year",
                                 source={"range": "t", "retest": "s"})})
    with pytest.raises(ParamsError, match="field 'reliability_kind'"):
        load_registry({"x": dict(base, reliability_kind="omega")})
    with pytest.raises(ParamsError, match="field 'attainment'"):
        load_registry({"x": dict(base, attainment="yes")})
    with pytest.raises(ParamsError, match="field 'population_mean'.*outside"):
        load_registry({"x": dict(base, population_mean=150,
                                 source={"range": "t", "population_mean": "s"})})
    with pytest.raises(ParamsError, match="field 'population_sd'"):
        load_registry({"x": dict(base, population_sd=0,
                                 source={"range": "t", "population_sd": "s"})})


# --- issue #19 item 10: SDQ values with their published sources -------------------------

# (measure, field, value as published, a fragment of the citation the source must carry)
PUBLISHED_SDQ = [
    ("sdq_teacher_total", "reliability", 0.80, "e0176605"),        # van den Heuvel 2017 T4
    ("sdq_teacher_hyperactivity", "reliability", 0.86, "e0176605"),
    ("sdq_parent_total", "reliability", 0.86, "s12955-018-0948-1"),  # Dutch norms 2018 T2
    ("sdq_self_total", "reliability", 0.75, "10.1016/j.acap.2018.12.008"),  # Theunissen 2019
    ("sdq_teacher_total", "population_mean", 6.6, "PMC4830858"),
    ("sdq_teacher_total", "population_sd", 6.0, "PMC4830858"),
    ("sdq_teacher_total", "retest", 0.62, "mean: 0.62"),            # Goodman 2001 abstract
    ("sdq_parent_total", "retest", 0.62, "mean: 0.62"),
    ("sdq_self_total", "retest", 0.62, "mean: 0.62"),
    # Vugteveen et al. 2022 Table 2, self-reported, both sexes: M (SD)
    ("sdq_self_total", "population_mean", 8.6, "Vugteveen"),
    ("sdq_self_total", "population_sd", 5.0, "Vugteveen"),
    ("sdq_self_emotional", "population_mean", 2.3, "Vugteveen"),
    ("sdq_self_emotional", "population_sd", 2.1, "Vugteveen"),
    ("sdq_self_conduct", "population_mean", 1.3, "Vugteveen"),
    ("sdq_self_conduct", "population_sd", 1.3, "Vugteveen"),
    ("sdq_self_hyperactivity", "population_mean", 3.7, "Vugteveen"),
    ("sdq_self_hyperactivity", "population_sd", 2.4, "Vugteveen"),
    ("sdq_self_peer", "population_mean", 1.4, "Vugteveen"),
    ("sdq_self_peer", "population_sd", 1.6, "Vugteveen"),
    ("sdq_self_prosocial", "population_mean", 8.1, "Vugteveen"),
    ("sdq_self_prosocial", "population_sd", 1.6, "Vugteveen"),
]


@pytest.mark.parametrize("name,key,value,cited", PUBLISHED_SDQ)
def test_each_shipped_sdq_value_is_the_published_one_with_its_source(name, key, value, cited):
    m = load_registry()[name]
    assert getattr(m, key) == value
    assert cited in m.source[key], (name, key)


def test_self_report_norms_are_one_consistent_sample():
    reg = load_registry()
    for scale in ("total", "emotional", "conduct", "hyperactivity", "peer", "prosocial"):
        m = reg[f"sdq_self_{scale}"]
        # the J&T functional norm and the RCI SD are the same Dutch sample
        assert m.functional == (m.population_mean, m.population_sd) and m.sd == m.population_sd
        assert "s13034-021-00437-8" in m.source["functional"]
        assert "Dutch" in m.source["functional"] and "not the UK one" in m.source["functional"]
    # the four difficulty means add up to the total's, to the table's rounding
    parts = sum(reg[f"sdq_self_{s}"].population_mean
                for s in ("emotional", "conduct", "hyperactivity", "peer"))
    assert parts == pytest.approx(reg["sdq_self_total"].population_mean, abs=0.25)


def test_every_missing_sdq_reliability_or_retest_says_why():
    for name, m in load_registry().items():
        if not name.startswith("sdq_"):
            continue
        for key in ("reliability", "retest"):
            if getattr(m, key) is None:
                assert m.source.get(key, "").startswith("Not shipped"), (name, key)
            else:
                assert m.source[key] and not m.source[key].startswith("Not shipped")


def _scotgov_close_to_average(scale: str, score: float) -> bool:
    # independent re-statement of ScotGovAnalysis/hwb-census
    # code/12d_mental_health_and_wellbeing_sdq.R (commit 21cc7c62a0...): "Newer 4-band"
    limits = {"total": 14, "emotional": 4, "conduct": 3, "hyperactivity": 5, "peer": 2}
    return score >= 7 if scale == "prosocial" else score <= limits[scale]


@pytest.mark.parametrize("scale", ["total", "emotional", "conduct", "hyperactivity", "peer",
                                   "prosocial"])
def test_self_report_bands_follow_the_scottish_census_boundaries(scale):
    m = load_registry()[f"sdq_self_{scale}"]
    assert "ScotGovAnalysis/hwb-census" in m.source["bands"]
    assert "21cc7c62a02638c77f86378d0d6e6d128b6adebe" in m.source["bands"]
    scores = np.arange(0, m.max + 1)
    got = band(scores, m).tolist()
    assert got == ["Close to average" if _scotgov_close_to_average(scale, s) else
                   m.bands[1][0] for s in scores]


def test_new_project_sdq_self_total_gets_reliable_change_and_rtm_without_numbers():
    """A project that names only ``sdq_self_total`` gets both analyses from the registry."""
    import statsmodels.api as sm

    from evaluation.baseline_followup import RETEST_RANGE, headline_change, reliable_change
    from evaluation.rtm import rtm_adjust, rtm_inputs_missing

    m = load_registry()["sdq_self_total"]  # what a new project's outcome resolves to
    assert rtm_inputs_missing(m) == []
    # Reliable change (Jacobson & Truax 1991): SE = SD sqrt(1 - alpha), S_diff = sqrt(2) SE
    threshold = 1.96 * math.sqrt(2) * 5.0 * math.sqrt(1 - 0.75)  # 6.93 points
    base = np.array([20, 20, 20, 20, 18, 25, 16, 22, 19, 21, 24, 17], dtype=float)
    change = np.array([-7, -6, 7, 0, -3, -10, 2, -8, 1, -4, -12, 5], dtype=float)
    d = pd.DataFrame({"baseline": base, "follow_up": base + change})
    rc = reliable_change(d, "baseline", "follow_up", measure=m)
    assert rc.points_needed == pytest.approx(threshold)
    expected = np.where(change <= -threshold, "reliably improved",
                        np.where(change >= threshold, "reliably deteriorated",
                                 "no reliable change"))
    assert rc.pupils["reliable_change"].astype(str).tolist() == expected.tolist()
    # J&T criterion b from the functional norm alone: mean + 2 SD (lower is better)
    assert rc.criterion == "b" and rc.cutoff == pytest.approx(8.6 + 2 * 5.0)

    # Regression to the mean (Barnett et al. 2005), checked against OLS with an offset
    rng = np.random.default_rng(11)
    x = rng.integers(15, 30, 40).astype(float)
    y = np.clip(np.round(8.6 + 0.62 * (x - 8.6) + rng.normal(0, 4, 40)), 0, 40)
    res = rtm_adjust(x, y, measure=m)
    ols = sm.OLS(y - 8.6 - 0.62 * (x - 8.6), np.ones_like(x)).fit()
    assert res.population_mean == 8.6 and res.retest == 0.62
    assert res.retest_interval == "4 to 6 months"
    assert res.adjusted_change == pytest.approx(ols.params[0])
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(ols.conf_int(0.05)[0]))
    # and the single-group headline allows for it, over the kit's retest range
    h = headline_change(pd.DataFrame({"baseline": x, "follow_up": y}), comparison=False,
                        measure=m).headline()
    assert h["adjusted_for_rtm"]
    wide = rtm_adjust(x, y, measure=m, retest_range=RETEST_RANGE)
    assert (h["estimate"], h["ci_low"], h["ci_high"]) == pytest.approx(
        (wide.adjusted_change, wide.ci_low, wide.ci_high))
