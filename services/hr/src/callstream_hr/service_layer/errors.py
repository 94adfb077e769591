"""Why a use case refused: the HTTP entrypoints answer each with its status and `detail` as the body."""

from __future__ import annotations

from typing import Any


class HrError(Exception):
    status = 400

    def __init__(self, detail: Any) -> None:
        super().__init__(detail)
        self.detail = detail  # a message, or a structure (per-line errors of an import, per-field errors)


class NotFound(HrError):
    status = 404


class Forbidden(HrError):
    status = 403


class Conflict(HrError):
    status = 409


class Invalid(HrError):
    status = 422


class UpstreamFailed(HrError):
    """The KPI API (history, targets) did not answer."""

    status = 502


class Unavailable(HrError):
    """A feature needs a setting that is not given (no history source)."""

    status = 503
