"""What each API resource answers, built from the read side (handlers stay one-liners)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from valeur_monitor.api import schemas as S
from valeur_monitor.engine.durations import parse_duration
from valeur_monitor.engine.event import format_time, parse_time
from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.errors import ApiError
from valeur_monitor.metrics import band_of
from valeur_monitor.read.accounts import AccountBook, rollup
from valeur_monitor.read.base import Reader
from valeur_monitor.read.rankings import Ranking, at_risk, losing
from valeur_monitor.read.timeline import Bar, promise_bars, score_points
from valeur_monitor.read.views import (
    CustomerView,
    LedgerQuery,
    customer_view,
    decayed,
    ledger_page,
    series,
)
from valeur_monitor.settings import ApiSettings


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Context:
    """What every request reads: the reader, the loaded rules, the settings and the clock."""

    reader: Reader
    rules: RuleSet
    settings: ApiSettings = field(default_factory=ApiSettings)
    clock: Callable[[], int] = wall_ms
    book: AccountBook | None = None         # customer -> account (None: no roll-up)

    @property
    def half_life(self) -> int | None:
        return self.rules.settings.half_life


def instant(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return parse_time(value)
    except (ValueError, OverflowError):
        raise ApiError(400, "Bad Request", f"{name}: expected an RFC 3339 time with an offset, "
                       "e.g. 2026-11-29T08:00:00Z") from None


def duration(value: str, name: str, limit: str) -> int:
    try:
        ms = parse_duration(value)
    except ValueError as exc:
        raise ApiError(400, "Bad Request", f"{name}: {exc}") from None
    if ms <= 0 or ms > parse_duration(limit):
        raise ApiError(400, "Bad Request", f"{name}: must be positive and at most {limit}")
    return ms


def view_of(ctx: Context, customer: str, as_of: int) -> CustomerView:
    snap = ctx.reader.snapshot(customer)
    if snap is None:
        raise ApiError(404, "Not Found", "no such customer")
    return customer_view(snap.score, snap.ledger, snap.promises, as_of=as_of,
                         half_life=ctx.half_life, edges=ctx.settings.band_edges)


def customer(ctx: Context, name: str, as_of: str | None) -> S.Customer:
    v = view_of(ctx, name, instant(as_of, "as_of", ctx.clock()))
    return S.Customer(
        customer=v.customer, as_of=format_time(v.as_of), score=v.score, previous_score=v.previous,
        change=v.change, band=v.band, dimensions=v.dims, created=v.created,
        destroyed=v.destroyed,
        updated_at=format_time(v.updated_at) if v.updated_at else None,
        top_reasons=[S.Reason(rule=r, value=x) for r, x in v.reasons],
        open_promises=[S.OpenPromise(rule=p.rule, ref=p.ref, opened_at=format_time(p.opened_at),
                                     deadline=format_time(p.deadline), paused=p.paused,
                                     team=p.team, channel=p.channel) for p in v.promises],
        rules_version=v.rules_version,
        account=ctx.book.accounts([v.customer]).get(v.customer) if ctx.book else None,
        ledger_entries=v.entries)


def ledger_item(e: LedgerEntry) -> S.LedgerItem:
    return S.LedgerItem(seq=e.seq, time=format_time(e.time), rule=e.rule, outcome=e.outcome,
                        dimension=e.dimension, amount=e.amount, value=e.value,
                        events=list(e.events), explain=e.explain, ref=e.ref, team=e.team,
                        channel=e.channel, late=e.late,
                        rules_version=e.rules_version or None)


def ledger(ctx: Context, name: str, *, rules: list[str], outcomes: list[str],
           since: str | None, until: str | None, cursor: str | None, limit: int) -> S.LedgerPage:
    before = None
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 18:
            raise ApiError(400, "Bad Request", "cursor: not a cursor this API returned")
        before = int(cursor)
    query = LedgerQuery(frozenset(rules), frozenset(outcomes),
                        instant(since, "since", 0) if since else None,
                        instant(until, "until", 0) if until else None, before, limit)
    if ctx.reader.score(name) is None:
        raise ApiError(404, "Not Found", "no such customer")
    page, after = ledger_page(ctx.reader.ledger(name), query)
    return S.LedgerPage(customer=name, entries=[ledger_item(e) for e in page],
                        next_cursor=str(after) if after is not None else None)


def _ranked(ctx: Context, ranking: Ranking, as_of: int, window: str | None,
            losing_list: bool) -> S.RankedList:
    edges = ctx.settings.band_edges
    return S.RankedList(
        as_of=format_time(as_of), window=window, complete=ranking.complete,
        scanned=ranking.scanned,
        items=[S.RankedCustomer(customer=r.customer, score=r.score, band=band_of(r.score, edges),
                                lost=r.lost if losing_list else None,
                                net=r.net if losing_list else None) for r in ranking.items])


def at_risk_list(ctx: Context, *, limit: int, as_of: str | None, team: str | None,
                 channel: str | None) -> S.RankedList:
    at = instant(as_of, "as_of", ctx.clock())
    ranking = at_risk(ctx.reader, limit, as_of=at, half_life=ctx.half_life, team=team,
                      channel=channel)
    return _ranked(ctx, ranking, at, None, False)


def losing_list(ctx: Context, *, limit: int, window: str, as_of: str | None, team: str | None,
                channel: str | None) -> S.RankedList:
    at = instant(as_of, "as_of", ctx.clock())
    span = duration(window, "window", ctx.settings.max_window)
    ranking = losing(ctx.reader, limit, as_of=at, window=span, team=team, channel=channel,
                     pool=ctx.settings.losing_pool, half_life=ctx.half_life)
    return _ranked(ctx, ranking, at, window, True)


def account(ctx: Context, name: str, as_of: str | None, limit: int) -> S.Account:
    at = instant(as_of, "as_of", ctx.clock())
    members = ctx.book.members(name, limit) if ctx.book is not None else []
    if not members:
        raise ApiError(404, "Not Found", "no such account")
    views = ctx.reader.scores(members)
    later = [c for c, v in views.items() if v.at > at]
    ledgers = ctx.reader.ledgers(later) if later else {}
    scores = {c: decayed(v, at, ctx.half_life, ledgers.get(c, ())) for c, v in views.items()}
    view = rollup(name, scores, ctx.settings.band_edges)
    edges = ctx.settings.band_edges
    return S.Account(account=name, as_of=format_time(at), score=view.score, mean=view.mean,
                     band=view.band, customers=view.customers,
                     members=[S.RankedCustomer(customer=c, score=x, band=band_of(x, edges))
                              for c, x in sorted(scores.items(), key=lambda kv: kv[1])])


def _ms_text(ms: int | None) -> str | None:
    if not ms:
        return None
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def rules_info(ctx: Context) -> S.Rules:
    rs = ctx.rules
    items = ([S.RuleInfo(id=r.id, kind="on", title=r.title) for r in rs.on_rules]
             + [S.RuleInfo(id=r.id, kind="expect", title=r.title) for r in rs.expect_rules]
             + [S.RuleInfo(id=r.id, kind="repeat", title=r.title) for r in rs.repeat_rules])
    alerts = [S.AlertInfo(id=a.id, title=a.title, score_below=a.score_below, outcome=a.outcome,
                          count=a.count or None, within=_ms_text(a.within)) for a in rs.alerts]
    return S.Rules(version=rs.version or None, sources=list(rs.sources),
                   half_life=_ms_text(rs.settings.half_life), rules=items, alerts=alerts)


@dataclass(frozen=True)
class Story:
    """Everything the timeline page shows for one customer at `as_of`."""

    view: CustomerView
    entries: list[LedgerEntry]          # newest first
    points: list[tuple[int, float]]
    bars: list[Bar]


def story(ctx: Context, name: str, as_of: str | None) -> Story:
    at = instant(as_of, "as_of", ctx.clock())
    snap = ctx.reader.snapshot(name)
    if snap is None:
        raise ApiError(404, "Not Found", "no such customer")
    v = customer_view(snap.score, snap.ledger, snap.promises, as_of=at, half_life=ctx.half_life,
                      edges=ctx.settings.band_edges)
    kept = [e for e in snap.ledger if e.time <= at]
    # The series is rebuilt from the whole window (so that later entries are taken out of the
    # score, not folded into its base), then cut at as_of.
    history = [p for p in series(snap.score, snap.ledger, ctx.half_life) if p[0] <= at]
    points = score_points(history, at, v.score, ctx.half_life)
    return Story(v, sorted(kept, key=lambda e: -e.seq), points, promise_bars(kept, v.promises))
