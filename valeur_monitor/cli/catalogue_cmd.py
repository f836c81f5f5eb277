"""`valeur-monitor catalogue check|schemas`: validate event catalogues, write their JSON Schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.catalogue.schema import render, write_schemas
from valeur_monitor.cli.common import err
from valeur_monitor.errors import CatalogueError

catalogue_app = typer.Typer(no_args_is_help=True,
                            help="Check event catalogues and write their JSON Schemas.")
out = Console(highlight=False, soft_wrap=True)
Paths = Annotated[list[str] | None, typer.Argument(
    help="the deployment's catalogue files or directories (added to the shipped catalogue)")]


def _load(paths: list[str] | None) -> event_catalogue.Catalogue:
    try:
        return event_catalogue.configure(paths)
    except CatalogueError as exc:
        for issue in exc.issues:
            out.print(str(issue), markup=False)
        err.print(f"[red]{len(exc.issues)} problem(s)[/red]")
        raise typer.Exit(1) from None


@catalogue_app.command("check")
def check(paths: Paths = None) -> None:
    """Load the shipped catalogue plus PATHS; list every problem with file:line; exit 1 if any."""
    loaded = _load(paths)
    shipped = sum(1 for t in loaded.types.values()
                  if t.where.startswith(str(event_catalogue.SHIPPED)))
    out.print(f"ok: {len(loaded.files)} file(s), {len(loaded.types)} event types "
              f"({shipped} shipped, {len(loaded.types) - shipped} from the deployment)")


@catalogue_app.command("schemas")
def schemas(
    paths: Paths = None,
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write into")] = Path(
        "streams"),
    check_only: Annotated[bool, typer.Option(
        "--check", help="write nothing; exit 1 if the files there are not up to date")] = False,
) -> None:
    """Write the canonical and CloudEvents JSON Schemas generated from the catalogue."""
    loaded = _load(paths)
    if check_only:
        stale = [name for name, text in render(loaded).items()
                 if not (out_dir / name).is_file()
                 or (out_dir / name).read_text(encoding="utf-8") != text]
        for name in stale:
            out.print(f"{out_dir / name}: out of date (run `valeur-monitor catalogue schemas`)")
        if stale:
            raise typer.Exit(1)
        out.print("ok: schemas up to date")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in write_schemas(loaded, out_dir):
        out.print(f"wrote {path}")
