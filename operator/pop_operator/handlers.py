"""kopf handlers: EdgePop changes -> children, child changes -> status, timers -> lag syncs.

Importing this module registers the handlers in kopf's default registry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Literal

import kopf
from pydantic import ValidationError

from pop_operator import metrics
from pop_operator.children import ReplacementPendingError
from pop_operator.kube import ApiError, EdgePopResource, as_dict, in_cluster_server
from pop_operator.lag import pod_targets, region_lag
from pop_operator.model import (
    GROUP,
    PLURAL,
    VERSION,
    EdgePopSpec,
    SyncRecord,
    parse_spec,
    parse_status,
)
from pop_operator.render.identity import MANAGED_BY, Owner
from pop_operator.runtime import Runtime
from pop_operator.settings import OperatorSettings
from pop_operator.statuswriter import Findings, now_iso
from pop_operator.synctrigger import SecretKeyMissingError, SyncNotConfiguredError, publish_sync

SYNC_ANNOTATION = f"{GROUP}/sync-requested"
KOPF_PREFIX = f"kopf.{GROUP}"
RESOURCE = (GROUP, VERSION, PLURAL)
_TIMER_SETTINGS = OperatorSettings()


def runtime_of(memo: Any) -> Runtime:
    runtime = memo["runtime"]
    assert isinstance(runtime, Runtime)
    return runtime


def owner_of(body: Any) -> Owner:
    meta = body["metadata"]
    return Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def _note(body: kopf.Body, *, reason: str, message: str) -> None:
    """A Normal Event (kopf.info would be filtered by the WARNING posting level set below)."""
    kopf.event(body, type="Normal", reason=reason, message=message)


def backoff(retry: int) -> float:
    """Seconds before retry number ``retry``: 2, 4, 8, ... up to 5 minutes."""
    return float(min(2 ** (retry + 1), 300))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod, the ServiceAccount's credentials and the API server's Service address, as
    lightkube (the children) uses them; kopf's own service-account login would ask cluster
    DNS for kubernetes.default.svc. Elsewhere, the kubeconfig."""
    in_pod = kopf.login_with_service_account(**kwargs)
    server = in_cluster_server(os.environ)
    if in_pod is not None and server is not None:
        return dataclasses.replace(in_pod, server=server)
    return in_pod or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and diff base live in the EdgePop's annotations: the status schema is
    # structural and owned by this operator, nothing else is written there. The prefix
    # must differ from GROUP: kopf ignores changes of annotations under its own prefix,
    # and the sync annotation is edgepop.io/sync-requested.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/cleanup"
    # Events are posted explicitly for what the operator does, not for every log line.
    settings.posting.level = logging.WARNING
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def reconcile(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """Make the children match the spec, then report. Safe to run any number of times."""
    runtime = runtime_of(memo)
    owner = owner_of(body)
    generation = int(body["metadata"].get("generation") or 0)
    started = time.monotonic()
    try:
        spec = parse_spec(body["spec"])
    except ValidationError as error:
        metrics.RECONCILES.labels("error").inc()
        await runtime.status.refresh(owner, Findings(error=f"invalid spec: {error}"))
        raise kopf.PermanentError(f"invalid spec: {error}") from error
    try:
        applied = await runtime.children.apply(owner, spec)
        pruned = await runtime.children.prune(owner, spec)
    except (ApiError, ReplacementPendingError) as error:
        metrics.RECONCILES.labels("error").inc()
        detail = error.status.message if isinstance(error, ApiError) else str(error)
        message = f"applying children failed: {detail}"
        kopf.warn(body, reason="ReconcileFailed", message=message)
        await runtime.status.refresh(owner, Findings(error=message))
        raise kopf.TemporaryError(message, delay=backoff(retry)) from error
    metrics.RECONCILES.labels("ok").inc()
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    _note(body, reason="Applied", message=f"generation {generation}: {len(applied)} objects")
    for region in pruned.removed_regions:
        _note(body, reason="RegionRemoved", message=f"region {region} removed")
    if pruned.deleted_claims:
        _note(body, reason="DataDeleted", message=f"volumes {', '.join(pruned.deleted_claims)}")
    await runtime.status.refresh(owner, Findings(observed_generation=generation, clear_error=True))


@kopf.on.delete(*RESOURCE)
async def delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Remove the children (garbage collection would too); volumes only when asked."""
    runtime = runtime_of(memo)
    try:
        spec: EdgePopSpec | None = parse_spec(body["spec"])
    except ValidationError:
        spec = None
    result = await runtime.children.delete_all(owner_of(body), spec)
    if result.deleted_claims:
        _note(body, reason="DataDeleted", message=f"volumes {', '.join(result.deleted_claims)}")


@kopf.on.event("apps", "v1", "statefulsets", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
async def child_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A StatefulSet moved: refresh its EdgePop's status; re-create it if someone deleted it."""
    runtime = runtime_of(memo)
    meta = body["metadata"]
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") != "EdgePop" or not ref.get("controller"):
            continue
        owner = Owner(name=ref["name"], namespace=meta["namespace"], uid=ref["uid"])
        if type == "DELETED":
            await _reapply(runtime, owner)
        await runtime.status.refresh(owner)


async def _reapply(runtime: Runtime, owner: Owner) -> None:
    try:
        parent = as_dict(
            await runtime.client.get(EdgePopResource, owner.name, namespace=owner.namespace)
        )
    except ApiError:
        return
    if parent["metadata"].get("uid") == owner.uid and not parent["metadata"].get(
        "deletionTimestamp"
    ):
        await runtime.children.apply(owner, parse_spec(parent["spec"]))


async def _publish(
    body: kopf.Body,
    runtime: Runtime,
    spec: EdgePopSpec,
    reason: Literal["operator", "lagging"],
    value: str,
) -> SyncRecord | None:
    try:
        receivers = await publish_sync(runtime.client, body["metadata"]["namespace"], spec, reason)
    except (SyncNotConfiguredError, SecretKeyMissingError) as error:
        metrics.SYNC_PUBLISHES.labels(reason, "not_configured").inc()
        kopf.warn(body, reason="SyncNotPublished", message=str(error))
        return None
    except Exception as error:  # Redis errors (not OSError subclasses) and API errors alike
        metrics.SYNC_PUBLISHES.labels(reason, "error").inc()
        # The error type only: a Redis error message may contain its URL.
        failure = f"publishing the sync failed: {type(error).__name__}"
        raise kopf.TemporaryError(failure, delay=10) from error
    metrics.SYNC_PUBLISHES.labels(reason, "ok").inc()
    _note(body, reason="SyncPublished", message=f"{reason} sync sent to {receivers} subscribers")
    return SyncRecord(reason=reason, value=value, published_at=now_iso(), receivers=receivers)


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", SYNC_ANNOTATION))
async def sync_requested(body: kopf.Body, new: Any, memo: kopf.Memo, **_: Any) -> None:
    """A new value of the sync annotation publishes one sync message."""
    if not new:
        return
    previous = parse_status(body.get("status")).last_sync
    if previous is not None and previous.reason == "operator" and previous.value == str(new):
        return  # already published for this value (e.g. before a restart)
    runtime = runtime_of(memo)
    record = await _publish(body, runtime, parse_spec(body["spec"]), "operator", str(new))
    if record is not None:
        await runtime.status.refresh(owner_of(body), Findings(last_sync=record))


@kopf.timer(*RESOURCE, interval=_TIMER_SETTINGS.lag_check_seconds, idle=None)
async def check_lag(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Read every region's sync age; publish one sync when a region fell behind."""
    runtime = runtime_of(memo)
    owner = owner_of(body)
    spec = parse_spec(body["spec"])
    lag: dict[str, float] = {}
    for region in spec.regions:
        seconds = await region_lag(
            runtime.http, await pod_targets(runtime.client, owner, region.name)
        )
        if seconds is None:
            metrics.LAG_CHECKS.labels("unknown").inc()
            continue
        lag[region.name] = seconds
        metrics.LAG_CHECKS.labels("lagging" if seconds > spec.sync.max_lag_seconds else "ok").inc()
    behind = sorted(name for name, sec in lag.items() if sec > spec.sync.max_lag_seconds)
    record = None
    if behind:
        record = await _publish(body, runtime, spec, "lagging", ",".join(behind))
    await runtime.status.refresh(owner, Findings(lag=lag, last_sync=record))
