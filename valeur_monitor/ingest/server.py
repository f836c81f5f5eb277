"""Build the ingest app from the settings and serve it under uvicorn (loopback by default)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvicorn

from valeur_monitor.api.server import LOOPBACK
from valeur_monitor.errors import ConfigError
from valeur_monitor.ingest.app import IngestContext, create_app
from valeur_monitor.ingest.sinks import EventSink, FileSink, KafkaSink
from valeur_monitor.settings import Settings
from valeur_monitor.sources.factory import load_configured_sources, open_mappers, open_resolver

log = logging.getLogger("valeur_monitor.ingest")


def open_sink(settings: Settings) -> EventSink:
    ingest = settings.ingest
    if ingest.output == "kafka":
        from valeur_monitor.kafka.admin import load_topology

        topology = load_topology(settings.topology_path(), settings.topics.overrides())
        return KafkaSink(settings.kafka, topology.name("events"), topology.name("dead-letters"),
                         ingest.ack_timeout_s)
    events = Path(ingest.output)
    dead = ingest.dead_letters or events.with_name(events.name + ".dead.jsonl")
    return FileSink(events, dead)


def ingest_context(settings: Settings, sink: EventSink | None = None) -> IngestContext:
    """Mappers of every source whose credentials are configured (others get no route)."""
    loaded = load_configured_sources(settings)
    mappers = open_mappers(settings, loaded, open_resolver(settings))
    secrets: dict[str, str] = {}
    missing: list[str] = []
    for name, source in loaded.items():
        table = settings.ingest.basic_users if source.auth.kind == "basic" \
            else settings.ingest.secrets
        secret = table.get(name)
        if source.auth.kind == "none":
            secrets[name] = ""
        elif secret is not None and secret.get_secret_value():
            secrets[name] = secret.get_secret_value()
        else:
            missing.append(name)
    for name in missing:
        del mappers[name]
    if missing:
        log.warning("no credentials for %s: no route (set ingest.secrets.NAME, or "
                    "ingest.basic_users.NAME for basic auth)", ", ".join(sorted(missing)))
    if not mappers:
        raise ConfigError("no source has credentials configured: nothing to ingest "
                          "(ingest.secrets.NAME / ingest.basic_users.NAME)")
    return IngestContext(mappers=mappers, secrets=secrets,
                         sink=sink if sink is not None else open_sink(settings),
                         body_limit=settings.ingest.body_limit)


def check_bind(host: str, context: IngestContext) -> None:
    """An unauthenticated route is only served on loopback."""
    open_routes = [n for n, m in context.mappers.items() if m.source.auth.kind == "none"]
    if host not in LOOPBACK and open_routes:
        raise ConfigError(f"ingest.host {host} is not loopback but {', '.join(open_routes)} "
                          "has `auth: none`: only served on 127.0.0.1")


def serve(settings: Settings, context: IngestContext, *, host: str | None = None,
          port: int | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM); closes the sink on the way out."""
    host = host or settings.ingest.host
    port = port or settings.ingest.port
    check_bind(host, context)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    app = create_app(context)
    log.info("ingest on http://%s:%d/ingest/{%s}", host, port, ",".join(sorted(context.mappers)))
    config = uvicorn.Config(app, host=host, port=port, access_log=False, server_header=False,
                            log_level="warning", limit_concurrency=512, timeout_keep_alive=5)
    uvicorn.Server(config).run()
