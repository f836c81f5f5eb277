"""The service function both runners call: records in, engine applied, effects committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from valeur_monitor.codec import decode
from valeur_monitor.engine.core import Engine, Output
from valeur_monitor.engine.event import Event, to_canonical
from valeur_monitor.engine.ledger import LedgerEntry, Notice, Outcome
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.errors import EventError, RuleIssue, RuleLoadError
from valeur_monitor.store.base import Commit, Store

DUE_SLICE = 10_000  # customers advanced per store round when many timers fall due at once


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be used, kept whole with the reason."""

    raw: bytes
    reason: str
    detail: str
    index: int = -1   # position of the record in its batch (dead letters are kept in that order)


@dataclass
class BatchResult:
    """Everything one batch produced, for sinks and metrics."""

    received: int = 0
    events: list[Event] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    watermark: int = 0
    changed: dict[str, CustomerState] = field(default_factory=dict)
    rules_version: str = ""         # RuleSet.version of the rules that produced it

    def absorb(self, other: BatchResult) -> None:
        """Add another result's effects (results of disjoint customers, or successive slices)."""
        self.received += other.received
        self.events.extend(other.events)
        self.entries.extend(other.entries)
        self.notices.extend(other.notices)
        self.outcomes.extend(other.outcomes)
        self.dead_letters.extend(other.dead_letters)
        self.duplicates += other.duplicates
        self.late += other.late
        self.watermark = max(self.watermark, other.watermark)
        self.changed.update(other.changed)
        self.rules_version = other.rules_version or self.rules_version


@dataclass
class Ingested:
    """A batch ingested but not settled: stream time has not moved for it yet."""

    result: BatchResult
    states: dict[str, CustomerState]
    out: Output
    latest: int | None        # latest event time of the batch, None without a valid event


def _position(letter: DeadLetter) -> int:
    return letter.index


class Processor:
    """Decode, dedupe, order, apply rules and commit, one batch at a time."""

    def __init__(self, rules: RuleSet, store: Store) -> None:
        self.engine = Engine(rules)
        self.rules = rules
        self.store = store
        self.lateness = rules.settings.lateness
        self.max_event_time = 0  # latest event time seen by this processor (end-of-input drain)

    def reload(self, paths: Sequence[str]) -> list[RuleIssue]:
        """Swap in freshly loaded rules; on any problem keep the running ones and say why.

        State stays valid across a reload: promises of a removed rule are dropped at their next
        timer, and the new rules apply to every event released from now on (those still in the
        reorder buffer included); entries already written are never rewritten.
        """
        try:
            rules = load_rules(paths)
        except RuleLoadError as exc:
            return exc.issues
        self.engine = Engine(rules)
        self.rules = rules
        self.lateness = rules.settings.lateness
        return []

    def process(self, records: Sequence[bytes | str]) -> BatchResult:
        """Handle raw records (JSON lines or Kafka values); bad ones become dead letters."""
        batch = self.ingest(records)
        return self.settle(batch, self.next_watermark(batch.latest))

    def process_events(self, events: Sequence[Event],
                       result: BatchResult | None = None) -> BatchResult:
        """Apply decoded events; stream time moves to (latest event − allowed lateness)."""
        batch = self._ingest_events(events, range(len(events)),
                                    result or BatchResult(received=len(events),
                                                          rules_version=self.rules.version))
        return self.settle(batch, self.next_watermark(batch.latest))

    # A batch in two steps, so that processes sharing out customers can agree on stream time:
    # `ingest` (decode, dedupe, buffer), then `settle` at the watermark of the whole batch.
    def ingest(self, records: Sequence[bytes | str]) -> Ingested:
        """Decode and ingest records; stream time does not move yet."""
        result = BatchResult(received=len(records), rules_version=self.rules.version)
        events: list[Event] = []
        positions: list[int] = []
        for i, raw in enumerate(records):
            try:
                events.append(decode(raw))
                positions.append(i)
            except EventError as exc:
                data = raw.encode() if isinstance(raw, str) else bytes(raw)
                result.dead_letters.append(DeadLetter(data, exc.reason, exc.detail, i))
        return self._ingest_events(events, positions, result)

    def next_watermark(self, latest: int | None) -> int:
        """Stream time after a batch whose latest event time is `latest` (None: no event)."""
        watermark = self.store.watermark()
        return watermark if latest is None else max(watermark, latest - self.lateness)

    def settle(self, batch: Ingested, watermark: int) -> BatchResult:
        """Move stream time to `watermark`: release events, fire timers, commit."""
        self._advance(batch.states, watermark, batch.out, batch.result)
        batch.result.dead_letters.sort(key=_position)
        return batch.result

    def _ingest_events(self, events: Sequence[Event], positions: Sequence[int],
                       result: BatchResult) -> Ingested:
        latest = max((e.time for e in events), default=None)
        if latest is not None:
            self.max_event_time = max(self.max_event_time, latest)
        # first-appearance order (not a set): the same order in every process and run
        states = self.store.load(dict.fromkeys(e.customer for e in events))
        out = Output()
        engine = self.engine
        too_late = 0
        for position, event in zip(positions, events, strict=True):
            engine.ingest(states[event.customer], event, out)
            if len(out.too_late) > too_late:
                too_late += 1
                result.dead_letters.append(DeadLetter(
                    orjson.dumps(to_canonical(event)), "too_late",
                    f"event {event.id} is older than the late horizon of its customer", position))
        out.too_late.clear()
        return Ingested(result, states, out, latest)

    def advance_to(self, until: int) -> BatchResult:
        """Move stream time without events (timers, idle streams, end of input)."""
        result = BatchResult(rules_version=self.rules.version)
        watermark = max(self.store.watermark(), until)
        self._advance({}, watermark, Output(), result)
        return result

    def _advance(self, states: dict[str, CustomerState], watermark: int, out: Output,
                 result: BatchResult) -> None:
        store, engine = self.store, self.engine
        while True:
            listed = store.due(watermark, DUE_SLICE)
            due = [c for c in listed if c not in states]
            if due:
                states.update(store.load(due))
            for state in states.values():
                engine.advance(state, watermark, out)
            commit = Commit(states=states, watermark=watermark, entries=out.entries,
                            due={c: engine.next_due(s) for c, s in states.items()})
            store.commit(commit)
            result.absorb(BatchResult(
                events=out.processed, entries=out.entries, notices=out.notices,
                outcomes=out.outcomes, duplicates=out.duplicates, late=out.late,
                watermark=watermark, changed=states, rules_version=self.rules.version))
            if len(listed) < DUE_SLICE:
                return
            states, out = {}, Output()  # a very large due set: continue in slices
