"""Hostile input through the pipeline and `replay`: no crash, every bad line dead-lettered with a
reason, every good one processed (issue: reliability, hostile input)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abuse_stream.cli import cli
from abuse_stream.config import build_config
from abuse_stream.ingest.schema import REASONS
from abuse_stream.pipeline import Pipeline
from tests.helpers import TinyClassifier
from tests.hostile import INJECTIONS, hostile_lines

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.sampled_from(INJECTIONS),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
records = st.fixed_dictionaries(
    {},
    optional={
        k: json_values
        for k in (
            "ts",
            "ip",
            "method",
            "path",
            "status",
            "host",
            "bytes",
            "ua",
            "latency_ms",
            "session",
            "remote_addr",
            "request",
            "response_code",
            "start_time",
        )
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(records.map(lambda r: json.dumps(r).encode()), st.binary(max_size=200)), max_size=60)
)
def test_the_pipeline_survives_anything_and_accounts_for_every_line(lines):
    p = Pipeline(build_config({}), TinyClassifier())
    out = p.process_lines(lines)
    out.extend(p.finish())
    assert out.accepted + len(out.rejected) == len(lines)
    assert all(r.reason in REASONS and r.detail for r in out.rejected)


def test_ten_thousand_hostile_records_through_replay(tmp_path: Path):
    lines = hostile_lines(10_000)
    src = tmp_path / "hostile.log"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out, rej = tmp_path / "v.jsonl", tmp_path / "rej.jsonl"
    res = CliRunner().invoke(
        cli,
        ["replay", str(src), "--no-db", "--verdicts-out", str(out), "--rejected-out", str(rej)],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    reports = [json.loads(x) for x in rej.read_text().splitlines()]
    rejected = {r["line"] - 1 for r in reports}  # 0-based line index
    kind = lambda i: i % 12  # noqa: E731 - see tests/hostile.py
    bad = {i for i in range(10_000) if kind(i) in (0, 1, 2, 5, 6, 9, 10)}  # garbage of every sort
    good = {i for i in range(10_000) if kind(i) in (4, 8, 11)}  # injections in fields, IPv6, plain
    assert bad <= rejected and not (good & rejected)
    # wrong types and absurd timestamps: rejected when the field is required, kept (field dropped) when optional
    assert {i for i in range(10_000) if kind(i) == 7} <= rejected
    assert {r["reason"] for r in reports} <= set(REASONS) and all(r["detail"] for r in reports)
    assert {"invalid_json", "too_long", "bad_ip", "bad_timestamp", "invalid_utf8", "empty"} <= {
        r["reason"] for r in reports
    }
    assert all(r["raw"] is not None or r["raw_base64"] for r in reports)
    assert (
        f"{10_000 - len(reports)} accepted, {len(reports)} rejected" in res.output
    )  # every line accounted for
    for v in (
        json.loads(x) for x in out.read_text().splitlines()
    ):  # verdicts stay valid JSON and escaped as data
        assert v["ip"] and v["detectors"]
