"""Every Redis key name of the Redis store, built in this one module.

Per-customer keys carry the hash tag ``{c:<customer>}`` so that all keys of one customer hash
to the same Redis Cluster slot and a Lua script may touch them together. Global keys carry no
hash tag and are never touched by the per-customer script (see docs/store.md).

With the default prefix ``vm:`` and customer ``cust-1``::

    vm:{c:cust-1}:state     STRING  compact CustomerState (engine/compact.py), dedupe marks too
    vm:{c:cust-1}:score     HASH    total, at, created, destroyed, seq, dim:<dimension>...
    vm:{c:cust-1}:reasons   HASH    rule id -> undecayed value
    vm:{c:cust-1}:ledger    LIST    msgpack of LedgerEntry, oldest first, capped
    vm:ranking              ZSET    customer -> score total
    vm:due                  ZSET    customer -> next due instant (ms)
    vm:watermark            STRING  stream time reached (ms)
    vm:identities           HASH    sha256 of an identity (email, phone...) -> customer, account
    vm:open:<rule>          ZSET    customer -> open promises of that rule (store/census.py)
    vm:open-rules           SET     rules that ever had an open promise (the ZSETs to read)
    vm:epoch                HASH    id (random, set once), commits (counter): data-loss check

No two customers can share a key: the suffixes after the tag (``state``, ``score``, ``reasons``,
``ledger``) contain no ``}`` and none ends with another, so ``<customer>}:<suffix>`` determines
the customer; a customer id containing ``}`` only shortens its hash tag, which stays the same for
all of that customer's keys.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "vm:"

STATE = "state"
SCORE = "score"
REASONS = "reasons"
LEDGER = "ledger"
CUSTOMER_SUFFIXES = (STATE, SCORE, REASONS, LEDGER)

# Fields of the score hash (besides one `dim:<dimension>` field per dimension).
F_TOTAL = "total"
F_AT = "at"
F_CREATED = "created"
F_DESTROYED = "destroyed"
F_SEQ = "seq"          # highest ledger seq appended: makes the ledger append idempotent
DIM_PREFIX = "dim:"


@dataclass(frozen=True)
class CustomerKeys:
    """The four keys of one customer, in the order the commit script expects them."""

    state: str
    score: str
    reasons: str
    ledger: str

    def all(self) -> tuple[str, str, str, str]:
        return (self.state, self.score, self.reasons, self.ledger)


class Keys:
    """Key names under one prefix (e.g. one tenant, or one test)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"key prefix {prefix!r} must not contain '{{' or '}}' "
                             "(it would change the Cluster hash tag)")
        self.prefix = prefix
        self.ranking = f"{prefix}ranking"
        self.due = f"{prefix}due"
        self.watermark = f"{prefix}watermark"
        self.identities = f"{prefix}identities"  # HASH: hashed identity -> customer\taccount
        self.open_rules = f"{prefix}open-rules"
        self.epoch = f"{prefix}epoch"

    def open_promises(self, rule: str) -> str:
        return f"{self.prefix}open:{rule}"

    def tag(self, customer: str) -> str:
        """The common part of a customer's keys, hash tag included: ``vm:{c:<customer>}``."""
        return f"{self.prefix}{{c:{customer}}}"

    def customer(self, customer: str) -> CustomerKeys:
        base = f"{self.prefix}{{c:{customer}}}:"
        return CustomerKeys(base + STATE, base + SCORE, base + REASONS, base + LEDGER)

    def state(self, customer: str) -> str:
        return f"{self.prefix}{{c:{customer}}}:{STATE}"

    def score(self, customer: str) -> str:
        return f"{self.prefix}{{c:{customer}}}:{SCORE}"

    def reasons(self, customer: str) -> str:
        return f"{self.prefix}{{c:{customer}}}:{REASONS}"

    def ledger(self, customer: str) -> str:
        return f"{self.prefix}{{c:{customer}}}:{LEDGER}"

    def globals(self) -> tuple[str, str, str, str]:
        return (self.ranking, self.due, self.watermark, self.epoch)

    def pattern(self) -> str:
        """A SCAN MATCH pattern for every key under this prefix (glob characters escaped)."""
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)
        return escaped + "*"
