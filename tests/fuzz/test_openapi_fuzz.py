"""Fuzz as a test (issue 17 item 7): requests generated from each HTTP service's own OpenAPI document, sent
to a real server; no answer may be a 5xx. Bounded: a fixed number of examples per service, derandomized so a
run is repeatable; a failure prints the request (shrunk by hypothesis)."""

from __future__ import annotations

import os

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from openapi_cases import cases, operations

from conftest import INGEST_TOKEN, SERVICES, TOKENS, Service

pytestmark = pytest.mark.integration

# Requests per service: every operation is drawn about 5-60 times (4 to 45 operations per service), about 10 s
# per service on two shared cores. FUZZ_EXAMPLES=N FUZZ_SEED=S runs a longer, different hunt by hand.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
SEED = os.environ.get("FUZZ_SEED")


@pytest.mark.parametrize("name", SERVICES)
def test_no_request_gets_a_5xx(services: dict[str, Service], name: str) -> None:
    service = services[name]
    ops = operations(service.spec)
    # The most privileged caller, so requests reach the handlers instead of stopping at the role check.
    token = INGEST_TOKEN if name == "ingest" else TOKENS["admin"]
    failures: list[str] = []

    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(data=st.data())
        @seed(int(SEED or 0))
        def run(data: st.DataObject) -> None:
            operation = data.draw(st.sampled_from(ops), label="operation")
            case = data.draw(cases(service.spec, operation), label="request")
            status = case.send(client, token)
            if status >= 500:
                failures.append(f"{status} {case}")
            assert status < 500, f"{status} for {case}"

        try:
            run()
        finally:
            print(f"{name}: {len(ops)} operations, {EXAMPLES} requests")
    assert not failures
