"""Kafka end to end: `abuse-stream run` as a subprocess against an embedded Tansu broker and a
throw-away Postgres database.

* :func:`throughput` — N lines produced to the input topic first, then ``run`` from process start
  until its ``abuse_stream_records_consumed_total`` metric (incremented once a batch is processed,
  published, stored and committed) reaches N.
* :func:`decision_latency` — ``run`` live (event time = wall time) under background traffic at a given
  rate, with declared security scanners injected at known times; time from "decidable" (and from the
  bot's last request) to its verdict on the verdict topic, seen by a separate consumer process.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.common import OUT, MiB, free_port, ip4, proc_cpu, proc_rss

# -- plumbing ----------------------------------------------------------------------------------------


def write_config(path: Path, bootstrap: str, prefix: str, db_url: str, metrics_port: int) -> dict[str, Any]:
    """The `run` config: defaults everywhere except connections, names and a short session timeout."""
    cfg = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": f"{prefix}-group",
            "input_topic": f"{prefix}-in",
            "dlq_topic": f"{prefix}-in.dlq",
            "verdicts_topic": f"{prefix}-verdicts",
            "ip_lists_topic": f"{prefix}-ip-lists",
            # Tansu completes a group join after ~half the session timeout: 6 s instead of 45 s
            "session_timeout_ms": 6000,
        },
        "input": {"format": "json"},
        "database": {"url": db_url},
        "metrics": {"port": metrics_port, "address": "127.0.0.1"},
        "log_level": os.environ.get("BENCH_RUN_LOG_LEVEL", "WARNING"),  # DEBUG: every batch timed
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def create_topics(cfg_path: Path) -> Any:
    """The topics as `run` would create them (input: ``kafka.input_partitions``, default 4)."""
    from abuse_stream.cli import _topic_specs
    from abuse_stream.config import load_config
    from abuse_stream.kafka_admin import TopicSpec, ensure_topics

    cfg = load_config(cfg_path)
    ensure_topics(cfg.kafka.bootstrap_servers, _topic_specs(cfg, TopicSpec))
    return cfg


def migrate(cfg_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "abuse_stream", "migrate", "--config", str(cfg_path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def scrape(port: int) -> dict[str, float] | None:
    """The service's metrics (name{labels} -> value), None while the endpoint does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def metric_sum(m: dict[str, float], name: str) -> float:
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


class RunProcess:
    """`abuse-stream run --config PATH` as a child process (log in bench/out/)."""

    def __init__(self, cfg_path: Path, log_name: str) -> None:
        self.log_path = OUT / log_name
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "abuse_stream", "run", "--config", str(cfg_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"`abuse-stream run` exited with {self.proc.returncode}; see {self.log_path}")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def produce_lines(bootstrap: str, topic: str, keys: list[bytes], lines: list[bytes]) -> float:
    """Produce as fast as librdkafka batches allow; returns seconds until every line is acknowledged."""
    from confluent_kafka import Producer

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 100,
            "batch.size": 4 * MiB,
            "batch.num.messages": 100_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2 * 1024 * 1024,
        }
    )
    t0 = time.perf_counter()
    produce = p.produce
    for k, v in zip(keys, lines, strict=True):
        while True:
            try:
                produce(topic, v, k)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(300)
    secs = time.perf_counter() - t0
    if left:
        raise RuntimeError(f"{left} lines not acknowledged by the broker")
    return secs


def py_spy_summary(raw: Path, top: int = 40) -> list[tuple[str, float, float]]:
    """From py-spy's raw (collapsed) output: (function, inclusive %, self %) of the busiest frames."""
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [f.split(" (")[0] + _where(f) for f in stack.split(";")]
        total += count
        for f in set(frames):
            incl[f] += count
        own[frames[-1]] += count
    if not total:
        return []
    return [(f, 100 * c / total, 100 * own[f] / total) for f, c in incl.most_common(top)]


def _where(frame: str) -> str:
    """`` (file.py:line)`` -> `` (package/file.py)`` without the line (inclusive counts per function)."""
    if " (" not in frame:
        return ""
    loc = frame.split(" (", 1)[1].rstrip(")")
    path = loc.rsplit(":", 1)[0]
    parts = Path(path).parts
    for anchor in ("abuse_stream", "polars", "confluent_kafka", "sqlalchemy", "psycopg", "river"):
        if anchor in parts:
            return f" ({'/'.join(parts[parts.index(anchor) :])})"
    return f" ({Path(path).name})"


