"""Scores: benefits minus costs, per-dimension breakdown, decay, and state serialisation."""

from __future__ import annotations

import pytest

from tests.unit.engine.helpers import Driver, ev, rules
from valeur_monitor.engine.scoring import score_at
from valeur_monitor.engine.state import decode_state, encode_state

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
