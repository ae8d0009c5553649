"""One object that a report notebook opens: parameters, theory of change, data, results.

A notebook's first code cell is ``project = open_project(params_file, results_file)``;
everything it shows after that comes from library functions given ``project``'s tables.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evaluation import __version__
from evaluation.intake import ProjectData, load_data, sha256_file
from evaluation.params import ProjectParams, load_params
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


def open_project(params_file: str | Path, results_file: str | Path | None = None) -> Project:
    """Load and check a project's parameters, theory of change and data."""
    params = load_params(params_file)
    toc = load_toc(params.resolve(params.theory_of_change))
    data = load_data(params)
    results = Path(results_file) if results_file else default_results_file(params)
    return Project(params=params, toc=toc, data=data, results_file=results)
