"""`enforce nginx` end to end: a real Tansu broker, the IP-list topic, the enforcer and a real nginx.

KafkaSink publishes list changes (as the service does: ``remove`` then a tombstone) -> NginxEnforcer writes
the ``geo`` include and runs ``nginx -s reload`` -> requests with ``X-Forwarded-For`` (real_ip) get 403.

nginx must be installed (Debian: ``apt-get install -y nginx``); without it these tests FAIL, never skip.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from abuse_stream.config import KafkaConfig
from abuse_stream.enforce.nginx import NginxEnforcer, render_include, write_include
from abuse_stream.kafka_admin import TopicSpec, ensure_topics
from abuse_stream.sinks.kafka import KafkaSink
from abuse_stream.verdicts import rfc3339

DENIED_IP = "203.0.113.7"
OTHER_IP = "198.51.100.20"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "nginx is not installed, and the enforce-nginx integration tests need a real nginx: "
            "install it (Debian/Ubuntu: `apt-get install -y nginx`).",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, cond: Callable[[], bool], timeout: float, detail: Callable[[], str] = str) -> float:
    """Poll ``cond`` every 20 ms until true; return the seconds it took.  Fails the test on timeout."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{detail()}", pytrace=False)
        time.sleep(0.02)
    return time.monotonic() - start


class Nginx:
    """nginx in the foreground with everything (pid, logs, temp dirs) under ``prefix``."""

    def __init__(self, binary: str, prefix: Path, include: Path) -> None:
        self.binary, self.prefix, self.include = binary, prefix, include
        self.port = free_port()
        self.conf = prefix / "nginx.conf"
        self.error_log = prefix / "error.log"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        # As root, nginx switches its workers to `user` (default nobody); keep them root so that they can
        # use the temp dirs under pytest's private tmp dir.  Not root: no switch, the directive is omitted.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {kind}_temp_path {prefix}/tmp/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf.write_text(
            f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {self.error_log} notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp}    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    include {include};
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            add_header X-Abuse-Stream-List $abuse_stream_list always;
            if ($abuse_stream_list = deny) {{ return 403; }}
            return 200 "ok";
        }}
    }}
}}
"""
        )
        self.base = [binary, "-p", f"{prefix}/", "-c", str(self.conf), "-e", str(self.error_log)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def reload_command(self) -> str:
        return shlex.join([*self.base, "-s", "reload"])

    def log_tail(self) -> str:
        try:
            return "nginx error.log:\n" + "\n".join(self.error_log.read_text().splitlines()[-20:])
        except OSError:
            return "(no nginx error.log)"

    def start(self) -> None:
        test = subprocess.run([*self.base, "-t"], capture_output=True, text=True)
        assert test.returncode == 0, f"nginx -t failed: {test.stderr}"
        out = open(self.prefix / "nginx.out", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.base, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(
                    f"nginx exited with status {self.proc.returncode}\n{self.log_tail()}", pytrace=False
                )
            return self.get(OTHER_IP)[0] == 200

        wait_for("nginx to answer", up, 10, self.log_tail)

    def workers(self) -> set[int]:
        """PIDs of the master's children (its workers, old ones included while they finish)."""
        assert self.proc is not None
        found = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:  # field 4: ppid
                found.add(int(entry))
        return found

    def switched(self, old: set[int]) -> bool:
        """The reload is complete: one worker, started after ``old`` was taken.

        ``nginx -s reload`` returns before the reload is done; for ~0.1-0.3 s old workers (old include) and
        new ones take connections in turn, so a single answer says nothing about the current lists.
        """
        now = self.workers()
        return len(now) == 1 and not now & old

    def get(self, xff: str) -> tuple[int | None, str | None]:
        """(status, X-Abuse-Stream-List) of ``GET /`` as client ``xff``; (None, None) if nginx did not answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/", headers={"X-Forwarded-For": xff, "Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("X-Abuse-Stream-List")
        except OSError:
            return None, None
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def ip_lists(kafka_bootstrap: str, unique_topic: Callable[..., str]) -> Iterator[tuple[str, KafkaSink]]:
    """A fresh compacted IP-list topic and the service's KafkaSink publishing to it."""
    topic = unique_topic("ip-lists")
    ensure_topics(kafka_bootstrap, {topic: TopicSpec(partitions=1, config={"cleanup.policy": "compact"})})
    sink = KafkaSink(KafkaConfig(bootstrap_servers=kafka_bootstrap, ip_lists_topic=topic))
    yield topic, sink
    sink.close(10)


