"""Settings of one simulated cluster (``kovc sim serve`` flags, pytest ``--sim-*`` options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .. import versions

#: Wall seconds per modelled second on the simulated cluster: its periodic behaviours (Kube-OVN's 360 s
#: LSP garbage collection) run this much faster, and a *fixed* bound of a requirement (one that
#: ``--timeout-scale`` does not change, e.g. state.ip-released-on-delete's 120 s) is measured on that
#: clock there (``Settings.clock_scale``). 1 on a real cluster.
SIM_CLOCK_SCALE = 0.05

#: kube-ovn-controller's ``--gc-interval`` default (``config.go`` L186 at v1.13.14; ``install.sh``
#: ``GC_INTERVAL=360``), in modelled seconds.
KUBE_OVN_GC_INTERVAL = 360.0
#: Modelled seconds a kube-ovn-controller is down when its Deployment rolls: the old pod's termination
#: (the Deployment runs with hostNetwork and ``maxSurge: 0``, so the new pod waits for it), the new
#: pod's start, informer sync and ``InitIPAM``, and taking the leader lease the old pod released.
CONTROLLER_RESTART = 20.0

#: The pacing of ``kovc sim serve`` (a cluster people poke with kubectl: state changes stay visible).
DEFAULT_STEP_DELAY = 0.005
#: The pacing of suite runs on the simulated cluster: every controller step still yields to the API
#: server (so a busy controller never starves it), but no run waits 5 ms per step. Verdicts do not
#: depend on it (``tests/verdicts/test_releases.py`` runs a release at both paces).
SUITE_STEP_DELAY = 0.001


@dataclass
class SimConfig:
    #: The modelled Kube-OVN release: its webhook policy *and* controller behaviour.
    kube_ovn_version: str = versions.KUBE_OVN_VERSION
    #: Overrides the webhook conflict policy only: a built-in name or ``package.module:callable``.
    #: The controller stays at ``kube_ovn_version`` (the default release unless one is given).
    webhook_policy: str | None = None
    #: ``off`` models a down webhook (failurePolicy Ignore: every pod admitted unchecked).
    webhook: Literal["on", "off"] = "on"
    kubevirt_version: str = versions.KUBEVIRT_VERSION
    kubernetes_version: str = versions.K8S_VERSION
    keep_vm_ip: bool = True
    #: The cluster has a dual-stack subnet (``ovn-dual``, ``10.18.0.0/16,fd00:10:18::/112``): the
    #: dual-stack requirements apply. Off models an IPv4-only cluster (they are then not applicable).
    dual_stack: bool = True
    #: ``ovn-default`` as Kube-OVN's dual-stack install makes it (``dual``: ``10.16.0.0/16,fd00:10:16::/112``,
    #: protocol ``Dual``, install.sh's ``DUAL_STACK=true`` CIDRs) instead of IPv4 only: the cluster
    #: ``kovc run --backend kind --ip-family dual`` installs, as the stand-in kind serves it.
    ovn_default: Literal["ipv4", "dual"] = "ipv4"
    #: Multus is installed (its NetworkAttachmentDefinition CRD served): the attachment-network
    #: requirements apply. Off models a cluster without Multus.
    multus: bool = True
    workers: int = 2
    #: Share of API requests answered 500 / 429 / dropped connection (before or after the write).
    faults: float = 0.0
    #: ``Retry-After`` seconds of a throttled (429) fault: 1 as kube-apiserver's priority and fairness.
    fault_retry_after: int = 1
    seed: int | None = None
    #: Seconds each controller step waits (models real latency; keep small). ``kovc sim serve`` keeps
    #: this default; suite runs use :data:`SUITE_STEP_DELAY` unless ``--sim-step-delay`` says otherwise.
    step_delay: float = DEFAULT_STEP_DELAY
    #: Seconds an Event lives after its last write (kube-apiserver ``--event-ttl``; ``kovc sim serve
    #: --event-ttl``). 0 keeps Events forever.
    event_ttl: float = 3600.0
    #: Modelled packet-loss window of a live migration's switch-over, seconds.
    migration_gap: float = 0.4
    #: Seconds between the old webhook pod's end and the new one serving during an in-place
    #: upgrade (``sim/upgrade.py``; failurePolicy Ignore admits every pod meanwhile).
    upgrade_window: float = 1.0
    #: Seconds no kube-ovn-controller runs while its Deployment rolls during an in-place upgrade
    #: (``sim/upgrade.py``): :data:`CONTROLLER_RESTART` modelled seconds on the sim's clock.
    controller_downtime: float = CONTROLLER_RESTART * SIM_CLOCK_SCALE
    #: Wall seconds between kube-ovn-controller's periodic LSP garbage collections (``markAndCleanLSP``);
    #: 0 disables it, as ``--gc-interval=0`` does. Default: 360 modelled seconds on the sim's clock.
    gc_interval: float = KUBE_OVN_GC_INTERVAL * SIM_CLOCK_SCALE
    audit_log: str | None = None
    #: Append every API request (method, path, media type, body, user agent) and its answer (code,
    #: reason, the answered object's uid/resourceVersion) as a JSON line: the differential check of the
    #: API server replays the suite's own requests from it (``conformance/envtest/apidiff.py``).
    record_requests: str | None = None
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    #: Serve TLS with a self-signed certificate (its CA in the kubeconfig). On by default: client-go
    #: (kubectl) sends the kubeconfig's bearer token only over TLS, and the server requires it.
    https: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def model_name(self) -> str:
        """What the report records as ``sim_model``."""
        if self.webhook == "off":
            return f"kube-ovn {self.kube_ovn_version} (webhook off)"
        if self.overrides_policy:
            return f"policy {self.webhook_policy} (controller {self.kube_ovn_version})"
        return f"kube-ovn {self.kube_ovn_version}"

    @property
    def overrides_policy(self) -> bool:
        """Whether ``webhook_policy`` replaces the release's own modelled policy (naming the policy the
        release ships is no override: the run models that release, webhook included)."""
        if not self.webhook_policy:
            return False
        try:
            return self.webhook_policy != versions.kube_ovn_release(self.kube_ovn_version).webhook_policy
        except versions.VersionError:
            return True
