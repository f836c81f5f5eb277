"""One process of `run --workers N`: reads the whole input, applies its own customers' events.

Every shard reads every input file itself and cuts it into the batches one process would cut.
A line belongs to shard `crc32(customer) % N` (`route`); only those lines are decoded here.
Batch b is routed by shard `b % N` alone, which sends the others the owner of every line
`ROUTE_AHEAD` batches before they need it (no line's customer is looked for twice).
Two decisions of one process depend on the whole batch, not on one customer: the future bound
(events too far ahead are refused) and the stream time the batch settles at. Both are functions
of the valid event times of the batch and of what came before, so each shard sends the others
the sorted valid times of its own lines, `AHEAD` batches before it applies that batch, and
computes both exactly as one process does (`Processor._future_cut`, `next_watermark`). No
process sits between the shards and they never wait for each other while they stay within
`AHEAD` batches. Entries and dead letters go, rendered, to per-shard frame files keyed by batch
and (customer, seq) or position; the parent merges them once at the end.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
import traceback
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from operator import attrgetter
from pathlib import Path
from typing import IO, Any

import msgspec

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.catalogue.model import Catalogue
from valeur_monitor.codec import InputLimits, configure_limits, default_codec
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.errors import EventError, ValeurError
from valeur_monitor.runner.embedded import RunReport, collector_paused, tune_gc
from valeur_monitor.runner.inputs import open_input, read_batches
from valeur_monitor.runner.route import owners
from valeur_monitor.service import BatchResult, DeadLetter, Processor
from valeur_monitor.sinks.files import (
    DEAD_LETTER_FIELDS,
    LEDGER_FIELDS,
    dead_letter_rows,
    ledger_rows,
    render_lines,
)
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore

AHEAD = 4             # batches a shard decodes (and announces) before it applies the oldest
ROUTE_AHEAD = 4       # batches a shard routes before the others need them
PIPE_BYTES = 1 << 20  # room for AHEAD batches of times even when one shard has every line
_TIMES, _OWNERS = b"t", b"o"   # the first byte of a message between shards: what it holds
_F_SETPIPE_SZ = 1031  # Linux fcntl; elsewhere pipes keep their default size


@dataclass(frozen=True)
class Plan:
    """What a shard needs to know; the same for every shard but `index`."""

    index: int
    shards: int
    inputs: list[tuple[str, bool]]   # (path, plain): plain = no gzip sniffing (spooled stdin)
    batch: int
    folder: str
    ledger_csv: bool | None          # None: no ledger file
    dead_csv: bool                   # dead letters written as CSV (else JSONL)
    until: int | None
    clock: int                       # wall clock of the run (the same for every shard)
    worst: int = 10                  # lowest scores the run reports
    views: bool = False              # every customer's ScoreView wanted (`score_views()`)
    rule_sources: tuple[str, ...] = ()
    catalogue: Catalogue | None = None   # for a spawned (not forked) shard
    limits: InputLimits | None = None


class Summary(msgspec.Struct, array_like=True):
    """A shard's totals, sent to the parent at the end (or `error`: what went wrong)."""

    error: str = ""
    cpu: float = 0.0                 # CPU seconds the shard used (benchmarks)
    received: int = 0
    processed: int = 0
    duplicates: int = 0
    late: int = 0
    entries: int = 0
    watermark: int = 0
    dead_letters: dict[str, int] = {}
    outcomes: list[tuple[str, str, int]] = []
    notices: list[tuple[str, str, int]] = []
    values: list[tuple[str, str, bool, bytes]] = []
    customers: int = 0
    worst: list[ScoreView] = []       # the shard's `Plan.worst` lowest (total, customer)
    # every customer's ScoreView by customer id (if `Plan.views`), still encoded
    scores: msgspec.Raw = msgspec.Raw(b"\x90")
    # (what, CLOCK_MONOTONIC seconds): when the shard reached each step (`bench_sharded`)
    marks: list[tuple[str, float]] = []


class _Processor(Processor):
    """A Processor whose future bound is the whole batch's, computed before each ingest."""

    cut = 0

    def _future_cut(self, times: list[int]) -> int:
        return self.cut


@dataclass
class _Decoded:
    number: int
    received: int
    events: list[Event]
    positions: list[int]
    raws: list[bytes]
    dead: list[DeadLetter]
    times: list[int]


