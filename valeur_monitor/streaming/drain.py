"""End of input for the distributed runner: advance stream time in the store to an instant.

In `event` clock mode stream time only moves with events, so after a replay the promises still
open at the end are not yet broken. `drain` does what the embedded runner's `finish(until)`
does, on the shared store: every customer due by `until` is advanced (timers fire, buffered
events are applied), with the same `Processor`. Run it once the workers are idle (consumer lag
0) or stopped: it advances customers of every partition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.service import BatchResult, Processor
from valeur_monitor.store.base import Store
from valeur_monitor.streaming.outputs import Message, OutputTopics, build_messages


def drain(rules: RuleSet, store: Store, until: int) -> BatchResult:
    """Advance the store's stream time to `until` (never backwards)."""
    return Processor(rules, store).advance_to(until)


def drain_messages(result: BatchResult, topics: OutputTopics) -> list[Message]:
    return build_messages(result, topics)


def send_messages(producer: Any, messages: Sequence[Message],
                  on_error: Callable[[BaseException], None] | None = None) -> None:
    """Send with a kafka-python producer and flush (raises if the flush times out)."""
    for m in messages:
        future = producer.send(m.topic, key=m.key, value=m.value, partition=m.partition,
                               headers=list(m.headers) or None)
        if on_error is not None:
            future.add_errback(on_error)
    producer.flush(timeout=60)
