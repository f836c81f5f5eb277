"""`run --workers N`: customers split across processes by a hash of their id, same results.

Customers are independent, so each shard process runs its own Processor and memory store over
the lines of its customers (`runner/shard.py`). The parent does nothing per event: it starts
the shards (forked, so they inherit the loaded rules and catalogue), waits, and at the end
merges their rendered ledger entries and dead letters — batch by batch, in the order one
process writes them — and adds up their totals. Stdin, which shards cannot each read, is
spooled to a temporary file first.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import multiprocessing
import shutil
import signal
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import msgspec

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.codec import input_limits
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.errors import ValeurError
from valeur_monitor.runner.embedded import RunReport, close_sinks
from valeur_monitor.runner.inputs import CHUNK
from valeur_monitor.runner.route import customer_key, route
from valeur_monitor.runner.shard import Plan, Summary, serve, widen
from valeur_monitor.service import wall_clock_ms
from valeur_monitor.sinks.files import DeadLetterWriter, LedgerWriter
from valeur_monitor.store.base import ScoreView

__all__ = ["ShardError", "ShardedRunner", "customer_key", "route"]

BATCH = 2000


class ShardError(ValeurError):
    """A shard process failed or stopped; the run has no result."""


class ShardedRunner:
    """The parent: starts N shards over the inputs, merges what they wrote, sums the totals."""

    def __init__(self, rules: RuleSet, workers: int, *, ledger: LedgerWriter | None = None,
                 dead_letters: DeadLetterWriter | None = None, batch: int = BATCH,
                 start_method: str | None = None, views: bool = False,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        if workers < 2:
            raise ValueError("a sharded run needs at least 2 workers")
        _room_for_pipes(workers)
        self.rules = rules
        self.workers = workers
        self.ledger, self.dead = ledger, dead_letters
        self.batch = batch
        self.report = RunReport()
        # every customer's score sent back for `score_views()` (the CLI's --scores): without
        # it the shards send only what the report needs (lowest scores, customer count)
        self.views = views
        self._method = start_method or _start_method()
        # read once: every shard must bound future events alike (one process reads it per batch)
        self._clock = clock
        self._procs: list[Any] = []
        self._folder: str | None = None
        self._scores: list[msgspec.Raw] = []   # each shard's ScoreViews, still encoded
        self.shard_cpu: list[float] = []   # CPU seconds of each shard (after `run`)
        # (who, what, CLOCK_MONOTONIC seconds) of the parent and every shard (benchmarks)
        self.timeline: list[tuple[str, str, float]] = []

    def _mark(self, what: str) -> None:
        self.timeline.append(("parent", what, time.monotonic()))

    def run(self, inputs: list[str], until: int | None = None, worst: int = 10,
            progress: Callable[[int], None] | None = None) -> RunReport:
        """Process the input files ('-': stdin) and drain to `until` (default: latest event)."""
        started = time.perf_counter()
        self.timeline = []
        self._mark("run")
        # SIGTERM ends the run like Ctrl-C: shards stopped, temporary files removed
        terminate = (signal.signal(signal.SIGTERM, _exit_on_signal)
                     if threading.current_thread() is threading.main_thread() else None)
        # next to the ledger: the shards' frame files hold as many bytes as the ledger itself
        near = self.ledger.path.parent if self.ledger is not None else None
        self._folder = tempfile.mkdtemp(prefix=".valeur-shards-", dir=near)
        try:
            named = [(self._spool() if n == "-" else n, n == "-") for n in inputs]
            summaries = self._collect(self._start(named, until, worst), progress)
            self._mark("summaries received")
            self._merge_files()
            self._mark("outputs merged")
            self._total(summaries, worst)
            self._mark("totals")
        finally:
            self.close()
            self._mark("shards joined")
            if terminate is not None:
                signal.signal(signal.SIGTERM, terminate)
        self.report.seconds = time.perf_counter() - started
        close_sinks(self.ledger, self.dead)
        return self.report

    def score_views(self) -> list[ScoreView]:
        """Every customer's final score, by customer id (after `run`, made with `views`)."""
        if not self.views:
            raise ValueError("score_views() needs a ShardedRunner made with views=True")
        decode = msgspec.msgpack.Decoder(list[ScoreView]).decode
        # each shard's are in customer order already
        return list(heapq.merge(*(decode(raw) for raw in self._scores),
                                key=attrgetter("customer")))

    def close(self) -> None:
        """Stop shards still running and remove the temporary files."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
            if proc.is_alive():   # stuck where SIGTERM cannot reach Python code: never wait forever
                proc.kill()
                proc.join()
        self._procs = []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _spool(self) -> str:
        assert self._folder is not None
        path = Path(self._folder) / "stdin"
        with path.open("wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, CHUNK)
        return str(path)

    def _start(self, inputs: list[tuple[str, bool]], until: int | None, worst: int,
               ) -> tuple[list[Connection], Any]:
        assert self._folder is not None
        context: Any = multiprocessing.get_context(self._method)
        forked = self._method == "fork"
        n = self.workers
        # pipes[i][j]: shard i -> shard j, the valid event times of each batch
        pipes = [[context.Pipe(duplex=False) if i != j else None for j in range(n)]
                 for i in range(n)]
        progress = context.Value("q", 0, lock=False)
        ledger_csv = (self.ledger.fields is not None) if self.ledger is not None else None
        everyone = [c for row in pipes for pair in row if pair is not None for c in pair]
        results: list[Connection] = []
        clock = self._clock()
        if forked:
            # what the shards inherit is never scanned by their collectors: their start-up
            # `gc.collect()` walks nothing old, and no inherited page is copied for it
            gc.freeze()
        try:
            for i in range(n):
                plan = Plan(index=i, shards=n, inputs=inputs, batch=self.batch, folder=self._folder,
                            ledger_csv=ledger_csv, until=until, clock=clock, worst=worst,
                            views=self.views,
                            dead_csv=self.dead is not None and self.dead.path.suffix == ".csv",
                            rule_sources=self.rules.sources,
                            catalogue=None if forked else event_catalogue.active(),
                            limits=None if forked else input_limits())
                outgoing = [pair[1] for pair in pipes[i] if pair is not None]
                incoming = [pair[0] for row in pipes if (pair := row[i]) is not None]
                for conn in outgoing:
                    widen(conn)
                own = {id(c) for c in (*outgoing, *incoming)}
                foreign = [c for c in everyone if id(c) not in own] if forked else []
                mine, theirs = context.Pipe(duplex=False)
                proc = context.Process(
                    target=serve, name=f"valeur-shard-{i}", daemon=True,
                    args=(plan, self.rules if forked else None, outgoing, incoming, theirs,
                          progress if i == 0 else None, foreign))
                self._mark(f"starting shard {i}")
                proc.start()
                theirs.close()   # the shard holds it now (and the next shards must not inherit it)
                self._procs.append(proc)
                results.append(mine)
        finally:
            # also when a shard could not be started (a failed fork): the parent's garbage is
            # collected again (tests run many), and the shards already running see their
            # missing peers' pipes at end-of-file and stop instead of waiting for them
            if forked:
                gc.unfreeze()
            for conn in everyone:
                conn.close()
        self._mark("shards started")
        return results, progress

    def _collect(self, started: tuple[list[Connection], Any],
                 progress: Callable[[int], None] | None) -> list[Summary]:
        """Wait for every shard's summary, reporting progress (shard 0's bytes read)."""
        results, counter = started
        decoder = msgspec.msgpack.Decoder(Summary)
        summaries: dict[int, Summary] = {}
        shown = 0
        while len(summaries) < len(results):
            waiting = [i for i in range(len(results)) if i not in summaries]
            # a shard's pipe, or its process ending (a killed shard sends nothing)
            ready = wait([results[i] for i in waiting] + [self._procs[i].sentinel
                                                          for i in waiting], timeout=0.2)
            if progress is not None and counter.value > shown:
                progress(counter.value - shown)
                shown = counter.value
            for i in waiting:
                if results[i] not in ready and self._procs[i].sentinel not in ready:
                    continue
                try:
                    if not results[i].poll():
                        raise EOFError
                    summary = decoder.decode(results[i].recv_bytes())
                except EOFError:
                    self._procs[i].join(1)
                    raise ShardError(f"shard {i} stopped without a result (exit code "
                                     f"{self._procs[i].exitcode})") from None
                if summary.error:
                    raise ShardError(f"shard {i} failed: {summary.error}")
                summaries[i] = summary
                self._mark(f"summary of shard {i}")
                self.timeline.extend((f"shard {i}", what, t) for what, t in summary.marks)
        for conn in results:
            conn.close()
        return [summaries[i] for i in range(len(results))]

    def _merge_files(self) -> None:
        """Ledger entries and dead letters of every shard, in one process's order."""
        assert self._folder is not None
        folder = Path(self._folder)
        n = range(self.workers)
        if self.ledger is not None:
            entries = msgspec.msgpack.Decoder(tuple[int, list[tuple[str, int, str]]])
            for lines in _merged([folder / f"ledger-{i}" for i in n], entries, itemgetter(0, 1)):
                self.ledger.write_text("".join(line for _, _, line in lines))
        letters = msgspec.msgpack.Decoder(tuple[int, list[tuple[int, str]]])
        for rows in _merged([folder / f"dead-{i}" for i in n], letters, itemgetter(0)):
            if self.dead is not None:
                self.dead.write_lines([line for _, line in rows])

    def _total(self, summaries: list[Summary], worst: int) -> None:
        report = self.report
        self.shard_cpu = [s.cpu for s in summaries]
        for s in summaries:
            report.received += s.received
            report.processed += s.processed
            report.duplicates += s.duplicates
            report.late += s.late
            report.entries += s.entries
            report.watermark = max(report.watermark, s.watermark)
            report.dead_letters.update(s.dead_letters)
            report.outcomes.update({(a, b): k for a, b, k in s.outcomes})
            report.notices.update({(a, b): k for a, b, k in s.notices})
            for rule, dim, made, values in s.values:
                bucket = report.values.setdefault((rule, dim, made), array("d"))
                bucket.frombytes(values)
        report.sum_values()
        self._scores = [s.scores for s in summaries]
        # the `worst` lowest of all are among each shard's `worst` lowest
        ranked = sorted((v for s in summaries for v in s.worst),
                        key=attrgetter("total", "customer"))[:worst]
        report.worst = [v for v in ranked if v.total < 0]
        report.customers = sum(s.customers for s in summaries)


