"""Tests for evaluation.sections.its on the demo project (known true effects) and the DfE
example project (real data, checked against an independent statsmodels fit)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from scipy import stats  # noqa: E402

from evaluation.errors import ParamsError  # noqa: E402
from evaluation.project import open_project  # noqa: E402
from evaluation.sections import its as its_sections  # noqa: E402

from .conftest import REPO  # noqa: E402

TRUE_LEVEL_RR = 0.75  # data/raw/demo/README.md, evaluation.demo.TRUE_EFFECTS
Z = stats.norm.ppf(0.975)


def _build(params: str, outcome_id: str):
    project = open_project(REPO / "params" / params)
    outcome = project.toc.outcome(outcome_id)
    analysis = its_sections.analyse(project, outcome)
    sections = its_sections.sections(analysis)
    plt.close("all")
    return project, analysis, sections


@pytest.fixture(scope="module")
def demo():
    return _build("demo.yaml", "suspensions")


@pytest.fixture(scope="module")
def dfe():
    return _build("dfe_exclusions.yaml", "permanent_exclusion_rate")


def _tables(sections) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for s in sections:
        out |= s.tables()
    return out


def _table(sections, ending: str) -> pd.DataFrame:
    found = [t for caption, t in _tables(sections).items() if caption.endswith(ending)]
    assert len(found) == 1, ending
    return found[0]


# ------------------------------------------------------------------------------ demo


def test_demo_programme_series_recovers_the_true_level_change(demo):
    _, a, sections = demo
    level = a.result.effects.set_index("term").loc["level change"]
    assert level["ci_low"] < TRUE_LEVEL_RR < level["ci_high"]
    assert level["ci_high"] < 1
    assert sections[0].result.verdict == "improved"
    # the series is the 21 programme schools summed, 21 terms (7 years x 3)
    assert a.programme_units == [f"SCH{i:02d}" for i in range(1, 22)]
    assert len(a.series) == 21
    raw = a.project.table("exclusions")
    prog = raw[raw["group"] == "programme"]
    assert a.series["count"].sum() == prog["suspensions"].sum()
    # the effects table shown is the fitted one
    shown = _table(sections, "changes at the interruption (95% CI)")
    assert shown["Rate ratio"].iloc[0] == pytest.approx(level["estimate"])


def test_demo_comparison_shows_no_change_and_controlled_difference(demo):
    _, a, sections = demo
    e = a.controlled.effects.set_index("term")
    comparison = e.loc["level change (comparison)"]
    assert comparison["ci_low"] < 1 < comparison["ci_high"]
    diff = e.loc["difference in level change"]
    assert diff["ci_low"] < TRUE_LEVEL_RR < diff["ci_high"]
    assert diff["ci_high"] < 1
    headings = [s.heading for s in sections]
    assert "Suspensions: against the comparison schools" in headings
    ctl = next(s for s in sections if "comparison schools" in s.heading)
    assert len(ctl.figures()) == 1 and "comparison" in ctl.figures()[0][1]


def test_demo_per_school_table_and_pooled_estimate(demo):
    project, a, sections = demo
    units = _table(sections, "each school (events below 5 withheld)")
    assert len(units) == 33
    assert (units["Group"] == "programme").sum() == 21
    assert (units["Group"] == "comparison").sum() == 12
    assert units["Status"].eq("fitted").all()
    assert units["Level RR"].notna().all()
    events = pd.to_numeric(units["Events"], errors="coerce").dropna()
    assert (events >= project.min_count).all()  # small counts withheld
    pooled = _table(sections, "(random effects, DerSimonian-Laird)").set_index(
        ["Group", "Effect"])
    row = pooled.loc[("programme", "level change")]
    assert row["Units pooled"] == 21
    assert row["CI low"] < row["Rate ratio"] < row["CI high"]
    assert 0 <= row["I²"] <= 100
    forest = [alt for s in sections for _, alt in s.figures() if alt.startswith("Forest plot")]
    assert len(forest) == 1 and "21 estimates" in forest[0]


def test_demo_tables_hold_no_pupil_ids(demo):
    project, _, sections = demo
    pupil_ids = set(project.table("pupils")["pupil_id"].astype(str))
    for caption, table in _tables(sections).items():
        names = {str(c).lower().replace(" ", "_") for c in table.columns}
        assert not names & {"pupil_id", "upn", "name", "first_name", "surname"}, caption
        cells = set(table.astype(str).to_numpy().ravel())
        assert not cells & pupil_ids, caption


def test_demo_result_record(demo):
    _, a, sections = demo
    r = sections[0].result
    cu = a.result.cumulative.iloc[0]
    assert (r.outcome_id, r.analysis, r.measure) == ("suspensions", "its", "suspensions")
    # level+slope: the headline is observed over expected events after the interruption,
    # with a delta-method CI on the log of the expected total
    ratio = cu["observed_total"] / cu["counterfactual_total"]
    half = 1.959964 * cu["se"] / cu["counterfactual_total"]
    assert r.estimate == pytest.approx(ratio)
    assert (r.ci_low, r.ci_high) == (pytest.approx(ratio * np.exp(-half)),
                                     pytest.approx(ratio * np.exp(half)))
    assert r.ci_low < 0.75 < r.ci_high  # the true level change, with no true slope change
    assert r.unit == "ratio of observed to expected events after the interruption"
    assert (r.null, r.n) == (1.0, 21)
    assert r.period == "autumn term 2017/18 to summer term 2023/24"
    assert r.direction == "lower_is_better" and r.verdict == "improved"
    pct = round((1 - r.estimate) * 100)
    assert r.headline == (f"Suspensions −{pct}% against the prior trend, ratio "
                          f"{r.estimate:.2f} ({r.ci_low:.2f} to {r.ci_high:.2f})")
    assert r.sentence == a.result.sentence and r.notebook == "20_exclusions_its.ipynb"
    assert sections[0].sentence == r.sentence


def test_demo_model_and_diagnostics_tables(demo):
    _, a, sections = demo
    model = _table(sections, "the model used").set_index("Choice")["Used"]
    assert model["Autocorrelation"] == "Newey-West standard errors, lag 1"
    assert model["Periods before / after"] == "12 / 9"
    assert model["Seasonality"].startswith("term of year")
    checks = _table(sections, "model checks").set_index("Check")["Value"]
    assert float(checks["Durbin-Watson"]) == pytest.approx(
        a.result.diagnostics["durbin_watson"], abs=0.005)
    texts = " ".join(i.payload for s in sections for i in s.items if i.kind == "text")
    assert "autocorrelation" in texts.lower()
    assert "fewer" in a.cumulative_text() and "per 100 pupils" in a.cumulative_text()
    its_fig = sections[1].figures()[0][1]
    for word in ("observed", "fitted", "counterfactual", "interruption"):
        assert word in its_fig


def test_measure_that_is_not_a_column_is_a_params_error(demo):
    project, _, _ = demo
    outcome = project.toc.outcome("suspensions").model_copy(update={"measure": "fixed_excl"})
    with pytest.raises(ParamsError, match=r"Outcome 'suspensions'.*'fixed_excl'.*roll"):
        its_sections.analyse(project, outcome)


# ------------------------------------------------------------------------------ DfE


def test_dfe_fits_most_local_authorities_and_says_why_not_the_rest(dfe):
    _, a, sections = dfe
    many = a.many["programme"]
    assert len(many.results) >= 140
    nf = a.not_fitted.set_index("unit")["reason"]
    assert nf["City of London"] == "no events in any period"
    assert nf["Bedfordshire (Pre LGR 2009)"] == "no periods on one side of the interruption"
    assert nf["York"].startswith("fewer than 3 periods")
    summary = _table(sections, "local authorities fitted and not fitted")
    assert summary["Units"].sum() == len(many.results) + len(a.not_fitted)
    assert summary.loc[summary["Result"] == "fitted", "Units"].item() == len(many.results)
    units = _table(sections, "each local authority (events below 5 withheld)")
    assert len(units) == len(many.results) + len(a.not_fitted)
    # a suppressed count is listed in the data notes and left out of the summed series
    notes = _table(sections, "rows left out")
    york = notes[(notes["Local authority"] == "York") & (notes["Period"] == "2016/17")]
    assert york["In the summed series"].tolist() == ["no"]
    caterpillar = [alt for s in sections for _, alt in s.figures()
                   if alt.startswith("Caterpillar")]
    assert len(caterpillar) == 1  # ~140 units: no unreadable list of names


def test_dfe_aggregate_matches_an_independent_glm_and_national_totals(dfe):
    project, a, _ = dfe
    # Aggregate from the cleaned table directly: every row with a known count.
    t = project.table("exclusions")
    known = t[t["permanent_exclusions"].notna()]
    agg = known.groupby("period_start")[["permanent_exclusions", "roll"]].sum().sort_index()
    # The summed series reproduces the DfE's own England totals (rounded to 5 there).
    raw = pd.read_csv(REPO / "data/raw/dfe/dfe_exclusions_la_2006-07_2016-17.csv", dtype=str)
    england = raw[(raw["level"] == "National") & (raw["school_type"] == "Total")]
    england = england.set_index(england["year"].str[:4].astype(int))
    for start, row in agg.iterrows():
        assert row["permanent_exclusions"] == pytest.approx(
            int(england.loc[start.year, "perm_excl"]), rel=0.005)
    # Segmented Poisson regression with a Pearson scale, fitted by statsmodels itself.
    y = agg["permanent_exclusions"].to_numpy(float)
    t_ = np.arange(1, len(y) + 1.0)
    t0 = int(np.flatnonzero(agg.index >= pd.Timestamp("2012-09-01"))[0]) + 1
    X = np.column_stack([np.ones_like(t_), t_, (t_ >= t0).astype(float),
                         np.maximum(t_ - t0, 0.0)])
    ref = sm.GLM(y, X, family=sm.families.Poisson(),
                 offset=np.log(agg["roll"].to_numpy(float))).fit(scale="X2")
    e = a.result.effects.set_index("term")
    for term, j in (("level change", 2), ("slope change", 3)):
        b, se = ref.params[j], ref.bse[j]
        assert e.loc[term, "estimate"] == pytest.approx(np.exp(b), rel=1e-6)
        assert e.loc[term, "ci_low"] == pytest.approx(np.exp(b - Z * se), rel=1e-6)
        assert e.loc[term, "ci_high"] == pytest.approx(np.exp(b + Z * se), rel=1e-6)
    np.testing.assert_allclose(a.series["count"].to_numpy(), y)


def test_dfe_result_record(dfe):
    _, a, sections = dfe
    r = sections[0].result
    assert r.outcome_id == "permanent_exclusion_rate" and r.measure == "permanent_exclusions"
    assert r.period == "2006/07 to 2016/17"
    assert r.n == len(a.programme_units) >= 150
    assert r.headline.startswith("Permanent exclusions ")
    assert r.verdict in ("improved", "no clear change", "worsened")
    assert "the change" in r.sentence  # no programme/comparison design: not "the programme"


def test_dfe_suspensions_level_fall_with_rising_trend_is_flagged(dfe):
    # Fixed-period exclusions fell in level in 2012/13 but rose steeply afterwards: the
    # level change alone would read "improved"; the headline (observed over expected after
    # the interruption) says "worsened", and the report explains both.
    project, perm, _ = dfe
    a = its_sections.analyse(project, project.toc.outcome("fixed_period_exclusion_rate"))
    assert a.column == "suspensions"
    level = a.result.effects.set_index("term").loc["level change"]
    assert level["ci_high"] < 1
    assert a.headline().verdict == "worsened"
    text = a.conflict_text()
    assert "Read the level and slope changes together" in text
    assert "more suspensions than the earlier trend predicted" in text
    assert a.result.cumulative["ci_low"].iloc[0] > 0
    # no such caution where level and trend agree (permanent exclusions: both up)
    assert perm.conflict_text() == ""
    plt.close("all")
