"""Intervention tracking for referred pupils.

The tables come from intake (see ``docs/tables.md``): ``referrals``, ``interventions``,
``reviews`` and optionally ``pupils``, ``attendance`` and ``suspensions``. Everything here is
vectorised (pandas/numpy); nothing loops over referrals in Python. For large tables (see
``benchmarks/bench_tracking.py``): text ids are matched once into integer positions (with
``pyarrow.compute.index_in`` when the columns are Arrow-backed strings, as pandas 3 makes
them), aggregation runs on those integer codes, and :func:`match_attendance` matches the
weekly attendance rows to the pupils once for :func:`attendance_around_start` and
:func:`event_study`. :func:`build_register` links the interventions in a second thread
while it checks the referrals, reviews and pupils, and :class:`PupilAnalyses` works out the
pupil-level analyses of a register in a background thread while a report draws its other
tables.

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
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import holidays as holidays_lib
import holidays.countries.united_kingdom  # noqa: F401  (see below)
import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight
from statsmodels.stats.proportion import proportion_confint

from evaluation.errors import DataError, describe_rows
from evaluation.filters import FilterError, parse_filter
from evaluation.intake import CLOSURE_OUTCOMES

# ``holidays`` imports its country calendars on first use (about 0.1 s); the import above
# loads them with this module instead of inside the first register build.

__all__ = [
    "CLOSURE_OUTCOMES",
    "ESCALATION_OUTCOMES",
    "MENU",
    "REVIEW_OUTCOMES",
    "AttendanceMatch",
    "AttendanceRows",
    "PupilAnalyses",
    "Register",
    "SurvivalResult",
    "attendance_around_start",
    "build_register",
    "caseload",
    "costs",
    "disproportionality",
    "disproportionality_table",
    "disproportionality_tables",
    "KPI_ALIASES",
    "england_bank_holidays",
    "event_study",
    "funnel",
    "in_background",
    "kpi_direction",
    "kpi_sentences",
    "match_attendance",
    "outcomes_by",
    "pathway_kpis",
    "period_label",
    "plot_km",
    "quality_summary",
    "read_attendance",
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
ESCALATION_OUTCOMES: tuple[str, ...] = CLOSURE_OUTCOMES[1:]
REVIEW_OUTCOMES: tuple[str, ...] = ("attendance_improved", "ready_to_learn", "on_track")
QUALITY_COLUMNS = ["table", "record_id", "column", "problem", "action", "check"]

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


def _record_ids(df: pd.DataFrame, id_col: str, mask: np.ndarray) -> pd.Series:
    """The flagged records' ids as text; "line N" (file line) where the id is missing."""
    ids = df[id_col][mask].astype("str").reset_index(drop=True)
    missing = ids.isna().to_numpy()
    if missing.any():
        lines = np.flatnonzero(mask)[missing] + 2
        ids[missing] = [f"line {n}" for n in lines]
    return ids


@dataclass
class _Issue:
    """One check's flagged records, written out as quality rows (ids and messages) only
    when :attr:`Register.quality` is first read: for tens of thousands of records that
    costs more than the check, and a report needs only the counts (:func:`quality_summary`).
    ``frame`` is a snapshot of the checked table (a shallow copy: no data are copied, and
    later changes to the table do not reach it), so the rows read as they were checked."""

    frame: pd.DataFrame
    mask: np.ndarray
    n: int
    table: str
    id_col: str
    column: str
    problem: Any
    action: Any
    check: str

    def _text(self, x: Any) -> Any:
        if isinstance(x, str):
            return x
        if callable(x):  # text for the flagged rows only (vectorised str operations)
            return pd.Series(x(self)).astype("str").reset_index(drop=True)
        return pd.Series(np.asarray(x.astype(object))[self.mask], dtype="str")

    def __getitem__(self, col: str) -> pd.Series:
        """The flagged rows of one column (what a message function reads)."""
        return self.frame[col][self.mask].reset_index(drop=True)

    def rows(self) -> pd.DataFrame:
        return pd.DataFrame({
            "table": self.table,
            "record_id": _record_ids(self.frame, self.id_col, self.mask),
            "column": self.column,
            "problem": self._text(self.problem),
            "action": self._text(self.action),
            "check": self.check,
        })

    def action_heads(self) -> list:
        """The distinct actions up to their first ";" (what :func:`quality_summary` shows)."""
        action = self._text(self.action)
        if isinstance(action, str):
            return [action.split(";")[0].strip()]
        return list(action.drop_duplicates().str.split(";").str[0].str.strip())


def _issue(
    df: pd.DataFrame,
    mask: Any,
    table: str,
    id_col: str,
    column: str,
    problem: Any,
    action: Any,
    check: str | None = None,
) -> _Issue | None:
    """The check's flagged records (the True rows of ``mask``), or ``None`` if there are
    none; ``problem``/``action`` may be a string, a Series aligned with ``df``, or a
    function of the flagged rows (given as ``issue[column]``). ``check`` names the check in
    words that never include a record's values (it defaults to ``problem`` when that is a
    fixed string), so problems can be counted without showing ids."""
    if check is None:
        if not isinstance(problem, str):
            raise TypeError("_issue: give `check` when the problem text depends on the record")
        check = problem
    mask = np.array(mask, dtype=bool)  # a copy: the caller's array may change later
    n = int(np.count_nonzero(mask))
    if not n:
        return None
    return _Issue(df.copy(deep=False), mask, n, table, id_col, column, problem, action, check)


def _after_today_text(s: pd.Series) -> pd.Series:
    """``"date YYYY-MM-DD is after today"`` for each date (missing stays missing), built for
    the distinct days only and mapped back to the rows."""
    codes, uniq = pd.factorize(_days(s))  # a missing date's day number views as NaT
    text = pd.Series([None if d == "NaT" else f"date {d} is after today"
                      for d in np.datetime_as_string(uniq.view("datetime64[D]"))], dtype="str")
    return _take(text, codes).set_axis(s.index)


def _dates_after_today(df: pd.DataFrame, table: str, id_col: str, columns: Sequence[str],
                       today: pd.Timestamp) -> list[_Issue | None]:
    """The "date after today" check of each date column (kept, with the date shown)."""
    return [_issue(df, df[c] > today, table, id_col, c,
                   lambda d, c=c: _after_today_text(d[c]), "kept: check the date",
                   check="date after today") for c in columns]


def _date_before(df: pd.DataFrame, table: str, id_col: str, later: str, earlier: Any,
                 problem: str, action: str) -> _Issue | None:
    """The check that column ``later`` is not before ``earlier`` (a column name, or dates
    aligned with ``df``), flagged on ``later``."""
    earlier = df[earlier] if isinstance(earlier, str) else earlier
    return _issue(df, df[later] < earlier, table, id_col, later, problem, action)


def _arrow_strings(x: Any) -> Any:
    """The pyarrow array behind an Arrow-backed string Series/Index, else ``None``.

    pandas 3 stores ``str`` columns in pyarrow when it is installed; matching those with
    ``pyarrow.compute`` avoids turning millions of ids into Python objects.
    """
    if not isinstance(x, pd.Series | pd.Index):
        return None
    dtype = x.dtype
    arrow = (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") or (
        isinstance(dtype, pd.ArrowDtype))
    if not arrow:
        return None
    import pyarrow as pa

    arr = x.array.__arrow_array__()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    return arr


def _positions(keys: Any, values: Any, dtype: Any = np.int64) -> np.ndarray:
    """Position in ``keys`` of each of ``values`` (-1 where absent or missing).

    Vectorised. With duplicated keys the first position is used. Arrow-backed strings are
    matched by ``pyarrow.compute.index_in`` (a hash lookup in C++, no Python objects);
    anything else by one ``pandas.factorize`` over both (:func:`_factorized_positions`).
    ``dtype``: the integer type of the result (``np.int32`` halves the memory for long
    tables; the caller makes sure the keys fit).
    """
    ka, va = _arrow_strings(keys), _arrow_strings(values)
    if ka is not None and va is not None:
        return _index_in(ka, va, dtype)
    return _factorized_positions(keys, values)[1].astype(dtype, copy=False)


def _index_in(keys: Any, values: Any, dtype: Any = np.int64) -> np.ndarray:
    """:func:`_positions` for two pyarrow text arrays (``pyarrow.compute.index_in``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    if value_set.type != values.type:
        value_set = value_set.cast(values.type)
    found = pc.index_in(values, value_set=value_set, skip_nulls=True)
    return np.asarray(pc.fill_null(found, -1), dtype=dtype)


def _id_runs(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """The ids to look up for a long column, and the run lengths that spread their positions
    back over the rows: for a long Arrow text column that comes in runs of equal values (an
    attendance export sorted by pupil: a run of weeks per pupil), the first value of each
    run and the run lengths (comparing neighbours reads the column once, in order, which is
    cheaper than hashing every value); else the column itself and ``None`` (a short column,
    not Arrow text, or a sample shows runs of about one)."""
    arrow = _arrow_strings(values)
    n = len(values)
    if arrow is None or n < 200_000:
        return values, None
    import pyarrow as pa
    import pyarrow.compute as pc

    def differs(stop: int) -> Any:  # value i + 1 differs from value i (missing: yes)
        return pc.fill_null(pc.not_equal(arrow.slice(1, stop - 1), arrow.slice(0, stop - 1)),
                            True)

    if np.asarray(differs(10_000), dtype=bool).mean() > 0.25:
        return values, None
    ne = differs(n)
    first = pa.chunked_array([pa.array([True]), *ne.chunks])  # each run's first value
    heads = np.flatnonzero(np.concatenate([[True], np.asarray(ne, dtype=bool)]))
    ids = pd.Series(pd.array(pc.filter(arrow, first), dtype=values.dtype))  # chunk by chunk
    return ids, np.diff(np.append(heads, n))


def _factorized_positions(*columns: Any) -> list[np.ndarray]:
    """For each column, the position in ``columns[0]`` of the first occurrence of each value
    (-1 where missing or absent from the first column), from a single ``pandas.factorize``
    over the columns end to end: equal values get equal codes whichever column they are
    in, and each value is hashed once (much cheaper for Python strings than factorizing
    each side and matching the distinct values)."""
    parts = [pd.Series(c.array) if isinstance(c, pd.Series | pd.Index)
             else pd.Series(np.asarray(c, dtype=object)) for c in columns]
    codes = pd.factorize(pd.concat(parts, ignore_index=True))[0]
    first = np.full(codes.max(initial=-1) + 2, -1, dtype=np.int64)  # last slot: missing
    rev = np.arange(len(parts[0]) - 1, -1, -1)
    first[codes[rev]] = rev  # later writes win, so the first occurrence is kept
    first[-1] = -1
    return np.split(first[codes], np.cumsum([len(c) for c in parts])[:-1])


def _rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame[keep]`` with a fresh index; the frame itself when every row is kept (the
    callers own their frames, and copying every column of a clean table is the slow part)."""
    return frame if keep.all() else frame[keep].reset_index(drop=True)


def _take(values: pd.Series, pos: np.ndarray) -> pd.Series:
    """``values.iloc[pos]`` with missing where ``pos`` is -1 (index reset)."""
    if not len(values):
        return pd.Series([pd.NA] * len(pos), dtype=values.dtype)
    if not (pos < 0).any():
        return values.iloc[pos].reset_index(drop=True)
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biu":  # no missing value
        out = values.iloc[np.where(pos >= 0, pos, 0)].reset_index(drop=True)
        return out.where(pd.Series(pos >= 0))
    # the array's own take fills position -1 with its missing value (NaN, NaT, None, NA)
    return pd.Series(values.array.take(pos, allow_fill=True), name=values.name)


def _first_positions(*columns: pd.Series) -> list[np.ndarray]:
    """For each column, the position in ``columns[0]`` of the first occurrence of each value
    (-1 where missing or absent from the first column): :func:`_positions` for every column
    at once. Arrow-backed text is matched by pyarrow; anything else by one
    ``pandas.factorize`` over the columns end to end, much cheaper than matching Python
    strings pairwise."""
    arrays = [_arrow_strings(c) for c in columns]
    if all(a is not None for a in arrays):
        import pyarrow as pa

        chunks = [ch for a in arrays for ch in (a.chunks if isinstance(a, pa.ChunkedArray)
                                                 else [a])]
        if len({ch.type for ch in chunks}) > 1:  # string and large_string: pairwise
            return [_positions(columns[0], c) for c in columns]
        # one lookup of every column's values in one hash table of the first column
        pos = _index_in(arrays[0], pa.chunked_array(chunks, type=chunks[0].type))
        return np.split(pos, np.cumsum([len(c) for c in columns])[:-1])
    return _factorized_positions(*columns)


