"""The read side: the memory and Redis readers must give the same answers on the same data.

One simulated week goes through the shared Processor into a MemoryStore and into a RedisStore
(a private, flushed Redis DB); every read, and every view built on reads, must then agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest

from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.read.base import Reader
from valeur_monitor.read.memory import MemoryReader
from valeur_monitor.read.rankings import at_risk, losing
from valeur_monitor.read.redis import RedisReader
from valeur_monitor.read.views import LedgerQuery, customer_view, decayed, ledger_page, series
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.redis import RedisStore

pytestmark = pytest.mark.contract
DAY = 86_400_000


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(["rules"])


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    from valeur_monitor.simulate import SimulationConfig, simulate

    return [orjson.dumps(e) for e in simulate(SimulationConfig(seed=11, customers=150, days=7))]


def _fill(processor: Processor, lines: list[bytes]) -> None:
    for i in range(0, len(lines), 500):
        processor.process(lines[i:i + 500])


@pytest.fixture
def readers(rules: RuleSet, lines: list[bytes], redis_db_url: str
            ) -> Iterator[tuple[Reader, Reader, int]]:
    memory = MemoryStore(ledger_cap=None)
    prefix = f"r{uuid.uuid4().hex[:8]}:"
    store = RedisStore.from_url(redis_db_url, ledger_cap=1_000_000, prefix=prefix)
    for target in (memory, store):
        _fill(Processor(rules, target), lines)
    reader = RedisReader.from_url(redis_db_url, prefix=prefix)
    try:
        yield MemoryReader(memory), reader, memory.watermark()
    finally:
        reader.close()
        store.close()


def test_same_reads(readers: tuple[Reader, Reader, int]) -> None:
    mem, red, watermark = readers
    assert red.watermark() == mem.watermark() == watermark > 0
    assert red.count() == mem.count() > 100
    everyone = sorted(c for batch in mem.batches(37) for c in batch)
    assert sorted(c for batch in red.batches(37) for c in batch) == everyone
    assert len(set(everyone)) == len(everyone)
    assert red.scores(everyone) == mem.scores(everyone)
    assert red.ledgers(everyone) == mem.ledgers(everyone)
    for c in everyone[:40]:
        assert red.promises(c) == mem.promises(c)
        snap = red.snapshot(c)
        assert snap == mem.snapshot(c) and snap is not None
        assert (snap.score, snap.ledger, snap.promises) == (
            red.score(c), red.ledger(c), red.promises(c))
        assert all(p.broken_at < 0 for p in red.promises(c))
    assert any(red.promises(c) for c in everyone)
    for worst in (True, False):
        whole = mem.ranked(0, len(everyone) + 3, worst=worst)
        assert len(whole) == len(everyone)
        assert red.ranked(0, len(everyone) + 3, worst=worst) == whole
        for start in (0, 7, 50):
            assert red.ranked(start, 9, worst=worst) == whole[start:start + 9]
    assert red.score("nobody") is None and mem.score("nobody") is None
    assert red.ledger("nobody") == [] == mem.ledger("nobody")
    assert red.promises("nobody") == [] == mem.promises("nobody")
    assert red.snapshot("nobody") is None and mem.snapshot("nobody") is None


def test_same_views(readers: tuple[Reader, Reader, int], rules: RuleSet) -> None:
    mem, red, watermark = readers
    half_life = rules.settings.half_life
    assert half_life
    customer = mem.ranked(0, 1)[0][0]
    for as_of in (watermark, watermark + 30 * DAY, watermark - 2 * DAY):
        views = []
        for reader in (mem, red):
            score = reader.score(customer)
            assert score is not None
            views.append(customer_view(score, reader.ledger(customer),
                                       reader.promises(customer), as_of=as_of,
                                       half_life=half_life))
        assert views[0] == views[1]
        assert views[0].change == pytest.approx(views[0].score - views[0].previous)
    # a month later the score is half of what it is now (half-life 30 days)
    score = mem.score(customer)
    assert score is not None
    now = decayed(score, score.at, half_life)
    assert decayed(score, score.at + half_life, half_life) == pytest.approx(now / 2)
    # rebuilt from the window: at the last update it equals the stored total
    points = series(score, mem.ledger(customer), half_life)
    assert points[-1] == (score.at, pytest.approx(score.total))
    negatives = sorted((decayed(v, watermark, half_life), c)
                       for c, v in mem.scores([c for b in mem.batches() for c in b]).items()
                       if decayed(v, watermark, half_life) < 0)
    assert negatives
    a = at_risk(mem, 10, as_of=watermark, half_life=half_life)
    assert a == at_risk(red, 10, as_of=watermark, half_life=half_life) and a.complete
    assert [(r.score, r.customer) for r in a.items] == negatives[:10]
    team = next(e.team for c in mem.ranked(0, 5) for e in mem.ledger(c[0]) if e.team)
    assert at_risk(mem, 5, as_of=watermark, half_life=half_life, team=team) == at_risk(
        red, 5, as_of=watermark, half_life=half_life, team=team)
    week = losing(mem, 10, as_of=watermark, window=7 * DAY, half_life=half_life)
    assert week == losing(red, 10, as_of=watermark, window=7 * DAY, half_life=half_life)
    assert week.items and all(r.net < 0 and r.lost >= -r.net for r in week.items)


def test_ledger_pages(readers: tuple[Reader, Reader, int]) -> None:
    mem, red, _ = readers
    customer = max((c for batch in mem.batches() for c in batch),
                   key=lambda c: len(mem.ledger(c)))
    entries = red.ledger(customer)
    assert len(entries) > 12
    rule = entries[0].rule
    for query in (LedgerQuery(limit=5), LedgerQuery(rules=frozenset({rule}), limit=3),
                  LedgerQuery(outcomes=frozenset({"broken", "kept"}), limit=4),
                  LedgerQuery(since=entries[3].time, until=entries[-3].time, limit=2)):
        seen, cursor = [], None
        while True:
            ask = LedgerQuery(query.rules, query.outcomes, query.since, query.until, cursor,
                              query.limit)
            page, cursor = ledger_page(entries, ask)
            assert (page, cursor) == ledger_page(mem.ledger(customer), ask)
            assert len(page) <= query.limit
            seen += page
            if cursor is None:
                break
        expected = sorted((e for e in entries if query.keeps(e)), key=lambda e: -e.seq)
        assert seen == expected
