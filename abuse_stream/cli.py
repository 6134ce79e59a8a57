"""The ``abuse-stream`` command. Configuration is loaded here, once, and passed down frozen."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from abuse_stream import __version__
from abuse_stream.config import Config, ConfigError, load_config

log = logging.getLogger("abuse_stream")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(config_path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    try:
        cfg = load_config(config_path)
        if overrides:
            data = cfg.model_dump()
            for dotted, value in overrides.items():
                node = data
                *parents, leaf = dotted.split(".")
                for p in parents:
                    node = node[p]
                node[leaf] = value
            cfg = Config.model_validate(data)
        return cfg
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:  # pydantic errors on overrides from options
        raise click.ClickException(f"invalid option: {e}") from None


def _pipeline(cfg: Config) -> Any:
    from abuse_stream.pipeline import build_pipeline

    try:
        pipeline = build_pipeline(cfg)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    tune_gc()
    return pipeline


def tune_gc() -> None:
    """Keep Python's cycle collector off the hot path (called once the reference data is loaded).

    Batches allocate hundreds of thousands of short-lived, GC-tracked objects (a consumed batch alone
    is 100k ``Message`` objects) that reference counting frees; with the default thresholds they set
    off collection after collection, and every full one walks the whole heap: imports, UA signatures,
    crawler ranges, baseline trees. Freezing what exists at start-up takes it out of those walks, and
    higher thresholds collect young objects ~300x less often. Cycles are still collected.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 20)  # defaults 700, 10, 10; `make bench` Kafka: 144k -> 170k lines/s


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config file (default: $ABUSE_STREAM_CONFIG, else built-in defaults).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="abuse-stream")
def cli() -> None:
    """Find malicious bots in mirrored HTTP access logs, out of band."""


@cli.command()
@config_option
def run(config_path: str | None) -> None:
    """Run the service: consume the log topic, detect, publish and store verdicts (until SIGTERM)."""
    from abuse_stream.ingest.kafka import KafkaSource
    from abuse_stream.kafka_admin import TopicSpec, ensure_topics
    from abuse_stream.service import Service
    from abuse_stream.sinks.kafka import KafkaSink
    from abuse_stream.store.db import Store

    cfg = _load(config_path)
    _setup_logging(cfg.log_level)
    pipeline = _pipeline(cfg)
    k = cfg.kafka
    if k.create_topics:
        from abuse_stream.kafka_admin import TopicSpecMismatch

        try:
            ensure_topics(k.bootstrap_servers, _topic_specs(cfg, TopicSpec))
        except TopicSpecMismatch as e:  # topics made by the operator: theirs to size
            log.warning("existing topic kept as it is: %s", e)
    # the service retries each batch until it lands (service.Service._until_done): no inner retries
    store = Store(cfg.database.url, retries=0) if cfg.database.url else None
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    service_ref: list[Any] = []

    def _reload(signum: int, _frame: Any) -> None:
        try:
            new = load_config(config_path)
        except ConfigError as e:
            log.error("SIGHUP: config not reloaded: %s", e)
            return
        if service_ref:
            service_ref[0].request_reconfigure(new)

    signal.signal(signal.SIGHUP, _reload)
    from abuse_stream.metrics import Metrics

    metrics = Metrics()
    if cfg.metrics.port:
        metrics.serve(cfg.metrics.port, cfg.metrics.address)
        log.info("Prometheus metrics on http://%s:%d/metrics", cfg.metrics.address, cfg.metrics.port)
    source = KafkaSource(k)
    sink = KafkaSink(k)
    try:
        service = Service(cfg, pipeline, source, sink, store, metrics=metrics)
        service_ref.append(service)
        service.run(stop)
    finally:
        sink.flush(30)
        source.close()
        if store is not None:
            store.close()


