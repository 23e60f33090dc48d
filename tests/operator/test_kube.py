"""The API server's address in a pod, found without cluster DNS."""

from __future__ import annotations

import pytest

from pop_operator.kube import in_cluster_server


@pytest.mark.parametrize(
    ("environ", "server"),
    [
        (
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            "https://10.0.0.1:443",
        ),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, "https://10.96.0.1:443"),
        (
            {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"},
            "https://[fd00::1]:6443",
        ),
        ({}, None),
        ({"KUBERNETES_SERVICE_HOST": ""}, None),
    ],
)
def test_the_api_server_is_found_from_the_kubernetes_service_environment(
    environ: dict[str, str], server: str | None
) -> None:
    assert in_cluster_server(environ) == server
