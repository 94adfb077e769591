"""Organisation shape from the handbook: a team lead with 10–15 agents, rows of 4–6 agents with a
senior operator. Sizes outside the ranges are warnings, not errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("agent", "senior_operator", "team_lead", "supervisor", "qa", "trainer", "hr")
EXIT_REASONS = ("supervisor", "work_environment", "workload_pressure", "pay", "other")
TEAM_SIZE = (10, 15)
ROW_SIZE = (4, 6)


@dataclass(frozen=True)
class Warning:
    scope: str
    id: str
    message: str


def size_warnings(team_agents: Mapping[str, int], row_agents: Mapping[str, int],
                  rows_without_senior: set[str] | None = None,
                  teams_without_lead: set[str] | None = None) -> list[Warning]:
    out: list[Warning] = []
    for team, n in sorted(team_agents.items()):
        if not TEAM_SIZE[0] <= n <= TEAM_SIZE[1]:
            out.append(Warning("team", team, f"{n} agents; a team lead should have {TEAM_SIZE[0]}–{TEAM_SIZE[1]}"))
    for row, n in sorted(row_agents.items()):
        if not ROW_SIZE[0] <= n <= ROW_SIZE[1]:
            out.append(Warning("row", row, f"{n} agents; a row should have {ROW_SIZE[0]}–{ROW_SIZE[1]}"))
    for row in sorted(rows_without_senior or ()):
        out.append(Warning("row", row, "no senior operator"))
    for team in sorted(teams_without_lead or ()):
        out.append(Warning("team", team, "no team lead"))
    return out
