"""faust's Kafka consumer with a batch hot loop (group membership and commits stay faust's).

faust delivers every record on its own: an Event, a queue put, a task pair per record (its
fetcher awaits ``wait_first`` per message), an ack per record; that alone caps a worker near
12.5k records/s here. `BatchConsumer` keeps everything else of faust's aiokafka consumer (group
membership, rebalance callbacks, flow control, seeks, offset bookkeeping and the periodic
commit) and replaces only the drain loop: each `getmany()` result is handed whole to the
worker runtime, which acks it in one step once its Redis commit is done (`ack_batch`: the
offsets become committable; faust commits them every `broker_commit_interval`).

On a rebalance faust waits for "every message that started processing" before giving up
partitions (`wait_empty`); here that is the runtime's batch in progress (`idle`).

Top-up fetch: aiokafka sends no fetch request to a broker while records it fetched from that
broker are still buffered, and one request at a time. So the records `getmany()` returns after
a busy batch are those fetched just after the previous one was taken; whatever arrived while
the batch was processed is still on the broker, and would wait for one more batch (measured:
the larger part of produce -> score latency at a few thousand records/s). When the buffer
holds records and the last batch kept the worker busy, the consumer asks once more, briefly
(the broker answers at once when it has records), and processes both as one batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka

from valeur_monitor.streaming.outputs import Record
from valeur_monitor.streaming.reader import LoopReader
from valeur_monitor.streaming.stages import Stages

Ack = Callable[[], None]
TOP_UP_AFTER = 0.002    # s busy since the last fetch: records buffered then are that stale
TOP_UP_WAIT = 0.005     # s at most a top-up fetch waits (no longer than the worker was busy)


class BatchSink(Protocol):
    """What the consumer hands batches to (the worker runtime)."""

    async def consume(self, records: Sequence[Record], ack: Ack) -> None:
        """Process `records`; call `ack` once their effects are committed."""
        ...

    async def idle(self) -> None:
        """Return once no batch is being processed or committed."""
        ...


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer; `_drain_messages` delivers whole fetches to a `BatchSink`."""

    sink: BatchSink | None = None    # set by the app before the worker starts
    # Fetch on the worker's loop (streaming/reader.py) instead of through faust's consumer
    # thread; faust's consumer keeps the group, the rebalances and the commits
    fetch_on_loop: bool = False
    _reader: LoopReader | None = None

    @property
    def reader(self) -> LoopReader | None:
        if self.fetch_on_loop and self._reader is None:
            self._reader = LoopReader(lambda: _reader_consumer(self))
        return self._reader

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        """Records of the active partitions: from the reader on this loop when there is one
        (as faust's consumer thread answers: nothing while the flow is stopped)."""
        reader = self.reader
        if reader is None:
            return await super()._getmany(active_partitions, timeout)
        if not self.flow_active:
            return {}
        group = self._thread._ensure_consumer()
        if not {(tp.topic, tp.partition) for tp in active_partitions or ()} <= reader.placed:
            await self._place_reader()
        return await reader.getmany(active_partitions or (), timeout, self._max_records(),
                                    group._subscription)

    async def seek_to_committed(self) -> Any:
        """faust placed the group consumer at the committed offsets: the reader follows."""
        committed = await super().seek_to_committed()
        if self.reader is not None:
            await self._place_reader()
        return committed

    async def _seek(self, partition: Any, offset: int) -> None:
        await super()._seek(partition, offset)
        if self.reader is not None:
            self.reader.seek(partition, offset)

    async def _place_reader(self) -> None:
        """The reader reads the group's assignment from the group consumer's positions."""
        reader = self.reader
        assert reader is not None
        positions: dict[Any, int | None] = {}
        for tp in self.assignment():
            try:
                positions[tp] = await self._thread.position(tp)
            except IllegalStateError:   # revoked meanwhile (a rebalance is starting)
                continue
        await reader.place(positions)

    def highwater(self, tp: Any) -> int:
        state = self.reader.state(tp) if self.reader is not None else None
        if state is None:
            return int(super().highwater(tp))
        return int(state.highwater) if state.highwater is not None else -1

    def partition_state(self, tp: Any) -> Any:
        """aiokafka's state of a partition of the consumer that fetches it (highwater and
        position: the lag), or None."""
        if self.reader is not None:
            return self.reader.state(tp)
        subscription = self._thread._ensure_consumer()._fetcher._subscriptions.subscription
        return None if subscription is None else subscription.assignment.state_value(tp)

    async def on_stop(self) -> None:
        await super().on_stop()
        if self._reader is not None:
            await self._reader.stop()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs Kafka
        sink = self.sink
        if sink is None:
            raise RuntimeError("BatchConsumer.sink is not set")
        # the runtime's stage log when benchmarks ask for it (streaming/stages.py)
        stages: Stages | None = getattr(sink, "stages", None)
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        fetched = time.monotonic()
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                busy = time.monotonic() - fetched
                stale = busy > TOP_UP_AFTER and self._buffered()
                records, active = await self._wait_next_records(1.0)
                got = time.time()
                generation: int = self.app.consumer_generation_id
                if (records and stale and self.flow_active
                        and _count(records) < self._max_records()):
                    more, _ = await self._wait_next_records(min(busy, TOP_UP_WAIT))
                    records = _joined(records, more)
                fetched = time.monotonic()
                await asyncio.sleep(0)
                if not records or self.should_stop:
                    continue
                # Rebalancing, or a rebalance happened during the top-up (a fetch waits for
                # the flow to resume): the first fetch's records may belong to partitions this
                # worker no longer owns. Read again from the committed offsets.
                if self._rebalanced(generation):
                    await self.perform_seek()
                    continue
                batch = await self._batch(records, active)
                if self._rebalanced(generation):
                    await self.perform_seek()
                    continue
                if batch:
                    if stages is not None:
                        stages.open(_oldest(records), got)
                    try:
                        await sink.consume(batch, self._acker(batch, generation))
                    except Exception as exc:    # permanent (auth, OOM, data lost) or a bug:
                        from valeur_monitor.streaming.app import fatal  # fail-stop, unacked,

                        fatal(exc)                  # one line for a ValeurError
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    def _rebalanced(self, generation: int) -> bool:
        return not self.flow_active or self.app.consumer_generation_id != generation

    def _buffered(self) -> bool:
        """Whether aiokafka holds fetched records not yet returned (then no fetch is pending
        for their broker: what arrived since is still there). True when it cannot tell."""
        if self.reader is not None:
            return self.reader.buffered()
        with suppress(Exception):   # consumer thread not started, or stopping
            return bool(self._thread._ensure_consumer()._fetcher._records)
        return True

    def _max_records(self) -> int:
        return int(self.app.conf.broker_max_poll_records or 0) or 1 << 30

    def _acker(self, batch: list[Record], generation: int) -> Ack:
        """Acks under the generation the records were fetched in (stale after a rebalance)."""

        def ack() -> None:
            self.ack_batch(batch, generation)

        return ack

    async def _batch(self, records: Any, active: Any) -> list[Record]:
        """The fetched records still to process, in partition order (gaps noted for commits)."""
        batch: list[Record] = []
        read_offset = self._read_offset
        monitor = self.app.monitor
        for tp, rows in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            if monitor is not None:
                monitor.track_tp_end_offset(tp, self.highwater(tp))
            last = read_offset[tp]
            for row in rows:
                offset = row.offset
                if last is not None and offset < last:
                    continue                    # already read (a seek went back)
                if last and offset - last > 1:  # compaction or transaction markers: no record
                    await self._add_gap(tp, last + 1, offset)
                batch.append(Record(tp.partition, offset, row.key, row.value,
                                    tuple(row.headers or ())))
                last = offset
            read_offset[tp] = last
        return batch

    def ack_batch(self, batch: Sequence[Record], generation: int) -> None:
        """Mark the batch's offsets done (committable), unless a rebalance came in between."""
        if self.app.consumer_generation_id != generation:
            return      # the partitions may be someone else's now: let Kafka redeliver
        topic = self._topic_of
        by_tp: dict[Any, list[int]] = {}
        for record in batch:
            by_tp.setdefault(record.partition, []).append(record.offset)
        now = time.monotonic()
        monitor = self.app.monitor
        for partition, offsets in by_tp.items():
            tp = self._new_topicpartition(topic, partition)
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            new = [o for o in offsets
                   if (committed is None or o >= committed) and o not in index]
            index.update(new)
            self._acked[tp].extend(new)
            self._n_acked += len(new)
            if monitor is not None:
                monitor.stream_inbound_time[tp] = now

    _topic_of: str = ""     # the events topic (set by the app)

    async def wait_empty(self) -> None:
        """Before partitions are given up: the batch in progress finishes and is committed."""
        if self.sink is not None:
            await self.sink.idle()
        await self.commit_and_end_transactions()


