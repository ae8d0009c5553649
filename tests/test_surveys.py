"""Tests of evaluation.surveys: definitions, scoring, reliability, comparisons, item tables.

Independent computations: pingouin (test-only dependency) for Cronbach's alpha with
Feldt's interval and Hedges' g; a hand computation of omega on a known loading matrix;
statsmodels' ``confint_proportions_2indep(method="newcomb")`` and Newcombe's (1998)
published examples for the difference in % agreeing; scipy's Mann-Whitney U and
Brunner-Munzel test for the probability of superiority; the 2 x 2 odds ratio for the
proportional-odds model with two levels; statsmodels' CompareMeans for Welch's interval.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from evaluation.baseline_followup import TOO_FEW, PairedBinary, PairedChange, PairedOrdinal
from evaluation.privacy import WITHHELD, Disclosure
from evaluation.results import AnalysisResult
from evaluation.surveys import (
    AGREE4,
    AGREE5,
    DIFFERENT_RESPONDENTS,
    ItemComparison,
    ResponseScale,
    ScaleComparison,
    Survey,
    compare_waves,
    cronbach_alpha,
    diverging_bars,
    feldt_interval,
    hedges_g,
    item_table,
    level_counts,
    mcdonald_omega,
    newcombe_difference,
    probability_of_superiority,
    proportional_odds,
    reliability,
    reliability_table,
    scale_scores,
)


@pytest.fixture(scope="module")
def pg():
    """pingouin: a test-only dependency (the dev extra), never imported by the kit."""
    return pytest.importorskip("pingouin")

LEVELS = AGREE4.levels
SURVEY = Survey(
    id="s",
    items=[
        {"id": "b1", "statement": "I belong", "subscale": "belonging"},
        {"id": "b2", "statement": "An adult listens", "subscale": "belonging"},
        {"id": "b3", "statement": "I feel left out", "subscale": "belonging", "reverse": True},
        {"id": "b4", "statement": "I am proud", "subscale": "belonging"},
        {"id": "b5", "statement": "I have friends", "subscale": "belonging"},
        {"id": "l1", "statement": "I enjoy learning", "subscale": "learning"},
        {"id": "l2", "statement": "Teachers help me", "subscale": "learning"},
    ],
)


def _simulate(n_before: int, n_after: int, shift: float, seed: int = 1,
              missing: float = 0.0, ids: bool = False) -> pd.DataFrame:
    """Long responses from a one-factor graded model (belonging shifted by ``shift``)."""
    rng = np.random.default_rng(seed)
    rows = []
    k = 0
    for wave, n, mu in (("w1", n_before, 0.0), ("w2", n_after, shift)):
        theta = rng.normal(mu, 1, n)
        for item in SURVEY.items:
            sign = -1 if item.reverse else 1
            latent = sign * 0.7 * theta + math.sqrt(1 - 0.49) * rng.normal(size=n)
            level = np.searchsorted([-1.3, -0.4, 0.7], latent)
            answer = np.array(LEVELS, dtype=object)[level]
            answer[rng.random(n) < missing] = None
            for j in range(n):
                rows.append({"response_id": f"R{k + j}", "wave": wave, "item": item.id,
                             "response": answer[j],
                             **({"pupil_id": f"p{j}"} if ids else {})})
        k += n
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ definitions


def test_definitions_are_checked():
    with pytest.raises(ValidationError, match="unique"):
        Survey(id="x", items=[{"id": "a", "statement": "A"}, {"id": "a", "statement": "B"}])
    with pytest.raises(ValidationError, match="top levels"):
        ResponseScale(levels=["No", "Maybe", "Yes"], agree=["No"])
    with pytest.raises(ValidationError, match="no response scale"):
        Survey(id="x", items=[{"id": "a", "statement": "A", "scale": "five"}])
    with pytest.raises(ValidationError, match="same response"):
        Survey(id="x", scales={"agree4": AGREE4, "agree5": AGREE5},
               items=[{"id": "a", "statement": "A", "subscale": "s"},
                      {"id": "b", "statement": "B", "subscale": "s", "scale": "agree5"}])
    with pytest.raises(ValidationError, match="between 1 and 2"):
        Survey(id="x", min_answered={"s": 3},
               items=[{"id": "a", "statement": "A", "subscale": "s"},
                      {"id": "b", "statement": "B", "subscale": "s"}])
    assert AGREE4.agree_levels == ["Agree", "Strongly agree"]
    assert AGREE5.agree_levels == ["Agree", "Strongly agree"]
    assert SURVEY.needed("belonging") == 3  # ceil(0.6 * 5): the SDQ's 3 of 5
    assert SURVEY.needed("learning") == 2


def test_unknown_answers_and_items_are_refused_without_printing_them():
    data = pd.DataFrame({"response_id": ["R1", "R1"], "wave": ["w1", "w1"],
                         "item": ["b1", "b2"], "response": ["Agree", "Agre"]})
    with pytest.raises(Exception, match="1 answers are not one of its levels") as err:
        scale_scores(data, SURVEY)
    assert "Agre'" not in str(err.value)
    data.loc[1, "item"] = "zz"
    with pytest.raises(Exception, match="does not define: zz"):
        scale_scores(data, SURVEY)


# ------------------------------------------------------------------ scoring


def test_scale_scores_by_hand():
    answers = {  # levels scored 1-4; b3 is reverse-keyed (5 - score)
        "R1": {"b1": "Agree", "b2": "Strongly agree", "b3": "Disagree", "b4": "Agree",
               "b5": "Disagree", "l1": "Agree", "l2": None},
        "R2": {"b1": "Strongly agree", "b2": None, "b3": "Strongly agree", "b4": None,
               "b5": "Agree", "l1": None, "l2": None},
        "R3": {"b1": "Agree", "b2": None, "b3": None, "b4": None, "b5": "Agree",
               "l1": "Disagree", "l2": "Strongly disagree"},
    }
    rows = [{"response_id": r, "wave": "w1", "item": i, "response": v}
            for r, items in answers.items() for i, v in items.items()]
    sc = scale_scores(pd.DataFrame(rows), SURVEY).set_index("response_id")
    assert sc.loc["R1", "belonging"] == pytest.approx((3 + 4 + 3 + 3 + 2) / 5)
    assert sc.loc["R2", "belonging"] == pytest.approx((4 + 1 + 3) / 3)  # 3 of 5: prorated
    assert np.isnan(sc.loc["R3", "belonging"])  # 2 of 5 answered: missing
    assert np.isnan(sc.loc["R1", "learning"])  # 1 of 2 (needs ceil(1.2) = 2)
    assert sc.loc["R3", "learning"] == pytest.approx(1.5)
    assert sc.loc["R2", "n_belonging"] == 3
    summed = scale_scores(pd.DataFrame(rows), SURVEY.model_copy(update={"score": "sum"}))
    assert summed.set_index("response_id").loc["R2", "belonging"] == pytest.approx(8 / 3 * 5)


# ------------------------------------------------------------------ reliability


def test_alpha_and_feldt_interval_match_pingouin(pg):
    rng = np.random.default_rng(3)
    f = rng.normal(size=(150, 1))
    items = pd.DataFrame(f @ np.array([[0.8, 0.6, 0.7, 0.5]]) + rng.normal(size=(150, 4)),
                         columns=list("abcd"))
    ref, ci = pg.cronbach_alpha(items, ci=0.95)
    alpha = cronbach_alpha(items)
    assert alpha == pytest.approx(ref, abs=1e-12)
    lo, hi = feldt_interval(alpha, len(items), 4, 0.95)
    assert (round(lo, 3), round(hi, 3)) == (pytest.approx(ci[0]), pytest.approx(ci[1]))
    ref90 = pg.cronbach_alpha(items, ci=0.90)[1]
    assert round(feldt_interval(alpha, len(items), 4, 0.90)[0], 3) == pytest.approx(ref90[0])
    # rows with a missing item are left out (listwise), as pingouin's "listwise" does for
    # alpha (its interval keeps the incomplete rows' n, so only alpha is compared)
    items.iloc[[3, 10, 40], [1, 2, 0]] = np.nan
    listwise = pg.cronbach_alpha(items, nan_policy="listwise")[0]
    assert cronbach_alpha(items) == pytest.approx(listwise, abs=1e-12)


def test_omega_against_hand_computation_on_known_loadings():
    loadings = np.array([0.8, 0.7, 0.6, 0.5, 0.4])
    sds = np.array([1.0, 2.0, 0.5, 1.5, 3.0])
    corr = np.outer(loadings, loadings)
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(sds, sds)
    # data whose sample covariance is exactly `cov`: whiten noise, then colour it
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 5))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False)).T)
    x = pd.DataFrame(z @ np.linalg.cholesky(cov).T)
    omega, fitted, uniq = mcdonald_omega(x)
    lam, psi = loadings * sds, (1 - loadings**2) * sds**2
    hand = lam.sum() ** 2 / (lam.sum() ** 2 + psi.sum())
    assert omega == pytest.approx(hand, abs=1e-5)
    np.testing.assert_allclose(fitted, loadings, atol=1e-4)
    np.testing.assert_allclose(uniq, 1 - loadings**2, atol=1e-4)
    # equal loadings and SDs (essentially tau-equivalent): omega equals alpha
    eq = np.full((4, 4), 0.36)
    np.fill_diagonal(eq, 1.0)
    z4 = z[:, :4] @ np.linalg.cholesky(eq).T
    assert mcdonald_omega(pd.DataFrame(z4))[0] == pytest.approx(
        cronbach_alpha(pd.DataFrame(z4)), abs=1e-4)


def test_reliability_of_a_subscale_scores_reverse_items_backwards(pg):
    data = _simulate(300, 10, 0.0, seed=5)
    rel = reliability(data, SURVEY, "belonging", wave="w1")
    wide = data[data["wave"] == "w1"].pivot(index="response_id", columns="item",
                                            values="response")
    scores = wide[["b1", "b2", "b3", "b4", "b5"]].apply(lambda s: s.map(LEVELS.index) + 1)
    scores["b3"] = 5 - scores["b3"]
    ref, ci = pg.cronbach_alpha(scores.astype(float), ci=0.95)
    assert rel.alpha == pytest.approx(ref) and rel.n_complete == 300
    assert (round(rel.alpha_ci_low, 3), round(rel.alpha_ci_high, 3)) == tuple(ci)
    assert (rel.loadings > 0.4).all()  # the reversed item loads like the others
    assert 0.6 < rel.omega < 0.9 and "Cronbach's alpha" in rel.sentence
    table = reliability_table(data, SURVEY, wave="w1")
    assert list(table["subscale"]) == ["belonging", "learning"]
    assert table.loc[0, "alpha"] == pytest.approx(rel.alpha)
    assert np.isnan(table.loc[1, "omega"])  # two items: a one-factor model is not identified


# ------------------------------------------------------------------ two-sample statistics


def test_newcombe_difference_matches_statsmodels_and_published_examples():
    from statsmodels.stats.proportion import confint_proportions_2indep

    for x1, n1, x2, n2 in [(48, 80, 56, 70), (0, 29, 5, 56), (3, 10, 9, 10), (0, 20, 0, 10),
                           (120, 300, 150, 280), (10, 10, 0, 20)]:
        ref = confint_proportions_2indep(x2, n2, x1, n1, method="newcomb", compare="diff")
        np.testing.assert_allclose(newcombe_difference(x1, n1, x2, n2), ref, atol=1e-10)
    # Newcombe (1998) Stat Med 17:873-890, Table II, method 10: 56/70 - 48/80 is
    # +0.0524 to +0.3339; 5/56 - 0/29 is -0.0381 to +0.1926
    assert np.round(newcombe_difference(48, 80, 56, 70), 4).tolist() == [0.0524, 0.3339]
    assert np.round(newcombe_difference(0, 29, 5, 56), 4).tolist() == [-0.0381, 0.1926]


def test_probability_of_superiority_matches_scipy_and_brunner_munzel():
    rng = np.random.default_rng(2)
    x = rng.choice(4, 80, p=[0.1, 0.3, 0.4, 0.2]).astype(float)
    y = rng.choice(4, 65, p=[0.05, 0.25, 0.4, 0.3]).astype(float)
    ps, lo, hi = probability_of_superiority(x, y)
    u = stats.mannwhitneyu(y, x).statistic
    assert ps == pytest.approx(u / (80 * 65))
    bm = stats.brunnermunzel(x, y)
    # the interval inverts the Brunner-Munzel test: same statistic from its half-width
    dfs = np.linspace(50, 200, 3001)
    half = (hi - lo) / 2
    # find the t quantile's df from the statistic: W = (ps - 1/2)/se
    se_from_bm = (ps - 0.5) / bm.statistic
    t_needed = half / se_from_bm
    assert np.min(np.abs(stats.t.ppf(0.975, dfs) - t_needed)) < 1e-3
    # coverage on tied ordinal data (seeded, 400 samples): about 95%
    truth_x, truth_y = np.array([0.1, 0.3, 0.4, 0.2]), np.array([0.05, 0.25, 0.4, 0.3])
    below = np.concatenate([[0], np.cumsum(truth_x)[:-1]])
    true_ps = float(truth_y @ (below + truth_x / 2))
    hits = 0
    for _ in range(400):
        a = rng.choice(4, 60, p=truth_x)
        b = rng.choice(4, 50, p=truth_y)
        _, low, high = probability_of_superiority(a, b)
        hits += low <= true_ps <= high
    assert 0.92 <= hits / 400 <= 0.98


def test_hedges_g_matches_pingouin_and_covers(pg):
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, 30), rng.normal(0.5, 1, 25)
    g, lo, hi = hedges_g(x, y)
    # pingouin's J is the exact gamma-function correction; ours is Hedges' approximation
    assert g == pytest.approx(pg.compute_effsize(y, x, eftype="hedges"), abs=2e-3)
    assert lo < g < hi
    hits = 0
    for _ in range(300):
        a, b = rng.normal(0, 1, 12), rng.normal(0.5, 1, 15)
        _, low, high = hedges_g(a, b)
        hits += low <= 0.5 <= high
    assert 0.92 <= hits / 300 <= 0.985


def test_proportional_odds_with_two_levels_is_the_two_by_two_odds_ratio():
    x = np.r_[np.zeros(30), np.ones(20)]  # before: 30 disagree, 20 agree
    y = np.r_[np.zeros(15), np.ones(35)]
    orr, lo, hi, p = proportional_odds(x, y)
    hand = (35 / 15) / (20 / 30)
    se = math.sqrt(1 / 30 + 1 / 20 + 1 / 15 + 1 / 35)
    assert orr == pytest.approx(hand, rel=1e-4)
    assert lo == pytest.approx(hand * math.exp(-1.959964 * se), rel=1e-3)
    assert hi == pytest.approx(hand * math.exp(1.959964 * se), rel=1e-3)
    assert p < 0.01


# ------------------------------------------------------------------ comparisons


def test_scale_comparison_of_anonymous_waves():
    from statsmodels.stats.weightstats import CompareMeans

    data = _simulate(220, 180, 0.4, seed=7, missing=0.03)
    res = compare_waves(data, SURVEY, "belonging", before="w1", after="w2",
                        eligible={"w1": 300, "w2": 300})
    assert isinstance(res, ScaleComparison) and isinstance(res, AnalysisResult)
    sc = scale_scores(data, SURVEY)
    x = sc.loc[sc["wave"] == "w1", "belonging"].dropna()
    y = sc.loc[sc["wave"] == "w2", "belonging"].dropna()
    assert res.difference == pytest.approx(y.mean() - x.mean())
    lo, hi = CompareMeans.from_data(y, x).tconfint_diff(usevar="unequal")
    assert (res.ci_low, res.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert res.rate_before == pytest.approx(res.n_before / 300)
    h = res.headline()
    assert h["verdict"] == "improved" and h["null"] == 0.0 and h["n"] == len(x) + len(y)
    assert DIFFERENT_RESPONDENTS in res.sentence and "of 300 invited" in res.sentence
    rec = res.record(SimpleNamespace(id="belonging", measure=None,
                                     direction="higher_is_better"))
    assert rec.analysis == "survey" and rec.verdict == "improved"
    res.plot()


def test_item_comparison_counts_and_newcombe():
    from statsmodels.stats.proportion import confint_proportions_2indep

    data = _simulate(300, 280, 0.5, seed=8)
    res = compare_waves(data, SURVEY, "b3", before="w1", after="w2")
    assert isinstance(res, ItemComparison) and res.direction == "lower_is_better"
    rows = data[data["item"] == "b3"]
    agree = rows["response"].isin(["Agree", "Strongly agree"])
    a1, a2 = int(agree[rows["wave"] == "w1"].sum()), int(agree[rows["wave"] == "w2"].sum())
    assert (res.agree_before, res.agree_after) == (a1, a2)
    ref = confint_proportions_2indep(a2, 280, a1, 300, method="newcomb")
    assert res.ci_low_pp == pytest.approx(100 * ref[0])
    assert res.headline()["verdict"] == "improved"  # fewer feel left out
    assert res.odds_ratio < 1 and res.counts.loc["w1"].sum() == 300
    assert DIFFERENT_RESPONDENTS in res.sentence
    res.plot()


def test_too_few_responses_gives_no_verdict_and_withholds_counts():
    data = _simulate(40, 4, 0.5, seed=9)
    res = compare_waves(data, SURVEY, "belonging", before="w1", after="w2")
    assert res.headline()["verdict"] == TOO_FEW
    assert "Fewer than 5" in res.sentence and " 4 " not in res.sentence
    board = res.board_table()
    assert board.loc[0, "n_after"] == WITHHELD and board.loc[0, "difference"] == WITHHELD
    item = compare_waves(data, SURVEY, "b1", before="w1", after="w2")
    assert "withheld" in item.sentence
    board = item.board_table()
    assert board.loc[0, "n_after"] == WITHHELD and board.loc[0, "change_pp"] == WITHHELD
    assert "not_agree_after" not in board.columns
    fine = compare_waves(_simulate(40, 40, 0.5, seed=9), SURVEY, "b1", before="w1",
                         after="w2").board_table()
    assert not fine.isin([WITHHELD]).any().any()


def test_paired_design_reuses_the_paired_analyses():
    data = _simulate(60, 60, 0.5, seed=10, ids=True)
    res = compare_waves(data, SURVEY, "belonging", before="w1", after="w2", design="paired")
    assert isinstance(res, PairedChange)
    sc = scale_scores(data, SURVEY)
    wide = sc.pivot(index="pupil_id", columns="wave", values="belonging").dropna()
    assert res.headline()["estimate"] == pytest.approx((wide["w2"] - wide["w1"]).mean())
    item = compare_waves(data, SURVEY, "b1", before="w1", after="w2", design="paired")
    assert isinstance(item, PairedOrdinal) and item.n_pairs == 60
    binary = compare_waves(data, SURVEY, "b1", before="w1", after="w2", design="paired",
                           agree=True)
    assert isinstance(binary, PairedBinary) and binary.n_pairs == 60
    rows = data[data["item"] == "b1"].pivot(index="pupil_id", columns="wave",
                                             values="response")
    agreed = rows.isin(["Agree", "Strongly agree"])
    assert binary.pct_yes_follow_up == pytest.approx(100 * agreed["w2"].mean())
    with pytest.raises(Exception, match="identified respondents"):
        compare_waves(data.drop(columns="pupil_id"), SURVEY, "b1", before="w1", after="w2",
                      design="paired")


# ------------------------------------------------------------------ item pictures


def _small_table() -> pd.DataFrame:
    answers = {"w1": ["Strongly agree"] * 2 + ["Agree"] * 20 + ["Disagree"] * 8,
               "w2": ["Strongly agree"] * 12 + ["Agree"] * 10 + ["Strongly disagree"] * 9}
    return pd.DataFrame([{"response_id": f"{w}{k}", "wave": w, "item": "b1", "response": v}
                         for w, vs in answers.items() for k, v in enumerate(vs)])


def test_item_table_in_the_schools_format_with_small_counts_withheld():
    data = _small_table()
    internal = item_table(data, SURVEY, disclosure=Disclosure(audience="internal"))
    assert list(internal.columns) == ["statement", "wave", "n", "% strongly agree",
                                      "% agree (incl. strongly)", "% do not agree"]
    w2 = internal.set_index("wave").loc["w2"]
    assert w2["n"] == 31 and w2["% strongly agree"] == pytest.approx(100 * 12 / 31)
    assert w2["% agree (incl. strongly)"] == pytest.approx(100 * 22 / 31)
    board = item_table(data, SURVEY).set_index("wave")
    # 2 strongly agree in w1: withheld, and the other part of "agree" with it
    assert board.loc["w1", "% strongly agree"] == WITHHELD
    assert board.loc["w1", "% agree (incl. strongly)"] != WITHHELD
    assert board.loc["w2", "% strongly agree"] == pytest.approx(100 * 12 / 31)
    counts = level_counts(data, SURVEY)
    assert counts.set_index("wave").loc["w1", "Strongly agree"] == 2


def test_diverging_bars_show_n_and_withhold_small_bars():
    import matplotlib

    matplotlib.use("Agg")
    data = _small_table()
    fig = diverging_bars(data, SURVEY)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "n = 31" in texts and any("withheld" in t for t in texts)
    fig = diverging_bars(data, SURVEY, disclosure=Disclosure(audience="internal"))
    assert "n = 30" in [t.get_text() for t in fig.axes[0].texts]
