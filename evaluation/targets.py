"""Targets: what change would count as success, as data, and the verdict against it.

A theory-of-change outcome may carry a target, written as structured data so the kit can
judge it (a target is never read out of free text)::

    target: {change: fall, value: 2, unit: points}          # SDQ falls by >= 2 points
    target: {value: 70, unit: percent}                       # >= 70% of referrals ...
    target: {change: fall, value: 20, unit: percent}         # suspensions down 20%
    target: {value: 0.8, unit: ratio, comparison: at_most}   # rate ratio <= 0.8
    target: {change: rise, value: 3, unit: percentage_points, by: 2026-07-31,
             text: "Mean attendance of targeted pupils rises by 3 percentage points"}

Keys (:class:`Target`): ``value`` (a number); ``unit``; ``change`` (``rise`` or ``fall``
for a change, left out for a level); ``comparison`` (``at_least``, the default, or
``at_most``); optional ``by`` (a date) and ``text`` (your own wording, shown in reports in
place of the generated words, so it must say the same thing).

How each target meets the estimate an analysis records in ``results.json`` (see
:class:`evaluation.results.Result`: ``estimate``, ``ci_low``, ``ci_high``, ``unit``):

=====================================  ==================  ==========================
target                                 estimate it needs   met when (whole CI)
=====================================  ==================  ==========================
``change: fall, value: 2, points``     difference (points,  <= -2
                                       e.g. mean change or
                                       adjusted difference)
``change: rise, value: 3,              difference in       >= +3
percentage_points``                    percentage points
``value: 70, unit: percent``           proportion (0-1)    >= 0.70
``change: fall, value: 20, percent``   ratio (rate ratio,  <= 0.80 (ratio 0.78 is
                                       observed/expected)  a change of -22%)
``value: 0.8, ratio, at_most``         ratio               <= 0.80
=====================================  ==================  ==========================

A difference is signed as the analyses record it (follow-up minus baseline, programme
minus comparison), so "a fall of at least 2 points" is an estimate of -2 or less whichever
way the outcome is better; the outcome's direction must agree with the target (a fall
target on an outcome where higher is better is refused). Which estimate each analysis
records (:func:`estimate_kinds`): ``baseline_followup`` a difference; ``its`` a ratio
(count families) or a difference (gaussian); ``referral_tracking`` a proportion for
``needs_met`` and a difference for ``attendance_pct``. A target whose unit cannot be
compared with that estimate is a validation error (:func:`compatibility_problem`).

:func:`judge` gives met / not met / not yet clear: **met** when every value in the
confidence interval satisfies the target, **not met** when none does, otherwise **not yet
clear**. These words are the target's own and are counted apart from the before/after
verdicts (improved / no clear change / worsened) of :func:`evaluation.results.verdict`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from evaluation.errors import DataError

__all__ = [
    "TARGET_WORDS",
    "Target",
    "TargetJudgement",
    "compatibility_problem",
    "count_sentence",
    "estimate_kind",
    "estimate_kinds",
    "free_text_message",
    "judge",
    "judge_all",
]

Unit = Literal["points", "percentage_points", "percent", "ratio"]
Change = Literal["rise", "fall"]
Comparison = Literal["at_least", "at_most"]
#: What an estimate is: a signed difference, a ratio, a proportion (0-1), or a level.
EstimateKind = Literal["difference", "ratio", "proportion", "level"]
Word = Literal["met", "not met", "not yet clear"]

TARGET_WORDS: tuple[str, ...] = get_args(Word)
UNITS: tuple[str, ...] = get_args(Unit)
_UNIT_WORDS = {"points": "points", "percentage_points": "percentage points",
               "percent": "%", "ratio": ""}
_KIND_WORDS = {
    "difference": "a change in the measure's own units (points or percentage points)",
    "ratio": "a ratio (e.g. observed to expected events after the interruption)",
    "proportion": "a proportion (e.g. of closed referrals)",
    "level": "a level of the measure",
}
# Equal within this relative tolerance counts as on the target: 1 - 20/100 and a ratio
# printed as 0.8 must compare equal although binary floating point differs in the 17th digit.
_REL_TOL = 1e-9


class Target(BaseModel):
    """A target as the theory of change writes it; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    value: float
    unit: Unit
    change: Change | None = None
    comparison: Comparison = "at_least"
    by: date | None = None
    text: str | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"value must be a number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        v = self.value
        if self.unit == "ratio":
            if self.change is not None:
                raise ValueError(
                    "a ratio is already a relative change: for 'down 20%' write "
                    "{change: fall, value: 20, unit: percent}; for a ratio write it without "
                    "change, e.g. {value: 0.8, unit: ratio, comparison: at_most}")
            if v <= 0:
                raise ValueError(f"a ratio must be above 0, got {v:g}")
        elif self.change is not None and v < 0:
            raise ValueError(
                f"write the size of the change as a positive number and say which way with "
                f"change: rise or fall (e.g. {{change: fall, value: {abs(v):g}, "
                f"unit: {self.unit}}})")
        if self.unit == "percent" and self.change is None and not 0 <= v <= 100:
            raise ValueError(f"a percentage must be from 0 to 100, got {v:g}")
        if self.unit == "percent" and self.change == "fall" and v >= 100:
            raise ValueError(f"a fall of {v:g}% would leave less than nothing; give a value "
                             "below 100")
        if self.text == "":
            raise ValueError("text must not be empty (leave it out instead)")
        return self

    # ------------------------------------------------------------------ meaning

    @property
    def kind(self) -> EstimateKind:
        """The kind of estimate this target can be compared with."""
        if self.unit == "ratio" or (self.unit == "percent" and self.change is not None):
            return "ratio"
        if self.unit == "percent":
            return "proportion"
        return "difference" if self.change is not None else "level"

    @property
    def threshold(self) -> float:
        """The target on the estimate's scale (e.g. 0.80 for 'down 20%', -2 for a fall of
        2 points, 0.70 for 70%)."""
        v = self.value
        if self.unit == "ratio":
            return v
        if self.unit == "percent":
            if self.change is None:
                return v / 100
            return 1 + v / 100 if self.change == "rise" else 1 - v / 100
        if self.change == "fall":
            return -v
        return v

    @property
    def side(self) -> Literal["above", "below"]:
        """Which side of :attr:`threshold` satisfies the target (the boundary included)."""
        up = self.comparison == "at_least"
        if self.change == "fall":
            up = not up  # a fall of at least 2 is an estimate of -2 or less
        return "above" if up else "below"

    @property
    def words(self) -> str:
        """The target in plain words from its data, e.g. 'a fall of at least 2 points'."""
        least = "at least" if self.comparison == "at_least" else "at most"
        v = _g(self.value)
        if self.unit == "ratio":
            return f"a ratio of {least} {v}"
        unit = _UNIT_WORDS[self.unit]
        amount = f"{v}%" if self.unit == "percent" else f"{v} {unit}"
        if self.change is None:
            return f"{least} {amount}"
        if self.value == 0 and self.comparison == "at_least":
            return f"a {self.change}"  # "a rise of at least 0 points" says only "a rise"
        return f"a {self.change} of {least} {amount}"

    @property
    def short(self) -> str:
        """A compact form for the diagram, e.g. 'fall >= 2 points', '>= 70%'."""
        sign = "≥" if self.comparison == "at_least" else "≤"
        v = _g(self.value)
        if self.unit == "ratio":
            return f"ratio {sign} {v}"
        amount = f"{v}%" if self.unit == "percent" else f"{v} {_UNIT_WORDS[self.unit]}"
        if self.change is None:
            return f"{sign} {amount}"
        if self.value == 0 and self.comparison == "at_least":
            return self.change
        return f"{self.change} {sign} {amount}"

    def satisfied_by(self, x: float) -> bool:
        """Whether an estimate of ``x`` (on the estimate's scale) meets the target."""
        t = self.threshold
        if math.isclose(x, t, rel_tol=_REL_TOL, abs_tol=_REL_TOL):
            return True
        return x > t if self.side == "above" else x < t

    def __str__(self) -> str:
        label = self.text or self.words
        if self.by is not None:
            label += f", by {_day(self.by)}"
        return label


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class TargetJudgement:
    """The verdict of one estimate against one target.

    ``word`` is met / not met / not yet clear; ``sentence`` says it in plain words;
    ``estimate``, ``ci_low``, ``ci_high`` and ``threshold`` are on the target's scale
    (e.g. -22 for a ratio of 0.78 against a percentage-fall target); ``figures`` is how
    the sentence prints them.
    """

    word: Word
    sentence: str
    target: Target
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float
    figures: str

    @property
    def short(self) -> str:
        """One diagram line: 'Target (fall ≥ 2 points): not yet clear'."""
        return f"Target ({self.target.short}): {self.word}"

    def record_fields(self) -> dict[str, str]:
        """What results.json could store beside the before/after verdict."""
        return {"target": str(self.target), "target_verdict": self.word,
                "target_sentence": self.sentence}


