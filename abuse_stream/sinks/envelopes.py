"""JSON bodies shared by the Kafka and file sinks (one encoding, whichever way a record leaves)."""

from __future__ import annotations

import base64
import json
from typing import Any

from abuse_stream.ingest.schema import Rejected

MAX_RAW = 16384  # bytes of a rejected line kept in a dead letter


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def dead_letter(r: Rejected, source: dict[str, Any], rejected_at: str | None) -> dict[str, Any]:
    """A dead-letter record: why, where from, and the raw line (text, or base64 if not UTF-8)."""
    raw = r.raw[:MAX_RAW]
    body: dict[str, Any] = {
        "reason": r.reason,
        "detail": r.detail,
        **source,
        "rejected_at": rejected_at,
        "truncated": len(r.raw) > MAX_RAW,
    }
    try:
        body["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        body["raw"] = None
        body["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return body


def ip_list_key(change: dict[str, Any]) -> bytes:
    return f"{change['list']}:{change['value']}".encode()
