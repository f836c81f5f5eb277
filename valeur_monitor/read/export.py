"""Export rows for CRM imports: every score decayed to one `as_of`, with its top reasons."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from valeur_monitor.engine.event import format_time
from valeur_monitor.engine.ledger import DIMENSIONS
from valeur_monitor.metrics import DEFAULT_BAND_EDGES, band_of
from valeur_monitor.read.accounts import AccountBook, rollup
from valeur_monitor.read.base import Reader
from valeur_monitor.read.views import Edges, factor, value_at

FIELDS = ("customer", "as_of", "score", "band", "updated_at", "created", "destroyed",
          *DIMENSIONS, "top_reasons", "rules_version")


def export_rows(reader: Reader, *, as_of: int, half_life: int | None, since: int | None = None,
                edges: Edges = DEFAULT_BAND_EDGES, reasons: int = 3, batch: int = 1000
                ) -> Iterator[dict[str, Any]]:
    """One row per customer (updated at or after `since`, when given), sorted by customer id.

    A score updated after `as_of` is rebuilt from its ledger window (see read.views).
    """
    everyone = sorted(c for part in reader.batches(batch) for c in part)
    stamp = format_time(as_of)
    for i in range(0, len(everyone), batch):
        names = everyone[i:i + batch]
        views = reader.scores(names)
        if since is not None:
            views = {c: v for c, v in views.items() if v.at >= since}
        later = [c for c, v in views.items() if v.at > as_of]
        ledgers = reader.ledgers(later) if later else {}
        last = reader.last_entries(list(views))
        for name in names:
            view = views.get(name)
            if view is None:
                continue
            window = ledgers.get(name, [])
            if window:
                score = value_at(view.total, view.at, [(e.time, e.value) for e in window],
                                 as_of, half_life)
                dims = {d: value_at(view.dims.get(d, 0.0), view.at,
                                    [(e.time, e.value) for e in window if e.dimension == d],
                                    as_of, half_life) for d in DIMENSIONS}
            else:
                f = factor(as_of - view.at, half_life)
                score = view.total * f
                dims = {d: view.dims.get(d, 0.0) * f for d in DIMENSIONS}
            row: dict[str, Any] = {
                "customer": name, "as_of": stamp, "score": round(score, 6),
                "band": band_of(score, edges),
                "updated_at": format_time(view.at) if view.at else None,
                "created": round(view.created, 6), "destroyed": round(view.destroyed, 6)}
            row.update({d: round(v, 6) for d, v in dims.items()})
            row["top_reasons"] = [{"rule": r, "value": round(v, 6)}
                                  for r, v in view.top_reasons(reasons)]
            entry = last.get(name)
            row["rules_version"] = entry.rules_version if entry is not None else ""
            yield row


ACCOUNT_FIELDS = ("account", "as_of", "customers", "score", "mean", "band", "worst_customer",
                  "worst_score")


def account_rows(rows: Iterable[dict[str, Any]], book: AccountBook, *,
                 edges: Edges = DEFAULT_BAND_EDGES, batch: int = 1000
                 ) -> Iterator[dict[str, Any]]:
    """Customer export rows rolled up by account (sorted by account; customers without one
    are left out): score = sum of the customers' scores at the rows' as_of."""
    groups: dict[str, dict[str, float]] = {}
    stamp = ""
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        owners = book.accounts([r["customer"] for r in chunk])
        for r in chunk:
            if (account := owners.get(r["customer"])) is not None:
                groups.setdefault(account, {})[r["customer"]] = r["score"]
        chunk.clear()

    for row in rows:
        stamp = row["as_of"]
        chunk.append(row)
        if len(chunk) >= batch:
            flush()
    flush()
    for account in sorted(groups):
        v = rollup(account, groups[account], edges)
        yield {"account": account, "as_of": stamp, "customers": v.customers,
               "score": round(v.score, 6), "mean": round(v.mean, 6), "band": v.band,
               "worst_customer": v.worst, "worst_score": v.worst_score}
