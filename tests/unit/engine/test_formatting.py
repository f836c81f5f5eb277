"""Times and durations formatted by the fast paths are the reference's, character for character."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta

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


def _reference_time(value: str) -> int:
    """The pattern, then datetime: what parse_time must answer (ValueError when refused)."""
    if re.match(times.TIMESTAMP_PATTERN, value) is None:
        raise ValueError(value)
    moment = datetime.fromisoformat(value.upper())   # (3.11: "Z", any fraction digits)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _parsed(text: str) -> int | None:
    try:
        return parse_time(text)
    except ValueError:
        return None


timestamps = st.builds(
    lambda y, mo, d, h, mi, s, frac, zone: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
                                           f"{frac}{zone}",
    st.sampled_from([1969, 1970, 2026, 2028, 8999, 9000]), st.integers(0, 13), st.integers(0, 32),
    st.integers(0, 24), st.integers(0, 60), st.integers(0, 60),
    st.sampled_from(["", "", ".5", ".123", ".1234567"]),
    st.sampled_from(["Z", "z", "+01:00", "-05:30", "+23:59", "-00:00", "+24:00", "+01:60"]))
edits = st.lists(st.tuples(st.integers(0, 30), st.sampled_from(
    ["0", "9", "5", "6", ":", "-", "+", "T", "t", "Z", "z", ".", "\n", " ", "x", "\u0663", ""])),
    max_size=2)


@settings(max_examples=600, deadline=None)
@given(timestamps, edits)
def test_parse_time_is_the_pattern_and_datetime(text: str, changes: list[tuple[int, str]]
                                                 ) -> None:
    """Remembered hours and tails give the answer of the pattern and datetime: the same
    values and the same refusals, for valid texts and texts one or two characters off, read
    right after a valid text of the same hour (the common path) and again."""
    for known in (text[:13] + ":00:00Z", text):   # its hour known from now on when valid
        with contextlib.suppress(ValueError):
            parse_time(known)
    for at, char in changes:
        text = text[:at] + char + text[at + 1:]
    try:
        expected: int | None = _reference_time(text)
    except ValueError:
        expected = None
    assert _parsed(text) == expected, text
    assert _parsed(text) == expected, text   # with whatever the first call remembered


def test_parse_time_tails_of_a_known_hour() -> None:
    """Tails one character off a valid one, after a valid text of the same hour."""
    head = "2026-11-02T09"
    good = [":15:00Z", ":59:59z", ":15:00+01:00", ":15:00-23:59", ":00:00+00:00", ":15:00-00:00",
            ":15:00.250Z"]
    for tail in good:
        for at in range(len(tail)):
            for char in "09:+-.TtZz5634\n\u0663/;x":
                text = head + tail[:at] + char + tail[at + 1:]
                try:
                    expected: int | None = _reference_time(text)
                except ValueError:
                    expected = None
                parse_time(head + tail)   # the last hour read is this one
                assert _parsed(text) == expected, text
