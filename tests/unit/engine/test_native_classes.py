"""The engine's native classes (the event, a promise, a state and its score): compared, shown
and unhashable as the msgspec Structs they replaced, and written with the Structs' bytes."""

from __future__ import annotations

import inspect
from operator import eq, ne
from typing import Any

import msgspec
import pytest

from valeur_monitor.engine import canonical
from valeur_monitor.engine.compact import decode, encode
from valeur_monitor.engine.compact_types import EventMap
from valeur_monitor.engine.event import Event
from valeur_monitor.engine.state import (
    CustomerState,
    Promise,
    Score,
    decode_state,
    encode_plain,
)


class _OldEvent(msgspec.Struct, gc=False):
    """The Event Struct as it was, before the native class: what states hold must not move."""

    id: str
    type: str
    time: int
    customer: str
    ref: str = ""
    source: str = ""
    channel: str = ""
    team: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)


EVENT = ("e1", "request.opened", 1_790_000_000_000, "c1", "R-1", "crm", "phone", "t",
         {"tier": "gold", "n": 2})


def _objects() -> list[Any]:
    return [Event(*EVENT), Promise("r", "x", 1, "e", 2), Score(1.5, {"d": 1.5}, 3),
            CustomerState("c", 5, pending=[Event(*EVENT)])]


def test_event_fields_are_its_row() -> None:
    event = Event(*EVENT)
    assert event.row() == EVENT == tuple(getattr(event, f) for f in canonical.EVENT_FIELDS)
    assert canonical.EVENT_FIELDS == _OldEvent.__struct_fields__ == EventMap.__struct_fields__
    assert {n for n, v in vars(Event).items() if inspect.isdatadescriptor(v)} == set(
        canonical.EVENT_FIELDS)
    # the Struct's defaults, keywords as before
    assert Event(id="i", type="t", time=1, customer="c").row() == (
        "i", "t", 1, "c", "", "", "", "", {})
    assert Event("i", "t", 1, "c").data is not Event("i", "t", 1, "c").data
    assert event.sort_key() == (EVENT[2], "e1")


@pytest.mark.parametrize("index", range(4))
def test_compared_by_value_shown_by_fields_and_unhashable(index: int) -> None:
    one, other = _objects()[index], _objects()[index]
    # __eq__ and __ne__ each (operator.ne calls __ne__)
    assert eq(one, other) and not ne(one, other) and one is not other
    nxt = _objects()[(index + 1) % 4]
    assert ne(one, nxt) and not eq(one, nxt)
    assert one != one.row() and one != 1    # another type: never equal
    changed = type(one)(*(("changed", *one.row()[1:]) if index != 2 else (9.0,
                                                                           *one.row()[1:])))
    assert ne(one, changed) and not eq(one, changed)
    assert repr(one) == type(one).__name__ + "(" + ", ".join(
        f"{k}={v!r}" for k, v in one.to_dict().items()) + ")"
    assert list(one.to_dict()) == list(type(one).FIELDS)
    with pytest.raises(TypeError):
        hash(one)


def test_pending_events_are_written_as_the_struct_was() -> None:
    state = CustomerState("c1", 5, pending=[Event(*EVENT), Event("e2", "x", 7, "c1")])
    old = [_OldEvent(*EVENT), _OldEvent("e2", "x", 7, "c1")]
    # the plain form: the event maps inside the state's map
    plain = msgspec.msgpack.decode(encode_plain(state))
    assert plain["pending"] == msgspec.msgpack.decode(msgspec.msgpack.encode(old))
    assert msgspec.msgpack.encode(plain["pending"]) == msgspec.msgpack.encode(old)
    # the compact form: the events' bytes inside it are the Structs' bytes
    assert msgspec.msgpack.encode(old) in encode(state)
    for data in (encode(state), encode_plain(state)):
        back = decode_state(data)
        assert back == state and type(back.pending[0]) is Event
    assert decode(encode(state)).pending == state.pending
