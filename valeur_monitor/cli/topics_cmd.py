"""`valeur-monitor topics apply|show`: the topology of streams/topics.yaml on the cluster."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from valeur_monitor.cli.common import err
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.errors import ValeurError

topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics from streams/topics.yaml.")

FileOption = Annotated[str | None, typer.Option(
    "--file", "-f", help="topology file (default: settings, else streams/topics.yaml)")]
STYLE = {"create": "green", "partitions": "yellow", "configs": "yellow", "unchanged": "dim",
         "note": "cyan", "warning": "red"}


@topics_app.command("apply")
def apply_command(
    file: FileOption = None,
    bootstrap: Annotated[str | None, typer.Option(
        help="bootstrap servers host:port[,host:port] (default: settings)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would change")] = False,
    config: ConfigOption = None,
) -> None:
    """Create missing topics, raise partition counts, set configs. Idempotent."""
    from valeur_monitor.kafka.admin import apply_topology, load_topology, open_admin
    from valeur_monitor.settings import load_settings

    try:
        settings = load_settings(config, **({"kafka": {"bootstrap_servers": bootstrap}}
                                            if bootstrap else {}))
        topology = load_topology(file or settings.topology_path(), settings.topics.overrides())
        admin = open_admin(settings.kafka.client_config())
        try:
            actions = apply_topology(admin, topology, dry_run=dry_run)
        finally:
            admin.close()
    except ValeurError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table(title="topics (dry run: nothing changed)" if dry_run else "topics")
    for column in ("topic", "action", "detail"):
        table.add_column(column, overflow="fold")
    for action in actions:
        style = STYLE.get(action.kind, "")
        table.add_row(action.topic, f"[{style}]{action.kind}[/{style}]", action.detail)
    Console(width=120).print(table)
    changed = sum(1 for a in actions if a.kind in ("create", "partitions", "configs"))
    verb = "would change" if dry_run else "changed"
    print(f"{len(topology.topics)} topic(s): {changed} {verb}")
