"""The operator's RBAC rules: the one place they are written.

The chart, the kustomize base in ``k8s/`` and the API-server tests all use these rules
(the YAML files are generated from them), so the operator is tested under exactly the
permissions it is installed with.
"""

from __future__ import annotations

from typing import Any

from pop_operator.model import GROUP, PLURAL

Rule = dict[str, list[str]]

WRITE = ["get", "list", "watch", "create", "patch", "update", "delete"]

# Granted cluster-wide: the operator serves EdgePops in every namespace.
CLUSTER_RULES: list[Rule] = [
    # kopf watches EdgePops and keeps its progress and diff base in their annotations.
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
    # Owner references with blockOwnerDeletion need this where that admission check is on.
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/finalizers"], "verbs": ["update"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["services"], "verbs": WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors"], "verbs": WRITE},
    # Volumes of removed regions are deleted only when the EdgePop asks for it.
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["list", "delete"]},
    # POP pods are listed to read their /metrics for the lag timer.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    # Only the Redis URL Secret named by an EdgePop is read, to publish sync messages.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]

# Granted in the operator's own namespace only: the leader-election Lease.
NAMESPACE_RULES: list[Rule] = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    },
]


def rbac_objects(*, name: str, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole(+Binding) and Role(+Binding) for the operator."""
    meta = {"name": name, "labels": labels}
    namespaced = {**meta, "namespace": namespace}
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": namespaced},
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": meta,
            "rules": CLUSTER_RULES,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": name},
            "subjects": subject,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": namespaced,
            "rules": NAMESPACE_RULES,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": namespaced,
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": subject,
        },
    ]
