"""Tests of evaluation.audits against hand counts, scipy's binomtest and wilcoxon, and an
exact enumeration of the signed-rank distribution."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from evaluation.audits import (
    ALL_AREAS,
    EMERGING_ESTABLISHED_ADVANCED,
    SELF_EVALUATION_CAUTION,
    Audit,
    AuditChange,
    ChosenComparison,
    audit_change,
    chosen_vs_others,
    school_changes,
)
from evaluation.errors import DataError
from evaluation.results import AnalysisResult

AUDIT = Audit(id="wb", title="Wellbeing audit", levels=EMERGING_ESTABLISHED_ADVANCED,
              areas=[{"id": "culture", "label": "Culture and ethos"},
                     {"id": "voice", "label": "Pupil voice"},
                     {"id": "policy", "label": "Policy in place", "levels": ["No", "Yes"]}])

# school: (culture before, after), (voice before, after), (policy before, after), chosen
ROWS = {
    "S1": (("Emerging", "Established"), ("Emerging", "Emerging"), ("No", "Yes"), {"culture"}),
    "S2": (("Established", "Advanced"), ("Established", "Established"), ("Yes", "Yes"),
           {"culture"}),
    "S3": (("Emerging", "Advanced"), ("Established", "Emerging"), ("No", "No"), {"voice"}),
    "S4": (("Established", "Established"), ("Emerging", "Established"), ("No", "Yes"),
           {"voice", "policy"}),
    "S5": (("Advanced", "Established"), ("Emerging", "Established"), ("Yes", "No"),
           {"culture"}),
    "S6": (("Emerging", "Established"), ("Advanced", "Advanced"), ("No", "Yes"), {"policy"}),
    "S7": (("Established", "Advanced"), ("Emerging", "Advanced"), ("No", "No"), {"voice"}),
}


def _ratings() -> pd.DataFrame:
    rows = []
    for school, (*areas, chosen) in ROWS.items():
        for area, (before, after) in zip(("culture", "voice", "policy"), areas, strict=True):
            for tp, rating in (("baseline", before), ("follow_up", after)):
                rows.append({"school_id": school, "area": area, "timepoint": tp,
                             "rating": rating, "chosen": "Y" if area in chosen else "N"})
    return pd.DataFrame(rows)


def _exact_wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided exact signed-rank p-value by enumerating every sign pattern (no ties)."""
    ranks = stats.rankdata(np.abs(d))
    w_plus = ranks[d > 0].sum()
    totals = [sum(r for r, s in zip(ranks, signs, strict=True) if s)
              for signs in itertools.product([0, 1], repeat=len(d))]
    mean = ranks.sum() / 2
    extreme = [t for t in totals if abs(t - mean) >= abs(w_plus - mean) - 1e-12]
    return len(extreme) / len(totals)


def test_counts_and_tests_per_area_against_hand_counts_and_scipy():
    res = audit_change(_ratings(), AUDIT)
    assert isinstance(res, AuditChange) and isinstance(res, AnalysisResult)
    s = res.summary.set_index("area")
    # culture changes (levels): S1 +1, S2 +1, S3 +2, S4 0, S5 -1, S6 +1, S7 +1
    assert s.loc["culture", ["n_up", "n_same", "n_down"]].tolist() == [5, 1, 1]
    assert s.loc["voice", ["n_up", "n_same", "n_down"]].tolist() == [3, 3, 1]
    assert s.loc["policy", ["n_up", "n_same", "n_down"]].tolist() == [3, 3, 1]
    assert s.loc["culture", "sign_test_p"] == pytest.approx(stats.binomtest(5, 6).pvalue)
    assert s.loc["culture", "sign_test_p"] == pytest.approx(2 * (1 + 6) / 64)  # by hand
    d = np.array([1, 1, 2, 0, -1, 1, 1], dtype=float)
    w = stats.wilcoxon(d, zero_method="wilcox")
    assert s.loc["culture", "wilcoxon_p"] == pytest.approx(w.pvalue)
    # W = the smaller rank sum: ranks of |d| among the non-zero changes, ties averaged
    ranks = stats.rankdata(np.abs(d[d != 0]))
    assert s.loc["culture", "wilcoxon_W"] == pytest.approx(ranks[d[d != 0] < 0].sum())
    assert s.loc["culture", "up_share"] == pytest.approx(5 / 6)
    ci = stats.binomtest(5, 6).proportion_ci(method="exact")
    assert s.loc["culture", "up_share_ci_low"] == pytest.approx(ci.low)
    assert s.loc["culture", "mean_change"] == pytest.approx(5 / 7)


def test_overall_row_uses_each_schools_mean_change():
    res = audit_change(_ratings(), AUDIT)
    per = {"S1": (1 + 0 + 1) / 3, "S2": 1 / 3, "S3": (2 - 1 + 0) / 3, "S4": (0 + 1 + 1) / 3,
           "S5": (-1 + 1 - 1) / 3, "S6": (1 + 0 + 1) / 3, "S7": (1 + 2 + 0) / 3}
    d = np.array(list(per.values()))
    row = res.row(ALL_AREAS)
    assert [row["n_up"], row["n_same"], row["n_down"]] == [6, 0, 1]
    assert row["mean_change"] == pytest.approx(d.mean())
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    h = res.headline()
    assert h["null"] == 0.5 and h["n"] == 7 and h["estimate"] == pytest.approx(6 / 7)
    assert SELF_EVALUATION_CAUTION in res.sentence


