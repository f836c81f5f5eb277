"""Metrics for the embedded runner: a batch hook feeding the typed Metrics object."""

from __future__ import annotations

import time
from collections.abc import Callable

from valeur_monitor.engine.event import CHANNELS, EVENT_TYPES
from valeur_monitor.engine.rules import RuleSet
from valeur_monitor.metrics import Metrics, serve
from valeur_monitor.service import BatchResult


def record_batch(metrics: Metrics, result: BatchResult, seconds: float) -> None:
    """Count one batch: events, dead letters, outcomes, values, alerts, stream time."""
    for event in result.events:
        metrics.event_received(event.source, event.type)
        metrics.event_processed(event.type)
    for letter in result.dead_letters:
        metrics.dead_letter(letter.reason)
    for _ in range(result.duplicates):
        metrics.duplicate()
    for _ in range(result.late):
        metrics.late_event()
    for rule, outcome, team, channel in result.outcomes:
        metrics.outcome(rule, outcome, team, channel)
    for entry in result.entries:
        metrics.value(entry.rule, entry.dimension, entry.team, entry.channel, entry.value)
    for notice in result.notices:
        if notice.kind == "alert":
            metrics.customer_alert(notice.id)
    if result.changed:  # bands are counted over every customer seen, not only this batch's
        metrics.update_scores({c: s.score.total for c, s in result.changed.items()})
    metrics.observe_batch(seconds, result.received)
    if result.watermark:
        metrics.set_watermark(result.watermark, int(time.time() * 1000))


def metrics_for(rules: RuleSet) -> Metrics:
    """Metrics whose free-text labels are bounded by what the rules and catalogue name."""
    return Metrics(allowlists={"rule": rules.rule_ids(), "type": list(EVENT_TYPES),
                               "channel": list(CHANNELS)})


def metrics_hook(port: int, rules: RuleSet,
                 host: str = "0.0.0.0") -> Callable[[BatchResult, float], None]:
    """Serve /metrics on `port` and return the hook that updates it after each batch."""
    metrics = metrics_for(rules)
    serve(metrics, host, port)

    def hook(result: BatchResult, seconds: float) -> None:
        record_batch(metrics, result, seconds)

    return hook
