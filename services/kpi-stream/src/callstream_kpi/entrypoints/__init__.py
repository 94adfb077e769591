"""Entry points of the KPI stream: the worker, the KPI API and the wallboard."""
