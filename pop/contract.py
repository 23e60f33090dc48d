"""What a POP promises the programs that run and watch it (the operator, Prometheus, the
kubelet): its environment variables, port, probe paths, engine and log level names, and
the metric its lag is read from.

The operator imports these instead of repeating them; ``tests/operator/test_contract.py``
fails when a StatefulSet the operator renders would not start a POP as configured.
"""

from __future__ import annotations

from pop.config import Engine, LogLevel, Settings

__all__ = [
    "DEFAULT_PORT",
    "HEALTH_PATH",
    "LAG_METRIC",
    "METRICS_PATH",
    "READY_PATH",
    "Engine",
    "LogLevel",
    "env_name",
]

HEALTH_PATH = "/health"  # liveness: 503 when a sync is wedged
READY_PATH = "/ready"  # readiness: 503 until the replica is open and fresh
METRICS_PATH = "/metrics"
# Seconds since the last good sync; the operator reads it to find lagging regions.
LAG_METRIC = "edgepop_sync_last_success_age_seconds"


def env_name(setting: str) -> str:
    """The environment variable of a POP setting (``port`` -> ``PORT``); a name that is no
    setting raises, so a renamed setting fails the operator's tests, not a cluster."""
    if setting not in Settings.model_fields:
        raise KeyError(f"{setting!r} is not a POP setting (pop.config.Settings)")
    return setting.upper()


DEFAULT_PORT: int = Settings.model_fields["port"].default
