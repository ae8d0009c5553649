"""The baseline/follow-up report on the demo project and on small hand-made data: true
effects, privacy (disclosure control of every board-facing table, sentence and label),
records."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from evaluation.baseline_followup import (
    ComparisonUnavailable,
    headline_change,
    paired_change,
    reliable_change,
    subgroup_effects,
)
from evaluation.demo import TRUE_EFFECTS
from evaluation.intake import ProjectData
from evaluation.measures import load_registry
from evaluation.privacy import WITHHELD, Disclosure
from evaluation.project import Project, open_project
from evaluation.sections import baseline_followup
from tests.conftest import REPO

PUPIL_ID = re.compile(r"^([PS][0-9a-f]{16}|Z\d{12})$")
THRESHOLD = 5

#: Count columns of the section's board tables (every other column is an estimate, a label
#: or derived from a count).
COUNT_COLUMNS = {"Pupils (pairs)", "Baseline only", "Follow-up only", "Pupils",
                 "Programme pupils", "Comparison pupils"}


@pytest.fixture(scope="module")
def project():
    return open_project(REPO / "params" / "demo.yaml", REPO / "reports" / "_test_bf.json")


def analyse(project: Project, outcome, options=None, **changes) -> baseline_followup.Section:
    """What notebooks/10_baseline_followup.ipynb does for one outcome: select the data,
    call the library with the analysis options, hand the results to the section.
    ``changes`` update the options (e.g. ``allow_single_group=True``)."""
    options = options or baseline_followup._options(project)
    options = options.model_copy(update=changes)
    data = baseline_followup.select(project, outcome, options)
    same = dict(measure=data.measure, direction=outcome.direction,
                confidence=options.confidence, disclosure=project.disclosure,
                min_pairs=options.min_pairs)
    headline = headline_change(data.pupils, "baseline", "follow_up",
                               comparison=options.comparison,
                               allow_single_group=options.allow_single_group,
                               retest_range=options.retest_range, **same)
    change = paired_change(data.programme, "baseline", "follow_up", id="pupil_id", **same)
    subgroups = subgroup_effects(
        data.programme if headline.design == baseline_followup.SINGLE_GROUP else data.pupils,
        data.subgroups, "baseline", "follow_up", design=headline.design,
        rtm=getattr(headline, "rtm", None), names=baseline_followup.CHARACTERISTICS,
        **{k: v for k, v in same.items() if k != "direction"})
    reliable = None
    if data.has_reliability:
        reliable = reliable_change(data.programme, "baseline", "follow_up", id="pupil_id",
                                   measure=data.measure, disclosure=project.disclosure)
    return baseline_followup.outcome_section(project, data, headline, change,
                                             reliable=reliable, subgroups=subgroups)


def with_audience(project: Project, audience: str) -> Project:
    report = project.params.report.model_copy(update={"audience": audience})
    return dataclasses.replace(project, params=project.params.model_copy(update={"report": report}))


def hand_made(project: Project, programme: list, comparison: list,
              sen: list[str], fsm: list[bool]) -> Project:
    """The demo project with hand-made SDQ scores: ``programme`` and ``comparison`` are
    (baseline, follow-up) pairs, follow-up ``None`` for a pupil with a baseline only;
    ``sen`` and ``fsm`` give the programme pupils' characteristics in the same order."""
    rows, pupils = [], []
    for k, (b, f) in enumerate(programme + comparison):
        pid = f"P{k:012x}"
        group = "comparison" if k >= len(programme) else "programme"
        rows.append({"pupil_id": pid, "measure": "sdq_teacher_total", "timepoint": "baseline",
                     "score": float(b)})
        if f is not None:
            rows.append({"pupil_id": pid, "measure": "sdq_teacher_total",
                         "timepoint": "follow_up", "score": float(f)})
        mine = k < len(programme)
        pupils.append({"pupil_id": pid, "group": group,
                       "sen_status": sen[k] if mine else "none", "fsm": fsm[k] if mine else False,
                       "eal": False, "sex": "F" if k % 2 else "M"})
    scores = pd.DataFrame(rows).astype({"pupil_id": "string", "measure": "string",
                                        "timepoint": "string"})
    tables = {**project.data.tables, "scores": scores,
              "pupils": pd.DataFrame(pupils).astype({"pupil_id": "string"})}
    return dataclasses.replace(project, data=ProjectData(tables, project.data.reports))


