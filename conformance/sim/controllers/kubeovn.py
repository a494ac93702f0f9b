"""kube-ovn-controller (pod address allocation, IP CRs, subnets) and the kube-ovn-cni step, modelled on
``kubeovn/kube-ovn@v1.16.2`` (line numbers below are that tag unless stated). User agents
``kube-ovn-controller/<version>`` and ``kube-ovn-cni/<version>``.

IPAM (:class:`Ipam`, ``pkg/ipam/subnet.go``):

* addresses are keyed by ``<ns>/<name>`` where name is ``getNameByPod`` (``pod.go`` L2813-2820): the VM
  name for a launcher pod when keep-vm-ip is on, else the pod name. The NIC (and IP CR / LSP) name is
  ``<name>.<ns>`` (``ovs.PodNameToPortName``, provider ``ovn``);
* a static address (``ovn.kubernetes.io/ip_address``) is ``GetStaticAddress`` (``subnet.go``): an address
  held by another key fails with ``AddressConflict`` (``ErrConflict``), one outside the subnet with
  ``AddressOutOfRange``; the *same key* simply gets it back - so a plain pod named like a VM in the
  VM's namespace takes over the VM's address, MAC and IP CR (same IPAM key, ``getNameByPod`` above);
* a static MAC already used by another key is ``AddressConflict`` too (``GetStaticMac``);
* without a static address ``GetRandomAddress`` returns the NIC's existing address (a stopped VM's kept
  IP) or the lowest never-used free address; released addresses are reused only when the free range is
  exhausted (``pool.V4Released``);
* addresses in ``excludeIps`` are never handed out dynamically but may be requested statically
  (``pool.V4Reserved``).

Controller (:class:`KubeOvnController`, one FIFO queue):

* pod add/update - ``handleAddOrUpdatePod`` (L493-568) → ``reconcileAllocateSubnets`` (L622-828): the
  effective subnet is the ``logical_switch`` annotation, else the namespace-bound subnet, else
  ``ovn-default``; a failure is a Warning Event ``AcquireAddressFailed`` with the IPAM error
  (``AddressConflict`` …) on the pod (L644) and a rate-limited retry; success writes the IP CR
  (``createOrUpdateIPCR``, ``ip.go``) *then* the pod annotations ``ip_address``, ``mac_address``,
  ``cidr``, ``gateway``, ``logical_switch``, ``pod_nic_type``, ``allocated``, ``logical_router`` and, for
  VM pods with keep-vm-ip, ``virtualmachine``; ``routed`` follows once the pod is bound to a node
  (``reconcileRouteSubnets``/``needRouteSubnets`` L1767);
* pod delete - ``handleDeletePod`` (L1100-1377): a VM pod whose VMI is alive, or whose VM exists and is
  not being deleted (``isVMToDel`` L2764), keeps its IP CR and address, unless the namespace's subnet
  changed under it (``appendCheckPodNetToDel``); everything else deletes the IP CR and releases the
  address. With keep-vm-ip off, v1.15+ VM pods never clean their IP CR here ("skip clean ip CR",
  L1324-1328), while v1.12-v1.14 delete it with the pod (``pod.go`` L1150-1172 at v1.14.41; per release:
  ``KubeOvnRelease.skips_vm_pod_ip_cr_cleanup``). A completed plain pod is released as a deleted one
  (``enqueueUpdatePod``);
* VM delete - ``handleDeleteVM`` (``kubevirt.go`` L60-94, first in v1.14.0): IP CRs and addresses keyed
  ``<ns>/<vm>`` are released. Releases before v1.14.0 have no such handler, so the IP CR of a VM
  *stopped* before it is deleted stays until the periodic LSP garbage collection removes it (#5367);
* periodic GC - ``markAndCleanLSP`` (``gc.go`` L315-436 at v1.13.14, run every ``--gc-interval``
  seconds, default 360, from ``controller.go`` L1192-1198; ``install.sh`` ``GC_INTERVAL=360``): a port
  whose pod is not alive and allocated and (keep-vm-ip on) whose VM does not exist is *marked* on one
  pass and, still unclaimed on the next, deleted together with its IP CR (unless reserved) and address.
  So a stopped-then-deleted VM's IP CR goes 1-2 intervals after the deletion: 6-12 min on a real
  cluster. The interval is ``SimConfig.gc_interval`` (wall seconds; the default is 360 modelled seconds
  on the simulated cluster's clock, ``settings.SIM_CLOCK_SCALE``);
* IP CR delete - ``handleUpdateIP`` (``ip.go``): releases ``<spec.namespace>/<spec.podName>`` and removes
  the ``kubeovn.io/kube-ovn-controller`` finalizer;
* subnets get upstream's defaults (provider, vpc, protocol, gateway, excludeIps), status counters, and
  namespaces get the ``ovn.kubernetes.io/logical_switch``/``cidr``/``exclude_ips`` annotations.

Races, resolved deterministically: every pod, VM, IP and subnet key goes through one FIFO queue, and
an IP CR the controller deletes is finished (address released, finalizer removed) in the same step, so
a VM deleted and recreated under the same name has its old IP CR and address released
(``handleDeleteVM`` or the old launcher pod's delete) before the new launcher pod is allocated - the new
VM gets its address and a fresh IP CR. The keep/release decision for a deleted pod is taken when the
deletion is observed. (Upstream uses separate queues and a ``podKeyMutex``; there the order is not
guaranteed: ``createOrUpdateIPCR`` skips an IP CR that is being deleted.)

Dual-stack subnets (``cidrBlock`` ``<v4>,<v6>``, protocol ``Dual``): one address per family, ``ip_address``
``<v4>,<v6>`` on the pod and in the IP CR (``v4IpAddress``/``v6IpAddress``), one MAC for both
(:class:`Ipam`).

Not modelled: IPPools, VIPs, underlay/VLAN, the LSP options live migration sets
(``--enable-live-migration-optimize``, invisible through the API).
"""

from __future__ import annotations

import functools
import ipaddress
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .. import api
from .. import resources as r
from ..store import ApiError, WatchEvent, deepcopy_json, now_rfc3339
from ..view import (
    JSON,
    Key,
    Reconciler,
    Requeue,
    World,
    annotations_of,
    is_deleting,
    namespace_subnets,
)
from ..webhook import validate_pod_network

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SUBNET = "ovn-default"
DEFAULT_VPC = "ovn-cluster"
JOIN_SUBNET = "join"
FINALIZER = "kubeovn.io/kube-ovn-controller"
A_PREFIX = "ovn.kubernetes.io/"
ALLOCATED = A_PREFIX + "allocated"
ROUTED = A_PREFIX + "routed"
IP_ADDRESS = A_PREFIX + "ip_address"
MAC_ADDRESS = A_PREFIX + "mac_address"
CIDR = A_PREFIX + "cidr"
GATEWAY = A_PREFIX + "gateway"
LOGICAL_SWITCH = A_PREFIX + "logical_switch"
LOGICAL_ROUTER = A_PREFIX + "logical_router"
POD_NIC_TYPE = A_PREFIX + "pod_nic_type"
VM_ANNOTATION = A_PREFIX + "virtualmachine"
EXCLUDE_IPS = A_PREFIX + "exclude_ips"
SUBNET_LABEL = A_PREFIX + "subnet"
NODE_NAME_LABEL = A_PREFIX + "node-name"
IP_RESERVED_LABEL = A_PREFIX + "ip_reserved"
POD_TYPE_VM = "VirtualMachine"
POD_NIC_TYPE_DEFAULT = "veth-pair"

