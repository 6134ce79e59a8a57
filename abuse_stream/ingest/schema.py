"""The canonical record every parser produces (contracts §1) and the shape of a rejected line.

Parsers hand the next stage a polars DataFrame with exactly :data:`CANONICAL_SCHEMA`, one row per
accepted input line, in input order. Lines that cannot become such a row are :class:`Rejected` with a
machine-readable ``reason`` (one of :data:`REASONS`) and a human ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

#: column -> dtype of a parsed batch. ``ts`` is event time in epoch seconds (UTC).
CANONICAL_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Float64(),
    "ip": pl.String(),
    "method": pl.String(),
    "path": pl.String(),
    "status": pl.Int32(),
    "host": pl.String(),
    "bytes": pl.Int64(),
    "ua": pl.String(),
    "referer": pl.String(),
    "latency_ms": pl.Float64(),
    "session": pl.String(),
    "xff": pl.String(),
}

REQUIRED_FIELDS: tuple[str, ...] = ("ts", "ip", "method", "path", "status")

#: reasons a line is rejected; metrics and dead letters use these names.
REASONS: tuple[str, ...] = (
    "empty",  # blank line
    "invalid_utf8",  # bytes that are not UTF-8
    "too_long",  # longer than the configured maximum line length
    "invalid_json",  # looked like JSON (starts with '{') but does not parse
    "not_object",  # valid JSON but not an object
    "missing_field",  # a required field is absent or null (detail names it)
    "bad_timestamp",  # ts unparseable or outside the plausible range
    "bad_ip",  # not an IPv4/IPv6 address
    "bad_status",  # not an integer 100..599
    "bad_method",  # empty or not a token
    "bad_field",  # an optional field has an unusable value (detail names it)
    "unrecognised_format",  # text that matches none of the configured formats
    "late",  # valid, but older than the window's allowed lateness (set by the window stage)
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One input line that did not become a record.

    ``index`` is the line's position in the batch handed to the parser; ``raw`` the original bytes
    (possibly truncated by the sink when reporting).
    """

    index: int
    raw: bytes
    reason: str
    detail: str = ""


def empty_records() -> pl.DataFrame:
    """A zero-row frame with the canonical schema."""
    return pl.DataFrame(schema=CANONICAL_SCHEMA)
