"""Records read back from our own output topics (score-updates, customer-alerts) by the
webhook feeder: anything unusable — a tombstone (null value), JSON that is not an object, a
missing customer, a score that is not a finite number, an `at` that is not a time — is refused
on the way in (logged and skipped), never kept pending where every later flush would fail."""

from __future__ import annotations

import orjson
import pytest

from valeur_monitor.webhooks.changes import notice_from_json, score_row_from_json

pytestmark = pytest.mark.unit

GOOD = {"customer": "c1", "score": -3.5, "at": "2027-03-22T10:00:00Z"}


def test_a_score_row_is_read_whole() -> None:
    assert score_row_from_json(orjson.dumps(GOOD)) == GOOD
    assert score_row_from_json(orjson.dumps({**GOOD, "at": None, "score": 2})) is not None


@pytest.mark.parametrize("value", [
    None, b"", b"not json", b"[1, 2]", b"7", b"null",
    orjson.dumps({"score": 1.0}),
    orjson.dumps({**GOOD, "customer": ""}),
    orjson.dumps({**GOOD, "customer": 12}),
    orjson.dumps({**GOOD, "score": "1"}),
    orjson.dumps({**GOOD, "score": True}),
    orjson.dumps({**GOOD, "score": None}),
    b'{"customer": "c1", "score": 1e999}',
    orjson.dumps({**GOOD, "at": "yesterday"}),
    orjson.dumps({**GOOD, "at": 5}),
])
def test_an_unusable_score_row_is_refused(value: bytes | None) -> None:
    assert score_row_from_json(value) is None


@pytest.mark.parametrize("value", [None, b"", b"[]", b'{"kind": "alert"}',
                                   orjson.dumps({"kind": "alert", "customer": "c1",
                                                 "time": "soon"})])
def test_an_unusable_alert_record_is_refused(value: bytes | None) -> None:
    assert notice_from_json(value) is None
