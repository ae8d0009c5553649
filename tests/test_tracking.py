"""Tests for evaluation.tracking (intervention tracking for referred pupils)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402
from statsmodels.duration.survfunc import SurvfuncRight, survdiff  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

from evaluation import tracking as T  # noqa: E402
from evaluation.errors import DataError  # noqa: E402
from evaluation.results import NOT_A_CHANGE  # noqa: E402

D = pd.to_datetime


def referrals_frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["referral_id", "pupil_id", "referral_date", "first_response_date",
            "lead_professional", "closure_date", "closure_outcome"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("referral_date", "first_response_date", "closure_date"):
        df[c] = D(df[c])
    df["school_id"] = "S1"
    df["reason"] = "anxiety"
    return df


def interventions_frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["intervention_id", "referral_id", "intervention", "start_date", "end_date",
            "sessions_planned", "sessions_attended", "cost"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("start_date", "end_date"):
        df[c] = D(df[c])
    return df


def reviews_frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["review_id", "referral_id", "review_date", "attendance_improved",
            "ready_to_learn", "on_track"]
    df = pd.DataFrame(rows, columns=cols)
    df["review_date"] = D(df["review_date"])
    return df


EMPTY_REVIEWS = reviews_frame([])


# ------------------------------------------------------------------ KPIs on a hand register


@pytest.fixture
def small_register() -> T.Register:
    refs = referrals_frame([
        ("A1", "P1", "2023-10-02", "2023-10-04", "EP", "2023-12-15", "needs met"),
        ("A2", "P2", "2023-10-06", "2023-10-12", None, None, None),
        ("A3", "P3", "2023-11-06", None, "SW", "2024-01-10", "school move"),
        ("A4", "P4", "2023-12-22", "2023-12-27", "EP", None, None),
        ("S1", "P5", "2024-03-26", None, None, None, None),
    ])
    ivs = interventions_frame([
        ("I1", "A1", "mentoring", "2023-10-12", None, 10, 8, 500.0),
        ("I2", "A2", "play therapy", "2023-10-26", None, 10, 5, 300.0),
        ("I3", "A4", "mentoring", "2024-01-11", None, 6, None, 200.0),
    ])
    rvs = reviews_frame([
        ("V1", "A1", "2023-12-01", True, True, True),
        ("V2", "A4", "2024-02-01", False, True, None),
    ])
    return T.build_register(refs, ivs, rvs, today="2024-03-28")


def kpi(k: pd.DataFrame, period: str, name: str) -> pd.Series:
    row = k[(k["period"] == period) & (k["kpi"] == name)]
    assert len(row) == 1, (period, name)
    return row.iloc[0]


def test_kpis_exact_on_hand_made_register(small_register):
    kpis = T.pathway_kpis(small_register, 2, "term", targets={
        "pct_response_within_target": {"green": 90, "amber": 50},
        "median_working_days_to_response": {"green": 2, "amber": 3},
        "pct_lead_professional": {"green": 90, "amber": 80},
    })
    k = kpis.summary
    assert not k.attrs  # the settings live on the result, not in DataFrame.attrs
    assert (kpis.response_target_working_days, kpis.period) == (2, "term")
    assert list(k.columns) == ["period", "kpi", "value", "n", "target", "rag"]
    a = "2023/24 autumn"
    expect = {
        "referrals_received": (4, 4),
        # within: A1 (2 wd), A4 (1 wd over Christmas); due: A1, A2, A4 + A3 overdue
        "pct_response_within_target": (50.0, 4),
        "median_working_days_to_response": (2.0, 3),
        "p90_working_days_to_response": (3.6, 3),  # [1, 2, 4] at 0.9: 2 + 0.8 * 2
        "median_days_to_first_intervention": (20.0, 3),
        "p90_days_to_first_intervention": (20.0, 3),
        "pct_lead_professional": (75.0, 4),
        "pct_sessions_attended": (65.0, 20),  # (8 + 5) / (10 + 10); A4 has no attended
        "pct_reviewed": (200 / 3, 3),
        "closures: needs met": (1, 1),
        "closures: school move": (0, 1),
    }
    for name, (value, n) in expect.items():
        row = kpi(k, a, name)
        assert row["value"] == pytest.approx(value), name
        assert row["n"] == n, name
    assert kpi(k, a, "pct_response_within_target")["rag"] == "amber"
    assert kpi(k, a, "median_working_days_to_response")["rag"] == "green"
    assert kpi(k, a, "pct_lead_professional")["rag"] == "red"
    s = "2023/24 spring"
    assert kpi(k, s, "referrals_received")["value"] == 1
    # S1 is 2 working days old on 28 March: not yet due, so no denominator
    assert np.isnan(kpi(k, s, "pct_response_within_target")["value"])
    assert kpi(k, s, "pct_response_within_target")["n"] == 0
    assert kpi(k, s, "closures: school move")["value"] == 1
    sentences = T.kpi_sentences(kpis, a)
    assert T.kpi_sentences(k, a, response_target_working_days=2) == sentences
    assert ("50% of 4 referrals had a first response within 2 working days "
            "(target 90%: amber).") in sentences
    assert "75% of 4 referrals had a lead professional (target 90%: red)." in sentences
    # needs met among closures with an outcome: A1 (autumn, needs met), A3 (spring, move)
    assert (kpi(k, a, "pct_needs_met")["value"], kpi(k, a, "pct_needs_met")["n"]) == (100, 1)
    assert (kpi(k, s, "pct_needs_met")["value"], kpi(k, s, "pct_needs_met")["n"]) == (0, 1)
    whole = T.pathway_kpis(small_register, 2, "all", targets={
        "lead_professional": {"green": 90, "amber": 80}}).summary  # short name (params)
    assert kpi(whole, "all periods", "referrals_received")["value"] == 5
    assert kpi(whole, "all periods", "pct_needs_met")["value"] == 50
    assert kpi(whole, "all periods", "pct_lead_professional")["rag"] == "red"  # 3 of 5
    assert T.period_label("2024-03-28", "term") == "2023/24 spring"
    months = T.pathway_kpis(small_register, period="month").summary
    assert kpi(months, "2023-10", "referrals_received")["value"] == 2
    years = T.pathway_kpis(small_register, period="year").summary
    assert kpi(years, "2023/24", "referrals_received")["value"] == 5
    with pytest.raises(DataError, match="pct_lead_profesional"):
        T.pathway_kpis(small_register, targets={"pct_lead_profesional": {"green": 1,
                                                                          "amber": 0}})


@pytest.mark.parametrize(("targets", "message"), [
    ({"pct_lead_profesional": {"green": 1, "amber": 0}},
     "targets.pct_lead_profesional: 'pct_lead_profesional' is not a KPI (did you mean "
     "'pct_lead_professional'?)"),
    ({"reviewed": {"green": 50, "amber": 60}},
     "targets.reviewed: amber (60) is beyond green (50); with higher_is_better amber must "
     "be below green"),
    ({"days_to_response": {"green": 5, "amber": 2}},
     "targets.days_to_response: amber (2) is beyond green (5); with lower_is_better amber "
     "must be above green"),
    ({"reviewed": {"green": 5, "amber": 2}, "pct_reviewed": {"green": 5, "amber": 2}},
     "'pct_reviewed' and 'reviewed' are both targets for pct_reviewed; keep one"),
    ({"pct_reviewed": {"green": 5}}, "targets.pct_reviewed.amber: missing key; add it"),
    ({"pct_reviewed": {"green": 5, "amber": 2, "direction": "up"}},
     "targets.pct_reviewed.direction: write higher_is_better rather than 'up'"),
])
def test_kpi_targets_are_refused_as_the_parameters_refuse_them(small_register, targets,
                                                                message):
    """pathway_kpis checks its targets with the parameters' own model, so a target is
    refused with the key and the words `evalkit validate` uses for the same target."""
    with pytest.raises(DataError) as refused:
        T.pathway_kpis(small_register, targets=targets)
    assert message in str(refused.value)


def test_dates_and_numbers_must_come_typed_from_intake(small_register):
    """The register parses nothing: a date or number column of text is refused with the
    table and column named; an empty column of any type is an empty column."""
    refs, ivs, rvs = messy_tables()
    with pytest.raises(DataError, match="referrals table, column 'referral_date' holds str "
                                        "values, not dates.*evaluation.intake"):
        T.build_register(refs.astype({"referral_date": "str"}), ivs, rvs, today="2024-06-01")
    with pytest.raises(DataError, match="interventions table, column 'sessions_planned' "
                                        "holds str values, not numbers"):
        T.build_register(refs, ivs.astype({"sessions_planned": "str"}), rvs, today="2024-06-01")
    assert ivs["cost"].dtype == object and ivs["cost"].isna().all()  # (no value, untyped)
    reg = T.build_register(refs, ivs, rvs, today="2024-06-01")
    assert reg.interventions["cost"].dtype == float and reg.table["cost"].isna().all()
    with_ints = ivs.astype({"sessions_planned": "Int64", "sessions_attended": "Int64"})
    pd.testing.assert_frame_equal(
        T.build_register(refs, with_ints, rvs, today="2024-06-01").table, reg.table)


def test_register_columns_funnel_and_caseload(small_register):
    t = small_register.table.set_index("referral_id")
    assert t.loc["A1", "status"] == "closed" and t.loc["A2", "status"] == "open"
    assert t.loc["A1", "working_days_to_response"] == 2
    assert t.loc["A4", "working_days_to_response"] == 1
    assert t.loc["A1", "days_open"] == 74
    assert bool(t.loc["A4", "ready_to_learn"]) and pd.isna(t.loc["A4", "on_track"])
    assert bool(t.loc["A1", "needs_met"]) and not bool(t.loc["A3", "needs_met"])
    assert pd.isna(t.loc["A2", "needs_met"])
    f = T.funnel(small_register).set_index("stage")
    assert f["n"].tolist() == [5, 3, 3, 2, 1]
    assert f.loc["closed", "n_any"] == 2
    c = T.caseload(small_register).set_index("period_start")
    oct_, dec, jan = c.loc["2023-10-01"], c.loc["2023-12-01"], c.loc["2024-01-01"]
    assert (oct_["open_at_start"], oct_["new_referrals"], oct_["closures"]) == (0, 2, 0)
    assert (dec["open_at_start"], dec["new_referrals"], dec["closures"]) == (3, 1, 1)
    assert (jan["open_at_start"], jan["closures"], jan["open_at_end"]) == (3, 1, 2)
    cost = T.costs(small_register).set_index("intervention")
    assert cost.loc["mentoring", "total_cost"] == 700
    assert cost.loc["mentoring", "cost_per_pupil"] == 350
    assert cost.loc["mentoring", "cost_per_success"] == 700  # one success (A1)
    assert np.isnan(cost.loc["play therapy", "cost_per_success"])
    assert cost.loc["all", "cost_per_pupil"] == pytest.approx(1000 / 3)


# ------------------------------------------------------------------ data quality


def messy_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Referrals, interventions and reviews with one of each quality problem."""
    refs = referrals_frame([
        ("R1", "P1", "2024-01-10", "2024-01-12", "EP", None, None),
        ("R2", "P1", "2024-02-01", None, None, None, None),              # referred twice open
        ("R3", "P2", "2024-01-10", "2024-01-20", None, "2024-01-15", " Needs Met "),  # clos<resp
        ("R4", "P3", "2024-01-10", "2024-01-05", None, None, None),      # negative response
        ("R5", "P4", "2024-01-10", None, None, "2030-01-01", " Moved away"),  # future, unlisted
        ("R6", "P5", None, None, None, None, None),                       # no referral date
    ])
    ivs = interventions_frame([
        ("I1", "R1", "mentoring", "2024-01-01", None, 5, 5, None),   # before referral
        ("I2", "R1", "Play Therapy ", "2024-01-15", "2024-01-14", 4, 6, None),  # neg, over
        ("I3", "R9", "mentoring", "2024-01-15", None, 5, 5, None),   # unknown referral
        ("I4", "R3", "mentorin", "2024-01-15", None, 5, 5, None),    # unknown name
        ("I5", "R4", "mentoring", "2030-02-01", None, 5, 5, None),   # future start
    ])
    rvs = reviews_frame([
        ("V1", "R1", "2024-02-01", True, True, True),
        ("V2", "R99", "2024-02-01", True, True, True),               # unknown referral
    ])
    return refs, ivs, rvs


