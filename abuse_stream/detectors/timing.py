"""``request_interval``: lack of randomness in the time between a client's consecutive requests.

Value: the coefficient of variation (std / mean) of the inter-arrival times in the window, measured
over at least ``min_intervals`` intervals. Fires below ``max_cv``.

Why it means "bot": a person's requests come in bursts (a page view fires a handful of XHRs within a
second) separated by think time of seconds to minutes, so the gaps vary wildly (CV well above 1).
Schedulers and scripts with a fixed sleep and a little jitter produce nearly equal gaps. Periodic
*legitimate* automation (mobile apps polling, partner syncs, monitors) is just as regular, which is
why this detector only ever adds a vote next to stronger evidence and polls slower than
``max_mean_s`` are not judged.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params


class RequestIntervalParams(Params):
    min_intervals: int = Field(15, ge=3)
    max_cv: float = Field(0.35, gt=0)
    max_mean_s: float = Field(20.0, gt=0)


class RequestInterval(Detector):
    name: ClassVar[str] = "request_interval"
    description: ClassVar[str] = "inter-arrival times too regular (low coefficient of variation)"
    reads: ClassVar[tuple[str, ...]] = ("iat_cv", "iat_n", "iat_mean")
    Params = RequestIntervalParams
    params: RequestIntervalParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        worked = (pl.col("iat_n") >= p.min_intervals) & (pl.col("iat_mean") <= p.max_mean_s)
        return features.select(
            value=pl.col("iat_cv"),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(p.max_cv),
            worked=worked.fill_null(False),
            fired=(pl.col("iat_cv") < p.max_cv).fill_null(False),
            detail=pl.format(
                "gaps of {}s on average, CV {} over {} intervals",
                pl.col("iat_mean").round(2),
                pl.col("iat_cv").round(3),
                pl.col("iat_n"),
            ),
        )
