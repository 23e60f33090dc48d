"""What the alert and dashboard tests share: the series the programs export, the chart
rendered with some values set, and the traffic after which every dashboard panel must
have data in a real Prometheus (tests/operator/test_prometheus.py for POP processes,
tests/operator/test_pods.py for POP pods)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import yaml

from pop.devtools.processes import PrometheusServer, RedisProcess, SqldServer
from pop.metrics import METRIC_NAMES
from pop_operator.metrics import REGISTRY as OPERATOR_REGISTRY
from pop_operator.monitoring.dashboards import BOARDS, RATE, variable_selector
from tests.balancer import balancing
from tests.helpers import Target, execute, metric_at, pipeline
from tests.operator.cluster import wait_until
from tests.operator.test_chart import CHART, REPOSITORY, _helm

TOKEN = "prometheus-test-token"


def exported_series() -> set[str]:
    """Every series name the POP and the operator export (histograms' parts included),
    and Prometheus's own ``up``."""
    families = set(METRIC_NAMES) | {metric.name for metric in OPERATOR_REGISTRY.collect()}
    suffixes = ("", "_total", "_bucket", "_count", "_sum", "_info")
    return {family + suffix for family in families for suffix in suffixes} | {"up"}


def rendered(helm_binary: str, kind: str, *settings: str) -> list[dict[str, Any]]:
    """The chart's objects of ``kind``, rendered with ``settings`` (``--set`` each)."""
    done = _helm(
        helm_binary,
        "template",
        "edge",
        str(CHART),
        "--set",
        f"operator.image.repository={REPOSITORY}",
        *(arg for setting in settings for arg in ("--set", setting)),
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc and doc["kind"] == kind]


def drive_traffic(
    region: list[Target],
    other: Target,
    origin: SqldServer,
    redis: RedisProcess,
    node_client: Any,
    request_sync: Callable[[], None],
) -> None:
    """What every panel needs data from: ``region``'s two POPs and one POP ``other``
    elsewhere, all on ``origin`` and ``redis``; ``request_sync`` asks the operator for a
    sync."""
    everyone = [*region, other]
    # Write transactions whose calls alternate between the region's two POPs.
    with balancing([pop.url for pop in region]) as (url, _):
        node_client("transactionLoop", Target(url, region[0].token), "prom:3")
    for pop in everyone:
        with pop.client() as http:
            for _ in range(5):
                pipeline(http, [execute("SELECT count(*) FROM kv")])
            assert http.post("/sync").json()["ok"]
    with other.client() as http:
        pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('prom-other', 'x')")])
    # The origin stopped: a write fails (ORIGIN_UNAVAILABLE), and so does a sync.
    origin.stop()
    with other.client() as http:
        answer = pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('prom-down', 'x')")])
        assert answer["results"][0]["error"]["code"] == "ORIGIN_UNAVAILABLE", answer
        assert not http.post("/sync").json()["ok"]
    origin.start_and_wait()
    # Redis stopped and started again: every POP sees it go and come back.
    redis.stop()
    wait_until(
        lambda: all(metric_at(p.url, "edgepop_redis_connected") == 0 for p in everyone),
        30,
        "every POP without Redis",
    )
    redis.start_and_wait()
    wait_until(
        lambda: all(metric_at(p.url, "edgepop_redis_connected") == 1 for p in everyone),
        90,
        "every POP subscribed again",
    )
    with region[0].client() as http:
        pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('prom-region', 'x')")])
    request_sync()
    wait_until(
        lambda: all(
            metric_at(p.url, "edgepop_syncs_total", trigger="pubsub") > 0 for p in everyone
        ),
        30,
        "every POP syncing on a pub/sub message",
    )
    time.sleep(3)  # a few more scrapes


def check_every_panel(prometheus: PrometheusServer) -> None:
    """Every board's variables list values, and every panel's query, with them filled in,
    returns series that carry the labels it groups by."""
    for board in BOARDS:
        values: dict[str, str] = {}
        for variable in board.variables:
            selector = variable_selector(board, values)
            listed = prometheus.label_values(variable, selector)
            assert listed, f"{board.uid}: ${variable} lists nothing ({selector})"
            values[variable] = "|".join(listed)
        for chart in board.charts:
            for query in chart.queries:
                filled = _filled(query.expr, values)
                series = prometheus.query(filled)
                assert series, f"{board.uid} / {chart.title}: no series\n{filled}"
                # A label the programs do not export would be missing from the series.
                grouped = {
                    label.strip()
                    for labels in re.findall(r"by \(([^)]*)\)", filled)
                    for label in labels.split(",")
                } - {"le"}
                for found in series:
                    assert grouped <= found["metric"].keys(), (chart.title, found["metric"])


def _filled(expr: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        expr = expr.replace(f"${name}", value)
    return expr.replace(RATE, "1m")
