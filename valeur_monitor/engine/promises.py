"""The `expect` rule kind: promises opened, kept, cancelled, paused, resumed, warned and broken."""

from __future__ import annotations

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.promise import Promise
from valeur_monitor.engine.rules.model import ExpectRule, Matcher


def hit(group: tuple[Matcher, ...], event: Event) -> bool:
    """True if a matcher of `group` (already narrowed to the event's type) accepts the event."""
    return any(m.condition is None or m.condition.test(event) for m in group)


def sla_between(rule: ExpectRule, start: int, end: int) -> int:
    """SLA clock elapsed between two instants (business time on a calendar, else wall time)."""
    calendar = rule.deadline.calendar
    return calendar.between(start, end) if calendar else max(0, end - start)


def sla_add(rule: ExpectRule, start: int, amount: int) -> int:
    """Instant when `amount` of SLA clock has elapsed after `start`."""
    calendar = rule.deadline.calendar
    return calendar.add(start, amount) if calendar else start + amount


def schedule(rule: ExpectRule, promise: Promise) -> None:
    """Recompute deadline and warning from the running SLA clock."""
    remaining = promise.budget - promise.used
    promise.deadline = sla_add(rule, promise.running_since, remaining)
    promise.warn_at = -1
    if rule.warn is not None and not promise.warned:
        # Closer than the warning offset already: warn as the clock (re)starts.
        lead = remaining - rule.warn
        promise.warn_at = sla_add(rule, promise.running_since, lead) if lead > 0 else (
            promise.running_since)
    promise.refresh(rule.late_window, rule.max_pause)


def pause(rule: ExpectRule, promise: Promise, at: int) -> None:
    if promise.paused_at >= 0 or promise.broken_at >= 0:
        return
    promise.used += sla_between(rule, promise.running_since, at)
    promise.paused_at = at
    promise.refresh(rule.late_window, rule.max_pause)


def resume(rule: ExpectRule, promise: Promise, at: int) -> None:
    if promise.paused_at < 0:
        return
    promise.paused_at = -1
    promise.running_since = at
    schedule(rule, promise)
