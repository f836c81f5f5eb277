"""Choose a store from a URL: `memory` (default) or `redis://` / `rediss://` / `unix://`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from valeur_monitor.errors import ConfigError
from valeur_monitor.store.base import Store
from valeur_monitor.store.memory import MemoryStore

if TYPE_CHECKING:
    from valeur_monitor.store.connect import RedisOptions


def open_store(url: str, *, ledger_cap: int | None = None,
               options: RedisOptions | None = None, ledger_max_age: int | None = None,
               cache: bool = False) -> Store:
    """The store for `url`; Redis connects with `options` (settings.redis_options()).

    `ledger_cap`/`ledger_max_age`: the window of each customer's ledger (count, ms; the memory
    store keeps the count window, None: every entry);
    `cache`: keep loaded states in memory and pipeline commits (store/cached.py) — only for a
    process that is the store's one writer (`run`); a worker keeps its own per-partition cache."""
    if url in ("", "memory", "memory://"):
        # the same count window as Redis (`run --serve`, `explain` read it); every entry goes to
        # the ledger sink. Keeping all of them grew `run`'s heap by ≈ 150 MB a week and without
        # bound under `run --follow` (docs/benchmarks.md, "Engine, sixth wave")
        return MemoryStore(ledger_cap=ledger_cap)
    if url.lower().startswith(("redis://", "rediss://", "unix://")):
        from valeur_monitor.store.redis import RedisStore

        store = RedisStore.from_url(url, ledger_cap=ledger_cap or 500, options=options,
                                    ledger_max_age=ledger_max_age)
        if cache:
            from valeur_monitor.store.cached import CachedStore

            return CachedStore(store, pipelined=True)
        return store
    raise ConfigError(f"unknown store {url.split('://')[0]!r}: use 'memory' or a redis://, "
                      "rediss:// or unix:// URL")
