"""The exception list: matching, expiry, and its effect on verdicts (analysed and reported, never listed)."""

from __future__ import annotations

import pytest

from abuse_stream.config import ConfigError, build_config
from abuse_stream.pipeline import Pipeline
from abuse_stream.policy import ExceptionEntry, ExceptionList, RangeSet, normalise
from abuse_stream.simulate import SCENARIOS, generate
from tests.helpers import TinyClassifier


def test_ranges_match_addresses_networks_and_both_families():
    import ipaddress

    r = RangeSet(
        [
            (ipaddress.ip_network("10.0.0.0/8"), "a"),
            (ipaddress.ip_network("10.1.0.0/16"), "b"),
            (ipaddress.ip_network("2001:db8::/32"), "c"),
            (ipaddress.ip_network("192.0.2.7/32"), "d"),
        ]
    )
    assert r.owner("10.1.2.3") == "a"  # merged into the enclosing network
    assert r.owner("11.0.0.0") is None and r.owner("192.0.2.7") == "d" and r.owner("192.0.2.8") is None
    assert r.owner("2001:db8::1") == "c" and r.owner("2001:db9::1") is None and r.owner("junk") is None


def test_exceptions_expire_in_event_time_and_cover_countries_and_search_engines():
    x = ExceptionList(
        [
            ExceptionEntry("cidr", "203.0.113.0/24", "partner"),
            ExceptionEntry("country", "DE", expires_at=1000.0),
            ExceptionEntry("source", "search_engines"),
        ]
    )
    assert x.match("203.0.113.200", 0).comment == "partner"
    assert x.match("2a02:8100::1", 999) is not None and x.match("2a02:8100::1", 1000) is None  # DE until 1000
    assert x.match("66.249.64.5", 0).value == "search_engines"  # a published Googlebot prefix
    assert x.match("198.51.100.1", 0) is None


def test_source_types_need_data_and_values_are_validated(tmp_path):
    with pytest.raises(ValueError, match="policy.source_files"):
        ExceptionList([ExceptionEntry("source", "tor")])
    f = tmp_path / "tor.txt"
    f.write_text("# exits\n185.220.100.0/22\n2a0b:f4c2::/32  # v6\n")
    assert (
        ExceptionList([ExceptionEntry("source", "tor")], {"tor": str(f)}).match("185.220.101.4", 0)
        is not None
    )
    assert normalise("cidr", "10.1.2.3/8") == ("cidr", "10.0.0.0/8") and normalise("ip", "10.1.2.3") == (
        "ip",
        "10.1.2.3",
    )
    with pytest.raises(ValueError):
        normalise("country", "Germany")
    with pytest.raises(ConfigError, match="policy.exceptions.0"):
        build_config({"policy": {"exceptions": [{"value": "999.1.1.1", "kind": "ip"}]}})


def test_an_excepted_partner_range_is_analysed_and_reported_but_never_listed():
    traffic = generate(SCENARIOS["tiny"])
    base = {"detection": {"baseline": {"warmup_samples": 50}}}

    def run(cfg):
        p = Pipeline(cfg, TinyClassifier())
        out = p.process_records(traffic.records)
        out.extend(p.finish())
        return out

    plain = run(build_config(base))
    flagged = {v["ip"] for v in plain.verdicts if v["action"] != "monitor"}
    assert flagged
    partner = sorted(flagged)[0]
    cfg = build_config({**base, "policy": {"exceptions": [{"value": f"{partner}/32", "comment": "partner"}]}})
    out = run(cfg)
    mine = [v for v in out.verdicts if v["ip"] == partner]
    assert mine and all(
        v["action"] == "monitor" and "partner" in v["exception"] for v in mine
    )  # analysed, reported
    assert not [c for c in out.ip_changes if c["value"] == partner]  # never listed
    others = {v["ip"] for v in out.verdicts if v["action"] != "monitor"}
    assert others == flagged - {partner}


def test_reconfigure_keeps_window_state_and_baselines_and_applies_new_policy():
    traffic = generate(SCENARIOS["tiny"])
    cfg = build_config({"detection": {"baseline": {"warmup_samples": 50}}})
    p = Pipeline(cfg, TinyClassifier())
    half = traffic.records.height // 2
    p.process_records(traffic.records.head(half))
    state_rows = p.window.open.height + sum(f.height for _, f in p.window.closed)
    learnt = p.stats.epochs_learnt
    new = build_config(
        {
            "detection": {"baseline": {"warmup_samples": 50}},
            "window": {"length_s": 600},  # geometry: only on restart
            "profiles": [{"name": "strict", "tolerance": "high"}],
            "policy": {"exceptions": [{"value": "203.0.113.0/24"}]},
        }
    )
    warnings = p.reconfigure(new)
    assert warnings == ["window settings change only on restart"]
    assert p.window.open.height + sum(f.height for _, f in p.window.closed) == state_rows  # state kept
    assert p.stats.epochs_learnt == learnt and p.cfg.window.length_s == cfg.window.length_s
    assert p.cfg.profiles[0].name == "strict" and p.book.exceptions.match("203.0.113.7", 0) is not None
    out = p.process_records(traffic.records.slice(half))
    out.extend(p.finish())
    assert all(v["profile"] == "strict" for v in out.verdicts)
    bad = build_config({"detection": {"detectors": {"request_rate": {"factor": 3}}}})
    object.__setattr__(bad.detection, "detectors", {"request_rate": {"factor": -1}})  # invalid params slip in
    with pytest.raises(ValueError):
        p.reconfigure(bad)
    assert p.cfg.profiles[0].name == "strict"  # a refused reload changes nothing


@pytest.mark.parametrize("batch", [997, 5000])
def test_verdicts_do_not_depend_on_batching_baselines_included(batch):
    traffic = generate(SCENARIOS["tiny"])
    cfg = build_config({"detection": {"baseline": {"warmup_samples": 50, "epoch_s": 60}}})

    def ids(size):
        p = Pipeline(cfg, TinyClassifier())
        out = []
        for chunk in traffic.records.iter_slices(size):
            out += p.process_records(chunk).verdicts
        out += p.finish().verdicts
        assert p.stats.epochs_learnt > 1
        return sorted(v["verdict_id"] for v in out)

    assert ids(batch) == ids(traffic.records.height)


def test_a_reload_that_fails_late_changes_nothing():
    p = Pipeline(build_config({}), TinyClassifier())
    bad = build_config(
        {"profiles": [{"name": "new"}], "policy": {"exceptions": [{"value": "tor", "kind": "source"}]}}
    )
    with pytest.raises(ValueError, match="source_files"):  # no ranges for 'tor': found while building
        p.reconfigure(bad)
    assert p.cfg.profiles[0].name == "default" and p.book.exceptions.match("1.2.3.4", 0) is None
