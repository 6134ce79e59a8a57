"""Security-scanner detectors.

``attack_probes`` — requests for paths and payloads scanners try (``/.env``, ``/.git/config``,
``/wp-admin``, ``/phpmyadmin``, ``/cgi-bin/``, traversal, SQL injection, JNDI, ...; the list is in
``abuse_stream.endpoints.PROBE``). Fires at ``min_probes``. Why "bot": an API's own clients never ask
for another product's admin pages or send ``' OR 1=1``; scanners do it by the hundred, with or
without announcing themselves in the UA.

``id_enumeration`` — object-level enumeration (BOLA): ``min_ids`` or more distinct resources under at
most ``max_endpoints`` endpoint templates, at least ``min_refused`` of them answered 401/403/404.
Why "bot": walking ``/orders/{id}`` through other customers' ids is how broken object-level
authorisation is found and exploited; a person opens their own few orders and is rarely refused.

``not_found`` — share of 404 answers over ``min_requests`` or more requests. Fires at ``min_share``.
Why "bot": scanners, directory brute-forcers and ID enumerators ask for things that do not exist;
people follow links that do.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params


class ProbesParams(Params):
    min_probes: int = Field(3, ge=1)


class AttackProbes(Detector):
    name: ClassVar[str] = "attack_probes"
    description: ClassVar[str] = "requests for scanner probe paths or with injection payloads"
    reads: ClassVar[tuple[str, ...]] = ("n_probe", "requests")
    Params = ProbesParams
    params: ProbesParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        return features.select(
            value=pl.col("n_probe").cast(pl.Float64),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(float(p.min_probes)),
            worked=pl.lit(True),
            fired=pl.col("n_probe") >= p.min_probes,
            detail=pl.format("{} probe requests of {}", pl.col("n_probe"), pl.col("requests")),
        )


class EnumerationParams(Params):
    min_ids: int = Field(20, ge=2)
    max_endpoints: int = Field(3, ge=1)
    min_refused: float = Field(0.5, gt=0, le=1)


class IdEnumeration(Detector):
    name: ClassVar[str] = "id_enumeration"
    description: ClassVar[str] = "walks many ids under one endpoint and is mostly refused (BOLA probing)"
    reads: ClassVar[tuple[str, ...]] = ("distinct_paths", "distinct_templates", "share_refused")
    Params = EnumerationParams
    params: EnumerationParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        narrow = pl.col("distinct_templates") <= p.max_endpoints
        return features.select(
            value=pl.col("distinct_paths").cast(pl.Float64),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(float(p.min_ids)),
            worked=pl.lit(True),
            fired=narrow
            & (pl.col("distinct_paths") >= p.min_ids)
            & (pl.col("share_refused") >= p.min_refused),
            detail=pl.format(
                "{} resources under {} endpoints, {}% refused",
                pl.col("distinct_paths"),
                pl.col("distinct_templates"),
                (pl.col("share_refused") * 100).round(0),
            ),
        )


class NotFoundParams(Params):
    min_requests: int = Field(10, ge=1)
    min_share: float = Field(0.5, gt=0, le=1)


class NotFound(Detector):
    name: ClassVar[str] = "not_found"
    description: ClassVar[str] = "mostly 404 answers (probing, brute-forcing, enumerating ids)"
    reads: ClassVar[tuple[str, ...]] = ("share_404", "share_4xx", "requests")
    Params = NotFoundParams
    params: NotFoundParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        return features.select(
            value=pl.col("share_404"),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(p.min_share),
            worked=pl.col("requests") >= p.min_requests,
            fired=pl.col("share_404") >= p.min_share,
            detail=pl.format(
                "{}% 404, {}% 4xx", (pl.col("share_404") * 100).round(0), (pl.col("share_4xx") * 100).round(0)
            ),
        )
