"""Build mappers and the identity resolver from the settings (the I/O around the pure parts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from valeur_monitor.errors import ConfigError, IdentityError
from valeur_monitor.identity.book import RedisBook, memory_book, parse_identities
from valeur_monitor.identity.resolve import IdentityBook, Resolver
from valeur_monitor.settings import Settings
from valeur_monitor.sources.loader import default_source_paths, load_sources
from valeur_monitor.sources.mapper import Mapper
from valeur_monitor.sources.model import Source


def source_paths(settings: Settings) -> list[str]:
    return list(settings.ingest.sources) or default_source_paths()


def open_book(settings: Settings, identities: str | None = None) -> IdentityBook | None:
    """The identity book: a CSV mapping file, Redis (`redis`), or none."""
    where = identities if identities is not None else settings.ingest.identities
    if not where:
        return None
    if where == "redis":

        from valeur_monitor.store.keys import Keys

        client = settings.redis_client()
        return RedisBook(client, Keys().identities)
    path = Path(where)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"identities file {path}: {exc.strerror}") from None
    try:
        return memory_book(parse_identities(text, str(path), region=settings.ingest.region))
    except IdentityError as exc:
        raise ConfigError(f"identities file refused:\n{exc}") from None


def open_resolver(settings: Settings, identities: str | None = None) -> Resolver:
    key = settings.ingest.identity_key
    return Resolver(open_book(settings, identities),
                    key.get_secret_value().encode() if key is not None else None)


def open_mappers(settings: Settings, sources: dict[str, Source],
                 resolver: Resolver | None = None) -> dict[str, Mapper]:
    resolver = resolver or open_resolver(settings)
    return {name: Mapper(source, resolver) for name, source in sources.items()}


def load_configured_sources(settings: Settings,
                            paths: Sequence[str] | None = None) -> dict[str, Source]:
    return load_sources(list(paths) if paths else source_paths(settings))