def _topic_specs(cfg: Config, TopicSpec: Any) -> dict[str, Any]:
    k = cfg.kafka
    return {
        k.input_topic: TopicSpec(partitions=k.input_partitions),
        k.dlq_topic: TopicSpec(partitions=1),
        k.verdicts_topic: TopicSpec(partitions=k.input_partitions),
        k.ip_lists_topic: TopicSpec(partitions=1, config={"cleanup.policy": "compact"}),
    }


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "json", "combined", "common", "log_format"]),
    default=None,
    help="Input format (default: config input.format, 'auto').",
)
@click.option(
    "--log-format", default=None, help="nginx-style log_format string (implies --format log_format)."
)
@click.option(
    "--verdicts-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write every verdict as one JSON line here ('-' = stdout).",
)
@click.option(
    "--rejected-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rejected-lines report (default: <verdicts-out>.rejected, or ./replay.rejected).",
)
@click.option("--no-db", is_flag=True, help="Do not write to the database.")
@click.option(
    "--findings-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write every detector finding per client and window step (parquet), for `calibrate`.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
def replay(
    paths: tuple[str, ...],
    config_path: str | None,
    fmt: str | None,
    log_format: str | None,
    verdicts_out: str | None,
    rejected_out: str | None,
    no_db: bool,
    findings_out: str | None,
    progress: bool | None,
) -> None:
    """Run the pipeline over log files (plain, .gz, '-' for stdin) in event time."""
    from abuse_stream.ingest.files import InputError, total_size
    from abuse_stream.replay import replay as do_replay
    from abuse_stream.sinks.files import JsonLinesSink, RejectedReport
    from abuse_stream.store.db import Store, migrate

    overrides: dict[str, Any] = {}
    if log_format:
        overrides["input.log_format"] = log_format
        overrides["input.format"] = fmt or "log_format"
    elif fmt:
        overrides["input.format"] = fmt
    cfg = _load(config_path, overrides)
    _setup_logging(cfg.log_level)
    pipeline = _pipeline(cfg)
    if findings_out:
        pipeline.keep_findings = True
    store = None
    if not no_db and cfg.database.url:
        migrate(cfg.database.url)
        store = Store(cfg.database.url, retries=cfg.database.write_retries)
    vout = JsonLinesSink(verdicts_out) if verdicts_out else None
    rej_path = rejected_out or (
        f"{verdicts_out}.rejected" if verdicts_out and verdicts_out != "-" else "replay.rejected"
    )
    rout = RejectedReport(rej_path)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        if show:
            size = total_size(paths)
            with click.progressbar(length=size or 0, label="replaying", file=sys.stderr) as bar:
                summary = do_replay(pipeline, paths, vout, rout, store, progress=bar.update)
        else:
            summary = do_replay(pipeline, paths, vout, rout, store)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    finally:
        if store is not None:
            store.close()
    if findings_out:
        pipeline.findings_frame().write_parquet(findings_out)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected_by_reason.items())) or "none"
    types = ", ".join(f"{k} {v}" for k, v in sorted(summary.verdicts_by_type.items())) or "none"
    click.echo(
        f"replayed {summary.lines} lines in {summary.seconds:.2f}s ({summary.lines_per_s:,.0f} lines/s): "
        f"{summary.accepted} accepted, {summary.rejected} rejected ({reasons})\n"
        f"verdicts: {summary.verdicts} ({types}); IP-list changes: {summary.ip_changes}\n"
        f"rejected lines: {rej_path}"
        + (f"\nverdicts: {verdicts_out}" if verdicts_out and verdicts_out != "-" else ""),
        err=True,
    )


@cli.command()
@config_option
def migrate(config_path: str | None) -> None:
    """Bring the database schema to the newest Alembic revision."""
    from abuse_stream.store.db import migrate as do_migrate

    cfg = _load(config_path)
    _setup_logging(cfg.log_level)
    if not cfg.database.url:
        raise click.ClickException("config key 'database.url': no database configured")
    do_migrate(cfg.database.url)
    click.echo(f"database at {_redact(cfg.database.url)} is at the newest revision")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.command()
