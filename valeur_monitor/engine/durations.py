"""Durations written by rule authors ("90s", "4h", "1h30m", "7d", "2w") as milliseconds."""

from __future__ import annotations

import re
from typing import Final

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^-?(?:\d+(?:ms|s|m|h|d|w))+$")


def parse_duration(text: object) -> int:
    """'1h30m' -> 5_400_000; a leading '-' makes it negative; ValueError on anything else."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"expected a duration like '4h' or '1h30m', got {text!r}")
    if isinstance(text, int):
        if text != 0:
            raise ValueError(f"a bare number is ambiguous: write a unit, e.g. '{text}m'")
        return 0
    value = text.strip().replace(" ", "")
    if value == "0":
        return 0
    if not _WHOLE.match(value):
        raise ValueError(f"bad duration {text!r}: use units ms, s, m, h, d, w (e.g. '4h', '1h30m')")
    sign = -1 if value.startswith("-") else 1
    return sign * sum(int(n) * _UNIT_MS[u] for n, u in _PART.findall(value))


# Final: a C static when compiled, not a module-dict look-up per call
_FORMATTED: Final[dict[int, str]] = {}   # explanations repeat the same few durations


def format_duration(ms: int) -> str:
    """Milliseconds -> compact human form: 5_400_000 -> '1h30m', 0 -> '0s'."""
    found = _FORMATTED.get(ms)
    if found is None:
        if len(_FORMATTED) > 100_000:
            _FORMATTED.clear()
        found = _FORMATTED[ms] = _format_duration(ms)
    return found


def _format_duration(ms: int) -> str:
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    rest = abs(ms)
    parts = []
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest}ms")
    return sign + "".join(parts)


_UNITS: Final = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))
