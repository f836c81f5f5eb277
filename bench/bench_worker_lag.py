"""How long the worker's event loop waits for the GIL while batches are processed.

    python -m bench.bench_worker_lag [--batch 70 300] [--events 12000] [--runs 2]

The runtime of `bench_worker_batches` (real Redis store, outputs acknowledged after 2 ms,
batches back to back, GIL switch interval 1 ms as in the worker) with a task beside it that
sleeps 0.5 ms and records how late it wakes: the time the loop could not run because another
thread held the GIL (the loop publishes, acks and hands fetches over in the worker). Compiled
code never gives the GIL up by itself; run it with the compiled build against the pure one:

    PYTHONSAFEPATH=1 PYTHONPATH=build/compiled:. .venv-compiled/bin/python -m bench.bench_worker_lag

(`python -m` puts the current directory first on the path: without these two variables the
compiled venv imports the pure sources of the checkout). The machine's load adds to the lag:
compare trees interleaved, in the same minutes.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.bench_worker import claimed_redis_db, flush, simulated_lines
from bench.bench_worker_batches import PARTITIONS, rig
from valeur_monitor.kafka.produce import placed
from valeur_monitor.streaming.app import SWITCH_INTERVAL
from valeur_monitor.streaming.outputs import Record


async def run(url: str, records: list[Record], batch: int) -> None:
    runtime, _, store = rig(url, 0.002)
    sys.setswitchinterval(SWITCH_INTERVAL)   # the worker's
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(0.0005)
            lags.append(time.perf_counter() - t - 0.0005)

    tick = asyncio.create_task(ticker())
    for i in range(0, len(records), batch):
        await runtime.consume(records[i:i + batch])
    await runtime.flushed()
    done = True
    await tick
    store.close()
    lags.sort()
    n = len(lags)
    print(f"batch {batch}: loop lag p50 {1e3 * lags[n // 2]:.2f} p90 {1e3 * lags[int(n * .9)]:.2f} "
          f"p99 {1e3 * lags[int(n * .99)]:.2f} max {1e3 * lags[-1]:.2f} ms ({n} ticks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="*", default=[70, 300])
    parser.add_argument("--events", type=int, default=12_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    lines = simulated_lines(1500, 7)[:args.events]
    records = [Record(*where) for where in placed(lines, PARTITIONS)]
    with claimed_redis_db() as url:
        for _ in range(args.runs):
            for size in args.batch:
                flush(url)
                asyncio.run(run(url, records, size))


if __name__ == "__main__":
    main()
