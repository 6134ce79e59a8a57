"""Crash safety against a real broker and Postgres: `kill -9` of `run` in the middle of a stream and a
restart end with exactly the verdicts an uninterrupted run stores (by verdict_id)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from abuse_stream.kafka_admin import TopicSpec, ensure_topics
from abuse_stream.simulate import SCENARIOS, generate
from abuse_stream.store.db import Store, migrate
from tests.integration.procs import drop_db, run_config, second_db, start_run, stop_run

pytestmark = pytest.mark.slow


def _settled(
    db: str,
    proc: subprocess.Popen,
    log: Path,
    assignments: int = 1,
    quiet_s: float = 8.0,
    limit_s: float = 120.0,
) -> None:
    """Wait until the run holds its partitions (the ``assignments``-th time in the log) and nothing new
    was stored for ``quiet_s`` after that."""
    store = Store(db)
    last, since, deadline = -1, time.time(), time.time() + limit_s
    try:
        while time.time() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            if log.read_text().count("assigned partitions") < assignments:
                since = time.time()
                time.sleep(0.5)
                continue
            n = store.count("verdicts")
            if n != last:
                last, since = n, time.time()
            elif n > 0 and time.time() - since > quiet_s:
                return
            time.sleep(0.5)
        pytest.fail(f"run did not settle: {log.read_text()[-3000:]}")
    finally:
        store.close()


def test_kill_9_mid_stream_then_restart_stores_exactly_the_uninterrupted_verdicts(
    kafka_bootstrap, unique_topic, pg_url, tmp_path
):
    prefix = unique_topic("crash")
    ensure_topics(kafka_bootstrap, {f"{prefix}-in": TopicSpec(2)})
    traffic = generate(SCENARIOS["tiny"])
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for rec in traffic.records.iter_rows(named=True):
        p.produce(f"{prefix}-in", key=rec["ip"].encode(), value=json.dumps(rec).encode())
    assert p.flush(30) == 0
    crash_db = second_db(pg_url)
    try:
        for db in (pg_url, crash_db):
            migrate(db)
        ref_conf = run_config(tmp_path, "ref", kafka_bootstrap, prefix)
        crash_conf = run_config(tmp_path, "crash", kafka_bootstrap, prefix)

        ref = start_run(ref_conf, pg_url, tmp_path / "ref.log")  # uninterrupted
        _settled(pg_url, ref, tmp_path / "ref.log")
        stop_run(ref)

        run = start_run(crash_conf, crash_db, tmp_path / "crash.log")
        store = Store(crash_db)
        deadline = time.time() + 60
        while time.time() < deadline and store.count("verdicts") < 3:  # in the middle of the stream
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        stored_before = store.count("verdicts")
        assert stored_before >= 3
        run = start_run(crash_conf, crash_db, tmp_path / "crash.log")  # restart: same group, same database
        _settled(crash_db, run, tmp_path / "crash.log", assignments=2)
        stop_run(run)

        expected = Store(pg_url).verdict_ids()
        got = store.verdict_ids()
        store.close()
        assert len(expected) > stored_before  # the kill really happened mid-stream
        assert got == expected, (sorted(expected - got)[:5], sorted(got - expected)[:5])
        assert "rebuilding windows from offset" in (tmp_path / "crash.log").read_text()
    finally:
        drop_db(crash_db)
