"""The machine-readable results file that analysis notebooks share with the summary.

Each analysis notebook records, for every theory-of-change outcome it evidences, one
headline result in ``reports/<project>/results.json``::

    {
      "schema": "evalkit.results/1",
      "project": "demo",
      "records": [
        {
          "outcome_id": "suspensions",      # the theory-of-change outcome id
          "analysis": "its",                # baseline_followup | its | referral_tracking
          "measure": "suspensions",
          "estimate": 0.77, "ci_low": 0.65, "ci_high": 0.91,
          "unit": "rate ratio",             # what the estimate is
          "null": 1.0,                      # the value meaning "no change"
          "n": 21,                          # pupils, schools or referrals behind it
          "period": "2017/18 to 2023/24",
          "direction": "lower_is_better",   # or higher_is_better
          "verdict": "improved",            # improved | no clear change | worsened
          "headline": "Suspensions -23%, RR 0.77 (0.65 to 0.91)",
          "sentence": "After the programme began ... ",
          "notebook": "20_exclusions_its.ipynb"
        }
      ]
    }

The verdict is decided from the confidence interval alone (:func:`verdict`), so every
analysis uses the same rule: this module holds the ONE function that turns an interval into
improved / no clear change / worsened (tests/test_results.py fails if another appears).

Every analysis result (:class:`~evaluation.baseline_followup.PairedChange`,
:class:`~evaluation.baseline_followup.Ancova`,
:class:`~evaluation.baseline_followup.ReliableChange`, :class:`~evaluation.its.ITSResult`,
:class:`~evaluation.its.ManyResult`) follows :class:`AnalysisResult`. It is a
``typing.Protocol`` rather than a base class because the results are dataclasses with
different fields (and some members are cached properties), and because a structural type
lets results outside these modules (tracking) join by adding the members, without an
inheritance chain; ``isinstance`` works on it (``runtime_checkable``) for the tests.
Which way is better is given when a result is made (``direction=``, :data:`Direction`), so
``headline()`` takes no arguments.

Every recorded figure is printed by :func:`format_figure` (and :func:`format_interval`,
:func:`format_estimate`), so the analysis page, the summary, the index and the diagram print
the same number the same way: proportions as "65%", ratios and effect sizes to 2 decimals,
points to 1 decimal, counts as whole numbers, and one minus sign (U+2212) everywhere.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import pandas as pd

SCHEMA = "evalkit.results/1"
MINUS = "\u2212"  # the one minus sign of every printed figure (a hyphen is easy to miss)
Direction = Literal["higher_is_better", "lower_is_better"]
#: Too few cases to judge a change (below the analysis's minimum, e.g. ``min_pairs``).
TOO_FEW = "too few to judge"
#: A single group's change whose interval excludes no change, but which the design cannot
#: attribute to the work (regression to the mean, normal development): see ``verdict``.
BETTER_CAUSE_UNCLEAR = "better, cause unclear"
WORSE_CAUSE_UNCLEAR = "worse, cause unclear"
#: A result that is a level at one time (e.g. the share of referrals closed with needs met),
#: not a change: it has no before/after verdict; a target in the theory of change judges it
#: (met / not met / not yet clear, :mod:`evaluation.targets`).
NOT_A_CHANGE = "no before/after comparison"
#: Every verdict a result can carry, in the order reports list them.
VERDICTS = ("improved", BETTER_CAUSE_UNCLEAR, "no clear change", WORSE_CAUSE_UNCLEAR,
            "worsened", TOO_FEW, NOT_A_CHANGE)


@dataclass
class Result:
    outcome_id: str
    analysis: str
    measure: str | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    unit: str
    null: float
    n: int | None
    period: str
    direction: Direction
    verdict: str
    headline: str
    sentence: str
    notebook: str = ""

    def __post_init__(self) -> None:
        if self.direction not in ("higher_is_better", "lower_is_better"):
            raise ValueError(f"direction must be higher_is_better or lower_is_better, "
                             f"not {self.direction!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")


DIRECTIONS: tuple[str, ...] = ("higher_is_better", "lower_is_better")


def check_direction(direction: str) -> Direction:
    """``direction`` itself, or a ValueError naming the two accepted words."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'higher_is_better' or 'lower_is_better', "
                         f"not {direction!r}")
    return direction  # type: ignore[return-value]


def direction_of(higher_is_better: bool) -> Direction:
    """The direction word for the measures registry's ``higher_is_better`` flag."""
    return "higher_is_better" if higher_is_better else "lower_is_better"


