"""Prometheus scrape wiring: a ServiceMonitor, or pod annotations when there is none."""

from __future__ import annotations

from typing import Any

from pop.contract import METRICS_PATH
from pop_operator.model import Region
from pop_operator.render.identity import (
    POP_PORT,
    PORT_NAME,
    SERVICE_ROLE_LABEL,
    Owner,
    metadata,
    region_name,
    selector_labels,
)

SERVICE_MONITOR_API = ("monitoring.coreos.com", "v1", "servicemonitors")


# The labels edge-pop's alerts and dashboards group by: the EdgePop and the region of
# each POP (namespace and pod the Prometheus operator sets by itself).
TARGET_RELABELINGS = [
    {
        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
        "targetLabel": "edgepop",
    },
    {
        "sourceLabels": ["__meta_kubernetes_pod_label_edgepop_io_region"],
        "targetLabel": "region",
    },
]


def scrape_annotations() -> dict[str, str]:
    """The annotations the common Prometheus pod-discovery configs look for."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(POP_PORT),
        "prometheus.io/path": METRICS_PATH,
    }


def service_monitor(owner: Owner, region: Region) -> dict[str, Any]:
    """Scrape the region's client Service (not the headless one: no double scrapes)."""
    match = {**selector_labels(owner, region.name), SERVICE_ROLE_LABEL: "client"}
    return {
        "apiVersion": f"{SERVICE_MONITOR_API[0]}/{SERVICE_MONITOR_API[1]}",
        "kind": "ServiceMonitor",
        "metadata": metadata(owner, region_name(owner, region.name), region.name),
        "spec": {
            "selector": {"matchLabels": match},
            "endpoints": [
                {
                    "port": PORT_NAME,
                    "path": METRICS_PATH,
                    "interval": "30s",
                    "relabelings": TARGET_RELABELINGS,
                }
            ],
        },
    }
