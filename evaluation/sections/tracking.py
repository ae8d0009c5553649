"""The referral-tracking report: is the pathway keeping its promises, and what changes?

Every function takes the :class:`~evaluation.project.Project` and reads its options from
``project.params.analyses.referral_tracking`` (defaults when that is not set); each returns
a :class:`~evaluation.sections.Section` for ``notebooks/30_referral_tracking.ipynb``:

* :func:`promises_section` - what the pathway promises (theory of change and KPI targets);
* :func:`kpi_section` - pathway KPIs per period with their RAG rating, in plain English;
* :func:`flow_section`, :func:`time_open_section` - caseload, funnel and time open;
* :func:`outcomes_section`, :func:`costs_section` - needs met by intervention and by pupil
  characteristics (Wilson CIs), review outcomes, cost per pupil and per success;
* :func:`attendance_section`, :func:`suspensions_section`, :func:`survival_section` -
  what changed for each pupil around their first intervention;
* :func:`disproportionality_section` - risk ratios of referral, suspension and escalation
  for the group named by ``disproportionality_group``;
* :func:`quality_section` - data-quality problems counted by check;
* :func:`outcome_section` - the headline :class:`~evaluation.results.Result` of a
  theory-of-change outcome (``referral_attendance``-style attendance outcomes and
  ``needs_met``).

Decisions that shape the numbers:

* **Data end date** (open cases, censoring, "after today" checks): the project period's
  end date when it has passed, otherwise today's date (:func:`data_end_date`).
* **Privacy**: every table goes through :func:`evaluation.privacy.check_board_safe` (no
  pupil ids, names or UPNs) and the project's one disclosure step
  (``project.disclosure.table``): counts below ``report.min_count`` are withheld
  (:data:`evaluation.privacy.WITHHELD`) with what is computed from them, and so is the
  next cell of every additive set (rows adding up to a total shown elsewhere, a group's
  count and all other pupils' count adding up to everyone's) that would give one away.
  Counts in sentences go through ``project.disclosure.count``. Charts show only groups
  whose table row is shown. Free text never becomes a label: the reason for referral is
  shown only for the categories the parameters declare, and lead professionals only as
  whether one is named.
* **Before/after** comparisons use each pupil's *first* intervention start (the earliest
  across their referrals). Attendance compares the ``attendance_window_weeks`` school
  weeks before the start week with the same number from the start week on (the start week
  counts as "after"); suspensions compare the 90 days before and after, for pupils whose
  90 days after had passed by the data end date.
* **Needs met verdict**: see :func:`needs_met_target`.

Every number here is computed in :mod:`evaluation.tracking` (the Wilson intervals, the
paired changes, the Kaplan-Meier proportions, the risk ratios); this module chooses the
words, lays out the tables and prints recorded figures with
:func:`evaluation.results.format_figure`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from evaluation import targets, tracking
from evaluation.errors import DataError, ParamsError
from evaluation.filters import FilterError, parse_filter
from evaluation.params import REFERRAL_TRACKING_MEASURES, ReferralTrackingOptions
from evaluation.privacy import (
    NOT_APPLICABLE,
    WITHHELD,
    Disclosure,
    check_board_safe,
)
from evaluation.project import Project
from evaluation.results import format_figure, format_interval
from evaluation.sections import Section
from evaluation.toc import Outcome

__all__ = [
    "NOTEBOOK",
    "SUPPORTED_MEASURES",
    "attendance_section",
    "costs_section",
    "data_end_date",
    "disproportionality_section",
    "flow_section",
    "group_mask",
    "kpi_section",
    "needs_met_target",
    "outcome_section",
    "outcomes_section",
    "promises_section",
    "quality_section",
    "suspensions_section",
    "survival_section",
    "time_open_section",
    "tracking_data",
]

NOTEBOOK = "30_referral_tracking.ipynb"
#: Measures :func:`outcome_section` can evidence, with the table kind each needs.
SUPPORTED_MEASURES = REFERRAL_TRACKING_MEASURES  # defined once, where validate checks it
SUSPENSION_WINDOW_DAYS = 90
LEVEL = 3  # sections sit under the notebook's static "##" headings

KPI_LABELS = {
    "referrals_received": "Referrals",
    "pct_response_within_target": "First response on time",
    "median_working_days_to_response": "Median working days to first response",
    "median_days_to_first_intervention": "Median days to first intervention",
    "pct_lead_professional": "Lead professional named",
    "pct_sessions_attended": "Sessions attended",
    "pct_reviewed": "Reviewed",
    "pct_needs_met": "Closed with needs met",
}
KPI_MEANING = {
    "pct_response_within_target": "referrals with a first response within {days} working "
                                  "days, of those due one",
    "median_working_days_to_response": "working days from referral to first response",
    "median_days_to_first_intervention": "calendar days from referral to the first "
                                         "intervention",
    "pct_lead_professional": "referrals with a lead professional named",
    "pct_sessions_attended": "planned sessions that pupils attended",
    "pct_reviewed": "referrals with an intervention that have had a review",
    "pct_needs_met": "closed referrals (with an outcome recorded) closed as needs met",
}
CHARACTERISTICS = {"reason": "Reason for referral", "school_id": "School",
                   "sen_status": "SEN status", "fsm": "Free school meals", "sex": "Sex",
                   "ethnicity": "Ethnicity"}
REVIEW_LABELS = {"attendance_improved": "Attendance improved",
                 "ready_to_learn": "Ready to learn", "on_track": "On track"}
PERCENT_FMT = "{:.0f}%"


# ----------------------------------------------------------------------------- data


@dataclass
class TrackingData:
    """The project's tables prepared once for every section (see :func:`tracking_data`)."""

    options: ReferralTrackingOptions
    register: tracking.Register
    kpis: tracking.PathwayKpis
    pupils: pd.DataFrame | None
    attendance: pd.DataFrame | None
    suspensions: pd.DataFrame | None
    min_count: int
    # attendance, suspensions and survival per pupil: started in the background when the
    # register is built, while the pathway sections are drawn, and shared by every section
    pupil: tracking.PupilAnalyses = field(repr=False)
    # the project's disclosure control (threshold and audience)
    disclosure: Disclosure = field(default_factory=Disclosure)
    # the declared categories of the referral reason (None: not declared, never shown)
    reasons: list[str] | None = None


def _options(project: Project) -> ReferralTrackingOptions:
    options = project.params.analyses.referral_tracking
    return options if options is not None else ReferralTrackingOptions()


def data_end_date(project: Project) -> pd.Timestamp:
    """The date the data are taken to run to: the project period's end if it has passed,
    else today. Open cases are counted up to it and later dates are flagged."""
    today = pd.Timestamp(dt.date.today())
    period = project.params.project.period
    if period is not None and pd.Timestamp(period.end) <= today:
        return pd.Timestamp(period.end)
    return today


def _targets(options: ReferralTrackingOptions) -> dict[str, dict[str, float]]:
    return {name: t.model_dump() for name, t in options.targets.items()}


def tracking_data(project: Project) -> TrackingData:
    """The referral register and KPIs, built once per project (kept in
    ``project.computed``) and shared by the sections."""
    if "referral_tracking" not in project.computed:
        project.computed["referral_tracking"] = _tracking_data(project)
    return project.computed["referral_tracking"]


def _tracking_data(project: Project) -> TrackingData:
    options = _options(project)
    pupils = project.table(options.pupils)
    attendance = project.table(options.attendance)
    try:
        register = tracking.build_register(
            project.table(options.referrals), project.table(options.interventions),
            project.table(options.reviews), pupils=pupils, today=data_end_date(project))
        kpis = tracking.pathway_kpis(register, options.response_target_working_days,
                                     options.kpi_period, _targets(options),
                                     disclosure=project.disclosure)
    except DataError as exc:
        raise DataError(f"{project.params.file}: analyses.referral_tracking: {exc}") from None
    suspensions = project.table(options.suspensions)
    pupil = tracking.PupilAnalyses(register, attendance, suspensions,
                                   window_weeks=options.attendance_window_weeks,
                                   suspension_days=SUSPENSION_WINDOW_DAYS,
                                   disclosure=project.disclosure)
    data = TrackingData(options=options, register=register, kpis=kpis, pupils=pupils,
                        attendance=attendance, suspensions=suspensions,
                        min_count=project.disclosure.threshold, pupil=pupil,
                        disclosure=project.disclosure,
                        reasons=_declared(project, options.referrals, "reason"))
    return data


