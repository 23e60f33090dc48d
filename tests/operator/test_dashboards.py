"""edge-pop's Grafana dashboards (``pop_operator.monitoring.dashboards``): every panel says
what it shows and reads only what the programs export, and the chart and ``k8s/monitoring``
ship them to Grafana's sidecar. Their queries run through a real Prometheus in
tests/test_prometheus.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pop_operator.monitoring.dashboards import BOARDS, Board, build, dashboard_texts
from tests.operator.monitoring import exported_series, rendered

# The labels a series may be grouped by: the scrape's, then each metric family's own.
TARGET_LABELS = {"namespace", "edgepop", "region", "pod", "le"}
METRIC_LABELS = {
    "route",
    "endpoint",
    "request_type",
    "outcome",
    "code",
    "trigger",
    "kind",
    "direction",
    "reason",
}


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board.uid)
def test_every_panel_says_what_it_shows_and_reads_exported_metrics(board: Board) -> None:
    exported = exported_series()
    for chart in board.charts:
        assert len(chart.description) > 20, chart.title
        assert chart.unit and chart.thresholds, chart.title
        for query in chart.queries:
            named = set(re.findall(r"\b(edgepop_[a-z_]+|up)\b(?!\s*\()", query.expr))
            assert named and named <= exported, (chart.title, named - exported)
            grouped = {
                label.strip()
                for labels in re.findall(r"by \(([^)]*)\)", query.expr)
                for label in labels.split(",")
            }
            assert grouped <= TARGET_LABELS | METRIC_LABELS, (chart.title, grouped)


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board.uid)
def test_the_template_variables_filter_every_query(board: Board) -> None:
    model = build(board)
    names = [variable["name"] for variable in model["templating"]["list"]]
    assert names == ["datasource", *board.variables]
    for chart, panel in zip(board.charts, model["panels"], strict=True):
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["fieldConfig"]["defaults"]["unit"]
        for target in panel["targets"] if chart.filtered else ():
            for variable in board.variables:
                assert f'{variable}=~"${variable}"' in target["expr"], target["expr"]


def _rendered(helm_binary: str, *settings: str) -> list[dict[str, Any]]:
    maps = rendered(helm_binary, "ConfigMap", *settings)
    return [cm for cm in maps if cm["metadata"]["name"].endswith("-dashboard")]


def test_the_chart_ships_the_dashboards_to_grafanas_sidecar(helm_binary: str) -> None:
    maps = _rendered(helm_binary)
    shipped = {name: json.loads(text) for cm in maps for name, text in cm["data"].items()}
    assert shipped == {name: json.loads(text) for name, text in dashboard_texts().items()}
    assert all(cm["metadata"]["labels"]["grafana_dashboard"] == "1" for cm in maps)
    elsewhere = _rendered(
        helm_binary,
        "monitoring.dashboards.namespace=grafana",
        "monitoring.dashboards.labels.team=data",
    )
    assert {cm["metadata"]["namespace"] for cm in elsewhere} == {"grafana"}
    assert all(cm["metadata"]["labels"]["team"] == "data" for cm in elsewhere)
    assert _rendered(helm_binary, "monitoring.dashboards.enabled=false") == []
