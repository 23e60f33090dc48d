"""A throwaway Kubernetes control plane (etcd + kube-apiserver) for tests.

Real API server semantics -- CRD structural-schema validation, status
subresource, RBAC, watches, TokenRequest -- with no kubelet or
controller-manager, so pods never run and ServiceAccount token Secrets are
never filled (use :meth:`ControlPlane.service_account_kubeconfig`, which uses
the TokenRequest API the API server serves itself).

Binaries come from ``tools/kube/ensure.sh`` (built from Go modules and cached),
or from ``bin_dir`` / ``$EDGE_POP_KUBE_BIN`` when given.

    with ControlPlane(tmp_path) as cp:
        cp.kubectl("apply", "-f", "crd.yaml")
        sa_kubeconfig = cp.service_account_kubeconfig("reader", namespace="demo")

Manual use: ``python tools/kube/control_plane.py`` starts one and prints
``export KUBECONFIG=...`` until Ctrl-C.

Standard library only (Python 3.11); needs the ``openssl`` CLI for certs.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

HERE = Path(__file__).resolve().parent
ENSURE_SH = HERE / "ensure.sh"

ADMIN_USER = "edge-pop-admin"
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
# With a node: reach the kubelet by its IP (the node's name is in no DNS).
NODE_APISERVER_ARGS = ("--kubelet-preferred-address-types=InternalIP",)
# Without a node (no advertise_address), as envtest runs:
API_ONLY_APISERVER_ARGS = (
    # The Endpoints of the "kubernetes" Service may not name a loopback address,
    # so its reconciler would only log errors.
    "--endpoint-reconciler-type=none",
    # No controller-manager creates the "default" ServiceAccount, so this plugin
    # would reject every Pod.
    "--disable-admission-plugins=ServiceAccount",
)
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """Start-up or API failure; the message includes the relevant log tails."""


class ApiError(ControlPlaneError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def ensure_binaries(*, quiet: bool = True) -> Path:
    """Run ensure.sh (builds on first use, ~15 min) and return the binary dir."""
    env_dir = os.environ.get("EDGE_POP_KUBE_BIN")
    if env_dir:
        return Path(env_dir)
    proc = subprocess.run(
        ["bash", str(ENSURE_SH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ControlPlaneError(
            f"{ENSURE_SH} failed (exit {proc.returncode}):\n{(proc.stderr or '')[-4000:]}"
        )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise ControlPlaneError(f"{ENSURE_SH} printed no directory")
    return Path(lines[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the child if the Python process dies (Linux)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def write_kubeconfig(
    path: Path, *, server: str, ca_file: Path, user: str, token: str, namespace: str = "default"
) -> Path:
    """Write a token kubeconfig (JSON is valid kubeconfig YAML)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "edge-pop",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": user, "context": {"cluster": "edge-pop", "user": user, "namespace": namespace}}
        ],
        "current-context": user,
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


class _Proc:
    def __init__(self, name: str, argv: Sequence[str], log: Path, cwd: Path) -> None:
        self.name = name
        self.log = log
        self._fh = log.open("ab")
        self._fh.write(f"# {' '.join(argv)}\n".encode())
        self._fh.flush()
        self.popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not them
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._fh.close()