# ----------------------------------------------------------------------------- helpers


def _section(heading: str, sentence: str = "") -> Section:
    return Section(heading=heading, sentence=sentence, level=LEVEL)


def _add_table(section: Section, frame: pd.DataFrame, caption: str,
               percent: tuple[str, ...] = ()) -> None:
    """Add a board table after checking it shows no pupil id, name or UPN."""
    section.table(check_board_safe(frame.reset_index(drop=True), caption), caption,
                  percent=percent)


def _board(d: TrackingData, frame: pd.DataFrame, counts: list[str], *,
           derived: list[str] | dict[str, list[str]] = (), keep_zero: bool = True,
           sums_down: bool | str | list[str] = False,
           sums_across: list[list[str]] = (), hidden: list[str] = ()) -> pd.DataFrame:
    """``project.disclosure.table`` for a board table, then the ``hidden`` helper columns
    dropped: counts a reader can work out from the table (all other pupils, the other
    outcomes) that take part in the additive sets but are not printed."""
    out = d.disclosure.table(frame, counts, derived=derived, sums_down=sums_down,
                             sums_across=sums_across, keep_zero=keep_zero)
    return out.drop(columns=list(hidden))


def _withheld(value: Any) -> bool:
    return isinstance(value, str) and value == WITHHELD


def _declared(project: Project, source: str, column: str) -> list[str] | None:
    """The categories the parameters declare for ``column`` of data source ``source``
    (``data.<source>.categories``), or None when none are declared."""
    spec = project.params.data.get(source)
    categories = getattr(spec, "categories", None) or {}
    values = categories.get(column)
    return [str(v) for v in values] if values else None


def _money(x: float) -> str:
    return "–" if pd.isna(x) else f"£{x:,.0f}"


def _n(d: TrackingData, count: float, word: str, plural: str | None = None) -> str:
    """A count for a sentence through the disclosure step ("fewer than 5 pupils")."""
    return d.disclosure.pupils(count, word, plural)


def _pct(x: float) -> str:
    return "–" if pd.isna(x) else PERCENT_FMT.format(x)


def _days(x: float) -> str:
    return "–" if pd.isna(x) else f"{round(float(x), 1):g}"


