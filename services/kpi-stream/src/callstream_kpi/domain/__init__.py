"""Pure domain of the KPI stream: no I/O, event time only (architecture.md, "Time")."""
