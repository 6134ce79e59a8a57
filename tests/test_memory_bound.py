"""Bounded state under a spoofed flood: the client cap holds, evictions are counted, and a real bot
inside the flood is still detected (the memory figures for 1M clients are in the benchmark)."""

from __future__ import annotations

import numpy as np
import polars as pl

from abuse_stream.config import build_config
from abuse_stream.ingest.schema import CANONICAL_SCHEMA
from abuse_stream.pipeline import Pipeline
from tests.helpers import T0, TinyClassifier


def test_a_spoofed_flood_of_distinct_ips_stays_under_the_cap_and_the_bot_inside_is_still_found():
    n = 200_000
    rng = np.random.default_rng(3)
    ips = [f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 256, size=(n, 3))]
    flood = pl.DataFrame(
        {
            "ts": T0 + np.sort(rng.uniform(0, 120, n)),
            "ip": ips,
            "method": "GET",
            "path": "/",
            "status": 200,
            "host": "app",
            "bytes": 10,
            "ua": "Mozilla/5.0",
            "referer": None,
            "latency_ms": 1.0,
            "session": None,
            "xff": None,
        },
        schema=CANONICAL_SCHEMA,
    )
    bot = pl.DataFrame(
        {
            "ts": [T0 + 30 + i for i in range(60)],
            "ip": ["203.0.113.66"] * 60,
            "method": "GET",
            "path": [f"/.env?{i}" for i in range(60)],
            "status": 404,
            "host": "app",
            "bytes": 10,
            "ua": "scanner/1.0",
            "referer": None,
            "latency_ms": 1.0,
            "session": None,
            "xff": None,
        },
        schema=CANONICAL_SCHEMA,
    )
    traffic = pl.concat([flood, bot]).sort("ts")
    cap = 20_000
    p = Pipeline(build_config({"window": {"max_clients": cap}}), TinyClassifier())
    verdicts = []
    peak = 0
    for chunk in traffic.iter_slices(20_000):
        verdicts += p.process_records(chunk).verdicts
        peak = max(peak, p.window.tracked_clients())
    verdicts += p.finish().verdicts
    assert peak <= cap + 20_000  # at most one batch of new clients above the cap before eviction
    assert p.window.tracked_clients() <= cap
    assert p.window.stats.evicted > n - 2 * cap
    assert ("203.0.113.66", "security_crawlers") in {(v["ip"], v["bot_type"]) for v in verdicts}
