"""The Redis commit: one Lua script applies a whole batch, all or nothing (docs/store.md).

Kept apart from the store so that the encoding of states, scores and ledger entries (what goes
into ARGV) and the script (what Redis does with it) can change together in one place.
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import Any

import msgspec

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.store.base import Commit
from valeur_monitor.store.census import open_rules
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.known import Known
from valeur_monitor.store.record import (
    MAX_U32,
    SAFE_RAW,
    UPDATE,
    codec_byte,
    compressed,
    decode_entry,
    encode_entry,
    encode_frame,
    encode_head,
    encode_open,
    entry_raw,
    frame_header,
    head_raw,
    update,
)

__all__ = ["COMMIT_LUA", "Prepared", "commit_call", "decode_entry", "encode_entry", "num"]

# Error replies of the script (prefixes of the message), mapped to StoreDataLost by the store.
EPOCH_MISMATCH = "VMEPOCH"
ROLLED_BACK = "VMROLLBACK"
WRONG_LAYOUT = "VMLAYOUT"

# The `#!lua` shebang (Redis >= 7.0) makes Redis check OOM BEFORE the script runs: with
# maxmemory reached and noeviction, the whole batch is refused and nothing is written.
#
# KEYS: epoch, watermark, ranking, due, open-promise totals, then one value key per customer.
# ARGV: epoch id, commits seen by this client, watermark, ledger cap, window cutoff (s: frames
#       older are dropped, 0 none), ranking [score, member..], due [score, member..], undue
#       [member..] (three msgpack arrays), customer count, then TWO arguments per customer,
#       `meta` and `data`, in one of two forms (below), then the ranking of known-form
#       customers whose score is the one the committer gave them last, [index, score,
#       member..] (a msgpack array): added only if the customer's value is merged (its prefix
#       differs: the committer's knowledge of it, ranking included, is not what Redis holds).
#       Two thirds of a worker's commits leave a total unchanged (docs/benchmarks.md).
#   merge form: meta is empty (or one byte: send the value written back), data is the update
#       (record.encode_update): u32 state seq, u16 entry count n, u16 open length, u32 head
#       length, the open-promise counts, the head, then the n new frames in seq order.
#       The value (store/record.py) is rebuilt from the stored one: header (new seq mark,
#       counts), the new open counts and head, the old frames then the new ones whose seq is
#       above the old mark (a retried commit appends nothing twice), minus a prefix: frames
#       beyond the last `cap`, then frames older than the cutoff. Only the headers of dropped
#       frames are read; payloads never.
#   known form: the committer knows the stored value (it wrote it: `Known`) and sends the new
#       one whole, as the merge would build it: meta is u32 state seq, u16 n, u8 open counts
#       changed, then the stored value's expected prefix (header and open counts); data is the
#       new value, ending with the n new frames (an empty prefix: no key, `Known.absent`). If
#       the stored prefix is that one (GETRANGE:
#       the seq mark, head length, frame count and open counts are what the committer wrote
#       last, so are its frames: they change only by appends, which move the mark, and drops,
#       which move the count), the value is SET as is. Else (a retried commit already applied,
#       a value written by someone else, a restored key) it is merged like the merge form,
#       from the head, counts and new frames inside the new value.
# Why: Redis's Lua hashes every byte of every string it makes (GET's reply, substrings, the
# concatenation): the merge makes the value ~3 times, the known form once (docs/benchmarks.md,
# "State, eighth wave").
# When a customer's open counts change, the difference goes to the totals HASH (rule -> open
# promises, store/census.py): a retried commit finds the new counts already stored and adds
# nothing. Every key is read before anything is written, so a foreign key of the wrong type
# under the prefix stops the whole batch with nothing written (no value without its counts).
# Returns the epoch's commit counter after this commit, then (index, value) of every customer
# merged whose meta was not empty: the committer learns what it did not know.
COMMIT_LUA = """#!lua
local epoch = redis.call('HMGET', KEYS[1], 'id', 'commits', 'layout')
if epoch[1] ~= ARGV[1] then
  return redis.error_reply('VMEPOCH store epoch is ' .. tostring(epoch[1] or 'missing'))
end
if tonumber(epoch[2] or '0') < tonumber(ARGV[2]) then
  return redis.error_reply('VMROLLBACK commit counter ' .. tostring(epoch[2]) ..
                           ' below ' .. ARGV[2])
