"""Read the Department for Education (DfE) exclusions files into tidy LA-by-year tables.

Two files, copied unchanged into ``data/raw/dfe/`` (provenance and the Open Government
Licence v3.0 statement in ``data/raw/dfe/README.md``):

* ``dfe_exclusions_la_2006-07_2016-17.csv`` (SFR35/2017 underlying data, wide): counts,
  headcount and rates for England, regions and local authorities by school type.
* ``dfe_exclusions_la_2015-16_2023-24.csv`` (DfE LAIT, long): rates only, as text with
  float noise (``8.4430000000000005E-2``); ``-`` means no value.

Rates are percentages of headcount: ``perm_excl_rate = 100 * perm_excl / headcount`` and
``fixed_excl_rate = 100 * fixed_excl / headcount`` (fixed-period exclusions are called
suspensions since 2019/20). Academic years are written ``201213``, ``2012/13`` or
``2012-13`` and become the period start, 1 August of the first year (the academic year of
:mod:`evaluation.calendar`). Suppression
markers ``x c z - . :`` are read as missing and counted in ``table.attrs["missing"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import calendar
from evaluation.errors import DataError, describe_rows

__all__ = [
    "MISSING_MARKERS",
    "RAW_DIR",
    "OLD_FILE",
    "LAIT_FILE",
    "parse_academic_year",
    "to_number",
    "read_exclusions_2006_2017",
    "read_exclusions_lait",
]

MISSING_MARKERS = ("x", "c", "z", "-", ".", ":")
RAW_DIR = Path(__file__).resolve().parents[1] / "data" / "raw" / "dfe"
OLD_FILE = "dfe_exclusions_la_2006-07_2016-17.csv"
LAIT_FILE = "dfe_exclusions_la_2015-16_2023-24.csv"
_LAIT_MEASURES = {"FixedEx": "fixed_excl_rate", "PermEx": "perm_excl_rate",
                  "Pup_FixedEx": "one_plus_fixed_rate"}
_REGIONS = {
    "north east", "north west", "yorkshire and the humber", "east midlands", "west midlands",
    "east of england", "london", "london (inner)", "london (outer)", "inner london",
    "outer london", "south east", "south west",
}
_LAIT_PHASES = {"Pri": "Primary", "Sec": "Secondary", "Spec": "Special", "Tot": "Total",
                "Total": "Total"}


def _lines(index: pd.Index) -> list[int]:
    return [int(i) + 2 for i in index]  # header is line 1


def parse_academic_year(values: pd.Series, column: str = "year") -> pd.Series:
    """'201213', '2012/13' or '2012-13' -> Timestamp 2012-08-01 (the first day of the academic
    year, as :mod:`evaluation.calendar` defines it).

    The two-digit end must follow the first year (13 after 2012); anything else is a
    ``DataError`` naming the rows.
    """
    first = calendar.parse_academic_year(values)
    bad = first.isna()
    if bad.any():
        text = values.astype("string").str.strip()
        shown = ", ".join(repr(v) for v in text[bad].head(3))
        raise DataError(
            f"Column '{column}': {describe_rows(_lines(values.index[bad]))} ({shown}) "
            f"{'is' if bad.sum() == 1 else 'are'} not an academic year such as '2012/13' or "
            "'201213'. Correct them in the file."
        )
    return calendar.academic_year_start(first)


def to_number(values: pd.Series, column: str) -> tuple[pd.Series, int]:
    """Text (with float noise) to float; suppression markers become NaN.

    Returns the floats and the number of cells that held a marker. Any other text is a
    ``DataError`` naming the rows.
    """
    text = values.astype("string").str.strip()
    marker = text.isin(MISSING_MARKERS).fillna(False).astype(bool)
    empty = text.isna() | (text == "")
    out = pd.to_numeric(text.mask(marker | empty), errors="coerce").astype(float)
    bad = out.isna() & ~marker & ~empty
    if bad.any():
        raise DataError(
            f"Column '{column}': {describe_rows(_lines(values.index[bad]))} "
            f"{'is' if bad.sum() == 1 else 'are'} neither a number nor a suppression marker "
            f"({' '.join(MISSING_MARKERS)}). Check the file."
        )
    return out, int(marker.sum())


def _path(path: str | Path | None, name: str) -> Path:
    p = Path(path) if path is not None else RAW_DIR / name
    if not p.exists():
        raise DataError(f"DfE file {p} not found. Copy {name} into data/raw/dfe/ or pass path=.")
    return p


def read_exclusions_2006_2017(
    path: str | Path | None = None, *, school_type: str | None = "Total",
    level: str | None = None,
) -> pd.DataFrame:
    """Tidy table from the SFR35/2017 file (2006/07 to 2016/17).

    Columns: la_name, level ("National" / "Region" / "Local authority"), school_type,
    academic_year ("2012/13"), period_start (1 August), num_schools, headcount,
    perm_excl, perm_excl_rate, fixed_excl, fixed_excl_rate, one_plus_fixed,
    one_plus_fixed_rate. ``school_type`` None keeps all types; ``level`` filters the level.
    ``attrs["missing"]`` counts suppression markers per column (in the rows kept); rows
    whose la_name is "NULL" (a placeholder with headcount 0) are dropped and counted in
    ``attrs["dropped_null_rows"]``.
    """
    raw = pd.read_csv(_path(path, OLD_FILE), dtype=str, keep_default_na=False)
    need = ["year", "level", "la_name", "school_type", "headcount", "perm_excl",
            "fixed_excl"]
    absent = [c for c in need if c not in raw.columns]
    if absent:
        raise DataError(f"The DfE file lacks column(s) {', '.join(absent)}; is it the right file?")
    if school_type is not None:
        raw = raw[raw["school_type"] == school_type]
    if level is not None:
        raw = raw[raw["level"] == level]
    null = raw["la_name"].str.strip() == "NULL"  # an unnamed placeholder with headcount 0
    raw = raw[~null]
    out = pd.DataFrame({
        "la_name": raw["la_name"].str.strip(),
        "level": raw["level"],
        "school_type": raw["school_type"],
        "period_start": parse_academic_year(raw["year"], "year"),
    })
    out["academic_year"] = [calendar.academic_year_label(d.year) for d in out["period_start"]]
    missing: dict[str, int] = {}
    renames = {"num_schools": "num_schools", "headcount": "headcount",
               "perm_excl": "perm_excl", "perm_excl_rate": "perm_excl_rate",
               "fixed_excl": "fixed_excl", "fixed_excl_rate": "fixed_excl_rate",
               "one_plus_fixed": "one_plus_fixed",
               "one_or_more_fixed_excl_rate": "one_plus_fixed_rate"}
    for src, dst in renames.items():
        if src in raw.columns:
            out[dst], missing[dst] = to_number(raw[src], src)
    out = out.sort_values(["level", "la_name", "school_type", "period_start"])
    out = out.reset_index(drop=True)
    out.attrs["missing"] = missing
    out.attrs["dropped_null_rows"] = int(null.sum())
    out.attrs["source"] = OLD_FILE
    return out


def read_exclusions_lait(
    path: str | Path | None = None, *, school_type: str | None = "Total",
) -> pd.DataFrame:
    """Tidy table from the LAIT file (2015/16 to 2023/24): rates only.

    Columns: la_name, la_number, region, level ("National" for England, "Region" for the
    nine regions, else "Local authority"), school_type, academic_year, period_start,
    fixed_excl_rate, perm_excl_rate, one_plus_fixed_rate (percentages of headcount).
    ``attrs["missing"]`` counts "-" and other markers per measure.
    """
    raw = pd.read_csv(_path(path, LAIT_FILE), dtype=str, keep_default_na=False)
    need = ["Short Desc", "Years", "LA and Regions", "LA Number", "Region", "Values"]
    absent = [c for c in need if c not in raw.columns]
    if absent:
        raise DataError(f"The LAIT file lacks column(s) {', '.join(absent)}; is it the right file?")
    code = raw["Short Desc"].str.replace(" ", "", regex=False)
    parts = code.str.extract(r"^(Pri|Sec|Spec|Tot|Total)_?(FixedEx|PermEx|Pup_FixedEx)$")
    bad = parts[0].isna()
    if bad.any():
        raise DataError(
            f"Column 'Short Desc': {describe_rows(_lines(raw.index[bad]))} are not exclusion "
            "measures (e.g. TotFixedEx). Use the exclusions extract, not the absence one."
        )
    values, _ = to_number(raw["Values"], "Values")
    marker = raw["Values"].str.strip().isin(MISSING_MARKERS)
    long = pd.DataFrame({
        "la_name": raw["LA and Regions"].str.strip(),
        "la_number": raw["LA Number"].str.strip(),
        "region": raw["Region"].str.strip().replace({"NA": pd.NA}),
        "school_type": parts[0].map(_LAIT_PHASES),
        "measure": parts[1].map(_LAIT_MEASURES),
        "period_start": parse_academic_year(raw["Years"], "Years"),
        "value": values,
        "marker": marker,
    })
    if school_type is not None:
        long = long[long["school_type"] == school_type]
    missing = long.groupby("measure")["marker"].sum().astype(int).to_dict()
    keys = ["la_name", "la_number", "region", "school_type", "period_start"]
    dup = long.duplicated(keys + ["measure"], keep=False)
    if dup.any():
        raise DataError(
            f"The LAIT file repeats a measure for one area and year: "
            f"{describe_rows(_lines(long.index[dup]))}. Check the extract."
        )
    wide = long.set_index(keys + ["measure"])["value"].unstack("measure")
    wide = wide.reset_index().rename_axis(columns=None)
    is_region = wide["la_name"].str.lower().isin(_REGIONS)
    wide["level"] = np.where(wide["la_name"] == "England", "National",
                             np.where(is_region, "Region", "Local authority"))
    wide["academic_year"] = [calendar.academic_year_label(d.year)
                             for d in wide["period_start"]]
    cols = ["la_name", "la_number", "region", "level", "school_type", "academic_year",
            "period_start", "fixed_excl_rate", "perm_excl_rate", "one_plus_fixed_rate"]
    wide = wide.reindex(columns=cols).sort_values(["level", "la_name", "school_type",
                                                   "period_start"]).reset_index(drop=True)
    wide.attrs["missing"] = missing
    wide.attrs["source"] = LAIT_FILE
    return wide
