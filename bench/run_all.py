"""Run every benchmark in turn (servers started by scripts/services); results in bench/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("bench.bench_run", "bench.bench_rules", "bench.bench_redis_store",
              "bench.bench_memory", "bench.bench_worker", "bench.bench_backtest",
              "bench.bench_ingest", "bench.bench_api")


def main() -> int:
    subprocess.run([str(ROOT / "scripts" / "services"), "start", "all"], check=True)
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        done = subprocess.run([sys.executable, "-m", module, *sys.argv[1:]], cwd=ROOT)
        if done.returncode:
            return done.returncode
    print("results: bench/results/*.md; copy the tables into docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
