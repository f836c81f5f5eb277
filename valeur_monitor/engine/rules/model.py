"""Compiled rules: immutable, ready for the engine's hot path."""

from __future__ import annotations

from dataclasses import dataclass, field

from valeur_monitor.engine.calendar import Calendar
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.expressions import Condition
from valeur_monitor.errors import RuleIssue


@dataclass(frozen=True)
class Matcher:
    """Event types plus an optional CEL condition."""

    types: frozenset[str]
    condition: Condition | None = None

    def matches(self, event: Event) -> bool:
        return event.type in self.types and (self.condition is None or self.condition.test(event))


@dataclass(frozen=True)
class Scale:
    """Values that grow with a duration: `per` of it is one unit, counted up to `max`."""

    per: int                        # ms of the measured duration worth one unit
    clock: str | None = None        # "wall" | "sla": the wait past a promise's deadline
    field: str | None = None        # a data field of the event, in seconds (e.g. wait_s)
    max: int | None = None          # ms: longer durations count as this long


@dataclass(frozen=True)
class Effect:
    """Signed values per dimension (costs already negated) and an explanation template."""

    values: tuple[tuple[str, float, float], ...]  # (dimension, amount as written, signed value)
    explain: str | None = None
    scale: Scale | None = None      # None: the values are fixed
    recover: float = 0.0            # `late` only: share of the rule's broken values given back


@dataclass(frozen=True)
class Deadline:
    """How long a promise has: a duration (optionally in business hours) or a field of the event."""

    within: int | None = None                 # ms
    tiers: tuple[tuple[str, int], ...] = ()   # tier -> ms, tier read from data.tier
    at_field: str | None = None               # e.g. "promised_at" (a data field)
    offset: int = 0                           # ms added to the field's instant (may be negative)
    calendar: Calendar | None = None

    def budget_for(self, tier: str) -> int | None:
        for name, ms in self.tiers:
            if name == tier:
                return ms
        return self.within


@dataclass(frozen=True)
class OnRule:
    id: str
    title: str
    matcher: Matcher
    effect: Effect


@dataclass(frozen=True)
class ExpectRule:
    id: str
    title: str
    open: tuple[Matcher, ...]
    keep: tuple[Matcher, ...]
    cancel: tuple[Matcher, ...]
    pause: tuple[Matcher, ...]
    resume: tuple[Matcher, ...]
    deadline: Deadline
    warn: int | None          # ms of SLA clock before the deadline
    reopen: str               # "ignore" (keep the running clock) | "restart"
    late_window: int
    max_pause: int            # a promise paused longer than this is dropped (no outcome)
    kept: Effect | None
    broken: Effect | None
    late: Effect | None

    def types(self) -> frozenset[str]:
        out: set[str] = set()
        for group in (self.open, self.keep, self.cancel, self.pause, self.resume):
            for matcher in group:
                out |= matcher.types
        return frozenset(out)


@dataclass(frozen=True)
class RepeatRule:
    id: str
    title: str
    matcher: Matcher
    key: Condition
    within: int
    from_count: int
    effect: Effect
    merge: int = 0            # same ref within this long = the same contact, counted once


@dataclass(frozen=True)
class AlertRule:
    """A per-customer alert: score below a threshold, or N outcomes within a window."""

    id: str
    title: str
    score_below: float | None = None
    outcome: str | None = None
    rules: frozenset[str] = frozenset()       # empty = any rule
    count: int = 0
    within: int = 0


@dataclass(frozen=True)
class Settings:
    lateness: int = 5 * 60_000                # allowed disorder (ms)
    late_horizon: int = 7 * 86_400_000        # older than this behind stream time: refused
    half_life: int | None = None              # score decay; None = no decay
    ledger_cap: int = 20                      # entries kept per customer by stores that cap
    ledger_max_age: int | None = 30 * 86_400_000  # ...and no older than this behind stream time


@dataclass(frozen=True)
class Roles:
    """For one event type: the matchers of an `expect` rule that can react to it, per role."""

    keep: tuple[Matcher, ...]
    cancel: tuple[Matcher, ...]
    pause: tuple[Matcher, ...]
    resume: tuple[Matcher, ...]
    open: tuple[Matcher, ...]

    @classmethod
    def of(cls, rule: ExpectRule, event_type: str) -> Roles:
        def pick(group: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
            return tuple(m for m in group if event_type in m.types)

        return cls(pick(rule.keep), pick(rule.cancel), pick(rule.pause), pick(rule.resume),
                   pick(rule.open))


RulesForType = tuple[tuple[OnRule, ...], tuple[RepeatRule, ...],
                     tuple[tuple[ExpectRule, Roles], ...]]


@dataclass(frozen=True)
class RuleSet:
    settings: Settings
    on_rules: tuple[OnRule, ...]
    expect_rules: tuple[ExpectRule, ...]
    repeat_rules: tuple[RepeatRule, ...]
    alerts: tuple[AlertRule, ...]
    calendars: dict[str, Calendar] = field(default_factory=dict)
    sources: tuple[str, ...] = ()             # files it was loaded from
    # type -> rules interested in it, built once so the hot path is a dict lookup
    by_type: dict[str, RulesForType] = field(default_factory=dict)
    version: str = ""                         # content hash of the files, `+label` if labelled
    warnings: tuple[RuleIssue, ...] = ()      # problems that do not stop loading (rules check)
    fingerprints: dict[str, str] = field(default_factory=dict)  # rule id -> hash of what it does

    def rule_ids(self) -> list[str]:
        rules: tuple[OnRule | ExpectRule | RepeatRule, ...] = (
            *self.on_rules, *self.expect_rules, *self.repeat_rules)
        return [r.id for r in rules]

    def subset(self, ids: set[str], *, alerts: bool = False) -> RuleSet:
        """The same settings and calendars with only the rules named (and no alerts unless
        asked): a backtest runs the rules two sets share once, and the others apart."""
        on = tuple(r for r in self.on_rules if r.id in ids)
        expect = tuple(r for r in self.expect_rules if r.id in ids)
        repeat = tuple(r for r in self.repeat_rules if r.id in ids)
        return RuleSet(settings=self.settings, on_rules=on, expect_rules=expect,
                       repeat_rules=repeat, alerts=self.alerts if alerts else (),
                       calendars=self.calendars, sources=self.sources,
                       by_type=RuleSet.index(on, repeat, expect), version=self.version,
                       fingerprints={k: v for k, v in self.fingerprints.items() if k in ids})

    def max_late_window(self) -> int:
        return max((r.late_window for r in self.expect_rules), default=0)

    def alert_window(self) -> int:
        return max((a.within for a in self.alerts), default=0)

    @staticmethod
    def index(on: tuple[OnRule, ...], repeat: tuple[RepeatRule, ...],
              expect: tuple[ExpectRule, ...]) -> dict[str, RulesForType]:
        types: set[str] = set()
        for r in on:
            types |= r.matcher.types
        for rr in repeat:
            types |= rr.matcher.types
        for er in expect:
            types |= er.types()
        return {
            t: (tuple(r for r in on if t in r.matcher.types),
                tuple(r for r in repeat if t in r.matcher.types),
                tuple((r, Roles.of(r, t)) for r in expect if t in r.types()))
            for t in sorted(types)
        }
