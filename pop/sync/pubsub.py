"""Redis pub/sub: one POP's write makes every POP of the database sync at once.

Redis is an accelerator, not a dependency: while it is down the POP keeps serving and
keeps its interval sync, the subscriber reconnects with capped exponential backoff, and
``edgepop_redis_connected`` shows the outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pop.metrics import PopMetrics
from pop.sync.messages import SyncMessage

log = logging.getLogger(__name__)

BACKOFF_START = 0.1
BACKOFF_MAX = 10.0
PING_INTERVAL = 2.0
PING_TIMEOUT = 6.0


class RedisFabric:
    def __init__(
        self,
        url: str,
        channel: str,
        *,
        database: str,
        pop_id: str,
        metrics: PopMetrics,
        holds: Callable[[int], bool],
        on_message: Callable[[SyncMessage], Coroutine[Any, Any, None]],
    ) -> None:
        self.channel = channel
        self._url = url
        self._database = database
        self._pop_id = pop_id
        self._metrics = metrics
        self._holds = holds
        self._on_message = on_message
        self._publisher = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._subscribe_forever(), name="redis-subscriber")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._publisher.aclose()

    async def publish(self, replication_index: str | None) -> None:
        """Tell the other POPs the origin changed, up to ``replication_index`` if known."""
        message = SyncMessage(
            database=self._database,
            sender=self._pop_id,
            reason="write",
            position=replication_index,
        )
        try:
            await self._publisher.publish(self.channel, message.encode())
        except (RedisError, OSError) as exc:
            self._metrics.pubsub_messages.labels("failed").inc()
            log.warning("could not publish a sync message", extra={"error": _describe(exc)})
        else:
            self._metrics.pubsub_messages.labels("sent").inc()

    async def _subscribe_forever(self) -> None:
        backoff = BACKOFF_START
        last_error: str | None = None
        while True:
            client = aioredis.from_url(self._url, socket_connect_timeout=2, socket_keepalive=True)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._set_connected(True)
                    backoff, last_error = BACKOFF_START, None
                    await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                error = _describe(exc)
                # Every new kind of failure is logged (a wrong password included), not
                # only the loss of a working connection; repeats are not.
                if self.connected.is_set() or error != last_error:
                    log.warning(
                        "Redis unavailable; pub/sub sync paused, interval sync continues",
                        extra={"error": error, "retry_in_s": backoff},
                    )
                last_error = error
                self._set_connected(False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                await client.aclose()

    async def _listen(self, pubsub: Any) -> None:
        """Dispatch messages; a Redis that stops answering pings counts as lost.

        A stalled server (or a dead network path) never closes the socket, so without
        the pings the subscriber would wait forever while messages are lost.
        """
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while True:
            item = await pubsub.get_message(timeout=min(1.0, PING_INTERVAL))
            now = loop.time()
            if item is not None:
                heard = now
                if item.get("type") == "message":
                    self._dispatch(item["data"])
            if now - heard > PING_TIMEOUT:
                raise TimeoutError(f"Redis did not answer a ping within {PING_TIMEOUT:g} s")
            if now - pinged >= PING_INTERVAL:
                pinged = now
                await asyncio.wait_for(pubsub.ping(), PING_TIMEOUT)

    def _set_connected(self, connected: bool) -> None:
        self._metrics.redis_connected.set(1 if connected else 0)
        if connected and not self.connected.is_set():
            log.info("subscribed to Redis", extra={"channel": self.channel})
            self.connected.set()
        elif not connected:
            self.connected.clear()

    def _dispatch(self, raw: bytes | str) -> None:
        message = SyncMessage.decode(raw)
        if (
            message is None
            or not message.concerns(self._database)
            or message.sender == self._pop_id
            or (message.replication_index is not None and self._holds(message.replication_index))
        ):
            self._metrics.pubsub_messages.labels("skipped").inc()
            return
        self._metrics.pubsub_messages.labels("received").inc()
        # Handled in a task so that a slow sync never stalls the subscription.
        task = asyncio.create_task(self._on_message(message))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".split("\n")[0][:200]