ERR_CONFLICT = "AddressConflict"
ERR_OUT_OF_RANGE = "AddressOutOfRange"
ERR_NO_AVAILABLE = "NoAvailableAddress"
ERR_NO_SUBNET = "SubnetNotExist"


@functools.lru_cache(maxsize=65536)
def _ip_sort_key(address: str) -> int:
    """An address's numeric order (cached: the subnet status sorts every address in use on each change)."""
    return int(ipaddress.ip_address(address))


class IpamError(Exception):
    """An IPAM failure; ``str()`` is upstream's error text (``ErrConflict`` = ``AddressConflict`` …)."""


# ----------------------------------------------------------------------------- IPAM
@dataclass
class SubnetIpam:
    """The addresses of one subnet (single stack)."""

    name: str
    network: IPNet
    gateway: str
    excludes: set[str]
    nic_to_ip: dict[str, str] = field(default_factory=dict)
    ip_to_keys: dict[str, list[str]] = field(default_factory=dict)
    nic_to_mac: dict[str, str] = field(default_factory=dict)
    mac_to_key: dict[str, str] = field(default_factory=dict)
    key_nics: dict[str, set[str]] = field(default_factory=dict)
    released: deque[str] = field(default_factory=deque)
    _next: int = 1
    #: Bumped whenever the set of addresses in use changes (``ip_to_keys`` gains or loses a key), so the
    #: sorted ``usingIPrange`` text is rebuilt once per change, not on every status comparison.
    _using_version: int = 0
    _using_text: tuple[int, str] = (-1, "")

    @property
    def first(self) -> int:
        return int(self.network.network_address) + 1

    @property
    def last(self) -> int:
        """Last usable address (``ipam.NewSubnet``: v4 excludes the broadcast address)."""
        top = int(self.network.broadcast_address)
        return top - 1 if self.network.version == 4 else top

    def size(self) -> int:
        return max(self.last - self.first + 1, 0)

    def in_range(self, ip: IPAddr) -> bool:
        return ip.version == self.network.version and self.first <= int(ip) <= self.last

    def using(self) -> int:
        return len(self.ip_to_keys)

    def using_text(self) -> str:
        """Every address in use, in address order, comma-separated (cached per change)."""
        version, text = self._using_text
        if version != self._using_version:
            text = ",".join(sorted(self.ip_to_keys, key=_ip_sort_key))
            self._using_text = (self._using_version, text)
        return text

    def available(self) -> int:
        excluded = sum(1 for e in self.excludes if e not in self.ip_to_keys and self._usable(e))
        return self.size() - self.using() - excluded

    def _usable(self, ip: str) -> bool:
        try:
            return self.in_range(ipaddress.ip_address(ip))
        except ValueError:
            return False

    def _push(self, key: str, nic: str) -> None:
        self.key_nics.setdefault(key, set()).add(nic)

    def _mac_for(self, key: str, nic: str, mac: str | None, rng: random.Random) -> str:
        if mac is None:
            if nic in self.nic_to_mac:
                return self.nic_to_mac[nic]
            while True:  # util.GenerateMac: 00:00:00 + three random bytes
                candidate = "00:00:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
                if candidate not in self.mac_to_key:
                    self.mac_to_key[candidate] = key
                    self.nic_to_mac[nic] = candidate
                    return candidate
        if mac:
            owner = self.mac_to_key.get(mac)
            if owner is not None and owner != key:
                raise IpamError(ERR_CONFLICT)
            self.mac_to_key[mac] = key
            self.nic_to_mac[nic] = mac
        return mac

    def get_static(
        self, key: str, nic: str, ip: IPAddr, mac: str | None, rng: random.Random, check_conflict: bool = True
    ) -> tuple[str, str]:
        """``Subnet.GetStaticAddress``: (ip, mac) or :class:`IpamError`."""
        text = str(ip)
        if nic in self.nic_to_ip and self.nic_to_ip[nic] != text:
            self.release_addr(key, nic)
        if not self.in_range(ip):
            raise IpamError(ERR_OUT_OF_RANGE)
        self._push(key, nic)
        mac_str = self._mac_for(key, nic, mac, rng)
        holders = self.ip_to_keys.get(text)
        if holders is not None:
            if key not in holders:
                if not check_conflict:
                    self.nic_to_ip[nic] = text
                    holders.append(key)
                    return text, mac_str
                raise IpamError(ERR_CONFLICT)
            self.nic_to_ip[nic] = text
            return text, mac_str
        if text in self.released:
            self.released.remove(text)
        self.nic_to_ip[nic] = text
        self.ip_to_keys[text] = [key]
        self._using_version += 1
        return text, mac_str

    def get_random(self, key: str, nic: str, mac: str | None, rng: random.Random) -> tuple[str, str]:
        """``Subnet.getV4RandomAddress``: the NIC's current address, else the next free one."""
        if nic in self.nic_to_ip and (self.nic_to_mac.get(nic) or mac == ""):
            return self.nic_to_ip[nic], self.nic_to_mac.get(nic, "")
        text = self._next_free()
        if text is None:
            raise IpamError(ERR_NO_AVAILABLE)
        self.nic_to_ip[nic] = text
        self.ip_to_keys[text] = [key]
        self._using_version += 1
        self._push(key, nic)
        return text, self._mac_for(key, nic, mac, rng)

    def _next_free(self) -> str | None:
        while self.first + self._next - 1 <= self.last:
            candidate = str(ipaddress.ip_address(self.first + self._next - 1))
            self._next += 1
            if candidate in self.ip_to_keys or candidate in self.excludes or candidate in self.released:
                continue
            return candidate
        while self.released:
            candidate = self.released.popleft()
            if candidate not in self.ip_to_keys:
                return candidate
        return None

    def release_addr(self, key: str, nic: str) -> None:
        """``Subnet.releaseAddr``: the NIC's address and MAC go back to the pool."""
        ip = self.nic_to_ip.pop(nic, None)
        if ip is not None:
            holders = self.ip_to_keys.get(ip, [])
            if key in holders:
                holders.remove(key)
            if not holders:
                self.ip_to_keys.pop(ip, None)
                self._using_version += 1
                if ip not in self.excludes:
                    self.released.append(ip)
        mac = self.nic_to_mac.pop(nic, None)
        if mac is not None and self.mac_to_key.get(mac) == key:
            del self.mac_to_key[mac]
        nics = self.key_nics.get(key)
        if nics is not None:
            nics.discard(nic)
            if not nics:
                del self.key_nics[key]


