"""Browser release data (MDN extract) and UA -> browser/OS age classification."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from abuse_stream.browsers import FAMILY_TO_MDN, BrowserReleases

DATA = Path(__file__).resolve().parent.parent / "abuse_stream" / "data" / "browser_releases.json"
LOG_2015 = Path("/work/shared/data/real/apache_logs_2015.log")
DAY = 86400.0


def ts(date: str) -> float:
    return dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def br() -> BrowserReleases:
    return BrowserReleases.load()


# -- the shipped data -----------------------------------------------------------------------------------


def test_data_file_shape() -> None:
    raw = json.loads(DATA.read_text("utf-8"))
    assert raw["source"].startswith("@mdn/browser-compat-data ")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw["built"])
    for browser in (
        "chrome",
        "chrome_android",
        "firefox",
        "safari",
        "safari_ios",
        "edge",
        "ie",
        "samsunginternet_android",
        "webview_android",
        "opera",
    ):
        rows = raw["browsers"][browser]
        keys = [tuple(int(p) for p in v.split(".")) for v, _ in rows]
        assert keys == sorted(keys), browser
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for _, d in rows)
    assert raw["browsers"]["chrome"][0] == ["1", "2008-12-11"]
    assert "nodejs" not in raw["browsers"]
    # no future (planned/beta) releases beyond the data's own timestamp
    cutoff = raw["data_timestamp"][:10]
    assert all(d <= cutoff for rows in raw["browsers"].values() for _, d in rows)
    assert 10_000 < DATA.stat().st_size < 200_000


def test_every_mapped_family_has_a_timeline(br: BrowserReleases) -> None:
    assert set(FAMILY_TO_MDN.values()) <= set(br.timelines)
    assert br.source.startswith("@mdn/browser-compat-data")


def test_load_from_explicit_path(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_text(
        json.dumps(
            {
                "source": "test",
                "built": "2020-01-01",
                "browsers": {"chrome": [["1", "2008-12-11"], ["2", "2009-05-21"]]},
            }
        )
    )
    b = BrowserReleases.load(p)
    assert b.source == "test"
    assert b.superseded_at("chrome", "1.0.154") == ts("2009-05-21")
    assert b.superseded_at("chrome", "2") is None


# -- single lookups -------------------------------------------------------------------------------------


def test_chrome_70_superseded_in_2018(br: BrowserReleases) -> None:
    assert br.released_at("chrome", "70.0.3538.102") == ts("2018-10-16")
    sup = br.superseded_at("chrome", "70.0.3538.102")
    assert sup is not None and ts("2018-10-16") < sup < ts("2019-01-01")
    assert sup == ts("2018-12-04")  # Chrome 71


def test_newest_chrome_is_not_superseded(br: BrowserReleases) -> None:
    newest = br.newest_version("chrome")
    assert newest is not None and int(newest) >= 140
    assert br.superseded_at("chrome", newest) is None
    assert br.superseded_at("chrome", f"{newest}.0.1234.5") is None
    previous = str(int(newest) - 1)
    assert br.superseded_at("chrome", previous) == br.released_at("chrome", newest)


def test_version_beyond_the_data_is_current(br: BrowserReleases) -> None:
    assert br.superseded_at("chrome", "999.0.0.0") is None
    assert br.released_at("chrome", "999") is None


def test_unknown_browser_or_version(br: BrowserReleases) -> None:
    assert br.superseded_at("googlebot", "2.1") is None
    assert br.released_at("nonexistent", "1") is None
    assert br.superseded_at("chrome", "") is None
    assert br.superseded_at("chrome", "abc") is None


def test_firefox_60(br: BrowserReleases) -> None:
    assert br.released_at("firefox", "60.0") == ts("2018-05-09")
    assert br.superseded_at("firefox", "60.0.2") == ts("2018-06-26")  # Firefox 61 (60 was also an ESR)
    # minor releases collapse into their major: 3.6 is superseded by 4, 3.x released with 3.0
    assert br.superseded_at("firefox", "3.6.28") == ts("2011-03-22")
    assert br.released_at("firefox", "3.6") == ts("2008-06-17")


def test_ie_end_of_life(br: BrowserReleases) -> None:
    # IE 10 was superseded by IE 11; IE 11 has no successor: Microsoft retired it on 2022-06-15.
    assert br.superseded_at("ie", "10.0") == ts("2013-10-17")
    assert br.superseded_at("ie", "11.0") == ts("2022-06-15")
    assert br.released_at("ie", "11") == ts("2013-10-17")


def test_safari_compares_major_minor(br: BrowserReleases) -> None:
    assert br.released_at("safari", "17.4.1") == ts("2024-03-05")
    assert br.superseded_at("safari", "17.4.1") == ts("2024-05-13")  # 17.5
    assert br.superseded_at("safari", "17.0") == ts("2023-10-25")  # 17.1
    assert br.released_at("safari", "7.0.1") == ts("2013-10-22")
    # iOS: MDN lists only some minors; 9.2 floors to 9, superseded by 9.3
    assert br.released_at("safari_ios", "9.2") == ts("2015-09-16")
    assert br.superseded_at("safari_ios", "9.2") == ts("2016-03-21")


def test_samsung_internet(br: BrowserReleases) -> None:
    assert br.released_at("samsunginternet_android", "23.0") == ts("2023-10-18")
    assert br.superseded_at("samsunginternet_android", "23.0") == ts("2024-01-25")  # 24.0
    # 7.4 shipped (2018-09-12) after 8.0 (2018-07-18): superseded by the *first* newer release
    assert br.superseded_at("samsunginternet_android", "7.4") == ts("2018-07-18")


# -- classify_series ------------------------------------------------------------------------------------

UA = {
    "chrome70": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36",
    "chrome999": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/999.0.0.0 Safari/537.36",
    "firefox60": "Mozilla/5.0 (X11; Linux x86_64; rv:60.0) Gecko/20100101 Firefox/60.0",
    "ie11": "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
    "ios_safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "ios_wkwebview": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "crios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
    "fxios121": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
    "fxios18": "Mozilla/5.0 (iPhone; CPU iPhone OS 12_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/18.1 Mobile/15E148 Safari/605.1.15",
    "samsung": "Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "chrome_android": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "webview": "Mozilla/5.0 (Linux; Android 10; K; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.43 Mobile Safari/537.36",
    "edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "opera": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
    "xp_chrome49": "Mozilla/5.0 (Windows NT 5.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 Safari/537.36",
    "mac_safari": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "mac108": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_8_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 Safari/537.36",
    "android7": "Mozilla/5.0 (Linux; Android 7.1.2; X) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36",
    "win81": "Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl": "curl/8.4.0",
    "cfnetwork": "Safari/9537.73.11 CFNetwork/673.0.3 Darwin/13.0.0 (x86_64) (MacBookPro8%2C1)",
}


def one(br: BrowserReleases, name: str) -> dict:
    return br.classify_series(pl.Series([UA[name]])).row(0, named=True)


def test_classify_series_schema_order_length_nulls(br: BrowserReleases) -> None:
    uas = [UA["chrome70"], None, UA["googlebot"], UA["chrome70"], "", UA["ie11"], UA["curl"], UA["chrome70"]]
    out = br.classify_series(pl.Series("user_agent", uas))
    assert out.columns == [
        "ua",
        "browser",
        "browser_version",
        "browser_released_at",
        "browser_superseded_at",
        "os",
        "os_unsupported_since",
    ]
    assert out.schema == {
        "ua": pl.String,
        "browser": pl.String,
        "browser_version": pl.String,
        "browser_released_at": pl.Float64,
        "browser_superseded_at": pl.Float64,
        "os": pl.String,
        "os_unsupported_since": pl.Float64,
    }
    assert out.height == len(uas)
    assert out["ua"].to_list() == uas
    assert out["browser"].to_list() == ["chrome", None, None, "chrome", None, "ie", None, "chrome"]
    assert out["browser_version"].to_list() == ["70", None, None, "70", None, "11", None, "70"]
    assert out.row(1) == (None,) * 7  # null UA -> null row
    assert out.row(2)[1:5] == (None, None, None, None)  # bot: no browser
    assert out["browser_superseded_at"][0] == ts("2018-12-04")


def test_classify_empty_series(br: BrowserReleases) -> None:
    out = br.classify_series(pl.Series([], dtype=pl.String))
    assert out.height == 0 and out.width == 7


def test_family_mapping(br: BrowserReleases) -> None:
    expect = {
        "chrome70": ("chrome", "70"),
        "chrome999": ("chrome", "999"),
        "firefox60": ("firefox", "60"),
        "ie11": ("ie", "11"),
        "ios_safari": ("safari_ios", "17.4"),
        "ios_wkwebview": ("webview_ios", "16.6"),  # no browser version: iOS version
        "crios": ("chrome", "120"),  # CriOS -> Chrome's train
        "fxios121": ("firefox", "121"),
        "fxios18": ("webview_ios", "12.4"),  # pre-100 FxiOS numbering is not Firefox's: judged by iOS
        "samsung": ("samsunginternet_android", "23"),
        "chrome_android": ("chrome_android", "120"),
        "webview": ("webview_android", "120"),
        "edge": ("edge", "120"),
        "opera": ("opera", "106"),
        "mac_safari": ("safari", "17.4"),
        "googlebot": (None, None),
        "curl": (None, None),
        "cfnetwork": ("safari", None),  # Safari/9537: a WebKit build, not a Safari version
    }
    out = br.classify_series(pl.Series([UA[k] for k in expect]))
    got = dict(
        zip(expect, zip(out["browser"].to_list(), out["browser_version"].to_list(), strict=True), strict=True)
    )
    assert got == expect


def test_classify_values(br: BrowserReleases) -> None:
    assert one(br, "chrome999")["browser_superseded_at"] is None
    assert one(br, "chrome999")["browser_released_at"] is None
    ie = one(br, "ie11")
    assert ie["browser_superseded_at"] == ts("2022-06-15")
    assert ie["os"] == "Windows 7" and ie["os_unsupported_since"] == ts("2020-01-14")
    ios = one(br, "ios_safari")
    assert ios["browser_released_at"] == ts("2024-03-05") and ios["browser_superseded_at"] == ts("2024-05-13")
    assert ios["os"] == "iOS 17.4" and ios["os_unsupported_since"] is None
    sam = one(br, "samsung")
    assert sam["browser_superseded_at"] == ts("2024-01-25") and sam["os"] == "Android 13"
    assert sam["os_unsupported_since"] is None
    assert one(br, "chrome70")["os"] == "Windows 10" and one(br, "chrome70")["os_unsupported_since"] is None
    assert one(br, "mac_safari")["os_unsupported_since"] is None  # 10_15_7 is frozen: also macOS 11+


def test_platforms(br: BrowserReleases) -> None:
    xp = one(br, "xp_chrome49")
    assert xp["os"] == "Windows XP"
    assert xp["os_unsupported_since"] == ts("2014-04-08")
    assert xp["browser_superseded_at"] == ts("2016-04-13")  # Chrome 50, which also dropped XP
    assert one(br, "win81")["os"] == "Windows 8.1"
    assert one(br, "win81")["os_unsupported_since"] == ts("2023-01-10")
    mac = one(br, "mac108")
    assert mac["os"] == "Mac OS X 10.8" and mac["os_unsupported_since"] == ts("2016-04-13")
    a7 = one(br, "android7")
    assert a7["os"] == "Android 7" and a7["os_unsupported_since"] == br.released_at("chrome_android", "120")
    assert br.os_unsupported_since("Windows", "Vista", None) == ts("2017-04-11")
    assert br.os_unsupported_since("Windows", "8", None) == ts("2016-01-12")
    assert br.os_unsupported_since("Windows", "10", None) is None  # Windows 11 sends NT 10.0 too
    assert br.os_unsupported_since("Mac OS X", "10", "15") is None
    assert br.os_unsupported_since("Android", "8", "0") is None
    assert br.os_unsupported_since(None, None, None) is None


def test_cache_is_bounded_and_consistent() -> None:
    b = BrowserReleases.load(cache_size=16)
    uas = [f"Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0" for v in range(20, 80)]
    first = b.classify_series(pl.Series(uas))
    assert len(b._cache) <= 16
    again = b.classify_series(pl.Series(uas))
    assert first.equals(again)
    assert first["browser_version"].to_list() == [str(v) for v in range(20, 80)]


# -- a real 2015 log judged at its own event time --------------------------------------------------------

LOG_RE = re.compile(r'\[([^\]]+)\] "[^"]*" \d+ \S+ "[^"]*" "([^"]*)"')


@pytest.fixture(scope="module")
def log_2015() -> pl.DataFrame:
    if not LOG_2015.exists():
        pytest.skip(f"{LOG_2015} not available")
    rows = []
    for line in LOG_2015.read_text("utf-8", errors="replace").splitlines():
        m = LOG_RE.search(line)
        if m:
            when = dt.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp()
            rows.append((when, m.group(2)))
    return pl.DataFrame(rows, schema={"ts": pl.Float64, "ua": pl.String}, orient="row")


def test_2015_log_judged_at_event_time(br: BrowserReleases, log_2015: pl.DataFrame) -> None:
    out = pl.concat([log_2015.select("ts"), br.classify_series(log_2015["ua"])], how="horizontal")
    assert out.height == log_2015.height and out["ua"].equals(log_2015["ua"])
    age = (pl.col("ts") - pl.col("browser_superseded_at")) / DAY
    # The most common UA: Chrome 32 on Windows 7, released Jan 2014, superseded by Chrome 33 on
    # 2014-02-20 -- about 15 months stale in May 2015, not the ~12 years it is "today".
    c32 = out.filter(
        pl.col("ua")
        == "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.107 Safari/537.36"
    )
    assert c32.height > 1000
    row = c32.row(0, named=True)
    assert (row["browser"], row["browser_version"], row["os"]) == ("chrome", "32", "Windows 7")
    assert row["browser_released_at"] == ts("2014-01-14")
    assert row["browser_superseded_at"] == ts("2014-02-20")
    assert row["os_unsupported_since"] == ts("2020-01-14")  # Windows 7 was supported in 2015
    assert (c32["ts"] < c32["os_unsupported_since"]).all()
    mac = out.filter(
        pl.col("ua")
        == "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/33.0.1750.91 Safari/537.36"
    )
    assert mac["os"].unique().to_list() == ["Mac OS X 10.9"]
    assert mac["browser_superseded_at"].unique().to_list() == [ts("2014-04-08")]  # Chrome 34
    ages = c32.select(age).to_series()
    assert ages.min() > 360 and ages.max() < 470
    # IE 11 on Windows 8.1 was current in 2015: "superseded" (retired) only seven years later.
    ie11 = out.filter(pl.col("ua") == "Mozilla/5.0 (Windows NT 6.3; WOW64; Trident/7.0; rv:11.0) like Gecko")
    assert ie11.height >= 1
    assert (ie11.select(age).to_series() < -2000).all()
    assert (ie11["os_unsupported_since"] > ie11["ts"]).all()
    # Firefox 27 on Ubuntu: superseded by Firefox 28 on 2014-03-18, ~14 months before the requests.
    ff27 = out.filter(pl.col("browser") == "firefox", pl.col("browser_version") == "27")
    assert ff27.height > 100
    assert ff27["browser_superseded_at"].unique().to_list() == [ts("2014-03-18")]
    assert ff27.select(age.is_between(400, 440).all()).item()
    # Windows XP requests in 2015: the OS was already out of support (since 2014-04-08).
    xp = out.filter(pl.col("os") == "Windows XP")
    assert xp.height > 100
    assert (xp["os_unsupported_since"] == ts("2014-04-08")).all()
    assert (xp["ts"] > xp["os_unsupported_since"]).all()
    # Judged at event time, browsers that were current in May 2015 are not superseded at all.
    current = out.filter(pl.col("browser").is_not_null(), pl.col("browser_superseded_at") > pl.col("ts"))
    assert set(current["browser"].unique().to_list()) >= {"ie"}
    assert current.height < out.filter(pl.col("browser").is_not_null()).height / 2
