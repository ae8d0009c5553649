"""One object that a report notebook opens: parameters, theory of change, data, results.

A notebook's first code cell is ``project = open_project(params_file, results_file)``;
everything it shows after that comes from library functions given ``project``'s tables.

An analysis notebook names its analysis and passes its option parameters::

    project = open_project(params_file, results_file or None, "baseline_followup",
                           comparison=comparison, confidence=confidence)
    options = project.options  # analyses.baseline_followup, with those not None replacing

so that ``papermill -p comparison False`` changes the analysis. The overrides are checked
by the same pydantic class as the params file (same messages), and the names papermill
injected are checked against the notebook's parameters: papermill itself only warns
about an unknown one ("Passed unknown parameter") and runs on without it.
"""

from __future__ import annotations

import ast
import datetime as dt
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from evaluation import __version__
from evaluation.errors import ParamsError
from evaluation.intake import ProjectData, load_data, sha256_file
from evaluation.params import Analyses, ProjectParams, describe_error, load_params
from evaluation.privacy import Disclosure
from evaluation.pseudonyms import key_fingerprint
from evaluation.results import Result, load_results, record_result
from evaluation.toc import TheoryOfChange, load_toc


@dataclass
class Project:
    params: ProjectParams
    toc: TheoryOfChange
    data: ProjectData
    results_file: Path
    opened: dt.datetime = field(default_factory=lambda: dt.datetime.now().replace(microsecond=0))
    #: The analysis the notebook reports (``open_project``'s ``analysis``), if any.
    analysis: str | None = None
    #: What an analysis worked out once for this project and its sections share (e.g. the
    #: referral register): it lives and dies with the project.
    computed: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                     compare=False)  # (not carried over by replace())

    @property
    def options(self) -> Any:
        """The options of the notebook's analysis (``analyses.<analysis>`` of the params
        file with the notebook's parameters applied; the class defaults when the analysis
        is not in the file)."""
        if self.analysis is None:
            raise ParamsError("open_project was not given an analysis, so there are no "
                              "analysis options; pass its name, e.g. \"baseline_followup\"")
        options = getattr(self.params.analyses, self.analysis)
        return options if options is not None else _options_class(self.analysis)()

    @property
    def id(self) -> str:
        return self.params.project.id

    @property
    def title(self) -> str:
        return self.params.project.title

    @property
    def min_count(self) -> int:
        return self.params.report.min_count

    @property
    def disclosure(self) -> Disclosure:
        """The project's one disclosure-control step (threshold and audience)."""
        return Disclosure(self.params.report.min_count, self.params.report.audience)

    def table(self, name: str | None) -> pd.DataFrame | None:
        """A cleaned data table by source name (``None`` if the name is ``None``)."""
        if name is None:
            return None
        self.params.source(name)  # a clear error if the source is not configured
        return self.data.tables[name]

    def record(self, result: Result) -> None:
        """Record an outcome's headline result for the project summary."""
        record_result(self.results_file, result, project=self.id)

    def results(self) -> pd.DataFrame:
        return load_results(self.results_file)

    def period_text(self) -> str:
        period = self.params.project.period
        if period is None:
            return "not stated"
        return f"{period.start:%d %B %Y} to {period.end:%d %B %Y}"

    def provenance(self) -> dict:
        """What this report was made from: inputs with their SHA-256, parameters, versions.

        The pseudonym key appears only as its fingerprint (which key made the pseudonyms,
        never the key); nothing secret is in the parameters dump.
        """
        inputs = {
            "parameters": {"path": str(self.params.file), "sha256": sha256_file(self.params.file)},
            "theory_of_change": {
                "path": str(self.toc_path),
                "sha256": sha256_file(self.toc_path),
            },
        }
        for name, report in self.data.reports.items():
            inputs[f"data.{name}"] = {"path": report.path, "sha256": report.sha256}
        parameters = self.params.as_plain()
        parameters.get("project", {}).pop("pseudonym_salt", None)  # from older parameters
        return {
            "generated": self.opened.isoformat(),
            "kit_version": __version__,
            "project": self.id,
            "pseudonym_key_fingerprint": key_fingerprint(self.id),
            "inputs": inputs,
            "parameters": parameters,
        }

    @property
    def toc_path(self) -> Path:
        return self.params.resolve(self.params.theory_of_change)


