"""A self-contained HTML report of the statistics views: one file, no network, no script.

The charts are inline SVG drawn here; the page carries a Content-Security-Policy that forbids
scripts, external resources and everything but inline styles and ``data:`` images.  Every value
that comes from the logs or the configuration (IPs, endpoints, bot types, detector names, the
title) is escaped with :func:`html.escape`, so a hostile User-Agent or path renders as text.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine

from abuse_stream.stats import Stats, StatsUnavailable, fetch_stats, fmt_pct, render_text

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

KNOWN_COLORS = {
    "account_takeover": "#d62728",
    "scraping": "#1f77b4",
    "security_crawlers": "#9467bd",
    "resource_consumption": "#ff7f0e",
    "api_abuse": "#2ca02c",
}
EXTRA_COLORS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#843c39")
LIST_COLORS = {"denylist": "#b2182b", "graylist": "#6b6b6b"}
PREV_COLOR = "#c7c7c7"


def esc(v: Any) -> str:
    """Text for HTML (element content and quoted attributes alike)."""
    return html.escape("" if v is None else str(v), quote=True)


def _n(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() else f"{v:,.2f}"
    return esc(v)


def _when(ts: Any) -> str:
    """An RFC 3339 UTC timestamp as "YYYY-MM-DD HH:MM:SS" on one line (the header says UTC)."""
    if not ts:
        return "-"
    return " ".join(f'<span class="nw">{esc(part)}</span>' for part in str(ts).removesuffix("Z").split("T"))


def _clip(s: Any, n: int) -> str:
    s = "" if s is None else str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def _colors(bot_types: list[str]) -> dict[str, str]:
    out, extra = {}, 0
    for t in sorted(set(bot_types)):
        if t in KNOWN_COLORS:
            out[t] = KNOWN_COLORS[t]
        else:
            out[t] = EXTRA_COLORS[extra % len(EXTRA_COLORS)]
            extra += 1
    return out


def _nice_step(v: float) -> float:
    """A 1-2-5 step of about ``v`` (at least 1: the charts count things)."""
    if v <= 1:
        return 1
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp  # pragma: no cover


def _axis(vmax: float, ticks: int = 4) -> tuple[float, list[float]]:
    step = _nice_step(max(vmax, 1) / ticks)
    top = step * math.ceil(max(vmax, 1) / step)
    return top, [step * i for i in range(int(round(top / step)) + 1)]


def _legend(colors: dict[str, str]) -> str:
    items = "".join(
        f'<span class="key"><span class="swatch" style="background:{c}"></span>{esc(t)}</span>'
        for t, c in colors.items()
    )
    return f'<div class="legend">{items}</div>'


# -- charts ----------------------------------------------------------------------------------------


def _comparison_chart(rows: list[dict[str, Any]]) -> str:
    """Per list: the previous 30 days (grey) next to the last 30 days (list colour)."""
    if not rows:
        return ""
    w, h, left, bottom, top_pad = 420, 240, 44, 28, 36
    plot_h = h - bottom - top_pad
    vmax, ticks = _axis(max([r["ips_prev_30d"] or 0 for r in rows] + [r["ips_last_30d"] or 0 for r in rows]))
    group_w = (w - left - 10) / len(rows)
    bar_w = min(48.0, group_w / 3)
    parts = [
        f'<svg id="chart-comparison" class="chart" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="Bot IPs: last 30 days vs the 30 days before">'
    ]
    for t in ticks:
        y = top_pad + plot_h - plot_h * t / vmax
        parts.append(f'<line class="grid" x1="{left}" x2="{w - 10}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_n(int(t))}</text>'
        )
    parts.append(
        f'<rect class="swatch" x="{left}" y="4" width="11" height="11" fill="{PREV_COLOR}"/>'
        f'<text class="tick" x="{left + 15}" y="14">previous 30 days</text>'
        f'<rect class="swatch" x="{left + 130}" y="4" width="11" height="11" fill="{LIST_COLORS["denylist"]}"/>'
        f'<rect class="swatch" x="{left + 142}" y="4" width="11" height="11" fill="{LIST_COLORS["graylist"]}"/>'
        f'<text class="tick" x="{left + 157}" y="14">last 30 days</text>'
    )
    for i, r in enumerate(rows):
        gx = left + group_w * i + (group_w - 2 * bar_w - 8) / 2
        for j, (key, label, color) in enumerate(
            (
                ("ips_prev_30d", "previous 30 days", PREV_COLOR),
                ("ips_last_30d", "last 30 days", LIST_COLORS.get(r["list"], "#444")),
            )
        ):
            v = r[key] or 0
            bh = plot_h * v / vmax
            x = gx + j * (bar_w + 8)
            y = top_pad + plot_h - bh
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{bh:.1f}" '
                f'fill="{color}"><title>{esc(r["list"])}, {label}: {_n(v)} IPs</title></rect>'
            )
            parts.append(
                f'<text class="val" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{_n(v)}</text>'
            )
        parts.append(
            f'<text class="label" x="{gx + bar_w + 4:.1f}" y="{h - 8}" text-anchor="middle">{esc(r["list"])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _days(stats: Stats) -> list[str]:
    days = sorted({r["day"] for r in stats.detections_daily})
    if not days:
        return []
    first = date.fromisoformat(days[0])
    last = date.fromisoformat(days[-1])
    if stats.as_of:
        last = max(last, date.fromisoformat(stats.as_of[:10]))
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _timeline_chart(stats: Stats, colors: dict[str, str]) -> str:
    """Stacked bars: verdicts per day, one segment per bot type (gaps are days without any)."""
    days = _days(stats)
    if not days:
        return ""
    cells: dict[tuple[str, str], dict[str, Any]] = {
        (r["day"], r["bot_type"]): r for r in stats.detections_daily
    }
    totals = {d: 0 for d in days}
    for r in stats.detections_daily:
        totals[r["day"]] = totals.get(r["day"], 0) + (r["verdicts"] or 0)
    w, h, left, right, top_pad, bottom = 960, 300, 48, 12, 14, 40
    plot_w, plot_h = w - left - right, h - top_pad - bottom
    vmax, ticks = _axis(max(totals.values()))
    slot = plot_w / len(days)
    bar_w = max(1.0, slot * 0.8)
    parts = [
        f'<svg id="chart-timeline" class="chart" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="Detections per day and bot type">'
    ]
    for t in ticks:
        y = top_pad + plot_h - plot_h * t / vmax
        parts.append(f'<line class="grid" x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_n(int(t))}</text>'
        )
    if stats.as_of:  # where the headline's "last 30 days" begin
        boundary = (datetime.fromisoformat(stats.as_of.replace("Z", "+00:00")) - timedelta(days=30)).date()
        if boundary.isoformat() in totals:
            x = left + slot * (days.index(boundary.isoformat()) + 1)
            parts.append(
                f'<line class="boundary" x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad}" y2="{top_pad + plot_h}"/>'
                f'<text class="tick" x="{x + 4:.1f}" y="{top_pad + 10}">last 30 days →</text>'
            )
    order = list(colors)
    for i, d in enumerate(days):
        x = left + slot * i + (slot - bar_w) / 2
        y = top_pad + plot_h
        for bt in order:
            cell = cells.get((d, bt))
            if not cell or not cell["verdicts"]:
                continue
            bh = plot_h * cell["verdicts"] / vmax
            y -= bh
            parts.append(
                f'<rect class="seg" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{bh:.1f}" '
                f'fill="{colors[bt]}"><title>{esc(d)} {esc(bt)}: {_n(cell["verdicts"])} verdicts, '
                f"{_n(cell['ips'])} IPs</title></rect>"
            )
    every = max(1, math.ceil(len(days) / 10))
    for i in range(0, len(days), every):
        x = left + slot * (i + 0.5)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{h - bottom + 16}" text-anchor="middle">{esc(days[i][5:])}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{w - right}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _hbar_chart(
    chart_id: str,
    label: str,
    items: list[tuple[str, list[tuple[float, str, str]]]],
    label_chars: int = 34,
) -> str:
    """Horizontal bars, one per item; each item is ``(label, [(value, colour, tooltip), ...])``
    (several values make a stacked bar).  Labels are clipped for display; the full text is the
    tooltip."""
    if not items:
        return ""
    row_h, w, left, right, top_pad = 24, 960, 300, 70, 6
    h = top_pad * 2 + row_h * len(items)
    plot_w = w - left - right
    vmax = max(sum(v for v, _, _ in segs) for _, segs in items) or 1
    parts = [
        f'<svg id="{esc(chart_id)}" class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{esc(label)}">'
    ]
    for i, (name, segs) in enumerate(items):
        y = top_pad + row_h * i
        parts.append(
            f'<text class="label" x="{left - 8}" y="{y + row_h * 0.68:.1f}" text-anchor="end">'
            f"<title>{esc(name)}</title>{esc(_clip(name, label_chars))}</text>"
        )
        x = float(left)
        for v, color, tip in segs:
            if not v:
                continue
            bw = plot_w * v / vmax
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" '
                f'fill="{color}"><title>{esc(tip)}</title></rect>'
            )
            x += bw
        total = sum(v for v, _, _ in segs)
        parts.append(f'<text class="val" x="{x + 6:.1f}" y="{y + row_h * 0.68:.1f}">{_n(total)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- page ------------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """``rows`` are already-escaped cell HTML."""
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _delta(r: dict[str, Any]) -> str:
    p = r.get("pct_change")
    if p is None:
        cls, text = "flat", "no previous data" if not r.get("ips_prev_30d") else "n/a"
    elif p > 0:
        cls, text = "up", f"▲ {fmt_pct(p)}"
    elif p < 0:
        cls, text = "down", f"▼ {fmt_pct(p)}"
    else:
        cls, text = "flat", "± 0.0%"
    return f'<span class="delta {cls}">{esc(text)}</span>'


STYLE = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#e3e6ec;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:17px;margin:0 0 12px}
.meta,.note{color:var(--muted);margin:0}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:18px 20px;margin:16px 0}
.cards{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.card{flex:1 1 180px;border:1px solid var(--line);border-radius:8px;padding:12px 16px}
.card h3{margin:0;font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.big{font-size:34px;font-weight:650;margin:2px 0}
.delta{font-weight:600}.delta.up{color:#b2182b}.delta.down{color:#1a7f37}.delta.flat{color:var(--muted)}
.chart{width:100%;height:auto;display:block;margin:6px 0 10px}
#chart-comparison{max-width:420px;flex:1 1 320px}
.chart text{font-size:11px;fill:var(--muted)}
.chart .label{font-size:12px;fill:var(--fg)}
.chart .val{font-size:11px;fill:var(--fg)}
.chart .grid{stroke:var(--line)}
.chart .axis{stroke:#9aa1ad}
.chart .boundary{stroke:#b2182b;stroke-dasharray:4 3}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:4px 0}
.key{display:inline-flex;align-items:center;gap:6px;color:var(--muted)}
.swatch{width:12px;height:12px;border-radius:2px;display:inline-block}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td{overflow-wrap:break-word}
.wrap{overflow-wrap:anywhere}
.ip{display:inline-block;min-width:15ch;overflow-wrap:anywhere}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.empty{color:var(--muted);font-style:italic}
.nw{white-space:nowrap}
footer{color:var(--muted);font-size:12px;text-align:center;margin:20px 0}
"""


