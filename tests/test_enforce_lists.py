"""IPLists (pure state of the compacted IP-list topic), the nginx include renderer and its atomic writer."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from abuse_stream.enforce import IPLists, NginxEnforcer, enforce_group, render_include, write_include
from abuse_stream.verdicts import rfc3339

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z


def change(lst: str, value: str, op: str = "add", expires: float | None = None, **extra: Any) -> dict:
    body = {
        "list": lst,
        "value": value,
        "op": op,
        "expires_at": rfc3339(expires),
        "reason": "scanner: probes",
        "bot_type": "scanner",
        "verdict_id": "v1",
        "source": "detector",
        "changed_at": rfc3339(T0),
    }
    body.update(extra)
    return body


def records(*changes: dict) -> list[tuple[str, dict | None]]:
    """What KafkaSink publishes: (key, value) per change, plus a tombstone after each remove."""
    out: list[tuple[str, dict | None]] = []
    for c in changes:
        key = f"{c['list']}:{c['value']}"
        out.append((key, c))
        if c["op"] == "remove":
            out.append((key, None))
    return out


def build(recs: list[tuple[str, dict | None]]) -> IPLists:
    lists = IPLists()
    for k, v in recs:
        lists.apply(k, v)
    return lists


def test_rebuild_from_sequence_with_tombstones() -> None:
    lists = build(
        records(
            change("denylist", "203.0.113.7"),
            change("graylist", "198.51.100.0/24", expires=T0 + 3600),
            change("denylist", "203.0.113.8"),
            change("denylist", "203.0.113.8", op="remove"),
            change("denylist", "192.0.2.1", expires=T0 + 60),
        )
    )
    assert lists.current(T0) == {
        "denylist": {"203.0.113.7": None, "192.0.2.1": T0 + 60},
        "graylist": {"198.51.100.0/24": T0 + 3600},
    }
    assert len(lists) == 3


def test_tombstone_alone_removes_and_unknown_tombstone_is_harmless() -> None:
    lists = build([("denylist:203.0.113.7", change("denylist", "203.0.113.7"))])
    assert lists.apply("denylist:203.0.113.7", None) is True
    assert lists.apply("denylist:203.0.113.7", None) is False  # already gone: no change
    assert lists.apply("graylist:192.0.2.9", None) is False
    assert lists.current(T0) == {"denylist": {}, "graylist": {}}
    assert lists.malformed == 0


def test_compacted_topic_gives_the_same_lists() -> None:
    """Compaction keeps the last record per key (and eventually drops tombstoned keys): same state."""
    full = records(
        change("denylist", "203.0.113.7", expires=T0 + 100),
        change("denylist", "203.0.113.7", op="extend", expires=T0 + 900),
        change("graylist", "2001:db8::/48"),
        change("graylist", "2001:db8::/48", op="remove"),
        change("denylist", "192.0.2.1"),
    )
    last: dict[str, dict | None] = {}
    for k, v in full:
        last.pop(k, None)
        last[k] = v
    compacted = [(k, v) for k, v in last.items() if v is not None]
    assert build(full).current(T0) == build(compacted).current(T0)
    assert build(compacted).current(T0)["denylist"] == {"203.0.113.7": T0 + 900, "192.0.2.1": None}


def test_expiry_is_by_the_time_passed_in() -> None:
    lists = build(
        records(
            change("denylist", "203.0.113.7", expires=T0 + 10),
            change("denylist", "203.0.113.8", expires=T0 + 20),
            change("graylist", "203.0.113.9"),
        )
    )
    assert lists.next_expiry() == T0 + 10
    assert lists.expire(T0 + 9.999) is False
    assert set(lists.current(T0 + 10)["denylist"]) == {"203.0.113.8"}  # current() hides lapsed entries
    assert lists.expire(T0 + 10) is True  # at expires_at: gone
    assert lists.expire(T0 + 10) is False
    assert lists.next_expiry() == T0 + 20
    assert lists.expire(T0 + 1e9) is True
    assert lists.next_expiry() is None
    assert lists.current(T0 + 1e9) == {"denylist": {}, "graylist": {"203.0.113.9": None}}


def test_extend_moves_the_expiry_and_makes_permanent() -> None:
    lists = build(records(change("denylist", "203.0.113.7", expires=T0 + 10)))
    lists.apply("denylist:203.0.113.7", change("denylist", "203.0.113.7", op="extend", expires=T0 + 30))
    assert lists.expire(T0 + 15) is False  # the old expiry no longer applies
    assert lists.current(T0 + 15)["denylist"] == {"203.0.113.7": T0 + 30}
    lists.apply("denylist:203.0.113.7", change("denylist", "203.0.113.7", op="extend", expires=None))
    assert lists.expire(T0 + 1e6) is False
    assert lists.current(T0 + 1e6)["denylist"] == {"203.0.113.7": None}


def test_extend_without_a_previous_add_sets_the_entry() -> None:
    lists = build(records(change("graylist", "192.0.2.4", op="extend", expires=T0 + 5)))
    assert lists.current(T0)["graylist"] == {"192.0.2.4": T0 + 5}


def test_readd_after_remove_and_after_expiry() -> None:
    lists = build(
        records(
            change("denylist", "203.0.113.7", expires=T0 + 10),
            change("denylist", "203.0.113.7", op="remove"),
            change("denylist", "203.0.113.7", expires=T0 + 10),  # same expiry as the removed entry
        )
    )
    assert lists.current(T0)["denylist"] == {"203.0.113.7": T0 + 10}
    assert lists.expire(T0 + 10) is True
    lists.apply("denylist:203.0.113.7", change("denylist", "203.0.113.7", expires=T0 + 50))
    assert lists.expire(T0 + 20) is False
    assert lists.current(T0 + 20)["denylist"] == {"203.0.113.7": T0 + 50}


def test_ipv6_and_cidr_values_are_canonical() -> None:
    lists = build(
        records(
            change("denylist", "2001:DB8::1"),
            change("denylist", "2001:db8:0:0::/64"),
            change("graylist", "198.51.100.7/24"),  # host bits set: the network
            change("graylist", "192.0.2.5/32"),  # a /32 is the address
        )
    )
    assert lists.current(T0) == {
        "denylist": {"2001:db8::1": None, "2001:db8::/64": None},
        "graylist": {"198.51.100.0/24": None, "192.0.2.5": None},
    }
    # a tombstone with another spelling of the same address removes the entry
    assert lists.apply("denylist:2001:db8:0::1", None) is True
    assert "2001:db8::1" not in lists.current(T0)["denylist"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("denylist:not-an-ip", {"op": "add"}),
        ("denylist:203.0.113.7; } server { listen 81; #", {"op": "add"}),
        ("denylist:203.0.113.7\n", {"op": "add"}),
        ("denylist:fe80::1%eth0", {"op": "add"}),
        ("denylist:0.0.0.0/0", {"op": "add"}),  # far too broad
        ("denylist:::/0", {"op": "add"}),
        ("allowlist:203.0.113.7", {"op": "add"}),
        ("203.0.113.7", {"op": "add"}),
        ("denylist:203.0.113.7", {"op": "block"}),
        ("denylist:203.0.113.7", {"op": "add", "expires_at": "tomorrow"}),
        ("denylist:203.0.113.7", {"op": "add", "expires_at": 1793491200}),
        ("denylist:203.0.113.7", {"op": "add", "list": "graylist"}),  # body disagrees with the key
        ("denylist:203.0.113.7", {"op": "add", "value": "203.0.113.8"}),
        ("denylist:203.0.113.7", ["add"]),
        ("denylist:203.0.113.7", "add"),
        (b"\xff\xfe", {"op": "add"}),
        (None, {"op": "add"}),
        (None, None),
        ("denylist:bad", None),  # a tombstone of a key that could never have been valid
    ],
)
def test_malformed_records_are_ignored_with_a_log_line(
    key: Any, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    lists = build(records(change("denylist", "203.0.113.7"), change("graylist", "192.0.2.1")))
    before = lists.current(T0)
    with caplog.at_level(logging.WARNING, logger="abuse_stream.enforce.nginx"):
        assert lists.apply(key, value) is False
    assert lists.current(T0) == before
    assert lists.malformed == 1
    assert any("malformed ip-list record" in r.getMessage() for r in caplog.records)
    assert all("\n" not in r.getMessage() for r in caplog.records)  # no log injection through the key


def test_bytes_keys_and_naive_expiry() -> None:
    lists = IPLists()
    assert lists.apply(b"graylist:192.0.2.1", {"op": "add", "expires_at": "2026-11-01T00:01:00"}) is True
    assert lists.current(T0)["graylist"] == {"192.0.2.1": T0 + 60}  # naive: taken as UTC
    assert (
        lists.apply(b"graylist:192.0.2.1", {"op": "add", "expires_at": "2026-11-01T01:01:00+01:00"}) is False
    )


# -- render_include ------------------------------------------------------------------------------------


def geo_rows(text: str) -> list[str]:
    block = re.search(r"geo \$remote_addr \$abuse_stream_list \{\n(.*?)\n\}\n\Z", text, re.S)
    assert block is not None, text
    return [line.strip() for line in block.group(1).splitlines()]


def test_render_include_geo_block() -> None:
    lists = build(
        records(
            change("denylist", "203.0.113.7"),
            change("graylist", "198.51.100.0/24"),
            change("denylist", "2001:db8::1"),
            change("graylist", "192.0.2.1", expires=T0 - 1),  # lapsed: current() drops it
        )
    )
    text = render_include(lists.current(T0), T0)
    assert text.startswith("# generated at 2026-11-01T00:00:00Z by abuse-stream enforce nginx: 3 entries")
    assert "(2 deny, 1 gray)" in text
    assert geo_rows(text) == [
        'default "";',
        "198.51.100.0/24 gray;",
        "203.0.113.7 deny;",
        "2001:db8::1 deny;",
    ]


def test_render_include_empty_and_lapsed() -> None:
    text = render_include({"denylist": {"203.0.113.7": T0}, "graylist": {}}, T0)
    assert geo_rows(text) == ['default "";']
    assert "0 entries" in text
    assert geo_rows(render_include({}, T0)) == ['default "";']


def test_render_include_deny_wins() -> None:
    lists = {
        "denylist": {"198.51.100.0/24": None, "203.0.113.7": None, "2001:db8::/32": None},
        "graylist": {"198.51.100.9": None, "203.0.113.7": None, "203.0.113.8": None, "2001:db8:1::/48": None},
    }
    assert geo_rows(render_include(lists, T0)) == [
        'default "";',
        "198.51.100.0/24 deny;",
        "203.0.113.7 deny;",
        "203.0.113.8 gray;",
        "2001:db8::/32 deny;",
    ]


@pytest.mark.parametrize(
    "evil",
    [
        '1.2.3.4; } server { listen 8080; location / { return 200 "pwned"; } } geo $x { default ""',
        "1.2.3.4 deny;\ninclude /etc/passwd",
        "1.2.3.4\n",
        "${x}",
        "fe80::1%eth0",
        "0.0.0.0/0",
    ],
)
def test_render_include_never_writes_an_invalid_value(evil: str, caplog: pytest.LogCaptureFixture) -> None:
    # values normally come from IPLists, which already refuses these; render_include checks again
    text = render_include({"denylist": {evil: None, "203.0.113.7": None}, "graylist": {}}, T0)
    assert geo_rows(text) == ['default "";', "203.0.113.7 deny;"]
    assert text.count("{") == 1 and text.count("}") == 1
    assert "not writing denylist value" in caplog.text


# -- write_include -------------------------------------------------------------------------------------


def test_write_include_atomic_and_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "abuse-stream" / "lists.conf"
    lists = {"denylist": {"203.0.113.7": None}, "graylist": {}}
    assert write_include(path, render_include(lists, T0)) is True
    first = path.read_text()
    inode = path.stat().st_ino
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    # later generation time, same entries: not rewritten
    assert write_include(path, render_include(lists, T0 + 60)) is False
    assert path.read_text() == first and path.stat().st_ino == inode
    lists["graylist"]["192.0.2.1"] = None
    assert write_include(path, render_include(lists, T0 + 120)) is True
    assert path.stat().st_ino != inode  # replaced (os.replace), not rewritten in place
    assert "192.0.2.1 gray;" in path.read_text()
    assert sorted(os.listdir(path.parent)) == ["lists.conf"]  # no temp file left behind


def test_write_include_replaces_a_hand_edited_file(tmp_path: Path) -> None:
    path = tmp_path / "lists.conf"
    content = render_include({"denylist": {"203.0.113.7": None}}, T0)
    path.write_text(content.replace("203.0.113.7 deny;", "203.0.113.7 gray;"))
    assert write_include(path, content) is True
    assert path.read_text() == content


# -- the enforcer without Kafka ------------------------------------------------------------------------


def test_enforcer_render_reload_failure_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "reloaded"
    enf = NginxEnforcer("unused:9092", tmp_path / "lists.conf", reload_command=f"touch {marker}")
    enf.lists.apply("denylist:203.0.113.7", change("denylist", "203.0.113.7", expires=T0 + 5))
    assert enf.render(T0) is True and marker.exists() and enf.reloads == 1
    marker.unlink()
    assert enf.render(T0 + 1) is False and not marker.exists()  # unchanged: no reload
    assert enf.render(T0 + 5) is True and marker.exists()  # expired: rewritten and reloaded
    assert "203.0.113.7" not in (tmp_path / "lists.conf").read_text()

    bad = NginxEnforcer("unused:9092", tmp_path / "b.conf", reload_command="/nonexistent/nginx -s reload")
    bad.lists.apply("graylist:192.0.2.1", change("graylist", "192.0.2.1"))
    assert bad.render(T0) is True
    assert bad.reload_failures == 1 and bad._reload_pending
    assert "reload command /nonexistent/nginx -s reload failed" in caplog.text
    failing = NginxEnforcer(
        "unused:9092", tmp_path / "c.conf", reload_command="sh -c 'echo boom >&2; exit 1'"
    )
    failing.render(T0)
    assert failing.reload_failures == 1 and "exit status 1: boom" in caplog.text


def test_cli_help_and_bad_reload_command(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(enforce_group, ["nginx", "--help"])
    assert res.exit_code == 0, res.output
    for opt in ("--include", "--reload-command", "--bootstrap-servers", "--topic", "--group-id"):
        assert opt in res.output
    res = runner.invoke(
        enforce_group,
        ["nginx", "--include", str(tmp_path / "x.conf"), "--reload-command", "nginx 'unbalanced"],
    )
    assert res.exit_code == 2 and "--reload-command" in res.output


class FakeMsg:
    def __init__(self, key: bytes | None, value: bytes | None, offset: int, err: Any = None) -> None:
        self._key, self._value, self._offset, self._err = key, value, offset, err

    def error(self) -> Any:
        return self._err

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return "ip-lists"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """One partition; ``feed`` appends records followed by an end-of-partition event."""

    def __init__(self, conf: dict) -> None:
        import threading
        from types import SimpleNamespace

        self.conf = conf
        self.assigned: list[Any] = []
        self.closed = False
        self._queue: list[FakeMsg] = []
        self._lock = threading.Lock()
        self._offset = 0
        self._md = SimpleNamespace(topics={"ip-lists": SimpleNamespace(partitions={0: None}, error=None)})

    def feed(self, *recs: tuple[bytes | None, bytes | None]) -> None:
        from confluent_kafka import KafkaError

        with self._lock:
            for key, value in recs:
                self._queue.append(FakeMsg(key, value, self._offset))
                self._offset += 1
            self._queue.append(FakeMsg(None, None, self._offset, KafkaError(KafkaError._PARTITION_EOF)))

    def list_topics(self, topic: str, timeout: float) -> Any:
        return self._md

    def assign(self, tps: list[Any]) -> None:
        self.assigned = tps

    def poll(self, timeout: float) -> FakeMsg | None:
        import time

        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        time.sleep(min(timeout, 0.01))
        return None

    def consume(self, n: int, timeout: float) -> list[FakeMsg]:
        with self._lock:
            out, self._queue = self._queue[:n], self._queue[n:]
        return out

    def close(self) -> None:
        self.closed = True


def test_enforcer_loop_catches_up_then_follows_and_expires(tmp_path: Path) -> None:
    import json
    import threading
    import time

    from confluent_kafka import OFFSET_BEGINNING

    consumers: list[FakeConsumer] = []

    def factory(conf: dict) -> FakeConsumer:
        consumers.append(FakeConsumer(conf))
        consumers[-1].feed(
            (b"denylist:203.0.113.7", json.dumps(change("denylist", "203.0.113.7")).encode()),
            (b"denylist:203.0.113.9", json.dumps(change("denylist", "203.0.113.9")).encode()),
            (b"denylist:203.0.113.9", None),
            (b"graylist:192.0.2.1", b"{not json"),
        )
        return consumers[-1]

    include = tmp_path / "lists.conf"
    marker = tmp_path / "reloads"
    enf = NginxEnforcer(
        "unused:9092",
        include,
        topic="ip-lists",
        reload_command=f"sh -c 'echo x >> {marker}'",
        interval=0.2,
        consumer_factory=factory,
    )
    stop = threading.Event()
    thread = threading.Thread(target=enf.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert enf.caught_up.wait(5)
        (consumer,) = consumers
        assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, OFFSET_BEGINNING)]
        assert consumer.conf["enable.auto.commit"] is False and consumer.conf["group.id"]
        assert geo_rows(include.read_text()) == ['default "";', "203.0.113.7 deny;"]
        assert enf.lists.malformed == 1 and marker.read_text() == "x\n"

        expires = time.time() + 0.5
        body = change("graylist", "2001:db8::/64", expires=expires)
        consumer.feed((b"graylist:2001:db8::/64", json.dumps(body).encode()))
        deadline = time.monotonic() + 3
        while "2001:db8::/64 gray;" not in include.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while "2001:db8::/64" in include.read_text():  # gone at expires_at, by the wall clock
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert time.time() >= expires - 0.002
        # the reload runs right after the include is written: wait for it, then check none follow
        while marker.read_text().count("x") < 3:
            assert time.monotonic() < deadline + 2
            time.sleep(0.01)
        time.sleep(0.5)  # a few more interval ticks with nothing new
        assert marker.read_text() == "x\nx\nx\n"  # one reload per change, none for unchanged ticks
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and consumers[0].closed
