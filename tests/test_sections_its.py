"""Tests for evaluation.sections.its on the demo project (known true effects) and the DfE
example project (real data, checked against an independent statsmodels fit)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from scipy import stats  # noqa: E402

from evaluation import controlled_its, its, privacy  # noqa: E402
from evaluation.errors import ParamsError  # noqa: E402
from evaluation.project import Project, open_project  # noqa: E402
from evaluation.sections import its as its_sections  # noqa: E402

from .conftest import REPO  # noqa: E402

TRUE_LEVEL_RR = 0.75  # data/raw/demo/README.md, evaluation.demo.TRUE_EFFECTS
Z = stats.norm.ppf(0.975)


def analyse(project: Project, outcome, options=None) -> its_sections.ItsAnalysis:
    """What notebooks/20_exclusions_its.ipynb does for one outcome: select the data, fit
    with the analysis options, gather the results for the sections."""
    data = its_sections.select(project, outcome, options)
    with warnings.catch_warnings(record=True) as cautions:
        warnings.simplefilter("always")
        fit = its.fit(data.series, **data.fit_options, disclosure=project.disclosure)
    controlled = None
    if data.panel is not None:
        with warnings.catch_warnings(action="ignore"):
            controlled = controlled_its.fit(data.panel, **data.controlled_options,
                                            disclosure=project.disclosure)
    by_unit = {group: its.fit_many(rows, "unit", **data.unit_options)
               for group, rows in data.units.items()}
    return its_sections.assemble(data, fit, controlled=controlled, by_unit=by_unit,
                                 cautions=cautions)


def _build(params: str, outcome_id: str):
    project = open_project(REPO / "params" / params)
    outcome = project.toc.outcome(outcome_id)
    analysis = analyse(project, outcome)
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


def _table(sections, part: str) -> pd.DataFrame:
    found = [t for caption, t in _tables(sections).items() if part in caption]
    assert len(found) == 1, part
    return found[0]


# ------------------------------------------------------------------------------ demo


def test_demo_programme_series_recovers_the_true_level_change(demo):
    _, a, sections = demo
    level = a.result.effects.set_index("term").loc["level change"]
    assert level["ci_low"] < TRUE_LEVEL_RR < level["ci_high"]
    assert level["ci_high"] < 1
    r = sections[0].result  # the headline's verdict is its interval's side of 1
    assert r.verdict == ("improved" if r.ci_high < 1 else "worsened" if r.ci_low > 1
                         else "no clear change")
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
    c = a.controlled
    assert (c.n_treated, c.n_comparison, c.inference) == (21, 12, "ar1")
    comparison = c.effect("comparison", "level change")
    assert comparison["ci_low"] < 1 < comparison["ci_high"]  # no true change there
    diff = c.effect("difference", "difference in level change")
    assert diff["ci_low"] < TRUE_LEVEL_RR < diff["ci_high"]
    headings = [s.heading for s in sections]
    assert "Suspensions: against the comparison schools" in headings
    ctl = next(s for s in sections if "comparison schools" in s.heading)
    assert len(ctl.figures()) == 1 and "controlled counterfactual" in ctl.figures()[0][1]
    # both counterfactuals, each named, with the library's numbers
    cf = _table(sections, "against each counterfactual")
    assert [v.split(":")[0] for v in cf["Counterfactual"]] == ["controlled", "own"]
    assert cf["Ratio"].tolist() == pytest.approx(c.counterfactuals["estimate"].tolist())
    arms = _table(sections, "each arm's changes and the differences")
    assert len(arms) == 15 and arms["p"].isna().sum() == 2  # no p for a level
    text = " ".join(i.payload for i in ctl.items if i.kind == "text")
    assert "**controlled counterfactual**" in text and "**own counterfactual**" in text


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
    assert not privacy.withheld_cells(units).to_numpy().any()  # no demo school is small
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
    """With comparison schools the headline is the controlled ITS's: observed over
    controlled-expected events, its design named, its truth (0.75) inside the interval."""
    project, a, sections = demo
    r = sections[0].result
    cf = a.controlled.counterfactuals.set_index("counterfactual").loc["controlled"]
    assert (r.outcome_id, r.analysis, r.measure) == ("suspensions", "its", "suspensions")
    assert r.estimate == pytest.approx(cf["observed"] / cf["expected"])
    assert (r.ci_low, r.ci_high) == (pytest.approx(cf["ci_low"]), pytest.approx(cf["ci_high"]))
    assert r.ci_low < TRUE_LEVEL_RR < r.ci_high  # the true level change, no slope change
    assert r.verdict == ("improved" if r.ci_high < 1 else "worsened" if r.ci_low > 1
                         else "no clear change")
    assert r.unit == controlled_its.CONTROLLED_RATIO_UNIT
    assert (r.null, r.n) == (1.0, 33)
    assert r.period == "2017/18 autumn to 2023/24 summer"  # evaluation.calendar.term_label
    assert r.direction == "lower_is_better"
    pct = round((1 - r.estimate) * 100)
    assert r.headline == (
        f"Suspensions −{pct}% against the controlled counterfactual, ratio {r.estimate:.2f} "
        f"({r.ci_low:.2f} to {r.ci_high:.2f}); controlled interrupted time series, 21 "
        "programme and 12 comparison schools")
    assert r.sentence == a.controlled.sentence and r.notebook == "20_exclusions_its.ipynb"
    assert sections[0].sentence == r.sentence
    # the page's sentence leads with the same number and names its counterfactual
    assert r.sentence.startswith(
        f"After the programme (21 schools) began in 2021/22 autumn, there were {pct}% fewer "
        f"suspensions over 9 terms than the controlled counterfactual expected (ratio of "
        f"observed to expected {r.estimate:.2f}, 95% CI {r.ci_low:.2f} to {r.ci_high:.2f}")
    assert "Against the programme schools' own earlier trend alone" in r.sentence
    assert "in the programme schools was" in r.sentence  # the baseline difference
    texts = [i.payload for i in sections[0].items if i.kind == "text"]
    assert texts[0].startswith(f"**Headline:** {r.headline} — verdict: **{r.verdict}**")
    assert "21 programme schools with the 12 comparison schools" in texts[0]
    # with Wald inference (the published formulas) the controlled fit is Linden's itsa,
    # and the programme series' ratio interval is the delta method on the expected total
    with_wald = _wald(project, "suspensions")
    assert with_wald.controlled.inference == "itsa"
    assert with_wald.controlled.diagnostics["hac_lags"] is None  # no autocorrelation: set
    assert "as the parameters ask" in with_wald.intervals_text()
    w = with_wald.result.cumulative.iloc[0]
    h = with_wald.result.headline()
    ratio = w["observed_total"] / w["counterfactual_total"]
    half = 1.959964 * w["se"] / w["counterfactual_total"]
    assert (h["ci_low"], h["ci_high"]) == (pytest.approx(ratio * np.exp(-half)),
                                           pytest.approx(ratio * np.exp(half)))


def test_controlled_options_phase_in_and_no_unit_column(demo):
    project, _, _ = demo
    outcome = project.toc.outcome("suspensions")
    base = project.params.analyses.its
    # phase-in: the programme's first term is left out of the controlled fit too
    data = its_sections.select(project, outcome, base.model_copy(update={"phase_in": 1}))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        c = controlled_its.fit(data.panel, **data.controlled_options)
    assert c.diagnostics["missing_periods"] == ["2021/22 autumn"]
    assert (c.diagnostics["n_pre"], c.diagnostics["n_post"], c.n) == (12, 8, 33)
    # no unit column: the two groups' summed series are the two units (Linden's
    # single-comparison-series case), the summed counts as in the programme series
    data = its_sections.select(project, outcome, base.model_copy(update={"by": None}))
    assert set(data.panel["unit"]) == {"programme", "comparison"}
    prog = data.panel[data.panel["group"] == "programme"].reset_index(drop=True)
    assert prog["count"].tolist() == data.series["count"].tolist()
    c = controlled_its.fit(data.panel, **data.controlled_options)
    assert (c.n_treated, c.n_comparison) == (1, 1)
    assert c.design_text() == ("controlled interrupted time series, 1 programme and 1 "
                               "comparison series")
    # several interruptions cannot be a controlled ITS: one clear line
    two = base.model_copy(update={"interruption": [base.interruption,
                                                   pd.Timestamp("2022-09-01").date()]})
    with pytest.raises(ParamsError, match="models one interruption"):
        its_sections.select(project, outcome, two)
    # ... and validate says so first (evaluation.params.check_project)
    from evaluation.params import check_project

    params = project.params.model_copy(deep=True)
    params.analyses.its = two
    found = [p for p in check_project(params, project.toc, project.data)
             if p.key == "analyses.its.interruption"]
    assert len(found) == 1 and "models one interruption" in found[0].message


def test_demo_model_and_diagnostics_tables(demo):
    _, a, sections = demo
    model = _table(sections, "the model used").set_index("Choice")["Used"]
    # how the intervals allow for autocorrelation, as the library states it
    assert model["Autocorrelation (programme schools together)"] == (
        a.result.diagnostics["inference_text"])
    assert model["Headline intervals"] == a.controlled.inference_text()
    assert model["Headline design"] == ("controlled interrupted time series, 21 programme "
                                        "and 12 comparison schools")
    # the page says in plain words which inference the headline uses, and why
    how = next(i.payload for i in sections[0].items
               if i.kind == "text" and i.payload.startswith("**How the intervals"))
    assert "autocorrelation" in how and "Newey-West" in how and "Turner et al. 2021" in how
    assert f"{a.controlled.panel.df_resid} degrees of freedom" in how
    page = " ".join(i.payload for s in sections for i in s.items if i.kind == "text")
    assert "lag 1" not in page  # the demo uses no Newey-West lag
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
        analyse(project, outcome)


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
    units = _table(sections, ": each local authority")
    assert len(units) == len(many.results) + len(a.not_fitted)
    # a suppressed count is listed in the data notes and left out of the summed series
    notes = _table(sections, "rows left out")
    york = notes[(notes["Local authority"] == "York") & (notes["Period"] == "2016/17")]
    assert york["In the summed series"].tolist() == ["no"]
    caterpillar = [alt for s in sections for _, alt in s.figures()
                   if alt.startswith("Caterpillar")]
    assert len(caterpillar) == 1  # ~140 units: no unreadable list of names


def _wald(project: Project, outcome_id: str) -> its_sections.ItsAnalysis:
    """The analysis with ``inference: wald``: model-based (quasi-)Poisson standard errors
    and z intervals, the method of the published figures the tests reproduce."""
    options = project.params.analyses.its.model_copy(update={"inference": "wald"})
    return analyse(project, project.toc.outcome(outcome_id), options)


def test_dfe_aggregate_matches_an_independent_glm_and_national_totals(dfe):
    project, _, _ = dfe
    a = _wald(project, "permanent_exclusion_rate")
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
    # no comparison units: the programme series' headline, its design named
    assert a.controlled is None and r.estimate == a.result.headline()["estimate"]
    assert r.headline.endswith(
        f"; interrupted time series of the {len(a.programme_units)} local authorities added "
        "together, against their own earlier trend (no comparison series)")
    assert r.verdict in ("improved", "no clear change", "worsened")
    assert "the change" in r.sentence  # no programme/comparison design: not "the programme"


def test_dfe_suspensions_level_fall_with_rising_trend_is_flagged(dfe):
    # Fixed-period exclusions fell in level in 2012/13 but rose steeply afterwards: the
    # level change alone would read "improved"; the headline (observed over expected after
    # the interruption) says "worsened", and the report explains both. (With Wald
    # intervals, as published; allowing for autocorrelation the level fall is unclear.)
    project, perm, _ = dfe
    a = _wald(project, "fixed_period_exclusion_rate")
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


# ------------------------------------------------------------------ disclosure control
#
# Board-facing tables of the ITS report and their counts (the columns of events; every
# other number is a model estimate, or a number of schools, periods or cells):
#   "<name>: the model used"                 no event counts (units, periods)
#   "<name>: changes at the interruption"    rate ratios only
#   "<name>: cumulative difference ..."      Observed (count); Expected, Difference, CIs and
#                                            rates per 100 are withheld with it
#   "<name>: model checks"                   diagnostics, periods
#   "<name>: programme against comparison"   rate ratios only
#   "<name>: schools fitted and not fitted"  numbers of schools
#   "<name>: pooled across schools"          pooled rate ratios, numbers of schools
#   "<name>: each school (events ...)"       Events (count), adding up within each group
#   "<name>: rows left out"                  unit, period and reason: no counts
EVENT_COLUMNS = ("Events", "Observed")
EVENT_WORDS = r"(?:suspensions?|events?|permanent exclusions?|exclusions?|pupils?)"


def _numbers(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column.mask(column.astype(object).isin([privacy.WITHHELD])),
                         errors="coerce")


def _small_cells(tables: dict[str, pd.DataFrame], threshold: int) -> list[str]:
    """Event-count cells between 1 and threshold - 1 in any board table."""
    found = []
    for caption, table in tables.items():
        for col in EVENT_COLUMNS:
            if col in table.columns:
                values = _numbers(table[col])
                small = values[(values > 0) & (values < threshold)]
                found += [f"{caption} / {col} = {v:g}" for v in small]
    return found


def _recoverable(table: pd.DataFrame, count: str, block: str | None,
                 truth: pd.Series, threshold: int) -> list[str]:
    """Cells of ``count`` not shown (withheld or blank) that a reader could work out.

    The cells of each block (all rows if ``block`` is None) add up to a total the reader is
    assumed to know (the group's summed series is charted and totalled in the report), so
    the cells not shown add up to the total minus the others. That gives a cell away if it
    is the only one not shown (unless it truly had no events; ``truth``: events by unit,
    from the data), and bounds each below the threshold if together they are below it.
    """
    unit = table.columns[0] if block != table.columns[0] else table.columns[1]
    unknown = _numbers(table[count]).isna()
    keys = table[block] if block else pd.Series("all", index=table.index)
    leaks = []
    for key, rows in unknown.groupby(keys):
        names = table.loc[rows[rows].index, unit]
        hidden = truth.reindex(names).fillna(0)
        if len(names) == 1 and hidden.sum() > 0:
            leaks.append(f"{names.iloc[0]} ({key}): {hidden.sum():g} {count}")
        elif 0 < hidden.sum() < threshold:
            leaks.append(f"{', '.join(names)} ({key}): {hidden.sum():g} {count} together")
    return leaks


def _truth(project: Project, a) -> pd.Series:
    """Each unit's events, straight from the cleaned data table."""
    table = project.table(a.options.data)
    return table.groupby(table[a.options.by].astype(str))[a.column].sum(min_count=1)


def _figure_texts(fig) -> list[str]:
    """Every text a figure shows: titles, axis labels, tick labels, legends, annotations."""
    texts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        texts += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [t.get_text() for t in legend.get_texts()]
    return [t for t in texts if t]


def _board_prose(sections) -> list[str]:
    """Sentences, paragraphs, captions, alt texts and figure texts of the sections."""
    out = []
    for s in sections:
        out += [s.sentence, s.heading]
        for item in s.items:
            if item.kind == "text":
                out.append(item.payload)
            elif item.kind == "table":
                out.append(item.caption)
            else:
                out.append(item.caption)
                item.payload.canvas.draw()  # tick labels are made when drawn
                out += _figure_texts(item.payload)
    return out


def _small_counts_in_prose(texts: list[str], threshold: int) -> list[str]:
    pattern = re.compile(r"(?<![\d.,])(\d[\d,]*)\s+(?:[a-z]+\s+)?" + EVENT_WORDS)
    return [m.group(0) for t in texts for m in pattern.finditer(t)
            if 0 < int(m.group(1).replace(",", "")) < threshold]


def _build_small(monkeypatch=None, **edits) -> tuple[Project, its_sections.ItsAnalysis, list]:
    """The demo project with some schools' suspensions replaced (hand-made small series)."""
    project = open_project(REPO / "params" / "demo.yaml")
    table = project.data.tables["exclusions"].copy()
    keep = edits.pop("keep", None)
    if keep is not None:
        table = table[table["school_id"].isin(keep)].copy()
    for school, values in edits.items():
        rows = table.index[table["school_id"] == school]
        table.loc[rows, "suspensions"] = list(values) + [0] * (len(rows) - len(values))
    project.data.tables["exclusions"] = table
    analysis = analyse(project, project.toc.outcome("suspensions"))
    sections = its_sections.sections(analysis)
    return project, analysis, sections


# SCH02 (programme): 4 suspensions, fitted; SCH01 (programme): 3, too few to fit;
# SCH22 (comparison): 3 in a row, too few to fit; SCH23 (comparison): none at all. The
# comparison group then has one small school, so a second one must be withheld, and not
# the school with no suspensions (3 + 0 would give the 3 away).
SMALL_SCHOOLS = dict(SCH01=[0] * 5 + [1, 0, 1] + [0] * 6 + [1],
                     SCH02=[0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1],
                     SCH22=[1, 1, 1], SCH23=[])


@pytest.fixture(scope="module")
def small_schools():
    out = _build_small(**SMALL_SCHOOLS)
    yield out
    plt.close("all")


@pytest.fixture(scope="module")
def small_programme():
    # Two programme schools with 2 suspensions a term before the programme and 4 in all
    # after it: the programme series itself has a total below the threshold.
    pre = [2] * 12
    out = _build_small(keep=["SCH01", "SCH02", "SCH22", "SCH23"],
                       SCH01=pre + [1, 0, 0, 1, 0, 0, 0, 0, 0],
                       SCH02=pre + [0, 0, 1, 0, 0, 0, 0, 1, 0])
    yield out
    plt.close("all")


@pytest.fixture(scope="module")
def dfe_board():
    # The DfE example is published as an internal report (public statistics about local
    # authorities); for a board, its real small counts must be withheld too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Project, "disclosure",
                      property(lambda self: privacy.Disclosure(5, "board")))
        yield _build("dfe_exclusions.yaml", "permanent_exclusion_rate")


