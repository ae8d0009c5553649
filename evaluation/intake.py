"""Data intake: read a school's exports, check them, and hand the analyses clean tables.

For each data source of a project this module

1. reads the CSV or Excel sheet (``evaluation.readers``: encodings, delimiters, the sheet,
   the header row below any title lines, totals and blank rows dropped, formulas without
   saved values refused), keeping the file's own line numbers for every message,
2. applies the project's column mapping (school header -> kit name, see ``docs/tables.md``)
   and keeps only the columns the kit's schema for that table knows (the allow-list in
   ``evaluation.tables``): every other column (names, dates of birth, postcodes, notes...)
   is dropped before any of its values is looked at, and only its header is reported, to
   the terminal (``ProjectData.dropped_columns``), never to a report or a processed file;
   a wide sheet (``wide:``: one column per measure and timepoint, or per term) is reshaped
   here to the kit's long table,
3. keeps a free-text column (referral reason, intervention name) only as a coded category
   with the allowed values the parameters declare (``data.<source>.categories``); a value
   outside the list is refused without quoting it,
4. reads the suppression markers of official statistics (``x c z - . :``) as missing and
   counts them,
5. replaces ``pupil_id`` (and staff names in ``lead_professional``) by keyed pseudonyms
   (``evaluation.pseudonyms``: HMAC-SHA-256 under a secret key kept outside the
   repository), so no report can show who a pupil is,
6. recodes values: the project's ``recode:``, then the kit's built-in code lists
   (``evaluation.codes``: DfE SEN and ethnicity codes, yes/no, sex, year groups, timepoint
   words), each use counted in the report and noted in ``intake.json``,
7. converts each column to its type (UK ``dd/mm/yyyy`` or ISO dates, yes/no booleans,
   integers, numbers with the declared ``decimal:`` mark, Excel serial dates), validates
   the table against its pandera schema and checks that it is plausible (counts within the
   roll, no period entered twice, no baseline after its follow-up, scores within the
   measure's range).

Problems are collected rather than stopping at the first: every problem of a source (and,
in :func:`load_data`, of every source) is raised at once as :class:`DataProblems`, each
naming the file, the sheet, the column, up to five offending rows (as line numbers of the
file), the values found and what to do; a value is quoted only when it holds no letters,
else masked (:func:`~evaluation.errors.masked`). A source stops early only where going on
would be guessing: a file that cannot be read at all, or headers the parameters name that
the file lacks (its columns are then unknown); a column whose values fail is left out of the
checks that need it, so one bad column gives one message, not a cascade. Raw
files are only ever read; cleaned tables are written to ``data/processed/<project>/`` with
spreadsheet formulas neutralised.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from evaluation import calendar, codes, readers
from evaluation.codes import FALSE_WORDS, SEASON_WORDS, TRUE_WORDS
from evaluation.errors import DataError, describe_rows, masked
from evaluation.params import DataSource, ProjectParams
from evaluation.privacy import safe_for_spreadsheet
from evaluation.pseudonyms import key_fingerprint, pseudonymise
from evaluation.tables import (  # noqa: F401  (re-exported: intake's public names)
    CLOSURE_OUTCOMES,
    ETHNIC_GROUPS,
    ETHNIC_MINOR_GROUPS,
    SEN_STATUSES,
    TABLES,
    UNIQUE,
    WIDE_VALUE,
    Col,
)

SUPPRESSION_MARKERS = frozenset({"x", "c", "z", "-", ".", ":"})
IDENTIFYING_COLUMNS = frozenset(
    {"name", "first_name", "surname", "forename", "upn", "date_of_birth", "dob", "address"}
)

_DTYPES = {"str": "string", "date": "datetime64[ns]", "bool": "boolean", "int": "Int64"}


class DataProblems(DataError):
    """Every problem found in one or more data files, at once: (file, message) each.

    The file is the data file's resolved path, so ``evalkit validate`` can group the
    messages by file; each message also names the sheet, column and the file's lines.
    """

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(m for _, m in self.problems))


def _messages(exc: DataError) -> list[str]:
    return [m for _, m in exc.problems] if isinstance(exc, DataProblems) else [str(exc)]


@dataclass
class IntakeReport:
    """What intake found in one source: the data inventory of the overview report."""

    source: str
    kind: str
    path: str
    sha256: str
    rows: int
    columns: list[str]
    suppressed: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    dropped_identifiers: list[str] = field(default_factory=list)
    #: How many columns of the file the allow-list dropped (safe to write anywhere).
    n_dropped_columns: int = 0
    rounded: dict[str, int] = field(default_factory=dict)
    #: Cells recoded by the project's `recode:` or the kit's code lists, by kit column.
    recoded: dict[str, int] = field(default_factory=dict)
    #: What reading involved, in words that quote no cell: encoding and delimiter, title
    #: lines skipped, totals and blank rows dropped, codes recoded, a wide sheet reshaped.
    notes: list[str] = field(default_factory=list)
    date_range: tuple[str, str] | None = None
    pupils: int | None = None
    schools: int | None = None
    #: The file's headers of those columns, for the terminal only (``evalkit validate``):
    #: a header can name a person ("Notes on ..."), so they are never written to a report,
    #: the intake manifest or the cache (see :meth:`persistable`).
    dropped_columns: list[str] = field(default_factory=list, repr=False)

    def persistable(self) -> IntakeReport:
        """A copy without the dropped headers, for files under ``data/processed/``."""
        return replace(self, dropped_columns=[])

    def manifest(self) -> dict:
        """The report as plain data for ``intake.json`` (no dropped headers)."""
        out = asdict(self.persistable())
        del out["dropped_columns"]
        return out


@dataclass
class ProjectData:
    """The cleaned tables of a project, by source name, with what intake found."""

    tables: dict[str, pd.DataFrame]
    reports: dict[str, IntakeReport]
    #: Sources loaded from the cache, which keeps no dropped header: their headers are
    #: read again from the raw file only if :meth:`dropped_columns` is asked for (the
    #: notebooks never ask; reading every file's header row again cost each of them ~0.6 s).
    cached: dict[str, tuple[ProjectParams, DataSource]] = field(default_factory=dict,
                                                                 repr=False)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def dropped_columns(self) -> dict[str, list[str]]:
        """The headers intake dropped, by source (only sources that had any).

        For the terminal only (``evalkit validate``): never put them in a report or a file.
        """
        out = {}
        for name, report in self.reports.items():
            dropped = report.dropped_columns
            if name in self.cached:
                params, source = self.cached[name]
                dropped = _dropped_headers(params, name, source)
            if dropped:
                out[name] = list(dropped)
        return out

    def notes(self) -> dict[str, list[str]]:
        """What reading each source involved (encoding, delimiter, title lines skipped,
        totals and blank rows dropped, codes recoded, a wide sheet reshaped), by source, for
        ``evalkit validate`` to show; safe anywhere (no cell value, no dropped header)."""
        return {name: list(r.notes) for name, r in self.reports.items() if r.notes}

    def inventory(self) -> pd.DataFrame:
        """One row per source: rows, pupils, schools, date range, suppressed and missing cells."""
        rows = []
        for r in self.reports.values():
            rows.append(
                {
                    "source": r.source,
                    "table": r.kind,
                    "file": Path(r.path).name,
                    "rows": r.rows,
                    "pupils": r.pupils,
                    "schools": r.schools,
                    "from": r.date_range[0] if r.date_range else None,
                    "to": r.date_range[1] if r.date_range else None,
                    "suppressed cells": sum(r.suppressed.values()),
                    "rounded counts": sum(r.rounded.values()),
                    "missing cells": sum(r.missing.values()),
                }
            )
        return pd.DataFrame(rows)

    def column_inventory(self) -> pd.DataFrame:
        """One row per source and column: missing and suppressed cells."""
        rows = []
        for r in self.reports.values():
            for col in r.columns:
                rows.append(
                    {
                        "source": r.source,
                        "column": col,
                        "missing": r.missing.get(col, 0),
                        "suppressed": r.suppressed.get(col, 0),
                    }
                )
        return pd.DataFrame(rows)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_headers(source: DataSource, kind: str) -> set[str]:
    """Headers the parameters expect in the file: what finds its header row below titles."""
    return {*source.columns, *source.wide, *source.where, *(c.name for c in TABLES[kind])}


def _read_raw(path: Path, source: DataSource, kind: str, shown: str) -> readers.RawTable:
    """The file's table (see :mod:`evaluation.readers`), its index turned into row keys."""
    table = readers.read_table(path, sheet=source.sheet, header_row=source.header_row,
                               expected=_expected_headers(source, kind), shown=shown)
    table.frame.index = table.frame.index * ROW_SLOTS
    return table


