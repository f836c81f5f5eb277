"""Which shard of `run --workers N` owns a record: a hash of its customer, found cheaply."""

from __future__ import annotations

import zlib
from typing import Any

import msgspec


class _Route(msgspec.Struct):
    customer: Any = None
    subject: Any = None
    specversion: Any = None


_route_decoder = msgspec.json.Decoder(_Route)


def customer_key(line: bytes) -> bytes | None:
    """The customer id of a record as the decoder would read it (UTF-8), None if it has none.

    A decode of only the three fields that decide it (`customer`, else the CloudEvents
    `subject`): faster than scanning the bytes for the key, and exact by construction."""
    try:
        found = _route_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    customer = found.customer
    if found.specversion is not None and not customer:
        customer = found.subject
    if type(customer) is not str or not customer:
        return None
    return customer.encode("utf-8", "surrogatepass")  # a lone surrogate must not stop a shard


def owners(lines: list[bytes], shards: int, known: dict[str, int] | None = None) -> list[int]:
    """`route` of every line (one loop: the shards call this for every line of the input).

    `known` remembers each customer's shard across calls (a look-up instead of a hash)."""
    decode, crc32 = _route_decoder.decode, zlib.crc32
    memo: dict[str, int] = {} if known is None else known
    out: list[int] = []
    append = out.append
    for line in lines:
        try:
            found = decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            append(0)
            continue
        customer = found.customer
        if found.specversion is not None and not customer:
            customer = found.subject
        if type(customer) is not str or not customer:
            append(0)
            continue
        shard = memo.get(customer)
        if shard is None:
            shard = memo[customer] = crc32(customer.encode("utf-8", "surrogatepass")) % shards
        append(shard)
    return out


def route(line: bytes, shards: int) -> int:
    """Which of `shards` processes owns the record's customer (records without one: 0).

    A refused record may land on any shard: it becomes the same dead letter everywhere."""
    key = customer_key(line)
    return zlib.crc32(key) % shards if key is not None else 0
