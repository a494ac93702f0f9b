"""``--backend existing --kubeconfig K [--context C]``: a cluster someone else installed.

Installs nothing and writes nothing: ``provision`` only reads (GETs with the suite's user agent, see
:mod:`.detect`) and records what runs there — server version, kube-ovn-controller and kube-ovn-webhook
image tags (separately: the webhook's decides admission), KubeVirt version, keep-vm-ip, the
ValidatingWebhookConfiguration holding ``pod-ip-validating.kube-ovn.io`` — and whether it is the
simulated cluster (``+kovc-sim`` in ``/version``). The run itself creates, changes and deletes only
objects labelled with its run id (``kovc.io/run``), which the plugin and the scenario library handle.

It refuses to start (:class:`BackendError`, one line, exit 2) when the kubeconfig is unusable, the API
server does not answer within a few seconds, or KubeVirt, Kube-OVN or the webhook is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from . import detect
from .base import BackendError, ClusterInfo
from .install import Log, default_log
from .network import NAD_CRD


class ExistingOptions(Protocol):
    """What the existing backend reads from ``select.BackendOptions`` (read-only)."""

    @property
    def kubeconfig(self) -> str | None: ...

    @property
    def context(self) -> str | None: ...

    @property
    def kube_ovn_version(self) -> str | None: ...

    @property
    def kubevirt_version(self) -> str | None: ...


def default_kubeconfig() -> str:
    """What kubectl would use: ``$KUBECONFIG`` (possibly several files) or ``~/.kube/config``."""
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


class ExistingBackend:
    name = "existing"

    def __init__(self, options: ExistingOptions, *, log: Log | None = None) -> None:
        self.options = options
        self.log = log or default_log
        given = options.kubeconfig
        self.kubeconfig = str(Path(given).expanduser()) if given else default_kubeconfig()
        self.context = options.context

    def plan(self) -> list[str]:
        ctx = f", context {self.context}" if self.context else ", its current context"
        return [
            f"existing backend: kubeconfig {self.kubeconfig}{ctx} (nothing below has been done)",
            "installs nothing, changes nothing; reads (GET only, user agent kovc/<version>):",
            f"  /version (connect timeout {detect.CONNECT_TIMEOUT:.0f}s; '+kovc-sim' marks the simulated "
            "cluster)",
            f"  Deployment {detect.KUBE_OVN_CONTROLLER} (kube-system, else any namespace): image tag, "
            "--keep-vm-ip",
            f"  ValidatingWebhookConfigurations: the one with entry {detect.WEBHOOK_ENTRY}; the Deployment "
            "behind its Service: image tag",
            "  KubeVirt CR (kubevirts.kubevirt.io, any namespace): observedKubeVirtVersion, phase, Available",
            "  nodes: kubelet versions",
            f"  attachment networks: none is looked for - the attachment scenarios create their own "
            f"NetworkAttachmentDefinition and Subnet in their namespaces where the API serves "
            f"{NAD_CRD} (Multus), else they are not applicable",
            "refuses to start if the kubeconfig is unusable, the API unreachable, or KubeVirt, Kube-OVN or "
            "the webhook is missing",
            "the run then creates, changes and deletes only objects labelled kovc.io/run=<run id>",
        ]

    def provision(self, workdir: Path) -> ClusterInfo:
        api = detect.connect(self.kubeconfig, self.context)
        try:
            det = detect.detect(api)
        finally:
            api.close()
        missing = det.missing
        if missing:
            raise BackendError(f"existing cluster ({self.kubeconfig}): {'; '.join(missing)}")
        info = detect.cluster_info(det, backend=self.name, kubeconfig=self.kubeconfig, context=self.context)
        requested = [("--kube-ovn-version", self.options.kube_ovn_version, info.versions.kube_ovn_webhook,
                      "the webhook"),
                     ("--kubevirt-version", self.options.kubevirt_version, info.versions.kubevirt,
                      "KubeVirt")]
        for flag, wanted, seen, where in requested:
            if wanted and wanted != seen:
                info.warnings.append(f"{flag} {wanted} was given but {where} runs {seen or '(unknown)'}; "
                                     "the run tests what the cluster runs")
        self.log(f"existing cluster: Kubernetes {info.versions.kubernetes}, kube-ovn-controller "
                 f"{info.versions.kube_ovn_controller}, webhook {info.versions.kube_ovn_webhook} "
                 f"({info.webhook_configuration}), KubeVirt {info.versions.kubevirt}, keep-vm-ip "
                 f"{info.keep_vm_ip}{', simulated' if info.simulated else ''}")
        return info

    def upgrade(self, info: ClusterInfo, target: str, kube: Any, timeout: float) -> Any:
        """The suite never upgrades a cluster it does not own: the operator does, between the phases."""
        raise BackendError("existing cluster: the operator performs the upgrade; run `kovc upgrade prepare`, "
                           "upgrade Kube-OVN, then `kovc upgrade verify --run-id <id>`")

    def teardown(self, info: ClusterInfo) -> None:
        """Nothing: the backend created nothing."""
