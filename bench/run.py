"""Replay throughput on generated traffic, against the bare-parse floor on the same file.

    python -m bench.run [--lines 200000] [--scenario default]

Prints one table: lines/s of `polars.read_ndjson` (parse only: the floor), of the parser alone, and of
the whole pipeline (parse -> windows -> features -> detectors -> verdicts) on JSON and on the same
traffic in combined format, with the ratio of each to the floor.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import platform
import time
from pathlib import Path

import polars as pl

from abuse_stream.config import build_config
from abuse_stream.ingest.parse import build_parser
from abuse_stream.pipeline import build_pipeline
from abuse_stream.replay import replay
from abuse_stream.simulate import SCENARIOS, generate

OUT = Path(__file__).resolve().parent / "out"


def traffic_files(lines: int, scenario: str) -> tuple[Path, Path]:
    OUT.mkdir(exist_ok=True)
    js, comb = OUT / f"{scenario}-{lines}.jsonl", OUT / f"{scenario}-{lines}.log"
    if not (js.exists() and comb.exists()):
        sc = SCENARIOS[scenario]
        t = generate(sc)
        while t.records.height < lines:  # more actors until there are enough lines
            sc = dataclasses.replace(sc, scale=sc.scale * 2)
            t = generate(sc)
        t = dataclasses.replace(t, records=t.records.head(lines))
        t.to_jsonl(js)
        t.to_combined(comb)
    return js, comb


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--scenario", default="default")
    args = ap.parse_args()
    js, comb = traffic_files(args.lines, args.scenario)
    n = args.lines
    rows: list[tuple[str, float]] = []

    data = js.read_bytes()
    floor = timed(lambda: pl.read_ndjson(io.BytesIO(data)))
    rows.append(("polars.read_ndjson (floor, parse only)", floor))
    lines = data.splitlines()
    parser = build_parser("json")
    rows.append(
        ("parser, JSON", timed(lambda: [parser.parse(lines[i : i + 100_000]) for i in range(0, n, 100_000)]))
    )
    for name, path, fmt in (
        ("pipeline replay, JSON", js, "json"),
        ("pipeline replay, combined", comb, "combined"),
    ):
        c = build_config({"input": {"format": fmt}})
        p = build_pipeline(c)  # exactly what `replay` runs: every classifier and detector
        rows.append((name, replay(p, [str(path)], None, None, None).seconds))

    print(
        f"\nabuse-stream bench: {n:,} lines of scenario '{args.scenario}' on {platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}, polars {pl.__version__}"
    )
    print(f"{'what':<42} {'seconds':>8} {'lines/s':>12} {'x floor':>8}")
    for name, secs in rows:
        print(f"{name:<42} {secs:>8.2f} {n / secs:>12,.0f} {secs / floor:>8.1f}")


if __name__ == "__main__":
    main()
