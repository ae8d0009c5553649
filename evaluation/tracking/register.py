"""The referral register: one row per usable referral with its pathway milestones.

Decisions that shape the numbers:

* **Unusable records** (a referral with no referral date, pupil id or referral id; an
  intervention with no start date, no name or a referral id that is not a usable referral;
  a review with no date or an unknown referral id) are *left out and listed* in
  ``Register.quality`` with the action ``"excluded: ..."``; ``strict=True`` raises
  :class:`~evaluation.errors.DataError` instead. A repeated ``referral_id`` always raises.
* **Usable but inconsistent records** stay in and are listed with the action ``"kept: ..."``.
  Negative durations are set to missing in the derived duration columns; sessions attended
  above sessions planned are capped at the planned number; intervention names are matched to
  the menu ignoring case and surrounding spaces, and a name still not on the menu is kept
  under its own name with the closest menu item (``difflib``, cutoff 0.6) offered.
* **Working days** come from :func:`evaluation.calendar.working_days_between` (weekdays less
  England bank holidays; start day counted, end day not: a next-working-day response is 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evaluation import calendar
from evaluation.errors import DataError, describe_rows
from evaluation.intake import CLOSURE_OUTCOMES
from evaluation.tracking import quality as Q
from evaluation.tracking.quality import Rule

MENU: tuple[str, ...] = (
    "mentoring",
    "parenting programme",
    "speech and language",
    "play therapy",
    "art therapy",
    "nurture group",
    "school-refusal support",
)
ESCALATION_OUTCOMES: tuple[str, ...] = CLOSURE_OUTCOMES[1:]
REVIEW_OUTCOMES: tuple[str, ...] = ("attendance_improved", "ready_to_learn", "on_track")

_FAR_FUTURE = pd.Timestamp("2200-01-01")
# The columns the register reads beyond the ids and names, with their kind; the optional
# ones may be absent.
_REFERRAL_COLUMNS = {"referral_date": "date", "school_id": "text", "reason": "text",
                     "first_response_date": "date", "lead_professional": "text",
                     "closure_date": "date", "closure_outcome": "text"}
_INTERVENTION_COLUMNS = {"start_date": "date", "end_date": "date", "sessions_planned": "number",
                         "sessions_attended": "number", "cost": "number"}


@dataclass
class Register:
    """One row per usable referral (``table``) and the data-quality rows (``quality``:
    table, record_id, column, problem, action, check). ``interventions`` and ``reviews`` are
    the linked, cleaned rows; ``today`` is the data end date (open cases, censoring,
    future-date checks)."""

    table: pd.DataFrame
    interventions: pd.DataFrame
    reviews: pd.DataFrame
    today: pd.Timestamp
    quality: pd.DataFrame

    def __len__(self) -> int:
        return len(self.table)


# ------------------------------------------------------------------ reading the tables


def require(df: Any, table: str, cols: Iterable[str]) -> None:
    """Raise a :class:`DataError` naming the missing columns of ``df``."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"The {table} table must be a pandas DataFrame, got "
                        f"{type(df).__name__}. Pass the table produced by evaluation.intake.")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"The {table} table has no column {', '.join(repr(c) for c in missing)}. "
            "Map the school's header to this name in params/<project>.yaml and re-run intake.")


def _typed(df: pd.DataFrame, table: str, kinds: dict[str, str]) -> pd.DataFrame:
    """``df`` with each column of ``kinds`` ("date", "number" or "text") as intake types it:
    an absent or empty column becomes an empty column of its kind and numbers become
    floats; a date or number column holding other values raises a :class:`DataError`
    naming it (intake is the one place that parses data)."""
    df = df.reset_index(drop=True)
    for col, kind in kinds.items():
        if kind == "text":
            if col not in df.columns:
                df[col] = pd.Series(pd.NA, index=df.index, dtype="str")
            continue
        values = df[col] if col in df.columns else pd.Series(None, index=df.index)
        if kind == "date":
            typed = pd.api.types.is_datetime64_any_dtype(values)
        else:
            typed = (pd.api.types.is_numeric_dtype(values)
                     and not pd.api.types.is_bool_dtype(values))
        if not typed and values.notna().any():
            what = "dates" if kind == "date" else "numbers"
            raise DataError(f"The {table} table, column {col!r} holds {values.dtype} values, "
                            f"not {what}. Pass the table produced by evaluation.intake, which "
                            f"reads and checks {what}.")
        if kind == "date":
            df[col] = values if typed else values.astype("datetime64[ns]")
        else:
            df[col] = values.astype(float)
    return df


