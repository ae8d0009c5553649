"""Hostile text in every user field must never become live HTML or Markdown (issue #17).

A theory of change and parameters carrying script tags, event handlers, javascript: links,
iframes and Markdown emphasis are rendered through every path a board page uses:
``report.markdown``, ``Section.show()``, the summary's sections, the theory-of-change
tables and diagram, the title block and the provenance footer. The HTML must hold no
such markup (only escaped text such as ``&lt;script``) and Markdown punctuation typed by a
user must print literally.
"""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evaluation import report  # noqa: E402
from evaluation.project import Project, open_project  # noqa: E402
from evaluation.results import Result, record_result  # noqa: E402
from evaluation.sections import Section, summary  # noqa: E402
from evaluation.toc import toc_from_dict  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "params" / "demo.yaml"

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
IFRAME = "<iframe src=javascript:alert(2)></iframe>"
BOLD = "**bold**"
LABEL = "<b>x</b>"
#: Everything at once, plus Markdown that would make a heading, emphasis, an autolink, an
#: image, an entity and a broken mathtext expression (matplotlib reads "$...$").
HOSTILE = (f"{SCRIPT} {IMG} {LINK} {IFRAME} {BOLD} {LABEL} _x_ # h <https://evil.example> "
           "![i](x.png) &lt;b&gt; $\\frac{1}{$")


def hostile(name: str) -> str:
    return f"{name}: {HOSTILE}"


# --------------------------------------------------------------------------- HTML checks


class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(markup: str) -> _Parsed:
    parsed = _Parsed()
    parsed.feed(markup)
    parsed.close()
    return parsed


def assert_inert(markup: str) -> None:
    """No user text became markup: no script, iframe, user image or link, no handler."""
    lowered = markup.lower()
    for raw in ("<script", "<iframe", "<img src=x", "<b>", "<a href=\"javascript",
                "<https://evil"):
        assert raw not in lowered, f"live {raw!r} in {markup[:300]!r}"
    for tag, attrs in parse(markup).tags:
        assert tag not in {"script", "iframe", "b", "object", "embed", "svg", "h1"}, tag
        if tag == "img":  # only the kit's own figures, embedded as PNG or SVG data
            src = attrs.get("src") or ""
            assert src.startswith("data:image/png;base64,") or (
                attrs.get("class") == "evalkit-svg"
                and src.startswith("data:image/svg+xml;base64,")), attrs
        if tag == "a":  # only the kit's own links to sibling pages
            assert re.fullmatch(r"[\w-]+\.html", attrs.get("href") or ""), attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in {"href", "src", "action", "formaction", "data", "style", "srcdoc"}:
                assert "javascript:" not in (value or "").lower(), (tag, name, value)


