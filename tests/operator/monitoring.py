"""What the alert and dashboard tests share: the series the programs export, and the
chart rendered with some values set."""

from __future__ import annotations

from typing import Any

import yaml

from pop.metrics import METRIC_NAMES
from pop_operator.metrics import REGISTRY as OPERATOR_REGISTRY
from tests.operator.test_chart import CHART, REPOSITORY, _helm


def exported_series() -> set[str]:
    """Every series name the POP and the operator export (histograms' parts included),
    and Prometheus's own ``up``."""
    families = set(METRIC_NAMES) | {metric.name for metric in OPERATOR_REGISTRY.collect()}
    suffixes = ("", "_total", "_bucket", "_count", "_sum", "_info")
    return {family + suffix for family in families for suffix in suffixes} | {"up"}


def rendered(helm_binary: str, kind: str, *settings: str) -> list[dict[str, Any]]:
    """The chart's objects of ``kind``, rendered with ``settings`` (``--set`` each)."""
    done = _helm(
        helm_binary,
        "template",
        "edge",
        str(CHART),
        "--set",
        f"operator.image.repository={REPOSITORY}",
        *(arg for setting in settings for arg in ("--set", setting)),
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc and doc["kind"] == kind]
