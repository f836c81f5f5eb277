"""`run --store redis://` against the memory-store run on the same file (issue 12 aim: >= 0.5).

`python -m bench.bench_redis_run --url redis://127.0.0.1:16379/9 --lines 50000 --runs 5`:
the first `--lines` events of bench/results/run-events.jsonl (made by bench.bench_run), the
embedded pipeline with the memory store and with the Redis store as `run` opens it (the
shipped window, states cached, commits pipelined: as bench.bench_run.redis_run), interleaved,
medians of wall time. Also the CPU time of the run's own thread in both (`thread_time`: the
Redis run's commits are compressed and sent by another thread, and Redis runs on another
core, so on an idle machine this thread is the wall time; on a loaded one its ratio is the
steadier figure), the process CPU, and the server's script time (INFO commandstats, when the
server is this benchmark's alone) to show where the rest goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import redis

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import read_batches
from valeur_monitor.store.base import Store
from valeur_monitor.store.memory import MemoryStore


def timed_run(path: Path, url: str | None) -> tuple[float, float, float]:
    """(wall s, this thread's CPU s, process CPU s) of the pipeline over `path`: the memory
    store (`url` None) or `run --store redis://` into a fresh key prefix (removed after)."""
    from valeur_monitor.store.cached import CachedStore
    from valeur_monitor.store.redis import RedisStore

    rules = load_rules(["rules"])
    prefix = f"bench-run-{time.time_ns()}:"
    inner: RedisStore | None = None
    store: Store = MemoryStore()
    if url is not None:
        # as `run` opens it (cli/run_cmd.py via open_store): the shipped window, states cached
        inner = RedisStore.from_url(url, prefix=prefix, ledger_cap=rules.settings.ledger_cap,
                                    ledger_max_age=rules.settings.ledger_max_age)
        store = CachedStore(inner, pipelined=True)
    began, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
    runner = EmbeddedRunner(rules, store)
    with path.open("rb") as fh:
        for batch in read_batches(fh, 2000):
            runner.feed(batch)
    runner.finish()
    out = (time.perf_counter() - began, time.thread_time() - thread,
           time.process_time() - process)
    if inner is not None:
        client, doomed = inner.client, []
        for key in client.scan_iter(match=f"{prefix}*", count=10_000):
            doomed.append(key)
        if doomed:
            client.unlink(*doomed)
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("VALEUR_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:16379/9"))
    parser.add_argument("--file", default="bench/results/run-events.jsonl")
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default="bench/results/redis_run.md")
    args, _ = parser.parse_known_args()
    part = Path(f"/tmp/valeur-redis-run-{os.getpid()}-{args.lines}.jsonl")
    with Path(args.file).open("rb") as src, part.open("wb") as dst:
        for i, line in enumerate(src):
            if i >= args.lines:
                break
            dst.write(line)
    server = redis.Redis.from_url(args.url)
    memory, stored, script = [], [], []
    for _ in range(args.runs):            # interleaved: machine noise hits both alike
        memory.append(timed_run(part, None))
        server.config_resetstat()
        stored.append(timed_run(part, args.url))
        script.append(server.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0) / 1e6)
    m, r = (statistics.median(x[0] for x in memory), statistics.median(x[0] for x in stored))
    mt, rt = (statistics.median(x[1] for x in memory), statistics.median(x[1] for x in stored))
    load = os.getloadavg()
    from valeur_monitor.store import cached
    build = "pure" if (cached.__file__ or "").endswith(".py") else "mypyc-compiled"
    table = (f"| first {args.lines:,} events, median of {args.runs} interleaved runs | seconds "
             "| events/s | ratio to memory store | run thread CPU s | ratio |\n"
             "|---|---:|---:|---:|---:|---:|\n"
             f"| memory store | {m:.2f} | {args.lines / m:,.0f} | 1.00 | {mt:.2f} | 1.00 |\n"
             f"| Redis store (`run --store redis://`) | {r:.2f} | {args.lines / r:,.0f} "
             f"| {m / r:.3f} | {rt:.2f} | {mt / rt:.3f} |\n\n"
             f"Redis run: process CPU {statistics.median(x[2] for x in stored):.2f} s (memory "
             f"run {statistics.median(x[2] for x in memory):.2f} s), commit script on the "
             f"server {statistics.median(script):.2f} s (medians); all runs memory "
             f"{', '.join(f'{x[0]:.2f}' for x in memory)} s, Redis "
             f"{', '.join(f'{x[0]:.2f}' for x in stored)} s. Load average at the end: "
             f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {build} build.\n")
    print(table)
    Path(args.out).write_text(table)
    part.unlink()


if __name__ == "__main__":
    main()
