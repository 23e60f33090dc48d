"""Every dashboard panel's query, sent through a real Prometheus (Debian's package) that
scrapes real POPs and a real operator under real traffic: reads, writes through two
regions, a write transaction whose calls alternate between the two POPs of one region,
syncs, the origin stopped and started again, Redis stopped and started again, the
operator reconciling an EdgePop and publishing a sync. A query Prometheus refuses, or one
that returns no series, fails the test; so does a template variable that lists nothing.

The targets get the labels the operator's ServiceMonitor gives POP pods (namespace,
edgepop, region, pod) by static configuration: these POPs run as processes, not pods.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pop.devtools.processes import PopProcess, PrometheusServer, RedisProcess, SqldServer, free_port
from pop_operator.monitoring.dashboards import BOARDS, RATE, variable_selector
from tests.balancer import balancing
from tests.conftest import SCHEMA
from tests.helpers import Target, execute, metric, pipeline, running
from tests.operator.cluster import Kube, wait_until
from tests.operator.test_apiserver import _apply_example, _redis_secret

TOKEN = "prometheus-test-token"
POP_NAMESPACE = "shop"
OPERATOR_LABELS = {"namespace": "edge-pop-system", "pod": "edge-operator-0"}


def _pop(
    origin: SqldServer, workdir: Path, region: str, host: str, port: int, redis: RedisProcess
) -> PopProcess:
    return PopProcess(
        origin.url,
        workdir,
        region=region,
        token=TOKEN,
        engine="libsql",
        host=host,
        port=port,
        extra_env={
            "REDIS_CONNECTION_STRING": redis.url,
            "PEER_NAME": host,
            "PEER_URL_TEMPLATE": f"http://{{peer}}:{port}",
            "TURSO_SYNC_INTERVAL": "2",
        },
    )


def _filled(expr: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        expr = expr.replace(f"${name}", value)
    return expr.replace(RATE, "1m")


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "prometheus is missing: scripts/test installs Debian's prometheus package"
    return found


@pytest.fixture()
def origin(sqld_binary: str, tmp_path: Path) -> Iterator[SqldServer]:
    server = SqldServer(sqld_binary, tmp_path / "sqld")
    with running(server):
        for sql in SCHEMA:
            server.execute(sql)
        yield server


def test_every_panel_returns_data_from_real_pops_and_the_operator(
    kube: Kube,
    namespace: str,
    start_operator: Any,
    origin: SqldServer,
    redis_binary: str,
    prometheus_binary: str,
    node_client: Any,
    tmp_path: Path,
) -> None:
    redis = RedisProcess(tmp_path / "redis", binary=redis_binary)
    eu_port = free_port()
    pops = {
        "shop-eu-0": _pop(origin, tmp_path / "eu-0", "eu", "127.0.0.2", eu_port, redis),
        "shop-eu-1": _pop(origin, tmp_path / "eu-1", "eu", "127.0.0.3", eu_port, redis),
        "shop-us-0": _pop(origin, tmp_path / "us-0", "us", "127.0.0.1", free_port(), redis),
    }
    operator = start_operator(EDGEPOP_OPERATOR_LAG_CHECK_SECONDS="1")
    operator.wait_role("leader")
    _apply_example(kube, namespace)
    _redis_secret(kube, namespace, redis.url)
    targets = [
        (
            f"{pop.host}:{pop.port}",
            {"namespace": POP_NAMESPACE, "edgepop": "shop", "region": pop.region, "pod": name},
        )
        for name, pop in pops.items()
    ] + [(f"127.0.0.1:{operator.port}", OPERATOR_LABELS)]
    prometheus = PrometheusServer(tmp_path / "prometheus", targets, binary=prometheus_binary)
    with running(redis, *pops.values(), prometheus):
        _traffic(pops, origin, redis, node_client, kube, namespace)
        time.sleep(3)  # a few more scrapes
        _check_every_query(prometheus)


def _traffic(
    pops: dict[str, PopProcess],
    origin: SqldServer,
    redis: RedisProcess,
    node_client: Any,
    kube: Kube,
    namespace: str,
) -> None:
    eu, eu_other, us = pops.values()
    # A write transaction whose calls alternate between eu's two POPs (calls passed on).
    with balancing([eu.url, eu_other.url]) as (url, _):
        node_client("transactionLoop", Target(url, TOKEN), "prom:3")
    for pop in pops.values():
        with pop.client() as http:
            for _ in range(5):
                pipeline(http, [execute("SELECT count(*) FROM kv")])
            assert http.post("/sync").json()["ok"]
    with us.client() as http:
        pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('prom-us', 'x')")])
    # The origin stopped: a write fails (ORIGIN_UNAVAILABLE), and so does a sync.
    origin.stop()
    with us.client() as http:
        answer = pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('prom-down', 'x')")])
        assert answer["results"][0]["error"]["code"] == "ORIGIN_UNAVAILABLE", answer
        assert not http.post("/sync").json()["ok"]
    origin.start_and_wait()
    # Redis stopped and started again: every POP sees it go and come back.
    redis.stop()
    wait_until(
        lambda: all(metric(p, "edgepop_redis_connected") == 0 for p in pops.values()),
        30,
        "every POP without Redis",
    )
    redis.start_and_wait()
    wait_until(
        lambda: all(metric(p, "edgepop_redis_connected") == 1 for p in pops.values()),
        60,
        "every POP subscribed again",
    )
    with eu.client() as http:
        pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('prom-eu', 'x')")])
    # The operator publishes a sync when asked.
    kube.cp.kubectl("annotate", "epop", "shop", "-n", namespace, "edgepop.io/sync-requested=1")
    wait_until(
        lambda: all(metric(p, "edgepop_syncs_total", trigger="pubsub") > 0 for p in pops.values()),
        30,
        "every POP syncing on a pub/sub message",
    )


def _check_every_query(prometheus: PrometheusServer) -> None:
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
                # Every label it groups by is on the series: a label the programs do not
                # export would be missing from them.
                grouped = {
                    label.strip()
                    for labels in re.findall(r"by \(([^)]*)\)", filled)
                    for label in labels.split(",")
                } - {"le"}
                for found in series:
                    assert grouped <= found["metric"].keys(), (chart.title, found["metric"])
