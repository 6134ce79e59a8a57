"""Database outage: Postgres unreachable for 60 s in the middle of a stream. The service waits and
retries with backoff, commits no offsets for unwritten batches, says it is not ready, and once the
database is back everything lands: the stored verdicts equal those of an uninterrupted run."""

from __future__ import annotations

import json
import threading
import time

import pytest
from confluent_kafka import Producer
from sqlalchemy.engine import make_url

from abuse_stream.config import build_config
from abuse_stream.ingest.kafka import KafkaSource
from abuse_stream.kafka_admin import TopicSpec, ensure_topics
from abuse_stream.pipeline import Pipeline
from abuse_stream.service import Service
from abuse_stream.simulate import SCENARIOS, generate
from abuse_stream.sinks.kafka import KafkaSink
from abuse_stream.store.db import Store, migrate
from tests.helpers import TinyClassifier
from tests.proxy import TCPProxy

pytestmark = pytest.mark.slow
OUTAGE_S = 60


def _cfg(bootstrap: str, prefix: str, name: str, db: str):
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
            "window": {"length_s": 60, "step_s": 10, "lateness_s": 5},
            "detection": {"baseline": {"warmup_samples": 50, "epoch_s": 60}},
            "database": {"url": db, "write_retries": 1},
        }
    )


def _run(cfg, store: Store) -> Service:
    src = KafkaSource(cfg.kafka)
    svc = Service(cfg, Pipeline(cfg, TinyClassifier()), src, KafkaSink(cfg.kafka), store)
    svc.thread = threading.Thread(target=svc.run, args=(threading.Event(),), kwargs={"until_caught_up": True})
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
