"""`valeur-monitor export` (scores for CRM imports) and `republish` (idle scores to Kafka)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from valeur_monitor.cli.common import err, print_error, rules_or_exit
from valeur_monitor.engine.durations import parse_duration
from valeur_monitor.engine.event import parse_time
from valeur_monitor.errors import ValeurError
from valeur_monitor.read.factory import open_reader
from valeur_monitor.settings import load_settings

Config = Annotated[str | None, typer.Option(help="settings file (TOML, YAML or .env)")]
Redis = Annotated[str | None, typer.Option(help="redis://host:port/db (default: settings)")]
Rules = Annotated[list[str] | None, typer.Option("--rules", "-r", help="rule files/dirs")]
AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="RFC 3339 instant every score is decayed to (default: now)")]


def _instant(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ValeurError(f"{name}: {exc}") from None


def export_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, jsonl or parquet")] = "csv",
    output: Annotated[str, typer.Option("--output", "-o", help="file, or - for stdout")] = "-",
    since: Annotated[str | None, typer.Option(
        help="only customers updated at or after this RFC 3339 instant")] = None,
    as_of: AsOf = None, redis: Redis = None, config: Config = None, rules: Rules = None,
    accounts: Annotated[bool, typer.Option(
        "--accounts", help="one row per account (sum of its customers' scores) instead")
    ] = False,
) -> None:
    """Every customer's score from Redis, decayed to one as_of, with its top reasons."""
    from valeur_monitor.read.accounts import RedisAccounts
    from valeur_monitor.read.export import ACCOUNT_FIELDS, FIELDS, account_rows, export_rows
    from valeur_monitor.read.redis import RedisReader
    from valeur_monitor.sinks.tables import write_table

    try:
        settings = load_settings(config)
        ruleset = rules_or_exit(rules or settings.rule_paths())
        at = _instant(as_of, "--as-of") or int(time.time() * 1000)
        reader = open_reader(redis or settings.redis_url, settings.api.redis_prefix,
                             settings.redis_options())
        try:
            rows = export_rows(reader, as_of=at, half_life=ruleset.settings.half_life,
                               since=_instant(since, "--since"),
                               edges=settings.api.band_edges)
            if output == "-" and fmt == "parquet":
                raise ValeurError("parquet needs a file: -o scores.parquet")
            target = sys.stdout.buffer if output == "-" else Path(output)
            fields: tuple[str, ...] = FIELDS
            if accounts:
                assert isinstance(reader, RedisReader)     # open_reader only opens Redis
                book = RedisAccounts(reader.client, settings.api.redis_prefix)
                rows, fields = account_rows(rows, book, edges=settings.api.band_edges), (
                    ACCOUNT_FIELDS)
            count = write_table(rows, fields, fmt, target)
        finally:
            reader.close()
    except (ValeurError, OSError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    what = "accounts" if accounts else "customers"
    err.print(f"{count} {what} exported, decayed to {(at and as_of) or 'now'}", markup=False)


def republish_command(
    idle: Annotated[str, typer.Option(help="re-publish customers idle at least this long")] = (
        "1d"),
    as_of: AsOf = None, redis: Redis = None, config: Config = None, rules: Rules = None,
) -> None:
    """Publish idle customers' scores, decayed to as_of, to the score-updates topic."""
    from valeur_monitor.kafka.admin import load_topology
    from valeur_monitor.kafka.produce import open_producer
    from valeur_monitor.read.republish import idle_updates

    try:
        settings = load_settings(config)
        ruleset = rules_or_exit(rules or settings.rule_paths())
        at = _instant(as_of, "--as-of") or int(time.time() * 1000)
        topic = load_topology(settings.topology_path(),
                              settings.topics.overrides()).name("score-updates")
        reader = open_reader(redis or settings.redis_url, settings.api.redis_prefix,
                             settings.redis_options())
        producer = open_producer(settings.kafka.client_config())
        sent = 0
        try:
            for key, value in idle_updates(reader, as_of=at, idle=parse_duration(idle),
                                           half_life=ruleset.settings.half_life):
                producer.send(topic, key=key, value=value)
                sent += 1
            producer.flush(60)
        finally:
            producer.close()
            reader.close()
    except (ValeurError, OSError, ValueError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    err.print(f"{sent} idle customers re-published to {topic}", markup=False)
