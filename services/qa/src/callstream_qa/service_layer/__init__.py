"""QA's use cases, one module per resource: `forms`, `evaluations` (states, disputes, reviews, coaching items),
`sampling` (plans, coverage), `calibration`, `reports` (KPI 12, the controller's figures); `common` (errors, UTC);
`unit_of_work` (the storage they need). Each takes a unit of work, commits what it changes (with its outbox
events) and raises domain errors before changing anything it refuses."""
