"""Baseline poisoning: a bot that ramps its rate up slowly over hours must not teach the baseline
that its rate is normal (the baseline learns only from clients no detector flagged, and one client
is one voice among many in a quantile)."""

from __future__ import annotations

import numpy as np
import polars as pl

from abuse_stream.config import build_config
from abuse_stream.ingest.schema import CANONICAL_SCHEMA
from abuse_stream.pipeline import Pipeline
from tests.helpers import T0, TinyClassifier

HOURS = 3


def _requests(ip: str, ts: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame(
        {
            "ts": ts,
            "ip": ip,
            "method": "GET",
            "path": [f"/p/{x}" for x in rng.integers(0, 50, n)],
            "status": 200,
            "host": "app",
            "bytes": 100,
            "ua": "Mozilla/5.0",
            "referer": None,
            "latency_ms": 5.0,
            "session": None,
            "xff": None,
        },
        schema=CANONICAL_SCHEMA,
    )


def test_a_slow_ramp_does_not_drag_the_rate_baseline_up_enough_to_hide():
    rng = np.random.default_rng(11)
    span = HOURS * 3600.0
    parts = []
    for h in range(150):  # people: ~0.05-0.3 req/s in bursty sessions
        starts = np.sort(rng.uniform(0, span, 40))
        ts = np.concatenate([s + np.cumsum(rng.exponential(4.0, 20)) for s in starts])
        parts.append(_requests(f"198.51.100.{h}", T0 + np.sort(ts[ts < span]), rng))
    # the bot: from 0.2 req/s up to 8 req/s, linearly over the whole period
    t, bot_ts = 0.0, []
    while t < span:
        rate = 0.2 + (8.0 - 0.2) * t / span
        t += 1.0 / rate
        bot_ts.append(t)
    parts.append(_requests("203.0.113.99", T0 + np.array(bot_ts), rng))
    traffic = pl.concat(parts).sort("ts")
    p = Pipeline(build_config({"detection": {"baseline": {"warmup_samples": 200}}}), TinyClassifier())
    verdicts = []
    for chunk in traffic.iter_slices(50_000):
        verdicts += p.process_records(chunk).verdicts
    verdicts += p.finish().verdicts
    learnt = p.baselines.value("sustained_rps", "app")
    assert learnt is not None and learnt < 0.5, learnt  # still the people's normal, not the bot's 8/s
    hits = [v for v in verdicts if v["ip"] == "203.0.113.99" and v["bot_type"] == "api_abuse"]
    assert hits, "the ramping bot was never caught"
    rate = next(d for d in hits[0]["detectors"] if d["name"] == "request_rate")
    assert rate["fired"] and rate["value"] < 8.0  # caught on the way up, not only at the top
    assert not [v for v in verdicts if v["ip"].startswith("198.51.100.") and v["action"] != "monitor"]