def estimate_kind(unit: str | None) -> EstimateKind | None:
    """What a recorded estimate is, from its ``unit`` (None when the unit says nothing
    the kit knows). The analyses' units: '... ratio ...' (ITS), 'proportion ...' or
    'share ...' (needs met, reliable change), '... points ...' or '... difference ...'
    (changes and adjusted differences)."""
    u = (unit or "").lower()
    if "ratio" in u:
        return "ratio"
    if "proportion" in u or "share" in u:
        return "proportion"
    if "point" in u or "difference" in u or "change" in u:
        return "difference"
    return None


def judge(target: Target, record: Any, *, as_of: date | None = None) -> TargetJudgement:
    """Judge ``record`` (a :class:`~evaluation.results.Result`, a results.json record or
    a row with ``estimate``, ``ci_low``, ``ci_high`` and ``unit``) against ``target``.

    Met when every value of the confidence interval satisfies the target (the boundary
    counts as satisfying "at least"/"at most"), not met when none does, otherwise not yet
    clear; a missing estimate or interval is not yet clear. With ``as_of`` before the
    target's ``by`` date, a sentence that is not "met" adds that the date has not passed.
    Raises :class:`~evaluation.errors.DataError` when the record's estimate cannot be
    compared with the target (validation refuses such targets first).
    """
    get = record.get if isinstance(record, Mapping) else (lambda k: getattr(record, k, None))
    unit = get("unit")
    kind = estimate_kind(unit)
    if kind != target.kind:
        raise DataError(
            f"The target '{target.words}' needs {_KIND_WORDS[target.kind]}, but the estimate "
            f"recorded is in {unit!r}, which cannot be compared with it.")
    est, lo, hi = (_number(get(k)) for k in ("estimate", "ci_low", "ci_high"))
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    word: Word
    if lo is None or hi is None:
        word = "not yet clear"
    elif target.satisfied_by(lo) and target.satisfied_by(hi):
        # The values that satisfy a target form a half-line, so the two ends of the
        # interval decide for every value between them.
        word = "met"
    elif not target.satisfied_by(lo) and not target.satisfied_by(hi):
        word = "not met"
    else:
        word = "not yet clear"
    conv = _to_target_scale(target)
    e, a, b = (None if x is None else conv(x) for x in (est, lo, hi))
    figures = _figures(target, e, a, b)
    if est is None:
        why = "No estimate has been recorded yet"
    elif lo is None or hi is None:
        why = f"{figures}, with no confidence interval"
    else:
        why = figures
    sentence = f"Target: {_sentence_label(target)}. {why}: {word}."
    if as_of is not None and target.by is not None and as_of < target.by and word != "met":
        sentence += f" The target date ({_day(target.by)}) has not yet passed."
    return TargetJudgement(word=word, sentence=sentence, target=target, estimate=e,
                           ci_low=a, ci_high=b, threshold=conv(target.threshold),
                           figures=figures)


