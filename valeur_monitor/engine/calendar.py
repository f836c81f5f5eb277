"""Business-hours calendars: weekly opening hours in a time zone, minus holidays."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_SCAN_DAYS = 3700  # ten years: a calendar with no open hour at all must not loop forever


@dataclass(frozen=True)
class Calendar:
    """Open intervals per weekday (minutes from midnight) in `timezone`; `holidays` are closed."""

    name: str
    timezone: str
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # index 0 = Monday
    holidays: frozenset[date] = field(default_factory=frozenset)

    def _zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    @lru_cache(maxsize=4096)  # noqa: B019 - calendars live as long as the rule set
    def open_intervals(self, day: date) -> tuple[tuple[int, int], ...]:
        """Open intervals of one local day as epoch-ms pairs (DST-correct)."""
        if day in self.holidays:
            return ()
        zone = self._zone()
        out = []
        for start_min, end_min in self.weekly[day.weekday()]:
            start = datetime.combine(day, time(0), zone) + timedelta(minutes=start_min)
            end = datetime.combine(day, time(0), zone) + timedelta(minutes=end_min)
            # re-localise so a DST change inside the day is honoured
            start = start.replace(tzinfo=None).replace(tzinfo=zone)
            end = end.replace(tzinfo=None).replace(tzinfo=zone)
            out.append((int(start.timestamp() * 1000), int(end.timestamp() * 1000)))
        return tuple(out)

    def _local_date(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, self._zone()).date()

    def add(self, start_ms: int, business_ms: int) -> int:
        """The instant when `business_ms` of open time have elapsed after `start_ms`."""
        remaining = business_ms
        day = self._local_date(start_ms)
        cursor = start_ms
        for _ in range(_MAX_SCAN_DAYS):
            for lo, hi in self.open_intervals(day):
                if hi <= cursor:
                    continue
                begin = max(lo, cursor)
                if begin + remaining <= hi:
                    return begin + remaining
                remaining -= hi - begin
                cursor = hi
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name!r} has no open hours in ten years")

    def between(self, start_ms: int, end_ms: int) -> int:
        """Open time (ms) between two instants; 0 when end <= start."""
        if end_ms <= start_ms:
            return 0
        total = 0
        day = self._local_date(start_ms)
        last = self._local_date(end_ms)
        while day <= last:
            for lo, hi in self.open_intervals(day):
                lo, hi = max(lo, start_ms), min(hi, end_ms)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_hours(spec: str) -> tuple[tuple[int, int], ...]:
    """'09:00-12:00,13:00-18:00' -> ((540, 720), (780, 1080)); 'closed' -> ()."""
    if spec.strip().lower() in ("closed", ""):
        return ()
    out = []
    for part in spec.split(","):
        try:
            lo_s, hi_s = part.strip().split("-")
            lo, hi = _minutes(lo_s), _minutes(hi_s)
        except ValueError as exc:
            raise ValueError(f"bad opening hours {part.strip()!r}: expected HH:MM-HH:MM") from exc
        if hi <= lo:
            raise ValueError(f"opening hours {part.strip()!r} end before they start")
        out.append((lo, hi))
    out.sort()
    for (_, prev_hi), (lo, _) in pairwise(out):
        if lo < prev_hi:
            raise ValueError(f"opening hours overlap in {spec!r}")
    return tuple(out)


def _minutes(text: str) -> int:
    hours, minutes = text.strip().split(":")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(text)
    return h * 60 + m


def expand_days(key: str) -> list[int]:
    """'mon-fri' -> [0..4]; 'sat' -> [5]; 'mon,wed' -> [0, 2]."""
    days: list[int] = []
    for part in key.lower().split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            ia, ib = DAY_NAMES.index(a.strip()), DAY_NAMES.index(b.strip())
            if ib < ia:
                raise ValueError(f"day range {part!r} goes backwards")
            days.extend(range(ia, ib + 1))
        else:
            days.append(DAY_NAMES.index(part))
    return days