def render_html(stats: Stats, generated_at: str, title: str = "abuse-stream report") -> str:
    """The whole report as one HTML document (inline CSS and SVG, no script, strict CSP)."""
    bot_types = sorted(
        {r["bot_type"] for r in stats.detections_daily}
        | {r["bot_type"] for r in stats.bot_ips_30d_by_type}
        | {r["bot_type"] for r in stats.detector_mix}
    )
    colors = _colors(bot_types)
    empty = '<p class="empty">No data yet.</p>'
    as_of = esc(stats.as_of) if stats.as_of else "no detections yet"

    # 1. 30-day comparison
    cards = "".join(
        f'<div class="card"><h3>{esc(r["list"])}ed IPs</h3><div class="big">{_n(r["ips_last_30d"])}</div>'
        f"<div>{_delta(r)}</div>"
        f'<p class="note">vs {_n(r["ips_prev_30d"])} in the 30 days before</p></div>'
        for r in stats.bot_ips_30d
    )
    by_type = _table(
        ["list", "bot type", "last 30 days", "previous 30 days", "change"],
        [
            [esc(r["list"]), esc(r["bot_type"]), _n(r["ips_last_30d"]), _n(r["ips_prev_30d"]), _delta(r)]
            for r in stats.bot_ips_30d_by_type
        ],
        {2, 3, 4},
    )
    comparison = (
        f'<div class="cards">{cards}{_comparison_chart(stats.bot_ips_30d)}</div>'
        + (f"<h2>By bot type</h2>{by_type}" if stats.bot_ips_30d_by_type else "")
        if stats.bot_ips_30d
        else empty
    )

    # 2. daily timeline
    timeline = _timeline_chart(stats, colors)
    timeline = (
        (
            _legend(
                {t: c for t, c in colors.items() if any(r["bot_type"] == t for r in stats.detections_daily)}
            )
            + timeline
        )
        if timeline
        else empty
    )

    # 3. attackers
    attackers_chart = _hbar_chart(
        "chart-attackers",
        "Top attacker IPs by verdicts",
        [
            (
                r["ip"],
                [
                    (
                        r["verdicts"] or 0,
                        "#b2182b",
                        f"{r['ip']}: {r['verdicts']} verdicts, {r['requests']} requests",
                    )
                ],
            )
            for r in stats.top_attackers
        ],
    )
    attackers_table = _table(
        [
            "IP",
            "verdicts",
            "requests",
            "bot types",
            "application",
            "user agent (latest)",
            "first detected (UTC)",
            "last detected (UTC)",
        ],
        [
            [
                f'<code class="ip">{esc(r["ip"])}</code>',
                _n(r["verdicts"]),
                _n(r["requests"]),
                f'<span class="wrap">{esc((r["bot_types"] or "").replace(",", ", "))}</span>',
                f'<span class="wrap">{esc(r.get("application") or "-")}</span>',
                f'<code class="wrap">{esc(r.get("user_agent") or "-")}</code>',
                _when(r["first_detected"]),
                _when(r["last_detected"]),
            ]
            for r in stats.top_attackers
        ],
        {1, 2},
    )
    attackers = attackers_chart + attackers_table if stats.top_attackers else empty

    # 4. targets
    targets_chart = _hbar_chart(
        "chart-targets",
        "Top targeted endpoints by requests",
        [
            (
                r["endpoint"],
                [
                    (
                        r["requests"] or 0,
                        "#1f77b4",
                        f"{r['endpoint']}: {r['requests']} requests from {r['ips']} IPs",
                    )
                ],
            )
            for r in stats.top_targets
        ],
        label_chars=40,
    )
    targets_table = _table(
        ["endpoint", "verdicts", "IPs", "requests"],
        [
            [
                f'<code class="wrap">{esc(r["endpoint"])}</code>',
                _n(r["verdicts"]),
                _n(r["ips"]),
                _n(r["requests"]),
            ]
            for r in stats.top_targets
        ],
        {1, 2, 3},
    )
    targets = targets_chart + targets_table if stats.top_targets else empty

    # 5. detector mix: one stacked bar per detector, a segment per bot type
    fired = [r for r in stats.detector_mix if r["fired"]]
    per_detector: dict[str, list[dict[str, Any]]] = {}
    for r in fired:
        per_detector.setdefault(r["detector"], []).append(r)
    ranked = sorted(per_detector.items(), key=lambda kv: (-sum(r["fired"] for r in kv[1]), str(kv[0])))
    mix_colors = {t: colors.get(t, "#7f7f7f") for t in sorted({r["bot_type"] for r in fired})}
    mix_chart = _hbar_chart(
        "chart-detectors",
        "Detector mix: verdicts in which each detector fired",
        [
            (
                name,
                [
                    (
                        r["fired"],
                        colors.get(r["bot_type"], "#7f7f7f"),
                        f"{name} / {r['bot_type']}: fired in {r['fired']} of {r['runs']} verdicts",
                    )
                    for r in sorted(rows, key=lambda r: str(r["bot_type"]))
                ],
            )
            for name, rows in ranked
        ],
    )
    mix_table = _table(
        ["detector", "bot type", "fired", "ran"],
        [[esc(r["detector"]), esc(r["bot_type"]), _n(r["fired"]), _n(r["runs"])] for r in fired],
        {2, 3},
    )
    mix = _legend(mix_colors) + mix_chart + mix_table if fired else empty

    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<header>
