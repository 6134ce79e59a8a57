"""replay parses and enriches a batch ahead on a worker thread: same batches, same order, same errors."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import pytest

from abuse_stream.config import build_config
from abuse_stream.ingest.files import InputError, read_batches
from abuse_stream.pipeline import build_pipeline
from abuse_stream.replay import _prepared_ahead


def _lines(n: int) -> list[bytes]:
    return [
        b'{"ts": %d, "ip": "10.0.%d.%d", "method": "GET", "path": "/p/%d", "status": 200}\n'
        % (1_700_000_000 + i, i // 250 % 250, i % 250, i)
        for i in range(n)
    ]


def test_batches_come_in_input_order_and_match_the_sequential_result(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(_lines(5_000)))
    p = build_pipeline(build_config({"input": {"format": "json"}}))
    got = list(_prepared_ahead(p, [str(path)], 700))
    expected = list(read_batches([str(path)], 700))
    assert [b.first_line for b, _ in got] == [b.first_line for b in expected]
    for (batch, prepared), seq in zip(got, expected, strict=True):
        assert prepared.lines == batch.lines == seq.lines
        same = p.prepare_lines(seq.lines)
        assert prepared.records == same.records and prepared.enriched is not None
        assert prepared.enriched.equals(same.enriched)


def test_an_unreadable_file_fails_after_the_batches_before_it(tmp_path: Path) -> None:
    good, bad = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    good.write_bytes(b"".join(_lines(300)))
    blob = gzip.compress(b"".join(_lines(300)))
    bad.write_bytes(blob[: len(blob) // 2])
    p = build_pipeline(build_config({"input": {"format": "json"}}))
    seen = []
    with pytest.raises(InputError):
        for batch, _ in _prepared_ahead(p, [str(good), str(bad)], 100):
            seen.append(batch.file)
    assert seen[:3] == [str(good)] * 3


def test_stopping_early_stops_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(_lines(3_000)))
    p = build_pipeline(build_config({"input": {"format": "json"}}))
    before = threading.active_count()
    it = _prepared_ahead(p, [str(path)], 100)
    next(it)
    it.close()  # what a consumer that raises does
    assert threading.active_count() == before
