"""State stores: one protocol, an in-memory implementation and a Redis one."""

from valeur_monitor.store.base import Commit, ScoreView, Store
from valeur_monitor.store.memory import MemoryStore

__all__ = ["Commit", "MemoryStore", "ScoreView", "Store"]
