"""Shared helpers of the benchmark harness: traffic files (cached in bench/out/), memory readings,
free ports, throw-away Postgres databases."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

MiB = 1024 * 1024


def traffic_files(lines: int, scenario: str) -> tuple[Path, Path]:
    """The scenario's traffic, ``lines`` lines of it, as JSON lines and as combined lines (cached)."""
    from abuse_stream.simulate import SCENARIOS, generate

    OUT.mkdir(exist_ok=True)
    js, comb = OUT / f"{scenario}-{lines}.jsonl", OUT / f"{scenario}-{lines}.log"
    if not (js.exists() and comb.exists()):
        sc = SCENARIOS[scenario]
        t = generate(sc)
        while t.records.height < lines:  # more actors until there are enough lines
            sc = dataclasses.replace(sc, scale=sc.scale * 2)
            t = generate(sc)
        t = dataclasses.replace(t, records=t.records.head(lines))
        tmp_js, tmp_comb = js.with_suffix(".tmp1"), comb.with_suffix(".tmp2")
        t.to_jsonl(tmp_js)
        t.to_combined(tmp_comb)
        tmp_js.replace(js)  # an interrupted run leaves no half-written cache behind
        tmp_comb.replace(comb)
    return js, comb


def rss_now() -> int:
    """Resident set size of this process now, bytes (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_self()


def peak_rss_self() -> int:
    """Peak resident set size of this process so far, bytes.

    VmHWM (Linux) belongs to the address space and starts afresh at exec. ``ru_maxrss`` does not: Linux
    carries the pre-exec maximum over, so a child forked from a big parent would report the parent's
    size. It is only the fallback (KiB on Linux, bytes on macOS).
    """
    _cur, peak = proc_rss(os.getpid())
    if peak:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def proc_rss(pid: int) -> tuple[int | None, int | None]:
    """(current RSS, peak RSS = VmHWM) of another process in bytes, from /proc (None if unavailable)."""
    cur = peak = None
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    return cur, peak


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) another process has used so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_admin_url(explicit: str | None = None) -> str:
    return (
        explicit
        or os.environ.get("BENCH_PG_ADMIN_URL")
        or os.environ.get("TEST_PG_ADMIN_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def pg_available(admin_url: str) -> str | None:
    """None if the Postgres server answers, else the reason."""
    import psycopg

    try:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A throw-away database ``bench_<random>``; yields its SQLAlchemy URL, drops it afterwards."""
    import psycopg
    from psycopg import sql

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    user = info.get("user") or "postgres"
    pw = f":{info['password']}" if info.get("password") else ""
    host, port = info.get("host") or "127.0.0.1", info.get("port") or "5432"
    try:
        yield f"postgresql+psycopg://{user}{pw}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def ip4(i: int, base: int = 10 << 24) -> str:
    """The ``i``-th address counted from ``base`` (default 10.0.0.0), dotted."""
    n = base + i
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
