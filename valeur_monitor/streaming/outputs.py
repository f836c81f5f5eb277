"""What a batch publishes: ledger entries, score updates, customer alerts and dead letters.

* ledger (append-only): key = customer id, value = the ledger entry as JSON, every entry of the
  batch in order; the complete ledger (Redis keeps a recent window).

* score-updates (compacted): key = customer id, value = JSON `score_row` (score, breakdown,
  top reasons, `rules_version`) of every customer whose ledger grew in the batch. The latest
  value per key is the customer's current score, so a repeated message is harmless.
* customer-alerts: key = customer id, value = the alert notice as JSON.
* dead-letters: key = the source record's key (if any), value = the original bytes untouched,
  the source record's headers kept, reason/detail/source added, so a fixed consumer can replay
  the record as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from valeur_monitor.service import BatchResult
from valeur_monitor.sinks.files import score_row
from valeur_monitor.store.base import ScoreView

H_REASON = "valeur-reason"
H_DETAIL = "valeur-detail"
H_SOURCE = "valeur-source"      # topic/partition/offset of the refused record
MAX_DETAIL = 1000               # bytes of detail kept in a header


class Record(NamedTuple):
    """One consumed Kafka record (what the consumer hands to the pipeline). Tuples, not
    frozen dataclasses: one is made per record and per output message (5× cheaper)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None          # None: a tombstone (dead-lettered by the pipeline)
    headers: tuple[tuple[str, bytes], ...] = ()


class Message(NamedTuple):
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None    # None: the producer's partitioner (murmur2 of the key)


@dataclass(frozen=True)
class OutputTopics:
    score_updates: str
    customer_alerts: str
    dead_letters: str
    ledger: str | None = None       # the full ledger, append-only (None: not published)


def score_message(topic: str, view: ScoreView, rules_version: str = "") -> Message:
    return Message(topic, view.customer.encode(),
                   orjson.dumps(score_row(view, rules_version=rules_version)))


def build_messages(result: BatchResult, topics: OutputTopics, *, source_topic: str = "",
                   records: Sequence[Record] = ()) -> list[Message]:
    """Every message a processed batch publishes, in a deterministic order."""
    out: list[Message] = []
    if topics.ledger is not None:
        out.extend(Message(topics.ledger, e.customer.encode(), orjson.dumps(e.to_json()))
                   for e in result.entries)
    scored = dict.fromkeys(e.customer for e in result.entries)
    for customer in scored:
        state = result.changed.get(customer)
        if state is not None:
            out.append(score_message(topics.score_updates, ScoreView.of(state),
                                     result.rules_version))
    for notice in result.notices:
        if notice.kind == "alert":
            out.append(Message(topics.customer_alerts, notice.customer.encode(),
                               orjson.dumps(notice.to_json())))
    if result.dead_letters:
        sources = _sources(records) if records else {}
        for letter in result.dead_letters:
            source = sources.get(letter.raw)
            headers = [h for h in source.headers if h[0] not in OURS] if source else []
            headers += [(H_REASON, letter.reason.encode()),
                        (H_DETAIL, letter.detail.encode()[:MAX_DETAIL])]
            if source is not None:
                headers.append((H_SOURCE,
                                f"{source_topic}/{source.partition}/{source.offset}".encode()))
            out.append(Message(topics.dead_letters, source.key if source else None, letter.raw,
                               tuple(headers)))
    return out


OURS = frozenset((H_REASON, H_DETAIL, H_SOURCE))


def _sources(records: Iterable[Record]) -> dict[bytes, Record]:
    """Original value -> the record of its first occurrence in the batch (key, headers,
    partition/offset), so a dead letter carries its record as consumed."""
    found: dict[bytes, Record] = {}
    for r in records:
        found.setdefault(r.value or b"", r)     # a tombstone's dead letter holds b""
    return found
