"""`evalkit inspect FILE`: what the kit would read from a school's export, before any
parameters exist, and the `data:` block of the parameters that would read it.

For a CSV file or each visible sheet of a workbook (or the sheet named) it shows

- the sheets, and which are hidden (never read unless the parameters name them);
- the header row found below any title lines, and what reading involved (encoding,
  delimiter, totals and blank rows dropped: :mod:`evaluation.readers`);
- each column with its inferred type, how many cells are filled, the kit column it is
  matched to and, only where that column cannot hold identifiers, what it holds: for a
  coded column its values that are kit values or built-in codes (others are counted, never
  shown), for a number or date column its range. A column matched to nothing, an
  identifier, a name, a date of birth, an address or free text shows no value at all: the
  allow-list of :mod:`evaluation.tables` and the header words of :data:`PERSONAL_WORDS`
  decide, so a name typed into any column cannot reach the terminal;
- a suggested ``data:`` block (``columns:``, ``wide:`` and ``recode:``), ready to paste into
  the parameters file, with the lines to check written as comments above it. Headers that
  name a measure at a timepoint (``SDQ Total (Autumn)``) become ``wide:`` entries of the
  scores table; headers that name a term (``Aut 2022``, ``Summer term 2023``,
  ``2022/23 Spring``, ``Sum 23``) become ``wide:`` entries of the exclusions table, each
  ``{period_start: DD/MM/YYYY}`` with the first day of that term in the kit's calendar
  (:func:`evaluation.calendar.term_start`); headers that name a month (``Sep 2023``,
  ``September 2023``, ``Sept-23``, ``09/2023``, ``2023-09``) become entries with the first
  day of that month. A header that may name something else (``09/10``, ``2011-12``,
  ``2023/09``) is left unread, never guessed. Half-term headers (``Autumn 1 2023``) get no
  entry: the kit counts by month, term or academic year, so a check says to add each
  term's halves into one term column.

Nothing here writes a file or changes the export.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from evaluation import calendar, codes, readers
from evaluation.codes import FALSE_WORDS, SEASON_WORDS, TRUE_WORDS
from evaluation.errors import DataError
from evaluation.privacy import ID_PATTERNS, IDENTIFYING_COLUMNS
from evaluation.tables import TABLES, WIDE_VALUE, Col

#: Header words (matched as whole words, ignoring case) of columns that may hold a person's
#: name, contact details, an identifier or free text: their values are never shown, whatever
#: the column is matched to.
PERSONAL_WORDS = frozenset({
    "name", "names", "surname", "forename", "forenames", "firstname", "lastname", "first",
    "last", "legal", "preferred", "middle", "initial", "initials", "dob", "birth", "born",
    "address", "postcode", "street", "town", "email", "e-mail", "phone", "telephone", "tel",
    "mobile", "contact", "nhs", "upn", "uln", "adno", "admission", "id", "ids", "number",
    "no", "ref", "reference", "parent", "parents", "carer", "carers", "guardian", "mother",
    "father", "sibling", "notes", "note", "comment", "comments", "remarks", "details",
    "description", "reason", "reasons", "text", "staff", "teacher", "tutor", "keyworker",
    "worker", "lead", "professional", "sw", "social", "doctor", "gp", "username", "login",
})

#: The headers schools' MIS exports use for the kit's columns (compared as words, ignoring
#: case and punctuation). The kit's own names always match too.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "pupil_id": ("adno", "admission number", "admission no", "upn", "pupil no",
                 "pupil number", "pupil id", "pupil ref", "mis id", "student id",
                 "child id", "id"),
    "school_id": ("school", "school name", "school id", "urn", "dfe number", "dfe no",
                  "laestab", "establishment", "setting", "school code"),
    "year_group": ("year", "year group", "nc year", "yr", "year grp", "ncy",
                   "curriculum year"),
    "sex": ("sex", "gender", "legal sex"),
    "sen_status": ("sen", "sen status", "sen provision", "send", "send status",
                   "sen stage", "sen code"),
    "fsm": ("fsm", "fsm eligible", "free school meals", "fsm eligibility"),
    "eal": ("eal", "english as an additional language"),
    "ethnicity": ("ethnicity", "ethnic group", "ethnic origin"),
    "ethnicity_minor": ("ethnicity minor", "ethnicity (minor)", "ethnic subgroup"),
    "group": ("group", "programme group", "programme", "cohort", "intervention group"),
    "measure": ("measure", "assessment", "questionnaire", "instrument"),
    "timepoint": ("timepoint", "time point", "term", "wave", "occasion"),
    "score": ("score", "total", "result", "value"),
    "date": ("date", "assessment date", "date completed"),
    "period_start": ("term start", "period start", "period", "term starting"),
    "roll": ("roll", "number on roll", "nor", "headcount"),
    "suspensions": ("suspensions", "fixed term exclusions", "fixed-term exclusions",
                    "fte", "fixed period exclusions"),
    "permanent_exclusions": ("permanent exclusions", "permanent", "perm exclusions"),
}

#: Words of a header that name a timepoint, in the order of the school year (for seasons)
#: or as they are (baseline / follow-up words).
_SEASON_ORDER = {"autumn": 0, "aut": 0, "spring": 1, "spr": 1, "summer": 2, "sum": 2}
_TIMEPOINT_WORDS = {"baseline": "baseline", "pre": "baseline", "t1": "baseline",
                    "start": "baseline", "follow up": "follow_up", "follow-up": "follow_up",
                    "followup": "follow_up", "post": "follow_up", "t2": "follow_up",
                    "end": "follow_up"}
_WIDE_HEADER = re.compile(
    r"^(?P<measure>.*?)[\s_-]*[(\[]?\s*(?P<when>autumn|aut|spring|spr|summer|sum|baseline|pre|"
    r"post|t1|t2|start|end|follow[\s-]?up)(?:\s+(?:term|\d))?\s*[)\]]?$", re.IGNORECASE)

#: A header naming one term of one year: the season (with or without "term") and a calendar
#: year (``Aut 2022``, ``Sum 23``) or an academic year (``2022/23 Autumn``), either first,
#: after an optional count name (``Suspensions Aut 2022``).
_SEASON = r"(?P<season>autumn|aut|spring|spr|summer|sum)(?:\s+term)?"
_YEAR = r"(?P<year>\d{4}|\d{2})(?:\s*[/-]\s*(?P<end>\d{4}|\d{2}))?"
_TERM_HEADERS = (
    re.compile(rf"^(?P<prefix>.*?)[\s_(\[-]*\b{_SEASON}[\s,_-]*{_YEAR}\s*[)\]]?$",
               re.IGNORECASE),
    re.compile(rf"^(?P<prefix>.*?)[\s_(\[-]*\b{_YEAR}[\s,_-]*{_SEASON}\s*[)\]]?$",
               re.IGNORECASE),
)

#: A header naming one half-term (``Autumn 1 2023``, ``Aut1 23/24``, ``2023/24 Summer 1``,
#: ``Spring 2``): a season followed by 1 or 2 (not by a year's digits: ``Aut 12`` is autumn
#: 2012). The kit has no half-terms (see :func:`_half_term_checks`).
_HALF = (r"(?P<season>autumn|aut|spring|spr|summer|sum)(?:\s+(?:half[\s-]?term|term))?"
         r"[\s_-]*(?P<half>[12])(?!\d)")
_HALF_TERM_HEADERS = (
    re.compile(rf"^(?P<prefix>.*?)[\s_(\[-]*\b{_HALF}[\s,_-]*{_YEAR}\s*[)\]]?$",
               re.IGNORECASE),
    re.compile(rf"^(?P<prefix>.*?)[\s_(\[-]*\b{_YEAR}[\s,_-]*{_HALF}\s*[)\]]?$",
               re.IGNORECASE),
    re.compile(rf"^(?P<prefix>.*?)[\s_(\[-]*\b{_HALF}\s*[)\]]?$", re.IGNORECASE),
)

#: Month names and the abbreviations exports use (``Sept`` as well as ``Sep``).
_MONTHS = {"jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4,
           "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8,
           "august": 8, "sep": 9, "sept": 9, "september": 9, "oct": 10, "october": 10,
           "nov": 11, "november": 11, "dec": 12, "december": 12}
_MONTH_NAME = "(?P<name>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_BEFORE = r"^(?P<prefix>.*?)[\s_(\[-]*\b"
_AFTER = r"\s*[)\]]?$"
#: A header naming one month of one year, after an optional count name: a month's name then
#: a year of four or two digits (``Sep 2023``, ``September 2023``, ``Sept-23``: Excel's
#: mmm-yy), a four-digit year then the name (``2023 September``), month then four-digit year
#: (``09/2023``, ``9-2023``) or ISO ``2023-09``. Not a month: ``09/10`` or ``09/23`` (a day
#: and month, or an academic year), ``2023/09`` (the kit reads yyyy/yy as an academic
#: year), ``23 Sep`` (a day), a full date, and ``2011-12`` (December 2011 or 2011/12).
_MONTH_HEADERS = (
    re.compile(rf"{_BEFORE}{_MONTH_NAME}[\s,_'/-]*(?P<year>\d{{4}}|\d{{2}}){_AFTER}",
               re.IGNORECASE),
    re.compile(rf"{_BEFORE}(?P<year>\d{{4}})[\s,_-]+{_MONTH_NAME}{_AFTER}", re.IGNORECASE),
    re.compile(rf"{_BEFORE}(?P<month>\d{{1,2}})\s*[/.-]\s*(?P<year>\d{{4}}){_AFTER}",
               re.IGNORECASE),
    re.compile(rf"{_BEFORE}(?P<year>\d{{4}})-(?P<month>\d{{2}}){_AFTER}", re.IGNORECASE),
)

#: How many distinct values a coded column may have before its values are not listed (a
#: column with many different values is more like free text than a code).
MAX_CODES_SHOWN = 12


def _words(header: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)?", header.casefold())


def _normal(header: str) -> str:
    return " ".join(_words(header.replace("_", " ")))


def personal(header: str) -> bool:
    """Whether a header suggests the column holds a person's details, an id or free text."""
    words = _words(header.replace("_", " "))
    return (header.strip().casefold() in IDENTIFYING_COLUMNS
            or any(w in PERSONAL_WORDS for w in words))


