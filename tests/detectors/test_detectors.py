"""Detectors: one shared check suite for every registered detector, then each detector's own cases."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from abuse_stream.config import WindowConfig, build_config
from abuse_stream.detectors import REGISTRY, build_detectors
from abuse_stream.detectors.base import Baselines, DetectContext, check_findings
from abuse_stream.detectors.ua_signatures import UAClass
from abuse_stream.features import FEATURES, client_features
from abuse_stream.window import WindowState
from tests.helpers import enriched, timeline

CFG = build_config({})


class FixedBaselines(Baselines):
    def __init__(self, values: dict[str, float | None]) -> None:
        self.values = values

    def lookup(self, metric: str, apps: pl.Series) -> pl.Series:
        return pl.Series([self.values.get(metric)] * len(apps), dtype=pl.Float64)


def _template_row() -> dict:
    """One real feature row, produced by the real stages (records -> window -> features)."""
    w = WindowState(WindowConfig(length_s=300, step_s=10, lateness_s=0))
    w.add(enriched(timeline({"1.1.1.1": "x.x.x.x.x.x.x.x.x.x"})))
    return client_features(w.flush(), 300).row(-1, named=True)


BASE = _template_row()


def features(rows: list[dict]) -> pl.DataFrame:
    schema = client_features(WindowState(WindowConfig()).flush(), 300).schema
    return pl.DataFrame([{**BASE, **r} for r in rows], schema=schema)


def test_every_feature_is_documented():
    assert set(BASE) == set(FEATURES)


def ctx(**baselines: float | None) -> DetectContext:
    return DetectContext(step_s=10.0, window_s=300.0, baselines=FixedBaselines(baselines))


@pytest.fixture(params=sorted(REGISTRY))
def detector(request):
    return build_detectors({request.param: CFG.detection.detectors[request.param]})[0]


# -- the shared suite: every detector must pass these ------------------------------------------------


def test_detector_declares_itself(detector):
    assert detector.name in REGISTRY and detector.description and detector.reads
    assert set(detector.reads) <= set(features([{}]).columns)


def test_detector_returns_one_valid_finding_per_client(detector):
    feats = features(
        [{}, {"ua_class": int(UAClass.SCANNER), "recent_counts": [50] * 6}, {"requests": 1, "ua": None}]
    )
    out = check_findings(detector.name, detector.evaluate(feats, ctx(sustained_rps=1.0)), feats.height)
    assert out.height == 3
    assert out["fired"].dtype == pl.Boolean and out["worked"].dtype == pl.Boolean


def test_detector_handles_no_clients(detector):
    feats = features([{}]).clear()
    out = check_findings(detector.name, detector.evaluate(feats, ctx()), 0)
    assert out.height == 0


def test_detector_is_deterministic_and_pickles(detector):
    feats = features([{}, {"recent_counts": [9] * 6}])
    a = detector.evaluate(feats, ctx(sustained_rps=0.5))
    clone = pickle.loads(pickle.dumps(detector))
    b = clone.evaluate(feats, ctx(sustained_rps=0.5))
    assert a.equals(b)


def test_detector_rejects_unknown_params(detector):
    with pytest.raises(ValueError, match=f"detection.detectors.{detector.name}"):
        type(detector)({"no_such_param": 1})


# -- request_rate -------------------------------------------------------------------------------------


def rate(**params):
    return build_detectors({"request_rate": {**CFG.detection.detectors["request_rate"], **params}})[0]


def test_request_rate_needs_a_sustained_rate_not_one_burst():
    d = rate(sustain_steps=3, floor_rps=2.0, factor=5.0)
    feats = features(
        [
            {"recent_counts": [0, 0, 0, 0, 0, 300]},  # one 10 s burst of 300
            {"recent_counts": [0, 0, 0, 50, 60, 70]},  # 5-7 req/s for 30 s
        ]
    )
    out = d.evaluate(feats, ctx(sustained_rps=0.2))
    assert out["value"].to_list() == [0.0, 5.0]
    assert out["threshold"].to_list() == [2.0, 2.0]  # max(floor 2, 5 x 0.2)
    assert out["fired"].to_list() == [False, True]


def test_request_rate_threshold_follows_the_baseline():
    d = rate(factor=5.0, floor_rps=1.0)
    feats = features([{"recent_counts": [0, 0, 0, 40, 40, 40]}])
    assert d.evaluate(feats, ctx(sustained_rps=1.0))["fired"].to_list() == [False]  # 4 < 5
    assert d.evaluate(feats, ctx(sustained_rps=0.5))["fired"].to_list() == [True]  # 4 > 2.5


def test_request_rate_uses_the_warmup_threshold_without_a_baseline():
    d = rate(warmup_rps=5.0)
    out = d.evaluate(features([{"recent_counts": [0, 0, 0, 60, 60, 60]}]), ctx(sustained_rps=None))
    assert out["baseline"].to_list() == [None]
    assert out["threshold"].to_list() == [5.0]
    assert out["fired"].to_list() == [True]


# -- bad_user_agent -----------------------------------------------------------------------------------


def ua(**params):
    return build_detectors({"bad_user_agent": {**CFG.detection.detectors["bad_user_agent"], **params}})[0]


def test_bad_user_agent_fires_per_class_and_names_the_supported_bot_types():
    d = ua(min_requests=3)
    feats = features(
        [
            {"ua_class": int(UAClass.SCANNER), "ua": "sqlmap/1.7"},
            {"ua_class": int(UAClass.LIBRARY), "ua": "okhttp/4.12"},
            {"ua_class": int(UAClass.OK)},
            {"ua_class": int(UAClass.EMPTY), "ua": None},
            {"ua_class": int(UAClass.EMPTY), "ua": None, "requests": 2},  # too few for an empty UA
            {"ua_class": int(UAClass.SCANNER), "requests": 1},  # a banner grab is enough for a scanner
            {"ua_class": int(UAClass.CRAWLER), "crawler_fake": True},  # Googlebot UA from elsewhere
            {"ua_class": int(UAClass.HEADLESS), "crawler_verified": True},
        ]
    )
    out = d.evaluate(feats, ctx())
    assert out["fired"].to_list() == [True, False, False, True, False, True, True, False]
    assert out["fired_types"][0].to_list() == ["security_crawlers"]
    assert "security_crawlers" not in out["fired_types"][3].to_list()
    assert "sqlmap" in out["detail"][0]


def test_bad_user_agent_rejects_unknown_classes():
    with pytest.raises(ValueError, match="unknown UA class"):
        ua(fire_on=["scanner", "martian"])


# -- the rest of the engine: one firing and one quiet client each --------------------------------------


def one(name: str, **params):
    return build_detectors({name: {**CFG.detection.detectors[name], **params}})[0]


CASES = {
    # name: (features of a client that should fire, of one that should not, baselines)
    "request_interval": (
        {"iat_n": 40, "iat_mean": 1.0, "iat_cv": 0.1},
        {"iat_n": 40, "iat_mean": 1.0, "iat_cv": 1.8},
        {},
    ),
    "request_uniqueness": (
        {"requests": 300, "distinct_paths": 2, "unique_path_ratio": 2 / 300},
        {"requests": 300, "distinct_paths": 120, "unique_path_ratio": 0.4},
        {},
    ),
    "wide_scope": (
        {"distinct_paths": 400, "distinct_uas": 1},
        {"distinct_paths": 400, "distinct_uas": 40},
        {"distinct_paths": 50.0},
    ),
    "business_logic": (
        {"n_sensitive": 60, "distinct_uas": 1},
        {"n_sensitive": 2, "distinct_uas": 1},
        {"n_sensitive": 2.0},
    ),
    "failed_auth": (
        {"n_login": 20, "n_auth_fail": 19, "auth_fail_share": 0.95},
        {"n_login": 2, "n_auth_fail": 1, "auth_fail_share": 0.5},
        {},
    ),
    "stuffing_campaign": (
        {"n_login": 2, "n_auth_fail": 2, "auth_fail_share": 1.0, "requests": 2, "campaign_failers": 40},
        {"n_login": 2, "n_auth_fail": 2, "auth_fail_share": 1.0, "requests": 30, "campaign_failers": 40},
        {},
    ),
    "ua_rotation": ({"requests": 20, "distinct_uas": 12}, {"requests": 2000, "distinct_uas": 12}, {}),
    "attack_probes": ({"n_probe": 30}, {"n_probe": 0}, {}),
    "id_enumeration": (
        {"distinct_paths": 80, "distinct_templates": 1, "share_refused": 0.9},
        {"distinct_paths": 80, "distinct_templates": 1, "share_refused": 0.05},
        {},
    ),
    "not_found": ({"requests": 100, "share_404": 0.8}, {"requests": 100, "share_404": 0.02}, {}),
    "outdated_browser": (
        {"browser_known": True, "browser_outdated_days": 2000.0},
        {"browser_known": True, "browser_outdated_days": 20.0},
        {},
    ),
    "response_time": (
        {"requests": 50, "mean_latency_ms": 3000.0},
        {"requests": 50, "mean_latency_ms": 80.0},
        {"mean_latency_ms": 100.0},
    ),
    "response_size": (
        {"requests": 50, "mean_bytes": 9e6},
        {"requests": 50, "mean_bytes": 900.0},
        {"mean_bytes": 1000.0},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_detector_fires_on_the_bot_and_not_on_the_person(name):
    bot, person, baselines = CASES[name]
    out = one(name).evaluate(features([bot, person]), ctx(**baselines))
    assert out["fired"].to_list() == [True, False], out
    assert out["worked"].to_list()[0] is True


def test_wide_scope_and_business_logic_count_per_apparent_user_so_a_nat_is_not_one_client():
    nat = {"distinct_paths": 2000, "n_sensitive": 100, "distinct_uas": 150, "requests": 20000}
    for name in ("wide_scope", "business_logic"):
        metric = {"wide_scope": "distinct_paths", "business_logic": "n_sensitive"}[name]
        assert one(name).evaluate(features([nat]), ctx(**{metric: 30.0}))["fired"].to_list() == [False]


def test_baseline_dependent_detectors_fall_back_while_warming_up():
    warm = float(CFG.detection.detectors["wide_scope"]["warmup_floor"])
    out = one("wide_scope").evaluate(features([{"distinct_paths": 100}]), ctx())
    assert out["threshold"].to_list() == [warm] and out["baseline"].to_list() == [None]
    out = one("response_time").evaluate(features([{"requests": 50, "mean_latency_ms": 9e9}]), ctx())
    assert out["worked"].to_list() == [False]  # no baseline, no judgement


def test_suspicious_behavior_needs_a_warm_model():
    out = one("suspicious_behavior").evaluate(features([{"requests": 50}]), ctx(behavior_score=0.5))
    assert out["worked"].to_list() == [False]  # FixedBaselines has no behaviour model: insufficient data
