"""Attrition (KPI 23) from the employment history."""

from __future__ import annotations

from dataclasses import dataclass

from callstream_hr.domain.people import attrition as attr
from callstream_hr.service_layer.errors import Invalid
from callstream_hr.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Attrition:
    total: attr.AttritionFigure
    by: dict[str, attr.AttritionFigure] | None


def attrition(uow: UnitOfWork, period: str, year: int, index: int, by: str | None,
              agents_only: bool) -> Attrition:
    """Leavers over average FTE in a month, quarter or year; `by` exit reason or team lead."""
    try:
        start, end = attr.period_bounds(period, year, index)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    # Stints from the employment history: a promotion out of the agent role or a move to another
    # team ends a stint without counting as a leaver.
    emps = uow.employees.hired_before(end)
    history = [attr.Placement(r.employee_id, r.effective_on, r.change, r.role, r.team_lead_id)
               for r in uow.history.of_hired_before(end)]
    tenures = attr.stints(history, {e.id: e.fte for e in emps}, {e.id: e.exit_reason for e in emps},
                          "agent" if agents_only else None)
    split = None
    if by:
        split = attr.attrition_by(tenures, start, end, "exit_reason" if by == "exit_reason" else "team_lead_id")
    return Attrition(attr.attrition(tenures, start, end), split)
