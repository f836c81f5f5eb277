"""`run --store redis://` against the memory-store run on the same file (issue 12 aim: >= 0.5).

`python -m bench.bench_redis_run --url redis://127.0.0.1:16379/9 --lines 50000 --runs 5`:
the first `--lines` events of bench/results/run-events.jsonl (made by bench.bench_run), the
embedded pipeline with the memory store and with the Redis store as `run` opens it (the
shipped window, states cached, commits pipelined: bench.bench_run.redis_run), interleaved,
medians of wall time. Also the CPU time of this process and the server's script time
(INFOcommandstats, when the server is this benchmark's alone) to show where the rest goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import redis

from bench.bench_run import embedded_run, redis_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("VALEUR_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:16379/9"))
    parser.add_argument("--file", default="bench/results/run-events.jsonl")
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args, _ = parser.parse_known_args()
    part = Path(f"/tmp/valeur-redis-run-{args.lines}.jsonl")
    with Path(args.file).open("rb") as src, part.open("wb") as dst:
        for i, line in enumerate(src):
            if i >= args.lines:
                break
            dst.write(line)
    server = redis.Redis.from_url(args.url)
    memory, stored, cpu, script = [], [], [], []
    for _ in range(args.runs):            # interleaved: machine noise hits both alike
        memory.append(embedded_run(part))
        server.config_resetstat()
        began = time.process_time()
        stored.append(redis_run(part, args.url))
        cpu.append(time.process_time() - began)
        script.append(server.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0) / 1e6)
    m, r = statistics.median(memory), statistics.median(stored)
    load = os.getloadavg()
    table = (f"| first {args.lines:,} events, median of {args.runs} interleaved runs | seconds "
             "| events/s | ratio to memory store |\n|---|---:|---:|---:|\n"
             f"| memory store | {m:.2f} | {args.lines / m:,.0f} | 1.00 |\n"
             f"| Redis store (`run --store redis://`) | {r:.2f} | {args.lines / r:,.0f} "
             f"| {m / r:.3f} |\n\n"
             f"Redis run: client CPU {statistics.median(cpu):.2f} s, commit script on the "
             f"server {statistics.median(script):.2f} s (medians); all runs memory "
             f"{', '.join(f'{x:.2f}' for x in memory)} s, Redis "
             f"{', '.join(f'{x:.2f}' for x in stored)} s. Load average at the end: "
             f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}.\n")
    print(table)
    Path("bench/results/redis_run.md").write_text(table)
    part.unlink()


if __name__ == "__main__":
    main()
