"""The engine: ingest events and advance stream time for one customer, deterministically."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Final

from valeur_monitor.engine import obligations as O
from valeur_monitor.engine import promises as P
from valeur_monitor.engine import repeats as R
from valeur_monitor.engine import valuation as V
from valeur_monitor.engine.durations import format_duration
from valeur_monitor.engine.event import Event, format_time
from valeur_monitor.engine.explain import template
from valeur_monitor.engine.ledger import LedgerEntry, Notice, Outcome
from valeur_monitor.engine.promise import Promise
from valeur_monitor.engine.ruleindex import OnIndex
from valeur_monitor.engine.rules.model import Deadline, Effect, ExpectRule, RepeatRule, RuleSet
from valeur_monitor.engine.scoring import apply_values, check_score_alerts, count_outcome
from valeur_monitor.engine.state import CustomerState

_Work = tuple[OnIndex | None, tuple[RepeatRule, ...], O.TypePlan | None]
# Final: compiled by mypyc, a Final module name is a C static; any other module global, an
# imported class too, is a look-up in the module's dict at each use (several per event)
_NO_MEMO: Final[list[bool | None]] = []
# An Outcome built by the tuple's own constructor: calling the NamedTuple runs its generated
# Python-level `__new__` (a frame per outcome, ≈ 0.55 per event, in both builds)
_tuple_new: Final = tuple.__new__
_OUTCOME: Final = Outcome
_ENTRY: Final = LedgerEntry
PRUNE_EVERY: Final = 86_400_000  # prune dedupe marks at most daily (stream time)


class Case:
    """What an outcome is about: the rule, the case's ref, team and channel, its events.

    A plain class with slots, not a NamedTuple: one is made per outcome, and compiled it is a
    native object (built and read without a Python-level `__new__` or property calls)."""

    __slots__ = ("channel", "event", "events", "late", "promise", "ref", "rule_id", "team",
                 "title")

    def __init__(self, rule_id: str, title: str, ref: str, team: str, channel: str,
                 events: tuple[str, ...], event: Event | None, late: bool,
                 promise: Promise | None = None) -> None:
        self.rule_id = rule_id
        self.title = title
        self.ref = ref
        self.team = team
        self.channel = channel
        self.events = events          # ids of the causing events
        self.event = event            # the event that decided it (None for a timer)
        self.late = late              # decided by an event that arrived after the clock
        self.promise = promise        # the promise kept or broken, for expect rules

    @staticmethod
    def of_event(rule_id: str, title: str, event: Event, late: bool) -> Case:
        return Case(rule_id, title, event.ref, event.team, event.channel, (event.id,), event,
                    late)


@dataclass
class Output:
    """What ingesting/advancing produced; the runner hands it to the store and the sinks."""

    entries: list[LedgerEntry] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)  # valued or not, and warnings
    processed: list[Event] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    too_late: list[Event] = field(default_factory=list)


class Engine:
    """Pure and deterministic: no I/O, no clock reads; time comes in as arguments."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.settings = rules.settings
        self.expect_by_id = {r.id: r for r in rules.expect_rules}
        self._score_alerts = tuple(a for a in rules.alerts if a.score_below is not None)
        self._count_alerts = tuple(a for a in rules.alerts if a.outcome is not None)
        self._counted = frozenset(a.outcome for a in self._count_alerts)  # outcomes they count
        self._late_horizon = rules.settings.late_horizon
        self._on_index = {t: OnIndex(on) for t, (on, _, _) in rules.by_type.items() if on}
        self._repeat_within = {r.id: r.within for r in rules.repeat_rules}
        deadlines: list[Deadline] = []
        # per event type, all the work it can cause: one look-up per event
        self._work: dict[str, _Work] = {
            t: (self._on_index.get(t), repeat, O.plan(expect, deadlines) if expect else None)
            for t, (_, repeat, expect) in rules.by_type.items()}

    # -- entry points -------------------------------------------------------------------------
    def ingest(self, state: CustomerState, event: Event, out: Output) -> None:
        """Accept one event: buffered until stream time passes it, or applied late at once."""
        # each field read once into a local: compiled, a Struct attribute read is a generic
        # look-up, not the slot load the interpreter specialises it to
        event_id, seen = event.id, state.seen
        if event_id in seen:
            out.duplicates += 1
            return
        at, clock = event.time, state.clock
        if at < clock - self._late_horizon:
            out.too_late.append(event)
            return
        seen[event_id] = at
        if at >= clock:
            pending = state.pending
            if pending:
                last = pending[-1]
                last_at = last.time
                if last_at > at or (last_at == at and last.id > event_id):
                    bisect.insort(pending, event, key=Event.sort_key)
                    return
            pending.append(event)  # the common case: in order
        else:
            out.late += 1
            self._process(state, event, out, late=True)

    def advance(self, state: CustomerState, until: int, out: Output) -> int:
        """Move the customer's stream time to `until`: release events, fire timers, in order.
        Returns what `next_due` would say now (the caller indexes the customer by it)."""
        pending = state.pending
        clock = state.clock   # a local copy, written back at each change (nothing else sets it)
        while True:
            next_at = state.next_at
            if next_at == -2:
                self._next_timer(state)  # not known: one scan
                next_at = state.next_at
            timer_at = next_at if next_at <= until else -1
            if pending:
                event = pending[0]
                at = event.time
                if 0 <= at <= until and (timer_at < 0 or at <= timer_at):
                    del pending[0]
                    if at > clock:
                        clock = state.clock = at
                    self._process(state, event, out, late=False)
                    continue
            if timer_at < 0:
                break
            if timer_at > clock:
                clock = state.clock = timer_at
            self._fire(state, state.next_slot, timer_at, out)
        if until > clock:
            clock = state.clock = until
        if clock - state.pruned >= PRUNE_EVERY:
            horizon = clock - self.settings.late_horizon
            seen = state.seen
            # rebuilt only when a mark has aged out: within the first late horizon (7 days)
            # nothing has, and a daily copy of every customer's marks was a growing cost
            if seen and min(seen.values()) < horizon:
                state.seen = {k: t for k, t in seen.items() if t >= horizon}
            if state.repeats:
                state.repeats = R.live(state.repeats, self._repeat_within, horizon)
            state.pruned = clock
        # next_due, from what the loop read last: the earliest timer is known (scanned above)
        due = pending[0].time if pending else -1
        if next_at >= 0 and (due < 0 or next_at < due):
            due = next_at
        return due

    def next_due(self, state: CustomerState) -> int:
        """Earliest instant at which advancing this customer does something; -1 for never."""
        due = state.pending[0].time if state.pending else -1
        if state.next_at == -2:
            self._next_timer(state)
        timer = state.next_at
        if timer >= 0 and (due < 0 or timer < due):
            due = timer
        return due

    # -- events -------------------------------------------------------------------------------
    def _process(self, state: CustomerState, event: Event, out: Output, *, late: bool) -> None:
        work = self._work.get(event.type)
        if work is None:   # a type no rule reacts to
            out.processed.append(event)
            return
        index, repeat_rules, plan = work
        if index is not None:
            for rule in index.matching(event):
                self._emit(state, Case(rule.id, rule.title, event.ref, event.team, event.channel,
                                       (event.id,), event, late),
                           "matched", rule.effect, event.time, out)
        for rrule in repeat_rules:
            if not rrule.matcher.matches(event):
                continue
            counted = R.count(rrule, state, event)
            if counted is not None:
                self._emit(state, Case.of_event(rrule.id, rrule.title, event, late), "repeat",
                           rrule.effect, event.time, out,
                           (counted[0], counted[1], format_duration(rrule.within)))
        if plan is not None:
            self._expect(state, plan, event, out, late)
        out.processed.append(event)

    def _expect(self, state: CustomerState, plan: O.TypePlan, event: Event, out: Output,
                late: bool) -> None:
        """Each expect rule's promise for the event's ref: kept, cancelled, paused, resumed,
        (re)opened, in rule order; condition groups and deadlines computed once per event."""
        promises = state.promises
        groups = plan.groups
        memo: list[bool | None] = [None] * len(groups) if groups else _NO_MEMO
        opened: dict[int, O.Opened] | None = None   # made when a first promise opens
        tier: str | None = None
        ref = event.ref
        for step in plan.steps:
            role = step.open
            if not role and not promises:
                continue  # no promise to find: no slot string built and hashed for nothing
            slot = step.prefix + ref
            promise = promises.get(slot)
            if promise is None and not role:
                continue  # nothing to keep, cancel, pause or resume, nothing to open
            rule = step.rule
            changed = False
            # role tests inlined for the common ALWAYS (1) case: O.test only for conditions
            if promise is not None:
                if (r := step.keep) and (r == 1 or O.test(r, groups, memo, event)):
                    broken = promise.broken_at >= 0
                    outcome = "late" if broken else "kept"
                    if (rule.late if broken else rule.kept) is not None:
                        self._close(state, rule, promise, outcome, event, out, late)
                    del promises[slot]
                    promise = None
                    changed = True
                elif (r := step.cancel) and (r == 1 or O.test(r, groups, memo, event)):
                    if rule.broken is not None:  # reported once, by the rule owning the failure
                        out.outcomes.append(_tuple_new(_OUTCOME, (rule.id, "cancelled",
                                                                       promise.team,
                                                                       promise.channel)))
                    del promises[slot]
                    promise = None
                    changed = True
                elif (r := step.pause) and (r == 1 or O.test(r, groups, memo, event)):
                    P.pause(rule, promise, event.time)
                    changed = True
                elif (r := step.resume) and (r == 1 or O.test(r, groups, memo, event)):
                    P.resume(rule, promise, event.time)
                    changed = True
            if role and (role == 1 or O.test(role, groups, memo, event)) and not (
                    promise is not None and promise.broken_at < 0 and rule.reopen == "ignore"):
                # (a running clock goes on under "ignore": documented, first trigger wins)
                if tier is None:
                    tier = str(event.data.get("tier", ""))
                at = step.deadline
                if opened is None:
                    opened = {}
                if at in opened:
                    fresh = opened[at]
                else:
                    fresh = opened[at] = O.opening(rule, event, tier)
                if fresh is not None:
                    promise = promises[slot] = O.promise_of(rule, event, tier, fresh[0],
                                                            fresh[1])
                    changed = True
                elif promise is not None:
                    del promises[slot]
                    promise = None
                    changed = True
            if changed:  # `promise` is what the slot holds now
                _touch(state, slot, promise.due if promise is not None else -1)

    def _close(self, state: CustomerState, rule: ExpectRule, promise: Promise, outcome: str,
               event: Event, out: Output, late: bool) -> None:
        effect = rule.kept if outcome == "kept" else rule.late
        if effect is None:
            return  # this rule does not value this outcome
        worth = None
        if outcome == "late":
            wall = max(0, event.time - promise.deadline)
            worth = V.late_values(rule, event, wall, P.sla_between(rule, promise.deadline,
                                                                    event.time))
        case = Case(rule.id, rule.title, promise.ref, promise.team, promise.channel,
                    (promise.open_event, event.id), event, late, promise)
        self._emit(state, case, outcome, effect, event.time, out, worth=worth)

    # -- timers -------------------------------------------------------------------------------
    @staticmethod
    def _next_timer(state: CustomerState) -> tuple[int, str] | None:
        if state.next_at == -2:  # not known (a state from before the field, or after a removal)
            best, best_slot = -1, ""
            for slot, promise in state.promises.items():
                when = promise.due
                if when >= 0 and (best < 0 or when < best or (
                        when == best and slot < best_slot)):
                    best, best_slot = when, slot
            state.next_at, state.next_slot = best, best_slot
        return (state.next_at, state.next_slot) if state.next_at >= 0 else None

    def _fire(self, state: CustomerState, slot: str, at: int, out: Output) -> None:
        self._fire_slot(state, slot, at, out)
        promise = state.promises.get(slot)
        _touch(state, slot, promise.due if promise is not None else -1)

    def _fire_slot(self, state: CustomerState, slot: str, at: int, out: Output) -> None:
        promise = state.promises[slot]
        rule = self.expect_by_id.get(promise.rule)
        if rule is None or promise.broken_at >= 0 or promise.paused_at >= 0:
            # late window over, paused longer than max_pause, or rule removed by a reload
            del state.promises[slot]
            return
        if promise.warn_at >= 0 and at == promise.warn_at and at < promise.deadline:
            promise.warn_at = -1
            promise.warned = True
            promise.refresh(rule.late_window, rule.max_pause)
            message = template(None, "warning").render(
                {"title": rule.title, "ref": promise.ref,
                 "deadline": format_time(promise.deadline)}, None)
            out.notices.append(Notice("warning", rule.id, state.customer, at, message,
                                      ref=promise.ref))
            out.outcomes.append(_tuple_new(_OUTCOME, (rule.id, "warning", promise.team,
                                                      promise.channel)))
            return
        if rule.late is None:
            del state.promises[slot]  # nothing to report if kept late: no need to wait for it
        else:
            promise.broken_at = promise.deadline
            promise.warn_at = -1
            promise.refresh(rule.late_window, rule.max_pause)
        case = Case(rule.id, rule.title, promise.ref, promise.team, promise.channel,
                    (promise.open_event,), None, False, promise)
        self._emit(state, case, "broken", rule.broken, at, out)

    # -- values -------------------------------------------------------------------------------
    def _emit(self, state: CustomerState, case: Case, outcome: str, effect: Effect | None,
              at: int, out: Output, extra: tuple[int, str, str] | None = None,
              worth: V.Values | None = None) -> None:
        """Book `outcome` of `case` at `at`: ledger entries for its values, score, alerts."""
        if effect is None:
            return  # an outcome a rule does not value is not its outcome (shared promises)
        rule_id, event = case.rule_id, case.event
        out.outcomes.append(_tuple_new(_OUTCOME, (rule_id, outcome, case.team, case.channel)))
        if worth is None:
            worth = effect.values if effect.scale is None else V.values_of(effect, event)
        if worth:
            text = self._explain(state, case, outcome, effect, at, extra)
            version = self.rules.version
            score, reasons, entries = state.score, state.reasons, out.entries
            apply_values(score, worth, at, self.settings.half_life)
            customer, seq, events, ref = state.customer, state.seq, case.events, case.ref
            team, channel, was_late = case.team, case.channel, case.late
            for dimension, amount, value in worth:
                seq += 1
                entries.append(_ENTRY(  # positional: the hot path
                    customer, seq, rule_id, outcome, dimension, amount, value, at, events, text,
                    ref, team, channel, was_late, version))
                if value > 0:
                    score.created += value
                else:
                    score.destroyed -= value
                reasons[rule_id] = reasons.get(rule_id, 0.0) + value
            state.seq = seq
            if self._score_alerts:
                check_score_alerts(state, self._score_alerts, at, out.notices)
        if outcome in self._counted:  # (count_outcome does nothing for other outcomes)
            count_outcome(state, self._count_alerts, rule_id, outcome, at, out.notices)

    @staticmethod
    def _explain(state: CustomerState, case: Case, outcome: str, effect: Effect, at: int,
                 extra: tuple[int, str, str] | None) -> str:
        """The entry's explanation; times and durations are formatted only if it shows them;
        `extra`: a repeat's count, key and window."""
        compiled = template(effect.explain, outcome)
        event = case.event
        # the values in explain.ROW's order (a list: no dict built per entry)
        row: list[Any] = [case.title, case.rule_id, case.ref or "-", case.team, case.channel,
                          state.customer, event.type if event else "", None, None, None,
                          None, None, None, None]
        promise = case.promise
        if promise is not None and compiled.timed:  # only the ones the template shows
            needs = compiled.needs
            if "waited" in needs:
                row[7] = format_duration(at - promise.opened_at)
            if "deadline" in needs:
                row[8] = format_time(promise.deadline)
            if "overdue" in needs and outcome != "broken":
                # how late a keep was; a broken promise is not kept yet
                row[9] = format_duration(max(0, at - promise.deadline))
        if extra is not None:
            row[10], row[11], row[12] = extra
        return compiled.fill(row, event)


def _touch(state: CustomerState, slot: str, when: int) -> None:
    """Keep the state's earliest timer right after the promise in `slot` changed or went;
    `when` is its `due` now (-1: gone, or nothing due)."""
    next_at = state.next_at
    if next_at == -2:
        return  # unknown already: the next read scans
    if next_at >= 0 and slot == state.next_slot:
        if 0 <= when <= next_at:
            state.next_at = when  # still the earliest
        else:
            state.next_at = -2  # the earliest moved later or went: find the new earliest
    elif when >= 0 and (next_at < 0 or when < next_at or (
            when == next_at and slot < state.next_slot)):
        state.next_at, state.next_slot = when, slot
