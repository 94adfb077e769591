"""Entry points: the webhook API."""
