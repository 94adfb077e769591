"""issue 17 item 9: the Router's gRPC token check compared tokens with a dict lookup (==); it now uses the
shared constant-time check of the HTTP APIs (callstream_core.auth.BearerTokens)."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import grpc
import pytest

from callstream_devtools.testing import compared_tokens
from callstream_routing.entrypoints.grpc_server import SERVICE, BearerAuth

TOKENS = {"service-token-0001": "service", "manager-token-001": "manager"}
ALLOWED = object()


class Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


def _outcome(interceptor: BearerAuth, metadata: tuple[tuple[str, str], ...]) -> Any:
    async def continuation(_details: Any) -> Any:
        return ALLOWED

    handler = asyncio.run(interceptor.intercept_service(continuation, Details(f"/{SERVICE}/OfferCall", metadata)))
    if handler is ALLOWED:
        return "allowed"

    class Context:
        async def abort(self, code: grpc.StatusCode, _message: str) -> None:
            raise LookupError(code)

    with pytest.raises(LookupError) as denied:
        asyncio.run(handler.unary_unary(None, Context()))
    return denied.value.args[0]


def test_router_tokens_are_compared_in_constant_time() -> None:
    interceptor = BearerAuth(TOKENS)
    cases = {"service-token-0001": "allowed", "manager-token-001": grpc.StatusCode.PERMISSION_DENIED,
             "service-token-0002": grpc.StatusCode.UNAUTHENTICATED}
    for token, expected in cases.items():
        with compared_tokens() as compared:
            assert _outcome(interceptor, (("authorization", f"Bearer {token}"),)) == expected, token
        assert sorted(compared) == sorted(t.encode() for t in TOKENS), token
    assert _outcome(interceptor, ()) == grpc.StatusCode.UNAUTHENTICATED
