"""Report sections: what a notebook shows for one theory-of-change outcome.

An analysis notebook loops over the outcomes its analysis evidences and, for each, asks a
``sections.<analysis>`` function for a :class:`Section`: a heading, the plain-English
sentence, tables (DataFrames), figures (with alt text) and the headline
:class:`~evaluation.results.Result` to record. The notebook only displays it
(``section.show()``) and records it (``project.record(section.result)``), so everything a
report says is computed here and testable without Jupyter.
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
    kind: str  # "text" | "table" | "figure"
    payload: Any  # markdown text | DataFrame | matplotlib Figure
    caption: str = ""  # table caption or figure alt text
    percent: tuple[str, ...] = ()
    wide: bool = False  # a figure that prints on a landscape page


@dataclass
class Section:
    """Everything shown for one outcome (or one part of a report)."""

    heading: str
    sentence: str = ""
    items: list[Item] = field(default_factory=list)
    result: Result | None = None
    level: int = 2

    def text(self, markdown: str) -> Section:
        self.items.append(Item("text", markdown))
        return self

    def table(self, frame: pd.DataFrame, caption: str, *, percent: tuple[str, ...] = ()
              ) -> Section:
        self.items.append(Item("table", frame, caption, percent))
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
            display(HTML(f"<p class='evalkit-sentence'><strong>{html.escape(self.sentence)}"
                         "</strong></p>"))
        for item in self.items:
            if item.kind == "text":
                display(report.markdown(item.payload))
            elif item.kind == "table":
                display(report.table(item.payload, item.caption, percent=item.percent))
            else:
                display(report.figure(item.payload, alt=item.caption, wide=item.wide))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def heading(text: str, level: int = 2) -> Any:
    """An HTML heading with an id, so the report's table of contents can link to it."""
    from IPython.display import HTML

    return HTML(f"<h{level} id='{slug(text)}'>{html.escape(text)}</h{level}>")
