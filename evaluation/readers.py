"""Reading the files that Excel and school MIS exports produce, before intake looks at values.

:func:`read_table` turns one CSV file or Excel sheet into a grid of cells with the file's
own line numbers, whatever the export looked like:

- **Encodings** (CSV): UTF-8, UTF-8 with a byte-order mark, UTF-16 (Excel's "Unicode
  text") and Windows-1252 (Excel's "CSV" on a Windows PC in the UK). They are told apart
  by rule rather than by a statistical detector, because these four are what the exports
  produce and a detector can guess a rarer code page from a few accented names; anything
  else (a binary file, a file with control characters) is refused.
- **Delimiters** (CSV): comma, semicolon or tab, whichever splits the first lines into the
  most consistent number of columns.
- **Sheets** (Excel): a hidden sheet is never read unless the parameters name it; with no
  `sheet:` a workbook must have exactly one visible sheet (else the message lists them); a
  wrong sheet name is refused with the list of sheets.
- **The header row**: the line holding the headers the parameters expect (or, failing
  that, the first line that looks like a header), so title lines above it are skipped; or
  the line the parameters give as `header_row:`.
- **Rows that are not data**: blank rows and totals rows ("Total", "Grand total", ...) are
  dropped, and each drop is noted.
- **Formulas without saved values** (Excel files written by a program rather than saved by
  Excel): their cells are listed, so intake can refuse them with a message saying to open
  and save the file in Excel (else they would read as empty cells).

The cells are returned as Excel gives them (numbers, dates as :class:`pandas.Timestamp`) or
as text; nothing is typed or recoded here: that is intake's job (``evaluation.intake``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

import pandas as pd

from evaluation.errors import DataError

#: How far down a file the header row is looked for.
HEADER_SEARCH_LINES = 30
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
#: First cells of a row that make it a totals row rather than a pupil or a school.
TOTALS_WORDS = frozenset({"total", "totals", "grand total", "sub-total", "subtotal",
                          "sub total", "sum", "average", "mean", "overall"})

_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"


@dataclass
class SheetInfo:
    name: str
    hidden: bool


@dataclass
class RawTable:
    """One table as the file holds it: headers, cells, and what reading it involved."""

    #: Cells (text, or Excel numbers and :class:`pandas.Timestamp`), columns named by the
    #: file's headers, index = the file's own line numbers (1-based; Excel's row numbers).
    frame: pd.DataFrame
    #: The file's line holding the headers.
    header_line: int
    #: "file.xlsx, sheet 'Pupils'" or "file.csv": how messages name the table.
    where: str
    #: What was noticed and done (encoding, delimiter, title lines skipped, rows dropped),
    #: in words that quote no cell of the data.
    notes: list[str] = field(default_factory=list)
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    #: Excel cells holding a formula with no saved value: (line, header) each.
    uncached_formulas: list[tuple[int, str]] = field(default_factory=list)
    #: Excel cells holding an error (#N/A, #DIV/0!, ...): (line, header) each.
    error_cells: list[tuple[int, str]] = field(default_factory=list)
    #: The workbook counts dates from 1904 (old Mac Excel) rather than 1900.
    date1904: bool = False


# --- text files ------------------------------------------------------------------------

def decode(data: bytes, shown: str) -> tuple[str, str]:
    """The text of a CSV file and the name of its encoding (see the module docstring)."""
    if data.startswith(codecs.BOM_UTF8):
        return _decode(data[3:], "utf-8", shown), "UTF-8 with BOM"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(data, "utf-16", shown), "UTF-16"
    binary = DataError(f"{shown}: is not a text file (it holds binary data). Save the table "
                       "from Excel as CSV UTF-8 or .xlsx")
    head = data[:4096]
    if b"\x00" in head:
        # UTF-16 without a byte-order mark: ASCII text has a zero in every other byte.
        even, odd = head[0::2], head[1::2]
        for zeros, other, encoding in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
            if zeros.count(0) > 0.3 * len(zeros) and other.count(0) == 0:
                try:
                    return _decode(data, encoding, shown), "UTF-16"
                except DataError:
                    raise binary from None
        raise binary
    try:
        return _decode(data, "utf-8", shown), "UTF-8"
    except DataError as exc:
        if "control characters" in str(exc):
            raise
    return _decode(data, "cp1252", shown), "Windows-1252"


def _decode(data: bytes, encoding: str, shown: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise DataError(
            f"{shown}: its characters are in none of the encodings Excel and MIS exports use "
            "(UTF-8, UTF-16, Windows-1252). Open it in Excel and save it as CSV UTF-8"
        ) from None
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text):
        raise DataError(f"{shown}: is not a text file (it holds control characters). Save "
                        "the table from Excel as CSV UTF-8 or .xlsx")
    return text


def sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: the one that splits the first lines most consistently
    (ties go to the comma)."""
    lines = text.splitlines()[:60]
    best, best_score = ",", (False, 0.0, 0)
    for delimiter in DELIMITERS:
        widths = [len(r) for r in csv.reader(lines, delimiter=delimiter)
                  if any(c.strip() for c in r)]
        if not widths:
            continue
        mode = max(set(widths), key=widths.count)
        score = (mode > 1, widths.count(mode) / len(widths), mode)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_grid(path: Path, shown: str) -> tuple[list[list], str, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{shown}: could not be read ({exc.strerror or exc})") from None
    if not data.strip():
        raise DataError(f"{shown}: the file is empty. Export the table again")
    text, encoding = decode(data, shown)
    delimiter = sniff_delimiter(text)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                               skipinitialspace=True))
    except csv.Error as exc:
        raise DataError(f"{shown}: could not be read as CSV ({exc}). Save it again from "
                        "Excel as CSV UTF-8") from None
    return rows, encoding, delimiter


