"""`valeur-monitor worker`: a faust worker consuming the events topic (see docs/streaming.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from valeur_monitor.cli.common import err
from valeur_monitor.errors import ValeurError
from valeur_monitor.settings import ClockMode, load_settings

ConfigOption = Annotated[str | None, typer.Option(
    "--config", "-c", help="settings file (.toml, .yaml or .env); VALEUR_* variables win")]


def worker_command(
    config: ConfigOption = None,
    web_host: Annotated[str | None, typer.Option(
        help="address of /metrics, /healthz, /readyz (default 127.0.0.1; 0.0.0.0: all)")] = None,
    web_port: Annotated[int | None, typer.Option(
        help="port of /metrics, /healthz, /readyz")] = None,
    clock: Annotated[ClockMode | None, typer.Option(
        help="wall: idle stream time follows the clock (live); event: only events move it")] = None,
    loglevel: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
) -> None:
    """Run a stream worker: events topic -> rules -> Redis, plus scores, alerts, dead letters."""
    worker: dict[str, Any] = {k: v for k, v in
                              {"web_host": web_host, "web_port": web_port, "clock": clock,
                               "loglevel": loglevel}.items()
                              if v is not None}
    try:
        settings = load_settings(config, **({"worker": worker} if worker else {}))
        import faust

        from valeur_monitor.streaming.app import create_app

        app = create_app(settings)
    except ValeurError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    faust.Worker(app, loglevel=settings.worker.loglevel).execute_from_commandline()
