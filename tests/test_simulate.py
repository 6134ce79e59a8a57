"""The synthetic traffic generator: shape, determinism, ground truth and the realism the detectors rely on."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import re
import time
from datetime import datetime

import polars as pl
import pytest

from abuse_stream.ingest.schema import CANONICAL_SCHEMA, REQUIRED_FIELDS
from abuse_stream.simulate import (
    BINGBOT_RANGES,
    BOT_TYPES,
    GOOGLEBOT_RANGES,
    KINDS,
    SCENARIOS,
    Traffic,
    generate,
    write_labels,
)


@pytest.fixture(scope="module")
def demo() -> Traffic:
    t = time.perf_counter()
    traffic = generate(SCENARIOS["demo"])
    elapsed = time.perf_counter() - t
    print(
        f"\ngenerate(demo): {traffic.records.height} requests, {traffic.labels.height} IPs in {elapsed:.2f} s"
    )
    assert elapsed < 30.0
    return traffic


@pytest.fixture(scope="module")
def tiny() -> Traffic:
    return generate(SCENARIOS["tiny"])


def _with_kind(traffic: Traffic) -> pl.DataFrame:
    return traffic.records.join(traffic.labels.select("ip", "kind"), on="ip", how="left")


def test_scenarios_exist() -> None:
    assert {"tiny", "demo", "default"} <= set(SCENARIOS)
    assert SCENARIOS["default"].duration_s > SCENARIOS["demo"].duration_s


def test_deterministic_for_a_seed(tiny: Traffic) -> None:
    again = generate(SCENARIOS["tiny"])
    assert again.records.equals(tiny.records)
    assert again.labels.equals(tiny.labels)
    other = generate(dataclasses.replace(SCENARIOS["tiny"], seed=12345))
    assert not other.records.equals(tiny.records)


def test_schema_and_order(tiny: Traffic) -> None:
    r = tiny.records
    assert list(r.columns) == list(CANONICAL_SCHEMA)
    assert dict(r.schema) == CANONICAL_SCHEMA
    assert 1_000 < r.height < 20_000
    assert r["ts"].is_sorted()
    for col in REQUIRED_FIELDS:
        assert r[col].null_count() == 0, col
    assert r["status"].is_between(100, 599).all()
    assert (r["bytes"] >= 0).all() and (r["latency_ms"] > 0).all()


def test_event_times_inside_the_scenario(demo: Traffic) -> None:
    sc = SCENARIOS["demo"]
    ts = demo.records["ts"]
    assert ts.min() >= sc.start and ts.max() < sc.start + sc.duration_s
    assert ts.min() < sc.start + 5  # traffic from the first seconds on


def test_every_kind_present_in_demo(demo: Traffic) -> None:
    assert set(demo.labels["kind"]) == set(KINDS)
    summary = demo.summary()
    assert (summary["requests"] > 0).all()
    for kind, is_bot, bot_type in demo.labels.select("kind", "is_bot", "bot_type").unique().iter_rows():
        assert bot_type == BOT_TYPES[kind]
        assert is_bot == (bot_type is not None)


def test_labels_cover_exactly_the_ips_in_records(demo: Traffic, tiny: Traffic) -> None:
    for traffic in (demo, tiny):
        labels = traffic.labels
        assert labels["ip"].n_unique() == labels.height
        assert set(labels["ip"]) == set(traffic.records["ip"])
        assert labels.schema == pl.Schema(
            {
                "ip": pl.String,
                "kind": pl.String,
                "is_bot": pl.Boolean,
                "bot_type": pl.String,
                "note": pl.String,
            }
        )


def test_demo_has_enough_legit_traffic_for_a_baseline(demo: Traffic) -> None:
    r = _with_kind(demo)
    legit = r.filter(pl.col("kind").replace_strict(BOT_TYPES, default=None).is_null()).height
    assert legit / r.height >= 0.6
    assert demo.labels.filter(pl.col("kind") == "human_browser").height >= 300
    assert 100_000 <= r.height <= 220_000


def test_client_ips_are_public_and_some_are_ipv6(demo: Traffic) -> None:
    ips = [ipaddress.ip_address(ip) for ip in demo.labels["ip"]]
    assert all(ip.is_global for ip in ips)
    humans = demo.labels.filter(pl.col("kind") == "human_browser")["ip"]
    assert any(":" in ip for ip in humans)


def _gaps(r: pl.DataFrame, kind: str, by: list[str], path: str | None = None) -> pl.Series:
    d = r.filter(pl.col("kind") == kind)
    if path is not None:
        d = d.filter(pl.col("path") == path)
    return d.sort("ts").select(pl.col("ts").diff().over(by).alias("gap")).drop_nulls()["gap"]


def test_periodic_legit_automation(demo: Traffic) -> None:
    r = _with_kind(demo)
    # mobile app: notifications every 60 s with small jitter (gaps > 90 s are between foreground spells)
    polls = _gaps(r, "mobile_app", ["ip"], "/api/v1/notifications")
    polls = polls.filter(polls.is_between(30, 90))
    assert polls.len() > 1_000
    # (the launch burst of a foreground spell also fetches notifications, off the timer's phase)
    assert abs(polls.median() - 60.0) < 0.5 and (polls - 60.0).abs().le(2.0).mean() > 0.85
    # partner integrations: an exact period per (ip, path)
    p = r.filter(pl.col("kind") == "partner_integration").sort("ts")
    per = p.group_by("ip", "path").agg(pl.col("ts").diff().drop_nulls().alias("g")).explode("g")
    stats = per.group_by("ip", "path").agg(pl.col("g").median().alias("med"), pl.col("g").std().alias("sd"))
    assert stats.height >= 3
    assert (stats["sd"] < 0.2).all()
    assert set(stats["med"].round(0).cast(pl.Int64)) <= {30, 60, 120, 300}
    # uptime monitors: /health every 60 s per (ip, host)
    m = r.filter(pl.col("kind") == "uptime_monitor").sort("ts")
    g = m.select(pl.col("ts").diff().over("ip", "host").alias("g")).drop_nulls()["g"]
    assert (g - 60.0).abs().max() < 1.0
    assert set(m["path"]) == {"/health"}


def test_crawler_ips_match_their_claimed_operator(demo: Traffic) -> None:
    google = [ipaddress.ip_network(c) for c in GOOGLEBOT_RANGES]
    bing = [ipaddress.ip_network(c) for c in BINGBOT_RANGES]
    r = _with_kind(demo)

    def inside(ip: str, nets: list[ipaddress.IPv4Network]) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in n for n in nets)

    real = r.filter(pl.col("kind") == "search_crawler").group_by("ip").agg(pl.col("ua").first())
    n_google = 0
    for ip, ua in real.iter_rows():
        if "Googlebot" in ua:
            n_google += 1
            assert inside(ip, google), ip
        else:
            assert "bingbot" in ua and inside(ip, bing), ip
    assert n_google >= 1
    fake = r.filter(pl.col("kind") == "fake_search_crawler")
    assert fake["ua"].str.contains("Googlebot").all()
    for ip in fake["ip"].unique():
        assert not inside(ip, google + bing), ip
    # nobody else uses the crawler ranges
    others = demo.labels.filter(pl.col("kind") != "search_crawler")["ip"]
    assert not any(inside(ip, google + bing) for ip in others if ":" not in ip)


def test_bots_are_not_separable_by_one_marker(demo: Traffic) -> None:
    r = _with_kind(demo).with_columns(pl.col("kind").replace_strict(BOT_TYPES, default=None).alias("bt"))
    human = r.filter(pl.col("kind").is_in(["human_browser", "nat_gateway"]))
    bots = r.filter(pl.col("bt").is_not_null())
    assert set(bots["host"].drop_nulls()) <= set(human["host"])
    # several bot kinds send exactly the user agents humans send
    human_uas = set(human["ua"])
    shared = bots.filter(pl.col("ua").is_in(list(human_uas)))["kind"].unique()
    assert {"credential_stuffing_fast", "scraper_stealth", "scanner_masked"} <= set(shared)
    # stealth scrapers hit the same API paths humans' pages call
    human_api = set(human.filter(pl.col("path").str.starts_with("/api/v1/products/"))["path"])
    stealth = set(bots.filter(pl.col("kind") == "scraper_stealth")["path"])
    assert human_api & stealth

    # bots come from the same kind of networks as humans: some bot IPs are in residential blocks
    # (no bot-only prefix): at least one /8 holds both human and bot IPs
    def slash8(ips: pl.Series) -> set[str]:
        return {ip.split(".")[0] for ip in ips if ":" not in ip}

    assert slash8(human["ip"].unique()) & slash8(bots["ip"].unique())


def test_humans_look_human(demo: Traffic) -> None:
    r = _with_kind(demo).filter(pl.col("kind") == "human_browser")
    # XHR fan-out within ~1 s of page views, assets, sessions (first request of a session has no cookie)
    assert r.filter(pl.col("path").str.starts_with("/api/")).height > r.height * 0.4
    assert r.filter(pl.col("path").str.starts_with("/static/")).height > 0
    assert 0 < r["session"].null_count() < r.height * 0.1
    # logins with an occasional typo: a 401 followed by a 200 from the same session
    logins = r.filter(pl.col("path") == "/api/v1/auth/login").sort("ts")
    seq = logins.group_by("session").agg(pl.col("status"))
    assert any(s[:2] == [401, 200] for s in seq["status"].to_list())
    assert logins.filter(pl.col("status") == 200).height > logins.filter(pl.col("status") == 401).height


def test_bot_signatures(demo: Traffic) -> None:
    r = _with_kind(demo)

    def of(kind: str) -> pl.DataFrame:
        return r.filter(pl.col("kind") == kind)

    cs = of("credential_stuffing_fast").filter(pl.col("path") == "/api/v1/auth/login")
    assert (cs["status"] == 401).mean() > 0.8 and cs["ua"].n_unique() > 3
    dist = of("credential_stuffing_distributed")
    assert dist["ip"].n_unique() >= 50 and dist.group_by("ip").len()["len"].max() <= 20
    assert of("scraper_declared")["ua"].str.contains("Scrapy|python-requests").all()
    enum = of("id_enumeration")
    assert enum["path"].str.starts_with("/api/v1/orders/").all()
    assert enum["status"].is_in([403, 404]).mean() > 0.9
    flood = of("l7_flood")
    per_ip = flood.group_by("ip").agg((pl.len() / (pl.col("ts").max() - pl.col("ts").min())).alias("rate"))
    assert per_ip.height >= 10 and per_ip["rate"].min() >= 15
    scans = pl.concat([of("scanner_declared"), of("scanner_masked")])
    assert scans["path"].is_in(["/.env", "/.git/config", "/wp-login.php"]).any()
    assert scans["status"].is_in([403, 404, 400]).mean() > 0.7
    assert of("scanner_masked")["ua"].str.starts_with("Mozilla/5.0 (").all()
    assert of("fake_signup")["ua"].str.contains("Chrome/7|Firefox/6|Trident|Version/11").all()
    assert of("headless_browser")["ua"].str.contains("HeadlessChrome").all()


def test_jsonl_round_trip(tiny: Traffic) -> None:
    buf = io.StringIO()
    n = tiny.to_jsonl(buf)
    lines = buf.getvalue().splitlines()
    assert n == len(lines) == tiny.records.height
    rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for line, ts in zip(lines, tiny.records["ts"], strict=True):
        obj = json.loads(line)
        assert all(obj.get(f) is not None for f in REQUIRED_FIELDS)
        assert rfc3339.match(obj["ts"])
        back = datetime.fromisoformat(obj["ts"].replace("Z", "+00:00")).timestamp()
        assert abs(back - ts) < 0.0015
    first = json.loads(lines[0])
    assert list(first) == list(CANONICAL_SCHEMA)
    binary = io.BytesIO()
    assert tiny.to_jsonl(binary) == n and binary.getvalue().decode() == buf.getvalue()


def test_combined_output(tiny: Traffic, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "access.log"
    n = tiny.to_combined(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert n == len(lines) == tiny.records.height
    combined = (
        r'^\S+ - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "[A-Z]+ \S+ HTTP/1\.1" '
        r'\d{3} \d+ "[^"]*" "[^"]*" \d+\.\d+$'
    )
    assert pl.Series(lines).str.contains(combined).all()
    assert lines[0].startswith(tiny.records["ip"][0] + " - - [01/Nov/2026:00:00:")


def test_write_labels(tiny: Traffic, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "labels.csv"
    write_labels(tiny.labels, path)
    back = pl.read_csv(path)
    assert back.columns == ["ip", "kind", "is_bot", "bot_type", "note"]
    assert back.height == tiny.labels.height


def test_scale_and_hosts() -> None:
    base = SCENARIOS["tiny"]
    bigger = generate(dataclasses.replace(base, scale=2.0, duration_s=120.0))
    smaller = generate(dataclasses.replace(base, scale=0.5, duration_s=120.0))
    assert bigger.labels.height > smaller.labels.height
    one_host = generate(dataclasses.replace(base, hosts=("www.example.org",), duration_s=120.0))
    assert set(one_host.records["host"].drop_nulls()) == {"www.example.org"}
