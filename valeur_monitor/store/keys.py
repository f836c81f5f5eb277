"""Every Redis key name of the Redis store, built in this one module.

A customer has ONE key (layout 2, since issue 12), named by its hash tag ``{c:<customer>}`` so
that a Lua script may touch it together with... only itself: the commit script lists it in
KEYS. Global keys carry no hash tag and are never touched per customer (see docs/store.md).

With the default prefix ``vm:`` and customer ``cust-1``::

    vm:{c:cust-1}           STRING  score row, compact CustomerState (dedupe marks too) and the
                                    recent ledger window, in one value (store/record.py)
    vm:ranking              ZSET    customer -> score total
    vm:due                  ZSET    customer -> next due instant (ms)
    vm:watermark            STRING  stream time reached (ms)
    vm:identities           HASH    sha256 of an identity (email, phone...) -> customer, account
    vm:open-promises        HASH    rule -> open promises over all customers (store/census.py)
    vm:epoch                HASH    id (random, set once), commits (counter), layout (2)

No two customers share a key: ``<prefix>{c:`` + customer + ``}`` is undone by stripping that
prefix and the last character. No global key starts with ``{``. Layout 1 (before issue 12) had
four keys per customer (``...:state``, ``:score``, ``:reasons``, ``:ledger``): `legacy` names
them for the check that refuses (or the command that migrates) such a store.
"""

from __future__ import annotations

LAYOUT = 2
DEFAULT_PREFIX = "vm:"
LEGACY_SUFFIXES = ("state", "score", "reasons", "ledger")


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
        self.open_totals = f"{prefix}open-promises"  # HASH: rule -> open promises (census)
        self.epoch = f"{prefix}epoch"

    def value(self, customer: str) -> str:
        """The customer's one key: ``vm:{c:<customer>}``."""
        return f"{self.prefix}{{c:{customer}}}"

    def customer_of(self, key: str) -> str:
        """Inverse of `value`."""
        return key[len(self.prefix) + 3:-1]

    def legacy(self, customer: str) -> tuple[str, str, str, str]:
        """The four keys a customer had in layout 1 (state, score, reasons, ledger)."""
        base = f"{self.prefix}{{c:{customer}}}:"
        return tuple(base + s for s in LEGACY_SUFFIXES)  # type: ignore[return-value]

    def values_pattern(self) -> str:
        """SCAN MATCH pattern of every customer key (layout 2)."""
        return self._escaped() + "{c:*}"

    def legacy_pattern(self) -> str:
        """SCAN MATCH pattern of layout-1 state keys (one per customer)."""
        return self._escaped() + "{c:*}:state"

    def globals(self) -> tuple[str, str, str, str]:
        return (self.ranking, self.due, self.watermark, self.epoch)

    def _escaped(self) -> str:
        return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)

    def pattern(self) -> str:
        """A SCAN MATCH pattern for every key under this prefix (glob characters escaped)."""
        return self._escaped() + "*"
