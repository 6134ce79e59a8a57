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


def read_batches(paths: Sequence[str], batch_lines: int = 100_000) -> Iterator[FileBatch]:
    """Yield batches of at most ``batch_lines`` raw lines per file, in order."""
    done_bytes = 0
    for path in paths:
        reader, raw = _open(path)
        line_no = 1
        try:
            while True:
                try:
                    lines = reader.readlines(batch_lines * 120)
                except (OSError, EOFError, zlib.error) as e:
                    raise InputError(f"{path}: unreadable after line {line_no - 1}: {e}") from None
                if not lines:
                    break
                while lines:
                    chunk, lines = lines[:batch_lines], lines[batch_lines:]
                    pos = raw.tell() if raw.seekable() else 0
                    yield FileBatch(path, line_no, chunk, done_bytes + pos)
                    line_no += len(chunk)
        finally:
            if raw is not sys.stdin.buffer:
                if raw.seekable():
                    done_bytes += raw.tell()
                reader.close()
                raw.close()