@dataclass
class Ipam:
    """``ipam.IPAM``: one :class:`SubnetIpam` per subnet (so VPCs may reuse CIDRs); a dual-stack subnet
    (``cidrBlock`` ``<v4 cidr>,<v6 cidr>``) has its IPv4 half in ``subnets`` and its IPv6 half in
    ``v6_halves``. Upstream keeps both families in one ``ipam.Subnet`` (``V4NicToIP``/``V6NicToIP``, one
    ``NicToMac``/``MacToPod``: ``pkg/ipam/subnet.go`` at v1.16.2); here the halves share the NIC's MAC,
    which is what that single map amounts to."""

    rng: random.Random
    subnets: dict[str, SubnetIpam] = field(default_factory=dict)
    v6_halves: dict[str, SubnetIpam] = field(default_factory=dict)

    def add_or_update_subnet(self, name: str, cidr: str, gateway: str, excludes: list[str]) -> None:
        nets = _networks(cidr)
        if not nets:
            return
        gateways = [g.strip() for g in gateway.split(",") if g.strip()]
        v4 = next((n for n in nets if n.version == 4), None)
        v6 = next((n for n in nets if n.version == 6), None)
        if v4 is not None and v6 is not None:
            self._update_half(self.subnets, name, v4, _gateway_of(gateways, 4), excludes)
            self._update_half(self.v6_halves, name, v6, _gateway_of(gateways, 6), excludes)
            return
        self._update_half(self.subnets, name, nets[0], _gateway_of(gateways, nets[0].version), excludes)
        self.v6_halves.pop(name, None)

    @staticmethod
    def _update_half(table: dict[str, SubnetIpam], name: str, network: IPNet, gateway: str,
                     excludes: list[str]) -> None:
        expanded = _expand_excludes(excludes)
        current = table.get(name)
        if current is not None and current.network == network:
            current.gateway, current.excludes = gateway, expanded
            return
        fresh = SubnetIpam(name, network, gateway, expanded)
        if current is not None:  # CIDR changed: keep the allocations still in range
            for nic, ip in current.nic_to_ip.items():
                if fresh.in_range(ipaddress.ip_address(ip)):
                    for key in current.ip_to_keys.get(ip, []):
                        fresh.ip_to_keys.setdefault(ip, []).append(key)
                        fresh._push(key, nic)
                    fresh.nic_to_ip[nic] = ip
                    if nic in current.nic_to_mac:
                        fresh.nic_to_mac[nic] = current.nic_to_mac[nic]
                        fresh.mac_to_key[current.nic_to_mac[nic]] = current.mac_to_key.get(
                            current.nic_to_mac[nic], ""
                        )
        table[name] = fresh

    def delete_subnet(self, name: str) -> None:
        self.subnets.pop(name, None)
        self.v6_halves.pop(name, None)

    def halves(self, subnet: str) -> list[SubnetIpam]:
        """The single-stack parts of ``subnet``: one, or IPv4 then IPv6 for a dual-stack subnet."""
        out = [self.subnets[subnet]] if subnet in self.subnets else []
        if subnet in self.v6_halves:
            out.append(self.v6_halves[subnet])
        return out

    def is_dual(self, subnet: str) -> bool:
        return subnet in self.v6_halves

    def get_static_address(
        self, key: str, nic: str, ip: str, mac: str | None, subnet: str, check_conflict: bool = True
    ) -> tuple[str, str]:
        """``IPAM.GetStaticAddress`` (``pkg/ipam/ipam.go`` L68-124 at v1.16.2): every address of ``ip``
        (``,``-separated) from the half of its family - a family the subnet lacks is ``AddressOutOfRange``
        (``Subnet.GetStaticAddress``: no pool contains it) - releasing what this call took when a later
        one fails; then ``checkAndAppendIpsForDual``: a dual-stack subnet given one family gets the other
        at random. Returns (``v4[,v6]``, mac)."""
        halves = self.halves(subnet)
        if not halves:
            raise IpamError(ERR_NO_SUBNET)
        taken: list[tuple[SubnetIpam, str]] = []
        mac_out = mac
        for part in (p.strip() for p in ip.split(",")):
            if not part:
                continue
            try:
                addr = ipaddress.ip_address(part)
            except ValueError:
                raise IpamError(f"{part} is not a valid ip") from None
            half = next((h for h in halves if h.network.version == addr.version), None)
            try:
                if half is None:
                    raise IpamError(ERR_OUT_OF_RANGE)
                got, mac_out = half.get_static(key, nic, addr, mac_out, self.rng, check_conflict)
            except IpamError:
                for done, _ in taken:
                    done.release_addr(key, nic)
                raise
            taken.append((half, got))
        for half in halves:
            if not any(done is half for done, _ in taken):
                got, mac_out = half.get_random(key, nic, mac_out, self.rng)
                taken.append((half, got))
        taken.sort(key=lambda t: t[0].network.version)
        return ",".join(got for _, got in taken), mac_out or ""

    def get_random_address(self, key: str, nic: str, mac: str | None, subnet: str) -> tuple[str, str]:
        """``IPAM.GetRandomAddress``: one address per family of the subnet (``getDualRandomAddress``: v4
        first, the v6 half with the same MAC)."""
        halves = self.halves(subnet)
        if not halves:
            raise IpamError(ERR_NO_SUBNET)
        got: list[str] = []
        mac_out = mac
        for half in halves:
            address, mac_out = half.get_random(key, nic, mac_out, self.rng)
            got.append(address)
        return ",".join(got), mac_out or ""

    def release_by_nic(self, key: str, nic: str, subnet: str) -> None:
        """``IPAM.ReleaseAddressByNic``."""
        for half in self.halves(subnet):
            half.release_addr(key, nic)

    def holder(self, subnet: str, ip: str) -> list[str]:
        try:
            version = ipaddress.ip_address(ip.strip()).version
        except ValueError:
            return []
        half = next((h for h in self.halves(subnet) if h.network.version == version), None)
        return list(half.ip_to_keys.get(ip.strip(), [])) if half else []


def _networks(cidr: str) -> list[IPNet]:
    """The CIDRs of a ``cidrBlock`` (``<v4>,<v6>`` for a dual-stack subnet); malformed parts skipped."""
    out: list[IPNet] = []
    for part in cidr.split(","):
        try:
            out.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            continue
    return out


def _gateway_of(gateways: list[str], version: int) -> str:
    for gateway in gateways:
        try:
            if ipaddress.ip_address(gateway).version == version:
                return gateway
        except ValueError:
            continue
    return gateways[0] if gateways else ""


def _expand_excludes(excludes: list[str]) -> set[str]:
    out: set[str] = set()
    for item in excludes:
        item = item.strip()
        if ".." in item:
            lo, _, hi = item.partition("..")
            try:
                a, b = int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi))
            except ValueError:
                continue
            if b - a > 65536:
                b = a + 65536
            out.update(str(ipaddress.ip_address(i)) for i in range(a, b + 1))
        elif item:
            out.add(item)
    return out


# ----------------------------------------------------------------------------- helpers
def is_vm_pod(pod: JSON) -> tuple[bool, str]:
    """``isVMPod`` (``pod.go`` L2722-2731): any ownerReference of kind VirtualMachineInstance with an
    apiVersion prefix ``kubevirt.io/`` - controller or not, uid never checked."""
    for owner in pod.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == "VirtualMachineInstance" and str(owner.get("apiVersion", "")).startswith(
            "kubevirt.io/"
        ):
            return True, str(owner.get("name", ""))
    return False, ""


def is_sts_pod(pod: JSON) -> bool:
    return any(o.get("kind") == "StatefulSet" for o in pod.get("metadata", {}).get("ownerReferences") or [])


