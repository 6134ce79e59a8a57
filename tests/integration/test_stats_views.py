"""The statistics views (migration 0003) on SQLite and a real Postgres, with exact numbers.

Twelve verdicts spread over 75 days of event time, ending at T = 2015-03-01T12:00:00Z (an old
replay: the windows are measured back from the newest detection, never from the wall clock):

| id  | ip           | bot type             | action   | detected   | requests | endpoints          |
|-----|--------------|----------------------|----------|------------|----------|--------------------|
| v01 | A 192.0.2.1  | scraping             | denylist | T          | 100      | orders 80, prod 20 |
| v02 | A            | account_takeover     | denylist | T-1d       | 60       | login 60           |
| v03 | B 192.0.2.2  | account_takeover     | denylist | T-2d       | 50       | login 50           |
| v04 | C 192.0.2.3  | scraping             | denylist | T-10d      | 30       | prod 30            |
| v05 | C            | scraping             | denylist | T-10d+1h   | 25       |                    |
| v06 | E 192.0.2.5  | scraping             | graylist | T-5d       | 40       |                    |
| v07 | F 192.0.2.6  | resource_consumption | monitor  | T-2d       | 5        |                    |
| v08 | A            | scraping             | denylist | T-40d      | 20       | orders 20          |
| v09 | D 192.0.2.4  | api_abuse            | denylist | T-30d      | 10       |  (boundary: prev)  |
| v10 | G 192.0.2.7  | scraping             | denylist | T-75d      | 7        |  (outside 60 days) |
| v11 | H 2001:db8::1| scraping             | graylist | T-45d      | 15       |                    |
| v12 | J 192.0.2.8  | scraping             | graylist | T-50d      | 12       |                    |
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text, update

from abuse_stream.stats import fetch_stats, render_text
from abuse_stream.store.db import Store, make_engine, migrate, migrations_dir
from abuse_stream.store.models import verdict_endpoints, verdicts

T = datetime(2015, 3, 1, 12, 0, tzinfo=UTC)
A, B, C, D, E, F, G, H, J = (
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.4",
    "192.0.2.5",
    "192.0.2.6",
    "192.0.2.7",
    "2001:db8::1",
    "192.0.2.8",
)
ORDERS, PRODUCTS, LOGIN = "GET /api/v1/orders/{id}", "GET /products", "POST /login"


def det(name: str, fired: bool, counted: bool | None) -> dict:
    d = {"name": name, "fired": fired, "value": 1.0, "baseline": 0.1, "threshold": 0.5, "votes": 1}
    if counted is not None:  # older verdicts have no "counted": fired alone counts
        d["counted"] = counted
    return d


DETECTORS = {
    "scraping": [det("request_rate", True, True), det("failed_auth", False, False)],
    "account_takeover": [det("failed_auth", True, True), det("request_rate", True, False)],
    "api_abuse": [det("request_rate", True, None), det("failed_auth", False, None)],
    "resource_consumption": [det("request_rate", False, False)],
}


def rfc(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def verdict(vid, ip, bot_type, action, at, requests, endpoints=(), ua="python-requests/2.31") -> dict:
    return {
        "verdict_id": vid,
        "ip": ip,
        "session": None,
        "bot_type": bot_type,
        "confidence": 0.8,
        "action": action,
        "profile": "default",
        "tolerance": "normal",
        "detected_at": rfc(at),
        "expires_at": None if action == "monitor" else rfc(at + timedelta(hours=1)),
        "window": {"start": rfc(at - timedelta(minutes=5)), "end": rfc(at), "requests": requests},
        "detectors": DETECTORS[bot_type],
        "application": "shop.example.com",
        "evidence": {
            "first_request": rfc(at - timedelta(minutes=5)),
            "last_request": rfc(at),
            "requests": requests,
            "top_endpoints": [{"endpoint": e, "requests": n} for e, n in endpoints],
            "statuses": {"2xx": requests, "3xx": 0, "4xx": 0, "5xx": 0},
            "user_agents": [ua, "Mozilla/5.0"],
        },
    }


day = timedelta(days=1)
VERDICTS = [
    verdict("v01", A, "scraping", "denylist", T, 100, [(ORDERS, 80), (PRODUCTS, 20)], ua="curl/8.5.0"),
    verdict("v02", A, "account_takeover", "denylist", T - day, 60, [(LOGIN, 60)]),
    verdict("v03", B, "account_takeover", "denylist", T - 2 * day, 50, [(LOGIN, 50)]),
    verdict("v04", C, "scraping", "denylist", T - 10 * day, 30, [(PRODUCTS, 30)]),
    verdict("v05", C, "scraping", "denylist", T - 10 * day + timedelta(hours=1), 25),
    verdict("v06", E, "scraping", "graylist", T - 5 * day, 40),
    verdict("v07", F, "resource_consumption", "monitor", T - 2 * day, 5),
    verdict("v08", A, "scraping", "denylist", T - 40 * day, 20, [(ORDERS, 20)]),
    verdict("v09", D, "api_abuse", "denylist", T - 30 * day, 10),  # exactly 30 days: the previous window
    verdict("v10", G, "scraping", "denylist", T - 75 * day, 7),  # older than both windows
    verdict("v11", H, "scraping", "graylist", T - 45 * day, 15),
    verdict("v12", J, "scraping", "graylist", T - 50 * day, 12),
]


@pytest.fixture(params=["sqlite_url", "pg_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


def load(url: str) -> None:
    """Migrate and store the verdicts; fill ``evidence`` / ``verdict_endpoints`` here when
    Store.write_batch does not (yet) write them itself."""
    migrate(url)
    store = Store(url)
    try:
        store.write_batch(VERDICTS, [])
        with store.engine.begin() as conn:
            for v in VERDICTS:
                vid = v["verdict_id"]
                conn.execute(
                    update(verdicts)
                    .where(verdicts.c.verdict_id == vid, verdicts.c.evidence.is_(None))
                    .values(evidence=v["evidence"])
                )
                have = conn.execute(
                    select(func.count())
                    .select_from(verdict_endpoints)
                    .where(verdict_endpoints.c.verdict_id == vid)
                ).scalar_one()
                rows = [
                    {"verdict_id": vid, "endpoint": e["endpoint"], "requests": e["requests"]}
                    for e in v["evidence"]["top_endpoints"]
                ]
                if rows and not have:
                    conn.execute(insert(verdict_endpoints), rows)
    finally:
        store.close()


def raw(url: str, sql: str) -> list[dict]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                {k: float(v) if isinstance(v, Decimal) else v for k, v in r.items()}
                for r in conn.execute(text(sql)).mappings()
            ]
    finally:
        engine.dispose()


def test_bot_ips_30d_headline(db_url):
    load(db_url)
    rows = raw(
        db_url, "SELECT list, ips_last_30d, ips_prev_30d, pct_change FROM stats_bot_ips_30d ORDER BY list"
    )
    assert rows == [
        # A, B, C in the last 30 days; A (v08) and D (v09, exactly 30 days before) in the 30 before
        {"list": "denylist", "ips_last_30d": 3, "ips_prev_30d": 2, "pct_change": 50.0},
        {"list": "graylist", "ips_last_30d": 1, "ips_prev_30d": 2, "pct_change": -50.0},
    ]
    stats = fetch_stats(db_url)
    assert stats.as_of == "2015-03-01T12:00:00Z"
    assert [r["as_of"] for r in stats.bot_ips_30d] == ["2015-03-01T12:00:00Z"] * 2


def test_bot_ips_30d_by_type(db_url):
    load(db_url)
    stats = fetch_stats(db_url)
    assert [
        (r["list"], r["bot_type"], r["ips_last_30d"], r["ips_prev_30d"], r["pct_change"])
        for r in stats.bot_ips_30d_by_type
    ] == [
        ("denylist", "account_takeover", 2, 0, None),  # no previous IPs: no percentage
        ("denylist", "scraping", 2, 1, 100.0),
        ("denylist", "api_abuse", 0, 1, -100.0),
        ("graylist", "scraping", 1, 2, -50.0),
    ]


def test_detections_daily(db_url):
    load(db_url)
    rows = [
        (str(r["day"])[:10], r["bot_type"], r["verdicts"], r["ips"])
        for r in raw(db_url, "SELECT * FROM stats_detections_daily ORDER BY day, bot_type")
    ]
    expected = [
        ("2015-01-10", "scraping", 1, 1),
        ("2015-01-15", "scraping", 1, 1),
        ("2015-01-20", "scraping", 1, 1),
        ("2015-01-30", "api_abuse", 1, 1),
        ("2015-02-19", "scraping", 2, 1),  # C twice on one day
        ("2015-02-24", "scraping", 1, 1),
        ("2015-02-27", "account_takeover", 1, 1),
        ("2015-02-27", "resource_consumption", 1, 1),
        ("2015-02-28", "account_takeover", 1, 1),
        ("2015-03-01", "scraping", 1, 1),
    ]
    assert rows == [("2014-12-16", "scraping", 1, 1), *expected]
    # fetch_stats keeps the last 60 days (ending at the newest detection) unless days=0
    assert [
        (r["day"], r["bot_type"], r["verdicts"], r["ips"]) for r in fetch_stats(db_url).detections_daily
    ] == expected
    assert len(fetch_stats(db_url, days=0).detections_daily) == 11


def test_top_attackers(db_url):
    load(db_url)
    stats = fetch_stats(db_url, top=3)
    assert stats.top_attackers == [
        {
            "ip": A,
            "verdicts": 3,
            "bot_types": "account_takeover,scraping",
            "first_detected": "2015-01-20T12:00:00Z",
            "last_detected": "2015-03-01T12:00:00Z",
            "requests": 180,
            "user_agent": "curl/8.5.0",  # of the newest verdict
            "application": "shop.example.com",
        },
        {
            "ip": C,
            "verdicts": 2,
            "bot_types": "scraping",
            "first_detected": "2015-02-19T12:00:00Z",
            "last_detected": "2015-02-19T13:00:00Z",
            "requests": 55,
            "user_agent": "python-requests/2.31",
            "application": "shop.example.com",
        },
        {
            "ip": B,
            "verdicts": 1,
            "bot_types": "account_takeover",
            "first_detected": "2015-02-27T12:00:00Z",
            "last_detected": "2015-02-27T12:00:00Z",
            "requests": 50,
            "user_agent": "python-requests/2.31",
            "application": "shop.example.com",
        },
    ]
    # the view's own ordering of bot_types (not only fetch_stats' normalisation)
    assert raw(db_url, f"SELECT bot_types FROM stats_top_attackers WHERE ip = '{A}'") == [
        {"bot_types": "account_takeover,scraping"}
    ]
    everyone = fetch_stats(db_url, top=100).top_attackers
    assert [(r["ip"], r["verdicts"], r["requests"]) for r in everyone] == [
        (A, 3, 180),
        (C, 2, 55),
        (B, 1, 50),
        (E, 1, 40),
        (H, 1, 15),
        (J, 1, 12),
        (D, 1, 10),
        (G, 1, 7),
        (F, 1, 5),  # monitor verdicts count as detections too
    ]


def test_top_targets(db_url):
    load(db_url)
    assert fetch_stats(db_url).top_targets == [
        {"endpoint": LOGIN, "verdicts": 2, "ips": 2, "requests": 110},
        {"endpoint": ORDERS, "verdicts": 2, "ips": 1, "requests": 100},
        {"endpoint": PRODUCTS, "verdicts": 2, "ips": 2, "requests": 50},
    ]
    assert [r["endpoint"] for r in fetch_stats(db_url, top=1).top_targets] == [LOGIN]


def test_detector_mix(db_url):
    load(db_url)
    assert [
        (r["detector"], r["bot_type"], r["fired"], r["runs"]) for r in fetch_stats(db_url).detector_mix
    ] == [
        ("request_rate", "scraping", 8, 8),
        ("failed_auth", "account_takeover", 2, 2),
        ("request_rate", "api_abuse", 1, 1),  # no "counted" key: fired alone counts
        ("failed_auth", "scraping", 0, 8),
        ("request_rate", "account_takeover", 0, 2),  # fired but not counted for this bot type
        ("failed_auth", "api_abuse", 0, 1),
        ("request_rate", "resource_consumption", 0, 1),
    ]


def test_empty_database_and_text(db_url, tmp_path):
    migrate(db_url)
    stats = fetch_stats(db_url)
    assert stats.as_of is None
    assert [
        (r["list"], r["ips_last_30d"], r["ips_prev_30d"], r["pct_change"]) for r in stats.bot_ips_30d
    ] == [
        ("denylist", 0, 0, None),
        ("graylist", 0, 0, None),
    ]
    assert "no verdicts stored yet" in render_text(stats)
    load(db_url)
    out = render_text(fetch_stats(db_url))
    assert "as of 2015-03-01T12:00:00Z" in out
    assert "denylist         3         2  +50.0%" in out
    assert "graylist         1         2  -50.0%" in out


def test_report_from_database(db_url, tmp_path):
    from abuse_stream.report import write_report

    load(db_url)
    engine = make_engine(db_url)
    try:
        path = write_report(engine, tmp_path / "r.html")
    finally:
        engine.dispose()
    page = path.read_text(encoding="utf-8")
    assert "+50.0%" in page and "2015-03-01T12:00:00Z" in page
    assert page.count('class="seg"') == 10  # one segment per (day, bot type) of the last 60 days
    assert "POST /login" in page and "GET /api/v1/orders/{id}" in page


def test_downgrade_drops_the_views(db_url):
    from alembic import command
    from alembic.config import Config

    load(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    command.downgrade(cfg, "0002")
    engine = make_engine(db_url)
    try:
        from sqlalchemy import inspect

        assert not [v for v in inspect(engine).get_view_names() if v.startswith("stats_")]
    finally:
        engine.dispose()
    migrate(db_url)
    assert fetch_stats(db_url).bot_ips_30d[0]["ips_last_30d"] == 3
