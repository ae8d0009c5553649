"""Intervention tracking for referred pupils.

The tables come from intake (see ``docs/tables.md``): ``referrals``, ``interventions``,
``reviews`` and optionally ``pupils``, ``attendance`` and ``suspensions``. Everything here is
vectorised (pandas/numpy); nothing loops over referrals in Python.

Decisions that shape the numbers (each function's docstring repeats what applies to it):

* **Unusable records** (a referral with no referral date, no pupil id or no referral id; an
  intervention with no start date, no name or a referral id that is not a usable referral;
  a review with no date or an unknown referral id) are *left out and listed* in
  ``Register.quality`` with the action ``"excluded: ..."``. Pass ``strict=True`` to
  :func:`build_register` to raise :class:`~evaluation.errors.DataError` instead.
  A duplicated ``referral_id`` always raises, because no row can be chosen safely.
* **Usable but inconsistent records** stay in and are listed with the action ``"kept: ..."``.
  Negative durations (a response, closure or intervention before the referral) are set to
  missing in the derived duration columns, so they never enter medians or percentiles.
  Sessions attended above sessions planned are capped at the planned number.
  Intervention names are matched to the menu ignoring case and surrounding spaces; a name
  that is still not on the menu is kept under its own name and the closest menu item
  (``difflib.get_close_matches``, cutoff 0.6) is offered in the quality table.
* **Working days** are weekdays that are not England bank holidays (``holidays`` library,
  ``country_holidays("GB", subdiv="ENG")``), counted as ``numpy.busday_count(start, end)``:
  start day included, end day excluded, so a response the next working day is 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import holidays as holidays_lib
import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight, survdiff
from statsmodels.stats.proportion import proportion_confint

from evaluation.errors import DataError, describe_rows

__all__ = [
    "CLOSURE_OUTCOMES",
    "ESCALATION_OUTCOMES",
    "MENU",
    "REVIEW_OUTCOMES",
    "Register",
    "SurvivalResult",
    "attendance_around_start",
    "build_register",
    "caseload",
    "costs",
    "disproportionality",
    "disproportionality_table",
    "england_bank_holidays",
    "event_study",
    "funnel",
    "kpi_sentences",
    "outcomes_by",
    "pathway_kpis",
    "plot_km",
    "suppress",
    "suspensions_around_start",
    "time_open",
    "time_to_event",
    "working_days_between",
]

MENU: tuple[str, ...] = (
    "mentoring",
    "parenting programme",
    "speech and language",
    "play therapy",
    "art therapy",
    "nurture group",
    "school-refusal support",
)
CLOSURE_OUTCOMES: tuple[str, ...] = (
    "needs met",
    "EHC needs assessment",
    "alternative provision",
    "school move",
)
ESCALATION_OUTCOMES: tuple[str, ...] = CLOSURE_OUTCOMES[1:]
REVIEW_OUTCOMES: tuple[str, ...] = ("attendance_improved", "ready_to_learn", "on_track")
QUALITY_COLUMNS = ["table", "record_id", "column", "problem", "action"]

_FAR_FUTURE = pd.Timestamp("2200-01-01")
_REFERRAL_OPTIONAL = {
    "school_id": "str",
    "reason": "str",
    "first_response_date": "date",
    "lead_professional": "str",
    "closure_date": "date",
    "closure_outcome": "str",
}
_INTERVENTION_OPTIONAL = {
    "end_date": "date",
    "sessions_planned": "num",
    "sessions_attended": "num",
    "cost": "num",
}


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def _require(df: Any, table: str, cols: Iterable[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"The {table} table must be a pandas DataFrame, got {type(df).__name__}. "
            "Pass the table produced by evaluation.intake."
        )
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"The {table} table has no column {', '.join(repr(c) for c in missing)}. "
            "Map the school's header to this name in params/<project>.yaml and re-run intake."
        )


def _lines(mask: Any) -> list[int]:
    """1-based file line numbers (header = line 1) of the True positions of ``mask``."""
    return (np.flatnonzero(np.asarray(mask, dtype=bool)) + 2).tolist()


def _add_optional(df: pd.DataFrame, spec: Mapping[str, str]) -> pd.DataFrame:
    for col, kind in spec.items():
        if col not in df.columns:
            if kind == "date":
                df[col] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
            elif kind == "num":
                df[col] = np.nan
            else:
                df[col] = pd.Series(pd.NA, index=df.index, dtype="str")
    return df


def _as_dates(df: pd.DataFrame, table: str, col: str) -> pd.Series:
    s = df[col]
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    conv = pd.to_datetime(s, errors="coerce")
    bad = conv.isna() & s.notna()
    if bad.any():
        raise DataError(
            f"The {table} table, column {col!r}: {describe_rows(_lines(bad))} are not dates. "
            "Write dates as dd/mm/yyyy or yyyy-mm-dd and re-run intake."
        )
    return conv


def _as_number(df: pd.DataFrame, table: str, col: str) -> pd.Series:
    s = df[col]
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    conv = pd.to_numeric(s, errors="coerce")
    bad = conv.isna() & s.notna()
    if bad.any():
        raise DataError(
            f"The {table} table, column {col!r}: {describe_rows(_lines(bad))} are not numbers. "
            "Correct them in the source file and re-run intake."
        )
    return conv.astype(float)


def _record_ids(df: pd.DataFrame, id_col: str, mask: np.ndarray) -> np.ndarray:
    ids = df[id_col][mask].astype(object).to_numpy()
    lines = np.flatnonzero(mask) + 2
    missing = pd.isna(ids)
    ids = ids.astype(object)
    ids[missing] = [f"line {n}" for n in lines[missing]]
    return ids.astype(str)


def _issue(
    df: pd.DataFrame,
    mask: Any,
    table: str,
    id_col: str,
    column: str,
    problem: Any,
    action: Any,
) -> pd.DataFrame:
    """Quality rows for the True rows of ``mask``; ``problem``/``action`` may be a string, a
    Series aligned with ``df``, or a function of the flagged sub-frame."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return pd.DataFrame(columns=QUALITY_COLUMNS)

    sub = df[mask]

    def pick(x: Any) -> Any:
        if isinstance(x, str):
            return x
        if callable(x):  # build text for the flagged rows only
            x = x(sub)
            return np.asarray(pd.Series(x).astype(object))
        return np.asarray(x.astype(object))[mask]

    return pd.DataFrame(
        {
            "table": table,
            "record_id": _record_ids(df, id_col, mask),
            "column": column,
            "problem": pick(problem),
            "action": pick(action),
        }
    )


def _fmt_dates(s: pd.Series) -> pd.Series:
    return s.dt.strftime("%Y-%m-%d").astype(object)


def _positions(keys: Any, values: Any) -> np.ndarray:
    """Position in ``keys`` of each of ``values`` (-1 where absent or missing).

    Vectorised: ``pandas.factorize`` each side, then match only the distinct values (fast for
    Arrow-backed strings, where ``Series.isin`` is slow). With duplicated keys the first
    position is used.
    """
    kc, ku = pd.factorize(np.asarray(keys, dtype=object) if not isinstance(
        keys, pd.Series | pd.Index) else keys)
    vc, vu = pd.factorize(np.asarray(values, dtype=object) if not isinstance(
        values, pd.Series | pd.Index) else values)
    first = np.full(len(ku), -1, dtype=np.int64)
    rev = np.arange(len(kc) - 1, -1, -1)
    ok = kc[rev] >= 0
    first[kc[rev][ok]] = rev[ok]  # later writes win, so the first occurrence is kept
    match = pd.Index(np.asarray(ku, dtype=object)).get_indexer(np.asarray(vu, dtype=object))
    pos_u = np.where(match >= 0, first[np.maximum(match, 0)], -1)
    return np.where(vc >= 0, pos_u[np.maximum(vc, 0)], -1)


def _take(values: pd.Series, pos: np.ndarray) -> pd.Series:
    """``values.iloc[pos]`` with missing where ``pos`` is -1 (index reset)."""
    out = values.iloc[np.where(pos >= 0, pos, 0)].reset_index(drop=True) if len(values) else (
        pd.Series([pd.NA] * len(pos), dtype=values.dtype))
    return out.where(pd.Series(pos >= 0)) if (pos < 0).any() else out


def _days(s: pd.Series) -> np.ndarray:
    """Dates as int64 day numbers since 1970-01-01 (NaT becomes the int64 minimum)."""
    return s.to_numpy(dtype="datetime64[D]").astype(np.int64)


# --------------------------------------------------------------------------------------
# working days
# --------------------------------------------------------------------------------------


def england_bank_holidays(years: Iterable[int]) -> np.ndarray:
    """England bank holidays for ``years`` as a sorted ``datetime64[D]`` array.

    Source: ``holidays.country_holidays("GB", subdiv="ENG", years=years)``.
    """
    years = sorted({int(y) for y in years})
    if not years:
        return np.array([], dtype="datetime64[D]")
    hol = holidays_lib.country_holidays("GB", subdiv="ENG", years=years)
    return np.array(sorted(hol.keys()), dtype="datetime64[D]")


