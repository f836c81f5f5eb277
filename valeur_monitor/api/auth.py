"""Bearer tokens: SHA-256 hashes in the settings, scopes `read` and `admin`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from valeur_monitor.errors import ApiError
from valeur_monitor.settings import ApiToken

COOKIE = "vm_token"         # the pages keep the token in an HttpOnly cookie
SCOPES = ("read", "admin")
bearer = HTTPBearer(auto_error=False, description="a token whose SHA-256 is in api.tokens")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


class Auth:
    """Checks a presented token against the configured hashes (constant-time comparisons)."""

    def __init__(self, tokens: list[ApiToken]) -> None:
        self.tokens = tokens

    @property
    def open(self) -> bool:
        """No token configured: every request is allowed (the server then binds loopback)."""
        return not self.tokens

    def check(self, token: str | None, scope: str) -> str:
        """The token's name, or ApiError 401 (no/unknown token) / 403 (scope missing)."""
        if self.open:
            return "local"
        if not token:
            raise ApiError(401, "Unauthorized", "a bearer token is required")
        digest = hash_token(token)
        found = None
        for t in self.tokens:
            if hmac.compare_digest(t.sha256, digest):
                found = t
        if found is None:
            raise ApiError(401, "Unauthorized", "unknown token")
        if scope not in found.scopes and "admin" not in found.scopes:
            raise ApiError(403, "Forbidden", f"this token lacks the {scope!r} scope")
        return found.name


def require(scope: str) -> Callable[..., str]:
    """A dependency: the caller's token must carry `scope` (admin implies read)."""

    def dependency(request: Request, creds: Credentials) -> str:
        auth: Auth = request.app.state.auth
        token = creds.credentials if creds is not None else request.cookies.get(COOKIE)
        name = auth.check(token, scope)
        request.state.caller = name
        return name

    return dependency
