"""What every cluster backend provides, and what the suite learns about the cluster it got.

Backends (``kind``, ``existing``, ``sim``) implement :class:`Backend`. The pytest plugin picks one by
``--backend`` and hands scenarios only a :class:`ClusterInfo`; scenarios never import a backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


class BackendError(Exception):
    """A backend could not provide a usable cluster. ``str(err)`` is the one line shown to the user
    (exit code 2); it names the step, the object and what was seen."""


@dataclass
class Versions:
    kubernetes: str = ""
    kube_ovn_controller: str = ""
    kube_ovn_webhook: str = ""
    kubevirt: str = ""
    kind_node_image: str | None = None


@dataclass
class ClusterInfo:
    """Everything the suite needs to know about the cluster under test (JSON-serialisable, so the
    xdist workers and the report get the same copy)."""

    backend: str
    kubeconfig: str
    context: str | None = None
    simulated: bool = False
    sim_model: str | None = None
    versions: Versions = field(default_factory=Versions)
    #: The ValidatingWebhookConfiguration and entry that carry the pod-IP webhook.
    webhook_configuration: str = "kube-ovn-webhook"
    webhook_name: str = "pod-ip-validating.kube-ovn.io"
    keep_vm_ip: bool | None = None
    warnings: list[str] = field(default_factory=list)
    #: Backend-specific data needed for teardown (pid of a sim server, kind cluster name, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterInfo:
        data = dict(data)
        data["versions"] = Versions(**data.get("versions", {}))
        return cls(**data)


class Backend(Protocol):
    """A way to obtain a cluster. ``provision`` is called once per run (under xdist: by the first
    worker, under a file lock); ``teardown`` once at the end, also after failures and Ctrl-C."""

    name: str

    def plan(self) -> list[str]:
        """Human-readable steps ``provision`` would take, without touching anything."""
        ...

    def provision(self, workdir: Path) -> ClusterInfo:
        """Create or detect the cluster; raise :class:`BackendError` (one line) when it cannot."""
        ...

    def teardown(self, info: ClusterInfo) -> None:
        """Release what ``provision`` created (nothing for ``existing``)."""
        ...

    def upgrade(self, info: ClusterInfo, target: str, kube: Any, timeout: float) -> Any:
        """Upgrade Kube-OVN on the provisioned cluster to ``target`` the way this backend's install
        is upgraded, and return once the rollout is complete (``cluster.upgrade.UpgradeOutcome``);
        :class:`BackendError` (one line) when it cannot (``existing``: the operator upgrades between
        ``kovc upgrade prepare`` and ``verify``)."""
        ...