def _day_array(x: Any) -> np.ndarray:
    if isinstance(x, pd.Series | pd.Index):
        s = pd.to_datetime(x)
    else:
        s = pd.to_datetime(pd.Series(np.atleast_1d(np.asarray(x, dtype=object))))
    return np.asarray(s, dtype="datetime64[D]")


def _holiday_array(holidays: Iterable | None, *day_arrays: np.ndarray) -> np.ndarray:
    if holidays is not None:
        vals = list(holidays)
        if not vals:
            return np.array([], dtype="datetime64[D]")
        return np.unique(np.asarray(pd.to_datetime(pd.Series(vals)), dtype="datetime64[D]"))
    years: list[int] = []
    for arr in day_arrays:
        ok = arr[~np.isnat(arr)]
        if ok.size:
            yrs = ok.astype("datetime64[Y]").astype(np.int64) + 1970
            years += [int(yrs.min()), int(yrs.max())]
    if not years:
        return np.array([], dtype="datetime64[D]")
    return england_bank_holidays(range(min(years), max(years) + 1))


def working_days_between(
    start: Any, end: Any, holidays: Iterable | None = None
) -> np.ndarray | pd.Series | float:
    """Working days from ``start`` to ``end``, vectorised.

    Formula: ``numpy.busday_count(start, end, holidays=H)`` -- the number of Monday-Friday
    days in ``[start, end)`` that are not in ``H``: the start day counts, the end day does not,
    so a same-day response is 0 and a response on the next working day is 1. Negative when
    ``end < start``. ``H`` defaults to England bank holidays (``holidays`` library,
    ``country_holidays("GB", subdiv="ENG")``) for every year the dates span; pass an iterable
    of dates to use your own list, or ``[]`` for none.

    ``start``/``end`` may be scalars, arrays or Series (broadcast against each other). Missing
    dates give NaN. A Series ``start`` returns a Series with its index; scalars return a float.
    """
    scalar = np.ndim(start) == 0 and np.ndim(end) == 0 and not isinstance(start, pd.Series)
    s = _day_array(start)
    e = _day_array(end)
    s, e = np.broadcast_arrays(s, e)
    hol = _holiday_array(holidays, s, e)
    ok = ~(np.isnat(s) | np.isnat(e))
    out = np.full(s.shape, np.nan)
    if ok.any():
        out[ok] = np.busday_count(s[ok], e[ok], holidays=hol)
    if scalar:
        return float(out[0])
    if isinstance(start, pd.Series):
        return pd.Series(out, index=start.index, name="working_days")
    return out


# --------------------------------------------------------------------------------------
# register
# --------------------------------------------------------------------------------------


@dataclass
class Register:
    """One row per usable referral (``table``) plus the data-quality report (``quality``).

    ``interventions`` and ``reviews`` are the linked, cleaned rows the register was built
    from (menu names normalised, attended sessions capped at planned). ``today`` is the
    data end date used for open cases, censoring and future-date checks.
    """

    table: pd.DataFrame
    quality: pd.DataFrame
    interventions: pd.DataFrame
    reviews: pd.DataFrame
    today: pd.Timestamp
    holidays: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.table)


def _exclude_or_raise(
    df: pd.DataFrame,
    bad: pd.Series,
    table: str,
    id_col: str,
    column: str,
    problem: str,
    fix: str,
    strict: bool,
) -> pd.DataFrame:
    if strict and bool(bad.any()):
        raise DataError(
            f"The {table} table, column {column!r}: {describe_rows(_lines(bad))} {problem}. "
            f"{fix}, or pass strict=False to list them in .quality and leave them out."
        )
    return _issue(df, bad, table, id_col, column, problem, f"excluded: {fix.lower()}")


