"""The example EdgePop (k8s/examples) applied to a test API server, with its secrets."""

from __future__ import annotations

from typing import Any

import yaml

from tests.operator.cluster import Kube
from tests.operator.samples import REPO_ROOT, example_body


def edgepop_yaml(name: str = "shop", **spec_changes: Any) -> str:
    body = example_body()
    body["metadata"]["name"] = name
    body["spec"].update(spec_changes)
    return yaml.safe_dump(body)


def apply_example(kube: Kube, ns: str, **spec_changes: Any) -> dict[str, Any]:
    secrets = (REPO_ROOT / "k8s/examples/secrets.yaml").read_text()
    assert kube.apply_yaml(secrets, ns).returncode == 0
    proc = kube.apply_yaml(edgepop_yaml(**spec_changes), ns)
    assert proc.returncode == 0, proc.stderr
    edgepop = kube.get("EdgePop", ns, "shop")
    assert edgepop is not None
    return edgepop


def apply_redis_secret(kube: Kube, ns: str, url: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "shop-redis"},
        "stringData": {"url": url},
    }
    assert kube.apply_yaml(yaml.safe_dump(secret), ns).returncode == 0
