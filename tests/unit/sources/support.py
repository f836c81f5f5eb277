"""Shared helpers of the source mapping tests: fixtures, identities, mapping a lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from valeur_monitor.engine.event import parse_time
from valeur_monitor.identity.book import memory_book, parse_identities
from valeur_monitor.identity.resolve import Resolver
from valeur_monitor.sources.loader import load_sources
from valeur_monitor.sources.mapper import Mapped, Mapper

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "sources"
SOURCES = ROOT / "streams" / "sources"
KEY = b"test-identity-key"


def resolver(key: bytes | None = KEY) -> Resolver:
    text = (DATA / "identities.csv").read_text()
    return Resolver(memory_book(parse_identities(text, "identities.csv")), key)


def mapper(source: str, key: bytes | None = KEY) -> Mapper:
    return Mapper(load_sources([SOURCES / f"{source}.yaml"])[source], resolver(key))


def map_lines(m: Mapper, name: str) -> Mapped:
    """Every line of a fixture as one payload; Freshdesk and Zendesk trigger lines carry their
    receive time (those payloads have no event time of their own)."""
    out = Mapped()
    for line in (DATA / name).read_bytes().splitlines():
        obj = orjson.loads(line) if name.startswith(("freshdesk", "zendesk-triggers")) else None
        if obj is not None:
            out.absorb(m.map(orjson.dumps(obj["payload"]), received=parse_time(obj["received"])))
        else:
            out.absorb(m.map(line))
    return out


def events(mapped: Mapped) -> list[dict[str, Any]]:
    return [orjson.loads(value) for _key, value in mapped.events]
