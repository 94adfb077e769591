"""The one bearer check of every API (issue 17 item 9): right principal, and every known token compared in
constant time whatever the answer (the count of hmac.compare_digest calls, not a timing)."""

from __future__ import annotations

import pytest

from callstream_core.auth import BearerTokens, TokenTable
from callstream_devtools.testing import compared_tokens

TOKENS = {"token-of-the-manager": "manager", "token-of-the-service": "service", "token-of-the-agent-1": "agent"}


@pytest.mark.parametrize("given", ["token-of-the-manager", "token-of-the-agent-1", "token-of-the-nobody", ""])
def test_every_known_token_is_compared_with_compare_digest(given: str) -> None:
    with compared_tokens() as compared:
        principal = BearerTokens(TOKENS).authenticate(given)
    assert (principal.role if principal else None) == TOKENS.get(given)
    assert sorted(compared) == sorted(t.encode() for t in TOKENS)  # no early exit on a match


def test_headers() -> None:
    tokens = BearerTokens(TOKENS)
    assert tokens.from_header("Bearer token-of-the-service").role == "service"  # type: ignore[union-attr]
    assert tokens.from_header("bearer token-of-the-service").role == "service"  # type: ignore[union-attr]
    for header in ("", "Bearer", "Bearer ", "Basic token-of-the-service", "token-of-the-service"):
        assert tokens.from_header(header) is None, header


@pytest.mark.parametrize("given", ["lead-token-of-team-a", "lead-token-of-team-b", "lead-token-of-nobody"])
def test_token_table_compares_every_known_token(given: str) -> None:
    """A team lead's team (HR) and a QA user's binding are looked up the same way as a role."""
    teams = {"lead-token-of-team-a": "team-a", "lead-token-of-team-b": "team-b"}
    with compared_tokens() as compared:
        team = TokenTable(teams).get(given)
    assert team == teams.get(given)
    assert sorted(compared) == sorted(t.encode() for t in teams)
