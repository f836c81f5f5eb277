"""The FastAPI application: routes, problem details, bearer auth and a customer-free access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from valeur_monitor import __version__
from valeur_monitor.api import problems
from valeur_monitor.api.auth import Auth
from valeur_monitor.api.pages import pages, root
from valeur_monitor.api.resources import Context
from valeur_monitor.api.routes import api, probes

access = logging.getLogger("valeur_monitor.api.access")
MAX_URL = 4096


def build() -> FastAPI:
    """The application without its context (enough to publish the OpenAPI document)."""
    app = FastAPI(title="valeur-monitor API", version=__version__,
                  description=("Read-only access to per-customer value scores, their ledger and "
                               "rankings. Every score is decayed to the stated `as_of`. Errors "
                               "are RFC 9457 problem documents."),
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    problems.install(app)
    app.include_router(api)
    app.include_router(probes)
    app.include_router(pages)
    app.include_router(root)
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        # Validation errors are answered 400 with a problem document, never FastAPI's 422.
        if app.openapi_schema is None:
            doc = plain()
            for item in doc.get("paths", {}).values():
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = doc.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app(context: Context) -> FastAPI:
    app = build()
    app.state.context = context
    app.state.auth = Auth(context.settings.tokens)

    @app.middleware("http")
    async def log_access(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if len(str(request.url)) > MAX_URL:
            return problems.problem(414, f"the URL is longer than {MAX_URL} characters")
        began = time.perf_counter()
        response = await call_next(request)
        # The route TEMPLATE, never the path: paths carry customer ids.
        route = getattr(request.scope.get("route"), "path", "-")
        access.info("%s %s %d %.1fms %s", request.method, route, response.status_code,
                    (time.perf_counter() - began) * 1000,
                    getattr(request.state, "caller", "-"))
        return response

    return app
