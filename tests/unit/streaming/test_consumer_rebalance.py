"""The batch consumer across a rebalance: records fetched under the old assignment are not
processed after it (read again from the committed offsets instead), also when a top-up fetch
after a busy batch waits through the rebalance (a fetch waits for the flow to resume)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from valeur_monitor.streaming.consumer import BatchConsumer

OLD, NEW = "events-0 (revoked)", "events-1"


class Sink:
    def __init__(self, stopped: asyncio.Event) -> None:
        self.batches: list[list[Any]] = []
        self.stopped = stopped

    async def consume(self, records: Any, ack: Any) -> None:
        self.batches.append(records)
        await asyncio.sleep(0.01)     # a busy batch: the next round is a top-up round
        if len(self.batches) == 2:
            self.stopped.set()

    async def idle(self) -> None:
        return None


def consumer() -> tuple[BatchConsumer, Sink, list[str]]:
    c: Any = object.__new__(BatchConsumer)
    stopped = asyncio.Event()
    c._stopped = stopped
    c._crashed = asyncio.Event()
    c.can_resume_flow = asyncio.Event()
    c.can_resume_flow.set()
    c.flow_active = True
    c.not_waiting_next_records = asyncio.Event()
    c.app = SimpleNamespace(client_only=False, consumer_generation_id=1,
                            conf=SimpleNamespace(broker_max_poll_records=500))
    c._commit_every = None
    c._n_acked = 0
    sink = Sink(stopped)
    c.sink = sink
    log: list[str] = []
    fetches = iter([
        ("first batch", {NEW: [1]}),
        ("revocation during this fetch", {OLD: [10, 11]}),   # fetched under the old assignment
        ("top-up", {NEW: [2]}),
    ])

    async def wait(event: asyncio.Event) -> None:
        await event.wait()

    async def getmany(active_partitions: Any, timeout: float) -> Any:
        what, records = next(fetches, ("none", {}))
        log.append(what)
        if what.startswith("revocation"):
            c.flow_active = False             # faust: consumer.stop_flow() on revocation
            c.can_resume_flow.clear()

            async def rebalance_done() -> None:
                await asyncio.sleep(0.05)
                c.app.consumer_generation_id = 2
                c.flow_active = True          # faust: resume_flow() once assigned
                c.can_resume_flow.set()
            asyncio.get_running_loop().create_task(rebalance_done())
        await asyncio.sleep(0)
        return records

    async def perform_seek() -> None:
        log.append("seek back to the committed offsets")

    async def batch(records: Any, active: Any) -> list[Any]:
        return [(tp, o) for tp, rows in records.items() for o in rows]

    c.wait = wait
    c._getmany = getmany
    c._get_active_partitions = lambda: {OLD, NEW}
    c._buffered = lambda: True
    c.perform_seek = perform_seek
    c._batch = batch
    c._acker = lambda records, generation=None: (lambda: None)
    return c, sink, log


async def test_records_fetched_before_a_revocation_are_not_processed_after_it() -> None:
    c, sink, log = consumer()
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    await asyncio.wait_for(c._drain_messages(fetcher), 5)
    processed = [r for b in sink.batches for r in b]
    assert (OLD, 10) not in processed, f"stale records processed: {sink.batches}; {log}"
    assert "seek back to the committed offsets" in log
    assert processed == [(NEW, 1), (NEW, 2)]     # what came after the rebalance goes on
