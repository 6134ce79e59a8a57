"""The HTML report: hostile log-derived strings stay text, the page is self-contained, and a real
headless Chromium renders the charts without running anything injected.

The Chromium tests need the Debian packages ``chromium`` (and, for WebDriver users,
``chromium-driver``); ``$CHROMIUM`` may name another binary.  Without it they FAIL, never skip:
CI must install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from abuse_stream.report import CSP, render_html, report_command, write_html
from abuse_stream.stats import Stats, render_text

ALERT_SCRIPT = "<script>alert(1)</script>"
ALERT_IMG = '"><img src=x onerror=alert(1)>'
# payloads that leave a trace in the DOM if they ever run (the Chromium tests look for it)
TITLE_SCRIPT = "<script>document.title='PWNED'</script>"
TITLE_IMG = '"><img src=x onerror="document.title=\'PWNED\'">'
SVG_ONLOAD = "</text><svg onload=\"document.body.setAttribute('data-pwned','1')\"></svg>"
STYLE_BREAK = "</style><b id=pwned-style>x</b>"
HOSTILE = [ALERT_SCRIPT, ALERT_IMG, TITLE_SCRIPT, TITLE_IMG, SVG_ONLOAD, STYLE_BREAK]
TITLE = "abuse-stream report"
GENERATED = "2015-03-02T08:00:00Z"


def hostile_stats() -> Stats:
    """Hand-made rows with hostile strings wherever log- or config-derived text goes."""
    as_of = "2015-03-01T12:00:00Z"
    lists = [
        {"list": "denylist", "ips_last_30d": 3, "ips_prev_30d": 2, "pct_change": 50.0, "as_of": as_of},
        {"list": "graylist", "ips_last_30d": 1, "ips_prev_30d": 0, "pct_change": None, "as_of": as_of},
    ]
    by_type = [
        {"list": "denylist", "bot_type": "scraping", "ips_last_30d": 2, "ips_prev_30d": 1, "pct_change": 100.0, "as_of": as_of},
        {"list": "denylist", "bot_type": TITLE_SCRIPT, "ips_last_30d": 1, "ips_prev_30d": 1, "pct_change": 0.0, "as_of": as_of},
        {"list": "graylist", "bot_type": "account_takeover", "ips_last_30d": 1, "ips_prev_30d": 0, "pct_change": None, "as_of": as_of},
    ]  # fmt: skip
    daily = [
        {"day": "2015-01-20", "bot_type": "scraping", "verdicts": 1, "ips": 1},
        {"day": "2015-01-30", "bot_type": TITLE_SCRIPT, "verdicts": 2, "ips": 1},
        {"day": "2015-02-19", "bot_type": "scraping", "verdicts": 4, "ips": 2},
        {"day": "2015-02-19", "bot_type": "account_takeover", "verdicts": 2, "ips": 2},
        {"day": "2015-02-27", "bot_type": "account_takeover", "verdicts": 1, "ips": 1},
        {"day": "2015-03-01", "bot_type": "scraping", "verdicts": 3, "ips": 3},
        {"day": "2015-03-01", "bot_type": TITLE_SCRIPT, "verdicts": 1, "ips": 1},
    ]
    attackers = [
        {"ip": "192.0.2.1", "verdicts": 5, "bot_types": "account_takeover,scraping", "requests": 900,
         "first_detected": "2015-01-20T12:00:00Z", "last_detected": as_of,
         "user_agent": ALERT_SCRIPT, "application": TITLE_IMG},
        {"ip": TITLE_IMG, "verdicts": 3, "bot_types": TITLE_SCRIPT, "requests": 400,
         "first_detected": "2015-01-30T12:00:00Z", "last_detected": as_of,
         "user_agent": TITLE_SCRIPT, "application": None},
        {"ip": ALERT_SCRIPT, "verdicts": 2, "bot_types": "scraping", "requests": 120,
         "first_detected": "2015-02-19T12:00:00Z", "last_detected": "2015-02-19T13:00:00Z",
         "user_agent": SVG_ONLOAD, "application": STYLE_BREAK},
        {"ip": "2001:db8::1", "verdicts": 1, "bot_types": "scraping", "requests": 50,
         "first_detected": "2015-02-27T12:00:00Z", "last_detected": "2015-02-27T12:00:00Z",
         "user_agent": None, "application": None},
    ]  # fmt: skip
    targets = [
        {"endpoint": "POST /login", "verdicts": 4, "ips": 3, "requests": 800},
        {"endpoint": f"GET /{ALERT_SCRIPT}", "verdicts": 2, "ips": 2, "requests": 300},
        {"endpoint": f"GET /search?q={ALERT_IMG}", "verdicts": 1, "ips": 1, "requests": 100},
        {"endpoint": f"GET {SVG_ONLOAD}", "verdicts": 1, "ips": 1, "requests": 10},
    ]
    mix = [
        {"detector": "request_rate", "bot_type": "scraping", "fired": 8, "runs": 8},
        {"detector": "failed_auth", "bot_type": "account_takeover", "fired": 3, "runs": 3},
        {"detector": TITLE_IMG, "bot_type": TITLE_SCRIPT, "fired": 2, "runs": 2},
        {"detector": "request_rate", "bot_type": "account_takeover", "fired": 1, "runs": 3},
        {"detector": "failed_auth", "bot_type": "scraping", "fired": 0, "runs": 8},  # not drawn
    ]
    return Stats(lists, by_type, daily, attackers, targets, mix, as_of=as_of)


# the charts the hand-made stats must give: (svg id, element class, count)
EXPECTED_MARKS = [
    ("chart-comparison", "bar", 4),  # 2 lists x (previous, last)
    ("chart-timeline", "seg", 7),  # one per (day, bot type) row
    ("chart-attackers", "bar", 4),
    ("chart-targets", "bar", 4),
    ("chart-detectors", "bar", 4),  # rows with fired > 0
]

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "footer", "section", "h1",
    "h2", "h3", "p", "div", "span", "code", "table", "thead", "tbody", "tr", "th", "td", "svg",
    "line", "rect", "text",
}  # fmt: skip


class Page(HTMLParser):
    """The elements of a page: tags, attributes, marks per chart, text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.marks: dict[tuple[str, str], int] = {}
        self.text: list[str] = []
        self._svg: list[str] = []
        self._title = False
        self.title = ""
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg":
            self._svg.append(a.get("id") or "")
        elif tag in ("rect", "line", "text") and self._svg:
            for cls in (a.get("class") or "").split():
                key = (self._svg[-1], cls)
                self.marks[key] = self.marks.get(key, 0) + 1
        if tag == "title" and not self._svg:
            self._title = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "svg":
            self._svg.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self._svg:
            self._svg.pop()
        if tag == "title":
            self._title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._title:
            self.title += data


