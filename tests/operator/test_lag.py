"""Reading a region's sync lag from its POPs' /metrics."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from pop.contract import LAG_METRIC
from pop.devtools.processes import free_port
from pop_operator.lag import _pod_target, parse_lag, region_lag
from tests.operator.metrics_server import lag_metrics_server


def test_parse_lag_reads_the_gauge_written_by_prometheus_client() -> None:
    registry = CollectorRegistry()
    Gauge(LAG_METRIC, "lag", registry=registry).set(42.5)
    Gauge("edgepop_other_seconds", "other", registry=registry).set(999)
    assert parse_lag(generate_latest(registry).decode()) == 42.5


def test_parse_lag_is_none_without_the_gauge() -> None:
    assert parse_lag("# nothing here\nedgepop_other_seconds 3\n") is None


def test_pod_target_uses_the_named_port_of_running_pods() -> None:
    pod = {
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 3111}]}]},
        "status": {"phase": "Running", "podIP": "10.1.2.3"},
    }
    assert _pod_target(pod) == "http://10.1.2.3:3111/metrics"
    assert _pod_target({**pod, "status": {"phase": "Pending", "podIP": "10.1.2.3"}}) is None
    assert _pod_target({**pod, "status": {"phase": "Running"}}) is None


async def test_region_lag_is_the_worst_answering_pop() -> None:
    with lag_metrics_server(12.0) as (fresh, _), lag_metrics_server(480.0) as (stale, _):
        targets = [
            f"http://127.0.0.1:{fresh}/metrics",
            f"http://127.0.0.1:{stale}/metrics",
            f"http://127.0.0.1:{free_port()}/metrics",  # a POP that does not answer
        ]
        async with httpx.AsyncClient(timeout=2) as http:
            assert await region_lag(http, targets) == 480.0
            assert await region_lag(http, targets[2:]) is None
