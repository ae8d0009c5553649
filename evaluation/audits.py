"""School self-evaluation audits rated at baseline and follow-up, across schools.

An audit rates each school on a few areas (e.g. an academy trust's SEND review: Leadership,
Identification, Tracking and monitoring progress, High-quality teaching and intervention,
Developing provision and wider access) on ordered levels that the audit names (Not evident
< Developing < Secure; Emerging < Established < Advanced; No < Yes for yes/no statements).
An :class:`Audit` (filled from a params file or a registry entry) names the areas and the
levels, lowest first. Ratings arrive as the kit table ``audit_ratings``::

    school_id  area        timepoint  rating      [item]  [chosen]
    SCH01      leadership  baseline   Developing          Y
    SCH01      leadership  follow_up  Secure              Y

``area`` is an area's id or its name (any case); ``item`` (optional) names a statement
within an area when an area has several; ``chosen``
(optional yes/no) marks the areas a school chose to work on.

The unit of analysis is the school: each school's change in an area is the mean change in
level (levels coded 0, 1, 2, ...) over its statements in that area (with one rating per
area, simply the number of levels moved), and over all areas its mean change across them.
Per area and overall :func:`audit_change` counts schools that moved up, stayed and moved
down, gives the sign test (exact binomial test of moves up among schools that changed,
``scipy.stats.binomtest``) with its estimand, the share of changing schools that moved up
(exact Clopper-Pearson interval), the Wilcoxon signed-rank test of the changes
(``scipy.stats.wilcoxon``, zero changes dropped) and the mean change with its t interval.
:func:`chosen_vs_others` compares each school's change in the areas it chose with its
change in the others. Counts here are of schools, not pupils, so they are not withheld
by the disclosure step.

Every result follows :class:`evaluation.results.AnalysisResult` and is recorded with
``analysis="audit"``.

In a notebook::

    audit = Audit.model_validate(params_block)            # or evaluation.demo.AUDIT
    change = audit_change(ratings, audit)                  # headline: all areas
    change                                                 # sentence and summary
    change.plot(); change.heatmap(); change.transitions["tracking"]
    change.for_area("tracking").record(outcome, notebook="40_surveys_audits.ipynb")
    chosen_vs_others(ratings, audit)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from evaluation.errors import DataError
from evaluation.results import (
    Direction,
    OutcomeLike,
    Result,
    check_direction,
    format_estimate,
    make_record,
    repr_html,
    verdict,
)

__all__ = [
    "NOT_EVIDENT_DEVELOPING_SECURE",
    "EMERGING_ESTABLISHED_ADVANCED",
    "YES_NO",
    "ALL_AREAS",
    "AuditArea",
    "Audit",
    "school_changes",
    "audit_change",
    "AuditChange",
    "chosen_vs_others",
    "ChosenComparison",
    "SELF_EVALUATION_CAUTION",
]

NOT_EVIDENT_DEVELOPING_SECURE = ["Not evident", "Developing", "Secure"]
EMERGING_ESTABLISHED_ADVANCED = ["Emerging", "Established", "Advanced"]
YES_NO = ["No", "Yes"]
#: The summary row of every area together.
ALL_AREAS = "All areas"

#: What a before-and-after self-evaluation cannot show, in plain words.
SELF_EVALUATION_CAUTION = (
    "These are each school's own ratings before and after, with no comparison schools, so "
    "they show how ratings changed, not what the work caused; ratings can also change as "
    "the people rating learn what each level looks like.")

_YES = {"yes", "y", "true", "t", "1", "1.0"}
_NO = {"no", "n", "false", "f", "0", "0.0"}


class AuditArea(BaseModel):
    """One area of an audit: its id (the ``area`` value in the ratings), its name, and its
    own levels when they differ from the audit's (e.g. yes/no)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    label: str = ""
    levels: list[str] | None = None

    @property
    def name(self) -> str:
        return self.label or self.id