def judge_all(outcomes: Iterable[Any], records: Any) -> dict[str, TargetJudgement]:
    """Judge every outcome that has a target and a record: outcome id -> judgement.

    ``outcomes`` are theory-of-change outcomes (``id`` and ``target``); ``records`` a
    DataFrame or list of dicts with ``outcome_id`` and the record fields. Records without
    an estimate column are skipped (nothing to judge).
    """
    import pandas as pd

    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if frame.empty or "outcome_id" not in frame or "unit" not in frame:
        return {}
    rows = {str(r["outcome_id"]): r for r in frame.to_dict("records")}
    return {o.id: judge(o.target, rows[o.id]) for o in outcomes
            if o.target is not None and o.id in rows}


def count_sentence(judgements: Iterable[TargetJudgement] | Mapping[str, TargetJudgement]
                   ) -> str:
    """'Targets, judged apart from the before/after verdicts: 1 met, 0 not met, 2 not
    yet clear.' (or that no target could be judged)."""
    items = list(judgements.values() if isinstance(judgements, Mapping) else judgements)
    if not items:
        return "No outcome with a target has a result yet."
    counts = Counter(j.word for j in items)
    parts = ", ".join(f"{counts[w]} {w}" for w in TARGET_WORDS)
    return f"Targets, judged apart from the before/after verdicts: {parts}."


