"""The worker's asyncio side: the order of process, publish, commit and ack of every batch.

`WorkerRuntime` orders the steps of every batch so that the Redis commit is the commit point:

    process (outputs built, then the commit encoded) -> publish the outputs (once the batch
    before is acknowledged by the broker; started while the commit is still encoded), wait for
    acks -> apply the commit (once the batch before is committed) -> ack offsets

and pipelines batches: N+1 is processed while N is published and applied (in that order), and
N+1's outputs go out while N's commit is still on its way to Redis (their Kafka round trip and
N's Redis round trip overlap instead of following each other). An
attempt that fails before its commit is encoded withdraws the outputs still waiting to go out
(`_abandon`); outputs already sent stay sent (at-least-once outputs, docs/streaming.md).
The synchronous steps are `StreamPipeline`'s (`streaming/pipeline.py`); the exactly-once
argument is in its docstring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from valeur_monitor.errors import BatchWithheld
from valeur_monitor.metrics import Metrics
from valeur_monitor.reload import Reloader
from valeur_monitor.runner.observe import record_batch
from valeur_monitor.streaming.faults import fault_from_env
from valeur_monitor.streaming.health import Supervised
from valeur_monitor.streaming.outputs import Message, Record
from valeur_monitor.streaming.pipeline import Step, StreamPipeline

log = logging.getLogger(__name__)


class Publisher(Protocol):
    async def publish(self, messages: Sequence[Message]) -> None:
        """Send every message; return once the broker acknowledged all of them."""
        ...


class WorkerRuntime(Supervised):
    """Asyncio side: orders process/publish/commit/ack of batches and ticks, retries.

    Batches are pipelined: batch N+1 is processed while batch N (already encoded by
    `StreamPipeline.prepare`) is published and applied. The order of effects: N's outputs are
    acknowledged before N's commit, N's commit before N+1's, N's offsets are acked only after
    N's commit, and N+1's outputs are sent only after N's are acknowledged (so a retried
    publish of N never overtakes N+1's outputs: the compacted score topic keeps the latest
    score). N+1's outputs may go out before N's commit: if that commit then fails for good,
    the worker stops and both batches are redelivered (at-least-once outputs, as after a
    crash between publishing and committing). At most one batch is in flight while the next
    is processed; a tick, a rebalance, a reload and a retried failure first let it finish.
    """

    def __init__(self, pipeline: StreamPipeline, publisher: Publisher,
                 metrics: Metrics | None = None, *, retry_delay: float = 0.2,
                 max_retry_delay: float = 5.0, unhealthy_after: float = 60.0) -> None:
        super().__init__(metrics, retry_delay=retry_delay, max_retry_delay=max_retry_delay,
                         unhealthy_after=unhealthy_after)
        self.pipeline = pipeline
        self.publisher = publisher
        self.lock = asyncio.Lock()
        self._assignment = asyncio.Event()
        self.positions: dict[int, int] = {}   # partition -> next offset after the last commit
        self.fault = fault_from_env()          # chaos tests only (streaming/faults.py)
        self.reloader: Reloader | None = None  # `rules reload` / SIGHUP (valeur_monitor/reload)
        self._inflight: asyncio.Task[None] | None = None   # the batch being published/applied
        self._published: asyncio.Task[bool] | None = None  # its publishing (last attempt's)
        self._retrying = False
        # Called between batches after an assignment or a reload (the app sets heap.settle)
        self.settle_heap: Callable[[], None] | None = None

    async def _reload_if_asked(self) -> None:
        """Between batches, under the lock: switch rules if a reload was requested."""
        if self.reloader is not None and self.reloader.requested:
            await self._settle()
            self.reloader.apply(self.pipeline.processor, self.positions, self.pipeline.reached)
            if self.settle_heap is not None:
                self.settle_heap()

    async def _settle(self) -> None:
        """Wait until the batch in flight is published, applied and acked (re-raises its
        permanent failure: the caller fails-stop)."""
        task = self._inflight
        if task is not None:
            try:
                await asyncio.shield(task)
            finally:
                if task.done():
                    self._inflight = None

    # -- entry points (the faust agent, timer and rebalance signal call these) -----------------
    async def assign(self, partitions: set[int], total: int) -> None:
        """Rebalance done: the full new assignment of the events topic."""
        async with self.lock:
            await self._settle()
            self.pipeline.assign(partitions, total)
            if self.settle_heap is not None:
                self.settle_heap()
        self._assignment.set()
        log.info("assigned partitions %s of %d", sorted(partitions), total)

    async def revoke(self, partitions: set[int]) -> None:
        """Rebalance starts: stop advancing customers of these partitions (waits for the batch
        in progress to be committed, so the new owner never works on a customer at the same
        time)."""
        async with self.lock:
            await self._settle()
            self.pipeline.revoke(partitions)
            for partition in partitions:
                self.positions.pop(partition, None)


    async def idle(self) -> None:
        """Return once no batch or tick is in progress or in flight (a rebalance waits)."""
        async with self.lock:
            await self._settle()

    async def handle(self, records: Sequence[Record],
                     ack: Callable[[], None] | None = None) -> None:
        """Process a batch (any mix of partitions); returns once all of it is committed and
        `ack` has run (one batch at a time: no pipelining)."""
        await self.consume(records, ack)
        await self.flushed()

    async def consume(self, records: Sequence[Record],
                      ack: Callable[[], None] | None = None) -> None:
        """The batch consumer's entry point (streaming/consumer.py): process a batch (any mix
        of partitions) and set it in flight: it is published, committed, then acked (`ack`,
        before any revocation completes) while the next batch is processed. Returns once the
        previous batch is settled."""
        if not self.pipeline.assigned:   # events before the assignment signal: wait for it
            await self._assignment.wait()
        if self.health.first_batch is None:
            self.health.first_batch = time.time()
        async with self.lock:
            await self._reload_if_asked()
            began = time.perf_counter()
            batch = _Batch(self, records, self._published)
            try:
                step = await self._retry("process", batch.process, undo=batch.undo)
            except BaseException:
                _abandon(batch.publishing)     # a batch that will not commit: publish none
                raise
            self.health.seconds["process"] += time.perf_counter() - began
            if self.fault is not None:
                self.fault.reached("after-process")
            await self._settle()            # N-1 done: offsets and commits stay in order
            self._published = batch.published
            self._inflight = asyncio.create_task(
                self._finish(step, ack, batch=True, published=batch.published))

    async def flushed(self) -> None:
        """Wait until every batch handed over so far is committed and acked."""
        async with self.lock:
            await self._settle()

    async def tick(self) -> None:
        """Timer: advance stream time while idle (wall mode), or drain what became due."""
        if not self.pipeline.assigned:
            return
        async with self.lock:
            await self._settle()
            await self._reload_if_asked()
            step = await self._retry("advance", lambda: asyncio.to_thread(self._advance),
                                     undo=self._undo)
            if step is not None:
                await self._finish(step, None, batch=False)

    # -- internals -------------------------------------------------------------------------------
    def _undo(self) -> None:
        """A failed attempt: its in-place changes must not survive (states reloaded)."""
        self.pipeline.discard()
        self._retrying = True

    async def _process(self, batch: _Batch) -> Step:
        if self._retrying:      # states were dropped: reload them once Redis has the batch
            await self._settle()  # in flight (its states are no longer in memory)
            self._retrying = False
        batch.loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._process_sync, batch)

    def _process_sync(self, batch: _Batch) -> Step:
        step = self.pipeline.process_batch(batch.records)
        batch.processed_in_thread(step)  # its outputs may go out now; the commit is encoded
        step.pending = self.pipeline.prepare()    # meanwhile
        return step

    async def _publish(self, step: Step, previous: asyncio.Task[bool] | None,
                       out: _Outgoing | None = None) -> bool:
        """Publish a processed batch's outputs once the batch before it is published (acks
        stay in order; its commit may still be on its way); False, publishing nothing, if that
        batch's publishing failed or published nothing (`consume` raises)."""
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None or not previous.result():
                return False
        # From here the outputs go out: `_abandon` no longer cancels this task (a failed
        # attempt then publishes again on its retry: at-least-once, as after a crash).
        if out is not None:
            out.sending = True
            out.task = None     # no longer cancellable; and no cycle: out -> task -> out
        began = time.perf_counter()
        if step.messages:
            await self._retry("publish", lambda: self.publisher.publish(step.messages))
        self.health.seconds["publish"] += time.perf_counter() - began
        return True

    def _advance(self) -> Step | None:
        step = self.pipeline.advance()
        if step is not None:
            step.pending = self.pipeline.prepare()
        return step

    async def _finish(self, step: Step, ack: Callable[[], None] | None, *, batch: bool,
                      published: asyncio.Task[bool] | None = None) -> None:
        """Publish (or wait for the publishing started by `consume`), then commit (the
        commit point), then ack and count."""
        h = self.health
        began = time.perf_counter()
        if published is not None:
            if not await published:     # the batch before was not published: it failed, and
                raise BatchWithheld("the batch before failed")   # `consume` stops
        elif step.messages:
            await self._retry("publish", lambda: self.publisher.publish(step.messages))
            h.seconds["publish"] += time.perf_counter() - began
        if batch and self.fault is not None:
            self.fault.reached("after-publish")
        published_at = time.perf_counter()
        pending = step.pending
        if pending is not None:
            await self._retry("commit",
                              lambda: asyncio.to_thread(self.pipeline.commit, pending))
        committed = time.perf_counter()
        if batch and self.fault is not None:
            self.fault.reached("after-commit")   # committed to Redis, offsets not acked
        self.positions.update(step.offsets)
        if ack is not None:
            ack()
        h.seconds["commit"] += committed - published_at
        seconds = step.seconds + (committed - began)
        result = step.result
        if batch:
            h.batches += 1
            h.events += result.received
            h.rerouted += step.rerouted
            h.last_batch = time.time()
        if self.metrics is None:
            return
        if batch or result.entries or result.notices or result.outcomes or result.dead_letters:
            record_batch(self.metrics, result, seconds)
        elif result.watermark:       # a tick that only moved stream time: not a batch
            self.metrics.set_watermark(result.watermark, int(time.time() * 1000))

    def ready(self) -> tuple[bool, str]:
        if not self.pipeline.assigned:
            return False, "waiting for a partition assignment"
        return super().ready()