def assert_inert(page: str, hostile: list[str] = HOSTILE) -> Page:
    """Nothing but the report's own markup: no script, no handler, no external reference, and the
    hostile strings are there as text."""
    p = Page(page)
    names = {t for t, _ in p.tags}
    assert names <= ALLOWED_TAGS, f"unexpected elements: {names - ALLOWED_TAGS}"
    for tag, attrs in p.tags:
        for k, v in attrs.items():
            assert not k.startswith("on"), f"event handler {k}={v!r} on <{tag}>"
            assert k not in ("src", "href", "srcset", "action", "formaction", "xlink:href"), (tag, k, v)
            assert k != "id" or (v or "").startswith(
                ("chart-", "comparison", "timeline", "attackers", "targets", "detectors")
            ), v
    text = "".join(p.text)
    for s in hostile:
        assert s in text, f"hostile string {s!r} not rendered as text"
    return p


def test_hostile_strings_are_escaped():
    page = render_html(hostile_stats(), generated_at=GENERATED, title=TITLE_SCRIPT)
    for s in HOSTILE:
        assert s not in page
    lowered = page.lower()
    for needle in ("<script", "<img", "<svg onload", "<b id=pwned", "</text><svg"):
        assert needle not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    p = assert_inert(page)
    assert p.title == TITLE_SCRIPT  # the <title> shows the text, escaped


def test_page_is_self_contained_with_a_strict_csp():
    page = render_html(hostile_stats(), generated_at=GENERATED)
    head = page[: page.index("</head>")]
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in head
    assert head.index("Content-Security-Policy") < head.index("<style>")  # before any content
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"  # no script-src at all
    assert "http://" not in page and "https://" not in page and "@import" not in page
    p = Page(page)
    for svg_id, cls, n in EXPECTED_MARKS:
        assert p.marks.get((svg_id, cls), 0) == n, (svg_id, cls, p.marks)
    text = " ".join("".join(p.text).split())
    assert "+50.0%" in text and "vs 2 in the 30 days before" in text
    assert "no previous data" in text  # graylist: 0 before, no percentage


def test_empty_stats_render():
    page = render_html(Stats(), generated_at=GENERATED)
    assert "No data yet." in page and "<svg" not in page
    assert "no verdicts stored yet" in render_text(Stats())


def test_render_text_strips_control_characters():
    stats = hostile_stats()
    stats.top_attackers[0]["ip"] = "\x1b[2J\x1b[31m192.0.2.1"
    out = render_text(stats)
    assert "\x1b" not in out
    assert "denylist         3         2  +50.0%" in out
    assert "graylist         1         0     n/a" in out


# -- the report command ------------------------------------------------------------------------------


def _small_db(url: str) -> None:
    from abuse_stream.store.db import Store, migrate

    migrate(url)
    store = Store(url)
    rows = []
    for i, (ip, at) in enumerate(
        [
            ("192.0.2.1", "2015-03-01T12:00:00Z"),
            ("192.0.2.2", "2015-02-27T12:00:00Z"),
            ("192.0.2.1", "2015-01-20T12:00:00Z"),
        ]
    ):
        rows.append(
            {
                "verdict_id": f"v{i}",
                "ip": ip,
                "session": None,
                "bot_type": "scraping",
                "confidence": 1.0,
                "action": "denylist",
                "profile": "default",
                "tolerance": "normal",
                "detected_at": at,
                "expires_at": None,
                "window": {"start": at, "end": at, "requests": 10 * (i + 1)},
                "detectors": [{"name": "request_rate", "fired": True, "counted": True}],
                "application": None,
            }
        )
    store.write_batch(rows, [])
    store.close()


