"""Prometheus metrics of the service (``run`` serves them on ``metrics.port``, default 9108).

One registry per :class:`Metrics` (no module-level globals: tests and several pipelines in one
process do not share counters). The service updates them once per batch.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.consumed = Counter("abuse_stream_records_consumed", "Input records consumed", registry=r)
        self.rejected = Counter(
            "abuse_stream_records_rejected", "Input records dead-lettered, by reason", ["reason"], registry=r
        )
        self.lag = Gauge(
            "abuse_stream_consumer_lag", "Unread messages on the assigned partitions", registry=r
        )
        self.batch_seconds = Histogram(
            "abuse_stream_batch_seconds",
            "Time to process, publish, store and commit one batch",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.clients = Gauge("abuse_stream_clients_tracked", "Clients with state in the window", registry=r)
        self.evictions = Counter(
            "abuse_stream_clients_evicted", "Clients evicted by the client cap", registry=r
        )
        self.verdicts = Counter(
            "abuse_stream_verdicts",
            "Verdicts published, by bot type and action",
            ["bot_type", "action"],
            registry=r,
        )
        self.db_errors = Counter("abuse_stream_db_errors", "Failed database writes (retried)", registry=r)
        self.producer_errors = Counter("abuse_stream_producer_errors", "Failed Kafka publishes", registry=r)
        self.ready = Gauge("abuse_stream_ready", "1 when the broker and the database answer", registry=r)
        self.partitions = Gauge(
            "abuse_stream_partitions_assigned", "Input partitions this instance owns", registry=r
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
