from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from conformance.addresses import (
    AddressPool,
    SubnetInfo,
    enclosing_cidr,
    ip_cr_addresses,
    parse_exclude,
    parse_ip,
)


def subnet(name: str, cidr: str, gateway: str, exclude: list[str] | None = None,
           vpc: str = "ovn-cluster") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"cidrBlock": cidr, "gateway": gateway,
                                                 "excludeIps": exclude or [gateway], "vpc": vpc}}


def ip_cr(name: str, address: str, subnet_name: str = "ovn-default") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ipAddress": address, "v4IpAddress": address,
                                                 "subnet": subnet_name}}


class FakeKube:
    """Only what AddressPool reads: subnets and IP CRs."""

    def __init__(self, subnets: list[dict[str, Any]], ips: list[dict[str, Any]]) -> None:
        self.subnets = {s["metadata"]["name"]: s for s in subnets}
        self.ips = ips

    def get_subnet(self, name: str) -> dict[str, Any] | None:
        return self.subnets.get(name)

    def list_ips(self) -> list[dict[str, Any]]:
        return list(self.ips)


@dataclass
class S:
    run_id: str = "r-test"
    worker_index: int = 0
    worker_count: int = 1


def pool(kube: FakeKube, **kw: Any) -> AddressPool:
    return AddressPool(kube, S(**kw))  # type: ignore[arg-type]


def test_malformed_ip_is_one_clear_line() -> None:
    with pytest.raises(ValueError) as err:
        parse_ip("10.16.0.300")
    assert "malformed IP address '10.16.0.300'" in str(err.value) and "\n" not in str(err.value)


def test_exclude_ranges_and_usable() -> None:
    info = SubnetInfo.from_cr(subnet("s", "10.0.0.0/24", "10.0.0.1", ["10.0.0.1", "10.0.0.10..10.0.0.20"]))
    assert parse_exclude(["1.2.3.4..1.2.3.9"])[0][1] == parse_ip("1.2.3.9")
    assert info.usable(parse_ip("10.0.0.15")) and "excludeIps" in str(info.usable(parse_ip("10.0.0.15")))
    assert "gateway" in str(info.usable(parse_ip("10.0.0.1")))
    assert "broadcast" in str(info.usable(parse_ip("10.0.0.255")))
    assert "not in subnet" in str(info.usable(parse_ip("10.0.1.5")))
    assert info.usable(parse_ip("10.0.0.30")) is None


def test_take_skips_held_excluded_gateway_and_is_unique() -> None:
    kube = FakeKube([subnet("ovn-default", "10.0.0.0/28", "10.0.0.1", ["10.0.0.1", "10.0.0.13"])],
                    [ip_cr("x.y", "10.0.0.14")])
    p = pool(kube)
    got = [p.take() for _ in range(11)]
    assert len(set(got)) == 11
    assert not {"10.0.0.0", "10.0.0.1", "10.0.0.13", "10.0.0.14", "10.0.0.15"} & set(got)
    with pytest.raises(LookupError, match="no free IPv4 address"):
        p.take()


def test_workers_never_collide() -> None:
    kube = FakeKube([subnet("ovn-default", "10.16.0.0/16", "10.16.0.1")], [])
    seen: dict[str, int] = {}
    for worker in range(3):
        p = pool(kube, worker_index=worker, worker_count=3)
        for _ in range(50):
            ip = p.take()
            assert ip not in seen, f"{ip} handed to workers {seen.get(ip)} and {worker}"
            seen[ip] = worker


def test_take_same_and_other_vpc_cidr() -> None:
    kube = FakeKube([subnet("ovn-default", "10.16.0.0/16", "10.16.0.1")], [])
    p = pool(kube)
    ip = p.take()
    cidr, gw = enclosing_cidr(ip)
    assert gw != ip and parse_ip(ip) in __import__("ipaddress").ip_network(cidr)
    kube.subnets["other"] = subnet("other", cidr, gw, vpc="v2")
    kube.ips.append(ip_cr("h.ns", ip, "ovn-default"))  # the holder's CR in the default subnet
    assert p.take_same(ip, "other") == ip
    kube.ips.append(ip_cr("o.ns", ip, "other"))
    with pytest.raises(ValueError, match="already held"):
        p.take_same(ip, "other")
    with pytest.raises(ValueError, match="not handed out"):
        p.take_same("10.16.5.5", "ovn-default")


@pytest.mark.parametrize("address",
                         ["10.16.205.223", "10.16.205.208", "10.16.255.254", "10.16.0.2", "fd00::ff"])
def test_enclosing_cidr_keeps_the_address_a_host(address: str) -> None:
    import ipaddress
    cidr, gateway = enclosing_cidr(address)
    net = ipaddress.ip_network(cidr)
    ip = ipaddress.ip_address(address)
    assert ip in net and ip not in (net.network_address, net.broadcast_address)
    assert gateway != address and ipaddress.ip_address(gateway) in net


def test_ip_cr_addresses_dual_stack() -> None:
    cr = {"spec": {"ipAddress": "10.0.0.5,fd00::5", "v4IpAddress": "10.0.0.5", "v6IpAddress": "fd00::5"}}
    assert ip_cr_addresses(cr) == {"10.0.0.5", "fd00::5"}


def test_leaked_addresses_are_never_handed_out() -> None:
    kube = FakeKube([subnet("ovn-default", "10.0.0.0/29", "10.0.0.1")], [])
    p = pool(kube)
    p.mark_leaked("10.0.0.6")
    got = {p.take() for _ in range(4)}
    assert "10.0.0.6" not in got
