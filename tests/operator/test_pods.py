"""The pod tier: edge-pop as its users run it, on a one-node cluster with real pods.

tools/kube/node.py gives a kubelet (containerd, runc, CNI bridge), the controllers, the
scheduler and kube-proxy. The image is the one ``tools/image/build.sh`` builds from the
Dockerfile; the chart is installed by the real ``helm``; nothing patches a status by hand.
The origin (``sqld``) and Redis run on the host, at the bridge's address, where pods
reach them; the tests reach the POPs by pod IP.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pop.localrun import RedisProcess, SqldServer, loopback_client
from pop_operator.render.identity import POP_PORT
from tests.helpers import execute, pipeline, rows
from tests.operator.cluster import ControlPlaneError, Kube, ensure_binaries, wait_until
from tests.operator.samples import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools/kube"))
from node import HOST_IP, Cluster

CHART = REPO_ROOT / "charts" / "edge-pop"
RELEASE = "edge"
OPERATOR_NAMESPACE = "edge-pop-system"
STORAGE_CLASS = "edge-pop-local"
OPERATOR_SELECTOR = "app.kubernetes.io/name=edge-pop-operator"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pop_image: str) -> Iterator[Cluster]:
    try:
        bin_dir = ensure_binaries()
    except ControlPlaneError as error:
        pytest.fail(f"no Kubernetes binaries: run tools/kube/ensure.sh ({error})")
    with Cluster(tmp_path_factory.mktemp("pods"), bin_dir=bin_dir) as running:
        running.node.load_image(pop_image)
        yield running


@pytest.fixture(scope="module")
def pod_kube(cluster: Cluster) -> Kube:
    return Kube(cluster.control_plane)


@pytest.fixture(scope="module")
def origin(
    sqld_binary: str, tmp_path_factory: pytest.TempPathFactory, cluster: Cluster
) -> Iterator[SqldServer]:
    server = SqldServer(sqld_binary, tmp_path_factory.mktemp("sqld"), host=HOST_IP)
    server.start_and_wait()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory, cluster: Cluster
) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"), binary=redis_binary, host=HOST_IP)
    server.start_and_wait()
    yield server
    server.stop()


def helm(helm_binary: str, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = str(cluster.control_plane.kubeconfig)
    done = subprocess.run(
        [helm_binary, "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def release(helm_binary: str, cluster: Cluster, pop_image: str) -> str:
    repository, _, tag = pop_image.rpartition(":")
    helm(
        helm_binary,
        cluster,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--create-namespace",
        "--set",
        f"operator.image.repository={repository}",
        "--set",
        f"operator.image.tag={tag}",
        "--wait",
        "--timeout",
        "180s",
    )
    return RELEASE


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    listing = kube.cp.api("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}")
    return list(listing["items"])


def _describe(cluster: Cluster, namespace: str) -> str:
    """What someone debugging a failed test looks at first."""
    kubectl = cluster.control_plane.kubectl
    shown = [
        kubectl("-n", namespace, "get", "edgepop,sts,pod,pvc", "-o", "wide", check=False),
        kubectl("-n", namespace, "get", "edgepop", "-o", "yaml", check=False),
        kubectl("-n", namespace, "describe", "pods", check=False),
        kubectl(
            "-n", OPERATOR_NAMESPACE, "logs", "-l", OPERATOR_SELECTOR, "--tail=40", check=False
        ),
    ]
    return "\n".join((done.stdout + done.stderr)[-5000:] for done in shown)


def test_helm_install_runs_the_operator_as_pods_under_the_charts_rbac(
    cluster: Cluster, pod_kube: Kube, release: str
) -> None:
    pods = wait_until(
        lambda: [p for p in _pods(pod_kube, OPERATOR_NAMESPACE, OPERATOR_SELECTOR) if _ready(p)],
        120,
        "the operator's pods Ready",
    )
    assert {p["spec"]["serviceAccountName"] for p in pods} == {f"{release}-operator"}
    logs = cluster.control_plane.kubectl(
        "-n", OPERATOR_NAMESPACE, "logs", "-l", OPERATOR_SELECTOR, "--tail=-1"
    ).stdout
    assert "forbidden" not in logs.lower(), logs[-4000:]


def _edgepop(name: str, origin_url: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "edgepop.io/v1alpha1",
        "kind": "EdgePop",
        "metadata": {"name": name},
        "spec": {
            "origin": {"url": origin_url},
            "engine": "libsql",
            "clientAuthSecretRef": {"name": f"{name}-pop", "key": "token"},
            "image": image,
            "regions": [
                {"name": "eu", "storage": {"size": "1Gi", "storageClassName": STORAGE_CLASS}},
                {"name": "us", "storage": {"size": "1Gi", "storageClassName": STORAGE_CLASS}},
            ],
            "sync": {
                "intervalSeconds": 60,
                "redis": {"urlSecretRef": {"name": f"{name}-redis", "key": "url"}},
            },
            "monitoring": {"serviceMonitor": False},
        },
    }


def _secret(name: str, key: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {key: value},
    }


def test_two_regions_become_ready_by_probe_and_a_write_in_one_is_read_in_the_other(
    cluster: Cluster,
    pod_kube: Kube,
    release: str,
    origin: SqldServer,
    redis: RedisProcess,
    pop_image: str,
) -> None:
    namespace = pod_kube.namespace("shop")
    token = secrets.token_urlsafe(16)
    pod_kube.create("Secret", namespace, _secret("shop-pop", "token", token))
    pod_kube.create("Secret", namespace, _secret("shop-redis", "url", redis.url))
    cluster.node.local_volumes(2, storage_class=STORAGE_CLASS)
    pod_kube.create("EdgePop", namespace, _edgepop("shop", origin.url, pop_image))

    def both_ready() -> dict[str, dict[str, Any]] | None:
        ready = {}
        for region in ("eu", "us"):
            pods = _pods(pod_kube, namespace, f"edgepop.io/region={region}")
            if not pods or not _ready(pods[0]):
                return None
            ready[region] = pods[0]
        return ready

    try:
        pops = wait_until(both_ready, 180, "a Ready POP pod in each region", every=1)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_describe(cluster, namespace)}") from error

    headers = {"Authorization": f"Bearer {token}"}
    eu = f"http://{pops['eu']['status']['podIP']}:{POP_PORT}"
    us = f"http://{pops['us']['status']['podIP']}:{POP_PORT}"
    with loopback_client(eu, headers=headers) as http:
        written = pipeline(
            http,
            [
                execute("CREATE TABLE pods_kv (k TEXT PRIMARY KEY, v TEXT)"),
                execute("INSERT INTO pods_kv VALUES ('written in', 'eu')"),
            ],
        )
        assert [r["type"] for r in written["results"]] == ["ok", "ok"], written
    with loopback_client(us, headers=headers) as http:

        def seen_in_us() -> list[list[Any]] | None:
            read = pipeline(http, [execute("SELECT v FROM pods_kv WHERE k = 'written in'")])
            result = read["results"][0]
            return rows(read) if result["type"] == "ok" and rows(read) else None

        assert wait_until(seen_in_us, 30, "the write in the us POP") == [["eu"]]
    status = pod_kube.get("EdgePop", namespace, "shop")
    assert status is not None
    conditions = {c["type"]: c["status"] for c in status.get("status", {}).get("conditions", [])}
    assert conditions.get("Ready") == "True", json.dumps(status.get("status"), indent=2)
