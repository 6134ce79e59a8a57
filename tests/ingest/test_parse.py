"""abuse_stream.ingest.parse: raw lines -> canonical records + rejected lines (contracts §1)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abuse_stream.ingest.parse import ParseResult, build_parser, compile_log_format
from abuse_stream.ingest.schema import CANONICAL_SCHEMA, REASONS

REAL_LOG = Path("/work/shared/data/real/apache_logs_2015.log")

TS = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()  # 1714564800.0
COMBINED = (
    b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/kibana.png?x=1 HTTP/1.1" 200 203023 '
    b'"http://semicomplete.com/presentations/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)"'
)
COMBINED_TS = datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC).timestamp()


def jline(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def ok(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"ts": TS, "ip": "1.2.3.4", "method": "GET", "path": "/", "status": 200}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def parse(lines: list[bytes], fmt: str = "auto", **kw: object) -> ParseResult:
    result = build_parser(fmt, **kw).parse(lines)  # type: ignore[arg-type]
    check_invariants(result, lines)
    return result


def check_invariants(result: ParseResult, lines: list[bytes]) -> None:
    assert result.records.schema == pl.Schema(CANONICAL_SCHEMA)
    assert list(result.records.columns) == list(CANONICAL_SCHEMA)
    assert result.records.height + len(result.rejected) == len(lines)
    indices = [r.index for r in result.rejected]
    assert indices == sorted(set(indices))
    assert all(0 <= i < len(lines) for i in indices)
    for r in result.rejected:
        assert r.reason in REASONS, r
        assert r.raw == lines[r.index]
        assert r.detail


def one_reject(line: bytes, fmt: str = "auto", **kw: object) -> tuple[str, str]:
    result = parse([line], fmt, **kw)
    assert result.records.height == 0, result.records
    (rej,) = result.rejected
    assert rej.index == 0
    return rej.reason, rej.detail


def one_record(line: bytes, fmt: str = "auto", **kw: object) -> dict[str, object]:
    result = parse([line], fmt, **kw)
    assert result.rejected == [], result.rejected
    return result.records.row(0, named=True)


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------
def test_canonical_json() -> None:
    line = jline(
        ts="2024-05-01T12:00:00.250Z",
        ip="1.2.3.4",
        method="post",
        path="/login?next=/a%20b",
        status=401,
        host="shop.example.com",
        bytes=512,
        ua="Mozilla/5.0",
        referer="https://shop.example.com/",
        latency_ms=12.5,
        session="s-123",
        xff="9.9.9.9, 10.0.0.1",
    )
    assert one_record(line, "json") == {
        "ts": TS + 0.25,
        "ip": "1.2.3.4",
        "method": "POST",
        "path": "/login?next=/a%20b",
        "status": 401,
        "host": "shop.example.com",
        "bytes": 512,
        "ua": "Mozilla/5.0",
        "referer": "https://shop.example.com/",
        "latency_ms": 12.5,
        "session": "s-123",
        "xff": "9.9.9.9, 10.0.0.1",
    }


def test_optional_fields_absent_are_null() -> None:
    rec = one_record(jline(**ok()))
    assert rec["ts"] == TS and rec["status"] == 200
    assert all(rec[k] is None for k in ("host", "bytes", "ua", "referer", "latency_ms", "session", "xff"))


def test_nginx_json_aliases_numbers_as_strings() -> None:
    line = jline(
        time_iso8601="2024-05-01T14:00:00+02:00",
        remote_addr="2001:DB8:0:0:0:0:0:1",
        request="GET /search?q=a+b HTTP/2.0",
        status="404",
        body_bytes_sent="0",
        bytes_sent="350",
        http_user_agent="curl/8.4.0",
        http_referer="-",
        request_time="0.012",
        upstream_response_time="0.010",
        host="shop.example.com",
        http_host="ignored.example.com",
        http_x_forwarded_for="203.0.113.7",
    )
    assert one_record(line, "json") == {
        "ts": TS,
        "ip": "2001:db8::1",
        "method": "GET",
        "path": "/search?q=a+b",
        "status": 404,
        "host": "shop.example.com",
        "bytes": 0,
        "ua": "curl/8.4.0",
        "referer": None,
        "latency_ms": 12.0,
        "session": None,
        "xff": "203.0.113.7",
    }


def test_nginx_json_msec_method_uri_and_upstream_times() -> None:
    line = jline(
        msec="1714564800.123",
        time_local="01/May/2024:12:00:00 +0000",
        remote_addr="::ffff:10.1.2.3",
        request_method="PUT",
        request_uri="/api/items/7?x=1",
        uri="/api/items/7",
        status=201,
        upstream_response_time="0.010, 0.020",
        server_name="api.example.com",
    )
    rec = one_record(line)
    assert rec["ts"] == pytest.approx(TS + 0.123)
    assert rec["ip"] == "10.1.2.3"  # IPv4-mapped IPv6 -> IPv4
    assert (rec["method"], rec["path"], rec["status"]) == ("PUT", "/api/items/7?x=1", 201)
    assert rec["latency_ms"] == pytest.approx(30.0)  # several upstreams: the sum
    assert rec["host"] == "api.example.com"
    # uri (no query) is used only when nothing better is there; time_local when nothing else
    rec = one_record(
        jline(time_local="01/May/2024:14:00:00 +0200", ip="1.1.1.1", method="GET", uri="/u", status=200)
    )
    assert (rec["ts"], rec["path"]) == (TS, "/u")


def test_envoy_json() -> None:
    line = jline(
        start_time="2024-05-01T12:00:00.500Z",
        downstream_remote_address="[2001:db8::AB]:443",
        method="DELETE",
        path="/v1/users/1",
        response_code=503,
        bytes_sent=77,
        user_agent="grpc-go/1.60",
        duration=250,
        authority="users.internal",
        x_forwarded_for="198.51.100.1",
        referer="-",
    )
    assert one_record(line, "json") == {
        "ts": TS + 0.5,
        "ip": "2001:db8::ab",
        "method": "DELETE",
        "path": "/v1/users/1",
        "status": 503,
        "host": "users.internal",
        "bytes": 77,
        "ua": "grpc-go/1.60",
        "referer": None,
        "latency_ms": 250.0,
        "session": None,
        "xff": "198.51.100.1",
    }
    v4 = one_record(jline(**ok(ip=...), downstream_remote_address="192.0.2.9:5555"))
    assert v4["ip"] == "192.0.2.9"


def test_numbers_as_strings_and_strings_as_numbers() -> None:
    rec = one_record(
        jline(ts=str(TS), ip="1.2.3.4", method="GET", path="/", status="200", bytes="1234", latency_ms="1.5")
    )
    assert (rec["ts"], rec["status"], rec["bytes"], rec["latency_ms"]) == (TS, 200, 1234, 1.5)
    rec = one_record(jline(**ok(ts=int(TS * 1000), status=200.0, bytes=1e3)))  # epoch ms, 200.0, 1e3
    assert (rec["ts"], rec["status"], rec["bytes"]) == (TS, 200, 1000)


def test_integer_and_float_spellings_in_one_batch() -> None:
    """Integers are parsed as such; a batch holding one float spelling takes the float path for it
    alone, and out-of-range values are rejected whichever path they took."""
    spellings = [("200", "12"), ("200.0", "1e3"), (404, 0), ("700", "5"), ("599", "-1"), ("2e2", "7.0")]
    lines = [jline(**ok(status=st, bytes=b)) for st, b in spellings]
    result = parse(lines)
    assert [(r.index, r.reason) for r in result.rejected] == [(3, "bad_status"), (4, "bad_field")]
    got = result.records.select("status", "bytes").rows()
    assert got == [(200, 12), (200, 1000), (404, 0), (200, 7)]
    alone = parse(lines[:1] + lines[2:3]).records.select("status", "bytes").rows()  # integers only
    assert alone == [(200, 12), (404, 0)]


def test_canonical_names_win_over_aliases() -> None:
    line = jline(
        ts=TS,
        time_iso8601="2030-01-01T00:00:00Z",
        ip="1.2.3.4",
        remote_addr="5.6.7.8",
        method="GET",
        request="POST /other HTTP/1.1",
        path="/mine",
        status=200,
        response_code=500,
        ua="canonical-ua",
        http_user_agent="alias-ua",
        latency_ms=3,
        request_time="9.0",
    )
    rec = one_record(line)
    assert (rec["ts"], rec["ip"], rec["method"], rec["path"], rec["status"]) == (
        TS,
        "1.2.3.4",
        "GET",
        "/mine",
        200,
    )
    assert (rec["ua"], rec["latency_ms"]) == ("canonical-ua", 3.0)
    # "-" in an optional canonical field means absent: the alias is used
    assert one_record(jline(**ok(ua="-"), user_agent="curl"))["ua"] == "curl"


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-05-01T12:00:00Z", TS),
        ("2024-05-01T12:00:00z", TS),
        ("2024-05-01T12:00:00.123456Z", TS + 0.123456),
        ("2024-05-01 12:00:00Z", TS),
        ("2024-05-01T14:30:00+02:30", TS),
        ("2024-05-01T07:00:00-0500", TS),
        ("2024-05-01T12:00:00", TS),  # no offset: UTC
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC).timestamp()),
        ("01/May/2024:12:00:00 +0000", TS),
        ("01/May/2024:13:00:00 +0100", TS),
        (TS, TS),
        (int(TS), TS),
        (TS + 0.5, TS + 0.5),
        (str(TS), TS),
        (int(TS * 1000), TS),
        (str(int(TS * 1000) + 250), TS + 0.25),
        ("2000-01-01T00:00:00Z", 946684800.0),
    ],
)
def test_timestamp_formats(ts: object, expected: float) -> None:
    assert one_record(jline(**ok(ts=ts)))["ts"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "ts",
    [
        "yesterday",
        "",
        "-",
        "1970-01-01T00:00:00Z",  # before 2000
        "3000-01-01T00:00:00Z",  # after 2100
        "2100-01-01T00:00:00Z",  # the end is exclusive
        0,
        86400,
        1e20,
        "2023-02-29T00:00:00Z",  # not a leap year
        "2024-13-01T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01",
        "32/May/2024:12:00:00 +0000",
        "01/Foo/2024:12:00:00 +0000",
        "NaN",
        "inf",
        True,
        [TS],
        {"t": TS},
    ],
)
def test_bad_timestamps(ts: object) -> None:
    reason, detail = one_reject(jline(**ok(ts=ts)))
    assert reason == "bad_timestamp"
    assert detail.startswith("ts")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("255.255.255.255", "255.255.255.255"),
        ("0.0.0.0", "0.0.0.0"),
        ("::1", "::1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::FFFF:C000:0280", "192.0.2.128"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_ip_normalisation(ip: str, expected: str) -> None:
    assert one_record(jline(**ok(ip=ip)))["ip"] == expected


@pytest.mark.parametrize(
    "ip",
    [
        "999.1.1.1",
        "abc",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",
        " 1.2.3.4",
        "1.2.3.4:80",
        "-",
        "",
        "::g",
        "1:2:3",
        16909060,
        {"v": "1.2.3.4"},
        ["1.2.3.4"],
    ],
)
def test_bad_ips(ip: object) -> None:
    assert one_reject(jline(**ok(ip=ip)))[0] == "bad_ip"


def test_many_distinct_ipv6_in_one_batch() -> None:
    lines = [jline(**ok(ip=f"2001:DB8::{i:x}")) for i in range(1, 301)] + [jline(**ok(ip="2001:db8::zz"))]
    result = parse(lines)
    assert result.records["ip"].to_list() == [f"2001:db8::{i:x}" for i in range(1, 301)]
    assert [(r.index, r.reason) for r in result.rejected] == [(300, "bad_ip")]


@pytest.mark.parametrize(
    "status", [99, 600, 0, -200, "abc", "", "-", 200.5, "2OO", [200], {"code": 200}, "1e9"]
)
def test_bad_status(status: object) -> None:
    assert one_reject(jline(**ok(status=status)))[0] == "bad_status"


@pytest.mark.parametrize("method", ["-", "", "GET /", "G3T", "\\x16\\x03\\x01", "A" * 21, 42, {"m": "GET"}])
def test_bad_method(method: object) -> None:
    assert one_reject(jline(**ok(method=method)))[0] == "bad_method"


@pytest.mark.parametrize("path", ["", "index.html", "-", " /x", ["/x"], {"p": "/x"}, "ftp"])
def test_bad_path(path: object) -> None:
    assert one_reject(jline(**ok(path=path)))[0] == "bad_field"
    assert one_reject(jline(**ok(path=path)))[1].startswith("path")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("OPTIONS", "*"), ("GET", "http://evil.example/proxy"), ("CONNECT", "example.com:443")],
)
def test_accepted_request_targets(method: str, path: str) -> None:
    assert one_record(jline(**ok(method=method, path=path)))["path"] == path


@pytest.mark.parametrize("field", ["ts", "ip", "method", "path", "status"])
def test_missing_each_required_field(field: str) -> None:
    for line in (jline(**ok(**{field: ...})), jline(**ok(**{field: None}))):
        reason, detail = one_reject(line)
        assert (reason, detail) == ("missing_field", f"{field} is absent")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bytes", "abc"),
        ("bytes", -1),
        ("bytes", 1.5),
        ("latency_ms", "fast"),
        ("latency_ms", -3),
        ("request_time", "x"),
    ],
)
def test_bad_optional_numbers(field: str, value: object) -> None:
    reason, detail = one_reject(jline(**ok(), **{field: value}))
    assert reason == "bad_field"
    assert detail.startswith("bytes" if field == "bytes" else "latency_ms")


def test_nested_values_in_optional_fields_are_absent() -> None:
    # chosen rule: a nested object/array in an optional field is treated as absent (the record is kept);
    # a *string* that merely looks like JSON is kept as it is
    line = jline(
        **ok(),
        ua={"name": "x"},
        referer=["a", "b"],
        host={"h": 1},
        bytes={"n": 1},
        latency_ms=[1],
        session='{"not": "nested"}',
        xff="[1.2.3.4]",
    )
    rec = one_record(line)
    assert (rec["ua"], rec["referer"], rec["host"], rec["bytes"], rec["latency_ms"]) == (None,) * 5
    assert (rec["session"], rec["xff"]) == ('{"not": "nested"}', "[1.2.3.4]")
    # nested alias -> absent -> the next alias is used
    assert one_record(jline(**ok(), http_user_agent={"a": 1}, user_agent="curl"))["ua"] == "curl"


def test_hostile_strings_survive() -> None:
    ua = 'x"}\n{"ts":0, "ua": {"a": [1]}}\\'
    rec = one_record(jline(**ok(ua=ua, path="/\u00e9\u4e2d?q=\u0000")))
    assert rec["ua"] == ua
    assert rec["path"] == "/\u00e9\u4e2d?q=\u0000"


def test_json_whitespace_and_line_terminators() -> None:
    lines = [
        b"  " + jline(**ok()) + b"\r\n",
        jline(**ok()) + b"\n",
        b'{"ts": 1714564800,\n "ip": "1.2.3.4", "method": "GET",\r\n "path": "/", "status": 200}',
    ]
    result = parse(lines)
    assert result.rejected == []
    assert result.records.height == 3


# --------------------------------------------------------------------------------------------------
# reject reasons
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "fmt", "reason"),
    [
        (b"", "auto", "empty"),
        (b"   \t ", "auto", "empty"),
        (b"\r\n", "json", "empty"),
        (b"\xff\xfe{}", "auto", "invalid_utf8"),
        (b'{"ts": "caf\xe9"}', "json", "invalid_utf8"),
        (b'{"ts": 1714564800, "ip": "1.2.3.4"', "auto", "invalid_json"),
        (b'{"ts": 1714564800,}', "json", "invalid_json"),
        (b"{not json}", "auto", "invalid_json"),
        (b"{}{}", "json", "invalid_json"),
        (b"garbage", "json", "invalid_json"),
        (b"[1, 2, 3]", "json", "not_object"),
        (b'"a string"', "json", "not_object"),
        (b"42", "json", "not_object"),
        (b"null", "json", "not_object"),
        (b"[1, 2, 3]", "auto", "unrecognised_format"),  # auto: only '{' sniffs as JSON
        (b"garbage here", "auto", "unrecognised_format"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "auto", "invalid_utf8"),  # raw TLS hello
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03", "auto", "unrecognised_format"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03", "json", "invalid_json"),
        (jline(ts=TS, ip="1.2.3.4", method="GET", path="/", status=200), "combined", "unrecognised_format"),
        (COMBINED, "common", "unrecognised_format"),
        (COMBINED[:60], "auto", "unrecognised_format"),
    ],
)
def test_reject_reasons(line: bytes, fmt: str, reason: str) -> None:
    assert one_reject(line, fmt)[0] == reason


def test_too_long() -> None:
    line = jline(**ok(path="/" + "a" * 200))
    assert one_reject(line, max_line_bytes=100) == ("too_long", f"{len(line)} bytes > max_line_bytes 100")
    assert one_record(line, max_line_bytes=len(line))  # the limit itself is fine
    assert one_record(line + b"\r\n", max_line_bytes=len(line))  # the terminator does not count


def test_every_reason_in_one_batch_keeps_order_and_counts() -> None:
    lines = [
        jline(**ok(path="/0")),
        b"",
        b"\xc3\x28",
        b"x" * 300,
        b'{"ts":',
        b"[1]",
        jline(**ok(ts=...)),
        jline(**ok(ts="1999-12-31T23:59:59Z")),
        jline(**ok(ip="1.2.3.256")),
        jline(**ok(status=1000)),
        jline(**ok(method="G-T")),
        jline(**ok(bytes="lots")),
        b"hello world",
        COMBINED,
        jline(**ok(path="/14")),
    ]
    result = parse(lines, max_line_bytes=200)
    assert [(r.index, r.reason) for r in result.rejected] == [
        (1, "empty"),
        (2, "invalid_utf8"),
        (3, "too_long"),
        (4, "invalid_json"),
        (5, "unrecognised_format"),
        (6, "missing_field"),
        (7, "bad_timestamp"),
        (8, "bad_ip"),
        (9, "bad_status"),
        (10, "bad_method"),
        (11, "bad_field"),
        (12, "unrecognised_format"),
    ]
    assert result.records["path"].to_list() == ["/0", "/presentations/kibana.png?x=1", "/14"]


def test_one_bad_json_line_does_not_spoil_the_batch() -> None:
    lines = [jline(**ok(path=f"/{i}")) for i in range(50)]
    lines[17] = b'{"ts": 1714564800, "ip": '
    lines[31] = b'["not", "an", "object"]'
    result = parse(lines, "json")
    assert [(r.index, r.reason) for r in result.rejected] == [(17, "invalid_json"), (31, "not_object")]
    assert result.records["path"].to_list() == [f"/{i}" for i in range(50) if i not in (17, 31)]


def test_order_preserved_in_a_mixed_batch() -> None:
    text = b'10.0.0.%d - - [01/May/2024:12:00:%02d +0000] "GET /t%d HTTP/1.1" 200 1 "-" "ua"'
    lines = []
    for i in range(40):
        if i % 3 == 0:
            lines.append(text % (i, i, i))
        elif i % 3 == 1:
            lines.append(jline(**ok(ts=TS + i, ip=f"10.0.0.{i}", path=f"/t{i}")))
        else:
            lines.append(
                b'10.0.0.%d - - [01/May/2024:12:00:%02d +0000] "GET /t%d HTTP/1.0" 304 -' % (i, i, i)
            )
    result = parse(lines)
    assert result.rejected == []
    assert result.records["path"].to_list() == [f"/t{i}" for i in range(40)]
    assert result.records["ts"].to_list() == [TS + i for i in range(40)]
    assert result.records["ip"].to_list() == [f"10.0.0.{i}" for i in range(40)]


# --------------------------------------------------------------------------------------------------
# text formats
# --------------------------------------------------------------------------------------------------
def test_combined() -> None:
    assert one_record(COMBINED, "combined") == {
        "ts": COMBINED_TS,
        "ip": "83.149.9.216",
        "method": "GET",
        "path": "/presentations/kibana.png?x=1",
        "status": 200,
        "host": None,
        "bytes": 203023,
        "ua": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)",
        "referer": "http://semicomplete.com/presentations/",
        "latency_ms": None,
        "session": None,
        "xff": None,
    }


def test_combined_variants() -> None:
    # trailing extra fields (e.g. $request_time), CRLF, escaped quotes, "-" fields, IPv6 client
    rec = one_record(COMBINED + b" 0.005 upstream=1\r\n")
    assert rec["path"] == "/presentations/kibana.png?x=1"
    rec = one_record(
        b'2001:DB8::5 - bob [01/May/2024:14:00:00 +0200] "GET /q?a=\\"b\\" HTTP/1.1" 304 - "-" '
        b'"Mozilla \\"quoted\\" agent"'
    )
    assert rec == {
        "ts": TS,
        "ip": "2001:db8::5",
        "method": "GET",
        "path": '/q?a="b"',
        "status": 304,
        "host": None,
        "bytes": None,
        "ua": 'Mozilla "quoted" agent',
        "referer": None,
        "latency_ms": None,
        "session": None,
        "xff": None,
    }
    # a path with a space and a request without a protocol version
    assert one_record(COMBINED.replace(b"/presentations/kibana.png?x=1", b"/a b"))["path"] == "/a b"
    assert one_record(COMBINED.replace(b" HTTP/1.1", b""))["path"] == "/presentations/kibana.png?x=1"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (b"-", "bad_method"),  # nginx logs "-" for a connection that sent no request (400)
        (b"", "bad_method"),
        (b"\\x16\\x03\\x01\\x00\\xa5\\x01", "bad_method"),  # TLS handshake on a plain-HTTP port
        (b"GET", "missing_field"),
        (b"GET index.html HTTP/1.1", "bad_field"),
    ],
)
def test_combined_bad_requests(request_: bytes, reason: str) -> None:
    line = b'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "' + request_ + b'" 400 0 "-" "-"'
    assert one_reject(line, "combined")[0] == reason


def test_combined_bad_fields() -> None:
    assert one_reject(COMBINED.replace(b"83.149.9.216", b"83.149.9.300"))[0] == "bad_ip"
    assert one_reject(COMBINED.replace(b"17/May/2015", b"17/Mai/2015"))[0] == "bad_timestamp"
    assert one_reject(COMBINED.replace(b" 200 ", b" 2000 "))[0] == "bad_status"
    assert one_reject(COMBINED.replace(b" 203023 ", b" lots "))[0] == "bad_field"


def test_common() -> None:
    line = b'127.0.0.1 - frank [10/Oct/2020:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
    rec = one_record(line, "common")
    assert rec["ts"] == datetime(2020, 10, 10, 20, 55, 36, tzinfo=UTC).timestamp()
    assert (rec["ip"], rec["method"], rec["path"], rec["status"], rec["bytes"]) == (
        "127.0.0.1",
        "GET",
        "/apache_pb.gif",
        200,
        2326,
    )
    assert rec["ua"] is None and rec["referer"] is None
    assert one_record(line, "combined") == rec  # "combined" also accepts common lines
    assert one_record(line, "auto") == rec


CUSTOM = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_time'
)


def test_custom_log_format_with_request_time() -> None:
    line = COMBINED + b" 0.250"
    rec = one_record(line, "log_format", log_format=CUSTOM)
    assert rec["latency_ms"] == 250.0
    assert (rec["ts"], rec["ip"], rec["path"], rec["bytes"]) == (
        COMBINED_TS,
        "83.149.9.216",
        "/presentations/kibana.png?x=1",
        203023,
    )
    # in log_format mode only that format: a plain combined line does not match
    assert one_reject(COMBINED, "log_format", log_format=CUSTOM)[0] == "unrecognised_format"
    # in auto mode the user format is tried first, then combined/common
    result = parse([COMBINED + b" 0.250", COMBINED], "auto", log_format=CUSTOM)
    assert result.records["latency_ms"].to_list() == [250.0, None]


def test_custom_log_format_nginx_config_syntax_and_other_variables() -> None:
    fmt = (
        "'$remote_addr [$time_iso8601] $host \"$request_method $request_uri $server_protocol\" '\n"
        "    '$status $bytes_sent rt=$request_time urt=$upstream_response_time '\n"
        "    'xff=\"$http_x_forwarded_for\"';"
    )
    line = (
        b'10.0.0.9 [2024-05-01T12:00:00+00:00] api.example.com "POST /v1/x?y=1 HTTP/2.0" '
        b'201 99 rt=0.100 urt=0.040, 0.050 xff="1.1.1.1, 2.2.2.2"'
    )
    rec = one_record(line, "log_format", log_format=fmt)
    assert rec == {
        "ts": TS,
        "ip": "10.0.0.9",
        "method": "POST",
        "path": "/v1/x?y=1",
        "status": 201,
        "host": "api.example.com",
        "bytes": 99,
        "ua": None,
        "referer": None,
        "latency_ms": 100.0,
        "session": None,
        "xff": "1.1.1.1, 2.2.2.2",
    }


def test_compile_log_format_groups() -> None:
    tf = compile_log_format(CUSTOM)
    assert tf.regex.count("(?P<") == 9
    assert set(tf.quoted) == {"request", "http_referer", "http_user_agent"}


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("   ", "empty"),
        ("just text", "no $variables"),
        ("$remote_addr ${time_local", "malformed"),
        ("$remote_addr $ [$time_local] $request $status", "not followed by a variable"),
        ("$remote_addr [$time_local] $status", "'method'"),
        ("$remote_addr $request $status", "'ts'"),
        ("[$time_local] $request $status", "'ip'"),
        ("$remote_addr [$time_local] $request", "'status'"),
    ],
)
def test_bad_log_format(fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        build_parser("log_format", log_format=fmt)
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        build_parser("auto", log_format=fmt)


def test_build_parser_errors() -> None:
    with pytest.raises(ValueError, match="unknown input format 'xml'"):
        build_parser("xml")
    with pytest.raises(ValueError, match="requires a log_format"):
        build_parser("log_format")
    with pytest.raises(ValueError, match="max_line_bytes"):
        build_parser("auto", max_line_bytes=0)
    for fmt in ("auto", "json", "combined", "common"):
        assert build_parser(fmt).parse([]).records.height == 0


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------
PARSERS = {
    "auto": build_parser("auto", max_line_bytes=300),
    "json": build_parser("json"),
    "combined": build_parser("combined"),
    "log_format": build_parser("log_format", log_format=CUSTOM),
}

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "-",
            "",
            "1.2.3.4",
            "::1",
            "::ffff:1.2.3.4",
            "999.1.1.1",
            "GET",
            "/",
            "*",
            "2024-05-01T12:00:00Z",
            "17/May/2015:10:05:03 +0000",
            "1714564800",
            "1e400",
            "NaN",
            "200",
            "{",
            "[",
            '"',
            "\\",
            "\x00",
            "\ud7ff",
            "GET / HTTP/1.1",
            "[::1]:80",
            "1.2.3.4:80",
            "0.1, 0.2",
            "\u202e",
            "a" * 200,
        ]
    ),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
field_names = st.sampled_from(
    [
        *CANONICAL_SCHEMA,
        "remote_addr",
        "time_iso8601",
        "msec",
        "time_local",
        "request_method",
        "request_uri",
        "uri",
        "request",
        "body_bytes_sent",
        "bytes_sent",
        "http_user_agent",
        "http_referer",
        "request_time",
        "upstream_response_time",
        "http_host",
        "server_name",
        "start_time",
        "downstream_remote_address",
        "response_code",
        "user_agent",
        "duration",
        "authority",
        "x_forwarded_for",
        "other",
    ]
)
json_dicts = st.dictionaries(field_names, hostile_values, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.binary(max_size=400), max_size=12), fmt=st.sampled_from(sorted(PARSERS)))
def test_property_arbitrary_bytes_never_raise(lines: list[bytes], fmt: str) -> None:
    check_invariants(PARSERS[fmt].parse(lines), lines)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(json_dicts, max_size=10),
    extra=st.lists(
        st.sampled_from([b"", b"{", b"[1]", b"\xff", COMBINED, b"{}", b"{} {}", b' {"a":1}']), max_size=3
    ),
    fmt=st.sampled_from(sorted(PARSERS)),
)
def test_property_hostile_json_never_raises(
    docs: list[dict[str, object]], extra: list[bytes], fmt: str
) -> None:
    lines = [
        json.dumps(d, ensure_ascii=bool(i % 2)).encode("utf-8", "surrogatepass") for i, d in enumerate(docs)
    ]
    lines += extra
    result = PARSERS[fmt].parse(lines)
    check_invariants(result, lines)
    # whatever is accepted satisfies the contract
    recs = result.records
    if recs.height:
        assert recs["ts"].is_between(946684800.0, 4102444800.0, closed="left").all()
        assert recs["status"].is_between(100, 599).all()
        assert recs["method"].str.contains(r"^[A-Z]{1,20}$").all()
        assert (
            recs.select(
                pl.col(c).is_null().sum() for c in ("ts", "ip", "method", "path", "status")
            ).sum_horizontal()[0]
            == 0
        )


@settings(max_examples=100, deadline=None)
@given(
    ts=st.floats(min_value=946684800.0, max_value=4102444799.0),
    ip=st.ip_addresses(),
    status=st.integers(100, 599),
    nbytes=st.integers(0, 2**40),
    path=st.text(min_size=0, max_size=20).map(lambda s: "/" + s),
)
def test_property_valid_records_round_trip(
    ts: float, ip: object, status: int, nbytes: int, path: str
) -> None:
    rec = one_record(jline(ts=ts, ip=str(ip), method="GET", path=path, status=status, bytes=nbytes))
    import ipaddress

    addr = ipaddress.ip_address(str(ip))
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    assert rec["ip"] == str(addr)
    assert rec["ts"] == pytest.approx(ts, abs=1e-3)
    assert (rec["path"], rec["status"], rec["bytes"]) == (path, status, nbytes)


# --------------------------------------------------------------------------------------------------
# the real file
# --------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not REAL_LOG.exists(), reason="shared data not present")
@pytest.mark.parametrize("fmt", ["auto", "combined"])
def test_real_apache_log(fmt: str) -> None:
    lines = REAL_LOG.read_bytes().splitlines(keepends=True)
    assert len(lines) == 10_000
    result = parse(lines, fmt)
    # Exactly one line is rejected: line 8899 (index 8898), whose User-Agent is cut off without its
    # closing quote ('... "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html'),
    # so it is neither a complete combined line nor a common one.
    assert [(r.index, r.reason) for r in result.rejected] == [(8898, "unrecognised_format")]
    assert result.rejected[0].raw.startswith(b"46.118.127.106 - - [20/May/2015:12:05:17 +0000]")
    assert not result.rejected[0].raw.rstrip().endswith(b'"')
    recs = result.records
    assert recs.height == 9_999
    assert recs["ip"].n_unique() == 1_753  # as the data README says
    assert recs["ts"].min() == datetime(2015, 5, 17, 10, 5, tzinfo=UTC).timestamp()
    assert recs["ts"].max() == datetime(2015, 5, 20, 21, 5, 59, tzinfo=UTC).timestamp()
    assert dict(recs["method"].value_counts().iter_rows()) == {
        "GET": 9_951,
        "HEAD": 42,
        "POST": 5,
        "OPTIONS": 1,
    }
    assert recs["path"].str.starts_with("/").all()
    assert (
        recs.select(pl.sum_horizontal(pl.col("ts", "ip", "method", "path", "status").null_count())).item()
        == 0
    )
    # "-" User-Agents (190 lines) and referers (4,072 lines, grep '"-" "[^"]*"$') are null
    assert (recs["ua"].null_count(), recs["referer"].null_count()) == (190, 4_072)
    assert recs["bytes"].null_count() == 669  # Apache logs "-" for an empty body (awk '$10=="-"')
    first = recs.row(0, named=True)
    assert first["ts"] == COMBINED_TS and first["bytes"] == 203023
    assert first["path"] == "/presentations/logstash-monitorama-2013/images/kibana-search.png"


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_an_alias_anywhere_in_the_batch_is_read_like_alone(fmt: str) -> None:
    """Batches without alias names are read with the canonical columns only; one aliased line (or a
    key spelled with a \\u escape) anywhere in the batch still gets every column."""
    aliased = [
        jline(ts=TS, remote_addr="5.6.7.8", method="GET", path="/a", status=200),
        b'{"ts": 1714564800, "remote\\u005faddr": "9.9.9.9", "method": "GET", "path": "/b", "status": 200}',
        jline(ts=TS, ip="1.2.3.4", request_method="POST", path="/c", status=201, http_user_agent="x"),
    ]
    plain = [jline(**ok(path=f"/p{i}", ua="curl/8")) for i in range(5)]
    for line in aliased:
        alone = parse([line], fmt)
        batch = parse([*plain, line, *plain], fmt)
        assert not alone.rejected and not batch.rejected
        assert batch.records.row(5) == alone.records.row(0)
        assert batch.records.slice(0, 5).equals(parse(plain, fmt).records)


def test_iso_utc_fast_path_matches_the_general_parser() -> None:
    from abuse_stream.ingest.parse import _ISO_FMT, _parse_iso_utc, _parse_ts, _strptime_epoch

    values = [
        "2026-11-01T00:00:00Z",
        "2026-11-01T23:59:59.5Z",
        "2024-02-29T12:00:00.123456789Z",
        "2000-01-01T00:00:00.000Z",
    ]
    s = pl.Series(values)
    assert _parse_iso_utc(s) is not None
    assert _parse_iso_utc(s).equals(_strptime_epoch(s, _ISO_FMT))  # type: ignore[union-attr]
    assert _parse_ts(s).to_list() == _strptime_epoch(s, _ISO_FMT).to_list()
    # anything else (an offset, an impossible date, a number, a null) takes the general path
    for odd in ("2026-11-01T00:00:00+01:00", "2023-02-29T00:00:00Z", "1714564800", None):
        assert _parse_iso_utc(pl.Series([*values, odd])) is None
    assert _parse_ts(pl.Series(["2023-02-29T00:00:00Z", "2026-11-01T00:00:00Z"])).to_list() == [
        None,
        datetime(2026, 11, 1, tzinfo=UTC).timestamp(),
    ]


@pytest.mark.parametrize("digits", [None, *range(10)])
def test_iso_utc_fast_path_reads_every_fraction_length_as_strptime_does(digits: int | None) -> None:
    """Whole seconds and the fraction are read apart (a batch of one length takes a fixed slice; a mix
    pads); both must give strptime's microseconds (truncated, not rounded) and so the same floats."""
    from abuse_stream.ingest.parse import _ISO_FMT, _parse_iso_utc, _strptime_epoch

    rng = random.Random(digits)
    values = []
    for _ in range(500):
        whole = datetime.fromtimestamp(rng.randrange(946_684_800, 4_102_444_800), UTC)
        k = rng.randrange(10) if digits is None else digits
        fraction = "." + "".join(rng.choice("0123456789") for _ in range(k)) if k else ""
        values.append(whole.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z")
    values += ["2026-11-01T00:00:00.9999999Z", "2026-12-31T23:59:59.999999999Z"] if digits is None else []
    s = pl.Series(values)
    fast = _parse_iso_utc(s)
    assert fast is not None
    assert fast.to_list() == _strptime_epoch(s, _ISO_FMT).to_list()
    # a leap second is left to the general path
    assert _parse_iso_utc(pl.Series([*values, "2016-12-31T23:59:60Z"])) is None


def test_ip_batch_written_canonically_is_kept_as_is() -> None:
    from abuse_stream.ingest.parse import _normalise_ips

    canonical = pl.Series(["2001:db8::1", "1.2.3.4", None, "fe80::1%eth0", "::1"] * 5)
    assert _normalise_ips(canonical).to_list() == canonical.to_list()
    # one value written otherwise: rewritten, and the rest as before
    mixed = pl.Series([*canonical.to_list(), "2001:DB8::1", "::ffff:1.2.3.4", "nope"])
    assert _normalise_ips(mixed).to_list() == [*canonical.to_list(), "2001:db8::1", "1.2.3.4", None]


def test_ip_check_per_distinct_value_matches_per_row() -> None:
    from abuse_stream.ingest.parse import _normalise_ips

    values = ["1.2.3.4", None, "::ffff:1.2.3.4", "300.1.1.1", "x", "2001:db8::1", "01.2.3.4", ""]
    many = pl.Series(values * 10)  # few distinct values: checked once each
    assert (
        _normalise_ips(many).to_list()
        == [_normalise_ips(pl.Series([v], dtype=pl.String))[0] for v in values] * 10
    )
