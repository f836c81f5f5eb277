"""Times and durations formatted by the fast paths are the reference's, character for character."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine import times
from valeur_monitor.engine.durations import format_duration, parse_duration
from valeur_monitor.engine.event import format_time, format_time_by_datetime, parse_time

instants = st.one_of(st.integers(0, 4_100_000_000_000),                 # 1970 .. 2099
                     st.integers(1_700_000_000_000, 1_800_000_000_000),  # around now
                     st.integers(1_700_000_000, 1_800_000_000).map(lambda s: s * 1000))


@settings(max_examples=500, deadline=None)
@given(st.lists(instants, min_size=1, max_size=5))
def test_format_time_equals_datetime(moments: list[int]) -> None:
    for ms in moments:   # several per example: the first of a day fills the cache
        assert format_time(ms) == format_time_by_datetime(ms)
        assert format_time(ms + 1) == format_time_by_datetime(ms + 1)
        assert parse_time(format_time(ms)) == ms
    late = 253_402_300_799_999   # 9999-12-31: datetime's own (float) answer, unchanged
    assert format_time(late) == format_time_by_datetime(late)


@settings(max_examples=300, deadline=None)
@given(st.integers(-10**12, 10**12))
def test_format_duration_round_trips(ms: int) -> None:
    assert format_duration(ms) == format_duration(ms)   # the cached answer
    assert parse_duration(format_duration(ms)) == ms


def test_known_tails_and_heads_make_a_valid_time() -> None:
    assert parse_time("2026-11-02T09:15:00+01:00") == parse_time("2026-11-02T08:15:00Z")
    assert "2026-11-02T09" in {k for k in times._HOURS}
    try:
        parse_time("2026-11-02T09:15:00+01:00\n")
    except ValueError:
        pass
    else:
        raise AssertionError("a trailing newline is not RFC 3339")
