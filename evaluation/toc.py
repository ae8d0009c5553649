"""Theory of change (ToC): schema, loading, tables and diagram.

Every evalkit project starts from a theory of change with the five parts of the RSA /
Mayor of London inclusive and nurturing schools toolkit:

* **activities** - what you do and for whom, when you do it perfectly;
* **moderating factors** - the contextual conditions the work needs;
* **mediating mechanisms** - the active ingredients: what pupils and staff must experience;
* **outcomes** - measurable results;
* **aims** - the ultimate ambition;

plus the **assumptions** behind the links. A ToC is written as YAML (see
``toc_templates/blank.yaml``) and read with :func:`load_toc`, which checks the file and
raises one :class:`~evaluation.errors.ParamsError` listing every problem, one line each,
naming the file, the id and what is expected.

An outcome's ``target`` is structured data (:class:`evaluation.targets.Target`, e.g.
``{change: fall, value: 2, unit: points}``), never free text: the diagram and the outcome
table show each target's own verdict (met / not met / not yet clear) beside the
before/after verdict, and count the two apart (:func:`count_line`).

Public API: :func:`load_toc`, :func:`toc_from_dict`, :class:`TheoryOfChange` (with
``outcomes_for``, ``tables``, ``outcome_table``, ``diagram``, ``warnings``),
:func:`diagram_alt_text`, :func:`count_line`, :func:`template_path`,
:data:`VERDICT_COLOURS`, :data:`TARGET_STYLE`.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evaluation.errors import DataError, ParamsError
from evaluation.params import Direction, Problem, ProblemsError, check_direction
from evaluation.results import (
    BETTER_CAUSE_UNCLEAR,
    NOT_A_CHANGE,
    TOO_FEW,
    VERDICTS,
    WORSE_CAUSE_UNCLEAR,
)
from evaluation.targets import (
    TARGET_WORDS,
    Target,
    TargetJudgement,
    compatibility_problem,
    free_text_message,
    judge,
)

if TYPE_CHECKING:  # matplotlib is imported lazily: loading a ToC must not need a backend
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ANALYSES",
    "TEMPLATE_DIR",
    "VERDICT_COLOURS",
    "VERDICTS",
    "Activity",
    "Aim",
    "Mechanism",
    "Moderator",
    "Outcome",
    "ReportingPeriod",
    "TARGET_STYLE",
    "Target",
    "TheoryOfChange",
    "count_line",
    "diagram_alt_text",
    "load_toc",
    "template_path",
    "toc_from_dict",
]

Analysis = Literal["baseline_followup", "its", "referral_tracking", "survey", "audit"]
Status = Literal["in place", "partly", "not yet"]
Rag = Literal["green", "amber", "red"]

ANALYSES: tuple[str, ...] = get_args(Analysis)
NOT_YET_MEASURED = "not yet measured"

# Paul Tol's "light" scheme: distinguishable under the common colour-vision deficiencies
# and light enough for black text on top. The verdict is also written in the box.
VERDICT_COLOURS: dict[str, str] = {
    "improved": "#44BB99",
    BETTER_CAUSE_UNCLEAR: "#BBCC33",
    "no clear change": "#EEDD88",
    WORSE_CAUSE_UNCLEAR: "#FFAABB",
    "worsened": "#EE8866",
    TOO_FEW: "#99DDFF",
    NOT_A_CHANGE: "#FFFFFF",
    NOT_YET_MEASURED: "#DDDDDD",
}
# Okabe-Ito colours plus a distinct marker shape, and the word is always printed too.
RAG_STYLE: dict[str, tuple[str, str]] = {
    "green": ("#009E73", "o"),
    "amber": ("#E69F00", "^"),
    "red": ("#D55E00", "s"),
}
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "in place": ("#009E73", "o"),
    "partly": ("#E69F00", "^"),
    "not yet": ("#D55E00", "s"),
}
# A target verdict is its own judgement, beside the before/after verdict that colours the
# box: a marker of its own shape (and the word, always printed) rather than a colour.
TARGET_STYLE: dict[str, tuple[str, str]] = {
    "met": ("#009E73", "P"),
    "not yet clear": ("#E69F00", "D"),
    "not met": ("#D55E00", "X"),
}

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "toc_templates"

_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
_PART_NAMES = {
    "aims": "aim",
    "outcomes": "outcome",
    "mechanisms": "mechanism",
    "moderators": "moderator",
    "activities": "activity",
}


# --------------------------------------------------------------------------- schema


class _Model(BaseModel):
    """Base for every ToC part: unknown keys are errors, so a misspelt key is caught."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


# Ids are short names used in links and in results tables, so keep them simple.
IdStr = Annotated[str, StringConstraints(pattern=_ID_PATTERN, min_length=1)]
TextStr = Annotated[str, StringConstraints(min_length=1)]


class Aim(_Model):
    """The ultimate ambition the work serves."""

    id: IdStr
    statement: TextStr


class Outcome(_Model):
    """A measurable result; ``measure``/``analysis``/``data`` say how evalkit measures it.

    ``target`` is structured (:class:`~evaluation.targets.Target`), e.g.
    ``{change: fall, value: 2, unit: points}``: text is refused with a message that shows
    the form to write, and so is a target that cannot be compared with what the outcome's
    analysis records or that points the other way from ``direction``.
    """

    id: IdStr
    statement: TextStr
    measure: str | None = None
    analysis: Analysis | None = None
    data: str | None = None
    direction: Direction
    target: Target | None = None
    timescale: str | None = None
    aims: list[str] = Field(default_factory=list)

    @field_validator("direction", mode="before")
    @classmethod
    def _one_vocabulary(cls, value: Any) -> Any:
        return check_direction(value)

    @field_validator("target", mode="before")
    @classmethod
    def _structured_target(cls, value: Any, info: ValidationInfo) -> Any:
        # Targets were once free text read by a regex; now the text itself is refused,
        # with the structured form to write (fields above are in info.data when valid).
        if value is None or isinstance(value, Mapping | Target):
            return value
        d = info.data
        raise ValueError(free_text_message(str(value), analysis=d.get("analysis"),
                                           measure=d.get("measure"),
                                           direction=d.get("direction")))

    @field_validator("target")
    @classmethod
    def _comparable_target(cls, value: Target | None, info: ValidationInfo) -> Target | None:
        if value is None:
            return value
        d = info.data
        direction = d.get("direction")
        if _registry_direction(d.get("measure")) not in (None, direction):
            # the outcome's direction is itself wrong for its measure: check_project says
            # so; judging the target against the wrong direction would only confuse
            direction = None
        problem = compatibility_problem(value, analysis=d.get("analysis"),
                                        measure=d.get("measure"), direction=direction)
        if problem:
            raise ValueError(problem)
        return value


