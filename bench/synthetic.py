"""Memory and scaling: replay of synthetic traffic with an exact number of clients, all active within
one window, measured in a fresh process per size (so resident memory does not carry over).

    python -m bench.synthetic --clients 100000 --lines 1000000      # prints one JSON object

The parent (``bench.run``) writes the traffic file first (cached in bench/out/), so generating it
does not count towards this process' peak RSS. Each client sends ``lines / clients`` requests (+-1)
at uniformly random times within ``span_s`` (default: one window, 300 s) with a browser UA, mostly
200s on product pages: ordinary traffic that every detector has to judge, not a pathological case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import OUT, MiB, peak_rss_self, rss_now

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/153.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:155.0) Gecko/20100101 Firefox/155.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/153.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/153.0.0.0 Safari/537.36 Edg/153.0.0.0",
]


def synthetic_file(clients: int, lines: int, span_s: float = 300.0, seed: int = 5) -> Path:
    """JSON lines: ``lines`` requests of exactly ``clients`` distinct IPs within ``span_s`` (cached)."""
    import numpy as np
    import polars as pl

    if lines < clients:
        raise ValueError(f"{clients:,} clients need at least as many lines (got {lines:,})")
    OUT.mkdir(exist_ok=True)
    path = OUT / f"synthetic-c{clients}-l{lines}-s{int(span_s)}.jsonl"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    client = rng.permutation(np.arange(lines, dtype=np.int64) % clients)  # every client at least once
    ts = np.sort(T0 + rng.uniform(0.0, span_s, lines))
    n = 10 << 24  # 10.0.0.0/8: up to 16M distinct clients
    ipn = client + n
    kind = rng.choice(5, lines, p=[0.45, 0.2, 0.15, 0.1, 0.1])
    pid = rng.integers(10_001, 34_000, lines)
    prefix = np.array(["/products/", "/api/v1/products/", "/c/shoes?page=", "/search?q=boots+", "/cart?x="])
    df = pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Float64),
            "ipn": ipn,
            "method": np.where(rng.random(lines) < 0.9, "GET", "POST"),
            "prefix": prefix[kind],
            "pid": pid,
            "status": np.where(rng.random(lines) < 0.95, 200, 404).astype(np.int32),
            "host": np.where(kind == 1, "api.example.com", "shop.example.com"),
            "bytes": rng.integers(500, 60_000, lines),
            "ua": np.array(UAS)[client % len(UAS)],
            "latency_ms": np.round(rng.lognormal(4.0, 0.5, lines), 3),
        }
    )
    ip = pl.concat_str(
        [(pl.col("ipn") // (1 << s) % 256).cast(pl.String) for s in (24, 16, 8, 0)], separator="."
    )
    out = df.select(
        ts=pl.from_epoch((pl.col("ts") * 1000).round().cast(pl.Int64), time_unit="ms").dt.strftime(
            "%Y-%m-%dT%H:%M:%S%.3fZ"
        ),
        ip=ip,
        method="method",
        path=pl.concat_str([pl.col("prefix"), pl.col("pid").cast(pl.String)]),
        status="status",
        host="host",
        bytes="bytes",
        ua="ua",
        latency_ms="latency_ms",
    )
    tmp = path.with_suffix(".tmp")
    out.write_ndjson(tmp)
    tmp.replace(path)
    return path


def measure(path: Path, clients: int, max_clients: int | None) -> dict[str, float | int]:
    """Replay ``path`` with every detector on; lines/s, RSS before, at the peak and after."""
    from abuse_stream.cli import tune_gc
    from abuse_stream.config import build_config
    from abuse_stream.pipeline import build_pipeline
    from abuse_stream.replay import replay

    cap = max_clients or max(1_000_000, int(clients * 1.1))
    cfg = build_config({"input": {"format": "json"}, "window": {"max_clients": cap}})
    p = build_pipeline(cfg)
    tune_gc()  # as the CLI does once the pipeline is built
    judged = [0]  # client-steps judged: rows handed to the detectors (bench-only instrumentation)
    take = p._take_judged

    def counting(clients: Any, *rest: Any) -> Any:
        judged[0] += clients.height
        return take(clients, *rest)

    p._take_judged = counting  # type: ignore[method-assign]
    base = rss_now()
    t0 = time.perf_counter()
    s = replay(p, [str(path)], None, None, None)
    secs = time.perf_counter() - t0
    return {
        "lines": s.lines,
        "clients": clients,
        "max_clients": cap,
        "seconds": secs,
        "lines_per_s": s.lines / secs,
        "rss_base_mib": base / MiB,
        "peak_rss_mib": peak_rss_self() / MiB,
        "rss_end_mib": rss_now() / MiB,
        "tracked_clients": p.window.tracked_clients(),
        "evicted": p.window.stats.evicted,
        "steps": p.stats.steps,
        "client_steps": judged[0],
        "verdicts": s.verdicts,
        "rejected": s.rejected,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--span", type=float, default=300.0, help="event-time span of the traffic, seconds")
    ap.add_argument("--max-clients", type=int, default=None)
    ap.add_argument("--generate-only", action="store_true")
    a = ap.parse_args(argv)
    path = synthetic_file(a.clients, a.lines, a.span)
    if a.generate_only:
        print(path)
        return
    json.dump(measure(path, a.clients, a.max_clients), sys.stdout)
    print()


if __name__ == "__main__":
    main()