class _MathCheck(HTMLParser):
    """Finds text outside any element marked for MathJax to skip (report.NO_MATH)."""

    VOID = {"br", "img", "hr", "meta", "link", "input", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.exposed: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        marked = report.NO_MATH in (dict(attrs).get("class") or "").split()
        inside = bool(self.stack) and self.stack[-1][1]
        self.stack.append((tag, marked or inside))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:  # "<br />" and "<img ... />" close nothing
            return
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        in_style = bool(self.stack) and self.stack[-1][0] == "style"
        if data.strip() and not in_style and not (self.stack and self.stack[-1][1]):
            self.exposed.append(data.strip())


def assert_no_math(markup: str) -> None:
    """Every piece of text sits in an element MathJax (nbconvert's export) leaves alone,
    so "$...$" in user text is never typeset (nor a MathJax "\\href" made a link)."""
    check = _MathCheck()
    check.feed(markup)
    check.close()
    assert check.exposed == [], check.exposed[:5]


def text_of(markup: str) -> str:
    return " ".join("".join(parse(markup).text).split())


def shown_html(section: Section, monkeypatch: pytest.MonkeyPatch, **kw) -> str:
    shown: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    section.show(**kw)
    plt.close("all")
    return "\n".join(o.data for o in shown if o is not None)


# --------------------------------------------------------------------------- fixtures


def _hostile_toc_dict() -> dict:
    """The demo theory of change with hostile text in every free-text field."""
    data = yaml.safe_load((REPO / "toc_templates" / "demo.yaml").read_text())
    data["title"] = hostile("title")
    text_keys = {"statement", "timescale", "evidence", "what", "for_whom",
                 "delivered_by", "when", "owner", "period", "activity_last_period",
                 "activity_next_period", "exit_strategy", "measure"}
    for part in ("aims", "outcomes", "mechanisms", "moderators", "activities",
                 "reporting_periods"):
        for i, item in enumerate(data.get(part, [])):
            for key in text_keys & set(item):
                if item[key] is not None:
                    # a percentage measure keeps its "_pct" ending, which a target in
                    # percentage points needs (evaluation.targets checks the units)
                    pct = "_pct" if key == "measure" and str(item[key]).endswith("_pct") else ""
                    item[key] = hostile(f"{key} {i}") + pct
            if "outputs" in item:
                item["outputs"] = [hostile(f"output {i}")]
            if isinstance(item.get("target"), dict):  # a target's own words
                item["target"]["text"] = hostile(f"target {i}")
    data["assumptions"] = [hostile("assumption")]
    belonging = next(o for o in data["outcomes"] if o["id"] == "belonging")
    belonging["measure"] = hostile("measure 5")  # a measure but no analysis: shown in prose
    return data


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return open_project(DEMO, tmp_path_factory.mktemp("esc") / "results.json")


@pytest.fixture(scope="module")
def project(demo: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    toc = toc_from_dict(_hostile_toc_dict())
    params = demo.params.model_copy(update={"project": demo.params.project.model_copy(
        update={"title": f"{SCRIPT} {BOLD} _x_ # h", "organisation": IMG})})
    results_file = tmp_path_factory.mktemp("hostile") / "results.json"
    first, second = toc.outcomes[0], toc.outcomes[2]
    for o, n in ((first, 234), (second, 21)):
        record_result(results_file, Result(
            outcome_id=o.id, analysis=o.analysis or "its", measure=o.measure, estimate=-2.0,
            ci_low=-3.1, ci_high=-0.9, unit=hostile("unit"), null=0.0, n=n,
            period=hostile("period"), direction=o.direction, verdict="improved",
            headline=hostile("headline"), sentence=hostile("sentence"),
            notebook="javascript:alert(3)//"), project="demo")
    # a result for an id outside the theory of change (shown by id)
    record_result(results_file, Result(
        outcome_id="kpi_response", analysis="referral_tracking", measure="m", estimate=1.0,
        ci_low=0.5, ci_high=1.5, unit="u", null=0.0, n=300, period="p",
        direction="higher_is_better", verdict="improved", headline="h", sentence="s"),
        project="demo")
    return dataclasses.replace(demo, toc=toc, params=params, results_file=results_file)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- report.markdown


@pytest.mark.parametrize("text", [SCRIPT, IMG, LINK, IFRAME, LABEL, HOSTILE,
                                  "<https://evil.example>", "[a]: javascript:alert(1)\n\n[a]",
                                  "```\n<script>x</script>\n```", "&lt;script&gt;"])
def test_markdown_never_renders_raw_html_links_or_images(text: str) -> None:
    out = report.markdown(text)
    assert out.data  # an HTML display object, rendered here, not by the front end
    assert type(out).__name__ == "HTML"
    assert_inert(out.data)
    tags = {tag for tag, _ in parse(out.data).tags}
    assert tags <= {"div", "p", "strong", "em", "pre", "code"}, tags
    assert not any(attrs for tag, attrs in parse(out.data).tags if tag != "div")


def test_markdown_escapes_script_as_text() -> None:
    out = report.markdown(f"Title: {SCRIPT}").data
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert text_of(out) == f"Title: {SCRIPT}"


def test_kit_markdown_still_renders() -> None:
    out = report.markdown("**Verdict: improved**, because\n\n- one\n- two").data
    assert "<strong>Verdict: improved</strong>" in out and "<li>one</li>" in out


@pytest.mark.parametrize("text", [
    "**Bold** _x_ # h", BOLD, "1. not a list", "- not a list", "> not a quote",
    "Title\n===", "`code`", "a\\b", "***", "&amp; &lt;b&gt;", "trailing backslash\\",
    "[x](y) ![i](j.png)", "    indented", "<b>x</b>", "+ plus", "~~~", "a | b",
])
def test_escape_markdown_prints_literally(text: str) -> None:
    out = report.markdown(report.escape_markdown(text)).data
    assert text_of(out) == " ".join(text.split())
    assert_inert(out)
    for tag in ("strong", "em", "h1", "h2", "ol", "ul", "blockquote", "code", "hr", "pre"):
        assert f"<{tag}" not in out, (text, out)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")),
               max_size=40))
