"""The copies of the alerts and dashboards users install: a plain Prometheus rules file and
its promtool unit tests, the dashboards' JSON (``monitoring/``), a PrometheusRule and
dashboard ConfigMaps for ``kubectl apply`` (``k8s/monitoring/``), and the chart's
templates. All are generated from :mod:`pop_operator.monitoring.alerts` and
:mod:`pop_operator.monitoring.dashboards` by ``python -m pop_operator.manifests --write``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from pop_operator.monitoring.alerts import rule_groups, rules_file, unit_tests
from pop_operator.monitoring.dashboards import dashboard_texts

RULES_FILE = "alerts.rules.yaml"
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1"
_RUNBOOK_MARK = "__RUNBOOKS__"


def _yaml(body: Any) -> str:
    return yaml.safe_dump(body, sort_keys=False, width=1_000_000, allow_unicode=True)


def rules_text(header: str) -> str:
    return f"# {header}\n{_yaml(rules_file())}"


def unit_tests_text(header: str) -> str:
    return f"# {header}\n# Run: promtool test rules monitoring/alerts.test.yaml\n" + _yaml(
        unit_tests(RULES_FILE)
    )


def prometheus_rule(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": PROMETHEUS_RULE_API,
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"groups": rule_groups()},
    }


def helm_prometheus_rule(header: str) -> str:
    """The chart's template: the same rules, installed when monitoring.prometheusRule.enabled,
    their runbook links on monitoring.runbookBaseUrl."""
    spec = _yaml({"spec": {"groups": rule_groups(runbooks=_RUNBOOK_MARK)}})
    # Prometheus's own templates ({{ $labels.x }}) must reach Prometheus untouched by Helm.
    spec = re.sub(r"(\{\{ \$[^}]*\}\})", r"{{`\1`}}", spec)
    spec = re.sub(
        rf"runbook_url: {_RUNBOOK_MARK}#(\w+)",
        r'runbook_url: {{ printf "%s#\1" .Values.monitoring.runbookBaseUrl | quote }}',
        spec,
    )
    return (
        f"{{{{/* {header} */}}}}\n"
        "{{- if .Values.monitoring.prometheusRule.enabled }}\n"
        f"apiVersion: {PROMETHEUS_RULE_API}\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        '  name: {{ printf "%s-alerts" .Release.Name | trunc 63 | trimSuffix "-" }}\n'
        "  namespace: {{ .Release.Namespace }}\n"
        "  labels:\n"
        '    {{- include "edge-pop.labels" . | nindent 4 }}\n'
        "    {{- with .Values.monitoring.prometheusRule.labels }}\n"
        "    {{- toYaml . | nindent 4 }}\n"
        "    {{- end }}\n"
        f"{spec}"
        "{{- end }}\n"
    )


# The Grafana sidecar's default label (kube-prometheus-stack, grafana's chart).
SIDECAR_LABELS = {"grafana_dashboard": "1"}


def dashboard_config_maps(namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"edge-pop-{name.removesuffix('.json').removeprefix('edge-pop-')}"
                "-dashboard",
                "namespace": namespace,
                "labels": {**labels, **SIDECAR_LABELS},
            },
            "data": {name: text},
        }
        for name, text in dashboard_texts().items()
    ]


def helm_dashboards(header: str) -> str:
    """The chart's template: a ConfigMap per file in the chart's dashboards/ folder."""
    return (
        f"{{{{/* {header} */}}}}\n"
        "{{- if .Values.monitoring.dashboards.enabled }}\n"
        '{{- range $path, $_ := .Files.Glob "dashboards/*.json" }}\n'
        "---\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        '  name: {{ printf "%s-%s" $.Release.Name (base $path | trimSuffix ".json" | '
        'trimPrefix "edge-pop-") | trunc 53 | trimSuffix "-" }}-dashboard\n'
        "  namespace: {{ $.Values.monitoring.dashboards.namespace | default "
        "$.Release.Namespace }}\n"
        "  labels:\n"
        '    {{- include "edge-pop.labels" $ | nindent 4 }}\n'
        "    {{- with $.Values.monitoring.dashboards.labels }}\n"
        "    {{- toYaml . | nindent 4 }}\n"
        "    {{- end }}\n"
        "data:\n"
        "  {{ base $path }}: |-\n"
        "    {{- $.Files.Get $path | nindent 4 }}\n"
        "{{- end }}\n"
        "{{- end }}\n"
    )