def small_project(project: Project) -> Project:
    """20 programme pupils with both SDQ scores (12 reliably improved: 9 recovered,
    3 improved; 6 unchanged; 2 reliably deteriorated), one with a baseline only, EHC plan 1,
    SEN support 2, free school meals 3, and a comparison group of 3 pupils."""
    programme = [(26, 14), (28, 15), (24, 12), (30, 16), (27, 17), (25, 13), (29, 16),
                 (31, 17), (32, 18), (30, 22), (32, 23), (34, 25),   # reliably improved
                 (20, 19), (18, 18), (15, 17), (22, 20), (12, 13), (16, 14),  # unchanged
                 (8, 17), (10, 19),                                 # reliably deteriorated
                 (21, None)]                                        # baseline only
    sen = ["EHC plan", "SEN support", "SEN support"] + ["none"] * 18
    return hand_made(project, programme, [(25, 20), (18, 17), (22, 21)], sen,
                     [k < 3 for k in range(21)])


@pytest.fixture(scope="module")
def sections(project):
    return {o.id: analyse(project, o)
            for o in project.toc.outcomes_for("baseline_followup")}


@pytest.fixture(scope="module")
def small(project):
    return analyse(small_project(project), project.toc.outcome("sdq_difficulties"),
                   allow_single_group=True)


@pytest.fixture(scope="module")
def small_internal(project):
    # internal: the 3 comparison pupils are not withheld, so the comparison would be made
    # and be too small to judge (one sentence, no figures); the single group shows them
    return analyse(with_audience(small_project(project), "internal"),
                   project.toc.outcome("sdq_difficulties"), comparison=False)


def board_sections(sections, small):
    return {**sections, "small": small}


# ---------------------------------------------------------------- checkers


def recoverable(table: pd.DataFrame, equations: list[tuple[dict, float | None]]) -> list:
    """The withheld cells of ``table`` that the ``equations`` determine exactly.

    Each equation is ``({(row, column): coefficient}, total)``: the cells times their
    coefficients add up to ``total`` (a number shown elsewhere, or ``None`` when the
    equation is a relation among the table's own cells, total 0). A withheld cell is
    recoverable when its unit vector lies in the row space of the equations restricted to
    the withheld cells (then it is a combination of shown figures, as with 149 − 52 − 95).
    """
    hidden = sorted({cell for terms, _ in equations for cell in terms
                     if table.at[cell] == WITHHELD}, key=str)
    if not hidden:
        return []
    index = {cell: i for i, cell in enumerate(hidden)}
    matrix = np.zeros((len(equations), len(hidden)))
    for k, (terms, _) in enumerate(equations):
        for cell, coef in terms.items():
            if cell in index:
                matrix[k, index[cell]] = coef
    rank = np.linalg.matrix_rank(matrix)
    found = []
    for cell, i in index.items():
        unit = np.zeros(len(hidden))
        unit[i] = 1
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            found.append(cell)
    return found


def cells(table: pd.DataFrame, mask, col: str, coef: float = 1) -> dict:
    return {(int(r), col): coef for r in np.flatnonzero(np.asarray(mask))}


CLINICAL, FUNCTIONAL = "clinical significance", "started on the functional side"


