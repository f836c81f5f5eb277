"""Test doubles for the streaming pipeline: a Redis-like memory store, a recording publisher."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from valeur_monitor.engine.state import CustomerState, decode_state, encode_state
from valeur_monitor.errors import BrokerError, StoreUnavailable
from valeur_monitor.kafka.produce import placed
from valeur_monitor.store.base import Commit
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.outputs import Message, Record


class SharedStore(MemoryStore):
    """Behaves like the Redis store where it matters here: `load` returns copies (a state
    changes only through `commit`), and commits can be made to fail (`due` is a pure query in
    every store)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_commits = 0
        self.commit_calls = 0

    def load(self, customers: Iterable[str]) -> dict[str, CustomerState]:
        return {c: decode_state(encode_state(s)) for c, s in super().load(customers).items()}

    def due_entries(self) -> list[tuple[str, int]]:
        """The whole due index, as RedisStore lists it (the worker keeps its part itself)."""
        return list(self._due._at.items())

    def commit(self, commit: Commit) -> None:
        self.commit_calls += 1
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise StoreUnavailable("Redis unreachable at redis://test: Connection refused",
                                   operation="commit")
        super().commit(commit)


class RecordingPublisher:
    """Keeps what was published; `fail` transient failures first; `snapshot` runs at publish."""

    def __init__(self, store: SharedStore | None = None) -> None:
        self.messages: list[Message] = []
        self.calls = 0
        self.fail = 0
        self.store = store
        self.customers_at_publish: list[list[str]] = []

    async def publish(self, messages: Sequence[Message]) -> None:
        self.calls += 1
        if self.store is not None:
            self.customers_at_publish.append(self.store.customers())
        if self.fail > 0:
            self.fail -= 1
            raise BrokerError("publishing: KafkaTimeoutError")
        self.messages.extend(messages)


def records_for(lines: Sequence[bytes], partitions: int) -> list[Record]:
    """Kafka's view of `lines` produced keyed by customer: partition and offset of each."""
    return [Record(*where) for where in placed(lines, partitions)]