def match_kit_column(header: str, kind: str | None = None) -> str | None:
    """The kit column a school's header most likely means (None if none clearly)."""
    text = _normal(header)
    names = {c.name for k, cols in TABLES.items() if kind in (None, k) for c in cols}
    if text.replace(" ", "_") in names:
        return text.replace(" ", "_")
    for kit, synonyms in SYNONYMS.items():
        if kit in names and text in synonyms:
            return kit
    return None


@dataclass
class WideColumn:
    """A header that reads as one measure at one timepoint (``SDQ Total (Autumn)``)."""

    measure_text: str
    measure: str | None
    when: str
    timepoint: str | None = None


@dataclass
class TermColumn:
    """A header that reads as one term of a termly series (``Aut 2022``): its
    :func:`evaluation.calendar.term_code` and the exclusions column its cells fill."""

    code: int
    into: str = "suspensions"


@dataclass
class MonthColumn:
    """A header that reads as one month of a monthly series (``Sep 2023``) and the
    exclusions column its cells fill."""

    year: int
    month: int
    into: str = "suspensions"

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.year, self.month, 1)

    @property
    def label(self) -> str:
        return f"{self.start:%B %Y}"


@dataclass
class HalfTermColumn:
    """A header that reads as one half-term (``Autumn 1 2023``): the term it is half of
    (its :func:`evaluation.calendar.term_code`, None if the header gives no year)."""

    half: int
    code: int | None
    into: str = "suspensions"


