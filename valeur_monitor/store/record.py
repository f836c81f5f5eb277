"""The one Redis value per customer (key layout 2): score row, state and a recent ledger window.

::

    0xC2 0x02              magic and layout version
    u32  seq mark          highest ledger seq appended (the commit script keeps it: idempotence)
    u32  head length
    u16  frame count       entries in the window
    u16  open length
    open                   msgpack [rule, count, ...] of the open promises, by rule (the
                           script adds the difference to the store-wide totals: census.py)
    head                   codec byte, then (maybe compressed) msgpack [total, at, created,
                           destroyed, dims, reasons, state bytes]
    frames...              the window, oldest first: u32 time (s), u32 seq, u16 length, payload
                           (codec byte, then a compact ledger entry without its customer)

All integers big-endian. The commit script (`redis_commit.COMMIT_LUA`) reads only the seq mark,
the counts in the header and the headers of the frames it drops: it replaces the head, appends
frames newer than the mark and trims the window by count and age, never decoding a payload.
Payloads and heads are compressed with zstandard and a dictionary trained on typical records
(`dicts/`, see `bench/train_zdict.py`): records of 50 B to 3 KB are too small for a compressor
to learn from alone, a shared dictionary gives 2.5x on states and 3.6x on entries.
The codec byte names the dictionary, so a new one can be shipped while old values stay readable.
"""

from __future__ import annotations

import struct
import threading
from functools import cache
from importlib import resources
from typing import Any

import msgspec
import zstandard

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState, decode_state
from valeur_monitor.errors import StoreValueUndecodable
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.record_types import ENTRY_MAGIC, Row
from valeur_monitor.store.record_types import Entry as _Entry
from valeur_monitor.store.record_types import entry_raw as entry_raw
from valeur_monitor.store.record_types import head_raw as head_raw

MAGIC = b"\xc2\x02"
LAYOUT = 2
HEADER = struct.Struct(">2sIIHH")   # magic, seq mark, head length, frame count, open length
FRAME = struct.Struct(">IIH")       # time (s), seq, payload length
MAX_PAYLOAD = 0xFFFF
MAX_U32 = 0xFFFFFFFF

RAW = 0          # codec byte: stored as is
ZSTD_1 = 1       # zstandard with the dictionaries `dicts/head-1.zdict` / `dicts/entry-1.zdict`
ZSTD_2 = 2       # zstandard with `dicts/head-2.zdict` (heads holding a version-3 state)
_RAW = bytes((RAW,))
LEVEL = 3        # zstd level: 1-3 cost the same here (≈ 20 µs per state), higher ones 5x more

_entry_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(_Entry)
_plain_decoder = msgspec.msgpack.Decoder(LedgerEntry)
_pack = msgspec.msgpack.Encoder().encode


def encode_entry(entry: LedgerEntry) -> bytes:
    """A ledger entry as stored in Redis: 0xC1, version 1, then one positional msgpack array
    (time first, epoch ms). About half the size of the msgpack map with field names."""
    e = entry
    return ENTRY_MAGIC + _entry_encoder.encode(_Entry(
        e.time, e.seq, e.customer, e.rule, e.outcome, e.dimension, e.amount, e.value, e.events,
        e.explain, e.ref, e.team, e.channel, e.late, e.rules_version))


def decode_entry(data: bytes) -> LedgerEntry:
    """Inverse of `encode_entry`; entries stored as msgpack maps (before) are read too."""
    if data[:1] != b"\xc1":
        return _plain_decoder.decode(data)
    e = _entry_decoder.decode(memoryview(data)[len(ENTRY_MAGIC):])
    return LedgerEntry(customer=e.customer, seq=e.seq, rule=e.rule, outcome=e.outcome,
                       dimension=e.dimension, amount=e.amount, value=e.value, time=e.time,
                       events=e.events, explain=e.explain, ref=e.ref, team=e.team,
                       channel=e.channel, late=e.late, rules_version=e.rules_version)


_row_decoder = msgspec.msgpack.Decoder(Row)


# The dictionaries shipped (dicts/{kind}-{version}.zdict, bench/train_zdict.py). Heads are
# written with codec 2, whose dictionary was trained on heads holding a version-3 compact state
# (plain instants and ids, engine/compact.py); codec 1 (version-2 states) is still read.
# Entries have not changed: codec 1.
_DICTS = {("head", ZSTD_1), ("entry", ZSTD_1), ("head", ZSTD_2)}
HEAD_CODEC, ENTRY_CODEC = ZSTD_2, ZSTD_1
_HEAD, _ENTRY = bytes((HEAD_CODEC,)), bytes((ENTRY_CODEC,))