@lru_cache(maxsize=1)
def _shipped_directions() -> dict[str, str]:
    from evaluation.measures import load_registry

    return {name: "higher_is_better" if m.higher_is_better else "lower_is_better"
            for name, m in load_registry().items()}


def _registry_direction(measure: str | None) -> str | None:
    """Which way is better for a measure of the kit's registry (None if not in it)."""
    return _shipped_directions().get(measure) if measure else None


class Mechanism(_Model):
    """A mediating mechanism (active ingredient): what pupils and staff must experience."""

    id: IdStr
    statement: TextStr
    outcomes: list[str] = Field(default_factory=list)
    measure: str | None = None


class Moderator(_Model):
    """A moderating factor: a contextual condition the work needs, and how far it holds."""

    id: IdStr
    statement: TextStr
    status: Status
    evidence: str | None = None


class Activity(_Model):
    """What the project does, for whom, by whom and when; ``rag`` is its delivery status."""

    id: IdStr
    what: TextStr
    for_whom: TextStr
    delivered_by: TextStr
    when: TextStr
    outputs: list[str]
    owner: TextStr
    due: date
    rag: Rag
    mechanisms: list[str] = Field(default_factory=list)


class ReportingPeriod(_Model):
    """The board's per-period narrative: what happened, what is next, how the work ends."""

    period: TextStr
    activity_last_period: TextStr
    activity_next_period: TextStr
    exit_strategy: TextStr


