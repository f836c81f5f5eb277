"""A batch's commit failing for good after the next batch's outputs went out (docs/streaming.md).

N+1's outputs are published once N's are acknowledged, while N's commit is on its way: if that
commit then fails permanently, the worker stops with nothing acked, and a restart that is
redelivered both batches reaches the results of a run without failure (at-least-once outputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.unit.streaming.fakes import RecordingPublisher, records_for
from tests.unit.streaming.test_pipeline import (
    EXPECTED,
    LINES,
    PARTITIONS,
    RULES,
    UNTIL,
    differences,
    pipeline,
)
from tests.unit.streaming.test_pipelining import CommitGatedStore
from valeur_monitor.store.base import Commit
from valeur_monitor.streaming.drain import drain
from valeur_monitor.streaming.outputs import Message
from valeur_monitor.streaming.runtime import WorkerRuntime

pytestmark = pytest.mark.unit


class Fenced(Exception):
    """A permanent commit failure (as the store's epoch check gives a fenced worker)."""


class FailsFirstCommit(CommitGatedStore):
    """The first commit waits until the second batch's outputs are out, then fails for good."""

    def apply(self, commit: Commit) -> None:
        if not self.overlapped:
            self.overlapped.append(self.second_published.wait(2))
            raise Fenced("store epoch changed")
        self.commit(commit)


async def test_a_commit_failing_for_good_after_the_next_outputs_went_out() -> None:
    store = FailsFirstCommit()

    class Noting(RecordingPublisher):
        async def publish(self, messages: Sequence[Message]) -> None:
            if self.calls == 1:
                store.second_published.set()
            await super().publish(messages)

    publisher = Noting()
    runtime = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), publisher)
    records = records_for(LINES, PARTITIONS)
    batches = [records[i:i + 200] for i in range(0, len(records), 200)]
    acked: list[int] = []
    await runtime.consume(batches[0], lambda: acked.append(0))
    with pytest.raises(Fenced):         # surfaces at the next batch or settle
        await runtime.consume(batches[1], lambda: acked.append(1))    # queued behind batch 0
        await runtime.flushed()
    assert store.overlapped == [True]   # N+1's outputs were out before N's commit failed
    assert publisher.calls == 2 and acked == [] and store.commit_calls == 0
    restarted = WorkerRuntime(pipeline(store, set(range(PARTITIONS))), RecordingPublisher())
    for batch in batches:               # everything redelivered: nothing was acked
        await restarted.consume(batch)
    await restarted.flushed()
    drain(RULES, store, UNTIL)
    assert differences(EXPECTED, store) == []
