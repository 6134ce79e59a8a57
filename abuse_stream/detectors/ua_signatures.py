r"""User-agent signature classifier behind the ``bad_user_agent`` detector.

Every UA falls into one :class:`UAClass`, ordered by severity so that a client's worst class is ``max()``.

Sources
-------
1. **crawler-user-agents** (PyPI ``crawler-user-agents``, import ``crawleruseragents``, MIT, maintained
   upstream with monthly releases): ``crawler-user-agents.json``, one entry per bot with ``pattern`` (a regex
   written for case-sensitive search), ``instances`` (example UAs) and ``tags``.
2. **our supplement** ``abuse_stream/data/ua_supplement.json``: ``signatures`` for security scanners,
   headless browsers, scraper frameworks, HTTP libraries and monitors that upstream misses or files under a
   broader tag (each with ``class``, ``name``, ``pattern`` and ``examples``; ``"fallback": true`` marks
   generic patterns such as "...bot"/"...spider", tried only when no specific pattern matched), and
   ``upstream_overrides`` naming single upstream entries by their exact pattern to re-class them
   (``class``; ``"ignore"`` drops the entry) and/or swap their regex (``replace_with``).
3. an optional user file (``UASignatures.load(extra_file=...)``) of the same shape, applied last.

Mapping upstream tags to classes
--------------------------------
=========================  ===========  ==========================================================
upstream tag               class        note
=========================  ===========  ==========================================================
``scanner``                SCANNER      upstream's "scanner" also holds certificate validators,
                                        cookie-consent crawlers and content-filter classifiers;
                                        the supplement's ``upstream_overrides`` move those down to
                                        MONITORING / CRAWLER, and drop an Android build id that
                                        would match real Instagram users.
``browser-automation``     HEADLESS     (HeadlessChrome, PhantomJS, Playwright, Puppeteer, Selenium,
                                        splash, browsing agents); IDE shells (VS Code, Trae) are
                                        overridden to LIBRARY, "Fluid" (a human browser) ignored.
``http-library``           LIBRARY      scraper frameworks filed here upstream (Scrapy, colly,
                                        HTTrack, crawler4j, ...) are re-added as CRAWLER by the
                                        supplement, which wins by precedence.
``monitoring``             MONITORING
``search-engine``, ``seo``, ``ai-crawler``, ``advertising``, ``social-preview``, ``feed-reader``,
``archiver``, ``academic``, any unknown tag         ->  CRAWLER
=========================  ===========  ==========================================================

An entry with several tags takes the most severe of their classes. An entry without tags (older releases of
the package had none) is classed by keywords in its pattern (:data:`_KEYWORD_CLASSES`, first hit wins),
defaulting to CRAWLER, since everything upstream lists is a bot of some kind.

Matching
--------
``None``, empty / whitespace-only and ``"-"`` UAs are EMPTY. Otherwise patterns are tried in precedence
order SCANNER > HEADLESS > SCRAPER > CRAWLER > MONITORING > LIBRARY (then the fallback patterns in the
same order), all compiled case-insensitively; the first pattern that matches decides the class, and the
reported signature is the upstream pattern (for supplement entries their short ``name``).

One combined alternation per class would be the obvious implementation, but CPython's ``re`` tries every
alternative at every position: measured 60 ms per UA for the ~1,150 CRAWLER patterns (~15 UAs/s). Instead
each pattern's required literals are extracted from its parse tree (:func:`required_literals`, e.g.
``[gG]ooglebot\/`` needs ``googlebot/``; a pattern without one is always tried), indexed by their first three
characters, and a UA only runs the few patterns whose literal occurs in its lower-cased text (~40k distinct
UAs/s). :meth:`UASignatures.classify_exhaustive` runs every pattern and is the reference the tests compare
against.

Upstream writes its patterns for case-sensitive search; matching them case-insensitively finds real bots
upstream misses (``Ezooms``, ``Google favicon``, lower-case ``slurp``) but a few short patterns then hit
clients (``NING/`` in Thunderbird's ``Lightning/``, ``Fetch/`` in ``node-fetch/``), and a few match
browsers even case-sensitively (``Sogou``: the Sogou mobile browser, ``Sonic``: Slack's desktop app); those
are fixed with ``replace_with`` overrides (the tests check the browsers of a real 2015 access log and a set
of current desktop / mobile / in-app browsers). Patterns that Python's ``re``
cannot compile are skipped and counted (:attr:`UASignatures.skipped`), never fatal.

Only the first :data:`MAX_UA_LEN` characters of a UA are matched. Results are cached per instance (a dict
of at most :data:`CACHE_SIZE` entries, cleared when full); :meth:`UASignatures.classify_series` classifies
the distinct values of a batch only and joins the results back.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from importlib import metadata, resources
from pathlib import Path
from re import _constants as _c  # type: ignore[attr-defined]  # stdlib regex parser (was sre_parse);
from re import _parser  # type: ignore[attr-defined]  # only used to find each pattern's literals
from typing import Any

import polars as pl

log = logging.getLogger(__name__)

CACHE_SIZE = 50_000
MAX_UA_LEN = 2048
UPSTREAM_DIST = "crawler-user-agents"


class UAClass(IntEnum):
    """UA class, ordered by severity: a client's worst class is ``max()`` of its requests' classes."""

    OK = 0  # ordinary browser / app UA, nothing matched
    MONITORING = 1  # uptime / health monitors
    LIBRARY = 2  # HTTP client libraries: a WEAK signal (mobile apps, partner integrations use them)
    CRAWLER = 3  # declared crawlers, spiders, SEO / AI crawlers, feed fetchers
    SCRAPER = 4  # scraping frameworks and site copiers (Scrapy, colly, HTTrack, ...)
    HEADLESS = 5  # headless / automated browsers
    EMPTY = 6  # missing, empty or "-" UA
    SCANNER = 7  # security scanners


#: order in which the per-class regexes are tried; the first class that matches wins.
PRECEDENCE: tuple[UAClass, ...] = (
    UAClass.SCANNER,
    UAClass.HEADLESS,
    UAClass.SCRAPER,
    UAClass.CRAWLER,
    UAClass.MONITORING,
    UAClass.LIBRARY,
)

_TAG_CLASSES: dict[str, UAClass] = {
    "scanner": UAClass.SCANNER,
    "browser-automation": UAClass.HEADLESS,
    "http-library": UAClass.LIBRARY,
    "monitoring": UAClass.MONITORING,
    "search-engine": UAClass.CRAWLER,
    "seo": UAClass.CRAWLER,
    "ai-crawler": UAClass.CRAWLER,
    "advertising": UAClass.CRAWLER,
    "social-preview": UAClass.CRAWLER,
    "feed-reader": UAClass.CRAWLER,
    "archiver": UAClass.CRAWLER,
    "academic": UAClass.CRAWLER,
}

#: fallback for untagged upstream entries: (regex over the pattern text, class), first hit wins.
_KEYWORD_CLASSES: tuple[tuple[re.Pattern[str], UAClass], ...] = (
    (
        re.compile(r"scan|nikto|sqlmap|nmap|nessus|openvas|acunetix|zgrab|dirbuster|zmeu|probe", re.I),
        UAClass.SCANNER,
    ),
    (re.compile(r"headless|phantom|selenium|puppeteer|playwright|webdriver", re.I), UAClass.HEADLESS),
    (
        re.compile(r"uptime|monitor|pingdom|statuscake|site24x7|health|synthetic|validator|check", re.I),
        UAClass.MONITORING,
    ),
    (
        re.compile(
            r"curl|wget|http-?client|https?lib|python|java|okhttp|go-http|libwww|perl|ruby|php|axios"
            r"|fetch|requests|aiohttp|httpx",
            re.I,
        ),
        UAClass.LIBRARY,
    ),
)

_CLASS_NAMES: dict[str, UAClass] = {
    c.name.lower(): c for c in UAClass if c not in (UAClass.OK, UAClass.EMPTY)
}
_IGNORE = "ignore"
_KEEP: Any = object()  # override without "class": keep the tag-derived class
_EMPTY_VALUES = frozenset({"", "-", '"-"'})


@dataclass(frozen=True)
class UAMatch:
    ua_class: UAClass
    signature: str | None  # the matched pattern or a short name; None for OK


_OK = UAMatch(UAClass.OK, None)
_EMPTY = UAMatch(UAClass.EMPTY, "empty")


@dataclass(frozen=True)
class Signature:
    pattern: str
    ua_class: UAClass
    name: str  # what UAMatch.signature reports
    origin: str  # "upstream", "supplement" or the extra file's name
    fallback: bool = False  # generic pattern: only tried when no specific pattern of any class matched


def class_for_tags(tags: Iterable[str], pattern: str) -> UAClass:
    """Class of an upstream entry: the most severe of its tags' classes, else by pattern keywords."""
    tags = list(tags)
    if tags:
        return max(_TAG_CLASSES.get(t, UAClass.CRAWLER) for t in tags)
    for rx, cls in _KEYWORD_CLASSES:
        if rx.search(pattern):
            return cls
    return UAClass.CRAWLER


