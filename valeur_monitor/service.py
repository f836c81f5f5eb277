"""The service function both runners call: records in, engine applied, effects committed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from mypy_extensions import mypyc_attr

from valeur_monitor import reasons
from valeur_monitor.codec import Codec, decode, input_limits, record_bytes
from valeur_monitor.engine.core import Engine, Output
from valeur_monitor.engine.event import Event, format_time, to_canonical
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


def wall_clock_ms() -> int:
    """Now, in epoch milliseconds."""
    return int(time.time() * 1000)


# Compiled by mypyc; the shard's runner subclasses it (its own future bound), hence the flag.
@mypyc_attr(allow_interpreted_subclasses=True)
class Processor:
    """Decode, dedupe, order, apply rules and commit, one batch at a time.

    Event time is bounded ahead: an event more than `future_limit` ms beyond the stream (its
    latest accepted event, the stored watermark, the wall clock `clock`) is dead-lettered
    `future_time`, so one event dated 2099 can neither move the watermark nor turn the events
    after it into `too_late`. `future_limit=None` takes the input settings' limit; 0 disables it.
    """

    def __init__(self, rules: RuleSet, store: Store, *, codec: Codec | None = None,
                 future_limit: int | None = None,
                 clock: Callable[[], int] | None = wall_clock_ms) -> None:
        self.engine = Engine(rules)
        self.rules = rules
        self.store = store
        self.lateness = rules.settings.lateness
        self.max_event_time = 0  # latest event time seen by this processor (end-of-input drain)
        self.codec = codec        # None: the default codec (active catalogue and limits)
        self.future_limit = (future_limit if future_limit is not None
                             else input_limits().future_ms)
        self.clock = clock

    def reload(self, paths: Sequence[str], label: str | None = None) -> list[RuleIssue]:
        """Swap in freshly loaded rules; on any problem keep the running ones and say why.

        State stays valid across a reload: promises of a removed rule are dropped at their next
        timer, and the new rules apply to every event released from now on (those still in the
        reorder buffer included); entries already written are never rewritten.
        """
        try:
            rules = load_rules(paths, label)
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

    def process_events(self, events: Sequence[Event], result: BatchResult | None = None,
                       raws: Sequence[bytes] | None = None) -> BatchResult:
        """Apply decoded events; stream time moves to (latest event − allowed lateness).

        `raws` (the records the events were decoded from, same order) go into dead letters."""
        batch = self._ingest_events(events, range(len(events)),
                                    result or BatchResult(received=len(events),
                                                          rules_version=self.rules.version),
                                    raws)
        return self.settle(batch, self.next_watermark(batch.latest))

    # A batch in two steps, so that processes sharing out customers can agree on stream time:
    # `ingest` (decode, dedupe, buffer), then `settle` at the watermark of the whole batch.
    def ingest(self, records: Sequence[object]) -> Ingested:
        """Decode and ingest raw records (bytes or text; anything else — a Kafka tombstone's None
        — is a dead letter); stream time does not move yet."""
        result = BatchResult(received=len(records), rules_version=self.rules.version)
        events: list[Event] = []
        positions: list[int] = []
        raws: list[bytes] = []
        # called on the object, not through a bound-method local: compiled, that is a direct
        # native call instead of a generic one (arguments boxed and parsed) per record
        codec = self.codec
        for i, record in enumerate(records):
            if type(record) is bytes:
                raw = record
            else:   # text, a tombstone's None, anything: the bytes kept, and why not usable
                raw, problem = record_bytes(record)
                if problem is not None:
                    result.dead_letters.append(DeadLetter(raw, problem.reason, problem.detail,
                                                          i))
                    continue
            try:
                events.append(codec.decode(raw) if codec is not None else decode(raw))
            except EventError as exc:
                result.dead_letters.append(DeadLetter(raw, exc.reason, exc.detail, i))
                continue
            positions.append(i)
            raws.append(raw)
        return self._ingest_events(events, positions, result, raws)

    def _bound_future(self, events: Sequence[Event], positions: Sequence[int],
                      result: BatchResult, raws: Sequence[bytes] | None,
                      ) -> tuple[Sequence[Event], Sequence[int], Sequence[bytes] | None]:
        """Dead-letter `future_time` the events beyond the stream's reach; the others stay."""
        times = [e.time for e in events]
        cut = self._future_cut(times)
        if max(times) <= cut:
            return events, positions, raws
        kept = [k for k, e in enumerate(events) if e.time <= cut]
        for k, event in enumerate(events):
            if event.time > cut:
                raw = raws[k] if raws is not None else orjson.dumps(to_canonical(event))
                result.dead_letters.append(DeadLetter(
                    raw, reasons.FUTURE_TIME,
                    f"event time {format_time(event.time)} is beyond the stream's reach "
                    f"({format_time(cut)}: latest event or wall clock + "
                    f"{self.future_limit // 3_600_000} h)", positions[k]))
        return ([events[k] for k in kept], [positions[k] for k in kept],
                [raws[k] for k in kept] if raws is not None else None)

    def _future_cut(self, times: list[int]) -> int:
        """The latest acceptable event time for this batch.

        The stream reaches max(latest accepted event, stored watermark + lateness, wall clock);
        events up to `future_limit` beyond it are accepted, each one extending the reach (a
        busy stream moves forward); a fresh stream is anchored on the batch's median time,
        which one odd event cannot move."""
        limit = self.future_limit
        stored = self.store.watermark()
        stream = max(self.max_event_time, stored + self.lateness if stored > 0 else 0)
        reach = max(stream, self.clock() if self.clock is not None else 0)
        ordered = sorted(times)
        if stream <= 0:
            reach = max(reach, ordered[len(ordered) // 2])
        cut = reach + limit
        for moment in ordered:
            if moment > cut:
                break
            cut = max(cut, moment + limit)
        return cut

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
                       result: BatchResult, raws: Sequence[bytes] | None = None) -> Ingested:
        if events and self.future_limit > 0:
            events, positions, raws = self._bound_future(events, positions, result, raws)
        latest = max([e.time for e in events]) if events else None
        if latest is not None:
            self.max_event_time = max(self.max_event_time, latest)
        # first-appearance order (not a set): the same order in every process and run
        states = self.store.load(dict.fromkeys([e.customer for e in events]))
        out = Output()
        engine = self.engine   # `engine.ingest(...)`: a direct native call when compiled
        for event in events:
            engine.ingest(states[event.customer], event, out)
        if out.too_late:
            self._too_late(events, positions, raws, out.too_late, result)
            out.too_late.clear()
        return Ingested(result, states, out, latest)

    @staticmethod
    def _too_late(events: Sequence[Event], positions: Sequence[int],
                  raws: Sequence[bytes] | None, late: list[Event], result: BatchResult) -> None:
        """Dead-letter `too_late` the events the engine refused (`late`: in ingest order, a
        subsequence of `events` by identity), each with its position and original bytes."""
        j = 0
        for k, event in enumerate(events):
            if j == len(late):
                break
            if event is not late[j]:
                continue
            j += 1
            # the original bytes when the event came as a record (decode once, keep them)
            raw = raws[k] if raws is not None else orjson.dumps(to_canonical(event))
            result.dead_letters.append(DeadLetter(
                raw, reasons.TOO_LATE,
                f"event {event.id} is older than the late horizon of its customer", positions[k]))

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
            # advancing returns the customer's next due instant (Engine.next_due)
            due_at = {customer: engine.advance(state, watermark, out)
                      for customer, state in states.items()}
            commit = Commit(states=states, watermark=watermark, entries=out.entries,
                            due=due_at)
            store.commit(commit)
            result.absorb(BatchResult(
                events=out.processed, entries=out.entries, notices=out.notices,
                outcomes=out.outcomes, duplicates=out.duplicates, late=out.late,
                watermark=watermark, changed=states, rules_version=self.rules.version))
            if len(listed) < DUE_SLICE:
                return
            states, out = {}, Output()  # a very large due set: continue in slices
