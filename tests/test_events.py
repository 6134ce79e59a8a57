"""`events list` filters and `events show` explanations, on a SQLite store."""

from __future__ import annotations

from click.testing import CliRunner

from abuse_stream.cli import cli
from abuse_stream.events import factor_text
from abuse_stream.store.db import Store, migrate


def verdict(vid: str, ip: str, bot_type: str, at: str, action: str = "graylist") -> dict:
    return {
        "verdict_id": vid,
        "ip": ip,
        "session": None,
        "bot_type": bot_type,
        "confidence": 0.8,
        "action": action,
        "profile": "api",
        "tolerance": "normal",
        "detected_at": at,
        "expires_at": None,
        "window": {"start": at, "end": at, "requests": 300},
        "application": "api.example.com",
        "detectors": [
            {
                "name": "request_rate",
                "fired": True,
                "counted": True,
                "worked": True,
                "value": 15.0,
                "baseline": 2.0,
                "threshold": 10.0,
                "votes": 4,
                "detail": "15 req/s sustained",
            }
        ],
        "evidence": {
            "first_request": at,
            "last_request": at,
            "requests": 300,
            "statuses": {"2xx": 300},
            "top_endpoints": [{"endpoint": "GET /api/v1/search", "requests": 300}],
            "user_agents": ["curl/8"],
        },
    }


def test_factor_against_normal_reads_both_ways():
    assert factor_text(15.0, 2.0) == "7.5x above normal"
    assert factor_text(0.05, 1.0) == "20.0x below normal"
    assert factor_text(3.0, None) == ""


def test_events_list_filters_and_show_explains(sqlite_url):
    migrate(sqlite_url)
    store = Store(sqlite_url)
    store.write_batch(
        [
            verdict("aaaa1111", "203.0.113.5", "api_abuse", "2026-11-01T00:05:00.000Z"),
            verdict("bbbb2222", "198.51.100.9", "scraping", "2026-11-02T00:05:00.000Z"),
            verdict("cccc3333", "203.0.113.77", "scraping", "2026-11-03T00:05:00.000Z", "monitor"),
        ],
        [],
    )
    store.close()
    env = {"DATABASE_URL": sqlite_url}
    run = lambda *a: CliRunner().invoke(cli, ["events", *a], env=env, catch_exceptions=False)  # noqa: E731
    out = run("list").output
    assert out.index("cccc3333") < out.index("bbbb2222") < out.index("aaaa1111")  # newest first
    out = run("list", "--ip", "203.0.113.0/24").output
    assert "aaaa1111" in out and "cccc3333" in out and "bbbb2222" not in out
    assert "bbbb2222" in run("list", "--bot-type", "scraping", "--action", "graylist").output
    assert "(no events)" in run("list", "--since", "2026-11-04T00:00:00Z").output
    shown = run("show", "aaaa").output
    assert "request_rate" in shown and "7.5x above normal" in shown and "GET /api/v1/search" in shown
    assert CliRunner().invoke(cli, ["events", "show", "nope"], env=env).exit_code != 0