def test_wilcoxon_against_exact_enumeration():
    # six schools, four statements each: mean changes of distinct size (no ties)
    changes = {"S1": [1, 0, 0, 0], "S2": [-1, -1, 0, 0], "S3": [1, 1, 1, 0],
               "S4": [1, 1, 1, 1], "S5": [2, 1, 1, 1], "S6": [2, 2, 1, 1]}
    levels = EMERGING_ESTABLISHED_ADVANCED
    rows = []
    for school, items in changes.items():
        for k, c in enumerate(items):
            before = 1 if c < 0 else 0
            rows += [{"school_id": school, "area": "culture", "item": f"i{k}",
                      "timepoint": "baseline", "rating": levels[before]},
                     {"school_id": school, "area": "culture", "item": f"i{k}",
                      "timepoint": "follow_up", "rating": levels[before + c]}]
    res = audit_change(pd.DataFrame(rows), AUDIT)
    d = np.array([sum(v) / 4 for v in changes.values()])
    row = res.row("culture")
    assert row["mean_change"] == pytest.approx(d.mean())
    assert row["wilcoxon_p"] == pytest.approx(_exact_wilcoxon_p(d))
    # by hand: the falls' rank sum is 2; sign patterns with a rank sum of 2 or less are
    # {}, {1}, {2}: 3 of 64, doubled for two sides
    assert row["wilcoxon_p"] == pytest.approx(6 / 64)
    assert row["wilcoxon_W"] == 2.0  # the rank of the one fall


def test_transition_tables_and_yes_no_items():
    res = audit_change(_ratings(), AUDIT)
    culture = res.transitions["culture"]
    assert culture.loc["Emerging", "Established"] == 2
    assert culture.loc["Emerging", "Advanced"] == 1
    assert culture.loc["Advanced", "Established"] == 1
    assert culture.to_numpy().sum() == 7
    policy = res.transitions["policy"]
    assert list(policy.index) == ["No", "Yes"]
    assert policy.loc["No", "Yes"] == 3 and policy.loc["Yes", "No"] == 1


def test_statements_within_an_area_are_averaged_per_school():
    rows = []
    for school, (a, b) in {"S1": (("Emerging", "Advanced"), ("Advanced", "Emerging")),
                           "S2": (("Emerging", "Established"), ("Emerging", "Emerging"))
                           }.items():
        for item, (before, after) in zip(("i1", "i2"), (a, b), strict=True):
            rows += [{"school_id": school, "area": "culture", "item": item,
                      "timepoint": "baseline", "rating": before},
                     {"school_id": school, "area": "culture", "item": item,
                      "timepoint": "follow_up", "rating": after}]
    ch = school_changes(pd.DataFrame(rows), AUDIT).set_index("school_id")
    assert ch.loc["S1", "change"] == 0 and ch.loc["S2", "change"] == 0.5
    res = audit_change(pd.DataFrame(rows), AUDIT, min_schools=2)
    assert res.transitions["culture"].to_numpy().sum() == 4  # statements, not schools
    assert res.row("culture")["n_up"] == 1 and res.row("culture")["n_same"] == 1


def test_chosen_areas_against_others_by_hand():
    res = chosen_vs_others(_ratings(), AUDIT)
    assert isinstance(res, ChosenComparison) and isinstance(res, AnalysisResult)
    # chosen minus others per school (levels)
    hand = {"S1": 1 - (0 + 1) / 2, "S2": 1 - 0, "S3": -1 - (2 + 0) / 2,
            "S4": (1 + 1) / 2 - 0, "S5": -1 - (1 - 1) / 2, "S6": 1 - (1 + 0) / 2,
            "S7": 2 - (1 + 0) / 2}
    d = np.array(list(hand.values()))
    assert res.difference == pytest.approx(d.mean())
    ci = stats.ttest_1samp(d, 0).confidence_interval()
    assert (res.ci_low, res.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert (res.n_more, res.n_same, res.n_less) == (5, 0, 2)
    assert res.sign_test_p == pytest.approx(stats.binomtest(5, 7).pvalue)
    rec = res.record(SimpleNamespace(id="ap", measure=None, direction="higher_is_better"))
    assert rec.analysis == "audit"


def test_focus_on_one_area_and_record():
    res = audit_change(_ratings(), AUDIT, area="culture")
    assert res.headline()["estimate"] == pytest.approx(5 / 6)
    assert "in Culture and ethos" in res.sentence
    rec = res.record(SimpleNamespace(id="ethos", measure=None, direction="higher_is_better"))
    assert rec.analysis == "audit" and rec.n == 7 and "Culture and ethos" in rec.headline
    assert res.headline()["verdict"] == "no clear change"  # 5 of 6 with n = 7: wide CI
    few = audit_change(_ratings(), AUDIT, min_schools=10)
    assert "fewer than the 10" in few.sentence
    res.plot()
    res.heatmap()
    chosen_vs_others(_ratings(), AUDIT).plot()


def test_areas_may_be_named_by_their_label():
    named = _ratings()
    named["area"] = named["area"].map({"culture": "Culture and ethos", "voice": "PUPIL VOICE",
                                       "policy": "policy"})
    a = audit_change(named, AUDIT).summary
    b = audit_change(_ratings(), AUDIT).summary
    pd.testing.assert_frame_equal(a, b)


def test_bad_ratings_are_refused():
    bad = _ratings()
    bad.loc[0, "rating"] = "Secure"
    with pytest.raises(DataError, match="not one of its levels"):
        audit_change(bad, AUDIT)
    dup = pd.concat([_ratings(), _ratings().iloc[[0]]])
    with pytest.raises(DataError, match="twice"):
        audit_change(dup, AUDIT)
    with pytest.raises(DataError, match="no 'chosen' column"):
        chosen_vs_others(_ratings().drop(columns="chosen"), AUDIT)
    with pytest.raises(ValidationError):
        Audit(id="x", areas=[{"id": "a"}, {"id": "a"}])