@pytest.mark.parametrize("case", ["demo", "small_schools", "small_programme", "dfe_board"])
def test_no_small_count_in_any_board_table_text_or_figure(case, request):
    project, a, sections = request.getfixturevalue(case)
    threshold = project.disclosure.threshold
    assert _small_cells(_tables(sections), threshold) == []
    prose = _board_prose(sections)
    assert _small_counts_in_prose(prose, threshold) == []
    units = _table(sections, f"(events below {threshold} withheld)")
    block = "Group" if "Group" in units.columns else None
    assert _recoverable(units, "Events", block, _truth(project, a), threshold) == []
    # a unit whose events are withheld shows no estimate either
    hidden = privacy.withheld_cells(units)["Events"]
    for col in [c for c in units.columns if c.startswith(("Level ", "Slope "))]:
        shown = units.loc[hidden, col]
        assert (shown.isna() | shown.astype(object).eq(privacy.WITHHELD)).all(), col


def test_small_schools_are_withheld_with_their_estimates_and_a_second_school(small_schools):
    project, a, sections = small_schools
    units = _table(sections, "each school (events below 5 withheld)").set_index("School")
    for school in ("SCH01", "SCH02", "SCH22"):
        assert units.loc[school, "Events"] == privacy.WITHHELD, school
    assert units.loc["SCH02", "Level RR"] == privacy.WITHHELD  # fitted, but on 4 events
    assert units.loc["SCH01", "Status"].startswith("not fitted")
    assert pd.isna(units.loc["SCH01", "Level RR"])  # no estimate: not applicable, not [c]
    # secondary suppression: the comparison group's smallest other school goes too, so its
    # total (the charted comparison series) minus the shown schools gives nothing away
    comparison = units[units["Group"] == "comparison"]
    hidden = comparison["Events"].eq(privacy.WITHHELD)
    assert hidden.sum() == 2
    true = _truth(project, a)
    others = true[comparison.index[~hidden]]
    assert units.loc["SCH23", "Events"] == 0 and "no events" in units.loc["SCH23", "Status"]
    assert 0 < true[comparison.index[hidden]].drop("SCH22").item() <= others[others > 0].min()
    # the withheld mark is explained under the table
    item = next(i for s in sections for i in s.items if i.caption.endswith("5 withheld)"))
    assert item.note == privacy.withheld_note(5)


