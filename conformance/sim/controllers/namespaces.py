"""Namespace lifecycle of the simulated cluster (kube-controller-manager's namespace and
service-account controllers).

- Every namespace gets ``spec.finalizers: [kubernetes]``, ``status.phase: Active`` (the API server
  sets both on create; objects seeded straight into the store get them here) and a ``default``
  ServiceAccount.
- A deleted namespace is ``Terminating`` (the store sets ``deletionTimestamp`` and the phase because
  of the ``kubernetes`` finalizer); every namespaced object in it is deleted, and once none is left
  the finalizer is removed, which completes the deletion.
"""

from __future__ import annotations

import logging

from ..config import SimConfig
from ..resources import NAMESPACES, SERVICEACCOUNTS
from ..store import JSON, ApiError, Store
from .gc import controller_user_agent, reconcile_loop

log = logging.getLogger("conformance.sim.namespaces")

FINALIZER = "kubernetes"


def _set_phase(store: Store, name: str, phase: str, user_agent: str) -> None:
    def edit(current: JSON) -> None:
        current.setdefault("status", {})["phase"] = phase

    store.mutate(NAMESPACES, "", name, edit, user_agent=user_agent, subresource="status")


def _finalize(store: Store, name: str, user_agent: str) -> None:
    def edit(current: JSON) -> None:
        spec = current.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]

    store.mutate(NAMESPACES, "", name, edit, user_agent=user_agent)


def _add_finalizer(store: Store, name: str, user_agent: str) -> None:
    def edit(current: JSON) -> None:
        current.setdefault("spec", {})["finalizers"] = [FINALIZER]

    store.mutate(NAMESPACES, "", name, edit, user_agent=user_agent)


def _purge(store: Store, namespace: str, user_agent: str) -> int:
    """Delete every namespaced object in ``namespace``; how many still exist (before this pass)."""
    remaining = 0
    for rt in list(store.types.values()):
        if not rt.namespaced or rt.key == NAMESPACES.key:
            continue
        for obj in store.in_namespace(rt, namespace):
            meta = obj.get("metadata", {})
            remaining += 1
            if meta.get("deletionTimestamp"):
                continue
            try:
                store.delete(rt, namespace, meta["name"], user_agent=user_agent, propagation="Background")
            except ApiError as err:
                if err.code != 404:
                    log.warning("namespace controller: deleting %s %s/%s: %s", rt.plural, namespace,
                                meta.get("name"), err.message)
    return remaining


def sync_namespaces(store: Store, ns_agent: str, sa_agent: str) -> None:
    """One pass over every namespace."""
    for ns in store.iter_raw(NAMESPACES):
        meta = ns.get("metadata", {})
        name = meta.get("name", "")
        try:
            if meta.get("deletionTimestamp"):
                if (ns.get("status") or {}).get("phase") != "Terminating":
                    _set_phase(store, name, "Terminating", ns_agent)
                finalizers = (ns.get("spec") or {}).get("finalizers") or []
                if _purge(store, name, ns_agent) == 0 and FINALIZER in finalizers:
                    _finalize(store, name, ns_agent)
                continue
            if "finalizers" not in (ns.get("spec") or {}):
                _add_finalizer(store, name, ns_agent)
            if not (ns.get("status") or {}).get("phase"):
                _set_phase(store, name, "Active", ns_agent)
            if store.get(SERVICEACCOUNTS, name, "default") is None:
                store.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                               "metadata": {"name": "default", "namespace": name}},
                             namespace=name, user_agent=sa_agent)
        except ApiError as err:
            if err.code not in (404, 409, 403):
                log.warning("namespace controller: namespace %s: %s", name, err.message)


async def run(store: Store, config: SimConfig) -> None:
    """The namespace and service-account controllers, until cancelled."""
    ns_agent = controller_user_agent(config, "namespace-controller")
    sa_agent = controller_user_agent(config, "service-account-controller")
    await reconcile_loop(store, lambda: sync_namespaces(store, ns_agent, sa_agent),
                         name="namespace controller", delay=config.step_delay)
