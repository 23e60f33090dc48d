"""Run a local origin and POPs as processes on loopback.

Used by ``edge-pop demo``, the test suite and the benchmarks, so that all three start the
real programs the same way: ``tursodb --sync-server`` as the origin, ``edge-pop serve`` as
each POP.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from pop.devtools.faultlink import CONTROL_PATH as FAULTLINK_CONTROL_PATH


def loopback_client(base_url: str, **options: Any) -> httpx.Client:
    """An HTTP client for a process started here, cheap enough to make per request.

    httpx would otherwise build (and load certificates into) a TLS context per client:
    about 70 ms, which dominated tests that open a client per check.
    """
    return httpx.Client(base_url=base_url, verify=_tls_context(), timeout=30, **options)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ManagedProcess:
    """A child process serving HTTP on a port of ``host`` (loopback unless said otherwise),
    its output in a log file."""

    ready_path = "/health"  # polled by start_and_wait until it answers ready_status
    ready_status = 200
    startup_timeout = 20.0

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str],
        port: int,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_and_wait(self, timeout: float | None = None) -> None:
        self.start()
        self.wait_until(
            f"{self.url}{self.ready_path}", timeout or self.startup_timeout, self.ready_status
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_until(self, url: str, timeout: float, expect_status: int = 200) -> None:
        """Poll ``url`` until it answers ``expect_status``; fail with the log tail if not."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                status = httpx.get(url, timeout=2).status_code
                if status == expect_status:
                    return
                last = f"HTTP {status}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.05)
        raise TimeoutError(
            f"{self.name} not ready at {url} after {timeout}s ({last}):\n{self.log_tail()}"
        )


class HranaServer(ManagedProcess):
    """A server that answers Hrana over HTTP: an origin, which tests talk to directly."""

    auth_token: str | None = None  # sent with ``execute`` when the server asks for one

    def execute(self, sql: str, args: list[Any] | None = None) -> dict[str, Any]:
        """Run one statement directly on this server (not through a POP)."""
        from pop.hrana.values import encode_value

        body = {
            "baton": None,
            "requests": [
                {
                    "type": "execute",
                    "stmt": {"sql": sql, "args": [encode_value(a) for a in args or []]},
                }
            ],
        }
        headers = {"Authorization": f"Bearer {self.auth_token}"} if self.auth_token else {}
        answer = httpx.post(
            f"{self.url}/v2/pipeline", json=body, headers=headers, timeout=60
        ).json()
        result = answer["results"][0]
        if result["type"] != "ok":
            raise RuntimeError(f"origin refused {sql!r}: {result['error']['message']}")
        return dict(result["response"]["result"])


class TursodbOrigin(HranaServer):
    """``tursodb FILE --sync-server``: a real origin serving Turso Sync and basic Hrana."""

    # tursodb answers 404 on GET /v2, but only once it is listening.
    ready_path = "/v2"
    ready_status = 404

    def __init__(self, binary: str | Path, workdir: Path, port: int | None = None) -> None:
        port = port or free_port()
        self.db_path = workdir / "origin.db"
        super().__init__(
            "tursodb origin",
            [str(binary), str(self.db_path), "--sync-server", f"127.0.0.1:{port}"],
            workdir / "origin.log",
            os.environ,
            port,
        )


# Where the libSQL server (sqld) may be: no registry ships it, so it is provided beside
# the project (DESIGN.md section 5); $EDGE_POP_SQLD overrides.
SQLD_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "tools" / "sqld" / "sqld",
    Path("/work/shared/tools/sqld/sqld"),
)


def find_sqld() -> str | None:
    """The sqld binary to run: $EDGE_POP_SQLD, else the first of SQLD_CANDIDATES there."""
    if os.environ.get("EDGE_POP_SQLD"):
        return os.environ["EDGE_POP_SQLD"]
    return next((str(c) for c in SQLD_CANDIDATES if c.is_file()), None)


