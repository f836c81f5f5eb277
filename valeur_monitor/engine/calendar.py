"""Business-hours calendars: weekly opening hours in a time zone, minus holidays."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from types import FunctionType
from typing import Final
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Final: constants when compiled by mypyc (a plain module global is a dict look-up per use)
_MAX_SCAN_DAYS: Final = 3700  # ten years: a calendar with no open hour must not loop forever
_GROW_DAYS: Final = 366       # the interval table grows a year at a time
_MAX_TABLE_DAYS: Final = 40 * 366  # wider spans (odd timestamps) take the day-by-day walk
_SURELY_WITHIN: Final = (_MAX_SCAN_DAYS - 2) * 86_400_000  # closer: inside the walk's reach
_SLICE: Final = 86_400_000   # the table's index of where each day-long slice of time starts
_SCAN: Final = 16            # intervals stepped over one by one before bisecting


@dataclass(frozen=True)
class Calendar:
    """Open intervals per weekday (minutes from midnight) in `timezone`; `holidays` are closed.

    `add` and `between` answer from a table of open intervals as epoch-ms integers with prefix
    sums (two bisections, no datetime per call); the day-by-day walk they replaced is kept as
    `add_by_days`/`between_by_days`, the reference the table is property-tested against and the
    path for instants too far from the table.
    """

    name: str
    timezone: str
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # index 0 = Monday
    holidays: frozenset[date] = field(default_factory=frozenset)
    _table: _Table = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", _Table(self))

    def _zone(self) -> ZoneInfo:
        return _zone(self.timezone)

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

    def local_date(self, ms: int) -> date:
        """The calendar's local date at an instant."""
        return datetime.fromtimestamp(ms / 1000, self._zone()).date()

    def add(self, start_ms: int, business_ms: int) -> int:
        """The instant when `business_ms` of open time have elapsed after `start_ms`."""
        found = self._table.add(start_ms, business_ms)
        return found if found is not None else self.add_by_days(start_ms, business_ms)

    def between(self, start_ms: int, end_ms: int) -> int:
        """Open time (ms) between two instants; 0 when end <= start."""
        if end_ms <= start_ms:
            return 0
        found = self._table.between(start_ms, end_ms)
        return found if found is not None else self.between_by_days(start_ms, end_ms)

    def add_by_days(self, start_ms: int, business_ms: int) -> int:
        """`add` walking local days one by one (the reference implementation)."""
        remaining = business_ms
        day = self.local_date(start_ms)
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

    def between_by_days(self, start_ms: int, end_ms: int) -> int:
        """`between` walking local days one by one (the reference implementation)."""
        if end_ms <= start_ms:
            return 0
        total = 0
        day = self.local_date(start_ms)
        last = self.local_date(end_ms)
        while day <= last:
            for lo, hi in self.open_intervals(day):
                lo, hi = max(lo, start_ms), min(hi, end_ms)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


