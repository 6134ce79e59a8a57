"""Features: canonical records -> enriched records (window input) -> one feature row per client.

Two pure steps, both vectorised over polars columns:

* :func:`enrich` adds what the window aggregates per record: the client ``key`` (IP, or the
  session id when configured), the endpoint hash, the user-agent class from signature data (matched
  once per distinct UA of the batch) and a UA hash.
* :func:`client_features` turns a window aggregate (see ``window.window_aggregate``) into the
  features detectors read: request count and rates, inter-arrival statistics, distinct endpoints,
  status and method mix, user-agent class.
"""

from __future__ import annotations

from typing import Protocol

import polars as pl

#: columns of the feature frame handed to detectors, with their meaning (used in docs and checks)
FEATURES: dict[str, str] = {
    "key": "client key (IP, or session id)",
    "bucket": "index of the window step being judged (window_end / step_s - 1)",
    "window_start": "event time where the window starts",
    "window_end": "event time where the window (and the step being judged) ends",
    "ip": "client IP (the last seen for the key)",
    "session": "session id if logged",
    "host": "application (virtual host) the client used last",
    "requests": "requests in the window",
    "window_rps": "requests per second over the window",
    "recent_counts": "requests in each of the last steps, newest last",
    "iat_mean": "mean seconds between consecutive requests",
    "iat_cv": "coefficient of variation of inter-arrival times (std / mean)",
    "iat_n": "number of inter-arrival intervals measured",
    "distinct_paths": "distinct paths (without query) requested",
    "unique_path_ratio": "distinct_paths / requests",
    "share_2xx": "share of 2xx responses",
    "share_4xx": "share of 4xx responses",
    "share_5xx": "share of 5xx responses",
    "share_post": "share of POST requests",
    "mean_bytes": "mean response bytes",
    "mean_latency_ms": "mean response time in ms (null when not logged)",
    "ua_class": "worst user-agent class seen (see detectors.ua_signatures.UAClass)",
    "ua": "the user agent of that worst class",
    "distinct_uas": "distinct user agents used",
    "first_ts": "event time of the first request in the window",
    "last_ts": "event time of the last request in the window",
    "active_steps": "window steps with at least one request",
}


class UAClassifier(Protocol):
    def classify_series(self, uas: pl.Series) -> pl.DataFrame: ...


def enrich(records: pl.DataFrame, key: str, classifier: UAClassifier) -> pl.DataFrame:
    """Add ``key``, ``endpoint``, ``path_hash``, ``ua_class``, ``ua_signature`` and ``ua_hash``."""
    if key == "session":
        key_expr = pl.coalesce(pl.col("session"), pl.col("ip"))
    else:
        key_expr = pl.col("ip")
    df = records.with_columns(
        key=key_expr,
        endpoint=pl.col("path").str.replace(r"[?#].*$", ""),
        ua_hash=pl.col("ua").hash(7),
    ).with_columns(path_hash=pl.col("endpoint").hash(11))
    uas = df.select(pl.col("ua").unique())["ua"]
    classes = classifier.classify_series(uas).select("ua", "ua_class", "ua_signature")
    return df.join(classes, on="ua", how="left", nulls_equal=True).with_columns(
        pl.col("ua_class").fill_null(0).cast(pl.UInt8)
    )


def client_features(clients: pl.DataFrame, window_s: float) -> pl.DataFrame:
    """Derive the detector-facing features (see :data:`FEATURES`) from a window aggregate."""
    n = pl.col("n").cast(pl.Float64)
    mean = pl.col("gap_sum") / pl.col("gap_n")
    var = (pl.col("gap_sq") / pl.col("gap_n") - mean**2).clip(lower_bound=0.0)
    return clients.select(
        "key",
        "bucket",
        "window_start",
        "window_end",
        "ip",
        "session",
        "host",
        pl.col("n").alias("requests"),
        (n / window_s).alias("window_rps"),
        "recent_counts",
        pl.when(pl.col("gap_n") > 0).then(mean).alias("iat_mean"),
        pl.when((pl.col("gap_n") > 1) & (mean > 0)).then(var.sqrt() / mean).alias("iat_cv"),
        pl.col("gap_n").alias("iat_n"),
        pl.col("distinct_paths").cast(pl.Int64),
        (pl.col("distinct_paths") / n).alias("unique_path_ratio"),
        (pl.col("n_2xx") / n).alias("share_2xx"),
        (pl.col("n_4xx") / n).alias("share_4xx"),
        (pl.col("n_5xx") / n).alias("share_5xx"),
        (pl.col("n_post") / n).alias("share_post"),
        (pl.col("bytes_sum") / n).alias("mean_bytes"),
        pl.when(pl.col("lat_n") > 0).then(pl.col("lat_sum") / pl.col("lat_n")).alias("mean_latency_ms"),
        "ua_class",
        "ua",
        pl.col("distinct_uas").cast(pl.Int64),
        "first_ts",
        "last_ts",
        pl.col("active_steps").cast(pl.Int64),
    )
