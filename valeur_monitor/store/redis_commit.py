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
from valeur_monitor.engine.state import encode_state
from valeur_monitor.store import keys as K
from valeur_monitor.store.base import Commit
from valeur_monitor.store.census import open_rules
from valeur_monitor.store.keys import Keys

# Error replies of the script (prefixes of the message), mapped to StoreDataLost by the store.
EPOCH_MISMATCH = "VMEPOCH"
ROLLED_BACK = "VMROLLBACK"

# The `#!lua` shebang (Redis >= 7.0) makes Redis check OOM BEFORE the script runs: with
# maxmemory reached and noeviction, the whole batch is refused and nothing is written.
#
# KEYS: epoch, watermark, ranking, due, open-rules, then (state, score, reasons, ledger) per
#       customer.
# ARGV: epoch id, commits seen by this client, watermark, ledger cap, ranking [score, member..],
#       due [score, member..], undue [member..], open promises [rule, customer, count..] (four
#       msgpack arrays), the open-promise ZSET prefix, customer count, then per customer: state
#       bytes, state seq, score fields, reasons (msgpack arrays of strings), entry count n, then
#       n (seq, entry bytes) pairs in seq order.
# The open-promise ZSETs (<prefix>open:<rule>, store/census.py) are named from ARGV: they are
# derived counts for metrics, and a rule is only known once a promise of it opens.
# Returns the epoch's commit counter after this commit.
COMMIT_LUA = """#!lua
local epoch = redis.call('HMGET', KEYS[1], 'id', 'commits')
if epoch[1] ~= ARGV[1] then
  return redis.error_reply('VMEPOCH store epoch is ' .. tostring(epoch[1] or 'missing'))
end
if tonumber(epoch[2] or '0') < tonumber(ARGV[2]) then
  return redis.error_reply('VMROLLBACK commit counter ' .. tostring(epoch[2]) ..
                           ' below ' .. ARGV[2])
end

local function in_chunks(cmd, key, t, step)
  for s = 1, #t, step do
    redis.call(cmd, key, unpack(t, s, math.min(s + step - 1, #t)))
  end
end

local cap = tonumber(ARGV[4])
local a = 11
for c = 0, tonumber(ARGV[10]) - 1 do
  local k = 6 + 4 * c
  redis.call('SET', KEYS[k], ARGV[a])
  local old = redis.call('HGET', KEYS[k + 1], 'seq')
  local last = tonumber(old or '0')
  local hw = ARGV[a + 1]
  if last > tonumber(hw) then hw = old end
  redis.call('DEL', KEYS[k + 1], KEYS[k + 2])
  local fields = cmsgpack.unpack(ARGV[a + 2])
  fields[#fields + 1] = 'seq'
  fields[#fields + 1] = hw
  in_chunks('HSET', KEYS[k + 1], fields, 1000)
  in_chunks('HSET', KEYS[k + 2], cmsgpack.unpack(ARGV[a + 3]), 1000)
  local n = tonumber(ARGV[a + 4])
  a = a + 5
  local batch = {}
  for j = a, a + 2 * n - 1, 2 do
    if tonumber(ARGV[j]) > last then batch[#batch + 1] = ARGV[j + 1] end
  end
  a = a + 2 * n
  if #batch > 0 then
    in_chunks('RPUSH', KEYS[k + 3], batch, 500)
    redis.call('LTRIM', KEYS[k + 3], -cap, -1)
  end
end

in_chunks('ZADD', KEYS[3], cmsgpack.unpack(ARGV[5]), 1000)
in_chunks('ZADD', KEYS[4], cmsgpack.unpack(ARGV[6]), 1000)
in_chunks('ZREM', KEYS[4], cmsgpack.unpack(ARGV[7]), 1000)

-- Open promises per rule: every customer of the batch gets its exact count (ZADD) or leaves
-- the rule's ZSET (ZREM), for every rule ever seen (another worker may have added one).
local ranking = cmsgpack.unpack(ARGV[5])
local open = cmsgpack.unpack(ARGV[8])
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
  local key = ARGV[9] .. r
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

class _Entry(msgspec.Struct, array_like=True):
    """A ledger entry without field names (the compact form kept in Redis)."""

    time: int
    seq: int
    customer: str
    rule: str
    outcome: str
    dimension: str
    amount: float
    value: float
    events: tuple[str, ...]
    explain: str
    ref: str
    team: str
    channel: str
    late: bool
    rules_version: str


ENTRY_MAGIC = b"\xc1\x01"   # 0xC1 is never a msgpack first byte: older entries are maps
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


def num(value: float) -> str:
    """Exact text of a float (repr round-trips), as stored in hashes and ZSET scores."""
    return repr(float(value))


def commit_call(keys: Keys, commit: Commit, ledger_cap: int) -> tuple[list[str], list[Any]]:
    """(KEYS, ARGV without the two epoch arguments) of the commit script for `commit`.

    Everything is encoded here, before anything is sent, so an encoding failure can never
    leave a batch half-written."""
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
    for customer, state in commit.states.items():
        score = state.score
        fields = [K.F_TOTAL, num(score.total), K.F_AT, str(score.at),
                  K.F_CREATED, num(score.created), K.F_DESTROYED, num(score.destroyed)]
        for dim, value in score.dims.items():
            fields += (K.DIM_PREFIX + dim, num(value))
        reasons: list[str] = []
        for rule, value in state.reasons.items():
            reasons += (rule, num(value))
        mine = sorted(entries.get(customer, ()), key=lambda e: e.seq)
        per_customer += (encode_state(state), str(state.seq), _pack(fields), _pack(reasons),
                         str(len(mine)))
        for entry in mine:
            per_customer += (str(entry.seq), encode_entry(entry))
        key_list.extend(keys.customer(customer).all())
        ranking += (num(score.total), customer)
        for rule, count in sorted(Counter(open_rules(state)).items()):
            open_counts += (rule, customer, count)
    due: list[str] = []
    undue: list[str] = []
    for customer, at in commit.due.items():
        if at >= 0:
            due += (str(at), customer)
        else:
            undue.append(customer)
    args: list[Any] = [str(commit.watermark), str(ledger_cap),
                       _pack(ranking), _pack(due), _pack(undue), _pack(open_counts),
                       keys.open_promises(""), str(len(commit.states)),
                       *per_customer]
    return key_list, args


def chunks(items: Sequence[Any], size: int = 1000) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
