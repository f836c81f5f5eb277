"""Decoding records: canonical JSON, CloudEvents, and a precise reason for every refusal."""

from __future__ import annotations

import orjson
import pytest

from valeur_monitor.catalogue import active
from valeur_monitor.codec import Codec, decode
from valeur_monitor.engine.event import format_time, parse_time, to_canonical
from valeur_monitor.errors import EventError

pytestmark = pytest.mark.unit

GOOD = {"id": "e1", "type": "contact.inbound", "time": "2026-11-02T09:15:00+01:00",
        "customer": "c1", "ref": "r1", "channel": "phone", "team": "billing",
        "data": {"topic": "invoice"}}


def test_canonical_event_round_trip() -> None:
    event = decode(orjson.dumps(GOOD))
    assert event.time == parse_time("2026-11-02T08:15:00Z")
    assert (event.customer, event.ref, event.channel, event.team) == ("c1", "r1", "phone",
                                                                      "billing")
    again = decode(orjson.dumps(to_canonical(event)))
    assert again == event


def test_cloudevents_structured_mode() -> None:
    ce = {"specversion": "1.0", "id": "x1", "source": "helpdesk", "type": "callback.promised",
          "time": "2026-11-02T09:00:00Z", "subject": "c9", "ref": "cb1", "channel": "phone",
          "datacontenttype": "application/json",
          "data": {"promised_at": "2026-11-02T14:00:00+01:00"}}
    event = decode(orjson.dumps(ce))
    assert (event.id, event.customer, event.ref, event.source) == ("x1", "c9", "cb1", "helpdesk")


@pytest.mark.parametrize(("record", "reason"), [
    (b"{oops", "malformed_json"),
    (b"[1, 2]", "not_an_object"),
    (orjson.dumps({**GOOD, "id": ""}), "missing_field"),
    (orjson.dumps({**GOOD, "customer": 42}), "bad_field"),
    (orjson.dumps({**GOOD, "type": "contact.teleported"}), "unknown_type"),
    (orjson.dumps({**GOOD, "time": "2026-11-02T09:15:00"}), "bad_time"),
    (orjson.dumps({**GOOD, "time": "yesterday"}), "bad_time"),
    (orjson.dumps({**GOOD, "data": {}}), "invalid_data"),
    (orjson.dumps({**GOOD, "data": []}), "bad_field"),
    (orjson.dumps({**GOOD, "type": "request.status_changed", "data": {"status": "asleep"}}),
     "invalid_data"),
    (orjson.dumps({**GOOD, "type": "survey.answered", "data": {"score": True}}), "invalid_data"),
    (orjson.dumps({"specversion": "0.3", "id": "x"}), "bad_field"),
])
def test_refusals_carry_a_stable_reason(record: bytes, reason: str) -> None:
    with pytest.raises(EventError) as info:
        decode(record)
    assert info.value.reason == reason


def test_format_time_is_utc_rfc3339() -> None:
    assert format_time(parse_time("2026-11-02T09:15:00+01:00")) == "2026-11-02T08:15:00Z"
    assert format_time(1) == "1970-01-01T00:00:00.001Z"


def test_remembered_valid_data_never_admits_different_data() -> None:
    """The fast path remembers string-valued `data` it found valid; any other `data` (another
    string, another kind of value equal in Python, a missing key) is still checked."""
    codec = Codec(active())
    opened = {**GOOD, "type": "request.opened", "data": {"topic": "invoice", "tier": "gold"}}
    for _ in range(2):   # the second time from memory
        assert codec.decode(orjson.dumps(opened)).data == {"topic": "invoice", "tier": "gold"}
    for data, reason in [({"topic": "invoice", "tier": "platinum"}, "invalid_data"),
                         ({"topic": "", "tier": "gold"}, "invalid_data"),
                         ({"topic": "invoice", "tier": ["gold"]}, "invalid_data")]:
        with pytest.raises(EventError) as info:
            codec.decode(orjson.dumps({**opened, "data": data}))
        assert info.value.reason == reason, data
    resolved = {**GOOD, "type": "request.resolved"}
    assert codec.decode(orjson.dumps({**resolved, "data": {"reopened": True}})).data == {
        "reopened": True}
    with pytest.raises(EventError):   # 1 == True in Python, not in the catalogue
        codec.decode(orjson.dumps({**resolved, "data": {"reopened": 1}}))
    status = {**GOOD, "type": "request.status_changed", "data": {"status": "open"}}
    assert codec.decode(orjson.dumps(status)).data == {"status": "open"}
    for data in [{"topic": "invoice", "tier": "gold"},   # known valid data, another type
                 {"agent": "a1"}]:                       # its required field missing
        with pytest.raises(EventError) as info:
            codec.decode(orjson.dumps({**status, "data": data}))
        assert info.value.reason == "invalid_data", data


def test_fast_path_reads_the_record_fields_in_their_order() -> None:
    # Codec._fast unpacks msgspec.structs.astuple(record) by position: a field added to or
    # moved in the Record struct must be unpacked there too
    from valeur_monitor.codec_types import Record

    assert Record.__struct_fields__ == (
        "id", "type", "time", "customer", "ref", "source", "channel", "team", "data",
        "specversion", "subject", "datacontenttype", "dataschema")
