"""Reference enforcement point for nginx: the compacted IP-list topic -> a ``geo`` include -> ``nginx -s reload``.

``abuse-stream enforce nginx --include /etc/nginx/abuse-stream/lists.conf --reload-command "nginx -s reload"``

* Every start reads the topic (contracts §4, key ``<list>:<ip-or-cidr>``, JSON value, tombstone = removed)
  **from the beginning**: the consumer is ``assign``-ed to every partition at ``OFFSET_BEGINNING`` and never
  commits, so a new enforcement point rebuilds exactly the current lists (no consumer-group rebalances).
* :class:`IPLists` is the pure state (time is passed in); :func:`render_include` turns it into an nginx
  ``geo`` block on ``$remote_addr`` (the client address after ``real_ip``)::

      geo $remote_addr $abuse_stream_list {
          default "";
          203.0.113.7 deny;
          198.51.100.0/24 gray;
      }

  Every value is parsed with :mod:`ipaddress` and written in its canonical form, so a record can never put
  anything but an address or a network into the nginx config.  A network in both lists, or a graylisted
  network inside a denylisted one, is written as ``deny`` (deny wins).
* :func:`write_include` replaces the file atomically (temp file in the same directory, fsync, ``os.replace``)
  and only when the entries changed (the generation-time comment is ignored in the comparison).
* :class:`NginxEnforcer` renders right after catching up, shortly after each change (``debounce``), when an
  entry's ``expires_at`` passes (wall clock) and every ``interval`` seconds; when the file changed it runs the
  reload command (a failing reload is logged and retried every ``interval``, never fatal).

If the include file does not exist at start an empty one (no entries) is written at once, so nginx can start
before the enforcer has caught up.  Until then nginx enforces nothing (fail open).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import ipaddress
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

log = logging.getLogger(__name__)

__all__ = [
    "LIST_TAGS",
    "IPLists",
    "NginxEnforcer",
    "enforce_group",
    "render_include",
    "write_include",
]

#: list name in the topic -> value of ``$abuse_stream_list`` in nginx
LIST_TAGS: Mapping[str, str] = {"denylist": "deny", "graylist": "gray"}
OPS = frozenset({"add", "remove", "extend"})
VARIABLE = "abuse_stream_list"
#: Networks broader than this are refused (a ``0.0.0.0/0`` deny would block every client).
MIN_PREFIXLEN: Mapping[int, int] = {4: 8, 6: 16}
_STAMP = "# generated "
_MISSING = object()


# -- values ------------------------------------------------------------------------------------------------


class _Invalid(ValueError):
    pass


@functools.lru_cache(maxsize=1 << 17)
def _parse_net(value: str) -> tuple[int, int, int, str]:
    """``(version, network as int, prefixlen, canonical text)``; raises :class:`_Invalid`.

    The text is what :mod:`ipaddress` prints (an address alone for a /32 or /128), never the input.
    """
    if len(value) > 64 or "%" in value:  # the longest IPv6 CIDR is 43 characters; no zone ids
        raise _Invalid("not an IP address or network")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise _Invalid("not an IP address or network") from None
    if net.prefixlen < MIN_PREFIXLEN[net.version]:
        raise _Invalid(f"network broader than /{MIN_PREFIXLEN[net.version]} refused")
    text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    return net.version, int(net.network_address), net.prefixlen, text


def canonical(value: object) -> str | None:
    """Canonical text of an IP address or CIDR (``198.51.100.7/24`` -> ``198.51.100.0/24``), else ``None``."""
    if not isinstance(value, str):
        return None
    try:
        return _parse_net(value)[3]
    except _Invalid:
        return None


def _parse_time(value: object) -> float | None:
    """RFC 3339 -> epoch seconds; ``None`` stays ``None`` (no expiry).  A naive time is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("expires_at is not a string")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid("expires_at is not an RFC 3339 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- state ---------------------------------------------------------------------------------------------


class IPLists:
    """The current deny/gray lists, rebuilt from the ordered records of the IP-list topic.  Pure: no clock.

    Entries are keyed by list and canonical value.  ``add`` and ``extend`` set the entry and its expiry (the
    latest record of a key is the whole state of the entry: after compaction an ``extend`` may be the only
    record left), ``remove`` and a tombstone delete it.  Malformed records are logged and ignored.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, float | None]] = {name: {} for name in LIST_TAGS}
        self._heap: list[tuple[float, str, str]] = []  # (expires_at, list, value); stale items skipped
        self.applied = 0
        self.malformed = 0

    def __len__(self) -> int:
        return sum(len(d) for d in self._entries.values())

    def _bad(self, key: object, why: str) -> bool:
        self.malformed += 1
        log.warning("ignoring malformed ip-list record key=%.200r: %s", key, why)
        return False

    def apply(self, key: str | bytes | None, value: Mapping[str, Any] | None) -> bool:
        """Apply one record (``value=None``: tombstone).  Returns whether the lists changed."""
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                return self._bad(key, "key is not UTF-8")
        if not isinstance(key, str) or ":" not in key:
            return self._bad(key, "key is not '<list>:<ip-or-cidr>'")
        name, raw = key.split(":", 1)
        if name not in LIST_TAGS:
            return self._bad(key, f"unknown list {name!r}")
        ip = canonical(raw)
        if ip is None:
            return self._bad(key, "value is not a valid IP address or network")
        if value is None:  # tombstone
            self.applied += 1
            return self._delete(name, ip)
        if not isinstance(value, Mapping):
            return self._bad(key, "value is not a JSON object")
        op = value.get("op")
        if op not in OPS:
            return self._bad(key, f"unknown op {op!r}")
        if value.get("list", name) != name:
            return self._bad(key, f"list {value.get('list')!r} does not match the key")
        if "value" in value and canonical(value["value"]) != ip:
            return self._bad(key, f"value {value['value']!r:.80} does not match the key")
        if op == "remove":
            self.applied += 1
            return self._delete(name, ip)
        try:
            expires = _parse_time(value.get("expires_at"))
        except _Invalid as exc:
            return self._bad(key, str(exc))
        self.applied += 1
        return self._set(name, ip, expires)

    def _set(self, name: str, ip: str, expires: float | None) -> bool:
        entries = self._entries[name]
        old = entries.get(ip, _MISSING)
        entries[ip] = expires
        if expires is not None and old != expires:
            heapq.heappush(self._heap, (expires, name, ip))
            if len(self._heap) > 2 * len(self) + 1024:  # many extends left stale items: rebuild
                self._heap = [
                    (e, n, v) for n, d in self._entries.items() for v, e in d.items() if e is not None
                ]
                heapq.heapify(self._heap)
        return old != expires

    def _delete(self, name: str, ip: str) -> bool:
        return self._entries[name].pop(ip, _MISSING) is not _MISSING

    def expire(self, now: float) -> bool:
        """Drop entries whose ``expires_at`` is at or before ``now``.  Returns whether any was dropped."""
        changed = False
        while self._heap and self._heap[0][0] <= now:
            expires, name, ip = heapq.heappop(self._heap)
            if self._entries[name].get(ip, _MISSING) == expires:
                del self._entries[name][ip]
                changed = True
        return changed

    def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` still pending, if any."""
        while self._heap:
            expires, name, ip = self._heap[0]
            if self._entries[name].get(ip, _MISSING) == expires:
                return expires
            heapq.heappop(self._heap)
        return None

    def current(self, now: float) -> dict[str, dict[str, float | None]]:
        """``{"denylist": {value: expires_at|None}, "graylist": {...}}`` of the entries live at ``now``."""
        return {
            name: {ip: exp for ip, exp in entries.items() if exp is None or exp > now}
            for name, entries in self._entries.items()
        }


# -- nginx include -------------------------------------------------------------------------------------


def render_include(lists: Mapping[str, Mapping[str, float | None]], now: float) -> str:
    """An include for nginx's ``http`` context defining ``$abuse_stream_list`` ("deny", "gray" or "")."""
    rows: dict[tuple[int, int, int], tuple[str, str]] = {}
    deny_prefixes: dict[tuple[int, int], set[int]] = {}
    for name in ("graylist", "denylist"):  # deny last: it overrides the same network graylisted
        tag = LIST_TAGS[name]
        for value, expires in (lists.get(name) or {}).items():
            if expires is not None and expires <= now:
                continue
            if not isinstance(value, str):
                log.warning("not writing %s value %.80r: not a string", name, value)
                continue
            try:
                version, addr, plen, text = _parse_net(value)
            except _Invalid as exc:
                log.warning("not writing %s value %.80r: %s", name, value, exc)
                continue
            rows[(version, addr, plen)] = (text, tag)
            if tag == "deny":
                deny_prefixes.setdefault((version, plen), set()).add(addr)
    # nginx's geo picks the longest prefix: drop gray entries inside a denied network so that deny wins
    for version, addr, plen in [k for k, (_, tag) in rows.items() if tag == "gray"]:
        bits = 32 if version == 4 else 128
        for (v, dplen), addrs in deny_prefixes.items():
            if v == version and dplen < plen and (addr >> (bits - dplen)) << (bits - dplen) in addrs:
                del rows[(version, addr, plen)]
                break
    counts = {tag: 0 for tag in LIST_TAGS.values()}
    body = []
    for k in sorted(rows):
        text, tag = rows[k]
        counts[tag] += 1
        body.append(f"    {text} {tag};\n")
    head = (
        f"{_STAMP}at {_rfc3339(now)} by abuse-stream enforce nginx: {len(rows)} entries "
        f"({counts['deny']} deny, {counts['gray']} gray)\n"
        "# Do not edit: this file is replaced whenever the IP lists change.\n"
        f"geo $remote_addr ${VARIABLE} {{\n"
        '    default "";\n'
    )
    return head + "".join(body) + "}\n"


def _without_stamp(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(_STAMP)]


def write_include(path: str | os.PathLike[str], content: str) -> bool:
    """Atomically replace ``path`` by ``content`` unless only the generation comment differs.

    Returns whether the file was written.  The temp file (``.<name>.*.tmp``, same directory) never matches
    an ``include *.conf`` glob.
    """
    path = Path(path)
    try:
        old = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        old = None
    if old is not None and _without_stamp(old) == _without_stamp(content):
        return False
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return True


# -- the enforcer --------------------------------------------------------------------------------------


class NginxEnforcer:
    """Consume the IP-list topic from the beginning, keep the include current, reload nginx on changes.

    :param reload_command: e.g. ``"nginx -s reload"`` (split with :func:`shlex.split`, no shell); ``None``:
        only write the file.
    :param interval: seconds between periodic renders (which also retry a failed reload or write).
    :param debounce: after the first catch-up, a change is rendered at most this long after it arrived;
        changes arriving meanwhile share one render and one reload.
    :param consumer_config: extra librdkafka settings (e.g. TLS/SASL), applied last.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        include_path: str | os.PathLike[str],
        *,
        topic: str = "abuse.ip-lists",
        reload_command: str | None = None,
        group_id: str | None = None,
        interval: float = 5.0,
        debounce: float = 0.1,
        reload_timeout: float = 30.0,
        consumer_config: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.include_path = Path(include_path)
        self.topic = topic
        self.reload_argv: list[str] | None = shlex.split(reload_command) if reload_command else None
        if self.reload_argv == []:
            self.reload_argv = None
        self.group_id = (
            group_id or f"abuse-stream-enforce-nginx-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        )
        self.interval = interval
        self.debounce = debounce
        self.reload_timeout = reload_timeout
        self.extra_config = dict(consumer_config or {})
        self.clock = clock
        self._consumer_factory = consumer_factory
        self.lists = IPLists()
        #: set once every partition has been read to its end (and the include rendered from it)
        self.caught_up = threading.Event()
        self.records = 0
        self.renders = 0  # include files written
        self.reloads = 0  # successful reloads
        self.reload_failures = 0
        self._partitions: set[int] = set()
        self._at_end: set[int] = set()
        self._dirty = False
        self._dirty_since = 0.0
        self._write_pending = False
        self._reload_pending = False
        self._next_tick = 0.0
        self._next_metadata = 0.0

    # -- kafka ---------------------------------------------------------------------------------------
    def consumer_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,  # never joined (assign, not subscribe) and never committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,  # how we know we have caught up
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": False,
            # brokers that do not answer a fetch as soon as data arrives (Tansu) hold it this long: keep
            # the add -> 403 latency low; an idle enforcer makes 10 small fetch requests a second
            "fetch.wait.max.ms": 100,
        }
        conf.update(self.extra_config)
        return conf

    def _make_consumer(self) -> Any:
        if self._consumer_factory is not None:
            return self._consumer_factory(self.consumer_config())
        from confluent_kafka import Consumer

        return Consumer(self.consumer_config(), logger=log)

    def _topic_partitions(self, consumer: Any) -> set[int] | None:
        from confluent_kafka import KafkaException

        try:
            md = consumer.list_topics(self.topic, timeout=5.0)
        except KafkaException as exc:
            log.warning("could not read metadata of topic %s: %s", self.topic, exc)
            return None
        t = md.topics.get(self.topic)
        if t is None or t.error is not None or not t.partitions:
            return None
        return set(t.partitions)

    def _assign_new(self, consumer: Any, partitions: set[int]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        new = sorted(partitions - self._partitions)
        if not new:
            return
        tps = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in new]
        if self._partitions:
            consumer.incremental_assign(tps)
        else:
            consumer.assign(tps)
        self._partitions.update(new)
        log.info("reading %s partitions %s from the beginning", self.topic, new)

    def _handle(self, msg: Any) -> None:
        err = msg.error()
        if err is not None:
            from confluent_kafka import KafkaError, KafkaException

            if err.code() == KafkaError._PARTITION_EOF:
                self._at_end.add(msg.partition())
                return
            if err.fatal():
                raise KafkaException(err)
            log.warning("consumer error on %s: %s", self.topic, err)
            return
        self.records += 1
        raw = msg.value()
        value: Any = None
        if raw is not None:
            try:
                value = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                self.lists.malformed += 1
                log.warning(
                    "ignoring ip-list record at %s[%d]@%d: value is not JSON",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                )
                return
            if value is None:  # a JSON null is not a tombstone: tombstones have no value at all
                self.lists.malformed += 1
                log.warning("ignoring ip-list record at %s@%d: JSON null value", msg.topic(), msg.offset())
                return
        if self.lists.apply(msg.key(), value) and not self._dirty:
            self._dirty, self._dirty_since = True, time.monotonic()

    # -- rendering -----------------------------------------------------------------------------------
    def render(self, now: float | None = None) -> bool:
        """Expire, render and write the include; reload nginx if it changed.  Returns whether it changed."""
        now = self.clock() if now is None else now
        self.lists.expire(now)
        self._dirty = False
        content = render_include(self.lists.current(now), now)
        try:
            written = write_include(self.include_path, content)
        except OSError as exc:
            log.error("could not write %s: %s (retrying every %gs)", self.include_path, exc, self.interval)
            self._write_pending = True
            return False
        self._write_pending = False
        if written:
            self.renders += 1
            log.info("wrote %s: %d entries", self.include_path, content.count(";\n") - 1)
            self._reload_pending = self.reload_argv is not None
        if self._reload_pending:
            self.reload()
        return written

    def reload(self) -> bool:
        """Run the reload command; a failure is logged (and retried on the next tick), never raised."""
        if self.reload_argv is None:
            return True
        try:
            proc = subprocess.run(
                self.reload_argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.reload_timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            ok, detail = False, str(exc)
        else:
            ok, detail = proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        if ok:
            self.reloads += 1
            self._reload_pending = False
            log.info("reloaded nginx (%s)", shlex.join(self.reload_argv))
        else:
            self.reload_failures += 1
            self._reload_pending = True
            log.error(
                "reload command %s failed (%s); retrying in %gs",
                shlex.join(self.reload_argv),
                detail,
                self.interval,
            )
        return ok

    def _due(self, mono: float, now: float) -> bool:
        if mono >= self._next_tick:
            return True
        if self._dirty and mono - self._dirty_since >= self.debounce:
            return True
        nxt = self.lists.next_expiry()
        return nxt is not None and nxt <= now

    def _timeout(self, mono: float, now: float) -> float:
        wait = self._next_tick - mono
        if self._dirty:
            wait = min(wait, self._dirty_since + self.debounce - mono)
        nxt = self.lists.next_expiry()
        if nxt is not None:
            wait = min(wait, nxt - now)
        return min(max(wait, 0.0), 0.5)

    # -- main loop -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set.  Raises only on fatal Kafka errors or an unwritable include at start."""
        if not self.include_path.exists():
            write_include(self.include_path, render_include({}, self.clock()))
            log.info("wrote an empty %s (no entries until the topic has been read)", self.include_path)
        consumer = self._make_consumer()
        try:
            self._run(consumer, stop)
        finally:
            consumer.close()

    def _run(self, consumer: Any, stop: threading.Event) -> None:
        warned_at = 0.0
        while not stop.is_set():
            parts = self._topic_partitions(consumer)
            if parts:
                self._assign_new(consumer, parts)
                break
            if time.monotonic() - warned_at > 30:
                log.warning("topic %s not found (yet) at %s; waiting", self.topic, self.bootstrap_servers)
                warned_at = time.monotonic()
            stop.wait(1.0)
        started = time.monotonic()
        self._next_metadata = started + 60.0
        progress_at = started + 30.0
        while not stop.is_set():
            mono, now = time.monotonic(), self.clock()
            timeout = self._timeout(mono, now) if self.caught_up.is_set() else 0.5
            # consume(n, timeout) waits for n messages or the timeout: wait for one, then take what is there
            first = consumer.poll(timeout)
            if first is not None:
                self._handle(first)
                for msg in consumer.consume(1000, 0):
                    self._handle(msg)
            mono, now = time.monotonic(), self.clock()
            if mono >= self._next_metadata:
                self._next_metadata = mono + 60.0
                parts = self._topic_partitions(consumer)
                if parts:
                    self._assign_new(consumer, parts)
            if not self.caught_up.is_set():
                if self._partitions <= self._at_end:
                    log.info(
                        "caught up with %s in %.1fs: %d records, %d entries",
                        self.topic,
                        mono - started,
                        self.records,
                        len(self.lists),
                    )
                    self._next_tick = mono + self.interval
                    self.render(now)
                    self.caught_up.set()
                elif mono >= progress_at:
                    progress_at = mono + 30.0
                    log.info("still reading %s: %d records so far", self.topic, self.records)
                continue
            if self._due(mono, now):
                if mono >= self._next_tick:
                    self._next_tick = mono + self.interval
                self.render(now)


# -- CLI -----------------------------------------------------------------------------------------------


def _properties(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-X/--consumer-property")
        out[key.strip()] = value
    return out


@click.group("enforce")
def enforce_group() -> None:
    """Enforcement points: apply the IP lists of the Kafka topic to a proxy."""


@enforce_group.command("nginx")
@click.option(
    "--include",
    "include_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="nginx include file to keep current (e.g. /etc/nginx/abuse-stream/lists.conf).",
)
@click.option(
    "--reload-command",
    default=None,
    help='Run (no shell) when the include changed, e.g. "nginx -s reload".  Failures are logged, not fatal.',
)
@click.option(
    "--bootstrap-servers",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    default="localhost:9092",
    show_default=True,
    help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option("--topic", default="abuse.ip-lists", show_default=True, help="The compacted IP-list topic.")
@click.option(
    "--group-id", default=None, help="Consumer group id (default: unique per start; never committed)."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between periodic renders (expiry, retry of a failed reload).",
)
@click.option(
    "-X",
    "--consumer-property",
    "properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra librdkafka consumer setting, e.g. -X security.protocol=SSL (repeatable).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
def nginx_command(
    include_path: Path,
    reload_command: str | None,
    bootstrap_servers: str,
    topic: str,
    group_id: str | None,
    interval: float,
    properties: tuple[str, ...],
    log_level: str,
) -> None:
    """Keep an nginx `geo` include of the deny/gray lists current and reload nginx when it changes.

    Reads the whole topic from the beginning at every start, so it rebuilds the current lists.  Stops on
    SIGTERM or SIGINT.
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        enforcer = NginxEnforcer(
            bootstrap_servers,
            include_path,
            topic=topic,
            reload_command=reload_command,
            group_id=group_id,
            interval=interval,
            consumer_config=_properties(properties),
        )
    except ValueError as exc:  # shlex: unbalanced quotes
        raise click.BadParameter(str(exc), param_hint="--reload-command") from None
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _stop(signum: int, _frame: Any) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    from confluent_kafka import KafkaException

    try:
        enforcer.run(stop)
    except KafkaException as exc:
        raise click.ClickException(f"Kafka: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"could not write {include_path}: {exc}") from None
