"""Genuine collisions are rejected at admission — the pod create is denied; for a VM challenger the
VMI shows ``Synchronized=False/FailedCreate`` with the webhook's denial — and the holder keeps running
with its IP. A challenger that is admitted fails the requirement, is deleted at once, and the report
says what happened next (``admitted_then``).

Every scenario runs the holder first (Running, launcher pod allocated; no booted guest needed), then
repeats a dryRun probe for the holder's IP until it is denied (the webhook reads a cache), then
sends the challenger. Holders are made in fixtures: a holder that cannot run is an *error* of the
scenario (its precondition), never a failed requirement."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import assertions, names, templates
from conformance.kube import Kube
from conformance.verbs import VM, Actions

SUBNET = "ovn-default"


def holder_vm(act: Actions, ns: str, name: str | None = None) -> VM:
    vm = act.create_vm(ns, name or names.holder(), act.take_ip(SUBNET), SUBNET)
    act.wait_vm_running(vm)
    return vm


@pytest.fixture
def holder(ns: str, act: Actions) -> VM:
    """A running static-IP VM in ``ns`` (the precondition of every deny.* scenario)."""
    return holder_vm(act, ns)


@pytest.fixture
def clone_api(kube: Kube) -> None:
    """Skip (before any holder is made) where the clone API is absent."""
    if not kube.clone_api_available():
        pytest.skip("the VirtualMachineClone API (clone.kubevirt.io/v1beta1) is not served by this cluster")


@pytest.fixture
def prefix_holders(namespace_factory: Any, act: Actions) -> list[tuple[str, VM, str, str]]:
    """deny.name-prefix: (case, running holder in its own namespace, challenger name, challenger kind)."""
    cases: list[tuple[str, str, str, str]] = []
    for short, long in names.prefix_pairs().values():
        cases.append((f"VM {long} requests the IP of VM {short}", short, long, "vm"))
        cases.append((f"VM {short} requests the IP of VM {long}", long, short, "vm"))
    short, long = names.prefix_pairs()["web/web-1"]
    cases.append((f"plain pod {short} requests the IP of VM {long}", long, short, "pod"))
    return [(case, holder_vm(act, namespace_factory(prefix="kovc-prefix"), holder_name), challenger, kind)
            for case, holder_name, challenger, kind in cases]


def decide(act: Actions, case: str, result: Any) -> None:
    act.judge(case, result)
    assert result.denied and not result.holder_problems, result.message + (
        "; holder affected: " + "; ".join(result.holder_problems) if result.holder_problems else "")


@pytest.mark.conformance("deny.other-vm")
def test_other_vm(ns: str, act: Actions, holder: VM) -> None:
    """A VM with another name requests a running VM's IP: denied."""
    decide(act, "another VM requests the IP", act.challenge_with_vm(holder, ns, names.challenger()))


@pytest.mark.conformance("deny.pod-takes-vm-ip")
def test_pod_takes_vm_ip(ns: str, act: Actions, holder: VM) -> None:
    """A plain pod requests a VM's IP: denied."""
    decide(act, "a plain pod requests the IP", act.challenge_with_pod(holder, ns, names.challenger()))


@pytest.mark.conformance("deny.name-prefix")
def test_name_prefix(act: Actions, prefix_holders: list[tuple[str, VM, str, str]]) -> None:
    """Names that contain each other are still distinct: both directions (``web``/``web-1``,
    ``vm1``/``vm10``) for VMs, and a plain pod whose name is contained in the VM's name; each
    sub-case reported."""
    failures = []
    for case, holder, challenger, kind in prefix_holders:
        if kind == "vm":
            result = act.challenge_with_vm(holder, holder.namespace, challenger)
        else:
            result = act.challenge_with_pod(holder, holder.namespace, challenger)
        act.judge(case, result)
        if not result.denied or result.holder_problems:
            failures.append(f"{case}: {result.message}")
    assert not failures, f"{len(failures)} of {len(prefix_holders)} sub-cases failed:\n" + "\n".join(failures)


