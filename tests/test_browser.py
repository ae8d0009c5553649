"""The demo report in a real browser: headless Chromium, on screen and printed to A4.

What a board member does with a report: opens it on a laptop (1366 x 768) and prints it,
or saves it as a PDF for the meeting papers. Every page of the demo report is laid out in
print media at the A4 printable width (210 mm - 2 x 15 mm margins = 180 mm) and must fit
it with nothing clipped; each page is printed to PDF, where every piece of text must be at
least 7 pt and the footer numbers the pages; the summary's printed length is bounded; the
verdict table must be on the first screen.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it in CI), driven by
Playwright. Without Playwright or a Chromium these tests skip and say why, so the README's
test command passes on any machine.

The demo report is built once per test session (``evalkit run params/demo.yaml`` into a
temporary folder, shared with tests/test_pdf.py). ``EVALKIT_TEST_REPORT=<folder>`` uses a
report built already instead (it is only read).
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest

from evaluation.params import NOTEBOOKS, load_params
from evaluation.toc import load_toc
from tests.conftest import REPO

MM = 96 / 25.4  # CSS pixels per millimetre
PRINTABLE_WIDTH_PX = round(180 * MM)  # A4 portrait less the template's 15 mm margins
SCREEN = {"width": 1366, "height": 768}
PT_MIN = 7.0  # the smallest text size a printed page may use

DEMO = load_params(REPO / "params" / "demo.yaml")
# one page per notebook (two analyses, such as the survey and the audit, may share one)
PAGES = list(dict.fromkeys(NOTEBOOKS[a].replace(".ipynb", ".html") for a in DEMO.enabled)
             ) + ["index.html"]
SUMMARY = NOTEBOOKS["summary"].replace(".ipynb", ".html")

def chromium_executable() -> str | None:
    """Debian's chromium (or another Chromium/Chrome on PATH)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def text_sizes(pdf: Path) -> list[tuple[int, float, str]]:
    """Every piece of text in a PDF as (page number, size in points, text): the font size
    times the scale of the text and transformation matrices (1 PDF unit = 1 pt)."""
    from pypdf import PdfReader

    found: list[tuple[int, float, str]] = []
    for number, page in enumerate(PdfReader(str(pdf)).pages, start=1):
        def visit(text, cm, tm, font, size, number=number):
            if text.strip():
                scale = math.hypot(tm[0], tm[1]) * math.hypot(cm[0], cm[1])
                found.append((number, round(size * scale, 2), text.strip()))
        page.extract_text(visitor_text=visit)
    return found


def page_ink(pdf: Path, dpi: int = 30) -> list[tuple[float, bool]]:
    """For each page of a PDF: how far down its body the content reaches (0 to 1, between
    the template's 15 mm top and 17 mm bottom margins) and whether anything is drawn in
    the 14 mm along its right edge (content running off the printable width). Pages are
    rendered with poppler's pdftoppm; the test skips where it is missing."""
    import subprocess
    import tempfile

    from PIL import Image

    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.skip("pdftoppm is not installed (Debian/Ubuntu: sudo apt-get install "
                    "poppler-utils)")
    found = []
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([pdftoppm, "-r", str(dpi), "-gray", "-png", str(pdf), f"{folder}/p"],
                       check=True)
        images = sorted(Path(folder).glob("p-*.png"), key=lambda f: int(f.stem.split("-")[1]))
        for image in images:
            grey = Image.open(image).convert("L")
            width, height = grey.size
            px = dpi / 25.4
            ink = grey.point(lambda v: 255 if v < 200 else 0)  # darker than light grey
            body = ink.crop((0, round(15 * px), width, round(height - 17 * px))).getbbox()
            reach = body[3] / (height - 32 * px) if body else 0.0
            margin = ink.crop((round(width - 14 * px), 0, width, height)).getbbox()
            found.append((reach, margin is not None))
    return found


NEAR_BLANK = 0.25  # content ending in the top quarter of a page that is not a last page


def page_texts(pdf: Path) -> list[str]:
    """The text of each page of a PDF, whitespace collapsed."""
    from pypdf import PdfReader

    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(str(pdf)).pages]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright is not installed (python -m pip install -e '.[dev]')")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium on this machine (Debian/Ubuntu: sudo apt-get install "
                    "chromium); the browser tests need one")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def printed(browser, demo_report, tmp_path_factory) -> dict[str, Path]:
    """Every page printed to A4 by Chromium, as a board member's browser would."""
    pytest.importorskip("pypdf", reason="pypdf is not installed (python -m pip install "
                        "-e '.[dev]')")
    out = tmp_path_factory.mktemp("printed")
    page = browser.new_page()
    pdfs = {}
    for name in PAGES:
        page.goto((demo_report / name).as_uri())
        pdfs[name] = out / name.replace(".html", ".pdf")
        page.pdf(path=str(pdfs[name]), format="A4", prefer_css_page_size=True)
    page.close()
    return pdfs


