"""Bearer-token roles for every HTTP API (architecture.md, "Observability and security")."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str


class TokenAuth:
    """Maps tokens to roles; `require(...)` gives a FastAPI dependency allowing only those roles."""

    def __init__(self, tokens: dict[str, str]) -> None:
        # token -> (subject, role); the subject is the token's role plus a short fingerprint for audit logs.
        self._tokens = dict(tokens)

    def authenticate(self, token: str) -> Principal | None:
        for known, role in self._tokens.items():
            # Constant-time comparison: response timing must not reveal how much of a token matched.
            if hmac.compare_digest(known.encode(), token.encode()):
                return Principal(subject=f"{role}:{known[:4]}…", role=role)
        return None

    def require(self, *roles: str) -> Callable[..., Principal]:
        allowed = set(roles) | {"admin"}

        def dependency(
            credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
        ) -> Principal:
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
