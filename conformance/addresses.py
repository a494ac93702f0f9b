"""Static addresses for the run's workloads.

An address handed out is never held by an existing IP CR (foreign or leaked), never in a subnet's
``excludeIps``, never a gateway, network or broadcast address, and unique within the run across
subnets (unless a requirement asks for the same address: :meth:`AddressPool.take_same`).

xdist workers never collide: candidate positions, counted down from the top of each subnet (Kube-OVN
hands out dynamic addresses from the bottom), are interleaved between workers (position ``p`` belongs
to worker ``p % worker_count``), and the starting point is derived from the run id so that two runs
sharing a cluster rarely probe the same addresses first.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .templates import DEFAULT_SUBNET

if TYPE_CHECKING:
    from .kube import Kube

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Settings(Protocol):
    run_id: str
    worker_index: int
    worker_count: int


def parse_ip(value: str) -> IPAddress:
    """An IP address; ValueError with one clear line for malformed input."""
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValueError(f"malformed IP address {value!r}: expected e.g. 10.16.0.10 or fd00::a") from None


def parse_cidr(value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ValueError(f"malformed CIDR {value!r}: expected e.g. 10.16.0.0/16") from None


def parse_exclude(entries: list[str]) -> list[tuple[IPAddress, IPAddress]]:
    """Kube-OVN ``excludeIps`` entries: single addresses or ``a..b`` ranges."""
    out: list[tuple[IPAddress, IPAddress]] = []
    for entry in entries or []:
        if ".." in entry:
            lo, hi = entry.split("..", 1)
            out.append((parse_ip(lo), parse_ip(hi)))
        else:
            ip = parse_ip(entry)
            out.append((ip, ip))
    return out


def ip_cr_addresses(ip_cr: dict[str, Any]) -> set[str]:
    """Every address an IP CR holds (ipAddress, v4IpAddress, v6IpAddress; dual-stack split)."""
    spec = ip_cr.get("spec") or {}
    out: set[str] = set()
    for key in ("ipAddress", "v4IpAddress", "v6IpAddress"):
        for part in str(spec.get(key) or "").split(","):
            part = part.strip()
            if part:
                try:
                    out.add(str(ipaddress.ip_address(part)))
                except ValueError:
                    continue
    return out


@dataclass(frozen=True)
class SubnetInfo:
    name: str
    networks: tuple[IPNetwork, ...]
    gateways: frozenset[IPAddress]
    excluded: tuple[tuple[IPAddress, IPAddress], ...]
    vpc: str

    @classmethod
    def from_cr(cls, cr: dict[str, Any]) -> SubnetInfo:
        spec = cr.get("spec") or {}
        name = cr["metadata"]["name"]
        cidrs = [c for c in str(spec.get("cidrBlock") or "").split(",") if c.strip()]
        if not cidrs:
            raise ValueError(f"subnet {name} has no spec.cidrBlock")
        gateways = frozenset(parse_ip(g) for g in str(spec.get("gateway") or "").split(",") if g.strip())
        return cls(name=name, networks=tuple(parse_cidr(c) for c in cidrs), gateways=gateways,
                   excluded=tuple(parse_exclude(list(spec.get("excludeIps") or []))),
                   vpc=str(spec.get("vpc") or ""))

    def network(self, family: int) -> IPNetwork | None:
        return next((n for n in self.networks if n.version == family), None)

    def usable(self, ip: IPAddress) -> str | None:
        """None when ``ip`` may be requested in this subnet, else why not."""
        net = self.network(ip.version)
        if net is None or ip not in net:
            return f"{ip} is not in subnet {self.name} ({', '.join(map(str, self.networks))})"
        if ip == net.network_address or (ip.version == 4 and ip == net.broadcast_address
                                         and net.prefixlen < 31):
            return f"{ip} is the network or broadcast address of {net}"
        if ip in self.gateways:
            return f"{ip} is the gateway of subnet {self.name}"
        for lo, hi in self.excluded:
            if lo.version == ip.version and lo <= ip <= hi:  # type: ignore[operator]
                return f"{ip} is in excludeIps of subnet {self.name}"
        return None


def enclosing_cidr(address: str, prefixlen: int = 28) -> tuple[str, str]:
    """A small CIDR containing ``address`` as a host address (not its network or broadcast
    address) and a gateway in it that is not ``address`` (for a run-owned subnet of another VPC
    that must contain the same address)."""
    ip = parse_ip(address)
    if ip.version == 6 and prefixlen < 64:
        prefixlen = 120
    for plen in range(prefixlen, 7, -1):
        net = ipaddress.ip_network(f"{ip}/{plen}", strict=False)
        if ip not in (net.network_address, net.broadcast_address):
            break
    hosts = net.hosts()
    gateway = next(hosts)
    if gateway == ip:
        gateway = next(hosts)
    return str(net), str(gateway)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class AddressPool:
    """Hands out the run's static addresses (one pool per process / xdist worker)."""

    def __init__(self, kube: Kube, settings: _Settings) -> None:
        self.kube = kube
        self.run_id = settings.run_id
        self.worker_index = int(settings.worker_index)
        self.worker_count = max(1, int(settings.worker_count))
        if not 0 <= self.worker_index < self.worker_count:
            raise ValueError(f"worker index {self.worker_index} outside 0..{self.worker_count - 1}")
        self._subnets: dict[str, SubnetInfo] = {}
        self._taken: set[str] = set()
        self._leaked: set[str] = set()
        self._cursor: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    # -- knowledge of the cluster ---------------------------------------------------------------

    def subnet(self, name: str, *, refresh: bool = False) -> SubnetInfo:
        if refresh or name not in self._subnets:
            cr = self.kube.get_subnet(name)
            if cr is None:
                raise LookupError(f"subnet {name!r} not found in the cluster")
            self._subnets[name] = SubnetInfo.from_cr(cr)
        return self._subnets[name]

    def held(self) -> dict[str, set[str]]:
        """Address → subnets of the IP CRs holding it (read now)."""
        out: dict[str, set[str]] = {}
        for cr in self.kube.list_ips():
            subnet = str((cr.get("spec") or {}).get("subnet") or "")
            for addr in ip_cr_addresses(cr):
                out.setdefault(addr, set()).add(subnet)
        return out

    # -- handing out ----------------------------------------------------------------------------

    def _positions(self, span: int) -> int:
        """The first position of this worker, offset by the run id."""
        groups = max(1, span // (4 * self.worker_count))
        return (_stable_hash(self.run_id) % groups) * self.worker_count + self.worker_index

    def take(self, subnet: str = DEFAULT_SUBNET, family: int = 4) -> str:
        """A fresh address of ``subnet`` for this worker (see the module docstring)."""
        with self._lock:
            info = self.subnet(subnet)
            net = info.network(family)
            if net is None:
                ranges = ", ".join(map(str, info.networks))
                raise LookupError(f"subnet {subnet} has no IPv{family} range ({ranges})")
            held = self.held()
            top = int(net.broadcast_address) - (1 if net.version == 4 else 0)
            bottom = int(net.network_address) + 1
            span = max(0, top - bottom + 1)
            key = (subnet, family)
            start = self._cursor.get(key)
            if start is None:
                start = self._positions(span)
            pos = start
            while pos < start + span:
                if not span:
                    break
                n = top - (pos % span)
                candidate: IPAddress = (ipaddress.IPv4Address(n) if net.version == 4
                                        else ipaddress.IPv6Address(n))
                pos += self.worker_count
                text = str(candidate)
                if text in self._taken or text in self._leaked or text in held:
                    continue
                if info.usable(candidate) is not None:
                    continue
                self._cursor[key] = pos
                self._taken.add(text)
                return text
            raise LookupError(f"no free IPv{family} address left in subnet {subnet} for worker "
                              f"{self.worker_index}/{self.worker_count} "
                              f"({len(self._taken)} taken by this run)")

    def take_same(self, address: str, subnet: str) -> str:
        """``address`` (already taken by this run) for a workload in another ``subnet``, when it is
        usable there and no IP CR of that subnet holds it."""
        ip = parse_ip(address)
        text = str(ip)
        with self._lock:
            if text not in self._taken:
                raise ValueError(f"{text} was not handed out by this run: take it first")
            info = self.subnet(subnet, refresh=True)
            why = info.usable(ip)
            if why:
                raise ValueError(why)
            holders = self.held().get(text, set())
            if subnet in holders:
                raise ValueError(f"{text} is already held by an IP CR in subnet {subnet}")
            return text

    def mark_leaked(self, address: str) -> None:
        """Never hand ``address`` out again in this process (its IP CR outlived its workload)."""
        with self._lock:
            self._leaked.add(str(parse_ip(address)))

    @property
    def taken(self) -> set[str]:
        with self._lock:
            return set(self._taken)
