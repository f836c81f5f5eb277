"""Where a record's produce -> committed latency accrues, batch by batch (benchmarks only).

Off unless ``VALEUR_STAGES`` is set (``bench_worker`` sets it): then every batch notes when its
oldest record was produced (the Kafka record's timestamp: the producer's clock, the same
machine), when its fetch returned, when it was handed to the runtime, when processing began and
ended, when its outputs were acknowledged, when its Redis commit completed and when its offsets
were acked. `/readyz` reports, per stage, the age of each batch's oldest record there
(p50/p90/p99 over the last batches), so the latency's parts are read off one run.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Mapping

ENV = "VALEUR_STAGES"
# A batch's row: the oldest record's produce time, then the wall clock at each stage
STAGES = ("produced", "fetched", "handed", "began", "processed", "published", "committed",
          "acked")
PRODUCED, FETCHED, HANDED, BEGAN, PROCESSED, PUBLISHED, COMMITTED, ACKED = range(len(STAGES))


class Stages:
    """The stage times of the last `keep` batches."""

    def __init__(self, keep: int = 200_000) -> None:
        self.rows: deque[list[float]] = deque(maxlen=keep)
        self.last: list[float] | None = None    # the batch being handed to the runtime

    def open(self, produced_ms: int, fetched: float) -> list[float]:
        """A new batch: its oldest record's timestamp (ms) and when its fetch returned."""
        row = [0.0] * len(STAGES)
        row[PRODUCED] = produced_ms / 1000.0
        row[FETCHED] = fetched
        row[HANDED] = time.time()
        self.rows.append(row)
        self.last = row
        return row

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: the ages (ms) of each batch's oldest record when it got there."""
        rows = [r for r in self.rows if r[ACKED]]
        out: dict[str, dict[str, float]] = {}
        for stage in range(FETCHED, len(STAGES)):
            ages = sorted(1000.0 * (r[stage] - r[PRODUCED]) for r in rows if r[stage])
            if ages:
                out[STAGES[stage]] = {f"p{q}": round(ages[min(len(ages) - 1,
                                                             len(ages) * q // 100)], 2)
                                      for q in (50, 90, 99)}
        out["batches"] = {"n": float(len(rows))}
        return out


def mark(row: list[float] | None, stage: int) -> None:
    """Note the wall clock of `stage` on a traced batch (nothing when not traced)."""
    if row is not None:
        row[stage] = time.time()


def stages_from_env(env: Mapping[str, str] = os.environ) -> Stages | None:
    return Stages() if env.get(ENV, "").strip() not in ("", "0") else None