def change(lst: str, value: str, op: str = "add", expires_at: float | None = None) -> dict:
    now = time.time()
    return {
        "list": lst,
        "value": value,
        "op": op,
        "expires_at": rfc3339(expires_at),
        "reason": "scanner: probes",
        "bot_type": "scanner",
        "verdict_id": f"v-{value}-{now}",
        "source": "manual",
        "changed_at": rfc3339(now),
    }


def publish(sink: KafkaSink, *changes: dict) -> None:
    sink.add_ip_changes(changes)
    sink.flush(10)


def test_enforce_nginx_end_to_end(
    kafka_bootstrap: str, ip_lists: tuple[str, KafkaSink], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = nginx_binary()
    topic, sink = ip_lists
    # history written before the enforcer starts: it must rebuild the current lists from the beginning
    publish(
        sink,
        change("denylist", "192.0.2.50"),
        change("denylist", "192.0.2.51"),
        change("denylist", "192.0.2.51", op="remove"),  # + tombstone
        change("graylist", "192.0.2.60"),
        change("denylist", "192.0.2.70", expires_at=time.time() - 60),  # already expired
    )
    sink.producer.produce(topic, key=b"denylist:1.2.3.4; } server { listen 81; #", value=b'{"op":"add"}')
    sink.producer.produce(topic, key=b"denylist:192.0.2.80", value=b"not json")
    sink.flush(10)

    include = tmp_path / "abuse-stream" / "lists.conf"
    write_include(include, render_include({}, time.time()))  # nginx needs the file to start
    nginx = Nginx(binary, tmp_path / "nginx", include)
    nginx.start()

    enforcer = NginxEnforcer(
        kafka_bootstrap, include, topic=topic, reload_command=nginx.reload_command, interval=1.0
    )
    stop = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            enforcer.run(stop)
        except BaseException as exc:  # pragma: no cover - reported by the assertions below
            crashed.append(exc)

    thread = threading.Thread(target=run, name="enforcer", daemon=True)

    def detail() -> str:
        status = {ip: nginx.get(ip) for ip in (DENIED_IP, OTHER_IP, "192.0.2.50", "203.0.113.8")}
        text = include.read_text() if include.exists() else "(no include)"
        return (
            f"crashed={crashed} records={enforcer.records} renders={enforcer.renders} reloads={enforcer.reloads} "
            f"reload_failures={enforcer.reload_failures}\nresponses={status}\ninclude:\n{text}\n{nginx.log_tail()}"
        )

    def step(what: str, changes: list[dict], ip: str, status: int) -> tuple[float, float]:
        """Publish ``changes``; wait for the first ``status`` for ``ip``, then for the reload to be complete.

        Returns the seconds from the publish to each.
        """
        workers, reloads = nginx.workers(), enforcer.reloads
        publish(sink, *changes)
        first = wait_for(f"{status} for {ip} after {what}", lambda: nginx.get(ip)[0] == status, 5, detail)
        complete = first + wait_for(
            f"nginx to finish its reload after {what}",
            lambda: enforcer.reloads > reloads and nginx.switched(workers),
            5,
            detail,
        )
        assert [nginx.get(ip)[0] for _ in range(10)] == [status] * 10, detail()
        return first, complete

    workers = nginx.workers()
    thread.start()
    try:
        assert enforcer.caught_up.wait(15), detail()
        wait_for("nginx reloaded with the rebuilt lists", lambda: nginx.switched(workers), 5, detail)
        assert enforcer.reloads == 1, detail()
        assert nginx.get("192.0.2.50")[0] == 403
        assert nginx.get("192.0.2.51")[0] == 200  # removed + tombstone before the start
        assert nginx.get("192.0.2.70")[0] == 200  # expired before the start
        assert nginx.get("192.0.2.60") == (200, "gray")  # graylisted: marked, not blocked
        assert nginx.get(OTHER_IP) == (200, None)
        assert enforcer.lists.malformed == 2
        assert "1.2.3.4" not in include.read_text()

        # add -> 403 for that client only
        first, complete = step("add", [change("denylist", DENIED_IP)], DENIED_IP, 403)
        assert nginx.get(OTHER_IP)[0] == 200
        with capsys.disabled():
            print(f"\nproduce -> first 403: {first * 1000:.0f} ms, all workers: {complete * 1000:.0f} ms")
        assert complete < 3.0

        # remove (+ tombstone, as KafkaSink publishes it) -> 200 again
        step("remove", [change("denylist", DENIED_IP, op="remove")], DENIED_IP, 200)

        # an entry that expires by itself, by the enforcer's wall clock
        expires = time.time() + 3.0
        step("add with expiry", [change("denylist", "203.0.113.8", expires_at=expires)], "203.0.113.8", 403)
        assert time.time() < expires - 1.0, "too slow to see the entry before it expires"
        wait_for("200 after expires_at", lambda: nginx.get("203.0.113.8")[0] == 200, 6, detail)
        unblocked = time.time()
        # never before expires_at (RFC 3339 with milliseconds: up to 1 ms earlier), and promptly after it
        assert expires - 0.002 <= unblocked <= expires + 1.5, (expires, unblocked)
        assert nginx.get("192.0.2.50")[0] == 403  # permanent entries stay

        assert not crashed and enforcer.reload_failures == 0, detail()
    finally:
        stop.set()
        thread.join(10)
        nginx.stop()
    assert not thread.is_alive(), "the enforcer did not stop"
    assert not crashed, crashed


def test_enforce_nginx_cli_stops_on_sigterm(
    ip_lists: tuple[str, KafkaSink], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The click command (as `abuse-stream enforce nginx` runs it): renders, reloads, exits 0 on SIGTERM."""
    nginx_binary()
    topic, sink = ip_lists
    publish(sink, change("denylist", "192.0.2.99"), change("graylist", "2001:db8::/48"))
    include = tmp_path / "lists.conf"
    marker = tmp_path / "reloaded"
    code = "import sys; from abuse_stream.enforce import enforce_group; enforce_group(prog_name='abuse-stream enforce')"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    args = ["nginx", "--include", str(include), "--topic", topic, "--reload-command", f"touch {marker}"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:

        def rendered() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"enforcer exited early: {proc.communicate()[0].decode()}", pytrace=False)
            return marker.exists() and "192.0.2.99 deny;" in include.read_text()

        wait_for("the CLI enforcer to render and reload", rendered, 15)
        assert "2001:db8::/48 gray;" in include.read_text()
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=10)[0].decode()
        assert proc.returncode == 0, out
        assert "received SIGTERM" in out
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


@pytest.mark.integration
def test_sample_snippet_is_valid_nginx_config(tmp_path: Path) -> None:
    """deploy/nginx/abuse-stream.conf (the README's snippet) passes `nginx -t` with a generated list."""
    binary = nginx_binary()
    sample = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "abuse-stream.conf"
    include = tmp_path / "lists.conf"
    lists = {"denylist": {"203.0.113.7": None, "2001:db8::/48": None}, "graylist": {"198.51.100.0/24": None}}
    write_include(include, render_include(lists, time.time()))
    text = sample.read_text()
    assert "/etc/nginx/abuse-stream/lists.conf" in text
    (tmp_path / "abuse-stream.conf").write_text(
        text.replace("/etc/nginx/abuse-stream/lists.conf", str(include))
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n    include {tmp_path}/abuse-stream.conf;\n}}\n"
    )
    res = subprocess.run(
        [binary, "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
