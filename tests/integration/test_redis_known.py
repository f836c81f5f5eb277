"""Commits of values the committer knows (store/known.py): sent whole, checked by their prefix,
and byte for byte what the commit script's merge writes, whatever happened to Redis meanwhile."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_redis_store import dump, run_lines
from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.engine.state import CustomerState, Score
from valeur_monitor.errors import StoreDataLost
from valeur_monitor.store.base import Commit
from valeur_monitor.store.redis import RedisStore
from valeur_monitor.store.redis_commit import Prepared

pytestmark = pytest.mark.integration

DAY = 86_400_000
T0 = 1_790_000_000_000


class Counting:
    """A Redis store (wrapped: compiled classes cannot be subclassed here) that counts the
    forms of the customers' arguments it sends (known: a non-empty meta)."""

    def __init__(self, inner: RedisStore) -> None:
        self.inner = inner
        self.known_forms = 0
        self.merge_forms = 0

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> Any:
        return cls(RedisStore.from_url(url, **kw))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def commit(self, commit: Commit) -> None:
        prepared = self.inner.prepare(commit)
        if prepared is not None:
            self.apply(prepared)

    def apply(self, prepared: Prepared) -> None:
        _, args = prepared.call()
        metas = args[7:-1:2]
        known = sum(1 for m in metas if len(m) > 1)
        self.known_forms += known
        self.merge_forms += len(metas) - known
        self.inner.apply(prepared)


def merging(url: str, prefix: str, **kw: Any) -> RedisStore:
    """A store that never sends the known form: what the script's merge alone writes."""
    store = RedisStore.from_url(url, prefix=prefix, **kw)
    store.known.limit = 0
    return store


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(["rules"])


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    import orjson

    from valeur_monitor.simulate import SimulationConfig, simulate

    return [orjson.dumps(e) for e in simulate(SimulationConfig(seed=5, customers=60, days=7))]


def test_known_values_are_the_bytes_the_merge_writes(redis_db_url: str, redis_client: redis.Redis,
                                                     rules: RuleSet, lines: list[bytes]) -> None:
    # a small window (3 entries, 2 days): the values are cut by count and by age all along
    kw: dict[str, Any] = {"ledger_cap": 3, "ledger_max_age": 2 * DAY}
    known = Counting.from_url(redis_db_url, prefix="a:", **kw)
    plain = merging(redis_db_url, "b:", **kw)
    run_lines(known, rules, lines)
    run_lines(plain, rules, lines)
    a, b = dump(redis_client, "a:"), dump(redis_client, "b:")
    assert a == b and len(a) > 100
    assert a["open-promises"] == b["open-promises"] and a["open-promises"][1]
    # after each customer's first commit (merged, its value sent back), the known form; the
    # merge still when a commit brings more entries than the window keeps (3 here)
    assert known.known_forms > 100 and known.merge_forms > 0
    assert len(known.known.values) == sum(1 for k in a if k.endswith(":state"))
    known.close()
    plain.close()


def test_values_known_absent_go_whole_and_are_merged_when_the_key_exists(
        redis_db_url: str, redis_client: redis.Redis, rules: RuleSet,
        lines: list[bytes]) -> None:
    """A run's customers not in Redis when it read the store (`CachedStore`) are known absent:
    their first value goes whole too (open counts and all), byte for byte the merge's; a key
    written meanwhile by someone else fails the script's check and is merged."""
    kw: dict[str, Any] = {"ledger_cap": 3, "ledger_max_age": 2 * DAY}
    known = Counting.from_url(redis_db_url, prefix="a:", **kw)
    plain = merging(redis_db_url, "b:", **kw)
    customers = {msgspec.json.decode(line)["customer"] for line in lines}
    unaware = Counting.from_url(redis_db_url, prefix="e:", **kw)
    known.known.absent(customers)
    for store in (known, plain, unaware):
        run_lines(store, rules, lines)
    a, b = dump(redis_client, "a:"), dump(redis_client, "b:")
    assert a == b and a["open-promises"][1]
    # first values went whole, but where the window (3) cuts a first commit's entries
    assert known.merge_forms < unaware.merge_forms - len(customers) // 3
    mine = Counting.from_url(redis_db_url, prefix="c:", ledger_cap=10)
    other = RedisStore.from_url(redis_db_url, prefix="c:", ledger_cap=10)
    reference = merging(redis_db_url, "d:", ledger_cap=10)
    mine.known.absent({"x", "y"})
    for store, c in ((other, commit("x", [1], 1.0, T0)), (mine, commit("x", [2], 2.0, T0)),
                     (mine, commit("y", [1], 1.0, T0))):
        store.commit(c)
        reference.commit(c)
    assert mine.known_forms == 2 and mine.merge_forms == 0    # both sent whole...
    assert dump(redis_client, "c:") == dump(redis_client, "d:")
    assert [e.seq for e in mine.ledger("x")] == [1, 2]         # ..."x" merged by the script
    for s in (known, plain, unaware, mine, other, reference):
        s.close()


