"""The worker's asyncio side: the order of process, publish, commit and ack of every batch.

`WorkerRuntime` orders the steps of every batch so that the Redis commit is the commit point:

    process (outputs built, then the commit encoded) -> publish the outputs (once the batch
    before is acknowledged by the broker; started while the commit is still encoded), wait for
    acks -> apply the commit (once the batch before is committed) -> ack offsets

and pipelines batches: N+1 is processed while N is published and applied (in that order), and
N+1's outputs go out while N's commit is still on its way to Redis (their Kafka round trip and
N's Redis round trip overlap instead of following each other). An
attempt that fails before its commit is encoded withdraws the outputs still waiting to go out
(`attempts.abandon`); outputs already sent stay sent (at-least-once outputs, docs/streaming.md).
The synchronous steps are `StreamPipeline`'s (`streaming/pipeline.py`); the exactly-once
argument is in its docstring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from valeur_monitor.errors import BatchWithheld
from valeur_monitor.metrics import Metrics
from valeur_monitor.reload import Reloader
from valeur_monitor.runner.observe import record_batch
from valeur_monitor.service import BatchResult
from valeur_monitor.streaming.attempts import Batch, Outgoing, abandon
from valeur_monitor.streaming.faults import fault_from_env
from valeur_monitor.streaming.health import Supervised
from valeur_monitor.streaming.outputs import Message, Record
from valeur_monitor.streaming.pipeline import Step, StreamPipeline
from valeur_monitor.streaming.scope import Pending
from valeur_monitor.streaming.stages import (
    ACKED,
    BEGAN,
    COMMITTED,
    PROCESSED,
    PUBLISHED,
    Stages,
    mark,
    stages_from_env,
)

log = logging.getLogger(__name__)


class Publisher(Protocol):
    async def publish(self, messages: Sequence[Message]) -> None:
        """Send every message; return once the broker acknowledged all of them."""
        ...


class WorkerRuntime(Supervised):
    """Asyncio side: orders process/publish/commit/ack of batches and ticks, retries.

    Batches are pipelined and their commits grouped: while a commit is in flight (its outputs'
    acks awaited, then its Redis script), the next batches are processed and queued; when it
    completes, every queued batch is committed together (`StreamPipeline.prepare` encodes each
    customer they touched once, from its state in memory: one script call, the offsets of the
    last). The order of effects: each batch's outputs are acknowledged before the commit that
    covers it, commits in order, a batch's offsets acked only after that commit, and N+1's
    outputs sent only after N's are acknowledged (so a retried publish of N never overtakes
    N+1's outputs: the compacted score topic keeps the latest score). N+1's outputs may go out
    before N's commit: if that commit then fails for good, the worker stops and both batches
    are redelivered (at-least-once outputs, as after a crash between publishing and
    committing). At most `max_queued` batches wait for a commit in flight; a tick, a
    rebalance, a reload first let every queued batch be committed. A processing attempt that
    fails transiently drops the states in memory (its in-place changes must not survive), so
    the queued batches, whose changes were only there, are processed again with it.
    """

    def __init__(self, pipeline: StreamPipeline, publisher: Publisher,
                 metrics: Metrics | None = None, *, retry_delay: float = 0.2,
                 max_retry_delay: float = 5.0, unhealthy_after: float = 60.0,
                 max_queued: int = 16) -> None:
        super().__init__(metrics, retry_delay=retry_delay, max_retry_delay=max_retry_delay,
                         unhealthy_after=unhealthy_after)
        self.pipeline = pipeline
        self.publisher = publisher
        self.lock = asyncio.Lock()
        self._assignment = asyncio.Event()
        self.positions: dict[int, int] = {}   # partition -> next offset after the last commit
        self.fault = fault_from_env()          # chaos tests only (streaming/faults.py)
        self.stages: Stages | None = stages_from_env()   # benchmarks only (stages.py)
        self.reloader: Reloader | None = None  # `rules reload` / SIGHUP (valeur_monitor/reload)
        # Batches processed whose commits are staged, not prepared yet: exactly the scope's
        # staged commits (every `prepare` takes all of them; a discard folds them into a retry)
        self._queued: list[Batch] = []
        # Without grouping (a store whose `due` may flush mid-batch) each batch is its own group
        self.max_queued = max_queued if pipeline.scope.groups else 0
        self._inflight: asyncio.Future[None] | None = None   # the group being committed
        self._committing = False   # read by the processing thread: a group is in flight
        self._kicker: asyncio.Task[None] | None = None
        self._published: asyncio.Task[bool] | None = None  # the last batch's publishing
        self._retrying = False
        # Called between batches after an assignment or a reload (the app sets heap.settle)
        self.settle_heap: Callable[[], None] | None = None
        # Run in the processing thread after each batch is applied (the app records the
        # accounts named by events). Idempotent: a retried attempt runs them again.
        self.hooks: list[Callable[[BatchResult, float], None]] = []

    async def _reload_if_asked(self) -> None:
        """Between batches, under the lock: switch rules if a reload was requested."""
        if self.reloader is not None and self.reloader.requested:
            await self._settle()
            self.reloader.apply(self.pipeline.processor, self.positions, self.pipeline.reached)
            if self.settle_heap is not None:
                self.settle_heap()

    async def _settle_inflight(self) -> None:
        """Wait until the group in flight is published, applied and acked (re-raises its
        permanent failure: the caller fails-stop)."""
        task = self._inflight
        if task is not None:
            try:
                await asyncio.shield(task)
            finally:
                if task.done():
                    self._inflight = None

    async def _settle(self) -> None:
        """Under the lock: every batch processed so far committed and acked."""
        await self._settle_inflight()
        while self._queued:
            await self._launch(None, prepared=False)
            await self._settle_inflight()

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
        """Return once no batch or tick is in progress, queued or in flight (a rebalance
        waits)."""
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
        of partitions); it is published, committed (with the batches processed while the
        commit before was in flight), then acked (`ack`, before any revocation completes).
        Returns once it is processed, or, with `max_queued` batches waiting, once the commit
        in flight is done."""
        if not self.pipeline.assigned:   # events before the assignment signal: wait for it
            await self._assignment.wait()
        if self.health.first_batch is None:
            self.health.first_batch = time.time()
        async with self.lock:
            await self._reload_if_asked()
            began = time.perf_counter()
            batch = Batch(self, records, self._published, ack)
            if self.stages is not None:
                batch.row, self.stages.last = self.stages.last, None
            try:
                step = await self._retry("process", batch.process, undo=batch.undo)
            except BaseException:
                abandon(batch.publishing)     # a batch that will not commit: publish none
                raise
            self.health.seconds["process"] += time.perf_counter() - began
            if self.fault is not None:
                self.fault.reached("after-process")
            batch.step = step
            self._published = batch.published
            self._queued.append(batch)
            task = self._inflight
            if task is not None and (task.done() or len(self._queued) > self.max_queued):
                await self._settle_inflight()   # raises its failure: fail-stop
            if self._inflight is None:
                await self._launch(step.pending, prepared=batch.prepared)

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
                await self._finish(step)

    # -- internals -------------------------------------------------------------------------------
    def _undo(self) -> None:
        """A failed attempt: its in-place changes must not survive (states reloaded)."""
        self.pipeline.discard()
        self._retrying = True

    async def _process(self, batch: Batch) -> Step:
        if self._retrying:      # states were dropped: reload them once Redis has the group
            await self._settle_inflight()  # in flight (its states are no longer in memory)
            if batch.drain:     # outputs of folded batches being sent: they go first
                await asyncio.wait(batch.drain)
                batch.drain = []
            self._retrying = False
        batch.loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._process_sync, batch)

    def _process_sync(self, batch: Batch) -> Step:
        mark(batch.row, BEGAN)
        step = self.pipeline.process_batch(batch.records)
        mark(batch.row, PROCESSED)
        batch.processed_in_thread(step)  # its outputs may go out now
        for hook in self.hooks:          # a failure is a failed attempt: retried, states reloaded
            hook(step.result, step.seconds)
        # No commit in flight (or no grouping): encode this batch's commit, with the queued
        # ones, right away. Else it waits for the commit in flight, grouped with later ones.
        if not self._committing or self.max_queued == 0:
            step.pending = self.pipeline.prepare()
            batch.prepared = True
        return step

    async def _launch(self, pending: Pending | None, *, prepared: bool) -> None:
        """Under the lock, nothing in flight: commit every queued batch as one group."""
        if not prepared:    # encoding reads the states only: a transient failure is retried
            pending = await self._retry("commit",
                                        lambda: asyncio.to_thread(self.pipeline.prepare))
        group, self._queued = self._queued, []
        self._committing = True
        self._inflight = asyncio.create_task(self._commit_group(group, pending))

    async def _kick(self) -> None:
        """A group just completed with batches queued behind it: commit them now, unless a
        batch being processed will (under the lock, after it)."""
        async with self.lock:
            task = self._inflight
            if not self._queued or (task is not None and not task.done()):
                return
            if task is not None:
                if task.cancelled() or task.exception() is not None:
                    return          # the next `consume` raises it
                self._inflight = None
            try:
                await self._launch(None, prepared=False)
            except Exception as exc:    # encoding failed: the next `consume` raises it
                failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                failed.set_exception(exc)
                self._inflight = failed

    async def _commit_group(self, group: list[Batch], pending: Pending | None) -> None:
        """Wait for the group's outputs to be acknowledged, commit it (the commit point),
        then ack and count each of its batches."""
        try:
            began = time.perf_counter()
            for batch in group:
                if batch.published is not None and not await batch.published:
                    # the batch before was not published: it failed, and `consume` stops
                    raise BatchWithheld("the batch before failed")
                mark(batch.row, PUBLISHED)
                if self.fault is not None:
                    self.fault.reached("after-publish")
            published_at = time.perf_counter()
            if pending is not None:
                await self._retry("commit",
                                  lambda: asyncio.to_thread(self.pipeline.commit, pending))
            committed = time.perf_counter()
            h = self.health
            h.seconds["commit"] += committed - published_at
            if self.fault is not None:
                for _ in group:
                    self.fault.reached("after-commit")   # committed, offsets not acked
            for batch in group:
                step = batch.step
                assert step is not None
                self.positions.update(step.offsets)
                mark(batch.row, COMMITTED)
                for ack in batch.acks:
                    ack()
                mark(batch.row, ACKED)
                h.batches += 1
                h.events += step.result.received
                h.rerouted += step.rerouted
                self._count(step.result, step.seconds + (committed - began))
            h.last_batch = time.time()
        finally:
            self._committing = False
        if self._queued and (self._kicker is None or self._kicker.done()):
            self._kicker = asyncio.create_task(self._kick())

    async def _publish(self, step: Step, previous: asyncio.Task[bool] | None,
                       out: Outgoing | None = None) -> bool:
        """Publish a processed batch's outputs once the batch before it is published (acks
        stay in order; its commit may still be on its way); False, publishing nothing, if that
        batch's publishing failed or published nothing (`consume` raises)."""
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None or not previous.result():
                return False
        # From here the outputs go out: `abandon` no longer cancels this task (a failed
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

    async def _finish(self, step: Step) -> None:
        """A tick's step, nothing queued or in flight: publish, commit, count."""
        began = time.perf_counter()
        if step.messages:
            await self._retry("publish", lambda: self.publisher.publish(step.messages))
            self.health.seconds["publish"] += time.perf_counter() - began
        published_at = time.perf_counter()
        pending = step.pending
        if pending is not None:
            await self._retry("commit",
                              lambda: asyncio.to_thread(self.pipeline.commit, pending))
        committed = time.perf_counter()
        self.positions.update(step.offsets)
        self.health.seconds["commit"] += committed - published_at
        self._count(step.result, step.seconds + (committed - began), batch=False)

    def _count(self, result: BatchResult, seconds: float, *, batch: bool = True) -> None:
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
