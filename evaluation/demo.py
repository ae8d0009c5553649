"""Seeded generator of a SYNTHETIC demo project (no real pupil appears anywhere).

``python -m evaluation.demo [OUT_DIR]`` writes the demo files (default ``data/raw/demo``).
The same seed always gives byte-identical files, so the committed files can be checked
against a fresh regeneration.

Design
------
A made-up local authority has 33 schools (``SCH01``-``SCH33``, named "Synthetic Primary 01",
"Synthetic Secondary 15" and so on): 21 *programme* schools (``SCH01``-``SCH21``) that
joined a support programme on 1 September 2021 and 12 *comparison* schools
(``SCH22``-``SCH33``). Two thirds are primaries (roll ~200-400, year groups R-6) and one
third secondaries (roll ~650-1,100, years 7-11).

Files (every file uses school-style headers; :data:`COLUMN_MAPPING` maps them to the kit's
names in ``docs/tables.md``):

* ``pupils.xlsx`` (sheet "Pupils"): the whole population of the 33 schools as at the
  autumn 2021 census, with fake UPNs ("Z" + 12 digits), made-up names and dates of birth
  (identifying columns, dropped at intake), SEN, FSM, EAL and ethnicity at roughly national
  rates. Pupils are treated as on roll for the whole of 2021/22-2023/24 (no leavers).
* ``scores.csv``: a targeted group of 8 pupils per school (both arms), teacher SDQ total
  difficulties and attendance % at baseline (autumn 2021) and follow-up (summer 2022).
* ``exclusions.csv``: termly suspensions and permanent exclusions for every school,
  2017/18-2023/24 (21 terms), from a gamma-Poisson model with a secular trend, seasonality,
  school random effects and a level change of 0.75 in programme schools from autumn 2021.
* ``referrals.csv``, ``interventions.csv``, ``reviews.csv``: ~300 referrals from programme
  schools (September 2021 - July 2024), their interventions and reviews. Data are
  extracted on 19 July 2024 (:data:`EXTRACT_DATE`): later events are not yet known, so
  some referrals await a response, some interventions are ongoing and ~15% of referrals
  are open.
* ``attendance.csv``: weekly sessions for each pupil with an intervention, from 20 school
  weeks before to 30 school weeks after the first intervention start (+4 points after).
* ``suspensions.csv``: pupil-level suspension events, 1 September 2021 - 19 July 2024, for
  every pupil in the programme schools (referred pupils at a much higher rate, lower after
  some interventions). These are a separate draw from the school-level counts in
  ``exclusions.csv`` and agree with them only loosely.

Every true effect is listed in :data:`TRUE_EFFECTS`, which tests of each analysis use to
check that the analysis recovers it. The data are deliberately clean where that keeps the
truth unambiguous: no pandemic dip or closures (2020/21 looks like any other year), no
confounding of the pupil-level effects, and missing data are missing completely at random.
CSV files write booleans as ``Y``/``N`` and dates as UK ``dd/mm/yyyy`` like school exports.
The xlsx is written directly as minimal SpreadsheetML (text, integers, and real date cells
formatted dd/mm/yyyy) with fixed timestamps, which keeps it reproducible and fast to write.
"""

from __future__ import annotations

import datetime as dt
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import holidays
import numpy as np
import pandas as pd
from dateutil.easter import easter

DEFAULT_SEED = 20240901
DEFAULT_OUT_DIR = Path("data/raw/demo")
PROGRAMME_START = pd.Timestamp("2021-09-01")
EXTRACT_DATE = pd.Timestamp("2024-07-19")
# Fixed xlsx zip-entry timestamps: zipfile would stamp "now" and break determinism.
_FIXED_TIME = dt.datetime(2024, 7, 19, 12, 0, 0)

N_PROGRAMME_SCHOOLS = 21
N_COMPARISON_SCHOOLS = 12


