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

from dataclasses import dataclass
from typing import Protocol

import polars as pl

from abuse_stream import endpoints

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
    "recent_counts": "requests in each of the last 6 steps, newest last",
    "iat_mean": "mean seconds between consecutive requests",
    "iat_cv": "coefficient of variation of inter-arrival times (std / mean)",
    "iat_n": "number of inter-arrival intervals measured",
    "distinct_paths": "distinct resources (host + path without query; page assets excluded) requested",
    "distinct_templates": "distinct endpoints (method + templated path)",
    "distinct_hosts": "distinct hosts (applications)",
    "unique_path_ratio": "distinct_paths / requests",
    "unique_template_ratio": "distinct_templates / requests",
    "share_2xx": "share of 2xx responses",
    "share_4xx": "share of 4xx responses",
    "share_404": "share of 404 responses",
    "share_refused": "share of 401, 403 and 404 responses",
    "share_5xx": "share of 5xx responses",
    "share_post": "share of POST requests",
    "n_sensitive": "requests to sensitive endpoints (login, signup, reset, checkout, payment, OTP, ...)",
    "share_sensitive": "n_sensitive / requests",
    "n_login": "login attempts (POST/PUT to authentication endpoints)",
    "n_auth_fail": "login attempts answered 401/403",
    "n_login_ok": "login attempts answered < 400",
    "auth_fail_share": "n_auth_fail / n_login (null without logins)",
    "n_signup": "account-creation requests",
    "n_probe": "requests for scanner probe paths or carrying injection payloads",
    "mean_bytes": "mean response bytes",
    "mean_latency_ms": "mean response time in ms (null when not logged)",
    "ua_class": "worst user-agent class seen (see detectors.ua_signatures.UAClass)",
    "ua": "the user agent of that worst class",
    "distinct_uas": "distinct user agents used",
    "crawler_verified": "claims a known crawler and comes from its operator's published ranges",
    "crawler_fake": "claims a known crawler from outside its operator's published ranges",
    "browser_known": "sent a browser UA whose release is in the browser data",
    "browser_outdated_days": "days since a newer major version of its oldest browser came out (event time)",
    "os_unsupported_days": "days since its platform lost vendor support (event time)",
    "campaign_failers": "clients failing logins on the same application in the window (cross-client)",
    "first_ts": "event time of the first request in the window",
    "last_ts": "event time of the last request in the window",
    "active_steps": "window steps with at least one request",
}


class UAClassifier(Protocol):
    def classify_series(self, uas: pl.Series) -> pl.DataFrame: ...


class BrowserClassifier(Protocol):
    def classify_series(self, uas: pl.Series) -> pl.DataFrame: ...


class CrawlerChecker(Protocol):
    def classify(self, records: pl.DataFrame) -> pl.DataFrame: ...


@dataclass(frozen=True)
class Enricher:
    """Per-record enrichment with the classifiers built once at start (see :func:`enrich`)."""

    key: str
    ua: UAClassifier
    crawlers: CrawlerChecker | None = None
    browsers: BrowserClassifier | None = None
    sensitive_regex: str | None = None

    def __call__(self, records: pl.DataFrame) -> pl.DataFrame:
        return enrich(records, self.key, self.ua, self.crawlers, self.browsers, self.sensitive_regex)