class ControlPlane:
    """etcd + kube-apiserver on free 127.0.0.1 ports, state under ``workdir``.

    Attributes after :meth:`start`: ``server`` (https URL), ``ca_file``,
    ``admin_token``, ``kubeconfig`` (admin, group system:masters), ``bin_dir``.
    Logs: ``workdir/etcd.log``, ``workdir/kube-apiserver.log``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        bin_dir: Path | None = None,
        kubectl: str | None = None,
        startup_timeout: float = 120.0,
        extra_apiserver_args: Sequence[str] = (),
        advertise_address: str | None = None,
    ) -> None:
        """``advertise_address``: serve on that IP (one pods can reach) instead of
        127.0.0.1, publish it as the ``kubernetes`` Service's endpoint, and admit
        ServiceAccounts as a real cluster does; for use with ``node.Node``."""
        self.workdir = Path(workdir).resolve()
        self.advertise_address = advertise_address
        self._bin_dir = bin_dir
        self._kubectl = kubectl
        self.startup_timeout = startup_timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        self._procs: list[_Proc] = []
        self.server = ""
        self.etcd_url = ""
        self.admin_token = ""
        self.pki = self.workdir / "pki"
        self.ca_file = self.pki / "ca.crt"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self._ssl: ssl.SSLContext | None = None

    # -- lifecycle -------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = ensure_binaries()
        return self._bin_dir

    @property
    def kubectl_path(self) -> str:
        if self._kubectl is None:
            built = self.bin_dir / "kubectl"
            self._kubectl = str(built) if built.exists() else (shutil.which("kubectl") or "kubectl")
        return self._kubectl

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        bins = self.bin_dir
        for b in ("etcd", "kube-apiserver"):
            if not (bins / b).exists():
                raise ControlPlaneError(f"missing {bins / b}; run {ENSURE_SH}")
        try:
            self._make_pki()
            self._start_with_retries(self._start_etcd, "etcd")
            self._start_with_retries(self._start_apiserver, "kube-apiserver")
            write_kubeconfig(
                self.kubeconfig,
                server=self.server,
                ca_file=self.ca_file,
                user=ADMIN_USER,
                token=self.admin_token,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop apiserver then etcd (terminate, wait, kill). Idempotent."""
        while self._procs:
            self._procs.pop().stop()

    def _start_with_retries(self, fn: Any, name: str, attempts: int = 3) -> None:
        # Free ports are picked then released, so another process can race us
        # to them; a retry with new ports covers that.
        last: Exception | None = None
        for _ in range(attempts):
            try:
                fn()
                return
            except _PortInUse as e:
                last = e
        raise ControlPlaneError(f"{name}: could not bind a free port: {last}")

    # -- pki ---------------------------------------------------------------

    def _make_pki(self) -> None:
        p = self.pki
        p.mkdir(parents=True, exist_ok=True)
        if (p / "apiserver.crt").exists():
            return
        (p / "san.cnf").write_text(
            "[req]\ndistinguished_name=dn\n[dn]\n"
            "[ext]\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            f"DNS:kubernetes.default.svc.cluster.local,IP:{KUBERNETES_SERVICE_IP}"
            + (f",IP:{self.advertise_address}" if self.advertise_address else "")
            + "\n"
        )
        # Arguments contain no spaces, so plain split() is exact.
        for command in (
            "req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt"
            " -subj /CN=edge-pop-test-ca",
            "req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr"
            " -subj /CN=kube-apiserver",
            "x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650"
            " -out apiserver.crt -extfile san.cnf -extensions ext",
            # The API server's client certificate towards kubelets (logs, exec).
            "req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr"
            " -subj /O=system:masters/CN=kube-apiserver-kubelet-client",
            "x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
            " -days 3650 -out kubelet-client.crt",
            "genrsa -out sa.key 2048",
            "rsa -in sa.key -pubout -out sa.pub",
        ):
            _openssl(*command.split(), cwd=p)

    # -- etcd --------------------------------------------------------------

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)  # a fresh cluster every start
        proc = _Proc(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=edge-pop",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=edge-pop={peer_url}",
                "--unsafe-no-fsync=true",  # test data only; much faster on slow disks
                "--log-level=warn",
            ],
            self.workdir / "etcd.log",
            self.workdir,
        )
        self._procs.append(proc)
        self._wait(proc, self._etcd_healthy, "etcd", timeout=30)

    def _etcd_healthy(self) -> bool:
        try:
            health = f"{self.etcd_url}/health"  # our own http:// URL
            with urllib.request.urlopen(health, timeout=2) as r:  # noqa: S310
                return bool(json.load(r).get("health") == "true")
        except (OSError, ValueError):
            return False

    # -- kube-apiserver -------------------------------------------------------

    def _start_apiserver(self) -> None:
        port = free_port()
        address = self.advertise_address or "127.0.0.1"
        self.server = f"https://{address}:{port}"
        if not self.admin_token:
            self.admin_token = os.urandom(24).hex()
        tokens = self.pki / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        p = self.pki
        proc = _Proc(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={address}",
                f"--advertise-address={address}",
                f"--secure-port={port}",
                f"--cert-dir={p}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={p / 'kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'kubelet-client.key'}",
                *(NODE_APISERVER_ARGS if self.advertise_address else API_ONLY_APISERVER_ARGS),
                "--v=1",
                *self.extra_apiserver_args,
            ],
            self.workdir / "kube-apiserver.log",
            self.workdir,
        )
        self._procs.append(proc)
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        self._wait(proc, self._apiserver_ready, "kube-apiserver", timeout=self.startup_timeout)

    def _apiserver_ready(self) -> bool:
        try:
            status, body = self._request("GET", "/readyz")
            if status != 200 or body.strip() != b"ok":
                return False
            # The bootstrap controller creates "default" shortly after readyz.
            status, _ = self._request("GET", "/api/v1/namespaces/default")
            return status == 200
        except (OSError, http.client.HTTPException):
            return False

    def _wait(self, proc: _Proc, ready: Any, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                self._procs.remove(proc)
                proc.stop()
                log = _tail(proc.log)
                if "address already in use" in log:
                    raise _PortInUse(log.splitlines()[-1] if log else "")
                raise ControlPlaneError(
                    f"{name} exited with {proc.popen.returncode}; log {proc.log}:\n{log}"
                )
            if ready():
                return
            time.sleep(0.25)
        raise ControlPlaneError(
            f"{name} not ready after {timeout:.0f}s; log {proc.log}:\n{_tail(proc.log)}"
        )

    # -- API helpers ---------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        # self.server is our own https:// URL.
        req = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=10) as r:  # noqa: S310
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        ok: Sequence[int] = (200, 201),
    ) -> Any:
        """JSON REST call as admin (or ``token``); raises ApiError unless status in ``ok``."""
        status, raw = self._request(method, path, body, token=token)
        if status not in ok:
            raise ApiError(status, method, path, raw.decode(errors="replace"))
        return json.loads(raw) if raw else None

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (admin unless ``kubeconfig``)."""
        argv = [self.kubectl_path, f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def service_account_token(
        self, name: str, namespace: str = "default", *, expiration_seconds: int = 3600
    ) -> str:
        """Create the namespace and ServiceAccount if missing; return a TokenRequest token."""
        self.api(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            ok=(201, 409),
        )
        self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            ok=(201, 409),
        )
        tr = self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        return str(tr["status"]["token"])

    def service_account_kubeconfig(
        self,
        name: str,
        namespace: str = "default",
        *,
        path: Path | None = None,
        expiration_seconds: int = 3600,
    ) -> Path:
        """Kubeconfig authenticating as system:serviceaccount:<namespace>:<name>.

        The account has only the rights that Roles/ClusterRoles bound to it
        give (plus the defaults every authenticated user has, e.g. discovery).
        """
        token = self.service_account_token(name, namespace, expiration_seconds=expiration_seconds)
        path = path or self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        return write_kubeconfig(
            path,
            server=self.server,
            ca_file=self.ca_file,
            user=f"system:serviceaccount:{namespace}:{name}",
            token=token,
            namespace=namespace,
        )

    def logs(self) -> dict[str, str]:
        """Tails of the component logs (for assertion messages)."""
        return {p.name: _tail(p.log) for p in self._procs}


class _PortInUse(ControlPlaneError):
    pass


@contextlib.contextmanager
def control_plane(workdir: Path | None = None, **kwargs: Any) -> Iterator[ControlPlane]:
    """Like ``ControlPlane``, with a temporary workdir when none is given."""
    if workdir is not None:
        with ControlPlane(workdir, **kwargs) as cp:
            yield cp
        return
    with (
        tempfile.TemporaryDirectory(prefix="edge-pop-kube-") as d,
        ControlPlane(Path(d), **kwargs) as cp,
    ):
        yield cp


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start etcd + kube-apiserver on 127.0.0.1 and print the admin "
        "kubeconfig path; stop with Ctrl-C (or SIGTERM)."
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="state + logs directory (default: a new temp dir, kept)",
    )
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=None,
        help="directory with etcd and kube-apiserver (default: run ensure.sh)",
    )
    parser.add_argument(
        "--service-account",
        action="append",
        default=[],
        metavar="NS/NAME",
        help="also write a kubeconfig for this ServiceAccount (repeatable)",
    )
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edge-pop-kube-"))
    bin_dir = args.bin_dir
    if bin_dir is None:
        print("ensuring binaries (first build takes ~15 minutes)...", file=sys.stderr, flush=True)
        bin_dir = ensure_binaries(quiet=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ControlPlane(workdir, bin_dir=bin_dir) as cp:
        print(f"server:     {cp.server}")
        print(f"etcd:       {cp.etcd_url}")
        print(f"logs:       {workdir}/{{etcd,kube-apiserver}}.log")
        for spec in args.service_account:
            ns, _, name = spec.rpartition("/")
            sa_kubeconfig = cp.service_account_kubeconfig(name, ns or "default")
            print(f"sa {ns or 'default'}/{name}: {sa_kubeconfig}")
        print(f"kubeconfig: {cp.kubeconfig}")
        print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
        while not stop.wait(1):
            if not all(p.alive() for p in cp._procs):
                print("a component exited; see logs", file=sys.stderr)
                return 1
        print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
