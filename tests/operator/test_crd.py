"""The CRD generated from the pydantic model: structural, complete, and never stale on disk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pop_operator.crd import CRD_NAME, custom_resource_definition
from pop_operator.manifests import REPO_ROOT, generated_files, stale_files, write_files
from pop_operator.yamlio import load_documents
from tests.operator.schemas import validate


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = custom_resource_definition()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def _spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, sub in node.get("properties", {}).items():
            found += _walk(sub, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += _walk(node[key], f"{path}[{key}]")
    return found


def test_generated_files_are_current() -> None:
    assert stale_files() == [], "run: uv run python -m pop_operator.manifests --write"


def test_drift_is_detected(tmp_path: Path) -> None:
    write_files(tmp_path)
    assert stale_files(tmp_path) == []
    crd_copy = tmp_path / "charts/edge-pop/crds" / f"{CRD_NAME}.yaml"
    crd_copy.write_text(crd_copy.read_text().replace("minimum: 0", "minimum: 1"))
    (tmp_path / "k8s/operator/rbac.yaml").unlink()
    assert sorted(map(str, stale_files(tmp_path))) == [
        f"charts/edge-pop/crds/{CRD_NAME}.yaml",
        "k8s/operator/rbac.yaml",
    ]


def test_both_crd_copies_are_the_same_generated_text() -> None:
    files = generated_files()
    assert (
        files[Path(f"k8s/crd/{CRD_NAME}.yaml")]
        == files[Path(f"charts/edge-pop/crds/{CRD_NAME}.yaml")]
    )


def test_schema_is_structural() -> None:
    for path, node in _walk(_version()["schema"]["openAPIV3Schema"]):
        assert "$ref" not in node, path
        assert "title" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "anyOf" not in node, path
        assert "type" in node, f"{path} has no type"
        if "properties" in node:
            assert node["type"] == "object", path
            assert "additionalProperties" not in node, path
            assert set(node.get("required", [])) <= set(node["properties"]), path


def test_names_columns_and_status_subresource() -> None:
    crd = custom_resource_definition()
    assert crd["metadata"]["name"] == "edgepops.edgepop.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["epop"]
    assert crd["spec"]["names"]["kind"] == "EdgePop"
    version = _version()
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert {"Regions", "Ready", "Age"} <= set(columns)


def test_validation_rules_reach_the_schema() -> None:
    spec = _spec_schema()
    assert set(spec["required"]) == {"origin", "clientAuthSecretRef", "image", "regions"}
    assert spec["properties"]["engine"]["enum"] == ["libsql", "turso"]
    assert spec["properties"]["engine"]["default"] == "libsql"
    regions = spec["properties"]["regions"]
    assert regions["minItems"] == 1
    assert regions["x-kubernetes-list-type"] == "map"
    assert regions["x-kubernetes-list-map-keys"] == ["name"]
    region = regions["items"]
    assert region["required"] == ["name"]
    assert region["properties"]["name"]["pattern"] == "^[a-z]([-a-z0-9]*[a-z0-9])?$"
    assert region["properties"]["replicas"]["minimum"] == 0
    assert region["properties"]["replicas"]["default"] == 1
    assert region["properties"]["storage"]["default"] == {}
    assert spec["properties"]["sync"]["properties"]["intervalSeconds"]["minimum"] == 1
    assert spec["properties"]["sync"]["default"] == {}
    assert spec["properties"]["origin"]["required"] == ["url"]


def test_shipped_yaml_validates_against_kubernetes_schemas() -> None:
    for rel, text in generated_files().items():
        not_objects = rel.name in ("kustomization.yaml", "values.yaml") or rel.suffix != ".yaml"
        if not_objects or "templates" in rel.parts or rel.parts[0] == "monitoring":
            # Helm templates are YAML only once rendered (test_chart.py renders them); kustomize
            # files, chart values, their schema, the chart README and Prometheus's own rule
            # files are no Kubernetes objects.
            continue
        for doc in load_documents(text):
            if doc["kind"] == "PrometheusRule":
                continue  # no schema here: promtool checks its rules (test_alerts.py)
            validate(doc)


def test_kustomize_base_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl not found: preinstalled on project machines, or run tools/kube/ensure.sh"
        )
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / "k8s/operator")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kinds = sorted(doc["kind"] for doc in load_documents(out))
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
        ]
    )