def _yes_no(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return value


def _period_label(date: pd.Timestamp, period: str) -> str:
    return tracking.period_label(date, period)


# ----------------------------------------------------------------------------- promises


def promises_section(project: Project) -> Section:
    """What the pathway promises: its activities in the theory of change, the KPI targets
    and the outcomes this report evidences."""
    d = tracking_data(project)
    o = d.options
    days = o.response_target_working_days
    sec = _section("The pathway's commitments",
                   f"The pathway promises a first response to every referral within {days} "
                   f"working day{'s' if days != 1 else ''}, help chosen from a menu of "
                   "interventions, a named lead professional and regular reviews until the "
                   "pupil's needs are met.")
    outcomes = project.toc.outcomes_for("referral_tracking")
    mechanisms = {m.id for m in project.toc.mechanisms
                  if any(oc.id in m.outcomes for oc in outcomes)}
    acts = [a for a in project.toc.activities if mechanisms & set(a.mechanisms)]
    if acts:
        sec.text("**In the theory of change** the pathway delivers:\n\n" + "\n".join(
            f"- {a.what.strip()} ({a.when.strip()}); owner: {a.owner}, due "
            f"{a.due:%d %B %Y}, delivery status **{a.rag}**." for a in acts))
    if o.targets:
        rows = []
        for name, t in o.targets.items():
            kpi = tracking.KPI_ALIASES.get(name, name)
            lower = tracking.kpi_direction(kpi) == "lower_is_better"
            unit = "" if kpi.startswith(("median_", "p90_")) else "%"
            rows.append({"Measure": KPI_LABELS.get(kpi, kpi),
                         "What it counts": KPI_MEANING.get(kpi, "").format(days=days),
                         "Green": f"{'≤' if lower else '≥'} {t.green:g}{unit}",
                         "Amber": f"{'≤' if lower else '≥'} {t.amber:g}{unit}",
                         "Red": f"{'>' if lower else '<'} {t.amber:g}{unit}"})
        _add_table(sec, pd.DataFrame(rows), "Pathway targets (RAG thresholds from the "
                   "project's parameters)")
    if outcomes:
        sec.text("**Outcomes this report evidences:**\n\n" + "\n".join(
            f"- {oc.statement}" + (f" (target: {oc.target})" if oc.target else "")
            for oc in outcomes))
    return sec


# ----------------------------------------------------------------------------- KPIs


#: KPIs that are a share of referrals: the share and its denominator fix two counts (the
#: referrals with and without), so both go through disclosure.
_SHARE_KPIS = ("pct_response_within_target", "pct_lead_professional", "pct_reviewed",
               "pct_needs_met")


def _board_kpis(d: TrackingData) -> pd.DataFrame:
    """The KPI long table with every value withheld (value, n and RAG rating) whose counts
    would be disclosed: a count KPI below the threshold, a rate whose denominator, or whose
    referrals with or without (value x n), are below it; and, because each period's counts
    add up to the totals over all periods and the closure outcomes of a period add up to its
    closures, the next-smallest cell of any such set. Zeros are shown."""
    k = d.kpis.summary.copy()
    periods = list(dict.fromkeys(k["period"]))
    value = k.pivot(index="period", columns="kpi", values="value").reindex(periods)
    n = k.pivot(index="period", columns="kpi", values="n").reindex(periods)
    counts: dict[str, pd.Series] = {}
    owner: dict[str, list[str]] = {}  # count column -> the KPIs it discloses
    across = []
    for kpi in value.columns:
        if kpi == "referrals_received" or kpi.startswith("closures: "):
            counts[kpi] = value[kpi]
            owner[kpi] = [kpi]
        elif kpi in _SHARE_KPIS:
            hit = (value[kpi] * n[kpi] / 100).round()
            counts[f"{kpi}|yes"], counts[f"{kpi}|no"] = hit, n[kpi] - hit
            owner[f"{kpi}|yes"] = owner[f"{kpi}|no"] = [kpi]
            across.append([f"{kpi}|yes", f"{kpi}|no"])
        else:
            counts[f"{kpi}|n"] = n[kpi]
            owner[f"{kpi}|n"] = [kpi]
    closures = [c for c in counts if c.startswith("closures: ")]
    if closures:  # the period's closures, which its closure outcomes add up to
        counts["closures|n"] = n[closures[0]]
        owner["closures|n"] = closures
    if len(closures) > 1:
        across.append(closures)
    wide = pd.DataFrame(counts).reset_index(drop=True)
    shown = d.disclosure.table(wide, list(wide.columns), sums_down=True, sums_across=across)
    hidden = shown.astype(object).isin([WITHHELD])
    withheld = set()
    for col in hidden.columns:
        for i in np.flatnonzero(hidden[col].to_numpy()):
            withheld.update((periods[i], kpi) for kpi in owner[col])
    for kpi in list(value.columns):  # a 90th percentile goes with its median
        if kpi.startswith("p90_"):
            for period in periods:
                if (period, "median_" + kpi.removeprefix("p90_")) in withheld:
                    withheld.add((period, kpi))
    out = k.astype({"value": object, "n": object, "rag": object})
    mask = np.array([(p, kpi) in withheld for p, kpi in zip(k["period"], k["kpi"],
                                                             strict=True)], dtype=bool)
    out.loc[mask, ["value", "n", "rag"]] = WITHHELD
    return out


def kpi_table(project: Project) -> pd.DataFrame:
    """Headline KPIs, one row per period, each cell the value with its RAG rating in words
    (e.g. "81% (amber)"); withheld cells show "–"."""
    d = tracking_data(project)
    k = _board_kpis(d)
    k = k[k["kpi"].isin(KPI_LABELS)]
    days = d.options.response_target_working_days

    def cell(row: pd.Series) -> str:
        if _withheld(row["value"]):
            return WITHHELD
        if pd.isna(row["value"]):
            return "–"
        kpi = row["kpi"]
        text = (_days(row["value"]) if kpi.startswith("median_")
                else f"{int(row['value']):,}" if kpi == "referrals_received"
                else _pct(row["value"]))
        return text + (f" ({row['rag']})" if not pd.isna(row["rag"]) else "")

    k = k.assign(cell=k.apply(cell, axis=1))
    periods = list(dict.fromkeys(k["period"]))
    wide = k.pivot(index="period", columns="kpi", values="cell").reindex(periods)
    cols = [c for c in KPI_LABELS if c in wide.columns]
    labels = dict(KPI_LABELS)
    labels["pct_response_within_target"] = f"First response within {days} working days"
    wide = wide[cols].rename(columns=labels).fillna("–")
    return wide.rename_axis(None, axis=1).reset_index().rename(columns={"period": "Period"})


def _kpi_figure(d: TrackingData) -> tuple[Any, str] | None:
    """Small multiples of the percentage KPIs with targets, with green/amber lines."""
    k = _board_kpis(d)
    targets = {tracking.KPI_ALIASES.get(n, n): t for n, t in d.options.targets.items()}
    shown = [kpi for kpi in KPI_LABELS if kpi.startswith("pct_") and kpi in targets]
    if not shown:
        return None
    periods = list(dict.fromkeys(k.loc[k["kpi"] == "referrals_received", "period"]))
    ncol = 2
    nrow = -(-len(shown) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(10, 3.2 * nrow), sharex=True, squeeze=False)
    x = np.arange(len(periods))
    summary = []
    for ax, kpi in zip(axes.flat, shown, strict=False):
        v = pd.to_numeric(k[k["kpi"] == kpi].set_index("period")["value"],
                          errors="coerce").reindex(periods).to_numpy(dtype=float)
        t = targets[kpi]
        ax.axhspan(t.green, 100, color="#009E73", alpha=0.08)
        ax.axhline(t.green, color="#009E73", ls="--", lw=1, label=f"green ≥ {t.green:g}%")
        ax.axhline(t.amber, color="#E69F00", ls=":", lw=1.2, label=f"amber ≥ {t.amber:g}%")
        ax.plot(x, v, "o-", color="#0072B2", label="value")
        ax.set_ylim(0, 105)
        ax.set_title(KPI_LABELS[kpi])
        ax.set_ylabel("%")
        ax.set_xlabel("Period")
        ax.legend(fontsize="x-small", loc="lower left")
        last = v[~np.isnan(v)]
        if len(last):
            summary.append(f"{KPI_LABELS[kpi].lower()} {last[-1]:.0f}% in the latest period "
                           f"(green from {t.green:g}%)")
    for ax in axes.flat[len(shown):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xticks(x, periods, rotation=45, ha="right", fontsize="small")
        ax.set_xlabel("Period (referrals by referral date, closures by closure date)")
    fig.suptitle("Pathway KPIs by period against their targets")
    fig.tight_layout()
    alt = ("Line charts, one per KPI, of the percentage in each period with dashed green and "
           "dotted amber target lines: " + "; ".join(summary) + ".")
    return fig, alt


def kpi_section(project: Project) -> Section:
    """Pathway KPIs per period with RAG ratings, and plain-English sentences for boards."""
    d = tracking_data(project)
    k = _board_kpis(d)
    overall = tracking.pathway_kpis(d.register, d.options.response_target_working_days,
                                    "all", _targets(d.options))
    o = overall.summary.set_index("kpi")
    days = d.options.response_target_working_days
    on_time = o.loc["pct_response_within_target"]
    sentence = (f"Across all {_n(d, len(d.register), 'referral')}, {_pct(on_time['value'])} of "
                f"those due a response had one within {days} working day"
                f"{'s' if days != 1 else ''}"
                + (f" (target {on_time['target']:g}%: {on_time['rag']})"
                   if not pd.isna(on_time["rag"]) else "") + ".")
    sec = _section(f"Pathway KPIs by {d.options.kpi_period}", sentence)
    latest = k.loc[k["kpi"] == "referrals_received", "period"]
    if len(latest):
        period = latest.iloc[-1]
        lines = tracking.kpi_sentences(k, period, response_target_working_days=days)
        running = _period_label(d.register.today, d.options.kpi_period) == period
        note = (f"\n\n*{period} was still under way when the data end "
                f"({d.register.today:%d %B %Y}): many of its interventions are still running "
                "and its reviews not yet due, so sessions attended and reviews will rise.*"
                if running else "")
        sec.text(f"**The latest {d.options.kpi_period}.** " + " ".join(lines) + note)
    sec.text(
        "Referrals count in the period they were made and closures in the period they "
        f"closed. A referral still awaiting a response counts as late once {days} working "
        "days have passed (working days exclude weekends and England bank holidays). RAG: "
        "green meets the target, amber is within the tolerance, red is below it; the word "
        "is printed in each cell so the table does not rely on colour."
        )
    _add_table(sec, kpi_table(project), f"Pathway KPIs by {d.options.kpi_period}")
    fig = _kpi_figure(d)
    if fig is not None:
        sec.figure(*fig)
    return sec


# ----------------------------------------------------------------------------- flow


def _board_funnel(d: TrackingData, fn: pd.DataFrame) -> pd.DataFrame:
    """The funnel with disclosure: each stage's referrals and the referrals lost since the
    previous stage (its count minus this one, which a reader can work out) add up to the
    previous stage's count, and the referrals that reached a stage without every earlier
    one add up with the rest to the stage's count, so those are additive sets too. A
    withheld count withholds its percentages and the next stage's share of it."""
    t = fn.rename(columns={"stage": "Stage", "n": "Referrals (all stages so far)",
                           "n_any": "Referrals (this stage)",
                           "pct_of_referrals": "% of referrals",
                           "pct_of_previous": "% of previous stage"})
    t["_lost"] = fn["n"].shift(1) - fn["n"]
    t["_skipped"] = fn["n_any"] - fn["n"]
    all_so_far, this_stage = "Referrals (all stages so far)", "Referrals (this stage)"
    out = _board(d, t, [all_so_far, this_stage, "_lost", "_skipped"],
                 # a stage reached without every earlier one is rare (none for the
                 # response), so this stage's count would give a withheld one away
                 derived={all_so_far: ["% of referrals", "% of previous stage", this_stage],
                          "_lost": ["% of previous stage"]},
                 sums_across=[[all_so_far, "_lost"], [all_so_far, "_skipped"]],
                 hidden=["_lost", "_skipped"])
    gone = out[all_so_far].map(_withheld).to_numpy()
    nxt = np.r_[False, gone[:-1]]  # the next stage's share of a withheld count
    if nxt.any():
        out["% of previous stage"] = out["% of previous stage"].astype(object)
        out.loc[nxt, "% of previous stage"] = WITHHELD
    return out


def flow_section(project: Project) -> Section:
    """Caseload (open cases, new referrals and closures per month) and the funnel."""
    d = tracking_data(project)
    reg = d.register
    cl = tracking.caseload(reg, "MS")
    fn = tracking.funnel(reg)
    board = _board_funnel(d, fn)
    open_now = int(cl["open_at_end"].iloc[-1]) if len(cl) else 0
    closed = board.loc[fn["stage"] == "closed", "Referrals (this stage)"].iloc[0]
    first = reg.table["referral_date"].min()
    closed_text = ("some" if _withheld(closed) else d.disclosure.count(closed))
    sec = _section("Caseload and the funnel",
                   f"{_n(d, len(reg), 'referral')} were made from {first:%B %Y} to "
                   f"{reg.today:%B %Y}; {closed_text} have closed and "
                   f"{d.disclosure.count(open_now)} were open at the end of the data.")
    # monthly counts are drawn only where a month has at least the threshold (bars of
    # fewer are left out: a bar's height is a count)
    small = d.disclosure.is_small
    new = cl["new_referrals"].where(~cl["new_referrals"].map(small))
    shut = cl["closures"].where(~cl["closures"].map(small))
    still = cl["open_at_end"].where(~cl["open_at_end"].map(small))
    fig, ax = plt.subplots(figsize=(10, 4.2))
    months = pd.to_datetime(cl["period_start"])
    width = 12
    ax.bar(months - pd.Timedelta(days=7), new, width=width, color="#0072B2",
           label="new referrals")
    ax.bar(months + pd.Timedelta(days=7), shut, width=width, color="#E69F00",
           label="closures")
    ax.plot(months, still, color="#222222", lw=2, label="open at month end")
    ax.set_xlabel("Month")
    ax.set_ylabel("Referrals")
    ax.set_title("Open caseload, new referrals and closures by month")
    ax.legend(fontsize="small")
    fig.tight_layout()
    peak = cl.loc[cl["open_at_end"].idxmax()] if len(cl) else None
    alt = ("Bar and line chart by month: blue bars new referrals, orange bars closures, and a "
           "black line the open caseload at the end of each month (months with fewer than "
           f"{d.min_count} are left out)"
           + (f", peaking at {d.disclosure.count(peak['open_at_end'])} in "
              f"{peak['period_start']:%B %Y} and ending at {d.disclosure.count(open_now)}"
              if peak is not None else "") + ".")
    sec.figure(fig, alt)

    # the funnel chart shows only the stages whose counts the table shows
    drawn = fn[~board["Referrals (all stages so far)"].map(_withheld).to_numpy()]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    y = np.arange(len(drawn))[::-1]
    ax.barh(y, drawn["n"], color="#56B4E9")
    for yi, n, pct in zip(y, drawn["n"], drawn["pct_of_referrals"], strict=True):
        ax.text(n, yi, f" {n:,} ({pct:.0f}%)", va="center", fontsize="small")
    ax.set_yticks(y, drawn["stage"])
    ax.set_xlabel("Referrals that reached the stage and every earlier stage")
    ax.set_ylabel("Stage")
    ax.set_title("The referral funnel")
    ax.set_xlim(0, drawn["n"].max() * 1.25 if len(drawn) else 1)
    fig.tight_layout()
    sec.figure(fig, "Horizontal bar chart of the referral funnel: " + ", ".join(
        f"{s} {n:,} ({p:.0f}%)" for s, n, p in zip(drawn["stage"], drawn["n"],
                                                    drawn["pct_of_referrals"], strict=True))
        + (" (stages whose counts are withheld are left out)" if len(drawn) < len(fn) else "")
        + ".")
    _add_table(sec, board, "The referral funnel",
               percent=("% of referrals", "% of previous stage"))
    sec.text("A referral counts at a stage only if it also reached every earlier stage; the "
             "second column counts every referral that reached the stage (a case can close "
             "without a review, for example).")
    return sec


def time_open_section(project: Project) -> Section:
    """How long cases stay open, by status and by first intervention."""
    d = tracking_data(project)
    reg = d.register
    by_status = tracking.time_open(reg, "status")
    closed = by_status[by_status["status"] == "closed"]
    sentence = (f"Closed cases were open for a median of {closed['median'].iloc[0]:.0f} days "
                f"(90th percentile {closed['p90'].iloc[0]:.0f} days)."
                if len(closed) and not d.disclosure.is_small(closed["n"].iloc[0]) else
                "Too few cases have closed to describe how long they stayed open."
                if len(closed) else "No case has closed yet.")
    sec = _section("How long cases stay open", sentence)
    frames = []
    for by, label in (("status", "Status"), ("first_intervention", "First intervention")):
        t = tracking.time_open(reg, by).rename(columns={by: "Group"})
        t.insert(0, "By", label)
        frames.append(t)
    table = pd.concat(frames, ignore_index=True)
    table["Group"] = table["Group"].astype(str)
    table = table.rename(columns={"n": "Cases", "median": "Median days open",
                                  "p90": "90th percentile (days)"}).drop(columns="max")
    for c in ("Median days open", "90th percentile (days)"):
        table[c] = table[c].round().astype("Int64")
    # each block (by status, by first intervention) adds up to the referrals
    table = _board(d, table, ["Cases"], derived=["Median days open", "90th percentile (days)"],
                   sums_down="By")
    _add_table(sec, table, "Days open (open cases counted to the data "
               f"end, {reg.today:%d %B %Y})")
    sec.text("Days open run from the referral to its closure, or to the end of the data for "
             "open cases, so open cases' figures grow as they stay open."
             )
    return sec


# ----------------------------------------------------------------------------- outcomes


def _board_proportions(d: TrackingData, table: pd.DataFrame, group_cols: list[str],
                       success_word: str, sums_down: bool | str | list[str] = True
                       ) -> pd.DataFrame:
    """outcomes_by output as a board table with percentages. The referrals, the successes
    and the other outcomes are counts (zeros withheld too: "none of the 6 pupils" is as
    telling as a small count); the successes and the others add up to the referrals along
    a row, and the rows of a block (``sums_down``) add up to all closed referrals, which
    the report gives, so one withheld cell takes the next-smallest of its set with it."""
    t = table.copy()
    for c in group_cols:
        t[c] = t[c].map(_yes_no).astype(str)
    t["other"] = t["n"] - t["successes"]
    t["pct"] = 100 * t["proportion"]
    t["lo"] = 100 * t["ci_low"]
    t["hi"] = 100 * t["ci_high"]
    t = _board(d, t, ["n", "successes", "other"], derived=["pct", "lo", "hi"],
               keep_zero=False, sums_down=sums_down, sums_across=[["successes", "other"]])
    t = t[[*group_cols, "n", "successes", "pct", "lo", "hi"]]
    return t.rename(columns={"n": "Referrals", "successes": success_word, "pct": "%",
                             "lo": "95% CI from", "hi": "95% CI to"})


def _shown_rows(board: pd.DataFrame) -> np.ndarray:
    """Rows of a board table with nothing withheld (the rows a chart may draw)."""
    return ~board.astype(object).isin([WITHHELD]).any(axis=1).to_numpy()


def _forest(table: pd.DataFrame, label_col: str, title: str, xlabel: str,
            reference: float | None = None, reference_label: str = "") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.6))
    y = np.arange(len(table))[::-1]
    p = table["proportion"].to_numpy(float) * 100
    lo = table["ci_low"].to_numpy(float) * 100
    hi = table["ci_high"].to_numpy(float) * 100
    ax.errorbar(p, y, xerr=[p - lo, hi - p], fmt="o", color="#0072B2", capsize=3)
    labels = [f"{g} (n={n})" for g, n in zip(table[label_col].astype(str), table["n"],
                                             strict=True)]
    ax.set_yticks(y, labels)
    ax.set_ylabel(label_col.replace("_", " ").capitalize() + " (closed referrals)")
    if reference is not None:
        ax.axvline(reference, color="#D55E00", ls="--", lw=1, label=reference_label)
        ax.legend(fontsize="small", loc="lower right")
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def outcomes_section(project: Project) -> Section:
    """Needs met by intervention type and by pupil characteristics (Wilson 95% CIs), and
    the latest review's outcomes by intervention type."""
    d = tracking_data(project)
    reg = d.register
    sec = _section("Needs met and review outcomes",
                   tracking.needs_met(reg, disclosure=d.disclosure).share_sentence)
    by_iv = tracking.outcomes_by(reg, "intervention")
    iv_board = _board_proportions(d, by_iv, ["intervention"], "Needs met")
    shown = by_iv[_shown_rows(iv_board) & (by_iv["n"] > 0).to_numpy()]
    sec.text("A referral counts once for every type of intervention it received, so a pupil "
             "who had mentoring and then a nurture group counts in both rows. Proportions are "
             "of closed referrals with an outcome recorded; 95% confidence intervals are "
             "Wilson score intervals. Pupils were not allocated to interventions at random "
             "(the menu depends on the reason for referral), so differences between rows "
             "describe what happened, not which intervention works best.")
    if len(shown):
        target = needs_met_target(project, None)
        share = "proportion"
        sec.figure(_forest(shown, "intervention", "Needs met at closure, by intervention",
                           "Closed referrals with needs met (%), with 95% CI",
                           None if target is None else 100 * target[0],
                           "" if target is None else
                           f"target {format_figure(target[0], share)}"),
                   "Dot-and-whisker chart of the percentage of closed referrals with needs "
                   "met for each intervention type whose figures are shown, with 95% "
                   "confidence intervals: " + "; ".join(
                       f"{r.intervention} {format_figure(r.proportion, share)} "
                       f"({format_interval(r.ci_low, r.ci_high, share)})"
                       for r in shown.itertuples()) + ".")
    _add_table(sec, iv_board.rename(columns={"intervention": "Intervention"}),
               "Needs met at closure, by intervention type", percent=("%", "95% CI from",
                                                                      "95% CI to"))
    frames = []
    for col, label in CHARACTERISTICS.items():
        if col not in reg.table.columns:
            continue
        t = tracking.outcomes_by(reg, col)
        if col == "reason":
            # free text never becomes a row label: only the categories the parameters
            # declare are shown, and nothing when none are declared
            if not d.reasons:
                continue
            declared = {r.casefold() for r in d.reasons}
            t = t[t[col].astype(str).str.casefold().isin(declared)]
            if t.empty:
                continue
        frames.append(t.rename(columns={col: "Group"}).assign(Characteristic=label))
    if frames:
        # the rows of a characteristic add up to all closed referrals, which the report
        # gives, so one withheld row needs a second one withheld with it
        by = _board_proportions(d, pd.concat(frames, ignore_index=True),
                                ["Characteristic", "Group"], "Needs met",
                                sums_down="Characteristic")
        has_reason = any(f["Characteristic"].iloc[0] == CHARACTERISTICS["reason"]
                         for f in frames)
        _add_table(sec, by, "Needs met at closure, by "
                   + ("reason, " if has_reason else "")
                   + "school and pupil characteristics",
                   percent=("%", "95% CI from", "95% CI to"))
    reviews = []
    for col, label in REVIEW_LABELS.items():
        t = tracking.outcomes_by(reg, "intervention", outcome=col)
        b = _board_proportions(d, t, ["intervention"], "Yes")
        b.insert(1, "At the latest review", label)
        reviews.append(b)
    review_table = pd.concat(reviews, ignore_index=True).rename(
        columns={"intervention": "Intervention"})
    review_table = review_table.sort_values(["Intervention", "At the latest review"],
                                            kind="stable")
    _add_table(sec, review_table, "Review outcomes at the latest review, by intervention type",
               percent=("%", "95% CI from", "95% CI to"))
    return sec


