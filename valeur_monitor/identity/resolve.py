"""Normalise an identity (email, phone, external id) and resolve it to a customer id.

Lookups use a SHA-256 of the normalised identity, so neither the identity book in Redis nor
any message here holds a raw email address or phone number. An unknown identity either stays
unknown (the caller dead-letters it as `unknown_customer`) or gets a stable derived customer
id: a keyed hash (HMAC-SHA256 with a deployment secret), never the raw value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import phonenumbers

KINDS = ("email", "phone", "external", "id")
Kind = Literal["email", "phone", "external", "id"]
Policy = Literal["dead_letter", "derive"]
DERIVED_PREFIX = "anon-"


def normalise(kind: str, value: object, *, namespace: str = "", region: str | None = None) -> str:
    """The canonical text of an identity: `email:…`, `phone:+E164`, `ext:<ns>:…`, or the id.

    Raises ValueError (with no raw value in the message) when it cannot be normalised.
    """
    if value is None or isinstance(value, bool | dict | list):
        raise ValueError(f"{kind} is not a string")
    text = str(value).strip()
    if not text:
        raise ValueError(f"{kind} is empty")
    if kind == "email":
        local, at, domain = text.rpartition("@")
        if not at or not local or "." not in domain:
            raise ValueError("not an email address")
        return f"email:{local}@{domain.lower()}".lower()
    if kind == "phone":
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            raise ValueError("not a phone number") from None
        if not phonenumbers.is_possible_number(number):
            raise ValueError("not a possible phone number")
        return "phone:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == "external":
        return f"ext:{namespace}:{text}"
    if kind == "id":
        return text
    raise ValueError(f"unknown identity kind {kind!r} ({', '.join(KINDS)})")


def identity_hash(normalised: str) -> str:
    """Lookup key of a normalised identity (hex SHA-256): what the book stores."""
    return hashlib.sha256(normalised.encode()).hexdigest()


def derive_customer(key: bytes, normalised: str) -> str:
    """A stable customer id for an unknown identity: keyed hash, the raw value unrecoverable."""
    digest = hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()
    return DERIVED_PREFIX + digest[:24]


@dataclass(frozen=True)
class Identity:
    """Who an identity belongs to."""

    customer: str
    account: str | None = None


class IdentityBook(Protocol):
    """Where known identities live: a mapping file in memory, or Redis."""

    def lookup(self, hashes: Sequence[str]) -> list[Identity | None]:
        """The identity of each hash (None when unknown), in order."""
        ...


class MemoryBook:
    """Identities held in memory (loaded from a mapping file)."""

    def __init__(self, entries: Iterable[tuple[str, Identity]] = ()) -> None:
        self.entries: dict[str, Identity] = dict(entries)

    def lookup(self, hashes: Sequence[str]) -> list[Identity | None]:
        return [self.entries.get(h) for h in hashes]

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving one identity; `detail` never contains the raw value."""

    customer: str | None
    account: str | None
    how: Literal["direct", "book", "derived", "unknown"]
    detail: str = ""


class Resolver:
    """Resolves identities with a book, and derives ids for unknown ones when allowed."""

    def __init__(self, book: IdentityBook | None = None, derive_key: bytes | None = None) -> None:
        self.book = book
        self.derive_key = derive_key

    def resolve(self, kind: str, value: object, *, namespace: str = "",
                region: str | None = None, policy: Policy = "dead_letter") -> Resolution:
        try:
            text = normalise(kind, value, namespace=namespace, region=region)
        except ValueError as exc:
            return Resolution(None, None, "unknown", str(exc))
        if kind == "id":
            return Resolution(text, None, "direct")
        found = self.book.lookup([identity_hash(text)])[0] if self.book is not None else None
        if found is not None:
            return Resolution(found.customer, found.account, "book")
        if policy == "derive":
            if self.derive_key is None:
                return Resolution(None, None, "unknown",
                                  f"unknown {kind} and no identity key set to derive an id")
            return Resolution(derive_customer(self.derive_key, text), None, "derived")
        return Resolution(None, None, "unknown", f"no customer known for this {kind}")
