"""The KPI stream's use cases: the stream of events into facts, contacts, real-time figures and alerts
(`pipeline`), and KPI reports by scope, grain and period (`reports`)."""
