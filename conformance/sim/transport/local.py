"""``StoreClient``: the :class:`~conformance.sim.api.Client` over the in-process :class:`Store`.

Every write is a coroutine that never suspends (it calls the store synchronously), so awaiting it does not
yield to the event loop and the simulation stays as deterministic as when the controllers called the store
directly. ``update`` is resourceVersion-checked like the API (the store refuses what kube-apiserver
refuses, see ``store.reject_like_apiserver``); ``create(PODS, binding, subresource="binding")`` is
``store.bind_pod``.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Sequence

from ..api import BINDING, Client, Propagation, Subscription
from ..store import JSON, ApiError, IndexFn, ResourceType, Store, bind_pod


class StoreClient:
    """One component's client of ``store`` (``user_agent`` goes into the audit log)."""

    def __init__(self, store: Store, user_agent: str = "kovc-sim") -> None:
        self.store = store
        self._user_agent = user_agent

    @property
    def user_agent(self) -> str:
        return self._user_agent

    # Reader -----------------------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        return self.store.get(rt, namespace, name)

    def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str = "") -> list[JSON]:
        return self.store.list(rt, namespace, label_selector)[0]

    def iter_raw(self, rt: ResourceType) -> Iterable[JSON]:
        return self.store.iter_raw(rt)

    def by_owner(self, rt: ResourceType, owner_uid: str) -> builtins.list[JSON]:
        return self.store.by_owner(owner_uid, rt)

    def by_field(self, rt: ResourceType, path: str, value: str) -> builtins.list[JSON]:
        return self.store.by_field(rt, path, value)

    def by_index(self, rt: ResourceType, name: str, fn: IndexFn, value: str) -> builtins.list[JSON]:
        self.store.add_index(rt, name, fn)
        return self.store.by_index(rt, name, value)

    def count_index(self, rt: ResourceType, name: str, fn: IndexFn, value: str) -> int:
        self.store.add_index(rt, name, fn)
        return self.store.count_index(rt, name, value)

    # Writer -----------------------------------------------------------------------------------------
    async def create(self, rt: ResourceType, obj: JSON, *, namespace: str = "", subresource: str = "",
                     dry_run: bool = False) -> JSON:
        if subresource == BINDING and rt.key == ("", "pods"):
            meta = obj.get("metadata") or {}
            return bind_pod(self.store, obj, namespace=str(meta.get("namespace") or namespace),
                            name=str(meta.get("name", "")), user_agent=self._user_agent, dry_run=dry_run)
        if subresource:
            raise ApiError(405, "MethodNotAllowed", f"create is not supported on {rt.plural}/{subresource}")
        return self.store.create(rt, obj, namespace=namespace, user_agent=self._user_agent, dry_run=dry_run)

    async def update(self, rt: ResourceType, obj: JSON, *, subresource: str = "") -> JSON:
        return self.store.update(rt, obj, user_agent=self._user_agent, subresource=subresource)

    async def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None,
                     grace_seconds: int | None = None, propagation: Propagation = "Background") -> JSON:
        # The store has no graceful pod termination: a pod without finalizers goes at once, as with grace 0.
        return self.store.delete(rt, namespace, name, user_agent=self._user_agent, propagation=propagation,
                                 preconditions_uid=uid)

    async def get_live(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        return self.store.get(rt, namespace, name)

    # Client -----------------------------------------------------------------------------------------
    def kinds(self) -> Sequence[ResourceType]:
        return list(self.store.types.values())

    def as_agent(self, user_agent: str) -> Client:
        return StoreClient(self.store, user_agent)

    def subscribe(self, kinds: Collection[ResourceType] | None = None) -> Subscription:
        raw = self.store.subscribe(None)
        return Subscription(kinds, lambda _s: self.store.unsubscribe(raw), queue=raw.queue)

    async def synced(self) -> None:
        return None
