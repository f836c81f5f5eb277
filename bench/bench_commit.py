"""What a Redis commit's encoding costs per customer touched, and of what it is made.

`python -m bench.bench_commit --simulated 1500 7 --events 60000 --batch 140 --rounds 5` (the
worker benchmark's input) or `--skip 600000 --events 30000` (bench/results/run-events.jsonl):
runs the embedded pipeline (memory store) over `--skip` events of the input in
2,000-event batches, then over the next `--events` in batches of `--batch` (140: a 5k/s
worker's batches), capturing every commit (states copied as they were). Then, offline, GC off,
interleaved rounds, the CPU time (`thread_time`) of each part of the commit encoding over the
captured commits: `RedisStore.prepare` as the worker's processing thread runs it
(`redis_commit.commit_call`), and `Prepared.call` as its commit thread runs it (compression,
framing, script arguments); and the parts of the first: `compact.encode` of each state, the
head row around it, each ledger entry's payload, the open-promise counts. Medians; µs per
event of the window and per state encoded. No server needed.

With `--url redis://127.0.0.1:PORT/DB` (an OWN redis-server: its database is flushed), the
captured commits are also sent, in order, from an empty database, `--rounds` times: the
server's main-thread CPU (INFO cpu, user + sys) over each replay, per state committed — what
the commit script costs Redis, which shares the machine's cores with the worker — and the
sending thread's CPU (`apply`: compression, framing, the known values of store/known.py, the
send). Each replay starts with nothing known: a customer's first commit is a merge.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from valeur_monitor.engine import compact
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.store import record, redis_commit
from valeur_monitor.store.base import Commit
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.memory import MemoryStore


class Capture(MemoryStore):
    """The memory store, keeping a copy of every commit once `on` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False
        self.commits: list[Commit] = []

    def commit(self, commit: Commit) -> None:
        if self.on:
            self.commits.append(Commit(
                states={c: compact.decode(compact.encode(s)) for c, s in commit.states.items()},
                due=dict(commit.due), entries=list(commit.entries), watermark=commit.watermark))
        super().commit(commit)


def capture(source: Iterator[bytes], skip: int, events: int, batch: int) -> list[Commit]:
    rules = load_rules(["rules"])
    store = Capture()
    runner = EmbeddedRunner(rules, store)
    lines = (line for line in source if line.strip())
    head = list(itertools.islice(lines, skip))
    for i in range(0, len(head), 2000):
        runner.feed(head[i:i + 2000])
    del head
    store.on = True
    window = list(itertools.islice(lines, events))
    for i in range(0, len(window), batch):
        runner.feed(window[i:i + batch])
    return store.commits


def parts(commits: list[Commit], cap: int, max_age: int | None) -> dict[str, Callable[[], Any]]:
    keys = Keys("bench:")
    states = [s for c in commits for s in c.states.values()]
    entries = [e for c in commits for e in c.entries]

    def prepare() -> Any:
        return [redis_commit.commit_call(keys, c, cap, max_age) for c in commits]

    prepared: list[redis_commit.Prepared] = []

    def apply() -> None:
        # Prepared.call keeps its result: time fresh ones (prepared outside the clock)
        for p in prepared:
            p.call()

    def setup_apply() -> None:
        prepared[:] = prepare()

    apply.setup = setup_apply  # type: ignore[attr-defined]
    return {"prepare (processing thread)": prepare, "apply's call (commit thread)": apply,
            "compact.encode": each(compact.encode, states),
            "head_raw (row + compact.encode)": each(record.head_raw, states),
            "entry_raw (each ledger entry)": each(record.entry_raw, entries),
            "open-promise counts": each(redis_commit._open_counts, states)}


def each(step: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
    """A timed part: `step` over every item (one commit's states or entries)."""
    def run() -> None:
        for item in items:
            step(item)
    return run


def server_cpu(client: Any) -> float:
    """The Redis server's main-thread CPU so far (s)."""
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def replay(url: str, commits: list[Commit], cap: int, max_age: int | None,
           rounds: int) -> tuple[list[float], list[float]]:
    """Server CPU and the sending thread's CPU (s) of sending every captured commit from an
    empty database, per round."""
    from valeur_monitor.store.redis import RedisStore

    out, sender = [], []
    for _ in range(rounds):
        store = RedisStore.from_url(url, ledger_cap=cap, ledger_max_age=max_age)
        store.client.flushdb()
        # prepared (encoded) before the clock; `apply` compresses and frames each in order, as
        # the commit thread does: a customer's value known from the commit before is sent whole
        prepared = [store.prepare(c) for c in commits]
        store.commit(Commit(watermark=1))        # the epoch made before the clock
        began, mine = server_cpu(store.client), time.thread_time()
        for p in prepared:
            if p is not None:
                store.apply(p)
        sender.append(time.thread_time() - mine)
        out.append(server_cpu(store.client) - began)
        store.close()
    return out, sender


def compiled() -> bool:
    """Whether this interpreter runs the mypyc build: `redis_commit` is compiled there (the
    encoders `compact` and `record_types` stay interpreted in both builds)."""
    return not (redis_commit.__file__ or "").endswith(".py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", default="bench/results/run-events.jsonl")
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=140)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--simulated", type=int, nargs=2, metavar=("CUSTOMERS", "DAYS"),
                        help="the worker benchmark's input (bench.bench_worker) instead of --file")
    parser.add_argument("--url", help="an OWN redis-server (flushed!): time the script on it")
    args = parser.parse_args()
    rules = load_rules(["rules"])
    if args.simulated:
        from bench.bench_worker import simulated_lines

        source: Iterator[bytes] = iter(simulated_lines(*args.simulated))
        commits = capture(source, args.skip, args.events, args.batch)
    else:
        with Path(args.file).open("rb") as fh:
            commits = capture(fh, args.skip, args.events, args.batch)
    states = sum(len(c.states) for c in commits)
    entries = sum(len(c.entries) for c in commits)
    print(f"{args.events} events from {args.skip}, batches of {args.batch}: {len(commits)} "
          f"commits, {states} states ({states / args.events:.2f} per event), {entries} "
          f"entries; compiled: {compiled()}")
    timed = parts(commits, rules.settings.ledger_cap, rules.settings.ledger_max_age)
    results: dict[str, list[float]] = {name: [] for name in timed}
    gc.collect()
    gc.disable()
    for _ in range(args.rounds):
        for name, fn in timed.items():
            setup = getattr(fn, "setup", None)
            if setup is not None:
                setup()
            began = time.thread_time()
            fn()
            results[name].append(time.thread_time() - began)
    gc.enable()
    print("| part | µs per event | µs per state | rounds (s) |\n|---|---:|---:|---|")
    for name, runs in results.items():
        med = statistics.median(runs)
        print(f"| {name} | {med / args.events * 1e6:.1f} | {med / states * 1e6:.1f} | "
              f"{', '.join(f'{r:.3f}' for r in runs)} |")
    if args.url:
        server, sender = replay(args.url, commits, rules.settings.ledger_cap,
                                rules.settings.ledger_max_age, args.rounds)
        for name, runs in (("commit script (Redis main-thread CPU)", server),
                           ("apply, sent in order (commit thread, incl. compression)", sender)):
            med = statistics.median(runs)
            print(f"| {name} | {med / args.events * 1e6:.1f} | {med / states * 1e6:.1f} | "
                  f"{', '.join(f'{r:.3f}' for r in runs)} |")


if __name__ == "__main__":
    main()
