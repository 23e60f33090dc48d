"""The Helm chart, rendered and linted by the real ``helm`` (no cluster needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

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
