"""Pathway KPIs per period (terms and academic years from :mod:`evaluation.calendar`),
their RAG status against targets, and the KPI sentences of a report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from evaluation import calendar
from evaluation.errors import DataError
from evaluation.intake import CLOSURE_OUTCOMES
from evaluation.params import (
    ReferralTrackingOptions,
    describe_error,
    kpi_direction,
    kpi_name,
)
from evaluation.privacy import Disclosure
from evaluation.results import Direction, OutcomeLike, Result, repr_html
from evaluation.tracking.outcomes import ProportionResult
from evaluation.tracking.register import Register, require

# The KPI names (KPIS), their short names (KPI_ALIASES), which way each is better
# (kpi_direction) and the rules of a target are defined once, in evaluation.params beside
# the `targets:` they are written in, so that `validate` and the report agree.


def period_keys(dates: pd.Series, period: str) -> pd.Series:
    """An integer key per date that sorts the periods in time (missing for a missing date).

    ``term``: :func:`evaluation.calendar.term_code` (autumn 1 Aug-31 Dec, spring 1 Jan-Easter
    Sunday, summer Easter Monday-31 Jul); ``year``: the academic year (1 Aug-31 Jul);
    ``month``: calendar months; ``all``: one period.
    """
    if period not in ("term", "month", "year", "all"):
        raise DataError(f"period must be 'term', 'month', 'year' or 'all', got {period!r}.")
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


def _checked_targets(targets: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The targets by full KPI name with their direction, checked by the parameters' own
    model (:class:`evaluation.params.ReferralTrackingOptions`), so that a target is refused
    here with the rule and the message ``evalkit validate`` gives."""
    try:
        options = ReferralTrackingOptions.model_validate({"targets": dict(targets or {})})
    except ValidationError as exc:
        raise DataError("; ".join(f"{key}: {message}" for error in exc.errors()
                                  for key, message in describe_error(error))) from None
    checked = {}
    for name, target in options.targets.items():
        kpi = kpi_name(name)
        checked[kpi] = {"green": target.green, "amber": target.amber,
                        "direction": target.direction or kpi_direction(kpi)}
    return checked


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
    holds g; ``rag`` is missing without a target or a value. The targets are checked as the
    parameters are (:class:`evaluation.params.KpiTarget`); a bad one raises a
    :class:`DataError`.
    """
    checked = _checked_targets(targets)
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
        "working_days_to_response": wd,
        "days_to_first_intervention": tab["days_to_first_intervention"],
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
        col = g[name]
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
    return PathwayKpis(summary=_rag(out, checked), response_target_working_days=target,
                       period=period, targets=checked, headline_kpi=headline_kpi,
                       confidence=confidence,
                       disclosure=Disclosure() if disclosure is None else disclosure)


def _rag(kpis: pd.DataFrame, targets: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Add ``target`` (the green threshold) and ``rag`` (green/amber/red) columns for the
    checked ``targets``."""
    kpis["target"] = np.nan
    kpis["rag"] = pd.Series(pd.NA, index=kpis.index, dtype="str")
    for kpi, spec in targets.items():
        sel = kpis["kpi"] == kpi
        v = kpis.loc[sel, "value"]
        sign = 1 if spec["direction"] == "higher_is_better" else -1
        rag = np.where(sign * v >= sign * spec["green"], "green",
                       np.where(sign * v >= sign * spec["amber"], "amber", "red"))
        kpis.loc[sel, "target"] = spec["green"]
        kpis.loc[sel, "rag"] = pd.Series(rag, index=v.index, dtype="str").where(v.notna())
    return kpis


def _n(count: float, word: str) -> str:
    c = int(count)
    return f"{c:,} {word if c == 1 else word + 's'}"


def _one_decimal(x: float) -> str:
    return f"{round(float(x), 1):g}"


#: The sentence of each headline KPI, in the order :func:`kpi_sentences` gives them, with
#: the noun of what its ``n`` counts. Fields: ``{period}``; ``{count}`` (the value) and
#: ``{n}`` as counts of the noun; ``{pct}`` (the value as a whole percentage);
#: ``{decimal}`` and ``{p90}`` (the value and the KPI's 90th percentile to one decimal);
#: ``{target_days}`` ("2 working days"); ``{rag}`` (" (target 90%: amber)" when rated).
KPI_SENTENCES: dict[str, tuple[str, str]] = {
    "referrals_received": ("referral", "{period}: {count} received."),
    "pct_response_within_target": (
        "referral", "{pct} of {n} had a first response within {target_days}{rag}."),
    "median_working_days_to_response": (
        "response", "The median time to a first response was {decimal} working days "
        "(90th percentile {p90}) across {n}{rag}."),
    "median_days_to_first_intervention": (
        "referral", "The median time from referral to the first intervention was {decimal} "
        "days (90th percentile {p90}) for {n}{rag}."),
    "pct_lead_professional": ("referral", "{pct} of {n} had a lead professional{rag}."),
    "pct_sessions_attended": ("planned session", "Pupils attended {pct} of {n}{rag}."),
    "pct_reviewed": ("referral", "{pct} of {n} with an intervention had been reviewed{rag}."),
    "pct_needs_met": ("case", "{pct} of {n} closed with a recorded outcome closed with the "
                              "pupil's needs met{rag}."),
}


def kpi_sentences(kpis: PathwayKpis | pd.DataFrame, period: str | None = None, *,
                  response_target_working_days: int | None = None) -> list[str]:
    """Plain-English sentences for the headline KPIs of one period (default: the latest
    period with referrals), e.g. "82% of 312 referrals had a first response within 2 working
    days (target 90%: amber)." (:data:`KPI_SENTENCES`), then the closures by outcome.
    Percentages are rounded to whole numbers, days to one decimal place (trailing .0
    dropped). KPIs whose value is missing or withheld (see
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

    out: list[str] = []
    for kpi, (noun, sentence) in KPI_SENTENCES.items():
        if kpi not in rows.index or rows.loc[kpi, ["value", "n"]].isna().any():
            continue
        r = rows.loc[kpi]
        p90 = (rows.loc[kpi.replace("median_", "p90_"), "value"]
               if kpi.startswith("median_") else np.nan)
        unit = "%" if kpi.startswith("pct_") else ""
        out.append(sentence.format(
            period=period, count=_n(r["value"], noun), n=_n(r["n"], noun),
            pct=f"{r['value']:.0f}%", decimal=_one_decimal(r["value"]), p90=_one_decimal(p90),
            target_days=f"{days} working day{'s' if days != 1 else ''}",
            rag="" if pd.isna(r["rag"]) else f" (target {r['target']:g}{unit}: {r['rag']})"))
    closures = rows[rows.index.str.startswith("closures: ") & rows["value"].notna()]
    closures = closures[closures["value"] > 0]
    if len(closures):
        parts = [f"{int(v):,} {k.removeprefix('closures: ')}" for k, v in closures["value"].items()]
        out.append(f"{_n(int(closures['n'].iloc[0]), 'case')} closed: " + ", ".join(parts) + ".")
    return out
