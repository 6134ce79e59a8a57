"""KafkaSource.poll_batch against a fake consumer that keeps librdkafka's ``consume(n, timeout)``
contract (it returns once n messages are there, or when the timeout has passed): what has arrived is
taken at once, and an empty queue waits (up to batch_timeout_s) only for the first message, so a live
batch is never held back to fill up."""

from __future__ import annotations

from confluent_kafka import Message

from abuse_stream.config import KafkaConfig
from abuse_stream.ingest.kafka import KafkaSource, message_fields, next_offsets


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


class _Committing(_Consumer):
    def __init__(self) -> None:
        super().__init__([])
        self.committed: list[list[tuple[str, int, int]]] = []

    def commit(self, offsets, asynchronous: bool) -> None:
        assert asynchronous is False
        self.committed.append(sorted((tp.topic, tp.partition, tp.offset) for tp in offsets))


def test_message_fields_and_next_offsets():
    msgs = [
        Message(topic="logs", partition=p, offset=o, value=v)
        for p, o, v in [(2, 40, b"a"), (0, 7, None), (2, 41, b"c"), (1, 3, b"d"), (0, 5, b"e")]
    ]
    values, partitions, offsets = message_fields(msgs)
    assert values == [b"a", b"", b"c", b"d", b"e"]  # a null value is an empty line (rejected as blank)
    assert (partitions, offsets) == ([2, 0, 2, 1, 0], [40, 7, 41, 3, 5])
    # the highest offset of each partition, whatever the order the messages came in, plus one
    assert next_offsets(partitions, offsets) == {0: 8, 1: 4, 2: 42}
    assert next_offsets([], []) == {}


def test_a_commit_stores_the_offset_after_each_partitions_last_message():
    msgs = [Message(topic=CFG.input_topic, partition=p, offset=o) for p, o in [(1, 9), (0, 4), (1, 10)]]
    consumer = _Committing()
    source = KafkaSource(CFG, consumer=consumer)
    source.commit(msgs, next_offsets(*message_fields(msgs)[1:]))
    source.commit([], {0: 99})  # nothing consumed: nothing committed
    assert consumer.committed == [[(CFG.input_topic, 0, 5), (CFG.input_topic, 1, 11)]]
