"""Legitimate operations on a static-IP VM are admitted, the VM is Running and reachable at its IP at
the end, and its IP CR ``<vm>.<ns>`` is the same object (name and uid) with the same ipAddress,
v4/v6IpAddress, macAddress, podName ``<vm>``, podType ``VirtualMachine``, namespace and subnet
(nodeName and labels may change)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from conformance import assertions, names, waits
from conformance.assertions import IPIdentity
from conformance.kube import VMS, Kube
from conformance.verbs import VM, Actions

SUBNET = "ovn-default"


def running_holder(act: Actions, ns: str, name: str | None = None) -> tuple[VM, IPIdentity]:
    """A static-IP VM, Running with its launcher pod allocated, and its IP CR checked."""
    vm = act.create_vm(ns, name or names.holder(), act.take_ip(SUBNET), SUBNET)
    act.wait_vm_running(vm)
    ident = assertions.snapshot_ip(act.kube, vm.name, ns)
    problems = assertions.expected_identity_problems(ident, vm.name, ns, vm.ip, vm.subnet)
    assert not problems, f"IP CR {vm.ip_cr} of the new {vm} is wrong: {'; '.join(problems)}"
    return vm, ident


def end_state(act: Actions, vm: VM, before: IPIdentity, after_what: str) -> None:
    """The end of every allow.* scenario: the same IP CR, and the VM answers at its IP."""
    assertions.assert_same_identity(act.kube, before, vm.name, vm.namespace, after_what)
    act.reachable(vm)


@pytest.mark.conformance("allow.restart")
def test_restart(ns: str, act: Actions) -> None:
    """Restart through the subresource API keeps the static IP."""
    vm, before = running_holder(act, ns)
    act.restart(vm)
    end_state(act, vm, before, "a restart")


@pytest.mark.conformance("allow.stop-start")
def test_stop_start(ns: str, act: Actions) -> None:
    """Stop, then start: the VM comes back with its static IP."""
    vm, before = running_holder(act, ns)
    act.stop(vm)
    assertions.assert_same_identity(act.kube, before, vm.name, ns, "a stop (keep-vm-ip keeps the IP CR)")
    act.start(vm)
    end_state(act, vm, before, "stop and start")


@pytest.mark.conformance("allow.launcher-pod-deleted")
def test_launcher_pod_deleted(ns: str, act: Actions) -> None:
    """The launcher pod is deleted (runStrategy Always): the replacement keeps the static IP."""
    vm, before = running_holder(act, ns)
    act.delete_launcher_pod(vm)
    end_state(act, vm, before, "the launcher pod was deleted")


@pytest.mark.exclusive
@pytest.mark.conformance("allow.live-migration")
def test_live_migration(kube: Kube, ns: str, act: Actions) -> None:
    """Live migration to another node (bridge binding +
    ``kubevirt.io/allow-pod-bridge-network-live-migration``) keeps the static IP."""
    nodes = kube.schedulable_vm_nodes()
    if len(nodes) < 2:
        pytest.skip("live migration needs two nodes labelled kubevirt.io/schedulable=true without "
                    f"NoSchedule taints; found {len(nodes)} ({', '.join(nodes) or 'none'})")
    vm, before = running_holder(act, ns)
    source, target = act.migrate(vm)
    assert source != target, f"expected {vm} to move to another node; it stayed on {source}"
    end_state(act, vm, before, f"live migration {source} -> {target}")


@pytest.mark.conformance("allow.recreate")
def test_recreate(ns: str, act: Actions) -> None:
    """Delete the VM, wait until its IP CR is gone and a dryRun probe for the address is admitted,
    create it again with the same name and IP."""
    vm, _ = running_holder(act, ns)
    act.delete_vm(vm)
    waits.wait_gone(act.kube, VMS, ns, vm.name, act.t(120))
    act.dry_run_until(ns, vm.ip, vm.subnet, "admitted")
    again = act.create_vm(ns, vm.name, vm.ip, vm.subnet)
    act.wait_vm_running(again, after="after recreate")
    ident = assertions.snapshot_ip(act.kube, again.name, ns)
    problems = assertions.expected_identity_problems(ident, again.name, ns, again.ip, again.subnet)
    assert not problems, f"IP CR {again.ip_cr} of the recreated {again} is wrong: {'; '.join(problems)}"
    act.reachable(again)


@pytest.mark.conformance("allow.immediate-recreate")
def test_immediate_recreate(ns: str, act: Actions, record: Any) -> None:
    """The same as allow.recreate without waiting for the IP CR: within 120 s the VM is Running, its
    IP CR exists with podName ``<vm>``, and it is reachable. Kube-OVN's ``handleDeleteVM`` deletes by
    port name (``pkg/controller/kubevirt.go`` L60-94 at v1.16.2), so if it ran after the recreated VM's
    launcher pod was allocated it would delete the new VM's IP CR; the evidence says which order this
    cluster showed."""
    vm, before = running_holder(act, ns)
    act.delete_vm(vm, wait_ip_gone=False)
    waits.wait_gone(act.kube, VMS, ns, vm.name, act.t(120))  # the name must be free to create it again
    again = act.create_vm(ns, vm.name, vm.ip, vm.subnet)
    act.wait_vm_running(again, timeout=act.t(120), after="after an immediate recreate")
    try:
        cr = waits.wait_for(act.kube, "IP", None, again.ip_cr,
                            lambda o: (o.get("spec") or {}).get("podName") == again.name, act.t(120),
                            what=f"IP CR {again.ip_cr} with podName {again.name}")
    except waits.WaitTimeout as exc:
        raise AssertionError(f"{exc}; the recreated {again} runs (launcher pod {again.launcher}) without "
                             "its IP CR: the old VM's release (handleDeleteVM, which deletes by port name) "
                             "ran after the new launcher pod was allocated") from None
    problems = assertions.expected_identity_problems(IPIdentity.from_cr(cr), again.name, ns, again.ip,
                                                     again.subnet)
    assert not problems, f"IP CR {again.ip_cr} of the recreated {again} is wrong: {'; '.join(problems)}"
    order = ("the old VM's IP CR was released before the new launcher pod was allocated (a new IP CR, "
             f"uid {cr['metadata'].get('uid')} replacing {before.uid})"
             if cr["metadata"].get("uid") != before.uid else
             f"the old VM's IP CR (uid {before.uid}) was never released; the recreated VM reuses it")
    record.case("release and allocation order", "passed", message=order)
    act.reachable(again)


@pytest.mark.conformance("allow.repeated-restarts")
def test_repeated_restarts(ns: str, act: Actions) -> None:
    """Five restarts in a row keep the static IP."""
    vm, before = running_holder(act, ns)
    for i in range(1, 6):
        act.restart(vm)
        assertions.assert_same_identity(act.kube, before, vm.name, ns, f"restart {i} of 5")
    end_state(act, vm, before, "five restarts")


@pytest.mark.exclusive
@pytest.mark.conformance("allow.concurrent-restarts")
def test_concurrent_restarts(settings: Any, ns: str, act: Actions) -> None:
    """N static-IP VMs (default 3, ``--concurrency``) restarted at once keep their static IPs."""
    n = int(settings.concurrency)
    vms = [act.create_vm(ns, names.holder(), act.take_ip(SUBNET), SUBNET) for _ in range(n)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(act.wait_vm_running, vms))
    before = {vm.name: assertions.snapshot_ip(act.kube, vm.name, ns) for vm in vms}
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(act.restart, vm) for vm in vms]
        errors = []
        for vm, fut in zip(vms, futures, strict=True):
            try:
                fut.result()
            except AssertionError as exc:
                errors.append(f"{vm}: {exc}")
    assert not errors, (f"{len(errors)} of {n} concurrently restarted VMs did not come back:\n"
                        + "\n".join(errors))
    for vm in vms:
        end_state(act, vm, before[vm.name], f"a concurrent restart of {n} VMs")


@pytest.mark.conformance("allow.ip-reuse-after-delete")
def test_ip_reuse_after_delete(ns: str, act: Actions) -> None:
    """After a VM is deleted and its IP CR released, a VM with another name takes that IP."""
    first, _ = running_holder(act, ns)
    act.delete_vm(first)
    act.dry_run_until(ns, first.ip, first.subnet, "admitted")
    second = act.create_vm(ns, names.holder(), first.ip, first.subnet)
    act.wait_vm_running(second, after=f"taking the released {first.ip}")
    ident = assertions.snapshot_ip(act.kube, second.name, ns)
    problems = assertions.expected_identity_problems(ident, second.name, ns, second.ip, second.subnet)
    assert not problems, f"IP CR {second.ip_cr} of {second} is wrong: {'; '.join(problems)}"
    act.reachable(second)


@pytest.mark.conformance("allow.same-ip-other-subnet")
def test_same_ip_other_subnet(ns: str, act: Actions, other_vpc_subnet: Any) -> None:
    """The same address in subnets of two different VPCs, chosen by an explicit
    ``ovn.kubernetes.io/logical_switch``, is not a collision."""
    holder, before = running_holder(act, ns)
    subnet = other_vpc_subnet(holder.ip, users=[ns])
    ip = act.addresses.take_same(holder.ip, subnet)
    other = act.create_vm(ns, names.holder(), ip, subnet)
    act.wait_vm_running(other, after=f"requesting {ip} in subnet {subnet} of another VPC")
    ident = assertions.snapshot_ip(act.kube, other.name, ns)
    problems = assertions.expected_identity_problems(ident, other.name, ns, ip, subnet)
    assert not problems, f"IP CR {other.ip_cr} of {other} is wrong: {'; '.join(problems)}"
    end_state(act, holder, before, f"another VM took {ip} in subnet {subnet}")
    act.reachable(other)


@pytest.mark.conformance("allow.same-ip-namespace-bound-vpc")
def test_same_ip_namespace_bound_vpc(ns: str, namespace_factory: Any, act: Actions,
                                     other_vpc_subnet: Any) -> None:
    """The holder VM holds X in ``ovn-default``; a second VM, created afterwards in a namespace bound
    to a subnet of another VPC that also contains X, requests X without a logical_switch
    annotation: not a collision."""
    holder, before = running_holder(act, ns)
    bound_ns = namespace_factory(prefix="kovc-bound")
    subnet = other_vpc_subnet(holder.ip, namespaces=[bound_ns])
    ip = act.addresses.take_same(holder.ip, subnet)
    # subnet resolution is the point: no logical_switch annotation
    other = act.create_vm(bound_ns, names.holder(), ip, None)
    act.wait_vm_running(other, after=f"requesting {ip} in namespace {bound_ns} bound to subnet {subnet}")
    ident = assertions.snapshot_ip(act.kube, other.name, bound_ns)
    problems = assertions.expected_identity_problems(ident, other.name, bound_ns, ip, subnet)
    assert not problems, f"IP CR {other.ip_cr} of {other} is wrong: {'; '.join(problems)}"
    end_state(act, holder, before, f"another VM took {ip} in the namespace-bound subnet {subnet}")
    other.subnet = subnet  # the probe must join the VM's subnet
    act.reachable(other)
