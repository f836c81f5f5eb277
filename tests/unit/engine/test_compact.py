"""The compact state encoding: exact round trips, older plain states still read, and smaller."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine import compact
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
    assert decode_state(compact.encode_v1(state)) == state   # ... and version 1 of this form


def test_every_field_is_encoded() -> None:
    # A field added to the state must be added to the compact form too (engine/compact.py).
    assert CustomerState.__struct_fields__ == (
        "customer", "clock", "pruned", "seq", "seen", "pending", "promises", "repeats",
        "alert_windows", "alerts_fired", "score", "reasons", "next_at", "next_slot")
    assert len(Promise.__struct_fields__) == 16


def test_simulated_states_are_much_smaller() -> None:
    store = MemoryStore()
    runner = EmbeddedRunner(load_rules(["rules"]), store)
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=3, customers=80, days=7))]
    for i in range(0, len(lines), 500):
        runner.feed(lines[i:i + 500])
    runner.finish()
    plain = small = v1 = 0
    for customer in store.customers():
        state = store.load([customer])[customer]
        assert decode_state(encode_state(state)) == state
        plain += len(encode_plain(state))
        small += len(encode_state(state))
        v1 += len(compact.encode_v1(state))
    assert small < 0.5 * plain
    assert small < 0.95 * v1   # rules declaring the same obligation share its clock


def test_shared_clocks_are_written_once() -> None:
    promise = Promise("reply-in-time", "req-1", T0, "evt-1", 14_400_000, running_since=T0,
                      deadline=T0 + 14_400_000, due=T0 + 14_400_000, team="billing",
                      channel="email")
    twin = Promise("unanswered-request", "req-1", T0, "evt-1", 14_400_000, running_since=T0,
                   deadline=T0 + 14_400_000, warn_at=T0 + 10_800_000, due=T0 + 10_800_000,
                   team="billing", channel="email")
    state = CustomerState("c", clock=T0, promises={
        "reply-in-time\x1freq-1": promise, "unanswered-request\x1freq-1": twin})
    data = encode_state(state)
    assert decode_state(data) == state
    assert data.count(b"evt-1") == 1 and data.count(b"billing") == 1
