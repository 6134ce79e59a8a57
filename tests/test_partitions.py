"""State per input partition: one pipeline holding every partition yields exactly what pipelines
holding a subset each yield between them, and a partition's verdict book survives a handover."""

from __future__ import annotations

import json
import zlib

from abuse_stream.config import build_config
from abuse_stream.partitions import PartitionedPipeline
from abuse_stream.pipeline import BatchOutput, Pipeline
from abuse_stream.simulate import SCENARIOS, generate
from tests.helpers import TinyClassifier

CFG = build_config(
    {
        "window": {"length_s": 60, "step_s": 10, "lateness_s": 5},
        "detection": {"baseline": {"warmup_samples": 50, "epoch_s": 60}},
    }
)


def _batches(size: int, only: set[int] | None = None):
    """The tiny scenario as Kafka would deliver it: keyed by IP over 4 partitions, in batches."""
    rows = generate(SCENARIOS["tiny"]).records.sort("ts").to_dicts()
    msgs = [(zlib.crc32(r["ip"].encode()) % 4, json.dumps(r).encode()) for r in rows]
    msgs = [(p, i, v) for i, (p, v) in enumerate(msgs) if only is None or p in only]
    for i in range(0, len(msgs), size):
        part = msgs[i : i + size]
        yield [v for _, _, v in part], [p for p, _, _ in part], [o for _, o, _ in part]


def _outputs(pp: PartitionedPipeline, size: int, only: set[int] | None = None) -> BatchOutput:
    """Everything ``pp`` yields for the (selected partitions of the) tiny scenario, then ``finish``."""
    total = BatchOutput()
    for lines, parts, offsets in _batches(size, only):
        total.extend(pp.process_prepared(pp.prepare(lines, parts, offsets)))
    total.extend(pp.finish())
    return total


def _run(pp: PartitionedPipeline, size: int, only: set[int] | None = None) -> set[str]:
    return {v["verdict_id"] for v in _outputs(pp, size, only).verdicts}


def test_one_owner_of_all_partitions_yields_what_two_owners_yield_between_them():
    alone = _run(PartitionedPipeline(Pipeline(CFG, TinyClassifier())), 700)
    first = _run(PartitionedPipeline(Pipeline(CFG, TinyClassifier())), 300, {0, 1})
    second = _run(PartitionedPipeline(Pipeline(CFG, TinyClassifier())), 1100, {2, 3})
    assert alone and first and second
    assert first | second == alone and not first & second


def test_a_partitions_verdict_book_goes_on_from_its_snapshot():
    pp = PartitionedPipeline(Pipeline(CFG, TinyClassifier()))
    _run(pp, 500)
    books = {p: pipe.book for p, pipe in pp.parts.items()}
    assert any(b.entries for b in books.values())
    for p, book in books.items():
        fresh = PartitionedPipeline(Pipeline(CFG, TinyClassifier())).add(p).book
        fresh.restore(book.snapshot())
        assert fresh.active == book.active and fresh.entries == book.entries
        assert fresh.snapshot() == book.snapshot() and fresh.version[2:] == book.version[2:]


def _canon(items: list[dict]) -> list[str]:
    return sorted(json.dumps(x, sort_keys=True, default=str) for x in items)


def test_judging_partitions_together_equals_judging_each_alone():
    """A batch's closed steps are judged for all partitions in one pass (stacked rows, each
    partition's own baselines and book): every verdict, list change, statistic and learnt baseline is
    what the partition yields when it is judged on its own."""
    together = PartitionedPipeline(Pipeline(CFG, TinyClassifier()))
    got = _outputs(together, 400)
    want = BatchOutput()
    for p in range(4):
        alone = PartitionedPipeline(Pipeline(CFG, TinyClassifier()))
        want.extend(_outputs(alone, 400, {p}))
        mine, theirs = together.parts[p], alone.parts[p]
        assert mine.stats == theirs.stats
        assert mine.baselines.snapshot() == theirs.baselines.snapshot()
        assert mine.book.snapshot() == theirs.book.snapshot()
    assert any(together.parts[p].stats.epochs_learnt > 1 for p in range(4))  # baselines were in play
    assert got.verdicts and _canon(got.verdicts) == _canon(want.verdicts)
    assert _canon(got.ip_changes) == _canon(want.ip_changes)


def test_stacked_baselines_refuse_rows_they_do_not_cover():
    import polars as pl
    import pytest

    from abuse_stream.pipeline import _StackedBaselines

    pp = PartitionedPipeline(Pipeline(CFG, TinyClassifier()))
    stacked = _StackedBaselines([pp.add(0).baselines, pp.add(1).baselines], [2, 3])
    apps = pl.Series(["a", "b", "a", "c", "a"])
    assert stacked.lookup("sustained_rps", apps).len() == 5
    with pytest.raises(ValueError, match="about 4 rows, the judged frame has 5"):
        stacked.lookup("sustained_rps", apps.head(4))


def test_live_a_complete_epoch_is_learnt_when_the_next_step_is_worked_out_early(monkeypatch):
    """Record by record, a partition learns from a finished epoch while the first step of the next
    one is worked out ahead of its close, not in the batch that makes that step decidable (learning
    would add to its decision latency); what it learns and decides does not change."""
    import abuse_stream.partitions as partitions

    where: list[str] = []
    phase = {"now": "outside"}

    def watched(fn, name):
        def run(*args, **kwargs):
            before, phase["now"] = phase["now"], name
            try:
                return fn(*args, **kwargs)
            finally:
                phase["now"] = before

        return run

    learn = Pipeline.learn_pending

    def learning(self):
        if self.pending_epoch is not None:
            where.append(phase["now"])
        learn(self)

    monkeypatch.setattr(Pipeline, "learn_pending", learning)
    monkeypatch.setattr(partitions, "evaluate", watched(partitions.evaluate, "judging"))
    monkeypatch.setattr(Pipeline, "admit_prepared", watched(Pipeline.admit_prepared, "admitting"))
    got = _outputs(PartitionedPipeline(Pipeline(CFG, TinyClassifier())), 40)
    assert "admitting" in where, where
    assert _canon(got.verdicts) == _canon(
        _outputs(PartitionedPipeline(Pipeline(CFG, TinyClassifier())), 10_000).verdicts
    )
