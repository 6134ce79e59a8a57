"""Scale-out against a real broker and Postgres: two ``run`` instances in one consumer group split a
4-partition topic; killing one moves its partitions to the other, which rebuilds their state from the
store and goes on; the union of what they stored equals what one instance stores alone."""

from __future__ import annotations

import json
import signal

import pytest
from confluent_kafka import Producer

from abuse_stream.kafka_admin import TopicSpec, ensure_topics
from abuse_stream.simulate import SCENARIOS, generate
from abuse_stream.store.db import Store, migrate
from tests.integration.procs import (
    assignments,
    committed,
    drop_db,
    run_config,
    second_db,
    start_run,
    stop_run,
    wait_for,
)

pytestmark = pytest.mark.slow
PARTITIONS = 4


def _produce(bootstrap: str, topic: str, rows: list[dict], where: dict[str, set[int]]) -> dict[int, int]:
    """Produce keyed by client IP (what the mirror does); returns the end offset per partition and
    records in ``where`` which partitions each IP's records went to."""
    ends: dict[int, int] = {}

    def delivered(err, msg) -> None:
        assert err is None, err
        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)
        where.setdefault(msg.key().decode(), set()).add(msg.partition())

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for rec in rows:
        p.produce(topic, key=rec["ip"].encode(), value=json.dumps(rec).encode(), on_delivery=delivered)
    assert p.flush(30) == 0
    return ends


def test_two_instances_split_partitions_hand_over_on_kill_and_store_what_one_instance_stores(
    kafka_bootstrap, unique_topic, pg_url, tmp_path
):
    prefix = unique_topic("scale")
    topic = f"{prefix}-in"
    ensure_topics(kafka_bootstrap, {topic: TopicSpec(PARTITIONS)})
    rows = generate(SCENARIOS["tiny"]).records.sort("ts").to_dicts()
    half = len(rows) // 2
    where: dict[str, set[int]] = {}
    ends = _produce(kafka_bootstrap, topic, rows[:half], where)
    assert len(ends) == PARTITIONS

    pair_db = second_db(pg_url, "pair")
    try:
        for db in (pg_url, pair_db):
            migrate(db)
        # idle advance off: event time moves only with the data, so the pause between the halves
        # (while one instance dies) changes nothing and all runs judge the same steps
        group = f"{prefix}-pair"
        a_conf = run_config(tmp_path, "a", kafka_bootstrap, prefix, group=group, idle_advance_s=3600)
        b_conf = run_config(tmp_path, "b", kafka_bootstrap, prefix, group=group, idle_advance_s=3600)
        a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
        a = start_run(a_conf, pair_db, a_log)
        wait_for("a to own every partition", lambda: assignments(a_log)[-1:] == [[0, 1, 2, 3]], [a], [a_log])
        b = start_run(b_conf, pair_db, b_log)

        def split() -> bool:
            la, lb = assignments(a_log), assignments(b_log)
            return bool(la and lb) and len(la[-1]) == 2 and len(lb[-1]) == 2

        wait_for("the group to split the partitions 2 + 2", split, [a, b], [a_log, b_log])
        a_parts, b_parts = set(assignments(a_log)[-1]), set(assignments(b_log)[-1])
        assert a_parts | b_parts == set(range(PARTITIONS)) and not a_parts & b_parts
        wait_for(
            "both to process the first half",
            lambda: committed(kafka_bootstrap, group, topic, PARTITIONS) == ends,
            [a, b],
            [a_log, b_log],
        )
        store = Store(pair_db)
        before_kill = store.verdict_ids()
        assert before_kill, "the first half produces verdicts"

        b.send_signal(signal.SIGKILL)  # no goodbye: the group notices when b's session times out
        b.wait(timeout=10)
        kill_mark, log_mark = len(assignments(a_log)), len(a_log.read_text())
        for p, end in _produce(kafka_bootstrap, topic, rows[half:], where).items():
            ends[p] = end
        wait_for(
            "a to take over b's partitions",
            lambda: len(assignments(a_log)) > kill_mark and assignments(a_log)[-1] == [0, 1, 2, 3],
            [a],
            [a_log],
        )
        wait_for(
            "a to process the second half",
            lambda: committed(kafka_bootstrap, group, topic, PARTITIONS) == ends,
            [a],
            [a_log],
        )
        stop_run(a)
        got = store.verdict_ids()
        store.close()

        # the reference: one instance reads the whole topic alone
        ref_group = f"{prefix}-single"
        ref_log = tmp_path / "single.log"
        ref = start_run(
            run_config(tmp_path, "single", kafka_bootstrap, prefix, group=ref_group, idle_advance_s=3600),
            pg_url,
            ref_log,
        )
        wait_for(
            "the single instance to read everything",
            lambda: committed(kafka_bootstrap, ref_group, topic, PARTITIONS) == ends,
            [ref],
            [ref_log],
        )
        stop_run(ref)
        ref_store = Store(pg_url)
        expected = ref_store.verdict_ids()
        ref_store.close()
    finally:
        drop_db(pair_db)

    # each client's records went to one partition, so to one instance at a time
    assert all(len(parts) == 1 for parts in where.values())
    # a rebuilt b's partitions from what b stored (offsets one window back, baselines, verdict book)
    handover = a_log.read_text()[log_mark:]
    for p in sorted(b_parts):
        assert f"partition {p}: rebuilding windows from offset" in handover
    assert len(expected) > len(before_kill) > 0
    assert got == expected, (sorted(expected - got)[:5], sorted(got - expected)[:5])