@config_option
@click.option("--scenario", default="demo", show_default=True, help="Simulated traffic scenario.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="demo-out",
    show_default=True,
    help="Where the demo writes its SQLite database, traffic and labels.",
)
def demo(config_path: str | None, scenario: str, out_dir: str) -> None:
    """The whole pipeline on embedded defaults: a Tansu broker, SQLite, simulated labelled traffic."""
    from abuse_stream.demo import run_demo

    cfg_env = dict(os.environ)
    try:
        run_demo(config_path, scenario, Path(out_dir), cfg_env)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@cli.command()
@click.option("--scenario", default="default", show_default=True)
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Traffic file ('-' = stdout)."
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Labels CSV (ip, kind, ...).",
)
@click.option("--format", "fmt", type=click.Choice(["json", "combined"]), default="json", show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--scale", type=float, default=None, help="Multiply the number of actors.")
def simulate(
    scenario: str, out_path: str, labels_path: str | None, fmt: str, seed: int | None, scale: float | None
) -> None:
    """Write labelled synthetic traffic (humans, good automation and bots) for a scenario."""
    import dataclasses

    from abuse_stream import simulate as sim

    if scenario not in sim.SCENARIOS:
        raise click.ClickException(f"unknown scenario {scenario!r}; known: {sorted(sim.SCENARIOS)}")
    sc = sim.SCENARIOS[scenario]
    changes = {k: v for k, v in {"seed": seed, "scale": scale}.items() if v is not None}
    traffic = sim.generate(dataclasses.replace(sc, **changes))
    target: Any = sys.stdout if out_path == "-" else out_path
    n = traffic.to_jsonl(target) if fmt == "json" else traffic.to_combined(target)
    if labels_path:
        sim.write_labels(traffic.labels, labels_path)
    click.echo(f"wrote {n} lines ({traffic.labels.height} actors) to {out_path}", err=True)


@cli.command()
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Labels CSV (ip, kind, is_bot, bot_type), e.g. from `simulate --labels`.",
)
@click.option(
    "--verdicts",
    "verdicts_path",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Verdict JSON lines, e.g. from `replay --verdicts-out`.",
)
@click.option(
    "--traffic",
    "traffic_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The replayed traffic: enables time-to-detect and per-kind request counts.",
)
@click.option("--format", "fmt", type=click.Choice(["auto", "json", "combined", "common"]), default="auto")
@click.option(
    "--actions", default="denylist,graylist", show_default=True, help="Verdict actions that count as flagged."
)
@click.option("--strict", is_flag=True, help="Exit 1 if any target is not met.")
def evaluate(
    labels_path: str, verdicts_path: str, traffic_path: str | None, fmt: str, actions: str, strict: bool
) -> None:
    """Precision, recall, false positives per kind and time-to-detect of verdicts against labels."""
    import polars as pl

    from abuse_stream import evaluate as ev

    try:
        first = ev.first_seen_from_traffic(traffic_path, fmt) if traffic_path else None
        result = ev.evaluate(
            ev.load_labels(labels_path),
            ev.load_verdicts(verdicts_path),
            first,
            {a.strip() for a in actions.split(",") if a.strip()},
        )
    except (OSError, ValueError, pl.exceptions.PolarsError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(ev.render(result))
    if strict and any(t.ok is False for t in result.targets):
        sys.exit(1)


@cli.command()
@config_option
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option(
    "--findings",
    "findings_path",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Parquet from `replay --findings-out`.",
)
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Proposed config (YAML)."
)
@click.option(
    "--fp-budget",
    type=float,
    default=0.001,
    show_default=True,
    help="Largest share of legitimate IPs a bot type may flag.",
)
@click.option("--max-votes", type=int, default=5, show_default=True)
@click.option("--negatives", type=click.Choice(["legit", "all"]), default="legit", show_default=True)
def calibrate(
    config_path: str | None,
    labels_path: str,
    findings_path: str,
    out_path: str,
    fp_budget: float,
    max_votes: int,
    negatives: str,
) -> None:
    """Fit votes and thresholds per bot type from a labelled replay (logistic regression); writes a
    config proposal to review, never adopted automatically."""
    import polars as pl

    from abuse_stream import calibrate as cal

    cfg = _load(config_path)
    try:
        result = cal.calibrate_files(
            labels_path,
            findings_path,
            out_path,
            fp_budget=fp_budget,
            max_votes=max_votes,
            negatives=negatives,
            tolerance_levels=dict(cfg.detection.tolerance_levels),
            base_votes={bt: dict(c.votes) for bt, c in cfg.detection.bot_types.items()},
        )
    except (OSError, ValueError, pl.exceptions.PolarsError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote a proposed detection config to {out_path}")
    del result


@cli.group()
def exceptions() -> None:
    """The exception list: IPs, CIDRs, countries and source types that are analysed but never listed."""


def _parse_duration(text: str | None) -> float | None:
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, KeyError):
        raise click.BadParameter(f"not a duration: {text!r} (e.g. 90s, 30m, 2h, 7d)") from None


