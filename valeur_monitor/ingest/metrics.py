"""Prometheus metrics of the ingest server: per source (configured, so bounded), no identities."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """Requests by source and HTTP status, events and dead letters, time to a durable answer."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter("valeur_ingest_requests_total",
                                "Webhook requests by source and HTTP status.",
                                ("source", "status"), registry=self.registry)
        self.events = Counter("valeur_ingest_events_total",
                              "Canonical events stored durably, by source.", ("source",),
                              registry=self.registry)
        self.dead_letters = Counter("valeur_ingest_dead_letters_total",
                                    "Payloads kept as dead letters, by source and reason.",
                                    ("source", "reason"), registry=self.registry)
        self.seconds = Histogram("valeur_ingest_request_seconds",
                                 "Time from the request to its answer (after the durable write).",
                                 ("source",), buckets=LATENCY_BUCKETS, registry=self.registry)

    def request(self, source: str, status: int, seconds: float) -> None:
        self.requests.labels(source=source, status=str(status)).inc()
        self.seconds.labels(source=source).observe(seconds)

    def stored(self, source: str, events: int, reasons: dict[str, int]) -> None:
        if events:
            self.events.labels(source=source).inc(events)
        for reason, n in reasons.items():
            self.dead_letters.labels(source=source, reason=reason).inc(n)
