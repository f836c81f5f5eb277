"""`valeur-monitor explain CUSTOMER`: a customer's score and every ledger entry behind it."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from valeur_monitor.cli.common import err, print_error
from valeur_monitor.runner.inputs import open_input


def explain_command(
    customer: Annotated[str, typer.Argument(help="customer id")],
    ledger: Annotated[str, typer.Option(help="ledger JSONL written by `run --ledger`")] = (
        "out/demo-ledger.jsonl"),
) -> None:
    """Show the score of one customer and each entry (rule, outcome, value, causing events)."""
    try:
        with open_input(ledger) as stream:
            rows = [r for line in stream if line.strip()
                    if (r := orjson.loads(line)).get("customer") == customer]
    except OSError as exc:
        print_error(f"cannot read ledger {ledger}: {exc.strerror}")
        raise typer.Exit(2) from None
    if not rows:
        err.print(f"no ledger entries for customer {customer!r} in {ledger}")
        raise typer.Exit(1)
    rows.sort(key=lambda r: r["seq"])
    console = Console(highlight=False)
    total = sum(r["value"] for r in rows)
    by_dim: dict[str, float] = defaultdict(float)
    by_rule: dict[str, float] = defaultdict(float)
    for r in rows:
        by_dim[r["dimension"]] += r["value"]
        by_rule[r["rule"]] += r["value"]
    console.print(f"[bold]{customer}[/bold]: score {total:+g} (before decay) from "
                  f"{len(rows)} entries")
    console.print("by dimension: " + ", ".join(f"{d} {v:+g}" for d, v in sorted(by_dim.items())))
    console.print("by rule: " + ", ".join(
        f"{k} {v:+g}" for k, v in sorted(by_rule.items(), key=lambda kv: kv[1])))
    table = Table()
    for col in ("#", "time", "rule", "outcome", "dimension", "value", "events", "why"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["seq"]), r["time"], r["rule"], r["outcome"], r["dimension"],
                      f"{r['value']:+g}", " ".join(r["events"]), r["explain"])
    console.print(table)
