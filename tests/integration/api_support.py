"""Shared setup of the API tests: a simulated week committed to a private Redis DB."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

from valeur_monitor.api.auth import hash_token
from valeur_monitor.api.resources import Context
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.read.redis import RedisReader
from valeur_monitor.service import Processor
from valeur_monitor.settings import ApiSettings, ApiToken
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.redis import RedisStore

READ_TOKEN = "read-token-for-tests-0123456789abcdef"
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
TOKENS = [ApiToken(name="crm", sha256=hash_token(READ_TOKEN), scopes=["read"]),
          ApiToken(name="ops", sha256=hash_token(ADMIN_TOKEN), scopes=["admin"])]


def simulated(seed: int = 5, customers: int = 80, days: int = 7) -> list[bytes]:
    from valeur_monitor.simulate import SimulationConfig, simulate

    return [orjson.dumps(e) for e in simulate(SimulationConfig(seed=seed, customers=customers,
                                                               days=days))]


@dataclass
class Loaded:
    rules: RuleSet
    memory: MemoryStore
    prefix: str
    url: str
    watermark: int

    def context(self, tokens: bool = True) -> Context:
        reader = RedisReader.from_url(self.url, prefix=self.prefix)
        settings = ApiSettings(tokens=TOKENS if tokens else [], redis_prefix=self.prefix)
        return Context(reader, self.rules, settings, clock=lambda: self.watermark)


def load(url: str, lines: list[bytes]) -> Loaded:
    """The same events into a MemoryStore (the oracle) and a RedisStore under a fresh prefix."""
    rules = load_rules(["rules"])
    prefix = f"api{uuid.uuid4().hex[:8]}:"
    memory = MemoryStore(ledger_cap=rules.settings.ledger_cap)   # the window Redis keeps
    store = RedisStore.from_url(url, ledger_cap=rules.settings.ledger_cap, prefix=prefix)
    try:
        for target in (memory, store):
            processor = Processor(rules, target)
            for i in range(0, len(lines), 500):
                processor.process(lines[i:i + 500])
    finally:
        store.close()
    return Loaded(rules, memory, prefix, url, memory.watermark())