class _Batch:
    """One batch's processing attempts and their publishing.

    A class rather than closures in `consume`: compiled by mypyc, nested functions and the
    environment holding them reference each other, so each batch's records, outputs and tasks
    were freed only by the cyclic GC, in pauses of 15-90 ms every few seconds at 5k events/s
    (measured with `gc.callbacks`); freed by reference counting, they never reach it."""

    def __init__(self, runtime: WorkerRuntime, records: Sequence[Record],
                 previous: asyncio.Task[bool] | None) -> None:
        self.runtime = runtime
        self.records = records
        self.previous = previous        # the publishing of the batch before: it goes first
        self.publishing: list[_Outgoing] = []
        self.published: asyncio.Task[bool] | None = None   # the last attempt's publishing
        self.loop: asyncio.AbstractEventLoop | None = None

    def process(self) -> Awaitable[Step]:
        return self.runtime._process(self)

    def processed_in_thread(self, step: Step) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.processed, step)

    def processed(self, step: Step) -> None:
        """In the loop, as soon as the outputs are built: they are published (after N-1's
        outputs are acknowledged) while the processing thread still encodes N's commit."""
        out = _Outgoing()
        out.task = self.published = asyncio.create_task(
            self.runtime._publish(step, self.previous, out))
        self.publishing.append(out)

    def undo(self) -> None:
        _abandon(self.publishing)
        self.runtime._undo()


class _Outgoing:
    """One processing attempt's publishing: cancellable until it starts sending."""

    def __init__(self) -> None:
        self.task: asyncio.Task[bool] | None = None
        self.sending = False


def _abandon(outgoing: list[_Outgoing]) -> None:
    """A failed attempt's outputs: not published if their task still waits for the batch
    before (the usual case while a batch is in flight). A task already sending is let finish:
    outputs are at-least-once (docs/streaming.md), and a half-cancelled send helps no one."""
    for out in outgoing:
        if out.task is not None and not out.sending:
            out.task.cancel()
    outgoing.clear()