# -- throughput ------------------------------------------------------------------------------------


@dataclass
class ThroughputResult:
    lines: int
    partitions: int
    produce_s: float
    startup_s: float  # spawn -> metrics endpoint answers (config, pipeline built, topics checked)
    first_s: float  # spawn -> first batch counted (group join + first batch processed and committed)
    total_s: float  # spawn -> all N consumed
    first_count: int
    verdicts: int
    peak_rss_mib: float | None
    batch_mean_s: float | None
    exit_code: int | None
    cpu_steady_s: float | None = None  # CPU seconds `run` used from the first batch to the last
    profile: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def rate_total(self) -> float:
        return self.lines / self.total_s

    @property
    def rate_steady(self) -> float:
        return (self.lines - self.first_count) / max(1e-9, self.total_s - self.first_s)

    @property
    def cores_steady(self) -> float | None:
        """Mean cores busy in `run` (all its threads) while steady."""
        if self.cpu_steady_s is None:
            return None
        return self.cpu_steady_s / max(1e-9, self.total_s - self.first_s)


def load_input(path: Path, limit: int) -> tuple[list[bytes], list[bytes]]:
    """(keys, lines): the first ``limit`` lines of a JSON-lines file and their client IPs."""
    import polars as pl

    lines = path.read_bytes().splitlines()[:limit]
    ips = pl.read_ndjson(path, n_rows=limit, schema={"ip": pl.String})["ip"].to_list()
    return [ip.encode() for ip in ips], lines


