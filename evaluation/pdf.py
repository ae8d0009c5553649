"""The board pack: a published report as one A4 PDF for meeting papers.

``write_board_pack`` reads the HTML pages of a report folder (``reports/<project>`` or a
build about to be published) and writes ``board_pack.pdf`` beside them: a cover page
(title, organisation, period, date produced, the synthetic-data label where it applies,
and the parts with their page numbers), then the summary, then the analysis pages in
notebook order. Each page keeps the print style sheet of its template
(``templates/evalkit_report/evalkit.css``: A4 portrait, tables that wrap and repeat their
header row, the theory-of-change diagram on a landscape page); the pack numbers its pages
continuously and puts the project's title in every footer.

The PDF engine is WeasyPrint, which installs with pip and draws text with the system's
Pango library (present on Debian, Ubuntu and most Linux desktops; on Windows and macOS
see WeasyPrint's installation notes). The pages are joined into one HTML document rather
than printed one by one and merged, so that page numbers run through the whole pack and
links between pages become links inside the PDF.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import re
from pathlib import Path

from evaluation.errors import EvalKitError
from evaluation.params import NOTEBOOKS, ProjectParams

PACK_NAME = "board_pack.pdf"

_SUMMARY_PAGE = NOTEBOOKS["summary"].replace(".ipynb", ".html")
_HEAD = re.compile(r"<head[^>]*>(.*?)</head>", re.S | re.I)
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S | re.I)
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_HREF = re.compile(r"""href=(["'])([^"'#]*?\.html)(#[^"']*)?\1""")

# The pack's own rules, after every page's style sheet so that they win: a cover page
# without a footer, one footer for the whole pack, each part starting a new page.
_PACK_CSS = """
@page { @bottom-left { content: %(title)s; font: 8pt sans-serif; color: #555;
    vertical-align: top; padding-top: 3mm; }
  @bottom-right { content: "Page " counter(page) " of " counter(pages); font: 8pt sans-serif;
    color: #555; vertical-align: top; padding-top: 3mm; } }
@page cover { @bottom-left { content: none; } @bottom-right { content: none; } }
.evalkit-cover { page: cover; font-family: system-ui, sans-serif; padding-top: 45mm; }
.evalkit-cover h1 { font-size: 24pt; line-height: 1.2; margin: 0 0 6mm; }
.evalkit-cover .pack-org { font-size: 14pt; margin: 0 0 2mm; }
.evalkit-cover .pack-meta { font-size: 11pt; color: #333; margin: 0 0 1.5mm; }
.evalkit-cover .pack-synthetic { border: 2px solid #b35806; background: #fff4e5;
  padding: 3mm 4mm; margin: 8mm 0; font-size: 11pt; }
.evalkit-cover .pack-contents { margin-top: 14mm; font-size: 11pt; }
.evalkit-cover .pack-contents ol { padding-left: 5mm; }
.evalkit-cover .pack-contents a { color: inherit; text-decoration: none; }
.evalkit-cover .pack-contents a::after { content: leader('.') target-counter(attr(href), page); }
.evalkit-pack-part { break-before: page; }
"""


def pack_pages(report_dir: Path) -> list[Path]:
    """The pages of a report in the pack's order: the summary first, then the analysis
    pages in notebook order (their file names start with the notebook's number). The
    index is left out: the cover page takes its place."""
    pages = sorted(p for p in Path(report_dir).glob("*.html") if p.name != "index.html")
    return sorted(pages, key=lambda p: p.name != _SUMMARY_PAGE)


def css_string(text: str) -> str:
    """``text`` as a quoted CSS string that cannot end the string or the style element."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("<", "\\3C ").replace(">", "\\3E ")
    return '"' + re.sub(r"[\r\n\f]+", " ", escaped) + '"'


def _page_title(body: str, fallback: str) -> str:
    match = _H1.search(body)
    if not match:
        return fallback
    # the heading's text without its markup and its "¶" anchor link
    return html.unescape(_TAG.sub("", match.group(1))).replace("\N{PILCROW SIGN}", "").strip()


def _cover(title: str, organisation: str, period: str, produced: dt.date, synthetic: bool,
           parts: list[tuple[str, str]]) -> str:
    esc = html.escape
    rows = "".join(f"<li><a href='#{esc(anchor)}'>{esc(label)}</a></li>"
                   for anchor, label in parts)
    synthetic_note = (
        "<p class='pack-synthetic'><strong>Synthetic data.</strong> Made-up data that "
        "demonstrate the kit; no real pupil or school is described.</p>" if synthetic else ""
    )
    return (
        "<section class='evalkit-cover'>"
        f"<h1>{esc(title)}</h1>"
        + (f"<p class='pack-org'>{esc(organisation)}</p>" if organisation else "")
        + (f"<p class='pack-meta'>Evaluation period: {esc(period)}</p>" if period else "")
        + "<p class='pack-meta'>Board pack: the summary for the board, then each analysis"
        "</p>"
        f"<p class='pack-meta'>Produced on {produced.day} {produced:%B %Y}</p>"
        f"{synthetic_note}"
        f"<nav class='pack-contents' aria-label='Contents'><ol>{rows}</ol></nav>"
        "</section>"
    )


def board_pack_html(report_dir: Path, project_title: str, organisation: str = "",
                    period: str = "", synthetic: bool = False,
                    produced: dt.date | None = None) -> str:
    """The pack as one HTML document (what ``write_board_pack`` prints)."""
    pages = pack_pages(report_dir)
    if not pages:
        raise EvalKitError(f"no report pages in {report_dir} to make a board pack from")
    styles: list[str] = []
    parts: list[tuple[str, str]] = []
    bodies: list[str] = []
    known = {p.name: f"part-{p.stem}" for p in pages}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        head, body = _HEAD.search(text), _BODY.search(text)
        if head is None or body is None:
            raise EvalKitError(f"{page.name} is not a report page (no head or body)")
        for style in _STYLE.findall(head.group(1)):
            if style not in styles:  # every page carries the same style sheets
                styles.append(style)
        anchor = known[page.name]

        def link(match: re.Match, here: str = anchor) -> str:
            # a link to another page of the pack jumps inside the PDF
            quote, target, fragment = match.group(1), match.group(2), match.group(3)
            if target in known:
                return f"href={quote}{fragment or '#' + known[target]}{quote}"
            return match.group(0)

        inner = _HREF.sub(link, body.group(1))
        parts.append((anchor, _page_title(inner, page.stem)))
        bodies.append(f"<section class='evalkit-pack-part' id='{anchor}'>{inner}</section>")
    cover = _cover(project_title, organisation, period, produced or dt.date.today(),
                   synthetic, parts)
    pack_css = _PACK_CSS % {"title": css_string(project_title)}
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(project_title)}: board pack</title>"
        + "".join(styles)
        + f"<style>{pack_css}</style></head>"
        "<body class='jp-Notebook' data-jp-theme-light='true' "
        "data-jp-theme-name='JupyterLab Light'><main>"
        + cover + "".join(bodies) + "</main></body></html>"
    )


def _weasyprint():
    """WeasyPrint's HTML class, or one line saying what is missing."""
    try:
        from weasyprint import HTML
    except ImportError:
        raise EvalKitError(
            "the board pack needs WeasyPrint: python -m pip install weasyprint"
        ) from None
    except OSError as exc:  # the Pango library is not installed
        raise EvalKitError(
            "the board pack needs the Pango library that WeasyPrint draws text with "
            f"({exc}); on Debian or Ubuntu: sudo apt-get install libpango-1.0-0 "
            "libpangoft2-1.0-0; on Windows or macOS follow WeasyPrint's installation notes "
            "(https://doc.courtbouillon.org/weasyprint/stable/first_steps.html)"
        ) from None
    return HTML


def write_board_pack(report_dir: Path, project_title: str, organisation: str = "",
                     period: str = "", synthetic: bool = False, *,
                     produced: dt.date | None = None) -> Path:
    """Write ``report_dir/board_pack.pdf`` from the report's HTML pages; returns its path.

    ``period`` is the evaluation period in words (``"1 September 2021 to 19 July 2024"``),
    ``synthetic`` puts the synthetic-data label on the cover, ``produced`` is the date on
    the cover (today by default). The file appears in one step (written beside it, then
    renamed), so a reader never opens half a PDF.
    """
    report_dir = Path(report_dir)
    document = board_pack_html(report_dir, project_title, organisation, period, synthetic,
                               produced)
    html_class = _weasyprint()
    target = report_dir / PACK_NAME
    partial = report_dir / f".{PACK_NAME}.partial"
    # WeasyPrint logs every CSS property it does not support; JupyterLab's style sheet
    # has hundreds of them, none of which matters on paper.
    log = logging.getLogger("weasyprint")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        html_class(string=document, base_url=str(report_dir)).write_pdf(partial)
    finally:
        log.setLevel(level)
    os.replace(partial, target)
    return target


def _day(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def period_words(period) -> str:
    """A project's evaluation period in words, "1 September 2021 to 19 July 2024" ("" for
    none); ``period`` has ``start`` and ``end`` dates (``params.project.period``)."""
    if period is None:
        return ""
    return f"{_day(period.start)} to {_day(period.end)}"


def write_project_pack(params: ProjectParams, report_dir: Path) -> Path:
    """``write_board_pack`` for a project: its title, organisation, period and synthetic
    label from the parameters (what ``evalkit run --pdf`` calls on the finished build)."""
    project = params.project
    return write_board_pack(report_dir, project.title, project.organisation,
                            period_words(project.period), project.synthetic)
