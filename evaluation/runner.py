"""Run projects: check inputs, execute their notebooks with papermill, publish HTML reports.

For each project the runner

1. validates the parameters, the theory of change and every data file, and writes the
   cleaned tables to ``data/processed/<project>/``;
2. executes each enabled notebook into a temporary build folder beside ``reports/``,
   injecting ``params_file`` and ``results_file``;
3. exports each executed notebook to HTML with all code hidden, writes ``index.html``
   (summary first, then the other reports, then a provenance footer) and
   ``provenance.json``;
4. only then replaces ``reports/<project>/``. A failure leaves the previous report where it
   was and keeps the failed build in ``reports/<project>.failed/`` for diagnosis.

Projects are independent: one failing does not stop the others, and ``workers > 1`` runs
them in separate processes (papermill is not safe across threads sharing a working folder).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from evaluation import __version__
from evaluation.errors import EvalKitError
from evaluation.intake import load_data, sha256_file, write_processed
from evaluation.params import NOTEBOOKS, ProjectParams, load_params
from evaluation.results import load_results
from evaluation.toc import load_toc

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


def validate_project(params_file: str | Path) -> ProjectParams:
    """Check parameters, theory of change and data without executing anything."""
    params = load_params(params_file)
    load_toc(params.resolve(params.theory_of_change))
    load_data(params, use_cache=False)
    notebooks = params.root / "notebooks"
    for analysis in params.enabled:
        if not (notebooks / NOTEBOOKS[analysis]).is_file():
            raise EvalKitError(
                f"{params.file}: analyses.{analysis}: its notebook "
                f"{NOTEBOOKS[analysis]} is not in {notebooks}"
            )
    return params


def _strip_stderr(nb) -> None:
    # Library warnings are for analysts (they stay in the .ipynb); boards get the HTML.
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = [
                o for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]


_HEADING = re.compile(r"<h([23]) id=[\"']([^\"']+)[\"'][^>]*>(.*?)</h\1>", re.S)


def _add_contents(body: str) -> str:
    """Insert a table of contents built from the report's h2/h3 headings."""
    items = []
    for level, anchor, text in _HEADING.findall(body):
        label = re.sub(r"<[^>]+>|¶", "", text).strip()
        indent = " style='margin-left:1.5em'" if level == "3" else ""
        items.append(f"<li{indent}><a href='#{anchor}'>{html.escape(label)}</a></li>")
    if len(items) < 2:
        return body
    nav = (
        "<nav class='evalkit-contents' aria-label='Contents'><h2>Contents</h2><ul>"
        + "".join(items)
        + "</ul></nav>"
    )
    # Place it after the first h1 (the report title) if there is one.
    match = re.search(r"</h1>", body)
    if match:
        return body[: match.end()] + nav + body[match.end():]
    return nav + body


PRINT_CSS = """
<style>
body { max-width: 60rem; margin: auto; font-family: system-ui, sans-serif; }
.evalkit-table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5em 0 1.2em; }
.evalkit-table caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
/* JupyterLab's own CSS right-aligns every cell; text reads better left-aligned (numbers
   are right-aligned cell by cell, by id, which wins over these class selectors). */
.jp-RenderedHTMLCommon .evalkit-table th, .jp-RenderedHTMLCommon .evalkit-table td,
.evalkit-table th, .evalkit-table td { padding: 3px 8px; border-bottom: 1px solid #ddd;
  text-align: left; vertical-align: top; }
.evalkit-contents ul { list-style: none; padding-left: 0.5em; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #444; }
@media print {
  @page { size: A4; margin: 15mm; }
  @page landscape { size: A4 landscape; }
  figure.evalkit-wide { page: landscape; }
  body { max-width: none; font-size: 10pt; }
  .evalkit-contents { page-break-after: always; }
  figure, table { page-break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  details > summary { display: none; }
  a { color: inherit; text-decoration: none; }
}
</style>
"""


