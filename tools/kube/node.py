"""One real Kubernetes node beside a ``ControlPlane``: pods run, for tests.

containerd (Debian's 1.6, runc) and the kubelet run pods; kube-controller-manager
(StatefulSets, PersistentVolume binding, garbage collection, ServiceAccounts) and
kube-scheduler place them; kube-proxy (iptables) makes ClusterIP Services work, so a
pod reaches the API server at ``kubernetes.default``'s IP as in any cluster; CoreDNS
(built by ``ensure.sh``) answers Service and pod names (``cluster.local``) as a cluster's
DNS add-on does, so a StatefulSet's pods find each other by name. Pods sit
on a CNI bridge (``edgepop0``, 10.244.0.0/24); the host is 10.244.0.1 on it, which is
where pods reach services that run on the host (origins, Redis) and where the tests
reach pods (by pod IP).

Images cannot be pulled here: the sandbox image is a static ``pause`` built from
``pause/pause.c``, and other images are copied from containers-storage (buildah,
podman) into containerd with :meth:`Node.load_image`. containerd's image store lives
in the cache (``$EDGE_POP_CACHE/containerd``), so an unchanged image is not copied
again; everything else (containers, pod netns, mounts, iptables rules, the bridge,
the kubelet's cgroups) is removed on :meth:`Node.stop`, and leftovers of a run that
was killed are removed at the next start.

    with Cluster(workdir) as cluster:          # ControlPlane + Node
        cluster.node.load_image("localhost/edge-pop:0.1.0")
        cluster.control_plane.kubectl("apply", "-f", "app.yaml")
        cluster.node.local_volumes(2, storage_class="edge-pop-local")

Standard library only (Python 3.11); needs root, ``containerd``, ``runc``,
``buildah``, the CNI plugins in ``/usr/lib/cni``, ``iptables``, ``conntrack`` and
``gcc`` (Debian packages; ``ensure.sh`` installs them).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parent))
from control_plane import (
    ControlPlane,
    ControlPlaneError,
    _Proc,
    _tail,
    ensure_binaries,
    free_port,
)

HERE = Path(__file__).resolve().parent
NODE_NAME = "edge-pop-node"
BRIDGE = "edgepop0"
POD_CIDR = "10.244.0.0/24"
HOST_IP = "10.244.0.1"
PAUSE_IMAGE = "localhost/edge-pop-pause:1"
CNI_PLUGINS = Path("/usr/lib/cni")
# containerd 1.6 keeps pod network namespaces here, whatever its state directory.
NETNS_DIR = Path("/var/run/netns")
CONTROLLERS = ("kube-controller-manager", "kube-scheduler")
CLUSTER_DOMAIN = "cluster.local"
# Where the running node notes its workdir, so that a killed run is cleaned up next time.
RUN_RECORD = Path("/run/edge-pop-kube-node")


class NodeError(ControlPlaneError):
    """A node component failed; the message names its log."""


def cache_root() -> Path:
    return Path(os.environ.get("EDGE_POP_CACHE", Path.home() / ".cache" / "edge-pop"))


def _run(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise NodeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _unmount_all(root: Path) -> None:
    for point in _mounts_under(root):
        _run("umount", "--lazy", point, check=False)


class Node:
    """containerd, kubelet, kube-proxy, CoreDNS, kube-controller-manager and kube-scheduler.

    ``control_plane`` must have been made with ``advertise_address=HOST_IP`` and be
    started after :meth:`prepare_network` (the API server binds to the bridge's address).
    """

    def __init__(self, control_plane: ControlPlane, workdir: Path) -> None:
        self.control_plane = control_plane
        self.workdir = Path(workdir).resolve()
        self.containerd_root = cache_root() / "containerd"
        self.socket = self.workdir / "containerd.sock"
        self._procs: list[_Proc] = []

    # -- lifecycle -------------------------------------------------------

    @staticmethod
    def prepare_network() -> None:
        """Remove a killed run's leftovers, then create the bridge with the host's address."""
        if RUN_RECORD.exists():
            record = json.loads(RUN_RECORD.read_text())
            _clean_up(Path(record["workdir"]), Path(record["bin_dir"]))
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        record = {"workdir": str(self.workdir), "bin_dir": str(self.control_plane.bin_dir)}
        RUN_RECORD.write_text(json.dumps(record) + "\n")
        try:
            self._start_containerd()
            self._ensure_pause_image()
            self._remove_stale_containers()
            self._start_kubelet()
            self._start_kube_proxy()
            self._start_cluster_dns()
            self._start_controllers()
            self._wait_node_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Delete the pods, stop every component, and remove what they left. Idempotent."""
        # Controllers first, or StatefulSets would recreate the pods deleted below.
        for proc in [p for p in self._procs if p.name in CONTROLLERS]:
            self._procs.remove(proc)
            proc.stop()
        with contextlib.suppress(Exception):
            self._delete_pods_gracefully(timeout=30)
        while self._procs:
            self._procs.pop().stop()
        _clean_up(self.workdir, self.control_plane.bin_dir)

    # -- containerd --------------------------------------------------------

    def _start_containerd(self) -> None:
        cni_dir = self.workdir / "cni"
        cni_dir.mkdir(exist_ok=True)
        (cni_dir / "10-edge-pop.conflist").write_text(json.dumps(_cni_config(self.workdir)))
        config = self.workdir / "containerd.toml"
        config.write_text(
            _containerd_config(
                root=self.containerd_root,
                state=self.workdir / "containerd-state",
                socket=self.socket,
                cni_dir=cni_dir,
            )
        )
        self._spawn("containerd", ["containerd", f"--config={config}"])
        self._wait(lambda: self._ctr("version", check=False).returncode == 0, 30, "containerd")

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ctr", f"--address={self.socket}", "--namespace=k8s.io", *args, check=check)

    def _image_ids(self) -> dict[str, str]:
        listing = self._ctr("images", "list").stdout.splitlines()[1:]
        return {line.split()[0]: line.split()[2] for line in listing if line.strip()}

    def load_image(self, ref: str) -> None:
        """Copy ``ref`` from containers-storage into containerd, unless it is there already."""
        image_id = _run("buildah", "inspect", "--type=image", "--format={{.FromImageID}}", ref)
        wanted = image_id.stdout.strip()
        if self._loaded_config_digest(ref) == f"sha256:{wanted}":
            return
        archive = self.workdir / "image.tar"
        archive.unlink(missing_ok=True)
        _run("buildah", "push", "--quiet", ref, f"docker-archive:{archive}:{ref}", timeout=600)
        try:
            self._ctr("images", "import", str(archive))
        finally:
            archive.unlink(missing_ok=True)

    def _loaded_config_digest(self, ref: str) -> str | None:
        """The image ID (config digest) containerd holds under ``ref``, if any."""
        manifest_digest = self._image_ids().get(ref)
        if manifest_digest is None:
            return None
        raw = self._ctr("content", "get", manifest_digest, check=False)
        if raw.returncode != 0:
            return None
        manifest: dict[str, Any] = json.loads(raw.stdout)
        return str(manifest.get("config", {}).get("digest") or "") or None

    def _ensure_pause_image(self) -> None:
        if _run("buildah", "inspect", "--type=image", PAUSE_IMAGE, check=False).returncode:
            binary = self.workdir / "pause"
            source = HERE / "pause" / "pause.c"
            _run("gcc", "-static", "-Os", "-Wall", "-o", str(binary), str(source))
            single_binary_image(PAUSE_IMAGE, binary, "/pause", user="65535")
        self.load_image(PAUSE_IMAGE)

    def _remove_stale_containers(self) -> None:
        """The image store outlives a run; containers of a killed run are removed here."""
        for task in self._ctr("tasks", "list", "--quiet").stdout.split():
            self._ctr("tasks", "kill", "--all", "--signal=SIGKILL", task, check=False)
            self._ctr("tasks", "delete", "--force", task, check=False)
        for container in self._ctr("containers", "list", "--quiet").stdout.split():
            self._ctr("containers", "delete", container, check=False)

    # -- kubelet, kube-proxy, controllers ------------------------------------

    def _start_kubelet(self) -> None:
        root = self.workdir / "kubelet"
        root.mkdir(exist_ok=True)
        config = self.workdir / "kubelet-config.json"
        config.write_text(
            json.dumps(
                _kubelet_config(self.workdir, self.socket, client_ca=self.control_plane.ca_file),
                indent=2,
            )
        )
        self._spawn(
            "kubelet",
            [
                str(self.control_plane.bin_dir / "kubelet"),
                f"--config={config}",
                f"--kubeconfig={self.control_plane.kubeconfig}",
                f"--root-dir={root}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={HOST_IP}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self) -> None:
        self._spawn(
            "kube-proxy",
            [
                str(self.control_plane.bin_dir / "kube-proxy"),
                f"--kubeconfig={self.control_plane.kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                f"--cluster-cidr={POD_CIDR}",
                "--proxy-mode=iptables",
                # Leave the host's conntrack sysctls alone.
                "--conntrack-max-per-core=0",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--healthz-bind-address=127.0.0.1:{free_port()}",
                "--v=1",
            ],
        )

    def _start_cluster_dns(self) -> None:
        """CoreDNS on the bridge's address, answering Service and pod names from the API
        server, as a cluster's DNS add-on does; the kubelet points every pod at it."""
        corefile = self.workdir / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {HOST_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} {{
        kubeconfig {self.control_plane.kubeconfig}
    }}
    forward . /etc/resolv.conf
}}
"""
        )
        coredns = self.control_plane.bin_dir / "coredns"
        self._spawn("coredns", [str(coredns), "-conf", str(corefile)])

    def _start_controllers(self) -> None:
        cp = self.control_plane
        self._spawn(
            "kube-controller-manager",
            [
                str(cp.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={cp.kubeconfig}",
                f"--service-account-private-key-file={cp.pki / 'sa.key'}",
                f"--root-ca-file={cp.ca_file}",
                "--leader-elect=false",
                "--secure-port=0",
                "--controllers=*",
                # Pods on a node that stops reporting are evicted after 30 s, not 5 min.
                "--node-monitor-grace-period=30s",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(cp.bin_dir / "kube-scheduler"),
                f"--kubeconfig={cp.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )

    def _wait_node_ready(self) -> None:
        def ready() -> bool:
            status, raw = self.control_plane._request("GET", f"/api/v1/nodes/{NODE_NAME}")
            if status != 200:
                return False
            conditions = json.loads(raw).get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        self._wait(ready, 120, f"node {NODE_NAME} Ready")

    # -- volumes -----------------------------------------------------------------

    def local_volumes(self, count: int, *, storage_class: str, size: str = "1Gi") -> list[str]:
        """Create ``count`` local PersistentVolumes (directories under the workdir)."""
        names = []
        existing = len(list((self.workdir / "volumes").glob("pv-*")))
        for index in range(existing, existing + count):
            name = f"pv-{index}"
            path = self.workdir / "volumes" / name
            path.mkdir(parents=True)
            self.control_plane.api(
                "POST",
                "/api/v1/persistentvolumes",
                _local_volume(name, path, storage_class=storage_class, size=size),
            )
            names.append(name)
        return names

    # -- processes -----------------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str]) -> _Proc:
        proc = _Proc(name, argv, self.workdir / f"{name}.log", self.workdir)
        self._procs.append(proc)
        return proc

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return
            time.sleep(0.25)
        raise NodeError(f"no {what} after {timeout:.0f}s:\n{self.log_tails()}")

    def _check_alive(self) -> None:
        for proc in self._procs:
            if not proc.alive():
                raise NodeError(
                    f"{proc.name} exited with {proc.popen.returncode}; log {proc.log}:\n"
                    f"{_tail(proc.log)}"
                )

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log})\n{_tail(p.log, 15)}" for p in self._procs)

    def _delete_pods_gracefully(self, timeout: float) -> None:
        """Let the kubelet stop every pod, so that CNI and volume teardown run as usual."""
        cp = self.control_plane
        namespaces = cp.api("GET", "/api/v1/namespaces")["items"]
        for namespace in namespaces:
            name = namespace["metadata"]["name"]
            cp.api("DELETE", f"/api/v1/namespaces/{name}/pods?gracePeriodSeconds=1", ok=(200,))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._ctr("tasks", "list", "--quiet", check=False).stdout.split():
                return
            time.sleep(0.5)


def single_binary_image(ref: str, binary: Path, path: str, *, user: str) -> None:
    """Commit an image ``FROM scratch`` holding one static binary, its entrypoint."""
    container = _run("buildah", "from", "scratch").stdout.strip()
    try:
        _run("buildah", "copy", container, str(binary), path)
        _run("buildah", "config", "--entrypoint", json.dumps([path]), "--user", user, container)
        _run("buildah", "commit", "--quiet", container, ref)
    finally:
        _run("buildah", "rm", container, check=False)


def _clean_up(workdir: Path, bin_dir: Path) -> None:
    """Remove what a node leaves on the host, whether it stopped or was killed."""
    # Processes first (containerd's shims name its socket, which is in the workdir),
    # then the containers' init processes (the rest of each container dies with them).
    for name in (
        "kubelet",
        "kube-proxy",
        "containerd",
        "kube-controller-manager",
        "kube-scheduler",
        "coredns",
    ):
        _run("pkill", "--full", "--signal=KILL", f"{name}.*{workdir}", check=False)
    for pid_dir in (workdir / "containerd-state").glob("io.containerd.runtime.v2.task/k8s.io/*"):
        with contextlib.suppress(OSError):
            pid = int((pid_dir / "init.pid").read_text())
            os.kill(pid, 9)
    _unmount_all(workdir)
    _unmount_all(cache_root() / "containerd")
    for netns in NETNS_DIR.glob("cni-*"):
        _run("umount", "--lazy", str(netns), check=False)
        netns.unlink(missing_ok=True)
    _run("ip", "link", "delete", BRIDGE, check=False)
    # kube-proxy's own cleanup removes its chains and the jumps to them (IPv4 and IPv6).
    _run(str(bin_dir / "kube-proxy"), "--cleanup", check=False)
    _remove_kubelet_chains()
    _remove_kubelet_cgroups()
    RUN_RECORD.unlink(missing_ok=True)


def _remove_kubelet_chains() -> None:
    """The chains the kubelet adds to IPv4 and IPv6 tables (kube-proxy leaves them)."""
    for tool in ("iptables", "ip6tables"):
        for hook in ("INPUT", "OUTPUT"):
            _run(tool, "-t", "filter", "-D", hook, "-j", "KUBE-FIREWALL", check=False)
        for table, chain in (
            ("filter", "KUBE-FIREWALL"),
            ("filter", "KUBE-KUBELET-CANARY"),
            ("nat", "KUBE-KUBELET-CANARY"),
            ("mangle", "KUBE-KUBELET-CANARY"),
            ("mangle", "KUBE-IPTABLES-HINT"),
        ):
            _run(tool, "-t", table, "-F", chain, check=False)
            _run(tool, "-t", table, "-X", chain, check=False)


def _remove_kubelet_cgroups() -> None:
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if top.is_dir():
            for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def _cni_config(workdir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "edge-pop",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": HOST_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(workdir / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _containerd_config(*, root: Path, state: Path, socket: Path, cni_dir: Path) -> str:
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
{cri}
  sandbox_image = "{PAUSE_IMAGE}"
  # This VM's root may not lower oom_score_adj below its own (DESIGN §5).
  restrict_oom_score_adj = true
  disable_apparmor = true
  [{cri[1:-1]}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri[1:-1]}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri[1:-1]}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri[1:-1]}.cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{cni_dir}"
"""


def _kubelet_config(workdir: Path, socket: Path, *, client_ca: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{socket}",
        "cgroupDriver": "cgroupfs",
        # cgroup v1 is what this VM mounts; Kubernetes 1.34 still runs on it.
        "failCgroupV1": False,
        "failSwapOn": False,
        "address": HOST_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "podLogsDir": str(workdir / "pod-logs"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "resolvConf": "/etc/resolv.conf",
        "clusterDNS": [HOST_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
    }


def _local_volume(name: str, path: Path, *, storage_class: str, size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [NODE_NAME],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


class Cluster:
    """A ``ControlPlane`` on the bridge's address plus a ``Node``: a one-node cluster."""

    def __init__(self, workdir: Path, *, bin_dir: Path | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.control_plane = ControlPlane(
            self.workdir / "control-plane",
            bin_dir=bin_dir or ensure_binaries(),
            advertise_address=HOST_IP,
        )
        self.node = Node(self.control_plane, self.workdir / "node")

    def __enter__(self) -> Self:
        Node.prepare_network()
        try:
            self.control_plane.start()
            self.node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        try:
            self.node.stop()
        finally:
            self.control_plane.stop()


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[Cluster]:
    with Cluster(workdir) as running:
        yield running
