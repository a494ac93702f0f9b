"""The requirement catalog: the public contract of the suite.

Each requirement has a stable ID (``<family>.<name>``; never renamed), a level (MUST or SHOULD), a
short title, a statement in RFC 2119 words, and the upstream issues/PRs behind it. Scenarios declare
the IDs they decide with ``@pytest.mark.conformance("allow.restart", ...)``; certification results
are reported per ID, never per pytest node ID.

The ``upgrade.*`` family belongs to upgrade runs only (``kovc run --upgrade-from X``, ``kovc upgrade
prepare|verify``): an upgrade run selects the preconditions and every ``upgrade.*`` requirement, a
normal run never selects them (nor counts them as MUSTs it did not run).

Profiles select IDs: ``quick`` (PR gating: the preconditions, ``allow.restart``, ``deny.other-vm``),
``baseline`` (every MUST; SHOULDs are reported ``not-run``) and ``extended`` (everything). The
preconditions ``env.*`` are always selected: when one fails, the run is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["MUST", "SHOULD"]
Profile = Literal["quick", "baseline", "extended"]

PROFILES: tuple[str, ...] = ("quick", "baseline", "extended")
DEFAULT_PROFILE = "baseline"

_KO = "kubeovn/kube-ovn#"


#: Capabilities a requirement may depend on (its ``applies_when``), each detected from the Kubernetes API
#: only (``conformance.capabilities``): key -> the condition as the catalog states it.
CAPABILITY_CONDITIONS: dict[str, str] = {
    "dual-stack": "the cluster has a dual-stack subnet (a kubeovn.io Subnet with protocol Dual, or a cidrBlock "
                  "with an IPv4 and an IPv6 CIDR)",
    "multus": "Multus is present (the CRD network-attachment-definitions.k8s.cni.cncf.io is served)",
}
#: What the report calls each capability, and what the requirements without a condition certify.
CAPABILITY_NAMES: dict[str | None, str] = {
    None: "IPv4 pod network",
    "dual-stack": "dual-stack",
    "multus": "attachment networks",
}
ALWAYS = "always"


@dataclass(frozen=True)
class Requirement:
    id: str
    level: Level
    title: str
    statement: str
    references: tuple[str, ...] = ()
    #: The capability the requirement needs (a key of :data:`CAPABILITY_CONDITIONS`), or None: it always
    #: applies. Where the capability is absent the requirement is reported ``not-applicable`` with the reason.
    applies_when: str | None = None

    @property
    def condition(self) -> str:
        """The applicability condition in words (``always`` without one)."""
        return CAPABILITY_CONDITIONS[self.applies_when] if self.applies_when else ALWAYS

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def precondition(self) -> bool:
        """A failure of a precondition makes the whole run invalid."""
        return self.family == "env"


def _refs(*numbers: int) -> tuple[str, ...]:
    return tuple(f"{_KO}{n}" for n in numbers)


_LEGIT = ("is admitted, the VM is Running and reachable at its IP afterwards, and its IP CR <vm>.<ns> "
          "MUST be the same object (name and uid) with the same ipAddress, v4/v6IpAddress, macAddress, "
          "podName <vm>, podType VirtualMachine, namespace and subnet")
_DENY = ("MUST be rejected at admission by the pod-IP webhook (for a VM challenger: VMI "
         "Synchronized=False/FailedCreate with the webhook's denial), and the holder MUST keep running "
         "with its IP")
_DENY_SHOULD = _DENY.replace("MUST", "SHOULD")

REQUIREMENTS: tuple[Requirement, ...] = (
    # ---- preconditions: a failure makes the run invalid ---------------------------------------------
    Requirement(
        "env.webhook-live", "MUST", "The pod-IP validating webhook is live",
        "A dryRun=All pod create with ovn.kubernetes.io/ip_address set to a free address and "
        "ovn.kubernetes.io/cidr 192.0.2.0/24 MUST be rejected by pod-ip-validating.kube-ovn.io with "
        "'... not in cidr ...' (HTTP 400) within 30 s: the API-server-to-webhook path works, independently "
        "of the conflict policy (the webhook's failurePolicy is Ignore).",
        ("kubeovn/docs:docs/guide/webhook.en.md", *_refs(1468))),
    Requirement(
        "env.keep-vm-ip", "MUST", "keep-vm-ip is enabled",
        "kube-ovn-controller MUST run with keep-vm-ip on (--keep-vm-ip, default true), so a VM keeps its "
        "IP CR <vm>.<ns> across launcher pods.",
        _refs(1307, 1328, 1347)),
    # ---- legitimate operations are admitted ------------------------------------------------------
    Requirement(
        "allow.restart", "MUST", "Restart keeps the static IP",
        f"A restart of a static-IP VM through the subresource API {_LEGIT}.",
        _refs(4803, 4807, 5569)),
    Requirement(
        "allow.stop-start", "MUST", "Stop then start keeps the static IP",
        f"Stopping and then starting a static-IP VM {_LEGIT}.",
        _refs(2021, 4803, 5569)),
    Requirement(
        "allow.launcher-pod-deleted", "MUST", "A deleted launcher pod is replaced with the same IP",
        f"Deleting the launcher pod of a static-IP VM with runStrategy Always {_LEGIT}.",
        _refs(4803, 5569)),
    Requirement(
        "allow.live-migration", "MUST", "Live migration keeps the static IP",
        "A live migration of a static-IP VM to another node (bridge binding, "
        f"kubevirt.io/allow-pod-bridge-network-live-migration) {_LEGIT}. It needs two nodes labelled "
        "kubevirt.io/schedulable=true without NoSchedule taints; otherwise it is skipped with the reason.",
        (*_refs(1462, 1468, 1429, 1439, 4191), "kubevirt/kubevirt#4910")),
    Requirement(
        "allow.recreate", "MUST", "Delete and recreate with the same name and IP",
        "After a static-IP VM is deleted, its IP CR is gone and a dryRun=All probe for the address is "
        "admitted, creating the VM again with the same name and IP MUST be admitted, and the VM MUST be "
        "Running and reachable at its IP with an IP CR <vm>.<ns> naming it.",
        _refs(5367, 5390)),
    Requirement(
        "allow.immediate-recreate", "SHOULD", "Immediate recreate with the same name and IP",
        "A static-IP VM deleted and created again at once with the same name and IP SHOULD be Running "
        "within 120 s with an IP CR whose podName is <vm>, and reachable at its IP. (Kube-OVN releases the "
        "old VM by port name, which the new VM shares: had the release run after the new launcher pod's "
        "allocation it would delete the new IP CR. The common real order - and the simulated cluster's "
        "fixed one - releases first, because the VM delete event is handled at once while the new launcher "
        "pod appears only after virt-controller has created the VMI and its pod; the report says which "
        "order was observed.)",
        _refs(5390)),
    Requirement(
        "allow.repeated-restarts", "MUST", "Five restarts in a row keep the static IP",
        f"Five consecutive restarts of a static-IP VM: each {_LEGIT}.",
        _refs(4803, 5569)),
    Requirement(
        "allow.concurrent-restarts", "MUST", "Concurrent restarts keep the static IPs",
        "N static-IP VMs (default 3, --concurrency) restarted at the same time MUST all be admitted, "
        "Running and reachable at their own IPs, each keeping its own IP CR unchanged.",
        _refs(4803, 5569)),
    Requirement(
        "allow.ip-reuse-after-delete", "MUST", "A released IP can be taken by another VM",
        "After a VM is deleted and its IP CR released, a VM with another name requesting that IP MUST "
        "be admitted, Running and reachable at it.",
        _refs(5367, 5390, 5654)),
    Requirement(
        "allow.same-ip-other-subnet", "SHOULD", "The same IP in another VPC's subnet is no collision",
        "The same address requested in subnets of two different VPCs, chosen by an explicit "
        "ovn.kubernetes.io/logical_switch, SHOULD be admitted for both VMs.",
        _refs(2026)),
    Requirement(
        "allow.same-ip-namespace-bound-vpc", "SHOULD",
        "The same IP in a namespace bound to another VPC's subnet is no collision",
        "When a VM holds X in ovn-default, a second VM created afterwards in a namespace bound to a "
        "subnet of another VPC that also contains X, requesting X without a logical_switch annotation, "
        "SHOULD be admitted.",
        _refs(2026)),
    Requirement(
        "allow.restart-dual-stack", "MUST", "Restart, stop/start and migration keep both addresses",
        "For a VM requesting a dual-stack address (ovn.kubernetes.io/ip_address \"<v4>,<v6>\" in a dual-stack "
        "subnet named by ovn.kubernetes.io/logical_switch), a restart, a stop then start, and a live migration "
        "MUST each be admitted, the VM MUST be Running with both addresses on its launcher pod, and its IP CR "
        "<vm>.<ns> MUST be the same object (name and uid) with the same ipAddress, v4IpAddress, v6IpAddress, "
        "macAddress, podName <vm>, podType VirtualMachine, namespace and subnet; each operation is reported. "
        "The migration needs two nodes labelled kubevirt.io/schedulable=true without NoSchedule taints; "
        "otherwise that case is skipped with the reason.",
        (*_refs(4803, 5569, 4191), "kubeovn/docs:docs/guide/dual-stack.en.md"),
        applies_when="dual-stack"),
    Requirement(
        "allow.static-mac-restart", "MUST", "Restart and migration keep a static MAC",
        "A VM requesting a static IP and a static MAC (ovn.kubernetes.io/mac_address) MUST, after a restart "
        "and after a live migration, be admitted and Running with that IP and MAC on its launcher pod "
        "(ovn.kubernetes.io/ip_address, ovn.kubernetes.io/mac_address), and its IP CR <vm>.<ns> MUST be the "
        "same object (name and uid) with macAddress equal to the requested MAC and the same ipAddress, podName "
        "and subnet; each operation is reported (the migration is skipped with the reason without two "
        "schedulable nodes).",
        (*_refs(1354, 4803, 5569), "kubeovn/docs:docs/guide/static-ip-mac.en.md")),
    Requirement(
        "allow.attachment-restart", "MUST", "An attachment network's static IP survives restart and migration",
        "A VM with a second interface on a NetworkAttachmentDefinition whose provider is Kube-OVN's "
        "(<nad>.<ns>.ovn, a subnet with that provider), requesting a static address there with "
        "<nad>.<ns>.ovn.kubernetes.io/ip_address, MUST after a restart and after a live migration be admitted "
        "and Running with that address on its launcher pod (<nad>.<ns>.ovn.kubernetes.io/ip_address, "
        "allocated), and its attachment IP CR <vm>.<ns>.<nad>.<ns>.ovn MUST be the same object (name and uid) "
        "with the same ipAddress, macAddress, podName <vm> and subnet; each operation is reported.",
        _refs(1376, 5848, 6762),
        applies_when="multus"),
    # ---- genuine collisions are rejected at admission --------------------------------------------
    Requirement(
        "deny.other-vm", "MUST", "Another VM cannot take a running VM's IP",
        f"A VM with another name requesting a running VM's IP {_DENY}.",
        _refs(4803, 5569)),
    Requirement(
        "deny.pod-takes-vm-ip", "MUST", "A plain pod cannot take a VM's IP",
        f"A plain pod requesting a VM's IP {_DENY}.",
        _refs(5569)),
    Requirement(
        "deny.name-prefix", "MUST", "Names containing each other are still distinct",
        "For VM names that contain each other, in both directions (web/web-1, vm1/vm10), and for a plain "
        f"pod whose name is contained in the VM's name, the challenger {_DENY}; each sub-case is reported.",
        _refs(4807, 5569)),
    Requirement(
        "deny.stopped-vm-ip", "MUST", "A stopped VM's kept IP cannot be taken",
        f"Another VM requesting the IP of a stopped VM (kept by keep-vm-ip) {_DENY}.",
        _refs(2021, 2344, 2486, 2916)),
    Requirement(
        "deny.clone", "MUST", "An unfiltered clone cannot take the holder's IP",
        f"A VirtualMachineClone of the holder without annotationFilters {_DENY}; where the clone API is "
        "absent the requirement is skipped with the reason.",
        _refs(5189)),
    Requirement(
        "deny.spoofed-launcher", "MUST", "A pod impersonating a launcher pod is rejected",
        "A plain pod named virt-launcher-<vm>-<5 chars> carrying every label of the holder's live "
        f"launcher pod verbatim, with no ownerReferences, {_DENY}.",
        _refs(5569)),
    Requirement(
        "deny.cross-namespace", "SHOULD", "A same-named VM in another namespace is rejected",
        f"A VM with the holder's name in another namespace, same subnet, requesting its IP {_DENY_SHOULD}.",
        _refs(5569)),
    Requirement(
        "deny.pod-named-like-vm", "SHOULD", "A plain pod named like the VM is rejected",
        f"A plain pod in the VM's namespace whose name equals the VM's, requesting its IP, {_DENY_SHOULD}.",
        _refs(5569)),
    Requirement(
        "deny.spoofed-migration", "SHOULD", "A pod forging a migration annotation is rejected",
        f"A plain pod carrying kubevirt.io/migrationJobName and requesting a VM's IP {_DENY_SHOULD}.",
        _refs(1462, 4191)),
    Requirement(
        "deny.forged-owner-ref", "SHOULD", "A pod in another namespace forging the VMI owner is rejected",
        "A pod in another namespace with an ownerReference to the holder's VMI (kind, apiVersion, name "
        f"and uid), requesting its IP, {_DENY_SHOULD}. (Forging within the holder's own namespace is out "
        "of scope: same tenant.)",
        _refs(5569, 6081)),
    Requirement(
        "deny.other-vm-ipv6", "MUST", "Another VM cannot take a running VM's IPv6",
        "A VM with another name requesting its own free IPv4 together with a running dual-stack VM's IPv6 "
        f"(ovn.kubernetes.io/ip_address \"<own v4>,<holder's v6>\", same subnet) {_DENY}.",
        _refs(4803, 5569),
        applies_when="dual-stack"),
    Requirement(
        "deny.mac-collision", "SHOULD", "Another VM cannot run holding a running VM's MAC",
        "A VM with another name requesting its own free IP and a running VM's static MAC "
        "(ovn.kubernetes.io/mac_address) SHOULD never run holding that MAC: it is either rejected at "
        "admission, or admitted and refused by IPAM (its launcher pod never allocated, a Warning Event "
        "AcquireAddressFailed on it); the evidence says which. The holder MUST keep running with its IP "
        "and MAC.",
        (*_refs(1354), "kubeovn/docs:docs/guide/static-ip-mac.en.md")),
    Requirement(
        "deny.attachment-other-vm", "MUST", "Another VM cannot take a VM's attachment-network IP",
        "A VM with another name requesting, on the same Kube-OVN-provider NetworkAttachmentDefinition, the "
        "static attachment address (<nad>.<ns>.ovn.kubernetes.io/ip_address) of a running VM "
        f"{_DENY}; what happened after an admission (e.g. refused by IPAM) is reported.",
        _refs(5848, 2938),
        applies_when="multus"),
    # ---- state ---------------------------------------------------------------------------------------
    Requirement(
        "state.ip-released-on-delete", "MUST", "Deleting a VM releases its IP CR",
        "The IP CR MUST disappear within 120 s of deleting a running VM, and within 120 s of deleting a "
        "stopped VM (two cases, both reported). The 120 s bound is fixed: --timeout-scale does not change "
        "it (on the simulated cluster it is measured on the sim's clock).",
        _refs(5367, 5390)),
    Requirement(
        "state.no-duplicate-ips", "MUST", "No duplicate addresses after any scenario",
        "After every scenario, among the run's own addresses, no two pods with "
        "ovn.kubernetes.io/allocated=true in the same subnet MUST share an address (pods controlled by the "
        "same VMI count as one), and no IP CR of those addresses MUST name a workload other than its "
        "holder.",
        _refs(2026, 2344, 2486, 2916)),
    Requirement(
        "state.concurrent-claims", "SHOULD", "Simultaneous claims: at most one winner",
        "When two VMs are created at the same moment with the same IP, over 60 s at most one SHOULD ever "
        "be allocated; the loser is denied or left unallocated, and the report says which.",
        _refs(2938, 4304)),
    Requirement(
        "state.attachment-ip-released-on-delete", "SHOULD", "Deleting a VM releases its attachment IP CRs",
        "The attachment IP CR <vm>.<ns>.<nad>.<ns>.ovn of a VM with a static attachment address SHOULD "
        "disappear within 120 s of deleting the running VM, and within 120 s of deleting the VM after stopping "
        "it (two cases, both reported): the same fixed bound as state.ip-released-on-delete's, not scaled by "
        "--timeout-scale.",
        _refs(5367, 5390, 5557),
        applies_when="multus"),
    Requirement(
        "net.migration-downtime", "SHOULD", "Live migration loses little connectivity",
        "During a live migration, a probe on a node that is neither source nor target pinging every "
        "<= 200 ms SHOULD see no gap longer than --max-migration-loss (default 3 s).",
        _refs(4773, 5343, 6239)),
    # ---- upgrade gating: only in an upgrade run (--upgrade-from X; `kovc upgrade prepare|verify`) ----
    Requirement(
        "upgrade.ips-kept", "MUST", "VMs created before the upgrade keep their IP CRs",
        "VMs created on the release upgraded from (running, stopped, and one mid-restart when the upgrade "
        "starts) MUST keep their IP CRs across the upgrade: same name, uid, ipAddress, macAddress and "
        "podName. An IP CR the old release left behind for a stopped-then-deleted VM is reported.",
        _refs(5367, 5390, 5569)),
    Requirement(
        "upgrade.restart-after", "MUST", "Restarts after the upgrade keep the static IPs",
        "After the upgrade, restart, stop/start and launcher-pod deletion of the VMs created before it "
        "MUST be admitted and keep their IPs.",
        _refs(4803, 4807, 5569)),
    Requirement(
        "upgrade.migrate-after", "MUST", "Live migration after the upgrade keeps the static IP",
        "Live migration of a VM created before the upgrade MUST keep its IP after the upgrade (skipped "
        "with the reason without two schedulable nodes).",
        (*_refs(1462, 1468, 4191), "kubevirt/kubevirt#4910")),
    Requirement(
        "upgrade.collisions-denied-after", "MUST", "Collisions are denied after the upgrade",
        "After the upgrade, a new VM or pod claiming the IP of a VM created before it MUST be rejected at "
        "admission.",
        _refs(4803, 5569)),
    Requirement(
        "upgrade.no-duplicate-ips", "MUST", "No duplicate addresses at any point of the upgrade",
        "At no point, sampled through the upgrade, MUST two workloads hold one IP (allocated pods in one "
        "subnet; pods of the same VMI count as one).",
        _refs(2026, 2344, 2486, 2916)),
    Requirement(
        "upgrade.window-admissions", "SHOULD", "No collision admitted while the webhook is replaced",
        "Collisions attempted while the webhook is being replaced (failurePolicy: Ignore) SHOULD NOT be "
        "admitted; every admitted one is reported with its timestamp, and the window's measured length is "
        "in the evidence.",
        _refs(1468)),
)

_BY_ID: dict[str, Requirement] = {r.id: r for r in REQUIREMENTS}

#: IDs of the quick profile besides the preconditions.
_QUICK = ("allow.restart", "deny.other-vm")


class UnknownRequirement(KeyError):
    """An ID that is not in the catalog. ``str(err)`` is one line for the user."""

    def __str__(self) -> str:
        return str(self.args[0])


def get(requirement_id: str) -> Requirement:
    """The requirement ``requirement_id``; :class:`UnknownRequirement` when it is not in the catalog."""
    try:
        return _BY_ID[requirement_id]
    except KeyError:
        raise UnknownRequirement(
            f"unknown requirement ID {requirement_id!r} (see `kovc list` for the catalog)") from None


def exists(requirement_id: str) -> bool:
    return requirement_id in _BY_ID


def all_requirements() -> list[Requirement]:
    """Every requirement, in catalog order."""
    return list(REQUIREMENTS)


def ids() -> list[str]:
    return [r.id for r in REQUIREMENTS]


def families() -> list[str]:
    """The families (ID prefixes), in catalog order: env, allow, deny, state, net."""
    out: list[str] = []
    for req in REQUIREMENTS:
        if req.family not in out:
            out.append(req.family)
    return out


#: The family only an upgrade run selects.
UPGRADE_FAMILY = "upgrade"


def is_upgrade(requirement_id: str) -> bool:
    return requirement_id.split(".", 1)[0] == UPGRADE_FAMILY


def upgrade_ids(profile: str = "extended") -> list[str]:
    """What an upgrade run selects: the preconditions and the ``upgrade.*`` requirements of the
    profile (``quick``/``baseline``: the MUSTs, ``upgrade.window-admissions`` reported not-run;
    ``extended``: all)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return [r.id for r in REQUIREMENTS if r.precondition or (
        r.family == UPGRADE_FAMILY and (profile == "extended" or r.level == "MUST"))]


