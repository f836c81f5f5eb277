"""`run --workers N`: customers split across processes by a hash of their id, same results.

Customers are independent, so each shard process runs its own Processor and memory store over
the lines of its customers. Two things keep the output identical to one process: every batch
has the same lines as in one process, and all shards settle it at the same stream time (the
watermark of the whole batch, which the parent computes from each shard's latest event time).
A batch is therefore two steps (ingest, then settle) folded into one round trip per batch: the
message that settles batch k also carries the lines of batch k+1.
"""

from __future__ import annotations

import multiprocessing
import time
import zlib
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from valeur_monitor.engine.ledger import LedgerEntry, Notice, Outcome
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.runner.embedded import RunReport, close_sinks, sink_batch
from valeur_monitor.service import BatchResult, DeadLetter, Ingested, Processor
from valeur_monitor.sinks.files import DeadLetterWriter, LedgerWriter
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore

_KEY = b'"customer":"'


class _Route(msgspec.Struct):
    customer: Any = None
    subject: Any = None
    specversion: Any = None


_route_decoder = msgspec.json.Decoder(_Route)


def customer_key(line: bytes) -> bytes | None:
    """The customer id of a record as the decoder would read it, None if it has none.

    A byte scan when the line leaves no doubt (one `"customer":"` key, no escapes, no
    CloudEvents `subject`), else a decode of the three fields that decide it.
    """
    at = line.find(_KEY)
    if at >= 0 and b"\\" not in line and b'"subject"' not in line and line.count(
            b'"customer"') == 1:
        end = line.find(b'"', at + len(_KEY))
        if end > at + len(_KEY):
            return line[at + len(_KEY):end]
    return _exact_key(line)


def _exact_key(line: bytes) -> bytes | None:
    try:
        route = _route_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    customer = route.customer
    if route.specversion is not None and not customer:
        customer = route.subject
    return customer.encode() if isinstance(customer, str) and customer else None


def shard_of(line: bytes, shards: int) -> int:
    """Which of `shards` processes owns the record's customer (records without one: 0)."""
    key = customer_key(line)
    return zlib.crc32(key) % shards if key is not None else 0


# -- messages between the parent and its shards (msgpack) ---------------------------------------
class Step(msgspec.Struct, tag=True, array_like=True):
    watermark: int | None           # settle the batch ingested last at this stream time first
    lines: list[bytes]              # then ingest these


class Finish(msgspec.Struct, tag=True, array_like=True):
    watermark: int | None
    until: int


class Settled(msgspec.Struct, array_like=True):
    received: int
    processed: int
    entries: list[LedgerEntry]
    notices: list[Notice]
    outcomes: list[Outcome]
    dead: list[tuple[bytes, str, str, int]]
    duplicates: int
    late: int
    watermark: int

    @classmethod
    def of(cls, result: BatchResult) -> Settled:
        return cls(result.received, len(result.events), result.entries, result.notices,
                   result.outcomes, [(d.raw, d.reason, d.detail, d.index)
                                     for d in result.dead_letters],
                   result.duplicates, result.late, result.watermark)


class StepReply(msgspec.Struct, array_like=True):
    settled: Settled | None
    latest: int | None


class FinishReply(msgspec.Struct, array_like=True):
    settled: Settled | None
    final: Settled
    scores: list[ScoreView]


_encoder = msgspec.msgpack.Encoder()


def _serve(conn: Connection, rule_files: list[str]) -> None:
    """A shard process: its own rules, memory store and Processor, driven by the parent."""
    rules = load_rules(rule_files)
    store = MemoryStore(ledger_cap=0)  # the parent writes the ledger; the shard keeps none
    processor = Processor(rules, store)
    decoder = msgspec.msgpack.Decoder(Step | Finish)
    pending: Ingested | None = None
    while True:
        message = decoder.decode(conn.recv_bytes())
        settled = None
        if pending is not None and message.watermark is not None:
            settled = Settled.of(processor.settle(pending, message.watermark))
            pending = None
        if isinstance(message, Step):
            pending = processor.ingest(message.lines)
            conn.send_bytes(_encoder.encode(StepReply(settled, pending.latest)))
            continue
        final = Settled.of(processor.advance_to(message.until))
        scores = [v for c in store.customers() if (v := store.score(c)) is not None]
        conn.send_bytes(_encoder.encode(FinishReply(settled, final, scores)))
        conn.close()
        return


