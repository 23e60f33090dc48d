"""PodDisruptionBudget: voluntary evictions take at most one POP of a region at a time."""

from __future__ import annotations

from typing import Any

from pop_operator.model import Region
from pop_operator.render.identity import Owner, metadata, region_name, selector_labels


def pod_disruption_budget(owner: Owner, region: Region) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, region_name(owner, region.name), region.name),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(owner, region.name)},
        },
    }