def costs_section(project: Project) -> Section:
    """Cost per pupil and per referral closed with needs met, by intervention type."""
    d = tracking_data(project)
    c = tracking.costs(d.register)
    board = c.rename(columns={
        "intervention": "Intervention", "total_cost": "Total cost (£)",
        "n_pupils": "Pupils", "n_referrals": "Referrals", "n_successes": "Needs met",
        "cost_per_pupil": "Cost per pupil (£)",
        "cost_per_success": "Cost per referral with needs met (£)"})
    board["_other"] = board["Referrals"] - board["Needs met"]
    money = ["Total cost (£)", "Cost per pupil (£)", "Cost per referral with needs met (£)"]
    # the rows add up to the "all" row; the needs met and the other outcomes add up to
    # the referrals; a cost divided by a withheld count would give it away
    board = _board(d, board, ["Pupils", "Referrals", "Needs met", "_other"], derived=money,
                   sums_down=True, sums_across=[["Needs met", "_other"]], hidden=["_other"])
    for col in money:
        board[col] = board[col].map(lambda v: v if _withheld(v) else _money(v))
    all_row = board[board["Intervention"] == "all"].iloc[0]
    raw_all = c[c["intervention"] == "all"].iloc[0]
    if _withheld(all_row["Pupils"]):
        sentence = (f"Fewer than {d.min_count} pupils had an intervention, so costs are "
                    "withheld to protect their privacy.")
    else:
        sentence = (f"{all_row['Total cost (£)']} was spent on interventions for "
                    f"{_n(d, raw_all['n_pupils'], 'pupil')}: {all_row['Cost per pupil (£)']} "
                    "per pupil" + ("" if _withheld(all_row["Needs met"]) else
                                   f" and {all_row['Cost per referral with needs met (£)']} per "
                                   "referral closed with needs met") + ".")
    sec = _section("What the interventions cost", sentence)
    cols = ["Intervention", "Total cost (£)", "Pupils", "Referrals", "Needs met",
            "Cost per pupil (£)", "Cost per referral with needs met (£)"]
    _add_table(sec, board[cols], "Costs by intervention type")
    missing = int(raw_all["n_interventions_without_cost"])
    sec.text("Cost per referral with needs met divides everything spent on the intervention "
             "(including cases still open or closed another way) by the referrals that closed "
             "with needs met, so it is the cost of one success. A pupil with two types of "
             "intervention counts under both."
             + (f" {_n(d, missing, 'intervention')} had no cost recorded and are left out."
                if missing else ""))
    return sec


