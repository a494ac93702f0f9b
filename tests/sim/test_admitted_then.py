"""What became of an admitted challenger (:func:`conformance.assertions.admitted_then`) is decided by the
first definitive answer — an allocation, an IPAM refusal, a plain pod collected without either — not by
waiting out the observation window (issue #12: a definitive answer ends the wait). Each case checks the
classification and that the wait ended on the evaluation, never on :class:`WaitTimeout`."""

from __future__ import annotations

from typing import Any

import pytest
from verb_helpers import sim_actions

from conformance import assertions, names, templates, waits
from conformance.kube import VMIS, Kube
from conformance.sim.cluster import SimCluster, world_available
from conformance.verbs import VM

pytestmark = pytest.mark.skipif(not world_available(), reason="conformance.sim.world is absent")

#: Far longer than any answer takes on the simulated cluster: a wait that reaches it is a failure here.
WINDOW = 60.0




@pytest.fixture
def timeouts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every watch that ended on its deadline, by what it waited for."""
    expired: list[str] = []
    real = waits.watch_until

    def watch_until(*args: Any, **kwargs: Any) -> Any:
        try:
            return real(*args, **kwargs)
        except waits.WaitTimeout:
            expired.append(str(kwargs.get("what")))
            raise

    monkeypatch.setattr(waits, "watch_until", watch_until)
    return expired


def _holder(kube: Kube, ns: str, ip: str) -> VM:
    act = sim_actions(kube)
    kube.create_vm(ns, templates.render_vm(name="web", namespace=ns, ip=ip, subnet=None, run_id=kube.run_id))
    return act.wait_vm_running(VM(name="web", namespace=ns, ip=ip, subnet=None))


def _pod(kube: Kube, ns: str, name: str, ip: str, **kwargs: Any) -> None:
    kube.create_pod(ns, templates.render_pod(name=name, namespace=ns, ip=ip, subnet=None, run_id=kube.run_id,
                                             **kwargs))


def test_a_plain_pod_named_like_the_vm_takes_over_at_once(
        sim_cluster: SimCluster, sim_namespace: str, kube: Kube, timeouts: list[str]) -> None:
    vm = _holder(kube, sim_namespace, "10.16.0.61")
    _pod(kube, sim_namespace, "web", vm.ip)  # v1.16.2 admits it (its owner check sees no VMI owner)
    then = assertions.admitted_then(kube, sim_namespace, "web", "pod", vm.ip, vm.ip_cr, WINDOW)
    assert then == "took-over-address"
    assert timeouts == []


def test_an_ipam_refusal_ends_the_wait(
        sim_cluster: SimCluster, sim_namespace: str, kube: Kube, timeouts: list[str]) -> None:
    vm = _holder(kube, sim_namespace, "10.16.0.62")
    name = names.challenger()
    _pod(kube, sim_namespace, name, vm.ip, annotations={templates.MIGRATION_ANNOTATION: "mig-1"})
    then = assertions.admitted_then(kube, sim_namespace, name, "pod", vm.ip, vm.ip_cr, WINDOW)
    assert then == "blocked-by-ipam"
    assert timeouts == []


def test_a_collected_pod_ends_the_wait_unallocated(
        sim_cluster: SimCluster, sim_namespace: str, kube: Kube, timeouts: list[str]) -> None:
    """A forged owner in another namespace: the garbage collector removes the pod before any allocation
    (whether it is still there when the wait starts or already gone: both end the wait at once)."""
    vm = _holder(kube, sim_namespace, "10.16.0.63")
    vmi = kube.require(VMIS, sim_namespace, vm.name)
    other = f"{sim_namespace}-o"
    kube.create_namespace(other)
    owner = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "name": vm.name,
             "uid": vmi["metadata"]["uid"], "controller": True}
    name = names.challenger()
    _pod(kube, other, name, vm.ip, owner_references=[owner])
    then = assertions.admitted_then(kube, other, name, "pod", vm.ip, vm.ip_cr, WINDOW)
    assert then in ("unallocated", "blocked-by-ipam"), then  # the GC and IPAM race (docs/verdict-derivation.md)
    assert timeouts == []


def test_nothing_definitive_waits_the_window(
        sim_cluster: SimCluster, sim_namespace: str, kube: Kube, timeouts: list[str]) -> None:
    """The rule is no shortcut to an answer: a VM challenger with no launcher pod yet (it may still come)
    waits the window out, and says so."""
    then = assertions.admitted_then(kube, sim_namespace, "absent", "vm", "10.16.0.64", "absent.x", 0.3)
    assert then == "unallocated"
    assert len(timeouts) == 1 and "refused by IPAM" in timeouts[0], timeouts


def test_a_pod_gone_before_the_first_look_ends_the_wait(
        sim_cluster: SimCluster, sim_namespace: str, kube: Kube, timeouts: list[str]) -> None:
    """The collected-pod case with the collector faster than the suite (seen once under load: the wait
    then ran its whole window): an admitted plain pod no longer there is gone, unallocated."""
    vm = _holder(kube, sim_namespace, "10.16.0.65")
    name = names.challenger()
    _pod(kube, sim_namespace, name, "10.16.0.66")
    kube.delete_pod(sim_namespace, name, grace_period=0)
    then = assertions.admitted_then(kube, sim_namespace, name, "pod", "10.16.0.66", vm.ip_cr, WINDOW)
    assert then in ("unallocated", "took-over-address"), then  # allocated before the delete: an answer too
    assert timeouts == []
