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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pop.devtools.processes import PopProcess, PrometheusServer, RedisProcess, SqldServer, free_port
from tests.conftest import SCHEMA
from tests.helpers import Target, running
from tests.operator.cluster import Kube
from tests.operator.example import apply_example, apply_redis_secret
from tests.operator.monitoring import TOKEN, check_every_panel, drive_traffic

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
    apply_example(kube, namespace)
    apply_redis_secret(kube, namespace, redis.url)
    targets = [
        (
            f"{pop.host}:{pop.port}",
            {"namespace": POP_NAMESPACE, "edgepop": "shop", "region": pop.region, "pod": name},
        )
        for name, pop in pops.items()
    ] + [(f"127.0.0.1:{operator.port}", OPERATOR_LABELS)]
    prometheus = PrometheusServer(tmp_path / "prometheus", targets, binary=prometheus_binary)
    eu, eu_other, us = (Target(pop.url, TOKEN) for pop in pops.values())
    with running(redis, *pops.values(), prometheus):

        def request_sync() -> None:
            annotation = "edgepop.io/sync-requested=1"
            kube.cp.kubectl("annotate", "epop", "shop", "-n", namespace, annotation)

        drive_traffic([eu, eu_other], us, origin, redis, node_client, request_sync)
        check_every_panel(prometheus)
