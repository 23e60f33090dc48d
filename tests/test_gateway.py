"""``edge-pop gateway`` runs the POP's session loop: the same limits, refused the same way.

A real ``tursodb`` origin behind a real gateway process; nothing over a limit reaches the
origin, so nothing of it is applied there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pop.config import Settings
from pop.devtools.processes import GatewayProcess, TursodbOrigin
from tests.helpers import execute, pipeline, rows, running

MAX_BATCH_STEPS = Settings.model_fields["max_batch_steps"].default
MAX_PIPELINE_REQUESTS = Settings.model_fields["max_pipeline_requests"].default


@pytest.fixture(scope="module")
def gateway(tursodb_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("gateway")
    origin = TursodbOrigin(tursodb_binary, workdir)
    gateway = GatewayProcess(origin.url, workdir)
    with running(origin, gateway):
        yield gateway.url


def test_the_gateway_refuses_a_batch_over_the_limit_whole(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=60) as http:
        pipeline(http, [execute("CREATE TABLE limited (x)")])
        steps = [{"stmt": {"sql": "INSERT INTO limited VALUES (1)"}}] * (MAX_BATCH_STEPS + 1)
        answer = pipeline(http, [{"type": "batch", "batch": {"steps": steps}}])
        assert answer["results"][0]["type"] == "error", answer["results"][0]
        assert answer["results"][0]["error"]["code"] == "BATCH_TOO_LARGE"
        counted = pipeline(http, [execute("SELECT count(*) FROM limited")])
        assert rows(counted) == [["0"]]


def test_the_gateway_refuses_a_pipeline_over_the_limit(gateway: str) -> None:
    requests = [execute("SELECT 1")] * (MAX_PIPELINE_REQUESTS + 1)
    with httpx.Client(base_url=gateway, timeout=60) as http:
        refused = http.post("/v3/pipeline", json={"baton": None, "requests": requests})
    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "PIPELINE_TOO_LARGE"