# ----------------------------------------------------------------------------- per pupil


def _attendance_change(project: Project, outcome: Outcome | None = None
                       ) -> tracking.AttendanceChange | None:
    """The paired change in attendance for the window in the parameters (None without an
    attendance table), in the outcome's direction."""
    direction = "higher_is_better" if outcome is None else outcome.direction
    return tracking_data(project).pupil.attendance_change(direction)


_ATTENDANCE_COLUMNS = {
    "group": "Pupils", "n_pairs": "Pupils compared", "baseline_mean": "Before (%)",
    "follow_up_mean": "After (%)", "mean_change": "Change (points)",
    "mean_change_ci_low": "95% CI from", "mean_change_ci_high": "95% CI to",
    "g_av": "Hedges' g"}


def _attendance_board(d: TrackingData, change: Any) -> pd.DataFrame:
    """The paired change in attendance as a board table: a group of fewer pupils than the
    threshold shows neither its number nor its figures."""
    t = change.summary[list(_ATTENDANCE_COLUMNS)]
    t = _board(d, t, ["n_pairs"], derived=[c for c in _ATTENDANCE_COLUMNS
                                           if c not in {"group", "n_pairs"}])
    return t.rename(columns=_ATTENDANCE_COLUMNS)


def _event_figure(d: TrackingData) -> tuple[Any, str]:
    w = d.options.attendance_window_weeks
    es = d.pupil.event_study
    es = es[es["n_pupils"] >= d.min_count]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.fill_between(es["rel_week"], es["ci_low"], es["ci_high"], color="#0072B2", alpha=0.2,
                    label="95% CI")
    ax.plot(es["rel_week"], es["mean"], "o-", color="#0072B2", ms=4, label="mean attendance")
    ax.axvline(-0.5, color="#D55E00", ls="--", lw=1.2, label="first intervention starts")
    ax.axvspan(-w - 0.5, -0.5, color="#999999", alpha=0.08)
    ax.axvspan(-0.5, w - 0.5, color="#009E73", alpha=0.08)
    ax.set_xlabel("Weeks from the week the first intervention started (0 = start week)")
    ax.set_ylabel("Attendance (% of possible sessions)")
    ax.set_title("Referred pupils' weekly attendance around their first intervention")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    before = es.loc[es["rel_week"] < 0, "mean"].mean()
    after = es.loc[es["rel_week"] >= 0, "mean"].mean()
    alt = (f"Line chart of mean weekly attendance from {int(es['rel_week'].min())} to "
           f"{int(es['rel_week'].max())} weeks around the first intervention, with a 95% "
           f"confidence band: about {before:.0f}% on average before the start and about "
           f"{after:.0f}% after it. Shaded: the {w} weeks compared before and after.")
    return fig, alt


