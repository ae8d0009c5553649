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
analysis uses the same rule.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

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


def verdict(ci_low: float, ci_high: float, *, null: float, direction: Direction) -> str:
    """'improved' or 'worsened' when the whole CI is on one side of ``null``.

    A CI that includes the null value (or is missing) gives 'no clear change'.
    """
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return "no clear change"
    if ci_low > null:
        better = direction == "higher_is_better"
    elif ci_high < null:
        better = direction == "lower_is_better"
    else:
        return "no clear change"
    return "improved" if better else "worsened"


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