def enrich(
    records: pl.DataFrame,
    key: str,
    classifier: UAClassifier,
    crawlers: CrawlerChecker | None = None,
    browsers: BrowserClassifier | None = None,
    sensitive_regex: str | None = None,
) -> pl.DataFrame:
    """Add what the window aggregates per record.

    ``key`` (IP, or session id falling back to IP), ``template`` (method + templated path),
    ``path_hash`` / ``tpl_hash`` / ``host_hash`` / ``ua_hash``, the tags ``sensitive``, ``login``,
    ``signup``, ``probe``; ``ua_class`` / ``ua_signature`` from signature data; ``crawler_claim`` /
    ``crawler_verified`` (published crawler ranges); ``browser_known``, ``browser_superseded_at``,
    ``os_unsupported_since`` (browser release data). Classifiers see each distinct UA once per batch.
    """
    key_expr = pl.coalesce(pl.col("session"), pl.col("ip")) if key == "session" else pl.col("ip")
    host = pl.col("host").fill_null("")
    # templates and their tags are worked out once per distinct method and path (without query):
    # far fewer than records
    df = records.with_columns(_res=endpoints.resource(pl.col("path")))
    templates = (
        df.select("method", "_res")
        .unique()
        .with_columns(_tpl=pl.col("method") + " " + endpoints.template(pl.col("_res")))
        .with_columns(**endpoints.tags(pl.col("_tpl"), pl.col("method"), sensitive_regex))
    )
    tag_names = [c for c in templates.columns if c not in ("method", "_res", "_tpl")]
    df = df.join(templates, on=["method", "_res"], how="left", nulls_equal=True, maintain_order="left")
    df = df.with_columns(
        key=key_expr,
        template=pl.col("_tpl"),
        probe=endpoints.probe(pl.col("path")),
        ua_hash=pl.col("ua").hash(7),
        host_hash=host.hash(13),
        # assets (css, js, images, fonts) are not breadth: a slide deck with 300 images is one page
        path_hash=pl.when(endpoints.static_asset(pl.col("path")))
        .then(None)
        .otherwise((host + pl.col("_res")).hash(11)),
    )
    tags = df.select(tag_names)  # after tpl_hash, as they always came
    df = df.drop("_res", "_tpl", *tag_names).with_columns(tpl_hash=(host + pl.col("template")).hash(17))
    df = df.with_columns(tags)
    uas = df.select(pl.col("ua").unique())["ua"]
    classes = classifier.classify_series(uas).select("ua", "ua_class", "ua_signature")
    df = df.join(classes, on="ua", how="left", nulls_equal=True).with_columns(
        pl.col("ua_class").fill_null(0).cast(pl.UInt8)
    )
    if crawlers is not None:
        df = crawlers.classify(df)
    else:
        df = df.with_columns(crawler_claim=pl.lit(False), crawler_verified=pl.lit(None, pl.Boolean))
    if browsers is not None:
        b = browsers.classify_series(uas).select(
            "ua", "browser", "browser_superseded_at", "os_unsupported_since"
        )
        df = (
            df.join(b.unique("ua"), on="ua", how="left", nulls_equal=True)
            .with_columns(browser_known=pl.col("browser").is_not_null())
            .drop("browser")
        )
    else:
        df = df.with_columns(
            browser_known=pl.lit(False),
            browser_superseded_at=pl.lit(None, pl.Float64),
            os_unsupported_since=pl.lit(None, pl.Float64),
        )
    return df


def client_features(clients: pl.DataFrame, window_s: float) -> pl.DataFrame:
    """Derive the detector-facing features (see :data:`FEATURES`) from a window aggregate."""
    n = pl.col("n").cast(pl.Float64)
    mean = pl.col("gap_sum") / pl.col("gap_n")
    var = (pl.col("gap_sq") / pl.col("gap_n") - mean**2).clip(lower_bound=0.0)
    day = 86400.0
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
        pl.col("distinct_templates").cast(pl.Int64),
        pl.col("distinct_hosts").cast(pl.Int64),
        (pl.col("distinct_paths") / n).alias("unique_path_ratio"),
        (pl.col("distinct_templates") / n).alias("unique_template_ratio"),
        (pl.col("n_2xx") / n).alias("share_2xx"),
        (pl.col("n_4xx") / n).alias("share_4xx"),
        (pl.col("n_404") / n).alias("share_404"),
        (pl.col("n_refused") / n).alias("share_refused"),
        (pl.col("n_5xx") / n).alias("share_5xx"),
        (pl.col("n_post") / n).alias("share_post"),
        "n_sensitive",
        (pl.col("n_sensitive") / n).alias("share_sensitive"),
        "n_login",
        "n_auth_fail",
        "n_login_ok",
        pl.when(pl.col("n_login") > 0)
        .then(pl.col("n_auth_fail") / pl.col("n_login"))
        .alias("auth_fail_share"),
        "n_signup",
        "n_probe",
        (pl.col("bytes_sum") / n).alias("mean_bytes"),
        pl.when(pl.col("lat_n") > 0).then(pl.col("lat_sum") / pl.col("lat_n")).alias("mean_latency_ms"),
        "ua_class",
        "ua",
        pl.col("distinct_uas").cast(pl.Int64),
        ((pl.col("n_crawler_verified") > 0) & (pl.col("n_crawler_fake") == 0)).alias("crawler_verified"),
        (pl.col("n_crawler_fake") > 0).alias("crawler_fake"),
        (pl.col("n_browser_known") > 0).alias("browser_known"),
        ((pl.col("window_end") - pl.col("browser_superseded_min")) / day).alias("browser_outdated_days"),
        ((pl.col("window_end") - pl.col("os_unsupported_min")) / day).alias("os_unsupported_days"),
        pl.col("campaign_failers").fill_null(0).cast(pl.Int64)
        if "campaign_failers" in clients.columns
        else pl.lit(0, pl.Int64).alias("campaign_failers"),
        "first_ts",
        "last_ts",
        pl.col("active_steps").cast(pl.Int64),
    )
