"""The store on SQLite and a real Postgres: migrations, idempotent writes, entry lifecycle."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from abuse_stream.store.db import Store, migrate


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def verdict(vid: str, ip: str = "203.0.113.9") -> dict:
    return {
        "verdict_id": vid,
        "ip": ip,
        "session": None,
        "bot_type": "scraping",
        "confidence": 1.0,
        "action": "graylist",
        "profile": "default",
        "tolerance": "normal",
        "detected_at": "2026-11-01T00:05:00.000Z",
        "expires_at": "2026-11-01T01:05:00.000Z",
        "window": {"start": "2026-11-01T00:00:00.000Z", "end": "2026-11-01T00:05:00.000Z", "requests": 300},
        "detectors": [
            {
                "name": "request_rate",
                "fired": True,
                "value": 9.0,
                "baseline": 0.5,
                "threshold": 2.5,
                "votes": 1,
            }
        ],
        "application": "shop.example.com",
    }


def change(op: str, at: str, expires: str | None, vid: str = "v1", ip: str = "203.0.113.9") -> dict:
    return {
        "list": "graylist",
        "value": ip,
        "op": op,
        "expires_at": expires,
        "reason": "scraping: request_rate",
        "bot_type": "scraping",
        "verdict_id": vid,
        "source": "detector",
        "changed_at": at,
    }


def test_migrations_create_the_schema(db_url):
    migrate(db_url)
    migrate(db_url)  # idempotent
    store = Store(db_url)
    names = set(inspect(store.engine).get_table_names())
    assert {"verdicts", "ip_list_changes", "ip_list_entries", "alembic_version"} <= names
    store.close()


def test_writes_are_idempotent(db_url):
    migrate(db_url)
    store = Store(db_url)
    batch = (
        [verdict("v1"), verdict("v2", "198.51.100.7")],
        [change("add", "2026-11-01T00:05:00.000Z", "2026-11-01T01:05:00.000Z")],
    )
    store.write_batch(*batch)
    store.write_batch(*batch)  # a replayed batch (crash before the offset commit) changes nothing
    assert store.count("verdicts") == 2
    assert store.count("ip_list_changes") == 1
    assert store.count("ip_list_entries") == 1
    assert store.verdict_ids() == {"v1", "v2"}
    store.close()


def test_entry_lifecycle_add_extend_remove_readd(db_url):
    migrate(db_url)
    store = Store(db_url)
    store.write_batch([], [change("add", "2026-11-01T00:05:00.000Z", "2026-11-01T01:05:00.000Z")])
    store.write_batch([], [change("extend", "2026-11-01T00:30:00.000Z", "2026-11-01T01:30:00.000Z", "v2")])
    (entry,) = store.active_entries()
    assert entry["expires_at"].isoformat() == "2026-11-01T01:30:00+00:00" and entry["verdict_id"] == "v2"
    store.write_batch([], [change("remove", "2026-11-01T01:30:00.000Z", "2026-11-01T01:30:00.000Z", "v2")])
    assert store.active_entries() == []
    store.write_batch([], [change("add", "2026-11-01T02:00:00.000Z", "2026-11-01T03:00:00.000Z", "v3")])
    assert [e["verdict_id"] for e in store.active_entries()] == ["v3"]
    assert store.count("ip_list_changes") == 4
    store.close()


def test_baselines_survive_a_restart_through_the_store(db_url):
    from abuse_stream.config import build_config
    from abuse_stream.pipeline import Pipeline
    from abuse_stream.simulate import SCENARIOS, generate
    from tests.helpers import TinyClassifier

    migrate(db_url)
    store = Store(db_url)
    cfg = build_config({"detection": {"baseline": {"warmup_samples": 50, "epoch_s": 60}}})
    first = Pipeline(cfg, TinyClassifier())
    first.process_records(generate(SCENARIOS["tiny"]).records)
    first.finish()
    assert first.stats.epochs_learnt > 0
    warm = first.baselines.value("distinct_paths", None)
    assert warm is not None
    store.save_snapshot(Pipeline.SNAPSHOT, first.baselines.snapshot(), None)

    second = Pipeline(cfg, TinyClassifier())  # a restart: cold until restored
    assert second.baselines.value("distinct_paths", None) is None
    assert second.restore(store.load_snapshot(Pipeline.SNAPSHOT))
    assert second.baselines.value("distinct_paths", None) == warm
    assert second.restore(b"not a snapshot") is False  # a bad snapshot starts cold, never crashes
    store.close()


def test_verdict_evidence_and_its_endpoints_are_stored(db_url):
    from sqlalchemy import select

    from abuse_stream.store.models import verdict_endpoints, verdicts

    migrate(db_url)
    store = Store(db_url)
    v = verdict("v9")
    v["evidence"] = {
        "first_request": "2026-11-01T00:00:00.000Z",
        "last_request": "2026-11-01T00:05:00.000Z",
        "requests": 300,
        "top_endpoints": [
            {"endpoint": "GET /api/v1/orders/{id}", "requests": 290},
            {"endpoint": "GET /", "requests": 10},
        ],
        "statuses": {"2xx": 10, "3xx": 0, "4xx": 290, "5xx": 0},
        "user_agents": ["<script>x</script>"],
    }
    store.write_batch([v], [])
    store.write_batch([v], [])
    with store.engine.connect() as conn:
        eps = conn.execute(select(verdict_endpoints.c.endpoint, verdict_endpoints.c.requests)).all()
        ev = conn.execute(select(verdicts.c.evidence)).scalar_one()
    assert sorted(eps) == [("GET /", 10), ("GET /api/v1/orders/{id}", 290)]
    assert ev["user_agents"] == ["<script>x</script>"]
    store.close()


def test_adding_an_exception_removes_the_bot_made_entries_it_covers(db_url):
    from click.testing import CliRunner

    from abuse_stream.cli import cli

    migrate(db_url)
    store = Store(db_url)
    store.write_batch(
        [],
        [
            change("add", "2026-11-01T00:05:00.000Z", "2999-01-01T00:00:00.000Z", ip="203.0.113.9"),
            change("add", "2026-11-01T00:05:00.000Z", "2999-01-01T00:00:00.000Z", ip="198.51.100.7"),
        ],
    )
    env = {"DATABASE_URL": db_url}
    res = CliRunner().invoke(
        cli, ["exceptions", "add", "203.0.113.0/24", "--comment", "partner", "--no-publish"], env=env
    )
    assert res.exit_code == 0, res.output
    assert "removed 1 list entries" in res.output
    assert [e["value"] for e in store.active_entries()] == ["198.51.100.7"]
    res = CliRunner().invoke(cli, ["exceptions", "list"], env=env)
    assert "203.0.113.0/24" in res.output and "partner" in res.output
    assert CliRunner().invoke(cli, ["exceptions", "remove", "203.0.113.0/24"], env=env).exit_code == 0
    assert store.exceptions() == []
    store.close()


def test_manual_list_operations(db_url):
    from click.testing import CliRunner

    from abuse_stream.cli import cli

    env = {"DATABASE_URL": db_url}
    run = lambda *a: CliRunner().invoke(cli, ["lists", *a], env=env, catch_exceptions=False)  # noqa: E731
    assert (
        run("add", "203.0.113.0/24", "--list", "denylist", "--duration", "2h", "--no-publish").exit_code == 0
    )
    assert (
        run("add", "198.51.100.7", "--list", "graylist", "--reason", "abuse report", "--no-publish").exit_code
        == 0
    )
    shown = run("show").output
    assert (
        "203.0.113.0/24" in shown and "198.51.100.7" in shown and "never" in shown and "abuse report" in shown
    )
    assert "denylist  203.0.113.0/24" in run("check", "203.0.113.99").output  # covered by the network
    assert "on no list" in run("check", "192.0.2.1").output
    assert (
        run(
            "set-duration", "198.51.100.7", "--list", "graylist", "--duration", "1h", "--no-publish"
        ).exit_code
        == 0
    )
    assert "never" not in run("show", "--list", "graylist").output
    assert run("remove", "203.0.113.0/24", "--no-publish").exit_code == 0
    assert "203.0.113.0/24" not in run("show").output
    assert CliRunner().invoke(cli, ["lists", "add", "not-an-ip"], env=env).exit_code != 0
    store = Store(db_url)
    assert store.count("ip_list_changes") == 5  # add, add, extend, and a remove on each list
    store.close()


def test_health_reports_each_dependency(db_url, kafka_bootstrap):
    from click.testing import CliRunner

    from abuse_stream.cli import cli

    migrate(db_url)
    res = CliRunner().invoke(
        cli, ["health"], env={"DATABASE_URL": db_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    )
    assert res.exit_code == 0, res.output
    assert "kafka     ok" in res.output and "database  ok" in res.output and "schema revision" in res.output
    res = CliRunner().invoke(
        cli,
        ["health", "--timeout", "1"],
        env={"DATABASE_URL": db_url, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
    )
    assert res.exit_code == 1 and "kafka     DOWN" in res.output


def _entries(store: Store) -> list[dict]:
    from sqlalchemy import select

    from abuse_stream.store.models import ip_list_entries

    with store.engine.connect() as conn:
        rows = conn.execute(select(ip_list_entries).order_by("list", "value")).mappings()
        return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]


def test_one_batch_of_changes_leaves_the_entries_that_one_batch_per_change_leaves(db_url, tmp_path):
    """Entries are written in bulk (a batch's changes collapse per IP); the end state must be the one
    of applying the changes one by one, for every order of add / extend / remove in a batch."""
    a, b, c, d = "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"
    t = "2026-11-01T00:{:02d}:00.000Z".format
    first = [change("add", t(0), t(50), "v0", a), change("add", t(1), t(50), "v0", d)]
    second = [
        change("extend", t(2), t(55), "v1", a),  # existing: extended, then removed, then re-added
        change("remove", t(3), t(3), "v1", a),
        change("add", t(4), t(58), "v2", a),
        change("add", t(5), t(30), "v3", b),  # new: added and removed in the same batch
        change("remove", t(6), t(6), "v3", b),
        change("add", t(7), t(40), "v4", c),  # new: added, then extended
        change("extend", t(8), t(45), "v5", c),
        change("remove", t(9), t(9), "v0", d),  # existing: only removed
    ]
    migrate(db_url)
    bulk = Store(db_url)
    bulk.write_batch([], first)
    bulk.write_batch([], second)
    got = _entries(bulk)
    with bulk.engine.begin() as conn:
        for table in ("ip_list_changes", "ip_list_entries"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    for ch in first + second:
        bulk.write_batch([], [ch])
    one_by_one = _entries(bulk)
    bulk.close()
    assert got == one_by_one
    assert [(e["value"], e["verdict_id"], e["removed_at"] is None) for e in got] == [
        (a, "v2", True),
        (b, "v3", False),
        (c, "v5", True),
        (d, "v0", False),
    ]


def test_a_flood_of_verdicts_and_changes_in_one_batch_is_written(db_url):
    """A spoofed flood can list thousands of clients in one batch: more rows than one statement may
    carry parameters for (65,535 on Postgres). Found by the live benchmark: it was retried forever."""
    migrate(db_url)
    store = Store(db_url)
    n = 7000
    ips = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(n)]
    evidence = {"top_endpoints": [{"endpoint": "/login", "requests": 9}]}
    store.write_batch(
        [{**verdict(f"v{i}", ip), "evidence": evidence} for i, ip in enumerate(ips)],
        [
            change("add", "2026-11-01T00:05:00.000Z", "2026-11-01T01:05:00.000Z", f"v{i}", ip)
            for i, ip in enumerate(ips)
        ],
    )
    assert store.count("verdicts") == n and store.count("ip_list_changes") == n
    assert len(store.active_entries()) == n
    store.close()


def _tables(store: Store) -> dict[str, list[tuple]]:
    """Every stored row of the batch tables (the time of storing aside), as text, in key order."""
    queries = {
        "verdicts": "SELECT verdict_id, ip, session, bot_type, confidence, action, profile, tolerance,"
        " application, detected_at, expires_at, window_start, window_end, window_requests,"
        " detectors::text, evidence::text, evidence IS NULL FROM verdicts ORDER BY verdict_id",
        "verdict_endpoints": "SELECT * FROM verdict_endpoints ORDER BY verdict_id, endpoint",
        "ip_list_changes": "SELECT * FROM ip_list_changes ORDER BY change_id",
        "ip_list_entries": 'SELECT * FROM ip_list_entries ORDER BY "list", value',
    }
    with store.engine.connect() as conn:
        return {t: [tuple(map(str, r)) for r in conn.exec_driver_sql(q)] for t, q in queries.items()}


def test_the_bulk_statements_store_what_one_statement_per_row_stores(pg_url):
    """On Postgres a batch goes to each table in one statement (one array per column). It must leave
    every table as SQLAlchemy's executemany (one INSERT per row) does: repeated ids and endpoints,
    JSON with quotes and non-ASCII, no evidence, nulls, upserts, removals, a replayed batch."""
    t = "2026-11-01T00:{:02d}:00.000Z".format
    odd = verdict("v2", "2001:db8::7")
    odd.update(session="s\"1'\\", application=None, expires_at=None, confidence=0.123456789012345)
    odd["evidence"] = {
        "top_endpoints": [
            {"endpoint": 'GET /a"b\\c/ü/' + "x" * 600, "requests": 3},
            {"endpoint": 'GET /a"b\\c/ü/' + "x" * 601, "requests": 2},  # the same after truncation
            {"endpoint": "GET /{id}", "requests": 1},
        ],
        "user_agents": ['Mozilla/5.0 "quoted" \\ back\nslash', None],
    }
    plain = verdict("v1")  # no evidence key at all
    no_ev = {**verdict("v3", "198.51.100.3"), "evidence": None}
    batches = [
        (
            [plain, odd, no_ev, plain],
            [change("add", t(0), t(50), "v1"), change("add", t(1), t(9), "v2", "2001:db8::7")],
        ),
        ([odd], [change("extend", t(2), t(55), "v1"), change("remove", t(3), t(3), "v2", "2001:db8::7")]),
        ([], [change("add", t(4), None, "v3", "198.51.100.3"), change("remove", t(5), t(5), "v1")]),
    ]
    migrate(pg_url)
    got = {}
    for bulk in (True, False):
        store = Store(pg_url, bulk=bulk)
        assert store.bulk is bulk
        with store.engine.begin() as conn:
            for table in ("verdicts", "verdict_endpoints", "ip_list_changes", "ip_list_entries"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
        for vs, cs in batches + batches[:1]:  # the first batch again: a replay after a crash
            store.write_batch(vs, cs)
        got[bulk] = _tables(store)
        store.close()
    assert got[True] == got[False]
    assert [len(got[True][t]) for t in got[True]] == [
        3,
        2,
        6,
        3,
    ]  # the two long endpoints are one after truncation
