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
import re
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML
from markdown_it import MarkdownIt

from evaluation import privacy
from evaluation.project import Project

# CommonMark without raw HTML, links, images, autolinks or link reference definitions:
# text typed by a user (titles, theory-of-change statements, category labels) can never
# become a tag, a script or a link, whatever reaches a report's Markdown.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable(
    ["link", "image", "autolink", "html_inline", "html_block", "reference"]
)
# CommonMark lets a backslash escape any ASCII punctuation character and print it as is.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
#: The class that tells MathJax (loaded by nbconvert's HTML export) to leave an element's
#: text alone: user text such as "$\\href{...}{...}$" must not be typeset as a formula or
#: a link. Every element these helpers build carries it.
NO_MATH = "tex2jax_ignore"


# ---------------------------------------------------------------------------- the page
# What this kernel has shown on the current page (a page is one notebook: it opens with
# banners() and closes with provenance()), read by the page's glossary and used to explain
# the table marks once per page. Recorded from the kit's own helpers and, inside IPython,
# from every display and cell result, so sentences shown by sections count too.
_PAGE: dict[str, Any] = {"open": False, "html": [], "explained": set()}


def _remember(fragment: Any) -> None:
    if _PAGE["open"]:
        _PAGE["html"].append(str(fragment))


def _display_hook(msg: dict) -> dict:
    try:
        _remember(msg["content"]["data"].get("text/html", ""))
    except (KeyError, TypeError, AttributeError):  # never stop a display
        pass
    return msg


def _cell_result(result: Any) -> None:
    shown = getattr(result, "result", None)
    if shown is not None:
        _remember(getattr(shown, "data", "") if isinstance(shown, HTML) else "")


def start_page() -> None:
    """Begin a page: forget what an earlier page showed and, inside IPython, listen to
    what this one displays (called by :func:`banners`, every page's first output)."""
    _PAGE.update(open=True, html=[], explained=set())
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "_evalkit_listening", False):
        return
    if hasattr(shell.display_pub, "register_hook"):
        shell.display_pub.register_hook(_display_hook)
    shell.events.register("post_run_cell", _cell_result)
    shell._evalkit_listening = True


def page_glossary(*, heading_level: int = 2) -> HTML:
    """The glossary of the statistical terms and table marks this page has shown so far
    (see :mod:`evaluation.glossary`); nothing when it shows none."""
    from evaluation.glossary import glossary_html

    return HTML(glossary_html("".join(_PAGE["html"]), heading_level=heading_level))


def markdown(text: str) -> HTML:
    """Kit Markdown rendered to HTML here, with raw HTML, links and images switched off.

    The front end never sees Markdown, so nothing inside ``text`` can become markup: a
    ``<script>`` prints as text. Put user text into a Markdown template through
    :func:`escape_markdown`, so that its ``**`` or ``#`` print literally too.
    """
    out = f"<div class='evalkit-text {NO_MATH}'>{_MARKDOWN.render(text)}</div>"
    _remember(out)
    return HTML(out)


def escape_markdown(text: Any) -> str:
    """``text`` for a Markdown template: every ASCII punctuation character backslash-
    escaped (so ``**Bold** _x_ # h`` prints as typed) and runs of spaces and single line
    breaks collapsed (so a line break cannot start a heading, list or code block inside
    the template); blank lines still separate paragraphs."""
    paragraphs = _PARAGRAPH_BREAK.split(str(text).strip())
    return "\n\n".join(_PUNCTUATION.sub(r"\\\1", _SPACES.sub(" ", p).strip())
                       for p in paragraphs if p.strip())


