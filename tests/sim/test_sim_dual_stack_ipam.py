"""Issue 14: the simulated IPAM's dual-stack subnets (one address per family, one MAC) and static MACs,
as upstream's ``pkg/ipam`` (``IPAM.GetStaticAddress``, ``Subnet.GetStaticMac``)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from verb_helpers import sim_actions

from conformance.sim.controllers.kubeovn import ERR_CONFLICT, ERR_OUT_OF_RANGE, Ipam, IpamError, port_name


@pytest.fixture
def ipam() -> Ipam:
    ipam = Ipam(random.Random(1))
    ipam.add_or_update_subnet("dual", "10.18.0.0/16,fd00:10:18::/112", "10.18.0.1,fd00:10:18::1",
                              ["10.18.0.1", "fd00:10:18::1"])
    ipam.add_or_update_subnet("v4", "10.16.0.0/16", "10.16.0.1", ["10.16.0.1"])
    return ipam


def test_static_dual_stack_address_and_one_mac(ipam: Ipam) -> None:
    ip, mac = ipam.get_static_address("ns/vm", "vm.ns", "10.18.0.5,fd00:10:18::5", None, "dual")
    assert ip == "10.18.0.5,fd00:10:18::5" and mac.startswith("00:00:00:")
    # the same key gets both back (a restart); another key conflicts on either family
    assert ipam.get_static_address("ns/vm", "vm.ns", "10.18.0.5,fd00:10:18::5", None, "dual") == (ip, mac)
    with pytest.raises(IpamError, match=ERR_CONFLICT):
        ipam.get_static_address("ns/other", "other.ns", "10.18.0.6,fd00:10:18::5", None, "dual")
    # the failed second family released the first: 10.18.0.6 is free again
    assert ipam.holder("dual", "10.18.0.6") == []
    assert ipam.holder("dual", "fd00:10:18::5") == ["ns/vm"]


def test_one_family_given_the_other_at_random(ipam: Ipam) -> None:
    ip, _ = ipam.get_static_address("ns/vm", "vm.ns", "10.18.0.7", None, "dual")
    v4, v6 = ip.split(",")
    assert v4 == "10.18.0.7" and v6.startswith("fd00:10:18::")


def test_a_family_the_subnet_lacks_is_out_of_range(ipam: Ipam) -> None:
    with pytest.raises(IpamError, match=ERR_OUT_OF_RANGE):
        ipam.get_static_address("ns/vm", "vm.ns", "10.16.0.9,fd00:10:16::9", None, "v4")
    assert ipam.holder("v4", "10.16.0.9") == []


def test_random_dual_stack_address_and_release(ipam: Ipam) -> None:
    ip, mac = ipam.get_random_address("ns/p", "p.ns", None, "dual")
    v4, v6 = ip.split(",")
    ipam.release_by_nic("ns/p", "p.ns", "dual")
    assert ipam.holder("dual", v4) == [] and ipam.holder("dual", v6) == []
    assert mac


def test_static_mac_held_by_another_key_conflicts_before_the_address(ipam: Ipam) -> None:
    ipam.get_static_address("ns/vm", "vm.ns", "10.16.0.20", "02:6b:00:00:00:01", "v4")
    with pytest.raises(IpamError, match=ERR_CONFLICT):
        ipam.get_static_address("ns/other", "other.ns", "10.16.0.21", "02:6b:00:00:00:01", "v4")
    assert ipam.holder("v4", "10.16.0.21") == []
    # the holder keeps it across a restart (same key, same NIC)
    assert ipam.get_static_address("ns/vm", "vm.ns", "10.16.0.20", "02:6b:00:00:00:01", "v4") == (
        "10.16.0.20", "02:6b:00:00:00:01")


def test_attachment_port_names() -> None:
    assert port_name("vm", "ns") == "vm.ns"
    assert port_name("vm", "ns", "nad.ns.ovn") == "vm.ns.nad.ns.ovn"


def test_a_dual_stack_install_makes_ovn_default_dual(tmp_path: Path) -> None:
    """``--sim-ovn-default dual`` (what ``--ip-family dual`` installs on kind; the stand-in kind serves it):
    ovn-default is ``protocol: Dual`` with install.sh's DUAL_STACK CIDRs, and a VM pinned to an IPv4
    address there gets a random IPv6 beside it (``checkAndAppendIpsForDual``), kept on its IP CR."""
    from conformance import templates
    from conformance.kube import Kube
    from conformance.sim.cluster import SimCluster
    from conformance.sim.config import SimConfig
    from conformance.verbs import VM

    with SimCluster(SimConfig(ovn_default="dual")) as sim:
        kube = Kube(str(sim.write_kubeconfig(tmp_path / "kubeconfig")), None, run_id="r-dual")
        try:
            subnet = kube.require("Subnet", None, "ovn-default")
            assert subnet["spec"]["protocol"] == "Dual"
            assert subnet["spec"]["cidrBlock"] == "10.16.0.0/16,fd00:10:16::/112"
            kube.create_namespace("d")
            kube.create_vm("d", templates.render_vm(name="web", namespace="d", ip="10.16.0.30", subnet=None,
                                                    run_id=kube.run_id))
            act = sim_actions(kube)
            vm = act.wait_vm_running(VM(name="web", namespace="d", ip="10.16.0.30", subnet=None))
            cr = kube.require("IP", None, vm.ip_cr)
            v4, v6 = cr["spec"]["ipAddress"].split(",")
            assert v4 == "10.16.0.30" and v6.startswith("fd00:10:16::"), cr["spec"]
            assert cr["spec"]["v6IpAddress"] == v6
        finally:
            kube.close()