# --- Excel workbooks -------------------------------------------------------------------

def sheets(path: Path, shown: str | None = None) -> list[SheetInfo]:
    """The worksheets of a workbook in order, with whether each is hidden."""
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    book = _open_book(path, shown or str(path))
    return [SheetInfo(m.name, m.visible != SheetVisibleEnum.Visible)
            for m in book.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]


def _open_book(path: Path, shown: str):
    from python_calamine import CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # a corrupt, encrypted or half-written file
        raise DataError(
            f"{shown}: could not be read as an Excel workbook ({type(exc).__name__}). Open it "
            "in Excel and save it again as .xlsx (or export the table as CSV UTF-8)"
        ) from None


def _listed(infos: list[SheetInfo]) -> str:
    return ", ".join(f"'{s.name}'" + (" (hidden)" if s.hidden else "") for s in infos)


def choose_sheet(infos: list[SheetInfo], sheet: str | int | None, shown: str) -> str:
    """The sheet to read: the one named (a hidden sheet only so), else the only visible one."""
    visible = [s for s in infos if not s.hidden]
    if sheet is None:
        if len(visible) == 1:
            return visible[0].name
        if not visible:
            raise DataError(f"{shown}: the workbook has no visible sheet. Name the sheet that "
                            f"holds the table with `sheet:` (sheets: {_listed(infos)})")
        hidden = sum(s.hidden for s in infos)
        also = f"; {hidden} hidden sheet{'s are' if hidden > 1 else ' is'} never read unless " \
               "named" if hidden else ""
        raise DataError(
            f"{shown}: the workbook has {len(visible)} visible sheets ({_listed(visible)}){also}."
            " Say which holds the table with `sheet: <name>` in the parameters")
    if isinstance(sheet, int):
        if not 0 <= sheet < len(infos):
            raise DataError(f"{shown}: there is no sheet number {sheet} (sheets, from 0: "
                            f"{_listed(infos)}). Set `sheet:` to the name of the sheet")
        chosen = infos[sheet]
        if chosen.hidden:
            raise DataError(f"{shown}: sheet number {sheet} is '{chosen.name}', which is "
                            f"hidden. If it really holds the table, name it: `sheet: "
                            f"'{chosen.name}'`")
        return chosen.name
    for s in infos:
        if s.name == sheet:
            return s.name
    folded = [s for s in infos if s.name.strip().casefold() == str(sheet).strip().casefold()]
    if len(folded) == 1:
        return folded[0].name
    raise DataError(f"{shown}: there is no sheet called '{sheet}'. Sheets in the workbook: "
                    f"{_listed(infos)}. Set `sheet:` to one of them")