class _Inbox:
    """What one other shard sends: the valid event times of each batch, and the owners of
    the lines of the batches it routes; each kind in batch order, read as they are needed."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.kept: dict[int, deque[bytes]] = {_TIMES[0]: deque(), _OWNERS[0]: deque()}

    def take(self, kind: bytes) -> memoryview:
        """The next message of this kind (without its kind byte)."""
        kept = self.kept[kind[0]]
        while not kept:
            message = self.conn.recv_bytes()
            self.kept[message[0]].append(message)
        return memoryview(kept.popleft())[1:]


class FrameWriter:
    """Length-prefixed msgpack frames `(batch, items)` in a file."""

    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = path.open("wb")
        self._encode = msgspec.msgpack.Encoder().encode

    def write(self, number: int, items: Sequence[tuple[Any, ...]]) -> None:
        payload = self._encode((number, items))
        self._file.write(len(payload).to_bytes(4, "little") + payload)

    def close(self) -> None:
        self._file.close()


def widen(conn: Connection) -> None:
    """Let a pipe hold `AHEAD` batches of event times (Linux); a no-op elsewhere."""
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        fcntl.fcntl(conn.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)


class Shard:
    """The loop of one shard: announce times ahead, apply batches in order, write frames."""

    def __init__(self, plan: Plan, rules: RuleSet, outgoing: list[Connection],
                 incoming: list[Connection], progress: Any) -> None:
        self.plan = plan
        self.store = MemoryStore(ledger_cap=0)  # the ledger goes to the frame files
        clock = plan.clock
        self.processor = _Processor(rules, self.store, clock=lambda: clock)
        self.codec = default_codec()
        self.outgoing = outgoing
        # incoming[k]: from shard k, or k + 1 past this one (`ShardedRunner._start`)
        self.inbox = {k + (k >= plan.index): _Inbox(conn) for k, conn in enumerate(incoming)}
        self.known: dict[str, int] = {}   # customer -> shard (a look-up, not a hash, per line)
        self.progress = progress
        self.report = RunReport()
        folder = Path(plan.folder)
        self.ledger = (FrameWriter(folder / f"ledger-{plan.index}") if plan.ledger_csv is not None
                       else None)
        self.dead = FrameWriter(folder / f"dead-{plan.index}")
        self.marks: list[tuple[str, float]] = []

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic()))

    def run(self) -> Summary:
        pending: deque[_Decoded] = deque()
        number = 0
        parent = os.getppid()
        self.mark("loop")
        for number, lines, found in self._routed():
            if number == 0:
                self.mark("first batch read")
            if os.getppid() != parent:   # the parent was killed: nobody will read the result
                raise SystemExit(1)
            pending.append(self._decode(number, lines, found))
            if len(pending) > AHEAD:
                self._apply(pending.popleft())
        while pending:
            self._apply(pending.popleft())
        self.mark("last batch applied")
        processor = self.processor
        until = self.plan.until
        final = processor.advance_to(until if until is not None else processor.max_event_time)
        self._write(number + 1, final)
        for sink in (self.ledger, self.dead):
            if sink is not None:
                sink.close()
        self.mark("drained")
        summary = self._summary()
        self.mark("summary built")
        summary.marks = self.marks
        return summary

    def _batches(self) -> Iterator[list[bytes]]:
        bump = None
        if self.progress is not None:
            counter = self.progress

            def bump(n: int) -> None:
                counter.value += n
        for path, plain in self.plan.inputs:
            with open(path, "rb") if plain else open_input(path) as stream:
                yield from read_batches(stream, self.plan.batch, bump)

    def _routed(self) -> Iterator[tuple[int, list[bytes], array[int]]]:
        """The batches, each with the shard of every line (`owners`). Shard `b % N` alone
        routes batch b (each line's customer found by a partial decode) and sends the others
        its answer `ROUTE_AHEAD` batches before they need it: no line is routed twice."""
        shards, me = self.plan.shards, self.plan.index
        read: deque[tuple[int, list[bytes], array[int] | None]] = deque()
        batches = enumerate(self._batches())
        more = True
        while True:
            while more and len(read) <= ROUTE_AHEAD:
                got = next(batches, None)
                if got is None:
                    more = False
                    break
                number, lines = got
                found = None
                if number % shards == me:
                    found = array("H", owners(lines, shards, self.known))
                    message = _OWNERS + found.tobytes()
                    for conn in self.outgoing:
                        conn.send_bytes(message)
                read.append((number, lines, found))
            if not read:
                return
            number, lines, found = read.popleft()
            if found is None:
                found = array("H")
                found.frombytes(self.inbox[number % shards].take(_OWNERS))
            yield number, lines, found

    def _decode(self, number: int, lines: list[bytes], found: array[int]) -> _Decoded:
        """Decode this shard's lines of a batch and send the others their valid times."""
        me = self.plan.index
        decode = self.codec.decode
        events: list[Event] = []
        positions: list[int] = []
        raws: list[bytes] = []
        dead: list[DeadLetter] = []
        mine = [i for i, owner in enumerate(found) if owner == me]
        for i in mine:
            line = lines[i]
            try:
                events.append(decode(line))
            except EventError as exc:
                dead.append(DeadLetter(line, exc.reason, exc.detail, i))
                continue
            positions.append(i)
            raws.append(line)
        times = sorted(e.time for e in events)
        message = _TIMES + array("q", times).tobytes()
        for conn in self.outgoing:
            conn.send_bytes(message)
        return _Decoded(number, len(mine), events, positions, raws, dead, times)

    def _apply(self, batch: _Decoded) -> None:
        """Ingest and settle a batch exactly as one process would (same bound, same time)."""
        processor = self.processor
        times = batch.times
        for inbox in self.inbox.values():
            theirs = array("q")
            theirs.frombytes(inbox.take(_TIMES))
            times.extend(theirs)
        times.sort()
        latest = None
        if times and processor.future_limit > 0:
            processor.cut = Processor._future_cut(processor, times)
            kept = bisect_right(times, processor.cut)
            latest = times[kept - 1] if kept else None
        elif times:
            latest = times[-1]
        result = BatchResult(received=batch.received, rules_version=processor.rules.version)
        result.dead_letters.extend(batch.dead)
        ingested = processor._ingest_events(batch.events, batch.positions, result, batch.raws)
        if latest is not None:
            processor.max_event_time = max(processor.max_event_time, latest)
        settled = processor.settle(ingested, processor.next_watermark(latest))
        self._write(batch.number, settled)

    def _write(self, number: int, result: BatchResult) -> None:
        result.entries.sort(key=_entry_order)
        self.report.add(result)
        if self.ledger is not None and result.entries:
            lines = render_lines(ledger_rows(result.entries, bool(self.plan.ledger_csv)),
                                 LEDGER_FIELDS if self.plan.ledger_csv else None)
            self.ledger.write(number, [(e.customer, e.seq, line)
                                       for e, line in zip(result.entries, lines, strict=True)])
        if result.dead_letters:
            lines = render_lines(dead_letter_rows(result.dead_letters),
                                 DEAD_LETTER_FIELDS if self.plan.dead_csv else None)
            self.dead.write(number, [(d.index, line)
                                     for d, line in zip(result.dead_letters, lines, strict=True)])

    def _summary(self) -> Summary:
        r, store = self.report, self.store
        worst = [v for c, _ in store.ranking(self.plan.worst) if (v := store.score(c)) is not None]
        views = b"\x90"   # an empty msgpack array
        if self.plan.views:   # built only when asked for: 16 µs per customer, after the work
            views = msgspec.msgpack.encode(
                [v for c in store.customers() if (v := store.score(c)) is not None])
        return Summary(
            cpu=time.process_time(), received=r.received, processed=r.processed,
            duplicates=r.duplicates, late=r.late,
            entries=r.entries, watermark=r.watermark, dead_letters=dict(r.dead_letters),
            outcomes=[(a, b, n) for (a, b), n in r.outcomes.items()],
            notices=[(a, b, n) for (a, b), n in r.notices.items()],
            values=[(rule, dim, made, v.tobytes()) for (rule, dim, made), v in r.values.items()],
            customers=len(store.customers()), worst=worst, scores=msgspec.Raw(views))


_entry_order = attrgetter("customer", "seq")


_LEFT: list[Shard] = []   # what a shard process holds when it sends its summary (see `serve`)


def serve(plan: Plan, rules: RuleSet | None, outgoing: list[Connection],
          incoming: list[Connection], result: Connection, progress: Any,
          foreign: list[Connection]) -> None:
    """A shard process: run, then send the summary (or the error) to the parent.

    `foreign`: pipe ends a forked shard inherited but does not use (closed, so that a shard
    that stops shows as end-of-file to the others)."""
    marks = [("started", time.monotonic())]
    for conn in foreign:
        conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C: the parent stops every shard
    encode = msgspec.msgpack.Encoder().encode
    try:
        if rules is None:   # spawned: rebuild what a forked shard inherits
            if plan.catalogue is not None:
                event_catalogue.use(plan.catalogue)
            if plan.limits is not None:
                configure_limits(plan.limits)
            rules = load_rules(list(plan.rule_sources))
        tune_gc()           # the collector settings of one process's run
        gc.freeze()         # and what a forked shard inherited is never scanned either
        for conn in outgoing:
            widen(conn)
        marks.append(("ready", time.monotonic()))
        with collector_paused():   # as one process's run over files
            shard = Shard(plan, rules, outgoing, incoming, progress)
            summary = shard.run()
        summary.marks = marks + summary.marks
        # the process ends once the summary is sent: its states are left to the exit instead
        # of being freed one by one (≈ 0.2 s for 15k customers, after the work is done)
        _LEFT.append(shard)
    except BaseException:  # the parent reports it and stops the others
        failure = sys.exc_info()[1]
        # a ValeurError or OSError says it all (as one process would); else the traceback
        summary = Summary(error=f"{type(failure).__name__}: {failure}"
                          if isinstance(failure, ValeurError | OSError)
                          else traceback.format_exc())
    result.send_bytes(encode(summary))
    result.close()
