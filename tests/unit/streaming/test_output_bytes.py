"""The output topics' values are written straight to bytes, byte for byte the rows' JSON."""

from __future__ import annotations

import math

import orjson
import pytest

from valeur_monitor.engine.ledger import DIMENSIONS, LedgerEntry, Notice
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.state import CustomerState, Score
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.sinks.files import score_row
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.outputs import (
    OutputTopics,
    _timed,
    build_messages,
    ledger_value,
    notice_value,
    score_value,
)

# strings JSON escapes (quotes, backslashes, control characters), non-ASCII text, a key-like
# `,"time":1` inside a string; floats around the points where writers change notation
TEXTS = ["", 'a"b', "\\", "\x00\x1f\x7f", "\b\f\n\r\t", "é 😀 \u2028", ',"time":1', "</x>"]
FLOATS = [0.0, -0.0, 1e-7, 5e-7, 1.5e-6, 1e-4, 0.1, 1 / 3, 2.0, -3.5, 1e15, 9.9e15, 1e16,
          -1e16, 1.2e17, 1e300, math.inf, -math.inf, math.nan, 123456.7891234]


def _entry(text: str, amount: float, **kw: object) -> LedgerEntry:
    fields: dict[str, object] = {
        "customer": f"c{text}", "seq": 7, "rule": f"r{text}", "outcome": "kept",
        "dimension": "time", "amount": amount, "value": -amount, "time": 1_764_460_800_123,
        "events": (f"e{text}", "e2"), "explain": f"x{text}"}
    fields.update(kw)
    return LedgerEntry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", TEXTS)
def test_a_ledger_entry_is_the_bytes_of_its_json_row(text: str) -> None:
    for amount in FLOATS:
        for extra in ({}, {"ref": text, "team": "t", "channel": "c", "late": True,
                           "rules_version": "v1"}, {"time": 0, "events": ()},
                      {"time": 1_764_460_800_000}):
            entry = _entry(text, amount, **extra)
            assert ledger_value(entry) == orjson.dumps(entry.to_json())


@pytest.mark.parametrize("text", TEXTS)
def test_an_alert_is_the_bytes_of_its_json_row(text: str) -> None:
    for score in FLOATS:
        for ref in ("", text):
            notice = Notice("alert", f"a{text}", f"c{text}", 1_764_460_801_000, text, ref,
                            score)
            assert notice_value(notice) == orjson.dumps(notice.to_json())


def _state(customer: str, values: list[float], reasons: dict[str, float], at: int
           ) -> CustomerState:
    state = CustomerState(customer)
    dims = {d: v for d, v in zip(DIMENSIONS[::2], values[3:], strict=False)}
    state.score = Score(values[0], dims, at, values[1], values[2])
    state.reasons = reasons
    return state


@pytest.mark.parametrize("text", TEXTS)
def test_a_score_update_is_the_bytes_of_its_score_row(text: str) -> None:
    for i, x in enumerate(FLOATS):
        values = [x, abs(x), FLOATS[i - 1], FLOATS[i - 2], -x, 0.1234567891]
        for reasons in ({}, {"b": x}, {"a": 1.0, "b": -1.0, "c": 0.5, "d": x, text: 2e-7}):
            for at in (0, 1_764_460_800_000):
                state = _state(f"c{text}", values, reasons, at)
                for version in ("", "v1"):
                    want = orjson.dumps(score_row(ScoreView.of(state), rules_version=version))
                    assert score_value(state, version) == want


def test_a_simulated_stream_publishes_the_rows_json() -> None:
    processor = Processor(load_rules(["rules"]), MemoryStore())
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=4, customers=40, days=4))]
    result = processor.process(lines)
    result.absorb(processor.advance_to(processor.max_event_time + 86_400_000))
    messages = build_messages(result, OutputTopics("s", "a", "d", "led"))
    got = {t: [m.value for m in messages if m.topic == t] for t in ("led", "s", "a")}
    assert got["led"] == [orjson.dumps(e.to_json()) for e in result.entries]
    scored = [c for c in dict.fromkeys(e.customer for e in result.entries)
              if c in result.changed]
    assert got["s"] == [orjson.dumps(score_row(ScoreView.of(result.changed[c]),
                                               rules_version=result.rules_version))
                        for c in scored]
    assert got["a"] == [orjson.dumps(n.to_json()) for n in result.notices if n.kind == "alert"]
    assert got["led"] and got["s"] and got["a"]


def test_a_row_without_its_integer_time_is_refused_not_published_as_is() -> None:
    assert _timed(b'{"a":1,"time":5,"b":",\\"time\\":5"}', 5, {}) == (
        b'{"a":1,"time":"1970-01-01T00:00:00.005Z","b":",\\"time\\":5"}')
    with pytest.raises(ValueError, match="no integer time 6"):
        _timed(b'{"a":1,"time":5}', 6, {})