def _cell_value(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        # Excel stores every number as a float: a whole one is an int, so that an id typed
        # as 1001 reads "1001" (as in a CSV), not "1001.0", and joins across tables.
        return int(value)
    if isinstance(value, str | float | int):  # (bool is an int)
        return value
    if value is None:
        return ""
    try:
        return pd.Timestamp(value)  # date, datetime
    except (TypeError, ValueError):
        return str(value)  # times, durations, error cells: text, checked as such later


def _excel_grid(path: Path, sheet: str | int | None, shown: str, nrows: int | None = None
                ) -> tuple[list[list], str, dict[str, list[tuple[int, int]]], bool]:
    infos = sheets(path, shown)
    name = choose_sheet(infos, sheet, shown)
    book = _open_book(path, shown)
    try:
        rows = book.get_sheet_by_name(name).to_python(skip_empty_area=False, nrows=nrows)
    except Exception as exc:
        raise DataError(f"{shown}, sheet '{name}': could not be read ({type(exc).__name__}). "
                        "Open the file in Excel and save it again") from None
    grid = [[_cell_value(v) for v in row] for row in rows]
    if nrows is not None:
        return grid, name, {}, False
    uncached, errors, date1904 = _formula_scan(path, [s.name for s in infos].index(name))
    return grid, name, {"uncached": uncached, "errors": errors}, date1904


def _formula_scan(path: Path, position: int
                  ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], bool]:
    """(row, column) (0-based) of each formula cell with no saved value and of each error
    cell (#N/A, #DIV/0!, ...) in the sheet at ``position``, and whether the workbook counts
    dates from 1904.

    Read from the workbook's XML because the readers give both kinds of cell as empty: a
    program that writes formulas (rather than Excel) leaves the result to be computed on
    opening, and an error is no value.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            book = ElementTree.fromstring(zf.read("xl/workbook.xml"))
            pr = book.find(f"{_MAIN_NS}workbookPr")
            date1904 = pr is not None and pr.get("date1904", "0") in ("1", "true")
            sheet_elems = [e for e in book.iter(f"{_MAIN_NS}sheet")]
            rid = sheet_elems[position].get(f"{_REL_NS}id")
            rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
            target = next(r.get("Target") for r in rels.iter(f"{_PKG_REL_NS}Relationship")
                          if r.get("Id") == rid)
            member = (target.lstrip("/") if target.startswith("/")
                      else str(PurePosixPath("xl") / target))
            found, errors = [], []
            content = zf.read(member)
            if not re.search(rb'<(\w+:)?f[ >/]|\bt="e"', content):
                return [], [], date1904  # no formula, no error: the usual case, decided quickly
            with zf.open(member) as fh:
                for _, elem in ElementTree.iterparse(fh):
                    if elem.tag != f"{_MAIN_NS}c":
                        continue
                    if elem.get("t") == "e":
                        errors.append(_cell_position(elem.get("r", "")))
                    formula = elem.find(f"{_MAIN_NS}f")
                    if formula is not None:
                        value = elem.find(f"{_MAIN_NS}v")
                        empty = value is None or not (value.text or "")
                        if empty and elem.get("t") != "str":
                            found.append(_cell_position(elem.get("r", "")))
                    elem.clear()
    except (KeyError, IndexError, StopIteration, zipfile.BadZipFile, ElementTree.ParseError):
        return [], [], False  # not an xlsx laid out as usual: calamine has read it already
    return ([p for p in found if p is not None], [p for p in errors if p is not None],
            date1904)


def _cell_position(ref: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    if not match:
        return None
    col = 0
    for ch in match.group(1):
        col = col * 26 + ord(ch) - 64
    return int(match.group(2)) - 1, col - 1


def column_letter(index: int) -> str:
    """Excel's letter for a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# --- the table in the grid -------------------------------------------------------------

