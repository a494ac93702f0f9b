"""Run settings, and the one definition of every option ``kovc run`` and the pytest plugin share.

:data:`OPTIONS` is registered twice from the same list: as pytest options by ``conformance.plugin``
and as argparse arguments by ``kovc run`` (``conformance.commands.run``), so the two never drift.
Options that pytest-kind-ng also registers (``--kubeconfig``, ``--keep-cluster``, ``--kind-bin``,
``--cluster-name``, ``--kind-image``, ``--kind-kubectl-bin``) carry ``kind_shared=True``: the plugin
reuses that plugin's definitions when it was loaded first.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import catalog, versions

#: The entry name of Kube-OVN's pod-IP webhook (what its denials name).
DEFAULT_WEBHOOK_NAME = "pod-ip-validating.kube-ovn.io"
#: ``--timeout-scale`` on a simulated cluster when not given (its controllers act in milliseconds).
SIM_TIMEOUT_SCALE = 0.05
BACKENDS = ("sim", "envtest", "kind", "existing")
DIAGNOSTICS = ("each", "once", "never")
#: pytest-kind-ng's default ``--cluster-name``; when it owns the option, an unchanged default means ours.
KIND_PLUGIN_DEFAULT_CLUSTER = "pytest-kind"
DEFAULT_CLUSTER_NAME = "kovc"

#: VM waits (boot, restart, migration, the guest answering) under KubeVirt's ``useEmulation`` (QEMU TCG, no
#: usable /dev/kvm), where a guest takes several times longer: Kube-OVN's own CI runs KubeVirt emulated
#: (``makefiles/kind.mk`` L570-571 at v1.16.2) with 2 min for a VM to be ready after create
#: (``test/e2e/framework/framework.go`` L43, ``virtual-machine.go`` L56-63) and 3 min after a start
#: (``virtual-machine.go`` L79-85); kovc's bases are those, times this factor when emulated.
EMULATION_VM_WAIT_FACTOR = 3.0


def vm_wait_factor(simulated: bool, use_emulation: bool | None) -> float:
    """The factor on VM waits: :data:`EMULATION_VM_WAIT_FACTOR` on a real cluster whose KubeVirt CR
    sets ``useEmulation``; 1 otherwise (a simulated guest boots at once, whatever its CR says)."""
    return EMULATION_VM_WAIT_FACTOR if use_emulation and not simulated else 1.0


_RUN_ID_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


# --------------------------------------------------------------------------------------------------
# Argument types: each raises ArgumentTypeError with one line (argparse and pytest both show it)


def _kube_ovn_version(value: str) -> str:
    try:
        versions.kube_ovn_release(value)
    except versions.VersionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def _kubevirt_version(value: str) -> str:
    try:
        return versions.check_kubevirt_version(value)
    except versions.VersionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _kubernetes_version(value: str) -> str:
    try:
        return versions.check_kubernetes_version(value)
    except versions.VersionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _requirement_id(value: str) -> str:
    if not catalog.exists(value):
        raise argparse.ArgumentTypeError(f"unknown requirement ID {value!r} (see `kovc list`)")
    return value


def _positive_float(value: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not out > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return out


def _positive_int(value: str) -> int:
    try:
        out = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if out < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return out


def _run_id(value: str) -> str:
    if not _RUN_ID_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid run id {value!r}: lower-case letters, digits and '-', at most 32 characters "
            "(it is a label value and part of object names)")
    return value


# --------------------------------------------------------------------------------------------------
# The option list


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    dest: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None  # "store_true" | "append"
    metavar: str | None = None
    #: pytest-kind-ng registers the same option (group "kind"): reuse its definition when present.
    kind_shared: bool = False

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dest": self.dest, "help": self.help}
        if self.action:
            out["action"] = self.action
        if self.action != "store_true":
            if self.type is not None:
                out["type"] = self.type
            if self.choices is not None:
                out["choices"] = self.choices
            if self.metavar is not None:
                out["metavar"] = self.metavar
        out["default"] = self.default if self.action != "store_true" else bool(self.default)
        return out


def _sim_options() -> list[Option]:
    """The simulated cluster's ``--sim-*`` options, as ``kovc sim serve`` defines them."""
    from .sim.serve import SIM_OPTIONS

    out = []
    for flag, kwargs in SIM_OPTIONS:
        kw = dict(kwargs)
        choices = kw.get("choices")
        out.append(Option((flag,), str(kw["dest"]), str(kw.get("help", "")), default=kw.get("default"),
                          type=kw.get("type"), choices=tuple(choices) if choices else None,
                          metavar=kw.get("metavar")))
    return out


