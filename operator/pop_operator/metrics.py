"""The operator's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "edgepop_operator_reconciles_total",
    "EdgePop reconciliations by outcome (ok, error).",
    ["outcome"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "edgepop_operator_reconcile_duration_seconds",
    "Time to reconcile one EdgePop.",
    registry=REGISTRY,
)
SYNC_PUBLISHES = Counter(
    "edgepop_operator_sync_publishes_total",
    "Sync messages published on Redis, by reason (operator, lagging) and outcome.",
    ["reason", "outcome"],
    registry=REGISTRY,
)
LAG_CHECKS = Counter(
    "edgepop_operator_lag_checks_total",
    "Region lag checks, by outcome (ok, lagging, unknown).",
    ["outcome"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "edgepop_operator_leader",
    "1 while this replica holds the leader Lease and runs the handlers.",
    registry=REGISTRY,
)
