"""Built-in code lists: the codes school MIS exports use, read as the kit's values.

Intake (``evaluation.intake``) applies them automatically to the columns below, after the
project's own ``recode:`` (which always wins), and reports each use, e.g.
"sen_status: 26 values recoded using DfE SEN provision codes (N/K/E)". A value matched
neither by ``recode:``, nor by a list, nor already in the kit's spelling is refused with a
message naming the rows, as before. Matching ignores case and surrounding spaces.

Sources:

- SEN provision: DfE school census codes E (EHC plan), K (SEN support), N (no SEN), as
  in the DfE's school census guide and repeated in local authorities' census guidance
  (e.g. Norfolk County Council, "SEN-specific census guidance"). S (statement of SEN) was
  used until statements were transferred to EHC plans (by April 2018) and A / P (School
  Action, School Action Plus) until the 2014 SEND Code of Practice replaced both by K
  (Cornwall Council, "SEN category codes for the school census", from the 2015-16 School
  Census Guide, p. 66); old exports still hold them, read here as the provision that
  replaced them.
- Ethnicity: DfE main codes and the extended codes listed with them, each with its
  sub-category (the kit's ``ethnicity_minor``) and main category (``ethnicity``), from the
  DfE's census code sets ("Alternative provision census: codes",
  https://www.gov.uk/guidance/alternative-provision-ap-census/codes, ethnicity table; the
  school census uses the same codes). Refused (REFU) and not yet obtained (NOBT) are the
  DfE's "Unclassified". The extended codes of every group (Asian, Black, Chinese, Mixed,
  any other, White) and their main codes are those of the DfE's own ethnicity table in
  "Review my school or college data"
  (github.com/uk-gov-mirror/DFE-Digital.review-school-college-data,
  src/ReferenceData/03_RestoreCurrentSchemaAndData.sql, commit
  d8f6b786cd56d5a9e1cebb7ff1a3f7c4d884e315, rows ``INSERT [dbo].[Ethnicities]``: each code
  has a parent group holding exactly one main code; the rows are copied unchanged to
  ``tests/data/dfe_ethnicity_codes_rscd.csv``). WNIR and the Gypsy/Roma codes WROG, WROR,
  WROO are on the gov.uk page only.
- Year group: national curriculum year as the census writes it (N1, N2 for the two nursery
  years, R for reception, 1 to 14), and the way MIS exports label it ("Year 3", "Y3",
  "Yr 3", "Reception"). The kit counts Reception as 0, so N2 is -1 and N1 is -2.
- Sex: the census codes M and F, and the words exports use for them.
- Yes/no (FSM, EAL and the review columns): Y/N, yes/no, T/F, true/false, 1/0.
- Timepoint: words that can only mean a baseline or a follow-up. Season words (autumn,
  summer, ...) depend on when a project starts, so they are never guessed: the parameters
  say which is which under ``recode: {timepoint: {Autumn: baseline, Summer: follow_up}}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

# --- yes/no ------------------------------------------------------------------------------
TRUE_WORDS = frozenset({"y", "yes", "true", "1", "t"})
FALSE_WORDS = frozenset({"n", "no", "false", "0", "f"})

# --- SEN provision -----------------------------------------------------------------------
SEN_CODES: dict[str, str] = {
    "n": "none", "k": "SEN support", "e": "EHC plan",
    "s": "EHC plan",  # statement of SEN, transferred to EHC plans by April 2018
    "a": "SEN support", "p": "SEN support",  # School Action (Plus), replaced by K in 2014
    "no sen": "none", "no special educational need": "none", "not sen": "none",
    "sen support": "SEN support", "school action": "SEN support",
    "school action plus": "SEN support",
    "ehcp": "EHC plan", "ehc": "EHC plan", "ehc plan": "EHC plan",
    "education, health and care plan": "EHC plan", "statement": "EHC plan",
}

# --- sex ---------------------------------------------------------------------------------
SEX_CODES: dict[str, str] = {"m": "M", "male": "M", "boy": "M", "f": "F", "female": "F",
                             "girl": "F"}

# --- ethnicity ---------------------------------------------------------------------------
#: DfE main code -> (sub-category as the kit's ethnicity_minor, main category).
ETHNICITY_MAIN: dict[str, tuple[str, str]] = {
    "WBRI": ("White British", "White"),
    "WIRI": ("White Irish", "White"),
    "WIRT": ("Traveller of Irish heritage", "White"),
    "WROM": ("Gypsy/Roma", "White"),
    "WOTH": ("Any other White background", "White"),
    "MWBC": ("White and Black Caribbean", "Mixed"),
    "MWBA": ("White and Black African", "Mixed"),
    "MWAS": ("White and Asian", "Mixed"),
    "MOTH": ("Any other Mixed background", "Mixed"),
    "AIND": ("Indian", "Asian"),
    "APKN": ("Pakistani", "Asian"),
    "ABAN": ("Bangladeshi", "Asian"),
    "AOTH": ("Any other Asian background", "Asian"),
    "BCRB": ("Black Caribbean", "Black"),
    "BAFR": ("Black African", "Black"),
    "BOTH": ("Any other Black background", "Black"),
    "CHNE": ("Chinese", "Chinese"),
    "OOTH": ("Any other ethnic group", "Any other ethnic group"),
    "REFU": ("Unclassified", "Unclassified"),  # refused
    "NOBT": ("Unclassified", "Unclassified"),  # information not yet obtained
}
#: DfE extended code -> its main code, grouped by main code as in the sources above (the
#: RSCD table, and the gov.uk page for WNIR, WROG, WROR, WROO). A four-letter code not here
#: nor in ETHNICITY_MAIN is refused with advice to recode it.
ETHNICITY_EXTENDED: dict[str, str] = {
    # White
    **dict.fromkeys(["WCOR", "WENG", "WNIR", "WSCO", "WWEL", "WOWB"], "WBRI"),
    **dict.fromkeys(["WALB", "WBOS", "WCRO", "WGRE", "WGRK", "WGRC", "WITA", "WKOS", "WPOR",
                     "WSER", "WTUR", "WTUK", "WTUC", "WEUR", "WEEU", "WWEU", "WOTW"], "WOTH"),
    **dict.fromkeys(["WROG", "WROR", "WROO"], "WROM"),
    # Mixed
    **dict.fromkeys(["MWAP", "MWAI", "MWAO"], "MWAS"),
    **dict.fromkeys(["MAOE", "MABL", "MACH", "MBOE", "MBCH", "MCOE", "MWOE", "MWCH", "MOTM"],
                    "MOTH"),
    # Asian
    **dict.fromkeys(["AMPK", "AKPA", "AOPK"], "APKN"),
    **dict.fromkeys(["AAFR", "AKAO", "ANEP", "ASNL", "ASLT", "ASRO", "AOTA"], "AOTH"),
    # Black
    **dict.fromkeys(["BANN", "BCON", "BGHA", "BNGN", "BSLN", "BSOM", "BSUD", "BAOF"], "BAFR"),
    **dict.fromkeys(["BEUR", "BNAM", "BOTB"], "BOTH"),
    # Chinese
    **dict.fromkeys(["CHKC", "CMAL", "CSNG", "CTWN", "COCH"], "CHNE"),
    # Any other ethnic group
    **dict.fromkeys(["OAFG", "OARA", "OEGY", "OFIL", "OIRN", "OIRQ", "OJPN", "OKOR", "OKRD",
                     "OLAM", "OLEB", "OLIB", "OMAL", "OMRC", "OPOL", "OTHA", "OVIE", "OYEM",
                     "OOEG"], "OOTH"),
}


def ethnicity_groups(value: str) -> tuple[str, str] | None:
    """(minor group, major group) of a DfE ethnicity code or a minor group's name."""
    key = value.strip().upper()
    key = ETHNICITY_EXTENDED.get(key, key)
    if key in ETHNICITY_MAIN:
        return ETHNICITY_MAIN[key]
    folded = value.strip().casefold()
    for minor, major in ETHNICITY_MAIN.values():
        if minor.casefold() == folded:
            return minor, major
    return None


