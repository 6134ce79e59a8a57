"""Tables (SQLAlchemy Core). The schema itself is created only by the Alembic migrations in
``migrations/``; these definitions mirror them for queries and inserts."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

verdicts = Table(
    "verdicts",
    metadata,
    Column("verdict_id", String(64), primary_key=True),
    Column("ip", String(64), nullable=False, index=True),
    Column("session", Text),
    Column("bot_type", String(64), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("action", String(16), nullable=False),
    Column("profile", String(128), nullable=False),
    Column("tolerance", String(16), nullable=False),
    Column("application", Text),
    Column("detected_at", DateTime(timezone=True), nullable=False, index=True),
    Column("expires_at", DateTime(timezone=True)),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("window_requests", Integer, nullable=False),
    Column("detectors", JSON, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("evidence", JSON),
)

ip_list_changes = Table(
    "ip_list_changes",
    metadata,
    Column("change_id", String(64), primary_key=True),
    Column("list", String(16), nullable=False),
    Column("value", String(64), nullable=False, index=True),
    Column("op", String(16), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("reason", Text),
    Column("bot_type", String(64)),
    Column("verdict_id", String(64)),
    Column("source", String(16), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, index=True),
)

ip_list_entries = Table(
    "ip_list_entries",
    metadata,
    Column("list", String(16), nullable=False),
    Column("value", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("reason", Text),
    Column("bot_type", String(64)),
    Column("verdict_id", String(64)),
    Column("source", String(16), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("removed_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("list", "value", name="pk_ip_list_entries"),
)

model_snapshots = Table(
    "model_snapshots",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("blob", LargeBinary, nullable=False),
    Column("event_time", DateTime(timezone=True)),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)

exceptions = Table(
    "exceptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("value", String(128), nullable=False),
    Column("comment", Text),
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "value", name="uq_exceptions_kind_value"),
)

verdict_endpoints = Table(
    "verdict_endpoints",
    metadata,
    Column("verdict_id", String(64), nullable=False),
    Column("endpoint", String(512), nullable=False),
    Column("requests", Integer, nullable=False),
    PrimaryKeyConstraint("verdict_id", "endpoint", name="pk_verdict_endpoints"),
)

consumer_state = Table(
    "consumer_state",
    metadata,
    Column("group_id", String(255), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("replay_from", BigInteger, nullable=False),
    Column("judged_until", BigInteger),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("group_id", "topic", "partition", name="pk_consumer_state"),
)