def test_each_quality_problem_is_listed():
    refs, ivs, rvs = messy_tables()
    reg = T.build_register(refs, ivs, rvs, today="2024-06-01")
    q = reg.quality
    assert list(q.columns) == ["table", "record_id", "column", "problem", "action", "check"]

    def has(table, rid, column, text):
        sel = ((q["table"] == table) & (q["record_id"] == rid) & (q["column"] == column)
               & q["problem"].str.contains(text, regex=False))
        return bool(sel.any())

    assert has("interventions", "I1", "start_date", "before its referral")
    assert has("referrals", "R3", "closure_date", "closure before the first response")
    assert has("interventions", "I3", "referral_id", "unknown referral id R9")
    assert has("reviews", "V2", "referral_id", "unknown referral id R99")
    assert has("referrals", "R2", "referral_date", "referred again while an earlier referral")
    assert has("interventions", "I2", "sessions_attended", "above sessions planned")
    assert has("referrals", "R5", "closure_date", "after today")
    assert has("interventions", "I5", "start_date", "date 2030-02-01 is after today")
    assert has("referrals", "R4", "first_response_date", "negative duration")
    assert has("interventions", "I2", "end_date", "negative duration")
    assert has("interventions", "I4", "intervention", "'mentorin' is not on the menu")
    assert q.loc[q["record_id"] == "I4", "action"].str.contains("'mentoring'").any()
    assert has("referrals", "R6", "referral_date", "no referral date")
    assert has("referrals", "R5", "closure_outcome", "' Moved away' is not in the list")
    assert not has("referrals", "R3", "closure_outcome", "not in the list")  # case/spaces
    # the check names the problem without any record's values, so boards can see counts
    assert not q["check"].str.contains("P1|R9|R99|mentorin|2030", regex=True).any()
    # the summary counts what the rows list
    heads = q["action"].str.split(";").str[0].str.strip()
    by = q.assign(head=heads).groupby(["table", "column", "check"])
    want = pd.DataFrame({"records": by.size(), "action": by["head"].agg(
        lambda h: h.iloc[0] if h.nunique() == 1 else "see the full list")})
    got = T.quality_summary(reg)
    pd.testing.assert_frame_equal(got.set_index(["table", "column", "check"]).sort_index(),
                                  want.sort_index(), check_dtype=False)
    assert got["table"].is_monotonic_increasing
    summary = got.set_index(["table", "column", "check"])
    assert summary.loc[("interventions", "referral_id", "unknown referral id"),
                       "records"] == 1
    assert summary.loc[("referrals", "referral_date", "no referral date"),
                       "action"].startswith("excluded")
    assert summary["records"].sum() == len(q)
    assert not summary.reset_index().isin(set(q["record_id"])).any().any()
    # usable records stay, unusable ones go; cleaned values
    t = reg.table.set_index("referral_id")
    assert "R6" not in t.index and "R2" in t.index and len(t) == 5
    assert t.loc["R1", "interventions"] == "mentoring; play therapy"  # case/space normalised
    assert t.loc["R3", "closure_outcome"] == "needs met" and bool(t.loc["R3", "needs_met"])
    assert t.loc["R5", "closure_outcome"] == "Moved away"  # as written, less the spaces
    assert t.loc["R1", "sessions_attended"] == 9  # 5 + 6 capped at 4
    assert np.isnan(t.loc["R4", "working_days_to_response"])
    assert np.isnan(t.loc["R1", "days_to_first_intervention"])
    assert t.loc["R5", "status"] == "open"  # closure date in the future
    assert "I3" not in set(reg.interventions["intervention_id"])
    # no false alarms on clean records
    assert not (q["record_id"] == "R1").any()
    with pytest.raises(DataError, match="referral_date.*row 7"):
        T.build_register(refs, ivs, rvs, today="2024-06-01", strict=True)
    dup = pd.concat([refs.iloc[:1], refs.iloc[:1]], ignore_index=True)
    with pytest.raises(DataError, match="repeat"):
        T.build_register(dup, ivs, rvs, today="2024-06-01")
    with pytest.raises(DataError, match="no column 'referral_date'"):
        T.build_register(refs.drop(columns="referral_date"), ivs, rvs)


