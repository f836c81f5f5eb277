"""`valeur-monitor demo`: simulate a week of support for 1,000 customers and run it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from valeur_monitor.cli.common import stdout_console
from valeur_monitor.cli.report import print_report
from valeur_monitor.cli.run_cmd import run_files
from valeur_monitor.simulate import SimulationConfig, write_jsonl


def demo_command(
    customers: Annotated[int, typer.Option(help="simulated customers")] = 1000,
    days: Annotated[int, typer.Option(help="simulated days")] = 7,
    seed: Annotated[int, typer.Option(help="simulation seed")] = 1,
    out: Annotated[str, typer.Option(help="folder for events, ledger and scores")] = "out",
) -> None:
    """The quickstart: no server, prints which customers lost value, why, and to which rules."""
    console = stdout_console()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    events = folder / "demo-events.jsonl.gz"
    count = write_jsonl(events, SimulationConfig(seed=seed, customers=customers, days=days,
                                                 bad_rate=0.001))
    console.print(f"simulated {count:,} events for {customers:,} customers over {days} days "
                  f"-> {events}")
    ledger, scores, dead = (folder / "demo-ledger.jsonl", folder / "demo-scores.csv",
                            folder / "demo-dead-letters.jsonl")
    report = run_files([str(events)], ledger=str(ledger), scores=str(scores),
                       dead_letters=str(dead))
    print_report(report, console, str(dead))
    if report.worst:
        who = report.worst[0].customer
        console.print(f"\nledger: {ledger}   scores: {scores}\n"
                      f"next: valeur-monitor explain {who} --ledger {ledger}")
