"""The flow of cases through the pathway: open caseload, funnel and time open."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from evaluation.tracking.register import Register


def caseload(register: Register, freq: str = "MS") -> pd.DataFrame:
    """Open caseload, new referrals and closures per period.

    Periods are pandas ``freq`` bins (``"MS"`` month starts, ``"W-MON"`` weeks, ``"QS"`` ...)
    from the one holding the first referral to the one holding ``register.today``.
    For a period ``[t, t_next)``: ``open_at_start`` = referrals with ``referral_date < t``
    minus closed referrals with ``closure_date < t``; ``new_referrals`` = referral dates in
    the period; ``closures`` = closure dates in the period (closed cases only);
    ``open_at_end = open_at_start + new_referrals - closures``.
    Columns: period_start, open_at_start, new_referrals, closures, open_at_end.
    """
    tab = register.table
    if tab.empty:
        return pd.DataFrame(columns=["period_start", "open_at_start", "new_referrals",
                                     "closures", "open_at_end"])
    off = to_offset(freq)
    first = off.rollback(tab["referral_date"].min().normalize())
    edges = pd.date_range(first, register.today + off, freq=off)
    referred = np.sort(tab["referral_date"].dropna().to_numpy())
    closed = np.sort(tab.loc[tab["status"] == "closed", "closure_date"].dropna().to_numpy())
    # how many referrals and closures came before each period edge
    r_before = np.searchsorted(referred, edges.to_numpy(referred.dtype))
    c_before = np.searchsorted(closed, edges.to_numpy(referred.dtype))
    opened = r_before[:-1] - c_before[:-1]
    new, shut = np.diff(r_before), np.diff(c_before)
    return pd.DataFrame({"period_start": edges[:-1], "open_at_start": opened,
                         "new_referrals": new, "closures": shut,
                         "open_at_end": opened + new - shut})


def funnel(register: Register) -> pd.DataFrame:
    """Referral pathway funnel: referred -> responded -> intervention -> reviewed -> closed.

    ``n`` counts referrals that reached the stage *and every earlier stage* (a nested funnel);
    ``n_any`` counts referrals that reached the stage regardless of earlier ones (they differ
    when, say, a case closes without a review). ``pct_of_referrals = 100 * n / referrals``;
    ``pct_of_previous = 100 * n / n of the previous stage``.
    """
    tab = register.table
    stages = {
        "referred": pd.Series(True, index=tab.index),
        "responded": tab["first_response_date"].notna(),
        "intervention started": tab["n_interventions"] > 0,
        "reviewed": tab["n_reviews"] > 0,
        "closed": tab["status"] == "closed",
    }
    nested = pd.Series(True, index=tab.index)
    rows = []
    for name, reached in stages.items():
        nested &= reached
        rows.append((name, int(nested.sum()), int(reached.sum())))
    out = pd.DataFrame(rows, columns=["stage", "n", "n_any"])
    total = len(tab)
    out["pct_of_referrals"] = 100.0 * out["n"] / total if total else np.nan
    prev = out["n"].shift(1)
    out["pct_of_previous"] = 100.0 * out["n"] / prev.where(prev > 0)
    out.loc[0, "pct_of_previous"] = 100.0 if total else np.nan
    return out


def time_open(register: Register, by: str | Sequence[str] = "status") -> pd.DataFrame:
    """Time open per case (``days_open`` = calendar days from referral to closure, or to
    ``register.today`` if open) summarised by ``by``: n, median, p90 (linear interpolation),
    max. Cases with a negative duration are left out (``days_open`` is missing)."""
    by = [by] if isinstance(by, str) else list(by)
    g = register.table.dropna(subset=["days_open"]).groupby(by, observed=True)["days_open"]
    out = pd.DataFrame({"n": g.count(), "median": g.median(), "p90": g.quantile(0.9),
                        "max": g.max()})
    return out.reset_index()
