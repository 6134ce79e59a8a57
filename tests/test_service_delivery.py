"""The service's delivery with fakes (no broker, no database): a batch left unwritten when the service
is stopped during an outage stops delivery, so no later batch commits offsets past it; each delivered
batch is logged with the time its phases took."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.exc import OperationalError

from abuse_stream.config import build_config
from abuse_stream.pipeline import BatchOutput, Pipeline
from abuse_stream.service import Service
from tests.helpers import TinyClassifier


class Msg:
    def __init__(self, offset: int, value: bytes) -> None:
        self._offset, self._value = offset, value

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def topic(self) -> str:
        return "in"

    def key(self) -> None:
        return None


class Source:
    """Two batches, then nothing; always far behind the head (so two batches are in flight)."""

    def __init__(self, batches: list[list[Msg]]) -> None:
        self.batches, self.commits, self.assignment = batches, [], {("in", 0)}

    def set_assign_hook(self, hook) -> None: ...

    def set_revoke_hook(self, hook) -> None: ...

    def poll_batch(self, timeout: float | None = None) -> list[Msg]:
        return self.batches.pop(0) if self.batches else []

    def lag(self) -> int:
        return 1_000_000

    def partition_lags(self) -> dict[int, int]:
        return {0: 1_000_000}

    def commit(self, msgs, upto) -> None:
        # the offsets the service worked out on its worker thread are those of the messages
        parts = {m.partition() for m in msgs}
        assert upto == {p: max(m.offset() for m in msgs if m.partition() == p) + 1 for p in parts}
        self.commits.append([m.offset() for m in msgs])

    def broker_reachable(self) -> bool:
        return True

    def caught_up(self) -> bool:
        return True


class Sink:
    def add_dead_letters(self, *a) -> None: ...

    def add_verdicts(self, *a) -> None: ...

    def add_ip_changes(self, *a) -> None: ...

    def flush(self, *a) -> None: ...


class Store:
    """Down until the service is told to stop, then back: the shutdown must not deliver past the gap."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.written = stop, 0

    def write_batch(self, *a) -> None:
        if not self.stop.is_set():
            self.stop.set()  # SIGTERM arrives during the outage
            raise OperationalError("INSERT", None, Exception("connection refused"))
        self.written += 1

    def exceptions(self) -> list:
        return []

    def active_entries(self) -> list:
        return []


def _batch(first: int) -> list[Msg]:
    rec = {"ts": 1793491200.0, "ip": "198.51.100.7", "method": "GET", "path": "/", "status": 200}
    return [Msg(first + i, json.dumps({**rec, "ts": rec["ts"] + first + i}).encode()) for i in range(5)]


def test_a_batch_left_unwritten_at_stop_is_not_overtaken_by_the_next_one():
    cfg = build_config({"kafka": {"bootstrap_servers": "unused:9092"}})
    stop = threading.Event()
    source, store = Source([_batch(0), _batch(5)]), Store(stop)
    svc = Service(cfg, Pipeline(cfg, TinyClassifier()), source, Sink(), store)  # type: ignore[arg-type]
    svc.run(stop)
    assert source.commits == []  # batch 0 was never written, so batch 5 must not be committed
    assert store.written == 0


class _StoreUp(Store):
    def write_batch(self, *a) -> None:
        self.written += 1


class _DrainingSource(Source):
    """Stops the service once its batches are taken."""

    def __init__(self, batches: list[list[Msg]], stop: threading.Event) -> None:
        super().__init__(batches)
        self.stop = stop

    def poll_batch(self, timeout: float | None = None) -> list[Msg]:
        if not self.batches:
            self.stop.set()
        return super().poll_batch(timeout)


def test_each_batch_is_logged_with_its_phase_times(caplog):
    cfg = build_config({"kafka": {"bootstrap_servers": "unused:9092"}})
    stop = threading.Event()
    source, store = _DrainingSource([_batch(0), _batch(5)], stop), _StoreUp(stop)
    svc = Service(cfg, Pipeline(cfg, TinyClassifier()), source, Sink(), store)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="abuse_stream.service"):
        svc.run(stop)
    assert source.commits == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch: 5 messages")]
    assert len(lines) == 2
    for line in lines:
        phases = re.findall(r"(\w+) (\d+) ms", line)
        assert [name for name, _ in phases] == [
            "prepare_wait",
            "judge",
            "store_wait",
            "publish",
            "store",
            "commit_wait",
            "commit",
        ]


