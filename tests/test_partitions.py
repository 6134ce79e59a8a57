"""State per input partition: one pipeline holding every partition yields exactly what pipelines
holding a subset each yield between them, and a partition's verdict book survives a handover."""

from __future__ import annotations

import json
import zlib

from abuse_stream.config import build_config
from abuse_stream.partitions import PartitionedPipeline
from abuse_stream.pipeline import Pipeline
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


def _run(pp: PartitionedPipeline, size: int, only: set[int] | None = None) -> set[str]:
    ids = set()
    for lines, parts, offsets in _batches(size, only):
        ids |= {v["verdict_id"] for v in pp.process_prepared(pp.prepare(lines, parts, offsets)).verdicts}
    return ids | {v["verdict_id"] for v in pp.finish().verdicts}


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
