"""Apply, prune and delete the children of an EdgePop (idempotent, safe to repeat)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube.core.resource import NamespacedResource
from lightkube.types import CascadeType

from pop_operator.kube import (
    ApiError,
    AsyncClient,
    PersistentVolumeClaim,
    PodDisruptionBudget,
    Service,
    ServiceMonitorResource,
    StatefulSet,
    as_dict,
    is_not_found,
    to_resource,
)
from pop_operator.model import EdgePopSpec
from pop_operator.render import Owner, render_edgepop
from pop_operator.render.identity import REGION_LABEL, owned_selector

log = logging.getLogger(__name__)

OWNED_KINDS: tuple[type[NamespacedResource], ...] = (
    StatefulSet,
    Service,
    PodDisruptionBudget,
)


REPLACE_WAIT_SECONDS = 10.0


class ReplacementPendingError(Exception):
    """A StatefulSet being replaced has not finished deleting yet."""


@dataclass(frozen=True, slots=True)
class PruneResult:
    removed_regions: list[str]
    deleted_claims: list[str]


class Children:
    """Operations on the children of EdgePops through one API client."""

    def __init__(self, client: AsyncClient, field_manager: str) -> None:
        self._client = client
        self._field_manager = field_manager

    async def service_monitors_served(self, namespace: str) -> bool:
        """Whether the ServiceMonitor CRD is installed (a list answers 404 when it is not)."""
        try:
            async for _ in self._client.list(
                ServiceMonitorResource, namespace=namespace, chunk_size=1
            ):
                break
        except ApiError as error:
            if is_not_found(error):
                return False
            raise
        except httpx2.HTTPStatusError as error:
            # An API group that is not served answers a plain-text 404, not a Status.
            if error.response.status_code == 404:
                return False
            raise
        return True

    async def apply(self, owner: Owner, spec: EdgePopSpec) -> list[str]:
        """Server-side apply every child; return their ``Kind/name``."""
        with_sm = spec.monitoring.service_monitor and await self.service_monitors_served(
            owner.namespace
        )
        applied = []
        for obj in render_edgepop(owner, spec, service_monitor_available=with_sm):
            await self._apply_one(obj)
            applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
        return applied

    async def _apply_one(self, obj: dict[str, Any]) -> None:
        resource = to_resource(obj)
        try:
            await self._client.apply(resource, field_manager=self._field_manager, force=True)
        except ApiError as error:
            if obj["kind"] != "StatefulSet" or error.status.code != 422:
                raise
            # An immutable StatefulSet field changed (e.g. the volume size): replace the
            # StatefulSet and leave its pods and volumes for the new one to adopt.
            log.info("replacing StatefulSet %s: %s", obj["metadata"]["name"], error.status.message)
            await self._delete_orphaning(obj["metadata"]["name"], obj["metadata"]["namespace"])
            await self._client.apply(resource, field_manager=self._field_manager, force=True)

    async def _delete_orphaning(self, name: str, namespace: str) -> None:
        """Delete a StatefulSet but not its pods; return once it is gone."""
        await self._delete(StatefulSet, name, namespace, cascade=CascadeType.ORPHAN)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLACE_WAIT_SECONDS
        while loop.time() < deadline:
            try:
                await self._client.get(StatefulSet, name, namespace=namespace)
            except ApiError as error:
                if is_not_found(error):
                    return
                raise
            await asyncio.sleep(0.5)
        # The garbage collector has not orphaned the pods yet: the handler retries later.
        raise ReplacementPendingError(f"StatefulSet {name} is still being deleted")

    async def _owned(self, kind: type[NamespacedResource], owner: Owner) -> list[dict[str, Any]]:
        found = []
        async for item in self._client.list(kind, namespace=owner.namespace, labels=_labels(owner)):
            obj = as_dict(item)
            refs = obj["metadata"].get("ownerReferences") or ()
            if any(ref.get("uid") == owner.uid for ref in refs):
                found.append(obj)
        return found

    async def _kinds(self, namespace: str) -> list[type[NamespacedResource]]:
        kinds = list(OWNED_KINDS)
        if await self.service_monitors_served(namespace):
            kinds.append(ServiceMonitorResource)
        return kinds

    async def prune(self, owner: Owner, spec: EdgePopSpec) -> PruneResult:
        """Delete children of regions no longer in the spec; their volumes only on request.

        ServiceMonitors of kept regions go too when the spec no longer asks for them: the
        pods carry scrape annotations again, and both would scrape every POP twice.
        """
        return await self._remove_regions(
            owner,
            spec,
            keep={r.name for r in spec.regions},
            keep_monitors=spec.monitoring.service_monitor,
        )

    async def delete_all(self, owner: Owner, spec: EdgePopSpec | None) -> PruneResult:
        """Everything of a deleted EdgePop (garbage collection does it too where it runs)."""
        return await self._remove_regions(owner, spec, keep=set(), keep_monitors=False)

    async def _remove_regions(
        self, owner: Owner, spec: EdgePopSpec | None, keep: set[str], *, keep_monitors: bool
    ) -> PruneResult:
        doomed: list[tuple[type[NamespacedResource], str, str]] = []
        unwanted: list[tuple[type[NamespacedResource], str]] = []
        for kind in await self._kinds(owner.namespace):
            for item in await self._owned(kind, owner):
                region = _region_of(item)
                if region is None:
                    continue
                if region not in keep:
                    doomed.append((kind, _name(item), region))
                elif kind is ServiceMonitorResource and not keep_monitors:
                    unwanted.append((kind, _name(item)))
        for kind, name in unwanted:
            await self._delete(kind, name, owner.namespace)
        regions = sorted({region for _, _, region in doomed})
        claims: list[str] = []
        if spec is not None and spec.data_retention == "Delete" and regions:
            # Volumes first: should we crash now, the children still exist and mark the
            # region as one being removed, so the retry deletes the volumes too. Volumes
            # of regions removed earlier under Retain are never touched.
            claims = await self._delete_claims(owner, set(regions))
        for kind, name, _ in doomed:
            await self._delete(kind, name, owner.namespace)
        return PruneResult(regions, claims)

    async def _delete_claims(self, owner: Owner, regions: set[str]) -> list[str]:
        """Volumes of StatefulSets carry the pod labels, not owner references: match by label."""
        deleted = []
        async for claim in self._client.list(
            PersistentVolumeClaim, namespace=owner.namespace, labels=_labels(owner)
        ):
            obj = as_dict(claim)
            if _region_of(obj) not in regions:
                continue
            await self._delete(PersistentVolumeClaim, _name(obj), owner.namespace)
            deleted.append(_name(obj))
        return deleted

    async def _delete(
        self,
        kind: type[NamespacedResource],
        name: str,
        namespace: str,
        cascade: CascadeType = CascadeType.BACKGROUND,
    ) -> None:
        try:
            await self._client.delete(kind, name, namespace=namespace, cascade=cascade)
        except ApiError as error:
            if not is_not_found(error):
                raise


def _labels(owner: Owner) -> dict[str, Any]:
    return dict(pair.split("=", 1) for pair in owned_selector(owner).split(","))


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _region_of(obj: dict[str, Any]) -> str | None:
    region = (obj["metadata"].get("labels") or {}).get(REGION_LABEL)
    return str(region) if region is not None else None
