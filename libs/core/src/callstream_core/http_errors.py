"""Error answers every HTTP API renders the same way, whatever the request held.

FastAPI's own 422 and HTTPException answers echo the input back; a JSON body with a lone surrogate
(`"\\ud800"`, legal JSON, not encodable as UTF-8) made that echo a 500 instead of the 422. These handlers
write the same bodies as ASCII JSON (`\\uXXXX` escapes), which every input can be written as.
"""

from __future__ import annotations

import json
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


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return AsciiJSONResponse({"detail": jsonable_encoder(exc.detail)}, status_code=exc.status_code,
                             headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """422 and HTTPException answers as ASCII JSON (bodies otherwise as FastAPI writes them)."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
