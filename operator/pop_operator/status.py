"""Pure status computation: StatefulSets as the API server reports them -> EdgePop status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pop_operator.model import (
    Condition,
    ConditionType,
    EdgePopSpec,
    EdgePopStatus,
    RegionStatus,
    SyncRecord,
)


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the status is derived from."""

    generation: int
    observed_generation: int | None
    spec: EdgePopSpec
    statefulsets: Mapping[str, Mapping[str, Any]]  # region name -> StatefulSet object
    error: str | None = None
    lagging: Mapping[str, float] = field(default_factory=dict)  # region -> seconds behind
    last_sync: SyncRecord | None = None


def region_status(name: str, sts: Mapping[str, Any] | None, lag: float | None) -> RegionStatus:
    observed = (sts or {}).get("status") or {}
    return RegionStatus(
        name=name,
        replicas=int(observed.get("replicas") or 0),
        ready_replicas=int(observed.get("readyReplicas") or 0),
        updated_replicas=int(observed.get("updatedReplicas") or 0),
        sync_lag_seconds=lag,
    )


def _region_problem(desired: int, sts: Mapping[str, Any] | None) -> str | None:
    """Why a region is not (yet) fully rolled out and ready; None when it is."""
    if sts is None:
        return "StatefulSet missing"
    meta_gen = int((sts.get("metadata") or {}).get("generation") or 0)
    observed = sts.get("status") or {}
    if int(observed.get("observedGeneration") or 0) < meta_gen:
        return "StatefulSet change not yet observed"
    ready = int(observed.get("readyReplicas") or 0)
    updated = int(observed.get("updatedReplicas") or 0)
    if updated < desired:
        return f"{updated}/{desired} POPs updated"
    if ready < desired:
        return f"{ready}/{desired} POPs ready"
    return None


def _condition(
    kind: ConditionType, ok: bool, reason: str, message: str, generation: int
) -> Condition:
    return Condition(
        type=kind,
        status="True" if ok else "False",
        reason=reason,
        message=message,
        observed_generation=generation,
    )


def conditions(obs: Observation) -> list[Condition]:
    current = obs.observed_generation == obs.generation
    problems = {
        r.name: p
        for r in obs.spec.regions
        if (p := _region_problem(r.replicas, obs.statefulsets.get(r.name))) is not None
    }
    gen = obs.observed_generation or 0
    if obs.error is not None:
        progressing = _condition("Progressing", False, "ReconcileFailed", obs.error, gen)
    elif not current:
        progressing = _condition(
            "Progressing", True, "NewGeneration", f"applying generation {obs.generation}", gen
        )
    elif problems:
        detail = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        progressing = _condition("Progressing", True, "RollingOut", detail, gen)
    else:
        progressing = _condition("Progressing", False, "Complete", "all regions rolled out", gen)

    ready_ok = current and not problems and obs.error is None
    total = sum(r.replicas for r in obs.spec.regions)
    ready = _condition(
        "Ready",
        ready_ok,
        "AllRegionsReady" if ready_ok else "NotReady",
        f"{len(obs.spec.regions)} regions, {total} POPs ready"
        if ready_ok
        else (obs.error or progressing.message),
        gen,
    )

    if obs.error is not None:
        degraded = _condition("Degraded", True, "ReconcileFailed", obs.error, gen)
    elif obs.lagging:
        detail = ", ".join(f"{name} {lag:.0f}s" for name, lag in sorted(obs.lagging.items()))
        degraded = _condition("Degraded", True, "RegionLagging", f"behind: {detail}", gen)
    else:
        degraded = _condition("Degraded", False, "AsExpected", "", gen)
    return [ready, progressing, degraded]


def keep_transition_times(
    new: Sequence[Condition], old: Sequence[Condition], now: str
) -> list[Condition]:
    """A condition's lastTransitionTime changes only when its status does."""
    previous = {c.type: c for c in old}
    out = []
    for cond in new:
        before = previous.get(cond.type)
        same = before is not None and before.status == cond.status and before.last_transition_time
        when = before.last_transition_time if same and before is not None else now
        out.append(cond.model_copy(update={"last_transition_time": when}))
    return out


def compute_status(obs: Observation, previous: EdgePopStatus, now: str) -> EdgePopStatus:
    regions = [
        region_status(r.name, obs.statefulsets.get(r.name), obs.lagging.get(r.name))
        for r in obs.spec.regions
    ]
    desired = sum(r.replicas for r in obs.spec.regions)
    ready = sum(
        min(s.ready_replicas, r.replicas) for s, r in zip(regions, obs.spec.regions, strict=True)
    )
    return EdgePopStatus(
        observed_generation=obs.observed_generation,
        conditions=keep_transition_times(conditions(obs), previous.conditions, now),
        regions=regions,
        region_count=len(regions),
        ready_replicas=f"{ready}/{desired}",
        last_sync=obs.last_sync or previous.last_sync,
    )


def status_body(status: EdgePopStatus) -> dict[str, Any]:
    """The status as the API server stores it (camelCase, no nulls)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