@pytest.mark.conformance("deny.stopped-vm-ip")
def test_stopped_vm_ip(ns: str, act: Actions, holder: VM) -> None:
    """The IP of a stopped VM (kept by keep-vm-ip) is requested by another VM: denied."""
    act.stop(holder)
    assertions.snapshot_ip(act.kube, holder.name, ns)  # kept while stopped
    result = act.challenge_with_vm(holder, ns, names.challenger(), holder_running=False)
    decide(act, "another VM requests a stopped VM's IP", result)


@pytest.mark.conformance("deny.clone")
def test_clone(clone_api: None, ns: str, act: Actions, holder: VM) -> None:
    """A ``VirtualMachineClone`` of the holder without ``annotationFilters`` requests the holder's
    IP: denied."""
    target = names.challenger()

    def create() -> None:
        act.clone_vm(ns, holder.name, target)

    decide(act, "an unfiltered clone of the holder", act.challenge_with_vm(holder, ns, target, create=create))


@pytest.mark.conformance("deny.spoofed-launcher")
def test_spoofed_launcher(kube: Kube, ns: str, act: Actions, holder: VM) -> None:
    """A plain pod named ``virt-launcher-<vm>-<5 chars>`` carrying every label of the holder's live
    launcher pod verbatim, with no ownerReferences: denied."""
    launcher = kube.require("Pod", ns, holder.launcher)
    labels = dict(launcher["metadata"].get("labels") or {})
    result = act.challenge_with_pod(holder, ns, names.launcher_like(holder.name), labels=labels)
    decide(act, "a pod impersonating the launcher pod", result)


@pytest.mark.conformance("deny.cross-namespace")
def test_cross_namespace(ns: str, namespace_factory: Any, act: Actions, holder: VM) -> None:
    """A VM with the same name in another namespace, same subnet, requests the holder's IP: denied."""
    other = namespace_factory(prefix="kovc-other")
    decide(act, "a same-named VM in another namespace", act.challenge_with_vm(holder, other, holder.name))


@pytest.mark.conformance("deny.pod-named-like-vm")
def test_pod_named_like_vm(ns: str, act: Actions, holder: VM) -> None:
    """A plain pod in the VM's namespace whose name equals the VM's requests its IP: denied."""
    decide(act, "a plain pod named like the VM", act.challenge_with_pod(holder, ns, holder.name))


@pytest.mark.conformance("deny.spoofed-migration")
def test_spoofed_migration(ns: str, act: Actions, holder: VM) -> None:
    """A plain pod carrying ``kubevirt.io/migrationJobName`` requests the holder's IP: denied."""
    result = act.challenge_with_pod(holder, ns, names.challenger(),
                                    annotations={templates.MIGRATION_ANNOTATION: names.unique("mig")})
    decide(act, "a plain pod forging a migration annotation", result)


@pytest.mark.conformance("deny.forged-owner-ref")
def test_forged_owner_ref(kube: Kube, ns: str, namespace_factory: Any, act: Actions, holder: VM) -> None:
    """A pod in another namespace with an ownerReference to the holder's VMI (kind, apiVersion, name
    and uid) requests the holder's IP: denied. (Forging within the holder's own namespace is out of
    scope: same tenant.)"""
    vmi = kube.require("VirtualMachineInstance", ns, holder.name)
    owner = {"apiVersion": vmi.get("apiVersion", "kubevirt.io/v1"), "kind": "VirtualMachineInstance",
             "name": holder.name, "uid": vmi["metadata"]["uid"], "controller": True}
    other = namespace_factory(prefix="kovc-other")
    result = act.challenge_with_pod(holder, other, names.challenger(), owner_references=[owner])
    decide(act, "a pod in another namespace forging the VMI owner", result)
