"""Project parameters: the schema of ``params/<project>.yaml`` and its validation.

A project is described once, in one YAML file::

    project:
      id: demo                       # letters, digits, '-' and '_'; names the report folder
      title: Relational practice programme
      organisation: Synthetic Local Authority
      period: {start: 2021-09-01, end: 2024-07-31}
      synthetic: true                # label every report as synthetic data
    theory_of_change: toc_templates/demo.yaml
    data:                            # one entry per source; the name is the table kind
      pupils:                        # (pupils, scores, exclusions, referrals, interventions,
        path: data/raw/demo/pupils.xlsx  # reviews, attendance, suspensions) unless `kind:` says
        sheet: Pupils                # Excel only
        columns: {UPN: pupil_id, Forename: first_name}   # school header -> kit name
      referrals:
        path: data/raw/demo/referrals.csv
        categories:                  # free-text columns are kept only as coded categories
          reason: [SEMH, behaviour, attendance, communication]
    measures: {}                     # the project's own measures (see evaluation.measures)
    analyses:                        # which notebooks to run, with their options
      overview: {}
      baseline_followup: {subgroups: [sen_status, fsm]}
      referral_tracking:             # a row filter in the safe grammar of evaluation.filters
        disproportionality_group: "ethnicity_minor == 'Black Caribbean' and sex == 'M'"
    report: {audience: board, min_count: 5}   # audience: board (default) or internal

Relative paths are read from the project folder: the parent of ``params/`` when the
file sits in a folder called ``params``, otherwise the file's own folder.

Only the columns of the kit's tables (``evaluation.tables``) are kept at intake; a
``categories`` key must name a free-text column of that table kind. Pupil pseudonyms use a
secret key kept outside the repository (``evaluation.pseudonyms``), so the parameters hold
no salt or key: a file that still has ``project.pseudonym_salt`` is refused. Row filters
such as ``disproportionality_group`` are parsed here by a small safe grammar (never run as
Python), so a malformed or hostile expression is refused when the file is loaded.

This module is the one place that says what a run will accept: the schema, the KPI names
and directions (:data:`KPIS`), the one direction vocabulary (``higher_is_better`` /
``lower_is_better``), and the links between the theory of change, the parameters and the
data (:func:`check_project`). :func:`load_project_files` reads both files and raises one
:class:`ProblemsError` with every problem, each naming the file, the key and what to do.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evaluation.errors import ParamsError
from evaluation.filters import FilterError, parse_filter
from evaluation.tables import (
    CLOSURE_OUTCOMES,
    SUSPENSIONS_PER_PUPIL,
    TABLE_KINDS,
    TABLES,
    categories_problem,
    recode_problem,
    wide_problem,
)

if TYPE_CHECKING:
    import pandas as pd

    from evaluation.intake import ProjectData
    from evaluation.toc import TheoryOfChange

# Analysis name -> the notebook that reports it, in the order the runner executes them.
# The summary runs last because it reads what the others recorded.
NOTEBOOKS = {
    "overview": "00_overview.ipynb",
    "baseline_followup": "10_baseline_followup.ipynb",
    "its": "20_exclusions_its.ipynb",
    "referral_tracking": "30_referral_tracking.ipynb",
    # one notebook reports both (its parameters are the survey's options)
    "audit": "40_surveys_audits.ipynb",
    "survey": "40_surveys_audits.ipynb",
    "summary": "90_summary.ipynb",
}


#: Which way is better: the one vocabulary of the parameters and the theory of change.
Direction = Literal["higher_is_better", "lower_is_better"]
DIRECTIONS: tuple[str, ...] = ("higher_is_better", "lower_is_better")
# Words other parts of the kit once used, and the word to write instead.
_OTHER_DIRECTION_WORDS = {
    "higher": "higher_is_better", "increase": "higher_is_better", "up": "higher_is_better",
    "lower": "lower_is_better", "decrease": "lower_is_better", "down": "lower_is_better",
}


def direction_problem(value: Any) -> str | None:
    """Why ``value`` is not a direction the parameters or theory of change accept (None if
    it is one), naming the word to write instead."""
    if value in DIRECTIONS:
        return None
    if isinstance(value, bool):
        return f"write {'higher_is_better' if value else 'lower_is_better'} rather than {value!r}"
    word = _OTHER_DIRECTION_WORDS.get(str(value).strip().lower())
    if word:
        return f"write {word} rather than {value!r} (directions: {' or '.join(DIRECTIONS)})"
    return f"expected {' or '.join(DIRECTIONS)}, got {value!r}"


def check_direction(value: Any) -> Any:
    """A pydantic ``mode="before"`` validator body for a ``direction`` field."""
    if value is None:
        return value
    problem = direction_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: The referral pathway's KPIs (``analyses.referral_tracking.targets``) and which way each
#: is better. The one list of KPI names: tracking computes exactly these, plus
#: ``closures: <closure outcome>`` for each closure outcome (better when higher).
KPIS: dict[str, Direction] = {
    "referrals_received": "higher_is_better",
    "pct_response_within_target": "higher_is_better",
    "median_working_days_to_response": "lower_is_better",
    "p90_working_days_to_response": "lower_is_better",
    "median_days_to_first_intervention": "lower_is_better",
    "p90_days_to_first_intervention": "lower_is_better",
    "pct_lead_professional": "higher_is_better",
    "pct_sessions_attended": "higher_is_better",
    "pct_reviewed": "higher_is_better",
    "pct_needs_met": "higher_is_better",
}
#: Short names accepted in ``targets`` for the KPIs above.
KPI_ALIASES: dict[str, str] = {
    "response_within_target": "pct_response_within_target",
    "lead_professional": "pct_lead_professional",
    "dosage": "pct_sessions_attended",
    "needs_met": "pct_needs_met",
    "sessions_attended": "pct_sessions_attended",
    "reviewed": "pct_reviewed",
    "days_to_response": "median_working_days_to_response",
    "days_to_first_intervention": "median_days_to_first_intervention",
}
CLOSURES_KPI = "closures: "
CLOSURE_KPIS: tuple[str, ...] = tuple(
    CLOSURES_KPI + o for o in (*CLOSURE_OUTCOMES, "not recorded"))

#: Measures the referral-tracking analysis can evidence an outcome with, and the kind of
#: table each is measured from.
REFERRAL_TRACKING_MEASURES: dict[str, str] = {"attendance_pct": "attendance",
                                              "needs_met": "referrals"}


def kpi_name(name: str) -> str | None:
    """The KPI a target name means (a short name resolved), or None if it is no KPI."""
    kpi = KPI_ALIASES.get(name, name)
    return kpi if kpi in KPIS or kpi in CLOSURE_KPIS else None


def kpi_direction(kpi: str) -> Direction:
    """Which way a KPI (or short name) is better when its target does not say."""
    return KPIS.get(KPI_ALIASES.get(kpi, kpi), "higher_is_better")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Problems(ValueError):
    """Several problems found by one validator: (key below the field, message) each."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(m for _, m in items))
        self.items = items