#: What a kit link may point to: a sibling page of the same report, or an anchor on it.
_SAFE_HREF = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(?:#[A-Za-z0-9_-]+)?", re.ASCII)


def link(label: str, href: str) -> str:
    """An HTML link for kit text (Markdown links are switched off): the label is escaped
    and the target must be a sibling page of the report (``20_exclusions_its.html``) or an
    anchor, so no scheme (``javascript:``), host or folder can be slipped in."""
    if not href or not _SAFE_HREF.fullmatch(href):
        raise ValueError(f"report.link: {href!r} is not a page of this report.")
    return f"<a href='{html.escape(href, quote=True)}'>{html.escape(label)}</a>"


def linked_sentence(before: str, label: str, href: str, after: str = "") -> HTML:
    """A paragraph of plain text with one kit link in it; every part is escaped."""
    out = (f"<p class='{NO_MATH}'>{html.escape(before)}{link(label, href)}"
           f"{html.escape(after)}</p>")
    _remember(out)
    return HTML(out)


def title_block(project: Project) -> HTML:
    """The title, organisation and evaluation period at the top of a report, as typed."""
    lines = [f"**{escape_markdown(project.title)}**"]
    if project.params.project.organisation:
        lines.append(escape_markdown(project.params.project.organisation))
    lines.append(f"Evaluation period: {escape_markdown(project.period_text())}")
    return markdown("  \n".join(lines))


#: Short forms a reader knows in capitals (kit column names are lower case).
_ACRONYMS = {"id": "ID", "eal": "EAL", "fsm": "FSM", "sen": "SEN", "sdq": "SDQ", "pct": "%"}


def plain_words(name: Any) -> str:
    """A kit name as words: underscores read as spaces and known short forms in capitals
    ('pupil_id' -> 'pupil ID', 'sen_status' -> 'SEN status', 'attendance_pct' ->
    'attendance %')."""
    return " ".join(_ACRONYMS.get(w.lower(), w) for w in str(name).replace("_", " ").split())


def plain_headings(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column headings as a reader writes them: :func:`plain_words`,
    first letter a capital ('suppressed cells' -> 'Suppressed cells')."""
    def heading(name: Any) -> str:
        words = plain_words(name)
        return words[:1].upper() + words[1:]

    return frame.rename(columns=heading)


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
    withheld_note: str = "",
) -> HTML:
    """A readable HTML table: caption, rounded numbers right-aligned, text left-aligned,
    no index, missing or not-applicable values shown as '–' and withheld values (see
    :func:`evaluation.privacy.disclose`) as '[c]', explained under the table by
    ``withheld_note`` (or a short default) wherever one appears. Every cell, header and
    caption is HTML-escaped."""
    shown = frame.copy()
    marked = privacy.withheld_cells(shown)
    for col in shown.columns:
        if marked[col].any():
            # a count column with withheld cells: the numbers keep their number format (a
            # text column, such as a printed estimate, keeps its text)
            kept = shown[col].mask(marked[col])
            rest = pd.to_numeric(kept, errors="coerce")
            if rest.notna().sum() == kept.notna().sum():
                shown[col] = rest
    for col in percent:
        if col in shown:
            shown[col] = shown[col].map(
                lambda v: privacy.NOT_APPLICABLE if pd.isna(v) else f"{v:.0f}%")
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
    for col in shown.columns:
        if marked[col].any():
            shown[col] = shown[col].astype(object)
            shown.loc[marked[col].to_numpy(), col] = privacy.WITHHELD
            inner = formatters.get(col, lambda v: html.escape(str(v)))
            formatters[col] = (lambda v, f=inner: privacy.WITHHELD if v == privacy.WITHHELD
                               else f(v))
    styler = (
        shown.style.format(formatters, na_rep="–", escape="html")
        .format_index(escape="html", axis=1)
        .set_properties(subset=numeric, **{"text-align": "right"})
        .set_table_attributes(f'class="evalkit-table {NO_MATH}"')
    )
    if not index:
        styler = styler.hide(axis="index")
    if caption:
        styler = styler.set_caption(html.escape(caption))
    out = styler.to_html()
    if marked.to_numpy().any():
        note = withheld_note or (f"{privacy.WITHHELD} withheld to protect pupils' privacy. "
                                 f"{privacy.NOT_APPLICABLE} not applicable or not available.")
        # On a page (see start_page) the marks are explained under the first table that
        # shows them, and again in the page's glossary, not under every table.
        if note not in _PAGE["explained"]:
            out += f"<p class='evalkit-table-note {NO_MATH}'>{html.escape(note)}</p>"
            if _PAGE["open"]:
                _PAGE["explained"].add(note)
    _remember(out)
    return HTML(out)


def figure(
    fig, alt: str, *, title: str | None = None, close: bool = True, wide: bool = False,
    vector: bool | None = None,
) -> HTML:
    """A matplotlib figure as an image with alt text (screen readers, broken images).

    A long description is folded under the figure rather than printed in full; ``wide``
    figures (such as the theory-of-change diagram) print on a landscape A4 page. They are
    ``vector`` graphics by default (:func:`svg_image`): sharp at any scale, vector text
    in a printed PDF, at the figure's own size, so a diagram drawn at the printable size
    of its page prints at scale 1. Other figures are PNG images.
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    if title:
        fig.suptitle(title)
    # Labels, legends and tick labels carry user text (school names, category labels): a
    # "$" in them is a dollar sign, never mathtext, which could fail or mis-typeset.
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    if vector if vector is not None else wide:
        image = svg_image(fig, alt)
    else:
        buffer = io.BytesIO()
        with mpl.rc_context({"text.parse_math": False}):  # tick labels made while drawing
            fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        image = (f"<img src='data:image/png;base64,{data}' "
                 f"alt='{html.escape(alt, quote=True)}' style='max-width:100%'/>")
    if close:
        plt.close(fig)
    short = alt if len(alt) <= 300 else alt[: alt.rfind(" ", 0, 280)] + " …"
    caption = html.escape(short)
    if short != alt:
        caption += f"<details><summary>Full description</summary>{html.escape(alt)}</details>"
    css = f"evalkit-figure evalkit-wide {NO_MATH}" if wide else f"evalkit-figure {NO_MATH}"
    _remember(f"<figcaption>{caption}</figcaption>")
    return HTML(f"<figure class='{css}'>{image}<figcaption>{caption}</figcaption></figure>")


def svg_image(fig, alt: str) -> str:
    """The figure as an SVG image (an ``<img>`` of ``data:image/svg+xml``) at the figure's
    own size, for the page.

    ``svg.fonttype: none`` keeps text as ``<text>`` elements, so it stays text: Chromium
    and WeasyPrint print it as vector text (searchable in the PDF, measurable in points)
    and it scales without blurring. matplotlib's SVG writer escapes every text and
    attribute it writes (``<`` ``>`` ``&`` and quotes), so user text such as
    ``</text><script>`` stays characters; and an SVG shown through ``<img>`` never runs
    a script, loads anything or styles the page, whatever it held. An image rather than
    inline SVG also keeps the drawing's coordinates out of the page's text. A fixed hash
    salt and no date keep the file the same from run to run.
    """
    import matplotlib as mpl

    buffer = io.BytesIO()
    with mpl.rc_context({"text.parse_math": False, "svg.fonttype": "none",
                         "svg.hashsalt": "evalkit"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"<img class='evalkit-svg' src='data:image/svg+xml;base64,{data}' "
            f"alt='{html.escape(alt, quote=True)}'/>")


def audience_banner(project: Project) -> HTML | None:
    """Every page of an ``audience: internal`` report says so: nothing is withheld there."""
    if project.params.report.audience != "internal":
        return None
    return HTML(
        f"<p class='evalkit-audience {NO_MATH}' style='border:2px solid #a50026;padding:6px 10px;"
        "background:#fde0dd'><strong>Internal report: it shows small counts and per-pupil "
        "figures. Do not circulate beyond the evaluation team.</strong></p>"
    )


def synthetic_banner(project: Project) -> HTML | None:
    if not project.params.project.synthetic:
        return None
    return HTML(
        f"<p class='{NO_MATH}' style='border:2px solid #b35806;padding:6px 10px;"
        "background:#fff4e5'>"
        "<strong>Synthetic data.</strong> This report was produced from made-up data to "
        "demonstrate the kit. No real pupil or school is described.</p>"
    )


def banners(project: Project) -> HTML:
    """What every page shows on top: the synthetic-data label and the internal-report
    warning, where they apply (nothing otherwise). Opens the page (:func:`start_page`)
    for its glossary."""
    start_page()
    shown = [b.data for b in (synthetic_banner(project), audience_banner(project)) if b]
    return HTML("".join(shown))


#: Parameter keys never shown in a provenance footer, at any depth (secrets).
SECRET_PARAMETERS = frozenset({"pseudonym_salt", "pseudonym_key", "salt", "secret"})


def input_label(name: str) -> str:
    """An input's name as a reader sees it: 'data.pupils' -> 'data: pupils',
    'theory_of_change' -> 'theory of change'."""
    return name.replace(".", ": ", 1).replace("_", " ")


def provenance(project: Project) -> HTML:
    """The page's glossary (:func:`page_glossary`), then a provenance footer: when, which
    kit version, the inputs' SHA-256 and the fingerprint of the pseudonym key, never the
    key. The parameters themselves (option names, filters) are shown only in an internal
    report, as an appendix: a board reads what they mean on the pages."""
    info = project.provenance()
    rows = "".join(
        f"<tr><td>{html.escape(input_label(name))}</td>"
        f"<td>{html.escape(_short_path(v['path'], project))}"
        f"</td><td><code>{html.escape(str(v['sha256'])[:16])}…</code></td></tr>"
        for name, v in info["inputs"].items()
    )
    glossary = page_glossary().data
    _PAGE["open"] = False
    params = ""
    if project.params.report.audience == "internal":
        shown = html.escape(json.dumps(_without_secrets(info["parameters"]), indent=1,
                                       default=str))
        params = ("<details><summary>Appendix: the parameters of this run</summary>"
                  f"<pre>{shown}</pre></details>")
    fingerprint = info.get("pseudonym_key_fingerprint")
    key = (f"<p>Pseudonyms were made with the project key whose fingerprint is "
           f"<code>{html.escape(str(fingerprint))}</code> (the key itself is never "
           "written anywhere).</p>" if fingerprint else "")
    return HTML(
        f"{glossary}<footer class='evalkit-provenance {NO_MATH}' style='font-size:85%;"
        "color:#444;border-top:1px solid #ccc;margin-top:1.2em'>"
        f"<p><strong>Provenance.</strong> Generated {html.escape(str(info['generated']))} by "
        f"evalkit {html.escape(str(info['kit_version']))} for project "
        f"“{html.escape(project.title)}”.</p>{key}"
        f"<table><tr><th>input</th><th>file</th><th>SHA-256</th></tr>{rows}</table>"
        f"{params}</footer>"
    )


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items()
                if str(k).lower() not in SECRET_PARAMETERS}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _short_path(path: str, project: Project) -> str:
    try:
        return str(Path(path).resolve().relative_to(project.params.root))
    except ValueError:
        return path
