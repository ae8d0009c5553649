"""What changed for each pupil around their first intervention: attendance before and
after, the weekly event study, suspensions before and after, and time to the next
suspension or re-referral (Kaplan-Meier, log-rank)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from evaluation import calendar
from evaluation.baseline_followup import PairedChange, paired_change
from evaluation.errors import DataError, describe_rows
from evaluation.privacy import Disclosure
from evaluation.results import (
    BETTER_CAUSE_UNCLEAR,
    NOT_A_CHANGE,
    TOO_FEW,
    WORSE_CAUSE_UNCLEAR,
    Direction,
    RecordsHeadline,
    format_estimate,
    format_figure,
    format_interval,
)
from evaluation.tracking.quality import file_lines
from evaluation.tracking.register import Register, positions, require


def pupil_starts(register: Register) -> pd.Series:
    """Each pupil's earliest first-intervention start (index: pupil ids, sorted)."""
    tab = register.table[["pupil_id", "first_intervention_start"]]  # (not the whole register)
    starts = tab.dropna().groupby("pupil_id")["first_intervention_start"].min()
    return starts.rename_axis("pupil_id")


def attendance_by_week(register: Register, attendance: pd.DataFrame,
                       weeks: tuple[int, int] | None = None, *,
                       starts: pd.Series | None = None) -> pd.DataFrame:
    """Sessions attended and possible per pupil and week relative to the pupil's first
    intervention start (``rel_week`` 0 = the Monday-to-Sunday week holding the start; weeks
    from :func:`evaluation.calendar.week_start`), for the weeks ``(first, last)`` (default:
    all). Rows of pupils without an intervention or without a week are left out. Raises
    :class:`DataError` if a row records more sessions attended than possible. ``starts``:
    :func:`pupil_starts` of the register, when the caller has it already."""
    require(attendance, "attendance",
            ["pupil_id", "week_start", "possible_sessions", "attended_sessions"])
    over = attendance["attended_sessions"] > attendance["possible_sessions"]
    if over.any():
        raise DataError(
            f"The attendance table, column 'attended_sessions': {describe_rows(file_lines(over))} "
            "record more sessions attended than possible. Correct the source file and re-run "
            "intake.")
    start_week = calendar.week_start(pupil_starts(register) if starts is None else starts)
    pupil = positions(attendance["pupil_id"], start_week.index)  # -1: no start
    rows = np.flatnonzero((pupil >= 0) & attendance["week_start"].notna().to_numpy())
    # whole weeks from the Monday of the start week: the Monday of the row's week is a
    # whole number of weeks after it, and the row's date is 0-6 days after that Monday
    days = attendance["week_start"].to_numpy()[rows] - start_week.to_numpy()[pupil[rows]]
    rel_week = days // np.timedelta64(7, "D")
    if weeks is not None:  # (before the other columns are taken: they are long)
        inside = (rel_week >= weeks[0]) & (rel_week <= weeks[1])
        rows, rel_week = rows[inside], rel_week[inside]
    frame = pd.DataFrame({"pupil": pupil[rows], "rel_week": rel_week,
                          "attended": attendance["attended_sessions"].to_numpy()[rows],
                          "possible": attendance["possible_sessions"].to_numpy()[rows]})
    summed = frame.groupby(["pupil", "rel_week"], as_index=False).sum()
    summed.insert(0, "pupil_id", start_week.index[summed.pop("pupil")])
    return summed