class SqldServer(HranaServer):
    """``sqld``, the libSQL server: the reference for every Hrana answer a POP gives."""

    ready_path = "/health"

    def __init__(
        self,
        binary: str | Path,
        workdir: Path,
        port: int | None = None,
        *,
        jwt_key_file: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """``jwt_key_file``: an Ed25519 public key; sqld then asks every client for a JWT.
        ``host``: where it serves Hrana and replication (pods reach the host's bridge address).
        """
        port = port or free_port()
        argv = [
            str(binary),
            "--db-path",
            str(workdir / "sqld.db"),
            "--http-listen-addr",
            f"{host}:{port}",
            "--grpc-listen-addr",
            f"127.0.0.1:{free_port()}",
            "--no-welcome",
            *(["--auth-jwt-key-file", str(jwt_key_file)] if jwt_key_file else []),
        ]
        super().__init__("sqld", argv, workdir / "sqld.log", os.environ, port, host)


class PopProcess(ManagedProcess):
    """``edge-pop serve`` configured like a user would, through environment variables."""

    ready_path = "/ready"
    startup_timeout = 30.0

    def __init__(
        self,
        origin_url: str,
        workdir: Path,
        *,
        region: str,
        token: str | None = None,
        engine: str = "turso",
        port: int | None = None,
        host: str = "127.0.0.1",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        port = port or free_port()
        self.token = token or secrets.token_urlsafe(16)
        self.region = region
        self.replica_path = workdir / f"pop-{region}.db"
        env = {
            **os.environ,
            "TURSO_DATABASE_URL": origin_url,
            "PROXY_AUTH_TOKEN": self.token,
            "REPLICA_ENGINE": engine,
            "DB_FILEPATH": str(self.replica_path),
            "PORT": str(port),
            "HOST": host,
            "REGION": region,
            **(extra_env or {}),
        }
        super().__init__(
            f"POP {region}",
            [sys.executable, "-m", "pop", "serve", "--env-file", ""],
            workdir / f"pop-{region}.log",
            env,
            port,
            host,
        )

    def client(self) -> httpx.Client:
        return loopback_client(self.url, headers={"Authorization": f"Bearer {self.token}"})


class GatewayProcess(ManagedProcess):
    """``edge-pop gateway``: Hrana streams in front of a ``tursodb`` origin."""

    ready_path = "/v3"

    def __init__(self, origin_url: str, workdir: Path, port: int | None = None) -> None:
        port = port or free_port()
        argv = [sys.executable, "-m", "pop", "gateway", "--origin", origin_url]
        super().__init__(
            "stream gateway",
            [*argv, "--port", str(port)],
            workdir / "gateway.log",
            os.environ,
            port,
        )


class FaultLinkProcess(ManagedProcess):
    """``python -m pop.devtools.faultlink``: an origin's address that faults on demand
    (a fault injector, not a stand-in for any server: requests reach the real origin)."""

    ready_path = "/v2"

    def __init__(self, upstream: str, workdir: Path, port: int | None = None) -> None:
        port = port or free_port()
        argv = [sys.executable, "-m", "pop.devtools.faultlink", "--upstream", upstream]
        super().__init__(
            "fault link",
            [*argv, "--port", str(port)],
            workdir / f"faultlink-{port}.log",
            os.environ,
            port,
        )

    def set_mode(self, mode: str) -> None:
        """``pass`` or ``hrana-only`` (see ``pop.devtools.faultlink``)."""
        with loopback_client(self.url) as http:
            http.put(FAULTLINK_CONTROL_PATH, content=mode).raise_for_status()


class RedisProcess(ManagedProcess):
    """``redis-server`` on a port of ``host`` (loopback by default), without persistence."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        binary: str = "redis-server",
        host: str = "127.0.0.1",
    ) -> None:
        port = port or free_port()
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            host,
            # No password: off loopback, protected mode would refuse every client.
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        super().__init__("redis", argv, workdir / f"redis-{port}.log", os.environ, port, host)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start_and_wait(self, timeout: float | None = None) -> None:
        self.start()
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"redis exited early:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 1) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"redis not answering on port {self.port}:\n{self.log_tail()}")


class PrometheusServer(ManagedProcess):
    """A real ``prometheus`` (Debian's package) scraping ``targets`` every second: each
    target a host:port and the labels its series get, as a ServiceMonitor would give."""

    ready_path = "/-/ready"
    startup_timeout = 30.0

    def __init__(
        self,
        workdir: Path,
        targets: list[tuple[str, dict[str, str]]],
        binary: str = "prometheus",
        port: int | None = None,
    ) -> None:
        port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        static = [{"targets": [address], "labels": labels} for address, labels in targets]
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [{"job_name": "edge-pop", "static_configs": static}],
                }
            )
        )
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        super().__init__("prometheus", argv, workdir / "prometheus.log", os.environ, port)

    def label_values(self, label: str, selector: str) -> list[str]:
        """The values of ``label`` among the series ``selector`` picks (Grafana's
        ``label_values``)."""
        answer = httpx.get(
            f"{self.url}/api/v1/label/{label}/values", params={"match[]": selector}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        values: list[str] = answer.json()["data"]
        return values

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` evaluates to now; a query Prometheus refuses fails."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=30)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {promql!r}: {body.get('error', body)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