class _Events:
    """One ordered record of what the service did, from both of its threads."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.judged_next = threading.Event()
        self.write_started = threading.Event()

    def add(self, what: str) -> None:
        with self.lock:
            self.seen.append(what)


class _RecordingSource(_DrainingSource):
    def __init__(self, batches, stop, events: _Events) -> None:
        super().__init__(batches, stop)
        self.events = events

    def commit(self, msgs, upto) -> None:
        super().commit(msgs, upto)
        if msgs:
            self.events.add(f"commit {msgs[0].offset()}")


class _RecordingSink(Sink):
    def __init__(self, events: _Events) -> None:
        self.events = events

    def flush(self, *a) -> None:
        self.events.add("publish")


class _SlowStore(_StoreUp):
    """The first write lasts until the next batch has been judged (at most 10 s)."""

    def __init__(self, stop, events: _Events) -> None:
        super().__init__(stop)
        self.events = events

    def write_batch(self, *a) -> None:
        self.events.add("write starts")
        self.events.write_started.set()
        if self.written == 0:
            self.events.judged_next.wait(10)
        super().write_batch(*a)
        self.events.add("write ends")


def test_the_next_batch_is_judged_while_a_write_is_under_way_and_published_after_its_commit():
    cfg = build_config({"kafka": {"bootstrap_servers": "unused:9092"}})
    stop, events = threading.Event(), _Events()
    source = _RecordingSource([_batch(0), _batch(5)], stop, events)
    svc = Service(
        cfg, Pipeline(cfg, TinyClassifier()), source, _RecordingSink(events), _SlowStore(stop, events)
    )  # type: ignore[arg-type]
    judge = svc.parts.process_prepared

    def judged(prepared):
        out = judge(prepared)
        if "publish" not in events.seen:
            events.add("judged first")
        else:  # (a write runs on the writer thread; with none under way, this waits in vain)
            events.write_started.wait(10)
            events.add("judged next")
            events.judged_next.set()
        return out

    svc.parts.process_prepared = judged  # type: ignore[method-assign]
    svc.run(stop)
    assert events.seen == [
        "judged first",
        "publish",
        "write starts",  # on the writer thread, while this one goes on:
        "judged next",
        "write ends",
        "commit 0",  # the next batch is published only after the one before it is committed
        "publish",
        "write starts",
        "write ends",
        "commit 5",
    ]
    assert source.commits == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


class _LaggingStore(_StoreUp):
    """Each write lasts 0.3 s; reading the lists or the positions back is recorded."""

    def __init__(self, stop, events: _Events) -> None:
        super().__init__(stop)
        self.events = events

    def write_batch(self, *a) -> None:
        time.sleep(0.3)
        super().write_batch(*a)
        self.events.add("write ends")

    def active_entries(self) -> list:
        self.events.add("lists read")
        return []

    def load_positions(self, *a) -> dict:
        self.events.add("positions read")
        return {}


@pytest.mark.parametrize(
    ("action", "reads"),
    [
        (lambda svc: svc._on_revoke([]), []),
        (lambda svc: svc._on_assign([]), ["positions read"]),
        (lambda svc: svc.sync_policy(force=True), ["lists read"]),
    ],
    ids=["revocation", "assignment", "re-reading the lists"],
)
def test_what_needs_the_store_complete_waits_for_the_write_under_way(action, reads):
    """A partition handed over, or the lists read back (entries missing there count as removed by
    hand), must see the last batch written and committed, not the state before it."""
    cfg = build_config({"kafka": {"bootstrap_servers": "unused:9092"}})
    stop, events = threading.Event(), _Events()
    source = _RecordingSource([], stop, events)
    svc = Service(cfg, Pipeline(cfg, TinyClassifier()), source, Sink(), _LaggingStore(stop, events))  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as svc._writer:
        assert svc._deliver(BatchOutput(), _batch(0))  # handed to the writer, not yet written
        action(svc)
        assert events.seen == ["write ends", "commit 0", *reads]


def test_without_a_database_a_batch_is_committed_at_once():
    cfg = build_config({"kafka": {"bootstrap_servers": "unused:9092"}})
    source = Source([])
    svc = Service(cfg, Pipeline(cfg, TinyClassifier()), source, Sink(), None)  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as svc._writer:
        assert svc._deliver(BatchOutput(), _batch(0))
        assert source.commits == [[0, 1, 2, 3, 4]]  # not left for the next delivery
