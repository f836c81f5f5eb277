"""Bytes to canonical events (JSON v1 or CloudEvents 1.0 structured), or a reason why not."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from valeur_monitor.engine.event import EVENT_TYPES, REQUEST_STATUSES, Event, parse_time
from valeur_monitor.errors import EventError


class _Record(msgspec.Struct):
    """Every top-level field either form may carry; unknown fields are ignored."""

    id: str | None = None
    type: str | None = None
    time: str | None = None
    customer: str | None = None
    ref: str | None = None
    source: str | None = None
    channel: str | None = None
    team: str | None = None
    data: dict[str, Any] | None = None
    specversion: str | None = None
    subject: str | None = None          # CloudEvents: the customer when `customer` is absent


# msgspec decodes straight into the struct: about twice as fast as orjson + dict checks.
_decoder = msgspec.json.Decoder(_Record)
_WHERE = re.compile(r"at `\$\.(\w+)`")


def decode(raw: bytes | str) -> Event:
    """Decode one record; raises EventError(reason, detail) for anything not a valid event."""
    try:
        record = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _refusal(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise EventError("malformed_json", str(exc)) from None
    return _validate(record)


def from_dict(obj: dict[str, Any]) -> Event:
    """Validate a canonical-event (or CloudEvents) dict and build the Event."""
    try:
        record = msgspec.convert(obj, _Record)
    except msgspec.ValidationError as exc:
        raise _refusal(str(exc)) from None
    return _validate(record)


def _refusal(message: str) -> EventError:
    where = _WHERE.search(message)
    if where is None:
        return EventError("not_an_object", message)
    return EventError("bad_field", f"field {where.group(1)!r}: {message.split(' - ')[0]}")


def _validate(r: _Record) -> Event:
    if r.specversion is not None:
        if r.specversion != "1.0":
            raise EventError("bad_field", f"unsupported CloudEvents specversion {r.specversion!r}")
        customer = r.customer or r.subject
    else:
        customer = r.customer
    for name, value in (("id", r.id), ("type", r.type), ("time", r.time),
                        ("customer", customer)):
        if not value:
            raise EventError("missing_field", f"field {name!r} is required")
    assert r.id and r.type and r.time and customer  # narrowed above, for the type checker
    required = EVENT_TYPES.get(r.type)
    if required is None:
        raise EventError("unknown_type", f"unknown event type {r.type!r}")
    try:
        time = parse_time(r.time)
    except ValueError as exc:
        raise EventError("bad_time", f"time: {exc}") from None
    data = r.data if r.data is not None else {}
    for field, kind in required.items():
        _check_data(r.type, data, field, kind)
    return Event(id=r.id, type=r.type, time=time, customer=customer, ref=r.ref or "",
                 source=r.source or "", channel=r.channel or "", team=r.team or "", data=data)


def _check_data(etype: str, data: dict[str, Any], field: str, kind: str) -> None:
    value = data.get(field)
    if value is None:
        raise EventError("invalid_data", f"{etype} needs data.{field}")
    if kind == "time":
        try:
            parse_time(value)
        except ValueError as exc:
            raise EventError("invalid_data", f"data.{field}: {exc}") from None
    elif kind == "str" and not isinstance(value, str):
        raise EventError("invalid_data", f"data.{field} must be a string")
    elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise EventError("invalid_data", f"data.{field} must be a number")
    elif kind == "status" and value not in REQUEST_STATUSES:
        raise EventError("invalid_data",
                         f"data.status must be one of {', '.join(sorted(REQUEST_STATUSES))}")