def attendance_section(project: Project) -> Section:
    """Attendance before and after each pupil's first intervention (paired change with
    effect size) and the week-by-week event-study chart."""
    d = tracking_data(project)
    w = d.options.attendance_window_weeks
    change = _attendance_change(project)
    if change is None:
        return _section("Attendance", "No attendance table is configured "
                        "in the project's parameters, so attendance is not shown.")
    sec = _section("Attendance before and after the first intervention", change.sentence)
    sec.text(
        f"Each pupil's attendance in the {w} weeks before the week their first intervention "
        f"started is compared with their attendance in the {w} weeks from that week on (the "
        "start week counts as after). Weeks are counted from the start week's Monday, so "
        "holiday weeks with no sessions simply add nothing. Only pupils with sessions in both "
        "windows are compared. Before/after changes cannot separate the intervention from "
        "other things that changed at the same time, such as difficulties easing anyway "
        "after the crisis that prompted the referral.")
    _add_table(sec, _attendance_board(d, change), f"Attendance in the {w} weeks before and "
               "after the first intervention")
    sec.figure(*_event_figure(d))
    return sec


def suspensions_section(project: Project) -> Section:
    """Suspensions in the 90 days before and after each pupil's first intervention."""
    d = tracking_data(project)
    if d.suspensions is None:
        return _section("Suspensions", "No suspensions table is configured "
                        "in the project's parameters, so suspensions are not shown.")
    days = SUSPENSION_WINDOW_DAYS
    around = d.pupil.suspensions_around
    full = around[around["follow_up_complete"]]
    n = len(full)
    any_before, any_after = int((full["before"] > 0).sum()), int((full["after"] > 0).sum())
    raw = pd.DataFrame([{"Pupils": n, "Suspensions before": int(full["before"].sum()),
                         "Suspensions after": int(full["after"].sum()),
                         "Pupils suspended before": any_before,
                         "Pupils suspended after": any_after,
                         "_not_before": n - any_before, "_not_after": n - any_after}])
    # pupils suspended and pupils not suspended add up to the pupils compared
    board = _board(d, raw, list(raw.columns),
                   sums_across=[["Pupils suspended before", "_not_before"],
                                ["Pupils suspended after", "_not_after"]],
                   hidden=["_not_before", "_not_after"])
    row = board.iloc[0]

    def say(col: str) -> str:
        return "a withheld number of" if _withheld(row[col]) else f"{int(row[col]):,}"

    if _withheld(row["Pupils"]):
        sentence = (f"Fewer than {d.min_count} pupils had {days} days of follow-up after their "
                    "first intervention, so suspensions are withheld to protect their privacy.")
    else:
        sentence = (f"The {_n(d, n, 'pupil')} whose {days} days after their first intervention "
                    f"had passed were suspended {say('Suspensions before')} times in the {days} "
                    f"days before it and {say('Suspensions after')} times in the {days} days "
                    "after.")
    sec = _section(f"Suspensions in the {days} days before and after the first intervention",
                   sentence)
    _add_table(sec, board, f"Suspensions in the {days} days before and after the first "
               "intervention (pupils with the full follow-up)")
    if not _withheld(row["Pupils"]):
        try:
            h = d.pupil.suspension_change().headline()
            per = "number"  # suspensions per pupil: 2 decimals (a fraction of one)
            sec.text(f"Per pupil, the number of suspensions changed by "
                     f"{format_figure(h['estimate'], per, signed=True)} on average (95% CI "
                     f"{format_interval(h['ci_low'], h['ci_high'], per, signed=True)}; "
                     f"{h['verdict']}). Pupils are often referred after a run of suspensions, "
                     "so some fall would be expected without any help (regression to the "
                     "mean); the survival curves below compare interventions with each other.")
        except DataError:
            sec.text("The change per pupil could not be estimated from these pupils.")
    return sec


def survival_section(project: Project) -> Section:
    """Kaplan-Meier curves of time to the next suspension or re-referral by first
    intervention type, with the log-rank test."""
    d = tracking_data(project)
    if d.suspensions is None:
        return _section("Time to the next suspension or re-referral",
                        "No suspensions table is configured, so survival is not shown.")
    res = d.pupil.survival
    counts = res.summary.set_index("group")
    rows = [{"First intervention": str(grp), "Cases": int(c["cases"]),
             "Events": int(c["events"]), "_no_event": int(c["cases"]) - int(c["events"]),
             "Without event at 90 days (%)": 100 * c["survival_90d"],
             "Without event at 180 days (%)": 100 * c["survival_180d"]}
            for grp, c in counts.iterrows()]
    raw = pd.DataFrame(rows)
    # the rows add up to all cases and all events; events and cases without one add up to
    # the cases; a survival percentage of a withheld group is withheld with it
    table = _board(d, raw, ["Cases", "Events", "_no_event"],
                   derived=["Without event at 90 days (%)", "Without event at 180 days (%)"],
                   keep_zero=False, sums_down=True, sums_across=[["Events", "_no_event"]],
                   hidden=["_no_event"])
    big = counts.index[_shown_rows(table)] if len(table) else counts.index[:0]
    test = res.test
    p = test["p_value"]
    sec = _section("Time to the next suspension or re-referral", res.sentence)
    shown = tracking.SurvivalResult(table=res.table[res.table["group"].isin(big)],
                                    test=test, data=res.data[res.data["group"].isin(big)],
                                    confidence=res.confidence)
    fig, ax = plt.subplots(figsize=(9, 5))
    tracking.plot_km(shown, ax=ax)
    ax.set_title("Pupils without a suspension or re-referral since their first intervention"
                 + (f"\n(log-rank test across all interventions: p = {p:.3f})"
                    if not np.isnan(p) else ""))
    fig.tight_layout()
    alt = ("Kaplan-Meier step curves, one per first intervention type whose counts are "
           "shown, of the proportion of pupils without a suspension "
           "or re-referral against days since the first intervention started, with shaded "
           "95% confidence bands: " + "; ".join(
               f"{r['First intervention']} {r['Without event at 180 days (%)']:.0f}% at 180 days"
               for r in rows if r["First intervention"] in set(map(str, big))) + ".")
    sec.figure(fig, alt)
    _add_table(sec, table, "Cases, events and the proportion without an event",
               percent=("Without event at 90 days (%)", "Without event at 180 days (%)"))
    sec.text(
        "One case per referral with an intervention, from the start of its first "
        "intervention to the pupil's next suspension or next referral, whichever came first; "
        f"cases with neither by {d.register.today:%d %B %Y} count as event-free up to then. "
        "Curves are Kaplan-Meier estimates with 95% pointwise confidence bands; the log-rank "
        f"test (chi-square {test['chi2']:.1f} on {test['df']:.0f} degrees of freedom) asks "
        "whether the curves differ more than chance would allow. Interventions were not "
        "allocated at random, so differences may reflect the pupils referred to each."
        )
    return sec


# ----------------------------------------------------------------------------- equity


_SEX_WORDS = {"m": "boys", "male": "boys", "f": "girls", "female": "girls"}