@pytest.mark.parametrize("strings", ["str", "object"])
def test_register_with_pupils_keeps_quality_rows_in_table_order(strings):
    """Pupil columns are joined after the register's own (which win a clash), the quality
    rows come table by table with the pupils check last, and errors are raised in the order
    the tables are read -- for text stored as pandas strings or as Python objects."""
    refs, ivs, rvs = (df.astype({c: strings for c in df.columns if df[c].dtype == "str"})
                      for df in messy_tables())
    pupils = pd.DataFrame({"pupil_id": ["P1", "P2", "P3", "P5"], "sex": ["F", "M", "F", "M"],
                           "school_id": "S2", "cost": 1.0})  # "cost": the register's own
    reg = T.build_register(refs, ivs, rvs, pupils=pupils, today="2024-06-01")
    assert list(reg.table.columns[-2:]) == ["needs_met", "sex"]
    assert reg.table["cost"].isna().all() and (reg.table["school_id"] == "S1").all()
    runs = reg.quality["table"].loc[lambda t: t != t.shift()].tolist()
    assert runs == ["referrals", "interventions", "reviews", "referrals"]
    assert reg.quality["problem"].iloc[-1] == "pupil id not in the pupils table"
    plain = T.build_register(*messy_tables(), pupils=pupils, today="2024-06-01")
    pd.testing.assert_frame_equal(reg.quality, plain.quality)
    assert reg.table["interventions"].tolist() == plain.table["interventions"].tolist()
    refs = refs[refs["referral_date"].notna()]
    ivs.loc[0, "start_date"], rvs.loc[0, "review_date"] = pd.NaT, pd.NaT
    with pytest.raises(DataError, match="interventions table, column 'start_date'"):
        T.build_register(refs, ivs, rvs, today="2024-06-01", strict=True)
    with pytest.raises(DataError, match="reviews table, column 'review_date'"):
        T.build_register(refs, ivs.iloc[1:], rvs, today="2024-06-01", strict=True)


def test_kpi_terms_follow_the_school_calendar(small_register):
    """Terms are evaluation.calendar's (after the DfE census): autumn from 1 August, summer
    from Easter Monday; academic years from 1 August."""
    assert T.period_label("2023-08-15", "term") == "2023/24 autumn"
    assert T.period_label("2024-03-31", "term") == "2023/24 spring"  # Easter Sunday
    assert T.period_label("2024-04-01", "term") == "2023/24 summer"  # Easter Monday
    assert T.period_label("2024-07-31", "term") == "2023/24 summer"
    assert T.period_label("2023-08-01", "year") == "2023/24"
    assert T.period_label("2024-02-05", "month") == "2024-02"
    refs = referrals_frame([
        ("A1", "P1", "2023-08-21", None, None, None, None),
        ("A2", "P2", "2024-03-28", None, None, None, None),
        ("A3", "P3", "2024-04-02", None, None, None, None)])
    reg = T.build_register(refs, interventions_frame([]), EMPTY_REVIEWS, today="2024-06-01")
    k = T.pathway_kpis(reg, period="term").summary
    got = k[k["kpi"] == "referrals_received"].set_index("period")["value"].to_dict()
    assert got == {"2023/24 autumn": 1, "2023/24 spring": 1, "2023/24 summer": 1}


# ------------------------------------------------------------------ outcomes


