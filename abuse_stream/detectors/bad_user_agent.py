"""``bad_user_agent``: the worst user-agent class a client showed, from maintained signature data.

Signatures come from the ``crawler-user-agents`` package plus a short supplement for what it misses
(``detectors.ua_signatures``). Value: the class code of the worst UA the client sent in the window
(0 ok .. highest = scanner); threshold: the lowest class code that fires. Fires for the classes in
``fire_on`` (scanner, headless, scraper frameworks and empty UAs by default) once the client made at
least ``min_requests`` requests (``min_requests_scanner`` for scanner UAs: a banner grab is one request). Security-scanner UAs support only ``security_crawlers``; the other
classes support the remaining bot types (``fired_types``).

Why it means "bot": browsers always send a browser UA; scanners and scraping frameworks announce
themselves by default, and operators rarely bother to change it. A UA claiming Googlebot, Bingbot,
... from outside that operator's published ranges is a fake crawler and fires too; a verified one
(inside the ranges) never does. HTTP-library UAs (okhttp,
python-requests) are reported but do not fire: mobile apps and partner integrations use them.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field, field_validator

from abuse_stream.detectors.base import DetectContext, Detector, Params
from abuse_stream.detectors.ua_signatures import UAClass


class BadUserAgentParams(Params):
    fire_on: list[str] = Field(default_factory=lambda: ["scanner", "headless", "scraper", "empty"])
    min_requests: int = Field(3, ge=1)
    min_requests_scanner: int = Field(1, ge=1)
    fire_on_fake_crawler: bool = True

    @field_validator("fire_on")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        names = {c.name.lower() for c in UAClass}
        for name in v:
            if name not in names:
                raise ValueError(f"unknown UA class {name!r} (known: {sorted(names)})")
        return v


class BadUserAgent(Detector):
    name: ClassVar[str] = "bad_user_agent"
    description: ClassVar[str] = "crawler, scraper, scanner, headless or empty user agents"
    reads: ClassVar[tuple[str, ...]] = ("ua_class", "ua", "requests", "crawler_fake", "crawler_verified")
    Params = BadUserAgentParams
    params: BadUserAgentParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        codes = [int(UAClass[n.upper()]) for n in self.params.fire_on]
        names = pl.col("ua_class").replace_strict(
            [int(c) for c in UAClass], [c.name.lower() for c in UAClass], default="ok", return_dtype=pl.String
        )
        scanner = int(UAClass.SCANNER)
        fake = pl.col("crawler_fake") & self.params.fire_on_fake_crawler
        names = (
            pl.when(pl.col("crawler_fake"))
            .then(pl.lit("fake crawler (IP outside the operator's published ranges)"))
            .otherwise(names)
        )
        return features.select(
            value=pl.col("ua_class").cast(pl.Float64),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(float(min(codes)) if codes else None, pl.Float64),
            fired=(pl.col("ua_class").is_in(codes) | fake)
            & ~pl.col("crawler_verified")
            & (
                pl.col("requests")
                >= pl.when(pl.col("ua_class") == scanner)
                .then(self.params.min_requests_scanner)
                .otherwise(self.params.min_requests)
            ),
            worked=pl.lit(True),
            fired_types=pl.when(pl.col("ua_class") == scanner)
            .then(pl.lit(["security_crawlers"], pl.List(pl.String)))
            .otherwise(pl.lit(["scraping", "api_abuse", "account_takeover"], pl.List(pl.String))),
            detail=pl.format("{} UA: {}", names, pl.col("ua").fill_null("(none)").str.slice(0, 120)),
        )
