"""The service loop behind ``abuse-stream run``:

    consume a batch -> pipeline -> dead letters + verdicts + IP-list changes to Kafka (flush)
    -> verdicts + changes to the store (one transaction) -> commit the batch's offsets

State is kept per input partition (:mod:`abuse_stream.partitions`): on assignment the service
restores each partition's baselines and verdict book from the store and seeks back to where its open
windows begin; on revocation it drops them. Several instances in one consumer group therefore
compute exactly what one instance computes.

Offsets are committed only after both the topic and the database acknowledged, so a crash at any
point replays the batch, and the idempotent store and deterministic ``verdict_id`` make the replay
harmless. A batch's database write runs on a writer thread while the next batch is polled and
judged, one write at a time. The next batch is published only after that write has landed and its
offsets were committed. Whatever needs the store complete waits for the write first: a rebalance,
re-reading the lists, an idle poll, stopping.

When every assigned partition is caught up and no input arrived for ``window.idle_advance_s`` of
wall time, event time is advanced by the wall time that passed, so the last window steps of a quiet
stream are still judged and list entries still expire.

The wall clock is read here (the edge), never in the pipeline.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Message
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from abuse_stream.config import Config
from abuse_stream.ingest.kafka import KafkaSource, message_fields, next_offsets
from abuse_stream.metrics import Metrics
from abuse_stream.partitions import PartitionedPipeline, PreparedParts
from abuse_stream.pipeline import BatchOutput, Pipeline
from abuse_stream.sinks.kafka import KafkaSink, PublishError
from abuse_stream.store.db import PositionUpdate, Store
from abuse_stream.verdicts import rfc3339

log = logging.getLogger(__name__)

#: errors that mean "the dependency is unreachable right now": retried until it is back
_DB_OUTAGE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, PoolTimeout)
_KAFKA_OUTAGE: tuple[type[BaseException], ...] = (PublishError, KafkaException, BufferError)


@dataclass
class ServiceStats:
    batches: int = 0
    messages: int = 0
    verdicts: int = 0
    ip_changes: int = 0
    dead_letters: int = 0
    commits: int = 0
    accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


class Service:
    def __init__(
        self,
        cfg: Config,
        pipeline: Pipeline,
        source: KafkaSource,
        sink: KafkaSink,
        store: Store | None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.pipeline = pipeline  # the template each partition's pipeline is made from
        self.parts = PartitionedPipeline(pipeline)
        self.source = source
        self.sink = sink
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.stats = ServiceStats()
        self._saved_epochs: dict[int, int] = {}  # partition -> epochs learnt when last stored
        self._saved_books: dict[int, tuple[int, ...]] = {}  # partition -> book version last stored
        self._exceptions_at = -math.inf
        self._pending_config: Config | None = None
        self._next_offset: dict[int, int] = {}
        self._stop: threading.Event | None = None
        self._clients_at = -math.inf
        self._broker_was_up = True
        self._generation = 0  # bumped by every assignment change
        self._delivered = True  # False once a batch was left unwritten (stop during an outage)
        self._writer: ThreadPoolExecutor | None = None  # the database writes (in run())
        self._writing: _Write | None = None  # the batch whose write is under way
        source.set_assign_hook(self._on_assign)
        source.set_revoke_hook(self._on_revoke)

    def snapshot_name(self, partition: int, what: str) -> str:
        """``baselines/<group>/<topic>/<partition>`` (hashed when longer than the column allows)."""
        k = self.cfg.kafka
        name = f"{what}/{k.group_id}/{k.input_topic}/{partition}"
        if len(name) <= 128:
            return name
        digest = hashlib.sha256(f"{k.group_id}/{k.input_topic}".encode()).hexdigest()[:32]
        return f"{what}/{digest}/{partition}"

    def _on_assign(self, parts: list[Any]) -> None:
        """Build each assigned partition's pipeline from what its previous owner stored: start one
        window back (where its open windows' records begin), rebuild the steps judged before without
        judging them again, restore its baselines and verdict book."""
        self._finish_write()  # what the store holds for these partitions is complete
        self._generation += 1
        for p in parts:
            self.parts.add(p.partition)
            self._saved_epochs[p.partition] = 0
        self.metrics.partitions.set(len(self.parts.parts))
        if self.store is None:
            return
        if not self._until_done(
            lambda: self._restore_partitions(parts), "load partition state", self.metrics.db_errors
        ):
            raise RuntimeError("stopped before the assigned partitions' state could be loaded")

    def _restore_partitions(self, parts: list[Any]) -> None:
        assert self.store is not None
        saved = self.store.load_positions(self.cfg.kafka.group_id, self.cfg.kafka.input_topic)
        shared = None
        for p in parts:
            pipe = self.parts.add(p.partition)  # cold again: an earlier attempt may have failed midway
            restored = []
            if p.partition in saved:
                p.offset, until = saved[p.partition]
                pipe.window.judged_until = until
                restored.append(f"offset {p.offset}, judged before bucket {until}")
            if pipe.restore(self.store.load_snapshot(self.snapshot_name(p.partition, "baselines"))):
                restored.append("baselines")
            else:  # first start: baselines learnt by `replay` into this database, if any
                shared = (
                    shared if shared is not None else (self.store.load_snapshot(Pipeline.SNAPSHOT) or b"")
                )
                if pipe.restore(shared):
                    restored.append("baselines (shared replay snapshot)")
            book = self.store.load_snapshot(self.snapshot_name(p.partition, "book"))
            if book:
                pipe.book.restore(book)
                restored.append(f"verdict book ({len(pipe.book.entries)} list entries)")
            self._saved_books[p.partition] = pipe.book.version
            log.info(
                "partition %d: %s",
                p.partition,
                "rebuilding windows from " + ", ".join(restored)
                if restored
                else "no stored state, starting cold",
            )

    def _on_revoke(self, parts: list[Any]) -> None:
        """Another instance owns these now (or will): drop their state, stop storing their positions."""
        self._finish_write()  # their last batch's write lands and its offsets are committed first
        self._generation += 1
        for p in parts:
            self.parts.drop(p.partition)
            self._next_offset.pop(p.partition, None)
            self._saved_epochs.pop(p.partition, None)
            self._saved_books.pop(p.partition, None)
        self.metrics.partitions.set(len(self.parts.parts))

    def request_reconfigure(self, cfg: Config) -> None:
        """Ask for a new config to be applied between batches (SIGHUP; signal-handler safe)."""
        self._pending_config = cfg

    def _apply_pending_config(self) -> None:
        cfg, self._pending_config = self._pending_config, None
        if cfg is None:
            return
        try:
            for w in self.pipeline.reconfigure(cfg):
                log.warning("config reload: %s", w)
        except ValueError as e:
            log.error("config reload refused, keeping the running config: %s", e)
            return
        self.cfg = self.parts.cfg
        self.sync_policy(force=True)
        log.info("config reloaded (window state and baselines kept)")

    def sync_policy(self, force: bool = False) -> None:
        """Every ``policy.reload_s``: re-read the exception list, and forget list entries removed by hand
        (``lists remove``), so CLI changes apply to the running service."""
        now = self.clock()
        if self.store is None or (not force and now - self._exceptions_at < self.cfg.policy.reload_s):
            return
        self._exceptions_at = now
        if not self._finish_write():  # an entry judged but not yet written is not "removed by hand"
            return
        try:
            self.parts.set_exceptions(self.store.exceptions())
            listed = {(str(e["list"]), str(e["value"])) for e in self.store.active_entries()}
            forgotten = self.parts.forget_removed(listed)
            if forgotten:
                log.info(
                    "%d list entries were removed by hand: renewed activity will list them again", forgotten
                )
        except Exception as e:  # a database hiccup keeps the previous state
            log.warning("could not reload the exception list / IP lists: %s", e)

    def run(
        self, stop: threading.Event, until_caught_up: bool = False, max_idle_polls: int = 6
    ) -> ServiceStats:
        """Loop until ``stop`` is set (or, with ``until_caught_up``, until the input is exhausted).

        Catching up, two batches are in flight: while batch *n* is judged, published, stored and
        committed on this thread, batch *n+1* (already polled) is parsed and enriched on a worker
        thread. Live (less unread than the batch just polled), a batch is completed at once. A rebalance
        during a poll discards the prepared batch: its partitions were dropped, and whoever owns them
        now reads them again from the stored positions.
        """
        self._stop = stop
        last_input = self.clock()
        idle_polls = 0
        pending: _InFlight | None = None
        with (
            ThreadPoolExecutor(1, thread_name_prefix="prepare") as prepare,
            ThreadPoolExecutor(1, thread_name_prefix="store") as self._writer,
        ):
            while not stop.is_set():
                self._apply_pending_config()
                self.sync_policy()
                # what has arrived is taken at once; with a batch in flight, nothing there means
                # "finish that batch" rather than wait up to batch_timeout_s for more
                msgs = self.source.poll_batch(0.0 if pending is not None else None)
                if pending is not None and pending.generation != self._generation:
                    log.info("rebalanced: a prepared batch of %d messages is read again", len(pending.msgs))
                    pending = None
                if msgs:
                    idle_polls = 0
                    last_input = self.clock()
                    ahead = _InFlight(
                        msgs,
                        prepare.submit(_prepare_batch, self.parts, msgs),
                        self._generation,
                        time.perf_counter(),
                    )
                    if pending is not None:
                        self._complete(pending)
                    pending = ahead
                    lag = self.source.lag()
                    if lag is not None and lag <= len(msgs):  # live, at the head of the stream: judge
                        self._complete(pending)  # it now rather than one batch later (latency)
                        pending = None
                    continue
                if pending is not None:  # input paused: finish what is in flight first
                    self._complete(pending)
                    pending = None
                if not self._finish_write():  # paused: the last write lands and is committed now
                    continue
                idle_polls += 1
                if until_caught_up:
                    if idle_polls >= 2 and self.source.assignment and self.source.caught_up():
                        self._deliver(self.parts.finish(), [])
                        break
                    if idle_polls > max_idle_polls * 20 and not self.source.assignment:
                        raise RuntimeError("no partitions assigned: is the input topic there?")
                    continue
                idle = self.clock() - last_input
                if idle >= self.cfg.window.idle_advance_s and math.isfinite(self.parts.max_ts()):
                    if self._broker_up() and self.source.caught_up():
                        out = self.parts.advance_idle(idle)
                        if out.verdicts or out.ip_changes:
                            self._deliver(out, [])
            if pending is not None and pending.generation == self._generation and self._finish_write():
                self._complete(pending)  # SIGTERM: finish the batch in hand (unless one was left unwritten)
            self._finish_write()
            self._writer = None
        log.info("stopping: %s", self.stats)
        return self.stats

    def _complete(self, batch: _InFlight) -> None:
        """Judge a prepared batch, then publish, store and commit it."""
        evicted = self.parts.evicted()
        t0 = time.perf_counter()
        prepared, upto = batch.prepared.result()
        t1 = time.perf_counter()
        out = self.parts.process_prepared(prepared)
        phases = {"prepare_wait": t1 - t0, "judge": time.perf_counter() - t1}
        if not self._deliver(out, batch.msgs, phases, upto):
            return
        self.metrics.evictions.inc(max(0, self.parts.evicted() - evicted))
        lags = self.source.partition_lags()
        self._batch_metrics(len(batch.msgs), sum(lags.values()), time.perf_counter() - batch.started)

    def _broker_up(self) -> bool:
        """Checked while the input is idle: an outage is logged once, makes the service not ready,
        and stops event time from advancing (records delayed by the outage must not arrive late)."""
        up = self.source.broker_reachable()
        if up != self._broker_was_up:
            self._broker_was_up = up
            if up:
                log.warning("the Kafka broker is reachable again")
                self.metrics.ready.set(1)
            else:
                log.warning("the Kafka broker is unreachable: waiting (event time is held until it is back)")
        if not up:
            self.metrics.ready.set(0)
        return up

    def _batch_metrics(self, messages: int, lag: int, seconds: float) -> None:
        m = self.metrics
        m.consumed.inc(messages)
        m.lag.set(lag)
        m.batch_seconds.observe(seconds)
        now = self.clock()
        if now - self._clients_at >= 30.0:  # distinct keys over the window (a scan): twice a minute
            self._clients_at = now
            m.clients.set(self.parts.tracked_clients())

    def _until_done(
        self,
        action: Callable[[], None],
        what: str,
        errors: Any,
        transient: tuple[type[BaseException], ...] = _DB_OUTAGE,
    ) -> bool:
        """Run ``action`` until it succeeds, backing off (0.5 s .. 15 s); False if asked to stop first.

        While it fails, the service is not ready (metric ``abuse_stream_ready`` 0, ``health``) and no
        offset is committed, so nothing is lost: the batch lands once the dependency is back. Only
        ``transient`` errors (the dependency is unreachable) are retried; any other error is a defect
        that retrying cannot fix, and is raised: the service stops without committing the batch.
        """
        delay, failures = 0.5, 0
        while True:
            try:
                action()
                if failures:
                    log.warning("%s works again after %d failed attempts", what, failures)
                return True
            except transient as e:  # outage of a dependency: wait and retry the same batch
                failures += 1
                errors.inc()
                self.metrics.ready.set(0)
                log.warning(
                    "cannot %s (attempt %d), retrying in %.1fs: %s",
                    what,
                    failures,
                    delay,
                    str(e).splitlines()[0],
                )
                if self._stop is not None and self._stop.wait(delay):
                    log.warning(
                        "stopping during an outage: the batch was not committed and will be read again"
                    )
                    return False
                if self._stop is None:
                    time.sleep(delay)
                delay = min(delay * 2, 15.0)

    def _deliver(
        self,
        out: BatchOutput,
        msgs: Sequence[Message],
        phases: dict[str, float] | None = None,
        upto: Mapping[int, int] | None = None,
    ) -> bool:
        """Publish, store, then commit. Returns False (nothing committed) if asked to stop during an
        outage; no later batch may be delivered then, or its commit would pass this one's offsets.
        ``phases``: seconds the batch took before (logged with the delivery's own); ``upto``: the
        messages' :func:`next_offsets` (worked out on the worker thread; else here).

        In :meth:`run` the database write goes to the writer thread and the batch is committed by the
        next delivery (or whatever must see the store complete first: :meth:`_finish_write`), which
        waits for it before publishing anything."""
        t_wait = time.perf_counter()
        if not self._finish_write():
            return False
        self._delivered = False
        now = rfc3339(self.clock())
        if out.rejected:
            sources: list[dict[str, Any]] = []
            for r in out.rejected:
                m = msgs[r.index] if 0 <= r.index < len(msgs) else None
                sources.append(
                    {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(), "key": m.key()}
                    if m is not None
                    else {}
                )
        else:
            sources = []

        def publish() -> None:
            if out.rejected:
                self.sink.add_dead_letters(out.rejected, sources, now)
            self.sink.add_verdicts(out.verdicts)
            self.sink.add_ip_changes(out.ip_changes)
            self.sink.flush()

        # outages: retry the same batch until it lands (or we are told to stop); offsets stay put meanwhile
        t0 = time.perf_counter()
        if not self._until_done(publish, "publish to Kafka", self.metrics.producer_errors, _KAFKA_OUTAGE):
            return False
        phases = {**(phases or {}), "store_wait": t0 - t_wait, "publish": time.perf_counter() - t0}
        if upto is None:
            upto = next_offsets(*message_fields(msgs)[1:])
        w = _Write(out, msgs, upto, phases, {}, {})
        if self.store is None:
            w.future.set_result(True)
        else:
            for part, nxt in upto.items():
                self._next_offset[part] = max(self._next_offset.get(part, 0), nxt)
            needed = self.parts.replay_from()
            positions = PositionUpdate(
                self.cfg.kafka.group_id,
                self.cfg.kafka.input_topic,
                {p: needed.get(p, nxt) for p, nxt in self._next_offset.items()},
                self.parts.judged_until(),
            )
            snapshots = []
            for part, pipe in self.parts.parts.items():
                if pipe.stats.epochs_learnt != self._saved_epochs.get(part):
                    ts = pipe.window.max_ts
                    snapshots.append(
                        (
                            self.snapshot_name(part, "baselines"),
                            pipe.baselines.snapshot(),
                            ts if math.isfinite(ts) else None,
                        )
                    )
                    w.epochs[part] = pipe.stats.epochs_learnt
                version = pipe.book.version
                if version != self._saved_books.get(part):
                    snapshots.append((self.snapshot_name(part, "book"), pipe.book.snapshot(), None))
                    w.books[part] = version
            store = self.store

            def write() -> bool:
                t = time.perf_counter()
                try:
                    return self._until_done(
                        lambda: store.write_batch(out.verdicts, out.ip_changes, positions, snapshots),
                        "write to the database",
                        self.metrics.db_errors,
                    )
                finally:
                    w.phases["store"] = time.perf_counter() - t

            if self._writer is not None:
                w.future = self._writer.submit(write)
            else:
                w.future.set_result(write())
        self._writing = w
        if self._writer is None or self.store is None:  # nothing to wait for: commit now
            return self._finish_write()
        return True

    def _finish_write(self) -> bool:
        """Wait for the batch being written, then commit its offsets and count it. False if it was
        left unwritten (asked to stop during an outage): nothing may be delivered after it. A defect
        in the write (not an outage) is raised here: the service stops without committing."""
        w, self._writing = self._writing, None
        if w is None:
            return self._delivered
        t_wait = time.perf_counter()
        if not w.future.result():
            return False
        t2 = time.perf_counter()
        self._saved_epochs.update(w.epochs)
        self._saved_books.update(w.books)
        out, msgs = w.out, w.msgs
        self.metrics.ready.set(1)
        for r in out.rejected:
            self.metrics.rejected.labels(r.reason).inc()
            self.stats.rejected_by_reason[r.reason] = self.stats.rejected_by_reason.get(r.reason, 0) + 1
        self.stats.accepted += out.accepted
        for v in out.verdicts:
            self.metrics.verdicts.labels(v["bot_type"], v["action"]).inc()
        self.source.commit(msgs, w.upto)
        phases = {**w.phases, "commit_wait": t2 - t_wait, "commit": time.perf_counter() - t2}
        self.stats.batches += 1
        self.stats.messages += len(msgs)
        self.stats.verdicts += len(out.verdicts)
        self.stats.ip_changes += len(out.ip_changes)
        self.stats.dead_letters += len(out.rejected)
        self.stats.commits += 1 if msgs else 0
        if out.verdicts or log.isEnabledFor(logging.DEBUG):
            log.log(
                logging.INFO if out.verdicts else logging.DEBUG,
                "batch: %d messages, %d verdicts, %d list changes, %d rejected (%s)",
                len(msgs),
                len(out.verdicts),
                len(out.ip_changes),
                len(out.rejected),
                ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in phases.items()),
            )
        self._delivered = True
        return True


@dataclass
class _Write:
    """A published batch whose database write runs on the writer thread; committed when it lands."""

    out: BatchOutput
    msgs: Sequence[Message]
    upto: Mapping[int, int]  # partition -> the offset to commit (after its last message in ``msgs``)
    phases: dict[str, float]  # seconds per phase, for the batch's log line
    epochs: dict[int, int]  # partition -> epochs learnt, stored with this write
    books: dict[int, tuple[int, ...]]  # partition -> verdict book version, stored with this write
    future: Future[bool] = field(default_factory=Future)


@dataclass
class _InFlight:
    """A polled batch whose parsing and enrichment runs on the worker thread."""

    msgs: list[Message]
    prepared: Future[tuple[PreparedParts, dict[int, int]]]  # and the messages' next offsets
    generation: int  # the assignment it was polled under
    started: float


def _prepare_batch(
    parts: PartitionedPipeline, msgs: Sequence[Message]
) -> tuple[PreparedParts, dict[int, int]]:
    """On the worker thread: the messages' fields read in one pass, the batch parsed, enriched and
    split per partition, and the offsets its commit will store."""
    values, partitions, offsets = message_fields(msgs)
    return parts.prepare(values, partitions, offsets), next_offsets(partitions, offsets)
