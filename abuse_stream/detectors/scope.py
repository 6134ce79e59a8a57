"""Breadth and repetition of what a client requests.

``request_uniqueness`` — share of unique resources among a client's requests in the window. Fires
when at most ``max_ratio`` (10%) of ``min_requests`` or more requests were to distinct resources.
Why "bot": floods and credential stuffing hammer one or two endpoints; people move around.

``wide_scope`` — breadth: distinct resources (host + path) in the window, per apparent user (distinct
user agents) with ``per_user``, against the application's learned normal (p99 of clients no
detector flagged), never below ``floor``. Why "bot": crawlers and
stealth scrapers walk the catalogue uniformly (hundreds of ``/products/{id}`` in minutes); people
look at a few dozen things. Distinct endpoint templates and hosts are reported alongside.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params, above_normal


class UniquenessParams(Params):
    min_requests: int = Field(30, ge=2)
    max_ratio: float = Field(0.1, gt=0, le=1)


class RequestUniqueness(Detector):
    name: ClassVar[str] = "request_uniqueness"
    description: ClassVar[str] = "few distinct resources among many requests"
    reads: ClassVar[tuple[str, ...]] = ("unique_path_ratio", "requests", "distinct_paths")
    Params = UniquenessParams
    params: UniquenessParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        return features.select(
            value=pl.col("unique_path_ratio"),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(p.max_ratio),
            worked=pl.col("requests") >= p.min_requests,
            fired=pl.col("unique_path_ratio") <= p.max_ratio,
            detail=pl.format(
                "{} distinct resources in {} requests", pl.col("distinct_paths"), pl.col("requests")
            ),
        )


class WideScopeParams(Params):
    min_requests: int = Field(10, ge=1)
    factor: float = Field(2.0, gt=0)
    floor: float = Field(60.0, ge=1)
    warmup_floor: float = Field(150.0, ge=1)
    baseline_quantile: float = Field(0.99, gt=0, lt=1)
    per_user: bool = True


class WideScope(Detector):
    name: ClassVar[str] = "wide_scope"
    description: ClassVar[str] = "distinct resources far above the application's normal breadth"
    reads: ClassVar[tuple[str, ...]] = (
        "distinct_paths",
        "distinct_templates",
        "distinct_hosts",
        "distinct_uas",
        "requests",
        "host",
    )
    Params = WideScopeParams
    params: WideScopeParams
    baseline_metric: ClassVar[str | None] = "distinct_paths"

    def baseline_quantile(self) -> float:
        return self.params.baseline_quantile

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        base = ctx.baselines.lookup("distinct_paths", features["host"])
        value = pl.col("distinct_paths").cast(pl.Float64)
        if p.per_user:
            value = value / pl.col("distinct_uas").clip(lower_bound=1)
        df = features.select(
            value=value,
            requests=pl.col("requests"),
            t=pl.col("distinct_templates"),
            h=pl.col("distinct_hosts"),
        ).with_columns(baseline=base)
        threshold = above_normal(p.factor, p.floor, p.warmup_floor)
        return df.with_columns(threshold=threshold).select(
            "value",
            "baseline",
            "threshold",
            worked=pl.col("requests") >= p.min_requests,
            fired=pl.col("value") > pl.col("threshold"),
            detail=pl.format(
                "{} resources per user agent, {} endpoints, {} hosts", pl.col("value").round(1), "t", "h"
            ),
        )
