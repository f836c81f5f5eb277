"""Any bytes to a canonical event (JSON v1 or CloudEvents 1.0 structured), or a reason why not.

Valid records take a fast path (one msgspec decode into a closed struct, a few checks); anything
that fails there is decoded again on the exhaustive path, which finds the precise dead-letter
reason. Neither path lets an exception other than EventError out, whatever the bytes.
The fast path's msgspec struct and the (pickled) input limits live in `codec_types`, which
stays interpreted, so that mypyc can compile this module.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor import reasons as R
from valeur_monitor.catalogue.model import Catalogue
from valeur_monitor.codec_types import FUTURE_LIMIT as FUTURE_LIMIT
from valeur_monitor.codec_types import MAX_BYTES as MAX_BYTES
from valeur_monitor.codec_types import MAX_DEPTH as MAX_DEPTH
from valeur_monitor.codec_types import InputLimits as InputLimits
from valeur_monitor.codec_types import Record
from valeur_monitor.engine.event import CHANNELS, Event, parse_time
from valeur_monitor.errors import EventError

INT_MIN: Final = -(1 << 63)       # what msgspec, orjson and Redis all carry
INT_MAX: Final = (1 << 64) - 1
# Final: compiled by mypyc, a Final module name is a C static, where any other module global
# (an imported name too) is a look-up in the module's dict at each use: ten per record here
_CHANNELS: Final = frozenset(CHANNELS)
_EXTENSION: Final = re.compile(r"[a-z0-9]{1,20}\Z")
_UNSET: Final[Any] = msgspec.UNSET
_astuple: Final = msgspec.structs.astuple
_TEXT = ("id", "type", "time", "customer", "ref", "source", "channel", "team")
CANONICAL_FIELDS = frozenset({*_TEXT, "data"})
CLOUDEVENT_FIELDS = frozenset({*CANONICAL_FIELDS, "specversion", "subject", "datacontenttype",
                               "dataschema"})


_fast_decoder: Final = msgspec.json.Decoder(Record)
_any_decoder: Final = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded event with the bytes it came from (kept for dead letters and outputs)."""

    event: Event
    raw: bytes


