"""The `repeat` rule kind: contacts about one key counted within a window, per customer."""

from __future__ import annotations

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules.model import RepeatRule
from valeur_monitor.engine.state import CustomerState

Times = list[tuple[int, str]]   # (event time, ref) of the contacts counted in one slot


def count(rule: RepeatRule, state: CustomerState, event: Event) -> tuple[int, str] | None:
    """Count `event` for `rule` (already matched): (contacts within the window, the key) when
    that reaches the rule's threshold, else None (no key, a merged contact, or too few)."""
    try:
        key = str(rule.key.value(event))
    except (LookupError, ValueError, RuntimeError, TypeError):
        return None  # no key, no repetition to count
    slot = f"{rule.id}\x1f{key}"
    at, ref = event.time, event.ref
    horizon = at - rule.within
    repeats = state.repeats
    # the kept (time, ref) pairs themselves, not copies of them
    times = [pair for pair in repeats.get(slot, ()) if pair[0] > horizon]
    if rule.merge and ref and _merges(times, ref, at, rule.merge):
        repeats[slot] = times
        return None  # the same contact seen twice (e.g. a call that opened a request)
    times.append((at, ref))
    repeats[slot] = times
    return (len(times), key) if len(times) >= rule.from_count else None


def live(repeats: dict[str, Times], within_of: dict[str, int], horizon: int
         ) -> dict[str, Times]:
    """Repeat slots still able to count: an event may come as late as `horizon`, and it
    counts the times within its rule's window before it; older times (and slots of rules
    no longer loaded, absent from `within_of`) are dropped, so distinct keys cannot grow the
    state for ever."""
    for slot, times in repeats.items():  # first: is anything to drop? (rarely, in a week)
        within = within_of.get(slot.split("\x1f", 1)[0])
        if within is None or not times or min(times)[0] <= horizon - within:
            break
    else:
        return repeats  # nothing aged out: the same dict, no copy
    kept: dict[str, Times] = {}
    for slot, times in repeats.items():
        within = within_of.get(slot.split("\x1f", 1)[0])
        if within is None:
            continue
        cut = horizon - within
        alive = [pair for pair in times if pair[0] > cut]
        if alive:
            kept[slot] = alive
    return kept


def _merges(times: Times, ref: str, at: int, merge: int) -> bool:
    """Whether a contact about `ref` at `at` is one already counted: the same ref within
    `merge`."""
    for when, other in times:  # noqa: SIM110 (a loop: no generator per counted contact)
        if other == ref and abs(at - when) <= merge:
            return True
    return False
