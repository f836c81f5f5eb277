"""Identity mapping files (CSV) and the Redis identity book.

A mapping file is CSV with the header ``kind,value,customer,account``: `kind` is `email`,
`phone`, or the name of a source whose external ids the row maps (``zendesk``, ``zammad``…);
`account` may be empty. Parsing is separate from I/O and reports every bad row as `file:line`
without echoing the identity itself.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from valeur_monitor.errors import IdentityError, StoreError
from valeur_monitor.identity.resolve import Identity, MemoryBook, identity_hash, normalise

HEADER = ("kind", "value", "customer", "account")


@dataclass(frozen=True)
class IdentityRow:
    """One normalised, hashed row of a mapping file."""

    hash: str
    identity: Identity
    line: int


def parse_identities(text: str, name: str, *, region: str | None = None) -> list[IdentityRow]:
    """Rows of a mapping file; IdentityError listing every problem as `file:line: message`."""
    # Excel's "CSV UTF-8" starts with a signature (BOM): not part of the header's first name.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    problems: list[str] = []
    rows: list[IdentityRow] = []
    header = next(reader, None)
    names = tuple(h.strip().lower() for h in header) if header is not None else ()
    if names not in (HEADER, HEADER[:3]):
        raise IdentityError([f"{name}:1: the header must be {','.join(HEADER)}"])
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 3 or len(row) > 4:
            problems.append(f"{name}:{line}: expected 3 or 4 columns, got {len(row)}")
            continue
        kind, value, customer = (c.strip() for c in row[:3])
        account = row[3].strip() if len(row) == 4 and row[3].strip() else None
        if not customer:
            problems.append(f"{name}:{line}: empty customer id")
            continue
        if not kind:
            problems.append(f"{name}:{line}: empty kind")
            continue
        if kind in ("email", "phone"):
            how, namespace = kind, ""
        else:
            how, namespace = "external", kind
        try:
            text_id = normalise(how, value, namespace=namespace, region=region)
        except ValueError as exc:
            problems.append(f"{name}:{line}: {exc}")
            continue
        rows.append(IdentityRow(identity_hash(text_id), Identity(customer, account), line))
    if problems:
        raise IdentityError(problems)
    return rows


def memory_book(rows: Sequence[IdentityRow]) -> MemoryBook:
    return MemoryBook((r.hash, r.identity) for r in rows)


def _encode(identity: Identity) -> str:
    return identity.customer + ("\t" + identity.account if identity.account else "")


def _decode(value: bytes | str) -> Identity:
    text = value.decode() if isinstance(value, bytes) else value
    customer, _, account = text.partition("\t")
    return Identity(customer, account or None)


class RedisBook:
    """The identity book in one Redis hash (hashed identity -> customer[TAB account])."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    def lookup(self, hashes: Sequence[str]) -> list[Identity | None]:
        if not hashes:
            return []
        import redis

        try:
            values = self.client.hmget(self.key, list(hashes))
        except redis.RedisError as exc:
            raise StoreError(f"identity book unavailable: {type(exc).__name__}") from exc
        return [None if v is None else _decode(v) for v in values]

    def load(self, rows: Sequence[IdentityRow], chunk: int = 5000) -> int:
        """Write rows (idempotent: a row overwrites the same identity); returns rows written."""
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            self.client.hset(self.key, mapping={r.hash: _encode(r.identity) for r in part})
        return len(rows)

    def __len__(self) -> int:
        return int(self.client.hlen(self.key))