def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and value != value)


def header_text(cell: object) -> str:
    """A cell as a header: text stripped, whole numbers without ".0", dates as Excel shows
    them in the UK (a termly sheet's headers are often dates)."""
    if _blank(cell):
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, pd.Timestamp):
        return cell.strftime("%d/%m/%Y" if cell == cell.normalize() else "%d/%m/%Y %H:%M")
    return str(cell).strip()


def _text_cells(row: list) -> list[str]:
    return [t for t in (header_text(v) for v in row) if t]


def find_header(grid: list[list], expected: set[str]) -> int:
    """The 0-based row of the headers: the row with the most cells among ``expected``
    (headers compared ignoring case and spaces), else the first row that looks like a
    header (at least two cells, all text, at least half as wide as the widest row)."""
    top = grid[:HEADER_SEARCH_LINES]
    wanted = {h.strip().casefold() for h in expected}
    if wanted:
        scores = [sum(c.casefold() in wanted for c in _text_cells(r)) for r in top]
        best = max(scores, default=0)
        if best >= min(2, len(wanted)):
            return scores.index(best)
    widths = [sum(not _blank(v) for v in r) for r in top]
    widest = max(widths, default=0)
    for i, row in enumerate(top):
        filled = [v for v in row if not _blank(v)]
        if len(filled) >= 2 and len(filled) >= widest / 2 and all(
                isinstance(v, str) for v in filled):
            return i
    return 0


def _headers(cells: list, shown: str, expected: set[str]) -> list[str]:
    """Header texts; a blank header becomes '(column C)' and a repeated one 'X (2)', but a
    header the parameters use must be there once."""
    out: list[str] = []
    wanted = {h.strip().casefold() for h in expected}
    for i, cell in enumerate(cells):
        text = header_text(cell)
        if not text:
            text = f"(column {column_letter(i)})"
        if text in out:
            if text.casefold() in wanted:
                raise DataError(f"{shown}: the header '{text}' appears twice. Rename one of "
                                "the two columns in the file so it is clear which to read")
            n = 2
            while f"{text} ({n})" in out:
                n += 1
            text = f"{text} ({n})"
        out.append(text)
    return out


def _is_totals(row: list) -> bool:
    first = next((v for v in row if not _blank(v)), None)
    return isinstance(first, str) and first.strip().rstrip(":").casefold() in TOTALS_WORDS


def _lines_text(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:5])
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def read_headers(path: Path, *, sheet: str | int | None = None,
                 header_row: int | None = None,
                 expected: set[str] | frozenset[str] = frozenset(),
                 shown: str | None = None) -> list[str]:
    """The headers :func:`read_table` would find, reading only the top of an Excel sheet."""
    shown = shown or str(path)
    if path.suffix.lower() == ".csv":
        return list(read_table(path, sheet=sheet, header_row=header_row, expected=expected,
                               shown=shown).frame.columns)
    limit = max(HEADER_SEARCH_LINES, header_row or 0)
    grid, name, _, _ = _excel_grid(path, sheet, shown, nrows=limit)
    where = f"{shown}, sheet '{name}'"
    top = header_row - 1 if header_row is not None else find_header(grid, set(expected))
    if top >= len(grid):
        raise DataError(f"{where}: `header_row: {header_row}` is beyond the last line")
    return _headers(grid[top], where, set(expected))


