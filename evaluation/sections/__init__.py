"""Report sections: what a notebook shows for one theory-of-change outcome.

An analysis notebook loops over the outcomes its analysis evidences and, for each, selects
the data, calls the library's analysis functions itself (visible to a researcher reading
it), shows their ``.summary`` and ``.plot()`` to the analyst (:func:`for_analysts`) and
hands the results to a ``sections.<analysis>`` function for a :class:`Section`: a heading,
the plain-English sentence, tables (DataFrames), figures (with alt text) and the headline
:class:`~evaluation.results.Result` to record, made by the analysis result's own
``record(outcome)`` (:class:`~evaluation.results.AnalysisResult`), so a headline is
computed and worded once, in the library. Sections only word, round and lay out; the
notebook displays them (``section.show()``) and records the headline
(``project.record(section.result)``), so everything a report says is testable without
Jupyter.

Text items are kit Markdown, rendered by :func:`evaluation.report.markdown` with raw HTML
and links switched off, so user text in them can never become markup; put user text into
them through :func:`evaluation.report.escape_markdown` so that it also prints as typed.
Headings, sentences, captions and alt text are plain text, escaped when shown.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from evaluation.results import Result


@dataclass
class Item:
    kind: str  # "text" | "table" | "figure" | "link"
    payload: Any  # markdown text | DataFrame | matplotlib Figure | (before, label, href, after)
    caption: str = ""  # table caption or figure alt text
    percent: tuple[str, ...] = ()
    wide: bool = False  # a figure that prints on a landscape page
    note: str = ""  # a table's note explaining its withheld cells


@dataclass
class Section:
    """Everything shown for one outcome (or one part of a report)."""

    heading: str
    sentence: str = ""
    items: list[Item] = field(default_factory=list)
    result: Result | None = None
    level: int = 2

    def text(self, markdown: str) -> Section:
        """Kit Markdown (rendered without raw HTML or links); user text inside it goes
        through :func:`evaluation.report.escape_markdown`."""
        self.items.append(Item("text", markdown))
        return self

    def table(self, frame: pd.DataFrame, caption: str, *, percent: tuple[str, ...] = (),
              note: str = "") -> Section:
        """A table; ``note`` explains its withheld cells (e.g. ``disclosure.note()``) and is
        printed under it only if it has any."""
        self.items.append(Item("table", frame, caption, percent, note=note))
        return self

    def link(self, label: str, href: str, *, before: str = "", after: str = "") -> Section:
        """A plain-text paragraph with one link to another page of the report (Markdown
        links are switched off; see :func:`evaluation.report.link`)."""
        self.items.append(Item("link", (before, label, href, after)))
        return self

    def figure(self, fig: Any, alt: str, *, wide: bool = False) -> Section:
        self.items.append(Item("figure", fig, alt, wide=wide))
        return self

    def tables(self) -> dict[str, pd.DataFrame]:
        """The section's tables by caption (for tests and for researchers)."""
        return {i.caption: i.payload for i in self.items if i.kind == "table"}

    def figures(self) -> list[tuple[Any, str]]:
        return [(i.payload, i.caption) for i in self.items if i.kind == "figure"]

    def show(self, *, with_heading: bool = True) -> None:
        """Display the section in a notebook (headings carry ids for the contents list).

        ``with_heading=False`` shows only the body, for a section that sits directly under
        a heading the notebook gives as a markdown cell.
        """
        from IPython.display import HTML, display

        from evaluation import report

        if with_heading:
            display(heading(self.heading, self.level))
        if self.sentence:
            display(HTML(f"<p class='evalkit-sentence {report.NO_MATH}'><strong>"
                         f"{html.escape(self.sentence)}</strong></p>"))
        for item in self.items:
            if item.kind == "text":
                display(report.markdown(item.payload))
            elif item.kind == "table":
                display(report.table(item.payload, item.caption, percent=item.percent,
                                     withheld_note=item.note))
            elif item.kind == "link":
                before, label, href, after = item.payload
                display(report.linked_sentence(before, label, href, after))
            else:
                display(report.figure(item.payload, alt=item.caption, wide=item.wide))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def heading(text: str, level: int = 2) -> Any:
    """An HTML heading with an id, so the report's table of contents can link to it."""
    from IPython.display import HTML

    from evaluation.report import NO_MATH

    return HTML(f"<h{level} id='{slug(text)}' class='{NO_MATH}'>{html.escape(text)}"
                f"</h{level}>")


#: The tag of an output shown to the analyst in the notebook and left out of every HTML
#: page (``evaluation.runner.export_html`` removes it): unsuppressed tables and figures.
ANALYST_TAG = "evalkit-analyst"


def for_analysts(*shown: Any) -> None:
    """Show results to the analyst reading the notebook (e.g. ``change.summary``,
    ``change.plot()``), never in the report: each output is tagged :data:`ANALYST_TAG`,
    which the HTML export removes, because these tables and figures have not been through
    disclosure control. A figure (or the figure of an axes) is shown and then closed, so
    that the notebook does not draw it again, untagged, at the end of the cell."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display
    from matplotlib.axes import Axes

    for item in shown:
        figure = item.figure if isinstance(item, Axes) else item
        if isinstance(figure, plt.Figure):
            # a PNG whatever the backend (a kernel on Agg has no image formatter)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
            plt.close(figure)
            display(Image(data=buffer.getvalue(), format="png"),
                    metadata={"tags": [ANALYST_TAG]})
        else:
            display(item, metadata={"tags": [ANALYST_TAG]})