@dataclass
class ColumnInfo:
    letter: str
    header: str
    type: str
    filled: int
    kit: str | None = None
    wide: WideColumn | None = None
    term: TermColumn | None = None
    month: MonthColumn | None = None
    half_term: HalfTermColumn | None = None
    #: What the column holds, as the terminal may show it (empty: nothing shown), and why.
    shown: str = ""
    withheld: str = ""
    #: Cells of a coded column that are neither kit values nor built-in codes.
    unknown_codes: list[str] = field(default_factory=list)


@dataclass
class SheetReport:
    path: Path
    sheet: str | None
    header_line: int
    rows: int
    notes: list[str]
    columns: list[ColumnInfo]


@dataclass
class Inspection:
    path: Path
    sheets: list[readers.SheetInfo]
    reports: list[SheetReport]
    suggestion: str
    checks: list[str]


def _infer_type(values: pd.Series) -> str:
    present = [v for v in values if not (isinstance(v, str) and not v.strip()) and v is not None
               and not (isinstance(v, float) and pd.isna(v))]
    if not present:
        return "empty"
    if all(isinstance(v, pd.Timestamp) for v in present):
        return "date"
    text = [str(v).strip() for v in present]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present) or all(
            re.fullmatch(r"[-+]?\d+([.,]\d+)?", t) for t in text):
        whole = all(re.fullmatch(r"[-+]?\d+(\.0+)?", t) for t in text)
        return "whole number" if whole else "number"
    if all(t.casefold() in TRUE_WORDS | FALSE_WORDS for t in text):
        return "yes/no"
    if all(re.fullmatch(r"\d{1,2}[/-]\d{1,2}[/-]\d{4}|\d{4}-\d{2}-\d{2}", t) for t in text):
        return "date"
    return "text"


