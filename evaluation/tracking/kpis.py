"""Pathway KPIs per period (terms and academic years from :mod:`evaluation.calendar`),
their RAG status against targets, and the KPI sentences of a report."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from evaluation import calendar
from evaluation.errors import DataError
from evaluation.intake import CLOSURE_OUTCOMES
from evaluation.params import CLOSURES_KPI, KPI_ALIASES, KPIS, kpi_direction, kpi_name
from evaluation.tracking.register import Register, require

# The KPI names (KPIS), their short names (KPI_ALIASES) and which way each is better
# (kpi_direction) are defined once, in evaluation.params beside the `targets:` they are
# written in, so that `validate` and the report agree.


def period_keys(dates: pd.Series, period: str) -> pd.Series:
    """An integer key per date that sorts the periods in time (missing for a missing date).

    ``term``: :func:`evaluation.calendar.term_code` (autumn 1 Aug-31 Dec, spring 1 Jan-Easter
    Sunday, summer Easter Monday-31 Jul); ``year``: the academic year (1 Aug-31 Jul);
    ``month``: calendar months; ``all``: one period.
    """
    if period not in ("term", "month", "year", "all"):
        raise DataError(f"period must be 'term', 'month', 'year' or 'all', got {period!r}.")
    dates = pd.to_datetime(dates)
    known = dates.dropna()  # (calendar.term fails on a column with no date at all)
    if known.empty and period in ("term", "year"):
        return pd.Series(pd.NA, index=dates.index, dtype="Int64")
    if period == "term":
        return calendar.term_code(known).reindex(dates.index)
    if period == "year":
        return calendar.academic_year(known).reindex(dates.index)
    if period == "month":
        return (dates.dt.year * 12 + dates.dt.month - 1).astype("Int64")
    return pd.Series(0, index=dates.index, dtype="Int64").where(dates.notna())


def period_name(key: int, period: str) -> str:
    """The label of a :func:`period_keys` key: ``"2023/24 autumn"``, ``"2023/24"``,
    ``"2024-01"`` or ``"all periods"``."""
    if period == "term":
        return calendar.term_label(key)
    if period == "year":
        return calendar.academic_year_label(key)
    if period == "month":
        return f"{key // 12}-{key % 12 + 1:02d}"
    return "all periods"


def period_label(date: Any, period: str) -> str:
    """The label of the KPI period holding ``date`` (e.g. ``"2023/24 summer"``)."""
    key = period_keys(pd.Series([pd.Timestamp(date)]), period).iloc[0]
    return "" if pd.isna(key) else period_name(int(key), period)


def _pct(num: pd.Series, den: pd.Series) -> pd.Series:
    return (100.0 * num / den.where(den > 0)).astype(float)


def pathway_kpis(
    register: Register,
    response_target_working_days: int = 2,
    period: str = "term",
    targets: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Pathway KPIs per period as a tidy long table: period, kpi, value, n, target, rag.

    Referrals count in the period of their ``referral_date`` (a cohort view), closures in the
    period of their ``closure_date``; ``n`` is always the denominator (or count).

    * ``referrals_received`` = number of referrals.
    * ``pct_response_within_target`` = 100 * R / D: R = referrals answered within
      ``response_target_working_days`` working days; D = referrals answered plus those still
      awaiting an answer whose working days to ``register.today`` already exceed the target.
    * ``median_/p90_working_days_to_response`` and ``median_/p90_days_to_first_intervention``:
      median and 90th percentile (linear interpolation) among referrals with a value.
    * ``pct_lead_professional`` = 100 * referrals with a (non-blank) lead professional /
      referrals.
    * ``pct_sessions_attended`` (dosage) = 100 * attended / planned sessions, over referrals
      with both recorded and planned > 0; ``n`` = sessions planned.
    * ``pct_reviewed`` = 100 * referrals reviewed / referrals with an intervention.
    * ``pct_needs_met`` = 100 * closures with "needs met" / closures with an outcome (``n``).
    * ``closures: <outcome>`` = closures with that outcome (``n`` = all closures; ``not
      recorded`` when none was given).

    ``targets`` maps a KPI (or a short name in :data:`KPI_ALIASES`) to ``{"green": g,
    "amber": a, "direction": "higher_is_better" | "lower_is_better"}`` (default
    :func:`kpi_direction`): higher is better -> green if value >= g, amber if >= a, else red
    (mirrored for lower). ``target``
    holds g; ``rag`` is missing without a target or a value.
    """
    tab = register.table
    target = int(response_target_working_days)
    wd = tab["working_days_to_response"]
    awaiting = tab["first_response_date"].isna()
    so_far = calendar.working_days_between(
        tab["referral_date"][awaiting], pd.Series(register.today, index=tab.index[awaiting]))
    late_awaiting = (so_far.astype(float) > target).reindex(tab.index, fill_value=False)
    planned, attended = tab["sessions_planned"], tab["sessions_attended"]
    both = planned.notna() & attended.notna() & (planned > 0)
    has_iv = tab["n_interventions"] > 0
    rows = pd.DataFrame({
        "key": period_keys(tab["referral_date"], period),
        "due": wd.notna() | late_awaiting,
        "within": wd.notna() & (wd <= target),
        "wd": wd,
        "dti": tab["days_to_first_intervention"],
        "lead": tab["lead_professional"].notna()
        & tab["lead_professional"].astype("str").str.strip().ne(""),
        "planned": planned.where(both, 0.0),
        "attended": attended.where(both, 0.0),
        "has_iv": has_iv,
        "reviewed": has_iv & (tab["n_reviews"] > 0),
    })
    g = rows.dropna(subset=["key"]).groupby("key")
    sums = g[["due", "within", "lead", "planned", "attended", "has_iv", "reviewed"]].sum()
    n_ref = g.size()
    kpis: list[tuple[str, pd.Series, pd.Series]] = [
        ("referrals_received", n_ref.astype(float), n_ref),
        ("pct_response_within_target", _pct(sums["within"], sums["due"]), sums["due"]),
    ]
    for name in ("working_days_to_response", "days_to_first_intervention"):
        col = g["wd" if name.startswith("working") else "dti"]
        kpis += [(f"median_{name}", col.median(), col.count()),
                 (f"p90_{name}", col.quantile(0.9), col.count())]
    kpis += [
        ("pct_lead_professional", _pct(sums["lead"], n_ref), n_ref),
        ("pct_sessions_attended", _pct(sums["attended"], sums["planned"]), sums["planned"]),
        ("pct_reviewed", _pct(sums["reviewed"], sums["has_iv"]), sums["has_iv"]),
    ]

    closed = tab.loc[tab["status"] == "closed", ["closure_date", "closure_outcome"]]
    counts = pd.crosstab(period_keys(closed["closure_date"], period),
                         closed["closure_outcome"].astype("str").fillna("not recorded"))
    total = counts.sum(axis=1)
    recorded = total - counts.get("not recorded", 0)
    kpis.append(("pct_needs_met", _pct(counts.get("needs met", 0 * total), recorded), recorded))
    others = sorted(o for o in counts.columns if o not in CLOSURE_OUTCOMES)
    for o in [*CLOSURE_OUTCOMES, *others]:
        kpis.append((f"closures: {o}", counts.get(o, 0 * total).astype(float), total))

    out = pd.concat([pd.DataFrame({"key": value.index.astype(np.int64), "order": i,
                                   "kpi": name, "value": value.to_numpy(dtype=float),
                                   "n": n.reindex(value.index).to_numpy(dtype=np.int64)})
                     for i, (name, value, n) in enumerate(kpis)], ignore_index=True)
    out = out.sort_values(["key", "order"], kind="stable").reset_index(drop=True)
    labels = {k: period_name(int(k), period) for k in out["key"].unique()}
    out = pd.DataFrame({"period": out["key"].map(labels).astype("str"),
                        "kpi": out["kpi"].astype("str"), "value": out["value"],
                        "n": out["n"]})
    out = _rag(out, targets)
    out.attrs["response_target_working_days"] = target
    out.attrs["period"] = period
    return out