def export_html(notebook_path: Path, html_path: Path, *, keep_warnings: bool = False) -> None:
    """Export an executed notebook to HTML with no code and no prompts.

    Warnings printed by the analyses (stderr) are kept for a researcher audience and left
    out for a board, for whom each report states its caveats in words.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_path, as_version=4)
    if not keep_warnings:
        _strip_stderr(nb)
    exporter = HTMLExporter(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    body = body.replace("</head>", PRINT_CSS + "</head>", 1)
    body = _add_contents(body)
    html_path.write_text(body, encoding="utf-8")


def _headlines_html(params: ProjectParams, results_file: Path) -> str:
    """The recorded headline of each outcome, in theory-of-change order, for the index."""
    results = load_results(results_file)
    if results.empty:
        return ""
    toc = load_toc(params.resolve(params.theory_of_change))
    by_id = {r["outcome_id"]: r for r in results.to_dict("records")}
    rows = "".join(
        f"<tr><td>{html.escape(o.statement)}</td>"
        f"<td>{html.escape(by_id[o.id]['verdict'])}</td>"
        f"<td>{html.escape(by_id[o.id]['headline'] or '')}</td></tr>"
        for o in toc.outcomes if o.id in by_id
    )
    return (
        "<h2>Headline results</h2><table class='headlines'><tr><th>Outcome</th>"
        f"<th>Verdict</th><th>Headline (95% CI)</th></tr>{rows}</table>"
        "<p>Verdicts are decided from 95% confidence intervals; the summary explains them "
        "and lists the outcomes not yet measured.</p>"
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
    links = "".join(
        f"<li><a href='{html.escape(href)}'>{html.escape(label)}</a></li>" for label, href in pages
    )
    inputs = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(Path(v['path']).name)}</td>"
        f"<td><code>{v['sha256']}</code></td></tr>"
        for k, v in provenance["inputs"].items()
    )
    params_yaml = html.escape(yaml.safe_dump(provenance["parameters"], sort_keys=False))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ max-width: 50rem; margin: 2rem auto; padding: 0 1rem; font-family: system-ui,
  sans-serif; line-height: 1.5; color: #222; }}
.synthetic {{ border: 2px solid #b35806; background: #fff4e5; padding: 0.5em 1em; }}
footer {{ margin-top: 3rem; font-size: 0.85rem; color: #444; border-top: 1px solid #ccc; }}
footer table {{ border-collapse: collapse; }} footer td {{ padding: 2px 8px; }}
table.headlines {{ border-collapse: collapse; }}
table.headlines td, table.headlines th {{ border-bottom: 1px solid #ddd; padding: 4px 8px;
  text-align: left; vertical-align: top; }}
code {{ font-size: 0.8rem; word-break: break-all; }}
@media print {{ @page {{ size: A4; margin: 15mm; }} }}
</style></head>
<body>
<h1>{title}</h1>
<p>{org}{' · ' if org and when else ''}{when}</p>
{synthetic}
<h2>Reports</h2>
<ol>{links}</ol>
{headlines}
<footer>
<p><strong>Provenance.</strong> Generated {html.escape(provenance['generated'])} by evalkit
{html.escape(provenance['kit_version'])}.</p>
<table><tr><th>input</th><th>file</th><th>SHA-256</th></tr>{inputs}</table>
<details><summary>Parameters</summary><pre>{params_yaml}</pre></details>
</footer>
</body></html>
"""


def _provenance(params: ProjectParams, data_reports: dict) -> dict:
    toc = params.resolve(params.theory_of_change)
    inputs = {
        "parameters": {"path": str(params.file), "sha256": sha256_file(params.file)},
        "theory_of_change": {"path": str(toc), "sha256": sha256_file(toc)},
    }
    for name, r in data_reports.items():
        inputs[f"data.{name}"] = {"path": r.path, "sha256": r.sha256}
    return {
        "generated": dt.datetime.now().replace(microsecond=0).isoformat(),
        "kit_version": __version__,
        "project": params.project.id,
        "inputs": inputs,
        "parameters": params.as_plain(),
    }


