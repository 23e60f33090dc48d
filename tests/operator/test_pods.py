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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pop.devtools.processes import PrometheusServer, RedisProcess, SqldServer, loopback_client
from pop_operator.render.identity import POP_PORT
from pop_operator.settings import OperatorSettings
from tests.balancer import balancing
from tests.helpers import Target, execute, metric_at, pipeline, rows, running
from tests.operator.cluster import ControlPlaneError, Kube, ensure_binaries, wait_until
from tests.operator.monitoring import check_every_panel, drive_traffic
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


def test_helm_test_checks_that_the_operator_answers(
    cluster: Cluster, helm_binary: str, release: str
) -> None:
    tested = helm(
        helm_binary, cluster, "test", release, "--namespace", OPERATOR_NAMESPACE, "--logs"
    )
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout
    assert "/healthz 200" in tested.stdout, tested.stdout


def _edgepop(
    name: str, origin_url: str, image: str, regions: list[str], **sync: Any
) -> dict[str, Any]:
    storage = {"size": "1Gi", "storageClassName": STORAGE_CLASS}
    return {
        "apiVersion": "edgepop.io/v1alpha1",
        "kind": "EdgePop",
        "metadata": {"name": name},
        "spec": {
            "origin": {"url": origin_url},
            "engine": "libsql",
            "clientAuthSecretRef": {"name": "pop", "key": "token"},
            "image": image,
            "regions": [{"name": region, "storage": storage} for region in regions],
            "sync": {
                "intervalSeconds": 60,
                "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
                **sync,
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


@dataclass
class Deployed:
    """An EdgePop applied in its own namespace, with the POP token its clients use."""

    namespace: str
    name: str
    token: str

    def selector(self, region: str) -> str:
        return f"app.kubernetes.io/instance={self.name},edgepop.io/region={region}"

    def url(self, pod: dict[str, Any]) -> str:
        return f"http://{pod['status']['podIP']}:{POP_PORT}"

    def client(self, pod: dict[str, Any]) -> httpx.Client:
        return loopback_client(self.url(pod), headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture(scope="module")
def deploy(
    cluster: Cluster,
    pod_kube: Kube,
    release: str,
    origin: SqldServer,
    redis: RedisProcess,
    pop_image: str,
) -> Callable[..., Deployed]:
    def apply(name: str, regions: list[str], **sync: Any) -> Deployed:
        deployed = Deployed(pod_kube.namespace(name), name, secrets.token_urlsafe(16))
        pod_kube.create("Secret", deployed.namespace, _secret("pop", "token", deployed.token))
        pod_kube.create("Secret", deployed.namespace, _secret("redis", "url", redis.url))
        cluster.node.local_volumes(len(regions), storage_class=STORAGE_CLASS)
        body = _edgepop(name, origin.url, pop_image, regions, **sync)
        pod_kube.create("EdgePop", deployed.namespace, body)
        return deployed

    return apply


def _ready_pods(
    cluster: Cluster, kube: Kube, deployed: Deployed, region: str, count: int
) -> list[dict[str, Any]]:
    """Wait until ``region`` has exactly ``count`` pods, all Ready by the kubelet's probe."""

    def ready() -> list[dict[str, Any]] | None:
        pods = _pods(kube, deployed.namespace, deployed.selector(region))
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return live if len(pods) == len(live) == count and all(map(_ready, live)) else None

    try:
        pods = wait_until(ready, 180, f"{count} Ready POP pod(s) in {region}", every=1)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_describe(cluster, deployed.namespace)}") from error
    return sorted(pods, key=lambda p: str(p["metadata"]["name"]))


@pytest.fixture(scope="module")
def shop(cluster: Cluster, pod_kube: Kube, deploy: Callable[..., Deployed]) -> Deployed:
    """Two regions, eu and us, one POP each."""
    deployed = deploy("shop", ["eu", "us"])
    for region in ("eu", "us"):
        _ready_pods(cluster, pod_kube, deployed, region, 1)
    return deployed


def _sql(http: httpx.Client, *statements: str) -> dict[str, Any]:
    answer = pipeline(http, [execute(sql) for sql in statements])
    assert all(r["type"] == "ok" for r in answer["results"]), answer
    return answer


def _wait_rows(http: httpx.Client, sql: str, expected: list[list[Any]]) -> None:
    def seen() -> bool:
        answer = pipeline(http, [execute(sql)])
        return answer["results"][0]["type"] == "ok" and rows(answer) == expected

    wait_until(seen, 30, f"{sql} -> {expected}")


def test_two_regions_become_ready_by_probe_and_a_write_in_one_is_read_in_the_other(
    cluster: Cluster, pod_kube: Kube, shop: Deployed
) -> None:
    [eu] = _ready_pods(cluster, pod_kube, shop, "eu", 1)
    [us] = _ready_pods(cluster, pod_kube, shop, "us", 1)
    with shop.client(eu) as http:
        _sql(
            http,
            "CREATE TABLE pods_kv (k TEXT PRIMARY KEY, v TEXT)",
            "INSERT INTO pods_kv VALUES ('written in', 'eu')",
        )
    with shop.client(us) as http:
        _wait_rows(http, "SELECT v FROM pods_kv WHERE k = 'written in'", [["eu"]])
    status = pod_kube.get("EdgePop", shop.namespace, shop.name)
    assert status is not None
    conditions = {c["type"]: c["status"] for c in status.get("status", {}).get("conditions", [])}
    assert conditions.get("Ready") == "True", json.dumps(status.get("status"), indent=2)
    assert status["status"]["readyReplicas"] == "2/2"
    assert {r["name"]: r["readyReplicas"] for r in status["status"]["regions"]} == {
        "eu": 1,
        "us": 1,
    }


def test_a_deleted_pop_pod_comes_back_on_its_claim_and_pulls_only_what_changed(
    cluster: Cluster, pod_kube: Kube, shop: Deployed
) -> None:
    [eu] = _ready_pods(cluster, pod_kube, shop, "eu", 1)
    [us] = _ready_pods(cluster, pod_kube, shop, "us", 1)
    claim_name = f"data-{us['metadata']['name']}"
    claim = pod_kube.get("PersistentVolumeClaim", shop.namespace, claim_name)
    assert claim is not None and claim["status"]["phase"] == "Bound"
    with shop.client(eu) as http:
        _sql(http, "CREATE TABLE IF NOT EXISTS kept (n INTEGER)", "INSERT INTO kept VALUES (0)")
    with shop.client(us) as http:
        _wait_rows(http, "SELECT count(*) FROM kept", [["1"]])
        before = int(http.get("/ready").json()["position"])

    pod_kube.cp.api("DELETE", f"/api/v1/namespaces/{shop.namespace}/pods/{us['metadata']['name']}")

    def old_pod_gone() -> bool:
        found = pod_kube.get("Pod", shop.namespace, us["metadata"]["name"])
        return found is None or found["metadata"]["uid"] != us["metadata"]["uid"]

    # Written once the old POP has stopped: only the new one can pull them.
    wait_until(old_pod_gone, 120, "the old us POP pod gone", every=0.5)
    with shop.client(eu) as http:
        for n in range(1, 11):
            _sql(http, f"INSERT INTO kept VALUES ({n})")

    def recreated() -> list[dict[str, Any]] | None:
        pods = _ready_pods(cluster, pod_kube, shop, "us", 1)
        return pods if pods[0]["metadata"]["uid"] != us["metadata"]["uid"] else None

    [again] = wait_until(recreated, 180, "the us POP pod recreated", every=1)
    volumes = {v["name"]: v for v in again["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim_name
    same_claim = pod_kube.get("PersistentVolumeClaim", shop.namespace, claim_name)
    assert same_claim is not None and same_claim["metadata"]["uid"] == claim["metadata"]["uid"]
    with shop.client(again) as http:
        _wait_rows(http, "SELECT count(*) FROM kept", [["11"]])
        now = int(http.get("/ready").json()["position"])
    pulled = metric_at(shop.url(again), "edgepop_sync_frames_pulled_total")
    # What was written while it was away, not the whole database again.
    assert pulled == now - before < now, (pulled, before, now)


def _transactions_cross_the_regions_pods(
    deployed: Deployed, pods: list[dict[str, Any]], origin: SqldServer, node_client: Any
) -> None:
    """@libsql/client's write transactions through a balancer that alternates between the
    region's two pods on every call: each call whose stream the other pod holds is passed
    on to it by name (PEER_URL_TEMPLATE, the headless Service, the cluster's DNS)."""
    origin.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
    urls = [deployed.url(pod) for pod in pods]
    with balancing(urls) as (url, balancer):
        result = node_client("transactionLoop", Target(url, deployed.token), "pods:12")
    committed = [f"pods-{i}" for i in range(12) if i % 3 != 2]
    assert result["committed"] == committed
    assert result["seenInside"] == ["1"] * 12
    at_origin = origin.execute("SELECT k FROM kv WHERE k LIKE 'pods-%' ORDER BY k")["rows"]
    assert [row[0]["value"] for row in at_origin] == sorted(committed)
    assert all(count > 5 for count in balancer.counts.values()), balancer.counts
    passed_on = [metric_at(url, "edgepop_peer_calls_total", outcome="ok") for url in urls]
    assert all(count > 0 for count in passed_on), passed_on


def _set_replicas(kube: Kube, deployed: Deployed, region: str, replicas: int) -> None:
    body = kube.get("EdgePop", deployed.namespace, deployed.name)
    assert body is not None
    regions = body["spec"]["regions"]
    for entry in regions:
        if entry["name"] == region:
            entry["replicas"] = replicas
    kube.patch("EdgePop", deployed.namespace, deployed.name, {"spec": {"regions": regions}})


def test_a_region_scales_up_and_down_and_keeps_the_claims(
    cluster: Cluster, pod_kube: Kube, shop: Deployed, origin: SqldServer, node_client: Any
) -> None:
    cluster.node.local_volumes(1, storage_class=STORAGE_CLASS)
    _set_replicas(pod_kube, shop, "eu", 2)
    first, second = _ready_pods(cluster, pod_kube, shop, "eu", 2)
    with shop.client(first) as http:
        _sql(http, "CREATE TABLE IF NOT EXISTS scaled (n INTEGER)", "INSERT INTO scaled VALUES (1)")
    with shop.client(second) as http:
        _wait_rows(http, "SELECT count(*) FROM scaled", [["1"]])
    _transactions_cross_the_regions_pods(shop, [first, second], origin, node_client)

    _set_replicas(pod_kube, shop, "eu", 1)
    [left] = _ready_pods(cluster, pod_kube, shop, "eu", 1)
    assert left["metadata"]["name"] == first["metadata"]["name"]
    kept = pod_kube.get(
        "PersistentVolumeClaim", shop.namespace, f"data-{second['metadata']['name']}"
    )
    assert kept is not None, "scaling down deletes no claim (whenScaled: Retain)"


def test_prometheus_scraping_the_pods_has_data_for_every_dashboard_panel(
    cluster: Cluster,
    pod_kube: Kube,
    shop: Deployed,
    origin: SqldServer,
    redis: RedisProcess,
    node_client: Any,
    prometheus_binary: str,
    tmp_path: Path,
) -> None:
    """tests/operator/test_prometheus.py's check, with Prometheus scraping POP pods and the
    operator's pods (by pod IP, labelled as the ServiceMonitor labels them)."""
    origin.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
    _set_replicas(pod_kube, shop, "eu", 2)
    eu = _ready_pods(cluster, pod_kube, shop, "eu", 2)
    [us] = _ready_pods(cluster, pod_kube, shop, "us", 1)
    operators = [p for p in _pods(pod_kube, OPERATOR_NAMESPACE, OPERATOR_SELECTOR) if _ready(p)]
    assert operators
    targets = [
        (
            f"{pod['status']['podIP']}:{POP_PORT}",
            {
                "namespace": shop.namespace,
                "edgepop": shop.name,
                "region": pod["metadata"]["labels"]["edgepop.io/region"],
                "pod": pod["metadata"]["name"],
            },
        )
        for pod in [*eu, us]
    ] + [
        (
            f"{pod['status']['podIP']}:{OperatorSettings().http_port}",
            {"namespace": OPERATOR_NAMESPACE, "pod": pod["metadata"]["name"]},
        )
        for pod in operators
    ]
    prometheus = PrometheusServer(tmp_path / "prometheus", targets, binary=prometheus_binary)
    region = [Target(shop.url(pod), shop.token) for pod in eu]

    def request_sync() -> None:
        annotation = "edgepop.io/sync-requested=prometheus"
        pod_kube.cp.kubectl("annotate", "epop", shop.name, "-n", shop.namespace, annotation)

    with running(prometheus):
        drive_traffic(
            region, Target(shop.url(us), shop.token), origin, redis, node_client, request_sync
        )
        check_every_panel(prometheus)


def test_the_lag_timer_reads_a_real_pops_metrics_and_gets_it_synced(
    cluster: Cluster, pod_kube: Kube, deploy: Callable[..., Deployed]
) -> None:
    # Background syncs once an hour, so only the operator's lag check can bring a sync.
    lagging = deploy("lagging", ["solo"], intervalSeconds=3600, maxLagSeconds=5)
    [pod] = _ready_pods(cluster, pod_kube, lagging, "solo", 1)

    def published() -> dict[str, Any] | None:
        body = pod_kube.get("EdgePop", lagging.namespace, lagging.name) or {}
        last = body.get("status", {}).get("lastSync") or {}
        return last if last.get("reason") == "lagging" else None

    record = wait_until(published, 120, "a sync published for the lagging region", every=1)
    assert record["value"] == "solo", record
    body = pod_kube.get("EdgePop", lagging.namespace, lagging.name) or {}
    degraded = [c for c in body["status"]["conditions"] if c["type"] == "Degraded"]
    assert degraded and degraded[0]["reason"] == "RegionLagging", body["status"]
    wait_until(
        lambda: metric_at(lagging.url(pod), "edgepop_syncs_total", trigger="pubsub") >= 1,
        30,
        "the POP syncing on the operator's message",
    )


def test_helm_upgrade_rolls_the_operator_to_a_new_image_tag(
    cluster: Cluster, pod_kube: Kube, helm_binary: str, release: str, pop_image: str
) -> None:
    repository, _, tag = pop_image.rpartition(":")
    next_tag = f"{tag}-next"
    subprocess.run(["buildah", "tag", pop_image, f"{repository}:{next_tag}"], check=True)
    cluster.node.load_image(f"{repository}:{next_tag}")
    helm(
        helm_binary,
        cluster,
        "upgrade",
        release,
        str(CHART),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--reuse-values",
        "--set",
        f"operator.image.tag={next_tag}",
        "--wait",
        "--timeout",
        "180s",
    )
    cluster.control_plane.kubectl(
        "-n",
        OPERATOR_NAMESPACE,
        "rollout",
        "status",
        f"deployment/{release}-operator",
        "--timeout=120s",
    )
    wanted = f"{repository}:{next_tag}"

    def rolled() -> bool:
        # Old pods linger while they terminate; the rollout is done when only new ones remain.
        pods = _pods(pod_kube, OPERATOR_NAMESPACE, OPERATOR_SELECTOR)
        images = {c["image"] for p in pods for c in p["spec"]["containers"]}
        return images == {wanted} and all(map(_ready, pods))

    wait_until(rolled, 120, f"only Ready operator pods running {wanted}", every=1)


def test_helm_uninstall_leaves_the_replica_volumes(
    cluster: Cluster, pod_kube: Kube, helm_binary: str, release: str, shop: Deployed
) -> None:
    claims = pod_kube.names("PersistentVolumeClaim", shop.namespace)
    assert claims, "the shop EdgePop has claims"
    pod_kube.cp.api(
        "DELETE", f"/apis/edgepop.io/v1alpha1/namespaces/{shop.namespace}/edgepops/{shop.name}"
    )
    wait_until(
        lambda: (
            not pod_kube.get("EdgePop", shop.namespace, shop.name)
            and not pod_kube.names("StatefulSet", shop.namespace)
        ),
        120,
        "the EdgePop and its StatefulSets deleted",
        every=1,
    )
    helm(helm_binary, cluster, "uninstall", release, "--namespace", OPERATOR_NAMESPACE, "--wait")
    wait_until(
        lambda: not _pods(pod_kube, OPERATOR_NAMESPACE, OPERATOR_SELECTOR),
        120,
        "the operator's pods gone",
        every=1,
    )
    kept = {
        c["metadata"]["name"]: c["status"]["phase"]
        for c in pod_kube.items("PersistentVolumeClaim", shop.namespace)
    }
    assert kept == dict.fromkeys(claims, "Bound"), "dataRetention: Retain keeps every claim"
