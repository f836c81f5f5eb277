"""`valeur-monitor rules check|test`: validate rule files and run their YAML tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.cli.common import err
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.rules.loader import rule_files
from valeur_monitor.errors import CatalogueError, RuleLoadError, ValeurError
from valeur_monitor.ruletest import run_test_file, test_files

rules_app = typer.Typer(no_args_is_help=True, help="Check and test rule files.")
out = Console(highlight=False, soft_wrap=True)


@rules_app.command("check")
def check(
    paths: Annotated[list[str], typer.Argument(help="rule files or directories")],
    strict: Annotated[bool, typer.Option("--strict", help="warnings fail too")] = False,
    catalogue: Annotated[list[str] | None, typer.Option(
        "--catalogue", help="the deployment's catalogue files (default: $VALEUR_CATALOGUE)"),
    ] = None,
) -> None:
    """Load rule files; list every problem with file:line and rule id; exit 1 if any."""
    try:
        event_catalogue.configure(catalogue)
        ruleset = load_rules(paths)
    except (RuleLoadError, CatalogueError) as exc:
        for issue in exc.issues:
            out.print(str(issue), markup=False)
        err.print(f"[red]{len(exc.issues)} problem(s)[/red]")
        raise typer.Exit(1) from None
    for warning in ruleset.warnings:
        out.print(f"warning: {warning}", markup=False)
    if strict and ruleset.warnings:
        err.print(f"[red]{len(ruleset.warnings)} warning(s) with --strict[/red]")
        raise typer.Exit(1)
    files = rule_files(paths)
    out.print(f"ok: {len(files)} file(s), {len(ruleset.rule_ids())} rules, "
              f"{len(ruleset.alerts)} alerts, {len(ruleset.calendars)} calendars, "
              f"version {ruleset.version}")


@rules_app.command("test")
def test(
    paths: Annotated[list[str], typer.Argument(help="test files or directories")],
    rules: Annotated[list[str] | None, typer.Option("--rules", "-r",
                                                    help="test these rules instead")] = None,
) -> None:
    """Run YAML rule tests (events in, expected ledger out); exit 1 on any failure."""
    files = test_files(paths)
    if not files:
        err.print("[red]no test files found[/red]")
        raise typer.Exit(1)
    passed = failed = 0
    for path in files:
        for result in run_test_file(path, rules):
            if result.ok:
                passed += 1
                continue
            failed += 1
            out.print(f"FAIL {result.file}:{result.line} {result.name}", markup=False)
            for failure in result.failures:
                out.print(f"  {failure}", markup=False)
    out.print(f"{passed} passed, {failed} failed")
    if failed or not passed:
        raise typer.Exit(1)


@rules_app.command("reload")
def reload(
    pid_file: Annotated[list[Path] | None, typer.Option(
        "--pid-file", help="pid file of a running worker or `run --follow` (repeatable); "
                           "default: the worker's, in its data directory")] = None,
    config: Annotated[Path | None, typer.Option(help="settings file (TOML, YAML or .env)")] = None,
) -> None:
    """Ask running processes to reload their rules (SIGHUP). Each switches between two batches;
    bad rules are refused there, the running ones kept (see their logs and
    valeur_rules_reloads_total{result="failed"})."""
    from valeur_monitor.reload import signal_reload
    from valeur_monitor.settings import load_settings

    try:
        files = pid_file or [load_settings(config).worker.datadir / "worker.pid"]
        pids = signal_reload(files)
    except ValeurError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(2) from None
    out.print(f"reload requested from {len(pids)} process(es): {', '.join(map(str, pids))}")
