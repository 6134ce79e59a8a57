"""File input for ``replay``: plain or gzip files (sniffed by magic bytes, not by name) or stdin (``-``),
read in batches of lines without decoding (parsers take bytes)."""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class InputError(RuntimeError):
    """The input cannot be read at all (missing file, unreadable, corrupt compression)."""


@dataclass(frozen=True)
class FileBatch:
    file: str
    first_line: int  # 1-based line number of lines[0] in file
    lines: list[bytes]
    bytes_read: int  # bytes of the (compressed) file consumed so far, for progress


def _open(path: str) -> tuple[IO[bytes], IO[bytes]]:
    """Return (reader, raw handle for progress)."""
    if path == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        p = Path(path)
        if not p.exists():
            raise InputError(f"input file not found: {path}")
        if p.is_dir():
            raise InputError(f"input is a directory, not a file: {path}")
        try:
            raw = open(p, "rb")  # noqa: SIM115 - closed by read_batches
        except OSError as e:
            raise InputError(f"cannot open {path}: {e.strerror or e}") from None
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
    return raw, raw


def total_size(paths: Sequence[str]) -> int | None:
    """Sum of file sizes for a progress bar (None when reading stdin)."""
    if any(p == "-" for p in paths):
        return None
    return sum(Path(p).stat().st_size for p in paths if Path(p).is_file())


#: bytes asked of one ``readlines`` call: a bound on what is read ahead of a batch, whatever its lines
READ_BYTES = 8 << 20


def read_batches(paths: Sequence[str], batch_lines: int = 100_000) -> Iterator[FileBatch]:
    """Yield batches of ``batch_lines`` raw lines per file (the last one of a file: what is left), in
    order. Lines are read a few MB at a time, so a batch holds as many lines however long they are
    (the per-batch costs of the pipeline are paid per ``batch_lines``, not per few MB)."""
    done_bytes = 0
    for path in paths:
        reader, raw = _open(path)
        line_no = 1
        pending: list[bytes] = []
        try:
            while True:
                try:
                    lines = reader.readlines(READ_BYTES)
                except (OSError, EOFError, zlib.error) as e:
                    if pending:  # what was read before the damage is processed first
                        yield FileBatch(path, line_no, pending, done_bytes)
                        line_no += len(pending)
                    raise InputError(f"{path}: unreadable after line {line_no - 1}: {e}") from None
                pending += lines
                while len(pending) >= batch_lines or (pending and not lines):
                    chunk, pending = pending[:batch_lines], pending[batch_lines:]
                    pos = raw.tell() if raw.seekable() else 0
                    yield FileBatch(path, line_no, chunk, done_bytes + pos)
                    line_no += len(chunk)
                if not lines:
                    break
        finally:
            if raw is not sys.stdin.buffer:
                if raw.seekable():
                    done_bytes += raw.tell()
                reader.close()
                raw.close()
