"""Fault injection for the chaos tests: kill -9 this worker at a chosen point of a batch.

Off unless ``VALEUR_FAULT`` is set (never in production settings files): ``POINT:N`` kills the
process with SIGKILL when the N-th batch reaches POINT, e.g. ``after-commit:3`` dies right after
the third batch's Redis commit, before its offsets are acked: the window the exactly-once
argument must cover (the redelivered records are duplicates and must change nothing).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from valeur_monitor.errors import ConfigError

POINTS = ("after-process", "after-publish", "after-commit")
ENV = "VALEUR_FAULT"


@dataclass
class Fault:
    point: str
    batch: int
    seen: int = 0

    def reached(self, point: str) -> None:
        """Batch cycle reached `point` (counted per point; dies on the chosen one)."""
        if point != self.point:
            return
        self.seen += 1
        if self.seen == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def fault_from_env(env: Mapping[str, str] = os.environ) -> Fault | None:
    value = env.get(ENV, "").strip()
    if not value:
        return None
    point, _, count = value.partition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise ConfigError(f"{ENV}={value!r}: expected POINT:N with POINT one of "
                          f"{', '.join(POINTS)} and N >= 1")
    return Fault(point, int(count))
