"""Replay: the same pipeline over log files in event time (a backtest), no broker needed.

Verdicts go to ``--verdicts-out`` (JSON lines, contracts §3) and/or the store; rejected lines go to
a ``.rejected`` report (JSON lines with file, line number, reason and the raw line).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from abuse_stream.ingest.files import FileBatch, read_batches
from abuse_stream.pipeline import BatchOutput, Pipeline, PreparedBatch
from abuse_stream.sinks.files import JsonLinesSink, RejectedReport
from abuse_stream.store.db import Store


@dataclass
class ReplaySummary:
    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    verdicts: int = 0
    verdicts_by_type: dict[str, int] = field(default_factory=dict)
    ip_changes: int = 0
    seconds: float = 0.0

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


def replay(
    pipeline: Pipeline,
    paths: Sequence[str],
    verdicts_out: JsonLinesSink | None,
    rejected_out: RejectedReport | None,
    store: Store | None,
    batch_lines: int = 100_000,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ReplaySummary:
    s = ReplaySummary()
    t0 = clock()
    if store is not None:
        pipeline.restore(store.load_snapshot(pipeline.SNAPSHOT))
        pipeline.set_exceptions(store.exceptions())

    def deliver(out: BatchOutput, file: str = "", first_line: int = 0) -> None:
        if rejected_out is not None and out.rejected:
            rejected_out.add_rejected(out.rejected, file, first_line)
        if verdicts_out is not None and out.verdicts:
            verdicts_out.add(out.verdicts)
        if store is not None:
            store.write_batch(out.verdicts, out.ip_changes)
        s.verdicts += len(out.verdicts)
        s.ip_changes += len(out.ip_changes)
        for v in out.verdicts:
            s.verdicts_by_type[v["bot_type"]] = s.verdicts_by_type.get(v["bot_type"], 0) + 1

    last_bytes = 0
    for batch, prepared in _prepared_ahead(pipeline, paths, batch_lines):
        out = pipeline.process_prepared(prepared)
        s.lines += len(batch.lines)
        s.accepted += out.accepted
        s.rejected += len(out.rejected)
        for r in out.rejected:
            s.rejected_by_reason[r.reason] = s.rejected_by_reason.get(r.reason, 0) + 1
        deliver(out, batch.file, batch.first_line)
        if progress is not None:
            progress(batch.bytes_read - last_bytes)
            last_bytes = batch.bytes_read
    deliver(pipeline.finish())
    if store is not None:
        store.save_snapshot(pipeline.SNAPSHOT, pipeline.baselines.snapshot(), None)
    for sink in (verdicts_out, rejected_out):
        if sink is not None:
            sink.close()
    s.seconds = clock() - t0
    return s


def _prepared_ahead(
    pipeline: Pipeline, paths: Sequence[str], batch_lines: int
) -> Iterator[tuple[FileBatch, PreparedBatch]]:
    """The file batches, read, parsed and enriched (``Pipeline.prepare_lines``) one batch ahead on a
    worker thread while the caller runs the rest of the pipeline: polars releases the GIL, so the two
    halves overlap on two cores. Order, results and errors (raised where they occurred in the input)
    are those of the sequential loop."""
    done = object()
    q: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in read_batches(paths, batch_lines):
                if not put((batch, pipeline.prepare_lines(batch.lines))):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put(e)
            return
        put(done)

    worker = threading.Thread(target=work, name="replay-prepare", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
