"""Confidence per bot type, tolerance, and the verdict book (dedup, extend, expiry)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from abuse_stream.config import build_config
from abuse_stream.scoring import confidence_columns, detections
from abuse_stream.verdicts import ListEntry, VerdictBook, verdict_id

# the mechanism under test, with its own votes and levels (independent of the shipped defaults;
# detectors named in the defaults but absent from these frames simply do not vote)
ENGINE = {
    "tolerance_levels": {"low": 0.3, "normal": 0.5, "high": 0.8},
    "bot_types": {
        "security_crawlers": {"votes": {"bad_user_agent": 2}, "min_votes_possible": 0},
        "scraping": {"votes": {"bad_user_agent": 2, "request_rate": 1}, "min_votes_possible": 0},
        "api_abuse": {"votes": {"request_rate": 1}, "min_votes_possible": 0},
        "account_takeover": {"votes": {}, "min_votes_possible": 0},
    },
}


def config(**kw):
    return build_config({"detection": ENGINE, **kw})


CFG = config()
DETS = ["request_rate", "bad_user_agent"]


def scored_frame(rows: list[dict], cfg=CFG) -> pl.DataFrame:
    base = {
        "key": "1.1.1.1",
        "ip": "1.1.1.1",
        "session": None,
        "host": "app",
        "requests": 100,
        "last_ts": 1000.0,
        "window_start": 700.0,
        "window_end": 1000.0,
    }
    for d in DETS:
        base |= {
            f"{d}__value": 1.0,
            f"{d}__baseline": None,
            f"{d}__threshold": 2.0,
            f"{d}__fired": False,
            f"{d}__worked": True,
            f"{d}__fired_types": None,
            f"{d}__detail": None,
        }
    df = pl.DataFrame(
        [{**base, **r} for r in rows],
        schema_overrides={f"{d}__fired_types": pl.List(pl.String) for d in DETS}
        | {f"{d}__baseline": pl.Float64 for d in DETS},
    )
    return confidence_columns(df, cfg.detection.bot_types)


def test_confidence_is_votes_gained_over_votes_possible_of_detectors_that_worked():
    df = scored_frame(
        [
            {"request_rate__fired": True},  # scraping: 1 of 3, api_abuse 1 of 1
            {"request_rate__fired": True, "bad_user_agent__worked": False},  # scraping: 1 of 1 that worked
            {"bad_user_agent__fired": True, "bad_user_agent__fired_types": ["security_crawlers"]},
        ]
    )
    assert df["conf__scraping"].to_list() == pytest.approx([1 / 3, 1.0, 0.0])  # rate 1 of 1+2 votes
    assert df["conf__api_abuse"].to_list() == [1.0, 1.0, 0.0]
    assert df["conf__security_crawlers"].to_list() == [0.0, 0.0, 1.0]
    assert df["conf__account_takeover"].to_list() == [0.0, 0.0, 0.0]  # no detector here votes for it


def test_a_bot_type_needs_enough_votes_possible_to_be_judged():
    cfg = build_config(
        {
            "detection": {
                **ENGINE,
                "bot_types": {
                    **ENGINE["bot_types"],
                    "api_abuse": {"votes": {"request_rate": 1}, "min_votes_possible": 4},
                },
            }
        }
    )
    df = scored_frame([{"request_rate__fired": True}], cfg)
    assert df["conf__api_abuse"].to_list() == [0.0]  # one supporting detector alone is never a verdict


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [("low", {"scraping", "api_abuse"}), ("normal", {"api_abuse"}), ("high", {"api_abuse"})],
)
def test_tolerance_sets_the_confidence_needed(tolerance, expected):
    cfg = config(profiles=[{"name": "p", "tolerance": tolerance}])
    df = scored_frame([{"request_rate__fired": True}], cfg)
    assert set(detections(df, cfg)["bot_type"]) == expected


def test_profile_can_disable_a_bot_type_and_override_its_tolerance():
    cfg = build_config(
        {
            "detection": ENGINE,
            "profiles": [
                {
                    "name": "p",
                    "tolerance": "normal",
                    "bot_types": {
                        "api_abuse": {"enabled": False},
                        "scraping": {"tolerance": "high", "reaction": "monitor"},
                    },
                }
            ],
        }
    )
    df = scored_frame([{"request_rate__fired": True}], cfg)
    assert detections(df, cfg).height == 0


def test_profile_matches_by_host_glob():
    cfg = build_config(
        {
            "detection": ENGINE,
            "profiles": [
                {"name": "api", "applications": ["api.*"], "tolerance": "high"},
                {"name": "default", "tolerance": "low"},
            ],
        }
    )
    df = scored_frame(
        [
            {"request_rate__fired": True, "host": "api.example.com"},
            {"request_rate__fired": True, "host": "www.example.com", "key": "2.2.2.2", "ip": "2.2.2.2"},
        ],
        cfg,
    )
    hits = detections(df, cfg)
    assert set(zip(hits["row"], hits["profile"], hits["bot_type"], strict=True)) == {
        (0, "api", "api_abuse"),
        (1, "default", "api_abuse"),
        (1, "default", "scraping"),
    }


def book() -> VerdictBook:
    return VerdictBook(DETS, CFG.detection.bot_types)


def test_one_verdict_per_client_and_bot_type_while_listed_then_expiry_removes():
    b = book()
    df = scored_frame([{"request_rate__fired": True}])
    hits = detections(df, CFG).filter(pl.col("bot_type") == "api_abuse")
    v1, c1 = b.decide(df, hits)
    assert len(v1) == 1 and [c["op"] for c in c1] == ["add"]
    v = v1[0]
    assert v["action"] == "graylist" and v["expires_at"] == "1970-01-01T01:16:40.000Z"
    assert v["verdict_id"] == verdict_id("1.1.1.1", "api_abuse", "default", 1000.0)
    assert {d["name"] for d in v["detectors"]} == set(DETS)
    assert all({"name", "fired", "value", "baseline", "threshold", "votes"} <= set(d) for d in v["detectors"])
    # the same client keeps firing in the next steps: no new verdict
    df2 = df.with_columns(last_ts=pl.lit(1010.0), window_start=pl.lit(710.0), window_end=pl.lit(1010.0))
    assert b.decide(df2, hits) == ([], [])
    assert b.stats.suppressed == 1
    # event time passes the expiry: a remove change; afterwards a new verdict is possible
    removes = b.expire(1000.0 + 3600)
    assert [(c["op"], c["list"], c["value"]) for c in removes] == [("remove", "graylist", "1.1.1.1")]
    df3 = df.with_columns(last_ts=pl.lit(5000.0), window_start=pl.lit(4700.0), window_end=pl.lit(5000.0))
    v3, c3 = b.decide(df3, hits)
    assert len(v3) == 1 and c3[0]["op"] == "add" and v3[0]["verdict_id"] != v["verdict_id"]


def test_second_bot_type_on_a_listed_ip_extends_the_entry():
    b = book()
    df = scored_frame([{"request_rate__fired": True}])
    hits = detections(df, config(profiles=[{"name": "p", "tolerance": "low"}]))  # api_abuse, scraping
    verdicts, changes = b.decide(df, hits)
    assert sorted(v["bot_type"] for v in verdicts) == ["api_abuse", "scraping"]
    assert [c["op"] for c in changes] == ["add", "extend"]
    assert len(b.entries) == 1


def test_monitor_reaction_records_a_verdict_but_lists_nothing():
    cfg = config(profiles=[{"name": "m", "bot_types": {"api_abuse": {"reaction": "monitor"}}}])
    b = VerdictBook(DETS, cfg.detection.bot_types)
    df = scored_frame([{"request_rate__fired": True}], cfg)
    hits = detections(df, cfg).filter(pl.col("bot_type") == "api_abuse")
    verdicts, changes = b.decide(df, hits)
    assert verdicts[0]["action"] == "monitor" and verdicts[0]["expires_at"] is None and changes == []


def test_steps_in_one_frame_are_decided_in_event_time_order_with_expiry_between():
    cfg = config(profiles=[{"name": "p", "duration_s": 20}])
    b = VerdictBook(DETS, cfg.detection.bot_types)
    rows = [
        {"request_rate__fired": True, "last_ts": t - 1, "window_start": t - 300, "window_end": t}
        for t in (1030.0, 1000.0, 1010.0)
    ]
    df = scored_frame(rows, cfg)
    hits = detections(df, cfg).filter(pl.col("bot_type") == "api_abuse")
    verdicts, changes = b.decide(df, hits)
    # t=1000 lists until 1019; t=1010 is no new verdict but extends it (half its life passed) to 1029;
    # at t=1030 the entry has lapsed: remove, then add
    assert [v["window"]["end"] for v in verdicts] == ["1970-01-01T00:16:40.000Z", "1970-01-01T00:17:10.000Z"]
    assert [c["op"] for c in changes] == ["add", "extend", "remove", "add"]


def test_a_client_still_at_it_gets_its_entry_extended_not_a_new_verdict():
    cfg = config(profiles=[{"name": "p", "duration_s": 100}])
    b = VerdictBook(DETS, cfg.detection.bot_types)
    hits = lambda df: detections(df, cfg).filter(pl.col("bot_type") == "api_abuse")  # noqa: E731

    def at(t):
        return scored_frame(
            [{"request_rate__fired": True, "last_ts": t, "window_start": t - 300, "window_end": t}], cfg
        )  # noqa: E731

    v, c = b.decide(at(1000.0), hits(at(1000.0)))
    assert len(v) == 1 and [x["op"] for x in c] == ["add"]
    assert b.decide(at(1020.0), hits(at(1020.0))) == ([], [])  # 80 s left of 100: not due
    v, c = b.decide(at(1060.0), hits(at(1060.0)))  # 40 s left: extend to 1160
    assert v == [] and [(x["op"], x["expires_at"]) for x in c] == [("extend", "1970-01-01T00:19:20.000Z")]


def test_an_entry_removed_by_hand_is_re_added_on_renewed_activity():
    b = book()
    df = scored_frame([{"request_rate__fired": True}])
    hits = detections(df, CFG).filter(pl.col("bot_type") == "api_abuse")
    b.decide(df, hits)
    assert b.forget_removed(set()) == 1  # the store no longer lists it (manual removal)
    later = df.with_columns(last_ts=pl.lit(1100.0), window_start=pl.lit(800.0), window_end=pl.lit(1100.0))
    v, c = b.decide(later, hits)
    assert len(v) == 1 and [x["op"] for x in c] == ["add"]


def test_book_snapshot_is_the_stored_document_sorted_and_restores():
    """Snapshots are stored per partition and read back by the next owner (maybe the next version):
    compact JSON, rows sorted, the entries' fields in ListEntry order."""
    b = book()
    b.active = {("9.9.9.9", "scraping"): 2000.5, ("1.1.1.1", "api_abuse"): 1e20}
    b.entries = {
        ("graylist", "9.9.9.9"): ListEntry("graylist", "9.9.9.9", "scraping", "v2", 2000.5, "scraping: x"),
        ("denylist", "1.1.1.1"): ListEntry("denylist", "1.1.1.1", "api_abuse", "v1", None, "api_abuse: y"),
    }
    doc = json.loads(b.snapshot())
    assert doc == {
        "active": [["1.1.1.1", "api_abuse", 1e20], ["9.9.9.9", "scraping", 2000.5]],
        "entries": [
            ["denylist", "1.1.1.1", "api_abuse", "v1", None, "api_abuse: y"],
            ["graylist", "9.9.9.9", "scraping", "v2", 2000.5, "scraping: x"],
        ],
    }
    assert b.snapshot().startswith(b'{"active":[["1.1.1.1","api_abuse",')  # compact
    again = book()
    again.restore(b.snapshot())
    assert again.active == b.active and again.entries == b.entries and again.snapshot() == b.snapshot()
