"""The Helm chart, rendered and linted by the real ``helm`` (no cluster needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from pop_operator.chartvalues import VALUES, defaults
from pop_operator.manifests import REPO_ROOT
from pop_operator.rbac import CLUSTER_RULES, NAMESPACE_RULES
from pop_operator.yamlio import load_documents
from tests.operator.schemas import validate

CHART = Path(__file__).resolve().parents[2] / "charts" / "edge-pop"
REPOSITORY = "registry.example.com/edge-pop"


def _helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60)


def _operator_image(rendered: str) -> str:
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "Deployment":
            image: str = doc["spec"]["template"]["spec"]["containers"][0]["image"]
            return image
    raise AssertionError(f"no Deployment rendered:\n{rendered}")


def test_the_chart_assumes_no_published_image(helm_binary: str) -> None:
    refused = _helm(helm_binary, "template", "edge", str(CHART))
    assert refused.returncode != 0
    assert "set operator.image.repository" in refused.stderr, refused.stderr


def test_the_image_tag_defaults_to_the_app_version(helm_binary: str) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    chosen = f"operator.image.repository={REPOSITORY}"
    rendered = _helm(helm_binary, "template", "edge", str(CHART), "--set", chosen)
    assert rendered.returncode == 0, rendered.stderr
    assert _operator_image(rendered.stdout) == f"{REPOSITORY}:{app_version}"
    tag = "operator.image.tag=v2"
    tagged = _helm(helm_binary, "template", "edge", str(CHART), "--set", chosen, "--set", tag)
    assert _operator_image(tagged.stdout) == f"{REPOSITORY}:v2", tagged.stderr


def test_the_chart_lints(helm_binary: str) -> None:
    chosen = f"operator.image.repository={REPOSITORY}"
    linted = _helm(helm_binary, "lint", "--strict", str(CHART), "--set", chosen)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_bad_values_are_refused_naming_the_field(helm_binary: str) -> None:
    chosen = f"operator.image.repository={REPOSITORY}"
    for bad, named in (
        ("operator.replicas=0", "operator.replicas"),
        ("operator.replicas=many", "operator.replicas"),
        ("operator.imagee.tag=v2", "imagee"),
    ):
        refused = _helm(helm_binary, "template", "edge", str(CHART), "--set", chosen, "--set", bad)
        assert refused.returncode != 0, bad
        assert named in refused.stderr, refused.stderr


def test_helm_test_hook_and_notes_render(helm_binary: str) -> None:
    chosen = f"operator.image.repository={REPOSITORY}"
    rendered = _helm(helm_binary, "template", "edge", str(CHART), "--set", chosen)
    hooks = [
        doc
        for doc in yaml.safe_load_all(rendered.stdout)
        if doc and doc["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    assert [doc["kind"] for doc in hooks] == ["Pod"], rendered.stdout
    assert hooks[0]["spec"]["containers"][0]["image"].startswith(REPOSITORY)
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "helm test {{ .Release.Name }}" in notes


def _render(helm: str, *settings: str) -> dict[str, dict[str, Any]]:
    """The chart's objects by kind (one of each), each validated against Kubernetes' schema."""
    chosen = ["--set", f"operator.image.repository={REPOSITORY}"]
    for setting in settings:
        chosen += ["--set-json", setting]
    rendered = _helm(helm, "template", "edge", str(CHART), *chosen)
    assert rendered.returncode == 0, rendered.stderr
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    for doc in docs:
        validate(doc)
    # The dashboards' ConfigMaps are tests/operator/test_dashboards.py's.
    docs = [doc for doc in docs if not doc["metadata"]["name"].endswith("-dashboard")]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs), [doc["kind"] for doc in docs]
    return by_kind


def test_the_chart_grants_the_rbac_rules_of_the_one_source(helm_binary: str) -> None:
    docs = _render(helm_binary)
    assert docs["ClusterRole"]["rules"] == CLUSTER_RULES
    assert docs["Role"]["rules"] == NAMESPACE_RULES
    account = docs["ServiceAccount"]["metadata"]["name"]
    assert account == "edge-operator"
    assert docs["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == account
    for binding in ("ClusterRoleBinding", "RoleBinding"):
        assert docs[binding]["subjects"][0]["name"] == account


def test_defaults_render_what_the_plain_manifests_hold(helm_binary: str) -> None:
    """values.yaml and k8s/operator come from one table: the same pod either way."""
    chart_pod = _render(helm_binary)["Deployment"]["spec"]["template"]["spec"]
    plain = load_documents((REPO_ROOT / "k8s/operator/deployment.yaml").read_text())
    plain_pod = plain[0]["spec"]["template"]["spec"]
    for key in ("securityContext",):
        assert chart_pod[key] == plain_pod[key]
    chart_container, plain_container = chart_pod["containers"][0], plain_pod["containers"][0]
    for key in ("resources", "securityContext", "env", "imagePullPolicy", "ports"):
        assert chart_container[key] == plain_container[key], key


def test_values_reach_the_operator_pod(helm_binary: str) -> None:
    docs = _render(
        helm_binary,
        'operator.resources={"limits":{"memory":"1Gi"}}',
        'operator.nodeSelector={"edge":"yes"}',
        'operator.tolerations=[{"key":"edge","operator":"Exists","effect":"NoSchedule"}]',
        'operator.imagePullSecrets=[{"name":"registry"}]',
        "operator.lagCheckSeconds=7.5",
        'operator.image.pullPolicy="Always"',
    )
    for kind in ("Deployment", "Pod"):  # the operator, and the helm test pod beside it
        pod = docs[kind]["spec"]["template"]["spec"] if kind == "Deployment" else docs[kind]["spec"]
        assert pod["nodeSelector"] == {"edge": "yes"}, kind
        assert pod["tolerations"][0]["key"] == "edge", kind
        assert pod["imagePullSecrets"] == [{"name": "registry"}], kind
        assert pod["containers"][0]["imagePullPolicy"] == "Always", kind
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"memory": "1Gi"}  # Helm merges maps
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["EDGEPOP_OPERATOR_LAG_CHECK_SECONDS"] == "7.5"


def test_every_object_carries_the_standard_labels(helm_binary: str) -> None:
    for kind, doc in _render(helm_binary).items():
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "edge", kind
        assert labels["app.kubernetes.io/managed-by"] == "Helm", kind
        assert labels["app.kubernetes.io/part-of"] == "edge-pop", kind
        assert labels["app.kubernetes.io/version"], kind
    deployment = _render(helm_binary)["Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "app.kubernetes.io/version" not in selector  # an upgrade must not change it


def test_values_docs_are_the_table_of_the_one_source() -> None:
    readme = (CHART / "README.md").read_text()
    for leaf in VALUES:
        assert f"| `{leaf.path}` |" in readme, leaf.path
    assert yaml.safe_load((CHART / "values.yaml").read_text()) == defaults()
