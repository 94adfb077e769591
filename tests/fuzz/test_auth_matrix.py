"""The auth matrix (issue 17 item 7), generated from each service's OpenAPI: every route that lists bearer
roles x no token (401), an unknown token (401), each role it does not list (403) and each role it lists (neither
401 nor 403, unless the route documents a 403 of its own for some of those roles). Routes without security
(health, readiness, metrics) must answer without a token."""

from __future__ import annotations

import httpx
import pytest
from openapi_cases import Case, Operation, operations

from conftest import INGEST_TOKEN, SERVICES, TOKENS, Service

pytestmark = pytest.mark.integration


def _case(operation: Operation) -> Case:
    """A request with placeholder path parameters and no body: auth is decided before either is read."""
    path = operation.path
    for param in operation.spec.get("parameters", []):
        if param.get("in") == "path":
            path = path.replace("{" + param["name"] + "}", "x")
    return Case(operation, path, body=b"{}" if "requestBody" in operation.spec else None)


@pytest.mark.parametrize("name", SERVICES)
def test_every_route_by_every_role(services: dict[str, Service], name: str) -> None:
    service = services[name]
    wrong: list[str] = []
    checked = 0
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        for operation in operations(service.spec):
            case = _case(operation)
            roles = operation.roles
            if roles is None:
                status = case.send(client, None)
                if status in (401, 403):
                    wrong.append(f"{operation}: {status} without a token on a route without security")
                checked += 1
                continue
            expected: dict[str | None, set[int] | str] = {None: {401}, "fuzz-unknown-token-0001": {401}}
            if name == "ingest":  # one token per webhook source, no roles
                expected[INGEST_TOKEN] = "allowed"
            else:
                for role, token in TOKENS.items():
                    expected[token] = "allowed" if role in roles else {403}
            documented_403 = "403" in operation.spec.get("responses", {})
            for token, want in expected.items():
                status = case.send(client, token)
                checked += 1
                role = next((r for r, t in TOKENS.items() if t == token), token)
                if want == "allowed":
                    if status == 401 or (status == 403 and not documented_403):
                        wrong.append(f"{operation} as {role}: {status}, but the OpenAPI lists the role")
                elif status not in want:
                    wrong.append(f"{operation} as {role}: {status}, expected {sorted(want)}")
    print(f"{name}: {checked} requests")
    assert not wrong, "\n".join(wrong)