def _uk_date(value: Any) -> Any:
    """A date written the UK way (``09/01/2024``, ``9-1-2024``) read as 9 January; ISO
    dates and YAML dates pass through to pydantic."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*", value)
        if match:
            day, month, year = (int(g) for g in match.groups())
            try:
                return dt.date(year, month, day)
            except ValueError:
                raise ValueError(f"{value!r} is not a date (read as day/month/year)") from None
    return value


#: A date in the parameters: ISO (2024-01-09) or UK (09/01/2024, day first).
UkDate = Annotated[dt.date, BeforeValidator(_uk_date)]


class Period(_Strict):
    start: UkDate
    end: UkDate

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class Project(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    title: str
    organisation: str = ""
    period: Period | None = None
    synthetic: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_salt(cls, data: Any) -> Any:
        if isinstance(data, dict) and "pseudonym_salt" in data:
            raise ValueError(
                "`pseudonym_salt` is no longer used: delete it. Pseudonyms now use a secret "
                "key kept outside the repository (see README, \"Data protection\")"
            )
        return data


class DataSource(_Strict):
    path: Path
    kind: Literal[TABLE_KINDS] | None = None  # type: ignore[valid-type]
    sheet: str | int | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    #: Keep only rows whose (file) columns hold these values, e.g. {level: Local authority}.
    where: dict[str, str | int | list[str | int]] = Field(default_factory=dict)
    #: Round fractional counts (some official files hold estimated counts such as 45.94);
    #: how many were rounded is reported. Off by default: a school's count must be whole.
    round_counts: bool = False
    description: str = ""
    #: Free-text columns kept as coded categories: kit column -> its allowed values, e.g.
    #: {reason: [anxiety, attendance, behaviour]}. Values are matched ignoring case.
    categories: dict[str, list[str]] = Field(default_factory=dict)
    #: The file's line that holds the headers (1 = the first line); left out, intake finds
    #: it below any title lines.
    header_row: int | None = Field(default=None, ge=1)
    #: The decimal mark of numbers stored as text: "." (the default; "1,234" is then one
    #: thousand two hundred and thirty-four) or "," ("225,00"). A decimal comma in a file
    #: that does not declare it is refused, never read as a thousands separator.
    decimal: Literal[".", ","] = "."
    #: Suspensions per pupil on roll in one period above which a count is refused as an
    #: entry error (see evaluation.tables.SUSPENSIONS_PER_PUPIL for the default's source).
    max_suspensions_per_pupil: float = Field(default=SUSPENSIONS_PER_PUPIL, gt=0)
    #: Per kit column: the school's value -> the kit's value (empty: missing), matched
    #: ignoring case and spaces, applied before the kit's built-in code lists.
    recode: dict[str, dict[str, str | int | float | bool | None]] = Field(default_factory=dict)
    #: A wide sheet: file header -> the kit values its cells belong to, e.g.
    #: {"SDQ Total (Autumn)": {measure: sdq_teacher_total, timepoint: baseline}}; the cells
    #: fill the table's value column (score, suspensions) or the column named by `into:`.
    wide: dict[str, dict[str, str | int | float | dt.date | None]] = Field(
        default_factory=dict)

    @field_validator("recode", mode="before")
    @classmethod
    def _recode_keys(cls, value: Any) -> Any:
        """Values are matched as text; YAML reads Yes/No/True/False as booleans, which
        would no longer match the cells, so they must be quoted."""
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        for col, mapping in value.items():
            if not isinstance(mapping, dict):
                raise ValueError(f"'{col}': give a mapping of file value -> kit value")
            for key in mapping:
                if isinstance(key, bool) or key is None:
                    raise ValueError(f"'{col}': the value {key!r} was read by YAML as "
                                     f"{'true/false' if key is not None else 'empty'}: put "
                                     "the file's value in quotes, e.g. 'Yes': ...")
            out[col] = {str(k): v for k, v in mapping.items()}
        return out

    @field_validator("categories")
    @classmethod
    def _lists(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for col, values in value.items():
            cleaned = [v.strip() for v in values]
            if not cleaned or any(not v for v in cleaned):
                raise ValueError(f"'{col}': give a list of non-empty values")
            folded = [v.casefold() for v in cleaned]
            twice = sorted({v for v in cleaned if folded.count(v.casefold()) > 1})
            if twice:
                raise ValueError(f"'{col}': '{twice[0]}' is listed twice")
            value[col] = cleaned
        return value


class OverviewOptions(_Strict):
    pass


class BaselineFollowupOptions(_Strict):
    scores: str = "scores"
    pupils: str | None = "pupils"
    #: Pupil characteristics to break every summary down by.
    subgroups: list[str] = Field(default_factory=lambda: ["sen_status", "fsm", "eal", "sex"])
    #: Compare the programme with the comparison group (pupils.group) by ANCOVA.
    comparison: bool = True
    #: Confidence level of every interval. Left out of ``model_dump()`` at its default, so
    #: the provenance of a project that does not set it reads as before.
    confidence: float = Field(default=0.95, gt=0, lt=1, exclude_if=lambda v: v == 0.95)
    #: Fewer pupils with both scores than this: no verdict and no effect size (issue #19).
    min_pairs: int = Field(default=10, ge=2, exclude_if=lambda v: v == 10)
    #: With ``comparison: true``, a comparison group that cannot be used stops the run;
    #: true reports the programme pupils' change instead, and its headline says so.
    allow_single_group: bool = Field(default=False, exclude_if=lambda v: v is False)
    #: The retest correlations over which a single group's regression-to-the-mean
    #: adjustment is widened: the kit's sensitivity range around the SDQ stand-in 0.62, not
    #: a published range (evaluation.baseline_followup.RETEST_RANGE); null: the registry's
    #: value alone.
    retest_range: tuple[float, float] | None = Field(
        default=(0.5, 0.75), exclude_if=lambda v: v is not None and tuple(v) == (0.5, 0.75))

    @field_validator("retest_range")
    @classmethod
    def _retest_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] <= value[1] < 1:
            raise ValueError("retest_range must be two correlations, low then high, between "
                             f"0 and 1 (exclusive); got {list(value)}")
        return value

    @field_validator("subgroups")
    @classmethod
    def _pupil_columns(cls, value: list[str]) -> list[str]:
        known = [c.name for c in TABLES["pupils"] if not c.identifier]
        unknown = [c for c in value if c not in known]
        if unknown:
            raise ValueError(_not_a_column(unknown, known, "pupils"))
        return value


def _not_a_column(names: list[str], known: list[str], kind: str) -> str:
    close = difflib.get_close_matches(names[0], known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    listed = ", ".join(f"'{n}'" for n in names)
    noun = "is not a column" if len(names) == 1 else "are not columns"
    return f"{listed} {noun} of the {kind} table{hint}; columns: {', '.join(known)}"


class ItsOptions(_Strict):
    data: str = "exclusions"
    outcome: str = "suspensions"
    exposure: str | None = "roll"
    time: str = "period_start"
    interruption: UkDate | list[UkDate]
    family: Literal["poisson", "negative_binomial", "gaussian"] = "poisson"
    seasonality: Literal["term"] | int | None = None
    autocorrelation: int | None = None
    impact: Literal["level", "slope", "level+slope"] = "level+slope"
    phase_in: int | None = None
    #: Column naming the unit (school or local authority) for per-unit fits.
    by: str | None = "school_id"
    #: Column whose values mark the programme and comparison series.
    group: str | None = "group"
    programme_value: str = "programme"
    comparison_value: str = "comparison"
    #: Why this impact model was chosen a priori (shown in the report).
    rationale: str = ""
    #: Confidence level of every interval (left out of ``model_dump()`` at its default).
    confidence: float = Field(default=0.95, gt=0, lt=1, exclude_if=lambda v: v == 0.95)
    #: How the intervals allow for autocorrelation (``evaluation.its``, "Inference"):
    #: "wald" reproduces published figures (Lopez Bernal et al. 2017). With comparison
    #: units the controlled ITS (``evaluation.controlled_its``) uses "auto" / "ar1" as its
    #: simulation-chosen AR(1) inference and "newey-west" / "wald" as Linden's ``itsa``
    #: formulas (Newey-West with ``autocorrelation`` lags, or none). Left out of
    #: ``model_dump()`` at its default.
    inference: Literal["auto", "ar1", "newey-west", "wald"] = Field(
        default="auto", exclude_if=lambda v: v == "auto")

    @model_validator(mode="after")
    def _exclusions_columns(self) -> ItsOptions:
        """Every column the options name must be one intake keeps in an exclusions table."""
        cols = {c.name: c for c in TABLES["exclusions"]}
        counts = [n for n, c in cols.items() if c.type == "int" and n != "roll"]
        problems = []
        for key in ("outcome", "exposure", "time", "by", "group"):
            name = getattr(self, key)
            if name is not None and name not in cols:
                problems.append(f"{key}: {_not_a_column([name], list(cols), 'exclusions')}")
        if self.outcome in cols and self.outcome not in counts:
            problems.append(f"outcome: '{self.outcome}' is not a count; use one of "
                            f"{', '.join(counts)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class KpiTarget(_Strict):
    """RAG thresholds of one KPI: green at or beyond ``green``, amber at or beyond ``amber``
    (beyond = above when higher is better, below when lower is better).

    These are RAG thresholds for the KPI table, not outcome targets: an outcome's target is
    structured data in the theory of change (``evaluation.targets.Target``), and a
    ``needs_met`` threshold must agree with it (:func:`check_project`)."""

    green: float
    amber: float
    #: Which way the KPI is better; left out, the KPI's own (:data:`KPIS`). Left out of
    #: ``model_dump()`` when not given.
    direction: Direction | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("direction", mode="before")
    @classmethod
    def _one_vocabulary(cls, value: Any) -> Any:
        return check_direction(value)


class ReferralTrackingOptions(_Strict):
    referrals: str = "referrals"
    interventions: str = "interventions"
    reviews: str = "reviews"
    attendance: str | None = "attendance"
    suspensions: str | None = "suspensions"
    pupils: str | None = "pupils"
    response_target_working_days: int = Field(default=2, ge=0)
    kpi_period: Literal["month", "term", "year"] = "term"
    targets: dict[str, KpiTarget] = Field(default_factory=dict)
    attendance_window_weeks: int = Field(default=6, ge=1)
    #: A row filter of the pupils table naming the focus group for disproportionality, in
    #: the safe grammar of :mod:`evaluation.filters` (parsed here, never run as Python).
    disproportionality_group: str | None = None
    #: What boards read for that group, e.g. "Black Caribbean boys": reports never show
    #: the filter itself. Without it a name is made from the filter's values.
    disproportionality_label: str | None = Field(default=None, min_length=1, max_length=80,
                                                 exclude_if=lambda v: v is None)

    @field_validator("targets")
    @classmethod
    def _known_kpis(cls, value: dict[str, KpiTarget]) -> dict[str, KpiTarget]:
        """Target names must be KPIs the pathway computes, once each, with thresholds
        in the order their direction needs."""
        problems: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        for name, target in value.items():
            kpi = kpi_name(name)
            if kpi is None:
                names = [*KPIS, *KPI_ALIASES]
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append((
                    name, f"'{name}' is not a KPI{hint}; KPIs: {', '.join(KPIS)}, "
                    f"'{CLOSURES_KPI}<closure outcome>'; short names: {', '.join(KPI_ALIASES)}"))
                continue
            if kpi in seen:
                problems.append((name, f"'{name}' and '{seen[kpi]}' are both targets for "
                                       f"{kpi}; keep one"))
            seen[kpi] = name
            direction = target.direction or kpi_direction(kpi)
            higher = direction == "higher_is_better"
            if (target.amber > target.green) if higher else (target.amber < target.green):
                problems.append((name, (
                    f"amber ({target.amber:g}) is beyond green ({target.green:g}); with "
                    f"{direction} amber must be {'below' if higher else 'above'} green")))
        if problems:
            raise _Problems(problems)
        return value

    @field_validator("disproportionality_group")
    @classmethod
    def _safe_filter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = parse_filter(value)
        except FilterError as exc:
            raise ValueError(
                f"not a filter the kit accepts ({exc}). Write conditions on pupils' "
                "columns joined by and / or, e.g. \"ethnicity_minor == 'Black Caribbean' "
                "and sex == 'M'\""
            ) from None
        known = [c.name for c in TABLES["pupils"]]
        unknown = [c for c in parsed.columns if c not in known]
        if unknown:
            raise ValueError(
                f"names '{unknown[0]}', which is not a column of the pupils table "
                f"(columns: {', '.join(known)})"
            )
        return value


class SummaryOptions(_Strict):
    pass


def _definition_problem(kind: str, value: dict[str, Any]) -> str | None:
    """Why a survey or audit definition would be refused by its analysis (None if not)."""
    # imported here: the parameters must load without the analyses' numerical stack
    if kind == "survey":
        from evaluation.surveys import Survey as model
    else:
        from evaluation.audits import Audit as model
    try:
        model.model_validate(value)
    except ValidationError as exc:
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or kind}: "
                         f"{str(e['msg']).removeprefix('Value error, ')}"
                         for e in exc.errors())
    return None


class SurveyOptions(_Strict):
    """A pupil, parent or staff survey compared between two waves (``evaluation.surveys``).

    ``survey`` is the survey's definition (``evaluation.surveys.Survey``: items with their
    statement, subscale and reverse keying, response scales); an outcome's ``measure`` is
    one of its subscales or item ids. ``design``: "independent" for anonymous waves
    (different respondents), "paired" when respondents are identified by ``pupil_id``.
    ``eligible``: pupils invited in each wave, for response rates."""

    data: str = "survey_responses"
    survey: dict[str, Any]
    before: str
    after: str
    design: Literal["independent", "paired"] = "independent"
    eligible: dict[str, int] = Field(default_factory=dict)
    #: Fewest respondents in each wave for a verdict.
    min_responses: int = Field(default=10, ge=2)
    #: Confidence level of every interval (left out of ``model_dump()`` at its default).
    confidence: float = Field(default=0.95, gt=0, lt=1, exclude_if=lambda v: v == 0.95)

    @field_validator("survey")
    @classmethod
    def _survey(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = _definition_problem("survey", value)
        if problem:
            raise ValueError(f"not a survey definition the kit accepts ({problem})")
        return value

    @model_validator(mode="after")
    def _waves(self) -> SurveyOptions:
        if self.before == self.after:
            raise ValueError(f"before and after are both '{self.before}': name two waves")
        bad = [w for w, n in self.eligible.items() if n < 1]
        if bad:
            raise ValueError(f"eligible: give a positive number of pupils invited in {bad[0]}")
        return self

    @property
    def definition(self) -> Any:
        """The survey as ``evaluation.surveys.Survey``."""
        from evaluation.surveys import Survey

        return Survey.model_validate(self.survey)

    def measures(self) -> list[str]:
        """What an outcome can measure: the survey's subscales and item ids."""
        d = self.definition
        return [*d.subscales, *(i.id for i in d.items)]


