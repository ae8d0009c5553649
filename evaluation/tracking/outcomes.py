"""What each intervention achieves: proportions with Wilson intervals, and costs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from evaluation.errors import DataError
from evaluation.tracking.register import REVIEW_OUTCOMES, Register


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
    lo, hi = proportion_confint(k.to_numpy(), n.to_numpy(), alpha=1 - confidence,
                                method="wilson")
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