@exceptions.command("add")
@config_option
@click.argument("value")
@click.option(
    "--kind",
    type=click.Choice(["ip", "cidr", "country", "source"]),
    default=None,
    help="Default: guessed from VALUE (an address, a network, a 2-letter country, else a source type).",
)
@click.option("--comment", default=None, help="Why (shown in verdicts of excepted clients).")
@click.option("--expires-in", default=None, help="Lapse after this long (90s, 30m, 2h, 7d); default never.")
@click.option(
    "--publish/--no-publish",
    default=True,
    show_default=True,
    help="Publish the removal of list entries it covers to the IP-list topic.",
)
def exceptions_add(
    config_path: str | None,
    value: str,
    kind: str | None,
    comment: str | None,
    expires_in: str | None,
    publish: bool,
) -> None:
    """Add an exception; list entries made by detectors for the IPs it covers are removed."""
    import time as _time

    from abuse_stream.policy import ExceptionEntry, ExceptionList, guess_kind, normalise
    from abuse_stream.store.db import Store, migrate

    cfg = _load(config_path)
    if not cfg.database.url:
        raise click.ClickException("config key 'database.url': exceptions are kept in the database")
    try:
        k, v = normalise(kind or guess_kind(value), value)
        ttl = _parse_duration(expires_in)
        now = _time.time()
        entry = ExceptionEntry(k, v, comment, now + ttl if ttl else None)
        matcher = ExceptionList([entry], dict(cfg.policy.source_files))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    migrate(cfg.database.url)
    store = Store(cfg.database.url)
    store.add_exception(entry)
    covered = [
        e
        for e in store.active_entries()
        if e["source"] == "detector" and matcher.match(str(e["value"]).split("/")[0], now) is not None
    ]
    store.close()
    removes = []
    for e in covered:
        change = _manual_change(e["list"], e["value"], "remove", now, f"exception added: {entry.describe()}")
        change["bot_type"], change["verdict_id"] = e["bot_type"], e["verdict_id"]
        removes.append(change)
    _publish_changes(cfg, removes, publish)
    click.echo(f"added exception {entry.describe()}; removed {len(removes)} list entries it covers")


@exceptions.command("remove")
@config_option
@click.argument("value")
@click.option("--kind", type=click.Choice(["ip", "cidr", "country", "source"]), default=None)
def exceptions_remove(config_path: str | None, value: str, kind: str | None) -> None:
    """Remove an exception."""
    from abuse_stream.policy import guess_kind, normalise
    from abuse_stream.store.db import Store, migrate

    cfg = _load(config_path)
    try:
        k, v = normalise(kind or guess_kind(value), value)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    migrate(cfg.database.url or "")
    store = Store(cfg.database.url or "")
    found = store.remove_exception(k, v)
    store.close()
    if not found:
        raise click.ClickException(f"no exception {k} {v}")
    click.echo(f"removed exception {k} {v}")


