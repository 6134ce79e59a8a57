"""``abuse-stream demo``: the whole pipeline on embedded defaults, ending in a readable report.

1. Kafka: ``$KAFKA_BOOTSTRAP_SERVERS`` if set, else an embedded Tansu broker on a free loopback port.
2. Database: ``$DATABASE_URL`` if set, else a SQLite file in the output folder (migrated first).
3. Simulated, labelled traffic (humans, good automation, bots) is produced to the input topic,
   keyed by client IP.
4. The service runs until it has caught up with the topic, publishing verdicts and IP-list changes
   to Kafka and storing them in the database.
5. The report: verdicts by bot type, the top flagged IPs with the detectors that fired, and how the
   verdicts compare with the simulator's labels.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import polars as pl

from abuse_stream.config import Config, load_config

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _broker(env: Mapping[str, str]) -> Iterator[str]:
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield env["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from abuse_stream.broker import EmbeddedBroker

    with EmbeddedBroker() as b:
        click.echo(f"  started an embedded Tansu broker at {b.bootstrap} (memory only)")
        yield b.bootstrap


def run_demo(config_path: str | None, scenario: str, out_dir: Path, env: Mapping[str, str]) -> None:
    from confluent_kafka import Producer

    from abuse_stream import simulate as sim
    from abuse_stream.cli import _topic_specs
    from abuse_stream.ingest.kafka import KafkaSource
    from abuse_stream.kafka_admin import TopicSpec, ensure_topics
    from abuse_stream.pipeline import build_pipeline
    from abuse_stream.service import Service
    from abuse_stream.sinks.kafka import KafkaSink
    from abuse_stream.store.db import Store, migrate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t_start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    if scenario not in sim.SCENARIOS:
        raise click.ClickException(f"unknown scenario {scenario!r}; known: {sorted(sim.SCENARIOS)}")
    click.echo(click.style("abuse-stream demo", bold=True))
    with _broker(env) as bootstrap:
        db_url = env.get("DATABASE_URL") or f"sqlite:///{(out_dir / 'abuse-stream.db').resolve()}"
        env2 = {**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": db_url}
        base = load_config(config_path, env2)
        data = base.model_dump()
        data["kafka"]["group_id"] = f"abuse-stream-demo-{uuid.uuid4().hex[:8]}"
        data["kafka"]["session_timeout_ms"] = 6000
        cfg = Config.model_validate(data)
        k = cfg.kafka

        if db_url.startswith("sqlite:"):
            Path(db_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        migrate(db_url)
        click.echo(f"  database: {db_url.split('@')[-1]}")
        ensure_topics(bootstrap, _topic_specs(cfg, TopicSpec))

        traffic = sim.generate(sim.SCENARIOS[scenario])
        sim.write_labels(traffic.labels, out_dir / "labels.csv")
        buf = io.StringIO()
        n = traffic.to_jsonl(buf)
        lines = buf.getvalue().splitlines()
        (out_dir / "traffic.jsonl").write_text(buf.getvalue())
        ips = traffic.records["ip"].to_list()
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 50,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 2_000_000,
            }
        )
        t0 = time.perf_counter()
        for ip, line in zip(ips, lines, strict=True):
            while True:
                try:
                    producer.produce(k.input_topic, key=ip.encode(), value=line.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(60)
        del producer
        click.echo(
            f"  produced {n:,} simulated requests from {traffic.labels.height:,} clients to "
            f"'{k.input_topic}' in {time.perf_counter() - t0:.1f}s"
        )

        pipeline = build_pipeline(cfg)
        store = Store(db_url, retries=cfg.database.write_retries)
        source = KafkaSource(k)
        sink = KafkaSink(k)
        t0 = time.perf_counter()
        try:
            stats = Service(cfg, pipeline, source, sink, store).run(threading.Event(), until_caught_up=True)
        finally:
            source.close()
            sink.close()
        secs = time.perf_counter() - t0
        click.echo(
            f"  the service consumed {stats.messages:,} messages in {secs:.1f}s (group join included), "
            f"published {stats.verdicts} verdicts and {stats.ip_changes} IP-list changes"
        )
        verdicts = _read_verdicts(bootstrap, k.verdicts_topic)
        stored = store.count("verdicts")
        from abuse_stream.report import write_report

        html = write_report(store.engine, out_dir / "report.html")
        store.close()
    report = render_report(verdicts, traffic.labels, stats.rejected_by_reason, stored)
    (out_dir / "report.txt").write_text(report)
    click.echo(report)
    click.echo(
        f"demo finished in {time.perf_counter() - t_start:.0f}s; files in {out_dir}/ "
        "(traffic.jsonl, labels.csv, report.txt, abuse-stream.db, report.html)"
    )
    click.echo(click.style(f"HTML report: {html.resolve()}", bold=True))


def _read_verdicts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Read the verdict topic back from the beginning: the demo reports what consumers would see."""
    import json

    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    c.subscribe([topic])
    out: dict[str, dict[str, Any]] = {}
    deadline = time.time() + 30
    idle = 0
    while time.time() < deadline and idle < 3:
        msgs = c.consume(10000, timeout=1.0)
        if not msgs:
            idle += 1 if c.assignment() else 0
            continue
        idle = 0
        for m in msgs:
            if m.error() is None and m.value():
                v = json.loads(m.value())
                out[v["verdict_id"]] = v  # consumers deduplicate on verdict_id
    c.close()
    return list(out.values())


