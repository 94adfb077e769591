"""What every HR use case shares: who calls, which team they may see, periods and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from callstream_core.db import now
from callstream_hr.adapters.models import AuditLog, Employee
from callstream_hr.service_layer.errors import Forbidden, Invalid, NotFound
from callstream_hr.service_layer.unit_of_work import UnitOfWork

# Roles that see personal data (names, contacts, exit reasons, absence reasons); admins see it too.
PERSONAL_ROLES = ("hr", "manager")


@dataclass(frozen=True)
class Caller:
    """Who calls: the bearer token's subject and role, and for a team lead the team of their token
    (TEAM_LEAD_SCOPES; None when the token has none)."""

    subject: str
    role: str
    team: str | None = None


def team_scope(caller: Caller) -> str | None:
    """None = every team; a team id for a team lead (only their own team)."""
    if caller.role != "team_lead":
        return None
    if caller.team is None:
        raise Forbidden("this team-lead token has no team (TEAM_LEAD_SCOPES)")
    return caller.team


def visible_team(caller: Caller, team_id: str | None) -> str | None:
    """The team a request may see: what it asked for (None = all), or the team lead's own team."""
    scope = team_scope(caller)
    if scope is None:
        return team_id
    if team_id not in (None, scope):
        raise Forbidden(f"a team lead sees only team {scope!r}")
    return scope


def audit(uow: UnitOfWork, caller: Caller, action: str, target: str) -> None:
    """Record a read or change of personal data (kept with the unit of work's commit)."""
    uow.audit.add(AuditLog(at=now(), subject=caller.subject, role=caller.role, action=action, target=target[:200]))


def employee(uow: UnitOfWork, employee_id: str, *, for_update: bool = False) -> Employee:
    found = uow.employees.get(employee_id, for_update=for_update)
    if found is None:
        raise NotFound(f"employee {employee_id!r} not found")
    return found


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise Invalid(f"{name} needs a timezone (e.g. 2026-11-02T00:00:00Z)")
    return moment.astimezone(UTC)


def period(start: datetime, end: datetime, max_days: int = 366) -> tuple[datetime, datetime]:
    """A query period [from, to): both with a timezone, to after from, at most `max_days` long."""
    begin, finish = aware(start, "from"), aware(end, "to")
    if finish <= begin:
        raise Invalid("to must be after from")
    if finish - begin > timedelta(days=max_days):
        raise Invalid(f"a period covers at most {max_days} days")
    return begin, finish


def midnight(day: date) -> datetime:
    """Event time of a dated HR fact (hire, change, leaving): 00:00 UTC of that day."""
    return datetime.combine(day, datetime.min.time(), UTC)
