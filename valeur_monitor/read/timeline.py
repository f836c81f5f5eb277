"""A customer's story for the timeline page: score points, promise bars, dimension totals.

Pure functions over what the read side returns. Promise bars come from two places: open
promises (from the state: opened at, deadline) and closed ones (from the ledger's kept, broken
and late entries). A closed promise's opening is not on its entry, so its bar starts at the
first entry of the window sharing its ref (the request it belongs to), else at the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.read.views import PromiseView, factor

CLOSED = ("kept", "broken", "late")


@dataclass(frozen=True)
class Bar:
    rule: str
    ref: str
    start: int
    end: int
    outcome: str        # open | paused | kept | broken | late


def promise_bars(entries: Sequence[LedgerEntry], promises: Sequence[PromiseView]) -> list[Bar]:
    first: dict[str, int] = {}
    for e in entries:
        if e.ref:
            first[e.ref] = min(first.get(e.ref, e.time), e.time)
    bars: dict[tuple[str, str, str, int], Bar] = {}
    for e in entries:
        if e.outcome in CLOSED:
            key = (e.rule, e.ref, e.outcome, e.time)
            bars.setdefault(key, Bar(e.rule, e.ref, min(first.get(e.ref, e.time), e.time),
                                     e.time, e.outcome))
    out = sorted(bars.values(), key=lambda b: (b.start, b.rule, b.ref))
    out += [Bar(p.rule, p.ref, p.opened_at, p.deadline, "paused" if p.paused else "open")
            for p in promises]
    return out


def score_points(series: Sequence[tuple[int, float]], as_of: int, score_now: float,
                 half_life: int | None, samples: int = 4) -> list[tuple[int, float]]:
    """The score after each update, with the decay between updates drawn as extra points."""
    points: list[tuple[int, float]] = []
    for i, (t, v) in enumerate(series):
        points.append((t, v))
        nxt = series[i + 1][0] if i + 1 < len(series) else as_of
        if half_life and nxt > t:
            for k in range(1, samples + 1):
                at = t + (nxt - t) * k // samples
                points.append((at, v * factor(at - t, half_life)))
    if not points or points[-1][0] < as_of:
        points.append((as_of, score_now))
    return points
