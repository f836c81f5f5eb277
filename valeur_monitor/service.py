"""The service function both runners call: records in, engine applied, effects committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from valeur_monitor.codec import decode
from valeur_monitor.engine.core import Engine, Output
from valeur_monitor.engine.event import Event, to_canonical
from valeur_monitor.engine.ledger import LedgerEntry, Notice
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


@dataclass
class BatchResult:
    """Everything one batch produced, for sinks and metrics."""

    received: int = 0
    events: list[Event] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    outcomes: list[tuple[str, str, str, str]] = field(default_factory=list)
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
        result = BatchResult(received=len(records), rules_version=self.rules.version)
        events: list[Event] = []
        for raw in records:
            try:
                events.append(decode(raw))
            except EventError as exc:
                data = raw.encode() if isinstance(raw, str) else bytes(raw)
                result.dead_letters.append(DeadLetter(data, exc.reason, exc.detail))
        return self.process_events(events, result)

    def process_events(self, events: Sequence[Event],
                       result: BatchResult | None = None) -> BatchResult:
        """Apply decoded events; stream time moves to (latest event − allowed lateness)."""
        result = result or BatchResult(received=len(events), rules_version=self.rules.version)
        watermark = self.store.watermark()
        if events:
            latest = max(e.time for e in events)
            self.max_event_time = max(self.max_event_time, latest)
            watermark = max(watermark, latest - self.lateness)
        states = self.store.load({e.customer for e in events})
        out = Output()
        engine = self.engine
        for event in events:
            engine.ingest(states[event.customer], event, out)
        self._advance(states, watermark, out, result)
        return result

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
                watermark=watermark, changed=states, rules_version=self.rules.version,
                dead_letters=[DeadLetter(orjson.dumps(to_canonical(event)), "too_late",
                                         f"event {event.id} is older than the late horizon "
                                         "of its customer") for event in out.too_late]))
            if len(listed) < DUE_SLICE:
                return
            states, out = {}, Output()  # a very large due set: continue in slices
