"""The operator's own Deployment and Service, shared by the kustomize base and the Helm chart,
and the chart's `helm test` check.

Settings a chart user may change come from a :class:`ValueSource`: the chart's defaults for
the plain manifests, Helm expressions for the chart's templates (pop_operator.manifests)."""

from __future__ import annotations

from typing import Any, Protocol

from pop_operator.settings import OperatorSettings

OPERATOR_NAME = "edge-pop-operator"
OPERATOR_LABELS = {
    "app.kubernetes.io/name": "edge-pop-operator",
    "app.kubernetes.io/component": "operator",
    "app.kubernetes.io/part-of": "edge-pop",
}
OPERATOR_SELECTOR = {"app.kubernetes.io/name": OPERATOR_LABELS["app.kubernetes.io/name"]}
# Run by `helm test` in a pod: GET the operator's /healthz through its Service. The Service's
# environment variables are used where they exist, so no cluster DNS is needed.
HEALTH_CHECK = """\
import os, urllib.request
name = os.environ["OPERATOR_SERVICE"]
prefix = name.upper().replace("-", "_")
dns_name = name + "." + os.environ["OPERATOR_NAMESPACE"] + ".svc"
host = os.environ.get(prefix + "_SERVICE_HOST", dns_name)
port = os.environ.get(prefix + "_SERVICE_PORT_HTTP", os.environ["OPERATOR_PORT"])
url = "http://" + host + ":" + port + "/healthz"
with urllib.request.urlopen(url, timeout=10) as answer:
    print(url, answer.status, answer.read().decode()[:300])
"""


class ValueSource(Protocol):
    def __call__(self, path: str, *, text: bool = False) -> Any:
        """The chart value at ``path`` (pop_operator.chartvalues), as text when ``text``."""


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _placement(values: ValueSource) -> dict[str, Any]:
    """Where the operator's pods (and the chart's test pod) may run, and what they pull with."""
    placement = {
        "imagePullSecrets": values("operator.imagePullSecrets"),
        "nodeSelector": values("operator.nodeSelector"),
        "tolerations": values("operator.tolerations"),
        "affinity": values("operator.affinity"),
        "securityContext": values("operator.podSecurityContext"),
    }
    return {key: setting for key, setting in placement.items() if setting not in ({}, [])}


def operator_deployment(
    *,
    name: str,
    namespace: str,
    image: str,
    labels: dict[str, str],
    selector: dict[str, str],
    values: ValueSource,
) -> dict[str, Any]:
    """A Deployment running ``python -m pop_operator`` with leader election.

    ``labels`` must include ``selector``: they label the pods the selector picks."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": values("operator.replicas"),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    **_placement(values),
                    "containers": [
                        {
                            "name": "operator",
                            "image": image,
                            "imagePullPolicy": values("operator.image.pullPolicy"),
                            "command": ["python", "-m", "pop_operator"],
                            "env": [
                                _field_env("EDGEPOP_OPERATOR_POD_NAME", "metadata.name"),
                                _field_env("EDGEPOP_OPERATOR_POD_NAMESPACE", "metadata.namespace"),
                                {
                                    "name": "EDGEPOP_OPERATOR_LAG_CHECK_SECONDS",
                                    "value": values("operator.lagCheckSeconds", text=True),
                                },
                            ],
                            "ports": [
                                {"name": "http", "containerPort": OperatorSettings().http_port}
                            ],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 20,
                                "timeoutSeconds": 5,
                            },
                            "resources": values("operator.resources"),
                            "securityContext": values("operator.securityContext"),
                        }
                    ],
                },
            },
        },
    }


def operator_service(
    *, name: str, namespace: str, labels: dict[str, str], selector: dict[str, str]
) -> dict[str, Any]:
    """The operator's HTTP port (/healthz, /metrics) as a Service."""
    port = OperatorSettings().http_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def health_check_pod(
    *,
    name: str,
    namespace: str,
    service: str,
    image: str,
    labels: dict[str, str],
    values: ValueSource,
) -> dict[str, Any]:
    """A `helm test` hook: passes when the operator answers /healthz through its Service.

    ``labels`` must not carry the operator's selector: its Service and ReplicaSet would
    pick this pod."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                "helm.sh/hook": "test",
                "helm.sh/hook-delete-policy": "before-hook-creation",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            **_placement(values),
            "containers": [
                {
                    "name": "check",
                    "image": image,
                    "imagePullPolicy": values("operator.image.pullPolicy"),
                    "command": ["python", "-c", HEALTH_CHECK],
                    "env": [
                        {"name": "OPERATOR_SERVICE", "value": service},
                        {"name": "OPERATOR_NAMESPACE", "value": namespace},
                        {"name": "OPERATOR_PORT", "value": str(OperatorSettings().http_port)},
                    ],
                    "resources": {"limits": {"memory": "64Mi"}},
                    "securityContext": values("operator.securityContext"),
                }
            ],
        },
    }
