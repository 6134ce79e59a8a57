"""Scoring: findings -> confidence per bot type -> which (client, bot type) pairs are detections.

Per bot type, confidence = votes gained / votes possible, counting only the detectors that *worked*
for the client (a detector without enough data neither helps nor hurts); a bot type whose working
detectors are worth fewer than its ``min_votes_possible`` votes is not judged (confidence 0), so
supporting evidence alone never makes a verdict. A detector's firing counts
for a bot type only if its ``fired_types`` is null or names that type. A pair is a detection when
its confidence reaches the tolerance level of the profile that covers the client's application (a
profile may override the tolerance per bot type) and at least one vote was gained.

Input: the feature frame with each detector's findings joined as ``<detector>__<column>``.
Output columns ``conf__<bot type>`` plus :func:`detections`, a long frame of (row, bot_type,
confidence, profile, tolerance, action).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from abuse_stream.config import BotTypeConfig, Config


def confidence_columns(findings: pl.DataFrame, bot_types: Mapping[str, BotTypeConfig]) -> pl.DataFrame:
    """Add ``conf__<bt>`` (0..1) and ``possible__<bt>`` for every bot type."""
    exprs: list[pl.Expr] = []
    for bt, conf in bot_types.items():
        gained: list[pl.Expr] = []
        possible: list[pl.Expr] = []
        for det, votes in conf.votes.items():
            if votes <= 0 or f"{det}__fired" not in findings.columns:
                continue
            worked = pl.col(f"{det}__worked")
            types = pl.col(f"{det}__fired_types")
            supports = types.is_null() | types.list.contains(pl.lit(bt))
            fired = pl.col(f"{det}__fired") & worked & supports
            gained.append(fired.cast(pl.Float64) * votes)
            possible.append(worked.cast(pl.Float64) * votes)
        if not possible:
            exprs += [pl.lit(0.0).alias(f"conf__{bt}"), pl.lit(0.0).alias(f"possible__{bt}")]
            continue
        g = pl.sum_horizontal(gained)
        p = pl.sum_horizontal(possible)
        exprs += [
            pl.when((p > 0) & (p >= conf.min_votes_possible)).then(g / p).otherwise(0.0).alias(f"conf__{bt}"),
            p.alias(f"possible__{bt}"),
        ]
    return findings.with_columns(exprs)


def detections(scored: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Long frame of the (client row, bot type) pairs whose confidence reaches the profile's tolerance."""
    hosts = scored["host"].unique().to_list()
    rows = []
    for h in hosts:
        prof = cfg.profile_for(h)
        for bt in cfg.detection.bot_types:
            pol = prof.policy(bt)
            if not pol.enabled:
                continue
            tol = pol.tolerance or prof.tolerance
            rows.append(
                (h, bt, prof.name, tol, cfg.detection.tolerance_levels[tol], pol.reaction, prof.duration_s)
            )
    policy = pl.DataFrame(
        rows,
        schema={
            "host": pl.String,
            "bot_type": pl.String,
            "profile": pl.String,
            "tolerance": pl.String,
            "level": pl.Float64,
            "action": pl.String,
            "duration_s": pl.Float64,
        },
        orient="row",
    )
    bts = list(cfg.detection.bot_types)
    long = (
        scored.select("host", *[f"conf__{bt}" for bt in bts])
        .with_row_index("row")
        .unpivot(index=["row", "host"], variable_name="bot_type", value_name="confidence")
        .filter(pl.col("confidence") > 0)  # most rows: before the join, not after
        .with_columns(pl.col("bot_type").str.strip_prefix("conf__"))
    )
    verified = (
        scored.select(pl.col("crawler_verified").fill_null(False)).with_row_index("row")
        if ("crawler_verified" in scored.columns)
        else None
    )
    hits = long.join(policy, on=["host", "bot_type"], how="inner", nulls_equal=True).filter(
        (pl.col("confidence") >= pl.col("level") - 1e-9) & (pl.col("confidence") > 0)
    )
    if verified is not None:  # verified good crawlers are reported, never listed
        hits = (
            hits.join(verified, on="row", how="left")
            .with_columns(
                action=pl.when(pl.col("crawler_verified")).then(pl.lit("monitor")).otherwise(pl.col("action"))
            )
            .drop("crawler_verified")
        )
    return hits.sort("row", "bot_type")
