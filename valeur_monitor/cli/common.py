"""Helpers shared by CLI commands: rule loading with readable errors, default paths."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.errors import CatalogueError, RuleLoadError

err = Console(stderr=True, soft_wrap=True, highlight=False)


def print_error(message: object) -> None:
    """One red 'error:' line on stderr; the message is shown as is (no rich markup)."""
    err.print(f"[red]error:[/red] {escape(str(message))}")


def default_rules() -> list[str]:
    """VALEUR_RULES (colon-separated), else ./rules, else the rules shipped beside the package."""
    env = os.environ.get("VALEUR_RULES")
    if env:
        return env.split(os.pathsep)
    if Path("rules").is_dir():
        return ["rules"]
    return [str(Path(__file__).resolve().parents[2] / "rules")]


def rules_or_exit(paths: list[str] | None, label: str | None = None) -> RuleSet:
    """Load rules or print every problem and exit 1; the label defaults to VALEUR_RULES_LABEL."""
    try:
        return load_rules(paths or default_rules(),
                          label if label is not None else os.environ.get("VALEUR_RULES_LABEL"))
    except (RuleLoadError, CatalogueError) as exc:
        what = "rules" if isinstance(exc, RuleLoadError) else "event catalogue"
        err.print(f"[red]{what} refused ({len(exc.issues)} problem(s)):[/red]")
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False, highlight=False)
        raise typer.Exit(1) from None
