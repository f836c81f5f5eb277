"""`valeur-monitor explain CUSTOMER`: a customer's score and every ledger entry behind it."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from valeur_monitor.cli.common import cli_errors, fail, rules_or_exit, stdout_console
from valeur_monitor.cli.worker_cmd import ConfigOption
from valeur_monitor.engine.event import format_time, parse_time
from valeur_monitor.read.factory import open_reader
from valeur_monitor.read.views import factor
from valeur_monitor.runner.inputs import open_input
from valeur_monitor.settings import Settings, load_settings
from valeur_monitor.store.base import ScoreView

DEFAULT_LEDGER = "out/demo-ledger.jsonl"
WIDE = 140          # below this width, one block per entry instead of an 8-column table


def _from_file(path: str, customer: str) -> tuple[list[dict[str, Any]], int]:
    """The customer's entries and the latest entry time of the whole file (its stream end)."""
    rows: list[dict[str, Any]] = []
    latest = 0
    with open_input(path) as stream:
        for line in stream:
            if not line.strip():
                continue
            row = orjson.loads(line)
            latest = max(latest, parse_time(row["time"]))
            if row.get("customer") == customer:
                rows.append(row)
    return rows, latest


def _from_store(url: str, customer: str, settings: Settings
                ) -> tuple[list[dict[str, Any]], ScoreView | None, int]:
    reader = open_reader(url, options=settings.redis_options())
    try:
        rows = [e.to_json() for e in reader.ledger(customer)]
        view = reader.score(customer)
        stream_time = reader.watermark()
    finally:
        reader.close()
    return rows, view, stream_time


def score_as_of(rows: list[dict[str, Any]], as_of: int, half_life: int | None
                ) -> tuple[float, dict[str, float]]:
    """The score the entries make at `as_of` (each entry decayed from its own time), by dim."""
    by_dim: dict[str, float] = defaultdict(float)
    for r in rows:
        at = parse_time(r["time"])
        if at <= as_of:
            by_dim[r["dimension"]] += r["value"] * factor(as_of - at, half_life)
    return sum(by_dim.values()), dict(sorted(by_dim.items()))


def _stored_line(view: ScoreView | None) -> str | None:
    stored = None
    if view is not None:
        reasons = ", ".join(f"{r} {v:+g}" for r, v in view.top_reasons(3))
        stored = (f"stored score {view.total:+.2f} (decayed to its last update), "
                  f"created {view.created:+g}, destroyed {-view.destroyed:+g}; top: {reasons}")
    return stored


def explain_command(
    customer: Annotated[str, typer.Argument(help="customer id")],
    ledger: Annotated[str | None, typer.Option(
        help=f"ledger JSONL written by `run --ledger` (default {DEFAULT_LEDGER})")] = None,
    store: Annotated[str | None, typer.Option(
        help="read the score and ledger from a store instead (redis://...; default: "
             "VALEUR_REDIS_URL or the config file's redis_url when --ledger is not given)")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="print the customer's entries and totals as one JSON object")] = False,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="RFC 3339 instant the score is decayed to (default: the stream time: "
                        "the store's, or the latest entry of the ledger file)")] = None,
    rules: Annotated[list[str] | None, typer.Option(
        "--rules", "-r", help="rule files/dirs (their half-life decays the score)")] = None,
) -> None:
    """Show the score of one customer and each entry (rule, outcome, value, causing events)."""
    view: ScoreView | None = None
    with cli_errors():
        settings = load_settings(config)
        url = store or (None if ledger else settings.store_url())
        if url and url not in ("memory", "memory://"):
            rows, view, stream_time = _from_store(url, customer, settings)
            source = _display(url)
        else:
            source = ledger or DEFAULT_LEDGER
            try:
                rows, stream_time = _from_file(source, customer)
            except OSError as exc:
                fail(f"cannot read ledger {source}: {exc.strerror}")
        try:
            at = parse_time(as_of) if as_of else stream_time
        except ValueError as exc:
            fail(f"--as-of: {exc}", code=2)
    half_life = rules_or_exit(rules).settings.half_life
    if not rows:
        fail(f"no ledger entries for customer {customer!r} in {source}", code=1)
    rows.sort(key=lambda r: r["seq"])
    total = sum(r["value"] for r in rows)
    score, decayed = score_as_of(rows, at, half_life)
    by_dim: dict[str, float] = defaultdict(float)
    by_rule: dict[str, float] = defaultdict(float)
    for r in rows:
        by_dim[r["dimension"]] += r["value"]
        by_rule[r["rule"]] += r["value"]
    if as_json:
        print(orjson.dumps({
            "customer": customer, "source": source, "entries": rows, "points": total,
            "as_of": format_time(at), "score": score, "score_by_dimension": decayed,
            "by_dimension": dict(sorted(by_dim.items())),
            "by_rule": dict(sorted(by_rule.items())),
            "stored": None if view is None else {
                "score": view.total, "at": view.at, "dims": view.dims,
                "created": view.created, "destroyed": view.destroyed,
                "top_reasons": [{"rule": k, "value": v} for k, v in view.top_reasons(3)]},
        }, option=orjson.OPT_INDENT_2).decode())
        return
    console = stdout_console()
    console.print(f"[bold]{customer}[/bold]: score {score:+.1f} as of {format_time(at)} "
                  f"({total:+g} points before decay, from {len(rows)} entries)", markup=True)
    stored = _stored_line(view)
    if stored:
        console.print(stored, markup=False)
    versions = sorted({r.get("rules_version") or "-" for r in rows})
    console.print("rules version: " + ", ".join(versions), markup=False)
    console.print("by dimension: " + ", ".join(f"{d} {v:+g}" for d, v in sorted(by_dim.items())),
                  markup=False)
    console.print("by rule: " + ", ".join(
        f"{k} {v:+g}" for k, v in sorted(by_rule.items(), key=lambda kv: kv[1])), markup=False)
    if console.width >= WIDE:
        _table(console, rows)
    else:
        _blocks(console, rows)


def _display(url: str) -> str:
    from valeur_monitor.store.redis import redact

    return redact(url)


def _table(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table()
    for col in ("#", "time", "rule", "outcome", "dimension", "value", "events", "why"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["seq"]), r["time"], r["rule"], r["outcome"], r["dimension"],
                      f"{r['value']:+g}", " ".join(r["events"]), r["explain"])
    console.print(table)


def _blocks(console: Console, rows: list[dict[str, Any]]) -> None:
    """One entry per block: a header line, then the why and the events, indented (reads well
    at 80 columns and in a pipe, where a wide table would wrap one word per line)."""
    for r in rows:
        console.print(f"\n#{r['seq']}  {r['time']}  {r['rule']}  {r['outcome']}  "
                      f"{r['dimension']} {r['value']:+g}", markup=False)
        console.print(f"    {r['explain']}", markup=False, soft_wrap=False)
        console.print(f"    events: {' '.join(r['events'])}", markup=False)
