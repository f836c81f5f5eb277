"""Entry point of the `valeur-monitor` command: registers every sub-command."""

from __future__ import annotations

import os
import sys

import typer

from valeur_monitor.cli.advance_cmd import advance_command
from valeur_monitor.cli.archive_cmd import archive_command
from valeur_monitor.cli.backtest_cmd import backtest_command
from valeur_monitor.cli.catalogue_cmd import catalogue_app
from valeur_monitor.cli.common import EXIT_ERROR, print_error
from valeur_monitor.cli.demo_cmd import demo_command
from valeur_monitor.cli.explain_cmd import explain_command
from valeur_monitor.cli.export_cmd import export_command, republish_command
from valeur_monitor.cli.import_cmd import import_command
from valeur_monitor.cli.ingest_cmd import ingest_command
from valeur_monitor.cli.produce_cmd import produce_command
from valeur_monitor.cli.rules_cmd import rules_app
from valeur_monitor.cli.run_cmd import run_command
from valeur_monitor.cli.serve_cmd import accounts_load_command, serve_command, token_command
from valeur_monitor.cli.simulate_cmd import simulate_command
from valeur_monitor.cli.sources_cmd import identities_app, sources_app
from valeur_monitor.cli.store_cmd import store_app
from valeur_monitor.cli.topics_cmd import topics_app
from valeur_monitor.cli.webhooks_cmd import webhooks_app
from valeur_monitor.cli.worker_cmd import worker_command
from valeur_monitor.errors import ValeurError
from valeur_monitor.shipped import build_warning

EXIT_INTERNAL = 70      # EX_SOFTWARE: a bug, reported in one line

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Running, explainable per-customer value scores from support events.")
app.command("run")(run_command)
app.command("demo")(demo_command)
app.command("simulate")(simulate_command)
app.command("explain")(explain_command)
app.command("backtest")(backtest_command)
app.command("archive")(archive_command)
app.add_typer(rules_app, name="rules")
app.add_typer(catalogue_app, name="catalogue")
app.command("worker")(worker_command)
app.command("advance")(advance_command)
app.command("produce")(produce_command)
app.add_typer(topics_app, name="topics")
app.command("serve")(serve_command)
app.command("api-token")(token_command)
accounts_app = typer.Typer(no_args_is_help=True, help="Account roll-up (customers by account).")
accounts_app.command("load")(accounts_load_command)
app.add_typer(accounts_app, name="accounts")
app.add_typer(webhooks_app, name="webhooks")
app.command("export")(export_command)
app.command("republish")(republish_command)
app.add_typer(sources_app, name="sources")
app.add_typer(identities_app, name="identities")
app.command("import")(import_command)
app.command("ingest")(ingest_command)
app.add_typer(store_app, name="store")


def main() -> None:
    """Run the CLI; an error that escaped a command is still one masked line, no traceback
    (``VALEUR_DEBUG=1`` shows it)."""
    notice = build_warning()   # an installed wheel that fell back to pure Python says so
    if notice:
        print(f"warning: {notice}", file=sys.stderr)
    try:
        app()
    except ValeurError as exc:
        print_error(exc)
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if os.environ.get("VALEUR_DEBUG"):
            raise
        print_error(f"unexpected {type(exc).__name__}: {exc} (VALEUR_DEBUG=1 shows where)")
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