def render_report(
    verdicts: list[dict[str, Any]], labels: pl.DataFrame, rejected: Mapping[str, int], stored: int
) -> str:
    lines = ["", click.style("Verdicts by bot type", bold=True)]
    by_type = Counter(v["bot_type"] for v in verdicts)
    by_action = Counter((v["bot_type"], v["action"]) for v in verdicts)
    for bt, n in by_type.most_common():
        acts = ", ".join(f"{a} {c}" for (b, a), c in sorted(by_action.items()) if b == bt)
        lines.append(f"  {bt:<22} {n:>5}   ({acts})")
    if not verdicts:
        lines.append("  (none)")
    lines.append(f"  stored in the database: {stored}; rejected input lines: {sum(rejected.values())}")

    kinds = dict(zip(labels["ip"].to_list(), labels["kind"].to_list(), strict=True))
    lines += ["", click.style("Top flagged IPs", bold=True)]
    per_ip: dict[str, list[dict[str, Any]]] = {}
    for v in verdicts:
        per_ip.setdefault(v["ip"], []).append(v)
    lines.append(f"  {'ip':<40} {'simulated as':<30} {'bot type':<18} {'conf':>5}  detectors that fired")
    for bt, _n in by_type.most_common():
        of_type = sorted(
            (v for v in verdicts if v["bot_type"] == bt), key=lambda v: (-v["window"]["requests"], v["ip"])
        )
        for v in of_type[:4]:
            ip = v["ip"]
            fired = "; ".join(
                f"{d['name']}: {d.get('detail') or _fmt(d['value'])} (value {_fmt(d['value'])}, threshold "
                f"{_fmt(d['threshold'])})"
                for d in v["detectors"]
                if d["counted"]
            )
            lines.append(
                f"  {ip:<40} {kinds.get(ip, '?'):<30} {v['bot_type']:<18} {v['confidence']:>5.2f}  {fired}"
            )

    lines += ["", click.style("Against the simulator's labels (per client IP)", bold=True)]
    flagged = set(per_ip)
    lab = labels.with_columns(flagged=pl.col("ip").is_in(list(flagged)))
    summary = (
        lab.group_by("kind", "is_bot")
        .agg(pl.len().alias("ips"), pl.col("flagged").sum().alias("flagged"))
        .sort("is_bot", "kind", descending=[True, False])
    )
    lines.append(f"  {'kind':<34} {'IPs':>6} {'flagged':>8}")
    for r in summary.iter_rows(named=True):
        tag = "bot " if r["is_bot"] else "legit"
        lines.append(f"  {tag} {r['kind']:<28} {r['ips']:>6} {r['flagged']:>8}")
    bots = lab.filter(pl.col("is_bot"))
    legit = lab.filter(~pl.col("is_bot"))
    tp = int(bots["flagged"].sum())
    fp = int(legit["flagged"].sum())
    recall = tp / bots.height if bots.height else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    lines.append(
        f"  precision {precision:.3f}, recall {recall:.3f} over {bots.height} bot IPs and "
        f"{legit.height} legitimate IPs ({fp} legitimate IPs flagged)"
    )
    return "\n".join(lines) + "\n"


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)
