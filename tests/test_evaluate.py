"""evaluate: labelled verdicts -> per-kind recall / false positives / time-to-detect, and the targets."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from abuse_stream.evaluate import (
    evaluate,
    first_seen_from_traffic,
    load_labels,
    load_verdicts,
    render,
)

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z


def _ts(s: float) -> str:
    m, sec = divmod(s, 60)
    return f"2026-11-01T00:{int(m):02d}:{sec:06.3f}Z"


LABELS = pl.DataFrame(
    [
        ("1.1.1.1", "scraper_stealth", True, "scraping"),
        ("1.1.1.2", "scraper_stealth", True, "scraping"),
        ("2.2.2.1", "l7_flood", True, "api_abuse"),
        ("2.2.2.2", "l7_flood", True, "api_abuse"),
        ("2.2.2.3", "l7_flood", True, "api_abuse"),
        ("2.2.2.4", "l7_flood", True, "api_abuse"),
        ("5.5.5.1", "credential_stuffing_distributed", True, "account_takeover"),
        ("5.5.5.2", "credential_stuffing_distributed", True, "account_takeover"),
        ("3.3.3.1", "human_browser", False, None),
        ("3.3.3.2", "human_browser", False, None),
        ("3.3.3.3", "human_browser", False, None),
        ("4.4.4.1", "nat_gateway", False, None),
    ],
    schema={"ip": pl.String, "kind": pl.String, "is_bot": pl.Boolean, "bot_type": pl.String},
    orient="row",
)


def _v(ip: str, bot_type: str, action: str, at: float) -> dict:
    return {
        "verdict_id": f"{ip}-{bot_type}-{at}",
        "ip": ip,
        "session": None,
        "bot_type": bot_type,
        "confidence": 1.0,
        "action": action,
        "profile": "default",
        "tolerance": "normal",
        "detected_at": _ts(at),
        "expires_at": None,
        "window": {"start": _ts(0), "end": _ts(at), "requests": 10},
        "detectors": [],
        "application": None,
    }


VERDICTS = [
    _v("1.1.1.1", "scraping", "graylist", 30),
    _v("1.1.1.1", "api_abuse", "denylist", 20),  # earliest flagging verdict: TTD from this one
    _v("2.2.2.1", "api_abuse", "denylist", 10),
    _v("2.2.2.2", "api_abuse", "denylist", 20),
    _v("2.2.2.3", "scraping", "graylist", 40),  # flagged, wrong type
    _v("3.3.3.1", "scraping", "monitor", 50),  # monitored only: not flagged
    _v("4.4.4.1", "api_abuse", "graylist", 45),  # false positive
    _v("9.9.9.9", "api_abuse", "denylist", 5),  # not labelled
    _v("5.5.5.0/31", "account_takeover", "denylist", 60),  # covers 5.5.5.1 (not 5.5.5.2)
]

# ip, first request, last request, requests (offsets from T0)
TRAFFIC = [
    ("1.1.1.1", 0, 100, 201),  # 2 req/s
    ("1.1.1.2", 0, 100, 101),  # 1 req/s
    ("2.2.2.1", 0, 10, 60),
    ("2.2.2.2", 5, 15, 60),
    ("2.2.2.3", 10, 20, 60),
    ("2.2.2.4", 0, 10, 60),
    ("5.5.5.1", 30, 40, 3),  # slow: no time-to-detect target for the kind
    ("5.5.5.2", 0, 20, 2),
    ("3.3.3.1", 0, 300, 40),
    ("3.3.3.2", 0, 300, 40),
    ("3.3.3.3", 0, 300, 40),
    ("4.4.4.1", 0, 300, 3000),
]


def _first_seen() -> pl.DataFrame:
    return pl.DataFrame(
        [(ip, T0 + a, T0 + b, n) for ip, a, b, n in TRAFFIC],
        schema={"ip": pl.String, "first_seen": pl.Float64, "last_seen": pl.Float64, "requests": pl.Int64},
        orient="row",
    )


def _kind(ev, kind):
    return next(k for k in ev.kinds if k.kind == kind)


def _target(ev, fragment):
    found = [t for t in ev.targets if fragment in t.target]
    assert len(found) == 1, (fragment, ev.targets)
    return found[0]


def test_counts_precision_recall_and_ttd() -> None:
    ev = evaluate(LABELS, VERDICTS, _first_seen())
    assert (ev.bot_ips, ev.legit_ips) == (8, 4)
    assert ev.false_positive_ips == 1
    assert ev.precision == pytest.approx(5 / 6)
    assert ev.recall == pytest.approx(5 / 8)
    assert ev.unlabelled_flagged_ips == 1
    assert ev.monitored_ips == 1
    assert ev.fp_by_kind == {"human_browser": 0, "nat_gateway": 1}

    stealth = _kind(ev, "scraper_stealth")
    assert (stealth.ips, stealth.requests, stealth.flagged, stealth.correct_type) == (2, 302, 1, 1)
    assert stealth.recall_or_fp_rate == 0.5
    assert stealth.median_ttd_s == pytest.approx(20.0)  # the denylist at 20 s, not the graylist at 30 s
    assert stealth.rate_rps == pytest.approx(1.5)

    flood = _kind(ev, "l7_flood")
    assert (flood.flagged, flood.correct_type, flood.requests) == (3, 2, 240)
    assert flood.recall_or_fp_rate == 0.75
    assert flood.median_ttd_s == pytest.approx(15.0)  # TTDs 10, 15, 30
    assert flood.p90_ttd_s == pytest.approx(27.0)  # linear interpolation

    cred = _kind(ev, "credential_stuffing_distributed")
    assert (cred.flagged, cred.correct_type) == (1, 1)  # through the CIDR verdict
    assert cred.median_ttd_s == pytest.approx(30.0)

    human = _kind(ev, "human_browser")
    assert (human.flagged, human.monitored, human.recall_or_fp_rate) == (0, 1, 0.0)
    assert human.median_ttd_s is None
    assert _kind(ev, "nat_gateway").recall_or_fp_rate == 1.0

    assert ev.median_ttd_s == pytest.approx(20.0)  # 10, 15, 20, 30, 30
    # bots first, in the simulator's order
    assert [k.kind for k in ev.kinds] == [
        "credential_stuffing_distributed",
        "scraper_stealth",
        "l7_flood",
        "human_browser",
        "nat_gateway",
    ]


def test_targets() -> None:
    ev = evaluate(LABELS, VERDICTS, _first_seen())
    assert _target(ev, "human_browser").ok is True
    assert _target(ev, "nat_gateway") == ("no nat_gateway IP blocked", 1.0, False)
    assert _target(ev, "uptime_monitor").ok is None  # kind absent: cannot be judged
    assert _target(ev, "recall credential_stuffing_distributed >= 0.5").ok is True
    assert _target(ev, "recall scraper_stealth >= 0.95").ok is False
    assert _target(ev, "recall l7_flood >= 0.95").value == 0.75
    assert _target(ev, "time-to-detect scraper_stealth").ok is True
    assert _target(ev, "time-to-detect l7_flood").value == pytest.approx(15.0)
    assert not [t for t in ev.targets if "time-to-detect credential" in t.target]  # 0.125 req/s
    assert not ev.targets_met


def test_recall_target_needs_100_requests() -> None:
    fs = _first_seen().with_columns(
        pl.when(pl.col("ip").str.starts_with("1.1.1."))
        .then(10)
        .otherwise(pl.col("requests"))
        .alias("requests")
    )
    ev = evaluate(LABELS, VERDICTS, fs)
    assert not [t for t in ev.targets if "recall scraper_stealth" in t.target]


def test_actions_choose_what_counts_as_flagged() -> None:
    ev = evaluate(LABELS, VERDICTS, _first_seen(), actions={"denylist"})
    assert _kind(ev, "l7_flood").flagged == 2
    assert ev.false_positive_ips == 0
    assert _kind(ev, "scraper_stealth").correct_type == 0  # its scraping verdict was a graylist
    assert ev.monitored_ips == 3  # 3.3.3.1, 4.4.4.1 and 2.2.2.3


def test_without_traffic() -> None:
    ev = evaluate(LABELS, VERDICTS)
    assert ev.precision == pytest.approx(5 / 6)
    assert all(k.median_ttd_s is None and k.requests is None for k in ev.kinds)
    assert ev.median_ttd_s is None
    assert _target(ev, "recall scraper_stealth").ok is None  # might be under 100 requests
    assert _target(ev, "time-to-detect").ok is None
    text = render(ev)
    assert "unknown" in text


def test_no_verdicts() -> None:
    ev = evaluate(LABELS, [])
    assert ev.recall == 0.0
    assert math.isnan(ev.precision)
    assert "n/a" in render(ev)


def test_dataframe_verdicts_equal_dict_verdicts() -> None:
    frame = pl.DataFrame([{k: v[k] for k in ("ip", "bot_type", "action", "detected_at")} for v in VERDICTS])
    assert evaluate(LABELS, frame, _first_seen()) == evaluate(LABELS, VERDICTS, _first_seen())


def test_render_table() -> None:
    ev = evaluate(LABELS, VERDICTS, _first_seen())
    text = render(ev)
    lines = text.splitlines()
    for kind in (
        "scraper_stealth",
        "l7_flood",
        "credential_stuffing_distributed",
        "human_browser",
        "nat_gateway",
    ):
        assert any(line.startswith(kind) for line in lines), kind
    assert text.index("l7_flood") < text.index("human_browser")  # bots first
    flood = next(line for line in lines if line.startswith("l7_flood"))
    assert "75.0%" in flood and "15.0" in flood and "27.0" in flood
    assert "precision 83.3%" in text and "recall 62.5%" in text
    assert "nat_gateway 1" in text
    assert "[NOT MET] no nat_gateway IP blocked" in text
    assert "[    met] recall credential_stuffing_distributed >= 0.5" in text
    # fixed width: the header and every kind row line up
    header = lines[0]
    assert lines[1].count("-") >= len(header.replace(" ", ""))


def test_load_labels_and_verdicts(tmp_path) -> None:
    from abuse_stream.simulate import write_labels

    lpath = tmp_path / "labels.csv"
    write_labels(LABELS.with_columns(pl.lit("x").alias("note")), lpath)
    labels = load_labels(lpath)
    assert labels.equals(LABELS)

    vpath = tmp_path / "verdicts.jsonl"
    vpath.write_text("\n".join(json.dumps(v) for v in VERDICTS[:3]) + "\n\n" + json.dumps(VERDICTS[3]) + "\n")
    loaded = load_verdicts(vpath)
    assert loaded == VERDICTS[:4]

    vpath.write_text(json.dumps(VERDICTS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=":2:"):
        load_verdicts(vpath)


def test_labels_must_have_the_columns() -> None:
    with pytest.raises(ValueError, match="is_bot"):
        evaluate(LABELS.drop("is_bot"), VERDICTS)


def test_first_seen_from_traffic(tmp_path) -> None:
    path = tmp_path / "traffic.jsonl"
    rows = [
        {"ts": "2026-11-01T00:00:05.000Z", "ip": "1.1.1.1", "method": "GET", "path": "/", "status": 200},
        {"ts": T0 + 2.5, "ip": "1.1.1.1", "method": "GET", "path": "/a", "status": 200},  # epoch seconds
        {"ts": "2026-11-01T00:01:00Z", "ip": "1.1.1.1", "method": "GET", "path": "/b", "status": 200},
        {"ts": "2026-11-01T01:00:00+01:00", "ip": "2.2.2.2", "method": "GET", "path": "/", "status": 404},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot a log line\n")
    fs = first_seen_from_traffic(path)
    assert fs.sort("ip").to_dicts() == [
        {"ip": "1.1.1.1", "first_seen": T0 + 2.5, "last_seen": T0 + 60, "requests": 3},
        {"ip": "2.2.2.2", "first_seen": T0, "last_seen": T0, "requests": 1},
    ]


def test_end_to_end_on_simulated_traffic(tmp_path) -> None:
    from abuse_stream.simulate import SCENARIOS, generate

    traffic = generate(SCENARIOS["tiny"])
    path = tmp_path / "tiny.jsonl"
    traffic.to_jsonl(path)
    fs = first_seen_from_traffic(path)
    expected = traffic.records.group_by("ip").agg(pl.col("ts").min().alias("first_seen"), pl.len().alias("n"))
    both = fs.join(expected, on="ip")
    assert both.height == traffic.labels.height
    assert (both["requests"] == both["n"]).all()
    assert ((both["first_seen"] - both["first_seen_right"]).abs() < 1e-3).all()

    # every bot flagged once, 10 s after its first request, with its own bot type
    bots = traffic.labels.filter(pl.col("is_bot")).join(fs, on="ip")
    verdicts = [
        {"ip": r["ip"], "bot_type": r["bot_type"], "action": "denylist", "detected_at": r["first_seen"] + 10}
        for r in bots.iter_rows(named=True)
    ]
    ev = evaluate(traffic.labels, verdicts, fs)
    assert ev.recall == 1.0 and ev.precision == 1.0
    assert ev.median_ttd_s == pytest.approx(10.0)
    assert all(k.correct_type == k.flagged for k in ev.kinds if k.is_bot)
    assert ev.targets_met
    assert all(k.kind in render(ev) for k in ev.kinds)
