"""The compact state encoding: exact round trips, older forms still read, smaller, and parts
whose bytes do not move with the customer's clock."""

from __future__ import annotations

import inspect

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine import compact_old
from valeur_monitor.engine import customer as customer_fields
from valeur_monitor.engine import promise as promise_fields
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.state import (
    CustomerState,
    Promise,
    Score,
    decode_state,
    encode_plain,
    encode_state,
)
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.memory import MemoryStore

T0 = 1_790_000_000_000
times = st.one_of(st.just(-1), st.integers(T0 - 10**10, T0 + 10**10), st.integers(0, 10**6))
text = st.text(max_size=12)


@st.composite
def promises(draw: st.DrawFn) -> tuple[str, Promise]:
    p = Promise(draw(st.sampled_from(["r1", "no-update", "cb"])), draw(text),
                draw(st.integers(0, T0 * 2)), draw(text), draw(st.integers(0, 10**10)),
                draw(st.integers(0, 10**10)), draw(times), draw(times), draw(times),
                draw(times), draw(times), draw(st.booleans()), draw(times), draw(text),
                draw(text), draw(text))
    slot = draw(st.one_of(st.just(f"{p.rule}\x1f{p.ref}"), text))
    return slot, p


@st.composite
def states(draw: st.DrawFn) -> CustomerState:
    clock = draw(st.integers(0, T0 * 2))
    seen = draw(st.dictionaries(st.one_of(text, text.map(lambda s: "evt-1-" + s)), times,
                                max_size=20))
    repeats = draw(st.dictionaries(
        st.tuples(st.sampled_from(["rep", "r1"]), text).map(lambda rk: "\x1f".join(rk)),
        st.lists(st.tuples(st.integers(0, T0 * 2), text), max_size=4), max_size=3))
    pending = [Event(id=i, type="request.opened", time=draw(st.integers(0, T0 * 2)),
                     customer="c", data={"n": 1}) for i in draw(st.lists(text, max_size=2))]
    return CustomerState(
        draw(text), clock, draw(st.integers(0, T0 * 2)), draw(st.integers(0, 10**6)), seen,
        pending, dict(draw(st.lists(promises(), max_size=5))), repeats,
        draw(st.dictionaries(text, st.lists(st.integers(0, T0 * 2), max_size=3), max_size=2)),
        draw(st.lists(text, max_size=2)),
        Score(draw(st.floats(allow_nan=False)), {"time": -1.5}, draw(st.integers(0, T0)), 2.0,
              1.0),
        draw(st.dictionaries(text, st.floats(allow_nan=False), max_size=3)),
        draw(st.integers(-2, T0 * 2)), draw(text))


@settings(max_examples=200, deadline=None)
@given(states())
def test_round_trip_is_exact(state: CustomerState) -> None:
    data = encode_state(state)
    assert decode_state(data) == state
    assert encode_state(decode_state(data)) == data          # deterministic
    assert decode_state(encode_plain(state)) == state        # older states still read
    assert decode_state(compact_old.encode_v1(state)) == state   # ... and versions 1
    assert decode_state(compact_old.encode_v2(state)) == state   # and 2 of this form


def test_unchanged_parts_keep_their_bytes_when_the_clock_moves() -> None:
    promise = Promise("reply-in-time", "req-1", T0, "evt-1", 14_400_000, running_since=T0,
                      deadline=T0 + 14_400_000, due=T0 + 14_400_000, team="billing")
    state = CustomerState("c", clock=T0, pruned=T0,
                          promises={"reply-in-time\x1freq-1": promise},
                          seen={f"evt-7-{i}": T0 - 1000 * i for i in range(40)},
                          repeats={"rep\x1fk": [(T0 - 5000, "req-1")]})
    before = encode_state(state)
    state.clock += 3_600_000
    after = encode_state(state)
    # only the clock (in the first bytes) differs: marks, promises and windows keep their bytes
    assert len(before) == len(after)
    differ = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    assert differ and max(differ) < 16
    assert decode_state(after) == state


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown compact state version"):
        decode_state(b"\xc1\x09\x90")


def test_older_forms_of_simulated_states_still_read() -> None:
    store = MemoryStore()
    runner = EmbeddedRunner(load_rules(["rules"]), store)
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=5, customers=30, days=3))]
    runner.feed(lines)
    runner.finish()
    for customer in store.customers():
        state = store.load([customer])[customer]
        for data in (encode_plain(state), compact_old.encode_v1(state),
                     compact_old.encode_v2(state), encode_state(state)):
            assert decode_state(data) == state


def test_every_field_is_encoded() -> None:
    # A field added to the state must be added to the compact form too (engine/compact.py).
    assert customer_fields.STATE_FIELDS == (
        "customer", "clock", "pruned", "seq", "seen", "pending", "promises", "repeats",
        "alert_windows", "alerts_fired", "score", "reasons", "next_at", "next_slot")
    # version 3 writes a promise's fields in this order (compact_types.PromiseV3)
    assert promise_fields.FIELDS == (
        "rule", "ref", "opened_at", "open_event", "budget", "used", "running_since", "deadline",
        "warn_at", "broken_at", "paused_at", "warned", "due", "tier", "team", "channel")
    # no field left out of a row (slots interpreted, native attributes compiled)
    assert {name for name, v in vars(Promise).items() if inspect.isdatadescriptor(v)} == set(
        promise_fields.FIELDS)
    # distinct values of each field's type (the compiled class checks them): order is checked
    values = ("r", "ref", 2, "e", 4, 5, 6, 7, 8, 9, 10, True, 12, "t", "team", "c")
    p = Promise(*values)
    assert p.row() == values == tuple(getattr(p, f) for f in promise_fields.FIELDS)
    assert Promise(*p.row()) == p and list(p.to_dict()) == list(promise_fields.FIELDS)
    assert customer_fields.SCORE_FIELDS == ("total", "dims", "at", "created", "destroyed")
    for cls, names in ((CustomerState, customer_fields.STATE_FIELDS),
                       (Score, customer_fields.SCORE_FIELDS)):
        assert {n for n, v in vars(cls).items() if inspect.isdatadescriptor(v)} == set(names)
    state = CustomerState("c", 1, 2, 3, {"e": 4}, [], {}, {"r": [(5, "x")]}, {"a": [6]}, ["f"],
                          Score(7.0, {"d": 8.0}, 9, 10.0, 11.0), {"r": 12.0}, 13, "s")
    assert state.row()[:4] == ("c", 1, 2, 3) and state.row()[-2:] == (13, "s")
    assert CustomerState(*state.row()) == state
    assert list(state.to_dict()) == list(customer_fields.STATE_FIELDS)


def test_simulated_states_are_smaller() -> None:
    store = MemoryStore()
    runner = EmbeddedRunner(load_rules(["rules"]), store)
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=3, customers=80, days=7))]
    for i in range(0, len(lines), 500):
        runner.feed(lines[i:i + 500])
    runner.finish()
    plain = small = 0
    for customer in store.customers():
        state = store.load([customer])[customer]
        assert decode_state(encode_state(state)) == state
        plain += len(encode_plain(state))
        small += len(encode_state(state))
    # no field names; the store's zstd dictionary does the rest (test_store_record.py)
    assert small < 0.8 * plain
