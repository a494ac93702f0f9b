"""Static MAC addresses (``ovn.kubernetes.io/mac_address``; always applicable).

A VM pins its IP and its MAC: restart and live migration keep both, on the launcher pod and in the IP
CR. Another VM claiming a running VM's MAC, with its own free IP, must never run holding it: Kube-OVN's
webhook does not look at the MAC at all, so the evidence says whether it was denied at admission or
refused by IPAM (``GetStaticMac``: ``AddressConflict``). The challenger is created only once the holder
runs."""

from __future__ import annotations

import pytest

from conformance import assertions, names
from conformance.assertions import IPIdentity
from conformance.verbs import VM, Actions

SUBNET = "ovn-default"


def running_mac_vm(act: Actions, ns: str) -> tuple[VM, IPIdentity]:
    """A VM with a static IP and MAC, Running with both on its launcher pod, its IP CR holding both."""
    vm = act.create_vm(ns, names.holder(), act.take_ip(SUBNET), SUBNET, mac=names.static_mac())
    act.wait_vm_running(vm)
    ident = assertions.snapshot_ip(act.kube, vm.name, ns)
    problems = assertions.expected_identity_problems(ident, vm.name, ns, vm.ip, SUBNET)
    if ident.mac_address.lower() != vm.mac:
        problems.append(f"macAddress {ident.mac_address!r} (expected {vm.mac!r})")
    assert not problems, f"IP CR {vm.ip_cr} of the new {vm} is wrong: {'; '.join(problems)}"
    return vm, ident


@pytest.fixture
def mac_holder(ns: str, act: Actions) -> VM:
    """A running VM with a static IP and MAC (the precondition of deny.mac-collision)."""
    return running_mac_vm(act, ns)[0]


@pytest.mark.exclusive
@pytest.mark.conformance("allow.static-mac-restart")
def test_static_mac_restart(ns: str, act: Actions) -> None:
    """A VM with a static IP and MAC is restarted and live-migrated: each is admitted, the VM runs with
    its IP and MAC, and its IP CR is unchanged (macAddress the requested MAC)."""
    vm, before = running_mac_vm(act, ns)
    act.keep_through(vm, before, [
        ("restart", lambda: act.restart(vm)),
        ("live migration", lambda: act.migrate(vm)),
    ], migration="live migration")


@pytest.mark.conformance("deny.mac-collision")
def test_mac_collision(ns: str, act: Actions, mac_holder: VM) -> None:
    """A VM with another name and its own free IP requests the running holder's MAC: it never runs
    holding it (denied at admission, or refused by IPAM with an event), and the holder keeps its IP and
    MAC."""
    result = act.challenge_mac(mac_holder, ns, names.challenger())
    act.judge("another VM requests the holder's MAC", result)
    assert result.denied and not result.holder_problems, result.message + (
        "; holder affected: " + "; ".join(result.holder_problems) if result.holder_problems else "")
