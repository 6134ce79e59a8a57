"""One pipeline per input partition: what lets several ``run`` instances share a topic.

The mirror keys the log topic by client IP, so every client's records live in one partition, and a
partition's windows, learned baselines and verdict book depend on that partition's records only.
Keeping that state per partition makes the results independent of which instance owns a partition
and of when it moved: on assignment an instance builds the partition's pipeline from what the
previous owner stored (baseline snapshot, verdict book, the offset the open windows start at and the
steps already judged), on revocation it drops it. One instance holding all partitions computes
exactly what several instances compute between them.

The price of that independence: cross-client correlation (``stuffing_campaign``) and the learned
baselines see one partition's share of the traffic. With the recommended 4-12 partitions each still
sees thousands of clients; see deploy/README.md.

No I/O here; :class:`abuse_stream.service.Service` decides when to restore and store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from abuse_stream.config import Config
from abuse_stream.ingest.schema import Rejected
from abuse_stream.pipeline import (
    BatchOutput,
    Pipeline,
    PipelineStats,
    PreparedBatch,
    advance,
    evaluate,
    finish,
)
from abuse_stream.policy import ExceptionEntry
from abuse_stream.window import aggregate_records


@dataclass(frozen=True)
class PreparedParts:
    """A batch parsed and enriched once, split into its partitions' window input."""

    lines: Sequence[bytes]
    rejected: list[Rejected]  # parse errors, indexed into ``lines``
    parts: dict[int, PreparedBatch]


class PartitionedPipeline:
    """Routes each record to its partition's :class:`Pipeline` (created from ``template``)."""

    def __init__(self, template: Pipeline) -> None:
        self.template = template
        self.parts: dict[int, Pipeline] = {}

    @property
    def cfg(self) -> Config:
        return self.template.cfg

    # -- ownership --------------------------------------------------------------------------------------

    def add(self, partition: int) -> Pipeline:
        """A fresh pipeline for ``partition`` (replacing any it had): cold, to be restored by the caller."""
        self.parts[partition] = self.template.sibling()
        return self.parts[partition]

    def drop(self, partition: int) -> None:
        self.parts.pop(partition, None)

    def get(self, partition: int) -> Pipeline:
        return self.parts[partition] if partition in self.parts else self.add(partition)

    # -- the pipeline's entry points, per partition ----------------------------------------------------

    def prepare(
        self, lines: Sequence[bytes], sources: Sequence[int], offsets: Sequence[int]
    ) -> PreparedParts:
        """Parse and enrich the whole batch once, then aggregate each partition's records apart (in
        one pass grouped by partition too, which costs less than one per partition).

        Reads and changes no partition state, so the service runs it a batch ahead on a worker thread.
        """
        whole = self.template.prepare_lines(lines, sources, offsets, aggregate=False)
        parts: dict[int, PreparedBatch] = {}
        if whole.enriched is not None:
            w = self.cfg.window
            values, counts = np.unique(np.asarray(sources, dtype=np.int64), return_counts=True)
            per_part = dict(zip(values.tolist(), counts.tolist(), strict=True))
            aggregated = aggregate_records(whole.enriched, w.step_s, w.max_paths_per_bucket, by=("_src",))
            aggregates = aggregated.partition_by("_src", as_dict=True, include_key=False)
            for (part,), frame in whole.enriched.partition_by("_src", as_dict=True).items():
                parts[int(part)] = PreparedBatch(  # type: ignore[arg-type]
                    lines,  # late records name their line in the whole batch
                    [],
                    frame.height,
                    frame,
                    aggregates[(part,)],
                    line_count=per_part[int(part)],  # type: ignore[arg-type]
                )
        return PreparedParts(lines, whole.rejected, parts)

    def process_prepared(self, prepared: PreparedParts) -> BatchOutput:
        """Windows, judgement and verdicts of a prepared batch: each partition's records enter its
        windows, then the steps that closed are judged for all partitions together (one vectorised
        pass, see :func:`abuse_stream.pipeline.evaluate`)."""
        out = BatchOutput(rejected=list(prepared.rejected))
        closed = []
        for part, batch in sorted(prepared.parts.items()):
            pipe = self.get(part)
            admitted, steps = pipe.admit_prepared(batch)
            out.extend(admitted)
            closed.append((pipe, steps))
        out.extend(_merged(evaluate(closed)))
        return out

    def advance_idle(self, idle_s: float) -> BatchOutput:
        """Input idle for ``idle_s`` of wall time: every partition's event time moves on by as much."""
        pipes = [p for _, p in sorted(self.parts.items()) if np.isfinite(p.window.max_ts)]
        return _merged(advance([(p, p.window.max_ts + idle_s) for p in pipes]))

    def finish(self) -> BatchOutput:
        """End of input: every partition closes and judges its open steps and learns its last epoch."""
        return _merged(finish([p for _, p in sorted(self.parts.items())]))

    def judged_until(self) -> dict[int, int | None]:
        return {part: p.judged_until() for part, p in self.parts.items()}

    def replay_from(self) -> dict[int, int]:
        """Per owned partition, the lowest offset a new owner must re-read (absent: nothing open)."""
        out: dict[int, int] = {}
        for part, p in self.parts.items():
            needed = p.replay_from()
            if part in needed:
                out[part] = needed[part]
        return out

    # -- config and policy: the same for every partition --------------------------------------------------

    def reconfigure(self, cfg: Config) -> list[str]:
        warnings = self.template.reconfigure(cfg)  # validates: raises before any partition changed
        for p in self.parts.values():
            p.reconfigure(self.template.cfg)
        return warnings

    def set_exceptions(self, stored: list[ExceptionEntry]) -> None:
        for p in [self.template, *self.parts.values()]:
            p.set_exceptions(stored)

    def forget_removed(self, listed: set[tuple[str, str]]) -> int:
        return sum(p.book.forget_removed(listed) for p in self.parts.values())

    # -- observation ---------------------------------------------------------------------------------------

    @property
    def stats(self) -> PipelineStats:
        """The sum over the partitions this instance owns now."""
        total = PipelineStats()
        for p in self.parts.values():
            for f in dataclasses.fields(PipelineStats):
                a, b = getattr(total, f.name), getattr(p.stats, f.name)
                if isinstance(a, dict):
                    for k, v in b.items():
                        a[k] = a.get(k, 0) + v
                else:
                    setattr(total, f.name, a + b)
        return total

    def tracked_clients(self) -> int:
        return sum(p.window.tracked_clients() for p in self.parts.values())

    def evicted(self) -> int:
        return sum(p.window.stats.evicted for p in self.parts.values())

    def max_ts(self) -> float:
        return max((p.window.max_ts for p in self.parts.values()), default=float("-inf"))


def _merged(outs: Sequence[BatchOutput]) -> BatchOutput:
    total = BatchOutput()
    for o in outs:
        total.extend(o)
    return total
