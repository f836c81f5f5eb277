"""`valeur-monitor ingest`: serve helpdesk webhooks (mapped, authenticated, durable)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from valeur_monitor.cli.common import print_error, refuse
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.errors import SourceLoadError, ValeurError


def ingest_command(
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8088)")] = None,
    output: Annotated[str | None, typer.Option(
        help="'kafka' (default) or a JSONL file to append to (fsync) for `run`")] = None,
    config: ConfigOption = None,
) -> None:
    """Receive webhooks on /ingest/SOURCE; 2xx only once the events are durable."""
    from valeur_monitor.ingest.server import ingest_context, serve
    from valeur_monitor.settings import load_settings

    overrides: dict[str, Any] = {"output": output} if output else {}
    try:
        settings = load_settings(config, **({"ingest": overrides} if overrides else {}))
        context = ingest_context(settings)
        serve(settings, context, host=host, port=port)
    except SourceLoadError as exc:
        refuse("source mappings", exc.issues)
    except ValeurError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
