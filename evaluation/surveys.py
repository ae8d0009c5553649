"""Pupil, parent and staff surveys: scales, reliability, comparisons over time, item tables.

A survey is described by a :class:`Survey` (its items: statement, subscale, response scale,
reverse keying), which a params file or a registry entry fills (``Survey.model_validate``
of the YAML block). Responses arrive as the kit table ``survey_responses`` (long: one row
per response and item)::

    response_id  wave         item       response        [school_id] [pupil_id]
    R0001        2021 autumn  belong_1   Agree
    R0001        2021 autumn  belong_2   Strongly agree

``response_id`` ties the answers of one completed questionnaire together (a form's row
number: it identifies a response, not a person); ``pupil_id`` (a keyed pseudonym) is present
only when respondents are identified, which the paired design needs.

What each function gives
------------------------
* :func:`scale_scores`: one row per response with each subscale's score, by the missing
  items rule of :attr:`Survey.min_answered` (below).
* :func:`reliability`: Cronbach's alpha with the Feldt interval and McDonald's omega.
* :func:`compare_waves`: a subscale or an item compared between two waves, for anonymous
  waves (``design="independent"``: different respondents) or identified respondents
  (``design="paired"``: the kit's paired analyses of ``evaluation.baseline_followup``).
* :func:`item_table` and :func:`diverging_bars`: every statement at every wave in the
  schools' own format, small counts withheld by the project's disclosure step.

Scoring rule for missing items
------------------------------
A subscale score is the mean of the answered items' scores (reverse-keyed items scored
backwards), given only when at least ``min_answered`` of its n items were answered;
``Survey.score == "sum"`` multiplies that mean by n (a prorated sum). The default
``min_answered`` is ceil(0.6 n): 3 of 5, the SDQ's rule ("scale score can be prorated if at
least 3 items were completed", Goodman, *Scoring the Strengths & Difficulties
Questionnaire for age 4-17*, sdqinfo.org, 2014).

Every comparison result follows :class:`evaluation.results.AnalysisResult` and is
recorded with ``analysis="survey"``.

In a notebook::

    survey = Survey.model_validate(params_block)          # or evaluation.demo.SURVEY
    reliability_table(responses, survey, wave="Autumn 2021")
    belonging = compare_waves(responses, survey, "belonging", before="Autumn 2021",
                              after="Summer 2022", eligible={"Autumn 2021": 1891, ...},
                              disclosure=project.disclosure)
    belonging                                              # sentence and summary
    belonging.board_table(); belonging.plot()
    item_table(responses, survey, disclosure=project.disclosure)
    diverging_bars(responses, survey, items=[...], disclosure=project.disclosure)
    belonging.record(outcome, notebook="40_surveys_audits.ipynb")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from evaluation.baseline_followup import (
    TOO_FEW,
    PairedBinary,
    PairedChange,
    PairedOrdinal,
    nct_limits,
    paired_binary,
    paired_change,
    paired_ordinal,
)
from evaluation.errors import DataError
from evaluation.privacy import WITHHELD, Disclosure
from evaluation.results import (
    Direction,
    OutcomeLike,
    Result,
    check_direction,
    format_estimate,
    format_figure,
    format_interval,
    make_record,
    repr_html,
    verdict,
)

__all__ = [
    "AGREE4",
    "AGREE5",
    "YES_NO",
    "MIN_RESPONSES",
    "ResponseScale",
    "SurveyItem",
    "Survey",
    "scale_scores",
    "reliability",
    "reliability_table",
    "Reliability",
    "cronbach_alpha",
    "feldt_interval",
    "mcdonald_omega",
    "newcombe_difference",
    "probability_of_superiority",
    "hedges_g",
    "proportional_odds",
    "compare_waves",
    "ScaleComparison",
    "ItemComparison",
    "item_table",
    "level_counts",
    "diverging_bars",
    "DIFFERENT_RESPONDENTS",
]

#: Fewest responses in each wave for a verdict: below it an interval is too unstable to
#: act on (the kit's minimum for pairs, ``baseline_followup.MIN_PAIRS``, applied per wave).
MIN_RESPONSES = 10

#: The caution every comparison of anonymous waves carries.
DIFFERENT_RESPONDENTS = (
    "The survey is anonymous, so different pupils may have answered each time: this "
    "compares two groups of respondents, not the same pupils over time, and a change can "
    "reflect who answered as well as how pupils feel. It shows how answers changed, not "
    "what the work caused.")


# ------------------------------------------------------------------ definitions


class ResponseScale(BaseModel):
    """An ordered response scale, lowest level first.

    ``agree``: the levels that count as agreeing (default: the levels above the middle,
    e.g. Agree and Strongly agree of four; the top level of two). ``neutral``: middle levels
    (e.g. "Neither agree nor disagree"), centred in the diverging bars and counted as not
    agreeing. ``scores``: the number each level scores (default 1, 2, ... k).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: list[str] = Field(min_length=2)
    agree: list[str] | None = None
    neutral: list[str] = Field(default_factory=list)
    scores: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> ResponseScale:
        low = [v.strip().lower() for v in self.levels]
        if len(set(low)) != len(low):
            raise ValueError("the levels of a response scale must differ")
        for name in ("agree", "neutral"):
            unknown = [v for v in (getattr(self, name) or []) if v not in self.levels]
            if unknown:
                raise ValueError(f"{name}: {unknown} are not levels of the scale")
        if self.agree is not None:
            top = self.levels[len(self.levels) - len(self.agree):]
            if sorted(self.agree) != sorted(top) or not self.agree:
                raise ValueError("agree must be the top levels of the scale")
        if set(self.neutral) & set(self.agree_levels):
            raise ValueError("a level cannot be both agree and neutral")
        if self.scores is not None and (len(self.scores) != len(self.levels)
                                        or any(np.diff(self.scores) <= 0)):
            raise ValueError("scores must give one increasing number per level")
        return self

    @property
    def agree_levels(self) -> list[str]:
        if self.agree is not None:
            return [v for v in self.levels if v in self.agree]
        k = len(self.levels)
        return self.levels[k - k // 2:]

    @property
    def level_scores(self) -> np.ndarray:
        return np.asarray(self.scores if self.scores is not None
                          else np.arange(1, len(self.levels) + 1), dtype=float)

    @property
    def top(self) -> str:
        """The top level ("Strongly agree"), for the "% strongly agree" column."""
        return self.levels[-1]


AGREE4 = ResponseScale(levels=["Strongly disagree", "Disagree", "Agree", "Strongly agree"])
AGREE5 = ResponseScale(levels=["Strongly disagree", "Disagree", "Neither agree nor disagree",
                               "Agree", "Strongly agree"],
                       neutral=["Neither agree nor disagree"])
YES_NO = ResponseScale(levels=["No", "Yes"])


class SurveyItem(BaseModel):
    """One statement: its id (the ``item`` value in the responses), the words, the
    subscale (domain) it belongs to, whether it is reverse-keyed (agreeing means less of
    what the subscale measures, e.g. "I feel left out" in a belonging subscale), and its
    response scale (a name in :attr:`Survey.scales`; default the survey's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    statement: str = Field(min_length=1)
    subscale: str | None = None
    reverse: bool = False
    scale: str | None = None


class Survey(BaseModel):
    """A survey's definition: its items, response scales and scoring rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    title: str = ""
    items: list[SurveyItem] = Field(min_length=1)
    scales: dict[str, ResponseScale] = Field(default_factory=lambda: {"agree4": AGREE4})
    scale: str = "agree4"
    subscale_labels: dict[str, str] = Field(default_factory=dict)
    min_answered: dict[str, int] = Field(default_factory=dict)
    score: Literal["mean", "sum"] = "mean"

    @model_validator(mode="after")
    def _check(self) -> Survey:
        ids = [i.id for i in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"item ids must be unique; repeated: {', '.join(dup)}")
        for item in self.items:
            name = item.scale or self.scale
            if name not in self.scales:
                raise ValueError(f"item {item.id}: no response scale named {name!r} "
                                 f"(scales: {', '.join(self.scales)})")
        for sub in self.subscales:
            if len({self.response_scale(i).levels.__repr__()
                    for i in self.subscale_items(sub)}) > 1:
                raise ValueError(f"subscale {sub}: all its items need the same response "
                                 "scale to be scored together")
        for sub, k in self.min_answered.items():
            if sub not in self.subscales:
                raise ValueError(f"min_answered: {sub!r} is not a subscale")
            if not 1 <= k <= len(self.subscale_items(sub)):
                raise ValueError(f"min_answered: {sub} needs between 1 and "
                                 f"{len(self.subscale_items(sub))} items")
        return self

    @property
    def subscales(self) -> list[str]:
        return list(dict.fromkeys(i.subscale for i in self.items if i.subscale))

    def item(self, item_id: str) -> SurveyItem:
        for i in self.items:
            if i.id == item_id:
                return i
        raise DataError(f"Survey {self.id!r} has no item {item_id!r}.")

    def response_scale(self, item: SurveyItem | str) -> ResponseScale:
        item = self.item(item) if isinstance(item, str) else item
        return self.scales[item.scale or self.scale]

    def subscale_items(self, subscale: str) -> list[SurveyItem]:
        items = [i for i in self.items if i.subscale == subscale]
        if not items:
            raise DataError(f"Survey {self.id!r} has no subscale {subscale!r} "
                            f"(subscales: {', '.join(self.subscales) or 'none'}).")
        return items

    def needed(self, subscale: str) -> int:
        """Fewest answered items for a subscale score (default ceil(0.6 n), the SDQ's 3 of
        5)."""
        n = len(self.subscale_items(subscale))
        return self.min_answered.get(subscale, math.ceil(0.6 * n))

    def label(self, subscale: str) -> str:
        return self.subscale_labels.get(subscale, subscale)


# ------------------------------------------------------------------ responses


def _tidy(responses: pd.DataFrame, survey: Survey) -> pd.DataFrame:
    """The responses with a level code (0 = lowest) and a score per row; unknown items and
    answers that are not levels of the item's scale are refused (counted, not printed)."""
    need = ["response_id", "wave", "item", "response"]
    missing = [c for c in need if c not in responses.columns]
    if missing:
        raise DataError(f"The survey responses have no column {', '.join(missing)} "
                        "(the survey_responses table: response_id, wave, item, response).")
    data = responses[responses["item"].notna()].copy()
    data["item"] = data["item"].astype(str)
    data["wave"] = data["wave"].astype(str)
    known = {i.id for i in survey.items}
    unknown = sorted(set(data["item"]) - known)
    if unknown:
        raise DataError(f"The responses name items that survey {survey.id!r} does not define: "
                        f"{', '.join(unknown[:10])}. Add them to the survey or map the "
                        "columns to its item ids.")
    keys = ["wave", "response_id", "item"]
    dup = data.duplicated(keys, keep=False)
    if dup.any():
        raise DataError(f"{int(dup.sum())} rows give a second answer to the same item in the "
                        "same response (wave, response_id, item): keep one.")
    code = pd.Series(np.nan, index=data.index)
    score = pd.Series(np.nan, index=data.index)
    # plain objects rather than pandas' string dtype: mapping them is many times faster
    text = pd.Series([v.strip().lower() if isinstance(v, str) else
                      (None if pd.isna(v) else str(v).strip().lower())
                      for v in data["response"].to_numpy(dtype=object)],
                     index=data.index, dtype=object)
    for item in survey.items:
        rows = (data["item"] == item.id).to_numpy()
        if not rows.any():
            continue
        scale = survey.response_scale(item)
        key = {v.strip().lower(): k for k, v in enumerate(scale.levels)}
        c = text[rows].map(key)
        bad = data.loc[rows, "response"].notna() & c.isna()
        if bad.any():
            raise DataError(f"Item {item.id!r}: {int(bad.sum())} answers are not one of its "
                            f"levels ({', '.join(scale.levels)}). Correct the spelling or "
                            "add the level to the survey's response scale.")
        codes = c.to_numpy(dtype=float, na_value=np.nan)
        code[rows] = codes
        s = scale.level_scores
        vals = np.full(codes.shape, np.nan)
        have = ~np.isnan(codes)
        vals[have] = s[codes[have].astype(int)]
        if item.reverse:  # scored backwards: min + max - score
            vals = s[0] + s[-1] - vals
        score[rows] = vals
    data["code"] = code
    data["score"] = score
    return data


def _wide(tidy: pd.DataFrame, value: str, items: Sequence[str]) -> pd.DataFrame:
    # unstack, not pivot_table(dropna=False), which would cross every wave with every id
    wide = tidy.set_index(["wave", "response_id", "item"])[value].unstack("item")
    return wide.reindex(columns=list(items))


def scale_scores(responses: pd.DataFrame, survey: Survey) -> pd.DataFrame:
    """One row per response (wave, response_id, and school_id / pupil_id when present) with
    each subscale's score and its number of answered items (``n_<subscale>``).

    The score is the mean of the answered items' scores (reverse-keyed items scored
    backwards) when at least :meth:`Survey.needed` items were answered, else missing;
    ``survey.score == "sum"`` gives that mean times the number of items (a prorated sum).
    """
    tidy = _tidy(responses, survey)
    all_items = [i.id for i in survey.items]
    wide = _wide(tidy, "score", all_items)
    out = pd.DataFrame(index=wide.index)
    for sub in survey.subscales:
        ids = [i.id for i in survey.subscale_items(sub)]
        block = wide[ids]
        answered = block.notna().sum(axis=1)
        mean = block.mean(axis=1)
        if survey.score == "sum":
            mean = mean * len(ids)
        out[sub] = mean.where(answered >= survey.needed(sub))
        out[f"n_{sub}"] = answered
    extra = [c for c in ("school_id", "pupil_id") if c in tidy.columns]
    if extra:
        firsts = tidy.groupby(["wave", "response_id"])[extra].first()
        out = out.join(firsts)
    return out.reset_index()


# ------------------------------------------------------------------ reliability


def cronbach_alpha(items: pd.DataFrame) -> float:
    """Cronbach's alpha of complete rows: k/(k-1) (1 - sum of item variances / variance of
    the total). Items are columns; rows with a missing item are left out (listwise)."""
    x = items.dropna().to_numpy(dtype=float)
    k = x.shape[1]
    if k < 2 or x.shape[0] < 2:
        return np.nan
    cov = np.cov(x, rowvar=False)
    return float(k / (k - 1) * (1 - np.trace(cov) / cov.sum()))


def feldt_interval(alpha: float, n: int, k: int,
                   confidence: float = 0.95) -> tuple[float, float]:
    """Feldt's (1965) interval for alpha: (1 - alpha) / (1 - population alpha) follows an F
    distribution on n - 1 and (n - 1)(k - 1) degrees of freedom (Feldt, Woodruff & Salih
    1987, Appl Psychol Meas 11:93-103), so the limits are 1 - (1 - alpha) F_upper and
    1 - (1 - alpha) F_lower."""
    if not np.isfinite(alpha) or n < 2:
        return np.nan, np.nan
    tail = (1 - confidence) / 2
    df1, df2 = n - 1, (n - 1) * (k - 1)
    return (1 - (1 - alpha) * stats.f.isf(tail, df1, df2),
            1 - (1 - alpha) * stats.f.isf(1 - tail, df1, df2))


def mcdonald_omega(items: pd.DataFrame) -> tuple[float, np.ndarray, np.ndarray]:
    """McDonald's omega (total) of the unit-weighted sum of the items, from a one-factor
    model: (omega, loadings, uniquenesses) on the correlation scale.

    The factor is fitted by maximum likelihood to the items' correlation matrix
    (``statsmodels.multivariate.factor.Factor(method="ml")``, complete rows); loadings l
    and uniquenesses u are then put on each item's own scale (l s, u s^2, s the item's
    SD), so omega = (sum l s)^2 / ((sum l s)^2 + sum u s^2): the share of the sum score's
    model-implied variance that the common factor explains (McDonald 1999, *Test theory*,
    ch. 6). Needs at least three items (a one-factor model of two is not identified).
    """
    from statsmodels.multivariate.factor import Factor

    x = items.dropna().to_numpy(dtype=float)
    k = x.shape[1]
    if k < 3 or x.shape[0] <= k:
        return np.nan, np.full(k, np.nan), np.full(k, np.nan)
    sd = x.std(axis=0, ddof=1)
    corr = np.corrcoef(x, rowvar=False)
    fit = Factor(corr=corr, n_factor=1, method="ml", nobs=x.shape[0]).fit()
    load = np.asarray(fit.loadings, dtype=float).ravel()
    if load.sum() < 0:  # the factor's sign is arbitrary: point it the way of the items
        load = -load
    uniq = np.asarray(fit.uniqueness, dtype=float)
    common = (load * sd).sum() ** 2
    return float(common / (common + (uniq * sd ** 2).sum())), load, uniq


@dataclass
class Reliability:
    """Internal consistency of one subscale: alpha with its Feldt interval, and omega."""

    subscale: str
    label: str
    n_items: int
    n_complete: int
    alpha: float
    alpha_ci_low: float
    alpha_ci_high: float
    omega: float
    loadings: pd.Series
    confidence: float = 0.95

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "subscale": self.label, "n_items": self.n_items, "n_complete": self.n_complete,
            "alpha": self.alpha, "alpha_ci_low": self.alpha_ci_low,
            "alpha_ci_high": self.alpha_ci_high, "omega": self.omega}])

    @property
    def sentence(self) -> str:
        if not np.isfinite(self.alpha):
            return f"Too few complete responses to judge how consistent {self.label} is."
        pct = f"{self.confidence * 100:g}%"
        om = (f", McDonald's omega {self.omega:.2f}" if np.isfinite(self.omega) else "")
        return (f"The {self.n_items} {self.label} statements hang together with Cronbach's "
                f"alpha {self.alpha:.2f} ({pct} CI {self.alpha_ci_low:.2f} to "
                f"{self.alpha_ci_high:.2f}){om}, from {self.n_complete:,} responses that "
                "answered every one of them.")

    def _repr_html_(self) -> str:
        return repr_html(self)  # type: ignore[arg-type]