# JavaScript run in the page: what does not fit ``limit`` pixels, or is cut off by its own
# box (a scroll bar on paper hides the rest).
TOO_WIDE = r"""
(limit) => {
  const found = [];
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const clips = ['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX)
                  && el.scrollWidth > el.clientWidth + 1;
    if (box.right > limit + 1 || box.left < -1 || clips) {
      found.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}: ` +
                 `${Math.round(box.left)}..${Math.round(box.right)} px` +
                 (clips ? ` (content ${el.scrollWidth} px clipped to ${el.clientWidth})` : ''));
    }
  }
  return found;
}
"""


@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_the_a4_printable_width(browser, demo_report, name):
    """In print media at 180 mm, no element is wider than the page or clipped by its box:
    wide tables wrap or shrink, long text wraps, figures scale."""
    page = browser.new_page(viewport={"width": PRINTABLE_WIDTH_PX, "height": 1000})
    page.emulate_media(media="print")
    page.goto((demo_report / name).as_uri())
    too_wide = page.evaluate(TOO_WIDE, PRINTABLE_WIDTH_PX)
    page.close()
    assert not too_wide, f"{name}: wider than A4's printable width: {too_wide[:10]}"


def test_the_check_finds_a_table_too_wide(browser):
    """The width check is not vacuous: a table of long unbreakable words without the
    kit's style sheet is reported."""
    page = browser.new_page(viewport={"width": PRINTABLE_WIDTH_PX, "height": 1000})
    page.emulate_media(media="print")
    cells = "".join(f"<td>{'x' * 40}</td>" for _ in range(4))
    page.set_content(f"<div style='overflow:auto'><table><tr>{cells}</tr></table></div>")
    too_wide = page.evaluate(TOO_WIDE, PRINTABLE_WIDTH_PX)
    page.close()
    assert too_wide


FIRST_SCREEN = [SUMMARY, "index.html"]

VERDICT_TABLE = r"""
() => {
  const table = [...document.querySelectorAll('table')].find(
    t => [...t.querySelectorAll('th')].some(h => h.textContent.trim() === 'Verdict'));
  if (!table) return null;
  const box = table.getBoundingClientRect();
  return {top: box.top, bottom: box.bottom};
}
"""


@pytest.mark.parametrize("name", FIRST_SCREEN)
def test_verdict_table_is_on_the_first_screen(browser, demo_report, name):
    """At 1366 x 768 the table of outcomes and verdicts (the one with a 'Verdict' column)
    is whole within the first 768 pixels, before any scrolling."""
    page = browser.new_page(viewport=SCREEN)
    page.goto((demo_report / name).as_uri())
    box = page.evaluate(VERDICT_TABLE)
    page.close()
    assert box is not None, f"{name} has no table with a Verdict column"
    assert box["bottom"] <= SCREEN["height"], (
        f"{name}: the verdict table ends at {box['bottom']:.0f} px, below the first screen")


def test_summary_prints_on_few_pages(printed):
    """The summary of the demo's outcomes prints on at most 2 + ceil(outcomes / 2) + 3
    pages: a first page with the verdicts, the theory-of-change diagram on its landscape
    page, about half a page for each outcome's paragraph, and three for the action plan,
    the reporting periods and how to read the report with its provenance (8 for the
    demo's 6 outcomes; it printed on 11, three of them nearly blank, before the print
    style sheet; 7 with it)."""
    from pypdf import PdfReader

    outcomes = len(load_toc(DEMO.resolve(DEMO.theory_of_change)).outcomes)
    bound = 2 + math.ceil(outcomes / 2) + 3
    pages = len(PdfReader(str(printed[SUMMARY])).pages)
    assert pages <= bound, f"the summary prints on {pages} A4 pages (at most {bound})"


@pytest.mark.parametrize("name", PAGES)
def test_printed_text_is_at_least_7_pt(printed, name):
    """No printed text is smaller than 7 pt: tables shrink to 8 pt (7 pt when very wide),
    never less; a vector diagram's box text counts too (text inside a raster image
    cannot be measured here)."""
    small = [(n, size, text[:40]) for n, size, text in text_sizes(printed[name])
             if size < PT_MIN - 0.05]
    assert not small, f"{name}: text below {PT_MIN} pt: {small[:10]}"


@pytest.mark.parametrize("name", [p for p in PAGES if p != "index.html"])
def test_printed_pages_are_numbered_with_a_title(printed, name):
    """Each printed page's footer says 'Page n of N' and names the report."""
    texts = page_texts(printed[name])
    for number, text in enumerate(texts, start=1):
        assert f"Page {number} of {len(texts)}" in text, (name, number)


