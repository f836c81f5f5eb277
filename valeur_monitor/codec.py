"""Bytes to canonical events (JSON v1 or CloudEvents 1.0 structured), or a reason why not."""

from __future__ import annotations

from typing import Any

import orjson

from valeur_monitor.engine.event import EVENT_TYPES, REQUEST_STATUSES, Event, parse_time
from valeur_monitor.errors import EventError

_TEXT_FIELDS = ("ref", "source", "channel", "team")
_CE_EXTENSIONS = ("ref", "channel", "team")


def decode(raw: bytes | str) -> Event:
    """Decode one record; raises EventError(reason, detail) for anything not a valid event."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventError("malformed_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise EventError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    if "specversion" in obj:
        obj = _from_cloudevent(obj)
    return from_dict(obj)


def from_dict(obj: dict[str, Any]) -> Event:
    """Validate a canonical-event dict and build the Event."""
    for name in ("id", "type", "time", "customer"):
        value = obj.get(name)
        if value is None or value == "":
            raise EventError("missing_field", f"field {name!r} is required")
        if not isinstance(value, str):
            raise EventError("bad_field", f"field {name!r} must be a string")
    etype = obj["type"]
    required = EVENT_TYPES.get(etype)
    if required is None:
        raise EventError("unknown_type", f"unknown event type {etype!r}")
    try:
        time = parse_time(obj["time"])
    except ValueError as exc:
        raise EventError("bad_time", f"time: {exc}") from None
    data = obj.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise EventError("bad_field", "field 'data' must be an object")
    for field, kind in required.items():
        _check_data(etype, data, field, kind)
    extra = {}
    for name in _TEXT_FIELDS:
        value = obj.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise EventError("bad_field", f"field {name!r} must be a string")
            extra[name] = value
    return Event(id=obj["id"], type=etype, time=time, customer=obj["customer"], data=data, **extra)


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


def _from_cloudevent(obj: dict[str, Any]) -> dict[str, Any]:
    """CloudEvents 1.0 structured mode -> canonical dict (customer from `customer` or `subject`)."""
    if obj.get("specversion") != "1.0":
        version = obj.get("specversion")
        raise EventError("bad_field", f"unsupported CloudEvents specversion {version!r}")
    out: dict[str, Any] = {
        "id": obj.get("id"), "type": obj.get("type"), "time": obj.get("time"),
        "customer": obj.get("customer") or obj.get("subject"),
        "source": obj.get("source"), "data": obj.get("data"),
    }
    for name in _CE_EXTENSIONS:
        if name in obj:
            out[name] = obj[name]
    return out