def reliability(responses: pd.DataFrame, survey: Survey, subscale: str, *,
                wave: str | None = None, confidence: float = 0.95) -> Reliability:
    """Cronbach's alpha (Feldt interval, :func:`feldt_interval`) and McDonald's omega
    (:func:`mcdonald_omega`) of one subscale, from the responses that answered all its items
    (reverse-keyed items scored backwards), in one ``wave`` or all waves."""
    tidy = _tidy(responses, survey)
    if wave is not None:
        tidy = tidy[tidy["wave"] == str(wave)]
    ids = [i.id for i in survey.subscale_items(subscale)]
    block = _wide(tidy, "score", ids).dropna()
    alpha = cronbach_alpha(block)
    lo, hi = feldt_interval(alpha, len(block), len(ids), confidence)
    omega, load, _ = mcdonald_omega(block)
    return Reliability(subscale=subscale, label=survey.label(subscale), n_items=len(ids),
                       n_complete=len(block), alpha=alpha, alpha_ci_low=lo, alpha_ci_high=hi,
                       omega=omega, loadings=pd.Series(load, index=ids),
                       confidence=confidence)


def reliability_table(responses: pd.DataFrame, survey: Survey, *, wave: str | None = None,
                      confidence: float = 0.95) -> pd.DataFrame:
    """:func:`reliability` of every subscale, one row each."""
    return pd.concat([reliability(responses, survey, sub, wave=wave,
                                  confidence=confidence).summary
                      for sub in survey.subscales], ignore_index=True)


