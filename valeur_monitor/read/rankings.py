"""Ranked lists over a Reader: customers at risk at `as_of`, customers losing most over a window.

At risk is exact without reading every customer: decay only shrinks a score toward zero, so a
customer whose STORED total is above a negative bound T has a decayed score above T too. The
pool of lowest stored totals grows until the n-th decayed score found is at or below the pool's
bound, or the pool is exhausted (or `max_pool` is reached: the result then says incomplete).
"""

from __future__ import annotations

from dataclasses import dataclass

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.read.base import Reader
from valeur_monitor.read.views import decayed

POOL = 200


@dataclass(frozen=True)
class Ranked:
    customer: str
    score: float            # decayed to as_of
    lost: float = 0.0       # value destroyed within the window (losing list), >= 0
    net: float = 0.0        # net value within the window (losing list)


@dataclass(frozen=True)
class Ranking:
    items: list[Ranked]
    complete: bool          # False: the pool limit was reached before the answer was certain
    scanned: int


def _matches(entries: list[LedgerEntry], team: str | None, channel: str | None) -> bool:
    if team is None and channel is None:
        return True
    return any((team is None or e.team == team) and (channel is None or e.channel == channel)
               for e in entries)


def at_risk(reader: Reader, n: int, *, as_of: int, half_life: int | None,
            team: str | None = None, channel: str | None = None,
            max_pool: int = 50_000) -> Ranking:
    """The n lowest negative scores at `as_of` (team/channel: having an entry of it kept)."""
    pool, scanned = max(POOL, 2 * n), 0
    found: dict[str, Ranked] = {}
    filtered = team is not None or channel is not None
    while True:
        asked = pool - scanned
        rows = reader.ranked(scanned, asked)
        scanned += len(rows)
        views = reader.scores([c for c, total in rows if total < 0])
        # The ledger is needed to filter, or to rebuild a score updated after as_of.
        need = [c for c, v in views.items() if filtered or v.at > as_of]
        ledgers = reader.ledgers(need) if need else {}
        for c, view in views.items():
            if filtered and not _matches(ledgers[c], team, channel):
                continue
            score = decayed(view, as_of, half_life, ledgers.get(c, ()))
            if score < 0:
                found[c] = Ranked(c, score)
        best = sorted(found.values(), key=lambda r: (r.score, r.customer))[:n]
        bound = rows[-1][1] if rows else 0.0
        exhausted = len(rows) < asked or bound >= 0
        if exhausted or (len(best) == n and best[-1].score <= bound):
            return Ranking(best, True, scanned)
        if scanned >= max_pool:
            return Ranking(best, False, scanned)
        pool = min(max_pool, pool * 4)


def losing(reader: Reader, n: int, *, as_of: int, window: int, team: str | None = None,
           channel: str | None = None, pool: int = 5000, half_life: int | None = None
           ) -> Ranking:
    """The n customers with the most negative net value in (as_of − window, as_of].

    Candidates are the `pool` customers with the lowest stored totals (all of them in an
    embedded run); entries count when their team/channel match the filters.
    """
    rows = reader.ranked(0, pool)
    names = [c for c, _ in rows]
    ledgers = reader.ledgers(names) if names else {}
    views = reader.scores(names) if names else {}
    start = as_of - window
    out = []
    for c in names:
        entries = [e for e in ledgers[c] if start < e.time <= as_of
                   and (team is None or e.team == team)
                   and (channel is None or e.channel == channel)]
        net = sum(e.value for e in entries)
        if net >= 0 or c not in views:
            continue
        lost = -sum(e.value for e in entries if e.value < 0)
        out.append(Ranked(c, decayed(views[c], as_of, half_life, ledgers[c]), lost, net))
    out.sort(key=lambda r: (r.net, r.customer))
    return Ranking(out[:n], len(rows) < pool, len(rows))
