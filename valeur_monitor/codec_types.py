"""The codec's data types: the fast-path record struct and the input limits (not compiled).

They live apart from `codec` so that mypyc can compile the codec: a msgspec Struct subclass
cannot be compiled, and `InputLimits` is pickled to the shards of `run --workers N` (a compiled
frozen dataclass cannot be unpickled). Imported from `valeur_monitor.codec` as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

MAX_BYTES = 1 << 20         # default record size limit (1 MiB)
MAX_DEPTH = 32              # default JSON nesting limit (the record object is depth 1)
FUTURE_LIMIT = 7 * 86_400_000   # ms: no longer than the default late horizon (see Processor)


class Record(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Every named top-level field of either form; anything else goes the exhaustive path.
    Not tracked by the cyclic collector (`gc=False`): it holds strings and the decoded `data`
    (JSON values), which cannot refer back to it, and one is made per record."""

    id: str
    type: str
    time: str
    customer: str | msgspec.UnsetType = msgspec.UNSET
    ref: str = ""
    source: str | msgspec.UnsetType = msgspec.UNSET
    channel: str | msgspec.UnsetType = msgspec.UNSET
    team: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    specversion: str | msgspec.UnsetType = msgspec.UNSET
    subject: str | msgspec.UnsetType = msgspec.UNSET
    datacontenttype: str | msgspec.UnsetType = msgspec.UNSET
    dataschema: str | msgspec.UnsetType = msgspec.UNSET


@dataclass(frozen=True)
class InputLimits:
    """Bounds on input records (settings `input.*`)."""

    max_bytes: int = MAX_BYTES
    max_depth: int = MAX_DEPTH
    future_ms: int = FUTURE_LIMIT
