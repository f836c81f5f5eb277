"""The embedded runner's doors: a notices file, the webhook outbox, and `--serve` at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.read.accounts import AccountBook, MemoryAccounts, RedisAccounts, account_hook
from valeur_monitor.runner.embedded import BatchHook, RunReport
from valeur_monitor.settings import Settings
from valeur_monitor.store.base import Store


@dataclass
class Doors:
    hooks: list[BatchHook] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    book: AccountBook | None = None

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()


def open_doors(settings: Settings, *, notices: str | None, outbox: str | None,
               store: str = "memory", serve: bool = False) -> Doors:
    doors = Doors()
    # Accounts named by events (`data.account`) are recorded beside a Redis store, or kept in
    # memory for `--serve` (a memory run that serves nothing needs no roll-up).
    if store.startswith(("redis://", "rediss://", "unix://")):
        from valeur_monitor.store.connect import parse_url

        client = parse_url(store, settings.redis_options()).client()
        doors.book = RedisAccounts(client, settings.api.redis_prefix)
        doors.closers.append(client.close)
    elif serve:
        doors.book = MemoryAccounts()
    if doors.book is not None:
        doors.hooks.append(account_hook(doors.book))
    if notices:
        from valeur_monitor.sinks.notices import NoticeWriter

        writer = NoticeWriter(notices)
        doors.hooks.append(writer)
        doors.closers.append(writer.close)
    if outbox:
        from valeur_monitor.webhooks.changes import ScoreChanges
        from valeur_monitor.webhooks.feed import BatchFeeder
        from valeur_monitor.webhooks.outbox import Outbox

        wh = settings.webhooks
        box = Outbox.from_url(outbox, settings.redis_options(), prefix=wh.redis_prefix,
                              maxlen=wh.outbox_maxlen)
        feeder = BatchFeeder(box, ScoreChanges(box, delta=wh.score_delta,
                                               debounce_s=wh.debounce_s))
        doors.hooks.append(feeder)
        doors.closers += (feeder.close, box.close)
    return doors


def serve_after(settings: Settings, port: int | None, before: Callable[[RunReport], None],
                book: AccountBook | None = None) -> Callable[[Store, RuleSet, RunReport], None]:
    """A `then` for run_files: report first, then serve the final state until interrupted.

    Scores are decayed to the run's stream time unless a request gives `as_of`.
    """

    def then(store: Store, rules: RuleSet, report: RunReport) -> None:
        from valeur_monitor.api.resources import Context
        from valeur_monitor.api.server import serve
        from valeur_monitor.read.factory import reader_of

        before(report)
        reader = reader_of(store)
        # The run's "now" is its stream time: a replay of last month is shown as of its end.
        stream_time = reader.watermark()
        serve(Context(reader, rules, settings.api, clock=lambda: stream_time, book=book),
              port=port)

    return then
