"""Scores: benefits minus costs, per-dimension breakdown, decay, and state serialisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.engine.helpers import Driver, ev, rules
from valeur_monitor.engine.scoring import apply_value, apply_values, score_at
from valeur_monitor.engine.state import Score, decode_state, encode_state

pytestmark = pytest.mark.unit

BODY = """
rules:
  - id: no-show
    on: visit.no_show
    costs: {time: 4, money: 1}
  - id: happy
    on: survey.answered
    benefits: {experience: 2}
"""


def test_score_is_benefits_minus_costs_with_breakdown() -> None:
    d = Driver(rules(BODY)).feed(ev("e1", "visit.no_show", "2026-11-02T09:00:00Z"),
                                 ev("e2", "survey.answered", "2026-11-02T10:00:00Z", score=5),
                                 until="2026-11-02T11:00:00Z")
    s = d.state.score
    assert s.total == -3
    assert s.dims == {"time": -4, "money": -1, "experience": 2}
    assert (s.created, s.destroyed) == (2, 5)
    assert d.state.reasons == {"no-show": -5, "happy": 2}
    assert [e.seq for e in d.out.entries] == [1, 2, 3]


def test_half_life_decay() -> None:
    ruleset = rules(BODY, settings="settings: {half_life: 1d}\n")
    d = Driver(ruleset).feed(ev("e1", "visit.no_show", "2026-11-02T00:00:00Z"),
                             ev("e2", "survey.answered", "2026-11-03T00:00:00Z", score=5),
                             until="2026-11-03T00:00:00Z")
    # -5 one half-life old counts -2.5, plus +2 fresh
    assert d.state.score.total == pytest.approx(-0.5)
    one_day_later = d.state.score.at + 86_400_000
    assert score_at(d.state.score, one_day_later, ruleset.settings.half_life) == pytest.approx(
        -0.25)


def test_state_round_trips_byte_for_byte() -> None:
    d = Driver(rules(BODY)).feed(ev("e1", "visit.no_show", "2026-11-02T09:00:00Z"),
                                 ev("e3", "survey.answered", "2026-11-02T12:00:00Z", score=4))
    data = encode_state(d.state)
    back = decode_state(data)
    assert back == d.state
    assert encode_state(back) == data
    assert [e.id for e in back.pending] == ["e1", "e3"]


_DIMS = st.sampled_from(["time", "money", "quality", "service"])
_VALUE = st.floats(min_value=-50, max_value=50, allow_nan=False).map(lambda v: round(v, 2))


@settings(max_examples=300, deadline=None)
@given(start=st.lists(st.tuples(_DIMS, _VALUE, st.integers(0, 10**9)), max_size=4),
       worth=st.lists(st.tuples(_DIMS, _VALUE), min_size=1, max_size=4),
       at=st.integers(0, 10**9), half_life=st.sampled_from([None, 0, 3_600_000, 86_400_000]))
def test_apply_values_is_apply_value_per_value(
        start: list[tuple[str, float, int]], worth: list[tuple[str, float]], at: int,
        half_life: int | None) -> None:
    """One outcome's values applied at once give the very floats of one call per value,
    whether the outcome is later than the score, as late, or earlier (decayed)."""
    one, many = Score(), Score()
    for dim, value, when in start:
        apply_value(one, dim, value, when, half_life)
        apply_value(many, dim, value, when, half_life)
    for dim, value in worth:
        apply_value(one, dim, value, at, half_life)
    apply_values(many, tuple((dim, abs(value), value) for dim, value in worth), at, half_life)
    assert (many.total, many.dims, many.at) == (one.total, one.dims, one.at)
