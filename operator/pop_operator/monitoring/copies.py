"""The copies of the alerts users install: a plain Prometheus rules file and its promtool
unit tests (``monitoring/``), a PrometheusRule for ``kubectl apply`` (``k8s/monitoring/``)
and the chart's template. All are generated from :mod:`pop_operator.monitoring.alerts` by
``python -m pop_operator.manifests --write``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from pop_operator.monitoring.alerts import rule_groups, rules_file, unit_tests

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
