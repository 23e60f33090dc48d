"""HTTP stream calls for a stream another POP of the region holds, passed on to it.

A region runs several POPs behind one Service, and a Hrana stream over HTTP (its baton
and any transaction behind it) lives in the process that opened it, while the Service may
send the stream's next call to any POP. Each baton therefore names its POP
(``pop.streams.baton_owner``: its ``PEER_NAME``), and a pipeline or cursor call whose
baton names another POP is sent there, body untouched, at ``PEER_URL_TEMPLATE`` with
``{peer}`` filled in (the operator: the pod's name under the region's headless Service);
its answer goes back as it came.

Why not Hrana's ``base_url`` (an answer telling the client where to send the stream's
next call): a pod's own address is not reachable by clients outside the cluster, and
not every client honours it; passing calls on works for every client unchanged.

A call that was passed on is never passed on again (``FORWARDED_HEADER``): if the POP it
reached does not hold the stream, that POP answers as for any unknown baton. Over
WebSocket nothing is passed on: a connection's streams all live where it landed.
"""

from __future__ import annotations

import logging

import httpx

from pop.config import PEER_NAME
from pop.hrana.errors import ProtocolError
from pop.http.endpoint import FORWARDED_HEADER, Call, Reply
from pop.metrics import PopMetrics
from pop.streams import baton_owner

log = logging.getLogger(__name__)


class Peers:
    """The way from a baton to the POP holding its stream."""

    def __init__(
        self,
        name: str,
        url_template: str | None,
        timeout: float,
        metrics: PopMetrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``name``: this POP's ``PEER_NAME``. A call goes on with its caller's own
        ``Authorization`` header, which every POP of a region checks alike, so passing it on
        grants nothing the caller did not have (a read-only token stays read-only)."""
        self.name = name
        self._template = url_template
        self._metrics = metrics
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={FORWARDED_HEADER.decode(): name},
        )

    def holder(self, baton: str | None, call: Call) -> str | None:
        """The base URL of the POP to pass ``call`` on to; ``None``: answer it here."""
        if baton is None or self._template is None or call.forwarded_by is not None:
            return None
        owner = baton_owner(baton)
        if owner is None or owner == self.name or not PEER_NAME.fullmatch(owner):
            return None
        return self._template.replace("{peer}", owner)

    async def forward(self, base_url: str, call: Call) -> Reply:
        try:
            answer = await self._client.post(
                f"{base_url}{call.path}",
                content=call.body,
                headers={"authorization": call.authorization},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._failed(call, base_url, exc, "unreachable") from None
        except httpx.HTTPError as exc:
            raise self._failed(call, base_url, exc, "outcome_unknown") from None
        self._count(call, "ok")
        content_type = answer.headers.get("content-type", "application/json")
        return answer.content, answer.status_code, content_type.encode()

    def _failed(
        self, call: Call, base_url: str, exc: httpx.HTTPError, outcome: str
    ) -> ProtocolError:
        self._count(call, outcome)
        log.warning(
            "a stream call for another POP of the region failed",
            extra={"peer": base_url, "outcome": outcome, "error": repr(exc)},
        )
        if outcome == "unreachable":  # nothing was sent
            return ProtocolError(
                f"the POP holding this stream ({base_url}) cannot be reached: the stream "
                "is lost (any transaction on it was not committed); start a new one",
                code="STREAM_EXPIRED",
            )
        return ProtocolError(
            f"the outcome is unknown: the POP holding this stream ({base_url}) got the "
            f"call but no answer came back ({type(exc).__name__}); its statements may "
            "or may not have been applied, so check before retrying a write",
            code="PEER_OUTCOME_UNKNOWN",
            status=502,
        )

    def _count(self, call: Call, outcome: str) -> None:
        self._metrics.peer_calls.labels(call.endpoint, outcome).inc()

    async def aclose(self) -> None:
        await self._client.aclose()