def verdict(ci_low: float | None, ci_high: float | None, *, null: float,
            direction: Direction, attributable: bool = True) -> str:
    """'improved' or 'worsened' when the whole CI is on one side of ``null``.

    A CI that includes the null value (or is missing) gives 'no clear change'.
    ``attributable=False`` is for designs that cannot attribute a change to the work (a
    single group measured before and after, with no comparison group and no adjustment for
    regression to the mean): a CI wholly on one side then gives 'better, cause unclear' or
    'worse, cause unclear', never 'improved' or 'worsened'.
    """
    check_direction(direction)
    said = _verdict(ci_low, ci_high, null=null, direction=direction)
    if not attributable:
        return {"improved": BETTER_CAUSE_UNCLEAR, "worsened": WORSE_CAUSE_UNCLEAR}.get(said, said)
    return said


def _verdict(ci_low: float | None, ci_high: float | None, *, null: float,
             direction: Direction) -> str:
    if ci_low is None or ci_high is None or not (math.isfinite(ci_low)
                                                 and math.isfinite(ci_high)):
        return "no clear change"
    if ci_low > null:
        better = direction == "higher_is_better"
    elif ci_high < null:
        better = direction == "lower_is_better"
    else:
        return "no clear change"
    return "improved" if better else "worsened"


# ------------------------------------------------------------------ printing figures

FigureKind = Literal["proportion", "percent", "score", "points", "ratio", "count", "number"]

#: How each kind of figure is printed: (decimals, suffix, signed, scale).
_KINDS: dict[str, tuple[int, str, bool, float]] = {
    "proportion": (0, "%", False, 100.0),  # a share 0-1 printed as a percentage
    "percent": (0, "%", False, 1.0),  # already 0-100
    # a change in a mean item score (1-4 survey scales, audit levels): 0.1 is a real
    # difference there, so 2 decimals; signed like points
    "score": (2, "", True, 1.0),
    "points": (1, "", True, 1.0),  # a change or difference: always signed
    "ratio": (2, "", False, 1.0),  # rate, risk and odds ratios; effect sizes
    "count": (0, "", False, 1.0),
}


def figure_kind(unit: str | None) -> FigureKind:
    """The kind of figure a recorded ``unit`` names (the words the analyses record).

    In this order: "proportion"/"share" -> proportion; "ratio"/"effect size"/"Hedges"/
    "Cohen" -> ratio; "mean score"/"levels" (survey scales, audit levels) -> score, 2
    decimals; "point"/"difference"/"change" -> points (before "percent":
    "percentage points" are points); "%"/"percent" -> percent; "count"/"number of" ->
    count; anything else -> number.
    """
    u = (unit or "").lower()
    if "proportion" in u or "share" in u:
        return "proportion"
    if "ratio" in u or "effect size" in u or "hedges" in u or "cohen" in u:
        return "ratio"
    if "mean score" in u or "levels" in u:
        return "score"
    if "point" in u or "difference" in u or "change" in u:
        return "points"
    if "%" in u or "percent" in u:
        return "percent"
    if "count" in u or "number of" in u:
        return "count"
    return "number"


