"""Helpers for tests that run ``abuse-stream run`` as real processes (crash, scale-out)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml
from confluent_kafka import Consumer, TopicPartition


def run_config(
    tmp: Path, name: str, bootstrap: str, prefix: str, group: str | None = None, **window: Any
) -> Path:
    """A ``run`` config reading ``<prefix>-in`` with group ``group`` (default ``<prefix>-<name>``)."""
    conf = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group or f"{prefix}-{name}",
            "input_topic": f"{prefix}-in",
            "dlq_topic": f"{prefix}-{name}-dlq",
            "verdicts_topic": f"{prefix}-{name}-verdicts",
            "ip_lists_topic": f"{prefix}-{name}-lists",
            "session_timeout_ms": 6000,
            "batch_size": 150,
            "batch_timeout_s": 0.2,
        },
        "window": {"length_s": 60, "step_s": 10, "lateness_s": 5, "idle_advance_s": 1.0, **window},
        "detection": {"baseline": {"warmup_samples": 50, "epoch_s": 60}},
        "metrics": {"port": None},
        "log_level": "INFO",
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def start_run(conf: Path, db: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "abuse_stream", "run", "--config", str(conf)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115
    )


def stop_run(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def assignments(log: Path) -> list[list[int]]:
    """Every ``assigned partitions [..]`` line of a run's log, in order."""
    text = log.read_text() if log.exists() else ""
    return [
        [int(x) for x in m.split(",") if x.strip()]
        for m in re.findall(r"assigned partitions \[([\d, ]*)\]", text)
    ]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (read without joining the group)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def wait_for(
    what: str, check: Any, procs: list[subprocess.Popen], logs: list[Path], limit_s: float = 120
) -> None:
    deadline = time.time() + limit_s
    while time.time() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, f"{log} exited:\n{log.read_text()[-3000:]}"
        if check():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-2000:]}" for log in logs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def second_db(pg_url: str, suffix: str = "b") -> str:
    base, _, name = pg_url.rpartition("/")
    admin = psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}_{suffix}"')
    admin.close()
    return f"{base}/{name}_{suffix}"


def drop_db(url: str) -> None:
    base, _, name = url.rpartition("/")
    admin = psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
