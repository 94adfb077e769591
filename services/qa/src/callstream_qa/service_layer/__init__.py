"""QA's use cases, one module per resource: `forms`, `evaluations` (states, disputes, reviews, coaching items),
`sampling` (plans, coverage), `calibration`, `reports` (KPI 12, the controller's figures); `common` (errors, UTC).
Each runs in the caller's transaction (session) and raises domain errors."""