def _oldest(records: Mapping[Any, Sequence[Any]]) -> int:
    """The earliest timestamp (ms) of fetched records (each partition's rows in order)."""
    return min((rows[0].timestamp for rows in records.values() if rows), default=0)


def _count(records: Mapping[Any, Sequence[Any]]) -> int:
    return sum(len(rows) for rows in records.values())


def _joined(first: Mapping[Any, Sequence[Any]] | None,
            more: Mapping[Any, Sequence[Any]] | None) -> dict[Any, list[Any]]:
    """Two fetches' records as one: each partition's rows in offset order."""
    out: dict[Any, list[Any]] = {tp: list(rows) for tp, rows in (first or {}).items()}
    for tp, rows in (more or {}).items():
        out.setdefault(tp, []).extend(rows)
    return out


class BatchTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose consumer is a `BatchConsumer`."""

    Consumer = BatchConsumer


def _reader_consumer(consumer: BatchConsumer) -> AIOKafkaConsumer:
    """The reader's aiokafka consumer: faust's connection, security and fetch settings (those
    of its group consumer), no group."""
    conf = consumer.app.conf
    transport: Any = consumer.transport
    return AIOKafkaConsumer(
        client_id=conf.broker_client_id, group_id=None, enable_auto_commit=False,
        bootstrap_servers=faust_aiokafka.server_list(transport.url, transport.default_port),
        auto_offset_reset=conf.consumer_auto_offset_reset,
        max_poll_records=conf.broker_max_poll_records,
        max_partition_fetch_bytes=conf.consumer_max_fetch_size, fetch_max_wait_ms=1500,
        request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
        check_crcs=conf.broker_check_crcs,
        metadata_max_age_ms=conf.consumer_metadata_max_age_ms,
        connections_max_idle_ms=conf.consumer_connections_max_idle_ms,
        **faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials,
                                                      conf.ssl_context))


def install(app: Any, topic: str, sink: BatchSink, *, fetch_on_loop: bool = False) -> None:
    """Make `app` consume `topic` in batches into `sink` (call before the worker starts)."""
    consumer_cls = type("ValeurConsumer", (BatchConsumer,),
                        {"sink": sink, "_topic_of": topic, "fetch_on_loop": fetch_on_loop})
    transport_cls = type("ValeurTransport", (BatchTransport,), {"Consumer": consumer_cls})
    app.transport = transport_cls(app.conf.broker_consumer, app)