def _wide(header: str, registry: dict) -> WideColumn | None:
    match = _WIDE_HEADER.match(header.strip())
    if not match or not match.group("measure").strip():
        return None
    text = match.group("measure").strip()
    words = set(_words(text))
    # the registry's measures whose names hold every word of the header's measure part,
    # the teacher-rated version first (what a school's tracker usually holds)
    found = sorted((name for name in registry if words <= set(name.split("_"))),
                   key=lambda n: (len(n.split("_")) - len(words), "teacher" not in n, n))
    return WideColumn(text, found[0] if found else None, match.group("when").casefold())


def _full_year(digits: str) -> int:
    # two digits are this century's: school exports are never about the 1900s
    return int(digits) if len(digits) == 4 else 2000 + int(digits)


def _count_column(prefix: str) -> str | None:
    """The exclusions column that the words before a period name (suspensions when there
    are none); None when they name something else (``SDQ Aut 2022`` is a score)."""
    prefix = prefix.strip(" _-([")
    if not prefix:
        return "suspensions"
    into = match_kit_column(prefix, "exclusions")
    return into if into in ("suspensions", "permanent_exclusions") else None


def _academic_start(season: int, year: str, end: str | None) -> int | None:
    """The year a season's academic year starts in: from a calendar year spring and summer
    belong to the year that started the year before; an academic year's two years must be
    consecutive (None if not)."""
    first = _full_year(year)
    if end is not None:
        return first if _full_year(end[-2:]) == first + 1 else None
    return first if season == 0 else first - 1


def _month(header: str) -> MonthColumn | None:
    """The month a header names (None if it names none or may name something else), see
    :data:`_MONTH_HEADERS`."""
    text = header.strip()
    match = next((m for p in _MONTH_HEADERS if (m := p.match(text))), None)
    if match is None:
        return None
    into = _count_column(match.group("prefix"))
    if into is None:
        return None
    year = _full_year(match.group("year"))
    groups = match.groupdict()
    if groups.get("name"):
        month = _MONTHS[groups["name"].casefold()]
    else:
        month = int(groups["month"])
        # "2011-12": December 2011, or the academic year 2011/12 as official statistics
        # write it: left for the user, never guessed
        if len(groups["month"]) == 2 and len(groups["year"]) == 4 and text.find(
                groups["year"]) < text.find(groups["month"]) and month == (year + 1) % 100:
            return None
    if not 1 <= month <= 12:
        return None
    return MonthColumn(year, month, into)


def _half_term(header: str) -> HalfTermColumn | None:
    """The half-term a header names (None if it names none), see
    :data:`_HALF_TERM_HEADERS`; the years read as in :func:`_term`."""
    text = header.strip()
    match = next((m for p in _HALF_TERM_HEADERS if (m := p.match(text))), None)
    if match is None:
        return None
    into = _count_column(match.group("prefix"))
    if into is None:
        return None
    season = _SEASON_ORDER[match.group("season").casefold()]
    code = None
    if match.groupdict().get("year") is not None:
        start = _academic_start(season, match.group("year"), match.group("end"))
        if start is None:
            return None
        code = 3 * start + season
    return HalfTermColumn(int(match.group("half")), code, into)


def _term(header: str) -> TermColumn | None:
    """The term a header names (None if it names none), see :data:`_TERM_HEADERS`.

    A calendar year places spring and summer in the academic year that started the year
    before (``Spr 2023`` is spring 2022/23); an academic year (``2022/23``, ``22-23``) must
    be two consecutive years. Anything before the term must name an exclusions count."""
    text = header.strip()
    match = next((m for p in _TERM_HEADERS if (m := p.match(text))), None)
    if match is None:
        return None
    into = _count_column(match.group("prefix"))
    season = _SEASON_ORDER[match.group("season").casefold()]
    start = _academic_start(season, match.group("year"), match.group("end"))
    if into is None or start is None:
        return None
    return TermColumn(3 * start + season, into)