class _LinkProblems(ValueError):
    """Cross-reference problems found after field validation, one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class TheoryOfChange(_Model):
    """A validated theory of change. Build it with :func:`load_toc` for readable errors."""

    title: TextStr
    aims: list[Aim] = Field(min_length=1)
    outcomes: list[Outcome] = Field(min_length=1)
    mechanisms: list[Mechanism] = Field(min_length=1)
    moderators: list[Moderator] = Field(default_factory=list)
    activities: list[Activity] = Field(min_length=1)
    assumptions: list[str] = Field(default_factory=list)
    reporting_periods: list[ReportingPeriod] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_links(self) -> TheoryOfChange:
        problems = _link_problems(self)
        if problems:
            raise _LinkProblems(problems)
        return self

    # ------------------------------------------------------------------ lookups

    def ids(self) -> dict[str, str]:
        """Map every id to its part name ("aim", "outcome", ...)."""
        out: dict[str, str] = {}
        for part, kind in _PART_NAMES.items():
            for item in getattr(self, part):
                out[item.id] = kind
        return out

    def outcome(self, outcome_id: str) -> Outcome:
        """Return the outcome with this id (``KeyError`` if none)."""
        for o in self.outcomes:
            if o.id == outcome_id:
                return o
        raise KeyError(outcome_id)

    def outcomes_for(self, analysis: str) -> list[Outcome]:
        """Outcomes evalkit measures with ``analysis`` (file order), e.g. ``"its"``."""
        if analysis not in ANALYSES:
            raise ParamsError(
                f"Unknown analysis {analysis!r} for ToC {self.title!r}: expected one of "
                f"{_or_list(ANALYSES)}."
            )
        return [o for o in self.outcomes if o.analysis == analysis]

    @property
    def warnings(self) -> list[str]:
        """Things that are allowed but worth telling the user (e.g. an outcome not measured)."""
        out: list[str] = []
        fed = {m for a in self.activities for m in a.mechanisms}
        served = {a for o in self.outcomes for a in o.aims}
        for o in self.outcomes:
            if o.measure is None:
                out.append(
                    f"Outcome {o.id!r} is not measured (no measure given): reports will show "
                    f"it as '{NOT_YET_MEASURED}'."
                )
            elif o.analysis is None:
                out.append(
                    f"Outcome {o.id!r} has measure {o.measure!r} but no analysis: add one of "
                    f"{_or_list(ANALYSES)} so evalkit analyses it."
                )
            elif o.data is None:
                out.append(
                    f"Outcome {o.id!r} names no data source (data:): the project default "
                    "will be used."
                )
            if not o.aims:
                out.append(f"Outcome {o.id!r} serves no aim: add the aim ids it serves.")
        for m in self.mechanisms:
            if m.id not in fed:
                out.append(f"Mechanism {m.id!r} is not delivered by any activity.")
        for a in self.aims:
            if a.id not in served:
                out.append(f"Aim {a.id!r} is served by no outcome.")
        if not self.moderators:
            out.append("No moderating factors listed: what conditions does the work need?")
        if not self.assumptions:
            out.append("No assumptions listed: what must be true for the links to hold?")
        return out

    # ------------------------------------------------------------------ tables

    def outcome_table(
        self,
        results: Any = None,
        *,
        audience: Literal["board", "internal"] = "board",
        measure_labels: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """One row per outcome: statement, measure, analysis, data, target, aims served.

        With ``results`` (see :meth:`diagram`) the headline and verdict are added, and
        outcomes without a result say "not yet measured"; with the record columns
        (``estimate``, ``ci_low``, ``ci_high``, ``unit``) a "Target verdict" column gives
        each target's own verdict (met / not met / not yet clear), apart from "Verdict".

        For a board (the default, as in the parameters) there is no "ID" column and no
        id anywhere: the mechanisms and aims are their statements (shortened), the measure
        its label (``measure_labels``, else the registry's, as in :meth:`diagram`) and
        the analysis and data source in words. ``audience="internal"`` keeps the ids.
        """
        board = _for_board(audience)
        mechs_for = {
            o.id: [m for m in self.mechanisms if o.id in m.outcomes] for o in self.outcomes
        }
        aim_text = {a.id: a.statement for a in self.aims}
        rows = []
        for o in self.outcomes:
            if board:
                row = {
                    "Outcome": o.statement,
                    "Measure": (_measure_label(o.measure, measure_labels) if o.measure
                                else "not measured"),
                    "Analysis": _ANALYSIS_WORDS.get(o.analysis, "") if o.analysis else "",
                    "Data": o.data.replace("_", " ") if o.data else "",
                }
            else:
                row = {
                    "ID": o.id,
                    "Outcome": o.statement,
                    "Measure": o.measure or "not measured",
                    "Analysis": o.analysis or "",
                    "Data": o.data or "",
                }
            row |= {
                "Better when": _direction_words(o.direction),
                "Target": str(o.target) if o.target else "",
                "Timescale": o.timescale or "",
                "Via mechanisms": _links([m.statement for m in mechs_for[o.id]]) if board
                else ", ".join(m.id for m in mechs_for[o.id]),
                "Serves aims": _links([aim_text[a] for a in o.aims]) if board
                else ", ".join(o.aims),
            }
            rows.append(row)
        table = pd.DataFrame(rows)
        if results is not None:
            res = _normalise_results(self, results)
            table["Headline"] = [res[o.id].headline if o.id in res else "" for o in self.outcomes]
            table["Verdict"] = [
                res[o.id].verdict if o.id in res else NOT_YET_MEASURED for o in self.outcomes
            ]
            table["Target verdict"] = [_target_state(o, res.get(o.id)) for o in self.outcomes]
        return table

    def tables(
        self,
        *,
        audience: Literal["board", "internal"] = "board",
        measure_labels: Mapping[str, str] | None = None,
    ) -> dict[str, pd.DataFrame]:
        """One readable table per part, keyed by part name, for reports.

        For a board (the default, as in the parameters) the tables show statements, never
        ids: no "ID" column, and an activity's mechanisms and a mechanism's outcomes are
        their statements, shortened (see :meth:`outcome_table`). ``audience="internal"``
        keeps the "ID" column and writes links as ids.
        """
        board = _for_board(audience)
        mech_text = {m.id: m.statement for m in self.mechanisms}
        outcome_text = {o.id: o.statement for o in self.outcomes}

        def ided(item: Any, row: dict[str, Any]) -> dict[str, Any]:
            return row if board else {"ID": item.id, **row}

        def linked(ids: list[str], text: Mapping[str, str]) -> str:
            return _links([text[i] for i in ids]) if board else ", ".join(ids)

        moderator_columns = ["Moderating factor", "Status", "Evidence"]
        out: dict[str, pd.DataFrame] = {
            "activities": pd.DataFrame(
                [
                    ided(a, {
                        "Activity": a.what,
                        "For whom": a.for_whom,
                        "Delivered by": a.delivered_by,
                        "When": a.when,
                        "Outputs": "; ".join(a.outputs),
                        "Owner": a.owner,
                        "Due": a.due.isoformat(),
                        "RAG": a.rag.capitalize(),
                        "Mechanisms": linked(a.mechanisms, mech_text),
                    })
                    for a in self.activities
                ]
            ),
            "moderators": pd.DataFrame(
                [
                    ided(m, {
                        "Moderating factor": m.statement,
                        "Status": m.status,
                        "Evidence": m.evidence or "",
                    })
                    for m in self.moderators
                ],
                columns=moderator_columns if board else ["ID", *moderator_columns],
            ),
            "mechanisms": pd.DataFrame(
                [
                    ided(m, {
                        "Mechanism": m.statement,
                        "Measure": (_measure_label(m.measure, measure_labels)
                                    if board and m.measure else m.measure or ""),
                        "Outcomes": linked(m.outcomes, outcome_text),
                    })
                    for m in self.mechanisms
                ]
            ),
            "outcomes": self.outcome_table(audience=audience, measure_labels=measure_labels),
            "aims": pd.DataFrame([ided(a, {"Aim": a.statement}) for a in self.aims]),
            "assumptions": pd.DataFrame({"Assumption": list(self.assumptions)}),
        }
        if self.reporting_periods:
            out["reporting_periods"] = pd.DataFrame(
                [
                    {
                        "Period": p.period,
                        "Activity last period": p.activity_last_period,
                        "Activity next period": p.activity_next_period,
                        "Exit strategy": p.exit_strategy,
                    }
                    for p in self.reporting_periods
                ]
            )
        return out

    # ------------------------------------------------------------------ diagram

    def diagram(
        self,
        results: Any = None,
        ax: Axes | None = None,
        *,
        measure_labels: Mapping[str, str] | None = None,
    ) -> Figure:
        """Draw the ToC as a matplotlib Figure, sized to print at scale 1 on an A4
        landscape page (:data:`DIAGRAM_SIZE`, 10.5 x 5.7 in; taller only if the text does
        not fit at 7 pt), with its text at 7 to 8 pt.

        Columns, left to right: moderating factors, activities, mechanisms, outcomes,
        aims, with arrows activity -> mechanism -> outcome -> aim. ``results`` is a
        DataFrame or list of dicts with columns ``outcome_id``, ``headline`` and
        ``verdict`` (one of "improved", "no clear change", "worsened"); each outcome box
        then shows its headline and is coloured by verdict (:data:`VERDICT_COLOURS`),
        and outcomes without a result are "not yet measured". With the record columns
        ``estimate``, ``ci_low``, ``ci_high`` and ``unit`` (as in results.json), an
        outcome with a target also shows the target's own verdict (met / not met / not
        yet clear, :func:`evaluation.targets.judge`) beside, not instead of, the
        before/after verdict, with a marker of its own (:data:`TARGET_STYLE`); the two
        are counted separately under the title. Pass ``ax`` to draw into
        an existing axes. Boxes show the statements and, for measures, their labels as
        readers know them (``measure_labels``, e.g. a project's own measures, else the
        kit registry's label), never ids. The alt text is stored on
        ``fig._evalkit_alt`` (see :func:`diagram_alt_text`). Raises ``DataError`` for
        unusable ``results``.
        """
        return _draw_diagram(self, results, ax, measure_labels)


# --------------------------------------------------------------------------- validation


def _or_list(values: Iterable[str]) -> str:
    vals = [repr(v) for v in values]
    return vals[0] if len(vals) == 1 else ", ".join(vals[:-1]) + " or " + vals[-1]


def _direction_words(direction: str) -> str:
    return "higher" if direction == "higher_is_better" else "lower"


#: Each analysis in a board's words: the same words as
#: ``evaluation.sections.summary.ANALYSIS_LABELS`` (a test keeps them equal; sections
#: import toc, so toc cannot import them).
_ANALYSIS_WORDS = {
    "baseline_followup": "baseline and follow-up",
    "its": "interrupted time series",
    "referral_tracking": "referral tracking",
    "survey": "survey",
    "audit": "school audit",
}

#: A linked statement in a table cell is cut to this many characters (at a word).
_LINK_WIDTH = 60


def _for_board(audience: str) -> bool:
    """True for a board (statements, no ids), False for internal; anything else is an
    error rather than a silent choice of what a board sees."""
    if audience not in ("board", "internal"):
        raise ValueError(f"audience must be 'board' or 'internal', not {audience!r}")
    return audience == "board"


def _links(statements: Iterable[str]) -> str:
    """Linked parts as their statements, each shortened at a word, one per '; '
    (statements may hold commas)."""
    return "; ".join(textwrap.shorten(s, _LINK_WIDTH, placeholder=" …") for s in statements)


def _link_problems(toc: TheoryOfChange) -> list[str]:
    """Duplicate ids, unknown or wrong-kind links, and parts that feed nothing."""
    problems: list[str] = []
    seen: dict[str, list[str]] = {}
    for part, kind in _PART_NAMES.items():
        for item in getattr(toc, part):
            seen.setdefault(item.id, []).append(kind)
    for ident, kinds in seen.items():
        if len(kinds) > 1:
            problems.append(
                f"id {ident!r} is used {len(kinds)} times ({', '.join(kinds)}): every id must "
                "be unique across aims, outcomes, mechanisms, moderators and activities."
            )
    kind_of = {ident: kinds[0] for ident, kinds in seen.items()}

    def check(
        owner_kind: str, owner_id: str, key: str, target_kind: str, targets: list[str]
    ) -> None:
        known = [i for i, k in kind_of.items() if k == target_kind]
        for t in targets:
            if kind_of.get(t) == target_kind:
                continue
            if t in kind_of:
                why = (
                    f"but {t!r} is an {kind_of[t]}"
                    if kind_of[t][0] in "aeiou"
                    else f"but {t!r} is a {kind_of[t]}"
                )
            else:
                close = difflib.get_close_matches(t, known, n=1)
                why = f"no {target_kind} has that id" + (
                    f" (did you mean {close[0]!r}?)" if close else ""
                )
            problems.append(
                f"{owner_kind} {owner_id!r}, key {key!r}: links to {t!r}, {why}; expected "
                f"one of the {target_kind} ids: {', '.join(known) or '(none)'}."
            )

    for a in toc.activities:
        if not a.mechanisms:
            problems.append(
                f"activity {a.id!r} feeds nothing: list under 'mechanisms' the ids of the "
                "mechanisms it delivers (or remove the activity)."
            )
        check("activity", a.id, "mechanisms", "mechanism", a.mechanisms)
    for m in toc.mechanisms:
        if not m.outcomes:
            problems.append(
                f"mechanism {m.id!r} serves no outcome: list under 'outcomes' the ids of the "
                "outcomes it leads to."
            )
        check("mechanism", m.id, "outcomes", "outcome", m.outcomes)
    for o in toc.outcomes:
        check("outcome", o.id, "aims", "aim", o.aims)
        if o.analysis is not None and o.measure is None:
            problems.append(
                f"outcome {o.id!r} names analysis {o.analysis!r} but no measure: add the "
                "measure's registry name (e.g. sdq_teacher_total) or remove the analysis."
            )
    periods = [p.period for p in toc.reporting_periods]
    for p in sorted({p for p in periods if periods.count(p) > 1}):
        problems.append(f"reporting period {p!r} appears more than once.")
    return problems


def _where(loc: tuple[Any, ...], raw: Any) -> str:
    """Turn a pydantic error location into 'outcome 3 (id 'x'), key 'direction''."""
    parts: list[str] = []
    node = raw
    i = 0
    while i < len(loc):
        key = loc[i]
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(key, str) and isinstance(nxt, int):
            items = node.get(key) if isinstance(node, Mapping) else None
            item = items[nxt] if isinstance(items, list) and nxt < len(items) else None
            label = _PART_NAMES.get(
                key, "reporting period" if key == "reporting_periods" else f"{key!r} item"
            )
            desc = f"{label} {nxt + 1}"
            name = item.get("id", item.get("period")) if isinstance(item, Mapping) else None
            if isinstance(name, str | int):
                desc += f" (id {name!r})" if key != "reporting_periods" else f" ({name!r})"
            parts.append(desc)
            node = item
            i += 2
        elif isinstance(key, int):
            parts.append(f"item {key + 1}")
            node = None
            i += 1
        else:
            parts.append(f"key {key!r}")
            node = node.get(key) if isinstance(node, Mapping) else None
            i += 1
    return ", ".join(parts) if parts else "top level"


_MODEL_AT = {
    "aims": Aim,
    "outcomes": Outcome,
    "mechanisms": Mechanism,
    "moderators": Moderator,
    "activities": Activity,
    "reporting_periods": ReportingPeriod,
}


def _explain(err: Mapping[str, Any], raw: Any) -> list[str]:
    """One readable line per pydantic error (several for our own link problems)."""
    kind = err["type"]
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if kind == "value_error" and isinstance(ctx.get("error"), _LinkProblems):
        return list(ctx["error"].problems)
    got = err.get("input")
    if kind == "extra_forbidden":
        model = _MODEL_AT.get(loc[0], TheoryOfChange) if len(loc) > 1 else TheoryOfChange
        if "target" in loc[:-1]:
            model = Target
        allowed = list(model.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = _where(loc[:-1], raw)
        return [f"{where}: unknown key {loc[-1]!r}{hint}; allowed keys: {', '.join(allowed)}."]
    where = _where(loc, raw)
    if kind == "missing":
        return [f"{where}: required key is missing."]
    if kind == "literal_error":
        return [
            f"{where}: expected {ctx.get('expected', 'one of the allowed values')}, got {got!r}."
        ]
    if kind == "string_pattern_mismatch":
        return [
            f"{where}: expected an id of letters, digits, '_' or '-' starting with a "
            f"letter, got {got!r}."
        ]
    if kind.startswith("date"):
        return [f"{where}: expected a date written as YYYY-MM-DD, got {got!r}."]
    if kind == "string_type":
        return [
            f"{where}: expected text, got {got!r} ({type(got).__name__}); "
            "put it in quotes if it is meant as text."
        ]
    if kind == "list_type":
        return [f"{where}: expected a list (lines starting with '- '), got {got!r}."]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return [f"{where}: expected a mapping of keys (key: value), got {got!r}."]
    if kind == "too_short":
        return [f"{where}: must not be empty."]
    if kind == "string_too_short":
        return [f"{where}: must not be empty."]
    if kind == "value_error":  # our own validators say what to write
        msg = str(err.get("msg")).removeprefix("Value error, ")
        return [f"{where}: {msg}{'' if msg.endswith(('.', '?', '!')) else '.'}"]
    msg = str(err.get("msg", kind))
    return [f"{where}: {msg[:1].lower()}{msg[1:]} (got {got!r})."]


def toc_from_dict(data: Any, source: str = "<dict>") -> TheoryOfChange:
    """Validate already-parsed YAML; raise one ParamsError listing every problem."""
    if not isinstance(data, Mapping):
        raise ParamsError(
            f"Theory of change {source}: expected a mapping with keys title, aims, outcomes, "
            f"mechanisms, moderators, activities, assumptions; got {type(data).__name__}."
        )
    try:
        return TheoryOfChange.model_validate(data)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors(include_url=False):
            for line in _explain(err, data):
                if line not in lines:
                    lines.append(line)
        noun = "problem" if len(lines) == 1 else "problems"
        body = "\n".join(f"- {line}" for line in lines)
        raise ProblemsError(
            [Problem(Path(source), "", line) for line in lines],
            f"Theory of change {source} has {len(lines)} {noun}:\n{body}",
        ) from None


def load_toc(path: str | Path) -> TheoryOfChange:
    """Read and validate a theory-of-change YAML file.

    Raises :class:`ParamsError` naming the file, the id/key and what is expected: for a
    missing file, bad YAML, unknown keys, wrong types or values, duplicate ids, links to
    unknown ids, an activity that feeds no mechanism or a mechanism that serves no
    outcome. Softer issues (an outcome without a measure) are in ``toc.warnings``.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"Theory of change file {p} not found.") from None
    except OSError as exc:
        raise ParamsError(f"Theory of change file {p} cannot be read: {exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ParamsError(
            f"Theory of change file {p} is not valid YAML{at}: {problem}. Check the "
            "indentation and that text containing ':' is in quotes."
        ) from None
    return toc_from_dict(data, source=str(p))


