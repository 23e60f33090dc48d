"""Leader election on a coordination.k8s.io Lease: only the holder runs the handlers.

kopf's own peering freezes every operator when two share a priority, so replicas of
one Deployment instead compete for a Lease; a replica that cannot renew it in time stops
its handlers (and exits, to be restarted as a candidate).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from pop_operator.kube import ApiError, AsyncClient

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self, client: AsyncClient, *, name: str, namespace: str, identity: str, duration: float
    ) -> None:
        self._client = client
        self._name = name
        self._namespace = namespace
        self.identity = identity
        self.duration = duration

    def _spec(self, acquired: datetime | None, now: datetime) -> LeaseSpec:
        return LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.duration)),
            acquireTime=acquired or now,
            renewTime=now,
        )

    async def try_acquire(self) -> bool:
        """Take or renew the Lease; False when another holder's Lease is still valid."""
        now = datetime.now(UTC)
        try:
            lease = await self._client.get(Lease, self._name, namespace=self._namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
            meta = ObjectMeta(name=self._name, namespace=self._namespace)
            try:
                await self._client.create(Lease(metadata=meta, spec=self._spec(None, now)))
            except ApiError as create_error:
                if create_error.status.code == 409:
                    return False
                raise
            return True
        spec = lease.spec or LeaseSpec()
        mine = spec.holderIdentity == self.identity
        renewed = spec.renewTime or spec.acquireTime
        expired = (
            not spec.holderIdentity
            or renewed is None
            or now - renewed > timedelta(seconds=spec.leaseDurationSeconds or self.duration)
        )
        if not mine and not expired:
            return False
        lease.spec = self._spec(spec.acquireTime if mine else None, now)
        try:
            # resourceVersion travels with the object: a concurrent writer gets a 409.
            await self._client.replace(lease)
        except ApiError as error:
            if error.status.code == 409:
                return False
            raise
        return True

    async def acquire(self) -> None:
        """Wait until this replica is the leader."""
        while not await self._safe_try():  # noqa: ASYNC110 (polling the API is the point)
            await asyncio.sleep(self.duration / 3)
        log.info("became leader as %s", self.identity)

    async def hold(self) -> None:
        """Renew until a renewal fails for a whole lease duration; then return."""
        last_ok = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.duration / 3)
            if await self._safe_try():
                last_ok = asyncio.get_running_loop().time()
            elif asyncio.get_running_loop().time() - last_ok > self.duration * 2 / 3:
                log.error("lost the leader Lease %s/%s", self._namespace, self._name)
                return

    async def release(self) -> None:
        """Give the Lease up at a clean stop, so a standby replica takes over at once."""
        try:
            lease = await self._client.get(Lease, self._name, namespace=self._namespace)
            if lease.spec is None or lease.spec.holderIdentity != self.identity:
                return
            lease.spec.holderIdentity = None
            lease.spec.renewTime = None
            await self._client.replace(lease)
        except (ApiError, OSError) as error:
            log.warning("releasing the leader Lease: %s", error)

    async def _safe_try(self) -> bool:
        try:
            return await self.try_acquire()
        except (ApiError, OSError) as error:
            log.warning("leader Lease: %s", error)
            return False
