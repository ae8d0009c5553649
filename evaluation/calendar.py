"""The school calendar: academic years, terms, weeks and working days (the one definition).

Every analysis that groups dates by academic year or term, or counts working days, uses
these functions, so a date falls in the same term on every page of a report.

Convention, as the Department for Education's school census defines the periods of its
attendance and exclusion returns (the spring census collects the autumn term's attendance
for 1 August to 31 December; the summer term starts on Easter Monday, e.g. exclusions
"from 22/04/2019" in 2019, whose Easter Sunday was 21 April):

* the **academic year** runs from 1 August to 31 July and is written ``"2023/24"``;
* the **autumn term** is 1 August to 31 December, the **spring term** 1 January to Easter
  Sunday, the **summer term** Easter Monday to 31 July (summer holidays belong to the
  academic year they end or start: 15 August 2023 is autumn 2023/24);
* a **week** starts on Monday;
* a **working day** is a weekday that is not an England bank holiday (the ``holidays``
  package's ``GB``/``ENG`` calendar); school closure days are not known to the kit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd
from dateutil.easter import easter

__all__ = [
    "TERMS",
    "academic_year",
    "academic_year_label",
    "academic_year_start",
    "bank_holidays",
    "date_of",
    "parse_academic_year",
    "term",
    "term_code",
    "term_label",
    "term_start",
    "week_start",
    "working_days_between",
]

#: The terms of an academic year, in order.
TERMS: tuple[str, str, str] = ("autumn", "spring", "summer")
#: The academic year starts on this month (1 August).
YEAR_START_MONTH = 8


def _dates(values: pd.Series | Iterable) -> pd.Series:
    return pd.to_datetime(pd.Series(values) if not isinstance(values, pd.Series) else values)


def academic_year(dates: pd.Series | Iterable) -> pd.Series:
    """The calendar year in which each date's academic year starts (``Int64``; 2023 for
    any date from 1 August 2023 to 31 July 2024); missing dates stay missing."""
    d = _dates(dates)
    year = d.dt.year - (d.dt.month < YEAR_START_MONTH).astype("Int64")
    return year.astype("Int64")


def academic_year_label(start_year: int) -> str:
    """``2023`` -> ``"2023/24"``."""
    return f"{start_year}/{(start_year + 1) % 100:02d}"


def academic_year_start(start_years: pd.Series | Iterable) -> pd.Series:
    """The first day (1 August) of each academic year, from the year it starts in
    (``2012`` -> 2012-08-01); missing years stay missing (``NaT``)."""
    years = pd.Series(start_years) if not isinstance(start_years, pd.Series) else start_years
    years = pd.to_numeric(years, errors="coerce").astype("Int64")
    text = years.astype("string") + f"-{YEAR_START_MONTH:02d}-01"
    return pd.to_datetime(text, format="%Y-%m-%d").rename(years.name)


@lru_cache(maxsize=512)
def _easter_monday(year: int) -> pd.Timestamp:
    return pd.Timestamp(easter(year)) + pd.Timedelta(days=1)


def term(dates: pd.Series | Iterable) -> pd.Series:
    """The term of each date: ``"autumn"``, ``"spring"`` or ``"summer"`` (categorical, in
    that order; missing dates stay missing)."""
    d = _dates(dates)
    month = d.dt.month
    years = d.dt.year.dropna().astype(int).unique()
    summer_from = pd.to_datetime(d.dt.year.map({y: _easter_monday(int(y)) for y in years}))
    code = np.where(month >= YEAR_START_MONTH, 0, np.where(d >= summer_from, 2, 1))
    out = pd.Categorical.from_codes(np.where(d.isna(), -1, code), categories=list(TERMS))
    return pd.Series(out, index=d.index, name="term")


def term_code(dates: pd.Series | Iterable) -> pd.Series:
    """Consecutive integer codes of terms (``3 * academic year + term number``), so that the
    next term is always the code plus one (``Int64``; missing stays missing)."""
    t = term(dates)
    code = academic_year(dates).to_numpy(dtype="float64") * 3 + t.cat.codes.to_numpy()
    return pd.Series(code, index=t.index).where(t.notna()).astype("Int64")


def term_label(code: int) -> str:
    """``term_code`` back to words: ``"2023/24 autumn"``."""
    year, number = divmod(int(code), 3)
    return f"{academic_year_label(year)} {TERMS[number]}"


def term_start(code: int) -> pd.Timestamp:
    """The first day of the term with this ``term_code`` (1 August, 1 January or Easter
    Monday)."""
    year, number = divmod(int(code), 3)
    if number == 0:
        return pd.Timestamp(year, YEAR_START_MONTH, 1)
    if number == 1:
        return pd.Timestamp(year + 1, 1, 1)
    return _easter_monday(year + 1)


def week_start(dates: pd.Series | Iterable) -> pd.Series:
    """The Monday of each date's week (missing stays missing)."""
    d = _dates(dates).dt.normalize()
    return d - pd.to_timedelta(d.dt.day_of_week, unit="D")