def _literal_char(op: Any, av: Any) -> str | None:
    """The lower-cased ASCII char a parsed item matches (case-insensitively), or None."""
    if op is _c.LITERAL:
        ch = chr(av)
    elif op is _c.IN and av and all(o is _c.LITERAL for o, _ in av):
        chars = {chr(a).lower() for _, a in av}  # e.g. [gG] -> "g"
        if len(chars) != 1:
            return None
        ch = chars.pop()
    else:
        return None
    return ch.lower() if ch.isascii() else None


def _required(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    """A set of lower-cased literals at least one of which every match of ``items`` contains, or None."""
    options: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in items:
        ch = _literal_char(op, av)
        if ch is not None:
            run.append(ch)
            continue
        if run:
            options.append(frozenset(["".join(run)]))
            run = []
        sub: frozenset[str] | None = None
        if op is _c.SUBPATTERN:
            sub = _required(list(av[-1]))
        elif op is _c.ATOMIC_GROUP:
            sub = _required(list(av))
        elif op is _c.BRANCH:
            branches = [_required(list(b)) for b in av[1]]
            if all(branches):
                sub = frozenset().union(*branches)  # type: ignore[arg-type]
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT) and av[0] >= 1:
            sub = _required(list(av[2]))
        if sub:
            options.append(sub)
    if run:
        options.append(frozenset(["".join(run)]))
    if not options:
        return None
    return max(options, key=lambda o: min(len(x) for x in o))  # the most selective requirement


