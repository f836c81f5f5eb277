"""One contract suite for every store: the in-memory store and the Redis store must agree.

Each test takes the `make_store` factory, parametrized over `memory` and `redis` (a private,
flushed Redis DB from the `redis_db_url` fixture, under a test prefix). A simulated week of
traffic through the shared `Processor` must leave both stores with the same ledgers, scores,
rankings, due promises and watermark; small hand-made commits pin down each protocol method.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.engine.state import CustomerState, Promise, Score
from valeur_monitor.service import Processor
from valeur_monitor.store.base import Commit, ScoreView, Store
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.contract

DAY = 86_400_000
HOUR = 3_600_000
WEEK_CAP = 500          # the shipped ledger_cap; both stores use it for the week
BATCH = 500

StoreFactory = Callable[..., Store]


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """`make_store(ledger_cap=None)`: a new, empty store of the parametrized kind."""
    opened: list[Store] = []
    if request.param == "memory":
        def make(ledger_cap: int | None = None) -> Store:
            store = MemoryStore(ledger_cap=ledger_cap)
            opened.append(store)
            return store
    else:
        from valeur_monitor.store.redis import RedisStore

        url = request.getfixturevalue("redis_db_url")
        run = uuid.uuid4().hex[:8]

        def make(ledger_cap: int | None = None) -> Store:
            # A fresh prefix per store: two stores in one test never share keys.
            prefix = f"t{run}-{len(opened)}:"
            store = RedisStore.from_url(url, ledger_cap=ledger_cap or 1_000_000, prefix=prefix)
            opened.append(store)
            return store
    yield make
    for store in opened:
        store.close()


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(["rules"])


@pytest.fixture(scope="module")
def week_lines() -> list[bytes]:
    """A simulated week: 220 customers, ~15k events (the shipped simulator, fixed seed)."""
    from valeur_monitor.simulate import SimulationConfig, simulate

    lines = [orjson.dumps(e) for e in simulate(SimulationConfig(seed=7, customers=220, days=7))]
    assert len(lines) > 3000
    return lines


@dataclass
class Snapshot:
    """Everything a reader can observe of a store after a run."""

    customers: list[str]
    ledgers: list[LedgerEntry]
    scores: dict[str, ScoreView | None]
    worst: list[tuple[str, float]]
    best: list[tuple[str, float]]
    all_ranked: list[tuple[str, float]]
    due_promises: dict[int, list[tuple[str, str, str, int]]]
    watermark: int
    due_final: list[str]


def run_week(store: Store, rules: RuleSet, lines: list[bytes]) -> None:
    processor = Processor(rules, store)
    for start in range(0, len(lines), BATCH):
        processor.process(lines[start:start + BATCH])
    processor.advance_to(processor.max_event_time)


def snapshot(store: Store) -> Snapshot:
    customers = store.customers()
    watermark = store.watermark()
    times = [watermark - 3 * DAY, watermark - DAY, watermark, watermark + HOUR,
             watermark + 2 * DAY, watermark + 30 * DAY]
    return Snapshot(
        customers=customers,
        ledgers=sorted((e for c in customers for e in store.ledger(c)),
                       key=lambda e: (e.customer, e.seq)),
        scores={c: store.score(c) for c in customers},
        worst=store.ranking(15, worst=True),
        best=store.ranking(15, worst=False),
        all_ranked=store.ranking(len(customers) + 5),
        due_promises={t: store.due_promises(t) for t in times},
        watermark=watermark,
        due_final=store.due(watermark + 30 * DAY),
    )


@pytest.fixture(scope="module")
def reference(rules: RuleSet, week_lines: list[bytes]) -> Snapshot:
    """The week through a separate in-memory store: what every store must reproduce."""
    store = MemoryStore(ledger_cap=WEEK_CAP)
    run_week(store, rules, week_lines)
    return snapshot(store)


# --------------------------------------------------------------------------------------------
# a simulated week


def test_week_matches_reference(make_store: StoreFactory, rules: RuleSet,
                                week_lines: list[bytes], reference: Snapshot) -> None:
    store = make_store(ledger_cap=WEEK_CAP)
    run_week(store, rules, week_lines)
    got = snapshot(store)

    # The reference itself is meaningful: many customers, values and open promises.
    assert len(reference.customers) >= 200
    assert len(reference.ledgers) > 1000
    assert any(v for v in reference.due_promises.values())
    assert reference.scores and all(v is not None for v in reference.scores.values())

    assert got.customers == reference.customers
    assert got.watermark == reference.watermark
    assert got.ledgers == reference.ledgers
    for customer in reference.customers:
        assert got.scores[customer] == reference.scores[customer], customer
    assert got.worst == reference.worst
    assert got.best == reference.best
    assert got.all_ranked == reference.all_ranked
    assert got.due_promises == reference.due_promises
    assert got.due_final == reference.due_final
    # Top reasons come out of the stored reasons identically.
    for customer in reference.customers[:50]:
        got_view, ref_view = got.scores[customer], reference.scores[customer]
        assert got_view is not None and ref_view is not None
        assert got_view.top_reasons(3) == ref_view.top_reasons(3)


def test_week_replayed_is_exactly_once(make_store: StoreFactory, rules: RuleSet,
                                       week_lines: list[bytes], reference: Snapshot) -> None:
    """Feeding the whole week twice (a redelivery) changes nothing a reader can see."""
    store = make_store(ledger_cap=WEEK_CAP)
    run_week(store, rules, week_lines)
    run_week(store, rules, week_lines)
    got = snapshot(store)
    assert got.ledgers == reference.ledgers
    assert got.scores == reference.scores
    assert got.all_ranked == reference.all_ranked
    assert got.watermark == reference.watermark


# --------------------------------------------------------------------------------------------
# each method on small hand-made inputs


def make_state(customer: str, total: float = 0.0, **extra: Any) -> CustomerState:
    state = CustomerState(customer, **extra)
    state.score = Score(total=total, dims={"time": total} if total else {}, at=1000)
    return state


def entry(customer: str, seq: int, value: float = -1.0, time: int = 1000) -> LedgerEntry:
    return LedgerEntry(customer=customer, seq=seq, rule="r", outcome="matched",
                       dimension="time", amount=abs(value), value=value, time=time,
                       events=(f"e{seq}",), explain=f"entry {seq}")


def test_load_unknown_customer_gives_fresh_state(make_store: StoreFactory) -> None:
    store = make_store()
    assert store.load(["nobody", "nobody-else"]) == {
        "nobody": CustomerState("nobody"), "nobody-else": CustomerState("nobody-else")}
    assert store.load([]) == {}
    assert store.score("nobody") is None
    assert store.ledger("nobody") == []
    assert store.customers() == []
    assert store.watermark() == 0
    assert store.due(10**15) == []
    assert store.due_promises(10**15) == []
    assert store.ranking(5) == [] and store.ranking(5, worst=False) == []


def test_commit_then_load_round_trip(make_store: StoreFactory) -> None:
    store = make_store()
    event = Event(id="ev-9", type="request.opened", time=5000, customer="c1", ref="req-1",
                  channel="email", team="billing", data={"tier": "gold", "n": 1.5})
    promise = Promise(rule="unanswered-request", ref="req-1", opened_at=4000,
                      open_event="ev-8", budget=HOUR, deadline=4000 + HOUR, warn_at=4000,
                      tier="gold", team="billing", channel="email")
    state = CustomerState(
        "c1", clock=4500, pruned=10, seq=2, seen={"ev-8": 4000, "ev-9": 5000},
        pending=[event], promises={"unanswered-request\x1freq-1": promise},
        repeats={"rep\x1ftopic": [(1000, "req-0"), (2000, "req-1")]}, alert_windows={"a": [3000]},
        alerts_fired=["a"],
        score=Score(total=-2.5, dims={"time": -3.0, "service": 0.5}, at=4000, created=0.5,
                    destroyed=3.0),
        reasons={"unanswered-request": -3.0, "reply-in-time": 0.5})
    # Unicode and a brace in a customer id must not confuse key names or ordering.
    other = make_state("clé}{x", total=1.25)
    store.commit(Commit(states={"c1": state, "clé}{x": other}, due={"c1": 4000, "clé}{x": -1},
                        entries=[entry("c1", 1), entry("c1", 2, 0.5)], watermark=4500))

    loaded = store.load(["clé}{x", "c1", "c2"])
    assert list(loaded) == ["clé}{x", "c1", "c2"]
    assert loaded["c1"] == state
    assert loaded["clé}{x"] == other
    assert loaded["c2"] == CustomerState("c2")
    assert store.score("c1") == ScoreView.of(state)
    assert store.score("clé}{x") == ScoreView.of(other)
    assert store.ledger("c1") == [entry("c1", 1), entry("c1", 2, 0.5)]
    assert store.ledger("clé}{x") == []
    assert store.customers() == ["c1", "clé}{x"]
    assert store.watermark() == 4500

    # A later commit replaces state and score wholesale (a dimension or reason may vanish).
    state2 = make_state("c1", total=7.0, seq=3)
    store.commit(Commit(states={"c1": state2}, due={"c1": -1}, entries=[entry("c1", 3, 7.0)],
                        watermark=4600))
    assert store.load(["c1"])["c1"] == state2
    view = store.score("c1")
    assert view == ScoreView.of(state2)
    assert view is not None and view.dims == {"time": 7.0} and view.reasons == {}
    assert [e.seq for e in store.ledger("c1")] == [1, 2, 3]


def test_due_is_ordered_by_time_then_customer(make_store: StoreFactory) -> None:
    store = make_store()
    dues = {"a": 300, "b": 100, "c": 200, "d": -1, "e": 100, "f": 250}
    store.commit(Commit(states={c: make_state(c) for c in dues}, due=dues, watermark=50))
    assert store.due(99) == []
    # Callers (the Processor) recommit every customer due() returns, with its new due time.
    assert store.due(250, limit=3) == ["b", "e", "c"]
    assert store.due(250, limit=3) == ["b", "e", "c"]  # a query: nothing is consumed
    store.commit(Commit(states={c: make_state(c) for c in "bec"},
                        due={"b": 400, "e": -1, "c": 260}, watermark=250))
    assert store.due(300) == ["f", "c", "a"]
    store.commit(Commit(states={c: make_state(c) for c in "fca"},
                        due={"f": -1, "c": -1, "a": -1}, watermark=300))
    assert store.due(1000) == ["b"]


def test_watermark_only_moves_forward(make_store: StoreFactory) -> None:
    store = make_store()
    store.commit(Commit(watermark=1000))
    assert store.watermark() == 1000
    store.commit(Commit(watermark=900))
    assert store.watermark() == 1000
    store.commit(Commit(watermark=1_793_000_000_123))
    assert store.watermark() == 1_793_000_000_123


def test_ledger_is_capped_to_the_most_recent_entries(make_store: StoreFactory) -> None:
    store = make_store(ledger_cap=3)
    state = make_state("c", seq=5)
    store.commit(Commit(states={"c": state}, entries=[entry("c", i) for i in range(1, 6)]))
    assert [e.seq for e in store.ledger("c")] == [3, 4, 5]
    state = make_state("c", seq=7)
    store.commit(Commit(states={"c": state}, entries=[entry("c", 6), entry("c", 7)]))
    assert [e.seq for e in store.ledger("c")] == [5, 6, 7]
    assert [e.seq for e in store.ledger("c", limit=2)] == [6, 7]
    assert [e.seq for e in store.ledger("c", limit=10)] == [5, 6, 7]


def test_ranking_orders_ties_by_customer_id(make_store: StoreFactory) -> None:
    store = make_store()
    totals = {"a": 1.0, "b": -2.0, "c": 1.0, "d": 0.0, "e": -2.0, "f": 1.0, "g": 3.5,
              "h": 0.0, "i": -0.5}
    store.commit(Commit(states={c: make_state(c, total=t) for c, t in totals.items()}))
    assert store.ranking(3) == [("b", -2.0), ("e", -2.0), ("i", -0.5)]
    assert store.ranking(4, worst=True) == [("b", -2.0), ("e", -2.0), ("i", -0.5), ("d", 0.0)]
    assert store.ranking(1, worst=False) == [("g", 3.5)]
    assert store.ranking(2, worst=False) == [("g", 3.5), ("a", 1.0)]
    assert store.ranking(3, worst=False) == [("g", 3.5), ("a", 1.0), ("c", 1.0)]
    assert store.ranking(5, worst=False) == [("g", 3.5), ("a", 1.0), ("c", 1.0), ("f", 1.0),
                                             ("d", 0.0)]
    everyone = sorted(totals.items(), key=lambda kv: (kv[1], kv[0]))
    assert store.ranking(100) == everyone
    assert store.ranking(100, worst=False) == sorted(totals.items(),
                                                     key=lambda kv: (-kv[1], kv[0]))
    assert store.ranking(0) == []
    # Exact floats survive the trip.
    store.commit(Commit(states={"z": make_state("z", total=0.1 + 0.2)}))
    assert ("z", 0.1 + 0.2) in store.ranking(100)


def test_due_promises_lists_open_running_promises(make_store: StoreFactory) -> None:
    store = make_store()

    def promise(ref: str, deadline: int, **kw: Any) -> Promise:
        return Promise(rule="cb", ref=ref, opened_at=0, open_event="o", budget=deadline,
                       deadline=deadline, **kw)

    a = make_state("a", promises={"cb\x1fr1": promise("r1", 500),
                                  "cb\x1fr2": promise("r2", 200, warn_at=100)})
    b = make_state("b", promises={"cb\x1fr3": promise("r3", 300),
                                  "cb\x1fr4": promise("r4", 100, paused_at=50),
                                  "cb\x1fr5": promise("r5", 150, broken_at=150)})
    # due times as the engine computes them: earliest timer of any promise
    store.commit(Commit(states={"a": a, "b": b}, due={"a": 100, "b": 300}))
    assert store.due_promises(99) == []
    assert store.due_promises(200) == [("a", "cb", "r2", 200)]
    assert store.due_promises(1000) == [("a", "cb", "r1", 500), ("a", "cb", "r2", 200),
                                        ("b", "cb", "r3", 300)]
