"""Requests generated from a service's OpenAPI document with hypothesis: every operation, its path and query
parameters and JSON body drawn from their schemas, mixed with values chosen to break things (dates at the ends
of the calendar, huge numbers, deep nesting, lone surrogates, wrong types)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import strategies as st

METHODS = ("get", "post", "put", "patch", "delete")
# Values that broke Callstream's services before (issue 17) or break services in general.
EDGE_DATES = ["0001-01-01", "0001-01-01T00:00:00Z", "9999-12-31", "9999-12-31T23:59:59.999999Z",
              "1970-01-01T00:00:00Z", "2300-01-01T00:00:00+14:00", "2026-11-02T09:30:00Z", "2026-11-02",
              "1969-12-31T23:59:59-12:00", "2026-02-30", "not a date"]
EDGE_TEXT = ["", " ", "0", "-1", "NaN", "Infinity", "1e309", "null", "../..", "%00", "\x00", "a" * 1000,
             "'; DROP TABLE x; --", "\u202e", "😀", *EDGE_DATES]
EDGE_NUMBERS = [0, -1, 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30]
# A string JSON can carry that UTF-8 cannot encode: only in bodies (a URL cannot carry it).
LONE_SURROGATES = ["\ud800", "x\udfff", "\udc00\ud800"]

_plain_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=24)


def _json_values(max_leaves: int = 8) -> st.SearchableStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _plain_text
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_plain_text, inner,
                                                                                             max_size=3),
                        max_leaves=max_leaves)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def roles(self) -> frozenset[str] | None:
        """The roles the OpenAPI lists for the bearer scheme (None: the route needs no token)."""
        security = self.spec.get("security")
        if not security:
            return None
        return frozenset(role for requirement in security for roles in requirement.values() for role in roles)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


@dataclass
class Case:
    operation: Operation
    path: str
    query: dict[str, Any] = field(default_factory=dict)
    body: bytes | None = None

    def send(self, client: httpx.Client, token: str | None) -> int:
        """The response status; an event stream is closed once its status is known."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        with client.stream(self.operation.method.upper(), self.path, params=self.query, content=self.body,
                           headers=headers) as response:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                response.read()
            return response.status_code

    def __str__(self) -> str:
        body = self.body[:300] if self.body is not None else None
        return f"{self.operation.method.upper()} {self.path} query={self.query!r} body={body!r}"


def operations(spec: dict[str, Any]) -> list[Operation]:
    return [Operation(method, path, op) for path, item in sorted(spec["paths"].items())
            for method, op in item.items() if method in METHODS]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def values(spec: dict[str, Any], schema: dict[str, Any], *, in_body: bool,
           depth: int = 0) -> st.SearchableStrategy[Any]:
    """Values for `schema`: mostly valid ones, some at its edges, some of a wrong type."""
    schema = _resolve(spec, schema)
    edge_text = EDGE_TEXT + (LONE_SURROGATES if in_body else [])
    wrong = st.sampled_from(edge_text) | st.sampled_from(EDGE_NUMBERS) | st.none()
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return st.one_of(*(values(spec, s, in_body=in_body, depth=depth) for s in schema[combinator]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | wrong
    if "const" in schema:
        return st.just(schema["const"]) | wrong
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of(*(values(spec, {**schema, "type": k}, in_body=in_body, depth=depth) for k in kind))
    if kind == "string":
        if schema.get("format") in ("date-time", "date"):
            moments = st.datetimes().map(lambda d: d.isoformat() + ("Z" if schema["format"] == "date-time" else ""))
            return st.sampled_from(EDGE_DATES) | moments | wrong
        text = _plain_text | st.text(max_size=24).map(lambda t: t + LONE_SURROGATES[0]) if in_body else _plain_text
        return text | st.sampled_from(edge_text) | wrong
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(low, high) | st.sampled_from(EDGE_NUMBERS) | wrong
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(EDGE_NUMBERS) | wrong
    if kind == "boolean":
        return st.booleans() | wrong
    if kind == "null":
        return st.none()
    if kind == "array":
        items = values(spec, schema.get("items", {}), in_body=in_body, depth=depth + 1) if depth < 4 else _json_values()
        return st.lists(items, max_size=3) | wrong
    if kind == "object" or "properties" in schema:
        if depth >= 4:
            return _json_values()
        properties = schema.get("properties", {})
        required = [p for p in schema.get("required", []) if p in properties]
        optional = {p: values(spec, s, in_body=in_body, depth=depth + 1) for p, s in properties.items()
                    if p not in required}
        shaped = st.fixed_dictionaries({p: values(spec, properties[p], in_body=in_body, depth=depth + 1)
                                        for p in required}, optional=optional)
        return shaped | st.dictionaries(_plain_text, _json_values(), max_size=3) | wrong
    return _json_values()


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def cases(spec: dict[str, Any], operation: Operation) -> st.SearchableStrategy[Case]:
    """Requests for `operation`: its parameters and body from the schema, plus hostile bodies."""
    params = [_resolve(spec, p) for p in operation.spec.get("parameters", [])]

    @st.composite
    def build(draw: st.DrawFn) -> Case:
        path = operation.path
        query: dict[str, Any] = {}
        for param in params:
            if param["in"] == "path":
                value = draw(_plain_text.filter(bool) | st.sampled_from([e for e in EDGE_TEXT if e]))
                path = path.replace("{" + param["name"] + "}", quote(str(value), safe=""))
            elif param["in"] == "query" and (param.get("required") or draw(st.booleans())):
                value = draw(values(spec, param.get("schema", {}), in_body=False))
                if value is not None:
                    query[param["name"]] = [json.dumps(v) if isinstance(v, dict | list) else v for v in value] \
                        if isinstance(value, list) else (json.dumps(value) if isinstance(value, dict) else value)
        body = None
        request_body = operation.spec.get("requestBody")
        if request_body is not None:
            content = request_body.get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            body = draw(st.one_of(
                values(spec, schema, in_body=True).map(lambda v: json.dumps(v).encode()),
                st.sampled_from([_deep(40), _deep(1000), b"[" * 5000 + b"]" * 5000, b"", b"{", b"\xff\xfe",
                                 b'{"a": NaN}', b"1e999999", b'"\\ud800"']),
            ))
        return Case(operation, path, query, body)

    return build()
