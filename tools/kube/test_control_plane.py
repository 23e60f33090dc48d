"""Proves tools/kube gives a real API server: CRD schema validation, status
subresource, RBAC under a ServiceAccount's kubeconfig.

The first run builds the binaries through ensure.sh (several minutes);
later runs take a few seconds.  pytest + stdlib only.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from control_plane import ControlPlane

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.edge-pop.dev
spec:
  group: test.edge-pop.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [replicas]
              properties:
                replicas: {type: integer, minimum: 0, maximum: 10}
                region: {type: string, enum: [eu, us]}
            status:
              type: object
              properties:
                ready: {type: integer}
"""


def widget(name: str, replicas: object, region: str = "eu") -> str:
    return json.dumps(
        {
            "apiVersion": "test.edge-pop.dev/v1alpha1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "region": region},
        }
    )


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("kube")) as plane:
        yield plane


@pytest.fixture(scope="module")
def crd(cp: ControlPlane) -> str:
    cp.kubectl("apply", "-f", "-", input=CRD)
    cp.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", "crd/widgets.test.edge-pop.dev"
    )
    return "widgets.test.edge-pop.dev"


def test_server_is_real(cp: ControlPlane) -> None:
    version = cp.api("GET", "/version")
    assert version["gitVersion"].startswith("v1.")
    assert cp.api("GET", "/api/v1/namespaces/default")["metadata"]["name"] == "default"
    out = cp.kubectl("get", "--raw", "/readyz").stdout
    assert out.strip() == "ok"


def test_crd_valid_object_accepted(cp: ControlPlane, crd: str) -> None:
    cp.kubectl("apply", "-f", "-", input=widget("good", 3))
    got = json.loads(cp.kubectl("get", "widget", "good", "-o", "json").stdout)
    assert got["spec"] == {"replicas": 3, "region": "eu"}


def test_crd_schema_violations_rejected_naming_field(cp: ControlPlane, crd: str) -> None:
    too_many = cp.kubectl("apply", "-f", "-", input=widget("bad1", 99), check=False)
    assert too_many.returncode != 0
    assert "spec.replicas" in too_many.stderr, too_many.stderr
    assert "less than or equal to 10" in too_many.stderr, too_many.stderr

    wrong_type = cp.kubectl("apply", "-f", "-", input=widget("bad2", "three"), check=False)
    assert wrong_type.returncode != 0
    assert "spec.replicas" in wrong_type.stderr, wrong_type.stderr

    bad_enum = cp.kubectl("apply", "-f", "-", input=widget("bad3", 1, "mars"), check=False)
    assert bad_enum.returncode != 0
    assert "spec.region" in bad_enum.stderr, bad_enum.stderr

    names = cp.kubectl("get", "widgets", "-o", "name").stdout.split()
    assert not any(n.endswith(("/bad1", "/bad2", "/bad3")) for n in names)


def test_status_subresource(cp: ControlPlane, crd: str) -> None:
    cp.kubectl("apply", "-f", "-", input=widget("st", 2))
    base = "/apis/test.edge-pop.dev/v1alpha1/namespaces/default/widgets/st"
    # With a status subresource, writes to the main resource ignore .status ...
    obj = cp.api("GET", base)
    obj["status"] = {"ready": 7}
    after = cp.api("PUT", base, obj)
    assert "status" not in after or after["status"] != {"ready": 7}
    # ... and /status writes only .status.
    obj = cp.api("GET", base)
    obj["status"] = {"ready": 2}
    obj["spec"]["replicas"] = 9
    after = cp.api("PUT", base + "/status", obj)
    assert after["status"] == {"ready": 2}
    assert after["spec"]["replicas"] == 2


def test_service_account_rbac(cp: ControlPlane) -> None:
    ns = "rbac-demo"
    sa_kubeconfig = cp.service_account_kubeconfig("reader", namespace=ns)
    cp.kubectl("-n", ns, "create", "configmap", "settings", "--from-literal=k=v")
    cp.kubectl("-n", ns, "create", "role", "cm-get", "--verb=get", "--resource=configmaps")
    cp.kubectl(
        "-n",
        ns,
        "create",
        "rolebinding",
        "cm-get",
        "--role=cm-get",
        f"--serviceaccount={ns}:reader",
    )

    whoami = cp.kubectl("auth", "whoami", "-o", "json", kubeconfig=sa_kubeconfig)
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{ns}:reader"
    )

    # RBAC reads bindings through an informer: allow a moment to catch up.
    deadline = time.monotonic() + 15
    while True:
        got = cp.kubectl(
            "-n",
            ns,
            "get",
            "configmap",
            "settings",
            "-o",
            "json",
            kubeconfig=sa_kubeconfig,
            check=False,
        )
        if got.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["data"] == {"k": "v"}

    listed = cp.kubectl("-n", ns, "get", "configmaps", kubeconfig=sa_kubeconfig, check=False)
    assert listed.returncode != 0
    assert "Forbidden" in listed.stderr, listed.stderr
    assert 'cannot list resource "configmaps"' in listed.stderr, listed.stderr

    other_ns = cp.kubectl(
        "-n",
        "default",
        "get",
        "configmap",
        "kube-root-ca.crt",
        kubeconfig=sa_kubeconfig,
        check=False,
    )
    assert other_ns.returncode != 0 and "Forbidden" in other_ns.stderr, other_ns.stderr

    can = cp.kubectl(
        "-n", ns, "auth", "can-i", "list", "configmaps", kubeconfig=sa_kubeconfig, check=False
    )
    assert can.stdout.strip() == "no"


def test_stop_is_clean(tmp_path: Path, cp: ControlPlane) -> None:
    # A second, independent control plane on other ports; stopping it leaves
    # no process behind and keeps the logs.
    plane = ControlPlane(tmp_path / "second", bin_dir=cp.bin_dir)
    with plane:
        assert plane.server != cp.server
        procs = [p.popen for p in plane._procs]
        assert all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs)
    assert (tmp_path / "second" / "kube-apiserver.log").stat().st_size > 0
    assert (tmp_path / "second" / "etcd.log").stat().st_size > 0
