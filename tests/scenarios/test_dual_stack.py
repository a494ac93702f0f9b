"""Dual-stack static addresses (apply when the cluster has a dual-stack subnet; otherwise the requirements
are reported not applicable, with what the API showed).

A VM requests ``ovn.kubernetes.io/ip_address: "<v4>,<v6>"`` in the dual-stack subnet found through the
API (``capabilities.dual_stack_subnet``), named by ``ovn.kubernetes.io/logical_switch``. Legitimate
operations keep both addresses and the IP CR; another VM claiming the IPv6 - with its own IPv4 - is
rejected at admission, created only once the holder runs."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import assertions, names
from conformance.assertions import IPIdentity
from conformance.verbs import VM, Actions


@pytest.fixture
def dual_subnet(capabilities: Any) -> str:
    subnet = capabilities.dual_stack_subnet
    assert subnet, "no dual-stack subnet, yet the requirement was not declared not applicable"
    return str(subnet)


def running_dual_stack_vm(act: Actions, ns: str, subnet: str) -> tuple[VM, IPIdentity]:
    """A VM with a static IPv4 and IPv6 of ``subnet``, Running with both on its launcher pod, and an IP
    CR holding both (``v4IpAddress``, ``v6IpAddress``)."""
    vm = act.create_vm(ns, names.holder(), act.take_ip(subnet, 4), subnet, ipv6=act.take_ip(subnet, 6))
    act.wait_vm_running(vm)
    ident = assertions.snapshot_ip(act.kube, vm.name, ns)
    problems = assertions.expected_identity_problems(ident, vm.name, ns, vm.ip, subnet)
    if (ident.v4_ip_address, ident.v6_ip_address) != (vm.ip, vm.ipv6):
        problems.append(f"v4IpAddress/v6IpAddress {ident.v4_ip_address!r}/{ident.v6_ip_address!r} "
                        f"(expected {vm.ip!r}/{vm.ipv6!r})")
    assert not problems, f"IP CR {vm.ip_cr} of the new {vm} is wrong: {'; '.join(problems)}"
    return vm, ident


@pytest.fixture
def dual_holder(ns: str, act: Actions, dual_subnet: str) -> VM:
    """A running dual-stack VM (the precondition of deny.other-vm-ipv6)."""
    return running_dual_stack_vm(act, ns, dual_subnet)[0]


@pytest.mark.exclusive
@pytest.mark.conformance("allow.restart-dual-stack")
def test_restart_dual_stack(ns: str, act: Actions, dual_subnet: str) -> None:
    """A dual-stack static-IP VM is restarted, stopped and started, and live-migrated: each is admitted,
    the VM runs with both addresses and its IP CR is unchanged (v4IpAddress, v6IpAddress included)."""
    vm, before = running_dual_stack_vm(act, ns, dual_subnet)

    def stop_start() -> None:
        act.stop(vm)
        act.start(vm)

    act.keep_through(vm, before, [
        ("restart", lambda: act.restart(vm)),
        ("stop and start", stop_start),
        ("live migration", lambda: act.migrate(vm)),
    ], migration="live migration")


@pytest.mark.conformance("deny.other-vm-ipv6")
def test_other_vm_ipv6(ns: str, act: Actions, dual_holder: VM, dual_subnet: str) -> None:
    """A VM with another name requests its own free IPv4 together with the running holder's IPv6:
    denied at admission, the holder keeps both addresses."""
    result = act.challenge_with_vm(dual_holder, ns, names.challenger(), disputed=dual_holder.ipv6,
                                   ip=act.take_ip(dual_subnet, 4), ipv6=dual_holder.ipv6)
    act.judge("another VM requests the holder's IPv6 with its own IPv4", result)
    assert result.denied and not result.holder_problems, result.message + (
        "; holder affected: " + "; ".join(result.holder_problems) if result.holder_problems else "")
