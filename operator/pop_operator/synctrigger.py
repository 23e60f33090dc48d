"""Publish "sync now" on an EdgePop's Redis channel, in the POPs' own message format."""

from __future__ import annotations

import base64
from typing import Literal

import redis.asyncio as aioredis

from pop.sync.messages import SyncMessage, database_key
from pop_operator.kube import AsyncClient, Secret, as_dict
from pop_operator.model import EdgePopSpec, SecretKeyRef

SENDER = "edge-pop-operator"


class SyncNotConfiguredError(Exception):
    """The EdgePop has no Redis: there is no channel to publish on."""


class SecretKeyMissingError(Exception):
    def __init__(self, ref: SecretKeyRef) -> None:
        # Names the Secret and key, never the value.
        super().__init__(f"Secret {ref.name!r} has no key {ref.key!r}")


async def read_secret_key(client: AsyncClient, namespace: str, ref: SecretKeyRef) -> str:
    secret = as_dict(await client.get(Secret, ref.name, namespace=namespace))
    data = secret.get("data") or {}
    if ref.key not in data:
        raise SecretKeyMissingError(ref)
    return base64.b64decode(data[ref.key]).decode("utf-8").strip()


def sync_message(spec: EdgePopSpec, reason: Literal["operator", "lagging"]) -> bytes:
    return SyncMessage(
        database=database_key(spec.origin.url), sender=SENDER, reason=reason
    ).encode()


async def publish_sync(
    client: AsyncClient,
    namespace: str,
    spec: EdgePopSpec,
    reason: Literal["operator", "lagging"],
) -> int:
    """Publish one sync message; return how many subscribers received it."""
    if spec.sync.redis is None:
        raise SyncNotConfiguredError("spec.sync.redis is not set")
    url = await read_secret_key(client, namespace, spec.sync.redis.url_secret_ref)
    connection = aioredis.from_url(url)
    try:
        receivers = await connection.publish(spec.sync.redis.channel, sync_message(spec, reason))
    finally:
        await connection.aclose()
    return int(receivers)
