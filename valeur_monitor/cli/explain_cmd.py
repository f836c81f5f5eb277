"""`valeur-monitor explain CUSTOMER`: a customer's score and every ledger entry behind it."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from valeur_monitor.cli.common import print_error
from valeur_monitor.errors import ValeurError
from valeur_monitor.read.factory import open_reader
from valeur_monitor.runner.inputs import open_input


def _from_file(path: str, customer: str) -> list[dict[str, Any]]:
    with open_input(path) as stream:
        return [r for line in stream if line.strip()
                if (r := orjson.loads(line)).get("customer") == customer]


def _from_store(url: str, customer: str) -> tuple[list[dict[str, Any]], str | None]:
    reader = open_reader(url)
    try:
        rows = [e.to_json() for e in reader.ledger(customer)]
        view = reader.score(customer)
    finally:
        reader.close()
    stored = None
    if view is not None:
        reasons = ", ".join(f"{r} {v:+g}" for r, v in view.top_reasons(3))
        stored = (f"stored score {view.total:+.2f} (decayed to its last update), "
                  f"created {view.created:+g}, destroyed {-view.destroyed:+g}; top: {reasons}")
    return rows, stored


def explain_command(
    customer: Annotated[str, typer.Argument(help="customer id")],
    ledger: Annotated[str, typer.Option(help="ledger JSONL written by `run --ledger`")] = (
        "out/demo-ledger.jsonl"),
    store: Annotated[str | None, typer.Option(
        help="read the score and ledger from a store instead (redis://...)")] = None,
) -> None:
    """Show the score of one customer and each entry (rule, outcome, value, causing events)."""
    stored = None
    try:
        if store:
            rows, stored = _from_store(store, customer)
            source = store
        else:
            rows, source = _from_file(ledger, customer), ledger
    except OSError as exc:
        print_error(f"cannot read ledger {ledger}: {exc.strerror}")
        raise typer.Exit(2) from None
    except ValeurError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    if not rows:
        print_error(f"no ledger entries for customer {customer!r} in {source}")
        raise typer.Exit(1)
    rows.sort(key=lambda r: r["seq"])
    console = Console(highlight=False)
    total = sum(r["value"] for r in rows)
    by_dim: dict[str, float] = defaultdict(float)
    by_rule: dict[str, float] = defaultdict(float)
    for r in rows:
        by_dim[r["dimension"]] += r["value"]
        by_rule[r["rule"]] += r["value"]
    console.print(f"[bold]{customer}[/bold]: {total:+g} points (before decay) from "
                  f"{len(rows)} entries", markup=True)
    if stored:
        console.print(stored, markup=False)
    versions = sorted({r.get("rules_version") or "-" for r in rows})
    console.print("rules version: " + ", ".join(versions), markup=False)
    console.print("by dimension: " + ", ".join(f"{d} {v:+g}" for d, v in sorted(by_dim.items())),
                  markup=False)
    console.print("by rule: " + ", ".join(
        f"{k} {v:+g}" for k, v in sorted(by_rule.items(), key=lambda kv: kv[1])), markup=False)
    table = Table()
    for col in ("#", "time", "rule", "outcome", "dimension", "value", "events", "why"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["seq"]), r["time"], r["rule"], r["outcome"], r["dimension"],
                      f"{r['value']:+g}", " ".join(r["events"]), r["explain"])
    console.print(table)
