"""Malformed lines on purpose (bad JSON, missing field, unknown type, naive time, bad data)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from random import Random
from typing import Any

import orjson

RAW_KEY = "__raw__"  # a record holding this key is written verbatim: it is not valid JSON
BAD_KINDS = ("bad_json", "missing_field", "unknown_type", "naive_time", "bad_data")
_UNKNOWN_TYPES = ("request.archived", "ticket.created", "visit.teleported")
_REQUIRED = ("id", "type", "time", "customer")


class Malformer:
    """Adds malformed lines after good ones so that a fraction `rate` of all lines is bad.

    Bad lines never replace good events: the good stream is the same with or without them.
    Each bad line gets its own id (`evt-<seed>-bad-NNNNNN`) unless the id is what is missing.
    """

    def __init__(self, seed: int, rate: float, naive: Callable[[int], str]) -> None:
        self._rng = Random(seed ^ 0xBAD_11E5)  # separate stream: good events stay identical
        self._per_good = rate / (1.0 - rate)
        self._naive = naive
        self._prefix = f"evt-{seed}-bad-"
        self.count = 0

    def after(self, record: dict[str, Any], t: int) -> Iterator[dict[str, Any]]:
        """The bad lines (usually none) to emit right after `record` (its time `t`, as `naive`
        takes it)."""
        rnd = self._rng.random
        expected = self._per_good
        while expected > 0:
            if expected < 1.0 and rnd() >= expected:
                return
            expected -= 1.0
            yield self._bad(record, t)

    def _bad(self, record: dict[str, Any], t: int) -> dict[str, Any]:
        rng = self._rng
        self.count += 1
        bad = dict(record)
        bad["id"] = f"{self._prefix}{self.count:06d}"
        kind = BAD_KINDS[int(rng.random() * len(BAD_KINDS))]
        if kind == "missing_field":
            del bad[_REQUIRED[int(rng.random() * len(_REQUIRED))]]
        elif kind == "unknown_type":
            bad["type"] = _UNKNOWN_TYPES[int(rng.random() * len(_UNKNOWN_TYPES))]
        elif kind == "naive_time":
            bad["time"] = self._naive(t)
        elif kind == "bad_data":
            if rng.random() < 0.5:
                bad["type"], bad["data"] = "request.status_changed", {"status": "escalated"}
            else:
                bad["type"], bad["data"] = "callback.promised", {"promised_at": "tomorrow"}
        else:
            text = orjson.dumps(bad).decode()
            cut = 1 + int(rng.random() * (len(text) - 2))   # any strict prefix is invalid JSON
            return {RAW_KEY: text[:cut]}
        return bad
