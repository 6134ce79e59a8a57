"""abuse-stream benchmarks (issue #7): figures, not pass/fail tests. Prints ONE table at the end and
writes it to bench/out/results.md (and the raw figures to bench/out/results.json).

    python -m bench.run                 # the full run: 1M lines, 1M Kafka lines, 10k/100k/1M clients
    python -m bench.run --quick         # small sizes (a few minutes)
    python -m bench.run --only replay,memory --lines 200000

Sections (``--only`` / ``--skip``):

* ``replay``  — `replay` throughput (parse -> windows -> features -> every detector -> verdicts) on
  generated traffic (scenario ``default``, cached in bench/out/) as JSON lines and as the same traffic
  in nginx combined format, against the floor: ``polars.read_ndjson`` of the same JSON file. Each
  row is the best of 3 runs (each run's time in its notes).
* ``kafka``   — the same JSON lines produced to an embedded Tansu topic (4 partitions, keyed by client
  IP), then `abuse-stream run` as a subprocess (Postgres database, metrics endpoint) from process
  start until its consumed-records metric reaches N.
* ``latency`` — `run` live (event time = wall time) under background traffic at half the measured
  Kafka rate; declared scanners injected at known times; time to their verdicts on the verdict topic.
  Then the *live maximum*: live traffic brings far more clients per line than the catch-up trace
  (each IP at its real rate), so the highest live rate `run` keeps up with is found by short live
  runs a factor ``--live-max-step`` apart, and the latency is measured again at half of it.
* ``memory``/``scaling`` — replay of synthetic traffic with exactly C clients, all active within one
  window, in a fresh process per size: peak RSS and lines/s as lines grow 10x and as clients grow 10x.

``BENCH_RUN_LOG_LEVEL=DEBUG`` makes the `run` under test log every batch with its phase times (in
bench/out/*-run.log). ``--py-spy S`` profiles a second Kafka run for S seconds;
``BENCH_PY_SPY_FLAGS`` adds py-spy options (``--gil``: only samples holding the GIL, which shows
what serialises the threads).

Needs Postgres for the Kafka sections (``--pg-admin-url``, ``$BENCH_PG_ADMIN_URL``,
``$TEST_PG_ADMIN_URL``, default postgresql://postgres@127.0.0.1:5432/postgres; a throw-away database
``bench_<random>`` is created and dropped); without it they use a SQLite file and say so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from abuse_stream.config import KafkaConfig
from bench.common import OUT, pg_admin_url, pg_available, pg_database, traffic_files

SECTIONS = ("replay", "kafka", "latency", "memory", "scaling")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class Row:
    section: str
    what: str
    lines: int | None = None
    clients: int | None = None
    seconds: float | str | None = None
    rate: float | None = None  # lines/s
    rss_mib: float | None = None
    note: str = ""
    vs_floor: bool = True  # show the ratio to the parse floor


@dataclass
class Results:
    header: str = ""
    floor_rate: float | None = None
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        log(f"  -> {_fmt_row(row, self.floor_rate)}")


# -- sections -----------------------------------------------------------------------------------------


#: replay rows and the floor are each the best of this many runs (shared cores: load varies by the second)
BEST_OF = 3


def bench_replay(res: Results, js: Path, comb: Path, n: int) -> None:
    import polars as pl

    from abuse_stream.cli import tune_gc
    from abuse_stream.config import build_config
    from abuse_stream.ingest.parse import build_parser
    from abuse_stream.pipeline import build_pipeline
    from abuse_stream.replay import replay

    data = js.read_bytes()
    floor = min(timed(lambda: pl.read_ndjson(io.BytesIO(data))) for _ in range(BEST_OF))
    res.floor_rate = n / floor
    what = f"polars.read_ndjson (the floor: parse only, best of {BEST_OF})"
    res.add(Row("replay", what, n, None, floor, n / floor))
    lines = data.splitlines()
    parser = build_parser("json")
    secs = timed(lambda: [parser.parse(lines[i : i + 100_000]) for i in range(0, n, 100_000)])
    res.add(Row("replay", "parser alone, JSON", n, None, secs, n / secs))
    data = lines = b""  # type: ignore[assignment]  # free them before the pipeline runs
    for name, path, fmt in (("replay, JSON", js, "json"), ("replay, combined", comb, "combined")):
        runs = []
        for _ in range(BEST_OF):
            p = build_pipeline(build_config({"input": {"format": fmt}}))  # what `replay` runs: every detector
            tune_gc()  # as the CLI does once the pipeline is built
            runs.append(replay(p, [str(path)], None, None, None))
        s = min(runs, key=lambda r: r.seconds)
        spread = ", ".join(f"{r.seconds:.2f}" for r in runs)
        res.add(
            Row(
                "replay",
                f"pipeline {name} (best of {BEST_OF})",
                n,
                None,
                s.seconds,
                n / s.seconds,
                note=f"{s.verdicts:,} verdicts, {s.rejected:,} rejected; runs {spread} s",
            )
        )


@contextlib.contextmanager
def database(admin: str, res: Results) -> Iterator[str]:
    why = pg_available(admin)
    if why is None:
        with pg_database(admin) as url:
            yield url
        return
    note = f"Postgres unavailable ({why}): the Kafka sections used SQLite"
    if note not in res.notes:
        res.notes.append(note)
    path = OUT / f"bench-{os.getpid()}-{time.time_ns()}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        path.unlink(missing_ok=True)


def bench_kafka(res: Results, args: argparse.Namespace, js: Path, sections: set[str]) -> None:
    from abuse_stream.broker import BrokerError, EmbeddedBroker
    from bench import kafka as kb

    admin = pg_admin_url(args.pg_admin_url)
    try:
        broker = EmbeddedBroker(log_path=OUT / "tansu.log").start()
    except BrokerError as e:
        res.notes.append(f"Kafka sections skipped: {e}")
        return
    try:
        rate = None  # the measured steady Kafka rate
        if "kafka" in sections:
            keys, lines = kb.load_input(js, args.kafka_lines)
            n = len(lines)
            with database(admin, res) as db:
                t = kb.throughput(broker.bootstrap, db, keys, lines, log=log)
            res.raw["kafka"] = asdict(t)
            res.add(
                Row(
                    "kafka",
                    f"producer -> Tansu ({t.partitions} partitions, lz4, keyed by IP)",
                    n,
                    None,
                    t.produce_s,
                    n / t.produce_s,
                    note="Python confluent_kafka Producer, linger 100 ms; not the service",
                    vs_floor=False,
                )
            )
            res.add(
                Row(
                    "kafka",
                    "`run` end to end, from process start",
                    n,
                    None,
                    t.total_s,
                    t.rate_total,
                    t.peak_rss_mib,
                    note=f"start-up {t.startup_s:.1f} s (metrics up), first batch done at "
                    f"{t.first_s:.1f} s (group join); {t.verdicts:,} verdicts; exit {t.exit_code}",
                )
            )
            res.add(
                Row(
                    "kafka",
                    "`run` end to end, steady (from first batch committed)",
                    n - t.first_count,
                    None,
                    t.total_s - t.first_s,
                    t.rate_steady,
                    t.peak_rss_mib,
                    note=f"mean batch (process+publish+store+commit) "
                    f"{(t.batch_mean_s or 0):.2f} s; consume batch_size {KafkaConfig().batch_size:,} (default)"
                    + (f"; `run` busy {t.cores_steady:.2f} cores" if t.cores_steady is not None else ""),
                )
            )
            rate = t.rate_steady
            if args.py_spy and kb.py_spy_available():
                log(f"  profiling a second `run` with py-spy for {args.py_spy:g} s")
                with database(admin, res) as db:
                    prof = kb.throughput(broker.bootstrap, db, keys, lines, profile_s=args.py_spy, log=log)
                res.raw["py_spy_top_inclusive"] = prof.profile
                res.raw["kafka_profiled_run_rate"] = prof.rate_steady
            del keys, lines
        if "latency" in sections:
            res.raw["latency"] = []
            live = _Live(res, args, kb, admin, broker.bootstrap, js)
            if args.latency_rate:
                bench_latency(live, args.latency_rate, "")
            elif not rate:
                bench_latency(live, 5000.0, " (no Kafka rate measured)")
            else:
                kept = {
                    rate * f: bench_latency(live, rate * f, f" ({f:.0%} of the Kafka rate)")
                    for f in args.latency_fractions
                }
                if args.live_max:
                    top = live_maximum(live, kept)
                    if top:
                        bench_latency(live, top / 2, " (50% of the live maximum)")
    finally:
        broker.stop()


def bench_latency(live: _Live, rate: float, label: str) -> bool:
    """One live run with ``--latency-seconds`` of bots: its latency rows; True if `run` kept up."""
    res, args = live.res, live.args
    log(f"  decision latency: background {rate:,.0f} lines/s{label}, {args.latency_seconds:g} s of bots")
    lat = live.run(rate, args.latency_seconds)
    res.raw["latency"].append(asdict(lat))
    q = live.kb.quantile
    kept_up = _kept_up(lat, rate)
    res.add(
        Row(
            "latency",
            f"(a) decidable -> verdict, {rate:,.0f} lines/s{label}",
            lat.detected,
            None,
            f"p50 {q(lat.from_decidable, 0.5):.2f} / p99 {q(lat.from_decidable, 0.99):.2f}",
            None,
            lat.peak_rss_mib,
            note=f"{lat.detected}/{lat.bots} injected scanners got a verdict ({lat.wrong_type} of another "
            f"type); the service's produce() of it at p50 {q(lat.from_decidable_create, 0.5):.2f} s; "
            f"{'kept up' if kept_up else 'FELL BEHIND'}: max consumer lag {lat.max_lag:,.0f}, "
            f"{lat.lag_at_end:,.0f} lines unread when producing stopped; mean batch "
            f"{(lat.batch_mean_s or 0):.2f} s",
        )
    )
    res.add(
        Row(
            "latency",
            f"(b) last request -> verdict, {rate:,.0f} lines/s{label}",
            lat.detected,
            None,
            f"p50 {q(lat.from_last, 0.5):.2f} / p99 {q(lat.from_last, 0.99):.2f}",
            None,
            None,
            note=f"(a) + waiting for the {lat.step_s:g} s step to end and {lat.lateness_s:g} s lateness; "
            f"background {lat.achieved_rate:,.0f} lines/s over {lat.multiplex}x the trace's clients",
        )
    )
    return kept_up


@dataclass
class _Live:
    """What every live `run` of the latency section shares: results, options, the broker, the trace."""

    res: Results
    args: argparse.Namespace
    kb: Any  # bench.kafka
    admin: str
    bootstrap: str
    js: Path

    def run(self, rate: float, inject_s: float) -> Any:
        """`run` live under background traffic at ``rate`` with ``inject_s`` seconds of bots, on a
        throw-away database: the bench.kafka.LatencyResult."""
        with database(self.admin, self.res) as db:
            return self.kb.decision_latency(
                self.bootstrap,
                db,
                self.js,
                self.args.kafka_lines,
                rate,
                inject_s=inject_s,
                bots_per_step=self.args.bots_per_step,
                warmup_s=self.args.latency_warmup,
                log=log,
            )


def _kept_up(lat: Any, rate: float) -> bool:
    """Less than ~2 s of input waiting when producing stopped."""
    return bool(lat.lag_at_end < 2 * rate)


def live_maximum(live: _Live, known: dict[float, bool]) -> float | None:
    """The highest live background rate `run` keeps up with, to within a factor of ``--live-max-step``.

    Live traffic is not the catch-up trace: each IP keeps its real request rate, so at the same lines/s
    it brings ``multiplex`` times the trace's clients, and a live `run` judges each batch as it comes
    instead of preparing the next one meanwhile. So its maximum is measured on its own: short live runs
    (``--live-max-seconds`` of bots after the warm-up), up from the highest rate already known to keep
    up while they do, or down from the lowest known not to until one does. Returns None if none did.
    """
    res, args = live.res, live.args
    step = args.live_max_step
    probes: list[tuple[float, bool]] = sorted(known.items())

    def probe(r: float) -> bool:
        log(f"  live maximum: probing {r:,.0f} lines/s")
        lat = live.run(r, args.live_max_seconds)
        ok = _kept_up(lat, r)
        res.raw.setdefault("live_max_probes", []).append(
            {"rate": r, "kept_up": ok, "max_lag": lat.max_lag, "lag_at_end": lat.lag_at_end}
        )
        log(
            f"    {'kept up' if ok else 'fell behind'}: max lag {lat.max_lag:,.0f}, {lat.lag_at_end:,.0f} unread"
        )
        probes.append((r, ok))
        return ok

    good = [r for r, ok in probes if ok]
    bad = [r for r, ok in probes if not ok]
    for _ in range(args.live_max_probes):
        if good and bad and min(bad) <= max(good) * step * 1.001:
            break  # bracketed to within one step
        if good:
            r = max(good) * step
        elif bad:
            r = min(bad) / step
        else:
            r = 5000.0
        (good if probe(r) else bad).append(r)
    top = max(good) if good else None
    tried = ", ".join(f"{r:,.0f} {'kept up' if ok else 'fell behind'}" for r, ok in sorted(probes))
    res.add(
        Row(
            "latency",
            "live maximum: highest background rate `run` kept up with",
            None,
            None,
            None,
            top,
            note=f"live runs at {tried}"
            + (f"; the maximum is below {min(bad):,.0f}" if bad and good else "")
            + ("; no probe fell behind, so it is at least this" if not bad else ""),
            vs_floor=False,
        )
    )
    return top


def synthetic_run(clients: int, lines: int) -> dict[str, Any]:
    """Generate (cached, in its own process) then measure in a fresh process."""
    base = [sys.executable, "-m", "bench.synthetic", "--clients", str(clients), "--lines", str(lines)]
    subprocess.run([*base, "--generate-only"], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run(base, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(res: Results, args: argparse.Namespace, sections: set[str]) -> None:
    f = 10 if args.quick else 1
    line_sizes = [100_000 // f, 1_000_000 // f]
    runs: list[tuple[int, int, str]] = []  # (clients, lines, section)
    runs += [(c // f, line_sizes[1], "memory") for c in (10_000, 100_000, 1_000_000)]
    if "scaling" in sections:
        runs += [(c // f, line_sizes[0], "scaling") for c in (10_000, 100_000)]
    results: dict[tuple[int, int], dict[str, Any]] = {}
    for clients, lines, _sec in runs:
        log(f"  synthetic replay: {clients:,} clients, {lines:,} lines (fresh process)")
        results[(clients, lines)] = r = synthetic_run(clients, lines)
        log(
            f"    {r['seconds']:.1f} s, {r['lines_per_s']:,.0f} lines/s, peak RSS {r['peak_rss_mib']:,.0f} MiB"
        )
    res.raw["synthetic"] = [{"clients": c, "lines_asked": n, **r} for (c, n), r in sorted(results.items())]

    def row(section: str, what: str, r: dict[str, Any], note: str) -> Row:
        return Row(
            section, what, r["lines"], r["clients"], r["seconds"], r["lines_per_s"], r["peak_rss_mib"], note
        )

    def judged(r: dict[str, Any]) -> str:
        return (
            f"{r['client_steps']:,} client-steps judged over {r['steps']} steps "
            f"(every client at every step would be {r['clients'] * r['steps']:,})"
        )

    big = line_sizes[1]
    if "memory" in sections or "scaling" in sections:
        first = None
        prev: dict[str, Any] = {}
        for c in (10_000, 100_000, 1_000_000):
            r = results[(c // f, big)]
            note = (
                f"RSS base {r['rss_base_mib']:,.0f} MiB (imports + pipeline), after {r['rss_end_mib']:,.0f}; "
                f"{r['tracked_clients']:,} tracked, {r['evicted']:,} evicted (max_clients {r['max_clients']:,}); "
            )
            if first is not None:
                extra = (
                    (r["peak_rss_mib"] - first["peak_rss_mib"])
                    * 1024
                    * 1024
                    / (r["clients"] - first["clients"])
                )
                note += (
                    f"time x{r['seconds'] / prev['seconds']:.1f} and peak x{r['peak_rss_mib'] / prev['peak_rss_mib']:.1f} "
                    f"vs 10x fewer clients; ~{extra:,.0f} B per client beyond the first {first['clients']:,}; "
                )
            res.add(
                row("memory, clients x10", f"{c // f:,} clients active in one window", r, note + judged(r))
            )
            first = first or r
            prev = r
    if "scaling" in sections:
        for c in (10_000, 100_000):
            a, b = results[(c // f, line_sizes[0])], results[(c // f, big)]
            res.add(row("scaling, lines x10", f"{c // f:,} clients, {line_sizes[0]:,} lines", a, judged(a)))
            res.add(
                row(
                    "scaling, lines x10",
                    f"{c // f:,} clients, {big:,} lines",
                    b,
                    f"time x{b['seconds'] / a['seconds']:.1f}, peak RSS x{b['peak_rss_mib'] / a['peak_rss_mib']:.1f} "
                    f"for 10x the lines; " + judged(b),
                )
            )


# -- output ----------------------------------------------------------------------------------------

COLS = ("section", "what", "lines", "clients", "seconds", "lines/s", "x floor", "peak RSS MiB", "notes")


def _cells(row: Row, floor_rate: float | None) -> list[str]:
    secs = row.seconds if isinstance(row.seconds, str) else (f"{row.seconds:,.2f}" if row.seconds else "")
    return [
        row.section,
        row.what,
        f"{row.lines:,}" if row.lines is not None else "",
        f"{row.clients:,}" if row.clients else "",
        secs,
        f"{row.rate:,.0f}" if row.rate else "",
        f"{floor_rate / row.rate:,.1f}" if row.rate and floor_rate and row.vs_floor else "",
        f"{row.rss_mib:,.0f}" if row.rss_mib else "",
        row.note,
    ]


def _fmt_row(row: Row, floor_rate: float | None) -> str:
    return " | ".join(c for c in _cells(row, floor_rate) if c)


def render(res: Results) -> str:
    cells = [list(COLS)] + [_cells(r, res.floor_rate) for r in res.rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLS))]
    right = {2, 3, 4, 5, 6, 7}
    lines = [res.header, ""]
    for k, c in enumerate(cells):
        lines.append(
            "| "
            + " | ".join(v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(c))
            + " |"
        )
        if k == 0:
            lines.append(
                "|"
                + "|".join(
                    ("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)
                )
                + "|"
            )
    lines += ["", *[f"* {n}" for n in res.notes]]
    return "\n".join(lines) + "\n"


LEGEND = [
    "x floor = polars.read_ndjson lines/s on the same JSON file / this row's lines/s (how many times slower "
    "than just parsing); peak RSS = VmHWM / ru_maxrss of the process measured (the `run` subprocess, or a "
    "fresh replay process per synthetic size).",
    "latency (a): from producing the first record whose event time is >= the bot's step end + lateness "
    "(the moment its step became decidable) to the verdict read back from the verdict topic by a separate "
    "consumer process; it includes Kafka transport both ways, the consume batch wait (batch_timeout_s), "
    "processing, publishing, the database write and commit of the batch. (b): from the bot's last request "
    "to the same verdict; it adds the event-time wait for the step to end and for the lateness.",
    "memory/scaling rows: synthetic traffic, each client a browser with requests at uniformly random "
    "times within one 300 s window (so all clients are in the window at the end), one fresh process per "
    "row (replay, JSON, every detector).",
]


def code_version() -> str:
    """The commit measured, and whether the package had uncommitted changes at the start."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "abuse_stream"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "version unknown (no git)"
    return f"commit {head}" + (" + uncommitted changes in abuse_stream/" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: 100k lines, 1k-100k clients, 30 s of bots"
    )
    ap.add_argument("--lines", type=int, default=None, help="replay lines (default 1,000,000; quick 100,000)")
    ap.add_argument("--kafka-lines", type=int, default=None, help="Kafka lines (default: --lines)")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--only", default=None, help=f"comma-separated sections of {','.join(SECTIONS)}")
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out")
    ap.add_argument(
        "--latency-rate", type=float, default=None, help="background lines/s (default: half the Kafka rate)"
    )
    ap.add_argument(
        "--latency-seconds", type=float, default=None, help="seconds of bot injection (default 120; quick 30)"
    )
    ap.add_argument("--latency-warmup", type=float, default=20.0)
    ap.add_argument(
        "--latency-fractions",
        default=None,
        help="background rates as fractions of the Kafka rate (default 0.5; the live maximum then adds a run at half of it)",
    )
    ap.add_argument(
        "--live-max",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure the live maximum and the latency at half of it (default: on; off with --quick)",
    )
    ap.add_argument("--live-max-step", type=float, default=1.25, help="live maximum: ratio between probes")
    ap.add_argument(
        "--live-max-probes", type=int, default=4, help="live maximum: most probes beyond the latency runs"
    )
    ap.add_argument(
        "--live-max-seconds", type=float, default=60.0, help="live maximum: seconds of bots per probe"
    )
    ap.add_argument(
        "--bots-per-step", type=int, default=None, help="bots injected per 10 s step (default 6; quick 4)"
    )
    ap.add_argument(
        "--py-spy", type=float, default=0.0, metavar="SECONDS", help="also profile a second Kafka run"
    )
    ap.add_argument("--pg-admin-url", default=None)
    a = ap.parse_args(argv)
    a.lines = a.lines or (100_000 if a.quick else 1_000_000)
    a.kafka_lines = a.kafka_lines or a.lines
    a.latency_seconds = a.latency_seconds or (30.0 if a.quick else 120.0)
    a.bots_per_step = a.bots_per_step or (4 if a.quick else 6)
    a.live_max = (not a.quick) if a.live_max is None else a.live_max
    a.latency_fractions = [float(x) for x in (a.latency_fractions or "0.5").split(",")]
    sections = set(a.only.split(",")) if a.only else set(SECTIONS)
    sections -= set(filter(None, a.skip.split(",")))
    unknown = sections - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")

    import polars as pl

    OUT.mkdir(exist_ok=True)
    t_start = time.time()
    res = Results(
        header=f"abuse-stream bench: scenario '{a.scenario}', {a.lines:,} replay lines, {a.kafka_lines:,} "
        f"Kafka lines; {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}, polars {pl.__version__}{' (--quick)' if a.quick else ''}; "
        f"{code_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    if "replay" in sections:
        log(f"replay throughput (traffic: {a.lines:,} lines of scenario '{a.scenario}', cached in {OUT})")
        js, comb = traffic_files(a.lines, a.scenario)
        bench_replay(res, js, comb, a.lines)
    if sections & {"kafka", "latency"}:
        log("Kafka end to end")
        kjs, _ = traffic_files(a.kafka_lines, a.scenario)
        bench_kafka(res, a, kjs, sections)
    if sections & {"memory", "scaling"}:
        log("memory and scaling (synthetic traffic, one process per size)")
        bench_memory(res, a, sections)
    res.notes = LEGEND + res.notes + [f"total bench time {time.time() - t_start:,.0f} s"]
    text = render(res)
    if "py_spy_top_inclusive" in res.raw:
        text += (
            "\npy-spy, `run` during the Kafka catch-up (inclusive % of samples, self %):\n"
            + "\n".join(
                f"  {i:5.1f}% {s:5.1f}%  {f}"
                for f, i, s in res.raw["py_spy_top_inclusive"]
                if not any(
                    x in f for x in ("(core.py)", "<frozen runpy>", "__main__.py", "abuse_stream/cli.py")
                )
            )
            + "\n"
        )
    (OUT / "results.md").write_text(text)
    (OUT / "results.json").write_text(
        json.dumps({"rows": [asdict(r) for r in res.rows], "floor_rate": res.floor_rate, **res.raw}, indent=1)
    )
    print("\n" + text)


if __name__ == "__main__":
    main()
