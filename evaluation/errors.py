"""User-facing errors.

Every problem a user can fix (a bad parameter, a bad data file) is raised as an
``EvalKitError`` whose message is one readable paragraph: which file, which column
or key, which rows, and what to do. The command line prints that message alone,
never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class EvalKitError(Exception):
    """Base class for problems the user can fix."""


class ParamsError(EvalKitError):
    """A project's parameters or theory of change are invalid."""


class DataError(EvalKitError, ValueError):
    """A data table (or an argument to an analysis) is unusable as given."""


def describe_rows(rows: Iterable, limit: int = 5) -> str:
    """Format offending row labels as 'rows 3, 7, 9 (and 12 more)'.

    Row labels are the 1-based line numbers of the data file where known (the
    header is line 1), so users can find them in Excel.
    """
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown}{more}"


def masked(value: object) -> str:
    """A value as an error message may quote it: in full only when it holds no letters.

    Numbers, dates and punctuation (``'12,5'``, ``'31/02/2024'``) help a user find the cell
    and identify no one; anything with a letter might be a name or a note, so only its first
    character and length are shown: ``"J… (12 characters)"``.
    """
    text = str(value)
    if not any(ch.isalpha() for ch in text):
        return repr(text)
    n = len(text)
    return f'"{text[:1]}… ({n} character{"" if n == 1 else "s"})"'