def _lookup(key_codes: np.ndarray, n_codes: int, value_codes: np.ndarray) -> np.ndarray:
    """Position in ``key_codes`` (distinct, none missing) of each of ``value_codes``; -1
    where absent or missing."""
    where = np.full(n_codes + 1, -1, dtype=np.int64)  # the last slot serves missing (-1)
    where[key_codes] = np.arange(len(key_codes))
    return where[value_codes]


_NAT_INT = np.iinfo(np.int64).min
_SUBDAY_UNITS = {"D": 1, "h": 24, "m": 1440, "s": 86_400, "ms": 86_400_000,
                 "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _days(s: pd.Series) -> np.ndarray:
    """Dates as int64 day numbers since 1970-01-01 (NaT becomes the int64 minimum).

    Integer division of the stored datetime64 values (no conversion of millions of dates
    to another unit); floor division, so times of day fall on their own date.
    """
    arr = s.to_numpy()
    if arr.dtype.kind == "M":
        unit, count = np.datetime_data(arr.dtype)
        if unit in _SUBDAY_UNITS and _SUBDAY_UNITS[unit] % count == 0:
            i = arr.view(np.int64)
            out = i // (_SUBDAY_UNITS[unit] // count)
            out[i == _NAT_INT] = _NAT_INT
            return out
    return s.to_numpy(dtype="datetime64[D]").astype(np.int64)


# --------------------------------------------------------------------------------------
# working days
# --------------------------------------------------------------------------------------


def england_bank_holidays(years: Iterable[int]) -> np.ndarray:
    """England bank holidays for ``years`` as a sorted ``datetime64[D]`` array.

    Source: ``holidays.country_holidays("GB", subdiv="ENG", years=years)`` (cached per set
    of years; a fresh copy is returned).
    """
    return _bank_holidays(tuple(sorted({int(y) for y in years}))).copy()


@lru_cache(maxsize=32)
def _bank_holidays(years: tuple[int, ...]) -> np.ndarray:
    if not years:
        return np.array([], dtype="datetime64[D]")
    hol = holidays_lib.country_holidays("GB", subdiv="ENG", years=list(years))
    return np.array(sorted(hol.keys()), dtype="datetime64[D]")


def _day_array(x: Any) -> np.ndarray:
    if isinstance(x, pd.Series | pd.Index):
        s = pd.to_datetime(x)
    else:
        s = pd.to_datetime(pd.Series(np.atleast_1d(np.asarray(x, dtype=object))))
    return np.asarray(s, dtype="datetime64[D]")


def _holiday_array(holidays: Iterable | None, *day_arrays: np.ndarray) -> np.ndarray:
    if isinstance(holidays, np.ndarray) and holidays.dtype.kind == "M":
        return np.unique(holidays.astype("datetime64[D]"))
    if holidays is not None:
        vals = list(holidays)
        if not vals:
            return np.array([], dtype="datetime64[D]")
        return np.unique(np.asarray(pd.to_datetime(pd.Series(vals)), dtype="datetime64[D]"))
    years: list[int] = []
    for arr in day_arrays:
        ok = arr[~np.isnat(arr)]
        if ok.size:  # the years of the first and last dates
            yrs = np.array([ok.min(), ok.max()]).astype("datetime64[Y]").astype(np.int64)
            years += [int(yrs[0]) + 1970, int(yrs[1]) + 1970]
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

    Treat a register as read-only: the tables built from it keep row-level arrays (pupil
    codes, KPI inputs, intervention pairs) for reuse while ``table`` and ``interventions``
    are the same objects, so change a copy (or build a new register), not the frames in place.
    """

    table: pd.DataFrame
    interventions: pd.DataFrame
    reviews: pd.DataFrame
    today: pd.Timestamp
    holidays: np.ndarray = field(repr=False)
    # the data-quality checks' flagged records, in table order (see _Issue): ``quality``
    # writes them out as rows when it is first read
    _issues: list = field(default_factory=list, repr=False, compare=False)
    _quality: pd.DataFrame | None = field(default=None, init=False, repr=False,
                                          compare=False)
    # Row-level arrays that several tables share, by name: (table, interventions, value),
    # trusted only while ``table`` and ``interventions`` are the very objects they were
    # computed from (see _shared). build_register seeds the intervention positions and
    # the pupil codes it has already worked out.
    _shared: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def quality(self) -> pd.DataFrame:
        """The data-quality rows: table, record_id, column, problem, action, check (text)."""
        if self._quality is None:
            rows = [issue.rows() for issue in self._issues]
            quality = (pd.concat(rows, ignore_index=True) if rows
                       else pd.DataFrame(columns=QUALITY_COLUMNS))
            self._quality = quality.astype("str")
        return self._quality


def _shared(register: Register, name: str, make: Callable[[], Any]) -> Any:
    """``make()``, computed once per register and reused while ``register.table`` and
    ``register.interventions`` are the objects it was computed from."""
    hit = register._shared.get(name)
    if hit is not None and hit[0] is register.table and hit[1] is register.interventions:
        return hit[2]
    value = make()
    register._shared[name] = (register.table, register.interventions, value)
    return value


def _pupil_codes(register: Register) -> tuple[np.ndarray, pd.Index]:
    """(code per register row, sorted distinct pupil ids); code -1 = no pupil id."""
    def make() -> tuple[np.ndarray, pd.Index]:
        codes, ids = pd.factorize(register.table["pupil_id"], sort=True)
        return codes, pd.Index(ids)

    return _shared(register, "pupil_codes", make)


def _intervention_positions(register: Register, interventions: pd.DataFrame | None = None
                            ) -> np.ndarray:
    """Position in ``register.table`` of each intervention's referral (-1 if none)."""
    if interventions is None or interventions is register.interventions:
        iv = register.interventions
        return _shared(register, "intervention_positions",
                       lambda: _positions(register.table["referral_id"], iv["referral_id"]))
    return _positions(register.table["referral_id"], interventions["referral_id"])


def _sorting_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for an integer array, faster: with the row number
    packed in as the last digit every key is distinct, so sorting the packed values (numpy's
    ``sort`` is several times faster than ``argsort``) and reading the row numbers back gives
    the stable order. Falls back to ``argsort`` when the packed values would not fit."""
    n = len(key)
    if n == 0:
        return np.arange(0)
    lo, hi = int(key.min()), int(key.max())
    if (hi - lo + 1) * n >= 2**62:
        return np.argsort(key, kind="stable")
    packed = (key.astype(np.int64) - lo) * n
    packed += np.arange(n)
    return np.sort(packed) % n


def _stable_order(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """``np.lexsort((secondary, primary))`` (stable: ties keep their order), faster for
    small non-negative integer keys by sorting one combined int64 key
    (:func:`_sorting_order`)."""
    n = len(primary)
    if n == 0:
        return np.arange(0)
    lo, hi = int(secondary.min()), int(secondary.max())
    span = hi - lo + 1
    if primary.min() >= 0 and lo > _NAT_INT and span * (int(primary.max()) + 1) < 2**62:
        return _sorting_order(primary.astype(np.int64) * span + (secondary - lo))
    return np.lexsort((secondary, primary))


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (``np.unique`` by sorting, which is much
    faster than numpy 2's hash-based ``np.unique`` for large integer arrays)."""
    if len(values) == 0:
        return values.copy()
    v = np.sort(values)
    return v[np.r_[True, v[1:] != v[:-1]]]


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
    return _issue(df, bad, table, id_col, column, problem, f"excluded: {fix.lower()}",
                  check=problem.replace("have no", "no"))


def _menu_names(names: pd.Series) -> tuple[pd.Categorical, np.ndarray, np.ndarray]:
    """Intervention names matched to the menu ignoring case and surrounding spaces.

    Returns a Categorical (menu items first, then other names sorted, kept under their
    stripped spelling), a boolean on-menu mask, and the stripped raw name of each row that
    is not on the menu (object array; missing stays missing). Only the distinct names are
    cleaned in Python.
    """
    lookup = {m.lower(): m for m in MENU}
    codes, uniq = pd.factorize(names)
    raw = pd.Series(np.asarray(uniq, dtype=object), dtype=object).map(lambda v: str(v).strip())
    mapped = raw.map(lambda v: lookup.get(v.lower()))
    known = np.append(mapped.notna().to_numpy(dtype=bool), False)  # last slot: missing (-1)
    canon = np.where(known[:-1], mapped.to_numpy(dtype=object), raw.to_numpy(dtype=object))
    cats = list(MENU) + sorted(set(canon[~known[:-1]]))
    ucode = np.append(pd.Index(cats).get_indexer(canon), -1)
    cat = pd.Categorical.from_codes(ucode[codes], categories=cats, validate=False)
    on_menu = known[codes]
    off_codes = codes[~on_menu]
    stripped = np.append(raw.to_numpy(dtype=object), None)[off_codes]
    return cat, on_menu, stripped


def _pick_row(keys: np.ndarray, days: np.ndarray, n: int, earliest: bool) -> np.ndarray:
    """For each key 0..n-1, the row with the earliest (or latest) day; ties go to the first
    (or last) row in file order. -1 for keys with no row."""
    m = len(keys)
    rows = np.arange(m)
    lo, hi = (int(days.min()), int(days.max())) if m else (0, 0)
    if lo > _NAT_INT and (hi - lo + 1) * m < 2**62:
        # one pass on (day, row) packed in one integer: the minimum is the earliest day's
        # first row, the maximum the latest day's last row
        packed = (days - lo) * m + rows
        init = np.iinfo(np.int64).max if earliest else -1
        best = np.full(n, init)
        (np.minimum if earliest else np.maximum).at(best, keys, packed)
        return np.where(best != init, best % max(m, 1), -1)
    best = np.full(n, np.iinfo(np.int64).max if earliest else np.iinfo(np.int64).min)
    (np.minimum if earliest else np.maximum).at(best, keys, days)
    cand = days == best[keys]
    pick = np.full(n, np.iinfo(np.int64).max if earliest else -1)
    (np.minimum if earliest else np.maximum).at(pick, keys[cand], rows[cand])
    return np.where((pick >= 0) & (pick < len(keys)), pick, -1)


def _joined_codes(keys: np.ndarray, codes: np.ndarray, categories: Sequence[str],
                  n: int) -> pd.Series:
    """Distinct names per key 0..n-1, sorted and joined by "; " (``str`` Series, missing
    where a key has no row). Bitmasks over the distinct names are OR-ed per key, so only
    the distinct combinations are joined in Python (and converted to ``str``)."""
    ok = codes >= 0
    if not ok.all():
        keys, codes = keys[ok], codes[ok]
    cats = np.asarray(categories, dtype=object)
    if not len(keys) or len(cats) > 62:  # too many names for a bitmask: a groupby join
        out = np.full(n, None, dtype=object)
        if len(keys):
            pairs = pd.DataFrame({"k": keys, "n": cats[codes]}).drop_duplicates()
            joined = pairs.sort_values(["k", "n"]).groupby("k")["n"].agg("; ".join)
            out[joined.index.to_numpy()] = joined.to_numpy()
        return pd.Series(out, dtype="str")
    alpha_order = np.argsort(cats.astype(str), kind="stable")
    rank = np.empty(len(cats), dtype=np.int64)
    rank[alpha_order] = np.arange(len(cats))
    alpha = cats[alpha_order]
    bits = np.left_shift(np.int64(1), rank)
    k = len(cats)
    if n * k <= 5_000_000:  # mark (key, name) in a flat table, then one bit per name
        seen = np.zeros(n * k, dtype=bool)  # (several times faster than bitwise_or.at)
        seen[keys.astype(np.int64) * k + codes] = True
        mask = seen.reshape(n, k).astype(np.int64) @ bits
    else:
        mask = np.zeros(n, dtype=np.int64)
        np.bitwise_or.at(mask, keys, bits[codes])
    pos, combos = pd.factorize(mask)  # 0 (no names) is a combination too: missing text
    text = pd.Series([None if m == 0 else
                      "; ".join(alpha[i] for i in range(len(alpha)) if (int(m) >> i) & 1)
                      for m in combos], dtype="str")
    return _take(text, pos)


def build_register(
    referrals: pd.DataFrame,
    interventions: pd.DataFrame,
    reviews: pd.DataFrame,
    *,
    pupils: pd.DataFrame | None = None,
    today: Any = None,
    holidays: Iterable | None = None,
    strict: bool = False,
    background: bool = True,
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

    ``quality`` columns: table, record_id, column, problem, action, check (the check in
    words with no record's values, for counting: :func:`quality_summary`). Checked: missing
    referral date/pupil id/ids (excluded, or DataError with ``strict=True``); unknown
    referral id in interventions or reviews (excluded); intervention before its referral;
    closure before the first response; response/closure/intervention end before its start
    (negative durations, left out of duration figures); a pupil referred again while an
    earlier referral is open (no closure, or closure after the new referral date); sessions
    attended above planned (capped); dates after ``today``; intervention names not on the
    menu (closest menu item offered); closure outcomes not in the list; pupil ids not in
    ``pupils``. ``today`` defaults to the current date.

    With ``background=True`` (the default) the interventions are linked to the referrals and
    summed in a second thread while the referrals' remaining checks, the reviews and the
    pupils are done in this one (most of that work is numpy and Arrow code, which leaves
    Python's lock free); ``False`` does it all in this thread. The register is the same
    either way, and errors are raised in the same order.
    """
    today = pd.Timestamp.today().normalize() if today is None else pd.Timestamp(today).normalize()
    _require(referrals, "referrals", ["referral_id", "pupil_id", "referral_date"])
    _require(interventions, "interventions", ["intervention_id", "referral_id", "intervention",
                                              "start_date"])
    _require(reviews, "reviews", ["review_id", "referral_id", "review_date"])
    issues: list[_Issue | None] = []

    # ---- referrals -------------------------------------------------------------------
    ref = _add_optional(referrals.reset_index(drop=True), _REFERRAL_OPTIONAL)
    for c in ("referral_date", "first_response_date", "closure_date"):
        ref[c] = _as_dates(ref, "referrals", c)
    # referral ids of the referrals and reviews as the position of the id's first row in
    # ``ref`` (-1 = missing or not a referral; a repeated id points to an earlier row); the
    # interventions' are looked up the same way in the second thread (_link_interventions)
    ref_ids = ref["referral_id"]
    rcodes, vcodes = _first_positions(ref_ids, reviews["referral_id"])
    n_codes = len(rcodes)
    dup = pd.Series((np.bincount(rcodes + 1)[rcodes + 1] > 1) & (rcodes >= 0))
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
    ref_codes = rcodes[usable.to_numpy()]
    ref = _rows(ref, usable.to_numpy())

    # ---- interventions, checked ------------------------------------------------------
    # checked here, before the referrals' kept-record checks below (which raise nothing),
    # so that errors are raised in table order and the second thread starts early; linked
    # to the referrals and summed per referral there (_link_interventions) while the rest
    # of the referrals, the reviews and the pupils are done here
    iv = _add_optional(interventions.reset_index(drop=True), _INTERVENTION_OPTIONAL)
    for c in ("start_date", "end_date"):
        iv[c] = _as_dates(iv, "interventions", c)
    for c in ("sessions_planned", "sessions_attended", "cost"):
        iv[c] = _as_number(iv, "interventions", c)
    iv_issues = [_exclude_or_raise(iv, iv[col].isna(), "interventions", "intervention_id", col,
                                   f"have no {what}", f"Add the {what} in the source file",
                                   strict)
                 for col, what in (("start_date", "start date"),
                                   ("intervention", "intervention name"))]
    link = (_second_thread().submit if background else _done)
    linked = link(_link_interventions, iv, ref["referral_date"], ref["pupil_id"], ref_codes,
                  n_codes, ref_ids, today)

    # clean the distinct outcomes only, then map them back to the rows
    ocodes, ouniq = pd.factorize(ref["closure_outcome"])
    stripped = pd.Series(np.asarray(ouniq, dtype=object), dtype="str").str.strip()
    lookup = {o.lower(): o for o in CLOSURE_OUTCOMES}
    ucanon = stripped.str.lower().map(lookup).astype("str")
    cleaned = ucanon.where(ucanon.notna(), stripped)  # listed spelling, else as written
    unlisted = (stripped.notna() & ucanon.isna()).to_numpy(dtype=bool)
    bad = (ocodes >= 0) & (unlisted[np.maximum(ocodes, 0)] if len(unlisted) else False)
    issues.append(_issue(ref, bad, "referrals", "referral_id", "closure_outcome",
                         lambda d: "closure outcome '" + d["closure_outcome"].astype("str")
                         + "' is not in the list",
                         "kept: counted as an unlisted outcome; use "
                         + ", ".join(CLOSURE_OUTCOMES),
                         check="closure outcome not in the list"))
    ref["closure_outcome"] = _take(cleaned, ocodes).set_axis(ref.index)

    issues += _dates_after_today(ref, "referrals", "referral_id",
                                 ("referral_date", "first_response_date", "closure_date"), today)
    issues += [
        _date_before(ref, "referrals", "referral_id", "first_response_date", "referral_date",
                     "negative duration: first response before the referral date",
                     "kept: left out of response-time figures"),
        _date_before(ref, "referrals", "referral_id", "closure_date", "referral_date",
                     "negative duration: closure before the referral date",
                     "kept: left out of time-open figures"),
        _date_before(ref, "referrals", "referral_id", "closure_date", "first_response_date",
                     "closure before the first response", "kept: check both dates"),
    ]
    # a pupil referred again while an earlier referral is still open
    pcode, pids = pd.factorize(ref["pupil_id"], sort=True)
    referral_days = _days(ref["referral_date"])
    order = _stable_order(pcode, referral_days)
    srt_p = pcode[order]
    end = _days(ref["closure_date"].fillna(_FAR_FUTURE))[order]
    # latest end among each pupil's earlier referrals: a running maximum that the pupil's
    # offset keeps from reaching back into the previous pupil (pupils come in code order)
    lo, hi = (int(end.min()), int(end.max())) if len(end) else (0, 0)
    lift = srt_p.astype(np.int64) * (hi - lo + 1) - lo
    prev_end = np.maximum.accumulate(end + lift) - lift
    prev_end = np.r_[_NAT_INT, prev_end[:-1]]
    prev_end[np.r_[True, srt_p[1:] != srt_p[:-1]]] = _NAT_INT  # a pupil's first referral
    twice = np.zeros(len(ref), dtype=bool)
    twice[order] = referral_days[order] < prev_end
    issues.append(_issue(ref, twice, "referrals", "referral_id", "referral_date",
                         lambda d: "pupil " + d["pupil_id"].astype("str")
                         + " referred again while an earlier referral was still open",
                         "kept: check whether it duplicates the earlier referral",
                         check="pupil referred again while an earlier referral was open"))

    issues += iv_issues  # the interventions' quality rows follow the referrals'
    iv_issues_at = len(issues)  # and the linked interventions' go here, in table order

    # ---- reviews ---------------------------------------------------------------------
    rv = reviews.reset_index(drop=True)
    rv["review_date"] = _as_dates(rv, "reviews", "review_date")
    for c in REVIEW_OUTCOMES:
        rv[c] = rv[c].astype("boolean") if c in rv.columns else pd.array(
            [pd.NA] * len(rv), dtype="boolean")
    bad = rv["review_date"].isna()
    issues.append(_exclude_or_raise(rv, bad, "reviews", "review_id", "review_date",
                                    "have no review date", "Add the review date in the source file",
                                    strict))
    rpos = _lookup(ref_codes, n_codes, vcodes)
    unknown = rpos < 0
    issues.append(_issue(rv, unknown, "reviews", "review_id", "referral_id",
                         lambda d: "unknown referral id "
                         + d["referral_id"].astype("str").fillna(""),
                         "excluded: not linked to a usable referral",
                         check="unknown referral id"))
    keep = ~unknown & ~bad.to_numpy()
    rv = _rows(rv, keep)
    rpos = rpos[keep]
    issues += _dates_after_today(rv, "reviews", "review_id", ("review_date",), today)
    issues.append(_date_before(rv, "reviews", "review_id", "review_date",
                               _take(ref["referral_date"], rpos),
                               "review before the referral date", "kept: check the date"))

    # ---- aggregate -------------------------------------------------------------------
    # numpy on integer keys (position of the referral in ``ref``), without sorting:
    # counts by bincount, earliest dates by ufunc.at, and the latest review as the latest
    # dated row with ties broken by file order (interventions: _link_interventions).
    n_ref = len(ref)
    columns: dict[str, Any] = {}  # the register's new columns, in order
    rv_days = _days(rv["review_date"])
    rd = rv["review_date"].to_numpy()
    n_rv = np.bincount(rpos, minlength=n_ref).astype(np.int64)
    first_review = np.full(n_ref, np.iinfo(np.int64).max)
    np.minimum.at(first_review, rpos, rd.view(np.int64))
    columns["first_review_date"] = np.where(n_rv > 0, first_review, _NAT_INT).view(rd.dtype)
    columns["n_reviews"] = n_rv
    latest = _pick_row(rpos, rv_days, n_ref, earliest=False)  # the latest review
    has = latest >= 0
    for c in REVIEW_OUTCOMES:
        vals = rv[c].array
        out = pd.array(np.zeros(n_ref, dtype=bool), dtype="boolean")
        out[:] = pd.NA
        if has.any():
            out[has] = vals[latest[has]]
        columns[c] = out
    closed = ref["closure_date"].notna() & (ref["closure_date"] <= today)
    # take from a two-row column: no per-row Python strings to convert
    columns["status"] = pd.Series(np.array(["open", "closed"])).iloc[
        closed.to_numpy(dtype=np.intp)].set_axis(ref.index)
    stop = ref["closure_date"].where(closed, today)
    days_open = (stop - ref["referral_date"]).dt.days.astype(float)
    columns["days_open"] = days_open.where(days_open >= 0)
    # day numbers viewed as datetime64[D] (their NaT is the same int64), converted once
    referral_day = _days(ref["referral_date"]).view("datetime64[D]")
    response_day = _days(ref["first_response_date"]).view("datetime64[D]")
    hol = _holiday_array(holidays, referral_day,
                         np.array([np.datetime64(today.date(), "D")]), response_day)
    # working_days_between on the day arrays: busday_count where both dates are known
    known = ~(np.isnat(referral_day) | np.isnat(response_day))
    wd = np.full(n_ref, np.nan)
    wd[known] = np.busday_count(referral_day[known], response_day[known], holidays=hol)
    columns["working_days_to_response"] = np.where(wd >= 0, wd, np.nan)
    needs_met = (ref["closure_outcome"] == "needs met").astype("boolean")
    needs_met[~closed.to_numpy() | ref["closure_outcome"].isna().to_numpy()] = pd.NA

    pupil_columns: dict[str, Any] = {}
    if pupils is not None:
        _require(pupils, "pupils", ["pupil_id"])
        # pupil ids matched once: each pupil row's first row with its id, and each referral's
        first, ppos = _first_positions(pupils["pupil_id"], ref["pupil_id"])
        missing_id = first < 0
        pdup = ((~missing_id & (np.bincount(first[~missing_id], minlength=len(first))[
            np.maximum(first, 0)] > 1)) | (missing_id & (missing_id.sum() > 1)))
        if pdup.any():
            raise DataError(
                f"The pupils table, column 'pupil_id': {describe_rows(_lines(pdup))} repeat a "
                "pupil id. Each pupil must appear once; correct the source file and re-run intake."
            )
        for c in pupils.columns:  # those the register has are left out below
            if c != "pupil_id" and c not in ref.columns:
                pupil_columns[c] = _take(pupils[c], ppos)
        if "school_id" in pupils.columns:
            school = ref["school_id"].fillna(_take(pupils["school_id"], ppos))
        nopupil = ppos < 0
        issues.append(_issue(ref, nopupil, "referrals", "referral_id", "pupil_id",
                             "pupil id not in the pupils table",
                             "kept: pupil characteristics missing"))

    iv, ipos, iv_issues, iv_columns = linked.result()
    issues[iv_issues_at:iv_issues_at] = iv_issues
    columns = {**iv_columns, **columns}
    dti = (pd.Series(columns["first_intervention_start"], index=ref.index)
           - ref["referral_date"]).dt.days.astype(float)
    columns["days_to_first_intervention"] = dti.where(dti >= 0)
    columns["needs_met"] = needs_met
    pupil_columns = {c: v for c, v in pupil_columns.items() if c not in columns}
    if pupils is not None and "school_id" in pupils.columns:
        pupil_columns["school_id"] = school  # in its place among the referral columns
    # the referral columns (their data shared, not copied) and the new ones, in one frame:
    # adding 25 columns one by one costs more
    tab = pd.DataFrame({**{c: ref[c] for c in ref.columns}, **columns, **pupil_columns},
                       copy=False)

    return Register(table=tab, interventions=iv, reviews=rv, today=today, holidays=hol,
                    _issues=[i for i in issues if i is not None], _shared={
                        "intervention_positions": (tab, iv, ipos),
                        "pupil_codes": (tab, iv, (pcode, pd.Index(pids)))})


def _link_interventions(
    iv: pd.DataFrame,
    referral_date: pd.Series,
    pupil_id: pd.Series,
    ref_codes: np.ndarray,
    n_codes: int,
    referral_ids: pd.Series,
    today: pd.Timestamp,
) -> tuple[pd.DataFrame, np.ndarray, list[_Issue | None], dict[str, Any]]:
    """The interventions half of :func:`build_register`, for checked interventions ``iv``
    (which it changes), the usable referrals' dates, pupil ids and codes (``ref_codes``: the
    position of each one's id among ``referral_ids``, every referral's id): (the linked
    interventions, the register row of each, their quality rows, the register's
    intervention columns in order)."""
    issues: list[_Issue | None] = []
    ipos = _lookup(ref_codes, n_codes, _positions(referral_ids, iv["referral_id"]))
    unknown = ipos < 0
    issues.append(_issue(iv, unknown, "interventions", "intervention_id", "referral_id",
                         lambda d: "unknown referral id "
                         + d["referral_id"].astype("str").fillna(""),
                         "excluded: not linked to a usable referral",
                         check="unknown referral id"))
    keep = ~unknown & iv["start_date"].notna().to_numpy() & iv["intervention"].notna().to_numpy()
    iv = _rows(iv, keep)
    ipos = ipos[keep]

    names, on_menu, stripped = _menu_names(iv["intervention"])
    iv["intervention"] = names
    off = pd.Series(stripped, dtype=object)  # the names of the rows not on the menu
    if len(off):
        uniq = off.unique()
        sugg = {}
        for u in uniq:  # loop over distinct unknown names only, not over records
            m = difflib.get_close_matches(str(u).lower(), MENU, n=1, cutoff=0.6)
            sugg[u] = (f"kept under its own name; closest menu item: '{m[0]}'" if m
                       else "kept under its own name; no close menu item")
        issues.append(_issue(iv, ~on_menu, "interventions", "intervention_id", "intervention",
                             lambda d: "'" + off + "' is not on the menu",
                             lambda d: off.map(sugg), check="intervention not on the menu"))

    iv["referral_date"] = _take(referral_date, ipos)
    iv["pupil_id"] = _take(pupil_id, ipos)
    issues += [
        _date_before(iv, "interventions", "intervention_id", "start_date", "referral_date",
                     "intervention starts before its referral",
                     "kept: left out of time-to-intervention figures"),
        _date_before(iv, "interventions", "intervention_id", "end_date", "start_date",
                     "negative duration: end date before start date", "kept: check the dates"),
        *_dates_after_today(iv, "interventions", "intervention_id", ("start_date", "end_date"),
                            today),
    ]
    over = iv["sessions_attended"] > iv["sessions_planned"]
    issues.append(_issue(iv, over, "interventions", "intervention_id", "sessions_attended",
                         "sessions attended above sessions planned",
                         "kept: attended capped at planned"))
    iv["sessions_attended"] = iv["sessions_attended"].where(~over, iv["sessions_planned"])

    # numpy on the register row of each intervention, without sorting: counts and sums by
    # bincount, the earliest start by ufunc.at, and the first intervention as the earliest
    # dated row with ties broken by file order
    n_ref = len(referral_date)
    columns: dict[str, Any] = {}
    iv_days = _days(iv["start_date"])
    sd = iv["start_date"].to_numpy()  # keep the table's datetime unit (merges need it)
    n_iv = np.bincount(ipos, minlength=n_ref).astype(np.int64)
    first_start = np.full(n_ref, np.iinfo(np.int64).max)
    np.minimum.at(first_start, ipos, sd.view(np.int64))
    columns["first_intervention_start"] = np.where(n_iv > 0, first_start,
                                                   _NAT_INT).view(sd.dtype)
    first = _pick_row(ipos, iv_days, n_ref, earliest=True)
    code = np.asarray(names.codes, dtype=np.int64)
    first_code = np.where(first >= 0, code[np.maximum(first, 0)] if len(code) else -1, -1)
    columns["first_intervention"] = pd.Categorical.from_codes(first_code, dtype=names.dtype)
    columns["n_interventions"] = n_iv
    for c in ("sessions_planned", "sessions_attended", "cost"):
        v = iv[c].to_numpy(dtype=float, na_value=np.nan)
        ok = ~np.isnan(v)
        total = np.bincount(ipos, weights=np.where(ok, v, 0.0), minlength=n_ref)
        count = np.bincount(ipos, weights=ok, minlength=n_ref)
        columns[c] = np.where(count > 0, total, np.nan)  # pandas sum(min_count=1)
    columns["interventions"] = _joined_codes(ipos, code, names.categories, n_ref)
    return iv, ipos, issues, columns


def quality_summary(register: Register) -> pd.DataFrame:
    """Data-quality problems counted by table, column and check, with no record ids.

    Columns: table, column, check, records (number of records with the problem), action
    (what the kit did: the action text up to its first ";" when every record of the check
    shares it, else "see the full list"). Sorted by table, then by records (most first).
    """
    cols = ["table", "column", "check", "records", "action"]
    # counted from the checks' flagged records, without writing out the rows
    counts: dict[tuple[str, str, str], tuple[int, list]] = {}
    for issue in register._issues:
        key = (issue.table, issue.column, issue.check)
        n, heads = counts.get(key, (0, []))
        counts[key] = (n + issue.n, heads + issue.action_heads())
    if not counts:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(
        [(*key, n, heads[0] if len(set(heads)) == 1 else "see the full list")
         for key, (n, heads) in counts.items()], columns=cols)
    out = out.sort_values(["table", "records"], ascending=[True, False], kind="stable")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------

_TERM_NAMES = np.array(["autumn", "spring", "summer"])


def _year_month(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Proleptic Gregorian (year, month) of day numbers since 1970-01-01: Hinnant's
    ``civil_from_days`` (http://howardhinnant.github.io/date_algorithms.html), in integer
    arithmetic on whole arrays (much faster than converting to ``datetime64[M]``)."""
    z = days.astype(np.int64) + 719_468
    era = z // 146_097
    doe = z - era * 146_097  # day of the 400-year era, 0..146096
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # day of the March-based year
    mp = (5 * doy + 2) // 153
    month = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (month <= 2), month


def _period_keys(dates: pd.Series, period: str) -> tuple[np.ndarray, pd.Series]:
    """Integer sort key per date and the label for each key.

    Terms: autumn Sep-Dec, spring Jan-Mar, summer Apr-Aug, labelled ``"2023/24 autumn"``;
    months ``"2024-01"``; years are academic years Sep-Aug, ``"2023/24"``; ``"all"`` puts
    every date in one period labelled ``"all periods"``.
    """
    if period not in ("term", "month", "year", "all"):
        raise DataError(f"period must be 'term', 'month', 'year' or 'all', got {period!r}.")
    if period == "all":  # one period: no calendar needed
        ok = dates.notna().to_numpy()
        return np.where(ok, 0, -1), pd.Series({0: "all periods"} if ok.any() else {},
                                              dtype="str")
    arr = dates.to_numpy()
    if arr.dtype.kind == "M":  # calendar year and month of the distinct days only
        codes, udays = pd.factorize(_days(dates))  # NaT is a day number too: masked below
        uok = udays != _NAT_INT
        uy, um = _year_month(np.where(uok, udays, 0))
        ok, y, m = uok[codes], np.where(uok, uy, 0)[codes], np.where(uok, um, 1)[codes]
    else:
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
    for k in np.sort(pd.unique(key[ok])):
        if period == "term":
            a, t = divmod(int(k), 3)
            labels[int(k)] = f"{a}/{(a + 1) % 100:02d} {_TERM_NAMES[t]}"
        elif period == "month":
            a, mm = divmod(int(k), 12)
            labels[int(k)] = f"{a}-{mm + 1:02d}"
        else:
            labels[int(k)] = f"{int(k)}/{(int(k) + 1) % 100:02d}"
    return key, pd.Series(labels, dtype="str")


def kpi_direction(kpi: str) -> str:
    """Which way a KPI is better by default: ``"lower"`` for median/p90 times, else
    ``"higher"``."""
    return "lower" if kpi.startswith(("median_", "p90_")) else "higher"


def period_label(date: Any, period: str) -> str:
    """The label of the KPI period holding ``date`` (e.g. ``"2023/24 summer"``)."""
    _, labels = _period_keys(pd.Series([pd.Timestamp(date)]), period)
    return str(labels.iloc[0]) if len(labels) else ""


#: Short names accepted in ``targets`` (as written in params/<project>.yaml).
KPI_ALIASES: dict[str, str] = {
    "response_within_target": "pct_response_within_target",
    "lead_professional": "pct_lead_professional",
    "dosage": "pct_sessions_attended",
    "needs_met": "pct_needs_met",
    "sessions_attended": "pct_sessions_attended",
    "reviewed": "pct_reviewed",
    "days_to_response": "median_working_days_to_response",
    "days_to_first_intervention": "median_days_to_first_intervention",
}


def _rag(kpis: pd.DataFrame, targets: Mapping[str, Mapping[str, Any]] | None) -> pd.DataFrame:
    target = np.full(len(kpis), np.nan)
    rag_all = np.full(len(kpis), None, dtype=object)
    if not targets:
        kpis["target"] = target
        kpis["rag"] = pd.Series(rag_all, index=kpis.index, dtype="str")
        return kpis
    names = kpis["kpi"].to_numpy(dtype=object)
    values = kpis["value"].to_numpy(dtype=float)
    known = set(names) | set(_KPI_NAMES)
    for name, spec in targets.items():
        kpi = KPI_ALIASES.get(name, name)
        if kpi not in known and not str(kpi).startswith("closures: "):
            close = difflib.get_close_matches(str(kpi), sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(f"targets: unknown KPI {kpi!r}.{hint} Known KPIs: "
                            f"{', '.join(_KPI_NAMES)} and 'closures: <outcome>'; short names: "
                            f"{', '.join(KPI_ALIASES)}.")
        if not isinstance(spec, Mapping) or "green" not in spec or "amber" not in spec:
            raise DataError(f"targets[{kpi!r}] must be a mapping with 'green' and 'amber' "
                            "thresholds, e.g. {'green': 90, 'amber': 80}.")
        green, amber = float(spec["green"]), float(spec["amber"])
        direction = spec.get("direction", kpi_direction(kpi))
        if direction not in ("higher", "lower"):
            raise DataError(f"targets[{kpi!r}]['direction'] must be 'higher' or 'lower'.")
        if (direction == "higher" and amber > green) or (direction == "lower" and amber < green):
            raise DataError(f"targets[{kpi!r}]: with direction {direction!r} the amber "
                            f"threshold ({amber}) cannot be beyond green ({green}).")
        sel = names == kpi
        v = values[sel]
        if direction == "higher":
            rag = np.where(v >= green, "green", np.where(v >= amber, "amber", "red"))
        else:
            rag = np.where(v <= green, "green", np.where(v <= amber, "amber", "red"))
        target[sel] = green
        rag_all[sel] = np.where(np.isnan(v), None, rag.astype(object))
    kpis["target"] = target
    kpis["rag"] = pd.Series(rag_all, index=kpis.index, dtype="str")
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
    "pct_needs_met",
)


def _median_p90(code: np.ndarray, values: np.ndarray, n_groups: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group 0..n_groups-1: the median and 90th percentile (``numpy.quantile``, linear
    interpolation; its 0.5 quantile is ``numpy.median`` exactly for whole-day values) and
    the count of ``values`` (NaN and 0 for an empty group). One sort by group, then one
    partition of each group's slice for both quantiles (there are few periods)."""
    median = np.full(n_groups, np.nan)
    p90 = np.full(n_groups, np.nan)
    count = np.bincount(code, minlength=n_groups)
    order = np.argsort(code)  # each group's values together (their order does not matter)
    bounds = np.r_[0, np.cumsum(count)]
    for g in range(n_groups):
        part = values[order[bounds[g]:bounds[g + 1]]]
        if len(part):
            median[g], p90[g] = np.quantile(part, [0.5, 0.9])
    return median, p90, count


def _kpi_rows(register: Register) -> dict[str, Any]:
    """The row-level inputs of :func:`pathway_kpis` that do not depend on the period or the
    target, worked out once per register."""
    tab = register.table
    awaiting = tab["first_response_date"].isna().to_numpy()
    so_far = np.full(len(tab), np.nan)
    if awaiting.any():  # working days so far, for the referrals still awaiting a response
        so_far[awaiting] = np.asarray(working_days_between(
            tab["referral_date"][awaiting], register.today, register.holidays), dtype=float)
    # a lead professional is any non-blank value: judged on the distinct values only
    lcodes, luniq = pd.factorize(tab["lead_professional"])
    named = pd.Series(luniq, dtype=object).astype("str").str.strip().ne("").to_numpy(bool)
    planned = tab["sessions_planned"].to_numpy(dtype=float, na_value=np.nan)
    attended = tab["sessions_attended"].to_numpy(dtype=float, na_value=np.nan)
    has_iv = (tab["n_interventions"] > 0).to_numpy()
    closed = tab.loc[(tab["status"] == "closed").to_numpy(), ["closure_date", "closure_outcome"]]
    # closure outcomes as text with "not recorded" for missing, coded on the distinct values
    rcodes, runiq = pd.factorize(closed["closure_outcome"])
    names = np.append(pd.Series(runiq, dtype=object).astype("str").to_numpy(object),
                      "not recorded")
    ncodes, outcomes = pd.factorize(names, sort=True)
    return {
        "wd": tab["working_days_to_response"].to_numpy(dtype=float),
        "dti": tab["days_to_first_intervention"].to_numpy(dtype=float),
        "so_far": so_far,
        "lead": (lcodes >= 0) & (named[np.maximum(lcodes, 0)] if len(named) else False),
        "planned": planned, "attended": attended,
        "both": ~np.isnan(planned) & ~np.isnan(attended) & (planned > 0),
        "has_iv": has_iv, "reviewed": (tab["n_reviews"] > 0).to_numpy() & has_iv,
        "closure_date": closed["closure_date"],
        "outcome_codes": ncodes[np.where(rcodes >= 0, rcodes, len(names) - 1)],
        "outcomes": outcomes,
    }


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
    year = academic year ``"2023/24"``; ``"all"`` = one row per KPI for the whole data,
    labelled ``"all periods"``). ``n`` is always the denominator (or count).

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
    * ``pct_needs_met`` = 100 * closures in the period with the outcome "needs met" /
      closures in the period with an outcome recorded (``n``).
    * ``closures: <outcome>`` = closures in the period with that outcome (``n`` = all
      closures in the period; ``not recorded`` when no outcome was given).

    ``targets`` maps a KPI name (or a short name in :data:`KPI_ALIASES`, e.g. ``dosage``) to
    ``{"green": g, "amber": a, "direction": "higher"|"lower"}``
    (direction defaults to ``"lower"`` for median/p90 KPIs, ``"higher"`` otherwise). Higher is
    better: green if value >= g, amber if value >= a, else red; lower is better: green if
    value <= g, amber if value <= a, else red. ``target`` holds g; ``rag`` is missing when no
    target is set or the value is missing.
    """
    tab = register.table
    target = int(response_target_working_days)
    key, labels = _period_keys(tab["referral_date"], period)
    inp = key >= 0  # referrals in a period
    keys = _distinct(key[inp])
    code = np.searchsorted(keys, key[inp])
    nk = len(keys)

    def total(values: np.ndarray) -> np.ndarray:
        """Per-period sums by bincount on the period codes (no groupby per column)."""
        return np.bincount(code, weights=np.asarray(values, dtype=float)[inp], minlength=nk)

    r = _shared(register, "kpi_rows", lambda: _kpi_rows(register))
    wd, dti, lead, planned, attended, both, has_iv, reviewed = (
        r[c] for c in ("wd", "dti", "lead", "planned", "attended", "both", "has_iv", "reviewed"))
    late_awaiting = r["so_far"] > target  # NaN (not awaiting) compares False
    parts: list[tuple] = []  # (period keys, kpi, values, n): one frame is built at the end

    def add(kpi: str, value: Any, n: Any, at: np.ndarray = keys) -> None:
        parts.append((at, kpi, np.asarray(value, dtype=float), np.asarray(n).astype(np.int64)))

    def pct(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 100.0 * num / den, np.nan)

    n_ref = np.bincount(code, minlength=nk)
    add("referrals_received", n_ref.astype(float), n_ref)
    due = total(~np.isnan(wd) | late_awaiting)
    add("pct_response_within_target", pct(total(~np.isnan(wd) & (wd <= target)), due), due)
    for name, days in (("working_days_to_response", wd), ("days_to_first_intervention", dti)):
        has = ~np.isnan(days[inp])
        median, p90, count = _median_p90(code[has], days[inp][has], nk)
        add(f"median_{name}", median, count)
        add(f"p90_{name}", p90, count)
    add("pct_lead_professional", pct(total(lead), n_ref), n_ref)
    sessions = total(np.where(both, planned, 0.0))
    add("pct_sessions_attended", pct(total(np.where(both, attended, 0.0)), sessions), sessions)
    n_iv = total(has_iv)
    add("pct_reviewed", pct(total(reviewed), n_iv), n_iv)

    ckey, clabels = _period_keys(r["closure_date"], period)
    ocodes, ouniq = r["outcome_codes"], r["outcomes"]
    # closures by (period, outcome): bincount on integer codes (pd.crosstab is slower)
    kcodes, kuniq = pd.factorize(ckey, sort=True)
    used = np.bincount(ocodes, minlength=len(ouniq)) > 0
    ouniq = ouniq[used]
    ocodes = (np.cumsum(used) - 1)[ocodes]
    counts = np.bincount(kcodes * max(len(ouniq), 1) + ocodes,
                         minlength=len(kuniq) * len(ouniq)).reshape(len(kuniq), len(ouniq))
    column = {o: counts[:, j] for j, o in enumerate(ouniq)}
    zero = np.zeros(len(kuniq), dtype=np.int64)
    total = counts.sum(axis=1)
    recorded = total - column.get("not recorded", zero)
    with np.errstate(invalid="ignore", divide="ignore"):
        met = 100.0 * column.get("needs met", zero) / np.where(recorded > 0, recorded, np.nan)
    closure_keys = np.asarray(kuniq)
    add("pct_needs_met", met, recorded, closure_keys)
    others = sorted(o for o in column if o not in CLOSURE_OUTCOMES)
    for o in [*CLOSURE_OUTCOMES, *others]:
        add(f"closures: {o}", column.get(o, zero), total, closure_keys)
    # rows by period, then by KPI in the order added
    key = np.concatenate([p[0] for p in parts])
    kpi = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)])
    order = np.lexsort((kpi, key))
    all_labels = pd.concat([labels, clabels])
    all_labels = all_labels[~all_labels.index.duplicated()]
    out = pd.DataFrame({
        "period": pd.Series(key[order]).map(all_labels),
        "kpi": pd.Series(np.array([p[1] for p in parts], dtype=object)[kpi[order]],
                         dtype="str"),
        "value": np.concatenate([p[2] for p in parts])[order],
        "n": np.concatenate([p[3] for p in parts])[order],
    })
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
    place (trailing .0 dropped). KPIs whose value is missing or withheld (see
    :func:`evaluation.privacy.disclose`) are left out.
    """
    _require(kpis, "KPI", ["period", "kpi", "value", "n", "target", "rag"])
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
    out: list[str] = []

    def have(k: str) -> bool:
        return (k in rows.index and not pd.isna(rows.loc[k, "value"])
                and not pd.isna(rows.loc[k, "n"]))

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
    if have("pct_needs_met"):
        r = rows.loc["pct_needs_met"]
        out.append(f"{r['value']:.0f}% of {_n(r['n'], 'case')} closed with a recorded outcome "
                   f"closed with the pupil's needs met{_rag_suffix(r, '%')}.")
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
    # dates as int64 nanoseconds: numpy sorts those several times faster than datetime64
    e = edges.to_numpy(dtype="datetime64[ns]").view(np.int64)
    refs = tab["referral_date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    closed = tab.loc[tab["status"] == "closed", "closure_date"]
    clos = closed.to_numpy(dtype="datetime64[ns]").view(np.int64)
    refs, clos = np.sort(refs[refs != _NAT_INT]), np.sort(clos[clos != _NAT_INT])
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
    if len(by) == 1:  # by the column's (shared) codes, as outcomes_by does
        col = by[0]
        codes, groups = _register_column_codes(register, col)
        days = register.table["days_open"].to_numpy(dtype=float, na_value=np.nan)
        ok = (codes >= 0) & ~np.isnan(days)
        codes, days = codes[ok], days[ok]
        median, p90, n = _median_p90(codes, days, len(groups))
        longest = np.full(len(groups), -np.inf)
        np.maximum.at(longest, codes, days)
        seen = np.flatnonzero(n)
        return pd.DataFrame({col: groups[seen], "n": n[seen].astype(np.int64),
                             "median": median[seen], "p90": p90[seen], "max": longest[seen]})
    g = register.table.dropna(subset=["days_open"]).groupby(by)["days_open"]
    out = pd.DataFrame({"n": g.count(), "median": g.median(), "p90": g.quantile(0.9),
                        "max": g.max()})
    return out.reset_index()


# --------------------------------------------------------------------------------------
# outcomes and costs
# --------------------------------------------------------------------------------------


def _intervention_pairs(register: Register) -> tuple[pd.Categorical, np.ndarray, np.ndarray]:
    """The distinct (referral, intervention type) pairs: (intervention names, register row
    of each pair, intervention code of each pair), sorted by row then code."""
    names = pd.Categorical(register.interventions["intervention"])
    pos = _intervention_positions(register)
    codes = np.asarray(names.codes, dtype=np.int64)
    ok = (pos >= 0) & (codes >= 0)
    k = max(len(names.categories), 1)
    pair = _distinct(pos[ok].astype(np.int64) * k + codes[ok])
    return names, pair // k, pair % k


def _outcome_series(register: Register, outcome: str) -> pd.Series:
    if outcome == "needs_met":
        return register.table["needs_met"]
    if outcome in REVIEW_OUTCOMES:
        return register.table[outcome]
    raise DataError(f"outcome must be 'needs_met' or one of {', '.join(REVIEW_OUTCOMES)}, "
                    f"got {outcome!r}.")


def _column_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(code per row, distinct values sorted as ``groupby`` sorts them); code -1 = missing.
    The values become an Index as groupby's do (Python text in an object column becomes a
    text Index, for instance)."""
    codes, uniques = pd.factorize(values, sort=True)
    if uniques.dtype == object:  # inferred again, as groupby does
        uniques = np.asarray(uniques, dtype=object)
    return codes, pd.Index(uniques, name=values.name)


def _register_column_codes(register: Register, col: str) -> tuple[np.ndarray, pd.Index]:
    """:func:`_column_codes` of a register column, worked out once per register."""
    return _shared(register, f"column_codes:{col}",
                   lambda: _column_codes(register.table[col]))


def _proportions_by_code(codes: np.ndarray, y: np.ndarray, n_groups: int, alpha: float
                         ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Successes (``y`` 1) out of n by group code, by bincount, leaving out code -1 and a
    missing ``y``: (the codes of the groups with any, the columns n, successes, proportion,
    ci_low, ci_high of those groups, with Wilson CIs)."""
    valid = ~np.isnan(y) & (codes >= 0)
    codes = codes[valid]
    n = np.bincount(codes, minlength=n_groups)
    k = np.bincount(codes, weights=y[valid], minlength=n_groups).astype(np.int64)
    seen = np.flatnonzero(n)
    n, k = n[seen], k[seen]
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return seen, {"n": n, "successes": k, "proportion": (k / n).astype(float),
                  "ci_low": lo, "ci_high": hi}


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
    if by == ["intervention"]:  # counts by bincount on the intervention codes
        names, rows, kinds = _shared(register, "intervention_pairs",
                                     lambda: _intervention_pairs(register))
        yv = y.to_numpy(dtype=float, na_value=np.nan)[rows]
        seen, columns = _proportions_by_code(kinds, yv, len(names.categories), alpha)
        return pd.DataFrame({
            "intervention": pd.Categorical.from_codes(seen, dtype=names.dtype), **columns})
    tab_cols = [c for c in by if c != "intervention"]
    missing = [c for c in tab_cols if c not in register.table.columns]
    if missing:
        raise DataError(f"outcomes_by: the register has no column {', '.join(missing)}. "
                        "Pupil characteristics need build_register(..., pupils=pupils).")
    if len(by) == 1:  # one register column: counts by bincount on its (shared) codes
        col = by[0]
        codes, groups = _register_column_codes(register, col)
        yv = y.to_numpy(dtype=float, na_value=np.nan)
        seen, columns = _proportions_by_code(codes, yv, len(groups), alpha)
        return pd.DataFrame({col: groups[seen], **columns})
    data = pd.DataFrame({"_y": y, **{c: register.table[c] for c in tab_cols}})
    if "intervention" in by:  # one row per distinct (referral, intervention type) pair
        names, rows, kinds = _shared(register, "intervention_pairs",
                                     lambda: _intervention_pairs(register))
        data = data.iloc[rows].reset_index(drop=True).assign(
            intervention=pd.Categorical.from_codes(kinds, dtype=names.dtype))
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
        names = pd.Categorical(register.interventions["intervention"])
        cost = register.interventions["cost"].to_numpy(dtype=float, na_value=np.nan)
        pos = _intervention_positions(register)
    else:
        _require(interventions, "interventions", ["referral_id", "intervention", "cost"])
        names = _menu_names(interventions["intervention"])[0]
        cost = _as_number(interventions, "interventions", "cost").to_numpy(dtype=float)
        pos = _intervention_positions(register, interventions)
    code = np.asarray(names.codes, dtype=np.int64)
    ok = (pos >= 0) & (code >= 0)
    pupil = _pupil_codes(register)[0].astype(np.int64)
    success = y.fillna(False).to_numpy(dtype=bool)
    costed = ~np.isnan(cost)
    k = len(names.categories)
    no_cost = np.bincount(code[ok & ~costed], minlength=k)
    keep = ok & costed
    pos, code, cost = pos[keep].astype(np.int64), code[keep], cost[keep]
    pup, succ = pupil[pos], success[pos]

    def distinct(keys: np.ndarray, other: np.ndarray) -> np.ndarray:
        # number of distinct ``other`` values (non-negative codes) per ``keys`` value
        if not len(keys):
            return np.zeros(k, dtype=np.int64)
        width = int(other.max()) + 1
        if k * width <= 50_000_000:  # mark (key, other) in a flat table: no sort
            seen = np.zeros(k * width, dtype=bool)
            seen[keys * width + other] = True
            return np.count_nonzero(seen.reshape(k, width), axis=1)
        pairs = _distinct(keys * width + other)
        return np.bincount(pairs // width, minlength=k)

    def n_distinct(values: np.ndarray) -> int:
        if not len(values):
            return 0
        seen = np.zeros(int(values.max()) + 1, dtype=bool)
        seen[values] = True
        return int(np.count_nonzero(seen))

    n_iv = np.bincount(code, minlength=k)
    rows = np.flatnonzero(n_iv > 0)  # types with a costed intervention, in menu order
    # one row per type, then the "all" row (built as arrays: enlarging a frame is slow)
    total = np.r_[np.bincount(code, weights=cost, minlength=k)[rows], cost.sum()]
    n_pupils = np.r_[distinct(code, pup)[rows], n_distinct(pup)].astype(np.int64)
    n_successes = np.r_[distinct(code[succ], pos[succ])[rows],
                        n_distinct(pos[succ])].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):  # no costs: 0 / 0 is NaN
        per_pupil = total / n_pupils
        per_success = np.where(n_successes > 0, total / n_successes, np.nan)
    return pd.DataFrame({
        "intervention": pd.array([*np.asarray(names.categories, dtype=object)[rows], "all"],
                                 dtype="str"),
        "total_cost": total.astype(float),
        "n_interventions": np.r_[n_iv[rows], len(cost)].astype(np.int64),
        "n_pupils": n_pupils,
        "n_referrals": np.r_[distinct(code, pos)[rows], n_distinct(pos)].astype(np.int64),
        "n_successes": n_successes,
        "cost_per_pupil": per_pupil,
        "cost_per_success": per_success,
        "n_interventions_without_cost": np.r_[no_cost[rows], no_cost.sum()].astype(np.int64),
    })


# --------------------------------------------------------------------------------------
# per-pupil change around the first intervention
# --------------------------------------------------------------------------------------


def _pupil_starts(register: Register) -> pd.Series:
    """Each pupil's earliest first-intervention start across their referrals (index: the
    pupil ids, sorted)."""
    codes, ids = _pupil_codes(register)
    start = register.table["first_intervention_start"].to_numpy()
    ok = ~np.isnat(start) & (codes >= 0)
    first = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(first, codes[ok], start[ok].view(np.int64))
    present = first != np.iinfo(np.int64).max
    return pd.Series(first[present].view(start.dtype),
                     index=pd.Index(ids[present], name="pupil_id"),
                     name="first_intervention_start")


@dataclass
class AttendanceMatch:
    """Attendance rows matched once to each pupil's first intervention start.

    Made by :func:`match_attendance`; pass it to :func:`attendance_around_start` and
    :func:`event_study` in place of the attendance table so that a large table is matched to
    the pupils once. ``starts``: each pupil's earliest first-intervention start; for every
    attendance row of those pupils, ``pupil`` (position in ``starts``), ``week`` (weeks from
    the Monday of the start week, 0 = start week), ``attended`` and ``possible`` sessions.
    Rows that match no pupil (or have no week) are kept with ``pupil`` -1 and are skipped by
    every summary.
    """

    register: Register = field(repr=False)
    starts: pd.Series
    pupil: np.ndarray
    week: np.ndarray
    attended: np.ndarray
    possible: np.ndarray
    # the widest window summed by week so far (see _weekly_sessions)
    _weekly: tuple | None = field(default=None, init=False, repr=False, compare=False)


def _numbers_view(s: pd.Series) -> np.ndarray:
    """A numeric column as numpy, without a copy when it already is a plain numpy column;
    nullable integers become float with NaN."""
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf":
        return s.to_numpy()
    return s.to_numpy(dtype=float, na_value=np.nan)


@dataclass
class AttendanceRows:
    """The attendance table read for matching, by :func:`read_attendance`: the half of
    :func:`match_attendance` that needs no register.

    ``ids`` are the pupil ids to look up and ``lengths`` spread their positions back over the
    rows (see :func:`_id_runs`: the first id of each run of rows, or every row's id with
    ``lengths`` ``None``); ``week`` is each row's week number counted from Monday
    1969-12-29 (0 where the row has no week; ``missing`` marks those rows, ``None`` when
    there are none); ``attended`` and ``possible`` are the sessions.
    """

    ids: pd.Series = field(repr=False)
    lengths: np.ndarray | None = field(repr=False)
    week: np.ndarray = field(repr=False)
    missing: np.ndarray | None = field(repr=False)
    attended: np.ndarray = field(repr=False)
    possible: np.ndarray = field(repr=False)


def read_attendance(attendance: pd.DataFrame) -> AttendanceRows:
    """Check the attendance table and read it for :func:`match_attendance` (which takes the
    table or this result). Raises :class:`~evaluation.errors.DataError` if a column is
    missing or any row records more sessions attended than possible. Needs no register, so
    a report can read a large table in the background while it builds the register
    (:func:`in_background`). Written for millions of rows: weeks are kept as 32-bit integers
    and columns are not copied when they need not be.
    """
    _require(attendance, "attendance",
             ["pupil_id", "week_start", "possible_sessions", "attended_sessions"])
    att = _numbers_view(attendance["attended_sessions"])
    poss = _numbers_view(attendance["possible_sessions"])
    over = att > poss
    if over.any():
        raise DataError(
            f"The attendance table, column 'attended_sessions': {describe_rows(_lines(over))} "
            "record more sessions attended than possible. Correct the source file and re-run "
            "intake."
        )
    ids, lengths = _id_runs(attendance["pupil_id"])
    ws = attendance["week_start"].to_numpy()
    unit, count = np.datetime_data(ws.dtype) if ws.dtype.kind == "M" else ("", 1)
    if unit in _SUBDAY_UNITS and _SUBDAY_UNITS[unit] % count == 0:
        # day numbers straight into int32 (fits any date within 5 million years)
        week = np.empty(len(ws), dtype=np.int32)
        np.floor_divide(ws.view(np.int64), _SUBDAY_UNITS[unit] // count, out=week,
                        casting="unsafe")
        # NaT is the int64 minimum: a mask only when the smallest value is NaT
        missing = np.isnat(ws) if len(ws) and ws.view(np.int64).min() == _NAT_INT else None
    else:
        days = _days(attendance["week_start"])
        missing = days == _NAT_INT
        week = days.astype(np.int32)
    # weeks from Monday 1969-12-29 (day -3): day 0, 1970-01-01, was a Thursday
    week += 3
    np.floor_divide(week, 7, out=week)
    if missing is not None and missing.any():
        week[missing] = 0
    else:
        missing = None
    return AttendanceRows(ids=ids, lengths=lengths, week=week, missing=missing,
                          attended=att, possible=poss)


def match_attendance(register: Register, attendance: pd.DataFrame | AttendanceRows
                     ) -> AttendanceMatch:
    """Match the attendance table (or its :func:`read_attendance` result) to the register's
    pupils once (see :class:`AttendanceMatch`).

    Rows of pupils without an intervention, and rows without a week, are left out. Raises
    :class:`~evaluation.errors.DataError` as :func:`read_attendance` does. Ids are matched in
    C (Arrow) where possible, once per run of rows of the same pupil.
    """
    rows = attendance if isinstance(attendance, AttendanceRows) else read_attendance(attendance)
    starts = _pupil_starts(register)
    small = len(starts) < np.iinfo(np.int32).max
    pos = _positions(starts.index, rows.ids, np.int32 if small else np.int64)
    # each pupil's start week in the same count; the extra last slot serves rows that
    # match no pupil (position -1): they are skipped by every summary, so any week will do
    start_week = np.append((_days(starts) + 3) // 7, 0).astype(np.int32)
    # Unmatched rows stay in place with pupil -1: compressing four 5-million-row arrays
    # costs more than skipping those rows when summing.
    # (week differences written over the gathered start weeks: one long array fewer)
    if rows.lengths is None:
        idx = pos if pos.flags.writeable else pos.copy()  # Arrow results can be read-only
        week = start_week[idx]
    else:  # per run: no gather over every row
        idx = np.repeat(pos, rows.lengths)
        week = np.repeat(start_week[pos], rows.lengths)
    np.subtract(rows.week, week, out=week)
    if rows.missing is not None:
        idx[rows.missing] = -1
    return AttendanceMatch(register=register, starts=starts, pupil=idx, week=week,
                           attended=rows.attended, possible=rows.possible)


def _summed_by_week(m: AttendanceMatch, first: int, last: int) -> AttendanceMatch:
    """``m`` with its weeks ``first..last`` summed (:func:`_weekly_sessions`), so that the
    tables of any window inside them slice those sums."""
    _weekly_sessions(m, first, last)
    return m


def _attendance_match(register: Register, attendance: pd.DataFrame | AttendanceMatch
                      ) -> AttendanceMatch:
    if isinstance(attendance, AttendanceMatch):
        if attendance.register is not register:
            raise DataError("The attendance match was made for a different register; call "
                            "match_attendance(register, attendance) with this register.")
        return attendance
    return match_attendance(register, attendance)


def _weekly_sessions(m: AttendanceMatch, first: int, last: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Sessions attended and possible by pupil (rows, in ``m.starts`` order) and week
    ``first..last`` (columns), summed from the matched rows by bincount. The widest window
    summed so far is kept with the match and a window inside it is sliced from it, so the
    event study and the before/after comparison read the long attendance columns once.
    The arrays are shared: do not change them in place."""
    if m._weekly is not None:
        lo, hi, a, p = m._weekly
        if lo <= first and last <= hi:
            return a[:, first - lo:last - lo + 1], p[:, first - lo:last - lo + 1]
    # positions of the rows in the window, taken from each column (cheaper than a boolean
    # mask applied to four long columns)
    sel = m.pupil >= 0
    sel &= m.week >= first
    sel &= m.week <= last
    rows = np.flatnonzero(sel)
    n, n_weeks = len(m.starts), last - first + 1
    key = m.pupil.take(rows).astype(np.int64)  # pupil * n_weeks + week - first, in place
    key *= n_weeks
    key += m.week.take(rows)
    key -= first
    a = np.bincount(key, weights=m.attended.take(rows), minlength=n * n_weeks)
    p = np.bincount(key, weights=m.possible.take(rows), minlength=n * n_weeks)
    a, p = a.reshape(n, n_weeks), p.reshape(n, n_weeks)
    m._weekly = (first, last, a, p)
    return a, p


def attendance_around_start(
    register: Register, attendance: pd.DataFrame | AttendanceMatch, window_weeks: int = 6
) -> pd.DataFrame:
    """Attendance % before and after each pupil's first intervention start (wide table).

    The start is the pupil's earliest first-intervention start. Week ``k`` is counted from the
    Monday of the start week (k = 0 is the start week). ``baseline`` = 100 * attended /
    possible sessions summed over weeks k = -window_weeks..-1; ``follow_up`` = the same over
    k = 0..window_weeks-1 (the start week counts as follow-up). Missing when no sessions were
    possible in the window. Columns: pupil_id, start_date, baseline, follow_up,
    baseline_possible, follow_up_possible -- ready for a paired analysis
    (``evaluation.baseline_followup.paired_change``). ``attendance`` is the attendance table
    or its :func:`match_attendance` result.
    """
    w = int(window_weeks)
    if w < 1:
        raise DataError(f"window_weeks must be at least 1, got {window_weeks!r}.")
    m = _attendance_match(register, attendance)
    weekly_a, weekly_p = _weekly_sessions(m, -w, w - 1)
    # columns: weeks -w..-1 (baseline), then 0..w-1 (follow-up)
    a = weekly_a.reshape(len(m.starts), 2, w).sum(axis=2)
    p = weekly_p.reshape(len(m.starts), 2, w).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(p > 0, 100.0 * a / p, np.nan)
    return pd.DataFrame({
        "pupil_id": m.starts.index.to_numpy(),
        "start_date": m.starts.to_numpy(),
        "baseline": pct[:, 0],
        "follow_up": pct[:, 1],
        "baseline_possible": p[:, 0],
        "follow_up_possible": p[:, 1],
    })


def event_study(
    register: Register,
    attendance: pd.DataFrame | AttendanceMatch,
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
    sqrt(n)`` (sd and CI missing with fewer than 2 pupils). Pupils with data in some bins
    only change the mix between bins.
    Columns: rel_period (bin number), rel_week (first week of the bin), n_pupils, mean, sd,
    ci_low, ci_high. ``attendance`` is the attendance table or its :func:`match_attendance`
    result.
    """
    widths = {"W": 1, "2W": 2, "4W": 4}
    if freq not in widths:
        raise DataError(f"event_study: freq must be one of {', '.join(widths)}, got {freq!r}.")
    lo, hi = int(window[0]), int(window[1])
    if hi < lo:
        raise DataError(f"event_study: window {window!r} must be (first, last) with first <= last.")
    width = widths[freq]
    m = _attendance_match(register, attendance)
    # weeks lo * width .. (hi + 1) * width - 1 make bins lo..hi (floor division)
    weekly_a, weekly_p = _weekly_sessions(m, lo * width, (hi + 1) * width - 1)
    nb = hi - lo + 1
    n = len(m.starts)
    a = weekly_a.reshape(n, nb, width).sum(axis=2) if width > 1 else weekly_a
    p = weekly_p.reshape(n, nb, width).sum(axis=2) if width > 1 else weekly_p
    valid = p > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = 100.0 * a  # one n x bins work array, updated in place
        np.divide(pct, p, out=pct, where=valid)  # a is 0 where p is 0: invalid cells stay 0
        cnt = valid.sum(axis=0)
        mean = pct.sum(axis=0) / cnt
        pct -= mean
        pct *= valid  # deviations of the pupils with data only
        np.square(pct, out=pct)
        sd = np.where(cnt > 1, np.sqrt(pct.sum(axis=0) / (cnt - 1)), np.nan)
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


def _next_after(codes: np.ndarray, when: np.ndarray, right_codes: np.ndarray,
                right_when: np.ndarray) -> np.ndarray:
    """For each left row, the first right time strictly after ``when`` with the same code.

    ``codes``/``right_codes`` are integer pupil codes (-1 = no pupil) and the times are
    ``datetime64[ns]`` arrays; returns ``datetime64[ns]`` with NaT where there is none.
    Times are replaced by their day number when every time is a whole date, else by their
    rank among all the times, so (code, time) packs into one sortable int64 and the lookup is
    a single ``searchsorted`` (same result as a ``merge_asof(direction="forward",
    allow_exact_matches=False)`` by pupil).
    """
    out = np.full(len(codes), np.datetime64("NaT"), dtype="datetime64[ns]")
    keep = (right_codes >= 0) & ~np.isnat(right_when)
    rc, rt = right_codes[keep].astype(np.int64), right_when[keep].view(np.int64)
    if not len(rc) or not len(codes):
        return out
    lt = when.view(np.int64)
    day = 86_400_000_000_000
    first = min(int(lt.min()), int(rt.min()))
    span = (max(int(lt.max()), int(rt.max())) - first) // day + 2
    if (not (lt % day).any() and not (rt % day).any()
            and span * (max(int(codes.max()), int(rc.max())) + 2) < 2**62):
        width = span  # dates: the day number packs with the code directly

        def part(t: np.ndarray) -> np.ndarray:
            return (t - first) // day

        def decode(v: np.ndarray) -> np.ndarray:
            return v * day + first
    else:
        times = _distinct(np.concatenate([lt, rt]))
        width = len(times) + 1

        def part(t: np.ndarray) -> np.ndarray:
            return np.searchsorted(times, t)

        def decode(v: np.ndarray) -> np.ndarray:
            return times[v]
    rkey = np.sort(rc * width + part(rt))
    lkey = codes.astype(np.int64) * width + part(lt)
    order = _sorting_order(lkey)  # searchsorted is much faster with the needles in order
    j = np.empty(len(lkey), dtype=np.int64)
    j[order] = np.searchsorted(rkey, lkey[order], side="right")
    hit = j < len(rkey)
    j = np.minimum(j, len(rkey) - 1)
    hit &= rkey[j] // width == codes
    out[hit] = decode(rkey[j[hit]] % width).view("datetime64[ns]")
    return out


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, list]:
    """``pandas.factorize(values, sort=True)`` for a column of text or categories: codes
    (-1 = missing) and the distinct values in sorted order. For a categorical column the
    codes come from its category codes, so only the categories are sorted."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniq = pd.factorize(values.astype(object), sort=True)
        return codes, list(uniq)
    cat_codes = values.cat.codes.to_numpy()
    used = np.flatnonzero(np.bincount(cat_codes[cat_codes >= 0],
                                      minlength=len(values.cat.categories)))
    names = np.asarray(values.cat.categories[used], dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.full(len(values.cat.categories) + 1, -1, dtype=np.int64)  # last: missing
    rank[used[order]] = np.arange(len(used))
    return rank[cat_codes], list(names[order])


def _logrank(time: np.ndarray, status: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """Log-rank test of equal survival across groups: (chi-square, p value).

    The same test as ``statsmodels.duration.survfunc.survdiff`` (no weights), vectorised
    over the distinct event times t_j: n_gj = cases of group g still at risk (time >= t_j),
    d_gj = events at t_j, E_g = sum_j d_j n_gj / n_j,
    V_gh = sum_j d_j (n_j - d_j) / (n_j - 1) * n_gj / n_j * (1[g = h] - n_hj / n_j);
    chi2 = (O - E)' V^-1 (O - E) over the first G - 1 groups, with G - 1 degrees of freedom.
    """
    codes, uniq = (group, _distinct(group)) if group.dtype.kind in "iu" else pd.factorize(
        pd.Series(group), sort=True)
    g = len(uniq)
    event = status.astype(bool)
    times = _distinct(time[event])
    nt = len(times)
    if g < 2 or nt == 0:
        return np.nan, np.nan
    j = np.searchsorted(times, time[event])
    d = np.bincount(codes[event] * nt + j, minlength=g * nt).reshape(g, nt).astype(float)
    n = np.empty((g, nt))
    for k in range(g):  # one pass per group (few groups), not per case
        tk = np.sort(time[codes == k])
        n[k] = len(tk) - np.searchsorted(tk, times, side="left")
    n_all, d_all = n.sum(axis=0), d.sum(axis=0)
    o_minus_e = (d - d_all * n / n_all).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(n_all > 1, d_all * (n_all - d_all) / (n_all - 1), 0.0) / n_all
        frac = n / n_all
    v = np.diag((w * n).sum(axis=1)) - (w * frac) @ n.T
    z = o_minus_e[:-1]
    chi2 = float(z @ np.linalg.solve(v[:-1, :-1], z))
    return chi2, float(stats.chi2.sf(chi2, g - 1))


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
    the unweighted log-rank test of ``statsmodels.duration.survfunc.survdiff(time, status,
    group)``, computed by :func:`_logrank` (vectorised; the tests check it against
    ``survdiff``), chi-square with (groups - 1) degrees of freedom.

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
    first_start = tab["first_intervention_start"]
    sel = np.flatnonzero((first_start.notna() & tab[col].notna()
                          & (first_start <= end)).to_numpy())
    group = _take(tab[col], sel)
    # pupils as integer codes into the register's sorted pupil ids, shared by both lookups
    pcodes, pids = _pupil_codes(register)
    code = pcodes[sel]
    start = first_start.to_numpy(dtype="datetime64[ns]")[sel]
    after = np.maximum(start, tab["referral_date"].to_numpy(dtype="datetime64[ns]")[sel])
    next_susp = _next_after(code, start, _positions(pids, suspensions["pupil_id"]),
                            suspensions["date"].to_numpy(dtype="datetime64[ns]"))
    if referrals is None:  # the register's own referrals: their pupil codes are known
        ref_codes, ref_dates = pcodes, tab["referral_date"]
    else:
        _require(referrals, "referrals", ["pupil_id", "referral_date"])
        ref_codes = _positions(pids, referrals["pupil_id"])
        ref_dates = referrals["referral_date"]
    next_ref = _next_after(code, after, ref_codes,
                           ref_dates.to_numpy(dtype="datetime64[ns]"))
    # earliest of the two (NaT = none): np.fmin ignores NaT like a missing value
    event = np.fmin(next_susp, next_ref)
    end64 = np.datetime64(end.to_datetime64(), "ns")
    status = ~np.isnat(event) & (event <= end64)
    stop = np.where(status, event, end64)
    time = (stop - start) / np.timedelta64(1, "D")
    data = pd.DataFrame({"referral_id": _take(tab["referral_id"], sel),
                         "pupil_id": _take(tab["pupil_id"], sel),
                         "group": group.astype(object), "time": time.astype(float),
                         "status": status.astype(int)})
    z = stats.norm.ppf(1 - alpha / 2)
    gcodes, groups = _sorted_codes(group)
    columns: dict[str, list] = {c: [] for c in ("time", "survival", "ci_low", "ci_high",
                                                 "at_risk", "events")}
    for k in range(len(groups)):  # one fit per group, not per referral
        rows = gcodes == k
        sf = SurvfuncRight(time[rows].astype(float), status[rows].astype(int))
        surv = np.asarray(sf.surv_prob, dtype=float)
        se = np.asarray(sf.surv_prob_se, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.log(-np.log(surv))
            h = z * se / (surv * np.abs(np.log(surv)))
            lo = np.exp(-np.exp(ll + h))
            hi = np.exp(-np.exp(ll - h))
        for c, v in (("time", sf.surv_times), ("survival", surv),
                     ("ci_low", np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, lo))),
                     ("ci_high", np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, hi))),
                     ("at_risk", sf.n_risk), ("events", sf.n_events)):
            columns[c].append(np.asarray(v))
    # one frame for all groups (the group names repeated as a column of their own type)
    table = (pd.DataFrame({"group": pd.Series(groups).repeat([len(t) for t in columns["time"]])
                           .reset_index(drop=True),
                           **{c: np.concatenate(v) for c, v in columns.items()}})
             if len(groups) else
             pd.DataFrame(columns=["group", "time", "survival", "ci_low", "ci_high", "at_risk",
                                   "events"]))
    n_groups = len(groups)
    if n_groups >= 2:
        chi2, p = _logrank(data["time"].to_numpy(), data["status"].to_numpy(), gcodes)
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
# the pupil-level analyses of a report, started in the background
# --------------------------------------------------------------------------------------

_THREADS: dict[str, ThreadPoolExecutor] = {}
_THREADS_LOCK = threading.Lock()


def _thread(name: str) -> ThreadPoolExecutor:
    """The kit's one-thread executor called ``name``, made on first use (under a lock, so
    that two threads starting the first jobs at once get the same one)."""
    with _THREADS_LOCK:
        if name not in _THREADS:
            _THREADS[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return _THREADS[name]


def in_background(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Start ``fn(*args, **kwargs)`` in the kit's background thread and return its
    ``concurrent.futures.Future``. One thread, made on first use, runs the jobs in the order
    they were started (so a job may wait for an earlier one); :class:`PupilAnalyses` uses it
    too. For work that leaves Python's lock free most of the time (numpy, Arrow), such as
    :func:`read_attendance` while the register is being built."""
    return _thread("evalkit").submit(fn, *args, **kwargs)


def _second_thread() -> ThreadPoolExecutor:
    """A second background thread, for work that runs beside the :func:`in_background`
    queue (which may be busy, e.g. reading attendance): :func:`build_register` links the
    interventions in it. Made on first use; its jobs must not wait for other jobs."""
    return _thread("evalkit-2")


def _done(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """``fn(*args, **kwargs)`` worked out now, as a finished Future (what a background
    job gives, without the thread)."""
    done: Future = Future()
    done.set_result(fn(*args, **kwargs))
    return done


class PupilAnalyses:
    """What changed for each pupil, worked out once per register: attendance matched to the
    pupils (:func:`match_attendance`), attendance before and after the first intervention
    (:func:`attendance_around_start`), the weekly event study (:func:`event_study`),
    suspensions before and after (:func:`suspensions_around_start`) and time to the next
    suspension or re-referral (:func:`time_to_event`).

    With ``background=True`` (the default) they start in a background thread as soon as the
    object is made, so a report can draw its pathway tables and charts meanwhile; most of
    the work (matching millions of attendance rows, sorting, summing) runs in numpy and
    Arrow code that leaves Python's lock free. Reading an attribute waits for that result
    only and returns the very same object each time; an error (a
    :class:`~evaluation.errors.DataError` for bad attendance rows, say) is raised when the
    attribute is read, as a direct call would raise it. With ``background=False`` each
    result is worked out when first read. The register must not change meanwhile (see
    :class:`Register`).

    ``attendance``: the attendance table, its :func:`read_attendance` result, or a Future of
    that result (``in_background(read_attendance, table)``, started before the register is
    built). ``window_weeks``: weeks compared before and after the start; the event study covers
    twice as many on each side (``-2 * window_weeks`` to ``2 * window_weeks - 1``).
    ``suspension_days``: the window of :func:`suspensions_around_start`. An attribute is
    ``None`` when its table (``attendance`` or ``suspensions``) is not given.
    """

    def __init__(self, register: Register,
                 attendance: pd.DataFrame | AttendanceRows | Future | None = None,
                 suspensions: pd.DataFrame | None = None, *, window_weeks: int = 6,
                 suspension_days: int = 90, background: bool = True) -> None:
        self.register = register
        self.window_weeks = w = int(window_weeks)
        self.suspension_days = int(suspension_days)
        jobs: dict[str, Callable[[], Any]] = {}
        if attendance is not None:
            jobs["match"] = lambda: _summed_by_week(match_attendance(
                register, attendance.result() if isinstance(attendance, Future) else attendance),
                -2 * w, 2 * w - 1)
            jobs["around_start"] = lambda: attendance_around_start(register, self.match, w)
            jobs["event_study"] = lambda: event_study(register, self.match, "W",
                                                      (-2 * w, 2 * w - 1))
        if suspensions is not None:
            jobs["suspensions_around"] = lambda: suspensions_around_start(
                register, suspensions, self.suspension_days)
            jobs["survival"] = lambda: time_to_event(register, suspensions)
        self._jobs = jobs
        self._results: dict[str, Future] = {}
        if background:
            # submitted in order to one thread: a job that reads ``match`` finds it done
            for name, job in jobs.items():
                self._results[name] = in_background(job)

    def _result(self, name: str) -> Any:
        if name not in self._jobs:
            return None
        done = self._results.get(name)
        if done is None:  # not started in the background: work it out now, once
            done = self._results[name] = _done(self._jobs[name])
        return done.result()

    @property
    def match(self) -> AttendanceMatch | None:
        """:func:`match_attendance` of the attendance table."""
        return self._result("match")

    @property
    def around_start(self) -> pd.DataFrame | None:
        """:func:`attendance_around_start` with ``window_weeks``."""
        return self._result("around_start")

    @property
    def event_study(self) -> pd.DataFrame | None:
        """Weekly :func:`event_study` from ``-2 * window_weeks`` to ``2 * window_weeks - 1``."""
        return self._result("event_study")

    @property
    def suspensions_around(self) -> pd.DataFrame | None:
        """:func:`suspensions_around_start` with ``suspension_days``."""
        return self._result("suspensions_around")

    @property
    def survival(self) -> SurvivalResult | None:
        """:func:`time_to_event` by first intervention."""
        return self._result("survival")


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
    * a boolean mask aligned with ``pupils``, or a filter expression on the pupils table
      (:func:`evaluation.filters.parse_filter`, e.g. ``"sex == 'M' and fsm == true"``; never
      run as code) -- each group against the masked pupils who are not in the group.

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
    return _risk_ratios(pupils, cols, _pupil_groups(pupils, cols), flag, reference, alpha)


def _pupil_groups(pupils: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, pd.Index]:
    """Each pupil's group as a code (-1 = a missing group value) and the groups, sorted."""
    if len(cols) == 1:  # the column's codes, sorted as groupby sorts them
        return _column_codes(pupils[cols[0]])
    g = pupils[cols].groupby(cols, observed=True)
    codes = g.ngroup().to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(codes), -1, codes).astype(np.int64), g.size().index


def _risk_ratios(pupils: pd.DataFrame, cols: list[str], groups: tuple[np.ndarray, pd.Index],
                 flag: np.ndarray, reference: Any, alpha: float, event: str | None = None
                 ) -> pd.DataFrame:
    """The risk-ratio table of :func:`disproportionality` from group codes and event flags
    (group sizes and events by bincount on the codes); ``event`` names the event in a
    first column."""
    codes, index = groups
    k = len(index)
    has = codes >= 0

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[has & mask], minlength=k).astype(float)

    n_pupils = len(codes)
    n = count(np.ones(n_pupils, dtype=bool))
    a = count(flag)
    if isinstance(reference, str) and reference == "all others":
        m = n_pupils - n
        c = flag.sum() - a
    else:
        if isinstance(reference, str | tuple) and not isinstance(reference, pd.Series):
            key = reference if isinstance(reference, tuple) else (reference,)
            if len(key) == len(cols) and key in set(index.to_flat_index()
                                                     if len(cols) > 1 else
                                                     [(i,) for i in index]):
                mask = np.ones(n_pupils, dtype=bool)
                for col, val in zip(cols, key, strict=True):
                    mask &= (pupils[col] == val).fillna(False).to_numpy(dtype=bool)
            elif isinstance(reference, str):
                try:
                    mask = parse_filter(reference).mask(pupils)
                except FilterError as exc:
                    raise DataError(
                        f"disproportionality: reference {reference!r} is neither a group of "
                        f"{', '.join(cols)} nor a valid filter on the pupils table ({exc})."
                    ) from None
            else:
                raise DataError(f"disproportionality: reference {reference!r} is not a group "
                                f"of {', '.join(cols)}.")
        else:
            mask = np.asarray(pd.Series(reference).astype("boolean").fillna(False), dtype=bool)
            if len(mask) != n_pupils:
                raise DataError("disproportionality: the reference mask must have one value "
                                "per pupil.")
        m = mask.sum() - count(mask)
        c = flag[mask].sum() - count(mask & flag)
    z = stats.norm.ppf(1 - alpha / 2)
    ok = (a > 0) & (c > 0) & (m > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        risk = a / n
        ref_risk = c / np.where(m > 0, m, np.nan)
        rr = risk / ref_risk
        se = np.sqrt(1 / a - 1 / n + 1 / c - 1 / m)
        low = np.where(ok, np.exp(np.log(rr) - z * se), np.nan)
        high = np.where(ok, np.exp(np.log(rr) + z * se), np.nan)
    labels = ({col: index.get_level_values(i) for i, col in enumerate(cols)}
              if isinstance(index, pd.MultiIndex) else {cols[0]: index})
    return pd.DataFrame({
        **({"event": event} if event is not None else {}), **labels,
        "n": n.astype(np.int64), "events": a.astype(np.int64), "risk": risk,
        "ref_n": m.astype(np.int64), "ref_events": c.astype(np.int64), "ref_risk": ref_risk,
        "risk_ratio": np.where(ok, rr, np.nan), "ci_low": low, "ci_high": high,
    })


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
    return disproportionality_tables(pupils, referrals, suspensions, {"table": group_col},
                                     reference, alpha)["table"]


def disproportionality_tables(
    pupils: pd.DataFrame,
    referrals: pd.DataFrame,
    suspensions: pd.DataFrame,
    groupings: Mapping[str, str | Sequence[str]],
    reference: Any = "all others",
    alpha: float = 0.05,
) -> dict[str, pd.DataFrame]:
    """:func:`disproportionality_table` for several groupings of the same pupils (e.g.
    ``{"focus": "focus_group", "ethnicity": "ethnicity"}``), with the pupil ids of the three
    tables matched once: a dict of tables under the same names."""
    _require(pupils, "pupils", ["pupil_id"])
    _require(referrals, "referrals", ["pupil_id"])
    _require(suspensions, "suspensions", ["pupil_id"])
    columns = {name: [g] if isinstance(g, str) else list(g) for name, g in groupings.items()}
    for cols in columns.values():
        _require(pupils, "pupils", cols)
    escalated = np.zeros(len(referrals), dtype=bool)
    if "closure_outcome" in referrals.columns:  # judged on the distinct outcomes only
        ocodes, ouniq = pd.factorize(referrals["closure_outcome"])
        listed = {o.lower() for o in ESCALATION_OUTCOMES}
        esc_u = (pd.Series(ouniq, dtype=object).astype("str").str.strip().str.lower()
                 .isin(listed).to_numpy(bool))
        escalated = (ocodes >= 0) & (esc_u[np.maximum(ocodes, 0)] if len(esc_u) else False)
    # every pupil id matched once: as the position of its first row in ``pupils``
    first, ref_pos, susp_pos = _first_positions(pupils["pupil_id"], referrals["pupil_id"],
                                                suspensions["pupil_id"])
    flags = {}
    for event, pos in (("referral", ref_pos), ("suspension", susp_pos),
                       ("escalation", ref_pos[escalated])):
        hit = np.bincount(pos[pos >= 0], minlength=len(pupils)) > 0
        flags[event] = (first >= 0) & hit[np.maximum(first, 0)]
    out = {}
    for name, cols in columns.items():
        groups = _pupil_groups(pupils, cols)
        out[name] = pd.concat([_risk_ratios(pupils, cols, groups, flag, reference, alpha,
                                            event=event) for event, flag in flags.items()],
                              ignore_index=True)
    return out
