"""Status conditions derived from what the StatefulSets report."""

from __future__ import annotations

from typing import Any

from pop_operator.model import EdgePopStatus
from pop_operator.status import Observation, compute_status, status_body
from tests.operator.samples import example_spec

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"


def _sts(replicas: int, ready: int, *, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
        },
    }


def _conditions(status: EdgePopStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def _observe(**kwargs: Any) -> Observation:
    base: dict[str, Any] = {
        "generation": 2,
        "observed_generation": 2,
        "spec": example_spec(),
        "statefulsets": {"eu-west": _sts(2, 2), "us-east": _sts(1, 1)},
    }
    base.update(kwargs)
    return Observation(**base)


def test_all_ready_is_ready() -> None:
    status = compute_status(_observe(), EdgePopStatus(), NOW)
    assert _conditions(status) == {
        "Ready": ("True", "AllRegionsReady"),
        "Progressing": ("False", "Complete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status.ready_replicas == "3/3"
    assert status.region_count == 2
    assert status.observed_generation == 2
    assert [(r.name, r.ready_replicas) for r in status.regions] == [("eu-west", 2), ("us-east", 1)]


def test_new_generation_is_progressing() -> None:
    status = compute_status(_observe(observed_generation=1), EdgePopStatus(), NOW)
    assert _conditions(status)["Progressing"] == ("True", "NewGeneration")
    assert _conditions(status)["Ready"][0] == "False"


def test_pods_not_ready_or_missing_statefulset_is_rolling_out() -> None:
    status = compute_status(_observe(statefulsets={"eu-west": _sts(2, 1)}), EdgePopStatus(), NOW)
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "RollingOut")
    assert "eu-west: 1/2 POPs ready" in progressing.message
    assert "us-east: StatefulSet missing" in progressing.message
    assert status.ready_replicas == "1/3"


def test_unobserved_statefulset_change_is_not_ready() -> None:
    sets = {"eu-west": _sts(2, 2, generation=3, observed=2), "us-east": _sts(1, 1)}
    status = compute_status(_observe(statefulsets=sets), EdgePopStatus(), NOW)
    assert _conditions(status)["Ready"][0] == "False"


def test_errors_and_lag_are_degraded() -> None:
    failed = compute_status(_observe(error="boom"), EdgePopStatus(), NOW)
    assert _conditions(failed)["Degraded"] == ("True", "ReconcileFailed")
    assert _conditions(failed)["Ready"][0] == "False"
    lagging = compute_status(_observe(lagging={"us-east": 900.0}), EdgePopStatus(), NOW)
    degraded = next(c for c in lagging.conditions if c.type == "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "RegionLagging")
    assert "us-east 900s" in degraded.message


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = compute_status(_observe(), EdgePopStatus(), NOW)
    same = compute_status(_observe(), first, LATER)
    assert {c.last_transition_time for c in same.conditions} == {NOW}
    flipped = compute_status(_observe(error="boom"), first, LATER)
    times = {c.type: c.last_transition_time for c in flipped.conditions}
    assert times == {"Ready": LATER, "Progressing": NOW, "Degraded": LATER}


def test_status_body_is_camel_case_without_nulls() -> None:
    body = status_body(compute_status(_observe(), EdgePopStatus(), NOW))
    assert body["observedGeneration"] == 2
    assert body["readyReplicas"] == "3/3"
    assert "lastSync" not in body
    assert all("syncLagSeconds" not in r for r in body["regions"])
