"""Events: every verdict stored is an event; list them with filters and explain one as a table."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from abuse_stream.store.models import verdicts


def factor_text(value: float | None, baseline: float | None) -> str:
    """'7.5x above normal', '20x below normal', or '' when there is no baseline to compare with."""
    if value is None or baseline is None or baseline == 0 or value == 0:
        return ""
    f = value / baseline
    if f >= 1:
        return f"{f:.1f}x above normal"
    return f"{1 / f:.1f}x below normal"


def list_events(
    engine: Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    bot_type: str | None = None,
    ip: str | None = None,
    profile: str | None = None,
    action: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    q = select(verdicts).order_by(verdicts.c.detected_at.desc(), verdicts.c.verdict_id)
    if since:
        q = q.where(verdicts.c.detected_at >= since)
    if until:
        q = q.where(verdicts.c.detected_at < until)
    for col, val in (
        (verdicts.c.bot_type, bot_type),
        (verdicts.c.profile, profile),
        (verdicts.c.action, action),
    ):
        if val:
            q = q.where(col == val)
    net = ipaddress.ip_network(ip, strict=False) if ip else None
    if net is not None and net.num_addresses == 1:
        q = q.where(verdicts.c.ip == str(net.network_address))
    with engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                q.limit(limit if net is None or net.num_addresses == 1 else None)
            ).mappings()
        ]
    if net is not None and net.num_addresses > 1:  # CIDR filter: in Python, portable across databases
        rows = [r for r in rows if _in(r["ip"], net)][:limit]
    return rows


def _in(ip: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(ip.split("/")[0]) in net
    except ValueError:
        return False


def get_event(engine: Engine, verdict_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(select(verdicts).where(verdicts.c.verdict_id.startswith(verdict_id)))
            .mappings()
            .first()
        )
    return dict(row) if row else None


def _ts(d: Any) -> str:
    if d is None:
        return "-"
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.isoformat(timespec="seconds").replace("+00:00", "Z")


def _num(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def render_list(rows: list[dict[str, Any]]) -> str:
    out = [
        f"{'verdict_id':<14} {'detected_at':<21} {'ip':<24} {'bot_type':<21} {'conf':>5} {'action':<9} profile"
    ]
    for r in rows:
        out.append(
            f"{r['verdict_id'][:12]:<14} {_ts(r['detected_at']):<21} {r['ip']:<24} {r['bot_type']:<21} "
            f"{r['confidence']:>5.2f} {r['action']:<9} {r['profile']}"
        )
    if not rows:
        out.append("(no events)")
    return "\n".join(out)


def render_event(r: dict[str, Any]) -> str:
    lines = [
        f"verdict   {r['verdict_id']}",
        f"client    {r['ip']}" + (f" (session {r['session']})" if r.get("session") else ""),
        f"verdict   {r['bot_type']}, confidence {r['confidence']:.2f} at tolerance {r['tolerance']} "
        f"(profile {r['profile']}, application {r.get('application') or '-'})",
        f"action    {r['action']} until {_ts(r.get('expires_at'))}",
        f"window    {_ts(r['window_start'])} .. {_ts(r['window_end'])}, {r['window_requests']} requests",
        "",
        f"{'detector':<20} {'fired':<6} {'counted':<8} {'votes':>5} {'value':>10} {'normal':>10} {'threshold':>10}  factor / detail",
    ]
    for d in r["detectors"]:
        if not d.get("worked", True):
            continue
        extra = factor_text(d.get("value"), d.get("baseline"))
        detail = "; ".join(x for x in (extra, d.get("detail") or "") if x)
        lines.append(
            f"{d['name']:<20} {('yes' if d['fired'] else 'no'):<6} {('yes' if d.get('counted') else 'no'):<8} "
            f"{_num(d.get('votes')):>5} {_num(d.get('value')):>10} {_num(d.get('baseline')):>10} "
            f"{_num(d.get('threshold')):>10}  {detail}"
        )
    ev = r.get("evidence") or {}
    if ev:
        lines += [
            "",
            f"requests  {ev.get('requests')} from {ev.get('first_request')} to {ev.get('last_request')}",
        ]
        st = ev.get("statuses") or {}
        lines.append("statuses  " + ", ".join(f"{k} {v}" for k, v in st.items()))
        for e in ev.get("top_endpoints") or []:
            lines.append(f"endpoint  {e['requests']:>6}  {e['endpoint']}")
        for ua in ev.get("user_agents") or []:
            lines.append(f"agent     {ua}")
    return "\n".join(lines)