@pytest.mark.parametrize("name", PAGES)
def test_no_near_blank_printed_pages(printed, name):
    """No printed page but the last stops in its top quarter (the summary had three such
    pages: a contents list alone, a heading stranded before the diagram, a caption)."""
    reach = [r for r, _ in page_ink(printed[name])]
    blank = [n for n, r in enumerate(reach[:-1], start=1) if r < NEAR_BLANK]
    assert not blank, f"{name}: nearly blank pages {blank} (content reach {reach})"


def test_summary_prints_the_diagram_on_a_landscape_page(printed):
    """The theory-of-change diagram gets an A4 landscape page; the others are portrait."""
    from pypdf import PdfReader

    shapes = [(round(float(p.mediabox.width)), round(float(p.mediabox.height)))
              for p in PdfReader(str(printed[SUMMARY])).pages]
    assert set(shapes) <= {(595, 842), (842, 595)}, shapes  # A4 in points, either way
    assert shapes.count((842, 595)) == 1, shapes
    assert shapes[0] == (595, 842), shapes


DIAGRAM_PAGES = [SUMMARY, NOTEBOOKS["overview"].replace(".ipynb", ".html")]

DIAGRAM = r"""
() => [...document.querySelectorAll('figure.evalkit-wide')].map(f => ({
  svg: [...f.querySelectorAll('img')].filter(
    i => i.src.startsWith('data:image/svg+xml') && i.naturalWidth > 0).length,
  png: [...f.querySelectorAll('img')].filter(i => i.src.startsWith('data:image/png')).length,
  src: (f.querySelector('img') || {}).src || '',
}))
"""


@pytest.mark.parametrize("name", DIAGRAM_PAGES)
def test_diagram_prints_as_vector_text_of_at_least_7_pt(browser, demo_report, printed, name):
    """The theory-of-change diagram is an SVG image (shown by the browser) whose labels
    are text elements; on its A4 landscape page the printed text, the diagram's labels
    among it, is at least 7 pt (it printed at 5.3 to 5.7 pt as a PNG scaled to the page)."""
    import base64

    from pypdf import PdfReader

    page = browser.new_page(viewport=SCREEN)
    page.goto((demo_report / name).as_uri())
    figures = page.evaluate(DIAGRAM)
    page.close()
    assert len(figures) == 1, [{k: v for k, v in f.items() if k != "src"} for f in figures]
    assert figures[0]["svg"] == 1 and figures[0]["png"] == 0
    svg = base64.b64decode(figures[0]["src"].split(",", 1)[1]).decode("utf-8")
    assert svg.count("<text") > 30  # text kept as text, not drawn as paths

    pages = PdfReader(str(printed[name])).pages
    landscape = [n for n, p in enumerate(pages, start=1)
                 if float(p.mediabox.width) > float(p.mediabox.height)]
    assert len(landscape) == 1, landscape
    on_it = [(size, text) for n, size, text in text_sizes(printed[name]) if n == landscape[0]]
    toc = load_toc(DEMO.resolve(DEMO.theory_of_change))
    words = " ".join(" ".join(t for _, t in on_it).split())
    for aim in toc.aims:  # the diagram's own labels are on the page, as text
        assert " ".join(aim.statement.split()[:3]) in words, aim.id
    small = [(size, text[:30]) for size, text in on_it if size < PT_MIN - 0.05]
    assert not small, f"{name}: diagram text below {PT_MIN} pt: {small[:10]}"


def test_footer_title_cannot_break_out_of_the_style_sheet():
    """The project's title is user text written into the page's CSS footer: quotes,
    backslashes and a closing style tag stay inside the CSS string."""
    import nbformat
    from nbconvert import HTMLExporter

    from evaluation.runner import collect_contents

    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A page\n\nText.")]
    exporter = HTMLExporter(template_name="evalkit_report",
                            extra_template_basedirs=[str(REPO / "evaluation" / "templates")])
    exporter.register_preprocessor(collect_contents, enabled=True)
    hostile = 'Nurture "groups" \\ </style><script>alert(1)</script>'
    body, _ = exporter.from_notebook_node(nb, resources={"evalkit_project_title": hostile})
    assert "<script>alert(1)" not in body
    footer = re.search(r"@bottom-left \{ content: (\"(?:[^\"\\]|\\.)*\");", body)
    assert footer, "no footer rule"
    assert footer.group(1) == (
        '"Nurture \\"groups\\" \\\\ \\3C /style\\3E \\3C script\\3E alert(1)\\3C /script\\3E '
        ' · A page"')