<h1>{esc(title)}</h1>
<p class="meta">Generated {esc(generated_at)} · data as of {as_of} (the newest detection: every window
is measured back from it, not from today, so replayed old logs give meaningful figures)</p>
</header>
<section id="comparison"><h2>Bot IPs: last 30 days vs the 30 days before</h2>{comparison}</section>
<section id="timeline"><h2>Detections per day</h2>{timeline}</section>
<section id="attackers"><h2>Top attacker IPs</h2>{attackers}</section>
<section id="targets"><h2>Top targeted endpoints</h2>{targets}</section>
<section id="detectors"><h2>Detector mix</h2>
<p class="note">Verdicts in which each detector fired and counted towards the bot type.</p>{mix}</section>
<footer>abuse-stream · statistics from the SQL views <code>stats_*</code></footer>
</main>
</body>
</html>
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_html(stats: Stats, path: str | Path, generated_at: str | None = None) -> Path:
    out = Path(path)
    out.write_text(render_html(stats, generated_at or _now()), encoding="utf-8")
    return out


def write_report(engine: Engine | str, path: str | Path, top: int = 10) -> Path:
    """Read the statistics views of ``engine`` (an engine or a URL) and write the HTML report."""
    return write_html(fetch_stats(engine, top=top), path)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.command("report")
