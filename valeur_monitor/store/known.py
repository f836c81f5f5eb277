"""The values a committer knows it wrote, so that it sends a customer's new value whole.

The commit script (`redis_commit.COMMIT_LUA`) merges a customer's update into the stored value:
it reads the whole value, cuts its window and concatenates the new one, and Redis's Lua hashes
every byte of each string it makes (the reply of GET, the substrings, the concatenation) — on a
week's values that hashing was ~40 % of the script's CPU. A worker or `run` that wrote a value
last knows it, and Redis's copy changes only through its own commits (one writer per customer:
docs/store.md). So it keeps, per customer, the value's prefix (header and open-promise counts)
and its window frames, builds the new value exactly as the script's merge would (same seq
filter, same trimming by count and age), and sends it with the prefix it expects: the script
only compares the stored prefix (GETRANGE) and SETs the value. Any difference (a retried commit
already applied, a key written or restored by someone else, knowledge lost after a failure)
falls back to the merge, which also sends the written value back to be known from then on.

Touched only by the thread that sends commits (`Prepared.call` and `RedisStore.apply`, in
commit order). At most `limit` customers (least recently committed forgotten first).
"""

from __future__ import annotations

import struct
from typing import Any

from valeur_monitor.store.record import FRAME, HEADER, MAGIC, MAX_U32

KNOWN_MAX = 100_000     # customers (≈ 2 KB each on a week's values: the prefix and frames)
META = struct.Struct(">IHB")     # state seq, new frames, open counts changed


NO_FRAME = MAX_U32 + 1   # "time" of the first frame of an empty window: never cut by age
_ABSENT = (b"", b"", 0, 0, NO_FRAME, "")    # no key: an empty prefix, nothing ranked


class Known:
    """customer -> the value this process wrote last: its prefix (header and open counts), its
    window frames, from the header its seq mark, frame count and first frame's time (s), and
    the ranking score (`redis_commit.num` of its total) the same script call gave it."""

    def __init__(self, limit: int = KNOWN_MAX) -> None:
        self.values: dict[str, tuple[bytes, bytes, int, int, int, str]] = {}
        self.limit = limit

    def clear(self) -> None:
        self.values.clear()

    def learn(self, customer: str, value: bytes, rank: str) -> None:
        """Keep a value the script wrote (sent back by its merge) with its ranking score."""
        values = self.values
        values.pop(customer, None)
        if self.limit <= 0:
            return
        if len(values) >= self.limit:
            del values[next(iter(values))]
        _, mark, length, count, opened = HEADER.unpack_from(value)
        start = HEADER.size + opened
        frames = value[start + length:]
        values[customer] = (value[:start], frames, mark, count,
                            FRAME.unpack_from(frames)[0] if count else NO_FRAME, rank)

    def absent(self, customers: set[str]) -> None:
        """Customers whose key Redis did not hold (the only writer read the store's customers
        at its start and has not committed them since): known as the empty value, so their
        first value goes whole too. The script checks it (an existing key's prefix is never
        empty) and merges when wrong."""
        values, limit = self.values, self.limit
        for customer in customers:
            if limit <= 0 or customer in values:
                continue
            if len(values) >= limit:
                del values[next(iter(values))]
            values[customer] = _ABSENT

    def build(self, customer: str, seq: int, opened: bytes, codec: bytes, head: Any,
              news: list[tuple[int, int, bytes]], pieces: list[Any], cap: int,
              cutoff: int, rank: str) -> tuple[bytes, bytes, bool] | None:
        """The known form's (meta, value) of a customer's update and whether its ranking score
        `rank` is the one written last, and the value kept as known; None (and nothing kept)
        when the merge form must go: not known, or a new frame at or below the stored seq mark
        or that the window would drop (the script's merge decides those). `news` are the (time
        ms, seq, raw) of the new frames in seq order, `pieces` their frames' bytes; `codec` +
        `head` the compressed head."""
        old = self.values.pop(customer, None)
        if old is None:
            return None
        prefix, frames, mark, count, first, ranked = old
        n = len(news)
        if n and news[0][1] <= mark:
            return None
        drop = count + n - cap
        if drop > 0 or first < cutoff:     # the script's cuts: by count, then by age
            pos = 0
            while count > 0:
                when, _, length = FRAME.unpack_from(frames, pos)
                if drop <= 0 and when >= cutoff:
                    break
                drop, count, pos = drop - 1, count - 1, pos + FRAME.size + length
            frames = frames[pos:]
            first = FRAME.unpack_from(frames)[0] if count else NO_FRAME
        if n:
            if not count:      # the script cuts the new frames too (none kept before them)
                first = min(max(news[0][0] // 1000, 0), MAX_U32)
                if drop > 0 or first < cutoff:
                    return None
            frames = b"".join((frames, *pieces))
        hw = mark if mark > seq else seq
        new_prefix = HEADER.pack(MAGIC, hw, len(head) + 1, count + n, len(opened)) + opened
        self.values[customer] = (new_prefix, frames, hw, count + n, first, rank)
        return (META.pack(seq, n, opened != prefix[HEADER.size:]) + prefix,
                b"".join((new_prefix, codec, head, frames)), rank == ranked)