class Audit(BaseModel):
    """An audit's areas and its ordered levels, lowest first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    title: str = ""
    levels: list[str] = Field(default_factory=lambda: list(NOT_EVIDENT_DEVELOPING_SECURE),
                              min_length=2)
    areas: list[AuditArea] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Audit:
        ids = [a.id for a in self.areas]
        if len(set(ids)) != len(ids):
            raise ValueError("area ids must be unique")
        for levels in [self.levels, *(a.levels for a in self.areas if a.levels)]:
            low = [v.strip().lower() for v in levels]
            if len(set(low)) != len(low) or len(low) < 2:
                raise ValueError("an audit's levels must be at least two different words")
        return self

    def area(self, area_id: str) -> AuditArea:
        for a in self.areas:
            if a.id == area_id:
                return a
        raise DataError(f"Audit {self.id!r} has no area {area_id!r} "
                        f"(areas: {', '.join(a.id for a in self.areas)}).")

    def levels_of(self, area_id: str) -> list[str]:
        return list(self.area(area_id).levels or self.levels)


def _yes_no(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(np.where(text.isin(_YES).fillna(False), True,
                             np.where(text.isin(_NO).fillna(False), False, None)),
                    index=values.index, dtype=object)
    bad = values.notna() & out.isna()
    if bad.any():
        raise DataError(f"Column 'chosen' should hold yes/no but has {int(bad.sum())} other "
                        "values. Use yes/no (or y/n, true/false, 1/0).")
    return out.fillna(False).astype(bool)


def _tidy(ratings: pd.DataFrame, audit: Audit) -> pd.DataFrame:
    """The ratings with a level code (0 = lowest level of the area), checked."""
    need = ["school_id", "area", "timepoint", "rating"]
    missing = [c for c in need if c not in ratings.columns]
    if missing:
        raise DataError(f"The audit ratings have no column {', '.join(missing)} (the "
                        "audit_ratings table: school_id, area, timepoint, rating).")
    data = ratings.copy()
    # an area may be written as its id or its name ("tracking" or "Tracking and monitoring
    # progress"), in any case
    names = {**{a.name.strip().lower(): a.id for a in audit.areas},
             **{a.id.strip().lower(): a.id for a in audit.areas}}
    written = data["area"].astype(str)
    data["area"] = written.str.strip().str.lower().map(names).fillna(written)
    data["school_id"] = data["school_id"].astype(str)
    data["timepoint"] = data["timepoint"].astype(str).str.strip().str.lower()
    bad_tp = ~data["timepoint"].isin(["baseline", "follow_up"])
    if bad_tp.any():
        raise DataError(f"{int(bad_tp.sum())} ratings have a timepoint other than baseline or "
                        "follow_up.")
    if "item" not in data.columns:
        data["item"] = ""
    data["item"] = data["item"].fillna("").astype(str)
    unknown = sorted(set(data["area"]) - {a.id for a in audit.areas})
    if unknown:
        raise DataError(f"The ratings name areas that audit {audit.id!r} does not define: "
                        f"{', '.join(unknown)}.")
    dup = data.duplicated(["school_id", "area", "item", "timepoint"], keep=False)
    if dup.any():
        raise DataError(f"{int(dup.sum())} rows rate the same school, area and statement "
                        "twice at one timepoint: keep one.")
    code = pd.Series(np.nan, index=data.index)
    text = data["rating"].astype("string").str.strip().str.lower()
    for a in audit.areas:
        rows = (data["area"] == a.id).to_numpy()
        levels = audit.levels_of(a.id)
        c = text[rows].map({v.strip().lower(): k for k, v in enumerate(levels)})
        bad = data.loc[rows, "rating"].notna() & c.isna()
        if bad.any():
            raise DataError(f"Area {a.id!r}: {int(bad.sum())} ratings are not one of its "
                            f"levels ({', '.join(levels)}).")
        code[rows] = c.astype(float)
    data["code"] = code
    data["chosen"] = _yes_no(data["chosen"]) if "chosen" in data.columns else False
    return data


def school_changes(ratings: pd.DataFrame, audit: Audit) -> pd.DataFrame:
    """One row per school and area: ``baseline`` and ``follow_up`` (mean level code over the
    area's statements, 0 = lowest level), ``change`` (follow-up - baseline, in levels; NaN
    unless the school was rated at both) and ``chosen`` (the school chose the area)."""
    tidy = _tidy(ratings, audit)
    mean = tidy.pivot_table(index=["school_id", "area"], columns="timepoint", values="code",
                            aggfunc="mean")
    mean = mean.reindex(columns=["baseline", "follow_up"])
    chosen = tidy.groupby(["school_id", "area"])["chosen"].any()
    out = mean.join(chosen).reset_index()
    out.columns.name = None
    out["change"] = out["follow_up"] - out["baseline"]
    order = {a.id: k for k, a in enumerate(audit.areas)}
    out = out.sort_values(["school_id", "area"], key=lambda s: s.map(order) if s.name ==
                          "area" else s).reset_index(drop=True)
    return out[["school_id", "area", "baseline", "follow_up", "change", "chosen"]]


def _movement(change: np.ndarray, confidence: float) -> dict[str, Any]:
    """Counts up / same / down, the sign test with its estimand and exact interval, the
    Wilcoxon signed-rank test and the mean change with its t interval."""
    d = change[~np.isnan(change)]
    up, down = int((d > 0).sum()), int((d < 0).sum())
    out: dict[str, Any] = {"n_schools": int(d.size), "n_up": up, "n_same": int(d.size) - up
                           - down, "n_down": down, "up_share": np.nan, "up_share_ci_low":
                           np.nan, "up_share_ci_high": np.nan, "sign_test_p": np.nan,
                           "wilcoxon_W": np.nan, "wilcoxon_p": np.nan,
                           "mean_change": float(d.mean()) if d.size else np.nan,
                           "mean_change_ci_low": np.nan, "mean_change_ci_high": np.nan}
    if up + down:
        test = stats.binomtest(up, up + down, 0.5)
        ci = test.proportion_ci(confidence_level=confidence, method="exact")
        w = stats.wilcoxon(d, zero_method="wilcox")
        out.update(up_share=up / (up + down), up_share_ci_low=float(ci.low),
                   up_share_ci_high=float(ci.high), sign_test_p=float(test.pvalue),
                   wilcoxon_W=float(w.statistic), wilcoxon_p=float(w.pvalue))
    if d.size >= 2 and d.std(ddof=1) > 0:
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence_level=confidence)
        out.update(mean_change_ci_low=float(ci.low), mean_change_ci_high=float(ci.high))
    return out


@dataclass
class AuditChange:
    """Result of :func:`audit_change`: how schools' ratings moved, per area and overall.

    Follows :class:`evaluation.results.AnalysisResult`. ``summary``: one row per area and
    an :data:`ALL_AREAS` row (each school's mean change over the areas). ``transitions``:
    per area, ratings (school x statement) at baseline (rows) by follow-up (columns).
    ``changes``: :func:`school_changes`. The headline is the row ``focus`` (default
    :data:`ALL_AREAS`; :meth:`for_area` picks an area): the share of schools whose rating
    changed that moved up, with its exact interval, against 1/2 (the sign test's
    estimand).
    """

    title: str
    summary: pd.DataFrame
    transitions: dict[str, pd.DataFrame]
    changes: pd.DataFrame
    levels: dict[str, list[str]]
    area_names: dict[str, str]
    sentence: str = ""
    focus: str = ALL_AREAS
    direction: Direction = "higher_is_better"
    confidence: float = 0.95
    min_schools: int = 5
    design: str = "single group before–after (school self-evaluation)"

    def row(self, area: str | None = None) -> pd.Series:
        key = self.focus if area is None else area
        rows = self.summary[self.summary["area"] == key]
        if rows.empty:
            raise DataError(f"No area {key!r} in this audit (areas: "
                            f"{', '.join(self.summary['area'])}).")
        return rows.iloc[0]

    def for_area(self, area: str) -> AuditChange:
        """This result with ``area`` as its headline (for an outcome about one area)."""
        self.row(area)
        done = replace(self, focus=area)
        done.sentence = _audit_sentence(done)
        return done

    def headline(self) -> dict[str, Any]:
        r = self.row()
        lo, hi = float(r["up_share_ci_low"]), float(r["up_share_ci_high"])
        ok = np.isfinite(lo) and np.isfinite(hi)
        said = verdict(lo if ok else None, hi if ok else None, null=0.5,
                       direction=self.direction)
        if int(r["n_schools"]) < self.min_schools:
            said = verdict(None, None, null=0.5, direction=self.direction)
        return {"estimate": float(r["up_share"]), "ci_low": lo, "ci_high": hi,
                "unit": "share of schools whose rating changed that moved up", "null": 0.5,
                "n": int(r["n_schools"]), "design": self.design, "verdict": said}

    def plot(self, ax: Any = None) -> Any:
        """Per area and overall: % of schools that moved down (left), stayed (centred) and
        moved up (right)."""
        import matplotlib.pyplot as plt

        s = self.summary
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 0.5 * len(s) + 1.5))
        else:
            fig = ax.figure
        y = np.arange(len(s))[::-1]
        n = s["n_schools"].clip(lower=1).to_numpy(float)
        down, same, up = (100 * s[c].to_numpy(float) / n for c in ("n_down", "n_same", "n_up"))
        ax.barh(y, down, left=-down - same / 2, color="C3", label="moved down")
        ax.barh(y, same, left=-same / 2, color="0.8", label="stayed")
        ax.barh(y, up, left=same / 2, color="C0", label="moved up")
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([self.area_names.get(a, a) for a in s["area"]])
        ax.set_xlim(-100, 100)
        ax.set_xlabel("% of schools rated at both audits")
        ax.legend(frameon=False, fontsize=8, ncol=3, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2))
        return fig

    def heatmap(self, axes: Any = None) -> Any:
        """Schools (rows) by areas (columns) at baseline and at follow-up, side by side,
        coloured by level (0 = the lowest level) and labelled with the level's name where a
        school has one rating in the area."""
        import matplotlib.pyplot as plt

        areas = list(self.levels)
        schools = sorted(self.changes["school_id"].unique())
        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(2 + 1.6 * len(areas),
                                                    0.3 * len(schools) + 2), sharey=True)
        fig = axes[0].figure
        top = max(len(v) - 1 for v in self.levels.values())
        for ax, when in zip(axes, ("baseline", "follow_up"), strict=True):
            grid = self.changes.pivot(index="school_id", columns="area", values=when)
            grid = grid.reindex(index=schools, columns=areas)
            scaled = grid / pd.Series({a: len(self.levels[a]) - 1 for a in areas}) * top
            ax.imshow(scaled.to_numpy(float), cmap="Blues", vmin=-0.5, vmax=top + 0.3,
                      aspect="auto")
            for i in range(len(schools)):
                for j, a in enumerate(areas):
                    v = grid.iat[i, j]
                    if np.isfinite(v) and float(v).is_integer():
                        ax.text(j, i, self.levels[a][int(v)], ha="center", va="center",
                                fontsize=6, color="white" if v * top / max(
                                    len(self.levels[a]) - 1, 1) > top / 2 else "black")
            ax.set_xticks(range(len(areas)))
            ax.set_xticklabels([self.area_names[a] for a in areas], rotation=30, ha="right",
                               fontsize=8)
            ax.set_title("Baseline" if when == "baseline" else "Follow-up")
        axes[0].set_yticks(range(len(schools)))
        axes[0].set_yticklabels(schools, fontsize=7)
        return fig

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None, n: int | None = None,
               notebook: str = "") -> Result:
        h = self.headline()
        name = self.area_names.get(self.focus, self.focus)
        figure = format_estimate(h["estimate"], h["ci_low"], h["ci_high"], "proportion")
        text = (f"{self.title} ({name}): {figure} of schools whose rating changed moved up; "
                f"{self.design}")
        return make_record(self, outcome, analysis="audit", headline=text, period=period,
                           n=n, notebook=notebook)


def _audit_sentence(r: AuditChange) -> str:
    row = r.row()
    name = r.area_names.get(r.focus, r.focus)
    where = ("on average over the areas" if r.focus == ALL_AREAS else f"in {name}")
    n = int(row["n_schools"])
    if n < r.min_schools:
        return (f"Only {n} schools were rated {where} at both audits, fewer than the "
                f"{r.min_schools} needed to judge a change, so no verdict is given.")
    text = (f"Of {n} schools rated at both audits, {int(row['n_up'])} moved up {where}, "
            f"{int(row['n_same'])} stayed at the same level and {int(row['n_down'])} moved "
            "down")
    if not int(row["n_up"]) + int(row["n_down"]):
        return f"{text}. {SELF_EVALUATION_CAUTION}"
    pct = f"{r.confidence * 100:g}%"
    text += (f": of the schools whose rating changed, {row['up_share']:.0%} moved up ({pct} "
             f"CI {row['up_share_ci_low']:.0%} to {row['up_share_ci_high']:.0%}; sign test "
             f"{_p(row['sign_test_p'])}, Wilcoxon {_p(row['wilcoxon_p'])}).")
    if r.focus == ALL_AREAS:
        areas = r.summary[r.summary["area"] != ALL_AREAS]
        most = areas.loc[areas["n_up"] - areas["n_down"] == (areas["n_up"]
                                                             - areas["n_down"]).max(), "area"]
        text += (" Most movement up: "
                 + ", ".join(r.area_names.get(a, a) for a in most) + ".")
    return f"{text} {SELF_EVALUATION_CAUTION}"


def _p(p: float) -> str:
    """A p-value in words: "p = 0.012", or "p < 0.001" rather than a misleading 0.000."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def audit_change(ratings: pd.DataFrame, audit: Audit, *, area: str | None = None,
                 direction: Direction = "higher_is_better", confidence: float = 0.95,
                 min_schools: int = 5) -> AuditChange:
    """Movement of schools' ratings between baseline and follow-up, per area and overall.

    Per area, each school's change is its mean change in level over the area's statements;
    overall (:data:`ALL_AREAS`), its mean change over the areas it was rated on at both
    times. Schools with a change above 0 moved up, below 0 down. See the module docstring
    for the tests. ``area`` sets the headline (default all areas); ``direction`` says
    whether a higher level is better (the default). Fewer than ``min_schools`` schools rated
    at both times: no verdict.
    """
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}.")
    direction = check_direction(direction)
    tidy = _tidy(ratings, audit)
    changes = school_changes(ratings, audit)
    rows = []
    transitions = {}
    for a in audit.areas:
        d = changes.loc[changes["area"] == a.id, "change"].to_numpy(float)
        rows.append({"area": a.id, **_movement(d, confidence)})
        levels = audit.levels_of(a.id)
        pairs = tidy[tidy["area"] == a.id].pivot_table(
            index=["school_id", "item"], columns="timepoint", values="code", aggfunc="first")
        pairs = pairs.reindex(columns=["baseline", "follow_up"]).dropna()
        k = len(levels)
        tab = np.bincount((pairs["baseline"] * k + pairs["follow_up"]).astype(int),
                          minlength=k * k).reshape(k, k)
        transitions[a.id] = pd.DataFrame(
            tab, index=pd.Index(levels, name="baseline"),
            columns=pd.Index(levels, name="follow-up"))
    overall = changes.dropna(subset=["change"]).groupby("school_id")["change"].mean()
    rows.append({"area": ALL_AREAS, **_movement(overall.to_numpy(float), confidence)})
    result = AuditChange(
        title=audit.title or audit.id, summary=pd.DataFrame(rows), transitions=transitions,
        changes=changes, levels={a.id: audit.levels_of(a.id) for a in audit.areas},
        area_names={**{a.id: a.name for a in audit.areas}, ALL_AREAS: ALL_AREAS},
        direction=direction, confidence=confidence, min_schools=min_schools)
    return result.for_area(area) if area is not None else result.for_area(ALL_AREAS)


