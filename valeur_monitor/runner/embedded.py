"""The embedded runner: files or stdin -> engine -> a store, with a report at the end."""

from __future__ import annotations

import gc
import math
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final

from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.read.factory import reader_of
from valeur_monitor.service import BatchResult, Processor
from valeur_monitor.sinks.files import DeadLetterWriter, LedgerWriter
from valeur_monitor.store.base import ScoreView, Store

_GC_THRESHOLD = 50_000
_CUSTOMER: Final = attrgetter("customer")   # a ledger entry's customer
BatchHook = Callable[[BatchResult, float], None]


@dataclass
class RunReport:
    """Totals of a run: what came in, what was refused, value by rule and dimension."""

    received: int = 0
    processed: int = 0
    duplicates: int = 0
    late: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    created: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    destroyed: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)   # (rule, outcome) -> n
    notices: Counter[tuple[str, str]] = field(default_factory=Counter)    # (kind, id) -> n
    entries: int = 0
    watermark: int = 0
    seconds: float = 0.0
    worst: list[ScoreView] = field(default_factory=list)
    as_of: int = 0            # the instant every score shown is decayed to (the stream time)
    customers: int = 0
    # every entry's value by (rule, dimension, created?), summed once by `sum_values`: an exact
    # sum (math.fsum) is the same whatever order entries were counted in (one process, shards)
    values: dict[tuple[str, str, bool], array[float]] = field(default_factory=dict)

    def add(self, result: BatchResult, processed: int | None = None) -> None:
        """Count a batch; `processed` overrides len(result.events) (shards send counts)."""
        self.received += result.received
        self.processed += len(result.events) if processed is None else processed
        self.duplicates += result.duplicates
        self.late += result.late
        self.dead_letters.update(d.reason for d in result.dead_letters)
        # the batch's values and outcomes gathered in plain lists and dicts first (compiled,
        # an array's or a Counter's methods are generic calls: one per key and batch here,
        # not one per entry or outcome)
        batch: dict[tuple[str, str, bool], list[float]] = {}
        for entry in result.entries:
            value = entry.value
            key = (entry.rule, entry.dimension, value >= 0)
            same = batch.get(key)
            if same is None:
                batch[key] = [value]
            else:
                same.append(value)
        values = self.values
        for key, found in batch.items():
            bucket = values.get(key)
            if bucket is None:
                bucket = values[key] = array("d")
            bucket.extend(found)
        self.entries += len(result.entries)
        counts: dict[tuple[str, str], int] = {}
        for outcome in result.outcomes:
            pair = (outcome[0], outcome[1])   # (rule, outcome)
            counts[pair] = counts.get(pair, 0) + 1
        self.outcomes.update(counts)
        self.notices.update((n.kind, n.id) for n in result.notices)
        self.watermark = max(self.watermark, result.watermark)

    def sum_values(self) -> None:
        """Fill `created` and `destroyed` (by rule and dimension, in key order) from `values`."""
        self.created.clear()
        self.destroyed.clear()
        for rule, dimension, made in sorted(self.values):
            total = math.fsum(self.values[(rule, dimension, made)])
            if made:
                self.created[(rule, dimension)] = total
            else:
                self.destroyed[(rule, dimension)] = -total


class EmbeddedRunner:
    """Feeds batches of raw lines to the shared Processor and fans results out to sinks."""

    def __init__(self, rules: RuleSet, store: Store, *, ledger: LedgerWriter | None = None,
                 dead_letters: DeadLetterWriter | None = None,
                 on_batch: Iterable[BatchHook] = ()) -> None:
        tune_gc()
        self.processor = Processor(rules, store)
        self.store = store
        self.ledger = ledger
        self.dead = dead_letters
        self.hooks = list(on_batch)
        self.report = RunReport()
        self._started = time.perf_counter()

    def feed(self, lines: list[bytes]) -> BatchResult:
        began = time.perf_counter()
        result = self.processor.process(lines)
        self._sink(result, time.perf_counter() - began)
        return result

    def finish(self, until: int | None = None, worst: int = 10) -> RunReport:
        """Drain: stream time goes to `until` (default: the latest event seen) and timers fire."""
        began = time.perf_counter()
        target = until if until is not None else self.processor.max_event_time
        result = self.processor.advance_to(target)
        self._sink(result, time.perf_counter() - began)
        self.report.sum_values()
        self.report.seconds = time.perf_counter() - self._started
        reader = reader_of(self.store)
        lowest = reader.scores([c for c, total in reader.ranked(0, worst) if total < 0])
        self.report.worst = sorted(lowest.values(), key=lambda v: (v.total, v.customer))
        self.report.customers = reader.count()
        close_sinks(self.ledger, self.dead)
        return self.report

    def score_views(self) -> list[ScoreView]:
        """Every customer's final score, by customer id."""
        reader = reader_of(self.store)
        everyone = sorted(c for batch in reader.batches() for c in batch)
        return [v for i in range(0, len(everyone), 1000)
                for v in reader.scores(everyone[i:i + 1000]).values()]

    def _sink(self, result: BatchResult, seconds: float,
              processed: int | None = None) -> None:
        sink_batch(result, self.report, self.ledger, self.dead, processed)
        for hook in self.hooks:
            hook(result, seconds)


def tune_gc() -> None:
    """Fewer garbage collections for a long run: what exists now (modules, compiled rules) is
    never scanned again, and collections start after 50,000 new objects instead of 700. The
    engine makes few reference cycles (its structs are not tracked); a run's objects are mostly
    states that live as long as the run, which each collection would scan again for nothing.
    Once per process (a test session makes many runners)."""
    if gc.get_threshold()[0] >= _GC_THRESHOLD:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_THRESHOLD, 20, 100)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a run reads its input files, back on after.

    Each collection walks the young objects again and finds nothing: the engine's states,
    events and entries hold no reference cycles (0 objects collected over the benchmark week,
    the demo week and an input with 30 % malformed lines), and on the week the 20-odd
    collections cost 3-4 % of the CPU, more as the live states grow. Reference counting still
    frees everything at once. What the run made is frozen before the collector is back on:
    else the first allocation after the run collects every object made during it (0.25 s after
    300,000 events, compiled) — the same walk, only later; freezing is O(1) and leaves the run's
    few cyclic leftovers (a progress bar, the loaded rules) to the process's end — also in a
    process that calls `run_files` more than once (tests, `bench.ledger_identity`): a few dozen
    objects per run, as `tune_gc`'s freeze. Not for `--follow` or a server: those run for
    ever, where cycles (reloads, sockets) must go."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()


def sink_batch(result: BatchResult, report: RunReport, ledger: LedgerWriter | None,
               dead: DeadLetterWriter | None, processed: int | None = None) -> None:
    """Count a batch and write it out; entries go in (customer, seq) order so that the ledger
    file is the same whatever order customers were processed in (one process or shards)."""
    # by customer alone: the sort is stable and one customer's entries already come in `seq`
    # order (the engine numbers each as it appends it), so this is (customer, seq) order with
    # plain string keys (a (customer, seq) tuple made and compared per entry cost ≈ 1.3k
    # instructions per event compiled)
    result.entries.sort(key=_CUSTOMER)
    report.add(result, processed)
    if ledger is not None and result.entries:
        ledger.write(result.entries)
    if dead is not None and result.dead_letters:
        dead.write(result.dead_letters)


def close_sinks(*sinks: LedgerWriter | DeadLetterWriter | None) -> None:
    for sink in sinks:
        if sink is not None:
            sink.close()