@exceptions.command("list")
@config_option
def exceptions_list(config_path: str | None) -> None:
    """List the exceptions (config and database)."""
    from abuse_stream.store.db import Store, migrate
    from abuse_stream.verdicts import rfc3339

    cfg = _load(config_path)
    rows = [(e.kind or "", e.value, "config", "never", e.comment or "") for e in cfg.policy.exceptions]
    if cfg.database.url:
        migrate(cfg.database.url)
        store = Store(cfg.database.url)
        rows += [
            (e.kind, e.value, "database", rfc3339(e.expires_at) or "never", e.comment or "")
            for e in store.exceptions()
        ]
        store.close()
    click.echo(f"{'kind':<8} {'value':<40} {'from':<9} {'expires':<25} comment")
    for r in rows:
        click.echo(f"{r[0]:<8} {r[1]:<40} {r[2]:<9} {r[3]:<25} {r[4]}")


@cli.command()
@config_option
@click.option("--timeout", type=float, default=5.0, show_default=True)
def health(config_path: str | None, timeout: float) -> None:
    """Readiness: can the service reach its broker and its database? Exit 0 when both answer."""
    from confluent_kafka.admin import AdminClient
    from sqlalchemy import text

    from abuse_stream.store.db import make_engine

    cfg = _load(config_path)
    ok = True
    try:
        md = AdminClient(
            {"bootstrap.servers": cfg.kafka.bootstrap_servers, "socket.timeout.ms": int(timeout * 1000)}
        ).list_topics(timeout=timeout)
        missing = [
            t
            for t in (cfg.kafka.input_topic, cfg.kafka.verdicts_topic, cfg.kafka.ip_lists_topic)
            if t not in md.topics
        ]
        click.echo(
            f"kafka     ok ({len(md.brokers)} broker(s) at {cfg.kafka.bootstrap_servers})"
            + (f"; topics not created yet: {', '.join(missing)}" if missing else "")
        )
    except Exception as e:
        ok = False
        click.echo(f"kafka     DOWN ({cfg.kafka.bootstrap_servers}): {e}")
    if cfg.database.url:
        try:
            engine = make_engine(cfg.database.url)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            engine.dispose()
            click.echo(f"database  ok ({_redact(cfg.database.url)}, schema revision {version})")
        except Exception as e:
            ok = False
            click.echo(f"database  DOWN ({_redact(cfg.database.url)}): {str(e).splitlines()[0]}")
    sys.exit(0 if ok else 1)


@cli.group("lists")
def lists_group() -> None:
    """Manual deny/graylist operations (stored, and published to the IP-list topic)."""


def _publish_changes(cfg: Config, changes: list[dict[str, Any]], publish: bool) -> None:
    from abuse_stream.store.db import Store, migrate

    if not cfg.database.url:
        raise click.ClickException("config key 'database.url': IP lists are kept in the database")
    migrate(cfg.database.url)
    store = Store(cfg.database.url)
    store.write_batch([], changes)
    store.close()
    if publish and changes:
        from abuse_stream.sinks.kafka import KafkaSink

        sink = KafkaSink(cfg.kafka)
        sink.add_ip_changes(changes)
        try:
            sink.close(15)
        except Exception as e:
            raise click.ClickException(f"stored, but publishing to the IP-list topic failed: {e}") from None


def _manual_change(
    lst: str, value: str, op: str, expires: float | None, reason: str | None
) -> dict[str, Any]:
    import time as _time

    from abuse_stream.verdicts import rfc3339

    now = _time.time()
    return {
        "list": lst,
        "value": value,
        "op": op,
        "expires_at": rfc3339(expires),
        "reason": reason or "manual",
        "bot_type": None,
        "verdict_id": None,
        "source": "manual",
        "changed_at": rfc3339(now),
    }


