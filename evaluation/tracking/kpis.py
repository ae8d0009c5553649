"""Pathway KPIs per period (terms and academic years from :mod:`evaluation.calendar`),
their RAG status against targets, and the KPI sentences of a report."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evaluation import calendar
from evaluation.errors import DataError
from evaluation.intake import CLOSURE_OUTCOMES
from evaluation.params import CLOSURES_KPI, KPI_ALIASES, KPIS, kpi_direction, kpi_name
from evaluation.privacy import Disclosure
from evaluation.results import Direction, OutcomeLike, Result, repr_html
from evaluation.tracking.outcomes import ProportionResult
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


#: The KPIs that are a share of something (a proportion with a Wilson interval): their
#: name in a headline, the unit recorded, what their ``n`` counts and what a success is.
SHARE_KPIS: dict[str, tuple[str, str, str, str]] = {
    "pct_response_within_target": ("first response on time",
                                   "proportion of referrals due a first response",
                                   "referral", "due a first response had one within "
                                   "{days} working days"),
    "pct_lead_professional": ("lead professional named", "proportion of referrals",
                              "referral", "had a lead professional named"),
    "pct_sessions_attended": ("sessions attended", "proportion of planned sessions",
                              "planned session", "were attended"),
    "pct_reviewed": ("reviewed", "proportion of referrals with an intervention",
                     "referral", "with an intervention had been reviewed"),
    "pct_needs_met": ("needs met", "proportion of closed referrals", "closed referral",
                      "with an outcome recorded closed with the pupil's needs met"),
}


@dataclass
class PathwayKpis:
    """The pathway KPIs of :func:`pathway_kpis` and the settings they were computed with.

    Follows :class:`evaluation.results.AnalysisResult`: ``summary`` is the tidy long table
    (period, kpi, value, n, target, rag); the headline is ``headline_kpi`` (a share KPI, see
    :data:`SHARE_KPIS`) in the latest period with referrals, as a
    :class:`~evaluation.tracking.outcomes.ProportionResult` against its green threshold
    (:meth:`proportion`).
    """

    summary: pd.DataFrame
    response_target_working_days: int
    period: str
    #: the targets by full KPI name: {"green": g, "amber": a, "direction": ...}
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    headline_kpi: str = "pct_response_within_target"
    confidence: float = 0.95
    disclosure: Disclosure = field(default_factory=Disclosure)

    @property
    def direction(self) -> Direction:
        """Which way the headline KPI is better (its target's, else the KPI's own)."""
        spec = self.targets.get(self.headline_kpi, {})
        return spec.get("direction") or kpi_direction(self.headline_kpi)

    @property
    def latest_period(self) -> str | None:
        """The latest period with referrals (None when there is none)."""
        rec = self.summary.loc[self.summary["kpi"] == "referrals_received", "period"]
        return None if rec.empty else str(rec.iloc[-1])

    def proportion(self, kpi: str | None = None, period: str | None = None
                   ) -> ProportionResult:
        """A share KPI in one period (default: the headline KPI in the latest period) as a
        proportion with its Wilson interval, judged against the KPI's green threshold."""
        kpi = kpi_name(kpi or self.headline_kpi) or str(kpi)
        if kpi not in SHARE_KPIS:
            raise DataError(f"{kpi!r} is not a share KPI; one of {', '.join(SHARE_KPIS)}.")
        period = period or self.latest_period
        rows = self.summary[(self.summary["kpi"] == kpi) & (self.summary["period"] == period)]
        if rows.empty or pd.isna(rows["value"].iloc[0]):
            n, successes = 0, 0
        else:
            n = int(rows["n"].iloc[0])
            # the KPI value is 100 * successes / n of whole counts
            successes = int(round(float(rows["value"].iloc[0]) * n / 100))
        spec = self.targets.get(kpi)
        label, unit, of, what = SHARE_KPIS[kpi]
        return ProportionResult(
            successes=successes, n=n,
            target=None if spec is None else float(spec["green"]) / 100,
            target_source="" if spec is None else "the green threshold of its target",
            direction=(spec or {}).get("direction") or kpi_direction(kpi),
            confidence=self.confidence, label=label, unit=unit, of=of,
            what=what.format(days=self.response_target_working_days), period=period or "",
            disclosure=self.disclosure)

    def headline(self) -> dict[str, Any]:
        return self.proportion().headline()

    @property
    def sentence(self) -> str:
        """The KPI sentences of the latest period (:func:`kpi_sentences`)."""
        return " ".join(kpi_sentences(self))

    def plot(self, ax: Any = None) -> Any:
        """The headline KPI by period with its green and amber thresholds."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 3.5))
        else:
            fig = ax.figure
        rows = self.summary[self.summary["kpi"] == self.headline_kpi]
        x = np.arange(len(rows))
        ax.plot(x, pd.to_numeric(rows["value"], errors="coerce"), "o-", color="#0072B2",
                label=SHARE_KPIS.get(self.headline_kpi, (self.headline_kpi,))[0])
        spec = self.targets.get(self.headline_kpi)
        if spec is not None:
            ax.axhline(spec["green"], color="#009E73", ls="--", lw=1, label="green")
            ax.axhline(spec["amber"], color="#E69F00", ls=":", lw=1.2, label="amber")
        ax.set_xticks(x, rows["period"], rotation=45, ha="right", fontsize="small")
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.legend(fontsize="x-small")
        return fig

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record of the headline KPI against its target."""
        return self.proportion().record(outcome, period=period, n=n, notebook=notebook)


def _normalised_targets(targets: Mapping[str, Mapping[str, Any]] | None
                        ) -> dict[str, dict[str, Any]]:
    out = {}
    for name, spec in (targets or {}).items():
        kpi = kpi_name(name) or str(name)
        out[kpi] = {"green": float(spec["green"]), "amber": float(spec["amber"]),
                    "direction": spec.get("direction") or kpi_direction(kpi)}
    return out


def pathway_kpis(
    register: Register,
    response_target_working_days: int = 2,
    period: str = "term",
    targets: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    headline_kpi: str = "pct_response_within_target",
    confidence: float = 0.95,
    disclosure: Disclosure | None = None,
) -> PathwayKpis:
    """Pathway KPIs per period: a :class:`PathwayKpis` whose ``summary`` is a tidy long
    table: period, kpi, value, n, target, rag.

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
    out = _rag(out, targets)  # (checks the targets first)
    return PathwayKpis(summary=out, response_target_working_days=target, period=period,
                       targets=_normalised_targets(targets), headline_kpi=headline_kpi,
                       confidence=confidence,
                       disclosure=Disclosure() if disclosure is None else disclosure)


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


def kpi_sentences(kpis: PathwayKpis | pd.DataFrame, period: str | None = None, *,
                  response_target_working_days: int | None = None) -> list[str]:
    """Plain-English sentences for the headline KPIs of one period (default: the latest
    period with referrals), e.g. "82% of 312 referrals had a first response within 2 working
    days (target 90%: amber)." Percentages are rounded to whole numbers, days to one decimal
    place (trailing .0 dropped). KPIs whose value is missing or withheld (see
    :func:`evaluation.privacy.disclose`) are left out. ``kpis``: a :class:`PathwayKpis`, or
    its long table (e.g. after disclosure control) with ``response_target_working_days``
    (default 2).
    """
    if isinstance(kpis, PathwayKpis):
        days = kpis.response_target_working_days
        kpis = kpis.summary
    else:
        days = 2
    if response_target_working_days is not None:
        days = int(response_target_working_days)
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
