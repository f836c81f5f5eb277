"""Structured fuzzing of the codec and the Processor (bounded: ~30 s in the normal suite).

`make fuzz` runs the coverage-guided atheris harness (tests/fuzz/atheris_codec.py) over
millions of inputs; this file keeps a fast, always-on version of the same properties:
any bytes decode to an event or a dead letter with a known reason, the fast path and the
exhaustive path agree, and invalid lines interleaved with valid events change nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.corpus import SEEDS, VALID
from valeur_monitor.catalogue import active
from valeur_monitor.codec import Codec, routing_key
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.errors import EventError
from valeur_monitor.reasons import DEAD_LETTER_REASONS
from valeur_monitor.runner.inputs import LineSplitter
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CODEC = Codec(active(), max_bytes=4096, max_depth=16)
DEFAULT = Codec(active())
FUZZ = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4), max_leaves=12)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed record, structurally mutated, then possibly byte-mutated."""
    record: dict[str, Any] = dict(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from([*record, "data", "extra", "specversion", "subject"]))
        action = draw(st.sampled_from(["set", "drop", "nest"]))
        if action == "drop":
            record.pop(key, None)
        elif action == "set":
            record[key] = draw(json_values)
        elif isinstance(record.get("data"), dict):
            record["data"] = {**record["data"], draw(st.text(max_size=6)): draw(json_values)}
    try:
        raw = orjson.dumps(record)
    except TypeError:                   # integers beyond 64 bits: write the JSON by hand
        raw = repr(record).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=6)) + raw[cut + draw(st.integers(0, 3)):]
    return raw


inputs = st.one_of(st.binary(max_size=300), mutated(), st.sampled_from(SEEDS),
                   st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
                   st.integers(1, 300).map(lambda n: b'{"a":' * n + b"1" + b"}" * n))


def _verdict(codec: Codec, raw: bytes) -> Event | str:
    try:
        return codec.decode(raw)
    except EventError as exc:
        assert exc.reason in DEAD_LETTER_REASONS, exc.reason
        assert exc.detail
        return exc.reason


@FUZZ
@given(inputs)
def test_any_bytes_become_an_event_or_a_known_reason(raw: bytes) -> None:
    verdict = _verdict(CODEC, raw)
    if isinstance(verdict, Event):
        # the exhaustive path agrees with the fast one on every accepted record
        assert CODEC._exhaustive(raw.rstrip(b"\r\n")) == verdict
        assert routing_key(raw) == verdict.customer.encode()
    else:
        routing_key(raw)                      # never raises either


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=64), st.just(b"\xef\xbb\xbf"),
                          st.just(b"\xef"), st.just(b"\xbb\xbf")), max_size=30),
       st.integers(8, 200))
def test_the_line_splitter_keeps_every_line_and_bounds_each(chunks: list[bytes],
                                                            limit: int) -> None:
    splitter = LineSplitter(limit)
    out: list[bytes] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    out += splitter.end()
    whole = b"".join(chunks).removeprefix(b"\xef\xbb\xbf")   # a signature before the first line
    expected = [line for line in whole.split(b"\n") if line.strip()]
    assert len(out) == len(expected)
    for got, want in zip(out, expected, strict=True):
        body = got.rstrip(b"\n")
        assert body == want if len(want) <= limit + 1 else body == want[:limit + 2]


def _ledger(lines: list[bytes]) -> tuple[bytes, list[str]]:
    processor = Processor(RULES, MemoryStore(), clock=None)
    entries: list[bytes] = []
    reasons: list[str] = []
    for i in range(0, len(lines), 97):
        result = processor.process(lines[i:i + 97])
        entries += [orjson.dumps(e.to_json()) for e in result.entries]
        reasons += [d.reason for d in result.dead_letters]
    final = processor.advance_to(processor.max_event_time)
    entries += [orjson.dumps(e.to_json()) for e in final.entries]
    return b"\n".join(sorted(entries)), reasons


RULES = load_rules([ROOT / "rules"])
GOOD = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=21, customers=25, days=2))]
CLEAN, CLEAN_DEAD = _ledger(GOOD)


def _invalid(raw: bytes) -> bool:
    return not isinstance(_verdict(DEFAULT, raw), Event)   # the limits the Processor uses


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.integers(0, len(GOOD)), inputs.filter(_invalid)), max_size=40))
def test_interleaved_invalid_lines_leave_the_ledger_byte_identical(
        poison: list[tuple[int, bytes]]) -> None:
    lines = list(GOOD)
    for at, raw in sorted(poison, key=lambda p: -p[0]):
        lines.insert(at, raw)
    ledger, reasons = _ledger(lines)
    assert not CLEAN_DEAD
    assert ledger == CLEAN
    assert len(reasons) == len(poison)        # every invalid line dead-lettered, with a reason
