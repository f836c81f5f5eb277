"""The codec cannot be crashed: every input of issue 8 becomes an event or a dead-letter reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.catalogue import active
from valeur_monitor.codec import Codec, decode, routing_key
from valeur_monitor.engine.event import parse_time
from valeur_monitor.errors import EventError
from valeur_monitor.kafka.produce import customer_key

pytestmark = pytest.mark.unit

BASE = {"id": "e1", "type": "request.opened", "time": "2026-11-02T10:00:00Z", "customer": "c1"}


def _reason(raw: bytes | str) -> str:
    with pytest.raises(EventError) as info:
        decode(raw)
    return info.value.reason


def _with(**fields: object) -> bytes:
    return json.dumps({**BASE, **fields}).encode()


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"id":"e1","type":"request.opened","time":"2026-11-02T10:00:00Z",'
     b'"customer":"h8\xff\xfe\xc3"}', "bad_encoding"),
    (b'{"id":"e1","type":"request.opened","time":"2026-11-02T10:00:00Z","customer":"c",'
     b'"data":{"x":"\\ud800"}}', "bad_encoding"),
    (b'{"data":' + b"[" * 1000 + b"]" * 1000 + b"}", "too_deep"),
    (b"[" * 600_000 + b"]" * 600_000, "too_large"),
    (b'{"data":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}", "too_deep"),
    (_with(type="request.status_changed", data={"status": []}), "invalid_data"),
    (_with(type="request.status_changed", data={"status": {"a": 1}}), "invalid_data"),
    (_with(time="0001-01-01T00:00:00+14:00"), "bad_time"),
    (_with(time="9999-12-31T23:59:59Z"), "bad_time"),
    (_with(time="1969-12-31T23:59:59Z"), "bad_time"),
    (_with(time="20261102T100000Z"), "bad_time"),
    (_with(time="2026-W45-1T10:00:00Z"), "bad_time"),
    (_with(time="2026-11-02"), "bad_time"),
    (_with(time="2026-02-29T10:00:00Z"), "bad_time"),
    (_with(time="2026-11-02T10:00:00Z\n"), "bad_time"),
    (_with(type="callback.promised", data={"promised_at": "9999-12-31T23:59:59Z"}),
     "invalid_data"),
    (_with(data={"n": 2**64}), "bad_number"),
    (_with(data={"n": [-(2**63) - 1]}), "bad_number"),
    (b'{"id":"e1","type":"request.opened","time":"2026-11-02T10:00:00Z","customer":"c",'
     b'"data":{"x":1e999}}', "bad_number"),
    (b'{"id":"e1","type":"survey.answered","time":"2026-11-02T10:00:00Z","customer":"c",'
     b'"data":{"score":-1e999}}', "bad_number"),
    (b"1e999", "bad_number"),
    (_with(extra=1), "bad_field"),
    (_with(channel="pigeon"), "bad_field"),
    (_with(channel=None), "bad_field"),
    (_with(ref=None), "bad_field"),
    (_with(type="survey.answered", data={"score": 7}), "invalid_data"),
    (_with(type="request.opened", data={"tier": "platinum"}), "invalid_data"),
    (_with(type="request.resolved", data={"agent_replies": 1.5}), "invalid_data"),
    (_with(data={"agent": 12}), "invalid_data"),
    (b'{"specversion":"1.0","id":"x","type":"request.opened","time":"2026-11-02T10:00:00Z",'
     b'"subject":"c"}', "missing_field"),
    (b"", "malformed_json"),
    (b"   ", "malformed_json"),
    (b'"just a string"', "not_an_object"),
    (b"null", "not_an_object"),
    ("text with a lone \ud800 surrogate", "bad_encoding"),
])
def test_every_poison_record_has_a_reason(raw: bytes | str, reason: str) -> None:
    assert _reason(raw) == reason


def test_size_limit_is_a_setting() -> None:
    codec = Codec(active(), max_bytes=256)
    record = _with(data={"note": "x" * 300})
    with pytest.raises(EventError) as info:
        codec.decode(record)
    assert info.value.reason == "too_large"
    assert decode(record).data["note"] == "x" * 300   # the default limit is 1 MiB


def test_valid_edges_are_accepted() -> None:
    assert decode(_with(time="1970-01-01T00:00:00Z")).time == 0
    assert decode(_with(time="8999-12-31T23:59:59.999999-12:00")).time > 0
    assert decode(_with(time="2024-02-29T10:00:00.5+01:00")).time % 1000 == 500
    assert decode(_with(data={"n": 2**64 - 1, "m": -(2**63), "deep": [[[1]]]})).data["n"]
    assert decode(_with(type="request.resolved", data={"agent_replies": 2.0})).data
    ce = {"specversion": "1.0", "id": "x", "source": "s", "type": "request.opened",
          "time": "2026-11-02T10:00:00Z", "subject": "c9", "customer": "c1", "traceparent": "t"}
    assert decode(orjson.dumps(ce)).customer == "c1"   # the `customer` extension wins


def test_one_routing_key_with_the_decoders_precedence() -> None:
    both = orjson.dumps({"specversion": "1.0", "id": "x", "source": "s",
                         "type": "request.opened", "time": "2026-11-02T10:00:00Z",
                         "subject": "subj", "customer": "cust"})
    only_customer = orjson.dumps({"specversion": "1.0", "id": "x", "source": "s",
                                  "type": "request.opened", "time": "2026-11-02T10:00:00Z",
                                  "customer": "cust"})
    for raw in (both, only_customer):
        assert routing_key(raw) == customer_key(raw) == decode(raw).customer.encode()
    assert routing_key(_with(subject="other")) == b"c1"   # canonical: `subject` means nothing
    assert routing_key(_with()) == b"c1"
    for bad in (b"{oops", b"[1]", b'{"customer": 3}', b'{"data":' + b"[" * 5000 + b"]" * 5000
                + b"}", b'{"customer":"\xff"}'):
        assert routing_key(bad) is None


@settings(max_examples=400, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(8999, 12, 30)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59), st.sampled_from(["", ".5", ".123", ".1239"]),
       st.booleans())
def test_parse_time_is_exact(moment: datetime, offset: int, fraction: str, zulu: bool) -> None:
    """The fast arithmetic of parse_time against datetime's, to the millisecond."""
    zone = timezone(timedelta(minutes=0 if zulu else offset))
    local = moment.replace(microsecond=0, tzinfo=zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + (
        "Z" if zulu else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])
    expected = (local - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    expected += int((fraction[1:] + "00")[:3]) if fraction else 0
    assert parse_time(text) == expected, text
