"""States in the plain msgpack form: a malformed promise is refused, as its Struct refused it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from valeur_monitor.engine.state import decode_state

OPENED = {"rule": "r", "ref": "x", "opened_at": 1, "open_event": "e", "budget": 2}


def plain(promise: dict[str, Any]) -> bytes:
    return msgspec.msgpack.encode({"customer": "c", "promises": {"r\x1fx": promise}})


@pytest.mark.parametrize("promise", [
    {**OPENED, "rule": 1},                  # a field of the wrong type
    {**OPENED, "opened_at": "1"},
    {**OPENED, "warned": 1},
    {k: v for k, v in OPENED.items() if k != "rule"},   # a required field missing
])
def test_a_malformed_promise_is_refused_in_both_builds(promise: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_state(plain(promise))


def test_a_plain_promise_takes_its_defaults_and_ignores_unknown_keys() -> None:
    promise = decode_state(plain({**OPENED, "later": 7})).promises["r\x1fx"]
    assert promise.row() == ("r", "x", 1, "e", 2, 0, 0, 0, -1, -1, -1, False, -1, "", "", "")


def test_the_plain_form_lists_the_promise_fields_in_their_order() -> None:
    from valeur_monitor.engine import promise, state

    assert state._PlainPromise.__struct_fields__ == promise.FIELDS   # read as Promise(*row)