OPTIONS: tuple[Option, ...] = (
    Option(("--backend",), "backend", "where the cluster comes from (default: sim, the simulated cluster)",
           default="sim", choices=BACKENDS),
    Option(("--context",), "context", "kubeconfig context (default: the current one)", metavar="NAME"),
    Option(("--kube-ovn-version",), "kube_ovn_version",
           f"Kube-OVN release to install or simulate (default {versions.KUBE_OVN_VERSION})",
           type=_kube_ovn_version, metavar="vX.Y.Z"),
    Option(("--kubevirt-version",), "kubevirt_version",
           f"KubeVirt release to install or simulate (default {versions.KUBEVIRT_VERSION})",
           type=_kubevirt_version, metavar="vX.Y.Z"),
    Option(("--k8s-version",), "k8s_version",
           f"Kubernetes version of the kind nodes or the simulated cluster (default {versions.K8S_VERSION})",
           type=_kubernetes_version, metavar="vX.Y.Z"),
    Option(("--profile",), "profile",
           "requirement set: quick (PR gating), baseline (all MUSTs), extended (everything)",
           default=catalog.DEFAULT_PROFILE, choices=catalog.PROFILES),
    Option(("--requirement",), "requirements",
           "run only this requirement ID (repeatable; the env.* preconditions always run)",
           action="append", type=_requirement_id, metavar="ID"),
    Option(("--keep-on-failure",), "keep_on_failure",
           "keep the namespaces of failed scenarios for debugging", action="store_true"),
    Option(("--report-dir",), "report_dir",
           "where the report bundle is written (default ./kovc-report/<UTC timestamp>)", metavar="DIR"),
    Option(("--timeout-scale",), "timeout_scale",
           f"multiply every timeout and window (default 1; {SIM_TIMEOUT_SCALE} on a simulated cluster)",
           type=_positive_float, metavar="F"),
    Option(("--concurrency",), "concurrency", "VMs restarted at once by allow.concurrent-restarts",
           default=3, type=_positive_int, metavar="N"),
    Option(("--max-migration-loss",), "max_migration_loss",
           "longest connectivity gap net.migration-downtime accepts, seconds", default=3.0,
           type=_positive_float, metavar="SECONDS"),
    Option(("--diagnostics",), "diagnostics",
           "collect diagnostics for each failure, only the first one, or never", default="each",
           choices=DIAGNOSTICS),
    Option(("--run-id",), "run_id", "run id (label kovc.io/run on every object the run creates)",
           type=_run_id, metavar="ID"),
    Option(("--plan",), "plan", "print what the backend would do, touch nothing", action="store_true"),
    Option(("--upgrade-from",), "upgrade_from",
           "upgrade run: install (or simulate) this Kube-OVN release, create VMs, upgrade to "
           "--kube-ovn-version, check the upgrade.* requirements", type=_kube_ovn_version, metavar="vX.Y.Z"),
    Option(("--force",), "force", "run an upgrade pair the suite refuses (a downgrade)", action="store_true"),
    Option(("--upgrade-phase",), "upgrade_phase",
           "upgrade run phase: all (default: VMs, upgrade, after-checks) or verify (the after-checks of a run "
           "`kovc upgrade prepare` recorded: needs --run-id; what `kovc upgrade verify` runs)", default="all",
           choices=("all", "verify")),
    Option(("--ip-family",), "ip_family",
           "backend kind: ipv4 (default) or dual - a dual-stack cluster and ovn-default, as the release's "
           "`make kind-init-dual kind-install-dual`; ipv6 is refused (the scenarios pin IPv4 addresses)",
           default="ipv4", choices=("ipv4", "dual", "ipv6")),
    Option(("--multus",), "multus",
           "backend kind: install Multus as the release's CI does (`make kind-install-multus`); the "
           "attachment scenarios then create their own NetworkAttachmentDefinition and Subnet",
           action="store_true"),
    Option(("--manifests-dir",), "manifests_dir", "install Kube-OVN/KubeVirt from local manifest copies",
           metavar="DIR"),
    Option(("--assets",), "assets",
           "backend envtest: directory of the built programs (default $KOVC_ASSETS or ~/.cache/kovc/assets; "
           "see kovc assets build)", metavar="DIR"),
    *_sim_options(),
    # shared with pytest-kind-ng (same flags, same dests)
    Option(("--kubeconfig",), "kubeconfig",
           "kubeconfig of the cluster under test (backend existing; kind: instead of the generated one)",
           metavar="PATH", kind_shared=True),
    Option(("--keep-cluster",), "keep_cluster", "keep the kind cluster after the run", action="store_true",
           kind_shared=True),
    Option(("--kind-bin",), "kind_bin", "kind executable (the release paired with the node image, "
           f"{versions.KIND_MIN_VERSION} for the default)", metavar="PATH",
           kind_shared=True),
    Option(("--cluster-name",), "cluster_name", f"kind cluster name (default {DEFAULT_CLUSTER_NAME})",
           metavar="NAME", kind_shared=True),
    Option(("--kind-image",), "kind_image", f"kind node image (default {versions.KIND_NODE_IMAGE})",
           metavar="IMAGE", kind_shared=True),
    Option(("--kind-kubectl-bin",), "kind_kubectl_bin", "kubectl executable for the kind backend",
           metavar="PATH", kind_shared=True),
)

