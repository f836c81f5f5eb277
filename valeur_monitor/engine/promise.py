"""An open (or recently broken) promise of an `expect` rule: a native class when compiled."""

from __future__ import annotations

from valeur_monitor.engine.rowed import Rowed

# Why not a msgspec Struct (it was one): compiled by mypyc, the engine read a Struct's fields
# through the generic attribute path (a type look-up and a member descriptor per read: 11 % of
# a compiled run's samples, docs/benchmarks.md "Engine, seventh wave"); a class of this module
# is a native one there, its fields slots read directly and its ints unboxed. Interpreted, it
# is a class with slots, which CPython specialises like a Struct's fields. The encodings take
# its fields as a row (`row`): the same arrays as a Struct's, so the same stored bytes.

PromiseRow = tuple[str, str, int, str, int, int, int, int, int, int, int, bool, int, str, str,
                   str]

PROMISE_FIELDS = ("rule", "ref", "opened_at", "open_event", "budget", "used", "running_since",
          "deadline", "warn_at", "broken_at", "paused_at", "warned", "due", "tier", "team",
          "channel")
FIELDS = PROMISE_FIELDS


class Promise(Rowed):
    """One open (or recently broken) obligation of an `expect` rule, keyed by rule and ref."""

    __slots__ = ("broken_at", "budget", "channel", "deadline", "due", "open_event", "opened_at",
                 "paused_at", "ref", "rule", "running_since", "team", "tier", "used", "warn_at",
                 "warned")
    FIELDS = PROMISE_FIELDS

    def __init__(self, rule: str, ref: str, opened_at: int, open_event: str, budget: int,
                 used: int = 0, running_since: int = 0, deadline: int = 0, warn_at: int = -1,
                 broken_at: int = -1, paused_at: int = -1, warned: bool = False, due: int = -1,
                 tier: str = "", team: str = "", channel: str = "") -> None:
        self.rule = rule
        self.ref = ref
        self.opened_at = opened_at        # event time of the opening event (ms)
        self.open_event = open_event      # id of the opening event
        self.budget = budget              # SLA clock budget (ms of calendar time, or wall ms)
        self.used = used                  # SLA clock consumed before `running_since`
        self.running_since = running_since  # when the SLA clock last (re)started
        self.deadline = deadline          # instant the promise breaks (recomputed on resume)
        self.warn_at = warn_at            # instant of the warning, -1 = none or already sent
        self.broken_at = broken_at        # set once broken; then it waits for a late keep
        self.paused_at = paused_at        # set while the clock is stopped (waiting on customer)
        self.warned = warned
        self.due = due                    # next instant it needs attention (-1: none), refresh
        self.tier = tier
        self.team = team
        self.channel = channel

    def row(self) -> PromiseRow:
        """The fields in declaration order (the compact encoding's array; `Promise(*row)`)."""
        return (self.rule, self.ref, self.opened_at, self.open_event, self.budget, self.used,
                self.running_since, self.deadline, self.warn_at, self.broken_at, self.paused_at,
                self.warned, self.due, self.tier, self.team, self.channel)

    def is_open(self) -> bool:
        """Still owed: not broken (a paused promise is open, its SLA clock stopped). The one
        definition used by the engine's readers: metrics, the API and the stores."""
        return self.broken_at < 0

    def is_overdue(self, until: int) -> bool:
        """Open, its clock running, and its deadline reached by `until`."""
        return self.broken_at < 0 and self.paused_at < 0 and self.deadline <= until

    def refresh(self, late_window: int, max_pause: int) -> None:
        """Recompute `due` after any change (kept as a field so timers are a cheap scan)."""
        if self.broken_at >= 0:
            self.due = self.broken_at + late_window
        elif self.paused_at >= 0:
            self.due = self.paused_at + max_pause  # waiting on the customer too long: dropped
        else:
            self.due = self.warn_at if self.warn_at >= 0 else self.deadline
