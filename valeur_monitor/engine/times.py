"""Event times: RFC 3339 with an offset to epoch milliseconds and back (compiled by mypyc).

Re-exported by `valeur_monitor.engine.event`; apart from it because that module has a module
`__getattr__`, which mypyc cannot compile (the event itself is in the compiled `canonical`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Final

# RFC 3339 `date-time` with a mandatory offset, local year 1970..8999 (so every deadline derived
# from it stays inside datetime's range); the same pattern is in the published JSON Schemas.
TIMESTAMP_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
    r"(?!\n)$"
)
# Final: compiled by mypyc, a Final module name is a C static; any other module global is a
# look-up in the module's dict at every use (parse_time runs once per record)
_TIMESTAMP: Final = re.compile(TIMESTAMP_PATTERN)
_EPOCH_DATE: Final = date(1970, 1, 1)
_HOURS: Final[dict[str, int]] = {}   # "YYYY-MM-DDThh" -> epoch ms (a stream has few hours)
_ZONES: Final[dict[str, int]] = {"Z": 0, "z": 0}   # "+01:00" -> ms to subtract
# ":mm:ss[.fff]<zone>" -> ms to add to its hour, for tails already seen in a valid timestamp.
# The pattern has no dependency between the "YYYY-MM-DDThh" head and this tail, so a known
# head and a known tail make a valid timestamp: the common case is two dict look-ups.
_TAILS: Final[dict[str, int]] = {}


class _Last:
    """The hour of the last valid timestamp read: events come in near time order, so most
    share the hour of the one before (its text a prefix of theirs: no slice, no hash)."""

    __slots__ = ("hour",)

    def __init__(self) -> None:
        # ("YYYY-MM-DDThh", its epoch ms), replaced whole: one store, whichever thread reads
        self.hour = ("1970-01-01T00", 0)


_LAST: Final = _Last()


def parse_time(value: object) -> int:
    """RFC 3339 timestamp with an explicit offset -> epoch milliseconds; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 string, got {type(value).__name__}")
    head, ms = _LAST.hour
    if value.startswith(head):
        tail = _TAILS.get(value[13:])
        if tail is not None:
            return ms + tail
    else:
        head = value[:13]
        hour = _HOURS.get(head)
        if hour is not None:
            tail = _TAILS.get(value[13:])
            if tail is not None:
                _LAST.hour = (head, hour)
                return hour + tail
    return _parse_checked(value)


def _parse_checked(value: str) -> int:
    """`parse_time` by the pattern (a first-seen hour or tail), with the reason of a refusal;
    what it finds valid is remembered for the common path."""
    match = _TIMESTAMP.match(value)
    if match is None:
        raise ValueError(f"{value[:40]!r} is not an RFC 3339 timestamp with an offset "
                         "(e.g. 2026-11-02T09:15:00+01:00), year 1970..8999")
    hour = _HOURS.get(value[:13])
    if hour is None:
        try:   # the pattern cannot know month lengths: 2026-02-30 is refused here
            day = (date.fromisoformat(value[:10]) - _EPOCH_DATE).days
        except ValueError as exc:
            raise ValueError(f"{value[:40]!r}: {exc}") from None
        if len(_HOURS) > 100_000:
            _HOURS.clear()
        hour = _HOURS[value[:13]] = day * 86_400_000 + int(value[11:13]) * 3_600_000
    ms = int(value[14:16]) * 60_000 + int(value[17:19]) * 1000
    fraction, zone = match.group(5), match.group(6)
    if fraction:
        ms += int((fraction[1:] + "00")[:3])
    offset = _ZONES.get(zone)
    if offset is None:
        minutes = int(zone[1:3]) * 60 + int(zone[4:6])
        offset = _ZONES[zone] = minutes * 60_000 if zone[0] == "+" else -minutes * 60_000
    if len(_TAILS) > 100_000:
        _TAILS.clear()
    _TAILS[value[13:]] = ms - offset
    return hour + ms - offset


_DAYS: Final[dict[int, str]] = {}     # day number since the epoch -> "YYYY-MM-DDT"
# Below this (year 2096) datetime's float seconds round to the exact millisecond, so the
# arithmetic below gives its very text; later instants go through datetime as before.
_EXACT_UNTIL: Final = 4_000_000_000_000


def format_time(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 in UTC, second precision unless milliseconds matter."""
    if not 0 <= ms < _EXACT_UNTIL:
        return format_time_by_datetime(ms)
    day, rest = divmod(ms, 86_400_000)
    head = _DAYS.get(day)
    if head is None:   # the date through datetime once per day; the time of day by arithmetic
        text = format_time_by_datetime(ms)
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        _DAYS[day] = text[:11]
        return text
    seconds, milli = divmod(rest, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if milli:
        return f"{head}{hours:02d}:{minutes:02d}:{seconds:02d}.{milli:03d}Z"
    return f"{head}{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def format_time_by_datetime(ms: int) -> str:
    """The reference `format_time` (through datetime), for the first instant of each day."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