# ------------------------------------------------------------------ two-sample statistics


def newcombe_difference(x1: int, n1: int, x2: int, n2: int,
                        confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's (1998) hybrid score interval for p2 - p1 from independent samples
    (method 10 of Newcombe RG, Stat Med 17:873-890): with Wilson limits (l1, u1), (l2, u2),
    lower = D - sqrt((p2 - l2)^2 + (u1 - p1)^2), upper = D + sqrt((u2 - p2)^2 +
    (p1 - l1)^2), D = p2 - p1. Written out beside the paired version
    (``baseline_followup.newcombe_paired_ci``) so both are read the same way; the tests
    check it against ``statsmodels`` ``confint_proportions_2indep(method="newcomb")`` and
    Newcombe's published examples."""
    from statsmodels.stats.proportion import proportion_confint

    if n1 < 1 or n2 < 1:
        return np.nan, np.nan
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = proportion_confint(x1, n1, alpha=1 - confidence, method="wilson")
    l2, u2 = proportion_confint(x2, n2, alpha=1 - confidence, method="wilson")
    d = p2 - p1
    return (float(d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)),
            float(d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)))


def probability_of_superiority(before: np.ndarray, after: np.ndarray,
                               confidence: float = 0.95) -> tuple[float, float, float]:
    """P(after > before) + P(tie)/2 for a random pair of respondents, with its interval:
    (estimate, low, high).

    The estimate is the Mann-Whitney U of ``after`` over ``before`` divided by n1 n2
    (``scipy.stats.mannwhitneyu``). The interval is the Brunner-Munzel one (Brunner &
    Munzel 2000, Biometrical J 42:17-25), which allows for the many ties of answers on a
    few levels and for unequal spreads: estimate +/- t se, se^2 = var(placements of
    before)/n1 + var(placements of after)/n2, t on the Satterthwaite degrees of freedom;
    it is the interval that inverts ``scipy.stats.brunnermunzel`` (checked in the tests).
    Written by hand because scipy gives the test but not the interval. Limits are clipped
    to 0-1.
    """
    x = np.asarray(before, dtype=float)
    y = np.asarray(after, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    n1, n2 = x.size, y.size
    if n1 < 2 or n2 < 2:
        return np.nan, np.nan, np.nan
    u = stats.mannwhitneyu(y, x, alternative="two-sided").statistic
    ps = float(u / (n1 * n2))
    pooled = stats.rankdata(np.concatenate([x, y]))
    # a placement: how many of the other sample lie below (ties count a half), scaled 0-1
    px = (pooled[:n1] - stats.rankdata(x)) / n2
    py = (pooled[n1:] - stats.rankdata(y)) / n1
    vx, vy = px.var(ddof=1), py.var(ddof=1)
    se = math.sqrt(vx / n1 + vy / n2)
    if se == 0:
        return ps, np.nan, np.nan
    df = (vx / n1 + vy / n2) ** 2 / ((vx / n1) ** 2 / (n1 - 1) + (vy / n2) ** 2 / (n2 - 1))
    t = stats.t.ppf(1 - (1 - confidence) / 2, df)
    return ps, max(0.0, ps - t * se), min(1.0, ps + t * se)


def hedges_g(before: np.ndarray, after: np.ndarray,
             confidence: float = 0.95) -> tuple[float, float, float]:
    """Hedges' g of ``after`` minus ``before`` (pooled SD, J = 1 - 3/(4(n1 + n2) - 9)) with
    the noncentral-t interval (Hedges & Olkin 1985; Steiger & Fouladi 1997): the two-sample
    t = d sqrt(n1 n2/(n1 + n2)) has noncentrality delta sqrt(n1 n2/(n1 + n2)), so the
    limits of the noncentrality (``baseline_followup.nct_limits``) scaled back, times J,
    bound g. (estimate, low, high)."""
    x = np.asarray(before, dtype=float)
    y = np.asarray(after, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    n1, n2 = x.size, y.size
    if n1 < 2 or n2 < 2:
        return np.nan, np.nan, np.nan
    sp = math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    if sp == 0:
        return np.nan, np.nan, np.nan
    d = (y.mean() - x.mean()) / sp
    j = 1 - 3 / (4 * (n1 + n2) - 9)
    scale = math.sqrt(n1 * n2 / (n1 + n2))
    lo, hi = nct_limits(d * scale, n1 + n2 - 2, confidence)
    return float(d * j), float(lo / scale * j), float(hi / scale * j)


def proportional_odds(before: np.ndarray, after: np.ndarray,
                      confidence: float = 0.95) -> tuple[float, float, float, float]:
    """The common odds ratio of answering at a higher level in the later wave, from a
    proportional-odds (ordered logit) model of the level on the wave
    (``statsmodels.miscmodels.ordinal_model.OrderedModel``): (odds ratio, low, high, p).
    Levels no one chose in either wave are dropped (their threshold is not estimable).
    NaN when the model cannot be fitted (e.g. every answer on one level)."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    x = np.asarray(before, dtype=float)
    y = np.asarray(after, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    levels = np.concatenate([x, y])
    used = np.unique(levels)
    if len(used) < 2 or x.size < 2 or y.size < 2:
        return np.nan, np.nan, np.nan, np.nan
    endog = pd.Series(pd.Categorical(levels, categories=used, ordered=True))
    exog = pd.DataFrame({"later": np.r_[np.zeros(x.size), np.ones(y.size)]})
    try:
        res = OrderedModel(endog, exog, distr="logit").fit(method="bfgs", disp=False,
                                                           maxiter=200)
    except (np.linalg.LinAlgError, ValueError):
        return np.nan, np.nan, np.nan, np.nan
    b = float(res.params["later"])
    lo, hi = res.conf_int(alpha=1 - confidence).loc["later"]
    return math.exp(b), math.exp(lo), math.exp(hi), float(res.pvalues["later"])


# ------------------------------------------------------------------ comparisons


def _response_rate(n: int, eligible: Mapping[str, int] | None, wave: str) -> tuple[Any, float]:
    if not eligible or wave not in eligible:
        return None, np.nan
    e = int(eligible[wave])
    return e, (n / e if e > 0 else np.nan)


def _rates_text(c: Any, shown: Disclosure) -> str:
    def one(n: int, e: Any, rate: float) -> str:
        text = shown.count(n)
        if e is not None and np.isfinite(rate):
            text += f" of {shown.count(e)} invited ({rate:.0%})"
        return text
    return (f"{one(c.n_before, c.eligible_before, c.rate_before)} answered in {c.before} and "
            f"{one(c.n_after, c.eligible_after, c.rate_after)} in {c.after}")


@dataclass
class ScaleComparison:
    """A subscale's scores in two anonymous waves (different respondents).

    Follows :class:`evaluation.results.AnalysisResult`. Headline: the difference in mean
    score (after - before) with its Welch interval, against 0; also Hedges' g
    (:func:`hedges_g`) and the probability that a later respondent scores higher
    (:func:`probability_of_superiority`). Fewer than ``min_responses`` in a wave: verdict
    ``TOO_FEW``.
    """

    label: str
    before: str
    after: str
    n_before: int
    n_after: int
    eligible_before: int | None
    eligible_after: int | None
    rate_before: float
    rate_after: float
    mean_before: float
    mean_after: float
    sd_before: float
    sd_after: float
    difference: float
    ci_low: float
    ci_high: float
    welch_p: float
    g: float
    g_ci_low: float
    g_ci_high: float
    superiority: float
    superiority_ci_low: float
    superiority_ci_high: float
    sentence: str = ""
    scale_text: str = ""
    direction: Direction = "higher_is_better"
    confidence: float = 0.95
    disclosure: Disclosure = field(default_factory=Disclosure)
    min_responses: int = MIN_RESPONSES
    design: str = "independent samples (anonymous waves)"

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "measure": self.label, "wave_before": self.before, "wave_after": self.after,
            "n_before": self.n_before, "n_after": self.n_after,
            "eligible_before": self.eligible_before, "eligible_after": self.eligible_after,
            "response_rate_before": self.rate_before, "response_rate_after": self.rate_after,
            "mean_before": self.mean_before, "mean_after": self.mean_after,
            "sd_before": self.sd_before, "sd_after": self.sd_after,
            "difference": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "welch_p": self.welch_p, "hedges_g": self.g, "g_ci_low": self.g_ci_low,
            "g_ci_high": self.g_ci_high, "superiority": self.superiority,
            "superiority_ci_low": self.superiority_ci_low,
            "superiority_ci_high": self.superiority_ci_high}])

    def _too_few(self) -> bool:
        return min(self.n_before, self.n_after) < self.min_responses

    def board_table(self, disclosure: Disclosure | None = None) -> pd.DataFrame:
        """``summary`` through ``disclosure`` (default: the result's): a wave with fewer
        respondents than the threshold shows neither its n nor any figure worked out from
        it (invited pupils are not withheld: they are the year group, not respondents)."""
        shown = self.disclosure if disclosure is None else disclosure
        table = self.summary
        derived = [c for c in table.columns if c not in
                   ("measure", "wave_before", "wave_after", "n_before", "n_after",
                    "eligible_before", "eligible_after")]
        return shown.table(table, ["n_before", "n_after"], derived=derived)

    def headline(self) -> dict[str, Any]:
        said = (TOO_FEW if self._too_few() else
                verdict(self.ci_low, self.ci_high, null=0.0, direction=self.direction))
        return {"estimate": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "unit": "points (difference in mean score)", "null": 0.0,
                "n": self.n_before + self.n_after, "period": f"{self.before} to {self.after}",
                "design": self.design, "verdict": said}

    def plot(self, ax: Any = None) -> Any:
        """Mean score in each wave with its interval."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3))
        else:
            fig = ax.figure
        t = [stats.t.ppf(1 - (1 - self.confidence) / 2, max(n - 1, 1))
             for n in (self.n_before, self.n_after)]
        means = [self.mean_before, self.mean_after]
        half = [ti * s / math.sqrt(max(n, 1)) for ti, s, n in
                zip(t, (self.sd_before, self.sd_after), (self.n_before, self.n_after),
                    strict=True)]
        ax.errorbar([0, 1], means, yerr=half, fmt="o", color="C0", capsize=4)
        ax.set_xticks([0, 1])
        ax.set_xticklabels([f"{w}\n(n = {self.disclosure.count(n)})" for w, n in
                            ((self.before, self.n_before), (self.after, self.n_after))])
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylabel(f"Mean {self.label} score")
        return fig

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None, n: int | None = None,
               notebook: str = "") -> Result:
        h = self.headline()
        label = self.label[:1].upper() + self.label[1:]
        # the kit's one formatter for the unit, so the summary, index and diagram print the
        # estimate exactly as this headline does
        figure = format_estimate(h["estimate"], h["ci_low"], h["ci_high"], h["unit"])
        text = (f"{label} {figure} points between {self.before} and {self.after}; {self.design}")
        return make_record(self, outcome, analysis="survey", headline=text, period=period,
                           n=n, notebook=notebook)


def _scale_sentence(c: ScaleComparison) -> str:
    shown = c.disclosure
    rates = _rates_text(c, shown)
    if any(shown.is_small(k) for k in (c.n_before, c.n_after)):
        return (f"Fewer than {shown.threshold} pupils answered the {c.label} statements in one "
                "of the waves, too few to report without risk of identifying them.")
    if c._too_few():
        return (f"{rates[:1].upper() + rates[1:]}: fewer than {c.min_responses} in a wave, "
                "too few to judge a change, so no verdict is given.")
    pct = f"{c.confidence * 100:g}%"
    said = c.headline()["verdict"]
    clear = "not a clear change either way" if said == "no clear change" else "a clear change"
    # the difference as the headline and every other page print it (the kit's formatter)
    unit = c.headline()["unit"]
    change = format_figure(c.difference, unit)
    interval = format_interval(c.ci_low, c.ci_high, unit)
    g = format_estimate(c.g, c.g_ci_low, c.g_ci_high, "Hedges' g", signed=True)
    return (f"{rates[:1].upper() + rates[1:]}. The mean {c.label} score{c.scale_text} was "
            f"{c.mean_before:.2f} in {c.before} and {c.mean_after:.2f} in {c.after}, a "
            f"change of {change} ({pct} CI {interval}), Hedges' g {g}:"
            f" {clear}. A pupil answering in {c.after} had a {c.superiority:.0%} chance of "
            f"scoring higher than one answering in {c.before} (ties counted as half; {pct} CI "
            f"{c.superiority_ci_low:.0%} to {c.superiority_ci_high:.0%}). "
            f"{DIFFERENT_RESPONDENTS}")


@dataclass
class ItemComparison:
    """One statement's answers in two anonymous waves (different respondents).

    Follows :class:`evaluation.results.AnalysisResult`. Headline: the change in the
    percentage agreeing (after - before, percentage points) with Newcombe's hybrid score
    interval (:func:`newcombe_difference`), against 0. Also the proportional-odds common
    odds ratio of answering higher (:func:`proportional_odds`) and the probability that a
    later respondent answers at a higher level (:func:`probability_of_superiority`).
    """

    item: str
    label: str
    before: str
    after: str
    n_before: int
    n_after: int
    agree_before: int
    agree_after: int
    eligible_before: int | None
    eligible_after: int | None
    rate_before: float
    rate_after: float
    pct_before: float
    pct_after: float
    change_pp: float
    ci_low_pp: float
    ci_high_pp: float
    odds_ratio: float
    or_ci_low: float
    or_ci_high: float
    or_p: float
    superiority: float
    superiority_ci_low: float
    superiority_ci_high: float
    counts: pd.DataFrame  # rows waves, columns levels
    scale: ResponseScale = AGREE4
    sentence: str = ""
    direction: Direction = "higher_is_better"
    confidence: float = 0.95
    disclosure: Disclosure = field(default_factory=Disclosure)
    min_responses: int = MIN_RESPONSES
    design: str = "independent samples (anonymous waves)"

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "item": self.item, "statement": self.label, "wave_before": self.before,
            "wave_after": self.after, "n_before": self.n_before, "n_after": self.n_after,
            "agree_before": self.agree_before, "agree_after": self.agree_after,
            "response_rate_before": self.rate_before, "response_rate_after": self.rate_after,
            "pct_agree_before": self.pct_before, "pct_agree_after": self.pct_after,
            "change_pp": self.change_pp, "change_ci_low_pp": self.ci_low_pp,
            "change_ci_high_pp": self.ci_high_pp, "odds_ratio": self.odds_ratio,
            "or_ci_low": self.or_ci_low, "or_ci_high": self.or_ci_high, "or_p": self.or_p,
            "superiority": self.superiority, "superiority_ci_low": self.superiority_ci_low,
            "superiority_ci_high": self.superiority_ci_high}])

    def board_table(self, disclosure: Disclosure | None = None) -> pd.DataFrame:
        """``summary`` through ``disclosure`` (default: the result's): each wave's n and
        its numbers agreeing and not agreeing are counts (agree + not agree = n, so one
        small count withholds the other), and every figure is withheld with them."""
        shown = self.disclosure if disclosure is None else disclosure
        table = self.summary.assign(not_agree_before=self.n_before - self.agree_before,
                                    not_agree_after=self.n_after - self.agree_after)
        counts = ["n_before", "n_after", "agree_before", "agree_after", "not_agree_before",
                  "not_agree_after"]
        derived = [c for c in table.columns if c not in
                   ("item", "statement", "wave_before", "wave_after", *counts)]
        out = shown.table(table, counts, derived=derived,
                          sums_across=[["agree_before", "not_agree_before"],
                                       ["agree_after", "not_agree_after"]])
        return out.drop(columns=["not_agree_before", "not_agree_after"])

    def headline(self) -> dict[str, Any]:
        too_few = min(self.n_before, self.n_after) < self.min_responses
        said = (TOO_FEW if too_few else
                verdict(self.ci_low_pp, self.ci_high_pp, null=0.0, direction=self.direction))
        return {"estimate": self.change_pp, "ci_low": self.ci_low_pp,
                "ci_high": self.ci_high_pp,
                "unit": "percentage points (change in % agreeing)", "null": 0.0,
                "n": self.n_before + self.n_after, "period": f"{self.before} to {self.after}",
                "design": self.design, "verdict": said}

    def plot(self, ax: Any = None) -> Any:
        """The statement's answers at each wave as diverging stacked bars."""
        return _diverging(self.counts, self.label, self.scale, self.disclosure, ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None, n: int | None = None,
               notebook: str = "") -> Result:
        h = self.headline()
        figure = format_estimate(h["estimate"], h["ci_low"], h["ci_high"], h["unit"])
        text = (f"'{self.label}': {figure} percentage points agreeing between "
                f"{self.before} and {self.after}; {self.design}")
        return make_record(self, outcome, analysis="survey", headline=text, period=period,
                           n=n, notebook=notebook)


