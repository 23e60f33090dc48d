"""Kubernetes' own object schemas, checked strictly against what the operator and chart make."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

# The Kubernetes that tools/kube builds and the tests run.
K8S_VERSION = "1.34"


def validate(obj: dict[str, Any]) -> None:
    """Raise when ``obj`` is not a valid object of this Kubernetes version (unknown fields too)."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
