"""Expect rules per event type, prepared once: rules that declare the same obligation share its
condition tests and its deadline arithmetic for each event; each rule still keeps and books its
own promise exactly as before (same slots, same order, same outcomes)."""

from __future__ import annotations

from valeur_monitor.engine import promises as P
from valeur_monitor.engine.event import Event, parse_time
from valeur_monitor.engine.promise import Promise
from valeur_monitor.engine.rules.model import Deadline, ExpectRule, Matcher, Roles

NONE = 0      # a role value: the rule does not react to this event type in this role
ALWAYS = 1    # ... reacts to every event of the type (a matcher without a condition)
# values >= 2: the role's matchers are the type's condition group `value - 2`, tested once per
# event whichever rule asks (rules declaring the same obligation have equal groups)

Opened = tuple[int, int] | None   # (budget, deadline) of a promise opened now; None: not opened


class Step:
    """One expect rule's part in an event of one type."""

    __slots__ = ("cancel", "deadline", "keep", "open", "pause", "prefix", "resume", "rule")

    def __init__(self, rule: ExpectRule, roles: tuple[int, int, int, int, int],
                 deadline: int) -> None:
        self.rule = rule
        self.prefix = f"{rule.id}\x1f"
        self.keep, self.cancel, self.pause, self.resume, self.open = roles
        self.deadline = deadline   # index of the rule's deadline among the equal ones


class TypePlan:
    """The expect steps of one event type, in rule order, and its distinct condition groups."""

    __slots__ = ("groups", "steps")

    def __init__(self, steps: tuple[Step, ...], groups: tuple[tuple[Matcher, ...], ...]) -> None:
        self.steps = steps
        self.groups = groups


def plan(expect: tuple[tuple[ExpectRule, Roles], ...], deadlines: list[Deadline]
         ) -> TypePlan:
    """The plan of one event type; `deadlines` collects the distinct deadlines of all types."""
    groups: list[tuple[Matcher, ...]] = []
    keys: list[tuple[tuple[frozenset[str], str], ...]] = []

    def role(group: tuple[Matcher, ...]) -> int:
        if not group:
            return NONE
        if any(m.condition is None for m in group):
            return ALWAYS
        key = tuple((m.types, m.condition.source if m.condition else "") for m in group)
        if key not in keys:
            keys.append(key)
            groups.append(group)
        return keys.index(key) + 2

    steps = []
    for rule, roles in expect:
        if rule.deadline not in deadlines:
            deadlines.append(rule.deadline)
        steps.append(Step(rule, (role(roles.keep), role(roles.cancel), role(roles.pause),
                                 role(roles.resume), role(roles.open)),
                          deadlines.index(rule.deadline)))
    return TypePlan(tuple(steps), tuple(groups))


def test(value: int, groups: tuple[tuple[Matcher, ...], ...], memo: list[bool | None],
         event: Event) -> bool:
    """Whether a role with this value accepts `event`; each condition group tested once."""
    if value < 2:
        return value == ALWAYS
    found = memo[value - 2]
    if found is None:
        found = memo[value - 2] = P.hit(groups[value - 2], event)
    return found


def opening(rule: ExpectRule, event: Event, tier: str) -> Opened:
    """Budget and deadline of a promise `rule` would open on `event` (the same for every rule
    with an equal deadline); None when no deadline can be computed or it already passed."""
    deadline = rule.deadline
    if deadline.at_field is not None:
        try:
            target = parse_time(event.data.get(deadline.at_field)) + deadline.offset
        except ValueError:
            return None
        budget = target - event.time
    else:
        within = deadline.budget_for(tier)
        if within is None:
            return None
        budget = within
    if budget <= 0:
        return None  # documented: a promise whose deadline is already past is not opened
    calendar = deadline.calendar  # P.sla_add, inlined: once per promise opened
    return budget, (calendar.add(event.time, budget) if calendar else event.time + budget)


def promise_of(rule: ExpectRule, event: Event, tier: str, budget: int, deadline: int
               ) -> Promise:
    """The promise `rule` opens on `event`, from a shared opening (its own warning)."""
    at = event.time
    warn_at, due = -1, deadline
    if rule.warn is not None:
        lead = budget - rule.warn
        warn_at = due = P.sla_add(rule, at, lead) if lead > 0 else at
    # positional (the hot path): rule, ref, opened_at, open_event, budget, used, running_since,
    # deadline, warn_at, broken_at, paused_at, warned, due, tier, team, channel
    return Promise(rule.id, event.ref, at, event.id, budget, 0, at, deadline, warn_at, -1, -1,
                   False, due, tier, event.team, event.channel)


def open_promise(rule: ExpectRule, event: Event) -> Promise | None:
    """A new promise for `event` alone (no sharing), or None when it would not be opened."""
    tier = str(event.data.get("tier", ""))
    opened = opening(rule, event, tier)
    return None if opened is None else promise_of(rule, event, tier, *opened)