def menu_names(names: pd.Series) -> pd.Series:
    """Names matched to :data:`MENU` ignoring case and surrounding spaces; others kept as
    written (stripped). A categorical: menu items first, then the other names sorted."""
    lookup = {m.lower(): m for m in MENU}
    spelt = names.astype("str").astype("category")  # each distinct spelling cleaned once
    canon = {v: lookup.get(v.strip().lower(), v.strip()) for v in spelt.cat.categories}
    others = sorted(set(canon.values()) - set(MENU))
    # (pd.Categorical matches the mapped values to the new categories by value)
    return pd.Series(pd.Categorical(spelt.map(canon), categories=[*MENU, *others]),
                     index=names.index, name=names.name)


def _closest_menu_item(name: str) -> str:
    m = difflib.get_close_matches(name.lower(), MENU, n=1, cutoff=0.6)
    return (f"kept under its own name; closest menu item: '{m[0]}'" if m
            else "kept under its own name; no close menu item")


# ------------------------------------------------------------------ the checks

UNKNOWN_REFERRAL = Rule("referral_id", lambda d: d["_row"].isna(),
                        lambda d: "unknown referral id " + d["referral_id"].astype("str")
                        .fillna(""), "excluded: not linked to a usable referral",
                        check="unknown referral id")
OUTCOME_RULE = Rule("closure_outcome", lambda d: d["_outcome_unlisted"],
                    lambda d: "closure outcome '" + d["closure_outcome"].astype("str")
                    + "' is not in the list", "kept: counted as an unlisted outcome; use "
                    + ", ".join(CLOSURE_OUTCOMES), check="closure outcome not in the list")
# The quality rows come in rule order, the dates after today (which need ``today``) checked
# between OUTCOME_RULE and REFERRAL_RULES and between INTERVENTION_RULES and SESSIONS_RULE.
REFERRAL_RULES = [
    Rule("first_response_date", lambda d: d["first_response_date"] < d["referral_date"],
         "negative duration: first response before the referral date",
         "kept: left out of response-time figures"),
    Rule("closure_date", lambda d: d["closure_date"] < d["referral_date"],
         "negative duration: closure before the referral date",
         "kept: left out of time-open figures"),
    Rule("closure_date", lambda d: d["closure_date"] < d["first_response_date"],
         "closure before the first response", "kept: check both dates"),
    Rule("referral_date", lambda d: d["_referred_while_open"],
         lambda d: "pupil " + d["pupil_id"].astype("str")
         + " referred again while an earlier referral was still open",
         "kept: check whether it duplicates the earlier referral",
         check="pupil referred again while an earlier referral was open"),
]
INTERVENTION_RULES = [
    Rule("intervention", lambda d: d["_off_menu"],
         lambda d: "'" + d["_name"] + "' is not on the menu",
         lambda d: d["_name"].map(_closest_menu_item), check="intervention not on the menu"),
    Rule("start_date", lambda d: d["start_date"] < d["referral_date"],
         "intervention starts before its referral",
         "kept: left out of time-to-intervention figures"),
    Rule("end_date", lambda d: d["end_date"] < d["start_date"],
         "negative duration: end date before start date", "kept: check the dates"),
]
SESSIONS_RULE = Rule("sessions_attended",
                     lambda d: d["sessions_attended"] > d["sessions_planned"],
                     "sessions attended above sessions planned",
                     "kept: attended capped at planned")
REVIEW_DATE_RULE = Rule("review_date", lambda d: d["review_date"] < d["referral_date"],
                        "review before the referral date", "kept: check the date")