def _network(value: str) -> str:
    import ipaddress

    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise click.BadParameter(f"not an IP or CIDR: {value!r}") from None
    return str(net.network_address) if net.num_addresses == 1 else str(net)


publish_option = click.option(
    "--publish/--no-publish",
    default=True,
    show_default=True,
    help="Publish the change to the IP-list topic (enforcement points).",
)


@lists_group.command("add")
@config_option
@click.argument("value")
@click.option(
    "--list", "lst", type=click.Choice(["denylist", "graylist"]), default="denylist", show_default=True
)
@click.option("--duration", default=None, help="How long (90s, 30m, 2h, 7d); default forever.")
@click.option("--reason", default=None)
@publish_option
def lists_add(
    config_path: str | None, value: str, lst: str, duration: str | None, reason: str | None, publish: bool
) -> None:
    """Add an IP or CIDR to a list, forever or for a duration."""
    import time as _time

    cfg = _load(config_path)
    ttl = _parse_duration(duration)
    v = _network(value)
    _publish_changes(
        cfg, [_manual_change(lst, v, "add", _time.time() + ttl if ttl else None, reason)], publish
    )
    click.echo(f"{lst}: added {v}" + (f" for {duration}" if duration else " (no expiry)"))


@lists_group.command("remove")
@config_option
@click.argument("value")
@click.option(
    "--list", "lst", type=click.Choice(["denylist", "graylist"]), default=None, help="Default: both lists."
)
@publish_option
def lists_remove(config_path: str | None, value: str, lst: str | None, publish: bool) -> None:
    """Remove an IP or CIDR (renewed bot activity lists it again)."""
    import time as _time

    cfg = _load(config_path)
    v = _network(value)
    now = _time.time()
    changes = [
        _manual_change(x, v, "remove", now, "removed by hand")
        for x in ([lst] if lst else ["denylist", "graylist"])
    ]
    _publish_changes(cfg, changes, publish)
    click.echo(f"removed {v} from {lst or 'both lists'}")


@lists_group.command("set-duration")
@config_option
@click.argument("value")
@click.option(
    "--list", "lst", type=click.Choice(["denylist", "graylist"]), default="denylist", show_default=True
)
@click.option("--duration", default=None, help="New lifetime from now (90s, 30m, 2h, 7d); omit for forever.")
@publish_option
def lists_set_duration(
    config_path: str | None, value: str, lst: str, duration: str | None, publish: bool
) -> None:
    """Change how long an entry stays listed."""
    import time as _time

    from abuse_stream.store.db import Store, migrate

    cfg = _load(config_path)
    v = _network(value)
    migrate(cfg.database.url or "")
    store = Store(cfg.database.url or "")
    current = [e for e in store.active_entries() if e["list"] == lst and e["value"] == v]
    store.close()
    if not current:
        raise click.ClickException(f"{v} is not on the {lst}")
    ttl = _parse_duration(duration)
    change = _manual_change(lst, v, "extend", _time.time() + ttl if ttl else None, current[0]["reason"])
    change["bot_type"], change["verdict_id"] = current[0]["bot_type"], current[0]["verdict_id"]
    _publish_changes(cfg, [change], publish)
    click.echo(f"{lst}: {v} now " + (f"for {duration}" if duration else "without expiry"))


def _current_entries(cfg: Config) -> list[dict[str, Any]]:
    import time as _time

    from abuse_stream.store.db import Store, migrate

    migrate(cfg.database.url or "")
    store = Store(cfg.database.url or "")
    now = _time.time()
    rows = [e for e in store.active_entries() if e["expires_at"] is None or e["expires_at"].timestamp() > now]
    store.close()
    return rows


def _entry_line(e: dict[str, Any]) -> str:
    until = (
        e["expires_at"].isoformat(timespec="seconds").replace("+00:00", "Z") if e["expires_at"] else "never"
    )
    return f"{e['list']:<9} {e['value']:<40} {until:<21} {e['source']:<9} {e['reason'] or ''}"


