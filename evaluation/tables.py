"""The kit's table schemas: which columns each kind of table may hold, and their types.

This is the allow-list of intake (``evaluation.intake``): a column of a school's export
reaches ``data/processed/`` or a report only if, after the project's column mapping, it is
one of the columns below. It lives in its own module so that the parameters
(``evaluation.params``) can check column names without importing intake.
See ``docs/tables.md`` for the same list written for people.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE_KINDS: tuple[str, ...] = (
    "pupils",
    "scores",
    "exclusions",
    "referrals",
    "interventions",
    "reviews",
    "attendance",
    "suspensions",
    "survey_responses",
    "audit_ratings",
)

SEN_STATUSES = ["none", "SEN support", "EHC plan"]
ETHNIC_GROUPS = [
    "White",
    "Mixed",
    "Asian",
    "Black",
    "Chinese",
    "Any other ethnic group",
    "Unclassified",
]
#: The DfE's minor ethnic groups (school census), the default coded list of
#: ``ethnicity_minor``; a project may declare its own list under ``categories:``.
ETHNIC_MINOR_GROUPS: tuple[str, ...] = (
    "White British", "White Irish", "Traveller of Irish heritage", "Gypsy/Roma",
    "Any other White background", "White and Black Caribbean", "White and Black African",
    "White and Asian", "Any other Mixed background", "Indian", "Pakistani", "Bangladeshi",
    "Any other Asian background", "Black Caribbean", "Black African",
    "Any other Black background", "Chinese", "Any other ethnic group", "Unclassified",
)
#: How a referral can close: needs met, or one of the escalations (in that order).
CLOSURE_OUTCOMES: tuple[str, ...] = (
    "needs met", "EHC needs assessment", "alternative provision", "school move",
)


@dataclass(frozen=True)
class Col:
    """One column of a kit table: its type, whether it must be present, and its checks.

    ``free_text``: schools type anything into such a column (names, notes), so intake keeps
    it only as a coded category: the project's ``categories:`` list, else ``allowed`` if the
    kit has a default list; without either it is dropped (or refused when required).
    ``pseudonym``: the values name people (pupils, staff) and are replaced at intake by
    keyed pseudonyms starting with this letter.
    """

    name: str
    type: str  # "str", "date", "bool", "int", "float"
    required: bool = False
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    free_text: bool = False
    pseudonym: str | None = None
    identifier: bool = False


def _id(name: str, pseudonym: str | None = None) -> Col:
    return Col(name, "str", required=True, nullable=False, pseudonym=pseudonym, identifier=True)


TABLES: dict[str, list[Col]] = {
    "pupils": [
        _id("pupil_id", pseudonym="P"),
        _id("school_id"),
        Col("year_group", "int", min=-2, max=14),  # N1 = -2, N2 = -1, Reception = 0
        Col("sex", "str", allowed=("F", "M")),
        Col("sen_status", "str", allowed=tuple(SEN_STATUSES)),
        Col("fsm", "bool"),
        Col("eal", "bool"),
        Col("ethnicity", "str", allowed=tuple(ETHNIC_GROUPS)),
        Col("ethnicity_minor", "str", allowed=ETHNIC_MINOR_GROUPS, free_text=True),
        Col("group", "str"),
    ],
    "scores": [
        _id("pupil_id", pseudonym="P"),
        _id("measure"),
        Col("timepoint", "str", required=True, nullable=False, allowed=("baseline", "follow_up")),
        Col("score", "float", required=True, nullable=False),
        Col("date", "date"),
        Col("school_id", "str"),
    ],
    "exclusions": [
        _id("school_id"),
        Col("period_start", "date", required=True, nullable=False),
        # Official statistics suppress cells and show 0 headcount for a local authority
        # before it existed: intake keeps such rows and the ITS names them per unit.
        Col("roll", "int", required=True, min=0),
        Col("suspensions", "int", required=True, min=0),
        Col("permanent_exclusions", "int", min=0),
        Col("group", "str"),
        Col("term", "str"),
        Col("academic_year", "str"),
    ],
    "referrals": [
        _id("referral_id"),
        _id("pupil_id", pseudonym="P"),
        Col("school_id", "str"),
        Col("referral_date", "date", required=True, nullable=False),
        Col("reason", "str", free_text=True),
        Col("first_response_date", "date"),
        # Staff names: the tracking report only needs whether one is named.
        Col("lead_professional", "str", pseudonym="S"),
        Col("closure_date", "date"),
        Col("closure_outcome", "str", allowed=tuple(CLOSURE_OUTCOMES)),
    ],
    "interventions": [
        _id("intervention_id"),
        _id("referral_id"),
        Col("intervention", "str", required=True, nullable=False, free_text=True),
        Col("start_date", "date", required=True, nullable=False),
        Col("end_date", "date"),
        Col("sessions_planned", "int", min=0),
        Col("sessions_attended", "int", min=0),
        Col("cost", "float", min=0),
    ],
    "reviews": [
        _id("review_id"),
        _id("referral_id"),
        Col("review_date", "date", required=True, nullable=False),
        Col("attendance_improved", "bool"),
        Col("ready_to_learn", "bool"),
        Col("on_track", "bool"),
    ],
    "attendance": [
        _id("pupil_id", pseudonym="P"),
        Col("week_start", "date", required=True, nullable=False),
        Col("possible_sessions", "int", required=True, nullable=False, min=0, max=10),
        Col("attended_sessions", "int", required=True, nullable=False, min=0, max=10),
    ],
    "suspensions": [
        _id("pupil_id", pseudonym="P"),
        Col("school_id", "str"),
        Col("date", "date", required=True, nullable=False),
        Col("kind", "str", allowed=("suspension", "permanent")),
        Col("days", "float", min=0),
    ],
    # One row per answer: `response_id` ties the answers of one questionnaire together (a
    # form's row, not a person); `response` holds a level of the item's response scale
    # (checked against the survey's definition by evaluation.surveys). Free-text answers
    # have no kit column, so they are dropped at intake and never read.
    "survey_responses": [
        _id("response_id"),
        Col("wave", "str", required=True, nullable=False),
        Col("item", "str", required=True, nullable=False),
        Col("response", "str"),
        Col("school_id", "str"),
        # only in identified surveys (the paired design): a keyed pseudonym like other ids
        Col("pupil_id", "str", pseudonym="P", identifier=True),
        Col("survey", "str"),
        Col("date", "date"),
    ],
    # One row per school, area (and statement) and timepoint of a self-evaluation audit;
    # `rating` is a level the audit names (evaluation.audits checks it).
    "audit_ratings": [
        _id("school_id"),
        Col("area", "str", required=True, nullable=False),
        Col("timepoint", "str", required=True, nullable=False, allowed=("baseline", "follow_up")),
        Col("rating", "str", required=True, nullable=False),
        Col("item", "str"),
        Col("chosen", "bool"),
        Col("audit", "str"),
        Col("date", "date"),
    ],
}

# Rows that must be unique in each table (a duplicate pupil is an error, not a guess).
UNIQUE: dict[str, list[str]] = {
    "pupils": ["pupil_id"],
    "scores": ["pupil_id", "measure", "timepoint"],
    "exclusions": ["school_id", "period_start"],
    "referrals": ["referral_id"],
    "interventions": ["intervention_id"],
    "reviews": ["review_id"],
    "attendance": ["pupil_id", "week_start"],
    "survey_responses": ["wave", "response_id", "item"],
}


def column(kind: str, name: str) -> Col | None:
    """The column ``name`` of the table kind ``kind``, or None if the kind has no such
    column."""
    return next((c for c in TABLES.get(kind, []) if c.name == name), None)


def categories_problem(kind: str, name: str) -> str | None:
    """Why ``name`` cannot take a declared list of categories in a ``kind`` table (None if
    it can): it must be a text column that is neither an id nor one with a fixed list."""
    col = column(kind, name)
    if col is None:
        known = ", ".join(c.name for c in TABLES[kind])
        return f"'{name}' is not a column of the {kind} table (columns: {known})"
    if col.type != "str" or col.identifier or col.pseudonym:
        return f"'{name}' is not a text column that holds categories"
    if col.allowed is not None and not col.free_text:
        return (f"'{name}' already has a fixed list of values ({', '.join(col.allowed)}); "
                "remove it from categories")
    return None


#: Suspensions per pupil on roll in one period above which a count is refused as an entry
#: error. The highest local-authority rate in the DfE's LAIT exclusions series 2015/16 to
#: 2023/24 (/work/shared/reference/dfe_exclusions_la_2015-16_2023-24.csv, "SpecFixedEx")
#: is 289.55 suspensions per 100 pupils in a year (special schools in Newham, 2017/18);
#: the bound leaves room for a single school far above any local authority's average,
#: while 5,000 suspensions in a school of 264 pupils (19 each) is refused. A project whose
#: school really exceeds it sets `max_suspensions_per_pupil:` on the data source.
SUSPENSIONS_PER_PUPIL = 5.0


#: The column a wide sheet's cells fill when its `wide:` entries do not say (``into:``).
WIDE_VALUE: dict[str, str] = {"scores": "score", "exclusions": "suspensions",
                               "survey_responses": "response"}


def recode_problem(kind: str, name: str) -> str | None:
    """Why ``recode:`` cannot name ``name`` in a ``kind`` table (None if it can)."""
    col = column(kind, name)
    if col is None:
        known = ", ".join(c.name for c in TABLES[kind] if not c.pseudonym)
        return (f"'{name}' is not a column of the {kind} table (recode names the kit's "
                f"column, after the column mapping; columns: {known})")
    if col.pseudonym:
        return f"'{name}' holds identifiers, which are never recoded"
    return None


def wide_problem(kind: str, wide: dict[str, dict], mapped: dict[str, str]) -> str | None:
    """Why a ``wide:`` block cannot describe a ``kind`` table (None if it can): every entry
    names kit columns with the values its cells belong to, all entries the same columns,
    and no two entries the same values (a term entered twice would be counted twice)."""
    if not wide:
        return None
    names = {c.name: c for c in TABLES[kind]}
    keysets = set()
    seen: dict[tuple, str] = {}
    for header, entry in wide.items():
        if header in mapped:
            return (f"'{header}' is under both `columns:` and `wide:`; keep it in one")
        if not isinstance(entry, dict) or not entry:
            return f"'{header}': give the kit values of its cells, e.g. {{timepoint: baseline}}"
        into = entry.get("into", WIDE_VALUE.get(kind))
        if into is None:
            return (f"'{header}': say which column of the {kind} table its cells fill with "
                    "`into: <column>`")
        for name in [*[k for k in entry if k != "into"], into]:
            col = names.get(str(name))
            if col is None:
                known = ", ".join(names)
                return f"'{header}': '{name}' is not a column of the {kind} table ({known})"
            if col.pseudonym:
                return f"'{header}': '{name}' holds identifiers; map it under `columns:`"
        if into in entry:
            return f"'{header}': '{into}' is both given a value and filled by the cells"
        keysets.add(frozenset(k for k in entry if k != "into"))
        key = (tuple(sorted((str(k), str(v)) for k, v in entry.items() if k != "into")), into)
        if key in seen:
            shown = ", ".join(f"{k}: {v}" for k, v in key[0])
            return (f"'{seen[key]}' and '{header}' are both {shown} ({into}): a period or "
                    "timepoint entered twice would be counted twice; keep one")
        seen[key] = header
    if len(keysets) > 1:
        return ("every entry must give the same columns (e.g. each a measure and a "
                "timepoint), so each row of the file becomes whole rows of the table")
    return None