def template_path(name: str) -> Path:
    """Path of a template in ``toc_templates/`` by name, e.g. ``"demo"`` or ``"blank.yaml"``."""
    stem = name.removesuffix(".yaml")
    path = TEMPLATE_DIR / f"{stem}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.yaml"))
        raise ParamsError(
            f"No theory-of-change template {name!r} in {TEMPLATE_DIR}; available: "
            f"{', '.join(known) or '(none)'}."
        )
    return path


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class _Evidence:
    """What the diagram and tables show of one outcome's recorded result."""

    headline: str
    verdict: str
    target: TargetJudgement | None = None  # None: no target, or no estimate to judge


_RECORD_COLUMNS = ("estimate", "ci_low", "ci_high", "unit")


def _normalise_results(toc: TheoryOfChange, results: Any) -> dict[str, _Evidence]:
    """Map outcome id -> evidence, checking columns, ids and verdicts, and judging each
    target when the record columns are given."""
    if isinstance(results, pd.DataFrame):
        frame = results
    elif isinstance(results, Sequence) and not isinstance(results, str):
        frame = pd.DataFrame(list(results))
    else:
        raise DataError(
            "results must be a pandas DataFrame or a list of dicts with columns outcome_id, "
            f"headline and verdict; got {type(results).__name__}."
        )
    if frame.empty:
        return {}
    missing = [c for c in ("outcome_id", "headline", "verdict") if c not in frame.columns]
    if missing:
        raise DataError(
            f"results: missing column(s) {', '.join(missing)}; expected outcome_id, "
            "headline and verdict."
        )
    judged = all(c in frame.columns for c in _RECORD_COLUMNS)
    known = {o.id for o in toc.outcomes}
    out: dict[str, _Evidence] = {}
    for row in frame.to_dict("records"):
        oid = str(row["outcome_id"])
        verdict = str(row["verdict"]).strip().lower()
        if oid not in known:
            raise DataError(
                f"results: outcome_id {oid!r} is not an outcome of ToC {toc.title!r}; "
                f"expected one of {', '.join(sorted(known))}."
            )
        if verdict not in VERDICTS:
            raise DataError(
                f"results: outcome {oid!r} has verdict {row['verdict']!r}; expected "
                f"{_or_list(VERDICTS)}."
            )
        if oid in out:
            raise DataError(f"results: outcome {oid!r} appears more than once.")
        headline = "" if pd.isna(row["headline"]) else str(row["headline"])
        target = toc.outcome(oid).target
        judgement = None
        if judged and target is not None:
            try:
                judgement = judge(target, row)
            except DataError as exc:
                raise DataError(f"results: outcome {oid!r}: {exc}") from None
        out[oid] = _Evidence(headline, verdict, judgement)
    return out


