"""The operator's own Deployment and Service, shared by the kustomize base and the Helm chart,
and the chart's `helm test` check."""

from __future__ import annotations

from typing import Any

from pop_operator.render.identity import container_security_context, pod_security_context
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


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def operator_deployment(
    *, name: str, namespace: str, image: str, replicas: int | str, labels: dict[str, str]
) -> dict[str, Any]:
    """A Deployment running ``python -m pop_operator`` with leader election."""
    defaults = OperatorSettings()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": OPERATOR_SELECTOR},
            "template": {
                "metadata": {"labels": {**labels, **OPERATOR_SELECTOR}},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": pod_security_context(),
                    "containers": [
                        {
                            "name": "operator",
                            "image": image,
                            "command": ["python", "-m", "pop_operator"],
                            "env": [
                                _field_env("EDGEPOP_OPERATOR_POD_NAME", "metadata.name"),
                                _field_env("EDGEPOP_OPERATOR_POD_NAMESPACE", "metadata.namespace"),
                            ],
                            "ports": [{"name": "http", "containerPort": defaults.http_port}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 20,
                                "timeoutSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "128Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": container_security_context(),
                        }
                    ],
                },
            },
        },
    }


def operator_service(*, name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """The operator's HTTP port (/healthz, /metrics) as a Service."""
    port = OperatorSettings().http_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": OPERATOR_SELECTOR,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def health_check_pod(
    *, name: str, namespace: str, service: str, image: str, labels: dict[str, str]
) -> dict[str, Any]:
    """A `helm test` hook: passes when the operator answers /healthz through its Service."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            # Not the operator's name label: its Service and ReplicaSet must not select it.
            "labels": {
                **labels,
                "app.kubernetes.io/name": "edge-pop-operator-test",
                "app.kubernetes.io/component": "test",
            },
            "annotations": {
                "helm.sh/hook": "test",
                "helm.sh/hook-delete-policy": "before-hook-creation",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "securityContext": pod_security_context(),
            "containers": [
                {
                    "name": "check",
                    "image": image,
                    "command": ["python", "-c", HEALTH_CHECK],
                    "env": [
                        {"name": "OPERATOR_SERVICE", "value": service},
                        {"name": "OPERATOR_NAMESPACE", "value": namespace},
                        {"name": "OPERATOR_PORT", "value": str(OperatorSettings().http_port)},
                    ],
                    "resources": {"limits": {"memory": "64Mi"}},
                    "securityContext": container_security_context(),
                }
            ],
        },
    }
