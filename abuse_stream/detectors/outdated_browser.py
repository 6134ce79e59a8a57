"""``outdated_browser``: browser or platform too old, judged at the event time of the request.

Value: days between the moment a newer major version of the client's (oldest) browser came out and
the window's end (event time), from browser release data (``abuse_stream.browsers``, built from
MDN's browser-compat-data); or days since its operating system lost vendor support. Fires above
``max_days`` / ``max_os_days``. A 2019 log replayed today judges 2019 browsers by 2019 standards; a
version newer than the data knows counts as current. Works only for clients with a recognised
browser UA.

Why it means "bot": browsers update themselves within weeks; bot kits hard-code a UA string once and
keep sending "Chrome 70" for years.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params


class OutdatedParams(Params):
    max_days: float = Field(730.0, gt=0)
    max_os_days: float = Field(730.0, gt=0)


class OutdatedBrowser(Detector):
    name: ClassVar[str] = "outdated_browser"
    description: ClassVar[str] = "browser or platform superseded long before the request (event time)"
    reads: ClassVar[tuple[str, ...]] = ("browser_known", "browser_outdated_days", "os_unsupported_days", "ua")
    Params = OutdatedParams
    params: OutdatedParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        b = pl.col("browser_outdated_days").fill_null(0.0).clip(lower_bound=0.0)
        o = pl.col("os_unsupported_days").fill_null(0.0).clip(lower_bound=0.0)
        return features.select(
            value=b,
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(p.max_days),
            worked=pl.col("browser_known"),
            fired=(b > p.max_days) | (o > p.max_os_days),
            detail=pl.format(
                "browser outdated for {} days, platform unsupported for {} days: {}",
                b.round(0).cast(pl.Int64),
                o.round(0).cast(pl.Int64),
                pl.col("ua").fill_null("").str.slice(0, 100),
            ),
        )
