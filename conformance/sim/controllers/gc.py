"""The garbage collector of the simulated cluster (kube-controller-manager's ``garbagecollector``).

Runs as an asyncio task on the store's loop and reconciles after every batch of store events (and
once a second as a safety net):

- **background** propagation: a dependent (``metadata.ownerReferences``, matched by ``uid``) none of
  whose owners exist any more is deleted; references to owners that are gone are removed from a
  dependent that still has a live owner. A namespaced owner is looked up **in the dependent's own
  namespace**, as the real collector does: a reference to an owner in another namespace is absent
  (the dependent is collected when no other owner is left) and a Warning Event
  ``OwnerRefInvalidNamespace`` is written about the dependent (Kubernetes >= 1.20; "Owners and
  dependents" in kubernetes/website ``content/en/docs/concepts/overview/working-with-objects/owners-dependents.md``,
  ``pkg/controller/garbagecollector/graph_builder.go`` ``reportInvalidNamespaceOwnerRef``);
- **foreground**: an owner being deleted with the ``foregroundDeletion`` finalizer gets its
  dependents deleted, and loses the finalizer (and so disappears) once no dependent with
  ``blockOwnerDeletion: true`` is left;
- **orphan**: an owner being deleted with the ``orphan`` finalizer has its reference removed from
  every dependent, then loses the finalizer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ..config import SimConfig
from ..store import JSON, ApiError, ResourceType, Store

log = logging.getLogger("conformance.sim.gc")

#: Seconds between full resyncs when no event arrives.
RESYNC_SECONDS = 1.0


def controller_user_agent(config: SimConfig, component: str) -> str:
    """The User-Agent kube-controller-manager's controllers write with."""
    return f"kube-controller-manager/{config.kubernetes_version} (linux/amd64) kubernetes/{component}"


async def reconcile_loop(store: Store, sync: Callable[[], None], *, name: str, delay: float = 0.0) -> None:
    """Call ``sync`` now, after every batch of store events and every :data:`RESYNC_SECONDS`, until
    cancelled (or the store's subscription is closed)."""
    sub = store.subscribe(None)
    try:
        while True:
            try:
                sync()
            except Exception:  # keep the controller alive; the next event retries
                log.exception("%s: reconcile failed", name)
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # races with an arriving event, and the controller then never stops.
                async with asyncio.timeout(RESYNC_SECONDS):
                    first = await sub.queue.get()
            except TimeoutError:
                continue
            if first is None:
                return
            if delay > 0:
                await asyncio.sleep(delay)
            while not sub.queue.empty():
                if sub.queue.get_nowait() is None:
                    return
    finally:
        store.unsubscribe(sub)


def _key(obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


def _alive(store: Store, rt: ResourceType, obj: JSON) -> JSON | None:
    """The current version of ``obj`` if the same object (same uid) still exists."""
    ns, name = _key(obj)
    current = store.get(rt, ns, name)
    if current is None or current["metadata"].get("uid") != obj["metadata"].get("uid"):
        return None
    return current


def _filter_meta_list(
    store: Store, rt: ResourceType, obj: JSON, field: str, keep: Callable[[Any], bool], user_agent: str
) -> None:
    """Keep only the entries of ``metadata.<field>`` that ``keep`` accepts; drop the field when none is left."""

    def edit(current: JSON) -> None:
        meta = current["metadata"]
        remaining = [item for item in meta.get(field) or [] if keep(item)]
        if remaining:
            meta[field] = remaining
        else:
            meta.pop(field, None)

    ns, name = _key(obj)
    store.mutate(rt, ns, name, edit, user_agent=user_agent)


def _drop_refs(store: Store, rt: ResourceType, obj: JSON, uids: set[str], user_agent: str) -> None:
    _filter_meta_list(store, rt, obj, "ownerReferences", lambda ref: ref.get("uid") not in uids, user_agent)


def _drop_finalizer(store: Store, rt: ResourceType, obj: JSON, finalizer: str, user_agent: str) -> None:
    _filter_meta_list(store, rt, obj, "finalizers", lambda f: f != finalizer, user_agent)


def _owner_in_reach(dependent_rt: ResourceType, dependent: JSON, owner_rt: ResourceType, owner: JSON) -> bool:
    """Whether the real collector would find ``owner`` for ``dependent``: a namespaced owner only in the
    dependent's own namespace (a cluster-scoped dependent's namespaced owner is never found)."""
    if not owner_rt.namespaced:
        return True
    if not dependent_rt.namespaced:
        return False
    return bool(owner["metadata"].get("namespace") == dependent["metadata"].get("namespace"))


def _invalid_namespace_event(store: Store, dependent: JSON, ref: JSON, user_agent: str) -> None:
    """The Warning Event ``OwnerRefInvalidNamespace`` about ``dependent`` (once per dependent and owner)."""
    from .. import resources as r

    meta = dependent["metadata"]
    namespace = meta.get("namespace") or "default"
    name = f"{meta.get('name', '')}.{str(ref.get('uid', ''))[:8]}.ownerref"
    if store.get(r.EVENTS, namespace, name) is not None:
        return
    owner = {k: ref.get(k) for k in ("apiVersion", "kind", "name", "uid")}
    try:
        store.create(r.EVENTS, {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"apiVersion": dependent.get("apiVersion", ""), "kind": dependent.get("kind", ""),
                               "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
                               "uid": meta.get("uid", "")},
            "reason": "OwnerRefInvalidNamespace", "type": "Warning", "count": 1,
            "message": f"ownerRef {owner} does not exist in namespace {meta.get('namespace', '')!r}",
            "source": {"component": "garbage-collector-controller"},
        }, user_agent=user_agent)
    except ApiError as err:
        log.warning("garbage collector: event for %s: %s", meta.get("name"), err.message)


