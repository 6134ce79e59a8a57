"""Test helpers: build canonical records from ASCII timelines, a tiny UA classifier."""

from __future__ import annotations

from typing import Any

import polars as pl

from abuse_stream.features import enrich
from abuse_stream.ingest.schema import CANONICAL_SCHEMA

T0 = 1_700_000_000.0  # a round event time (2023-11-14T22:13:20Z), multiple of 10 s


class TinyClassifier:
    """UA 'scanner*' -> 6, '' / None -> 5, anything else -> 0."""

    def classify_series(self, uas: pl.Series) -> pl.DataFrame:
        def cls(u: str | None) -> int:
            if not u:
                return 5
            return 6 if u.startswith("scanner") else 0

        vals = uas.to_list()
        return pl.DataFrame(
            {
                "ua": uas,
                "ua_class": pl.Series([cls(u) for u in vals], dtype=pl.UInt8),
                "ua_signature": pl.Series([None] * len(vals), dtype=pl.String),
            }
        )


def record(ts: float, ip: str = "1.1.1.1", **kw: Any) -> dict[str, Any]:
    base = {
        "ts": ts,
        "ip": ip,
        "method": "GET",
        "path": "/",
        "status": 200,
        "host": "app.example",
        "bytes": 100,
        "ua": "Mozilla/5.0",
        "referer": None,
        "latency_ms": 10.0,
        "session": None,
        "xff": None,
    }
    base.update(kw)
    return base


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return (
        pl.DataFrame(rows, schema=CANONICAL_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=CANONICAL_SCHEMA)
    )


def timeline(spec: dict[str, str], t0: float = T0, unit: float = 1.0, **kw: Any) -> pl.DataFrame:
    """Records from ASCII timelines: one char per ``unit`` seconds, 'x' = one request, digit = that many.

    >>> timeline({"1.1.1.1": "x..x", "2.2.2.2": ".2.."}).height
    4
    """
    rows = []
    for ip, line in spec.items():
        for i, ch in enumerate(line):
            n = 1 if ch == "x" else int(ch) if ch.isdigit() else 0
            for j in range(n):
                rows.append(record(t0 + i * unit + j * unit / (n + 1), ip, **kw))
    rows.sort(key=lambda r: r["ts"])
    return frame(rows)


def enriched(records: pl.DataFrame, key: str = "ip") -> pl.DataFrame:
    return enrich(records, key, TinyClassifier())


VERDICT_FIELDS = {
    "verdict_id",
    "ip",
    "session",
    "bot_type",
    "confidence",
    "action",
    "profile",
    "tolerance",
    "detected_at",
    "expires_at",
    "window",
    "detectors",
    "application",
}  # contracts §3
DETECTOR_FIELDS = {"name", "fired", "value", "baseline", "threshold", "votes"}


def check_verdict(v: dict[str, Any]) -> None:
    """A verdict has every contract field, sane values, its detectors' findings and its evidence."""
    assert VERDICT_FIELDS <= set(v), v
    assert 0 < v["confidence"] <= 1 and v["action"] in {"denylist", "graylist", "monitor"}
    assert {"start", "end", "requests"} <= set(v["window"])
    assert v["detectors"] and all(DETECTOR_FIELDS <= set(d) for d in v["detectors"])
    ev = v["evidence"]
    assert ev["requests"] > 0 and ev["top_endpoints"] and ev["first_request"] <= ev["last_request"]
