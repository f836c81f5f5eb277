"""Seeds and mutations shared by the hypothesis fuzz test and the atheris harness."""

from __future__ import annotations

import orjson

VALID: list[dict[str, object]] = [
    {"id": "e1", "type": "request.opened", "time": "2026-11-02T09:15:00+01:00",
     "customer": "c1", "ref": "r1", "channel": "email", "team": "billing",
     "data": {"topic": "invoice", "tier": "gold"}},
    {"id": "e2", "type": "callback.promised", "time": "2026-11-02T10:00:00Z", "customer": "c2",
     "ref": "cb1", "data": {"promised_at": "2026-11-02T14:00:00+01:00", "agent": "a1"}},
    {"id": "e3", "type": "survey.answered", "time": "2026-11-03T08:00:00.250Z",
     "customer": "c3", "data": {"score": 4}},
    {"id": "e4", "type": "call.abandoned", "time": "2026-11-03T08:00:00Z", "customer": "c4",
     "ref": "call-1", "channel": "phone", "data": {"queue": "billing", "wait_s": 95.5}},
    {"specversion": "1.0", "id": "e5", "source": "helpdesk", "type": "visit.scheduled",
     "time": "2026-11-04T08:00:00Z", "subject": "c5", "traceparent": "00-ab",
     "data": {"window_start": "2026-11-05T08:00:00Z", "window_end": "2026-11-05T12:00:00Z"}},
    {"id": "e6", "type": "request.status_changed", "time": "2026-11-04T09:00:00Z",
     "customer": "c6", "data": {"status": "on_hold", "nested": {"a": [1, 2, {"b": None}]}}},
]
SEEDS: list[bytes] = [orjson.dumps(r) for r in VALID] + [
    b'{"id":"p1","type":"request.opened","time":"2026-11-02T10:00:00Z","customer":"h8\xff\xfe"}',
    b'{"data":' + b"[" * 40 + b"]" * 40 + b"}",
    b'{"id":"p2","type":"request.status_changed","time":"2026-11-02T10:00:00Z",'
    b'"customer":"c","data":{"status":[]}}',
    b'{"id":"p3","type":"request.opened","time":"0001-01-01T00:00:00+14:00","customer":"c"}',
    b'{"id":"p4","type":"request.opened","time":"9999-12-31T23:59:59Z","customer":"c"}',
    b'{"id":"p5","type":"request.opened","time":"2026-11-02T10:00:00Z","customer":"c",'
    b'"data":{"n":123456789012345678901234567890}}',
    b'{"id":"p6","type":"survey.answered","time":"2026-11-02T10:00:00Z","customer":"c",'
    b'"data":{"score":1e999}}',
    b'{"id":"p7","type":"request.opened","time":"2026-W45-1T10:00:00Z","customer":"c"}',
    b'{"id":"p8","type":"request.opened","time":"2026-11-02T10:00:00Z","customer":"c",'
    b'"data":{"x":"\\ud800"}}',
    b"[]", b"null", b"1e999", b"{", b"", b'"\\u0000"',
]
