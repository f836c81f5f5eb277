"""Every dead-letter reason is defined once and pinned in docs/events.md with a working example."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from valeur_monitor.codec import decode
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.errors import EventError
from valeur_monitor.reasons import DEAD_LETTER_REASONS
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<reason>[a-z_]+)` \| [^|]+ \| (?P<example>.+) \|$", re.MULTILINE)


def _table() -> dict[str, str]:
    text = (ROOT / "docs" / "events.md").read_text()
    section = text[text.index("## Dead letters"):]
    return {m["reason"]: m["example"] for m in ROW.finditer(section)}


def _record(example: str) -> bytes:
    return example.split("`")[1].encode()


def test_every_reason_is_documented_once_and_only_those() -> None:
    assert len(set(DEAD_LETTER_REASONS)) == len(DEAD_LETTER_REASONS)
    assert list(_table()) == list(DEAD_LETTER_REASONS)


@pytest.mark.parametrize("reason", ["malformed_json", "bad_number", "not_an_object",
                                    "missing_field", "bad_field", "unknown_type", "bad_time",
                                    "invalid_data"])
def test_each_codec_example_gets_its_reason(reason: str) -> None:
    with pytest.raises(EventError) as info:
        decode(_record(_table()[reason]))
    assert info.value.reason == reason


def test_the_examples_described_in_words() -> None:
    table = _table()
    encoding = _record(table["bad_encoding"]).replace(b"\\xff", b"\xff")
    sized = b'{"id":"e1","note":"' + b"x" * 2_000_000 + b'"}'
    deep = b'{"data":' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}"
    for raw, reason in ((encoding, "bad_encoding"), (sized, "too_large"), (deep, "too_deep")):
        with pytest.raises(EventError) as info:
            decode(raw)
        assert info.value.reason == reason
    processor = Processor(load_rules([ROOT / "rules"]), MemoryStore(), clock=None)
    recent = orjson.dumps({"id": "e9", "type": "visit.completed", "customer": "c1",
                           "time": "2026-11-20T10:00:00Z"})
    assert not processor.process([recent]).dead_letters
    for reason in ("future_time", "too_late"):
        result = processor.process([_record(table[reason])])
        assert [d.reason for d in result.dead_letters] == [reason]
