"""Tests for the theory-of-change module: schema errors, templates, tables and diagram."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the tests must not need a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from evaluation.errors import DataError, ParamsError  # noqa: E402
from evaluation.toc import (  # noqa: E402
    DIAGRAM_SIZE,
    NOT_YET_MEASURED,
    TEMPLATE_DIR,
    VERDICT_COLOURS,
    TheoryOfChange,
    diagram_alt_text,
    load_toc,
    template_path,
    toc_from_dict,
)

TEMPLATES = sorted(TEMPLATE_DIR.glob("*.yaml"))
EXPECTED_TEMPLATES = {
    "blank",
    "demo",
    "dfe_exclusions",
    "early_language",
    "ep_action_planning",
    "locality_referral_pathway",
    "school_avoidance",
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _norm(text: str) -> str:
    """Whitespace collapsed; a line broken after a hyphen ('trauma-\ninformed') joined."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def _demo_data() -> dict[str, Any]:
    return yaml.safe_load(template_path("demo").read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: Any, name: str = "toc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _error(tmp_path: Path, data: Any) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(ParamsError) as info:
        load_toc(path)
    message = str(info.value)
    assert str(path) in message  # every message names the file
    assert "Traceback" not in message and "pydantic" not in message
    return message


# --------------------------------------------------------------------------- templates


def test_template_set_is_complete() -> None:
    assert {p.stem for p in TEMPLATES} >= EXPECTED_TEMPLATES


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_every_template_validates(path: Path) -> None:
    toc = load_toc(path)
    assert toc.title and toc.aims and toc.outcomes and toc.mechanisms and toc.activities
    tables = toc.tables(audience="internal")
    for part in ("activities", "moderators", "mechanisms", "outcomes", "aims", "assumptions"):
        assert part in tables
    assert len(tables["outcomes"]) == len(toc.outcomes)
    assert list(tables["activities"]["ID"]) == [a.id for a in toc.activities]


def test_blank_template_marks_examples_and_carries_guidance() -> None:
    text = template_path("blank").read_text(encoding="utf-8")
    for part in (
        "AIMS",
        "OUTCOMES",
        "MEDIATING MECHANISMS",
        "MODERATING FACTORS",
        "ACTIVITIES",
        "ASSUMPTIONS",
    ):
        assert f"# {part}" in text
    toc = load_toc(template_path("blank"))
    assert toc.title.startswith("REPLACE")
    assert all(a.what.startswith("REPLACE") for a in toc.activities)


def test_demo_outcomes_are_the_contract_other_modules_rely_on() -> None:
    toc = load_toc(template_path("demo"))
    got = {o.id: (o.measure, o.analysis, o.data, o.direction) for o in toc.outcomes}
    assert got == {
        "sdq_difficulties": ("sdq_teacher_total", "baseline_followup", "scores", "lower_is_better"),
        "attendance_targeted": (
            "attendance_pct",
            "baseline_followup",
            "scores",
            "higher_is_better",
        ),
        "suspensions": ("suspensions", "its", "exclusions", "lower_is_better"),
        "referral_attendance": (
            "attendance_pct",
            "referral_tracking",
            "attendance",
            "higher_is_better",
        ),
        "needs_met": ("needs_met", "referral_tracking", "referrals", "higher_is_better"),
        "belonging": ("belonging", "survey", "pupil_survey", "higher_is_better"),
    }
    assert toc.outcome("suspensions").statement == "Fewer suspensions in programme schools"
    assert len(toc.reporting_periods) == 2
    assert [o.id for o in toc.outcomes_for("its")] == ["suspensions"]
    assert [o.id for o in toc.outcomes_for("referral_tracking")] == [
        "referral_attendance",
        "needs_met",
    ]
    assert [o.id for o in toc.outcomes_for("baseline_followup")] == [
        "sdq_difficulties",
        "attendance_targeted",
    ]
    assert {m.id for m in toc.moderators} == {"leadership_buy_in", "staff_capacity"}


def test_dfe_example_permanent_exclusions_use_its() -> None:
    toc = load_toc(template_path("dfe_exclusions"))
    perm = toc.outcome("permanent_exclusion_rate")
    assert (perm.analysis, perm.data, perm.direction) == ("its", "exclusions", "lower_is_better")
    assert "fixed_period_exclusion_rate" in {o.id for o in toc.outcomes}


def test_outcomes_for_rejects_unknown_analysis() -> None:
    toc = load_toc(template_path("demo"))
    with pytest.raises(ParamsError, match="'its'"):
        toc.outcomes_for("did")


def test_unknown_template_lists_available() -> None:
    with pytest.raises(ParamsError, match="demo"):
        template_path("no_such_template")


# --------------------------------------------------------------------------- warnings


def test_outcome_without_measure_is_a_warning_not_an_error() -> None:
    data = _demo_data()
    belonging = next(o for o in data["outcomes"] if o["id"] == "belonging")
    for key in ("measure", "analysis", "data"):
        del belonging[key]
    toc = toc_from_dict(data)
    warned = [w for w in toc.warnings if "'belonging'" in w]
    assert len(warned) == 1 and "not measured" in warned[0]
    # Measured outcomes are not flagged.
    assert not any("'suspensions'" in w for w in toc.warnings)
    internal = toc.outcome_table(audience="internal").set_index("ID")
    assert internal.loc["belonging", "Measure"] == "not measured"


def test_missing_measure_on_a_measured_outcome_adds_a_warning() -> None:
    data = _demo_data()
    out = data["outcomes"][0]
    for key in ("measure", "analysis", "data"):
        del out[key]
    toc = toc_from_dict(data)
    assert any("'sdq_difficulties' is not measured" in w for w in toc.warnings)


# --------------------------------------------------------------------------- errors


def test_unknown_link_id_names_file_owner_and_suggestion(tmp_path: Path) -> None:
    data = _demo_data()
    data["activities"][0]["mechanisms"] = ["trusted_adult"]  # typo of trusted_adults
    msg = _error(tmp_path, data)
    assert "activity 'staff_training'" in msg
    assert "'trusted_adult'" in msg and "did you mean 'trusted_adults'" in msg


def test_link_to_wrong_kind_of_id(tmp_path: Path) -> None:
    data = _demo_data()
    data["mechanisms"][0]["outcomes"] = ["aim_thrive"]
    msg = _error(tmp_path, data)
    assert "mechanism 'trusted_adults'" in msg and "'aim_thrive' is an aim" in msg


def test_duplicate_id_across_parts(tmp_path: Path) -> None:
    data = _demo_data()
    data["moderators"][0]["id"] = "suspensions"  # clashes with an outcome id
    msg = _error(tmp_path, data)
    assert "id 'suspensions' is used 2 times (outcome, moderator)" in msg


def test_activity_feeding_nothing(tmp_path: Path) -> None:
    data = _demo_data()
    data["activities"][1]["mechanisms"] = []
    msg = _error(tmp_path, data)
    assert "activity 'nurture_groups' feeds nothing" in msg


def test_mechanism_serving_no_outcome(tmp_path: Path) -> None:
    data = _demo_data()
    del data["mechanisms"][2]["outcomes"]
    msg = _error(tmp_path, data)
    assert "mechanism 'early_help' serves no outcome" in msg


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    data = _demo_data()
    data["outcomes"][2]["statment"] = data["outcomes"][2].pop("statement")
    msg = _error(tmp_path, data)
    assert "outcome 3 (id 'suspensions')" in msg
    assert "unknown key 'statment'" in msg and "did you mean 'statement'" in msg
    # The renamed key also leaves 'statement' missing: one line per problem.
    assert "key 'statement': required key is missing" in msg
    assert "2 problems" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    data = _demo_data()
    data["mechanism"] = data.pop("mechanisms")
    msg = _error(tmp_path, data)
    assert "unknown key 'mechanism'" in msg and "did you mean 'mechanisms'" in msg


def test_wrong_type(tmp_path: Path) -> None:
    data = _demo_data()
    data["aims"][0]["statement"] = 42
    data["activities"][0]["outputs"] = "Staff trained"
    data["activities"][1]["due"] = "next spring"
    msg = _error(tmp_path, data)
    assert "aim 1 (id 'aim_thrive'), key 'statement': expected text, got 42" in msg
    assert "activity 1 (id 'staff_training'), key 'outputs': expected a list" in msg
    assert "activity 2 (id 'nurture_groups'), key 'due': expected a date" in msg
    assert msg.count("\n- ") == 3


@pytest.mark.parametrize(
    ("part", "index", "key", "value", "expected"),
    [
        ("moderators", 0, "status", "done", "'in place', 'partly' or 'not yet'"),
        ("activities", 2, "rag", "yellow", "'green', 'amber' or 'red'"),
        ("outcomes", 0, "direction", "sideways", "higher_is_better or lower_is_better"),
        ("outcomes", 0, "analysis", "did",
         "'baseline_followup', 'its', 'referral_tracking', 'survey' or 'audit'"),
    ],
)
def test_bad_status_and_enum_values(
    tmp_path: Path, part: str, index: int, key: str, value: str, expected: str
) -> None:
    data = _demo_data()
    data[part][index][key] = value
    msg = _error(tmp_path, data)
    assert f"key {key!r}: expected {expected}, got {value!r}" in msg


def test_analysis_without_measure_is_an_error(tmp_path: Path) -> None:
    data = _demo_data()
    del data["outcomes"][2]["measure"]
    msg = _error(tmp_path, data)
    assert "outcome 'suspensions' names analysis 'its' but no measure" in msg


@pytest.mark.parametrize(("word", "right"), [
    ("down", "lower_is_better"), ("decrease", "lower_is_better"), ("lower", "lower_is_better"),
    ("increase", "higher_is_better"), ("higher", "higher_is_better"),
    (True, "higher_is_better"),
])
def test_other_direction_words_are_refused_naming_the_one_to_write(
    tmp_path: Path, word: object, right: str
) -> None:
    data = _demo_data()
    data["outcomes"][0]["direction"] = word
    msg = _error(tmp_path, data)
    assert "outcome 1 (id 'sdq_difficulties'), key 'direction': write " + right in msg


def test_bad_id_and_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    data = _demo_data()
    data["aims"][0]["id"] = "aim thrive"
    assert "expected an id of letters" in _error(tmp_path, data)

    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\naims:\n  - id: a\n   statement: oops\n", encoding="utf-8")
    with pytest.raises(ParamsError, match=r"bad\.yaml is not valid YAML at line \d+"):
        load_toc(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_toc(tmp_path / "missing.yaml")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_toc(_write(tmp_path, ["not", "a", "mapping"], "list.yaml"))


# --------------------------------------------------------------------------- diagram

RESULTS = [
    {
        "outcome_id": "suspensions",
        "headline": "Suspensions −23%, RR 0.77 (0.65 to 0.91)",
        "verdict": "improved",
    },
    {
        "outcome_id": "sdq_difficulties",
        "headline": "SDQ −1.2 (−2.0 to −0.4)",
        "verdict": "no clear change",
    },
    {"outcome_id": "needs_met", "headline": "Needs met 58% (target 70%)", "verdict": "worsened"},
]


def _texts(fig) -> list[str]:
    return [_norm(t.get_text()) for t in fig.findobj(Text)]


def _box(fig, kind: str, ident: str) -> FancyBboxPatch:
    found = [p for p in fig.findobj(FancyBboxPatch) if p.get_gid() == f"toc-{kind}-{ident}"]
    assert len(found) == 1, (kind, ident)
    return found[0]


def _check_boxes(toc: TheoryOfChange, fig) -> None:
    texts = _texts(fig)

    def present(label: str) -> bool:
        return any(_norm(label) in t for t in texts)

    labels = {t.get_gid(): t.get_text() for t in fig.findobj(Text)}
    for a in toc.activities:
        _box(fig, "activity", a.id)
        assert present(a.what), a.id
        # The status is written as a word, not carried by colour alone.
        assert labels[f"toc-activity-{a.id}-label"].splitlines()[-1].strip() == f"RAG: {a.rag}"
    for m in toc.moderators:
        _box(fig, "moderator", m.id)
        assert present(m.statement)
        assert labels[f"toc-moderator-{m.id}-label"].endswith(f"Status: {m.status}")
    for part, kind in (("mechanisms", "mechanism"), ("outcomes", "outcome"), ("aims", "aim")):
        for item in getattr(toc, part):
            _box(fig, kind, item.id)
            assert present(item.statement), item.id
    assert any(toc.title in t for t in texts)
    for t in fig.findobj(Text):
        if t.get_text().strip():
            assert t.get_fontsize() >= 7


def _results_for(toc: TheoryOfChange) -> pd.DataFrame:
    verdicts = ["improved", "no clear change", "worsened"]
    measured = [o for o in toc.outcomes if o.measure][:3]
    return pd.DataFrame(
        [
            {
                "outcome_id": o.id,
                "headline": f"Headline for {o.id}: +5%",
                "verdict": verdicts[i % 3],
            }
            for i, o in enumerate(measured)
        ]
    )


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_diagram_renders_every_template(path: Path) -> None:
    toc = load_toc(path)
    fig = toc.diagram()
    assert tuple(round(v, 1) for v in fig.get_size_inches()) == DIAGRAM_SIZE
    _check_boxes(toc, fig)
    for o in toc.outcomes:
        assert _box(fig, "outcome", o.id).get_facecolor() == to_rgba(
            VERDICT_COLOURS[NOT_YET_MEASURED]
        )
    assert fig._evalkit_alt == diagram_alt_text(toc)

    results = _results_for(toc)
    fig = toc.diagram(results)
    assert tuple(round(v, 1) for v in fig.get_size_inches()) == DIAGRAM_SIZE
    _check_boxes(toc, fig)
    texts = "\n".join(_texts(fig))
    by_id = results.set_index("outcome_id")
    for o in toc.outcomes:
        verdict = by_id.loc[o.id, "verdict"] if o.id in by_id.index else NOT_YET_MEASURED
        assert _box(fig, "outcome", o.id).get_facecolor() == to_rgba(VERDICT_COLOURS[verdict])
        if o.id in by_id.index:
            assert _norm(by_id.loc[o.id, "headline"]) in texts


def test_demo_diagram_with_results_headlines_colours_and_alt_text() -> None:
    toc = load_toc(template_path("demo"))
    fig = toc.diagram(RESULTS)
    texts = "\n".join(_texts(fig))
    assert "Suspensions −23%, RR 0.77 (0.65 to 0.91)" in texts
    assert _box(fig, "outcome", "suspensions").get_facecolor() == to_rgba("#44BB99")
    assert _box(fig, "outcome", "needs_met").get_facecolor() == to_rgba(VERDICT_COLOURS["worsened"])
    assert _box(fig, "outcome", "belonging").get_facecolor() == to_rgba(
        VERDICT_COLOURS[NOT_YET_MEASURED]
    )
    # The legend names every verdict the diagram shows, and no other.
    legend = fig.axes[0].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    for verdict in ("improved", "no clear change", "worsened", NOT_YET_MEASURED):
        assert f"Outcome: {verdict}" in labels
    assert "Outcome: too few to judge" not in labels
    alt = diagram_alt_text(toc, RESULTS)
    assert fig._evalkit_alt == alt
    assert "Suspensions −23%" in alt and "verdict: improved" in alt
    assert "Pupils feel they belong in school (not yet measured" in alt
    # Palette colours are distinct from one another.
    assert len(set(VERDICT_COLOURS.values())) == len(VERDICT_COLOURS)


def test_diagram_text_fits_inside_boxes() -> None:
    toc = load_toc(template_path("demo"))
    fig = toc.diagram(RESULTS)
    fig.set_dpi(100)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    patches = {
        p.get_gid(): p.get_window_extent(renderer)
        for p in fig.findobj(FancyBboxPatch)
        if p.get_gid()
    }
    checked = 0
    for t in fig.findobj(Text):
        gid = t.get_gid() or ""
        if gid.endswith("-label"):
            box = patches[gid.rsplit("-", 1)[0]]
            ext = t.get_window_extent(renderer)
            assert box.x0 <= ext.x0 and ext.x1 <= box.x1 + 0.5, gid
            assert box.y0 <= ext.y0 + 0.5 and ext.y1 <= box.y1 + 0.5, gid
            checked += 1
    n_boxes = sum(
        len(getattr(toc, p)) for p in ("activities", "moderators", "mechanisms", "outcomes", "aims")
    )
    assert checked == n_boxes


def test_diagram_results_validation() -> None:
    toc = load_toc(template_path("demo"))
    with pytest.raises(DataError, match="'nope' is not an outcome"):
        toc.diagram([{"outcome_id": "nope", "headline": "x", "verdict": "improved"}])
    with pytest.raises(DataError, match="verdict 'better'"):
        toc.diagram([{"outcome_id": "suspensions", "headline": "x", "verdict": "better"}])
    with pytest.raises(DataError, match="missing column"):
        toc.diagram(pd.DataFrame({"outcome_id": ["suspensions"]}))


def test_outcome_table_with_results() -> None:
    toc = load_toc(template_path("demo"))
    table = toc.outcome_table(pd.DataFrame(RESULTS), audience="internal").set_index("ID")
    assert table.loc["suspensions", "Verdict"] == "improved"
    assert table.loc["belonging", "Verdict"] == NOT_YET_MEASURED
    assert table.loc["suspensions", "Better when"] == "lower"


def test_diagram_on_given_axes() -> None:
    toc = load_toc(template_path("dfe_exclusions"))
    fig, ax = plt.subplots(figsize=(11.7, 8.3))
    assert toc.diagram(ax=ax) is fig
    assert any("permanent exclusion rate" in t for t in _texts(fig))


def _big_toc(n: int = 10) -> dict[str, Any]:
    long = "that pupils and staff experience consistently, every day, in every classroom"
    return {
        "title": "Ten boxes per column",
        "aims": [{"id": f"aim{i}", "statement": f"Aim {i} {long}"} for i in range(n)],
        "outcomes": [
            {
                "id": f"out{i}",
                "statement": f"Outcome {i}",
                "measure": "m",
                "direction": "higher_is_better",
                "aims": [f"aim{i}"],
            }
            for i in range(n)
        ],
        "mechanisms": [
            {
                "id": f"mech{i}",
                "statement": f"Mechanism {i} {long}",
                "outcomes": [f"out{i}", f"out{(i + 1) % n}"],
            }
            for i in range(n)
        ],
        "moderators": [
            {"id": f"mod{i}", "statement": f"Moderator {i}", "status": "partly"} for i in range(n)
        ],
        "activities": [
            {
                "id": f"act{i}",
                "what": f"Activity {i}",
                "for_whom": "Pupils",
                "delivered_by": "Staff",
                "when": "Weekly",
                "outputs": ["x"],
                "owner": "Head",
                "due": "2026-01-01",
                "rag": "green",
                "mechanisms": [f"mech{i}"],
            }
            for i in range(n)
        ],
        "assumptions": ["x"],
    }


def test_diagram_of_ten_boxes_per_column_is_fast_and_keeps_its_text_size() -> None:
    """Ten boxes of long text per column are more than 267 x 145 mm holds at 7 pt: the
    diagram keeps its width and text size and grows taller (then prints scaled to the
    landscape page; the templates and the demo fit, see test_every_template_prints_...)."""
    toc = toc_from_dict(_big_toc())
    toc.diagram()  # warm font caches, as a report run would have
    plt.close("all")
    # CPU time of this process: wall-clock would also count other jobs on a shared runner.
    start = time.process_time()
    fig = toc.diagram(_results_for(toc))
    fig.canvas.draw()
    assert time.process_time() - start < 2.0
    width, height = fig.get_size_inches()
    assert round(width, 1) == DIAGRAM_SIZE[0] and height < 2 * DIAGRAM_SIZE[1]
    _check_boxes(toc, fig)


def test_crowded_diagram_grows_taller_instead_of_shrinking_text() -> None:
    data = _big_toc(10)
    for m in data["mechanisms"]:
        m["statement"] = m["statement"] + " " + m["statement"] * 2
    fig = toc_from_dict(data).diagram()
    width, height = fig.get_size_inches()
    assert round(width, 1) == DIAGRAM_SIZE[0] and height > DIAGRAM_SIZE[1]
    for t in fig.findobj(Text):
        if t.get_text().strip():
            assert t.get_fontsize() >= 7


def test_direct_model_construction_still_checks_links() -> None:
    data = copy.deepcopy(_demo_data())
    data["activities"][0]["mechanisms"] = ["nope"]
    with pytest.raises(ValueError, match="'nope'"):
        TheoryOfChange.model_validate(data)


# --------------------------------------------------------------------------- targets

# The demo's recorded results (reports/demo/results.json of a demo run), with the record
# columns the target verdicts need.
RECORDS = pd.DataFrame([
    {"outcome_id": "sdq_difficulties", "headline": "SDQ -2.0 points (-3.1 to -0.9)",
     "verdict": "improved", "estimate": -1.977, "ci_low": -3.100, "ci_high": -0.855,
     "unit": "points (adjusted difference)"},
    {"outcome_id": "suspensions", "headline": "Suspensions −22%, ratio 0.78 (0.71 to 0.87)",
     "verdict": "improved", "estimate": 0.785, "ci_low": 0.707, "ci_high": 0.871,
     "unit": "ratio of observed to expected events after the interruption"},
    {"outcome_id": "referral_attendance", "headline": "Attendance +3.5 points (+2.6 to +4.4)",
     "verdict": "improved", "estimate": 3.52, "ci_low": 2.62, "ci_high": 4.42,
     "unit": "percentage points"},
    {"outcome_id": "needs_met", "headline": "Needs met 55% (50% to 60%)",
     "verdict": "no clear change", "estimate": 0.55, "ci_low": 0.50, "ci_high": 0.60,
     "unit": "proportion of closed referrals"},
])


def _label(fig, ident: str) -> list[str]:
    found = [t for t in fig.findobj(Text) if t.get_gid() == f"toc-outcome-{ident}-label"]
    return [line.strip() for line in found[0].get_text().splitlines()]


def test_diagram_shows_target_verdicts_beside_the_verdicts_and_counts_them_apart() -> None:
    toc = load_toc(template_path("demo"))
    fig = toc.diagram(RECORDS)
    sdq = _label(fig, "sdq_difficulties")
    # the before/after verdict stays, and the target's own verdict is on its own line
    assert "Verdict: improved" in sdq
    # the target and its own verdict on the last line, where the target's marker is
    assert sdq[-1] == "Target (fall ≥ 2 points): not yet clear"
    assert _label(fig, "needs_met")[-1] == "Target (≥ 70%): not met"
    assert _label(fig, "referral_attendance")[-1] == "Target (rise): met"
    assert _label(fig, "suspensions")[-1] == "Target (fall ≥ 20%): not yet clear"
    # the box colour is still the before/after verdict's
    assert _box(fig, "outcome", "needs_met").get_facecolor() == to_rgba(
        VERDICT_COLOURS["no clear change"])
    # an outcome with a target but no result shows the target, unjudged
    assert " ".join(_label(fig, "attendance_targeted")).endswith(
        "Not yet measured Target: rise ≥ 3 percentage points")
    counts = ("Before/after verdicts: 3 improved, 1 no clear change, 0 worsened, 2 not yet "
              "measured. Targets (judged separately): 1 met, 1 not met, 2 not yet clear.")
    texts = _texts(fig)
    assert counts in texts
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for word in ("met", "not met", "not yet clear"):
        assert f"Target: {word}" in labels
    alt = fig._evalkit_alt
    assert "target: a fall of at least 2 points, not yet clear" in alt
    assert "target: at least 70%, not met" in alt and alt.endswith(counts)


def test_diagram_with_targets_fits_its_boxes_and_page() -> None:
    toc = load_toc(template_path("demo"))
    fig = toc.diagram(RECORDS)
    assert tuple(round(v, 1) for v in fig.get_size_inches()) == DIAGRAM_SIZE
    fig.set_dpi(100)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    patches = {p.get_gid(): p.get_window_extent(renderer)
               for p in fig.findobj(FancyBboxPatch) if p.get_gid()}
    legend = fig.axes[0].get_legend().get_window_extent(renderer)
    for t in fig.findobj(Text):
        gid = t.get_gid() or ""
        if gid.endswith("-label"):
            box = patches[gid.rsplit("-", 1)[0]]
            ext = t.get_window_extent(renderer)
            assert box.x0 <= ext.x0 and ext.x1 <= box.x1 + 0.5, gid
            assert box.y0 <= ext.y0 + 0.5 and ext.y1 <= box.y1 + 0.5, gid
            assert box.y0 >= legend.y1 - 0.5, gid  # the two-row legend overlaps no box
    counts = next(t for t in fig.findobj(Text) if t.get_text().startswith("Before/after"))
    headings = [t for t in fig.findobj(Text) if t.get_text().startswith("Outcomes\n")]
    assert counts.get_window_extent(renderer).y0 > headings[0].get_window_extent(renderer).y1


def test_without_record_columns_targets_are_shown_but_not_judged() -> None:
    toc = load_toc(template_path("demo"))
    fig = toc.diagram(RESULTS)
    assert _label(fig, "sdq_difficulties")[-1] == "Target: fall ≥ 2 points"
    assert not any("Target (" in t for t in _texts(fig))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any(label.startswith("Target") for label in labels)
    table = toc.outcome_table(pd.DataFrame(RESULTS), audience="internal").set_index("ID")
    assert table.loc["sdq_difficulties", "Target verdict"] == "not judged (no estimate given)"


def test_outcome_table_has_the_target_and_its_own_verdict() -> None:
    toc = load_toc(template_path("demo"))
    plain = toc.outcome_table(audience="internal").set_index("ID")
    assert plain.loc["needs_met", "Target"] == (
        "At least 70% of closed referrals close as 'needs met'")
    assert plain.loc["belonging", "Target"] == ""
    table = toc.outcome_table(RECORDS, audience="internal").set_index("ID")
    assert table.loc["needs_met", "Verdict"] == "no clear change"
    assert table.loc["needs_met", "Target verdict"] == "not met"
    assert table.loc["referral_attendance", "Target verdict"] == "met"
    assert table.loc["attendance_targeted", "Target verdict"] == NOT_YET_MEASURED
    assert table.loc["belonging", "Target verdict"] == "no target"


def test_a_record_the_target_cannot_be_compared_with_is_an_error() -> None:
    toc = load_toc(template_path("demo"))
    bad = RECORDS.copy()
    bad.loc[bad["outcome_id"] == "suspensions", "unit"] = "points (mean change)"
    with pytest.raises(DataError, match="outcome 'suspensions'.*cannot be compared"):
        toc.diagram(bad)


def test_free_text_target_in_a_file_names_the_file_key_and_form(tmp_path: Path) -> None:
    data = _demo_data()
    data["outcomes"][4]["target"] = "At least 70% of closed referrals close as 'needs met'"
    message = _error(tmp_path, data)
    assert "outcome 5 (id 'needs_met'), key 'target': a target is structured data" in message
    assert "target: {value: 70, unit: percent, comparison: at_least, text:" in message


# --------------------------------------------------------------------------- printed size

#: How evalkit.css prints a wide figure: the width of A4 landscape's printable area
#: (297 - 2 x 15 mm) and at most 150 mm high, whichever binds.
PRINT_WIDTH_PT, PRINT_MAX_HEIGHT_PT = 267 / 25.4 * 72, 150 / 25.4 * 72
_SVG = "{http://www.w3.org/2000/svg}"


def _printed_svg(fig) -> tuple[Any, float]:
    """The diagram as the report writes it (an SVG image) and the scale it prints at."""
    import base64
    import xml.etree.ElementTree as ET

    from evaluation import report

    out = report.figure(fig, alt=fig._evalkit_alt, wide=True).data
    found = re.findall(r"<img class='evalkit-svg' src='data:image/svg\+xml;base64,([^']+)'", out)
    assert len(found) == 1 and "data:image/png" not in out, "the diagram is not an SVG image"
    root = ET.fromstring(base64.b64decode(found[0]))
    width, height = (float(root.get(k).removesuffix("pt")) for k in ("width", "height"))
    return root, min(PRINT_WIDTH_PT / width, PRINT_MAX_HEIGHT_PT / height)


def _font_sizes(root) -> list[tuple[float, str]]:
    found = []
    for t in root.iter(f"{_SVG}text"):
        size = re.search(r"font-size: ([\d.]+)px", t.get("style", ""))
        assert size, t.attrib  # every text element states its size (1 px = 1 pt here)
        found.append((float(size.group(1)), "".join(t.itertext())))
    return found


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_every_template_prints_as_vector_text_of_at_least_7_pt(path: Path) -> None:
    """Each template's diagram, and the demo's with results and target verdicts, is an
    SVG image whose text is text (not paths), at least 7 pt when printed on the A4
    landscape page, and whose labels are statements and measure names, never ids."""
    toc = load_toc(path)
    cases = [None, _results_for(toc)] + ([RECORDS] if path.stem == "demo" else [])
    ids = {i for i in toc.ids() if "_" in i} | {o.measure for o in toc.outcomes
                                                if o.measure and "_" in o.measure}
    for results in cases:
        root, scale = _printed_svg(toc.diagram(results))
        sizes = _font_sizes(root)
        assert any(_norm(toc.outcomes[0].statement).startswith(_norm(t)) for _, t in sizes)
        smallest = min(size for size, _ in sizes) * scale
        assert smallest >= 7 - 1e-6, f"{path.stem}: {smallest:.2f} pt"
        # (the test's own headlines name their outcome ids: not the diagram's doing)
        shown = re.sub(r"Headline for \S+", "", " ".join(t for _, t in sizes))
        assert not [i for i in ids if i in shown], [i for i in ids if i in shown]


def test_demo_measures_are_named_as_readers_know_them() -> None:
    toc = load_toc(template_path("demo"))
    fig = toc.diagram(measure_labels={"needs_met": "closed referrals with needs met"})
    label = " ".join(_label(fig, "sdq_difficulties"))
    assert "Measure: teacher-rated SDQ total difficulties (lower is better)" in label
    assert "Measure: closed referrals with needs met (higher is better)" in " ".join(
        _label(fig, "needs_met"))
    assert "sdq_teacher_total" not in "\n".join(_texts(fig))


def test_before_the_change_the_diagram_printed_below_7_pt() -> None:
    """The check can fail: an A4-sized diagram (11.7 x 8.3 in, as drawn before) scaled to
    the landscape page prints its 7-8 pt text at about 5-6 pt."""
    toc = load_toc(template_path("demo"))
    fig, ax = plt.subplots(figsize=(11.7, 8.3))
    ax.set_position((0, 0, 1, 1))
    root, scale = _printed_svg(toc.diagram(ax=ax))
    assert min(size for size, _ in _font_sizes(root)) * scale < 7


# --------------------------------------------------------------------------- board tables


def _overview_cells(toc: TheoryOfChange, audience: str,
                    labels: dict[str, str]) -> tuple[list[str], str]:
    """The overview's theory-of-change tables: their headings and cells, each cell also
    split into its linked parts (a Measure cell is a measure's label, which may be the
    same word as an outcome's id, e.g. 'suspensions', so it is left out), and the text
    of the HTML the notebook shows (``report.table``)."""
    import html as html_lib

    from evaluation import report

    tables = toc.tables(audience=audience, measure_labels=labels)
    cells = [str(c) for frame in tables.values() for c in frame.columns]
    cells += [str(v) for frame in tables.values()
              for v in frame.drop(columns="Measure", errors="ignore").to_numpy().ravel()]
    cells += [part.strip() for c in cells for part in re.split(r"[;,]", c)]
    page = "\n".join(report.table(frame, caption=part).data for part, frame in tables.items())
    return cells, html_lib.unescape(re.sub(r"<[^>]+>", " ", page))


def _demo_ids(toc: TheoryOfChange) -> set[str]:
    return {i for parts in (toc.outcomes, toc.activities, toc.mechanisms, toc.aims)
            for i in (p.id for p in parts)}


def test_board_overview_tables_show_statements_never_ids() -> None:
    """The demo's overview tables for a board: no ID column, and no outcome, activity,
    mechanism or aim id as a cell, a linked part of a cell, or (for the snake_case ids)
    anywhere in the text; links are the linked statements."""
    from evaluation.params import load_params

    toc = load_toc(template_path("demo"))
    params = load_params(Path(__file__).resolve().parents[1] / "params" / "demo.yaml",
                         check_files=False)
    assert params.report.audience == "board"
    labels = {i.id: i.statement for i in params.analyses.survey.definition.items}
    ids = _demo_ids(toc)
    board, text = _overview_cells(toc, "board", labels)
    assert "ID" not in board
    assert not ids & set(board)
    assert not [i for i in ids if "_" in i and i in text]
    # the detector finds them where they are: the internal tables keep the ids
    internal, internal_text = _overview_cells(toc, "internal", labels)
    assert "ID" in internal and ids <= set(internal)
    assert all(i in internal_text for i in ids)
    # links written as the linked statements (shortened), one per '; '
    tables = toc.tables(measure_labels=labels)
    mechs = tables["mechanisms"].set_index("Mechanism")
    early = next(m for m in toc.mechanisms if m.id == "early_help")
    assert mechs.loc[early.statement, "Outcomes"] == "; ".join(
        toc.outcome(o).statement for o in early.outcomes)
    assert mechs.loc[next(m.statement for m in toc.mechanisms if m.id == "trusted_adults"),
                     "Measure"] == "There is an adult at school I can talk to"
    training = tables["activities"].set_index("Activity").loc[
        "Whole-school trauma-informed relational-practice training", "Mechanisms"]
    assert training.startswith("Staff understand behaviour as communication")
    assert all(len(link) <= 60 for link in training.split("; "))
    outcomes = tables["outcomes"].set_index("Outcome")
    row = outcomes.loc["Targeted pupils' attendance improves"]
    assert row["Measure"] == "attendance" and row["Analysis"] == "baseline and follow-up"
    assert row["Serves aims"].count("; ") == 1


def test_board_words_for_analyses_match_the_summary() -> None:
    from evaluation.sections.summary import ANALYSIS_LABELS
    from evaluation.toc import _ANALYSIS_WORDS, ANALYSES

    assert _ANALYSIS_WORDS == ANALYSIS_LABELS and set(_ANALYSIS_WORDS) == set(ANALYSES)


def test_an_unknown_audience_is_refused() -> None:
    toc = load_toc(template_path("demo"))
    with pytest.raises(ValueError, match="audience must be 'board' or 'internal'"):
        toc.tables(audience="researcher")