PUPIL_RULE = Rule("pupil_id", lambda d: d["_no_pupil"], "pupil id not in the pupils table",
                  "kept: pupil characteristics missing")


def _referred_while_open(ref: pd.DataFrame) -> pd.Series:
    """True for a referral made while an earlier referral of the same pupil was open (not
    closed, or closed after this referral date)."""
    order = ref[["pupil_id", "referral_date", "closure_date"]].sort_values(
        ["pupil_id", "referral_date"], kind="stable")
    end = order["closure_date"].fillna(_FAR_FUTURE)
    earlier_end = end.groupby(order["pupil_id"]).cummax().groupby(order["pupil_id"]).shift()
    return (order["referral_date"] < earlier_end).reindex(ref.index)


def positions(values: pd.Series, index: pd.Index) -> np.ndarray:
    """The position of each value in ``index`` (unique), -1 where absent or missing.

    The distinct values are matched once and spread over the rows by their codes:
    matching hundreds of thousands of text ids row by row is the slow part of the tables."""
    codes, distinct = pd.factorize(values)  # (unsorted: sorting the distinct ids is not needed)
    return np.where(codes >= 0, index.get_indexer(distinct)[codes], -1)


def _row_of(ids: pd.Series, referral_ids: pd.Series) -> pd.Series:
    """The register row of each referral id (missing where it is not a usable referral)."""
    return pd.Series(positions(ids, pd.Index(referral_ids)), index=ids.index).where(
        lambda row: row >= 0)


# ------------------------------------------------------------------ building