def _describe_query(query: str) -> str:
    """A readable name for the group a pandas query selects.

    A query of ``column == 'value'`` clauses joined by ``and`` reads as the values, with sex
    as boys/girls (``ethnicity_minor == 'Black Caribbean' and sex == 'M'`` gives "Black
    Caribbean boys"); anything else is shown with ``==`` read as "is".
    """
    clauses = re.split(r"\s+and\s+|\s*&\s*", query.strip())
    parsed = [re.fullmatch(r"\(?\s*(\w+)\s*==\s*['\"]([^'\"]+)['\"]\s*\)?", c.strip())
              for c in clauses]
    if all(parsed):
        words, who = [], "pupils"
        for m in parsed:
            col, value = m.group(1), m.group(2)
            if col == "sex" and value.lower() in _SEX_WORDS:
                who = _SEX_WORDS[value.lower()]
            else:
                words.append(value)
        return " ".join([*words, who])
    text = re.sub(r"\s*==\s*", " is ", query)
    text = re.sub(r"\s*!=\s*", " is not ", text)
    return text.replace("'", "").replace('"', "").replace("&", "and").replace("|", "or")


def _population(d: TrackingData) -> tuple[pd.DataFrame, str]:
    """Pupils at risk of referral: those in schools that made a referral (when both tables
    name schools), else every pupil."""
    pupils = d.pupils
    assert pupils is not None
    if "school_id" in pupils.columns and "school_id" in d.register.table.columns:
        schools = set(d.register.table["school_id"].dropna())
        mask = pupils["school_id"].isin(schools).to_numpy(dtype=bool)
        if mask.any():
            return (pupils[mask].reset_index(drop=True),
                    f"the {_n(d, mask.sum(), 'pupil')} on roll in the {len(schools)} schools "
                    "that made referrals")
    return pupils.reset_index(drop=True), f"all {_n(d, len(pupils), 'pupil')}"


def group_mask(text: str, pupils: pd.DataFrame, where: Any = "") -> np.ndarray:
    """The pupils in ``disproportionality_group`` (``text``), read by the safe filter
    grammar (:mod:`evaluation.filters`; never run as code). An unknown column or an
    expression the grammar refuses raises one :class:`~evaluation.errors.ParamsError`
    naming the setting (``where``: the parameters file)."""
    try:
        return parse_filter(text).mask(pupils)
    except FilterError as exc:
        raise ParamsError(
            f"{where}: analyses.referral_tracking.disproportionality_group: "
            f"{exc}. Write it like \"ethnicity_minor == 'Black Caribbean' and sex == 'M'\" "
            "(columns of the pupils table compared with values, joined by and / or / not, "
            "or column in ['a', 'b']).") from None


def disproportionality_section(project: Project) -> Section:
    """Risk ratios (Katz 95% CIs) of referral, suspension and escalation for the group named
    by ``disproportionality_group`` against all other pupils, and by ethnic group."""
    d = tracking_data(project)
    if d.pupils is None:
        return _section("Disproportionality", "No pupils table is configured, so "
                        "disproportionality cannot be measured.")
    pupils, who = _population(d)
    susp = d.suspensions if d.suspensions is not None else pd.DataFrame(
        {"pupil_id": pd.Series([], dtype="str")})
    query = d.options.disproportionality_group
    # the board reads the group's name from the parameters, never the filter itself
    label = (d.options.disproportionality_label or _describe_query(query)) if query else ""
    sec = _section("Who is referred, suspended and escalated")
    groupings = {}
    if query:
        mask = group_mask(query, pupils, project.params.file)
        # a two-value category (text for 50,000 pupils costs more than the risk ratios)
        pupils = pupils.assign(_group=pd.Categorical.from_codes(np.where(mask, 0, 1),
                                                                ["focus", "others"]))
        groupings["focus"] = "_group"
    if "ethnicity" in pupils.columns:
        groupings["ethnicity"] = "ethnicity"
    if not groupings:
        sec.sentence = ("No focus group is named in the project's parameters and the pupils "
                        "table has no ethnicity, so disproportionality is not measured.")
        return sec
    # both groupings from one matching of the pupil ids
    tables = tracking.disproportionality_tables(pupils, d.register.table, susp, groupings)
    names = {"event": "Event", "n": "Pupils in group", "events": "Group with event",
             "risk": "Group risk (%)", "ref_n": "Other pupils",
             "ref_events": "Others with event", "ref_risk": "Others' risk (%)",
             "risk_ratio": "Risk ratio", "ci_low": "95% CI from", "ci_high": "95% CI to"}

    def to_board(raw: pd.DataFrame, sums_down: bool | str) -> pd.DataFrame:
        # The others' counts are the totals minus the group's: with the totals known they
        # would give a withheld group count away, so they are never printed, and a row with
        # a withheld count shows no risk, others' risk or ratio (the others' risk times
        # the others' number is the others' events: 255 - 252 = 3). Within an event the
        # ethnic groups add up to every pupil with it, so a withheld group takes the
        # next-smallest with it.
        t = raw.assign(risk=100 * raw["risk"], ref_risk=100 * raw["ref_risk"])
        t = _board(d, t.rename(columns=names), ["Pupils in group", "Group with event"],
                   derived=["Group risk (%)", "Others' risk (%)", "Risk ratio",
                            "95% CI from", "95% CI to"], sums_down=sums_down)
        # the one format of every board page: risks to 1 decimal, ratios to 2 decimals
        # (results.format_figure); withheld cells keep their mark
        for col in ("Group risk (%)", "Others' risk (%)"):
            t[col] = t[col].map(lambda v: v if _withheld(v) else (
                NOT_APPLICABLE if pd.isna(v) else f"{float(v):.1f}"))
        for col in ("Risk ratio", "95% CI from", "95% CI to"):
            t[col] = t[col].map(lambda v: v if _withheld(v) else format_figure(
                v, "risk ratio", missing=NOT_APPLICABLE))
        return t.drop(columns=["Other pupils", "Others with event"])

    frames = []
    if "focus" in tables:
        focus = tables["focus"]
        focus = focus[focus["_group"] == "focus"].drop(columns="_group")
        focus.insert(1, "Group", label)
        frames.append(to_board(focus.reset_index(drop=True), False))
    if "ethnicity" in tables:
        frames.append(to_board(tables["ethnicity"].rename(columns={"ethnicity": "Group"}),
                               "Event"))
    board = pd.concat(frames, ignore_index=True)
    if query:
        title = label[:1].upper() + label[1:]
        rows = board[(board["Group"] == label) & (board["Event"] == "referral")]
        if rows.empty:
            sec.sentence = (f"{title}: no pupil in the data belongs to this group, so there "
                            "is nothing to compare.")
        elif _withheld(rows.iloc[0]["Risk ratio"]):
            sec.sentence = (f"{title}: the figures for referral are withheld to protect "
                            "pupils' privacy (fewer than "
                            f"{d.min_count} pupils, or a count that would give one away).")
        else:
            sec.sentence = tracking.RiskRatios(tables["focus"], "focus", ["_group"],
                                               event="referral", label=label).sentence
    sec.text(
        f"Risks are worked out among {who}: the share of each group referred at least once, "
        "suspended at least once, or whose referral closed with an escalation (EHC needs "
        "assessment, alternative provision or a school move). A risk ratio of 1 means the "
        "same risk as all other pupils, 2 twice the risk; 95% confidence intervals use "
        "Katz's log method. With small groups the intervals are wide. "
        + (f"The named group ({label}) is chosen in the project's parameters. " if query
           else ""))
    named = board["Group"] == label if query else pd.Series(False, index=board.index)
    if query:
        _add_table(sec, board[named], "The named group against all other pupils")
    eth_rows = board[~named]
    if len(eth_rows):
        _add_table(sec, eth_rows.sort_values(["Event", "Group"], kind="stable"),
                   "Each ethnic group against all other pupils")
    return sec


# ----------------------------------------------------------------------------- quality


