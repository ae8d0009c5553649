"""Display helpers for report notebooks: tables, figures with alt text, provenance.

Notebooks call these so that every report looks the same and nothing about layout is
decided in a notebook cell. All of them return IPython display objects, which render in
JupyterLab and survive nbconvert's HTML export with code hidden.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown

from evaluation.project import Project


def markdown(text: str) -> Markdown:
    return Markdown(text)


def format_p(value: float) -> str:
    """p-values as journals print them: three decimals, and '<0.001' below that."""
    if value is None or pd.isna(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def table(
    frame: pd.DataFrame,
    caption: str = "",
    *,
    precision: int = 2,
    percent: Iterable[str] = (),
    index: bool = False,
) -> HTML:
    """A readable HTML table: caption, rounded numbers right-aligned, text left-aligned,
    no index, missing or withheld values shown as '–'."""
    shown = frame.copy()
    for col in percent:
        if col in shown:
            shown[col] = shown[col].map(lambda v: "–" if pd.isna(v) else f"{v:.0f}%")
    formatters, numeric = {}, []
    for col in shown.columns:
        if str(col) == "p" or str(col).endswith(("_p", " p", "p_value")):
            formatters[col] = format_p
            numeric.append(col)
        elif pd.api.types.is_float_dtype(shown[col]):
            values = shown[col].dropna()
            # counts that became floats because some were withheld: show them as counts
            digits = 0 if len(values) and (values == values.round()).all() else precision
            formatters[col] = lambda v, p=digits: "–" if pd.isna(v) else f"{v:,.{p}f}"
            numeric.append(col)
        elif pd.api.types.is_numeric_dtype(shown[col]) and not pd.api.types.is_bool_dtype(
            shown[col]
        ):
            formatters[col] = lambda v: "–" if pd.isna(v) else f"{v:,}"
            numeric.append(col)
        elif col in percent:
            numeric.append(col)
    # Formatted numbers such as '<0.001' must be escaped too, not only the text cells.
    formatters = {c: (lambda v, f=f: html.escape(f(v))) for c, f in formatters.items()}
    styler = (
        shown.style.format(formatters, na_rep="–", escape="html")
        .format_index(escape="html", axis=1)
        .set_properties(subset=numeric, **{"text-align": "right"})
        .set_table_attributes('class="evalkit-table"')
    )
    if not index:
        styler = styler.hide(axis="index")
    if caption:
        styler = styler.set_caption(html.escape(caption))
    return HTML(styler.to_html())


def figure(
    fig, alt: str, *, title: str | None = None, close: bool = True, wide: bool = False
) -> HTML:
    """A matplotlib figure as an image with alt text (screen readers, broken images).

    A long description is folded under the figure rather than printed in full; ``wide``
    figures (such as the theory-of-change diagram) print on a landscape A4 page.
    """
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    if close:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    short = alt if len(alt) <= 300 else alt[: alt.rfind(" ", 0, 280)] + " …"
    caption = html.escape(short)
    if short != alt:
        caption += f"<details><summary>Full description</summary>{html.escape(alt)}</details>"
    css = "evalkit-figure evalkit-wide" if wide else "evalkit-figure"
    return HTML(
        f"<figure class='{css}'><img src='data:image/png;base64,{data}' "
        f"alt='{html.escape(alt, quote=True)}' style='max-width:100%'/>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def synthetic_banner(project: Project) -> HTML | None:
    if not project.params.project.synthetic:
        return None
    return HTML(
        "<p style='border:2px solid #b35806;padding:6px 10px;background:#fff4e5'>"
        "<strong>Synthetic data.</strong> This report was produced from made-up data to "
        "demonstrate the kit. No real pupil or school is described.</p>"
    )


def provenance(project: Project) -> HTML:
    """A provenance footer: when, which kit version, the inputs' SHA-256, the parameters."""
    info = project.provenance()
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(_short_path(v['path'], project))}"
        f"</td><td><code>{v['sha256'][:16]}…</code></td></tr>"
        for name, v in info["inputs"].items()
    )
    params = html.escape(json.dumps(info["parameters"], indent=1, default=str))
    return HTML(
        "<footer class='evalkit-provenance' style='font-size:85%;color:#444;"
        "border-top:1px solid #ccc;margin-top:2em'>"
        f"<p><strong>Provenance.</strong> Generated {info['generated']} by evalkit "
        f"{info['kit_version']} for project <code>{html.escape(project.id)}</code>.</p>"
        f"<table><tr><th>input</th><th>file</th><th>SHA-256</th></tr>{rows}</table>"
        f"<details><summary>Parameters</summary><pre>{params}</pre></details></footer>"
    )


def _short_path(path: str, project: Project) -> str:
    try:
        return str(Path(path).resolve().relative_to(project.params.root))
    except ValueError:
        return path
