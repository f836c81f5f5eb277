"""The backtest report: value per rule and dimension, bands, movers, alerts, CI thresholds."""

from __future__ import annotations

import operator
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from valeur_monitor.backtest.run import Pass
from valeur_monitor.engine.event import format_time
from valeur_monitor.engine.ledger import LedgerEntry, Notice
from valeur_monitor.errors import ConfigError
from valeur_monitor.metrics import BANDS, band_of

SIDES = ("baseline", "candidate")


@dataclass(frozen=True)
class RuleRow:
    """Value of one rule in one dimension on both sides (created ≥ 0, destroyed ≥ 0)."""

    rule: str
    dimension: str
    created: tuple[float, float]
    destroyed: tuple[float, float]

    @property
    def net(self) -> tuple[float, float]:
        return (self.created[0] - self.destroyed[0], self.created[1] - self.destroyed[1])

    @property
    def delta(self) -> float:
        return self.net[1] - self.net[0]


@dataclass
class Report:
    """What a backtest found; `to_json` is the `--json` document."""

    baseline_version: str
    candidate_version: str
    events: int
    dead_letters: int
    until: int
    rules: dict[str, list[str]]
    rows: list[RuleRow]
    scores: dict[str, tuple[float, float]]            # customer -> (baseline, candidate)
    movers: list[dict[str, Any]] = field(default_factory=list)
    alerts_appeared: list[Notice] = field(default_factory=list)
    alerts_vanished: list[Notice] = field(default_factory=list)

    def totals(self, side: int) -> dict[str, float]:
        created = sum(r.created[side] for r in self.rows)
        destroyed = sum(r.destroyed[side] for r in self.rows)
        return {"created": created, "destroyed": destroyed, "net": created - destroyed}

    def bands(self, side: int) -> dict[str, int]:
        counts = Counter(band_of(s[side]) for s in self.scores.values())
        return {b: counts.get(b, 0) for b in BANDS}

    def band_changes(self) -> list[tuple[str, str, str, float, float]]:
        out = []
        for customer, (b, c) in sorted(self.scores.items()):
            if band_of(b) != band_of(c):
                out.append((customer, band_of(b), band_of(c), b, c))
        return out

    def metrics(self) -> dict[str, float]:
        """The numbers `--fail-if` can test."""
        base, cand = self.totals(0), self.totals(1)
        changes = self.band_changes()
        rank = {b: i for i, b in enumerate(BANDS)}
        return {
            "net_delta": cand["net"] - base["net"],
            "created_delta": cand["created"] - base["created"],
            "destroyed_delta": cand["destroyed"] - base["destroyed"],
            "band_changes": len(changes),
            "band_down": sum(1 for _c, f, t, _b, _n in changes if rank[t] < rank[f]),
            "to_critical": sum(1 for _c, _f, t, _b, _n in changes if t == "critical"),
            "customers_changed": sum(1 for b, c in self.scores.values() if abs(c - b) > 1e-9),
            "alerts_appeared": len(self.alerts_appeared),
            "alerts_vanished": len(self.alerts_vanished),
        }

    def to_json(self, scores: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "baseline": {"rules_version": self.baseline_version, **_side(self, 0)},
            "candidate": {"rules_version": self.candidate_version, **_side(self, 1)},
            "events": self.events, "dead_letters": self.dead_letters,
            "until": format_time(self.until) if self.until else None,
            "customers": len(self.scores), "rules": self.rules, "metrics": self.metrics(),
            "by_rule": [{"rule": r.rule, "dimension": r.dimension,
                         "baseline": {"created": _r(r.created[0]), "destroyed": _r(r.destroyed[0]),
                                      "net": _r(r.net[0])},
                         "candidate": {"created": _r(r.created[1]),
                                       "destroyed": _r(r.destroyed[1]), "net": _r(r.net[1])},
                         "delta": _r(r.delta)} for r in self.rows],
            "band_changes": [{"customer": c, "from": f, "to": t, "baseline": _r(b),
                              "candidate": _r(n)} for c, f, t, b, n in self.band_changes()],
            "movers": self.movers,
            "alerts": {"appeared": [n.to_json() for n in self.alerts_appeared],
                       "vanished": [n.to_json() for n in self.alerts_vanished]},
        }
        if scores:
            out["scores"] = {c: {"baseline": _r(b), "candidate": _r(n)}
                             for c, (b, n) in sorted(self.scores.items())}
        return out


def _r(x: float) -> float:
    return round(x, 4)


def _side(report: Report, side: int) -> dict[str, Any]:
    return {"totals": {k: _r(v) for k, v in report.totals(side).items()},
            "bands": report.bands(side)}


