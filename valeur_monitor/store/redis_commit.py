"""The Redis commit: one Lua script applies a whole batch, all or nothing (docs/store.md).

Kept apart from the store so that the encoding of states, scores and ledger entries (what goes
into ARGV) and the script (what Redis does with it) can change together in one place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.store.base import Commit
from valeur_monitor.store.census import open_rules
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.record import (
    MAX_U32,
    decode_entry,
    encode_entry,
    encode_frame,
    encode_head,
)

__all__ = ["COMMIT_LUA", "commit_call", "decode_entry", "encode_entry", "num"]

# Error replies of the script (prefixes of the message), mapped to StoreDataLost by the store.
EPOCH_MISMATCH = "VMEPOCH"
ROLLED_BACK = "VMROLLBACK"
WRONG_LAYOUT = "VMLAYOUT"

# The `#!lua` shebang (Redis >= 7.0) makes Redis check OOM BEFORE the script runs: with
# maxmemory reached and noeviction, the whole batch is refused and nothing is written.
#
# KEYS: epoch, watermark, ranking, due, open-rules, then one value key per customer.
# ARGV: epoch id, commits seen by this client, watermark, ledger cap, window cutoff (s: frames
#       older are dropped, 0 none), ranking [score, member..], due [score, member..], undue
#       [member..], open promises [rule, customer, count..] (four msgpack arrays), the
#       open-promise ZSET prefix, customer count, then per customer: head bytes, state seq,
#       entry count n, then n (seq, frame bytes) pairs in seq order.
# A customer's value (store/record.py) is rebuilt as: header with the new seq mark, the new
# head, the old frames then the new ones whose seq is above the old mark (a retried commit
# appends nothing twice), trimmed to the last `cap` frames, then frames older than the cutoff
# dropped from the front. Payloads are never decoded here.
# The open-promise ZSETs (<prefix>open:<rule>, store/census.py) are named from ARGV: they are
# derived counts for metrics, and a rule is only known once a promise of it opens.
# Returns the epoch's commit counter after this commit.
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

local cap = tonumber(ARGV[4])
local cutoff = tonumber(ARGV[5])
local a = 12
for c = 0, tonumber(ARGV[11]) - 1 do
  local key = KEYS[6 + c]
  local head, hw, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local frames, times, last = {}, {}, 0
  local old = redis.call('GET', key)
  if old then
    if string.sub(old, 1, 2) ~= '\\194\\002' then
      return redis.error_reply('VMLAYOUT value of ' .. key .. ' is not a layout-2 value')
    end
    local len
    last, len = struct.unpack('>I4I4', old, 3)
    local pos, size = 11 + len, #old
    while pos <= size do
      local t, _, l = struct.unpack('>I4I4I2', old, pos)
      frames[#frames + 1] = string.sub(old, pos, pos + 9 + l)
      times[#times + 1] = t
      pos = pos + 10 + l
    end
  end
  for j = a, a + 2 * n - 1, 2 do
    if tonumber(ARGV[j]) > last then
      frames[#frames + 1] = ARGV[j + 1]
      times[#times + 1] = struct.unpack('>I4', ARGV[j + 1], 1)
    end
  end
  a = a + 2 * n
  if last > hw then hw = last end
  local first = math.max(1, #frames - cap + 1)
  while first <= #frames and times[first] < cutoff do first = first + 1 end
  redis.call('SET', key, '\\194\\002' .. struct.pack('>I4I4', hw, #head) .. head ..
             table.concat(frames, '', first, #frames))
end

in_chunks('ZADD', KEYS[3], cmsgpack.unpack(ARGV[6]), 1000)
in_chunks('ZADD', KEYS[4], cmsgpack.unpack(ARGV[7]), 1000)
in_chunks('ZREM', KEYS[4], cmsgpack.unpack(ARGV[8]), 1000)

-- Open promises per rule: every customer of the batch gets its exact count (ZADD) or leaves
-- the rule's ZSET (ZREM), for every rule ever seen (another worker may have added one).
local ranking = cmsgpack.unpack(ARGV[6])
local open = cmsgpack.unpack(ARGV[9])
local counts, members = {}, {}
for i = 1, #open, 3 do
  local r = open[i]
  if not counts[r] then counts[r] = {}; members[r] = {} end
  local t = counts[r]
  t[#t + 1] = open[i + 2]
  t[#t + 1] = open[i + 1]
  members[r][open[i + 1]] = true
end
local rules, new = {}, {}
for _, r in ipairs(redis.call('SMEMBERS', KEYS[5])) do rules[r] = true end
for r in pairs(counts) do
  if not rules[r] then new[#new + 1] = r; rules[r] = true end
end
in_chunks('SADD', KEYS[5], new, 1000)
for r in pairs(rules) do
  local key = ARGV[10] .. r
  in_chunks('ZADD', key, counts[r] or {}, 1000)
  local present, absent = members[r] or {}, {}
  for i = 2, #ranking, 2 do
    if not present[ranking[i]] then absent[#absent + 1] = ranking[i] end
  end
  in_chunks('ZREM', key, absent, 1000)
end

local cur = redis.call('GET', KEYS[2])
if not cur or tonumber(ARGV[3]) > tonumber(cur) then redis.call('SET', KEYS[2], ARGV[3]) end
return redis.call('HINCRBY', KEYS[1], 'commits', 1)
"""