def state_of(customer: str, seq: int, total: float) -> CustomerState:
    return CustomerState(customer, seq=seq, score=Score(total=total))


def entry(customer: str, seq: int, time: int) -> LedgerEntry:
    return LedgerEntry(customer, seq, "rule-a", "kept", "time", 1.0, 1.0, time, (f"e{seq}",),
                       f"explained {seq}")


def commit(customer: str, seqs: list[int], total: float, watermark: int) -> Commit:
    state = state_of(customer, max(seqs, default=0), total)
    return Commit(states={customer: state}, due={customer: -1},
                  entries=[entry(customer, s, T0 + s * DAY // 2) for s in seqs],
                  watermark=watermark)


def test_a_value_written_behind_the_committer_is_merged_not_overwritten(
        redis_db_url: str, redis_client: redis.Redis) -> None:
    kw: dict[str, Any] = {"ledger_cap": 10}
    mine = Counting.from_url(redis_db_url, prefix="a:", **kw)
    other = RedisStore.from_url(redis_db_url, prefix="a:", **kw)
    reference = merging(redis_db_url, "b:", **kw)
    steps: list[tuple[Any, Commit]] = [
        (mine, commit("c", [1, 2], 1.0, T0 + DAY)),
        (mine, commit("c", [], 2.0, T0 + DAY)),        # known form from here on
        (other, commit("c", [3], 3.0, T0 + 2 * DAY)),  # someone else writes the customer
        (mine, commit("c", [4], 4.0, T0 + 3 * DAY)),   # stale knowledge: merged, 3 kept
    ]
    for store, c in steps:
        store.commit(c)
        reference.commit(c)
    assert mine.known_forms == 2 and mine.merge_forms == 1
    assert dump(redis_client, "a:") == dump(redis_client, "b:")
    assert [e.seq for e in mine.ledger("c")] == [1, 2, 3, 4]
    # the key deleted (an operator replaying a customer): merged into nothing, not rebuilt
    redis_client.delete("a:{c:c}", "b:{c:c}")
    for c in (commit("c", [5], 5.0, T0 + 4 * DAY), commit("c", [6], 6.0, T0 + 4 * DAY)):
        mine.commit(c)
        reference.commit(c)
    assert dump(redis_client, "a:") == dump(redis_client, "b:")
    assert [e.seq for e in mine.ledger("c")] == [5, 6]
    for s in (mine, other, reference):
        s.close()


def test_an_unchanged_score_is_ranked_again_only_when_the_value_is_merged(
        redis_db_url: str, redis_client: redis.Redis) -> None:
    kw: dict[str, Any] = {"ledger_cap": 10}
    mine = Counting.from_url(redis_db_url, prefix="a:", **kw)
    other = RedisStore.from_url(redis_db_url, prefix="a:", **kw)
    reference = merging(redis_db_url, "b:", **kw)
    first = commit("c", [1], 1.0, T0)
    mine.commit(first)
    reference.commit(first)
    # known form, the total it ranked last: no ZADD unless the value turns out merged
    same = commit("c", [2], 1.0, T0 + DAY)
    prepared = mine.prepare(same)
    assert prepared is not None
    _, args = prepared.call()
    assert msgspec.msgpack.decode(args[3]) == []
    assert msgspec.msgpack.decode(args[-1]) == [1, "1.0", "c"]
    mine.apply(prepared)
    reference.commit(same)
    assert dump(redis_client, "a:") == dump(redis_client, "b:")
    # someone else ranks the customer at 3.0; the committer's next commit, total 1.0 as it
    # ranked last, finds another prefix: merged, and ranked at 1.0 again
    for store, c in ((other, commit("c", [3], 3.0, T0 + 2 * DAY)),
                     (mine, commit("c", [4], 1.0, T0 + 3 * DAY))):
        store.commit(c)
        reference.commit(c)
    assert mine.known_forms == 2 and mine.merge_forms == 1
    assert redis_client.zscore(mine.keys.ranking, "c") == 1.0
    assert dump(redis_client, "a:") == dump(redis_client, "b:")
    for s in (mine, other, reference):
        s.close()


def test_a_known_commit_sent_again_changes_nothing(redis_db_url: str,
                                                   redis_client: redis.Redis) -> None:
    store = Counting.from_url(redis_db_url, ledger_cap=10)
    store.commit(commit("c", [1], 1.0, T0))
    prepared = store.prepare(commit("c", [2, 3], 2.0, T0 + DAY))
    assert prepared is not None
    store.apply(prepared)
    once = dump(redis_client)
    store.apply(prepared)               # its reply lost: the same arguments again
    assert dump(redis_client) == once and store.known_forms == 2
    assert [e.seq for e in store.ledger("c")] == [1, 2, 3]
    store.commit(commit("c", [4], 3.0, T0 + DAY))   # known again (the merge sent it back)
    assert store.known_forms == 3
    store.close()


def test_a_failed_commit_forgets_what_is_known(redis_db_url: str,
                                               redis_client: redis.Redis) -> None:
    store = RedisStore.from_url(redis_db_url, ledger_cap=10)
    store.commit(commit("c", [1], 1.0, T0))
    assert list(store.known.values) == ["c"]
    redis_client.delete("vm:epoch")     # the store lost its data: the commit is refused
    with pytest.raises(StoreDataLost):
        store.commit(commit("c", [2], 2.0, T0))
    assert store.known.values == {}
    store.close()


def test_known_forms_beyond_the_limit_are_merged(redis_db_url: str,
                                                 redis_client: redis.Redis) -> None:
    store = Counting.from_url(redis_db_url, ledger_cap=10)
    store.known.limit = 2
    for round_ in range(3):
        for c in ("a", "b", "c"):
            store.commit(commit(c, [round_ + 1], float(round_), T0 + round_ * DAY))
    assert len(store.known.values) == 2 and store.merge_forms >= 3
    for c in ("a", "b", "c"):
        assert [e.seq for e in store.ledger(c)] == [1, 2, 3]
    store.close()


times = st.integers(0, 40)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.lists(times, max_size=4), st.integers(0, 40), st.booleans()),
                min_size=1, max_size=8), st.booleans())
