"""Detectors: small pure plug-ins, one registry.

Add a detector by writing a :class:`~abuse_stream.detectors.base.Detector` subclass and naming it in
:data:`REGISTRY`; give it parameters and votes in ``data/detection.yaml``. No import-time discovery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abuse_stream.detectors.account import FailedAuth, StuffingCampaign, UARotation
from abuse_stream.detectors.bad_user_agent import BadUserAgent
from abuse_stream.detectors.base import DetectContext, Detector
from abuse_stream.detectors.behavior import SuspiciousBehavior
from abuse_stream.detectors.business import BusinessLogic
from abuse_stream.detectors.outdated_browser import OutdatedBrowser
from abuse_stream.detectors.probes import AttackProbes, IdEnumeration, NotFound
from abuse_stream.detectors.request_rate import RequestRate
from abuse_stream.detectors.resources import ResponseSize, ResponseTime
from abuse_stream.detectors.scope import RequestUniqueness, WideScope
from abuse_stream.detectors.timing import RequestInterval

REGISTRY: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        RequestInterval,
        RequestUniqueness,
        RequestRate,
        BadUserAgent,
        OutdatedBrowser,
        SuspiciousBehavior,
        BusinessLogic,
        WideScope,
        FailedAuth,
        StuffingCampaign,
        UARotation,
        AttackProbes,
        IdEnumeration,
        NotFound,
        ResponseTime,
        ResponseSize,
    )
}


def build_detectors(params: Mapping[str, Mapping[str, Any]]) -> list[Detector]:
    """Instantiate the configured detectors (config name -> params), in registry order."""
    unknown = sorted(set(params) - set(REGISTRY))
    if unknown:
        raise ValueError(
            f"config key 'detection.detectors': unknown detector(s) {unknown}; known: {sorted(REGISTRY)}"
        )
    return [cls(params[name]) for name, cls in REGISTRY.items() if name in params]


__all__ = ["REGISTRY", "DetectContext", "Detector", "build_detectors"]