def sync_gc(store: Store, user_agent: str) -> None:
    """One garbage-collection pass over every object in the store."""
    index: dict[str, tuple[ResourceType, JSON]] = {}
    for rt in list(store.types.values()):
        for obj in store.iter_raw(rt):
            uid = obj.get("metadata", {}).get("uid")
            if uid:
                index[uid] = (rt, obj)
    dependents: dict[str, list[tuple[ResourceType, JSON]]] = defaultdict(list)
    for rt, obj in index.values():
        for ref in obj["metadata"].get("ownerReferences") or []:
            dependents[ref.get("uid", "")].append((rt, obj))

    # Dependents: delete those whose owners are all gone (or all waiting for their dependents).
    for uid, (rt, obj) in list(index.items()):
        meta = obj["metadata"]
        refs = meta.get("ownerReferences") or []
        if not refs or meta.get("deletionTimestamp"):
            continue
        solid, dangling, waiting = [], set(), set()
        for ref in refs:
            found = index.get(ref.get("uid", ""))
            if found is not None and not _owner_in_reach(rt, obj, *found):
                _invalid_namespace_event(store, obj, ref, user_agent)
                found = None
            if found is None:
                dangling.add(ref.get("uid", ""))
            elif found[1]["metadata"].get("deletionTimestamp") and \
                    "foregroundDeletion" in (found[1]["metadata"].get("finalizers") or []):
                waiting.add(ref.get("uid", ""))
            else:
                solid.append(ref)
        try:
            if solid:
                if dangling or waiting:
                    _drop_refs(store, rt, obj, dangling | waiting, user_agent)
                continue
            ns, name = _key(obj)
            foreground = bool(waiting and dependents.get(uid))
            store.delete(rt, ns, name, user_agent=user_agent,
                         propagation="Foreground" if foreground else "Background")
        except ApiError as err:
            log.warning("garbage collector: %s %s/%s: %s", rt.plural, *_key(obj), err.message)

    # Owners being deleted: orphan their dependents, or wait for the blocking ones.
    for uid, (rt, owner) in list(index.items()):
        meta = owner["metadata"]
        finalizers = meta.get("finalizers") or []
        if not meta.get("deletionTimestamp"):
            continue
        try:
            if "orphan" in finalizers:
                for drt, dep in dependents.get(uid, []):
                    if _alive(store, drt, dep) is not None:
                        _drop_refs(store, drt, dep, {uid}, user_agent)
                _drop_finalizer(store, rt, owner, "orphan", user_agent)
            elif "foregroundDeletion" in finalizers:
                blocking = []
                for drt, dep in dependents.get(uid, []):
                    current = _alive(store, drt, dep)
                    if current is None:
                        continue
                    for ref in current["metadata"].get("ownerReferences") or []:
                        if ref.get("uid") == uid and ref.get("blockOwnerDeletion"):
                            blocking.append(current)
                if not blocking:
                    _drop_finalizer(store, rt, owner, "foregroundDeletion", user_agent)
        except ApiError as err:
            log.warning("garbage collector: %s %s/%s: %s", rt.plural, *_key(owner), err.message)


async def run(store: Store, config: SimConfig) -> None:
    """The garbage collector, until cancelled."""
    user_agent = controller_user_agent(config, "generic-garbage-collector")
    await reconcile_loop(store, lambda: sync_gc(store, user_agent), name="garbage collector",
                         delay=config.step_delay)