def _item_sentence(c: ItemComparison) -> str:
    shown = c.disclosure
    rates = _rates_text(c, shown)
    small = [c.n_before, c.n_after, c.agree_before, c.agree_after,
             c.n_before - c.agree_before, c.n_after - c.agree_after]
    if any(shown.is_small(k) for k in small):
        return (f"For '{c.label}', the numbers agreeing and not agreeing are withheld to "
                "protect pupils' privacy (a count below "
                f"{shown.threshold}). {DIFFERENT_RESPONDENTS}")
    if min(c.n_before, c.n_after) < c.min_responses:
        return (f"For '{c.label}', {rates}: fewer than {c.min_responses} in a wave, too few "
                "to judge a change, so no verdict is given.")
    pct = f"{c.confidence * 100:g}%"
    said = c.headline()["verdict"]
    clear = ("not a clear change either way" if said == "no clear change"
             else "a clear change")
    return (f"For '{c.label}', {rates}. {c.pct_before:.0f}% agreed in {c.before} and "
            f"{c.pct_after:.0f}% in {c.after}, a change of "
            f"{format_figure(c.change_pp, 'points', signed=True)} percentage points ({pct} "
            f"CI {format_interval(c.ci_low_pp, c.ci_high_pp, 'points')}): {clear}. Across "
            f"all levels of agreement, the odds of a higher answer were {c.odds_ratio:.2f} "
            f"times those in {c.before} ({pct} CI {c.or_ci_low:.2f} to {c.or_ci_high:.2f}). "
            f"{DIFFERENT_RESPONDENTS}")


