"""Data-quality checks of the tracking tables, written as declarative rules.

A :class:`Rule` says which records it flags (a function of the table), in which column, the
problem (text, or a function of the flagged rows when it names a value), the action the kit
took and the check's name in words that never include a record's values (so problems can be
counted and shown without ids). :func:`flag` turns a rule into quality rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evaluation.errors import DataError, describe_rows

if TYPE_CHECKING:
    from evaluation.tracking.register import Register

QUALITY_COLUMNS = ["table", "record_id", "column", "problem", "action", "check"]

Text = str | Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Rule:
    """One check: ``when(table)`` is True for the records with the problem."""

    column: str
    when: Callable[[pd.DataFrame], pd.Series]
    problem: Text
    action: Text
    check: str | None = None  # defaults to ``problem`` (must then be fixed text)


def empty_quality() -> pd.DataFrame:
    return pd.DataFrame(columns=QUALITY_COLUMNS).astype("str")


def file_lines(mask: pd.Series) -> list[int]:
    """1-based file line numbers (header = line 1) of the True rows of a table as read."""
    return (np.flatnonzero(mask.to_numpy(dtype=bool)) + 2).tolist()


def _text(value: Text, rows: pd.DataFrame) -> pd.Series:
    if callable(value):
        return pd.Series(value(rows), dtype="str").reset_index(drop=True)
    return pd.Series(value, index=range(len(rows)), dtype="str")


def flag(rule: Rule, frame: pd.DataFrame, table: str, id_col: str) -> pd.DataFrame:
    """The quality rows of ``rule`` on ``frame`` (a row per flagged record, in table order);
    a record with no id is named by its file line ("line N")."""
    mask = rule.when(frame).fillna(False).astype(bool).reset_index(drop=True)
    rows = frame.reset_index(drop=True)[mask.to_numpy()].reset_index(drop=True)
    if not len(rows):
        return empty_quality()
    if rule.check is None and not isinstance(rule.problem, str):
        raise TypeError("Rule: give `check` when the problem text depends on the record")
    ids = rows[id_col].astype("str")
    if ids.isna().any():  # (the file lines are written only when a record has no id)
        lines = pd.Series([f"line {n}" for n in file_lines(mask)], dtype="str")
        ids = ids.where(ids.notna(), lines)
    return pd.DataFrame({
        "table": table,
        "record_id": ids,
        "column": rule.column,
        "problem": _text(rule.problem, rows),
        "action": _text(rule.action, rows),
        "check": rule.check or rule.problem,
    }).astype("str")


def run(rules: Sequence[Rule], frame: pd.DataFrame, table: str, id_col: str
        ) -> list[pd.DataFrame]:
    """The quality rows of every rule, rule by rule."""
    return [flag(rule, frame, table, id_col) for rule in rules]


def missing_value(column: str, what: str) -> Rule:
    """The rule for a record that cannot be used because ``column`` is empty."""
    return Rule(column, lambda d: d[column].isna(), f"have no {what}",
                f"excluded: add the {what} in the source file", check=f"no {what}")


def exclude(rule: Rule, frame: pd.DataFrame, table: str, id_col: str, strict: bool
            ) -> pd.DataFrame:
    """:func:`flag` for a record that is left out; with ``strict`` a
    :class:`~evaluation.errors.DataError` instead."""
    if strict:
        bad = rule.when(frame).fillna(False).reset_index(drop=True)
        if bad.any():
            fix = str(rule.action).removeprefix("excluded: ")
            raise DataError(
                f"The {table} table, column {rule.column!r}: {describe_rows(file_lines(bad))} "
                f"{rule.problem}. {fix[0].upper() + fix[1:]}, or pass strict=False to list "
                "them in .quality and leave them out."
            )
    return flag(rule, frame, table, id_col)


def after_today(columns: Sequence[str], today: pd.Timestamp) -> list[Rule]:
    """The "date after today" rule of each date column (kept, with the date shown)."""
    return [Rule(c, lambda d, c=c: d[c] > today,
                 lambda d, c=c: "date " + d[c].dt.strftime("%Y-%m-%d") + " is after today",
                 "kept: check the date", check="date after today") for c in columns]


def quality_summary(register: Register) -> pd.DataFrame:
    """A register's data-quality problems counted by table, column and check, with no record ids.

    Columns: table, column, check, records (number of records with the problem), action
    (what the kit did: the action text up to its first ";" when every record of the check
    shares it, else "see the full list"). Sorted by table, then by records (most first).
    """
    cols = ["table", "column", "check", "records", "action"]
    quality = register.quality
    if quality.empty:
        return pd.DataFrame(columns=cols)
    heads = quality["action"].str.replace(r";.*", "", regex=True).str.strip()
    g = quality.assign(head=heads).groupby(["table", "column", "check"], sort=False)
    out = g.agg(records=("head", "size"), n_heads=("head", "nunique"), head=("head", "first"))
    out["action"] = out["head"].where(out["n_heads"] == 1, "see the full list")
    out = out.reset_index()[cols]
    out = out.sort_values(["table", "records"], ascending=[True, False], kind="stable")
    return out.reset_index(drop=True)
