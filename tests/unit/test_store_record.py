"""The one Redis value per customer (store/record.py): exact round trips, compression, framing."""

from __future__ import annotations

import struct

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine.compact_old import encode_v2
from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.state import CustomerState, Score, encode_state
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.record import (
    FRAME,
    HEADER,
    MAGIC,
    RAW,
    ZSTD_1,
    ZSTD_2,
    Row,
    Value,
    compressor,
    encode_frame,
    encode_head,
    encode_open,
    is_value,
)

pytestmark = pytest.mark.unit

text = st.text(max_size=30)
floats = st.floats(allow_nan=False)
entries = st.builds(
    LedgerEntry, customer=st.just("c-1"), seq=st.integers(1, 2**32 - 1), rule=text,
    outcome=text, dimension=text, amount=floats, value=floats, time=st.integers(0, 2**42),
    events=st.lists(text, max_size=3).map(tuple), explain=text, ref=text, team=text,
    channel=text, late=st.booleans(), rules_version=text)
states = st.builds(
    CustomerState, customer=st.just("c-1"), seq=st.integers(0, 10**6),
    score=st.builds(Score, total=floats, dims=st.dictionaries(text, floats, max_size=4),
                    at=st.integers(0, 2**42), created=floats, destroyed=floats),
    reasons=st.dictionaries(text, floats, max_size=5))


def value_of(state: CustomerState, window: list[LedgerEntry], compress: bool) -> bytes:
    """The value the commit script builds from a head and frames (same layout)."""
    head = encode_head(state, compress=compress)
    frames = b"".join(encode_frame(e, compress=compress) for e in window)
    mark = max((e.seq for e in window), default=0)
    opened = encode_open([("rule-b", 2), ("rule-a", 1)])
    return HEADER.pack(MAGIC, mark, len(head), len(window), len(opened)) + opened + head + frames


@settings(max_examples=100, deadline=None)
@given(states, st.lists(entries, max_size=5), st.booleans())
def test_score_state_and_window_round_trip_exactly(state: CustomerState,
                                                   window: list[LedgerEntry],
                                                   compress: bool) -> None:
    data = value_of(state, window, compress)
    assert is_value(data)
    value = Value("c-1", data)
    assert value.score() == ScoreView.of(state)
    assert value.state_bytes() == encode_state(state)
    assert value.ledger() == window
    assert value.ledger(2) == window[-2:]
    assert value.last_entry() == (window[-1] if window else None)
    assert value.open_counts() == {"rule-a": 1, "rule-b": 2}
    assert value.count == len(window)
    assert [(t, q) for t, q, _ in value.frames()] == [
        (min(e.time // 1000, 2**32 - 1), e.seq) for e in window]


def test_frames_are_what_the_commit_script_reads() -> None:
    entry = LedgerEntry("c-1", 7, "r", "kept", "time", 1.0, 1.0, 1_794_000_000_123, ("e",),
                        "x")
    frame = encode_frame(entry)
    when, seq, length = FRAME.unpack_from(frame)
    assert (when, seq, length) == (1_794_000_000, 7, len(frame) - FRAME.size)
    assert frame[FRAME.size] == ZSTD_1
    assert encode_frame(entry, compress=False)[FRAME.size] == RAW
    # the script's formats: '>I4I4I2I2' header after the 2-byte magic, '>I4I4I2' per frame
    assert HEADER.size == 14 and FRAME.size == 10
    assert encode_open([]) == b""
    assert struct.calcsize(">IIH") == FRAME.size


def test_the_dictionaries_make_typical_records_small() -> None:
    entry = LedgerEntry("cust-00095", 85, "happy-survey", "matched", "experience", 2.0, 2.0,
                        1794147132000, ("evt-1-61413",), "Survey answered 5/5", "req-008708",
                        "billing", "sms", False, "7ba90853342e")
    assert len(encode_frame(entry)) < 0.6 * len(encode_frame(entry, compress=False))


def test_an_unknown_codec_or_layout_is_refused_clearly() -> None:
    state = CustomerState("c-1")
    data = bytearray(value_of(state, [], compress=False))
    data[HEADER.size + len(encode_open([("rule-b", 2), ("rule-a", 1)]))] = 9
    with pytest.raises(ValueError, match="unknown codec 9"):
        Value("c-1", bytes(data)).score()
    with pytest.raises(ValueError, match="layout-2"):
        Value("c-1", b"\xc1\x01" + bytes(20))


def _simulated_states() -> list[CustomerState]:
    store = MemoryStore()
    runner = EmbeddedRunner(load_rules(["rules"]), store)
    runner.feed([orjson.dumps(r) for r in simulate(SimulationConfig(seed=4, customers=60,
                                                                     days=7))])
    runner.finish()
    return [store.load([c])[c] for c in store.customers()]


def _head_v2(state: CustomerState) -> bytes:
    """A head as written before version 3 of the state: codec 1, a version-2 state."""
    s = state.score
    raw = msgspec.msgpack.encode(Row(s.total, s.at, s.created, s.destroyed, s.dims,
                                     state.reasons, encode_v2(state)))
    return bytes((ZSTD_1,)) + compressor("head", ZSTD_1).compress(raw)


def test_heads_written_by_the_previous_version_still_read() -> None:
    for state in _simulated_states():
        head = _head_v2(state)
        opened = encode_open([])
        data = HEADER.pack(MAGIC, 0, len(head), 0, len(opened)) + head
        assert Value(state.customer, data).state() == state
        assert Value(state.customer, data).score() == ScoreView.of(state)


def test_state_heads_stay_as_small_as_before() -> None:
    # Version 3 writes plain instants and ids (cheap to encode); codec 2's dictionary, trained on
    # such heads, brings them back near the size of version 2 with its own (Redis memory aims).
    states = _simulated_states()
    now = sum(len(encode_head(s)) for s in states)
    before = sum(len(_head_v2(s)) for s in states)
    assert encode_head(states[0])[0] == ZSTD_2
    assert now < 1.1 * before
    assert now < 0.5 * sum(len(encode_head(s, compress=False)) for s in states)