@lru_cache(maxsize=64)
def _bank_holidays(first: int, last: int) -> np.ndarray:
    import holidays

    days = holidays.country_holidays("GB", subdiv="ENG", years=range(first, last + 1))
    return np.array(sorted(days), dtype="datetime64[D]")


def bank_holidays(years: Iterable[int]) -> np.ndarray:
    """England bank holidays in ``years`` (sorted ``datetime64[D]``)."""
    years = list(years)
    if not years:
        return np.array([], dtype="datetime64[D]")
    return _bank_holidays(min(years), max(years))


def working_days_between(start: pd.Series, end: pd.Series) -> pd.Series:
    """Working days from each ``start`` to its ``end``: weekdays that are not England bank
    holidays in ``[start, end)``, so the next working day is 1 (``numpy.busday_count``);
    negative when ``end`` is before ``start``; missing where either date is missing."""
    s = pd.to_datetime(start)
    e = pd.to_datetime(end)
    ok = (s.notna() & e.notna()).to_numpy()
    out = pd.Series(pd.NA, index=s.index, dtype="Int64")
    if not ok.any():
        return out
    first = s[ok].to_numpy("datetime64[D]")
    last = e[ok].to_numpy("datetime64[D]")
    years = range(int(min(first.min(), last.min()).astype("datetime64[Y]").astype(int)) + 1970,
                  int(max(first.max(), last.max()).astype("datetime64[Y]").astype(int)) + 1971)
    out[ok] = np.busday_count(first, last, holidays=bank_holidays(years))
    return out


def date_of(value: object) -> dt.date:
    """One date from a parameters file: a ``date``, ISO ``yyyy-mm-dd`` or UK
    ``dd/mm/yyyy`` text (never month first)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date: write it as yyyy-mm-dd or dd/mm/yyyy")


_ACADEMIC_YEAR = r"^\s*(\d{4})\s*[/-]?\s*(\d{2})\s*$"


def parse_academic_year(values: pd.Series | Iterable) -> pd.Series:
    """Academic years as official statistics write them (``"2012/13"``, ``"201213"``,
    ``"2012-13"``) -> the year each starts (``Int64``: 2012).

    The two-digit end must follow the start (``"2012/14"`` is not an academic year), so a
    six-digit ``yyyymm`` is not mistaken for one. Anything else is missing (``<NA>``): the
    caller decides whether that is an error or another kind of date.
    """
    text = pd.Series(values) if not isinstance(values, pd.Series) else values
    parts = text.astype("string").str.extract(_ACADEMIC_YEAR)
    first = pd.to_numeric(parts[0], errors="coerce").astype("Int64")
    end = pd.to_numeric(parts[1], errors="coerce").astype("Int64")
    return first.where((first + 1) % 100 == end).astype("Int64").rename(text.name)