class _Table:
    """Open intervals of a span of local days as sorted integers, with open time before each.

    The span grows on demand (a year at a time) up to `_MAX_TABLE_DAYS`; beyond that, or when
    a DST oddity makes an interval empty or out of order, the caller takes the day walk.
    """

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.first: date | None = None
        self.days = 0
        self.start_ms = self.end_ms = 0       # covered instants: [start_ms, end_ms)
        self.lo: list[int] = []
        self.hi: list[int] = []
        self.before: list[int] = []           # open ms of the table before interval i
        self.after: list[int] = []            # before[i] + (hi[i] - lo[i])
        # first interval ending after the start of each `_SLICE` of [start_ms, end_ms): where
        # the search for an instant starts (a few intervals a day: then a step or two)
        self.slices: list[int] = []
        self.usable = True

    def _midnight(self, day: date) -> int:
        zone = self.calendar._zone()
        return int(datetime.combine(day, time(0), zone).timestamp() * 1000)

    def _cover(self, first: date, last: date) -> bool:
        """Make the table span at least [first, last]; False if it would be too large."""
        if self.first is not None:
            first = min(first, self.first)
            last = max(last, self.first + timedelta(days=self.days - 1))
        days = (last - first).days + 1
        if days > _MAX_TABLE_DAYS:
            return False
        lo: list[int] = []
        hi: list[int] = []
        day = first
        for _ in range(days):
            for a, b in self.calendar.open_intervals(day):
                if b < a or (hi and a < hi[-1]):
                    self.usable = False  # not a sorted run of disjoint intervals
                lo.append(a)
                hi.append(b)
            day += timedelta(days=1)
        before, after, total = [], [], 0
        for a, b in zip(lo, hi, strict=True):
            before.append(total)
            total += b - a
            after.append(total)
        self.first, self.days = first, days
        self.start_ms, self.end_ms = self._midnight(first), self._midnight(day)
        self.lo, self.hi, self.before, self.after = lo, hi, before, after
        self.slices = [_c_right(hi, at) for at in range(self.start_ms, self.end_ms, _SLICE)]
        return True

    def _reach(self, ms: int) -> bool:
        """Make sure `ms` is inside the table (with a year of margin after it)."""
        if self.start_ms <= ms < self.end_ms and self.first is not None:
            return self.usable
        day = self.calendar.local_date(ms)
        return self._cover(day - timedelta(days=7), day + timedelta(days=_GROW_DAYS)) and (
            self.usable)

    def _scan_limit(self, start_ms: int) -> int:
        """Where the day walk gives up: local midnight `_MAX_SCAN_DAYS` after start's day."""
        return self._midnight(self.calendar.local_date(start_ms) + timedelta(days=_MAX_SCAN_DAYS))

    def _open_before(self, ms: int) -> int:
        i = (_bisect_right(self.lo, ms) if _NATIVE else _c_right(self.lo, ms)) - 1
        if i < 0:
            return 0
        return self.before[i] + min(ms, self.hi[i]) - self.lo[i]

    def between(self, start_ms: int, end_ms: int) -> int | None:
        if not (self.start_ms <= start_ms and end_ms < self.end_ms and self.usable) and not (
                self._reach(start_ms) and self._reach(end_ms)):
            return None
        return self._open_before(end_ms) - self._open_before(start_ms)

    def add(self, start_ms: int, business_ms: int) -> int | None:
        # The common case first, inlined (it runs for nearly every promise opened): start
        # inside the table and the answer found without growing it nor nearing the scan limit.
        if self.start_ms <= start_ms < self.end_ms and self.usable:
            hi = self.hi
            n = len(hi)
            if _NATIVE:   # compiled: from the slice's first interval, step by step
                j = self.slices[(start_ms - self.start_ms) // _SLICE]
                while j < n and hi[j] <= start_ms:
                    j += 1
            else:
                j = _c_right(hi, start_ms)
            if j < n:
                lo, before, after = self.lo, self.before, self.after
                first = lo[j]
                target = before[j] + (first if first > start_ms else start_ms) - first + (
                    business_ms)
                if _NATIVE:   # most budgets end within a few intervals: step, then bisect
                    k, stop = j, min(n, j + _SCAN)
                    while k < stop and after[k] < target:
                        k += 1
                    if k == stop:
                        k = _bisect_left(after, target, k)
                else:
                    k = _c_left(after, target, j)
                if k < n and lo[k] - start_ms < _SURELY_WITHIN:
                    return lo[k] + target - before[k]
        return self._add(start_ms, business_ms)

    def _add(self, start_ms: int, business_ms: int) -> int | None:
        if not self._reach(start_ms):
            return None
        limit = -1  # local midnight ten years after start's day, computed only when needed
        while True:
            # first interval still open after start
            j = _bisect_right(self.hi, start_ms) if _NATIVE else _c_right(self.hi, start_ms)
            if j < len(self.hi):
                target = self.before[j] + max(self.lo[j], start_ms) - self.lo[j] + business_ms
                k = (_bisect_left(self.after, target, j) if _NATIVE
                     else _c_left(self.after, target, j))
                if k < len(self.after):
                    if self.lo[k] - start_ms < _SURELY_WITHIN:
                        return self.lo[k] + target - self.before[k]
                    limit = self._scan_limit(start_ms) if limit < 0 else limit
                    if self.lo[k] >= limit:
                        break
                    return self.lo[k] + target - self.before[k]
            limit = self._scan_limit(start_ms) if limit < 0 else limit
            if self.end_ms >= limit:
                break
            assert self.first is not None
            last = self.first + timedelta(days=self.days - 1 + _GROW_DAYS)
            if not self._cover(self.first, last) or not self.usable:
                return None
        raise ValueError(f"calendar {self.calendar.name!r} has no open hours in ten years")


def _bisect_right(a: list[int], x: int, lo: int = 0) -> int:
    """`bisect.bisect_right` on a list of ints, written out for the compiled build: there
    its comparisons are native integer ones, where the C function is a generic call (module
    look-up, arguments boxed, a rich compare per step): ≈ 1,400 instructions per call, two
    per promise opened. Interpreted it is 10× slower than the C one, which is used there."""
    hi = len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _bisect_left(a: list[int], x: int, lo: int = 0) -> int:
    """`bisect.bisect_left` on a list of ints, written out (as `_bisect_right`)."""
    hi = len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


_c_right: Final = bisect.bisect_right
_c_left: Final = bisect.bisect_left
# compiled by mypyc, a function of this module is not a Python function object
_NATIVE: Final = not isinstance(_bisect_right, FunctionType)


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
