"""The pipeline: one object that runs the pure stages over a batch, shared by ``run`` and ``replay``.

    lines --parse--> records --enrich--> window.add --(closed steps)--> features --> detectors
          --> scoring --> verdicts + IP-list changes;  baselines learn from unflagged clients

No I/O happens here: callers hand in lines (or records) and event time, and get back a
:class:`BatchOutput` to publish, store and report. Event time drives everything; :func:`advance`
lets the service move event time forward while the input is idle (so the last steps of a quiet
stream are still judged and list entries still expire), and ``finish`` closes every open step at the
end of a replay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from abuse_stream import endpoints
from abuse_stream.baseline import TrafficBaselines, learning_frame
from abuse_stream.config import Config
from abuse_stream.detectors import build_detectors
from abuse_stream.detectors.base import Baselines, DetectContext, check_findings
from abuse_stream.features import BrowserClassifier, CrawlerChecker, Enricher, UAClassifier, client_features
from abuse_stream.ingest.parse import LineParser, build_parser
from abuse_stream.ingest.schema import Rejected
from abuse_stream.policy import ExceptionEntry, exception_list
from abuse_stream.scoring import confidence_columns, detections
from abuse_stream.verdicts import VerdictBook
from abuse_stream.window import WindowState, aggregate_records

log = logging.getLogger(__name__)


@dataclass
class BatchOutput:
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    ip_changes: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    accepted: int = 0

    def extend(self, other: BatchOutput) -> None:
        self.verdicts += other.verdicts
        self.ip_changes += other.ip_changes
        self.rejected += other.rejected
        self.accepted += other.accepted


@dataclass(frozen=True)
class PreparedBatch:
    """Lines parsed and enriched (:meth:`Pipeline.prepare_lines`), not yet in the windows."""

    lines: Sequence[bytes]
    rejected: list[Rejected]
    records: int  # accepted by the parser
    enriched: pl.DataFrame | None  # None without records
    aggregated: pl.DataFrame | None = None  # window.aggregate_records(enriched): the windows' input
    line_count: int | None = None  # lines this batch stands for (default: len(lines))


@dataclass
class PipelineStats:
    lines: int = 0
    accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    verdicts_by_type: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    learnt: int = 0
    epochs_learnt: int = 0


class Pipeline:
    def __init__(
        self,
        cfg: Config,
        classifier: UAClassifier,
        parser: LineParser | None = None,
        crawlers: CrawlerChecker | None = None,
        browsers: BrowserClassifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.enrich = Enricher(
            key=cfg.window.key,
            ua=classifier,
            crawlers=crawlers,
            browsers=browsers,
            sensitive_regex=endpoints.globs_to_regex(
                [g for p in cfg.profiles for g in p.sensitive_endpoints]
            ),
        )
        self.parser = parser or build_parser(cfg.input.format, cfg.input.log_format, cfg.input.max_line_bytes)
        self.detectors = build_detectors(cfg.detection.detectors)
        self.window = WindowState(cfg.window)
        self.baselines = TrafficBaselines(
            cfg.detection.baseline,
            {d.baseline_metric: d.baseline_quantile() for d in self.detectors if d.baseline_metric},
        )
        self.book = VerdictBook([d.name for d in self.detectors], cfg.detection.bot_types)
        self._stored_exceptions: list[ExceptionEntry] = []
        self.set_exceptions([])
        self.stats = PipelineStats()
        self.keep_findings = False  # replay --findings-out: keep every finding for calibration
        # learning waits until an epoch is complete, so what a step sees never depends on batching
        self._pending: list[tuple[pl.DataFrame, pl.Series]] = []
        self.pending_epoch: int | None = None
        self._findings: list[pl.DataFrame] = []

    def sibling(self) -> Pipeline:
        """A fresh pipeline (empty windows, cold baselines, empty book) sharing this one's config,
        parser and read-only reference data (UA signatures, crawler ranges, browser releases)."""
        other = Pipeline(self.cfg, self.enrich.ua, self.parser, self.enrich.crawlers, self.enrich.browsers)
        other.set_exceptions(self._stored_exceptions)
        return other

    # -- entry points ------------------------------------------------------------------------------

    def process_lines(
        self,
        lines: Sequence[bytes],
        sources: Sequence[int] | None = None,
        offsets: Sequence[int] | None = None,
    ) -> BatchOutput:
        """Parse raw lines and run them through the pipeline.

        ``sources`` optionally names each line's source (its Kafka partition) for per-source watermarks.
        """
        return self.process_prepared(self.prepare_lines(lines, sources, offsets))

    def prepare_lines(
        self,
        lines: Sequence[bytes],
        sources: Sequence[int] | None = None,
        offsets: Sequence[int] | None = None,
        aggregate: bool = True,
    ) -> PreparedBatch:
        """The first half of :meth:`process_lines`: parse, enrich, aggregate per client and bucket. It
        reads and changes no window, baseline or verdict state, so ``replay`` runs it a batch ahead on
        a second thread. ``aggregate=False`` leaves the aggregation to the caller (per partition)."""
        result = self.parser.parse(lines)
        bad = {r.index for r in result.rejected}
        good_idx = np.delete(np.arange(len(lines), dtype=np.int64), sorted(bad))  # no per-line Python
        records = result.records.with_columns(_line=pl.Series(good_idx, dtype=pl.Int64))
        if sources is not None:
            records = records.with_columns(_src=pl.Series(np.asarray(sources, dtype=np.int64)[good_idx]))
        if offsets is not None:
            records = records.with_columns(_off=pl.Series(np.asarray(offsets, dtype=np.int64)[good_idx]))
        enriched = self.enrich(records) if records.height else None
        w = self.cfg.window
        agg = (
            aggregate_records(enriched, w.step_s, w.max_paths_per_bucket)
            if enriched is not None and aggregate
            else None
        )
        return PreparedBatch(lines, result.rejected, records.height, enriched, agg)

    def process_prepared(self, batch: PreparedBatch) -> BatchOutput:
        """The second half of :meth:`process_lines`, in input order: windows, judgement, verdicts."""
        out, closed = self.admit_prepared(batch)
        out.extend(self._evaluate(closed))
        return out

    def process_records(self, records: pl.DataFrame, lines: Sequence[bytes] | None = None) -> BatchOutput:
        """Run canonical records (optionally with a ``_line`` index into ``lines``) through the stages."""
        out = self._admit(self.enrich(records) if records.height else None, records.height, lines)
        out.extend(self._evaluate(self.window.close_ready()))
        return out

    def admit_prepared(self, batch: PreparedBatch) -> tuple[BatchOutput, pl.DataFrame]:
        """:meth:`process_prepared` without the judging: the batch enters the windows; returns the
        rejects (parse errors, late records) and the closed steps, to be judged by :func:`evaluate`
        (which judges several partitions' closed steps together)."""
        self.stats.lines += len(batch.lines) if batch.line_count is None else batch.line_count
        out = self._admit(batch.enriched, batch.records, batch.lines, batch.aggregated)
        out.rejected = list(batch.rejected) + out.rejected
        self._count_rejects(batch.rejected)
        return out, self.window.close_ready()

    def _admit(
        self,
        enriched: pl.DataFrame | None,
        records: int,
        lines: Sequence[bytes] | None,
        aggregated: pl.DataFrame | None = None,
    ) -> BatchOutput:
        out = BatchOutput()
        if enriched is not None:
            late = self.window.add(enriched, aggregated)
            early = self.window.early  # the next step, worked out before it closes
            if early is not None and self.pending_epoch is not None:
                if early.bucket // self.epoch_steps > self.pending_epoch:  # its epoch is complete:
                    self.learn_pending()  # learn now, not in the batch that makes that step decidable
            out.accepted = records - late.height
            self.stats.accepted += out.accepted
            if late.height:
                late_rej = self._late_rejects(late, lines)
                out.rejected += late_rej
                self._count_rejects(late_rej)
        return out

    def reconfigure(self, cfg: Config) -> list[str]:
        """Apply a new config (SIGHUP) keeping window state and learned baselines.

        Profiles, detector parameters, votes, tolerance levels and exceptions change at once; window
        geometry and the input format only on restart (returned as warnings, the old values stay).
        """
        warnings = []
        if cfg.window != self.cfg.window:
            warnings.append("window settings change only on restart")
            cfg = cfg.model_copy(update={"window": self.cfg.window})
        if cfg.input != self.cfg.input:
            warnings.append("input settings change only on restart")
            cfg = cfg.model_copy(update={"input": self.cfg.input})
        # build everything that can fail before anything changes: a refused reload changes nothing
        detectors = build_detectors(cfg.detection.detectors)
        exceptions = exception_list(cfg.policy, self._stored_exceptions)
        self.cfg = cfg
        self.detectors = detectors
        self.enrich = dataclasses.replace(
            self.enrich,
            sensitive_regex=endpoints.globs_to_regex(
                [g for p in cfg.profiles for g in p.sensitive_endpoints]
            ),
        )
        metrics = {d.baseline_metric: d.baseline_quantile() for d in detectors if d.baseline_metric}
        self.baselines.metrics = {**self.baselines.metrics, **metrics}
        self.book.detector_names = [d.name for d in detectors]
        self.book.bot_types = cfg.detection.bot_types
        self.book.exceptions = exceptions  # the new config's entries + those from the store
        return warnings

    def set_exceptions(self, stored: list[ExceptionEntry]) -> None:
        """The exception list: the config's entries plus ``stored`` ones (from the database)."""
        self._stored_exceptions = list(stored)
        self.book.exceptions = exception_list(self.cfg.policy, stored)

    def finish(self) -> BatchOutput:
        """End of input (replay): close and judge every open step, learn from the last epoch."""
        return finish([self])[0]

    @property
    def epoch_steps(self) -> int:
        return max(1, round(self.cfg.detection.baseline.epoch_s / self.cfg.window.step_s))

    def judged_until(self) -> int | None:
        """Window steps below this bucket are judged *and* learnt from: a restart re-judges from here."""
        if self.pending_epoch is not None:
            return self.pending_epoch * self.epoch_steps
        return self.window.closed_until

    def replay_from(self) -> dict[int, int]:
        """Per input partition, the lowest offset a restart must re-read (see ``judged_until``)."""
        until = self.judged_until()
        return self.window.replay_from(None if until is None else until - self.window.buckets_per_window + 1)

    # -- internals ---------------------------------------------------------------------------------

    def _evaluate(self, closed: pl.DataFrame) -> BatchOutput:
        """Judge closed steps, one baseline epoch at a time (what an epoch learns applies after it)."""
        return evaluate([(self, closed)])[0]

    def _epochs(self, closed: pl.DataFrame) -> list[tuple[int, pl.DataFrame]]:
        """Closed steps grouped by baseline epoch, in order."""
        if closed.height == 0:
            return []
        closed = closed.with_columns(_epoch=pl.col("bucket") // self.epoch_steps)
        return [
            (int(epoch), rows.drop("_epoch"))  # type: ignore[call-overload]
            for (epoch,), rows in sorted(closed.partition_by("_epoch", as_dict=True).items())
        ]

    def _take_judged(
        self, clients: pl.DataFrame, epoch: int, scored: pl.DataFrame, hits: pl.DataFrame, flagged: pl.Series
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """This pipeline's share of a judging pass (:func:`_judge_together`): verdicts from its book,
        and what its baselines will learn when the epoch is over."""
        self.stats.steps += clients["bucket"].n_unique()
        if self.keep_findings:
            keep = ["key", "ip", "bucket", "window_end"] + [
                c for c in scored.columns if "__" in c and not c.endswith("__detail")
            ]
            self._findings.append(scored.select(keep))
        verdicts, changes = self.book.decide(scored, hits, evidence_many=self._evidence_many)
        for v in verdicts:
            self.stats.verdicts_by_type[v["bot_type"]] = self.stats.verdicts_by_type.get(v["bot_type"], 0) + 1
        self._pending.append((learning_frame(scored), flagged))  # what learning reads
        self.pending_epoch = epoch
        return verdicts, changes

    def _evidence_many(self, wanted: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
        step = self.cfg.window.step_s
        return self.window.evidence_many([(k, round(s / step), round(e / step) - 1) for k, s, e in wanted])

    def findings_frame(self) -> pl.DataFrame:
        """Every finding kept since the start (``keep_findings``), one row per client and window step."""
        return pl.concat(self._findings, how="vertical_relaxed") if self._findings else pl.DataFrame()

    SNAPSHOT = "baselines"

    def restore(self, blob: bytes | None) -> bool:
        """Restore learned baselines from a snapshot (None: start cold). Returns whether it restored."""
        if not blob:
            return False
        try:
            self.baselines.restore(blob)
        except Exception as e:  # an incompatible snapshot (upgrade) must not stop the service
            log.warning("baseline snapshot not restored, starting cold: %s", e)
            return False
        return True

    def learn_pending(self) -> None:
        """Learn from the finished epoch (a seeded sample of its eligible clients)."""
        if self.pending_epoch is None:
            return
        epoch, pending = self.pending_epoch, self._pending
        self._pending, self.pending_epoch = [], None
        self.stats.epochs_learnt += 1
        scored = pl.concat([p for p, _ in pending], how="vertical_relaxed")
        # client level, decided once the epoch is complete (never on batch boundaries): a client that
        # was flagged at any step of the epoch, or is listed, teaches the baseline nothing
        flagged = scored.filter(pl.concat([f for _, f in pending]))["key"].unique()
        listed = pl.Series([k for (k, _bt) in self.book.active], dtype=pl.String)
        eligible = ~scored["key"].is_in(pl.concat([flagged, listed]).implode())
        learners = [d for d in self.detectors if d.baseline_metric]
        if learners:
            self.stats.learnt += self.baselines.learn(
                scored["host"],
                {d.baseline_metric: scored[f"{d.name}__value"] for d in learners if d.baseline_metric},
                eligible,
                epoch,
            )
        behavior = next((d for d in self.detectors if d.name == "suspicious_behavior"), None)
        if behavior is not None:
            self.baselines.learn_behavior(scored, eligible, epoch, behavior.params.min_requests)  # type: ignore[attr-defined]

    def _late_rejects(self, late: pl.DataFrame, lines: Sequence[bytes] | None) -> list[Rejected]:
        limit = (self.window.closed_until or 0) * self.cfg.window.step_s
        out = []
        idx = late["_line"].to_list() if "_line" in late.columns else [None] * late.height
        for i, ts in zip(idx, late["ts"].to_list(), strict=True):
            raw = lines[i] if (lines is not None and i is not None) else b""
            out.append(
                Rejected(
                    index=i if i is not None else -1,
                    raw=raw,
                    reason="late",
                    detail=f"event time {ts:.3f} is before the closed window edge {limit:.3f}",
                )
            )
        return out

    def _count_rejects(self, rejected: Sequence[Rejected]) -> None:
        for r in rejected:
            self.stats.rejected_by_reason[r.reason] = self.stats.rejected_by_reason.get(r.reason, 0) + 1


def evaluate(items: Sequence[tuple[Pipeline, pl.DataFrame]]) -> list[BatchOutput]:
    """Judge each pipeline's closed steps (one output per item, in order).

    Each pipeline goes through its steps one baseline epoch at a time (what an epoch learns applies
    after it, whatever the batching). The pipelines are independent (one per input partition), so
    their next epochs are judged *together*, in one vectorised pass over all their clients: a batch
    split over N partitions costs one pass of features, detectors and scoring instead of N. Each
    pipeline's own baselines, verdict book and windows still decide its share of the rows, so the
    results are exactly those of judging the pipelines one by one.
    """
    queues = [pipe._epochs(closed) for pipe, closed in items]
    outs = [BatchOutput() for _ in items]
    for k in range(max((len(q) for q in queues), default=0)):
        entries: list[tuple[int, Pipeline, pl.DataFrame, int]] = []
        for i, ((pipe, _), queue) in enumerate(zip(items, queues, strict=True)):
            if k < len(queue):
                epoch, rows = queue[k]
                if pipe.pending_epoch is not None and epoch > pipe.pending_epoch:
                    pipe.learn_pending()
                entries.append((i, pipe, rows, epoch))
        # pipelines with another config (a reload reached some, not yet all) are judged apart
        groups: dict[int, list[tuple[int, Pipeline, pl.DataFrame, int]]] = {}
        for e in entries:
            groups.setdefault(id(e[1].cfg), []).append(e)
        for group in groups.values():
            judged = _judge_together([(pipe, rows, epoch) for _, pipe, rows, epoch in group])
            for (i, *_), (verdicts, changes) in zip(group, judged, strict=True):
                outs[i].verdicts += verdicts
                outs[i].ip_changes += changes
    for (pipe, closed), out in zip(items, outs, strict=True):
        if closed.height:
            out.ip_changes += pipe.book.expire(float(closed["window_end"].max()))  # type: ignore[arg-type]
    return outs


def advance(items: Sequence[tuple[Pipeline, float]]) -> list[BatchOutput]:
    """The input is idle and each pipeline's event time has reached the time given with it: close the
    steps that ends (less the lateness), judge them together, expire list entries."""
    edges = [(pipe, event_time - pipe.cfg.window.lateness_s) for pipe, event_time in items]
    outs = evaluate([(pipe, pipe.window.close_ready(until=now)) for pipe, now in edges])
    for (pipe, now), out in zip(edges, outs, strict=True):
        out.ip_changes += pipe.book.expire(now)
    return outs


def finish(pipes: Sequence[Pipeline]) -> list[BatchOutput]:
    """End of input: close and judge every open step (together), then learn from the last epochs."""
    outs = evaluate([(pipe, pipe.window.flush()) for pipe in pipes])
    for pipe in pipes:
        pipe.learn_pending()
    return outs


def _judge_together(
    entries: Sequence[tuple[Pipeline, pl.DataFrame, int]],
) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Features, detectors and scoring over the closed steps of several pipelines sharing one config,
    stacked; then each pipeline's book decides on its own rows."""
    first = entries[0][0]
    cfg, w = first.cfg, first.cfg.window
    sizes = [rows.height for _, rows, _ in entries]
    clients = (
        entries[0][1] if len(entries) == 1 else pl.concat([r for _, r, _ in entries], how="vertical_relaxed")
    )
    feats = client_features(clients, w.length_s)
    baselines = (
        first.baselines
        if len(entries) == 1
        else _StackedBaselines([p.baselines for p, _, _ in entries], sizes)
    )
    ctx = DetectContext(step_s=w.step_s, window_s=w.length_s, baselines=baselines)
    parts = [feats]
    for d in first.detectors:
        parts.append(check_findings(d.name, d.evaluate(feats, ctx), feats.height, prefix=f"{d.name}__"))
    scored = confidence_columns(pl.concat(parts, how="horizontal"), cfg.detection.bot_types)
    hits = detections(scored, cfg)
    any_fired = pl.any_horizontal([pl.col(f"{d.name}__fired") for d in first.detectors])
    flagged = scored.select(any_fired.alias("f"))["f"]  # a detector fired, or a verdict was reached:
    flagged = flagged | pl.Series(range(scored.height)).is_in(hits["row"].unique().implode())  # no learning
    if len(entries) == 1:
        pipe, rows, epoch = entries[0]
        return [pipe._take_judged(rows, epoch, scored, hits, flagged)]
    out = []
    start = 0
    for (pipe, rows, epoch), n in zip(entries, sizes, strict=True):
        mine = hits.filter(pl.col("row").is_between(start, start + n - 1))
        mine = mine.with_columns((pl.col("row") - start).cast(hits.schema["row"]))
        out.append(pipe._take_judged(rows, epoch, scored.slice(start, n), mine, flagged.slice(start, n)))
        start += n
    return out


class _StackedBaselines(Baselines):
    """Several pipelines' baselines over one feature frame that stacks their rows (``sizes`` rows
    each, in order): every question goes to the baselines of the rows it is about."""

    def __init__(self, each: Sequence[Baselines], sizes: Sequence[int]) -> None:
        self.each, self.sizes = list(each), list(sizes)

    def _slices(self, n: int) -> list[tuple[int, int]]:
        if n != sum(self.sizes):
            raise ValueError(f"baselines asked about {n} rows, the judged frame has {sum(self.sizes)}")
        starts = np.cumsum([0, *self.sizes[:-1]]).tolist()
        return list(zip(starts, self.sizes, strict=True))

    def lookup(self, metric: str, apps: pl.Series) -> pl.Series:
        return pl.concat(
            [
                b.lookup(metric, apps.slice(s, n))
                for b, (s, n) in zip(self.each, self._slices(apps.len()), strict=True)
            ]
        )

    def score(self, model: str, features: pl.DataFrame, eligible: pl.Series) -> pl.Series:
        return pl.concat(
            [
                b.score(model, features.slice(s, n), eligible.slice(s, n))
                for b, (s, n) in zip(self.each, self._slices(features.height), strict=True)
            ]
        )


def build_pipeline(cfg: Config) -> Pipeline:
    """The production pipeline: UA signatures (plus ``detection.signatures_file``), published crawler
    ranges and browser release data. Raises ValueError naming the config key when something is off."""
    from pathlib import Path

    from abuse_stream.browsers import BrowserReleases
    from abuse_stream.crawlers import CrawlerVerifier
    from abuse_stream.detectors.ua_signatures import UASignatures

    extra = Path(cfg.detection.signatures_file) if cfg.detection.signatures_file else None
    try:
        signatures = UASignatures.load(extra)
    except (OSError, ValueError) as e:
        raise ValueError(f"config key 'detection.signatures_file': {e}") from None
    return Pipeline(cfg, signatures, crawlers=CrawlerVerifier(), browsers=BrowserReleases.load())
