"""Rendered children: valid Kubernetes objects that wire the POP contract correctly."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pop_operator.model import API_VERSION
from pop_operator.render import render_edgepop, render_region
from pop_operator.render.statefulset import CONFIG_HASH_ANNOTATION, DB_FILEPATH, stateful_set
from tests.operator.samples import OWNER, REPO_ROOT, example_body, example_spec, minimal_spec
from tests.operator.schemas import validate

SECRET_ENV = {"TURSO_AUTH_TOKEN", "PROXY_AUTH_TOKEN", "REDIS_CONNECTION_STRING"}


def _by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _container(sts: dict[str, Any]) -> dict[str, Any]:
    containers = sts["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def _env(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(sts)["env"]}


@pytest.mark.parametrize("service_monitor", [True, False])
def test_every_object_is_valid_kubernetes(service_monitor: bool) -> None:
    objs = render_edgepop(OWNER, example_spec(), service_monitor_available=service_monitor)
    for obj in objs:
        if obj["kind"] == "ServiceMonitor":
            continue  # not a built-in kind: checked field by field below
        validate(obj)
    for obj in render_edgepop(OWNER, minimal_spec(), service_monitor_available=False):
        validate(obj)


def test_one_set_of_children_per_region() -> None:
    objs = render_edgepop(OWNER, example_spec(), service_monitor_available=False)
    assert sorted(o["metadata"]["name"] for o in _by_kind(objs, "StatefulSet")) == [
        "shop-eu-west",
        "shop-us-east",
    ]
    assert sorted(o["metadata"]["name"] for o in _by_kind(objs, "Service")) == [
        "shop-eu-west",
        "shop-eu-west-headless",
        "shop-us-east",
        "shop-us-east-headless",
    ]
    assert len(_by_kind(objs, "PodDisruptionBudget")) == 2


def test_owner_reference_namespace_and_labels_on_every_child() -> None:
    for obj in render_edgepop(OWNER, example_spec(), service_monitor_available=True):
        meta = obj["metadata"]
        assert meta["namespace"] == "shops"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": API_VERSION,
                "kind": "EdgePop",
                "name": "shop",
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        for key in ("name", "instance", "component", "part-of", "managed-by"):
            assert f"app.kubernetes.io/{key}" in meta["labels"], (obj["kind"], key)


def test_secrets_are_referenced_never_copied() -> None:
    spec = example_spec()
    sts = render_edgepop(OWNER, spec, service_monitor_available=False)[3]
    env = _env(sts)
    assert env["TURSO_AUTH_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "shop-turso", "key": "token"}
    }
    assert env["PROXY_AUTH_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "shop-pop", "key": "token"}
    }
    assert env["REDIS_CONNECTION_STRING"]["valueFrom"] == {
        "secretKeyRef": {"name": "shop-redis", "key": "url"}
    }
    for name in SECRET_ENV:
        assert "value" not in env[name]
    # The example Secrets' values appear in no rendered object.
    secrets = list(yaml.safe_load_all((REPO_ROOT / "k8s/examples/secrets.yaml").read_text()))
    rendered = repr(render_edgepop(OWNER, spec, service_monitor_available=True))
    for secret in secrets:
        for value in secret["stringData"].values():
            assert value not in rendered


def test_pop_environment_matches_the_pop_contract() -> None:
    spec = example_spec()
    sts = render_edgepop(OWNER, spec, service_monitor_available=False)[3]
    env = _env(sts)
    assert env["TURSO_DATABASE_URL"]["value"] == "libsql://shop-acme.turso.io"
    assert env["TURSO_SYNC_INTERVAL"]["value"] == "60"
    assert env["DB_FILEPATH"]["value"] == DB_FILEPATH
    assert env["REPLICA_ENGINE"]["value"] == "libsql"
    assert env["REDIS_SYNC_CHANNEL"]["value"] == "sync"
    assert env["PORT"]["value"] == "3000"
    assert env["REGION"]["value"] == "eu-west"
    assert env["LOG_LEVEL"]["value"] == "info"
    mounts = _container(sts)["volumeMounts"]
    assert any(DB_FILEPATH.startswith(m["mountPath"] + "/") for m in mounts)


def test_no_redis_means_no_redis_env_and_no_origin_token_means_none() -> None:
    sts = render_edgepop(OWNER, minimal_spec(), service_monitor_available=False)[3]
    env = _env(sts)
    assert "REDIS_CONNECTION_STRING" not in env
    assert "REDIS_SYNC_CHANNEL" not in env
    assert "TURSO_AUTH_TOKEN" not in env


def test_probes_ports_volume_and_anti_affinity() -> None:
    sts = render_edgepop(OWNER, example_spec(), service_monitor_available=False)[3]
    container = _container(sts)
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    pod = sts["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"topology.kubernetes.io/region": "eu-west-1"}
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == sts["spec"]["selector"]["matchLabels"]
    )
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert sts["spec"]["serviceName"] == "shop-eu-west-headless"
    assert sts["spec"]["replicas"] == 2
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_services_select_the_region_pods_by_named_port() -> None:
    objs = render_region(
        OWNER, example_spec(), example_spec().regions[0], with_service_monitor=False
    )
    headless, client, pdb, sts = objs
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    for svc in (headless, client):
        assert svc["spec"]["ports"][0]["targetPort"] == "http"
        assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert headless["spec"]["clusterIP"] == "None"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_service_monitor_or_scrape_annotations() -> None:
    spec = example_spec()
    region = spec.regions[0]
    with_sm = render_region(OWNER, spec, region, with_service_monitor=True)
    monitor = _by_kind(with_sm, "ServiceMonitor")[0]
    client = with_sm[1]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= client["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "http",
            "path": "/metrics",
            "interval": "30s",
            # The labels the alerts group by (pop_operator.monitoring.alerts).
            "relabelings": [
                {
                    "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                    "targetLabel": "edgepop",
                },
                {
                    "sourceLabels": ["__meta_kubernetes_pod_label_edgepop_io_region"],
                    "targetLabel": "region",
                },
            ],
        }
    ]
    sts_annotations = _by_kind(with_sm, "StatefulSet")[0]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert "prometheus.io/scrape" not in sts_annotations

    without = render_region(OWNER, spec, region, with_service_monitor=False)
    assert not _by_kind(without, "ServiceMonitor")
    annotations = _by_kind(without, "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "3000"
    assert annotations["prometheus.io/path"] == "/metrics"


def _hash(**changes: Any) -> str:
    spec = example_spec(**changes)
    value: str = stateful_set(OWNER, spec, spec.regions[0])["spec"]["template"]["metadata"][
        "annotations"
    ][CONFIG_HASH_ANNOTATION]
    return value


def test_config_hash_rolls_on_image_and_sync_changes_only() -> None:
    base = _hash()
    assert _hash(image="ghcr.io/edge-pop/edge-pop:v2") != base
    sync = example_body()["spec"]["sync"]
    assert _hash(sync={**sync, "intervalSeconds": 5}) != base
    assert _hash(engine="turso") != base
    assert _hash(clientJwtKeysSecretRef={"name": "shop-jwt", "key": "keys.pem"}) != base
    regions = example_body()["spec"]["regions"]
    assert _hash(regions=[{**regions[0], "replicas": 7}]) == base


def test_client_jwt_keys_reach_the_pop_from_their_secret_only_when_named() -> None:
    plain = render_edgepop(OWNER, example_spec(), service_monitor_available=False)[3]
    assert "AUTH_JWT_KEY" not in _env(plain)
    spec = example_spec(clientJwtKeysSecretRef={"name": "shop-jwt", "key": "keys.pem"})
    env = _env(render_edgepop(OWNER, spec, service_monitor_available=False)[3])
    assert env["AUTH_JWT_KEY"] == {
        "name": "AUTH_JWT_KEY",
        "valueFrom": {"secretKeyRef": {"name": "shop-jwt", "key": "keys.pem"}},
    }


def test_delete_retention_is_passed_to_the_statefulset() -> None:
    spec = example_spec(dataRetention="Delete")
    sts = stateful_set(OWNER, spec, spec.regions[0])
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
