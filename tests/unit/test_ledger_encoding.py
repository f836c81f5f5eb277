"""Ledger entries in Redis: a compact positional form, exact round trips, older maps still read."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.store.redis_commit import decode_entry, encode_entry

text = st.text(max_size=20)
entries = st.builds(
    LedgerEntry, customer=text, seq=st.integers(0, 10**9), rule=text, outcome=text,
    dimension=text, amount=st.floats(allow_nan=False), value=st.floats(allow_nan=False),
    time=st.integers(0, 2**53), events=st.lists(text, max_size=3).map(tuple), explain=text,
    ref=text, team=text, channel=text, late=st.booleans(), rules_version=text)


@settings(max_examples=200, deadline=None)
@given(entries)
def test_round_trip_and_older_form(entry: LedgerEntry) -> None:
    data = encode_entry(entry)
    assert decode_entry(data) == entry
    assert decode_entry(msgspec.msgpack.encode(entry)) == entry


def test_every_field_is_kept_and_the_form_is_smaller() -> None:
    # A field added to LedgerEntry must be added to the stored form (store/redis_commit.py).
    assert LedgerEntry.__struct_fields__ == (
        "customer", "seq", "rule", "outcome", "dimension", "amount", "value", "time", "events",
        "explain", "ref", "team", "channel", "late", "rules_version")
    entry = LedgerEntry("cust-00095", 85, "happy-survey", "matched", "experience", 2.0, 2.0,
                        1794147132000, ("evt-1-61413",), "Survey answered 5/5", "req-008708",
                        "billing", "sms", False, "7ba90853342e")
    assert len(encode_entry(entry)) < 0.65 * len(msgspec.msgpack.encode(entry))