def compare_waves(
    responses: pd.DataFrame,
    survey: Survey,
    measure: str,
    *,
    before: str,
    after: str,
    design: Literal["independent", "paired"] = "independent",
    eligible: Mapping[str, int] | None = None,
    direction: Direction | None = None,
    confidence: float = 0.95,
    disclosure: Disclosure | None = None,
    min_responses: int = MIN_RESPONSES,
    id: str = "pupil_id",
    agree: bool = False,
) -> ScaleComparison | ItemComparison | PairedChange | PairedOrdinal | PairedBinary:
    """Compare a subscale or one statement between two waves of a survey.

    ``measure`` is a subscale name or an item id; ``before``/``after`` name values of the
    ``wave`` column. ``eligible`` (pupils invited in each wave, by wave) gives response
    rates. ``direction`` defaults to higher_is_better, or lower_is_better for a
    reverse-keyed item (agreeing with it means less of what its subscale measures).

    * ``design="independent"`` (anonymous waves, different respondents): a subscale gives a
      :class:`ScaleComparison` (difference in mean score with Welch's interval, Hedges' g,
      probability of superiority); an item an :class:`ItemComparison` (change in % agreeing
      with Newcombe's interval, proportional-odds odds ratio, probability of superiority).
      Both say that different respondents answered each wave.
    * ``design="paired"`` (identified respondents, the ``id`` column, e.g. pupil_id): a
      subscale gives ``baseline_followup.paired_change`` of each pupil's scores, an item
      ``baseline_followup.paired_ordinal`` of each pupil's levels (with ``agree=True``,
      ``baseline_followup.paired_binary`` of whether each pupil agreed: the change in %
      agreeing with Newcombe's paired interval and McNemar's test).
    """
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}.")
    shown = disclosure if disclosure is not None else Disclosure()
    before, after = str(before), str(after)
    is_sub = measure in survey.subscales
    if not is_sub:
        item = survey.item(measure)
        direction = check_direction(direction) if direction is not None else (
            "lower_is_better" if item.reverse else "higher_is_better")
    else:
        direction = check_direction(direction or "higher_is_better")
    waves = set(responses["wave"].astype(str)) if "wave" in responses else set()
    for w in (before, after):
        if w not in waves:
            raise DataError(f"No responses in wave {w!r} (waves: {', '.join(sorted(waves))}).")
    if design == "paired":
        return _paired(responses, survey, measure, before, after, direction, confidence,
                       shown, min_responses, id, agree)
    if design != "independent":
        raise DataError(f"design must be 'independent' or 'paired', not {design!r}.")
    if is_sub:
        sc = scale_scores(responses, survey)
        x = sc.loc[sc["wave"] == before, measure].dropna().to_numpy(float)
        y = sc.loc[sc["wave"] == after, measure].dropna().to_numpy(float)
        return _compare_scale(survey, measure, before, after, x, y, eligible, direction,
                              confidence, shown, min_responses)
    return _compare_item(responses, survey, measure, before, after, eligible, direction,
                         confidence, shown, min_responses)


