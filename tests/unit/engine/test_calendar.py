"""The integer interval table of a calendar answers exactly like the day-by-day walk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valeur_monitor.engine import calendar as calendar_module
from valeur_monitor.engine.calendar import Calendar

ZONES = ("UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
MS_2020 = 1_577_836_800_000
YEAR_MS = 365 * 86_400_000
DAY_MS = 86_400_000

# Hours that cross DST changes (02:00-03:00 local vanishes or repeats), midnight, whole days.
SPANS = [(540, 720), (780, 1080), (0, 1440), (120, 180), (90, 200), (1380, 1440), (0, 60),
         (600, 601)]


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    weekly = []
    for _ in range(7):
        picked = sorted(draw(st.sets(st.sampled_from(range(len(SPANS))), max_size=2)))
        spans = sorted(SPANS[i] for i in picked)
        if len(spans) == 2 and spans[1][0] < spans[0][1]:
            spans = spans[:1]
        weekly.append(tuple(spans))
    if not any(weekly):
        weekly[0] = ((540, 1080),)
    first = date(2020, 1, 1)
    holidays = draw(st.frozensets(st.integers(0, 4000).map(lambda n: first + timedelta(days=n)),
                                  max_size=40))
    return Calendar("c", draw(st.sampled_from(ZONES)), tuple(weekly), holidays)


instants = st.integers(MS_2020 - YEAR_MS, MS_2020 + 10 * YEAR_MS)
amounts = st.one_of(st.integers(0, 3 * DAY_MS), st.integers(0, 20 * DAY_MS))


@settings(max_examples=60, deadline=None)
@given(calendars(), st.lists(st.tuples(instants, amounts, st.integers(-DAY_MS, 90 * DAY_MS)),
                             min_size=1, max_size=12))
def test_table_agrees_with_the_day_walk(calendar: Calendar,
                                        calls: list[tuple[int, int, int]]) -> None:
    for start, amount, span in calls:  # successive calls grow and reuse one table
        assert _answer(calendar.add, start, amount) == _answer(calendar.add_by_days, start,
                                                               amount)
        assert calendar.between(start, start + span) == calendar.between_by_days(
            start, start + span)


@pytest.fixture
def compiled_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's search as the compiled build runs it (`_NATIVE`: day slices, stepping,
    the written-out bisections), here too when interpreted, where the C bisect is used: a
    branch taken in one build only is otherwise tested by the compiled suite alone."""
    monkeypatch.setattr(calendar_module, "_NATIVE", True)


# On a half-hour grid (the spans' ends, in every zone above): instants on an interval's end and
# budgets ending exactly at one, where a search's `<` and `<=` differ
HALF_HOUR = 1_800_000
on_grid = st.integers((MS_2020 - YEAR_MS) // HALF_HOUR, (MS_2020 + 10 * YEAR_MS) // HALF_HOUR)
grid_calls = st.builds(
    lambda base, calls: [(base + at, amount, span) for at, amount, span in calls],
    on_grid.map(lambda n: n * HALF_HOUR),
    st.lists(st.tuples(st.integers(0, 300 * 48).map(lambda n: n * HALF_HOUR),  # one table
                       st.integers(0, 20 * 48).map(lambda n: n * HALF_HOUR),
                       st.integers(-48, 90 * 48).map(lambda n: n * HALF_HOUR)),
             min_size=1, max_size=24))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calendars(), st.one_of(grid_calls, st.lists(st.tuples(
    instants, amounts, st.integers(-DAY_MS, 90 * DAY_MS)), min_size=1, max_size=12)))
def test_the_compiled_search_agrees_with_the_day_walk(
        compiled_branch: None, calendar: Calendar, calls: list[tuple[int, int, int]]) -> None:
    for start, amount, span in calls:
        opened = calendar.between(start, start + span)
        assert opened == calendar.between_by_days(start, start + span)
        # the open time up to an instant: a budget that ends exactly where an interval does
        # whenever that instant is closed time or an interval's end (and none: the start itself)
        for budget in (amount, opened, 0):
            assert _answer(calendar.add, start, budget) == _answer(calendar.add_by_days, start,
                                                                   budget)


def _answer(fn: Callable[[int, int], int], start: int, amount: int) -> int | str:
    try:
        return fn(start, amount)
    except ValueError as exc:  # a sparse calendar may not hold that much open time in 10 years
        return str(exc)


def test_instants_far_apart_take_the_walk() -> None:
    calendar = Calendar("c", "Europe/Paris", (((540, 1080),),) * 5 + ((), ()))
    far = MS_2020 + 60 * YEAR_MS
    assert calendar.between(MS_2020, far) == calendar.between_by_days(MS_2020, far)
    assert calendar.add(far, 4 * 3_600_000) == calendar.add_by_days(far, 4 * 3_600_000)


def test_no_open_hours_in_ten_years_is_an_error() -> None:
    only_one_day = Calendar("c", "UTC", (((540, 1080),),) + ((),) * 6,
                            frozenset(date(2020, 1, 6) + timedelta(weeks=n) for n in range(600)))
    with pytest.raises(ValueError, match="no open hours in ten years"):
        only_one_day.add(MS_2020, 3_600_000)
    with pytest.raises(ValueError, match="no open hours in ten years"):
        only_one_day.add_by_days(MS_2020, 3_600_000)


def test_calendars_stay_comparable_and_hashable() -> None:
    a = Calendar("c", "UTC", (((540, 1080),),) * 7)
    b = Calendar("c", "UTC", (((540, 1080),),) * 7)
    a.add(MS_2020, 1)
    assert a == b and hash(a) == hash(b)


def test_shipped_calendar_shape_uses_the_table_across_dst() -> None:
    holidays = frozenset({date(2026, 1, 1), date(2026, 5, 1), date(2026, 12, 25)})
    calendar = Calendar("c", "Europe/Paris", (((540, 1080),),) * 5 + ((), ()), holidays)
    for start in range(MS_2020 + 6 * YEAR_MS, MS_2020 + 7 * YEAR_MS, 37_777_777):
        for amount in (0, 1, 3_600_000, 4 * 3_600_000, 18 * 3_600_000, 9 * DAY_MS):
            assert calendar.add(start, amount) == calendar.add_by_days(start, amount)
        assert calendar.between(start, start + 5 * DAY_MS) == calendar.between_by_days(
            start, start + 5 * DAY_MS)
    assert calendar._table.usable and calendar._table.days > 300
