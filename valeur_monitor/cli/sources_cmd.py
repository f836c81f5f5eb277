"""`valeur-monitor sources check` and `identities load`: validate mappings, load identities."""

from __future__ import annotations

import textwrap
from typing import Annotated

import typer
from rich.console import Console

from valeur_monitor.cli.common import err, print_error
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.errors import IdentityError, SourceLoadError, ValeurError

sources_app = typer.Typer(no_args_is_help=True, help="Check helpdesk source mappings.")
identities_app = typer.Typer(no_args_is_help=True, help="Load customer identities.")
out = Console(highlight=False, soft_wrap=True)


@sources_app.command("check")
def check(paths: Annotated[list[str], typer.Argument(
        help="mapping files or directories (e.g. streams/sources)")]) -> None:
    """Load source mappings; list every problem as file:line [mapping] message; exit 1 if any."""
    from valeur_monitor.sources.loader import load_sources, source_files

    try:
        sources = load_sources(paths)
    except SourceLoadError as exc:
        for issue in exc.issues:
            out.print(str(issue), markup=False)
        err.print(f"[red]{len(exc.issues)} problem(s)[/red]")
        raise typer.Exit(1) from None
    files = source_files(paths)
    for name, source in sorted(sources.items()):
        out.print(f"{name}: {len(source.mappings)} mappings, auth {source.auth.kind}, "
                  f"unknown customers: {source.identity.unknown}", markup=False)
        emits = textwrap.fill(", ".join(source.emitted_types()), width=76,
                              initial_indent="  emits ", subsequent_indent="    ")
        out.print(emits, markup=False)
    out.print(f"ok: {len(files)} file(s), {len(sources)} source(s)")


@identities_app.command("load")
def load(
    file: Annotated[str, typer.Argument(help="CSV with header kind,value,customer,account")],
    region: Annotated[str | None, typer.Option(
        help="country of national phone numbers (ISO 3166, e.g. FR)")] = None,
    config: ConfigOption = None,
) -> None:
    """Load an identity mapping file into Redis (emails and phones stored only as hashes)."""
    import redis

    from valeur_monitor.identity.book import RedisBook, parse_identities
    from valeur_monitor.settings import load_settings
    from valeur_monitor.store.keys import Keys
    from valeur_monitor.store.redis import redact

    try:
        settings = load_settings(config)
        with open(file, encoding="utf-8") as handle:
            text = handle.read()
        rows = parse_identities(text, file, region=region or settings.ingest.region)
    except IdentityError as exc:
        for problem in exc.problems:
            out.print(problem, markup=False)
        err.print(f"[red]{len(exc.problems)} problem(s); nothing loaded[/red]")
        raise typer.Exit(1) from None
    except (OSError, ValeurError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    client = settings.redis_client()
    try:
        book = RedisBook(client, Keys().identities)
        written = book.load(rows)
        total = len(book)
    except redis.RedisError as exc:
        print_error(f"Redis at {redact(settings.redis_url)}: {exc}")
        raise typer.Exit(1) from None
    finally:
        client.close()
    out.print(f"loaded {written:,} identities into {redact(settings.redis_url)} "
              f"({total:,} known)")