class Codec:
    """Decodes records against one catalogue with size and depth limits."""

    def __init__(self, catalogue: Catalogue, *, max_bytes: int = MAX_BYTES,
                 max_depth: int = MAX_DEPTH) -> None:
        self.catalogue = catalogue
        self._types = catalogue.types   # the fast path's look-up (a Catalogue is frozen)
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def decode(self, raw: object) -> Event:
        """Decode one record (bytes or text; a null value or any other object is refused too);
        raises EventError(reason, detail) for anything that is not a valid event."""
        data = raw if type(raw) is bytes else _as_bytes(raw)
        if len(data) > self.max_bytes and len(data.rstrip(b"\r\n")) > self.max_bytes:
            raise EventError(R.TOO_LARGE, f"record longer than the {self.max_bytes:,}-byte "
                                          "limit (input.max_record_bytes)")
        try:
            record = _fast_decoder.decode(data)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            return self._exhaustive(data)
        event = self._fast(record)
        return event if event is not None else self._exhaustive(data)

    def decode_record(self, raw: object) -> Decoded:
        """The event with its original bytes."""
        data = _as_bytes(raw)
        return Decoded(self.decode(data), data)

    # -- fast path: a closed struct, every check cheap; None = let the exhaustive path judge ---
    def _fast(self, r: Record) -> Event | None:
        # the struct's types are checked by msgspec: a text field is a str or UNSET. Its fields
        # in one call (a tuple in declaration order): compiled, each `r.field` was a generic
        # attribute read of a msgspec Struct (type look-up, member descriptor), 13 per record
        (rid, etype, rtime, customer, ref, source, channel, team, data, specversion, subject,
         datacontenttype, dataschema) = _astuple(r)
        if specversion is _UNSET:
            if (subject is not _UNSET or datacontenttype is not _UNSET
                    or dataschema is not _UNSET):
                return None
            if source is _UNSET:
                source = ""
        else:
            if specversion != "1.0" or source is _UNSET or not source:
                return None
            if datacontenttype is not _UNSET and datacontenttype != "application/json":
                return None
            if subject is not _UNSET and not subject:
                return None
            if customer is _UNSET:
                customer = subject
        if customer is _UNSET or not customer or not rid:
            return None
        if channel is _UNSET:
            channel = ""
        elif channel not in _CHANNELS:
            return None
        types = self._types
        if etype not in types:
            return None
        try:
            time = parse_time(rtime)
        except ValueError:
            return None
        if data:
            # checked each time: the catalogue's check of a few string values (a set look-up
            # each) costs less than a memo keyed by them (a tuple of the items, built, hashed
            # and compared per record: 3.4k instructions compiled, docs/benchmarks.md)
            if (not _values_ok(data, 2, self.max_depth)
                    or self.catalogue.check_data(etype, data) is not None):
                return None
        elif types[etype].required:
            return None
        # positional: Event's field order (id, type, time, customer, ref, source, channel, team)
        # (Event is a native class: a direct call of its constructor when compiled)
        return Event(rid, etype, time, customer, ref, source, channel, team, data)

    # -- exhaustive path: the precise reason ----------------------------------------------------
    def _exhaustive(self, data: bytes) -> Event:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventError(R.BAD_ENCODING, f"not UTF-8: byte {exc.start} "
                                             f"({data[exc.start:exc.start + 1]!r})") from None
        try:
            obj = _any_decoder.decode(data)
        except RecursionError:
            raise EventError(R.TOO_DEEP, "JSON nested deeper than the parser allows") from None
        except UnicodeDecodeError as exc:
            raise EventError(R.BAD_ENCODING, f"not UTF-8: {exc.reason}") from None
        except msgspec.ValidationError as exc:   # msgspec: a number out of range (1e999)
            raise EventError(R.BAD_NUMBER, str(exc).split(" - ")[0]) from None
        except msgspec.DecodeError as exc:
            if _surrogates_only(text):
                raise EventError(R.BAD_ENCODING, "a \\u escape of a lone UTF-16 surrogate "
                                                 "(not a Unicode character)") from None
            raise EventError(R.MALFORMED_JSON, str(exc)) from None
        if not isinstance(obj, dict):
            problem = _limits(obj, 1, self.max_depth)
            if problem is not None:
                raise EventError(*problem)
            raise EventError(R.NOT_AN_OBJECT, f"expected a JSON object, got {_kind(obj)}")
        return self.from_dict(obj)

    def from_dict(self, obj: dict[str, Any]) -> Event:
        """Validate a canonical-event (or CloudEvents) dict exactly as the schemas do."""
        problem = _limits(obj, 1, self.max_depth)
        if problem is not None:
            raise EventError(*problem)
        cloud = "specversion" in obj
        allowed = CLOUDEVENT_FIELDS if cloud else CANONICAL_FIELDS
        for key in obj:
            if key not in allowed and not (cloud and _EXTENSION.match(key)):
                raise EventError(R.BAD_FIELD, f"unknown field {key[:40]!r}")
        for key in (*_TEXT, "subject", "dataschema"):
            if key in obj and not isinstance(obj[key], str):
                raise EventError(R.BAD_FIELD, f"field {key!r} must be a string, "
                                              f"got {_kind(obj[key])}")
        if "data" in obj and not isinstance(obj["data"], dict):
            raise EventError(R.BAD_FIELD, f"field 'data' must be an object, "
                                          f"got {_kind(obj['data'])}")
        if "channel" in obj and obj["channel"] not in _CHANNELS:
            raise EventError(R.BAD_FIELD, f"channel {obj['channel'][:40]!r} is not one of "
                                          f"{', '.join(CHANNELS)}")
        if cloud:
            if obj["specversion"] != "1.0":
                raise EventError(R.BAD_FIELD, "unsupported CloudEvents specversion "
                                              f"{str(obj['specversion'])[:20]!r}")
            if obj.get("datacontenttype", "application/json") != "application/json":
                raise EventError(R.BAD_FIELD, "datacontenttype must be application/json")
            for key in ("subject", "customer", "source"):
                if obj.get(key) == "":
                    raise EventError(R.MISSING_FIELD, f"field {key!r} is empty")
        customer = customer_of(obj)
        names = ("id", "type", "time", "customer", *(("source",) if cloud else ()))
        for name, value in zip(names, (obj.get("id"), obj.get("type"), obj.get("time"),
                                       customer, obj.get("source")), strict=False):
            if not value:
                raise EventError(R.MISSING_FIELD, f"field {name!r} is required")
        etype: str = obj["type"]
        if etype not in self.catalogue.types:
            raise EventError(R.UNKNOWN_TYPE, f"unknown event type {etype[:60]!r}")
        try:
            time = parse_time(obj["time"])
        except ValueError as exc:
            raise EventError(R.BAD_TIME, f"time: {exc}") from None
        data: dict[str, Any] = obj.get("data", {})
        invalid = self.catalogue.check_data(etype, data)
        if invalid is not None:
            raise EventError(R.INVALID_DATA, invalid)
        assert customer is not None  # checked with the required fields
        return Event(id=obj["id"], type=etype, time=time, customer=customer,
                     ref=obj.get("ref", ""), source=obj.get("source", ""),
                     channel=obj.get("channel", ""), team=obj.get("team", ""), data=data)


