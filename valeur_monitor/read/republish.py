"""Re-publication of idle customers' scores, decayed to now, to the score-updates topic.

The workers publish a score when a customer's ledger grows; a customer who goes quiet keeps its
last (undecayed) score on the compacted topic for ever. Re-publishing the score decayed to a
common `as_of` for customers idle longer than `idle` keeps the topic current. The value is the
export row (score, band, dimensions, top reasons, `updated_at`) with `at` = `as_of`, the
instant the score is decayed to, as in every score-updates row.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from valeur_monitor.engine.event import parse_time
from valeur_monitor.read.base import Reader
from valeur_monitor.read.export import export_rows


def idle_updates(reader: Reader, *, as_of: int, idle: int, half_life: int | None
                 ) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every customer whose last update is at or before `as_of - idle`."""
    for row in export_rows(reader, as_of=as_of, half_life=half_life):
        updated = row["updated_at"]
        if updated is None or parse_time(updated) > as_of - idle:
            continue
        yield row["customer"].encode(), orjson.dumps({**row, "at": row["as_of"]})