# --- year group --------------------------------------------------------------------------
_YEAR = re.compile(r"^(?:year|yr|y|ncy|nc year)?\s*(\d{1,2})$")
YEAR_WORDS: dict[str, int] = {"r": 0, "rec": 0, "reception": 0, "yr r": 0, "year r": 0,
                              "n2": -1, "nursery 2": -1,
                              "n1": -2, "nursery 1": -2}


def year_group(value: str) -> int | None:
    """The kit's year group (Reception = 0) of "Year 3", "Y3", "R", "N2", ... or None."""
    text = re.sub(r"\s+", " ", value.strip().casefold())
    if text in YEAR_WORDS:
        return YEAR_WORDS[text]
    match = _YEAR.match(text)
    return int(match.group(1)) if match else None


# --- timepoints --------------------------------------------------------------------------
TIMEPOINT_WORDS: dict[str, str] = {
    "baseline": "baseline", "base line": "baseline", "pre": "baseline", "t1": "baseline",
    "time 1": "baseline", "t0": "baseline",
    "follow_up": "follow_up", "follow-up": "follow_up", "follow up": "follow_up",
    "followup": "follow_up", "post": "follow_up", "t2": "follow_up", "time 2": "follow_up",
}
#: Words that name a time of year: never guessed, but quoted in messages (they identify
#: no one) so the user sees what to recode.
SEASON_WORDS = frozenset({"autumn", "spring", "summer", "aut", "spr", "sum", "autumn 1",
                          "autumn 2", "spring 1", "spring 2", "summer 1", "summer 2",
                          "term 1", "term 2", "term 3", "start", "end", "mid"})


