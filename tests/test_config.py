"""Start-up configuration: bad settings stop the process with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BASE = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


def _serve(env: dict[str, str], tmp_path: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pop", "serve", "--env-file", ""],
        env={**BASE, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"PROXY_AUTH_TOKEN": "p"}, "TURSO_DATABASE_URL", "is required"),
        (
            {"TURSO_DATABASE_URL": "not a url", "PROXY_AUTH_TOKEN": "p"},
            "TURSO_DATABASE_URL",
            "scheme",
        ),
        (
            {"TURSO_DATABASE_URL": "ftp://db.example", "PROXY_AUTH_TOKEN": "p"},
            "TURSO_DATABASE_URL",
            "'ftp'",
        ),
        (
            {"TURSO_DATABASE_URL": "libsql://", "PROXY_AUTH_TOKEN": "p"},
            "TURSO_DATABASE_URL",
            "no host",
        ),
        ({"TURSO_DATABASE_URL": "http://127.0.0.1:1"}, "PROXY_AUTH_TOKEN", "is required"),
        (
            {"TURSO_DATABASE_URL": "libsql://db-org.turso.io", "PROXY_AUTH_TOKEN": "p"},
            "TURSO_AUTH_TOKEN",
            "remote origin",
        ),
        (
            {
                "TURSO_DATABASE_URL": "http://127.0.0.1:1",
                "PROXY_AUTH_TOKEN": "p",
                "TURSO_SYNC_INTERVAL": "soon",
            },
            "TURSO_SYNC_INTERVAL",
            "number",
        ),
        (
            {
                "TURSO_DATABASE_URL": "http://127.0.0.1:1",
                "PROXY_AUTH_TOKEN": "p",
                "REPLICA_ENGINE": "sqlite",
            },
            "REPLICA_ENGINE",
            "libsql",
        ),
        (
            {"TURSO_DATABASE_URL": "http://127.0.0.1:1", "PROXY_AUTH_TOKEN": "p", "PORT": "70000"},
            "PORT",
            "65535",
        ),
    ],
)
def test_bad_configuration_exits_with_one_line(
    env: dict[str, str], variable: str, words: str, tmp_path: object
) -> None:
    done = _serve(env, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0] and words in lines[0], lines[0]


def test_secrets_are_not_echoed_in_errors(tmp_path: object) -> None:
    done = _serve(
        {
            "TURSO_DATABASE_URL": "libsql://db.example",
            "PROXY_AUTH_TOKEN": "hunter2-secret",
            "TURSO_SYNC_INTERVAL": "-5",
            "TURSO_AUTH_TOKEN": "origin-secret-123",
        },
        tmp_path,
    )
    assert done.returncode == 2
    assert "hunter2-secret" not in done.stderr and "origin-secret-123" not in done.stderr


def test_help_and_version() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "pop", "--help"], capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "TURSO_DATABASE_URL" in help_text.stdout
    version = subprocess.run(
        [sys.executable, "-m", "pop", "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("edge-pop ")
