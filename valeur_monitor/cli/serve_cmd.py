"""`valeur-monitor serve`: the HTTP API and customer pages over the scores in Redis."""

from __future__ import annotations

from typing import Annotated

import typer

from valeur_monitor.cli.common import print_error, rules_or_exit
from valeur_monitor.errors import ValeurError
from valeur_monitor.settings import load_settings


def serve_command(
    config: Annotated[str | None, typer.Option(help="settings file (TOML, YAML or .env)")] = None,
    redis: Annotated[str | None, typer.Option(help="redis://host:port/db (default: settings)")
                     ] = None,
    host: Annotated[str | None, typer.Option(help="bind address (default: api.host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: api.port)")] = None,
    rules: Annotated[list[str] | None,
                     typer.Option("--rules", "-r", help="rule files/dirs")] = None,
) -> None:
    """Serve the read-only HTTP API (OpenAPI at /openapi.json) and the customer pages."""
    from valeur_monitor.api.resources import Context
    from valeur_monitor.api.server import check_bind, serve
    from valeur_monitor.read.accounts import RedisAccounts
    from valeur_monitor.read.redis import RedisReader

    try:
        settings = load_settings(config)
        check_bind(host or settings.api.host, bool(settings.api.tokens))
        ruleset = rules_or_exit(rules or settings.rule_paths())
        reader = RedisReader.from_url(redis or settings.redis_url,
                                      prefix=settings.api.redis_prefix,
                                      options=settings.redis_options())
        reader.ping()
        book = RedisAccounts(reader.client, settings.api.redis_prefix)
        serve(Context(reader, ruleset, settings.api, book=book), host=host, port=port)
    except ValeurError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


def token_command(
    name: Annotated[str, typer.Argument(help="who the token is for (shown in access logs)")],
    admin: Annotated[bool, typer.Option(help="grant the admin scope too")] = False,
) -> None:
    """Make a new API token: prints it once, and the settings entry holding only its hash."""
    from valeur_monitor.api.auth import hash_token, new_token

    token = new_token()
    scopes = '["read", "admin"]' if admin else '["read"]'
    typer.echo(f"token (give it to {name}; it is not stored anywhere): {token}")
    typer.echo("settings entry:")
    typer.echo(f'  [[api.tokens]]\n  name = "{name}"\n  sha256 = "{hash_token(token)}"\n'
               f"  scopes = {scopes}")


def accounts_load_command(
    files: Annotated[list[str], typer.Argument(help="identity CSV files (kind,value,customer,"
                                               "account); rows without an account are skipped")],
    config: Annotated[str | None, typer.Option(help="settings file")] = None,
    redis: Annotated[str | None, typer.Option(help="redis://host:port/db")] = None,
) -> None:
    """Load customer -> account from identity mapping files into Redis (account roll-up)."""
    from pathlib import Path

    from valeur_monitor.identity.book import parse_identities
    from valeur_monitor.read.accounts import RedisAccounts
    from valeur_monitor.store.connect import parse_url

    try:
        settings = load_settings(config)
        pairs: dict[str, str] = {}
        for name in files:
            for row in parse_identities(Path(name).read_text(encoding="utf-8"), name):
                if row.identity.account:
                    pairs[row.identity.customer] = row.identity.account
        client = parse_url(redis or settings.redis_url, settings.redis_options()).client()
        try:
            moved = RedisAccounts(client, settings.api.redis_prefix).add(pairs.items())
        finally:
            client.close()
    except (ValeurError, OSError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    typer.echo(f"{len(pairs)} customers with an account; {moved} new or moved")