def _compare_scale(survey: Survey, sub: str, before: str, after: str, x: np.ndarray,
                   y: np.ndarray, eligible: Mapping[str, int] | None, direction: Direction,
                   confidence: float, shown: Disclosure, min_responses: int
                   ) -> ScaleComparison:
    if x.size < 2 or y.size < 2:
        raise DataError(f"Subscale {sub}: fewer than two scored responses in a wave.")
    welch = stats.ttest_ind(y, x, equal_var=False)
    ci = welch.confidence_interval(confidence_level=confidence)
    g, glo, ghi = hedges_g(x, y, confidence)
    ps, plo, phi = probability_of_superiority(x, y, confidence)
    eb, rb = _response_rate(x.size, eligible, before)
    ea, ra = _response_rate(y.size, eligible, after)
    scale = survey.response_scale(survey.subscale_items(sub)[0]).level_scores
    lo_s, hi_s = scale[0], scale[-1]
    k = len(survey.subscale_items(sub))
    if survey.score == "sum":
        lo_s, hi_s = lo_s * k, hi_s * k
    result = ScaleComparison(
        label=survey.label(sub), before=before, after=after, n_before=int(x.size),
        n_after=int(y.size), eligible_before=eb, eligible_after=ea, rate_before=rb,
        rate_after=ra, mean_before=float(x.mean()), mean_after=float(y.mean()),
        sd_before=float(x.std(ddof=1)), sd_after=float(y.std(ddof=1)),
        difference=float(y.mean() - x.mean()), ci_low=float(ci.low), ci_high=float(ci.high),
        welch_p=float(welch.pvalue), g=g, g_ci_low=glo, g_ci_high=ghi, superiority=ps,
        superiority_ci_low=plo, superiority_ci_high=phi,
        scale_text=f" (on a scale of {lo_s:g} to {hi_s:g})", direction=direction,
        confidence=confidence, disclosure=shown, min_responses=min_responses)
    result.sentence = _scale_sentence(result)
    return result


