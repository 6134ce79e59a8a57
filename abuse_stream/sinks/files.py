"""File sinks for ``replay``: verdicts as JSON lines (schema of contracts §3) and a rejected-lines report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from abuse_stream.ingest.schema import Rejected
from abuse_stream.sinks.envelopes import dead_letter, dumps


class JsonLinesSink:
    """Append JSON objects to a file, one per line (``-`` = stdout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._fh: IO[bytes] | None = None
        self.written = 0

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            if self.path == "-":
                import sys

                self._fh = sys.stdout.buffer
            else:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        return self._fh

    def add(self, objs: Sequence[Mapping[str, Any]]) -> None:
        fh = self._open()
        for o in objs:
            fh.write(dumps(o) + b"\n")
        self.written += len(objs)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        fh = self._open()  # creates the file even when nothing was written: an empty result is a result
        fh.flush()
        if self.path != "-":
            fh.close()
        self._fh = None


class RejectedReport(JsonLinesSink):
    """``<name>.rejected``: one JSON line per rejected input line (file, line number, reason, raw)."""

    def add_rejected(self, rejected: Sequence[Rejected], file: str, first_line_no: int) -> None:
        self.add([dead_letter(r, {"file": file, "line": first_line_no + r.index}, None) for r in rejected])
