"""The one JSON encoding of every record that leaves (Kafka topics, files, the store's JSON columns)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from abuse_stream.sinks.envelopes import dumps


def test_compact_utf8_json_that_reads_back_as_the_record():
    record = {
        "ip": "203.0.113.7",
        "ua": 'Mozilla/5.0 «test» \u2028 \x01 "quoted" \\ back',
        "confidence": 0.30000000000000004,
        "tiny": 1.5e-05,
        "detectors": [{"name": "probes", "fired": True, "value": 3, "baseline": None}],
    }
    raw = dumps(record)
    assert isinstance(raw, bytes) and b" " not in raw.replace(b"Mozilla/5.0 ", b"")[:20]
    assert "«test»".encode() in raw  # not \u-escaped
    assert json.loads(raw) == record


def test_numpy_scalars_are_plain_numbers_and_non_finite_floats_null():
    assert json.loads(dumps({"a": np.float64(1.5), "b": np.int64(3), "c": float("nan")})) == {
        "a": 1.5,
        "b": 3,
        "c": None,
    }
    with pytest.raises(TypeError, match="cannot encode object"):
        dumps({"x": object()})
