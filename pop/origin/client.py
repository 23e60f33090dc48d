"""A pooled keep-alive Hrana client for the origin.

Origins differ in how much of Hrana they serve. Turso Cloud and the libSQL server keep
streams (a transaction can span calls), and serve ``/v3``. ``tursodb --sync-server``
serves only ``execute`` and ``batch`` on ``/v2/pipeline``, runs every pipeline on one
shared connection, and reports no affected-row count or last rowid. The client finds out
which kind it talks to (``GET /v3``, ``GET /v2``) and adapts: on a *basic* origin it never
leaves a transaction open, and it asks ``changes()``/``last_insert_rowid()`` right after
each write so that clients still get those numbers.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import httpx
import orjson

from pop.hrana.errors import HranaError, OriginStreamLost, OriginUnavailable, OutcomeUnknown
from pop.origin.transport import AiohttpTransport

log = logging.getLogger(__name__)

WRITE_FACTS_SQL = "SELECT changes(), last_insert_rowid()"


class Dialect(enum.Enum):
    V3 = "v3"  # full Hrana 3 with streams
    V2 = "v2"  # full Hrana 2 with streams
    BASIC = "basic"  # execute/batch on /v2/pipeline only, no streams (tursodb)


class OriginClient:
    def __init__(
        self,
        base_url: str,
        auth_token: str | None,
        timeout: float,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: httpx's, to answer without an origin (``httpx.MockTransport``)."""
        headers = {"Authorization": f"Bearer {auth_token}"} if auth_token else {}
        self.base_url = base_url
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport or AiohttpTransport(keepalive_expiry=60),
        )
        self._dialect: Dialect | None = None

    @property
    def dialect(self) -> Dialect | None:
        return self._dialect

    async def keeps_streams(self) -> bool:
        """Whether the origin keeps streams (asks it once, if not known yet)."""
        return await self.detect() is not Dialect.BASIC

    async def detect(self) -> Dialect:
        """Ask the origin which Hrana versions it serves (cached once known)."""
        if self._dialect is not None:
            return self._dialect
        try:
            for path, dialect in (("/v3", Dialect.V3), ("/v2", Dialect.V2)):
                response = await self._http.get(path)
                if response.status_code == 200:
                    self._dialect = dialect
                    break
            else:
                self._dialect = Dialect.BASIC
        except httpx.HTTPError as exc:
            raise OriginUnavailable(self.base_url, _describe_transport(exc)) from None
        log.info(
            "origin dialect detected",
            extra={"origin": self.base_url, "dialect": self._dialect.value},
        )
        return self._dialect

    async def pipeline(
        self, baton: str | None, requests: list[dict[str, Any]]
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """Send one pipeline; returns the origin's new baton and its results."""
        dialect = await self.detect()
        path = "/v3/pipeline" if dialect is Dialect.V3 else "/v2/pipeline"
        body = orjson.dumps({"baton": baton, "requests": requests})
        try:
            response = await self._http.post(
                path, content=body, headers={"content-type": "application/json"}
            )
        except _NOT_SENT as exc:
            raise OriginUnavailable(self.base_url, _describe_transport(exc)) from None
        except httpx.HTTPError as exc:
            # The request may have reached the origin and run: saying "unavailable" would
            # invite a retry that applies a write twice.
            raise OutcomeUnknown(self.base_url, _describe_transport(exc)) from None
        if response.status_code != 200:
            raise _status_error(self.base_url, response, in_stream=baton is not None)
        try:
            answer = orjson.loads(response.content)
            results = answer["results"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise OriginUnavailable(
                self.base_url, "it answered with something other than Hrana JSON"
            ) from None
        if not isinstance(results, list) or len(results) != len(requests):
            raise OriginUnavailable(self.base_url, "it answered with a wrong number of results")
        new_baton = answer.get("baton")
        return (new_baton if isinstance(new_baton, str) else None), results

    async def close_stream(self, baton: str) -> None:
        """Best effort: the origin expires an abandoned stream by itself anyway."""
        try:
            await self.pipeline(baton, [{"type": "close"}])
        except (HranaError, OriginStreamLost) as exc:
            log.debug("closing an origin stream failed", extra={"error": exc.message})

    async def aclose(self) -> None:
        await self._http.aclose()


# Failures that prove the request never reached the origin.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def credentials_refusal(base_url: str, token: str | None, timeout: float = 10) -> str | None:
    """Why the origin refuses ``token``, or None (also when it cannot be asked now).

    Asked before a replica is opened: libSQL's replication reports a refused token only as
    a handshake timeout, and a POP must not start, ready or not, with credentials the
    origin will refuse for every write.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"baton": None, "requests": [{"type": "close"}]}  # opens nothing there
    try:
        answer = httpx.post(f"{base_url}/v2/pipeline", json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return None
    if answer.status_code in (401, 403):
        return f"HTTP {answer.status_code}: {_reason(answer)}"
    return None


def _reason(response: httpx.Response) -> str:
    """The origin's own words for a refusal (sqld: ``{"error": "..."}``)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text.strip().splitlines()[0][:200] if response.text.strip() else "no reason"


def _status_error(
    origin: str, response: httpx.Response, *, in_stream: bool
) -> HranaError | OriginStreamLost:
    if response.status_code in (401, 403):
        return OriginUnavailable(
            origin,
            f"it refused this POP's credentials (HTTP {response.status_code}: "
            f"{_reason(response)}); TURSO_AUTH_TOKEN is invalid, expired, or does not allow "
            "this (a read-only token cannot write)",
        )
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            code = str(body.get("code") or "SQLITE_ERROR")
            if in_stream and response.status_code < 500:
                return OriginStreamLost(body["message"], code, response.status_code)
            return HranaError(body["message"], code)
    except orjson.JSONDecodeError:
        pass
    text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    return OriginUnavailable(origin, f"HTTP {response.status_code} {text}".strip())


def _describe_transport(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return "no connection could be made in time"
    if isinstance(exc, httpx.TimeoutException):
        return "it did not answer in time (ORIGIN_TIMEOUT)"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    return f"{type(exc).__name__}"