def _rag(kpis: pd.DataFrame, targets: Mapping[str, Mapping[str, Any]] | None) -> pd.DataFrame:
    """Add ``target`` (the green threshold) and ``rag`` (green/amber/red) columns."""
    kpis["target"] = np.nan
    kpis["rag"] = pd.Series(pd.NA, index=kpis.index, dtype="str")
    for name, spec in (targets or {}).items():
        kpi = kpi_name(name)
        if kpi is None:
            close = difflib.get_close_matches(str(name), [*KPIS, *KPI_ALIASES], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(f"targets: unknown KPI {name!r}.{hint} Known KPIs: "
                            f"{', '.join(KPIS)} and '{CLOSURES_KPI}<outcome>'; short names: "
                            f"{', '.join(KPI_ALIASES)}.")
        if not isinstance(spec, Mapping) or "green" not in spec or "amber" not in spec:
            raise DataError(f"targets[{kpi!r}] must be a mapping with 'green' and 'amber' "
                            "thresholds, e.g. {'green': 90, 'amber': 80}.")
        green, amber = float(spec["green"]), float(spec["amber"])
        direction = spec.get("direction") or kpi_direction(kpi)
        if direction not in ("higher_is_better", "lower_is_better"):
            raise DataError(f"targets[{kpi!r}]['direction'] must be 'higher_is_better' or "
                            "'lower_is_better'.")
        higher = direction == "higher_is_better"
        if (higher and amber > green) or (not higher and amber < green):
            raise DataError(f"targets[{kpi!r}]: with direction {direction!r} the amber "
                            f"threshold ({amber}) cannot be beyond green ({green}).")
        sel = kpis["kpi"] == kpi
        v = kpis.loc[sel, "value"]
        sign = 1 if higher else -1
        rag = np.where(sign * v >= sign * green, "green",
                       np.where(sign * v >= sign * amber, "amber", "red"))
        kpis.loc[sel, "target"] = green
        kpis.loc[sel, "rag"] = pd.Series(rag, index=v.index, dtype="str").where(v.notna())
    return kpis


def _n(count: float, word: str, plural: str | None = None) -> str:
    c = int(count)
    return f"{c:,} {word if c == 1 else (plural or word + 's')}"


def _rag_suffix(row: pd.Series, unit: str) -> str:
    if pd.isna(row["rag"]):
        return ""
    return f" (target {row['target']:g}{unit}: {row['rag']})"


def kpi_sentences(kpis: pd.DataFrame, period: str | None = None) -> list[str]:
    """Plain-English sentences for the headline KPIs of one period (default: the latest
    period with referrals), e.g. "82% of 312 referrals had a first response within 2 working
    days (target 90%: amber)." Percentages are rounded to whole numbers, days to one decimal
    place (trailing .0 dropped). KPIs whose value is missing or withheld (see
    :func:`evaluation.privacy.disclose`) are left out.
    """
    require(kpis, "KPI", ["period", "kpi", "value", "n", "target", "rag"])
    if period is None:
        rec = kpis.loc[kpis["kpi"] == "referrals_received", "period"]
        if rec.empty:
            return []
        period = rec.iloc[-1]
    rows = kpis[kpis["period"] == period].set_index("kpi")
    # withheld cells (privacy.WITHHELD) read as missing, so their KPI is left out
    rows = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce"),
                       n=pd.to_numeric(rows["n"], errors="coerce"))
    days = kpis.attrs.get("response_target_working_days", 2)

    def have(k: str) -> bool:
        return (k in rows.index and not pd.isna(rows.loc[k, "value"])
                and not pd.isna(rows.loc[k, "n"]))

    def num(x: float) -> str:
        return f"{round(float(x), 1):g}"

    def row(k: str) -> pd.Series:
        return rows.loc[k]

    out: list[str] = []
    if have("referrals_received"):
        out.append(f"{period}: {_n(row('referrals_received')['value'], 'referral')} received.")
    if have("pct_response_within_target"):
        r = row("pct_response_within_target")
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'referral')} had a first response "
                   f"within {days} working day{'s' if days != 1 else ''}"
                   f"{_rag_suffix(r, '%')}.")
    if have("median_working_days_to_response"):
        r = row("median_working_days_to_response")
        p90 = rows.loc["p90_working_days_to_response", "value"]
        out.append(f"The median time to a first response was {num(r['value'])} working days "
                   f"(90th percentile {num(p90)}) across {_n(r['n'], 'response')}"
                   f"{_rag_suffix(r, '')}.")
    if have("median_days_to_first_intervention"):
        r = row("median_days_to_first_intervention")
        p90 = rows.loc["p90_days_to_first_intervention", "value"]
        out.append(f"The median time from referral to the first intervention was "
                   f"{num(r['value'])} days (90th percentile {num(p90)}) for "
                   f"{_n(r['n'], 'referral')}{_rag_suffix(r, '')}.")
    if have("pct_lead_professional"):
        r = row("pct_lead_professional")
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'referral')} had a lead professional"
                   f"{_rag_suffix(r, '%')}.")
    if have("pct_sessions_attended"):
        r = row("pct_sessions_attended")
        out.append(f"Pupils attended {r['value']:.0f}% of {_n(r['n'], 'planned session')}"
                   f"{_rag_suffix(r, '%')}.")
    if have("pct_reviewed"):
        r = row("pct_reviewed")
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'referral')} with an intervention had "
                   f"been reviewed{_rag_suffix(r, '%')}.")
    if have("pct_needs_met"):
        r = row("pct_needs_met")
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'case')} closed with a recorded outcome "
                   f"closed with the pupil's needs met{_rag_suffix(r, '%')}.")
    closures = rows[rows.index.str.startswith("closures: ") & rows["value"].notna()]
    closures = closures[closures["value"] > 0]
    if len(closures):
        parts = [f"{int(v):,} {k.removeprefix('closures: ')}" for k, v in closures["value"].items()]
        out.append(f"{_n(int(closures['n'].iloc[0]), 'case')} closed: " + ", ".join(parts) + ".")
    return out