TRUE_EFFECTS: dict = {
    "synthetic": True,
    "seed": DEFAULT_SEED,
    "programme_start": "2021-09-01",
    "extract_date": "2024-07-19",
    "schools": {
        "programme": 21,
        "comparison": 12,
        "primary_roll_range": (200, 400),
        "secondary_roll_range": (650, 1100),
    },
    "pupils": {
        "sen_support_rate": 0.13,
        "ehc_plan_rate": 0.04,
        "sen_boys_to_girls_ratio": 1.6,
        "fsm_rate": 0.24,
        "eal_rate_approx": 0.20,  # EAL depends on ethnicity_minor; this is the overall rate
        "ethnicity": "DfE major/minor groups at roughly national proportions (England)",
    },
    "scores": {
        "targeted_pupils_per_school": 8,
        "baseline": "autumn 2021 (October)",
        "follow_up": "summer 2022 (June/July)",
        "missing_follow_up": 0.08,  # MCAR, whole pupil
        "follow_up_only": 0.03,  # MCAR, whole pupil (joined the group late)
        # follow_up = mean + slope * (baseline - mean) + change[group] + school + residual;
        # baseline means are equal in both arms, so mean change and ANCOVA agree.
        "sdq_teacher_total": {
            "baseline_mean": 17.0,
            "baseline_sd": 5.0,
            "baseline_slope": 0.6,
            "school_sd": 1.0,
            "residual_sd": 4.0,
            "mean_change": {"programme": -3.5, "comparison": -1.0},
            "adjusted_difference": -2.5,
            "expected_se_adjusted_difference": 0.65,  # school-clustered, roughly
            "expected_se_mean_change": {"programme": 0.45, "comparison": 0.6},
            "note": "integers rounded and clipped to 0-40",
        },
        "attendance_pct": {
            "baseline_mean": 85.0,
            "baseline_sd": 7.0,
            "baseline_slope": 0.6,
            "school_sd": 1.0,
            "residual_sd": 4.0,
            "mean_change": {"programme": 4.0, "comparison": 1.0},
            "adjusted_difference": 3.0,
            "expected_se_adjusted_difference": 0.65,
            "expected_se_mean_change": {"programme": 0.45, "comparison": 0.6},
            "note": "one decimal, baseline clipped to 50-99, follow-up to 0-100",
        },
    },
    "exclusions": {
        "terms": "autumn/spring/summer 2017/18-2023/24 (21 terms)",
        "period_start": "1 Sep (autumn), 1 Jan (spring), first day of summer term "
        "(Monday after the two-week Easter holiday, 8-29 April)",
        "base_rate_per_100_per_year": {"primary": 1.5, "secondary": 13.0},  # 2017/18
        "secular_trend_rate_ratio_per_year": 1.03,  # t = academic years since 2017/18 + term/3
        "seasonality": {"autumn": 1.0, "spring": 1.1, "summer": 0.85},
        "school_random_effect_sd_log": 0.35,
        "programme_schools_log_rate_offset": 0.15,  # programme schools selected for need
        "overdispersion_gamma_shape": 20.0,  # per school-term multiplier, mean 1
        "programme_level_change_rate_ratio": 0.75,  # suspensions, programme schools only
        # Poisson GLM, school + term-of-year fixed effects, linear trend, log(roll) offset,
        # Pearson-scaled: SE of the log rate ratio is about 0.045.
        "expected_se_log_rate_ratio": 0.045,
        "programme_slope_change_rate_ratio_per_year": 1.0,
        "comparison_change": 1.0,
        "permanent_rate_per_100_per_year": {"primary": 0.02, "secondary": 0.2},
        "permanent_programme_effect": 1.0,
        "pandemic": "none: synthetic data have no 2019/20-2020/21 dip",
    },
    "referrals": {
        "n_target": 300,
        "window": "school days 1 Sep 2021 - 12 Jul 2024, programme schools only",
        # Stratified sampling (total fixed) keeps the sample ratio near 2; with national
        # proportions only a handful of Black Caribbean boys are referred, so CIs are wide.
        "risk_ratio_black_caribbean_boys_vs_all_others": 2.0,
        "other_risk_factors": "none (risk is otherwise equal across pupils)",
        "reason_probs": {"SEMH": 0.4, "behaviour": 0.25, "attendance": 0.2, "communication": 0.15},
        "first_response_within_2_working_days": 0.8,  # working days: Mon-Fri less ENG bank hols
        "lead_professional_missing": 0.10,
        "closure_outcome_probs": {
            "needs met": 0.65,
            "EHC needs assessment": 0.15,
            "alternative provision": 0.10,
            "school move": 0.10,
        },
        "open_at_extract_approx": 0.15,
    },
    "interventions": {
        "per_referral": {"1": 0.6, "2": 0.4},  # referrals with a first response
        "start": "5-30 working days after first response; 2nd starts 2-8 school weeks later",
        "sessions_planned": "uniform integer 6-12, one per school week",
        "attendance_probability": 0.8,  # sessions_attended ~ Binomial(planned, 0.8)
        "cost_per_session": {
            "mentoring": 35.0,
            "parenting programme": 60.0,
            "speech and language": 75.0,
            "play therapy": 70.0,
            "art therapy": 70.0,
            "nurture group": 25.0,
            "school-refusal support": 55.0,
        },
        "cost": "sessions_attended x cost_per_session (so far, for ongoing interventions)",
        "menu_by_reason": {
            "SEMH": {
                "mentoring": 0.3,
                "play therapy": 0.25,
                "art therapy": 0.25,
                "nurture group": 0.2,
            },
            "behaviour": {"mentoring": 0.45, "parenting programme": 0.35, "nurture group": 0.2},
            "attendance": {
                "school-refusal support": 0.6,
                "mentoring": 0.2,
                "parenting programme": 0.2,
            },
            "communication": {"speech and language": 0.7, "nurture group": 0.3},
        },
    },
    "reviews": {
        "timing": "1st: 5-15 working days after the first intervention ends (or 6 school "
        "weeks after it starts if ongoing); 2nd (40%): 6-10 school weeks later",
        # P(outcome = Y) by the referral's FIRST intervention; independent across reviews.
        "probabilities": {
            "mentoring": {"attendance_improved": 0.55, "ready_to_learn": 0.65, "on_track": 0.60},
            "parenting programme": {
                "attendance_improved": 0.50,
                "ready_to_learn": 0.55,
                "on_track": 0.55,
            },
            "speech and language": {
                "attendance_improved": 0.40,
                "ready_to_learn": 0.60,
                "on_track": 0.65,
            },
            "play therapy": {"attendance_improved": 0.45, "ready_to_learn": 0.70, "on_track": 0.60},
            "art therapy": {"attendance_improved": 0.45, "ready_to_learn": 0.65, "on_track": 0.55},
            "nurture group": {
                "attendance_improved": 0.50,
                "ready_to_learn": 0.75,
                "on_track": 0.65,
            },
            "school-refusal support": {
                "attendance_improved": 0.70,
                "ready_to_learn": 0.50,
                "on_track": 0.50,
            },
        },
    },
    "attendance": {
        "pupils": "each referred pupil with an intervention",
        "window": "20 school weeks before the week of the first intervention start to 29 "
        "school weeks after it (50 weeks), truncated at the extract date",
        "possible_sessions": "2 x school days in the week (10, fewer in bank-holiday, "
        "half-term-edge and term-start weeks)",
        "baseline_rate_mean": 0.85,
        "baseline_rate_sd_between_pupils": 0.07,  # clipped to 0.5-0.95
        "weekly_noise_sd": 0.05,
        "effect_after_first_start_points": 4.0,  # from the week of the first start on
        "expected_se_points": 0.25,  # mean of pupil-level post-minus-pre rates
        "secular_trend": "none",
    },
    "suspensions": {
        "pupils": "every pupil in the 21 programme schools",
        "window": "school days 1 Sep 2021 - 19 Jul 2024",
        "rate_per_year_not_referred": {"primary": 0.015, "secondary": 0.12},
        "rate_per_year_referred": {"primary": 0.5, "secondary": 1.5},
        "frailty_gamma_shape": {"not_referred": 0.3, "referred": 2.0},
        # Referred pupils: hazard multiplied by this from the first intervention start,
        # by the type of the FIRST intervention. No calendar trend.
        "hazard_ratio_after_first_intervention": {
            "mentoring": 0.6,
            "nurture group": 0.7,
            "parenting programme": 0.8,
            "speech and language": 1.0,
            "play therapy": 1.0,
            "art therapy": 1.0,
            "school-refusal support": 1.0,
        },
        "expected_se_log_hazard_ratio_mentoring": 0.13,  # ~250 events, pre vs post
        "days_probs": {"0.5": 0.1, "1": 0.45, "2": 0.25, "3": 0.12, "5": 0.08},
        "permanent_prob_per_year_not_referred": {"primary": 0.0002, "secondary": 0.002},
        "permanent_note": "not-referred pupils only; no events after a permanent exclusion",
        "consistency": "separate draw from exclusions.csv; agrees only loosely",
    },
    # Pupil survey: two anonymous waves in the 21 programme schools (Year 6 in primaries,
    # Year 7 in secondaries). Graded-response model: each respondent has a latent score per
    # subscale, theta ~ N(mean[wave], 1) (correlation 0.5 between subscales); an item's
    # latent answer is sign * loading * theta + sqrt(1 - loading^2) * noise (sign -1 for a
    # reverse-keyed item) and its level is the number of thresholds below it. The values
    # the analyses estimate (% agreeing, mean scores, Hedges' g, probability of
    # superiority, alpha) follow exactly from this model: survey_truth() computes them.
    "survey": {
        "waves": {"before": "Autumn 2021", "after": "Summer 2022"},
        "year_groups": {"primary": 6, "secondary": 7},
        "response_rate": {"Autumn 2021": 0.70, "Summer 2022": 0.60},  # Binomial per school
        "latent_mean": {  # by subscale and wave: the documented true shift
            "belonging": {"Autumn 2021": 0.0, "Summer 2022": 0.35},
            "learning": {"Autumn 2021": 0.0, "Summer 2022": 0.0},
            "coping": {"Autumn 2021": 0.0, "Summer 2022": 0.15},
        },
        "latent_correlation": 0.5,
        "item_missing": 0.03,  # MCAR, per item
        "levels": ["Strongly disagree", "Disagree", "Agree", "Strongly agree"],
        "scoring": "mean item score 1-4 (reverse-keyed items scored backwards), given when "
        "at least 3 of 5 (or 3 of 4) items are answered",
        "clustering": "none: respondents independent (no school effect)",
    },
    # School audit: the 21 programme schools rate five areas (an academy trust's SEND
    # review) at baseline and follow-up on Not evident < Developing < Secure; each school
    # chooses two areas at random to work on. A rating moves up one level with probability
    # up_chosen / up_other (if not already Secure) and down one level with probability down
    # (if not Not evident), never both. audit_truth() gives the implied per-area values.
    "audit": {
        "schools": 21,
        "levels": ["Not evident", "Developing", "Secure"],
        "baseline_probs": {
            "leadership": [0.15, 0.55, 0.30],
            "identification": [0.25, 0.50, 0.25],
            "tracking": [0.40, 0.45, 0.15],
            "teaching": [0.20, 0.55, 0.25],
            "provision": [0.35, 0.50, 0.15],
        },
        "areas_chosen_per_school": 2,
        "up_chosen": 0.55,
        "up_other": 0.20,
        "down": 0.05,
    },
}

COLUMN_MAPPING: dict[str, dict[str, str]] = {
    "pupils": {
        "UPN": "pupil_id",
        "Forename": "first_name",
        "Surname": "surname",
        "Date of Birth": "date_of_birth",
        "School ID": "school_id",
        "Year Group": "year_group",
        "Gender": "sex",
        "SEN Status": "sen_status",
        "FSM Eligible": "fsm",
        "EAL": "eal",
        "Ethnicity": "ethnicity",
        "Ethnicity (Minor)": "ethnicity_minor",
        "Programme Group": "group",
    },
    "scores": {
        "UPN": "pupil_id",
        "Measure": "measure",
        "Timepoint": "timepoint",
        "Score": "score",
        "Date Assessed": "date",
    },
    "exclusions": {
        "School ID": "school_id",
        "Term start": "period_start",
        "Number on roll": "roll",
        "Suspensions": "suspensions",
        "Permanent exclusions": "permanent_exclusions",
        "Programme Group": "group",
    },
    "referrals": {
        "Referral ID": "referral_id",
        "UPN": "pupil_id",
        "School ID": "school_id",
        "Date of Referral": "referral_date",
        "Reason for Referral": "reason",
        "Date of First Response": "first_response_date",
        "Lead Professional": "lead_professional",
        "Date Closed": "closure_date",
        "Closure Outcome": "closure_outcome",
    },
    "interventions": {
        "Intervention ID": "intervention_id",
        "Referral ID": "referral_id",
        "Intervention Type": "intervention",
        "Start Date": "start_date",
        "End Date": "end_date",
        "Sessions Offered": "sessions_planned",
        "Sessions Attended": "sessions_attended",
        "Cost (GBP)": "cost",
    },
    "reviews": {
        "Review ID": "review_id",
        "Referral ID": "referral_id",
        "Review Date": "review_date",
        "Attendance Improved": "attendance_improved",
        "Ready to Learn": "ready_to_learn",
        "On Track": "on_track",
    },
    "attendance": {
        "UPN": "pupil_id",
        "Week Commencing": "week_start",
        "Sessions Possible": "possible_sessions",
        "Sessions Attended": "attended_sessions",
    },
    "suspensions": {
        "UPN": "pupil_id",
        "School ID": "school_id",
        "Start Date": "date",
        "Category": "kind",
        "Length (days)": "days",
    },
    # One row per completed questionnaire; the statement columns are mapped to item ids by
    # SURVEY_WIDE (each cell fills `response`).
    "survey_responses": {
        "Response ID": "response_id",
        "School ID": "school_id",
        "Survey Round": "wave",
    },
    "audit_ratings": {
        "School ID": "school_id",
        "Area": "area",
        "Timepoint": "timepoint",
        "Rating": "rating",
        "Priority Area": "chosen",
    },
}

