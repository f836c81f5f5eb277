"""Metrics for the embedded runner: a batch hook feeding the typed Metrics object."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping

from valeur_monitor.engine.event import CHANNELS, EVENT_TYPES
from valeur_monitor.engine.rules import RuleSet
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.metrics import OPERATIONS, Metrics, serve
from valeur_monitor.service import BatchResult
from valeur_monitor.store.census import open_rules


class OpenPromises:
    """Open promises per rule over every customer this process has seen (bounded by rules)."""

    def __init__(self) -> None:
        self._by_customer: dict[str, Counter[str]] = {}
        self.totals: Counter[str] = Counter()

    def update(self, changed: Mapping[str, CustomerState]) -> None:
        for customer, state in changed.items():
            now = Counter(open_rules(state))
            before = self._by_customer.get(customer)
            if before:
                self.totals.subtract(before)
            self.totals.update(now)
            if now:
                self._by_customer[customer] = now
            else:
                self._by_customer.pop(customer, None)


def record_batch(metrics: Metrics, result: BatchResult, seconds: float,
                 promises: OpenPromises | None = None) -> None:
    """Count one batch: records, dead letters, outcomes, values, alerts, promises, stream time."""
    for letter in result.dead_letters:
        metrics.event_received("", "invalid")  # received too, though never decoded
        metrics.dead_letter(letter.reason)
    for event in result.events:
        metrics.event_received(event.source, event.type)
        metrics.event_processed(event.type)
    for _ in range(result.duplicates):
        metrics.duplicate()
    for _ in range(result.late):
        metrics.late_event()
    for o in result.outcomes:
        metrics.outcome(o.rule, o.outcome, o.team, o.channel)
    for entry in result.entries:
        metrics.value(entry.rule, entry.dimension, entry.team, entry.channel, entry.value)
    for notice in result.notices:
        if notice.kind == "alert":
            metrics.customer_alert(notice.id)
    if result.changed and metrics.state_gauges:  # over every customer seen, not this batch's
        metrics.update_scores({c: s.score.total for c, s in result.changed.items()})
        if promises is not None:
            promises.update(result.changed)
            metrics.set_open_promises({r: n for r, n in promises.totals.items() if n > 0})
    metrics.observe_batch(seconds, result.received)
    if result.watermark:
        metrics.set_watermark(result.watermark, int(time.time() * 1000))


def metrics_for(rules: RuleSet, *, state_gauges: bool = True) -> Metrics:
    """Metrics whose free-text labels are bounded by what the rules and catalogue name.

    `state_gauges=False` (workers): open promises and score bands come from a scrape-time
    collector over the shared store instead (streaming/collectors.py).
    """
    metrics = Metrics(allowlists={"rule": rules.rule_ids(), "type": [*EVENT_TYPES, "invalid"],
                                  "channel": list(CHANNELS), "operation": list(OPERATIONS)},
                      state_gauges=state_gauges)
    if state_gauges:
        metrics.set_open_promises({})  # every rule at 0 until promises open
    return metrics


def metrics_hook(port: int, rules: RuleSet,
                 host: str = "127.0.0.1") -> Callable[[BatchResult, float], None]:
    """Serve /metrics on `port` and return the hook that updates it after each batch."""
    metrics = metrics_for(rules)
    serve(metrics, host, port)
    promises = OpenPromises()

    def hook(result: BatchResult, seconds: float) -> None:
        record_batch(metrics, result, seconds, promises)

    return hook
