"""A short glossary for board readers: the statistical terms a page uses, in plain words.

Each page shows only the terms it uses (:func:`terms_used` reads the page's text), in the
order of :data:`GLOSSARY`, with the two marks tables use (:data:`evaluation.privacy.
WITHHELD` and :data:`~evaluation.privacy.NOT_APPLICABLE`) explained once, where the page
shows them. The definitions are the kit's own plain-English wording of textbook meanings;
the one number quoted (Cohen's rule of thumb for effect sizes) cites its source.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from evaluation import privacy

__all__ = ["GLOSSARY", "Entry", "glossary_html", "marks_used", "page_text", "terms_used"]


@dataclass(frozen=True)
class Entry:
    """One glossary term: its name, its meaning in plain words and how a page names it."""

    term: str
    meaning: str
    pattern: str  # a regular expression (case-insensitive) that finds the term in text

    def found_in(self, text: str) -> bool:
        return re.search(self.pattern, text, flags=re.IGNORECASE) is not None


#: Every term a board page may use, in the order a glossary lists them.
GLOSSARY: tuple[Entry, ...] = (
    Entry("Confidence interval (CI)",
          "The range of values the data are consistent with. A 95% confidence interval is "
          "worked out so that in 95 of 100 studies like this one it would contain the true "
          "value. A wide interval means the result is uncertain.",
          r"confidence interval|\bCIs?\b"),
    Entry("Percentage points",
          "The difference between two percentages: attendance going from 85% to 88% is a "
          "rise of 3 percentage points (not of 3%).",
          r"percentage points?"),
    Entry("Comparison group",
          "Pupils or schools not in the programme, used to estimate what would have "
          "happened without it.",
          r"comparison group|comparison schools"),
    Entry("Adjusted difference (ANCOVA)",
          "Analysis of covariance: the programme group's follow-up scores compared with the "
          "comparison group's, allowing for where each pupil started (their baseline score).",
          r"ANCOVA|adjusted difference|analysis of covariance"),
    Entry("Effect size (Hedges' g)",
          "A change or difference divided by how much scores usually vary between pupils, "
          "so that results on different measures can be compared. Hedges' g is the version "
          "for small groups; about 0.2 is usually called small, 0.5 medium and 0.8 large "
          "(Cohen, 1988, Statistical Power Analysis for the Behavioral Sciences).",
          r"hedges|effect size"),
    Entry("Regression to the mean",
          "Pupils picked because their scores were extreme tend to score nearer the average "
          "next time even with no help, because part of any one score is chance. A "
          "before-and-after change in such pupils can be partly or wholly this.",
          r"regression to the mean"),
    Entry("Reliable change",
          "A change in one pupil's score bigger than the questionnaire's own measurement "
          "error could produce (Jacobson and Truax's reliable change index).",
          r"reliabl[ey] (change|improv|worsen|deteriorat)|reliable change|jacobson"),
    Entry("SDQ",
          "The Strengths and Difficulties Questionnaire: a widely used questionnaire about "
          "children's emotional and behavioural difficulties. A higher total difficulties "
          "score means more difficulties.",
          r"\bSDQ\b|strengths and difficulties"),
    Entry("Interrupted time series",
          "Counts followed over many periods before and after the programme started. The "
          "trend before the start is carried forward to estimate what would have happened "
          "without the programme, and what did happen is compared with it.",
          r"interrupted time series|time[- ]series"),
    Entry("Level and slope change",
          "In an interrupted time series, a level change is a step up or down when the "
          "programme starts; a slope change is a change in the trend from then on.",
          r"level change|slope change|change in (the )?(level|slope|trend)|level\+slope"),
    Entry("Rate ratio",
          "A rate (such as suspensions per pupil on roll) divided by the rate it is compared "
          "with, for example the rate expected from the trend before the programme. 1 means "
          "no difference, 0.80 means 20% lower and 1.25 means 25% higher.",
          r"rate ratio|ratio of observed to expected"),
    Entry("Poisson and quasi-Poisson models",
          "The usual statistical models for counts of events, such as suspensions. The "
          "quasi-Poisson version allows the counts to vary more from period to period than "
          "the plain model assumes, which gives wider, more honest confidence intervals.",
          r"poisson"),
    Entry("Seasonality",
          "Regular ups and downs through the school year (for example more suspensions in "
          "some terms), allowed for so that they are not mistaken for the programme's effect.",
          r"seasonal"),
    Entry("Autocorrelation",
          "When one period's figure is related to the next one's (a bad term is often "
          "followed by another). Ignoring it makes confidence intervals too narrow.",
          r"autocorrelat"),
    Entry("Newey–West standard errors",
          "A way of working out confidence intervals for a time series that allows for "
          "autocorrelation between neighbouring periods.",
          r"newey"),
    Entry("Ljung–Box test",
          "A check of whether autocorrelation is left over after the model: a small p-value "
          "warns that the confidence intervals may be too narrow.",
          r"ljung"),
    Entry("Standard error",
          "How much an estimate would vary from one sample to another; a 95% confidence "
          "interval reaches about two standard errors either side of the estimate.",
          r"standard errors?"),
    Entry("p-value",
          "The chance of a result at least this far from 'no difference' if there were truly "
          "no difference. A small p-value (such as below 0.05) means chance alone explains "
          "the data poorly; it does not say how big or important a difference is.",
          r"p-values?|\bp\s?[<=≤]\s?0?\.\d|\bp < ?0"),
    Entry("Pooled estimate (random effects)",
          "Several schools' results combined into one estimate, allowing each school's true "
          "effect to differ a little (random effects), so that no one school decides the "
          "answer.",
          r"pool(ed|ing)|random[- ]effects|dersimonian"),
    Entry("τ² (tau squared)",
          "How much the schools' true effects differ from one another, on the model's "
          "scale: 0 means they look alike, larger values mean real differences between "
          "schools.",
          r"τ²|tau[- ]squared|\btau2\b"),
    Entry("I² (I squared)",
          "The share of the spread between schools' results that reflects real differences "
          "rather than chance, from 0% to 100%.",
          r"I²|I-squared"),
    Entry("Median",
          "The middle value: half of the cases are below it and half above.",
          r"\bmedian\b"),
    Entry("Kaplan–Meier estimate",
          "A way of estimating the share of cases still open after a given time that "
          "counts correctly the cases still open when the data end (for those we know only "
          "that they lasted at least that long; statisticians call them 'censored').",
          r"kaplan"),
    Entry("Risk ratio",
          "The share of one group with an event (such as being referred) divided by the "
          "share of all other pupils with it: 1 means the same risk, 2 twice the risk and "
          "0.5 half the risk.",
          r"risk ratios?|relative risk"),
    Entry("Wilson score interval",
          "A confidence interval for a percentage that stays sensible when the percentage is "
          "near 0% or 100% or the group is small.",
          r"wilson"),
    Entry("Katz's log method",
          "The usual way of working out a confidence interval for a risk ratio.",
          r"\bkatz"),
    Entry("RAG status",
          "Red, amber, green: red means off track, amber at risk and green on track. Reports "
          "always write the colour as a word too.",
          r"\bRAG\b"),
)


def terms_used(text: str) -> list[Entry]:
    """The glossary entries whose term ``text`` uses, in glossary order."""
    return [entry for entry in GLOSSARY if entry.found_in(text)]


_TAG = re.compile(r"<[^>]+>")
# Not read for terms: styles, scripts, the provenance footer and pre-formatted dumps (the
# parameters), which are records of the run rather than text the page asks a board to read.
_HIDDEN = re.compile(r"<(style|script|footer|pre)\b.*?</\1\s*>",
                     flags=re.IGNORECASE | re.DOTALL)


def page_text(page_html: str) -> str:
    """What a reader reads of a piece of HTML: tags removed, and styles, scripts, the
    provenance footer and pre-formatted dumps left out."""
    return html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", page_html)))


def marks_used(page_html: str) -> list[tuple[str, str]]:
    """The table marks a page shows in its table cells, each with what it means (a dash
    in running text, "Newey–West", is punctuation, not the mark)."""
    cells = [html.unescape(c).strip()
             for c in re.findall(r"<td\b[^>]*>(.*?)</td>", page_html, flags=re.DOTALL)]
    marks = []
    if privacy.WITHHELD in cells:
        marks.append((privacy.WITHHELD, "withheld to protect pupils' privacy: a count too "
                      "small to show, or a figure worked out from one or that would give "
                      "one away"))
    if privacy.NOT_APPLICABLE in cells:
        marks.append((privacy.NOT_APPLICABLE, "not applicable, or no figure is available"))
    return marks


def glossary_html(page_html: str, *, heading_level: int = 2, anchor: str = "glossary") -> str:
    """The glossary of the terms a page's HTML uses in its visible text and of the marks
    its table cells show, as HTML (a heading and definition lists); "" when it uses none.
    Every piece of text is escaped."""
    entries = terms_used(page_text(page_html))
    marks = marks_used(page_html)
    if not entries and not marks:
        return ""
    # one short paragraph per term: compact on screen and on paper (a definition list
    # takes JupyterLab's two-column layout, which prints unevenly)
    para = "<p class='evalkit-term' style='margin:0 0 0.3em'><strong>{}.</strong> {}</p>"
    items = "".join(para.format(html.escape(e.term), html.escape(e.meaning)) for e in entries)
    level = int(heading_level)
    out = (f"<section class='evalkit-glossary tex2jax_ignore' style='font-size:0.88em'>"
           f"<h{level} id='{html.escape(anchor, quote=True)}'>Glossary</h{level}>")
    if entries:
        out += f"<p>The terms this page uses, in plain words.</p>{items}"
    if marks:
        signs = "; ".join(f"<strong>{html.escape(m)}</strong> {html.escape(w)}"
                          for m, w in marks)
        out += f"<p class='evalkit-term'><strong>Signs in tables:</strong> {signs}.</p>"
    return out + "</section>"
