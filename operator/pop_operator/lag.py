"""How far behind a region's POPs are, read from their Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pop.contract import LAG_METRIC, METRICS_PATH
from pop_operator.kube import AsyncClient, Pod, as_dict
from pop_operator.render.identity import POP_PORT, PORT_NAME, Owner, selector_labels


def parse_lag(text: str) -> float | None:
    """The largest sample of the lag gauge in a metrics page; None when absent."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == LAG_METRIC
        for sample in family.samples
        if sample.name == LAG_METRIC
    ]
    return max(values) if values else None


def _pod_target(pod: dict[str, Any]) -> str | None:
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") != "Running":
        return None
    port = POP_PORT
    for container in (pod.get("spec") or {}).get("containers") or ():
        for p in container.get("ports") or ():
            if p.get("name") == PORT_NAME:
                port = int(p["containerPort"])
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{METRICS_PATH}"


async def pod_targets(client: AsyncClient, owner: Owner, region: str) -> list[str]:
    labels: dict[str, Any] = dict(selector_labels(owner, region))
    targets = []
    async for pod in client.list(Pod, namespace=owner.namespace, labels=labels):
        target = _pod_target(as_dict(pod))
        if target is not None:
            targets.append(target)
    return targets


async def _scrape(http: httpx.AsyncClient, url: str) -> float | None:
    try:
        response = await http.get(url)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return parse_lag(response.text)


async def region_lag(http: httpx.AsyncClient, targets: Iterable[str]) -> float | None:
    """The worst lag among the POPs that answered; None when none did."""
    results = await asyncio.gather(*(_scrape(http, url) for url in targets))
    answered = [r for r in results if r is not None]
    return max(answered) if answered else None
