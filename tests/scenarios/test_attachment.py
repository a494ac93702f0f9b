"""Static addresses on attachment networks (apply when Multus is present: its NetworkAttachmentDefinition
API is served; otherwise the requirements are reported not applicable, with what the API showed).

Each scenario makes its own attachment network in its namespace, the way upstream's e2e does: a
NetworkAttachmentDefinition whose CNI is Kube-OVN (provider ``<nad>.<ns>.ovn``) and a subnet with that
``spec.provider`` (in a run-owned VPC). A VM gets a second bridge interface on it (``networks[].multus``)
and pins its address there with ``<nad>.<ns>.ovn.kubernetes.io/ip_address``; its pod-network address is
dynamic, so only the attachment address is at stake. Its IP CR is ``<vm>.<ns>.<nad>.<ns>.ovn``.
Challengers are created only once the holder runs."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from conformance import assertions, names, templates, waits
from conformance.assertions import IPIdentity
from conformance.kube import NADS, Kube
from conformance.templates import Attachment
from conformance.verbs import IP_RELEASE_BOUND, VM, Actions


@pytest.fixture
def attachment_network(ns: str, kube: Kube, other_vpc_subnet: Callable[..., str]) -> tuple[str, str]:
    """(NetworkAttachmentDefinition, subnet) of a fresh Kube-OVN attachment network in ``ns``; the subnet
    (a /28 of 172.20.0.0/14 in a run-owned VPC) and its IP CRs are cleaned up after the VMs of ``ns``."""
    nad = names.unique("kovc-nad")
    seed = f"172.{20 + secrets.randbelow(4)}.{secrets.randbelow(256)}.{16 * secrets.randbelow(16) + 5}"
    subnet = other_vpc_subnet(seed, users=[ns], provider=templates.nad_provider(nad, ns))
    kube.create(NADS, ns, templates.render_nad(name=nad, namespace=ns, run_id=kube.run_id))
    return nad, subnet


def running_attachment_vm(act: Actions, ns: str, network: tuple[str, str]) -> tuple[VM, IPIdentity]:
    """A VM with a static address on the attachment network, Running with it allocated on its launcher pod
    (``<provider>.kubernetes.io/ip_address``, ``…/allocated``), and its attachment IP CR naming it."""
    nad, subnet = network
    attachment = Attachment(nad=nad, nad_namespace=ns, subnet=subnet, ip=act.take_ip(subnet))
    vm = act.create_vm(ns, names.holder(), "", None, attachment=attachment)
    act.wait_vm_running(vm)
    name = attachment.ip_cr(vm.name, ns)
    ident = assertions.snapshot_named(act.kube, name, str(vm))
    problems = assertions.expected_identity_problems(ident, vm.name, ns, attachment.ip, subnet)
    assert not problems, f"attachment IP CR {name} of the new {vm} is wrong: {'; '.join(problems)}"
    return vm, ident


@pytest.fixture
def attachment_holder(ns: str, act: Actions, attachment_network: tuple[str, str]) -> VM:
    """A running VM holding a static attachment address (the precondition of deny.attachment-other-vm)."""
    return running_attachment_vm(act, ns, attachment_network)[0]


@pytest.mark.exclusive
@pytest.mark.conformance("allow.attachment-restart")
def test_attachment_restart(ns: str, act: Actions, attachment_network: tuple[str, str]) -> None:
    """A VM with a static attachment address is restarted and live-migrated: each is admitted, the VM runs
    with the address allocated on the attachment network, and its attachment IP CR is unchanged."""
    vm, attachment_before = running_attachment_vm(act, ns, attachment_network)
    before = assertions.snapshot_ip(act.kube, vm.name, ns)  # its (dynamic) pod-network IP CR
    act.keep_through(vm, before, [
        ("restart", lambda: act.restart(vm)),
        ("live migration", lambda: act.migrate(vm)),
    ], attachment_before=attachment_before)


@pytest.mark.conformance("deny.attachment-other-vm")
def test_attachment_other_vm(ns: str, act: Actions, attachment_network: tuple[str, str],
                             attachment_holder: VM) -> None:
    """A VM with another name requests the running holder's attachment address on the same attachment
    network: rejected at admission, the holder keeps it."""
    held = attachment_holder.attachment
    assert held is not None
    result = act.challenge_with_vm(attachment_holder, ns, names.challenger(), disputed=held.ip,
                                   attachment=Attachment(nad=held.nad, nad_namespace=ns, subnet=held.subnet,
                                                         ip=held.ip))
    act.judge("another VM requests the holder's attachment address", result)
    assert result.denied and not result.holder_problems, result.message + (
        "; holder affected: " + "; ".join(result.holder_problems) if result.holder_problems else "")


@pytest.mark.conformance("state.attachment-ip-released-on-delete")
def test_attachment_ip_released_on_delete(ns: str, act: Actions, record: Any, addresses: Any,
                                          attachment_network: tuple[str, str]) -> None:
    """The attachment IP CR disappears within 120 s of deleting a running VM and within 120 s of deleting
    a stopped VM (two cases, both reported); the bound is fixed, as state.ip-released-on-delete's."""
    bound = act.fixed(IP_RELEASE_BOUND)
    vms = [running_attachment_vm(act, ns, attachment_network)[0] for _ in range(2)]
    for (case, stop_first), vm in zip((("running VM deleted", False), ("stopped VM deleted", True)), vms,
                                      strict=True):
        assert vm.attachment is not None
        name = vm.attachment.ip_cr(vm.name, ns)
        with record.subcase(case):
            if stop_first:
                act.stop(vm)
                assertions.snapshot_named(act.kube, name, f"the stopped {vm}")  # kept while stopped
            act.kube.delete_vm(ns, vm.name)
            try:
                waits.wait_gone(act.kube, "IP", None, name, bound,
                                what=f"attachment IP CR {name} to be released within the fixed "
                                     f"{IP_RELEASE_BOUND:.0f} s ({bound:g} s on this cluster's clock) after "
                                     f"deleting the {'stopped' if stop_first else 'running'} {vm}")
            except waits.WaitTimeout as exc:
                addresses.mark_leaked(vm.attachment.ip)
                raise AssertionError(str(exc)) from None
    assert not record.failed(), record.failure_text()
