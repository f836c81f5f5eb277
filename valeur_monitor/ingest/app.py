"""The ingest ASGI app (FastAPI): one POST route per source, health, readiness.

A handler only reads the body (bounded), checks the sender, calls the mapper and awaits the
sink: the mapping itself is data (streams/sources), the durability is the sink's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from valeur_monitor.api.problems import install, problem
from valeur_monitor.errors import BrokerError, IngestError
from valeur_monitor.ingest.auth import verify
from valeur_monitor.ingest.metrics import IngestMetrics
from valeur_monitor.ingest.sinks import EventSink
from valeur_monitor.reasons import MALFORMED_JSON, UNMAPPABLE
from valeur_monitor.sources.mapper import Mapper

log = logging.getLogger("valeur_monitor.ingest")


@dataclass
class IngestContext:
    """Everything the routes need; built by `ingest_context` from the settings."""

    mappers: dict[str, Mapper]
    secrets: dict[str, str]              # source -> secret (basic: "user:password")
    sink: EventSink
    body_limit: int = 1_048_576
    clock: Callable[[], float] = time.time
    metrics: IngestMetrics = field(default_factory=IngestMetrics)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 beyond `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise IngestError(413, "Content Too Large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError(413, "Content Too Large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(context: IngestContext) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await context.sink.close()      # flush and stop the producer on shutdown

    app = FastAPI(title="valeur-monitor ingest", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    install(app)

    @app.exception_handler(IngestError)
    async def _refused(request: Request, exc: IngestError) -> JSONResponse:
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return problem(exc.status, exc.detail, title=exc.title, headers=headers,
                       instance=request.url.path)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(context.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    for name in sorted(context.mappers):
        app.add_api_route(f"/ingest/{name}", _route(context, name), methods=["POST"],
                          name=f"ingest-{name}")
    return app


def _route(context: IngestContext, name: str) -> Callable[[Request], object]:
    mapper = context.mappers[name]
    auth = mapper.source.auth

    async def receive(request: Request) -> Response:
        began = time.perf_counter()
        status = 500
        try:
            reply = await handle(request)
            status = reply.status_code
            return reply
        except IngestError as exc:
            status = exc.status
            raise
        finally:
            context.metrics.request(name, status, time.perf_counter() - began)

    async def handle(request: Request) -> Response:
        body = await read_body(request, context.body_limit)
        now = context.clock()
        verify(auth, context.secrets.get(name), request.headers, body, int(now * 1000))
        mapped = mapper.map(body, received=int(now * 1000))
        try:
            await context.sink.send(mapped.events, mapped.dead_letters, name)
        except BrokerError as exc:
            log.warning("%s: not stored, answering 503: %s", name, exc)
            raise IngestError(503, "Service Unavailable",
                              "events could not be stored durably; retry later") from None
        reasons = Counter(d.reason for d in mapped.dead_letters)
        context.metrics.stored(name, len(mapped.events), dict(reasons))
        if not mapped.events and reasons.get(MALFORMED_JSON):
            raise IngestError(400, "Bad Request", "the body is not JSON (kept as a dead letter)")
        if not mapped.events and reasons.get(UNMAPPABLE):
            first = next(d for d in mapped.dead_letters if d.reason == UNMAPPABLE)
            raise IngestError(422, "Unprocessable Content",
                              f"unmappable payload, kept as a dead letter: {first.detail}")
        return JSONResponse({"events": len(mapped.events),
                             "dead_letters": dict(reasons), "ignored": mapped.ignored},
                            status_code=202)

    return receive