def _describe(info: ColumnInfo, values: pd.Series, spec: Col | None) -> None:
    """What a column holds, only where it cannot hold identifiers (see the module)."""
    if personal(info.header):
        info.withheld = "may hold names, identifiers or free text: values not shown"
        return
    if spec is None and info.wide is None and info.term is None and info.month is None \
            and info.half_term is None:
        info.withheld = "not a kit column: values not shown"
        return
    if spec is not None and (spec.identifier or spec.pseudonym or spec.free_text):
        info.withheld = "identifiers or free text: values not shown"
        return
    present = values[[not readers._blank(v) for v in values]]
    if info.type in ("number", "whole number"):
        numbers = pd.to_numeric(present.astype(str).str.replace(",", ".", regex=False),
                                errors="coerce").dropna()
        if len(numbers):
            info.shown = f"{numbers.min():g} to {numbers.max():g}"
        return
    if info.type == "date":
        dates = pd.to_datetime(present.map(lambda v: v if isinstance(v, pd.Timestamp)
                                           else pd.NaT), errors="coerce").dropna()
        if len(dates):
            info.shown = f"{dates.min():%d/%m/%Y} to {dates.max():%d/%m/%Y}"
        return
    text = present.astype(str).str.strip()
    distinct = list(dict.fromkeys(text))
    if len(distinct) > MAX_CODES_SHOWN:
        info.withheld = f"{len(distinct)} different values: not shown (free text?)"
        return
    known, unknown = [], []
    allowed = set(spec.allowed or ()) if spec is not None else set()
    for value in distinct:
        kit_value = value in allowed or (spec is not None and spec.type == "bool" and
                                         value.casefold() in TRUE_WORDS | FALSE_WORDS)
        coded = spec is not None and codes.apply_code_list(
            spec.name, pd.Series([value], dtype=object), allowed)[1] > 0
        season = spec is not None and spec.name == "timepoint" and \
            value.casefold() in SEASON_WORDS
        if (kit_value or coded or season) and not any(p.match(value) for p in ID_PATTERNS):
            known.append(value)
        else:
            unknown.append(value)
    info.shown = ", ".join(known)
    if unknown:
        info.unknown_codes = unknown
        info.shown += ("; " if known else "") + (
            f"{len(unknown)} other value{'s' if len(unknown) > 1 else ''} (not shown: give "
            f"them under recode: {info.kit})")


def _inspect_sheet(path: Path, sheet: str | None, header_row: int | None,
                   registry: dict) -> SheetReport:
    expected = {h for synonyms in SYNONYMS.values() for h in synonyms}
    expected |= {c.name for cols in TABLES.values() for c in cols}
    table = readers.read_table(path, sheet=sheet, header_row=header_row, expected=expected,
                               shown=str(path))
    frame = table.frame
    columns: list[ColumnInfo] = []
    used: set[str] = set()
    for i, header in enumerate(frame.columns):
        values = frame[header]
        kind = _infer_type(values)
        filled = int(sum(not readers._blank(v) for v in values))
        info = ColumnInfo(readers.column_letter(i), header, kind, filled)
        kit = match_kit_column(header)
        if kit is not None and kit not in used:
            info.kit = kit
            used.add(kit)
        elif kind in ("number", "whole number", "empty") and not personal(header):
            info.term = _term(header)
            if info.term is None:
                info.half_term = _half_term(header)
            if info.term is None and info.half_term is None:
                info.month = _month(header)
            if info.term is None and info.half_term is None and info.month is None:
                info.wide = _wide(header, registry)
        spec = next((c for cols in TABLES.values() for c in cols if c.name == info.kit), None)
        _describe(info, values, spec)
        columns.append(info)
    _timepoints([c.wide for c in columns if c.wide is not None])
    return SheetReport(path, table.sheet, table.header_line, len(frame), list(table.notes),
                       columns)


