"""The worker's runtime without Kafka: fixed-size batches through `WorkerRuntime` over Redis.

    python -m bench.bench_worker_batches [--batch 140] [--events 30000] [--ack-ms 2] [--runs 3]

What a batch size costs per event, apart from the machine's load and Kafka's timing: the
benchmark week's first `--events` events, keyed and partitioned as `produce` sends them, are
handed to one `WorkerRuntime` (the shipped rules, event clock, the real `RedisStore` on a
claimed DB of the shared Redis) in batches of `--batch` records, back to back, as a consumer
that always has the next batch ready would; the publisher acknowledges each batch's outputs
after `--ack-ms` (Kafka's round trip). Reported per event: the process's CPU time (every
thread: processing, encoding, the commit thread; not Redis's), store commits (script calls)
and customer states written, and the wall rate. At 5k events/s the worker saw batches of
60-200 records: a customer is encoded once per commit it is in, so the states written per
event say what a commit costs both the worker and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench.bench_worker import claimed_redis_db, flush, simulated_lines
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.kafka.produce import placed
from valeur_monitor.store.redis import RedisStore
from valeur_monitor.streaming.clock import StreamClock
from valeur_monitor.streaming.outputs import Message, OutputTopics, Record
from valeur_monitor.streaming.pipeline import StreamPipeline
from valeur_monitor.streaming.runtime import WorkerRuntime

PARTITIONS = 4


class AckAfter:
    """A publisher whose broker acknowledges every batch after `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def publish(self, messages: Sequence[Message]) -> None:
        await asyncio.sleep(self.seconds)


def rig(url: str, ack: float) -> tuple[WorkerRuntime, StreamPipeline, RedisStore]:
    """A worker runtime over the Redis store at `url` (shipped rules, event clock, every
    partition), its outputs acknowledged after `ack` seconds."""
    rules = load_rules([Path(__file__).resolve().parents[1] / "rules"])
    store = RedisStore.from_url(url)
    clock = StreamClock("event", rules.settings.lateness)
    pipeline = StreamPipeline(rules, store, events_topic="events",
                              outputs=OutputTopics("scores", "alerts", "dead"), clock=clock)
    pipeline.assign(set(range(PARTITIONS)), PARTITIONS)
    return WorkerRuntime(pipeline, AckAfter(ack)), pipeline, store


async def run(url: str, records: list[Record], batch: int, ack: float) -> dict[str, float]:
    runtime, pipeline, store = rig(url, ack)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, len(records), batch):
        await runtime.consume(records[i:i + batch])
    await runtime.flushed()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    scope = pipeline.scope
    n = len(records)
    store.close()
    return {"cpu_us": 1e6 * cpu / n, "rate": n / wall, "commits": scope.calls / n,
            "states": scope.states / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="*", default=[140])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--ack-ms", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    records = [Record(*where) for where in placed(simulated_lines(1500, 7)[:args.events],
                                                     PARTITIONS)]
    with claimed_redis_db() as url:
        for size in args.batch:
            found = []
            for _ in range(args.runs):
                flush(url)
                found.append(asyncio.run(run(url, records, size, args.ack_ms / 1000)))
            med = {k: statistics.median(r[k] for r in found) for k in found[0]}
            each = ", ".join(f"{r['cpu_us']:.1f}" for r in found)
            print(f"batches of {size}: CPU {med['cpu_us']:.1f} µs/event ({each}), "
                  f"{med['rate']:,.0f} events/s, store commits {med['commits']:.4f} and "
                  f"states written {med['states']:.3f} per event", flush=True)


if __name__ == "__main__":
    main()
