"""The sim's namespace controller deletes a terminating namespace's pods first and everything else only
once no pod is left (``OrderedNamespaceDeletion``, KEP-5080: on by default from Kubernetes 1.33), as the
real kube-controller-manager of ``--backend envtest`` does (seen in its audit log: ``deletecollection
pods``, then the other resources only after the pods are gone)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.sim import resources as r
from conformance.sim.controllers import namespaces
from conformance.sim.store import Store

UA = "test/1"


def _terminating_namespace_with_a_pod_and_a_vm() -> Store:
    s = Store()
    r.register_all(s)
    s.create(r.NAMESPACES, {"metadata": {"name": "ns", "finalizers": []}, "spec": {"finalizers": ["kubernetes"]}},
             user_agent=UA)
    # The kubelet has not finished the pod yet: a finalizer keeps it while it terminates.
    pod: dict[str, Any] = {"metadata": {"name": "virt-launcher-vm-abcde", "finalizers": ["kovc.io/terminating"]},
                           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    s.create(r.PODS, pod, namespace="ns", user_agent=UA)
    s.create(r.VMS, {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm"},
                     "spec": {"runStrategy": "Always", "template": {"spec": {}}}}, namespace="ns", user_agent=UA)
    s.delete(r.NAMESPACES, "", "ns", user_agent=UA)
    return s


def test_pods_go_first_and_the_rest_waits_until_no_pod_is_left() -> None:
    s = _terminating_namespace_with_a_pod_and_a_vm()
    namespaces.sync_namespaces(s, UA, UA, ordered=True)
    pod = s.get(r.PODS, "ns", "virt-launcher-vm-abcde")
    assert pod is not None and pod["metadata"].get("deletionTimestamp"), "the pod is deleted (terminating)"
    vm = s.get(r.VMS, "ns", "vm")
    assert vm is not None and not vm["metadata"].get("deletionTimestamp"), \
        f"the VM must wait while a pod remains, saw {vm['metadata']}"
    namespaces.sync_namespaces(s, UA, UA, ordered=True)
    assert not (s.get(r.VMS, "ns", "vm") or {}).get("metadata", {}).get("deletionTimestamp"), "still waiting"

    def drop_finalizer(current: dict[str, Any]) -> None:
        current["metadata"]["finalizers"] = []

    s.mutate(r.PODS, "ns", "virt-launcher-vm-abcde", drop_finalizer, user_agent=UA)
    assert s.get(r.PODS, "ns", "virt-launcher-vm-abcde") is None
    namespaces.sync_namespaces(s, UA, UA, ordered=True)
    assert s.get(r.VMS, "ns", "vm") is None, "no pod left: the VM is deleted"
    namespaces.sync_namespaces(s, UA, UA, ordered=True)
    assert s.get(r.NAMESPACES, "", "ns") is None, "then the namespace is finalized"


def test_before_kubernetes_1_33_everything_is_deleted_in_one_pass() -> None:
    s = _terminating_namespace_with_a_pod_and_a_vm()
    namespaces.sync_namespaces(s, UA, UA, ordered=False)
    assert s.get(r.VMS, "ns", "vm") is None
    assert (s.get(r.PODS, "ns", "virt-launcher-vm-abcde") or {}).get("metadata", {}).get("deletionTimestamp")


@pytest.mark.parametrize(("version", "ordered"), [("v1.32.9", False), ("v1.33.0", True), ("v1.35.1", True)])
def test_the_gate_follows_the_modelled_kubernetes_release(version: str, ordered: bool) -> None:
    assert namespaces.ordered_deletion(version) is ordered
