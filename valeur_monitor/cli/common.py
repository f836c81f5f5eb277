"""Helpers shared by CLI commands: the one error path, rule loading, default paths."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.errors import CatalogueError, RuleLoadError, ValeurError
from valeur_monitor.masking import mask
from valeur_monitor.shipped import shipped

err = Console(stderr=True, soft_wrap=True, highlight=False)
EXIT_ERROR = 2          # the command could not do its job (settings, input, store, broker)


def print_error(message: object) -> None:
    """One red 'error:' line on stderr, secrets masked; shown as is (no rich markup)."""
    text = " ".join(mask(str(message)).split("\n"))
    err.print(f"[red]error:[/red] {escape(text)}")


def fail(message: object, code: int = EXIT_ERROR) -> NoReturn:
    """Print one error line and end the command with `code`."""
    print_error(message)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """The one error path of commands: a ValeurError or an OS error becomes one masked
    `error: ...` line and exit status 2, never a traceback."""
    try:
        yield
    except (ValeurError, OSError) as exc:
        fail(exc)


def refuse(what: str, issues: Sequence[object]) -> NoReturn:
    """A file refused: every problem on its own line (each says where), exit status 1."""
    err.print(f"[red]{what} refused ({len(issues)} problem(s)):[/red]")
    for issue in issues:
        err.print(f"  {issue}", markup=False, highlight=False)
    raise typer.Exit(1)


def stdout_console() -> Console:
    """Console for results on stdout: plain lines are not hard-wrapped (paths and commands
    stay copyable in a pipe); tables fit the width (80 columns when piped)."""
    return Console(soft_wrap=True, highlight=False)


def default_rules() -> list[str]:
    """VALEUR_RULES (colon-separated), else ./rules, else the rules shipped beside the package."""
    env = os.environ.get("VALEUR_RULES")
    if env:
        return env.split(os.pathsep)
    if Path("rules").is_dir():
        return ["rules"]
    return [str(shipped("rules"))]


def rules_or_exit(paths: list[str] | None, label: str | None = None) -> RuleSet:
    """Load rules or print every problem and exit 1; the label defaults to VALEUR_RULES_LABEL."""
    try:
        return load_rules(paths or default_rules(),
                          label if label is not None else os.environ.get("VALEUR_RULES_LABEL"))
    except (RuleLoadError, CatalogueError) as exc:
        refuse("rules" if isinstance(exc, RuleLoadError) else "event catalogue", exc.issues)
