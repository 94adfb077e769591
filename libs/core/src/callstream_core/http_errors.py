"""Error answers every HTTP API renders the same way, whatever the request held.

FastAPI's own 422 and HTTPException answers echo the input back; a JSON body with a lone surrogate
(`"\\ud800"`, legal JSON, not encodable as UTF-8) or a NaN (Python's json reads it, strict JSON cannot
write it) made that echo a 500 instead of the 422. These handlers write the same bodies as ASCII JSON
(`\\uXXXX` escapes), with non-finite numbers as strings and the echo cut below a few levels.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class AsciiJSONResponse(JSONResponse):
    """JSON written with ensure_ascii: any str, lone surrogates included, has an ASCII spelling."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


# How deep the echo of an invalid input goes: enough to see the value, bounded for a hostile nesting.
_ECHO_DEPTH = 6


def _echo(value: Any, depth: int = 0) -> Any:
    """`value` as JSON can write it: non-finite floats as strings, nesting below _ECHO_DEPTH as "...". """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list):
        if depth >= _ECHO_DEPTH:
            return "..."
        if isinstance(value, dict):
            return {str(k): _echo(v, depth + 1) for k, v in value.items()}
        return [_echo(v, depth + 1) for v in value]
    return value


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{**error, "input": _echo(error["input"])} if "input" in error else error for error in exc.errors()]
    return AsciiJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return AsciiJSONResponse({"detail": jsonable_encoder(exc.detail)}, status_code=exc.status_code,
                             headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """422 and HTTPException answers as ASCII JSON (bodies otherwise as FastAPI writes them)."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
