"""etcd + kube-apiserver + kube-controller-manager on loopback (after controller-runtime's
``controlplane/plane.go``, ``apiserver.go``, ``etcd.go`` and ``auth.go``).

:class:`ControlPlane` makes the certificates (a cluster CA for serving and client certificates, a
front-proxy CA for the aggregation layer), picks free ports, starts etcd, then kube-apiserver with
RBAC, the default admission chain, the request-header (front-proxy) flags and an audit log, then
kube-controller-manager running only the garbage collector and the namespace controller. It writes a
kubeconfig per identity (:meth:`ControlPlane.kubeconfig_for`). ``stop()`` unwinds in reverse order
and removes the temporary directory.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import assets as _assets
from .certs import TinyCA, signing_key
from .client import ApiClient
from .ports import suggest_port
from .process import ManagedProcess, ProcessError, flags, http_ok

#: The controllers kube-controller-manager runs (names as its ``--controllers`` flag spells them
#: since v1.30; checked against ``kube-controller-manager --help`` of the built v1.35).
KCM_CONTROLLERS = ("garbage-collector-controller", "namespace-controller")
#: kube-apiserver identity of the aggregation layer's client certificate (``--requestheader-allowed-names``).
FRONT_PROXY_CLIENT = "front-proxy-client"
ADMIN_USER = "kovc-envtest-admin"
#: The apiserver's client identity toward kubelets (kubeadm's name for it).
KUBELET_CLIENT = "kube-apiserver-kubelet-client"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "Metadata"},
    ],
}


@dataclass
class Binaries:
    """The programs one control plane runs."""

    kube_apiserver: Path
    etcd: Path
    kube_controller_manager: Path | None
    k8s_dir: Path

    @classmethod
    def find(cls, assets_dir: Path | None, kubernetes_version: str | None = None) -> Binaries:
        """In ``assets_dir`` (the kovc cache root, or a directory holding the binaries themselves as
        ``KUBEBUILDER_ASSETS`` does); :class:`~.assets.AssetError` naming ``kovc assets build``."""
        root = assets_dir or _assets.default_dir()
        candidates: list[Path] = []
        if (root / "kube-apiserver").is_file():
            candidates.append(root)
        k8s = root / "k8s"
        if k8s.is_dir():
            dirs = [d for d in k8s.iterdir() if (d / "kube-apiserver").is_file() and (d / "etcd").is_file()]
            if kubernetes_version:
                dirs = [d for d in dirs if d.name.split("-", 1)[0] == kubernetes_version.lstrip("v")]
            candidates += sorted(dirs, key=lambda d: _assets._version_key(d.name.split("-", 1)[0]), reverse=True)
        for d in candidates:
            if (d / "kube-apiserver").is_file() and (d / "etcd").is_file():
                kcm = d / "kube-controller-manager"
                return cls(d / "kube-apiserver", d / "etcd", kcm if kcm.is_file() else None, d)
        wanted = f" {kubernetes_version}" if kubernetes_version else ""
        raise _assets.AssetError(f"no kube-apiserver{wanted} + etcd in {root}: run `kovc assets build` "
                                 f"(or point --assets / KOVC_ASSETS at a directory holding them)")


@dataclass
class Endpoints:
    etcd: str = ""
    apiserver: str = ""
    controller_manager: str = ""


@dataclass
class ControlPlane:
    """One local control plane. ``workdir`` None: a new temporary directory, removed by ``stop()``."""

    binaries: Binaries
    log_dir: Path
    workdir: Path | None = None
    start_timeout: float = 60.0
    controller_manager: bool = True
    extra_apiserver_flags: dict[str, str | None] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    endpoints: Endpoints = field(default_factory=Endpoints)

    def __post_init__(self) -> None:
        self._own_workdir = self.workdir is None
        self.dir = Path(tempfile.mkdtemp(prefix="kovc-envtest-")) if self.workdir is None else self.workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = TinyCA("kovc-envtest-ca")
        self.front_proxy_ca = TinyCA("kovc-envtest-front-proxy-ca")
        self.processes: list[ManagedProcess] = []
        self.pki = self.dir / "pki"
        self.admin_kubeconfig = self.dir / "admin.kubeconfig"

    # ---- certificates and kubeconfigs -----------------------------------------------------------

    def _write_pki(self) -> None:
        pki = self.pki
        pki.mkdir(parents=True, exist_ok=True)
        (pki / "ca.crt").write_bytes(self.ca.cert_pem)
        (pki / "front-proxy-ca.crt").write_bytes(self.front_proxy_ca.cert_pem)
        self.ca.serving("kube-apiserver", ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                           "kubernetes.default.svc.cluster.local", "10.0.0.1"]
                        ).write(pki, "apiserver")
        self.front_proxy_ca.client(FRONT_PROXY_CLIENT).write(pki, "front-proxy-client")
        self.ca.client(KUBELET_CLIENT, ["kubeadm:cluster-admins"]).write(pki, "apiserver-kubelet-client")
        signing_key().write(pki, "sa")  # sa.crt holds the public key
        (pki / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))

    def kubeconfig_for(self, user: str, groups: Sequence[str] = (), name: str | None = None) -> Path:
        """A kubeconfig authenticating as ``user`` in ``groups`` (a client certificate of the cluster CA)."""
        stem = name or user.replace(":", "_")
        crt, key = self.ca.client(user, groups).write(self.pki / "users", stem)
        path = self.dir / f"{stem}.kubeconfig"
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "envtest", "preferences": {},
            "clusters": [{"name": "envtest", "cluster": {"server": self.endpoints.apiserver,
                                                         "certificate-authority": str(self.pki / "ca.crt")}}],
            "users": [{"name": stem, "user": {"client-certificate": str(crt), "client-key": str(key)}}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": stem}}],
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def admin_client(self) -> ApiClient:
        return ApiClient.from_kubeconfig(self.admin_kubeconfig)

    def _tls_context(self, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if client:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        return ctx

    # ---- flags --------------------------------------------------------------------------------------

    def etcd_flags(self, client_port: int, peer_port: int, data_dir: Path) -> list[str]:
        client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        return flags({
            "name": "kovc", "data-dir": str(data_dir), "listen-client-urls": client, "advertise-client-urls": client,
            "listen-peer-urls": peer, "initial-advertise-peer-urls": peer, "initial-cluster": f"kovc={peer}",
            "unsafe-no-fsync": "true", "log-level": "warn", "quota-backend-bytes": str(2 << 30),
        })

    def apiserver_flags(self, port: int, etcd_url: str, audit_log: Path) -> list[str]:
        pki = self.pki
        return flags({
            "etcd-servers": etcd_url,
            "bind-address": "127.0.0.1",
            "advertise-address": "127.0.0.1",
            "secure-port": str(port),
            "cert-dir": str(self.dir / "apiserver-certs"),
            "tls-cert-file": str(pki / "apiserver.crt"),
            "tls-private-key-file": str(pki / "apiserver.key"),
            "client-ca-file": str(pki / "ca.crt"),
            "service-cluster-ip-range": SERVICE_CLUSTER_IP_RANGE,
            "allow-privileged": "true",
            "authorization-mode": "RBAC",
            # No ServiceAccount controller runs, so no namespace gets its `default` account (envtest
            # disables the plugin for the same reason); every other default plugin stays on.
            "disable-admission-plugins": "ServiceAccount",
            "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
            "service-account-key-file": str(pki / "sa.crt"),
            "service-account-signing-key-file": str(pki / "sa.key"),
            "endpoint-reconciler-type": "none",
            # Aggregation layer (front proxy): the apiserver's client cert toward extension servers and
            # the CA + names it trusts for X-Remote-* headers.
            "requestheader-client-ca-file": str(pki / "front-proxy-ca.crt"),
            "requestheader-allowed-names": FRONT_PROXY_CLIENT,
            "requestheader-username-headers": "X-Remote-User",
            "requestheader-group-headers": "X-Remote-Group",
            "requestheader-extra-headers-prefix": "X-Remote-Extra-",
            "proxy-client-cert-file": str(pki / "front-proxy-client.crt"),
            "proxy-client-key-file": str(pki / "front-proxy-client.key"),
            "enable-aggregator-routing": "false",
            # pods/log, exec and port-forward go to the node's kubelet API: by InternalIP (a simulated
            # node's kubelet stand-in listens where the node's InternalIP and kubeletEndpoint say), with
            # the apiserver's kubelet client certificate.
            "kubelet-preferred-address-types": "InternalIP,Hostname",
            "kubelet-client-certificate": str(pki / "apiserver-kubelet-client.crt"),
            "kubelet-client-key": str(pki / "apiserver-kubelet-client.key"),
            "audit-policy-file": str(pki / "audit-policy.yaml"),
            "audit-log-path": str(audit_log),
            "audit-log-format": "json",
            "audit-log-mode": "batch",
            "audit-log-batch-max-wait": "1s",
            **self.extra_apiserver_flags,
        })

    def controller_manager_flags(self, port: int, kubeconfig: Path) -> list[str]:
        return flags({
            "kubeconfig": str(kubeconfig),
            "controllers": ",".join(KCM_CONTROLLERS),
            "leader-elect": "false",
            "bind-address": "127.0.0.1",
            "secure-port": str(port),
            "cert-dir": str(self.dir / "kcm-certs"),
            "use-service-account-credentials": "false",
            "concurrent-gc-syncs": "5",
            "concurrent-namespace-syncs": "5",
        })

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything (each step timed in :attr:`timings`); :class:`ProcessError` (one line with
        the failing program's last log lines) after stopping what had started."""
        t0 = time.monotonic()
        try:
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            self.timings["apiserver+etcd ready"] = time.monotonic() - t0
            self._wait_default_namespace()
            if self.controller_manager and self.binaries.kube_controller_manager is not None:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.timings["control plane ready"] = time.monotonic() - t0

    def _start_etcd(self) -> None:
        client_port, peer_port = suggest_port(), suggest_port()
        shm = Path("/dev/shm")
        data = Path(tempfile.mkdtemp(prefix="kovc-etcd-", dir=shm if shm.is_dir() else self.dir))
        self._etcd_data = data
        self.endpoints.etcd = f"http://127.0.0.1:{client_port}"
        proc = ManagedProcess("etcd", [str(self.binaries.etcd), *self.etcd_flags(client_port, peer_port, data)],
                              log_path=self.log_dir / "etcd.log", health=http_ok(f"{self.endpoints.etcd}/health"),
                              start_timeout=self.start_timeout, cwd=self.dir)
        self.processes.append(proc)
        self.timings["etcd ready"] = proc.start()

    def _start_apiserver(self) -> None:
        port = suggest_port()
        self.endpoints.apiserver = f"https://127.0.0.1:{port}"
        self.admin_kubeconfig = self.kubeconfig_for(ADMIN_USER, ["system:masters"], name="admin")
        admin_crt, admin_key = self.pki / "users" / "admin.crt", self.pki / "users" / "admin.key"
        argv = [str(self.binaries.kube_apiserver),
                *self.apiserver_flags(port, self.endpoints.etcd, self.log_dir / "kube-apiserver-audit.jsonl")]
        proc = ManagedProcess("kube-apiserver", argv, log_path=self.log_dir / "kube-apiserver.log",
                              health=http_ok(f"{self.endpoints.apiserver}/readyz",
                                             self._tls_context((admin_crt, admin_key))),
                              start_timeout=self.start_timeout, cwd=self.dir)
        self.processes.append(proc)
        self.timings["kube-apiserver ready"] = proc.start()

    def _wait_default_namespace(self, timeout: float = 15.0) -> None:
        client = self.admin_client()
        deadline = time.monotonic() + timeout
        while client.get("/api/v1/namespaces/default") is None:
            if time.monotonic() > deadline:
                raise ProcessError(f"kube-apiserver {self.endpoints.apiserver}: namespace default not created "
                                   f"after {timeout:.0f} s")
            time.sleep(0.05)

    def _start_controller_manager(self) -> None:
        assert self.binaries.kube_controller_manager is not None
        port = suggest_port()
        self.endpoints.controller_manager = f"https://127.0.0.1:{port}"
        kubeconfig = self.kubeconfig_for("system:kube-controller-manager", ["system:masters"],
                                         name="kube-controller-manager")
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its self-signed serving cert; only /healthz is read
        proc = ManagedProcess("kube-controller-manager",
                              [str(self.binaries.kube_controller_manager),
                               *self.controller_manager_flags(port, kubeconfig)],
                              log_path=self.log_dir / "kube-controller-manager.log",
                              health=http_ok(f"{self.endpoints.controller_manager}/healthz", insecure),
                              start_timeout=self.start_timeout, cwd=self.dir)
        self.processes.append(proc)
        self.timings["kube-controller-manager ready"] = proc.start()

    def add_process(self, proc: ManagedProcess) -> float:
        """Start another program that belongs to this control plane (stopped before the apiserver)."""
        self.processes.append(proc)
        return proc.start()

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        data = getattr(self, "_etcd_data", None)
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
        if self._own_workdir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {"endpoints": vars(self.endpoints), "timings": {k: round(v, 2) for k, v in self.timings.items()},
                "workdir": str(self.dir), "logs": str(self.log_dir)}

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