def _target_state(outcome: Outcome, evidence: _Evidence | None) -> str:
    """The target verdict word for tables: judged, no target, or why not yet judged."""
    if outcome.target is None:
        return "no target"
    if evidence is None:
        return NOT_YET_MEASURED
    return evidence.target.word if evidence.target else "not judged (no estimate given)"


def count_line(toc: TheoryOfChange, results: Any) -> str:
    """The before/after verdicts and the target verdicts, counted separately, e.g.
    'Before/after verdicts: 3 improved, 1 no clear change, 0 worsened, 1 not yet
    measured. Targets (judged separately): 0 met, 1 not met, 2 not yet clear.'"""
    res = _normalise_results(toc, results)
    verdicts = [res[o.id].verdict if o.id in res else NOT_YET_MEASURED for o in toc.outcomes]
    core = ("improved", "no clear change", "worsened", NOT_YET_MEASURED)  # always counted
    line = "Before/after verdicts: " + ", ".join(
        f"{verdicts.count(v)} {v}" for v in (*VERDICTS, NOT_YET_MEASURED)
        if v in core or verdicts.count(v)) + "."
    words = [e.target.word for e in res.values() if e.target is not None]
    if words:
        line += " Targets (judged separately): " + ", ".join(
            f"{words.count(w)} {w}" for w in TARGET_WORDS) + "."
    return line


def diagram_alt_text(toc: TheoryOfChange, results: Any = None) -> str:
    """A plain-text description of the diagram for screen readers and report alt text."""
    res = _normalise_results(toc, results) if results is not None else {}
    # Statements may end with a full stop; drop it so the lists do not read "schools.;".
    names = {
        x.id: x.statement.rstrip(" .") for x in [*toc.aims, *toc.outcomes, *toc.mechanisms]
    }
    lines = [
        f"Theory of change diagram: {toc.title}. Five columns, read left to right: "
        f"{len(toc.moderators)} moderating factors (conditions the work needs), "
        f"{len(toc.activities)} activities, {len(toc.mechanisms)} mechanisms, "
        f"{len(toc.outcomes)} outcomes and {len(toc.aims)} aims; arrows link each activity "
        "to the mechanisms it delivers, each mechanism to its outcomes and each outcome to "
        "its aims."
    ]
    if toc.moderators:
        lines.append(
            "Moderating factors: "
            + "; ".join(f"{m.statement.rstrip(' .')} (status: {m.status})" for m in toc.moderators)
            + "."
        )
    lines.append(
        "Activities: "
        + "; ".join(
            f"{a.what} (RAG {a.rag}; leads to: {', '.join(names.get(m, m) for m in a.mechanisms)})"
            for a in toc.activities
        )
        + "."
    )
    lines.append(
        "Mechanisms: "
        + "; ".join(
            f"{names[m.id]} (leads to: {', '.join(names.get(o, o) for o in m.outcomes)})"
            for m in toc.mechanisms
        )
        + "."
    )
    outs = []
    for o in toc.outcomes:
        if o.id in res:
            ev = res[o.id]
            state = f"{ev.headline}; verdict: {ev.verdict}" if ev.headline else (
                f"verdict: {ev.verdict}")
        else:
            state = NOT_YET_MEASURED if o.measure else "no measure, not yet measured"
        if o.target is not None:
            judged = res[o.id].target if o.id in res else None
            state += f"; target: {o.target.words}" + (f", {judged.word}" if judged else "")
        serves = f"; serves: {', '.join(names.get(a, a) for a in o.aims)}" if o.aims else ""
        outs.append(f"{names[o.id]} ({state}{serves})")
    lines.append("Outcomes: " + "; ".join(outs) + ".")
    lines.append("Aims: " + "; ".join(names[a.id] for a in toc.aims) + ".")
    if results is not None:
        lines.append(count_line(toc, results))
    return " ".join(lines)