def build(result: Pass, movers: int = 10, entries_per_mover: int = 12) -> Report:
    """Turn a pass into a report; value sums come from every stored entry of both sides."""
    created: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    destroyed: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    stores = ((result.shared, (0, 1)), (result.only_baseline, (0,)),
              (result.only_candidate, (1,)))
    for store, sides in stores:
        for customer in store.customers():
            for e in store.ledger(customer):
                bucket = created if e.value >= 0 else destroyed
                for side in sides:
                    bucket[(e.rule, e.dimension)][side] += abs(e.value)
    keys = sorted(set(created) | set(destroyed))
    rows = [RuleRow(rule, dim, (created[(rule, dim)][0], created[(rule, dim)][1]),
                    (destroyed[(rule, dim)][0], destroyed[(rule, dim)][1]))
            for rule, dim in keys]
    customers = set(result.baseline.scores) | set(result.candidate.scores)
    scores = {c: (result.baseline.scores.get(c, 0.0), result.candidate.scores.get(c, 0.0))
              for c in customers}
    plan = result.plan
    report = Report(
        baseline_version=result.baseline.rules.version,
        candidate_version=result.candidate.rules.version,
        events=result.events, dead_letters=result.dead_letters, until=result.until,
        rules={"shared": sorted(plan.shared), "changed": sorted(plan.changed),
               "added": sorted(plan.added), "removed": sorted(plan.removed)},
        rows=rows, scores=scores)
    moved = sorted((c for c, (b, n) in scores.items() if abs(n - b) > 1e-9),
                   key=lambda c: (-abs(scores[c][1] - scores[c][0]), c))[:movers]
    for customer in moved:
        b, n = scores[customer]
        report.movers.append({
            "customer": customer, "baseline": _r(b), "candidate": _r(n), "delta": _r(n - b),
            "band": [band_of(b), band_of(n)],
            "differences": _differences(result.differing("baseline", customer),
                                        result.differing("candidate", customer)),
            "entries": {side: [_entry(e) for e in result.differing(side, customer)[
                :entries_per_mover]] for side in SIDES}})
    key: Callable[[Notice], tuple[str, str, int]] = lambda n: (n.customer, n.id, n.time)  # noqa: E731
    base = {key(n): n for n in result.baseline.alerts}
    cand = {key(n): n for n in result.candidate.alerts}
    report.alerts_appeared = [cand[k] for k in sorted(set(cand) - set(base))]
    report.alerts_vanished = [base[k] for k in sorted(set(base) - set(cand))]
    return report


def _differences(base: list[LedgerEntry], cand: list[LedgerEntry]) -> list[dict[str, Any]]:
    """Undecayed value per (rule, dimension) on each side, largest difference first."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for side, entries in ((0, base), (1, cand)):
        for e in entries:
            sums[(e.rule, e.dimension)][side] += e.value
    rows = [{"rule": r, "dimension": d, "baseline": _r(v[0]), "candidate": _r(v[1]),
             "delta": _r(v[1] - v[0])} for (r, d), v in sums.items() if abs(v[1] - v[0]) > 1e-9]
    return sorted(rows, key=lambda x: (-abs(x["delta"]), x["rule"], x["dimension"]))


def _entry(e: LedgerEntry) -> dict[str, Any]:
    return {"time": format_time(e.time), "rule": e.rule, "outcome": e.outcome,
            "dimension": e.dimension, "value": e.value, "events": list(e.events),
            "explain": e.explain}


_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def parse_fail_if(texts: list[str]) -> list[tuple[str, str, float]]:
    """`METRIC>N` conditions (>, >=, <, <=); unknown metrics are a ConfigError."""
    known = set(Report("", "", 0, 0, 0, {}, [], {}).metrics())
    out = []
    for text in texts:
        m = _CONDITION.match(text)
        if m is None:
            raise ConfigError(f"--fail-if {text!r}: expected METRIC>N (>, >=, <, <=)")
        name, op, number = m.group(1), m.group(2), float(m.group(3))
        if name not in known:
            raise ConfigError(f"--fail-if {text!r}: unknown metric {name!r} "
                              f"(one of {', '.join(sorted(known))})")
        out.append((name, op, number))
    return out


def failed(report: Report, conditions: list[tuple[str, str, float]]) -> list[str]:
    """The conditions that hold (each a reason for a non-zero exit)."""
    values = report.metrics()
    return [f"{name} = {values[name]:g} {op} {limit:g}" for name, op, limit in conditions
            if _OPS[op](values[name], limit)]
