"""The read side: what the API, export and webhooks read, apart from the processing store."""

from valeur_monitor.read.base import Reader
from valeur_monitor.read.memory import MemoryReader

__all__ = ["MemoryReader", "Reader"]
