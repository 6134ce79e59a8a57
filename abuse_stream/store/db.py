"""Durable writes of one batch's verdicts and IP-list changes, idempotently, in one transaction.

* ``verdicts`` and ``ip_list_changes`` are append-only and keyed by deterministic ids: inserting
  the same batch twice (a replay, or a retry after a crash before the offset commit) stores nothing
  twice (``ON CONFLICT DO NOTHING``).
* ``ip_list_entries`` is the current state per (list, value): ``add``/``extend`` upsert it,
  ``remove`` closes it (``removed_at``); the history is the change table.

Works on Postgres (psycopg 3) and SQLite with the same statements (dialect-specific ``INSERT .. ON
CONFLICT``). On Postgres a batch's rows go to each table in ONE statement, as one array per column
(``INSERT .. SELECT FROM unnest(...)``), where psycopg's executemany sends one statement per row:
~15 % less time per 1,000 verdicts. Most of the rest is the server storing each verdict's detector
list (JSON, ~3 KB).
Transient failures are retried with exponential backoff; the caller commits Kafka offsets only
after :meth:`Store.write_batch` returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Float,
    Integer,
    Table,
    bindparam,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError

from abuse_stream.policy import ExceptionEntry
from abuse_stream.sinks.envelopes import dumps
from abuse_stream.store.models import (
    consumer_state,
    exceptions,
    ip_list_changes,
    ip_list_entries,
    model_snapshots,
    verdict_endpoints,
    verdicts,
)
from abuse_stream.verdicts import change_id

log = logging.getLogger(__name__)


def _dt(s: str | None) -> datetime | None:
    if s is None:
        return None
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _aware(d: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if d is not None and d.tzinfo is None:
        return d.replace(tzinfo=UTC)
    return d


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # JSON columns (verdict detectors and evidence) encoded by msgspec: json.dumps was a tenth of a
    # live batch's time with thousands of verdicts; psycopg takes the bytes as they are
    return create_engine(url, pool_pre_ping=True, json_serializer=dumps)


def migrations_dir() -> Path:
    """The Alembic scripts: shipped inside the wheel, or the checkout's ``migrations/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError(
        "Alembic migrations not found (expected abuse_stream/_migrations or ./migrations)"
    )


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: newest)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


@dataclass(frozen=True)
class PositionUpdate:
    group_id: str
    topic: str
    replay_from: dict[int, int]  # partition -> lowest offset the windows still need
    judged_until: dict[int, int | None]  # partition -> window steps below this bucket were judged


def _pg_array_type(table: Table, column: str) -> str:
    """The Postgres array type a column's values are sent as (JSON as text, cast in the statement)."""
    t = table.c[column].type
    if isinstance(t, DateTime):
        return "timestamptz[]"
    if isinstance(t, Float):
        return "float8[]"
    if isinstance(t, BigInteger):
        return "int8[]"
    if isinstance(t, Integer):
        return "int4[]"
    return "text[]"  # String, Text, JSON


def _pg_bulk_rows(
    table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str], update: Sequence[str] = ()
) -> tuple[str, tuple[list[Any], ...]]:
    """One ``INSERT .. SELECT FROM unnest(<one array per column>) ON CONFLICT ..`` for ``rows`` (all
    with the same keys): DO NOTHING, or DO UPDATE of ``update`` (then no two rows may share the
    conflict key). Rows are inserted in order, so a repeated key keeps its first row, as executing
    them one by one does. JSON values are encoded as executemany encodes them (``None`` -> ``null``)."""
    cols = list(rows[0])
    arrays: list[list[Any]] = []
    selected = []
    for c in cols:
        if isinstance(table.c[c].type, JSON):
            arrays.append([dumps(r[c]).decode() for r in rows])
            selected.append(f'u."{c}"::json')
        else:
            arrays.append([r[c] for r in rows])
            selected.append(f'u."{c}"')
    names = ", ".join(f'"{c}"' for c in cols)
    unnest = ", ".join(f"%b::{_pg_array_type(table, c)}" for c in cols)  # binary: no escaping
    target = ", ".join(f'"{c}"' for c in conflict)
    action = (
        "DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in update) if update else "DO NOTHING"
    )
    sql = (
        f'INSERT INTO "{table.name}" ({names}) SELECT {", ".join(selected)} '
        f"FROM unnest({unnest}) AS u({names}) ON CONFLICT ({target}) {action}"
    )
    return sql, tuple(arrays)


