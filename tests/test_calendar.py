"""Tests for evaluation.calendar: academic years, terms (DfE school census convention),
weeks, working days and dates from parameters files."""

from __future__ import annotations

import datetime as dt

import holidays
import numpy as np
import pandas as pd
import pytest
from dateutil.easter import easter

from evaluation import calendar


def test_academic_year_runs_from_1_august():
    dates = pd.Series(pd.to_datetime(["2023-07-31", "2023-08-01", "2024-07-31", "2024-01-15",
                                      None]))
    years = calendar.academic_year(dates)
    assert years.dtype == "Int64"
    assert years.iloc[:4].tolist() == [2022, 2023, 2023, 2023]
    assert years.isna().iloc[4]
    assert calendar.academic_year_label(2023) == "2023/24"
    assert calendar.academic_year_label(1999) == "1999/00"


@pytest.mark.parametrize("year", [2008, 2013, 2016, 2019, 2024, 2025])
def test_spring_ends_on_easter_sunday_and_summer_starts_on_easter_monday(year):
    sunday = pd.Timestamp(easter(year))
    dates = [sunday - pd.Timedelta(days=1), sunday, sunday + pd.Timedelta(days=1)]
    assert calendar.term(dates).tolist() == ["spring", "spring", "summer"]
    monday = calendar.term_start(int(calendar.term_code([sunday + pd.Timedelta(days=1)])[0]))
    assert monday == sunday + pd.Timedelta(days=1)


def test_terms_around_1_august_and_new_year():
    dates = ["2023-07-31", "2023-08-01", "2023-08-15", "2023-12-31", "2024-01-01", None]
    t = calendar.term(dates)
    assert t.iloc[:5].tolist() == ["summer", "autumn", "autumn", "autumn", "spring"]
    assert t.isna().iloc[5]
    assert list(t.cat.categories) == list(calendar.TERMS)
    codes = calendar.term_code(dates)
    assert [calendar.term_label(c) for c in codes.iloc[:5]] == [
        "2022/23 summer", "2023/24 autumn", "2023/24 autumn", "2023/24 autumn",
        "2023/24 spring"]
    assert codes.isna().iloc[5]


def test_term_codes_are_consecutive_and_start_where_their_term_starts():
    days = pd.Series(pd.date_range("2005-08-01", "2026-07-31", freq="D"))
    codes = calendar.term_code(days)
    steps = codes.diff().dropna().unique()
    assert sorted(steps.tolist()) == [0, 1]  # every term follows the one before, none skipped
    firsts = days[codes.diff().fillna(1) == 1]
    assert len(firsts) == 3 * 21
    for code, first in zip(codes[firsts.index], firsts, strict=True):
        assert calendar.term_start(code) == first
        assert calendar.term_code([calendar.term_start(code)]).iloc[0] == code
    assert calendar.term_start(3 * 2023) == pd.Timestamp(2023, 8, 1)
    assert calendar.term_start(3 * 2023 + 1) == pd.Timestamp(2024, 1, 1)
    assert calendar.term_start(3 * 2023 + 2) == pd.Timestamp(2024, 4, 1)  # Easter 31 March


def test_week_starts_on_monday():
    weeks = calendar.week_start(pd.Series(pd.to_datetime(["2024-01-07 15:00", "2024-01-08 00:00",
                                                          "2024-01-14 09:00"])))
    assert weeks.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08"),
                              pd.Timestamp("2024-01-08")]


def test_working_days_match_numpy_busday_count_with_england_bank_holidays():
    rng = np.random.default_rng(18)
    start = pd.Series(pd.Timestamp("2019-01-01")
                      + pd.to_timedelta(rng.integers(0, 2000, 400), unit="D"))
    end = start + pd.to_timedelta(rng.integers(-30, 400, 400), unit="D")
    start[3], end[7] = pd.NaT, pd.NaT
    got = calendar.working_days_between(start, end)
    bank = holidays.country_holidays("GB", subdiv="ENG", years=range(2018, 2026))
    hol = np.array(sorted(bank), dtype="datetime64[D]")
    ok = start.notna() & end.notna()
    expected = np.busday_count(start[ok].to_numpy("datetime64[D]"),
                               end[ok].to_numpy("datetime64[D]"), holidays=hol)
    np.testing.assert_array_equal(got[ok].to_numpy(dtype=np.int64), expected)
    assert got[~ok].isna().all() and got.dtype == "Int64"
    # Friday 22 December 2023 to Wednesday 27 December: the weekend, Christmas Day and
    # Boxing Day are not working days, so only the Friday counts
    one = calendar.working_days_between(pd.Series([pd.Timestamp("2023-12-22")]),
                                        pd.Series([pd.Timestamp("2023-12-27")]))
    assert one.iloc[0] == 1
    assert np.datetime64("2023-12-25") in calendar.bank_holidays([2023])


def test_date_of_reads_uk_and_iso_dates_and_refuses_others():
    assert calendar.date_of("2021-09-01") == dt.date(2021, 9, 1)
    assert calendar.date_of("01/09/2021") == dt.date(2021, 9, 1)
    assert calendar.date_of(" 1-9-2021 ") == dt.date(2021, 9, 1)
    assert calendar.date_of(dt.date(2021, 9, 1)) == dt.date(2021, 9, 1)
    assert calendar.date_of(dt.datetime(2021, 9, 1, 12, 30)) == dt.date(2021, 9, 1)
    for bad in ("09/25/2021", "2021/09/01", "1 September 2021", "next term", "2021/22"):
        with pytest.raises(ValueError, match="yyyy-mm-dd or dd/mm/yyyy"):
            calendar.date_of(bad)


def test_parse_academic_year_gives_the_start_year():
    years = calendar.parse_academic_year(["2012/13", "201213", " 2012-13 ", "1999/00",
                                          "2012/14", "201912", "2012", "x", None])
    assert years.dtype == "Int64"
    assert years.iloc[:4].tolist() == [2012, 2012, 2012, 1999]
    assert years.iloc[4:].isna().all()  # the end must follow the start; nothing else parses
    named = calendar.parse_academic_year(pd.Series(["2020/21"], index=[7], name="year"))
    assert named.index.tolist() == [7] and named.name == "year"
    assert calendar.academic_year_label(int(named.iloc[0])) == "2020/21"


def test_academic_year_start_is_first_of_august_and_keeps_missing():
    starts = calendar.academic_year_start(pd.Series([2012, None, 2023], dtype="Int64"))
    assert starts.tolist()[0] == pd.Timestamp("2012-08-01")
    assert pd.isna(starts.iloc[1])
    assert starts.iloc[2] == pd.Timestamp("2023-08-01")
    # the start is inside the academic year it labels, on the calendar's own definition
    assert calendar.academic_year(starts.dropna()).tolist() == [2012, 2023]
