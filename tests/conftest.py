"""Shared fixtures: a real Kafka-protocol broker (embedded Tansu), throw-away Postgres databases, SQLite.

* ``kafka_bootstrap`` (session): ``"127.0.0.1:PORT"`` of one embedded Tansu broker shared by the whole
  session (or of ``$TEST_KAFKA_BOOTSTRAP`` when set).  Its memory storage is shared too: name topics with
  ``unique_topic`` and consumer groups uniquely so tests don't see each other's data.
* ``embedded_broker_factory`` (function): starts private brokers, e.g. to stop/restart one (an outage)
  without disturbing the shared broker; all are stopped after the test.
* ``unique_topic`` (function): a factory ``unique_topic(prefix="t") -> str`` of unique topic names.
* ``pg_url`` (function): SQLAlchemy URL of an empty, throw-away database on the Postgres server of
  ``$TEST_PG_ADMIN_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), dropped
  afterwards.  If the server is unreachable the test FAILS (never skips): CI must run these tests.
* ``sqlite_url``: ``sqlite:///<tmp_path>/abuse.db``.

Tests using ``kafka_bootstrap``, ``embedded_broker_factory`` or ``pg_url`` (directly or through another
fixture) are marked ``integration`` automatically.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
INTEGRATION_FIXTURES = frozenset({"kafka_bootstrap", "embedded_broker_factory", "pg_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


# -- Kafka ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a Kafka-protocol broker for the whole session (embedded Tansu by default)."""
    external = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if external:
        from abuse_stream.kafka_admin import wait_for_broker

        try:
            wait_for_broker(external, timeout=30)
        except TimeoutError as exc:
            pytest.fail(f"TEST_KAFKA_BOOTSTRAP={external!r} is not reachable: {exc}", pytrace=False)
        yield external
        return

    from abuse_stream.broker import EmbeddedBroker

    log_path = tmp_path_factory.mktemp("tansu") / "broker.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker.bootstrap


@pytest.fixture
def embedded_broker_factory(tmp_path: Path) -> Iterator[Callable[..., object]]:
    """``embedded_broker_factory(**kwargs) -> EmbeddedBroker`` (started); all stopped after the test."""
    from abuse_stream.broker import EmbeddedBroker

    brokers: list[EmbeddedBroker] = []

    def make(**kwargs: object) -> EmbeddedBroker:
        kwargs.setdefault("log_path", tmp_path / f"tansu-{len(brokers)}.log")
        broker = EmbeddedBroker(**kwargs)  # type: ignore[arg-type]
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.stop()


_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Factory of topic (or consumer-group) names unique to this call: ``<prefix>-<test>-<random>``."""
    test = _TOPIC_UNSAFE.sub("_", request.node.name)[:80]

    def make(prefix: str = "t") -> str:
        return f"{_TOPIC_UNSAFE.sub('_', prefix)}-{test}-{uuid.uuid4().hex[:10]}"

    return make


# -- SQL -----------------------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg) of a new empty database, dropped after the test."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin_url = make_url(os.environ.get("TEST_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL))
    # psycopg takes a libpq URI: same URL without SQLAlchemy's "+driver" suffix
    admin_conninfo = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    db_name = f"abuse_stream_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(admin_conninfo, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL at {admin_url.render_as_string(hide_password=True)} is unreachable ({exc}). "
            "Integration tests need it: start it (e.g. `pg_ctlcluster --skip-systemctl-redirect "
            "$(ls /etc/postgresql) main start`) or point $TEST_PG_ADMIN_URL at a server where this "
            "user may CREATE DATABASE.",
            pytrace=False,
        )
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name))
    with admin:
        try:
            admin.execute(create)
        except psycopg.Error as exc:
            pytest.fail(f"could not create the throw-away database {db_name}: {exc}", pytrace=False)
        try:
            yield admin_url.set(drivername="postgresql+psycopg", database=db_name).render_as_string(
                hide_password=False
            )
        finally:
            admin.execute(drop)  # FORCE: connections the test left open don't block the drop


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'abuse.db'}"
