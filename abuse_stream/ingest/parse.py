"""Raw access-log lines (bytes) -> canonical records + rejected lines (contracts §1).

One batch of lines is parsed with vectorised polars operations; Python runs per line only for lines
that are already known to be bad (and in the fallback that finds them):

* every line is classified first: ``too_long``, ``invalid_utf8``, ``empty``, JSON (first non-space
  character ``{``) or text, according to the chosen format;
* JSON lines go through :func:`polars.read_ndjson` with an all-``String`` schema (numbers and nested
  values arrive as text), text lines through ``str.extract_groups`` with the format's regex;
* both end up as a frame of raw string columns named like nginx/Envoy/canonical fields, and one
  function (:func:`_normalise`) turns that into the canonical frame plus rejects, whatever the format.

Rules worth knowing (tested in ``tests/ingest/test_parse.py``):

* the first failing required field decides the reason, checked in the order ts, ip, method, path,
  status, then the optional ``bytes`` and ``latency_ms`` (``bad_field``);
* canonical names win over aliases when both are present (non-null); for optional fields ``"-"`` and
  ``""`` mean absent (and let a lower-priority alias through); for required fields they are bad values;
* a nested JSON object/array in an *optional* field is treated as absent (the record is kept: the
  line is not dropped because of a field we can live without); in a required field it is rejected with
  that field's reason (``bad_timestamp``, ``bad_ip``, ``bad_method``, ``bad_field`` path,
  ``bad_status``);
* timestamps without an offset are taken as UTC; ``CONNECT host:port`` (authority-form) is accepted as a
  path besides ``/...``, ``*`` and absolute URLs.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec
import polars as pl

from abuse_stream.ingest.schema import CANONICAL_SCHEMA, Rejected, empty_records

__all__ = ["FORMATS", "LineParser", "ParseResult", "build_parser", "compile_log_format"]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("auto", "json", "combined", "common", "log_format")

# ---------------------------------------------------------------------------------------------------
# field names: canonical + aliases (nginx JSON log_format / Envoy JSON access log), highest priority
# first. ``request`` ("GET /x HTTP/1.1") and ``uri`` are handled in _normalise.
# ---------------------------------------------------------------------------------------------------
_TS_SOURCES = ("ts", "msec", "time_iso8601", "start_time", "time_local")
_IP_SOURCES = ("ip", "remote_addr")  # then downstream_remote_address (port stripped)
_METHOD_SOURCES = ("method", "request_method")  # then the method of `request`
_PATH_SOURCES = ("path", "request_uri")  # then the target of `request`, then `uri`
_STATUS_SOURCES = ("status", "response_code")
#: optional string fields: canonical -> sources
_OPTIONAL_STR: dict[str, tuple[str, ...]] = {
    "host": ("host", "http_host", "authority", "server_name"),
    "ua": ("ua", "http_user_agent", "user_agent"),
    "referer": ("referer", "http_referer"),
    "session": ("session",),
    "xff": ("xff", "http_x_forwarded_for", "x_forwarded_for"),
}
_BYTES_SOURCES = ("bytes", "body_bytes_sent", "bytes_sent")
#: latency sources and the factor to milliseconds (nginx logs seconds, Envoy milliseconds)
_LATENCY_SOURCES: tuple[tuple[str, float], ...] = (
    ("latency_ms", 1.0),
    ("request_time", 1000.0),
    ("duration", 1.0),
    ("upstream_response_time", 1000.0),
)

_OPTIONAL_SOURCES: tuple[str, ...] = (
    *(name for names in _OPTIONAL_STR.values() for name in names),
    *_BYTES_SOURCES,
    *(name for name, _ in _LATENCY_SOURCES),
)
#: every column name the JSON reader extracts (all as String)
ALL_SOURCE_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *CANONICAL_SCHEMA,
            *_TS_SOURCES,
            *_IP_SOURCES,
            "downstream_remote_address",
            *_METHOD_SOURCES,
            *_PATH_SOURCES,
            "request",
            "uri",
            *_STATUS_SOURCES,
            *_OPTIONAL_SOURCES,
        )
    )
)
_JSON_SCHEMA: dict[str, pl.DataType] = {name: pl.String() for name in ALL_SOURCE_NAMES}
#: the canonical names alone: what a batch needs when none of its lines names an alias (the usual case;
#: reading three dozen absent columns costs the JSON reader about half as much again)
_CANONICAL_JSON_SCHEMA: dict[str, pl.DataType] = {name: pl.String() for name in CANONICAL_SCHEMA}
#: a quoted alias name, or a \u escape (which could spell one inside a key)
_ALIAS_KEY_RE = "|".join(re.escape(f'"{n}"') for n in ALL_SOURCE_NAMES if n not in CANONICAL_SCHEMA) + r"|\\u"

# ---------------------------------------------------------------------------------------------------
# validation patterns (Rust regex syntax for polars)
# ---------------------------------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"
#: candidates worth handing to ``ipaddress`` (everything else is certainly not an address)
_IP_CANDIDATE_RE = r"^[0-9A-Fa-f:.]{2,45}(?:%[0-9A-Za-z_.\-]{1,32})?$"
_METHOD_RE = r"^[A-Z]{1,20}$"
_PATH_RE = r"^(?:/|\*$|[A-Za-z][A-Za-z0-9+.\-]*://)"
_AUTHORITY_RE = r"^[^/\s]+:[0-9]{1,5}$"
_PROTOCOL_SUFFIX_RE = r" +HTTP/[0-9.]+$"

_TS_MIN = 946684800.0  # 2000-01-01T00:00:00Z
_TS_MAX = 4102444800.0  # 2100-01-01T00:00:00Z (exclusive)
_EPOCH_MS_THRESHOLD = 1e11

# ---------------------------------------------------------------------------------------------------
# text formats
# ---------------------------------------------------------------------------------------------------
_Q = r'(?:[^"\\]|\\.)*'  # a quoted field's content: no bare quote, backslash escapes allowed
_COMBINED_RE = (
    rf"^(?P<remote_addr>\S+) (?P<ident>\S+) (?P<remote_user>\S+) \[(?P<time_local>[^\]]*)\] "
    rf'"(?P<request>{_Q})" (?P<status>\S+) (?P<body_bytes_sent>\S+) '
    rf'"(?P<http_referer>{_Q})" "(?P<http_user_agent>{_Q})"(?:\s[\s\S]*)?$'
)
_COMMON_RE = (
    rf"^(?P<remote_addr>\S+) (?P<ident>\S+) (?P<remote_user>\S+) \[(?P<time_local>[^\]]*)\] "
    rf'"(?P<request>{_Q})" (?P<status>\S+) (?P<body_bytes_sent>\S+)\s*$'
)


@dataclass(frozen=True)
class _TextFormat:
    name: str
    regex: str
    #: groups whose content may carry backslash escapes (\" and \\) to undo
    quoted: tuple[str, ...]
    #: a group that always participates in a match (null => no match)
    anchor: str


_COMBINED = _TextFormat(
    "combined", _COMBINED_RE, ("request", "http_referer", "http_user_agent"), "remote_addr"
)
_COMMON = _TextFormat("common", _COMMON_RE, ("request",), "remote_addr")

#: unquoted nginx variables whose values contain spaces
_SPECIAL_VAR_PATTERNS = {
    "time_local": r"[^\s\]]+ [+\-][0-9]{4}",
    "upstream_response_time": r"\S+(?:(?:, | : )\S+)*",
    "upstream_connect_time": r"\S+(?:(?:, | : )\S+)*",
    "upstream_header_time": r"\S+(?:(?:, | : )\S+)*",
    "upstream_status": r"\S+(?:(?:, | : )\S+)*",
    "upstream_addr": r"\S+(?:(?:, | : )\S+)*",
}
_VAR_RE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def _unwrap_nginx_quotes(fmt: str) -> str:
    """``'a' 'b';`` (nginx config syntax, possibly several strings) -> ``ab``; other input unchanged."""
    s = fmt.strip().rstrip(";").strip()
    if not s.startswith("'"):
        return fmt
    parts = re.findall(r"'((?:[^'\\]|\\.)*)'", s)
    rest = re.sub(r"'((?:[^'\\]|\\.)*)'", "", s).strip()
    if not parts or rest:
        return fmt
    return "".join(parts)


def compile_log_format(log_format: str) -> _TextFormat:
    """Compile an nginx-style ``log_format`` string to a regex with one named group per variable.

    Raises ValueError naming the problem when the format cannot be used.
    """
    if not isinstance(log_format, str) or not log_format.strip():
        raise ValueError("log_format is empty")
    fmt = _unwrap_nginx_quotes(log_format)
    if fmt.count("${") != len(re.findall(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", fmt)):
        raise ValueError(f"log_format {log_format!r}: malformed ${{...}} variable")
    pieces: list[str] = []
    seen: set[str] = set()
    quoted: list[str] = []
    pos = 0
    in_quotes = False
    matches = list(_VAR_RE.finditer(fmt))
    if not matches:
        raise ValueError(f"log_format {log_format!r} contains no $variables")
    for m in matches:
        literal = fmt[pos : m.start()]
        if "$" in literal:
            raise ValueError(
                f"log_format {log_format!r}: '$' at offset {pos + literal.index('$')} "
                "is not followed by a variable name"
            )
        pieces.append(re.escape(literal))
        in_quotes ^= literal.count('"') % 2 == 1
        name = m.group("braced") or m.group("plain")
        nxt = fmt[m.end() : m.end() + 1]
        if in_quotes and nxt == '"':
            pat = _Q
            quoted_group = True
        elif in_quotes:
            pat = r'[^"\s]*'
            quoted_group = False
        elif nxt == "]":
            pat = r"[^\]]*"
            quoted_group = False
        else:
            pat = _SPECIAL_VAR_PATTERNS.get(name, r"\S+")
            quoted_group = False
        if name in seen:  # a repeated variable: match it, capture only the first occurrence
            pieces.append(f"(?:{pat})")
        else:
            seen.add(name)
            pieces.append(f"(?P<{name}>{pat})")
            if quoted_group:
                quoted.append(name)
        pos = m.end()
    tail = fmt[pos:]
    if "$" in tail:
        raise ValueError(f"log_format {log_format!r}: '$' at the end is not followed by a variable name")
    pieces.append(re.escape(tail))
    regex = "^" + "".join(pieces) + r"\s*$"
    # the required fields must be obtainable from some variable
    providers = {
        "ts": set(_TS_SOURCES),
        "ip": set(_IP_SOURCES) | {"downstream_remote_address"},
        "method": set(_METHOD_SOURCES) | {"request"},
        "path": set(_PATH_SOURCES) | {"request", "uri"},
        "status": set(_STATUS_SOURCES),
    }
    for field, names in providers.items():
        if not names & seen:
            raise ValueError(
                f"log_format {log_format!r} has no variable providing the required field {field!r} "
                f"(one of {', '.join('$' + n for n in sorted(names))})"
            )
    try:
        re.compile(regex)
        pl.Series([""], dtype=pl.String).str.extract_groups(regex)
    except Exception as exc:  # pragma: no cover - escaping above should make this unreachable
        raise ValueError(f"log_format {log_format!r} does not compile to a regex: {exc}") from exc
    first = _VAR_RE.search(fmt)
    assert first is not None
    anchor = first.group("braced") or first.group("plain")
    return _TextFormat("log_format", regex, tuple(quoted), anchor)


# ---------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParseResult:
    """``records``: exactly CANONICAL_SCHEMA, one row per accepted line, input order.
    ``rejected``: one per rejected line, sorted by ``index`` (position in the input batch)."""

    records: pl.DataFrame
    rejected: list[Rejected]


class LineParser(Protocol):
    def parse(self, lines: Sequence[bytes]) -> ParseResult: ...


def build_parser(fmt: str = "auto", log_format: str | None = None, max_line_bytes: int = 65536) -> LineParser:
    """A parser for ``fmt`` (one of :data:`FORMATS`).

    ``auto`` sniffs each line (``{`` -> JSON, else text tried as ``log_format`` if given, then
    combined, then common); ``combined`` accepts combined and common lines; ``common`` and
    ``log_format`` only their own. Raises ValueError for an unknown format, a missing or unusable
    ``log_format``, or a non-positive ``max_line_bytes``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not isinstance(max_line_bytes, int) or max_line_bytes <= 0:
        raise ValueError(f"max_line_bytes must be a positive integer, got {max_line_bytes!r}")
    user = None
    if fmt == "log_format":
        if not log_format:
            raise ValueError("format 'log_format' requires a log_format string")
    if log_format:
        user = compile_log_format(log_format)
    if fmt == "json":
        text_formats: tuple[_TextFormat, ...] = ()
    elif fmt == "combined":
        text_formats = (_COMBINED, _COMMON)
    elif fmt == "common":
        text_formats = (_COMMON,)
    elif fmt == "log_format":
        assert user is not None
        text_formats = (user,)
    else:
        text_formats = ((user,) if user else ()) + (_COMBINED, _COMMON)
    return _Parser(fmt, text_formats, max_line_bytes)


# ---------------------------------------------------------------------------------------------------
# implementation
# ---------------------------------------------------------------------------------------------------
class _BatchFailure(Exception):
    """polars failed (error or panic) on a batch; the caller falls back to smaller pieces."""


def _guard(fn, *args, **kwargs):
    """Run a polars call, turning any failure (including a PanicException, a BaseException) into
    _BatchFailure; KeyboardInterrupt/SystemExit pass through."""
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - polars panics derive from BaseException
        raise _BatchFailure(f"{type(exc).__name__}: {exc}") from exc


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_Rej = tuple[int, str, str]  # (index, reason, detail)


class _Parser:
    def __init__(self, fmt: str, text_formats: tuple[_TextFormat, ...], max_line_bytes: int) -> None:
        self.fmt = fmt
        self.text_formats = text_formats
        self.max_line_bytes = max_line_bytes
        self.json_enabled = fmt in ("auto", "json")

    def __repr__(self) -> str:
        names = ", ".join(t.name for t in self.text_formats)
        return f"<LineParser fmt={self.fmt!r} text=[{names}] max_line_bytes={self.max_line_bytes}>"

    # -- entry point ---------------------------------------------------------------------------------
    def parse(self, lines: Sequence[bytes]) -> ParseResult:
        lines = list(lines)
        if not lines:
            return ParseResult(empty_records(), [])
        try:
            records, rejects = self._parse_batch(lines)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - never let bad input stop the pipeline
            log.warning(
                "batch parse failed (%s: %s); parsing %d lines one by one",
                type(exc).__name__,
                exc,
                len(lines),
            )
            records, rejects = self._parse_one_by_one(lines)
        rejects.sort()
        rejected = [Rejected(i, _raw_bytes(lines[i]), reason, detail) for i, reason, detail in rejects]
        return ParseResult(records, rejected)

    def _parse_one_by_one(self, lines: list[bytes]) -> tuple[pl.DataFrame, list[_Rej]]:
        """Last resort when a whole batch failed: each line alone, a failing line is rejected."""
        frames: list[pl.DataFrame] = []
        rejects: list[_Rej] = []
        for i, line in enumerate(lines):
            try:
                rec, rej = self._parse_batch([line])
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001
                looks_json = self.json_enabled and _raw_bytes(line).lstrip().startswith(b"{")
                reason = "invalid_json" if looks_json else "unrecognised_format"
                rejects.append((i, reason, f"parser error: {_short(str(exc))}"))
                continue
            frames.append(rec)
            rejects.extend((i, reason, detail) for _, reason, detail in rej)
        records = pl.concat(frames, how="vertical") if frames else empty_records()
        return records, rejects

    # -- one batch -----------------------------------------------------------------------------------
    def _parse_batch(self, lines: list[bytes]) -> tuple[pl.DataFrame, list[_Rej]]:
        n = len(lines)
        rejects: list[_Rej] = []
        raw = _guard(pl.Series, "raw", lines, dtype=pl.Binary, strict=False)

        # too long (the line terminator does not count)
        size = raw.bin.size()
        if (size > self.max_line_bytes).any():
            term = raw.bin.ends_with(b"\r\n").cast(pl.Int64) + (
                raw.bin.ends_with(b"\n") | raw.bin.ends_with(b"\r")
            ).cast(pl.Int64)
            too_long = ((size - term) > self.max_line_bytes).fill_null(False)
            for i in too_long.arg_true().to_list():
                length = int(size[i]) - int(term[i])
                rejects.append((i, "too_long", f"{length} bytes > max_line_bytes {self.max_line_bytes}"))
            raw = raw.set(too_long, None)

        # UTF-8: one vectorised cast; only if it fails, find the bad lines one by one
        try:
            text = raw.cast(pl.String)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001
            decoded: list[str | None] = []
            for i, value in enumerate(raw.to_list()):
                if value is None:
                    decoded.append(None)
                    continue
                try:
                    decoded.append(value.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    decoded.append(None)
                    rejects.append(
                        (i, "invalid_utf8", f"byte 0x{value[exc.start]:02x} at offset {exc.start}")
                    )
            text = pl.Series("raw", decoded, dtype=pl.String)

        rejected = pl.repeat(False, n, dtype=pl.Boolean, eager=True)
        if rejects:
            rejected = rejected.scatter([i for i, _, _ in rejects], True)
        # sniff: a line starting with '{' is a JSON candidate. Only lines that are empty or start with
        # (ASCII) whitespace can be blank or hold JSON after leading blanks: regexes run on those alone.
        brace = raw.bin.starts_with(b"{").fill_null(False)
        if brace.all():  # every line is a JSON candidate: none is blank or starts with a blank
            maybe = pl.repeat(False, n, dtype=pl.Boolean, eager=True)
        else:
            maybe = (size == 0).fill_null(True)
            for ws in (b" ", b"\t", b"\r", b"\n", b"\x0b", b"\x0c"):
                maybe = maybe | raw.bin.starts_with(ws).fill_null(False)
            maybe = maybe & ~rejected
        blank = pl.repeat(False, n, dtype=pl.Boolean, eager=True)
        lead = pl.repeat(False, n, dtype=pl.Boolean, eager=True)  # (scatter works in place: two series)
        if maybe.any():
            maybe_idx = maybe.arg_true()
            sub = text.gather(maybe_idx)
            blank = blank.scatter(
                maybe_idx.filter(sub.str.contains(r"^[ \t\r\n\x0b\x0c]*$").fill_null(True)), True
            )
            lead = lead.scatter(
                maybe_idx.filter(sub.str.contains(r"^[ \t\r\n\x0b\x0c]*\{").fill_null(False)), True
            )
        for i in blank.arg_true().to_list():
            rejects.append((i, "empty", "blank line"))
        usable = ~rejected & ~blank

        if self.fmt == "json":
            is_json = usable & (brace | lead)
            not_obj = usable & ~is_json  # cannot be a JSON object: say why
            for i in not_obj.arg_true().to_list():
                rejects.append(_classify_bad_json(i, lines[i]))
            is_text = None
        elif self.json_enabled:  # auto
            is_json = usable & (brace | lead)
            is_text = usable & ~is_json
        else:
            is_json = None
            is_text = usable

        frames: list[pl.DataFrame] = []
        if is_json is not None and is_json.any():
            frame = self._json_frame(lines, is_json, rejects, _json_schema(text, is_json))
            if frame is not None and frame.height:
                frames.append(frame)
        if is_text is not None and is_text.any():
            frame = self._text_frame(text, is_text.arg_true(), rejects)
            if frame is not None and frame.height:
                frames.append(frame)
        if not frames:
            return empty_records(), rejects
        rawdf = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal").sort("__idx")
        records = _normalise(rawdf, rejects)
        return records, rejects

    # -- JSON ----------------------------------------------------------------------------------------
    def _json_frame(
        self,
        lines: list[bytes],
        mask: pl.Series,
        rejects: list[_Rej],
        schema: dict[str, pl.DataType] = _JSON_SCHEMA,
    ) -> pl.DataFrame | None:
        if mask.all():
            idx = pl.int_range(0, len(lines), dtype=pl.Int64, eager=True).alias("__idx")
            blob = b"\n".join(lines)
        else:
            idx = mask.arg_true().cast(pl.Int64).alias("__idx")
            blob = b"\n".join([lines[i] for i in idx.to_list()])
        frame = _read_json_lines(blob, lines, idx, schema, rejects)
        if frame is None or frame.height == 0:
            return None
        return _drop_nested_optional(frame, lines)

    # -- text ----------------------------------------------------------------------------------------
    def _text_frame(self, text: pl.Series, idx: pl.Series, rejects: list[_Rej]) -> pl.DataFrame | None:
        remaining = pl.DataFrame({"__idx": idx.cast(pl.Int64), "__line": text.gather(idx)})
        frames: list[pl.DataFrame] = []
        for tf in self.text_formats:
            if remaining.height == 0:
                break
            groups = _guard(remaining.get_column("__line").str.extract_groups, tf.regex).struct.unnest()
            matched = groups.get_column(tf.anchor).is_not_null()
            if matched.any():
                got = groups.filter(matched) if not matched.all() else groups
                got = got.with_columns(remaining.get_column("__idx").filter(matched).alias("__idx"))
                unescape = [
                    pl.col(c).str.replace_all(r'\\(["\\])', "${1}")
                    for c in tf.quoted
                    if c in got.columns and got.get_column(c).str.contains("\\", literal=True).any()
                ]
                if unescape:
                    got = got.with_columns(unescape)
                frames.append(got.select([c for c in got.columns if c in _JSON_SCHEMA or c == "__idx"]))
                remaining = remaining.filter(~matched)
        if remaining.height:
            names = "/".join(tf.name for tf in self.text_formats)
            for i, line in remaining.iter_rows():
                shown = _short(line.rstrip("\r\n"), 60)
                rejects.append((i, "unrecognised_format", f"matches no {names} format: {shown!r}"))
        if not frames:
            return None
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal").sort("__idx")


_JSON_ERRORS = (msgspec.DecodeError, ValueError, RecursionError, UnicodeDecodeError)


def _raw_bytes(line: object) -> bytes:
    if isinstance(line, bytes):
        return line
    if isinstance(line, bytearray | memoryview):
        return bytes(line)
    if line is None:
        return b""
    if isinstance(line, str):
        return line.encode("utf-8", "surrogateescape")
    return repr(line).encode()


def _json_schema(text: pl.Series, mask: pl.Series) -> dict[str, pl.DataType]:
    """The columns the JSON reader extracts for the lines of ``text`` selected by ``mask``: the
    canonical ones when no such line can name an alias (a superset of what it needs), else all."""
    lines = text if mask.all() else text.filter(mask)
    return _JSON_SCHEMA if lines.str.contains(_ALIAS_KEY_RE).any() else _CANONICAL_JSON_SCHEMA


def _classify_bad_json(index: int, line: bytes) -> _Rej:
    """invalid_json / not_object for one line that is known not to be a JSON object."""
    try:
        value = msgspec.json.decode(_raw_bytes(line))
    except _JSON_ERRORS as exc:
        return (index, "invalid_json", _short(str(exc), 100))
    if isinstance(value, dict):  # pragma: no cover - callers only pass non-objects
        return (index, "invalid_json", "object rejected by the batch reader")
    return (index, "not_object", f"JSON {type(value).__name__}, expected an object")


def _read_ndjson(blob: bytes, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return _guard(pl.read_ndjson, io.BytesIO(blob), schema=schema)


def _read_json_lines(
    blob: bytes, lines: list[bytes], idx: pl.Series, schema: dict[str, pl.DataType], rejects: list[_Rej]
) -> pl.DataFrame | None:
    """read_ndjson on the joined lines; on failure find the bad lines (msgspec) and re-read the rest.

    Blank lines are already gone, and read_ndjson skips the empty lines a trailing newline leaves, so
    ``height == len(idx)`` means the rows line up with the input lines (``idx``: their positions).
    """
    try:
        frame = _read_ndjson(blob, schema)
        if frame.height == idx.len():
            return frame.with_columns(idx.alias("__idx"))
    except _BatchFailure:
        pass
    good_idx: list[int] = []
    good: list[bytes] = []
    for i in idx.to_list():
        line = _raw_bytes(lines[i])
        try:
            value = msgspec.json.decode(line)
        except _JSON_ERRORS as exc:
            rejects.append((i, "invalid_json", _short(str(exc), 100)))
            continue
        if not isinstance(value, dict):
            rejects.append((i, "not_object", f"JSON {type(value).__name__}, expected an object"))
            continue
        good_idx.append(i)
        # raw newlines inside a valid object are whitespace: make it one line for the batch reader
        good.append(line.replace(b"\r", b" ").replace(b"\n", b" ") if b"\n" in line else line)
    if not good_idx:
        return None
    try:
        frame = _read_ndjson(b"\n".join(good), schema)
        if frame.height == len(good_idx):
            return frame.with_columns(pl.Series("__idx", good_idx, dtype=pl.Int64))
    except _BatchFailure:
        pass
    # the two JSON readers disagree about some line: read each alone (pathological batches only)
    parts: list[pl.DataFrame] = []
    for i, line in zip(good_idx, good, strict=True):
        try:
            one = _read_ndjson(line, schema)
        except _BatchFailure as exc:
            rejects.append((i, "invalid_json", _short(str(exc), 100)))
            continue
        if one.height != 1:
            rejects.append((i, "invalid_json", "not exactly one JSON object"))
            continue
        parts.append(one.with_columns(pl.lit(i, dtype=pl.Int64).alias("__idx")))
    return pl.concat(parts, how="vertical") if parts else None


_NESTED_KEY_RE = {
    name: re.compile(rb'"' + re.escape(name.encode()) + rb'"\s*:\s*[\[{]') for name in _OPTIONAL_SOURCES
}


def _drop_nested_optional(frame: pl.DataFrame, lines: list[bytes]) -> pl.DataFrame:
    """Null optional fields whose JSON value was an object/array (polars hands those over as JSON text).

    A string value may start with '{' or '[' too (a hostile User-Agent, say): only the raw line tells
    them apart, so the (rare) candidates are confirmed on the raw line: ``"key": {`` or ``"key": [``
    cannot occur inside a JSON string, where every quote is escaped.
    """
    present = [
        c for c in _OPTIONAL_SOURCES if c in frame.columns and frame.get_column(c).null_count() < frame.height
    ]
    if not present:
        return frame
    cand = frame.select(
        (pl.col(c).str.starts_with("{") | pl.col(c).str.starts_with("[")).fill_null(False).alias(c)
        for c in present
    )
    fixes = []
    idx = frame.get_column("__idx")
    for c in present:
        mask = cand.get_column(c)
        if not mask.any():
            continue
        rows = mask.arg_true().to_list()
        nested_rows = [r for r in rows if _NESTED_KEY_RE[c].search(_raw_bytes(lines[idx[r]]))]
        if nested_rows:
            nested = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True).scatter(nested_rows, True)
            fixes.append(pl.when(nested).then(None).otherwise(pl.col(c)).alias(c))
    return frame.with_columns(fixes) if fixes else frame


# ---------------------------------------------------------------------------------------------------
# normalisation: raw string columns (nginx / Envoy / canonical names) -> canonical frame + rejects
# ---------------------------------------------------------------------------------------------------
def _present(df: pl.DataFrame, name: str) -> bool:
    return name in df.columns and df.get_column(name).null_count() < df.height


def _dash_null(e: pl.Expr) -> pl.Expr:
    return pl.when(e.is_in(["-", ""])).then(None).otherwise(e)


def _coalesce(df: pl.DataFrame, names: Sequence[str], optional: bool) -> pl.Expr:
    exprs = [(_dash_null(pl.col(n)) if optional else pl.col(n)) for n in names if _present(df, n)]
    if not exprs:
        return pl.lit(None, dtype=pl.String)
    return exprs[0] if len(exprs) == 1 else pl.coalesce(exprs)


_UTC = pl.Datetime("us", "UTC")
_ISO_FMT = "%Y-%m-%dT%H:%M:%S%.f%#z"  # %#z: Z, z, +HH:MM or +HHMM
_ISO_NAIVE_FMT = "%Y-%m-%dT%H:%M:%S%.f"
_CLF_FMT = "%d/%b/%Y:%H:%M:%S %z"


def _strptime_epoch(s: pl.Series, fmt: str, naive: bool = False) -> pl.Series:
    dtype = pl.Datetime("us") if naive else _UTC
    parsed = s.str.strptime(dtype, fmt, strict=False, exact=True, cache=False)
    return parsed.dt.epoch("us").cast(pl.Float64) / 1e6


_ISO_UTC_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T")  # the first value, checked before the regex
#: seconds ``[0-5][0-9]``: a leap second (``:60``) takes the general path
_ISO_UTC_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](?:\.[0-9]{1,9})?Z$"


def _parse_iso_utc(raw: pl.Series) -> pl.Series | None:
    """The usual batch, every value ``YYYY-MM-DDTHH:MM:SS[.f]Z``, in one cheaper pass: the result
    :func:`_parse_ts` gives (such a value is no number, and ``Z`` is offset 0). None otherwise.

    The whole seconds are parsed from the first 19 characters (cached: a batch holds few distinct
    seconds), the fraction is read as digits and truncated to microseconds, as ``strptime`` does:
    the same microsecond count, so the same float, at less than half the cost of parsing every
    value whole."""
    if raw.len() == 0 or raw.null_count() or not _ISO_UTC_PREFIX.match(raw[0]):
        return None
    if not raw.str.contains(_ISO_UTC_RE).all():
        return None
    whole = raw.str.slice(0, 19).str.strptime(
        pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False, exact=True, cache=True
    )
    lengths = raw.str.len_bytes()
    shortest, longest = lengths.min(), lengths.max()
    if shortest == longest:  # one spelling for the batch (the usual case): a fixed slice of digits
        digits = min(6, max(0, int(shortest) - 21))  # type: ignore[arg-type]
        micro = (
            pl.repeat(0, raw.len(), dtype=pl.Int64, eager=True)
            if digits == 0
            else raw.str.slice(20, digits).cast(pl.Int64) * 10 ** (6 - digits)
        )
    else:
        micro = raw.str.slice(20).str.strip_suffix("Z").str.pad_end(6, "0").str.slice(0, 6).cast(pl.Int64)
    out = (whole.dt.epoch("us") + micro).cast(pl.Float64) / 1e6
    return None if out.null_count() else out


def _parse_ts(raw: pl.Series) -> pl.Series:
    """Timestamps (strings) -> epoch seconds (Float64), null when unparseable.

    Accepted: epoch seconds (number or numeric string; > 1e11 means milliseconds), ISO 8601 / RFC 3339
    ``YYYY-MM-DD[T ]HH:MM:SS[.f][Z|±HH:MM|±HHMM]`` (no offset = UTC) and nginx ``$time_local``
    ``DD/Mon/YYYY:HH:MM:SS ±HHMM``. Each format only sees the values the earlier ones left; the usual
    format of the batch (judged by its first value) is tried first.
    """
    fast = _parse_iso_utc(raw)
    if fast is not None:
        return fast
    num = raw.cast(pl.Float64, strict=False)
    out = pl.select(pl.when(num.abs() > _EPOCH_MS_THRESHOLD).then(num / 1000.0).otherwise(num)).to_series()
    rest = raw.set(out.is_not_null(), None)
    if rest.null_count() == rest.len():
        return out
    first = rest.drop_nulls()[0]
    attempts = [(_ISO_FMT, False), (_CLF_FMT, False)]
    if first[2:3] == "/":
        attempts.reverse()
    attempts.append((_ISO_NAIVE_FMT, True))
    normalised = False
    for fmt, naive in attempts:
        if fmt == _ISO_NAIVE_FMT and not normalised:
            # rarer ISO spellings: a space (or lowercase t) between date and time, then retry
            rest = rest.str.replace(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[ t]", "${1}T")
            parsed = _strptime_epoch(rest, _ISO_FMT)
            out = out.fill_null(parsed)
            rest = rest.set(parsed.is_not_null(), None)
            normalised = True
            if rest.null_count() == rest.len():
                break
        parsed = _strptime_epoch(rest, fmt, naive)
        out = out.fill_null(parsed)
        rest = rest.set(parsed.is_not_null(), None)
        if rest.null_count() == rest.len():
            break
    return out


@functools.lru_cache(maxsize=65_536)
def _canonical_ip(value: str) -> str | None:
    """An address as ``ipaddress`` writes it (IPv6 compressed, IPv4-mapped -> IPv4); None if it is
    none. Cached: a gateway's IPv6 clients come back batch after batch (bounded: values are short)."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _normalise_ips(s: pl.Series) -> pl.Series:
    """IPv4 checked by regex; only the unique other values go through ``ipaddress`` (IPv6 compressed,
    IPv4-mapped -> IPv4). Null where not an address."""
    distinct = s.unique()
    v4 = distinct.str.contains(_IPV4_RE).fill_null(False)
    others = distinct.filter(~v4 & distinct.is_not_null())
    candidates = others.filter(others.str.contains(_IP_CANDIDATE_RE))
    keys: list[str] = []
    values: list[str] = []
    for v in candidates.to_list():
        addr = _canonical_ip(v)
        if addr is not None:
            keys.append(v)
            values.append(addr)
    if len(keys) == others.len() and keys == values:  # the usual batch: every address written as it should be
        return s
    if distinct.len() * 4 < s.len():  # few clients, many requests each
        is_v4 = s.is_in(distinct.filter(v4).implode()).fill_null(False)
    else:
        is_v4 = s.str.contains(_IPV4_RE).fill_null(False)
    if not keys:
        return s.set(~is_v4, None)
    mapped = s.replace_strict(keys, values, default=None, return_dtype=pl.String)
    return pl.select(pl.when(is_v4).then(s).otherwise(mapped)).to_series().alias(s.name)


def _latency(df: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """(raw text, value in ms) of the highest-priority latency source present. The value is NaN when
    the raw text is present but unusable, so that a bad value is reported rather than skipped."""
    raws: list[pl.Expr] = []
    values: list[pl.Expr] = []
    for name, factor in _LATENCY_SOURCES:
        if not _present(df, name):
            continue
        e = _dash_null(pl.col(name))
        value = e.cast(pl.Float64, strict=False)
        if name == "upstream_response_time":  # "0.010, 0.020" (several upstreams tried) -> the sum
            several = e.str.contains(r"^[0-9.]+(?:(?:, | : )[0-9.]+)+$")
            total = (
                e.str.extract_all(r"[0-9.]+")
                .list.eval(pl.element().cast(pl.Float64, strict=False))
                .list.sum()
            )
            value = pl.when(several).then(total).otherwise(value)
        if factor != 1.0:
            value = (value * factor).round(6)
        raws.append(e)
        values.append(pl.when(e.is_not_null()).then(value.fill_null(float("nan"))))
    if not raws:
        return pl.lit(None, dtype=pl.String), pl.lit(None, dtype=pl.Float64)
    if len(raws) == 1:
        return raws[0], values[0]
    return pl.coalesce(raws), pl.coalesce(values)


def _normalise(raw: pl.DataFrame, rejects: list[_Rej]) -> pl.DataFrame:
    """The one normalisation for every input format (see the module docstring for the rules).

    ``raw`` has ``__idx`` plus string columns named like canonical / nginx / Envoy fields. Returns the
    canonical frame; rejected rows are appended to ``rejects``.
    """
    df = raw
    # -- 1. the raw value of each canonical field (coalescing aliases) ---------------------------------
    ip = _coalesce(df, _IP_SOURCES, optional=False)
    if _present(df, "downstream_remote_address"):
        dra = pl.col("downstream_remote_address")
        dra = (
            pl.when(dra.str.contains(r"^\[[^\]]*\]:[0-9]+$"))
            .then(dra.str.extract(r"^\[([^\]]*)\]", 1))
            .when(dra.str.contains(r"^[0-9.]+:[0-9]+$"))
            .then(dra.str.extract(r"^([0-9.]+):", 1))
            .otherwise(dra)
        )
        ip = pl.coalesce(ip, dra)
    method = _coalesce(df, _METHOD_SOURCES, optional=False)
    path = _coalesce(df, _PATH_SOURCES, optional=False)
    if _present(df, "request"):  # "GET /x?y HTTP/1.1" (the path may contain spaces; the version may lack)
        parts = pl.col("request").str.splitn(" ", 2)
        method = pl.coalesce(method, parts.struct.field("field_0"))
        path = pl.coalesce(path, parts.struct.field("field_1").str.replace(_PROTOCOL_SUFFIX_RE, ""))
    if _present(df, "uri"):
        path = pl.coalesce(path, pl.col("uri"))
    lat_raw, lat = _latency(df)
    g = _guard(
        df.select,
        pl.col("__idx"),
        _coalesce(df, _TS_SOURCES, optional=False).alias("__ts_raw"),
        ip.alias("__ip_raw"),
        method.alias("__method_raw"),
        method.str.to_uppercase().alias("method"),
        path.alias("path"),
        _coalesce(df, _STATUS_SOURCES, optional=False).alias("__status_raw"),
        *[_coalesce(df, names, optional=True).alias(field) for field, names in _OPTIONAL_STR.items()],
        _coalesce(df, _BYTES_SOURCES, optional=True).alias("__bytes_raw"),
        lat_raw.alias("__lat_raw"),
        lat.alias("latency_ms"),
    )
    # -- 2. parse / validate ------------------------------------------------------------------------------
    g = g.with_columns(_guard(_parse_ts, g.get_column("__ts_raw")).alias("ts"))
    g = g.with_columns(_guard(_normalise_ips, g.get_column("__ip_raw")).alias("ip"))

    # status and bytes: integers as written, parsed as such; the float path (``"200.0"``, ``"1e3"``)
    # only for a batch where some value is not (every integer parses to the same float)
    st_raw, b_raw = pl.col("__status_raw"), pl.col("__bytes_raw")
    st_i = st_raw.cast(pl.Int32, strict=False)
    g = _guard(
        g.with_columns,
        pl.when(st_i.is_between(100, 599)).then(st_i).alias("status"),
        b_raw.cast(pl.Int64, strict=False).alias("bytes"),
    )
    redo = (st_raw.is_not_null() & pl.col("status").is_null()) | (
        b_raw.is_not_null() & pl.col("bytes").is_null()
    )
    if _guard(g.select, redo.any()).item():
        st_f = st_raw.cast(pl.Float64, strict=False)
        b_f = b_raw.cast(pl.Float64, strict=False)
        g = _guard(
            g.with_columns,
            pl.coalesce(
                pl.col("status"),
                pl.when(st_f.is_between(100, 599) & (st_f == st_f.floor())).then(st_f.cast(pl.Int32)),
            ),
            pl.coalesce(
                pl.col("bytes"),
                pl.when(b_f.is_between(0, 9.0e18) & (b_f == b_f.floor())).then(
                    b_f.cast(pl.Int64, strict=False)
                ),
            ),
        )
    m, p, lat_c = pl.col("method"), pl.col("path"), pl.col("latency_ms")
    path_ok = p.str.contains(_PATH_RE) | ((m == "CONNECT") & p.str.contains(_AUTHORITY_RE))
    checks: list[tuple[pl.Expr, str, str]] = [
        (pl.col("__ts_raw").is_null(), "missing_field", "ts"),
        (~pl.col("ts").is_between(_TS_MIN, _TS_MAX, closed="left").fill_null(False), "bad_timestamp", "ts"),
        (pl.col("__ip_raw").is_null(), "missing_field", "ip"),
        (pl.col("ip").is_null(), "bad_ip", "ip"),
        (m.is_null(), "missing_field", "method"),
        (~m.str.contains(_METHOD_RE).fill_null(False), "bad_method", "method"),
        (p.is_null(), "missing_field", "path"),
        (~path_ok.fill_null(False), "bad_field", "path"),
        (pl.col("__status_raw").is_null(), "missing_field", "status"),
        (pl.col("status").is_null(), "bad_status", "status"),
        (
            b_raw.is_not_null() & (pl.col("bytes").is_null() | (pl.col("bytes") < 0)).fill_null(True),
            "bad_field",
            "bytes",
        ),
        (
            lat_c.is_not_null() & (lat_c.is_nan() | lat_c.is_infinite() | (lat_c < 0)).fill_null(True),
            "bad_field",
            "latency_ms",
        ),
    ]
    code = pl.lit(None, dtype=pl.Int32)
    for k in reversed(range(len(checks))):
        code = pl.when(checks[k][0]).then(pl.lit(k, dtype=pl.Int32)).otherwise(code)
    g = _guard(g.with_columns, code.alias("__code"))

    is_bad = g.get_column("__code").is_not_null()
    if is_bad.any():
        bad = g.filter(is_bad)
        raw_of = {
            "ts": "__ts_raw",
            "ip": "__ip_raw",
            "method": "__method_raw",
            "path": "path",
            "status": "__status_raw",
            "bytes": "__bytes_raw",
            "latency_ms": "__lat_raw",
        }
        values = {k: bad.get_column(v).to_list() for k, v in raw_of.items()}
        codes = bad.get_column("__code").to_list()
        for row, i in enumerate(bad.get_column("__idx").to_list()):
            _, reason, field = checks[codes[row]]
            if reason == "missing_field":
                detail = f"{field} is absent"
            else:
                detail = f"{field}: {_short(values[field][row])!r} {_WHY[reason]}"
            rejects.append((i, reason, detail))
        g = g.filter(~is_bad)
    return g.select([pl.col(c).cast(t) for c, t in CANONICAL_SCHEMA.items()])


_WHY = {
    "bad_timestamp": "is not a timestamp in [2000-01-01, 2100-01-01)",
    "bad_ip": "is not an IPv4/IPv6 address",
    "bad_method": "is not an HTTP method (1-20 letters)",
    "bad_status": "is not an integer status 100..599",
    "bad_field": "is not usable",
}
