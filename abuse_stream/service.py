"""The service loop behind ``abuse-stream run``:

    consume a batch -> pipeline -> dead letters + verdicts + IP-list changes to Kafka (flush)
    -> verdicts + changes to the store (one transaction) -> commit the batch's offsets

Offsets are committed only after both the topic and the database acknowledged, so a crash at any
point replays the batch, and the idempotent store and deterministic ``verdict_id`` make the replay
harmless. When every assigned partition is caught up and no input arrived for
``window.idle_advance_s`` of wall time, event time is advanced by the wall time that passed, so the
last window steps of a quiet stream are still judged and list entries still expire.

The wall clock is read here (the edge), never in the pipeline.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from abuse_stream.config import Config
from abuse_stream.ingest.kafka import KafkaSource
from abuse_stream.metrics import Metrics
from abuse_stream.pipeline import BatchOutput, Pipeline
from abuse_stream.sinks.kafka import KafkaSink
from abuse_stream.store.db import PositionUpdate, Store
from abuse_stream.verdicts import rfc3339

log = logging.getLogger(__name__)


@dataclass
class ServiceStats:
    batches: int = 0
    messages: int = 0
    verdicts: int = 0
    ip_changes: int = 0
    dead_letters: int = 0
    commits: int = 0


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
        self.pipeline = pipeline
        self.source = source
        self.sink = sink
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.stats = ServiceStats()
        self._saved_epochs = -1
        self._exceptions_at = -math.inf
        self._pending_config: Config | None = None
        self._next_offset: dict[int, int] = {}
        self._stop: threading.Event | None = None
        self._clients_at = -math.inf
        if store is not None:
            if pipeline.restore(store.load_snapshot(Pipeline.SNAPSHOT)):
                log.info("restored the baseline snapshot")
                self._saved_epochs = pipeline.stats.epochs_learnt
            pipeline.book.restore(store.active_entries(), store.live_verdicts())
            source.set_assign_hook(self._on_assign)

    def _on_assign(self, parts: list[Any]) -> None:
        """Start each partition one window back (where the open windows' records begin), and rebuild
        the steps judged before the restart without judging them again."""
        assert self.store is not None
        saved = self.store.load_positions(self.cfg.kafka.group_id, self.cfg.kafka.input_topic)
        judged = []
        for p in parts:
            if p.partition in saved:
                p.offset, until = saved[p.partition]
                if until is not None:
                    judged.append(int(until))
        if judged:
            self.pipeline.window.judged_until = min(judged)
            log.info(
                "rebuilding windows from offsets %s; steps before bucket %d were judged before",
                {p.partition: p.offset for p in parts},
                min(judged),
            )

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
        self.cfg = self.pipeline.cfg
        self.sync_policy(force=True)
        log.info("config reloaded (window state and baselines kept)")

    def sync_policy(self, force: bool = False) -> None:
        """Every ``policy.reload_s``: re-read the exception list, and forget list entries removed by hand
        (``lists remove``), so CLI changes apply to the running service."""
        now = self.clock()
        if self.store is None or (not force and now - self._exceptions_at < self.cfg.policy.reload_s):
            return
        self._exceptions_at = now
        try:
            self.pipeline.set_exceptions(self.store.exceptions())
            listed = {(str(e["list"]), str(e["value"])) for e in self.store.active_entries()}
            forgotten = self.pipeline.book.forget_removed(listed)
            if forgotten:
                log.info(
                    "%d list entries were removed by hand: renewed activity will list them again", forgotten
                )
        except Exception as e:  # a database hiccup keeps the previous state
            log.warning("could not reload the exception list / IP lists: %s", e)

    def run(
        self, stop: threading.Event, until_caught_up: bool = False, max_idle_polls: int = 6
    ) -> ServiceStats:
        """Loop until ``stop`` is set (or, with ``until_caught_up``, until the input is exhausted)."""
        self._stop = stop
        last_input = self.clock()
        idle_polls = 0
        while not stop.is_set():
            self._apply_pending_config()
            self.sync_policy()
            msgs = self.source.poll_batch()
            if msgs:
                idle_polls = 0
                last_input = self.clock()
                t0 = time.perf_counter()
                lags = self.source.partition_lags()
                self.pipeline.set_live_sources({p for p, n in lags.items() if n > 0})
                out = self.pipeline.process_lines(
                    [m.value() or b"" for m in msgs],
                    [m.partition() for m in msgs],
                    [m.offset() for m in msgs],
                )
                self._deliver(out, msgs)
                self._batch_metrics(len(msgs), sum(lags.values()), time.perf_counter() - t0)
                continue
            idle_polls += 1
            if until_caught_up:
                if idle_polls >= 2 and self.source.assignment and self.source.caught_up():
                    self._deliver(self.pipeline.finish(), [])
                    break
                if idle_polls > max_idle_polls * 20 and not self.source.assignment:
                    raise RuntimeError("no partitions assigned: is the input topic there?")
                continue
            idle = self.clock() - last_input
            if idle >= self.cfg.window.idle_advance_s and math.isfinite(self.pipeline.window.max_ts):
                if self.source.caught_up():
                    out = self.pipeline.advance_to(self.pipeline.window.max_ts + idle)
                    if out.verdicts or out.ip_changes:
                        self._deliver(out, [])
        log.info("stopping: %s", self.stats)
        return self.stats

    def _batch_metrics(self, messages: int, lag: int, seconds: float) -> None:
        m = self.metrics
        m.consumed.inc(messages)
        m.lag.set(lag)
        m.batch_seconds.observe(seconds)
        m.evicted_total(self.pipeline.window.stats.evicted)
        now = self.clock()
        if now - self._clients_at >= 5.0:  # distinct keys over the window: not on every batch
            self._clients_at = now
            m.clients.set(self.pipeline.window.tracked_clients())

    def _until_done(self, action: Callable[[], None], what: str, errors: Any) -> bool:
        """Run ``action`` until it succeeds, backing off (0.5 s .. 15 s); False if asked to stop first.

        While it fails, the service is not ready (metric ``abuse_stream_ready`` 0, ``health``) and no
        offset is committed, so nothing is lost: the batch lands once the dependency is back.
        """
        delay, failures = 0.5, 0
        while True:
            try:
                action()
                if failures:
                    log.warning("%s works again after %d failed attempts", what, failures)
                return True
            except Exception as e:  # outage of a dependency: wait and retry the same batch
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

    def _deliver(self, out: BatchOutput, msgs: Sequence[Message]) -> None:
        """Publish, store, then commit. Raises (without committing) if any step failed."""
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
        if not self._until_done(publish, "publish to Kafka", self.metrics.producer_errors):
            return
        if self.store is not None:
            for m in msgs:
                self._next_offset[m.partition()] = max(
                    self._next_offset.get(m.partition(), 0), m.offset() + 1
                )
            needed = self.pipeline.replay_from()
            positions = PositionUpdate(
                self.cfg.kafka.group_id,
                self.cfg.kafka.input_topic,
                {p: needed.get(p, nxt) for p, nxt in self._next_offset.items()},
                self.pipeline.judged_until(),
            )
            snapshot = None
            if self.pipeline.stats.epochs_learnt != self._saved_epochs:
                ts = self.pipeline.window.max_ts
                snapshot = (
                    Pipeline.SNAPSHOT,
                    self.pipeline.baselines.snapshot(),
                    ts if math.isfinite(ts) else None,
                )
            if not self._until_done(
                lambda: self.store.write_batch(out.verdicts, out.ip_changes, positions, snapshot),  # type: ignore[union-attr]
                "write to the database",
                self.metrics.db_errors,
            ):
                return
            if snapshot is not None:
                self._saved_epochs = self.pipeline.stats.epochs_learnt
        self.metrics.ready.set(1)
        for r in out.rejected:
            self.metrics.rejected.labels(r.reason).inc()
        for v in out.verdicts:
            self.metrics.verdicts.labels(v["bot_type"], v["action"]).inc()
        self.source.commit(msgs)
        self.stats.batches += 1
        self.stats.messages += len(msgs)
        self.stats.verdicts += len(out.verdicts)
        self.stats.ip_changes += len(out.ip_changes)
        self.stats.dead_letters += len(out.rejected)
        self.stats.commits += 1 if msgs else 0
        if out.verdicts:
            log.info(
                "batch: %d messages, %d verdicts, %d list changes, %d rejected",
                len(msgs),
                len(out.verdicts),
                len(out.ip_changes),
                len(out.rejected),
            )