def simulated_outcomes() -> tuple[T.Register, pd.DataFrame]:
    # mentoring: 7 of 10 closed cases needs met; play therapy: 2 of 5; 3 open cases
    rows, ivrows = [], []
    spec = [("mentoring", 10, 7), ("play therapy", 5, 2)]
    i = 0
    for name, n, k in spec:
        for j in range(n):
            rid, pid = f"R{i}", f"P{i}"
            outcome = "needs met" if j < k else "school move"
            rows.append((rid, pid, "2024-01-08", "2024-01-09", "EP", "2024-04-01", outcome))
            ivrows.append((f"I{i}", rid, name, "2024-01-15", None, 10, 8, 100.0))
            i += 1
    for _ in range(3):
        rid = f"R{i}"
        rows.append((rid, f"P{i}", "2024-01-08", None, None, None, None))
        ivrows.append((f"I{i}", rid, "mentoring", "2024-01-15", None, 10, 8, 100.0))
        i += 1
    pupils = pd.DataFrame({"pupil_id": [f"P{j}" for j in range(i)],
                           "sex": ["F", "M"] * (i // 2) + ["F"] * (i % 2)})
    reg = T.build_register(referrals_frame(rows), interventions_frame(ivrows), EMPTY_REVIEWS,
                           pupils=pupils, today="2024-06-01")
    return reg, pupils


def test_outcomes_by_agree_with_wilson_proportion_confint():
    reg, _ = simulated_outcomes()
    out = T.outcomes_by(reg, by="intervention").set_index("intervention")
    for name, n, k in [("mentoring", 10, 7), ("play therapy", 5, 2)]:
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        row = out.loc[name]
        assert (row["n"], row["successes"]) == (n, k)
        assert row["proportion"] == pytest.approx(k / n)
        assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
    by_sex = T.outcomes_by(reg, by="sex", confidence=0.9).set_index("sex")
    t = reg.table[reg.table["needs_met"].notna()]
    for sex, grp in t.groupby("sex"):
        k, n = int(grp["needs_met"].sum()), len(grp)
        lo, hi = proportion_confint(k, n, alpha=0.1, method="wilson")
        assert by_sex.loc[sex, "n"] == n and by_sex.loc[sex, "ci_low"] == pytest.approx(lo)
        assert by_sex.loc[sex, "ci_high"] == pytest.approx(hi)
    with pytest.raises(DataError, match="outcome"):
        T.outcomes_by(reg, outcome="happiness")


def test_costs_agree_with_a_pandas_groupby():
    """Random referrals (pupils referred more than once, several interventions each, some
    without a cost): totals, counts of distinct pupils, referrals and successes per type and
    overall against pandas, and the two ratios from them."""
    rng = np.random.default_rng(5)
    n_ref, n_iv = 400, 1200
    refs = pd.DataFrame({
        "referral_id": [f"R{i}" for i in range(n_ref)],
        "pupil_id": [f"P{i}" for i in rng.integers(0, 250, n_ref)],
        "referral_date": D("2023-09-04") + pd.to_timedelta(rng.integers(0, 200, n_ref), "D"),
        "closure_date": D("2024-05-01"),
        "closure_outcome": rng.choice(["needs met", "school move"], n_ref, p=[0.6, 0.4])})
    ivs = pd.DataFrame({
        "intervention_id": [f"I{i}" for i in range(n_iv)],
        "referral_id": refs["referral_id"].to_numpy()[rng.integers(0, n_ref, n_iv)],
        "intervention": rng.choice(["mentoring", "nurture group", "art therapy"], n_iv),
        "start_date": D("2024-03-01"),
        "cost": np.where(rng.random(n_iv) < 0.2, np.nan, rng.gamma(3, 100, n_iv).round(2))})
    reg = T.build_register(refs, ivs, EMPTY_REVIEWS, today="2024-08-31")
    got = T.costs(reg).set_index("intervention")

    merged = ivs.merge(reg.table[["referral_id", "pupil_id", "needs_met"]], on="referral_id")
    costed = merged[merged["cost"].notna()]
    success = costed[costed["needs_met"].fillna(False).astype(bool)]

    def summary(c: pd.DataFrame, s: pd.DataFrame) -> pd.Series:
        return pd.Series({"total_cost": c["cost"].sum(), "n_interventions": len(c),
                          "n_pupils": c["pupil_id"].nunique(),
                          "n_referrals": c["referral_id"].nunique(),
                          "n_successes": s["referral_id"].nunique()})

    want = {name: summary(c, success[success["intervention"] == name])
            for name, c in costed.groupby("intervention")}
    want["all"] = summary(costed, success)
    want = pd.DataFrame(want).T
    want["n_interventions_without_cost"] = (
        merged[merged["cost"].isna()].groupby("intervention").size())
    want.loc["all", "n_interventions_without_cost"] = merged["cost"].isna().sum()
    cols = list(want.columns)
    np.testing.assert_allclose(got.loc[want.index, cols].to_numpy(float),
                               want[cols].to_numpy(float), rtol=1e-12)
    np.testing.assert_allclose(got["cost_per_pupil"], got["total_cost"] / got["n_pupils"])
    np.testing.assert_allclose(got["cost_per_success"],
                               got["total_cost"] / got["n_successes"])
    assert got.index[-1] == "all" and len(got) == 4


@pytest.mark.parametrize("column", ["text", "object", "category", "flag", "yes_no", "number"])
def test_outcomes_and_time_open_by_one_column_agree_with_groupby(column):
    """Counts and times open by one register column (on shared codes) against a pandas
    groupby, for each kind of column a register may hold, with missing values left out."""
    rng = np.random.default_rng(4)
    n = 300
    refs = pd.DataFrame({
        "referral_id": [f"R{i}" for i in range(n)], "pupil_id": [f"P{i}" for i in range(n)],
        "referral_date": D(np.datetime64("2024-01-08") + rng.integers(0, 60, n)),
        "closure_date": D(np.datetime64("2024-04-01") + rng.integers(0, 60, n)),
        "closure_outcome": rng.choice(["needs met", "school move", None], n)})
    reg = T.build_register(refs, interventions_frame([]), EMPTY_REVIEWS, today="2024-08-31")
    missing = rng.random(n) < 0.1
    values = {
        "text": pd.Series(np.where(missing, None, rng.choice(["b", "a", "c"], n)), dtype="str"),
        "object": pd.Series(np.where(missing, None, rng.choice(["b", "a"], n)), dtype=object),
        "category": pd.Categorical(np.where(missing, None, rng.choice(["z", "y"], n)),
                                   categories=["z", "y", "x"]),
        "flag": rng.random(n) < 0.3,
        "yes_no": pd.array(np.where(missing, None, rng.random(n) < 0.5), dtype="boolean"),
        "number": np.where(missing, np.nan, rng.integers(1, 4, n).astype(float)),
    }[column]
    reg.table[column] = values
    got = T.outcomes_by(reg, column)

    data = reg.table.loc[reg.table["needs_met"].notna(), [column, "needs_met"]]
    g = data.groupby(column, observed=True)["needs_met"]
    want = pd.DataFrame({"n": g.size().astype(np.int64),
                         "successes": g.sum().astype(np.int64)}).reset_index()
    pd.testing.assert_frame_equal(got[[column, "n", "successes"]], want)
    lo, hi = proportion_confint(want["successes"], want["n"], method="wilson")
    np.testing.assert_allclose(got["ci_low"], lo)
    np.testing.assert_allclose(got["ci_high"], hi)
    # time open: n, median, 90th percentile (linear) and longest, by the same column
    g = reg.table.dropna(subset=["days_open"]).groupby(column, observed=True)["days_open"]
    want = pd.DataFrame({"n": g.count(), "median": g.median(), "p90": g.quantile(0.9),
                         "max": g.max()}).reset_index()
    assert want["p90"].gt(want["median"]).all()  # the cases differ in length
    pd.testing.assert_frame_equal(T.time_open(reg, column), want, rtol=1e-12)


# ------------------------------------------------------------------ disproportionality


def test_risk_ratio_katz_ci_by_hand():
    # group A: 10 pupils, 3 referred; B: 20 pupils, 2 referred; C: 10 pupils, 0 referred
    pupils = pd.DataFrame({"pupil_id": [f"P{i}" for i in range(40)],
                           "grp": ["A"] * 10 + ["B"] * 20 + ["C"] * 10,
                           "sex": ["M", "F"] * 20})
    referred = ["P0", "P1", "P2", "P10", "P11"]
    events = pd.DataFrame({"pupil_id": referred + ["P0"]})  # P0 twice: counted once
    out = T.disproportionality(pupils, events, "grp").set_index("grp")
    a, n, c, m = 3, 10, 2, 30
    rr = (a / n) / (c / m)
    se = np.sqrt(1 / a - 1 / n + 1 / c - 1 / m)
    z = stats.norm.ppf(0.975)
    assert out.loc["A", "risk_ratio"] == pytest.approx(rr)
    assert out.loc["A", "ci_low"] == pytest.approx(np.exp(np.log(rr) - z * se))
    assert out.loc["A", "ci_high"] == pytest.approx(np.exp(np.log(rr) + z * se))
    assert (out.loc["A", "ref_n"], out.loc["A", "ref_events"]) == (30, 2)
    assert np.isnan(out.loc["C", "risk_ratio"])  # zero events: no Katz CI
    # a missing group value: no group of its own, but among "all others" (P12, in B, is
    # not referred); as a category column, the same numbers
    gaps = pupils.assign(grp=pupils["grp"].where(pupils["pupil_id"] != "P12"))
    o3 = T.disproportionality(gaps, events, "grp").set_index("grp")
    assert list(o3.index) == ["A", "B", "C"] and o3.loc["B", "n"] == 19
    assert (o3.loc["A", "ref_n"], o3.loc["B", "ref_n"]) == (30, 21)
    cat = T.disproportionality(gaps.assign(grp=gaps["grp"].astype("category")), events, "grp")
    assert isinstance(cat["grp"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(cat.drop(columns="grp"), o3.reset_index(drop=True))
    # reference group B, given as a value, as a filter (parsed, never run) and as a mask
    for ref in ("B", "grp == 'B'", pupils["grp"].eq("B")):
        o = T.disproportionality(pupils, events, "grp", reference=ref).set_index("grp")
        rr_b = (3 / 10) / (2 / 20)
        se_b = np.sqrt(1 / 3 - 1 / 10 + 1 / 2 - 1 / 20)
        assert o.loc["A", "risk_ratio"] == pytest.approx(rr_b)
        assert o.loc["A", "ci_high"] == pytest.approx(np.exp(np.log(rr_b) + z * se_b))
    # two columns (e.g. ethnicity x sex); boolean flag column as the event
    p2 = pupils.assign(flag=pupils["pupil_id"].isin(referred))
    o2 = T.disproportionality(p2, "flag", ["grp", "sex"]).set_index(["grp", "sex"])
    assert (o2.loc[("A", "M"), "n"], o2.loc[("A", "M"), "events"]) == (5, 2)  # P0, P2
    refs = pd.DataFrame({"pupil_id": ["P0", "P10"], "closure_outcome": ["school move",
                                                                        "needs met"]})
    susp = pd.DataFrame({"pupil_id": ["P1"], "date": D(["2024-01-01"])})
    tbl = T.disproportionality_table(pupils, refs, susp, "grp")
    esc = tbl[(tbl["event"] == "escalation")].set_index("grp")
    assert esc.loc["A", "events"] == 1 and esc.loc["B", "events"] == 0
    # several groupings at once: the same tables as one call each
    both = T.disproportionality_tables(pupils, refs, susp, {"g": "grp", "gs": ["grp", "sex"]})
    pd.testing.assert_frame_equal(both["g"], tbl)
    pd.testing.assert_frame_equal(both["gs"],
                                  T.disproportionality_table(pupils, refs, susp, ["grp", "sex"]))


# ------------------------------------------------------------------ survival


def test_time_to_event_matches_survfuncright_and_survdiff():
    refs = referrals_frame(
        [(f"R{i}", f"P{i}", "2024-01-01", "2024-01-02", None, None, None) for i in range(1, 7)]
        + [("R7", "P2", "2024-02-20", None, None, None, None)]  # re-referral of P2
    )
    ivs = interventions_frame(
        [(f"I{i}", f"R{i}", "mentoring" if i <= 3 else "play therapy", "2024-01-11", None,
          None, None, None) for i in range(1, 7)]
    )
    susp = pd.DataFrame({"pupil_id": ["P1", "P1", "P3", "P4", "P5"],
                         "date": D(["2024-01-21", "2024-01-05", "2024-02-10", "2024-03-01",
                                    "2024-01-11"])})
    reg = T.build_register(refs, ivs, EMPTY_REVIEWS, today="2024-06-30")
    res = T.time_to_event(reg, susp)
    d = res.data.set_index("referral_id").sort_index()
    # by hand: P1 suspended day 10, P2 re-referred day 40, P3 day 30, P4 day 50,
    # P5 suspended on the start day (not after it) and P6 never: censored at day 171
    assert d["time"].tolist() == [10, 40, 30, 50, 171, 171]
    assert d["status"].tolist() == [1, 1, 1, 1, 0, 0]
    tab = res.table
    men = tab[tab["group"] == "mentoring"]
    np.testing.assert_allclose(men["survival"], [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(men["time"], [10, 30, 40])
    for grp, g in d.groupby("group"):
        sf = SurvfuncRight(g["time"].to_numpy(), g["status"].to_numpy())
        got = tab[tab["group"] == grp]
        np.testing.assert_allclose(got["survival"], sf.surv_prob)
        np.testing.assert_allclose(got["at_risk"], sf.n_risk)
        np.testing.assert_allclose(got["time"], sf.surv_times)
        assert (got["ci_low"] <= got["survival"] + 1e-12).all()
        assert (got["ci_high"] >= got["survival"] - 1e-12).all()
    chi2, p = survdiff(d["time"].to_numpy(), d["status"].to_numpy(), d["group"].to_numpy())
    assert res.test["chi2"] == pytest.approx(chi2) and res.test["p_value"] == pytest.approx(p)
    assert res.test["df"] == 1
    ax = T.plot_km(res)
    assert ax.get_xlabel() and ax.get_ylabel() and "log-rank" in ax.get_title()


def test_time_to_event_by_a_pupil_column_keeps_its_type():
    """Grouped by a yes/no pupil column, the curves are SurvfuncRight's for each value and
    the table's group column holds the values as they are (True/False, not text)."""
    refs = referrals_frame(
        [(f"R{i}", f"P{i}", "2024-01-01", "2024-01-02", None, None, None) for i in range(1, 9)])
    ivs = interventions_frame([(f"I{i}", f"R{i}", "mentoring", "2024-01-11", None, None, None,
                                None) for i in range(1, 9)])
    pupils = pd.DataFrame({"pupil_id": [f"P{i}" for i in range(1, 9)],
                           "fsm": [True, False] * 4})
    susp = pd.DataFrame({"pupil_id": ["P1", "P2", "P3", "P6", "P8"],
                         "date": D(["2024-01-21", "2024-02-05", "2024-03-10", "2024-01-31",
                                    "2024-04-01"])})
    reg = T.build_register(refs, ivs, EMPTY_REVIEWS, pupils=pupils, today="2024-06-30")
    res = T.time_to_event(reg, susp, by="fsm")
    assert res.table["group"].dtype == bool and set(res.table["group"]) == {True, False}
    for grp, g in res.data.groupby("group"):
        sf = SurvfuncRight(g["time"].to_numpy(), g["status"].to_numpy())
        got = res.table[res.table["group"] == grp]
        np.testing.assert_allclose(got["survival"], sf.surv_prob)
        np.testing.assert_allclose(got["time"], sf.surv_times)
    chi2, p = survdiff(res.data["time"].to_numpy(), res.data["status"].to_numpy(),
                       res.data["group"].to_numpy())
    assert res.test["chi2"] == pytest.approx(chi2) and res.test["p_value"] == pytest.approx(p)


# ------------------------------------------------------------------ recovery of effects


def test_recovers_attendance_gain_and_suspension_counts():
    rng = np.random.default_rng(20240601)
    n = 400
    pupil = np.array([f"P{i}" for i in range(n)])
    first_monday = np.datetime64("2023-09-04")
    start_week = rng.integers(12, 20, n)
    start = first_monday + (7 * start_week + rng.integers(0, 5, n)).astype("timedelta64[D]")
    ref_date = start - np.timedelta64(14, "D")
    refs = pd.DataFrame({"referral_id": [f"R{i}" for i in range(n)], "pupil_id": pupil,
                         "referral_date": D(ref_date)})
    ivs = pd.DataFrame({"intervention_id": [f"I{i}" for i in range(n)],
                        "referral_id": refs["referral_id"], "intervention": "mentoring",
                        "start_date": D(start)})
    reg = T.build_register(refs, ivs, EMPTY_REVIEWS, today="2024-08-31")
    weeks = np.arange(40)
    wk = np.tile(weeks, n)
    rel = wk - np.repeat(start_week, len(weeks))
    p = np.where(rel >= 0, 0.89, 0.85)  # +4 points from the start week
    possible = np.full(wk.size, 10)
    att = pd.DataFrame({"pupil_id": np.repeat(pupil, len(weeks)),
                        "week_start": D(first_monday + (7 * wk).astype("timedelta64[D]")),
                        "possible_sessions": possible,
                        "attended_sessions": rng.binomial(possible, p)})
    wide = T.attendance_around_start(reg, att, window_weeks=6)
    assert list(wide.columns[:4]) == ["pupil_id", "start_date", "baseline", "follow_up"]
    assert len(wide) == n and (wide["baseline_possible"] == 60).all()
    change = (wide["follow_up"] - wide["baseline"]).mean()
    assert change == pytest.approx(4.0, abs=0.6)
    # exact for one pupil, by hand
    p0 = att[att["pupil_id"] == "P0"].reset_index(drop=True)
    sw = start_week[0]
    base = p0.iloc[sw - 6: sw]
    assert wide.loc[0, "baseline"] == pytest.approx(
        100 * base["attended_sessions"].sum() / base["possible_sessions"].sum())
    # rows of unknown pupils or without a week are skipped
    noisy = pd.concat([att, pd.DataFrame({
        "pupil_id": ["NOBODY", "P0"], "week_start": [D("2023-10-02"), pd.NaT],
        "possible_sessions": [10, 10], "attended_sessions": [0, 0]})], ignore_index=True)
    pd.testing.assert_frame_equal(T.attendance_around_start(reg, noisy, 6), wide)
    pd.testing.assert_frame_equal(T.event_study(reg, noisy, "2W", (-4, 3)),
                                  T.event_study(reg, att, "2W", (-4, 3)))
    es = T.event_study(reg, att, window=(-8, 7)).set_index("rel_week")
    assert es.loc[-8:-1, "mean"].mean() == pytest.approx(85, abs=0.5)
    assert es.loc[0:7, "mean"].mean() == pytest.approx(89, abs=0.5)
    assert (es["n_pupils"] == n).all()
    assert (es["ci_low"] < es["mean"]).all() and (es["mean"] < es["ci_high"]).all()
    # suspensions: 2 in the 90 days before the start, 1 after, 1 outside the window
    sdates = np.concatenate([start - np.timedelta64(10, "D"), start - np.timedelta64(80, "D"),
                             start + np.timedelta64(5, "D"), start + np.timedelta64(200, "D")])
    susp = pd.DataFrame({"pupil_id": np.tile(pupil, 4), "date": D(sdates)})
    around = T.suspensions_around_start(reg, susp, window_days=90)
    assert (around["before"] == 2).all() and (around["after"] == 1).all()
    assert around["follow_up_complete"].all()


def pupil_case(n: int = 60) -> tuple[T.Register, pd.DataFrame, pd.DataFrame]:
    """A register of ``n`` pupils with 30 weeks of attendance and some suspensions."""
    rng = np.random.default_rng(11)
    pupil = np.array([f"P{i}" for i in range(n)])
    start = np.datetime64("2023-11-06") + rng.integers(0, 40, n).astype("timedelta64[D]")
    refs = pd.DataFrame({"referral_id": [f"R{i}" for i in range(n)], "pupil_id": pupil,
                         "referral_date": D(start - np.timedelta64(10, "D"))})
    ivs = pd.DataFrame({"intervention_id": [f"I{i}" for i in range(n)],
                        "referral_id": refs["referral_id"],
                        "intervention": rng.choice(["mentoring", "nurture"], n),
                        "start_date": D(start)})
    reg = T.build_register(refs, ivs, EMPTY_REVIEWS, today="2024-08-31")
    wk = np.tile(np.arange(30), n)
    possible = np.full(wk.size, 10)
    att = pd.DataFrame({"pupil_id": np.repeat(pupil, 30),
                        "week_start": D(np.datetime64("2023-09-04")
                                        + (7 * wk).astype("timedelta64[D]")),
                        "possible_sessions": possible,
                        "attended_sessions": rng.binomial(possible, 0.9)})
    susp = pd.DataFrame({"pupil_id": pupil[rng.integers(0, n, 3 * n)],
                         "date": D(np.datetime64("2023-09-04")
                                   + rng.integers(0, 300, 3 * n).astype("timedelta64[D]"))})
    return reg, att, susp


def test_pupil_analyses_equal_the_direct_calls():
    reg, att, susp = pupil_case()
    pa = T.PupilAnalyses(reg, att, susp, window_weeks=5, suspension_days=60)
    pd.testing.assert_frame_equal(pa.around_start, T.attendance_around_start(reg, att, 5))
    pd.testing.assert_frame_equal(pa.event_study, T.event_study(reg, att, "W", (-10, 9)))
    pd.testing.assert_frame_equal(pa.suspensions_around,
                                  T.suspensions_around_start(reg, susp, 60))
    direct = T.time_to_event(reg, susp)
    pd.testing.assert_frame_equal(pa.survival.table, direct.table)
    pd.testing.assert_frame_equal(pa.survival.data, direct.data)
    assert pa.survival.test == direct.test
    assert pa.around_start is pa.around_start  # worked out once
    none = T.PupilAnalyses(reg)
    assert none.weekly is none.around_start is none.event_study is None
    assert none.suspensions_around is none.survival is None


def test_pupil_analyses_raise_attendance_errors_when_read():
    reg, att, susp = pupil_case()
    att.loc[[3, 7], "attended_sessions"] = 11  # above the 10 possible
    pa = T.PupilAnalyses(reg, att, susp)
    for name in ("weekly", "around_start", "event_study"):
        with pytest.raises(DataError, match="rows 5, 9 record more sessions attended"):
            getattr(pa, name)
    pd.testing.assert_frame_equal(pa.suspensions_around, T.suspensions_around_start(reg, susp))


def test_attendance_weeks_count_from_the_monday_of_the_start_week():
    """Weeks dated by any weekday (some exports use the first school day), pupils without
    an intervention and rows without a week: each row lands in whole weeks from the Monday
    of the pupil's first-intervention week, summed per pupil and week."""
    rng = np.random.default_rng(8)
    n, weeks = 300, 30
    pupil = np.array([f"P{i:03d}" for i in range(n)])
    start = np.datetime64("2023-10-02") + rng.integers(0, 120, n).astype("timedelta64[D]")
    refs = pd.DataFrame({"referral_id": [f"R{i}" for i in range(n)], "pupil_id": pupil,
                         "referral_date": D(start - np.timedelta64(3, "D"))})
    ivs = pd.DataFrame({"intervention_id": [f"I{i}" for i in range(n)],
                        "referral_id": refs["referral_id"], "intervention": "mentoring",
                        "start_date": D(start)})
    reg = T.build_register(refs[::2], ivs, EMPTY_REVIEWS, today="2024-08-31")  # half
    day = (np.datetime64("2023-09-01") + np.tile(7 * np.arange(weeks), n)
           + rng.integers(0, 5, n * weeks)).astype("datetime64[D]")
    att = pd.DataFrame({"pupil_id": np.repeat(pupil, weeks), "week_start": D(day),
                        "possible_sessions": 10,
                        "attended_sessions": rng.integers(0, 11, n * weeks)})
    att.loc[rng.integers(0, len(att), 30), "week_start"] = pd.NaT
    got = T.attendance_by_week(reg, att)

    starts = reg.table.set_index("pupil_id")["first_intervention_start"]
    row_start = att["pupil_id"].map(starts)
    monday = row_start - pd.to_timedelta(row_start.dt.day_of_week, unit="D")
    want = (att.assign(rel_week=(att["week_start"] - monday).dt.days // 7)
            .dropna(subset=["rel_week"]).astype({"rel_week": int})
            .groupby(["pupil_id", "rel_week"], as_index=False)["attended_sessions"].sum())
    assert set(got["pupil_id"]) == set(pupil[::2])
    np.testing.assert_array_equal(got["rel_week"].astype(int), want["rel_week"])
    np.testing.assert_array_equal(got["attended"], want["attended_sessions"])


def test_event_study_agrees_with_pandas_per_bin():
    """Bins of two weeks, pupils with gaps: mean, sd (ddof=1) and t CI per bin against a
    pandas computation; a bin with one pupil has no sd, a bin with none has no mean."""
    refs = pd.DataFrame({"referral_id": ["R1", "R2", "R3"], "pupil_id": ["A", "B", "C"],
                         "referral_date": D(["2024-01-02", "2024-01-02", "2024-01-09"])})
    ivs = pd.DataFrame({"intervention_id": ["I1", "I2", "I3"], "referral_id": ["R1", "R2", "R3"],
                        "intervention": "mentoring",
                        "start_date": D(["2024-02-07", "2024-02-05", "2024-02-16"])})
    reg = T.build_register(refs, ivs, EMPTY_REVIEWS, today="2024-08-31")
    rng = np.random.default_rng(7)
    rows = []
    for pupil, weeks in (("A", range(-6, 6)), ("B", range(-4, 4)), ("C", range(-3, 2))):
        start = reg.table.loc[reg.table["pupil_id"] == pupil, "first_intervention_start"].iloc[0]
        monday = start - pd.Timedelta(days=start.weekday())
        for k in weeks:
            if (pupil, k) in {("A", -2), ("B", 1)}:  # gaps
                continue
            possible = int(rng.integers(6, 11))
            rows.append((pupil, monday + pd.Timedelta(weeks=k), possible,
                         int(rng.integers(0, possible + 1)), k))
    att = pd.DataFrame(rows, columns=["pupil_id", "week_start", "possible_sessions",
                                      "attended_sessions", "k"])
    es = T.event_study(reg, att.drop(columns="k"), "2W", (-4, 2)).set_index("rel_period")

    att["bin"] = att["k"] // 2
    per_pupil = att[att["bin"].between(-4, 2)].groupby(["bin", "pupil_id"])[
        ["attended_sessions", "possible_sessions"]].sum()
    pct = 100 * per_pupil["attended_sessions"] / per_pupil["possible_sessions"]
    want = pct.groupby(level="bin").agg(["count", "mean", "std"]).reindex(range(-4, 3))
    assert es["n_pupils"].tolist() == want["count"].fillna(0).astype(int).tolist()
    np.testing.assert_allclose(es["mean"], want["mean"], rtol=1e-12)
    np.testing.assert_allclose(es["sd"], want["std"], rtol=1e-12)
    half = stats.t.ppf(0.975, want["count"] - 1) * want["std"] / np.sqrt(want["count"])
    np.testing.assert_allclose(es["ci_low"], want["mean"] - half, rtol=1e-12)
    assert es.loc[2, "n_pupils"] == 1 and np.isnan(es.loc[2, "sd"])
    assert es.loc[-4, "n_pupils"] == 0 and es.loc[-4, ["mean", "sd"]].isna().all()
    assert (es["rel_week"] == es.index * 2).all()


def test_repeated_pupil_ids_in_the_pupils_table_are_refused():
    refs = referrals_frame([("R1", "P1", "2024-01-08", None, None, None, None)])
    pupils = pd.DataFrame({"pupil_id": ["P1", "P2", "P1", "P3"], "sex": ["M", "F", "F", "M"]})
    with pytest.raises(DataError, match=r"rows 2, 4 repeat a pupil id"):
        T.build_register(refs, interventions_frame([]), EMPTY_REVIEWS, pupils=pupils,
                         today="2024-06-01")
    reg = T.build_register(refs, interventions_frame([]), EMPTY_REVIEWS,
                           pupils=pupils.iloc[1:], today="2024-06-01")
    assert reg.table.loc[0, "sex"] == "F"


def test_referred_again_while_open_agrees_with_the_pairwise_rule():
    """A referral is flagged when an earlier referral of the same pupil (earlier date, or
    the same date and earlier in the file) has no closure or closes after its date --
    checked pair by pair on random registers, with ties, open cases and one-referral
    pupils."""
    rng = np.random.default_rng(11)
    no_interventions = interventions_frame([])
    for _ in range(40):
        n = int(rng.integers(0, 40))
        refs = pd.DataFrame({
            "referral_id": [f"R{i}" for i in range(n)],
            "pupil_id": rng.choice(["A", "B", "C", "D", "E"], n),
            "referral_date": D("2024-01-01") + pd.to_timedelta(rng.integers(0, 20, n), "D")})
        closure = refs["referral_date"] + pd.to_timedelta(rng.integers(0, 15, n), "D")
        refs["closure_date"] = closure.where(rng.random(n) < 0.7)
        reg = T.build_register(refs, no_interventions, EMPTY_REVIEWS, today="2024-12-31")
        q = reg.quality
        flagged = set(q.loc[q["check"] == "pupil referred again while an earlier referral "
                            "was open", "record_id"])
        expected = set()
        for i, later in refs.iterrows():
            for j, earlier in refs.iterrows():
                before = (earlier.referral_date < later.referral_date
                          or (earlier.referral_date == later.referral_date and j < i))
                still_open = (pd.isna(earlier.closure_date)
                              or earlier.closure_date > later.referral_date)
                if earlier.pupil_id == later.pupil_id and before and still_open:
                    expected.add(later.referral_id)
        assert flagged == expected




def test_menu_names_and_first_intervention_ties_keep_file_order():
    """Spellings of one menu item share its category (menu items first, then the other names
    sorted); the first intervention of a referral is the earliest start, ties going to the
    first row in the file; interventions lists the distinct names alphabetically."""
    from evaluation.tracking.register import menu_names

    names = pd.Series([" Mentoring", "MENTORING", "zz", "Art therapy ", None, "aa"], dtype="str")
    matched = menu_names(names)
    assert list(matched.cat.categories) == [*T.MENU, "aa", "zz"]
    assert matched.astype(object).where(matched.notna(), None).tolist() == [
        "mentoring", "mentoring", "zz", "art therapy", None, "aa"]

    day = pd.Timestamp("2024-01-08")
    refs = pd.DataFrame({"referral_id": ["R1", "R2"], "pupil_id": ["P1", "P2"],
                         "referral_date": [day, day]})
    ivs = pd.DataFrame({"intervention_id": ["I1", "I2", "I3", "I4", "I5"],
                        "referral_id": ["R1", "R1", "R1", "R2", "R2"],
                        "intervention": ["play therapy", "Art therapy", "mentoring",
                                         "nurture group", "mentoring"],
                        "start_date": day + pd.to_timedelta([9, 5, 5, 3, 3], "D")})
    rvs = pd.DataFrame({"review_id": ["V1", "V2"], "referral_id": ["R1", "R1"],
                        "review_date": [day + pd.Timedelta(days=30)] * 2,
                        "on_track": [False, True]})
    tab = T.build_register(refs, ivs, rvs, today=day + pd.Timedelta(days=60)).table
    assert tab["first_intervention"].astype(str).tolist() == ["art therapy", "nurture group"]
    assert tab["interventions"].tolist() == ["art therapy; mentoring; play therapy",
                                             "mentoring; nurture group"]
    assert bool(tab["on_track"].iloc[0])  # the latest review: ties go to the last in the file


# ------------------------------------------------------------------ results on the protocol


def _wilson_by_hand(k: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson (1927) score interval written out: (p + z²/2n ± z √(p(1-p)/n + z²/4n²))
    / (1 + z²/n)."""
    p = k / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def _follows_the_protocol(result, direction: str) -> None:
    from types import SimpleNamespace

    import matplotlib.pyplot as plt

    from evaluation.results import AnalysisResult, Result, verdict

    assert isinstance(result, AnalysisResult)
    assert isinstance(result.summary, pd.DataFrame) and not result.summary.attrs
    h = result.headline()
    if h["verdict"] != NOT_A_CHANGE:  # a level at one time has no null to judge against
        assert h["verdict"] == verdict(h["ci_low"], h["ci_high"], null=h["null"],
                                       direction=result.direction)
    assert "<table" in result._repr_html_() and result.sentence
    fig = result.plot()
    assert fig.axes
    plt.close(fig)
    rec = result.record(SimpleNamespace(id="o", measure="m", direction=direction),
                        notebook="30_referral_tracking.ipynb")
    assert isinstance(rec, Result) and rec.analysis == "referral_tracking"
    assert (rec.estimate, rec.ci_low, rec.ci_high, rec.unit) == (
        h["estimate"], h["ci_low"], h["ci_high"], h["unit"])


def test_proportion_against_a_target_is_the_wilson_interval_and_no_before_after_verdict():
    from evaluation.privacy import Disclosure

    z = stats.norm.ppf(0.975)
    base = T.ProportionResult(81, 263, target=0.25, unit="proportion of closed referrals")
    lo, hi = _wilson_by_hand(81, 263, z)
    assert base.interval == pytest.approx((lo, hi), rel=1e-10)
    # a published figure: wilson(10, 14) -> 0.4535045882751561 to 0.882788120898909 (README
    # of github.com/msn0/wilson-score-interval, z = 1.96)
    assert T.ProportionResult(10, 14).interval == pytest.approx(
        (0.4535045882751561, 0.882788120898909), abs=1e-4)
    h = base.headline()
    assert (h["estimate"], h["n"]) == (pytest.approx(81 / 263), 263)
    # a share at one time is not a change: no null and no before/after verdict, whatever
    # the target (the theory-of-change target judges it: evaluation.targets)
    assert np.isnan(h["null"]) and h["verdict"] == NOT_A_CHANGE
    assert "clearly below the target of 40%" in T.ProportionResult(81, 263, target=0.40).sentence
    assert "not clearly different from the target of 30%" in T.ProportionResult(
        81, 263, target=0.30).sentence
    for other in ("improved", "worsened", "no clear change"):
        assert other not in T.ProportionResult(81, 263, target=0.40).sentence
    bare = T.ProportionResult(81, 263)
    assert bare.headline()["verdict"] == NOT_A_CHANGE and "target" not in bare.sentence
    # another confidence level: the same formula with its z
    lo90, hi90 = _wilson_by_hand(81, 263, stats.norm.ppf(0.95))
    assert T.ProportionResult(81, 263, confidence=0.90).interval == pytest.approx((lo90, hi90))
    assert base.headline_text() == "Needs met 31% (26% to 37%); target 25%"
    assert "31% of 263 closed referrals" in base.sentence and "clearly above" in base.sentence
    _follows_the_protocol(base, "higher_is_better")
    # a share of few would give a small count away: the sentence withholds it
    few = T.ProportionResult(3, 40, disclosure=Disclosure(5, "board"))
    assert few.withheld and "withheld" in few.sentence and "3" not in few.sentence
    with pytest.raises(DataError):
        T.ProportionResult(5, 4)


def test_needs_met_is_the_registers_closed_referrals(small_register):
    share = T.needs_met(small_register, target=0.7)
    # A1 closed needs met, A3 closed with a school move; A2, A4, S1 open
    assert (share.successes, share.n, share.target) == (1, 2, 0.7)
    assert share.period == "referrals closed December 2023 to January 2024"


def test_kpi_result_headline_is_a_share_kpi_against_its_green_target(small_register):
    kpis = T.pathway_kpis(small_register, 2, "term", targets={
        "response_within_target": {"green": 90, "amber": 50}})
    autumn = kpis.proportion("pct_response_within_target", "2023/24 autumn")
    # 50% of 4 referrals due a response (see test_kpis_exact_on_hand_made_register)
    assert (autumn.successes, autumn.n, autumn.target) == (2, 4, 0.9)
    assert autumn.interval == pytest.approx(_wilson_by_hand(2, 4, stats.norm.ppf(0.975)))
    assert autumn.headline()["verdict"] == NOT_A_CHANGE  # a level, judged by its RAG rating
    assert "clearly below the target of 90%" in autumn.sentence  # 15% to 85%
    # the headline is the latest period with referrals: spring, none yet due
    assert kpis.latest_period == "2023/24 spring"
    assert kpis.headline()["n"] == 0 and kpis.headline()["verdict"] == NOT_A_CHANGE
    assert kpis.direction == "higher_is_better"
    assert "1 referral received" in kpis.sentence
    with pytest.raises(DataError, match="share KPI"):
        kpis.proportion("median_working_days_to_response")
    whole = T.pathway_kpis(small_register, 2, "all", targets={
        "lead_professional": {"green": 50, "amber": 40}}, headline_kpi="pct_lead_professional")
    assert (whole.proportion().successes, whole.proportion().n) == (3, 5)
    _follows_the_protocol(whole, "higher_is_better")


def test_survival_headline_is_the_pooled_kaplan_meier_with_log_log_interval():
    refs = referrals_frame(
        [(f"R{i}", f"P{i}", "2024-01-01", "2024-01-02", None, None, None) for i in range(1, 7)]
        + [("R7", "P2", "2024-02-20", None, None, None, None)])
    ivs = interventions_frame(
        [(f"I{i}", f"R{i}", "mentoring" if i <= 3 else "play therapy", "2024-01-11", None,
          None, None, None) for i in range(1, 7)])
    susp = pd.DataFrame({"pupil_id": ["P1", "P1", "P3", "P4", "P5"],
                         "date": D(["2024-01-21", "2024-01-05", "2024-02-10", "2024-03-01",
                                    "2024-01-11"])})
    reg = T.build_register(refs, ivs, EMPTY_REVIEWS, today="2024-06-30")
    res = T.time_to_event(reg, susp)
    # times 10, 30, 40, 50 (events) and 171, 171 (censored), as in the test above.
    # By hand: S(180) = 5/6 * 4/5 * 3/4 * 2/3 = 1/3; Greenwood
    # var = S² Σ d / (n (n - d)) over the event times (n = 6, 5, 4, 3)
    s = 1 / 3
    var = s * s * (1 / 30 + 1 / 20 + 1 / 12 + 1 / 6)
    z = stats.norm.ppf(0.975)
    h_ll = z * np.sqrt(var) / (s * abs(np.log(s)))
    lo, hi = s ** np.exp(h_ll), s ** np.exp(-h_ll)
    h = res.headline()
    assert (h["estimate"], h["ci_low"], h["ci_high"]) == pytest.approx((s, lo, hi))
    assert h["n"] == 6 and np.isnan(h["null"]) and h["verdict"] == NOT_A_CHANGE
    # before the first event every case is without one
    early = T.SurvivalResult(res.table, res.test, res.data, horizon=5)
    assert early.headline()["estimate"] == 1.0
    # per group at 90 and 180 days: the step function read by hand
    summary = res.summary.set_index("group")
    assert summary.loc["mentoring", "survival_90d"] == 0.0  # days 10, 30, 40
    assert summary.loc["play therapy", "survival_90d"] == pytest.approx(2 / 3)
    assert summary.loc["play therapy", ["cases", "events"]].tolist() == [3, 1]
    assert "log-rank" in res.sentence
    assert res.headline_text() == ("Without a suspension or re-referral at 180 days "
                                   f"33% ({lo:.0%} to {hi:.0%})")
    _follows_the_protocol(res, "higher_is_better")


def test_risk_ratios_headline_is_the_katz_interval_of_its_row():
    pupils = pd.DataFrame({"pupil_id": [f"P{i}" for i in range(100)],
                           "g": ["a"] * 20 + ["b"] * 80})
    referred = pd.DataFrame({"pupil_id": [f"P{i}" for i in list(range(8)) + list(range(20, 36))]})
    table = T.disproportionality(pupils, referred, "g")
    rr = T.RiskRatios(table, "a", ["g"], event="referral", label="group a pupils")
    # by hand: a = 8 of n = 20 against c = 16 of m = 80 (Katz et al. 1978)
    est = (8 / 20) / (16 / 80)
    se = np.sqrt(1 / 8 - 1 / 20 + 1 / 16 - 1 / 80)
    z = stats.norm.ppf(0.975)
    h = rr.headline()
    assert (h["estimate"], h["ci_low"], h["ci_high"]) == pytest.approx(
        (est, est * np.exp(-z * se), est * np.exp(z * se)))
    assert (h["null"], h["n"], h["unit"]) == (1.0, 20, "risk ratio")
    assert rr.sentence.startswith("Group a pupils were 2.00 times as likely to be referred")
    assert rr.headline_text().startswith("Group a pupils referred: risk ratio 2.00 (")
    _follows_the_protocol(rr, "lower_is_better")
    with pytest.raises(DataError, match="exactly one"):
        T.RiskRatios(table, "c", ["g"])


def test_attendance_change_is_the_paired_t_interval_in_points():
    from evaluation.privacy import Disclosure

    reg, att, _ = pupil_case(40)
    change = T.attendance_change(reg, att, 5, disclosure=Disclosure(5, "board"))
    wide = T.attendance_around_start(reg, att, 5)
    d = (wide["follow_up"] - wide["baseline"]).dropna()
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    h = change.headline()
    assert (h["estimate"], h["ci_low"], h["ci_high"]) == pytest.approx(
        (d.mean(), d.mean() - half, d.mean() + half))
    assert (h["unit"], h["null"], h["n"]) == ("percentage points", 0.0, len(d))
    pa = T.PupilAnalyses(reg, att, window_weeks=5, disclosure=Disclosure(5, "board"))
    assert pa.attendance_change().headline() == h
    assert change.headline_text().startswith("Attendance ")
    assert change.period.startswith("first interventions starting")
    assert "percentage points" in change.sentence and "in the 5 weeks" in change.sentence
    _follows_the_protocol(change, "higher_is_better")
