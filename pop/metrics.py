"""Every Prometheus metric the POP exports, defined in one place.

Dashboards, alerts and the operator import ``METRIC_NAMES`` (or read the names here);
a test keeps them in step. Names follow Prometheus conventions (``_total``,
``_seconds``, ``_bytes``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from pop.contract import LAG_METRIC

# The *_created series double every counter's cardinality and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PopMetrics:
    """The POP's metrics, on a registry of their own (one per POP, so tests can run many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.info = Info("edgepop", "Version, engine and region of this POP", registry=r)
        self.requests = Counter(
            "edgepop_requests_total",
            "Hrana requests handled, by endpoint, request type, route and outcome",
            ["endpoint", "request_type", "route", "outcome"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "edgepop_http_request_duration_seconds",
            "Time to answer an HTTP call, by endpoint and route",
            ["endpoint", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.syncs = Counter(
            "edgepop_syncs_total",
            "Replica syncs, by trigger and outcome",
            ["trigger", "outcome"],
            registry=r,
        )
        self.sync_duration = Histogram(
            "edgepop_sync_duration_seconds",
            "Time one replica sync took, by trigger",
            ["trigger"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sync_last_success_age = Gauge(
            LAG_METRIC,
            "Seconds since the last successful sync (-1 before the first)",
            registry=r,
        )
        self.replica_size = Gauge(
            "edgepop_replica_size_bytes", "Size of the replica file and its WAL", registry=r
        )
        self.replica_position = Gauge(
            "edgepop_replica_position",
            "Replication position of the replica (-1 when the engine has no numeric one)",
            registry=r,
        )
        self.frames_pulled = Counter(
            "edgepop_sync_frames_pulled_total",
            "WAL frames the replica pulled from the origin, bootstrap included (libsql engine)",
            registry=r,
        )
        self.redis_connected = Gauge(
            "edgepop_redis_connected", "1 while the pub/sub subscriber is connected", registry=r
        )
        self.origin_errors = Counter(
            "edgepop_origin_errors_total",
            "Calls to the origin that failed, by kind",
            ["kind"],
            registry=r,
        )
        self.pubsub_messages = Counter(
            "edgepop_pubsub_messages_total",
            "Sync messages on Redis, by direction (sent, received, skipped)",
            ["direction"],
            registry=r,
        )
        self.errors = Counter(
            "edgepop_errors_total",
            "Error answers sent to clients (request errors and batch step errors), by code",
            ["code"],
            registry=r,
        )
        self.open_streams = Gauge(
            "edgepop_open_streams", "Hrana streams currently kept open", registry=r
        )
        self.peer_calls = Counter(
            "edgepop_peer_calls_total",
            "HTTP stream calls passed on to the POP of the region holding the stream, by "
            "endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.open_connections = Gauge(
            "edgepop_open_connections",
            "HTTP client connections open (WebSocket connections not included)",
            registry=r,
        )
        self.connections_shed = Counter(
            "edgepop_connections_shed_total",
            "At MAX_CONNECTIONS: idle connections closed to make room (idle), new "
            "connections refused as every one was busy (busy), requests other than probes "
            "refused on a connection kept for probes (probes_only)",
            ["reason"],
            registry=r,
        )
        self._request_counters: dict[tuple[str, str, str, str], Any] = {}

    def count_request(self, endpoint: str, request_type: str, route: str, outcome: str) -> None:
        """``requests.labels(...).inc()``, with the labelled child looked up once."""
        key = (endpoint, request_type, route, outcome)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.requests.labels(*key)
        counter.inc()

    def count_errors(self, answer: dict[str, Any]) -> None:
        """Count the error codes in one request's answer, its batch step errors included."""
        if answer["type"] == "error":
            self.errors.labels(answer["error"].get("code") or "UNKNOWN").inc()
            return
        result = answer["response"].get("result")
        if answer["response"]["type"] == "batch" and result:
            for error in result["step_errors"]:
                if error is not None:
                    self.errors.labels(error.get("code") or "UNKNOWN").inc()


def _exported_names() -> tuple[str, ...]:
    """The names as Prometheus exposes them (counters gain ``_total``, info ``_info``)."""
    suffix = {"counter": "_total", "info": "_info"}
    families = PopMetrics().registry.collect()
    return tuple(sorted(f.name + suffix.get(f.type, "") for f in families))


# What dashboards, alerts and the operator may refer to: derived from the definitions
# above, so it cannot drift from them.
METRIC_NAMES: tuple[str, ...] = _exported_names()
