"""Registry of outcome measures, banding, SDQ scoring and SWEMWBS conversion.

The registry is ``evaluation/measures.yaml`` (package data). Every shipped value has a
``source`` note; values that could not be traced to print are left ``None`` and the source
note says so. A project may add or override measures with ``load_registry(extra=...)``.

Two kinds of reliability are kept apart, because they answer different questions:

* ``reliability`` (with ``reliability_kind``) feeds the reliable change index of Jacobson &
  Truax (1991), SE = SD * sqrt(1 - r_xx). The kit ships internal consistency (Cronbach's
  alpha, ``reliability_kind: alpha``) there: a retest correlation over months also contains
  real change in the children, which is not measurement error.
* ``retest`` (with ``retest_interval``) is the test-retest correlation in the population,
  which the regression-to-the-mean adjustment (:mod:`evaluation.rtm`, Barnett, van der
  Pols & Dobson 2005) needs together with ``population_mean`` (and ``population_sd`` for
  selection above a cut-off).

``attainment`` is true only for attainment measures (tests of reading, maths, ...): the EEF
months'-progress conversion is meant for those alone, not for SDQ, wellbeing or attendance.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

from evaluation.errors import DataError, ParamsError, describe_rows

__all__ = [
    "Measure",
    "RELIABILITY_KINDS",
    "load_registry",
    "band",
    "score_sdq",
    "swemwbs_metric",
    "SDQ_ITEMS",
    "SDQ_REVERSED",
]

_FIELDS = (
    "label", "min", "max", "higher_is_better", "reliability", "reliability_kind", "sd",
    "cutoff", "functional", "dysfunctional", "bands", "source", "conversion", "retest",
    "retest_interval", "population_mean", "population_sd", "attainment",
)
#: what a ``reliability`` value is: Cronbach's alpha or a test-retest correlation
RELIABILITY_KINDS = ("alpha", "retest")
# every numeric field that, when given, needs its own entry in ``source``
_SOURCED = ("reliability", "sd", "cutoff", "functional", "dysfunctional", "conversion",
            "retest", "population_mean", "population_sd")


@dataclass(frozen=True)
class Measure:
    """One outcome measure.

    ``bands`` is an ordered list of ``(label, low, high)``; bounds are inclusive and the
    first matching band wins. ``functional`` / ``dysfunctional`` are ``(mean, sd)`` norms
    for Jacobson & Truax (1991) cut-offs. ``reliability`` and ``sd`` feed the reliable
    change index; ``None`` means no citable value (see ``source``). ``reliability_kind``
    says whether ``reliability`` is Cronbach's alpha or a retest correlation.

    ``retest`` is the population test-retest correlation over ``retest_interval`` (text,
    e.g. "4 to 6 months"); with ``population_mean`` (and ``population_sd``) it drives the
    regression-to-the-mean adjustment (:func:`evaluation.rtm.rtm_adjust`). ``attainment``
    marks attainment measures, the only ones for which EEF months' progress is shown.
    """

    name: str
    label: str
    min: float
    max: float
    higher_is_better: bool
    reliability: float | None = None
    sd: float | None = None
    cutoff: float | None = None
    functional: tuple[float, float] | None = None
    dysfunctional: tuple[float, float] | None = None
    bands: list[tuple[str, float, float]] = field(default_factory=list)
    source: dict[str, str] = field(default_factory=dict)
    conversion: dict[int, float] | None = None
    reliability_kind: str | None = None
    retest: float | None = None
    retest_interval: str | None = None
    population_mean: float | None = None
    population_sd: float | None = None
    attainment: bool = False


def _bad(name: str, key: str, problem: str) -> ParamsError:
    return ParamsError(
        f"Measure '{name}', field '{key}': {problem}. Fix this measure in the project's "
        "parameters (fields: " + ", ".join(_FIELDS) + ")."
    )


def _number(name: str, key: str, value: Any, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(name, key, f"expected a number, got {value!r}")
    return float(value)


def _pair(name: str, key: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _bad(name, key, f"expected [mean, sd], got {value!r}")
    mean = _number(name, key, value[0], allow_none=False)
    sd = _number(name, key, value[1], allow_none=False)
    if sd <= 0:
        raise _bad(name, key, f"the SD must be positive, got {sd}")
    return (mean, sd)


def _measure(name: str, spec: Any) -> Measure:
    if not isinstance(spec, dict):
        raise _bad(name, "(all)", f"expected a mapping of fields, got {spec!r}")
    unknown = sorted(set(spec) - set(_FIELDS))
    if unknown:
        raise _bad(name, unknown[0], "unknown field")
    for key in ("label", "min", "max", "higher_is_better"):
        if key not in spec:
            raise _bad(name, key, "missing (required)")
    lo = _number(name, "min", spec["min"], allow_none=False)
    hi = _number(name, "max", spec["max"], allow_none=False)
    if lo >= hi:
        raise _bad(name, "max", f"max ({hi}) must be greater than min ({lo})")
    if not isinstance(spec["higher_is_better"], bool):
        raise _bad(name, "higher_is_better", f"expected true or false, got "
                   f"{spec['higher_is_better']!r}")
    rel = _number(name, "reliability", spec.get("reliability"))
    if rel is not None and not 0 < rel < 1:
        raise _bad(name, "reliability", f"must be between 0 and 1 (exclusive), got {rel}")
    kind = spec.get("reliability_kind")
    if kind is not None and kind not in RELIABILITY_KINDS:
        raise _bad(name, "reliability_kind", f"expected one of {', '.join(RELIABILITY_KINDS)}, "
                   f"got {kind!r}")
    sd = _number(name, "sd", spec.get("sd"))
    if sd is not None and sd <= 0:
        raise _bad(name, "sd", f"must be positive, got {sd}")
    retest = _number(name, "retest", spec.get("retest"))
    if retest is not None and not 0 < retest < 1:
        raise _bad(name, "retest", f"must be between 0 and 1 (exclusive), got {retest}")
    interval = spec.get("retest_interval")
    if interval is not None and not isinstance(interval, str):
        raise _bad(name, "retest_interval", f"expected text such as '4 to 6 months', got "
                   f"{interval!r}")
    if retest is not None and not interval:
        # the expected regression to the mean depends on the interval the r was measured over
        raise _bad(name, "retest_interval", "missing: say over what interval the retest "
                   "correlation was measured (e.g. '4 to 6 months')")
    pop_mean = _number(name, "population_mean", spec.get("population_mean"))
    pop_sd = _number(name, "population_sd", spec.get("population_sd"))
    if pop_sd is not None and pop_sd <= 0:
        raise _bad(name, "population_sd", f"must be positive, got {pop_sd}")
    if pop_mean is not None and not lo <= pop_mean <= hi:
        raise _bad(name, "population_mean", f"{pop_mean} is outside the range {lo:g} to {hi:g}")
    attainment = spec.get("attainment", False)
    if not isinstance(attainment, bool):
        raise _bad(name, "attainment", f"expected true or false, got {attainment!r}")
    bands = []
    for i, b in enumerate(spec.get("bands") or []):
        if not isinstance(b, list | tuple) or len(b) != 3 or not isinstance(b[0], str):
            raise _bad(name, "bands", f"band {i + 1} should be [label, low, high], got {b!r}")
        blo = _number(name, "bands", b[1], allow_none=False)
        bhi = _number(name, "bands", b[2], allow_none=False)
        if blo > bhi:
            raise _bad(name, "bands", f"band '{b[0]}' has low {blo} above high {bhi}")
        bands.append((b[0], blo, bhi))
    source = spec.get("source") or {}
    if not isinstance(source, dict):
        raise _bad(name, "source", "expected a mapping from field name to citation")
    conv = spec.get("conversion")
    if conv is not None:
        try:
            conv = {int(k): float(v) for k, v in conv.items()}
        except (AttributeError, TypeError, ValueError):
            raise _bad(name, "conversion", "expected a mapping of raw score to value") from None
    measure = Measure(
        name=name, label=str(spec["label"]), min=lo, max=hi,
        higher_is_better=spec["higher_is_better"], reliability=rel, sd=sd,
        cutoff=_number(name, "cutoff", spec.get("cutoff")),
        functional=_pair(name, "functional", spec.get("functional")),
        dysfunctional=_pair(name, "dysfunctional", spec.get("dysfunctional")),
        bands=bands, source={str(k): str(v) for k, v in source.items()}, conversion=conv,
        reliability_kind=kind, retest=retest, retest_interval=interval,
        population_mean=pop_mean, population_sd=pop_sd, attainment=attainment,
    )
    # every shipped number must say where it came from
    for key in _SOURCED:
        if spec.get(key) is not None and key not in source:
            raise _bad(name, "source", f"no source given for '{key}'")
    if bands and "bands" not in source:
        raise _bad(name, "source", "no source given for 'bands'")
    return measure


@functools.lru_cache(maxsize=1)
def _shipped() -> dict:
    # parsed once per process; load_registry hands out deep copies
    text = resources.files("evaluation").joinpath("measures.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def load_registry(extra: dict | None = None) -> dict[str, Measure]:
    """Load the shipped measures, plus (or overriding) a project's own ``extra`` measures.

    ``extra`` maps a measure name to the same fields as ``measures.yaml``; for a shipped
    measure only the fields given are replaced (sources are merged), so a project can add
    a reliability without restating the range. Any bad field raises ``ParamsError`` naming
    the measure and the field.
    """
    raw = copy.deepcopy(_shipped())
    if extra is not None:
        if not isinstance(extra, dict):
            raise ParamsError("The project's extra measures must be a mapping of name to fields.")
        for name, spec in extra.items():
            # A project may refine a shipped measure field by field (e.g. add a reliability
            # with its source); a new name needs every required field.
            if name in raw and isinstance(spec, dict):
                merged = {**raw[name], **spec}
                merged["source"] = {**(raw[name].get("source") or {}),
                                    **(spec.get("source") or {})}
                raw[name] = merged
            else:
                raw[name] = spec
    return {name: _measure(name, spec) for name, spec in raw.items()}


def band(scores: pd.Series | np.ndarray | list, measure: Measure) -> pd.Series:
    """Label each score with the measure's band (inclusive bounds, first match wins).

    Missing scores give missing labels. Scores outside the measure's range raise DataError.
    """
    if not measure.bands:
        raise DataError(
            f"Measure '{measure.name}' has no published bands in the registry "
            f"({measure.source.get('bands', 'no source')}). Use the raw scores instead."
        )
    s = pd.Series(scores) if not isinstance(scores, pd.Series) else scores
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isnan(x) & ((x < measure.min) | (x > measure.max)))
    if bad.size:
        raise DataError(
            f"Scores for '{measure.name}' outside its range {measure.min:g} to {measure.max:g} "
            f"at {describe_rows(s.index[bad])}. Check these scores."
        )
    labels = [b[0] for b in measure.bands]
    conds = [(x >= lo) & (x <= hi) for _, lo, hi in measure.bands]
    codes = np.select(conds, list(range(len(labels))), default=-1)
    return pd.Series(pd.Categorical.from_codes(codes, categories=labels), index=s.index,
                     name=f"{measure.name}_band")


# SDQ item order and subscales: sdqinfo.org scoring (c9.html), as listed in third-party
# R scoring code (gbiele/masterfile scripts4tests/sdq.R); see ../shared/reference/measures.yaml.
SDQ_ITEMS: dict[int, tuple[str, str]] = {
    1: ("consid", "prosocial"), 2: ("restles", "hyperactivity"), 3: ("somatic", "emotional"),
    4: ("shares", "prosocial"), 5: ("tantrum", "conduct"), 6: ("loner", "peer"),
    7: ("obeys", "conduct"), 8: ("worries", "emotional"), 9: ("caring", "prosocial"),
    10: ("fidgety", "hyperactivity"), 11: ("friend", "peer"), 12: ("fights", "conduct"),
    13: ("unhappy", "emotional"), 14: ("popular", "peer"), 15: ("distrac", "hyperactivity"),
    16: ("clingy", "emotional"), 17: ("kind", "prosocial"), 18: ("lies", "conduct"),
    19: ("bullied", "peer"), 20: ("helpout", "prosocial"), 21: ("reflect", "hyperactivity"),
    22: ("steals", "conduct"), 23: ("oldbest", "peer"), 24: ("afraid", "emotional"),
    25: ("attends", "hyperactivity"),
}
SDQ_REVERSED = (7, 11, 14, 21, 25)  # obeys, friend, popular, reflect, attends
_SDQ_TEXT = {"not true": 0, "somewhat true": 1, "certainly true": 2}
_SUBSCALES = ("emotional", "conduct", "hyperactivity", "peer", "prosocial")


def _sdq_columns(items_df: pd.DataFrame, columns: list[str] | None) -> list[str]:
    if columns is not None:
        if len(columns) != 25:
            raise DataError(f"score_sdq needs 25 item columns in item order; got {len(columns)}.")
        missing = [c for c in columns if c not in items_df.columns]
        if missing:
            raise DataError(f"SDQ item columns {missing[:5]} are not in the table.")
        return list(columns)
    names = [SDQ_ITEMS[i][0] for i in range(1, 26)]
    if all(n in items_df.columns for n in names):
        return names
    for pattern in ("sdq{}", "sdq_{}", "item{}", "item_{}", "q{}"):
        cand = [pattern.format(i) for i in range(1, 26)]
        if all(c in items_df.columns for c in cand):
            return cand
    raise DataError(
        "score_sdq could not find the 25 SDQ item columns. Name them by sdqinfo short name "
        "(consid, restles, ..., attends), or sdq1..sdq25 / item1..item25 / q1..q25, or pass "
        "columns=[...] in item order 1 to 25."
    )


def score_sdq(
    items_df: pd.DataFrame,
    informant: str = "teacher",
    *,
    columns: list[str] | None = None,
    registry: dict[str, Measure] | None = None,
) -> pd.DataFrame:
    """Score the SDQ from its 25 item responses (sdqinfo.org scoring, c9.html).

    Responses are 0 = not true, 1 = somewhat true, 2 = certainly true (the text labels are
    accepted too). Items 7 (obeys), 11 (friend), 14 (popular), 21 (reflect) and 25
    (attends) are reverse-scored (0->2, 2->0). Item-to-subscale mapping (item numbers):
    emotional 3, 8, 13, 16, 24; conduct 5, 7, 12, 18, 22; hyperactivity 2, 10, 15, 21, 25;
    peer 6, 11, 14, 19, 23; prosocial 1, 4, 9, 17, 20. A subscale is scored when at least
    3 of its 5 items are answered, prorated as ``floor(0.5 + 5 * mean(answered))`` (the
    sdqinfo rule, rounding halves up), else missing. Total difficulties = emotional +
    conduct + hyperactivity + peer (0-40); externalising = conduct + hyperactivity;
    internalising = emotional + peer. Bands for the total come from the registry
    (``sdq_<informant>_total``) when published bands are available.
    """
    if informant not in ("teacher", "parent", "self"):
        raise DataError(f"informant must be 'teacher', 'parent' or 'self', got {informant!r}.")
    cols = _sdq_columns(items_df, columns)
    values = np.empty((len(items_df), 25))
    for j, c in enumerate(cols):
        s = items_df[c]
        if not pd.api.types.is_numeric_dtype(s):
            s = s.astype("string").str.strip().str.lower().map(
                lambda v: _SDQ_TEXT.get(v, v) if isinstance(v, str) else v)
            s = pd.to_numeric(s, errors="coerce").where(~s.isna(), np.nan)
            raw_bad = items_df[c].notna() & s.isna()
        else:
            raw_bad = pd.Series(False, index=items_df.index)
        x = s.to_numpy(dtype=float, na_value=np.nan)
        bad = raw_bad.to_numpy() | (~np.isnan(x) & ~np.isin(x, (0.0, 1.0, 2.0)))
        if bad.any():
            raise DataError(
                f"SDQ item column '{c}' (item {j + 1}) has responses other than 0, 1, 2 at "
                f"{describe_rows(items_df.index[bad])}. Recode them (0 not true, 1 somewhat "
                "true, 2 certainly true) or leave blank."
            )
        values[:, j] = 2.0 - x if (j + 1) in SDQ_REVERSED else x
    out = pd.DataFrame(index=items_df.index)
    for sub in _SUBSCALES:
        idx = [i - 1 for i in range(1, 26) if SDQ_ITEMS[i][1] == sub]
        block = values[:, idx]
        answered = (~np.isnan(block)).sum(axis=1)
        total = np.nansum(block, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.floor(0.5 + 5.0 * total / answered)
        out[sub] = np.where(answered >= 3, score, np.nan)
    out["total_difficulties"] = out[["emotional", "conduct", "hyperactivity", "peer"]].sum(
        axis=1, min_count=4)
    out["externalising"] = out["conduct"] + out["hyperactivity"]
    out["internalising"] = out["emotional"] + out["peer"]
    reg = registry if registry is not None else load_registry()
    m = reg.get(f"sdq_{informant}_total")
    if m is not None and m.bands:
        out["total_band"] = band(out["total_difficulties"], m)
    return out


def swemwbs_metric(raw: pd.Series | np.ndarray | list,
                   registry: dict[str, Measure] | None = None) -> pd.Series:
    """Convert SWEMWBS raw totals (7-35, sum of seven 1-5 items) to Rasch metric scores.

    Uses the raw-to-metric table in the registry (``swemwbs.conversion``); non-integer or
    out-of-range raw totals raise DataError.
    """
    reg = registry if registry is not None else load_registry()
    table = reg["swemwbs"].conversion
    s = pd.Series(raw) if not isinstance(raw, pd.Series) else raw
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    ok = np.isnan(x) | np.isin(x, np.array(sorted(table), dtype=float))
    if not ok.all():
        raise DataError(
            f"SWEMWBS raw totals must be whole numbers from 7 to 35; see "
            f"{describe_rows(s.index[~ok])}. Sum the seven item scores (1-5) first."
        )
    lookup = np.full(36, np.nan)
    for k, v in table.items():
        lookup[k] = v
    out = np.full(len(x), np.nan)
    have = ~np.isnan(x)
    out[have] = lookup[x[have].astype(int)]
    return pd.Series(out, index=s.index, name="swemwbs_metric")