def test_small_schools_are_not_in_the_forest_plot(small_schools):
    _, a, sections = small_schools
    forest = [(fig, alt) for s in sections for fig, alt in s.figures()
              if alt.startswith("Forest plot")]
    assert len(forest) == 1
    fig, alt = forest[0]
    labels = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()}
    hidden = {u for _, u in a.withheld_units()}
    assert "SCH02" in hidden and not labels & hidden
    assert "not shown, to protect pupils' privacy" in alt
    # the pooled estimate still rests on every fitted school
    pooled = _table(sections, "(random effects, DerSimonian-Laird)").set_index(
        ["Group", "Effect"])
    assert pooled.loc[("programme", "level change"), "Units pooled"] == 20


def test_small_programme_total_withholds_what_would_give_it_away(small_programme):
    project, a, sections = small_programme
    assert a.result.cumulative["observed_total"].iloc[0] == 4
    cumulative = _table(sections, "(observed minus expected)")
    assert (cumulative.drop(columns="Terms after").iloc[0] == privacy.WITHHELD).all()
    head = sections[0]
    # the ratio observed/expected and the difference would each fix the observed total
    assert head.result.estimate is None and head.result.verdict == "no clear change"
    assert "fewer than 5" in head.result.headline
    assert ". Over 9 terms" not in head.sentence and "fewer suspensions than" not in head.sentence
    text = " ".join(_board_prose(sections))
    assert "fewer than 5 suspensions" in text
    # the chart draws no point at a small count and labels no small tick
    fig = sections[1].figures()[0][0]
    ax = fig.axes[0]
    drawn = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections
                            if c.get_offsets().size and c.get_label() in ("observed",
                                                                          "comparison")])
    assert not ((drawn > 0) & (drawn < 5)).any()
    fig.canvas.draw()
    ticks = {t.get_text() for t in ax.get_yticklabels()}
    assert not ticks & {"1", "2", "3", "4"}
    assert "fewer than 5 (value withheld)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_internal_audience_shows_every_count(monkeypatch):
    monkeypatch.setattr(Project, "disclosure",
                        property(lambda self: privacy.Disclosure(5, "internal")))
    _, a, sections = _build_small(**SMALL_SCHOOLS)
    units = _table(sections, ": each school").set_index("School")
    assert units.loc["SCH02", "Events"] == 4 and units.loc["SCH01", "Events"] == 3
    assert not privacy.withheld_cells(units).to_numpy().any()
    plt.close("all")


def test_notebook_parameters_change_the_model():
    """``papermill -p impact level -p confidence 0.9``: the fit follows the notebook's
    parameters and the page words the interval it was given."""
    project = open_project(REPO / "params" / "demo.yaml", None, "its", impact="level",
                           confidence=0.9, family=None, autocorrelation=None)
    assert project.options.impact == "level" and project.options.confidence == 0.9
    a = analyse(project, project.toc.outcome("suspensions"), project.options)
    assert list(a.result.effects["term"]) == ["level change"]
    assert a.result.confidence == 0.9
    model = a.model_table().set_index("Choice")["Used"]
    assert model["Impact model"] == "level change only"
    # the controlled model (the headline) keeps both changes and says so
    assert "(both changes, whatever the impact model below)" in model["Headline model"]
    assert a.controlled.confidence == 0.9
    sections = its_sections.sections(a)
    captions = list(_tables(sections))
    assert any(c.endswith("changes at the interruption (90% CI)") for c in captions)
    assert not any("95%" in c for c in captions)
    plt.close("all")
