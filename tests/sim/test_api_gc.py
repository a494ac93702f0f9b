"""Garbage collection (background, foreground, orphan) and namespace deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from conformance.sim.cluster import SimCluster
from conformance.sim.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from conformance.sim.store import Store

Waiter = Callable[..., None]


@pytest.fixture
def core(sim_api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(sim_api)


def owned_by(owner: Any, block: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": owner.metadata.name,
            "uid": owner.metadata.uid,
            "blockOwnerDeletion": block,
        }
    ]


def make_family(core: k8s.CoreV1Api, ns: str, block: bool = False) -> tuple[Any, list[str]]:
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    kids = ["kid-a", "kid-b"]
    for kid in kids:
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": kid, "ownerReferences": owned_by(owner, block)}}
        )
    return owner, kids


def gone(ns: str, *names: str) -> Callable[[Store], bool]:
    return lambda s: all(s.get(CONFIGMAPS, ns, n) is None for n in names)


def test_background_deletes_dependents_after_owner(
    core: k8s.CoreV1Api, sim_namespace: str, sim_wait: Waiter, sim_cluster: SimCluster
) -> None:
    _, kids = make_family(core, sim_namespace)
    core.delete_namespaced_config_map("owner", sim_namespace, propagation_policy="Background")
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("owner", sim_namespace)
    sim_wait(gone(sim_namespace, *kids), f"dependents {kids} deleted by the garbage collector")
    deleters = {
        e["userAgent"]
        for e in sim_cluster.audit()
        if e["namespace"] == sim_namespace and e["name"] in kids and e["verb"] == "delete"
    }
    assert len(deleters) == 1 and next(iter(deleters)).startswith("kube-controller-manager/"), deleters
    assert "kovc" not in next(iter(deleters))


def test_owner_in_another_namespace_is_absent(
    core: k8s.CoreV1Api, sim_namespace: str, sim_wait: Waiter, sim_cluster: SimCluster
) -> None:
    """A namespaced owner is resolved in the dependent's own namespace (issue 10 item 12): a reference
    to a live owner in another namespace, even with its exact uid, counts as absent, so the dependent
    is collected and a Warning OwnerRefInvalidNamespace is written about it; the owner is untouched."""
    other = f"{sim_namespace}-x"
    core.create_namespace({"metadata": {"name": other}})
    owner = core.create_namespaced_config_map(sim_namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(other, {"metadata": {"name": "forged", "ownerReferences": owned_by(owner)}})
    sim_wait(gone(other, "forged"), "a dependent whose only owner is in another namespace collected")
    assert core.read_namespaced_config_map("owner", sim_namespace).metadata.uid == owner.metadata.uid
    events = core.list_namespaced_event(other).items
    reasons = [(e.reason, e.type, e.involved_object.name) for e in events]
    assert ("OwnerRefInvalidNamespace", "Warning", "forged") in reasons, reasons
    core.delete_namespace(other)


def test_dependent_with_a_live_owner_survives(
    core: k8s.CoreV1Api, sim_namespace: str, sim_wait: Waiter
) -> None:
    first = core.create_namespaced_config_map(sim_namespace, {"metadata": {"name": "o1"}})
    second = core.create_namespaced_config_map(sim_namespace, {"metadata": {"name": "o2"}})
    core.create_namespaced_config_map(
        sim_namespace, {"metadata": {"name": "shared", "ownerReferences": owned_by(first) + owned_by(second)}}
    )
    core.delete_namespaced_config_map("o1", sim_namespace)

    def dangling_ref_removed(s: Store) -> bool:
        obj = s.get(CONFIGMAPS, sim_namespace, "shared")
        assert obj is not None, "a dependent with a live owner must not be deleted"
        return [r["uid"] for r in obj["metadata"].get("ownerReferences", [])] == [second.metadata.uid]

    sim_wait(dangling_ref_removed, "the reference to the deleted owner removed from 'shared'")


def test_foreground_waits_for_blocking_dependents(
    core: k8s.CoreV1Api, sim_namespace: str, sim_wait: Waiter, sim_cluster: SimCluster
) -> None:
    _, kids = make_family(core, sim_namespace, block=True)
    # A finalizer on one dependent keeps it (and so the owner) around until we release it.
    core.patch_namespaced_config_map("kid-a", sim_namespace, {"metadata": {"finalizers": ["kovc.io/hold"]}})
    core.delete_namespaced_config_map("owner", sim_namespace, propagation_policy="Foreground")
    owner = core.read_namespaced_config_map("owner", sim_namespace)
    assert owner.metadata.deletion_timestamp and "foregroundDeletion" in owner.metadata.finalizers
    sim_wait(
        lambda s: (
            s.get(CONFIGMAPS, sim_namespace, "kid-b") is None
            and (s.get(CONFIGMAPS, sim_namespace, "kid-a") or {}).get("metadata", {}).get("deletionTimestamp")
            is not None
        ),
        "kid-b deleted and kid-a terminating",
    )
    still = sim_cluster.call(lambda s: s.get(CONFIGMAPS, sim_namespace, "owner"))
    assert still is not None, "the owner must wait for its blocking dependent kid-a"
    core.patch_namespaced_config_map("kid-a", sim_namespace, {"metadata": {"finalizers": None}})
    sim_wait(gone(sim_namespace, "owner", *kids), "owner deleted once its blocking dependents are gone")


def test_orphan_keeps_dependents_without_the_reference(
    core: k8s.CoreV1Api, sim_namespace: str, sim_wait: Waiter, sim_cluster: SimCluster
) -> None:
    _, kids = make_family(core, sim_namespace)
    core.delete_namespaced_config_map("owner", sim_namespace, propagation_policy="Orphan")
    sim_wait(gone(sim_namespace, "owner"), "owner deleted after orphaning")
    for kid in kids:
        obj = sim_cluster.call(lambda s, k=kid: s.get(CONFIGMAPS, sim_namespace, k))
        assert obj is not None, f"orphaned dependent {kid} must survive"
        assert not obj["metadata"].get("ownerReferences"), f"{kid} still references its deleted owner"


def test_namespace_deletion_terminates_then_disappears(
    sim_cluster: SimCluster, core: k8s.CoreV1Api, sim_wait: Waiter
) -> None:
    created = core.create_namespace({"metadata": {"name": "doomed"}})
    assert created.status.phase == "Active" and created.spec.finalizers == ["kubernetes"]
    sim_wait(
        lambda s: s.get(SERVICEACCOUNTS, "doomed", "default") is not None, "serviceaccount doomed/default"
    )
    core.create_namespaced_config_map(
        "doomed", {"metadata": {"name": "held", "finalizers": ["kovc.io/hold"]}}
    )
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "free"}})
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert err.value.status == 403, "no new content in a terminating namespace"
    sim_wait(
        lambda s: (
            s.get(CONFIGMAPS, "doomed", "free") is None
            and s.get(SERVICEACCOUNTS, "doomed", "default") is None
        ),
        "namespace content deleted",
    )
    assert sim_cluster.call(lambda s: s.get(NAMESPACES, "", "doomed")) is not None, (
        "the namespace must wait for 'held' (finalizer) to go"
    )
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    sim_wait(lambda s: s.get(NAMESPACES, "", "doomed") is None, "namespace doomed gone")
