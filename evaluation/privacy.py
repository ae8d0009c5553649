"""Privacy for board-facing tables: withhold small counts, drop identifying columns.

Boards read reports as HTML with the code hidden, so every table they see must be safe
to circulate:

* :func:`suppress` withholds counts below the project's threshold (``report.min_count``)
  and the percentages or rates computed from them;
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

import numpy as np
import pandas as pd

from evaluation.errors import DataError

__all__ = [
    "IDENTIFYING_COLUMNS",
    "ID_PATTERNS",
    "RECORD_ID_COLUMNS",
    "check_board_safe",
    "drop_identifiers",
    "identifying_cells",
    "suppress",
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
#: Values that look like a pupil: the kit's pseudonymous ids ("P" + 12 hex digits, see
#: ``evaluation.intake.pseudonymise``), DfE unique pupil numbers (a letter and 12
#: characters, e.g. "A123456789012") and the demo's fake UPNs ("Z" + 12 digits).
ID_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^P[0-9a-f]{12}$"),
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


def suppress(
    table: pd.DataFrame,
    count_cols: str | Sequence[str],
    threshold: int,
    derived_cols: Sequence[str] | Mapping[str, Sequence[str]] = (),
    note_col: str = "note",
    keep_zero: bool = False,
    secondary: bool | str | Sequence[str] = False,
) -> pd.DataFrame:
    """Withhold small counts for board-facing tables.

    Any value in ``count_cols`` below ``threshold`` (0 too, unless ``keep_zero``) becomes
    NaN. ``derived_cols`` are withheld with them: a list is withheld on every row where any
    count was withheld; a mapping ``{count_col: [derived, ...]}`` ties each derived column to
    its own count. ``note_col`` says what was withheld and why. Returns a copy.

    ``secondary`` adds complementary suppression for tables whose rows add up to a total
    the reader knows (e.g. needs met by SEN status, when the report also gives all closed
    referrals): within each block of rows (``True``: the whole table; a column name or list:
    rows sharing those columns' values), when exactly one row had a count withheld, the
    row with the next smallest first count column is withheld too (its counts and derived
    values), so the withheld cell cannot be recovered by subtraction. Without it this is
    primary suppression only.
    """
    counts = [count_cols] if isinstance(count_cols, str) else list(count_cols)
    derived_map = dict(derived_cols) if isinstance(derived_cols, Mapping) else None
    derived_all = [] if derived_map is not None else list(derived_cols)
    block_cols = ([] if isinstance(secondary, bool) else
                  [secondary] if isinstance(secondary, str) else list(secondary))
    used = (counts + derived_all + [c for v in (derived_map or {}).values() for c in v]
            + block_cols)
    missing = [c for c in used if c not in table.columns]
    if missing:
        raise DataError(f"suppress: the table has no column {', '.join(missing)}.")
    out = table.copy()
    small = pd.DataFrame(index=out.index)
    for c in counts:
        v = pd.to_numeric(out[c], errors="coerce")
        s = v.notna() & (v < threshold)
        if keep_zero:
            s &= v != 0
        small[c] = s
    any_small = small.any(axis=1)
    complement = pd.Series(False, index=out.index)
    if secondary is not False and any_small.any():
        first = pd.to_numeric(out[counts[0]], errors="coerce")
        keys = (out[block_cols].astype(str).agg("\x1f".join, axis=1) if block_cols
                else pd.Series("", index=out.index))
        for _, rows in keys.groupby(keys, sort=False).groups.items():
            withheld = any_small[rows]
            if int(withheld.sum()) != 1:
                continue  # none withheld, or two or more that cannot be told apart
            others = first[rows][~withheld.to_numpy()].dropna()
            if len(others):
                complement[others.idxmin()] = True
    for c in counts:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float).mask(
            small[c] | complement)
    hidden = any_small | complement
    for c in derived_all:
        out[c] = out[c].mask(hidden)
    for c, ds in (derived_map or {}).items():
        for dcol in ds:
            out[dcol] = out[dcol].mask(small[c] | complement)
    note = pd.Series("", index=out.index, dtype=object)
    for c in counts:
        note = note.where(~small[c], note + np.where(note == "", "", "; ") + c)
    msg = "withheld (" + note + f" below {threshold})"
    out[note_col] = msg.where(any_small, "")
    out.loc[complement, note_col] = "withheld (so that another withheld count cannot be worked out)"
    return out
