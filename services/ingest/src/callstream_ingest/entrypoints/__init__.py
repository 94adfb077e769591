"""Entry points: the webhook API, the ingest process and the ARI bridge's process."""
