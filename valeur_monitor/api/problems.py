"""RFC 9457 problem details: the one shape of every error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from valeur_monitor.errors import ApiError, StoreError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("valeur_monitor.api")


class InvalidParam(BaseModel):
    name: str
    reason: str


class Problem(BaseModel):
    """An error response (RFC 9457, media type application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = None


def problem(status: int, detail: str = "", *, title: str | None = None,
            instance: str | None = None, headers: dict[str, str] | None = None,
            invalid: list[InvalidParam] | None = None) -> JSONResponse:
    body = Problem(title=title or HTTPStatus(status).phrase, status=status,
                   detail=detail or None, instance=instance, invalid_params=invalid)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        headers=headers, media_type=PROBLEM_JSON)


def _content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem bodies for these status codes."""
    return {code: {"model": Problem, "description": HTTPStatus(code).phrase,
                   "content": _content()} for code in codes}


def install(app: FastAPI) -> None:
    """Every error path of the app answers a problem document."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="valeur-monitor"'} if exc.status == 401 \
            else None
        return problem(exc.status, exc.detail, title=exc.title, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != HTTPStatus(
            exc.status_code).phrase else ""
        return problem(exc.status_code, detail, headers=dict(exc.headers or {}) or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        invalid = [InvalidParam(name=".".join(str(p) for p in e.get("loc", ())[1:]) or "request",
                                reason=str(e.get("msg", "invalid")))
                   for e in exc.errors()]
        return problem(400, "the request has invalid parameters", invalid=invalid)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        return problem(503, "the score store is unavailable, retry later",
                       headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # The exception type only: its text may quote request data (customer ids).
        log.error("internal error %s on %s", type(exc).__name__, _route(request))
        return problem(500, "internal error")


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "?"))
