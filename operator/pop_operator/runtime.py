"""What the handlers share: one API client and the helpers built on it."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from pop_operator.children import Children
from pop_operator.kube import AsyncClient
from pop_operator.settings import OperatorSettings
from pop_operator.statuswriter import StatusWriter


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: OperatorSettings
    client: AsyncClient
    children: Children
    status: StatusWriter
    http: httpx.AsyncClient

    @classmethod
    def create(cls, settings: OperatorSettings) -> Runtime:
        client = AsyncClient(field_manager=settings.field_manager)
        return cls(
            settings=settings,
            client=client,
            children=Children(client, settings.field_manager),
            status=StatusWriter(client),
            http=httpx.AsyncClient(timeout=settings.pop_scrape_timeout_seconds),
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.client.close()
