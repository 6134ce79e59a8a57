"""`abuse-stream replay` and friends through the real CLI (click's runner and a subprocess)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from abuse_stream.cli import cli
from abuse_stream.simulate import SCENARIOS, generate
from tests.helpers import check_verdict

REAL_LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "apache_logs_2015.log"


def check_verdict_lines(path: Path) -> list[dict]:
    verdicts = [json.loads(line) for line in path.read_text().splitlines()]
    for v in verdicts:
        check_verdict(v)
    return verdicts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    traffic = generate(SCENARIOS["tiny"])
    traffic.to_jsonl(d / "tiny.jsonl")
    traffic.to_combined(d / "tiny.log")
    return d


def run(args: list[str], **kw) -> object:
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def test_replay_json_without_broker_or_database(tiny: Path, tmp_path: Path):
    out = tmp_path / "v.jsonl"
    res = run(["replay", str(tiny / "tiny.jsonl"), "--verdicts-out", str(out), "--no-db"])
    assert res.exit_code == 0, res.output
    verdicts = check_verdict_lines(out)
    assert {v["bot_type"] for v in verdicts} >= {"security_crawlers", "api_abuse"}
    assert "0 rejected" in res.output and (tmp_path / "v.jsonl.rejected").exists()


def test_replay_is_deterministic_and_format_independent(tiny: Path, tmp_path: Path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    run(["replay", str(tiny / "tiny.jsonl"), "--verdicts-out", str(a), "--no-db"])
    run(["replay", str(tiny / "tiny.jsonl"), "--verdicts-out", str(b), "--no-db"])
    gz = tmp_path / "tiny.log.gz"
    gz.write_bytes(gzip.compress((tiny / "tiny.log").read_bytes()))
    res = run(["replay", str(gz), "--format", "combined", "--verdicts-out", str(c), "--no-db"])
    assert res.exit_code == 0, res.output
    ids = lambda p: sorted(v["verdict_id"] for v in check_verdict_lines(p))  # noqa: E731
    assert ids(a) == ids(b) and len(ids(a)) > 0
    # the combined rendering has no host (one baseline instead of one per application) and whole-second
    # times, so rate thresholds differ a little; UA evidence does not depend on either
    pairs = lambda p: {(v["ip"], v["bot_type"]) for v in check_verdict_lines(p)}  # noqa: E731
    scanners = lambda s: {p for p in s if p[1] == "security_crawlers"}  # noqa: E731
    assert scanners(pairs(c)) == scanners(pairs(a)) != set()
    assert len(pairs(c) & pairs(a)) / len(pairs(c) | pairs(a)) >= 0.8


def test_replay_from_stdin_reports_rejected_lines(tmp_path: Path):
    lines = [
        json.dumps(
            {
                "ts": 1793491200 + i,
                "ip": "203.0.113.5",
                "method": "GET",
                "path": f"/.env?{i}",
                "status": 404,
                "ua": "sqlmap/1.8",
            }
        )
        for i in range(30)
    ] + ["garbage", "\x00\x01binary", '{"ts": 1793491300, "ip": "1.2.3.4"']
    rej = tmp_path / "rej.jsonl"
    out = tmp_path / "v.jsonl"
    res = run(
        ["replay", "-", "--verdicts-out", str(out), "--rejected-out", str(rej), "--no-db"],
        input="\n".join(lines) + "\n",
    )
    assert res.exit_code == 0, res.output
    assert "3 rejected" in res.output
    reports = [json.loads(x) for x in rej.read_text().splitlines()]
    assert [r["line"] for r in reports] == [31, 32, 33]
    assert {r["reason"] for r in reports} == {"unrecognised_format", "invalid_json"}
    assert [v["bot_type"] for v in check_verdict_lines(out)] == ["security_crawlers"]


def test_replay_writes_the_database_idempotently(tiny: Path, tmp_path: Path, sqlite_url: str):
    from abuse_stream.store.db import Store

    env = {"DATABASE_URL": sqlite_url}
    for _ in range(2):
        res = run(["replay", str(tiny / "tiny.jsonl")], env=env)
        assert res.exit_code == 0, res.output
    store = Store(sqlite_url)
    n = store.count("verdicts")
    assert n > 0 and len(store.verdict_ids()) == n
    store.close()


def test_unusable_input_or_config_exits_non_zero_with_a_message(tmp_path: Path):
    res = CliRunner().invoke(cli, ["replay", str(tmp_path / "nope.log"), "--no-db"])
    assert res.exit_code != 0 and "input file not found" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("window:\n  step_s: -1\n")
    res = CliRunner().invoke(cli, ["replay", "-", "--no-db", "--config", str(bad)], input="")
    assert res.exit_code != 0 and "config key 'window.step_s'" in res.output


@pytest.mark.skipif(not REAL_LOG.exists(), reason="shared data not beside the checkout")
def test_replay_of_the_real_2015_apache_log(tmp_path: Path):
    out = tmp_path / "v.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "abuse_stream",
            "replay",
            str(REAL_LOG),
            "--format",
            "combined",
            "--verdicts-out",
            str(out),
            "--no-db",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "replayed 10000 lines" in proc.stderr
    verdicts = check_verdict_lines(out)
    # 10,000 real lines from 2015: a handful of automated clients, never a large share of the 1,753 IPs
    assert 0 < len({v["ip"] for v in verdicts}) < 40
