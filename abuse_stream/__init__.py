"""abuse-stream: out-of-band detection of malicious bots from mirrored HTTP access logs.

The tree follows the data::

    ingest/     raw lines (Kafka or files) -> canonical records + rejected lines
    window.py   canonical records -> per-client, per-time-bucket aggregates in event time
    features.py window aggregates -> one feature row per client per window step
    baseline.py river online models of normal traffic per application
    detectors/  pluggable detectors (one registry) -> findings per client
    scoring.py  findings -> confidence per bot type vs profile tolerance
    verdicts.py confident detections -> verdicts + IP-list changes (deduplicated)
    sinks/      verdicts, IP-list changes and dead letters -> Kafka / files
    store/      verdicts and IP lists -> Postgres / SQLite (SQLAlchemy, Alembic)
    pipeline.py wires the pure stages together for one batch
    service.py  the Kafka consume -> process -> publish -> store -> commit loop
    cli.py      the `abuse-stream` command; config is loaded here, once
"""

__version__ = "0.1.0"
