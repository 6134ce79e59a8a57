"""``business_logic``: intensity of use of sensitive endpoints against the application's normal.

Sensitive endpoints are login, registration, password reset, checkout, payment, OTP, token and
account changes (writes), auto-tagged by keywords in the endpoint template (``abuse_stream.endpoints``)
plus each profile's ``sensitive_endpoints``. Value: sensitive requests in the window (per apparent
user with ``per_user``: a NAT of many people is many customers); threshold: ``factor``
x the learned p99 for the application (never below ``floor``). Works only for clients that touched a
sensitive endpoint.

Why it means "bot": a person logs in once, registers once, pays once. Fake sign-ups, scalpers,
card testers and stuffing tools hit these endpoints over and over, and that is where abuse costs
money.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params, above_normal


class BusinessLogicParams(Params):
    factor: float = Field(3.0, gt=0)
    floor: float = Field(8.0, ge=1)
    warmup_floor: float = Field(15.0, ge=1)
    baseline_quantile: float = Field(0.99, gt=0, lt=1)
    per_user: bool = True


class BusinessLogic(Detector):
    name: ClassVar[str] = "business_logic"
    description: ClassVar[str] = "sensitive endpoints (login, signup, payment, ...) used far more than normal"
    reads: ClassVar[tuple[str, ...]] = ("n_sensitive", "n_signup", "n_login", "distinct_uas", "host")
    Params = BusinessLogicParams
    params: BusinessLogicParams
    baseline_metric: ClassVar[str | None] = "n_sensitive"

    def baseline_quantile(self) -> float:
        return self.params.baseline_quantile

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        base = ctx.baselines.lookup("n_sensitive", features["host"])
        value = pl.col("n_sensitive").cast(pl.Float64)
        if p.per_user:
            value = value / pl.col("distinct_uas").clip(lower_bound=1)
        df = features.select(value=value, s=pl.col("n_signup"), lg=pl.col("n_login")).with_columns(
            baseline=base
        )
        threshold = above_normal(p.factor, p.floor, p.warmup_floor)
        return df.with_columns(threshold=threshold).select(
            "value",
            "baseline",
            "threshold",
            worked=pl.col("value") > 0,
            fired=pl.col("value") > pl.col("threshold"),
            detail=pl.format(
                "{} sensitive requests per user agent ({} logins, {} sign-ups)",
                pl.col("value").round(1),
                "lg",
                "s",
            ),
        )
