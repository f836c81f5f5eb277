"""`valeur-monitor simulate`: write a deterministic simulated support operation as JSONL events."""

from __future__ import annotations

import os
import sys
import time
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from valeur_monitor.errors import ConfigError
from valeur_monitor.simulate import Rates, SimulationConfig, write_jsonl
from valeur_monitor.simulate.config import DEFAULT_START, DEFAULT_TIMEZONE


def parse_start(text: str, timezone: str = DEFAULT_TIMEZONE) -> datetime:
    """'2026-11-02' (local midnight) or an ISO date-time; a time without offset is local."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(),
                                    ZoneInfo(timezone))
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (2026-11-02) or an ISO date-time",
                                 param_hint="--start") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


def parse_rates(items: list[str]) -> dict[str, float]:
    """['callback_missed=0.2', ...] -> {'callback_missed': 0.2}; names are checked later."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip().replace("-", "_")] = float(value)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: expected NAME=VALUE, e.g. callback_missed=0.2",
                                     param_hint="--rate") from None
    return out


def simulate_command(
    customers: Annotated[int, typer.Option(help="simulated customers", min=1)] = 1000,
    days: Annotated[int, typer.Option(help="simulated days", min=1)] = 7,
    start: Annotated[str, typer.Option(
        help="first day (local midnight, Europe/Paris) or ISO date-time")] = (
        DEFAULT_START.date().isoformat()),
    seed: Annotated[int, typer.Option(help="random seed: same seed, same events", min=0)] = 0,
    out: Annotated[str, typer.Option(
        "--out", "-o", help="output file ('-' = stdout; '.gz' suffix compresses)")] = "-",
    bad_rate: Annotated[float, typer.Option(
        help="fraction of malformed lines, for dead-letter tests", min=0.0, max=0.99)] = 0.0,
    disorder: Annotated[float, typer.Option(
        help="fraction of events emitted late (by at most --disorder-window seconds)",
        min=0.0, max=1.0)] = 0.0,
    disorder_window: Annotated[int, typer.Option(
        help="maximum lateness of a disordered event, seconds", min=1)] = 120,
    rate: Annotated[list[str] | None, typer.Option(
        "--rate", metavar="NAME=VALUE",
        help=f"override a rate (repeatable); names: {', '.join(Rates.names())}")] = None,
    cloudevents: Annotated[bool, typer.Option(
        "--cloudevents", help="write CloudEvents 1.0 structured JSON instead")] = False,
) -> None:
    """Simulate a support operation (requests, callbacks, visits, surveys) as canonical events."""
    try:
        config = SimulationConfig(
            seed=seed, customers=customers, days=days, start=parse_start(start),
            bad_rate=bad_rate, disorder=disorder, disorder_window_seconds=disorder_window,
        ).with_rates(**parse_rates(rate or []))
    except ConfigError as exc:
        typer.echo(f"simulate: {exc}", err=True)
        raise typer.Exit(2) from None
    began = time.perf_counter()
    try:
        count = write_jsonl(out, config, cloudevents=cloudevents)
    except BrokenPipeError:   # e.g. `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        typer.echo("simulate: stopped early, the reader closed the output", err=True)
        raise typer.Exit(141) from None
    except OSError as exc:
        typer.echo(f"simulate: cannot write {out}: {exc}", err=True)
        raise typer.Exit(1) from None
    elapsed = time.perf_counter() - began
    target = "stdout" if out == "-" else out
    what = "events" if not bad_rate else f"lines (events and ~{bad_rate:.1%} malformed)"
    typer.echo(f"simulate: {count:,} {what} -> {target} ({customers:,} customers, {days} days "
               f"from {config.start.date().isoformat()}, seed {seed}; {elapsed:.1f}s, "
               f"{count / max(elapsed, 1e-9):,.0f} events/s)", err=True)
    sys.stderr.flush()
