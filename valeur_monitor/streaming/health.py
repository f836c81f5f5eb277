"""What the worker's probes report, and how it retries transient failures meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from valeur_monitor.errors import BrokerError, StoreError, TransientError
from valeur_monitor.masking import mask
from valeur_monitor.metrics import BROKER_OPERATIONS, Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

# Failures worth retrying in place: the batch stays unacknowledged meanwhile. Permanent store
# errors (authentication, ACL, OOM, script, data lost) are not: the worker stops on them.
TRANSIENT: tuple[type[BaseException], ...] = (TransientError, BrokerError, OSError)


@dataclass
class Health:
    """What /healthz and /readyz report."""

    started: float = field(default_factory=time.monotonic)
    failing_since: float | None = None
    last_error: str = ""
    batches: int = 0
    events: int = 0
    rerouted: int = 0
    first_batch: float | None = None    # wall clock (s) when the first batch started
    last_batch: float | None = None     # wall clock (s) when the last batch was committed
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("process", "publish", "commit"), 0.0))      # time spent per step, for tuning


class Supervised:
    """Retries with backoff, counts failures by operation, answers the probes."""

    def __init__(self, metrics: Metrics | None = None, *, retry_delay: float = 0.2,
                 max_retry_delay: float = 5.0, unhealthy_after: float = 60.0) -> None:
        self.metrics = metrics
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.unhealthy_after = unhealthy_after
        self.health = Health()

    async def _retry(self, operation: str, call: Callable[[], Awaitable[T]],
                     undo: Callable[[], None] | None = None) -> T:
        """Run `call` until it succeeds, backing off on transient failures."""
        delay = self.retry_delay
        while True:
            try:
                value = await call()
            except TRANSIENT as exc:
                if undo is not None:
                    undo()
                self._failed(operation, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            if self.health.failing_since is not None:
                log.info("%s recovered", operation)
            self.health.failing_since = None
            return value

    def _failed(self, operation: str, exc: BaseException) -> None:
        h = self.health
        if h.failing_since is None:
            h.failing_since = time.monotonic()
        h.last_error = mask(f"{operation}: {exc}")   # shown on /healthz and /readyz
        log.warning("%s failed (will retry): %s", operation, exc)
        if self.metrics is not None:
            if operation in BROKER_OPERATIONS:
                self.metrics.broker_error(operation)
            else:   # the store call that failed (load, commit, due...), not the step
                self.metrics.store_error(exc.operation if isinstance(exc, StoreError)
                                         else operation)

    # -- probes ----------------------------------------------------------------------------------
    def healthy(self) -> tuple[bool, str]:
        h = self.health
        failing = 0.0 if h.failing_since is None else time.monotonic() - h.failing_since
        if failing > self.unhealthy_after:
            return False, f"failing for {failing:.0f}s: {h.last_error}"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.health.failing_since is not None:
            return False, self.health.last_error
        return True, "ok"
