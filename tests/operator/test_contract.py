"""The operator and the POP agree (pop.contract): what the operator renders, a POP reads as
meant, and what the operator probes and scrapes, a real POP serves."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pop.config import Settings
from pop.contract import HEALTH_PATH, LAG_METRIC, METRICS_PATH, READY_PATH
from pop.devtools.processes import PopProcess
from pop_operator.lag import parse_lag
from pop_operator.model import EdgePopSpec
from pop_operator.render.statefulset import stateful_set
from tests.operator.samples import OWNER, example_spec, minimal_spec

# What the kubelet would put where the StatefulSet names a Secret.
SECRET_VALUES = {
    "TURSO_AUTH_TOKEN": "origin-token",
    "PROXY_AUTH_TOKEN": "client-token",
    "REDIS_CONNECTION_STRING": "redis://redis.shop.svc:6379/0",
}


def _pop_settings(spec: EdgePopSpec) -> tuple[Settings, dict[str, Any]]:
    """The settings a POP of the spec's first region starts with, and its container."""
    sts = stateful_set(OWNER, spec, spec.regions[0])
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for item in container["env"]:
        name = item["name"]
        assert name.lower() in Settings.model_fields, f"{name} is not a POP setting"
        env[name.lower()] = item["value"] if "value" in item else SECRET_VALUES[name]
    return Settings.model_validate(env), container


@pytest.mark.parametrize("sample", [example_spec, minimal_spec])
def test_the_rendered_environment_is_read_by_the_pop_as_meant(sample: Any) -> None:
    spec: EdgePopSpec = sample()
    settings, container = _pop_settings(spec)
    assert settings.replica_engine == spec.engine
    assert settings.log_level == spec.log_level
    assert settings.turso_sync_interval == spec.sync.interval_seconds
    assert settings.region == spec.regions[0].name
    assert [port["containerPort"] for port in container["ports"]] == [settings.port]
    assert settings.db_filepath is not None
    mounts = [mount["mountPath"] for mount in container["volumeMounts"]]
    assert any(settings.db_filepath.is_relative_to(mount) for mount in mounts), mounts
    assert (settings.redis_connection_string is not None) == (spec.sync.redis is not None)


def test_the_operator_defaults_are_the_pops() -> None:
    spec = minimal_spec()
    fields = Settings.model_fields
    assert spec.engine == fields["replica_engine"].default
    assert spec.log_level == fields["log_level"].default
    assert spec.sync.interval_seconds == fields["turso_sync_interval"].default


def test_a_pop_serves_what_the_operator_probes_and_scrapes(pop: PopProcess) -> None:
    with httpx.Client(base_url=pop.url, timeout=10) as http:
        assert http.get(HEALTH_PATH).status_code == 200
        assert http.get(READY_PATH).status_code == 200
        page = http.get(METRICS_PATH)
    assert page.status_code == 200
    lag = parse_lag(page.text)  # the operator's own parser, on a real POP's page
    assert lag is not None, f"{LAG_METRIC} missing from the POP's {METRICS_PATH}"
    assert 0 <= lag < 120


def test_the_region_s_pops_reach_each_other_by_pod_name_under_the_headless_service() -> None:
    spec = example_spec()
    settings, _ = _pop_settings(spec)
    sts = stateful_set(OWNER, spec, spec.regions[0])
    pod = f"{sts['metadata']['name']}-0"  # a StatefulSet pod's name, its host name
    assert settings.peer_url_template is not None
    peer = httpx.URL(settings.peer_url_template.replace("{peer}", pod))
    service, namespace = sts["spec"]["serviceName"], sts["metadata"]["namespace"]
    assert peer.host == f"{pod}.{service}.{namespace}.svc"
    assert peer.port == settings.port
