"""Pure functions: an EdgePop in, the Kubernetes objects of its regions out (plain dicts)."""

from __future__ import annotations

from typing import Any

from pop_operator.model import EdgePopSpec, Region
from pop_operator.render.disruption import pod_disruption_budget
from pop_operator.render.identity import Owner
from pop_operator.render.monitoring import service_monitor
from pop_operator.render.services import client_service, headless_service
from pop_operator.render.statefulset import stateful_set

__all__ = ["Owner", "render_edgepop", "render_region"]


def render_region(
    owner: Owner, spec: EdgePopSpec, region: Region, *, with_service_monitor: bool
) -> list[dict[str, Any]]:
    """Every child object of one region, in the order they should be applied."""
    objects = [
        headless_service(owner, region),
        client_service(owner, region),
        pod_disruption_budget(owner, region),
        stateful_set(owner, spec, region, scrape_annotations_on=not with_service_monitor),
    ]
    if with_service_monitor:
        objects.append(service_monitor(owner, region))
    return objects


def render_edgepop(
    owner: Owner, spec: EdgePopSpec, *, service_monitor_available: bool
) -> list[dict[str, Any]]:
    """Children of all regions; a ServiceMonitor only when the spec wants and the cluster has it."""
    with_sm = spec.monitoring.service_monitor and service_monitor_available
    return [
        obj
        for region in spec.regions
        for obj in render_region(owner, spec, region, with_service_monitor=with_sm)
    ]
