"""The board pack (evaluation/pdf.py): the demo report as one A4 PDF, made with WeasyPrint.

The pack is read back with pypdf: a cover page with the title, organisation, period, date
and synthetic label; the summary, then the analysis pages in order; every outcome's
headline from results.json in its text; A4 pages numbered through; no text below 7 pt.
The pack's assembly (page order, links, the CSS footer string) is tested without
WeasyPrint. Where WeasyPrint or its Pango library is missing, the PDF tests skip and say
why.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from evaluation.errors import EvalKitError
from evaluation.pdf import (
    PACK_NAME,
    board_pack_html,
    css_string,
    pack_pages,
    period_words,
    write_board_pack,
)
from tests.test_browser import (
    DEMO,
    NEAR_BLANK,
    PT_MIN,
    page_ink,
    page_texts,
    text_sizes,
)

PERIOD = "1 September 2021 to 19 July 2024"
PRODUCED = dt.date(2026, 12, 5)


def _weasyprint_or_skip() -> None:
    try:
        import weasyprint  # noqa: F401
    except ImportError:
        pytest.skip("WeasyPrint is not installed (python -m pip install -e .)")
    except OSError as exc:
        pytest.skip(f"WeasyPrint cannot find the Pango library: {exc}")
    pytest.importorskip("pypdf", reason="pypdf is not installed (python -m pip install "
                        "-e '.[dev]')")


@pytest.fixture(scope="module")
def pack(tmp_path_factory, demo_report) -> tuple[Path, Path]:
    """The demo's board pack, written into a copy of the demo report."""
    import shutil

    _weasyprint_or_skip()
    report = tmp_path_factory.mktemp("pack") / "demo"
    shutil.copytree(demo_report, report)
    pdf = write_board_pack(report, DEMO.project.title, DEMO.project.organisation, PERIOD,
                           DEMO.project.synthetic, produced=PRODUCED)
    return report, pdf


@pytest.fixture(scope="module")
def texts(pack) -> list[str]:
    return page_texts(pack[1])


def test_pack_is_written_beside_the_pages(pack):
    report, pdf = pack
    assert pdf == report / PACK_NAME and pdf.stat().st_size > 0
    assert not list(report.glob(".*partial")), "the partial file was left behind"


def test_cover_page(texts):
    cover = texts[0]
    for part in (DEMO.project.title, DEMO.project.organisation, PERIOD, "5 December 2026",
                 "Synthetic data"):
        assert part in cover, part
    assert "Page 1 of" not in cover, "the cover has no footer"


def test_summary_then_analysis_pages_in_order(texts, pack):
    """Each part starts on a new page, the summary right after the cover, then the
    analysis pages in notebook order."""
    from evaluation.pdf import _page_title

    starts = []
    for page in pack_pages(pack[0]):
        title = " ".join(_page_title(page.read_text(encoding="utf-8"), page.stem).split())
        starts.append(next(i for i, t in enumerate(texts) if i and title in t))
    assert starts[0] == 1, "the summary starts on the page after the cover"
    assert starts == sorted(set(starts)), starts


def test_every_outcome_headline_is_in_the_pack(texts, pack):
    records = json.loads((pack[0] / "results.json").read_text())["records"]
    assert records
    whole = " ".join(texts)
    missing = [r["headline"] for r in records if " ".join(r["headline"].split()) not in whole]
    assert not missing, missing


def test_pages_are_a4_and_numbered_through(pack, texts):
    from pypdf import PdfReader

    pages = PdfReader(str(pack[1])).pages
    shapes = {(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in pages}
    assert shapes <= {(595, 842), (842, 595)}, shapes  # A4 portrait or landscape, in pt
    for number, text in enumerate(texts[1:], start=2):
        assert f"Page {number} of {len(texts)}" in text, number
        assert DEMO.project.title in text, number


def test_nothing_runs_off_the_page_and_no_page_is_nearly_blank(pack, texts):
    """Rendered to images, no pack page has anything in its right margin (a table or
    figure too wide for A4), and none stops in its top quarter, except the last page of
    a part (the next part starts a new page)."""
    from evaluation.pdf import _page_title

    ink = page_ink(pack[1])
    assert len(ink) == len(texts)
    off = [n for n, (_, margin) in enumerate(ink, start=1) if margin]
    assert not off, f"pages with content in the right margin: {off}"
    starts = {next(i for i, t in enumerate(texts) if i and " ".join(
        _page_title(page.read_text(encoding="utf-8"), page.stem).split()) in t)
        for page in pack_pages(pack[0])}
    last_of_part = {s - 1 for s in starts} | {len(texts) - 1}
    blank = [n + 1 for n, (reach, _) in enumerate(ink)
             if n not in last_of_part and reach < NEAR_BLANK]
    assert not blank, f"nearly blank pages: {blank}"


def test_pack_text_is_at_least_7_pt(pack):
    small = [(n, s, t[:40]) for n, s, t in text_sizes(pack[1]) if s < PT_MIN - 0.05]
    assert not small, small[:10]


# --- Assembly, without a PDF engine -------------------------------------------------------

PAGE = """<!DOCTYPE html><html><head><style>p {{ color: black; }}</style>
<style>@page {{ @bottom-left {{ content: "{title}"; }} }}</style></head>
<body class="jp-Notebook"><main><h1 id="t">{title}<a class="anchor-link" href="#t">¶</a></h1>
<p><a href="10_baseline_followup.html">details</a> <a href='90_summary.html#x'>back</a>
<a href="https://example.org/page.html">elsewhere</a></p></main></body></html>"""


@pytest.fixture
def fake_report(tmp_path) -> Path:
    for name, title in [("00_overview.html", "Overview"), ("90_summary.html", "Summary"),
                        ("10_baseline_followup.html", "Baseline"), ("index.html", "Index")]:
        (tmp_path / name).write_text(PAGE.format(title=title), encoding="utf-8")
    return tmp_path


def test_pack_order_is_summary_then_notebook_order(fake_report):
    assert [p.name for p in pack_pages(fake_report)] == [
        "90_summary.html", "00_overview.html", "10_baseline_followup.html"]


def test_pack_html_joins_pages_with_a_cover(fake_report):
    doc = board_pack_html(fake_report, "Nurture <groups>", "Anytown", PERIOD, True, PRODUCED)
    assert doc.count("<style>p { color: black; }</style>") == 1, "shared styles once"
    assert "Nurture &lt;groups&gt;" in doc and "<groups>" not in doc
    assert doc.index("id='part-90_summary'") < doc.index("id='part-00_overview'")
    # contents with page numbers on the cover, in order
    assert doc.index("href='#part-90_summary'>Summary") < doc.index(
        "href='#part-00_overview'>Overview")
    # links between pages stay inside the pack; other links are kept
    assert 'href="#part-10_baseline_followup"' in doc
    assert "href='#x'" in doc
    assert 'href="https://example.org/page.html"' in doc
    assert "Synthetic data" in doc and "5 December 2026" in doc
    plain = board_pack_html(fake_report, "T", "", "", False, PRODUCED)
    assert "Synthetic data" not in plain and "Evaluation period" not in plain


def test_css_string_keeps_user_text_inside_the_string():
    assert css_string('a "b" \\ </style>\nc') == '"a \\"b\\" \\\\ \\3C /style\\3E  c"'


def test_period_in_words():
    assert period_words(DEMO.project.period) == PERIOD
    assert period_words(None) == ""


def test_no_pages_is_one_clear_error(tmp_path):
    with pytest.raises(EvalKitError, match="no report pages"):
        write_board_pack(tmp_path, "T")