def test_report_command(sqlite_url, tmp_path):
    _small_db(sqlite_url)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(report_command, ["--database-url", sqlite_url, "--out", str(out), "--top", "1"])
    assert res.exit_code == 0, res.output
    assert "Bot IPs, last 30 days vs the 30 days before" in res.output
    assert f"report written to {out.resolve()}" in res.output
    page = out.read_text(encoding="utf-8")
    assert Page(page).marks[("chart-attackers", "bar")] == 1  # --top 1
    # DATABASE_URL is the default
    res = CliRunner().invoke(
        report_command, ["--out", str(tmp_path / "e.html")], env={"DATABASE_URL": sqlite_url}
    )
    assert res.exit_code == 0, res.output


def test_report_command_errors(tmp_path):
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    res = CliRunner().invoke(report_command, ["--database-url", missing, "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and "no database at" in res.output
    assert not (tmp_path / "nope.db").exists()  # not created by looking at it

    from abuse_stream.store.db import migrate

    old = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(old, "0002")  # before the statistics views
    res = CliRunner().invoke(report_command, ["--database-url", old, "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and "abuse-stream migrate" in res.output, res.output


# -- a real browser ----------------------------------------------------------------------------------


def chromium() -> str:
    explicit = os.environ.get("CHROMIUM")
    for name in (
        [explicit] if explicit else ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
    ):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Chromium is needed for the rendering test but was not found"
        + (f" ($CHROMIUM={explicit!r})" if explicit else " on PATH")
        + ": install it (Debian/Ubuntu: `apt-get install -y chromium chromium-driver`) or set $CHROMIUM.",
        pytrace=False,
    )


def run_chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"chromium timed out (an injected alert() blocks headless Chromium: is the page escaped?): "
            f"{' '.join(cmd)}",
            pytrace=False,
        )
        raise AssertionError from e  # unreachable
    assert res.returncode == 0, f"chromium failed ({res.returncode}): {res.stderr[-2000:]}"
    return res.stdout


def _no_alert(v: Any) -> Any:
    if isinstance(v, str):
        return v.replace("alert(1)", "document.title='PWNED'")
    if isinstance(v, list):
        return [_no_alert(x) for x in v]
    if isinstance(v, dict):
        return {k: _no_alert(x) for k, x in v.items()}
    return v


def _check_rendered_dom(dom: str, hostile: list[str] = HOSTILE) -> None:
    p = assert_inert(dom, hostile)  # the browser's DOM after load: no element or handler was injected
    assert p.title == TITLE, f"document.title changed to {p.title!r}: an injected script ran"
    assert not [(t, a) for t, a in p.tags if "data-pwned" in a or a.get("id") == "pwned-style"]
    for svg_id, cls, n in EXPECTED_MARKS:
        assert p.marks.get((svg_id, cls), 0) == n, (svg_id, cls, p.marks)


def test_chromium_renders_charts_and_runs_nothing_injected(tmp_path):
    stats = hostile_stats()
    report = write_html(stats, tmp_path / "report.html", generated_at=GENERATED)
    # 1. the report as written: CSP and escaping
    _check_rendered_dom(run_chromium(tmp_path, "--dump-dom", report.as_uri()))
    # 2. escaping alone must suffice: the page without its CSP.  alert() would block headless
    #    Chromium (a timeout, not a clear failure), so these payloads leave a DOM trace instead.
    traced = Stats(**{k: _no_alert(v) for k, v in vars(stats).items()})
    page = render_html(traced, generated_at=GENERATED)
    no_csp = tmp_path / "no-csp.html"
    no_csp.write_text(
        page.replace(f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', ""), "utf-8"
    )
    assert "Content-Security-Policy" not in no_csp.read_text(encoding="utf-8")
    _check_rendered_dom(run_chromium(tmp_path, "--dump-dom", no_csp.as_uri()), _no_alert(HOSTILE))
    # 3. a screenshot (kept next to the report; look at it when changing the layout)
    png = tmp_path / "report.png"
    run_chromium(tmp_path, f"--screenshot={png}", "--window-size=1100,2600", report.as_uri())
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "empty or blank screenshot"
    keep = os.environ.get("REPORT_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)
        shutil.copy(report, Path(keep).with_suffix(".html"))


def test_chromium_check_catches_an_unescaped_page(tmp_path):
    """The browser check is not vacuous: a page that interpolates a payload raw (and has no CSP)
    does get its title changed by Chromium."""
    bad = tmp_path / "bad.html"
    bad.write_text(f"<!doctype html><title>{TITLE}</title><body><p>{TITLE_SCRIPT}</p></body>", "utf-8")
    dom = run_chromium(tmp_path, "--dump-dom", bad.as_uri())
    assert Page(dom).title == "PWNED"