def _timepoints(wide: list[WideColumn]) -> None:
    """Baseline and follow-up for each measure's wide columns: baseline/follow-up words as
    they are; seasons in the order of the school year (the earliest is the baseline, the
    latest the follow-up; more than two seasons are left for the user to say)."""
    by_measure: dict[str | None, list[WideColumn]] = {}
    for w in wide:
        if w.when in _TIMEPOINT_WORDS:
            w.timepoint = _TIMEPOINT_WORDS[w.when]
        else:
            by_measure.setdefault(w.measure, []).append(w)
    for group in by_measure.values():
        seasons = sorted({_SEASON_ORDER[w.when] for w in group})
        if len(seasons) == 2:
            for w in group:
                w.timepoint = ("baseline" if _SEASON_ORDER[w.when] == seasons[0]
                               else "follow_up")


def _suggest(report: SheetReport, shown_path: str) -> tuple[dict, list[str]]:
    """The data sources that would read this sheet, and the lines to check."""
    checks: list[str] = []
    base: dict = {"path": shown_path}
    if report.sheet is not None:
        base["sheet"] = report.sheet
    if report.header_line > 1:
        base["header_row"] = report.header_line
    mapped = {c.header: c.kit for c in report.columns if c.kit}
    wide = [c for c in report.columns if c.wide is not None]
    terms = [c for c in report.columns if c.term is not None]
    months = [c for c in report.columns if c.month is not None]
    if months and terms:
        # a sheet of months with term totals beside them: the kit's series steps by one
        # unit, and a term's total with its months would count the same events twice
        checks.append(f"{_listed([c.header for c in terms])} "
                      f"{'name terms' if len(terms) > 1 else 'names a term'}, the other period "
                      "columns months: a series is either monthly or termly, and a term's "
                      "total beside its months would count them twice, so the terms are left "
                      "out")
        terms = []
    checks += _half_term_checks([c for c in report.columns if c.half_term is not None])
    # the columns with one period each: terms or months (never both, see above)
    terms = months or terms
    # the exclusions columns the period headers' cells fill (suspensions unless named)
    term_fills = {_period(c)[1] for c in terms}
    sources: dict[str, dict] = {}
    for kind in ("pupils", "scores", "exclusions"):
        kit_names = {c.name for c in TABLES[kind]}
        own = {h: k for h, k in mapped.items() if k in kit_names}
        if kind == "scores" and wide:
            own = {h: k for h, k in own.items() if k in ("pupil_id", "school_id")}
        if kind == "exclusions" and terms:
            # a column of the file may not also be filled by the `wide:` block
            own = {h: k for h, k in own.items() if k not in {"period_start", *term_fills}}
        specific = set(own.values()) - {"pupil_id", "school_id"}
        if kind == "pupils" and (not specific or "pupil_id" not in own.values()):
            continue
        if kind == "scores" and not wide and not {"measure", "score"} <= specific:
            continue
        if kind == "exclusions" and not terms and not {"period_start", "suspensions"} <= \
                specific:
            continue
        source = {**base, "columns": {h: k for h, k in own.items() if h != k}}
        filled_by_wide = {"measure", "timepoint", "score"} if kind == "scores" and wide else set()
        if kind == "exclusions" and terms:
            filled_by_wide = {"period_start", *term_fills}
        for col in TABLES[kind]:
            if col.required and col.name not in own.values() and col.name not in filled_by_wide:
                checks.append(f"the {kind} table needs a column '{col.name}' that no header "
                              f"matched: add `'<their header>': {col.name}` under "
                              f"data.{kind}.columns (docs/tables.md)")
        recode = {}
        for c in report.columns:
            if c.kit in own.values() and c.unknown_codes:
                recode[c.kit] = {"<value in the file>": "<kit value>"}
                checks.append(f"'{c.header}' ({c.kit}) holds {len(c.unknown_codes)} value(s) "
                              "that are neither the kit's values nor codes it knows: "
                              f"map each under data.{kind}.recode.{c.kit}")
        if kind == "scores" and wide:
            entries = {}
            for c in wide:
                w = c.wide
                assert w is not None
                entries[c.header] = {"measure": w.measure or "<measure name>",
                                     "timepoint": w.timepoint or "<baseline or follow_up>"}
                if w.measure is None:
                    checks.append(f"'{c.header}': no measure of the kit is called "
                                  f"'{w.measure_text}'; give its name (or add it under "
                                  "`measures:`)")
                if w.timepoint is None:
                    checks.append(f"'{c.header}': say whether '{w.when}' is the baseline or "
                                  "the follow-up")
            measures = {e["measure"] for e in entries.values()}
            for m in sorted(m for m in measures if m.startswith("sdq_teacher_")):
                checks.append(f"{m}: the SDQ as teachers fill it in; if parents or pupils "
                              f"filled it in, write {m.replace('teacher', 'parent')} or "
                              f"{m.replace('teacher', 'self')}")
            source["wide"] = entries
        if kind == "exclusions" and terms:
            source["wide"] = _term_entries(terms, checks)
        if recode:
            source["recode"] = recode
        if not source["columns"]:
            del source["columns"]
        sources[kind] = source
    return sources, checks


