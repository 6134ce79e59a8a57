"""Detectors: one shared check suite for every registered detector, then each detector's own cases."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from abuse_stream.config import build_config
from abuse_stream.detectors import REGISTRY, build_detectors
from abuse_stream.detectors.base import Baselines, DetectContext, check_findings
from abuse_stream.detectors.ua_signatures import UAClass

CFG = build_config({})


class FixedBaselines(Baselines):
    def __init__(self, values: dict[str, float | None]) -> None:
        self.values = values

    def lookup(self, metric: str, apps: pl.Series) -> pl.Series:
        return pl.Series([self.values.get(metric)] * len(apps), dtype=pl.Float64)


def features(rows: list[dict]) -> pl.DataFrame:
    base = {
        "key": "1.1.1.1",
        "bucket": 9,
        "window_start": -200.0,
        "window_end": 100.0,
        "ip": "1.1.1.1",
        "session": None,
        "host": "app",
        "requests": 10,
        "window_rps": 0.1,
        "recent_counts": [0, 0, 0, 2, 2, 2],
        "iat_mean": 1.0,
        "iat_cv": 1.0,
        "iat_n": 9,
        "distinct_paths": 5,
        "unique_path_ratio": 0.5,
        "share_2xx": 1.0,
        "share_4xx": 0.0,
        "share_5xx": 0.0,
        "share_post": 0.0,
        "mean_bytes": 100.0,
        "mean_latency_ms": 10.0,
        "ua_class": 0,
        "ua": "Mozilla/5.0",
        "distinct_uas": 1,
        "first_ts": 0.0,
        "last_ts": 10.0,
        "active_steps": 3,
    }
    return pl.DataFrame([{**base, **r} for r in rows]).with_columns(pl.col("ua_class").cast(pl.UInt8))


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
            {"ua_class": int(UAClass.SCANNER), "requests": 2},
        ]
    )
    out = d.evaluate(feats, ctx())
    assert out["fired"].to_list() == [True, False, False, True, False]
    assert out["fired_types"][0].to_list() == ["security_crawlers"]
    assert "security_crawlers" not in out["fired_types"][3].to_list()
    assert "sqlmap" in out["detail"][0]


def test_bad_user_agent_rejects_unknown_classes():
    with pytest.raises(ValueError, match="unknown UA class"):
        ua(fire_on=["scanner", "martian"])
