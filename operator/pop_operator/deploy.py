"""The operator's own Deployment, shared by the kustomize base and the Helm chart."""

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


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def operator_deployment(
    *, name: str, namespace: str, image: str, replicas: int | str, labels: dict[str, str]
) -> dict[str, Any]:
    """A Deployment running ``python -m pop_operator`` with leader election."""
    defaults = OperatorSettings()
    selector = {"app.kubernetes.io/name": OPERATOR_LABELS["app.kubernetes.io/name"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, **selector}},
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
