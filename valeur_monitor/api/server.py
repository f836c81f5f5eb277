"""Running the app under uvicorn: loopback unless tokens are configured, no uvicorn access log."""

from __future__ import annotations

import logging
import sys

import uvicorn

from valeur_monitor.api.app import create_app
from valeur_monitor.api.resources import Context
from valeur_monitor.errors import ConfigError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_bind(host: str, has_tokens: bool) -> None:
    """Refuse to expose an open API: without tokens, only loopback is allowed."""
    if host not in LOOPBACK and not has_tokens:
        raise ConfigError(f"api.host {host} is not loopback: configure api.tokens first "
                          "(an API without tokens is only served on 127.0.0.1)")


def serve(context: Context, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM)."""
    settings = context.settings
    host = host or settings.host
    port = port or settings.port
    check_bind(host, bool(settings.tokens))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("valeur_monitor.api", "valeur_monitor.webhooks"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    if not settings.tokens:
        logging.getLogger("valeur_monitor.api").warning(
            "no api.tokens configured: the API is open to local users of %s", host)
    config = uvicorn.Config(create_app(context), host=host, port=port, access_log=False,
                            server_header=False, log_level="warning", limit_concurrency=256,
                            timeout_keep_alive=5, h11_max_incomplete_event_size=16_384)
    uvicorn.Server(config).run()