@dataclass
class ChosenComparison:
    """Result of :func:`chosen_vs_others`: each school's change in the areas it chose to work
    on minus its change in the other areas (levels), across schools.

    Follows :class:`evaluation.results.AnalysisResult`. Headline: the mean of the schools'
    differences with its t interval, against 0; also the sign test and Wilcoxon test of the
    differences. ``per_school``: one row per school with both kinds of area.
    """

    title: str
    per_school: pd.DataFrame
    n_schools: int
    mean_chosen: float
    mean_others: float
    difference: float
    ci_low: float
    ci_high: float
    n_more: int
    n_same: int
    n_less: int
    sign_test_p: float
    wilcoxon_W: float
    wilcoxon_p: float
    sentence: str = ""
    direction: Direction = "higher_is_better"
    confidence: float = 0.95
    min_schools: int = 5
    design: str = "within-school comparison of chosen and other areas (self-evaluation)"

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "n_schools": self.n_schools, "mean_change_chosen": self.mean_chosen,
            "mean_change_others": self.mean_others, "difference": self.difference,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "n_chosen_moved_more": self.n_more,
            "n_same": self.n_same, "n_chosen_moved_less": self.n_less,
            "sign_test_p": self.sign_test_p, "wilcoxon_W": self.wilcoxon_W,
            "wilcoxon_p": self.wilcoxon_p}])

    def headline(self) -> dict[str, Any]:
        ok = self.n_schools >= self.min_schools
        said = verdict(self.ci_low if ok else None, self.ci_high if ok else None, null=0.0,
                       direction=self.direction)
        return {"estimate": self.difference, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "unit": "difference in levels moved (chosen minus other areas)", "null": 0.0,
                "n": self.n_schools, "design": self.design, "verdict": said}

    def plot(self, ax: Any = None) -> Any:
        """Each school's mean change in its chosen areas against its other areas."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
        else:
            fig = ax.figure
        p = self.per_school
        jitter = np.random.default_rng(0).uniform(-0.03, 0.03, (2, len(p)))
        ax.scatter(p["others"] + jitter[0], p["chosen"] + jitter[1], color="C0", alpha=0.7)
        lo = float(min(p["others"].min(), p["chosen"].min(), 0)) - 0.2
        hi = float(max(p["others"].max(), p["chosen"].max(), 1)) + 0.2
        ax.plot([lo, hi], [lo, hi], color="0.5", ls=":")
        ax.set_xlabel("Mean change in other areas (levels)")
        ax.set_ylabel("Mean change in chosen areas (levels)")
        return fig

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None, n: int | None = None,
               notebook: str = "") -> Result:
        h = self.headline()
        text = (f"{self.title}: chosen areas moved "
                f"{format_estimate(h['estimate'], h['ci_low'], h['ci_high'], 'points')} "
                f"levels more than other areas; {self.design}")
        return make_record(self, outcome, analysis="audit", headline=text, period=period,
                           n=n, notebook=notebook)


def chosen_vs_others(ratings: pd.DataFrame, audit: Audit, *,
                     direction: Direction = "higher_is_better", confidence: float = 0.95,
                     min_schools: int = 5) -> ChosenComparison:
    """Did the areas each school chose to work on move more than its other areas?

    For each school rated at both times with at least one chosen and one other area:
    mean change (levels) in its chosen areas minus mean change in the others. Across those
    schools: the mean difference with its t interval (``scipy.stats.ttest_1samp``), the
    sign test (``binomtest``) of schools whose chosen areas moved more against fewer, and
    the Wilcoxon signed-rank test. Needs the ``chosen`` column.
    """
    direction = check_direction(direction)
    if "chosen" not in ratings.columns:
        raise DataError("The audit ratings have no 'chosen' column saying which areas each "
                        "school chose to work on.")
    ch = school_changes(ratings, audit).dropna(subset=["change"])
    per = ch.groupby(["school_id", "chosen"])["change"].mean().unstack()
    per = per.reindex(columns=[True, False]).dropna()
    per.columns = ["chosen", "others"]
    per["difference"] = per["chosen"] - per["others"]
    d = per["difference"].to_numpy(float)
    m = _movement(d, confidence)
    per = per.reset_index()
    result = ChosenComparison(
        title=audit.title or audit.id, per_school=per, n_schools=int(d.size),
        mean_chosen=float(per["chosen"].mean()) if d.size else np.nan,
        mean_others=float(per["others"].mean()) if d.size else np.nan,
        difference=m["mean_change"], ci_low=m["mean_change_ci_low"],
        ci_high=m["mean_change_ci_high"], n_more=m["n_up"], n_same=m["n_same"],
        n_less=m["n_down"], sign_test_p=m["sign_test_p"], wilcoxon_W=m["wilcoxon_W"],
        wilcoxon_p=m["wilcoxon_p"], direction=direction, confidence=confidence,
        min_schools=min_schools)
    result.sentence = _chosen_sentence(result)
    return result


def _chosen_sentence(r: ChosenComparison) -> str:
    if r.n_schools < r.min_schools:
        return (f"Only {r.n_schools} schools had both chosen and other areas rated at both "
                f"audits, fewer than the {r.min_schools} needed to compare them.")
    pct = f"{r.confidence * 100:g}%"
    interval = (f"{r.ci_low:+.2f} to {r.ci_high:+.2f}" if math.isfinite(r.ci_low)
                else "not estimable")
    return (f"In the {r.n_schools} schools with both, the areas each school chose to work on "
            f"moved {r.mean_chosen:+.2f} levels on average and its other areas "
            f"{r.mean_others:+.2f}, a difference of {r.difference:+.2f} levels ({pct} CI "
            f"{interval}); in {r.n_more} schools the chosen areas moved more, in {r.n_same} "
            f"the same and in {r.n_less} less (sign test {_p(r.sign_test_p)}). Schools "
            "chose these areas themselves, often where they expected to make progress, and "
            "rated them themselves. " + SELF_EVALUATION_CAUTION)