def _period(c: ColumnInfo) -> tuple[pd.Timestamp, str, str]:
    """A term or month column's first day, the column its cells fill, and its name."""
    if c.month is not None:
        return c.month.start, c.month.into, c.month.label
    assert c.term is not None
    return calendar.term_start(c.term.code), c.term.into, calendar.term_label(c.term.code)


def _listed(headers: list[str]) -> str:
    return ", ".join(f"'{h}'" for h in headers)


def _term_entries(terms: list[ColumnInfo], checks: list[str]) -> dict[str, dict]:
    """The `wide:` entries of term (or month) headers: each period's first day in the kit's
    calendar, written dd/mm/yyyy as the parameters take dates; a period named twice is left
    out (intake would refuse the block, as a period counted twice would be wrong)."""
    entries: dict[str, dict] = {}
    seen: dict[tuple[pd.Timestamp, str], str] = {}
    for c in terms:
        start, into, label = _period(c)
        if (start, into) in seen:
            checks.append(f"'{c.header}' and '{seen[start, into]}' both read as {label}: "
                          f"'{c.header}' is left out; keep the right one")
            continue
        seen[start, into] = c.header
        entry: dict[str, str] = {"period_start": f"{start:%d/%m/%Y}"}
        if into != WIDE_VALUE["exclusions"]:
            entry["into"] = into
        entries[c.header] = entry
    if any(c.month is not None for c in terms):
        checks += _monthly_checks(sorted({start for start, _ in seen}))
    else:
        checks.append("period_start: each term's first day as the kit's calendar defines it "
                      "(autumn 1 August, spring 1 January, summer Easter Monday), whatever "
                      "the school's own term dates: the kit counts by term")
    return entries


def _monthly_checks(starts: list[pd.Timestamp]) -> list[str]:
    """What to check about a monthly series: the interrupted time series infers a series'
    frequency from its dates (:meth:`evaluation.its.Periods.infer`), and reads months all
    in months a term can start in (or all in one month) as terms (or years)."""
    from evaluation.its import Periods

    found = Periods.infer(pd.DatetimeIndex(starts).to_numpy(dtype="datetime64[ns]"))
    checks = ["period_start: each month's first day; the kit counts these exclusions by "
              "month"]
    if found.frequency != "monthly":
        why = ("all in one month of the year" if found.frequency == "yearly" else
               "all in months a term can start in (January, March, April, August, September)")
        checks.append(f"these months are {why}, so the interrupted time series would read "
                      f"them as {found.frequency} periods: add the series' other months")
    return checks


def _half_term_checks(halves: list[ColumnInfo]) -> list[str]:
    """Why half-term columns get no `wide:` entry, and what to do.

    The kit counts a series by month, term or academic year: its calendar has no
    half-terms and the interrupted time series fits monthly, termly or yearly series
    (:data:`evaluation.its.FREQUENCIES`). A half-term's first day as `period_start` would
    be wrong either way: intake refuses two rows of a school in the same term (a period
    entered twice) and the time series would read the dates as months with gaps. So the
    two halves of a term are added into one term column, which inspect then reads."""
    if not halves:
        return []
    by_term: dict[tuple[int | None, str], list[str]] = {}
    for c in halves:
        h = c.half_term
        assert h is not None
        by_term.setdefault((h.code, h.into), []).append(c.header)
    checks = []
    for (code, _), headers in by_term.items():
        if code is None:
            what, name = "half-terms (no year given)", "'2023/24 Autumn'"
        else:
            label = calendar.term_label(code)  # "2023/24 autumn", which _term reads
            what, name = f"the halves of {label}", f"'{label[:8]}{label[8:].capitalize()}'"
        checks.append(f"{_listed(headers)}: {what}. The kit counts exclusions by month, term "
                      "or academic year, not by half-term (its calendar has none, and two "
                      "half-terms' first days would be one term entered twice), so these "
                      "columns are not read: in the file, add each term's two halves into "
                      f"one column named for the term (e.g. {name}) and run inspect again")
    return checks


