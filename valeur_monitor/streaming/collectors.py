"""Scrape-time Prometheus collectors of a worker: store-wide counts and consumer lag.

* `StoreCollector`: valeur_open_promises{rule} and valeur_customers{band} read from the shared
  store (store/census.py) when Prometheus scrapes, so every worker reports the same, right
  totals whatever the number of workers and rebalances (take ``max`` across workers, not
  ``sum``). A read is cached for `ttl` seconds, so a scrape stays cheap.
* `LagCollector`: valeur_consumer_lag_records{topic, partition}, records of the events topic
  not yet processed, per partition this worker owns (high watermark minus the next offset).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from valeur_monitor.metrics import BANDS, CUSTOMERS, OPEN_PROMISES, OTHER
from valeur_monitor.store.census import Census

log = logging.getLogger(__name__)

LAG = ("valeur_consumer_lag_records",
       "Records of the events topic not yet processed (high watermark minus next offset).")


class StoreCollector(Collector):
    """valeur_open_promises and valeur_customers from the store (see the module docstring)."""

    def __init__(self, census: Census, rules: Iterable[str],
                 band_edges: tuple[float, float, float], *, ttl: float = 5.0,
                 on_error: Callable[[BaseException], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.census = census
        self.rules = tuple(rules)          # every rule of the rule set is exported (0 if none)
        self.band_edges = band_edges
        self.ttl = ttl
        self.on_error = on_error
        self.clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._cached: tuple[dict[str, int], dict[str, int]] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(*OPEN_PROMISES, labels=["rule"])
        yield GaugeMetricFamily(*CUSTOMERS, labels=["band"])

    def read(self) -> tuple[dict[str, int], dict[str, int]] | None:
        """(open promises per rule, customers per band), at most `ttl` seconds old; the last
        good read (or None) when the store fails."""
        with self._lock:
            now = self.clock()
            if self._at is not None and now - self._at < self.ttl:
                return self._cached
            try:
                opened = self.census.open_promises()
                bands = self.census.bands(self.band_edges)
            except Exception as exc:  # a scrape must not fail because the store does
                log.warning("store census failed: %s", exc)
                if self.on_error is not None:
                    self.on_error(exc)
            else:
                self._cached = (_fold(opened, self.rules), bands)
            self._at = now
            return self._cached

    def collect(self) -> Iterator[GaugeMetricFamily]:
        read = self.read()
        if read is None:
            return
        opened, bands = read
        promises = GaugeMetricFamily(*OPEN_PROMISES, labels=["rule"])
        for rule, count in opened.items():
            promises.add_metric([rule], count)
        yield promises
        customers = GaugeMetricFamily(*CUSTOMERS, labels=["band"])
        for band in BANDS:
            customers.add_metric([band], bands.get(band, 0))
        yield customers


def _fold(counts: Mapping[str, int], rules: tuple[str, ...]) -> dict[str, int]:
    """Every rule of the rule set (0 when none open); rules not in it are summed as "other"."""
    out = dict.fromkeys(rules, 0)
    for rule, count in counts.items():
        label = rule if rule in out and rule != OTHER else OTHER
        out[label] = out.get(label, 0) + count
    return out


class LagCollector(Collector):
    """valeur_consumer_lag_records{topic, partition} for the partitions this worker owns."""

    def __init__(self, topic: str, lag: Callable[[], Mapping[int, int]]) -> None:
        self.topic = topic
        self.lag = lag

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(*LAG, labels=["topic", "partition"])

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(*LAG, labels=["topic", "partition"])
        try:
            lags = self.lag()
        except Exception as exc:  # consumer not ready (rebalancing, stopping)
            log.debug("consumer lag unavailable: %s", exc)
            lags = {}
        for partition, lag in sorted(lags.items()):
            family.add_metric([self.topic, str(partition)], lag)
        yield family
