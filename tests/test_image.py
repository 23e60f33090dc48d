"""The container image: built from the Dockerfile, run the way a pod runs it.

The image is built by ``tools/image/build.sh`` (buildah, FROM a Debian base made here by
mmdebstrap) and run with podman on runc, as user 65532 with a read-only root and no
writable /tmp, against a real ``sqld`` on the host.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pop.devtools.processes import SqldServer, free_port, loopback_client
from tests.helpers import execute, pipeline, rows

ROOT = Path(__file__).resolve().parent.parent
POP_USER = 65532
# This VM refuses podman's default rlimits, and crun its cgroup setup (DESIGN §5).
PODMAN_RUN = [
    "podman",
    "run",
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--read-only",
    "--read-only-tmpfs=false",
]


@pytest.fixture()
def container_name() -> Iterator[str]:
    name = f"edge-pop-test-{secrets.token_hex(4)}"
    yield name
    subprocess.run(["podman", "rm", "--force", "--time", "5", name], capture_output=True)


def _logs(name: str) -> str:
    done = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
    return (done.stdout + done.stderr)[-4000:]


def _wait_ready(url: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the POP in {name} was not ready within {timeout:g} s:\n{_logs(name)}")


def test_a_pop_serves_from_the_image_as_non_root_on_a_read_only_root(
    pop_image: str, sqld: SqldServer, container_name: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # What a pod's fsGroup does for the claim: the POP's user owns the volume.
    subprocess.run(["chown", f"{POP_USER}:{POP_USER}", str(data)], check=True)
    port, token = free_port(), secrets.token_urlsafe(16)
    subprocess.run(
        [
            *PODMAN_RUN,
            "--detach",
            "--name",
            container_name,
            "--network",
            "host",
            "--volume",
            f"{data}:/data",
            "--env",
            f"TURSO_DATABASE_URL={sqld.url}",
            "--env",
            f"PROXY_AUTH_TOKEN={token}",
            "--env",
            "HOST=127.0.0.1",
            "--env",
            f"PORT={port}",
            pop_image,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, container_name, timeout=60)

    with loopback_client(url, headers={"Authorization": f"Bearer {token}"}) as http:
        written = pipeline(
            http,
            [
                execute("CREATE TABLE IF NOT EXISTS image_kv (k TEXT PRIMARY KEY, v TEXT)"),
                execute("INSERT OR REPLACE INTO image_kv VALUES ('from', 'the image')"),
            ],
        )
        assert [r["type"] for r in written["results"]] == ["ok", "ok"], written
        read = pipeline(http, [execute("SELECT v FROM image_kv WHERE k = 'from'")])
    assert rows(read) == [["the image"]], read
    assert (data / "replica.db").exists(), "the replica is not on the /data volume"

    pid = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.Pid}}", container_name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    assert uids is not None and int(uids.group(1)) == POP_USER, status


@pytest.mark.parametrize(
    ("entrypoint", "args", "expected"),
    [
        ([], ["--version"], "edge-pop "),
        ([], ["gateway", "--help"], "--origin"),
        (["--entrypoint", "python"], ["-m", "pop_operator", "--help"], "EdgePop"),
    ],
)
def test_the_image_holds_the_gateway_and_the_operator(
    pop_image: str, entrypoint: list[str], args: list[str], expected: str
) -> None:
    done = subprocess.run(
        [*PODMAN_RUN, "--rm", *entrypoint, pop_image, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout, done.stdout