#: Row keys are ``line * ROW_SLOTS + k``: a wide sheet gives several rows of the table per
#: line of the file (k = 0, 1, ...), and pandas needs unique row labels, while messages
#: must name the file's own line (``key // ROW_SLOTS``).
ROW_SLOTS = 1000


def _line_numbers(index: pd.Index) -> list[int]:
    """The file's own line numbers of some rows (each once, in order)."""
    return list(dict.fromkeys(int(i) // ROW_SLOTS for i in index))


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype("string").str.strip().eq("").fillna(True)


#: Excel stores a date as days since 30/12/1899 (1/1/1904 in old Mac workbooks); a
#: column not formatted as dates shows that number. Read as dates only in this window
#: (1954 to 2119), where a count of days cannot be mistaken for anything else in a date
#: column.
EXCEL_SERIAL_RANGE = (20000, 80000)
_DMY = r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})"


def _parse_dates(values: pd.Series, where: str, date1904: bool = False,
                 notes: list[str] | None = None, column: str = "") -> pd.Series:
    """Parse UK ``dd/mm/yyyy`` (or ``dd-mm-yyyy``) and ISO ``yyyy-mm-dd`` dates, Excel
    dates and Excel serial numbers, and academic years.

    A date is never guessed month-first: a column with month-first (US) dates such as
    09/25/2023 is refused, and so, naming both kinds, is a column mixing them with
    day-first ones (its ambiguous dates, such as 03/04/2023, could be either).
    """
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    present = values.notna()
    native = present & values.map(lambda v: isinstance(v, pd.Timestamp))
    out[native] = pd.to_datetime(values[native])
    number = present & values.map(
        lambda v: isinstance(v, int | float) and not isinstance(v, bool))
    text = values[present & ~native & ~number].astype(str).str.strip()
    text = text.str.replace(r"[ T]00:00:00(\.0+)?$", "", regex=True)
    serial_text = text.str.fullmatch(r"\d{5}(\.0+)?")
    serials = pd.concat([pd.to_numeric(values[number]),
                         pd.to_numeric(text[serial_text])]).sort_index()
    if len(serials):
        low, high = EXCEL_SERIAL_RANGE
        _reject(serials.astype(str), (serials < low) | (serials > high), where,
                "hold numbers where dates belong", "Format the column as dates in Excel "
                "(or type the dates as dd/mm/yyyy)")
        origin = pd.Timestamp("1904-01-01" if date1904 else "1899-12-30")
        out[serials.index] = origin + pd.to_timedelta(serials.round(), unit="D")
        if notes is not None:
            notes.append(f"{column}: {len(serials)} Excel date serial number"
                         f"{'s' if len(serials) > 1 else ''} read as dates")
    text = text[~serial_text]
    parts = text.str.extract(f"^{_DMY}$").astype(float)
    first, second = parts[0], parts[1]
    us_only = (second > 12) & (first <= 12)
    uk_only = (first > 12) & (second <= 12)
    if us_only.any():
        rows = describe_rows(_line_numbers(text.index[us_only]))
        examples = ", ".join(masked(v) for v in text[us_only].head(3))
        if uk_only.any():
            ambiguous = int(((first <= 12) & (second <= 12)).sum())
            raise DataError(
                f"{where}: {rows} hold month-first (US) dates (for example {examples}) while "
                f"{describe_rows(_line_numbers(text.index[uk_only]))} hold day-first (UK) "
                f"dates, so the {ambiguous} date{'s' if ambiguous != 1 else ''} that could be "
                "either cannot be read safely. Correct the month-first dates, or re-export "
                "the whole column as dd/mm/yyyy or yyyy-mm-dd")
        raise DataError(
            f"{where}: {rows} hold month-first (US) dates (for example {examples}), but the "
            "kit reads dd/mm/yyyy. Re-export the column as dd/mm/yyyy or yyyy-mm-dd (in "
            "Excel: Format Cells, Date, English (United Kingdom))")
    uk = pd.to_datetime(text, format="%d/%m/%Y", errors="coerce")
    uk = uk.fillna(pd.to_datetime(text, format="%d-%m-%Y", errors="coerce"))
    iso = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    year = calendar.parse_academic_year(text)
    parsed = uk.fillna(iso).fillna(pd.to_datetime(year.astype("string") + "-09-01",
                                                  format="%Y-%m-%d", errors="coerce"))
    _reject(text, parsed.isna(), where, "hold dates that are not dd/mm/yyyy or yyyy-mm-dd",
            "Correct them in the file, or re-export the column as dates")
    out[parsed.index] = parsed
    return out


