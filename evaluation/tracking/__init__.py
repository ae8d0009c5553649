"""Intervention tracking for referred pupils: the register and its data-quality checks,
pathway KPIs, case flow, outcomes and costs, pupil-level change and disproportionality.

The results (:class:`PathwayKpis`, :class:`ProportionResult`, :class:`AttendanceChange`,
:class:`SurvivalResult`, :class:`RiskRatios`) follow
:class:`evaluation.results.AnalysisResult`; the tables (caseload, funnel, costs, quality)
are plain DataFrames.

The tables come from intake (see ``docs/tables.md``): ``referrals``, ``interventions``,
``reviews`` and optionally ``pupils``, ``attendance`` and ``suspensions``. Terms, academic
years, weeks and working days are those of :mod:`evaluation.calendar`.
"""

from evaluation.intake import CLOSURE_OUTCOMES
from evaluation.params import KPI_ALIASES, KPIS
from evaluation.tracking.equity import (
    RiskRatios,
    disproportionality,
    disproportionality_table,
    disproportionality_tables,
)
from evaluation.tracking.flow import caseload, funnel, time_open
from evaluation.tracking.kpis import (
    SHARE_KPIS,
    PathwayKpis,
    kpi_direction,
    kpi_sentences,
    pathway_kpis,
    period_label,
)
from evaluation.tracking.outcomes import (
    ProportionResult,
    costs,
    needs_met,
    outcomes_by,
    wilson_interval,
)
from evaluation.tracking.pupils import (
    AttendanceChange,
    PupilAnalyses,
    SurvivalResult,
    attendance_around_start,
    attendance_by_week,
    attendance_change,
    event_study,
    plot_km,
    pupil_starts,
    suspensions_around_start,
    time_to_event,
)
from evaluation.tracking.quality import QUALITY_COLUMNS, quality_summary
from evaluation.tracking.register import (
    ESCALATION_OUTCOMES,
    MENU,
    REVIEW_OUTCOMES,
    Register,
    build_register,
)

__all__ = [
    "CLOSURE_OUTCOMES", "ESCALATION_OUTCOMES", "KPI_ALIASES", "KPIS", "MENU",
    "QUALITY_COLUMNS", "REVIEW_OUTCOMES", "SHARE_KPIS", "AttendanceChange", "PathwayKpis",
    "ProportionResult", "PupilAnalyses", "Register", "RiskRatios", "SurvivalResult",
    "attendance_around_start", "attendance_by_week", "attendance_change", "build_register",
    "caseload", "costs", "disproportionality", "disproportionality_table",
    "disproportionality_tables", "event_study", "funnel", "kpi_direction", "kpi_sentences",
    "needs_met", "outcomes_by", "pathway_kpis", "period_label", "plot_km", "pupil_starts",
    "quality_summary", "suspensions_around_start", "time_open", "time_to_event",
    "wilson_interval",
]
