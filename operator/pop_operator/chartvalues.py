"""The Helm chart's values, as the JSON schema Helm checks them against (values.schema.json).

Helm validates the merged values on install, upgrade, template and lint, and names the
field that is wrong; unknown keys are refused, so a typo does not pass silently.
"""

from __future__ import annotations

from typing import Any


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": properties,
    }


def values_schema() -> dict[str, Any]:
    image = _object(
        {
            "repository": {
                "type": "string",
                "description": "Where you pushed the edge-pop image (required at install).",
            },
            "tag": {
                "type": "string",
                "description": "Image tag; empty means the chart's appVersion.",
            },
        },
        "The edge-pop image the operator runs.",
    )
    operator = _object(
        {
            "image": image,
            "replicas": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10,
                "description": "Operator pods; one leads through a Lease.",
            },
        },
        "The edge-pop operator's Deployment.",
    )
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "edge-pop chart values",
        **_object({"operator": operator}, "Values of the edge-pop chart."),
    }
