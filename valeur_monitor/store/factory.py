"""Choose a store from a URL: `memory` (default) or `redis://` / `rediss://`."""

from __future__ import annotations

from valeur_monitor.errors import ConfigError
from valeur_monitor.store.base import Store
from valeur_monitor.store.memory import MemoryStore


def open_store(url: str, *, ledger_cap: int | None = None) -> Store:
    if url in ("", "memory", "memory://"):
        return MemoryStore(ledger_cap=None)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from valeur_monitor.store.redis import RedisStore

        return RedisStore.from_url(url, ledger_cap=ledger_cap or 500)
    raise ConfigError(f"unknown store {url!r}: use 'memory' or a redis:// URL")