_local = threading.local()


@cache
def _dictionary(kind: str, version: int) -> zstandard.ZstdCompressionDict:
    folder = resources.files("valeur_monitor.store") / "dicts"
    return zstandard.ZstdCompressionDict((folder / f"{kind}-{version}.zdict").read_bytes())


def compressor(kind: str, version: int) -> zstandard.ZstdCompressor:
    """The compressor of a record kind with a dictionary version, one per thread: a zstandard
    (de)compressor used by two threads at once can produce wrong bytes, and the worker encodes
    a batch while its commit thread compresses the one before."""
    found: dict[tuple[str, int], zstandard.ZstdCompressor] | None = getattr(
        _local, "compressors", None)
    if found is None:
        found = _local.compressors = {}
    comp = found.get((kind, version))
    if comp is None:
        # no frame magic, checksum or dictionary id: the codec byte says all that, and on
        # records this small those 9 bytes would be a fifth of an entry
        comp = found[(kind, version)] = zstandard.ZstdCompressor(
            level=LEVEL, dict_data=_dictionary(kind, version), write_checksum=False,
            write_dict_id=False, write_content_size=True)
    return comp


def decompressor(kind: str, version: int) -> zstandard.ZstdDecompressor:
    """The decompressor of a record kind with a dictionary version, one per thread."""
    found: dict[tuple[str, int], zstandard.ZstdDecompressor] | None = getattr(
        _local, "decompressors", None)
    if found is None:
        found = _local.decompressors = {}
    dec = found.get((kind, version))
    if dec is None:
        dec = found[(kind, version)] = zstandard.ZstdDecompressor(
            dict_data=_dictionary(kind, version))
    return dec


def _unpack(kind: str, data: bytes | memoryview) -> bytes:
    mode = data[0]
    if mode == RAW:
        return bytes(data[1:])
    if (kind, mode) in _DICTS:
        return decompressor(kind, mode).decompress(data[1:])
    raise ValueError(f"unknown codec {mode} in a stored {kind} (written by a newer version?)")


def encode_head(state: CustomerState, *, compress: bool = True) -> bytes:
    """The head of a customer's value: its score row and its state bytes."""
    raw = head_raw(state)
    if not compress:
        return _RAW + raw
    return _HEAD + compressor("head", HEAD_CODEC).compress(raw)


def encode_frame(entry: LedgerEntry, *, compress: bool = True) -> bytes:
    """A window frame for one ledger entry (its customer is the key's: left out)."""
    raw = entry_raw(entry)
    payload = (_ENTRY + compressor("entry", ENTRY_CODEC).compress(raw) if compress
               else _RAW + raw)
    return frame(entry.time, entry.seq, payload)


def frame(time: int, seq: int, payload: bytes) -> bytes:
    """A window frame: its header (time in s, seq, length), then the payload."""
    return frame_header(time, seq, len(payload)) + payload


