"""Run projects: check inputs, execute their notebooks with papermill, publish HTML reports.

For each project the runner

1. validates the parameters, the theory of change and every data file, and writes the
   cleaned tables to ``data/processed/<project>/``;
2. executes each enabled notebook into a build folder beside ``reports/<project>``,
   injecting ``params_file`` and ``results_file``, on a kernel running the interpreter that
   runs evalkit (not whichever ``python`` is first on PATH): the analyses all at once, each
   in its own kernel and recording into its own results file, merged into ``results.json``
   for the summary, which runs last; the notebooks load the tables cached by step 1. The
   kernels start, and import the kit, as the run begins, while step 1 checks the data;
3. exports each executed notebook to HTML with all code hidden, and without what the
   notebook shows only to the analyst (outputs and cells tagged
   :data:`evaluation.sections.ANALYST_TAG`: results before disclosure control), through the
   nbconvert template ``templates/evalkit_report`` (style sheet, table of contents), writes
   ``index.html``
   (summary first, then the other reports, then a provenance footer) and
   ``provenance.json``; the executed notebooks are published only for ``audience:
   internal``;
4. only then swaps the new report in atomically (see "Publication" below). A failure leaves
   the previous report where it was and keeps the failed build in
   ``reports/<project>.failed/`` for diagnosis.

A per-project lock (``reports/.<project>.lock``) is held for the whole run: a second run
of the same project stops at once with one line, and whatever a killed run left behind is
tidied at the start of the next one. Projects are independent: one failing does not stop
the others, and ``workers > 1`` runs them in separate processes (papermill is not safe
across threads sharing a working folder).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import html
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import yaml
from filelock import FileLock, Timeout
from jupyter_core.utils import run_sync

from evaluation import __version__
from evaluation.errors import EvalKitError
from evaluation.intake import ProjectData, load_data, sha256_file, write_processed
from evaluation.params import (
    NOTEBOOKS,
    ProblemsError,
    ProjectParams,
    check_project,
    load_params,
    load_project_files,
)
from evaluation.results import load_results
from evaluation.toc import TheoryOfChange, load_toc

EXECUTION_TIMEOUT = 900  # seconds per cell: a hung kernel must not hang a batch
START_TIMEOUT = 120


@dataclass
class RunOutcome:
    params_file: str
    project: str
    ok: bool
    message: str
    seconds: float
    report_dir: str | None = None


def find_params(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into the ``*.yaml`` files they hold, keeping the given order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        else:
            found.append(p)
    return found


def validate_project(params_file: str | Path
                     ) -> tuple[ProjectParams, TheoryOfChange, ProjectData]:
    """Everything a run would reject, checked without executing anything (``evalkit
    validate`` and ``evalkit run`` both start here), every problem at once in one
    :class:`ProblemsError`: the parameters and the theory of change, then (whenever the
    parameters can be read, even if the theory of change cannot) every data file (all the
    problems of each, see :func:`evaluation.intake.load_data`), the links between the
    theory of change and the data, and the notebooks."""
    from evaluation.params import Problem

    problems: list[Problem] = []
    toc: TheoryOfChange | None = None
    try:
        params, toc = load_project_files(params_file)
    except ProblemsError as exc:
        problems += exc.problems
        try:  # the data can still be checked if only the theory of change is wrong
            params = load_params(params_file)
        except EvalKitError:
            raise ProblemsError(problems) from None
    found: list[tuple[Path, str]] = []
    # A table cached from the very same raw file, mapping, key and kit version passed these
    # same checks when it was cached (a file with a problem is never cached): not read again.
    data = load_data(params, problems=found)
    problems += [Problem(file, "", message) for file, message in found]
    if toc is not None:
        # a measure or an interruption is checked against the tables that could be read
        problems += check_project(params, toc, data)
    notebooks = params.root / "notebooks"
    for analysis in params.enabled:
        notebook = notebooks / NOTEBOOKS[analysis]
        if not notebook.is_file():
            problems.append(Problem(params.file, f"analyses.{analysis}", (
                f"its notebook {NOTEBOOKS[analysis]} is not in {notebooks}")))
            continue
        try:
            check_notebook_parameters(notebook, INJECTED)
        except EvalKitError as exc:
            problems.append(Problem(notebook, "", str(exc)))
    # What only the analyses can tell (comparison: true that the data cannot honour, fewer
    # than two pupils with both scores, no attendance around the referrals): computed here
    # as the notebooks compute it, with the same library calls, so that the run cannot stop
    # on it later.
    from evaluation.project import Project

    if not problems and toc is not None and params.analyses.referral_tracking:
        from evaluation.sections.tracking import tracking_data

        project = Project(params=params, toc=toc, data=data, results_file=Path(os.devnull),
                          analysis="referral_tracking")
        try:
            tracking_data(project).pupil.attendance_change("higher_is_better")
        except EvalKitError as exc:
            problems.append(Problem(params.file, "analyses.referral_tracking", str(exc)))
    if not problems and toc is not None and params.analyses.baseline_followup:
        from evaluation.baseline_followup import headline_change
        from evaluation.sections import baseline_followup as words

        options = params.analyses.baseline_followup
        project = Project(params=params, toc=toc, data=data, results_file=Path(os.devnull),
                          analysis="baseline_followup")
        for outcome in toc.outcomes_for("baseline_followup"):
            try:
                chosen = words.select(project, outcome, options)
                headline_change(chosen.pupils, "baseline", "follow_up",
                                comparison=options.comparison,
                                allow_single_group=options.allow_single_group,
                                retest_range=options.retest_range, measure=chosen.measure,
                                direction=outcome.direction, confidence=options.confidence,
                                disclosure=project.disclosure, min_pairs=options.min_pairs)
            except EvalKitError as exc:
                problems.append(Problem(params.resolve(params.theory_of_change),
                                        f"outcome '{outcome.id}'", str(exc)))
    if problems:
        raise ProblemsError(problems)
    assert toc is not None
    return params, toc, data


#: The parameters ``evalkit run`` passes to every notebook.
INJECTED = ("params_file", "results_file")


def check_notebook_parameters(notebook: Path, names: Iterable[str]) -> None:
    """Refuse parameters that ``notebook`` does not declare in its ``parameters`` cell
    (``papermill.inspect_notebook``): papermill only warns ("Passed unknown parameter")
    and runs the notebook without them."""
    import papermill as pm

    from evaluation.project import check_parameters

    try:
        declared = pm.inspect_notebook(str(notebook))
    except Exception as exc:  # an unreadable notebook: one line, not a traceback
        raise EvalKitError(f"cannot read the parameters of {notebook.name}: "
                           f"{_first_line(str(exc))}") from None
    check_parameters(list(names), list(declared), notebook.name)


def _strip_stderr(nb) -> None:
    # Library warnings are for analysts (they stay in the .ipynb); boards get the HTML.
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = [
                o for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]


class _Headings(HTMLParser):
    """The h2/h3 headings with an id in a piece of HTML, as (level, id, text shown)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str, str]] = []
        self._open: tuple[int, str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        anchor = dict(attrs).get("id")
        if tag in ("h2", "h3") and anchor and self._open is None:
            self._open = (int(tag[1]), anchor, [])

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[2].append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == f"h{self._open[0]}":
            level, anchor, text = self._open
            label = "".join(text).replace("\N{PILCROW SIGN}", "").strip()
            self.found.append((level, anchor, label))
            self._open = None


def _headings(html_text: str) -> list[tuple[int, str, str]]:
    parser = _Headings()
    parser.feed(html_text)
    parser.close()
    return parser.found


def _title_split(source: str) -> tuple[str, str] | None:
    """A markdown cell split just after its first level-1 heading (None if it has none)."""
    from markdown_it import MarkdownIt

    for token in MarkdownIt("commonmark").parse(source):
        if token.type == "heading_open" and token.tag == "h1" and token.map:
            lines = source.splitlines(keepends=True)
            return "".join(lines[: token.map[1]]), "".join(lines[token.map[1]:])
    return None


def collect_contents(nb, resources: dict) -> tuple:
    """An nbconvert preprocessor: collect the page's contents for the ``evalkit_report``
    template.

    The h2/h3 headings with an id are those of the markdown cells and those the outputs
    display (``evaluation.sections.heading``); each is rendered as the template renders it
    (nbconvert's markdown, or the output's own HTML) and read with an HTML parser. They go
    to ``resources["evalkit_contents"]``. The first markdown cell with a title (h1) is
    split after it (``metadata.evalkit_title``) so that the template puts the contents
    right below the title.
    """
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    contents: list[tuple[int, str, str]] = []
    title_cell = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if not title_cell and (split := _title_split(cell.source)):
                cell.metadata["evalkit_title"], cell.source = split
                title_cell = True
                contents += _headings(markdown2html_mistune(split[1]))
            else:
                contents += _headings(markdown2html_mistune(cell.source))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:  # shown in preference to markdown, as nbconvert does
                contents += _headings(_text(data["text/html"]))
            elif "text/markdown" in data:
                contents += _headings(markdown2html_mistune(_text(data["text/markdown"])))
    resources["evalkit_contents"] = contents
    resources["evalkit_title_cell"] = title_cell
    return nb, resources


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def export_html(notebook_path: Path, html_path: Path, *, keep_warnings: bool = False,
                project_title: str = "") -> None:
    """Export an executed notebook to HTML with no code and no prompts, through the
    ``evalkit_report`` template (style sheet, contents, no scripts from other servers).

    Warnings printed by the analyses (stderr) are kept for an internal audience and left
    out for a board, for whom each report states its caveats in words. Outputs and cells
    tagged for the analyst (:func:`evaluation.sections.for_analysts`) are left out for
    every audience; the executed notebook keeps them.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_path, as_version=4)
    if not keep_warnings:
        _strip_stderr(nb)
    from nbconvert.preprocessors import TagRemovePreprocessor

    from evaluation.sections import ANALYST_TAG

    exporter = HTMLExporter(
        template_name="evalkit_report",
        extra_template_basedirs=[str(Path(__file__).parent / "templates")],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    # What the notebook shows only to the analyst (before disclosure control) never
    # reaches a page, for any audience.
    exporter.register_preprocessor(TagRemovePreprocessor(
        remove_cell_tags={ANALYST_TAG}, remove_single_output_tags={ANALYST_TAG}), enabled=True)
    exporter.register_preprocessor(collect_contents, enabled=True)
    # the printed footer names the project on every page (the template escapes it)
    body, _ = exporter.from_notebook_node(nb, resources={"evalkit_project_title": project_title})
    html_path.write_text(body, encoding="utf-8")


def _headlines_html(params: ProjectParams, results_file: Path) -> str:
    """The index's verdict table: each measured outcome (theory-of-change order) with its
    before/after verdict, its target verdict in the target's own words and the headline
    figure with its 95% CI, printed as the summary prints them. A result resting on a
    count below the report's threshold shows neither figure nor target verdict."""
    from evaluation.privacy import NOT_APPLICABLE, WITHHELD, Disclosure
    from evaluation.sections.summary import _result_cell
    from evaluation.targets import judge

    results = load_results(results_file)
    if results.empty:
        return ""
    toc = load_toc(params.resolve(params.theory_of_change))
    disclosure = Disclosure(params.report.min_count, params.report.audience)
    by_id = {r["outcome_id"]: r for r in results.to_dict("records")}
    rows, withheld = [], False
    for o in toc.outcomes:
        if o.id not in by_id:
            continue
        r = {k: (None if isinstance(v, float) and v != v else v)
             for k, v in by_id[o.id].items()}
        if disclosure.is_small(r.get("n")):
            figure = target = WITHHELD
            withheld = True
        else:
            figure = _result_cell(r)
            try:
                target = (f"{judge(o.target, r).word} ({o.target.short})"
                          if o.target is not None else "no target set")
            except EvalKitError:
                target = NOT_APPLICABLE
        rows.append(f"<tr><td>{html.escape(o.statement)}</td>"
                    f"<td>{html.escape(str(r['verdict']))}</td><td>{html.escape(target)}</td>"
                    f"<td>{html.escape(figure)}</td></tr>")
    note = (f"<p class='note'>{html.escape(disclosure.note())}</p>" if withheld else "")
    return (
        "<h2>Headline results</h2>"
        "<table class='headlines'><caption>Outcomes: verdicts and results</caption>"
        "<tr><th>Outcome</th><th>Verdict</th><th>Target</th><th>Result (95% CI)</th></tr>"
        f"{''.join(rows)}</table>{note}"
        "<p>Verdicts are decided from 95% confidence intervals (the range of values the "
        "data are consistent with); targets are judged apart, as met, not met or not yet "
        "clear. The summary explains both and lists the outcomes not yet measured.</p>"
    )


def _index_html(params: ProjectParams, pages: list[tuple[str, str]], provenance: dict,
                headlines: str = "") -> str:
    title = html.escape(params.project.title)
    org = html.escape(params.project.organisation)
    period = params.project.period
    when = f"{period.start:%d %B %Y} to {period.end:%d %B %Y}" if period else ""
    synthetic = (
        "<p class='synthetic'><strong>Synthetic data:</strong> made-up data that "
        "demonstrates the kit; no real pupil or school is described.</p>"
        if params.project.synthetic
        else ""
    )
    internal = (
        "<p class='internal'><strong>Internal report, not for circulation:</strong> it "
        "contains small counts and per-pupil figures, and the executed notebooks hold "
        "pupil-level tables. Boards receive the <code>audience: board</code> version.</p>"
        if params.report.audience == "internal"
        else ""
    )
    links = "".join(
        f"<li><a href='{html.escape(href)}'>{html.escape(label)}</a></li>" for label, href in pages
    )
    inputs = "".join(
        f"<tr><td>{html.escape(k.replace('.', ': ', 1).replace('_', ' '))}</td>"
        f"<td>{html.escape(Path(v['path']).name)}</td>"
        f"<td><code>{html.escape(v['sha256'])}</code></td></tr>"
        for k, v in provenance["inputs"].items()
    )
    # The parameters (option names, filters) are an appendix of the internal report only.
    params_yaml = (
        "<details><summary>Appendix: the parameters of this run</summary><pre>"
        + html.escape(yaml.safe_dump(provenance["parameters"], sort_keys=False))
        + "</pre></details>" if params.report.audience == "internal" else "")
    from evaluation.glossary import glossary_html

    # The verdict table opens the page (the first screen at 1366 x 768); the reports
    # follow; the glossary explains the terms the page uses.
    glossary = glossary_html(headlines)
    reports_heading = "<h2>Reports</h2>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ max-width: 50rem; margin: 2rem auto; padding: 0 1rem; font-family: system-ui,
  sans-serif; line-height: 1.5; color: #222; }}
.synthetic {{ border: 2px solid #b35806; background: #fff4e5; padding: 0.5em 1em; }}
.internal {{ border: 2px solid #b2182b; background: #fdecea; padding: 0.5em 1em; }}
footer {{ margin-top: 3rem; font-size: 0.85rem; color: #444; border-top: 1px solid #ccc; }}
footer table {{ border-collapse: collapse; }} footer td {{ padding: 2px 8px; }}
table.headlines {{ border-collapse: collapse; font-size: 0.9rem; margin-top: 0.5rem; }}
table.headlines caption {{ text-align: left; font-weight: bold; padding-bottom: 0.3em; }}
table.headlines td, table.headlines th {{ border-bottom: 1px solid #ddd; padding: 3px 8px;
  text-align: left; vertical-align: top; }}
h1 {{ font-size: 1.6rem; margin: 0 0 0.2em; line-height: 1.25; }}
h2 {{ font-size: 1.25rem; margin: 0.8em 0 0.3em; }}
.meta {{ margin: 0 0 0.6em; }}
.synthetic, .internal {{ margin: 0.4em 0; }}
.evalkit-glossary dt {{ font-weight: bold; }} .evalkit-glossary dd {{ margin: 0 0 0.5em 1.5em; }}
code {{ font-size: 0.8rem; word-break: break-all; }}
@media print {{ @page {{ size: A4; margin: 15mm; }} }}
</style></head>
<body>
{internal}
<h1>{title}</h1>
<p class="meta">{org}{' · ' if org and when else ''}{when}</p>
{synthetic}
{headlines}
{reports_heading}
<ol>{links}</ol>
{glossary}
<footer>
<p><strong>Provenance.</strong> Generated {html.escape(provenance['generated'])} by evalkit
{html.escape(provenance['kit_version'])}.</p>
<table><tr><th>input</th><th>file</th><th>SHA-256</th></tr>{inputs}</table>
{params_yaml}
</footer>
</body></html>
"""


def _provenance(params: ProjectParams, data_reports: dict) -> dict:
    """What produced the report; no secret: the pseudonym key appears only as a fingerprint
    and a salt left in older parameters files is not copied."""
    from evaluation.pseudonyms import key_fingerprint

    toc = params.resolve(params.theory_of_change)
    inputs = {
        "parameters": {"path": str(params.file), "sha256": sha256_file(params.file)},
        "theory_of_change": {"path": str(toc), "sha256": sha256_file(toc)},
    }
    for name, r in data_reports.items():
        inputs[f"data.{name}"] = {"path": r.path, "sha256": r.sha256}
    parameters = params.as_plain()
    parameters.get("project", {}).pop("pseudonym_salt", None)
    return {
        "generated": dt.datetime.now().replace(microsecond=0).isoformat(),
        "kit_version": __version__,
        "project": params.project.id,
        "pseudonym_key_fingerprint": key_fingerprint(params.project.id),
        "inputs": inputs,
        "parameters": parameters,
    }


def _page_label(notebook: str) -> str:
    labels = {
        "00_overview.ipynb": "Overview: theory of change and data",
        "10_baseline_followup.ipynb": "Baseline and follow-up",
        "20_exclusions_its.ipynb": "Exclusions: interrupted time series",
        "30_referral_tracking.ipynb": "Referral pathway tracking",
        "40_surveys_audits.ipynb": "Surveys and school audits",
        "90_summary.ipynb": "Summary for the board",
    }
    return labels.get(notebook, notebook)


def kernel_options() -> dict:
    """Extra papermill options for the notebooks' kernel: its connection is encrypted
    (CurveZMQ keys provisioned by jupyter_client, ``KernelManager.transport_encryption =
    "auto"``) where the installed jupyter_client and libzmq support it: every cell's
    code and output, pupil-level tables included, pass over it, and unencrypted, ipykernel
    warns on every notebook that they could be read. Empty where unsupported (older
    jupyter_client, libzmq without libsodium): the kernel then runs as before."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if not zmq.has("curve") or "transport_encryption" not in KernelManager.class_traits():
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


# --- The kernel: the interpreter running evalkit, whatever ``python`` is on PATH ----------

KERNEL_NAME = "python3"


def write_kernel_spec(folder: Path) -> Path:
    """Write a ``python3`` kernel spec whose kernel is this interpreter (``sys.executable``).

    The spec installed with ipykernel starts ``python`` looked up on PATH: from a venv that
    is not activated that is another interpreter, with other package versions (seen:
    ``TypeError: unstack()`` from an older pandas). Returns the folder of kernel specs.
    """
    from ipykernel.kernelspec import get_kernel_dict

    spec = get_kernel_dict()  # keeps the installed ipykernel's metadata (encryption support)
    spec["argv"] = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec["display_name"] = "Python 3 (evalkit)"
    (folder / KERNEL_NAME).mkdir(parents=True, exist_ok=True)
    (folder / KERNEL_NAME / "kernel.json").write_text(json.dumps(spec, indent=1), "utf-8")
    return folder


@functools.cache
def _kernel_manager_class() -> type:
    """nbclient's kernel manager, looking for kernel specs only in ``kernel_dirs`` (config)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import List, Unicode, default

    class EvalkitKernelManager(AsyncKernelManager):
        kernel_dirs = List(Unicode(), config=True,
                           help="The only folders searched for kernel specs.")

        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=list(self.kernel_dirs),
                                     ensure_native_kernel=False)

    return EvalkitKernelManager


def kernel_execution_options(kernel_dirs: Path) -> dict:
    """papermill options running the notebooks on the kernel spec in ``kernel_dirs`` (see
    ``write_kernel_spec``), with the encrypted connection of ``kernel_options`` kept."""
    from traitlets.config import Config

    options = kernel_options()
    config = Config({"EvalkitKernelManager": {"kernel_dirs": [str(kernel_dirs)]}})
    if "config" in options:
        config.merge(options["config"])
    return {"kernel_manager_class": _kernel_manager_class(), "config": config}


# --- Publication: reports/<project> always a complete report --------------------------------
#
# reports/
#   <project>            -> .<project>.versions/<stamp>   (a symlink, replaced atomically)
#   .<project>.versions/<stamp>/                          (complete reports only)
#   .<project>-build-<stamp>/                             (the run in progress)
#   .<project>.lock                                       (held for the whole run)
#   .<project>.kernels/                                   (the run's kernel spec)
#   <project>.failed/                                     (the last failed build)
#
# A build becomes a version by one rename once its index.html is written, so every folder
# in the versions folder whose name is a stamp is complete (a version is renamed out of that
# pattern before it is deleted). The name of the link is then swapped with os.replace,
# which is atomic on POSIX: whenever the process is killed, reports/<project> is the old or
# the new complete report. Two windows remain, each closed by the repair at the start of
# the next run (``_repair``): the one-off move of a real folder left by older versions of
# the kit where the system cannot swap two paths in one step (``_exchange``; Linux can),
# and the rename sequence used where symlinks are not used (Windows) or cannot be
# made (FAT or some network drives): the old report is moved into the versions folder
# and the new one renamed into place; if killed in between, reports/<project> is missing
# until the next run points it back at the newest complete version.

_STAMP = "%Y%m%dT%H%M%S%f"
_VERSION = re.compile(r"\d{8}T\d{12}-\d+")


def _stamp(when: float | None = None) -> str:
    """A name that sorts by time: UTC time to the microsecond, then the process id."""
    moment = dt.datetime.fromtimestamp(time.time() if when is None else when, dt.UTC)
    return f"{moment.strftime(_STAMP)}-{os.getpid()}"


def _versions_dir(root: Path, project: str) -> Path:
    return root / f".{project}.versions"


def _stale_build(project: str, name: str) -> bool:
    """A build folder of this project: ours (stamped) or made by an older kit (mkdtemp)."""
    prefix = re.escape(f".{project}-build-")
    return bool(re.fullmatch(prefix + r"(\d{8}T\d{12}-\d+|[a-z0-9_]{8})", name))


def _complete_versions(root: Path, project: str) -> list[Path]:
    """The complete versions of the report, oldest first."""
    versions = _versions_dir(root, project)
    if not versions.is_dir():
        return []
    return sorted(p for p in versions.iterdir()
                  if _VERSION.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def _remove(path: Path) -> None:
    """Delete a folder (or file, or link); a complete version is first renamed out of the
    version pattern so that a kill half-way never leaves a partial one looking complete."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if _VERSION.fullmatch(path.name):
        trash = path.with_name(f"{path.name}.deleting")
        if trash.exists():
            shutil.rmtree(trash)
        path = path.rename(trash)
    shutil.rmtree(path)


def _make_link(root: Path, project: str, version: Path) -> Path | None:
    """A fresh symlink to ``version`` beside ``reports/<project>``; None where symlinks
    cannot be made."""
    if os.name != "posix":  # Windows cannot replace a directory link atomically
        return None
    link = root / f".{project}.link-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        os.symlink(os.path.relpath(version, root), link, target_is_directory=True)
    except (OSError, NotImplementedError):
        return None
    return link


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step, where the system can (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``, called through ctypes: Python has no binding). Used once, to turn
    the real ``reports/<project>`` folder of an older kit into the link without a moment
    when neither exists. False where unsupported (other systems, old kernels, some
    network drives): the caller then falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _point(root: Path, project: str, version: Path) -> None:
    """Make ``reports/<project>`` the complete report ``version``."""
    final = root / project
    versions = _versions_dir(root, project)
    link = _make_link(root, project, version)
    if final.is_dir() and not final.is_symlink():  # a real folder: older kit or no symlinks
        moved = versions / _stamp(final.stat().st_mtime)
        if link is not None and _exchange(link, final):
            link.rename(moved)  # the old folder, now at the link's name, kept as a version
            return
        final.rename(moved)
    if link is not None:
        os.replace(link, final)  # atomic: the old link or the new one, never neither
        return
    if final.is_symlink():  # symlinks worked once and no longer do
        final.unlink()
    version.rename(final)


def _repair(root: Path, project: str) -> None:
    """Undo what a killed run left behind (call only while holding the project's lock).

    If ``reports/<project>`` is missing (or a dangling link), point it back at the newest
    complete version; then remove stale build folders, links and superseded versions.
    """
    final = root / project
    versions = _versions_dir(root, project)
    legacy_old = root / f".{project}-old"  # the swap of older kits, killed half-way
    if not final.exists():
        complete = _complete_versions(root, project)
        if not complete and legacy_old.is_dir():
            versions.mkdir(exist_ok=True)
            complete = [legacy_old.rename(versions / _stamp(legacy_old.stat().st_mtime))]
        if complete:
            _point(root, project, complete[-1])
        elif final.is_symlink():
            final.unlink()
    current = final.resolve() if final.is_symlink() else None
    for path in root.iterdir():
        if (_stale_build(project, path.name)
                or path.name.startswith(f".{project}.link-")
                or path.name == f".{project}.kernels"
                or (path == legacy_old and final.exists())):
            _remove(path)
    if versions.is_dir():
        for path in versions.iterdir():
            if path.resolve() != current:
                _remove(path)
        if current is None and not any(versions.iterdir()):
            versions.rmdir()


def _publish(build: Path, root: Path, project: str) -> None:
    """Make the finished ``build`` the report at ``reports/<project>``.

    POSIX: the build becomes a complete version by one rename, then the link
    ``reports/<project>`` is replaced atomically (``os.replace``) and older versions are
    deleted. Without symlinks (Windows, or a drive that has none) a rename sequence is used
    instead: killed between its two renames, ``reports/<project>`` is missing until the
    next run's ``_repair`` renames the newest complete version into place.
    """
    versions = _versions_dir(root, project)
    versions.mkdir(exist_ok=True)
    version = build.rename(versions / build.name.removeprefix(f".{project}-build-"))
    _point(root, project, version)
    final = root / project
    current = final.resolve() if final.is_symlink() else None
    for path in versions.iterdir():
        if path.resolve() != current:
            _remove(path)


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder where it is inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def _writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed; one clear line if it cannot be written."""
    if folder.exists() and not folder.is_dir():
        raise EvalKitError(
            f"the {what} {_shown(folder)} is a file, not a folder: move or rename that file"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=folder)
    except OSError as exc:
        raise EvalKitError(
            f"cannot write to the {what} {_shown(folder)} ({exc.strerror or exc}): make it "
            "writable for your user, or work in a copy of the kit that you own"
        ) from None
    probe.close()


def _lock(root: Path, project: str) -> FileLock:
    """Take the project's lock at once, or fail with one line if another run holds it."""
    path = root / f".{project}.lock"
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise EvalKitError(
            f"Project '{project}' is already being run by another evalkit process "
            f"(lock: {_shown(path)}); wait for it to finish"
        ) from None
    except OSError as exc:
        raise EvalKitError(
            f"cannot write to the reports folder {_shown(root)} ({exc.strerror or exc}): make "
            "it writable for your user, or work in a copy of the kit that you own"
        ) from None
    return lock


def _new_build(root: Path, project: str) -> Path:
    """An empty build folder made with the user's umask (mkdtemp would make it 0700)."""
    while True:
        build = root / f".{project}-build-{_stamp()}"
        try:
            build.mkdir()
            return build
        except FileExistsError:
            continue


def _failure(params_file: str | Path, name: str, message: str, start: float) -> RunOutcome:
    return RunOutcome(str(params_file), name, False, message, time.perf_counter() - start)


def run_project(
    params_file: str | Path,
    *,
    reports_root: Path | None = None,
    progress: Callable[[str], None] = print,
    pdf: bool = False,
) -> RunOutcome:
    """Run one project end to end. Never raises for a project's own failure.

    ``pdf`` (or the parameters' ``report: pdf: true``) also writes the board pack,
    ``board_pack.pdf`` (:mod:`evaluation.pdf`), into the published report.

    The project's lock is held from the intake to the publication, so a second run of the
    same project stops at once, and what a killed run left is cleaned up here.
    """
    start = time.perf_counter()
    name = Path(params_file).stem
    try:
        params = load_params(params_file)
        name = params.project.id
        root = Path(reports_root) if reports_root else params.root / "reports"
        _writable_folder(root, "reports folder")
        lock = _lock(root, name)
    except EvalKitError as exc:
        return _failure(params_file, name, str(exc), start)
    try:
        try:
            _repair(root, name)
        except OSError as exc:
            return _failure(params_file, name, (
                f"cannot tidy the reports folder {_shown(root)} after an interrupted run "
                f"({exc.strerror or exc}: {exc.filename}); check its permissions"), start)
        # The notebooks' kernels start now, while the data are checked (see _Kernels).
        notebooks = list(dict.fromkeys(NOTEBOOKS[analysis] for analysis in params.enabled))
        with _Kernels(notebooks, params.root / "notebooks", root / f".{name}.kernels") as kernels:
            try:
                params, _, data = validate_project(params_file)
                write_processed(params, data)
            except EvalKitError as exc:
                return _failure(params_file, name, str(exc), start)
            except OSError as exc:  # normally a DataError from write_processed; never a traceback
                return _failure(params_file, name, (
                    f"cannot write {exc.filename} ({exc.strerror or exc}): make the folder "
                    "writable for your user"), start)
            return _build_and_publish(params_file, params, data, root, progress, start,
                                      kernels, pdf=pdf or params.report.pdf)
    finally:
        lock.release()


def _execute(source: Path, executed: Path, params: ProjectParams, results_file: Path,
             kernel: dict, *, keep_warnings: bool, km=None) -> float:
    """Execute one notebook with papermill and export it to HTML; returns the seconds taken.

    Safe to call from several threads at once: the kernel's working folder is given to
    nbclient (``resources``), not set with papermill's ``cwd``, which changes the folder
    of the whole process. A failure raises one line naming the notebook and the cell.
    ``km``: a kernel already started (see ``_warm_kernel``), else papermill starts one.
    """
    import papermill as pm

    t0 = time.perf_counter()
    parameters = {"params_file": str(params.file), "results_file": str(results_file)}
    check_notebook_parameters(source, parameters)  # papermill would only warn
    try:
        pm.execute_notebook(
            str(source),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            language="python",
            resources={"metadata": {"path": str(source.parent)}},
            progress_bar=False,
            execution_timeout=EXECUTION_TIMEOUT,
            start_timeout=START_TIMEOUT,
            **kernel,
            **({"km": km} if km is not None else {}),
        )
    except pm.PapermillExecutionError as exc:
        export_html(executed, executed.with_suffix(".html"), keep_warnings=True,
                    project_title=params.project.title)
        raise EvalKitError(
            f"{source.name} failed at cell {exc.exec_count or exc.cell_index}: "
            f"{exc.ename}: {_first_line(exc.evalue)}"
        ) from None
    export_html(executed, executed.with_suffix(".html"), keep_warnings=keep_warnings,
                project_title=params.project.title)
    return time.perf_counter() - t0


WARM_UP = (
    "import evaluation.project, evaluation.report, evaluation.sections, evaluation.surveys, "
    "matplotlib.pyplot"
)  # (evaluation.surveys: the parameters of a project with a survey import it, and scipy)


async def _warm_kernel(km, cwd: Path) -> None:
    """Start a notebook's kernel in ``cwd`` and import the kit there ahead of the notebook
    (silently, outside the history: the notebook's cells and their numbers are unchanged)."""
    await km.start_kernel(cwd=str(cwd))
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=START_TIMEOUT)
        await client.execute_interactive(WARM_UP, silent=True, store_history=False,
                                         timeout=EXECUTION_TIMEOUT)
    finally:
        client.stop_channels()


class _Kernels:
    """One kernel per notebook, each started, and the kit imported in it, in a thread of its
    own as soon as the run starts: the kernels start while the runner checks the data
    (which uses one core), instead of after. A notebook executes on its kernel when
    :meth:`run` releases it; leaving the ``with`` block releases the others without running
    them, and every kernel is shut down (also when the run stops early).

    Each kernel lives in one thread from start to shutdown (one event loop). The kernels run
    the interpreter running evalkit (:func:`write_kernel_spec`, in ``folder``: beside the
    report, so that what a killed run leaves there is removed by the next run's repair)."""

    def __init__(self, notebooks: list[str], cwd: Path, folder: Path) -> None:
        self._folder = folder
        self.options = kernel_execution_options(write_kernel_spec(folder))
        self._jobs: dict[str, Callable] = {}
        self._release = {n: threading.Event() for n in notebooks}
        self._pool = ThreadPoolExecutor(max_workers=len(notebooks))
        self._lives = {n: self._pool.submit(self._life, n, cwd) for n in notebooks}

    def _life(self, notebook: str, cwd: Path) -> float | None:
        km = self.options["kernel_manager_class"](kernel_name=KERNEL_NAME,
                                                  config=self.options["config"])
        try:
            run_sync(_warm_kernel)(km, cwd)
            self._release[notebook].wait()
            job = self._jobs.get(notebook)
            return job(km) if job is not None else None
        finally:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)

    def run(self, notebook: str, job: Callable) -> Future:
        """Execute ``job(km)`` on the notebook's kernel (once it has started); the future
        gives what ``job`` returns, or raises what it (or the kernel's start) raised."""
        self._jobs[notebook] = job
        self._release[notebook].set()
        return self._lives[notebook]

    def __enter__(self) -> _Kernels:
        return self

    def __exit__(self, *exc: object) -> None:
        for event in self._release.values():
            event.set()
        self._pool.shutdown(wait=True)
        shutil.rmtree(self._folder, ignore_errors=True)


def _merge_results(parts: list[Path], target: Path) -> None:
    """Write ``target`` from the results files of notebooks executed at the same time.

    Each of those notebooks records into a file of its own (``evaluation.results.
    record_result`` reads, changes and rewrites its file, so two kernels sharing one
    would lose records); merged in notebook order with the same replace-by-outcome rule,
    they make the very file that executing them one after another wrote.
    """
    doc = None
    for part in parts:
        if not part.is_file():
            continue
        recorded = json.loads(part.read_text(encoding="utf-8"))
        if doc is None:
            doc = recorded
            continue
        new = {(r["outcome_id"], r["analysis"]) for r in recorded["records"]}
        doc["records"] = [r for r in doc["records"]
                          if (r["outcome_id"], r["analysis"]) not in new] + recorded["records"]
        doc["project"] = recorded.get("project") or doc.get("project", "")
    if doc is not None:
        target.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")


def _build_and_publish(params_file: str | Path, params: ProjectParams, data, root: Path,
                       progress: Callable[[str], None], start: float, kernels: _Kernels, *,
                       pdf: bool = False) -> RunOutcome:
    name = params.project.id
    notebooks_dir = params.root / "notebooks"
    final = root / name
    failed_dir = root / f"{name}.failed"
    internal = params.report.audience == "internal"
    build = _new_build(root, name)
    # survey and audit share one notebook: run each notebook once
    notebooks = list(dict.fromkeys(NOTEBOOKS[analysis] for analysis in params.enabled))
    summary = NOTEBOOKS["summary"]
    try:
        for notebook in notebooks:
            if not (notebooks_dir / notebook).is_file():
                raise EvalKitError(f"notebook {notebooks_dir / notebook} not found")

        def run(notebook: str, results_file: Path) -> Future:
            progress(f"[{name}] {notebooks.index(notebook) + 1}/{len(notebooks)} {notebook} ...")
            return kernels.run(notebook, lambda km: _execute(
                notebooks_dir / notebook, build / notebook, params, results_file,
                kernels.options, keep_warnings=internal, km=km))

        def done(notebook: str, seconds: float) -> None:
            progress(f"[{name}] {notebooks.index(notebook) + 1}/{len(notebooks)} {notebook} "
                     f"done in {seconds:.1f} s")

        # The analyses are independent: each in its own kernel, all at once, each recording
        # into its own results file. The summary reads what they recorded: it runs last.
        first = [n for n in notebooks if n != summary]
        parts = {n: build / ".results" / Path(n).stem / "results.json" for n in first}
        running = {run(n, parts[n]): n for n in first}
        failures: dict[str, BaseException] = {}
        for future in as_completed(running):
            try:
                done(running[future], future.result())
            except Exception as exc:  # reported below, in notebook order
                failures[running[future]] = exc
        if failures:
            raise next(failures[n] for n in first if n in failures)
        _merge_results([parts[n] for n in first], build / "results.json")
        shutil.rmtree(build / ".results", ignore_errors=True)
        if summary in notebooks:
            done(summary, run(summary, build / "results.json").result())
        # The summary leads the index, then the other pages in the order of the analyses.
        pages = [(_page_label(n), n.replace(".ipynb", ".html")) for n in notebooks]
        pages.sort(key=lambda p: p[1] != NOTEBOOKS["summary"].replace(".ipynb", ".html"))
        provenance = _provenance(params, data.reports)
        (build / "provenance.json").write_text(json.dumps(provenance, indent=2), "utf-8")
        headlines = _headlines_html(params, build / "results.json")
        (build / "index.html").write_text(_index_html(params, pages, provenance, headlines),
                                          "utf-8")
        if pdf:
            from evaluation.pdf import write_project_pack

            progress(f"[{name}] board pack (PDF) ...")
            write_project_pack(params, build)
        # What is published: the pages, index, provenance and results; the executed
        # notebooks (every table unsuppressed) only in an internal report.
        if not internal:
            for notebook in build.glob("*.ipynb"):
                notebook.unlink()
    except Exception as exc:  # any failure: keep the previous report, keep the build
        if failed_dir.exists():
            shutil.rmtree(failed_dir)
        build.rename(failed_dir)
        message = str(exc) if isinstance(exc, EvalKitError) else (
            f"{type(exc).__name__}: {_first_line(str(exc))}"
        )
        if not isinstance(exc, EvalKitError):
            (failed_dir / "traceback.txt").write_text(traceback.format_exc(), "utf-8")
        kept = " The previous report was kept." if final.exists() else ""
        return _failure(params_file, name, f"{message} (build kept in {failed_dir}).{kept}",
                        start)

    try:
        _publish(build, root, name)
        if failed_dir.exists():
            shutil.rmtree(failed_dir)
    except OSError as exc:
        kept = " The previous report was kept." if final.exists() else ""
        return _failure(params_file, name, (
            f"could not put the new report in place in {_shown(root)} "
            f"({exc.strerror or exc}: {exc.filename}); the next run tidies up.{kept}"), start)
    return RunOutcome(
        str(params_file), name, True, f"report in {final / 'index.html'}",
        time.perf_counter() - start, str(final),
    )


def _first_line(text: str) -> str:
    text = (text or "").strip()
    return text.splitlines()[0] if text else ""


def _run_quiet(args: tuple[str, Path | None, bool]) -> RunOutcome:
    params_file, reports_root, pdf = args
    return run_project(params_file, reports_root=reports_root, pdf=pdf,
                       progress=lambda m: print(m, flush=True))


def run_projects(
    params_files: Iterable[str | Path],
    *,
    workers: int = 1,
    reports_root: Path | None = None,
    progress: Callable[[str], None] = print,
    pdf: bool = False,
) -> list[RunOutcome]:
    """Run several projects; each one's failure is reported, not raised."""
    files = [str(p) for p in params_files]
    if workers <= 1 or len(files) <= 1:
        return [run_project(f, reports_root=reports_root, progress=progress, pdf=pdf)
                for f in files]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_quiet, [(f, reports_root, pdf) for f in files]))