def default_results_file(params: ProjectParams) -> Path:
    """Where a notebook run on its own (JupyterLab, default parameters) records results: a
    scratch file, ``reports/.scratch/<project>/results.json``, never the published
    ``reports/<project>/results.json`` (only ``evalkit run`` publishes). The summary run
    on its own reads the same scratch file. ``$EVALKIT_RESULTS_FILE``, if set, wins (the
    test suite sets it)."""
    override = os.environ.get("EVALKIT_RESULTS_FILE")
    if override:
        return Path(override)
    return params.root / "reports" / ".scratch" / params.project.id / "results.json"


#: The parameters every report notebook declares (``evalkit run`` injects both).
BASE_PARAMETERS = ("params_file", "results_file")


def _options_class(analysis: str) -> type[BaseModel]:
    if analysis not in Analyses.model_fields:
        raise ParamsError(f"'{analysis}' is not an analysis; analyses: "
                          f"{', '.join(Analyses.model_fields)}")
    annotation = Analyses.model_fields[analysis].annotation
    return next(a for a in annotation.__args__ if a is not type(None))  # X | None -> X


def apply_options(params: ProjectParams, analysis: str, overrides: Mapping[str, Any]) -> None:
    """Put a notebook's option parameters in place of ``analyses.<analysis>``'s values.

    ``None`` means "as in the params file" and is skipped. The result is validated by the
    options' own pydantic class, so a bad value gets the message the params file would
    get, naming the parameter."""
    given = {k: v for k, v in overrides.items() if v is not None}
    cls = _options_class(analysis)
    current = getattr(params.analyses, analysis)
    if not given:
        return
    unknown = [k for k in given if k not in cls.model_fields]
    if unknown:  # a notebook passing a name its analysis does not have: a kit bug
        raise ParamsError(f"{', '.join(unknown)}: not an option of analyses.{analysis}")
    base = current.model_dump() if current is not None else {}
    try:
        merged = cls.model_validate(base | given)
    except ValidationError as exc:
        problems = [f"notebook parameter {key.partition('.')[0] or '?'} (analyses.{analysis}"
                    f".{key}): {message}" for e in exc.errors()
                    for key, message in describe_error(e)]
        raise ParamsError("; ".join(problems)) from None
    setattr(params.analyses, analysis, merged)


def injected_parameters() -> set[str]:
    """The names papermill assigned in this kernel's injected-parameters cell (empty
    outside papermill, e.g. in JupyterLab).

    papermill writes that cell as a ``# Parameters`` comment followed by one assignment per
    parameter (``papermill.translators.Translator.codify``) and runs it right after the
    notebook's ``parameters`` cell; IPython keeps the source of every cell run in ``In``.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return set()
    shell = get_ipython()
    if shell is None:
        return set()
    names: set[str] = set()
    for source in shell.user_ns.get("In", []):
        if not (isinstance(source, str) and source.startswith("# Parameters\n")):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                  for target in node.targets if isinstance(target, ast.Name)}
    return names


def check_parameters(given: set[str] | list[str], declared: set[str] | list[str],
                     notebook: str = "this notebook") -> None:
    """Refuse parameter names a notebook does not declare (papermill only warns)."""
    unknown = sorted(set(given) - set(declared))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(declared), n=1)
        hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise ParamsError(
        f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: "
        f"{notebook} has the parameters {', '.join(sorted(declared))}"
    )


def open_project(params_file: str | Path, results_file: str | Path | None = None,
                 analysis: str | None = None, **options: Any) -> Project:
    """Load and check a project's parameters, theory of change and data.

    ``analysis`` names the notebook's analysis and ``options`` are its option parameters
    (``None``: as in the params file), put in place of ``analyses.<analysis>``'s values
    (see :func:`apply_options`); ``project.options`` is the result. Run by papermill, a
    parameter that is neither ``params_file``, ``results_file`` nor one of ``options`` is
    refused (see :func:`injected_parameters`).
    """
    check_parameters(injected_parameters(), [*BASE_PARAMETERS, *options])
    params = load_params(params_file)
    if analysis is not None:
        apply_options(params, analysis, options)
    elif options:
        raise ParamsError("open_project: options need the analysis they belong to")
    toc = load_toc(params.resolve(params.theory_of_change))
    data = load_data(params)
    results = Path(results_file) if results_file else default_results_file(params)
    return Project(params=params, toc=toc, data=data, results_file=results,
                   analysis=analysis)