class Store:
    def __init__(
        self,
        url: str,
        retries: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        bulk: bool | None = None,
    ) -> None:
        """``bulk``: one statement per table and batch on Postgres (the default there); False sends
        SQLAlchemy's executemany (one statement per row), what SQLite always gets."""
        self.url = url
        self.engine = make_engine(url)
        self.retries = retries
        self._sleep = sleep
        postgres = self.engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert
        self.bulk = postgres if bulk is None else bulk and postgres

    def _insert_rows(
        self,
        conn: Any,
        table: Table,
        rows: Sequence[dict[str, Any]],
        conflict: Sequence[str],
        update: Sequence[str] = (),
    ) -> None:
        """Insert ``rows`` (same keys each); on a conflict with ``conflict`` skip the row, or with
        ``update`` set those columns from it."""
        if not rows:
            return
        if self.bulk:
            conn.exec_driver_sql(*_pg_bulk_rows(table, rows, conflict, update))
            return
        stmt = self._insert(table)
        if update:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(conflict), set_={k: stmt.excluded[k] for k in update}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
        conn.execute(stmt, list(rows))

    def close(self) -> None:
        self.engine.dispose()

    def write_batch(
        self,
        verdict_rows: Sequence[dict[str, Any]],
        changes: Sequence[dict[str, Any]],
        positions: PositionUpdate | None = None,
        snapshots: Sequence[tuple[str, bytes, float | None]] = (),
    ) -> None:
        """Store verdicts and list changes in one transaction; idempotent; retries transient errors.

        ``positions`` (consumer state) and ``snapshots`` (name, blob, event time: baselines, verdict
        books) go into the same transaction, so after a crash the store never holds verdicts of a
        state it cannot restore, or the reverse.
        """
        if not verdict_rows and not changes and positions is None and not snapshots:
            return
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                with self.engine.begin() as conn:
                    self._write(conn, verdict_rows, changes)
                    if positions is not None:
                        self._save_positions(conn, positions)
                    for snap in snapshots:
                        self._save_snapshot(conn, *snap)
                return
            except (OperationalError, InterfaceError) as e:
                if attempt == self.retries:
                    raise
                log.warning(
                    "database write failed (attempt %d/%d), retrying in %.1fs: %s",
                    attempt + 1,
                    self.retries + 1,
                    delay,
                    str(e).splitlines()[0],
                )
                self._sleep(delay)
                delay = min(delay * 2, 10.0)

    def _write(
        self, conn: Any, verdict_rows: Sequence[dict[str, Any]], changes: Sequence[dict[str, Any]]
    ) -> None:
        """One statement per table (see :meth:`_insert_rows`): on Postgres each column is one array
        parameter, so no batch comes near the 65,535 parameters a statement may carry."""
        now = datetime.now(UTC)
        if verdict_rows:
            rows = [
                {
                    "verdict_id": v["verdict_id"],
                    "ip": v["ip"],
                    "session": v.get("session"),
                    "bot_type": v["bot_type"],
                    "confidence": v["confidence"],
                    "action": v["action"],
                    "profile": v["profile"],
                    "tolerance": v["tolerance"],
                    "application": v.get("application"),
                    "detected_at": _dt(v["detected_at"]),
                    "expires_at": _dt(v.get("expires_at")),
                    "window_start": _dt(v["window"]["start"]),
                    "window_end": _dt(v["window"]["end"]),
                    "window_requests": v["window"]["requests"],
                    "detectors": v["detectors"],
                    "evidence": v.get("evidence"),
                    "stored_at": now,
                }
                for v in verdict_rows
            ]
            self._insert_rows(conn, verdicts, rows, ["verdict_id"])
            eps = [
                {
                    "verdict_id": v["verdict_id"],
                    "endpoint": e["endpoint"][:512],
                    "requests": int(e["requests"]),
                }
                for v in verdict_rows
                for e in (v.get("evidence") or {}).get("top_endpoints", [])
            ]
            self._insert_rows(conn, verdict_endpoints, eps, ["verdict_id", "endpoint"])
        if changes:
            rows = [
                {
                    "change_id": change_id(c),
                    "list": c["list"],
                    "value": c["value"],
                    "op": c["op"],
                    "expires_at": _dt(c.get("expires_at")),
                    "reason": c.get("reason"),
                    "bot_type": c.get("bot_type"),
                    "verdict_id": c.get("verdict_id"),
                    "source": c["source"],
                    "changed_at": _dt(c["changed_at"]),
                }
                for c in changes
            ]
            self._insert_rows(conn, ip_list_changes, rows, ["change_id"])
            self._apply_entries(conn, rows)

    def _apply_entries(self, conn: Any, rows: Sequence[dict[str, Any]]) -> None:
        """Bring ``ip_list_entries`` to the state after ``rows`` (changes in order), in two statements.

        Per (list, value) the batch's changes collapse to their end state: the last add/extend's
        values (``added_at`` from the first: a new row keeps when it was first listed), removed if a
        remove came after it. Values only removed in this batch close their open row.
        """
        upserts: dict[tuple[str, str], dict[str, Any]] = {}
        removals: dict[tuple[str, str], datetime] = {}
        for r in rows:
            k = (r["list"], r["value"])
            if r["op"] == "remove":
                if k in upserts:
                    upserts[k]["removed_at"] = upserts[k]["updated_at"] = r["changed_at"]
                else:
                    removals[k] = r["changed_at"]
                continue
            removals.pop(k, None)  # listed again: the upsert below reopens the row
            first = upserts.get(k)
            upserts[k] = {
                "list": r["list"],
                "value": r["value"],
                "expires_at": r["expires_at"],
                "reason": r["reason"],
                "bot_type": r["bot_type"],
                "verdict_id": r["verdict_id"],
                "source": r["source"],
                "added_at": first["added_at"] if first else r["changed_at"],
                "updated_at": r["changed_at"],
                "removed_at": None,
            }
        columns = ("expires_at", "reason", "bot_type", "verdict_id", "source", "updated_at", "removed_at")
        self._insert_rows(conn, ip_list_entries, list(upserts.values()), ["list", "value"], columns)
        if removals and self.bulk:
            keys = list(removals)
            conn.exec_driver_sql(
                "UPDATE ip_list_entries AS e SET removed_at = u.at, updated_at = u.at "
                "FROM unnest(%b::text[], %b::text[], %b::timestamptz[]) AS u(l, v, at) "
                'WHERE e."list" = u.l AND e.value = u.v AND e.removed_at IS NULL',
                ([lst for lst, _ in keys], [v for _, v in keys], [removals[k] for k in keys]),
            )
        elif removals:
            e = ip_list_entries.c
            conn.execute(
                ip_list_entries.update()
                .where(
                    (e.list == bindparam("k_list"))
                    & (e.value == bindparam("k_value"))
                    & e.removed_at.is_(None)
                )
                .values(removed_at=bindparam("at"), updated_at=bindparam("at")),
                [{"k_list": lst, "k_value": v, "at": at} for (lst, v), at in removals.items()],
            )

    # -- the exception list --------------------------------------------------------------------------

    def exceptions(self) -> list[ExceptionEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(exceptions).order_by(exceptions.c.id)).mappings().all()
        return [
            ExceptionEntry(
                r["kind"],
                r["value"],
                r["comment"],
                _aware(r["expires_at"]).timestamp() if r["expires_at"] else None,
            )
            for r in rows
        ]

    def add_exception(self, entry: ExceptionEntry) -> None:
        row = {
            "kind": entry.kind,
            "value": entry.value,
            "comment": entry.comment,
            "expires_at": datetime.fromtimestamp(entry.expires_at, UTC) if entry.expires_at else None,
            "created_at": datetime.now(UTC),
        }
        stmt = self._insert(exceptions).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "value"],
            set_={"comment": stmt.excluded.comment, "expires_at": stmt.excluded.expires_at},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def remove_exception(self, kind: str, value: str) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(
                exceptions.delete().where((exceptions.c.kind == kind) & (exceptions.c.value == value))
            )
        return bool(res.rowcount)

    # -- model snapshots (baselines survive restarts) ------------------------------------------------

    def save_snapshot(self, name: str, blob: bytes, event_time: float | None) -> None:
        with self.engine.begin() as conn:
            self._save_snapshot(conn, name, blob, event_time)

    def _save_snapshot(self, conn: Any, name: str, blob: bytes, event_time: float | None) -> None:
        row = {
            "name": name,
            "blob": blob,
            "event_time": datetime.fromtimestamp(event_time, UTC) if event_time is not None else None,
            "saved_at": datetime.now(UTC),
        }
        stmt = self._insert(model_snapshots).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={k: stmt.excluded[k] for k in ("blob", "event_time", "saved_at")}
        )
        conn.execute(stmt)

    # -- consumer state (restart where the windows need it) -------------------------------------------

    def _save_positions(self, conn: Any, pos: PositionUpdate) -> None:
        now = datetime.now(UTC)
        rows = [
            {
                "group_id": pos.group_id,
                "topic": pos.topic,
                "partition": partition,
                "replay_from": replay_from,
                "judged_until": pos.judged_until.get(partition),
                "updated_at": now,
            }
            for partition, replay_from in sorted(pos.replay_from.items())
        ]
        if not rows:
            return
        stmt = self._insert(consumer_state)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["group_id", "topic", "partition"],
                set_={k: stmt.excluded[k] for k in ("replay_from", "judged_until", "updated_at")},
            ),
            rows,
        )

    def load_positions(self, group_id: str, topic: str) -> dict[int, tuple[int, int | None]]:
        """partition -> (replay_from, judged_until) saved by the last delivered batch."""
        q = select(consumer_state).where(
            (consumer_state.c.group_id == group_id) & (consumer_state.c.topic == topic)
        )
        with self.engine.connect() as conn:
            return {
                int(r["partition"]): (int(r["replay_from"]), r["judged_until"])
                for r in conn.execute(q).mappings()
            }

    def load_snapshot(self, name: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(model_snapshots.c.blob).where(model_snapshots.c.name == name)).scalar()

    # -- reads (CLI, tests, demo report) -------------------------------------------------------------

    def verdict_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(verdicts.c.verdict_id)).scalars())

    def count(self, table: str) -> int:
        from sqlalchemy import func

        t = {"verdicts": verdicts, "ip_list_changes": ip_list_changes, "ip_list_entries": ip_list_entries}[
            table
        ]
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t)).scalar_one())

    def active_entries(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ip_list_entries).where(ip_list_entries.c.removed_at.is_(None))
            ).mappings()
            return [{**r, "expires_at": _aware(r["expires_at"])} for r in rows]
