"""Read the statistics views (migration 0003) into plain Python, and print them as text tables.

All windows are relative to the newest detection in the database (``as_of``), not the wall clock,
so statistics of replayed old logs are meaningful.  Values are normalised across dialects:
timestamps become RFC 3339 strings (``...Z``), days ``YYYY-MM-DD``, percentages floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

Row = dict[str, Any]

#: the view behind each :class:`Stats` field
VIEWS = {
    "bot_ips_30d": "stats_bot_ips_30d",
    "bot_ips_30d_by_type": "stats_bot_ips_30d_by_type",
    "detections_daily": "stats_detections_daily",
    "top_attackers": "stats_top_attackers",
    "top_targets": "stats_top_targets",
    "detector_mix": "stats_detector_mix",
}


@dataclass
class Stats:
    """Rows of each statistics view (lists of dicts with the view's column names)."""

    bot_ips_30d: list[Row] = field(default_factory=list)
    bot_ips_30d_by_type: list[Row] = field(default_factory=list)
    detections_daily: list[Row] = field(default_factory=list)
    top_attackers: list[Row] = field(default_factory=list)
    top_targets: list[Row] = field(default_factory=list)
    detector_mix: list[Row] = field(default_factory=list)
    as_of: str | None = None  # newest detection (RFC 3339): the windows end here


class StatsUnavailable(RuntimeError):
    """The database has no statistics views (not migrated to revision 0003 or later)."""


def _ts(v: Any) -> str | None:
    """Timestamps from either dialect as RFC 3339 UTC (SQLite gives naive ISO text)."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return v
    if isinstance(v, datetime):
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(v)


def _day(v: Any) -> str:
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return str(v)[:10]


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v) if v != v.to_integral_value() else int(v)
    return v


def _pct(v: Any) -> float | None:
    return None if v is None else float(v)


def _rows(conn: Any, sql: str, **params: Any) -> list[Row]:
    return [{k: _num(v) for k, v in r.items()} for r in conn.execute(text(sql), params).mappings()]


def _add_latest_context(conn: Any, attackers: list[Row]) -> None:
    """Per top attacker, from its newest verdict: ``user_agent`` (the first of the evidence's user
    agents) and ``application``; ``None`` when unknown."""
    from sqlalchemy import select

    from abuse_stream.store.models import verdicts

    for r in attackers:
        r["user_agent"] = r["application"] = None
    by_ip = {r["ip"]: r for r in attackers}
    if not by_ip:
        return
    q = (
        select(verdicts.c.ip, verdicts.c.application, verdicts.c.evidence)
        .where(verdicts.c.ip.in_(list(by_ip)))
        .order_by(verdicts.c.detected_at.desc())
    )
    seen_app: set[str] = set()
    for ip, application, evidence in conn.execute(q):
        r = by_ip[ip]
        if ip not in seen_app and application:
            r["application"] = application
            seen_app.add(ip)
        uas = evidence.get("user_agents") if isinstance(evidence, dict) else None
        if r["user_agent"] is None and isinstance(uas, list) and uas:
            r["user_agent"] = str(uas[0])


def fetch_stats(engine: Engine | str, top: int = 10, days: int = 60) -> Stats:
    """Read every statistics view: the 30-day comparisons, ``days`` days of daily detections
    (ending at the newest detection), the ``top`` attacker IPs and targeted endpoints, and the
    detector mix.  ``engine`` is a SQLAlchemy engine or a database URL."""
    if isinstance(engine, str):
        from abuse_stream.store.db import make_engine

        eng = make_engine(engine)
        try:
            return fetch_stats(eng, top=top, days=days)
        finally:
            eng.dispose()

    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with engine.connect() as conn:
            lists = _rows(conn, "SELECT * FROM stats_bot_ips_30d ORDER BY list")
            by_type = _rows(
                conn,
                "SELECT * FROM stats_bot_ips_30d_by_type ORDER BY list, ips_last_30d DESC, bot_type",
            )
            daily = _rows(conn, "SELECT * FROM stats_detections_daily ORDER BY day, bot_type")
            attackers = _rows(
                conn,
                "SELECT * FROM stats_top_attackers ORDER BY verdicts DESC, requests DESC, ip LIMIT :n",
                n=top,
            )
            targets = _rows(
                conn,
                "SELECT * FROM stats_top_targets ORDER BY requests DESC, verdicts DESC, endpoint LIMIT :n",
                n=top,
            )
            mix = _rows(
                conn, "SELECT * FROM stats_detector_mix ORDER BY fired DESC, runs DESC, detector, bot_type"
            )
            _add_latest_context(conn, attackers)
    except (OperationalError, ProgrammingError) as e:
        msg = str(e.orig if getattr(e, "orig", None) is not None else e).splitlines()[0]
        if "stats_" in msg or "no such table" in msg or "does not exist" in msg:
            raise StatsUnavailable(
                f"the database has no statistics views ({msg}): run `abuse-stream migrate` first"
            ) from e
        raise

    as_of = _ts(lists[0]["as_of"]) if lists else None
    for r in lists + by_type:
        r["as_of"] = _ts(r["as_of"])
        r["pct_change"] = _pct(r["pct_change"])
    for r in daily:
        r["day"] = _day(r["day"])
    if daily and days > 0:
        last = date.fromisoformat(as_of[:10]) if as_of else date.fromisoformat(daily[-1]["day"])
        first = (last - timedelta(days=days - 1)).isoformat()
        daily = [r for r in daily if r["day"] >= first]
    for r in attackers:
        r["first_detected"] = _ts(r["first_detected"])
        r["last_detected"] = _ts(r["last_detected"])
        # the SQLite view relies on group_concat keeping a sorted subquery's order: make sure
        r["bot_types"] = ",".join(sorted(set((r["bot_types"] or "").split(",")) - {""}))
    return Stats(
        bot_ips_30d=lists,
        bot_ips_30d_by_type=by_type,
        detections_daily=daily,
        top_attackers=attackers,
        top_targets=targets,
        detector_mix=mix,
        as_of=as_of,
    )


# -- text ------------------------------------------------------------------------------------------


def fmt_pct(p: float | None) -> str:
    return "n/a" if p is None else f"{p:+.1f}%"


def _table(headers: list[str], rows: list[list[Any]], right: set[int] | None = None) -> list[str]:
    """Fixed-width columns; numbers (or the columns in ``right``) right-aligned."""
    cells = [[("-" if v is None else str(v)) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = set(right or ())
    for i in range(len(headers)):
        if rows and all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in rows):
            numeric.add(i)

    def line(vals: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in numeric else v.ljust(w)
            for i, (v, w) in enumerate(zip(vals, widths, strict=True))
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells] if cells else ["(none)"]
    return out


def _clip(s: Any, n: int = 60) -> str:
    s = "" if s is None else str(s)
    s = "".join(ch if ch.isprintable() else "?" for ch in s)  # no terminal control sequences
    return s if len(s) <= n else s[: n - 1] + "…"


TEXT_DAYS = 30


def render_text(stats: Stats) -> str:
    """The statistics as fixed-width text tables (for the terminal)."""
    out: list[str] = []
    if stats.as_of is None:
        out.append("abuse-stream statistics: no verdicts stored yet")
        return "\n".join(out) + "\n"
    out.append(f"abuse-stream statistics as of {stats.as_of} (the newest detection; windows end there)")
    out.append("")
    out.append("Bot IPs, last 30 days vs the 30 days before")
    out += _table(
        ["list", "last 30d", "prev 30d", "change"],
        [
            [r["list"], r["ips_last_30d"], r["ips_prev_30d"], fmt_pct(r["pct_change"])]
            for r in stats.bot_ips_30d
        ],
        right={3},
    )
    out.append("")
    out.append("By bot type")
    out += _table(
        ["list", "bot type", "last 30d", "prev 30d", "change"],
        [
            [
                r["list"],
                _clip(r["bot_type"], 32),
                r["ips_last_30d"],
                r["ips_prev_30d"],
                fmt_pct(r["pct_change"]),
            ]
            for r in stats.bot_ips_30d_by_type
        ],
        right={4},
    )
    out.append("")
    out.append(f"Detections per day (last {TEXT_DAYS} days with detections)")
    by_day: dict[str, dict[str, int]] = {}
    for r in stats.detections_daily:
        by_day.setdefault(r["day"], {})[r["bot_type"]] = r["verdicts"]
    types = sorted({r["bot_type"] for r in stats.detections_daily})
    out += _table(
        ["day", *[_clip(t, 24) for t in types], "total"],
        [[d, *[v.get(t, 0) for t in types], sum(v.values())] for d, v in sorted(by_day.items())[-TEXT_DAYS:]],
    )
    out.append("")
    out.append("Top attacker IPs")
    out += _table(
        ["ip", "verdicts", "requests", "bot types", "first detected", "last detected"],
        [
            [
                _clip(r["ip"], 45),
                r["verdicts"],
                r["requests"],
                _clip(r["bot_types"], 48),
                r["first_detected"],
                r["last_detected"],
            ]
            for r in stats.top_attackers
        ],
    )
    out.append("")
    out.append("Top targeted endpoints")
    out += _table(
        ["endpoint", "verdicts", "ips", "requests"],
        [[_clip(r["endpoint"], 70), r["verdicts"], r["ips"], r["requests"]] for r in stats.top_targets],
    )
    out.append("")
    out.append("Detector mix (verdicts in which the detector fired and counted)")
    out += _table(
        ["detector", "bot type", "fired", "ran"],
        [
            [_clip(r["detector"], 40), _clip(r["bot_type"], 32), r["fired"], r["runs"]]
            for r in stats.detector_mix
            if r["fired"]
        ],
    )
    return "\n".join(out) + "\n"
