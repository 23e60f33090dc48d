"""Read what the children report and write the EdgePop's status subresource."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkube.types import PatchType

from pop_operator.kube import ApiError, AsyncClient, EdgePopResource, StatefulSet, as_dict
from pop_operator.model import EdgePopStatus, SyncRecord, parse_spec, parse_status
from pop_operator.render.identity import REGION_LABEL, Owner, owned_selector
from pop_operator.status import Observation, compute_status, status_body


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Findings:
    """What a handler learnt. ``None`` keeps what the status already says."""

    observed_generation: int | None = None
    error: str | None = None
    clear_error: bool = False
    lag: dict[str, float] | None = None  # region -> seconds since last successful sync
    last_sync: SyncRecord | None = None


def _previous_error(previous: EdgePopStatus) -> str | None:
    for cond in previous.conditions:
        if cond.type == "Degraded" and cond.status == "True" and cond.reason == "ReconcileFailed":
            return cond.message
    return None


class StatusWriter:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _statefulsets(self, owner: Owner) -> dict[str, dict[str, Any]]:
        selector: dict[str, Any] = dict(p.split("=", 1) for p in owned_selector(owner).split(","))
        found: dict[str, dict[str, Any]] = {}
        async for item in self._client.list(
            StatefulSet, namespace=owner.namespace, labels=selector
        ):
            obj = as_dict(item)
            region = (obj["metadata"].get("labels") or {}).get(REGION_LABEL)
            refs = obj["metadata"].get("ownerReferences") or ()
            if region and any(ref.get("uid") == owner.uid for ref in refs):
                found[region] = obj
        return found

    async def refresh(self, owner: Owner, findings: Findings = Findings()) -> EdgePopStatus | None:
        """Recompute and patch the status; ``None`` when the EdgePop is gone."""
        try:
            body = as_dict(
                await self._client.get(EdgePopResource, owner.name, namespace=owner.namespace)
            )
        except ApiError as api_error:
            if api_error.status.code == 404:
                return None
            raise
        if body["metadata"].get("uid") != owner.uid:
            return None
        spec = parse_spec(body["spec"])
        previous = parse_status(body.get("status"))
        if findings.lag is not None:
            lag = findings.lag
        else:
            lag = {
                r.name: r.sync_lag_seconds
                for r in previous.regions
                if r.sync_lag_seconds is not None
            }
        bound = spec.sync.max_lag_seconds
        error = None if findings.clear_error else (findings.error or _previous_error(previous))
        obs = Observation(
            generation=int(body["metadata"].get("generation") or 0),
            observed_generation=findings.observed_generation or previous.observed_generation,
            spec=spec,
            statefulsets=await self._statefulsets(owner),
            error=error,
            lagging={name: sec for name, sec in lag.items() if sec > bound},
            last_sync=findings.last_sync,
        )
        status = compute_status(obs, previous, now_iso())
        # Region status keeps every measured lag (not only the ones over the bound).
        status = status.model_copy(
            update={
                "regions": [
                    r.model_copy(update={"sync_lag_seconds": lag.get(r.name)})
                    for r in status.regions
                ]
            }
        )
        if status != previous:
            await self._client.patch(
                EdgePopResource.Status,
                owner.name,
                {"status": status_body(status)},
                namespace=owner.namespace,
                patch_type=PatchType.MERGE,
            )
        return status