def throughput(
    bootstrap: str,
    db_url: str,
    keys: list[bytes],
    lines: list[bytes],
    profile_s: float = 0.0,
    prefix: str | None = None,
    produce: bool = True,
    log: Any = print,
) -> ThroughputResult:
    prefix = prefix or f"bench-{uuid.uuid4().hex[:6]}"
    port = free_port()
    cfg_path = OUT / f"{prefix}.yaml"
    write_config(cfg_path, bootstrap, prefix, db_url, port)
    cfg = create_topics(cfg_path)
    n = len(lines)
    produce_s = 0.0
    if produce:
        log(f"  producing {n:,} lines to {cfg.kafka.input_topic} ({cfg.kafka.input_partitions} partitions)")
        produce_s = produce_lines(bootstrap, cfg.kafka.input_topic, keys, lines)
    migrate(cfg_path)
    log(f"  starting `abuse-stream run` ({'py-spy ' + str(profile_s) + ' s' if profile_s else 'timed'})")
    run = RunProcess(cfg_path, f"{prefix}-run.log")
    t_up = t_first = None
    first_count = 0
    cpu_first = cpu_done = None
    spy: subprocess.Popen[bytes] | None = None
    raw = OUT / f"{prefix}-py-spy.txt"
    m: dict[str, float] = {}
    try:
        while True:
            run.check()
            got = scrape(port)
            now = time.time()
            if got is not None:
                m = got
                t_up = t_up or now
                consumed = int(metric_sum(m, "abuse_stream_records_consumed_total"))
                if consumed and t_first is None:
                    t_first, first_count = now, consumed
                    cpu_first = proc_cpu(run.pid)
                    if profile_s:
                        spy = subprocess.Popen(
                            [
                                _py_spy(),
                                "record",
                                "-d",
                                str(int(profile_s)),
                                "-r",
                                "50",
                                "-f",
                                "raw",
                                *os.environ.get("BENCH_PY_SPY_FLAGS", "").split(),
                            ]
                            + ["-o", str(raw), "--pid", str(run.pid)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                if consumed >= n:
                    t_done = now
                    cpu_done = proc_cpu(run.pid)
                    break
            if now - run.started > 3600:
                raise RuntimeError("the service did not catch up within an hour")
            time.sleep(0.1)
        _cur, peak = proc_rss(run.pid)
        if spy is not None:
            spy.wait()
    finally:
        code = run.stop()
        if spy is not None and spy.poll() is None:
            spy.kill()
    bc, bs = (
        metric_sum(m, "abuse_stream_batch_seconds_count"),
        metric_sum(m, "abuse_stream_batch_seconds_sum"),
    )
    return ThroughputResult(
        lines=n,
        partitions=cfg.kafka.input_partitions,
        produce_s=produce_s,
        startup_s=(t_up or t_done) - run.started,
        first_s=(t_first or t_done) - run.started,
        total_s=t_done - run.started,
        first_count=first_count,
        verdicts=int(metric_sum(m, "abuse_stream_verdicts_total")),
        peak_rss_mib=peak / MiB if peak else None,
        batch_mean_s=bs / bc if bc else None,
        exit_code=code,
        cpu_steady_s=cpu_done - cpu_first if cpu_done is not None and cpu_first is not None else None,
        profile=py_spy_summary(raw) if profile_s and raw.exists() else [],
    )


def _py_spy() -> str:
    cand = Path(sys.executable).with_name("py-spy")
    return str(cand) if cand.exists() else (shutil.which("py-spy") or "py-spy")


def py_spy_available() -> bool:
    return Path(_py_spy()).exists() or shutil.which("py-spy") is not None


# -- decision latency --------------------------------------------------------------------------------

SCANNER_UA = "sqlmap/1.7.2#stable (https://sqlmap.org)"
PROBES = ["/.env", "/.git/config", "/wp-login.php", "/phpmyadmin/", "/index.php?id=1%27%20OR%201=1--"]
BOT_BASE = (198 << 24) | (18 << 16)  # 198.18.0.0/15, the benchmarking range (RFC 2544)


@dataclass
class Bot:
    ip: str
    start: float  # wall time of its first request (planned)
    produced: list[float] = field(default_factory=list)  # wall (= event) time of each request produced

    @property
    def last(self) -> float:
        return self.produced[-1]


@dataclass
class LatencyResult:
    rate: float  # background lines/s asked for
    achieved_rate: float
    multiplex: int
    bots: int
    detected: int
    from_decidable: list[float]  # verdict seen - first record produced with ts >= step end + lateness
    from_last: list[float]  # verdict seen - bot's last request produced
    from_decidable_create: list[float]  # same, to the verdict's Kafka CreateTime (service produce())
    max_lag: float
    lag_at_end: float  # lines produced but not yet consumed when the producing stopped
    caught_up_after_s: float  # from then until the service had consumed everything
    batch_mean_s: float | None
    wrong_type: int
    background_verdicts: int
    peak_rss_mib: float | None
    step_s: float
    lateness_s: float
    batch_timeout_s: float


def _verdict_reader(bootstrap: str, topic: str, stop: Any, ready: Any, out_path: str) -> None:
    """Child process: read the verdict topic from the start; write (seen, create_ts, ip, bot_type)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "fetch.min.bytes": 1,
        }
    )
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    ready.set()
    rows = []
    while not stop.is_set():
        for m in c.consume(1000, timeout=0.05):
            seen = time.time()
            if m.error() is None and m.value():
                v = json.loads(m.value())
                rows.append((seen, m.timestamp()[1] / 1000.0, v["ip"], v["bot_type"]))
    c.close()
    Path(out_path).write_text(json.dumps(rows))


class Background:
    """Lines of a generated trace, re-timed to wall time and spread over ``multiplex`` times as many
    client IPs (10.0.0.0/8), so that each IP keeps the request rate it had in the trace.

    Played faster than it was recorded, the trace runs out and starts again (a *lap*); each client
    keeps its IPs from lap to lap, as a real client keeps its address, so the window holds about
    ``multiplex`` x the trace's clients. (Naming new IPs every lap would make every client live one
    lap, a few seconds at high rates, and give every bot a fresh verdict each lap.)"""

    def __init__(self, path: Path, limit: int, rate: float) -> None:
        import polars as pl

        df = pl.read_ndjson(path, n_rows=limit, schema={"ts": pl.String, "ip": pl.String})
        ts = df["ts"].str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_zone="UTC").dt.epoch("ms")
        span = max(1.0, (ts.max() - ts.min()) / 1000.0)  # type: ignore[operator]
        self.multiplex = max(1, math.ceil(rate / (df.height / span)))
        ids = df.select(pl.col("ip").rank("dense").cast(pl.Int64) - 1)["ip"]
        self.client = ids.to_list()
        self.clients = int(ids.max() or 0) + 1  # type: ignore[arg-type]
        self.tails = []  # each line after its ip field: b'"method":...}'
        for line in path.read_bytes().splitlines()[:limit]:
            i = line.index(b'"ip":"')
            j = line.index(b'",', i + 6)
            self.tails.append(line[j + 2 :])
        self.i = 0
        self._ips: dict[int, bytes] = {}

    def take(self, n: int, ts: float) -> list[tuple[bytes, bytes]]:
        out = []
        head = b'{"ts":%.3f,"ip":"' % ts
        k, total = self.multiplex, len(self.tails)
        for _ in range(n):
            i = self.i % total
            cid = (self.client[i] * k + self.i % k) % ((1 << 24) - 2) + 1
            ip = self._ips.get(cid)
            if ip is None:
                ip = self._ips[cid] = ip4(cid).encode()
            out.append((ip, head + ip + b'",' + self.tails[i]))
            self.i += 1
        return out


def bot_line(ip: str, ts: float, k: int) -> bytes:
    return json.dumps(
        {
            "ts": round(ts, 3),
            "ip": ip,
            "method": "GET",
            "path": PROBES[k % len(PROBES)],
            "status": 404,
            "host": "shop.example.com",
            "bytes": 153,
            "ua": SCANNER_UA,
            "latency_ms": 1.5,
        }
    ).encode()


def decision_latency(
    bootstrap: str,
    db_url: str,
    trace: Path,
    trace_lines: int,
    rate: float,
    inject_s: float = 120.0,
    bots_per_step: int = 6,
    warmup_s: float = 20.0,
    bot_requests: int = 5,
    bot_gap_s: float = 0.2,
    seed: int = 1,
    catch_up_s: float = 300.0,
    log: Any = print,
) -> LatencyResult:
    from confluent_kafka import Producer

    prefix = f"bench-live-{uuid.uuid4().hex[:6]}"
    port = free_port()
    cfg_path = OUT / f"{prefix}.yaml"
    write_config(cfg_path, bootstrap, prefix, db_url, port)
    cfg = create_topics(cfg_path)
    step, lateness = cfg.window.step_s, cfg.window.lateness_s
    migrate(cfg_path)
    bg = Background(trace, trace_lines, rate)
    log(
        f"  background {rate:,.0f} lines/s: {trace_lines:,}-line trace at its own per-client rates "
        f"over {bg.multiplex}x its {bg.clients:,} clients"
    )

    ctx = mp.get_context("spawn")  # no fork of a process running librdkafka threads
    stop_reader, ready = ctx.Event(), ctx.Event()
    got_path = OUT / f"{prefix}-verdicts.json"
    reader = ctx.Process(
        target=_verdict_reader, args=(bootstrap, cfg.kafka.verdicts_topic, stop_reader, ready, str(got_path))
    )
    reader.start()
    if not ready.wait(60):
        raise RuntimeError("the verdict reader did not start")

    run = RunProcess(cfg_path, f"{prefix}-run.log")
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    topic = cfg.kafka.input_topic
    rng = random.Random(seed)
    bots: list[Bot] = []
    decidable: dict[int, float] = {}  # bucket -> wall time of the first record with ts >= end + lateness
    max_lag = 0.0
    peak = None
    m: dict[str, float] = {}
    try:
        # wait for the metrics endpoint, then produce: warm-up, injection, and enough afterwards that the
        # last bots' steps close
        while scrape(port) is None:
            run.check()
            time.sleep(0.1)
        start = time.time()
        first_bucket = math.floor((start + warmup_s) / step) + 1
        n_steps = max(1, round(inject_s / step))
        span = bot_requests * bot_gap_s
        for b in range(first_bucket, first_bucket + n_steps):
            for _ in range(bots_per_step):
                t = b * step + rng.uniform(0.0, step - span - 0.05)
                bots.append(Bot(ip4(len(bots), BOT_BASE), t))
        end_inject = (first_bucket + n_steps) * step
        stop_at = end_inject + lateness + 15.0
        pending = sorted(
            ((bot.start + k * bot_gap_s, i, k) for i, bot in enumerate(bots) for k in range(bot_requests))
        )
        boundary = first_bucket  # the next bucket whose decidable time we wait for
        produced = 0
        last_check = 0.0
        # metrics and RSS are read on a thread of their own: the endpoint can take a few hundred ms to
        # answer a busy service, and the producer must not pause meanwhile (a gateway does not)
        monitor = _Monitor(port, run.pid).start()
        while True:
            now = time.time()
            if now >= stop_at:
                break
            want = int((now - start) * rate) - produced
            if want > 0:
                for key, line in bg.take(want, now):
                    _produce(producer, topic, key, line)
                produced += want
                # the lines just produced carry ts = now: the first with ts >= end + lateness decides
                while boundary < first_bucket + n_steps and now >= (boundary + 1) * step + lateness:
                    decidable[boundary] = now
                    boundary += 1
            while pending and pending[0][0] <= now:
                _t, i, k = pending.pop(0)
                t = time.time()
                _produce(producer, topic, bots[i].ip.encode(), bot_line(bots[i].ip, t, k))
                bots[i].produced.append(t)
            producer.poll(0)
            if now - last_check >= 1.0:
                last_check = now
                run.check()
            time.sleep(0.002)
        monitor.stop()
        m, max_lag, peak = monitor.metrics or m, monitor.max_lag, monitor.peak
        producer.flush(30)
        achieved = produced / (time.time() - start)
        total = produced + sum(len(b.produced) for b in bots)
        got = scrape(port)
        lag_at_end = total - metric_sum(got or m, "abuse_stream_records_consumed_total")
        # let the service catch up (if it fell behind), then idle advance closes the last steps
        deadline = time.time() + catch_up_s
        while time.time() < deadline:
            run.check()
            got = scrape(port)
            if got is not None:
                m = got
                if metric_sum(m, "abuse_stream_records_consumed_total") >= total:
                    break
            time.sleep(0.5)
        caught_up_after = time.time() - stop_at
        time.sleep(cfg.window.idle_advance_s + 3.0)
        got = scrape(port)
        if got is not None:
            m = got
        _c, peak = proc_rss(run.pid)
    finally:
        run.stop()
        stop_reader.set()
        reader.join(60)
    rows = json.loads(got_path.read_text()) if got_path.exists() else []
    seen: dict[str, tuple[float, float, str]] = {}
    for t_seen, t_create, ip, bt in rows:
        if ip not in seen:
            seen[ip] = (t_seen, t_create, bt)
    by_ip = {b.ip: b for b in bots}
    from_dec, from_last, from_create = [], [], []
    wrong = 0
    for b in bots:
        if b.ip not in seen or not b.produced:
            continue
        t_seen, t_create, bt = seen[b.ip]
        wrong += bt != "security_crawlers"
        bucket = math.floor(b.last / step)
        dec = decidable.get(bucket, (bucket + 1) * step + lateness)
        from_dec.append(t_seen - dec)
        from_create.append(t_create - dec)
        from_last.append(t_seen - b.last)
    bc, bs = (
        metric_sum(m, "abuse_stream_batch_seconds_count"),
        metric_sum(m, "abuse_stream_batch_seconds_sum"),
    )
    return LatencyResult(
        rate=rate,
        achieved_rate=achieved,
        multiplex=bg.multiplex,
        bots=len(bots),
        detected=len(from_dec),
        from_decidable=from_dec,
        from_last=from_last,
        from_decidable_create=from_create,
        max_lag=max_lag,
        lag_at_end=lag_at_end,
        caught_up_after_s=caught_up_after,
        batch_mean_s=bs / bc if bc else None,
        wrong_type=wrong,
        background_verdicts=sum(1 for ip in seen if ip not in by_ip),
        peak_rss_mib=peak / MiB if peak else None,
        step_s=step,
        lateness_s=lateness,
        batch_timeout_s=cfg.kafka.batch_timeout_s,
    )


class _Monitor:
    """Scrapes the service's metrics and reads its RSS once a second, beside the producing loop."""

    def __init__(self, port: int, pid: int) -> None:
        import threading

        self.port, self.pid = port, pid
        self.metrics: dict[str, float] = {}
        self.max_lag = 0.0
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-monitor", daemon=True)

    def start(self) -> _Monitor:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            got = scrape(self.port)
            if got is not None:
                self.metrics = got
                self.max_lag = max(self.max_lag, metric_sum(got, "abuse_stream_consumer_lag"))
            _c, peak = proc_rss(self.pid)
            self.peak = peak or self.peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _produce(producer: Any, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.01)


def quantile(xs: list[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation: p99 of 60 samples is the largest but none)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


if __name__ == "__main__":  # pragma: no cover - helpers only; run `python -m bench.run`
    print(__doc__)
    os._exit(0)
