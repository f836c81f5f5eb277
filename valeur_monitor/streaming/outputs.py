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
from typing import Any, NamedTuple

import msgspec
import orjson

from valeur_monitor.engine.event import format_time
from valeur_monitor.engine.ledger import DIMENSIONS, LedgerEntry, Notice
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.service import BatchResult
from valeur_monitor.sinks.files import score_row
from valeur_monitor.store.base import ScoreView, top_reasons

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


# The messages' values are `orjson.dumps` of the rows above (`LedgerEntry.to_json`, `score_row`,
# `Notice.to_json`), byte for byte, written without the dicts: msgspec writes a Struct's fields
# in order with its defaults omitted, and the same strings and floats as orjson except floats of
# magnitude 1e16 or more (msgspec `1e16`, orjson `1e+16`) and NaN/infinity (rows holding such
# a float go the dict's way). tests/unit/streaming/test_output_bytes.py holds them to it.
_json = msgspec.json.Encoder().encode
_BIG = 1e16


def _time(ms: int, texts: dict[int, str]) -> str:
    """`format_time(ms)`, once per instant of a batch (a third of its entries share the time of
    the one before; a score's time is its last entry's)."""
    text = texts.get(ms)
    if text is None:
        text = texts[ms] = format_time(ms)
    return text


def _timed(raw: bytes, ms: int, texts: dict[int, str]) -> bytes:
    """A Struct's JSON with its integer `time` field as RFC 3339 text. The first `,"time":` is
    that field: inside a JSON string a quote is escaped, and no field before it is optional."""
    field = b',"time":%d' % ms
    if field not in raw:    # never left as an integer: a row always carries its time as text
        raise ValueError(f"no integer time {ms} in an encoded output row")
    return raw.replace(field, b',"time":"%s"' % _time(ms, texts).encode(), 1)


def ledger_value(entry: LedgerEntry, texts: dict[int, str] | None = None) -> bytes:
    """`orjson.dumps(entry.to_json())`; `texts`: instants formatted so far."""
    if -_BIG < entry.amount < _BIG and -_BIG < entry.value < _BIG:
        return _timed(_json(entry), entry.time, {} if texts is None else texts)
    return orjson.dumps(entry.to_json())


def notice_value(notice: Notice, texts: dict[int, str] | None = None) -> bytes:
    """`orjson.dumps(notice.to_json())`."""
    if -_BIG < notice.score < _BIG:
        return _timed(_json(notice), notice.time, {} if texts is None else texts)
    return orjson.dumps(notice.to_json())


# score_row's fields (without `as_of`) in its order; `at` is null before the first value
_ScoreRow: Any = msgspec.defstruct(
    "_ScoreRow", [("customer", str), ("score", float), ("at", Any), ("created", float),
                  ("destroyed", float), *((d, float) for d in DIMENSIONS),
                  ("top_reasons", list), ("rules_version", str, "")],
    omit_defaults=True, gc=False)


def _r6(x: float) -> float:
    return round(x, 6) if x else x     # round(0.0, 6) is 0.0, round(-0.0, 6) is -0.0


def score_value(state: CustomerState, rules_version: str = "",
                texts: dict[int, str] | None = None) -> bytes:
    """`orjson.dumps(score_row(ScoreView.of(state), rules_version=rules_version))`."""
    s = state.score
    dims = {d: round(v, 6) for d, v in s.dims.items()}   # a few of DIMENSIONS
    values = [_r6(s.total), _r6(s.created), _r6(s.destroyed)]
    values += [dims.get(d, 0.0) for d in DIMENSIONS]     # round(0.0, 6) is 0.0
    top = [(r, round(v, 6)) for r, v in top_reasons(state.reasons)]
    # every magnitude below 1e16 (NaN fails it): their sum is at least the largest one
    magnitude = 0.0
    for x in values:
        magnitude += abs(x)
    for _, x in top:
        magnitude += abs(x)
    if magnitude < _BIG:
        total, created, destroyed, *dim_values = values
        at = _time(s.at, {} if texts is None else texts) if s.at else None
        return _json(_ScoreRow(state.customer, total, at,
                               created, destroyed, *dim_values,
                               [{"rule": r, "value": v} for r, v in top], rules_version))
    return orjson.dumps(score_row(ScoreView.of(state), rules_version=rules_version))


def build_messages(result: BatchResult, topics: OutputTopics, *, source_topic: str = "",
                   records: Sequence[Record] = ()) -> list[Message]:
    """Every message a processed batch publishes, in a deterministic order."""
    out: list[Message] = []
    texts: dict[int, str] = {}
    if topics.ledger is not None:
        ledger = topics.ledger
        out.extend([Message(ledger, e.customer.encode(), ledger_value(e, texts))
                    for e in result.entries])
    scored = dict.fromkeys(e.customer for e in result.entries)
    changed, scores, version = result.changed, topics.score_updates, result.rules_version
    for customer in scored:
        state = changed.get(customer)
        if state is not None:
            out.append(Message(scores, customer.encode(), score_value(state, version, texts)))
    for notice in result.notices:
        if notice.kind == "alert":
            out.append(Message(topics.customer_alerts, notice.customer.encode(),
                               notice_value(notice, texts)))
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
