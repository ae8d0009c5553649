"""Privacy for board-facing output: the one disclosure-control step, identifying columns.

Boards read reports as HTML with the code hidden, so every table they see must be safe
to circulate:

* :class:`Disclosure` (``project.disclosure``) is the one step every board-facing table,
  sentence, figure label and legend goes through: :func:`disclose` withholds counts below
  the project's threshold (``report.min_count``), what is worked out from them, and what
  would let a reader recover them by subtraction (secondary suppression);
* :func:`drop_identifiers` removes columns that identify a pupil or a record (pupil ids,
  names, UPNs, dates of birth, referral and other record ids);
* :func:`identifying_cells` finds values that look like a pupil id or a UPN anywhere in a
  table, so a section can refuse to show one (and tests can check every table).

Intake already drops names and replaces pupil numbers by pseudonyms
(``evaluation.intake``); these helpers are the last line before a board.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evaluation.errors import DataError

__all__ = [
    "IDENTIFYING_COLUMNS",
    "ID_PATTERNS",
    "RECORD_ID_COLUMNS",
    "NOT_APPLICABLE",
    "WITHHELD",
    "Disclosure",
    "check_board_safe",
    "disclose",
    "drop_identifiers",
    "identifying_cells",
    "withheld_cells",
    "withheld_note",
]

#: Columns that identify a pupil (matched ignoring case; intake's list plus the pupil id).
IDENTIFYING_COLUMNS: frozenset[str] = frozenset({
    "pupil_id", "upn", "name", "first_name", "forename", "surname", "last_name",
    "date_of_birth", "dob", "address", "postcode",
})
#: Columns that identify one record; a board needs counts, not records.
RECORD_ID_COLUMNS: frozenset[str] = frozenset({
    "referral_id", "intervention_id", "review_id", "record_id",
})
#: Values that look like a person: the kit's pseudonymous ids of pupils and staff ("P" or
#: "S" + 16 hex digits, see ``evaluation.pseudonyms``), DfE unique pupil numbers (a letter
#: and 12 characters, e.g. "A123456789012") and the demo's fake UPNs ("Z" + 12 digits).
ID_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^[PS][0-9a-f]{12,}$"),
    re.compile(r"^[A-Z]\d{11}[0-9A-Z]$"),
)


def drop_identifiers(table: pd.DataFrame, *, record_ids: bool = True,
                     extra: Iterable[str] = ()) -> pd.DataFrame:
    """``table`` without identifying columns (a copy; the index is reset if it held any).

    Drops :data:`IDENTIFYING_COLUMNS`, and :data:`RECORD_ID_COLUMNS` unless
    ``record_ids=False``, plus any ``extra`` names; names are matched ignoring case and
    surrounding spaces.
    """
    drop = set(IDENTIFYING_COLUMNS) | {e.strip().lower() for e in extra}
    if record_ids:
        drop |= RECORD_ID_COLUMNS
    out = table
    if any(str(n).strip().lower() in drop for n in (out.index.names or []) if n is not None):
        out = out.reset_index()
    keep = [c for c in out.columns if str(c).strip().lower() not in drop]
    return out[keep].copy()


def identifying_cells(table: pd.DataFrame) -> list[str]:
    """Where ``table`` shows something identifying: identifying column names, and text
    cells (or index labels) matching :data:`ID_PATTERNS`. Empty when the table is safe."""
    found = [f"column {c!r}" for c in table.columns
             if str(c).strip().lower() in IDENTIFYING_COLUMNS]
    frames = [table.reset_index(drop=False) if not isinstance(table.index, pd.RangeIndex)
              else table]
    for frame in frames:
        for col in frame.columns:
            s = frame[col]
            if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
                    or isinstance(s.dtype, pd.CategoricalDtype)):
                continue
            values = pd.Series(pd.unique(s.dropna().astype(str)), dtype=object)
            for pattern in ID_PATTERNS:
                hits = values[values.map(lambda v, p=pattern: bool(p.match(v)))]
                if len(hits):
                    found.append(f"column {col!r} holds values like {hits.iloc[0]!r}")
                    break
    return found


def check_board_safe(table: pd.DataFrame, caption: str = "") -> pd.DataFrame:
    """Return ``table`` unchanged if it shows nothing identifying, else raise DataError."""
    problems = identifying_cells(table)
    if problems:
        where = f" {caption!r}" if caption else ""
        raise DataError(f"The table{where} would show identifying data ({'; '.join(problems)}). "
                        "Drop those columns (privacy.drop_identifiers) before showing it.")
    return table


#: The one mark for a withheld value in every board-facing table (the Government
#: Statistical Service's symbol for "confidential"); "–" means not applicable or missing.
WITHHELD = "[c]"
NOT_APPLICABLE = "–"


def withheld_note(threshold: int) -> str:
    """The sentence that explains :data:`WITHHELD` wherever it appears."""
    return (f"{WITHHELD} withheld to protect pupils' privacy: a count below {threshold}, a "
            "figure worked out from one, or a figure from which one could be worked out. "
            f"{NOT_APPLICABLE} not applicable or not available.")


@dataclass(frozen=True)
class Disclosure:
    """The project's disclosure control: the one step between an analysis and a reader.

    Every board-facing table goes through :meth:`table`, every count written in a
    sentence, figure label or legend through :meth:`count` (or :meth:`pupils`), and
    per-pupil figures are drawn only where :attr:`shows_individuals`. ``audience``
    ``"board"`` (the default) applies the threshold; ``"internal"`` shows everything, and
    every page of such a report says so.
    """

    threshold: int = 5
    audience: str = "board"

    @property
    def active(self) -> bool:
        return self.audience != "internal"

    @property
    def shows_individuals(self) -> bool:
        """Whether per-pupil figures (paired plots, scatter plots) may be shown."""
        return not self.active

    def is_small(self, n: Any) -> bool:
        """Whether a count would be withheld (0 is not: a zero identifies no one)."""
        if not self.active or n is None or (isinstance(n, float) and np.isnan(n)):
            return False
        return 0 < float(n) < self.threshold

    def count(self, n: Any) -> str:
        """A count for a sentence or a label: ``"12"``, or ``"fewer than 5"``."""
        if n is None or (isinstance(n, float) and np.isnan(n)):
            return NOT_APPLICABLE
        if self.is_small(n):
            return f"fewer than {self.threshold}"
        return f"{int(round(float(n))):,}"

    def pupils(self, n: Any, one: str = "pupil", many: str | None = None) -> str:
        """``"1 pupil"`` is never written on a board page: ``"fewer than 5 pupils"``."""
        many = many or one + "s"
        text = self.count(n)
        if text == NOT_APPLICABLE:
            return text
        return f"{text} {one if text == '1' else many}"

    def table(self, frame: pd.DataFrame, counts: str | Sequence[str], *,
              derived: Sequence[str] | Mapping[str, Sequence[str]] = (),
              sums_down: bool | str | Sequence[str] = False,
              sums_across: Sequence[Sequence[str]] = (),
              keep_zero: bool = True) -> pd.DataFrame:
        """``frame`` ready for a board: see :func:`disclose`. Unchanged (a copy) for an
        internal audience."""
        if not self.active:
            return frame.copy()
        return disclose(frame, counts, self.threshold, derived=derived, sums_down=sums_down,
                        sums_across=sums_across, keep_zero=keep_zero)

    def note(self) -> str:
        return withheld_note(self.threshold)


def disclose(
    table: pd.DataFrame,
    counts: str | Sequence[str],
    threshold: int,
    *,
    derived: Sequence[str] | Mapping[str, Sequence[str]] = (),
    sums_down: bool | str | Sequence[str] = False,
    sums_across: Sequence[Sequence[str]] = (),
    keep_zero: bool = True,
) -> pd.DataFrame:
    """Withhold small counts, what is worked out from them, and what would give them away.

    Returns a copy in which every withheld cell holds :data:`WITHHELD` (so it can never be
    confused with a missing or not-applicable value, which stay NaN).

    * **Primary suppression**: a cell of ``counts`` between 1 and ``threshold - 1`` (0 too
      unless ``keep_zero``: "none of the 6 pupils" can be as telling as a small count).
    * **Secondary suppression**: the cells that add up to a total the reader knows form
      *additive sets*. ``sums_down`` says each count column adds up down the rows (``True``:
      the whole table; a column name or list: within rows sharing those columns' values);
      ``sums_across`` lists groups of count columns that add up along each row (e.g. a
      group's events and all other pupils' events add up to every pupil's events). Wherever
      a set has exactly one withheld cell, or withheld cells that add up to less than the
      threshold, its smallest other non-zero cell is withheld too, until no set has (so no
      withheld cell, nor a small sum of them, is the difference of shown figures).
    * **Derived values**: a list of ``derived`` columns is withheld on every row where any
      count was withheld (a group too small to show has neither its n nor its estimate
      shown); a mapping ``{count column: [derived, ...]}`` ties them to one count each.

    Written by hand: statistical disclosure control packages (sdcMicro, tau-argus) are not
    available for Python, and this much — the rule of the UK Government Statistical
    Service's guidance for tables of counts — is short.
    """
    counts = [counts] if isinstance(counts, str) else list(counts)
    derived_map = ({c: list(v) for c, v in derived.items()} if isinstance(derived, Mapping)
                   else None)
    derived_all = [] if derived_map is not None else list(derived)
    block_cols = ([] if isinstance(sums_down, bool) else
                  [sums_down] if isinstance(sums_down, str) else list(sums_down))
    across = [list(group) for group in sums_across]
    used = (counts + derived_all + [c for v in (derived_map or {}).values() for c in v]
            + block_cols + [c for group in across for c in group])
    missing = [c for c in dict.fromkeys(used) if c not in table.columns]
    if missing:
        raise DataError(f"disclose: the table has no column {', '.join(map(str, missing))}.")
    if any(c not in counts for group in across for c in group):
        raise DataError("disclose: every column of sums_across must be a count column.")

    values = pd.DataFrame({c: pd.to_numeric(table[c], errors="coerce") for c in counts},
                          index=table.index).reset_index(drop=True)
    withheld = (values > 0) & (values < threshold) if keep_zero else values < threshold
    withheld = withheld.fillna(False).astype(bool)

    sets: list[list[tuple[int, str]]] = []
    if sums_down is not False:
        keys = (table[block_cols].astype(str).agg("\x1f".join, axis=1).reset_index(drop=True)
                if block_cols else pd.Series("", index=values.index))
        for rows in keys.groupby(keys, sort=False).groups.values():
            for c in counts:
                sets.append([(int(r), c) for r in rows])
    for group in across:
        sets += [[(r, c) for c in group] for r in range(len(values))]

    def needs_more(hidden: list[tuple[int, str]]) -> bool:
        # one withheld cell is the total minus the others; several that add up to less
        # than the threshold still give away a small group between them
        return len(hidden) == 1 or (
            len(hidden) > 1 and sum(values.at[cell] for cell in hidden) < threshold)

    changed = True
    while changed:
        changed = False
        for cells in sets:
            present = [(r, c) for r, c in cells if pd.notna(values.at[r, c])]
            hidden = [cell for cell in present if withheld.at[cell]]
            if not needs_more(hidden):
                continue
            shown = [cell for cell in present if not withheld.at[cell]]
            # a shown zero adds nothing to protect the withheld cells: take a count first
            candidates = [cell for cell in shown if values.at[cell] > 0] or (
                shown if len(hidden) == 1 else [])
            if not candidates:
                continue
            smallest = min(candidates, key=lambda cell: values.at[cell])
            withheld.at[smallest] = True
            changed = True

    out = table.copy()
    positions = {c: out.columns.get_loc(c) for c in out.columns}
    row_hidden = withheld.any(axis=1).to_numpy()

    def hide(column: str, mask: np.ndarray) -> None:
        if mask.any():
            out[column] = out[column].astype(object)
            out.iloc[np.flatnonzero(mask), positions[column]] = WITHHELD

    for c in counts:
        hide(c, withheld[c].to_numpy())
    for c in derived_all:
        hide(c, row_hidden)
    for c, ds in (derived_map or {}).items():
        for d in ds:
            hide(d, withheld[c].to_numpy())
    return out


def withheld_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Where ``table`` shows :data:`WITHHELD` (a boolean frame of the same shape)."""
    return table.astype(object).isin([WITHHELD])


#: Characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_for_spreadsheet(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells cannot run as formulas in Excel or LibreOffice.

    Per OWASP's CSV-injection guidance a text cell starting with ``=``, ``+``, ``-``, ``@``,
    tab or carriage return gets a leading single quote (``'=HYPERLINK(...)``), which the
    spreadsheet shows as text; numbers, dates and missing values are untouched, so a
    negative number stays a number. Column headers are treated the same way. Every CSV or
    Excel file the kit writes goes through this function.
    """
    def neutral(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(FORMULA_START):
            return "'" + value
        return value

    out = table.copy()
    out.columns = [neutral(str(c)) if isinstance(c, str) else c for c in out.columns]
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
            out[col] = s.map(neutral, na_action="ignore")
        elif isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(object).map(neutral, na_action="ignore")
    return out
