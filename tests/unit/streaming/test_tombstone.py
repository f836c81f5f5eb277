"""A Kafka tombstone (a record whose value is null) on the events topic is bad input like any
other: a dead letter with its reason, and the batch goes on (no exception out of the worker's
process step, which would otherwise be retried for ever on the same offsets)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.unit.streaming.fakes import records_for
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.clock import StreamClock
from valeur_monitor.streaming.outputs import OutputTopics, Record
from valeur_monitor.streaming.pipeline import StreamPipeline

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
RULES = load_rules([ROOT / "rules"])


def test_a_tombstone_is_dead_lettered_and_the_batch_goes_on() -> None:
    clock = StreamClock("event", RULES.settings.lateness, wall=lambda: 0)
    p = StreamPipeline(RULES, MemoryStore(), events_topic="events",
                       outputs=OutputTopics("scores", "alerts", "dead"), clock=clock)
    p.assign({0}, 1)
    lines = [orjson.dumps({"id": f"e{i}", "type": "complaint.filed", "customer": "c1",
                           "time": f"2027-03-22T10:{i}0:00+01:00", "data": {}}) for i in (1, 2)]
    first, second = records_for(lines, 1)
    tombstone = Record(0, first.offset + 1, b"c1", None)  # type: ignore[arg-type]
    step = p.process_batch([first, tombstone, second._replace(offset=first.offset + 2)])
    # e1 released (e2 is 10 minutes later: beyond the 5-minute lateness), e2 still buffered
    assert [e.id for e in step.result.events] == ["e1"]
    assert len(step.result.dead_letters) == 1
    assert step.result.dead_letters[0].reason


@pytest.mark.parametrize("value", [None, 5, 1.5, ["x"], {"id": "e1"}])
def test_the_codec_refuses_what_is_not_a_record_with_a_reason(value: object) -> None:
    from valeur_monitor import reasons as R
    from valeur_monitor.codec import decode
    from valeur_monitor.errors import EventError

    with pytest.raises(EventError) as caught:
        decode(value)
    assert caught.value.reason == R.MALFORMED_JSON
    assert ("tombstone" if value is None else "not bytes") in caught.value.detail


def test_the_processor_dead_letters_a_null_record_and_goes_on() -> None:
    from valeur_monitor import reasons as R
    from valeur_monitor.service import Processor

    good = orjson.dumps({"id": "e1", "type": "complaint.filed", "customer": "c1",
                         "time": "2027-03-22T10:10:00+01:00", "data": {}})
    batch = Processor(RULES, MemoryStore()).ingest([None, good, 7])  # type: ignore[list-item]
    assert batch.latest is not None              # e1 was decoded and ingested
    result = batch.result
    assert [(d.reason, d.raw, d.index) for d in result.dead_letters] == [
        (R.MALFORMED_JSON, b"", 0), (R.MALFORMED_JSON, b"", 2)]


@pytest.mark.parametrize("record", [None, 7, "text with a lone \ud800 surrogate",
                                    bytearray(b"{not json"), memoryview(b"[1]")])
def test_the_processor_and_the_codec_agree_on_a_records_bytes_and_reason(record: object) -> None:
    """One home for a record's raw bytes: the dead letter keeps what `record_bytes` keeps, with
    the very reason and detail the codec raises for the same record."""
    from valeur_monitor.codec import decode, record_bytes
    from valeur_monitor.errors import EventError
    from valeur_monitor.service import Processor

    with pytest.raises(EventError) as caught:
        decode(record)
    kept, _ = record_bytes(record)
    letters = Processor(RULES, MemoryStore()).ingest([record]).result.dead_letters
    assert [(d.raw, d.reason, d.detail) for d in letters] == [
        (kept, caught.value.reason, caught.value.detail)]
    if isinstance(record, str):
        assert kept == record.encode("utf-8", "surrogatepass")   # the text is kept whole