def _reliable_change_equations(t: pd.DataFrame, n: int) -> list:
    """What a reader knows of the reliable-change table: each classification's pupils add
    up to its base (every pupil with both scores for reliable change; for the others, the
    base that any shown count and its percentage give away), the pupils who started on
    either side of the cut-off add up to all of them, and each reliable-change category is
    the sum of its clinical categories and its functional-side count."""
    rows = {k: i for i, k in enumerate(zip(t["Classification"], t["Category"], strict=True))}
    pupils = pd.to_numeric(t["Pupils"], errors="coerce")
    percent = pd.to_numeric(t["Percent"], errors="coerce")
    eqs: list = []
    for kind in t["Classification"].unique():
        mine = t["Classification"].eq(kind)
        shown = mine & pupils.gt(0) & percent.gt(0)
        if kind == "reliable change":
            eqs.append((cells(t, mine, "Pupils"), n))
        elif shown.any():
            base = pupils[shown].iloc[0] * 100 / percent[shown].iloc[0]
            eqs.append((cells(t, mine, "Pupils"), float(round(base))))
    sides = t["Classification"].isin([CLINICAL, FUNCTIONAL])
    if sides.any():
        eqs.append((cells(t, sides, "Pupils"), n))
    if (CLINICAL, "recovered") in rows:
        ties = {"reliably improved": ["recovered", "improved"],
                "no reliable change": ["unchanged"], "reliably deteriorated": ["deteriorated"]}
        for category, parts in ties.items():
            terms = {(rows[("reliable change", category)], "Pupils"): 1,
                     **{(rows[(CLINICAL, p)], "Pupils"): -1 for p in parts}}
            if (FUNCTIONAL, category) in rows:
                terms[(rows[(FUNCTIONAL, category)], "Pupils")] = -1
            eqs.append((terms, 0.0))
    return eqs


def section_equations(section, n: int) -> dict[str, tuple[pd.DataFrame, list]]:
    """Every board table of the section with the sums a reader knows about it: totals in
    the table, the section's sentences, and the n of pupils with both scores."""
    out = {}
    texts = " ".join([section.sentence] + [i.payload for i in section.items
                                           if i.kind == "text"])
    for caption, raw in section.tables().items():
        t = raw.reset_index(drop=True)
        eqs: list = []
        if "baseline and follow-up" in caption:
            unpaired = re.search(r"In addition, ([\d,]+) pupils", texts)
            if unpaired:
                eqs.append(({(0, "Baseline only"): 1, (0, "Follow-up only"): 1},
                            float(unpaired.group(1).replace(",", ""))))
        elif caption.startswith("Reliable"):
            eqs += _reliable_change_equations(t, n)
        elif "bands" in caption:
            bands = [c for c in t.columns if c not in ("Baseline band", "Total")]
            body = ~t["Baseline band"].eq("Total")
            for r in np.flatnonzero(body):
                eqs.append(({**{(int(r), c): 1 for c in bands}, (int(r), "Total"): -1}, 0.0))
            total_row = int(np.flatnonzero(~body)[0])
            for c in bands + ["Total"]:
                eqs.append(({**cells(t, body, c), (total_row, c): -1}, 0.0))
            eqs.append(({(total_row, "Total"): 1}, n))
        elif "by characteristic" in caption:
            for kind in t["Characteristic"].unique():
                eqs.append((cells(t, t["Characteristic"].eq(kind), "Pupils (pairs)"), n))
        elif "against comparison" in caption:
            eqs.append(({(0, "Programme pupils"): 1}, n))
        out[caption] = (t, eqs)
    return out


def _headline_n(section) -> int:
    table = section.tables()[next(c for c in section.tables() if "baseline and follow-up" in c)]
    return int(table.iloc[-1]["Pupils (pairs)"])


def _prose(section) -> list[str]:
    texts = [section.sentence] + [i.payload for i in section.items if i.kind == "text"]
    texts += list(section.tables())
    texts += [alt for _, alt in section.figures()]
    for fig, _ in section.figures():
        for ax in fig.axes:
            legend = ax.get_legend()
            texts += [t.get_text() for t in legend.get_texts()] if legend else []
            texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
            texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    return texts


SMALL_COUNT_IN_PROSE = re.compile(
    r"(?<![\d.,])([1-4])\s+(pupil|pupils)\b|=\s*([1-4])(?![\d.])|\(([1-4])\)|"
    r"\band\s+([1-4])\)")


