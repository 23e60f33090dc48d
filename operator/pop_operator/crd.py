"""The EdgePop CustomResourceDefinition, built from the pydantic models."""

from __future__ import annotations

from typing import Any

from pop_operator.model import (
    EDGEPOP_NAME_MAX,
    GROUP,
    KIND,
    PLURAL,
    REGION_NAME_PATTERN,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    EdgePopSpec,
    EdgePopStatus,
)
from pop_operator.structural import structural_schema

CRD_NAME = f"{PLURAL}.{GROUP}"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Regions", "type": "integer", "jsonPath": ".status.regionCount"},
    {"name": "Pops", "type": "string", "jsonPath": ".status.readyReplicas"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _root_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "EdgePop: read replicas (POPs) of one Turso/libSQL database per region.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(EdgePopSpec),
            "status": structural_schema(EdgePopStatus),
        },
        "x-kubernetes-validations": [
            {
                # Child names are "<edgepop>-<region>-headless": both parts must stay short.
                "rule": (
                    f"self.metadata.name.size() <= {EDGEPOP_NAME_MAX}"
                    f" && self.metadata.name.matches('{REGION_NAME_PATTERN}')"
                ),
                "message": (
                    f"metadata.name must be a DNS label of at most {EDGEPOP_NAME_MAX}"
                    " characters starting with a letter"
                ),
            }
        ],
    }


def custom_resource_definition() -> dict[str, Any]:
    """The CRD object, ready to be dumped as YAML or sent to the API server."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "edge-pop",
                "app.kubernetes.io/part-of": "edge-pop",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all", "edgepop"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": _root_schema()},
                }
            ],
        },
    }
