"""``request_rate``: a client's sustained request rate against the application's learned normal.

Value: the *sustained* rate, i.e. the lowest per-step rate over the last ``sustain_steps`` window
steps (requests / step seconds), with ``per_user`` divided by the client's distinct user agents
(apparent users: a NAT or office of many people is not one fast client). A burst that fills one step and stops does not reach it; a client
that keeps hammering does. Baseline: the ``baseline_quantile`` of the same measure over normal
clients of the application (``baseline.TrafficBaselines``, metric ``sustained_rps``). Threshold:
``max(floor_rps, factor x baseline)``, or ``warmup_rps`` while the baseline is still learning.

Why it means "bot": people read pages and think; even a busy NAT of humans spreads its requests
unevenly. Floods, scrapers and stuffing tools keep a high rate step after step.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params, above_normal


class RequestRateParams(Params):
    sustain_steps: int = Field(3, ge=1, le=6)
    factor: float = Field(5.0, gt=0)
    floor_rps: float = Field(2.0, ge=0)
    warmup_rps: float = Field(5.0, gt=0)
    baseline_quantile: float = Field(0.99, gt=0, lt=1)
    per_user: bool = True


class RequestRate(Detector):
    name: ClassVar[str] = "request_rate"
    description: ClassVar[str] = "sustained requests/s over the last steps vs the application's normal"
    reads: ClassVar[tuple[str, ...]] = ("recent_counts", "distinct_uas", "host")
    Params = RequestRateParams
    params: RequestRateParams
    baseline_metric: ClassVar[str | None] = "sustained_rps"

    def baseline_quantile(self) -> float:
        return self.params.baseline_quantile

    def sustained(self, features: pl.DataFrame, step_s: float) -> pl.Expr:
        k = self.params.sustain_steps
        rate = pl.col("recent_counts").list.slice(-k, k).list.min().cast(pl.Float64) / step_s
        if self.params.per_user:
            rate = rate / pl.col("distinct_uas").clip(lower_bound=1)
        return rate

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        base = ctx.baselines.lookup("sustained_rps", features["host"])
        df = features.select(value=self.sustained(features, ctx.step_s)).with_columns(baseline=base)
        threshold = above_normal(p.factor, p.floor_rps, p.warmup_rps)
        return df.with_columns(threshold=threshold).with_columns(
            fired=pl.col("value") > pl.col("threshold"),
            worked=pl.lit(True),
            detail=pl.format(
                "{} req/s sustained over {} steps{}",
                pl.col("value").round(2),
                pl.lit(p.sustain_steps),
                pl.lit(" per user agent" if p.per_user else ""),
            ),
        )
