"""Kube-OVN's real webhook binary as a child of the local control plane.

Upstream reads its serving certificate from the fixed directory
``/tmp/k8s-webhook-server/serving-certs`` (``cmd/webhook/server.go``) and watches it, so two runs on
one machine would overwrite each other's certificates: a run holds an exclusive lock on that directory
for the webhook's whole life, and a second run is refused with one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .certs import TinyCA
from .controlplane import ControlPlane
from .install import service_account_user
from .ports import suggest_port
from .process import ManagedProcess, http_ok

CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
LOCK_FILE = CERT_DIR.parent / ".kovc-envtest.lock"
#: The ServiceAccount the tag's yamls/webhook.yaml runs the webhook as (``serviceAccountName: ovn``).
SERVICE_ACCOUNT = ("kube-system", "ovn")
#: DNS names of the tag's Certificate for the webhook Service.
SERVICE_NAMES = ("kube-ovn-webhook.kube-system", "kube-ovn-webhook.kube-system.svc",
                 "kube-ovn-webhook.kube-system.svc.cluster.local")


class WebhookBusy(Exception):
    """Another run holds the fixed certificate directory."""


@dataclass
class RealWebhook:
    """``kube-ovn-webhook`` of one tag, serving on 127.0.0.1 with a certificate of its own CA."""

    binary: Path
    version: str
    plane: ControlPlane
    verbosity: int = 3
    port: int = 0
    health_port: int = 0
    ca: TinyCA = field(default_factory=lambda: TinyCA("kovc-kube-ovn-webhook-ca"))
    process: ManagedProcess | None = None
    #: Its log file in the control plane's log dir (a successor of an upgrade logs to its own file).
    log_name: str = "kube-ovn-webhook.log"
    _lock: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _take_lock(self) -> None:
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        fh = LOCK_FILE.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise WebhookBusy(f"Kube-OVN's webhook reads its certificate from the fixed directory {CERT_DIR}, "
                              f"which another envtest run ({holder}) is using: run one envtest run at a time "
                              "per machine") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._lock = fh

    def start(self) -> float:
        """Write its certificates, start it as ``system:serviceaccount:kube-system:ovn`` and wait for
        its ``/readyz``; the seconds it took."""
        if self._lock is None:
            self._take_lock()
        try:
            CERT_DIR.mkdir(parents=True, exist_ok=True)
            pair = self.ca.serving("kube-ovn-webhook", SERVICE_NAMES)
            (CERT_DIR / "tls.crt").write_bytes(pair.cert)
            key = CERT_DIR / "tls.key"
            key.touch(mode=0o600)
            key.write_bytes(pair.key)
            user, groups = service_account_user(*SERVICE_ACCOUNT)
            kubeconfig = self.plane.kubeconfig_for(user, groups, name="kube-ovn-webhook")
            self.port = self.port or suggest_port()
            self.health_port = self.health_port or suggest_port()
            env = dict(os.environ, KUBECONFIG=str(kubeconfig), POD_IP="127.0.0.1")
            self.process = ManagedProcess(
                f"kube-ovn-webhook {self.version}",
                [str(self.binary), f"--port={self.port}", f"--health-probe-port={self.health_port}",
                 f"--v={self.verbosity}"],
                log_path=self.plane.log_dir / self.log_name, env=env, cwd=self.plane.dir,
                health=http_ok(f"http://127.0.0.1:{self.health_port}/readyz"), start_timeout=60.0)
            return self.plane.add_process(self.process)
        except BaseException:
            self.release()
            raise

    def stop_process(self) -> None:
        """Stop the program only (an upgrade's first step): the certificate directory stays locked for
        the successor, and the control plane no longer counts it among its live programs."""
        proc = self.process
        if proc is None:
            return
        with contextlib.suppress(ValueError):
            self.plane.processes.remove(proc)
        proc.stop()

    def successor(self, binary: Path, version: str) -> RealWebhook:
        """The webhook of ``version`` that replaces this one, under the same certificate-directory lock
        (taken over: this one must be stopped first), on a new port, with its own log file."""
        new = RealWebhook(binary, version, self.plane, verbosity=self.verbosity, ca=self.ca,
                          log_name=f"kube-ovn-webhook-{version}.log")
        new._lock, self._lock = self._lock, None
        return new

    def release(self) -> None:
        """Stop it (if running) and give the certificate directory back."""
        if self.process is not None:
            self.process.stop()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                for name in ("tls.crt", "tls.key"):
                    (CERT_DIR / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