OPTION_DESTS: tuple[str, ...] = tuple(o.dest for o in OPTIONS)


def add_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Register :data:`OPTIONS` on an argparse parser (``kovc run``)."""
    for opt in OPTIONS:
        parser.add_argument(*opt.flags, **opt.kwargs())


def cluster_name(value: str | None) -> str:
    """The kind cluster name: ours unless the user chose one (pytest-kind-ng's default means unset)."""
    if not value or value == KIND_PLUGIN_DEFAULT_CLUSTER:
        return DEFAULT_CLUSTER_NAME
    return value


def new_run_id() -> str:
    return f"r-{secrets.token_hex(3)}"


def default_report_dir(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path("kovc-report") / stamp


# --------------------------------------------------------------------------------------------------
# Settings handed to scenarios


@dataclass
class Settings:
    run_id: str
    worker: str = "main"
    worker_index: int = 0
    worker_count: int = 1
    timeout_scale: float = 1.0
    concurrency: int = 3
    max_migration_loss: float = 3.0
    webhook_name: str = DEFAULT_WEBHOOK_NAME
    keep_on_failure: bool = False
    report_dir: Path = field(default_factory=lambda: Path("kovc-report"))
    backend: str = "sim"
    simulated: bool = False
    profile: str = catalog.DEFAULT_PROFILE
    diagnostics: str = "each"

    #: Wall seconds per cluster second: 1 on a real cluster, ``SIM_CLOCK_SCALE`` on a simulated one.
    clock_scale: float = 1.0
    #: Extra factor on VM waits (:func:`vm_wait_factor`).
    vm_wait_factor: float = 1.0

    def timeout(self, seconds: float, minimum: float = 2.0) -> float:
        """``seconds`` times timeout_scale, never below ``minimum``."""
        return max(seconds * self.timeout_scale, minimum)

    def vm_timeout(self, seconds: float) -> float:
        """A VM wait: ``seconds`` times the emulation factor, then as :meth:`timeout`."""
        return self.timeout(seconds * self.vm_wait_factor)

    def fixed(self, seconds: float) -> float:
        """A requirement's fixed bound of ``seconds`` (part of its statement): never scaled by
        ``--timeout-scale``, only measured on the cluster's clock (:attr:`clock_scale`)."""
        return seconds * self.clock_scale


def xdist_worker() -> tuple[str, int, int]:
    """(worker name, index, count) of this process: ("main", 0, 1) outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not name:
        return "main", 0, 1
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    digits = "".join(ch for ch in name if ch.isdigit())
    return name, int(digits or 0), max(count, 1)