def build_register(
    referrals: pd.DataFrame,
    interventions: pd.DataFrame,
    reviews: pd.DataFrame,
    *,
    pupils: pd.DataFrame | None = None,
    today: Any = None,
    strict: bool = False,
) -> Register:
    """Build the referral register: one row per referral with its pathway milestones.

    Register columns: every referral column, then ``first_intervention_start`` (earliest
    ``start_date``), ``first_intervention`` (name of the earliest; ties: first in the file),
    ``n_interventions``, ``sessions_planned``/``sessions_attended``/``cost`` (sums over the
    referral's interventions, missing when none is recorded), ``interventions`` (distinct names
    joined by ``"; "``), ``first_review_date``, ``n_reviews``, the review outcomes
    ``attendance_improved``/``ready_to_learn``/``on_track`` of the *latest* review (ties: last in
    the file), ``status`` (``"closed"`` if closed on or before ``today``, else ``"open"``),
    ``days_open`` (calendar days to closure or ``today``), ``working_days_to_response``,
    ``days_to_first_intervention`` and ``needs_met`` (closed with outcome "needs met"; missing
    while open or without an outcome). With ``pupils``, the pupil columns are joined on.
    ``today`` defaults to the current date.
    """
    today = pd.Timestamp.today().normalize() if today is None else pd.Timestamp(today).normalize()
    require(referrals, "referrals", ["referral_id", "pupil_id", "referral_date"])
    require(interventions, "interventions",
            ["intervention_id", "referral_id", "intervention", "start_date"])
    require(reviews, "reviews", ["review_id", "referral_id", "review_date"])

    ref = _typed(referrals, "referrals", _REFERRAL_COLUMNS)
    dup = ref["referral_id"].notna() & ref["referral_id"].duplicated(keep=False)
    if dup.any():
        shown = ", ".join(map(str, ref.loc[dup, "referral_id"].unique()[:5]))
        raise DataError(
            f"The referrals table, column 'referral_id': {describe_rows(Q.file_lines(dup))} "
            f"repeat an id ({shown}). Each referral needs its own id; correct the source file "
            "and re-run intake.")
    quality = [Q.exclude(Q.missing_value(col, what), ref, "referrals", "referral_id", strict)
               for col, what in (("referral_id", "referral id"), ("pupil_id", "pupil id"),
                                 ("referral_date", "referral date"))]
    ref = ref.dropna(subset=["referral_id", "pupil_id", "referral_date"]).reset_index(drop=True)

    iv = _typed(interventions, "interventions", _INTERVENTION_COLUMNS)
    iv_excluded = [Q.exclude(Q.missing_value(col, what), iv, "interventions", "intervention_id",
                             strict)
                   for col, what in (("start_date", "start date"),
                                     ("intervention", "intervention name"))]

    outcome = ref["closure_outcome"].astype("str").str.strip()
    listed = outcome.str.lower().map({o.lower(): o for o in CLOSURE_OUTCOMES})
    ref["_outcome_unlisted"] = outcome.notna() & listed.isna()
    ref["_referred_while_open"] = _referred_while_open(ref)
    rules = [OUTCOME_RULE,
             *Q.after_today(("referral_date", "first_response_date", "closure_date"), today),
             *REFERRAL_RULES]
    quality += Q.run(rules, ref, "referrals", "referral_id")
    ref["closure_outcome"] = listed.fillna(outcome).astype("str")
    ref = ref.drop(columns=["_outcome_unlisted", "_referred_while_open"])
    quality += iv_excluded

    iv, iv_quality = _link_interventions(iv, ref, today)
    quality += iv_quality

    rv = _typed(reviews, "reviews", {"review_date": "date"})
    for c in REVIEW_OUTCOMES:
        rv[c] = rv[c].astype("boolean") if c in rv.columns else pd.array(
            [pd.NA] * len(rv), dtype="boolean")
    quality.append(Q.exclude(Q.missing_value("review_date", "review date"), rv, "reviews",
                             "review_id", strict))
    rv["_row"] = _row_of(rv["referral_id"], ref["referral_id"])
    quality.append(Q.flag(UNKNOWN_REFERRAL, rv, "reviews", "review_id"))
    rv = rv[rv["_row"].notna() & rv["review_date"].notna()].reset_index(drop=True)
    rv["referral_date"] = ref["referral_date"].to_numpy()[rv["_row"].to_numpy(dtype=int)]
    quality += Q.run([*Q.after_today(("review_date",), today), REVIEW_DATE_RULE], rv,
                     "reviews", "review_id")
    rv = rv.drop(columns=["referral_date"])

    tab = pd.concat([ref, _intervention_columns(iv, len(ref)), _review_columns(rv, len(ref))],
                    axis=1)
    closed = tab["closure_date"].notna() & (tab["closure_date"] <= today)
    tab["status"] = pd.Series(np.where(closed, "closed", "open"), dtype="str")
    days_open = (tab["closure_date"].where(closed, today) - tab["referral_date"]).dt.days
    tab["days_open"] = days_open.astype(float).where(days_open >= 0)
    wd = calendar.working_days_between(tab["referral_date"], tab["first_response_date"])
    wd = wd.astype(float)
    tab["working_days_to_response"] = wd.where(wd >= 0)
    dti = (tab["first_intervention_start"] - tab["referral_date"]).dt.days.astype(float)
    tab["days_to_first_intervention"] = dti.where(dti >= 0)
    needs_met = (tab["closure_outcome"] == "needs met").astype("boolean")
    tab["needs_met"] = needs_met.mask(~closed | tab["closure_outcome"].isna())

    if pupils is not None:
        tab, pupil_quality = _join_pupils(tab, pupils)
        quality.append(pupil_quality)
    quality = [q for q in quality if len(q)]
    quality = pd.concat(quality, ignore_index=True) if quality else Q.empty_quality()
    iv = iv.drop(columns=["_row", "_off_menu", "_name"])
    return Register(table=tab, interventions=iv, reviews=rv.drop(columns=["_row"]),
                    today=today, quality=quality)


