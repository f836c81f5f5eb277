"""Outcome values that depend on the case: scaled by a duration, or given back after a late keep."""

from __future__ import annotations

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules.model import Effect, ExpectRule, Scale

Values = tuple[tuple[str, float, float], ...]   # (dimension, amount, signed value)


def measured(scale: Scale, event: Event | None, overdue_wall: int, overdue_sla: int) -> int:
    """The duration (ms) a scale counts: the wait past the deadline, or an event field (s)."""
    if scale.clock == "wall":
        span = overdue_wall
    elif scale.clock == "sla":
        span = overdue_sla
    else:
        raw = event.data.get(scale.field or "") if event is not None else None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != raw:
            return 0  # no such number: nothing measured (documented: the entries are skipped)
        span = int(raw * 1000)
    span = max(0, span)
    return span if scale.max is None else min(span, scale.max)


def scaled(effect: Effect, span: int) -> Values:
    """The effect's values times (span / per), rounded to 0.01; zero values are dropped."""
    assert effect.scale is not None
    factor = span / effect.scale.per
    out = []
    for dim, amount, value in effect.values:
        amount, value = round(amount * factor, 2), round(value * factor, 2)
        if value:
            out.append((dim, amount, value))
    return tuple(out)


def values_of(effect: Effect, event: Event | None, overdue_wall: int = 0,
              overdue_sla: int = 0) -> Values:
    """What an outcome is worth in this case (the fixed values when nothing scales)."""
    if effect.scale is None:
        return effect.values
    return scaled(effect, measured(effect.scale, event, overdue_wall, overdue_sla))


def late_values(rule: ExpectRule, event: Event, overdue_wall: int, overdue_sla: int) -> Values:
    """A late keep: part of the broken values given back (`recover`), then the late values."""
    late = rule.late
    assert late is not None
    back: Values = ()
    if late.recover and rule.broken is not None:
        r = late.recover
        # A cost given back is a negative amount of that cost: value = -amount, as for costs.
        back = tuple((dim, round(-amount * r, 2) if value < 0 else round(amount * r, 2),
                      round(-value * r, 2)) for dim, amount, value in rule.broken.values)
    return back + values_of(late, event, overdue_wall, overdue_sla)