FILE_NAMES: dict[str, str] = {
    "pupils": "pupils.xlsx",
    "scores": "scores.csv",
    "exclusions": "exclusions.csv",
    "referrals": "referrals.csv",
    "interventions": "interventions.csv",
    "reviews": "reviews.csv",
    "attendance": "attendance.csv",
    "suspensions": "suspensions.csv",
    "survey_responses": "pupil_survey.csv",
    "audit_ratings": "school_audit.csv",
}

#: The demo pupil survey: a definition that ``evaluation.surveys.Survey.model_validate``
#: accepts (so params or a registry entry can copy it). Each item: id, the statement (also
#: the column header of pupil_survey.csv), subscale, reverse keying, and the generating
#: model's loading and thresholds (kit definitions ignore the last two: see SURVEY).
_SURVEY_ITEMS: tuple[tuple[str, str, str, bool, float, tuple[float, float, float]], ...] = (
    ("belong_1", "I feel I belong at this school", "belonging", False, 0.75,
     (-1.6, -0.6, 0.7)),
    ("belong_2", "There is an adult at school I can talk to", "belonging", False, 0.65,
     (-1.5, -0.5, 0.6)),
    ("belong_3", "Other pupils accept me as I am", "belonging", False, 0.70,
     (-1.7, -0.7, 0.8)),
    ("belong_4", "I often feel left out at school", "belonging", True, 0.65,
     (-0.4, 0.6, 1.6)),
    ("belong_5", "I am proud to be at this school", "belonging", False, 0.70,
     (-1.4, -0.4, 0.9)),
    ("learn_1", "I enjoy learning at school", "learning", False, 0.70, (-1.5, -0.4, 0.8)),
    ("learn_2", "My teachers help me when I find work hard", "learning", False, 0.65,
     (-1.8, -0.8, 0.5)),
    ("learn_3", "I keep trying even when work is hard", "learning", False, 0.70,
     (-1.6, -0.6, 0.7)),
    ("learn_4", "I know what I need to do to improve", "learning", False, 0.60,
     (-1.7, -0.7, 0.6)),
    ("cope_1", "When something goes wrong I can bounce back", "coping", False, 0.70,
     (-1.3, -0.3, 1.0)),
    ("cope_2", "I know who to ask for help when I feel worried", "coping", False, 0.60,
     (-1.7, -0.8, 0.5)),
    ("cope_3", "I can calm myself down when I am upset", "coping", False, 0.70,
     (-1.2, -0.2, 1.0)),
    ("cope_4", "I often feel worried", "coping", True, 0.60, (-0.6, 0.4, 1.4)),
)

SURVEY: dict = {
    "id": "pupil_survey",
    "title": "Pupil belonging and wellbeing survey (synthetic)",
    "subscale_labels": {"belonging": "belonging", "learning": "learning",
                        "coping": "coping"},
    "items": [{"id": i, "statement": st, "subscale": sub, "reverse": rev}
              for i, st, sub, rev, _, _ in _SURVEY_ITEMS],
}
#: pupil_survey.csv's statement columns -> the kit's item ids (a params ``wide:`` block).
SURVEY_WIDE: dict[str, dict[str, str]] = {st: {"item": i} for i, st, *_ in _SURVEY_ITEMS}

#: The demo school audit (``evaluation.audits.Audit.model_validate`` accepts it).
AUDIT: dict = {
    "id": "send_review",
    "title": "SEND review",
    "levels": ["Not evident", "Developing", "Secure"],
    "areas": [
        {"id": "leadership", "label": "Leadership"},
        {"id": "identification", "label": "Identification"},
        {"id": "tracking", "label": "Tracking and monitoring progress"},
        {"id": "teaching", "label": "High-quality teaching and intervention"},
        {"id": "provision", "label": "Developing provision and wider access"},
    ],
}

# (major group, minor group, share of pupils in England, P(EAL)), roughly 2023/24 census.
_ETHNICITIES: tuple[tuple[str, str, float, float], ...] = (
    ("White", "White British", 61.0, 0.01),
    ("White", "White Irish", 0.3, 0.05),
    ("White", "Traveller of Irish heritage", 0.1, 0.02),
    ("White", "Gypsy/Roma", 0.4, 0.3),
    ("White", "Any other White background", 7.5, 0.65),
    ("Mixed", "White and Black Caribbean", 1.5, 0.03),
    ("Mixed", "White and Black African", 0.9, 0.2),
    ("Mixed", "White and Asian", 1.8, 0.15),
    ("Mixed", "Any other Mixed background", 3.0, 0.2),
    ("Asian", "Indian", 3.7, 0.7),
    ("Asian", "Pakistani", 4.6, 0.75),
    ("Asian", "Bangladeshi", 1.9, 0.8),
    ("Asian", "Any other Asian background", 2.0, 0.75),
    ("Black", "Black African", 4.4, 0.5),
    ("Black", "Black Caribbean", 1.0, 0.03),
    ("Black", "Any other Black background", 0.7, 0.3),
    ("Chinese", "Chinese", 0.5, 0.6),
    ("Any other ethnic group", "Any other ethnic group", 2.3, 0.75),
    ("Unclassified", "Unclassified", 0.9, 0.2),
)

_FORENAMES_F = (
    "Amelia Olivia Isla Ava Mia Ivy Lily Isabella Rosie Sophia Grace Freya Florence Willow "
    "Evie Poppy Ella Aisha Zara Maryam Fatima Amara Chloe Ruby Sienna Hannah Nia Priya Leah "
    "Imani Layla Maja Zofia Ellie Esme Daisy Alice Harper Matilda Sofia"
).split()
_FORENAMES_M = (
    "Noah Oliver George Leo Arthur Muhammad Harry Oscar Archie Henry Jack Theo Charlie Freddie "
    "Jacob Alfie Finley Thomas Isaac Joshua Ethan Kai Tyrese Malachi Yusuf Ibrahim Arjun "
    "Rohan Aaron Jayden Reggie Albie Jakub Filip Mason Logan Reuben Elijah Zain Ollie"
).split()
_SURNAMES = (
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Robinson Wright Thompson "
    "Evans Walker White Roberts Green Hall Thomas Clarke Jackson Wood Harris Edwards Turner "
    "Martin Cooper Hill Ward Hughes Moore Clark King Harrison Lewis Baker Lee Allen Morris "
    "Khan Scott Watson Davis Parker James Bennett Young Phillips Richardson Mitchell Bailey "
    "Carter Cook Singh Shah Ahmed Begum Hussain Ali Campbell Okafor Adeyemi Mensah Nowak "
    "Kowalski Murphy Kelly Reid Francis Grant Brooks Chen Wong Popescu Silva Osei Bello"
).split()

_LEAD_ROLES = (
    "Educational psychologist",
    "SENCo",
    "Family support worker",
    "Mental health practitioner",
    "School nurse",
    "Social worker",
)


# --------------------------------------------------------------------------- calendar


def _bank_holidays(first_year: int = 2016, last_year: int = 2026) -> dict[dt.date, str]:
    """England bank holidays (the `holidays` package's GB/ENG calendar)."""
    return dict(holidays.country_holidays("GB", subdiv="ENG", years=range(first_year, last_year)))


def _monday_on_or_before(day: dt.date) -> dt.date:
    """The Monday of the week containing ``day``."""
    return day - dt.timedelta(days=day.weekday())


