"""Data intake: read a school's exports, check them, and hand the analyses clean tables.

For each data source of a project this module

1. reads the CSV or Excel sheet as text (so nothing is guessed before it is checked),
2. applies the project's column mapping (school header -> kit name, see ``docs/tables.md``),
3. reads the suppression markers of official statistics (``x c z - . :``) as missing and
   counts them,
4. drops identifying columns (names, UPNs, dates of birth) and replaces ``pupil_id`` with a
   pseudonymous id (a salted SHA-256 digest), so no report can show who a pupil is,
5. converts each column to its type (UK ``dd/mm/yyyy`` or ISO dates, yes/no booleans,
   integers, numbers) and validates the table against its pandera schema.

Any failure stops with one :class:`~evaluation.errors.DataError` naming the file, the
column, up to five offending rows (as line numbers of the file) and what to do. Raw files
are only ever read; cleaned tables are written to ``data/processed/<project>/``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from evaluation.errors import DataError, describe_rows
from evaluation.params import DataSource, ProjectParams

SUPPRESSION_MARKERS = frozenset({"x", "c", "z", "-", ".", ":"})
IDENTIFYING_COLUMNS = frozenset(
    {"name", "first_name", "surname", "forename", "upn", "date_of_birth", "dob", "address"}
)
TRUE_WORDS = frozenset({"y", "yes", "true", "1", "t"})
FALSE_WORDS = frozenset({"n", "no", "false", "0", "f"})

SEN_STATUSES = ["none", "SEN support", "EHC plan"]
ETHNIC_GROUPS = [
    "White",
    "Mixed",
    "Asian",
    "Black",
    "Chinese",
    "Any other ethnic group",
    "Unclassified",
]
#: How a referral can close: needs met, or one of the escalations (in that order).
CLOSURE_OUTCOMES: tuple[str, ...] = (
    "needs met", "EHC needs assessment", "alternative provision", "school move",
)


@dataclass(frozen=True)
class Col:
    """One column of a kit table: its type, whether it must be present, and its checks."""

    name: str
    type: str  # "str", "date", "bool", "int", "float"
    required: bool = False
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None


def _id(name: str) -> Col:
    return Col(name, "str", required=True, nullable=False)


TABLES: dict[str, list[Col]] = {
    "pupils": [
        _id("pupil_id"),
        _id("school_id"),
        Col("year_group", "int", min=-1, max=14),
        Col("sex", "str", allowed=("F", "M")),
        Col("sen_status", "str", allowed=tuple(SEN_STATUSES)),
        Col("fsm", "bool"),
        Col("eal", "bool"),
        Col("ethnicity", "str", allowed=tuple(ETHNIC_GROUPS)),
        Col("ethnicity_minor", "str"),
        Col("group", "str"),
    ],
    "scores": [
        _id("pupil_id"),
        _id("measure"),
        Col("timepoint", "str", required=True, nullable=False, allowed=("baseline", "follow_up")),
        Col("score", "float", required=True, nullable=False),
        Col("date", "date"),
        Col("school_id", "str"),
    ],
    "exclusions": [
        _id("school_id"),
        Col("period_start", "date", required=True, nullable=False),
        # Official statistics suppress cells and show 0 headcount for a local authority
        # before it existed: intake keeps such rows and the ITS names them per unit.
        Col("roll", "int", required=True, min=0),
        Col("suspensions", "int", required=True, min=0),
        Col("permanent_exclusions", "int", min=0),
        Col("group", "str"),
        Col("term", "str"),
        Col("academic_year", "str"),
    ],
    "referrals": [
        _id("referral_id"),
        _id("pupil_id"),
        Col("school_id", "str"),
        Col("referral_date", "date", required=True, nullable=False),
        Col("reason", "str"),
        Col("first_response_date", "date"),
        Col("lead_professional", "str"),
        Col("closure_date", "date"),
        Col("closure_outcome", "str", allowed=tuple(CLOSURE_OUTCOMES)),
    ],
    "interventions": [
        _id("intervention_id"),
        _id("referral_id"),
        Col("intervention", "str", required=True, nullable=False),
        Col("start_date", "date", required=True, nullable=False),
        Col("end_date", "date"),
        Col("sessions_planned", "int", min=0),
        Col("sessions_attended", "int", min=0),
        Col("cost", "float", min=0),
    ],
    "reviews": [
        _id("review_id"),
        _id("referral_id"),
        Col("review_date", "date", required=True, nullable=False),
        Col("attendance_improved", "bool"),
        Col("ready_to_learn", "bool"),
        Col("on_track", "bool"),
    ],
    "attendance": [
        _id("pupil_id"),
        Col("week_start", "date", required=True, nullable=False),
        Col("possible_sessions", "int", required=True, nullable=False, min=0, max=10),
        Col("attended_sessions", "int", required=True, nullable=False, min=0, max=10),
    ],
    "suspensions": [
        _id("pupil_id"),
        Col("school_id", "str"),
        Col("date", "date", required=True, nullable=False),
        Col("kind", "str", allowed=("suspension", "permanent")),
        Col("days", "float", min=0),
    ],
}

# Rows that must be unique in each table (a duplicate pupil is an error, not a guess).
UNIQUE: dict[str, list[str]] = {
    "pupils": ["pupil_id"],
    "scores": ["pupil_id", "measure", "timepoint"],
    "exclusions": ["school_id", "period_start"],
    "referrals": ["referral_id"],
    "interventions": ["intervention_id"],
    "reviews": ["review_id"],
    "attendance": ["pupil_id", "week_start"],
}

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
    rounded: dict[str, int] = field(default_factory=dict)
    date_range: tuple[str, str] | None = None
    pupils: int | None = None
    schools: int | None = None


@dataclass
class ProjectData:
    """The cleaned tables of a project, by source name, with what intake found."""

    tables: dict[str, pd.DataFrame]
    reports: dict[str, IntakeReport]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tables

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


def pseudonymise(ids: pd.Series, salt: str) -> pd.Series:
    """Replace pupil identifiers by ``P`` + 12 hex digits of SHA-256(salt + id).

    The same pupil gets the same pseudonym in every table of a project, so tables still
    join, but reports cannot show a UPN or a school's own pupil number.
    """
    uniques = ids.dropna().unique()
    mapping = {
        u: "P" + hashlib.sha256(f"{salt}\x1f{u}".encode()).hexdigest()[:12] for u in uniques
    }
    return ids.map(mapping).astype("string")


def _read_raw(path: Path, sheet: str | int | None) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True
            )
        # calamine reads .xlsx about ten times faster than openpyxl.
        frame = pd.read_excel(
            path, sheet_name=sheet if sheet is not None else 0, dtype=object, engine="calamine"
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
    parsed = uk.fillna(iso).fillna(_academic_year_start(text))
    _reject(text, parsed.isna(), where, "hold dates that are not dd/mm/yyyy or yyyy-mm-dd",
            "Correct them in the file, or re-export the column as dates")
    out[parsed.index] = parsed
    return out


_ACADEMIC_YEAR = r"^(\d{4})[/-]?(\d{2})$"


def _academic_year_start(text: pd.Series) -> pd.Series:
    """Academic years as official statistics write them (``201213``, ``2012/13``,
    ``2012-13``) become their first day, 1 September of the first year."""
    parts = text.str.extract(_ACADEMIC_YEAR)
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[1], errors="coerce")
    valid = (first + 1) % 100 == second
    dates = pd.to_datetime(first.where(valid).astype("Int64").astype("string") + "-09-01",
                           format="%Y-%m-%d", errors="coerce")
    return dates


def _reject(values: pd.Series, bad: pd.Series, where: str, problem: str, advice: str) -> None:
    """Stop with one message naming the rows (file line numbers) that hold bad values."""
    if bad.any():
        examples = ", ".join(repr(v) for v in values[bad].head(3))
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
        if c.allowed is not None:
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
        shown = f" (for example {', '.join(repr(e) for e in examples)})" if len(examples) else ""
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
    frame = raw.rename(columns=source.columns)
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
            f"Columns in the file: {', '.join(raw.columns)}"
        )

    dropped = [c for c in frame.columns if c.lower() in IDENTIFYING_COLUMNS]
    frame = frame.drop(columns=dropped)

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

    rounded: dict[str, int] = {}
    for col in frame.columns:
        spec = specs.get(col)
        where = f"{shown_path}, column '{col}'"
        if spec is None or spec.type == "str":
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

    salt = params.project.pseudonym_salt or params.project.id
    if "pupil_id" in frame.columns:
        frame["pupil_id"] = pseudonymise(frame["pupil_id"], salt)

    _validate(frame, kind, str(shown_path))
    _cross_checks(frame, kind, str(shown_path))
    frame = frame.reset_index(drop=True)

    dates = [c for c in frame.columns if specs.get(c) and specs[c].type == "date"]
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
        dropped_identifiers=dropped,
        rounded=rounded,
        date_range=date_range,
        pupils=int(frame["pupil_id"].nunique()) if "pupil_id" in frame else None,
        schools=int(frame["school_id"].nunique()) if "school_id" in frame else None,
    )
    return frame, report


def _cache_key(params: ProjectParams, name: str, source: DataSource, digest: str) -> str:
    """What a cleaned table depends on: the raw file, its spec, the salt and the kit."""
    from evaluation import __version__

    spec = json.dumps(
        [source.model_dump(mode="json"), params.project.pseudonym_salt or params.project.id,
         digest, __version__, name],
        sort_keys=True,
    )
    return hashlib.sha256(spec.encode()).hexdigest()


def _cache_dir(params: ProjectParams) -> Path:
    return processed_dir(params) / ".cache"


def load_data(params: ProjectParams, *, use_cache: bool = True) -> ProjectData:
    """Read every data source of a project (nothing is written).

    With ``use_cache``, a table that :func:`write_processed` cached from the very same raw
    file (same SHA-256), column mapping and kit version is loaded from the cache instead of
    being read again; anything else is read and checked afresh.
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
            tables[name], reports[name] = cached
        else:
            tables[name], reports[name] = read_source(name, source, params)
    return ProjectData(tables, reports)


def processed_dir(params: ProjectParams) -> Path:
    return params.root / "data" / "processed" / params.project.id


def write_processed(params: ProjectParams, data: ProjectData) -> Path:
    """Write the cleaned tables and an intake manifest to ``data/processed/<project>/``.

    The CSVs are for people; a pickle cache beside them lets report notebooks skip
    re-reading raw files that have not changed.
    """
    out = processed_dir(params)
    cache = _cache_dir(params)
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob("*.pkl"):
        old.unlink()
    for name, frame in data.tables.items():
        frame.to_csv(out / f"{name}.csv", index=False, date_format="%Y-%m-%d")
        report = data.reports[name]
        key = _cache_key(params, name, params.data[name], report.sha256)
        pd.to_pickle((frame, report), cache / f"{name}.{key[:16]}.pkl")
    manifest = {name: asdict(r) for name, r in data.reports.items()}
    (out / "intake.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out
