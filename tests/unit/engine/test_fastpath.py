"""The CEL shortcut agrees with CEL itself on every input, or defers to it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.expressions import Condition
from valeur_monitor.engine.fastpath import compile_fast

pytestmark = pytest.mark.unit

EXPRESSIONS = [
    'has(data.topic)',
    'data.status == "open"',
    "data.status != 'open'",
    'data.status in ["pending", "on_hold"]',
    'data.score >= 4',
    'data.score < -1',
    'data.score == 3',
    'has(data.topic) && data.status == "open" && data.score <= 2',
    'data.flag == true',
    'data.flag == false',
    '!(has(data.flag) && data.flag)',
    'has(data.score) && data.score <= 1 && !(has(data.flag) && data.flag)',
    'has(data.flag) && data.flag == true',
]
values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10),
                   st.floats(-10, 10, allow_nan=False), st.sampled_from(["open", "pending", "x"]),
                   st.lists(st.integers(), max_size=2))
datas = st.dictionaries(st.sampled_from(["topic", "status", "score", "other", "flag"]), values,
                        max_size=4)


def _cel_only(source: str, data: dict[str, Any]) -> bool:
    condition = Condition(source)
    condition._fast = None  # force CEL for the reference answer
    return condition.test(Event(id="e", type="survey.answered", time=0, customer="c",
                                data=data))


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_every_listed_shape_takes_the_shortcut(source: str) -> None:
    assert compile_fast(source) is not None


@pytest.mark.parametrize("source", ['data.a || data.b', '!has(data.a)', 'size(data.a) > 1',
                                    '!(has(data.a) && data.b)', '(data.a == "x"',
                                    'channel == "phone"', 'data.a == "x\\"y"'])
def test_other_shapes_go_to_cel(source: str) -> None:
    assert compile_fast(source) is None


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(EXPRESSIONS), data=datas)
def test_shortcut_equals_cel(source: str, data: dict[str, Any]) -> None:
    fast = Condition(source).test(Event(id="e", type="survey.answered", time=0, customer="c",
                                        data=data))
    assert fast == _cel_only(source, data)