# --------------------------------------------------------------------------- validation


def _is_percentage(measure: str | None) -> bool:
    # The convention baseline_followup uses for its unit: *_pct measures are percentages.
    return bool(measure) and str(measure).endswith("_pct")


def estimate_kinds(analysis: str | None, measure: str | None) -> tuple[EstimateKind, ...]:
    """The kinds of estimate ``analysis`` records for ``measure`` (all kinds when no
    analysis is named: such a target is shown but not judged). For ``its`` a ratio with
    the count families and a difference with ``family: gaussian`` (the parameters say
    which; see ``evaluation.params.check_project``)."""
    if analysis is None:
        return get_args(EstimateKind)
    if analysis == "baseline_followup":
        return ("difference",)
    if analysis == "its":
        return ("ratio", "difference")
    if analysis == "referral_tracking":
        return {"needs_met": ("proportion",), "attendance_pct": ("difference",)}.get(
            str(measure), ())
    if analysis == "survey":  # a subscale's mean score or a statement's % agreeing
        return ("difference",)
    if analysis == "audit":  # the share of schools whose rating changed that moved up
        return ("proportion",)
    return ()


def _example(kind: EstimateKind, direction: str | None, measure: str | None,
             value: str = "") -> str:
    """A structured target of ``kind`` to show in a message."""
    down = direction == "lower_is_better"
    way = "fall" if down else "rise"
    if kind == "ratio":
        return f"{{change: {way}, value: {value or 20}, unit: percent}}"
    if kind == "proportion":
        least = "at_most" if down else "at_least"
        return f"{{value: {value or 70}, unit: percent, comparison: {least}}}"
    unit = "percentage_points" if _is_percentage(measure) else "points"
    return f"{{change: {way}, value: {value or 2}, unit: {unit}}}"


