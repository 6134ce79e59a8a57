"""KafkaSource.poll_batch against a fake consumer that keeps librdkafka's ``consume(n, timeout)``
contract (it returns once n messages are there, or when the timeout has passed): what has arrived is
taken at once, and an empty queue waits (up to batch_timeout_s) only for the first message, so a live
batch is never held back to fill up."""

from __future__ import annotations

from abuse_stream.config import KafkaConfig
from abuse_stream.ingest.kafka import KafkaSource


class _Msg:
    def __init__(self, at: float) -> None:
        self.at = at

    def error(self) -> None:
        return None


class _Consumer:
    """Messages arrive at the given (fake) times; ``consume`` advances the fake clock as the real one
    would block."""

    def __init__(self, arrivals: list[float]) -> None:
        self.queue = sorted(arrivals)
        self.now = 0.0
        self.calls: list[tuple[int, float]] = []

    def subscribe(self, topics, **_hooks) -> None: ...

    def consume(self, num_messages: int, timeout: float) -> list[_Msg]:
        self.calls.append((num_messages, timeout))
        deadline = self.now + timeout
        if len(self.queue) >= num_messages and self.queue[num_messages - 1] <= deadline:
            self.now = max(self.now, self.queue[num_messages - 1])  # the n-th message is there by then
        else:
            self.now = deadline
        got = [t for t in self.queue[:num_messages] if t <= self.now]
        self.queue = self.queue[len(got) :]
        return [_Msg(t) for t in got]


CFG = KafkaConfig(batch_size=500, batch_timeout_s=0.7)


def test_what_has_arrived_is_taken_without_waiting():
    consumer = _Consumer([0.0] * 120 + [0.3] * 50)
    assert len(KafkaSource(CFG, consumer=consumer).poll_batch()) == 120
    assert consumer.calls == [(500, 0)]
    assert consumer.now == 0.0


def test_an_empty_queue_waits_for_the_first_message_only():
    # a live stream: 40 messages come in at 50 ms, more later; the batch is those 40, at 50 ms, not
    # what a full batch's wait would bring at the 0.7 s timeout
    consumer = _Consumer([0.05] * 40 + [0.3 + i / 1000 for i in range(100)])
    got = KafkaSource(CFG, consumer=consumer).poll_batch()
    assert len(got) == 40
    assert consumer.now == 0.05


def test_an_empty_queue_waits_up_to_the_batch_timeout():
    consumer = _Consumer([5.0])
    assert KafkaSource(CFG, consumer=consumer).poll_batch() == []
    assert consumer.now == 0.7


def test_with_a_batch_in_flight_an_empty_queue_does_not_wait():
    consumer = _Consumer([0.1])
    assert KafkaSource(CFG, consumer=consumer).poll_batch(0.0) == []
    assert consumer.calls == [(500, 0)]
    assert consumer.now == 0.0
