"""What readers show, computed from stored data: pure functions, no I/O, no clock.

Every number is the score at one stated `as_of` (invariant 8): a stored score is decayed
forward to `as_of`, or, when `as_of` is before its last update, rebuilt from the ledger window
(entries after `as_of` taken out, older entries folded into a base that decays like them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import Promise
from valeur_monitor.metrics import DEFAULT_BAND_EDGES, band_of
from valeur_monitor.store.base import ScoreView

Edges = tuple[float, float, float]


def factor(elapsed_ms: int, half_life: int | None) -> float:
    """Decay over `elapsed_ms` (negative: growth back in time); 1 without a half-life."""
    if not half_life or elapsed_ms == 0:
        return 1.0
    return float(0.5 ** (elapsed_ms / half_life))


def value_at(total: float, at: int, entries: Sequence[tuple[int, float]], t: int,
             half_life: int | None) -> float:
    """A running sum stored as `total` at `at`, seen at `t`.

    `entries` are the (time, value) of the kept window that make it up; those after `t` are
    taken out. Forward in time this is exactly ``total * factor(t - at)``.
    """
    if t >= at or not entries:
        return total * factor(t - at, half_life)
    base = total - sum(v * factor(at - ti, half_life) for ti, v in entries)
    return base * factor(t - at, half_life) + sum(
        v * factor(t - ti, half_life) for ti, v in entries if ti <= t)


@dataclass(frozen=True)
class PromiseView:
    rule: str
    ref: str
    opened_at: int
    deadline: int
    paused: bool
    team: str
    channel: str


@dataclass(frozen=True)
class CustomerView:
    """One customer at `as_of`: score, previous score and change, band, breakdown, reasons."""

    customer: str
    as_of: int
    score: float
    previous: float
    change: float
    band: str
    dims: dict[str, float]
    created: float
    destroyed: float
    updated_at: int
    reasons: list[tuple[str, float]]
    promises: list[PromiseView] = field(default_factory=list)
    rules_version: str | None = None
    entries: int = 0


def promise_view(p: Promise) -> PromiseView:
    return PromiseView(p.rule, p.ref, p.opened_at, p.deadline, p.paused_at >= 0, p.team,
                       p.channel)


def customer_view(view: ScoreView, ledger: Sequence[LedgerEntry], promises: Sequence[Promise],
                  *, as_of: int, half_life: int | None, edges: Edges = DEFAULT_BAND_EDGES,
                  top: int = 3) -> CustomerView:
    """Assemble a customer's view at `as_of` (previous = without its latest update)."""
    seen = [e for e in ledger if e.time <= as_of]
    pairs = [(e.time, e.value) for e in ledger]
    score = value_at(view.total, view.at, pairs, as_of, half_life)
    dims = {d: value_at(v, view.at, [(e.time, e.value) for e in ledger if e.dimension == d],
                        as_of, half_life) for d, v in view.dims.items()}
    last = max((e.time for e in seen), default=None)
    moved = sum(e.value * factor(as_of - e.time, half_life) for e in seen if e.time == last)
    version = next((e.rules_version for e in reversed(seen) if e.rules_version), None)
    return CustomerView(
        customer=view.customer, as_of=as_of, score=score, previous=score - moved, change=moved,
        band=band_of(score, edges), dims=dims, created=view.created, destroyed=view.destroyed,
        updated_at=view.at, reasons=view.top_reasons(top),
        promises=[promise_view(p) for p in promises], rules_version=version,
        entries=len(ledger))


def decayed(view: ScoreView, as_of: int, half_life: int | None,
            ledger: Sequence[LedgerEntry] = ()) -> float:
    """The score of `view` at `as_of` (the ledger is needed only when as_of < view.at)."""
    return value_at(view.total, view.at, [(e.time, e.value) for e in ledger], as_of, half_life)


def series(view: ScoreView, ledger: Sequence[LedgerEntry], half_life: int | None
           ) -> list[tuple[int, float]]:
    """The score right after each update in the ledger window, oldest first."""
    pairs = [(e.time, e.value) for e in ledger]
    times = sorted({e.time for e in ledger})
    return [(t, value_at(view.total, view.at, pairs, t, half_life)) for t in times]


# -- ledger pages ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerQuery:
    """Filters and page of a ledger read: newest first, `before` is a seq cursor (exclusive)."""

    rules: frozenset[str] = frozenset()
    outcomes: frozenset[str] = frozenset()
    since: int | None = None          # inclusive, ms
    until: int | None = None          # inclusive, ms
    before: int | None = None
    limit: int = 50

    def keeps(self, e: LedgerEntry) -> bool:
        return ((not self.rules or e.rule in self.rules)
                and (not self.outcomes or e.outcome in self.outcomes)
                and (self.since is None or e.time >= self.since)
                and (self.until is None or e.time <= self.until)
                and (self.before is None or e.seq < self.before))


def ledger_page(entries: Iterable[LedgerEntry], query: LedgerQuery
                ) -> tuple[list[LedgerEntry], int | None]:
    """The page (newest first) and the cursor of the next page (None at the end)."""
    kept = sorted((e for e in entries if query.keeps(e)), key=lambda e: -e.seq)
    page = kept[:query.limit]
    more = len(kept) > query.limit
    return page, (page[-1].seq if more and page else None)