# --------------------------------------------------------------------------- diagram

#: The diagram's own size, inches: A4 landscape's printable area (297 x 210 mm less the
#: report's 15 mm side margins, 15 mm top and 17 mm bottom) less room for the section's
#: heading, lead-in and caption on the same page: 267 x 145 mm. Drawn at this size, the
#: report prints the diagram at scale 1 on its landscape page, so 7 pt text prints at 7 pt
#: (drawn on a whole A4 sheet, 11.7 x 8.3 in, and scaled to fit, it printed at 5.3-5.7 pt).
DIAGRAM_SIZE = (10.5, 5.7)
_MAX_FONT, _MIN_FONT = 8.0, 7.0
_LINE = 1.15  # line spacing inside boxes, times the font size
_PAD = 0.05  # inches of padding inside a box
_GAP = 0.07  # minimum vertical gap between boxes, inches
_MARGIN, _COL_GAP = 0.08, 0.24  # figure side margin and gap between columns, inches
_MIN_COL = 1.35  # narrowest column, inches: its two-line heading at 9 pt (+ the gaps)
_MARKER_W = 0.14  # room left of the status word for the coloured marker, inches
_COLUMNS = ("moderators", "activities", "mechanisms", "outcomes", "aims")
_HEADINGS = {
    "moderators": "Moderating factors\n(conditions needed)",
    "activities": "Activities\n(what, for whom)",
    "mechanisms": "Mechanisms\n(active ingredients)",
    "outcomes": "Outcomes\n(measurable results)",
    "aims": "Aims\n(ultimate ambition)",
}


@lru_cache(maxsize=8)
def _font(size: float) -> Any:
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=size)


@lru_cache(maxsize=8192)
def _word_width(word: str, size: float) -> float:
    """Width of ``word`` in inches at ``size`` pt (no rendering needed)."""
    from matplotlib.textpath import TextToPath

    return TextToPath().get_text_width_height_descent(word, _font(size), ismath=False)[0] / 72


def _text_width(text: str, size: float) -> float:
    """Width of one line of ``text`` in inches at ``size`` pt: the sum of its words' and
    spaces' widths, each measured once (the layout tries thousands of different lines made
    of the same few hundred words; the font sets no kerning against a space, so the sum
    equals the width of the whole line measured at once)."""
    words = text.split(" ")
    return sum(_word_width(w, size) for w in words) + (len(words) - 1) * _word_width(" ", size)


def _char_width(size: float) -> float:
    """Average character width in inches at ``size`` pt, measured on typical text."""
    sample = "Pupils experience trusted adults who respond, every day; SEMH 2025"
    return _text_width(sample, size) / len(sample)


@lru_cache(maxsize=8192)
def _wrap(text: str, width_in: float, size: float) -> tuple[str, ...]:
    """Wrap ``text`` (textwrap) to lines whose measured width fits ``width_in`` inches."""
    text = " ".join(text.split())
    # 6% to spare: a browser laying out the SVG's text with its own copy of the font, and
    # low-dpi raster output, can set a line a few percent wider than matplotlib measures.
    fit = width_in * 0.94
    # Start from an optimistic width in characters and narrow it until every line fits:
    # the average character width alone either wastes room or overflows the box.
    chars = max(8, int(width_in / (_char_width(size) * 0.9)))
    while True:
        lines = textwrap.wrap(text, chars, break_long_words=True) or [""]
        if chars <= 8 or all(_text_width(line, size) <= fit for line in lines):
            return tuple(lines)
        chars -= 1


@lru_cache(maxsize=1)
def _shipped_labels() -> dict[str, str]:
    from evaluation.measures import load_registry

    return {name: m.label for name, m in load_registry().items()}


def _measure_label(measure: str, labels: Mapping[str, str] | None) -> str:
    """A measure as readers know it: the label given (a project's own measures), else the
    kit registry's ('teacher-rated SDQ total difficulties'), else its name with
    underscores read as spaces ('needs met'): never a bare id."""
    found = (labels or {}).get(measure) or _shipped_labels().get(measure)
    if found:
        return str(found)
    return " ".join(_SHORT_FORMS.get(w.lower(), w) for w in measure.replace("_", " ").split())


#: Short forms in a measure's name read as a reader writes them ('actions_completed_pct'
#: -> 'actions completed %').
_SHORT_FORMS = {"pct": "%", "sdq": "SDQ", "sen": "SEN", "fsm": "FSM", "eal": "EAL"}


@dataclass
class _Box:
    """A box to draw: its id, kind, text lines, face colour and optional status marker."""

    id: str
    kind: str
    lines: list[str]
    face: str
    marker: tuple[str, str] | None = None  # (colour, shape) drawn before the last line
    y: float = 0.0  # top edge, inches
    h: float = 0.0


def _column(
    toc: TheoryOfChange,
    res: dict[str, _Evidence],
    name: str,
    width: float,
    size: float,
    labels: Mapping[str, str] | None,
) -> list[_Box]:
    """The boxes of one column, their text wrapped to ``width`` inches at ``size`` pt."""

    def w(text: str, indent: float = 0.0) -> list[str]:
        return list(_wrap(text, round(width - indent, 4), size))

    boxes: list[_Box] = []
    if name == "moderators":
        for m in toc.moderators:
            boxes.append(_Box(m.id, "moderator",
                              w(m.statement) + w(f"Status: {m.status}", _MARKER_W),
                              "#F2F2F2", STATUS_STYLE[m.status]))
    elif name == "activities":
        for a in toc.activities:
            lines = w(a.what) + w(f"For: {a.for_whom}") + w(f"RAG: {a.rag}", _MARKER_W)
            boxes.append(_Box(a.id, "activity", lines, "#FFFFFF", RAG_STYLE[a.rag]))
    elif name == "mechanisms":
        boxes = [_Box(m.id, "mechanism", w(m.statement), "#FFFFFF") for m in toc.mechanisms]
    elif name == "outcomes":
        for o in toc.outcomes:
            lines = w(o.statement)
            headline = res[o.id].headline if o.id in res else ""
            if o.measure:
                label = _measure_label(o.measure, labels)
                # A headline that names the measure ('Teacher-rated SDQ total difficulties
                # -2.0 points ...') says it once: the measure line would repeat it, and
                # the verdict line says which way the result went.
                if label.casefold() not in headline.casefold():
                    lines += w(f"Measure: {label} ({_direction_words(o.direction)} is better)")
            else:
                lines += w("No measure yet")
            judged = None
            if o.id in res:
                ev = res[o.id]
                verdict, judged = ev.verdict, ev.target
                lines += (w(ev.headline) if ev.headline else []) + w(f"Verdict: {verdict}")
            else:
                verdict = NOT_YET_MEASURED
                lines += w("Not yet measured")
            # The target's own verdict comes last, beside (never instead of) the verdict,
            # on the target's line, so its marker sits on the line that carries the word.
            if judged is not None and o.target is not None:
                lines += w(f"Target ({o.target.short}): {judged.word}", _MARKER_W)
            elif o.target is not None:
                lines += w(f"Target: {o.target.short}")
            marker = TARGET_STYLE[judged.word] if judged is not None else None
            boxes.append(_Box(o.id, "outcome", lines, VERDICT_COLOURS[verdict], marker))
    else:
        boxes = [_Box(a.id, "aim", w(a.statement), "#E8EEF7") for a in toc.aims]
    return boxes


