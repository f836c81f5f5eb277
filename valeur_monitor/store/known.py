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


class Known:
    """customer -> (prefix, frames) of the value this process wrote last."""

    def __init__(self, limit: int = KNOWN_MAX) -> None:
        self.values: dict[str, tuple[bytes, bytes]] = {}
        self.limit = limit

    def clear(self) -> None:
        self.values.clear()

    def learn(self, customer: str, value: bytes) -> None:
        """Keep a value the script wrote (sent back by its merge)."""
        values = self.values
        values.pop(customer, None)
        if self.limit <= 0:
            return
        if len(values) >= self.limit:
            del values[next(iter(values))]
        _, _, length, _, opened = HEADER.unpack_from(value)
        start = HEADER.size + opened
        values[customer] = (value[:start], value[start + length:])

    def build(self, customer: str, seq: int, opened: bytes, codec: bytes, head: Any,
              news: list[tuple[int, int, bytes]], pieces: list[Any], cap: int,
              cutoff: int) -> tuple[bytes, bytes] | None:
        """The known form's (meta, value) of a customer's update, and the value kept as known;
        None (and nothing kept) when the merge form must go: not known, or a new frame at or
        below the stored seq mark or that the window would drop (the script's merge decides
        those). `news` are the (time ms, seq, raw) of the new frames in seq order, `pieces`
        their frames' bytes; `codec` + `head` the compressed head."""
        old = self.values.pop(customer, None)
        if old is None:
            return None
        prefix, blob = old
        _, mark, _, count, _ = HEADER.unpack_from(prefix)
        n = len(news)
        if n and news[0][1] <= mark:
            return None
        drop = count + n - cap
        pos = 0
        while count > 0:
            when, _, length = FRAME.unpack_from(blob, pos)
            if drop <= 0 and when >= cutoff:
                break
            drop, count, pos = drop - 1, count - 1, pos + FRAME.size + length
        if count == 0 and n and (drop > 0 or min(max(news[0][0] // 1000, 0), MAX_U32) < cutoff):
            return None
        tail = blob[pos:] if pos else blob
        frames = b"".join((tail, *pieces)) if pieces else tail
        new_prefix = HEADER.pack(MAGIC, max(mark, seq), len(head) + 1, count + n,
                                 len(opened)) + opened
        value = b"".join((new_prefix, codec, head, frames))
        meta = META.pack(seq, n, opened != prefix[HEADER.size:]) + prefix
        self.values[customer] = (new_prefix, frames)
        return meta, value
