"""What the simulated controllers see of a cluster: a :class:`Client`, with two transports.

One implementation of each behaviour (``controllers/``, ``view.py``, ``subresources.py``) runs over

* :class:`~conformance.sim.transport.local.StoreClient` - the in-process :class:`~conformance.sim.store.Store`
  of ``--backend sim`` (writes are coroutines that never suspend, so the simulation stays deterministic);
* :class:`~conformance.sim.transport.http.HttpClient` - HTTP to any kube-apiserver (aiohttp, one session
  per agent), reads served from a watch-fed :class:`~conformance.sim.transport.cache.WatchCache`.

Reads are synchronous and served from memory (the store itself, or the watch cache), as
controller-runtime's cache reader is; :meth:`Writer.get_live` is the live reader (``GetAPIReader``).
Writes are asynchronous. Every error is a :class:`~conformance.sim.store.ApiError` (the HTTP transport maps
``Status`` bodies onto it), so ``except ApiError as exc: if exc.code not in (404, 409)`` works on both.

Read-modify-write helpers sit outside the interface, as ``controllerutil`` does: :func:`mutate` (get →
edit → update with the resourceVersion read; on 409 re-read live and retry) and :func:`replace` (write what
was computed from an object at its resourceVersion; a 409 retries the whole reconcile).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Literal, Protocol

from .store import JSON, ApiError, IndexFn, ResourceType, WatchEvent

Propagation = Literal["Background", "Foreground", "Orphan"]
#: How many times :func:`mutate` tries an update that keeps answering 409 Conflict.
MUTATE_ATTEMPTS = 5
#: The pods/binding subresource (``create(PODS, binding, subresource=BINDING)``).
BINDING = "binding"


class Subscription:
    """Watch events for a set of kinds, registered when created (so a caller can subscribe, then list,
    and miss nothing). Iterate it; :meth:`close` it when done (``async with`` does)."""

    def __init__(self, kinds: Collection[ResourceType] | None, on_close: Callable[[Subscription], None],
                 queue: asyncio.Queue[WatchEvent | None] | None = None) -> None:
        self.keys = None if kinds is None else frozenset(rt.key for rt in kinds)
        #: Events in order; None ends the stream. A transport may hand in a queue it already feeds.
        self.queue: asyncio.Queue[WatchEvent | None] = queue if queue is not None else asyncio.Queue()
        self._on_close = on_close
        self._closed = False

    def wants(self, rt: ResourceType) -> bool:
        return self.keys is None or rt.key in self.keys

    def put(self, ev: WatchEvent) -> None:
        if not self._closed and self.wants(ev.rt):
            self.queue.put_nowait(ev)

    def end(self) -> None:
        """The source ended: iteration stops after what is queued."""
        self.queue.put_nowait(None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            ev = await self.queue.get()
            if ev is None:
                raise StopAsyncIteration
            if self.wants(ev.rt):
                return ev

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Reader(Protocol):
    """Reads from memory (the store, or the watch cache): synchronous, never a request."""

    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        """A copy of the object, or None."""

    def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str = "") -> list[JSON]:
        """Copies of the objects, sorted by (namespace, name)."""

    def iter_raw(self, rt: ResourceType) -> Iterable[JSON]:
        """The objects without copying: for read-only scans."""

    def by_owner(self, rt: ResourceType, owner_uid: str) -> builtins.list[JSON]:
        """Objects of ``rt`` whose ownerReferences name ``owner_uid`` (read-only, sorted), from an owner
        index (every transport keeps its objects in an :class:`~conformance.sim.index.ObjectIndex`)."""

    def by_field(self, rt: ResourceType, path: str, value: str) -> builtins.list[JSON]:
        """Objects of ``rt`` whose field ``path`` (dotted, as a field selector; missing = "") equals
        ``value`` (read-only, sorted), from a field index built on first use."""

    def by_index(self, rt: ResourceType, name: str, fn: IndexFn, value: str) -> builtins.list[JSON]:
        """Objects of ``rt`` that index ``name`` (the keys ``fn(obj)`` gives; registered on first use, then
        kept current on every change) files under ``value`` (read-only, sorted)."""

    def count_index(self, rt: ResourceType, name: str, fn: IndexFn, value: str) -> int:
        """How many objects :meth:`by_index` would give (no list built: O(1))."""


class Writer(Protocol):
    """Requests to the API: asynchronous. ``update`` is resourceVersion-checked (409 when stale)."""

    async def create(self, rt: ResourceType, obj: JSON, *, namespace: str = "", subresource: str = "",
                     dry_run: bool = False) -> JSON: ...

    async def update(self, rt: ResourceType, obj: JSON, *, subresource: str = "") -> JSON: ...

    async def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None,
                     grace_seconds: int | None = None, propagation: Propagation = "Background") -> JSON: ...

    async def get_live(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        """The object as the API has it now (bypassing any cache), or None."""


class Client(Reader, Writer, Protocol):
    """A :class:`Reader` and :class:`Writer` acting as one component (``user_agent``)."""

    @property
    def user_agent(self) -> str: ...

    def kinds(self) -> Sequence[ResourceType]:
        """The kinds this client reads and watches."""

    def as_agent(self, user_agent: str) -> Client:
        """The same cluster and cache, acting as another component (audit, later impersonation)."""

    def subscribe(self, kinds: Collection[ResourceType] | None = None) -> Subscription:
        """Watch events of ``kinds`` (every kind when None), each delivered after the reads show it."""

    async def synced(self) -> None:
        """Return once every watched kind has finished its first list."""


def _meta(obj: JSON) -> JSON:
    meta: JSON = obj.setdefault("metadata", {})
    return meta


async def mutate(
    client: Client,
    rt: ResourceType,
    namespace: str,
    name: str,
    edit: Callable[[JSON], JSON | None],
    *,
    subresource: str = "",
    live: bool = False,
) -> JSON | None:
    """Read-modify-write: ``edit`` changes a copy in place (or returns a new object), which is written
    with the resourceVersion it was read at. On 409 Conflict the object is read again live and edited
    again, up to :data:`MUTATE_ATTEMPTS` times. Returns the stored result, or None when the object is
    (or becomes) gone. ``live``: the first read goes to the API too (a kind no watch cache holds)."""
    current = None if live else client.get(rt, namespace, name)
    if current is None:  # not (yet) in a watch cache: ask the API before concluding it is gone
        current = await client.get_live(rt, namespace, name)
    for attempt in range(MUTATE_ATTEMPTS):
        if current is None:
            return None
        rv = _meta(current).get("resourceVersion")
        result = edit(current)
        new = current if result is None else result
        if rv and not _meta(new).get("resourceVersion"):
            _meta(new)["resourceVersion"] = rv
        try:
            return await client.update(rt, new, subresource=subresource)
        except ApiError as exc:
            if exc.code == 404:
                return None
            if exc.code != 409 or attempt == MUTATE_ATTEMPTS - 1:
                raise
        current = await client.get_live(rt, namespace, name)
    return None  # not reached: the last attempt returns or raises


async def replace(client: Client, rt: ResourceType, obj: JSON, *, subresource: str = "") -> JSON | None:
    """Write ``obj`` (typically a status computed from it) at the resourceVersion it was read at. A 409 means
    someone wrote the object since: it propagates, so the reconcile that computed ``obj`` runs again on
    fresh data (a last-writer-wins write would silently drop that other write - what custom resources
    forbid). None when the object is gone."""
    try:
        return await client.update(rt, obj, subresource=subresource)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def delete_quietly(client: Client, rt: ResourceType, namespace: str, name: str, *,
                         uid: str | None = None, grace_seconds: int | None = None) -> bool:
    """Delete; False (no error) when the object is already gone or is another one now (404/409)."""
    try:
        await client.delete(rt, namespace, name, uid=uid, grace_seconds=grace_seconds)
    except ApiError as exc:
        if exc.code not in (404, 409):
            raise
        return False
    return True