def read_table(path: Path, *, sheet: str | int | None = None, header_row: int | None = None,
               expected: set[str] | frozenset[str] = frozenset(),
               shown: str | None = None) -> RawTable:
    """Read a CSV file or one Excel sheet as a table of raw cells (see the module docstring).

    ``expected``: the headers the parameters name (and the kit's column names), used to
    find the header row below any title lines; ``header_row`` (1-based) overrides the search.
    """
    shown = shown or str(path)
    notes: list[str] = []
    special: dict[str, list[tuple[int, int]]] = {}
    encoding = delimiter = sheet_name = None
    date1904 = False
    if path.suffix.lower() == ".csv":
        grid, encoding, delimiter = _csv_grid(path, shown)
        where = shown
        notes.append(f"read as {encoding} text, {DELIMITERS[delimiter]}-separated")
    else:
        grid, sheet_name, special, date1904 = _excel_grid(path, sheet, shown)
        where = f"{shown}, sheet '{sheet_name}'"
    width = max((len(r) for r in grid), default=0)
    grid = [list(r) + [""] * (width - len(r)) for r in grid]
    if not any(not _blank(v) for r in grid for v in r):
        raise DataError(f"{where}: holds no data. Check that this is the right "
                        f"{'sheet' if sheet_name else 'file'}")

    if header_row is not None:
        if header_row > len(grid):
            raise DataError(f"{where}: `header_row: {header_row}` is beyond the last line "
                            f"({len(grid)}). Give the line that holds the headers")
        top = header_row - 1
    else:
        top = find_header(grid, set(expected))
        if top:
            notes.append(f"headers found on line {top + 1}; the {top} line"
                         f"{'s' if top > 1 else ''} above (titles) skipped")
    headers = _headers(grid[top], where, set(expected))
    body = grid[top + 1:]
    lines = list(range(top + 2, top + 2 + len(body)))

    keep_rows, blank_rows, totals_rows = [], [], []
    for line, row in zip(lines, body, strict=True):
        if all(_blank(v) for v in row):
            blank_rows.append(line)
        elif _is_totals(row):
            totals_rows.append(line)
        else:
            keep_rows.append((line, row))
    last = keep_rows[-1][0] if keep_rows else top + 1
    inner_blank = [n for n in blank_rows if n < last]
    if totals_rows:
        notes.append(f"{_lines_text(totals_rows)} look{'s' if len(totals_rows) == 1 else ''} "
                     "like totals rather than data and were dropped")
    if inner_blank:
        notes.append(f"{len(inner_blank)} blank row{'s' if len(inner_blank) > 1 else ''} "
                     "between the data dropped")
    if len(blank_rows) > len(inner_blank):
        notes.append("blank rows after the data dropped")

    frame = pd.DataFrame([r for _, r in keep_rows], columns=headers,
                         index=pd.Index([n for n, _ in keep_rows], dtype="int64"), dtype=object)
    if not keep_rows:
        frame = pd.DataFrame({h: pd.Series(dtype=object) for h in headers})
        frame.index = pd.Index([], dtype="int64")
    # Columns with neither a header nor any value are nothing (Excel's used range).
    empty = [h for i, h in enumerate(headers)
             if h.startswith("(column ") and all(_blank(r[i]) for _, r in keep_rows)]
    frame = frame.drop(columns=empty)
    kept_lines = set(frame.index)

    def located(cells: list[tuple[int, int]]) -> list[tuple[int, str]]:
        return [(r + 1, headers[c]) for r, c in cells
                if r + 1 in kept_lines and c < len(headers) and headers[c] in frame.columns]

    return RawTable(frame=frame, header_line=top + 1, where=where, notes=notes,
                    sheet=sheet_name, encoding=encoding, delimiter=delimiter,
                    uncached_formulas=located(special.get("uncached", [])),
                    error_cells=located(special.get("errors", [])), date1904=date1904)