def _frames(path: Path, decoder: msgspec.msgpack.Decoder[Any]) -> Iterator[tuple[int, list[Any]]]:
    if not path.exists():
        return
    with path.open("rb") as fh:
        while head := fh.read(4):
            yield decoder.decode(fh.read(int.from_bytes(head, "little")))


def _merged(paths: list[Path], decoder: msgspec.msgpack.Decoder[Any],
            order: Callable[[Any], Any]) -> Iterator[list[Any]]:
    """Per batch, in batch order: the items every shard wrote for it, sorted by `order`."""
    streams = [_frames(p, decoder) for p in paths]
    for _, group in itertools.groupby(heapq.merge(*streams, key=itemgetter(0)),
                                      key=itemgetter(0)):
        parts = [items for _, items in group]
        if len(parts) == 1:
            yield parts[0]
        else:
            yield sorted(itertools.chain.from_iterable(parts), key=order)


def _room_for_pipes(workers: int) -> None:
    """Every pair of shards has a pipe: raise the open-file limit to fit, or say why not."""
    import resource

    need = 2 * workers * workers + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard == resource.RLIM_INFINITY or hard >= need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        else:
            raise ValueError(f"--workers {workers} needs about {need} open files; the limit "
                             f"is {hard} (ulimit -n)")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _start_method() -> str:
    """fork where it is safe (POSIX, no thread running): no start-up imports, rules inherited."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"
