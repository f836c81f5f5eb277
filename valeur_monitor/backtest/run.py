"""One pass over the events for two rule sets: shared rules run once, changed rules apart.

A rule's entries depend only on its own promises and repeat windows (keyed by rule id), never on
other rules, so the baseline's entries are (shared rules' entries) + (baseline-only rules'
entries), and likewise for the candidate. Events are decoded once; the rules that differ only see
the event types they react to. Scores add up per side (decayed to the end of the run, the same
linear sum as one engine); alerts, which watch the whole score, are replayed per side only for
customers whose entries differ (or for everyone when the alert definitions differ).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from valeur_monitor.codec import decode
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.ledger import LedgerEntry, Notice
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.engine.scoring import apply_value, check_score_alerts, count_outcome, score_at
from valeur_monitor.engine.state import CustomerState, Score
from valeur_monitor.errors import EventError
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore


@dataclass(frozen=True)
class Plan:
    """Which rules the two sets share (identical definitions) and which differ."""

    shared: frozenset[str]
    changed: frozenset[str]           # same id, different definition
    added: frozenset[str]             # only in the candidate
    removed: frozenset[str]           # only in the baseline
    same_settings: bool
    same_alerts: bool

    @classmethod
    def of(cls, baseline: RuleSet, candidate: RuleSet) -> Plan:
        b, c = baseline.fingerprints, candidate.fingerprints
        same_settings = baseline.settings == candidate.settings
        # Different settings (lateness, horizon, decay) change every rule's results: share none.
        shared = frozenset(r for r in b if c.get(r) == b[r]) if same_settings else frozenset()
        return cls(shared=shared,
                   changed=frozenset(r for r in b if r in c and r not in shared),
                   added=frozenset(r for r in c if r not in b),
                   removed=frozenset(r for r in b if r not in c),
                   same_settings=same_settings,
                   same_alerts=baseline.alerts == candidate.alerts)


@dataclass
class Side:
    """One rule set's view of the pass: final score per customer and alerts fired."""

    rules: RuleSet
    scores: dict[str, float] = field(default_factory=dict)
    alerts: list[Notice] = field(default_factory=list)


@dataclass
class Pass:
    """Everything a backtest report needs, straight from the engines' stores."""

    plan: Plan
    baseline: Side
    candidate: Side
    shared: MemoryStore
    only_baseline: MemoryStore
    only_candidate: MemoryStore
    events: int = 0
    dead_letters: int = 0
    until: int = 0

    def entries(self, side: str, customer: str) -> list[LedgerEntry]:
        """A customer's entries for one side, in time order."""
        own = self.only_baseline if side == "baseline" else self.only_candidate
        merged = self.shared.ledger(customer) + own.ledger(customer)
        return sorted(merged, key=lambda e: e.time)

    def differing(self, side: str, customer: str) -> list[LedgerEntry]:
        """Entries of the rules that differ (what explains a customer's change)."""
        own = self.only_baseline if side == "baseline" else self.only_candidate
        return own.ledger(customer)


class Backtest:
    """Feed raw lines once; `finish` drains both sides and returns the `Pass`."""

    def __init__(self, baseline: RuleSet, candidate: RuleSet) -> None:
        self.plan = Plan.of(baseline, candidate)
        self.baseline, self.candidate = baseline, candidate
        self._stores = (MemoryStore(), MemoryStore(), MemoryStore())
        only_b = set(baseline.fingerprints) - self.plan.shared
        only_c = set(candidate.fingerprints) - self.plan.shared
        shared_rules = baseline.subset(set(self.plan.shared))
        self._engines = (
            Processor(_versioned(shared_rules, "shared"), self._stores[0]),
            Processor(baseline.subset(only_b), self._stores[1]),
            Processor(candidate.subset(only_c), self._stores[2]),
        )
        # The changed rules only see the event types they react to.
        self._types = tuple(frozenset(p.rules.by_type) for p in self._engines)
        self.events = 0
        self.dead_letters = 0

    def feed(self, lines: Sequence[bytes | str]) -> None:
        events: list[Event] = []
        for raw in lines:
            try:
                events.append(decode(raw))
            except EventError:
                self.dead_letters += 1
        self.events += len(events)
        for engine, types in zip(self._engines, self._types, strict=True):
            if types:
                engine.process_events([e for e in events if e.type in types])

    def finish(self, until: int | None = None) -> Pass:
        end = until if until is not None else max(p.max_event_time for p in self._engines)
        for engine in self._engines:
            engine.advance_to(end)
        shared, only_b, only_c = self._stores
        result = Pass(self.plan, Side(self.baseline), Side(self.candidate), shared, only_b,
                      only_c, events=self.events, dead_letters=self.dead_letters, until=end)
        customers = set(shared.customers()) | set(only_b.customers()) | set(only_c.customers())
        for side, own in ((result.baseline, only_b), (result.candidate, only_c)):
            hl = side.rules.settings.half_life
            for customer in customers:
                total = 0.0
                for store in (shared, own):
                    view = store.score(customer)
                    if view is not None:
                        total += score_at_view(view.total, view.at, end, hl)
                side.scores[customer] = total
        replay = customers if not self.plan.same_alerts else (
            {e.customer for s in (only_b, only_c) for c in s.customers() for e in s.ledger(c)})
        for side, name in ((result.baseline, "baseline"), (result.candidate, "candidate")):
            for customer in sorted(replay):
                side.alerts.extend(replay_alerts(side.rules, customer,
                                                 result.entries(name, customer)))
        return result


def score_at_view(total: float, at: int, now: int, half_life: int | None) -> float:
    """A stored total decayed from its last update to `now`."""
    return score_at(Score(total=total, at=at), now, half_life)


def replay_alerts(rules: RuleSet, customer: str, entries: Iterable[LedgerEntry]) -> list[Notice]:
    """The alerts one customer's entries raise under `rules` (one outcome = entries sharing
    rule, outcome, time and events; outcomes without value are not in a ledger)."""
    if not rules.alerts:
        return []
    state = CustomerState(customer)
    score_alerts = tuple(a for a in rules.alerts if a.score_below is not None)
    count_alerts = tuple(a for a in rules.alerts if a.outcome is not None)
    notices: list[Notice] = []
    previous: tuple[object, ...] | None = None
    group: list[LedgerEntry] = []

    def close() -> None:
        if not group:
            return
        first = group[0]
        check_score_alerts(state, score_alerts, first.time, notices)
        if count_alerts:
            count_outcome(state, count_alerts, first.rule, first.outcome, first.time, notices)
        group.clear()

    for entry in entries:
        key = (entry.rule, entry.outcome, entry.time, entry.events)
        if key != previous:
            close()
            previous = key
        apply_value(state.score, entry.dimension, entry.value, entry.time,
                    rules.settings.half_life)
        group.append(entry)
    close()
    return notices


def _versioned(rules: RuleSet, tag: str) -> RuleSet:
    return replace(rules, version=f"{rules.version}/{tag}" if rules.version else tag)
