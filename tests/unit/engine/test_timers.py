"""The earliest timer kept on each state equals a full scan of its promises, at all times."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.service import BatchResult
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.memory import DueIndex, MemoryStore


def _scan(state: CustomerState) -> tuple[int, str]:
    timers = sorted((p.due, slot) for slot, p in state.promises.items() if p.due >= 0)
    return timers[0] if timers else (-1, "")


def test_kept_timer_matches_a_scan_through_a_simulated_week() -> None:
    checked = 0

    def check(result: BatchResult, _seconds: float) -> None:
        nonlocal checked
        for state in result.changed.values():
            if state.next_at != -2:
                assert (state.next_at, state.next_slot if state.next_at >= 0 else "") == (
                    _scan(state))
                checked += 1

    runner = EmbeddedRunner(load_rules(["rules"]), MemoryStore(), on_batch=[check])
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=5, customers=60, days=7))]
    for i in range(0, len(lines), 300):
        runner.feed(lines[i:i + 300])
    runner.finish()
    assert checked > 500


# times from a few values too: customers due at the same instant come in id order
_DUE_TIMES = st.one_of(st.integers(-1, 400_000), st.sampled_from([-1, 0, 59_999, 60_000, 120_000]))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("abcdefgh"), _DUE_TIMES),
                         max_size=6), min_size=1, max_size=8),
       st.integers(0, 400_000), st.integers(1, 8))
def test_due_index_answers_like_a_sort(commits: list[list[tuple[str, int]]], until: int,
                                       limit: int) -> None:
    index, due = DueIndex(width=60_000), {}
    for changes in commits:
        index.update(dict(changes))
        due.update(dict(changes))
        live = sorted((t, c) for c, t in due.items() if 0 <= t <= until)
        assert index.query(until, limit) == [c for _, c in live[:limit]]
        assert index.query(until, limit) == [c for _, c in live[:limit]]  # a pure query
