"""Kafka sink: verdicts, IP-list changes (compacted topic, tombstone after ``remove``) and dead letters.

``flush()`` waits for every delivery report and raises :class:`PublishError` if any message was not
acknowledged, so the caller never commits input offsets past an unpublished verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from abuse_stream.config import KafkaConfig
from abuse_stream.ingest.schema import Rejected
from abuse_stream.sinks.envelopes import dead_letter, dumps, ip_list_key

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    pass


def producer_config(cfg: KafkaConfig) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "enable.idempotence": True,
        "linger.ms": 20,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "message.timeout.ms": 120_000,
    }
    conf.update(cfg.producer)
    return conf


class KafkaSink:
    def __init__(self, cfg: KafkaConfig, producer: Producer | None = None) -> None:
        self.cfg = cfg
        self.producer = producer or Producer(producer_config(cfg), logger=log)
        self._failed: list[str] = []
        self.published = 0

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err}")

    def _produce(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._report)
                self.published += 1
                return
            except BufferError:  # local queue full: serve delivery reports, then try again
                self.producer.poll(0.1)

    def add_verdicts(self, verdicts: Sequence[Mapping[str, Any]]) -> None:
        for v in verdicts:
            self._produce(self.cfg.verdicts_topic, str(v["ip"]).encode(), dumps(v))
        self.producer.poll(0)

    def add_ip_changes(self, changes: Sequence[Mapping[str, Any]]) -> None:
        for c in changes:
            key = ip_list_key(dict(c))
            self._produce(self.cfg.ip_lists_topic, key, dumps(c))
            if c["op"] == "remove":
                self._produce(self.cfg.ip_lists_topic, key, None)  # tombstone: compaction drops the key
        self.producer.poll(0)

    def add_dead_letters(
        self, rejected: Sequence[Rejected], sources: Sequence[Mapping[str, Any]], at: str | None
    ) -> None:
        for r, src in zip(rejected, sources, strict=True):
            key = src.get("key")
            body = dead_letter(r, {k: v for k, v in src.items() if k != "key"}, at)
            self._produce(self.cfg.dlq_topic, key if isinstance(key, bytes) else None, dumps(body))
        self.producer.poll(0)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued and release the producer (before its broker goes away)."""
        try:
            self.flush(timeout)
        finally:
            del self.producer

    def flush(self, timeout: float = 60.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise PublishError(f"{remaining} messages still unacknowledged after {timeout}s")
        if self._failed:
            failed, self._failed = self._failed, []
            raise PublishError(f"{len(failed)} messages failed: {failed[:3]}")
