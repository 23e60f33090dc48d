"""Real components for the operator tests: a kube-apiserver + etcd, Redis, the operator."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pop.devtools.processes import RedisProcess
from tests.operator.cluster import (
    ApiError,
    ControlPlane,
    ControlPlaneError,
    Kube,
    OperatorProcess,
    ensure_binaries,
    wait_until,
)
from tests.operator.samples import REPO_ROOT

SERVICE_MONITOR_CRD = Path(__file__).with_name("servicemonitor-crd.yaml")
RBAC_DENIAL = re.compile(r"is forbidden: User|APIForbiddenError|\b403 Forbidden")
OPERATOR_SA = ("edge-pop-operator", "edge-pop-system")
_counter = itertools.count()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        bin_dir = ensure_binaries()
    except ControlPlaneError as error:
        pytest.fail(f"no kube-apiserver/etcd: run tools/kube/ensure.sh ({error})")
    with ControlPlane(tmp_path_factory.mktemp("kube"), bin_dir=bin_dir) as cp:
        # Exactly what a user installs without Helm: the CRD and the operator's RBAC.
        cp.kubectl("apply", "-k", str(REPO_ROOT / "k8s/crd"))
        cp.kubectl(
            "wait", "--for=condition=Established", "crd/edgepops.edgepop.io", "--timeout=60s"
        )
        cp.kubectl(
            "apply",
            "-f",
            str(REPO_ROOT / "k8s/operator/namespace.yaml"),
            "-f",
            str(REPO_ROOT / "k8s/operator/rbac.yaml"),
        )
        yield cp


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    return Kube(control_plane)


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane) -> Path:
    """Credentials of the operator's ServiceAccount: only the shipped RBAC rules apply."""
    name, namespace = OPERATOR_SA
    return control_plane.service_account_kubeconfig(name, namespace)


@pytest.fixture()
def namespace(kube: Kube) -> str:
    return kube.namespace(f"t{next(_counter)}-{int(time.time()) % 100000}")


@pytest.fixture()
def start_operator(
    operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []
    lease = f"edge-pop-test-{next(_counter)}"

    def start(**env: str) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started)}.log"
        process = OperatorProcess(
            operator_kubeconfig, log, {"EDGEPOP_OPERATOR_LEASE_NAME": lease, **env}
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    for process in started:
        print(f"--- {process.log} ---\n{process.log_tail(80)}")  # shown when a test fails
        lines = process.log_text().splitlines()
        forbidden = [line for line in lines if RBAC_DENIAL.search(line)]
        assert not forbidden, "operator hit RBAC denials:\n" + "\n".join(forbidden[:10])


@pytest.fixture()
def install_service_monitor_crd(control_plane: ControlPlane) -> Iterator[Callable[[], None]]:
    """Install the ServiceMonitor CRD when the test says; removed afterwards, so every other
    test runs in a cluster without it (as the session's cluster is)."""
    installed = []

    def install() -> None:
        control_plane.kubectl("apply", "-f", str(SERVICE_MONITOR_CRD))
        installed.append(True)
        control_plane.kubectl(
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "--timeout=60s",
        )
        # Established comes a moment before the API server routes the new resource.
        wait_until(service_monitors_served, 30, "ServiceMonitors served")

    def service_monitors_served() -> bool:
        try:
            control_plane.api("GET", "/apis/monitoring.coreos.com/v1/servicemonitors")
        except ApiError:
            return False
        return True

    yield install
    if installed:
        # Waits until the API server has deleted every ServiceMonitor and the CRD itself.
        control_plane.kubectl("delete", "-f", str(SERVICE_MONITOR_CRD), "--timeout=60s")


@pytest.fixture(scope="session")
def redis_url(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port (the POP tests' own RedisProcess)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"), binary=redis_binary)
    server.start_and_wait()
    yield server.url
    server.stop()
