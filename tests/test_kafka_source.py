"""KafkaSource.poll_batch against a fake consumer: what has arrived is taken at once, and only an
empty queue makes it wait (up to batch_timeout_s), so a live batch is not held back to fill up."""

from __future__ import annotations

from abuse_stream.config import KafkaConfig
from abuse_stream.ingest.kafka import KafkaSource


class _Msg:
    def error(self) -> None:
        return None


class _Consumer:
    def __init__(self, answers: list[int]) -> None:
        self.answers, self.calls = answers, []

    def subscribe(self, topics, **_hooks) -> None: ...

    def consume(self, num_messages: int, timeout: float) -> list[_Msg]:
        self.calls.append((num_messages, timeout))
        return [_Msg() for _ in range(self.answers.pop(0) if self.answers else 0)]


CFG = KafkaConfig(batch_size=500, batch_timeout_s=0.7)


def test_what_has_arrived_is_taken_without_waiting():
    consumer = _Consumer([120])
    assert len(KafkaSource(CFG, consumer=consumer).poll_batch()) == 120
    assert consumer.calls == [(500, 0)]


def test_an_empty_queue_waits_up_to_the_batch_timeout():
    consumer = _Consumer([0, 40])
    assert len(KafkaSource(CFG, consumer=consumer).poll_batch()) == 40
    assert consumer.calls == [(500, 0), (500, 0.7)]


def test_with_a_batch_in_flight_an_empty_queue_does_not_wait():
    consumer = _Consumer([0])
    assert KafkaSource(CFG, consumer=consumer).poll_batch(0.0) == []
    assert consumer.calls == [(500, 0)]
