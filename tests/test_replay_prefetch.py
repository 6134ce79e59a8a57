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


def test_batches_hold_batch_lines_lines_however_long_the_lines(tmp_path: Path, monkeypatch) -> None:
    """Lines are read a few MB at a time; a batch is still ``batch_lines`` lines (the pipeline pays
    its per-batch costs per batch: 360-byte JSON lines once made 33k-line batches of 100k asked)."""
    import abuse_stream.ingest.files as files

    monkeypatch.setattr(files, "READ_BYTES", 50_000)  # ~50 lines of ~1 KB per read: many reads a batch
    long_lines = [line.rstrip(b"\n") + b" " * 900 + b"\n" for line in _lines(2_345)]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    a.write_bytes(b"".join(long_lines))
    b.write_bytes(gzip.compress(b"".join(_lines(250))))
    got = list(read_batches([str(a), str(b)], 700))
    assert [(x.file, x.first_line, len(x.lines)) for x in got] == [
        (str(a), 1, 700),
        (str(a), 701, 700),
        (str(a), 1401, 700),
        (str(a), 2101, 245),
        (str(b), 1, 250),
    ]
    assert [line for x in got[:4] for line in x.lines] == long_lines


def test_lines_read_before_a_damaged_part_come_before_the_error(tmp_path: Path, monkeypatch) -> None:
    import abuse_stream.ingest.files as files

    monkeypatch.setattr(files, "READ_BYTES", 2_000)
    bad = tmp_path / "b.jsonl.gz"
    blob = gzip.compress(b"".join(_lines(3_000)))
    bad.write_bytes(blob[: len(blob) // 2])
    got: list[int] = []
    with pytest.raises(InputError, match=r"unreadable after line (\d+)") as err:
        for batch in read_batches([str(bad)], 100_000):
            got.append(len(batch.lines))
    assert len(got) == 1 and got[0] > 100  # read before the damage, handed over, then the error
    assert f"after line {got[0]}:" in str(err.value)
