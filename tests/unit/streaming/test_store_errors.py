"""The worker on store failures: transient ones are retried and labelled with the store call
that failed; permanent ones (authentication, script, OOM, data lost) stop it at once."""

from __future__ import annotations

import pytest

from tests.unit.streaming.fakes import RecordingPublisher, SharedStore, records_for
from tests.unit.streaming.test_pipeline import LINES, PARTITIONS, RULES, pipeline
from valeur_monitor.errors import (
    StoreDataLost,
    StoreError,
    StorePermanentError,
    StoreUnavailable,
    TransientError,
)
from valeur_monitor.runner.observe import metrics_for
from valeur_monitor.store.base import Commit
from valeur_monitor.streaming.runtime import WorkerRuntime

pytestmark = pytest.mark.unit


class FailingStore(SharedStore):
    """Commits raise `errors` in turn, then succeed."""

    def __init__(self, errors: list[StoreError]) -> None:
        super().__init__()
        self.errors = errors
        self.attempts = 0

    def commit(self, commit: Commit) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        super().commit(commit)


def test_the_exception_tree_says_what_is_transient() -> None:
    assert issubclass(StoreUnavailable, TransientError)
    for permanent in (StorePermanentError, StoreDataLost):
        assert issubclass(permanent, StoreError)
        assert not issubclass(permanent, TransientError)


@pytest.mark.parametrize("error", [
    StorePermanentError("Redis refused the credentials at redis://u:***@h:1/0 (WRONGPASS)",
                        operation="commit"),
    StorePermanentError("Redis rejected the store's Lua script at redis://h:1/0: ERR ...",
                        operation="commit"),
    StoreDataLost("Redis at redis://h:1/0 lost data this process wrote", operation="commit"),
])
async def test_permanent_store_errors_are_not_retried(error: StoreError) -> None:
    store = FailingStore([error] * 50)
    runtime = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), RecordingPublisher(),
                            retry_delay=0.001)
    with pytest.raises(type(error)):
        await runtime.handle(records_for(LINES[:200], PARTITIONS))
    assert store.attempts == 1
    assert store.customers() == []


async def test_transient_store_errors_are_retried_and_labelled_by_store_call() -> None:
    store = FailingStore([StoreUnavailable("Redis unreachable at redis://h:1/0: refused",
                                           operation="commit")] * 3)
    metrics = metrics_for(RULES)
    runtime = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), RecordingPublisher(), metrics,
                            retry_delay=0.001)
    await runtime.handle(records_for(LINES[:200], PARTITIONS))
    assert store.attempts == 4 and store.customers()
    sample = metrics.registry.get_sample_value
    assert sample("valeur_store_errors_total", {"operation": "commit"}) == 3
    assert not sample("valeur_store_errors_total", {"operation": "other"})


async def test_health_pages_never_show_a_secret() -> None:
    """A library error text holding a password (here a broker error) reaches /healthz and
    /readyz through the runtime's last error: masked."""
    from valeur_monitor import masking
    from valeur_monitor.errors import BrokerError

    secret = "pa/ss#wo?rd@x"
    masking.register(secret)
    try:
        store = FailingStore([StoreUnavailable("Redis unreachable", operation="commit")] * 5)
        runtime = WorkerRuntime(pipeline(store, {0, 1, 2, 3}), RecordingPublisher(),
                                retry_delay=0.001, unhealthy_after=0.0)
        runtime._failed("publish", BrokerError(f"sasl://u:{secret}@broker refused"))
        ok, why = runtime.healthy()
        ready, detail = runtime.ready()
        assert not ok and not ready
        assert secret not in why + detail and "***" in why
    finally:
        masking.clear()