def customer_of(obj: dict[str, Any]) -> str | None:
    """The customer of a decoded record: `customer`, else (CloudEvents only) `subject`."""
    customer = obj.get("customer")
    if customer is None and "specversion" in obj:
        customer = obj.get("subject")
    return customer if isinstance(customer, str) and customer else None


def routing_key(raw: bytes | str) -> bytes | None:
    """The Kafka key of a record: its customer id as UTF-8 (the decoder's precedence: the
    `customer` field or CloudEvents extension, else CloudEvents `subject`), None when unreadable.
    Used by `produce`, the ingest side and the worker's partition check alike."""
    try:
        obj = _any_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeError):
        return None
    if not isinstance(obj, dict):
        return None
    customer = customer_of(obj)
    return customer.encode() if customer is not None else None


# -- limits every JSON value must respect (not expressible in JSON Schema) -----------------------
def _values_ok(obj: dict[str, Any], depth: int, max_depth: int) -> bool:
    for value in obj.values():
        kind = type(value)
        if kind is str or kind is bool or kind is float or value is None:
            continue
        if kind is int:
            if not INT_MIN <= value <= INT_MAX:
                return False
        elif _limits(value, depth + 1, max_depth) is not None:
            return False
    return True


def _limits(value: Any, depth: int, max_depth: int) -> tuple[str, str] | None:
    """(reason, detail) for a value nested too deep or carrying an out-of-range number."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > max_depth:
                return R.TOO_DEEP, f"JSON nested more than {max_depth} levels"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT_MIN <= item <= INT_MAX:
                return R.BAD_NUMBER, "integer outside the 64-bit range"
        elif isinstance(item, float) and not math.isfinite(item):
            return R.BAD_NUMBER, "non-finite number"
    return None


def _surrogates_only(text: str) -> bool:
    """True when `text` is JSON that only msgspec's refusal of lone surrogate escapes spoils."""
    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return True


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def record_bytes(raw: object) -> tuple[bytes, EventError | None]:
    """A record's bytes as kept (dead letters, outputs) and, if they cannot be decoded, why:
    the one home of both. Text is UTF-8 (a lone surrogate kept by `surrogatepass`, refused
    `bad_encoding`); a null value (a Kafka tombstone) or any other object that is not a
    record's bytes is kept as b"" and refused `malformed_json`, saying what it was."""
    if isinstance(raw, bytes):
        return raw if type(raw) is bytes else bytes(raw), None
    if isinstance(raw, str):
        try:
            return raw.encode("utf-8"), None
        except UnicodeEncodeError:
            return (raw.encode("utf-8", "surrogatepass"),
                    EventError(R.BAD_ENCODING, "text with a lone surrogate"))
    if isinstance(raw, (bytearray, memoryview)):
        return bytes(raw), None
    what = "no value (a tombstone)" if raw is None else f"a {type(raw).__name__}, not bytes"
    return b"", EventError(R.MALFORMED_JSON, what)


def _as_bytes(raw: object) -> bytes:
    """The bytes to decode; EventError (with the reason) when there are none to decode."""
    data, problem = record_bytes(raw)
    if problem is not None:
        raise problem
    return data


# -- the default codec: the active catalogue, the configured limits -----------------------------
_limits_in_use = InputLimits()
_default: Codec | None = None


def configure_limits(limits: InputLimits) -> None:
    """Use these limits in the default codec and in processors created from now on."""
    global _limits_in_use
    _limits_in_use = limits
    reset()


def input_limits() -> InputLimits:
    return _limits_in_use


def default_codec() -> Codec:
    """The codec of the active catalogue and limits (rebuilt when either changes)."""
    global _default
    if _default is None:
        _default = Codec(event_catalogue.active(), max_bytes=_limits_in_use.max_bytes,
                         max_depth=_limits_in_use.max_depth)
    return _default


def reset() -> None:
    """Forget the default codec (the active catalogue changed)."""
    global _default
    _default = None


def decode(raw: object) -> Event:
    """Decode one record with the default codec; raises EventError(reason, detail)."""
    codec = _default   # (once per record: no call to find it when it exists)
    return (codec if codec is not None else default_codec()).decode(raw)


def from_dict(obj: dict[str, Any]) -> Event:
    """Validate a canonical-event (or CloudEvents) dict and build the Event."""
    return default_codec().from_dict(obj)
