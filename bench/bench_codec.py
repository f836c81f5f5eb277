"""Decode throughput of valid records (the codec's fast path) against a bare orjson.loads.

Runs against whatever `valeur_monitor` is on the path, so the same script measures two code
trees (e.g. ``PYTHONPATH=/path/to/old/tree python -m bench.bench_codec``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson

from valeur_monitor.codec import decode
from valeur_monitor.simulate import SimulationConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=3, customers=args.customers,
                                                                days=args.days))]
    bare, codec = [], []
    for _ in range(args.runs):            # interleaved: machine noise hits both alike
        began = time.perf_counter()
        for line in lines:
            orjson.loads(line)
        bare.append(time.perf_counter() - began)
        began = time.perf_counter()
        for line in lines:
            decode(line)
        codec.append(time.perf_counter() - began)
    b, c = statistics.median(bare), statistics.median(codec)
    print(f"{len(lines):,} valid records, median of {args.runs}: orjson.loads {b:.3f} s, "
          f"codec.decode {c:.3f} s ({len(lines) / c:,.0f}/s), codec/bare time ratio {c / b:.2f}")


if __name__ == "__main__":
    main()