def compatibility_problem(target: Target, *, analysis: str | None, measure: str | None,
                          direction: str | None) -> str | None:
    """Why ``target`` cannot be judged for an outcome with this analysis, measure and
    direction (None when it can): the estimate kind, the measure's units and the
    direction must agree with the target."""
    kinds = estimate_kinds(analysis, measure)
    if analysis is not None and kinds and target.kind not in kinds:
        shown = " or ".join(_KIND_WORDS[k] for k in kinds)
        examples = " or ".join(_example(k, direction, measure) for k in kinds)
        return (f"'{target.words}' cannot be compared with what the {analysis} analysis "
                f"records for this outcome ({shown}); write it as, e.g., target: {examples}")
    if measure and target.unit in ("points", "percentage_points"):
        pct = _is_percentage(measure)
        if pct and target.unit == "points":
            return (f"'{measure}' is a percentage: write unit: percentage_points for a "
                    "change in it")
        if not pct and target.unit == "percentage_points":
            return (f"'{measure}' is not a percentage: write unit: points (its own units) "
                    "for a change in it")
    if direction is not None:
        wants = "higher_is_better" if target.side == "above" else "lower_is_better"
        if direction != wants:
            flip = target.model_copy(update={
                "comparison": "at_most" if target.comparison == "at_least" else "at_least"}
            ) if target.change is None else target.model_copy(update={
                "change": "rise" if target.change == "fall" else "fall"})
            return (f"the target asks for {target.words}, but the outcome says {direction}; "
                    f"a target is on the better side: did you mean {flip.words}?")
    return None


def free_text_message(text: str, *, analysis: str | None = None, measure: str | None = None,
                      direction: str | None = None) -> str:
    """The validation message for a target written as text: it names the structured form
    to write, with the text's number when it has one (a suggestion, never used to judge)."""
    # A number is suggested only when the text holds exactly one ("12 weeks ... above"
    # must not become a 12-point target); otherwise N marks what to fill in.
    numbers = re.findall(r"\d+(?:\.\d+)?", text)
    kinds = [k for k in estimate_kinds(analysis, measure) if k != "level"]
    kind: EstimateKind = kinds[0] if analysis is not None and kinds else (
        "proportion" if "%" in text and not re.search(r"\b(fall|down|rise|up)", text, re.I)
        else "ratio" if "%" in text else "difference")
    example = _example(kind, direction, measure, numbers[0] if len(numbers) == 1 else "N")
    quoted = text.replace('"', "'")
    return (f"a target is structured data, not text (got {text!r}); write it as, e.g., "
            f"target: {example[:-1]}, text: \"{quoted}\"}} with value a number; unit: points, "
            "percentage_points, percent or ratio; change: rise or fall for a change (left out "
            "for a level); comparison: at_least (the default) or at_most; optional by: "
            "YYYY-MM-DD")


# --------------------------------------------------------------------------- formatting


def _number(x: Any) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _g(x: float) -> str:
    return f"{x:g}"


def _day(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _to_target_scale(target: Target) -> Any:
    if target.kind == "ratio" and target.unit == "percent":
        return lambda r: (r - 1) * 100  # ratio 0.78 is a change of -22%
    if target.kind == "proportion":
        return lambda p: p * 100
    return lambda x: x


def _signed(x: float, fmt: str) -> str:
    text = format(abs(x), fmt)
    if float(text) == 0:
        return text
    return ("+" if x > 0 else "−") + text


def _figures(target: Target, e: float | None, a: float | None, b: float | None) -> str:
    """'−2.0 points (−3.1 to −0.9)', '65% (59% to 70%)', '−22% (−29% to −13%)', '0.78 (…)'."""
    if e is None:
        return ""
    if target.unit == "ratio":
        fmt, signed, pct, unit = ".2f", False, False, ""
    elif target.unit == "percent":
        fmt, signed, pct, unit = ".0f", target.change is not None, True, ""
    else:
        fmt, signed, pct, unit = ".1f", True, False, " " + _UNIT_WORDS[target.unit]

    def f(x: float) -> str:
        return (_signed(x, fmt) if signed else format(x, fmt)) + ("%" if pct else "")

    head = f(e) + unit
    return head if a is None or b is None else f"{head} ({f(a)} to {f(b)})"


def _sentence_label(target: Target) -> str:
    label = str(target)
    return label[:-1] if label.endswith(".") else label
