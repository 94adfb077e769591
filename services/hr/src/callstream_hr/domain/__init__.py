"""Workforce-planning domain (pure, no I/O): Erlang staffing, seasonal forecasting, shift planning."""

from callstream_hr.domain.erlang import (
    QueueMetrics,
    StaffingResult,
    erlang_a_metrics,
    erlang_b,
    erlang_c,
    erlang_c_asa,
    erlang_c_metrics,
    erlang_c_service_level,
    occupancy,
    required_agents,
    traffic_intensity,
)
from callstream_hr.domain.forecast import (
    SLOTS_PER_WEEK,
    Forecast,
    HoldoutAccuracy,
    SeasonalForecaster,
    WeeklyHistory,
    evaluate_holdout,
    mape,
    wape,
)
from callstream_hr.domain.shifts import BreakRule, ShiftAssignment, ShiftPlan, ShiftTemplate, plan_shifts

__all__ = [
    "SLOTS_PER_WEEK",
    "BreakRule",
    "Forecast",
    "HoldoutAccuracy",
    "QueueMetrics",
    "SeasonalForecaster",
    "ShiftAssignment",
    "ShiftPlan",
    "ShiftTemplate",
    "StaffingResult",
    "WeeklyHistory",
    "erlang_a_metrics",
    "erlang_b",
    "erlang_c",
    "erlang_c_asa",
    "erlang_c_metrics",
    "erlang_c_service_level",
    "evaluate_holdout",
    "mape",
    "occupancy",
    "plan_shifts",
    "required_agents",
    "traffic_intensity",
    "wape",
]
