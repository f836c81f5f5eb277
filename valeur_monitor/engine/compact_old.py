"""Versions 1 and 2 of the compact state encoding: states stored by older releases still read.

Version 3 (`engine.compact`) is what is written; these are read by `compact.decode` and written
only by tests (to prove that what older versions stored still decodes). Not compiled: a state
in an older form is decoded once, when it is first loaded.

Both write positional arrays, each rule id once per state (referred to by index), instants
relative to a base (the promise's opening, the customer's clock) and the dedupe marks as one
shared prefix, the id suffixes and their ages behind the clock. Version 2 also writes the SLA
clock of a promise once for all the rules that declare the same obligation. Their parts move
with the customer's clock: no part of one commit's bytes can be reused at the next.
"""

from __future__ import annotations

import msgspec

from valeur_monitor.engine.compact_types import Clock as _Clock
from valeur_monitor.engine.compact_types import EventMap, Instant, events_of
from valeur_monitor.engine.compact_types import Own as _Own
from valeur_monitor.engine.compact_types import PromiseV1 as _Promise
from valeur_monitor.engine.compact_types import RepeatV1 as _Repeat
from valeur_monitor.engine.compact_types import ScoreV1 as _Score
from valeur_monitor.engine.compact_types import StateV1 as _State
from valeur_monitor.engine.compact_types import StateV2 as _State2
from valeur_monitor.engine.rowed import as_map
from valeur_monitor.engine.state import CustomerState, Promise, Score

MAGIC_V2 = b"\xc1\x02"
MAGIC_V1 = b"\xc1\x01"

_encoder = msgspec.msgpack.Encoder(enc_hook=as_map)   # pending events: their maps
_decoder = msgspec.msgpack.Decoder(_State)
_decoder2 = msgspec.msgpack.Decoder(_State2)


def _rel(value: int, base: int) -> Instant:
    return None if value < 0 else value - base


def _abs(value: Instant, base: int) -> int:
    return -1 if value is None else value + base


def _common_prefix(ids: list[str]) -> str:
    """The longest prefix all ids share (that of the smallest and the largest)."""
    first, last = min(ids), max(ids)
    end = 0
    for a, b in zip(first, last, strict=False):
        if a != b:
            break
        end += 1
    return first[:end]


def encode_v2(state: CustomerState) -> bytes:
    """Version 2 of this form (kept to test that states stored by older versions still read)."""
    rules: dict[str, int] = {}
    clocks: dict[_Clock, int] = {}
    clock = state.clock
    promises: list[_Own] = []
    for slot, p in state.promises.items():
        rule, ref, base = p.rule, p.ref, p.opened_at
        index = rules.get(rule)
        if index is None:
            index = rules[rule] = len(rules)
        shared: _Clock = (
            ref, base, p.open_event, p.budget, p.used,
            None if p.running_since < 0 else p.running_since - base,
            None if p.deadline < 0 else p.deadline - base,
            None if p.paused_at < 0 else p.paused_at - base, p.tier, p.team, p.channel)
        at = clocks.get(shared)
        if at is None:
            at = clocks[shared] = len(clocks)
        promises.append((
            index, at, None if p.warn_at < 0 else p.warn_at - base,
            None if p.broken_at < 0 else p.broken_at - base, p.warned,
            None if p.due < 0 else p.due - base,
            None if len(slot) == len(rule) + 1 + len(ref) and slot == f"{rule}\x1f{ref}"
            else slot))
    repeats = []
    for slot, window in state.repeats.items():
        rule, _, key = slot.partition("\x1f")
        index = rules.get(rule)
        if index is None:
            index = rules[rule] = len(rules)
        repeats.append((index, key, [clock - at for at, _ in window], [ref for _, ref in window]))
    seen = state.seen
    if len(seen) > 1:
        prefix = _common_prefix(list(seen))
        cut = len(prefix)
        ids = [i[cut:] for i in seen] if cut else list(seen)
    else:
        prefix, ids = "", list(seen)
    score = state.score
    return MAGIC_V2 + _encoder.encode((
        state.customer, clock, None if state.pruned < 0 else state.pruned - clock, state.seq,
        list(rules), prefix, ids, [clock - t for t in seen.values()], state.pending,
        list(clocks), promises, repeats, state.alert_windows, state.alerts_fired,
        (score.total, score.dims, score.at, score.created, score.destroyed), state.reasons,
        state.next_at, state.next_slot))