def quality_section(project: Project) -> Section:
    """Data-quality problems counted by check, with no record or pupil ids."""
    d = tracking_data(project)
    reg = d.register
    summary = tracking.quality_summary(reg)
    sizes = (f"{_n(d, len(reg), 'referral')}, {_n(d, len(reg.interventions), 'intervention')} "
             f"and {_n(d, len(reg.reviews), 'review')}")
    if summary.empty:
        return _section("Problems found in the records",
                        f"No data-quality problems were found in the {sizes}.")
    board = summary.rename(columns={"table": "Table", "column": "Column", "check": "Problem",
                                    "records": "Records", "action": "What the kit did"})
    # the rows add up to the total in the sentence
    board = _board(d, board, ["Records"], keep_zero=False, sums_down=True)
    left_out = summary["action"].str.startswith("excluded").to_numpy()
    excluded = int(summary.loc[left_out, "records"].sum())
    # the records left out are a subtotal: given only when none of its rows is withheld
    exact = not board.loc[left_out, "Records"].map(_withheld).any()
    sec = _section("Problems found in the records",
                   f"{_n(d, summary['records'].sum(), 'record')} had a data-quality problem"
                   + (f" ({d.disclosure.count(excluded)} of them could not be used and were "
                      "left out)" if exact else " (some could not be used and were left out)")
                   + f"; the report uses {sizes}.")
    _add_table(sec, board, "Data-quality problems by check")
    sec.text("The full list, record by record, is in the register's quality table for the "
             "data team (it names records, so it is not shown here)."
             )
    return sec


# ----------------------------------------------------------------------------- outcomes


def needs_met_target(project: Project, outcome: Outcome | None) -> tuple[float, str] | None:
    """The proportion a ``needs_met`` outcome is judged against, and where it came from:
    the green threshold of a ``needs_met`` (or ``pct_needs_met``) KPI target in
    ``analyses.referral_tracking.targets``; else ``None`` (no target: the result gets no
    verdict). The outcome's target text in the theory of change is never parsed.
    """
    options = _options(project)
    for name in ("needs_met", "pct_needs_met"):
        if name in options.targets:
            return (options.targets[name].green / 100,
                    f"the green threshold of the '{name}' target in the project's parameters")
    # The outcome's own target in the theory of change is judged apart, by
    # evaluation.targets (see _toc_target_text): it is not the null of the verdict.
    return None


def _toc_target_text(outcome: Outcome, result: Any) -> str:
    """THE call site of the theory-of-change target on this page: the outcome's structured
    target (:class:`evaluation.targets.Target`) judged against the recorded result by
    :func:`evaluation.targets.judge` (met / not met / not yet clear); "" without one."""
    if outcome.target is None:
        return ""
    return targets.judge(outcome.target, result).sentence


def _check_source(project: Project, outcome: Outcome, kind: str, default: str | None) -> None:
    name = outcome.data or default
    if name is None or name not in project.params.data:
        raise ParamsError(
            f"Outcome '{outcome.id}' (measure '{outcome.measure}') needs a {kind} table, but "
            f"data source '{name}' is not under `data:` in {project.params.file}")
    if project.params.data[name].kind != kind:
        raise ParamsError(
            f"Outcome '{outcome.id}' (measure '{outcome.measure}') names data source "
            f"'{name}', a {project.params.data[name].kind} table; the referral-tracking "
            f"analysis measures {outcome.measure} from a {kind} table")


def _attendance_outcome(project: Project, outcome: Outcome) -> Section:
    d = tracking_data(project)
    _check_source(project, outcome, "attendance", d.options.attendance)
    change = _attendance_change(project, outcome)
    if change is None:
        raise ParamsError(f"Outcome '{outcome.id}' needs attendance data: set "
                          "analyses.referral_tracking.attendance")
    w = d.options.attendance_window_weeks
    result = change.record(outcome, period=change.period or project.period_text(),
                           notebook=NOTEBOOK)
    sec = _section(outcome.statement, result.sentence)
    sec.text(f"**Measure:** attendance (% of possible sessions), mean change per pupil "
             f"(after minus before) with its 95% confidence interval; "
             f"{'higher' if outcome.direction == 'higher_is_better' else 'lower'} is better."
             + f" **Verdict: {result.verdict}** — decided from the confidence interval "
             f"against no change (0). The windows ({w} weeks either side) are set in the "
             "project's parameters; the weekly chart under "
             f"*What changed for each pupil* shows {2 * w} weeks either side.")
    _add_table(sec, _attendance_board(d, change),
               "Headline: attendance before and after the first intervention")
    if outcome.target is not None:
        sec.text(_toc_target_text(outcome, result))
    sec.result = result
    return sec


def _needs_met_outcome(project: Project, outcome: Outcome) -> Section:
    d = tracking_data(project)
    _check_source(project, outcome, "referrals", d.options.referrals)
    target = needs_met_target(project, outcome)
    share = tracking.needs_met(d.register, target=None if target is None else target[0],
                               target_source="" if target is None else target[1],
                               direction=outcome.direction, disclosure=d.disclosure)
    if share.n == 0:
        raise DataError(f"Outcome '{outcome.id}': no referral has closed with an outcome "
                        "recorded yet, so the proportion with needs met cannot be estimated")
    result = share.record(outcome, notebook=NOTEBOOK)
    sec = _section(outcome.statement, result.sentence)
    sec.text("**Measure:** the proportion of closed referrals with a closure outcome recorded "
             "that closed as 'needs met', with a Wilson score 95% confidence interval. "
             + f"**Verdict: {result.verdict}.** The proportion is a level at one time, "
             "not a change from before, so there is no improved / worsened verdict; the "
             "outcome's target, where one is set, is judged below as met, not met or not "
             "yet clear from the whole confidence interval.")
    row = share.summary.iloc[0]
    n, k = share.n, share.successes
    table = pd.DataFrame([{"Closed referrals": n, "Needs met": k, "Other outcomes": n - k,
                           "Needs met (%)": 100 * row["proportion"],
                           "95% CI from": 100 * row["ci_low"],
                           "95% CI to": 100 * row["ci_high"],
                           "Target (%)": 100 * row["target"]}])
    table = _board(d, table, ["Closed referrals", "Needs met", "Other outcomes"],
                   derived=["Needs met (%)", "95% CI from", "95% CI to"], keep_zero=False,
                   sums_across=[["Needs met", "Other outcomes"]])
    _add_table(sec, table, "Headline: closed referrals with needs met",
               percent=("Needs met (%)", "95% CI from", "95% CI to", "Target (%)"))
    if outcome.target is not None:
        sec.text(_toc_target_text(outcome, result))
    sec.result = result
    return sec


def outcome_section(project: Project, outcome: Outcome) -> Section:
    """The section and headline :class:`~evaluation.results.Result` for one outcome.

    Chosen by ``outcome.measure``: ``attendance_pct`` (data: an attendance table) gives the
    mean change in attendance % from the weeks before to the weeks after each pupil's first
    intervention (:func:`evaluation.tracking.attendance_change`; verdict against 0 in the
    outcome's direction);
    ``needs_met`` (data: a referrals table) gives the proportion of closed referrals that
    closed as needs met with a Wilson CI, judged against :func:`needs_met_target`: verdict
    "improved" if the CI lies wholly on the better side of the target, "worsened" if wholly
    on the worse side, else "no clear change" (and "no clear change" with a missing null when
    no target is set). Anything else raises :class:`~evaluation.errors.ParamsError`.
    """
    if outcome.measure == "attendance_pct":
        return _attendance_outcome(project, outcome)
    if outcome.measure == "needs_met":
        return _needs_met_outcome(project, outcome)
    raise ParamsError(
        f"Outcome '{outcome.id}' has measure {outcome.measure!r} (data {outcome.data!r}), "
        "which the referral-tracking analysis cannot measure. Supported measures: "
        + ", ".join(f"'{m}' (data: a {k} table)" for m, k in SUPPORTED_MEASURES.items())
        + ". Change the outcome's measure or its analysis in the theory of change.")