def _sessions_by_bin(weekly: pd.DataFrame, starts: pd.Series, bins: pd.Series
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Attended and possible sessions per pupil (rows, every pupil in ``starts``) and bin
    (columns), from the weekly sums; ``bins`` maps a relative week to its bin."""
    binned = weekly.assign(bin=weekly["rel_week"].map(bins)).dropna(subset=["bin"])
    sums = binned.pivot_table(index="pupil_id", columns="bin", values=["attended", "possible"],
                              aggfunc="sum", fill_value=0)
    columns = sorted(set(bins))
    attended = sums.get("attended", pd.DataFrame()).reindex(index=starts.index,
                                                            columns=columns, fill_value=0.0)
    possible = sums.get("possible", pd.DataFrame()).reindex(index=starts.index,
                                                            columns=columns, fill_value=0.0)
    return attended.astype(float), possible.astype(float)


def _around_start(starts: pd.Series, weekly: pd.DataFrame, window_weeks: int) -> pd.DataFrame:
    w = int(window_weeks)
    if w < 1:
        raise DataError(f"window_weeks must be at least 1, got {window_weeks!r}.")
    bins = pd.Series(["baseline"] * w + ["follow_up"] * w, index=range(-w, w))
    attended, possible = _sessions_by_bin(weekly, starts, bins)
    pct = 100.0 * attended / possible.where(possible > 0)
    return pd.DataFrame({
        "pupil_id": starts.index.to_numpy(),
        "start_date": starts.to_numpy(),
        "baseline": pct["baseline"].to_numpy(),
        "follow_up": pct["follow_up"].to_numpy(),
        "baseline_possible": possible["baseline"].to_numpy(),
        "follow_up_possible": possible["follow_up"].to_numpy(),
    })


def attendance_around_start(register: Register, attendance: pd.DataFrame,
                            window_weeks: int = 6) -> pd.DataFrame:
    """Attendance % before and after each pupil's first intervention start (wide table).

    Week k = 0 is the week of the pupil's earliest first-intervention start. ``baseline`` =
    100 * attended / possible sessions over weeks -window_weeks..-1; ``follow_up`` = the same
    over 0..window_weeks-1 (the start week counts as follow-up); missing when no session was
    possible. Columns: pupil_id, start_date, baseline, follow_up, baseline_possible,
    follow_up_possible -- ready for ``evaluation.baseline_followup.paired_change``.
    """
    return _around_start(pupil_starts(register), attendance_by_week(register, attendance),
                         window_weeks)


ATTENDANCE_UNIT = "percentage points"


@dataclass
class AttendanceChange(RecordsHeadline):
    """Attendance % before and after each pupil's first intervention: the paired change
    (:func:`evaluation.baseline_followup.paired_change`) of :func:`attendance_around_start`.

    Follows :class:`evaluation.results.AnalysisResult`; the headline is the mean change per
    pupil in percentage points with its t interval, verdict against no change (0).
    """

    analysis = "referral_tracking"  # (the analysis recorded in results.json)

    change: PairedChange
    around: pd.DataFrame
    window_weeks: int

    @property
    def direction(self) -> Direction:
        return self.change.direction

    @property
    def confidence(self) -> float:
        return self.change.confidence

    @property
    def summary(self) -> pd.DataFrame:
        return self.change.summary

    @property
    def period(self) -> str:
        """The first interventions compared, e.g. "first interventions starting September
        2021 to June 2024"."""
        both = self.around["baseline"].notna() & self.around["follow_up"].notna()
        starts = self.around.loc[both, "start_date"]
        if starts.empty:
            return ""
        return (f"first interventions starting {starts.min():%B %Y} to "
                f"{starts.max():%B %Y}")

    def headline(self) -> dict[str, Any]:
        return {**self.change.headline(), "unit": ATTENDANCE_UNIT, "period": self.period}

    def headline_text(self) -> str:
        """E.g. 'Attendance +2.4 percentage points (+1.3 to +3.5); single group
        before–after': the figures and the design they come from."""
        h = self.headline()
        return (f"Attendance {format_figure(h['estimate'], ATTENDANCE_UNIT)} percentage points "
                f"({format_interval(h['ci_low'], h['ci_high'], ATTENDANCE_UNIT)}); "
                f"{self.change.design}")

    @property
    def sentence(self) -> str:
        """Plain English for the paired change (no EEF months: that scale is for
        attainment, not attendance); counts through the result's disclosure step."""
        shown = self.change.disclosure
        row = self.summary.iloc[-1]
        n = int(row["n_pairs"])
        weeks = self.window_weeks
        lo, hi = row["mean_change_ci_low"], row["mean_change_ci_high"]
        if not np.isfinite(lo) or shown.is_small(n):
            return ("There were too few pupils with attendance before and after to compare "
                    f"({shown.pupils(n)}).")
        md = row["mean_change"]
        moved = "rose" if md > 0 else "fell" if md < 0 else "stayed the same"
        clear = {"improved": "a clear improvement", "worsened": "a clear fall",
                 "no clear change": "not a clear change either way",
                 BETTER_CAUSE_UNCLEAR: ("a clear rise, though with no comparison group it "
                                        "cannot be put down to the intervention: pupils are "
                                        "often referred when their attendance is at its "
                                        "lowest, and it tends to recover on its own"),
                 WORSE_CAUSE_UNCLEAR: ("a clear fall, though with no comparison group the "
                                       "design cannot say why"),
                 TOO_FEW: "too few pupils to judge a change",
                 }[self.headline()["verdict"]]
        unpaired = int(row["n_baseline_only"] + row["n_follow_up_only"])
        who = shown.pupils(unpaired)
        tail = (f" {who[:1].upper() + who[1:]} with attendance in only one of the windows "
                "could not be compared." if unpaired else "")
        pct = f"{self.confidence * 100:g}%"
        return (f"Referred pupils' attendance {moved} from {row['baseline_mean']:.1f}% in the "
                f"{weeks} weeks before their first intervention to {row['follow_up_mean']:.1f}% "
                f"in the {weeks} weeks from its start ({shown.pupils(n)}): "
                f"{format_figure(md, ATTENDANCE_UNIT)} percentage points ({pct} CI "
                f"{format_interval(lo, hi, ATTENDANCE_UNIT)}; Hedges' g "
                f"{format_figure(row['g_av'], 'effect size')}), {clear}.{tail}")

    def plot(self, ax: Any = None) -> Any:
        return self.change.plot(ax)


def _attendance_change(around: pd.DataFrame, window_weeks: int, direction: Direction,
                       confidence: float, disclosure: Disclosure | None) -> AttendanceChange:
    change = paired_change(around, "baseline", "follow_up", direction=direction,
                           confidence=confidence, label="attendance (%)",
                           disclosure=disclosure)
    change.unit = ATTENDANCE_UNIT
    return AttendanceChange(change=change, around=around, window_weeks=int(window_weeks))


def attendance_change(register: Register, attendance: pd.DataFrame, window_weeks: int = 6,
                      *, direction: Direction = "higher_is_better", confidence: float = 0.95,
                      disclosure: Disclosure | None = None) -> AttendanceChange:
    """The paired change in attendance % from the ``window_weeks`` before each pupil's
    first intervention to the ``window_weeks`` from its start (:func:`attendance_around_start`,
    then :func:`evaluation.baseline_followup.paired_change`)."""
    return _attendance_change(attendance_around_start(register, attendance, window_weeks),
                              window_weeks, direction, confidence, disclosure)


def _event_study(weekly: pd.DataFrame, starts: pd.Series, freq: str, window: tuple[int, int],
                 confidence: float) -> pd.DataFrame:
    widths = {"W": 1, "2W": 2, "4W": 4}
    if freq not in widths:
        raise DataError(f"event_study: freq must be one of {', '.join(widths)}, got {freq!r}.")
    lo, hi = int(window[0]), int(window[1])
    if hi < lo:
        raise DataError(f"event_study: window {window!r} must be (first, last) with first <= last.")
    width = widths[freq]
    weeks = range(lo * width, (hi + 1) * width)
    bins = pd.Series([k // width for k in weeks], index=weeks)
    attended, possible = _sessions_by_bin(weekly, starts, bins)
    pct = 100.0 * attended / possible.where(possible > 0)  # pupils without data: missing
    n = pct.count()
    mean, sd = pct.mean(), pct.std(ddof=1).where(n > 1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n)
    rel = np.arange(lo, hi + 1)
    return pd.DataFrame({"rel_period": rel, "rel_week": rel * width,
                         "n_pupils": n.to_numpy(np.int64), "mean": mean.to_numpy(),
                         "sd": sd.to_numpy(), "ci_low": (mean - half).to_numpy(),
                         "ci_high": (mean + half).to_numpy()})


def event_study(register: Register, attendance: pd.DataFrame, freq: str = "W",
                window: tuple[int, int] = (-8, 8), confidence: float = 0.95) -> pd.DataFrame:
    """Mean attendance % by period relative to the first intervention start, with t CIs.

    Weeks k as in :func:`attendance_around_start`; ``freq`` ``"W"``, ``"2W"`` or ``"4W"``
    groups them into bins b = floor(k / width); ``window`` = (first, last) bin, inclusive.
    Each pupil's % in a bin = 100 * attended / possible (pupils with no possible session
    left out). Per bin: mean over pupils, sd (ddof=1), ``mean +/- t * sd / sqrt(n)`` (sd and
    CI missing with fewer than 2 pupils). Columns: rel_period, rel_week (first week of the
    bin), n_pupils, mean, sd, ci_low, ci_high.
    """
    return _event_study(attendance_by_week(register, attendance), pupil_starts(register),
                        freq, window, confidence)


def suspensions_around_start(register: Register, suspensions: pd.DataFrame,
                             window_days: int = 90) -> pd.DataFrame:
    """Suspension counts in the ``window_days`` before and after each pupil's first start.

    d = suspension date - start date (days): ``before`` counts -window_days <= d < 0,
    ``after`` counts 0 <= d < window_days. ``follow_up_complete``: start + window_days <=
    ``register.today`` (otherwise ``after`` covers a shorter time).
    Columns: pupil_id, start_date, before, after, follow_up_complete.
    """
    require(suspensions, "suspensions", ["pupil_id", "date"])
    w = int(window_days)
    starts = pupil_starts(register)
    s = suspensions.assign(start=suspensions["pupil_id"].map(starts)).dropna(
        subset=["start", "date"])
    d = (s["date"].dt.normalize() - s["start"]).dt.days
    before = s["pupil_id"][(d >= -w) & (d < 0)].value_counts()
    after = s["pupil_id"][(d >= 0) & (d < w)].value_counts()
    return pd.DataFrame({
        "pupil_id": starts.index.to_numpy(), "start_date": starts.to_numpy(),
        "before": before.reindex(starts.index, fill_value=0).to_numpy(np.int64),
        "after": after.reindex(starts.index, fill_value=0).to_numpy(np.int64),
        "follow_up_complete": (starts + pd.Timedelta(days=w) <= register.today).to_numpy()})


# ------------------------------------------------------------------ time to event


@dataclass
class SurvivalResult(RecordsHeadline):
    """Kaplan-Meier curves by group (``table``), the log-rank test (``test``) and the
    per-case data behind them (``data``), from :func:`time_to_event`.

    Follows :class:`evaluation.results.AnalysisResult`. ``summary``: per group, cases,
    events and the Kaplan-Meier proportion without an event at 90 and 180 days. The
    headline is the proportion of all cases still without an event at ``horizon`` days
    (Kaplan-Meier over every case, log(-log) interval). It describes; there is no "no
    change" value to judge it against (``null`` is missing), so its verdict is always
    :data:`~evaluation.results.NOT_A_CHANGE`: the log-rank test compares the groups.
    """

    analysis = "referral_tracking"  # (the analysis recorded in results.json)

    table: pd.DataFrame
    test: dict[str, float]
    data: pd.DataFrame
    event_label: str = "suspension or re-referral"
    horizon: float = 180.0
    direction: Direction = "higher_is_better"  # staying without an event is better
    confidence: float = 0.95

    def survival_at(self, days: float) -> pd.Series:
        """Each group's Kaplan-Meier proportion without an event at ``days`` (the step
        function read at ``days``: 1 before the group's first event time)."""
        out = {group: float(_step_at(rows, days)["survival"])
               for group, rows in self.table.groupby("group", sort=True)}
        return pd.Series(out, name=f"survival_{days:g}d", dtype=float)

    @property
    def summary(self) -> pd.DataFrame:
        counts = self.data.groupby("group", sort=True).agg(
            cases=("status", "size"), events=("status", "sum"))
        for days in (90, 180):
            counts[f"survival_{days}d"] = self.survival_at(days).reindex(counts.index)
        return counts.rename_axis("group").reset_index()

    def headline(self) -> dict[str, Any]:
        unit = f"proportion without a {self.event_label} at {self.horizon:g} days"
        est = lo = hi = float("nan")
        if len(self.data):
            at = _step_at(_kaplan_meier(self.data, self.confidence), self.horizon)
            est, lo, hi = (float(at[c]) for c in ("survival", "ci_low", "ci_high"))
        return {"estimate": est, "ci_low": lo, "ci_high": hi, "unit": unit,
                "null": float("nan"), "n": len(self.data), "verdict": NOT_A_CHANGE}

    def headline_text(self) -> str:
        """E.g. 'Without a suspension or re-referral at 180 days 72% (68% to 76%)'."""
        h = self.headline()
        return (f"Without a {self.event_label} at {self.horizon:g} days "
                + format_estimate(h["estimate"], h["ci_low"], h["ci_high"], h["unit"]))

    @property
    def sentence(self) -> str:
        """Whether the groups' curves differ (log-rank test)."""
        p = self.test.get("p_value", np.nan)
        what = (f"Time from the first intervention to the pupil's next {self.event_label}")
        if np.isnan(p):
            return "There are too few groups to compare."
        if p < 1 - self.confidence:
            return f"{what} differed between interventions (log-rank p = {p:.3f})."
        return (f"{what} was not clearly different between interventions (log-rank "
                f"p = {p:.2f}).")

    def plot(self, ax: Any = None) -> Any:
        """The Kaplan-Meier curves (:func:`plot_km`); returns the Figure."""
        return plot_km(self, ax=ax).figure


def _next_after(cases: pd.DataFrame, when: str, events: pd.DataFrame) -> pd.Series:
    """For each case, the pupil's first event date strictly after ``cases[when]``
    (``pd.merge_asof`` forward by pupil; missing when there is none)."""
    left = cases[["pupil_id", when]].reset_index().sort_values(when)
    right = (events.dropna().rename(columns={"date": "_next"})
             .astype({"_next": left[when].dtype}).sort_values("_next"))
    found = pd.merge_asof(left, right, left_on=when, right_on="_next", by="pupil_id",
                          direction="forward", allow_exact_matches=False)
    return found.set_index("index")["_next"].reindex(cases.index)


def _kaplan_meier(cases: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """The Kaplan-Meier curve of the cases (``time``, ``status``): time, survival, ci_low,
    ci_high (log(-log) pointwise), at_risk, events (``SurvfuncRight``)."""
    sf = SurvfuncRight(cases["time"].to_numpy(float), cases["status"].to_numpy(int))
    lo, hi = _log_log_ci(sf, stats.norm.ppf(0.5 + confidence / 2))
    return pd.DataFrame({"time": sf.surv_times, "survival": np.asarray(sf.surv_prob, float),
                         "ci_low": lo, "ci_high": hi, "at_risk": sf.n_risk,
                         "events": sf.n_events})


def _step_at(km: pd.DataFrame, days: float) -> pd.Series:
    """The row of a Kaplan-Meier curve in force at ``days`` (1 before the first event)."""
    before = km[km["time"] <= days]
    return before.iloc[-1] if len(before) else pd.Series(1.0, index=km.columns)


def _log_log_ci(sf: SurvfuncRight, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise CI on the log(-log) scale (Kalbfleisch & Prentice 2002):
    S^exp(+/- z se / (S |log S|)). Written here because SurvfuncRight gives only the
    standard errors (and simultaneous bands)."""
    s, se = np.asarray(sf.surv_prob, float), np.asarray(sf.surv_prob_se, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.log(-np.log(s))
        h = z * se / (s * np.abs(np.log(s)))
        lo, hi = np.exp(-np.exp(ll + h)), np.exp(-np.exp(ll - h))
    edge = np.where(s >= 1, 1.0, np.where(s <= 0, 0.0, np.nan))
    return np.where(np.isnan(edge), lo, edge), np.where(np.isnan(edge), hi, edge)


def time_to_event(
    register: Register,
    suspensions: pd.DataFrame,
    referrals: pd.DataFrame | None = None,
    by: str = "intervention",
    end_date: Any = None,
    confidence: float = 0.95,
) -> SurvivalResult:
    """Kaplan-Meier time from the first intervention start to the next suspension or
    re-referral, by group, with the log-rank test.

    One case per referral with an intervention started by ``end_date`` (default
    ``register.today``). Event = the earlier of the pupil's next suspension after the start
    and the pupil's next referral after both the start and the case's own referral date
    (``referrals`` defaults to the register). Cases without an event by ``end_date`` are
    censored there; time = days from start to event or censoring. ``by="intervention"``
    groups by the first intervention's type; any register column may be given.

    Survival: ``statsmodels.duration.survfunc.SurvfuncRight`` per group (Kaplan-Meier,
    Greenwood standard errors, log(-log) pointwise CI); log-rank test:
    ``statsmodels.duration.survfunc.survdiff``, (groups - 1) degrees of freedom.
    ``table``: group, time, survival, ci_low, ci_high, at_risk, events; ``test``: chi2, df,
    p_value; ``data``: referral_id, pupil_id, group, time, status.
    """
    require(suspensions, "suspensions", ["pupil_id", "date"])
    tab = register.table
    col = "first_intervention" if by == "intervention" else by
    if col not in tab.columns:
        raise DataError(f"time_to_event: the register has no column {by!r}. Pupil "
                        "characteristics need build_register(..., pupils=pupils).")
    end = register.today if end_date is None else pd.Timestamp(end_date)
    start = tab["first_intervention_start"]
    needed = list(dict.fromkeys(["referral_id", "pupil_id", "referral_date",
                                 "first_intervention_start", col]))
    cases = tab.loc[start.notna() & tab[col].notna() & (start <= end), needed]
    cases = cases.assign(after=np.maximum(cases["first_intervention_start"],
                                          cases["referral_date"]))
    if referrals is None:
        referrals = tab
    require(referrals, "referrals", ["pupil_id", "referral_date"])
    next_suspension = _next_after(cases, "first_intervention_start",
                                  suspensions[["pupil_id", "date"]])
    next_referral = _next_after(cases, "after", referrals[["pupil_id", "referral_date"]]
                                .rename(columns={"referral_date": "date"}))
    event = pd.concat([next_suspension, next_referral], axis=1).min(axis=1)
    status = event.notna() & (event <= end)
    time = (event.where(status, end) - cases["first_intervention_start"]).dt.total_seconds()
    data = pd.DataFrame({"referral_id": cases["referral_id"], "pupil_id": cases["pupil_id"],
                         "group": cases[col].astype(object), "time": time / 86_400,
                         "status": status.astype(int)}).reset_index(drop=True)

    groups = sorted(data["group"].unique())
    parts = []
    for g, rows in data.groupby("group", sort=True):
        km = _kaplan_meier(rows, confidence)
        km.insert(0, "group", g)
        parts.append(km)
    table = (pd.concat(parts, ignore_index=True) if parts else
             pd.DataFrame(columns=["group", "time", "survival", "ci_low", "ci_high",
                                   "at_risk", "events"]))
    test = {"chi2": np.nan, "df": np.nan, "p_value": np.nan}
    # The log-rank test compares groups that have events to compare: with fewer than two
    # groups, or no event at all, its variance matrix is singular and there is no test.
    if len(groups) >= 2 and data["status"].sum() > 0:
        try:
            chi2, p = survdiff(data["time"].to_numpy(float), data["status"].to_numpy(int),
                               data["group"].to_numpy())
            test = {"chi2": float(chi2), "df": float(len(groups) - 1), "p_value": float(p)}
        except np.linalg.LinAlgError:  # e.g. every event in one group: no test to report
            pass
    return SurvivalResult(table=table, test=test, data=data, confidence=confidence)


def plot_km(result: SurvivalResult, ax: Any = None, title: str | None = None) -> Any:
    """Step plot of the Kaplan-Meier curves (with shaded pointwise CIs) from
    :func:`time_to_event`; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for grp, d in result.table.groupby("group", sort=True):
        t = np.r_[0.0, d["time"].to_numpy(float)]
        s = np.r_[1.0, d["survival"].to_numpy(float)]
        lo = np.r_[1.0, d["ci_low"].to_numpy(float)]
        hi = np.r_[1.0, d["ci_high"].to_numpy(float)]
        n = int(result.data["group"].eq(grp).sum())
        (line,) = ax.step(t, s, where="post", label=f"{grp} (n={n})")
        ax.fill_between(t, lo, hi, step="post", lw=0,
                        color=to_rgba(line.get_color(), 0.15))  # (a see-through band)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Days since the first intervention started")
    ax.set_ylabel(f"Proportion without a {result.event_label}")
    p = result.test.get("p_value", np.nan)
    sub = f" (log-rank p = {p:.3g})" if not np.isnan(p) else ""
    ax.set_title(title or f"Time to {result.event_label}{sub}")
    if ax.get_legend_handles_labels()[0]:  # no curve (no case yet): no legend to draw
        ax.legend(title="First intervention", fontsize="small")
    return ax


class PupilAnalyses:
    """The pupil-level analyses of one register, each worked out when first read and kept:
    ``around_start`` (:func:`attendance_around_start` with ``window_weeks``),
    ``event_study`` (weekly, ``-2 * window_weeks`` to ``2 * window_weeks - 1``),
    ``suspensions_around`` (:func:`suspensions_around_start` with ``suspension_days``) and
    ``survival`` (:func:`time_to_event` by first intervention); :meth:`attendance_change`
    gives the paired change of ``around_start``. The attendance table is summed
    by pupil and week once (``weekly``) for the first two. An attribute is ``None`` when its
    table is not given; a bad table raises when the attribute is read."""

    def __init__(self, register: Register, attendance: pd.DataFrame | None = None,
                 suspensions: pd.DataFrame | None = None, *, window_weeks: int = 6,
                 suspension_days: int = 90, disclosure: Disclosure | None = None) -> None:
        self.register = register
        self.attendance = attendance
        self.suspensions = suspensions
        self.window_weeks = int(window_weeks)
        self.suspension_days = int(suspension_days)
        self.disclosure = Disclosure() if disclosure is None else disclosure

    def attendance_change(self, direction: Direction = "higher_is_better",
                          confidence: float = 0.95) -> AttendanceChange | None:
        """:func:`attendance_change` from :attr:`around_start` (None without attendance)."""
        if self.around_start is None:
            return None
        return _attendance_change(self.around_start, self.window_weeks, direction,
                                  confidence, self.disclosure)

    @cached_property
    def starts(self) -> pd.Series:
        """:func:`pupil_starts` of the register (read by the attendance analyses)."""
        return pupil_starts(self.register)

    @cached_property
    def weekly(self) -> pd.DataFrame | None:
        """:func:`attendance_by_week` of the attendance table, in the weeks of the event
        study."""
        if self.attendance is None:
            return None
        w = self.window_weeks
        return attendance_by_week(self.register, self.attendance, (-2 * w, 2 * w - 1),
                                  starts=self.starts)

    @cached_property
    def around_start(self) -> pd.DataFrame | None:
        if self.weekly is None:
            return None
        return _around_start(self.starts, self.weekly, self.window_weeks)

    @cached_property
    def event_study(self) -> pd.DataFrame | None:
        if self.weekly is None:
            return None
        w = self.window_weeks
        return _event_study(self.weekly, self.starts, "W", (-2 * w, 2 * w - 1), 0.95)

    @cached_property
    def suspensions_around(self) -> pd.DataFrame | None:
        if self.suspensions is None:
            return None
        return suspensions_around_start(self.register, self.suspensions, self.suspension_days)

    def suspension_change(self) -> PairedChange | None:
        """The paired change in suspensions per pupil (after minus before, lower is better)
        among the pupils of :attr:`suspensions_around` whose window after had passed
        (None without a suspensions table)."""
        around = self.suspensions_around
        if around is None:
            return None
        full = around[around["follow_up_complete"]]
        return paired_change(full, "before", "after", direction="lower_is_better",
                             label=f"suspensions in {self.suspension_days} days",
                             disclosure=self.disclosure)

    @cached_property
    def survival(self) -> SurvivalResult | None:
        if self.suspensions is None:
            return None
        return time_to_event(self.register, self.suspensions)