#: The audit measure of an outcome about every area together.
ALL_AUDIT_AREAS = "all_areas"


class AuditOptions(_Strict):
    """A school self-evaluation audit rated at baseline and follow-up across schools
    (``evaluation.audits``). ``audit`` is its definition (``evaluation.audits.Audit``:
    ordered levels and areas); an outcome's ``measure`` is an area id, or ``all_areas``."""

    data: str = "audit_ratings"
    audit: dict[str, Any]
    #: Fewest schools rated at both times for a verdict.
    min_schools: int = Field(default=5, ge=2)
    #: Compare the areas schools chose to work on with the others (needs `chosen`).
    chosen: bool = True
    #: Confidence level of every interval (left out of ``model_dump()`` at its default).
    confidence: float = Field(default=0.95, gt=0, lt=1, exclude_if=lambda v: v == 0.95)

    @field_validator("audit")
    @classmethod
    def _audit(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = _definition_problem("audit", value)
        if problem:
            raise ValueError(f"not an audit definition the kit accepts ({problem})")
        return value

    @property
    def definition(self) -> Any:
        """The audit as ``evaluation.audits.Audit``."""
        from evaluation.audits import Audit

        return Audit.model_validate(self.audit)

    def measures(self) -> list[str]:
        """What an outcome can measure: an area id, or all areas together."""
        return [ALL_AUDIT_AREAS, *(a["id"] for a in self.audit.get("areas", []))]


class Analyses(_Strict):
    overview: OverviewOptions | None = None
    baseline_followup: BaselineFollowupOptions | None = None
    its: ItsOptions | None = None
    referral_tracking: ReferralTrackingOptions | None = None
    survey: SurveyOptions | None = None
    audit: AuditOptions | None = None
    summary: SummaryOptions | None = None


class ReportOptions(_Strict):
    #: "board" (the default) applies disclosure control to everything and leaves technical
    #: warnings and per-pupil figures out; "internal" shows everything and says so on every
    #: page (see evaluation.privacy.Disclosure).
    audience: Literal["board", "internal"] = "board"
    #: Counts below this are withheld from board-facing tables.
    min_count: int = Field(default=5, ge=1)
    #: Also write reports/<project>/board_pack.pdf (as ``evalkit run --pdf`` does).
    pdf: bool = False

    @field_validator("audience", mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> Any:
        if value == "researcher":
            raise ValueError("'researcher' is no longer an audience: use internal "
                             "(everything shown, said on every page) or board")
        return value


class ProjectParams(_Strict):
    project: Project
    theory_of_change: Path
    data: dict[str, DataSource]
    measures: dict[str, dict[str, Any]] = Field(default_factory=dict)
    analyses: Analyses = Field(default_factory=lambda: Analyses(overview=OverviewOptions()))
    report: ReportOptions = Field(default_factory=ReportOptions)

    # Set after loading: where the file was and what its relative paths mean.
    _file: Path | None = None
    _root: Path | None = None

    @field_validator("measures")
    @classmethod
    def _measures(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each measure as the registry reads it (``direction`` becomes the registry's
        ``higher_is_better``), and every problem the registry would raise at run time."""
        from evaluation.measures import load_registry  # the registry is only needed here

        problems: list[tuple[str, str]] = []
        out: dict[str, dict[str, Any]] = {}
        for name, spec in value.items():
            spec = dict(spec)
            if "higher_is_better" in spec:
                problems.append((f"{name}.higher_is_better", (
                    "write `direction: higher_is_better` or `direction: lower_is_better` "
                    "instead of higher_is_better: true/false")))
                continue
            if "direction" in spec:
                problem = direction_problem(spec["direction"])
                if problem:
                    problems.append((f"{name}.direction", problem))
                    continue
                spec["higher_is_better"] = spec.pop("direction") == "higher_is_better"
            try:
                load_registry({name: spec})
            except ParamsError as exc:
                problems.append((name, str(exc).replace("higher_is_better", "direction")))
                continue
            out[name] = spec
        if problems:
            raise _Problems(problems)
        return out

    @field_validator("data")
    @classmethod
    def _kinds(cls, value: dict[str, DataSource]) -> dict[str, DataSource]:
        for name, source in value.items():
            if source.kind is None:
                if name not in TABLE_KINDS:
                    raise ValueError(
                        f"source '{name}' is not a table kind; add `kind:` "
                        f"(one of {', '.join(TABLE_KINDS)})"
                    )
                source.kind = name  # type: ignore[assignment]
            for col in source.categories:
                problem = categories_problem(str(source.kind), col)
                if problem:
                    raise ValueError(f"data.{name}.categories: {problem}")
            for col in source.recode:
                problem = recode_problem(str(source.kind), col)
                if problem:
                    raise ValueError(f"data.{name}.recode: {problem}")
            problem = wide_problem(str(source.kind), source.wide, source.columns)
            if problem:
                raise ValueError(f"data.{name}.wide: {problem}")
        return value

    @property
    def file(self) -> Path:
        assert self._file is not None
        return self._file

    @property
    def root(self) -> Path:
        assert self._root is not None
        return self._root

    def resolve(self, path: Path | str) -> Path:
        """An input path made absolute against the project folder."""
        path = Path(path)
        return path if path.is_absolute() else (self.root / path)

    @property
    def enabled(self) -> list[str]:
        """Enabled analyses in execution order."""
        return [name for name in NOTEBOOKS if getattr(self.analyses, name) is not None]

    def source(self, name: str) -> DataSource:
        if name not in self.data:
            raise ParamsError(
                f"{self.file}: data: no source called '{name}' "
                f"(sources: {', '.join(self.data) or 'none'}); add it under `data:`"
            )
        return self.data[name]

    def sources_of_kind(self, kind: str) -> list[str]:
        return [name for name, s in self.data.items() if s.kind == kind]

    def as_plain(self) -> dict[str, Any]:
        """The parameters as plain YAML-able data (for provenance)."""
        return self.model_dump(mode="json")


def project_root(params_file: Path) -> Path:
    params_file = params_file.resolve()
    folder = params_file.parent
    return folder.parent if folder.name == "params" else folder


@dataclass(frozen=True)
class Problem:
    """One problem of a parameters or theory-of-change file: where it is and what to do."""

    file: Path
    key: str  # dotted key of the parameters, or the part and id of the theory of change
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ProblemsError(ParamsError):
    """Every problem found in a project's parameters and theory of change, at once."""

    def __init__(self, problems: list[Problem], message: str | None = None) -> None:
        self.problems = problems
        if message is None:
            by_file: dict[Path, list[str]] = {}
            for p in problems:
                by_file.setdefault(p.file, []).append(str(p))
            message = " ".join(f"{f}: " + "; ".join(lines) for f, lines in by_file.items())
        super().__init__(message)

    def by_file(self) -> dict[Path, list[Problem]]:
        """The problems grouped by the file they are in, in the order found."""
        out: dict[Path, list[Problem]] = {}
        for p in self.problems:
            out.setdefault(p.file, []).append(p)
        return out


def describe_error(err: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for one pydantic error: several for our own multi-problem checks."""
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in err["loc"][:-1]) or "top level"
        return [(loc, f"unknown key (not allowed under {parent}); check its spelling")]
    if kind == "missing":
        return [(loc, "missing key; add it")]
    if kind == "value_error":  # our own validators: the message says what to do
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, _Problems):
            return [(f"{loc}.{sub}", message) for sub, message in error.items]
        return [(loc, str(err["msg"]).removeprefix("Value error, "))]
    got = err.get("input")
    if isinstance(got, dict | list):
        got = type(got).__name__
    return [(loc, f"{err['msg']} (got {got!r})")]


def load_params(path: str | Path, *, check_files: bool = True) -> ProjectParams:
    """Read and validate a project's parameters.

    Raises :class:`ProblemsError` (a :class:`ParamsError`) listing every problem of the
    file, each naming the file, the key and what is expected.
    """
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of keys (project, data, ...) at top level")
    try:
        params = ProjectParams.model_validate(raw)
    except ValidationError as exc:
        problems = [Problem(path, key, message)
                    for e in exc.errors() for key, message in describe_error(e)]
        raise ProblemsError(problems) from None
    params._file = path.resolve()
    params._root = project_root(path)
    found = (_check_files(params) if check_files else []) + _check_references(params)
    if found:
        raise ProblemsError([Problem(path, key, message) for key, message in found])
    return params


def _check_files(params: ProjectParams) -> list[tuple[str, str]]:
    """Every input file named must exist and be a CSV or Excel file."""
    problems = []
    toc = params.resolve(params.theory_of_change)
    if not toc.is_file():
        problems.append(("theory_of_change", (
            f"file '{params.theory_of_change}' not found (looked for {toc}); paths are "
            f"relative to {params.root}")))
    for name, source in params.data.items():
        full = params.resolve(source.path)
        suffix = full.suffix.lower()
        if not full.is_file():
            problems.append((f"data.{name}.path", (
                f"file '{source.path}' not found (looked for {full}); put the school's export "
                "there or correct the path")))
        elif suffix not in {".csv", ".xlsx", ".xlsm"}:
            problems.append((f"data.{name}.path", (
                f"'{source.path}' is a {suffix or 'plain'} file; save it as .csv or .xlsx")))
        elif source.sheet is not None and suffix == ".csv":
            problems.append((f"data.{name}.sheet", (
                f"'{source.path}' is a CSV file, which has no sheets; remove `sheet:`")))
    return problems


def _wanted_sources(params: ProjectParams) -> list[tuple[str, str | None, str]]:
    """(options key, source name, table kind) for every source an enabled analysis reads."""
    wanted: list[tuple[str, str | None, str]] = []
    a = params.analyses
    if a.baseline_followup:
        wanted += [
            ("baseline_followup.scores", a.baseline_followup.scores, "scores"),
            ("baseline_followup.pupils", a.baseline_followup.pupils, "pupils"),
        ]
    if a.its:
        wanted.append(("its.data", a.its.data, "exclusions"))
    if a.referral_tracking:
        rt = a.referral_tracking
        wanted += [
            ("referral_tracking.referrals", rt.referrals, "referrals"),
            ("referral_tracking.interventions", rt.interventions, "interventions"),
            ("referral_tracking.reviews", rt.reviews, "reviews"),
            ("referral_tracking.attendance", rt.attendance, "attendance"),
            ("referral_tracking.suspensions", rt.suspensions, "suspensions"),
            ("referral_tracking.pupils", rt.pupils, "pupils"),
        ]
    if a.survey:
        wanted.append(("survey.data", a.survey.data, "survey_responses"))
    if a.audit:
        wanted.append(("audit.data", a.audit.data, "audit_ratings"))
    return wanted


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _source_problem(params: ProjectParams, name: str, kind: str) -> str | None:
    if name not in params.data:
        return (f"names data source '{name}', which is not under `data:` in {params.file.name} "
                f"(sources: {', '.join(params.data) or 'none'})")
    if params.data[name].kind != kind:
        return (f"source '{name}' is {_a(str(params.data[name].kind))} table; expected "
                f"{_a(kind)} table")
    return None


def _check_references(params: ProjectParams) -> list[tuple[str, str]]:
    """Analyses must name data sources that exist and are of the right kind."""
    problems = []
    for key, name, kind in _wanted_sources(params):
        problem = None if name is None else _source_problem(params, name, kind)
        if problem:
            problems.append((f"analyses.{key}", problem))
    return problems


def check_project(params: ProjectParams, toc: TheoryOfChange,
                  data: Mapping[str, pd.DataFrame] | ProjectData | None = None) -> list[Problem]:
    """Every problem between the theory of change and the parameters (and, given the
    project's tables by source name, e.g. ``intake.load_data(params)``, the data), so that
    ``validate`` finds what the analyses would otherwise stop on mid-notebook.

    An outcome measured by an analysis that is not enabled is not a problem: the summary
    reports it as not yet measured (see :func:`project_notes`).
    """
    from evaluation.measures import load_registry

    toc_file = params.resolve(params.theory_of_change)
    problems: list[Problem] = []
    enabled = set(params.enabled)
    registry = load_registry(params.measures)
    a = params.analyses
    for o in toc.outcomes:
        if o.analysis is None or o.analysis not in enabled or o.measure is None:
            continue

        def add(key: str, message: str, o_id: str = o.id) -> None:
            problems.append(Problem(toc_file, f"outcome '{o_id}', key '{key}'", message))

        if o.analysis == "baseline_followup" and a.baseline_followup:
            source, kind = o.data or a.baseline_followup.scores, "scores"
            measure = registry.get(o.measure)
            if measure is None:
                add("measure", f"'{o.measure}' is neither in the kit's registry nor under "
                    f"`measures:` in {params.file.name}; known measures: "
                    f"{', '.join(sorted(registry))}")
            elif (o.direction == "higher_is_better") != measure.higher_is_better:
                right = "higher_is_better" if measure.higher_is_better else "lower_is_better"
                add("direction", f"{o.direction}, but '{o.measure}' is a measure where "
                    f"{right}; write direction: {right}")
        elif o.analysis == "its" and a.its:
            source, kind = o.data or a.its.data, "exclusions"
            counts = [c.name for c in TABLES["exclusions"] if c.type == "int" and c.name != "roll"]
            if o.measure not in counts:
                add("measure", f"'{o.measure}' is not a count of the exclusions table; the "
                    f"interrupted time series analyses one of {', '.join(counts)}")
        elif o.analysis == "referral_tracking" and a.referral_tracking:
            kind = REFERRAL_TRACKING_MEASURES.get(o.measure, "")
            source = o.data or getattr(a.referral_tracking, kind, None) or kind
            if not kind:
                usable = " or ".join(f"{m} (data: {_a(k)} table)"
                                     for m, k in REFERRAL_TRACKING_MEASURES.items())
                add("measure", f"'{o.measure}' is not a measure the referral-tracking "
                    f"analysis can evidence; use {usable}")
                continue
        elif (o.analysis == "survey" and a.survey) or (o.analysis == "audit" and a.audit):
            options = a.survey if o.analysis == "survey" else a.audit
            kind = "survey_responses" if o.analysis == "survey" else "audit_ratings"
            source = o.data or options.data
            usable = options.measures()
            if o.measure not in usable:
                what = ("a subscale or statement id of the survey" if o.analysis == "survey"
                        else f"an area id of the audit or {ALL_AUDIT_AREAS}")
                add("measure", f"'{o.measure}' is not {what} under analyses.{o.analysis} in "
                    f"{params.file.name}; use one of {', '.join(usable)}")
        else:
            continue
        problem = _source_problem(params, source, kind)
        if problem:
            add("data", problem)
    problems += _toc_target_problems(params, toc)
    if data is not None:
        problems += _data_problems(params, toc, data)
        problems += _survey_audit_problems(params, data)
    return problems


def _survey_audit_problems(params: ProjectParams,
                           data: Mapping[str, pd.DataFrame] | ProjectData) -> list[Problem]:
    """What the survey and audit analyses would stop on, found by their own reading of the
    tables: statements or areas the definition does not name, answers or ratings that are
    not one of its levels, an answer given twice. (A wave with no responses yet is not a
    problem: its outcomes are reported as not yet measured.)"""
    from evaluation.errors import DataError

    problems: list[Problem] = []
    survey, audit = params.analyses.survey, params.analyses.audit
    if survey is not None and survey.data in data:
        from evaluation.surveys import scale_scores

        try:
            scale_scores(data[survey.data], survey.definition)
        except DataError as exc:
            problems.append(Problem(params.file, "analyses.survey", (
                f"the {survey.data} table does not fit the survey's definition: {exc}")))
    if audit is not None and audit.data in data:
        from evaluation.audits import school_changes

        try:
            school_changes(data[audit.data], audit.definition)
        except DataError as exc:
            problems.append(Problem(params.file, "analyses.audit", (
                f"the {audit.data} table does not fit the audit's definition: {exc}")))
    return problems


def _toc_target_problems(params: ProjectParams, toc: TheoryOfChange) -> list[Problem]:
    """Targets the run could not judge, which the theory of change alone cannot see: on an
    interrupted time series the family decides what is estimated (a ratio for counts, a
    difference for gaussian), and a needs-met target must agree with the green threshold
    of a ``needs_met`` KPI target in the parameters (a board must not see two targets)."""
    toc_file = params.resolve(params.theory_of_change)
    problems: list[Problem] = []
    its, rt = params.analyses.its, params.analyses.referral_tracking
    for o in toc.outcomes:
        t, key = o.target, f"outcome '{o.id}', key 'target'"
        if t is None or o.analysis not in params.enabled:
            continue
        if o.analysis == "its" and its is not None:
            wanted = "difference" if its.family == "gaussian" else "ratio"
            if t.kind != wanted:
                way = "fall" if o.direction == "lower_is_better" else "rise"
                example = (f"{{change: {way}, value: 2, unit: points}}" if wanted == "difference"
                           else f"{{change: {way}, value: 20, unit: percent}}")
                estimate = ("a difference in the series' own units" if wanted == "difference"
                            else "a ratio (observed to expected events)")
                problems.append(Problem(toc_file, key, (
                    f"'{t.words}' cannot be judged: analyses.its.family is {its.family} in "
                    f"{params.file.name}, which estimates {estimate}; write e.g. "
                    f"target: {example}")))
        if (o.analysis == "referral_tracking" and o.measure == "needs_met" and rt is not None
                and t.kind == "proportion"):
            for name in ("needs_met", "pct_needs_met"):
                kpi = rt.targets.get(name)
                if kpi is not None and abs(kpi.green - t.value) > 1e-9:
                    problems.append(Problem(toc_file, key, (
                        f"{t.value:g}%, but the green threshold of analyses.referral_tracking."
                        f"targets.{name} in {params.file.name} is {kpi.green:g}%: make the two "
                        "agree")))
    return problems


def _data_problems(params: ProjectParams, toc: TheoryOfChange,
                   data: Mapping[str, pd.DataFrame] | ProjectData) -> list[Problem]:
    """What needs the tables: measures with no rows, an interruption outside the series."""
    import pandas as pd

    problems: list[Problem] = []
    a = params.analyses
    if a.baseline_followup:
        toc_file = params.resolve(params.theory_of_change)
        for o in toc.outcomes_for("baseline_followup"):
            name = o.data or a.baseline_followup.scores
            table = data[name] if name in data else None
            if table is None or "measure" not in table or o.measure is None:
                continue
            found = pd.unique(table["measure"].dropna().astype(str))
            if o.measure not in set(found):
                shown = (", ".join(f"'{m}'" for m in sorted(found)) if len(found) <= 20
                         else f"{len(found)} different values (is the right column mapped "
                              "to measure?)")
                problems.append(Problem(toc_file, f"outcome '{o.id}', key 'measure'", (
                    f"the {o.data or a.baseline_followup.scores} table has no rows for "
                    f"measure '{o.measure}' (measures found: {shown or 'none'}); correct the "
                    "measure here or the values in the file")))
    if a.its and a.its.data in data and a.its.time in data[a.its.data]:
        problems += _interruption_problems(params, data[a.its.data][a.its.time])
    its_table = data[a.its.data] if a.its and a.its.data in data else None
    if (its_table is not None and isinstance(a.its.interruption, list)
            and len(a.its.interruption) > 1 and a.its.group in its_table
            and its_table[a.its.group].astype("string").str.strip()
            .eq(a.its.comparison_value).any()):
        # evaluation.sections.its: comparison units make the headline a controlled ITS
        problems.append(Problem(params.file, "analyses.its.interruption", (
            "the comparison units are analysed as a controlled interrupted time series, "
            "which models one interruption; give one date, or set group: null to analyse "
            "every unit as one series")))
    return problems


def _interruption_problems(params: ProjectParams, times: pd.Series) -> list[Problem]:
    """The interruption must leave at least one period of the series before it and fall no
    later than one period after the last.

    The periods are the distinct dates of the time column, dates within three weeks of each
    other taken as one period (schools' terms start a few days apart); this mirrors the
    check of ``evaluation.its.fit`` without fitting anything.
    """
    import pandas as pd

    its = params.analyses.its
    assert its is not None
    dates = pd.Series(pd.to_datetime(times, errors="coerce").dropna().unique()).sort_values()
    if dates.empty:
        return []
    new_period = dates.diff() > pd.Timedelta(days=21)
    starts = dates.groupby(new_period.cumsum().to_numpy()).min().reset_index(drop=True)
    step = starts.diff().median() if len(starts) > 1 else pd.Timedelta(0)
    first, last = dates.iloc[0].date(), dates.iloc[-1].date()
    problems = []
    for when in its.interruption if isinstance(its.interruption, list) else [its.interruption]:
        stamp = pd.Timestamp(when)
        if len(starts) < 2 or stamp < starts.iloc[1] - pd.Timedelta(days=21):
            why = "leaves no period of the series before it"
        elif stamp >= starts.iloc[-1] + step:
            why = "is after the series ends"
        else:
            continue
        problems.append(Problem(params.file, "analyses.its.interruption", (
            f"{when} {why} (the {its.data} table's {its.time} runs from {first} to {last}); "
            "an interrupted time series needs periods before and after the interruption")))
    return problems


def project_notes(params: ProjectParams, toc: TheoryOfChange) -> list[str]:
    """Things allowed but worth telling the user at ``validate``: outcomes whose analysis
    is not enabled, which the summary will show as not yet measured."""
    enabled = set(params.enabled)
    return [f"outcome '{o.id}' is measured by {o.analysis}, which is not enabled under "
            f"`analyses:` in {params.file.name}: the summary will show it as not yet measured"
            for o in toc.outcomes if o.analysis and o.measure and o.analysis not in enabled]


def load_project_files(path: str | Path) -> tuple[ProjectParams, TheoryOfChange]:
    """Read a project's parameters and theory of change and check them together.

    Raises one :class:`ProblemsError` with every problem of both files and of the links
    between them (nothing about the data: see :func:`check_project` with ``data``).
    """
    from evaluation.toc import load_toc

    problems: list[Problem] = []
    try:
        params = load_params(path)
    except ProblemsError as exc:
        problems += exc.problems
        params = None
    toc = None
    toc_path = _toc_path(Path(path), params)
    if toc_path is not None and toc_path.is_file():
        try:
            toc = load_toc(toc_path)
        except ProblemsError as exc:
            problems += exc.problems
        except ParamsError as exc:  # not found, not YAML: one message naming the file
            problems.append(Problem(toc_path, "", str(exc)))
    if params is not None and toc is not None:
        problems += check_project(params, toc)
    if problems or params is None or toc is None:
        raise ProblemsError(problems)
    return params, toc


def _toc_path(path: Path, params: ProjectParams | None) -> Path | None:
    """Where the theory of change is, even when the parameters did not validate."""
    if params is not None:
        return params.resolve(params.theory_of_change)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = raw.get("theory_of_change") if isinstance(raw, dict) else None
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(name, str):
        return None
    toc = Path(name)
    return toc if toc.is_absolute() else project_root(path) / toc


_NEW_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def valid_project_id(name: str) -> bool:
    return bool(_NEW_PROJECT_ID.match(name))