def _is_number(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def format_figure(value: float | None, unit: str | None, *, signed: bool | None = None,
                  missing: str = "–") -> str:
    """One recorded figure as every page prints it, e.g. ``format_figure(0.652,
    "proportion of closed referrals")`` -> "65%", ``(-2.04, "points")`` -> "−2.0",
    ``(0.776, "rate ratio")`` -> "0.78", ``(1234, "count")`` -> "1,234".

    The kind comes from :func:`figure_kind`; a unit of no known kind ("number") is printed
    with 2 decimals below 10, 1 below 1,000 and none above. ``signed`` (default: only for
    points) puts "+" before a positive figure; a figure that rounds to zero has no sign.
    Negative figures take the true minus sign :data:`MINUS`. A missing or non-finite value
    prints as ``missing``.
    """
    if not _is_number(value):
        return missing
    kind = figure_kind(unit)
    x = float(value)  # type: ignore[arg-type]
    if kind == "number":
        decimals = 2 if abs(x) < 10 else 1 if abs(x) < 1000 else 0
        suffix, plus, scale = "", False, 1.0
    else:
        decimals, suffix, plus, scale = _KINDS[kind]
    plus = plus if signed is None else signed
    text = f"{abs(x) * scale:,.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        sign = ""
    else:
        sign = MINUS if x < 0 else "+" if plus else ""
    return f"{sign}{text}{suffix}"


def format_interval(low: float | None, high: float | None, unit: str | None, *,
                    signed: bool | None = None, sep: str = " to ", missing: str = "–") -> str:
    """A confidence interval as every page prints it: "59% to 70%", "+1.3 to +3.5",
    "0.71 to 0.87" (each end by :func:`format_figure`); ``missing`` when an end is."""
    if not (_is_number(low) and _is_number(high)):
        return missing
    return (format_figure(low, unit, signed=signed) + sep
            + format_figure(high, unit, signed=signed))


def format_estimate(estimate: float | None, low: float | None, high: float | None,
                    unit: str | None, *, signed: bool | None = None) -> str:
    """An estimate with its interval, "65% (59% to 70%)"; the estimate alone when the
    interval is missing."""
    text = format_figure(estimate, unit, signed=signed)
    if _is_number(low) and _is_number(high):
        text += f" ({format_interval(low, high, unit, signed=signed)})"
    return text


class OutcomeLike(Protocol):
    """What :meth:`AnalysisResult.record` reads of a theory-of-change outcome."""

    id: str
    measure: str | None
    direction: Direction


@runtime_checkable
class AnalysisResult(Protocol):
    """What every analysis result offers, with these names and signatures.

    * ``summary``: a tidy DataFrame of the result's numbers.
    * ``headline()``: THE headline estimate, a dict with at least ``estimate``, ``ci_low``,
      ``ci_high``, ``unit``, ``null``, ``n`` and ``verdict`` (from :func:`verdict`, in the
      direction the result was made with).
    * ``sentence``: the plain-English result.
    * ``plot(ax=None)``: a matplotlib Figure (drawn on ``ax`` when given).
    * ``_repr_html_()``: how a notebook shows it (sentence and summary).
    * ``record(outcome, *, period=None, n=None, notebook="")``: the :class:`Result` recorded
      in results.json; ``period`` and ``n`` override what the result knows when the page
      counts other things (e.g. schools rather than periods).
    """

    direction: Direction

    @property
    def summary(self) -> pd.DataFrame: ...

    @property
    def sentence(self) -> str: ...

    def headline(self) -> dict[str, Any]: ...

    def plot(self, ax: Any = None) -> Any: ...

    def _repr_html_(self) -> str: ...

    def record(self, outcome: OutcomeLike, *, period: str | None = None, n: int | None = None,
               notebook: str = "") -> Result: ...


def repr_html(result: AnalysisResult) -> str:
    """The notebook view shared by every result: the sentence, then the summary table."""
    import html

    return (f"<p>{html.escape(result.sentence)}</p>"
            + result.summary.to_html(index=False, na_rep="", float_format="{:.3g}".format))


def make_record(result: AnalysisResult, outcome: OutcomeLike, *, analysis: str, headline: str,
                period: str | None, n: int | None, notebook: str,
                sentence: str | None = None) -> Result:
    """The :class:`Result` of ``result.headline()`` for ``outcome`` (shared by ``record``)."""
    h = result.headline()
    if outcome.direction != result.direction:
        raise ValueError(f"Outcome '{outcome.id}' says {outcome.direction} but the result was "
                         f"made with {result.direction}.")
    return Result(
        outcome_id=outcome.id, analysis=analysis, measure=outcome.measure,
        estimate=h["estimate"], ci_low=h["ci_low"], ci_high=h["ci_high"], unit=h["unit"],
        null=h["null"], n=h["n"] if n is None else n,
        period=h.get("period", "") if period is None else period,
        direction=result.direction, verdict=h["verdict"], headline=headline,
        sentence=result.sentence if sentence is None else sentence, notebook=notebook,
    )


def _clean(value: object) -> object:
    # JSON has no NaN: write null instead so other tools can read the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def record_result(results_file: str | os.PathLike, result: Result, *, project: str = "") -> None:
    """Add (or replace) the headline result of one outcome in ``results_file``."""
    path = Path(results_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schema": SCHEMA, "project": project, "records": []}
    if path.exists():
        doc = json.loads(path.read_text(encoding="utf-8"))
    record = {k: _clean(v) for k, v in asdict(result).items()}
    doc["records"] = [
        r
        for r in doc.get("records", [])
        if (r["outcome_id"], r["analysis"]) != (result.outcome_id, result.analysis)
    ] + [record]
    if project:
        doc["project"] = project
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def load_results(results_file: str | os.PathLike) -> pd.DataFrame:
    """All recorded results as a DataFrame (empty, with the columns, if none yet)."""
    path = Path(results_file)
    columns = list(Result.__dataclass_fields__)
    if not path.exists():
        return pd.DataFrame(columns=columns)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not an evalkit results file (schema {doc.get('schema')!r})")
    return pd.DataFrame(doc["records"], columns=columns)


class RecordsHeadline:
    """``_repr_html_`` and ``record`` for a result that records its ``headline_text()``:
    mixed into result classes so that each need not repeat them. ``analysis`` is the name
    recorded in results.json (a class attribute of the result)."""

    analysis: str = ""

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record of the headline (:func:`make_record`)."""
        return make_record(self, outcome, analysis=self.analysis,
                           headline=self.headline_text(), period=period, n=n,
                           notebook=notebook)
