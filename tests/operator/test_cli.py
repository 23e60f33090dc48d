"""Entry points: ``python -m pop_operator --help`` and the manifest drift check."""

from __future__ import annotations

import subprocess
import sys

from tests.operator.samples import REPO_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


def test_help_describes_the_operator() -> None:
    proc = _run("-m", "pop_operator", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "EdgePop" in proc.stdout
    assert "--namespace" in proc.stdout
    assert "EDGEPOP_OPERATOR_" in proc.stdout


def test_manifest_check_passes_on_the_repository() -> None:
    proc = _run("-m", "pop_operator.manifests", "--check")
    assert proc.returncode == 0, proc.stderr
