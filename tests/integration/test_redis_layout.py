"""Key layout 2 on a real Redis: one key per customer, the window bounded by count and age
inside the commit script, and stores of another layout refused with a clear message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.errors import StoreError, StorePermanentError, StoreWriterConflict
from valeur_monitor.read.redis import RedisReader
from valeur_monitor.store.base import Commit
from valeur_monitor.store.cached import CachedStore
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.redis import RedisStore
from valeur_monitor.store.redis_commit import commit_call

pytestmark = pytest.mark.integration

DAY = 86_400_000
T0 = 1_790_000_000_000


def entry(customer: str, seq: int, time: int) -> LedgerEntry:
    return LedgerEntry(customer, seq, "rule-a", "kept", "time", 1.0, 1.0, time, (f"e{seq}",),
                       f"explained {seq}")


def commit_of(state: CustomerState, new: list[LedgerEntry], watermark: int) -> Commit:
    state.seq = max([state.seq, *(e.seq for e in new)])
    return Commit(states={state.customer: state}, due={state.customer: -1}, entries=new,
                  watermark=watermark)


@pytest.fixture
def store(redis_db_url: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_db_url, ledger_cap=4, ledger_max_age=10 * DAY)
    yield s
    s.close()


def test_one_key_per_customer_and_the_window_bounded_by_count_then_age(
        store: RedisStore, redis_client: redis.Redis) -> None:
    state = CustomerState("c-1")
    store.commit(commit_of(state, [entry("c-1", s, T0 + s * DAY) for s in (1, 2, 3)],
                           T0 + 3 * DAY))
    assert sorted(k.decode() for k in redis_client.keys("vm:{*")) == ["vm:{c:c-1}"]
    assert [e.seq for e in store.ledger("c-1")] == [1, 2, 3]
    # count: three more entries, only the last four kept
    store.commit(commit_of(state, [entry("c-1", s, T0 + s * DAY) for s in (4, 5, 6)],
                           T0 + 6 * DAY))
    assert [e.seq for e in store.ledger("c-1")] == [3, 4, 5, 6]
    # a retried commit (reply lost) appends nothing twice
    again = commit_of(state, [entry("c-1", 6, T0 + 6 * DAY)], T0 + 6 * DAY)
    store.commit(again)
    assert [e.seq for e in store.ledger("c-1")] == [3, 4, 5, 6]
    # age: stream time 15 days on drops entries older than 10 days behind it (days 3 and 4),
    # even in a commit that brings no entry for the customer
    store.commit(commit_of(state, [], T0 + 15 * DAY))
    assert [e.seq for e in store.ledger("c-1")] == [5, 6]
    assert store.ledger("c-1", 1)[0] == entry("c-1", 6, T0 + 6 * DAY)
    reader = RedisReader(store.client)
    assert [e.seq for e in reader.ledger("c-1")] == [5, 6]
    assert reader.last_entries(["c-1", "nobody"]) == {"c-1": entry("c-1", 6, T0 + 6 * DAY)}
    assert reader.score("c-1") == store.score("c-1")
    assert store.load(["c-1"])["c-1"] == state


def test_a_layout_1_store_is_refused_by_the_store_and_the_reader(
        redis_db_url: str, redis_client: redis.Redis) -> None:
    # what a version before issue 12 wrote: four keys per customer, an epoch without layout
    redis_client.set("vm:{c:c-1}:state", b"\x80")
    redis_client.hset("vm:{c:c-1}:score", mapping={"total": "1.0", "seq": "1"})
    redis_client.hset("vm:epoch", mapping={"id": "old", "commits": "12"})
    store = RedisStore.from_url(redis_db_url)
    try:
        with pytest.raises(StorePermanentError, match="layout 1") as caught:
            store.commit(commit_of(CustomerState("c-2"), [], T0))
        assert "Nothing was written" in str(caught.value)
        assert redis_client.exists("vm:{c:c-2}") == 0
        with pytest.raises(StoreError, match="layout 1"):
            RedisReader(store.client).score("c-1")
    finally:
        store.close()


def test_the_write_through_cache_reads_redis_once_and_forgets_after_a_failure(
        store: RedisStore, redis_client: redis.Redis) -> None:
    cached = CachedStore(store)
    state = cached.load(["c-1"])["c-1"]
    cached.commit(commit_of(state, [entry("c-1", 1, T0)], T0))
    assert cached.load(["c-1"])["c-1"] is state and cached.loaded == 1
    redis_client.hset("vm:epoch", "id", "someone-else")   # the data-loss check will refuse
    with pytest.raises(StoreError):
        cached.commit(commit_of(state, [entry("c-1", 2, T0)], T0))
    assert cached.cache == {}


def test_a_pipelined_run_writes_what_a_direct_run_writes(redis_db_url: str,
                                                         redis_client: redis.Redis) -> None:
    import orjson

    from tests.integration.test_redis_store import dump
    from valeur_monitor.engine.rules import load_rules
    from valeur_monitor.read.factory import reader_of
    from valeur_monitor.runner.embedded import EmbeddedRunner
    from valeur_monitor.simulate import SimulationConfig, simulate

    rules = load_rules(["rules"])
    lines = [orjson.dumps(e) for e in simulate(SimulationConfig(seed=4, customers=120, days=4))]
    results = []
    # the last: flushed in script calls of 7 customers (each encoded while the one before is
    # applied); only the last moves the watermark, so it is the same at the end
    for prefix, pipelined, part in (("direct:", False, 0), ("piped:", True, 1000),
                                    ("parts:", True, 7)):
        # count-bounded windows: trimming by age is relative to the stream time of the commit
        # that writes the customer, which merging batches moves (docs/store.md)
        inner = RedisStore.from_url(redis_db_url, prefix=prefix, ledger_cap=20)
        store = CachedStore(inner, pipelined=pipelined, part=part)
        runner = EmbeddedRunner(rules, store)
        for i in range(0, len(lines), 300):
            runner.feed(lines[i:i + 300])
        report = runner.finish()
        assert store.loaded <= report.customers        # each customer read from Redis once
        assert reader_of(store).count() == report.customers
        store.close()
        results.append(dump(redis_client, prefix))
    assert results[0] == results[1] == results[2]
    assert any(k.endswith(":ledger") for k in results[0])


def test_a_flush_in_parts_keeps_each_customer_whole_and_the_watermark_for_the_last() -> None:
    from valeur_monitor.store.cached import split

    states = {c: CustomerState(c) for c in ("a", "b", "c", "d", "e")}
    merged = Commit(states=dict(states), due={"a": 5, "d": -1, "z": 9},
                    entries=[entry("d", 1, T0), entry("a", 1, T0), entry("d", 2, T0)],
                    watermark=T0)
    pieces = split(merged, 2)
    assert [list(p.states) for p in pieces] == [["a", "b"], ["c", "d"], ["e"]]
    assert [[(e.customer, e.seq) for e in p.entries] for p in pieces] == [
        [("a", 1)], [("d", 1), ("d", 2)], []]
    assert [p.due for p in pieces] == [{"a": 5}, {"d": -1}, {"z": 9}]
    assert {p.watermark for p in pieces} == {T0} and split(merged, 5) == [merged]
    keys = Keys("vm:")
    held = commit_call(keys, pieces[0], 20, 2 * DAY, watermark=False).call()[1]
    last = commit_call(keys, pieces[2], 20, 2 * DAY).call()[1]
    assert held[0] == "0" and last[0] == str(T0) and held[2] == last[2] != "0"   # same cutoff


def test_a_pipelined_commit_that_fails_is_raised_at_the_next_call(
        store: RedisStore, redis_client: redis.Redis) -> None:
    cached = CachedStore(store, pipelined=True, group=2)
    state = cached.load(["c-1"])["c-1"]
    cached.commit(commit_of(state, [entry("c-1", 1, T0)], T0))     # the first batch alone
    cached.commit(commit_of(state, [entry("c-1", 2, T0)], T0))   # waits for a third batch
    assert cached.due(T0 + DAY) == []                    # answered here, not by Redis
    cached.flush()
    assert [e.seq for e in store.ledger("c-1")] == [1, 2]
    redis_client.hset("vm:epoch", "id", "someone-else")   # the data-loss check will refuse
    cached.commit(commit_of(state, [entry("c-1", 3, T0)], T0))
    cached.commit(commit_of(state, [entry("c-1", 4, T0)], T0))   # a group: sent in background
    with pytest.raises(StoreError, match="lost data"):
        cached.flush()
    assert cached.cache == {}
    cached.flush()                                       # raised once, not again
    assert [e.seq for e in store.ledger("c-1")] == [1, 2]


def test_a_pipelined_cache_asks_redis_only_for_customers_it_held_at_the_start(
        store: RedisStore, redis_db_url: str, redis_client: redis.Redis) -> None:
    old = CustomerState("old")
    store.commit(commit_of(old, [entry("old", 1, T0)], T0))
    inner = RedisStore.from_url(redis_db_url, ledger_cap=4)
    cached = CachedStore(inner, pipelined=True, group=1)
    states = cached.load(["old", "new"])
    assert states["old"].seq == 1 and states["old"].score == old.score
    assert states["new"] == CustomerState("new") and cached.loaded == 1   # "new": not asked
    cached.commit(commit_of(states["new"], [entry("new", 1, T0)], T0))
    cached.flush()
    redis_client.hset("vm:epoch", "id", "someone-else")   # the data-loss check will refuse
    cached.commit(commit_of(states["new"], [entry("new", 2, T0)], T0))
    with pytest.raises(StoreError, match="lost data"):
        cached.flush()
    # after the failure the customers are read again: "new" is in Redis now, as committed
    again = cached.load(["new", "other"])
    assert again["new"].seq == 1 and cached.loaded == 2
    assert again["other"] == CustomerState("other")
    inner.close()


def test_store_migrate_converts_a_layout_1_store(redis_db_url: str,
                                                 redis_client: redis.Redis) -> None:
    from valeur_monitor.engine.state import encode_state
    from valeur_monitor.store.migrate import migrate
    from valeur_monitor.store.redis_commit import encode_entry

    # What a version before issue 12 wrote for two customers (and its census ZSETs).
    want = {}
    for n, customer in enumerate(("c-1", "c-2"), 1):
        state = CustomerState(customer, seq=3 * n)
        state.score.total = -1.5 * n
        state.reasons["rule-a"] = -1.5 * n
        window = [entry(customer, s, T0 + s * 1000) for s in range(1, 3 * n + 1)]
        base = f"vm:{{c:{customer}}}:"
        redis_client.set(base + "state", encode_state(state))
        redis_client.hset(base + "score", mapping={"total": "-1.5", "seq": str(3 * n)})
        redis_client.rpush(base + "ledger", *(encode_entry(e) for e in window))
        redis_client.zadd("vm:ranking", {customer: state.score.total})
        want[customer] = (state, window)
    redis_client.sadd("vm:open-rules", "rule-a")
    redis_client.zadd("vm:open:rule-a", {"c-1": 1})
    redis_client.hset("vm:epoch", mapping={"id": "old", "commits": "5"})

    store = RedisStore.from_url(redis_db_url, ledger_cap=4)
    try:
        assert migrate(store) == 2
        assert migrate(store) == 0                       # nothing left: safe to run again
        assert sorted(k.decode() for k in redis_client.keys("vm:*")) == [
            "vm:epoch", "vm:ranking", "vm:watermark", "vm:{c:c-1}", "vm:{c:c-2}"]
        for customer, (state, window) in want.items():
            assert store.load([customer])[customer] == state
            assert store.ledger(customer) == window[-4:]
            assert RedisReader(store.client).score(customer) == store.score(customer)
        store.commit(commit_of(want["c-1"][0], [entry("c-1", 4, T0 + 4000)], T0))
        assert [e.seq for e in store.ledger("c-1")] == [1, 2, 3, 4]
    finally:
        store.close()


def test_a_value_written_by_the_previous_state_version_reads_and_is_rewritten(
        store: RedisStore, redis_client: redis.Redis) -> None:
    # Before the fifth wave, heads held a version-2 compact state compressed with codec 1:
    # such a value must load exactly, keep its window, and take the current form at its next
    # commit, with nothing lost.
    import msgspec

    from valeur_monitor.engine.compact_old import encode_v2
    from valeur_monitor.engine.state import Promise
    from valeur_monitor.store.record import (
        HEADER,
        ZSTD_1,
        ZSTD_2,
        Row,
        Value,
        compressor,
    )

    state = CustomerState(
        "c-1", clock=T0 + 5 * DAY, pruned=T0 + 5 * DAY,
        seen={f"evt-7-{i}": T0 + i * 1000 for i in range(30)},
        promises={"reply\x1freq-1": Promise("reply", "req-1", T0, "evt-7-1", 3_600_000,
                                            running_since=T0, deadline=T0 + 3_600_000,
                                            due=T0 + 3_600_000, team="billing")},
        repeats={"repeat-contact\x1fbilling": [(T0, "req-1"), (T0 + DAY, "req-2")]})
    store.commit(commit_of(state, [entry("c-1", s, T0 + s * DAY) for s in (1, 2)], T0 + 2 * DAY))
    key = store.customer_key("c-1")
    data = redis_client.get(key)
    magic, mark, length, count, open_length = HEADER.unpack_from(data)
    start = HEADER.size + open_length
    s = state.score
    old_head = bytes((ZSTD_1,)) + compressor("head", ZSTD_1).compress(msgspec.msgpack.encode(
        Row(s.total, s.at, s.created, s.destroyed, s.dims, state.reasons, encode_v2(state))))
    redis_client.set(key, HEADER.pack(magic, mark, len(old_head), count, open_length)
                     + data[HEADER.size:start] + old_head + data[start + length:])
    assert store.load(["c-1"])["c-1"] == state
    assert [e.seq for e in store.ledger("c-1")] == [1, 2]
    loaded = store.load(["c-1"])["c-1"]
    loaded.seen["evt-7-99"] = T0 + 3 * DAY
    store.commit(commit_of(loaded, [entry("c-1", 3, T0 + 3 * DAY)], T0 + 3 * DAY))
    data = redis_client.get(key)
    assert Value("c-1", data).state() == loaded
    assert data[HEADER.size + HEADER.unpack_from(data)[4]] == ZSTD_2     # the current codec
    assert [e.seq for e in store.ledger("c-1")] == [1, 2, 3]


@pytest.mark.parametrize("head", [
    bytes((9,)) + b"from a newer release",                 # a head codec this release lacks
    bytes((2,)) + b"\x28\xb5\x2f\xfd not zstd at all",     # corrupt compressed bytes
    b"\x00" + b"\x97\x01",                                  # raw, but not a score row
    b"",                                                    # no head at all
])
def test_a_stored_value_that_cannot_be_decoded_is_a_permanent_error_without_the_customer(
        store: RedisStore, redis_client: redis.Redis, head: bytes) -> None:
    # A worker or `run` meeting such a value must stop with one clear line (retrying cannot
    # help), not loop on a raw msgspec/zstd traceback; the message names no customer.
    from valeur_monitor.store.record import HEADER

    state = CustomerState("c-secret-42", clock=T0)
    store.commit(commit_of(state, [entry("c-secret-42", 1, T0)], T0))
    key = store.customer_key("c-secret-42")
    data = redis_client.get(key)
    magic, mark, length, count, open_length = HEADER.unpack_from(data)
    start = HEADER.size + open_length
    redis_client.set(key, HEADER.pack(magic, mark, len(head), count, open_length)
                     + data[HEADER.size:start] + head + data[start + length:])
    with pytest.raises(StorePermanentError, match="cannot decode") as caught:
        store.load(["c-secret-42"])
    assert "c-secret-42" not in str(caught.value)
    assert "Nothing was written" in str(caught.value)
    assert store.load(["c-other"])["c-other"] == CustomerState("c-other")
    # the readers (API, explain, export) meet the same value the same way: one clear error
    with pytest.raises(StorePermanentError, match="cannot decode"):
        RedisReader(store.client).score("c-secret-42")


@pytest.mark.parametrize("when", ["new to the run", "cached by the run"])
def test_a_run_that_is_not_its_stores_only_writer_stops_instead_of_overwriting(
        store: RedisStore, redis_db_url: str, when: str) -> None:
    """`run --store redis://` keeps states in memory as the store's only writer. Another
    writer committing meanwhile (a worker, a second run) is detected at the run's next commit:
    before, the run's commit silently replaced x's state and its own new entry was dropped."""
    inner = RedisStore.from_url(redis_db_url, ledger_cap=4)
    cached = CachedStore(inner, pipelined=True, group=1)
    a = cached.load(["a", "x"])["a"]
    cached.commit(commit_of(a, [entry("a", 1, T0)], T0))
    cached.flush()
    if when == "cached by the run":
        x = cached.load(["x"])["x"]
        cached.commit(commit_of(x, [entry("x", 1, T0)], T0))
        cached.flush()
    other = CustomerState("x", seq=0)
    if when == "cached by the run":
        other = store.load(["x"])["x"]
    store.commit(commit_of(other, [entry("x", other.seq + n, T0) for n in (1, 2, 3)], T0))
    mine = cached.load(["x"])["x"]
    cached.commit(commit_of(mine, [entry("x", mine.seq + 1, T0 + 1)], T0 + 1))
    with pytest.raises(StoreWriterConflict, match="only writer") as raised:
        cached.flush()
    assert "x" not in str(raised.value).replace("prefix", "").replace("another", "")
    inner.close()


def test_a_run_alone_never_sees_a_conflict_even_when_its_commits_are_retried(
        store: RedisStore, redis_db_url: str, redis_client: redis.Redis) -> None:
    """A commit whose reply was lost runs the script again (the counter moves twice for one
    commit): that is this run's own doing, not another writer's."""
    inner = RedisStore.from_url(redis_db_url, ledger_cap=4)
    cached = CachedStore(inner, pipelined=True, group=1)
    script = inner._commit_script
    calls = [0]

    def reply_lost_once(**kwargs: object) -> object:
        calls[0] += 1
        result = script(**kwargs)
        if calls[0] == 2:     # applied, then the connection "dropped" before the reply
            raise redis.ConnectionError("reset by peer")
        return result

    inner._commit_script = reply_lost_once   # type: ignore[assignment]
    for n in range(1, 5):
        state = cached.load([f"c{n}"])[f"c{n}"]
        cached.commit(commit_of(state, [entry(f"c{n}", 1, T0 + n)], T0 + n))
        cached.flush()
    assert calls[0] == 5                     # four commits, one of them sent twice
    assert int(redis_client.hget("vm:epoch", "commits") or 0) == 5
    assert [len(store.ledger(f"c{n}")) for n in range(1, 5)] == [1, 1, 1, 1]
    inner.close()


def test_a_flush_in_parts_stops_at_the_first_part_that_fails(
        redis_db_url: str, redis_client: redis.Redis) -> None:
    inner = RedisStore.from_url(redis_db_url, ledger_cap=4)
    cached = CachedStore(inner, pipelined=True, part=2)
    names = [f"c-{i}" for i in range(1, 7)]
    states = cached.load(["c-0", *names])
    cached.commit(commit_of(states["c-0"], [entry("c-0", 1, T0)], T0))   # a run's first batch
    redis_client.hset(inner.keys.value("c-3"), "x", "1")    # the second part's script fails
    batch = Commit(watermark=T0 + DAY)
    for c in names:
        batch.states[c] = states[c]
        batch.due[c] = T0 + 2 * DAY
        batch.entries.append(entry(c, 1, T0))
        states[c].seq = 1
    cached.commit(batch)              # held for a group of two batches: the flush sends it
    with pytest.raises(StoreError):
        cached.flush()
    assert [c for c in names if redis_client.exists(inner.keys.value(c))] == ["c-1", "c-2",
                                                                                 "c-3"]
    assert redis_client.type(inner.keys.value("c-3")) == b"hash"       # nothing written
    assert inner.watermark() == T0       # the last part never went: the watermark did not move
    assert redis_client.zrange(inner.keys.due, 0, -1) == [b"c-1", b"c-2"]
    assert cached.cache == {} and inner.known.values == {}
    cached.close()


@pytest.mark.parametrize("lines", [[], [b"not json\n", b'{"broken":\n']])
def test_a_pipelined_run_with_nothing_to_write_ends_cleanly(
        redis_db_url: str, redis_client: redis.Redis, lines: list[bytes]) -> None:
    """`run --store redis://` over an empty input, or one of refused lines only: the batches
    commit nothing (no state, no due time, no watermark), so nothing is sent and the run ends
    as with the memory store (it once failed with an AttributeError on `None.call`)."""
    from valeur_monitor.engine.rules import load_rules
    from valeur_monitor.runner.embedded import EmbeddedRunner

    inner = RedisStore.from_url(redis_db_url, ledger_cap=4)
    store = CachedStore(inner, pipelined=True, group=1)
    runner = EmbeddedRunner(load_rules(["rules"]), store)
    runner.feed(lines)
    report = runner.finish()
    assert report.customers == 0 and sum(report.dead_letters.values()) == len(lines)
    store.commit(Commit())            # and an empty commit held for the final flush
    store.close()                     # flushes: nothing to send, no error
    assert int(redis_client.hget("vm:epoch", "commits") or 0) == 0


def test_a_key_written_meanwhile_is_merged_not_replaced_by_a_first_value_sent_whole(
        redis_db_url: str, redis_client: redis.Redis) -> None:
    """A customer the run read as absent (so its first value goes whole, `Known.absent`) but
    that another process wrote since: the script's prefix check fails, it merges (the other
    writer's entry kept), and the run stops with a writer conflict after that part."""
    inner = RedisStore.from_url(redis_db_url, ledger_cap=10)
    cached = CachedStore(inner, pipelined=True, part=2)
    names = ["c-3", "c-1", "c-2"]
    states = cached.load(["c-0", *names])         # none in Redis: all known absent
    cached.commit(commit_of(states["c-0"], [entry("c-0", 1, T0)], T0))   # a run's first batch
    other = RedisStore.from_url(redis_db_url, ledger_cap=10)
    other.commit(commit_of(CustomerState("c-3"), [entry("c-3", 1, T0)], T0))
    batch = Commit(watermark=T0 + DAY)
    for c in names:
        seq = 2 if c == "c-3" else 1
        batch.states[c] = states[c]
        batch.due[c] = -1
        batch.entries.append(entry(c, seq, T0 + DAY))
        states[c].seq = seq
    cached.commit(batch)              # held: the flush sends it in parts of two customers
    with pytest.raises(StoreWriterConflict):
        cached.flush()
    assert [e.seq for e in other.ledger("c-3")] == [1, 2]      # merged, not replaced
    assert other.ledger("c-1") and not redis_client.exists(inner.keys.value("c-2"))
    cached.close()
    other.close()
