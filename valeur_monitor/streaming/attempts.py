"""One batch's processing attempts and their publishing, for `streaming/runtime.py`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from valeur_monitor.streaming.outputs import Record
from valeur_monitor.streaming.pipeline import Step

if TYPE_CHECKING:
    from valeur_monitor.streaming.runtime import WorkerRuntime


class Batch:
    """One batch's processing attempts and their publishing.

    A class rather than closures in `consume`: compiled by mypyc, nested functions and the
    environment holding them reference each other, so each batch's records, outputs and tasks
    were freed only by the cyclic GC, in pauses of 15-90 ms every few seconds at 5k events/s
    (measured with `gc.callbacks`); freed by reference counting, they never reach it."""

    def __init__(self, runtime: WorkerRuntime, records: Sequence[Record],
                 previous: asyncio.Task[bool] | None, ack: Callable[[], None] | None) -> None:
        self.runtime = runtime
        self.records = records
        self.previous = previous        # the publishing of the batch before: it goes first
        self.acks = [ack] if ack is not None else []
        self.publishing: list[Outgoing] = []
        self.published: asyncio.Task[bool] | None = None   # the last attempt's publishing
        self.drain: list[asyncio.Task[bool]] = []   # folded batches' publishing, to finish
        self.loop: asyncio.AbstractEventLoop | None = None
        self.step: Step | None = None
        self.prepared = False           # its commit (and the queued ones') encoded with it
        self.row: list[float] | None = None     # its stage times, when traced (stages.py)

    def process(self) -> Awaitable[Step]:
        return self.runtime._process(self)

    def processed_in_thread(self, step: Step) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.processed, step)

    def processed(self, step: Step) -> None:
        """In the loop, as soon as the outputs are built: they are published (after N-1's
        outputs are acknowledged) while the processing thread still encodes N's commit."""
        out = Outgoing()
        out.task = self.published = asyncio.create_task(
            self.runtime._publish(step, self.previous, out))
        self.publishing.append(out)

    def undo(self) -> None:
        """A failed attempt: the states in memory are dropped, so the batches queued for the
        next commit (their changes were only there) are processed again with this one: their
        records first, their acks with this batch's, their outputs published again after
        whatever of them is already being sent (at-least-once outputs)."""
        abandon(self.publishing)
        runtime = self.runtime
        folded, runtime._queued = runtime._queued, []
        if folded:
            self.records = [r for b in folded for r in b.records] + list(self.records)
            self.acks = [a for b in folded for a in b.acks] + self.acks
            self.previous = folded[0].previous
            for b in folded:
                abandon(b.publishing)
                if b.published is not None:
                    self.drain.append(b.published)
        runtime._undo()


class Outgoing:
    """One processing attempt's publishing: cancellable until it starts sending."""

    def __init__(self) -> None:
        self.task: asyncio.Task[bool] | None = None
        self.sending = False


def abandon(outgoing: list[Outgoing]) -> None:
    """A failed attempt's outputs: not published if their task still waits for the batch
    before (the usual case while a batch is in flight). A task already sending is let finish:
    outputs are at-least-once (docs/streaming.md), and a half-cancelled send helps no one."""
    for out in outgoing:
        if out.task is not None and not out.sending:
            out.task.cancel()
    outgoing.clear()