def _page_label(notebook: str) -> str:
    labels = {
        "00_overview.ipynb": "Overview: theory of change and data",
        "10_baseline_followup.ipynb": "Baseline and follow-up",
        "20_exclusions_its.ipynb": "Exclusions: interrupted time series",
        "30_referral_tracking.ipynb": "Referral pathway tracking",
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


def run_project(
    params_file: str | Path,
    *,
    reports_root: Path | None = None,
    progress: Callable[[str], None] = print,
) -> RunOutcome:
    """Run one project end to end. Never raises for a project's own failure."""
    import papermill as pm

    start = time.perf_counter()
    name = Path(params_file).stem
    try:
        params = load_params(params_file)
        name = params.project.id
        load_toc(params.resolve(params.theory_of_change))
        data = load_data(params, use_cache=False)
        write_processed(params, data)
    except EvalKitError as exc:
        return RunOutcome(str(params_file), name, False, str(exc), time.perf_counter() - start)

    notebooks_dir = params.root / "notebooks"
    reports_root = Path(reports_root) if reports_root else params.root / "reports"
    reports_root.mkdir(parents=True, exist_ok=True)
    final = reports_root / params.project.id
    failed_dir = reports_root / f"{params.project.id}.failed"
    build = Path(tempfile.mkdtemp(prefix=f".{params.project.id}-build-", dir=reports_root))
    pages: list[tuple[str, str]] = []
    enabled = params.enabled
    kernel = kernel_options()
    try:
        for i, analysis in enumerate(enabled, 1):
            notebook = NOTEBOOKS[analysis]
            source = notebooks_dir / notebook
            if not source.is_file():
                raise EvalKitError(f"notebook {source} not found")
            progress(f"[{name}] {i}/{len(enabled)} {notebook} ...")
            t0 = time.perf_counter()
            executed = build / notebook
            try:
                pm.execute_notebook(
                    str(source),
                    str(executed),
                    parameters={
                        "params_file": str(params.file),
                        "results_file": str(build / "results.json"),
                    },
                    kernel_name="python3",
                    language="python",
                    cwd=str(notebooks_dir),
                    progress_bar=False,
                    execution_timeout=EXECUTION_TIMEOUT,
                    start_timeout=START_TIMEOUT,
                    **kernel,
                )
            except pm.PapermillExecutionError as exc:
                export_html(executed, executed.with_suffix(".html"), keep_warnings=True)
                raise EvalKitError(
                    f"{notebook} failed at cell {exc.exec_count or exc.cell_index}: "
                    f"{exc.ename}: {_first_line(exc.evalue)}"
                ) from None
            export_html(executed, executed.with_suffix(".html"),
                        keep_warnings=params.report.audience == "researcher")
            pages.append((_page_label(notebook), executed.with_suffix(".html").name))
            progress(f"[{name}] {i}/{len(enabled)} {notebook} done in "
                     f"{time.perf_counter() - t0:.1f} s")
        # The summary leads the index.
        pages.sort(key=lambda p: p[1] != NOTEBOOKS["summary"].replace(".ipynb", ".html"))
        provenance = _provenance(params, data.reports)
        (build / "provenance.json").write_text(json.dumps(provenance, indent=2), "utf-8")
        headlines = _headlines_html(params, build / "results.json")
        (build / "index.html").write_text(_index_html(params, pages, provenance, headlines),
                                          "utf-8")
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
        return RunOutcome(
            str(params_file), name, False,
            f"{message} (build kept in {failed_dir}).{kept}", time.perf_counter() - start,
        )

    # Publish: swap the new report in, then remove the old one.
    old = reports_root / f".{params.project.id}-old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    build.rename(final)
    if old.exists():
        shutil.rmtree(old)
    if failed_dir.exists():
        shutil.rmtree(failed_dir)
    return RunOutcome(
        str(params_file), name, True, f"report in {final / 'index.html'}",
        time.perf_counter() - start, str(final),
    )


def _first_line(text: str) -> str:
    text = (text or "").strip()
    return text.splitlines()[0] if text else ""


def _run_quiet(args: tuple[str, Path | None]) -> RunOutcome:
    params_file, reports_root = args
    return run_project(params_file, reports_root=reports_root, progress=lambda m: print(m,
                       flush=True))


def run_projects(
    params_files: Iterable[str | Path],
    *,
    workers: int = 1,
    reports_root: Path | None = None,
    progress: Callable[[str], None] = print,
) -> list[RunOutcome]:
    """Run several projects; each one's failure is reported, not raised."""
    files = [str(p) for p in params_files]
    if workers <= 1 or len(files) <= 1:
        return [run_project(f, reports_root=reports_root, progress=progress) for f in files]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_quiet, [(f, reports_root) for f in files]))
