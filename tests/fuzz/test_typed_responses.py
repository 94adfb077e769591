"""Every QA and HR route that needs a token names its answer's model in the OpenAPI (issue 15: no untyped
dict responses), so clients and the fuzz see each field; health, readiness and metrics are left out."""

from __future__ import annotations

import json

import pytest
from openapi_cases import operations

from conftest import Service

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["qa", "hr"])
def test_every_answer_is_a_named_model(services: dict[str, Service], name: str) -> None:
    untyped = []
    routes = [op for op in operations(services[name].spec) if op.roles is not None]
    for operation in routes:
        success = [r for code, r in operation.spec["responses"].items() if code.startswith("2")]
        schemas = [r.get("content", {}).get("application/json", {}).get("schema", {}) for r in success]
        if not schemas or not all("$ref" in json.dumps(schema) for schema in schemas):
            untyped.append(f"{operation}: {schemas}")
    assert routes
    assert not untyped, "\n".join(untyped)