def _friday_on_or_before(day: dt.date) -> dt.date:
    """The last Friday on or before ``day``."""
    return day - dt.timedelta(days=(day.weekday() - 4) % 7)


def _weekday_on_or_after(day: dt.date) -> dt.date:
    """``day``, or the Monday after it if it falls at a weekend."""
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def _terms(year: int, bank: dict[dt.date, str]) -> list[dict]:
    """Stylised English term dates for academic year ``year``/``year+1``.

    Each term: name, period start (1 Sep / 1 Jan / first summer day), first and last
    school day, and a Monday-Friday half-term week.
    """
    good_friday = easter(year + 1) - dt.timedelta(days=2)
    easter_hols = _monday_on_or_before(good_friday)  # two weeks from this Monday
    summer_first = easter_hols + dt.timedelta(days=14)
    spring_bank = next(
        d for d, n in bank.items() if d.year == year + 1 and "Spring Bank Holiday" in n
    )
    return [
        {
            "term": "Autumn",
            "period_start": dt.date(year, 9, 1),
            "first": _weekday_on_or_after(dt.date(year, 9, 3)),
            "last": _friday_on_or_before(dt.date(year, 12, 20)),
            "half_term": _monday_on_or_before(dt.date(year, 10, 27)),
        },
        {
            "term": "Spring",
            "period_start": dt.date(year + 1, 1, 1),
            "first": _weekday_on_or_after(dt.date(year + 1, 1, 4)),
            "last": easter_hols - dt.timedelta(days=3),
            "half_term": _monday_on_or_before(dt.date(year + 1, 2, 17)),
        },
        {
            "term": "Summer",
            "period_start": summer_first,
            "first": summer_first,
            "last": _friday_on_or_before(dt.date(year + 1, 7, 23)),
            "half_term": _monday_on_or_before(spring_bank),
        },
    ]


def school_days(first_year: int = 2016, last_year: int = 2024) -> pd.DatetimeIndex:
    """All school days of academic years ``first_year`` to ``last_year`` (start years)."""
    bank = _bank_holidays()
    days: list[dt.date] = []
    for year in range(first_year, last_year + 1):
        for term in _terms(year, bank):
            half = {term["half_term"] + dt.timedelta(days=i) for i in range(5)}
            day = term["first"]
            while day <= term["last"]:
                if day.weekday() < 5 and day not in bank and day not in half:
                    days.append(day)
                day += dt.timedelta(days=1)
    return pd.DatetimeIndex(days)


# --------------------------------------------------------------------------- helpers


