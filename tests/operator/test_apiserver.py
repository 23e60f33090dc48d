"""The operator against a real kube-apiserver + etcd, as its ServiceAccount under the shipped RBAC.

There is no kubelet or controller-manager: pods never run, so the tests play the
StatefulSet controller by patching StatefulSet status, and garbage collection by owner
reference does not happen (the operator's own deletions are what is observed).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from pop.sync.messages import SyncMessage, database_key
from pop_operator.rbac import CLUSTER_RULES, NAMESPACE_RULES
from pop_operator.render.statefulset import CONFIG_HASH_ANNOTATION
from tests.operator.cluster import ApiError, Kube, OperatorProcess, wait_until
from tests.operator.example import apply_example, apply_redis_secret
from tests.operator.metrics_server import lag_metrics_server
from tests.operator.samples import example_body

StartOperator = Callable[..., OperatorProcess]
TIMEOUT = 30


def _condition(edgepop: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((edgepop or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == kind:
            result: dict[str, Any] = cond
            return result
    return None


def _wait_condition(kube: Kube, ns: str, kind: str, status: str, generation: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        edgepop = kube.get("EdgePop", ns, "shop")
        cond = _condition(edgepop, kind)
        observed = ((edgepop or {}).get("status") or {}).get("observedGeneration")
        if cond and cond["status"] == status and observed == generation:
            return edgepop
        return None

    return wait_until(check, TIMEOUT, f"EdgePop {kind}={status} at generation {generation}")


def _statefulsets(kube: Kube, ns: str) -> list[str]:
    return kube.names("StatefulSet", ns)


def _mark_ready(kube: Kube, ns: str, name: str) -> None:
    """Do what the StatefulSet controller and kubelets would: report every POP ready.

    The fast tier's stand-in; test_pods.py shows the same outcome with real pods
    (test_two_regions_become_ready_by_probe_and_a_write_in_one_is_read_in_the_other)."""
    sts = kube.get("StatefulSet", ns, name)
    assert sts is not None
    replicas = sts["spec"]["replicas"]
    kube.patch(
        "StatefulSet",
        ns,
        name,
        {
            "status": {
                "observedGeneration": sts["metadata"]["generation"],
                "replicas": replicas,
                "readyReplicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
                "currentReplicas": replicas,
            }
        },
        status=True,
    )


def _config_hash(sts: dict[str, Any]) -> str:
    return str(sts["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION])


def _assert_owned(objs: list[dict[str, Any]], uid: str) -> None:
    assert objs
    for obj in objs:
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "EdgePop",
            "shop",
            uid,
            True,
        )


SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "3000",
    "prometheus.io/path": "/metrics",
}


def _scrape_annotations(sts: dict[str, Any]) -> dict[str, str]:
    annotations = sts["spec"]["template"]["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith("prometheus.io/")}


def _env(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}


INVALID = {
    "missing origin": ({"origin": None}, "spec.origin"),
    "negative replicas": (
        {"regions": [{"name": "eu-west", "replicas": -1}]},
        "spec.regions[0].replicas",
    ),
    "bad region name": ({"regions": [{"name": "EU_West"}]}, "spec.regions[0].name"),
    "unknown engine": ({"engine": "mysql"}, "spec.engine"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_edgepops_are_rejected_naming_the_field(
    kube: Kube, namespace: str, case: str
) -> None:
    change, field = INVALID[case]
    body = example_body()
    body["spec"].update(change)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    proc = kube.apply_yaml(yaml.safe_dump(body), namespace)
    assert proc.returncode != 0
    assert field in proc.stderr, proc.stderr
    assert kube.get("EdgePop", namespace, "shop") is None


def test_example_creates_children_then_reports_ready(
    kube: Kube, namespace: str, start_operator: StartOperator
) -> None:
    operator = start_operator()
    operator.wait_role("leader")
    edgepop = apply_example(kube, namespace)
    uid = edgepop["metadata"]["uid"]

    wait_until(
        lambda: _statefulsets(kube, namespace) == ["shop-eu-west", "shop-us-east"],
        TIMEOUT,
        "a StatefulSet per region",
    )
    assert kube.names("Service", namespace) == [
        "shop-eu-west",
        "shop-eu-west-headless",
        "shop-us-east",
        "shop-us-east-headless",
    ]
    assert kube.names("PodDisruptionBudget", namespace) == ["shop-eu-west", "shop-us-east"]
    for kind in ("StatefulSet", "Service", "PodDisruptionBudget"):
        _assert_owned(kube.items(kind, namespace), uid)

    sts = kube.get("StatefulSet", namespace, "shop-eu-west")
    assert sts is not None
    # The example asks for ServiceMonitors, but this cluster has no such CRD: annotations.
    assert _scrape_annotations(sts) == SCRAPE_ANNOTATIONS
    with pytest.raises(ApiError) as no_crd:
        kube.items("ServiceMonitor", namespace)
    assert no_crd.value.status == 404
    env = _env(sts)
    assert env["TURSO_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "shop-turso",
        "key": "token",
    }
    assert env["PROXY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "shop-pop",
        "key": "token",
    }
    assert env["REDIS_CONNECTION_STRING"]["valueFrom"]["secretKeyRef"]["name"] == "shop-redis"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert (
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    )
    # No Secret value was copied into any object the operator wrote.
    written = json.dumps(
        [
            kube.items(k, namespace)
            for k in ("StatefulSet", "Service", "PodDisruptionBudget", "EdgePop")
        ]
    )
    for secret in kube.items("Secret", namespace):
        for value in (secret.get("data") or {}).values():
            assert base64.b64decode(value).decode() not in written

    progressing = _wait_condition(kube, namespace, "Progressing", "True", 1)
    assert _condition(progressing, "Ready")["status"] == "False"  # type: ignore[index]
    assert progressing["status"]["regionCount"] == 2

    for name in ("shop-eu-west", "shop-us-east"):
        _mark_ready(kube, namespace, name)
    ready = _wait_condition(kube, namespace, "Ready", "True", 1)
    assert _condition(ready, "Progressing")["status"] == "False"  # type: ignore[index]
    assert ready["status"]["readyReplicas"] == "3/3"
    assert {r["name"]: r["readyReplicas"] for r in ready["status"]["regions"]} == {
        "eu-west": 2,
        "us-east": 1,
    }

    reasons = {e["reason"] for e in kube.items("Event", namespace)}
    assert "Applied" in reasons
    assert 'edgepop_operator_reconciles_total{outcome="ok"}' in operator.metrics()
    printed = kube.cp.kubectl("get", "epop", "-n", namespace).stdout
    assert printed.split("\n")[0].split()[:4] == ["NAME", "REGIONS", "POPS", "READY"]


def _live_claims(kube: Kube, ns: str) -> list[str]:
    """Volumes not being deleted (without a controller-manager the pvc-protection finalizer
    keeps a deleted claim around, marked with a deletionTimestamp)."""
    claims = kube.items("PersistentVolumeClaim", ns)
    return sorted(
        c["metadata"]["name"] for c in claims if not c["metadata"].get("deletionTimestamp")
    )


def _example_running(kube: Kube, namespace: str, start_operator: StartOperator) -> dict[str, Any]:
    """An operator leading, the example EdgePop's StatefulSets created; return us-east's."""
    start_operator().wait_role("leader")
    apply_example(kube, namespace)
    wait_until(lambda: len(_statefulsets(kube, namespace)) == 2, TIMEOUT, "two regions")
    us_east = kube.get("StatefulSet", namespace, "shop-us-east")
    assert us_east is not None
    return us_east


def _region(name: str, replicas: int = 1) -> dict[str, Any]:
    return {"name": name, "replicas": replicas}


def _claim(kube: Kube, ns: str, region: str) -> None:
    """A volume as the StatefulSet controller would have made it from the claim template."""
    sts = kube.get("StatefulSet", ns, f"shop-{region}")
    assert sts is not None
    template = sts["spec"]["volumeClaimTemplates"][0]
    kube.create(
        "PersistentVolumeClaim",
        ns,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": f"data-shop-{region}-0", "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        },
    )


def test_edits_converge(kube: Kube, namespace: str, start_operator: StartOperator) -> None:
    start_operator().wait_role("leader")
    apply_example(kube, namespace, regions=[_region("eu-west"), _region("us-east")])
    wait_until(lambda: len(_statefulsets(kube, namespace)) == 2, TIMEOUT, "two regions")
    _claim(kube, namespace, "us-east")

    # Add a region, remove one: its StatefulSet goes, its volume stays (Retain).
    apply_example(kube, namespace, regions=[_region("eu-west"), _region("ap-south", 3)])
    wait_until(
        lambda: _statefulsets(kube, namespace) == ["shop-ap-south", "shop-eu-west"],
        TIMEOUT,
        "ap-south added, us-east removed",
    )
    wait_until(
        lambda: (
            "shop-us-east" not in kube.names("Service", namespace)
            and "shop-us-east" not in kube.names("PodDisruptionBudget", namespace)
        ),
        TIMEOUT,
        "us-east Services and PDB removed",
    )
    assert _live_claims(kube, namespace) == ["data-shop-us-east-0"]
    _wait_condition(kube, namespace, "Progressing", "True", 2)

    # Image and interval changes roll the StatefulSets.
    before = kube.get("StatefulSet", namespace, "shop-eu-west")
    assert before is not None
    sync = example_body()["spec"]["sync"]
    apply_example(
        kube,
        namespace,
        image="ghcr.io/edge-pop/edge-pop:v2",
        sync={**sync, "intervalSeconds": 15},
        regions=[_region("eu-west"), _region("ap-south", 3)],
    )

    def rolled() -> dict[str, Any] | None:
        sts = kube.get("StatefulSet", namespace, "shop-eu-west")
        if sts and sts["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2"):
            return sts
        return None

    after = wait_until(rolled, TIMEOUT, "new image in the StatefulSet")
    assert _env(after)["TURSO_SYNC_INTERVAL"]["value"] == "15"
    assert _config_hash(after) != _config_hash(before)
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    _wait_condition(kube, namespace, "Progressing", "True", 3)

    # With dataRetention: Delete, a removed region's volumes go too.
    _claim(kube, namespace, "ap-south")
    apply_example(kube, namespace, dataRetention="Delete", regions=[_region("eu-west")])
    wait_until(
        lambda: _live_claims(kube, namespace) == ["data-shop-us-east-0"],
        TIMEOUT,
        "ap-south volume deleted, the earlier retained one untouched",
    )
    assert _statefulsets(kube, namespace) == ["shop-eu-west"]


def test_volume_size_change_replaces_the_statefulset(
    kube: Kube, namespace: str, start_operator: StartOperator
) -> None:
    old = _example_running(kube, namespace, start_operator)
    regions = example_body()["spec"]["regions"]
    apply_example(kube, namespace, regions=[regions[0], {**regions[1], "storage": {"size": "9Gi"}}])

    def replaced() -> dict[str, Any] | None:
        sts = kube.get("StatefulSet", namespace, "shop-us-east")
        if sts is None:
            return None
        if sts["metadata"]["uid"] == old["metadata"]["uid"]:
            if "orphan" in (sts["metadata"].get("finalizers") or ()):
                # Play the garbage collector (no controller-manager here): orphan, release.
                kube.patch(
                    "StatefulSet", namespace, "shop-us-east", {"metadata": {"finalizers": None}}
                )
            return None
        return sts

    sts = wait_until(replaced, TIMEOUT, "a new StatefulSet with the larger volume")
    assert (
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "9Gi"
    )
    _wait_condition(kube, namespace, "Degraded", "False", 2)


def test_deleted_child_is_recreated(
    kube: Kube, namespace: str, start_operator: StartOperator
) -> None:
    old = _example_running(kube, namespace, start_operator)
    kube.cp.kubectl("delete", "statefulset", "shop-us-east", "-n", namespace)

    def recreated() -> bool:
        sts = kube.get("StatefulSet", namespace, "shop-us-east")
        return sts is not None and sts["metadata"]["uid"] != old["metadata"]["uid"]

    wait_until(recreated, TIMEOUT, "the deleted StatefulSet to come back")


def test_killed_mid_reconcile_converges_on_restart(
    kube: Kube, namespace: str, start_operator: StartOperator
) -> None:
    first = start_operator()
    first.wait_role("leader")
    regions = [_region(f"r{i:02d}") for i in range(40)]
    apply_example(kube, namespace, regions=regions)

    partial = wait_until(
        lambda: len(_statefulsets(kube, namespace)) or None,
        TIMEOUT,
        "the first StatefulSet",
        every=0.01,
    )
    first.kill()
    at_kill = len(_statefulsets(kube, namespace))
    assert partial >= 1
    assert at_kill < len(regions), "reconcile finished before the kill; nothing was interrupted"

    second = start_operator()
    second.wait_role("leader", timeout=TIMEOUT)
    wait_until(
        lambda: len(_statefulsets(kube, namespace)) == len(regions),
        TIMEOUT * 2,
        "every region after the restart",
    )
    assert len(kube.names("PodDisruptionBudget", namespace)) == len(regions)
    assert len(kube.names("Service", namespace)) == 2 * len(regions)
    _wait_condition(kube, namespace, "Progressing", "True", 1)


def _annotated(kube: Kube, ns: str, regions: list[str]) -> list[bool]:
    """Per region, whether its pods carry scrape annotations."""
    stateful_sets = [kube.get("StatefulSet", ns, f"shop-{region}") for region in regions]
    return [sts is not None and _scrape_annotations(sts) != {} for sts in stateful_sets]


def _monitoring(kube: Kube, ns: str, regions: list[str]) -> tuple[list[str], list[bool]]:
    """The ServiceMonitors there are (the CRD must be installed), and ``_annotated``."""
    return kube.names("ServiceMonitor", ns), _annotated(kube, ns, regions)


def test_service_monitor_per_region_when_its_crd_exists(
    kube: Kube,
    namespace: str,
    install_service_monitor_crd: Callable[[], None],
    start_operator: StartOperator,
) -> None:
    install_service_monitor_crd()
    start_operator().wait_role("leader")
    uid = apply_example(kube, namespace)["metadata"]["uid"]  # monitoring.serviceMonitor: true
    regions = ["eu-west", "us-east"]
    wait_until(
        lambda: (
            _monitoring(kube, namespace, regions)
            == (["shop-eu-west", "shop-us-east"], [False, False])
        ),
        TIMEOUT,
        "a ServiceMonitor per region, pods without scrape annotations",
    )
    _assert_owned(kube.items("ServiceMonitor", namespace), uid)
    for region in regions:
        monitor = kube.get("ServiceMonitor", namespace, f"shop-{region}")
        client = kube.get("Service", namespace, f"shop-{region}")
        headless = kube.get("Service", namespace, f"shop-{region}-headless")
        assert monitor is not None and client is not None and headless is not None
        # It selects the region's client Service, not the headless one (no double scrapes)
        # and not the other region's.
        match = monitor["spec"]["selector"]["matchLabels"]
        selected = [
            s["metadata"]["name"]
            for s in kube.items("Service", namespace)
            if match.items() <= (s["metadata"].get("labels") or {}).items()
        ]
        assert selected == [f"shop-{region}"]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
        assert ("http", 3000) in {(p["name"], p["port"]) for p in client["spec"]["ports"]}

    # Switched off: the ServiceMonitors go and the pods carry the annotations again.
    apply_example(kube, namespace, monitoring={"serviceMonitor": False})
    wait_until(
        lambda: _monitoring(kube, namespace, regions) == ([], [True, True]),
        TIMEOUT,
        "no ServiceMonitors, scrape annotations on both regions",
    )


def test_service_monitor_crd_installed_later_is_used_after_a_restart(
    kube: Kube,
    namespace: str,
    install_service_monitor_crd: Callable[[], None],
    start_operator: StartOperator,
) -> None:
    """The CRD is looked up on every reconcile, not watched (docs/operator.md)."""
    operator = start_operator()
    operator.wait_role("leader")
    apply_example(kube, namespace, regions=[_region("eu-west")])
    regions = ["eu-west"]
    wait_until(lambda: _annotated(kube, namespace, regions) == [True], TIMEOUT, "annotations")
    install_service_monitor_crd()
    assert _monitoring(kube, namespace, regions) == ([], [True])

    operator.stop()
    start_operator().wait_role("leader", timeout=TIMEOUT)
    wait_until(
        lambda: _monitoring(kube, namespace, regions) == (["shop-eu-west"], [False]),
        TIMEOUT,
        "the ServiceMonitor after the restart, pods without scrape annotations",
    )


def _subscribe(url: str) -> redis.client.PubSub:
    subscriber: redis.client.PubSub = redis.Redis.from_url(url).pubsub()  # type: ignore[no-untyped-call]
    subscriber.subscribe("sync")
    return subscriber


def _next_message(pubsub: redis.client.PubSub, timeout: float = TIMEOUT) -> SyncMessage:
    def check() -> SyncMessage | None:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is None:
            return None
        decoded = SyncMessage.decode(message["data"])
        assert decoded is not None, message
        return decoded

    return wait_until(check, timeout, "a sync message on Redis", every=0)


def test_sync_annotation_publishes_on_redis(
    kube: Kube, namespace: str, start_operator: StartOperator, redis_url: str
) -> None:
    operator = start_operator()
    operator.wait_role("leader")
    apply_example(kube, namespace)
    apply_redis_secret(kube, namespace, redis_url)
    subscriber = _subscribe(redis_url)
    _wait_condition(kube, namespace, "Progressing", "True", 1)

    kube.cp.kubectl("annotate", "epop", "shop", "-n", namespace, "edgepop.io/sync-requested=first")
    message = _next_message(subscriber)
    assert message.reason == "operator"
    assert message.concerns(database_key("libsql://shop-acme.turso.io"))
    assert message.database == database_key("libsql://shop-acme.turso.io")

    def recorded() -> dict[str, Any] | None:
        edgepop = kube.get("EdgePop", namespace, "shop") or {}
        last: dict[str, Any] | None = (edgepop.get("status") or {}).get("lastSync")
        return last if last and last["value"] == "first" else None

    last = wait_until(recorded, TIMEOUT, "status.lastSync")
    assert last["reason"] == "operator" and last["receivers"] == 1
    assert "SyncPublished" in {e["reason"] for e in kube.items("Event", namespace)}

    # A new value publishes again.
    kube.cp.kubectl(
        "annotate",
        "epop",
        "shop",
        "-n",
        namespace,
        "--overwrite",
        "edgepop.io/sync-requested=second",
    )
    assert _next_message(subscriber).reason == "operator"
    subscriber.close()
    # The Redis URL came from a Secret: it shows up in no log line, status or Event.
    assert redis_url not in operator.log_text()
    assert redis_url not in json.dumps(
        [kube.get("EdgePop", namespace, "shop"), kube.items("Event", namespace)]
    )


def test_lagging_region_gets_a_sync(
    kube: Kube, namespace: str, start_operator: StartOperator, redis_url: str
) -> None:
    start_operator().wait_role("leader")
    apply_example(kube, namespace, regions=[_region("eu-west")])
    apply_redis_secret(kube, namespace, redis_url)
    subscriber = _subscribe(redis_url)
    sts = wait_until(
        lambda: kube.get("StatefulSet", namespace, "shop-eu-west"), TIMEOUT, "StatefulSet"
    )

    # A stand-in POP (a metrics server on this host) lets this tier check recovery quickly;
    # test_pods.py's test_the_lag_timer_reads_a_real_pops_metrics_and_gets_it_synced is the
    # same check against a real POP pod.
    with lag_metrics_server(900.0) as (port, gauge):
        # A POP pod as the StatefulSet controller would create it, "running" on this host.
        template = sts["spec"]["template"]
        container = {**template["spec"]["containers"][0]}
        container["ports"] = [{"name": "http", "containerPort": port}]
        kube.create(
            "Pod",
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "shop-eu-west-0", "labels": template["metadata"]["labels"]},
                "spec": {
                    "containers": [container],
                    "volumes": [
                        *template["spec"].get("volumes", []),
                        {
                            "name": "data",
                            "persistentVolumeClaim": {"claimName": "data-shop-eu-west-0"},
                        },
                    ],
                },
            },
        )
        kube.patch(
            "Pod",
            namespace,
            "shop-eu-west-0",
            {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}},
            status=True,
        )
        message = _next_message(subscriber)
        assert message.reason == "lagging"
        assert message.concerns(database_key("libsql://shop-acme.turso.io"))

        def degraded() -> dict[str, Any] | None:
            cond = _condition(kube.get("EdgePop", namespace, "shop"), "Degraded")
            return cond if cond and cond["reason"] == "RegionLagging" else None

        assert "eu-west 900s" in wait_until(degraded, TIMEOUT, "Degraded=RegionLagging")["message"]

        gauge.set(3.0)  # caught up

        def recovered() -> bool:
            cond = _condition(kube.get("EdgePop", namespace, "shop"), "Degraded")
            return cond is not None and cond["status"] == "False"

        wait_until(recovered, TIMEOUT, "Degraded=False after the region caught up")
    subscriber.close()


def test_deleting_the_edgepop_removes_children_but_keeps_volumes(
    kube: Kube, namespace: str, start_operator: StartOperator
) -> None:
    _example_running(kube, namespace, start_operator)
    _claim(kube, namespace, "eu-west")
    kube.cp.kubectl("delete", "epop", "shop", "-n", namespace, "--wait=false")
    wait_until(lambda: kube.get("EdgePop", namespace, "shop") is None, TIMEOUT, "EdgePop gone")
    assert _statefulsets(kube, namespace) == []
    assert kube.names("Service", namespace) == []
    assert kube.names("PodDisruptionBudget", namespace) == []
    assert _live_claims(kube, namespace) == ["data-shop-eu-west-0"]


def test_one_leader_among_replicas(
    kube: Kube, namespace: str, start_operator: StartOperator
) -> None:
    leader = start_operator()
    leader.wait_role("leader")
    standby = start_operator()
    wait_until(lambda: standby.health(), TIMEOUT, "standby /healthz")
    assert standby.health() == {"status": "ok", "role": "standby"}

    leader.kill()  # no clean release: the standby waits for the Lease to expire
    standby.wait_role("leader", timeout=TIMEOUT)
    apply_example(kube, namespace)
    wait_until(
        lambda: len(_statefulsets(kube, namespace)) == 2, TIMEOUT, "the new leader reconciles"
    )


def test_the_operator_account_has_exactly_the_shipped_rules(
    kube: Kube, operator_kubeconfig: Path
) -> None:
    role = kube.cp.api("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/edge-pop-operator")
    assert role["rules"] == CLUSTER_RULES
    local = kube.cp.api(
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/edge-pop-system/roles/edge-pop-operator",
    )
    assert local["rules"] == NAMESPACE_RULES

    def can(*args: str) -> bool:
        proc = kube.cp.kubectl("auth", "can-i", *args, kubeconfig=operator_kubeconfig, check=False)
        return proc.stdout.strip() == "yes"

    assert can("patch", "statefulsets.apps", "-n", "anywhere")
    assert can("get", "secrets", "-n", "anywhere")
    assert can("update", "leases.coordination.k8s.io", "-n", "edge-pop-system")
    # Least privilege: no listing of Secrets, no pods, no EdgePop deletion, no leases elsewhere.
    assert not can("list", "secrets", "-n", "anywhere")
    assert not can("create", "pods", "-n", "anywhere")
    assert not can("delete", "edgepops.edgepop.io", "-n", "anywhere")
    assert not can("update", "leases.coordination.k8s.io", "-n", "default")
    assert not can("create", "clusterroles.rbac.authorization.k8s.io")