def _link_interventions(iv: pd.DataFrame, ref: pd.DataFrame, today: pd.Timestamp
                        ) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The interventions of usable referrals, names matched to the menu, attended sessions
    capped, with the referral's row, date and pupil; and their quality rows."""
    iv["_row"] = _row_of(iv["referral_id"], ref["referral_id"])
    quality = [Q.flag(UNKNOWN_REFERRAL, iv, "interventions", "intervention_id")]
    iv = iv[iv["_row"].notna() & iv["start_date"].notna()
            & iv["intervention"].notna()].reset_index(drop=True)
    names = menu_names(iv["intervention"])
    iv["_name"] = iv["intervention"].astype("str").str.strip()
    iv["_off_menu"] = ~names.isin(MENU)
    iv["intervention"] = names
    row = iv["_row"].to_numpy(dtype=int)
    iv["referral_date"] = ref["referral_date"].to_numpy()[row]
    iv["pupil_id"] = ref["pupil_id"].array.take(row)
    rules = [*INTERVENTION_RULES, *Q.after_today(("start_date", "end_date"), today),
             SESSIONS_RULE]
    quality += Q.run(rules, iv, "interventions", "intervention_id")
    over = iv["sessions_attended"] > iv["sessions_planned"]
    iv["sessions_attended"] = iv["sessions_attended"].where(~over, iv["sessions_planned"])
    return iv, quality


def _intervention_columns(iv: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per register row: first start and name, count, session and cost sums, names."""
    g = iv.groupby("_row")
    # the earliest start of each referral (idxmin: ties go to the first in the file)
    first = iv.loc[g["start_date"].idxmin(), ["_row", "start_date", "intervention"]]
    first = first.set_index("_row")
    # the distinct names of each referral, in alphabetical order, joined by "; "
    present = iv.groupby(["_row", "intervention"], observed=True).size().unstack().notna()
    names = pd.Series("", index=present.index)
    for name in sorted(present.columns):
        names += np.where(present[name], name + "; ", "")
    names = names.str.removesuffix("; ")
    sums = g[["sessions_planned", "sessions_attended", "cost"]].sum(min_count=1)
    out = pd.DataFrame({
        "first_intervention_start": first["start_date"],
        "first_intervention": first["intervention"],
        "n_interventions": g.size(),
        **{c: sums[c] for c in sums.columns},
        "interventions": names.astype("str"),
    }).reindex(range(n))
    out["n_interventions"] = out["n_interventions"].fillna(0).astype(np.int64)
    out["first_intervention_start"] = out["first_intervention_start"].astype(
        iv["start_date"].dtype)
    return out


def _review_columns(rv: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per register row: first review date, number of reviews, the latest review's outcomes."""
    latest = (rv[["_row", "review_date", *REVIEW_OUTCOMES]]  # (only the columns it needs)
              .sort_values(["_row", "review_date"], kind="stable").groupby("_row").tail(1))
    out = pd.DataFrame({
        "first_review_date": rv.groupby("_row")["review_date"].min(),
        "n_reviews": rv.groupby("_row").size(),
        **{c: latest.set_index("_row")[c] for c in REVIEW_OUTCOMES},
    }).reindex(range(n))
    out["n_reviews"] = out["n_reviews"].fillna(0).astype(np.int64)
    out["first_review_date"] = out["first_review_date"].astype(rv["review_date"].dtype)
    return out


def _join_pupils(tab: pd.DataFrame, pupils: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The register with the pupils' columns it lacks (and school_id filled from the pupils
    where the referral has none), and the quality rows of referrals with an unknown pupil."""
    require(pupils, "pupils", ["pupil_id"])
    pid = pupils["pupil_id"]
    dup = pid.duplicated(keep=False)
    if dup.any():
        raise DataError(
            f"The pupils table, column 'pupil_id': {describe_rows(Q.file_lines(dup))} repeat a "
            "pupil id. Each pupil must appear once; correct the source file and re-run intake.")
    extra = [c for c in pupils.columns if c != "pupil_id" and c not in tab.columns]
    by_id = pupils.assign(_known=True).set_index("pupil_id")
    joined = by_id.reindex(tab["pupil_id"]).reset_index(drop=True)  # (ids matched once)
    tab = pd.concat([tab, joined[extra]], axis=1)
    if "school_id" in pupils.columns:
        tab["school_id"] = tab["school_id"].fillna(joined["school_id"])
    known = joined["_known"].notna().to_numpy()
    quality = Q.flag(PUPIL_RULE, tab.assign(_no_pupil=~known), "referrals", "referral_id")
    return tab, quality
