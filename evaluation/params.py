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

Every problem is reported as one :class:`~evaluation.errors.ParamsError` line that
names the file, the key and what is expected.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluation.errors import ParamsError
from evaluation.filters import FilterError, parse_filter
from evaluation.tables import TABLE_KINDS, TABLES, categories_problem

# Analysis name -> the notebook that reports it, in the order the runner executes them.
# The summary runs last because it reads what the others recorded.
NOTEBOOKS = {
    "overview": "00_overview.ipynb",
    "baseline_followup": "10_baseline_followup.ipynb",
    "its": "20_exclusions_its.ipynb",
    "referral_tracking": "30_referral_tracking.ipynb",
    "summary": "90_summary.ipynb",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Period(_Strict):
    start: dt.date
    end: dt.date

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


class ItsOptions(_Strict):
    data: str = "exclusions"
    outcome: str = "suspensions"
    exposure: str | None = "roll"
    time: str = "period_start"
    interruption: dt.date | list[dt.date]
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


class KpiTarget(_Strict):
    green: float
    amber: float


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


class Analyses(_Strict):
    overview: OverviewOptions | None = None
    baseline_followup: BaselineFollowupOptions | None = None
    its: ItsOptions | None = None
    referral_tracking: ReferralTrackingOptions | None = None
    summary: SummaryOptions | None = None


class ReportOptions(_Strict):
    #: "board" (the default) applies disclosure control to everything and leaves technical
    #: warnings and per-pupil figures out; "internal" shows everything and says so on every
    #: page (see evaluation.privacy.Disclosure).
    audience: Literal["board", "internal"] = "board"
    #: Counts below this are withheld from board-facing tables.
    min_count: int = Field(default=5, ge=1)

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


def _describe_error(err: dict[str, Any], raw: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in err["loc"][:-1]) or "top level"
        return f"unknown key '{loc}' (not allowed under {parent}); check its spelling"
    if kind == "missing":
        return f"missing key '{loc}'; add it"
    if kind == "value_error":  # our own validators: the message says what to do
        message = str(err["msg"]).removeprefix("Value error, ")
        return message if message.startswith(f"{loc}.") else f"key '{loc}': {message}"
    got = err.get("input")
    if isinstance(got, dict | list):
        got = type(got).__name__
    return f"key '{loc}': {err['msg']} (got {got!r})"


def load_params(path: str | Path, *, check_files: bool = True) -> ProjectParams:
    """Read and validate a project's parameters.

    Raises :class:`ParamsError` naming the file, the key and what is expected.
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
        problems = [_describe_error(e, raw) for e in exc.errors()]
        raise ParamsError(f"{path}: " + "; ".join(problems)) from None
    params._file = path.resolve()
    params._root = project_root(path)
    if check_files:
        _check_files(params)
    _check_references(params)
    return params


def _check_files(params: ProjectParams) -> None:
    toc = params.resolve(params.theory_of_change)
    if not toc.is_file():
        raise ParamsError(
            f"{params.file}: theory_of_change: file '{params.theory_of_change}' not found "
            f"(looked for {toc}); paths are relative to {params.root}"
        )
    for name, source in params.data.items():
        full = params.resolve(source.path)
        if not full.is_file():
            raise ParamsError(
                f"{params.file}: data.{name}.path: file '{source.path}' not found "
                f"(looked for {full}); put the school's export there or correct the path"
            )
        suffix = full.suffix.lower()
        if suffix not in {".csv", ".xlsx", ".xlsm"}:
            raise ParamsError(
                f"{params.file}: data.{name}.path: '{source.path}' is a {suffix or 'plain'} "
                "file; save it as .csv or .xlsx"
            )
        if source.sheet is not None and suffix == ".csv":
            raise ParamsError(
                f"{params.file}: data.{name}.sheet: '{source.path}' is a CSV file, which has "
                "no sheets; remove `sheet:`"
            )


def _check_references(params: ProjectParams) -> None:
    """Analyses must name data sources that exist and are of the right kind."""
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
    for key, name, kind in wanted:
        if name is None:
            continue
        if name not in params.data:
            raise ParamsError(
                f"{params.file}: analyses.{key}: names data source '{name}', which is not "
                f"under `data:` (sources: {', '.join(params.data) or 'none'})"
            )
        if params.data[name].kind != kind:
            raise ParamsError(
                f"{params.file}: analyses.{key}: source '{name}' is a {params.data[name].kind} "
                f"table; expected a {kind} table"
            )


_NEW_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def valid_project_id(name: str) -> bool:
    return bool(_NEW_PROJECT_ID.match(name))