def test_escape_markdown_round_trips_any_line(text: str) -> None:
    out = report.markdown(report.escape_markdown(text)).data
    assert text_of(out) == " ".join(text.split())
    assert "<strong" not in out and "<em" not in out and "<a " not in out


def test_escape_markdown_keeps_paragraphs() -> None:
    out = report.markdown(report.escape_markdown("First *one*.\n\n  Second\n line.")).data
    assert out.count("<p>") == 2 and "First *one*." in out and "Second line." in out


def test_link_escapes_and_refuses_other_targets() -> None:
    assert report.link("a <b> report", "10_baseline_followup.html") == (
        "<a href='10_baseline_followup.html'>a &lt;b&gt; report</a>")
    for bad in ("javascript:alert(1)", "https://evil.example", "//evil.example",
                "\\\\evil.example", "../x.html", "a.html' onclick='x", ""):
        with pytest.raises(ValueError):
            report.link("x", bad)


# --------------------------------------------------------------------------- Section.show


def test_section_show_renders_every_part_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    fig, ax = plt.subplots()
    section = (
        Section(hostile("heading"), hostile("sentence"))
        .text(f"**Kit label:** {report.escape_markdown(hostile('text'))}")
        .text(hostile("raw text item"))
        .table(pd.DataFrame({LABEL: [SCRIPT, IMG], "n": [12, 3]}), hostile("caption"))
        .figure(fig, hostile("alt"))
    )
    out = shown_html(section, monkeypatch)
    assert_inert(out)
    assert_no_math(out)
    assert "&lt;script" in out
    assert "<strong>Kit label:</strong>" in out
    # escaped user text prints its Markdown literally
    assert f"text: {SCRIPT} {IMG} {LINK} {IFRAME} {BOLD} {LABEL} _x_ # h" in text_of(out)


def test_section_link_item_is_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    section = Section("s").link(hostile("label"), "20_exclusions_its.html",
                                before="See the ", after=".")
    out = shown_html(section, monkeypatch, with_heading=False)
    assert_inert(out)
    assert "<a href='20_exclusions_its.html'>" in out


# --------------------------------------------------------------------------- summary


def _summary_sections(project: Project) -> list[Section]:
    results = project.results()
    return [
        summary.at_a_glance(project, results),
        summary.diagram_section(project, results),
        *summary.outcome_sections(project, results),
        summary.action_plan(project),
        *summary.reporting_period_sections(project, results),
        summary.conditions_section(project),
        summary.how_to_read(project),
        summary.results_provenance(project, results),
    ]