def pod_phase_alive(pod: JSON) -> bool:
    """``isPodStatusPhaseAlive``: not Succeeded/Failed."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def nad_provider(nad: JSON) -> str | None:
    """The Kube-OVN provider of a NetworkAttachmentDefinition: ``config.provider`` of a ``kube-ovn`` CNI
    config (``type`` at the top or in ``plugins``), ``<nad>.<ns>.ovn`` when it names none; None for another
    CNI. (``util.GetNadProvider`` / ``getPodKubeovnNets``.)"""
    import json

    try:
        config = json.loads(str((nad.get("spec") or {}).get("config") or "{}"))
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    plugins = [config, *[p for p in config.get("plugins") or [] if isinstance(p, dict)]]
    for plugin in plugins:
        if plugin.get("type") == "kube-ovn":
            meta = nad.get("metadata") or {}
            return str(plugin.get("provider") or f"{meta.get('name')}.{meta.get('namespace')}.ovn")
    return None


def port_name(name: str, namespace: str, provider: str = "ovn") -> str:
    """``ovs.PodNameToPortName`` (``pkg/ovs/util.go`` L22-27 at v1.16.2, the same at v1.12.35 L18-23):
    ``<name>.<ns>`` for the default provider ``ovn``, else ``<name>.<ns>.<provider>``."""
    if provider != "ovn":
        return f"{name}.{namespace}.{provider}"
    return f"{name}.{namespace}"


@dataclass
class DeleteDecision:
    """What ``handleDeletePod`` decided for a deleted pod."""

    keep: bool
    owner_to_del: bool
    owner_deleted: bool
    ipcr_to_delete: list[str]


@dataclass
class Lsp:
    """A logical switch port: ``external_ids:pod`` is ``key``, ``ls`` the subnet."""

    key: str
    subnet: str
    ip: str
    mac: str


# ----------------------------------------------------------------------------- controller
class KubeOvnController(Reconciler):
    name = "kube-ovn-controller"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.version = world.kube_ovn_version
        self.ua = f"kube-ovn-controller/{self.version}"
        self.keep_vm_ip = world.config.keep_vm_ip
        from ... import versions

        self.release = versions.kube_ovn_release(world.controller_release_version)
        seed = world.config.seed
        self.ipam = Ipam(random.Random(seed if seed is not None else None))
        world.ipam = self.ipam
        self.lsps: dict[str, Lsp] = {}
        #: Deleted pods awaiting ``handleDeletePod``: key -> last object (``deletingPodObjMap``).
        self.deleting: dict[Key, JSON] = {}
        self.decisions: dict[Key, DeleteDecision] = {}
        self.deleted_vms: dict[Key, JSON] = {}
        #: Ports found without a pod or VM on the last ``markAndCleanLSP`` pass (``lastNoPodLSP``).
        self.no_pod_lsps: set[str] = set()

    # events --------------------------------------------------------------
    def on_event(self, ev: WatchEvent) -> None:
        obj = ev.object
        m = obj.get("metadata", {})
        kind = ev.rt.key
        if kind == r.PODS.key:
            if (obj.get("spec") or {}).get("hostNetwork"):
                return
            if ev.type == "DELETED":
                key: Key = ("pod-del", m.get("namespace", ""), m.get("name", ""), m.get("uid", ""))
                # The keep/release decision is taken as the deletion is observed (upstream takes it when
                # the delete queue item runs, normally milliseconds later) so that a test which waits for
                # "VM stopped" and then deletes the VM sees the stop-path decision deterministically.
                self.deleting[key] = obj
                self.decisions[key] = self._delete_decision(obj)
                self.queue.add(key)
            else:
                self.queue.add(("pod", m.get("namespace", ""), m.get("name", "")))
        elif kind == r.VMS.key and ev.type == "DELETED":
            key = ("vm-del", m.get("namespace", ""), m.get("name", ""))
            self.deleted_vms[key] = obj
            self.queue.add(key)
        elif kind == r.SUBNETS.key:
            self.queue.add(("subnet", m.get("name", "")))
            self.queue.add(("vpc", (obj.get("spec") or {}).get("vpc") or DEFAULT_VPC))
            for ns in (obj.get("spec") or {}).get("namespaces") or []:
                self.queue.add(("ns", ns))
            if ev.type == "DELETED":
                self.queue.add(("ns-all",))
        elif kind == r.IPS.key and ev.type != "DELETED":
            if m.get("deletionTimestamp"):
                self.queue.add(("ip", m.get("name", "")))
        elif kind == r.NAMESPACES.key and ev.type != "DELETED":
            self.queue.add(("ns", m.get("name", "")))
        elif kind == r.VPCS.key and ev.type != "DELETED":
            self.queue.add(("vpc", m.get("name", "")))

    def resync(self) -> None:
        if self.config.gc_interval > 0:  # wait.Until: the first pass at start, then every interval
            self.queue.add(("gc-lsp",))
        for subnet in self.client.iter_raw(r.SUBNETS):
            self._sync_subnet_now(subnet)
        self._restore_ipam()
        for kind, rt in (("subnet", r.SUBNETS), ("vpc", r.VPCS), ("ns", r.NAMESPACES)):
            for obj in self.client.iter_raw(rt):
                self.queue.add((kind, obj["metadata"]["name"]))
        for pod in self.client.iter_raw(r.PODS):
            if not (pod.get("spec") or {}).get("hostNetwork"):
                self.queue.add(("pod", pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _restore_ipam(self) -> None:
        """``InitIPAM``: take back the addresses the IP CRs already hold (a controller attached to a cluster
        that has them - a restarted ``kovc sim attach`` - must not hand them out again). On a fresh world
        every IP CR is already held, so this changes nothing there."""
        for ip_cr in self.client.iter_raw(r.IPS):
            spec = ip_cr.get("spec") or {}
            subnet, ip = str(spec.get("subnet") or ""), str(spec.get("ipAddress") or "")
            if is_deleting(ip_cr) or not ip or subnet not in self.ipam.subnets:
                continue
            owner_ns, owner = str(spec.get("namespace") or ""), str(spec.get("podName") or "")
            key = f"{owner_ns}/{owner}" if owner_ns else owner
            if key in self.ipam.holder(subnet, ip.split(",")[0].strip()):
                continue
            try:
                self.ipam.get_static_address(
                    key, ip_cr["metadata"]["name"], ip, spec.get("macAddress") or None, subnet
                )
            except IpamError as exc:
                self.world.log(self.name, f"init.go] failed to init ip {ip} of {key}: {exc}")

    async def handle(self, key: Key) -> None:
        kind = key[0]
        if kind == "pod":
            await self._handle_pod(key[1], key[2])
        elif kind == "pod-del":
            obj = self.deleting.get(key)
            if obj is not None:
                await self._handle_delete_pod(obj, self.decisions.get(key))
                self.deleting.pop(key, None)
                self.decisions.pop(key, None)
        elif kind == "vm-del":
            self.deleted_vms.pop(key, None)
            await self._handle_delete_vm(key[1], key[2])
        elif kind == "subnet":
            await self._handle_subnet(key[1])
        elif kind == "ip":
            await self._handle_deleting_ip(key[1])
        elif kind == "ns":
            await self._handle_namespace(key[1])
        elif kind == "ns-all":
            for ns in self.client.iter_raw(r.NAMESPACES):
                self.queue.add(("ns", ns["metadata"]["name"]))
        elif kind == "vpc":
            await self._handle_vpc(key[1])
        elif kind == "gc-lsp":
            await self._mark_and_clean_lsp()
            self.queue.add_after(key, self.config.gc_interval)

    # names ---------------------------------------------------------------
    def name_by_pod(self, pod: JSON) -> str:
        """``getNameByPod`` (L2813-2820)."""
        if self.keep_vm_ip:
            vm, vm_name = is_vm_pod(pod)
            if vm:
                return vm_name
        return str(pod["metadata"]["name"])

    def pod_subnet(self, pod: JSON) -> str:
        """``getPodDefaultSubnet``: annotation, else the namespace's first bound subnet, else ovn-default."""
        ann = annotations_of(pod)
        if ann.get(LOGICAL_SWITCH):
            return ann[LOGICAL_SWITCH].strip()
        bound = namespace_subnets(self.client, pod["metadata"]["namespace"])
        return bound[0] if bound else DEFAULT_SUBNET

    # pods ----------------------------------------------------------------
    async def _handle_pod(self, namespace: str, name: str) -> None:
        pod = self.client.get(r.PODS, namespace, name)
        if pod is None or (pod.get("spec") or {}).get("hostNetwork"):
            return
        vm, _ = is_vm_pod(pod)
        if not pod_phase_alive(pod):
            if not vm and not is_sts_pod(pod) and annotations_of(pod).get(ALLOCATED) == "true":
                # enqueueUpdatePod: a finished plain pod is handled like a deleted one.
                await self._handle_delete_pod(pod)
            return
        if is_deleting(pod):
            return
        ann = annotations_of(pod)
        invalid = validate_pod_network(ann)
        if invalid is not None:
            self.world.log(self.name, f"pod.go:518] validate pod {namespace}/{name} failed: {invalid}")
            await self._event(pod, "Warning", "ValidatePodNetworkFailed", invalid)
            raise Requeue()
        if ann.get(ALLOCATED) != "true":
            # needAllocateSubnets (L1692-1717). Upstream re-runs the (idempotent) allocation of a pod
            # carrying kubevirt.io/migrationJobName on every update; once is equivalent here.
            await self._allocate(pod)
            return
        if (pod.get("spec") or {}).get("nodeName") and ann.get(ROUTED) != "true":
            await api.mutate(
                self.client.as_agent(self.ua), r.PODS, namespace, name, _set_annotations({ROUTED: "true"})
            )

    async def _allocate(self, pod: JSON) -> None:
        """``reconcileAllocateSubnets`` + ``acquireAddress`` for the default provider."""
        m = pod["metadata"]
        namespace, name = m["namespace"], m["name"]
        ann = annotations_of(pod)
        vm, vm_name = is_vm_pod(pod)
        pod_name = self.name_by_pod(pod)
        key = f"{namespace}/{pod_name}"
        nic = port_name(pod_name, namespace)
        subnet_name = self.pod_subnet(pod)
        subnet = self.client.get(r.SUBNETS, "", subnet_name)
        if subnet is None or subnet_name not in self.ipam.subnets:
            self.world.log(
                self.name,
                f"pod.go:527] failed to get pod nets: subnet {subnet_name} not found "
                f"for pod {namespace}/{name}",
            )
            raise Requeue()
        mac = ann.get(MAC_ADDRESS) or None
        candidates = [subnet_name]
        if not ann.get(LOGICAL_SWITCH):
            candidates += [s for s in namespace_subnets(self.client, namespace) if s != subnet_name]
        try:
            static = ann.get(IP_ADDRESS, "")
            if static:
                error: IpamError | None = None
                for candidate in candidates:
                    if candidate not in self.ipam.subnets:
                        continue
                    try:
                        ip, mac_out = self.ipam.get_static_address(key, nic, static, mac, candidate)
                    except IpamError as exc:
                        error = exc
                        continue
                    subnet_name = candidate
                    break
                else:
                    raise error or IpamError(ERR_NO_AVAILABLE)
            else:
                ip, mac_out = self.ipam.get_random_address(key, nic, mac, subnet_name)
        except IpamError as exc:
            self.world.log(
                self.name,
                f"pod.go:2465] failed to get static ip {static or '<random>'}, mac "
                f"{mac}, subnet {subnet_name}, err {exc}",
            )
            await self._event(pod, "Warning", "AcquireAddressFailed", str(exc))
            raise Requeue() from None
        subnet = self.client.get(r.SUBNETS, "", subnet_name) or subnet
        spec = subnet.get("spec") or {}
        self.lsps[nic] = Lsp(key, subnet_name, ip, mac_out)
        pod_type = "StatefulSet" if is_sts_pod(pod) else (POD_TYPE_VM if vm else "")
        await self._create_or_update_ip_cr(
            nic,
            pod_name,
            ip,
            mac_out,
            subnet_name,
            namespace,
            str((pod.get("spec") or {}).get("nodeName", "")),
            pod_type,
        )
        patch: dict[str, str | None] = {
            IP_ADDRESS: ip,
            MAC_ADDRESS: mac_out or None,
            CIDR: str(spec.get("cidrBlock", "")),
            GATEWAY: str(spec.get("gateway", "")),
            LOGICAL_SWITCH: subnet_name,
            ALLOCATED: "true",
        }
        node = str((pod.get("spec") or {}).get("nodeName", ""))
        for provider, att_subnet in self._attachment_nets(pod):
            patch.update(await self._allocate_attachment(pod, key, pod_name, provider, att_subnet, node, pod_type))
        if not ann.get(POD_NIC_TYPE):
            patch[POD_NIC_TYPE] = POD_NIC_TYPE_DEFAULT
        if vm and self.keep_vm_ip:
            patch[VM_ANNOTATION] = vm_name
        if spec.get("vpc"):
            patch[LOGICAL_ROUTER] = str(spec["vpc"])
        if (pod.get("spec") or {}).get("nodeName"):
            patch[ROUTED] = "true"
        self.world.log(
            self.name, f"pod.go:651] allocate {ip}, mac {mac_out} for {key} from subnet {subnet_name}"
        )
        if (
            await api.mutate(self.client.as_agent(self.ua), r.PODS, namespace, name, _set_annotations(patch))
            is None
        ):
            # The pod went away between allocation and patch (L786-797): recycle as a delete.
            await self._handle_delete_pod(pod)
        await self._subnet_status(subnet_name)

    def _attachment_nets(self, pod: JSON) -> list[tuple[str, str]]:
        """``getPodKubeovnNets``' attachment part: each network of ``k8s.v1.cni.cncf.io/networks`` whose
        NetworkAttachmentDefinition is a ``kube-ovn`` one, as (provider, subnet): provider ``config.provider``
        (``<nad>.<ns>.ovn``), subnet ``<provider>.kubernetes.io/logical_switch`` else the subnet whose
        ``spec.provider`` is that provider. A missing NAD or subnet is retried (Requeue)."""
        from ..policies import ATTACHMENT_NETWORK_ANNOTATION, parse_networks

        ann = annotations_of(pod)
        raw = ann.get(ATTACHMENT_NETWORK_ANNOTATION, "")
        if not raw or not any(k.key == r.NADS.key for k in self.client.kinds()):
            return []
        namespace = pod["metadata"]["namespace"]
        parsed = parse_networks(raw, namespace)
        if parsed is None:
            self.world.log(self.name, f"pod.go] failed to parse {ATTACHMENT_NETWORK_ANNOTATION} of pod "
                                      f"{namespace}/{pod['metadata']['name']}: {raw}")
            raise Requeue()
        out: list[tuple[str, str]] = []
        for nad, nad_ns in parsed:
            obj = self.client.get(r.NADS, nad_ns, nad)
            if obj is None:
                self.world.log(self.name, f"pod.go] failed to get net-attach-def {nad_ns}/{nad}")
                raise Requeue()
            provider = nad_provider(obj)
            if provider is None:
                continue  # not a kube-ovn attachment
            subnet = ann.get(f"{provider}.kubernetes.io/logical_switch", "").strip() or next(
                (str(sub["metadata"]["name"]) for sub in self.client.iter_raw(r.SUBNETS)
                 if (sub.get("spec") or {}).get("provider") == provider), "")
            if not subnet or subnet not in self.ipam.subnets:
                self.world.log(self.name, f"pod.go] no subnet for provider {provider} of pod "
                                          f"{namespace}/{pod['metadata']['name']}")
                raise Requeue()
            out.append((provider, subnet))
        return out

    async def _allocate_attachment(self, pod: JSON, key: str, pod_name: str, provider: str, subnet_name: str,
                                   node: str, pod_type: str) -> dict[str, str | None]:
        """``acquireAddress`` for one attachment network (``pod.go`` L2171+ at v1.16.2): the same IPAM key,
        NIC (and IP CR) ``<name>.<ns>.<provider>`` (``ovs.PodNameToPortName``), static address and MAC from
        ``<provider>.kubernetes.io/ip_address``/``mac_address``. A failure is ``AcquireAddressFailed`` and a
        retry; the annotations it writes are returned."""
        namespace = pod["metadata"]["namespace"]
        ann = annotations_of(pod)
        nic = port_name(pod_name, namespace, provider)
        static = ann.get(f"{provider}.kubernetes.io/ip_address", "").strip()
        mac = ann.get(f"{provider}.kubernetes.io/mac_address") or None
        try:
            if static:
                ip, mac_out = self.ipam.get_static_address(key, nic, static, mac, subnet_name)
            else:
                ip, mac_out = self.ipam.get_random_address(key, nic, mac, subnet_name)
        except IpamError as exc:
            self.world.log(self.name, f"pod.go:2465] failed to get static ip {static or '<random>'}, mac {mac}, "
                                      f"subnet {subnet_name}, provider {provider}, err {exc}")
            await self._event(pod, "Warning", "AcquireAddressFailed", str(exc))
            raise Requeue() from None
        self.lsps[nic] = Lsp(key, subnet_name, ip, mac_out)
        await self._create_or_update_ip_cr(nic, pod_name, ip, mac_out, subnet_name, namespace, node, pod_type)
        spec = (self.client.get(r.SUBNETS, "", subnet_name) or {}).get("spec") or {}
        self.world.log(self.name, f"pod.go:651] allocate {ip}, mac {mac_out} for {key} from subnet "
                                  f"{subnet_name}, provider {provider}")
        return {
            f"{provider}.kubernetes.io/ip_address": ip,
            f"{provider}.kubernetes.io/mac_address": mac_out or None,
            f"{provider}.kubernetes.io/cidr": str(spec.get("cidrBlock", "")),
            f"{provider}.kubernetes.io/gateway": str(spec.get("gateway", "")),
            f"{provider}.kubernetes.io/logical_switch": subnet_name,
            f"{provider}.kubernetes.io/allocated": "true",
        }

    async def _create_or_update_ip_cr(
        self,
        ip_name: str,
        pod_name: str,
        ip: str,
        mac: str,
        subnet: str,
        namespace: str,
        node: str,
        pod_type: str,
    ) -> None:
        """``createOrUpdateIPCR`` (``ip.go`` L391-537)."""
        v4 = ",".join(a for a in ip.split(",") if a and ":" not in a)
        v6 = ",".join(a for a in ip.split(",") if ":" in a)
        current = self.client.get(r.IPS, "", ip_name)
        if current is not None and is_deleting(current):
            self.queue.add(("ip", ip_name))
            return
        spec = {
            "podName": pod_name,
            "namespace": namespace,
            "subnet": subnet,
            "nodeName": node,
            "ipAddress": ip,
            "v4IpAddress": v4,
            "v6IpAddress": v6,
            "macAddress": mac,
            "attachIps": [],
            "attachMacs": [],
            "attachSubnets": [],
            "podType": pod_type,
        }
        if current is None:
            await self.client.as_agent(self.ua).create(
                r.IPS,
                {
                    "apiVersion": "kubeovn.io/v1",
                    "kind": "IP",
                    "metadata": {
                        "name": ip_name,
                        "labels": {
                            SUBNET_LABEL: subnet,
                            NODE_NAME_LABEL: node,
                            subnet: "",
                            IP_RESERVED_LABEL: "false",
                        },
                        "finalizers": [FINALIZER],
                    },
                    "spec": spec,
                },
            )
            return

        def update(obj: JSON) -> None:
            labels = dict(obj["metadata"].get("labels") or {})
            old_subnet = (obj.get("spec") or {}).get("subnet", "")
            if old_subnet and old_subnet != subnet:
                labels.pop(old_subnet, None)
            labels.update({SUBNET_LABEL: subnet, NODE_NAME_LABEL: node, subnet: ""})
            obj["metadata"]["labels"] = labels
            fins = list(obj["metadata"].get("finalizers") or [])
            if FINALIZER not in fins:
                fins.append(FINALIZER)
            obj["metadata"]["finalizers"] = fins
            obj["spec"] = spec

        probe = deepcopy_json(current)
        update(probe)
        if probe["metadata"]["labels"] == current["metadata"].get("labels") and spec == current.get("spec"):
            return
        await api.mutate(self.client.as_agent(self.ua), r.IPS, "", ip_name, update)

    def _delete_decision(self, pod: JSON) -> DeleteDecision:
        """The keep-or-release part of ``handleDeletePod`` (L1135-1215)."""
        m = pod["metadata"]
        keep = owner_to_del = owner_deleted = False
        ipcr_to_delete: list[str] = []
        vm, vm_name = is_vm_pod(pod)
        if vm and self.keep_vm_ip:
            if m.get("deletionTimestamp"):
                owner_to_del = self._is_vm_to_del(pod, vm_name)
                keep = not owner_to_del
            if keep:
                owner_deleted, ipcr_to_delete = self._check_pod_net_to_del(pod, vm_name)
                if owner_deleted or ipcr_to_delete:
                    keep = False
        return DeleteDecision(keep, owner_to_del, owner_deleted, ipcr_to_delete)

    async def _handle_delete_pod(self, pod: JSON, decision: DeleteDecision | None = None) -> None:
        """``handleDeletePod`` (L1100-1377)."""
        m = pod["metadata"]
        namespace, name = m["namespace"], m["name"]
        current = self.client.get(r.PODS, namespace, name)
        if current is not None and current["metadata"]["uid"] != m.get("uid"):
            return  # a pod with the same name exists again
        pod_name = self.name_by_pod(pod)
        pod_key = f"{namespace}/{pod_name}"
        d = decision or self._delete_decision(pod)
        owner_to_del, owner_deleted, ipcr_to_delete = d.owner_to_del, d.owner_deleted, d.ipcr_to_delete
        vm, _ = is_vm_pod(pod)
        sts = is_sts_pod(pod)
        if d.keep:
            self.world.log(self.name, f"pod.go:1183] try keep ip for vm pod {pod_key}")
            return
        default_nic = port_name(pod_name, namespace)
        # every port of the key: the default one and the attachment networks' (one per podNet upstream)
        nics = [default_nic] + [n for n, lsp in self.lsps.items() if lsp.key == pod_key and n != default_nic]
        for nic in nics:
            self.lsps.pop(nic, None)
        for nic in nics:
            if self.release.skips_vm_pod_ip_cr_cleanup and (sts or vm) and not owner_to_del \
                    and not owner_deleted and default_nic not in ipcr_to_delete:
                self.world.log(self.name, f"pod.go:1326] skip clean ip CR {nic}")
                continue
            ip_cr = self.client.get(r.IPS, "", nic)
            if ip_cr is None:
                continue
            if (ip_cr["metadata"].get("labels") or {}).get(IP_RESERVED_LABEL) == "true":
                continue
            self.world.log(self.name, f"pod.go:1338] delete ip CR {nic}")
            await self._delete_ip_cr(nic)
            subnet = str((ip_cr.get("spec") or {}).get("subnet", ""))
            self.ipam.release_by_nic(pod_key, nic, subnet)
            await self._subnet_status(subnet)

    def _is_vm_to_del(self, pod: JSON, vmi_name: str) -> bool:
        """``isVMToDel`` (L2764-2811)."""
        namespace = pod["metadata"]["namespace"]
        vmi = self.client.get(r.VMIS, namespace, vmi_name)
        if vmi is None:
            vmi_alive, vm_name = False, vmi_name
        else:
            owned, vm_name = False, ""
            for owner in vmi["metadata"].get("ownerReferences") or []:
                if owner.get("kind") == "VirtualMachine" and str(owner.get("apiVersion", "")).startswith(
                    "kubevirt.io/"
                ):
                    owned, vm_name = True, str(owner.get("name", ""))
                    break
            if not owned and is_deleting(vmi):
                return True
            vmi_alive = not is_deleting(vmi)
        if vmi_alive:
            return False
        vm_obj = self.client.get(r.VMS, namespace, vm_name)
        return vm_obj is None or is_deleting(vm_obj)

    def _check_pod_net_to_del(self, pod: JSON, vm_name: str) -> tuple[bool, list[str]]:
        """``appendCheckPodNetToDel`` + ``appendCheckPodNonMultusNetToDel`` + ``shouldCleanPodNet``."""
        namespace = pod["metadata"]["namespace"]
        vm_obj = self.client.get(r.VMS, namespace, vm_name)
        if vm_obj is None:
            return True, []
        owner_ann = dict(
            (((vm_obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations")
            or {}
        )
        ann = annotations_of(pod)
        pod_switch = ann.get(LOGICAL_SWITCH, "").strip()
        if not pod_switch:
            return False, []
        ipcr = port_name(vm_name, namespace)
        owner_subnet = owner_ann.get(LOGICAL_SWITCH, "")
        if not owner_subnet:
            ns_subnets = namespace_subnets(self.client, namespace) or [DEFAULT_SUBNET]
            if pod_switch not in ns_subnets:
                return False, [ipcr]
            return False, []
        subnet = self.client.get(r.SUBNETS, "", pod_switch)
        pod_ip = ann.get(IP_ADDRESS, "")
        if subnet is None or not pod_ip:
            return False, []
        cidr = str((subnet.get("spec") or {}).get("cidrBlock", ""))
        from ..webhook import cidr_contains_ip

        if not cidr or not cidr_contains_ip(cidr, pod_ip) or pod_switch != owner_subnet:
            return False, [ipcr]
        return False, []

    async def _handle_delete_vm(self, namespace: str, name: str) -> None:
        """``handleDeleteVM`` (``kubevirt.go`` L60-94), v1.14.0+ only."""
        if not self.release.releases_stopped_vm_ip:
            return
        vm_key = f"{namespace}/{name}"
        for nic, lsp in list(self.lsps.items()):
            if lsp.key != vm_key:
                continue
            await self._delete_ip_cr(nic)
            self.ipam.release_by_nic(vm_key, nic, lsp.subnet)
            self.lsps.pop(nic, None)
            self.world.log(self.name, f"kubevirt.go:80] release ip {lsp.ip} of deleted vm {vm_key}")
            await self._subnet_status(lsp.subnet)

    async def _mark_and_clean_lsp(self) -> None:
        """``markAndCleanLSP`` (``gc.go`` L315-436 at v1.13.14): ports of alive, allocated pods (named by
        ``getNameByPod``) and, with keep-vm-ip, of existing VMs (``getVMLsps``) are in use; any other port
        is marked on this pass and, if it was already marked on the previous one, deleted with its IP CR
        (unless ``ip_reserved``) and its address."""
        in_use = set()
        in_use_keys = set()  # the attachment networks' ports of those pods and VMs too (same key)
        for pod in self.client.iter_raw(r.PODS):
            if (pod.get("spec") or {}).get("hostNetwork") or not pod_phase_alive(pod):
                continue
            if annotations_of(pod).get(ALLOCATED) == "true":
                in_use.add(port_name(self.name_by_pod(pod), pod["metadata"]["namespace"]))
                in_use_keys.add(f"{pod['metadata']['namespace']}/{self.name_by_pod(pod)}")
        if self.keep_vm_ip:
            for vm in self.client.iter_raw(r.VMS):
                in_use.add(port_name(vm["metadata"]["name"], vm["metadata"]["namespace"]))
                in_use_keys.add(f"{vm['metadata']['namespace']}/{vm['metadata']['name']}")
        marked = set()
        for nic, lsp in list(self.lsps.items()):
            if nic in in_use or lsp.key in in_use_keys:
                continue
            if nic not in self.no_pod_lsps:
                marked.add(nic)
                continue
            self.world.log(self.name, f"gc.go:390] gc logical switch port {nic}")
            self.lsps.pop(nic, None)
            ip_cr = self.client.get(r.IPS, "", nic)
            if ip_cr is None or (ip_cr["metadata"].get("labels") or {}).get(IP_RESERVED_LABEL) == "true":
                continue
            self.world.log(self.name, f"gc.go:405] gc ip {nic}")
            await self._delete_ip_cr(nic)
            self.ipam.release_by_nic(lsp.key, nic, lsp.subnet)
            await self._subnet_status(lsp.subnet)
        self.no_pod_lsps = marked

    async def _delete_ip_cr(self, name: str) -> None:
        """Delete an IP CR and finish its deletion (``handleUpdateIP``: release, drop the finalizer) in the
        same step, so a later queue item - e.g. the launcher pod of a VM recreated under the same name -
        never sees it half-deleted (upstream's update-IP queue normally runs within milliseconds)."""
        try:
            await self.client.as_agent(self.ua).delete(r.IPS, "", name)
        except ApiError as exc:
            if exc.code != 404:
                raise
            return
        await self._handle_deleting_ip(name)

    async def _handle_deleting_ip(self, name: str) -> None:
        """``handleUpdateIP`` for an IP CR with a deletionTimestamp (``ip.go``)."""
        ip_cr = self.client.get(r.IPS, "", name)
        if ip_cr is None or not is_deleting(ip_cr):
            return
        spec = ip_cr.get("spec") or {}
        pod_key = f"{spec.get('namespace', '')}/{spec.get('podName', '')}"
        lsp = self.lsps.get(name)
        if lsp is not None and lsp.key == pod_key:
            del self.lsps[name]
        self.ipam.release_by_nic(pod_key, name, str(spec.get("subnet", "")))

        def drop(obj: JSON) -> None:
            obj["metadata"]["finalizers"] = [
                f
                for f in obj["metadata"].get("finalizers") or []
                if f not in (FINALIZER, "kube-ovn-controller")
            ]

        await api.mutate(self.client.as_agent(self.ua), r.IPS, "", name, drop)
        await self._subnet_status(str(spec.get("subnet", "")))

    # subnets, vpcs, namespaces --------------------------------------------
    def _sync_subnet_now(self, subnet: JSON) -> None:
        spec = subnet.get("spec") or {}
        cidr = str(spec.get("cidrBlock", ""))
        if not _networks(cidr):
            return
        gateway = str(spec.get("gateway") or ",".join(
            str(ipaddress.ip_address(int(n.network_address) + 1)) for n in _networks(cidr)))
        excludes = list(spec.get("excludeIps") or gateway.split(","))
        self.ipam.add_or_update_subnet(subnet["metadata"]["name"], cidr, gateway, excludes)

    async def _handle_subnet(self, name: str) -> None:
        """``formatSubnet`` defaults + IPAM registration + status (``subnet.go``)."""
        subnet = self.client.get(r.SUBNETS, "", name)
        if subnet is None:
            self.ipam.delete_subnet(name)
            return
        if is_deleting(subnet):
            return
        spec = dict(subnet.get("spec") or {})
        cidr = str(spec.get("cidrBlock", ""))
        try:
            net = ipaddress.ip_network(cidr.split(",")[0], strict=False)
        except ValueError:
            self.world.log(self.name, f"subnet.go] subnet {name} has invalid cidr {cidr!r}")
            return
        defaults: dict[str, Any] = {}
        if not spec.get("provider"):
            defaults["provider"] = "ovn"
        if not spec.get("vpc") and spec.get("provider", "ovn") == "ovn":
            defaults["vpc"] = DEFAULT_VPC
        nets = _networks(cidr)
        if not spec.get("protocol"):
            # util.CheckProtocol of the cidrBlock: IPv4, IPv6 or Dual
            defaults["protocol"] = ("Dual" if len({n.version for n in nets}) == 2 else
                                    "IPv4" if net.version == 4 else "IPv6")
        gateway = spec.get("gateway") or ",".join(str(ipaddress.ip_address(int(n.network_address) + 1))
                                                  for n in nets)
        if not spec.get("gateway"):
            defaults["gateway"] = gateway
        if not spec.get("excludeIps"):
            defaults["excludeIps"] = gateway.split(",")
        if not spec.get("gatewayType"):
            defaults["gatewayType"] = "distributed"
        if defaults:

            def fill(obj: JSON) -> None:
                obj.setdefault("spec", {}).update(defaults)

            subnet = await api.mutate(self.client.as_agent(self.ua), r.SUBNETS, "", name, fill) or subnet
        self._sync_subnet_now(subnet)
        await self._subnet_status(name)

    async def _subnet_status(self, name: str) -> None:
        halves = self.ipam.halves(name)
        subnet = self.client.get(r.SUBNETS, "", name)
        if not halves or subnet is None:
            return
        if self._subnet_status_of(halves, subnet) == subnet.get("status"):
            return

        def edit(obj: JSON) -> None:
            obj["status"] = self._subnet_status_of(halves, obj)

        await api.mutate(self.client.as_agent(self.ua), r.SUBNETS, "", name, edit, subresource="status")

    @staticmethod
    def _subnet_status_of(halves: list[SubnetIpam], subnet: JSON) -> JSON:
        """The subnet's status from the IPAM's view of it (conditions keep their times while unchanged);
        a family the subnet lacks counts 0."""
        status = dict(subnet.get("status") or {})
        for fam in ("v4", "v6"):
            half = next((h for h in halves if h.network.version == int(fam[1])), None)
            if half is None:
                status.update({f"{fam}availableIPs": 0, f"{fam}usingIPs": 0})
                continue
            status.update({f"{fam}availableIPs": half.available(), f"{fam}usingIPs": half.using(),
                           f"{fam}usingIPrange": half.using_text()})
        now = now_rfc3339()
        conds = [c for c in status.get("conditions") or [] if c.get("type") not in ("Validated", "Ready")]
        conds += [
            {
                "type": "Validated",
                "status": "True",
                "reason": "ValidateLogicalSwitchSuccess",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
            {
                "type": "Ready",
                "status": "True",
                "reason": "ResourceReady",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
        ]
        old_conds = {c.get("type"): c for c in (subnet.get("status") or {}).get("conditions") or []}
        for c in conds:
            old = old_conds.get(c.get("type"))
            if old is not None and old.get("status") == c.get("status"):
                c.update({k: old[k] for k in ("lastUpdateTime", "lastTransitionTime") if k in old})
        status["conditions"] = conds
        return status

    async def _handle_vpc(self, name: str) -> None:
        vpc = self.client.get(r.VPCS, "", name)
        if vpc is None or is_deleting(vpc):
            return
        subnets = sorted(
            s["metadata"]["name"]
            for s in self.client.iter_raw(r.SUBNETS)
            if (s.get("spec") or {}).get("vpc") == name
        )
        status = dict(vpc.get("status") or {})
        status.update(
            {
                "default": name == DEFAULT_VPC,
                "defaultLogicalSwitch": DEFAULT_SUBNET
                if name == DEFAULT_VPC
                else status.get("defaultLogicalSwitch", ""),
                "router": name,
                "standby": True,
                "subnets": subnets,
            }
        )
        if status == vpc.get("status"):
            return
        vpc["status"] = status
        await api.replace(self.client.as_agent(self.ua), r.VPCS, vpc, subresource="status")

    async def _handle_namespace(self, name: str) -> None:
        """``handleAddNamespace``: the namespace's subnets, CIDRs and excludes as annotations."""
        ns = self.client.get(r.NAMESPACES, "", name)
        if ns is None or is_deleting(ns):
            return
        names = namespace_subnets(self.client, name) or [DEFAULT_SUBNET]
        cidrs, excludes = [], []
        for sname in names:
            subnet = self.client.get(r.SUBNETS, "", sname)
            if subnet is None:
                continue
            spec = subnet.get("spec") or {}
            cidrs.append(str(spec.get("cidrBlock", "")))
            excludes.append(",".join(spec.get("excludeIps") or []))
        wanted = {LOGICAL_SWITCH: ",".join(names), CIDR: ";".join(cidrs), EXCLUDE_IPS: ";".join(excludes)}
        if all(annotations_of(ns).get(k) == v for k, v in wanted.items()):
            return
        await api.mutate(
            self.client.as_agent(self.ua), r.NAMESPACES, "", name, _set_annotations(dict(wanted))
        )

    # events --------------------------------------------------------------
    async def _event(self, pod: JSON, etype: str, reason: str, message: str) -> None:
        await self.world.record_event(
            pod, etype, reason, message, component="kube-ovn-controller", user_agent=self.ua
        )


def _set_annotations(values: dict[str, str | None]) -> Any:
    def apply(obj: JSON) -> None:
        ann = obj.setdefault("metadata", {}).setdefault("annotations", {})
        for k, v in values.items():
            if v is None:
                ann.pop(k, None)
            else:
                ann[k] = v

    return apply


# ----------------------------------------------------------------------------- kube-ovn-cni
def cni_ready(world: World, pod: JSON) -> bool:
    """Whether kube-ovn-cni's ``handleAdd`` would complete for ``pod`` (``pkg/daemon/handler.go``
    L120-240): the pod has an address (``allocated``) and its route (``routed``)."""
    ann = annotations_of(pod)
    return ann.get(ALLOCATED) == "true" and ann.get(ROUTED) == "true" and bool(ann.get(IP_ADDRESS))


async def cni_add(world: World, pod: JSON, node: str) -> None:
    """``UpdateIPCR`` (handler.go L430-471): the IP CR follows the node the pod runs on. The IP CR name
    is the VM name for launcher pods (``ovn.kubernetes.io/virtualmachine``), else the pod name."""
    ann = annotations_of(pod)
    ns = pod["metadata"]["namespace"]
    name = ann.get(VM_ANNOTATION) or pod["metadata"]["name"]
    subnet = ann.get(LOGICAL_SWITCH, "")
    ua = f"kube-ovn-cni/{world.kube_ovn_version}"

    def follow(ip_cr: JSON) -> JSON | None:
        spec = ip_cr.setdefault("spec", {})
        if spec.get("nodeName") == node:
            return None
        spec.update({"nodeName": node, "attachIps": [], "attachSubnets": [], "attachMacs": []})
        labels = ip_cr["metadata"].setdefault("labels", {})
        if subnet:
            labels[subnet] = ""
        labels[NODE_NAME_LABEL] = node
        return ip_cr

    current = world.client.get(r.IPS, "", port_name(name, ns))
    if current is None or is_deleting(current):
        return
    if follow(current) is not None:
        await api.mutate(world.client.as_agent(ua), r.IPS, "", port_name(name, ns), follow)


def pod_ip(pod: JSON) -> str:
    return annotations_of(pod).get(IP_ADDRESS, "").split(",")[0]


def pod_ips(pod: JSON) -> list[str]:
    """Every address of the pod's ``ovn.kubernetes.io/ip_address`` (v4 then v6 on a dual-stack subnet)."""
    return [a.strip() for a in annotations_of(pod).get(IP_ADDRESS, "").split(",") if a.strip()]
