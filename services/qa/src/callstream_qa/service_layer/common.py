"""What the QA use cases share: their errors (the HTTP layer maps them to 404 / 409) and stored times read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime


class NotFound(LookupError):
    pass


class Conflict(Exception):
    pass


def utc(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: every stored time is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