def inspect_file(path: str | Path, sheet: str | None = None, header_row: int | None = None,
                 root: str | Path | None = None, measures: dict | None = None) -> Inspection:
    """Inspect a CSV file or workbook (each visible sheet, or ``sheet``); see the module.

    ``root``: the project folder, so that the suggested ``path:`` is relative to it.
    """
    from evaluation.measures import load_registry

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    registry = load_registry(measures or {})
    try:
        shown = str(path.resolve().relative_to(Path(root or Path.cwd()).resolve()))
    except ValueError:
        shown = str(path)
    if path.suffix.lower() == ".csv":
        infos: list[readers.SheetInfo] = []
        reports = [_inspect_sheet(path, None, header_row, registry)]
    elif path.suffix.lower() in (".xlsx", ".xlsm"):
        infos = readers.sheets(path, shown)
        if sheet is not None:
            names = [readers.choose_sheet(infos, sheet, shown)]
        else:
            names = [s.name for s in infos if not s.hidden]
        reports = [_inspect_sheet(path, name, header_row, registry) for name in names]
    else:
        raise DataError(f"{path}: the kit reads .csv, .xlsx and .xlsm files; save it as one")
    sources: dict[str, dict] = {}
    checks: list[str] = []
    for report in reports:
        found, more = _suggest(report, shown)
        for kind, source in found.items():
            name = kind if kind not in sources else f"{kind}_{len(sources)}"
            if name != kind:
                source = {"kind": kind, **source}
            sources[name] = source
        checks += more
    text = ""
    if sources:
        text = yaml.safe_dump({"data": sources}, sort_keys=False, default_flow_style=None,
                              allow_unicode=True, width=100)
    return Inspection(path, infos, reports, text, checks)


def render(inspection: Inspection) -> str:
    """The inspection as the terminal shows it."""
    lines = [f"{inspection.path}"]
    if inspection.sheets:
        listed = ", ".join(f"'{s.name}'" + (" (hidden: never read unless named with "
                                             "`sheet:`)" if s.hidden else "")
                           for s in inspection.sheets)
        lines.append(f"  sheets: {listed}")
    for report in inspection.reports:
        where = f"sheet '{report.sheet}'" if report.sheet else "the file"
        lines.append(f"\n  {where}: headers on line {report.header_line}, {report.rows} rows "
                     "of data")
        lines += [f"    {note}" for note in report.notes]
        width = max((len(c.header) for c in report.columns), default=0)
        width = min(width, 32)
        for c in report.columns:
            if c.kit:
                target = f"-> {c.kit}"
            elif c.wide is not None:
                target = (f"-> {c.wide.measure or '?'} at {c.wide.timepoint or '?'} (wide)")
            elif c.term is not None and any(m.month is not None for m in report.columns):
                target = "   (not read: a term beside months; see the checks below)"
            elif c.term is not None:
                target = f"-> {c.term.into} in {calendar.term_label(c.term.code)} (wide)"
            elif c.month is not None:
                target = f"-> {c.month.into} in {c.month.label} (wide)"
            elif c.half_term is not None:
                target = "   (not read: a half-term; see the checks below)"
            else:
                target = "   (not read: dropped by the kit)"
            what = c.shown or c.withheld
            lines.append(f"    {c.letter:>2} {_quoted(c.header):<{width + 2}} {c.type:<12} "
                         f"{c.filled:>4} filled  {target}" + (f"  [{what}]" if what else ""))
    if inspection.suggestion:
        lines.append("\nSuggested parameters (paste into your parameters file; check the "
                     "lines below):")
        lines += [f"# check: {c}" for c in inspection.checks]
        lines.append(inspection.suggestion.rstrip())
    else:
        lines.append("\nNo kit table recognised: map the columns by hand (docs/tables.md).")
        lines += [f"# check: {c}" for c in inspection.checks]
    return "\n".join(lines)


def _quoted(text: str) -> str:
    """A header as the terminal may print it: control characters escaped."""
    return "'" + "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text) + "'"


__all__ = ["Inspection", "inspect_file", "match_kit_column", "personal", "render"]