def test_any_sequence_of_commits_writes_what_the_merge_writes(
        redis_db_url: str, redis_client: redis.Redis,
        steps: list[tuple[list[int], int, bool]], absent: bool) -> None:
    """Entries of any age, watermarks moving both ways, commits sent twice: the window is cut
    by count (4) and age (5 days) the same way by the known form and by the merge (the first
    value too, when the committer knows the key absent)."""
    redis_client.flushdb()
    kw: dict[str, Any] = {"ledger_cap": 4, "ledger_max_age": 5 * DAY}
    known = RedisStore.from_url(redis_db_url, prefix="a:", **kw)
    plain = merging(redis_db_url, "b:", **kw)
    if absent:
        known.known.absent({"c"})
    seq = 0
    for ages, mark, twice in steps:
        state = state_of("c", seq + len(ages), float(seq))
        entries = [LedgerEntry("c", seq + i + 1, "r", "kept", "time", 1.0, 1.0, T0 + a * DAY // 2,
                               ("e",), "x") for i, a in enumerate(sorted(ages))]
        seq += len(ages)
        c = Commit(states={"c": state}, due={"c": -1}, entries=entries,
                   watermark=T0 + mark * DAY // 2)
        for store in (known, plain):
            prepared = store.prepare(c)
            assert prepared is not None
            store.apply(prepared)
            if twice:
                store.apply(prepared)
    assert dump(redis_client, "a:") == dump(redis_client, "b:")
    known.close()
    plain.close()
