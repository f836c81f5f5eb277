"""Business-time arithmetic and fast local RFC 3339 formatting over the simulated period."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SECONDS = tuple(f"{s:02d}" for s in range(61))


def public_holidays(country: str | None, years: Iterable[int]) -> frozenset[date]:
    """Public holidays of `country` (ISO code, e.g. "FR") over `years`; empty for None."""
    if not country:
        return frozenset()
    return frozenset(holidays_lib.country_holidays(country, years=list(years)).keys())


def local_ms(day: date, hour: int, minute: int, zone: ZoneInfo) -> int:
    """Epoch ms of a local wall-clock time (the first one when a DST change repeats it)."""
    moment = datetime.combine(day, time(hour % 24, minute), zone)
    if hour >= 24:
        moment = datetime.combine(day + timedelta(days=1), time(0, minute), zone)
    return int(moment.timestamp()) * 1000


class BusinessClock:
    """Open intervals between two instants, with O(log n) "business time elapsed" both ways.

    Instants are milliseconds since `origin_ms` (epoch ms): small ints are cheaper than epoch
    milliseconds for the arithmetic and comparisons of the hot path.
    """

    def __init__(self, zone: ZoneInfo, first: date, last: date, hours: tuple[int, int],
                 days: Iterable[int], closed: frozenset[date], origin_ms: int = 0) -> None:
        self.zone = zone
        self.origin_ms = origin_ms
        self.closed = closed
        self.days = frozenset(days)
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._before: list[int] = []   # business ms elapsed before each interval
        total = 0
        day = first
        while day <= last:
            if self.is_business_day(day):
                lo = local_ms(day, hours[0], 0, zone) - origin_ms
                hi = local_ms(day, hours[1], 0, zone) - origin_ms
                self._starts.append(lo)
                self._ends.append(hi)
                self._before.append(total)
                total += hi - lo
            day += timedelta(days=1)
        if not self._starts:
            raise ValueError("the business calendar has no open hour in the simulated period")
        self._total = total

    def is_business_day(self, day: date) -> bool:
        """A weekday of the calendar that is not a public holiday."""
        return day.weekday() in self.days and day not in self.closed

    def elapsed(self, ms: int) -> int:
        """Business ms between the first opening and `ms`."""
        i = bisect_right(self._starts, ms) - 1
        if i < 0:
            return 0
        end = self._ends[i]
        return self._before[i] + (ms if ms < end else end) - self._starts[i]

    def instant(self, business: int) -> int:
        """The first instant at which `business` ms of open time have elapsed."""
        if business >= self._total:
            return self._ends[-1] + (business - self._total)   # past the horizon: never emitted
        i = bisect_right(self._before, business) - 1
        return self._starts[i] + (business - self._before[i])

    def add(self, ms: int, business: int) -> int:
        """`ms` plus `business` ms of open time (lands inside business hours when business > 0)."""
        return self.instant(self.elapsed(ms) + business)

    def between(self, start: int, end: int) -> int:
        """Business ms between two instants (0 when end <= start)."""
        return max(0, self.elapsed(end) - self.elapsed(start))

    def is_open(self, ms: int) -> bool:
        """Whether `ms` falls inside business hours."""
        i = bisect_right(self._starts, ms) - 1
        return i >= 0 and ms < self._ends[i]

    def local_date(self, ms: int) -> date:
        """The local calendar date of an instant."""
        return datetime.fromtimestamp((ms + self.origin_ms) // 1000, self.zone).date()

    def at(self, day: date, hour: int, minute: int = 0) -> int:
        """The instant of a local wall-clock time (as `local_ms`, from the origin)."""
        return local_ms(day, hour, minute, self.zone) - self.origin_ms


class TimeFormatter:
    """Instants -> RFC 3339 with the local offset (second precision), cached per minute.

    `format` and `naive` take milliseconds since `origin_ms`; `minute` an epoch minute.
    """

    def __init__(self, zone: ZoneInfo, origin_ms: int = 0) -> None:
        self.zone = zone
        self.origin_ms = origin_ms
        self._cache: dict[int, tuple[str, str]] = {}

    def minute(self, minute: int) -> tuple[str, str]:
        """("YYYY-MM-DDTHH:MM:", "+HH:MM") of an epoch minute, local time."""
        parts = self._cache.get(minute)
        if parts is not None:
            return parts
        moment = datetime.fromtimestamp(minute * 60, self.zone)
        offset = moment.utcoffset() or timedelta(0)
        seconds = int(offset.total_seconds())
        sign = "-" if seconds < 0 else "+"
        hours, rest = divmod(abs(seconds) // 60, 60)
        parts = (moment.strftime("%Y-%m-%dT%H:%M:"), f"{sign}{hours:02d}:{rest:02d}")
        self._cache[minute] = parts
        return parts

    def format(self, ms: int) -> str:
        """RFC 3339 with offset, e.g. 2026-11-02T09:15:00+01:00 (milliseconds dropped)."""
        seconds = (ms + self.origin_ms) // 1000
        parts = self.minute(seconds // 60)
        return parts[0] + SECONDS[seconds % 60] + parts[1]

    def naive(self, ms: int) -> str:
        """The same local wall-clock time without its offset (only for malformed lines)."""
        seconds = (ms + self.origin_ms) // 1000
        parts = self.minute(seconds // 60)
        return parts[0] + SECONDS[seconds % 60]