def _compare_item(responses: pd.DataFrame, survey: Survey, item_id: str, before: str,
                  after: str, eligible: Mapping[str, int] | None, direction: Direction,
                  confidence: float, shown: Disclosure, min_responses: int
                  ) -> ItemComparison:
    item = survey.item(item_id)
    scale = survey.response_scale(item)
    tidy = _tidy(responses, survey)
    rows = tidy[(tidy["item"] == item_id) & tidy["code"].notna()]
    x = rows.loc[rows["wave"] == before, "code"].to_numpy(float)
    y = rows.loc[rows["wave"] == after, "code"].to_numpy(float)
    if x.size < 1 or y.size < 1:
        raise DataError(f"Item {item_id}: no answers in one of the waves.")
    agree = {scale.levels.index(v) for v in scale.agree_levels}
    ab, aa = int(np.isin(x, list(agree)).sum()), int(np.isin(y, list(agree)).sum())
    lo, hi = newcombe_difference(ab, x.size, aa, y.size, confidence)
    orr, olo, ohi, op = proportional_odds(x, y, confidence)
    ps, plo, phi = probability_of_superiority(x, y, confidence)
    n_resp = tidy.groupby("wave")["response_id"].nunique()
    eb, rb = _response_rate(int(n_resp.get(before, 0)), eligible, before)
    ea, ra = _response_rate(int(n_resp.get(after, 0)), eligible, after)
    counts = pd.DataFrame(
        [np.bincount(v.astype(int), minlength=len(scale.levels)) for v in (x, y)],
        index=pd.Index([before, after], name="wave"), columns=scale.levels)
    result = ItemComparison(
        item=item_id, label=item.statement, before=before, after=after,
        n_before=int(x.size), n_after=int(y.size), agree_before=ab, agree_after=aa,
        eligible_before=eb, eligible_after=ea, rate_before=rb, rate_after=ra,
        pct_before=100 * ab / x.size, pct_after=100 * aa / y.size,
        change_pp=100 * (aa / y.size - ab / x.size), ci_low_pp=100 * lo, ci_high_pp=100 * hi,
        odds_ratio=orr, or_ci_low=olo, or_ci_high=ohi, or_p=op, superiority=ps,
        superiority_ci_low=plo, superiority_ci_high=phi, counts=counts, scale=scale,
        direction=direction,
        confidence=confidence, disclosure=shown, min_responses=min_responses)
    result.sentence = _item_sentence(result)
    return result


def _paired(responses: pd.DataFrame, survey: Survey, measure: str, before: str, after: str,
            direction: Direction, confidence: float, shown: Disclosure, min_pairs: int,
            id: str, agree: bool) -> PairedChange | PairedOrdinal | PairedBinary:
    if id not in responses.columns:
        raise DataError(f"A paired comparison needs identified respondents: the responses "
                        f"have no '{id}' column. Anonymous waves use design='independent'.")
    if measure in survey.subscales:
        sc = scale_scores(responses, survey)
        wide = sc[sc["wave"].isin([before, after])].pivot_table(
            index=id, columns="wave", values=measure, aggfunc="first")
        wide = wide.reindex(columns=[before, after]).reset_index()
        wide.columns = [id, "baseline", "follow_up"]
        return paired_change(wide, "baseline", "follow_up", direction=direction,
                             confidence=confidence, label=survey.label(measure),
                             disclosure=shown, min_pairs=min_pairs)
    item = survey.item(measure)
    scale = survey.response_scale(item)
    tidy = _tidy(responses, survey)
    rows = tidy[(tidy["item"] == measure) & tidy["wave"].isin([before, after])]
    wide = rows.pivot_table(index=id, columns="wave", values="response", aggfunc="first")
    wide = wide.reindex(columns=[before, after]).reset_index()
    wide.columns = [id, "baseline", "follow_up"]
    if agree:
        agreeing = {v.strip().lower() for v in scale.agree_levels}
        for col in ("baseline", "follow_up"):
            text = wide[col].astype("string").str.strip().str.lower()
            wide[col] = text.isin(agreeing).map({True: "yes", False: "no"}).where(
                wide[col].notna())
        return paired_binary(wide, "baseline", "follow_up", label=item.statement,
                             direction=direction, confidence=confidence, disclosure=shown,
                             min_pairs=min_pairs)
    return paired_ordinal(wide, "baseline", "follow_up", list(scale.levels),
                          label=item.statement, direction=direction, confidence=confidence,
                          disclosure=shown, min_pairs=min_pairs)


# ------------------------------------------------------------------ item pictures