@dataclass(frozen=True)
class CodeList:
    """One built-in list: the kit column it applies to, its name in reports, and how it
    maps a (stripped) cell to the kit's value (None: not one of its codes)."""

    column: str
    label: str
    lookup: Callable[[str], object | None]


def _dict_lookup(mapping: dict[str, str]) -> Callable[[str], str | None]:
    return lambda v: mapping.get(v.strip().casefold())


CODE_LISTS: dict[str, CodeList] = {
    "sen_status": CodeList("sen_status", "DfE SEN provision codes (N/K/E)",
                           _dict_lookup(SEN_CODES)),
    "sex": CodeList("sex", "sex codes (M/F, male/female)", _dict_lookup(SEX_CODES)),
    "year_group": CodeList("year_group", "year group labels (Year 3, Y3, R, N1, N2)",
                           lambda v: None if year_group(v) is None else str(year_group(v))),
    "ethnicity": CodeList(
        "ethnicity", "DfE ethnicity codes (WBRI, MWBC, ...) to major groups",
        lambda v: None if ethnicity_groups(v) is None else ethnicity_groups(v)[1]),
    "ethnicity_minor": CodeList(
        "ethnicity_minor", "DfE ethnicity codes (WBRI, MWBC, ...) to minor groups",
        lambda v: None if ethnicity_groups(v) is None else ethnicity_groups(v)[0]),
    "timepoint": CodeList("timepoint", "timepoint words (pre/post, T1/T2, follow-up)",
                          _dict_lookup(TIMEPOINT_WORDS)),
}


def apply_code_list(column: str, values: pd.Series, already: set[str] | None = None
                    ) -> tuple[pd.Series, int, str | None]:
    """``values`` with the built-in list of ``column`` applied (cells that are already a
    kit value, in ``already``, are left alone): (new values, how many changed, list label).
    """
    code_list = CODE_LISTS.get(column)
    if code_list is None:
        return values, 0, None
    out = values.copy()
    changed = 0
    for index, value in values.items():
        if not isinstance(value, str) or (already and value in already):
            continue
        mapped = code_list.lookup(value)
        if mapped is not None and mapped != value:
            out[index] = mapped
            changed += 1
    return out, changed, code_list.label
