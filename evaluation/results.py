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
Direction = Literal["higher_is_better", "lower_is_better"]
VERDICTS = ("improved", "no clear change", "worsened")


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
            direction: Direction) -> str:
    """'improved' or 'worsened' when the whole CI is on one side of ``null``.

    A CI that includes the null value (or is missing) gives 'no clear change'.
    """
    check_direction(direction)
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
