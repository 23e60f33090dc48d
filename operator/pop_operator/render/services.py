"""The client Service of a region and the headless Service its StatefulSet needs."""

from __future__ import annotations

from typing import Any

from pop_operator.model import Region
from pop_operator.render.identity import (
    POP_PORT,
    PORT_NAME,
    SERVICE_ROLE_LABEL,
    Owner,
    headless_name,
    metadata,
    region_name,
    selector_labels,
)


def _service(
    owner: Owner, region: Region, name: str, role: str, spec: dict[str, Any]
) -> dict[str, Any]:
    port = {"name": PORT_NAME, "port": POP_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, name, region.name, **{SERVICE_ROLE_LABEL: role}),
        "spec": {**spec, "selector": selector_labels(owner, region.name), "ports": [port]},
    }


def client_service(owner: Owner, region: Region) -> dict[str, Any]:
    """What clients of the region connect to: ready POPs only."""
    return _service(owner, region, region_name(owner, region.name), "client", {"type": "ClusterIP"})


def headless_service(owner: Owner, region: Region) -> dict[str, Any]:
    """Stable per-pod DNS names for the StatefulSet; lists POPs that are not ready yet too."""
    return _service(
        owner,
        region,
        headless_name(owner, region.name),
        "headless",
        {"clusterIP": "None", "publishNotReadyAddresses": True},
    )
