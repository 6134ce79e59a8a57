"""Kafka input: a consumer-group member that hands out batches and commits only what it is told to.

``enable.auto.commit`` is off: the service calls :meth:`KafkaSource.commit` with the batch's
messages after the batch's verdicts are published and stored. ``caught_up()`` reports whether every
assigned partition has been read to its end (used to advance event time on an idle stream and by
the demo to know when to stop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition

from abuse_stream.config import KafkaConfig

log = logging.getLogger(__name__)


def consumer_config(cfg: KafkaConfig) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "group.id": cfg.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": cfg.session_timeout_ms,
        # eager assignment: on (re)assignment the service sets each partition's start offset itself
        # (one window back, see service.Service._on_assign)
        "partition.assignment.strategy": "range",
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        # keep a whole batch or two prefetched, and when the local queue is full retry the fetch
        # soon: librdkafka's default backs off a full second, which stalled a consumer that drains
        # 100k-message batches (1M lines from Tansu: 4.4 s -> 1.5 s)
        "queued.min.messages": max(100_000, 2 * cfg.batch_size),
        "fetch.queue.backoff.ms": 20,
        # a fetch that finds nothing waits at most this long. Apache Kafka answers as soon as records
        # come; some compatible brokers (Tansu 0.6) wait out the whole time, 500 ms by default, which
        # adds up to that to the decision latency whenever a partition is read to its end
        "fetch.wait.max.ms": 100,
    }
    conf.update(cfg.consumer)
    return conf


def message_fields(msgs: Sequence[Message]) -> tuple[list[bytes], list[int], list[int]]:
    """Each message's value, partition and offset, read in one pass (a 100k batch: ~20 ms of Python,
    against ~80 ms when every consumer of the batch walked the messages again)."""
    values: list[bytes] = []
    partitions: list[int] = []
    offsets: list[int] = []
    for m in msgs:
        values.append(m.value() or b"")
        partitions.append(m.partition())
        offsets.append(m.offset())
    return values, partitions, offsets


def next_offsets(partitions: Sequence[int], offsets: Sequence[int]) -> dict[int, int]:
    """Per partition, the offset after the highest one given: what committing those messages stores."""
    if not partitions:
        return {}
    parts = np.asarray(partitions, dtype=np.int64)
    offs = np.asarray(offsets, dtype=np.int64)
    order = np.lexsort((offs, parts))  # by partition, then offset: the last of each run is its highest
    parts, offs = parts[order], offs[order]
    last = np.append(parts[1:] != parts[:-1], True)
    return dict(zip(parts[last].tolist(), (offs[last] + 1).tolist(), strict=True))


class KafkaSource:
    def __init__(
        self,
        cfg: KafkaConfig,
        consumer: Consumer | None = None,
        on_assign: Callable[[list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.consumer = consumer or Consumer(consumer_config(cfg), logger=log)
        self.assignment: set[tuple[str, int]] = set()
        self._seeked: set[int] = set()
        self.errors = 0
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self.consumer.subscribe(
            [cfg.input_topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    def set_assign_hook(self, hook: Callable[[list[TopicPartition]], None]) -> None:
        """``hook(parts)`` may set ``part.offset`` (where to start reading) before the assignment."""
        self._on_assign = hook

    def set_revoke_hook(self, hook: Callable[[list[TopicPartition]], None]) -> None:
        """``hook(parts)`` is called after the partitions were taken away (rebalance, lost session)."""
        self._on_revoke = hook

    def _assigned(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        if self._on_assign:
            self._on_assign(parts)
        self._seeked = {p.partition for p in parts if p.offset >= 0}  # explicit start offsets
        consumer.assign(parts)  # with the offsets the hook chose (eager protocol)
        self.assignment = {(p.topic, p.partition) for p in parts}
        log.info("assigned partitions %s", sorted(p.partition for p in parts))

    def _revoked(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.assignment -= {(p.topic, p.partition) for p in parts}
        consumer.unassign()
        log.info("revoked partitions %s", sorted(p.partition for p in parts))
        if self._on_revoke:
            self._on_revoke(parts)

    def poll_batch(self, timeout: float | None = None) -> list[Message]:
        """Up to ``batch_size`` messages; transport errors are logged.

        What has arrived already is returned at once: a live stream's batch is what came in while the
        previous one was processed, not held back to fill up (decision latency). Only when nothing is
        there does it wait, at most ``timeout`` (default ``batch_timeout_s``), for the first message,
        and returns it with whatever came along.
        """
        wait = self.cfg.batch_timeout_s if timeout is None else timeout
        size = self.cfg.batch_size
        msgs = self.consumer.consume(num_messages=size, timeout=0)
        if not msgs and wait > 0:
            # consume(n, t) returns when n messages are there or t has passed: asked for a whole batch
            # it would sit out the timeout on a live stream (~0.3 s added to every verdict). So wait
            # for the first message only, then take what came with it.
            msgs = self.consumer.consume(num_messages=1, timeout=wait)
            if msgs and size > 1:
                msgs += self.consumer.consume(num_messages=size - 1, timeout=0)
        good = []
        for m in msgs:
            err = m.error()
            if err is None:
                good.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                continue
            elif err.fatal():
                raise KafkaException(err)
            else:
                self.errors += 1
                log.warning("consumer error: %s", err)
        return good

    def commit(self, msgs: Sequence[Message], upto: Mapping[int, int]) -> None:
        """Synchronously commit a batch: ``upto`` holds, per partition of the input topic, the offset
        after the last of its ``msgs`` (:func:`next_offsets`, worked out when the batch was read,
        so that the messages are not walked again here). Nothing is committed for no messages."""
        if not msgs:
            return
        offsets = [TopicPartition(self.cfg.input_topic, p, o) for p, o in upto.items()]
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def lag(self) -> int | None:
        """Messages not yet read on the assigned partitions (None before the first assignment)."""
        if not self.assignment:
            return None
        return sum(self.partition_lags().values())

    def partition_lags(self) -> dict[int, int]:
        """Unread messages per assigned partition (positions and watermarks are mostly local state).

        A partition this member seeked back in (restart) and has not fetched yet counts as unread
        (lag >= 1) unless empty: its committed offset says nothing about where the member reads from,
        and some Kafka-compatible brokers (Tansu 0.6) under-report the high watermark until fetched.
        """
        parts = [TopicPartition(t, p) for t, p in sorted(self.assignment)]
        lags: dict[int, int] = {}
        for tp in self.consumer.position(parts) if parts else []:
            # the watermark cached from fetches is exact; ask the broker only before the first fetch
            low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            fetched = high >= 0
            if not fetched:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=5.0, cached=False)
            if fetched and tp.offset != OFFSET_INVALID:
                lags[tp.partition] = max(0, high - tp.offset)
            elif tp.partition in self._seeked:  # seeked back, nothing fetched yet: unread unless empty
                lags[tp.partition] = 0 if high <= low else max(1, high - max(tp.offset, low))
            else:  # starts at the group's committed offset
                committed = self.consumer.committed([TopicPartition(tp.topic, tp.partition)], timeout=5.0)[
                    0
                ].offset
                lags[tp.partition] = max(0, high - (committed if committed >= 0 else low))
        return lags

    def broker_reachable(self, timeout: float = 2.0) -> bool:
        """Whether the cluster answers a metadata request now (False during a broker outage)."""
        try:
            self.consumer.list_topics(self.cfg.input_topic, timeout=timeout)
        except KafkaException:
            return False
        return True

    def caught_up(self) -> bool:
        """Every assigned partition read to its end. Never true while the broker is unreachable: the
        positions and watermarks cached locally cannot tell an outage from an idle stream, and event
        time must not move on over records that are only delayed."""
        if not self.broker_reachable():
            return False
        lag = self.lag()
        return lag == 0

    def close(self) -> None:
        self.consumer.close()