def _uk(dates: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """Format dates as UK dd/mm/yyyy strings; missing dates become empty cells."""
    return pd.Series(pd.to_datetime(dates)).dt.strftime("%d/%m/%Y").fillna("")


def _yn(values: np.ndarray) -> np.ndarray:
    """Booleans as the Y/N flags school exports use."""
    return np.where(np.asarray(values, dtype=bool), "Y", "N")


def _add_working_days(day: pd.Timestamp, k: int, bank: np.ndarray) -> pd.Timestamp:
    """Add ``k`` working days (Mon-Fri less England bank holidays) to one date."""
    out = np.busday_offset(np.datetime64(day.date()), k, roll="forward", holidays=bank)
    return pd.Timestamp(out)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV with reproducible bytes."""
    # Fixed line endings keep the bytes identical across operating systems.
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def _working_day_offset(dates: pd.Series, offsets: np.ndarray, bank: np.ndarray) -> pd.Series:
    """Add working days (Mon-Fri, less England bank holidays) to dates."""
    out = np.busday_offset(
        dates.to_numpy().astype("datetime64[D]"), offsets, roll="forward", holidays=bank
    )
    return pd.Series(pd.to_datetime(out), index=dates.index)


_XLSX_PARTS: dict[str, str] = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="xl/workbook.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
        'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
        "</Relationships>"
    ),
    "docProps/core.xml": (
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
        'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<dc:title>SYNTHETIC demo data - no real pupil</dc:title>"
        "<dc:creator>evalkit demo generator</dc:creator>"
        '<dcterms:created xsi:type="dcterms:W3CDTF">2024-07-19T12:00:00Z</dcterms:created>'
        '<dcterms:modified xsi:type="dcterms:W3CDTF">2024-07-19T12:00:00Z</dcterms:modified>'
        "</cp:coreProperties>"
    ),
    "xl/_rels/workbook.xml.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/styles" Target="styles.xml"/>'
        "</Relationships>"
    ),
    "xl/styles.xml": (
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border>'
        "</borders>"
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        "</cellStyleXfs>"
        '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" '
        'applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    ),
}


def _column_letter(index: int) -> str:
    """Excel column letter for a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _write_xlsx(frame: pd.DataFrame, path: Path, sheet: str, date_columns: set[str]) -> None:
    """Write a one-sheet xlsx directly as SpreadsheetML.

    A hand-written minimal workbook is ~30x faster than openpyxl without lxml and has no
    "now" timestamps anywhere, so the bytes depend only on the data. Text cells are inline
    strings, integers are numbers and dates are Excel serials formatted dd/mm/yyyy.
    """
    letters = [_column_letter(i) for i in range(frame.shape[1])]
    epoch = pd.Timestamp("1899-12-30")
    columns: list[list[str]] = []
    for letter, name in zip(letters, frame.columns, strict=True):
        values = frame[name]
        if name in date_columns:
            serial = (pd.to_datetime(values) - epoch).dt.days.tolist()
            columns.append([f'<c r="{letter}{{r}}" s="1"><v>{v}</v></c>' for v in serial])
        elif pd.api.types.is_integer_dtype(values):
            columns.append([f'<c r="{letter}{{r}}"><v>{v}</v></c>' for v in values.tolist()])
        else:
            # Escape each distinct value once: most columns have few distinct values.
            cell = {
                v: f'<c r="{letter}{{r}}" t="inlineStr"><is><t>{escape(str(v))}</t></is></c>'
                for v in values.unique().tolist()
            }
            columns.append([cell[v] for v in values.tolist()])
    header = "".join(
        f'<c r="{letter}1" t="inlineStr"><is><t>{escape(str(name))}</t></is></c>'
        for letter, name in zip(letters, frame.columns, strict=True)
    )
    rows = [f'<row r="1">{header}</row>']
    for i, cells in enumerate(zip(*columns, strict=True), start=2):
        rows.append(f'<row r="{i}">' + "".join(cells).replace("{r}", str(i)) + "</row>")
    parts = dict(_XLSX_PARTS)
    parts["xl/workbook.xml"] = (
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{escape(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    parts["xl/worksheets/sheet1.xml"] = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="A1:{letters[-1]}{len(frame) + 1}"/>'
        "<sheetData>" + "".join(rows) + "</sheetData></worksheet>"
    )
    declaration = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            # Fixed entry timestamps: zipfile would otherwise stamp the current time.
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (declaration + xml).encode("utf-8"))


# --------------------------------------------------------------------------- generators


def _schools(rng: np.random.Generator) -> pd.DataFrame:
    """The 33 schools: id, name, arm, phase, 2021/22 roll and log-rate random effect."""
    n = N_PROGRAMME_SCHOOLS + N_COMPARISON_SCHOOLS
    group = np.array(["programme"] * N_PROGRAMME_SCHOOLS + ["comparison"] * N_COMPARISON_SCHOOLS)
    # Two thirds primary in each arm, interleaved so phases mix across ids.
    phase = np.array(
        ["secondary" if i % 3 == 2 else "primary" for i in range(N_PROGRAMME_SCHOOLS)]
        + ["secondary" if i % 3 == 2 else "primary" for i in range(N_COMPARISON_SCHOOLS)]
    )
    roll = np.where(phase == "primary", rng.integers(200, 401, n), rng.integers(650, 1101, n))
    ids = [f"SCH{i + 1:02d}" for i in range(n)]
    names = [f"Synthetic {p.capitalize()} {i + 1:02d}" for i, p in enumerate(phase)]
    effects = TRUE_EFFECTS["exclusions"]
    school_re = rng.normal(0.0, effects["school_random_effect_sd_log"], n) + np.where(
        group == "programme", effects["programme_schools_log_rate_offset"], 0.0
    )
    return pd.DataFrame(
        {
            "school_id": ids,
            "name": names,
            "group": group,
            "phase": phase,
            "roll": roll,
            "log_re": school_re,
        }
    )


def _pupils(rng: np.random.Generator, schools: pd.DataFrame) -> pd.DataFrame:
    """Every pupil on roll in autumn 2021 (kit column names plus name and phase)."""
    school_idx = np.repeat(np.arange(len(schools)), schools["roll"].to_numpy())
    n = len(school_idx)
    phase = schools["phase"].to_numpy()[school_idx]
    year_group = np.where(phase == "primary", rng.integers(0, 7, n), rng.integers(7, 12, n))
    sex = rng.choice(np.array(["F", "M"]), n)
    # SEN is ~1.6x as common in boys; keep the overall rates at 13% / 4%.
    boy = sex == "M"
    scale = np.where(boy, 2 * 1.6 / 2.6, 2 / 2.6)
    u = rng.random(n)
    p_ehc = TRUE_EFFECTS["pupils"]["ehc_plan_rate"] * scale
    p_sup = TRUE_EFFECTS["pupils"]["sen_support_rate"] * scale
    sen = np.where(u < p_ehc, "EHC plan", np.where(u < p_ehc + p_sup, "SEN support", "none"))
    fsm = rng.random(n) < TRUE_EFFECTS["pupils"]["fsm_rate"]
    shares = np.array([e[2] for e in _ETHNICITIES])
    eth_idx = rng.choice(len(_ETHNICITIES), n, p=shares / shares.sum())
    major = np.array([e[0] for e in _ETHNICITIES])[eth_idx]
    minor = np.array([e[1] for e in _ETHNICITIES])[eth_idx]
    eal = rng.random(n) < np.array([e[3] for e in _ETHNICITIES])[eth_idx]
    first = np.where(
        boy, rng.choice(np.array(_FORENAMES_M), n), rng.choice(np.array(_FORENAMES_F), n)
    )
    surname = rng.choice(np.array(_SURNAMES), n)
    # Born in the academic year that puts the child in year_group in 2021/22.
    born_from = pd.to_datetime([f"{2016 - y}-09-01" for y in year_group])
    dob = born_from + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    # Clearly fake UPNs: "Z" + 12 digits, unique.
    digits = rng.choice(10**12, n, replace=False)
    upn = np.array([f"Z{d:012d}" for d in digits])
    return pd.DataFrame(
        {
            "pupil_id": upn,
            "first_name": first,
            "surname": surname,
            "date_of_birth": dob,
            "school_id": schools["school_id"].to_numpy()[school_idx],
            "school_name": schools["name"].to_numpy()[school_idx],
            "year_group": year_group,
            "sex": sex,
            "sen_status": sen,
            "fsm": fsm,
            "eal": eal,
            "ethnicity": major,
            "ethnicity_minor": minor,
            "group": schools["group"].to_numpy()[school_idx],
            "phase": phase,
        }
    )


def _scores(
    rng: np.random.Generator, pupils: pd.DataFrame, schools: pd.DataFrame, days: pd.DatetimeIndex
) -> pd.DataFrame:
    """Long-format SDQ and attendance % for 8 targeted pupils per school (both arms)."""
    cfg = TRUE_EFFECTS["scores"]
    per_school = cfg["targeted_pupils_per_school"]
    chosen = (
        pupils.groupby("school_id", sort=True)["pupil_id"]
        .apply(lambda s: list(rng.choice(s.to_numpy(), per_school, replace=False)))
        .explode()
    )
    target = pd.DataFrame({"school_id": chosen.index, "pupil_id": chosen.to_numpy()})
    target = target.merge(schools[["school_id", "group"]], on="school_id")
    n = len(target)
    s_idx = pd.Categorical(target["school_id"], categories=schools["school_id"]).codes
    autumn = days[(days >= "2021-10-04") & (days <= "2021-10-22")]
    summer = days[(days >= "2022-06-13") & (days <= "2022-07-08")]
    base_date = rng.choice(autumn, len(schools))[s_idx]
    follow_date = rng.choice(summer, len(schools))[s_idx]
    status = rng.random(n)
    has_base = status >= cfg["follow_up_only"]
    has_follow = ~(
        (status >= cfg["follow_up_only"])
        & (status < cfg["follow_up_only"] + cfg["missing_follow_up"])
    )
    rows = []
    prog = (target["group"] == "programme").to_numpy()
    for measure, lo, hi in (("sdq_teacher_total", 0, 40), ("attendance_pct", 0, 100)):
        m = cfg[measure]
        base = rng.normal(m["baseline_mean"], m["baseline_sd"], n)
        school = rng.normal(0.0, m["school_sd"], len(schools))[s_idx]
        change = np.where(prog, m["mean_change"]["programme"], m["mean_change"]["comparison"])
        if measure == "sdq_teacher_total":
            base = np.clip(np.rint(base), lo, hi)
        else:
            base = np.clip(base, 50, 99)
        follow = (
            m["baseline_mean"]
            + m["baseline_slope"] * (base - m["baseline_mean"])
            + change
            + school
            + rng.normal(0.0, m["residual_sd"], n)
        )
        follow = np.clip(follow, lo, hi)
        fmt = "{:.0f}" if measure == "sdq_teacher_total" else "{:.1f}"
        for tp, values, dates, keep in (
            ("baseline", base, base_date, has_base),
            ("follow_up", follow, follow_date, has_follow),
        ):
            rows.append(
                pd.DataFrame(
                    {
                        "pupil_id": target["pupil_id"].to_numpy()[keep],
                        "measure": measure,
                        "timepoint": tp,
                        "score": [fmt.format(v) for v in values[keep]],
                        "date": pd.DatetimeIndex(dates[keep]),
                    }
                )
            )
    out = pd.concat(rows, ignore_index=True)
    order = {"baseline": 0, "follow_up": 1}
    out["_tp"] = out["timepoint"].map(order)
    out = out.sort_values(["pupil_id", "measure", "_tp"], kind="stable").drop(columns="_tp")
    return out.reset_index(drop=True)


def _exclusions(rng: np.random.Generator, schools: pd.DataFrame) -> pd.DataFrame:
    """Termly school-level counts, 2017/18-2023/24, with school-style headers."""
    cfg = TRUE_EFFECTS["exclusions"]
    bank = _bank_holidays()
    rows = []
    n_years = 7
    # Rolls drift a little year to year; 2021/22 equals the pupils table.
    drift = rng.normal(0.0, 0.02, (len(schools), n_years))
    drift[:, 4] = 0.0
    log_drift = np.cumsum(drift, axis=1)
    log_drift -= log_drift[:, [4]]
    for year_i, year in enumerate(range(2017, 2017 + n_years)):
        for term_i, term in enumerate(_terms(year, bank)):
            t = year_i + term_i / 3
            post = term["period_start"] >= PROGRAMME_START.date()
            for s_i, school in schools.iterrows():
                roll = int(round(school["roll"] * np.exp(log_drift[s_i, year_i])))
                phase = school["phase"]
                base = cfg["base_rate_per_100_per_year"][phase] / 100 / 3
                effect = (
                    cfg["programme_level_change_rate_ratio"]
                    if post and school["group"] == "programme"
                    else 1.0
                )
                mu = (
                    roll
                    * base
                    * np.exp(school["log_re"])
                    * cfg["secular_trend_rate_ratio_per_year"] ** t
                    * cfg["seasonality"][term["term"].lower()]
                    * effect
                )
                shape = cfg["overdispersion_gamma_shape"]
                susp = rng.poisson(mu * rng.gamma(shape, 1 / shape))
                perm = rng.poisson(roll * cfg["permanent_rate_per_100_per_year"][phase] / 300)
                rows.append(
                    {
                        "School ID": school["school_id"],
                        "School Name": school["name"],
                        "Term start": term["period_start"].strftime("%d/%m/%Y"),
                        "Academic year": f"{year}/{(year + 1) % 100:02d}",
                        "Term": term["term"],
                        "Number on roll": roll,
                        "Suspensions": int(susp),
                        "Permanent exclusions": int(perm),
                        "Programme Group": school["group"],
                    }
                )
    return pd.DataFrame(rows)


def _choose(rng: np.random.Generator, probs: dict[str, float], size: int) -> np.ndarray:
    """Draw ``size`` keys of ``probs`` with the given (renormalised) probabilities."""
    keys = np.array(list(probs))
    p = np.array(list(probs.values()), dtype=float)
    return rng.choice(keys, size, p=p / p.sum())


def _referral_tables(
    rng: np.random.Generator, pupils: pd.DataFrame, days: pd.DatetimeIndex
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Referrals, interventions and reviews, all as known on the extract date."""
    cfg = TRUE_EFFECTS["referrals"]
    icfg = TRUE_EFFECTS["interventions"]
    bank = np.array(sorted(_bank_holidays()), dtype="datetime64[D]")
    pool = pupils[pupils["group"] == "programme"]
    bcb = ((pool["ethnicity_minor"] == "Black Caribbean") & (pool["sex"] == "M")).to_numpy()
    # Stratified draw: rate r for others and 2r for Black Caribbean boys, totals fixed.
    rr = cfg["risk_ratio_black_caribbean_boys_vs_all_others"]
    r = cfg["n_target"] / (len(pool) + (rr - 1) * bcb.sum())
    n_bcb = int(round(rr * r * bcb.sum()))
    idx = np.concatenate(
        [
            rng.choice(np.flatnonzero(bcb), n_bcb, replace=False),
            rng.choice(np.flatnonzero(~bcb), cfg["n_target"] - n_bcb, replace=False),
        ]
    )
    ref = pool.iloc[idx][["pupil_id", "school_id", "phase"]].reset_index(drop=True)
    n = len(ref)
    window = days[(days >= PROGRAMME_START) & (days <= "2024-07-12")]
    # Dates drawn independently of who is referred, then rows put in date order.
    ref["referral_date"] = pd.DatetimeIndex(rng.choice(window, n))
    ref = ref.sort_values(["referral_date", "pupil_id"], kind="stable").reset_index(drop=True)
    ref["referral_id"] = [f"REF{i + 1:04d}" for i in range(n)]
    ref["reason"] = _choose(rng, cfg["reason_probs"], n)
    quick = rng.random(n) < cfg["first_response_within_2_working_days"]
    offset = np.where(quick, rng.choice([0, 1, 2], n, p=[0.2, 0.45, 0.35]), rng.integers(3, 16, n))
    response = _working_day_offset(ref["referral_date"], offset, bank)
    ref["first_response_date"] = response.where(response <= EXTRACT_DATE)
    lead = rng.choice(np.array(_LEAD_ROLES), n)
    ref["lead_professional"] = np.where(rng.random(n) < cfg["lead_professional_missing"], "", lead)
    school_weeks = pd.DatetimeIndex(sorted({d - pd.Timedelta(days=d.weekday()) for d in days}))

    def week_after(start: pd.Timestamp, k: int) -> pd.Timestamp:
        """Monday ``k`` school weeks after the week of ``start``."""
        pos = school_weeks.searchsorted(start - pd.Timedelta(days=start.weekday()))
        return school_weeks[min(pos + k, len(school_weeks) - 1)]

    interventions: list[dict] = []
    reviews: list[dict] = []
    closure: list[pd.Timestamp | None] = []
    first_type: list[str | None] = []
    first_start: list[pd.Timestamp | None] = []
    for _, row in ref.iterrows():
        resp = row["first_response_date"]
        ends: list[pd.Timestamp | None] = []
        types: list[str] = []
        if pd.notna(resp):
            k = 1 if rng.random() < icfg["per_referral"]["1"] else 2
            menu = icfg["menu_by_reason"][row["reason"]]
            start = _add_working_days(resp, int(rng.integers(5, 31)), bank)
            for j in range(k):
                if j > 0:
                    start = week_after(start, int(rng.integers(2, 9)))
                if start > EXTRACT_DATE:
                    break
                kind = str(_choose(rng, menu, 1)[0])
                planned = int(rng.integers(6, 13))
                end = week_after(start, planned - 1) + pd.Timedelta(days=int(rng.integers(0, 5)))
                ongoing = end > EXTRACT_DATE
                delivered = planned
                if ongoing:
                    delivered = int(
                        (
                            (school_weeks >= start - pd.Timedelta(days=6))
                            & (school_weeks <= EXTRACT_DATE)
                        ).sum()
                    )
                    delivered = min(delivered, planned)
                attended = int(rng.binomial(delivered, icfg["attendance_probability"]))
                interventions.append(
                    {
                        "Intervention ID": "",
                        "Referral ID": row["referral_id"],
                        "Intervention Type": kind,
                        "Start Date": start,
                        "End Date": None if ongoing else end,
                        "Sessions Offered": planned,
                        "Sessions Attended": attended,
                        "Cost (GBP)": f"{attended * icfg['cost_per_session'][kind]:.2f}",
                    }
                )
                ends.append(None if ongoing else end)
                types.append(kind)
        first_type.append(types[0] if types else None)
        first_start.append(interventions[-len(types)]["Start Date"] if types else None)
        last_review = None
        if types:
            first = interventions[-len(types)]
            if first["End Date"] is not None:
                review = _add_working_days(first["End Date"], int(rng.integers(5, 16)), bank)
            else:
                review = week_after(first["Start Date"], 6) + pd.Timedelta(days=2)
            probs = TRUE_EFFECTS["reviews"]["probabilities"][types[0]]
            n_rev = 1 if rng.random() < 0.6 else 2
            for r_i in range(n_rev):
                if r_i > 0:
                    review = week_after(review, int(rng.integers(6, 11))) + pd.Timedelta(days=2)
                outcome = {k: bool(rng.random() < p) for k, p in probs.items()}
                if review > EXTRACT_DATE:
                    break
                reviews.append(
                    {
                        "Review ID": "",
                        "Referral ID": row["referral_id"],
                        "Review Date": review,
                        "Attendance Improved": outcome["attendance_improved"],
                        "Ready to Learn": outcome["ready_to_learn"],
                        "On Track": outcome["on_track"],
                    }
                )
                last_review = review
        # Closed some weeks after the last piece of work, if that is before the extract.
        if pd.isna(resp) or any(e is None for e in ends) or (types and last_review is None):
            closure.append(None)
            continue
        anchor = max([resp, *ends] + ([last_review] if last_review is not None else []))
        lag = int(rng.integers(10, 41)) if types else int(rng.integers(15, 60))
        close = _add_working_days(anchor, lag, bank)
        closure.append(close if close <= EXTRACT_DATE else None)
    ref["closure_date"] = pd.to_datetime(pd.Series(closure, dtype="object"))
    closed = ref["closure_date"].notna().to_numpy()
    ref["closure_outcome"] = np.where(closed, _choose(rng, cfg["closure_outcome_probs"], n), "")
    ref["first_type"] = first_type
    ref["first_start"] = pd.to_datetime(pd.Series(first_start, dtype="object"))

    interv = pd.DataFrame(interventions)
    interv["Intervention ID"] = [f"INT{i + 1:04d}" for i in range(len(interv))]
    for col in ("Start Date", "End Date"):
        interv[col] = _uk(pd.to_datetime(pd.Series(interv[col], dtype="object")))
    rev = pd.DataFrame(reviews).sort_values(["Review Date", "Referral ID"], kind="stable")
    rev["Review ID"] = [f"REV{i + 1:04d}" for i in range(len(rev))]
    rev["Review Date"] = _uk(pd.to_datetime(rev["Review Date"]).reset_index(drop=True)).values
    for col in ("Attendance Improved", "Ready to Learn", "On Track"):
        rev[col] = _yn(rev[col].to_numpy())
    return ref, interv, rev.reset_index(drop=True)


def _attendance(
    rng: np.random.Generator, ref: pd.DataFrame, days: pd.DatetimeIndex
) -> pd.DataFrame:
    """Weekly sessions around the first intervention start, +4 points from that week."""
    cfg = TRUE_EFFECTS["attendance"]
    week = days - pd.to_timedelta(days.day_of_week, unit="D")
    possible = pd.Series(2, index=week).groupby(level=0).sum()
    possible = possible[possible.index <= EXTRACT_DATE]
    weeks = possible.index
    pids: list[np.ndarray] = []
    sels: list[np.ndarray] = []
    attended: list[np.ndarray] = []
    treated = ref[ref["first_start"].notna()].sort_values("pupil_id")
    for pid, start in zip(treated["pupil_id"], treated["first_start"], strict=True):
        pos = weeks.searchsorted(start - pd.Timedelta(days=start.weekday()))
        lo = max(pos - 20, 0)
        sel = np.arange(lo, min(pos + 30, len(weeks)))
        base = float(
            np.clip(
                rng.normal(cfg["baseline_rate_mean"], cfg["baseline_rate_sd_between_pupils"]),
                0.5,
                0.95,
            )
        )
        post = sel >= pos
        p = base + post * cfg["effect_after_first_start_points"] / 100
        p = np.clip(p + rng.normal(0.0, cfg["weekly_noise_sd"], len(sel)), 0.0, 1.0)
        attended.append(rng.binomial(possible.to_numpy()[sel], p))
        pids.append(np.full(len(sel), pid, dtype=object))
        sels.append(sel)
    sel_all = np.concatenate(sels)
    return pd.DataFrame(
        {
            "UPN": np.concatenate(pids),
            "Week Commencing": _uk(weeks[sel_all]).to_numpy(),
            "Sessions Possible": possible.to_numpy()[sel_all],
            "Sessions Attended": np.concatenate(attended),
        }
    )


def _suspensions(
    rng: np.random.Generator, pupils: pd.DataFrame, ref: pd.DataFrame, days: pd.DatetimeIndex
) -> pd.DataFrame:
    """Pupil-level events for all programme-school pupils (piecewise-constant hazards)."""
    cfg = TRUE_EFFECTS["suspensions"]
    window = days[(days >= PROGRAMME_START) & (days <= EXTRACT_DATE)]
    years = len(window) / 190  # ~190 school days a year
    pool = pupils[pupils["group"] == "programme"].reset_index(drop=True)
    info = ref.set_index("pupil_id")[["first_type", "first_start"]]
    referred = pool["pupil_id"].isin(info.index).to_numpy()
    phase = pool["phase"].to_numpy()
    rate = np.where(
        referred,
        np.where(
            phase == "primary",
            cfg["rate_per_year_referred"]["primary"],
            cfg["rate_per_year_referred"]["secondary"],
        ),
        np.where(
            phase == "primary",
            cfg["rate_per_year_not_referred"]["primary"],
            cfg["rate_per_year_not_referred"]["secondary"],
        ),
    )
    shape = np.where(
        referred, cfg["frailty_gamma_shape"]["referred"], cfg["frailty_gamma_shape"]["not_referred"]
    )
    daily = rate * rng.gamma(shape, 1 / shape) / 190
    day_probs = {float(k): v for k, v in cfg["days_probs"].items()}
    events: list[pd.DataFrame] = []
    ref_i: list[int] = []
    ref_dates: list[pd.Timestamp] = []
    for i in np.flatnonzero(referred):
        pid = pool.at[i, "pupil_id"]
        start, kind = info.at[pid, "first_start"], info.at[pid, "first_type"]
        hr = cfg["hazard_ratio_after_first_intervention"].get(kind, 1.0) if pd.notna(start) else 1.0
        cut = window.searchsorted(start) if pd.notna(start) else len(window)
        for seg, mult in ((window[:cut], 1.0), (window[cut:], hr)):
            k = rng.poisson(daily[i] * mult * len(seg))
            ref_i.extend([i] * k)
            ref_dates.extend(rng.choice(seg, k) if k else [])
    events.append(
        pd.DataFrame(
            {
                "i": np.array(ref_i, dtype=int),
                "date": pd.DatetimeIndex(ref_dates),
                "kind": "suspension",
            }
        )
    )
    others = np.flatnonzero(~referred)
    counts = rng.poisson(daily[others] * len(window))
    has = counts > 0
    rep = np.repeat(others[has], counts[has])
    events.append(
        pd.DataFrame({"i": rep, "date": rng.choice(window, len(rep)), "kind": "suspension"})
    )
    p_perm = (
        np.where(
            phase[others] == "primary",
            cfg["permanent_prob_per_year_not_referred"]["primary"],
            cfg["permanent_prob_per_year_not_referred"]["secondary"],
        )
        * years
    )
    perm = others[rng.random(len(others)) < p_perm]
    events.append(
        pd.DataFrame({"i": perm, "date": rng.choice(window, len(perm)), "kind": "permanent"})
    )
    ev = pd.concat(events, ignore_index=True)
    # Nothing after a permanent exclusion: the pupil has left the school.
    perm_date = ev[ev["kind"] == "permanent"].groupby("i")["date"].min()
    limit = ev["i"].map(perm_date)
    ev = ev[limit.isna() | (ev["date"] < limit) | (ev["kind"] == "permanent")]
    ev = ev.sort_values(["date", "i"], kind="stable").reset_index(drop=True)
    lengths = rng.choice(np.array(list(day_probs)), len(ev), p=list(day_probs.values()))
    return pd.DataFrame(
        {
            "UPN": pool["pupil_id"].to_numpy()[ev["i"]],
            "School ID": pool["school_id"].to_numpy()[ev["i"]],
            "Start Date": _uk(ev["date"]).to_numpy(),
            "Category": ev["kind"].to_numpy(),
            "Length (days)": np.where(ev["kind"] == "permanent", "", [f"{x:g}" for x in lengths]),
        }
    )


# --------------------------------------------------------------------------- survey, audit


def _survey(rng: np.random.Generator, schools: pd.DataFrame) -> pd.DataFrame:
    """Two anonymous waves of the pupil survey in the programme schools (wide, one row per
    completed questionnaire, statements as column headers, blank = not answered)."""
    cfg = TRUE_EFFECTS["survey"]
    levels = np.array(cfg["levels"])
    subs = list(cfg["latent_mean"])
    corr = np.full((len(subs), len(subs)), cfg["latent_correlation"])
    np.fill_diagonal(corr, 1.0)
    prog = schools[schools["group"] == "programme"]
    eligible = survey_eligible(schools)
    frames = []
    first = 1
    for wave in (cfg["waves"]["before"], cfg["waves"]["after"]):
        n_school = rng.binomial(eligible.to_numpy(), cfg["response_rate"][wave])
        school = np.repeat(prog["school_id"].to_numpy(), n_school)
        n = int(n_school.sum())
        mean = np.array([cfg["latent_mean"][sub][wave] for sub in subs])
        theta = rng.multivariate_normal(mean, corr, n)
        out = {"Response ID": [f"R{k:05d}" for k in range(first, first + n)],
               "School ID": school, "Survey Round": wave}
        for _item, statement, sub, reverse, loading, cuts in _SURVEY_ITEMS:
            sign = -1.0 if reverse else 1.0
            latent = sign * loading * theta[:, subs.index(sub)] + np.sqrt(
                1 - loading**2) * rng.normal(size=n)
            answer = levels[np.searchsorted(np.array(cuts), latent)]
            out[statement] = np.where(rng.random(n) < cfg["item_missing"], "", answer)
        frames.append(pd.DataFrame(out))
        first += n
    return pd.concat(frames, ignore_index=True)


def survey_eligible(schools: pd.DataFrame | None = None) -> pd.Series:
    """Pupils invited to the survey in each programme school (its surveyed year group:
    roll / 7 in a primary, roll / 5 in a secondary), the same in both waves."""
    if schools is None:
        streams = np.random.SeedSequence(DEFAULT_SEED).spawn(1)
        schools = _schools(np.random.default_rng(streams[0]))
    prog = schools[schools["group"] == "programme"]
    years = np.where(prog["phase"] == "primary", 7, 5)
    return pd.Series(np.round(prog["roll"].to_numpy() / years).astype(int),
                     index=prog["school_id"].to_numpy(), name="eligible")


def survey_truth(subscale: str) -> dict:
    """The true values of the demo survey's subscale, exactly from the generating model.

    Per wave: ``pct_agree`` (item id -> % answering Agree or Strongly agree, marginal
    P(latent >= threshold 2) = Phi(sign * loading * mean - threshold)), ``mean`` and ``sd``
    of the complete-response subscale score (mean item score 1-4, reverse items scored
    backwards) and ``alpha`` (population Cronbach's alpha of the item scores); between the
    waves ``difference`` (after - before), ``g`` (difference / root mean of the two
    variances) and ``superiority`` (P(after > before) + P(tie)/2 for the subscale score).
    Items are independent given the respondent's latent score, so every moment and the
    score's distribution come from 1-D Gauss-Hermite quadrature over it (120 nodes).
    """
    from scipy import stats

    cfg = TRUE_EFFECTS["survey"]
    items = [it for it in _SURVEY_ITEMS if it[2] == subscale]
    k = len(items)
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / weights.sum()
    out: dict = {"waves": {}}
    dists = {}
    for wave in (cfg["waves"]["before"], cfg["waves"]["after"]):
        mu = cfg["latent_mean"][subscale][wave]
        theta = mu + nodes
        cond_mean, cond_var, pmfs, pct = [], [], [], {}
        for item, _, _, reverse, loading, cuts in items:
            sign = -1.0 if reverse else 1.0
            # P(level >= j | theta) for j = 1, 2, 3 (levels 0-3)
            above = stats.norm.cdf((sign * loading * theta[:, None] - np.array(cuts))
                                   / np.sqrt(1 - loading**2))
            p = np.column_stack([1 - above[:, 0], above[:, 0] - above[:, 1],
                                 above[:, 1] - above[:, 2], above[:, 2]])
            if reverse:
                p = p[:, ::-1]  # scored backwards
            score = np.arange(1, 5)
            m = p @ score
            cond_mean.append(m)
            cond_var.append(p @ score**2 - m**2)
            pmfs.append(p)
            pct[item] = float(100 * stats.norm.cdf(sign * loading * mu - cuts[1]))
        cm, cv = np.array(cond_mean), np.array(cond_var)
        mean_item = cm @ weights
        cov = np.cov(cm, aweights=weights, bias=True) + np.diag(cv @ weights)
        alpha = k / (k - 1) * (1 - np.trace(cov) / cov.sum())
        total_mean = float(mean_item.sum() / k)
        total_var = float(cov.sum() / k**2)
        # distribution of the sum of item scores (k..4k), averaged over theta
        dist = np.zeros(3 * k + 1)
        for t, w in enumerate(weights):
            conv = np.array([1.0])
            for p in pmfs:
                conv = np.convolve(conv, p[t])
            dist += w * conv
        dists[wave] = dist
        out["waves"][wave] = {"pct_agree": pct, "mean": total_mean,
                              "sd": float(np.sqrt(total_var)), "alpha": float(alpha)}
    b, a = cfg["waves"]["before"], cfg["waves"]["after"]
    wb, wa = out["waves"][b], out["waves"][a]
    out["difference"] = wa["mean"] - wb["mean"]
    out["g"] = out["difference"] / float(np.sqrt((wb["sd"] ** 2 + wa["sd"] ** 2) / 2))
    cdf_b = np.cumsum(dists[b])
    below = np.concatenate([[0.0], cdf_b[:-1]])
    out["superiority"] = float(dists[a] @ (below + dists[b] / 2))
    return out


def _audit(rng: np.random.Generator, schools: pd.DataFrame) -> pd.DataFrame:
    """Baseline and follow-up ratings of the five SEND-review areas in each programme
    school (long: one row per school, area and timepoint)."""
    cfg = TRUE_EFFECTS["audit"]
    levels = np.array(cfg["levels"])
    prog = schools[schools["group"] == "programme"].reset_index(drop=True)
    areas = list(cfg["baseline_probs"])
    names = {a["id"]: a["label"] for a in AUDIT["areas"]}
    rows = []
    for _, sch in prog.iterrows():
        chosen = set(rng.choice(areas, cfg["areas_chosen_per_school"], replace=False))
        for area in areas:
            base = int(rng.choice(3, p=cfg["baseline_probs"][area]))
            up = cfg["up_chosen"] if area in chosen else cfg["up_other"]
            u = rng.random()
            follow = (base + 1 if base < 2 and u < up else
                      base - 1 if base > 0 and u > 1 - cfg["down"] else base)
            for timepoint, level in (("baseline", base), ("follow_up", follow)):
                rows.append({"School ID": sch["school_id"], "School Name": sch["name"],
                             "Area": names[area], "Timepoint": timepoint,
                             "Rating": levels[level],
                             "Priority Area": "Y" if area in chosen else "N"})
    return pd.DataFrame(rows)


def audit_truth() -> dict:
    """The true values of the demo audit, exactly from the generating model.

    Per area: ``mean_change`` (expected change in level, levels coded 0-2) and
    ``up_share`` (P(moved up) / P(moved up or down): the sign test's estimand); overall
    ``mean_change`` (mean over areas: each school's mean change has this expectation) and
    ``chosen_minus_other`` (expected difference between a school's mean change in its
    chosen areas and in its others). Choice is at random, so a chosen area is any area
    with probability 2/5.
    """
    cfg = TRUE_EFFECTS["audit"]
    share = cfg["areas_chosen_per_school"] / len(cfg["baseline_probs"])
    up_any = share * cfg["up_chosen"] + (1 - share) * cfg["up_other"]
    out: dict = {"areas": {}}
    gaps = []
    for area, p in cfg["baseline_probs"].items():
        can_up, can_down = p[0] + p[1], p[1] + p[2]
        p_up = up_any * can_up
        # one uniform draw: up if below `up`, down if above 1 - `down` (never both)
        p_down = cfg["down"] * can_down
        out["areas"][area] = {"mean_change": p_up - p_down, "up_share": p_up / (p_up + p_down)}
        gaps.append((cfg["up_chosen"] - cfg["up_other"]) * can_up)
    out["mean_change"] = float(np.mean([v["mean_change"] for v in out["areas"].values()]))
    out["chosen_minus_other"] = float(np.mean(gaps))
    return out


# --------------------------------------------------------------------------- entry points


def generate(out_dir: Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Write the synthetic demo files to ``out_dir``; return source name -> path.

    The same ``seed`` gives byte-identical files. Each table uses its own child random
    stream, so changing one table's generator leaves the other tables unchanged.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # New tables take new streams at the end: SeedSequence children are numbered, so the
    # earlier tables' streams (and files) are unchanged by adding one.
    names = ("schools", "pupils", "scores", "exclusions", "referrals", "attendance", "suspensions",
             "survey", "audit")
    streams = np.random.SeedSequence(seed).spawn(len(names))
    rng = {name: np.random.default_rng(s) for name, s in zip(names, streams, strict=True)}
    days = school_days()
    schools = _schools(rng["schools"])
    pupils = _pupils(rng["pupils"], schools)
    scores = _scores(rng["scores"], pupils, schools, days)
    exclusions = _exclusions(rng["exclusions"], schools)
    ref, interv, rev = _referral_tables(rng["referrals"], pupils, days)
    attendance = _attendance(rng["attendance"], ref, days)
    suspensions = _suspensions(rng["suspensions"], pupils, ref, days)
    survey = _survey(rng["survey"], schools)
    audit = _audit(rng["audit"], schools)
    # interventions and reviews share the referrals stream: they are drawn together.

    paths = {name: out_dir / fname for name, fname in FILE_NAMES.items()}
    pupil_out = pd.DataFrame(
        {
            "UPN": pupils["pupil_id"],
            "Forename": pupils["first_name"],
            "Surname": pupils["surname"],
            "Date of Birth": pupils["date_of_birth"],
            "School ID": pupils["school_id"],
            "School Name": pupils["school_name"],
            "Year Group": pupils["year_group"].astype(int),
            "Gender": pupils["sex"],
            "SEN Status": pupils["sen_status"],
            "FSM Eligible": _yn(pupils["fsm"].to_numpy()),
            "EAL": _yn(pupils["eal"].to_numpy()),
            "Ethnicity": pupils["ethnicity"],
            "Ethnicity (Minor)": pupils["ethnicity_minor"],
            "Programme Group": pupils["group"],
        }
    )
    _write_xlsx(pupil_out, paths["pupils"], "Pupils", {"Date of Birth"})
    _write_csv(
        pd.DataFrame(
            {
                "UPN": scores["pupil_id"],
                "Measure": scores["measure"],
                "Timepoint": scores["timepoint"],
                "Score": scores["score"],
                "Date Assessed": _uk(scores["date"]).to_numpy(),
            }
        ),
        paths["scores"],
    )
    _write_csv(exclusions, paths["exclusions"])
    _write_csv(
        pd.DataFrame(
            {
                "Referral ID": ref["referral_id"],
                "UPN": ref["pupil_id"],
                "School ID": ref["school_id"],
                "Date of Referral": _uk(ref["referral_date"]).to_numpy(),
                "Reason for Referral": ref["reason"],
                "Date of First Response": _uk(ref["first_response_date"]).to_numpy(),
                "Lead Professional": ref["lead_professional"],
                "Date Closed": _uk(ref["closure_date"]).to_numpy(),
                "Closure Outcome": ref["closure_outcome"],
            }
        ),
        paths["referrals"],
    )
    _write_csv(interv, paths["interventions"])
    _write_csv(rev, paths["reviews"])
    _write_csv(attendance, paths["attendance"])
    _write_csv(suspensions, paths["suspensions"])
    _write_csv(survey, paths["survey_responses"])
    _write_csv(audit, paths["audit_ratings"])
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m evaluation.demo [OUT_DIR]`` (default data/raw/demo)."""
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else DEFAULT_OUT_DIR
    paths = generate(out_dir)
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
