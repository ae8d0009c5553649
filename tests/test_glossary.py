"""The board glossary: only the terms a page uses, in plain words, marks explained once."""

from __future__ import annotations

import re

from evaluation import glossary, privacy


def test_a_page_gets_only_the_terms_it_uses() -> None:
    page = ("<p>Suspensions fell: rate ratio 0.78 (95% CI 0.71 to 0.87), quasi-Poisson with "
            "Newey–West standard errors; Ljung–Box p = 0.41.</p>")
    terms = [e.term for e in glossary.terms_used(glossary.page_text(page))]
    assert terms == ["Confidence interval (CI)", "Rate ratio",
                     "Poisson and quasi-Poisson models", "Newey–West standard errors",
                     "Ljung–Box test", "Standard error", "p-value"]
    assert glossary.terms_used("Pupils' attendance rose.") == []


def test_every_entry_is_found_by_its_own_name_and_written_plainly() -> None:
    for entry in glossary.GLOSSARY:
        assert entry.found_in(entry.term), entry.term
        assert entry.meaning.endswith(".") and "_" not in entry.meaning
        assert not re.search(r"[`{}<>]", entry.meaning)


def test_marks_are_read_from_table_cells_only() -> None:
    table = f"<table><tr><td>{privacy.WITHHELD}</td><td>{privacy.NOT_APPLICABLE}</td></tr></table>"
    assert [m for m, _ in glossary.marks_used(table)] == [privacy.WITHHELD,
                                                         privacy.NOT_APPLICABLE]
    # a dash in running text is punctuation, not the not-applicable mark
    assert glossary.marks_used("<p>Newey–West, 2021–2024</p>") == []


def test_glossary_html_escapes_and_is_empty_without_terms() -> None:
    assert glossary.glossary_html("<p>Nothing technical here.</p>") == ""
    out = glossary.glossary_html("<p>The median <b>wait</b>.</p><footer>Poisson</footer>")
    assert "Median" in out and "Poisson" not in out  # the footer is not read for terms
    assert out.count("evalkit-term") == 1 and "<h2 id='glossary'>Glossary</h2>" in out
    hostile = glossary.glossary_html(f"<table><tr><td>{privacy.WITHHELD}</td></tr></table>")
    assert "<strong>[c]</strong> withheld" in hostile


def test_each_page_ends_with_its_own_glossary_and_a_board_gets_no_parameters(tmp_path):
    """report.banners opens a page; what the kit's helpers show on it decides the terms
    report.provenance explains; the parameters dump is for an internal report only."""
    import dataclasses

    from evaluation import report
    from evaluation.project import open_project
    from tests.conftest import REPO

    project = open_project(REPO / "params" / "demo.yaml", tmp_path / "results.json")
    report.banners(project)
    report.markdown("Suspensions fell: rate ratio 0.78 (95% CI 0.71 to 0.87).")
    page = report.provenance(project).data
    assert "Glossary" in page and "Rate ratio" in page and "Kaplan" not in page
    assert "<pre>" not in page and "disproportionality_group" not in page
    report.banners(project)  # a new page: the last one's terms are forgotten
    report.markdown("Half of the cases closed within the median of 40 days.")
    page = report.provenance(project).data
    assert "Median" in page and "Rate ratio" not in page
    internal = dataclasses.replace(project, params=project.params.model_copy(update={
        "report": project.params.report.model_copy(update={"audience": "internal"})}))
    assert "Appendix: the parameters of this run" in report.provenance(internal).data
