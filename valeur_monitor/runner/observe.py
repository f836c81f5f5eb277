"""Metrics for the embedded runner: a batch hook feeding the typed Metrics object."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.engine.event import CHANNELS
from valeur_monitor.engine.rules import RuleSet
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.metrics import OPERATIONS, Metrics, serve
from valeur_monitor.service import BatchResult
from valeur_monitor.store.base import Store
from valeur_monitor.store.census import census_for, open_rules


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
    """Count one batch: records, dead letters, outcomes, values, alerts, stream time.

    Counted per label set first, so each Prometheus child is touched once per batch rather
    than once per event. With `promises`, open promises and score bands are recounted from
    the batch's changed customers; without, a scrape-time collector reads them (`watch`).
    """
    if result.dead_letters:
        metrics.event_received("", "invalid", len(result.dead_letters))  # never decoded
        for reason, n in Counter(d.reason for d in result.dead_letters).items():
            metrics.dead_letter(reason, n)
    if result.events:
        for (source, etype), n in Counter((e.source, e.type) for e in result.events).items():
            metrics.event_received(source, etype, n)
        for etype, n in Counter(e.type for e in result.events).items():
            metrics.event_processed(etype, n)
    if result.duplicates:
        metrics.duplicate(result.duplicates)
    if result.late:
        metrics.late_event(result.late)
    for (rule, outcome, team, channel), n in Counter(result.outcomes).items():
        metrics.outcome(rule, outcome, team, channel, n)
    if result.entries:
        values: dict[tuple[str, str, str, str, bool], float] = {}
        for e in result.entries:
            key = (e.rule, e.dimension, e.team, e.channel, e.value > 0)
            values[key] = values.get(key, 0.0) + e.value
        for (rule, dimension, team, channel, _), total in values.items():
            metrics.value(rule, dimension, team, channel, total)
    for notice in result.notices:
        if notice.kind == "alert":
            metrics.customer_alert(notice.id)
    if promises is not None and result.changed and metrics.state_gauges:
        metrics.update_scores({c: s.score.total for c, s in result.changed.items()})
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
    types = [*event_catalogue.active().names(), "invalid"]
    metrics = Metrics(allowlists={"rule": rules.rule_ids(), "type": types,
                                  "channel": list(CHANNELS), "operation": list(OPERATIONS)},
                      state_gauges=state_gauges)
    if state_gauges:
        metrics.set_open_promises({})  # every rule at 0 until promises open
    return metrics


class MetricsHook:
    """Serves /metrics and counts each batch; open promises and score bands are read from
    the store when Prometheus scrapes (`watch`), not recounted after every batch."""

    def __init__(self, port: int, rules: RuleSet, host: str = "127.0.0.1") -> None:
        self.rules = rules
        self.metrics = metrics_for(rules, state_gauges=False)
        serve(self.metrics, host, port)

    def watch(self, store: Store) -> None:
        """Read open promises and score bands from `store` at scrape time."""
        from valeur_monitor.streaming.collectors import StoreCollector

        self.metrics.registry.register(StoreCollector(
            census_for(store), self.rules.rule_ids(), self.metrics.band_edges,
            on_error=lambda exc: self.metrics.store_error("census")))

    def __call__(self, result: BatchResult, seconds: float) -> None:
        record_batch(self.metrics, result, seconds)


def metrics_hook(port: int, rules: RuleSet, host: str = "127.0.0.1") -> MetricsHook:
    """Serve /metrics on `port` and return the hook that updates it after each batch."""
    return MetricsHook(port, rules, host)
