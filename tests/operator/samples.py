"""EdgePop specs used by several tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pop_operator.model import EdgePopSpec, parse_spec
from pop_operator.render import Owner

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "k8s/examples/edgepop.yaml"
OWNER = Owner(name="shop", namespace="shops", uid="0b0b0b0b-1111-2222-3333-444455556666")


def example_body() -> dict[str, Any]:
    body = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(body, dict)
    return body


def example_spec(**changes: Any) -> EdgePopSpec:
    raw = example_body()["spec"]
    raw.update(changes)
    return parse_spec(raw)


def minimal_spec(**changes: Any) -> EdgePopSpec:
    raw: dict[str, Any] = {
        "origin": {"url": "http://127.0.0.1:8080"},
        "clientAuthSecretRef": {"name": "pop", "key": "token"},
        "image": "edge-pop:dev",
        "regions": [{"name": "local"}],
    }
    raw.update(changes)
    return parse_spec(raw)
