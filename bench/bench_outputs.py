"""What a worker publishes per batch: the messages' CPU cost per event and their digest.

    python -m bench.bench_outputs [--events 60000] [--batch 5000] [--rounds 5]

The benchmark week's simulated events (the worker benchmark's: 1,500 customers, 7 days), plus
a few malformed records for dead letters, go through one `Processor` over the memory store in
batches of `--batch`; each batch's `streaming.outputs.build_messages` (ledger entries, score
updates, alerts, dead letters) is timed right after the batch (process CPU, min of `--rounds`
calls) and every message it builds goes into a SHA-256 digest (topic, key, value, headers,
partition). The topics are a contract with their consumers: the digest must not change when
the encoding does (run it on two trees and compare). Alternated with each call, the rows'
reference encoding (`orjson.dumps` of `LedgerEntry.to_json`, `score_row`, `Notice.to_json`:
what the messages held before they were written straight to bytes) is timed too, in the same
process, and its values compared with the messages' byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import orjson

from bench.bench_worker import simulated_lines
from bench.bench_worker_batches import PARTITIONS
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.kafka.produce import placed
from valeur_monitor.service import BatchResult, Processor
from valeur_monitor.sinks.files import score_row
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.outputs import OutputTopics, Record, build_messages


def reference(result: BatchResult) -> list[bytes]:
    """The values of the ledger, score and alert messages as the rows' JSON."""
    out = [orjson.dumps(e.to_json()) for e in result.entries]
    for customer in dict.fromkeys(e.customer for e in result.entries):
        state = result.changed.get(customer)
        if state is not None:
            out.append(orjson.dumps(score_row(ScoreView.of(state),
                                              rules_version=result.rules_version)))
    out += [orjson.dumps(n.to_json()) for n in result.notices if n.kind == "alert"]
    return out


BAD = [b"not json", b'{"id": "x", "type": "nope"}', b"", b'{"customer": "\\u00e9\\u2028"}']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = simulated_lines(1500, 7)[:args.events]
    for i, bad in enumerate(BAD):      # dead letters, with their source records' headers
        lines.insert(1 + i * (len(lines) // len(BAD)), bad)
    records = [Record(*where) for where in placed(lines, PARTITIONS)]
    records = [r._replace(headers=(("h", b"v"),)) if r.value in BAD else r for r in records]
    rules = load_rules([Path(__file__).resolve().parents[1] / "rules"])
    processor = Processor(rules, MemoryStore(), clock=None)
    topics = OutputTopics("scores", "alerts", "dead", ledger="ledger")
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    cpu = ref_cpu = 0.0
    for i in range(0, len(records), args.batch):
        batch = records[i:i + args.batch]
        result = processor.process([r.value or b"" for r in batch])
        best = ref_best = float("inf")
        for _ in range(args.rounds):
            start = time.process_time()
            messages = build_messages(result, topics, source_topic="events", records=batch)
            best = min(best, time.process_time() - start)
            start = time.process_time()
            values = reference(result)
            ref_best = min(ref_best, time.process_time() - start)
        cpu += best
        ref_cpu += ref_best
        if values != [m.value for m in messages if m.topic != "dead"]:
            raise SystemExit(f"batch {i // args.batch}: the messages differ from the rows' JSON")
        for m in messages:
            counts[m.topic] = counts.get(m.topic, 0) + 1
            digest.update(repr((m.topic, m.key, m.value, m.headers, m.partition)).encode())
    n = len(records)
    print(f"{n} records in batches of {args.batch}: build_messages {1e6 * cpu / n:.2f} µs/event, "
          f"the rows' JSON {1e6 * ref_cpu / n:.2f} (CPU, min of {args.rounds} per batch, "
          f"alternated; same values); messages {counts}; "
          f"digest {digest.hexdigest()}", flush=True)


if __name__ == "__main__":
    main()