@click.option(
    "--database-url",
    envvar="DATABASE_URL",
    default="sqlite:///abuse-stream.db",
    show_default=True,
    show_envvar=True,
    help="SQLAlchemy URL of the database to report on.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default="abuse-stream-report.html",
    show_default=True,
    help="Where to write the HTML report.",
)
@click.option(
    "--top", type=click.IntRange(min=1), default=10, show_default=True, help="Rows in the top lists."
)
def report_command(database_url: str, out: str, top: int) -> None:
    """Print the statistics (30-day comparison, daily detections, top attackers and targets,
    detector mix) and write them as a self-contained HTML report."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        url = make_url(database_url)
    except ArgumentError as e:
        raise click.ClickException(f"--database-url: not a database URL ({e})") from e
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():  # connecting would create an empty file
            raise click.ClickException(
                f"no database at {url.database}: run `abuse-stream replay`/`demo` first or pass --database-url"
            )
    try:
        stats = fetch_stats(database_url, top=top)
    except StatsUnavailable as e:
        raise click.ClickException(str(e)) from e
    except SQLAlchemyError as e:
        msg = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise click.ClickException(f"cannot read the database at {_redact(database_url)}: {msg}") from e
    click.echo(render_text(stats), nl=False)
    try:
        path = write_html(stats, out)
    except OSError as e:
        raise click.ClickException(f"cannot write the report to {out}: {e}") from e
    click.echo(f"report written to {path.resolve()}")