def decode_v2(data: bytes) -> CustomerState:
    s = _decoder2.decode(memoryview(data)[len(MAGIC_V2):])
    clock, rules, prefix, clocks = s.clock, s.rules, s.seen_prefix, s.clocks
    promises = {}
    for index, at, warn_at, broken_at, warned, due, slot in s.promises:
        ref, base, open_event, budget, used, running, deadline, paused, tier, team, channel = (
            clocks[at])
        rule = rules[index]
        promises[f"{rule}\x1f{ref}" if slot is None else slot] = Promise(
            rule, ref, base, open_event, budget, used,
            -1 if running is None else running + base,
            -1 if deadline is None else deadline + base,
            -1 if warn_at is None else warn_at + base,
            -1 if broken_at is None else broken_at + base,
            -1 if paused is None else paused + base, warned,
            -1 if due is None else due + base, tier, team, channel)
    repeats = {f"{rules[index]}\x1f{key}": [(clock - age, ref) for age, ref in
                                             zip(ages, refs, strict=True)]
               for index, key, ages, refs in s.repeats}
    seen = dict(zip([prefix + i for i in s.seen_ids] if prefix else s.seen_ids,
                    [clock - age for age in s.seen_ages], strict=True))
    total, dims, score_at, created, destroyed = s.score
    return CustomerState(
        s.customer, clock, _abs(s.pruned, clock), s.seq, seen, events_of(s.pending), promises,
        repeats,
        s.alert_windows, s.alerts_fired, Score(total, dims, score_at, created, destroyed),
        s.reasons, s.next_at, s.next_slot)


def encode_v1(state: CustomerState) -> bytes:
    """Version 1 of this form (kept to test that states stored by older versions still read)."""
    rules: dict[str, int] = {}
    clock = state.clock
    promises = []
    for slot, p in state.promises.items():
        index = rules.setdefault(p.rule, len(rules))
        base = p.opened_at
        promises.append((None if slot == f"{p.rule}\x1f{p.ref}" else slot, _Promise(
            index, p.ref, base, p.open_event, p.budget, p.used, _rel(p.running_since, base),
            _rel(p.deadline, base), _rel(p.warn_at, base), _rel(p.broken_at, base),
            _rel(p.paused_at, base), p.warned, _rel(p.due, base), p.tier, p.team, p.channel)))
    repeats = []
    for slot, window in state.repeats.items():
        rule, _, key = slot.partition("\x1f")
        repeats.append(_Repeat(rules.setdefault(rule, len(rules)), key,
                               [clock - at for at, _ in window], [ref for _, ref in window]))
    ids = list(state.seen)
    prefix = _common_prefix(ids) if len(ids) > 1 else ""
    cut = len(prefix)
    return MAGIC_V1 + _encoder.encode(_State(
        state.customer, clock, _rel(state.pruned, clock), state.seq, list(rules), prefix,
        [i[cut:] for i in ids], [clock - t for t in state.seen.values()],
        [EventMap(*e.row()) for e in state.pending], promises, repeats, state.alert_windows,
        state.alerts_fired, _Score(*state.score.row()),
        state.reasons, state.next_at, state.next_slot))


def decode_v1(data: bytes) -> CustomerState:
    s = _decoder.decode(memoryview(data)[len(MAGIC_V1):])
    clock, rules, prefix = s.clock, s.rules, s.seen_prefix
    promises = {}
    for slot, p in s.promises:
        rule, base = rules[p.rule], p.opened_at
        promises[f"{rule}\x1f{p.ref}" if slot is None else slot] = Promise(
            rule, p.ref, base, p.open_event, p.budget, p.used, _abs(p.running_since, base),
            _abs(p.deadline, base), _abs(p.warn_at, base), _abs(p.broken_at, base),
            _abs(p.paused_at, base), p.warned, _abs(p.due, base), p.tier, p.team, p.channel)
    repeats = {f"{rules[r.rule]}\x1f{r.key}": [(clock - age, ref) for age, ref in
                                               zip(r.ages, r.refs, strict=True)]
               for r in s.repeats}
    seen = dict(zip([prefix + i for i in s.seen_ids] if prefix else s.seen_ids,
                    [clock - age for age in s.seen_ages], strict=True))
    return CustomerState(
        s.customer, clock, _abs(s.pruned, clock), s.seq, seen, events_of(s.pending), promises,
        repeats,
        s.alert_windows, s.alerts_fired, Score(*msgspec.structs.astuple(s.score)), s.reasons,
        s.next_at, s.next_slot)