def _natural_height(boxes: list[_Box], size: float) -> float:
    """A column's height with its boxes stacked at the minimum gap, inches."""
    line_h = size * _LINE / 72
    return (sum(len(b.lines) * line_h + 2 * _PAD for b in boxes)
            + _GAP * max(len(boxes) - 1, 0))


def _column_widths(
    toc: TheoryOfChange,
    res: dict[str, _Evidence],
    total: float,
    size: float,
    labels: Mapping[str, str] | None,
) -> dict[str, float]:
    """Share ``total`` inches between the columns so that the tallest is as short as it
    can be: a column with much text (outcomes with their results) gets more width than
    one with little (aims). A bisection on the tallest column's height, each column given
    the narrowest width (to 0.05 in, at least :data:`_MIN_COL`) at which it is no taller;
    what width is left is shared in proportion. Hand-written: a few lines that depend on
    the measured wrapping above, not a general optimisation problem."""
    equal = dict.fromkeys(_COLUMNS, total / len(_COLUMNS))
    if total / len(_COLUMNS) <= _MIN_COL:
        return equal
    known: dict[tuple[str, float], float] = {}

    def height(name: str, width: float) -> float:
        key = (name, round(width, 3))
        if key not in known:
            boxes = _column(toc, res, name, width - 2 * _PAD, size, labels)
            known[key] = _natural_height(boxes, size)
        return known[key]

    def narrowest(name: str, limit: float) -> float:
        lo, hi = _MIN_COL, total
        if height(name, lo) <= limit:
            return lo
        if height(name, hi) > limit:
            return float("inf")
        while hi - lo > 0.05:
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if height(name, mid) <= limit else (mid, hi)
        return hi

    best = equal
    low, high = 0.0, max(height(n, w) for n, w in equal.items())
    for _ in range(10):
        limit = (low + high) / 2
        widths = {n: narrowest(n, limit) for n in _COLUMNS}
        if sum(widths.values()) <= total:
            best, high = widths, limit
        else:
            low = limit
    used = sum(best.values())
    return {n: w * total / used for n, w in best.items()}


def _order(toc: TheoryOfChange, cols: dict[str, list[_Box]]) -> None:
    """Reorder boxes by the mean position of what they link to, to cut crossing arrows."""

    def reorder(col: str, links: dict[str, list[str]], target: str) -> None:
        pos = {b.id: i for i, b in enumerate(cols[target])}

        def key(b: _Box) -> float:
            ps = [pos[t] for t in links.get(b.id, []) if t in pos]
            return sum(ps) / len(ps) if ps else len(pos)

        cols[col].sort(key=key)  # stable: ties keep file order

    reorder("outcomes", {o.id: o.aims for o in toc.outcomes}, "aims")
    reorder("mechanisms", {m.id: m.outcomes for m in toc.mechanisms}, "outcomes")
    reorder("activities", {a.id: a.mechanisms for a in toc.activities}, "mechanisms")


def _layout(cols: dict[str, list[_Box]], size: float, top: float, bottom: float) -> float:
    """Set each box's height and top; return the tallest column's natural height."""
    line_h = size * _LINE / 72
    tallest = 0.0
    for boxes in cols.values():
        for b in boxes:
            b.h = len(b.lines) * line_h + 2 * _PAD
        natural = _natural_height(boxes, size)
        tallest = max(tallest, natural)
        avail = top - bottom
        # Spread short columns out (up to a generous gap) and centre them vertically.
        gap = _GAP
        if len(boxes) > 1 and natural < avail:
            gap = min(_GAP + (avail - natural) / (len(boxes) - 1), 0.5)
        total = sum(b.h for b in boxes) + gap * max(len(boxes) - 1, 0)
        y = top - max((avail - total) / 2, 0)
        for b in boxes:
            b.y = y
            y -= b.h + gap
    return tallest


