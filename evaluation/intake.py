"""Data intake: read a school's exports, check them, and hand the analyses clean tables.

For each data source of a project this module

1. reads the CSV or Excel sheet as text (so nothing is guessed before it is checked),
2. applies the project's column mapping (school header -> kit name, see ``docs/tables.md``)
   and keeps only the columns the kit's schema for that table knows (the allow-list in
   ``evaluation.tables``): every other column (names, dates of birth, postcodes, notes...)
   is dropped before any of its values is looked at, and only its header is reported, to
   the terminal (``ProjectData.dropped_columns``), never to a report or a processed file,
3. keeps a free-text column (referral reason, intervention name) only as a coded category
   with the allowed values the parameters declare (``data.<source>.categories``); a value
   outside the list is refused without quoting it,
4. reads the suppression markers of official statistics (``x c z - . :``) as missing and
   counts them,
5. replaces ``pupil_id`` (and staff names in ``lead_professional``) by keyed pseudonyms
   (``evaluation.pseudonyms``: HMAC-SHA-256 under a secret key kept outside the
   repository), so no report can show who a pupil is,
6. converts each column to its type (UK ``dd/mm/yyyy`` or ISO dates, yes/no booleans,
   integers, numbers) and validates the table against its pandera schema.

Any failure stops with one :class:`~evaluation.errors.DataError` naming the file, the
column, up to five offending rows (as line numbers of the file) and what to do; a value is
quoted only when it holds no letters, else masked (:func:`~evaluation.errors.masked`). Raw
files are only ever read; cleaned tables are written to ``data/processed/<project>/`` with
spreadsheet formulas neutralised.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from evaluation import calendar
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
    Col,
)

SUPPRESSION_MARKERS = frozenset({"x", "c", "z", "-", ".", ":"})
IDENTIFYING_COLUMNS = frozenset(
    {"name", "first_name", "surname", "forename", "upn", "date_of_birth", "dob", "address"}
)
TRUE_WORDS = frozenset({"y", "yes", "true", "1", "t"})
FALSE_WORDS = frozenset({"n", "no", "false", "0", "f"})

_DTYPES = {"str": "string", "date": "datetime64[ns]", "bool": "boolean", "int": "Int64"}


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

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def dropped_columns(self) -> dict[str, list[str]]:
        """The headers intake dropped, by source (only sources that had any).

        For the terminal only (``evalkit validate``): never put them in a report or a file.
        """
        return {name: list(r.dropped_columns) for name, r in self.reports.items()
                if r.dropped_columns}

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


def _read_raw(path: Path, sheet: str | int | None, nrows: int | None = None) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                skipinitialspace=True, nrows=nrows,
            )
        # calamine reads .xlsx about ten times faster than openpyxl.
        frame = pd.read_excel(
            path, sheet_name=sheet if sheet is not None else 0, dtype=object, engine="calamine",
            nrows=nrows,
        )
    except ValueError as exc:
        if "Worksheet" in str(exc) or "sheet" in str(exc).lower():
            raise DataError(
                f"{path}: {exc}. Set `sheet:` to the name of the sheet that holds the table"
            ) from None
        raise DataError(f"{path}: could not be read ({exc})") from None
    except Exception as exc:  # a corrupt or half-written file: say so, no traceback
        raise DataError(
            f"{path}: could not be read ({type(exc).__name__}: {exc}). Save it again as "
            "UTF-8 CSV or .xlsx"
        ) from None
    # Excel gives numbers and datetimes natively; turn everything else into text so every
    # source is checked the same way.
    return frame.map(lambda v: v if isinstance(v, pd.Timestamp | float | int) else str(v))


def _line_numbers(index: pd.Index) -> list[int]:
    # Header is line 1 of the file, so data row i (0-based) is line i + 2.
    return [int(i) + 2 for i in index]


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype("string").str.strip().eq("").fillna(True)


def _parse_dates(values: pd.Series, where: str) -> pd.Series:
    """Parse UK ``dd/mm/yyyy`` (or ``dd-mm-yyyy``) and ISO ``yyyy-mm-dd`` dates.

    Excel cells that are already dates are kept. Anything else is an error: a date is
    never guessed month-first.
    """
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    present = values.notna()
    native = present & values.map(lambda v: isinstance(v, pd.Timestamp))
    out[native] = pd.to_datetime(values[native])
    text = values[present & ~native].astype(str).str.strip()
    text = text.str.replace(r"[ T]00:00:00(\.0+)?$", "", regex=True)
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


def _parse_number(
    values: pd.Series, where: str, integer: bool, round_counts: bool = False
) -> pd.Series:
    text = values.astype("string").str.strip().str.replace(",", "", regex=False)
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


def _validate(frame: pd.DataFrame, kind: str, where: str) -> None:
    try:
        _schema(kind).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        first = cases.iloc[0]
        check = str(first["check"])
        same = cases[(cases["check"] == first["check"]) & (cases["column"] == first["column"])]
        column = str(first["column"])
        if check == "multiple_fields_uniqueness":
            column = " + ".join(UNIQUE[kind])
        spec = next((c for c in TABLES[kind] if c.name == column), None)
        rows = _line_numbers(pd.Index(same["index"].dropna().astype(int).unique()))
        examples = same["failure_case"].dropna().astype(str).unique()[:3]
        shown = f" (for example {', '.join(masked(e) for e in examples)})" if len(examples) else ""
        others = len(cases.groupby(["column", "check"], dropna=False)) - 1
        more = f" There are {others} other kinds of problem too." if others > 0 else ""
        raise DataError(
            f"{where}, column '{column}': {describe_rows(rows)}{shown} "
            f"{_explain(check, spec)}.{more}"
        ) from None


def _cross_checks(frame: pd.DataFrame, kind: str, where: str) -> None:
    if kind == "attendance":
        over = frame["attended_sessions"] > frame["possible_sessions"]
        if over.fillna(False).any():
            raise DataError(
                f"{where}, column 'attended_sessions': "
                f"{describe_rows(_line_numbers(frame.index[over.fillna(False)]))} are above "
                "possible_sessions. Correct the counts"
            )


def _keep_rows(raw: pd.DataFrame, where: dict, shown_path: Path, params: ProjectParams,
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
            identifying.append(kit)
        elif spec is None or (spec.free_text and allowed.get(kit) is None
                              and not spec.required):
            dropped.append(header)
        else:
            keep[header] = kit
    return _Plan(keep, dropped, identifying)


def _check_categories(frame: pd.DataFrame, kind: str, source: DataSource, name: str,
                      shown_path: Path, params: ProjectParams) -> None:
    """Keep free-text columns only as coded categories: values are matched to the allowed
    list ignoring case and surrounding spaces and written in the list's spelling; any
    other value stops intake with a message that names the rows but never quotes them
    (free text can hold a name, a phone number or an address)."""
    for col, allowed in _categories(source, kind).items():
        if col not in frame.columns:
            continue
        if allowed is None:  # a required free-text column without a declared list
            raise DataError(
                f"{shown_path}, column '{col}': this column is free text, which the kit "
                f"keeps only as a coded category. Declare the allowed values in "
                f"{params.file.name} under data.{name}.categories, e.g. "
                f"`categories: {{{col}: [first value, second value]}}`, and recode the file "
                "to use only those values"
            )
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
            raise DataError(
                f"{shown_path}, column '{col}': {describe_rows(_line_numbers(text.index[bad]))} "
                f"hold values outside the allowed categories ({', '.join(allowed)}; "
                f"{key}). This column is kept only as a coded category, never as free text: "
                "recode those cells to one of the values"
            )
        frame[col] = coded.astype("string")


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
    raw = _read_raw(path, source.sheet)
    raw.columns = [str(c).strip() for c in raw.columns]

    missing_headers = [h for h in source.columns if h not in raw.columns]
    if missing_headers:
        header = missing_headers[0]
        close = difflib.get_close_matches(header, list(raw.columns), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(
            f"{shown_path}: the column mapping in {params.file.name} (data.{name}.columns) "
            f"names '{header}', which is not a column of the file.{hint} "
            f"Columns in the file: {', '.join(raw.columns)}"
        )
    if source.where:
        raw = _keep_rows(raw, source.where, shown_path, params, name)

    # The allow-list: everything the kit's schema does not know goes now, unread.
    headers = list(raw.columns)
    plan = _plan(headers, name, source, kind)
    frame = raw[list(plan.keep)].rename(columns=plan.keep)
    del raw
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(
            f"{shown_path}: after the column mapping, '{duplicated[0]}' appears twice. "
            f"Map only one of the file's columns to it in data.{name}.columns"
        )

    specs = {c.name: c for c in TABLES[kind]}
    absent = [c.name for c in TABLES[kind] if c.required and c.name not in frame.columns]
    if absent:
        raise DataError(
            f"{shown_path}: the {kind} table needs a column '{absent[0]}', which the file does "
            f"not have. If the school calls it something else, add `'<their header>': "
            f"{absent[0]}` under data.{name}.columns in {params.file.name}. "
            f"Columns in the file: {', '.join(headers)}"
        )

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

    _check_categories(frame, kind, source, name, shown_path, params)

    rounded: dict[str, int] = {}
    for col in frame.columns:
        spec = specs[col]
        where = f"{shown_path}, column '{col}'"
        if spec.type == "str":
            frame[col] = frame[col].astype("string")
        elif spec.type == "date":
            frame[col] = _parse_dates(frame[col], where)
        elif spec.type == "bool":
            frame[col] = _parse_bool(frame[col], where)
        else:
            integer = spec.type == "int"
            if integer and source.round_counts:
                numbers = pd.to_numeric(frame[col], errors="coerce")
                n_rounded = int((numbers.notna() & (numbers != np.round(numbers))).sum())
                if n_rounded:
                    rounded[col] = n_rounded
            frame[col] = _parse_number(frame[col], where, integer, source.round_counts)

    for col in frame.columns:
        if specs[col].pseudonym:
            frame[col] = pseudonymise(frame[col], params.project.id,
                                      prefix=specs[col].pseudonym)

    _validate(frame, kind, str(shown_path))
    _cross_checks(frame, kind, str(shown_path))
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
    raw = _read_raw(params.resolve(source.path), source.sheet, 0)
    headers = [str(c).strip() for c in raw.columns]
    return _plan(headers, name, source, source.kind or name).dropped_headers


def load_data(params: ProjectParams, *, use_cache: bool = True) -> ProjectData:
    """Read every data source of a project (nothing is written).

    With ``use_cache``, a table that :func:`write_processed` cached from the very same raw
    file (same SHA-256), column mapping, pseudonym key and kit version is loaded from the
    cache instead of being read again; anything else is read and checked afresh.
    """
    tables, reports = {}, {}
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
            frame, report = cached
            report = replace(report, dropped_columns=_dropped_headers(params, name, source))
            tables[name], reports[name] = frame, report
        else:
            tables[name], reports[name] = read_source(name, source, params)
    return ProjectData(tables, reports)


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
