"""What each intervention achieves: proportions with Wilson intervals (overall against a
target, and by group), and costs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from evaluation.errors import DataError
from evaluation.privacy import Disclosure
from evaluation.results import (
    NOT_A_CHANGE,
    Direction,
    RecordsHeadline,
    check_direction,
    format_estimate,
    format_figure,
    format_interval,
)
from evaluation.tracking.register import REVIEW_OUTCOMES, Register


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n`` (``proportion_confint``)."""
    lo, hi = proportion_confint(successes, n, 1 - confidence, method="wilson")
    return float(lo), float(hi)


@dataclass
class ProportionResult(RecordsHeadline):
    """A proportion (``successes`` of ``n``) with its Wilson score interval, shown beside a
    ``target`` proportion (the pathway's KPI target, for the RAG rating of each period).

    Follows :class:`evaluation.results.AnalysisResult`. A share at one time is not a
    change, so its verdict is :data:`evaluation.results.NOT_A_CHANGE` and its null is
    missing: "improved" or "no clear change" would claim a before/after comparison that
    was not made. The theory-of-change target judges it in its own words
    (:func:`evaluation.targets.judge`: met / not met / not yet clear).
    """

    analysis = "referral_tracking"  # (the analysis recorded in results.json)

    successes: int
    n: int
    target: float | None = None
    target_source: str = ""
    direction: Direction = "higher_is_better"
    confidence: float = 0.95
    label: str = "needs met"
    unit: str = "proportion of closed referrals"
    #: what ``n`` counts, singular, e.g. "closed referral with an outcome recorded"
    of: str = "closed referral"
    #: what a success is, e.g. "closed with the pupil's needs met"
    what: str = "closed with the pupil's needs met"
    period: str = ""
    disclosure: Disclosure = field(default_factory=Disclosure)

    def __post_init__(self) -> None:
        check_direction(self.direction)
        if not 0 <= self.successes <= self.n:
            raise DataError(f"A proportion needs 0 <= successes <= n, got {self.successes} "
                            f"of {self.n}.")

    @property
    def proportion(self) -> float:
        return self.successes / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        """The Wilson score interval (missing when n is 0)."""
        if not self.n:
            return float("nan"), float("nan")
        return wilson_interval(self.successes, self.n, self.confidence)

    @property
    def withheld(self) -> bool:
        """Whether the share would disclose a small count (of successes or of the rest)."""
        small = self.disclosure.is_small
        return bool(self.n) and (small(self.n) or small(self.successes)
                                 or small(self.n - self.successes))

    @property
    def summary(self) -> pd.DataFrame:
        lo, hi = self.interval
        return pd.DataFrame([{"n": self.n, "successes": self.successes,
                              "proportion": self.proportion, "ci_low": lo, "ci_high": hi,
                              "target": np.nan if self.target is None else self.target}])

    def headline(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {"estimate": self.proportion, "ci_low": lo, "ci_high": hi, "unit": self.unit,
                "null": float("nan"), "n": self.n, "period": self.period,
                "verdict": NOT_A_CHANGE}

    def headline_text(self) -> str:
        """E.g. 'Needs met 65% (59% to 70%); target 70%'."""
        h = self.headline()
        name = self.label[:1].upper() + self.label[1:]
        text = f"{name} {format_estimate(h['estimate'], h['ci_low'], h['ci_high'], self.unit)}"
        if self.target is not None:
            text += f"; target {format_figure(self.target, self.unit)}"
        return text

    @property
    def share_sentence(self) -> str:
        """ "65% of 252 closed referrals ... (95% CI 59% to 70%)", or why it is not given."""
        if not self.n:
            return f"No {self.of} yet."
        if self.withheld:
            t = self.disclosure.threshold
            return (f"Fewer than {t} {self.of}s {self.what}, or fewer than {t} did not, "
                    "so the proportion is withheld to protect pupils' privacy.")
        lo, hi = self.interval
        pct = f"{self.confidence * 100:g}%"
        return (f"{format_figure(self.proportion, self.unit)} of "
                f"{self.disclosure.pupils(self.n, self.of)} {self.what} "
                f"({pct} CI {format_interval(lo, hi, self.unit)}).")

    @property
    def sentence(self) -> str:
        """The share, then where its interval lies against the KPI target (no verdict: a
        share at one time is not a change; the theory-of-change target judges it)."""
        if self.target is None:
            return self.share_sentence
        lo, hi = self.interval
        where = ("clearly above" if lo > self.target else "clearly below" if hi < self.target
                 else "not clearly different from")
        source = f" ({self.target_source})" if self.target_source else ""
        return (f"{self.share_sentence} This is {where} the target of "
                f"{format_figure(self.target, self.unit)}{source}.")

    def plot(self, ax: Any = None) -> Any:
        """The proportion with its interval and the target line."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 1.8))
        else:
            fig = ax.figure
        lo, hi = self.interval
        p = self.proportion
        ax.errorbar([100 * p], [0], xerr=[[100 * (p - lo)], [100 * (hi - p)]], fmt="o",
                    color="#0072B2", capsize=4)
        if self.target is not None:
            ax.axvline(100 * self.target, color="#D55E00", ls="--", lw=1,
                       label=f"target {format_figure(self.target, self.unit)}")
            ax.legend(fontsize="small")
        ax.set_xlim(0, 100)
        ax.set_yticks([])
        ax.set_xlabel(f"{self.label[:1].upper() + self.label[1:]} (%), with "
                      f"{self.confidence * 100:g}% CI")
        return fig


def needs_met(register: Register, *, target: float | None = None, target_source: str = "",
              direction: Direction = "higher_is_better", confidence: float = 0.95,
              disclosure: Disclosure | None = None) -> ProportionResult:
    """The proportion of closed referrals with an outcome recorded that closed as "needs
    met", with its Wilson interval, judged against ``target`` (a proportion, e.g. 0.70)."""
    tab = register.table
    closed = tab["needs_met"].dropna()
    dates = tab.loc[tab["needs_met"].notna(), "closure_date"]
    period = (f"referrals closed {dates.min():%B %Y} to {dates.max():%B %Y}"
              if len(dates) else "")
    return ProportionResult(
        successes=int(closed.sum()), n=len(closed), target=target,
        target_source=target_source, direction=direction, confidence=confidence,
        label="needs met", unit="proportion of closed referrals",
        of="closed referral", what="with an outcome recorded closed with the pupil's "
        "needs met", period=period,
        disclosure=Disclosure() if disclosure is None else disclosure)


def outcome_column(register: Register, outcome: str) -> pd.Series:
    """The register's column for ``outcome`` (``needs_met`` or a review outcome)."""
    if outcome == "needs_met" or outcome in REVIEW_OUTCOMES:
        return register.table[outcome]
    raise DataError(f"outcome must be 'needs_met' or one of {', '.join(REVIEW_OUTCOMES)}, "
                    f"got {outcome!r}.")


def _by_intervention_type(register: Register, columns: list[str], outcome: str
                          ) -> pd.DataFrame:
    """One row per distinct (referral, intervention type) of the referrals with a value of
    ``outcome``, with the referral's ``columns``."""
    pairs = register.interventions[["referral_id", "intervention"]].drop_duplicates()
    referrals = register.table.loc[register.table[outcome].notna(), ["referral_id", *columns]]
    return pairs.merge(referrals, on="referral_id")


def outcomes_by(
    register: Register,
    by: str | Sequence[str] = "intervention",
    outcome: str = "needs_met",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Proportion of referrals with a good ``outcome`` by group, with Wilson score CIs.

    ``outcome``: ``"needs_met"`` (closed cases with an outcome) or a review outcome
    (``attendance_improved``, ``ready_to_learn``, ``on_track``: the latest review's value);
    referrals with no value are left out. ``by``: ``"intervention"`` (every intervention type
    a referral received: a referral with two types counts in both) and/or register columns
    (``reason``, ``school_id``, ``first_intervention``, pupil columns such as ``sen_status``).
    Rows with a missing group value are left out. CI: ``proportion_confint(method="wilson")``.
    Columns: the ``by`` columns, n, successes, proportion, ci_low, ci_high.
    """
    by = [by] if isinstance(by, str) else list(by)
    outcome_column(register, outcome)
    missing = [c for c in by if c != "intervention" and c not in register.table.columns]
    if missing:
        raise DataError(f"outcomes_by: the register has no column {', '.join(missing)}. "
                        "Pupil characteristics need build_register(..., pupils=pupils).")
    if "intervention" in by:
        others = [c for c in by if c != "intervention"]
        data = _by_intervention_type(register, [*others, outcome], outcome)
    else:
        data = register.table
    data = data[data[outcome].notna()]
    g = data.groupby(by, observed=True)[outcome]
    n, k = g.size(), g.sum().astype(np.int64)
    lo, hi = proportion_confint(k.to_numpy(), n.to_numpy(), 1 - confidence, method="wilson")
    out = pd.DataFrame({"n": n.to_numpy(np.int64), "successes": k.to_numpy(),
                        "proportion": (k / n).to_numpy(float), "ci_low": lo, "ci_high": hi},
                       index=n.index)
    return out.reset_index()


def costs(register: Register, outcome: str = "needs_met") -> pd.DataFrame:
    """Cost per pupil and per successful outcome by intervention type (plus an ``all`` row).

    Only interventions with a cost are used (``n_interventions_without_cost`` counts the
    rest). ``total_cost`` = sum of costs; ``n_pupils`` / ``n_referrals`` = distinct pupils /
    referrals with a costed intervention; ``n_successes`` = distinct such referrals whose
    ``outcome`` is True; ``cost_per_pupil = total_cost / n_pupils``; ``cost_per_success =
    total_cost / n_successes`` (the whole spend, including cases without success or still
    open, divided by successes: the usual cost-per-outcome ratio).
    """
    success = outcome_column(register, outcome).fillna(False).astype(bool)
    iv = register.interventions
    costed = iv.loc[iv["cost"].notna(), ["referral_id", "pupil_id", "intervention", "cost"]]
    costed = costed.merge(
        pd.DataFrame({"referral_id": register.table["referral_id"], "_success": success}),
        on="referral_id")
    costed = costed.assign(succeeded=costed["referral_id"].where(costed["_success"]))
    aggregate = {"total_cost": ("cost", "sum"), "n_interventions": ("cost", "size"),
                 "n_pupils": ("pupil_id", "nunique"), "n_referrals": ("referral_id", "nunique"),
                 "n_successes": ("succeeded", "nunique")}
    per_type = costed.groupby("intervention", observed=True).agg(**aggregate)
    overall = pd.DataFrame({name: [costed[col].agg(how)] for name, (col, how)
                            in aggregate.items()}, index=["all"])
    out = pd.concat([per_type.set_axis(per_type.index.astype("str")), overall])
    out["total_cost"] = out["total_cost"].astype(float)
    out["cost_per_pupil"] = out["total_cost"] / out["n_pupils"].where(out["n_pupils"] > 0)
    out["cost_per_success"] = out["total_cost"] / out["n_successes"].where(
        out["n_successes"] > 0)
    no_cost = iv.loc[iv["cost"].isna(), "intervention"].astype("str").value_counts()
    out["n_interventions_without_cost"] = no_cost.reindex(out.index, fill_value=0)
    out.loc["all", "n_interventions_without_cost"] = int(iv["cost"].isna().sum())
    out = out.astype({c: np.int64 for c in ("n_interventions", "n_pupils", "n_referrals",
                                            "n_successes", "n_interventions_without_cost")})
    return out.rename_axis("intervention").reset_index().astype({"intervention": "str"})
