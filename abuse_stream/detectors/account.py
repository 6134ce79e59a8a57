"""Account-takeover detectors.

``failed_auth`` — failed-authentication intensity: logins answered 401/403 in the window. Fires at
``min_failures`` or more when at least ``min_share`` of the client's logins failed. Why "bot":
credential stuffing tries leaked username/password pairs, almost all of which fail; a person who
mistypes fails once or twice and then gets in.

``stuffing_campaign`` — low-and-slow stuffing spread over many IPs: per application and window, the
number of clients that only post logins and whose logins (almost) all failed (``campaign_failers``,
computed across clients in the window stage). Fires for such a client when the campaign has
``min_clients`` or more. Why "bot":
each IP of a distributed campaign stays under any per-IP limit, but together they make an unusual
crowd of failing logins on one endpoint within minutes.

``ua_rotation`` — a client that changes user agent from request to request. Fires with
``min_uas`` or more distinct UAs making up at least ``min_share`` of its requests. Why "bot": a
browser keeps its UA; stuffing and scraping tools rotate UAs to look like many people. A NAT with
many people has many UAs too, but each of them makes many requests, so the share stays low.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from abuse_stream.detectors.base import DetectContext, Detector, Params


class FailedAuthParams(Params):
    min_failures: int = Field(3, ge=1)
    min_share: float = Field(0.8, gt=0, le=1)


class FailedAuth(Detector):
    name: ClassVar[str] = "failed_auth"
    description: ClassVar[str] = "many failed logins (credential stuffing, brute force)"
    reads: ClassVar[tuple[str, ...]] = ("n_auth_fail", "n_login", "auth_fail_share")
    Params = FailedAuthParams
    params: FailedAuthParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        return features.select(
            value=pl.col("n_auth_fail").cast(pl.Float64),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(float(p.min_failures)),
            worked=pl.col("n_login") >= 1,
            fired=(pl.col("n_auth_fail") >= p.min_failures)
            & (pl.col("auth_fail_share") >= p.min_share).fill_null(False),
            detail=pl.format("{} of {} logins failed", pl.col("n_auth_fail"), pl.col("n_login")),
        )


class CampaignParams(Params):
    min_clients: int = Field(5, ge=2)
    min_share: float = Field(0.8, gt=0, le=1)
    min_login_share: float = Field(0.8, gt=0, le=1)


class StuffingCampaign(Detector):
    name: ClassVar[str] = "stuffing_campaign"
    description: ClassVar[str] = (
        "one of many clients failing logins on the same application (distributed stuffing)"
    )
    reads: ClassVar[tuple[str, ...]] = ("campaign_failers", "n_login", "auth_fail_share", "requests", "host")
    Params = CampaignParams
    params: CampaignParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        failing = (pl.col("auth_fail_share") >= p.min_share).fill_null(False) & (
            pl.col("n_login") >= p.min_login_share * pl.col("requests")
        )
        return features.select(
            value=pl.col("campaign_failers").cast(pl.Float64),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(float(p.min_clients)),
            worked=pl.col("n_login") >= 1,
            fired=failing & (pl.col("campaign_failers") >= p.min_clients),
            detail=pl.format(
                "{} clients failing logins on {} in the window",
                pl.col("campaign_failers"),
                pl.col("host").fill_null("?"),
            ),
        )


class UARotationParams(Params):
    min_uas: int = Field(4, ge=2)
    min_share: float = Field(0.2, gt=0, le=1)
    min_requests: int = Field(5, ge=2)


class UARotation(Detector):
    name: ClassVar[str] = "ua_rotation"
    description: ClassVar[str] = "user agent changes from request to request"
    reads: ClassVar[tuple[str, ...]] = ("distinct_uas", "requests")
    Params = UARotationParams
    params: UARotationParams

    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        p = self.params
        share = pl.col("distinct_uas") / pl.col("requests")
        return features.select(
            value=pl.col("distinct_uas").cast(pl.Float64),
            baseline=pl.lit(None, pl.Float64),
            threshold=pl.lit(float(p.min_uas)),
            worked=pl.col("requests") >= p.min_requests,
            fired=(pl.col("distinct_uas") >= p.min_uas) & (share >= p.min_share),
            detail=pl.format("{} user agents in {} requests", pl.col("distinct_uas"), pl.col("requests")),
        )
