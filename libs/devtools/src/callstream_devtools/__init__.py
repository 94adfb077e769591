"""Callstream's development tooling: the local Kafka broker, PostgreSQL and Asterisk, the routed test center,
router processes and test helpers. Used by the tests, the benches and the CLI; no service's runtime imports it
(tests/test_import_layers.py checks that)."""
