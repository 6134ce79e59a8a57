"""``suspicious_behavior``: how unusual a client's session looks against what normal sessions do.

A river ``HalfSpaceTrees`` anomaly detector (``abuse_stream.baseline.BehaviorModel``) learns the
shape of normal sessions from clients no detector flagged: how many requests, how varied (unique
resources and endpoints), the mix of errors, writes and sensitive endpoints, how regular the timing,
how many user agents. Value: the client's anomaly score (0..1); threshold: the learned
``baseline_quantile`` of normal clients' scores, never below ``floor``. Scored only for clients with
``min_requests`` requests (a cheap filter that keeps per-client Python off the hot path) once the
model is warm; otherwise it reports "insufficient data" (does not work).

Why it means "bot": bots do one thing efficiently (one endpoint, one id range, one error pattern);
sessions of people mix reading, navigation, occasional errors and a few writes.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params


class BehaviorParams(Params):
    min_requests: int = Field(10, ge=1)
    floor: float = Field(0.7, ge=0, le=1)
    baseline_quantile: float = Field(0.995, gt=0, lt=1)


class SuspiciousBehavior(Detector):
    name: ClassVar[str] = "suspicious_behavior"
    description: ClassVar[str] = "session unlike normal sessions (river HalfSpaceTrees anomaly score)"
    reads: ClassVar[tuple[str, ...]] = (
        "requests",
        "unique_path_ratio",
        "unique_template_ratio",
        "share_4xx",
        "host",
    )
    Params = BehaviorParams
    params: BehaviorParams
    baseline_metric: ClassVar[str | None] = "behavior_score"

    def baseline_quantile(self) -> float:
        return self.params.baseline_quantile

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        scores = ctx.baselines.score("behavior", features, features["requests"] >= p.min_requests)
        base = ctx.baselines.lookup("behavior_score", features["host"])
        df = pl.DataFrame(
            {"value": scores, "baseline": base}, schema={"value": pl.Float64, "baseline": pl.Float64}
        )
        return df.with_columns(
            threshold=pl.max_horizontal(pl.lit(p.floor), pl.col("baseline").fill_null(1.0)),
        ).with_columns(
            worked=pl.col("value").is_not_null() & pl.col("baseline").is_not_null(),
            fired=(pl.col("value") > pl.col("threshold")).fill_null(False),
            detail=pl.format("anomaly score {}", pl.col("value").round(3)),
        )
