"""The constants of the KPI definitions (shared/spec/kpis.md), once for every service, query and dashboard.

The KPI stream's formulas, its SQL counters, the dashboard views, the Grafana panels, the simulator and HR's
planner all read these; SQL that cannot import them (the migrations) is checked against them by a test.
"""

from __future__ import annotations

from collections.abc import Iterable

# kpis.md 21: T of the service level and its goal when a queue has no settings ("80 % in 20 s").
SL_THRESHOLD_S = 20.0
SL_GOAL_PCT = 80.0
# kpis.md "short abandon": abandoned after waiting at most this long (default 20 s, per queue).
SHORT_ABANDON_S = 20.0
# kpis.md 17: a repeat call from the same caller on the same topic within this window undoes a resolution.
FCR_WINDOW_S = 72 * 3600.0
# kpis.md "offered": calls that reached the ACD; these outcomes did not (blocked, ended in the IVR).
NOT_OFFERED = frozenset({"blocked", "ivr_handled", "ivr_abandoned"})


def sql_strings(values: Iterable[str]) -> str:
    """A SQL list of string literals, sorted: `('a', 'b')`."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) + ")"


NOT_OFFERED_SQL = sql_strings(NOT_OFFERED)