# ---------------------------------------------------------------- true effects


def test_every_outcome_has_a_section(sections):
    assert set(sections) == {"sdq_difficulties", "attendance_targeted"}


@pytest.mark.parametrize("outcome, measure", [
    ("sdq_difficulties", "sdq_teacher_total"),
    ("attendance_targeted", "attendance_pct"),
])
def test_adjusted_difference_recovers_the_true_effect(sections, outcome, measure):
    truth = TRUE_EFFECTS["scores"][measure]["adjusted_difference"]
    result = sections[outcome].result
    assert result.ci_low < truth < result.ci_high
    assert result.verdict == "improved"
    # a percentage measure's difference is in percentage points
    unit = "percentage points" if measure.endswith("_pct") else "points"
    assert result.unit == f"{unit} (adjusted difference)"
    assert result.n == 149 + 85


def test_programme_change_matches_a_direct_computation(project, sections):
    from scipy import stats

    data = baseline_followup.select(project, project.toc.outcome("sdq_difficulties")).pupils
    paired = data[data["group"] == "programme"].dropna(subset=["baseline", "follow_up"])
    table = sections["sdq_difficulties"].tables()["Programme pupils: baseline and follow-up"]
    row = table.iloc[-1]
    assert row["Pupils (pairs)"] == len(paired)
    diff = paired["follow_up"] - paired["baseline"]
    assert row["Mean change"] == pytest.approx(diff.mean())
    assert row["p"] == pytest.approx(stats.ttest_rel(paired["follow_up"],
                                                     paired["baseline"]).pvalue)


# ---------------------------------------------------------------- privacy


def test_no_table_shows_a_pupil_id(sections, small, small_internal):
    for section in [*sections.values(), small, small_internal]:
        for caption, table in section.tables().items():
            assert "pupil_id" not in table.columns, caption
            values = table.astype(str).stack()
            assert not values.str.match(PUPIL_ID).any(), caption


def test_no_board_count_below_the_threshold(sections, small):
    for name, section in board_sections(sections, small).items():
        for caption, table in section.tables().items():
            columns = [c for c in table.columns if c in COUNT_COLUMNS]
            if "bands" in caption:
                columns = [c for c in table.columns if c != "Baseline band"]
            if caption.endswith("change allowing for regression to the mean"):
                assert not set(table.columns) & COUNT_COLUMNS  # group means only, no count
                continue
            assert columns, caption
            numbers = pd.to_numeric(table[columns].stack(), errors="coerce")
            shown = table[columns].stack()
            assert (shown.eq(WITHHELD) | numbers.notna()).all(), (name, caption)
            assert not numbers.between(1, THRESHOLD - 1).any(), (name, caption, table)


def test_no_withheld_cell_can_be_recovered(sections, small):
    withheld_somewhere = False
    for name, section in board_sections(sections, small).items():
        n = _headline_n(section)
        for caption, (table, eqs) in section_equations(section, n).items():
            withheld_somewhere |= bool(table.isin([WITHHELD]).to_numpy().any())
            assert recoverable(table, eqs) == [], (name, caption, table)
    assert withheld_somewhere


