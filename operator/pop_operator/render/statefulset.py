"""The StatefulSet of one region: POP pods, each with its replica file on its own volume."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pop.contract import HEALTH_PATH, READY_PATH, env_name
from pop_operator.model import EdgePopSpec, Region, SecretKeyRef
from pop_operator.render.identity import (
    POP_PORT,
    PORT_NAME,
    Owner,
    container_security_context,
    headless_name,
    labels,
    metadata,
    pod_security_context,
    region_name,
    selector_labels,
)
from pop_operator.render.monitoring import scrape_annotations

DATA_VOLUME = "data"
TMP_VOLUME = "tmp"
DATA_DIR = "/data"
DB_FILEPATH = f"{DATA_DIR}/replica.db"
CONFIG_HASH_ANNOTATION = "edgepop.io/config-hash"


def config_hash(spec: EdgePopSpec) -> str:
    """Digest of everything a POP reads at start: a change rolls the StatefulSet."""
    relevant = spec.model_dump(
        mode="json",
        include={
            "origin",
            "engine",
            "client_auth_secret_ref",
            "client_jwt_keys_secret_ref",
            "image",
            "sync",
            "log_level",
        },
    )
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def pop_env(owner: Owner, spec: EdgePopSpec, region: Region) -> list[dict[str, Any]]:
    """The POP's environment. Secrets are referenced, never copied."""
    env = [_value(env_name("turso_database_url"), spec.origin.url)]
    if spec.origin.auth_token_secret_ref is not None:
        env.append(_secret(env_name("turso_auth_token"), spec.origin.auth_token_secret_ref))
    env += [
        _secret(env_name("proxy_auth_token"), spec.client_auth_secret_ref),
        _value(env_name("turso_sync_interval"), str(spec.sync.interval_seconds)),
        _value(env_name("db_filepath"), DB_FILEPATH),
        _value(env_name("replica_engine"), spec.engine),
    ]
    if spec.client_jwt_keys_secret_ref is not None:
        env.append(_secret(env_name("auth_jwt_key"), spec.client_jwt_keys_secret_ref))
    if spec.sync.redis is not None:
        env += [
            _secret(env_name("redis_connection_string"), spec.sync.redis.url_secret_ref),
            _value(env_name("redis_sync_channel"), spec.sync.redis.channel),
        ]
    env += [
        _value(env_name("port"), str(POP_PORT)),
        _value(env_name("region"), region.name),
        _value(env_name("log_level"), spec.log_level),
        # A POP's PEER_NAME is its host name, the pod's name: under the headless Service
        # that names the pod, so the region's POPs reach the one holding a stream.
        _value(env_name("peer_url_template"), peer_url_template(owner, region)),
    ]
    return env


def peer_url_template(owner: Owner, region: Region) -> str:
    headless = headless_name(owner, region.name)
    return f"http://{{peer}}.{headless}.{owner.namespace}.svc:{POP_PORT}"


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _container(owner: Owner, spec: EdgePopSpec, region: Region) -> dict[str, Any]:
    resources = region.resources.model_dump(exclude_defaults=True)
    return {
        "name": "pop",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": POP_PORT, "protocol": "TCP"}],
        "env": pop_env(owner, spec, region),
        "livenessProbe": _probe(HEALTH_PATH, period=10, failures=3),
        # Ready only once the replica is open and has synced: the first sync can be long.
        "readinessProbe": _probe(READY_PATH, period=5, failures=2),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": DATA_DIR},
            # The root filesystem is read-only; SQLite puts large sorts' temp files here.
            {"name": TMP_VOLUME, "mountPath": "/tmp"},  # noqa: S108
        ],
        "resources": resources,
        "securityContext": container_security_context(),
    }


def _anti_affinity(owner: Owner, region: Region) -> dict[str, Any]:
    """Prefer one POP of a region per node, so a node failure takes out at most one."""
    term = {
        "labelSelector": {"matchLabels": selector_labels(owner, region.name)},
        "topologyKey": "kubernetes.io/hostname",
    }
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}
            ]
        }
    }


def _volume_claim(owner: Owner, region: Region) -> dict[str, Any]:
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": region.storage.size}},
    }
    if region.storage.storage_class_name is not None:
        claim_spec["storageClassName"] = region.storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_VOLUME, "labels": labels(owner, region.name)},
        "spec": claim_spec,
    }


def stateful_set(
    owner: Owner, spec: EdgePopSpec, region: Region, *, scrape_annotations_on: bool = True
) -> dict[str, Any]:
    annotations = {CONFIG_HASH_ANNOTATION: config_hash(spec)}
    if scrape_annotations_on:
        annotations.update(scrape_annotations())
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "containers": [_container(owner, spec, region)],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}],
        "affinity": _anti_affinity(owner, region),
        "terminationGracePeriodSeconds": 30,
        "enableServiceLinks": False,
    }
    if region.node_selector:
        pod_spec["nodeSelector"] = dict(region.node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(owner, region_name(owner, region.name), region.name),
        "spec": {
            "replicas": region.replicas,
            "serviceName": headless_name(owner, region.name),
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector_labels(owner, region.name)},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": spec.data_retention,
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {"labels": labels(owner, region.name), "annotations": annotations},
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [_volume_claim(owner, region)],
        },
    }
