"""Kafka topic administration: idempotent topic creation and waiting for a broker.

Works against Apache Kafka and against the embedded Tansu broker (:mod:`abuse_stream.broker`).  Tansu notes:

* Tansu auto-creates a topic (default partitions, no config) when a producer writes to it or when a client
  asks for that topic's metadata by name, so call :func:`ensure_topics` *before* anything touches a topic.
  :func:`wait_for_broker` only asks for the full topic list, which creates nothing.
* Tansu accepts and stores any topic config (``cleanup.policy=compact`` included, and even invalid values)
  but its memory storage never compacts; tombstones (``value=None``) are delivered to consumers as
  records with a ``None`` value.
* Tansu does not support CreatePartitions, so an existing topic's partition count cannot be raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

__all__ = ["TopicSpec", "TopicSpecMismatch", "ensure_topics", "wait_for_broker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """How a topic should look: partition count and topic configs (e.g. ``{"cleanup.policy": "compact"}``)."""

    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = 1

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {self.partitions}")
        if self.replication_factor < 1:
            raise ValueError(f"replication_factor must be >= 1, got {self.replication_factor}")
        # frozen means frozen: copy the caller's mapping into a read-only one of str -> str
        object.__setattr__(self, "config", MappingProxyType({str(k): str(v) for k, v in self.config.items()}))

    def __hash__(self) -> int:
        return hash((self.partitions, tuple(sorted(self.config.items())), self.replication_factor))


class TopicSpecMismatch(RuntimeError):
    """An existing topic has fewer partitions than its :class:`TopicSpec` asks for."""


def _admin(bootstrap: str, extra: Mapping[str, Any] | None = None) -> AdminClient:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        # librdkafka logs every refused connection to stderr by default; route it through logging.
        "logger": logging.getLogger("abuse_stream.kafka_admin.librdkafka"),
        "reconnect.backoff.max.ms": 500,
    }
    conf.update(extra or {})
    return AdminClient(conf)


def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> None:
    """Block until the cluster at ``bootstrap`` answers a metadata request with at least one broker.

    Raises :class:`TimeoutError` naming the bootstrap servers and the last error.
    """
    admin = _admin(bootstrap)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"Kafka at {bootstrap} did not answer a metadata request within {timeout:g}s "
                f"(last error: {last!r})"
            )
        try:
            md = admin.list_topics(timeout=max(0.1, min(remaining, 2.0)))
        except KafkaException as exc:
            last = exc
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            continue
        if md.brokers:
            return
        last = RuntimeError("metadata lists no brokers")


def ensure_topics(bootstrap: str, specs: Mapping[str, TopicSpec], timeout: float = 30) -> None:
    """Create the topics in ``specs`` that do not exist yet; existing topics are left as they are.

    Idempotent.  An existing topic is accepted when it has at least the requested number of partitions
    (its configs are not changed); with fewer, :class:`TopicSpecMismatch` is raised, since a topic's
    partition count decides which consumer sees which key.  Returns once every topic shows up in the
    cluster metadata with all its partitions.  Raises :class:`TimeoutError` if the broker does not answer
    in ``timeout`` seconds and :class:`confluent_kafka.KafkaException` for other creation errors.
    """
    if not specs:
        return
    deadline = time.monotonic() + timeout
    wait_for_broker(bootstrap, timeout)
    admin = _admin(bootstrap)

    def remaining() -> float:
        return max(0.1, deadline - time.monotonic())

    existing = admin.list_topics(timeout=remaining()).topics
    new = [
        NewTopic(
            name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config=dict(spec.config),
        )
        for name, spec in specs.items()
        if name not in existing
    ]
    if new:
        futures = admin.create_topics(new, operation_timeout=remaining(), request_timeout=remaining())
        for name, fut in futures.items():
            try:
                fut.result(timeout=remaining())
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    log.debug("topic %s was created concurrently", name)
                    continue
                raise
            log.info(
                "created topic %s (%d partitions, config %s)",
                name,
                specs[name].partitions,
                dict(specs[name].config),
            )

    # Wait until metadata shows every topic with its partitions, and check the pre-existing ones.
    while True:
        topics = admin.list_topics(timeout=remaining()).topics
        missing = []
        for name, spec in specs.items():
            md = topics.get(name)
            if md is None or md.error is not None or not md.partitions:
                missing.append(name)
            elif len(md.partitions) < spec.partitions:
                raise TopicSpecMismatch(
                    f"topic {name!r} exists with {len(md.partitions)} partitions but {spec.partitions} are "
                    "required; delete and recreate it (it may have been auto-created by a producer "
                    "before ensure_topics ran)"
                )
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"topics {missing} did not appear in the metadata of {bootstrap} within {timeout:g}s"
            )
        time.sleep(0.05)
