"""edge-pop's alerts, checked by the real ``promtool`` (Debian's prometheus package): the
rules load, and each alert fires in its scenario and stays quiet in the other
(``monitoring/alerts.test.yaml``, generated with the rules from
``pop_operator.monitoring.alerts``). The chart installs the same rules, on request."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pop_operator.manifests import REPO_ROOT
from pop_operator.monitoring.alerts import ALERTS, RUNBOOKS, rule_groups
from tests.operator.monitoring import exported_series, rendered

MONITORING = REPO_ROOT / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: scripts/test installs Debian's prometheus package"
    return found


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, cwd=MONITORING
    )


def test_the_rules_load(promtool: str) -> None:
    checked = _promtool(promtool, "check", "rules", "alerts.rules.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_each_alert_fires_in_its_scenario_and_only_there(promtool: str) -> None:
    tested = _promtool(promtool, "test", "rules", "alerts.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = {
        t["name"] for t in yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())["tests"]
    }
    for alert in ALERTS:
        assert {f"{alert.name} fires", f"{alert.name} stays quiet"} <= names


def test_every_alert_reads_metrics_the_programs_export() -> None:
    exported = exported_series()
    for alert in ALERTS:
        named = set(re.findall(r"\b(edgepop_[a-z_]+|up)\b(?=\s*[{\[)]|\s*[<>=])", alert.expr))
        assert named, alert.expr
        assert named <= exported, (alert.name, named - exported)


def test_every_alert_has_its_runbook_section() -> None:
    runbooks = (REPO_ROOT / RUNBOOKS).read_text()
    headings = {line[3:].strip() for line in runbooks.splitlines() if line.startswith("## ")}
    for alert in ALERTS:
        assert alert.name in headings, f"docs/runbooks.md has no '## {alert.name}'"
        assert alert.anchor == alert.name.lower()  # GitHub's anchor for that heading


def _rendered_rule(helm_binary: str, *settings: str) -> dict[str, Any] | None:
    rules = rendered(helm_binary, "PrometheusRule", *settings)
    assert len(rules) <= 1
    return rules[0] if rules else None


def test_the_chart_installs_the_same_rules_on_request(
    helm_binary: str, promtool: str, tmp_path: Path
) -> None:
    assert _rendered_rule(helm_binary) is None  # off by default: it needs the Prometheus CRDs
    rule = _rendered_rule(
        helm_binary,
        "monitoring.prometheusRule.enabled=true",
        "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
    )
    assert rule is not None
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == rule_groups()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    elsewhere = "https://wiki.example.com/edge-pop/runbooks"
    moved = _rendered_rule(
        helm_binary,
        "monitoring.prometheusRule.enabled=true",
        f"monitoring.runbookBaseUrl={elsewhere}",
    )
    assert moved is not None
    assert moved["spec"]["groups"] == rule_groups(runbooks=elsewhere)