def level_counts(responses: pd.DataFrame, survey: Survey,
                 waves: Sequence[str] | None = None,
                 items: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts of each level for each statement and wave: rows (item, wave), one column per
    level of the item's scale (statements with different scales have NaN in the others),
    and ``n`` (answers to the statement)."""
    tidy = _tidy(responses, survey)
    tidy = tidy[tidy["code"].notna()]
    waves = list(waves) if waves is not None else list(dict.fromkeys(tidy["wave"]))
    if items is None:  # the statements answered in these waves
        asked = set(tidy.loc[tidy["wave"].isin(waves), "item"])
        items = [i.id for i in survey.items if i.id in asked]
    rows = []
    for item_id in items:
        scale = survey.response_scale(item_id)
        for w in waves:
            codes = tidy.loc[(tidy["item"] == item_id) & (tidy["wave"] == w), "code"]
            c = np.bincount(codes.astype(int), minlength=len(scale.levels))
            rows.append({"item": item_id, "statement": survey.item(item_id).statement,
                         "wave": w, **dict(zip(scale.levels, c.tolist(), strict=True)),
                         "n": int(c.sum())})
    return pd.DataFrame(rows)


def item_table(responses: pd.DataFrame, survey: Survey, *, waves: Sequence[str] | None = None,
               items: Sequence[str] | None = None,
               disclosure: Disclosure | None = None) -> pd.DataFrame:
    """Each statement at each wave in the schools' own format: n, % strongly agree (the
    top level), % agree (including strongly) and % do not agree (everything else, neutral
    included), percentages of those who answered the statement.

    Through ``disclosure`` (default: a board): a count below the threshold is withheld
    (:data:`~evaluation.privacy.WITHHELD`) with the percentage worked out from it, and
    another where a withheld one could be recovered by subtraction (agree + do not agree
    = n; strongly agree + other agree = agree; strongly agree + other agree + do not agree
    = n); the count columns are then
    dropped, as the schools' tables show only n and the percentages.
    """
    shown = disclosure if disclosure is not None else Disclosure()
    counts = level_counts(responses, survey, waves, items)
    rows = []
    for _, r in counts.iterrows():
        scale = survey.response_scale(r["item"])
        n = int(r["n"])
        strong = int(r[scale.top])
        agree = int(sum(r[v] for v in scale.agree_levels))

        def pct(k: int, n: int = n) -> float:
            return 100 * k / n if n else np.nan

        rows.append({"statement": r["statement"], "wave": r["wave"], "n": n,
                     "n_strongly_agree": strong, "n_other_agree": agree - strong,
                     "n_agree": agree, "n_not_agree": n - agree,
                     "% strongly agree": pct(strong), "% agree (incl. strongly)": pct(agree),
                     "% do not agree": pct(n - agree)})
    table = pd.DataFrame(rows)
    pcts = ["% strongly agree", "% agree (incl. strongly)", "% do not agree"]
    if shown.active and len(table):
        table = shown.table(
            table, ["n", "n_strongly_agree", "n_other_agree", "n_agree", "n_not_agree"],
            derived={"n": pcts, "n_strongly_agree": ["% strongly agree"],
                     "n_agree": ["% agree (incl. strongly)"],
                     "n_not_agree": ["% do not agree"]},
            # the parts of "agree" first, so a small "strongly agree" is protected by
            # withholding the rest of "agree" rather than everything else
            sums_across=[["n_strongly_agree", "n_other_agree"],
                         ["n_strongly_agree", "n_other_agree", "n_not_agree"],
                         ["n_agree", "n_not_agree"]])
    return table[["statement", "wave", "n", *pcts]]


def _diverging(counts: pd.DataFrame, title: str, scale: ResponseScale, shown: Disclosure,
               ax: Any = None, labels: Sequence[str] | None = None) -> Any:
    """Diverging stacked bars, one per row of ``counts`` (columns = levels): disagreeing
    levels to the left of 0, neutral ones centred on it, agreeing ones to the right, as %
    of the row's answers; each bar labelled with its n. Rows with a count withheld by
    ``shown`` are drawn as one grey bar marked withheld."""
    import matplotlib.pyplot as plt

    levels = list(scale.levels)
    agree = scale.agree_levels
    neutral = [v for v in levels if v in scale.neutral]
    disagree = [v for v in levels if v not in agree and v not in neutral]
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(counts) + 1.5))
    else:
        fig = ax.figure
    n_dis, n_agr = max(len(disagree), 1), max(len(agree), 1)
    colours = {**{v: plt.cm.RdBu(0.15 + 0.3 * k / n_dis) for k, v in enumerate(disagree)},
               **{v: "0.8" for v in neutral},
               **{v: plt.cm.RdBu(0.6 + 0.3 * (k + 1) / n_agr) for k, v in enumerate(agree)}}
    c = counts[levels].astype(float)
    n = c.sum(axis=1)
    guarded = shown.table(c.assign(n=n).reset_index(drop=True), [*levels, "n"],
                          sums_across=[levels]) if shown.active else c.assign(n=n)
    y = np.arange(len(c))[::-1]
    drawn: set[str] = set()
    for row, yy in zip(range(len(c)), y, strict=True):
        total = n.iloc[row]
        if guarded.iloc[row].isin([WITHHELD]).any() or not total:
            ax.barh(yy, 100, left=-50, color="0.93", hatch="//", edgecolor="0.7")
            ax.text(0, yy, f"withheld {WITHHELD}" if total else "no answers", ha="center",
                    va="center", fontsize=8)
            continue
        pct = 100 * c.iloc[row] / total
        mid = sum(pct[v] for v in neutral) / 2
        left = -sum(pct[v] for v in disagree) - mid
        for v in [*disagree, *neutral, *agree]:
            ax.barh(yy, pct[v], left=left, color=colours[v],
                    label=v if v not in drawn else None)
            drawn.add(v)
            left += pct[v]
        ax.text(101, yy, f"n = {shown.count(total)}", va="center", fontsize=8)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(list(labels) if labels is not None else [str(i) for i in c.index])
    ax.set_xlim(-100, 115)
    ax.set_xticks([-100, -50, 0, 50, 100])
    ax.set_xticklabels(["100%", "50%", "0", "50%", "100%"])
    ax.set_xlabel("← do not agree   % of answers   agree →")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    handles, names = ax.get_legend_handles_labels()
    if handles:
        order = [names.index(v) for v in levels if v in names]
        ax.legend([handles[i] for i in order], [names[i] for i in order], frameon=False,
                  fontsize=8, ncol=len(order), loc="upper center",
                  bbox_to_anchor=(0.45, -0.18))
    return fig


def diverging_bars(responses: pd.DataFrame, survey: Survey, *,
                   waves: Sequence[str] | None = None, items: Sequence[str] | None = None,
                   disclosure: Disclosure | None = None, ax: Any = None,
                   title: str = "") -> Any:
    """Diverging stacked bars of every statement's answers at each wave (agree to the right,
    disagree to the left, neutral centred), with n, for statements sharing one response
    scale; small counts withheld through ``disclosure`` (default: a board)."""
    shown = disclosure if disclosure is not None else Disclosure()
    counts = level_counts(responses, survey, waves, items)
    scales = {survey.response_scale(i).levels.__repr__() for i in counts["item"]}
    if len(scales) > 1:
        raise DataError("diverging_bars draws statements with one response scale at a time: "
                        "pass items= of one scale.")
    scale = survey.response_scale(counts["item"].iloc[0])
    labels = [f"{s} ({w})" for s, w in zip(counts["statement"], counts["wave"], strict=True)]
    return _diverging(counts[scale.levels], title, scale, shown, ax, labels)