@lists_group.command("show")
@config_option
@click.option("--list", "lst", type=click.Choice(["denylist", "graylist"]), default=None)
def lists_show(config_path: str | None, lst: str | None) -> None:
    """The current entries (not expired), with their expiry and reason."""
    rows = [e for e in _current_entries(_load(config_path)) if lst is None or e["list"] == lst]
    click.echo(f"{'list':<9} {'value':<40} {'until':<21} {'source':<9} reason")
    for e in sorted(rows, key=lambda e: (e["list"], e["value"])):
        click.echo(_entry_line(e))


@lists_group.command("check")
@config_option
@click.argument("ip")
def lists_check(config_path: str | None, ip: str) -> None:
    """Which lists cover an IP (directly or by a network), why and until when; and exceptions."""
    import ipaddress

    cfg = _load(config_path)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise click.BadParameter(f"not an IP: {ip!r}") from None
    hits = [e for e in _current_entries(cfg) if addr in ipaddress.ip_network(e["value"], strict=False)]
    for e in hits:
        click.echo(_entry_line(e))
    if not hits:
        click.echo(f"{ip} is on no list")
    import time as _time

    from abuse_stream.policy import exception_list
    from abuse_stream.store.db import Store

    store = Store(cfg.database.url or "")
    exc = exception_list(cfg.policy, store.exceptions()).match(ip, _time.time())
    store.close()
    if exc is not None:
        click.echo(f"exception: {exc.describe()} (analysed, never listed)")


@cli.group()
def events() -> None:
    """Stored verdicts (events) with their explanations."""


def _when(text: str | None) -> Any:
    from datetime import UTC, datetime, timedelta

    if not text:
        return None
    try:
        if text[-1] in "smhdw" and text[:-1].replace(".", "").isdigit():
            return datetime.now(UTC) - timedelta(seconds=_parse_duration(text) or 0)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not a time: {text!r} (RFC 3339, or an age like 2h, 7d)") from None


@events.command("list")
@config_option
@click.option("--since", default=None, help="RFC 3339 time or an age (24h, 7d).")
@click.option("--until", default=None)
@click.option("--bot-type", default=None)
@click.option("--ip", default=None, help="An IP or a CIDR.")
@click.option("--profile", default=None)
@click.option("--action", type=click.Choice(["denylist", "graylist", "monitor"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
def events_list(
    config_path: str | None,
    since: str | None,
    until: str | None,
    bot_type: str | None,
    ip: str | None,
    profile: str | None,
    action: str | None,
    limit: int,
) -> None:
    """List events (newest first) with filters."""
    from abuse_stream.events import list_events, render_list
    from abuse_stream.store.db import make_engine

    cfg = _load(config_path)
    try:
        rows = list_events(
            make_engine(cfg.database.url or ""),
            _when(since),
            _when(until),
            bot_type,
            ip,
            profile,
            action,
            limit,
        )
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(render_list(rows))


@events.command("show")
@config_option
@click.argument("verdict_id")
def events_show(config_path: str | None, verdict_id: str) -> None:
    """Explain one event: detectors with value, normal, threshold and factor, and the requests behind it."""
    from abuse_stream.events import get_event, render_event
    from abuse_stream.store.db import make_engine

    cfg = _load(config_path)
    row = get_event(make_engine(cfg.database.url or ""), verdict_id)
    if row is None:
        raise click.ClickException(f"no event {verdict_id}")
    click.echo(render_event(row))


def _register_commands_of_other_modules() -> None:
    from abuse_stream.enforce import enforce_group
    from abuse_stream.report import report_command

    cli.add_command(report_command)
    cli.add_command(enforce_group)


_register_commands_of_other_modules()


def main() -> None:
    cli(prog_name="abuse-stream")