@pytest.mark.parametrize("seed", range(6))
def test_random_small_projects_keep_every_rule(project, seed):
    """Random small projects (8 to 40 pupils, skewed characteristics, unpaired pupils):
    no small count in a table, none recoverable, none in prose."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 41))
    base = rng.integers(5, 36, n)
    follow = np.clip(base + rng.normal(-3, 6, n).round(), 0, 40).astype(int)
    programme = [(int(b), int(f) if rng.random() > 0.1 else None)
                 for b, f in zip(base, follow, strict=True)]
    comparison = [(int(b), int(b) - int(rng.integers(-3, 4)))
                  for b in rng.integers(10, 30, int(rng.integers(2, 12)))]
    sen = list(rng.choice(["none", "SEN support", "EHC plan"], n, p=[0.8, 0.15, 0.05]))
    fsm = list(rng.random(n) < 0.2)
    hand = hand_made(project, programme, comparison, sen, fsm)
    section = analyse(hand, project.toc.outcome("sdq_difficulties"), allow_single_group=True)
    for caption, (table, eqs) in section_equations(section, n=_pairs(programme)).items():
        assert recoverable(table, eqs) == [], (seed, caption, table)
        columns = [c for c in table.columns if c in COUNT_COLUMNS
                   or ("bands" in caption and c != "Baseline band")]
        numbers = pd.to_numeric(table[columns].stack(), errors="coerce")
        assert not numbers.between(1, THRESHOLD - 1).any(), (seed, caption, table)
    for text in _prose(section):
        assert not SMALL_COUNT_IN_PROSE.search(text), (seed, text)
    assert section.figures() == []


def _pairs(programme: list) -> int:
    return sum(f is not None for _, f in programme)


def test_recovery_checker_finds_the_old_leak():
    """The checker itself: the table the issue reported (149 − 52 − 95 = 2) fails it."""
    old = pd.DataFrame({"Classification": ["reliable change"] * 3,
                        "Category": ["reliably improved", "no reliable change",
                                     "reliably deteriorated"],
                        "Pupils": [52, 95, WITHHELD]})
    assert recoverable(old, [(cells(old, [True] * 3, "Pupils"), 149)]) == [(2, "Pupils")]
    both = old.assign(Pupils=[WITHHELD, 95, WITHHELD])
    assert recoverable(both, [(cells(both, [True] * 3, "Pupils"), 149)]) == []


def test_reliable_change_withholds_deteriorated_and_its_complement(sections):
    table = sections["sdq_difficulties"].tables()[
        next(c for c in sections["sdq_difficulties"].tables() if c.startswith("Reliable"))]
    row = table.set_index(["Classification", "Category"]).loc[
        ("reliable change", "reliably deteriorated")]
    rc = table[table["Classification"] == "reliable change"]
    # with the registry's alpha (0.80) no demo pupil deteriorates reliably: a zero is shown
    # (it discloses nothing); a small count would be withheld with a complement
    if row["Pupils"] != 0:
        assert row["Pupils"] == WITHHELD and row["Percent"] == WITHHELD
        assert rc["Pupils"].eq(WITHHELD).sum() >= 2
    counts = pd.to_numeric(rc["Pupils"], errors="coerce")
    assert not counts.between(1, THRESHOLD - 1).any()
    assert (rc["Pupils"].eq(WITHHELD) == rc["Percent"].eq(WITHHELD)).all()


def test_small_groups_show_neither_n_nor_estimate(small):
    subgroups = next(t for c, t in small.tables().items() if "by characteristic" in c)
    sen = subgroups[subgroups["Characteristic"] == "SEN status"].set_index("Group")
    for group in ("EHC plan", "SEN support"):
        assert (sen.loc[group, ["Pupils (pairs)", "Estimate", "CI low", "CI high"]]
                == WITHHELD).all(), group
    fsm = subgroups[subgroups["Characteristic"] == "Free school meals"]
    assert fsm["Pupils (pairs)"].eq(WITHHELD).sum() == 2  # 3 and, secondarily, 17


def test_band_transitions_go_through_disclosure(sections, small):
    for section in (sections["sdq_difficulties"], small):
        bands = next(t for c, t in section.tables().items() if "bands" in c)
        cells_ = bands.drop(columns="Baseline band").stack()
        assert not cells_.astype(str).str.contains("fewer than").any()
        assert cells_.eq(WITHHELD).any()
        assert bands["Baseline band"].iloc[-1] == "Total"


def test_no_small_count_in_prose_or_labels(sections, small):
    for name, section in board_sections(sections, small).items():
        for text in _prose(section):
            assert not SMALL_COUNT_IN_PROSE.search(text), (name, text)


def test_small_project_sentences_say_fewer_than(small):
    assert "In addition, fewer than 5 pupils with only one score" in small.sentence
    assert "(n = 20)" in small.sentence
    texts = " ".join(i.payload for i in small.items if i.kind == "text")
    assert "n = 20 and 3" not in texts
    assert "comparison group" in texts and "fewer than 5" in texts
    # the headline does not add the 3 comparison pupils to the 20 shown elsewhere
    assert small.result.n == 20
    assert small.result.unit == "points (change allowing for regression to the mean)"
    # the headline says the comparison group asked for could not be used
    assert small.result.headline.endswith("(the comparison group could not be used)")
    assert "`allow_single_group` is set" in texts


def test_per_pupil_figures_only_for_an_internal_audience(sections, small, small_internal):
    for section in (*sections.values(), small):
        assert section.figures() == []
        texts = " ".join(i.payload for i in section.items if i.kind == "text")
        assert "internal report" in texts
    assert len(small_internal.figures()) == 2
    legend = [t.get_text() for t in small_internal.figures()[1][0].axes[0].get_legend()
              .get_texts()]
    assert "reliably deteriorated (2)" in legend
    internal = small_internal.tables()
    rc = internal[next(c for c in internal if c.startswith("Reliable"))]
    assert rc.set_index(["Classification", "Category"]).loc[
        ("reliable change", "reliably deteriorated"), "Pupils"] == 2


def test_jacobson_legend_counts_go_through_disclosure(project):
    from evaluation.baseline_followup import reliable_change

    measure = load_registry(project.params.measures)["sdq_teacher_total"]
    data = pd.DataFrame({"baseline": [26.0, 28, 24, 30, 27, 20, 18, 8],
                         "follow_up": [14.0, 15, 12, 16, 17, 19, 18, 17]})
    rc = reliable_change(data, "baseline", "follow_up", measure=measure)
    fig = baseline_followup.jacobson_plot(rc.pupils, measure, rc.s_diff, rc.cutoff, "t",
                                          Disclosure(THRESHOLD, "board"))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "reliably improved (5)" in labels
    assert "reliably deteriorated (fewer than 5)" in labels
    assert "no reliable change (fewer than 5)" in labels


def test_reliable_change_shown_only_with_a_reliability(sections, project):
    sdq = sections["sdq_difficulties"]
    attendance = sections["attendance_targeted"]
    assert any("Reliable" in c for c in sdq.tables())
    assert not any("Reliable" in c for c in attendance.tables())
    internal = with_audience(project, "internal")
    sdq_i = analyse(internal, project.toc.outcome("sdq_difficulties"))
    att_i = analyse(internal,
                                              project.toc.outcome("attendance_targeted"))
    assert len(sdq_i.figures()) == 2 and len(att_i.figures()) == 1
    assert all(alt for _, alt in sdq_i.figures())


def test_notebook_parameters_change_the_analysis(sections):
    """``papermill -p comparison False -p confidence 0.9``: open_project puts the
    notebook's parameters in place of the params file's options, and the analysis follows
    them (the headline becomes the programme pupils' change, with a 90% interval)."""
    changed = open_project(REPO / "params" / "demo.yaml", REPO / "reports" / "_test_bf.json",
                           "baseline_followup", comparison=False, confidence=0.9,
                           subgroups=None)
    assert changed.options.comparison is False and changed.options.confidence == 0.9
    assert changed.options.subgroups == ["sen_status", "fsm", "eal", "sex"]  # None: the file's
    outcome = changed.toc.outcome("sdq_difficulties")
    section = analyse(changed, outcome, changed.options)
    before = sections["sdq_difficulties"]
    assert before.result.unit == "points (adjusted difference)"
    assert section.result.unit == "points (change allowing for regression to the mean)"
    assert not any("comparison" in caption for caption in section.tables())
    # the comparison pupils are still in the data, so the table names whose change it is
    assert "Programme pupils: baseline and follow-up" in section.tables()
    # the same programme pupils' change at 95%, then 90%: the same estimate, a narrower CI
    default = analyse(changed, outcome, changed.options.model_copy(
        update={"confidence": 0.95}))
    assert section.result.estimate == pytest.approx(default.result.estimate)
    assert (section.result.ci_high - section.result.ci_low
            < default.result.ci_high - default.result.ci_low)


# ---------------------------------------------------------------- design-aware words (#19)


def _texts(section) -> str:
    return " ".join([section.sentence] + [i.payload for i in section.items if i.kind == "text"])


def test_each_headline_states_its_design_and_no_months(sections):
    for outcome_id, section in sections.items():
        assert section.result.headline.endswith("; comparison group, adjusted for baseline")
        texts = _texts(section)
        assert "**Design: comparison group.**" in texts
        # SDQ and attendance are not attainment measures: no months' progress anywhere
        everything = texts + " ".join(section.tables()) + " ".join(
            " ".join(map(str, t.columns)) for t in section.tables().values())
        assert "month" not in everything.lower(), outcome_id
        assert "additional progress" not in everything


def test_subgroups_are_effect_modification_without_p_values(sections):
    section = sections["sdq_difficulties"]
    caption = next(c for c in section.tables() if "by characteristic" in c)
    table = section.tables()[caption]
    assert "adjusted difference" in caption
    assert not {"p", "interaction_p", "interaction_p_holm"} & set(table.columns)
    assert "Subgroup results are exploratory" in _texts(section)
    assert "differs by SEN status" in _texts(section)


def test_reliable_change_recovered_only_from_the_concerning_side(sections):
    section = sections["sdq_difficulties"]
    table = section.tables()[next(c for c in section.tables() if c.startswith("Reliable"))]
    assert "started on the functional side" in set(table["Classification"])
    assert "counted apart" in _texts(section)


def test_single_group_headlines_allow_for_regression_to_the_mean_or_say_they_cannot(project):
    single = {o.id: analyse(project, o, comparison=False)
              for o in project.toc.outcomes_for("baseline_followup")}
    sdq, attendance = single["sdq_difficulties"], single["attendance_targeted"]
    assert sdq.result.headline.endswith(
        "; single group before–after, allowing for regression to the mean")
    assert "kit's sensitivity range, not a published one" in _texts(sdq)
    assert any(c.endswith("change allowing for regression to the mean") for c in sdq.tables())
    assert attendance.result.headline.endswith("; single group before–after")
    assert attendance.result.verdict in ("better, cause unclear", "no clear change",
                                         "worse, cause unclear")
    assert "regression to the mean or normal development" in _texts(attendance)
    for section in single.values():
        assert section.result.verdict != "improved" or section is sdq


def test_a_comparison_that_cannot_be_used_stops_the_run(project):
    """Scores whose ids no longer join to pupils (the issue's lower-case UPNs): one clear
    line, unless allow_single_group, when the headline says so."""
    scores = project.table("scores").assign(
        pupil_id=lambda t: t["pupil_id"].str.lower())
    broken = dataclasses.replace(project, data=ProjectData(
        {**project.data.tables, "scores": scores}, project.data.reports))
    outcome = project.toc.outcome("sdq_difficulties")
    with pytest.raises(ComparisonUnavailable) as err:
        analyse(broken, outcome)
    message = str(err.value)
    assert "\n" not in message and "comparison: true" in message
    assert "did not match any pupil" in message
    allowed = analyse(broken, outcome, allow_single_group=True)
    assert allowed.result.headline.endswith("(the comparison group could not be used)")
    assert "`allow_single_group` is set" in _texts(allowed)


def test_too_few_pairs_give_one_sentence_and_no_verdict(project):
    programme = [(20 + k, 15 + k - k % 3) for k in range(8)]
    hand = hand_made(project, programme, [], ["none"] * 8, [False] * 8)
    section = analyse(hand, project.toc.outcome("sdq_difficulties"), comparison=False)
    assert section.result.verdict == "too few to judge"
    assert section.tables() == {} and section.figures() == []
    assert "fewer than the 10 needed" in section.sentence
    assert "Hedges" not in _texts(section)
