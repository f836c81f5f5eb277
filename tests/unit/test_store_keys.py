"""Redis key layout and the Redis store's pure helpers (no server)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.store.connect import reason as _reason
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.redis import decode_entry, encode_entry, redact

pytestmark = pytest.mark.unit

ODD_IDS = ["cust-00001", "a", "clé-é", "x}y", "{z}", "}", "{", "a}:state", "", "c:1", "ü}{"]


@pytest.mark.parametrize("customer", ODD_IDS)
def test_a_customer_key_names_its_cluster_slot_and_its_customer(customer: str) -> None:
    keys = Keys("vm:")
    key = keys.value(customer)
    assert key.startswith("vm:{c:")
    assert keys.customer_of(key) == customer
    # the legacy keys of the same customer (layout 1) hash to the same slot
    assert {key_slot(k.encode()) for k in (key, *keys.legacy(customer))} == \
        {key_slot(key.encode())}


def test_customers_are_spread_over_slots() -> None:
    keys = Keys()
    slots = {key_slot(keys.value(f"cust-{i:05d}").encode()) for i in range(1000)}
    assert len(slots) > 900


def test_no_two_customers_share_a_key() -> None:
    keys = Keys()
    seen: dict[str, str] = {}
    for customer in [*ODD_IDS, "a}:score", "a}:ledger}:state", "x}y}:reasons"]:
        for key in (keys.value(customer), *keys.globals()):
            owner = seen.setdefault(key, customer if key not in keys.globals() else "*")
            assert owner in (customer, "*"), (key, owner, customer)


def test_key_names() -> None:
    keys = Keys("t1:")
    assert keys.value("c-1") == "t1:{c:c-1}"
    assert keys.legacy("c-1") == ("t1:{c:c-1}:state", "t1:{c:c-1}:score",
                                  "t1:{c:c-1}:reasons", "t1:{c:c-1}:ledger")
    assert keys.globals() == ("t1:ranking", "t1:due", "t1:watermark", "t1:epoch")
    assert Keys().prefix == "vm:"
    assert Keys("a*b?:").pattern() == "a\\*b\\?:*"
    assert Keys("a*:").values_pattern() == "a\\*:{c:*}"
    assert Keys("a*:").legacy_pattern() == "a\\*:{c:*}:state"


@pytest.mark.parametrize("prefix", ["a{b:", "x}:"])
def test_prefix_may_not_hold_hash_tag_braces(prefix: str) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        Keys(prefix)


def test_global_keys_never_collide_with_customer_keys() -> None:
    keys = Keys()
    customer_keys = {keys.value(c) for c in ODD_IDS}
    assert not customer_keys & set(keys.globals())


@pytest.mark.parametrize("url,shown", [
    ("redis://127.0.0.1:16379/0", "redis://127.0.0.1:16379/0"),
    ("redis://:pw@host:1/2", "redis://:***@host:1/2"),
    ("rediss://user:p%40ss@host/0", "rediss://user:***@host:6379/0"),
    ("redis://user:pw@[::1]:6379/0", "redis://user:***@[::1]:6379/0"),
    ("unix:///tmp/redis.sock?db=1", "unix:///tmp/redis.sock?db=1"),
])
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_reason_prefers_the_os_message() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as os_error:
            raise RedisConnectionError("Error 111 connecting to h:1. Connection refused.") \
                from os_error
    except RedisConnectionError as exc:
        assert _reason(exc) == "Connection refused"
    assert _reason(RedisConnectionError("Error 111 connecting to h:1. Connection refused.")) \
        == "Connection refused"
    assert _reason(RedisConnectionError("")) == "ConnectionError"


def test_ledger_entries_round_trip_exactly() -> None:
    values = [-2.0, 0.1 + 0.2, 1e-300, 3.0]
    for seq, value in enumerate(values, 1):
        entry = LedgerEntry(customer="c", seq=seq, rule="r", outcome="broken",
                            dimension="time", amount=abs(value), value=value,
                            time=1_793_604_746_123, events=("e1", "e2"), explain="é",
                            ref="req-1", late=bool(seq % 2))
        assert decode_entry(encode_entry(entry)) == entry
