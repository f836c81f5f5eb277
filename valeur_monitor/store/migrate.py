"""Convert a store written in key layout 1 (four keys per customer) to layout 2 (one value).

`valeur-monitor store migrate` runs it, with every writer (workers, `run`) stopped. Each
customer's state and the last `ledger_cap` entries of its ledger list go through the normal
commit script (one value, counts into the open-promise totals), then its four old keys are
deleted; the ranking and due ZSETs are already right. Re-running after an interruption goes on
where it stopped: a customer converted but not yet deleted is committed again, which changes
nothing (same head, entries at or below the seq mark skipped, same counts).
"""

from __future__ import annotations

from typing import Any

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import decode_state
from valeur_monitor.store.base import Commit
from valeur_monitor.store.keys import LAYOUT
from valeur_monitor.store.redis import RedisStore
from valeur_monitor.store.redis_commit import decode_entry

BATCH = 500
SUFFIX = "}:state"


def migrate(store: RedisStore, batch: int = BATCH) -> int:
    """Convert every layout-1 customer under the store's prefix; returns how many."""
    client: Any = store.client
    keys = store.keys
    layout = client.hget(keys.epoch, "layout")
    if layout is not None and int(layout) != LAYOUT:
        raise ValueError(f"the store is in key layout {int(layout)}: cannot migrate it")
    client.hset(keys.epoch, "layout", str(LAYOUT))   # the commit script may now write
    start = len(keys.prefix) + 3                      # "<prefix>{c:"
    found: list[str] = []
    done = 0
    for raw in client.scan_iter(match=keys.legacy_pattern(), count=1000):
        key = raw.decode()
        if key.endswith(SUFFIX):
            found.append(key[start:-len(SUFFIX)])
    for i in range(0, len(found), batch):
        done += _convert(store, found[i:i + batch])
    old_rules = [r.decode() for r in client.smembers(f"{keys.prefix}open-rules")]
    client.delete(f"{keys.prefix}open-rules", *(f"{keys.prefix}open:{r}" for r in old_rules))
    return done


def _convert(store: RedisStore, customers: list[str]) -> int:
    client: Any = store.client
    keys = store.keys
    pipe = client.pipeline(transaction=False)
    for customer in customers:
        state_key, _, _, ledger_key = keys.legacy(customer)
        pipe.get(state_key)
        pipe.lrange(ledger_key, -store.ledger_cap, -1)
    replies = pipe.execute()
    commit = Commit()
    for n, customer in enumerate(customers):
        data, ledger = replies[2 * n], replies[2 * n + 1]
        if data is None:
            continue
        commit.states[customer] = decode_state(data)
        entries: list[LedgerEntry] = [decode_entry(r) for r in ledger]
        commit.entries.extend(entries)
    store.commit(commit)
    client.delete(*(k for c in customers for k in keys.legacy(c)))
    return len(commit.states)
