"""The end-of-run summary printed by `run` and `demo`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from valeur_monitor.engine.event import format_time
from valeur_monitor.runner.embedded import RunReport


def print_report(report: RunReport, console: Console, dead_path: str | None) -> None:
    rate = report.received / report.seconds if report.seconds else 0.0
    console.print(
        f"[bold]{report.received:,}[/bold] records in {report.seconds:.1f} s ({rate:,.0f}/s): "
        f"{report.processed:,} events applied, {sum(report.dead_letters.values()):,} dead "
        f"letters, {report.duplicates:,} duplicates, {report.late:,} late; "
        f"{report.customers:,} customers; stream time {format_time(report.watermark)}")
    if report.dead_letters:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(report.dead_letters.items()))
        console.print(f"dead letters ({reasons}) written to {dead_path}")
    created, destroyed = sum(report.created.values()), sum(report.destroyed.values())
    console.print(f"value created [green]+{created:,.0f}[/green], destroyed "
                  f"[red]-{destroyed:,.0f}[/red], net {created - destroyed:+,.0f} points "
                  f"in {report.entries:,} ledger entries")

    by_rule = Table(title="Value by rule", show_lines=False)
    for col in ("rule", "outcomes", "created", "destroyed"):
        by_rule.add_column(col, justify="left" if col == "rule" else "right")
    rules = sorted({r for r, _ in report.created} | {r for r, _ in report.destroyed})
    outcome_text: dict[str, str] = {}
    for (rule, outcome), n in sorted(report.outcomes.items()):
        outcome_text[rule] = (outcome_text.get(rule, "") + f" {outcome}={n:,}").strip()
    for rule in sorted(rules, key=lambda r: -_sum(report.destroyed, r) + _sum(report.created, r)):
        by_rule.add_row(rule, outcome_text.get(rule, ""), f"{_sum(report.created, rule):,.0f}",
                        f"{_sum(report.destroyed, rule):,.0f}")
    console.print(by_rule)

    by_dim = Table(title="Value by dimension")
    for col in ("dimension", "created", "destroyed"):
        by_dim.add_column(col, justify="left" if col == "dimension" else "right")
    dims: dict[str, float] = defaultdict(float)
    for (_, dim), v in report.created.items():
        dims[dim] += v
    for (_, dim), v in report.destroyed.items():
        dims[dim] -= v
    for dim in sorted(dims):
        c = sum(v for (_, d), v in report.created.items() if d == dim)
        d_ = sum(v for (_, d), v in report.destroyed.items() if d == dim)
        by_dim.add_row(dim, f"{c:,.0f}", f"{d_:,.0f}")
    console.print(by_dim)

    if report.notices:
        alerts = ", ".join(f"{k} {i}: {n:,}" for (k, i), n in sorted(report.notices.items()))
        console.print(f"notices: {alerts}")

    as_of = f" (scores as of {format_time(report.as_of)})" if report.as_of else ""
    worst = Table(title=f"The {len(report.worst)} customers who lost most{as_of}")
    for col in ("customer", "score", "top reasons"):
        worst.add_column(col, justify="right" if col == "score" else "left")
    for view in report.worst:
        reasons = ", ".join(f"{r} {v:+.0f}" for r, v in view.top_reasons(3))
        worst.add_row(view.customer, f"{view.total:+.1f}", reasons)
    console.print(worst)


def _sum(counter: Mapping[tuple[str, str], float], rule: str) -> float:
    return sum(v for (r, _), v in counter.items() if r == rule)


def report_dict(report: RunReport, dead_path: str | None) -> dict[str, Any]:
    """The end-of-run summary as plain data (`run --json`): the same figures as the tables."""
    rules = sorted({r for r, _ in report.created} | {r for r, _ in report.destroyed}
                   | {r for r, _ in report.outcomes})
    dims = sorted({d for _, d in report.created} | {d for _, d in report.destroyed})
    created, destroyed = sum(report.created.values()), sum(report.destroyed.values())
    return {
        "records": report.received, "events_applied": report.processed,
        "duplicates": report.duplicates, "late": report.late,
        "dead_letters": dict(sorted(report.dead_letters.items())),
        "dead_letters_file": dead_path if report.dead_letters else None,
        "customers": report.customers,
        "stream_time": format_time(report.watermark) if report.watermark else None,
        "as_of": format_time(report.as_of) if report.as_of else None,
        "seconds": round(report.seconds, 3),
        "ledger_entries": report.entries,
        "value": {"created": created, "destroyed": destroyed, "net": created - destroyed},
        "by_rule": [{"rule": rule,
                     "outcomes": {o: n for (r, o), n in sorted(report.outcomes.items())
                                  if r == rule},
                     "created": _sum(report.created, rule),
                     "destroyed": _sum(report.destroyed, rule)} for rule in rules],
        "by_dimension": [{"dimension": dim,
                          "created": sum(v for (_, d), v in report.created.items() if d == dim),
                          "destroyed": sum(v for (_, d), v in report.destroyed.items()
                                           if d == dim)} for dim in dims],
        "notices": [{"kind": k, "id": i, "count": n}
                    for (k, i), n in sorted(report.notices.items())],
        "worst": [{"customer": v.customer, "score": v.total, "at": format_time(v.at),
                   "top_reasons": [{"rule": r, "value": x} for r, x in v.top_reasons(3)]}
                  for v in report.worst],
    }
