"""Data-entry workbooks: what `evalkit new` writes so a school collecting new data fills in
something the kit reads without any column mapping.

:func:`write_entry_workbook` reads a theory of change, works out which of the kit's tables
its outcomes need (:func:`tables_needed`) and writes an Excel workbook with

- an **Instructions** sheet: what each sheet is for, one line per column (what it holds,
  its type, the values allowed) and the parameters lines that read the sheet;
- **one sheet per table**, named after the table, whose first line holds the kit's own
  column names (``evaluation.tables``), so the parameters need no ``columns:`` mapping;
- **drop-down lists** (Excel data validation) on the coded columns: the kit's allowed
  values (SEN status, sex, timepoint, closure outcome...), Y/N for yes/no columns and, for
  ``measure``, the measures the theory of change names; date columns are formatted as
  dates and number columns accept only numbers in their range;
- a hidden **Lists** sheet holding the drop-down values (a list typed into the validation
  itself is limited to 255 characters, too short for the DfE's ethnic groups). A hidden
  sheet is never read by intake unless named, so it is no data.

The workbook holds no data and no formula; writing it never overwrites a file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from evaluation.tables import TABLES, Col

#: The tables each analysis reads (and the pupils table, which every project describes).
ANALYSIS_TABLES: dict[str, tuple[str, ...]] = {
    "baseline_followup": ("pupils", "scores"),
    "its": ("exclusions",),
    "referral_tracking": ("pupils", "referrals", "interventions", "reviews"),
    "survey": ("survey_responses",),
    "audit": ("audit_ratings",),
}
#: Referral-tracking measures that need a table of their own.
MEASURE_TABLES: dict[str, str] = {"attendance_pct": "attendance", "suspensions": "suspensions"}

#: Rows given drop-down lists and formats (a school adds more by copying a row down).
ENTRY_ROWS = 1000
_BOOL_VALUES = ("Y", "N")
_TYPE_WORDS = {"str": "text", "date": "date (dd/mm/yyyy)", "bool": "Y or N",
               "int": "whole number", "float": "number"}
_WHAT = {
    "pupil_id": "the pupil's admission number or UPN (replaced by a pseudonym when read; "
                "never a name)",
    "school_id": "the school (its name or DfE number, the same spelling throughout)",
    "measure": "the measure's name in the kit",
    "timepoint": "baseline or follow_up",
    "score": "the total score",
    "year_group": "national curriculum year (0 for Reception, -1 N2, -2 N1)",
}


def tables_needed(toc: dict) -> list[str]:
    """The kit's tables a theory of change's outcomes need, pupils first."""
    needed: list[str] = ["pupils"]
    for outcome in toc.get("outcomes") or []:
        if not isinstance(outcome, dict):
            continue
        kinds = list(ANALYSIS_TABLES.get(str(outcome.get("analysis")), ()))
        if outcome.get("analysis") == "referral_tracking":
            extra = MEASURE_TABLES.get(str(outcome.get("measure")))
            kinds += [extra] if extra else []
        needed += [k for k in kinds if k in TABLES and k not in needed]
    return needed


def _measures(toc: dict) -> list[str]:
    return sorted({str(o["measure"]) for o in toc.get("outcomes") or []
                   if isinstance(o, dict) and o.get("analysis") == "baseline_followup"
                   and o.get("measure")})


def _choices(col: Col, toc: dict) -> tuple[str, ...] | None:
    if col.type == "bool":
        return _BOOL_VALUES
    if col.name == "measure":
        return tuple(_measures(toc)) or None
    if col.allowed and not col.pseudonym:
        return tuple(col.allowed)
    return None


def _range_words(col: Col) -> str:
    if col.min is not None and col.max is not None:
        return f"from {col.min:g} to {col.max:g}"
    if col.min is not None:
        return f"at least {col.min:g}"
    return "" if col.max is None else f"at most {col.max:g}"


def _describe(col: Col, choices: tuple[str, ...] | None) -> str:
    what = _WHAT.get(col.name, col.name.replace("_", " "))
    parts = [what, _TYPE_WORDS.get(col.type, col.type)]
    if choices:
        parts.append("choose from the list: " + ", ".join(choices))
    elif col.free_text:
        parts.append("a category agreed in advance, never free text")
    if _range_words(col):
        parts.append(_range_words(col))
    parts.append("required" if col.required else "may be left blank")
    return "; ".join(parts)


def write_entry_workbook(toc_file: str | Path, path: str | Path) -> Path | None:
    """Write the data-entry workbook for a theory of change (see the module docstring).

    Returns the path written, or None when ``path`` already exists (it is never replaced)
    or the theory of change cannot be read as YAML (``evalkit validate`` says why).
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    path = Path(path)
    if path.exists():
        return None
    try:
        toc = yaml.safe_load(Path(toc_file).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(toc, dict):
        return None
    kinds = tables_needed(toc)
    book = Workbook()
    guide = book.active
    guide.title = "Instructions"
    lists = book.create_sheet("Lists")
    lists.sheet_state = "hidden"
    list_ranges: dict[tuple[str, ...], str] = {}
    bold = Font(bold=True)

    def list_range(values: tuple[str, ...]) -> str:
        if values not in list_ranges:
            column = len(list_ranges) + 1
            for row, value in enumerate(values, start=1):
                lists.cell(row=row, column=column, value=value)
            letter = lists.cell(row=1, column=column).column_letter
            list_ranges[values] = f"Lists!${letter}$1:${letter}${len(values)}"
        return list_ranges[values]

    guide.append(["How to fill in this workbook"])
    guide["A1"].font = Font(bold=True, size=14)
    for line in (
        "Fill in one sheet per table, one row per record, starting on line 2. Keep the "
        "headers on line 1 exactly as they are: the kit reads them without any mapping.",
        "Never type a pupil's name, a date of birth, an address or notes: the kit does not "
        "need them. The pupil_id is the admission number or UPN; the kit replaces it with "
        "a pseudonym as it reads the file.",
        "Coded columns have a drop-down list: choose from it. Dates as dd/mm/yyyy.",
        "Save the workbook as .xlsx with Excel, then run `evalkit validate` on the "
        "project's parameters file: it names every cell that needs correcting.",
        "",
        "In the parameters file, each sheet is one data source, for example:",
    ):
        guide.append([line])
    for kind in kinds:
        guide.append([f"  {kind}: {{path: data/raw/<project>/{path.name}, sheet: {kind}}}"])
    for kind in kinds:
        sheet = book.create_sheet(kind)
        guide.append([])
        guide.append([f"Sheet '{kind}'"])
        guide.cell(row=guide.max_row, column=1).font = bold
        guide.append(["column", "what to enter"])
        for i, col in enumerate(TABLES[kind], start=1):
            cell = sheet.cell(row=1, column=i, value=col.name)
            cell.font = bold
            letter = cell.column_letter
            sheet.column_dimensions[letter].width = max(14, len(col.name) + 4)
            choices = _choices(col, toc)
            guide.append([col.name, _describe(col, choices)])
            cells = f"{letter}2:{letter}{ENTRY_ROWS + 1}"
            check = None
            if choices:
                check = DataValidation(type="list", formula1=list_range(choices),
                                       allow_blank=not col.required)
                check.error = f"Choose {col.name} from the list"
            elif col.type in ("int", "float"):
                check = DataValidation(
                    type="whole" if col.type == "int" else "decimal",
                    operator="between",
                    formula1=str(-1e9 if col.min is None else col.min),
                    formula2=str(1e9 if col.max is None else col.max), allow_blank=True)
                check.error = f"{col.name}: {_TYPE_WORDS[col.type]} {_range_words(col)}"
            elif col.type == "date":
                for row in range(2, ENTRY_ROWS + 2):
                    sheet.cell(row=row, column=i).number_format = "DD/MM/YYYY"
            if check is not None:
                check.showErrorMessage = True
                check.errorTitle = "Not a value the kit reads"
                sheet.add_data_validation(check)
                check.add(cells)
        sheet.freeze_panes = "A2"
    guide.column_dimensions["A"].width = 24
    guide.column_dimensions["B"].width = 100
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


__all__ = ["tables_needed", "write_entry_workbook"]