def _reject(values: pd.Series, bad: pd.Series, where: str, problem: str, advice: str) -> None:
    """Stop with one message naming the rows (file line numbers) that hold bad values."""
    if bad.any():
        examples = ", ".join(masked(v) for v in values[bad].head(3))
        raise DataError(
            f"{where}: {describe_rows(_line_numbers(values.index[bad]))} {problem} "
            f"(for example {examples}). {advice}"
        )


def _parse_bool(values: pd.Series, where: str) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(TRUE_WORDS).fillna(False)] = True
    out[text.isin(FALSE_WORDS).fillna(False)] = False
    _reject(values, text.notna() & out.isna(), where,
            "are not yes/no values", "Use Y/N, yes/no, true/false or 1/0")
    return out


_THOUSANDS = {".": r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", ",": r"[-+]?\d{1,3}(\.\d{3})+(,\d+)?"}


def _parse_number(
    values: pd.Series, where: str, integer: bool, round_counts: bool = False,
    decimal: str = ".", declare: str = "",
) -> pd.Series:
    """Numbers from Excel cells or text. In text, the other mark than ``decimal`` is read as
    a thousands separator only where it groups digits by three (1,234 or 1.234,5); any other
    use (225,00 in a file declared with decimal ".") is refused rather than guessed, because
    reading it as a thousands separator multiplies the value by 100."""
    is_text = values.map(lambda v: isinstance(v, str))
    text = values.astype("string").str.strip()
    other = "," if decimal == "." else "."
    thousands = text.str.fullmatch(_THOUSANDS[decimal]).fillna(False) & is_text
    misplaced = is_text & text.str.contains(other, regex=False).fillna(False) & ~thousands
    if misplaced.any():
        examples = ", ".join(masked(v) for v in values[misplaced].head(3))
        rows = describe_rows(_line_numbers(values.index[misplaced]))
        if decimal == ".":
            raise DataError(
                f"{where}: {rows} hold numbers with a decimal comma (for example {examples}). "
                f"If the file writes decimals with a comma, add `decimal: \",\"` under "
                f"{declare or 'the data source'}; otherwise correct those cells")
        raise DataError(
            f"{where}: {rows} hold numbers with a decimal point (for example {examples}), but "
            f"{declare or 'the data source'} declares `decimal: \",\"`. Correct those cells, "
            "or remove `decimal:` if the file uses decimal points")
    text = text.where(~thousands, text.str.replace(other, "", regex=False))
    if decimal == ",":
        text = text.where(~is_text, text.str.replace(",", ".", regex=False))
    numbers = pd.to_numeric(text, errors="coerce")
    _reject(values, text.notna() & numbers.isna(), where,
            "are not numbers", "Remove text such as units or notes from the column")
    if integer:
        fractional = numbers.notna() & (numbers != np.round(numbers))
        if fractional.any() and not round_counts:
            raise DataError(
                f"{where}: {describe_rows(_line_numbers(values.index[fractional]))} are not "
                "whole numbers, but this column counts things. Correct the values"
            )
        return numbers.round().astype("Int64")
    return numbers.astype("float64")


def _schema(kind: str) -> pa.DataFrameSchema:
    columns = {}
    for c in TABLES[kind]:
        checks = []
        if c.min is not None:
            checks.append(pa.Check.ge(c.min))
        if c.max is not None:
            checks.append(pa.Check.le(c.max))
        if c.allowed is not None and not c.free_text:  # free text: see _check_categories
            checks.append(pa.Check.isin(list(c.allowed)))
        columns[c.name] = pa.Column(
            _DTYPES.get(c.type, "float64"), checks, nullable=c.nullable, required=c.required
        )
    return pa.DataFrameSchema(columns, strict=False, unique=UNIQUE.get(kind))


def _explain(check: str, col: Col | None) -> str:
    if check == "not_nullable":
        return "are empty, but every row needs a value. Fill them in or remove those rows"
    if check.startswith("greater_than_or_equal_to"):
        return f"are below {col.min:g}. Correct them" if col else "are too small"
    if check.startswith("less_than_or_equal_to"):
        return f"are above {col.max:g}. Correct them" if col else "are too large"
    if check.startswith("isin"):
        allowed = ", ".join(col.allowed) if col and col.allowed else "the listed values"
        return f"hold values outside the allowed list ({allowed}). Recode them"
    if check == "multiple_fields_uniqueness":
        return "are duplicates of another row. Keep one row for each and remove the others"
    return f"fail the check {check}"


def _validate(frame: pd.DataFrame, kind: str, where: str, recode_hint: str = "",
              failed: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The schema's problems, one message per column and kind of check (columns in
    ``failed`` already have their message from type conversion and are not repeated)."""
    try:
        _schema(kind).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[~cases["column"].astype(str).isin(failed)]
        return [_schema_message(group, kind, where, recode_hint)
                for _, group in cases.groupby(["column", "check"], dropna=False, sort=False)]
    return []


def _schema_message(same: pd.DataFrame, kind: str, where: str, recode_hint: str) -> str:
    """One message for the failures of one check on one column."""
    first = same.iloc[0]
    check = str(first["check"])
    column = str(first["column"])
    if check == "multiple_fields_uniqueness":
        column = " + ".join(UNIQUE[kind])
    spec = next((c for c in TABLES[kind] if c.name == column), None)
    rows = _line_numbers(pd.Index(same["index"].dropna().astype(int).unique()))
    examples = same["failure_case"].dropna().astype(str).unique()[:3]
    shown = f" (for example {', '.join(masked(e) for e in examples)})" if len(examples) else ""
    hint = ""
    if check.startswith("isin") and recode_hint:
        hint = (f" To map the school's codes once, add `recode: {{{column}: {{<their "
                f"value>: <kit value>}}}}` under {recode_hint}")
        if column == "timepoint" and any(
                str(e).strip().casefold() in SEASON_WORDS for e in examples):
            # words of a fixed vocabulary identify no one: quoted so the user sees them
            shown = " (for example " + ", ".join(
                repr(str(e)) if str(e).strip().casefold() in SEASON_WORDS else masked(e)
                for e in examples) + ")"
            hint = (f" Terms are not guessed: say which is the baseline, e.g. `recode: "
                    f"{{timepoint: {{Autumn: baseline, Summer: follow_up}}}}` under "
                    f"{recode_hint}")
    return (f"{where}, column '{column}': {describe_rows(rows)}{shown} "
            f"{_explain(check, spec)}.{hint}")


def _refuse_rows(where: str, column: str, rows: pd.Index, problem: str,
                 problems: list[str]) -> None:
    problems.append(f"{where}, column '{column}': {describe_rows(_line_numbers(rows))} "
                    f"{problem}")


def _period_labels(dates: pd.Series) -> tuple[pd.Series, str]:
    """Each date's period (month, term or academic year, whichever the series steps by)."""
    distinct = pd.Series(dates.dropna().unique()).sort_values()
    step = distinct.diff().median() if len(distinct) > 1 else pd.Timedelta(days=365)
    if step <= pd.Timedelta(days=45):
        return dates.dt.strftime("%Y-%m"), "month"
    if step <= pd.Timedelta(days=200):
        codes = calendar.term_code(dates)
        return codes.astype("string"), "term"
    return calendar.academic_year(dates).astype("string"), "academic year"


def _cross_checks(frame: pd.DataFrame, kind: str, where: str, params: ProjectParams,
                  source: DataSource, failed: frozenset[str] | set[str] = frozenset()
                  ) -> list[str]:
    """Plausibility: what passes every column's own check but cannot be true, refused with
    one message each rather than turned into a wrong report. A check that needs a column
    in ``failed`` (its values could not be read) is skipped: that column has its message."""
    problems: list[str] = []
    if any(c in failed for c in frame.columns):
        frame = frame.drop(columns=[c for c in frame.columns if c in failed])
    has = frame.columns.__contains__
    if kind == "attendance" and has("attended_sessions") and has("possible_sessions"):
        over = (frame["attended_sessions"] > frame["possible_sessions"]).fillna(False)
        if over.any():
            _refuse_rows(where, "attended_sessions", frame.index[over],
                         "are above possible_sessions (attendance above 100%). Correct the "
                         "counts", problems)
    if kind == "exclusions" and has("roll") and has("period_start"):
        # A roll of 0 is how official statistics show a local authority before it existed
        # (its counts then belong to its predecessor): no roll to compare with.
        roll = frame["roll"].where(frame["roll"] > 0)
        if has("permanent_exclusions"):
            over = (frame["permanent_exclusions"] > roll).fillna(False)
            if over.any():
                _refuse_rows(where, "permanent_exclusions", frame.index[over],
                             "are above the roll (more pupils excluded than on roll). "
                             "Correct the counts or the roll", problems)
        limit = source.max_suspensions_per_pupil
        over = (frame["suspensions"] > limit * roll).fillna(False) if has("suspensions") \
            else pd.Series(False, index=frame.index)
        if over.any():
            _refuse_rows(where, "suspensions", frame.index[over],
                         f"are more than {limit:g} suspensions per pupil on roll in one "
                         "period, which is almost certainly an entry error (a total typed "
                         "into a term, or the roll in the wrong column). Correct the counts; "
                         "if they are right, set `max_suspensions_per_pupil:` on this data "
                         "source", problems)
        keys = [c for c in ("school_id", "group") if c in frame]
        labels, unit = _period_labels(frame["period_start"])
        twice = frame.assign(_period=labels).duplicated([*keys, "_period"], keep=False)
        twice &= labels.notna()
        if twice.any():
            _refuse_rows(where, "period_start", frame.index[twice],
                         f"fall in the same {unit} for the same school: a period entered "
                         "twice would be counted twice. Keep one row per school and "
                         f"{unit}", problems)
    if kind == "scores" and has("score") and has("measure") and has("timepoint"):
        from evaluation.measures import load_registry

        registry = load_registry(params.measures)
        for measure, rows in frame.groupby("measure", sort=False):
            spec = registry.get(str(measure))
            if spec is None:
                continue  # named in the theory of change or not: checked by check_project
            out = (rows["score"] < spec.min) | (rows["score"] > spec.max)
            if out.any():
                _refuse_rows(where, "score", rows.index[out.fillna(False)],
                             f"hold scores of '{measure}' outside its range {spec.min:g} to "
                             f"{spec.max:g}. Correct them, or check that the right column "
                             "is mapped to this measure", problems)
        if "date" in frame:
            dated = frame.dropna(subset=["date"])
            base = dated[dated["timepoint"] == "baseline"]
            follow = dated[dated["timepoint"] == "follow_up"]
            pairs = base.reset_index().merge(follow.reset_index(),
                                             on=["pupil_id", "measure"],
                                             suffixes=("_b", "_f"))
            late = pairs[pairs["date_b"] > pairs["date_f"]]
            if len(late):
                _refuse_rows(where, "date", pd.Index([*late["index_b"], *late["index_f"]]),
                             "date a baseline after its follow-up (same pupil and "
                             "measure). Correct the dates or the timepoints", problems)
    return problems


def _keep_rows(raw: pd.DataFrame, where: dict, shown_path: str | Path, params: ProjectParams,
               name: str) -> pd.DataFrame:
    """Keep the rows whose columns hold the given values (e.g. one level of a national file).

    Row labels stay those of the file, so error messages still name the file's lines.
    """
    keep = pd.Series(True, index=raw.index)
    for column, wanted in where.items():
        if column not in raw.columns:
            close = difflib.get_close_matches(column, list(raw.columns), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise DataError(
                f"{shown_path}: data.{name}.where in {params.file.name} names '{column}', "
                f"which is not a column of the file.{hint}"
            )
        values = [str(v) for v in (wanted if isinstance(wanted, list) else [wanted])]
        keep &= raw[column].astype(str).str.strip().isin(values)
    if not keep.any():
        raise DataError(
            f"{shown_path}: no rows match data.{name}.where ({where}) in {params.file.name}. "
            "Check the values against the file"
        )
    return raw[keep]


def _categories(source: DataSource, kind: str) -> dict[str, list[str] | None]:
    """Each free-text column of the kind: its allowed values (the project's declared list,
    else the kit's default list), or None when it has neither and so cannot be kept."""
    out: dict[str, list[str] | None] = {}
    for col in TABLES[kind]:
        if col.free_text:
            declared = source.categories.get(col.name)
            default = list(col.allowed) if col.allowed is not None else None
            out[col.name] = list(declared) if declared is not None else default
    return out


@dataclass
class _Plan:
    """Which columns of a file intake keeps (file header -> kit name) and which it drops."""

    keep: dict[str, str]
    dropped_headers: list[str]
    dropped_identifiers: list[str]


def _plan(headers: list[str], name: str, source: DataSource, kind: str) -> _Plan:
    """Apply the column mapping and the allow-list to a file's headers (no values read)."""
    specs = {c.name: c for c in TABLES[kind]}
    allowed = _categories(source, kind)
    keep: dict[str, str] = {}
    dropped: list[str] = []
    identifying: list[str] = []
    for header in headers:
        kit = source.columns.get(header, header)
        spec = specs.get(kit)
        if kit.lower() in IDENTIFYING_COLUMNS:
            identifying.append(kit.lower())  # one of a fixed list of words
        elif spec is None or (spec.free_text and allowed.get(kit) is None
                              and not spec.required):
            dropped.append(header)
        else:
            keep[header] = kit
    return _Plan(keep, dropped, identifying)


def _check_categories(frame: pd.DataFrame, kind: str, source: DataSource, name: str,
                      shown_path: str | Path, params: ProjectParams
                      ) -> list[tuple[str, str]]:
    """Keep free-text columns only as coded categories: values are matched to the allowed
    list ignoring case and surrounding spaces and written in the list's spelling; any
    other value stops intake with a message that names the rows but never quotes them
    (free text can hold a name, a phone number or an address). Returns (column, message)
    for each column that fails."""
    problems: list[tuple[str, str]] = []
    for col, allowed in _categories(source, kind).items():
        if col not in frame.columns:
            continue
        if allowed is None:  # a required free-text column without a declared list
            problems.append((col,
                f"{shown_path}, column '{col}': this column is free text, which the kit "
                f"keeps only as a coded category. Declare the allowed values in "
                f"{params.file.name} under data.{name}.categories, e.g. "
                f"`categories: {{{col}: [first value, second value]}}`, and recode the file "
                "to use only those values"
            ))
            continue
        lookup = {v.strip().casefold(): v for v in allowed}
        text = frame[col].astype("string").str.strip()
        coded = text.str.casefold().map(lookup)
        bad = text.notna() & coded.isna()
        if bad.any():
            declared = col in source.categories
            key = (f"data.{name}.categories.{col} in {params.file.name}" if declared
                   else f"the kit's list for {col}; declare your own under "
                   f"data.{name}.categories in {params.file.name} if the school codes it "
                   "differently")
            problems.append((col,
                f"{shown_path}, column '{col}': {describe_rows(_line_numbers(text.index[bad]))} "
                f"hold values outside the allowed categories ({', '.join(allowed)}; "
                f"{key}). This column is kept only as a coded category, never as free text: "
                "recode those cells to one of the values"
            ))
            continue
        frame[col] = coded.astype("string")
    return problems


def _reshape_wide(raw: pd.DataFrame, frame: pd.DataFrame, source: DataSource, kind: str,
                  notes: list[str], where: str, params_key: str) -> pd.DataFrame:
    """A wide sheet as the kit's long table: each line of the file gives one row per group
    of `wide:` columns sharing the same kit values (a measure and timepoint, a term), with
    the group's cells in its value column(s). A group whose cells are all blank gives no
    row (a pupil with no summer score has no follow-up row, rather than an empty one)."""
    groups: dict[tuple, dict[str, str]] = {}
    for header, entry in source.wide.items():
        into = str(entry.get("into", WIDE_VALUE.get(kind)))
        key = tuple((str(k), v.isoformat() if isinstance(v, dt.date) else v)
                    for k, v in entry.items() if k != "into")
        groups.setdefault(key, {})[into] = header
    clash = [k for key in groups for k, _ in key if k in frame.columns]
    if clash:
        raise DataError(f"{where}: '{clash[0]}' comes both from a column of the file and from "
                        f"the `wide:` block of {params_key}; keep one")
    if len(groups) >= ROW_SLOTS:
        raise DataError(f"{where}: the `wide:` block of {params_key} has more than "
                        f"{ROW_SLOTS - 1} groups of columns; split the sheet")
    parts, blank_cells = [], 0
    for k, (key, fills) in enumerate(groups.items()):
        part = frame.copy()
        for column, value in key:
            part[column] = None if value is None else str(value)
        for into, header in fills.items():
            part[into] = raw[header]
        empty = pd.concat([_blank(raw[h]) for h in fills.values()], axis=1).all(axis=1)
        blank_cells += int(empty.sum())
        part = part[~empty.to_numpy()]
        part.index = part.index + k
        parts.append(part)
    long = pd.concat(parts).sort_index() if parts else frame
    notes.append(f"wide sheet reshaped: {len(raw)} rows x {len(source.wide)} columns gave "
                 f"{len(long)} rows of the {kind} table ({blank_cells} blank group"
                 f"{'s' if blank_cells != 1 else ''} left out)")
    return long


def _cell_key(value: object) -> str | None:
    """A cell as `recode:` matches it: text ignoring case and spaces, whole numbers as
    integers (Excel gives 1.0 for a cell showing 1); dates are never recoded."""
    if isinstance(value, bool):
        return str(value).casefold()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, int | str):
        return str(value).strip().casefold()
    return None


def _recode(frame: pd.DataFrame, kind: str, source: DataSource, name: str,
            notes: list[str], recoded: dict[str, int]) -> None:
    """The project's `recode:` then the kit's built-in code lists (evaluation.codes),
    each use counted and noted; DfE ethnicity codes also give the other ethnicity column
    when the file has only one."""
    specs = {c.name: c for c in TABLES[kind]}
    for derived, other, pick in (("ethnicity_minor", "ethnicity", 0),
                                 ("ethnicity", "ethnicity_minor", 1)):
        if (kind == "pupils" and other in frame and derived not in frame
                and derived not in source.categories and other not in source.recode):
            groups = frame[other].map(
                lambda v: codes.ethnicity_groups(v) if isinstance(v, str) else None)
            if groups.notna().any():
                frame[derived] = groups.map(lambda g, i=pick: g[i] if g else None)
                notes.append(f"{derived}: derived from the DfE ethnicity codes of {other}")
    for col in list(frame.columns):
        spec = specs.get(col)
        if spec is None or spec.pseudonym:
            continue
        values = frame[col].astype(object)
        done = pd.Series(False, index=frame.index)
        mapping = source.recode.get(col)
        if mapping:
            lookup = {str(k).strip().casefold(): v for k, v in mapping.items()}
            keys = values.map(_cell_key)
            done = keys.map(lambda k, m=lookup: k is not None and k in m).astype(bool)
            new = keys[done].map(lookup.__getitem__)
            values[done] = new.map(lambda v: None if v is None else
                                   str(v).lower() if isinstance(v, bool) else str(v))
            if done.any():
                recoded[col] = recoded.get(col, 0) + int(done.sum())
                n = int(done.sum())
                notes.append(f"{col}: {n} value{'s' if n != 1 else ''} recoded using "
                             f"data.{name}.recode")
        allowed = set(spec.allowed) if spec.allowed else None
        rest, n, label = codes.apply_code_list(col, values[~done], allowed)
        if n:
            values[~done] = rest
            recoded[col] = recoded.get(col, 0) + n
            notes.append(f"{col}: {n} value{'s' if n != 1 else ''} recoded using {label}")
        frame[col] = values


def read_source(
    name: str, source: DataSource, params: ProjectParams
) -> tuple[pd.DataFrame, IntakeReport]:
    """Read, map, clean and validate one data source. See the module docstring."""
    path = params.resolve(source.path)
    kind = source.kind or name
    try:
        shown_path = path.relative_to(params.root)
    except ValueError:
        shown_path = path
    params_key = f"data.{name} in {params.file.name}"
    table = _read_raw(path, source, kind, str(shown_path))
    raw, where_file, notes = table.frame, table.where, list(table.notes)

    problems: list[str] = []  # every problem of this source, reported together
    for key, named in (("columns", source.columns), ("wide", source.wide)):
        missing_headers = [h for h in named if h not in raw.columns]
        if missing_headers:  # one message for them all: one cause (a wrong file, sheet...)
            close = {h: m[0] for h in missing_headers
                     if (m := difflib.get_close_matches(h, list(raw.columns), n=1))}
            if len(missing_headers) == 1:
                header = missing_headers[0]
                hint = f" Did you mean '{close[header]}'?" if header in close else ""
                names = f"'{header}', which is not a column"
            else:
                hint = (" Did you mean " + ", ".join(f"'{m}' for '{h}'"
                                                     for h, m in close.items()) + "?"
                        if close else "")
                names = (", ".join(f"'{h}'" for h in missing_headers)
                         + ", which are not columns")
            problems.append(
                f"{where_file}: the column mapping in {params.file.name} (data.{name}.{key}) "
                f"names {names} of the file.{hint} Columns in the file (headers on line "
                f"{table.header_line}): {', '.join(raw.columns)}"
            )
    if source.where:
        try:
            raw = _keep_rows(raw, source.where, where_file, params, name)
        except DataError as exc:
            problems += _messages(exc)
    if problems:  # the file's columns are not what the parameters say: nothing to check
        raise DataProblems([(path, m) for m in problems])

    # The allow-list: everything the kit's schema does not know goes now, unread.
    headers = [h for h in raw.columns if h not in source.wide]
    plan = _plan(headers, name, source, kind)
    read_headers = {*plan.keep, *source.wide}
    uncached = [(line, h) for line, h in table.uncached_formulas if h in read_headers]
    if uncached:
        lines = sorted({line for line, _ in uncached})
        columns = ", ".join(f"'{h}'" for h in dict.fromkeys(h for _, h in uncached))
        problems.append(
            f"{where_file}: {len(uncached)} cell{'s' if len(uncached) > 1 else ''} of "
            f"{columns} ({describe_rows(lines)}) hold formulas whose values were never "
            "saved (the file was written by a program, not saved by Excel), so they would "
            "read as empty. Open the file in Excel and save it, then run again")
    errors = [(line, h) for line, h in table.error_cells if h in read_headers]
    if errors:
        lines = sorted({line for line, _ in errors})
        columns = ", ".join(f"'{h}'" for h in dict.fromkeys(h for _, h in errors))
        problems.append(
            f"{where_file}: {len(errors)} cell{'s' if len(errors) > 1 else ''} of {columns} "
            f"({describe_rows(lines)}) hold Excel errors (such as #N/A or #DIV/0!), which "
            "are no value. Correct the formulas, or clear the cells if there is no value")
    # Cells that hold no value (an unsaved formula, an error) are named above; their
    # columns are not checked again, so one problem gives one message.
    failed: set[str] = {plan.keep.get(h, h) for _, h in [*uncached, *errors]}
    frame = raw[list(plan.keep)].rename(columns=plan.keep)
    duplicated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    for column in duplicated:
        problems.append(
            f"{where_file}: after the column mapping, '{column}' appears twice. "
            f"Map only one of the file's columns to it in data.{name}.columns"
        )
    if duplicated:
        raise DataProblems([(path, m) for m in problems])
    if source.wide:
        try:
            frame = _reshape_wide(raw, frame, source, kind, notes, where_file, params_key)
        except DataError as exc:
            raise DataProblems([(path, m) for m in [*problems, *_messages(exc)]]) from None
        failed |= {str(e.get("into", WIDE_VALUE.get(kind))) for e in source.wide.values()
                   if any(h in failed for h in source.wide)}
    del raw

    specs = {c.name: c for c in TABLES[kind]}
    absent = [c.name for c in TABLES[kind] if c.required and c.name not in frame.columns]
    for missing in absent:
        wide_hint = ""
        if kind in WIDE_VALUE and missing in ("measure", "timepoint", "period_start"):
            wide_hint = (f" If the sheet is wide (one column per {missing}), describe its "
                         f"columns under data.{name}.wide instead (see docs/tables.md)")
        problems.append(
            f"{where_file}: the {kind} table needs a column '{missing}', which the file does "
            f"not have. If the school calls it something else, add `'<their header>': "
            f"{missing}` under data.{name}.columns in {params.file.name}.{wide_hint} "
            f"Columns in the file: {', '.join(headers)}"
        )
    if absent:
        raise DataProblems([(path, m) for m in problems])

    suppressed: dict[str, int] = {}
    for col in frame.columns:
        values = frame[col].astype(object)
        # Excel cells may be numbers or dates; only text can be a marker or blank.
        is_text = np.fromiter((isinstance(v, str) for v in values), bool, len(values))
        text = values.where(is_text, "").astype(str).str.strip()
        lowered = text.str.lower()
        marker = is_text & lowered.isin(SUPPRESSION_MARKERS).to_numpy(bool)
        blank = is_text & lowered.eq("").to_numpy(bool)
        if marker.any():
            suppressed[col] = int(marker.sum())
        cleaned = values.where(~is_text, text)
        frame[col] = cleaned.mask(marker | blank | values.isna().to_numpy(bool), None)

    recoded: dict[str, int] = {}
    _recode(frame, kind, source, name, notes, recoded)
    for col, message in _check_categories(frame, kind, source, name, where_file, params):
        problems.append(message)
        failed.add(col)

    rounded: dict[str, int] = {}
    for col in frame.columns:
        spec = specs[col]
        where = f"{where_file}, column '{col}'"
        try:
            if spec.type == "str":
                frame[col] = frame[col].astype("string")
            elif spec.type == "date":
                frame[col] = _parse_dates(frame[col], where, table.date1904, notes, col)
            elif spec.type == "bool":
                frame[col] = _parse_bool(frame[col], where)
            else:
                integer = spec.type == "int"
                if integer and source.round_counts:
                    numbers = pd.to_numeric(frame[col], errors="coerce")
                    n_rounded = int((numbers.notna() & (numbers != np.round(numbers))).sum())
                    if n_rounded:
                        rounded[col] = n_rounded
                frame[col] = _parse_number(frame[col], where, integer, source.round_counts,
                                           source.decimal, params_key)
        except DataError as exc:
            # Go on with the other columns: this one is left empty, of its type, and
            # kept out of the checks below (its problem is named once, here).
            problems += _messages(exc)
            failed.add(col)
            frame[col] = pd.Series(None, index=frame.index,
                                   dtype=_DTYPES.get(spec.type, "float64"))

    for col in frame.columns:
        if specs[col].pseudonym:
            frame[col] = pseudonymise(frame[col], params.project.id,
                                      prefix=specs[col].pseudonym)

    problems += _validate(frame, kind, where_file, params_key, failed)
    problems += _cross_checks(frame, kind, where_file, params, source, failed)
    if problems:
        raise DataProblems([(path, m) for m in problems])
    frame = frame.reset_index(drop=True)

    dates = [c for c in frame.columns if specs[c].type == "date"]
    date_range = None
    if dates:
        stacked = pd.concat([frame[c] for c in dates]).dropna()
        if len(stacked):
            date_range = (stacked.min().date().isoformat(), stacked.max().date().isoformat())
    report = IntakeReport(
        source=name,
        kind=kind,
        path=str(path),
        sha256=sha256_file(path),
        rows=len(frame),
        columns=list(frame.columns),
        suppressed=suppressed,
        missing={c: int(n) for c, n in frame.isna().sum().items() if n},
        dropped_identifiers=plan.dropped_identifiers,
        n_dropped_columns=len(plan.dropped_headers),
        rounded=rounded,
        date_range=date_range,
        pupils=int(frame["pupil_id"].nunique()) if "pupil_id" in frame else None,
        schools=int(frame["school_id"].nunique()) if "school_id" in frame else None,
        recoded=recoded,
        notes=notes,
        dropped_columns=plan.dropped_headers,
    )
    return frame, report


def _cache_key(params: ProjectParams, name: str, source: DataSource, digest: str) -> str:
    """What a cleaned table depends on: the raw file, its spec, the pseudonym key (by its
    fingerprint) and the kit."""
    from evaluation import __version__

    spec = json.dumps(
        [source.model_dump(mode="json"), key_fingerprint(params.project.id),
         digest, __version__, name],
        sort_keys=True,
    )
    return hashlib.sha256(spec.encode()).hexdigest()


def _cache_dir(params: ProjectParams) -> Path:
    return processed_dir(params) / ".cache"


def _dropped_headers(params: ProjectParams, name: str, source: DataSource) -> list[str]:
    """The headers the allow-list drops from a source, from its header row alone (a cached
    table does not keep them, see :meth:`IntakeReport.persistable`)."""
    kind = source.kind or name
    found = readers.read_headers(params.resolve(source.path), sheet=source.sheet,
                                 header_row=source.header_row,
                                 expected=_expected_headers(source, kind),
                                 shown=str(source.path))
    headers = [h for h in found if h not in source.wide]
    return _plan(headers, name, source, kind).dropped_headers


def load_data(params: ProjectParams, *, use_cache: bool = True,
              problems: list[tuple[Path, str]] | None = None) -> ProjectData:
    """Read every data source of a project (nothing is written).

    Every problem of every source is raised at once (:class:`DataProblems`); given a
    ``problems`` list instead, they are appended to it and the sources that failed are left
    out of the result, so that the checks needing the other tables can still run
    (``evalkit validate``).

    With ``use_cache``, a table that :func:`write_processed` cached from the very same raw
    file (same SHA-256), column mapping, pseudonym key and kit version is loaded from the
    cache instead of being read again; anything else is read and checked afresh.
    """
    tables, reports, from_cache = {}, {}, {}
    found: list[tuple[Path, str]] = []
    for name, source in params.data.items():
        cached = None
        if use_cache:
            digest = sha256_file(params.resolve(source.path))
            key = _cache_key(params, name, source, digest)
            path = _cache_dir(params) / f"{name}.{key[:16]}.pkl"
            if path.is_file():
                try:
                    cached = pd.read_pickle(path)
                except Exception:  # a stale or damaged cache is simply ignored
                    cached = None
        if cached is not None:
            tables[name], reports[name] = cached
            from_cache[name] = (params, source)
        else:
            try:
                tables[name], reports[name] = read_source(name, source, params)
            except DataProblems as exc:
                found += exc.problems
            except DataError as exc:  # the file cannot be read at all
                found.append((params.resolve(source.path), str(exc)))
    if found and problems is None:
        raise DataProblems(found)
    if problems is not None:
        problems += found
    return ProjectData(tables, reports, from_cache)


def processed_dir(params: ProjectParams) -> Path:
    return params.root / "data" / "processed" / params.project.id


def write_processed(params: ProjectParams, data: ProjectData) -> Path:
    """Write the cleaned tables and an intake manifest to ``data/processed/<project>/``.

    The CSVs are for people, so text cells that a spreadsheet would run as formulas are
    neutralised (:func:`~evaluation.privacy.safe_for_spreadsheet`); a pickle cache beside
    them lets report notebooks skip re-reading raw files that have not changed. Only
    allow-listed columns are written, and no dropped header. CSVs of sources no longer in
    the parameters are removed, so an old export cannot linger there.
    """
    out = processed_dir(params)
    cache = _cache_dir(params)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for old in [*cache.glob("*.pkl"), *out.glob("*.csv")]:
            old.unlink()
        for name, frame in data.tables.items():
            safe_for_spreadsheet(frame).to_csv(out / f"{name}.csv", index=False,
                                               date_format="%Y-%m-%d")
            report = data.reports[name]
            key = _cache_key(params, name, params.data[name], report.sha256)
            pd.to_pickle((frame, report.persistable()), cache / f"{name}.{key[:16]}.pkl")
        manifest = {name: r.manifest() for name, r in data.reports.items()}
        (out / "intake.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    except OSError as exc:  # PermissionError, read-only disk, a file where a folder should be
        reason = exc.strerror or type(exc).__name__
        raise DataError(
            f"{out}: cannot write the cleaned tables there ({reason}). Make the folder "
            f"writable by you (or free some space, or remove a file of that name in its "
            f"place), then run again"
        ) from None
    return out
