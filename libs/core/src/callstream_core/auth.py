"""Bearer-token roles for every HTTP API (architecture.md, "Observability and security")."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from fastapi import HTTPException, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False)
V = TypeVar("V")


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str


class TokenTable(Generic[V]):
    """Values looked up by a secret token (a bearer token's role, a team lead's team, a QA user's binding).

    Constant time: every known token is compared with hmac.compare_digest and the loop never stops early, so
    response timing reveals neither how much of a token matched nor which entry did (a dict lookup would
    hash the token and compare it with one bucket's entries only)."""

    def __init__(self, table: Mapping[str, V]) -> None:
        self._entries = [(known.encode(), value) for known, value in table.items()]

    def get(self, token: str) -> V | None:
        given = token.encode()
        found: V | None = None
        for known, value in self._entries:
            if hmac.compare_digest(known, given) and found is None:
                found = value
        return found


class BearerTokens:
    """The token -> role table and the one bearer check of every API, HTTP (TokenAuth) and gRPC (routing)."""

    def __init__(self, tokens: dict[str, str]) -> None:
        # subject: the role and a short fingerprint of the token, for audit logs
        self._principals = TokenTable({known: Principal(subject=f"{role}:{known[:4]}…", role=role)
                                       for known, role in tokens.items()})

    def authenticate(self, token: str) -> Principal | None:
        """The token's principal, or None (constant time: TokenTable)."""
        return self._principals.get(token)

    def from_header(self, authorization: str) -> Principal | None:
        """The principal of an `Authorization: Bearer <token>` value (any case of "Bearer"), or None."""
        scheme, _, token = authorization.partition(" ")
        return self.authenticate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None


class TokenAuth(BearerTokens):
    """Bearer roles for FastAPI: `require(...)` gives a dependency allowing only those roles."""

    def require(self, *roles: str) -> Callable[..., Principal]:
        """A dependency allowing `roles` and admin. The roles are the bearer scheme's scopes in the OpenAPI
        (3.1 lets any scheme list "role names which are required"): clients, and the auth matrix test, read
        from /openapi.json which role may call which route."""
        allowed = set(roles) | {"admin"}
        bearer_of_roles = Security(_bearer, scopes=sorted(allowed))

        def dependency(credentials: HTTPAuthorizationCredentials | None = bearer_of_roles) -> Principal:
            if credentials is None or credentials.scheme.lower() != "bearer":
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required",
                                    headers={"WWW-Authenticate": "Bearer"})
            principal = self.authenticate(credentials.credentials)
            if principal is None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown bearer token",
                                    headers={"WWW-Authenticate": "Bearer"})
            if principal.role not in allowed:
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    f"role {principal.role!r} may not do this (needs one of {sorted(allowed)})")
            return principal

        return dependency