_pack = msgspec.msgpack.Encoder().encode


def num(value: float) -> str:
    """Exact text of a float (repr round-trips), as stored in hashes and ZSET scores."""
    return repr(float(value))


def commit_call(keys: Keys, commit: Commit, ledger_cap: int, ledger_max_age: int | None = None,
                *, compress: bool = True) -> tuple[list[str], list[Any]]:
    """(KEYS, ARGV without the two epoch arguments) of the commit script for `commit`.

    Everything is encoded here, before anything is sent, so an encoding failure can never
    leave a batch half-written. `ledger_max_age` (ms): window entries older than that behind
    the commit's watermark are dropped (None: only the count bounds the window)."""
    entries: dict[str, list[LedgerEntry]] = {}
    for entry in commit.entries:
        entries.setdefault(entry.customer, []).append(entry)
    missing = entries.keys() - commit.states.keys()
    if missing:
        raise ValueError(f"ledger entries for {len(missing)} customer(s) without a state in "
                         "the commit")
    key_list: list[str] = [keys.epoch, keys.watermark, keys.ranking, keys.due, keys.open_rules]
    open_counts: list[Any] = []
    per_customer: list[Any] = []
    ranking: list[str] = []
    value_key = keys.value
    for customer, state in commit.states.items():
        mine = entries.get(customer, ())
        if len(mine) > 1:
            mine = sorted(mine, key=_seq)
        per_customer += (encode_head(state, compress=compress), str(state.seq), str(len(mine)))
        for entry in mine:
            per_customer += (str(entry.seq), encode_frame(entry, compress=compress))
        key_list.append(value_key(customer))
        ranking += (num(state.score.total), customer)
        for rule, count in sorted(Counter(open_rules(state)).items()):
            open_counts += (rule, customer, count)
    due: list[str] = []
    undue: list[str] = []
    for customer, at in commit.due.items():
        if at >= 0:
            due += (str(at), customer)
        else:
            undue.append(customer)
    cutoff = 0
    if ledger_max_age is not None and commit.watermark > ledger_max_age:
        cutoff = min((commit.watermark - ledger_max_age) // 1000, MAX_U32)
    args: list[Any] = [str(commit.watermark), str(ledger_cap), str(cutoff),
                       _pack(ranking), _pack(due), _pack(undue), _pack(open_counts),
                       keys.open_promises(""), str(len(commit.states)),
                       *per_customer]
    return key_list, args


def _seq(entry: LedgerEntry) -> int:
    return entry.seq


def chunks(items: Sequence[Any], size: int = 1000) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
