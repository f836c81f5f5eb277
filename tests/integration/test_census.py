"""Store-wide counts read from a real Redis (store/census.py): the open-promise index written
at commit and the score bands agree with the states, whatever process committed them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.kafka.partition import key_partition
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.simulate.malformed import RAW_KEY
from valeur_monitor.store.base import Commit
from valeur_monitor.store.census import RedisCensus, StatesCensus, census_for
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.redis import RedisStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules([ROOT / "rules"])
EDGES = (-20.0, -5.0, 5.0)


def lines() -> list[bytes]:
    config = SimulationConfig(seed=5, customers=150, days=3, bad_rate=0.0)
    return [r[RAW_KEY].encode() if RAW_KEY in r else orjson.dumps(r) for r in simulate(config)]


def test_census_matches_the_states_across_processes_and_resends(redis_db_url: str) -> None:
    data = lines()
    # Two "workers" (two store objects, two processors), each committing its own customers.
    stores = [RedisStore.from_url(redis_db_url), RedisStore.from_url(redis_db_url)]
    halves: list[list[bytes]] = [[], []]
    for line in data:
        customer = orjson.loads(line)["customer"]
        halves[key_partition(customer.encode(), 2)].append(line)
    for store, half in zip(stores, halves, strict=True):
        processor = Processor(RULES, store)
        for i in range(0, len(half), 300):
            processor.process(half[i:i + 300])
    census = census_for(stores[0])
    assert isinstance(census, RedisCensus)
    memory = MemoryStore()       # the states as committed, counted one by one
    for c, s in stores[0].load(stores[0].customers()).items():
        memory.commit(Commit(states={c: s}))
    expected = StatesCensus(memory)
    want_open = expected.open_promises()
    assert sum(want_open.values()) > 0
    assert {r: n for r, n in census.open_promises().items() if n} == want_open
    assert census.bands(EDGES) == expected.bands(EDGES)
    assert sum(census.bands(EDGES).values()) == len(memory.customers())

    # Re-sending a commit (a redelivered batch) counts nothing twice; closing every promise
    # of a customer removes it from the index, even from a fresh process.
    customer = next(c for c in memory.customers() if memory.load([c])[c].promises)
    state = stores[1].load([customer])[customer]
    stores[0].commit(Commit(states={customer: state}, watermark=1))
    assert {r: n for r, n in census.open_promises().items() if n} == want_open
    fresh = RedisStore.from_url(redis_db_url)
    closed = fresh.load([customer])[customer]
    closed.promises.clear()
    fresh.commit(Commit(states={customer: closed}, watermark=1))
    after = census.open_promises()
    dropped = sum(1 for p in state.promises.values() if p.broken_at < 0)
    assert sum(after.values()) == sum(want_open.values()) - dropped
    for store in (*stores, fresh):
        store.close()
