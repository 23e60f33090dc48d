"""edge-pop's alerts: one table, from which the Prometheus rules file, the chart's and the
plain manifests' PrometheusRule, and the ``promtool test rules`` unit tests are generated
(``python -m pop_operator.manifests --write``).

Every alert carries a runbook link to its section of ``docs/runbooks.md`` and two
scenarios, series as promtool reads them: one in which it fires, one in which it stays
quiet. POP series carry ``namespace``, ``edgepop``, ``region`` and ``pod`` (the labels the
operator's ServiceMonitor gives them, ``pop_operator.render.monitoring``); the operator's
carry ``namespace`` and ``pod``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Where runbook links point unless the chart is told otherwise (monitoring.runbookBaseUrl).
RUNBOOKS = "docs/runbooks.md"
# A region whose last good sync is older than this is stale (seconds; 5 minutes, the
# default interval sync being 30 s).
STALE_SECONDS = 300
# The latency objective: 99% of local reads answered within 100 ms (a bucket boundary of
# edgepop_http_request_duration_seconds).
LATENCY_OBJECTIVE = 0.99
LATENCY_THRESHOLD = "0.1"
# Error codes that mean the POP, not the client, failed (pop.hrana.errors).
SERVER_ERROR_CODES = (
    "INTERNAL",
    "ORIGIN_UNAVAILABLE",
    "ORIGIN_OUTCOME_UNKNOWN",
    "PEER_OUTCOME_UNKNOWN",
    "REPLICA_NOT_OPEN",
)

POP_LABELS = {"namespace": "shop", "edgepop": "shop", "region": "eu", "pod": "shop-eu-0"}
OPERATOR_LABELS = {"namespace": "edge-pop-system", "pod": "edge-operator-0"}
_POP_KEYS = "namespace, edgepop, region"


@dataclass(frozen=True, slots=True)
class Scenario:
    """Series (selector -> promtool's expanding notation) and when to evaluate them."""

    series: dict[str, str]
    at: str = "30m"


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    expr: str
    wait: str  # the rule's `for`
    severity: str
    summary: str
    description: str  # may use {{ $labels.<name> }}
    fires: Scenario
    quiet: Scenario
    labels: dict[str, str] = field(default_factory=dict)  # the firing alert's labels

    @property
    def anchor(self) -> str:
        return self.name.lower()


def _series(metric: str, labels: dict[str, str], **extra: str) -> str:
    merged = {**labels, **extra}
    inner = ", ".join(f'{key}="{value}"' for key, value in merged.items())
    return f"{metric}{{{inner}}}"


def _pop(metric: str, **extra: str) -> str:
    return _series(metric, POP_LABELS, **extra)


def _operator(metric: str, **extra: str) -> str:
    return _series(metric, OPERATOR_LABELS, **extra)


_REGION = {k: POP_LABELS[k] for k in ("namespace", "edgepop", "region")}
_SERVER_ERRORS = "|".join(SERVER_ERROR_CODES)
_BURN = 14.4  # a 30-day error budget spent in 2 days (the SRE workbook's fast burn)
_BUDGET = round(1 - LATENCY_OBJECTIVE, 6)


def _slow_share(window: str) -> str:
    """The share of local HTTP calls slower than the threshold over ``window``."""
    bucket = "edgepop_http_request_duration_seconds_bucket"
    count = "edgepop_http_request_duration_seconds_count"
    return (
        f'(1 - sum by ({_POP_KEYS}) (rate({bucket}{{route="local", '
        f'le="{LATENCY_THRESHOLD}"}}[{window}])) / sum by ({_POP_KEYS}) '
        f'(rate({count}{{route="local"}}[{window}])))'
    )


ALERTS: tuple[Alert, ...] = (
    Alert(
        "EdgePopRegionStale",
        f"max by ({_POP_KEYS}) (edgepop_sync_last_success_age_seconds) > {STALE_SECONDS}",
        "5m",
        "critical",
        "A region's replicas are stale",
        "The POPs of region {{ $labels.region }} of EdgePop {{ $labels.namespace }}/"
        "{{ $labels.edgepop }} last synced with the origin more than "
        f"{STALE_SECONDS} seconds ago; their reads may miss recent writes.",
        Scenario({_pop("edgepop_sync_last_success_age_seconds"): "0+60x40"}),
        Scenario({_pop("edgepop_sync_last_success_age_seconds"): "10+0x40"}),
        labels=_REGION,
    ),
    Alert(
        "EdgePopSyncFailing",
        "sum by (namespace, edgepop, region, pod) "
        '(increase(edgepop_syncs_total{outcome="error"}[15m])) > 0 '
        "unless sum by (namespace, edgepop, region, pod) "
        '(increase(edgepop_syncs_total{outcome="ok"}[15m])) > 0',
        "10m",
        "warning",
        "A POP's syncs fail",
        "Every sync of POP {{ $labels.pod }} ({{ $labels.namespace }}/"
        "{{ $labels.edgepop }}, region {{ $labels.region }}) failed for 15 minutes.",
        Scenario(
            {
                _pop("edgepop_syncs_total", trigger="interval", outcome="error"): "0+2x40",
                _pop("edgepop_syncs_total", trigger="interval", outcome="ok"): "5+0x40",
            }
        ),
        Scenario(
            {
                _pop("edgepop_syncs_total", trigger="interval", outcome="error"): "0+2x40",
                _pop("edgepop_syncs_total", trigger="interval", outcome="ok"): "5+1x40",
            }
        ),
        labels=POP_LABELS,
    ),
    Alert(
        "EdgePopOriginUnreachable",
        "sum by (namespace, edgepop, region, pod) "
        '(rate(edgepop_origin_errors_total{kind="unavailable"}[5m])) > 0',
        "5m",
        "critical",
        "A POP cannot reach the origin",
        "POP {{ $labels.pod }} ({{ $labels.namespace }}/{{ $labels.edgepop }}, region "
        "{{ $labels.region }}) fails to reach the origin: writes and syncs fail; reads "
        "are still answered from its replica.",
        Scenario({_pop("edgepop_origin_errors_total", kind="unavailable"): "0+3x40"}),
        Scenario({_pop("edgepop_origin_errors_total", kind="unavailable"): "4+0x40"}),
        labels=POP_LABELS,
    ),
    Alert(
        "EdgePopRedisDisconnected",
        # Only where Redis was connected in the last 6 hours: 0 also means "not configured".
        "edgepop_redis_connected == 0 and max_over_time(edgepop_redis_connected[6h]) > 0",
        "15m",
        "warning",
        "A POP lost Redis",
        "POP {{ $labels.pod }} ({{ $labels.namespace }}/{{ $labels.edgepop }}) has not "
        "been subscribed to Redis for 15 minutes: it learns of writes through other POPs "
        "only at its interval sync.",
        Scenario({_pop("edgepop_redis_connected"): "1x5 0x35"}),
        Scenario({_pop("edgepop_redis_connected"): "0x40"}),
        labels=POP_LABELS,
    ),
    Alert(
        "EdgePopDown",
        'up{edgepop!=""} == 0',
        "5m",
        "critical",
        "A POP is down",
        "Prometheus cannot scrape POP {{ $labels.pod }} ({{ $labels.namespace }}/"
        "{{ $labels.edgepop }}, region {{ $labels.region }}).",
        Scenario({_pop("up"): "1x5 0x35"}),
        Scenario({_pop("up"): "1x40"}),
        labels=POP_LABELS,
    ),
    Alert(
        "EdgePopNotReady",
        "edgepop_sync_last_success_age_seconds < 0",
        "10m",
        "warning",
        "A POP has never synced",
        "POP {{ $labels.pod }} ({{ $labels.namespace }}/{{ $labels.edgepop }}) has not "
        "finished a first sync in 10 minutes, so it is not ready and serves no client.",
        Scenario({_pop("edgepop_sync_last_success_age_seconds"): "-1x40"}),
        Scenario({_pop("edgepop_sync_last_success_age_seconds"): "-1x5 3x35"}),
        labels=POP_LABELS,
    ),
    Alert(
        "EdgePopErrorRatioHigh",
        f'(sum by ({_POP_KEYS}) (rate(edgepop_errors_total{{code=~"{_SERVER_ERRORS}"}}'
        f"[5m])) or sum by ({_POP_KEYS}) (rate(edgepop_requests_total[5m])) * 0) / "
        f"sum by ({_POP_KEYS}) (rate(edgepop_requests_total[5m])) > 0.05",
        "10m",
        "critical",
        "A region answers many server errors",
        "More than 5% of the requests to region {{ $labels.region }} of "
        "{{ $labels.namespace }}/{{ $labels.edgepop }} end in a server-side error "
        f"({', '.join(SERVER_ERROR_CODES)}).",
        Scenario(
            {
                _pop(
                    "edgepop_requests_total",
                    endpoint="v2_pipeline",
                    request_type="execute",
                    route="origin",
                    outcome="error",
                ): "0+100x40",
                _pop("edgepop_errors_total", code="ORIGIN_UNAVAILABLE"): "0+20x40",
            }
        ),
        Scenario(
            {
                _pop(
                    "edgepop_requests_total",
                    endpoint="v2_pipeline",
                    request_type="execute",
                    route="local",
                    outcome="ok",
                ): "0+100x40",
                _pop("edgepop_errors_total", code="SQLITE_CONSTRAINT"): "0+50x40",
            }
        ),
        labels=_REGION,
    ),
    Alert(
        "EdgePopLatencyBudgetBurn",
        f"{_slow_share('1h')} > {_BURN} * {_BUDGET} and {_slow_share('5m')} > {_BURN} * {_BUDGET}",
        "2m",
        "critical",
        "Local reads are slow",
        "Region {{ $labels.region }} of {{ $labels.namespace }}/{{ $labels.edgepop }} "
        f"answers more than {_BURN * _BUDGET:.1%} of local calls slower than "
        f"{LATENCY_THRESHOLD} s: at this rate the objective ({LATENCY_OBJECTIVE:.0%} within "
        f"{LATENCY_THRESHOLD} s over 30 days) is spent in 2 days.",
        Scenario(
            {
                _pop(
                    "edgepop_http_request_duration_seconds_bucket",
                    endpoint="v2_pipeline",
                    route="local",
                    le=LATENCY_THRESHOLD,
                ): "0+50x80",
                _pop(
                    "edgepop_http_request_duration_seconds_count",
                    endpoint="v2_pipeline",
                    route="local",
                ): "0+100x80",
            },
            at="70m",
        ),
        Scenario(
            {
                _pop(
                    "edgepop_http_request_duration_seconds_bucket",
                    endpoint="v2_pipeline",
                    route="local",
                    le=LATENCY_THRESHOLD,
                ): "0+100x80",
                _pop(
                    "edgepop_http_request_duration_seconds_count",
                    endpoint="v2_pipeline",
                    route="local",
                ): "0+100x80",
            },
            at="70m",
        ),
        labels=_REGION,
    ),
    Alert(
        "EdgePopOperatorReconcileFailing",
        'sum by (namespace, pod) (increase(edgepop_operator_reconciles_total{outcome="error"}'
        "[15m])) > 0",
        "15m",
        "warning",
        "The operator fails to reconcile EdgePops",
        "Operator pod {{ $labels.pod }} ({{ $labels.namespace }}) failed reconciliations "
        "for 15 minutes: changes to EdgePops are not applied.",
        Scenario({_operator("edgepop_operator_reconciles_total", outcome="error"): "0+1x40"}),
        Scenario({_operator("edgepop_operator_reconciles_total", outcome="error"): "2+0x40"}),
        labels=OPERATOR_LABELS,
    ),
    Alert(
        "EdgePopOperatorNoLeader",
        "(sum(edgepop_operator_leader) or vector(0)) < 1",
        "5m",
        "critical",
        "No operator leads",
        "No edge-pop operator pod holds the leader Lease: EdgePops are not reconciled and "
        "lagging regions are not asked to sync.",
        Scenario({_operator("edgepop_operator_leader"): "0x40"}),
        Scenario(
            {
                _operator("edgepop_operator_leader"): "1x40",
                _series(
                    "edgepop_operator_leader", {**OPERATOR_LABELS, "pod": "edge-operator-1"}
                ): "0x40",
            }
        ),
    ),
)


def rule_groups(runbooks: str = RUNBOOKS) -> list[dict[str, Any]]:
    """The rules, in a Prometheus rules file's ``groups`` (a PrometheusRule's spec too)."""
    return [
        {
            "name": "edge-pop",
            "rules": [
                {
                    "alert": alert.name,
                    "expr": alert.expr,
                    "for": alert.wait,
                    "labels": {"severity": alert.severity},
                    "annotations": {
                        "summary": alert.summary,
                        "description": alert.description,
                        "runbook_url": f"{runbooks}#{alert.anchor}",
                    },
                }
                for alert in ALERTS
            ],
        }
    ]


def rules_file() -> dict[str, Any]:
    return {"groups": rule_groups()}


def unit_tests(rules_path: str) -> dict[str, Any]:
    """``promtool test rules`` input: each alert fires in one scenario, not in the other."""
    tests = []
    for alert in ALERTS:
        for scenario, fires in ((alert.fires, True), (alert.quiet, False)):
            expected = []
            if fires:
                expected.append(
                    {
                        "exp_labels": {**alert.labels, "severity": alert.severity},
                        "exp_annotations": {
                            "summary": alert.summary,
                            "description": _expanded(alert.description, alert.labels),
                            "runbook_url": f"{RUNBOOKS}#{alert.anchor}",
                        },
                    }
                )
            tests.append(
                {
                    "name": f"{alert.name} {'fires' if fires else 'stays quiet'}",
                    "interval": "1m",
                    "input_series": [
                        {"series": series, "values": values}
                        for series, values in scenario.series.items()
                    ],
                    "alert_rule_test": [
                        {"eval_time": scenario.at, "alertname": alert.name, "exp_alerts": expected}
                    ],
                }
            )
    return {"rule_files": [rules_path], "evaluation_interval": "1m", "tests": tests}


def _expanded(template: str, labels: dict[str, str]) -> str:
    """The description as Prometheus expands it for an alert with ``labels``."""
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
