"""Choose a store from a URL: `memory` (default) or `redis://` / `rediss://` / `unix://`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from valeur_monitor.errors import ConfigError
from valeur_monitor.store.base import Store
from valeur_monitor.store.memory import MemoryStore

if TYPE_CHECKING:
    from valeur_monitor.store.connect import RedisOptions


def open_store(url: str, *, ledger_cap: int | None = None,
               options: RedisOptions | None = None) -> Store:
    """The store for `url`; Redis connects with `options` (settings.redis_options())."""
    if url in ("", "memory", "memory://"):
        return MemoryStore(ledger_cap=None)
    if url.lower().startswith(("redis://", "rediss://", "unix://")):
        from valeur_monitor.store.redis import RedisStore

        return RedisStore.from_url(url, ledger_cap=ledger_cap or 500, options=options)
    raise ConfigError(f"unknown store {url.split('://')[0]!r}: use 'memory' or a redis://, "
                      "rediss:// or unix:// URL")
