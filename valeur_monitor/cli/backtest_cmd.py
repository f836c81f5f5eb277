"""`valeur-monitor backtest`: two rule sets over the same events, in one pass, compared."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from valeur_monitor.archive.files import expand_inputs
from valeur_monitor.backtest import report as R
from valeur_monitor.backtest.html import write_html
from valeur_monitor.backtest.run import Backtest
from valeur_monitor.backtest.text import print_report
from valeur_monitor.cli.common import print_error, rules_or_exit
from valeur_monitor.engine.event import parse_time
from valeur_monitor.errors import ValeurError
from valeur_monitor.runner.inputs import open_input, read_batches

BATCH = 2000
EXIT_THRESHOLD = 3


def backtest_files(baseline: list[str], candidate: list[str], files: list[str], *,
                   until: str | None = None, movers: int = 10) -> R.Report:
    """Load both rule sets, run the events once, build the report."""
    runner = Backtest(rules_or_exit(baseline), rules_or_exit(candidate))
    for name in expand_inputs(files):
        with open_input(name) as stream:
            for batch in read_batches(stream, BATCH):
                runner.feed(batch)
    return R.build(runner.finish(parse_time(until) if until else None), movers=movers)


def backtest_command(
    files: Annotated[list[str], typer.Argument(help="event files (JSONL, .gz ok, archives)")],
    baseline: Annotated[list[str], typer.Option("--baseline", "-b",
                                                help="rule files/dirs of the baseline")],
    candidate: Annotated[list[str], typer.Option("--candidate", "-c",
                                                 help="rule files/dirs of the candidate")],
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="write an HTML report")] = None,
    fail_if: Annotated[list[str] | None, typer.Option(
        "--fail-if", help="exit 3 when METRIC>N holds (>, >=, <, <=), e.g. "
                          "destroyed_delta>100, band_down>0, alerts_appeared>=5")] = None,
    until: Annotated[str | None, typer.Option(
        help="advance stream time to this RFC 3339 instant (default: last event)")] = None,
    movers: Annotated[int, typer.Option(help="top movers to report")] = 10,
) -> None:
    """Compare a baseline and a candidate rule set over the same events, in one pass.

    Reports what the candidate changes: value by rule and dimension, bands, movers, alerts."""
    try:
        conditions = R.parse_fail_if(fail_if or [])
        report = backtest_files(baseline, candidate, files, until=until, movers=movers)
        if html is not None:
            write_html(report, html)
    except (ValeurError, OSError, ValueError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(report, Console(highlight=False))
    reasons = R.failed(report, conditions)
    if reasons:
        Console(stderr=True, highlight=False).print(
            "[red]backtest thresholds crossed:[/red] " + "; ".join(reasons))
        raise typer.Exit(EXIT_THRESHOLD)
