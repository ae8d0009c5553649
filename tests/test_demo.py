"""Tests of the synthetic demo generator and of the committed demo files.

The committed files in data/raw/demo must equal a fresh regeneration, carry the headers in
COLUMN_MAPPING, and let simple analyses recover the true effects in TRUE_EFFECTS.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import holidays
import numpy as np
import openpyxl
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from evaluation import demo
from evaluation.tracking import MENU

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "raw" / "demo"
TE = demo.TRUE_EFFECTS

# Required kit columns per table (docs/tables.md).
REQUIRED = {
    "pupils": {"pupil_id", "school_id"},
    "scores": {"pupil_id", "measure", "timepoint", "score"},
    "exclusions": {"school_id", "period_start", "roll", "suspensions"},
    "referrals": {"referral_id", "pupil_id", "referral_date"},
    "interventions": {"intervention_id", "referral_id", "intervention", "start_date"},
    "reviews": {"review_id", "referral_id", "review_date"},
    "attendance": {"pupil_id", "week_start", "possible_sessions", "attended_sessions"},
    "suspensions": {"pupil_id", "date"},
    "survey_responses": {"response_id", "wave"},  # item and response: SURVEY_WIDE
    "audit_ratings": {"school_id", "area", "timepoint", "rating"},
}


def _csv(name: str, folder: Path = DEMO_DIR) -> pd.DataFrame:
    # Read as raw text: the comparison is of what the school export contains.
    return pd.read_csv(folder / demo.FILE_NAMES[name], dtype=str, keep_default_na=False)


def _uk_date(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.replace("", None), format="%d/%m/%Y")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One regeneration with the default seed (generation takes a few seconds)."""
    return demo.generate(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def pupils() -> pd.DataFrame:
    """The committed pupils sheet, read once (openpyxl is slow on ~17k rows)."""
    wb = openpyxl.load_workbook(DEMO_DIR / "pupils.xlsx", read_only=True)
    rows = list(wb["Pupils"].iter_rows(values_only=True))
    wb.close()
    return pd.DataFrame(rows[1:], columns=rows[0])


def test_regeneration_is_byte_identical_to_committed(regenerated: dict[str, Path]) -> None:
    # The committed files came from an earlier, separate run: equal bytes prove that the
    # same seed gives the same files (xlsx included: no timestamps anywhere).
    for name, path in regenerated.items():
        assert path.read_bytes() == (DEMO_DIR / path.name).read_bytes(), name


def test_regeneration_read_back_matches_committed(regenerated: dict[str, Path]) -> None:
    for name, path in regenerated.items():
        if path.suffix == ".csv":
            pd.testing.assert_frame_equal(_csv(name, path.parent), _csv(name))
        else:
            with zipfile.ZipFile(path) as new, zipfile.ZipFile(DEMO_DIR / path.name) as old:
                assert new.namelist() == old.namelist()
                for part in new.namelist():
                    assert new.read(part) == old.read(part), part


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    paths = demo.generate(tmp_path, seed=1)
    assert paths["scores"].read_bytes() != (DEMO_DIR / "scores.csv").read_bytes()


def test_headers_match_column_mapping(pupils: pd.DataFrame) -> None:
    assert set(demo.COLUMN_MAPPING) == set(demo.FILE_NAMES) == set(REQUIRED)
    for name, mapping in demo.COLUMN_MAPPING.items():
        header = list(pupils.columns) if name == "pupils" else list(_csv(name).columns)
        missing = set(mapping) - set(header)
        assert not missing, f"{name}: {missing}"
        kit = {mapping.get(h, h) for h in header}
        assert REQUIRED[name] <= kit, name
    assert demo.COLUMN_MAPPING["pupils"]["UPN"] == "pupil_id"
    assert demo.COLUMN_MAPPING["pupils"]["Forename"] == "first_name"
    assert demo.COLUMN_MAPPING["pupils"]["Surname"] == "surname"


def test_files_are_marked_synthetic_and_small() -> None:
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC DATA" in readme and "no real pupil" in readme
    names = _csv("exclusions")["School Name"].unique()
    assert len(names) == 33 and all(n.startswith("Synthetic ") for n in names)
    total = sum(p.stat().st_size for p in DEMO_DIR.iterdir())
    assert total < 5_000_000


def test_pupils_population(pupils: pd.DataFrame) -> None:
    assert pupils["UPN"].is_unique
    assert pupils["UPN"].str.fullmatch(r"Z\d{12}").all()
    assert 14_000 <= len(pupils) <= 20_000
    schools = pupils.groupby("School ID")["Programme Group"].first().value_counts()
    assert schools.to_dict() == {"programme": 21, "comparison": 12}
    sen = pupils["SEN Status"].value_counts(normalize=True)
    assert abs(sen["SEN support"] - 0.13) < 0.015 and abs(sen["EHC plan"] - 0.04) < 0.01
    assert abs((pupils["FSM Eligible"] == "Y").mean() - 0.24) < 0.02
    assert abs((pupils["EAL"] == "Y").mean() - 0.20) < 0.04
    assert set(pupils["Gender"]) == {"F", "M"}
    assert pupils["Year Group"].between(0, 11).all()


def test_csv_formats() -> None:
    date_re = re.compile(r"\d{2}/\d{2}/\d{4}")
    dates = {
        "scores": ["Date Assessed"],
        "exclusions": ["Term start"],
        "referrals": ["Date of Referral", "Date of First Response", "Date Closed"],
        "interventions": ["Start Date", "End Date"],
        "reviews": ["Review Date"],
        "attendance": ["Week Commencing"],
        "suspensions": ["Start Date"],
    }
    for name, cols in dates.items():
        frame = _csv(name)
        for col in cols:
            filled = frame[col][frame[col] != ""]
            assert filled.str.fullmatch(date_re).all(), (name, col)
    rev = _csv("reviews")
    for col in ("Attendance Improved", "Ready to Learn", "On Track"):
        assert set(rev[col]) == {"Y", "N"}
    iv = _csv("interventions")
    assert set(iv["Intervention Type"]) <= set(MENU)
    planned = iv["Sessions Offered"].astype(int)
    assert planned.between(6, 12).all()
    assert (iv["Sessions Attended"].astype(int) <= planned).all()
    att = _csv("attendance")
    possible = att["Sessions Possible"].astype(int)
    assert (
        possible.between(1, 10).all() and (att["Sessions Attended"].astype(int) <= possible).all()
    )
    assert (_uk_date(att["Week Commencing"]).dt.day_of_week == 0).all()
    sdq = _csv("scores").query("Measure == 'sdq_teacher_total'")["Score"].astype(float)
    assert sdq.between(0, 40).all() and (sdq == sdq.round()).all()


def test_exclusions_programme_level_change() -> None:
    ex = _csv("exclusions")
    assert len(ex) == 33 * 21
    ex["start"] = _uk_date(ex["Term start"])
    for col in ("Number on roll", "Suspensions"):
        ex[col] = ex[col].astype(int)
    ex = ex.sort_values(["School ID", "start"])
    ex["t"] = ex.groupby("School ID").cumcount() / 3
    ex["post"] = (
        (ex["start"] >= demo.PROGRAMME_START) & (ex["Programme Group"] == "programme")
    ).astype(int)
    fit = smf.glm(
        "Suspensions ~ C(Q('School ID')) + C(Term) + t + post",
        data=ex,
        family=sm.families.Poisson(),
        offset=np.log(ex["Number on roll"]),
    ).fit(scale="X2")  # Pearson scale: the counts are over-dispersed by design
    low, high = np.exp(fit.conf_int().loc["post"])
    truth = TE["exclusions"]["programme_level_change_rate_ratio"]
    assert low < truth < high
    assert abs(np.exp(fit.params["t"]) - 1.03) < 0.02


def test_scores_changes_and_ancova(pupils: pd.DataFrame) -> None:
    sc = _csv("scores")
    sc["Score"] = sc["Score"].astype(float)
    wide = sc.pivot_table(index=["UPN", "Measure"], columns="Timepoint", values="Score")
    wide = wide.reset_index().merge(
        pupils[["UPN", "School ID", "Programme Group"]], on="UPN", how="left"
    )
    assert len(wide["UPN"].unique()) == 33 * 8
    missing_follow = wide["follow_up"].isna().mean()
    assert 0.04 < missing_follow < 0.12
    assert wide["baseline"].isna().any()  # a few follow-up only
    for measure in ("sdq_teacher_total", "attendance_pct"):
        truth = TE["scores"][measure]
        both = wide[wide["Measure"] == measure].dropna(subset=["baseline", "follow_up"])
        change = (both["follow_up"] - both["baseline"]).groupby(both["Programme Group"]).mean()
        for group in ("programme", "comparison"):
            assert abs(change[group] - truth["mean_change"][group]) < 1.5, (measure, group)
        both = both.assign(prog=(both["Programme Group"] == "programme").astype(int))
        fit = smf.ols("follow_up ~ baseline + prog", data=both).fit(
            cov_type="cluster", cov_kwds={"groups": both["School ID"]}
        )
        low, high = fit.conf_int().loc["prog"]
        assert low < truth["adjusted_difference"] < high, measure


def test_attendance_step_after_first_intervention() -> None:
    att = _csv("attendance")
    iv = _csv("interventions")
    ref = _csv("referrals")
    iv["start"] = _uk_date(iv["Start Date"])
    first = iv.sort_values("start").groupby("Referral ID")["start"].first()
    start = ref.set_index("Referral ID")["UPN"].to_frame().join(first, how="inner")
    start = start.set_index("UPN")["start"]
    att["week"] = _uk_date(att["Week Commencing"])
    first_week = att["UPN"].map(start) - pd.to_timedelta(
        att["UPN"].map(start).dt.day_of_week, unit="D"
    )
    att["post"] = att["week"] >= first_week
    sums = (
        att.assign(a=att["Sessions Attended"].astype(int), p=att["Sessions Possible"].astype(int))
        .groupby(["UPN", "post"])[["a", "p"]]
        .sum()
    )
    rate = (sums["a"] / sums["p"]).unstack()
    assert abs(rate[False].mean() - 0.85) < 0.02
    diff = (rate[True] - rate[False]).dropna() * 100
    assert abs(diff.mean() - TE["attendance"]["effect_after_first_start_points"]) < 1.0
    # 20 weeks before to 30 after (fewer only where the extract date cuts the window)
    assert att.groupby("UPN").size().max() == 50


def test_referrals(pupils: pd.DataFrame) -> None:
    ref = _csv("referrals")
    assert len(ref) == TE["referrals"]["n_target"] and ref["Referral ID"].is_unique
    prog = pupils[pupils["Programme Group"] == "programme"]
    assert set(ref["UPN"]) <= set(prog["UPN"])
    bcb = (prog["Ethnicity (Minor)"] == "Black Caribbean") & (prog["Gender"] == "M")
    referred = prog["UPN"].isin(ref["UPN"])
    rr = referred[bcb].mean() / referred[~bcb].mean()
    assert abs(rr - TE["referrals"]["risk_ratio_black_caribbean_boys_vs_all_others"]) < 0.5
    bank = np.array(
        sorted(holidays.country_holidays("GB", subdiv="ENG", years=range(2021, 2025))),
        dtype="datetime64[D]",
    )
    answered = ref[ref["Date of First Response"] != ""]
    days = np.busday_count(
        _uk_date(answered["Date of Referral"]).to_numpy().astype("datetime64[D]"),
        _uk_date(answered["Date of First Response"]).to_numpy().astype("datetime64[D]"),
        holidays=bank,
    )
    assert (days >= 0).all()
    assert abs((days <= 2).mean() - 0.8) < 0.07
    assert 0.05 < (ref["Lead Professional"] == "").mean() < 0.15
    assert 0.08 < (ref["Date Closed"] == "").mean() < 0.22
    closed = ref[ref["Date Closed"] != ""]
    assert abs((closed["Closure Outcome"] == "needs met").mean() - 0.65) < 0.08


def test_reviews_differ_by_intervention() -> None:
    iv = _csv("interventions")
    iv["start"] = _uk_date(iv["Start Date"])
    first = iv.sort_values("start").groupby("Referral ID")["Intervention Type"].first()
    rev = _csv("reviews")
    rev["type"] = rev["Referral ID"].map(first)
    assert rev["type"].notna().all()
    yes = rev[["Attendance Improved", "Ready to Learn", "On Track"]].eq("Y")
    probs = TE["reviews"]["probabilities"]
    expected = rev["type"].map(lambda t: probs[t]["attendance_improved"])
    assert abs(yes["Attendance Improved"].mean() - expected.mean()) < 0.06
    by_type = yes.groupby(rev["type"]).mean()
    # School-refusal support has the highest true P(attendance improved).
    assert by_type["Attendance Improved"].idxmax() == "school-refusal support"


def test_suspension_hazard_lower_after_some_interventions() -> None:
    su = _csv("suspensions")
    assert set(su["Category"]) == {"suspension", "permanent"}
    iv = _csv("interventions")
    ref = _csv("referrals")
    iv["start"] = _uk_date(iv["Start Date"])
    first = iv.sort_values("start").groupby("Referral ID")[["start", "Intervention Type"]].first()
    first = first.join(ref.set_index("Referral ID")["UPN"]).set_index("UPN")
    days = demo.school_days()
    window = days[(days >= demo.PROGRAMME_START) & (days <= demo.EXTRACT_DATE)]
    first["pre_days"] = window.searchsorted(first["start"].to_numpy())
    first["post_days"] = len(window) - first["pre_days"]
    ev = su[su["UPN"].isin(first.index)].copy()
    ev["post"] = _uk_date(ev["Start Date"]) >= ev["UPN"].map(first["start"])
    counts = ev.groupby(["UPN", "post"]).size().unstack(fill_value=0)
    first = first.join(counts.rename(columns={False: "pre", True: "post"})).fillna(
        {"pre": 0, "post": 0}
    )
    hr_true = TE["suspensions"]["hazard_ratio_after_first_intervention"]
    first["lower"] = first["Intervention Type"].map(hr_true) < 1
    sums = first.groupby("lower")[["pre", "post", "pre_days", "post_days"]].sum()
    hr = (sums["post"] / sums["post_days"]) / (sums["pre"] / sums["pre_days"])
    assert 0.55 < hr[True] < 0.85
    assert 0.8 < hr[False] < 1.3


# ------------------------------------------------------------------ survey and audit


def _survey_long() -> pd.DataFrame:
    """pupil_survey.csv as the kit's survey_responses table (what intake makes of it)."""
    raw = _csv("survey_responses")
    fixed = list(demo.COLUMN_MAPPING["survey_responses"])
    long = raw.melt(id_vars=fixed, var_name="statement", value_name="response")
    long["item"] = long["statement"].map({k: v["item"] for k, v in demo.SURVEY_WIDE.items()})
    long["response"] = long["response"].replace("", None)
    return long.rename(columns=demo.COLUMN_MAPPING["survey_responses"])


def _audit_long() -> pd.DataFrame:
    # the file names areas as the audit does ("Leadership"): the analysis matches names
    return _csv("audit_ratings").rename(columns=demo.COLUMN_MAPPING["audit_ratings"])


def test_survey_file_format() -> None:
    raw = _csv("survey_responses")
    assert raw["Response ID"].is_unique
    assert set(raw["Survey Round"]) == set(TE["survey"]["waves"].values())
    assert set(raw["School ID"]) == {f"SCH{i:02d}" for i in range(1, 22)}
    statements = [c for c in raw.columns if c in demo.SURVEY_WIDE]
    assert len(statements) == len(demo.SURVEY["items"]) == 13
    answers = set(np.unique(raw[statements].to_numpy()))
    assert answers == set(TE["survey"]["levels"]) | {""}
    blank = (raw[statements] == "").to_numpy().mean()
    assert abs(blank - TE["survey"]["item_missing"]) < 0.01
    eligible = demo.survey_eligible()
    assert len(eligible) == 21
    rates = raw.groupby("Survey Round").size() / eligible.sum()
    for wave, rate in TE["survey"]["response_rate"].items():
        assert abs(rates[wave] - rate) < 0.03, wave


def test_survey_truth_matches_a_simulation_of_the_model() -> None:
    # survey_truth integrates the model numerically; a large direct simulation checks it
    rng = np.random.default_rng(11)
    cfg = TE["survey"]
    items = [it for it in demo._SURVEY_ITEMS if it[2] == "belonging"]
    truth = demo.survey_truth("belonging")
    scores = {}
    for wave, mu in cfg["latent_mean"]["belonging"].items():
        theta = rng.normal(mu, 1, 200_000)
        cols = []
        for item, _, _, reverse, loading, cuts in items:
            sign = -1 if reverse else 1
            latent = sign * loading * theta + np.sqrt(1 - loading**2) * rng.normal(size=theta.size)
            level = np.searchsorted(cuts, latent)
            assert abs(100 * (level >= 2).mean() - truth["waves"][wave]["pct_agree"][item]) < 0.5
            cols.append(4 - level if reverse else level + 1)
        x = np.column_stack(cols).astype(float)
        scores[wave] = x.mean(axis=1)
        assert abs(scores[wave].mean() - truth["waves"][wave]["mean"]) < 0.005
        assert abs(scores[wave].std() - truth["waves"][wave]["sd"]) < 0.005
        cov = np.cov(x, rowvar=False)
        alpha = 5 / 4 * (1 - np.trace(cov) / cov.sum())
        assert abs(alpha - truth["waves"][wave]["alpha"]) < 0.005
    before, after = (scores[w] for w in cfg["waves"].values())
    ps = stats.mannwhitneyu(after[:20_000], before[:20_000]).statistic / 20_000**2
    assert abs(ps - truth["superiority"]) < 0.01


def test_survey_analyses_recover_the_true_shift() -> None:
    from evaluation.surveys import Survey, compare_waves, reliability

    survey = Survey.model_validate(demo.SURVEY)
    data = _survey_long()
    before, after = TE["survey"]["waves"]["before"], TE["survey"]["waves"]["after"]
    invited = int(demo.survey_eligible().sum())
    eligible = {before: invited, after: invited}
    for sub in ("belonging", "learning", "coping"):
        truth = demo.survey_truth(sub)
        res = compare_waves(data, survey, sub, before=before, after=after, eligible=eligible)
        if sub == "learning":
            # no true shift, but in the committed files the Summer 2022 sample happens to
            # score 0.05 lower (95% CI -0.10 to -0.01): a chance false alarm, documented in
            # the README (one 95% interval in twenty misses); the 99% interval covers 0
            assert res.ci_high < 0 and res.headline()["verdict"] == "worsened"
            wide = compare_waves(data, survey, sub, before=before, after=after,
                                 confidence=0.99)
            assert wide.ci_low < truth["difference"] == 0 < wide.ci_high
            continue
        assert res.ci_low < truth["difference"] < res.ci_high, sub
        assert res.g_ci_low < truth["g"] < res.g_ci_high, sub
        assert res.superiority_ci_low < truth["superiority"] < res.superiority_ci_high, sub
        for wave in (before, after):
            rel = reliability(data, survey, sub, wave=wave)
            assert rel.alpha_ci_low < truth["waves"][wave]["alpha"] < rel.alpha_ci_high
        if sub == "belonging":
            assert res.headline()["verdict"] == "improved"
            for item in truth["waves"][before]["pct_agree"]:
                change = (truth["waves"][after]["pct_agree"][item]
                          - truth["waves"][before]["pct_agree"][item])
                it = compare_waves(data, survey, item, before=before, after=after)
                assert it.ci_low_pp < change < it.ci_high_pp, item
    assert abs(res.rate_before - TE["survey"]["response_rate"][before]) < 0.03


def test_audit_analyses_recover_the_true_movement() -> None:
    from evaluation.audits import ALL_AREAS, Audit, audit_change, chosen_vs_others

    audit = Audit.model_validate(demo.AUDIT)
    data = _audit_long()
    assert len(data) == 21 * 5 * 2
    assert set(data["area"]) == {a["label"] for a in demo.AUDIT["areas"]}
    chosen = data[data["timepoint"] == "baseline"].groupby("school_id")["chosen"]
    assert (chosen.apply(lambda s: (s == "Y").sum()) == 2).all()
    truth = demo.audit_truth()
    res = audit_change(data, audit)
    for area, t in truth["areas"].items():
        row = res.row(area)
        assert row["mean_change_ci_low"] < t["mean_change"] < row["mean_change_ci_high"], area
        assert row["up_share_ci_low"] < t["up_share"] < row["up_share_ci_high"], area
    overall = res.row(ALL_AREAS)
    assert overall["mean_change_ci_low"] < truth["mean_change"] < overall["mean_change_ci_high"]
    assert res.headline()["verdict"] == "improved"
    ch = chosen_vs_others(data, audit)
    assert ch.ci_low < truth["chosen_minus_other"] < ch.ci_high


def test_readme_documents_the_survey_and_audit_truth() -> None:
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    assert "pupil_survey.csv" in readme and "school_audit.csv" in readme
    bel = demo.survey_truth("belonging")
    for figure in (f"{bel['difference']:.3f}", f"{bel['g']:.3f}",
                   f"{bel['superiority']:.3f}"):
        assert figure in readme, figure
    audit = demo.audit_truth()
    assert f"{audit['mean_change']:.3f}" in readme
    assert f"{audit['chosen_minus_other']:.3f}" in readme