def required_literals(pattern: str) -> frozenset[str] | None:
    """Lower-cased literals one of which any case-insensitive match of ``pattern`` contains (None: unknown).

    Used as a prefilter: a pattern is only run on a UA whose lower-cased text contains one of them.
    """
    try:
        return _required(list(_parser.parse(pattern, re.IGNORECASE)))
    except Exception:  # noqa: BLE001 - anything odd: no prefilter for this pattern, it is always tried
        return None


def _upstream_entries() -> tuple[list[dict[str, Any]], str]:
    import crawleruseragents

    path = Path(crawleruseragents.__file__).with_name("crawler-user-agents.json")
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    try:
        version = metadata.version(UPSTREAM_DIST)
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored copy
        version = "unknown"
    return data, version


def _supplement_path() -> Path:
    return Path(str(resources.files("abuse_stream").joinpath("data/ua_supplement.json")))


def _read_signature_file(path: Path) -> dict[str, Any]:
    with Path(path).open(encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object with 'signatures' / 'upstream_overrides'")
    return doc


def _parse_class(value: str, where: str, allow_ignore: bool = False) -> UAClass | None:
    v = str(value).strip().lower()
    if allow_ignore and v == _IGNORE:
        return None
    if v not in _CLASS_NAMES:
        allowed = sorted(_CLASS_NAMES) + ([_IGNORE] if allow_ignore else [])
        raise ValueError(f"{where}: unknown class {value!r} (expected one of {allowed})")
    return _CLASS_NAMES[v]


class UASignatures:
    """Compiled UA signatures; build with :meth:`load`, then :meth:`classify` / :meth:`classify_series`."""

    source: str

    def __init__(self, signatures: Iterable[Signature], source: str) -> None:
        self.source = source
        self.skipped: list[tuple[str, str]] = []  # (pattern, error) of patterns `re` could not compile
        self.signatures: list[Signature] = []
        self._compiled: list[re.Pattern[str]] = []
        seen: set[tuple[str, UAClass, bool]] = set()
        for sig in signatures:
            key = (sig.pattern, sig.ua_class, sig.fallback)
            if key in seen:
                continue
            seen.add(key)
            try:
                compiled = re.compile(sig.pattern, re.IGNORECASE)
            except (re.error, RecursionError, OverflowError, ValueError) as exc:
                self.skipped.append((sig.pattern, str(exc)))
                continue
            self.signatures.append(sig)
            self._compiled.append(compiled)
        if self.skipped:
            log.warning(
                "ua_signatures: %d pattern(s) skipped (not valid Python regex): %s",
                len(self.skipped),
                [p for p, _ in self.skipped][:10],
            )

        # evaluation order: specific patterns by class precedence, then fallback patterns, then file order
        rank = {c: i for i, c in enumerate(PRECEDENCE)}
        self._order: list[int] = sorted(
            range(len(self.signatures)),
            key=lambda i: (self.signatures[i].fallback, rank[self.signatures[i].ua_class], i),
        )
        position = {idx: pos for pos, idx in enumerate(self._order)}
        # literal prefilter: lower-cased literal -> positions (in self._order) of the patterns needing it
        by_literal: dict[str, list[int]] = {}
        always: list[int] = []  # patterns without an extractable required literal: always tried
        for idx, sig in enumerate(self.signatures):
            lits = required_literals(sig.pattern)
            if not lits:
                always.append(position[idx])
                continue
            for lit in lits:
                by_literal.setdefault(lit, []).append(position[idx])
        self._always: frozenset[int] = frozenset(always)
        self._by_gram: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        self._short: list[tuple[str, tuple[int, ...]]] = []  # literals shorter than 3 chars
        for lit, poss in by_literal.items():
            item = (lit, tuple(poss))
            if len(lit) >= 3:
                self._by_gram.setdefault(lit[:3], []).append(item)
            else:
                self._short.append(item)
        self._grams: frozenset[str] = frozenset(self._by_gram)
        self._ordered: list[tuple[re.Pattern[str], UAClass, str]] = [
            (self._compiled[i], self.signatures[i].ua_class, self.signatures[i].name) for i in self._order
        ]
        self._cache: dict[str, UAMatch] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, extra_file: Path | None = None) -> UASignatures:
        """Upstream crawler-user-agents + our supplement (+ ``extra_file``, same JSON shape, applied last)."""
        entries, version = _upstream_entries()
        docs: list[tuple[str, dict[str, Any]]] = [("supplement", _read_signature_file(_supplement_path()))]
        if extra_file is not None:
            docs.append((Path(extra_file).name, _read_signature_file(Path(extra_file))))

        # upstream pattern -> (class or None to drop, replacement pattern or None)
        overrides: dict[str, tuple[UAClass | None, str | None]] = {}
        for origin, doc in docs:
            for i, ov in enumerate(doc.get("upstream_overrides", [])):
                where = f"{origin} upstream_overrides[{i}]"
                ov_cls = _parse_class(ov["class"], where, True) if "class" in ov else _KEEP
                overrides[ov["pattern"]] = (ov_cls, ov.get("replace_with"))

        sigs: list[Signature] = []
        n_upstream = 0
        for e in entries:
            pattern = e.get("pattern")
            if not isinstance(pattern, str) or not pattern:
                continue
            name = pattern
            ua_class: UAClass | None = class_for_tags(e.get("tags") or [], pattern)
            if pattern in overrides:
                ov_cls, replacement = overrides[pattern]
                if ov_cls is not _KEEP:
                    ua_class = ov_cls
                if replacement:
                    pattern = replacement
            if ua_class is None:
                continue
            sigs.append(Signature(pattern, ua_class, name, "upstream"))
            n_upstream += 1

        counts: list[str] = []
        for origin, doc in docs:
            n = 0
            for i, s in enumerate(doc.get("signatures", [])):
                ua_class = _parse_class(s["class"], f"{origin} signatures[{i}]")
                assert ua_class is not None
                sigs.append(
                    Signature(
                        s["pattern"],
                        ua_class,
                        s.get("name") or s["pattern"],
                        origin,
                        bool(s.get("fallback", False)),
                    )
                )
                n += 1
            label = "abuse-stream supplement" if origin == "supplement" else origin
            counts.append(f"{label} ({n} patterns)")
        source = f"{UPSTREAM_DIST} {version} ({n_upstream} patterns) + " + " + ".join(counts)
        return cls(sigs, source)

    # ------------------------------------------------------------------ matching
    def _candidates(self, ua_lower: str) -> set[int]:
        cand = set(self._always)
        grams = {ua_lower[i : i + 3] for i in range(len(ua_lower) - 2)}
        for g in grams & self._grams:
            for lit, poss in self._by_gram[g]:
                if lit in ua_lower:
                    cand.update(poss)
        for lit, poss in self._short:
            if lit in ua_lower:
                cand.update(poss)
        return cand

    def _match(self, ua: str) -> UAMatch:
        if len(ua) > MAX_UA_LEN:
            ua = ua[:MAX_UA_LEN]
        ordered = self._ordered
        for pos in sorted(self._candidates(ua.lower())):
            rx, cls, name = ordered[pos]
            if rx.search(ua) is not None:
                return UAMatch(cls, name)
        return _OK

    def classify_exhaustive(self, ua: str | None) -> UAMatch:
        """:meth:`classify` without prefilter or cache: every pattern in order (slow; tests' reference)."""
        if ua is None or ua.strip() in _EMPTY_VALUES:
            return _EMPTY
        ua = ua[:MAX_UA_LEN]
        for rx, cls, name in self._ordered:
            if rx.search(ua) is not None:
                return UAMatch(cls, name)
        return _OK

    def classify(self, ua: str | None) -> UAMatch:
        """Class of one UA (cached)."""
        if ua is None:
            return _EMPTY
        hit = self._cache.get(ua)
        if hit is not None:
            return hit
        result = _EMPTY if ua.strip() in _EMPTY_VALUES else self._match(ua)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[ua] = result
        return result

    def classify_series(self, uas: pl.Series) -> pl.DataFrame:
        """Classify a column of UAs: columns ``ua``, ``ua_class`` (UInt8), ``ua_signature`` (String|null).

        Same length and order as ``uas``; nulls are EMPTY. Only distinct values are classified.
        """
        uas = uas.cast(pl.String).rename("ua")
        distinct = uas.unique()
        matches = [self.classify(u) for u in distinct.to_list()]
        lookup = pl.DataFrame(
            {
                "ua": distinct,
                "ua_class": pl.Series([int(m.ua_class) for m in matches], dtype=pl.UInt8),
                "ua_signature": pl.Series([m.signature for m in matches], dtype=pl.String),
            }
        )
        return uas.to_frame().join(lookup, on="ua", how="left", nulls_equal=True, maintain_order="left")

    def cache_clear(self) -> None:
        self._cache.clear()

    def __repr__(self) -> str:
        return f"UASignatures({self.source}, skipped={len(self.skipped)})"