def _legend_handles(
    toc: TheoryOfChange, res: dict[str, _Evidence], width: float
) -> tuple[list[Any], int]:
    """The legend's entries in the order matplotlib fills them (column by column) and its
    number of columns: the verdict colours the diagram shows, then the RAG / status
    markers and, where targets were judged, the target markers, read row by row in as
    many columns as fit ``width`` inches."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    shown = {e.verdict for e in res.values()} | (
        {NOT_YET_MEASURED} if any(o.id not in res for o in toc.outcomes) else set())
    entries: list[Any] = [
        Patch(facecolor=c, edgecolor="#555555", label=f"Outcome: {v}")
        for v, c in VERDICT_COLOURS.items() if v in shown
    ]

    def marker(colour: str, shape: str, label: str) -> Any:
        return Line2D([], [], marker=shape, color=colour, linestyle="none",
                      markeredgecolor="#333333", markeredgewidth=0.5, label=label)

    entries += [
        marker(c, s, f"RAG / status: {w}")
        for w, (c, s) in zip(
            ("green / in place", "amber / partly", "red / not yet"), RAG_STYLE.values(), strict=True
        )
    ]
    if any(e.target is not None for e in res.values()):
        entries += [marker(c, s, f"Target: {w}") for w, (c, s) in TARGET_STYLE.items()]
    # Each column is as wide as its widest label plus the marker and spacing (7.5 pt).
    widest = max(_text_width(e.get_label(), 7.5) for e in entries) + 0.35
    ncol = max(1, min(len(entries), int(width / widest)))
    rows = -(-len(entries) // ncol)
    blank = Patch(facecolor="none", edgecolor="none", label=" ")
    entries += [blank] * (rows * ncol - len(entries))
    return [entries[r * ncol + c] for c in range(ncol) for r in range(rows)], ncol


def _draw_diagram(
    toc: TheoryOfChange, results: Any, ax: Axes | None, labels: Mapping[str, str] | None = None
) -> Figure:
    """Draw moderators, activities, mechanisms, outcomes and aims as five linked columns.

    Moderators sit in a shaded first column (context, not a causal step, so no arrows);
    arrows run activity -> mechanism -> outcome -> aim. Outcome boxes are coloured by
    verdict and show the headline; activities and moderators carry a coloured marker and
    the status word. The figure is :data:`DIAGRAM_SIZE` unless ``ax`` is given; columns
    share the width by how much text they hold; if the text does not fit at 7 pt the figure
    is made taller rather than the text smaller.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

    res = _normalise_results(toc, results) if results is not None else {}
    if ax is None:
        fig = plt.figure(figsize=DIAGRAM_SIZE)
        ax = fig.add_axes((0, 0, 1, 1))
        own_fig = True
    else:
        fig = ax.figure  # type: ignore[assignment]
        own_fig = False
    bbox = ax.get_position()
    fw, fh = fig.get_size_inches()
    width_in, height_in = bbox.width * fw, bbox.height * fh
    usable = width_in - 2 * _MARGIN - _COL_GAP * (len(_COLUMNS) - 1)
    handles, ncol = _legend_handles(toc, res, width_in - 0.2)
    # Room above the columns: the title, the verdict counts (with results) and the
    # two-line column headings; below them: the legend's rows.
    top_room = 0.68 + (0.16 if results is not None else 0.0)
    bottom = 0.1 + 0.15 * (len(handles) // ncol)

    # Shrink the font from 8 pt towards 7 pt until the tallest column fits.
    size = _MAX_FONT
    while True:
        widths = _column_widths(toc, res, usable, size, labels)
        cols = {n: _column(toc, res, n, widths[n] - 2 * _PAD, size, labels) for n in _COLUMNS}
        tallest = max(_natural_height(b, size) for b in cols.values())
        if tallest <= height_in - top_room - bottom or size <= _MIN_FONT:
            break
        size = max(_MIN_FONT, size - 0.5)
    if own_fig and tallest > height_in - top_room - bottom:
        height_in = tallest + top_room + bottom
        fig.set_size_inches(fw, height_in)
    _order(toc, cols)
    _layout(cols, size, height_in - top_room, bottom)

    ax.set_xlim(0, width_in)
    ax.set_ylim(0, height_in)
    ax.set_axis_off()
    x_of, x = {}, _MARGIN
    for n in _COLUMNS:
        x_of[n] = x
        x += widths[n] + _COL_GAP

    ax.text(
        width_in / 2,
        height_in - 0.08,
        f"Theory of change: {toc.title}",
        ha="center",
        va="top",
        fontsize=12,
        fontweight="bold",
        parse_math=False,  # user text: a "$" is a dollar sign, not mathtext
    )
    if results is not None:
        # Before/after verdicts and target verdicts answer different questions, so they
        # are counted apart rather than added up.
        ax.text(
            width_in / 2,
            height_in - 0.3,
            count_line(toc, results),
            ha="center",
            va="top",
            fontsize=8,
            color="#333333",
        )
    # Moderators are context, not a step in the chain: a shaded panel behind the column.
    ax.add_artist(
        Rectangle(
            (x_of["moderators"] - 0.06, bottom - 0.06),
            widths["moderators"] + 0.12,
            height_in - top_room - bottom + 0.46,
            facecolor="#F7F3E8",
            edgecolor="none",
            zorder=0,
        )
    )
    for n in _COLUMNS:
        ax.text(
            x_of[n] + widths[n] / 2,
            height_in - top_room + 0.06,
            _HEADINGS[n],
            ha="center",
            va="bottom",
            fontsize=9,
            fontweight="bold",
            linespacing=1.1,
        )

    line_h = size * _LINE / 72
    space_w = _text_width("x x", size) - _text_width("xx", size)
    # No-break spaces: an SVG viewer collapses leading ordinary spaces, and the marker
    # would then sit on the word.
    indent = "\u00a0" * max(1, int(_MARKER_W / space_w + 0.99))
    anchors: dict[str, tuple[float, float, float]] = {}  # id -> (x left, x right, y mid)
    for n in _COLUMNS:
        x, col_w = x_of[n], widths[n]
        for b in cols[n]:
            patch = FancyBboxPatch(
                (x, b.y - b.h),
                col_w,
                b.h,
                boxstyle="round,pad=0,rounding_size=0.05",
                facecolor=b.face,
                edgecolor="#555555",
                linewidth=0.8,
                zorder=2,
            )
            patch.set_gid(f"toc-{b.kind}-{b.id}")
            ax.add_artist(patch)  # add_artist: limits are fixed, skip the costly autoscale
            lines = list(b.lines)
            if b.marker:
                # The status word is the last line, indented by spaces to leave room for
                # its coloured marker, so the status is never carried by colour alone.
                # (One text artist per box: text drawing dominates the render time.)
                lines[-1] = indent + lines[-1]
                y_mid = b.y - _PAD - (len(lines) - 0.5) * line_h
                ax.plot(
                    [x + _PAD + _MARKER_W / 2 - 0.02],
                    [y_mid],
                    marker=b.marker[1],
                    color=b.marker[0],
                    markersize=size * 0.9,
                    markeredgecolor="#333333",
                    markeredgewidth=0.5,
                    zorder=4,
                    linestyle="none",
                )
            txt = ax.text(
                x + _PAD,
                b.y - _PAD,
                "\n".join(lines),
                ha="left",
                va="top",
                fontsize=size,
                linespacing=_LINE,
                zorder=3,
                parse_math=False,  # user text: a "$" is a dollar sign, not mathtext
            )
            txt.set_gid(f"toc-{b.kind}-{b.id}-label")
            anchors[b.id] = (x, x + col_w, b.y - b.h / 2)

    def arrow(src: str, dst: str) -> None:
        if src in anchors and dst in anchors:
            x0, y0 = anchors[src][1], anchors[src][2]
            x1, y1 = anchors[dst][0], anchors[dst][2]
            # No shrink (it clips the path in display space, slow); stop short by hand.
            ax.add_artist(
                FancyArrowPatch(
                    (x0 + 0.01, y0),
                    (x1 - 0.01, y1),
                    arrowstyle="-|>",
                    mutation_scale=8,
                    color="#777777",
                    linewidth=0.7,
                    shrinkA=0,
                    shrinkB=0,
                    zorder=1,
                )
            )

    for a in toc.activities:
        for m in a.mechanisms:
            arrow(a.id, m)
    for m in toc.mechanisms:
        for o in m.outcomes:
            arrow(m.id, o)
    for o in toc.outcomes:
        for a in o.aims:
            arrow(o.id, a)

    ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=ncol,
        fontsize=7.5,
        frameon=False,
        handlelength=1.2,
        columnspacing=1.0,
        borderaxespad=0.2,
        labelspacing=0.3,
    )

    alt = diagram_alt_text(toc, results)
    fig._evalkit_alt = alt  # type: ignore[attr-defined]  # read by the report builder
    return fig  # type: ignore[return-value]