def frame_header(time: int, seq: int, length: int) -> bytes:
    """The header of a window frame whose payload is `length` bytes long."""
    if length > MAX_PAYLOAD:
        raise OverflowError(f"ledger entry {seq} of {length} bytes (limit {MAX_PAYLOAD})")
    return FRAME.pack(min(max(time // 1000, 0), MAX_U32), seq, length)


# A payload this short stays within MAX_PAYLOAD once compressed (zstd's bound: n + n/256 +
# 64), so its compression may wait for the sending thread without moving where it can fail.
SAFE_RAW = 65_000


# multi_compress_to_buffer is the C backend's (the CFFI one, for PyPy, raises NotImplementedError)
_MULTI = zstandard.backend == "cext"


def compressed(kind: str, raws: list[bytes]) -> list[Any]:
    """`raws` compressed as `encode_head`/`encode_frame` would, without the codec byte
    (`codec_byte`), byte for byte, in one call that releases the GIL (python-zstandard's C
    backend), as buffers: the commit thread compresses while the next batch runs and joins
    them into the script's arguments without copying each one first."""
    if not raws:
        return []
    comp = compressor(kind, HEAD_CODEC if kind == "head" else ENTRY_CODEC)
    if not _MULTI:
        return [comp.compress(r) for r in raws]
    data: list[Any] = raws          # the stubs want list[bytes | bytearray | memoryview]
    out = comp.multi_compress_to_buffer(data, threads=1)
    return [out[i] for i in range(len(out))]


def codec_byte(kind: str) -> bytes:
    """The codec byte that goes before each `compressed` record of this kind."""
    return _HEAD if kind == "head" else _ENTRY


class Value:
    """A stored value, parsed lazily (readers often need only the score or only the window)."""

    def __init__(self, customer: str, data: bytes) -> None:
        if len(data) < HEADER.size or data[:2] != MAGIC:
            raise ValueError(f"not a layout-{LAYOUT} customer value")
        _, self.seq_mark, length, self.count, opened = HEADER.unpack_from(data)
        self.customer = customer
        self._data = data
        self._head_start = HEADER.size + opened
        self._head_end = self._head_start + length
        self._row: Row | None = None

    def row(self) -> Row:
        if self._row is None:
            head = memoryview(self._data)[self._head_start:self._head_end]
            try:
                self._row = _row_decoder.decode(_unpack("head", head))
            except Exception as exc:
                raise undecodable(exc) from exc
        return self._row

    def score(self) -> ScoreView:
        r = self.row()
        return ScoreView(self.customer, r.total, dict(r.dims), r.at, r.created, r.destroyed,
                         dict(r.reasons))

    def state(self) -> CustomerState:
        row = self.row()
        try:
            return decode_state(row.state)
        except Exception as exc:
            raise undecodable(exc) from exc

    def state_bytes(self) -> bytes:
        return self.row().state

    def open_counts(self) -> dict[str, int]:
        """Open promises per rule, as the header holds them for the census."""
        raw = self._data[HEADER.size:self._head_start]
        flat: list[Any] = msgspec.msgpack.decode(raw) if raw else []
        return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}

    def frames(self) -> list[tuple[int, int, memoryview]]:
        """(time in s, seq, payload) of the window, oldest first."""
        data, out = memoryview(self._data), []
        pos, end = self._head_end, len(self._data)
        while pos < end:
            when, seq, length = FRAME.unpack_from(data, pos)
            pos += FRAME.size
            out.append((when, seq, data[pos:pos + length]))
            pos += length
        return out

    def ledger(self, limit: int | None = None) -> list[LedgerEntry]:
        frames = self.frames()
        if limit:
            frames = frames[-limit:]
        return [self._entry(p) for _, _, p in frames]

    def last_entry(self) -> LedgerEntry | None:
        frames = self.frames()
        return self._entry(frames[-1][2]) if frames else None

    def _entry(self, payload: memoryview) -> LedgerEntry:
        try:
            entry = decode_entry(_unpack("entry", payload))
        except Exception as exc:
            raise undecodable(exc) from exc
        return msgspec.structs.replace(entry, customer=self.customer)


def undecodable(exc: Exception) -> StoreValueUndecodable:
    """Whatever fails while decoding a stored value's bytes (zstd, msgpack, a state version or
    codec this release does not know) means the same to every reader and writer: retrying cannot
    help, and a raw traceback would loop a worker. No customer id: the message reaches logs."""
    return StoreValueUndecodable(
        f"Redis holds a customer value this version cannot decode ({type(exc).__name__}: "
        f"{exc}). Nothing was written. Written by a newer release: upgrade every worker, `run` "
        "and API process before they read it. Corrupted: restore it from a backup, or delete "
        "that customer's key and replay its events", operation="load")


def encode_open(counts: list[tuple[str, int]]) -> bytes:
    """The header's open-promise counts: msgpack [rule, count, ...] sorted by rule, or nothing
    (the same bytes for the same counts: the script compares them before touching totals)."""
    if not counts:
        return b""
    flat: list[Any] = []
    for rule, count in sorted(counts):
        flat += (rule, count)
    data = _pack(flat)
    if len(data) > MAX_PAYLOAD:
        raise OverflowError(f"open promises of {len(counts)} rules ({len(data)} bytes)")
    return data


UPDATE = struct.Struct(">IHHI")     # state seq, new frames, open length, head length


def encode_update(state: CustomerState, opened: bytes, frames: list[bytes], *,
                  compress: bool = True) -> bytes:
    """One customer's part of a commit (one script argument): its seq, counts, head, frames."""
    return update(state.seq, opened, encode_head(state, compress=compress), frames)


def update(seq: int, opened: bytes, head: bytes, frames: list[bytes]) -> bytes:
    """`encode_update` from a head and frames already encoded."""
    return b"".join((UPDATE.pack(seq, len(frames), len(opened), len(head)), opened, head,
                     *frames))


def is_value(data: bytes) -> bool:
    return data[:2] == MAGIC