def _normalise_names(names: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Map names to menu spelling ignoring case/spaces; return (names, on_menu mask)."""
    lookup = {m.lower(): m for m in MENU}
    clean = names.astype("str").str.strip()
    mapped = clean.str.lower().map(lookup)
    on_menu = mapped.notna()
    return mapped.where(on_menu, clean), on_menu


def _joined_names(ref_ids: pd.Series, names: pd.Series, index: pd.Index) -> pd.Series:
    """Distinct names per referral, sorted and joined by "; " (vectorised via bitmasks over
    the distinct names, so only the distinct combinations are joined in Python)."""
    codes, uniq = pd.factorize(names.to_numpy(dtype=object), sort=True)
    if len(uniq) > 62:  # too many distinct names for a bitmask: plain groupby join
        pairs = pd.DataFrame({"r": ref_ids.to_numpy(), "n": names.to_numpy(dtype=object)})
        pairs = pairs.drop_duplicates().sort_values(["r", "n"])
        return pairs.groupby("r")["n"].agg("; ".join).reindex(index)
    bits = pd.Series(np.left_shift(np.int64(1), codes.astype(np.int64)))
    pairs = pd.DataFrame({"r": ref_ids.to_numpy(), "b": bits}).drop_duplicates()
    mask = pairs.groupby("r", sort=False)["b"].sum()
    combos = pd.unique(mask.to_numpy())
    text = {int(m): "; ".join(uniq[i] for i in range(len(uniq)) if (int(m) >> i) & 1)
            for m in combos}
    return mask.map(text).reindex(index).astype("str")


def build_register(
    referrals: pd.DataFrame,
    interventions: pd.DataFrame,
    reviews: pd.DataFrame,
    *,
    pupils: pd.DataFrame | None = None,
    today: Any = None,
    holidays: Iterable | None = None,
    strict: bool = False,
) -> Register:
    """Build the referral register: one row per referral with its pathway milestones.

    Register columns: every referral column, then ``first_intervention_start`` (earliest
    ``start_date``), ``first_intervention`` (name of the earliest), ``interventions`` (distinct
    names joined by ``"; "``), ``n_interventions``, ``sessions_planned`` and
    ``sessions_attended`` (sums over the referral's interventions; attended capped at planned
    per intervention), ``cost`` (sum where given), ``first_review_date``, ``n_reviews``, the
    review outcomes ``attendance_improved``/``ready_to_learn``/``on_track`` taken from the
    *latest* review (nullable boolean), ``status`` (``"closed"`` if a closure date on or before
    ``today`` is recorded, else ``"open"``), ``days_open`` (calendar days from referral to
    closure, or to ``today`` if open), ``working_days_to_response`` (see
    :func:`working_days_between`), ``days_to_first_intervention`` (calendar days) and
    ``needs_met`` (closed with outcome ``"needs met"``; missing while open or if no outcome).
    With ``pupils``, the pupil columns (sex, sen_status, fsm, ethnicity, ...) are joined on.

    ``quality`` columns: table, record_id, column, problem, action. Checked: missing
    referral date/pupil id/ids (excluded, or DataError with ``strict=True``); unknown
    referral id in interventions or reviews (excluded); intervention before its referral;
    closure before the first response; response/closure/intervention end before its start
    (negative durations, left out of duration figures); a pupil referred again while an
    earlier referral is open (no closure, or closure after the new referral date); sessions
    attended above planned (capped); dates after ``today``; intervention names not on the
    menu (closest menu item offered); closure outcomes not in the list; pupil ids not in
    ``pupils``. ``today`` defaults to the current date.
    """
    today = pd.Timestamp.today().normalize() if today is None else pd.Timestamp(today).normalize()
    _require(referrals, "referrals", ["referral_id", "pupil_id", "referral_date"])
    _require(interventions, "interventions", ["intervention_id", "referral_id", "intervention",
                                              "start_date"])
    _require(reviews, "reviews", ["review_id", "referral_id", "review_date"])
    issues: list[pd.DataFrame] = []

    # ---- referrals -------------------------------------------------------------------
    ref = _add_optional(referrals.reset_index(drop=True).copy(), _REFERRAL_OPTIONAL)
    for c in ("referral_date", "first_response_date", "closure_date"):
        ref[c] = _as_dates(ref, "referrals", c)
    dup = ref["referral_id"].duplicated(keep=False) & ref["referral_id"].notna()
    if dup.any():
        shown = ", ".join(map(str, ref.loc[dup, "referral_id"].unique()[:5]))
        raise DataError(
            f"The referrals table, column 'referral_id': {describe_rows(_lines(dup))} repeat "
            f"an id ({shown}). Each referral needs its own id; correct the source file and "
            "re-run intake."
        )
    for col, what in (("referral_id", "referral id"), ("pupil_id", "pupil id"),
                      ("referral_date", "referral date")):
        bad = ref[col].isna()
        issues.append(_exclude_or_raise(ref, bad, "referrals", "referral_id", col,
                                        f"have no {what}", f"Add the {what} in the source file",
                                        strict))
    usable = ref["referral_id"].notna() & ref["pupil_id"].notna() & ref["referral_date"].notna()
    ref = ref[usable].reset_index(drop=True)

    outcome = ref["closure_outcome"].astype("str").str.strip()
    lookup = {o.lower(): o for o in CLOSURE_OUTCOMES}
    canon = outcome.str.lower().map(lookup)
    bad = outcome.notna() & canon.isna()
    issues.append(_issue(ref, bad, "referrals", "referral_id", "closure_outcome",
                         lambda d: "closure outcome '" + d["closure_outcome"].astype(object)
                         + "' is not in the list",
                         "kept: counted as an unlisted outcome; use "
                         + ", ".join(CLOSURE_OUTCOMES)))
    ref["closure_outcome"] = canon.where(canon.notna(), outcome)

    for c in ("referral_date", "first_response_date", "closure_date"):
        fut = ref[c] > today
        issues.append(_issue(ref, fut, "referrals", "referral_id", c,
                             lambda d, c=c: "date " + _fmt_dates(d[c]) + " is after today",
                             "kept: check the date"))
    neg = ref["first_response_date"] < ref["referral_date"]
    issues.append(_issue(ref, neg, "referrals", "referral_id", "first_response_date",
                         "negative duration: first response before the referral date",
                         "kept: left out of response-time figures"))
    neg = ref["closure_date"] < ref["referral_date"]
    issues.append(_issue(ref, neg, "referrals", "referral_id", "closure_date",
                         "negative duration: closure before the referral date",
                         "kept: left out of time-open figures"))
    early = ref["closure_date"] < ref["first_response_date"]
    issues.append(_issue(ref, early, "referrals", "referral_id", "closure_date",
                         "closure before the first response", "kept: check both dates"))
    # a pupil referred again while an earlier referral is still open
    pcode = pd.factorize(ref["pupil_id"])[0]
    order = np.lexsort((_days(ref["referral_date"]), pcode))
    srt_p = pcode[order]
    end = pd.Series(_days(ref["closure_date"].fillna(_FAR_FUTURE))[order])
    prev_end = end.groupby(srt_p).cummax().groupby(srt_p).shift(1).to_numpy()
    twice = np.zeros(len(ref), dtype=bool)
    twice[order] = _days(ref["referral_date"])[order] < prev_end
    issues.append(_issue(ref, twice, "referrals", "referral_id", "referral_date",
                         lambda d: "pupil " + d["pupil_id"].astype(object)
                         + " referred again while an earlier referral was still open",
                         "kept: check whether it duplicates the earlier referral"))

    # ---- interventions ---------------------------------------------------------------
    iv = _add_optional(interventions.reset_index(drop=True).copy(), _INTERVENTION_OPTIONAL)
    for c in ("start_date", "end_date"):
        iv[c] = _as_dates(iv, "interventions", c)
    for c in ("sessions_planned", "sessions_attended", "cost"):
        iv[c] = _as_number(iv, "interventions", c)
    for col, what in (("start_date", "start date"), ("intervention", "intervention name")):
        bad = iv[col].isna()
        issues.append(_exclude_or_raise(iv, bad, "interventions", "intervention_id", col,
                                        f"have no {what}", f"Add the {what} in the source file",
                                        strict))
    ipos = _positions(ref["referral_id"], iv["referral_id"])
    unknown = ipos < 0
    issues.append(_issue(iv, unknown, "interventions", "intervention_id", "referral_id",
                         lambda d: "unknown referral id "
                         + d["referral_id"].astype(object).fillna(""),
                         "excluded: not linked to a usable referral"))
    keep = ~unknown & iv["start_date"].notna().to_numpy() & iv["intervention"].notna().to_numpy()
    iv = iv[keep].reset_index(drop=True)
    ipos = ipos[keep]

    raw_names = iv["intervention"].astype("str").str.strip()
    iv["intervention"], on_menu = _normalise_names(iv["intervention"])
    off = raw_names[~on_menu]
    if len(off):
        uniq = off.unique()
        sugg = {}
        for u in uniq:  # loop over distinct unknown names only, not over records
            m = difflib.get_close_matches(str(u).lower(), MENU, n=1, cutoff=0.6)
            sugg[u] = (f"kept under its own name; closest menu item: '{m[0]}'" if m
                       else "kept under its own name; no close menu item")
        issues.append(_issue(iv, ~on_menu, "interventions", "intervention_id", "intervention",
                             lambda d: "'" + raw_names[~on_menu].astype(object)
                             + "' is not on the menu",
                             lambda d: raw_names[~on_menu].astype(object).map(sugg)))

    cats = list(MENU) + sorted(set(iv.loc[~on_menu.to_numpy(), "intervention"]))
    iv["intervention"] = pd.Categorical(iv["intervention"], categories=cats)
    iv["referral_date"] = _take(ref["referral_date"], ipos)
    iv["pupil_id"] = _take(ref["pupil_id"], ipos)
    before = iv["start_date"] < iv["referral_date"]
    issues.append(_issue(iv, before, "interventions", "intervention_id", "start_date",
                         "intervention starts before its referral",
                         "kept: left out of time-to-intervention figures"))
    neg = iv["end_date"] < iv["start_date"]
    issues.append(_issue(iv, neg, "interventions", "intervention_id", "end_date",
                         "negative duration: end date before start date",
                         "kept: check the dates"))
    for c in ("start_date", "end_date"):
        issues.append(_issue(iv, iv[c] > today, "interventions", "intervention_id", c,
                             lambda d, c=c: "date " + _fmt_dates(d[c]) + " is after today",
                             "kept: check the date"))
    over = iv["sessions_attended"] > iv["sessions_planned"]
    issues.append(_issue(iv, over, "interventions", "intervention_id", "sessions_attended",
                         "sessions attended above sessions planned",
                         "kept: attended capped at planned"))
    iv["sessions_attended"] = iv["sessions_attended"].where(~over, iv["sessions_planned"])

    # ---- reviews ---------------------------------------------------------------------
    rv = reviews.reset_index(drop=True).copy()
    rv["review_date"] = _as_dates(rv, "reviews", "review_date")
    for c in REVIEW_OUTCOMES:
        rv[c] = rv[c].astype("boolean") if c in rv.columns else pd.array(
            [pd.NA] * len(rv), dtype="boolean")
    bad = rv["review_date"].isna()
    issues.append(_exclude_or_raise(rv, bad, "reviews", "review_id", "review_date",
                                    "have no review date", "Add the review date in the source file",
                                    strict))
    rpos = _positions(ref["referral_id"], rv["referral_id"])
    unknown = rpos < 0
    issues.append(_issue(rv, unknown, "reviews", "review_id", "referral_id",
                         lambda d: "unknown referral id "
                         + d["referral_id"].astype(object).fillna(""),
                         "excluded: not linked to a usable referral"))
    keep = ~unknown & ~bad.to_numpy()
    rv = rv[keep].reset_index(drop=True)
    rpos = rpos[keep]
    issues.append(_issue(rv, rv["review_date"] > today, "reviews", "review_id", "review_date",
                         lambda d: "date " + _fmt_dates(d["review_date"]) + " is after today",
                         "kept: check the date"))
    rref = _take(ref["referral_date"], rpos)
    issues.append(_issue(rv, rv["review_date"] < rref, "reviews", "review_id", "review_date",
                         "review before the referral date", "kept: check the date"))

    # ---- aggregate -------------------------------------------------------------------
    # integer keys (position of the referral in ``ref``) for speed; stable sorts keep ties in
    # file order
    iv["_r"] = ipos
    ivs = iv.iloc[np.lexsort((_days(iv["start_date"]), ipos))]
    g = ivs.groupby("_r", sort=False)
    agg = pd.DataFrame(
        {
            "first_intervention_start": g["start_date"].min(),
            "first_intervention": g["intervention"].first(),
            "n_interventions": g.size(),
            "sessions_planned": g["sessions_planned"].sum(min_count=1),
            "sessions_attended": g["sessions_attended"].sum(min_count=1),
            "cost": g["cost"].sum(min_count=1),
        }
    )
    agg["interventions"] = _joined_names(ivs["_r"], ivs["intervention"], agg.index)
    iv = iv.drop(columns="_r")

    rv["_r"] = rpos
    rvs = rv.iloc[np.lexsort((_days(rv["review_date"]), rpos))]
    rg = rvs.groupby("_r", sort=False)
    last = rvs.drop_duplicates("_r", keep="last").set_index("_r")
    rv = rv.drop(columns="_r")
    ragg = pd.DataFrame({"first_review_date": rg["review_date"].min(), "n_reviews": rg.size()})
    for c in REVIEW_OUTCOMES:
        ragg[c] = last[c]

    tab = ref.copy()
    whole = pd.RangeIndex(len(ref))
    for c in agg.columns:
        tab[c] = agg[c].reindex(whole).to_numpy() if c != "first_intervention" else (
            agg[c].reindex(whole).reset_index(drop=True))
    for c in ragg.columns:
        tab[c] = ragg[c].reindex(whole).reset_index(drop=True)
    tab["n_interventions"] = tab["n_interventions"].fillna(0).astype(np.int64)
    tab["n_reviews"] = tab["n_reviews"].fillna(0).astype(np.int64)
    for c in REVIEW_OUTCOMES:
        tab[c] = tab[c].astype("boolean")
    closed = tab["closure_date"].notna() & (tab["closure_date"] <= today)
    tab["status"] = np.where(closed, "closed", "open")
    stop = tab["closure_date"].where(closed, today)
    days_open = (stop - tab["referral_date"]).dt.days.astype(float)
    tab["days_open"] = days_open.where(days_open >= 0)
    hol = _holiday_array(
        holidays,
        _day_array(tab["referral_date"]),
        np.array([np.datetime64(today.date(), "D")]),
        _day_array(tab["first_response_date"]),
    )
    wd = working_days_between(tab["referral_date"], tab["first_response_date"], hol)
    tab["working_days_to_response"] = wd.where(wd >= 0)
    dti = (tab["first_intervention_start"] - tab["referral_date"]).dt.days.astype(float)
    tab["days_to_first_intervention"] = dti.where(dti >= 0)
    needs_met = (tab["closure_outcome"] == "needs met").astype("boolean")
    needs_met[~closed.to_numpy() | tab["closure_outcome"].isna().to_numpy()] = pd.NA
    tab["needs_met"] = needs_met

    if pupils is not None:
        _require(pupils, "pupils", ["pupil_id"])
        pdup = pupils["pupil_id"].duplicated(keep=False)
        if pdup.any():
            raise DataError(
                f"The pupils table, column 'pupil_id': {describe_rows(_lines(pdup))} repeat a "
                "pupil id. Each pupil must appear once; correct the source file and re-run intake."
            )
        extra = [c for c in pupils.columns if c != "pupil_id" and c not in tab.columns]
        ppos = _positions(pupils["pupil_id"], tab["pupil_id"])
        for c in extra:
            tab[c] = _take(pupils[c], ppos)
        if "school_id" in pupils.columns:
            tab["school_id"] = tab["school_id"].fillna(_take(pupils["school_id"], ppos))
        nopupil = ppos < 0
        issues.append(_issue(tab, nopupil, "referrals", "referral_id", "pupil_id",
                             "pupil id not in the pupils table",
                             "kept: pupil characteristics missing"))

    issues = [i for i in issues if len(i)]
    quality = (pd.concat(issues, ignore_index=True) if issues
               else pd.DataFrame(columns=QUALITY_COLUMNS))
    quality = quality.astype("str")
    return Register(table=tab, quality=quality, interventions=iv, reviews=rv, today=today,
                    holidays=hol)


# --------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------

_TERM_NAMES = np.array(["autumn", "spring", "summer"])


def _period_keys(dates: pd.Series, period: str) -> tuple[np.ndarray, pd.Series]:
    """Integer sort key per date and the label for each key.

    Terms: autumn Sep-Dec, spring Jan-Mar, summer Apr-Aug, labelled ``"2023/24 autumn"``;
    months ``"2024-01"``; years are academic years Sep-Aug, ``"2023/24"``.
    """
    if period not in ("term", "month", "year"):
        raise DataError(f"period must be 'term', 'month' or 'year', got {period!r}.")
    ok = dates.notna().to_numpy()
    y = np.where(ok, dates.dt.year.fillna(0).to_numpy(dtype=np.int64), 0)
    m = np.where(ok, dates.dt.month.fillna(1).to_numpy(dtype=np.int64), 1)
    ay = y - (m < 9)
    if period == "term":
        term = np.where(m >= 9, 0, np.where(m <= 3, 1, 2))
        key = ay * 3 + term
    elif period == "month":
        key = y * 12 + m - 1
    else:
        key = ay
    key = np.where(ok, key, -1)
    labels = {}
    for k in np.unique(key[ok]):
        if period == "term":
            a, t = divmod(int(k), 3)
            labels[int(k)] = f"{a}/{(a + 1) % 100:02d} {_TERM_NAMES[t]}"
        elif period == "month":
            a, mm = divmod(int(k), 12)
            labels[int(k)] = f"{a}-{mm + 1:02d}"
        else:
            labels[int(k)] = f"{int(k)}/{(int(k) + 1) % 100:02d}"
    return key, pd.Series(labels, dtype="str")


def _default_direction(kpi: str) -> str:
    return "lower" if kpi.startswith(("median_", "p90_")) else "higher"


def _rag(kpis: pd.DataFrame, targets: Mapping[str, Mapping[str, Any]] | None) -> pd.DataFrame:
    kpis["target"] = np.nan
    kpis["rag"] = pd.Series(pd.NA, index=kpis.index, dtype="str")
    if not targets:
        return kpis
    known = set(kpis["kpi"].unique()) | set(_KPI_NAMES)
    for kpi, spec in targets.items():
        if kpi not in known and not str(kpi).startswith("closures: "):
            close = difflib.get_close_matches(str(kpi), sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(f"targets: unknown KPI {kpi!r}.{hint} Known KPIs: "
                            f"{', '.join(_KPI_NAMES)} and 'closures: <outcome>'.")
        if not isinstance(spec, Mapping) or "green" not in spec or "amber" not in spec:
            raise DataError(f"targets[{kpi!r}] must be a mapping with 'green' and 'amber' "
                            "thresholds, e.g. {'green': 90, 'amber': 80}.")
        green, amber = float(spec["green"]), float(spec["amber"])
        direction = spec.get("direction", _default_direction(kpi))
        if direction not in ("higher", "lower"):
            raise DataError(f"targets[{kpi!r}]['direction'] must be 'higher' or 'lower'.")
        if (direction == "higher" and amber > green) or (direction == "lower" and amber < green):
            raise DataError(f"targets[{kpi!r}]: with direction {direction!r} the amber "
                            f"threshold ({amber}) cannot be beyond green ({green}).")
        sel = kpis["kpi"] == kpi
        v = kpis.loc[sel, "value"].to_numpy(dtype=float)
        if direction == "higher":
            rag = np.where(v >= green, "green", np.where(v >= amber, "amber", "red"))
        else:
            rag = np.where(v <= green, "green", np.where(v <= amber, "amber", "red"))
        kpis.loc[sel, "target"] = green
        kpis.loc[sel, "rag"] = np.where(np.isnan(v), pd.NA, rag)
    return kpis


_KPI_NAMES = (
    "referrals_received",
    "pct_response_within_target",
    "median_working_days_to_response",
    "p90_working_days_to_response",
    "median_days_to_first_intervention",
    "p90_days_to_first_intervention",
    "pct_lead_professional",
    "pct_sessions_attended",
    "pct_reviewed",
)


def pathway_kpis(
    register: Register,
    response_target_working_days: int = 2,
    period: str = "term",
    targets: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Pathway KPIs per period as a tidy long table: period, kpi, value, n, target, rag.

    Referrals are assigned to the period of their ``referral_date`` (a cohort view); closures
    to the period of their ``closure_date``. Periods: see ``period`` (term = autumn Sep-Dec,
    spring Jan-Mar, summer Apr-Aug, labelled ``"2023/24 autumn"``; month ``"2024-01"``;
    year = academic year ``"2023/24"``). ``n`` is always the denominator (or count).

    * ``referrals_received`` = number of referrals.
    * ``pct_response_within_target`` = 100 * R / D, where R = referrals whose first response
      came within ``response_target_working_days`` working days (``working_days_to_response
      <= target``) and D = referrals with a response plus referrals still awaiting one whose
      working days from referral to ``register.today`` already exceed the target (those still
      inside the target are not yet due and left out).
    * ``median_/p90_working_days_to_response``: median and 90th percentile (linear
      interpolation, ``numpy.quantile`` default) of working days to first response.
    * ``median_/p90_days_to_first_intervention``: same for calendar days from referral to the
      first intervention start, among referrals with an intervention.
    * ``pct_lead_professional`` = 100 * referrals with a lead professional / referrals.
    * ``pct_sessions_attended`` (dosage) = 100 * sum attended / sum planned, over referrals
      with both recorded and planned > 0; ``n`` = sessions planned.
    * ``pct_reviewed`` = 100 * referrals with at least one review / referrals with an
      intervention started.
    * ``closures: <outcome>`` = closures in the period with that outcome (``n`` = all
      closures in the period; ``not recorded`` when no outcome was given).

    ``targets`` maps a KPI name to ``{"green": g, "amber": a, "direction": "higher"|"lower"}``
    (direction defaults to ``"lower"`` for median/p90 KPIs, ``"higher"`` otherwise). Higher is
    better: green if value >= g, amber if value >= a, else red; lower is better: green if
    value <= g, amber if value <= a, else red. ``target`` holds g; ``rag`` is missing when no
    target is set or the value is missing.
    """
    tab = register.table
    target = int(response_target_working_days)
    key, labels = _period_keys(tab["referral_date"], period)
    wd = tab["working_days_to_response"].to_numpy(dtype=float)
    awaiting = tab["first_response_date"].isna().to_numpy()
    so_far = working_days_between(tab["referral_date"], register.today, register.holidays)
    late_awaiting = awaiting & (np.asarray(so_far, dtype=float) > target)
    lp = tab["lead_professional"].astype("str").str.strip()
    both = (tab["sessions_planned"].notna() & tab["sessions_attended"].notna()
            & (tab["sessions_planned"] > 0)).to_numpy()
    df = pd.DataFrame(
        {
            "key": key,
            "within": ~np.isnan(wd) & (wd <= target),
            "due": ~np.isnan(wd) | late_awaiting,
            "wd": wd,
            "dti": tab["days_to_first_intervention"].to_numpy(dtype=float),
            "lead": (lp.notna() & (lp != "")).to_numpy(),
            "planned": np.where(both, tab["sessions_planned"].to_numpy(dtype=float), 0.0),
            "attended": np.where(both, tab["sessions_attended"].to_numpy(dtype=float), 0.0),
            "has_iv": (tab["n_interventions"] > 0).to_numpy(),
            "reviewed": ((tab["n_reviews"] > 0) & (tab["n_interventions"] > 0)).to_numpy(),
        }
    )
    df = df[df["key"] >= 0]
    g = df.groupby("key")
    keys = g.size().index
    parts: list[pd.DataFrame] = []

    def add(kpi: str, value: pd.Series, n: pd.Series) -> None:
        value = value.reindex(keys)
        n = n.reindex(keys).fillna(0)
        parts.append(pd.DataFrame({"key": keys, "kpi": kpi, "value": value.to_numpy(float),
                                   "n": n.to_numpy(np.int64)}))

    def pct(num: pd.Series, den: pd.Series) -> pd.Series:
        return (100.0 * num / den.where(den > 0)).astype(float)

    n_ref = g.size()
    add("referrals_received", n_ref.astype(float), n_ref)
    add("pct_response_within_target", pct(g["within"].sum(), g["due"].sum()), g["due"].sum())
    resp = df[~np.isnan(df["wd"])].groupby("key")["wd"]
    add("median_working_days_to_response", resp.median(), resp.count())
    add("p90_working_days_to_response", resp.quantile(0.9), resp.count())
    ivd = df[~np.isnan(df["dti"])].groupby("key")["dti"]
    add("median_days_to_first_intervention", ivd.median(), ivd.count())
    add("p90_days_to_first_intervention", ivd.quantile(0.9), ivd.count())
    add("pct_lead_professional", pct(g["lead"].sum(), n_ref), n_ref)
    add("pct_sessions_attended", pct(g["attended"].sum(), g["planned"].sum()),
        g["planned"].sum())
    add("pct_reviewed", pct(g["reviewed"].sum(), g["has_iv"].sum()), g["has_iv"].sum())

    closed = tab[tab["status"] == "closed"]
    ckey, clabels = _period_keys(closed["closure_date"], period)
    outcome = closed["closure_outcome"].astype("str").fillna("not recorded").to_numpy(object)
    ct = pd.crosstab(ckey, outcome)
    others = [c for c in ct.columns if c not in CLOSURE_OUTCOMES]
    total = ct.sum(axis=1)
    for o in [*CLOSURE_OUTCOMES, *sorted(others)]:
        counts = ct[o] if o in ct.columns else pd.Series(0, index=ct.index)
        parts.append(pd.DataFrame({"key": ct.index.to_numpy(), "kpi": f"closures: {o}",
                                   "value": counts.to_numpy(float),
                                   "n": total.to_numpy(np.int64)}))
    out = pd.concat(parts, ignore_index=True)
    all_labels = pd.concat([labels, clabels])
    all_labels = all_labels[~all_labels.index.duplicated()]
    out["period"] = out["key"].map(all_labels)
    kpi_order = {k: i for i, k in enumerate(out["kpi"].unique())}
    out["_o"] = out["kpi"].map(kpi_order)
    out = out.sort_values(["key", "_o"], kind="stable").reset_index(drop=True)
    out = out[["period", "kpi", "value", "n"]]
    out = _rag(out, targets)
    out.attrs["response_target_working_days"] = target
    out.attrs["period"] = period
    return out


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
    place (trailing .0 dropped). KPIs whose value is missing (e.g. withheld by
    :func:`suppress`) are left out.
    """
    _require(kpis, "KPI", ["period", "kpi", "value", "n", "target", "rag"])
    if period is None:
        rec = kpis.loc[kpis["kpi"] == "referrals_received", "period"]
        if rec.empty:
            return []
        period = rec.iloc[-1]
    rows = kpis[kpis["period"] == period].set_index("kpi")
    days = kpis.attrs.get("response_target_working_days", 2)
    out: list[str] = []

    def have(k: str) -> bool:
        return k in rows.index and not pd.isna(rows.loc[k, "value"])

    def num(x: float) -> str:
        return f"{round(float(x), 1):g}"

    if have("referrals_received"):
        out.append(f"{period}: {_n(rows.loc['referrals_received', 'value'], 'referral')} "
                   "received.")
    if have("pct_response_within_target"):
        r = rows.loc["pct_response_within_target"]
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'referral')} had a first response "
                   f"within {days} working day{'s' if days != 1 else ''}"
                   f"{_rag_suffix(r, '%')}.")
    if have("median_working_days_to_response"):
        r = rows.loc["median_working_days_to_response"]
        p90 = rows.loc["p90_working_days_to_response", "value"]
        out.append(f"The median time to a first response was {num(r['value'])} working days "
                   f"(90th percentile {num(p90)}) across {_n(r['n'], 'response')}"
                   f"{_rag_suffix(r, '')}.")
    if have("median_days_to_first_intervention"):
        r = rows.loc["median_days_to_first_intervention"]
        p90 = rows.loc["p90_days_to_first_intervention", "value"]
        out.append(f"The median time from referral to the first intervention was "
                   f"{num(r['value'])} days (90th percentile {num(p90)}) for "
                   f"{_n(r['n'], 'referral')}{_rag_suffix(r, '')}.")
    if have("pct_lead_professional"):
        r = rows.loc["pct_lead_professional"]
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'referral')} had a lead professional"
                   f"{_rag_suffix(r, '%')}.")
    if have("pct_sessions_attended"):
        r = rows.loc["pct_sessions_attended"]
        out.append(f"Pupils attended {r['value']:.0f}% of {_n(r['n'], 'planned session')}"
                   f"{_rag_suffix(r, '%')}.")
    if have("pct_reviewed"):
        r = rows.loc["pct_reviewed"]
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'referral')} with an intervention had "
                   f"been reviewed{_rag_suffix(r, '%')}.")
    closures = rows[rows.index.str.startswith("closures: ") & rows["value"].notna()]
    closures = closures[closures["value"] > 0]
    if len(closures):
        parts = [f"{int(v):,} {k.removeprefix('closures: ')}" for k, v in closures["value"].items()]
        total = int(closures["n"].iloc[0])
        out.append(f"{_n(total, 'case')} closed: " + ", ".join(parts) + ".")
    return out


# --------------------------------------------------------------------------------------
# flow
# --------------------------------------------------------------------------------------


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
    e = edges.to_numpy(dtype="datetime64[ns]")
    refs = np.sort(tab["referral_date"].to_numpy(dtype="datetime64[ns]"))
    closed = tab.loc[tab["status"] == "closed", "closure_date"]
    clos = np.sort(closed.to_numpy(dtype="datetime64[ns]"))
    r_before = np.searchsorted(refs, e, side="left")
    c_before = np.searchsorted(clos, e, side="left")
    opened = r_before[:-1] - c_before[:-1]
    new = np.diff(r_before)
    shut = np.diff(c_before)
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
        "referred": np.ones(len(tab), dtype=bool),
        "responded": tab["first_response_date"].notna().to_numpy(),
        "intervention started": (tab["n_interventions"] > 0).to_numpy(),
        "reviewed": (tab["n_reviews"] > 0).to_numpy(),
        "closed": (tab["status"] == "closed").to_numpy(),
    }
    nested = np.ones(len(tab), dtype=bool)
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
    g = register.table.dropna(subset=["days_open"]).groupby(by)["days_open"]
    out = pd.DataFrame({"n": g.count(), "median": g.median(), "p90": g.quantile(0.9),
                        "max": g.max()})
    return out.reset_index()


# --------------------------------------------------------------------------------------
# outcomes and costs
# --------------------------------------------------------------------------------------


def _outcome_series(register: Register, outcome: str) -> pd.Series:
    if outcome == "needs_met":
        return register.table["needs_met"]
    if outcome in REVIEW_OUTCOMES:
        return register.table[outcome]
    raise DataError(f"outcome must be 'needs_met' or one of {', '.join(REVIEW_OUTCOMES)}, "
                    f"got {outcome!r}.")


def outcomes_by(
    register: Register,
    by: str | Sequence[str] = "intervention",
    outcome: str = "needs_met",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Proportion of referrals with a good ``outcome`` by group, with Wilson score CIs.

    ``outcome``: ``"needs_met"`` (closed cases with an outcome; success = "needs met") or a
    review boolean (``attendance_improved``, ``ready_to_learn``, ``on_track``; the latest
    review's value, referrals with no value left out). ``by``: ``"intervention"`` (every
    intervention type a referral received -- a referral with two types counts in both) and/or
    register columns such as ``reason``, ``school_id``, ``first_intervention`` or, when the
    register was built with ``pupils``, ``sen_status``, ``fsm``, ``sex``, ``ethnicity``.
    Rows with a missing group value are left out.

    proportion = successes / n; CI = ``statsmodels.stats.proportion.proportion_confint(
    successes, n, alpha, method="wilson")`` (Wilson 1927 score interval).
    Columns: the ``by`` columns, n, successes, proportion, ci_low, ci_high.
    """
    by = [by] if isinstance(by, str) else list(by)
    y = _outcome_series(register, outcome)
    tab = register.table.assign(_y=y)
    tab_cols = [c for c in by if c != "intervention"]
    missing = [c for c in tab_cols if c not in tab.columns]
    if missing:
        raise DataError(f"outcomes_by: the register has no column {', '.join(missing)}. "
                        "Pupil characteristics need build_register(..., pupils=pupils).")
    data = tab[["referral_id", "_y", *tab_cols]]
    if "intervention" in by:
        pairs = register.interventions[["referral_id", "intervention"]].drop_duplicates()
        pos = _positions(data["referral_id"], pairs["referral_id"])
        pairs, pos = pairs[pos >= 0].reset_index(drop=True), pos[pos >= 0]
        data = data.iloc[pos].reset_index(drop=True).assign(intervention=pairs["intervention"])
    data = data[data["_y"].notna()]
    g = data.groupby(by, observed=True)["_y"]
    n = g.size()
    k = g.sum().astype(np.int64)
    lo, hi = proportion_confint(k.to_numpy(), n.to_numpy(), alpha=alpha, method="wilson")
    out = pd.DataFrame({"n": n.to_numpy(), "successes": k.to_numpy(),
                        "proportion": (k / n).to_numpy(float), "ci_low": lo, "ci_high": hi},
                       index=n.index)
    return out.reset_index()


def costs(
    register: Register,
    interventions: pd.DataFrame | None = None,
    outcome: str = "needs_met",
) -> pd.DataFrame:
    """Cost per pupil and per successful outcome by intervention type (plus an ``all`` row).

    Only interventions with a cost are used (``n_interventions_without_cost`` reports the
    rest). ``interventions`` defaults to the register's cleaned interventions; a raw table is
    accepted (names matched to the menu, rows of unknown referrals dropped).

    * ``total_cost`` = sum of costs; ``n_pupils`` = distinct pupils with a costed intervention.
    * ``cost_per_pupil = total_cost / n_pupils``.
    * ``n_successes`` = distinct referrals with a costed intervention whose ``outcome`` is True.
    * ``cost_per_success = total_cost / n_successes`` -- the whole spend (including cases
      without success or still open) divided by successes, the usual cost-per-outcome ratio.
    """
    y = _outcome_series(register, outcome)
    if interventions is None:
        iv = register.interventions[["referral_id", "intervention", "cost"]]
    else:
        _require(interventions, "interventions", ["referral_id", "intervention", "cost"])
        iv = interventions[["referral_id", "intervention", "cost"]].copy()
        iv["intervention"], _ = _normalise_names(iv["intervention"])
        iv["cost"] = _as_number(iv, "interventions", "cost")
    pos = _positions(register.table["referral_id"], iv["referral_id"])
    iv = iv[pos >= 0].reset_index(drop=True)
    pos = pos[pos >= 0]
    pupil_code = pd.factorize(register.table["pupil_id"])[0]
    iv = iv.assign(pupil_id=pupil_code[pos], referral_id=pos,
                   success=y.fillna(False).to_numpy(dtype=bool)[pos])
    no_cost = iv[iv["cost"].isna()].groupby("intervention").size()
    c = iv[iv["cost"].notna()]

    def summarise(d: pd.DataFrame, keys: Any) -> pd.DataFrame:
        g = d.groupby(keys)
        succ = d[d["success"]].drop_duplicates(["referral_id", *([keys] if keys else [])])
        out = pd.DataFrame({
            "total_cost": g["cost"].sum(),
            "n_interventions": g.size(),
            "n_pupils": g["pupil_id"].nunique(),
            "n_referrals": g["referral_id"].nunique(),
            "n_successes": succ.groupby(keys).size(),
        })
        return out

    by_type = summarise(c, "intervention")
    all_row = summarise(c.assign(intervention="all"), "intervention")
    out = pd.concat([by_type, all_row])
    out["n_successes"] = out["n_successes"].fillna(0).astype(np.int64)
    out["cost_per_pupil"] = out["total_cost"] / out["n_pupils"]
    out["cost_per_success"] = out["total_cost"] / out["n_successes"].where(out["n_successes"] > 0)
    nc = no_cost.reindex(out.index).fillna(0)
    nc.loc["all"] = int(no_cost.sum())
    out["n_interventions_without_cost"] = nc.astype(np.int64)
    return out.rename_axis("intervention").reset_index()


# --------------------------------------------------------------------------------------
# per-pupil change around the first intervention
# --------------------------------------------------------------------------------------


def _pupil_starts(register: Register) -> pd.Series:
    """Each pupil's earliest first-intervention start across their referrals."""
    t = register.table.dropna(subset=["first_intervention_start"])
    return t.groupby("pupil_id")["first_intervention_start"].min()


def _attendance_offsets(register: Register, attendance: pd.DataFrame) -> tuple:
    _require(attendance, "attendance",
             ["pupil_id", "week_start", "possible_sessions", "attended_sessions"])
    starts = _pupil_starts(register)
    idx = _positions(starts.index, attendance["pupil_id"])
    keep = idx >= 0
    att = attendance["attended_sessions"].to_numpy(dtype=float)
    poss = attendance["possible_sessions"].to_numpy(dtype=float)
    over = att > poss
    if over.any():
        raise DataError(
            f"The attendance table, column 'attended_sessions': {describe_rows(_lines(over))} "
            "record more sessions attended than possible. Correct the source file and re-run "
            "intake."
        )
    week = _days(attendance["week_start"])
    keep &= attendance["week_start"].notna().to_numpy()
    sd = _days(starts)
    monday = sd - (sd + 3) % 7  # day 0 (1970-01-01) was a Thursday
    idx = idx[keep]
    k = (week[keep] - monday[idx]) // 7
    return starts, idx, k, att[keep], poss[keep]


def attendance_around_start(
    register: Register, attendance: pd.DataFrame, window_weeks: int = 6
) -> pd.DataFrame:
    """Attendance % before and after each pupil's first intervention start (wide table).

    The start is the pupil's earliest first-intervention start. Week ``k`` is counted from the
    Monday of the start week (k = 0 is the start week). ``baseline`` = 100 * attended /
    possible sessions summed over weeks k = -window_weeks..-1; ``follow_up`` = the same over
    k = 0..window_weeks-1 (the start week counts as follow-up). Missing when no sessions were
    possible in the window. Columns: pupil_id, start_date, baseline, follow_up,
    baseline_possible, follow_up_possible -- ready for a paired analysis
    (``evaluation.baseline_followup.paired_change``).
    """
    w = int(window_weeks)
    if w < 1:
        raise DataError(f"window_weeks must be at least 1, got {window_weeks!r}.")
    starts, idx, k, att, poss = _attendance_offsets(register, attendance)
    n = len(starts)
    sel = (k >= -w) & (k < w)
    key = idx[sel] * 2 + (k[sel] >= 0)
    a = np.bincount(key, weights=att[sel], minlength=2 * n).reshape(n, 2)
    p = np.bincount(key, weights=poss[sel], minlength=2 * n).reshape(n, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(p > 0, 100.0 * a / p, np.nan)
    return pd.DataFrame({
        "pupil_id": starts.index.to_numpy(),
        "start_date": starts.to_numpy(),
        "baseline": pct[:, 0],
        "follow_up": pct[:, 1],
        "baseline_possible": p[:, 0],
        "follow_up_possible": p[:, 1],
    })


def event_study(
    register: Register,
    attendance: pd.DataFrame,
    freq: str = "W",
    window: tuple[int, int] = (-8, 8),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Mean attendance % by period relative to the first intervention start, with t CIs.

    Week k is counted from the Monday of the pupil's start week (k = 0 = start week);
    ``freq`` ``"W"``, ``"2W"`` or ``"4W"`` groups weeks into bins b = floor(k / width) and
    ``window`` = (first, last) bin, inclusive. Each pupil's attendance % in a bin is
    100 * attended / possible sessions (pupils with no possible sessions in the bin are left
    out). Per bin: mean over pupils, sd (ddof=1), ``ci = mean +/- t_{1-alpha/2, n-1} * sd /
    sqrt(n)``. Pupils with data in some bins only change the mix between bins.
    Columns: rel_period (bin number), rel_week (first week of the bin), n_pupils, mean, sd,
    ci_low, ci_high.
    """
    widths = {"W": 1, "2W": 2, "4W": 4}
    if freq not in widths:
        raise DataError(f"event_study: freq must be one of {', '.join(widths)}, got {freq!r}.")
    lo, hi = int(window[0]), int(window[1])
    if hi < lo:
        raise DataError(f"event_study: window {window!r} must be (first, last) with first <= last.")
    width = widths[freq]
    starts, idx, k, att, poss = _attendance_offsets(register, attendance)
    b = k // width
    sel = (b >= lo) & (b <= hi)
    nb = hi - lo + 1
    n = len(starts)
    key = idx[sel] * nb + (b[sel] - lo)
    a = np.bincount(key, weights=att[sel], minlength=n * nb).reshape(n, nb)
    p = np.bincount(key, weights=poss[sel], minlength=n * nb).reshape(n, nb)
    valid = p > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(valid, 100.0 * a / np.where(valid, p, 1), 0.0)
        cnt = valid.sum(axis=0)
        mean = pct.sum(axis=0) / cnt
        dev = np.where(valid, pct - mean, 0.0)
        sd = np.sqrt((dev**2).sum(axis=0) / (cnt - 1))
        half = stats.t.ppf(1 - alpha / 2, cnt - 1) * sd / np.sqrt(cnt)
    rel = np.arange(lo, hi + 1)
    return pd.DataFrame({"rel_period": rel, "rel_week": rel * width, "n_pupils": cnt,
                         "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half})


def suspensions_around_start(
    register: Register, suspensions: pd.DataFrame, window_days: int = 90
) -> pd.DataFrame:
    """Suspension counts in the ``window_days`` before and after each pupil's first start.

    d = suspension date - start date (days). ``before`` counts -window_days <= d < 0,
    ``after`` counts 0 <= d < window_days. ``follow_up_complete`` is True when
    start + window_days <= ``register.today`` (otherwise ``after`` covers a shorter time).
    Columns: pupil_id, start_date, before, after, follow_up_complete.
    """
    _require(suspensions, "suspensions", ["pupil_id", "date"])
    w = int(window_days)
    starts = _pupil_starts(register)
    idx = _positions(starts.index, suspensions["pupil_id"])
    keep = (idx >= 0) & suspensions["date"].notna().to_numpy()
    idx = idx[keep]
    d = _days(suspensions["date"])[keep] - _days(starts)[idx]
    n = len(starts)
    before = np.bincount(idx[(d >= -w) & (d < 0)], minlength=n)
    after = np.bincount(idx[(d >= 0) & (d < w)], minlength=n)
    complete = (starts + pd.Timedelta(days=w) <= register.today).to_numpy()
    return pd.DataFrame({"pupil_id": starts.index.to_numpy(), "start_date": starts.to_numpy(),
                         "before": before, "after": after, "follow_up_complete": complete})


# --------------------------------------------------------------------------------------
# time to event
# --------------------------------------------------------------------------------------


@dataclass
class SurvivalResult:
    """Kaplan-Meier table, log-rank test and the per-case data behind them."""

    table: pd.DataFrame
    test: dict[str, float]
    data: pd.DataFrame
    event_label: str = "suspension or re-referral"


def _next_after(left: pd.DataFrame, on: str, right: pd.DataFrame, right_on: str) -> pd.Series:
    """For each left row, the first right date strictly after left[on], same pupil."""
    right = right.dropna(subset=[right_on]).sort_values(right_on)
    l2 = left[["_row", "pupil_id", on]].sort_values(on)
    m = pd.merge_asof(l2, right[["pupil_id", right_on]].rename(columns={right_on: "_next"}),
                      left_on=on, right_on="_next", by="pupil_id", direction="forward",
                      allow_exact_matches=False)
    return m.set_index("_row")["_next"].reindex(left["_row"])


def time_to_event(
    register: Register,
    suspensions: pd.DataFrame,
    referrals: pd.DataFrame | None = None,
    by: str = "intervention",
    end_date: Any = None,
    alpha: float = 0.05,
) -> SurvivalResult:
    """Kaplan-Meier time from the first intervention start to the next suspension or
    re-referral, by group, with the log-rank test.

    One case per referral with an intervention. Event date = the earliest of the pupil's
    next suspension dated after the start and the pupil's next referral dated after both the
    start and the case's own referral date (``referrals`` defaults to the register). Cases
    without an event by ``end_date`` (default ``register.today``, the data end date) are
    censored there; time = days from start to event or censoring. ``by="intervention"``
    groups by the first intervention's type; any other register column may be given.

    Survival: ``statsmodels.duration.survfunc.SurvfuncRight(time, status)`` per group -- the
    Kaplan-Meier product-limit estimate S(t) = prod_{t_i <= t} (1 - d_i / n_i) with Greenwood
    standard errors. Pointwise CI on the log(-log) scale (Kalbfleisch & Prentice 2002):
    S^exp(+/- z * se / (S * |log S|)) with z = Phi^-1(1 - alpha/2). Log-rank test:
    ``statsmodels.duration.survfunc.survdiff(time, status, group)``, chi-square with
    (groups - 1) degrees of freedom.

    ``table`` columns: group, time, survival, ci_low, ci_high, at_risk, events;
    ``test``: chi2, df, p_value; ``data``: referral_id, pupil_id, group, time, status.
    """
    _require(suspensions, "suspensions", ["pupil_id", "date"])
    tab = register.table
    col = "first_intervention" if by == "intervention" else by
    if col not in tab.columns:
        raise DataError(f"time_to_event: the register has no column {by!r}. Pupil "
                        "characteristics need build_register(..., pupils=pupils).")
    end = register.today if end_date is None else pd.Timestamp(end_date)
    units = tab.loc[tab["first_intervention_start"].notna() & tab[col].notna(),
                    ["referral_id", "pupil_id", "referral_date", "first_intervention_start",
                     col]].reset_index(drop=True)
    units = units.rename(columns={"first_intervention_start": "start", col: "group"})
    units = units[units["start"] <= end].reset_index(drop=True)
    units["_row"] = np.arange(len(units))
    units["_after"] = units[["start", "referral_date"]].max(axis=1)
    s = suspensions[["pupil_id", "date"]]
    next_susp = _next_after(units, "start", s, "date")
    refs = tab if referrals is None else referrals
    _require(refs, "referrals", ["pupil_id", "referral_date"])
    next_ref = _next_after(units, "_after", refs[["pupil_id", "referral_date"]], "referral_date")
    event = pd.concat([next_susp.reset_index(drop=True), next_ref.reset_index(drop=True)],
                      axis=1).min(axis=1)
    status = (event.notna() & (event <= end)).to_numpy()
    stop = np.where(status, event.to_numpy(dtype="datetime64[ns]"),
                    np.datetime64(end.to_datetime64(), "ns"))
    time = (stop - units["start"].to_numpy(dtype="datetime64[ns]")) / np.timedelta64(1, "D")
    data = pd.DataFrame({"referral_id": units["referral_id"], "pupil_id": units["pupil_id"],
                         "group": units["group"].astype(object), "time": time.astype(float),
                         "status": status.astype(int)})
    z = stats.norm.ppf(1 - alpha / 2)
    parts = []
    for grp, d in data.groupby("group", sort=True):  # one fit per group, not per referral
        sf = SurvfuncRight(d["time"].to_numpy(), d["status"].to_numpy())
        surv = np.asarray(sf.surv_prob, dtype=float)
        se = np.asarray(sf.surv_prob_se, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.log(-np.log(surv))
            h = z * se / (surv * np.abs(np.log(surv)))
            lo = np.exp(-np.exp(ll + h))
            hi = np.exp(-np.exp(ll - h))
        lo = np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, lo))
        hi = np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, hi))
        parts.append(pd.DataFrame({"group": grp, "time": sf.surv_times, "survival": surv,
                                   "ci_low": lo, "ci_high": hi, "at_risk": sf.n_risk,
                                   "events": sf.n_events}))
    table = (pd.concat(parts, ignore_index=True) if parts else
             pd.DataFrame(columns=["group", "time", "survival", "ci_low", "ci_high", "at_risk",
                                   "events"]))
    n_groups = data["group"].nunique()
    if n_groups >= 2:
        chi2, p = survdiff(data["time"].to_numpy(), data["status"].to_numpy(),
                           data["group"].to_numpy())
        test = {"chi2": float(chi2), "df": float(n_groups - 1), "p_value": float(p)}
    else:
        test = {"chi2": np.nan, "df": np.nan, "p_value": np.nan}
    return SurvivalResult(table=table, test=test, data=data)


def plot_km(result: SurvivalResult, ax: Any = None, title: str | None = None) -> Any:
    """Step plot of the Kaplan-Meier curves (with shaded pointwise CIs) from
    :func:`time_to_event`; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for grp, d in result.table.groupby("group", sort=True):
        t = np.r_[0.0, d["time"].to_numpy(float)]
        s = np.r_[1.0, d["survival"].to_numpy(float)]
        lo = np.r_[1.0, d["ci_low"].to_numpy(float)]
        hi = np.r_[1.0, d["ci_high"].to_numpy(float)]
        n = int(result.data["group"].eq(grp).sum())
        (line,) = ax.step(t, s, where="post", label=f"{grp} (n={n})")
        ax.fill_between(t, lo, hi, step="post", alpha=0.15, color=line.get_color())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Days since the first intervention started")
    ax.set_ylabel(f"Proportion without a {result.event_label}")
    p = result.test.get("p_value", np.nan)
    sub = f" (log-rank p = {p:.3g})" if not np.isnan(p) else ""
    ax.set_title(title or f"Time to {result.event_label}{sub}")
    ax.legend(title="First intervention", fontsize="small")
    return ax


# --------------------------------------------------------------------------------------
# disproportionality
# --------------------------------------------------------------------------------------


def disproportionality(
    pupils: pd.DataFrame,
    event: str | pd.DataFrame | pd.Series,
    group_col: str | Sequence[str],
    reference: Any = "all others",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Risk ratios of an event for each pupil group against a reference, Katz log CIs.

    ``event``: a boolean column of ``pupils``; an event table with ``pupil_id`` (a pupil has
    the event if they appear at least once, e.g. referrals or suspensions); or a boolean Series
    aligned with ``pupils``. ``group_col``: a column or list of columns (``["ethnicity_minor",
    "sex"]`` gives e.g. Black Caribbean boys); pupils with a missing group value form no group
    but count among "all others". ``reference``:

    * ``"all others"`` -- each group against every pupil not in it;
    * a group value (or tuple for several columns) -- each group against that group;
    * a boolean mask aligned with ``pupils``, or a ``pupils.query`` string -- each group against
      the masked pupils who are not in the group.

    Risk = a / n in the group, c / m in the reference; RR = (a/n) / (c/m). Katz log method
    (Katz et al. 1978): se(log RR) = sqrt(1/a - 1/n + 1/c - 1/m); CI = exp(log RR +/- z se),
    z = Phi^-1(1 - alpha/2). RR and CI are missing when a or c is 0 (no continuity correction).
    Columns: group columns, n, events, risk, ref_n, ref_events, ref_risk, risk_ratio, ci_low,
    ci_high.
    """
    cols = [group_col] if isinstance(group_col, str) else list(group_col)
    _require(pupils, "pupils", ["pupil_id", *cols])
    if isinstance(event, str):
        _require(pupils, "pupils", [event])
        flag = pupils[event].astype("boolean").fillna(False).to_numpy(dtype=bool)
    elif isinstance(event, pd.DataFrame):
        _require(event, "event", ["pupil_id"])
        flag = _positions(event["pupil_id"], pupils["pupil_id"]) >= 0
    else:
        flag = np.asarray(pd.Series(event).astype("boolean").fillna(False), dtype=bool)
        if len(flag) != len(pupils):
            raise DataError("disproportionality: the event mask must have one value per pupil.")
    d = pupils[cols].assign(_e=flag)
    g = d.groupby(cols, observed=True)["_e"]
    n = g.size().astype(float)
    a = g.sum().astype(float)
    if isinstance(reference, str) and reference == "all others":
        m = len(d) - n
        c = flag.sum() - a
    else:
        if isinstance(reference, str | tuple) and not isinstance(reference, pd.Series):
            key = reference if isinstance(reference, tuple) else (reference,)
            if len(key) == len(cols) and key in set(n.index.to_flat_index()
                                                     if len(cols) > 1 else
                                                     [(i,) for i in n.index]):
                mask = np.ones(len(d), dtype=bool)
                for col, val in zip(cols, key, strict=True):
                    mask &= (d[col] == val).fillna(False).to_numpy(dtype=bool)
            elif isinstance(reference, str):
                try:
                    mask = pupils.eval(reference).to_numpy(dtype=bool)
                except Exception as exc:
                    raise DataError(
                        f"disproportionality: reference {reference!r} is neither a group of "
                        f"{', '.join(cols)} nor a valid query on the pupils table ({exc})."
                    ) from exc
            else:
                raise DataError(f"disproportionality: reference {reference!r} is not a group "
                                f"of {', '.join(cols)}.")
        else:
            mask = np.asarray(pd.Series(reference).astype("boolean").fillna(False), dtype=bool)
            if len(mask) != len(d):
                raise DataError("disproportionality: the reference mask must have one value "
                                "per pupil.")
        gr = d[mask].groupby(cols, observed=True)["_e"]
        overlap_n = gr.size().reindex(n.index).fillna(0)
        overlap_a = gr.sum().reindex(n.index).fillna(0)
        m = mask.sum() - overlap_n
        c = flag[mask].sum() - overlap_a
    risk = a / n
    ref_risk = c / m.where(m > 0)
    rr = risk / ref_risk
    ok = (a > 0) & (c > 0) & (m > 0)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(1 / a - 1 / n + 1 / c - 1 / m)
        low = np.exp(np.log(rr) - z * se).where(ok)
        high = np.exp(np.log(rr) + z * se).where(ok)
    out = pd.DataFrame({
        "n": n.astype(np.int64), "events": a.astype(np.int64), "risk": risk,
        "ref_n": m.astype(np.int64), "ref_events": c.astype(np.int64), "ref_risk": ref_risk,
        "risk_ratio": rr.where(ok), "ci_low": low, "ci_high": high,
    })
    return out.reset_index()


def disproportionality_table(
    pupils: pd.DataFrame,
    referrals: pd.DataFrame,
    suspensions: pd.DataFrame,
    group_col: str | Sequence[str],
    reference: Any = "all others",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """:func:`disproportionality` for referral, suspension and escalation, stacked with an
    ``event`` column. Escalation = a referral closed with an outcome in
    ``ESCALATION_OUTCOMES`` (EHC needs assessment, alternative provision, school move)."""
    _require(referrals, "referrals", ["pupil_id"])
    outcome = (referrals["closure_outcome"].astype("str").str.strip().str.lower()
               if "closure_outcome" in referrals.columns
               else pd.Series(pd.NA, index=referrals.index, dtype="str"))
    esc = referrals[outcome.isin([o.lower() for o in ESCALATION_OUTCOMES]).to_numpy()]
    parts = []
    for name, ev in (("referral", referrals), ("suspension", suspensions), ("escalation", esc)):
        parts.append(disproportionality(pupils, ev, group_col, reference, alpha)
                     .assign(event=name))
    out = pd.concat(parts, ignore_index=True)
    return out[["event", *[c for c in out.columns if c != "event"]]]


# --------------------------------------------------------------------------------------
# suppression
# --------------------------------------------------------------------------------------


def suppress(
    table: pd.DataFrame,
    count_cols: str | Sequence[str],
    threshold: int,
    derived_cols: Sequence[str] | Mapping[str, Sequence[str]] = (),
    note_col: str = "note",
    keep_zero: bool = False,
) -> pd.DataFrame:
    """Withhold small counts for board-facing tables.

    Any value in ``count_cols`` below ``threshold`` (0 too, unless ``keep_zero``) becomes
    NaN. ``derived_cols`` are withheld with them: a list is withheld on every row where any
    count was withheld; a mapping ``{count_col: [derived, ...]}`` ties each derived column to
    its own count. ``note_col`` says what was withheld and why. Returns a copy. (This is
    primary suppression only; check totals cannot be used to recover a withheld cell.)
    """
    counts = [count_cols] if isinstance(count_cols, str) else list(count_cols)
    derived_map = dict(derived_cols) if isinstance(derived_cols, Mapping) else None
    derived_all = [] if derived_map is not None else list(derived_cols)
    used = counts + derived_all + [c for v in (derived_map or {}).values() for c in v]
    missing = [c for c in used if c not in table.columns]
    if missing:
        raise DataError(f"suppress: the table has no column {', '.join(missing)}.")
    out = table.copy()
    small = pd.DataFrame(index=out.index)
    for c in counts:
        v = pd.to_numeric(out[c], errors="coerce")
        s = v.notna() & (v < threshold)
        if keep_zero:
            s &= v != 0
        small[c] = s
    any_small = small.any(axis=1)
    for c in counts:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float).mask(small[c])
    for c in derived_all:
        out[c] = out[c].mask(any_small)
    for c, ds in (derived_map or {}).items():
        for dcol in ds:
            out[dcol] = out[dcol].mask(small[c])
    note = pd.Series("", index=out.index, dtype=object)
    for c in counts:
        note = note.where(~small[c], note + np.where(note == "", "", "; ") + c)
    msg = "withheld (" + note + f" below {threshold})"
    out[note_col] = msg.where(any_small, "")
    return out
