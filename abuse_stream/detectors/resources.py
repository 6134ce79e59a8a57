"""Resource-consumption detectors: clients whose requests are unusually expensive to serve.

``response_time`` — the client's mean response time in the window against ``factor`` x the learned
p99 of that mean over normal clients of the application. ``response_size`` — the same for response
bytes. Both need ``min_requests`` requests (with a logged latency for ``response_time``). Why
"bot": L7 attacks pick the slowest endpoints (search, reports, exports) and bulk scrapers the
biggest responses; a person's mix of requests costs what everybody's costs.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params


class ResourceParams(Params):
    min_requests: int = Field(20, ge=1)
    factor: float = Field(3.0, gt=0)
    baseline_quantile: float = Field(0.99, gt=0, lt=1)


class _Resource(Detector):
    feature: ClassVar[str]
    unit: ClassVar[str]
    Params = ResourceParams
    params: ResourceParams

    def baseline_quantile(self) -> float:
        return self.params.baseline_quantile

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        base = ctx.baselines.lookup(self.feature, features["host"])
        df = features.select(
            value=pl.col(self.feature).cast(pl.Float64), requests=pl.col("requests")
        ).with_columns(baseline=base)
        return df.with_columns(threshold=pl.col("baseline") * p.factor).select(
            "value",
            "baseline",
            "threshold",
            worked=(pl.col("requests") >= p.min_requests)
            & pl.col("baseline").is_not_null()
            & pl.col("value").is_not_null(),
            fired=(pl.col("value") > pl.col("threshold")).fill_null(False),
            detail=pl.format("{} {} per request on average", pl.col("value").round(1), pl.lit(self.unit)),
        )


class ResponseTime(_Resource):
    name: ClassVar[str] = "response_time"
    description: ClassVar[str] = "mean response time far above the application's normal"
    reads: ClassVar[tuple[str, ...]] = ("mean_latency_ms", "requests", "host")
    feature: ClassVar[str] = "mean_latency_ms"
    unit: ClassVar[str] = "ms"
    baseline_metric: ClassVar[str | None] = "mean_latency_ms"


class ResponseSize(_Resource):
    name: ClassVar[str] = "response_size"
    description: ClassVar[str] = "mean response size far above the application's normal"
    reads: ClassVar[tuple[str, ...]] = ("mean_bytes", "requests", "host")
    feature: ClassVar[str] = "mean_bytes"
    unit: ClassVar[str] = "bytes"
    baseline_metric: ClassVar[str | None] = "mean_bytes"
