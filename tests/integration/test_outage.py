"""Outages in the middle of a stream, against a real broker and Postgres.

Database: Postgres unreachable for 60 s. The service waits and retries with backoff, commits no
offsets for unwritten batches, says it is not ready, and once the database is back everything lands:
the stored verdicts equal those of an uninterrupted run.

Broker: the Kafka broker unreachable for 30 s while the gateways buffer their logs. The service waits,
holds event time (the delayed records must not come in "late"), rejoins the group, rebuilds its
partitions and goes on: the stored verdicts equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time

import pytest
import yaml
from confluent_kafka import Producer
from sqlalchemy.engine import make_url

from abuse_stream.broker import _TANSU_ENV, broker_binary, metadata_brokers
from abuse_stream.config import build_config
from abuse_stream.ingest.kafka import KafkaSource
from abuse_stream.kafka_admin import TopicSpec, ensure_topics
from abuse_stream.pipeline import Pipeline
from abuse_stream.service import Service
from abuse_stream.simulate import SCENARIOS, generate
from abuse_stream.sinks.kafka import KafkaSink
from abuse_stream.store.db import Store, migrate
from tests.helpers import TinyClassifier
from tests.integration.procs import committed, drop_db, second_db
from tests.proxy import TCPProxy

pytestmark = pytest.mark.slow
OUTAGE_S = 60


def _cfg(bootstrap: str, prefix: str, name: str, db: str, **window):
    return build_config(
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "group_id": f"{prefix}-{name}",
                "input_topic": f"{prefix}-in",
                "dlq_topic": f"{prefix}-{name}-dlq",
                "verdicts_topic": f"{prefix}-{name}-v",
                "ip_lists_topic": f"{prefix}-{name}-l",
                "session_timeout_ms": 6000,
                "batch_size": 200,
                "batch_timeout_s": 0.2,
            },
            "window": {"length_s": 60, "step_s": 10, "lateness_s": 5, **window},
            "detection": {"baseline": {"warmup_samples": 50, "epoch_s": 60}},
            "database": {"url": db, "write_retries": 1},
        }
    )


def _run(cfg, store: Store, until_caught_up: bool = True) -> Service:
    src = KafkaSource(cfg.kafka)
    svc = Service(cfg, Pipeline(cfg, TinyClassifier()), src, KafkaSink(cfg.kafka), store)
    svc.stop = threading.Event()
    svc.thread = threading.Thread(
        target=svc.run, args=(svc.stop,), kwargs={"until_caught_up": until_caught_up}
    )
    svc.thread.start()
    return svc


def test_a_database_outage_loses_nothing_and_commits_nothing_meanwhile(kafka_bootstrap, unique_topic, pg_url):
    prefix = unique_topic("dbdown")
    ensure_topics(kafka_bootstrap, {f"{prefix}-in": TopicSpec(2)})
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for rec in generate(SCENARIOS["tiny"]).records.iter_rows(named=True):
        p.produce(f"{prefix}-in", key=rec["ip"].encode(), value=json.dumps(rec).encode())
    assert p.flush(30) == 0
    migrate(pg_url)

    ref_store = Store(pg_url)  # reference: an uninterrupted run into its own tables' twin database
    url = make_url(pg_url)
    proxy = TCPProxy(url.host or "127.0.0.1", url.port or 5432)
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    ref = _run(_cfg(kafka_bootstrap, prefix, "ref", pg_url), ref_store)
    ref.thread.join(120)
    expected = ref_store.verdict_ids()
    ref_store.engine.dispose()
    with ref_store.engine.begin() as conn:  # the second run stores into the same, emptied database
        for t in (
            "verdict_endpoints",
            "verdicts",
            "ip_list_changes",
            "ip_list_entries",
            "model_snapshots",
            "consumer_state",
        ):
            conn.exec_driver_sql(f"DELETE FROM {t}")
    ref_store.close()

    store = Store(via_proxy, retries=1)
    svc = _run(_cfg(kafka_bootstrap, prefix, "outage", via_proxy), store)
    deadline = time.time() + 60
    while time.time() < deadline and svc.stats.commits < 3:  # some batches landed, then the database goes
        time.sleep(0.05)
    proxy.pause()
    commits_at_outage = svc.stats.commits
    time.sleep(OUTAGE_S)
    assert svc.stats.commits <= commits_at_outage + 1  # at most the batch already written before the cut
    assert svc.metrics.ready._value.get() == 0 and svc.metrics.db_errors._value.get() > 0
    assert svc.thread.is_alive()  # waiting, not dead
    proxy.resume()
    svc.thread.join(180)
    assert not svc.thread.is_alive()
    assert svc.metrics.ready._value.get() == 1
    got = store.verdict_ids()
    store.close()
    proxy.close()
    assert expected and got == expected


BROKER_OUTAGE_S = 30


def _tansu_behind(proxy: TCPProxy, listen_port: int) -> subprocess.Popen:
    """A Tansu broker that listens on ``listen_port`` and tells clients to connect through ``proxy``
    (its advertised address), so cutting the proxy cuts every client off while the data stays."""
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    proc = subprocess.Popen(
        [
            broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{listen_port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{proxy.port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if ("127.0.0.1", proxy.port) in {(h, p) for _, h, p in metadata_brokers("127.0.0.1", proxy.port)}:
                return proc
        except (OSError, ConnectionError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("Tansu behind the proxy did not come up")


def _produce(
    bootstrap: str, topic: str, rows: list[dict], ends: dict[int, int], flush: bool = True
) -> Producer:
    def delivered(err, msg) -> None:
        assert err is None, err
        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

    # a gateway's log shipper: it keeps what it cannot deliver and sends it once the broker is back
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "message.timeout.ms": 300_000})
    for rec in rows:
        p.produce(topic, key=rec["ip"].encode(), value=json.dumps(rec).encode(), on_delivery=delivered)
    if flush:
        assert p.flush(30) == 0
    return p


def _health(tmp_path, bootstrap: str, db: str):
    """``abuse-stream health`` as an operator (or a readiness probe) runs it."""
    from click.testing import CliRunner

    from abuse_stream.cli import cli

    conf = tmp_path / "health.yaml"
    conf.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": bootstrap}, "database": {"url": db}}))
    return CliRunner().invoke(cli, ["health", "--config", str(conf), "--timeout", "3"])


def test_a_broker_outage_loses_nothing_and_event_time_waits_for_the_delayed_records(
    unique_topic, pg_url, caplog, tmp_path
):
    caplog.set_level(logging.WARNING, logger="abuse_stream.service")
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    listen_port = listen.getsockname()[1]
    listen.close()
    proxy = TCPProxy("127.0.0.1", listen_port)
    broker = _tansu_behind(proxy, listen_port)
    bootstrap = f"127.0.0.1:{proxy.port}"
    ref_db = second_db(pg_url, "ref")
    try:
        prefix = unique_topic("brokerdown")
        topic = f"{prefix}-in"
        ensure_topics(bootstrap, {topic: TopicSpec(2)})
        rows = generate(SCENARIOS["tiny"]).records.sort("ts").to_dicts()
        half = len(rows) // 2
        ends: dict[int, int] = {}
        _produce(bootstrap, topic, rows[:half], ends)
        for db in (pg_url, ref_db):
            migrate(db)

        # the live service: idle for 1 s of wall time would advance event time (not during an outage)
        store = Store(pg_url, retries=1)
        cfg = _cfg(bootstrap, prefix, "live", pg_url, idle_advance_s=1.0)
        svc = _run(cfg, store, until_caught_up=False)
        deadline = time.time() + 90
        while time.time() < deadline and committed(bootstrap, cfg.kafka.group_id, topic, 2) != ends:
            time.sleep(0.3)
        assert committed(bootstrap, cfg.kafka.group_id, topic, 2) == ends
        before = store.verdict_ids()

        proxy.pause()  # the broker is gone for every client; the gateways keep logging meanwhile
        shipper = _produce(bootstrap, topic, rows[half:], ends, flush=False)
        time.sleep(BROKER_OUTAGE_S)
        assert svc.thread.is_alive()  # waiting, not dead
        assert svc.metrics.ready._value.get() == 0
        assert "the Kafka broker is unreachable" in caplog.text
        health = _health(tmp_path, bootstrap, pg_url)
        assert health.exit_code == 1 and "kafka     DOWN" in health.output, health.output
        proxy.resume()
        assert shipper.flush(120) == 0  # the buffered second half arrives after the outage

        def done() -> bool:  # everything read and committed, and every window step judged
            return committed(bootstrap, cfg.kafka.group_id, topic, 2) == ends and all(
                p.window.open.height == 0 for p in list(svc.parts.parts.values())
            )

        deadline = time.time() + 120
        while time.time() < deadline and not done():
            time.sleep(0.3)
        assert done(), caplog.text[-3000:]
        svc.stop.set()
        svc.thread.join(60)
        assert "the Kafka broker is reachable again" in caplog.text
        health = _health(tmp_path, bootstrap, pg_url)
        assert health.exit_code == 0, health.output
        assert svc.stats.rejected_by_reason.get("late", 0) == 0  # event time waited for them
        assert svc.metrics.ready._value.get() == 1
        got = store.verdict_ids()
        store.close()

        ref_store = Store(ref_db)  # the same topic read by one uninterrupted run
        ref = _run(_cfg(bootstrap, prefix, "ref", ref_db), ref_store)
        ref.thread.join(120)
        expected = ref_store.verdict_ids()
        ref_store.close()
        assert len(expected) > len(before) > 0  # the outage really was in the middle of the stream
        assert got == expected, (sorted(expected - got)[:5], sorted(got - expected)[:5])
    finally:
        broker.kill()
        broker.wait(10)
        proxy.close()
        drop_db(ref_db)
