"""The backtest report as terminal tables, readable at 80 columns in a pipe."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from valeur_monitor.backtest.report import Report
from valeur_monitor.engine.event import format_time
from valeur_monitor.metrics import BANDS


def _num(x: float) -> str:
    return f"{x:+,.1f}" if abs(x) >= 0.05 else "0"


def print_report(report: Report, console: Console, limit: int = 10) -> None:
    base, cand = report.totals(0), report.totals(1)
    until = format_time(report.until) if report.until else "-"
    console.print(f"[bold]backtest[/bold] {report.events:,} events, {len(report.scores):,} "
                  f"customers, stream time {until}")
    console.print(f"baseline {report.baseline_version}  candidate {report.candidate_version}",
                  markup=False)
    r = report.rules
    changed = ", ".join(r["changed"] + [f"+{x}" for x in r["added"]]
                        + [f"-{x}" for x in r["removed"]]) or "none"
    console.print(f"rules: {len(r['shared'])} shared (run once), {len(r['changed'])} changed, "
                  f"{len(r['added'])} added, {len(r['removed'])} removed: {changed}",
                  markup=False)

    totals = Table(title="Value", title_justify="left")
    for col in ("", "baseline", "candidate", "delta"):
        totals.add_column(col, justify="right" if col else "left")
    for name, sign in (("created", 1), ("destroyed", -1), ("net", 1)):
        totals.add_row(name, _num(sign * base[name]), _num(sign * cand[name]),
                       _num(sign * (cand[name] - base[name])))
    console.print(totals)

    rows = [x for x in report.rows if abs(x.delta) > 1e-9]
    by_rule = Table(title="Net value by rule and dimension (rows that change)",
                    title_justify="left")
    for col in ("rule", "dimension", "baseline", "candidate", "delta"):
        by_rule.add_column(col, justify="left" if col in ("rule", "dimension") else "right")
    for row in sorted(rows, key=lambda x: (x.rule, x.dimension)):
        by_rule.add_row(row.rule, row.dimension, _num(row.net[0]), _num(row.net[1]),
                        _num(row.delta))
    console.print(by_rule)
    console.print(f"{len(report.rows) - len(rows)} rule/dimension rows unchanged")

    bands = Table(title="Customers by score band", title_justify="left")
    for col in ("band", "baseline", "candidate", "delta"):
        bands.add_column(col, justify="left" if col == "band" else "right")
    b0, b1 = report.bands(0), report.bands(1)
    for band in BANDS:
        bands.add_row(band, f"{b0[band]:,}", f"{b1[band]:,}", f"{b1[band] - b0[band]:+,}")
    console.print(bands)

    changes = report.band_changes()
    console.print(f"{len(changes):,} customers change band")
    movers = Table(title=f"Top {len(report.movers)} movers", title_justify="left")
    for col in ("customer", "baseline", "candidate", "delta", "largest difference"):
        movers.add_column(col, justify="right" if col in ("baseline", "candidate", "delta")
                          else "left", overflow="fold")
    for m in report.movers[:limit]:
        why = next(iter(m["differences"]), None)
        text = f"{why['rule']} {why['dimension']} {why['delta']:+g}" if why else ""
        movers.add_row(m["customer"], _num(m["baseline"]), _num(m["candidate"]),
                       _num(m["delta"]), text)
    console.print(movers)

    console.print(f"alerts: {len(report.alerts_appeared):,} appear, "
                  f"{len(report.alerts_vanished):,} vanish")
    for label, notices in (("+", report.alerts_appeared), ("-", report.alerts_vanished)):
        for n in notices[:limit]:
            console.print(f"  {label} {n.id} {n.customer} {format_time(n.time)}", markup=False)
