"""Prometheus metrics shared by both runners: injected registry, bounded labels, cached children."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from valeur_monitor import __version__
from valeur_monitor.engine.ledger import DIMENSIONS, REPORTED_OUTCOMES

NONE: Final = "none"    # label value for an empty string
OTHER: Final = "other"  # label value once a label's budget is spent, or outside its allowlist
DEFAULT_MAX_VALUES: Final = 50
MAX_VALUE_LENGTH: Final = 100   # longer free strings are never admitted as label values
CACHE_LIMIT: Final = 10_000     # raw label tuples cached per metric; beyond it, the slow path
# Free-string labels: an allowlist (`allowlists=`) or the first `max_label_values` values each.
GUARDED_LABELS: Final = ("source", "type", "rule", "team", "channel", "reason", "alert",
                         "operation")
OUTCOMES: Final = REPORTED_OUTCOMES
BANDS: Final = ("critical", "at_risk", "neutral", "positive")
DEFAULT_BAND_EDGES: Final = (-20.0, -5.0, 5.0)
KNOWN_ALERTS: Final = ("score-below-threshold", "broken-promises-7d")
# The `operation` label of valeur_store_errors_total / valeur_broker_errors_total: every value
# any runner reports is named here (and only here), so none falls into "other".
STORE_OPERATIONS: Final = ("load", "commit", "due", "watermark", "process", "advance", "census")
BROKER_OPERATIONS: Final = ("produce", "consume", "publish")
OPERATIONS: Final = STORE_OPERATIONS + BROKER_OPERATIONS
BATCH_SECONDS_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_SIZE_BUCKETS: Final = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
                             2000.0, 5000.0, 10000.0)

def band_of(score: float, edges: tuple[float, float, float] = DEFAULT_BAND_EDGES) -> str:
    """The band of a score: below edges[0] critical, below edges[1] at_risk, above edges[2]
    positive, else neutral (the same bands in metrics, the API and exports)."""
    low, mid, high = edges
    if score < low:
        return "critical"
    if score < mid:
        return "at_risk"
    return "neutral" if score <= high else "positive"

# (name, help) of the two state gauges, also exported by the scrape-time store collector.
OPEN_PROMISES: Final = ("valeur_open_promises", "Promises currently open, by rule.")
CUSTOMERS: Final = ("valeur_customers", "Customers by score band.")

_M = TypeVar("_M", Counter, Gauge)
Key = tuple[str, ...]


class LabelGuard:
    """Maps free strings to at most `max_values` label values (plus "none" and "other")."""

    def __init__(self, allowlist: Iterable[str] | None = None,
                 max_values: int = DEFAULT_MAX_VALUES) -> None:
        if max_values < 1:
            raise ValueError("max_values must be at least 1")
        self.fixed = allowlist is not None
        self.max_values = max_values
        self._admitted: set[str] = {v for v in allowlist or () if v and v != OTHER}
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        if not value:
            return NONE
        if self.fixed or len(value) > MAX_VALUE_LENGTH:
            return OTHER
        with self._lock:
            if len(self._admitted) < self.max_values:
                self._admitted.add(value)
                return value
        return OTHER

    @property
    def values(self) -> frozenset[str]:
        """Values admitted so far (never "none"/"other")."""
        return frozenset(self._admitted)


class Metrics:
    """Every metric valeur-monitor exports, registered on one (injected) registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 allowlists: Mapping[str, Iterable[str]] | None = None,
                 max_label_values: int = DEFAULT_MAX_VALUES,
                 band_edges: tuple[float, float, float] = DEFAULT_BAND_EDGES,
                 version: str = __version__, state_gauges: bool = True) -> None:
        """`state_gauges=False`: valeur_open_promises and valeur_customers are not registered
        here, because a collector computes them from the store at scrape time (workers)."""
        self.registry = registry if registry is not None else CollectorRegistry()
        lists = {name: tuple(values) for name, values in (allowlists or {}).items()}
        unknown = set(lists) - set(GUARDED_LABELS)
        if unknown:
            raise ValueError(f"no allowlist possible for label(s) {sorted(unknown)}")
        self.guards: dict[str, LabelGuard] = {
            name: LabelGuard(lists.get(name), max_label_values) for name in GUARDED_LABELS}
        self.guards["outcome"] = LabelGuard(OUTCOMES)
        self.guards["dimension"] = LabelGuard(DIMENSIONS)
        self.band_edges = _check_edges(band_edges)
        self.state_gauges = state_gauges
        r = self.registry

        def counter(name: str, doc: str, labels: Key = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def gauge(name: str, doc: str, labels: Key = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        self.events_received = counter("valeur_events_received_total",
                                       "Events read from a source.", ("source", "type"))
        self.events_processed = counter("valeur_events_processed_total",
                                        "Events applied by the engine.", ("type",))
        self.events_dead_lettered = counter("valeur_events_dead_lettered_total",
                                            "Events refused and sent to dead letters.", ("reason",))
        self.events_duplicate = counter("valeur_events_duplicate_total",
                                        "Events dropped as duplicates (same id seen before).")
        self.events_late = counter("valeur_events_late_total",
                                   "Events applied behind stream time (late, within horizon).")
        rule_labels = ("rule", "outcome", "team", "channel")
        value_labels = ("rule", "dimension", "team", "channel")
        self.rule_outcomes = counter("valeur_rule_outcomes_total",
                                     "Rule outcomes (matched, kept, broken, late, repeat, ...).",
                                     rule_labels)
        self.value_created = counter("valeur_value_created_total",
                                     "Value points created (positive rule values).", value_labels)
        self.value_destroyed = counter("valeur_value_destroyed_total",
                                       "Value points destroyed (magnitude of negative values).",
                                       value_labels)
        # Unregistered when another collector exports them (state_gauges=False).
        self.open_promises = Gauge(OPEN_PROMISES[0], OPEN_PROMISES[1], ("rule",),
                                   registry=r if state_gauges else None)
        self.customers = Gauge(CUSTOMERS[0], CUSTOMERS[1], ("band",),
                               registry=r if state_gauges else None)
        self.customer_alerts = counter("valeur_customer_alerts_total",
                                       "Per-customer alerts raised.", ("alert",))
        self.watermark = gauge("valeur_watermark_timestamp_seconds",
                               "Stream time (event-time watermark), Unix seconds.")
        self.lag = gauge("valeur_event_time_lag_seconds",
                         "Wall clock minus stream time, seconds.")
        self.batch_duration = Histogram("valeur_batch_duration_seconds",
                                        "Time spent processing one batch.",
                                        buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self.batch_size = Histogram("valeur_batch_size", "Events per processed batch.",
                                    buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.store_errors = counter("valeur_store_errors_total",
                                    "Failed store operations.", ("operation",))
        self.broker_errors = counter("valeur_broker_errors_total",
                                     "Failed broker operations.", ("operation",))
        self.build_info = gauge("valeur_build_info", "Build information (always 1).",
                                ("version",))
        self.build_info.labels(version or NONE).set(1)

        self._received: dict[Key, Counter] = {}
        self._processed: dict[Key, Counter] = {}
        self._outcomes: dict[Key, Counter] = {}
        self._created: dict[Key, Counter] = {}
        self._destroyed: dict[Key, Counter] = {}
        self._open_rules: set[str] = set()
        self._bands: dict[str, str] = {}   # customer -> band, for update_scores (never a label)
        self._band_counts = dict.fromkeys(BANDS, 0)
        for band in BANDS:
            self.customers.labels(band).set(0)
        # Known values start at 0 so that rate()/increase() see their first increment.
        for alert in lists.get("alert", KNOWN_ALERTS):
            self.customer_alerts.labels(self.guards["alert"](alert))
        for reason in lists.get("reason", ()):
            self.events_dead_lettered.labels(self.guards["reason"](reason))
        for op in lists.get("operation", ()):
            self.store_errors.labels(self.guards["operation"](op))
            self.broker_errors.labels(self.guards["operation"](op))

    # -- hot path -------------------------------------------------------------------------------
    def _child(self, cache: dict[Key, _M], metric: _M, key: Key, names: Key) -> _M:
        guards = self.guards
        child = metric.labels(*(guards[n](v) for n, v in zip(names, key, strict=True)))
        if len(cache) < CACHE_LIMIT:
            cache[key] = child
        return child

    # `n`: callers that count a whole batch first (runner/observe.py) add once per label set.
    def event_received(self, source: str, type: str, n: int = 1) -> None:
        key = (source, type)
        child = self._received.get(key)
        if child is None:
            child = self._child(self._received, self.events_received, key, ("source", "type"))
        child.inc(n)

    def event_processed(self, type: str, n: int = 1) -> None:
        key = (type,)
        child = self._processed.get(key)
        if child is None:
            child = self._child(self._processed, self.events_processed, key, ("type",))
        child.inc(n)

    def outcome(self, rule: str, outcome: str, team: str, channel: str, n: int = 1) -> None:
        key = (rule, outcome, team, channel)
        child = self._outcomes.get(key)
        if child is None:
            child = self._child(self._outcomes, self.rule_outcomes, key,
                                ("rule", "outcome", "team", "channel"))
        child.inc(n)

    def value(self, rule: str, dimension: str, team: str, channel: str, amount: float) -> None:
        """Signed value points: > 0 counts as created, < 0 as destroyed (its magnitude)."""
        if amount > 0.0:
            cache, metric = self._created, self.value_created
        elif amount < 0.0:
            cache, metric, amount = self._destroyed, self.value_destroyed, -amount
        else:
            return  # zero or NaN
        if amount == math.inf:
            return
        key = (rule, dimension, team, channel)
        child = cache.get(key)
        if child is None:
            child = self._child(cache, metric, key, ("rule", "dimension", "team", "channel"))
        child.inc(amount)

    def duplicate(self, n: int = 1) -> None:
        self.events_duplicate.inc(n)

    def late_event(self, n: int = 1) -> None:
        self.events_late.inc(n)

    def dead_letter(self, reason: str, n: int = 1) -> None:
        self.events_dead_lettered.labels(self.guards["reason"](reason)).inc(n)

    def customer_alert(self, alert: str) -> None:
        self.customer_alerts.labels(self.guards["alert"](alert)).inc()

    def store_error(self, op: str) -> None:
        self.store_errors.labels(self.guards["operation"](op)).inc()

    def broker_error(self, op: str) -> None:
        self.broker_errors.labels(self.guards["operation"](op)).inc()

    def observe_batch(self, seconds: float, size: int) -> None:
        self.batch_duration.observe(seconds)
        self.batch_size.observe(size)

    # -- state snapshots ------------------------------------------------------------------------
    def set_watermark(self, ms: int, now_ms: int) -> None:
        """Stream time and lag behind the wall clock; ms ≤ 0 (no stream time yet) is ignored."""
        if ms <= 0:
            return
        self.watermark.set(ms / 1000.0)
        self.lag.set((now_ms - ms) / 1000.0)

    def set_open_promises(self, counts: Mapping[str, int]) -> None:
        """Open promises per rule; rules set before but missing from `counts` go to 0."""
        totals: dict[str, int] = {}
        guard = self.guards["rule"]
        for rule, count in counts.items():
            label = guard(rule)
            totals[label] = totals.get(label, 0) + count
        for label in self._open_rules - totals.keys():
            self.open_promises.labels(label).set(0)
        for label, total in totals.items():
            self.open_promises.labels(label).set(total)
        self._open_rules |= totals.keys()

    def band(self, score: float) -> str:
        return band_of(score, self.band_edges)

    def set_score_bands(self, scores: Iterable[float]) -> None:
        """Count customers per band from ALL their scores (NaN skipped); see update_scores."""
        counts = dict.fromkeys(BANDS, 0)
        band = self.band
        for score in scores:
            if score == score:
                counts[band(score)] += 1
        self.set_band_counts(counts)

    def update_scores(self, changed: Mapping[str, float]) -> None:
        """Scores of the customers that changed (customer -> score), e.g. once per batch: keeps
        every customer's band in memory and sets the counts over all customers seen so far."""
        bands, counts, band = self._bands, self._band_counts, self.band
        for customer, score in changed.items():
            new = band(score) if score == score else None
            old = bands.pop(customer, None)
            if old is not None:
                counts[old] -= 1
            if new is not None:
                counts[new] += 1
                bands[customer] = new
        self.set_band_counts(counts)

    def set_band_counts(self, counts: Mapping[str, int]) -> None:
        """Customers per band; bands missing from `counts` go to 0, unknown bands are refused."""
        unknown = set(counts) - set(BANDS)
        if unknown:
            raise ValueError(f"unknown band(s) {sorted(unknown)}; bands are {', '.join(BANDS)}")
        for band in BANDS:
            self.customers.labels(band).set(counts.get(band, 0))


def _check_edges(edges: tuple[float, float, float]) -> tuple[float, float, float]:
    low, mid, high = (float(e) for e in edges)
    if not all(math.isfinite(e) for e in (low, mid, high)) or not low < mid <= high:
        raise ValueError(f"band edges must be finite with low < mid <= high, got {edges}")
    return low, mid, high


def serve(metrics: Metrics, host: str = "127.0.0.1", port: int = 9464
          ) -> tuple[WSGIServer, threading.Thread]:
    """Expose `metrics.registry` on http://host:port/metrics from a daemon thread (port 0: any)."""
    return start_http_server(port, addr=host, registry=metrics.registry)
