"""Operator settings, read from the environment (prefix ``EDGEPOP_OPERATOR_``)."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEPOP_OPERATOR_", frozen=True)

    namespace: str | None = Field(
        default=None, description="Serve EdgePops of this namespace only; all when unset."
    )
    pod_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Identity for leader election (the pod name in a cluster).",
    )
    pod_namespace: str = Field(default="default", description="Namespace of the leader Lease.")
    leader_election: bool = True
    lease_name: str = "edge-pop-operator"
    lease_duration_seconds: float = Field(default=15.0, gt=1.0)
    http_host: str = Field(default="0.0.0.0", description="Address of /healthz and /metrics.")  # noqa: S104
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of /healthz and /metrics."
    )
    lag_check_seconds: float = Field(default=30.0, gt=0.0, description="Lag timer period.")
    pop_scrape_timeout_seconds: float = Field(default=5.0, gt=0.0)
    field_manager: str = "edge-pop-operator"
