"""Names, labels, owner references and security contexts shared by every child object
(and the operator's own Deployment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pop.contract import DEFAULT_PORT
from pop_operator.model import API_VERSION, KIND

# The user and group the Dockerfile creates; the operator and the POPs run as them.
IMAGE_UID = 65532
POP_PORT = DEFAULT_PORT
PORT_NAME = "http"
MANAGED_BY = "edge-pop-operator"
REGION_LABEL = "edgepop.io/region"
SERVICE_ROLE_LABEL = "edgepop.io/service"


@dataclass(frozen=True, slots=True)
class Owner:
    """The EdgePop that owns the children."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def region_name(owner: Owner, region: str) -> str:
    """Name of the StatefulSet, Service and PDB of a region."""
    return f"{owner.name}-{region}"


def headless_name(owner: Owner, region: str) -> str:
    return f"{region_name(owner, region)}-headless"


def selector_labels(owner: Owner, region: str) -> dict[str, str]:
    """Labels that pick exactly the POP pods of one region of one EdgePop."""
    return {
        "app.kubernetes.io/name": "edge-pop",
        "app.kubernetes.io/instance": owner.name,
        REGION_LABEL: region,
    }


def owned_selector(owner: Owner) -> str:
    """Label selector (string form) for every child of an EdgePop, all regions."""
    return f"app.kubernetes.io/instance={owner.name},app.kubernetes.io/managed-by={MANAGED_BY}"


def labels(owner: Owner, region: str) -> dict[str, str]:
    return {
        **selector_labels(owner, region),
        "app.kubernetes.io/component": "pop",
        "app.kubernetes.io/part-of": "edge-pop",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def metadata(owner: Owner, name: str, region: str, **extra_labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**labels(owner, region), **extra_labels},
        "ownerReferences": [owner.reference()],
    }


def pod_security_context() -> dict[str, Any]:
    """Non-root as the image's user; files on mounted volumes get its group (fsGroup), so
    the POP can write a fresh claim whatever the volume's owner."""
    return {
        "runAsNonRoot": True,
        "runAsUser": IMAGE_UID,
        "runAsGroup": IMAGE_UID,
        "fsGroup": IMAGE_UID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
