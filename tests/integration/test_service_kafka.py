"""Kafka path end to end against a real Tansu broker and a real Postgres:
produce -> Service / `abuse-stream run` -> verdict topic + ip-list topic + DLQ + database rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, Producer

from abuse_stream.config import Config, build_config
from abuse_stream.detectors.ua_signatures import UASignatures
from abuse_stream.ingest.kafka import KafkaSource
from abuse_stream.kafka_admin import TopicSpec, ensure_topics
from abuse_stream.pipeline import Pipeline
from abuse_stream.service import Service
from abuse_stream.sinks.kafka import KafkaSink
from abuse_stream.store.db import Store, migrate
from tests.helpers import check_verdict

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"


def traffic() -> list[tuple[str, bytes]]:
    """(key, line): 40 humans, one sqlmap scanner, one flooding client and some garbage lines."""
    rows: list[tuple[float, str, dict]] = []
    for h in range(40):
        ip = f"198.51.100.{h + 1}"
        for i in range(6):
            rows.append((T0 + h * 3 + i * 25.0, ip, {"path": f"/products/{h * 10 + i}", "ua": BROWSER}))
    for i in range(60):
        rows.append(
            (
                T0 + 10 + i * 2.0,
                "203.0.113.66",
                {
                    "path": f"/index.php?id={i}' OR 1=1--",
                    "ua": "sqlmap/1.7.2#stable (https://sqlmap.org)",
                    "status": 404,
                },
            )
        )
    for i in range(1200):
        rows.append((T0 + 20 + i * 0.1, "192.0.2.200", {"path": "/api/v1/search", "ua": BROWSER}))
    rows.sort(key=lambda r: r[0])
    out = []
    for ts, ip, extra in rows:
        rec = {
            "ts": ts,
            "ip": ip,
            "method": "GET",
            "status": 200,
            "host": "shop.example.com",
            "bytes": 512,
            "latency_ms": 12.5,
            **extra,
        }
        out.append((ip, json.dumps(rec).encode()))
    out.insert(100, ("x", b"this is not a log line"))
    out.insert(200, ("x", b'{"ts": "2026-11-01T00:00:01Z", "ip": "1.2.3.4", "method": "GET"'))  # truncated
    out.insert(
        300, ("x", b'{"ts": "yesterday", "ip": "1.2.3.4", "method": "GET", "path": "/", "status": 200}')
    )
    out.insert(
        400, ("x", b'{"ts": 1793491260, "ip": "999.1.2.3", "method": "GET", "path": "/", "status": 200}')
    )
    return out


def make_config(bootstrap: str, prefix: str, db_url: str | None) -> Config:
    return build_config(
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "group_id": f"{prefix}-g",
                "input_topic": f"{prefix}-in",
                "dlq_topic": f"{prefix}-dlq",
                "verdicts_topic": f"{prefix}-verdicts",
                "ip_lists_topic": f"{prefix}-lists",
                "session_timeout_ms": 6000,
                "batch_size": 500,
                "input_partitions": 2,
            },
            "database": {"url": db_url},
            "window": {"length_s": 60, "step_s": 10, "lateness_s": 5},
        }
    )


def produce(bootstrap: str, topic: str, items: list[tuple[str, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
    for key, value in items:
        p.produce(topic, key=key.encode(), value=value)
    assert p.flush(30) == 0


def read_all(bootstrap: str, topic: str, expect_at_least: int = 1, timeout: float = 30.0) -> list:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    c.subscribe([topic])
    out, deadline, idle = [], time.time() + timeout, 0
    while time.time() < deadline:
        msgs = c.consume(1000, timeout=1.0)
        out += [m for m in msgs if m.error() is None]
        if not msgs and len(out) >= expect_at_least:
            idle += 1
            if idle >= 2:
                break
    c.close()
    return out


def setup_topics(cfg: Config) -> None:
    k = cfg.kafka
    ensure_topics(
        k.bootstrap_servers,
        {
            k.input_topic: TopicSpec(2),
            k.dlq_topic: TopicSpec(1),
            k.verdicts_topic: TopicSpec(1),
            k.ip_lists_topic: TopicSpec(1, {"cleanup.policy": "compact"}),
        },
    )


def test_service_consumes_detects_publishes_stores_and_commits(kafka_bootstrap, unique_topic, pg_url):
    cfg = make_config(kafka_bootstrap, unique_topic("svc"), pg_url)
    setup_topics(cfg)
    items = traffic()
    produce(kafka_bootstrap, cfg.kafka.input_topic, items)
    migrate(pg_url)
    store = Store(pg_url)
    source = KafkaSource(cfg.kafka)
    stats = Service(cfg, Pipeline(cfg, UASignatures.load()), source, KafkaSink(cfg.kafka), store).run(
        threading.Event(), until_caught_up=True
    )
    source.close()
    assert stats.messages == len(items)

    verdicts = [json.loads(m.value()) for m in read_all(kafka_bootstrap, cfg.kafka.verdicts_topic)]
    by_ip = {(v["ip"], v["bot_type"]) for v in verdicts}
    assert ("203.0.113.66", "security_crawlers") in by_ip
    assert ("192.0.2.200", "api_abuse") in by_ip
    assert not any(ip.startswith("198.51.100.") for ip, _ in by_ip), "a human was flagged"
    for v in verdicts:
        check_verdict(v)
    # one verdict per client and bot type while listed, despite many window steps of activity
    assert len(verdicts) == len({(v["ip"], v["bot_type"]) for v in verdicts})
    assert store.verdict_ids() == {v["verdict_id"] for v in verdicts}

    lists = read_all(kafka_bootstrap, cfg.kafka.ip_lists_topic)
    keys = {m.key().decode() for m in lists}
    assert "denylist:203.0.113.66" in keys and "graylist:192.0.2.200" in keys
    assert {e["value"] for e in store.active_entries()} == {"203.0.113.66", "192.0.2.200"}

    dlq = [json.loads(m.value()) for m in read_all(kafka_bootstrap, cfg.kafka.dlq_topic, expect_at_least=4)]
    assert sorted(d["reason"] for d in dlq) == [
        "bad_ip",
        "bad_timestamp",
        "invalid_json",
        "unrecognised_format",
    ]
    assert all(d["topic"] == cfg.kafka.input_topic and d["offset"] >= 0 and d["raw"] for d in dlq)

    # offsets were committed: the group has nothing left to read
    again = KafkaSource(cfg.kafka)
    deadline = time.time() + 20
    got = []
    while time.time() < deadline and not again.assignment:
        got += again.poll_batch()
    got += again.poll_batch()
    assert got == [] and again.caught_up()
    again.close()
    store.close()


def test_run_command_serves_until_sigterm_and_exits_cleanly(
    kafka_bootstrap, unique_topic, pg_url, tmp_path: Path
):
    cfg = make_config(kafka_bootstrap, unique_topic("run"), pg_url)
    conf_file = tmp_path / "abuse.yaml"
    data = cfg.model_dump(exclude={"detection"})
    data["database"]["url"] = None  # comes from the environment instead
    data["kafka"]["bootstrap_servers"] = "unused:1"
    data["window"]["idle_advance_s"] = 1.0
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data["metrics"] = {"port": port, "address": "127.0.0.1"}
    conf_file.write_text(yaml.safe_dump(data))
    migrate(pg_url)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": pg_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "abuse_stream", "run", "--config", str(conf_file)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        produce(kafka_bootstrap, cfg.kafka.input_topic, traffic())
        store = Store(pg_url)
        deadline = time.time() + 90
        while time.time() < deadline and store.count("verdicts") < 2:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.5)
        assert store.count("verdicts") >= 2  # the idle stream's last steps were judged too
        store.close()
        import urllib.request

        def scrape() -> tuple[str, dict[str, float]]:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return body, {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in body.splitlines()
                if line.startswith("abuse_stream_") and " " in line
            }

        deadline = time.time() + 30
        body, values = scrape()
        while values["abuse_stream_records_consumed_total"] < len(traffic()) and time.time() < deadline:
            time.sleep(0.5)
            body, values = scrape()
        assert values["abuse_stream_records_consumed_total"] == len(traffic())  # every message counted
        assert values["abuse_stream_clients_tracked"] > 0 and values["abuse_stream_ready"] == 1.0
        from confluent_kafka.admin import AdminClient

        topic = cfg.kafka.input_topic
        md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
        assert values["abuse_stream_partitions_assigned"] == len(
            md.topics[topic].partitions
        )  # all: one replica
        assert values["abuse_stream_batch_seconds_count"] > 0
        assert 'abuse_stream_records_rejected_total{reason="invalid_json"} 1.0' in body
        assert "abuse_stream_verdicts_total{" in body and "abuse_stream_consumer_lag" in body
        proc.send_signal(signal.SIGHUP)  # reload the config in place
        time.sleep(2.5)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("run did not stop on SIGTERM")
    err = proc.stderr.read()
    assert rc == 0, err
    assert "received SIGTERM" in err
    assert "config reloaded (window state and baselines kept)" in err


def test_ip_list_lifecycle_add_extend_expire_on_the_topic_and_in_the_database(
    kafka_bootstrap, unique_topic, pg_url
):
    cfg = make_config(kafka_bootstrap, unique_topic("life"), pg_url)
    data = cfg.model_dump(exclude={"detection"})
    data["profiles"] = [{"name": "short", "duration_s": 40}]  # entries live 40 s of event time
    cfg = build_config(data)
    setup_topics(cfg)
    produce(kafka_bootstrap, cfg.kafka.input_topic, traffic())  # the scanner stops at T0+130, humans go on
    migrate(pg_url)
    store = Store(pg_url)
    source = KafkaSource(cfg.kafka)
    Service(cfg, Pipeline(cfg, UASignatures.load()), source, KafkaSink(cfg.kafka), store).run(
        threading.Event(), until_caught_up=True
    )
    source.close()
    msgs = [
        m for m in read_all(kafka_bootstrap, cfg.kafka.ip_lists_topic) if m.key() == b"denylist:203.0.113.66"
    ]
    ops = [json.loads(m.value())["op"] if m.value() else None for m in msgs]
    # listed, extended while it kept probing, removed once 40 s passed after it stopped; a tombstone last
    assert ops[0] == "add" and "extend" in ops and ops[-2:] == ["remove", None], ops
    assert "203.0.113.66" not in {e["value"] for e in store.active_entries()}
    store.close()


def test_ten_thousand_hostile_records_through_the_service(kafka_bootstrap, unique_topic, pg_url):
    from tests.hostile import hostile_lines

    cfg = make_config(kafka_bootstrap, unique_topic("hostile"), pg_url)
    setup_topics(cfg)
    lines = hostile_lines(10_000)
    produce(kafka_bootstrap, cfg.kafka.input_topic, [(f"k{i % 7}", x) for i, x in enumerate(lines)])
    migrate(pg_url)
    store = Store(pg_url)
    source = KafkaSource(cfg.kafka)
    pipeline = Pipeline(cfg, UASignatures.load())
    stats = Service(cfg, pipeline, source, KafkaSink(cfg.kafka), store).run(
        threading.Event(), until_caught_up=True
    )
    source.close()
    assert stats.messages == 10_000  # nothing stopped the service
    rejected = sum(stats.rejected_by_reason.values())
    assert stats.accepted + rejected == 10_000 and rejected > 6000 and stats.dead_letters == rejected
    dlq = read_all(kafka_bootstrap, cfg.kafka.dlq_topic, expect_at_least=rejected, timeout=60)
    assert len(dlq) == rejected  # every bad record dead-lettered, with its reason
    reasons = {json.loads(m.value())["reason"] for m in dlq}
    assert {"invalid_json", "too_long", "invalid_utf8", "bad_ip", "bad_timestamp"} <= reasons
    store.close()