def test_summary_sections_render_hostile_text_inert(project: Project,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = "\n".join(shown_html(s, monkeypatch) for s in _summary_sections(project))
    assert_inert(out)
    assert_no_math(out)
    assert "&lt;script&gt;" in out
    plain = text_of(out)
    # Markdown punctuation typed by a user prints literally, wherever it is shown
    assert f"{BOLD} {LABEL} _x_ # h" in plain
    for field in ("statement 0", "target 0", "owner 0", "output 0", "evidence 0",
                  "assumption", "activity_last_period 0", "exit_strategy 0", "period 0",
                  "sentence", "measure 5"):
        assert f"{field}: {SCRIPT} {IMG} {LINK} {IFRAME} {BOLD}" in plain, field
    assert "<strong>bold</strong>" not in out and "<em>x</em>" not in out
    # the hostile notebook name in a results record never becomes a link (assert_inert
    # allows only links to sibling pages): the kit links only to its own reports
    assert not any(tag == "a" for tag, _ in parse(out).tags)


def test_summary_text_items_escape_user_text(project: Project) -> None:
    """The Markdown source itself: user text arrives backslash-escaped."""
    for section in _summary_sections(project):
        for item in section.items:
            if item.kind == "text":
                assert not re.search(r"(?<!\\)[<>]", item.payload), item.payload
                assert not re.search(r"(?<!\\)\*(?<!\\)\*bold", item.payload)
                assert "\\*\\*bold\\*\\*" in item.payload or BOLD not in text_of(
                    report.markdown(item.payload).data)


# --------------------------------------------------------------------------- theory of change


def test_toc_tables_are_escaped(project: Project) -> None:
    tables = project.toc.tables()
    out = "\n".join(report.table(frame, caption=part).data for part, frame in tables.items())
    assert_inert(out)
    assert_no_math(out)
    assert "&lt;script&gt;" in out and BOLD in text_of(out)


def test_toc_diagram_draws_user_text_literally(project: Project) -> None:
    fig = project.toc.diagram()
    fig.canvas.draw()  # mathtext would fail on "$\frac{1}{$" if user text were parsed
    texts = [t for t in fig.findobj(plt.Text) if "$" in t.get_text()]
    assert texts and all(not t.get_parse_math() for t in texts)
    out = report.figure(fig, alt=fig._evalkit_alt).data
    assert_inert(out)


def test_toc_diagram_svg_keeps_user_text_as_text(project: Project) -> None:
    """The diagram as an SVG image (report.figure, wide): a statement that tries to close
    its text element and open a script stays the characters it is, inside a <text>
    element; one that tries to close an attribute stays text too; the SVG holds no
    script, foreign object, link or handler, and the page only an <img> of it."""
    import base64
    import xml.etree.ElementTree as ET

    data = _hostile_toc_dict()
    breakout = "</text><script>alert(1)</script>"
    data["outcomes"][0]["statement"] = breakout
    data["aims"][0]["statement"] = "' onload='alert(2)' x='"
    toc = toc_from_dict(data)
    fig = toc.diagram()
    out = report.figure(fig, alt=fig._evalkit_alt, wide=True).data
    assert_inert(out)
    assert_no_math(out)
    images = [a for tag, a in parse(out).tags if tag == "img"]
    assert len(images) == 1 and images[0]["class"] == "evalkit-svg"
    assert images[0]["alt"] == fig._evalkit_alt  # escaped in the page, intact when read
    svg = base64.b64decode(images[0]["src"].removeprefix("data:image/svg+xml;base64,"))
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert breakout in texts
    assert "' onload='alert(2)' x='" in texts
    assert any(SCRIPT in t for t in texts)  # the other hostile fields too
    assert b"<script" not in svg and b"onload=" not in svg.replace(b"onload='alert", b"")
    assert not [e for e in root.iter() if e.tag.endswith(("script", "foreignObject", "}a"))]
    assert not [k for e in root.iter() for k in e.attrib if k.lower().startswith("on")]


def test_figures_draw_dollar_signs_in_labels_literally() -> None:
    """Any board figure (category labels, school names on ticks and legends) goes through
    report.figure, which never reads user text as mathtext."""
    fig, ax = plt.subplots()
    ax.bar(["$\\frac{1}{$", "School $5"], [1, 2], label="$\\href{x}{y}$")
    ax.set_xlabel("$x^2$ pupils")
    ax.legend()
    out = report.figure(fig, alt="Bars", title="$\\frac{$ title").data
    assert out.startswith("<figure")


# --------------------------------------------------------------------------- page furniture


def test_title_block_prints_title_and_organisation_literally(project: Project) -> None:
    out = report.title_block(project).data
    assert_inert(out)
    assert_no_math(out)
    assert text_of(out).startswith(f"{SCRIPT} {BOLD} _x_ # h {IMG} Evaluation period:")
    assert "<strong>&lt;script&gt;" in out  # the kit's own bold, around escaped text


def test_provenance_footer_is_escaped_and_shows_no_salt(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    info = project.provenance()
    info["parameters"]["project"]["pseudonym_salt"] = "s3cret-salt"
    info["pseudonym_key_fingerprint"] = "sha256:0123abcd"
    monkeypatch.setattr(type(project), "provenance", lambda self: info)
    out = report.provenance(project).data
    assert_inert(out)
    assert_no_math(out)
    assert "s3cret-salt" not in out and "pseudonym_salt" not in out
    assert "sha256:0123abcd" in out and "fingerprint" in out.lower()
    assert "&lt;script&gt;" in out  # the title, inside the parameters


def test_audience_banner_only_for_internal_reports(project: Project) -> None:
    assert report.audience_banner(project) is None
    internal = dataclasses.replace(project, params=project.params.model_copy(update={
        "report": project.params.report.model_copy(update={"audience": "internal"})}))
    banner = report.audience_banner(internal)
    assert_no_math(banner.data)
    assert banner.data in report.banners(internal).data
    assert report.banners(project).data == report.synthetic_banner(project).data
    assert ("Internal report: it shows small counts and per-pupil figures. Do not circulate "
            "beyond the evaluation team.") in text_of(banner.data)


@pytest.mark.parametrize("name", ["00_overview", "10_baseline_followup",
                                  "20_exclusions_its", "30_referral_tracking", "90_summary"])
def test_every_notebook_shows_both_banners_and_is_output_free(name: str) -> None:
    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    source = "\n".join("".join(c["source"]) for c in code)
    assert "report.banners(project)" in source
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None
    # no notebook builds a title line from raw user text
    assert "f\"**{project.title}" not in source
    assert "project.params.project.organisation}" not in source


# --------------------------------------------------------------------------- end to end


def test_exported_overview_and_summary_of_a_hostile_project_are_inert(
        project: Project, tmp_path: Path) -> None:
    """00_overview and 90_summary executed with papermill on a copy of the demo whose title,
    organisation, theory of change and recorded results are hostile; the exported HTML
    holds them only as text."""
    import nbformat
    import papermill as pm

    from evaluation.runner import export_html

    (tmp_path / "params").mkdir()
    (tmp_path / "toc_templates").mkdir()
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / "toc_templates" / "hostile.yaml").write_text(
        yaml.safe_dump(_hostile_toc_dict(), sort_keys=False))
    params = DEMO.read_text()
    for old, new in ((f"title: {yaml.safe_load(params)['project']['title']}",
                      f"title: {json.dumps(project.title)}"),
                     (f"organisation: {yaml.safe_load(params)['project']['organisation']}",
                      f"organisation: {json.dumps(IMG)}"),
                     ("theory_of_change: toc_templates/demo.yaml",
                      "theory_of_change: toc_templates/hostile.yaml")):
        assert old in params
        params = params.replace(old, new)
    params_file = tmp_path / "params" / "hostile.yaml"
    params_file.write_text(params)
    for name in ("00_overview", "90_summary"):
        executed = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(executed),
                            parameters={"params_file": str(params_file),
                                        "results_file": str(project.results_file)},
                            cwd=str(REPO / "notebooks"), progress_bar=False)
        nb = nbformat.read(executed, as_version=4)
        shown = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs if "text/html" in o.get("data", {})]
        assert len(shown) > 5
        for markup in shown:
            assert_inert(markup)
            assert_no_math(markup)
        export_html(executed, tmp_path / f"{name}.html")
        page = (tmp_path / f"{name}.html").read_text()
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.S)
        assert not any("alert(" in s for s in scripts)
        assert "<img src=x" not in page and "<iframe src=javascript" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        # the title block prints the title as typed (not only the parameters dump does)
        [title] = [m for m in shown if "Evaluation period" in m]
        assert text_of(title).startswith(f"{SCRIPT} {BOLD} _x_ # h {IMG}")
        assert "<strong>bold</strong>" not in page.lower() and "<em>x</em>" not in page