end
if epoch[3] ~= '2' then
  return redis.error_reply('VMLAYOUT store key layout is ' .. tostring(epoch[3] or '1'))
end

local function in_chunks(cmd, key, t, step)
  for s = 1, #t, step do
    redis.call(cmd, key, unpack(t, s, math.min(s + step - 1, #t)))
  end
end

local delta = {}
local function add_counts(flat, sign)
  local t = cmsgpack.unpack(flat)
  for i = 1, #t, 2 do delta[t[i]] = (delta[t[i]] or 0) + sign * t[i + 1] end
end

-- Every read first: a key of the wrong type stops the script before anything is written.
local customers = tonumber(ARGV[9])
local values = {}
for c = 1, customers do
  local key, meta = KEYS[5 + c], ARGV[8 + 2 * c]
  if #meta > 1 then
    values[c] = redis.call('GETRANGE', key, 0, #meta - 8) == string.sub(meta, 8)
  else
    values[c] = redis.call('GET', key) or false
  end
end
redis.call('HLEN', KEYS[5])
redis.call('ZCARD', KEYS[3])
redis.call('ZCARD', KEYS[4])
local cur = redis.call('GET', KEYS[2])

local MAGIC = '\\194\\002'
local cap = tonumber(ARGV[4])
local cutoff = tonumber(ARGV[5])
local learned = {0}   -- the counter, then (index, value) pairs
for c = 1, customers do
  local key, meta, data = KEYS[5 + c], ARGV[8 + 2 * c], ARGV[9 + 2 * c]
  local old = values[c]
  if old == true then
    redis.call('SET', key, data)
    if string.byte(meta, 7) == 1 then
      local _, _, _, ol = 0, 0, 0, 0   -- an empty prefix: a key known to be absent
      if #meta > 7 then _, _, _, ol = struct.unpack('>I4I4I2I2', meta, 10) end
      local _, _, _, nl = struct.unpack('>I4I4I2I2', data, 3)
      if ol > 0 then add_counts(string.sub(meta, 22, 21 + ol), -1) end
      if nl > 0 then add_counts(string.sub(data, 15, 14 + nl), 1) end
    end
  else
    local hw, n, ol, hl, opened, head, p
    if #meta > 1 then
      old = redis.call('GET', key) or false
      hw, n = struct.unpack('>I4I2', meta, 1)
      local _, l, count
      _, hl, count, ol = struct.unpack('>I4I4I2I2', data, 3)
      opened = string.sub(data, 15, 14 + ol)
      head = string.sub(data, 15 + ol, 14 + ol + hl)
      p = 15 + ol + hl
      for _ = 1, count - n do
        _, _, l = struct.unpack('>I4I4I2', data, p)
        p = p + 10 + l
      end
    else
      hw, n, ol, hl = struct.unpack('>I4I2I2I4', data, 1)
      opened = string.sub(data, 13, 12 + ol)
      head = string.sub(data, 13 + ol, 12 + ol + hl)
      p = 13 + ol + hl
    end
    local last, count, pos, before = 0, 0, 0, ''
    if old then
      if string.sub(old, 1, 2) ~= MAGIC then
        return redis.error_reply('VMLAYOUT value of ' .. key .. ' is not a layout-2 value')
      end
      local hl, ol
      last, hl, count, ol = struct.unpack('>I4I4I2I2', old, 3)
      before = string.sub(old, 15, 14 + ol)
      pos = 15 + ol + hl
    end
    local new = {}
    for _ = 1, n do
      local _, s, l = struct.unpack('>I4I4I2', data, p)
      if s > last then new[#new + 1] = string.sub(data, p, p + 9 + l) end
      p = p + 10 + l
    end
    if last > hw then hw = last end
    local drop = count + #new - cap
    while count > 0 do
      local t, _, l = struct.unpack('>I4I4I2', old, pos)
      if drop <= 0 and t >= cutoff then break end
      drop, count, pos = drop - 1, count - 1, pos + 10 + l
    end
    local first = 1
    if count == 0 then
      while first <= #new do
        if drop <= 0 and struct.unpack('>I4', new[first], 1) >= cutoff then break end
        drop, first = drop - 1, first + 1
      end
    end
    if before ~= opened then
      if #before > 0 then add_counts(before, -1) end
      if #opened > 0 then add_counts(opened, 1) end
    end
    local tail = ''
    if count > 0 then tail = string.sub(old, pos) end
    local value = MAGIC .. struct.pack('>I4I4I2I2', hw, #head, count + #new - first + 1,
                  #opened) .. opened .. head .. tail .. table.concat(new, '', first, #new)
    redis.call('SET', key, value)
    if #meta > 0 then
      learned[#learned + 1] = c
      learned[#learned + 1] = value
    end
  end
end

for rule, d in pairs(delta) do
  if d ~= 0 then redis.call('HINCRBY', KEYS[5], rule, d) end
end
local ranking = cmsgpack.unpack(ARGV[6])
local again = cmsgpack.unpack(ARGV[10 + 2 * customers])
for i = 1, #again, 3 do
  if values[again[i]] ~= true then
    ranking[#ranking + 1] = again[i + 1]
    ranking[#ranking + 1] = again[i + 2]
  end
end
in_chunks('ZADD', KEYS[3], ranking, 1000)
in_chunks('ZADD', KEYS[4], cmsgpack.unpack(ARGV[7]), 1000)
in_chunks('ZREM', KEYS[4], cmsgpack.unpack(ARGV[8]), 1000)

if not cur or tonumber(ARGV[3]) > tonumber(cur) then redis.call('SET', KEYS[2], ARGV[3]) end
learned[1] = redis.call('HINCRBY', KEYS[1], 'commits', 1)
return learned
"""

_pack = msgspec.msgpack.Encoder().encode
LEARN = b"L"    # merge form's meta: send the written value back (to be `Known`)


def num(value: float) -> str:
    """Exact text of a float (repr round-trips), as stored in hashes and ZSET scores."""
    return repr(float(value))


class Prepared:
    """A commit encoded for the script, but for what needs no state any more: the zstd
    compression of its heads and frames (two calls that release the GIL), the key names and
    the ranking and due arguments. `call`, run by the thread that sends it, does that while
    the next batches' engine work runs (on another core). Same bytes as doing it at once."""

    def __init__(self, keys: Keys, common: list[Any], customers: list[str], totals: list[float],
                 due: dict[str, int], parts: list[tuple[int, bytes, int]], heads: list[bytes],
                 frames: list[tuple[int, int, bytes]], done: list[bytes],
                 known: Known | None = None) -> None:
        self.names = keys
        self.common = common          # watermark, ledger cap, cutoff (ARGV 3-5)
        self.customers = customers    # in commit order
        self.totals = totals          # their score totals (the ranking)
        self.due = due                # customer -> next due (-1: none)
        self.parts = parts            # (state seq, open counts, new frames) per customer
        self.heads = heads            # raw heads, one per customer
        self.frames = frames          # (time, seq, raw payload) of every new frame, in order
        self.done = done              # without compression: each customer's argument at once
        self.known = known            # the values written last (None: merge form only)
        self._ranks: list[str] = []     # each customer's ranking score (`num` of its total)
        self._call: tuple[list[str], list[Any]] | None = None

    def call(self) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV (without the two epoch arguments) of the script; built on first use."""
        if self._call is None:
            names = self.names
            key_list = [names.epoch, names.watermark, names.ranking, names.due,
                        names.open_totals]
            value_key = names.value
            customers = self.customers
            key_list += [value_key(c) for c in customers]
            ranks = self._ranks = [num(total) for total in self.totals]
            ranking: list[Any] = []
            again: list[Any] = []    # known form, score unchanged: ZADD only if merged
            due: list[str] = []
            undue: list[str] = []
            for customer, at in self.due.items():
                if at >= 0:
                    due += (str(at), customer)
                else:
                    undue.append(customer)
            args: list[Any] = []
            for i, update in enumerate(self.done):
                args += (b"", update)
                ranking += (ranks[i], customers[i])
            heads = compressed("head", self.heads)
            frames = self.frames
            payloads = compressed("entry", [raw for _, _, raw in frames])
            # each customer's arguments in one join of the compressed heads and `frame`s, byte
            # for byte, without copying each compressed record twice first
            head_codec, entry_codec = codec_byte("head"), codec_byte("entry")
            pack = UPDATE.pack
            known = self.known
            learn = LEARN if known is not None and known.limit > 0 else b""
            cap, cutoff = int(self.common[1]), int(self.common[2])
            at = 0
            for i, (seq, opened, count) in enumerate(self.parts):
                head = heads[i]
                pieces: list[Any] = []
                for j in range(at, at + count):
                    payload = payloads[j]
                    pieces += (frame_header(frames[j][0], frames[j][1], len(payload) + 1),
                               entry_codec, payload)
                form = None
                customer, rank = customers[i], ranks[i]
                if known is not None:
                    form = known.build(customer, seq, opened, head_codec, head,
                                       frames[at:at + count], pieces, cap, cutoff, rank)
                at += count
                if form is None:
                    args += (learn, b"".join([pack(seq, count, len(opened), len(head) + 1),
                                              opened, head_codec, head, *pieces]))
                    ranking += (rank, customer)
                else:
                    meta, value, same = form
                    args += (meta, value)
                    if same:
                        again += (i + 1, rank, customer)
                    else:
                        ranking += (rank, customer)
            args = [*self.common, _pack(ranking), _pack(due), _pack(undue),
                    str(len(customers)), *args, _pack(again)]
            self._call = (key_list, args)
            self.heads, self.frames = [], []
        return self._call

    def replied(self, reply: Any) -> int:
        """The script's reply taken in: the values its merge wrote for customers of the known
        or learning form become known; returns the epoch's commit counter."""
        known = self.known
        if known is not None:
            customers = self.customers
            for k in range(1, len(reply), 2):
                i = int(reply[k]) - 1
                known.learn(customers[i], reply[k + 1], self._ranks[i])
        return int(reply[0])


def commit_call(keys: Keys, commit: Commit, ledger_cap: int, ledger_max_age: int | None = None,
                *, compress: bool = True, known: Known | None = None,
                watermark: bool = True) -> Prepared:
    """The commit script's call for `commit`: KEYS and ARGV without the two epoch arguments
    (`Prepared.call`).

    Everything that reads a state is encoded here, before anything is sent, so an encoding
    failure can never leave a batch half-written; what `Prepared.call` does later cannot fail
    (a payload too long to be sure of its compressed length is compressed and checked here).
    `ledger_max_age` (ms): window entries older than that behind the commit's watermark are
    dropped (None: only the count bounds the window)."""
    entries: dict[str, list[LedgerEntry]] = {}
    for entry in commit.entries:
        entries.setdefault(entry.customer, []).append(entry)
    missing = entries.keys() - commit.states.keys()
    if missing:
        raise ValueError(f"ledger entries for {len(missing)} customer(s) without a state in "
                         "the commit")
    parts: list[tuple[int, bytes, int]] = []
    heads: list[bytes] = []
    frames: list[tuple[int, int, bytes]] = []
    done: list[bytes] = []
    totals: list[float] = []
    for customer, state in commit.states.items():
        mine = entries.get(customer, ())
        if len(mine) > 1:
            mine = sorted(mine, key=attrgetter("seq"))
        opened = _open_counts(state)
        totals.append(state.score.total)
        if not compress:
            done.append(update(state.seq, opened, encode_head(state, compress=False),
                               [encode_frame(e, compress=False) for e in mine]))
            continue
        parts.append((state.seq, opened, len(mine)))
        heads.append(head_raw(state))
        for e in mine:
            raw = entry_raw(e)
            if len(raw) > SAFE_RAW:   # its length is checked now: raises OverflowError
                encode_frame(e)
            frames.append((e.time, e.seq, raw))
    cutoff = 0
    if ledger_max_age is not None and commit.watermark > ledger_max_age:
        cutoff = min((commit.watermark - ledger_max_age) // 1000, MAX_U32)
    # the value's frame count is a u16: a window never holds more than 65,535 entries
    common: list[Any] = [str(commit.watermark) if watermark else "0",
                         str(min(ledger_cap, 0xFFFF)), str(cutoff)]
    return Prepared(keys, common, list(commit.states), totals, dict(commit.due), parts, heads,
                    frames, done, known if compress else None)


# open rules of a state, in promise order -> the header's counts (few distinct lists: a state
# is encoded at every commit that changes it, and counting it anew cost ~3 µs each time)
_OPEN: dict[tuple[str, ...], bytes] = {}
_OPEN_MAX = 10_000


def _open_counts(state: CustomerState) -> bytes:
    rules = tuple(open_rules(state))
    found = _OPEN.get(rules)
    if found is None:
        found = encode_open(list(Counter(rules).items()))
        if len(_OPEN) >= _OPEN_MAX:
            _OPEN.clear()
        _OPEN[rules] = found
    return found

