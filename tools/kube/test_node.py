"""Proves tools/kube's one-node cluster runs real pods: the scheduler places them, the
kubelet starts them under containerd and probes them, a StatefulSet's claim binds to a
local volume and survives the pod, pods reach the host and the API server's Service.

The pods run Debian's static busybox, put in an image here (nothing can be pulled).
Needs root; the first run builds the binaries through ensure.sh.  pytest + stdlib only.
"""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from control_plane import KUBERNETES_SERVICE_IP, ensure_binaries
from node import HOST_IP, Cluster, single_binary_image

BUSYBOX_IMAGE = "localhost/edge-pop-busybox:1"
STORAGE_CLASS = "edge-pop-local"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    busybox = shutil.which("busybox")
    assert busybox, "busybox (Debian busybox-static) is missing; scripts/test installs it"
    with Cluster(tmp_path_factory.mktemp("node"), bin_dir=ensure_binaries()) as running:
        single_binary_image(BUSYBOX_IMAGE, Path(busybox), "/bin/busybox", user="0")
        running.node.load_image(BUSYBOX_IMAGE)
        yield running


def _pod(cluster: Cluster, name: str, namespace: str = "default") -> dict[str, Any] | None:
    status, raw = cluster.control_plane._request(
        "GET", f"/api/v1/namespaces/{namespace}/pods/{name}"
    )
    return json.loads(raw) if status == 200 else None


def _ready(pod: dict[str, Any] | None) -> dict[str, Any] | None:
    conditions = (pod or {}).get("status", {}).get("conditions", [])
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return pod if ready else None


STATEFULSET = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "web"},
    "spec": {
        "serviceName": "web",
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "web",
                        "image": BUSYBOX_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": [
                            "/bin/busybox",
                            "sh",
                            "-c",
                            # Counts its starts on the volume, then serves the volume.
                            "echo start >> /data/starts && "
                            "exec /bin/busybox httpd -f -p 8080 -h /data",
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": "/starts", "port": 8080},
                            "periodSeconds": 1,
                        },
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
            },
        },
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
    },
}


def test_a_statefulset_pod_becomes_ready_and_keeps_its_claim_when_recreated(
    cluster: Cluster,
) -> None:
    cp = cluster.control_plane
    cluster.node.local_volumes(1, storage_class=STORAGE_CLASS)
    cp.api("POST", "/apis/apps/v1/namespaces/default/statefulsets", STATEFULSET)

    first = wait_for(lambda: _ready(_pod(cluster, "web-0")), 120, "web-0 Ready (kubelet probe)")
    ip = first["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8080/starts", timeout=5) as served:
        assert served.read().decode().split() == ["start"]

    cp.api("DELETE", "/api/v1/namespaces/default/pods/web-0")
    uid = first["metadata"]["uid"]
    second = wait_for(
        lambda: (p := _ready(_pod(cluster, "web-0"))) and p["metadata"]["uid"] != uid and p,
        120,
        "web-0 recreated and Ready",
    )
    claim = cp.api("GET", "/api/v1/namespaces/default/persistentvolumeclaims/data-web-0")
    assert claim["status"]["phase"] == "Bound"
    ip = second["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8080/starts", timeout=5) as served:
        assert served.read().decode().split() == ["start", "start"]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_pod_reaches_the_host_and_the_api_server_service(cluster: Cluster) -> None:
    host = http.server.ThreadingHTTPServer((HOST_IP, 0), _Hello)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        port = host.server_address[1]
        script = (
            f"/bin/busybox wget -q -O- http://{HOST_IP}:{port}/ && "
            # Plain HTTP to the API server's HTTPS port through the Service: Go's TLS
            # server answers 400, which proves the path through kube-proxy's rules.
            f"/bin/busybox wget -O- http://{KUBERNETES_SERVICE_IP}:443/ 2>&1"
            " | /bin/busybox grep -q '400 Bad Request' && echo api-server-reached"
        )
        logs = _run_to_completion(cluster, "reach", script)
        assert logs.split("\n")[:2] == ["hello from the host", "api-server-reached"], logs
    finally:
        host.shutdown()


def _run_to_completion(cluster: Cluster, name: str, script: str) -> str:
    """Run ``script`` in a busybox pod; its logs, once it succeeded."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": name,
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/busybox", "sh", "-c", script],
                }
            ],
        },
    }
    cluster.control_plane.api("POST", "/api/v1/namespaces/default/pods", pod)

    def finished() -> dict[str, Any] | None:
        found = _pod(cluster, name)
        phase = (found or {}).get("status", {}).get("phase")
        return found if phase in ("Succeeded", "Failed") else None

    done = wait_for(finished, 120, f"the {name} pod to finish")
    logs = cluster.control_plane.kubectl("logs", name).stdout
    assert done["status"]["phase"] == "Succeeded", logs
    return str(logs)


def test_pods_find_services_and_a_statefulsets_pods_by_name(cluster: Cluster) -> None:
    """Cluster DNS (CoreDNS): the API server's Service, and web-0 (the StatefulSet of the
    test above) under its headless Service, by the names a pod in the cluster uses."""
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 8080}]},
    }
    cluster.control_plane.api("POST", "/api/v1/namespaces/default/services", headless)
    web = wait_for(lambda: _ready(_pod(cluster, "web-0")), 120, "web-0 Ready")
    script = (
        "/bin/busybox cat /etc/resolv.conf && "
        "/bin/busybox nslookup kubernetes.default.svc.cluster.local && "
        "/bin/busybox nslookup web-0.web.default.svc.cluster.local"
    )
    logs = _run_to_completion(cluster, "lookup", script)
    assert f"nameserver {HOST_IP}" in logs, logs
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in logs, logs
    assert f"Address: {KUBERNETES_SERVICE_IP}" in logs, logs
    assert f"Address: {web['status']['podIP']}" in logs, logs