class ShardedRunner:
    """The parent: splits each batch by customer, agrees stream time, merges and writes."""

    def __init__(self, rules: RuleSet, workers: int, *, ledger: LedgerWriter | None = None,
                 dead_letters: DeadLetterWriter | None = None) -> None:
        if workers < 2:
            raise ValueError("a sharded run needs at least 2 workers")
        self.rules = rules
        self.workers = workers
        self.ledger, self.dead = ledger, dead_letters
        self.report = RunReport()
        self._started = time.perf_counter()
        context = multiprocessing.get_context("spawn")  # no inherited threads or open files
        self._conns: list[Connection] = []
        self._procs = []
        for _ in range(workers):
            parent, child = context.Pipe()
            proc = context.Process(target=_serve, args=(child, list(rules.sources)),
                                   daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._step = msgspec.msgpack.Decoder(StepReply)
        self._watermark = 0
        self._max_time = 0
        # Batches in flight: positions of the lines each shard got, oldest first. The shards
        # work on step k while the parent splits batch k+1 and writes out batch k-1.
        self._positions: list[list[list[int]]] = []
        self._awaiting = False
        self._scores: list[ScoreView] = []

    def feed(self, lines: Sequence[bytes]) -> None:
        """Send a batch to the shards; settle and write out earlier ones as replies come."""
        parts: list[list[bytes]] = [[] for _ in range(self.workers)]
        where: list[list[int]] = [[] for _ in range(self.workers)]
        workers = self.workers
        for i, line in enumerate(lines):
            shard = shard_of(line, workers)
            parts[shard].append(line)
            where[shard].append(i)
        settled = self._collect()
        settle = self._watermark if self._positions else None
        for conn, part in zip(self._conns, parts, strict=True):
            conn.send_bytes(_encoder.encode(Step(settle, part)))
        self._awaiting = True
        self._positions.append(where)
        if settled is not None:
            self._merge(settled, self._positions.pop(0))

    def _collect(self) -> list[Settled | None] | None:
        """Replies to the last step: stream time for its batch, results of the one before."""
        if not self._awaiting:
            return None
        replies = [self._step.decode(conn.recv_bytes()) for conn in self._conns]
        self._awaiting = False
        latest = [r.latest for r in replies if r.latest is not None]
        if latest:
            self._max_time = max(self._max_time, *latest)
            self._watermark = max(self._watermark, max(latest) - self.rules.settings.lateness)
        settled = [r.settled for r in replies]
        return settled if any(part is not None for part in settled) else None

    def finish(self, until: int | None = None, worst: int = 10) -> RunReport:
        """Settle the last batch, drain every shard to `until` (default: latest event time)."""
        settled = self._collect()
        target = until if until is not None else self._max_time
        settle = self._watermark if self._positions else None
        for conn in self._conns:
            conn.send_bytes(_encoder.encode(Finish(settle, target)))
        if settled is not None:
            self._merge(settled, self._positions.pop(0))
        decoder = msgspec.msgpack.Decoder(FinishReply)
        replies = [decoder.decode(conn.recv_bytes()) for conn in self._conns]
        for proc in self._procs:
            proc.join()
        if self._positions:
            self._merge([r.settled for r in replies], self._positions.pop(0))
        self._merge([r.final for r in replies], None)
        self._scores = sorted((v for r in replies for v in r.scores), key=lambda v: v.customer)
        self.report.seconds = time.perf_counter() - self._started
        ranked = sorted(self._scores, key=lambda v: (v.total, v.customer))[:worst]
        self.report.worst = [v for v in ranked if v.total < 0]
        self.report.customers = len(self._scores)
        close_sinks(self.ledger, self.dead)
        return self.report

    def score_views(self) -> list[ScoreView]:
        """Every customer's final score, by customer id (after `finish`)."""
        return self._scores

    def close(self) -> None:
        """Stop shards still running (after an error in the parent)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
                proc.join()

    def _merge(self, parts: Sequence[Settled | None], where: list[list[int]] | None) -> None:
        result = BatchResult(watermark=0)
        processed = 0
        for shard, part in enumerate(parts):
            if part is None:
                continue
            positions = where[shard] if where is not None else None
            result.received += part.received
            processed += part.processed
            result.entries.extend(part.entries)
            result.notices.extend(part.notices)
            result.outcomes.extend(part.outcomes)
            result.dead_letters.extend(
                DeadLetter(raw, reason, detail,
                           positions[index] if positions is not None and index >= 0 else index)
                for raw, reason, detail, index in part.dead)
            result.duplicates += part.duplicates
            result.late += part.late
            result.watermark = max(result.watermark, part.watermark)
        result.dead_letters.sort(key=lambda d: d.index)
        sink_batch(result, self.report, self.ledger, self.dead, processed)
