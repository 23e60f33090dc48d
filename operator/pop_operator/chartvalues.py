"""The Helm chart's values: one table, from which values.yaml, values.schema.json, the
chart README's values table and the plain manifests' settings are all generated.

Helm validates the merged values against the schema on install, upgrade, template and
lint, and names the field that is wrong; unknown keys are refused, so a typo does not
pass silently. Kubernetes objects a user hands through (resources, security contexts,
scheduling) are checked by the API server, not here.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

import yaml

from pop_operator.monitoring.alerts import RUNBOOKS
from pop_operator.render.identity import container_security_context, pod_security_context
from pop_operator.settings import OperatorSettings


@dataclass(frozen=True, slots=True)
class ChartValue:
    """One leaf of values.yaml."""

    path: str
    schema: dict[str, Any]
    default: Any
    description: str

    @property
    def helm_ref(self) -> str:
        return f".Values.{self.path}"


_OBJECT = {"type": "object"}
# A whole number stays one through Helm (30, not 30.0), so both manifests say the same.
_LAG_CHECK_SECONDS = OperatorSettings.model_fields["lag_check_seconds"].default
if float(_LAG_CHECK_SECONDS).is_integer():
    _LAG_CHECK_SECONDS = int(_LAG_CHECK_SECONDS)
_LIST = {"type": "array"}

VALUES: tuple[ChartValue, ...] = (
    ChartValue(
        "operator.image.repository",
        {"type": "string"},
        "",
        "Required: where you pushed the edge-pop image (README: Container image), e.g. "
        "registry.example.com/edge-pop. No published image is assumed.",
    ),
    ChartValue("operator.image.tag", {"type": "string"}, "", "Image tag; empty means appVersion."),
    ChartValue(
        "operator.image.pullPolicy",
        {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
        "IfNotPresent",
        "When the kubelet pulls the image.",
    ),
    ChartValue(
        "operator.imagePullSecrets",
        {**_LIST, "items": {"type": "object", "required": ["name"]}},
        [],
        "Secrets for a private registry, as [{name: ...}].",
    ),
    ChartValue(
        "operator.replicas",
        {"type": "integer", "minimum": 1, "maximum": 10},
        2,
        "Operator pods; one leads through a Lease, the others wait to take over.",
    ),
    ChartValue(
        "operator.lagCheckSeconds",
        {"type": "number", "exclusiveMinimum": 0},
        _LAG_CHECK_SECONDS,
        "How often the operator reads each POP's lag and asks lagging regions to sync.",
    ),
    ChartValue(
        "operator.resources",
        _OBJECT,
        {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "The operator container's resources.",
    ),
    ChartValue(
        "operator.podSecurityContext",
        _OBJECT,
        pod_security_context(),
        "The operator pod's securityContext (the image's user is 65532).",
    ),
    ChartValue(
        "operator.securityContext",
        _OBJECT,
        container_security_context(),
        "The operator container's securityContext.",
    ),
    ChartValue("operator.nodeSelector", _OBJECT, {}, "Where operator pods may run."),
    ChartValue("operator.tolerations", _LIST, [], "Taints operator pods tolerate."),
    ChartValue("operator.affinity", _OBJECT, {}, "Affinity of operator pods."),
    ChartValue(
        "monitoring.dashboards.enabled",
        {"type": "boolean"},
        True,
        "Install edge-pop's Grafana dashboards as ConfigMaps for Grafana's dashboard sidecar.",
    ),
    ChartValue(
        "monitoring.dashboards.labels",
        _OBJECT,
        {"grafana_dashboard": "1"},
        "Labels the sidecar finds dashboard ConfigMaps by (its LABEL, LABEL_VALUE).",
    ),
    ChartValue(
        "monitoring.dashboards.namespace",
        {"type": "string"},
        "",
        "Where the dashboard ConfigMaps go; empty: the release's namespace.",
    ),
    ChartValue(
        "monitoring.prometheusRule.enabled",
        {"type": "boolean"},
        False,
        "Install a PrometheusRule with edge-pop's alerts (needs the Prometheus operator's "
        "CRDs; docs/runbooks.md says what each alert means).",
    ),
    ChartValue(
        "monitoring.prometheusRule.labels",
        _OBJECT,
        {},
        "Labels your Prometheus selects rules by, e.g. {release: kube-prometheus-stack}.",
    ),
    ChartValue(
        "monitoring.runbookBaseUrl",
        {"type": "string", "minLength": 1},
        RUNBOOKS,
        "Where each alert's runbook_url points (an anchor per alert is added): the URL "
        "of docs/runbooks.md where your team reads it.",
    ),
)
_BY_PATH = {value.path: value for value in VALUES}


def value(path: str) -> ChartValue:
    return _BY_PATH[path]


def defaults() -> dict[str, Any]:
    """values.yaml as a tree: what the chart renders with when nothing is set."""
    tree: dict[str, Any] = {}
    for leaf in VALUES:
        *parents, key = leaf.path.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = leaf.default
    return tree


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    return {**schema, "additionalProperties": False, "properties": properties}


def values_schema() -> dict[str, Any]:
    root = _object({}, "Values of the edge-pop chart.")
    for leaf in VALUES:
        *parents, key = leaf.path.split(".")
        node = root
        for parent in parents:
            node = node["properties"].setdefault(parent, _object({}))
        node["properties"][key] = {
            **leaf.schema,
            "description": leaf.description,
            "default": leaf.default,
        }
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "edge-pop chart values",
        **root,
    }


def values_yaml(header: str) -> str:
    """values.yaml: every value with its default, under its description as a comment."""
    lines = textwrap.wrap(header, 92, initial_indent="# ", subsequent_indent="# ")
    written: set[str] = set()
    for leaf in VALUES:
        *parents, key = leaf.path.split(".")
        for depth, parent in enumerate(parents):
            prefix = ".".join(parents[: depth + 1])
            if prefix not in written:
                written.add(prefix)
                lines.append(f"{'  ' * depth}{parent}:")
        indent = "  " * len(parents)
        lines += textwrap.wrap(
            leaf.description, 92, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# "
        )
        body = yaml.safe_dump({key: leaf.default}, sort_keys=False, default_flow_style=False)
        lines += [f"{indent}{line}" for line in body.splitlines()]
    return "\n".join(lines) + "\n"


def values_table() -> str:
    """The chart README's values table (Markdown)."""
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for leaf in VALUES:
        default = json.dumps(leaf.default, separators=(", ", ": "))
        kind = leaf.schema["type"]
        if "enum" in leaf.schema:
            kind = " \\| ".join(leaf.schema["enum"])
        rows.append(f"| `{leaf.path}` | {kind} | `{default}` | {leaf.description} |")
    return "\n".join(rows) + "\n"
