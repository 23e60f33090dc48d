"""The Kubernetes API through lightkube: resource types and small typed helpers.

lightkube is used for the children (kopf watches the EdgePops itself): it is typed
(``py.typed``, models for every built-in kind), async, speaks server-side apply, and
reads the same kubeconfig / in-cluster credentials that kopf uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube import ApiError, AsyncClient, codecs
from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod, Secret, Service
from lightkube.resources.policy_v1 import PodDisruptionBudget

from pop_operator.model import GROUP, KIND, PLURAL, VERSION
from pop_operator.render.monitoring import SERVICE_MONITOR_API

EdgePopResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
ServiceMonitorResource = create_namespaced_resource(
    SERVICE_MONITOR_API[0], SERVICE_MONITOR_API[1], "ServiceMonitor", SERVICE_MONITOR_API[2]
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "EdgePopResource",
    "PersistentVolumeClaim",
    "Pod",
    "PodDisruptionBudget",
    "Secret",
    "Service",
    "ServiceMonitorResource",
    "StatefulSet",
    "as_dict",
    "in_cluster_server",
    "is_not_found",
    "to_resource",
]


def to_resource(obj: dict[str, Any]) -> NamespacedResource:
    """A rendered dict as the lightkube object of its kind."""
    resource = codecs.from_dict(obj)
    assert isinstance(resource, NamespacedResource)
    return resource


def as_dict(resource: Any) -> dict[str, Any]:
    """A lightkube object (built-in or generic) as a plain dict."""
    out = resource.to_dict()
    assert isinstance(out, dict)
    return out


def is_not_found(error: ApiError) -> bool:
    return error.status.code == 404


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """The API server's URL in a pod, found as client-go and lightkube find it: from the
    ``kubernetes`` Service's environment variables, which need no cluster DNS."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
