"""Row filters written in the parameters file, parsed by a small safe grammar.

A parameters file can name a group of pupils, for example the focus group of the
disproportionality tables::

    disproportionality_group: "ethnicity_minor == 'Black Caribbean' and sex == 'M'"

Such text comes from a user and is never handed to ``eval``, ``DataFrame.query`` or
``DataFrame.eval`` (which run Python: ``@pd.io.common.os.system(...)`` would execute a
command). It is parsed here into a small tree and evaluated column by column. Written by
hand because no well-kept library parses exactly this much and no more; the grammar::

    expression := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expression ")" | comparison
    comparison := column ("==" | "!=" | "<" | "<=" | ">" | ">=") literal
                | column ["not"] "in" "[" literal ("," literal)* "]"
    column     := a name of letters, digits and "_" (not starting with a digit)
    literal    := 'text' | "text" | number | true | false

A missing value satisfies no comparison (so ``not`` of it is true, as in SQL's
``IS DISTINCT FROM`` reading). Anything else is refused with a :class:`FilterError`
saying where the text stopped making sense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Filter", "FilterError", "parse_filter"]


class FilterError(ValueError):
    """A filter expression that the grammar does not accept, or that names an unknown
    column."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'[^'\\]*'|"[^"\\]*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\[\],])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "True", "False"}


@dataclass(frozen=True)
class _Token:
    kind: str  # string | number | op | punct | name | keyword | end
    text: str
    at: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            bad = text[pos:].lstrip()[:1]
            raise FilterError(f"unexpected character {bad!r} at position "
                              f"{len(text) - len(text[pos:].lstrip()) + 1}")
        group = match.lastgroup or ""
        value = match.group(group)
        kind = "keyword" if group == "name" and value in _KEYWORDS else group
        out.append(_Token(kind, value, match.start(group) + 1))
        pos = match.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


# The parsed tree: tuples, evaluated by Filter.mask.
#   ("cmp", column, op, value) | ("in", column, values, negated) | ("not", node)
#   ("and", left, right) | ("or", left, right)


class _Parser:
    #: Deepest nesting of brackets and "not" accepted (deeper text would exhaust Python's
    #: recursion limit instead of being refused with a clear message).
    MAX_DEPTH = 50

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise FilterError(f"expected {text!r} at position {token.at}, found "
                              f"{token.text or 'the end'!r}")

    def expression(self) -> tuple:
        node = self.term()
        while self.peek().text == "or":
            self.take()
            node = ("or", node, self.term())
        return node

    def term(self) -> tuple:
        node = self.factor()
        while self.peek().text == "and":
            self.take()
            node = ("and", node, self.factor())
        return node

    def factor(self) -> tuple:
        token = self.peek()
        if token.text in {"not", "("}:
            self.depth += 1
            if self.depth > self.MAX_DEPTH:
                raise FilterError(f"brackets and 'not' are nested more than {self.MAX_DEPTH} "
                                  f"deep at position {token.at}")
            self.take()
            if token.text == "not":
                node = ("not", self.factor())
            else:
                node = self.expression()
                self.expect(")")
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> tuple:
        token = self.take()
        if token.kind != "name":
            raise FilterError(f"expected a column name at position {token.at}, found "
                              f"{token.text or 'the end'!r}")
        column = token.text
        op = self.take()
        if op.kind == "op":
            return ("cmp", column, op.text, self.literal())
        negated = False
        if op.text == "not":
            negated = True
            op = self.take()
        if op.text == "in":
            self.expect("[")
            values = [self.literal()]
            while self.peek().text == ",":
                self.take()
                values.append(self.literal())
            self.expect("]")
            return ("in", column, tuple(values), negated)
        raise FilterError(f"expected a comparison (==, !=, <, <=, >, >= or in) after "
                          f"{column!r} at position {op.at}, found {op.text or 'the end'!r}")

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1]
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.text in {"true", "True"}:
            return True
        if token.text in {"false", "False"}:
            return False
        raise FilterError(f"expected a value ('text', a number, true or false) at position "
                          f"{token.at}, found {token.text or 'the end'!r}")


@dataclass(frozen=True)
class Filter:
    """A parsed row filter: ``Filter.parse(text).mask(frame)`` is a boolean array."""

    text: str
    tree: tuple

    @classmethod
    def parse(cls, text: str) -> Filter:
        return parse_filter(text)

    @property
    def columns(self) -> list[str]:
        """The columns the filter reads, in order of first use."""
        found: list[str] = []

        def walk(node: tuple) -> None:
            if node[0] in {"cmp", "in"}:
                if node[1] not in found:
                    found.append(node[1])
            else:
                for child in node[1:]:
                    walk(child)

        walk(self.tree)
        return found

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """The rows of ``frame`` the filter keeps (missing values are never kept by a
        comparison)."""
        unknown = [c for c in self.columns if c not in frame.columns]
        if unknown:
            raise FilterError(f"no column {unknown[0]!r} (columns: "
                              f"{', '.join(map(str, frame.columns))})")
        return self._eval(self.tree, frame)

    def _eval(self, node: tuple, frame: pd.DataFrame) -> np.ndarray:
        kind = node[0]
        if kind == "or":
            return self._eval(node[1], frame) | self._eval(node[2], frame)
        if kind == "and":
            return self._eval(node[1], frame) & self._eval(node[2], frame)
        if kind == "not":
            return ~self._eval(node[1], frame)
        column = frame[node[1]]
        if kind == "in":
            present = column.notna().to_numpy(dtype=bool)
            hit = column.isin(list(node[2])).fillna(False).to_numpy(dtype=bool) & present
            return ~hit & present if node[3] else hit
        _, _, op, value = node
        try:
            result = {
                "==": lambda s: s == value, "!=": lambda s: s != value,
                "<": lambda s: s < value, "<=": lambda s: s <= value,
                ">": lambda s: s > value, ">=": lambda s: s >= value,
            }[op](column)
        except TypeError:
            raise FilterError(f"column {node[1]!r} cannot be compared with {value!r}") from None
        return (pd.Series(result).astype("boolean").fillna(False).to_numpy(dtype=bool)
                & column.notna().to_numpy(dtype=bool))


def parse_filter(text: str) -> Filter:
    """Parse a filter expression (see the module docstring) or raise :class:`FilterError`."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("the expression is empty")
    if len(text) > 1000:
        raise FilterError("the expression is longer than 1,000 characters")
    parser = _Parser(text)
    tree = parser.expression()
    rest = parser.peek()
    if rest.kind != "end":
        raise FilterError(f"unexpected {rest.text!r} at position {rest.at}; join conditions "
                          "with and / or")
    return Filter(text, tree)
