"""A Reader for a processing store, or for a store URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from valeur_monitor.errors import ConfigError
from valeur_monitor.read.base import Reader
from valeur_monitor.read.memory import MemoryReader
from valeur_monitor.store.base import Store
from valeur_monitor.store.keys import DEFAULT_PREFIX
from valeur_monitor.store.memory import MemoryStore

if TYPE_CHECKING:
    from valeur_monitor.store.connect import RedisOptions


def reader_of(store: Store) -> Reader:
    """The read side of an open store (sharing its connection: close the store, not this)."""
    if isinstance(store, MemoryStore):
        return MemoryReader(store)
    from valeur_monitor.store.cached import CachedStore

    if isinstance(store, CachedStore):
        store.flush()      # a pipelined commit in flight: readers see every batch committed
        return reader_of(store.inner)
    from valeur_monitor.store.redis import RedisStore

    if isinstance(store, RedisStore):
        from valeur_monitor.read.redis import RedisReader

        return RedisReader(store.client, prefix=store.keys.prefix, url=store.url)
    raise ConfigError(f"no reader for a {type(store).__name__}")


def open_reader(url: str, prefix: str = DEFAULT_PREFIX,
                options: RedisOptions | None = None) -> Reader:
    """A reader of a Redis store by URL (an in-memory store only exists inside its run);
    `options`: credentials and TLS from the settings (settings.redis_options())."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from valeur_monitor.read.redis import RedisReader

        return RedisReader.from_url(url, prefix=prefix, options=options)
    raise ConfigError(f"cannot read scores from {url!r}: give a redis:// URL")