def run_musts(*, upgrade: bool) -> list[str]:
    """The MUSTs a certification of this kind of run needs: every non-upgrade MUST for a normal run,
    the preconditions and the ``upgrade.*`` MUSTs for an upgrade run."""
    chosen = upgrade_ids() if upgrade else [r.id for r in REQUIREMENTS if r.family != UPGRADE_FAMILY]
    return [i for i in chosen if _BY_ID[i].level == "MUST"]


def profile_ids(profile: str) -> list[str]:
    """The IDs a profile selects, in catalog order (the preconditions are always part of it; the
    ``upgrade.*`` family never: see :func:`upgrade_ids`)."""
    if profile == "quick":
        chosen = {r.id for r in REQUIREMENTS if r.precondition} | set(_QUICK)
    elif profile == "baseline":
        chosen = {r.id for r in REQUIREMENTS if r.precondition or r.level == "MUST"}
    elif profile == "extended":
        chosen = set(_BY_ID)
    else:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return [r.id for r in REQUIREMENTS if r.id in chosen and r.family != UPGRADE_FAMILY]


def selection(profile: str, requirements: list[str] | None = None, *, upgrade: bool = False) -> list[str]:
    """The IDs a run selects: the explicitly requested ``requirements`` (validated) when given, else
    the profile's (for an upgrade run: :func:`upgrade_ids`); the preconditions always. Catalog order.
    Only an upgrade run selects ``upgrade.*``."""
    if upgrade:
        if requirements:
            allowed = set(upgrade_ids())
            chosen = {get(i).id for i in requirements} & allowed | {r.id for r in REQUIREMENTS if r.precondition}
            return [r.id for r in REQUIREMENTS if r.id in chosen]
        return upgrade_ids(profile)
    if requirements:
        chosen = {get(i).id for i in requirements if not is_upgrade(i)} | {
            r.id for r in REQUIREMENTS if r.precondition}
        return [r.id for r in REQUIREMENTS if r.id in chosen]
    return profile_ids(profile)
