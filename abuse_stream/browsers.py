"""Browser release dates and platform end-of-support: the data layer of the ``outdated_browser`` detector.

Everything here is judged against *dates*, never against "now": :meth:`BrowserReleases.superseded_at`
returns the moment a browser version stopped being the newest, so a detector compares it with the
event time of the request (a 2019 log replayed today judges 2019 browsers by 2019 standards).

Data
----
* **Browser releases**: ``abuse_stream/data/browser_releases.json``, extracted from the npm package
  ``@mdn/browser-compat-data`` (CC0) by ``scripts/build_browser_data.py`` (re-run it to refresh).
  Keys are MDN browser ids (``chrome``, ``chrome_android``, ``safari_ios``, ...).
* **Browser end of life** (:data:`BROWSER_END_OF_LIFE`, hand-maintained): browsers that were retired
  without a newer version in the same MDN line. Only Internet Explorer: Microsoft retired the IE 11
  desktop application on 2022-06-15, so IE 11 -- the newest IE, never "superseded" by a newer IE --
  counts as superseded from that date (older IEs were superseded by their successor long before).
* **Platform end of support** (:data:`PLATFORM_END_OF_SUPPORT`, hand-maintained, short, only dates we
  are sure of): Windows from Microsoft's lifecycle (end of extended support); Apple and Google publish no
  OS lifecycle, so old Mac OS X and Android versions get the release date of the first Chrome that no
  longer shipped to them (an upper bound: the vendor had stopped patching them earlier). Not listed, on
  purpose: Windows 10 (Windows 11 also sends ``Windows NT 10.0``), Mac OS X >= 10.15 (Safari, Chrome and
  Firefox on macOS 11+ still send ``10_15_7``/``10.15``), iOS (every iOS browser uses the system WebKit,
  so an old iOS already shows up as an old ``safari_ios``/``webview_ios`` version).

Version comparison
------------------
By **major** version (Chrome ``120.0.6099.71`` -> ``120``), except ``safari``, ``safari_ios``,
``webview_ios`` and ``webview_android`` which MDN lists by major.minor (``17.4``; Android WebView
``4.4`` before it became Chromium-versioned at 37). Several MDN releases of one major (Firefox 3, 3.5,
3.6) collapse into one, dated by the earliest. A version newer than every release in the data is
*current* (``superseded_at`` is None) -- the data is older than the client, not the other way round.

UA family -> MDN id (ua-parser 1.x families)
---------------------------------------------
See :data:`FAMILY_TO_MDN`. The iOS shells are WebKit with their own app version: Chrome for iOS
(``CriOS/120``) and Edge for iOS (``EdgiOS/120``) ship on the same major-version train as desktop
Chrome/Edge, so their versions are judged on the ``chrome``/``edge`` timelines. Firefox for iOS
(``FxiOS``) only adopted desktop Firefox numbering at 100 (2022; earlier it was 1..40), so ``FxiOS`` >=
100 uses ``firefox`` and older ``FxiOS`` -- like in-app WKWebViews (``Mobile Safari UI/WKWebView``) and
Mobile Safari without a ``Version/`` token -- is judged by its iOS version on ``webview_ios``. A
Safari "version" >= 100 is a WebKit build number (``Safari/9537.73.11 CFNetwork/...``): version unknown.
Bots, apps, libraries and browsers MDN does not track (Opera Mini, UC Browser, Yandex Browser, ...)
get nulls.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

__all__ = [
    "BROWSER_END_OF_LIFE",
    "FAMILY_TO_MDN",
    "PLATFORM_END_OF_SUPPORT",
    "BrowserReleases",
]

# ua-parser family -> MDN browser id. Families absent here (bots, tools, apps, untracked browsers) -> null.
FAMILY_TO_MDN: dict[str, str] = {
    "Chrome": "chrome",
    "Chromium": "chrome",  # distro builds (``Ubuntu Chromium/32``), same version train
    "HeadlessChrome": "chrome",
    "Chrome Mobile iOS": "chrome",  # CriOS: WebKit shell, Chrome's major-version train
    "Chrome Mobile": "chrome_android",
    "Chrome Mobile WebView": "webview_android",
    "Android": "webview_android",  # AOSP stock browser, versioned by Android = MDN webview_android 1..4.4.3
    "Firefox": "firefox",
    "Iceweasel": "firefox",  # Debian's rebranded Firefox, same versions
    "Firefox Mobile": "firefox_android",
    "Firefox iOS": "firefox",  # FxiOS >= 100 only; older FxiOS -> webview_ios by iOS version
    "Safari": "safari",
    "Mobile Safari": "safari_ios",
    "Mobile Safari UI/WKWebView": "webview_ios",  # no browser version in the UA: judged by iOS version
    "Edge": "edge",
    "Edge Mobile": "edge",  # EdgA / EdgiOS / Windows 10 Mobile Edge: Edge's version train
    "IE": "ie",
    "Opera": "opera",
    "Opera Mobile": "opera_android",
    "Samsung Internet": "samsunginternet_android",
    "Oculus Browser": "oculus",
}

# MDN ids whose versions are compared by major.minor (MDN lists them that way); all others by major.
MINOR_PRECISION = frozenset({"safari", "safari_ios", "webview_ios", "webview_android"})
# iOS browsers whose engine is the system WebKit: judged by the iOS version when the UA has no usable one.
IOS_WEBKIT = "webview_ios"

# Browsers retired without a successor in the same MDN line: every version is superseded by this date.
BROWSER_END_OF_LIFE: dict[str, tuple[str, str]] = {
    "ie": (
        "2022-06-15",
        "Microsoft Lifecycle: the Internet Explorer 11 desktop application was retired and is out of "
        "support as of June 15, 2022 (Windows 10 client SKUs); earlier IE versions ended 2016-01-12.",
    ),
}

# (os family, predicate on (major, minor), display name, date or ("chrome"/"chrome_android", first
# Chrome version that no longer supported it), source). First match wins.
_Since = str | tuple[str, str]
PLATFORM_END_OF_SUPPORT: list[tuple[str, str, str, _Since, str]] = [
    # Microsoft Lifecycle, end of extended support.
    ("Windows", "95", "Windows 95", "2001-12-31", "Microsoft Lifecycle"),
    ("Windows", "98", "Windows 98", "2006-07-11", "Microsoft Lifecycle"),
    ("Windows", "ME", "Windows ME", "2006-07-11", "Microsoft Lifecycle"),
    ("Windows", "2000", "Windows 2000", "2010-07-13", "Microsoft Lifecycle"),
    ("Windows", "XP", "Windows XP", "2014-04-08", "Microsoft Lifecycle (XP SP3, also XP x64 / NT 5.2)"),
    ("Windows", "Vista", "Windows Vista", "2017-04-11", "Microsoft Lifecycle"),
    ("Windows", "7", "Windows 7", "2020-01-14", "Microsoft Lifecycle (paid ESU aside)"),
    ("Windows", "8", "Windows 8", "2016-01-12", "Microsoft Lifecycle (8.0: move to 8.1 required)"),
    ("Windows", "8.1", "Windows 8.1", "2023-01-10", "Microsoft Lifecycle"),
    # No Apple lifecycle: first Chrome without support (Chrome 50 dropped 10.6-10.8, Chrome 104
    # dropped 10.11/10.12 -- an upper bound for 10.9/10.10 --, Chrome 117 dropped 10.13/10.14).
    ("Mac OS X", "10.0-10.8", "Mac OS X", ("chrome", "50"), "Chrome 50 release notes (2016)"),
    ("Mac OS X", "10.9-10.12", "Mac OS X", ("chrome", "104"), "Chrome 104 system requirements"),
    ("Mac OS X", "10.13-10.14", "Mac OS X", ("chrome", "117"), "Chrome 117 system requirements"),
    # No Google lifecycle: Chrome 119 was the last Chrome for Android 7 Nougat (and anything older).
    ("Android", "1-7", "Android", ("chrome_android", "120"), "Chrome 120 release notes (2023)"),
]

_VERSION_RE = re.compile(r"\d+(?:\.\d+)*")


def _epoch(date: str) -> float:
    return dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC).timestamp()


def _version_key(version: str | None, precision: int) -> tuple[int, ...] | None:
    """``"120.0.6099.71"`` -> ``(120,)`` (precision 1) or ``(120, 0)`` (precision 2)."""
    if not version:
        return None
    m = _VERSION_RE.search(version)
    if m is None:
        return None
    parts = [int(p) for p in m.group(0).split(".")[:precision]]
    parts += [0] * (precision - len(parts))
    return tuple(parts)


def _format_key(key: tuple[int, ...]) -> str:
    """MDN spelling: ``(17, 4)`` -> ``"17.4"``, ``(17, 0)`` -> ``"17"``."""
    return str(key[0]) if len(key) == 1 or key[1] == 0 else f"{key[0]}.{key[1]}"


def _int(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


@dataclass(frozen=True)
class _Timeline:
    """One MDN browser: release keys ascending, release dates, and the suffix minimum of the dates
    (the first moment any *newer* release existed -- robust to out-of-order dates such as Samsung
    Internet 8.0 shipping before 7.4)."""

    keys: list[tuple[int, ...]]
    released: list[float]
    newer_min: list[float]  # newer_min[i] = min(released[i:])
    end_of_life: float | None = None

    @classmethod
    def build(cls, rows: Iterable[list[str]], precision: int, end_of_life: float | None) -> _Timeline:
        by_key: dict[tuple[int, ...], float] = {}
        for version, date in rows:
            key = _version_key(version, precision)
            if key is None:
                continue
            ts = _epoch(date)
            by_key[key] = min(ts, by_key.get(key, ts))
        keys = sorted(by_key)
        released = [by_key[k] for k in keys]
        newer_min = released[:]
        for i in range(len(newer_min) - 2, -1, -1):
            newer_min[i] = min(newer_min[i], newer_min[i + 1])
        return cls(keys, released, newer_min, end_of_life)

    def released_at(self, key: tuple[int, ...]) -> float | None:
        i = bisect_right(self.keys, key) - 1  # greatest release <= key, same major only
        if i < 0 or self.keys[i][0] != key[0]:
            return None
        return self.released[i]

    def superseded_at(self, key: tuple[int, ...]) -> float | None:
        i = bisect_right(self.keys, key)
        newer = self.newer_min[i] if i < len(self.keys) else None
        if self.end_of_life is not None:
            return self.end_of_life if newer is None else min(newer, self.end_of_life)
        return newer

    @property
    def newest(self) -> tuple[int, ...]:
        return self.keys[-1]


_Row = tuple[str | None, str | None, float | None, float | None, str | None, float | None]
_NULL_ROW: _Row = (None, None, None, None, None, None)

OUTPUT_SCHEMA: dict[str, Any] = {
    "ua": pl.String,
    "browser": pl.String,
    "browser_version": pl.String,
    "browser_released_at": pl.Float64,
    "browser_superseded_at": pl.Float64,
    "os": pl.String,
    "os_unsupported_since": pl.Float64,
}


@dataclass
class BrowserReleases:
    """Release timelines of the browsers MDN tracks plus the platform end-of-support table.

    ``classify_series`` parses each distinct UA once (ua-parser, Rust backend) and memoises the
    classification in a bounded FIFO cache shared across calls (``cache_size`` entries).
    """

    source: str
    built: str
    timelines: dict[str, _Timeline]
    platforms: list[tuple[str, str, str, float | None, str]]
    cache_size: int = 50_000
    _cache: dict[str, _Row] = field(default_factory=dict, repr=False)

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None, *, cache_size: int = 50_000) -> BrowserReleases:
        if path is None:
            text = resources.files("abuse_stream.data").joinpath("browser_releases.json").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        raw = json.loads(text)
        timelines = {
            browser: _Timeline.build(
                rows,
                2 if browser in MINOR_PRECISION else 1,
                _epoch(BROWSER_END_OF_LIFE[browser][0]) if browser in BROWSER_END_OF_LIFE else None,
            )
            for browser, rows in raw["browsers"].items()
            if rows
        }
        self = cls(raw.get("source", "unknown"), raw.get("built", ""), timelines, [], cache_size)
        for family, versions, name, since, source in PLATFORM_END_OF_SUPPORT:
            if isinstance(since, tuple):
                ts = self.released_at(*since)  # None if the data lacks that release: entry inert
            else:
                ts = _epoch(since)
            self.platforms.append((family, versions, name, ts, source))
        return self

    # -- single lookups ----------------------------------------------------------------------------

    def _key(self, family: str, version: str | None) -> tuple[_Timeline, tuple[int, ...]] | None:
        timeline = self.timelines.get(family)
        if timeline is None:
            return None
        key = _version_key(version, 2 if family in MINOR_PRECISION else 1)
        return None if key is None else (timeline, key)

    def released_at(self, family: str, version: str) -> float | None:
        """Epoch seconds (UTC midnight) of that version's release; None if unknown browser/version."""
        found = self._key(family, version)
        return None if found is None else found[0].released_at(found[1])

    def superseded_at(self, family: str, version: str) -> float | None:
        """Epoch seconds when a newer major (major.minor for Safari) of ``family`` (an MDN id) was first
        released, or the browser's end of life (IE) if earlier; None if ``version`` is the newest known
        or newer than the data (current), or the browser/version is unknown."""
        found = self._key(family, version)
        return None if found is None else found[0].superseded_at(found[1])

    def newest_version(self, family: str) -> str | None:
        timeline = self.timelines.get(family)
        return None if timeline is None else _format_key(timeline.newest)

    def os_unsupported_since(
        self, os_family: str | None, major: str | None, minor: str | None
    ) -> float | None:
        return self._platform(os_family, major, minor)[1]

    # -- UA classification -------------------------------------------------------------------------

    def _platform(
        self, family: str | None, major: str | None, minor: str | None
    ) -> tuple[str | None, float | None]:
        if not family or family == "Other":
            return None, None
        if family == "Windows":
            label = major if not minor else f"{major}.{minor}"
            name = f"Windows {label}" if label else "Windows"
            for fam, versions, _, ts, _ in self.platforms:
                if fam == "Windows" and versions == label:
                    return name, ts
            return name, None
        imaj, imin = _int(major), _int(minor)
        if imaj is None:
            return family, None
        if family in ("Mac OS X", "iOS"):
            name = f"{family} {imaj}.{imin or 0}"
        else:
            name = f"{family} {imaj}"
        for fam, versions, _, ts, _ in self.platforms:
            if fam != family or fam == "Windows":
                continue
            lo, _, hi = versions.partition("-")
            if _bound(lo, False) <= (imaj, imin or 0) <= _bound(hi or lo, True):
                return name, ts
        return name, None

    def _classify(self, ua: str) -> _Row:
        from ua_parser import Domain, parser  # lazy: builds the matchers on first use

        result = parser(ua, Domain.USER_AGENT | Domain.OS)
        agent, os_ = result.user_agent, result.os
        os_name, os_since = self._platform(
            os_.family if os_ else None, os_.major if os_ else None, os_.minor if os_ else None
        )
        if agent is None:
            return (None, None, None, None, os_name, os_since)
        browser = FAMILY_TO_MDN.get(agent.family)
        version: str | None = ".".join(p for p in (agent.major, agent.minor) if p) or None
        if browser is not None and agent.family == "Firefox iOS" and (_int(agent.major) or 0) < 100:
            browser, version = IOS_WEBKIT, None
        if browser in MINOR_PRECISION and browser != "webview_android" and (_int(agent.major) or 0) >= 100:
            version = None  # ``Safari/9537.73.11 CFNetwork/...``: a WebKit build number, not a Safari version
        if browser in ("safari_ios", IOS_WEBKIT) and not version and os_ is not None and os_.family == "iOS":
            version = ".".join(p for p in (os_.major, os_.minor) if p) or None
        if browser is None:
            return (None, None, None, None, os_name, os_since)
        found = self._key(browser, version)
        if found is None:
            return (browser, None, None, None, os_name, os_since)
        timeline, key = found
        return (
            browser,
            _format_key(key),
            timeline.released_at(key),
            timeline.superseded_at(key),
            os_name,
            os_since,
        )

    def classify(self, ua: str | None) -> _Row:
        """Classify one UA (memoised): (browser, browser_version, browser_released_at,
        browser_superseded_at, os, os_unsupported_since)."""
        if ua is None:
            return _NULL_ROW
        row = self._cache.get(ua)
        if row is None:
            row = self._classify(ua)
            if len(self._cache) >= self.cache_size:
                # FIFO eviction of the oldest eighth: amortised O(1), keeps the hot recent entries
                for stale in list(self._cache)[: max(1, self.cache_size // 8)]:
                    del self._cache[stale]
            self._cache[ua] = row
        return row

    def classify_series(self, uas: pl.Series) -> pl.DataFrame:
        """One row per input UA, same order and length (null UA -> null row). Columns: ua,
        browser (MDN id), browser_version (major, or major.minor for Safari), browser_released_at,
        browser_superseded_at, os, os_unsupported_since (epoch seconds, Float64)."""
        uas = uas.cast(pl.String).rename("ua")
        uniques = uas.drop_nulls().unique()
        rows = [(ua, *self.classify(ua)) for ua in uniques.to_list()]
        lookup = pl.DataFrame(rows, schema=OUTPUT_SCHEMA, orient="row")
        return (
            uas.to_frame()
            .join(lookup, on="ua", how="left", maintain_order="left")
            .select(list(OUTPUT_SCHEMA))
        )


def _bound(version: str, upper: bool) -> tuple[int, int]:
    """``"10.8"`` -> ``(10, 8)``; ``"7"`` -> ``(7, 0)`` as a lower bound, ``(7, huge)`` as an upper one."""
    major, _, minor = version.partition(".")
    return int(major), int(minor) if minor else (1 << 30 if upper else 0)
