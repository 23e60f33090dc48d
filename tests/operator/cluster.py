"""Test harness around tools/kube's ControlPlane: JSON helpers, waiting, operator processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from pop.devtools.processes import free_port
from tests.operator.samples import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools/kube"))
from control_plane import ApiError, ControlPlane, ControlPlaneError, ensure_binaries

__all__ = [
    "ApiError",
    "ControlPlane",
    "ControlPlaneError",
    "Kube",
    "OperatorProcess",
    "ensure_binaries",
    "wait_until",
]

T = TypeVar("T")

PATHS = {
    "EdgePop": "/apis/edgepop.io/v1alpha1/namespaces/{ns}/edgepops",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "Service": "/api/v1/namespaces/{ns}/services",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Event": "/api/v1/namespaces/{ns}/events",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ServiceMonitor": "/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors",
}


def wait_until(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Kube:
    """Admin access to the control plane, in plain JSON."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.cp.api("GET", f"{PATHS[kind].format(ns=ns)}/{name}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return obj

    def items(self, kind: str, ns: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cp.api("GET", PATHS[kind].format(ns=ns))["items"]
        return items

    def names(self, kind: str, ns: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.items(kind, ns))

    def create(self, kind: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = self.cp.api("POST", PATHS[kind].format(ns=ns), body)
        return obj

    def apply_yaml(self, text: str, ns: str) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("apply", "-n", ns, "-f", "-", input=text, check=False)

    def patch(
        self, kind: str, ns: str, name: str, patch: dict[str, Any], *, status: bool = False
    ) -> None:
        args = ["patch", kind.lower(), name, "-n", ns, "--type=merge", "-p", json.dumps(patch)]
        if status:
            args.append("--subresource=status")
        self.cp.kubectl(*args)

    def namespace(self, name: str) -> str:
        self.cp.api(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            ok=(201, 409),
        )
        return name


class OperatorProcess:
    """``python -m pop_operator`` as a child process, as the operator's ServiceAccount."""

    def __init__(self, kubeconfig: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.port = free_port()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "EDGEPOP_OPERATOR_POD_NAMESPACE": "edge-pop-system",
            "EDGEPOP_OPERATOR_HTTP_HOST": "127.0.0.1",
            "EDGEPOP_OPERATOR_LEASE_DURATION_SECONDS": "4",
            "EDGEPOP_OPERATOR_LAG_CHECK_SECONDS": "1",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pop_operator", "--http-port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = response.json()
        return body

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text

    def wait_role(self, role: str, timeout: float = 30) -> None:
        def check() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
            health = self.health()
            return health is not None and health.get("role") == role

        wait_until(check, timeout, f"operator role {role}")

    def kill(self) -> None:
        """SIGKILL: no clean-up, as a crash or an OOM kill would leave things."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
