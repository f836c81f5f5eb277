"""`valeur-monitor store migrate`: convert a Redis store to the current key layout."""

from __future__ import annotations

import typer

from valeur_monitor.cli.common import print_error
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.errors import ValeurError
from valeur_monitor.settings import load_settings

store_app = typer.Typer(no_args_is_help=True, help="Operate on the Redis store.")


@store_app.command("migrate")
def migrate_command(config: ConfigOption = None) -> None:
    """Convert a store of key layout 1 (four keys per customer) to layout 2 (one value).

    Stop every worker and `run` first. Safe to run again after an interruption.
    """
    from valeur_monitor.cli.common import rules_or_exit
    from valeur_monitor.store.migrate import migrate
    from valeur_monitor.store.redis import RedisStore

    try:
        settings = load_settings(config)
        rules = rules_or_exit(settings.rule_paths())
        store = RedisStore.from_url(settings.redis_url, ledger_cap=rules.settings.ledger_cap,
                                    ledger_max_age=rules.settings.ledger_max_age,
                                    options=settings.redis_options())
        try:
            converted = migrate(store)
        finally:
            store.close()
    except (ValeurError, ValueError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    typer.echo(f"{converted} customers converted to key layout 2")
